// GPU suite, fused path (CTest label `gpu`): every fused kernel and cuBLASLt
// epilogue of the CUDA backend against the CPU backend's fused operations
// (which equal the generic path bit for bit), on random inputs with a
// normalised error, at odd sizes; the reductions repeat bit for bit; batches
// of three models against the CPU backend's batched operations, each model's
// reductions bit for bit what it gets alone; whole epochs against the generic
// CUDA path and the CPU; MNIST in each precision.
// bf16 GEMMs are checked against CPU GEMMs of the bf16-rounded operands.
// Every test skips, with the reason, where no usable CUDA device exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "cuda/cuda_backend.cuh"
#include "gpu/gpu_status.hpp"
#include "host/base/rng.hpp"
#include "host/config/kernel_options.hpp"
#include "host/config/train_config.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/data/dataset.hpp"
#include "host/device/device.hpp"
#include "host/train/engine.hpp"
#include "host/train/train_loop.hpp"
#include "host/train/trainer.hpp"
#include "ops/bf16_cast.hpp"
#include "ops/per_model.hpp"
#include "ops/step_guard.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

std::vector<float> random_floats(int64_t n, uint64_t seed, float scale = 1.0f) {
    Rng rng(seed, 99);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = float(rng.normal()) * scale;
    return v;
}

template <class T>
DeviceBuffer<T> to_device(CudaBackend& be, const std::vector<T>& h) {
    DeviceBuffer<T> d(int64_t(h.size()));
    be.copy_to_device(d.data(), h.data(), int64_t(h.size()));
    return d;
}

template <class T>
std::vector<T> to_host(CudaBackend& be, const DeviceBuffer<T>& d) {
    std::vector<T> h(static_cast<size_t>(d.size()));
    be.copy_to_host(h.data(), d.data(), d.size());
    return h;
}

// The values a bf16 GEMM operand holds: each rounded to bf16 and back.
std::vector<float> bf16_rounded(std::vector<float> v) {
    for (float& x : v) x = bf16_bits_to_float(float_to_bf16_bits(x));
    return v;
}

void print_fallbacks(const CudaBackend& gpu) {
    for (const std::string& why : gpu.fused_fallbacks()) std::cout << "fallback: " << why << "\n";
}

// Model 0 of a batch of one: every per-model stride is 0.
template <class T>
Strided<T> one(T* p) {
    return {p, 0};
}

// Where one call's gradient norm and guard read and write: per model, the
// squared norm and the status (a stride of 1), the guard's 2 entries, the
// parts, the gradient and the losses (at their strides), and the stop flag.
struct NormGuardData {
    float* grad_sq;
    int32_t* guard;
    int8_t* status;
    float* parts;
    const float* grads;
    const float* sample_loss;
    const int8_t* stop;  // [n_models]
};

GradNormGuardModels norm_guard(const NormGuardData& d, int64_t n_params, int64_t n_batch,
                               int64_t n_parts, int32_t step, int64_t grads_stride = 0,
                               int64_t loss_stride = 0) {
    return GradNormGuardModels{
        SquaredNormPartsModels{SquaredNormPartsFunctor{d.parts, d.grads, n_params, n_parts},
                               grads_stride},
        SumPartsModels{SumPartsFunctor{d.grad_sq, d.parts, n_parts}, 1},
        StepGuardModels{
            StepGuardFunctor{d.guard, d.status, d.sample_loss, n_batch, d.grad_sq, step, false},
            d.stop, 1, loss_stride, 1},
        nullptr};
}

// The default model's gradient size, odd sizes, and a range wider than one
// block per 256 values at the 256-block cap.
const int64_t k_norm_sizes[] = {1, 7, 255, 257, 1001, 101770, 64 * 784 + 3, 300001};

TEST(FusedKernels, GradNormGuardMatchesCpuAndRepeatsBitForBit) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    const int64_t n_parts = 256;
    const std::vector<int8_t> stop = {1};
    auto d_stop = to_device(gpu, stop);
    for (int64_t n : k_norm_sizes) {
        for (int64_t n_batch : {1, 33, 64}) {
            const auto g = random_floats(n, uint64_t(n), 0.01f);
            const auto loss = random_floats(n_batch, 3);
            std::vector<float> parts(n_parts), sq(1);
            std::vector<int32_t> guard = {-1, 0};
            std::vector<int8_t> status(1, -1);
            cpu.grad_norm_guard(norm_guard({sq.data(), guard.data(), status.data(), parts.data(),
                                            g.data(), loss.data(), stop.data()},
                                           n, n_batch, n_parts, 0),
                                1);
            auto d_g = to_device(gpu, g);
            auto d_loss = to_device(gpu, loss);
            DeviceBuffer<float> d_parts(n_parts), d_sq(1);
            std::vector<float> first;
            for (int run = 0; run < 3; ++run) {
                auto d_guard = to_device(gpu, std::vector<int32_t>{-1, 0});
                auto d_status = to_device(gpu, std::vector<int8_t>{-1});
                gpu.grad_norm_guard(
                    norm_guard({d_sq.data(), d_guard.data(), d_status.data(), d_parts.data(),
                                d_g.data(), d_loss.data(), d_stop.data()},
                               n, n_batch, n_parts, 0),
                    1);
                const auto got = to_host(gpu, d_sq);
                EXPECT_NEAR(got[0], sq[0], 1e-5 * sq[0]) << n << " " << n_batch;
                EXPECT_EQ(to_host(gpu, d_status), status);
                EXPECT_EQ(to_host(gpu, d_guard), guard);
                if (run == 0) first = got;
                EXPECT_EQ(got, first) << "run " << run << " differs, n " << n;  // bit for bit
            }
        }
    }
}

// A bad step, then a good one: the same statuses and guard as the CPU's
// StepGuardFunctor, with stop and with skip-batch.
TEST(FusedKernels, GradNormGuardFlagsNonFiniteStepsLikeCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    const int64_t n = 1001, n_batch = 33, n_parts = 256;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    for (bool stop : {true, false}) {
        const std::vector<int8_t> h_stop = {int8_t(stop)};
        auto d_stop = to_device(gpu, h_stop);
        for (int where : {0, 1}) {  // NaN in the gradient, infinity in the loss
            auto bad_g = random_floats(n, 1), good_g = random_floats(n, 2);
            auto bad_loss = random_floats(n_batch, 3), good_loss = random_floats(n_batch, 4);
            if (where == 0) bad_g[500] = nan;
            if (where == 1) bad_loss[32] = inf;
            std::vector<float> parts(n_parts), sq(2);
            std::vector<int32_t> guard = {-1, 0};
            std::vector<int8_t> status(2, -1);
            cpu.grad_norm_guard(norm_guard({&sq[0], guard.data(), &status[0], parts.data(),
                                            bad_g.data(), bad_loss.data(), h_stop.data()},
                                           n, n_batch, n_parts, 0),
                                1);
            cpu.grad_norm_guard(norm_guard({&sq[1], guard.data(), &status[1], parts.data(),
                                            good_g.data(), good_loss.data(), h_stop.data()},
                                           n, n_batch, n_parts, 1),
                                1);
            ASSERT_EQ(status[0], step_non_finite);
            auto d_bad_g = to_device(gpu, bad_g), d_good_g = to_device(gpu, good_g);
            auto d_bad_loss = to_device(gpu, bad_loss), d_good_loss = to_device(gpu, good_loss);
            auto d_guard = to_device(gpu, std::vector<int32_t>{-1, 0});
            auto d_status = to_device(gpu, std::vector<int8_t>{-1, -1});
            DeviceBuffer<float> d_parts(n_parts), d_sq(2);
            gpu.grad_norm_guard(
                norm_guard({d_sq.data(), d_guard.data(), d_status.data(), d_parts.data(),
                            d_bad_g.data(), d_bad_loss.data(), d_stop.data()},
                           n, n_batch, n_parts, 0),
                1);
            gpu.grad_norm_guard(
                norm_guard({d_sq.data() + 1, d_guard.data(), d_status.data() + 1, d_parts.data(),
                            d_good_g.data(), d_good_loss.data(), d_stop.data()},
                           n, n_batch, n_parts, 1),
                1);
            EXPECT_EQ(to_host(gpu, d_status), status) << stop << where;
            EXPECT_EQ(to_host(gpu, d_guard), guard) << stop << where;
        }
    }
}

TEST(FusedKernels, BiasGradMatchesCpuAndRepeatsBitForBit) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    for (int64_t n_out : {1, 2, 10, 33, 47, 64, 129}) {
        for (int64_t n_batch : {1, 33, 64, 1000}) {
            const auto dz = random_floats(n_out * n_batch, uint64_t(n_out * 7 + n_batch));
            std::vector<float> db(static_cast<size_t>(n_out));
            cpu.bias_grad(one(db.data()), one(dz.data()), n_out, n_batch, 1);
            auto d_dz = to_device(gpu, dz);
            DeviceBuffer<float> d_db(n_out);
            gpu.bias_grad(one(d_db.data()), one<const float>(d_dz.data()), n_out, n_batch, 1);
            const auto got = to_host(gpu, d_db);
            // A tree, not the CPU's running sum: rounding differs, not the value.
            EXPECT_LT(test::normalised_error(got, db), 1e-5) << n_out << " x " << n_batch;
            gpu.bias_grad(one(d_db.data()), one<const float>(d_dz.data()), n_out, n_batch, 1);
            EXPECT_EQ(to_host(gpu, d_db), got);
        }
    }
}

TEST(FusedKernels, SoftmaxXentBgradMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    for (int64_t n_batch : {1, 33, 64, 129, 1000}) {
        for (int64_t n_classes : {2, 10, 47, 200}) {
            const int64_t n_all = n_batch + 3;
            auto logits = random_floats(n_batch * n_classes, uint64_t(n_batch + n_classes), 8.0f);
            std::vector<uint8_t> labels(static_cast<size_t>(n_all));
            for (size_t i = 0; i < labels.size(); ++i) labels[i] = uint8_t(i * 7 % n_classes);
            const auto perm = epoch_permutation(n_all, 1, 0);
            std::vector<float> loss(static_cast<size_t>(n_all), -1.0f);
            std::vector<uint8_t> pred(static_cast<size_t>(n_all), 255);
            std::vector<float> db(static_cast<size_t>(n_classes));
            auto d_logits = to_device(gpu, logits);
            auto d_labels = to_device(gpu, labels);
            auto d_perm = to_device(gpu, perm);
            auto d_loss = to_device(gpu, loss);
            auto d_pred = to_device(gpu, pred);
            DeviceBuffer<float> d_db(n_classes);
            const float scale = 1.0f / float(n_batch);
            cpu.softmax_xent_bgrad(
                one(db.data()),
                SoftmaxXentModels{
                    SoftmaxXentFunctor{logits.data(), loss.data(), pred.data(), labels.data(),
                                       perm.data(), 3, n_classes, scale},
                    0, 0, 0},
                n_batch, 1);
            for (int run = 0; run < 2; ++run) {  // the counter is ready again after a launch
                gpu.softmax_xent_bgrad(
                    one(d_db.data()),
                    SoftmaxXentModels{
                        SoftmaxXentFunctor{d_logits.data(), d_loss.data(), d_pred.data(),
                                           d_labels.data(), d_perm.data(), 3, n_classes, scale},
                        0, 0, 0},
                    n_batch, 1);
                if (run == 0) {
                    EXPECT_LT(test::normalised_error(to_host(gpu, d_logits), logits), 1e-5);
                    EXPECT_LT(test::normalised_error(to_host(gpu, d_loss), loss), 1e-5);
                    EXPECT_EQ(to_host(gpu, d_pred), pred);
                    EXPECT_LT(test::normalised_error(to_host(gpu, d_db), db), 1e-4)
                        << n_batch << " x " << n_classes;
                    // The second run turns the gradient into a gradient again.
                    d_logits = to_device(gpu, random_floats(n_batch * n_classes, 5, 8.0f));
                }
            }
            // Whatever the second run read, its bias gradient is the column sum of what it wrote.
            const auto grad = to_host(gpu, d_logits);
            std::vector<float> sums(static_cast<size_t>(n_classes));
            cpu.bias_grad(one(sums.data()), one(grad.data()), n_classes, n_batch, 1);
            EXPECT_LT(test::normalised_error(to_host(gpu, d_db), sums), 1e-4);
        }
    }
}

struct LayerShape {
    int64_t n_out, n_batch, n_in;
};

// The default model's layers at batch 64, the partial batches 1 and 33, and
// sizes that are not multiples of 8 or of 128.
const LayerShape k_layer_shapes[] = {{128, 64, 784}, {64, 64, 128}, {10, 64, 64},
                                     {128, 1, 784},  {37, 33, 20},  {13, 33, 37},
                                     {47, 33, 13},   {2, 1, 11},    {200, 1000, 150}};

// bf16: the CPU reference multiplies the bf16-rounded operands (products of
// bf16 values are exact in fp32), so only the order of the fp32 sums differs.
TEST(FusedKernels, GemmBiasActAndDreluBgradMatchCpu) {
    REQUIRE_GPU();
    for (Precision precision : {Precision::fp32, Precision::tf32, Precision::bf16}) {
        CudaBackend gpu;
        gpu.set_precision(precision);
        CpuBackend cpu;
        const bool bf16 = precision == Precision::bf16;
        const double tol = precision == Precision::fp32 ? 1e-5 : bf16 ? 1e-4 : 5e-3;
        // What the GPU's GEMMs read of an operand.
        const auto operand = [&](const std::vector<float>& v) {
            return bf16 ? bf16_rounded(v) : v;
        };
        for (const LayerShape& s : k_layer_shapes) {
            for (bool relu : {true, false}) {
                const auto w = random_floats(s.n_out * s.n_in, 1, 0.1f);
                const auto x = random_floats(s.n_in * s.n_batch, 2);
                const auto bias = random_floats(s.n_out, 3);
                std::vector<float> z(static_cast<size_t>(s.n_out * s.n_batch));
                const auto w_read = operand(w), x_read = operand(x);
                cpu.gemm_bias_act(one(z.data()), Strided<uint8_t>{}, one(w_read.data()),
                                  one(x_read.data()), one(bias.data()), relu, s.n_out, s.n_batch,
                                  s.n_in, 1);
                auto d_w = to_device(gpu, w), d_x = to_device(gpu, x), d_b = to_device(gpu, bias);
                DeviceBuffer<float> d_z(s.n_out * s.n_batch);
                DeviceBuffer<uint8_t> d_mask(gpu.relu_mask_bytes(s.n_out, s.n_batch));
                gpu.gemm_bias_act(one(d_z.data()), one(relu ? d_mask.data() : nullptr),
                                  one<const float>(d_w.data()), one<const float>(d_x.data()),
                                  one<const float>(d_b.data()), relu, s.n_out, s.n_batch, s.n_in,
                                  1);
                EXPECT_LT(test::normalised_error(to_host(gpu, d_z), z), tol)
                    << s.n_out << " " << s.n_batch << " " << s.n_in << " relu " << relu;
                if (!relu) continue;

                // Backward of a layer above this one: n_up outputs read z.
                const int64_t n_up = 7;
                const auto w_up = random_floats(n_up * s.n_out, 4, 0.1f);
                const auto grad_up = random_floats(n_up * s.n_batch, 5);
                const auto w_up_read = operand(w_up), grad_up_read = operand(grad_up);
                std::vector<float> grad_in(static_cast<size_t>(s.n_out * s.n_batch));
                std::vector<float> db(static_cast<size_t>(s.n_out));
                // The references read the GPU's own activation, so its ReLU mask decides which
                // gradients pass: under tf32 or bf16 a pre-activation within rounding of 0 may
                // fall on the other side of it on the CPU, and the test compares arithmetic.
                const std::vector<float> z_gpu = to_host(gpu, d_z);
                cpu.gemm_drelu_bgrad(one(grad_in.data()), one(db.data()), one(w_up_read.data()),
                                     one(grad_up_read.data()), one(z_gpu.data()),
                                     Strided<const uint8_t>{}, s.n_out, s.n_batch, n_up, 1);
                auto d_w_up = to_device(gpu, w_up), d_grad_up = to_device(gpu, grad_up);
                DeviceBuffer<float> d_grad_in(s.n_out * s.n_batch), d_db(s.n_out);
                gpu.gemm_drelu_bgrad(
                    one(d_grad_in.data()), one(d_db.data()), one<const float>(d_w_up.data()),
                    one<const float>(d_grad_up.data()), one<const float>(d_z.data()),
                    one<const uint8_t>(d_mask.data()), s.n_out, s.n_batch, n_up, 1);
                EXPECT_LT(test::normalised_error(to_host(gpu, d_grad_in), grad_in), tol);
                EXPECT_LT(test::normalised_error(to_host(gpu, d_db), db), tol);

                // The weight gradient on the side stream, joined back.
                std::vector<float> dw(static_cast<size_t>(n_up * s.n_out));
                const auto z_read = operand(z_gpu);
                cpu.weight_grad(one(dw.data()), one(z_read.data()), one(grad_up_read.data()),
                                s.n_out, n_up, s.n_batch, 1);
                DeviceBuffer<float> d_dw(n_up * s.n_out);
                gpu.weight_grad(one(d_dw.data()), one<const float>(d_z.data()),
                                one<const float>(d_grad_up.data()), s.n_out, n_up, s.n_batch, 1);
                gpu.join_side();
                EXPECT_LT(test::normalised_error(to_host(gpu, d_dw), dw), tol);
            }
        }
        print_fallbacks(gpu);
    }
}

// A batch of models: each model's arrays k * stride values apart, with a gap
// after each model's values (NaN on the GPU side, which no operation may
// read) and different data per model.
constexpr int64_t k_models = 3;

// n_models * stride values, model k's first n values drawn from seed + k, the gap NaN.
std::vector<float> batch_floats(int64_t n, int64_t stride, uint64_t seed, float scale = 1.0f) {
    std::vector<float> v(size_t(k_models * stride), std::numeric_limits<float>::quiet_NaN());
    for (int64_t k = 0; k < k_models; ++k) {
        const auto model = random_floats(n, seed + uint64_t(k), scale);
        std::copy(model.begin(), model.end(), v.begin() + k * stride);
    }
    return v;
}

// Model k's n values of a batch buffer.
template <class T>
std::vector<T> model_of(const std::vector<T>& v, int64_t k, int64_t n, int64_t stride) {
    return std::vector<T>(v.begin() + k * stride, v.begin() + k * stride + n);
}

// Each model's n values of two batch buffers, compared with the normalised error.
void expect_models_near(const std::vector<float>& got, const std::vector<float>& want, int64_t n,
                        int64_t stride, double tol, const std::string& what) {
    for (int64_t k = 0; k < k_models; ++k) {
        EXPECT_LT(test::normalised_error(model_of(got, k, n, stride), model_of(want, k, n, stride)),
                  tol)
            << what << ", model " << k;
    }
}

// Strides past each model's values: a gap of 0 (models back to back), an odd
// gap (strides cuBLASLt's alignment may refuse) and a 64-value one (the
// engine's parameter alignment).
const int64_t k_gaps[] = {0, 5, 64};

TEST(FusedKernels, BatchOfThreeGemmEpiloguesMatchCpuBatch) {
    REQUIRE_GPU();
    const LayerShape shapes[] = {{128, 64, 784}, {10, 64, 64}, {37, 33, 20}, {13, 33, 37}};
    const int64_t n_up = 7;
    for (Precision precision : {Precision::fp32, Precision::tf32, Precision::bf16}) {
        CudaBackend gpu;
        gpu.set_precision(precision);
        gpu.reserve_batch(k_models);
        CpuBackend cpu;
        const bool bf16 = precision == Precision::bf16;
        const double tol = precision == Precision::fp32 ? 1e-5 : bf16 ? 1e-4 : 5e-3;
        // What the GPU's GEMMs read of an operand: NaN gaps stay NaN.
        const auto operand = [&](const std::vector<float>& v) {
            return bf16 ? bf16_rounded(v) : v;
        };
        for (const LayerShape& s : shapes) {
            for (int64_t gap : k_gaps) {
                const int64_t n_w = s.n_out * s.n_in, n_x = s.n_in * s.n_batch;
                const int64_t n_z = s.n_out * s.n_batch, n_w_up = n_up * s.n_out;
                const int64_t n_up_z = n_up * s.n_batch;
                const int64_t w_stride = n_w + gap, x_stride = n_x + gap, z_stride = n_z + gap;
                const int64_t b_stride = s.n_out + gap, w_up_stride = n_w_up + gap;
                const int64_t up_stride = n_up_z + gap;
                const std::string what = std::to_string(s.n_out) + " x " +
                                         std::to_string(s.n_batch) + " x " +
                                         std::to_string(s.n_in) + " gap " + std::to_string(gap) +
                                         " " + to_string(precision);
                const auto w = batch_floats(n_w, w_stride, 1, 0.1f);
                const auto x = batch_floats(n_x, x_stride, 11);
                const auto bias = batch_floats(s.n_out, b_stride, 21);
                const auto w_up = batch_floats(n_w_up, w_up_stride, 31, 0.1f);
                const auto grad_up = batch_floats(n_up_z, up_stride, 41);
                // The CPU's gaps hold zeros, so its results' gaps are finite.
                const auto zero_gaps = [&](std::vector<float> v) {
                    for (float& e : v) e = std::isnan(e) ? 0.0f : e;
                    return v;
                };
                const auto w_read = zero_gaps(operand(w)), x_read = zero_gaps(operand(x));
                const auto w_up_read = zero_gaps(operand(w_up));
                const auto grad_up_read = zero_gaps(operand(grad_up));
                const auto bias_read = zero_gaps(bias);

                auto d_w = to_device(gpu, w), d_x = to_device(gpu, x), d_b = to_device(gpu, bias);
                auto d_w_up = to_device(gpu, w_up), d_grad_up = to_device(gpu, grad_up);
                for (bool relu : {false, true}) {
                    std::vector<float> z(size_t(k_models * z_stride), 0.0f);
                    cpu.gemm_bias_act({z.data(), z_stride}, Strided<uint8_t>{},
                                      {w_read.data(), w_stride}, {x_read.data(), x_stride},
                                      {bias_read.data(), b_stride}, relu, s.n_out, s.n_batch,
                                      s.n_in, k_models);
                    DeviceBuffer<float> d_z(k_models * z_stride);
                    const int64_t mask_bytes = gpu.relu_mask_bytes(s.n_out, s.n_batch);
                    DeviceBuffer<uint8_t> d_mask(k_models * mask_bytes);
                    gpu.gemm_bias_act(
                        {d_z.data(), z_stride},
                        relu ? Strided<uint8_t>{d_mask.data(), mask_bytes} : Strided<uint8_t>{},
                        {d_w.data(), w_stride}, {d_x.data(), x_stride}, {d_b.data(), b_stride},
                        relu, s.n_out, s.n_batch, s.n_in, k_models);
                    expect_models_near(to_host(gpu, d_z), z, n_z, z_stride, tol,
                                       what + " relu " + std::to_string(relu));
                    if (!relu) continue;

                    // The backward of a layer above: n_up outputs read each model's z, the
                    // GPU's own on both sides (its ReLU mask decides which gradients pass).
                    const std::vector<float> z_gpu = to_host(gpu, d_z);
                    std::vector<float> grad_in(size_t(k_models * z_stride), 0.0f);
                    std::vector<float> db(size_t(k_models * b_stride), 0.0f);
                    cpu.gemm_drelu_bgrad({grad_in.data(), z_stride}, {db.data(), b_stride},
                                         {w_up_read.data(), w_up_stride},
                                         {grad_up_read.data(), up_stride}, {z_gpu.data(), z_stride},
                                         Strided<const uint8_t>{}, s.n_out, s.n_batch, n_up,
                                         k_models);
                    DeviceBuffer<float> d_grad_in(k_models * z_stride), d_db(k_models * b_stride);
                    gpu.gemm_drelu_bgrad({d_grad_in.data(), z_stride}, {d_db.data(), b_stride},
                                         {d_w_up.data(), w_up_stride},
                                         {d_grad_up.data(), up_stride}, {d_z.data(), z_stride},
                                         {d_mask.data(), mask_bytes}, s.n_out, s.n_batch, n_up,
                                         k_models);
                    expect_models_near(to_host(gpu, d_grad_in), grad_in, n_z, z_stride, tol,
                                       what + " grad_in");
                    expect_models_near(to_host(gpu, d_db), db, s.n_out, b_stride, tol,
                                       what + " bias grad");

                    // The weight gradients on the side stream, joined back.
                    std::vector<float> dw(size_t(k_models * w_up_stride), 0.0f);
                    const auto z_read = zero_gaps(operand(z_gpu));
                    cpu.weight_grad({dw.data(), w_up_stride}, {z_read.data(), z_stride},
                                    {grad_up_read.data(), up_stride}, s.n_out, n_up, s.n_batch,
                                    k_models);
                    DeviceBuffer<float> d_dw(k_models * w_up_stride);
                    gpu.weight_grad({d_dw.data(), w_up_stride}, {d_z.data(), z_stride},
                                    {d_grad_up.data(), up_stride}, s.n_out, n_up, s.n_batch,
                                    k_models);
                    gpu.join_side();
                    expect_models_near(to_host(gpu, d_dw), dw, n_w_up, w_up_stride, tol,
                                       what + " weight grad");
                }
            }
        }
        print_fallbacks(gpu);
    }
}

TEST(FusedKernels, BatchOfThreeBiasGradMatchesCpuAndEachModelAloneBitForBit) {
    REQUIRE_GPU();
    CudaBackend gpu;
    gpu.reserve_batch(k_models);
    CpuBackend cpu;
    for (int64_t n_out : {1, 10, 47, 129}) {
        for (int64_t n_batch : {1, 33, 64}) {
            for (int64_t gap : k_gaps) {
                const int64_t n_dz = n_out * n_batch, dz_stride = n_dz + gap;
                const int64_t db_stride = n_out + gap;
                const auto dz = batch_floats(n_dz, dz_stride, uint64_t(n_out * 7 + n_batch));
                auto cpu_dz = dz;
                for (float& e : cpu_dz) e = std::isnan(e) ? 0.0f : e;
                std::vector<float> db(size_t(k_models * db_stride), 0.0f);
                cpu.bias_grad({db.data(), db_stride}, {cpu_dz.data(), dz_stride}, n_out, n_batch,
                              k_models);
                auto d_dz = to_device(gpu, dz);
                DeviceBuffer<float> d_db(k_models * db_stride);
                gpu.bias_grad({d_db.data(), db_stride}, {d_dz.data(), dz_stride}, n_out, n_batch,
                              k_models);
                const auto got = to_host(gpu, d_db);
                const std::string what = std::to_string(n_out) + " x " + std::to_string(n_batch) +
                                         " gap " + std::to_string(gap);
                expect_models_near(got, db, n_out, db_stride, 1e-5, what);
                for (int64_t k = 0; k < k_models; ++k) {
                    DeviceBuffer<float> d_alone(n_out);
                    gpu.bias_grad(one(d_alone.data()),
                                  one<const float>(d_dz.data() + k * dz_stride), n_out, n_batch, 1);
                    EXPECT_EQ(to_host(gpu, d_alone), model_of(got, k, n_out, db_stride))
                        << what << ", model " << k;
                }
            }
        }
    }
}

TEST(FusedKernels, BatchOfThreeSoftmaxXentBgradMatchesCpuAndEachModelAloneBitForBit) {
    REQUIRE_GPU();
    CudaBackend gpu;
    gpu.reserve_batch(k_models);
    CpuBackend cpu;
    for (int64_t n_batch : {1, 33, 129, 1000}) {
        for (int64_t n_classes : {2, 10, 47, 200}) {
            const int64_t first = 3, n_all = n_batch + first;
            const int64_t logits_stride = n_batch * n_classes + 5;
            const auto logits = batch_floats(n_batch * n_classes, logits_stride,
                                             uint64_t(n_batch + n_classes), 8.0f);
            auto cpu_logits = logits;
            for (float& e : cpu_logits) e = std::isnan(e) ? 0.0f : e;
            std::vector<uint8_t> labels(static_cast<size_t>(n_all));
            for (size_t i = 0; i < labels.size(); ++i) labels[i] = uint8_t(i * 7 % n_classes);
            // Each model its own order, as each model of a sweep has.
            std::vector<int32_t> perm;
            for (int64_t k = 0; k < k_models; ++k) {
                const auto p = epoch_permutation(n_all, uint64_t(1 + k), 0);
                perm.insert(perm.end(), p.begin(), p.end());
            }
            const int64_t sample_stride = n_all + 2;
            std::vector<float> loss(size_t(k_models * sample_stride), -1.0f);
            std::vector<uint8_t> pred(size_t(k_models * sample_stride), 255);
            const int64_t db_stride = n_classes + 3;
            std::vector<float> db(size_t(k_models * db_stride), 0.0f);
            const float scale = 1.0f / float(n_batch);
            cpu.softmax_xent_bgrad(
                {db.data(), db_stride},
                SoftmaxXentModels{
                    SoftmaxXentFunctor{cpu_logits.data(), loss.data(), pred.data(), labels.data(),
                                       perm.data(), first, n_classes, scale},
                    logits_stride, sample_stride, n_all},
                n_batch, k_models);

            auto d_logits = to_device(gpu, logits);
            auto d_labels = to_device(gpu, labels);
            auto d_perm = to_device(gpu, perm);
            auto d_loss = to_device(gpu, std::vector<float>(loss.size(), -1.0f));
            auto d_pred = to_device(gpu, std::vector<uint8_t>(pred.size(), 255));
            DeviceBuffer<float> d_db(k_models * db_stride);
            gpu.softmax_xent_bgrad(
                {d_db.data(), db_stride},
                SoftmaxXentModels{
                    SoftmaxXentFunctor{d_logits.data(), d_loss.data(), d_pred.data(),
                                       d_labels.data(), d_perm.data(), first, n_classes, scale},
                    logits_stride, sample_stride, n_all},
                n_batch, k_models);
            const auto got_logits = to_host(gpu, d_logits);
            const auto got_loss = to_host(gpu, d_loss);
            const auto got_pred = to_host(gpu, d_pred);
            const auto got_db = to_host(gpu, d_db);
            const std::string what = std::to_string(n_batch) + " x " + std::to_string(n_classes);
            expect_models_near(got_logits, cpu_logits, n_batch * n_classes, logits_stride, 1e-5,
                               what + " logit gradient");
            expect_models_near(got_loss, loss, sample_stride, sample_stride, 1e-5, what + " loss");
            EXPECT_EQ(got_pred, pred) << what;
            expect_models_near(got_db, db, n_classes, db_stride, 1e-4, what + " bias grad");

            for (int64_t k = 0; k < k_models; ++k) {
                auto d_alone_logits =
                    to_device(gpu, model_of(logits, k, n_batch * n_classes, logits_stride));
                auto d_alone_loss =
                    to_device(gpu, std::vector<float>(size_t(sample_stride), -1.0f));
                auto d_alone_pred =
                    to_device(gpu, std::vector<uint8_t>(size_t(sample_stride), 255));
                DeviceBuffer<float> d_alone_db(n_classes);
                gpu.softmax_xent_bgrad(
                    one(d_alone_db.data()),
                    SoftmaxXentModels{
                        SoftmaxXentFunctor{d_alone_logits.data(), d_alone_loss.data(),
                                           d_alone_pred.data(), d_labels.data(),
                                           d_perm.data() + k * n_all, first, n_classes, scale},
                        0, 0, 0},
                    n_batch, 1);
                const std::string model = what + ", model " + std::to_string(k);
                EXPECT_EQ(to_host(gpu, d_alone_logits),
                          model_of(got_logits, k, n_batch * n_classes, logits_stride))
                    << model;
                EXPECT_EQ(to_host(gpu, d_alone_loss),
                          model_of(got_loss, k, sample_stride, sample_stride))
                    << model;
                EXPECT_EQ(to_host(gpu, d_alone_pred),
                          model_of(got_pred, k, sample_stride, sample_stride))
                    << model;
                EXPECT_EQ(to_host(gpu, d_alone_db), model_of(got_db, k, n_classes, db_stride))
                    << model;
            }
        }
    }
}

// Each model its own gradient, losses and stop flag: model 1's gradient holds
// a NaN, so its guard fires while the others' stay clear.
TEST(FusedKernels, BatchOfThreeGradNormGuardMatchesCpuAndEachModelAloneBitForBit) {
    REQUIRE_GPU();
    CudaBackend gpu;
    gpu.reserve_batch(k_models);
    CpuBackend cpu;
    const int64_t n_parts = 256;
    const std::vector<int8_t> stop = {1, 0, 1};
    auto d_stop = to_device(gpu, stop);
    for (int64_t n : k_norm_sizes) {
        for (int64_t n_batch : {1, 33, 64}) {
            const int64_t grads_stride = n + 7, loss_stride = n_batch + 3;
            auto g = batch_floats(n, grads_stride, uint64_t(n), 0.01f);
            g[size_t(grads_stride + n / 2)] = std::numeric_limits<float>::quiet_NaN();
            const auto loss = batch_floats(n_batch, loss_stride, 3);
            const std::string what = std::to_string(n) + " " + std::to_string(n_batch);

            std::vector<float> parts(size_t(k_models * n_parts)), sq(k_models);
            std::vector<int32_t> guard(2 * k_models);
            for (int64_t k = 0; k < k_models; ++k) guard[size_t(2 * k)] = -1;
            std::vector<int8_t> status(k_models, -1);
            const NormGuardData cpu_data{sq.data(), guard.data(), status.data(), parts.data(),
                                         g.data(),  loss.data(),  stop.data()};
            cpu.grad_norm_guard(
                norm_guard(cpu_data, n, n_batch, n_parts, 5, grads_stride, loss_stride), k_models);
            ASSERT_EQ(status[1], step_non_finite) << what;

            auto d_g = to_device(gpu, g);
            auto d_loss = to_device(gpu, loss);
            DeviceBuffer<float> d_parts(k_models * n_parts), d_sq(k_models);
            std::vector<float> first;
            for (int run = 0; run < 2; ++run) {  // the counters are ready again after a launch
                std::vector<int32_t> fresh(2 * k_models);
                for (int64_t k = 0; k < k_models; ++k) fresh[size_t(2 * k)] = -1;
                auto d_guard = to_device(gpu, fresh);
                auto d_status = to_device(gpu, std::vector<int8_t>(k_models, -1));
                const NormGuardData gpu_data{d_sq.data(),    d_guard.data(), d_status.data(),
                                             d_parts.data(), d_g.data(),     d_loss.data(),
                                             d_stop.data()};
                gpu.grad_norm_guard(
                    norm_guard(gpu_data, n, n_batch, n_parts, 5, grads_stride, loss_stride),
                    k_models);
                const auto got = to_host(gpu, d_sq);
                EXPECT_EQ(to_host(gpu, d_status), status) << what;
                EXPECT_EQ(to_host(gpu, d_guard), guard) << what;
                for (int64_t k = 0; k < k_models; ++k) {
                    if (k == 1) {
                        EXPECT_TRUE(std::isnan(got[size_t(k)])) << what;
                    } else {
                        EXPECT_NEAR(got[size_t(k)], sq[size_t(k)], 1e-5 * sq[size_t(k)])
                            << what << ", model " << k;
                    }
                }
                if (run == 0) {
                    first = got;
                } else {
                    EXPECT_EQ(0, std::memcmp(got.data(), first.data(), got.size() * sizeof(float)))
                        << what;  // bit for bit, NaN included
                }
                if (run == 1) continue;

                for (int64_t k = 0; k < k_models; ++k) {
                    auto d_alone_guard = to_device(gpu, std::vector<int32_t>{-1, 0});
                    auto d_alone_status = to_device(gpu, std::vector<int8_t>{-1});
                    DeviceBuffer<float> d_alone_parts(n_parts), d_alone_sq(1);
                    const NormGuardData alone{d_alone_sq.data(),
                                              d_alone_guard.data(),
                                              d_alone_status.data(),
                                              d_alone_parts.data(),
                                              d_g.data() + k * grads_stride,
                                              d_loss.data() + k * loss_stride,
                                              d_stop.data() + k};
                    gpu.grad_norm_guard(norm_guard(alone, n, n_batch, n_parts, 5), 1);
                    const auto alone_sq = to_host(gpu, d_alone_sq);
                    const std::string model = what + ", model " + std::to_string(k);
                    EXPECT_EQ(0, std::memcmp(alone_sq.data(), got.data() + k, sizeof(float)))
                        << model;
                    EXPECT_EQ(to_host(gpu, d_alone_status)[0], status[size_t(k)]) << model;
                    EXPECT_EQ(to_host(gpu, d_alone_guard), model_of(guard, k, 2, 2)) << model;
                }
            }
        }
    }
}

// A fused reduction over more models than reserve_batch made room for is
// refused: its last-block counters would run past the backend's.
TEST(FusedKernels, ReductionPastTheReservedBatchIsRefused) {
    REQUIRE_GPU();
    CudaBackend gpu;
    auto d_dz = to_device(gpu, std::vector<float>(8, 1.0f));
    DeviceBuffer<float> d_db(8);
    // The bias gradient keeps no counters: any batch runs.
    EXPECT_NO_THROW(gpu.bias_grad({d_db.data(), 4}, {d_dz.data(), 4}, 4, 1, 2));
    auto d_stop = to_device(gpu, std::vector<int8_t>{0, 0});
    auto d_guard = to_device(gpu, std::vector<int32_t>{-1, 0, -1, 0});
    auto d_loss = to_device(gpu, std::vector<float>{1.0f, 2.0f});
    DeviceBuffer<float> d_sq(2), d_parts(2 * 256);
    DeviceBuffer<int8_t> d_status(2);
    const NormGuardData data{d_sq.data(), d_guard.data(), d_status.data(), d_parts.data(),
                             d_dz.data(), d_loss.data(),  d_stop.data()};
    EXPECT_THROW(gpu.grad_norm_guard(norm_guard(data, 4, 1, 256, 0, 4, 1), 2), Error);
    gpu.reserve_batch(2);
    gpu.grad_norm_guard(norm_guard(data, 4, 1, 256, 0, 4, 1), 2);
    EXPECT_EQ(to_host(gpu, d_sq), (std::vector<float>{4.0f, 4.0f}));
}

// The generic GEMM in bf16 for every transpose, at odd sizes and with leading
// dimensions past the rows (NaN in the gap, which no GEMM may read), against
// CBLAS on the rounded operands; and far enough from CBLAS on the fp32
// operands to show that the operands were rounded.
TEST(Bf16Kernels, GemmMatchesCblasOfRoundedOperandsForEveryTranspose) {
    REQUIRE_GPU();
    struct Size {
        int64_t m, n, k;
    };
    const Size sizes[] = {{1, 1, 1},    {7, 33, 13},    {37, 1, 129},   {128, 64, 784},
                          {10, 64, 64}, {784, 128, 64}, {129, 65, 785}, {2, 1000, 11}};
    const float nan = std::numeric_limits<float>::quiet_NaN();
    CudaBackend gpu;
    gpu.set_precision(Precision::bf16);
    CpuBackend cpu;
    for (const Size& z : sizes) {
        for (Trans ta : {Trans::N, Trans::T}) {
            for (Trans tb : {Trans::N, Trans::T}) {
                for (int64_t pad : {0, 3}) {
                    const int64_t a_rows = ta == Trans::N ? z.m : z.k;
                    const int64_t a_cols = ta == Trans::N ? z.k : z.m;
                    const int64_t b_rows = tb == Trans::N ? z.k : z.n;
                    const int64_t b_cols = tb == Trans::N ? z.n : z.k;
                    const int64_t lda = a_rows + pad, ldb = b_rows + pad, ldc = z.m + pad;
                    auto a = random_floats(lda * a_cols, uint64_t(z.m * 3 + z.k), 0.1f);
                    auto b = random_floats(ldb * b_cols, uint64_t(z.n * 5 + z.k));
                    for (int64_t c = 0; c < a_cols; ++c) {
                        for (int64_t r = a_rows; r < lda; ++r) a[size_t(c * lda + r)] = nan;
                    }
                    for (int64_t c = 0; c < b_cols; ++c) {
                        for (int64_t r = b_rows; r < ldb; ++r) b[size_t(c * ldb + r)] = nan;
                    }
                    const auto ar = bf16_rounded(a), br = bf16_rounded(b);
                    std::vector<float> want(static_cast<size_t>(ldc * z.n)), exact = want;
                    cpu.gemm(ta, tb, z.m, z.n, z.k, ar.data(), lda, br.data(), ldb, want.data(),
                             ldc);
                    cpu.gemm(ta, tb, z.m, z.n, z.k, a.data(), lda, b.data(), ldb, exact.data(),
                             ldc);
                    auto d_a = to_device(gpu, a), d_b = to_device(gpu, b);
                    auto d_c = to_device(gpu, std::vector<float>(want.size(), 0.0f));
                    gpu.gemm(ta, tb, z.m, z.n, z.k, d_a.data(), lda, d_b.data(), ldb, d_c.data(),
                             ldc);
                    const auto got = to_host(gpu, d_c);
                    const std::string what =
                        std::to_string(z.m) + " x " + std::to_string(z.n) + " x " +
                        std::to_string(z.k) + " ta " + std::to_string(int(ta)) + " tb " +
                        std::to_string(int(tb)) + " pad " + std::to_string(pad);
                    EXPECT_LT(test::normalised_error(got, want), 1e-4) << what;
                    if (z.m * z.n * z.k >= 100) {
                        EXPECT_GT(test::normalised_error(got, exact), 1e-5) << what;
                    }
                }
            }
        }
    }
}

// A bf16 GEMM recorded into a graph casts into the scratch reserved up front:
// one larger than that is refused while recording (nothing may be allocated
// then), and the backend stays usable. Once a graph exists the scratch does not
// grow outside a recording either (the graph keeps casting into it); a backend
// that recorded nothing grows it.
TEST(Bf16Kernels, GemmPastTheReservedScratchIsRefusedWhileRecording) {
    REQUIRE_GPU();
    CudaBackend gpu;
    gpu.set_precision(Precision::bf16);
    gpu.reserve_gemm_operands(64, 64);
    const int64_t m = 8, n = 8, k = 8;  // 64-value operands fit
    auto d_a = to_device(gpu, random_floats(m * k * 4, 1));
    auto d_b = to_device(gpu, random_floats(k * n * 4, 2));
    DeviceBuffer<float> d_c(m * n * 4);
    CudaBackend::Graph fits, too_big;
    EXPECT_NO_THROW(gpu.run_graph(fits, 0, [&] {
        gpu.gemm(Trans::N, Trans::N, m, n, k, d_a.data(), m, d_b.data(), k, d_c.data(), m);
    }));
    try {
        gpu.run_graph(too_big, 0, [&] {
            gpu.gemm(Trans::N, Trans::N, m, n, 4 * k, d_a.data(), m, d_b.data(), 4 * k, d_c.data(),
                     m);
        });
        FAIL() << "a GEMM past the reserved scratch was recorded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("reserve_gemm_operands"), std::string::npos)
            << e.what();
    }
    try {
        gpu.gemm(Trans::N, Trans::N, m, n, 4 * k, d_a.data(), m, d_b.data(), 4 * k, d_c.data(), m);
        FAIL() << "the scratch a recorded graph casts into was reallocated";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("reserve_gemm_operands"), std::string::npos)
            << e.what();
    }
    gpu.run_graph(fits, 0, [] { FAIL() << "a recorded graph was recorded again"; });
    gpu.synchronize();
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);

    CudaBackend fresh;
    fresh.set_precision(Precision::bf16);
    fresh.reserve_gemm_operands(64, 64);
    fresh.gemm(Trans::N, Trans::N, m, n, 4 * k, d_a.data(), m, d_b.data(), 4 * k, d_c.data(), m);
    fresh.synchronize();
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// A NaN weight in each hidden layer through each path (fp32): the step guard fires at the
// first step and no update is applied. cuBLASLt's ReLU epilogue may turn the NaN
// pre-activation into 0 with its mask bit clear. In layer 1 the NaN still reaches the
// gradient through the input-gradient GEMM (W^T dZ); in layer 0, whose input gradient is not
// computed, nothing else carries it, and the loss and every gradient would stay finite. The
// guard's norm counts a non-finite parameter as a non-finite gradient (GradNormGuardModels),
// so it fires there too, as the generic path's NaN-keeping ReLU makes it fire through the loss.
TEST(FusedTraining, NanWeightReachesTheGuardOnEveryPath) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(256, 64, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    for (int layer : {0, 1}) {
        for (KernelPath kernels : {KernelPath::generic, KernelPath::fused}) {
            for (bool graph : {false, true}) {
                TrainerOptions options;
                options.batch_size = 64;
                options.use_graph = graph;
                options.kernels = kernels;
                auto t = make_cuda_trainer(shape, data, options, {}, 0, "cuda:0");
                std::vector<float> params = init_params(shape, 1);
                params[size_t(shape.weight_offset(layer)) + 5] =
                    std::numeric_limits<float>::quiet_NaN();
                t->set_params(params);
                const EpochResult r = t->train_epoch(epoch_permutation(256, 1, 0), 0.1f);
                const std::string what = "layer " + std::to_string(layer) + ", " +
                                         to_string(kernels) + (graph ? ", graph" : ", stream");
                EXPECT_EQ(r.first_bad_step, 0) << what;
                EXPECT_EQ(r.skipped_steps, t->steps_per_epoch()) << what;
                const std::vector<float> after = t->params();
                ASSERT_EQ(after.size(), params.size());
                EXPECT_EQ(0,
                          std::memcmp(after.data(), params.data(), params.size() * sizeof(float)))
                    << what << ": an update was applied";
            }
        }
    }
}

// A cuBLASLt plan's first call is made outside a recording, where a failing one can still
// fall back (cuda/lt_matmul.hpp): an epilogue GEMM first met while recording is recorded as
// the generic kernels (with the reason among the fallbacks; they write no ReLU mask), and
// once it has run outside a recording a later recording runs cuBLASLt, which writes the mask
// on replay. Both graphs compute the same activation.
TEST(FusedGraph, EpilogueFirstMetWhileRecordingIsRecordedAsTheGenericKernels) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    const LayerShape s{128, 64, 784};
    const auto w = random_floats(s.n_out * s.n_in, 1, 0.1f);
    const auto x = random_floats(s.n_in * s.n_batch, 2);
    const auto bias = random_floats(s.n_out, 3);
    std::vector<float> z(size_t(s.n_out * s.n_batch));
    cpu.gemm_bias_act(one(z.data()), Strided<uint8_t>{}, one(w.data()), one(x.data()),
                      one(bias.data()), true, s.n_out, s.n_batch, s.n_in, 1);
    auto d_w = to_device(gpu, w), d_x = to_device(gpu, x), d_b = to_device(gpu, bias);
    DeviceBuffer<float> d_z(s.n_out * s.n_batch);
    const std::vector<uint8_t> no_mask(size_t(gpu.relu_mask_bytes(s.n_out, s.n_batch)), 0);
    auto d_mask = to_device(gpu, no_mask);
    const auto forward = [&] {
        gpu.gemm_bias_act(one(d_z.data()), one(d_mask.data()), one<const float>(d_w.data()),
                          one<const float>(d_x.data()), one<const float>(d_b.data()), true, s.n_out,
                          s.n_batch, s.n_in, 1);
    };
    CudaBackend::Graph first, second;
    gpu.run_graph(first, 0, forward);  // records, then replays
    EXPECT_LT(test::normalised_error(to_host(gpu, d_z), z), 1e-5);
    EXPECT_EQ(to_host(gpu, d_mask), no_mask) << "cuBLASLt ran a plan first met while recording";
    bool noted = false;
    for (const std::string& why : gpu.fused_fallbacks()) {
        noted = noted || why.find("while a graph was being recorded") != std::string::npos;
    }
    EXPECT_TRUE(noted) << "no fallback names the recording";

    forward();
    EXPECT_LT(test::normalised_error(to_host(gpu, d_z), z), 1e-5);
    EXPECT_NE(to_host(gpu, d_mask), no_mask) << "cuBLASLt did not run outside a recording";
    print_fallbacks(gpu);

    gpu.copy_to_device(d_mask.data(), no_mask.data(), int64_t(no_mask.size()));
    gpu.run_graph(second, 0, forward);
    EXPECT_LT(test::normalised_error(to_host(gpu, d_z), z), 1e-5);
    EXPECT_NE(to_host(gpu, d_mask), no_mask) << "the tried plan was not recorded";

    // The first graph keeps its generic kernels.
    gpu.copy_to_device(d_mask.data(), no_mask.data(), int64_t(no_mask.size()));
    gpu.run_graph(first, 0, [] { FAIL() << "a recorded graph was recorded again"; });
    EXPECT_LT(test::normalised_error(to_host(gpu, d_z), z), 1e-5);
    EXPECT_EQ(to_host(gpu, d_mask), no_mask);
}

std::unique_ptr<Trainer> make_trainer(bool cuda, KernelPath kernels, const ModelShape& shape,
                                      const Dataset& data, int64_t batch, bool graph = true,
                                      Precision precision = Precision::fp32) {
    TrainerOptions options;
    options.batch_size = batch;
    options.use_graph = graph;
    options.kernels = kernels;
    options.precision = precision;
    options.optimizer.kind = OptimizerKind::adamw;
    options.optimizer.weight_decay = 0.01;
    auto t = cuda ? make_cuda_trainer(shape, data, options, {}, 0, "cuda:0")
                  : make_cpu_trainer(shape, data, options);
    t->set_params(init_params(shape, 42));
    return t;
}

EpochPlan plan_for(const Trainer& t, int64_t epoch, bool shifts) {
    TrainConfig config;
    config.lr = 0.003f;
    config.epochs = 3;
    config.schedule.kind = ScheduleKind::onecycle;
    config.augment_shift = shifts ? 1 : 0;
    return make_epoch_plan(config, t.n_train(), t.steps_per_epoch(), epoch);
}

struct Case {
    int64_t n_train;
    int64_t batch;
    std::vector<int64_t> sizes;
    int rows, cols, n_classes;
};

// The default model; a last batch of 33 with 47 classes and odd hidden
// sizes; a last batch of 1 with 2 classes.
const Case k_cases[] = {{1000, 64, {784, 128, 64, 10}, 28, 28, 10},
                        {97, 64, {42, 37, 13, 47}, 6, 7, 47},
                        {65, 32, {20, 11, 2}, 4, 5, 2}};

TEST(FusedTraining, EpochMatchesGenericCudaAndCpu) {
    REQUIRE_GPU();
    for (const Case& c : k_cases) {
        const Dataset data = test::synthetic_dataset(c.n_train, 50, c.rows, c.cols, c.n_classes);
        const ModelShape shape(c.sizes);
        auto cpu = make_trainer(false, KernelPath::generic, shape, data, c.batch);
        auto generic = make_trainer(true, KernelPath::generic, shape, data, c.batch);
        auto fused = make_trainer(true, KernelPath::fused, shape, data, c.batch);
        for (int e = 0; e < 2; ++e) {
            const EpochResult rc = cpu->train_epoch(plan_for(*cpu, e, e == 1));
            const EpochResult rg = generic->train_epoch(plan_for(*generic, e, e == 1));
            const EpochResult rf = fused->train_epoch(plan_for(*fused, e, e == 1));
            EXPECT_NEAR(rf.loss, rc.loss, 1e-3 * std::abs(rc.loss)) << shape.to_string();
            EXPECT_NEAR(rf.loss, rg.loss, 1e-3 * std::abs(rg.loss)) << shape.to_string();
            EXPECT_NEAR(rf.grad_norm, rc.grad_norm, 1e-3 * rc.grad_norm) << shape.to_string();
            EXPECT_EQ(rf.skipped_steps, 0);
        }
        EXPECT_LT(test::normalised_error(fused->params(), cpu->params()), 1e-3)
            << shape.to_string();
        EXPECT_LT(test::normalised_error(fused->params(), generic->params()), 1e-3)
            << shape.to_string();
        EXPECT_NEAR(fused->evaluate().loss, cpu->evaluate().loss, 1e-3) << shape.to_string();
        // One batch's gradient at the same parameters: only rounding may differ.
        fused->set_params(cpu->params());
        double loss_f = 0.0, loss_c = 0.0;
        const std::vector<int32_t> ids = {0, 3, 5};
        EXPECT_LT(
            test::normalised_error(fused->gradients(ids, &loss_f), cpu->gradients(ids, &loss_c)),
            1e-4)
            << shape.to_string();
        EXPECT_NEAR(loss_f, loss_c, 1e-5 * std::abs(loss_c)) << shape.to_string();
    }
}

std::vector<float> fused_run(const Dataset& data, const ModelShape& shape, bool graph) {
    auto t = make_trainer(true, KernelPath::fused, shape, data, 64, graph);
    // Shifts on, off, on: each key's graph is kept and replayed.
    for (int e = 0; e < 3; ++e) t->train_epoch(plan_for(*t, e, e != 1));
    t->evaluate();
    return t->params();
}

TEST(FusedTraining, RunsRepeatAndGraphEqualsStreamBitForBit) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    const auto graph = fused_run(data, shape, true);
    EXPECT_EQ(graph, fused_run(data, shape, true));
    EXPECT_EQ(graph, fused_run(data, shape, false));
}

TEST(FusedTraining, Tf32EpochStaysCloseToCpu) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    auto cpu = make_trainer(false, KernelPath::generic, shape, data, 64);
    for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
        auto tf32 = make_trainer(true, k, shape, data, 64, true, Precision::tf32);
        const EpochResult rt = tf32->train_epoch(plan_for(*tf32, 0, false));
        const EpochResult rc = cpu->train_epoch(plan_for(*cpu, 0, false));
        EXPECT_NEAR(rt.loss, rc.loss, 2e-2 * std::abs(rc.loss)) << to_string(k);
        EXPECT_LT(test::normalised_error(tf32->params(), cpu->params()), 1e-2) << to_string(k);
        cpu = make_trainer(false, KernelPath::generic, shape, data, 64);
    }
}

// bf16 operands carry 8 significant bits against tf32's 11, so the bounds
// are looser than tf32's (and, like them, not yet calibrated on a GPU). The
// generic and fused paths round the same operands, so they stay closer to each
// other than to the CPU.
TEST(FusedTraining, Bf16EpochStaysCloseToCpuAndFusedToGeneric) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    auto cpu = make_trainer(false, KernelPath::generic, shape, data, 64);
    const EpochResult rc = cpu->train_epoch(plan_for(*cpu, 0, false));
    std::vector<float> params[2];
    double loss[2] = {0.0, 0.0};
    for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
        auto bf16 = make_trainer(true, k, shape, data, 64, true, Precision::bf16);
        const EpochResult rb = bf16->train_epoch(plan_for(*bf16, 0, false));
        EXPECT_NEAR(rb.loss, rc.loss, 5e-2 * std::abs(rc.loss)) << to_string(k);
        EXPECT_NEAR(rb.grad_norm, rc.grad_norm, 5e-2 * rc.grad_norm) << to_string(k);
        EXPECT_EQ(rb.skipped_steps, 0) << to_string(k);
        EXPECT_LT(test::normalised_error(bf16->params(), cpu->params()), 5e-2) << to_string(k);
        EXPECT_NEAR(bf16->evaluate().loss, cpu->evaluate().loss, 5e-2 * std::abs(rc.loss))
            << to_string(k);
        params[k == KernelPath::fused] = bf16->params();
        loss[k == KernelPath::fused] = rb.loss;
    }
    EXPECT_NEAR(loss[1], loss[0], 1e-2 * std::abs(loss[0]));
    EXPECT_LT(test::normalised_error(params[1], params[0]), 1e-2);
    // The master weights stay fp32: after an epoch of small updates most
    // parameters are not bf16 values.
    int64_t off_grid = 0;
    for (float v : params[0]) off_grid += bf16_bits_to_float(float_to_bf16_bits(v)) != v;
    EXPECT_GT(off_grid, int64_t(params[0].size()) / 2);
}

// bf16 runs repeat bit for bit, and replaying the recorded epoch equals
// launching it step by step.
TEST(FusedTraining, Bf16RunsRepeatAndGraphEqualsStream) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
        std::vector<float> runs[3];
        for (int r = 0; r < 3; ++r) {
            auto t = make_trainer(true, k, shape, data, 64, r < 2, Precision::bf16);
            for (int e = 0; e < 2; ++e) t->train_epoch(plan_for(*t, e, e == 1));
            runs[r] = t->params();
        }
        EXPECT_EQ(runs[0], runs[1]) << to_string(k);
        EXPECT_EQ(runs[0], runs[2]) << to_string(k);
    }
}

// Nodes per step of the recorded epoch, generic against fused, printed for
// the benchmark notes. The generic step launches 22 kernels (gather, 3 GEMMs
// and 3 bias epilogues, softmax, 3 weight GEMMs, 3 bias gradients, 2 input
// GEMMs, 2 ReLU backwards, 3 norm and guard launches, the update); cuBLAS may
// add kernels of its own per GEMM.
TEST(FusedGraph, RecordsFewerKernelsPerStepThanGeneric) {
    REQUIRE_GPU();
    const int64_t n_steps = 10;
    const Dataset data = test::synthetic_dataset(64 * n_steps, 64, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    CudaBackend::GraphNodes nodes[2];
    for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
        CudaBackend be;
        TrainerOptions options;
        options.kernels = k;
        Engine<CudaBackend> engine(be, shape, data, options);
        engine.set_params(0, init_params(shape, 42));
        EpochPlan plan;
        plan.perm = epoch_permutation(64 * n_steps, 42, 0);
        plan.lr.assign(size_t(n_steps), 0.1);
        engine.plan_model(0, plan);
        engine.train_epoch();
        const CudaBackend::GraphNodes n = be.last_recorded_nodes();
        nodes[k == KernelPath::fused] = n;
        std::cout << to_string(k) << ": " << double(n.total) / double(n_steps)
                  << " graph nodes per step, " << double(n.kernels) / double(n_steps)
                  << " kernel nodes\n";
        print_fallbacks(be);
    }
    EXPECT_GE(nodes[0].kernels, 22 * n_steps);
    EXPECT_LT(nodes[1].kernels, nodes[0].kernels);
}

// The default run (784-128-64-10, SGD lr 0.1, batch 64, 10 epochs, seed 42)
// on genuine MNIST, through the fused path in each precision that exists.
double mnist_accuracy(const Dataset& data, KernelPath kernels, Precision precision) {
    TrainConfig config;
    TrainerOptions options;
    options.kernels = kernels;
    options.precision = precision;
    const ModelShape shape({784, 128, 64, 10});
    auto t = make_cuda_trainer(shape, data, options, {}, 0, "cuda:0");
    t->set_params(init_params(shape, config.seed));
    for (int e = 0; e < config.epochs; ++e) {
        t->train_epoch(make_epoch_plan(config, t->n_train(), t->steps_per_epoch(), e));
    }
    return 100.0 * t->evaluate().accuracy;
}

TEST(FusedEndToEnd, MnistDefaultRunReaches97_5PercentInEachPrecision) {
    REQUIRE_GPU();
    const char* env = std::getenv("MLPTRAIN_MNIST_DIR");
    const std::string dir =
        env && *env ? env : std::string(MLPTRAIN_SOURCE_DIR) + "/../shared/data/mnist";
    REQUIRE_DATA(dir, "MNIST");
    const Dataset data = load_dataset(dir, "mnist");
    for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16}) {
        for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
            const double acc = mnist_accuracy(data, k, p);
            std::cout << "mnist " << to_string(k) << " " << to_string(p) << ": " << acc << "%\n";
            EXPECT_GE(acc, 97.5) << to_string(k) << " " << to_string(p);
        }
    }
}

}  // namespace
}  // namespace mlp
