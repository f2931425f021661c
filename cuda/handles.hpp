// Move-only RAII owners for the CUDA objects the backend holds: a stream, the
// cuBLAS handle, events and an instantiated graph. Destructors never throw.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <utility>

#include "cuda/check.hpp"

namespace mlp {

template <class Handle, class Traits>
class UniqueHandle {
public:
    UniqueHandle() = default;
    explicit UniqueHandle(Handle h) : h_(h) {}
    ~UniqueHandle() { reset(); }
    UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, Handle{})) {}
    UniqueHandle& operator=(UniqueHandle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, Handle{});
        }
        return *this;
    }
    UniqueHandle(const UniqueHandle&) = delete;
    UniqueHandle& operator=(const UniqueHandle&) = delete;

    Handle get() const { return h_; }
    explicit operator bool() const { return h_ != Handle{}; }
    void reset() {
        if (h_ != Handle{}) Traits::destroy(h_);
        h_ = Handle{};
    }

private:
    Handle h_{};
};

struct StreamTraits {
    static void destroy(cudaStream_t s) { cudaStreamDestroy(s); }
};
struct CublasTraits {
    static void destroy(cublasHandle_t h) { cublasDestroy(h); }
};
struct EventTraits {
    static void destroy(cudaEvent_t e) { cudaEventDestroy(e); }
};
struct GraphExecTraits {
    static void destroy(cudaGraphExec_t g) { cudaGraphExecDestroy(g); }
};
struct GraphTraits {
    static void destroy(cudaGraph_t g) { cudaGraphDestroy(g); }
};

using Stream = UniqueHandle<cudaStream_t, StreamTraits>;
using CublasHandle = UniqueHandle<cublasHandle_t, CublasTraits>;
using Event = UniqueHandle<cudaEvent_t, EventTraits>;
using GraphExec = UniqueHandle<cudaGraphExec_t, GraphExecTraits>;
using CudaGraph = UniqueHandle<cudaGraph_t, GraphTraits>;

inline Stream make_stream() {
    cudaStream_t s = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return Stream(s);
}

inline Event make_event() {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreate(&e));
    return Event(e);
}

}  // namespace mlp
