// The kernel micro-benchmarks, written once over the backend interface
// (host/backend.hpp) like the training step itself: every functor launch and
// every GEMM shape of one default training step (784-128-64-10), at batch 64
// and 1024, through the production Backend::for_each and Backend::gemm.
//
// Each case is first run once on the measured backend and on a reference
// (the CPU backend for CUDA; plain loops for the CPU backend) from the same
// inputs and the outputs compared; a mismatch stops the case with an error
// instead of timing a wrong kernel. Then it times windows of
// LaunchTiming<Backend>::launches() back-to-back launches with
// Backend::time_seconds (CUDA events, or a steady clock), each window counted
// as that many iterations (KeepRunningBatch), so the time reported is per
// launch. The CPU backend's window is one launch; the CUDA benchmark's is many
// (bench_kernels.cu), since one launch between two events measures the host's
// launch cost, not the kernel.
// Each case reports GB/s (functors: the bytes each must read and write at
// least) or GFLOP/s (GEMMs: 2*m*n*k) per launch.
//
// Included by bench_kernels_cpu.cpp and bench_kernels.cu only.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "host/base/rng.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/model/model.hpp"
#include "host/train/backend.hpp"
#include "ops/adam_update.hpp"
#include "ops/bias_act.hpp"
#include "ops/bias_grad.hpp"
#include "ops/gather.hpp"
#include "ops/grad_norm.hpp"
#include "ops/relu_backward.hpp"
#include "ops/sgd_update.hpp"
#include "ops/softmax_xent.hpp"

namespace mlp {
namespace bench {

// The CPU backend with its GEMM and for_each replaced by the plainest loops:
// the reference the CPU backend's own results are checked against.
class NaiveBackend : public CpuBackend {
public:
    void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* c, int64_t ldc) {
        for (int64_t j = 0; j < n; ++j) {
            for (int64_t i = 0; i < m; ++i) {
                double sum = 0.0;
                for (int64_t p = 0; p < k; ++p) {
                    const float av = ta == Trans::N ? a[i + p * lda] : a[p + i * lda];
                    const float bv = tb == Trans::N ? b[p + j * ldb] : b[j + p * ldb];
                    sum += double(av) * double(bv);
                }
                c[i + j * ldc] = float(sum);
            }
        }
    }
    template <class F>
    void for_each(int64_t n, const F& f) {
        for (int64_t i = 0; i < n; ++i) f(i);
    }
    // The flat index form: checks the backends' two-index launch against it.
    template <class F>
    void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f) {
        for_each(n_rows * n_cols, f);
    }
};

// One case made ready on one backend: run() launches it once, output() reads
// back what it wrote (as floats). `keep` owns the case's buffers.
struct Prepared {
    std::function<void()> run;
    std::function<std::vector<float>()> output;
    std::shared_ptr<void> keep;
};

// Owns a case's buffers, whatever their types, for as long as it runs.
template <class... Bufs>
std::shared_ptr<std::tuple<std::decay_t<Bufs>...>> hold(Bufs&&... bufs) {
    return std::make_shared<std::tuple<std::decay_t<Bufs>...>>(std::forward<Bufs>(bufs)...);
}

template <class B, class T>
auto upload(B& b, const std::vector<T>& h) {
    auto buf = b.template alloc<T>(int64_t(h.size()));
    b.copy_to_device(buf.data(), h.data(), int64_t(h.size()));
    return buf;
}

template <class B, class T>
std::vector<float> download(B& b, const T* src, int64_t n) {
    std::vector<T> h(static_cast<size_t>(n));
    b.copy_to_host(h.data(), src, n);
    return std::vector<float>(h.begin(), h.end());
}

inline std::vector<float> uniform_floats(int64_t n, float lo, float hi, uint64_t stream) {
    Rng rng(7, stream);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = lo + (hi - lo) * float(rng.uniform());
    return v;
}

// Worst absolute difference relative to the reference's largest magnitude;
// -1 when the sizes differ or a value is not finite.
inline double relative_error(const std::vector<float>& ref, const std::vector<float>& got) {
    if (ref.size() != got.size()) return -1.0;
    double scale = 1e-30, worst = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        if (!std::isfinite(got[i]) || !std::isfinite(ref[i])) return -1.0;
        scale = std::max(scale, double(std::fabs(ref[i])));
        worst = std::max(worst, double(std::fabs(ref[i] - got[i])));
    }
    return worst / scale;
}

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

// Shape of one case: name, work per launch, and how to set it up on any backend.
struct CaseInfo {
    std::string name;
    int64_t batch = 0;
    double bytes = 0.0;  // moved per launch (functors); 0 for GEMMs
    double flops = 0.0;  // per launch (GEMMs); 0 for functors
};

// Registers one case. `backend()` returns the measured backend, or nullptr and
// the reason it cannot run; `configure(batch)` sets up the backend as the
// trainer would for that batch (CPU threads).
template <class Be, class Ref, class Prepare>
void register_case(const CaseInfo& info, const std::function<Be*(std::string*)>& backend,
                   const std::function<void(int64_t)>& configure, Prepare prepare) {
    auto body = [=](benchmark::State& state) {
        std::string why;
        Be* be = backend(&why);
        if (!be) {
            state.SkipWithError(why.c_str());
            return;
        }
        configure(info.batch);
        Ref ref;
        Prepared expected = prepare(ref);
        Prepared measured = prepare(*be);
        expected.run();
        measured.run();
        const double err = relative_error(expected.output(), measured.output());
        // GEMMs accumulate in another order (and cuBLAS may split k); float
        // sums of a few hundred terms agree to ~1e-6 of the largest value.
        if (err < 0.0 || err > 1e-4) {
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

// Every functor launch and GEMM of one training step at `batch`, with the
// engine's arguments (host/engine.hpp).
template <class Be, class Ref>
void register_step_cases(const ModelShape& shape, int64_t batch,
                         const std::function<Be*(std::string*)>& backend,
                         const std::function<void(int64_t)>& configure) {
    const std::string b = "/b" + std::to_string(batch);
    const int64_t n_in = shape.n_inputs();
    const int64_t n_classes = shape.n_classes();
    const int64_t n_samples = 4 * batch;  // a small "data set" the batch is gathered from

    std::vector<uint8_t> images(static_cast<size_t>(n_samples * n_in));
    std::vector<uint8_t> labels(static_cast<size_t>(n_samples));
    std::vector<int32_t> perm(static_cast<size_t>(n_samples));
    {
        Rng rng(7, 100);
        for (uint8_t& p : images) p = uint8_t(rng.below(256));
        for (uint8_t& l : labels) l = uint8_t(rng.below(uint64_t(n_classes)));
        for (size_t i = 0; i < perm.size(); ++i) perm[i] = int32_t(perm.size() - 1 - i);
    }

    // Gather: read 1 byte + the order entry per pixel, write 4.
    register_case<Be, Ref>(
        {"gather" + b, batch, double(batch * n_in) * 5.0 + double(batch) * 4.0, 0.0}, backend,
        configure, [=](auto& be) {
            auto keep =
                hold(be.template alloc<float>(batch * n_in), upload(be, images), upload(be, perm));
            float* x = std::get<0>(*keep).data();
            const GatherFunctor f{x, std::get<1>(*keep).data(), std::get<2>(*keep).data(), batch,
                                  n_in};
            auto* bp = &be;
            return Prepared{[bp, f, batch, n_in] { bp->for_each_2d(batch, n_in, f); },
                            [bp, x, n = batch * n_in] { return download(*bp, x, n); }, keep};
        });

    for (int l = 0; l < shape.n_layers(); ++l) {
        const int64_t in = shape.n_in(l), out = shape.n_out(l);
        const bool relu = l + 1 < shape.n_layers();
        const std::string ls = "/l" + std::to_string(l);
        const auto z0 = uniform_floats(batch * out, -1.0f, 1.0f, 200 + uint64_t(l));
        const auto bias = uniform_floats(out, -0.1f, 0.1f, 210 + uint64_t(l));
        const auto w = uniform_floats(in * out, -0.1f, 0.1f, 220 + uint64_t(l));
        const auto x = uniform_floats(in * batch, 0.0f, 1.0f, 230 + uint64_t(l));

        // Bias (+ReLU) epilogue, in place: read and write z.
        register_case<Be, Ref>(
            {std::string(relu ? "bias_relu" : "bias") + ls + b, batch,
             double(batch * out) * 8.0 + double(out) * 4.0, 0.0},
            backend, configure, [=](auto& be) {
                auto keep = hold(upload(be, z0), upload(be, bias));
                float* z = std::get<0>(*keep).data();
                const BiasActFunctor f{z, std::get<1>(*keep).data(), out, relu};
                auto* bp = &be;
                return Prepared{[bp, f, batch, out] { bp->for_each_2d(batch, out, f); },
                                [bp, z, n = batch * out] { return download(*bp, z, n); }, keep};
            });

        // Forward GEMM: Z (out x batch) = W (stored in x out) ^T * X (in x batch).
        register_case<Be, Ref>(
            {"gemm_fwd" + ls + b + "/" + std::to_string(out) + "x" + std::to_string(batch) + "x" +
                 std::to_string(in),
             batch, 0.0, 2.0 * double(out * batch * in)},
            backend, configure, [=](auto& be) {
                auto keep =
                    hold(upload(be, w), upload(be, x), be.template alloc<float>(out * batch));
                const float* wp = std::get<0>(*keep).data();
                const float* xp = std::get<1>(*keep).data();
                float* zp = std::get<2>(*keep).data();
                auto* bp = &be;
                return Prepared{
                    [=] { bp->gemm(Trans::T, Trans::N, out, batch, in, wp, in, xp, in, zp, out); },
                    [=] { return download(*bp, zp, out * batch); }, keep};
            });

        // Weight gradient: dW^T (in x out) = X (in x batch) * dZ^T (batch x out).
        const auto dz = uniform_floats(out * batch, -0.01f, 0.01f, 240 + uint64_t(l));
        register_case<Be, Ref>(
            {"gemm_dW" + ls + b + "/" + std::to_string(in) + "x" + std::to_string(out) + "x" +
                 std::to_string(batch),
             batch, 0.0, 2.0 * double(in * out * batch)},
            backend, configure, [=](auto& be) {
                auto keep = hold(upload(be, x), upload(be, dz), be.template alloc<float>(in * out));
                const float* xp = std::get<0>(*keep).data();
                const float* dzp = std::get<1>(*keep).data();
                float* dwp = std::get<2>(*keep).data();
                auto* bp = &be;
                return Prepared{[=] {
                                    bp->gemm(Trans::N, Trans::T, in, out, batch, xp, in, dzp, out,
                                             dwp, in);
                                },
                                [=] { return download(*bp, dwp, in * out); }, keep};
            });

        // Bias gradient: read dZ once, write out values.
        register_case<Be, Ref>(
            {"bias_grad" + ls + b, batch, double(batch * out) * 4.0 + double(out) * 4.0, 0.0},
            backend, configure, [=](auto& be) {
                auto keep = hold(upload(be, dz), be.template alloc<float>(out));
                float* db = std::get<1>(*keep).data();
                const BiasGradFunctor f{db, std::get<0>(*keep).data(), out, batch};
                auto* bp = &be;
                return Prepared{[bp, f, out] { bp->for_each(out, f); },
                                [bp, db, out] { return download(*bp, db, out); }, keep};
            });

        if (l == 0) continue;
        // Input gradient: dA (in x batch) = W^T (in x out) * dZ (out x batch).
        register_case<Be, Ref>(
            {"gemm_dX" + ls + b + "/" + std::to_string(in) + "x" + std::to_string(batch) + "x" +
                 std::to_string(out),
             batch, 0.0, 2.0 * double(in * batch * out)},
            backend, configure, [=](auto& be) {
                auto keep =
                    hold(upload(be, w), upload(be, dz), be.template alloc<float>(in * batch));
                const float* wp = std::get<0>(*keep).data();
                const float* dzp = std::get<1>(*keep).data();
                float* dxp = std::get<2>(*keep).data();
                auto* bp = &be;
                return Prepared{[=] {
                                    bp->gemm(Trans::N, Trans::N, in, batch, out, wp, in, dzp, out,
                                             dxp, in);
                                },
                                [=] { return download(*bp, dxp, in * batch); }, keep};
            });

        // ReLU backward on that gradient: read dA and A, write dZ.
        const auto grad = uniform_floats(in * batch, -0.01f, 0.01f, 250 + uint64_t(l));
        const auto act = uniform_floats(in * batch, -1.0f, 1.0f, 260 + uint64_t(l));
        register_case<Be, Ref>(
            {"relu_backward" + ls + b, batch, double(in * batch) * 12.0, 0.0}, backend, configure,
            [=](auto& be) {
                auto keep = hold(upload(be, grad), upload(be, act));
                float* g = std::get<0>(*keep).data();
                const ReluBackwardFunctor f{g, std::get<1>(*keep).data()};
                auto* bp = &be;
                return Prepared{[bp, f, n = in * batch] { bp->for_each(n, f); },
                                [bp, g, n = in * batch] { return download(*bp, g, n); }, keep};
            });
    }

    // Softmax + cross-entropy gradient, one row per sample: read and write the
    // logits, read the order entry and the label, write loss and prediction.
    const auto logits = uniform_floats(batch * n_classes, -5.0f, 5.0f, 300);
    register_case<Be, Ref>(
        {"softmax_xent" + b, batch,
         double(batch) * (double(n_classes) * 8.0 + 4.0 + 1.0 + 4.0 + 1.0), 0.0},
        backend, configure, [=](auto& be) {
            auto keep =
                hold(upload(be, logits), be.template alloc<float>(batch),
                     be.template alloc<uint8_t>(batch), upload(be, labels), upload(be, perm));
            float* lg = std::get<0>(*keep).data();
            float* loss = std::get<1>(*keep).data();
            const SoftmaxXentFunctor f{lg,
                                       loss,
                                       std::get<2>(*keep).data(),
                                       std::get<3>(*keep).data(),
                                       std::get<4>(*keep).data(),
                                       0,
                                       n_classes,
                                       1.0f / float(batch)};
            auto* bp = &be;
            return Prepared{[bp, f, batch] { bp->for_each(batch, f); },
                            [bp, lg, loss, batch, n_classes] {
                                std::vector<float> v = download(*bp, lg, batch * n_classes);
                                const std::vector<float> l = download(*bp, loss, batch);
                                v.insert(v.end(), l.begin(), l.end());
                                return v;
                            },
                            keep};
        });

    // The one update over the flat parameter buffer: read p and g, write p.
    const int64_t n_params = shape.n_params();
    const auto params = uniform_floats(n_params, -0.1f, 0.1f, 400);
    const auto grads = uniform_floats(n_params, -0.01f, 0.01f, 410);
    const std::vector<float> lr = {0.1f};
    register_case<Be, Ref>(
        {"sgd_update" + b, batch, double(n_params) * 12.0, 0.0}, backend, configure, [=](auto& be) {
            auto keep = hold(upload(be, params), upload(be, grads), upload(be, lr));
            float* p = std::get<0>(*keep).data();
            const SgdUpdateFunctor f{p, std::get<1>(*keep).data(), std::get<2>(*keep).data()};
            auto* bp = &be;
            return Prepared{[bp, f, n_params] { bp->for_each(n_params, f); },
                            [bp, p, n_params] { return download(*bp, p, n_params); }, keep};
        });

    // AdamW, the recipe's optimizer: read p, g, m, v; write p, m, v. The
    // step's scalars are those of step 10 at lr 0.003 (values in range; the
    // timing does not depend on them).
    const std::vector<OptimizerStep> adam_step = {{0.003f, 0.003f / 0.6513f, 0.0998f, 0.99997f}};
    const auto exp_avg = uniform_floats(n_params, -0.001f, 0.001f, 420);
    const auto exp_avg_sq = uniform_floats(n_params, 0.0f, 1e-5f, 430);
    register_case<Be, Ref>(
        {"adamw_update" + b, batch, double(n_params) * 28.0, 0.0}, backend, configure,
        [=](auto& be) {
            auto keep = hold(upload(be, params), upload(be, grads), upload(be, exp_avg),
                             upload(be, exp_avg_sq), upload(be, adam_step));
            float* p = std::get<0>(*keep).data();
            const AdamUpdateFunctor f{p,       std::get<1>(*keep).data(), std::get<2>(*keep).data(),
                                      std::get<3>(*keep).data(), std::get<4>(*keep).data(),
                                      0.1f,    0.999f,
                                      0.001f,  1e-8f,
                                      0.01f,   true};
            auto* bp = &be;
            return Prepared{[bp, f, n_params] { bp->for_each(n_params, f); },
                            [bp, p, n_params] { return download(*bp, p, n_params); }, keep};
        });

    // Gradient norm, the engine's two passes (host/engine.hpp): read g once.
    constexpr int64_t n_parts = 256;
    register_case<Be, Ref>(
        {"grad_norm" + b, batch, double(n_params) * 4.0, 0.0}, backend, configure,
        [=](auto& be) {
            auto keep = hold(upload(be, grads), be.template alloc<float>(n_parts),
                             be.template alloc<float>(1));
            const SquaredNormPartsFunctor parts{std::get<1>(*keep).data(),
                                                std::get<0>(*keep).data(), n_params, n_parts};
            float* out = std::get<2>(*keep).data();
            const SumPartsFunctor sum{out, std::get<1>(*keep).data(), n_parts};
            auto* bp = &be;
            return Prepared{[bp, parts, sum, n_parts] {
                                bp->for_each(n_parts, parts);
                                bp->for_each(1, sum);
                            },
                            [bp, out] { return download(*bp, out, 1); }, keep};
        });
}

// All cases of the default model at batch 64 and 1024.
template <class Be, class Ref>
void register_kernel_benchmarks(const std::function<Be*(std::string*)>& backend,
                                const std::function<void(int64_t)>& configure) {
    const ModelShape shape({784, 128, 64, 10});
    for (int64_t batch : {int64_t(64), int64_t(1024)}) {
        register_step_cases<Be, Ref>(shape, batch, backend, configure);
    }
}

}  // namespace bench
}  // namespace mlp
