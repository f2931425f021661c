#include "host/device/device.hpp"

#include <cstdio>

#include "host/base/error.hpp"

namespace mlp {

std::string CudaDeviceInfo::describe() const {
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", double(total_bytes) / double(1ull << 30));
    return "cuda:" + std::to_string(index) + " " + name + " (compute capability " +
           std::to_string(cc_major) + "." + std::to_string(cc_minor) + ", " + mem + ")";
}

DeviceSpec parse_device(const std::string& name) {
    DeviceSpec spec;
    const std::string cuda = entry_of(k_devices, DeviceKind::cuda).name;
    const std::string prefix = cuda + ":";
    if (name.compare(0, prefix.size(), prefix) == 0 && name.size() > prefix.size() &&
        name.size() <= prefix.size() + 4 &&
        name.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
        spec.kind = DeviceKind::cuda;
        spec.index = std::stoi(name.substr(prefix.size()));
        return spec;
    }
    const auto* entry = find_name(k_devices, name);
    if (entry == nullptr) {
        throw UsageError("--device", "'" + name + "' is not a device (" + device_help() + ")");
    }
    spec.kind = entry->value;
    return spec;
}

DeviceChoice choose_device(const std::string& name) {
    const DeviceSpec spec = parse_device(name);
    DeviceChoice choice;
    if (spec.kind == DeviceSpec::Kind::cpu) return choice;
    const CudaDeviceInfo info = probe_cuda_device(spec.index);
    if (info.usable) {
        choice.cuda = true;
        choice.gpu = info;
        return choice;
    }
    if (spec.kind == DeviceSpec::Kind::cuda) {
        throw Error("--device " + name + ": no usable CUDA device: " + info.reason);
    }
    choice.fallback_reason = "no usable CUDA device: " + info.reason;
    return choice;
}

std::unique_ptr<Trainer> make_trainer(const DeviceChoice& device, const ModelShape& shape,
                                      const Dataset& data, const TrainerOptions& options,
                                      const std::vector<OptimizerConfig>& optimizers) {
    if (!device.cuda) return make_cpu_trainer(shape, data, options, optimizers);
    return make_cuda_trainer(shape, data, options, optimizers, device.gpu.index,
                             device.gpu.describe());
}

}  // namespace mlp
