// `mlptrain eval`: a saved model on the test split of a data set: loss, accuracy, per-class
// accuracy and the confusion matrix, as text or JSON.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "host/config/train_config.hpp"

namespace CLI {
class App;
}

namespace mlp {

struct EvalConfig {
    DataConfig data;
    std::string model_path;
    std::string device = "auto";
    int64_t test_batch_size = 1000;
    bool json = false;
    int threads = 0;
};

// Adds the subcommand and its options to `app`; `config` must outlive the parse, which ends
// with the checks of the flags (usage errors).
CLI::App* add_eval_command(CLI::App& app, EvalConfig& config);

// Reads only the test files. JSON: {"model", "dataset", "n_samples", "test_loss",
// "test_accuracy", "per_class_accuracy", "confusion_matrix" (rows: true class)}.
int run_eval(const EvalConfig& config, std::ostream& out);

}  // namespace mlp
