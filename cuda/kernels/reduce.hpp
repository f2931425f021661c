// Launchers of the fused path's reductions (cuda/kernels/reduce.cu): host
// code may call them without nvcc. Each queues one kernel on `stream` for a
// batch of n_models models (grid.y = model), every model summed in the order
// it has alone, so model k of a batch repeats bit for bit what model k gives
// by itself, and a batch of one runs the single model's grid.
//
// The kernels that finish with the last block (grad_norm_guard,
// softmax_xent_bgrad) take device counters, one per model, that must be 0
// before the first launch; each launch leaves them 0, so a recorded graph
// replays them as is. Kernels sharing counters must not overlap.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "host/train/backend.hpp"
#include "ops/per_model.hpp"

namespace mlp {

// Per model: the step's squared gradient norm (g.sum's out) and the guard's
// status (ops/guard_status.hpp) from the sum of the batch's losses. Each
// model's parts hold one partial sum per block: at most g.norm.f.n_parts.
// d_counters: [n_models].
void launch_grad_norm_guard(uint32_t* d_counters, const GradNormGuardModels& g, int64_t n_models,
                            cudaStream_t stream);

// Per model: d_grad_bias[j] = sum over samples s of d_grad_z[s * n_out + j].
void launch_bias_grad(Strided<float> d_grad_bias, Strided<const float> d_grad_z, int64_t n_out,
                      int64_t n_batch, int64_t n_models, cudaStream_t stream);

// Per model: loss(s) for every sample, then the bias gradient of the logits'
// layer (the column sums of the logit gradient that loss writes in place).
// d_counters: [n_models].
void launch_softmax_xent_bgrad(Strided<float> d_grad_bias, uint32_t* d_counters,
                               const SoftmaxXentModels& loss, int64_t n_batch, int64_t n_models,
                               cudaStream_t stream);

}  // namespace mlp
