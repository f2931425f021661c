// cuBLASLt GEMMs with epilogues for the fused path: bias, bias + ReLU keeping
// a ReLU bit mask, and the ReLU derivative from that mask with the bias
// gradient. Host code over the cuBLASLt API.
//
// A plan (descriptor, layouts, the heuristic's algorithm) is made once per
// shape, epilogue pointers and operand alignment, on first use, and reused on
// every later call: no heuristic query per call, and since the workspace is
// fixed, nothing is allocated while a graph is captured. A shape cuBLASLt
// has no algorithm for is remembered with the reason, and the caller runs the
// generic kernels instead.
//
// The heuristic's algorithm may still fail to run, and inside a graph
// capture a failed call cannot fall back. So a plan is made only outside a
// capture and run at once: failing there, it is dropped with its reason and
// the caller falls back, as for a shape without an algorithm. A GEMM without
// a plan while its stream is capturing answers false for that call (the
// recording gets the generic kernels); its plan is made at its next call
// outside a capture. Engine runs every pass once before recording it, so its
// recordings find every plan made.
//
// A batch of models runs as one strided-batched GEMM: model i's A, B, D, bias
// and ReLU mask start i strides after model 0's. A batch of one sets none of
// the batch attributes, so its plan is the single GEMM's.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "cuda/handles.hpp"
#include "host/train/backend.hpp"

namespace mlp {

struct LtHandleTraits {
    static void destroy(cublasLtHandle_t h) { cublasLtDestroy(h); }
};
struct LtMatmulDescTraits {
    static void destroy(cublasLtMatmulDesc_t d) { cublasLtMatmulDescDestroy(d); }
};
struct LtLayoutTraits {
    static void destroy(cublasLtMatrixLayout_t l) { cublasLtMatrixLayoutDestroy(l); }
};
struct LtPreferenceTraits {
    static void destroy(cublasLtMatmulPreference_t p) { cublasLtMatmulPreferenceDestroy(p); }
};

using LtHandle = UniqueHandle<cublasLtHandle_t, LtHandleTraits>;
using LtMatmulDesc = UniqueHandle<cublasLtMatmulDesc_t, LtMatmulDescTraits>;
using LtLayout = UniqueHandle<cublasLtMatrixLayout_t, LtLayoutTraits>;
using LtPreference = UniqueHandle<cublasLtMatmulPreference_t, LtPreferenceTraits>;

enum class LtEpilogue {
    bias,           // D = op(A) op(B) + bias (per row of D)
    relu_aux_bias,  // D = relu(op(A) op(B) + bias); aux = the bit mask D > 0
    drelu_bgrad,    // D = op(A) op(B) * mask(aux); bias = row sums of D
};

const char* to_string(LtEpilogue e);

// ReLU bit masks hold one bit per element, columns aux_ld bits apart;
// cuBLASLt wants aux_ld a multiple of 128 and at least the rows of D.
int64_t relu_mask_ld(int64_t n_rows);

// One column-major GEMM D (m x n) = op(A) op(B) with its epilogue, for each
// of batch_count models. D, the bias and the accumulation are fp32; A and B
// are fp32, or bf16 bit patterns (ops/bf16_cast.hpp) with `bf16` set.
struct LtGemm {
    LtEpilogue epilogue;
    Trans ta, tb;
    int64_t m, n, k, lda, ldb, ldd;
    float* d;
    const void* a;
    const void* b;
    void* bias;  // read by bias and relu_aux_bias, written by drelu_bgrad
    void* aux;   // the ReLU mask: written by relu_aux_bias, read by drelu_bgrad
    int64_t aux_ld;
    bool bf16 = false;  // A and B are bf16 (CUDA_R_16BF)
    // The batch: strides in elements of each operand (bf16 copies keep the
    // fp32 strides), the mask's in bytes; read only when batch_count > 1.
    int64_t batch_count = 1;
    int64_t stride_a = 0, stride_b = 0, stride_d = 0, stride_bias = 0, stride_aux_bytes = 0;
};

class LtMatmul {
public:
    // The workspace is the caller's, used on the stream of every run().
    LtMatmul(void* d_workspace, size_t workspace_bytes);
    LtMatmul(const LtMatmul&) = delete;
    LtMatmul& operator=(const LtMatmul&) = delete;
    ~LtMatmul();

    // TF32 tensor-core math (CUBLAS_COMPUTE_32F_FAST_TF32) for plans made from now on.
    void set_tf32(bool tf32) { tf32_ = tf32; }

    // Queues the GEMM on `stream` and returns true; or returns false and says
    // why in *why when cuBLASLt cannot run it (no algorithm, a failed call
    // outside a capture, or no plan yet while `stream` is capturing); the
    // caller then runs the generic kernels, which overwrite whatever a failed
    // call wrote.
    bool run(const LtGemm& g, cudaStream_t stream, std::string* why);

    int64_t n_plans() const { return int64_t(plans_.size()); }

private:
    struct Plan;
    using Key = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           uint32_t, uint32_t, uint32_t, const void*, const void*, int64_t, bool,
                           bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
    std::unique_ptr<Plan> make_plan(const LtGemm& g) const;

    LtHandle handle_;
    void* d_workspace_;
    size_t workspace_bytes_;
    bool tf32_ = false;
    std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace mlp
