#include "host/cpu/cpu_backend.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/cpu/thread_policy.hpp"
#include "host/train/backend_trainer.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

// The OpenMP thread count is process-wide, so the last trainer made sets it.
std::unique_ptr<Trainer> make_cpu_trainer(const ModelShape& shape, const Dataset& data,
                                          const TrainerOptions& options,
                                          const std::vector<OptimizerConfig>& optimizers) {
    const int n_threads = apply_cpu_threads(options.cpu_threads);
    return std::make_unique<BackendTrainer<CpuBackend>>(
        std::make_unique<CpuBackend>(), shape, data, options, optimizers,
        "cpu (" + std::to_string(n_threads) + (n_threads == 1 ? " thread" : " threads") + ", " +
            gemm_library().summary() + ")");
}

}  // namespace mlp
