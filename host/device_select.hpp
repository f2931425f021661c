// --device auto|cpu|cuda: which backend a run uses, and the line that says so.
#pragma once

#include <memory>
#include <string>

#include "host/trainer.hpp"

namespace mlp {

struct DeviceChoice {
    bool cuda = false;
    std::string fallback_reason;  // why auto chose the CPU; empty otherwise
};

// Throws Error for an unknown name or for `cuda` without a usable device.
DeviceChoice choose_device(const std::string& name);

std::unique_ptr<Trainer> make_trainer(const DeviceChoice& device, const ModelShape& shape,
                                      const Dataset& data, const TrainerOptions& options);

}  // namespace mlp
