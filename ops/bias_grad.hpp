// Bias gradient: db[j] = sum over the batch of dZ[s, j]. One call per output
// feature sums its n_batch values in sample order, so the result does not
// depend on the thread count (bit-reproducible on every backend).
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct BiasGradFunctor {
    float* grad_bias;     // [n_out]
    const float* grad_z;  // [n_batch * n_out]
    int64_t n_out;
    int64_t n_batch;

    MLP_HD void operator()(int64_t j) const {
        float sum = 0.0f;
        for (int64_t s = 0; s < n_batch; ++s) sum += grad_z[s * n_out + j];
        grad_bias[j] = sum;
    }

    // The sums of outputs [j_begin, j_end), walking dZ row by row: the same float
    // additions in the same sample order as operator()(j) for each j, so the same
    // bits, with an inner loop over contiguous j that the CPU vectorises (a column
    // walk strides n_out floats per sample and reads each cache line n_out / 16
    // times). The CPU backend's order; a GPU thread per j reads a warp's j side by
    // side, so the column walk suits it.
    MLP_HD void sum_rows(int64_t j_begin, int64_t j_end) const {
        float* __restrict__ out = grad_bias;
        const float* __restrict__ in = grad_z;
        for (int64_t j = j_begin; j < j_end; ++j) out[j] = 0.0f;
        for (int64_t s = 0; s < n_batch; ++s) {
            const float* row = in + s * n_out;
            for (int64_t j = j_begin; j < j_end; ++j) out[j] += row[j];
        }
    }
};

}  // namespace mlp
