// Forward epilogue of a linear layer: z += bias, then ReLU for hidden layers.
// Applied in place on the GEMM output, so a hidden layer keeps only its
// activation A = relu(Z); ReLU backward needs only A > 0, which equals Z > 0.
#pragma once

#include "cuda/ops/hd.hpp"

namespace mlp {

struct BiasActFunctor {
    float* z;            // [n_batch * n_out], sample-contiguous
    const float* bias;   // [n_out]
    int64_t n_out;
    bool relu;

    MLP_HD void operator()(int64_t i) const {
        const float v = z[i] + bias[i % n_out];
        z[i] = (relu && !(v > 0.0f)) ? 0.0f : v;
    }
};

}  // namespace mlp
