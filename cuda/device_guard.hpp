// The calling thread's current CUDA device, set for a scope. Allocations, streams, events,
// cuBLAS handles and launches all use the thread's current device, so an object that owns
// device resources selects its own device at each entry point: two backends on two GPUs in
// one thread then never cross, whatever device the caller left current. Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/check.hpp"

namespace mlp {

// Makes `device` current until the guard goes out of scope, then restores the device that
// was current before. cudaSetDevice runs only where the two differ, so the usual case (one
// GPU, or the caller already on it) costs one cudaGetDevice.
class DeviceGuard {
public:
    explicit DeviceGuard(int device) {
        CUDA_CHECK(cudaGetDevice(&previous_));
        if (previous_ != device) {
            CUDA_CHECK(cudaSetDevice(device));
            switched_ = true;
        }
    }
    // Never throws: a failure to switch back has nowhere to go from a destructor, and the next
    // checked call on this thread reports the device's state.
    ~DeviceGuard() {
        if (switched_) (void)cudaSetDevice(previous_);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = 0;
    bool switched_ = false;
};

}  // namespace mlp
