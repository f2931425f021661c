// The CUDA backend's out-of-line parts and the Engine instantiated on it:
// one of the two translation units nvcc compiles for the trainer (the other
// is cuda/kernels/reduce.cu, the fused path's reductions).
#include <climits>
#include <vector>

#include "cuda/cuda_backend.cuh"
#include "cuda/kernels/reduce.hpp"
#include "host/train/engine.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

// cuBLAS otherwise allocates its workspace lazily, which is not allowed while
// a stream is being captured into a graph. 32 MiB is what cuBLAS asks for on
// Hopper; less is enough elsewhere.
constexpr size_t k_cublas_workspace_bytes = size_t(32) << 20;

CudaBackend::CudaBackend(int device) : device_(device) {
    CUDA_CHECK(cudaSetDevice(device));
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
    counters_ = DeviceBuffer<uint32_t>(2);
    CUDA_CHECK(cudaMemsetAsync(counters_.data(), 0, 2 * sizeof(uint32_t), stream_.get()));
}

static int checked_int(int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX) {
        throw Error(std::string("GEMM ") + what + " = " + std::to_string(v) +
                    " is outside cuBLAS's int range");
    }
    return int(v);
}

static void sgemm(cublasHandle_t handle, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(handle, ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T,
                             tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T, checked_int(m, "m"),
                             checked_int(n, "n"), checked_int(k, "k"), &one, a,
                             checked_int(lda, "lda"), b, checked_int(ldb, "ldb"), &zero, c,
                             checked_int(ldc, "ldc")));
}

void CudaBackend::gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    sgemm(cublas_.get(), ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
}

void CudaBackend::set_precision(Precision precision) {
    const bool tf32 = precision == Precision::tf32;
    const cublasMath_t mode = tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), mode));
    CUBLAS_CHECK(cublasSetMathMode(side_cublas_.get(), mode));
    lt_->set_tf32(tf32);
    precision_ = precision;
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

void CudaBackend::gemm_bias_act(float* z, uint8_t* relu_mask, const float* w, const float* x,
                                const float* bias, bool relu, int64_t n_out, int64_t n_batch,
                                int64_t n_in) {
    // cuBLASLt reads the bias through a void* attribute; it does not write it here.
    const LtGemm g{relu ? LtEpilogue::relu_aux_bias : LtEpilogue::bias,
                   Trans::T,
                   Trans::N,
                   n_out,
                   n_batch,
                   n_in,
                   n_in,
                   n_in,
                   n_out,
                   z,
                   w,
                   x,
                   const_cast<float*>(bias),
                   relu_mask,
                   relu_mask_ld(n_out)};
    std::string why;
    const bool lt = lt_->run(g, stream_.get(), &why);
    if (relu) mask_written_[relu_mask] = lt;
    if (lt) return;
    note_fallback(why);
    gemm(Trans::T, Trans::N, n_out, n_batch, n_in, w, n_in, x, n_in, z, n_out);
    for_each_2d(n_batch, n_out, BiasActFunctor{z, bias, n_out, relu});
}

void CudaBackend::gemm_drelu_bgrad(float* grad_in, float* grad_bias_in, const float* w,
                                   const float* grad_z, const float* activation_in,
                                   const uint8_t* relu_mask_in, int64_t n_in, int64_t n_batch,
                                   int64_t n_out) {
    const auto written = mask_written_.find(relu_mask_in);
    if (written != mask_written_.end() && written->second) {
        const LtGemm g{LtEpilogue::drelu_bgrad,
                       Trans::N,
                       Trans::N,
                       n_in,
                       n_batch,
                       n_out,
                       n_in,
                       n_out,
                       n_in,
                       grad_in,
                       w,
                       grad_z,
                       grad_bias_in,
                       const_cast<uint8_t*>(relu_mask_in),
                       relu_mask_ld(n_in)};
        std::string why;
        if (lt_->run(g, stream_.get(), &why)) return;
        note_fallback(why);
    }
    gemm(Trans::N, Trans::N, n_in, n_batch, n_out, w, n_in, grad_z, n_out, grad_in, n_in);
    for_each(n_batch * n_in, ReluBackwardFunctor{grad_in, activation_in});
    bias_grad(grad_bias_in, grad_in, n_in, n_batch);
}

void CudaBackend::weight_grad(float* grad_w, const float* x, const float* grad_z, int64_t n_in,
                              int64_t n_out, int64_t n_batch) {
    // Nothing on the main stream reads a weight gradient before the join, so
    // the input-gradient chain goes on without waiting for these GEMMs.
    CUDA_CHECK(cudaEventRecord(fork_.get(), stream_.get()));
    CUDA_CHECK(cudaStreamWaitEvent(side_stream_.get(), fork_.get(), 0));
    sgemm(side_cublas_.get(), Trans::N, Trans::T, n_in, n_out, n_batch, x, n_in, grad_z, n_out,
          grad_w, n_in);
    side_pending_ = true;
}

void CudaBackend::join_side() {
    if (!side_pending_) return;
    CUDA_CHECK(cudaEventRecord(join_.get(), side_stream_.get()));
    CUDA_CHECK(cudaStreamWaitEvent(stream_.get(), join_.get(), 0));
    side_pending_ = false;
}

void CudaBackend::bias_grad(float* grad_bias, const float* grad_z, int64_t n_out, int64_t n_batch) {
    launch_bias_grad(grad_bias, grad_z, n_out, n_batch, stream_.get());
}

void CudaBackend::softmax_xent_bgrad(float* grad_bias, const SoftmaxXentFunctor& loss,
                                     int64_t n_batch) {
    launch_softmax_xent_bgrad(grad_bias, counters_.data() + 1, loss, n_batch, stream_.get());
}

void CudaBackend::grad_norm_guard(float* grad_sq, int32_t* guard, int8_t* status, float* parts,
                                  const float* grads, const float* sample_loss, int64_t n_params,
                                  int64_t n_batch, int64_t n_parts, int32_t step, bool stop) {
    launch_grad_norm_guard(grad_sq, guard, status, parts, counters_.data(), grads, sample_loss,
                           n_params, n_batch, n_parts, step, stop, stream_.get());
}

void CudaBackend::begin_capture() {
    CUDA_CHECK(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
}

void CudaBackend::abort_capture() {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_.get(), &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
}

GraphExec CudaBackend::end_capture() {
    cudaGraph_t raw = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(stream_.get(), &raw));
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

std::unique_ptr<Trainer> make_cuda_trainer(const ModelShape& shape, const Dataset& data,
                                           const TrainerOptions& options, int device_index,
                                           const std::string& device_name) {
    return std::make_unique<BackendTrainer<CudaBackend, Engine>>(
        std::make_unique<CudaBackend>(device_index), shape, data, options, device_name);
}

}  // namespace mlp
