#include <cuda_runtime_api.h>

#include "host/cuda_device.hpp"

namespace mlp {

CudaDeviceInfo probe_cuda_device() {
    CudaDeviceInfo info;
    int n_devices = 0;
    cudaError_t status = cudaGetDeviceCount(&n_devices);
    if (status != cudaSuccess) {
        cudaGetLastError();
        info.reason = cudaGetErrorString(status);
        if (status == cudaErrorInsufficientDriver || status == cudaErrorNoDevice) {
            info.reason += " (no NVIDIA GPU or driver on this machine, or the driver is older "
                           "than the CUDA runtime)";
        }
        return info;
    }
    if (n_devices == 0) {
        info.reason = "no CUDA device found";
        return info;
    }
    cudaDeviceProp prop{};
    status = cudaGetDeviceProperties(&prop, info.index);
    if (status != cudaSuccess) {
        cudaGetLastError();
        info.reason = cudaGetErrorString(status);
        return info;
    }
    info.name = prop.name;
    info.cc_major = prop.major;
    info.cc_minor = prop.minor;
    info.total_bytes = prop.totalGlobalMem;
    info.usable = true;
    return info;
}

bool built_with_cuda() { return true; }

}  // namespace mlp
