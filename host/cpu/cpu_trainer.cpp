#include "host/cpu/cpu_backend.hpp"
#include "host/cpu/thread_policy.hpp"
#include "host/train/batched_engine.hpp"
#include "host/train/batched_trainer.hpp"
#include "host/train/engine.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

// OpenMP and OpenBLAS thread counts are process-wide, so the last trainer
// made sets them.
std::unique_ptr<Trainer> make_cpu_trainer(const ModelShape& shape, const Dataset& data,
                                          const TrainerOptions& options) {
    const int n_threads = apply_cpu_threads(options.batch_size, options.cpu_threads);
    return std::make_unique<BackendTrainer<CpuBackend, Engine>>(
        std::make_unique<CpuBackend>(), shape, data, options,
        "cpu (" + std::to_string(n_threads) + (n_threads == 1 ? " thread" : " threads") +
            ", OpenBLAS)");
}

std::unique_ptr<BatchedTrainer> make_cpu_batched_trainer(
    const ModelShape& shape, const Dataset& data, const TrainerOptions& options,
    const std::vector<OptimizerConfig>& optimizers) {
    const int n_threads = apply_batched_cpu_threads(options.cpu_threads);
    return std::make_unique<BatchedBackendTrainer<CpuBackend, BatchedEngine>>(
        std::make_unique<CpuBackend>(), shape, data, options, optimizers,
        "cpu (" + std::to_string(n_threads) + (n_threads == 1 ? " thread" : " threads") +
            ", OpenBLAS)");
}

}  // namespace mlp
