// GPU suite, fused path (CTest label `gpu`): every fused kernel and cuBLASLt
// epilogue of the CUDA backend against the CPU backend's fused operations
// (which equal the generic path bit for bit), on random inputs with a
// normalised error, at odd sizes; the reductions repeat bit for bit; whole
// epochs against the generic CUDA path and the CPU; MNIST in each precision.
// Every test skips, with the reason, where no usable CUDA device exists.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>

#include "cuda/cuda_backend.cuh"
#include "host/base/rng.hpp"
#include "host/config/train_config.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/data/dataset.hpp"
#include "host/device/device.hpp"
#include "host/train/engine.hpp"
#include "host/config/kernel_options.hpp"
#include "host/train/train_loop.hpp"
#include "host/train/trainer.hpp"
#include "ops/step_guard.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

#define REQUIRE_GPU()                                                                 \
    do {                                                                              \
        const CudaDeviceInfo info_ = probe_cuda_device();                             \
        if (!info_.usable) GTEST_SKIP() << "no usable CUDA device: " << info_.reason; \
    } while (0)

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

void print_fallbacks(const CudaBackend& gpu) {
    for (const std::string& why : gpu.fused_fallbacks()) std::cout << "fallback: " << why << "\n";
}

// The default model's gradient size, odd sizes, and a range wider than one
// block per 256 values at the 256-block cap.
const int64_t k_norm_sizes[] = {1, 7, 255, 257, 1001, 101770, 64 * 784 + 3, 300001};

TEST(FusedKernels, GradNormGuardMatchesCpuAndRepeatsBitForBit) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    const int64_t n_parts = 256;
    for (int64_t n : k_norm_sizes) {
        for (int64_t n_batch : {1, 33, 64}) {
            const auto g = random_floats(n, uint64_t(n), 0.01f);
            const auto loss = random_floats(n_batch, 3);
            std::vector<float> parts(n_parts), sq(1);
            std::vector<int32_t> guard = {-1, 0};
            std::vector<int8_t> status(1, -1);
            cpu.grad_norm_guard(sq.data(), guard.data(), status.data(), parts.data(), g.data(),
                                loss.data(), n, n_batch, n_parts, 0, true);
            auto d_g = to_device(gpu, g);
            auto d_loss = to_device(gpu, loss);
            DeviceBuffer<float> d_parts(n_parts), d_sq(1);
            std::vector<float> first;
            for (int run = 0; run < 3; ++run) {
                auto d_guard = to_device(gpu, std::vector<int32_t>{-1, 0});
                auto d_status = to_device(gpu, std::vector<int8_t>{-1});
                gpu.grad_norm_guard(d_sq.data(), d_guard.data(), d_status.data(), d_parts.data(),
                                    d_g.data(), d_loss.data(), n, n_batch, n_parts, 0, true);
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
        for (int where : {0, 1}) {  // NaN in the gradient, infinity in the loss
            auto bad_g = random_floats(n, 1), good_g = random_floats(n, 2);
            auto bad_loss = random_floats(n_batch, 3), good_loss = random_floats(n_batch, 4);
            if (where == 0) bad_g[500] = nan;
            if (where == 1) bad_loss[32] = inf;
            std::vector<float> parts(n_parts), sq(2);
            std::vector<int32_t> guard = {-1, 0};
            std::vector<int8_t> status(2, -1);
            cpu.grad_norm_guard(&sq[0], guard.data(), &status[0], parts.data(), bad_g.data(),
                                bad_loss.data(), n, n_batch, n_parts, 0, stop);
            cpu.grad_norm_guard(&sq[1], guard.data(), &status[1], parts.data(), good_g.data(),
                                good_loss.data(), n, n_batch, n_parts, 1, stop);
            ASSERT_EQ(status[0], step_non_finite);
            auto d_bad_g = to_device(gpu, bad_g), d_good_g = to_device(gpu, good_g);
            auto d_bad_loss = to_device(gpu, bad_loss), d_good_loss = to_device(gpu, good_loss);
            auto d_guard = to_device(gpu, std::vector<int32_t>{-1, 0});
            auto d_status = to_device(gpu, std::vector<int8_t>{-1, -1});
            DeviceBuffer<float> d_parts(n_parts), d_sq(2);
            gpu.grad_norm_guard(d_sq.data(), d_guard.data(), d_status.data(), d_parts.data(),
                                d_bad_g.data(), d_bad_loss.data(), n, n_batch, n_parts, 0, stop);
            gpu.grad_norm_guard(d_sq.data() + 1, d_guard.data(), d_status.data() + 1,
                                d_parts.data(), d_good_g.data(), d_good_loss.data(), n, n_batch,
                                n_parts, 1, stop);
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
            cpu.bias_grad(db.data(), dz.data(), n_out, n_batch);
            auto d_dz = to_device(gpu, dz);
            DeviceBuffer<float> d_db(n_out);
            gpu.bias_grad(d_db.data(), d_dz.data(), n_out, n_batch);
            const auto got = to_host(gpu, d_db);
            // A tree, not the CPU's running sum: rounding differs, not the value.
            EXPECT_LT(test::normalised_error(got, db), 1e-5) << n_out << " x " << n_batch;
            gpu.bias_grad(d_db.data(), d_dz.data(), n_out, n_batch);
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
                db.data(),
                SoftmaxXentFunctor{logits.data(), loss.data(), pred.data(), labels.data(),
                                   perm.data(), 3, n_classes, scale},
                n_batch);
            for (int run = 0; run < 2; ++run) {  // the counter is ready again after a launch
                gpu.softmax_xent_bgrad(
                    d_db.data(),
                    SoftmaxXentFunctor{d_logits.data(), d_loss.data(), d_pred.data(),
                                       d_labels.data(), d_perm.data(), 3, n_classes, scale},
                    n_batch);
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
            cpu.bias_grad(sums.data(), grad.data(), n_classes, n_batch);
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

TEST(FusedKernels, GemmBiasActAndDreluBgradMatchCpu) {
    REQUIRE_GPU();
    for (Precision precision : {Precision::fp32, Precision::tf32}) {
        CudaBackend gpu;
        gpu.set_precision(precision);
        CpuBackend cpu;
        const double tol = precision == Precision::fp32 ? 1e-5 : 5e-3;
        for (const LayerShape& s : k_layer_shapes) {
            for (bool relu : {true, false}) {
                const auto w = random_floats(s.n_out * s.n_in, 1, 0.1f);
                const auto x = random_floats(s.n_in * s.n_batch, 2);
                const auto bias = random_floats(s.n_out, 3);
                std::vector<float> z(static_cast<size_t>(s.n_out * s.n_batch));
                cpu.gemm_bias_act(z.data(), nullptr, w.data(), x.data(), bias.data(), relu, s.n_out,
                                  s.n_batch, s.n_in);
                auto d_w = to_device(gpu, w), d_x = to_device(gpu, x), d_b = to_device(gpu, bias);
                DeviceBuffer<float> d_z(s.n_out * s.n_batch);
                DeviceBuffer<uint8_t> d_mask(gpu.relu_mask_bytes(s.n_out, s.n_batch));
                gpu.gemm_bias_act(d_z.data(), relu ? d_mask.data() : nullptr, d_w.data(),
                                  d_x.data(), d_b.data(), relu, s.n_out, s.n_batch, s.n_in);
                EXPECT_LT(test::normalised_error(to_host(gpu, d_z), z), tol)
                    << s.n_out << " " << s.n_batch << " " << s.n_in << " relu " << relu;
                if (!relu) continue;

                // Backward of a layer above this one: n_up outputs read z.
                const int64_t n_up = 7;
                const auto w_up = random_floats(n_up * s.n_out, 4, 0.1f);
                const auto grad_up = random_floats(n_up * s.n_batch, 5);
                std::vector<float> grad_in(static_cast<size_t>(s.n_out * s.n_batch));
                std::vector<float> db(static_cast<size_t>(s.n_out));
                cpu.gemm_drelu_bgrad(grad_in.data(), db.data(), w_up.data(), grad_up.data(),
                                     z.data(), nullptr, s.n_out, s.n_batch, n_up);
                auto d_w_up = to_device(gpu, w_up), d_grad_up = to_device(gpu, grad_up);
                DeviceBuffer<float> d_grad_in(s.n_out * s.n_batch), d_db(s.n_out);
                gpu.gemm_drelu_bgrad(d_grad_in.data(), d_db.data(), d_w_up.data(), d_grad_up.data(),
                                     d_z.data(), d_mask.data(), s.n_out, s.n_batch, n_up);
                EXPECT_LT(test::normalised_error(to_host(gpu, d_grad_in), grad_in), tol);
                EXPECT_LT(test::normalised_error(to_host(gpu, d_db), db), tol);

                // The weight gradient on the side stream, joined back.
                std::vector<float> dw(static_cast<size_t>(n_up * s.n_out));
                cpu.weight_grad(dw.data(), z.data(), grad_up.data(), s.n_out, n_up, s.n_batch);
                DeviceBuffer<float> d_dw(n_up * s.n_out);
                gpu.weight_grad(d_dw.data(), d_z.data(), d_grad_up.data(), s.n_out, n_up,
                                s.n_batch);
                gpu.join_side();
                EXPECT_LT(test::normalised_error(to_host(gpu, d_dw), dw), tol);
            }
        }
        print_fallbacks(gpu);
    }
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
    auto t = cuda ? make_cuda_trainer(shape, data, options, 0, "cuda:0")
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
        engine.set_params(init_params(shape, 42));
        EpochPlan plan;
        plan.perm = epoch_permutation(64 * n_steps, 42, 0);
        plan.lr.assign(size_t(n_steps), 0.1);
        engine.train_epoch(plan, {});
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
    auto t = make_cuda_trainer(shape, data, options, 0, "cuda:0");
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
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no MNIST files in " << dir;
    const Dataset data = load_dataset(dir, "mnist");
    for (Precision p : {Precision::fp32, Precision::tf32}) {
        for (KernelPath k : {KernelPath::generic, KernelPath::fused}) {
            const double acc = mnist_accuracy(data, k, p);
            std::cout << "mnist " << to_string(k) << " " << to_string(p) << ": " << acc << "%\n";
            EXPECT_GE(acc, 97.5) << to_string(k) << " " << to_string(p);
        }
    }
}

}  // namespace
}  // namespace mlp
