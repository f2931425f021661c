// Batch gather: the data set lives on the device as bytes; each step reads its
// samples through the epoch permutation and widens them to float in [0, 1].
// Samples are contiguous (column-major "features x batch"), so thread i reads
// byte (perm[first + i / n_features], i % n_features): consecutive threads read
// consecutive bytes of one image.
#pragma once

#include "cuda/ops/hd.hpp"

namespace mlp {

struct GatherFunctor {
    float* x;                // [n_batch * n_features]
    const uint8_t* images;   // [n_samples * n_features]
    const int32_t* perm;     // epoch order (or identity for evaluation)
    int64_t first;           // position of the batch's first sample in perm
    int64_t n_features;

    MLP_HD void operator()(int64_t i) const {
        const int64_t s = i / n_features;
        const int64_t f = i - s * n_features;
        const int64_t src = int64_t(perm[first + s]) * n_features + f;
        x[i] = float(images[src]) * (1.0f / 255.0f);
    }
};

}  // namespace mlp
