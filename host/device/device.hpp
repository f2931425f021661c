// Which backend and which GPU a run uses, in one place: the CUDA device probe
// (cuda_probe.cpp in a CUDA build, no_cuda.cpp otherwise), the --device names
// and their parsing, and the factory that builds the trainer for the choice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/config/names.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

struct CudaDeviceInfo {
    bool usable = false;
    int index = 0;
    std::string name;
    int cc_major = 0;
    int cc_minor = 0;
    uint64_t total_bytes = 0;
    std::string reason;  // why not usable

    // "cuda:0 NVIDIA H100 80GB HBM3 (compute capability 9.0, 79.1 GiB)"
    std::string describe() const;
};

// Probes CUDA device `index`. Never throws: a missing driver, a driver older
// than the runtime or an index past the last device gives usable = false and
// the reason, the missing driver named first.
CudaDeviceInfo probe_cuda_device(int index = 0);

// True in a build that has the CUDA backend compiled in.
bool built_with_cuda();

enum class DeviceKind { auto_, cpu, cuda };

// --device names; "cuda" also takes ":N", GPU N (names.hpp).
constexpr NamedChoice<DeviceKind> k_devices[] = {
    {"auto", DeviceKind::auto_, "GPU 0 when one is usable, else the CPU"},
    {"cpu", DeviceKind::cpu, ""},
    {"cuda", DeviceKind::cuda, "GPU 0; cuda:N for GPU N"},
};
// The --device help text, from the table.
inline std::string device_help() {
    return name_list_with_help(k_devices);
}

struct DeviceSpec {
    using Kind = DeviceKind;
    Kind kind = Kind::auto_;
    int index = 0;  // cuda:N
};

// Throws UsageError naming --device for anything but the names above.
DeviceSpec parse_device(const std::string& name);

struct DeviceChoice {
    bool cuda = false;
    CudaDeviceInfo gpu;           // when cuda
    std::string fallback_reason;  // why auto chose the CPU; empty otherwise
};

// Throws UsageError for an unknown name and Error for `cuda[:N]` without a
// usable device there.
DeviceChoice choose_device(const std::string& name);

// The trainer of one model, or (`optimizers`: one entry each, all of one kind) of a batch of
// models of one shape that train together, on the chosen backend.
std::unique_ptr<Trainer> make_trainer(const DeviceChoice& device, const ModelShape& shape,
                                      const Dataset& data, const TrainerOptions& options,
                                      const std::vector<OptimizerConfig>& optimizers = {});

}  // namespace mlp
