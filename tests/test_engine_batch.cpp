// The engine (host/train/engine.hpp) over a batch of models against the same
// engine over one model, on the CPU backend: model k of a batch ends bit for
// bit where a trainer with model k's options ends, whatever the others do
// (other update scalars, momentum or none, sitting an epoch out, diverging, training on
// its own subset of the training set),
// on the generic and the fused path; its state reads and writes per model;
// and the batched GEMM is the GEMM per model.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "host/base/rng.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/model/model.hpp"
#include "host/train/engine_host.hpp"
#include "host/train/trainer.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

const ModelShape k_shape({20, 8, 6, 3});

EpochPlan plan_of(int64_t n_train, int64_t n_steps, uint64_t seed, int64_t epoch, double lr,
                  bool shifts) {
    EpochPlan plan;
    plan.perm = epoch_permutation(n_train, seed, epoch);
    for (int64_t k = 0; k < n_steps; ++k) plan.lr.push_back(lr * (1.0 - 0.02 * double(k)));
    if (shifts) plan.shifts = epoch_shifts(n_train, 1, seed, epoch);
    return plan;
}

struct Member {
    OptimizerConfig optimizer;
    uint64_t seed;
    double lr;
};

// Trains `members` as one batch for `n_epochs`, model `sits_out` skipping epoch 1, and each
// member alone with the same plans; expects identical parameters and state.
void expect_batch_matches_alone(const std::vector<Member>& members, TrainerOptions options,
                                bool shifts, int64_t sits_out = -1) {
    const Dataset data = test::synthetic_dataset(200, 50, 4, 5, 3);
    const int64_t n_epochs = 3;
    std::vector<OptimizerConfig> optimizers;
    for (const Member& m : members) optimizers.push_back(m.optimizer);
    options.cpu_threads = 2;
    auto batch = make_cpu_trainer(k_shape, data, options, optimizers);
    ASSERT_EQ(batch->n_models(), int64_t(members.size()));
    for (size_t k = 0; k < members.size(); ++k) {
        batch->set_params(int64_t(k), init_params(k_shape, members[k].seed));
    }
    const int64_t n_steps = batch->steps_per_epoch();
    std::vector<std::vector<EpochResult>> batch_results;
    for (int64_t e = 0; e < n_epochs; ++e) {
        for (size_t k = 0; k < members.size(); ++k) {
            if (int64_t(k) == sits_out && e == 1) continue;
            // A model that sat an epoch out plays the next one's plan late, as a resumed
            // sweep model does.
            const int64_t its_epoch = int64_t(k) == sits_out && e > 1 ? e - 1 : e;
            batch->plan_model(int64_t(k), plan_of(batch->n_train(), n_steps, members[k].seed,
                                                  its_epoch, members[k].lr, shifts));
        }
        batch_results.push_back(batch->train_models());
    }
    const std::vector<EpochResult> batch_test = batch->evaluate_models();

    for (size_t k = 0; k < members.size(); ++k) {
        TrainerOptions one = options;
        one.optimizer = members[k].optimizer;
        one.cpu_threads = 1;
        auto alone = make_cpu_trainer(k_shape, data, one);
        alone->set_params(init_params(k_shape, members[k].seed));
        const int64_t its_epochs = int64_t(k) == sits_out ? n_epochs - 1 : n_epochs;
        for (int64_t e = 0; e < its_epochs; ++e) {
            const EpochResult r = alone->train_epoch(
                plan_of(alone->n_train(), n_steps, members[k].seed, e, members[k].lr, shifts));
            const int64_t batch_epoch = int64_t(k) == sits_out && e >= 1 ? e + 1 : e;
            const EpochResult& b = batch_results[size_t(batch_epoch)][k];
            EXPECT_EQ(r.n_samples, b.n_samples) << "model " << k << " epoch " << e;
            if (std::isfinite(r.loss) || std::isfinite(b.loss)) {
                EXPECT_EQ(r.loss, b.loss) << "model " << k << " epoch " << e;
            }
            EXPECT_EQ(r.accuracy, b.accuracy) << "model " << k << " epoch " << e;
            EXPECT_EQ(r.grad_norm, b.grad_norm) << "model " << k << " epoch " << e;
            EXPECT_EQ(r.first_bad_step, b.first_bad_step) << "model " << k << " epoch " << e;
            EXPECT_EQ(r.skipped_steps, b.skipped_steps) << "model " << k << " epoch " << e;
        }
        if (sits_out >= 0) {
            EXPECT_EQ(batch_results[1][size_t(sits_out)].n_samples, 0);
        }
        EXPECT_TRUE(alone->params() == batch->params(int64_t(k))) << "model " << k;
        const OptimizerState a = alone->optimizer_state(), b = batch->optimizer_state(int64_t(k));
        EXPECT_EQ(a.step, b.step) << "model " << k;
        EXPECT_TRUE(a.buffers == b.buffers) << "model " << k;
        const EpochResult t = alone->evaluate();
        if (std::isfinite(t.loss)) {
            EXPECT_EQ(t.loss, batch_test[k].loss) << "model " << k;
        }
        EXPECT_EQ(t.accuracy, batch_test[k].accuracy) << "model " << k;
    }
}

OptimizerConfig sgd(double momentum, double weight_decay, bool nesterov = false) {
    OptimizerConfig o;
    o.kind = OptimizerKind::sgd;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    o.nesterov = nesterov;
    return o;
}

OptimizerConfig adam(OptimizerKind kind, double beta1, double beta2, double weight_decay) {
    OptimizerConfig o;
    o.kind = kind;
    o.beta1 = beta1;
    o.beta2 = beta2;
    o.weight_decay = weight_decay;
    return o;
}

TrainerOptions small_batches() {
    TrainerOptions o;
    o.batch_size = 16;
    o.eval_batch_size = 20;
    return o;
}

// Plain SGD beside momentum: the batch keeps momentum buffers, the plain model must not use one.
TEST(EngineBatch, SgdWithAndWithoutMomentumMatchesAlone) {
    expect_batch_matches_alone({{sgd(0.0, 0.0), 1, 0.1},
                                {sgd(0.9, 0.0), 2, 0.05},
                                {sgd(0.5, 1e-3), 3, 0.1},
                                {sgd(0.0, 5e-4), 4, 0.2}},
                               small_batches(), false);
}

TEST(EngineBatch, NesterovWithShiftsMatchesAlone) {
    expect_batch_matches_alone({{sgd(0.9, 0.0, true), 5, 0.05}, {sgd(0.8, 1e-4, true), 6, 0.02}},
                               small_batches(), true);
    // A model without momentum (no Nesterov flag) first: the batch still runs Nesterov's rule
    // for the others.
    expect_batch_matches_alone({{sgd(0.0, 0.0), 7, 0.1}, {sgd(0.9, 0.0, true), 8, 0.05}},
                               small_batches(), false);
}

TEST(EngineBatch, AdamwAndAdamWithOwnBetasMatchAlone) {
    expect_batch_matches_alone({{adam(OptimizerKind::adamw, 0.9, 0.999, 0.01), 1, 3e-3},
                                {adam(OptimizerKind::adamw, 0.8, 0.99, 0.0), 2, 1e-2},
                                {adam(OptimizerKind::adamw, 0.95, 0.9, 0.1), 3, 5e-3}},
                               small_batches(), true);
    expect_batch_matches_alone({{adam(OptimizerKind::adam, 0.9, 0.999, 1e-3), 4, 3e-3},
                                {adam(OptimizerKind::adam, 0.7, 0.98, 0.0), 5, 1e-2}},
                               small_batches(), false);
}

// A model that sits out an epoch keeps its state; it trains its next epoch later.
TEST(EngineBatch, ModelThatSitsOutAnEpochIsUntouched) {
    expect_batch_matches_alone(
        {{sgd(0.9, 0.0), 1, 0.1}, {sgd(0.9, 0.0), 2, 0.1}, {sgd(0.9, 0.0), 3, 0.1}},
        small_batches(), true, 1);
    expect_batch_matches_alone({{adam(OptimizerKind::adamw, 0.9, 0.999, 0.01), 1, 3e-3},
                                {adam(OptimizerKind::adamw, 0.9, 0.999, 0.01), 2, 3e-3}},
                               small_batches(), false, 0);
}

// The fused path over a batch: the CPU's fused operations take the batch through the same
// views, so model k of a fused batch is model k trained alone (fused, and so generic: the
// fused path is bit-identical to the generic one on the CPU, tests/test_fused.cpp), diverging
// models included.
TEST(EngineBatch, FusedBatchMatchesAlone) {
    TrainerOptions fused = small_batches();
    fused.kernels = KernelPath::fused;
    expect_batch_matches_alone({{sgd(0.9, 0.0), 1, 0.1}, {sgd(0.0, 1e-3), 2, 0.05}}, fused, true);
    expect_batch_matches_alone({{adam(OptimizerKind::adamw, 0.9, 0.999, 0.01), 1, 3e-3},
                                {adam(OptimizerKind::adamw, 0.8, 0.99, 0.0), 2, 1e-2}},
                               fused, false, 1);
    fused.on_nan = NanPolicy::skip_batch;
    expect_batch_matches_alone({{sgd(0.9, 0.0), 1, 1e30}, {sgd(0.9, 0.0), 2, 0.1}}, fused, false);
}

TEST(EngineBatch, FusedBatchEqualsGenericBatch) {
    const Dataset data = test::synthetic_dataset(200, 50, 4, 5, 3);
    std::vector<std::vector<float>> params[2];
    for (KernelPath path : {KernelPath::generic, KernelPath::fused}) {
        TrainerOptions options = small_batches();
        options.kernels = path;
        auto batch = make_cpu_trainer(k_shape, data, options, {sgd(0.9, 0.0), sgd(0.5, 1e-3)});
        for (int64_t k = 0; k < 2; ++k) batch->set_params(k, init_params(k_shape, uint64_t(k)));
        for (int64_t e = 0; e < 2; ++e) {
            for (int64_t k = 0; k < 2; ++k) {
                batch->plan_model(k, plan_of(batch->n_train(), batch->steps_per_epoch(),
                                             uint64_t(k), e, 0.1, true));
            }
            batch->train_models();
        }
        for (int64_t k = 0; k < 2; ++k) {
            params[path == KernelPath::fused].push_back(batch->params(k));
        }
    }
    EXPECT_TRUE(params[0] == params[1]);
}

// One model diverges: its guard marks it (stop, or skipped steps), the others train on as if
// it were not there.
TEST(EngineBatch, DivergingModelLeavesTheOthersAlone) {
    TrainerOptions stop = small_batches();
    stop.on_nan = NanPolicy::stop;
    expect_batch_matches_alone({{sgd(0.0, 0.0), 1, 0.1}, {sgd(0.0, 0.0), 2, 1e30}}, stop, false);
    TrainerOptions skip = small_batches();
    skip.on_nan = NanPolicy::skip_batch;
    expect_batch_matches_alone({{sgd(0.9, 0.0), 1, 1e30}, {sgd(0.9, 0.0), 2, 0.1}}, skip, false);
}

// The training samples `subset` of `data`, in that order, as a data set of their own.
Dataset subset_of(const Dataset& data, const std::vector<int32_t>& subset) {
    Dataset d = data;
    Split& s = d.train;
    const int64_t n_features = data.train.images.n_features();
    s.images.pixels.clear();
    s.labels.labels.clear();
    for (int32_t i : subset) {
        const auto row = data.train.images.pixels.begin() + int64_t(i) * n_features;
        s.images.pixels.insert(s.images.pixels.end(), row, row + n_features);
        s.labels.labels.push_back(data.train.labels.labels[size_t(i)]);
    }
    s.images.n_items = s.labels.n_items = int64_t(subset.size());
    return d;
}

// Models that train on their own subsets of one training set (cross-validation folds), of
// sizes that end their epochs at different steps and with different last batches: model k of
// the batch ends bit for bit where a trainer on a data set of its subset alone ends, with the
// same orders, rates and shifts (positions of its subset), on both paths, recorded as a graph
// or not, one model sitting an epoch out.
TEST(EngineBatch, ModelsOnTheirOwnSubsetsMatchAlone) {
    const Dataset data = test::synthetic_dataset(200, 50, 4, 5, 3);
    // 200 and 160: 13 and 10 whole steps of 16; 165, 150: 11 and 10 steps, the last of 5 and
    // 6 samples; 37: 3 steps; 7: one step of 7. Models 1 and 2 share their last step's launch.
    const std::vector<int64_t> sizes = {200, 165, 165, 150, 37, 160, 7};
    std::vector<std::vector<int32_t>> subsets;
    for (size_t k = 0; k < sizes.size(); ++k) {
        const std::vector<int32_t> p = epoch_permutation(200, 100 + k, 0);
        subsets.emplace_back(p.begin(), p.begin() + sizes[k]);
    }
    for (KernelPath path : {KernelPath::generic, KernelPath::fused}) {
        for (bool graph : {true, false}) {
            for (bool shifts : {false, true}) {
                TrainerOptions options = small_batches();
                options.kernels = path;
                options.use_graph = graph;
                options.cpu_threads = 2;
                std::vector<OptimizerConfig> optimizers;
                for (size_t k = 0; k < sizes.size(); ++k) {
                    optimizers.push_back(sgd(k % 2 ? 0.9 : 0.0, k == 2 ? 1e-3 : 0.0));
                }
                auto batch = make_cpu_trainer(k_shape, data, options, optimizers);
                const int64_t n_epochs = 3, sits_out = 3;
                std::vector<std::vector<EpochResult>> results;
                for (size_t k = 0; k < sizes.size(); ++k) {
                    batch->set_params(int64_t(k), init_params(k_shape, k));
                }
                for (int64_t e = 0; e < n_epochs; ++e) {
                    for (size_t k = 0; k < sizes.size(); ++k) {
                        if (int64_t(k) == sits_out && e == 1) continue;
                        EpochPlan plan = plan_of(sizes[k], ceil_div(sizes[k], options.batch_size),
                                                 k, e, 0.1, shifts);
                        for (int32_t& i : plan.perm) i = subsets[k][size_t(i)];
                        batch->plan_model(int64_t(k), plan);
                    }
                    results.push_back(batch->train_models());
                }
                for (size_t k = 0; k < sizes.size(); ++k) {
                    TrainerOptions one = options;
                    one.optimizer = optimizers[k];
                    one.cpu_threads = 1;
                    auto alone = make_cpu_trainer(k_shape, subset_of(data, subsets[k]), one);
                    alone->set_params(init_params(k_shape, k));
                    for (int64_t e = 0; e < n_epochs; ++e) {
                        const std::string where = "model " + std::to_string(k) + " epoch " +
                                                  std::to_string(e) + (graph ? " graph" : "") +
                                                  (shifts ? " shifts" : "") +
                                                  (path == KernelPath::fused ? " fused" : "");
                        if (int64_t(k) == sits_out && e == 1) {
                            EXPECT_EQ(results[size_t(e)][k].n_samples, 0) << where;
                            continue;
                        }
                        const EpochResult r = alone->train_epoch(
                            plan_of(sizes[k], alone->steps_per_epoch(), k, e, 0.1, shifts));
                        const EpochResult& b = results[size_t(e)][k];
                        EXPECT_EQ(r.n_samples, sizes[k]) << where;
                        EXPECT_EQ(r.n_samples, b.n_samples) << where;
                        EXPECT_EQ(r.loss, b.loss) << where;
                        EXPECT_EQ(r.accuracy, b.accuracy) << where;
                        EXPECT_EQ(r.grad_norm, b.grad_norm) << where;
                    }
                    EXPECT_TRUE(alone->params() == batch->params(int64_t(k))) << "model " << k;
                    const OptimizerState a = alone->optimizer_state();
                    const OptimizerState b = batch->optimizer_state(int64_t(k));
                    EXPECT_EQ(a.step, b.step) << "model " << k;
                    EXPECT_TRUE(a.buffers == b.buffers) << "model " << k;
                }
            }
        }
    }
}

// The launches of a step: consecutive models with the same sample count share one, a model
// whose order has ended is in none.
TEST(EngineBatch, StepGroupsSplitOnlyWhereTheCountsDiffer) {
    auto groups = [](const std::vector<int64_t>& n, int64_t first) {
        std::vector<std::vector<int64_t>> out;
        std::vector<StepGroup> step;
        append_step_groups(step, n, first, 16);
        for (const StepGroup& g : step) {
            out.push_back({g.k0, g.n_models, g.n_batch});
        }
        return out;
    };
    using G = std::vector<std::vector<int64_t>>;
    EXPECT_EQ(groups({200, 200, 200}, 0), (G{{0, 3, 16}}));
    EXPECT_EQ(groups({165, 200, 150, 37}, 0), (G{{0, 4, 16}}));
    EXPECT_EQ(groups({165, 200, 150, 37}, 32), (G{{0, 3, 16}, {3, 1, 5}}));
    EXPECT_EQ(groups({165, 200, 150, 37}, 144), (G{{0, 2, 16}, {2, 1, 6}}));
    EXPECT_EQ(groups({165, 200, 165, 165}, 160), (G{{0, 1, 5}, {1, 1, 16}, {2, 2, 5}}));
    EXPECT_EQ(groups({165, 200, 150, 37}, 192), (G{{1, 1, 8}}));
}

TEST(EngineBatch, RefusesWhatItCannotBatch) {
    const Dataset data = test::synthetic_dataset(40, 10, 4, 5, 3);
    TrainerOptions options = small_batches();
    EXPECT_EQ(make_cpu_trainer(k_shape, data, options, {})->n_models(), 1);
    EXPECT_THROW(make_cpu_trainer(k_shape, data, options,
                                  {sgd(0.0, 0.0), adam(OptimizerKind::adam, 0.9, 0.999, 0)}),
                 Error);
    EXPECT_THROW(make_cpu_trainer(k_shape, data, options, {sgd(0.9, 0.0, true), sgd(0.5, 0)}),
                 Error);
    auto batch = make_cpu_trainer(k_shape, data, options, {sgd(0.0, 0.0), sgd(0.9, 0)});
    EXPECT_THROW(batch->train_models(), Error);  // nothing planned
    EXPECT_THROW(batch->params(), Error);        // which model?
    EXPECT_THROW(batch->params(2), Error);
    EXPECT_THROW(batch->set_params(0, std::vector<float>(3)), Error);
    OptimizerState none;
    EXPECT_NO_THROW(batch->set_optimizer_state(0, none));  // plain SGD keeps no buffer
    EXPECT_THROW(batch->set_optimizer_state(1, none), Error);
    EpochPlan plan = plan_of(batch->n_train(), batch->steps_per_epoch(), 1, 0, 0.1, true);
    batch->plan_model(0, plan);
    plan.shifts.clear();
    EXPECT_THROW(batch->plan_model(1, plan), Error);  // shifts for one, none for the other
    plan.lr.pop_back();
    EXPECT_THROW(batch->plan_model(0, plan), Error);
    // A subset's order needs a rate for each of its own steps, and shifts for its positions.
    EpochPlan part = plan_of(20, 2, 1, 0, 0.1, true);
    EXPECT_NO_THROW(batch->plan_model(1, part));
    part.lr.push_back(0.1);
    EXPECT_THROW(batch->plan_model(1, part), Error);
    part.lr.pop_back();
    part.shifts.assign(2 * 40, 0);
    EXPECT_THROW(batch->plan_model(1, part), Error);
    part.perm.clear();
    EXPECT_THROW(batch->plan_model(1, part), Error);  // an empty order
}

// Model k's parameters, gradients and optimizer state start model_stride() values after
// model k - 1's: the parameter count rounded up to 64 floats, so every model's slice is
// 256-byte aligned as model 0's is (one strided-batched GEMM serves them all with aligned
// loads), and the models stay byte-identical to the same models alone (the tests above).
TEST(EngineBatch, ModelSlicesStartOn256ByteBoundaries) {
    for (const ModelShape& shape :
         {ModelShape({784, 128, 64, 10}), k_shape, ModelShape({20, 3}), ModelShape({4, 4, 4})}) {
        const int64_t stride = model_stride(shape);
        EXPECT_EQ(stride % 64, 0) << shape.to_string();
        EXPECT_GE(stride, shape.n_params()) << shape.to_string();
        EXPECT_LT(stride, shape.n_params() + 64) << shape.to_string();
    }
    EXPECT_EQ(model_stride(ModelShape({784, 128, 64, 10})), 109440);  // 109,386 parameters
}

// gemm_batched is gemm per model, bit for bit, for every transpose the engine uses.
TEST(EngineBatch, BatchedGemmIsTheGemmOfEachModel) {
    CpuBackend be;
    const int64_t m = 7, n = 5, k = 9, n_models = 3;
    const int64_t stride_a = 80, stride_b = 60, stride_c = 40;
    std::vector<float> a(size_t(n_models * stride_a)), b(size_t(n_models * stride_b));
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(std::sin(double(i))) * 3.0f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(std::cos(double(i) * 0.7));
    for (Trans ta : {Trans::N, Trans::T}) {
        for (Trans tb : {Trans::N, Trans::T}) {
            const int64_t lda = ta == Trans::N ? m : k, ldb = tb == Trans::N ? k : n;
            std::vector<float> batched(size_t(n_models * stride_c), -1.0f);
            std::vector<float> one(size_t(n_models * stride_c), -1.0f);
            be.gemm_batched(ta, tb, m, n, k, a.data(), lda, stride_a, b.data(), ldb, stride_b,
                            batched.data(), m, stride_c, n_models);
            for (int64_t i = 0; i < n_models; ++i) {
                be.gemm(ta, tb, m, n, k, a.data() + i * stride_a, lda, b.data() + i * stride_b, ldb,
                        one.data() + i * stride_c, m);
            }
            EXPECT_TRUE(batched == one);
            EXPECT_EQ(batched[size_t(m * n)], -1.0f);  // nothing written past a model's C
        }
    }
}

}  // namespace
}  // namespace mlp
