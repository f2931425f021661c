// SGD over the single flat parameter buffer, PyTorch's torch.optim.SGD rule
// (dampening 0) fused into one pass:
//   g = grad + weight_decay * p                   (L2, also on biases, as PyTorch)
//   b = momentum * b + g;  g = nesterov ? g + momentum * b : b    (momentum > 0)
//   p = p - lr * g
// The momentum buffer starts at zero, which makes the first step's b = g, the
// value PyTorch gives its first step; it is stored flushed to zero below
// FLT_MIN (flush_subnormal() says why). The learning rate is read from device
// memory, this step's entry of the per-step table (lr_address() in
// cuda/ops/optimizer_step.hpp), so a recorded epoch stays valid while a
// schedule changes it.
#pragma once

#include "ops/host_device.hpp"
#include "ops/optimizer_step.hpp"

namespace mlp {

struct SgdUpdateFunctor {
    float* params;
    const float* grads;
    const float* lr;                   // one value
    float* momentum_buffer = nullptr;  // [n_params]; nullptr: plain SGD
    float momentum = 0.0f;
    float weight_decay = 0.0f;
    bool nesterov = false;
    // Nonzero: this step's update does nothing (cuda/ops/step_guard.hpp); nullptr: none.
    const int32_t* skip = nullptr;

    MLP_HD void operator()(int64_t i) const {
        if (skip && *skip) return;
        const float p = params[i];
        float g = grads[i];
        if (weight_decay != 0.0f) g += weight_decay * p;
        if (momentum_buffer) {
            const float b = flush_subnormal(momentum * momentum_buffer[i] + g);
            momentum_buffer[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        params[i] = p - *lr * g;
    }
};

}  // namespace mlp
