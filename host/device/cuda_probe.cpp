// The CUDA device probe of a build with the CUDA backend. Host code over the
// CUDA runtime API; nvcc is not needed for it.
#include <cuda_runtime_api.h>

#include <sys/stat.h>

#include "host/device/device.hpp"

namespace mlp {

// The runtime reports a machine without any NVIDIA driver as "CUDA driver
// version is insufficient", which sends people looking for a driver update.
// The kernel module's /proc entry tells the two cases apart.
static bool nvidia_driver_loaded() {
    struct stat st {};
    return ::stat("/proc/driver/nvidia/version", &st) == 0;
}

CudaDeviceInfo probe_cuda_device(int index) {
    CudaDeviceInfo info;
    info.index = index;
    int n_devices = 0;
    cudaError_t status = cudaGetDeviceCount(&n_devices);
    if (status != cudaSuccess) {
        cudaGetLastError();
        const std::string runtime = cudaGetErrorString(status);
        if (!nvidia_driver_loaded()) {
            info.reason = "no NVIDIA GPU or driver found (CUDA runtime: " + runtime + ")";
        } else if (status == cudaErrorInsufficientDriver) {
            info.reason = runtime + " (the NVIDIA driver is older than this CUDA runtime)";
        } else {
            info.reason = runtime;
        }
        return info;
    }
    if (n_devices == 0) {
        info.reason = "no CUDA device found";
        return info;
    }
    if (index < 0 || index >= n_devices) {
        info.reason = "there is no GPU " + std::to_string(index) + " (found " +
                      std::to_string(n_devices) + ": cuda:0 to cuda:" +
                      std::to_string(n_devices - 1) + ")";
        return info;
    }
    cudaDeviceProp prop{};
    status = cudaGetDeviceProperties(&prop, index);
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
