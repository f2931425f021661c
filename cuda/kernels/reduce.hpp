// Launchers of the fused path's reductions (cuda/kernels/reduce.cu): host
// code may call them without nvcc. Each queues one kernel on `stream`.
//
// The kernels that finish with the last block (grad_norm_guard,
// softmax_xent_bgrad) take a device counter that must be 0 before the first
// launch; each launch leaves it 0, so a recorded graph replays them as is.
// One counter per kernel, and kernels sharing a counter must not overlap.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/softmax_xent.hpp"

namespace mlp {

// The step's squared gradient norm into *d_grad_sq and the guard's status
// (ops/guard_status.hpp) from the sum of the batch's losses. d_parts holds
// one partial sum per block: at most max_blocks values.
void launch_grad_norm_guard(float* d_grad_sq, int32_t* d_guard, int8_t* d_status, float* d_parts,
                            uint32_t* d_counter, const float* d_grads, const float* d_sample_loss,
                            int64_t n_params, int64_t n_batch, int64_t max_blocks, int32_t step,
                            bool stop, cudaStream_t stream);

// d_grad_bias[j] = sum over samples s of d_grad_z[s * n_out + j].
void launch_bias_grad(float* d_grad_bias, const float* d_grad_z, int64_t n_out, int64_t n_batch,
                      cudaStream_t stream);

// loss(s) for every sample, then the bias gradient of the logits' layer (the
// column sums of the logit gradient that loss writes in place).
void launch_softmax_xent_bgrad(float* d_grad_bias, uint32_t* d_counter,
                               const SoftmaxXentFunctor& loss, int64_t n_batch,
                               cudaStream_t stream);

}  // namespace mlp
