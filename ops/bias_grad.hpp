// Bias gradient: db[j] = sum over the batch of dZ[s, j]. One call per output
// feature sums its n_batch values in sample order, so the result does not
// depend on the thread count (bit-reproducible on every backend).
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct BiasGradFunctor {
    float* grad_bias;        // [n_out]
    const float* grad_z;     // [n_batch * n_out]
    int64_t n_out;
    int64_t n_batch;

    MLP_HD void operator()(int64_t j) const {
        float sum = 0.0f;
        for (int64_t s = 0; s < n_batch; ++s) sum += grad_z[s * n_out + j];
        grad_bias[j] = sum;
    }
};

}  // namespace mlp
