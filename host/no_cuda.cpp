// Stand-ins for the CUDA backend's entry points in a build without CUDA
// (-DMLPTRAIN_CUDA=OFF): they say so instead of failing to link.
#include "host/cuda_device.hpp"
#include "host/error.hpp"
#include "host/trainer.hpp"

namespace mlp {

CudaDeviceInfo probe_cuda_device() {
    CudaDeviceInfo info;
    info.reason = "this mlptrain was built without CUDA (-DMLPTRAIN_CUDA=OFF)";
    return info;
}

bool built_with_cuda() { return false; }

std::unique_ptr<Trainer> make_cuda_trainer(const ModelShape&, const Dataset&,
                                           const TrainerOptions&) {
    throw Error("the CUDA backend is not available: " + probe_cuda_device().reason);
}

}  // namespace mlp
