// Batch gather: the data set lives on the device, as bytes (images, widened to float in
// [0, 1]) or as float32 features (tabular data or images scaled by the caller, read as they
// are); each step reads its samples through the epoch permutation.
// Samples are contiguous (column-major "features x batch"), so thread i reads
// byte (perm[first + i / n_features], i % n_features): consecutive threads read
// consecutive bytes of one image.
//
// Augmentation: with a shift table, the sample at position q of the epoch
// order is translated by (dx, dy) = (shifts[2q], shifts[2q + 1]) pixels, right
// and down for positive values; pixels shifted in from outside are 0. The
// table is drawn on the host per epoch (host/base/rng.hpp) and uploaded with the
// order, so a recorded epoch replays with new shifts.
#pragma once

#include "ops/host_device.hpp"

namespace mlp {

struct GatherFunctor {
    float* x;                // [n_batch * n_features]
    const uint8_t* images;   // [n_samples * n_features]; unread when `features` is set
    const int32_t* perm;     // epoch order (or identity for evaluation)
    int64_t first;           // position of the batch's first sample in perm
    int64_t n_features;
    const int8_t* shifts = nullptr;  // [2 * epoch size] (dx, dy) per position; nullptr: none
    int n_rows = 0;                  // image size, read only with shifts
    int n_cols = 0;
    const float* features = nullptr;  // [n_samples * n_features], float32 data; nullptr: images

    // Sample s of the batch, feature f. Backend::for_each_2d runs f as the
    // inner loop; the unshifted path reads images[base + f], an address affine in f,
    // so the CPU vectorizes it with no per-element division.
    MLP_HD void operator()(int64_t s, int64_t f) const {
        const int64_t i = s * n_features + f;
        // Offsets, not pointers: a float split has no images (a null `images`).
        const int64_t base = int64_t(perm[first + s]) * n_features;
        if (!shifts) {
            x[i] = features ? features[base + f] : float(images[base + f]) * (1.0f / 255.0f);
            return;
        }
        // Within an image, int arithmetic: 64-bit division is slow on the GPU.
        const int8_t* d = shifts + 2 * (first + s);
        const int row = int(f) / n_cols - d[1];
        const int col = int(f) % n_cols - d[0];
        const bool inside = row >= 0 && row < n_rows && col >= 0 && col < n_cols;
        if (!inside) {
            x[i] = 0.0f;
        } else {
            const int64_t at = row * n_cols + col;
            x[i] = features ? features[base + at] : float(images[base + at]) * (1.0f / 255.0f);
        }
    }

    MLP_HD void operator()(int64_t i) const {
        const int64_t s = i / n_features;
        (*this)(s, i - s * n_features);
    }
};

}  // namespace mlp
