#include "host/base/rng.hpp"

#include <cmath>
#include <string>

#include "host/base/error.hpp"

namespace mlp {

static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

Rng::Rng(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
    for (uint64_t& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

double Rng::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
    // Box-Muller without caching the second value: one normal per two
    // uniforms keeps the stream position a simple function of the count.
    const double u1 = 1.0 - uniform();  // (0, 1], so log is finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t Rng::below(uint64_t n) {
    // Lemire's multiply-shift with rejection: unbiased for every n.
    unsigned __int128 m = (unsigned __int128)next_u64() * n;
    uint64_t low = uint64_t(m);
    if (low < n) {
        const uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = (unsigned __int128)next_u64() * n;
            low = uint64_t(m);
        }
    }
    return uint64_t(m >> 64);
}

std::vector<int32_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
    std::vector<int32_t> perm(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = int32_t(i);
    Rng rng(seed, k_stream_epoch_base + uint64_t(epoch));
    for (int64_t i = n - 1; i > 0; --i) {
        const int64_t j = int64_t(rng.below(uint64_t(i + 1)));
        std::swap(perm[size_t(i)], perm[size_t(j)]);
    }
    return perm;
}

std::vector<int8_t> epoch_shifts(int64_t n, int max_shift, uint64_t seed, int64_t epoch) {
    if (max_shift < 0 || max_shift > 127) {
        throw Error("augmentation shift " + std::to_string(max_shift) + " is outside [0, 127]");
    }
    std::vector<int8_t> shifts(static_cast<size_t>(2 * n));
    Rng rng(seed, k_stream_shift_base + uint64_t(epoch));
    const uint64_t n_values = uint64_t(2 * max_shift + 1);
    for (int8_t& d : shifts) d = int8_t(int(rng.below(n_values)) - max_shift);
    return shifts;
}

}  // namespace mlp
