// Squared L2 norm of the flat gradient, in two passes with a fixed summation
// order, so the reported gradient norm is the same on every run and backend
// and needs no atomics: part j sums its contiguous chunk of x with eight
// running sums, then a single call adds the parts and writes the step's entry
// of an epoch-long buffer, read back once per epoch with the loss. Eight
// independent sums keep the additions from waiting on each other (and let the
// host compiler vectorise them): one running sum made the CPU epoch 25% slower.
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct SquaredNormPartsFunctor {
    float* parts;  // [n_parts]
    const float* x;
    int64_t n;
    int64_t n_parts;

    MLP_HD void operator()(int64_t j) const {
        const int64_t chunk = ceil_div(n, n_parts);
        const int64_t begin = j * chunk;
        const int64_t end = begin + chunk < n ? begin + chunk : n;
        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        int64_t i = begin;
        for (; i + 8 <= end; i += 8) {
            for (int k = 0; k < 8; ++k) acc[k] += x[i + k] * x[i + k];
        }
        for (; i < end; ++i) acc[0] += x[i] * x[i];
        parts[j] =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
};

// Run over a range of one.
struct SumPartsFunctor {
    float* out;  // one value
    const float* parts;
    int64_t n_parts;

    MLP_HD void operator()(int64_t) const {
        float sum = 0.0f;
        for (int64_t j = 0; j < n_parts; ++j) sum += parts[j];
        *out = sum;
    }
};

}  // namespace mlp
