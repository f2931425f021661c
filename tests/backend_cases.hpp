// One table of kernel cases, each run on two backends from the same inputs
// and compared with a normalised error, as ggml's test-backend-ops does: every
// functor launch and GEMM of a training step (host/train/engine.hpp) with the
// engine's arguments, plus variants the step may take (shifts, momentum,
// Adam's L2 decay, a skipped update, every transpose), at any model shape and
// batch. Three drivers read it:
//   tests/test_backend_cases.cpp  CPU backend against plain loops (NaiveBackend)
//   tests/gpu/test_cuda.cu        CUDA backend against the CPU backend
//   benchmarks/kernel_cases.hpp   times the `timed` cases after the same check
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "host/base/rng.hpp"
#include "host/config/optimizer.hpp"
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
namespace cases {

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

// One case made ready on one backend: run() launches it, outputs() reads back
// what it wrote (as floats, one vector per output). `keep` owns the buffers.
struct Prepared {
    std::function<void()> run;
    std::function<std::vector<std::vector<float>>()> outputs;
    std::shared_ptr<void> keep;
};

// Owns a case's buffers, whatever their types, for as long as it runs.
// The bias gradient as the engine runs it: the CPU backend's bias_grad (the functor's
// sums walked row by row); elsewhere (the plain loops; CUDA, whose reductions are checked
// in tests/gpu/) the functor launched per output.
template <class Be>
void run_bias_grad(Be& be, const BiasGradFunctor& f) {
    if constexpr (std::is_same_v<Be, CpuBackend>) {
        be.bias_grad(Strided<float>{f.grad_bias, 0}, Strided<const float>{f.grad_z, 0}, f.n_out,
                     f.n_batch, 1);
    } else {
        be.for_each(f.n_out, f);
    }
}

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

// |got - ref| / |ref| in the L2 norm; -1 when the sizes differ or a value is
// not finite, which no tolerance admits.
inline double normalised_error(const std::vector<float>& ref, const std::vector<float>& got) {
    if (ref.size() != got.size()) return -1.0;
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        if (!std::isfinite(got[i]) || !std::isfinite(ref[i])) return -1.0;
        const double d = double(got[i]) - double(ref[i]);
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
    }
    return num == 0.0 ? 0.0 : std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// The worst normalised error over the outputs, -1 if any is unusable.
inline double worst_error(const std::vector<std::vector<float>>& ref,
                          const std::vector<std::vector<float>>& got) {
    if (ref.size() != got.size()) return -1.0;
    double worst = 0.0;
    for (size_t k = 0; k < ref.size(); ++k) {
        const double e = normalised_error(ref[k], got[k]);
        if (e < 0.0) return -1.0;
        worst = std::max(worst, e);
    }
    return worst;
}

struct CaseInfo {
    std::string name;
    int64_t batch = 0;
    double bytes = 0.0;  // moved per launch at least (functors); 0 for GEMMs
    double flops = 0.0;  // per launch (GEMMs); 0 for functors
    // Normalised error allowed against the reference: 0 where both sides do
    // the same float operations in the same order.
    double tolerance = 0.0;
    bool timed = true;  // a benchmark; false: a variant only checked
};

template <class Be, class Ref>
struct KernelCase {
    CaseInfo info;
    std::function<Prepared(Be&)> prepare;
    std::function<Prepared(Ref&)> prepare_reference;
};

// Runs the case once on each backend from the same inputs and returns the
// worst normalised error of its outputs (-1: unusable).
template <class Be, class Ref>
double check_case(const KernelCase<Be, Ref>& c, Be& be, Ref& ref) {
    Prepared expected = c.prepare_reference(ref);
    Prepared measured = c.prepare(be);
    expected.run();
    measured.run();
    return worst_error(expected.outputs(), measured.outputs());
}

// A model shape and batch to build the cases at; the input is an image of
// n_rows x n_cols pixels (their product is the shape's input size).
struct CaseShape {
    ModelShape shape;
    int64_t batch;
    int n_rows;
    int n_cols;
};

// The default model (784-128-64-10) at batch 64, 256, 1024 and 8192
// (compare.sh's batch sizes): what the kernel benchmarks time.
inline std::vector<CaseShape> benchmark_shapes() {
    const ModelShape shape({784, 128, 64, 10});
    return {
        {shape, 64, 28, 28}, {shape, 256, 28, 28}, {shape, 1024, 28, 28}, {shape, 8192, 28, 28}};
}

// Sizes that catch indexing bugs: a batch of 1, odd batches and widths
// around warp and block sizes, 2 and 47 classes, and the default model.
inline std::vector<CaseShape> check_shapes() {
    return {{ModelShape({784, 128, 64, 10}), 64, 28, 28},
            {ModelShape({35, 7, 3}), 1, 5, 7},
            {ModelShape({3, 33, 47}), 33, 1, 3},
            {ModelShape({13, 257, 2}), 7, 13, 1}};
}

template <class Be, class Ref>
class CaseTable {
public:
    // `prepare` is generic over the backend: the same code sets up both sides.
    template <class Prepare>
    void add(CaseInfo info, Prepare prepare) {
        cases.push_back({std::move(info), [prepare](Be& b) { return prepare(b); },
                         [prepare](Ref& r) { return prepare(r); }});
    }
    std::vector<KernelCase<Be, Ref>> cases;
};

// The optimizer update cases: read p and g (and the state), write p (and the
// state), over the flat parameter buffer of `shape`.
template <class Be, class Ref>
void add_update_cases(CaseTable<Be, Ref>& t, int64_t n_params, const std::string& b,
                      int64_t batch) {
    const auto params = uniform_floats(n_params, -0.1f, 0.1f, 400);
    const auto grads = uniform_floats(n_params, -0.01f, 0.01f, 410);
    const auto exp_avg = uniform_floats(n_params, -0.001f, 0.001f, 420);
    const auto exp_avg_sq = uniform_floats(n_params, 0.0f, 1e-5f, 430);
    const std::vector<int32_t> go = {0};
    const std::vector<float> lr = {0.1f};
    t.add({"sgd_update" + b, batch, double(n_params) * 12.0, 0.0, 1e-6}, [=](auto& be) {
        auto keep = hold(upload(be, params), upload(be, grads), upload(be, lr), upload(be, go));
        float* p = std::get<0>(*keep).data();
        const SgdUpdateFunctor f{p, std::get<1>(*keep).data(), std::get<2>(*keep).data(),
                                 std::get<3>(*keep).data()};
        auto* bp = &be;
        return Prepared{[bp, f, n_params] { bp->for_each(n_params, f); },
                        [bp, p, n_params] {
                            return std::vector<std::vector<float>>{download(*bp, p, n_params)};
                        },
                        keep};
    });

    // Three steps of momentum SGD with L2 decay under a changing learning
    // rate, read from the per-step table as the engine does; then a step that
    // the guard skips, which must leave parameters and buffer as they were.
    for (const bool nesterov : {false, true}) {
        OptimizerConfig config;
        config.momentum = 0.9;
        config.nesterov = nesterov;
        config.weight_decay = 0.01;
        const auto table = optimizer_steps(config, {0.1, 0.05, 0.2, 0.1}, 0);
        const std::vector<int32_t> flags = {0, 0, 0, 1};
        t.add({std::string(nesterov ? "nesterov_update" : "momentum_update") + b, batch, 0.0, 0.0,
               1e-6, false},
              [=](auto& be) {
                  auto keep = hold(upload(be, params), upload(be, grads),
                                   upload(be, std::vector<float>(size_t(n_params), 0.0f)),
                                   upload(be, table), upload(be, flags));
                  float* p = std::get<0>(*keep).data();
                  const float* g = std::get<1>(*keep).data();
                  float* m = std::get<2>(*keep).data();
                  const OptimizerStep* steps = std::get<3>(*keep).data();
                  const int32_t* skips = std::get<4>(*keep).data();
                  auto* bp = &be;
                  return Prepared{
                      [=] {
                          for (size_t k = 0; k < table.size(); ++k) {
                              bp->for_each(n_params,
                                           SgdUpdateFunctor{p, g, lr_address(steps + k), skips + k,
                                                            m, 0.9f, 0.01f, nesterov});
                          }
                      },
                      [=] {
                          return std::vector<std::vector<float>>{download(*bp, p, n_params),
                                                                 download(*bp, m, n_params)};
                      },
                      keep};
              });
    }

    // AdamW, the recipe's optimizer: read p, g, m, v; write p, m, v. The
    // step's scalars are those of step 10 at lr 0.003 (values in range; the
    // timing does not depend on them).
    const std::vector<OptimizerStep> adam_step = {{0.003f, 0.003f / 0.6513f, 0.0998f, 0.99997f}};
    t.add({"adamw_update" + b, batch, double(n_params) * 28.0, 0.0, 1e-6}, [=](auto& be) {
        auto keep = hold(upload(be, params), upload(be, grads), upload(be, exp_avg),
                         upload(be, exp_avg_sq), upload(be, adam_step), upload(be, go));
        float* p = std::get<0>(*keep).data();
        float* m = std::get<2>(*keep).data();
        float* v = std::get<3>(*keep).data();
        const AdamUpdateFunctor f{p,
                                  std::get<1>(*keep).data(),
                                  m,
                                  v,
                                  std::get<4>(*keep).data(),
                                  std::get<5>(*keep).data(),
                                  0.1f,
                                  0.999f,
                                  0.001f,
                                  1e-8f,
                                  0.01f,
                                  true};
        auto* bp = &be;
        return Prepared{[bp, f, n_params] { bp->for_each(n_params, f); },
                        [=] {
                            return std::vector<std::vector<float>>{download(*bp, p, n_params),
                                                                   download(*bp, m, n_params),
                                                                   download(*bp, v, n_params)};
                        },
                        keep};
    });

    // Three steps of Adam (L2) or AdamW from zero moments, then a skipped one.
    for (const bool decoupled : {false, true}) {
        OptimizerConfig config;
        config.kind = decoupled ? OptimizerKind::adamw : OptimizerKind::adam;
        config.weight_decay = 0.01;
        const auto table = optimizer_steps(config, {1e-3, 3e-3, 2e-3, 1e-3}, 0);
        const std::vector<int32_t> flags = {0, 0, 0, 1};
        t.add({std::string(decoupled ? "adamw_steps" : "adam_steps") + b, batch, 0.0, 0.0, 1e-6,
               false},
              [=](auto& be) {
                  const std::vector<float> zero(size_t(n_params), 0.0f);
                  auto keep = hold(upload(be, params), upload(be, grads), upload(be, zero),
                                   upload(be, zero), upload(be, table), upload(be, flags));
                  float* p = std::get<0>(*keep).data();
                  const float* g = std::get<1>(*keep).data();
                  float* m = std::get<2>(*keep).data();
                  float* v = std::get<3>(*keep).data();
                  const OptimizerStep* steps = std::get<4>(*keep).data();
                  const int32_t* skips = std::get<5>(*keep).data();
                  auto* bp = &be;
                  return Prepared{
                      [=] {
                          for (size_t k = 0; k < table.size(); ++k) {
                              bp->for_each(n_params, AdamUpdateFunctor{
                                                         p, g, m, v, steps + k, skips + k, 0.1f,
                                                         0.999f, 0.001f, 1e-8f, 0.01f, decoupled});
                          }
                      },
                      [=] {
                          return std::vector<std::vector<float>>{download(*bp, p, n_params),
                                                                 download(*bp, m, n_params),
                                                                 download(*bp, v, n_params)};
                      },
                      keep};
              });
    }
}

// Every functor launch and GEMM of one training step at `at`, with the
// engine's arguments, and the variants named in the header comment.
template <class Be, class Ref>
std::vector<KernelCase<Be, Ref>> step_cases(const CaseShape& at) {
    CaseTable<Be, Ref> t;
    const ModelShape& shape = at.shape;
    const int64_t batch = at.batch;
    const std::string b = "/b" + std::to_string(batch);
    const int64_t n_in = shape.n_inputs();
    const int64_t n_classes = shape.n_classes();
    const int64_t n_samples = 4 * batch;  // a small "data set" the batch is gathered from
    const int n_rows = at.n_rows, n_cols = at.n_cols;

    std::vector<uint8_t> images(static_cast<size_t>(n_samples * n_in));
    std::vector<uint8_t> labels(static_cast<size_t>(n_samples));
    std::vector<int32_t> perm(static_cast<size_t>(n_samples));
    {
        Rng rng(7, 100);
        for (uint8_t& p : images) p = uint8_t(rng.below(256));
        for (uint8_t& l : labels) l = uint8_t(rng.below(uint64_t(n_classes)));
        for (size_t i = 0; i < perm.size(); ++i) perm[i] = int32_t(perm.size() - 1 - i);
    }
    const std::vector<int8_t> shifts = epoch_shifts(n_samples, 3, 7, 0);

    // Gather: read 1 byte + the order entry per pixel, write 4. The batch
    // starts at position `batch` of the order, so `first` is exercised.
    for (const bool shifted : {false, true}) {
        t.add({std::string(shifted ? "gather_shift" : "gather") + b, batch,
               double(batch * n_in) * 5.0 + double(batch) * 4.0, 0.0, 0.0, !shifted},
              [=](auto& be) {
                  auto keep = hold(be.template alloc<float>(batch * n_in), upload(be, images),
                                   upload(be, perm), upload(be, shifts));
                  float* x = std::get<0>(*keep).data();
                  const GatherFunctor f{x,
                                        std::get<1>(*keep).data(),
                                        std::get<2>(*keep).data(),
                                        batch,
                                        n_in,
                                        shifted ? std::get<3>(*keep).data() : nullptr,
                                        n_rows,
                                        n_cols};
                  auto* bp = &be;
                  return Prepared{[bp, f, batch, n_in] { bp->for_each_2d(batch, n_in, f); },
                                  [bp, x, n = batch * n_in] {
                                      return std::vector<std::vector<float>>{download(*bp, x, n)};
                                  },
                                  keep};
              });
    }

    for (int l = 0; l < shape.n_layers(); ++l) {
        const int64_t in = shape.n_in(l), out = shape.n_out(l);
        const bool relu = l + 1 < shape.n_layers();
        const std::string ls = "/l" + std::to_string(l);
        const auto z0 = uniform_floats(batch * out, -1.0f, 1.0f, 200 + uint64_t(l));
        const auto bias = uniform_floats(out, -0.1f, 0.1f, 210 + uint64_t(l));
        const auto w = uniform_floats(in * out, -0.1f, 0.1f, 220 + uint64_t(l));
        const auto x = uniform_floats(in * batch, 0.0f, 1.0f, 230 + uint64_t(l));
        // GEMMs accumulate in another order (and cuBLAS may split k).
        const double gemm_tolerance = 1e-5;

        // Bias (+ReLU) epilogue, in place: read and write z.
        t.add({std::string(relu ? "bias_relu" : "bias") + ls + b, batch,
               double(batch * out) * 8.0 + double(out) * 4.0, 0.0, 0.0},
              [=](auto& be) {
                  auto keep = hold(upload(be, z0), upload(be, bias));
                  float* z = std::get<0>(*keep).data();
                  const BiasActFunctor f{z, std::get<1>(*keep).data(), out,
                                         relu ? Activation::relu : Activation::identity};
                  auto* bp = &be;
                  return Prepared{[bp, f, batch, out] { bp->for_each_2d(batch, out, f); },
                                  [bp, z, n = batch * out] {
                                      return std::vector<std::vector<float>>{download(*bp, z, n)};
                                  },
                                  keep};
              });

        // A GEMM C (m x n) = op(A) op(B) over uploaded A and B.
        auto add_gemm = [&](const std::string& name, bool timed, Trans ta, Trans tb, int64_t m,
                            int64_t n, int64_t k, const std::vector<float>& a, int64_t lda,
                            const std::vector<float>& bm, int64_t ldb) {
            t.add({name + ls + b + "/" + std::to_string(m) + "x" + std::to_string(n) + "x" +
                       std::to_string(k),
                   batch, 0.0, 2.0 * double(m * n * k), gemm_tolerance, timed},
                  [=](auto& be) {
                      auto keep =
                          hold(upload(be, a), upload(be, bm), be.template alloc<float>(m * n));
                      const float* ap = std::get<0>(*keep).data();
                      const float* bptr = std::get<1>(*keep).data();
                      float* cp = std::get<2>(*keep).data();
                      auto* bp = &be;
                      return Prepared{
                          [=] { bp->gemm(ta, tb, m, n, k, ap, lda, bptr, ldb, cp, m); },
                          [=] { return std::vector<std::vector<float>>{download(*bp, cp, m * n)}; },
                          keep};
                  });
        };
        // Forward: Z (out x batch) = W (stored in x out) ^T * X (in x batch).
        add_gemm("gemm_fwd", true, Trans::T, Trans::N, out, batch, in, w, in, x, in);
        // The one transpose pair the step does not use, X read as batch x in.
        if (l == 0) add_gemm("gemm_tt", false, Trans::T, Trans::T, out, batch, in, w, in, x, batch);

        // Weight gradient: dW^T (in x out) = X (in x batch) * dZ^T (batch x out).
        const auto dz = uniform_floats(out * batch, -0.01f, 0.01f, 240 + uint64_t(l));
        add_gemm("gemm_dW", true, Trans::N, Trans::T, in, out, batch, x, in, dz, out);

        // Bias gradient: read dZ once, write out values. Same summation order
        // on every backend; only FMA contraction may differ.
        t.add(
            {"bias_grad" + ls + b, batch, double(batch * out) * 4.0 + double(out) * 4.0, 0.0, 1e-6},
            [=](auto& be) {
                auto keep = hold(upload(be, dz), be.template alloc<float>(out));
                float* db = std::get<1>(*keep).data();
                const BiasGradFunctor f{db, std::get<0>(*keep).data(), out, batch};
                auto* bp = &be;
                return Prepared{[bp, f] { run_bias_grad(*bp, f); },
                                [bp, db, out] {
                                    return std::vector<std::vector<float>>{download(*bp, db, out)};
                                },
                                keep};
            });

        if (l == 0) continue;
        // Input gradient: dA (in x batch) = W^T (in x out) * dZ (out x batch).
        add_gemm("gemm_dX", true, Trans::N, Trans::N, in, batch, out, w, in, dz, out);

        // ReLU backward on that gradient: read dA and A, write dZ.
        const auto grad = uniform_floats(in * batch, -0.01f, 0.01f, 250 + uint64_t(l));
        const auto act = uniform_floats(in * batch, -1.0f, 1.0f, 260 + uint64_t(l));
        t.add({"relu_backward" + ls + b, batch, double(in * batch) * 12.0, 0.0, 0.0},
              [=](auto& be) {
                  auto keep = hold(upload(be, grad), upload(be, act));
                  float* g = std::get<0>(*keep).data();
                  const ReluBackwardFunctor f{g, std::get<1>(*keep).data()};
                  auto* bp = &be;
                  return Prepared{[bp, f, n = in * batch] { bp->for_each(n, f); },
                                  [bp, g, n = in * batch] {
                                      return std::vector<std::vector<float>>{download(*bp, g, n)};
                                  },
                                  keep};
              });
    }

    // Softmax + cross-entropy gradient, one row per sample: read and write the
    // logits, read the order entry and the label, write loss and prediction.
    // expf and logf differ between the host's and the device's by a few ulps.
    const auto logits = uniform_floats(batch * n_classes, -5.0f, 5.0f, 300);
    t.add({"softmax_xent" + b, batch,
           double(batch) * (double(n_classes) * 8.0 + 4.0 + 1.0 + 4.0 + 1.0), 0.0, 1e-5},
          [=](auto& be) {
              auto keep =
                  hold(upload(be, logits), be.template alloc<float>(batch),
                       be.template alloc<uint8_t>(batch), upload(be, labels), upload(be, perm));
              float* lg = std::get<0>(*keep).data();
              float* loss = std::get<1>(*keep).data();
              uint8_t* pred = std::get<2>(*keep).data();
              const SoftmaxXentFunctor f{lg,
                                         loss,
                                         pred,
                                         std::get<3>(*keep).data(),
                                         std::get<4>(*keep).data(),
                                         0,
                                         n_classes,
                                         1.0f / float(batch)};
              auto* bp = &be;
              return Prepared{[bp, f, batch] { bp->for_each(batch, f); },
                              [=] {
                                  return std::vector<std::vector<float>>{
                                      download(*bp, lg, batch * n_classes),
                                      download(*bp, loss, batch), download(*bp, pred, batch)};
                              },
                              keep};
          });

    const int64_t n_params = shape.n_params();
    add_update_cases(t, n_params, b, batch);

    // Gradient norm, the engine's two passes (host/train/engine.hpp): read g
    // once. Same order on both sides; only FMA contraction may differ.
    const int64_t n_parts = 256;
    const auto grads = uniform_floats(n_params, -0.01f, 0.01f, 410);
    t.add({"grad_norm" + b, batch, double(n_params) * 4.0, 0.0, 1e-6}, [=](auto& be) {
        auto keep =
            hold(upload(be, grads), be.template alloc<float>(n_parts), be.template alloc<float>(1));
        const SquaredNormPartsFunctor parts{std::get<1>(*keep).data(), std::get<0>(*keep).data(),
                                            n_params, n_parts};
        float* out = std::get<2>(*keep).data();
        const SumPartsFunctor sum{out, std::get<1>(*keep).data(), n_parts};
        auto* bp = &be;
        return Prepared{
            [bp, parts, sum, n_parts] {
                bp->for_each(n_parts, parts);
                bp->for_each(1, sum);
            },
            [bp, out] { return std::vector<std::vector<float>>{download(*bp, out, 1)}; }, keep};
    });
    return t.cases;
}

}  // namespace cases
}  // namespace mlp
