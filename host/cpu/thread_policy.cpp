#include "host/cpu/thread_policy.hpp"

#include <algorithm>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlp {

// Measured on 2 cores (docs/PERFORMANCE.md): from batch 64 on, a GEMM cut in two
// halves on two threads takes about 0.7x the time of one call on one thread, where
// OpenBLAS's own threads, woken at every call, gained less and changed the sums.
int apply_cpu_threads(int requested) {
    const int n_cores = int(std::max(1u, std::thread::hardware_concurrency()));
    const int n_threads = requested > 0 ? requested : n_cores;
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
    return n_threads;
}

}  // namespace mlp
