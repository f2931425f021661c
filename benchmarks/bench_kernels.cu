// Kernel micro-benchmarks of the CUDA backend: every functor launch (the
// generic grid-stride launcher) and every cuBLAS GEMM shape of the default
// training step, through the production CudaBackend, each checked once
// against the CPU backend and timed with CUDA events on the backend's stream.
// Without a usable device every case is skipped with the reason. The cases
// are in tests/backend_cases.hpp, shared with bench_kernels_cpu.cpp and the
// GPU tests.
//
//   mlptrain-bench-kernels [--benchmark_filter=REGEX] [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "benchmarks/kernel_cases.hpp"
#include "cuda/cuda_backend.cuh"
#include "host/cpu/cpu_backend.hpp"
#include "host/device/device.hpp"

namespace mlp {

static int bench_main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    const CudaDeviceInfo info = probe_cuda_device();
    std::unique_ptr<CudaBackend> backend;
    std::string error;
    if (!info.usable) {
        error = "no usable CUDA device: " + info.reason;
    } else {
        try {
            backend = std::make_unique<CudaBackend>(info.index);
        } catch (const std::exception& e) {
            error = e.what();
        }
    }
    bench::register_kernel_benchmarks<CudaBackend, CpuBackend>(
        [&](std::string* why) {
            if (!backend) *why = error;
            return backend.get();
        },
        [](int64_t) {});
    benchmark::AddCustomContext("device", info.usable ? info.describe() : error);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace mlp

int main(int argc, char** argv) {
    return mlp::bench_main(argc, argv);
}
