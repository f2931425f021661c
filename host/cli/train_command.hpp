// `mlptrain train`: trains a model on a data set, printing one line per epoch, and writes the
// model, the metrics and checkpoints where asked.
#pragma once

#include <ostream>

#include "host/cli/training_flags.hpp"
#include "host/config/train_config.hpp"

namespace CLI {
class App;
}

namespace mlp {

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

}  // namespace mlp
