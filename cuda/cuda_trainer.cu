// The CUDA backend's out-of-line parts and the Engine instantiated on it:
// the only translation unit nvcc compiles for the trainer.
#include <climits>

#include "cuda/cuda_backend.cuh"
#include "cuda/graph_stats.hpp"
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
}

static int checked_int(int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX) {
        throw Error(std::string("GEMM ") + what + " = " + std::to_string(v) +
                    " is outside cuBLAS's int range");
    }
    return int(v);
}

void CudaBackend::gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(cublas_.get(), ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T,
                             tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T, checked_int(m, "m"),
                             checked_int(n, "n"), checked_int(k, "k"), &one, a,
                             checked_int(lda, "lda"), b, checked_int(ldb, "ldb"), &zero, c,
                             checked_int(ldc, "ldc")));
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

// Capture mode is per thread (cudaStreamCaptureModeThreadLocal), and so is this record.
static thread_local int64_t t_last_graph_nodes = -1;

int64_t last_recorded_graph_nodes() { return t_last_graph_nodes; }

GraphExec CudaBackend::end_capture(int64_t* n_nodes) {
    cudaGraph_t raw = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(stream_.get(), &raw));
    const CudaGraph graph(raw);
    size_t count = 0;
    CUDA_CHECK(cudaGraphGetNodes(graph.get(), nullptr, &count));
    *n_nodes = int64_t(count);
    t_last_graph_nodes = int64_t(count);
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
