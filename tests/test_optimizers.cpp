// The optimizers: each fused update functor against a double-precision
// reference written from the published rule (PyTorch's SGD, Adam and AdamW
// documentation) over several steps with a changing learning rate; the
// per-step scalars; the config checks; and whole epochs through the Engine
// against the double-precision reference network.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <vector>

#include "host/base/error.hpp"
#include "host/base/rng.hpp"
#include "host/config/optimizer.hpp"
#include "host/config/schedule.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/train/trainer.hpp"
#include "ops/adam_update.hpp"
#include "ops/sgd_update.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

using ::testing::HasSubstr;

// Parameters, one gradient per step, and a learning rate per step that
// changes, as under a schedule.
struct Problem {
    std::vector<float> params;
    std::vector<std::vector<float>> grads;
    std::vector<double> lr = {0.1, 0.05, 0.2, 0.01, 0.1, 0.3};
};

Problem make_problem(int64_t n, uint64_t seed) {
    Rng rng(seed, 5);
    Problem p;
    for (int64_t i = 0; i < n; ++i) p.params.push_back(float(rng.normal() * 0.5));
    for (size_t t = 0; t < p.lr.size(); ++t) {
        std::vector<float> g;
        for (int64_t i = 0; i < n; ++i) {
            // Some exact zeros: a dead ReLU's weights get them.
            g.push_back(i % 17 == 0 ? 0.0f : float(rng.normal() * 0.1));
        }
        p.grads.push_back(g);
    }
    return p;
}

// torch.optim.SGD, documented algorithm, dampening 0.
std::vector<double> reference_sgd(const Problem& pr, const OptimizerConfig& c,
                                  std::vector<double>* buffer_out) {
    std::vector<double> p(pr.params.begin(), pr.params.end());
    std::vector<double> b(p.size(), 0.0);
    for (size_t t = 0; t < pr.lr.size(); ++t) {
        for (size_t i = 0; i < p.size(); ++i) {
            double g = pr.grads[t][i] + c.weight_decay * p[i];
            if (c.momentum != 0.0) {
                b[i] = t == 0 ? g : c.momentum * b[i] + g;
                g = c.nesterov ? g + c.momentum * b[i] : b[i];
            }
            p[i] -= pr.lr[t] * g;
        }
    }
    if (buffer_out) *buffer_out = b;
    return p;
}

// torch.optim.Adam / AdamW, documented algorithm (amsgrad off):
// m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t), p -= lr m_hat / (sqrt(v_hat) + eps).
std::vector<double> reference_adam(const Problem& pr, const OptimizerConfig& c,
                                   std::vector<double>* m_out, std::vector<double>* v_out) {
    std::vector<double> p(pr.params.begin(), pr.params.end());
    std::vector<double> m(p.size(), 0.0), v(p.size(), 0.0);
    const bool decoupled = c.kind == OptimizerKind::adamw;
    for (size_t k = 0; k < pr.lr.size(); ++k) {
        const double t = double(k + 1), lr = pr.lr[k];
        for (size_t i = 0; i < p.size(); ++i) {
            double g = pr.grads[k][i];
            if (decoupled) {
                p[i] *= 1.0 - lr * c.weight_decay;
            } else {
                g += c.weight_decay * p[i];
            }
            m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g;
            v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g * g;
            const double m_hat = m[i] / (1.0 - std::pow(c.beta1, t));
            const double v_hat = v[i] / (1.0 - std::pow(c.beta2, t));
            p[i] -= lr * m_hat / (std::sqrt(v_hat) + c.eps);
        }
    }
    if (m_out) *m_out = m;
    if (v_out) *v_out = v;
    return p;
}

// Runs the production functor over the problem; returns params and state.
OptimizerState run_functor(const Problem& pr, const OptimizerConfig& c,
                           std::vector<float>* params) {
    *params = pr.params;
    const int64_t n = int64_t(params->size());
    OptimizerState state;
    for (size_t k = 0; k < optimizer_state_names(c).size(); ++k) {
        state.buffers.emplace_back(size_t(n), 0.0f);
    }
    const std::vector<OptimizerStep> table = optimizer_steps(c, pr.lr, 0);
    const int32_t go = 0;
    CpuBackend be;
    for (size_t t = 0; t < pr.lr.size(); ++t) {
        const float* g = pr.grads[t].data();
        if (c.kind == OptimizerKind::sgd) {
            float* buffer = state.buffers.empty() ? nullptr : state.buffers[0].data();
            be.for_each(n, SgdUpdateFunctor{params->data(), g, lr_address(&table[t]), &go, buffer,
                                            float(c.momentum), float(c.weight_decay), c.nesterov});
        } else {
            be.for_each(
                n, AdamUpdateFunctor{params->data(), g, state.buffers[0].data(),
                                     state.buffers[1].data(), &table[t], &go, float(1.0 - c.beta1),
                                     float(c.beta2), float(1.0 - c.beta2), float(c.eps),
                                     float(c.weight_decay), c.kind == OptimizerKind::adamw});
        }
    }
    state.step = int64_t(pr.lr.size());
    return state;
}

OptimizerConfig sgd(double momentum, bool nesterov, double weight_decay) {
    OptimizerConfig c;
    c.momentum = momentum;
    c.nesterov = nesterov;
    c.weight_decay = weight_decay;
    return c;
}

OptimizerConfig adam(OptimizerKind kind, double weight_decay) {
    OptimizerConfig c;
    c.kind = kind;
    c.weight_decay = weight_decay;
    return c;
}

TEST(SgdUpdate, MatchesPublishedRuleOverSeveralSteps) {
    const Problem pr = make_problem(1001, 1);
    for (const OptimizerConfig& c :
         {sgd(0.0, false, 0.0), sgd(0.0, false, 0.05), sgd(0.9, false, 0.0), sgd(0.9, true, 0.0),
          sgd(0.5, true, 0.01)}) {
        std::vector<float> params;
        const OptimizerState state = run_functor(pr, c, &params);
        std::vector<double> buffer;
        const std::vector<double> expected = reference_sgd(pr, c, &buffer);
        const std::string what = "momentum " + std::to_string(c.momentum) +
                                 (c.nesterov ? " nesterov" : "") + " wd " +
                                 std::to_string(c.weight_decay);
        EXPECT_LT(test::normalised_error(params, expected), 1e-6) << what;
        if (c.momentum != 0.0) {
            ASSERT_EQ(state.buffers.size(), 1u);
            EXPECT_LT(test::normalised_error(state.buffers[0], buffer), 1e-6) << what;
        }
    }
}

TEST(SgdUpdate, FirstMomentumStepEqualsPlainSgdBitForBit) {
    // PyTorch starts the buffer as a copy of the first gradient; a zero buffer
    // times momentum plus the gradient must give exactly that.
    Problem pr = make_problem(300, 2);
    pr.lr = {0.1};
    pr.grads.resize(1);
    std::vector<float> plain, with_momentum;
    run_functor(pr, sgd(0.0, false, 0.0), &plain);
    const OptimizerState state = run_functor(pr, sgd(0.9, false, 0.0), &with_momentum);
    EXPECT_EQ(with_momentum, plain);
    EXPECT_EQ(state.buffers[0], pr.grads[0]);
}

TEST(AdamUpdate, MatchesPublishedRuleOverSeveralSteps) {
    const Problem pr = make_problem(1001, 3);
    for (const OptimizerConfig& c :
         {adam(OptimizerKind::adam, 0.0), adam(OptimizerKind::adam, 0.1),
          adam(OptimizerKind::adamw, 0.01), adam(OptimizerKind::adamw, 0.5)}) {
        std::vector<float> params;
        const OptimizerState state = run_functor(pr, c, &params);
        std::vector<double> m, v;
        const std::vector<double> expected = reference_adam(pr, c, &m, &v);
        const std::string what = to_string(c.kind) + " wd " + std::to_string(c.weight_decay);
        EXPECT_LT(test::normalised_error(params, expected), 1e-6) << what;
        ASSERT_EQ(state.buffers.size(), 2u);
        EXPECT_LT(test::normalised_error(state.buffers[0], m), 1e-6) << what;
        EXPECT_LT(test::normalised_error(state.buffers[1], v), 1e-6) << what;
    }
}

TEST(AdamUpdate, DecoupledDecayDiffersFromL2) {
    // With the same weight decay, AdamW and Adam must differ (Adam's L2 term
    // is normalised away by the second moment, AdamW's is not).
    const Problem pr = make_problem(200, 4);
    std::vector<float> a, w;
    run_functor(pr, adam(OptimizerKind::adam, 0.5), &a);
    run_functor(pr, adam(OptimizerKind::adamw, 0.5), &w);
    EXPECT_GT(test::normalised_error(a, w), 1e-3);
}

TEST(AdamUpdate, FirstStepMovesEachParameterByAboutTheLearningRate) {
    // t = 1: m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps).
    Problem pr = make_problem(100, 5);
    pr.lr = {0.01};
    pr.grads.resize(1);
    std::vector<float> params;
    run_functor(pr, adam(OptimizerKind::adam, 0.0), &params);
    for (size_t i = 0; i < params.size(); ++i) {
        const float g = pr.grads[0][i];
        const double expected = g == 0.0f ? 0.0 : (g > 0 ? -0.01 : 0.01);
        EXPECT_NEAR(params[i] - pr.params[i], expected, 1e-6) << i;
    }
}

TEST(OptimizerState, DecayingStateIsFlushedInsteadOfTurningSubnormal) {
    // A weight whose gradient stays zero: its momentum and moments only decay.
    // Subnormal floats would slow a CPU epoch fivefold; they must become 0.
    OptimizerConfig c = adam(OptimizerKind::adam, 0.0);
    const std::vector<double> lrs(2000, 1e-3);
    const auto table = optimizer_steps(c, lrs, 0);
    float p = 1.0f, m = 1e-3f, v = 1e-30f, b = 1e-3f, q = 1.0f;
    const float g = 0.0f;
    const int32_t go = 0;
    bool subnormal = false;
    for (size_t t = 0; t < table.size(); ++t) {
        AdamUpdateFunctor{
            &p, &g, &m, &v, &table[t], &go, 0.1f, 0.999f, 0.001f, 1e-8f, 0.0f, false}(0);
        SgdUpdateFunctor{&q, &g, lr_address(&table[t]), &go, &b, 0.9f}(0);
        for (float x : {m, v, b}) subnormal |= std::fpclassify(x) == FP_SUBNORMAL;
    }
    EXPECT_FALSE(subnormal);
    EXPECT_EQ(m, 0.0f);
    EXPECT_EQ(b, 0.0f);
    EXPECT_EQ(flush_subnormal(1e-39f), 0.0f);
    EXPECT_EQ(flush_subnormal(-1e-39f), 0.0f);
    EXPECT_EQ(flush_subnormal(FLT_MIN), FLT_MIN);
    EXPECT_TRUE(std::isnan(flush_subnormal(NAN)));
}

// The guard's skip is applied as a select over unconditional stores (so the
// CPU loop vectorises): a skipped step must store back exactly what was there,
// NaN gradients and all.
TEST(OptimizerState, SkippedStepLeavesParametersAndStateBitForBit) {
    const Problem pr = make_problem(301, 6);
    std::vector<float> g = pr.grads[0];
    for (size_t i = 0; i < g.size(); i += 7) g[i] = NAN;
    const auto table = optimizer_steps(adam(OptimizerKind::adamw, 0.01), {1e-3}, 4);
    const int32_t skip = 1;
    const int64_t n = int64_t(g.size());
    for (const OptimizerConfig& c :
         {sgd(0.0, false, 0.0), sgd(0.9, true, 0.01), adam(OptimizerKind::adam, 0.1),
          adam(OptimizerKind::adamw, 0.01)}) {
        std::vector<float> p = pr.params, b = pr.grads[1], m = pr.grads[2], v = pr.grads[3];
        for (float& x : v) x = x * x;
        const std::vector<float> p0 = p, b0 = b, m0 = m, v0 = v;
        CpuBackend be;
        if (c.kind == OptimizerKind::sgd) {
            be.for_each(n, SgdUpdateFunctor{p.data(), g.data(), lr_address(&table[0]), &skip,
                                            c.momentum != 0.0 ? b.data() : nullptr,
                                            float(c.momentum), float(c.weight_decay), c.nesterov});
        } else {
            be.for_each(
                n, AdamUpdateFunctor{p.data(), g.data(), m.data(), v.data(), &table[0], &skip, 0.1f,
                                     0.999f, 0.001f, 1e-8f, float(c.weight_decay),
                                     c.kind == OptimizerKind::adamw});
        }
        EXPECT_EQ(p, p0) << to_string(c.kind);
        EXPECT_EQ(b, b0) << to_string(c.kind);
        EXPECT_EQ(m, m0) << to_string(c.kind);
        EXPECT_EQ(v, v0) << to_string(c.kind);
    }
}

TEST(OptimizerSteps, BiasCorrectionContinuesFromTheStepCount) {
    OptimizerConfig c = adam(OptimizerKind::adamw, 0.01);
    c.beta1 = 0.8;
    c.beta2 = 0.99;
    const auto steps = optimizer_steps(c, {0.5, 0.25}, 5);  // steps 6 and 7
    ASSERT_EQ(steps.size(), 2u);
    EXPECT_FLOAT_EQ(steps[0].lr, 0.5f);
    EXPECT_FLOAT_EQ(steps[0].step_size, float(0.5 / (1.0 - std::pow(0.8, 6))));
    EXPECT_FLOAT_EQ(steps[1].step_size, float(0.25 / (1.0 - std::pow(0.8, 7))));
    EXPECT_FLOAT_EQ(steps[1].bias_correction2_sqrt, float(std::sqrt(1.0 - std::pow(0.99, 7))));
    EXPECT_FLOAT_EQ(steps[0].decay, float(1.0 - 0.5 * 0.01));
    const auto plain = optimizer_steps(sgd(0.9, false, 0.1), {0.5}, 3);
    EXPECT_FLOAT_EQ(plain[0].decay, 1.0f);  // SGD's weight decay is in the gradient
}

TEST(OptimizerConfig, StateNamesFollowPyTorch) {
    EXPECT_TRUE(optimizer_state_names(sgd(0.0, false, 0.1)).empty());
    EXPECT_EQ(optimizer_state_names(sgd(0.9, false, 0.0)),
              std::vector<std::string>({"momentum_buffer"}));
    EXPECT_EQ(optimizer_state_names(adam(OptimizerKind::adamw, 0.0)),
              std::vector<std::string>({"exp_avg", "exp_avg_sq"}));
}

TEST(OptimizerConfig, RefusesMixedOrInvalidOptions) {
    struct Case {
        OptimizerConfig config;
        std::string flag;
    };
    OptimizerConfig momentum_adam = adam(OptimizerKind::adam, 0.0);
    momentum_adam.momentum = 0.9;
    OptimizerConfig beta = adam(OptimizerKind::adam, 0.0);
    beta.beta2 = 1.0;
    OptimizerConfig eps = adam(OptimizerKind::adamw, 0.0);
    eps.eps = 0.0;
    const std::vector<Case> cases = {{sgd(0.0, true, 0.0), "--nesterov"},
                                     {sgd(1.0, false, 0.0), "--momentum"},
                                     {sgd(0.0, false, -1.0), "--weight-decay"},
                                     {momentum_adam, "--momentum"},
                                     {beta, "--beta2"},
                                     {eps, "--eps"}};
    for (const Case& c : cases) {
        try {
            check_optimizer_config(c.config);
            ADD_FAILURE() << "accepted a bad " << c.flag;
        } catch (const Error& e) {
            EXPECT_THAT(e.what(), HasSubstr(c.flag));
        }
    }
    EXPECT_NO_THROW(check_optimizer_config(sgd(0.9, true, 0.1)));
}

// Whole epochs through the Engine (CPU backend): gather, backprop, the
// per-step table and the optimizer state across epochs, against the double
// reference network with the reference update rules.
std::vector<double> reference_run(const Dataset& data, const ModelShape& shape,
                                  const std::vector<float>& init, const OptimizerConfig& c,
                                  const std::vector<EpochPlan>& plans, int64_t batch) {
    test::ReferenceMlp ref{shape, std::vector<double>(init.begin(), init.end())};
    const size_t n = ref.params.size();
    std::vector<double> b(n, 0.0), m(n, 0.0), v(n, 0.0);
    int64_t t = 0;
    for (const EpochPlan& plan : plans) {
        for (size_t first = 0, k = 0; first < plan.perm.size(); first += size_t(batch), ++k) {
            const size_t last = std::min(plan.perm.size(), first + size_t(batch));
            const std::vector<int32_t> ids(plan.perm.begin() + long(first),
                                           plan.perm.begin() + long(last));
            const auto g = ref.gradient(data.train, ids);
            const double lr = plan.lr[k];
            ++t;
            for (size_t i = 0; i < n; ++i) {
                double& p = ref.params[i];
                if (c.kind == OptimizerKind::sgd) {
                    double d = g[i] + c.weight_decay * p;
                    b[i] = c.momentum * b[i] + d;
                    d = c.nesterov ? d + c.momentum * b[i] : (c.momentum != 0.0 ? b[i] : d);
                    p -= lr * d;
                } else {
                    double d = g[i];
                    if (c.kind == OptimizerKind::adamw) {
                        p *= 1.0 - lr * c.weight_decay;
                    } else {
                        d += c.weight_decay * p;
                    }
                    m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * d;
                    v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * d * d;
                    const double m_hat = m[i] / (1.0 - std::pow(c.beta1, double(t)));
                    const double v_hat = v[i] / (1.0 - std::pow(c.beta2, double(t)));
                    p -= lr * m_hat / (std::sqrt(v_hat) + c.eps);
                }
            }
        }
    }
    return ref.params;
}

std::vector<EpochPlan> onecycle_plans(int64_t n_train, int64_t batch, int n_epochs, double max_lr) {
    ScheduleConfig s;
    s.kind = ScheduleKind::onecycle;
    const int64_t steps = (n_train + batch - 1) / batch;
    std::vector<EpochPlan> plans;
    for (int e = 0; e < n_epochs; ++e) {
        EpochPlan plan;
        plan.perm = epoch_permutation(n_train, 9, e);
        for (int64_t k = 0; k < steps; ++k) {
            plan.lr.push_back(lr_at(s, max_lr, e, k, steps, n_epochs));
        }
        plans.push_back(plan);
    }
    return plans;
}

TEST(OptimizerEpochs, EngineMatchesDoubleReference) {
    // 70 samples in batches of 32: steps of 32, 32 and 6, three epochs, so the
    // state and the step count must carry across epochs.
    const Dataset data = test::synthetic_dataset(70, 20, 4, 5, 3);
    const ModelShape shape({20, 16, 8, 3});
    const auto init = init_params(shape, 3);
    OptimizerConfig adamw = adam(OptimizerKind::adamw, 0.05);
    OptimizerConfig adam_l2 = adam(OptimizerKind::adam, 0.01);
    for (const OptimizerConfig& c : {sgd(0.9, true, 0.01), sgd(0.8, false, 0.0), adam_l2, adamw}) {
        const double max_lr = c.kind == OptimizerKind::sgd ? 0.1 : 0.01;
        const auto plans = onecycle_plans(70, 32, 3, max_lr);
        TrainerOptions options;
        options.batch_size = 32;
        options.optimizer = c;
        auto trainer = make_cpu_trainer(shape, data, options);
        trainer->set_params(init);
        for (const EpochPlan& plan : plans) trainer->train_epoch(plan);
        const auto expected = reference_run(data, shape, init, c, plans, 32);
        EXPECT_LT(test::normalised_error(trainer->params(), expected), 2e-5)
            << to_string(c.kind) << " momentum " << c.momentum;
        EXPECT_EQ(trainer->optimizer_state().step, 9);
    }
}

TEST(OptimizerEpochs, StateRoundTripContinuesBitForBit) {
    const Dataset data = test::synthetic_dataset(100, 20, 4, 5, 3);
    const ModelShape shape({20, 12, 3});
    TrainerOptions options;
    options.batch_size = 16;
    options.optimizer = adam(OptimizerKind::adamw, 0.01);
    const auto plans = onecycle_plans(100, 16, 3, 0.01);
    auto straight = make_cpu_trainer(shape, data, options);
    straight->set_params(init_params(shape, 1));
    for (const EpochPlan& plan : plans) straight->train_epoch(plan);

    auto first = make_cpu_trainer(shape, data, options);
    first->set_params(init_params(shape, 1));
    first->train_epoch(plans[0]);
    auto second = make_cpu_trainer(shape, data, options);
    second->set_params(first->params());
    second->set_optimizer_state(first->optimizer_state());
    second->train_epoch(plans[1]);
    second->train_epoch(plans[2]);
    EXPECT_EQ(second->params(), straight->params());
    EXPECT_EQ(second->optimizer_state().buffers, straight->optimizer_state().buffers);
}

TEST(OptimizerEpochs, StateOfAnotherShapeIsRefused) {
    const Dataset data = test::synthetic_dataset(10, 5, 4, 5, 3);
    TrainerOptions options;
    options.optimizer = adam(OptimizerKind::adam, 0.0);
    auto trainer = make_cpu_trainer(ModelShape({20, 3}), data, options);
    OptimizerState state;
    state.buffers = {std::vector<float>(63), std::vector<float>(62)};
    EXPECT_THROW(trainer->set_optimizer_state(state), Error);
    state.buffers.pop_back();
    EXPECT_THROW(trainer->set_optimizer_state(state), Error);
}

TEST(GradNorm, EpochReportsTheNormOfTheStepGradient) {
    // One step per epoch: the reported norm is that step's gradient norm.
    const Dataset data = test::synthetic_dataset(24, 5, 4, 5, 3);
    const ModelShape shape({20, 10, 3});
    TrainerOptions options;
    options.batch_size = 32;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(init_params(shape, 7));
    const auto perm = epoch_permutation(24, 7, 0);
    const auto g = trainer->gradients(perm, nullptr);
    double sq = 0.0;
    for (float v : g) sq += double(v) * double(v);
    const EpochResult r = trainer->train_epoch(perm, 0.1f);
    EXPECT_GT(r.grad_norm, 0.0);
    EXPECT_NEAR(r.grad_norm, std::sqrt(sq), 1e-5 * std::sqrt(sq));
}

}  // namespace
}  // namespace mlp
