#include <cblas.h>

#include <algorithm>
#include <thread>

#include "host/cpu/cpu_backend.hpp"
#include "host/train/engine.hpp"
#include "host/train/trainer.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlp {

// The GEMMs of a small batch (128 x 64 x 784 at batch 64) finish in
// microseconds, less than it costs to wake and join a second thread, so
// threads only pay off from large batches on. Measured on 2 cores: batch 64
// runs an epoch about 30x faster on one thread than on two. OpenMP and
// OpenBLAS thread counts are process-wide, so the last trainer made sets them.
static int apply_cpu_threads(const TrainerOptions& options) {
    int n_threads = options.cpu_threads;
    if (n_threads <= 0) {
        const int n_cores = int(std::max(1u, std::thread::hardware_concurrency()));
        n_threads = options.batch_size >= 1024 ? n_cores : 1;
    }
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
    openblas_set_num_threads(n_threads);
    return n_threads;
}

std::unique_ptr<Trainer> make_cpu_trainer(const ModelShape& shape, const Dataset& data,
                                          const TrainerOptions& options) {
    const int n_threads = apply_cpu_threads(options);
    return std::make_unique<BackendTrainer<CpuBackend, Engine>>(
        std::make_unique<CpuBackend>(), shape, data, options,
        "cpu (" + std::to_string(n_threads) + (n_threads == 1 ? " thread" : " threads") +
            ", OpenBLAS)");
}

}  // namespace mlp
