#include "cuda/device_buffer.hpp"

#include <cstdio>

namespace mlp {

static std::string mib(size_t n_bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(n_bytes) / double(1 << 20));
    return buf;
}

void* device_alloc(size_t n_bytes) {
    if (n_bytes == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, n_bytes);
    if (status == cudaSuccess) return p;
    cudaGetLastError();
    std::string detail;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
        detail = "; " + mib(free_bytes) + " free of " + mib(total_bytes);
    }
    cudaGetLastError();
    throw CudaError("cudaMalloc of " + std::to_string(n_bytes) + " bytes (" + mib(n_bytes) +
                    ") failed: " + cudaGetErrorString(status) + detail);
}

int allocation_device(size_t n_bytes) {
    int device = 0;
    if (n_bytes > 0) CUDA_CHECK(cudaGetDevice(&device));
    return device;
}

void device_free(void* p, int device) noexcept {
    // cudaFree runs with the memory's own device current, then the caller's is restored.
    // Statuses are dropped: a destructor cannot report them.
    int current = device;
    const bool switched = cudaGetDevice(&current) == cudaSuccess && current != device &&
                          cudaSetDevice(device) == cudaSuccess;
    (void)cudaFree(p);
    if (switched) (void)cudaSetDevice(current);
}

}  // namespace mlp
