#include "host/cpu/thread_policy.hpp"

#include <cblas.h>

#include <algorithm>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlp {

// The GEMMs of a small batch (128 x 64 x 784 at batch 64) finish in
// microseconds, less than it costs to wake and join a second thread, so
// threads only pay off from large batches on. Measured on 2 cores: batch 64
// runs an epoch about 30x faster on one thread than on two.
int apply_cpu_threads(int64_t batch_size, int requested) {
    int n_threads = requested;
    if (n_threads <= 0) {
        const int n_cores = int(std::max(1u, std::thread::hardware_concurrency()));
        n_threads = batch_size >= k_threaded_batch_size ? n_cores : 1;
    }
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
    openblas_set_num_threads(n_threads);
    return n_threads;
}

int apply_batched_cpu_threads(int requested) {
    const int n_cores = int(std::max(1u, std::thread::hardware_concurrency()));
    const int n_threads = requested > 0 ? requested : n_cores;
    // OpenBLAS built on OpenMP sets the OpenMP count too, so it goes first. Inside the
    // batch's parallel loops it runs single-threaded either way.
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
    return n_threads;
}

}  // namespace mlp
