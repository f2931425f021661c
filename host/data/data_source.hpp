// Resolves --data / --dataset to a loaded Dataset, following DESIGN.md's
// lookup order: --data DIR; else data/NAME in the project, then
// /usr/share/datasets/NAME, then data/fetch NAME.
#pragma once

#include <string>

#include "host/config/train_config.hpp"
#include "host/data/dataset.hpp"

namespace mlp {

// The project's data folder: $MLPTRAIN_DATA_DIR, else the source tree's data/.
std::string project_data_dir();

// Loads the data set; `where`, when given, receives a phrase saying where it came from
// (a folder, or the source a fetch used).
Dataset open_dataset(const DataConfig& config, std::string* where = nullptr);

}  // namespace mlp
