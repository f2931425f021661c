#include "host/cpu/cpu_backend.hpp"

#include <cblas.h>

namespace mlp {

static CBLAS_TRANSPOSE to_cblas(Trans t) {
    return t == Trans::N ? CblasNoTrans : CblasTrans;
}

void CpuBackend::run_gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                          int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    cblas_sgemm(CblasColMajor, to_cblas(ta), to_cblas(tb), blasint(m), blasint(n), blasint(k), 1.0f,
                a, blasint(lda), b, blasint(ldb), 0.0f, c, blasint(ldc));
}

}  // namespace mlp
