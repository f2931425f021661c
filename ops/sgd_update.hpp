// SGD over the single flat parameter buffer, PyTorch's torch.optim.SGD rule
// (dampening 0) fused into one pass:
//   g = grad + weight_decay * p                   (L2, also on biases, as PyTorch)
//   b = momentum * b + g;  g = nesterov ? g + momentum * b : b    (momentum > 0)
//   p = p - lr * g
// The momentum buffer starts at zero, which makes the first step's b = g, the
// value PyTorch gives its first step; it is stored flushed to zero below
// FLT_MIN (flush_subnormal() says why). The learning rate is read from device
// memory, this step's entry of the per-step table (lr_address() in
// ops/optimizer_step.hpp), so a recorded epoch stays valid while a
// schedule changes it.
#pragma once

#include "ops/host_device.hpp"
#include "ops/optimizer_step.hpp"

namespace mlp {

struct SgdUpdateFunctor {
    float* params;
    const float* grads;
    const float* lr;  // one value
    // Nonzero: this step's update does nothing (ops/step_guard.hpp). Never
    // nullptr: a null test per element would keep the CPU loop scalar.
    const int32_t* skip;
    float* momentum_buffer = nullptr;  // [n_params]; nullptr: plain SGD
    float momentum = 0.0f;
    float weight_decay = 0.0f;
    bool nesterov = false;

    MLP_HD void operator()(int64_t i) const {
        // Selects, not branches, and unconditional stores (a skipped step
        // stores the old values): GCC vectorises no loop with control flow.
        const bool skipped = *skip != 0;
        const float p = params[i];
        float g = grads[i];
        g = weight_decay != 0.0f ? g + weight_decay * p : g;
        if (momentum_buffer) {
            const float b_old = momentum_buffer[i];
            const float b = flush_subnormal(momentum * b_old + g);
            momentum_buffer[i] = skipped ? b_old : b;
            g = nesterov ? g + momentum * b : b;
        }
        params[i] = skipped ? p : p - *lr * g;
    }
};

}  // namespace mlp
