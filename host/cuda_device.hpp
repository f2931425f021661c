// Whether a CUDA device can be used, and which. Implemented by the CUDA
// backend (cuda/device.cu), or by host/no_cuda.cpp in a build without CUDA.
#pragma once

#include <cstdint>
#include <string>

namespace mlp {

struct CudaDeviceInfo {
    bool usable = false;
    int index = 0;
    std::string name;
    int cc_major = 0;
    int cc_minor = 0;
    uint64_t total_bytes = 0;
    std::string reason;  // why not usable

    // "cuda:0 NVIDIA H100 80GB HBM3 (compute capability 9.0, 79.1 GiB)"
    std::string describe() const;
};

CudaDeviceInfo probe_cuda_device();

// True in a build that has the CUDA backend compiled in.
bool built_with_cuda();

}  // namespace mlp
