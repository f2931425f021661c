// Kernel micro-benchmarks of the CPU backend: every functor launch and GEMM
// shape of the default training step through CpuBackend (OpenMP loops over
// the shared functors, OpenBLAS SGEMM), each checked once against plain
// loops. The cases are in tests/backend_cases.hpp, shared with bench_kernels.cu
// and the tests.
//
//   mlptrain-bench-kernels-cpu [--benchmark_filter=REGEX] [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include "benchmarks/kernel_cases.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/cpu/thread_policy.hpp"

namespace mlp {

// The thread count the CPU trainer picks (the same at every batch size).
static void use_trainer_threads(int64_t) {
    apply_cpu_threads(0);
}

static int bench_main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    CpuBackend backend;
    bench::register_kernel_benchmarks<CpuBackend, cases::NaiveBackend>(
        [&](std::string*) { return &backend; }, use_trainer_threads);
    benchmark::AddCustomContext("backend",
                                "cpu (OpenMP functors, " + gemm_library().description() + ")");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace mlp

int main(int argc, char** argv) {
    return mlp::bench_main(argc, argv);
}
