// The trainer on the CUDA backend: Engine<CudaBackend> instantiated behind the
// Trainer facade, so the step code compiles once for the GPU, here. The
// backend's own out-of-line code is cuda_backend.cu.
#include <memory>
#include <string>
#include <vector>

#include "cuda/cuda_backend.cuh"
#include "host/train/backend_trainer.hpp"
#include "host/train/engine.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

std::unique_ptr<Trainer> make_cuda_trainer(const ModelShape& shape, const Dataset& data,
                                           const TrainerOptions& options,
                                           const std::vector<OptimizerConfig>& optimizers,
                                           int device_index, const std::string& device_name) {
    return std::make_unique<BackendTrainer<CudaBackend>>(
        std::make_unique<CudaBackend>(device_index), shape, data, options, optimizers, device_name);
}

}  // namespace mlp
