// Checkpoints that a run can resume from bit for bit, and the metadata every
// saved model carries.
//
// A checkpoint at PATH is two safetensors files, each written atomically:
//   PATH                   the model, exactly as --save-model writes it (PyTorch
//                          nn.Sequential names, loadable with strict load_state_dict)
//   state_path(PATH)       everything else a resumed run needs: the parameters
//                          ("params") and the optimizer's buffers ("momentum_buffer",
//                          or "exp_avg" and "exp_avg_sq"), each [n_params] in the flat
//                          layout of host/model.hpp, with metadata holding the epochs
//                          done, the optimizer's step count, the run's flags and a
//                          checksum of the tensor data.
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
#include "host/model/model.hpp"

namespace mlp {

// "run.safetensors" -> "run.state.safetensors"; any other name gets ".state.safetensors" added.
std::string state_path(const std::string& checkpoint_path);

// Metadata of a model or state file: layer sizes come from the model itself;
// this adds the input normalisation, class count, data set, epochs done, and
// every flag that shapes training (those of the chosen optimizer and schedule
// only), with floats written to round-trip exactly.
std::map<std::string, std::string> training_metadata(const TrainConfig& config,
                                                     const std::string& dataset_name,
                                                     int64_t n_train, int64_t n_classes,
                                                     int64_t epochs_done);

struct TrainingState {
    int64_t epochs_done = 0;
    std::vector<float> params;
    OptimizerState optimizer;
    std::map<std::string, std::string> metadata;  // as training_metadata() wrote it
};

// Writes state_path(path), then the model file at `path`; `metadata` comes
// from training_metadata(). A failed write leaves the previous files intact.
void save_checkpoint(const std::string& path, const ModelShape& shape,
                     const std::vector<float>& params, const OptimizerState& optimizer,
                     const std::vector<std::string>& buffer_names,
                     const std::map<std::string, std::string>& metadata);

// Reads state_path(path) for a run whose training_metadata() is `now`: checks
// the flags with check_resume_matches(), then the file strictly against the
// model shape and the buffers the optimizer keeps (each defect a DataError
// naming the file). `note` receives a line when the model file at `path` is
// missing or holds another epoch than the state (a run stopped between the two
// writes); the state is what resumes.
TrainingState load_checkpoint(const std::string& path, const ModelShape& shape,
                              const std::vector<std::string>& buffer_names,
                              const std::map<std::string, std::string>& now, std::string* note,
                              uint64_t limit_bytes = uint64_t(1) << 32);

// Throws Error when `now` (this run's training_metadata) differs from the
// checkpoint's in anything but the flags a resumed run may change (--epochs,
// where the schedule does not depend on it, the device, outputs, logging);
// the message names the flag, both values and the checkpoint.
void check_resume_matches(const std::map<std::string, std::string>& saved,
                          const std::map<std::string, std::string>& now, const std::string& path);

}  // namespace mlp
