// The options subcommands share: the data flags, --device, and the training flags (model,
// optimizer, schedule, augmentation), so that every command that trains (train, sweep)
// offers the same ones with the same checks. Defined in cli.cpp.
#pragma once

#include <ostream>
#include <string>

#include "host/config/train_config.hpp"

namespace CLI {
class App;
}

namespace mlp {

struct DeviceChoice;
class Trainer;

// --data, --dataset, --no-fetch, --train-samples, --test-samples, --max-input-mb, --classes.
void add_data_options(CLI::App* cmd, DataConfig& data);

// --device NAME, parsed by parse_device() (host/device/device.hpp) in check_device_flag().
void add_device_option(CLI::App* cmd, std::string& device);

// Throws UsageError naming --device for a name parse_device() refuses.
void check_device_flag(const std::string& device);

// The long names of the options of `cmd` given on the command line.
GivenFlags given_flags(const CLI::App* cmd);

// "device: NAME [why auto took the CPU]".
void print_device(std::ostream& out, Trainer& trainer, const DeviceChoice& device);

// The flags kept as text until the parse is complete: the library parses and checks them.
struct TrainingFlags {
    std::string hidden = "128,64";
    std::string optimizer = "sgd";
    std::string schedule = "constant";
    std::string on_nan = "stop";
    std::string seed = "42";
    std::string kernels = "generic";
    std::string precision = "fp32";
};

// The flags that shape a training run (what --resume compares), the data options, --device,
// --threads and --no-graph, all into `config`; `flags` and `config` must outlive the parse.
// The flags named in `leave_out` are not registered: the caller adds its own form of them
// (a sweep's comma lists).
void add_training_flags(CLI::App* cmd, TrainConfig& config, TrainingFlags& flags,
                        const GivenFlags& leave_out = {});

// After the parse: converts the text flags (hidden sizes, seed, optimizer, schedule, --on-nan,
// --device) into `config`, with no defaults filled in and no checks across flags. Throws
// UsageError naming the flag.
void convert_training_flags(TrainConfig& config, const TrainingFlags& flags);

// After the parse: converts the text flags, fills in the defaults that depend on other flags
// (resolve_train_defaults) and checks the whole configuration (check_train_config). Throws
// UsageError naming the flag.
void finish_training_flags(const CLI::App* cmd, TrainConfig& config, const TrainingFlags& flags);

}  // namespace mlp
