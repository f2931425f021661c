// Resolves --data / --dataset to a loaded Dataset, following DESIGN.md's
// lookup order: --data DIR; else data/NAME in the project, then
// /usr/share/datasets/NAME, then data/fetch NAME.
#pragma once

#include <string>

#include "host/dataset.hpp"
#include "host/train_config.hpp"

namespace mlp {

// The project's data folder: $MLPTRAIN_DATA_DIR, else the source tree's data/.
std::string project_data_dir();

// Loads the data set; `log` receives one line saying where it came from.
Dataset open_dataset(const DataConfig& config, std::string* where = nullptr);

}  // namespace mlp
