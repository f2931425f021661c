// Forward epilogue of a linear layer: z += bias, then ReLU for hidden layers.
// Applied in place on the GEMM output, so a hidden layer keeps only its
// activation A = relu(Z); ReLU backward needs only A > 0, which equals Z > 0.
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct BiasActFunctor {
    float* z;            // [n_batch * n_out], sample-contiguous
    const float* bias;   // [n_out]
    int64_t n_out;
    bool relu;

    // Sample s, output j; run by Backend::for_each_2d with j as the inner loop.
    MLP_HD void operator()(int64_t s, int64_t j) const {
        const int64_t i = s * n_out + j;
        const float v = z[i] + bias[j];
        // v <= 0, not !(v > 0): a NaN stays NaN, as in PyTorch, so the
        // non-finite guard sees it instead of a silently dead unit.
        z[i] = (relu && v <= 0.0f) ? 0.0f : v;
    }

    MLP_HD void operator()(int64_t i) const {
        const int64_t s = i / n_out;
        (*this)(s, i - s * n_out);
    }
};

}  // namespace mlp
