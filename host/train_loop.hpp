// The epoch loop around a Trainer: order of samples, evaluation, the epoch
// line, metrics file, progress and the final model.
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include "host/train_config.hpp"
#include "host/trainer.hpp"

namespace mlp {

struct EpochRecord {
    int64_t epoch = 0;  // 1-based
    float lr = 0.0f;
    EpochResult train;
    EpochResult test;
    double seconds = 0.0;  // training pass only
    double samples_per_s = 0.0;
};

// Runs config.epochs epochs, printing one line per epoch to `out`. Writes the
// metrics file after every epoch and the model at the end when configured.
// Throws Error when the loss stops being finite.
std::vector<EpochRecord> run_training(Trainer& trainer, const TrainConfig& config,
                                      const std::string& dataset_name, std::ostream& out);

}  // namespace mlp
