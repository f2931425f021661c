// Adam and AdamW over the single flat parameter buffer, PyTorch's
// torch.optim.Adam / AdamW rule (amsgrad off) fused into one pass:
//   Adam:  g = grad + weight_decay * p            (L2 in the gradient)
//   AdamW: p = p * (1 - lr * weight_decay)        (decoupled decay)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The step-dependent factors come from this step's entry of the device-side
// table (cuda/ops/optimizer_step.hpp), and 1 - beta comes precomputed: the host
// computes both in double and rounds once, as PyTorch does with its Python
// floats (1.0f - 0.999f would be off by 1e-5 relative). Decay applies to
// biases too, as it does in PyTorch by default. m and v are stored flushed to
// zero below FLT_MIN (flush_subnormal() says why).
#pragma once

#include <cmath>

#include "ops/host_device.hpp"
#include "ops/optimizer_step.hpp"

namespace mlp {

struct AdamUpdateFunctor {
    float* params;
    const float* grads;
    float* exp_avg;     // m, [n_params], starts at zero
    float* exp_avg_sq;  // v, [n_params], starts at zero
    const OptimizerStep* step;
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    float eps;
    float weight_decay;
    bool decoupled;  // AdamW
    // Nonzero: this step's update does nothing (cuda/ops/step_guard.hpp); nullptr: none.
    const int32_t* skip = nullptr;

    MLP_HD void operator()(int64_t i) const {
        if (skip && *skip) return;
        float p = params[i];
        float g = grads[i];
        if (decoupled) {
            p *= step->decay;
        } else if (weight_decay != 0.0f) {
            g += weight_decay * p;
        }
        // PyTorch's lerp form of beta1 * m + (1 - beta1) * g.
        const float m = flush_subnormal(exp_avg[i] + one_minus_beta1 * (g - exp_avg[i]));
        const float v = flush_subnormal(beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        const float denom = sqrtf(v) / step->bias_correction2_sqrt + eps;
        params[i] = p - step->step_size * (m / denom);
    }
};

}  // namespace mlp
