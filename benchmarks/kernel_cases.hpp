// The kernel micro-benchmarks, written once over the backend interface
// (host/train/backend.hpp) like the training step itself: the timed cases of
// the case table (tests/backend_cases.hpp), every functor launch and every
// GEMM shape of one default training step (784-128-64-10), at batch 64, 256,
// 1024 and 8192, through the production Backend::for_each and Backend::gemm. The GPU
// tests check the same table, untimed variants included.
//
// Each case is first run once on the measured backend and on a reference
// (the CPU backend for CUDA; plain loops for the CPU backend) from the same
// inputs and the outputs compared with the case's normalised-error
// tolerance; a mismatch stops the case with an error instead of timing a
// wrong kernel. Then it times windows of LaunchTiming<Backend>::launches()
// back-to-back launches with Backend::time_seconds (CUDA events, or a steady
// clock), each window counted as that many iterations (KeepRunningBatch), so
// the time reported is per launch. The CPU backend's window is one launch; the
// CUDA benchmark's is many (bench_kernels.cu), since one launch between two
// events measures the host's launch cost, not the kernel. Each case reports
// GB/s (functors: the bytes each must read and write at least) or GFLOP/s
// (GEMMs: 2*m*n*k) per launch.
//
// Included by bench_kernels_cpu.cpp and bench_kernels.cu only.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <string>

#include "tests/backend_cases.hpp"

namespace mlp {
namespace bench {

// How cases are timed on backend Be: window(be, run) makes ready a function
// that runs `run` launches() times back to back and returns the seconds the
// backend measured for all of them. This default, one launch per window, is
// the CPU backend's; bench_kernels.cu specialises it for CUDA.
template <class Be>
struct LaunchTiming {
    static int64_t launches() { return 1; }
    static std::function<double()> window(Be& be, const std::function<void()>& run) {
        return [&be, run] { return be.time_seconds(run); };
    }
};

// Registers one case. `backend()` returns the measured backend, or nullptr and
// the reason it cannot run; `configure(batch)` sets up the backend as the
// trainer would for that batch (CPU threads).
template <class Be, class Ref>
void register_case(const cases::KernelCase<Be, Ref>& c,
                   const std::function<Be*(std::string*)>& backend,
                   const std::function<void(int64_t)>& configure) {
    const cases::CaseInfo& info = c.info;
    auto body = [=](benchmark::State& state) {
        std::string why;
        Be* be = backend(&why);
        if (!be) {
            state.SkipWithError(why.c_str());
            return;
        }
        configure(info.batch);
        Ref ref;
        cases::Prepared expected = c.prepare_reference(ref);
        cases::Prepared measured = c.prepare(*be);
        expected.run();
        measured.run();
        const double err = cases::worst_error(expected.outputs(), measured.outputs());
        if (err < 0.0 || err > info.tolerance) {
            const std::string msg = "result differs from the reference (relative error " +
                                    std::to_string(err) + "); not timed";
            state.SkipWithError(msg.c_str());
            return;
        }
        std::function<double()> window;
        try {
            window = LaunchTiming<Be>::window(*be, measured.run);
        } catch (const std::exception& e) {
            state.SkipWithError(e.what());
            return;
        }
        // Each window counts as `launches` iterations, so the reported time per iteration is
        // the time per launch and --benchmark_min_time still bounds the time spent.
        const int64_t launches = LaunchTiming<Be>::launches();
        double total_s = 0.0;
        while (state.KeepRunningBatch(launches)) {
            const double s = window();
            state.SetIterationTime(s);
            total_s += s;
        }
        const double n = double(state.iterations());  // launches timed
        if (info.bytes > 0.0) state.counters["GB/s"] = info.bytes * n / total_s * 1e-9;
        if (info.flops > 0.0) state.counters["GFLOP/s"] = info.flops * n / total_s * 1e-9;
        state.counters["check_err"] = err;
        state.counters["launches_per_window"] = double(launches);
    };
    benchmark::RegisterBenchmark(info.name.c_str(), body)->UseManualTime();
}

// The timed cases of the table (tests/backend_cases.hpp) at the default
// model's batch 64, 256, 1024 and 8192.
template <class Be, class Ref>
void register_kernel_benchmarks(const std::function<Be*(std::string*)>& backend,
                                const std::function<void(int64_t)>& configure) {
    for (const cases::CaseShape& at : cases::benchmark_shapes()) {
        for (const auto& c : cases::step_cases<Be, Ref>(at)) {
            if (c.info.timed) register_case<Be, Ref>(c, backend, configure);
        }
    }
}

}  // namespace bench
}  // namespace mlp
