#include "host/cuda_device.hpp"

#include <cstdio>

namespace mlp {

std::string CudaDeviceInfo::describe() const {
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", double(total_bytes) / double(1ull << 30));
    return "cuda:" + std::to_string(index) + " " + name + " (compute capability " +
           std::to_string(cc_major) + "." + std::to_string(cc_minor) + ", " + mem + ")";
}

}  // namespace mlp
