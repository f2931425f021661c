// The shared kernel functors, run through the CPU backend's for_each: the
// same code the CUDA launcher runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "host/cpu/cpu_backend.hpp"
#include "ops/bf16_cast.hpp"
#include "ops/bias_act.hpp"
#include "ops/bias_grad.hpp"
#include "ops/gather.hpp"
#include "ops/grad_norm.hpp"
#include "ops/relu_backward.hpp"
#include "ops/sgd_update.hpp"
#include "ops/softmax_xent.hpp"

namespace mlp {
namespace {

struct XentResult {
    std::vector<float> grad;
    std::vector<float> loss;
    std::vector<uint8_t> pred;
};

XentResult run_xent(std::vector<float> logits, std::vector<uint8_t> labels, int64_t n_classes,
                    float grad_scale) {
    const int64_t n = int64_t(labels.size());
    std::vector<int32_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    XentResult r{std::move(logits), std::vector<float>(size_t(n)), std::vector<uint8_t>(size_t(n))};
    CpuBackend be;
    be.for_each(n, SoftmaxXentFunctor{r.grad.data(), r.loss.data(), r.pred.data(), labels.data(),
                                      perm.data(), 0, n_classes, grad_scale});
    return r;
}

TEST(SoftmaxXent, MatchesDoublePrecisionOnOrdinaryLogits) {
    const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 3.0f};
    const auto r = run_xent(logits, {1, 0}, 3, 0.5f);
    for (int s = 0; s < 2; ++s) {
        const int label = s == 0 ? 1 : 0;
        double sum = 0.0;
        for (int c = 0; c < 3; ++c) sum += std::exp(double(logits[size_t(s * 3 + c)]));
        EXPECT_NEAR(r.loss[size_t(s)], std::log(sum) - logits[size_t(s * 3 + label)], 1e-6);
        for (int c = 0; c < 3; ++c) {
            const double p = std::exp(double(logits[size_t(s * 3 + c)])) / sum;
            EXPECT_NEAR(r.grad[size_t(s * 3 + c)], 0.5 * (p - (c == label)), 1e-6);
        }
    }
    EXPECT_EQ(r.pred[0], 1);
    EXPECT_EQ(r.pred[1], 2);
}

TEST(SoftmaxXent, ExtremeLogitsStayFinite) {
    // Huge positive and negative logits: a naive exp() overflows to inf or
    // underflows to a log(0); log-sum-exp around the maximum does neither.
    const float big = 1e30f;
    const auto r = run_xent({big, -big, 0.0f, 80.0f, 88.0f, 100.0f}, {1, 2}, 3, 1.0f);
    for (float v : r.loss) EXPECT_TRUE(std::isfinite(v));
    for (float v : r.grad) EXPECT_TRUE(std::isfinite(v));
    EXPECT_FLOAT_EQ(r.loss[0], 2 * big);  // correct class 2e30 below the winner
    EXPECT_NEAR(r.loss[1], 0.0f, 1e-5);   // correct class far ahead of the others
    EXPECT_FLOAT_EQ(r.grad[0], 1.0f);     // all probability on the wrong class
    EXPECT_FLOAT_EQ(r.grad[1], -1.0f);
    EXPECT_EQ(r.pred[0], 0);
}

TEST(SoftmaxXent, GradientRowsSumToZero) {
    std::vector<float> logits(7 * 5);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i)) * 20.0f;
    const auto r = run_xent(logits, {0, 1, 2, 3, 4, 0, 1}, 5, 1.0f / 7.0f);
    for (int s = 0; s < 7; ++s) {
        double sum = 0.0;
        for (int c = 0; c < 5; ++c) sum += r.grad[size_t(s * 5 + c)];
        EXPECT_NEAR(sum, 0.0, 1e-7);
    }
}

TEST(SoftmaxXent, EvaluationLeavesLogitsUntouched) {
    const std::vector<float> logits = {0.1f, 0.7f, -0.3f};
    const auto r = run_xent(logits, {2}, 3, 0.0f);
    EXPECT_EQ(r.grad, logits);
}

TEST(Gather, ReadsThroughPermutationAndScales) {
    const std::vector<uint8_t> images = {0, 255, 51, 102, 204, 153};  // 3 samples x 2
    const std::vector<int32_t> perm = {9, 2, 0, 1};                   // first = 1
    std::vector<float> x(4);
    CpuBackend().for_each(4, GatherFunctor{x.data(), images.data(), perm.data(), 1, 2});
    EXPECT_FLOAT_EQ(x[0], 204.0f / 255.0f);
    EXPECT_FLOAT_EQ(x[1], 153.0f / 255.0f);
    EXPECT_FLOAT_EQ(x[2], 0.0f);
    EXPECT_FLOAT_EQ(x[3], 1.0f);
}

// Three 3x4 images; the byte value encodes (sample, row, col) so any misplaced
// read shows up.
std::vector<uint8_t> coded_images() {
    std::vector<uint8_t> images;
    for (int s = 0; s < 3; ++s)
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 4; ++c) images.push_back(uint8_t(1 + 100 * s + 10 * r + c));
    return images;
}

TEST(Gather, ZeroShiftEqualsPlainGather) {
    const auto images = coded_images();
    const std::vector<int32_t> perm = {2, 0, 1};
    const std::vector<int8_t> zero(6, 0);
    std::vector<float> plain(24), shifted(24, -1.0f);
    CpuBackend().for_each(24, GatherFunctor{plain.data(), images.data(), perm.data(), 1, 12});
    CpuBackend().for_each(24, GatherFunctor{shifted.data(), images.data(), perm.data(), 1, 12,
                                            zero.data(), 3, 4});
    EXPECT_EQ(shifted, plain);
}

TEST(Gather, ShiftMovesPixelsAndFillsWithZero) {
    const auto images = coded_images();
    const std::vector<int32_t> perm = {1, 2};
    // Position 0 (sample 1): right 1, down 2; position 1 (sample 2): left 1, up 1.
    const std::vector<int8_t> shifts = {1, 2, -1, -1};
    std::vector<float> x(24, -1.0f);
    CpuBackend().for_each(24, GatherFunctor{x.data(), images.data(), perm.data(), 0, 12,
                                            shifts.data(), 3, 4});
    auto at = [&](int s, int r, int c) { return x[size_t(s * 12 + r * 4 + c)] * 255.0f; };
    // Sample 1's pixel (0, 0) lands at (2, 1); row 0-1 and column 0 come from outside.
    EXPECT_FLOAT_EQ(at(0, 2, 1), 101.0f);
    EXPECT_FLOAT_EQ(at(0, 2, 3), 103.0f);
    for (int c = 0; c < 4; ++c) EXPECT_EQ(at(0, 0, c), 0.0f) << c;
    EXPECT_EQ(at(0, 2, 0), 0.0f);
    // Sample 2's pixel (1, 1) lands at (0, 0); the last row and column are empty.
    EXPECT_FLOAT_EQ(at(1, 0, 0), 212.0f);
    EXPECT_FLOAT_EQ(at(1, 1, 2), 224.0f);
    EXPECT_EQ(at(1, 2, 0), 0.0f);
    EXPECT_EQ(at(1, 0, 3), 0.0f);
}

TEST(Gather, ShiftsAreReadAtThePositionInTheEpoch) {
    const auto images = coded_images();
    const std::vector<int32_t> perm = {0, 1, 2};
    const std::vector<int8_t> shifts = {0, 0, 0, 0, 0, 1};  // only position 2 moves down
    std::vector<float> x(12);
    CpuBackend().for_each(12, GatherFunctor{x.data(), images.data(), perm.data(), 2, 12,
                                            shifts.data(), 3, 4});
    EXPECT_EQ(x[0], 0.0f);
    EXPECT_FLOAT_EQ(x[4] * 255.0f, 201.0f);
}

TEST(GradNorm, PartsThenSumGiveTheSquaredNorm) {
    for (int64_t n : {1, 5, 256, 1000, 109386}) {
        std::vector<float> g(static_cast<size_t>(n));
        double expected = 0.0;
        for (size_t i = 0; i < g.size(); ++i) {
            g[i] = std::sin(float(i) * 0.37f) * 0.01f;
            expected += double(g[i]) * double(g[i]);
        }
        const int64_t n_parts = 256;
        std::vector<float> parts(n_parts, -1.0f);
        float out = -1.0f;
        CpuBackend be;
        be.for_each(n_parts, SquaredNormPartsFunctor{parts.data(), g.data(), n, n_parts});
        be.for_each(1, SumPartsFunctor{&out, parts.data(), n_parts});
        EXPECT_NEAR(out, expected, 1e-5 * expected) << n;
    }
}

TEST(BiasAct, AddsBiasPerFeatureAndClamps) {
    std::vector<float> z = {1.0f, -1.0f, 0.5f, 2.0f, -3.0f, 0.0f};  // 2 samples x 3
    const std::vector<float> b = {-2.0f, 0.5f, 1.0f};
    std::vector<float> linear = z;
    CpuBackend be;
    be.for_each(6, BiasActFunctor{z.data(), b.data(), 3, Activation::relu});
    be.for_each(6, BiasActFunctor{linear.data(), b.data(), 3, Activation::identity});
    EXPECT_EQ(z, (std::vector<float>{0.0f, 0.0f, 1.5f, 0.0f, 0.0f, 1.0f}));
    EXPECT_EQ(linear, (std::vector<float>{-1.0f, -0.5f, 1.5f, 0.0f, -2.5f, 1.0f}));
}

TEST(BiasAct, NanDoesNotBecomeZeroSilentlyWithoutRelu) {
    std::vector<float> z = {std::numeric_limits<float>::quiet_NaN()};
    const std::vector<float> b = {0.0f};
    CpuBackend().for_each(1, BiasActFunctor{z.data(), b.data(), 1, Activation::identity});
    EXPECT_TRUE(std::isnan(z[0]));
}

// PyTorch: relu(NaN) = NaN, so a NaN reaches the loss and the guard.
TEST(BiasAct, ReluKeepsNanAndMapsNegativeZeroToZero) {
    std::vector<float> z = {std::numeric_limits<float>::quiet_NaN(), -0.0f, -1.0f};
    const std::vector<float> b = {0.0f};
    CpuBackend().for_each(3, BiasActFunctor{z.data(), b.data(), 1, Activation::relu});
    EXPECT_TRUE(std::isnan(z[0]));
    EXPECT_EQ(z[1], 0.0f);
    EXPECT_FALSE(std::signbit(z[1]));
    EXPECT_EQ(z[2], 0.0f);
}

// PyTorch's threshold_backward: A <= 0 ? 0 : dA, so a NaN activation passes
// the gradient through rather than masking it.
TEST(ReluBackward, NanActivationPassesTheGradient) {
    std::vector<float> g = {1.0f, 2.0f, std::numeric_limits<float>::quiet_NaN()};
    const std::vector<float> a = {std::numeric_limits<float>::quiet_NaN(), 0.0f, 1.0f};
    CpuBackend().for_each(3, ReluBackwardFunctor{g.data(), a.data()});
    EXPECT_EQ(g[0], 1.0f);
    EXPECT_EQ(g[1], 0.0f);
    EXPECT_TRUE(std::isnan(g[2]));
}

TEST(ReluBackward, MasksWhereActivationIsZero) {
    std::vector<float> g = {1.0f, 2.0f, 3.0f, 4.0f};
    const std::vector<float> a = {0.0f, 0.1f, 0.0f, 5.0f};
    CpuBackend().for_each(4, ReluBackwardFunctor{g.data(), a.data()});
    EXPECT_EQ(g, (std::vector<float>{0.0f, 2.0f, 0.0f, 4.0f}));
}

TEST(BiasGrad, SumsOverTheBatch) {
    const std::vector<float> dz = {1, 2, 3, 10, 20, 30};  // 2 samples x 3 features
    std::vector<float> db(3);
    CpuBackend().for_each(3, BiasGradFunctor{db.data(), dz.data(), 3, 2});
    EXPECT_EQ(db, (std::vector<float>{11, 22, 33}));
}

TEST(SgdUpdate, SubtractsScaledGradient) {
    std::vector<float> p = {1.0f, -2.0f, 0.5f};
    const std::vector<float> g = {0.5f, -1.0f, 0.0f};
    const float lr = 0.1f;
    const int32_t go = 0;
    CpuBackend().for_each(3, SgdUpdateFunctor{p.data(), g.data(), &lr, &go});
    EXPECT_FLOAT_EQ(p[0], 0.95f);
    EXPECT_FLOAT_EQ(p[1], -1.9f);
    EXPECT_FLOAT_EQ(p[2], 0.5f);
}

float float_of_bits(uint32_t u) {
    float x = 0.0f;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

// The host side of the bf16 operand cast (the device runs __float2bfloat16_rn):
// round to nearest, ties to even, on known bit patterns.
TEST(Bf16Cast, RoundsToNearestEven) {
    struct Case {
        uint32_t in;
        uint16_t out;
    };
    const Case cases[] = {
        {0x3f800000u, 0x3f80u},  // 1 is exact
        {0x3f808000u, 0x3f80u},  // 1 + 2^-8: a tie, kept even (down)
        {0x3f818000u, 0x3f82u},  // a tie above an odd pattern goes up to even
        {0x3f808001u, 0x3f81u},  // just above the tie: up
        {0x3f807fffu, 0x3f80u},  // just below: down
        {0xbf808001u, 0xbf81u},  // the same for negatives (by magnitude)
        {0x3fffffffu, 0x4000u},  // a carry into the exponent
        {0x00000000u, 0x0000u},  // +0
        {0x80000000u, 0x8000u},  // -0 keeps its sign
        {0x00018000u, 0x0002u},  // a subnormal tie over an odd pattern: up to even
        {0x7f800000u, 0x7f80u},  // +infinity
        {0xff800000u, 0xff80u},  // -infinity
        {0x7f7fffffu, 0x7f80u},  // FLT_MAX rounds past the largest bf16: infinity
        {0x7f7f7fffu, 0x7f7fu},  // the largest bf16 stays
    };
    for (const Case& c : cases) {
        EXPECT_EQ(float_to_bf16_bits(float_of_bits(c.in)), c.out) << std::hex << c.in;
    }
    EXPECT_EQ(bf16_bits_to_float(0x3f80u), 1.0f);
    EXPECT_EQ(bf16_bits_to_float(0xc040u), -3.0f);
    // pi: 0x40490fdb -> 0x4049 (3.140625), the nearest bf16.
    EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(3.14159265f)), 3.140625f);
}

TEST(Bf16Cast, NanStaysNan) {
    // A payload only in the low half would truncate to infinity; it must stay NaN.
    for (uint32_t u : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0xffc00000u}) {
        const uint16_t b = float_to_bf16_bits(float_of_bits(u));
        EXPECT_TRUE(std::isnan(bf16_bits_to_float(b))) << std::hex << u << " -> " << b;
        EXPECT_EQ(b & 0x8000u, (u >> 16) & 0x8000u) << std::hex << u;  // sign kept
    }
    EXPECT_TRUE(std::isnan(
        bf16_bits_to_float(float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()))));
}

// The functor over a range, as the CUDA backend runs it before a bf16 GEMM:
// every value within half a bf16 ulp (at most 2^-8 relative), bf16 values exact.
TEST(Bf16Cast, FunctorCastsEveryValue) {
    const int64_t n = 100000;  // above the CPU backend's parallel threshold
    std::vector<float> src(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) src[size_t(i)] = std::sin(float(i)) * float(1 + i % 1000);
    std::vector<uint16_t> dst(static_cast<size_t>(n), 0xffffu);
    CpuBackend be;
    be.for_each(n, Bf16CastFunctor{dst.data(), src.data()});
    for (int64_t i = 0; i < n; ++i) {
        const float x = src[size_t(i)], y = bf16_bits_to_float(dst[size_t(i)]);
        ASSERT_LE(std::abs(y - x), std::ldexp(std::abs(x), -8)) << i;
        ASSERT_EQ(float_to_bf16_bits(y), dst[size_t(i)]) << i;  // a bf16 value is a fixed point
    }
}

TEST(CpuBackend, ParallelForEachCoversEveryIndexOnce) {
    const int64_t n = CpuBackend::k_parallel_threshold * 3 + 17;  // above the threading cutoff
    std::vector<int> hits(size_t(n), 0);
    int* h = hits.data();
    CpuBackend().for_each(n, [h](int64_t i) { h[i] += 1; });
    for (int v : hits) ASSERT_EQ(v, 1);
}

TEST(CpuBackend, ForEach2dCoversEveryCellOnce) {
    for (int64_t n_rows : {int64_t(3), CpuBackend::k_parallel_threshold / 7 + 5}) {
        const int64_t n_cols = 9;  // with the larger n_rows, above the threading cutoff
        std::vector<int> hits(size_t(n_rows * n_cols), 0);
        int* h = hits.data();
        CpuBackend().for_each_2d(n_rows, n_cols,
                                 [h, n_cols](int64_t r, int64_t c) { h[r * n_cols + c] += 1; });
        for (int v : hits) ASSERT_EQ(v, 1) << n_rows;
    }
}

// The engine launches gather and bias+ReLU with two indices (sample, feature);
// the flat form, f(i), must give the same values.
TEST(ForEach2d, GatherAndBiasActMatchTheirFlatForm) {
    const auto images = coded_images();
    const std::vector<int32_t> perm = {2, 0, 1};
    const std::vector<int8_t> shifts = {1, 2, -1, -1, 0, 1};
    for (const int8_t* s : {static_cast<const int8_t*>(nullptr), shifts.data()}) {
        std::vector<float> flat(24, -1.0f), two(24, -2.0f);
        CpuBackend().for_each(
            24, GatherFunctor{flat.data(), images.data(), perm.data(), 1, 12, s, 3, 4});
        CpuBackend().for_each_2d(
            2, 12, GatherFunctor{two.data(), images.data(), perm.data(), 1, 12, s, 3, 4});
        EXPECT_EQ(two, flat) << (s ? "shifted" : "plain");
    }
    for (bool relu : {false, true}) {
        std::vector<float> flat = {1.0f, -1.0f, 0.5f, 2.0f, -3.0f, 0.0f};
        std::vector<float> two = flat;
        const std::vector<float> b = {-2.0f, 0.5f, 1.0f};
        const Activation act = relu ? Activation::relu : Activation::identity;
        CpuBackend().for_each(6, BiasActFunctor{flat.data(), b.data(), 3, act});
        CpuBackend().for_each_2d(2, 3, BiasActFunctor{two.data(), b.data(), 3, act});
        EXPECT_EQ(two, flat) << relu;
    }
}

}  // namespace
}  // namespace mlp
