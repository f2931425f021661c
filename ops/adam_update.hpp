// Adam and AdamW over the single flat parameter buffer, PyTorch's
// torch.optim.Adam / AdamW rule (amsgrad off) fused into one pass:
//   Adam:  g = grad + weight_decay * p            (L2 in the gradient)
//   AdamW: p = p * (1 - lr * weight_decay)        (decoupled decay)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The step-dependent factors come from this step's entry of the device-side
// table (ops/optimizer_step.hpp), and 1 - beta comes precomputed: the host
// computes both in double and rounds once, as PyTorch does with its Python
// floats (1.0f - 0.999f would be off by 1e-5 relative). Decay applies to
// biases too, as it does in PyTorch by default. m and v are stored flushed to
// zero below FLT_MIN (flush_subnormal() says why).
//
// The CPU backend's loop over this functor vectorises only where sqrtf need
// not set errno: host/cpu is compiled with -fno-math-errno, which changes no
// result (sqrt is exact either way), only the errno side effect.
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
    // Nonzero: this step's update does nothing (ops/step_guard.hpp). Never
    // nullptr: a null test per element would keep the CPU loop scalar.
    const int32_t* skip;
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    float eps;
    float weight_decay;
    bool decoupled;  // AdamW

    MLP_HD void operator()(int64_t i) const {
        // Selects, not branches, and unconditional stores (a skipped step
        // stores the old values): GCC vectorises no loop with control flow.
        const bool skipped = *skip != 0;
        const float p_old = params[i];
        const float m_old = exp_avg[i];
        const float v_old = exp_avg_sq[i];
        float g = grads[i];
        const float p = decoupled ? p_old * step->decay : p_old;
        g = !decoupled && weight_decay != 0.0f ? g + weight_decay * p_old : g;
        // PyTorch's lerp form of beta1 * m + (1 - beta1) * g.
        const float m = flush_subnormal(m_old + one_minus_beta1 * (g - m_old));
        const float v = flush_subnormal(beta2 * v_old + one_minus_beta2 * g * g);
        exp_avg[i] = skipped ? m_old : m;
        exp_avg_sq[i] = skipped ? v_old : v;
        const float denom = sqrtf(v) / step->bias_correction2_sqrt + eps;
        params[i] = skipped ? p_old : p - step->step_size * (m / denom);
    }
};

}  // namespace mlp
