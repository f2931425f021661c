// `mlptrain eval`: a saved model on the test split of a data set: loss, accuracy, per-class
// accuracy and the confusion matrix, as text or JSON. Several --model files are an ensemble:
// the mean of their probabilities, reported beside each member's figures.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "host/config/train_config.hpp"

namespace CLI {
class App;
}

namespace mlp {

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

}  // namespace mlp
