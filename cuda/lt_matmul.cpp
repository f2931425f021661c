#include "cuda/lt_matmul.hpp"

#include <cstdint>

#include "cuda/check.hpp"
#include "ops/host_device.hpp"

namespace mlp {

const char* to_string(LtEpilogue e) {
    switch (e) {
        case LtEpilogue::relu_aux_bias:
            return "RELU_AUX_BIAS";
        case LtEpilogue::drelu_bgrad:
            return "DRELU_BGRAD";
        case LtEpilogue::bias:
            break;
    }
    return "BIAS";
}

int64_t relu_mask_ld(int64_t n_rows) {
    return ceil_div<int64_t>(n_rows, 128) * 128;
}

static cublasOperation_t to_op(Trans t) {
    return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
}

static cublasLtEpilogue_t to_lt(LtEpilogue e) {
    switch (e) {
        case LtEpilogue::relu_aux_bias:
            return CUBLASLT_EPILOGUE_RELU_AUX_BIAS;
        case LtEpilogue::drelu_bgrad:
            return CUBLASLT_EPILOGUE_DRELU_BGRAD;
        case LtEpilogue::bias:
            break;
    }
    return CUBLASLT_EPILOGUE_BIAS;
}

// The largest power of two up to 256 that divides the address: the heuristic
// must only pick kernels that accept the pointers the GEMM will get.
static uint32_t alignment_of(const void* p) {
    const auto v = reinterpret_cast<uintptr_t>(p);
    uint32_t a = 256;
    while (a > 1 && v % a != 0) a /= 2;
    return a;
}

template <class T>
static void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                     const T& value) {
    CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof value));
}

template <class T>
static void set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
                     const T& value) {
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof value));
}

static LtLayout make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    cublasLtMatrixLayout_t layout = nullptr;
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&layout, type, uint64_t(rows), uint64_t(cols), ld));
    return LtLayout(layout);
}

struct LtMatmul::Plan {
    LtMatmulDesc desc;
    LtLayout a, b, d;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
    std::string why;  // when not usable
};

LtMatmul::LtMatmul(void* d_workspace, size_t workspace_bytes)
    : d_workspace_(d_workspace), workspace_bytes_(workspace_bytes) {
    cublasLtHandle_t handle = nullptr;
    CUBLASLT_CHECK(cublasLtCreate(&handle));
    handle_ = LtHandle(handle);
}

LtMatmul::~LtMatmul() = default;

std::unique_ptr<LtMatmul::Plan> LtMatmul::make_plan(const LtGemm& g) const {
    auto plan = std::make_unique<Plan>();
    const std::string shape = std::string(to_string(g.epilogue)) + " GEMM " + std::to_string(g.m) +
                              " x " + std::to_string(g.n) + " x " + std::to_string(g.k) +
                              (g.bf16 ? " (bf16 operands)" : "");
    const bool relu_mask = g.epilogue != LtEpilogue::bias;
    if (relu_mask && (!g.aux || g.aux_ld % 128 != 0 || g.aux_ld < g.m)) {
        plan->why = shape +
                    ": the ReLU mask needs a buffer whose leading dimension is a "
                    "multiple of 128 bits and at least " +
                    std::to_string(g.m);
        return plan;
    }
    if (!g.bias) {
        plan->why = shape + ": no bias pointer";
        return plan;
    }
    // bf16 operands accumulate in plain fp32 (tf32 is a rounding of fp32
    // operands, so it does not apply); the bias keeps D's type, fp32, by default.
    const cublasComputeType_t compute =
        tf32_ && !g.bf16 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cublasLtMatmulDesc_t desc = nullptr;
    CUBLASLT_CHECK(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F));
    plan->desc = LtMatmulDesc(desc);
    set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, to_op(g.ta));
    set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, to_op(g.tb));
    set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, to_lt(g.epilogue));
    set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
    if (relu_mask) {
        set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, g.aux);
        set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, g.aux_ld);
    }
    const cudaDataType_t ab = g.bf16 ? CUDA_R_16BF : CUDA_R_32F;
    plan->a =
        g.ta == Trans::N ? make_layout(ab, g.m, g.k, g.lda) : make_layout(ab, g.k, g.m, g.lda);
    plan->b =
        g.tb == Trans::N ? make_layout(ab, g.k, g.n, g.ldb) : make_layout(ab, g.n, g.k, g.ldb);
    plan->d = make_layout(CUDA_R_32F, g.m, g.n, g.ldd);

    cublasLtMatmulPreference_t raw_pref = nullptr;
    CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&raw_pref));
    const LtPreference pref(raw_pref);
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(workspace_bytes_));
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(g.a));
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(g.b));
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(g.d));
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(g.d));

    cublasLtMatmulHeuristicResult_t result{};
    int n_results = 0;
    // No algorithm is an answer (NOT_SUPPORTED), not a failure of the call.
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        handle_.get(), desc, plan->a.get(), plan->b.get(), plan->d.get(), plan->d.get(), pref.get(),
        1, &result, &n_results);
    if (status != CUBLAS_STATUS_SUCCESS || n_results == 0) {
        plan->why = shape + ": cuBLASLt has no algorithm (" + cublasLtGetStatusName(status) + ", " +
                    std::to_string(n_results) + " results; operand alignment " +
                    std::to_string(alignment_of(g.a)) + "/" + std::to_string(alignment_of(g.b)) +
                    "/" + std::to_string(alignment_of(g.d)) + " bytes, bias " +
                    std::to_string(alignment_of(g.bias)) + ")";
        return plan;
    }
    plan->algo = result.algo;
    plan->usable = true;
    return plan;
}

bool LtMatmul::run(const LtGemm& g, cudaStream_t stream, std::string* why) {
    const Key key{int(g.epilogue),
                  int(g.ta),
                  int(g.tb),
                  g.m,
                  g.n,
                  g.k,
                  g.lda,
                  g.ldb,
                  g.ldd,
                  alignment_of(g.a),
                  alignment_of(g.b),
                  alignment_of(g.d),
                  g.bias,
                  g.aux,
                  g.aux_ld,
                  tf32_,
                  g.bf16};
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, make_plan(g)).first;
    const Plan& plan = *it->second;
    if (!plan.usable) {
        if (why) *why = plan.why;
        return false;
    }
    const float one = 1.0f, zero = 0.0f;
    CUBLASLT_CHECK(cublasLtMatmul(handle_.get(), plan.desc.get(), &one, g.a, plan.a.get(), g.b,
                                  plan.b.get(), &zero, g.d, plan.d.get(), g.d, plan.d.get(),
                                  &plan.algo, d_workspace_, workspace_bytes_, stream));
    return true;
}

}  // namespace mlp
