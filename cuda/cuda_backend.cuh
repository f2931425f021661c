// CUDA backend: one non-blocking stream, cuBLAS SGEMMs on it, the generic
// functor launcher, and CUDA-graph recording of whole passes. Implements the
// interface documented in host/train/backend.hpp; compiled by nvcc only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <string>

#include "cuda/check.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/for_each.cuh"
#include "cuda/handles.hpp"
#include "host/train/backend.hpp"

namespace mlp {

class CudaBackend {
public:
    template <class T>
    using Buffer = DeviceBuffer<T>;

    // One instantiated graph per key, so switching keys (shifts on and off)
    // replays instead of recording afresh.
    struct Graph {
        std::map<int64_t, GraphExec> execs;
    };

    explicit CudaBackend(int device = 0);
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    template <class T>
    Buffer<T> alloc(int64_t n) {
        return Buffer<T>(n);
    }
    template <class T>
    void copy_to_device(T* dst, const T* h_src, int64_t n) {
        // From pageable memory the copy is staged before the call returns,
        // so h_src may be reused at once.
        if (n > 0) {
            CUDA_CHECK(cudaMemcpyAsync(dst, h_src, size_t(n) * sizeof(T), cudaMemcpyHostToDevice,
                                       stream_.get()));
        }
    }
    template <class T>
    void copy_to_host(T* h_dst, const T* src, int64_t n) {
        if (n <= 0) return;
        CUDA_CHECK(cudaMemcpyAsync(h_dst, src, size_t(n) * sizeof(T), cudaMemcpyDeviceToHost,
                                   stream_.get()));
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    }

    void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* c, int64_t ldc);

    template <class F>
    void for_each(int64_t n, const F& f) {
        launch_for_each(n, f, max_blocks_, stream_.get());
    }
    // One thread per element, as for_each; the row and column come from the
    // flat index (the grid-stride loop keeps consecutive threads on one row).
    template <class F>
    void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f) {
        launch_for_each(n_rows * n_cols, RowColumn<F>{f, n_cols}, max_blocks_, stream_.get());
    }

    // Records body's launches into a graph on the first call with a key,
    // then replays that key's graph.
    template <class Body>
    void run_graph(Graph& graph, int64_t key, Body&& body) {
        auto found = graph.execs.find(key);
        if (found == graph.execs.end()) {
            begin_capture();
            try {
                body();
            } catch (...) {
                abort_capture();
                throw;
            }
            found = graph.execs.emplace(key, end_capture()).first;
        }
        CUDA_CHECK(cudaGraphLaunch(found->second.get(), stream_.get()));
    }

    void synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

    // Events on the stream time the device's work, not the host's queueing;
    // waits for body's work to finish.
    template <class Body>
    double time_seconds(Body&& body) {
        const Event start = make_event(), stop = make_event();
        CUDA_CHECK(cudaEventRecord(start.get(), stream_.get()));
        body();
        CUDA_CHECK(cudaEventRecord(stop.get(), stream_.get()));
        CUDA_CHECK(cudaEventSynchronize(stop.get()));
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
        return double(ms) * 1e-3;
    }

    cudaStream_t stream() const { return stream_.get(); }
    const std::string& device_name() const { return name_; }

private:
    void begin_capture();
    void abort_capture();
    GraphExec end_capture();

    int device_ = 0;
    int max_blocks_ = 0;
    std::string name_;
    Stream stream_;
    CublasHandle cublas_;
    DeviceBuffer<uint8_t> cublas_workspace_;
};

static_assert(check_backend<CudaBackend>(), "CudaBackend must meet host/train/backend.hpp");

}  // namespace mlp
