// The metadata every saved model and checkpoint carries about the run that made it: the input
// normalisation, the data, the epochs done and every flag that shapes training. One table in
// run_metadata.cpp says, per key, how it is written from the run, which flag sets it, whether a
// resumed run must match it, and how it reads back into a TrainConfig; writing, the resume check
// and the resume defaults all follow it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "host/base/fnv1a.hpp"  // the data's checksum in RunData
#include "host/config/train_config.hpp"

namespace mlp {

// The data a run trains on, as the metadata records it.
struct RunData {
    std::string name;  // "mnist", "fashion-mnist", or the --data folder's name
    int64_t n_train = 0;
    int64_t n_classes = 0;
    // The fingerprint, compared on resume instead of the name: the test split's size, the image
    // size and FNV-1a 64 over the decoded bytes (train images, train labels, test images, test
    // labels). Absent where a caller knows only the name and counts; then the name is compared.
    int64_t n_test = 0;
    int64_t image_rows = 0;
    int64_t image_cols = 0;
    std::optional<uint64_t> fnv1a64;
};

// The keys of the table; floats are written to round-trip exactly, and only the chosen
// optimizer's and schedule's flags are written.
std::map<std::string, std::string> training_metadata(const TrainConfig& config, const RunData& data,
                                                     int64_t epochs_done);

// The same for a caller that knows the data only by name and training-set size.
std::map<std::string, std::string> training_metadata(const TrainConfig& config,
                                                     const std::string& dataset_name,
                                                     int64_t n_train, int64_t n_classes,
                                                     int64_t epochs_done);

// Throws one Error listing every key in which `now` (this run's training_metadata) differs from
// the checkpoint's `saved`, except what a resumed run may change (--epochs, where the schedule
// does not depend on it, the device, outputs, logging). Each entry names the flag and both
// values; the message names the checkpoint. The data is compared by its fingerprint where both
// have one, else by name.
void check_resume_matches(const std::map<std::string, std::string>& saved,
                          const std::map<std::string, std::string>& now, const std::string& path);

// The configuration a run resuming the checkpoint at `path` trains with: every training flag is
// the checkpoint's (from its metadata `saved`), except those named in `given` (as typed: "--lr"),
// which keep their value from `parsed` and must equal the checkpoint's unless they may change
// (--epochs; the device, outputs and logging are not in the metadata and stay as parsed). Throws
// one Error listing every given flag that differs or does not apply to the checkpoint's run, and
// a one-cycle run asked to go past its schedule; a metadata value that does not read back throws
// DataError naming `path`. The data itself is checked later, against the fingerprint.
TrainConfig resume_config(const std::map<std::string, std::string>& saved,
                          const TrainConfig& parsed, const std::set<std::string>& given,
                          const std::string& path);

// Throws DataError naming `path` when the metadata's input_scale or input_offset (absent: 1/255
// and 0) differ from what training and eval apply to the pixels (x / 255). Predict honours the
// values instead (host/model/predict.hpp).
void check_input_normalisation(const std::map<std::string, std::string>& metadata,
                               const std::string& path);

}  // namespace mlp
