// ReLU backward, in place on the upstream gradient: dZ = dA * (A > 0), as
// PyTorch's threshold_backward writes it (A <= 0 ? 0 : dA), so a NaN
// activation passes the gradient through instead of masking it.
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct ReluBackwardFunctor {
    float* grad;             // dA in, dZ out
    const float* activation; // A = relu(Z) of the forward pass

    // An unconditional store, so the CPU loop vectorizes: the compiler may not
    // add a store where the source makes one only sometimes.
    MLP_HD void operator()(int64_t i) const { grad[i] = activation[i] <= 0.0f ? 0.0f : grad[i]; }
};

}  // namespace mlp
