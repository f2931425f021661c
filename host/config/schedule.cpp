#include "host/config/schedule.hpp"

#include <cmath>

#include "host/base/error.hpp"
#include "host/config/names.hpp"

namespace mlp {

// PyTorch's _annealing_cos: from `start` at pct 0 to `end` at pct 1.
static double annealing_cos(double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(M_PI * pct) + 1.0);
}

// OneCycleLR.get_lr() with three_phase off: phase one ends at step
// pct_start * total - 1 (a float, as in PyTorch), phase two at total - 1.
static double one_cycle_lr(const ScheduleConfig& s, double max_lr, int64_t t, int64_t total_steps) {
    const double initial_lr = max_lr / s.div_factor;
    const double min_lr = initial_lr / s.final_div_factor;
    const double warmup_end = s.warmup_pct * double(total_steps) - 1.0;
    const double last = double(total_steps - 1);
    if (double(t) <= warmup_end) return annealing_cos(initial_lr, max_lr, double(t) / warmup_end);
    // warmup_end < 0 when the warm-up is shorter than one step; PyTorch then
    // anneals from the first step, and so does this.
    return annealing_cos(max_lr, min_lr, (double(t) - warmup_end) / (last - warmup_end));
}

double lr_at(const ScheduleConfig& s, double base_lr, int64_t epoch, int64_t step,
             int64_t steps_per_epoch, int64_t total_epochs) {
    if (epoch < 0 || step < 0 || steps_per_epoch <= 0 || step >= steps_per_epoch ||
        total_epochs <= 0) {
        throw Error("learning rate asked for step " + std::to_string(step) + " of epoch " +
                    std::to_string(epoch) + " in a run of " + std::to_string(total_epochs) +
                    " epochs of " + std::to_string(steps_per_epoch) + " steps");
    }
    switch (s.kind) {
        case ScheduleKind::constant:
            return base_lr;
        case ScheduleKind::step:
            if (s.step_size <= 0) throw Error("--step-size must be positive for --schedule step");
            return base_lr * std::pow(s.gamma, double(epoch / s.step_size));
        case ScheduleKind::cosine:
            return base_lr * (1.0 + std::cos(M_PI * double(epoch) / double(total_epochs))) / 2.0;
        case ScheduleKind::onecycle: {
            if (!(s.warmup_pct > 0.0 && s.warmup_pct < 1.0)) {
                throw Error("--warmup-pct must lie in (0, 1), got " + std::to_string(s.warmup_pct));
            }
            if (epoch >= total_epochs) {
                // PyTorch's OneCycleLR refuses to step past its end as well.
                throw Error("--schedule onecycle spans " + std::to_string(total_epochs) +
                            " epochs; epoch " + std::to_string(epoch + 1) + " is past its end");
            }
            const int64_t total_steps = total_epochs * steps_per_epoch;
            // Phase one's end must lie before the last step and not at step 0,
            // where PyTorch would divide by zero.
            const double warmup_end = s.warmup_pct * double(total_steps) - 1.0;
            if (total_steps < 2 || warmup_end == 0.0 || warmup_end >= double(total_steps - 1)) {
                throw Error("--schedule onecycle needs more steps: " + std::to_string(total_steps) +
                            " steps with --warmup-pct " + std::to_string(s.warmup_pct) +
                            " leave no warm-up or no annealing phase");
            }
            return one_cycle_lr(s, base_lr, epoch * steps_per_epoch + step, total_steps);
        }
    }
    throw Error("unknown learning-rate schedule");
}

const ScheduleInfo& schedule_info(ScheduleKind kind) {
    return entry_of(k_schedules, kind);
}

std::string to_string(ScheduleKind kind) {
    return schedule_info(kind).name;
}

ScheduleKind parse_schedule_kind(const std::string& name) {
    return parse_name(k_schedules, name, "--schedule", "schedule").value;
}

bool schedule_depends_on_epochs(ScheduleKind kind) {
    return schedule_info(kind).depends_on_epochs;
}

}  // namespace mlp
