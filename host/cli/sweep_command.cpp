#include "host/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "host/base/error.hpp"
#include "host/cli/training_flags.hpp"
#include "host/config/checks.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"
#include "host/sweep/grid.hpp"
#include "host/sweep/summary.hpp"
#include "host/train/interrupt.hpp"

namespace mlp {

namespace {

// The flags a sweep takes as comma lists; `train` takes each as one value. The sweep's
// --threads counts the threads a group's models are spread over, not threads per model.
const GivenFlags& swept_flags() {
    static const GivenFlags flags = {"--hidden",       "--lr",    "--seed",  "--momentum",
                                     "--weight-decay", "--beta1", "--beta2", "--threads"};
    return flags;
}

// "0,1" or "0..3": GPU indices, each once. Throws UsageError naming --devices.
std::vector<int> parse_device_list(const std::string& text) {
    std::vector<int> devices;
    auto index = [&](const std::string& item) {
        if (item.empty() || item.size() > 4 ||
            item.find_first_not_of("0123456789") != std::string::npos) {
            throw UsageError("--devices", "'" + item + "' is not a GPU index (0, 1, ...)");
        }
        return std::stoi(item);
    };
    std::stringstream items(text);
    for (std::string item; std::getline(items, item, ',');) {
        const size_t dots = item.find("..");
        const int first = index(dots == std::string::npos ? item : item.substr(0, dots));
        const int last = dots == std::string::npos ? first : index(item.substr(dots + 2));
        if (last < first) throw UsageError("--devices", "the range " + item + " is empty");
        for (int d = first; d <= last; ++d) {
            for (int seen : devices) {
                if (seen == d) {
                    throw UsageError("--devices", "GPU " + std::to_string(d) + " is listed twice");
                }
            }
            devices.push_back(d);
        }
    }
    if (devices.empty() || text.back() == ',') {
        throw UsageError("--devices", "'" + text + "' lists no GPU");
    }
    return devices;
}

// After the parse: the shared training flags as for `train` (names, defaults, the checks of
// the base configuration), then the lists, then the checks of `train` once per point of the
// product, so each model is one that `train` would accept.
void finish(const CLI::App* cmd, SweepCommand& c) {
    TrainConfig& t = c.base;
    finish_training_flags(cmd, t, c.flags);
    SweepAxes& a = c.axes;
    // Before the lists: --seed's range is checked against it, and a bad value is named as its own.
    check_int("--max-models", c.max_models, 1, k_max_sweep_configs);
    if (!c.hidden.empty()) a.hidden = parse_hidden_list(c.hidden, "--hidden");
    if (!c.lr.empty()) a.lr = parse_float_list(c.lr, "--lr");
    if (!c.seed.empty()) a.seed = parse_seed_list(c.seed, "--seed", c.max_models);
    if (!c.momentum.empty()) a.momentum = parse_real_list(c.momentum, "--momentum");
    if (!c.weight_decay.empty()) a.weight_decay = parse_real_list(c.weight_decay, "--weight-decay");
    if (!c.beta1.empty()) a.beta1 = parse_real_list(c.beta1, "--beta1");
    if (!c.beta2.empty()) a.beta2 = parse_real_list(c.beta2, "--beta2");
    check_int("--threads", c.threads, 0);
    if (!c.devices_text.empty()) {
        if (t.device != "auto" && t.device != "cuda") {
            throw UsageError("--devices",
                             "lists GPUs; it cannot be combined with --device " + t.device);
        }
        c.devices = parse_device_list(c.devices_text);
    }
    check_int("--max-memory-mb", c.max_memory_mb, 0);
    check_int("--checkpoint-every", c.options.checkpoint_every, 0);
    if (c.options.checkpoint_every > 0 && c.options.checkpoint_dir.empty()) {
        throw UsageError("--checkpoint-every", "needs --checkpoint-dir DIR");
    }
    if (c.max_memory_mb > 0) c.options.memory_limit_bytes = uint64_t(c.max_memory_mb) << 20;
    const Shard shard = c.shard.empty() ? Shard{} : parse_shard(c.shard, "--shard");
    const GivenFlags given = given_flags(cmd);
    const auto all = expand_grid(t, a, c.max_models);
    for (const SweepPoint& p : all) {
        try {
            check_train_config(p.config, given);
        } catch (const UsageError& e) {
            throw UsageError(e.flag(), std::string(e.what()).substr(e.flag().size() + 2) +
                                           " (configuration " + p.name + ")");
        }
    }
    c.points = select_shard(all, shard);
    c.options.n_configs = int64_t(all.size());
    c.options.grid_id = grid_id(t, a);
    c.options.shard = c.shard.empty() ? "" : shard.to_string();
    c.options.n_threads = c.threads;
    if (c.points.empty()) {
        throw UsageError("--shard", c.shard + " keeps none of the " + std::to_string(all.size()) +
                                        " configurations");
    }
}

}  // namespace

CLI::App* add_sweep_command(CLI::App& app, SweepCommand& c) {
    CLI::App* cmd = app.add_subcommand(
        "sweep",
        "train many configurations at once: --lr, --seed, --momentum, --weight-decay, "
        "--beta1, --beta2 take comma lists (--seed 1..8 a range), --hidden shapes separated "
        "by '/'; their cartesian product runs, each model exactly as `train` would run it");
    SweepOptions& s = c.options;
    add_training_flags(cmd, c.base, c.flags, swept_flags());
    cmd->add_option("--hidden", c.hidden,
                    "hidden layer shapes: 128,64/256,128 (or the flag repeated) [128,64]")
        ->allow_extra_args(false);
    cmd->add_option("--lr", c.lr, "learning rates, e.g. 0.05,0.1 [0.1]");
    cmd->add_option("--seed", c.seed, "seeds, e.g. 1,2,3 or 1..8 [42]");
    cmd->add_option("--momentum", c.momentum, "sgd: momentum factors [0]");
    cmd->add_option("--weight-decay", c.weight_decay, "weight decays [0; adamw 0.01]");
    cmd->add_option("--beta1", c.beta1, "adam(w): first moment decays [0.9]");
    cmd->add_option("--beta2", c.beta2, "adam(w): second moment decays [0.999]");
    cmd->add_option("--threads", c.threads,
                    "CPU: threads a group's models are spread over (0: one per core)");
    cmd->add_option("--devices", c.devices_text,
                    "GPUs to spread the groups over, e.g. 0,1 or 0..3: group g runs on the "
                    "g-th mod n, the GPUs' groups at once (default: the one --device)");
    cmd->add_option("--metrics", s.metrics_path,
                    "JSON lines: every model's epochs, with \"model\" and \"config\"");
    cmd->add_option("--save-dir", s.save_dir,
                    "write each model as NAME.safetensors and summary.json here");
    cmd->add_option("--save-best", s.save_best_path, "write the best model (safetensors)");
    cmd->add_option("--checkpoint-dir", s.checkpoint_dir,
                    "one resumable checkpoint per model here, after the last epoch and every "
                    "--checkpoint-every epochs");
    cmd->add_option("--checkpoint-every", s.checkpoint_every,
                    "epochs between checkpoints (0: after the last only)");
    cmd->add_option("--resume", s.resume_dir,
                    "continue each model from its checkpoint in DIR (a --checkpoint-dir of "
                    "the same sweep), bit for bit");
    cmd->add_option("--shard", c.shard,
                    "K/N: run only the configurations whose index is K mod N (0 <= K < N)");
    cmd->add_option("--max-models", c.max_models, "refuse a product of more configurations")
        ->capture_default_str();
    cmd->add_option("--max-memory-mb", c.max_memory_mb,
                    "refuse a sweep needing more memory than this (0: what is available)");
    cmd->parse_complete_callback([cmd, &c] { finish(cmd, c); });
    return cmd;
}

int run_sweep_command(const SweepCommand& c, std::ostream& out) {
    std::vector<DeviceChoice> devices;
    for (int d : c.devices) devices.push_back(choose_device("cuda:" + std::to_string(d)));
    if (devices.empty()) devices.push_back(choose_device(c.base.device));
    const DeviceChoice& device = devices.front();
    std::string where;
    const Dataset data = open_dataset(c.base.data, &where);
    if (!device.fallback_reason.empty()) out << "device: cpu [" << device.fallback_reason << "]\n";
    if (devices.size() > 1) {
        out << "devices:";
        for (const DeviceChoice& d : devices) out << " " << d.gpu.describe() << ";";
        out << " groups spread over them\n";
    }
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
        summary = run_sweep(c.points, data, devices, c.options, out);
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

// `mlptrain sweep-merge`

CLI::App* add_sweep_merge_command(CLI::App& app, SweepMergeCommand& c) {
    CLI::App* cmd = app.add_subcommand(
        "sweep-merge", "join the summary.json of the shards of one sweep into one leaderboard");
    cmd->add_option("summaries", c.inputs,
                    "folders holding summary.json (a shard's --save-dir), "
                    "or summary files")
        ->required();
    cmd->add_option("--out", c.out_path, "write the merged summary.json here");
    return cmd;
}

int run_sweep_merge(const SweepMergeCommand& c, std::ostream& out) {
    std::vector<SweepSummary> parts;
    std::vector<std::string> paths;
    for (const std::string& input : c.inputs) {
        const std::string path = std::filesystem::is_directory(input)
                                     ? (std::filesystem::path(input) / "summary.json").string()
                                     : input;
        paths.push_back(path);
        parts.push_back(load_summary(path));
    }
    std::vector<int64_t> missing;
    const SweepSummary merged = merge_summaries(parts, paths, &missing);
    out << "merged " << parts.size() << " summar" << (parts.size() == 1 ? "y" : "ies") << ": "
        << merged.models.size() << " of " << merged.n_configs << " configurations\n";
    if (!missing.empty()) {
        out << "missing " << missing.size() << " configuration" << (missing.size() == 1 ? "" : "s")
            << " (indices";
        for (size_t i = 0; i < missing.size() && i < 20; ++i) out << " " << missing[i];
        out << (missing.size() > 20 ? " ...)" : ")") << "; merge every shard's summary\n";
    }
    print_leaderboard(out, merged);
    if (!c.out_path.empty()) {
        save_summary(c.out_path, merged);
        out << "wrote " << c.out_path << "\n";
    }
    out.flush();
    return 0;
}

}  // namespace mlp
