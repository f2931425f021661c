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
#ifdef _OPENMP
    // The CPUs this process may run on (its affinity mask: taskset, a container's cpuset),
    // not every CPU of the machine.
    const int n_cpus = std::max(1, omp_get_num_procs());
#else
    const int n_cpus = int(std::max(1u, std::thread::hardware_concurrency()));
#endif
    const int n_threads = requested > 0 ? requested : n_cpus;
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
    return n_threads;
}

}  // namespace mlp
