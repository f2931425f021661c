// The dispatcher: builds the subcommands, parses, and maps errors to exit codes; plus the
// options the subcommands share (training_flags.hpp).
#include "host/cli/cli.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <sstream>

#include "host/base/error.hpp"
#include "host/cli/commands.hpp"
#include "host/cli/training_flags.hpp"
#include "host/config/checks.hpp"
#include "host/config/names.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"

namespace mlp {

std::vector<int64_t> parse_size_list(const std::string& text, const std::string& flag) {
    std::vector<int64_t> sizes;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || item.empty() || v <= 0 || v > k_max_batch_size) {
            throw CLI::ValidationError(flag, "'" + text +
                                                 "' is not a comma-separated list of positive "
                                                 "sizes up to 1048576 (e.g. 128,64)");
        }
        sizes.push_back(v);
    }
    if (sizes.empty()) throw CLI::ValidationError(flag, "needs at least one size");
    return sizes;
}

// "128,64" -> {128, 64}; "" or "none" -> no hidden layer.
static std::vector<int64_t> parse_hidden(const std::string& text) {
    if (text.empty() || text == "none") return {};
    return parse_size_list(text, "--hidden");
}

void add_data_options(CLI::App* cmd, DataConfig& data) {
    cmd->add_option("--data", data.data_dir,
                    "folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]");
    cmd->add_option("--dataset", data.dataset,
                    "named data set: " + name_list_with_help(k_datasets) +
                        "; looked up in data/NAME, /usr/share/datasets/NAME, then fetched")
        ->capture_default_str();
    cmd->add_flag("!--no-fetch", data.fetch, "never run data/fetch");
    cmd->add_option("--train-samples", data.train_samples,
                    "use only the first N training samples (0: all)");
    cmd->add_option("--test-samples", data.test_samples,
                    "use only the first N test samples (0: all)");
    cmd->add_option("--max-input-mb", data.max_input_mb,
                    "refuse data files (decoded) and model files larger than this many MiB")
        ->capture_default_str();
    cmd->add_option("--classes", data.classes,
                    "the number of classes, for data with classes no sample uses (0: the largest "
                    "training label + 1, each class below it used; eval: the model's outputs)");
}

void add_device_option(CLI::App* cmd, std::string& device) {
    cmd->add_option("--device", device, device_help())->capture_default_str();
}

void check_device_flag(const std::string& device) {
    parse_device(device);
}

GivenFlags given_flags(const CLI::App* cmd) {
    GivenFlags given;
    for (const CLI::Option* opt : cmd->get_options()) {
        if (opt->count() > 0) given.insert(opt->get_name());
    }
    return given;
}

void print_device(std::ostream& out, Trainer& trainer, const DeviceChoice& device) {
    out << "device: " << trainer.device_name();
    if (!device.fallback_reason.empty()) out << " [" << device.fallback_reason << "]";
    out << "\n";
    if (!device.cuda) {
        const std::string warning = take_gemm_library_warning();
        if (!warning.empty()) out << "warning: " << warning << "\n";
    }
}

void add_training_flags(CLI::App* cmd, TrainConfig& t, TrainingFlags& f,
                        const GivenFlags& leave_out) {
    // Registers the option, showing its default, unless the caller registers its own form of
    // it (a sweep's comma lists).
    const auto add = [&](const std::string& name, auto& value, const std::string& help,
                         bool show_default = true) {
        if (leave_out.count(name)) return;
        CLI::Option* opt = cmd->add_option(name, value, help);
        if (show_default) opt->capture_default_str();
    };
    add_data_options(cmd, t.data);
    add("--hidden", f.hidden, "hidden layer widths");
    add("--batch-size", t.batch_size, "training batch size");
    add("--test-batch-size", t.test_batch_size, "evaluation batch size");
    add("--epochs", t.epochs, "number of epochs");
    add("--lr", t.lr, "learning rate");
    add("--seed", f.seed, "random seed, 0..2^64-1");
    add_device_option(cmd, t.device);
    cmd->add_flag("!--no-graph", t.use_graph,
                  "CUDA: launch every step instead of replaying a recorded epoch");
    add("--kernels", f.kernels, "the step's kernels: " + name_list_with_help(k_kernel_paths));
    add("--precision", f.precision, "GEMM arithmetic: " + name_list_with_help(k_precisions));
    add("--threads", t.threads, "CPU threads (0: one per core; results do not depend on it)",
        false);
    add("--on-nan", f.on_nan,
        "a step with a non-finite loss or gradient: " + name_list_with_help(k_nan_policies));

    // The optimizers and schedules, with PyTorch's names and defaults.
    OptimizerConfig& o = t.optimizer;
    add("--optimizer", f.optimizer, name_list(k_optimizers));
    add("--momentum", o.momentum, "sgd: momentum factor");
    cmd->add_flag("--nesterov", o.nesterov, "sgd: Nesterov momentum");
    add("--weight-decay", o.weight_decay,
        "weight decay, biases included: L2 in the gradient for sgd and adam, decoupled for "
        "adamw [default: 0; adamw 0.01]",
        false);
    add("--beta1", o.beta1, "adam(w): first moment decay");
    add("--beta2", o.beta2, "adam(w): second moment decay");
    add("--eps", o.eps, "adam(w): denominator term");
    add("--schedule", f.schedule, "learning-rate schedule: " + name_list_with_help(k_schedules));
    add("--gamma", t.schedule.gamma, "step: decay factor");
    add("--step-size", t.schedule.step_size, "step: epochs between decays", false);
    add("--warmup-pct", t.schedule.warmup_pct, "onecycle: fraction of the steps spent warming up");
    add("--schedule-epochs", t.schedule_epochs,
        "cosine, onecycle: epochs the schedule spans, when a run stops before its end "
        "[default: --epochs]",
        false);
    add("--augment-shift", t.augment_shift,
        "shift each training image by up to N pixels per axis, at random (0: off)");
}

void convert_training_flags(TrainConfig& t, const TrainingFlags& f) {
    t.hidden = parse_hidden(f.hidden);
    t.seed = parse_uint64("--seed", f.seed);
    t.on_nan = parse_nan_policy(f.on_nan);
    t.optimizer.kind = parse_optimizer_kind(f.optimizer);
    t.schedule.kind = parse_schedule_kind(f.schedule);
    t.kernels = parse_kernel_path(f.kernels);
    t.precision = parse_precision(f.precision);
    check_device_flag(t.device);
}

void finish_training_flags(const CLI::App* cmd, TrainConfig& t, const TrainingFlags& f) {
    convert_training_flags(t, f);
    const GivenFlags given = given_flags(cmd);
    resolve_train_defaults(t, given);
    check_train_config(t, given);
}

// Loads the GEMM library, so it is built when --version is asked for, not for every command.
static std::string version_text() {
    std::string gemm;
    try {
        const GemmLibrary& g = gemm_library();
        gemm = g.description() + "; kernel set: " + g.chosen_by + "; the CPU has " +
               vector_isa_name(cpu_features().isa);
        if (!g.fallback_reason.empty()) gemm += "; not loaded first: " + g.fallback_reason;
        if (!g.warning.empty()) gemm += "\nwarning: " + g.warning;
    } catch (const Error& e) {
        gemm = e.what();
    }
    return std::string("mlptrain ") + MLPTRAIN_VERSION + " (commit " + MLPTRAIN_COMMIT +
           "), CUDA backend " +
           (built_with_cuda() ? "built in" : "not built (-DMLPTRAIN_CUDA=OFF)") +
           "\nCPU GEMMs: " + gemm;
}

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err) {
    CLI::App app{"mlptrain: train small fully connected classifiers on IDX image data"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::function<std::string()>(version_text),
                         "print the version, the commit and the CPU's GEMM library, and exit");

    TrainCommand train;
    CLI::App* train_cmd = add_train_command(app, train);
    EvalConfig eval;
    CLI::App* eval_cmd = add_eval_command(app, eval);
    PredictConfig predict;
    CLI::App* predict_cmd = add_predict_command(app, predict);
    SweepCommand sweep;
    CLI::App* sweep_cmd = add_sweep_command(app, sweep);
    SweepMergeCommand sweep_merge;
    CLI::App* sweep_merge_cmd = add_sweep_merge_command(app, sweep_merge);

    // CLI11 reports a misspelt command as a missing one; name it instead.
    const auto commands = app.get_subcommands([](CLI::App*) { return true; });
    if (argc > 1 && argv[1][0] != '-' &&
        std::none_of(commands.begin(), commands.end(),
                     [&](const CLI::App* cmd) { return cmd->get_name() == argv[1]; })) {
        std::string names;
        for (size_t i = 0; i < commands.size(); ++i) {
            if (i > 0) names += i + 1 == commands.size() ? " or " : ", ";
            names += commands[i]->get_name();
        }
        err << "mlptrain: unknown command '" << argv[1] << "' (use " << names << "; --help)\n";
        return 2;
    }
    try {
        // The subcommands check their flags once the parse is complete (usage errors).
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        out << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::CallForVersion& e) {
        out << e.what() << "\n";
        return 0;
    } catch (const CLI::ParseError& e) {
        err << "mlptrain: " << e.what() << "\n";
        return 2;
    } catch (const UsageError& e) {
        err << "mlptrain: " << e.what() << "\n";
        return 2;
    }

    try {
        if (train_cmd->parsed()) return run_train(train, out);
        if (eval_cmd->parsed()) return run_eval(eval, out);
        if (predict_cmd->parsed()) return run_predict(predict, out);
        if (sweep_cmd->parsed()) return run_sweep_command(sweep, out);
        if (sweep_merge_cmd->parsed()) return run_sweep_merge(sweep_merge, out);
        return 2;
    } catch (const UsageError& e) {
        out.flush();
        err << "mlptrain: " << e.what() << std::endl;
        return 2;
    } catch (const std::exception& e) {
        out.flush();
        err << "mlptrain: error: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace mlp
