// Learning-rate schedules against values worked out by hand from PyTorch's
// formulas, and the epoch plan (order, rates, shifts) as a pure function of
// the config and the epoch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "host/base/error.hpp"
#include "host/base/rng.hpp"
#include "host/config/schedule.hpp"
#include "host/train/train_loop.hpp"

namespace mlp {
namespace {

using ::testing::HasSubstr;

ScheduleConfig schedule(ScheduleKind kind) {
    ScheduleConfig s;
    s.kind = kind;
    return s;
}

TEST(Schedule, ConstantIgnoresThePosition) {
    const ScheduleConfig s = schedule(ScheduleKind::constant);
    EXPECT_EQ(lr_at(s, 0.1, 0, 0, 10, 3), 0.1);
    EXPECT_EQ(lr_at(s, 0.1, 2, 9, 10, 3), 0.1);
}

TEST(Schedule, StepDecaysEveryStepSizeEpochs) {
    // StepLR(step_size=2, gamma=0.5) stepped per epoch.
    ScheduleConfig s = schedule(ScheduleKind::step);
    s.gamma = 0.5;
    s.step_size = 2;
    const double expected[] = {1.0, 1.0, 0.5, 0.5, 0.25};
    for (int e = 0; e < 5; ++e) {
        EXPECT_DOUBLE_EQ(lr_at(s, 1.0, e, 0, 7, 5), expected[e]) << e;
        EXPECT_DOUBLE_EQ(lr_at(s, 1.0, e, 6, 7, 5), expected[e]) << e;
    }
    s.step_size = 0;
    EXPECT_THROW(lr_at(s, 1.0, 0, 0, 7, 5), Error);
}

TEST(Schedule, CosineFollowsTheHalfWaveOverTheEpochs) {
    // CosineAnnealingLR(T_max=4, eta_min=0) stepped per epoch:
    // lr_e = lr (1 + cos(pi e / 4)) / 2.
    const ScheduleConfig s = schedule(ScheduleKind::cosine);
    const double expected[] = {1.0, 0.8535533905932737, 0.5, 0.14644660940672624};
    for (int e = 0; e < 4; ++e) {
        EXPECT_NEAR(lr_at(s, 1.0, e, 3, 5, 4), expected[e], 1e-15) << e;
    }
}

TEST(Schedule, OneCycleMatchesPyTorchsDefaults) {
    // OneCycleLR(max_lr=1, total_steps=10): pct_start 0.3 ends the warm-up at
    // step 0.3 * 10 - 1 = 2; initial lr 1/25 = 0.04, final 0.04/1e4 = 4e-6;
    // cosine annealing: lr = end + (start - end) / 2 * (cos(pi pct) + 1).
    const ScheduleConfig s = schedule(ScheduleKind::onecycle);
    auto at = [&](int64_t t) { return lr_at(s, 1.0, t / 5, t % 5, 5, 2); };
    EXPECT_NEAR(at(0), 0.04, 1e-15);
    EXPECT_NEAR(at(1), 0.52, 1e-15);  // half way: (0.04 + 1) / 2
    EXPECT_NEAR(at(2), 1.0, 1e-15);
    EXPECT_NEAR(at(3), 4e-6 + (1.0 - 4e-6) / 2.0 * (std::cos(M_PI / 7.0) + 1.0), 1e-15);
    EXPECT_NEAR(at(3), 0.9504846, 1e-7);
    EXPECT_NEAR(at(9), 4e-6, 1e-15);
    for (int64_t t = 3; t < 10; ++t) EXPECT_LT(at(t), at(t - 1)) << t;
}

TEST(Schedule, OneCycleRefusesToRunPastItsEndOrWithoutPhases) {
    ScheduleConfig s = schedule(ScheduleKind::onecycle);
    try {
        lr_at(s, 1.0, 2, 0, 5, 2);
        FAIL() << "stepped past the end";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr("past its end"));
    }
    s.warmup_pct = 1.0;
    EXPECT_THROW(lr_at(s, 1.0, 0, 0, 5, 2), Error);
    s.warmup_pct = 0.1;  // 0.1 * 10 - 1 = 0: PyTorch would divide by zero
    EXPECT_THROW(lr_at(s, 1.0, 0, 0, 5, 2), Error);
}

TEST(Schedule, NamesRoundTrip) {
    for (ScheduleKind k : {ScheduleKind::constant, ScheduleKind::step, ScheduleKind::cosine,
                           ScheduleKind::onecycle}) {
        EXPECT_EQ(parse_schedule_kind(to_string(k)), k);
    }
    EXPECT_THROW(parse_schedule_kind("linear"), Error);
}

TEST(EpochShifts, StayInRangeCoverItAndDependOnlyOnSeedAndEpoch) {
    const auto a = epoch_shifts(5000, 2, 42, 3);
    ASSERT_EQ(a.size(), 10000u);
    std::set<int> seen(a.begin(), a.end());
    EXPECT_EQ(seen, (std::set<int>{-2, -1, 0, 1, 2}));
    EXPECT_EQ(a, epoch_shifts(5000, 2, 42, 3));
    EXPECT_NE(a, epoch_shifts(5000, 2, 42, 4));
    EXPECT_NE(a, epoch_shifts(5000, 2, 43, 3));
    for (int8_t d : epoch_shifts(100, 0, 1, 0)) EXPECT_EQ(d, 0);
    EXPECT_THROW(epoch_shifts(10, 128, 1, 0), Error);
}

TEST(EpochPlan, IsAPureFunctionOfConfigAndEpoch) {
    TrainConfig config;
    config.epochs = 4;
    config.lr = 0.5f;
    config.schedule.kind = ScheduleKind::onecycle;
    config.augment_shift = 3;
    const EpochPlan a = make_epoch_plan(config, 100, 7, 2);
    const EpochPlan b = make_epoch_plan(config, 100, 7, 2);
    EXPECT_EQ(a.perm, b.perm);
    EXPECT_EQ(a.lr, b.lr);
    EXPECT_EQ(a.shifts, b.shifts);
    EXPECT_EQ(a.perm, epoch_permutation(100, config.seed, 2));
    ASSERT_EQ(a.lr.size(), 7u);
    for (int k = 0; k < 7; ++k) {
        EXPECT_EQ(a.lr[size_t(k)], lr_at(config.schedule, 0.5, 2, k, 7, 4));
    }
    EXPECT_EQ(a.shifts, epoch_shifts(100, 3, config.seed, 2));
    config.augment_shift = 0;
    EXPECT_TRUE(make_epoch_plan(config, 100, 7, 2).shifts.empty());
    // --schedule-epochs stretches the schedule beyond the run.
    config.schedule_epochs = 8;
    EXPECT_EQ(make_epoch_plan(config, 100, 7, 2).lr[3], lr_at(config.schedule, 0.5, 2, 3, 7, 8));
}

}  // namespace
}  // namespace mlp
