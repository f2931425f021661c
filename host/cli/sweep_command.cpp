#include "host/cli/sweep_command.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>

#include "host/base/error.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"
#include "host/sweep/summary.hpp"
#include "host/train/interrupt.hpp"

namespace mlp {

namespace {

// The train flags a sweep takes as single values, kept to tell which were given.
struct GivenFlags {
    CLI::Option* nesterov = nullptr;
    CLI::Option* eps = nullptr;
    CLI::Option* gamma = nullptr;
    CLI::Option* step_size = nullptr;
    CLI::Option* warmup_pct = nullptr;
    CLI::Option* schedule_epochs = nullptr;
    CLI::Option* weight_decay = nullptr;
    CLI::Option* checkpoint_every = nullptr;
};

void refuse(const std::string& flag, const std::string& why) {
    throw CLI::ValidationError(flag, why);
}

// The checks of `mlptrain train` for the flags a sweep shares with it, per value of
// the swept ones; a library's UsageError or Error becomes a usage error of the parse.
void finish(SweepCommand& c, const GivenFlags& f) {
    TrainConfig& t = c.base;
    OptimizerConfig& o = t.optimizer;
    o.kind = parse_optimizer_kind(c.optimizer);
    t.schedule.kind = parse_schedule_kind(c.schedule);
    const bool sgd = o.kind == OptimizerKind::sgd;
    SweepAxes& a = c.axes;
    if (!c.hidden.empty()) a.hidden = parse_hidden_list(c.hidden, "--hidden");
    if (!c.lr.empty()) a.lr = parse_float_list(c.lr, "--lr");
    if (!c.seed.empty()) a.seed = parse_seed_list(c.seed, "--seed", c.max_models);
    if (!c.momentum.empty()) a.momentum = parse_real_list(c.momentum, "--momentum");
    if (!c.weight_decay.empty()) a.weight_decay = parse_real_list(c.weight_decay, "--weight-decay");
    if (!c.beta1.empty()) a.beta1 = parse_real_list(c.beta1, "--beta1");
    if (!c.beta2.empty()) a.beta2 = parse_real_list(c.beta2, "--beta2");
    for (float v : a.lr) {
        if (!(v > 0.0f)) refuse("--lr", "values must be positive (" + std::to_string(v) + ")");
    }
    for (double v : a.momentum) {
        if (v < 0.0 || v >= 1.0) refuse("--momentum", "values must lie in [0, 1)");
    }
    for (double v : a.weight_decay) {
        if (v < 0.0) refuse("--weight-decay", "values must not be negative");
    }
    for (const auto* list : {&a.beta1, &a.beta2}) {
        for (double v : *list) {
            if (v < 0.0 || v >= 1.0) {
                refuse(list == &a.beta1 ? "--beta1" : "--beta2", "values must lie in [0, 1)");
            }
        }
    }
    if (!sgd && f.nesterov->count()) refuse("--nesterov", "is for --optimizer sgd");
    if (sgd && f.eps->count()) refuse("--eps", "is for --optimizer adam or adamw");
    if (o.kind == OptimizerKind::adamw && c.weight_decay.empty()) o.weight_decay = 0.01;
    const ScheduleKind s = t.schedule.kind;
    if (s != ScheduleKind::step && f.gamma->count()) refuse("--gamma", "is for --schedule step");
    if (s != ScheduleKind::step && f.step_size->count()) {
        refuse("--step-size", "is for --schedule step");
    }
    if (s == ScheduleKind::step && !f.step_size->count()) {
        refuse("--schedule", "step needs --step-size N (epochs per decay)");
    }
    if (s != ScheduleKind::onecycle && f.warmup_pct->count()) {
        refuse("--warmup-pct", "is for --schedule onecycle");
    }
    if (s == ScheduleKind::onecycle &&
        !(t.schedule.warmup_pct > 0.0 && t.schedule.warmup_pct < 1.0)) {
        refuse("--warmup-pct", "must lie strictly between 0 and 1");
    }
    if (!schedule_depends_on_epochs(s) && f.schedule_epochs->count()) {
        refuse("--schedule-epochs", "is for --schedule cosine or onecycle");
    }
    if (s == ScheduleKind::onecycle && t.span_epochs() < t.epochs) {
        refuse("--schedule-epochs",
               "is below --epochs; a one-cycle schedule cannot run past its end");
    }
    if (f.checkpoint_every->count() && c.options.checkpoint_dir.empty()) {
        refuse("--checkpoint-every", "needs --checkpoint-dir DIR");
    }
    parse_device(t.device);
    if (c.max_memory_mb > 0) c.options.memory_limit_bytes = uint64_t(c.max_memory_mb) << 20;
    const Shard shard = c.shard.empty() ? Shard{} : parse_shard(c.shard, "--shard");
    const auto all = expand_grid(t, a, c.max_models);
    for (const SweepPoint& p : all) {
        const OptimizerConfig& po = p.config.optimizer;
        if (po.nesterov && po.momentum == 0.0) {
            refuse("--nesterov", "needs --momentum > 0 (configuration " + p.name + ")");
        }
        check_optimizer_config(po);
    }
    c.points = select_shard(all, shard);
    c.options.n_configs = int64_t(all.size());
    c.options.grid_id = grid_id(t, a);
    c.options.shard = c.shard.empty() ? "" : shard.to_string();
    c.options.n_threads = t.threads;
    if (c.points.empty()) {
        refuse("--shard",
               c.shard + " keeps none of the " + std::to_string(all.size()) + " configurations");
    }
}

}  // namespace

CLI::App* add_sweep_command(CLI::App& app, SweepCommand& c) {
    CLI::App* cmd = app.add_subcommand(
        "sweep",
        "train many configurations at once: --lr, --seed, --momentum, --weight-decay, "
        "--beta1, --beta2 take comma lists (--seed 1..8 a range), --hidden shapes separated "
        "by '/'; their cartesian product runs, each model exactly as `train` would run it");
    TrainConfig& t = c.base;
    DataConfig& d = t.data;
    SweepOptions& s = c.options;
    GivenFlags f;
    cmd->add_option("--data", d.data_dir, "folder with the four IDX files (as for train)");
    cmd->add_option("--dataset", d.dataset, "named data set, as for train")
        ->check(CLI::IsMember({"mnist", "fashion-mnist"}))
        ->capture_default_str();
    cmd->add_flag("!--no-fetch", d.fetch, "never run data/fetch");
    cmd->add_option("--train-samples", d.train_samples, "use only the first N training samples")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--test-samples", d.test_samples, "use only the first N test samples")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-input-mb", d.max_input_mb, "refuse larger data and model files")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    cmd->add_option("--hidden", c.hidden,
                    "hidden layer shapes: 128,64/256,128 (or the flag repeated) [128,64]")
        ->allow_extra_args(false);
    cmd->add_option("--lr", c.lr, "learning rates, e.g. 0.05,0.1 [0.1]");
    cmd->add_option("--seed", c.seed, "seeds, e.g. 1,2,3 or 1..8 [42]");
    cmd->add_option("--momentum", c.momentum, "sgd: momentum factors [0]");
    f.weight_decay =
        cmd->add_option("--weight-decay", c.weight_decay, "weight decays [0; adamw 0.01]");
    cmd->add_option("--beta1", c.beta1, "adam(w): first moment decays [0.9]");
    cmd->add_option("--beta2", c.beta2, "adam(w): second moment decays [0.999]");
    cmd->add_option("--batch-size", t.batch_size, "training batch size")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    cmd->add_option("--test-batch-size", t.test_batch_size, "evaluation batch size")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    cmd->add_option("--epochs", t.epochs, "number of epochs")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 30))
        ->capture_default_str();
    cmd->add_option("--optimizer", c.optimizer, "sgd, adam or adamw")
        ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
        ->capture_default_str();
    f.nesterov = cmd->add_flag("--nesterov", t.optimizer.nesterov, "sgd: Nesterov momentum");
    f.eps = cmd->add_option("--eps", t.optimizer.eps, "adam(w): denominator term")
                ->check(CLI::PositiveNumber)
                ->capture_default_str();
    cmd->add_option("--schedule", c.schedule, "constant, step, cosine or onecycle (as for train)")
        ->check(CLI::IsMember({"constant", "step", "cosine", "onecycle"}))
        ->capture_default_str();
    f.gamma = cmd->add_option("--gamma", t.schedule.gamma, "step: decay factor")
                  ->check(CLI::PositiveNumber)
                  ->capture_default_str();
    f.step_size = cmd->add_option("--step-size", t.schedule.step_size, "step: epochs per decay")
                      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
    f.warmup_pct = cmd->add_option("--warmup-pct", t.schedule.warmup_pct,
                                   "onecycle: fraction of the steps spent warming up")
                       ->check(CLI::Range(0.0, 1.0))
                       ->capture_default_str();
    f.schedule_epochs = cmd->add_option("--schedule-epochs", t.schedule_epochs,
                                        "cosine, onecycle: epochs the schedule spans")
                            ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
    cmd->add_option("--augment-shift", t.augment_shift, "random shifts of up to N pixels")
        ->check(CLI::Range(0, 127))
        ->capture_default_str();
    cmd->add_option("--on-nan", t.on_nan,
                    "a model's step with a non-finite loss or gradient: stop that model, or "
                    "skip-batch; the other models go on")
        ->transform(CLI::CheckedTransformer(std::map<std::string, NanPolicy>{
            {"stop", NanPolicy::stop}, {"skip-batch", NanPolicy::skip_batch}}))
        ->default_str("stop");
    cmd->add_option("--device", t.device, k_device_help)->capture_default_str();
    cmd->add_flag("!--no-graph", t.use_graph, "CUDA: launch every step");
    cmd->add_option("--threads", t.threads,
                    "CPU: models trained at once, one thread each (0: one per core)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--metrics", s.metrics_path,
                    "JSON lines: every model's epochs, with \"model\" and \"config\"");
    cmd->add_option("--save-dir", s.save_dir,
                    "write each model as NAME.safetensors and summary.json here");
    cmd->add_option("--save-best", s.save_best_path, "write the best model (safetensors)");
    cmd->add_option("--checkpoint-dir", s.checkpoint_dir,
                    "one resumable checkpoint per model here, after the last epoch and every "
                    "--checkpoint-every epochs");
    f.checkpoint_every = cmd->add_option("--checkpoint-every", s.checkpoint_every,
                                         "epochs between checkpoints (0: after the last only)")
                             ->check(CLI::NonNegativeNumber);
    cmd->add_option("--resume", s.resume_dir,
                    "continue each model from its checkpoint in DIR (a --checkpoint-dir of "
                    "the same sweep), bit for bit");
    cmd->add_option("--shard", c.shard,
                    "K/N: run only the configurations whose index is K mod N (0 <= K < N)");
    cmd->add_option("--max-models", c.max_models, "refuse a product of more configurations")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    cmd->add_option("--max-memory-mb", c.max_memory_mb,
                    "refuse a sweep needing more memory than this (0: what is available)")
        ->check(CLI::NonNegativeNumber);
    cmd->parse_complete_callback([&c, f] {
        try {
            finish(c, f);
        } catch (const Error& e) {
            throw CLI::ValidationError(e.what());
        }
    });
    return cmd;
}

int run_sweep_command(const SweepCommand& c, std::ostream& out) {
    const DeviceChoice device = choose_device(c.base.device);
    std::string where;
    const Dataset data = open_dataset(c.base.data, &where);
    if (!device.fallback_reason.empty()) out << "device: cpu [" << device.fallback_reason << "]\n";
    out << "data: " << data.name << " from " << where << " (" << data.train.size() << " train, "
        << data.test.size() << " test)\n";
    out << "sweep: " << c.points.size() << " configuration" << (c.points.size() == 1 ? "" : "s");
    if (!c.options.shard.empty()) {
        out << " (shard " << c.options.shard << " of " << c.options.n_configs << ")";
    }
    out << ", " << c.base.epochs << " epochs each\n";
    for (const SweepPoint& p : c.points) {
        char line[64];
        std::snprintf(line, sizeof line, "%6lld  ", (long long)p.index);
        out << line << p.name << "\n";
    }
    out.flush();
    SweepSummary summary;
    try {
        const InterruptHandlers handlers;
        summary = run_sweep(c.points, data, device, c.options, out);
    } catch (const Interrupted& e) {
        out << "mlptrain: " << e.what() << std::endl;
        return 128 + e.signal();
    }
    print_leaderboard(out, summary);
    out.flush();
    int64_t n_stopped = 0;
    for (const ModelSummary& m : summary.models) n_stopped += m.stopped;
    if (n_stopped == int64_t(summary.models.size())) {
        throw Error("every model of the sweep stopped (try smaller learning rates)");
    }
    return 0;
}

}  // namespace mlp
