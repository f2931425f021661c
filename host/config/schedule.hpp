// Learning-rate schedules: the value PyTorch's schedulers give, as a pure
// function of the position in training, so that a resumed run recomputes
// exactly the rates an uninterrupted one used. StepLR and CosineAnnealingLR
// are stepped once per epoch (as PyTorch examples do); OneCycleLR is stepped
// per batch. Computed on the host in double for every step of an epoch and
// uploaded with the epoch order (host/train/engine.hpp).
#pragma once

#include <cstdint>
#include <string>

namespace mlp {

enum class ScheduleKind { constant, step, cosine, onecycle };

// The schedules by name (host/config/names.hpp), with the facts the checks read.
struct ScheduleInfo {
    const char* name;
    ScheduleKind value;
    const char* help;
    const char* flags;       // the schedule's own flags, space-separated
    bool depends_on_epochs;  // the rates follow the total number of epochs
};

constexpr ScheduleInfo k_schedules[] = {
    {"constant", ScheduleKind::constant, "", "", false},
    {"step", ScheduleKind::step, "per epoch", "--gamma --step-size", false},
    {"cosine", ScheduleKind::cosine, "per epoch, to 0", "--schedule-epochs", true},
    {"onecycle", ScheduleKind::onecycle, "per step; --lr is the peak",
     "--warmup-pct --schedule-epochs", true},
};

const ScheduleInfo& schedule_info(ScheduleKind kind);

struct ScheduleConfig {
    ScheduleKind kind = ScheduleKind::constant;
    double gamma = 0.1;       // step: factor applied every step_size epochs (StepLR)
    int64_t step_size = 0;    // step: epochs between decays, > 0
    double warmup_pct = 0.3;  // onecycle: fraction of all steps spent warming up (pct_start)
    // onecycle, PyTorch's defaults: start at max_lr / div_factor, end at
    // start / final_div_factor, cosine annealing in both phases.
    double div_factor = 25.0;
    double final_div_factor = 1e4;
};

// Learning rate of step `step` (0-based) of epoch `epoch` (0-based), for a
// run of `total_epochs` epochs of `steps_per_epoch` steps each:
//   constant  base_lr
//   step      base_lr * gamma^floor(epoch / step_size)
//   cosine    base_lr * (1 + cos(pi * epoch / total_epochs)) / 2  (T_max = total_epochs,
//             eta_min = 0)
//   onecycle  OneCycleLR(max_lr = base_lr, total_steps = total_epochs * steps_per_epoch,
//             pct_start = warmup_pct, anneal_strategy "cos", three_phase off) at global
//             step epoch * steps_per_epoch + step; momentum is not cycled (PyTorch's
//             cycle_momentum would also cycle SGD momentum or Adam's beta1)
// total_epochs is the span of the schedule (T_max, OneCycleLR's epochs), which
// may exceed the epochs a run trains; cosine continues past it as PyTorch's
// does, onecycle throws like PyTorch's.
// Throws Error for a configuration no schedule can follow (step_size <= 0 for
// step, warmup_pct outside (0, 1) or too few steps for onecycle).
double lr_at(const ScheduleConfig& schedule, double base_lr, int64_t epoch, int64_t step,
             int64_t steps_per_epoch, int64_t total_epochs);

// The names of k_schedules; parse throws UsageError naming --schedule and the value.
std::string to_string(ScheduleKind kind);
ScheduleKind parse_schedule_kind(const std::string& name);

// True when the rates depend on the total number of epochs (cosine, onecycle).
bool schedule_depends_on_epochs(ScheduleKind kind);

}  // namespace mlp
