// The kernel micro-benchmarks, written once over the backend interface
// (host/train/backend.hpp) like the training step itself: the timed cases of
// the case table (tests/backend_cases.hpp), every functor launch and every
// GEMM shape of one default training step (784-128-64-10), at batch 64 and
// 1024, through the production Backend::for_each and Backend::gemm. The GPU
// tests check the same table, untimed variants included.
//
// Each case is first run once on the measured backend and on a reference
// (the CPU backend for CUDA; plain loops for the CPU backend) from the same
// inputs and the outputs compared with the case's normalised-error
// tolerance; a mismatch stops the case with an error instead of timing a
// wrong kernel. Then every iteration is one launch, timed by
// Backend::time_seconds (CUDA events, or a steady clock), and the case
// reports GB/s (functors: the bytes each must read and write at least) or
// GFLOP/s (GEMMs: 2*m*n*k).
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
        double total_s = 0.0;
        for (auto _ : state) {
            const double s = be->time_seconds(measured.run);
            state.SetIterationTime(s);
            total_s += s;
        }
        const double n = double(state.iterations());
        if (info.bytes > 0.0) state.counters["GB/s"] = info.bytes * n / total_s * 1e-9;
        if (info.flops > 0.0) state.counters["GFLOP/s"] = info.flops * n / total_s * 1e-9;
        state.counters["check_err"] = err;
    };
    benchmark::RegisterBenchmark(info.name.c_str(), body)->UseManualTime();
}

// The timed cases of the table (tests/backend_cases.hpp) at the default
// model's batch 64 and 1024.
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
