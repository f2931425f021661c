// Whole training steps and epochs of the production code on the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>

#include "host/base/error.hpp"
#include "host/base/rng.hpp"
#include "host/config/train_config.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/train/engine.hpp"
#include "host/train/train_loop.hpp"
#include "host/train/trainer.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

// A 2-2-2 network, one sample, one step, worked out by hand:
//   x = (1, 0.2) (pixels 255, 51), label 0
//   W0 = [[1, 0], [0.5, -1]], b0 = (0, 0.1)   z0 = (1, 0.5 - 0.2 + 0.1) = (1, 0.4)
//   a0 = relu(z0) = (1, 0.4)
//   W1 = [[1, 1], [0, -1]], b1 = (0, 0)        z1 = (1.4, -0.4)
//   p = softmax(z1) = (1 / (1 + e^-1.8), e^-1.8 / (1 + e^-1.8)) = (0.858149, 0.141851)
//   dz1 = p - onehot(0) = (-0.141851, 0.141851)
//   dW1 = dz1 a0^T, db1 = dz1
//   da0 = W1^T dz1 = (-0.141851, -0.141851 - 0.141851) = (-0.141851, -0.283702)
//   dz0 = da0 (both z0 > 0); dW0 = dz0 x^T, db0 = dz0
// With lr 0.5: p_new = p - 0.5 * g.
TEST(SgdStep, MatchesHandComputedUpdate) {
    Dataset data;
    data.name = "hand";
    data.n_classes = 2;
    for (Split* s : {&data.train, &data.test}) {
        s->images = {1, 1, 2, {255, 51}};
        s->labels = {1, {0}};
    }
    const ModelShape shape({2, 2, 2});
    const std::vector<float> params = {1, 0, 0.5f, -1, 0, 0.1f, 1, 1, 0, -1, 0, 0};
    TrainerOptions options;
    options.batch_size = 1;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(params);
    const EpochResult r = trainer->train_epoch({0}, 0.5f);

    const double q = std::exp(-1.8) / (1.0 + std::exp(-1.8));  // 0.141851
    EXPECT_NEAR(r.loss, std::log(1.0 + std::exp(-1.8)), 1e-6);
    EXPECT_EQ(r.accuracy, 1.0);
    const std::vector<double> expected = {
        1 - 0.5 * (-q * 1.0),       0 - 0.5 * (-q * 0.2),        // W0 row 0
        0.5 - 0.5 * (-2 * q * 1.0), -1 - 0.5 * (-2 * q * 0.2),   // W0 row 1
        0 - 0.5 * (-q),             0.1 - 0.5 * (-2 * q),        // b0
        1 - 0.5 * (-q * 1.0),       1 - 0.5 * (-q * 0.4),        // W1 row 0
        0 - 0.5 * (q * 1.0),        -1 - 0.5 * (q * 0.4),        // W1 row 1
        0 - 0.5 * (-q),             0 - 0.5 * q};                // b1
    const auto after = trainer->params();
    ASSERT_EQ(after.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(after[i], expected[i], 1e-6) << i;
}

TEST(SgdEpoch, MatchesDoubleReferenceIncludingPartialLastBatch) {
    // 70 samples in batches of 32: steps of 32, 32 and 6. The last step's
    // gradient must be the mean over 6 samples, not 32.
    const Dataset data = test::synthetic_dataset(70, 20, 4, 5, 3);
    const ModelShape shape({20, 16, 8, 3});
    const auto init = init_params(shape, 3);
    TrainerOptions options;
    options.batch_size = 32;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(init);
    test::ReferenceMlp ref{shape, std::vector<double>(init.begin(), init.end())};
    for (int e = 0; e < 2; ++e) {
        const auto perm = epoch_permutation(70, 9, e);
        trainer->train_epoch(perm, 0.1f);
        ref.sgd_epoch(data.train, perm, 32, 0.1);
    }
    EXPECT_LT(test::normalised_error(trainer->params(), ref.params), 1e-5);
}

TEST(SgdEpoch, LearnsTheSyntheticClasses) {
    const Dataset data = test::synthetic_dataset(600, 150, 4, 5, 3);
    const ModelShape shape({20, 16, 3});
    TrainerOptions options;
    options.batch_size = 16;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(init_params(shape, 42));
    const double before = trainer->evaluate().loss;
    for (int e = 0; e < 3; ++e) trainer->train_epoch(epoch_permutation(600, 42, e), 0.1f);
    const EpochResult test = trainer->evaluate();
    EXPECT_LT(test.loss, 0.5 * before);
    EXPECT_GT(test.accuracy, 0.95);
    EXPECT_EQ(test.n_samples, 150);
}

TEST(Determinism, SameSeedGivesIdenticalParameters) {
    const Dataset data = test::synthetic_dataset(300, 30, 4, 5, 3);
    const ModelShape shape({20, 12, 6, 3});
    auto run = [&](uint64_t seed) {
        TrainerOptions options;
        options.batch_size = 64;  // several threads share the larger for_each ranges
        auto trainer = make_cpu_trainer(shape, data, options);
        trainer->set_params(init_params(shape, seed));
        for (int e = 0; e < 3; ++e) trainer->train_epoch(epoch_permutation(300, seed, e), 0.1f);
        return trainer->params();
    };
    const auto a = run(42);
    EXPECT_EQ(a, run(42));  // bit for bit
    EXPECT_NE(a, run(43));
}

TEST(Augmentation, ZeroShiftsTrainLikeNoShifts) {
    const Dataset data = test::synthetic_dataset(100, 10, 4, 5, 3);
    const ModelShape shape({20, 8, 3});
    auto run = [&](bool zero_shifts, int max_shift) {
        TrainerOptions options;
        options.batch_size = 16;
        auto trainer = make_cpu_trainer(shape, data, options);
        trainer->set_params(init_params(shape, 5));
        EpochPlan plan;
        plan.perm = epoch_permutation(100, 5, 0);
        plan.lr.assign(size_t(trainer->steps_per_epoch()), 0.1);
        if (zero_shifts) plan.shifts.assign(200, 0);
        if (max_shift > 0) plan.shifts = epoch_shifts(100, max_shift, 5, 0);
        trainer->train_epoch(plan);
        return trainer->params();
    };
    const auto plain = run(false, 0);
    EXPECT_EQ(run(true, 0), plain);  // bit for bit
    EXPECT_NE(run(false, 1), plain);
}

TEST(Trainer, RejectsMismatchedShapesAndOrders) {
    const Dataset data = test::synthetic_dataset(10, 5, 4, 5, 3);
    TrainerOptions options;
    EXPECT_THROW(make_cpu_trainer(ModelShape({19, 3}), data, options), Error);
    EXPECT_THROW(make_cpu_trainer(ModelShape({20, 2}), data, options), Error);
    auto trainer = make_cpu_trainer(ModelShape({20, 3}), data, options);
    EXPECT_THROW(trainer->set_params(std::vector<float>(5)), Error);
    // An order holds a subset of the training set (a cross-validation fold), not more.
    EXPECT_EQ(trainer->train_epoch({0, 1, 2}, 0.1f).n_samples, 3);
    EXPECT_THROW(trainer->train_epoch(std::vector<int32_t>(11, 0), 0.1f), Error);
    TrainerOptions fours;
    fours.batch_size = 4;
    auto small = make_cpu_trainer(ModelShape({20, 3}), data, fours);
    EXPECT_EQ(small->steps_per_epoch(), 3);
    EXPECT_EQ(small->train_epoch({0, 1, 2, 3, 4}, 0.1f).n_samples, 5);  // a subset: 2 steps
    EpochPlan plan;
    plan.perm = epoch_permutation(10, 1, 0);
    plan.lr = {0.1, 0.1};  // one step of 64 holds all 10 samples
    EXPECT_THROW(trainer->train_epoch(plan), Error);
    plan.lr = {0.1};
    plan.shifts = {1, 1};
    EXPECT_THROW(trainer->train_epoch(plan), Error);
}

// AdamW, a one-cycle schedule and shifts: everything the per-epoch device
// tables carry, so a value the recorded epoch took from the host would show.
EpochPlan recipe_plan(int64_t n_train, int64_t steps, int64_t epoch, bool shifts) {
    TrainConfig config;
    config.lr = 0.003f;
    config.epochs = 4;
    config.schedule.kind = ScheduleKind::onecycle;
    config.augment_shift = shifts ? 2 : 0;
    return make_epoch_plan(config, n_train, steps, epoch);
}

TrainerOptions recipe_options(bool use_graph, NanPolicy on_nan = NanPolicy::stop) {
    TrainerOptions options;
    options.batch_size = 32;  // 200 samples: 6 full steps and one of 8
    options.use_graph = use_graph;
    options.on_nan = on_nan;
    options.optimizer.kind = OptimizerKind::adamw;
    options.optimizer.weight_decay = 0.01;
    return options;
}

TEST(GraphReplay, ReplayedEpochsEqualSteppedOnesBitForBit) {
    const Dataset data = test::synthetic_dataset(200, 50, 4, 5, 3);
    const ModelShape shape({20, 12, 6, 3});
    for (NanPolicy on_nan : {NanPolicy::stop, NanPolicy::skip_batch}) {
        std::vector<std::vector<float>> params;
        std::vector<std::vector<double>> losses;
        for (bool use_graph : {false, true}) {
            auto trainer = make_cpu_trainer(shape, data, recipe_options(use_graph, on_nan));
            trainer->set_params(init_params(shape, 4));
            std::vector<double> loss;
            // Shifts on, off, on: each key's recording is replayed with new tables.
            for (int e = 0; e < 4; ++e) {
                const EpochPlan plan = recipe_plan(200, trainer->steps_per_epoch(), e, e != 1);
                loss.push_back(trainer->train_epoch(plan).loss);
                loss.push_back(trainer->evaluate().loss);
            }
            params.push_back(trainer->params());
            losses.push_back(loss);
        }
        EXPECT_EQ(params[1], params[0]);
        EXPECT_EQ(losses[1], losses[0]);
    }
}

TEST(GraphReplay, EpochIsRecordedOncePerKeyWith22LaunchesPerStep) {
    const Dataset data = test::synthetic_dataset(200, 50, 4, 5, 3);
    const ModelShape shape({20, 12, 6, 3});
    CpuBackend be;
    Engine<CpuBackend> engine(be, shape, data, recipe_options(true));
    engine.set_params(0, init_params(shape, 4));
    const int64_t steps = engine.steps_per_epoch();
    for (int e = 0; e < 3; ++e) {
        engine.plan_model(0, recipe_plan(200, steps, e, e != 1));
        engine.train_epoch();
    }
    // Per step: the gather, per layer a GEMM and the bias(+ReLU) epilogue;
    // the loss; per layer the weight-gradient GEMM and the bias gradient, and
    // below the top the input-gradient GEMM and ReLU backward; the two
    // gradient-norm passes, the guard and the update.
    const int64_t n_layers = shape.n_layers();
    const int64_t per_step = 1 + 2 * n_layers + 1 + 2 * n_layers + 2 * (n_layers - 1) + 4;
    EXPECT_EQ(per_step, 22);
    for (int64_t key : {0, 1}) {
        EXPECT_EQ(engine.train_graph().n_nodes(key), per_step * steps) << key;
    }
    std::cout << "recorded CPU epoch, model " << shape.to_string() << ": "
              << engine.train_graph().n_nodes(0) << " launches in " << steps << " steps ("
              << engine.train_graph().n_nodes(0) / steps << " per step)\n";
}

// ReLU used to map NaN to 0, so a NaN weight of a hidden unit left the loss
// finite and the guard never tripped (the NaN stayed in the model).
TEST(NonFiniteWeights, NanInAHiddenLayerReachesTheGuard) {
    const Dataset data = test::synthetic_dataset(64, 16, 4, 5, 3);
    const ModelShape shape({20, 8, 3});
    for (bool use_graph : {false, true}) {
        TrainerOptions options;
        options.batch_size = 16;
        options.use_graph = use_graph;
        auto trainer = make_cpu_trainer(shape, data, options);
        std::vector<float> params = init_params(shape, 1);
        params[size_t(shape.weight_offset(0))] = std::numeric_limits<float>::quiet_NaN();
        trainer->set_params(params);
        const EpochResult r = trainer->train_epoch(epoch_permutation(64, 1, 0), 0.1f);
        EXPECT_EQ(r.first_bad_step, 0);
        EXPECT_EQ(r.skipped_steps, trainer->steps_per_epoch());
        EXPECT_TRUE(std::isnan(r.loss));
        EXPECT_TRUE(std::isnan(trainer->evaluate().loss));
        EXPECT_EQ(trainer->params().back(), params.back());  // no update applied
    }
}

}  // namespace
}  // namespace mlp
