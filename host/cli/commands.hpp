// The subcommands of `mlptrain`, each defined in its own file (train_command.cpp,
// eval_command.cpp, predict_command.cpp, sweep_command.cpp): a config the parse fills, the
// function that adds the subcommand and its options, and the one that runs it.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "host/cli/training_flags.hpp"
#include "host/config/train_config.hpp"
#include "host/sweep/grid.hpp"
#include "host/sweep/sweep_run.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace mlp {

// `mlptrain train`: trains a model on a data set, printing one line per epoch, and writes the
// model, the metrics and checkpoints where asked.

struct TrainCommand {
    TrainConfig config;
    TrainingFlags flags;
    GivenFlags given;  // the options given on the command line ("--lr")
};

// Adds the subcommand and its options to `app`; `command` must outlive the parse, which ends
// with finish_training_flags (usage errors). With --resume the checks across flags wait for
// the checkpoint, whose flags fill in those not given (run_train).
CLI::App* add_train_command(CLI::App& app, TrainCommand& command);

// Returns the exit code: 0, or 128 + the signal that interrupted the run. With --resume the
// run takes every training flag not given from the checkpoint (resume_config); a given flag
// that differs from the checkpoint's, where it may not, is an Error listing every such flag.
int run_train(const TrainCommand& command, std::ostream& out);

// `mlptrain eval`: a saved model on the test split of a data set: loss, accuracy, per-class
// accuracy and the confusion matrix, as text or JSON. Several --model files are an ensemble:
// the mean of their probabilities, reported beside each member's figures.

struct EvalConfig {
    DataConfig data;
    std::vector<std::string> model_paths;  // several: an ensemble
    std::string device = "auto";
    int64_t test_batch_size = 1000;
    bool json = false;
    int threads = 0;
};

// Adds the subcommand and its options to `app`; `config` must outlive the parse, which ends
// with the checks of the flags (usage errors).
CLI::App* add_eval_command(CLI::App& app, EvalConfig& config);

// Reads only the test files. JSON: {"model", "dataset", "n_samples", "test_loss",
// "test_accuracy", "per_class_accuracy", "confusion_matrix" (rows: true class)}; for an
// ensemble {"models", "dataset", "n_samples", "members" [{"model", "test_accuracy",
// "test_loss"}], "test_loss", "test_accuracy", "confusion_matrix"}.
int run_eval(const EvalConfig& config, std::ostream& out);

// `mlptrain predict`: the most probable classes for PNG pictures or for samples of an IDX image
// file, as text or JSON.

struct PredictConfig {
    std::vector<std::string> model_paths;  // several: an ensemble (mean probabilities)
    std::vector<std::string> files;        // PNG pictures
    std::string idx_path;                  // --idx: an IDX image file
    int64_t index = -1;                    // --index: one sample of it
    bool all = false;                      // --all: every sample of it
    int64_t top_k = 3;
    std::string invert = "auto";  // auto | yes | no (pictures only)
    bool json = false;
};

// Adds the subcommand and its options to `app`; `config` must outlive the parse. Inconsistent
// choices (a picture and --idx, --index without --idx, ...) are usage errors of the parse.
CLI::App* add_predict_command(CLI::App& app, PredictConfig& config);

// Text: for each input a header line, then one line per class ("   9  ankle boot   97.12%");
// with --all only the predicted class of each sample, one per line. JSON: an array of
// {"file", "index" (IDX inputs), "inverted" (pictures), "top": [{"class", "name"?,
// "probability"}]}.
int run_predict(const PredictConfig& config, std::ostream& out);

// `mlptrain sweep` (many configurations from comma lists, trained side by
// side) and `mlptrain sweep-merge` (the leaderboard of a sharded sweep).

struct SweepCommand {
    TrainConfig base;
    // The swept flags as given; parsed into `axes` when the parse completes.
    std::vector<std::string> hidden;
    std::string lr, seed, momentum, weight_decay, beta1, beta2;
    TrainingFlags flags;       // the flags shared with `train` that are kept as text
    int threads = 0;           // CPU threads a group's models are spread over; 0: one per core
    std::string devices_text;  // --devices 0,1: GPUs the groups are spread over
    std::vector<int> devices;  // parsed; empty: the one --device
    std::string shard;
    int64_t max_models = 1024;
    int64_t max_memory_mb = 0;
    SweepOptions options;
    SweepAxes axes;
    std::vector<SweepPoint> points;  // this shard's, after the parse
};

// Adds the subcommand; its checks (lists, flags that do not suit the optimizer or schedule,
// --max-models) run when the parse completes and are usage errors naming the flag.
CLI::App* add_sweep_command(CLI::App& app, SweepCommand& command);
int run_sweep_command(const SweepCommand& command, std::ostream& out);

struct SweepMergeCommand {
    std::vector<std::string> inputs;  // folders holding summary.json, or summary files
    std::string out_path;             // --out: the merged summary.json
};

CLI::App* add_sweep_merge_command(CLI::App& app, SweepMergeCommand& command);
int run_sweep_merge(const SweepMergeCommand& command, std::ostream& out);

}  // namespace mlp
