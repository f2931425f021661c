// Move-only owner of device memory. Allocation failures name the size asked
// for and what the device had free, so an out-of-memory report is actionable.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <utility>

#include "cuda/check.hpp"

namespace mlp {

// cudaMalloc with an error that states the request; throws CudaError.
void* device_alloc(size_t n_bytes);

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(int64_t n)
        : data_(static_cast<T*>(device_alloc(size_t(n) * sizeof(T)))), size_(n) {}
    ~DeviceBuffer() {
        if (data_) cudaFree(data_);  // never throws; an error here has nowhere to go
    }
    DeviceBuffer(DeviceBuffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
        if (this != &other) {
            if (data_) cudaFree(data_);
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    T* data() const { return data_; }
    int64_t size() const { return size_; }

private:
    T* data_ = nullptr;
    int64_t size_ = 0;
};

}  // namespace mlp
