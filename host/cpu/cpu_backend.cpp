#include "host/cpu/cpu_backend.hpp"

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>  // omp_in_parallel, omp_get_max_threads: whether the parts can spread
#endif

#include "host/cpu/gemm_library.hpp"

namespace mlp {

// A large GEMM is cut into independent GEMMs along the longer of C's two sides, which
// run on the OpenMP threads with the library's own threading off. The cut depends on
// the shape alone, never on the thread count, so a GEMM's bits are the same on one
// thread or on many, and in a batch of models (whose GEMMs run inside the batch's
// parallel loop, one model per thread) as alone. The library's own threads would sum
// in another order for every thread count; and parts run on an OpenMP team already
// awake for the functors, where the library wakes its own threads at every call.
GemmParts gemm_parts(int64_t m, int64_t n, int64_t k) {
    // Below this much work (m n k) one call beats any cut: the library packs the
    // uncut operand again for every part.
    constexpr int64_t k_min_work = int64_t(1) << 19;
    constexpr int64_t k_min_width = 64;  // narrower parts leave the kernels' tiles part-empty
    constexpr int64_t k_align = 16;      // part widths a multiple of the kernels' tiles
    const bool along_n = n >= m;
    const int64_t side = along_n ? n : m;
    const int64_t n_parts =
        std::min({k_gemm_parts_max, side / k_min_width, m * n * k / k_min_work});
    if (n_parts < 2) return {along_n, 1, side};
    const int64_t width = (side + n_parts - 1) / n_parts;
    const int64_t aligned = (width + k_align - 1) / k_align * k_align;
    return {along_n, (side + aligned - 1) / aligned, aligned};
}

void CpuBackend::run_gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                          int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    const GemmParts parts = gemm_parts(m, n, k);
    if (parts.n_parts == 1) return sgemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
    // Part i is C's columns (along n) or rows (along m) [i * width, ...): the matching
    // columns of op(B) or rows of op(A); a transposed operand is stored the other way.
    const auto part = [&](int64_t i) {
        const int64_t first = i * parts.width;
        const int64_t size = std::min(parts.width, (parts.along_n ? n : m) - first);
        if (parts.along_n) {
            sgemm(ta, tb, m, size, k, a, lda, b + (tb == Trans::N ? first * ldb : first), ldb,
                  c + first * ldc, ldc);
        } else {
            sgemm(ta, tb, size, n, k, a + (ta == Trans::N ? first : first * lda), lda, b, ldb,
                  c + first, ldc);
        }
    };
    // Inside a batch's parallel loop the parts run in turn on the model's thread.
    parallel_for(parts.n_parts, max_threads(), part);
}

int CpuBackend::max_threads() {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace mlp
