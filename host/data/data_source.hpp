// Resolves --data / --dataset to a loaded Dataset, in this order: --data DIR;
// else data/NAME in the project, then /usr/share/datasets/NAME, then
// data/fetch NAME.
#pragma once

#include <string>

#include "host/config/train_config.hpp"
#include "host/data/dataset.hpp"

namespace mlp {

// The project's data folder: $MLPTRAIN_DATA_DIR, else the source tree's data/.
std::string project_data_dir();

// Loads the data set; `where`, when given, receives the folder it came from. The class count
// is config.classes, else the training labels' (LoadOptions::n_classes).
Dataset open_dataset(const DataConfig& config, std::string* where = nullptr);

// The test split alone (eval), its labels checked against config.classes, else against
// `model_classes`, the outputs of the model to evaluate.
Dataset open_test_split(const DataConfig& config, int64_t model_classes,
                        std::string* where = nullptr);

}  // namespace mlp
