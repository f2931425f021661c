#include "cuda/lt_matmul.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>

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
static uint32_t alignment_of(uintptr_t v) {
    uint32_t a = 256;
    while (a > 1 && v % a != 0) a /= 2;
    return a;
}

static uint32_t alignment_of(const void* p) {
    return alignment_of(reinterpret_cast<uintptr_t>(p));
}

// The alignment every model of a batch has: model i's operand starts i *
// stride_bytes after model 0's.
static uint32_t alignment_of(const void* p, int64_t stride_bytes, int64_t batch_count) {
    const uint32_t first = alignment_of(p);
    if (batch_count <= 1) return first;
    return std::min(first, alignment_of(uintptr_t(stride_bytes)));
}

static int64_t operand_bytes(const LtGemm& g) {
    return g.bf16 ? int64_t(sizeof(uint16_t)) : int64_t(sizeof(float));
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

// The batch attributes, as cuBLASLt 13.1's cublasLt.h defines them:
//   CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT           int32_t, default 1
//   CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET  int64_t, in elements (of the layout's type)
//   CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE       int64_t, units unstated there; elements, as
//                                                NVIDIA's samples pass the bias length
//   CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE  int64_t, for a ReLU bit mask in elements,
//                                                i.e. bits, and divisible by 128 (as AUX_LD)
// cuBLASLt may refuse any of them (or have no algorithm for a batch): that is an answer, the
// generic kernels run the batch instead, so these statuses are read, not thrown.
struct BatchAttributes {
    std::string refused;  // the first attribute cuBLASLt refused, with its status

    template <class T>
    void layout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, const char* name,
                const T& value) {
        note(cublasLtMatrixLayoutSetAttribute(l, attr, &value, sizeof value), name);
    }
    template <class T>
    void desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const char* name,
              const T& value) {
        note(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof value), name);
    }
    void note(cublasStatus_t status, const char* name) {
        if (status != CUBLAS_STATUS_SUCCESS && refused.empty()) {
            refused = std::string(name) + " (" + cublasLtGetStatusName(status) + ")";
        }
    }
};

// The GEMM a fallback's reason names: epilogue, shape, batch and operand type.
static std::string describe(const LtGemm& g) {
    return std::string(to_string(g.epilogue)) + " GEMM " + std::to_string(g.m) + " x " +
           std::to_string(g.n) + " x " + std::to_string(g.k) +
           (g.batch_count > 1 ? ", batch of " + std::to_string(g.batch_count) + " models" : "") +
           (g.bf16 ? " (bf16 operands)" : "");
}

std::unique_ptr<LtMatmul::Plan> LtMatmul::make_plan(const LtGemm& g) const {
    auto plan = std::make_unique<Plan>();
    const bool batched = g.batch_count > 1;
    const std::string shape = describe(g);
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
    if (batched && g.batch_count > INT32_MAX) {
        plan->why = shape + ": the batch count is outside cuBLASLt's int32 range";
        return plan;
    }
    const int64_t aux_stride_bits = g.stride_aux_bytes * 8;
    if (batched && relu_mask && (aux_stride_bits % 128 != 0 || aux_stride_bits < g.aux_ld * g.n)) {
        plan->why = shape + ": the ReLU masks of the batch need a stride that is a multiple of " +
                    "16 bytes and at least one mask (" + std::to_string(g.aux_ld * g.n / 8) +
                    " bytes), not " + std::to_string(g.stride_aux_bytes);
        return plan;
    }
    // The heuristic sees model 0's bias pointer only, and cublasLt.h gives the
    // bias batch stride no divisibility rule: a stride that leaves another
    // model's bias less aligned than model 0's could meet a kernel chosen for
    // model 0's alignment.
    const int64_t bias_stride_bytes = g.stride_bias * int64_t(sizeof(float));
    if (batched && alignment_of(g.bias, bias_stride_bytes, g.batch_count) < alignment_of(g.bias)) {
        plan->why = shape + ": a bias stride of " + std::to_string(bias_stride_bytes) +
                    " bytes leaves the batch's biases less aligned than model 0's (" +
                    std::to_string(alignment_of(g.bias)) + " bytes)";
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
    if (batched) {
        BatchAttributes batch;
        const int32_t count = int32_t(g.batch_count);
        const std::pair<cublasLtMatrixLayout_t, int64_t> layouts[] = {
            {plan->a.get(), g.stride_a}, {plan->b.get(), g.stride_b}, {plan->d.get(), g.stride_d}};
        for (const auto& [layout, stride] : layouts) {
            batch.layout(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, "BATCH_COUNT", count);
            batch.layout(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                         "STRIDED_BATCH_OFFSET", stride);
        }
        batch.desc(desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, "BIAS_BATCH_STRIDE",
                   g.stride_bias);
        if (relu_mask) {
            batch.desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE,
                       "EPILOGUE_AUX_BATCH_STRIDE", aux_stride_bits);
        }
        if (!batch.refused.empty()) {
            plan->why = shape + ": cuBLASLt refuses " + batch.refused;
            return plan;
        }
    }

    const uint32_t align_a = alignment_of(g.a, g.stride_a * operand_bytes(g), g.batch_count);
    const uint32_t align_b = alignment_of(g.b, g.stride_b * operand_bytes(g), g.batch_count);
    const uint32_t align_d = alignment_of(g.d, g.stride_d * int64_t(sizeof(float)), g.batch_count);
    cublasLtMatmulPreference_t raw_pref = nullptr;
    CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&raw_pref));
    const LtPreference pref(raw_pref);
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(workspace_bytes_));
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
    set_pref(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);

    cublasLtMatmulHeuristicResult_t result{};
    int n_results = 0;
    // No algorithm is an answer (NOT_SUPPORTED), not a failure of the call.
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        handle_.get(), desc, plan->a.get(), plan->b.get(), plan->d.get(), plan->d.get(), pref.get(),
        1, &result, &n_results);
    if (status != CUBLAS_STATUS_SUCCESS || n_results == 0) {
        plan->why = shape + ": cuBLASLt has no algorithm (" + cublasLtGetStatusName(status) + ", " +
                    std::to_string(n_results) + " results; operand alignment " +
                    std::to_string(align_a) + "/" + std::to_string(align_b) + "/" +
                    std::to_string(align_d) + " bytes, bias " +
                    std::to_string(alignment_of(g.bias, bias_stride_bytes, g.batch_count)) + ")";
        return plan;
    }
    plan->algo = result.algo;
    plan->usable = true;
    return plan;
}

bool LtMatmul::run(const LtGemm& g, cudaStream_t stream, std::string* why) {
    // A batch of one ignores the strides, so they do not split its plan.
    const bool batched = g.batch_count > 1;
    const int64_t fp32_bytes = int64_t(sizeof(float));
    const Key key{int(g.epilogue),
                  int(g.ta),
                  int(g.tb),
                  g.m,
                  g.n,
                  g.k,
                  g.lda,
                  g.ldb,
                  g.ldd,
                  alignment_of(g.a, g.stride_a * operand_bytes(g), g.batch_count),
                  alignment_of(g.b, g.stride_b * operand_bytes(g), g.batch_count),
                  alignment_of(g.d, g.stride_d * fp32_bytes, g.batch_count),
                  g.bias,
                  g.aux,
                  g.aux_ld,
                  tf32_,
                  g.bf16,
                  batched ? g.batch_count : 1,
                  batched ? g.stride_a : 0,
                  batched ? g.stride_b : 0,
                  batched ? g.stride_d : 0,
                  batched ? g.stride_bias : 0,
                  batched ? g.stride_aux_bytes : 0};
    // The heuristic's algorithm is not guaranteed to run (cublasLt.h), and a call that fails
    // while the stream is being captured cannot be taken back: the capture may be broken, and
    // the generic kernels can no longer stand in. So plans are made only outside a capture,
    // and run at once, by the call that made them: a usable plan has run. A GEMM with no plan
    // yet while capturing is left out of that recording (the generic kernels are recorded
    // instead); its plan is made at its next call outside a capture. Engine runs every pass
    // once before recording it, so its recordings find every plan made.
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
    const bool capturing = capture != cudaStreamCaptureStatusNone;
    auto it = plans_.find(key);
    if (it == plans_.end()) {
        if (capturing) {
            if (why) {
                *why = describe(g) +
                       ": first needed while a graph was being recorded, where a failing "
                       "cuBLASLt call could not fall back (run the pass once before recording "
                       "it)";
            }
            return false;
        }
        it = plans_.emplace(key, make_plan(g)).first;
    }
    Plan& plan = *it->second;
    if (!plan.usable) {
        if (why) *why = plan.why;
        return false;
    }
    const float one = 1.0f, zero = 0.0f;
    const cublasStatus_t status = cublasLtMatmul(
        handle_.get(), plan.desc.get(), &one, g.a, plan.a.get(), g.b, plan.b.get(), &zero, g.d,
        plan.d.get(), g.d, plan.d.get(), &plan.algo, d_workspace_, workspace_bytes_, stream);
    if (status == CUBLAS_STATUS_SUCCESS) return true;
    // Inside a capture the plan has run before, with these operands' layouts and alignments:
    // a failure there is not the algorithm's, and it stands.
    if (capturing) CUBLASLT_CHECK(status);
    // Outside a capture the caller's generic kernels overwrite whatever the failed call may
    // have written, now and from then on. A launch error it left is not sticky (a sticky one
    // fails the next checked call anyway), so it is cleared for the launches that follow,
    // which check cudaGetLastError.
    (void)cudaGetLastError();
    plan.usable = false;
    plan.why = describe(g) + ": cublasLtMatmul failed with the heuristic's algorithm (" +
               cublasLtGetStatusName(status) + ")";
    if (why) *why = plan.why;
    return false;
}

}  // namespace mlp
