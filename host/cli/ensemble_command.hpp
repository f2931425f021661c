// The ensemble form of `mlptrain eval`: several --model files.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "host/config/train_config.hpp"

namespace mlp {

// `eval` with several --model files: each member's accuracy and the ensemble's (mean
// probabilities), computed on the host.
int run_ensemble_eval(const std::vector<std::string>& model_paths, const DataConfig& data,
                      bool json, std::ostream& out);

}  // namespace mlp
