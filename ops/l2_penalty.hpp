// scikit-learn's alpha: the gradient of the penalty alpha / 2 * ||W||^2 per sample, added to
// a weight matrix's gradient of the batch's mean loss as grad += (alpha / batch) * W, which is
// scikit-learn's (sum of the samples' gradients + alpha * W) / batch up to rounding. Biases
// carry no penalty, so the engine runs it over each layer's weights alone.
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct L2PenaltyFunctor {
    float* grad;         // a weight matrix's gradient
    const float* param;  // the weight matrix
    float scale;         // alpha / batch size

    MLP_HD void operator()(int64_t i) const { grad[i] += scale * param[i]; }
};

}  // namespace mlp
