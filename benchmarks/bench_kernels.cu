// Kernel micro-benchmarks of the CUDA backend: every functor launch (the
// generic grid-stride launcher) and every cuBLAS GEMM shape of the default
// training step, through the production CudaBackend, each checked once
// against the CPU backend and timed with CUDA events on the backend's stream.
// Without a usable device every case is skipped with the reason. The cases
// are in tests/backend_cases.hpp, shared with bench_kernels_cpu.cpp and the
// GPU tests.
//
// One event pair around one launch would time the host's launch cost (a few
// microseconds, whatever the kernel), so each event pair here spans a window
// of --launches back-to-back launches (default 100), recorded once as a CUDA
// graph and replayed (--timing graph, the default; how the trainer runs an
// epoch) or issued one by one on the stream (--timing stream), and the time
// reported is the window's divided by the count.
//
//   mlptrain-bench-kernels [--launches N] [--timing graph|stream]
//                          [--benchmark_filter=REGEX] [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/kernel_cases.hpp"
#include "cuda/cuda_backend.cuh"
#include "host/cpu/cpu_backend.hpp"
#include "host/device/device.hpp"

namespace mlp {
namespace bench {

template <>
struct LaunchTiming<CudaBackend> {
    static inline int64_t n_launches = 100;
    static inline bool use_graph = true;

    static int64_t launches() { return n_launches; }
    static std::function<double()> window(CudaBackend& be, const std::function<void()>& run) {
        auto many = [run] {
            for (int64_t i = 0; i < n_launches; ++i) run();
        };
        if (!use_graph) {
            be.time_seconds(many);  // warm-up: lazy module loading, cuBLAS's first call
            return [&be, many] { return be.time_seconds(many); };
        }
        // Recorded and launched once here (the warm-up); every window replays it.
        auto graph = std::make_shared<CudaBackend::Graph>();
        be.run_graph(*graph, 0, many);
        be.synchronize();
        return [&be, graph] {
            return be.time_seconds([&] { be.run_graph(*graph, 0, [] {}); });
        };
    }
};

}  // namespace bench

// Takes --launches N and --timing graph|stream out of argv; false on a bad value.
static bool parse_timing_flags(int* argc, char** argv) {
    std::vector<char*> rest;
    for (int i = 0; i < *argc; ++i) {
        const std::string a = argv[i];
        std::string value;
        const bool has_next = i + 1 < *argc;
        if ((a == "--launches" || a == "--timing") && has_next) {
            value = argv[++i];
        } else if (a.rfind("--launches=", 0) == 0 || a.rfind("--timing=", 0) == 0) {
            value = a.substr(a.find('=') + 1);
        } else {
            rest.push_back(argv[i]);
            continue;
        }
        if (a.rfind("--launches", 0) == 0) {
            char* end = nullptr;
            const long long n = std::strtoll(value.c_str(), &end, 10);
            if (end == value.c_str() || *end || n < 1 || n > 100000) {
                std::cerr << "mlptrain-bench-kernels: --launches " << value
                          << ": want a number from 1 to 100000\n";
                return false;
            }
            bench::LaunchTiming<CudaBackend>::n_launches = n;
        } else if (value == "graph" || value == "stream") {
            bench::LaunchTiming<CudaBackend>::use_graph = value == "graph";
        } else {
            std::cerr << "mlptrain-bench-kernels: --timing " << value << ": want graph or stream\n";
            return false;
        }
    }
    *argc = int(rest.size());
    for (size_t i = 0; i < rest.size(); ++i) argv[i] = rest[i];
    argv[rest.size()] = nullptr;
    return true;
}

static int bench_main(int argc, char** argv) {
    if (!parse_timing_flags(&argc, argv)) return 2;
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
    benchmark::AddCustomContext(
        "timing", std::to_string(bench::LaunchTiming<CudaBackend>::n_launches) +
                      " back-to-back launches per CUDA event pair, " +
                      (bench::LaunchTiming<CudaBackend>::use_graph
                           ? "recorded once as a CUDA graph and replayed"
                           : "issued one by one on the stream") +
                      "; times are per launch");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace mlp

int main(int argc, char** argv) {
    return mlp::bench_main(argc, argv);
}
