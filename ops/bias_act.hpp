// Forward epilogue of a linear layer: z += bias, then the hidden layers' activation
// (ops/activation.hpp; identity for the output layer). Applied in place on the GEMM output,
// so a hidden layer keeps only its activation A = act(Z), from which every activation's
// derivative is computed (ReLU's A > 0 equals Z > 0).
#pragma once

#include "ops/activation.hpp"
#include "ops/host_device.hpp"

namespace mlp {

struct BiasActFunctor {
    float* z;            // [n_batch * n_out], sample-contiguous
    const float* bias;   // [n_out]
    int64_t n_out;
    Activation act;  // identity: the logits

    // Sample s, output j; run by Backend::for_each_2d with j as the inner loop.
    MLP_HD void operator()(int64_t s, int64_t j) const {
        const int64_t i = s * n_out + j;
        const float v = z[i] + bias[j];
        // ReLU and identity, the common cases, as one select the CPU vectorises.
        if (act == Activation::relu || act == Activation::identity) {
            z[i] = (act == Activation::relu && v <= 0.0f) ? 0.0f : v;
        } else {
            z[i] = activate(act, v);
        }
    }

    MLP_HD void operator()(int64_t i) const {
        const int64_t s = i / n_out;
        (*this)(s, i - s * n_out);
    }
};

}  // namespace mlp
