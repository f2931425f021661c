// ReLU backward, in place on the upstream gradient: dZ = dA * (A > 0).
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct ReluBackwardFunctor {
    float* grad;             // dA in, dZ out
    const float* activation; // A = relu(Z) of the forward pass

    // An unconditional store, so the CPU loop vectorizes: the compiler may not
    // add a store where the source makes one only sometimes.
    MLP_HD void operator()(int64_t i) const { grad[i] = activation[i] > 0.0f ? grad[i] : 0.0f; }
};

}  // namespace mlp
