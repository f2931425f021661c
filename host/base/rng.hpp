// Deterministic random numbers that give the same values on every platform
// and standard library (std::normal_distribution does not): xoshiro256**
// seeded through splitmix64, Box-Muller normals, Lemire's unbiased bounded
// integers. Each purpose gets its own stream so that, e.g., the epoch order
// does not depend on how many numbers the initialisation drew.
#pragma once

#include <cstdint>
#include <vector>

namespace mlp {

class Rng {
public:
    Rng(uint64_t seed, uint64_t stream);

    uint64_t next_u64();
    double uniform();              // [0, 1)
    double normal();               // mean 0, std 1
    uint64_t below(uint64_t n);    // uniform in [0, n), n > 0

private:
    uint64_t s_[4];
};

// Stream ids, fixed forever: changing one changes every trained model.
enum RngStream : uint64_t {
    k_stream_init = 1,
    k_stream_epoch_base = 1000,  // epoch e uses k_stream_epoch_base + e
    // Epoch e's augmentation shifts use k_stream_shift_base + e; far above any
    // epoch count, so the two families never meet.
    k_stream_shift_base = uint64_t(1) << 40,
};

// Order of the training samples in epoch `epoch` (0-based): a Fisher-Yates
// shuffle drawn from its own stream, so epoch e's order is a pure function of
// (seed, e) and a resumed run reproduces it without saved RNG state.
std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

// Random translations for epoch `epoch`: 2 * n values, (dx, dy) for each
// position of the epoch order, each uniform in [-max_shift, max_shift]; like
// the order, a pure function of (seed, epoch). max_shift must lie in [0, 127].
std::vector<int8_t> epoch_shifts(int64_t n, int max_shift, uint64_t seed, int64_t epoch);

}  // namespace mlp
