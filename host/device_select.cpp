#include "host/device_select.hpp"

#include "host/cuda_device.hpp"
#include "host/error.hpp"


namespace mlp {

DeviceChoice choose_device(const std::string& name) {
    if (name != "auto" && name != "cpu" && name != "cuda") {
        throw Error("--device " + name + ": unknown device (use auto, cpu or cuda)");
    }
    DeviceChoice choice;
    if (name == "cpu") return choice;
    const CudaDeviceInfo info = probe_cuda_device();
    if (info.usable) {
        choice.cuda = true;
        return choice;
    }
    if (name == "cuda") throw Error("--device cuda: no usable CUDA device: " + info.reason);
    choice.fallback_reason = "no usable CUDA device: " + info.reason;
    return choice;
}

std::unique_ptr<Trainer> make_trainer(const DeviceChoice& device, const ModelShape& shape,
                                      const Dataset& data, const TrainerOptions& options) {
    return device.cuda ? make_cuda_trainer(shape, data, options)
                       : make_cpu_trainer(shape, data, options);
}

}  // namespace mlp
