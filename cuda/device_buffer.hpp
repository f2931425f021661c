// Move-only owner of device memory. Allocation failures name the size asked
// for and what the device had free, so an out-of-memory report is actionable.
// A buffer allocates on the thread's current device (CudaBackend::alloc makes
// that the backend's) and remembers it, so it is freed there whatever device
// is current when it goes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <utility>

#include "cuda/check.hpp"

namespace mlp {

// cudaMalloc on the current device with an error that states the request;
// throws CudaError.
void* device_alloc(size_t n_bytes);
// The device an allocation of n_bytes lands on, the current one (0 where n_bytes is 0:
// nothing is allocated then, and no CUDA call is made).
int allocation_device(size_t n_bytes);
// cudaFree with `device` current for the call; never throws (an error here
// has nowhere to go).
void device_free(void* p, int device) noexcept;

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(int64_t n)
        : device_(allocation_device(size_t(n) * sizeof(T))),
          data_(static_cast<T*>(device_alloc(size_t(n) * sizeof(T)))),
          size_(n) {}
    ~DeviceBuffer() {
        if (data_) device_free(data_, device_);
    }
    DeviceBuffer(DeviceBuffer&& other) noexcept
        : device_(other.device_),
          data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
        if (this != &other) {
            if (data_) device_free(data_, device_);
            device_ = other.device_;
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    T* data() const { return data_; }
    int64_t size() const { return size_; }
    int device() const { return device_; }

private:
    int device_ = 0;  // where data_ was allocated
    T* data_ = nullptr;
    int64_t size_ = 0;
};

}  // namespace mlp
