// CUDA backend: one non-blocking stream, cuBLAS SGEMMs on it (with bf16, the
// operands cast to bf16 first and cublasGemmEx accumulating in fp32), the generic
// functor launcher, and CUDA-graph recording of whole passes; for the fused
// path also cuBLASLt epilogues, the reductions of cuda/kernels/ and a side
// stream for the weight gradients. Implements the
// interface documented in host/train/backend.hpp; compiled by nvcc only.
//
// The backend owns its device: every entry point that touches it makes it the
// thread's current device for the call (DeviceGuard) and restores the caller's,
// so backends on different GPUs can be used from one thread, and buffers from
// alloc() land on the backend's device.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/device_guard.hpp"
#include "cuda/for_each.cuh"
#include "cuda/handles.hpp"
#include "cuda/lt_matmul.hpp"
#include "host/config/kernel_options.hpp"
#include "host/train/backend.hpp"
#include "ops/per_model.hpp"

namespace mlp {

class CudaBackend {
public:
    template <class T>
    using Buffer = DeviceBuffer<T>;

    // One instantiated graph per key, so switching keys (shifts on and off)
    // replays instead of recording afresh.
    struct Graph {
        std::map<int64_t, GraphExec> execs;
        std::map<int64_t, int64_t> nodes;  // of each key's graph: kernels, cuBLAS's included

        int64_t n_nodes(int64_t key) const {
            const auto found = nodes.find(key);
            return found == nodes.end() ? 0 : found->second;
        }
    };

    explicit CudaBackend(int device = 0);
    // Releases the streams, handles and buffers on the backend's device.
    ~CudaBackend();
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    template <class T>
    Buffer<T> alloc(int64_t n) {
        const DeviceGuard on(device_);
        return Buffer<T>(n);
    }
    template <class T>
    void copy_to_device(T* dst, const T* h_src, int64_t n) {
        // From pageable memory the copy is staged before the call returns,
        // so h_src may be reused at once.
        if (n <= 0) return;
        const DeviceGuard on(device_);
        CUDA_CHECK(cudaMemcpyAsync(dst, h_src, size_t(n) * sizeof(T), cudaMemcpyHostToDevice,
                                   stream_.get()));
    }
    template <class T>
    void copy_to_host(T* h_dst, const T* src, int64_t n) {
        if (n <= 0) return;
        const DeviceGuard on(device_);
        CUDA_CHECK(cudaMemcpyAsync(h_dst, src, size_t(n) * sizeof(T), cudaMemcpyDeviceToHost,
                                   stream_.get()));
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    }

    void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* c, int64_t ldc);
    // One cublasSgemmStridedBatched (with bf16, the operands' whole strided
    // spans cast first, then cublasGemmStridedBatchedEx): one launch for every
    // model of a batch. A batch of one runs gemm()'s call, so a single model
    // gets the same kernels either way.
    void gemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                      int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                      float* c, int64_t ldc, int64_t stride_c, int64_t n_models);
    // With bf16, allocates the scratch the operand casts write (main stream
    // and side stream each their own), n_a and n_b values; the Engine calls it
    // after set_precision with its largest operands. A GEMM that outgrows it
    // grows it outside a capture, until a graph has been recorded on this
    // backend (the graph keeps casting into it); inside a capture, or once a
    // graph exists, that is an Error naming the sizes.
    void reserve_gemm_operands(int64_t n_a, int64_t n_b);

    template <class F>
    void for_each(int64_t n, const F& f) {
        const DeviceGuard on(device_);
        launch_for_each(n, f, max_blocks_, stream_.get());
    }
    // One thread per element, as for_each; the row and column come from the
    // flat index (the grid-stride loop keeps consecutive threads on one row).
    template <class F>
    void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f) {
        const DeviceGuard on(device_);
        launch_for_each(n_rows * n_cols, RowColumn<F>{f, n_cols}, max_blocks_, stream_.get());
    }

    // Records body's launches into a graph on the first call with a key,
    // then replays that key's graph.
    template <class Body>
    void run_graph(Graph& graph, int64_t key, Body&& body) {
        const DeviceGuard on(device_);
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
            graph.nodes[key] = last_nodes_.total;
        }
        CUDA_CHECK(cudaGraphLaunch(found->second.get(), stream_.get()));
    }

    void synchronize() {
        const DeviceGuard on(device_);
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    }

    // Events on the stream time the device's work, not the host's queueing;
    // waits for body's work to finish.
    template <class Body>
    double time_seconds(Body&& body) {
        const DeviceGuard on(device_);
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
    int device() const { return device_; }
    const std::string& device_name() const { return name_; }

    // The fused path's operations, each over a batch of n_models models;
    // host/cpu/cpu_fused_ops.hpp defines what each computes, and the CPU
    // backend's versions are their oracle. Defined in cuda_backend.cu over
    // cuBLASLt (strided-batch layouts when n_models > 1) and
    // cuda/kernels/reduce.cu. A batch of one runs the single model's launches.
    void set_precision(Precision precision);
    // The reductions' last-block counters for n_models models; called before
    // any recording, since nothing may be allocated during one. A batch of
    // one needs no call.
    void reserve_batch(int64_t n_models);
    // Bytes of a ReLU bit mask for n_rows x n_cols activations (cuBLASLt's layout).
    int64_t relu_mask_bytes(int64_t n_rows, int64_t n_cols) const;
    void gemm_bias_act(Strided<float> z, Strided<uint8_t> relu_mask, Strided<const float> w,
                       Strided<const float> x, Strided<const float> bias, bool relu, int64_t n_out,
                       int64_t n_batch, int64_t n_in, int64_t n_models);
    void gemm_drelu_bgrad(Strided<float> grad_in, Strided<float> grad_bias_in,
                          Strided<const float> w, Strided<const float> grad_z,
                          Strided<const float> activation_in, Strided<const uint8_t> relu_mask_in,
                          int64_t n_in, int64_t n_batch, int64_t n_out, int64_t n_models);
    // On a side stream forked from the main one; join_side() joins it back.
    void weight_grad(Strided<float> grad_w, Strided<const float> x, Strided<const float> grad_z,
                     int64_t n_in, int64_t n_out, int64_t n_batch, int64_t n_models);
    void join_side();
    void bias_grad(Strided<float> grad_bias, Strided<const float> grad_z, int64_t n_out,
                   int64_t n_batch, int64_t n_models);
    void softmax_xent_bgrad(Strided<float> grad_bias, const SoftmaxXentModels& loss,
                            int64_t n_batch, int64_t n_models);
    void grad_norm_guard(const GradNormGuardModels& g, int64_t n_models);
    // Why a fused operation ran the generic kernels instead, once per reason.
    const std::vector<std::string>& fused_fallbacks() const { return fallbacks_; }

    // Nodes of the graph recorded last (all, and kernels: GEMMs count their
    // own kernels), for the node counts per step that benchmarks report.
    struct GraphNodes {
        int64_t total = 0;
        int64_t kernels = 0;
    };
    GraphNodes last_recorded_nodes() const { return last_nodes_; }

private:
    // The bf16 copies of a GEMM's two operands, one pair per stream.
    struct Bf16Operands {
        DeviceBuffer<uint16_t> a, b;
    };
    struct CastOperands {
        const void* a;
        const void* b;
    };
    // Casts A and B (the ld x columns spans of n_models models, stride_a and
    // stride_b apart) into `scratch` on `stream`; the copies keep the strides.
    CastOperands cast_operands(Bf16Operands& scratch, cudaStream_t stream, Trans ta, Trans tb,
                               int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                               int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                               int64_t n_models);
    const uint16_t* cast_operand(DeviceBuffer<uint16_t>& scratch, cudaStream_t stream,
                                 const float* src, int64_t n_values);
    // Per model, C = op(A) op(B) on `handle` (bound to `stream`) in the set
    // precision; a batch of one is the single GEMM.
    void gemm_on(cublasHandle_t handle, cudaStream_t stream, Bf16Operands& scratch, Trans ta,
                 Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float* c,
                 int64_t ldc, int64_t stride_c, int64_t n_models);
    // Reallocates to n_values when smaller, after both streams are done with it; refused once
    // a graph has been recorded (it keeps casting into the old scratch).
    void grow_operand(DeviceBuffer<uint16_t>& scratch, int64_t n_values);
    bool bf16() const { return precision_ == Precision::bf16; }
    void note_fallback(const std::string& why);
    // The last-block counters of one reduction's launch for n_models models,
    // which reserve_batch must have made room for.
    enum class Reduction { grad_norm_guard, softmax_xent_bgrad };
    uint32_t* counters(Reduction reduction, int64_t n_models);
    void begin_capture();
    void abort_capture();
    GraphExec end_capture();

    // Declared first, so destroyed last: the constructor and the destructor make device_
    // current while the members are made and released, and leave here the caller's device,
    // restored after the last member (on an exception from the constructor too).
    struct RestoreDevice {
        int previous = -1;  // -1: nothing to restore
        ~RestoreDevice() {
            if (previous >= 0) (void)cudaSetDevice(previous);  // a destructor cannot report
        }
    };
    RestoreDevice restore_device_;
    int device_ = 0;
    int max_blocks_ = 0;
    std::string name_;
    Stream stream_;
    CublasHandle cublas_;
    DeviceBuffer<uint8_t> cublas_workspace_;

    // bf16: the operand casts' scratch, the main stream's and the side stream's.
    int64_t reserved_a_ = 0, reserved_b_ = 0;  // reserve_gemm_operands' sizes
    Bf16Operands main_operands_, side_operands_;

    // The fused path. The side stream has its own cuBLAS handle and
    // workspace: its GEMMs may run while the main stream's do.
    Precision precision_ = Precision::fp32;
    Stream side_stream_;
    CublasHandle side_cublas_;
    DeviceBuffer<uint8_t> side_workspace_;
    Event fork_, join_;
    bool side_pending_ = false;
    bool recorded_ = false;         // a graph was recorded: the bf16 scratch may no longer move
    std::unique_ptr<LtMatmul> lt_;  // shares cublas_workspace_: both run on stream_ only
    // Last-block counters, 0 between launches: grad_norm_guard's for each
    // reserved model, then softmax_xent_bgrad's.
    DeviceBuffer<uint32_t> counters_;
    int64_t counter_models_ = 0;
    // Whether the last forward that wrote a mask wrote it through cuBLASLt
    // (else the backward reads the activation), in the order calls were made.
    std::unordered_map<const void*, bool> mask_written_;
    std::vector<std::string> fallbacks_;
    GraphNodes last_nodes_;
};

static_assert(check_backend<CudaBackend>(), "CudaBackend must meet host/train/backend.hpp");

}  // namespace mlp
