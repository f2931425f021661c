#include "host/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "host/base/error.hpp"
#include "host/cli/ensemble_command.hpp"
#include "host/cli/predict_command.hpp"
#include "host/cli/sweep_command.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"
#include "host/formats/safetensors.hpp"
#include "host/train/interrupt.hpp"
#include "host/train/report.hpp"
#include "host/train/train_loop.hpp"

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
        if (used != item.size() || item.empty() || v <= 0 || v > (1 << 20)) {
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

static void add_data_options(CLI::App* cmd, DataConfig& data) {
    cmd->add_option("--data", data.data_dir,
                    "folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]");
    cmd->add_option("--dataset", data.dataset,
                    "named data set, looked up in data/NAME, /usr/share/datasets/NAME, then "
                    "fetched")
        ->check(CLI::IsMember({"mnist", "fashion-mnist"}))
        ->capture_default_str();
    cmd->add_flag("!--no-fetch", data.fetch, "never run data/fetch");
    cmd->add_option("--train-samples", data.train_samples,
                    "use only the first N training samples (0: all)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--test-samples", data.test_samples,
                    "use only the first N test samples (0: all)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-input-mb", data.max_input_mb,
                    "refuse data files (decoded) and model files larger than this many MiB")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
}

static void print_device(std::ostream& out, Trainer& trainer, const DeviceChoice& device) {
    out << "device: " << trainer.device_name();
    if (!device.fallback_reason.empty()) out << " [" << device.fallback_reason << "]";
    out << "\n";
}

// The training flags beyond the notebook's (optimizer, schedule, augmentation,
// checkpoints), with PyTorch's names and defaults. The options are kept to
// tell which flags were given, for the checks in finish_training_flags().
struct TrainingFlags {
    std::string optimizer = "sgd";
    std::string schedule = "constant";
    CLI::Option* momentum = nullptr;
    CLI::Option* nesterov = nullptr;
    CLI::Option* weight_decay = nullptr;
    std::vector<CLI::Option*> adam;  // --beta1, --beta2, --eps
    CLI::Option* gamma = nullptr;
    CLI::Option* step_size = nullptr;
    CLI::Option* warmup_pct = nullptr;
    CLI::Option* schedule_epochs = nullptr;
};

static void add_training_flags(CLI::App* cmd, TrainConfig& t, TrainingFlags& f) {
    OptimizerConfig& o = t.optimizer;
    cmd->add_option("--optimizer", f.optimizer, "sgd, adam or adamw")
        ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
        ->capture_default_str();
    f.momentum = cmd->add_option("--momentum", o.momentum, "sgd: momentum factor")
                     ->check(CLI::Range(0.0, 1.0))
                     ->capture_default_str();
    f.nesterov = cmd->add_flag("--nesterov", o.nesterov, "sgd: Nesterov momentum");
    f.weight_decay = cmd->add_option("--weight-decay", o.weight_decay,
                                     "weight decay, biases included: L2 in the gradient for "
                                     "sgd and adam, decoupled for adamw [default: 0; adamw 0.01]")
                         ->check(CLI::NonNegativeNumber);
    f.adam.push_back(cmd->add_option("--beta1", o.beta1, "adam(w): first moment decay")
                         ->check(CLI::Range(0.0, 1.0))
                         ->capture_default_str());
    f.adam.push_back(cmd->add_option("--beta2", o.beta2, "adam(w): second moment decay")
                         ->check(CLI::Range(0.0, 1.0))
                         ->capture_default_str());
    f.adam.push_back(cmd->add_option("--eps", o.eps, "adam(w): denominator term")
                         ->check(CLI::PositiveNumber)
                         ->capture_default_str());
    cmd->add_option("--schedule", f.schedule,
                    "learning-rate schedule: constant, step (per epoch), cosine (per epoch, to "
                    "0), onecycle (per step; --lr is the peak)")
        ->check(CLI::IsMember({"constant", "step", "cosine", "onecycle"}))
        ->capture_default_str();
    f.gamma = cmd->add_option("--gamma", t.schedule.gamma, "step: decay factor")
                  ->check(CLI::PositiveNumber)
                  ->capture_default_str();
    f.step_size = cmd->add_option("--step-size", t.schedule.step_size,
                                  "step: epochs between decays")
                      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
    f.warmup_pct = cmd->add_option("--warmup-pct", t.schedule.warmup_pct,
                                   "onecycle: fraction of the steps spent warming up")
                       ->check(CLI::Range(0.0, 1.0))
                       ->capture_default_str();
    f.schedule_epochs = cmd->add_option("--schedule-epochs", t.schedule_epochs,
                                        "cosine, onecycle: epochs the schedule spans, when a "
                                        "run stops before its end [default: --epochs]")
                            ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
    cmd->add_option("--augment-shift", t.augment_shift,
                    "shift each training image by up to N pixels per axis, at random (0: off)")
        ->check(CLI::Range(0, 127))
        ->capture_default_str();
    cmd->add_option("--checkpoint", t.checkpoint_path,
                    "resumable checkpoint: the model, and the optimizer state beside it "
                    "(NAME.state.safetensors); written after the last epoch and every "
                    "--checkpoint-every epochs");
    cmd->add_option("--checkpoint-every", t.checkpoint_every,
                    "epochs between checkpoints (0: after the last only) [path: --checkpoint, "
                    "else --save-model, else checkpoint.safetensors]")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--resume", t.resume_path,
                    "continue the run whose --checkpoint is PATH, bit for bit; the flags must "
                    "match it (except --epochs, device and outputs)");
}

// Resolves the defaults that depend on other flags and refuses combinations
// that make no sense, as usage errors naming the flag.
static void finish_training_flags(TrainConfig& t, const TrainingFlags& f) {
    OptimizerConfig& o = t.optimizer;
    o.kind = parse_optimizer_kind(f.optimizer);
    t.schedule.kind = parse_schedule_kind(f.schedule);
    const bool sgd = o.kind == OptimizerKind::sgd;
    auto refuse = [](const CLI::Option* opt, const std::string& why) {
        throw CLI::ValidationError(opt->get_name(), why);
    };
    if (!sgd && f.momentum->count()) refuse(f.momentum, "is for --optimizer sgd; adam has --beta1");
    if (!sgd && f.nesterov->count()) refuse(f.nesterov, "is for --optimizer sgd");
    if (sgd && f.nesterov->count() && o.momentum == 0.0) {
        refuse(f.nesterov, "needs --momentum > 0");
    }
    for (const CLI::Option* opt : f.adam) {
        if (sgd && opt->count()) refuse(opt, "is for --optimizer adam or adamw");
    }
    if (o.momentum >= 1.0) refuse(f.momentum, "must be below 1");
    if (o.beta1 >= 1.0 || o.beta2 >= 1.0) refuse(f.adam[o.beta1 >= 1.0 ? 0 : 1], "must be below 1");
    if (o.kind == OptimizerKind::adamw && !f.weight_decay->count()) o.weight_decay = 0.01;

    const ScheduleKind s = t.schedule.kind;
    if (s != ScheduleKind::step && f.gamma->count()) refuse(f.gamma, "is for --schedule step");
    if (s != ScheduleKind::step && f.step_size->count()) {
        refuse(f.step_size, "is for --schedule step");
    }
    if (s == ScheduleKind::step && !f.step_size->count()) {
        throw CLI::ValidationError("--schedule", "step needs --step-size N (epochs per decay)");
    }
    if (s != ScheduleKind::onecycle && f.warmup_pct->count()) {
        refuse(f.warmup_pct, "is for --schedule onecycle");
    }
    const double warmup = t.schedule.warmup_pct;
    if (s == ScheduleKind::onecycle && !(warmup > 0.0 && warmup < 1.0)) {
        refuse(f.warmup_pct, "must lie strictly between 0 and 1");
    }
    if (!schedule_depends_on_epochs(s) && f.schedule_epochs->count()) {
        refuse(f.schedule_epochs, "is for --schedule cosine or onecycle");
    }
    if (s == ScheduleKind::onecycle && t.span_epochs() < t.epochs) {
        refuse(f.schedule_epochs, "is below --epochs; a one-cycle schedule cannot run past its "
                                  "end");
    }
    if (t.checkpoint_every > 0 && t.checkpoint_path.empty()) {
        t.checkpoint_path =
            t.save_model_path.empty() ? "checkpoint.safetensors" : t.save_model_path;
    }
    try {
        check_optimizer_config(o);
    } catch (const Error& e) {
        throw CLI::ValidationError(e.what());
    }
}

static std::string describe_training(const TrainConfig& t) {
    std::ostringstream s;
    const OptimizerConfig& o = t.optimizer;
    s << "optimizer: " << to_string(o.kind);
    if (o.momentum != 0.0) s << " momentum " << o.momentum << (o.nesterov ? " nesterov" : "");
    if (o.kind != OptimizerKind::sgd) s << " betas " << o.beta1 << "," << o.beta2;
    if (o.weight_decay != 0.0) s << " weight_decay " << o.weight_decay;
    s << ", schedule " << to_string(t.schedule.kind);
    if (schedule_depends_on_epochs(t.schedule.kind)) s << " over " << t.span_epochs() << " epochs";
    if (t.augment_shift > 0) s << ", random shifts up to " << t.augment_shift << " px";
    return s.str();
}

static int run_train(const TrainConfig& config, std::ostream& out) {
    const DeviceChoice device = choose_device(config.device);
    std::string where;
    const Dataset data = open_dataset(config.data, &where);
    const ModelShape shape(data.n_features(), config.hidden, data.n_classes);

    TrainerOptions options;
    options.batch_size = config.batch_size;
    options.eval_batch_size = config.test_batch_size;
    options.cpu_threads = config.threads;
    // Per-step progress lines need the host between steps, which a replayed
    // graph does not give.
    // The CPU has nothing to record, and stepping one by one lets a signal
    // take effect after the current step.
    options.use_graph = config.use_graph && config.log_interval == 0 && device.cuda;
    options.optimizer = config.optimizer;
    options.on_nan = config.on_nan;
    auto trainer = make_trainer(device, shape, data, options);
    trainer->set_params(init_params(shape, config.seed));

    print_device(out, *trainer, device);
    out << "data: " << data.name << " from " << where << " (" << data.train.size()
        << " train, " << data.test.size() << " test, " << data.train.images.n_rows << "x"
        << data.train.images.n_cols << ", " << data.n_classes << " classes)\n"
        << "model: " << shape.to_string() << " (" << shape.n_params() << " parameters), "
        << "batch " << config.batch_size << ", lr " << config.lr << ", seed " << config.seed
        << "\n"
        << describe_training(config) << "\n";
    std::vector<EpochRecord> records;
    try {
        const InterruptHandlers handlers;
        records = run_training(*trainer, config, data.name, out);
    } catch (const Interrupted& e) {
        out << "mlptrain: " << e.what() << std::endl;
        return 128 + e.signal();
    }
    if (!records.empty()) {
        char line[128];
        std::snprintf(line, sizeof line, "final test_acc %.2f%% test_loss %.6f",
                      100.0 * records.back().test.accuracy, records.back().test.loss);
        out << line << std::endl;
    }
    return 0;
}

struct EvalConfig {
    DataConfig data;
    std::vector<std::string> model_paths;  // several: an ensemble
    std::string device = "auto";
    int64_t test_batch_size = 1000;
    bool json = false;
    int threads = 0;
};

static int run_eval(const EvalConfig& config, std::ostream& out) {
    if (config.model_paths.size() > 1) {
        return run_ensemble_eval(config.model_paths, config.data, config.json, out);
    }
    const std::string& model_path = config.model_paths.front();
    const ModelFile model = load_model(model_path, config.data.max_input_bytes());
    const DeviceChoice device = choose_device(config.device);
    const Dataset data = open_dataset(config.data);
    TrainerOptions options;
    options.batch_size = 1;
    options.eval_batch_size = config.test_batch_size;
    options.cpu_threads = config.threads;
    auto trainer = make_trainer(device, model.shape, data, options);
    trainer->set_params(model.params);
    const EpochResult result = trainer->evaluate();
    const std::vector<uint8_t> pred = trainer->test_predictions();

    const int64_t n_classes = model.shape.n_classes();
    std::vector<std::vector<int64_t>> confusion(size_t(n_classes),
                                                std::vector<int64_t>(size_t(n_classes), 0));
    for (size_t i = 0; i < pred.size(); ++i) {
        confusion[data.test.labels.labels[i]][pred[i]] += 1;
    }
    std::vector<double> per_class(size_t(n_classes), 0.0);
    for (int64_t c = 0; c < n_classes; ++c) {
        int64_t total = 0;
        for (int64_t v : confusion[size_t(c)]) total += v;
        per_class[size_t(c)] = total ? double(confusion[size_t(c)][size_t(c)]) / double(total) : 0;
    }

    if (config.json) {
        nlohmann::json j = {{"model", model_path},
                            {"dataset", data.name},
                            {"n_samples", result.n_samples},
                            {"test_loss", result.loss},
                            {"test_accuracy", result.accuracy},
                            {"per_class_accuracy", per_class},
                            {"confusion_matrix", confusion}};
        out << j.dump(2) << std::endl;
        return 0;
    }
    char line[160];
    std::snprintf(line, sizeof line, "test_loss %.6f test_acc %.2f%% (%lld samples)",
                  result.loss, 100.0 * result.accuracy, (long long)result.n_samples);
    print_device(out, *trainer, device);
    out << line << "\nper-class accuracy:\n";
    for (int64_t c = 0; c < n_classes; ++c) {
        std::snprintf(line, sizeof line, "  %3lld  %6.2f%%", (long long)c,
                      100.0 * per_class[size_t(c)]);
        out << line << "\n";
    }
    out << "confusion matrix (rows: true class, columns: predicted):\n";
    for (const auto& row : confusion) {
        for (int64_t v : row) {
            std::snprintf(line, sizeof line, "%6lld", (long long)v);
            out << line;
        }
        out << "\n";
    }
    out.flush();
    return 0;
}

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err) {
    CLI::App app{"mlptrain: train small fully connected classifiers on IDX image data"};
    app.require_subcommand(1);

    TrainConfig train;
    std::string hidden_text = "128,64";
    CLI::App* train_cmd = app.add_subcommand("train", "train a model");
    add_data_options(train_cmd, train.data);
    train_cmd->add_option("--hidden", hidden_text, "hidden layer widths")->capture_default_str();
    train_cmd->add_option("--batch-size", train.batch_size, "training batch size")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    train_cmd->add_option("--test-batch-size", train.test_batch_size, "evaluation batch size")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    train_cmd->add_option("--epochs", train.epochs, "number of epochs")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 30))
        ->capture_default_str();
    train_cmd->add_option("--lr", train.lr, "learning rate")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    train_cmd->add_option("--seed", train.seed, "random seed")->capture_default_str();
    train_cmd->add_option("--log-interval", train.log_interval,
                          "print the running loss every N steps (0: off; disables graph replay)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    train_cmd->add_option("--device", train.device, "auto, cpu or cuda")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
        ->capture_default_str();
    train_cmd->add_flag("!--no-graph", train.use_graph,
                        "CUDA: launch every step instead of replaying a recorded epoch");
    train_cmd->add_option("--threads", train.threads, "CPU threads (0: one below batch 1024, else all cores)")
        ->check(CLI::NonNegativeNumber);
    train_cmd->add_option("--metrics", train.metrics_path, "write one JSON object per epoch");
    train_cmd->add_option("--save-model", train.save_model_path,
                          "write the trained model (safetensors)");
    train_cmd
        ->add_option("--on-nan", train.on_nan,
                     "a step with a non-finite loss or gradient: stop (keep the last good "
                     "checkpoint, exit 1) or skip-batch (skip its update, count it)")
        ->transform(CLI::CheckedTransformer(
            std::map<std::string, NanPolicy>{{"stop", NanPolicy::stop},
                                             {"skip-batch", NanPolicy::skip_batch}}))
        ->default_str("stop");
    TrainingFlags training_flags;
    add_training_flags(train_cmd, train, training_flags);

    EvalConfig eval;
    CLI::App* eval_cmd = app.add_subcommand("eval", "evaluate a saved model on a test set");
    eval_cmd
        ->add_option("--model", eval.model_paths,
                     "model file (safetensors); repeated: an ensemble (mean probabilities)")
        ->required()
        ->allow_extra_args(false);
    add_data_options(eval_cmd, eval.data);
    eval_cmd->add_option("--device", eval.device, "auto, cpu or cuda")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
        ->capture_default_str();
    eval_cmd->add_option("--test-batch-size", eval.test_batch_size, "evaluation batch size")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
        ->capture_default_str();
    eval_cmd->add_option("--threads", eval.threads, "CPU threads (0: one below batch 1024, else all cores)")
        ->check(CLI::NonNegativeNumber);
    eval_cmd->add_flag("--json", eval.json, "print the results as JSON");

    PredictConfig predict;
    CLI::App* predict_cmd = add_predict_command(app, predict);
    SweepCommand sweep;
    CLI::App* sweep_cmd = add_sweep_command(app, sweep);
    SweepMergeCommand sweep_merge;
    CLI::App* sweep_merge_cmd = add_sweep_merge_command(app, sweep_merge);

    // CLI11 reports a misspelt command as a missing one; name it instead.
    const auto is_command = [&](const CLI::App* cmd) { return cmd->get_name() == argv[1]; };
    const auto commands = app.get_subcommands([](CLI::App*) { return true; });
    if (argc > 1 && argv[1][0] != '-' &&
        std::none_of(commands.begin(), commands.end(), is_command)) {
        err << "mlptrain: unknown command '" << argv[1]
            << "' (use train, eval, predict, sweep or sweep-merge; --help)\n";
        return 2;
    }
    try {
        app.parse(argc, argv);
        train.hidden = parse_hidden(hidden_text);
        if (train_cmd->parsed()) finish_training_flags(train, training_flags);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        out << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ParseError& e) {
        err << "mlptrain: " << e.what() << "\n";
        return 2;
    }

    try {
        if (train_cmd->parsed()) return run_train(train, out);
        if (predict_cmd->parsed()) return run_predict(predict, out);
        if (sweep_cmd->parsed()) return run_sweep_command(sweep, out);
        if (sweep_merge_cmd->parsed()) return run_sweep_merge(sweep_merge, out);
        return run_eval(eval, out);
    } catch (const std::exception& e) {
        out.flush();
        err << "mlptrain: error: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace mlp
