#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "host/base/error.hpp"
#include "host/base/rng.hpp"
#include "host/model/model.hpp"

namespace mlp {
namespace {

TEST(Rng, SameSeedAndStreamGiveSameNumbers) {
    Rng a(42, 1), b(42, 1), c(42, 2), d(43, 1);
    for (int i = 0; i < 100; ++i) {
        const uint64_t va = a.next_u64();
        EXPECT_EQ(va, b.next_u64());
        EXPECT_NE(va, c.next_u64());
        EXPECT_NE(va, d.next_u64());
    }
}

TEST(Rng, NormalHasUnitMoments) {
    Rng rng(7, 3);
    const int n = 200000;
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < n; ++i) {
        const double v = rng.normal();
        sum += v;
        sq += v * v;
    }
    EXPECT_NEAR(sum / n, 0.0, 0.01);
    EXPECT_NEAR(sq / n, 1.0, 0.015);
}

TEST(Rng, BelowStaysInRangeAndCoversIt) {
    Rng rng(1, 1);
    std::vector<int> counts(7, 0);
    for (int i = 0; i < 70000; ++i) {
        const uint64_t v = rng.below(7);
        ASSERT_LT(v, 7u);
        counts[v] += 1;
    }
    for (int c : counts) EXPECT_NEAR(c, 10000, 500);
}

TEST(EpochPermutation, IsAPermutationFixedBySeedAndEpoch) {
    const auto p0 = epoch_permutation(1000, 42, 0);
    auto sorted = p0;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i);
    EXPECT_EQ(p0, epoch_permutation(1000, 42, 0));
    EXPECT_NE(p0, epoch_permutation(1000, 42, 1));
    EXPECT_NE(p0, epoch_permutation(1000, 43, 0));
}

TEST(ModelShape, OffsetsFollowPyTorchLinearLayout) {
    const ModelShape s({784, 128, 64, 10});
    EXPECT_EQ(s.n_layers(), 3);
    EXPECT_EQ(s.weight_offset(0), 0);
    EXPECT_EQ(s.bias_offset(0), 784 * 128);
    EXPECT_EQ(s.weight_offset(1), 784 * 128 + 128);
    EXPECT_EQ(s.n_params(), 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    EXPECT_EQ(s.n_params(), 109386);
    EXPECT_EQ(s.max_width(), 128);
    EXPECT_EQ(s.to_string(), "784-128-64-10");
}

TEST(ModelShape, RejectsBadSizes) {
    EXPECT_THROW(ModelShape({784}), Error);
    EXPECT_THROW(ModelShape({784, 0, 10}), Error);
    EXPECT_THROW(ModelShape({784, -3, 10}), Error);
}

TEST(InitParams, HeNormalWeightsZeroBiases) {
    const ModelShape s({784, 128, 64, 10});
    const auto p = init_params(s, 42);
    EXPECT_EQ(p, init_params(s, 42));
    EXPECT_NE(p, init_params(s, 43));
    for (int l = 0; l < s.n_layers(); ++l) {
        const int64_t n = s.n_in(l) * s.n_out(l);
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            const double v = p[size_t(s.weight_offset(l) + i)];
            sum += v;
            sq += v * v;
        }
        const double mean = sum / double(n);
        const double std_dev = std::sqrt(sq / double(n) - mean * mean);
        const double expected = std::sqrt(2.0 / double(s.n_in(l)));
        EXPECT_NEAR(mean, 0.0, 4.0 * expected / std::sqrt(double(n)));
        EXPECT_NEAR(std_dev / expected, 1.0, 0.1) << "layer " << l;
        for (int64_t o = 0; o < s.n_out(l); ++o) EXPECT_EQ(p[size_t(s.bias_offset(l) + o)], 0.0f);
    }
}

}  // namespace
}  // namespace mlp
