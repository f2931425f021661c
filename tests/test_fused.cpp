// The fused path (TrainerOptions::kernels = fused) on the CPU backend: the
// same functors in the same order as the generic path, so parameters, losses,
// gradient norms and step statuses must agree bit for bit. The CUDA backend's
// fused kernels are checked against this path by tests/gpu/test_fused.cu.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "host/base/error.hpp"
#include "host/base/rng.hpp"
#include "host/config/train_config.hpp"
#include "host/config/kernel_options.hpp"
#include "host/train/train_loop.hpp"
#include "host/train/trainer.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

struct PathRun {
    std::vector<float> params;
    std::vector<EpochResult> epochs;
    EpochResult eval;
    std::vector<uint8_t> predictions;
    std::vector<float> gradients;
    double gradient_loss = 0.0;
};

OptimizerConfig adamw() {
    OptimizerConfig o;
    o.kind = OptimizerKind::adamw;
    o.weight_decay = 0.01;
    return o;
}

PathRun train(KernelPath kernels, const Dataset& data, const ModelShape& shape, int64_t batch,
              const OptimizerConfig& optimizer, bool shifts, int epochs = 2,
              std::vector<float> init = {}) {
    TrainerOptions options;
    options.batch_size = batch;
    options.optimizer = optimizer;
    options.kernels = kernels;
    options.on_nan = NanPolicy::skip_batch;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(init.empty() ? init_params(shape, 7) : init);
    TrainConfig config;
    config.lr = optimizer.kind == OptimizerKind::sgd ? 0.1f : 0.003f;
    config.epochs = epochs;
    config.schedule.kind = ScheduleKind::onecycle;
    config.augment_shift = shifts ? 1 : 0;
    PathRun run;
    for (int e = 0; e < epochs; ++e) {
        run.epochs.push_back(trainer->train_epoch(
            make_epoch_plan(config, data.train.size(), trainer->steps_per_epoch(), e)));
    }
    run.eval = trainer->evaluate();
    run.predictions = trainer->test_predictions();
    run.params = trainer->params();
    const int64_t n = std::min<int64_t>(batch, data.train.size());
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t(data.train.size() - 1 - i);
    run.gradients = trainer->gradients(ids, &run.gradient_loss);
    return run;
}

void expect_identical(const PathRun& fused, const PathRun& generic) {
    ASSERT_EQ(fused.epochs.size(), generic.epochs.size());
    for (size_t e = 0; e < fused.epochs.size(); ++e) {
        EXPECT_EQ(fused.epochs[e].loss, generic.epochs[e].loss) << e;
        EXPECT_EQ(fused.epochs[e].accuracy, generic.epochs[e].accuracy) << e;
        EXPECT_EQ(fused.epochs[e].grad_norm, generic.epochs[e].grad_norm) << e;
        EXPECT_EQ(fused.epochs[e].first_bad_step, generic.epochs[e].first_bad_step) << e;
        EXPECT_EQ(fused.epochs[e].skipped_steps, generic.epochs[e].skipped_steps) << e;
    }
    EXPECT_EQ(fused.params, generic.params);
    EXPECT_EQ(fused.eval.loss, generic.eval.loss);
    EXPECT_EQ(fused.predictions, generic.predictions);
    EXPECT_EQ(fused.gradients, generic.gradients);
    EXPECT_EQ(fused.gradient_loss, generic.gradient_loss);
}

void expect_paths_agree(const Dataset& data, const ModelShape& shape, int64_t batch,
                        const OptimizerConfig& optimizer, bool shifts) {
    const PathRun generic = train(KernelPath::generic, data, shape, batch, optimizer, shifts);
    const PathRun fused = train(KernelPath::fused, data, shape, batch, optimizer, shifts);
    expect_identical(fused, generic);
    // The runs must have trained, or equality would prove nothing.
    EXPECT_NE(generic.params, init_params(shape, 7));
}

TEST(FusedCpu, DefaultShapeEqualsGenericBitForBit) {
    const Dataset data = test::synthetic_dataset(300, 50, 28, 28, 10);
    expect_paths_agree(data, ModelShape({784, 128, 64, 10}), 64, OptimizerConfig{}, false);
}

TEST(FusedCpu, AdamwShiftsEqualsGenericBitForBit) {
    const Dataset data = test::synthetic_dataset(200, 40, 6, 7, 5);
    expect_paths_agree(data, ModelShape({42, 13, 9, 5}), 32, adamw(), true);
}

// A last batch of 1 (65 = 2 x 32 + 1) and of 33 (97 = 64 + 33), hidden sizes
// that are not multiples of 8, and 2 and 47 classes.
TEST(FusedCpu, PartialBatchesAndOddSizesEqualGenericBitForBit) {
    expect_paths_agree(test::synthetic_dataset(65, 20, 4, 5, 2), ModelShape({20, 11, 2}), 32,
                       OptimizerConfig{}, false);
    expect_paths_agree(test::synthetic_dataset(97, 20, 4, 5, 47), ModelShape({20, 37, 13, 47}), 64,
                       adamw(), false);
}

TEST(FusedCpu, DeepModelEqualsGenericBitForBit) {
    // Four hidden layers: each input gradient has its own buffer on the fused path.
    const Dataset data = test::synthetic_dataset(130, 20, 4, 5, 3);
    OptimizerConfig momentum;
    momentum.momentum = 0.9;
    momentum.nesterov = true;
    expect_paths_agree(data, ModelShape({20, 17, 15, 9, 7, 3}), 16, momentum, true);
}

TEST(FusedCpu, NonFiniteStepsAreGuardedLikeGeneric) {
    const Dataset data = test::synthetic_dataset(100, 20, 4, 5, 3);
    const ModelShape shape({20, 9, 3});
    std::vector<float> init = init_params(shape, 7);
    init[size_t(shape.weight_offset(1))] = std::numeric_limits<float>::infinity();
    const PathRun generic =
        train(KernelPath::generic, data, shape, 16, OptimizerConfig{}, false, 1, init);
    const PathRun fused =
        train(KernelPath::fused, data, shape, 16, OptimizerConfig{}, false, 1, init);
    ASSERT_GE(generic.epochs[0].first_bad_step, 0);
    EXPECT_EQ(fused.epochs[0].first_bad_step, generic.epochs[0].first_bad_step);
    EXPECT_EQ(fused.epochs[0].skipped_steps, generic.epochs[0].skipped_steps);
    // NaN != NaN: compare the bit patterns through the non-finite count.
    int64_t bad_generic = 0, bad_fused = 0;
    for (float v : generic.params) bad_generic += !std::isfinite(v);
    for (float v : fused.params) bad_fused += !std::isfinite(v);
    EXPECT_EQ(bad_fused, bad_generic);
}

TEST(FusedCpu, CpuRefusesTensorCorePrecisions) {
    const Dataset data = test::synthetic_dataset(10, 5, 4, 5, 3);
    for (Precision p : {Precision::tf32, Precision::bf16}) {
        TrainerOptions options;
        options.precision = p;
        try {
            make_cpu_trainer(ModelShape({20, 3}), data, options);
            FAIL() << to_string(p) << " was accepted on the CPU";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(to_string(p)), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
        }
    }
    TrainerOptions fp32;
    EXPECT_NO_THROW(make_cpu_trainer(ModelShape({20, 3}), data, fp32));
}

TEST(KernelOptions, NamesRoundTripAndUnknownNamesAreRefused) {
    for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
        EXPECT_EQ(parse_kernel_path(to_string(k)), k);
    }
    for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16}) {
        EXPECT_EQ(parse_precision(to_string(p)), p);
    }
    EXPECT_EQ(to_string(Precision::bf16), "bf16");
    EXPECT_NE(name_list_with_help(k_precisions).find("bf16"), std::string::npos);
    EXPECT_THROW(parse_kernel_path("fast"), UsageError);
    EXPECT_THROW(parse_precision("fp16"), UsageError);
    EXPECT_EQ(TrainerOptions{}.kernels, KernelPath::generic);
    EXPECT_EQ(TrainerOptions{}.precision, Precision::fp32);
}

}  // namespace
}  // namespace mlp
