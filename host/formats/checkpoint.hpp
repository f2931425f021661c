// Checkpoints that a run can resume from bit for bit, and the metadata every
// saved model carries.
//
// A checkpoint at PATH is two safetensors files, each written atomically:
//   PATH                   the model, exactly as --save-model writes it (PyTorch
//                          nn.Sequential names, loadable with strict load_state_dict)
//   state_path(PATH)       everything else a resumed run needs: the parameters
//                          ("params") and the optimizer's buffers ("momentum_buffer",
//                          or "exp_avg" and "exp_avg_sq"), each [n_params] in the flat
//                          layout of host/model/model.hpp, with metadata holding the
//                          epochs done, the optimizer's step count, the run's flags and
//                          data (host/formats/run_metadata.hpp) and a checksum of the
//                          tensor data.
// The state file is written first and holds the parameters itself, so a crash
// between the two writes leaves a state that still resumes (one epoch ahead of
// the model file) rather than a mismatched pair. The epoch order, learning
// rates and augmentation shifts are pure functions of (flags, seed, epoch), so
// they need no saved random state.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/config/optimizer.hpp"
#include "host/config/train_config.hpp"
#include "host/formats/run_metadata.hpp"
#include "host/model/model.hpp"

namespace mlp {

// "run.safetensors" -> "run.state.safetensors"; any other name gets ".state.safetensors" added.
std::string state_path(const std::string& checkpoint_path);

struct TrainingState {
    int64_t epochs_done = 0;
    std::vector<float> params;
    OptimizerState optimizer;
    std::map<std::string, std::string> metadata;  // as training_metadata() wrote it
};

// The metadata of the training state beside the checkpoint at `path` (for resume_config()).
// Throws DataError naming the file when it is missing or not a training state; when `path` is a
// model without a state beside it (or a state file itself), the message says so and how to make
// a checkpoint (train --checkpoint PATH).
std::map<std::string, std::string> checkpoint_metadata(const std::string& path,
                                                       uint64_t limit_bytes = uint64_t(1) << 32);

// Writes state_path(path), then the model file at `path`; `metadata` comes
// from training_metadata(). A failed write leaves the previous files intact.
void save_checkpoint(const std::string& path, const ModelShape& shape,
                     const std::vector<float>& params, const OptimizerState& optimizer,
                     const std::vector<std::string>& buffer_names,
                     const std::map<std::string, std::string>& metadata);

// Reads state_path(path) for a run whose training_metadata() is `now`: checks
// the flags and the data with check_resume_matches(), then the file strictly
// against the model shape and the buffers the optimizer keeps, whose values
// must be finite (each defect a DataError naming the file and, for a value,
// the tensor and index). `note` receives a line when the model file at `path` is
// missing or holds another epoch than the state (a run stopped between the two
// writes); the state is what resumes.
TrainingState load_checkpoint(const std::string& path, const ModelShape& shape,
                              const std::vector<std::string>& buffer_names,
                              const std::map<std::string, std::string>& now, std::string* note,
                              uint64_t limit_bytes = uint64_t(1) << 32);

}  // namespace mlp
