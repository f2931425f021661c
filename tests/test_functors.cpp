// The shared kernel functors, run through the CPU backend's for_each: the
// same code the CUDA launcher runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "cuda/ops/bias_act.hpp"
#include "cuda/ops/bias_grad.hpp"
#include "cuda/ops/gather.hpp"
#include "cuda/ops/relu_backward.hpp"
#include "cuda/ops/sgd_update.hpp"
#include "cuda/ops/softmax_xent.hpp"
#include "host/cpu_backend.hpp"

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

TEST(BiasAct, AddsBiasPerFeatureAndClamps) {
    std::vector<float> z = {1.0f, -1.0f, 0.5f, 2.0f, -3.0f, 0.0f};  // 2 samples x 3
    const std::vector<float> b = {-2.0f, 0.5f, 1.0f};
    std::vector<float> linear = z;
    CpuBackend be;
    be.for_each(6, BiasActFunctor{z.data(), b.data(), 3, true});
    be.for_each(6, BiasActFunctor{linear.data(), b.data(), 3, false});
    EXPECT_EQ(z, (std::vector<float>{0.0f, 0.0f, 1.5f, 0.0f, 0.0f, 1.0f}));
    EXPECT_EQ(linear, (std::vector<float>{-1.0f, -0.5f, 1.5f, 0.0f, -2.5f, 1.0f}));
}

TEST(BiasAct, NanDoesNotBecomeZeroSilentlyWithoutRelu) {
    std::vector<float> z = {std::numeric_limits<float>::quiet_NaN()};
    const std::vector<float> b = {0.0f};
    CpuBackend().for_each(1, BiasActFunctor{z.data(), b.data(), 1, false});
    EXPECT_TRUE(std::isnan(z[0]));
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
    CpuBackend().for_each(3, SgdUpdateFunctor{p.data(), g.data(), &lr});
    EXPECT_FLOAT_EQ(p[0], 0.95f);
    EXPECT_FLOAT_EQ(p[1], -1.9f);
    EXPECT_FLOAT_EQ(p[2], 0.5f);
}

TEST(CpuBackend, ParallelForEachCoversEveryIndexOnce) {
    const int64_t n = CpuBackend::k_parallel_threshold * 3 + 17;  // above the threading cutoff
    std::vector<int> hits(size_t(n), 0);
    int* h = hits.data();
    CpuBackend().for_each(n, [h](int64_t i) { h[i] += 1; });
    for (int v : hits) ASSERT_EQ(v, 1);
}

}  // namespace
}  // namespace mlp
