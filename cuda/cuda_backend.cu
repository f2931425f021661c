// The CUDA backend's out-of-line parts (cuda/cuda_backend.cuh): the
// constructor, cuBLAS GEMMs (single, strided-batched, bf16 casts), the fused
// operations over cuBLASLt and cuda/kernels/reduce.cu, and graph capture. One
// of the nvcc translation units; the Engine is instantiated on this backend in
// cuda_trainer.cu.
#include <algorithm>
#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_backend.cuh"
#include "cuda/kernels/reduce.hpp"
#include "ops/bf16_cast.hpp"

namespace mlp {

// cuBLAS otherwise allocates its workspace lazily, which is not allowed while
// a stream is being captured into a graph. 32 MiB is what cuBLAS asks for on
// Hopper; less is enough elsewhere.
constexpr size_t k_cublas_workspace_bytes = size_t(32) << 20;

CudaBackend::CudaBackend(int device) : device_(device) {
    // Everything made here lives on `device`. The caller's device is restored at the end, or,
    // should a step throw, by restore_device_ once the members made so far are released.
    int current = device;
    CUDA_CHECK(cudaGetDevice(&current));
    if (current != device) {
        CUDA_CHECK(cudaSetDevice(device));
        restore_device_.previous = current;
    }
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    name_ = prop.name;
    // Eight 256-thread blocks fill an SM's 2048 threads; the grid-stride loop
    // covers any larger range.
    max_blocks_ = prop.multiProcessorCount * 8;
    stream_ = make_stream();
    cublasHandle_t handle = nullptr;
    CUBLAS_CHECK(cublasCreate(&handle));
    cublas_ = CublasHandle(handle);
    CUBLAS_CHECK(cublasSetStream(handle, stream_.get()));
    cublas_workspace_ = DeviceBuffer<uint8_t>(int64_t(k_cublas_workspace_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(handle, cublas_workspace_.data(), k_cublas_workspace_bytes));

    // The fused path's resources, made here because nothing may be created
    // or allocated while a graph is being captured.
    side_stream_ = make_stream();
    cublasHandle_t side = nullptr;
    CUBLAS_CHECK(cublasCreate(&side));
    side_cublas_ = CublasHandle(side);
    CUBLAS_CHECK(cublasSetStream(side, side_stream_.get()));
    side_workspace_ = DeviceBuffer<uint8_t>(int64_t(k_cublas_workspace_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(side, side_workspace_.data(), k_cublas_workspace_bytes));
    cudaEvent_t fork = nullptr, join = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    fork_ = Event(fork);
    CUDA_CHECK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    join_ = Event(join);
    lt_ = std::make_unique<LtMatmul>(cublas_workspace_.data(), k_cublas_workspace_bytes);
    reserve_batch(1);
    if (restore_device_.previous >= 0) {
        CUDA_CHECK(cudaSetDevice(std::exchange(restore_device_.previous, -1)));
    }
}

CudaBackend::~CudaBackend() {
    // The members are released after this body, on device_ (cuBLAS handles and streams belong
    // to it); restore_device_, destroyed last, then makes the caller's device current again.
    int current = device_;
    if (cudaGetDevice(&current) == cudaSuccess && current != device_ &&
        cudaSetDevice(device_) == cudaSuccess) {
        restore_device_.previous = current;
    }
}

static int checked_int(int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX) {
        throw Error(std::string("GEMM ") + what + " = " + std::to_string(v) +
                    " is outside cuBLAS's int range");
    }
    return int(v);
}

static cublasOperation_t to_op(Trans t) {
    return t == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
}

static void sgemm(cublasHandle_t handle, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(handle, to_op(ta), to_op(tb), checked_int(m, "m"), checked_int(n, "n"),
                             checked_int(k, "k"), &one, a, checked_int(lda, "lda"), b,
                             checked_int(ldb, "ldb"), &zero, c, checked_int(ldc, "ldc")));
}

// C (fp32) = op(A) op(B) with A and B bf16 bit patterns, accumulated in fp32.
static void bf16_gemm(cublasHandle_t handle, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                      const void* a, int64_t lda, const void* b, int64_t ldb, float* c,
                      int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(
        handle, to_op(ta), to_op(tb), checked_int(m, "m"), checked_int(n, "n"), checked_int(k, "k"),
        &one, a, CUDA_R_16BF, checked_int(lda, "lda"), b, CUDA_R_16BF, checked_int(ldb, "ldb"),
        &zero, c, CUDA_R_32F, checked_int(ldc, "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// sgemm per model, model i's operands i strides on; a batch of one is sgemm itself.
static void sgemm_batched(cublasHandle_t handle, Trans ta, Trans tb, int64_t m, int64_t n,
                          int64_t k, const float* a, int64_t lda, int64_t stride_a, const float* b,
                          int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c,
                          int64_t n_models) {
    if (n_models == 1) return sgemm(handle, ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemmStridedBatched(
        handle, to_op(ta), to_op(tb), checked_int(m, "m"), checked_int(n, "n"), checked_int(k, "k"),
        &one, a, checked_int(lda, "lda"), stride_a, b, checked_int(ldb, "ldb"), stride_b, &zero, c,
        checked_int(ldc, "ldc"), stride_c, checked_int(n_models, "batch count")));
}

// bf16_gemm per model; a batch of one is bf16_gemm itself.
static void bf16_gemm_batched(cublasHandle_t handle, Trans ta, Trans tb, int64_t m, int64_t n,
                              int64_t k, const void* a, int64_t lda, int64_t stride_a,
                              const void* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
                              int64_t stride_c, int64_t n_models) {
    if (n_models == 1) return bf16_gemm(handle, ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        handle, to_op(ta), to_op(tb), checked_int(m, "m"), checked_int(n, "n"), checked_int(k, "k"),
        &one, a, CUDA_R_16BF, checked_int(lda, "lda"), stride_a, b, CUDA_R_16BF,
        checked_int(ldb, "ldb"), stride_b, &zero, c, CUDA_R_32F, checked_int(ldc, "ldc"), stride_c,
        checked_int(n_models, "batch count"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Values a column-major rows x cols matrix with leading dimension ld spans.
static int64_t span_of(int64_t rows, int64_t cols, int64_t ld) {
    return rows > 0 && cols > 0 ? (cols - 1) * ld + rows : 0;
}

void CudaBackend::gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    const DeviceGuard on(device_);
    gemm_on(cublas_.get(), stream_.get(), main_operands_, ta, tb, m, n, k, a, lda, 0, b, ldb, 0, c,
            ldc, 0, 1);
}

void CudaBackend::gemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                               int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                               int64_t stride_b, float* c, int64_t ldc, int64_t stride_c,
                               int64_t n_models) {
    if (n_models <= 0) return;
    const DeviceGuard on(device_);
    gemm_on(cublas_.get(), stream_.get(), main_operands_, ta, tb, m, n, k, a, lda, stride_a, b, ldb,
            stride_b, c, ldc, stride_c, n_models);
}

void CudaBackend::gemm_on(cublasHandle_t handle, cudaStream_t stream, Bf16Operands& scratch,
                          Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                          int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                          int64_t stride_b, float* c, int64_t ldc, int64_t stride_c,
                          int64_t n_models) {
    if (!bf16()) {
        return sgemm_batched(handle, ta, tb, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc,
                             stride_c, n_models);
    }
    const CastOperands ops = cast_operands(scratch, stream, ta, tb, m, n, k, a, lda, stride_a, b,
                                           ldb, stride_b, n_models);
    bf16_gemm_batched(handle, ta, tb, m, n, k, ops.a, lda, stride_a, ops.b, ldb, stride_b, c, ldc,
                      stride_c, n_models);
}

CudaBackend::CastOperands CudaBackend::cast_operands(Bf16Operands& scratch, cudaStream_t stream,
                                                     Trans ta, Trans tb, int64_t m, int64_t n,
                                                     int64_t k, const float* a, int64_t lda,
                                                     int64_t stride_a, const float* b, int64_t ldb,
                                                     int64_t stride_b, int64_t n_models) {
    // Model i's operand starts i strides on: the cast covers the first model's span plus the
    // strides to the last one's, so the bf16 copies keep the same strides.
    const int64_t n_a =
        (n_models - 1) * stride_a + (ta == Trans::N ? span_of(m, k, lda) : span_of(k, m, lda));
    const int64_t n_b =
        (n_models - 1) * stride_b + (tb == Trans::N ? span_of(k, n, ldb) : span_of(n, k, ldb));
    return {cast_operand(scratch.a, stream, a, n_a), cast_operand(scratch.b, stream, b, n_b)};
}

const uint16_t* CudaBackend::cast_operand(DeviceBuffer<uint16_t>& scratch, cudaStream_t stream,
                                          const float* src, int64_t n_values) {
    if (scratch.size() < n_values) {
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
        if (capture != cudaStreamCaptureStatusNone) {
            throw Error("a bf16 GEMM operand of " + std::to_string(n_values) +
                        " values does not fit the " + std::to_string(scratch.size()) +
                        " reserved (reserve_gemm_operands), and nothing may be allocated while "
                        "a graph is being recorded");
        }
        grow_operand(scratch, n_values);
    }
    launch_for_each(n_values, Bf16CastFunctor{scratch.data(), src}, max_blocks_, stream);
    return scratch.data();
}

void CudaBackend::grow_operand(DeviceBuffer<uint16_t>& scratch, int64_t n_values) {
    if (scratch.size() >= n_values) return;
    // A graph recorded earlier casts into this scratch on every replay: freeing it would leave
    // the graph writing to memory it no longer owns.
    if (scratch.size() > 0 && recorded_) {
        throw Error("a bf16 GEMM operand of " + std::to_string(n_values) +
                    " values does not fit the " + std::to_string(scratch.size()) +
                    " reserved (reserve_gemm_operands), and graphs recorded on this backend "
                    "still cast into that scratch");
    }
    // Work queued on either stream may still read the old copy.
    if (scratch.size() > 0) {
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        CUDA_CHECK(cudaStreamSynchronize(side_stream_.get()));
    }
    scratch = DeviceBuffer<uint16_t>(n_values);
}

void CudaBackend::reserve_gemm_operands(int64_t n_a, int64_t n_b) {
    reserved_a_ = std::max(reserved_a_, n_a);
    reserved_b_ = std::max(reserved_b_, n_b);
    if (!bf16()) return;  // set_precision(bf16) allocates them
    const DeviceGuard on(device_);
    for (Bf16Operands* ops : {&main_operands_, &side_operands_}) {
        grow_operand(ops->a, reserved_a_);
        grow_operand(ops->b, reserved_b_);
    }
}

void CudaBackend::set_precision(Precision precision) {
    const DeviceGuard on(device_);
    const bool tf32 = precision == Precision::tf32;
    // bf16 needs no math mode: cublasGemmEx and cuBLASLt take the operand
    // types and CUBLAS_COMPUTE_32F per call.
    const cublasMath_t mode = tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), mode));
    CUBLAS_CHECK(cublasSetMathMode(side_cublas_.get(), mode));
    lt_->set_tf32(tf32);
    precision_ = precision;
    reserve_gemm_operands(reserved_a_, reserved_b_);
}

int64_t CudaBackend::relu_mask_bytes(int64_t n_rows, int64_t n_cols) const {
    return relu_mask_ld(n_rows) / 8 * n_cols;
}

void CudaBackend::note_fallback(const std::string& why) {
    for (const std::string& seen : fallbacks_) {
        if (seen == why) return;
    }
    fallbacks_.push_back(why);
}

void CudaBackend::reserve_batch(int64_t n_models) {
    if (n_models <= counter_models_) return;
    const DeviceGuard on(device_);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(stream_.get(), &capture));
    if (capture != cudaStreamCaptureStatusNone) {
        throw Error("reserve_batch(" + std::to_string(n_models) +
                    ") while a graph is being recorded: nothing may be allocated then");
    }
    // Launches queued on the stream may still count in the old counters.
    CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    counters_ = DeviceBuffer<uint32_t>(2 * n_models);
    CUDA_CHECK(cudaMemsetAsync(counters_.data(), 0, size_t(2 * n_models) * sizeof(uint32_t),
                               stream_.get()));
    counter_models_ = n_models;
}

uint32_t* CudaBackend::counters(Reduction reduction, int64_t n_models) {
    if (n_models > counter_models_) {
        throw Error("a fused reduction over " + std::to_string(n_models) +
                    " models, but reserve_batch made room for " + std::to_string(counter_models_));
    }
    return counters_.data() + (reduction == Reduction::grad_norm_guard ? 0 : counter_models_);
}

// One cuBLASLt GEMM D (m x n, leading dimension m) = op(A) op(B) with its epilogue for each
// of n_models models, model i's operands i strides on (ops: A and B, cast or not).
static LtGemm lt_gemm(LtEpilogue epilogue, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                      int64_t lda, int64_t ldb, Strided<float> d, const void* a, const void* b,
                      int64_t stride_a, int64_t stride_b, Strided<float> bias, Strided<uint8_t> aux,
                      bool bf16, int64_t n_models) {
    LtGemm g{};
    g.epilogue = epilogue;
    g.ta = ta;
    g.tb = tb;
    g.m = m;
    g.n = n;
    g.k = k;
    g.lda = lda;
    g.ldb = ldb;
    g.ldd = m;
    g.d = d.data;
    g.a = a;
    g.b = b;
    g.bias = bias.data;
    g.aux = aux.data;
    g.aux_ld = relu_mask_ld(m);
    g.bf16 = bf16;
    g.batch_count = n_models;
    g.stride_a = stride_a;
    g.stride_b = stride_b;
    g.stride_d = d.stride;
    g.stride_bias = bias.stride;
    g.stride_aux_bytes = aux.stride;
    return g;
}

void CudaBackend::gemm_bias_act(Strided<float> z, Strided<uint8_t> relu_mask,
                                Strided<const float> w, Strided<const float> x,
                                Strided<const float> bias, bool relu, int64_t n_out,
                                int64_t n_batch, int64_t n_in, int64_t n_models) {
    if (n_models <= 0) return;
    const DeviceGuard on(device_);
    // With bf16 the epilogue GEMM reads the cast operands (fp32 bias, D and
    // accumulation); its fallback runs the bf16 GEMM on the same casts.
    CastOperands ops{w.data, x.data};
    if (bf16()) {
        ops = cast_operands(main_operands_, stream_.get(), Trans::T, Trans::N, n_out, n_batch, n_in,
                            w.data, n_in, w.stride, x.data, n_in, x.stride, n_models);
    }
    // cuBLASLt reads the bias through a void* attribute; it does not write it here.
    const LtGemm g =
        lt_gemm(relu ? LtEpilogue::relu_aux_bias : LtEpilogue::bias, Trans::T, Trans::N, n_out,
                n_batch, n_in, n_in, n_in, z, ops.a, ops.b, w.stride, x.stride,
                {const_cast<float*>(bias.data), bias.stride}, relu_mask, bf16(), n_models);
    std::string why;
    const bool lt = lt_->run(g, stream_.get(), &why);
    if (relu) mask_written_[relu_mask.data] = lt;
    if (lt) return;
    note_fallback(why);
    if (bf16()) {
        bf16_gemm_batched(cublas_.get(), Trans::T, Trans::N, n_out, n_batch, n_in, ops.a, n_in,
                          w.stride, ops.b, n_in, x.stride, z.data, n_out, z.stride, n_models);
    } else {
        gemm_batched(Trans::T, Trans::N, n_out, n_batch, n_in, w.data, n_in, w.stride, x.data, n_in,
                     x.stride, z.data, n_out, z.stride, n_models);
    }
    for_each_2d(n_models * n_batch, n_out,
                BiasActModels{BiasActFunctor{z.data, bias.data, n_out,
                                             relu ? Activation::relu : Activation::identity},
                              n_batch, z.stride, bias.stride});
}

void CudaBackend::gemm_drelu_bgrad(Strided<float> grad_in, Strided<float> grad_bias_in,
                                   Strided<const float> w, Strided<const float> grad_z,
                                   Strided<const float> activation_in,
                                   Strided<const uint8_t> relu_mask_in, int64_t n_in,
                                   int64_t n_batch, int64_t n_out, int64_t n_models) {
    if (n_models <= 0) return;
    const DeviceGuard on(device_);
    const auto written = mask_written_.find(relu_mask_in.data);
    if (written != mask_written_.end() && written->second) {
        CastOperands ops{w.data, grad_z.data};
        if (bf16()) {
            ops = cast_operands(main_operands_, stream_.get(), Trans::N, Trans::N, n_in, n_batch,
                                n_out, w.data, n_in, w.stride, grad_z.data, n_out, grad_z.stride,
                                n_models);
        }
        const LtGemm g = lt_gemm(
            LtEpilogue::drelu_bgrad, Trans::N, Trans::N, n_in, n_batch, n_out, n_in, n_out, grad_in,
            ops.a, ops.b, w.stride, grad_z.stride, grad_bias_in,
            {const_cast<uint8_t*>(relu_mask_in.data), relu_mask_in.stride}, bf16(), n_models);
        std::string why;
        if (lt_->run(g, stream_.get(), &why)) return;
        note_fallback(why);
    }
    // With bf16 this casts afresh: a fallback, not the path worth saving a cast on.
    gemm_batched(Trans::N, Trans::N, n_in, n_batch, n_out, w.data, n_in, w.stride, grad_z.data,
                 n_out, grad_z.stride, grad_in.data, n_in, grad_in.stride, n_models);
    for_each_2d(n_models, n_batch * n_in,
                ReluBackwardModels{ReluBackwardFunctor{grad_in.data, activation_in.data},
                                   grad_in.stride, activation_in.stride});
    bias_grad(grad_bias_in, grad_in, n_in, n_batch, n_models);
}

void CudaBackend::weight_grad(Strided<float> grad_w, Strided<const float> x,
                              Strided<const float> grad_z, int64_t n_in, int64_t n_out,
                              int64_t n_batch, int64_t n_models) {
    if (n_models <= 0) return;
    const DeviceGuard on(device_);
    // Nothing on the main stream reads a weight gradient before the join, so
    // the input-gradient chain goes on without waiting for these GEMMs.
    CUDA_CHECK(cudaEventRecord(fork_.get(), stream_.get()));
    CUDA_CHECK(cudaStreamWaitEvent(side_stream_.get(), fork_.get(), 0));
    // With bf16 the casts go on the side stream too, into its own scratch.
    gemm_on(side_cublas_.get(), side_stream_.get(), side_operands_, Trans::N, Trans::T, n_in, n_out,
            n_batch, x.data, n_in, x.stride, grad_z.data, n_out, grad_z.stride, grad_w.data, n_in,
            grad_w.stride, n_models);
    side_pending_ = true;
}

void CudaBackend::join_side() {
    if (!side_pending_) return;
    const DeviceGuard on(device_);
    CUDA_CHECK(cudaEventRecord(join_.get(), side_stream_.get()));
    CUDA_CHECK(cudaStreamWaitEvent(stream_.get(), join_.get(), 0));
    side_pending_ = false;
}

void CudaBackend::bias_grad(Strided<float> grad_bias, Strided<const float> grad_z, int64_t n_out,
                            int64_t n_batch, int64_t n_models) {
    const DeviceGuard on(device_);
    launch_bias_grad(grad_bias, grad_z, n_out, n_batch, n_models, stream_.get());
}

void CudaBackend::softmax_xent_bgrad(Strided<float> grad_bias, const SoftmaxXentModels& loss,
                                     int64_t n_batch, int64_t n_models) {
    const DeviceGuard on(device_);
    launch_softmax_xent_bgrad(grad_bias, counters(Reduction::softmax_xent_bgrad, n_models), loss,
                              n_batch, n_models, stream_.get());
}

void CudaBackend::grad_norm_guard(const GradNormGuardModels& g, int64_t n_models) {
    const DeviceGuard on(device_);
    launch_grad_norm_guard(counters(Reduction::grad_norm_guard, n_models), g, n_models,
                           stream_.get());
}

void CudaBackend::begin_capture() {
    CUDA_CHECK(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
}

// The error path of a recording whose body threw: the first error is already on its way to
// the caller, so these calls report nothing more, but they leave the streams usable. A side
// stream forked into the capture must be joined back before the capture can end.
void CudaBackend::abort_capture() {
    if (side_pending_) {
        (void)cudaEventRecord(join_.get(), side_stream_.get());
        (void)cudaStreamWaitEvent(stream_.get(), join_.get(), 0);
        side_pending_ = false;
    }
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_.get(), &graph);
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
}

GraphExec CudaBackend::end_capture() {
    cudaGraph_t raw = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(stream_.get(), &raw));
    recorded_ = true;
    const CudaGraph graph(raw);
    size_t n_nodes = 0;
    CUDA_CHECK(cudaGraphGetNodes(raw, nullptr, &n_nodes));
    std::vector<cudaGraphNode_t> nodes(n_nodes);
    if (n_nodes > 0) CUDA_CHECK(cudaGraphGetNodes(raw, nodes.data(), &n_nodes));
    last_nodes_ = GraphNodes{int64_t(n_nodes), 0};
    for (cudaGraphNode_t node : nodes) {
        cudaGraphNodeType type{};
        CUDA_CHECK(cudaGraphNodeGetType(node, &type));
        last_nodes_.kernels += type == cudaGraphNodeTypeKernel;
    }
    cudaGraphExec_t exec = nullptr;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
    return GraphExec(exec);
}

}  // namespace mlp
