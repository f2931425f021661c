#include "host/config/train_config.hpp"

#include <sstream>
#include <vector>

#include "host/base/error.hpp"
#include "host/config/checks.hpp"
#include "host/config/names.hpp"

namespace mlp {

NanPolicy parse_nan_policy(const std::string& name) {
    return parse_name(k_nan_policies, name, "--on-nan", "policy").value;
}

std::string to_string(NanPolicy policy) {
    return entry_of(k_nan_policies, policy).name;
}

// Epoch counts stay far from overflowing a step count.
constexpr int64_t k_max_epochs = int64_t(1) << 30;

static bool has_flag(const char* flags, const std::string& flag) {
    std::istringstream words(flags);
    for (std::string w; words >> w;) {
        if (w == flag) return true;
    }
    return false;
}

// A flag that belongs to some entries of `table` (k_optimizers, k_schedules), given while
// another one is chosen: "--gamma: is for --schedule step".
template <class Entry, size_t N>
static void refuse_foreign_flags(const Entry (&table)[N], const Entry& chosen,
                                 const char* choice_flag, const GivenFlags& given) {
    for (const std::string& flag : given) {
        if (has_flag(chosen.flags, flag)) continue;
        std::vector<const char*> owners;
        for (const Entry& e : table) {
            if (has_flag(e.flags, flag)) owners.push_back(e.name);
        }
        if (owners.empty()) continue;  // not an optimizer's (schedule's) own flag
        std::string list;
        for (size_t i = 0; i < owners.size(); ++i) {
            if (i > 0) list += i + 1 == owners.size() ? " or " : ", ";
            list += owners[i];
        }
        throw UsageError(
            flag, "is for " + std::string(choice_flag) + " " + list + ", not " + chosen.name);
    }
}

void resolve_train_defaults(TrainConfig& t, const GivenFlags& given) {
    if (!given.count("--weight-decay")) {
        t.optimizer.weight_decay = optimizer_info(t.optimizer.kind).default_weight_decay;
    }
    if (t.checkpoint_every > 0 && t.checkpoint_path.empty()) {
        t.checkpoint_path =
            t.save_model_path.empty() ? "checkpoint.safetensors" : t.save_model_path;
    }
}

void check_data_config(const DataConfig& d) {
    parse_name(k_datasets, d.dataset, "--dataset", "data set");
    check_int("--train-samples", d.train_samples, 0);
    check_int("--test-samples", d.test_samples, 0);
    check_int("--max-input-mb", d.max_input_mb, 1, int64_t(1) << 20);
    check_int("--classes", d.classes, 0, k_max_classes);
}

void check_train_config(const TrainConfig& t, const GivenFlags& given) {
    check_data_config(t.data);
    for (int64_t width : t.hidden) check_int("--hidden", width, 1, k_max_batch_size);
    check_int("--batch-size", t.batch_size, 1, k_max_batch_size);
    check_int("--test-batch-size", t.test_batch_size, 1, k_max_batch_size);
    check_int("--epochs", t.epochs, 1, k_max_epochs);
    check_real("--lr", double(t.lr), k_positive);
    check_int("--log-interval", t.log_interval, 0);
    check_int("--threads", t.threads, 0);
    check_int("--augment-shift", t.augment_shift, 0, 127);
    check_int("--checkpoint-every", t.checkpoint_every, 0);

    const OptimizerConfig& o = t.optimizer;
    refuse_foreign_flags(k_optimizers, optimizer_info(o.kind), "--optimizer", given);
    check_optimizer_config(o);

    const ScheduleConfig& s = t.schedule;
    refuse_foreign_flags(k_schedules, schedule_info(s.kind), "--schedule", given);
    check_real("--gamma", s.gamma, k_positive);
    if (s.kind == ScheduleKind::step) {
        if (!given.count("--step-size") && s.step_size == 0) {
            throw UsageError("--schedule", "step needs --step-size N (epochs per decay)");
        }
        check_int("--step-size", s.step_size, 1, k_max_epochs);
    }
    if (s.kind == ScheduleKind::onecycle) check_real("--warmup-pct", s.warmup_pct, k_open_unit);
    if (given.count("--schedule-epochs") || t.schedule_epochs != 0) {
        check_int("--schedule-epochs", t.schedule_epochs, 1, k_max_epochs);
    }
    if (s.kind == ScheduleKind::onecycle && t.span_epochs() < t.epochs) {
        throw UsageError("--schedule-epochs",
                         "is below --epochs; a one-cycle schedule cannot run past its end");
    }
}

}  // namespace mlp
