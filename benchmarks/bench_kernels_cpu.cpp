// Kernel micro-benchmarks of the CPU backend: every functor launch and GEMM
// shape of the default training step through CpuBackend (OpenMP loops over
// the shared functors, OpenBLAS SGEMM), each checked once against plain
// loops. The cases are in kernel_cases.hpp, shared with bench_kernels.cu.
//
//   mlptrain-bench-kernels-cpu [--benchmark_filter=REGEX] [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <thread>

#include "benchmarks/kernel_cases.hpp"
#include "host/cpu/cpu_backend.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlp {

// The thread count the CPU trainer picks for this batch (host/cpu_trainer.cpp):
// one thread below batch 1024, where waking a second costs more than it saves.
static void use_trainer_threads(int64_t batch) {
    const int n_cores = int(std::max(1u, std::thread::hardware_concurrency()));
    const int n_threads = batch >= 1024 ? n_cores : 1;
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
    openblas_set_num_threads(n_threads);
}

static int bench_main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    CpuBackend backend;
    bench::register_kernel_benchmarks<CpuBackend, bench::NaiveBackend>(
        [&](std::string*) { return &backend; }, use_trainer_threads);
    benchmark::AddCustomContext(
        "backend", "cpu (OpenMP functors, OpenBLAS " + std::string(openblas_get_config()) + ")");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace mlp

int main(int argc, char** argv) {
    return mlp::bench_main(argc, argv);
}
