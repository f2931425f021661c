// GPU suite (CTest label `gpu`): the CUDA backend against the CPU backend,
// which runs the same functors and the same Engine. Every test skips, with
// the reason, where no NVIDIA GPU exists. Where one is expected (the
// environment sets MLPTRAIN_REQUIRE_GPU=1, or nvidia-smi lists a GPU), a CUDA
// device this process cannot use is a failure with the reason instead.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <regex>
#include <sstream>

#include "cuda/cuda_backend.cuh"
#include "host/base/rng.hpp"
#include "host/cli/cli.hpp"
#include "host/config/optimizer.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/device/device.hpp"
#include "host/train/train_loop.hpp"
#include "host/train/trainer.hpp"
#include "ops/adam_update.hpp"
#include "ops/bias_act.hpp"
#include "ops/bias_grad.hpp"
#include "ops/gather.hpp"
#include "ops/grad_norm.hpp"
#include "ops/relu_backward.hpp"
#include "ops/sgd_update.hpp"
#include "ops/softmax_xent.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

// Why this machine should have a usable GPU, or "" where nothing says so.
std::string gpu_expected_because() {
    const char* env = std::getenv("MLPTRAIN_REQUIRE_GPU");
    if (env && *env && std::string(env) != "0") return "MLPTRAIN_REQUIRE_GPU=" + std::string(env);
    std::string listed;
    if (FILE* smi = popen("nvidia-smi -L 2>/dev/null", "r")) {
        char line[512];
        while (std::fgets(line, sizeof line, smi)) {
            if (listed.empty() && std::string(line).rfind("GPU ", 0) == 0) listed = line;
        }
        pclose(smi);
    }
    while (!listed.empty() && (listed.back() == '\n' || listed.back() == '\r')) listed.pop_back();
    return listed.empty() ? "" : "nvidia-smi lists " + listed;
}

// Probed once per process: whether the tests can run, and if not whether that is a skip.
struct GpuStatus {
    CudaDeviceInfo info;
    std::string expected_because;
};

const GpuStatus& gpu_status() {
    static const GpuStatus status = [] {
        GpuStatus s;
        s.info = probe_cuda_device();
        if (!s.info.usable) s.expected_because = gpu_expected_because();
        return s;
    }();
    return status;
}

#define REQUIRE_GPU()                                                                    \
    do {                                                                                 \
        const GpuStatus& gpu_ = gpu_status();                                            \
        if (!gpu_.info.usable && !gpu_.expected_because.empty()) {                       \
            FAIL() << "no usable CUDA device although " << gpu_.expected_because << ": " \
                   << gpu_.info.reason;                                                  \
        }                                                                                \
        if (!gpu_.info.usable) {                                                         \
            GTEST_SKIP() << "no usable CUDA device: " << gpu_.info.reason;               \
        }                                                                                \
    } while (0)

// Sizes that catch indexing bugs: one element, odd, around the block size,
// and a full 64 x 784 batch plus a ragged tail.
const int64_t k_sizes[] = {1, 7, 255, 256, 257, 1001, 64 * 784 + 3};

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

TEST(CudaKernels, GatherMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n_features : {1, 5, 784}) {
        const int64_t n_samples = 37;
        std::vector<uint8_t> images(static_cast<size_t>(n_samples * n_features));
        for (size_t i = 0; i < images.size(); ++i) images[i] = uint8_t(i * 31 + 7);
        const auto perm = epoch_permutation(n_samples, 3, 0);
        const int64_t first = 5, n_batch = 29;
        std::vector<float> cpu(static_cast<size_t>(n_batch * n_features));
        CpuBackend().for_each(n_batch * n_features,
                              GatherFunctor{cpu.data(), images.data(), perm.data(), first,
                                            n_features});
        auto d_images = to_device(gpu, images);
        auto d_perm = to_device(gpu, perm);
        DeviceBuffer<float> d_x(n_batch * n_features);
        gpu.for_each(n_batch * n_features,
                     GatherFunctor{d_x.data(), d_images.data(), d_perm.data(), first, n_features});
        EXPECT_EQ(to_host(gpu, d_x), cpu) << n_features;
    }
}

TEST(CudaKernels, BiasActMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n : k_sizes) {
        for (bool relu : {true, false}) {
            const int64_t n_out = n % 3 == 0 ? 3 : (n < 10 ? 1 : 10);
            auto z = random_floats(n - n % n_out, uint64_t(n), 2.0f);
            const auto bias = random_floats(n_out, 5);
            auto d_z = to_device(gpu, z);
            auto d_b = to_device(gpu, bias);
            const int64_t len = int64_t(z.size());
            CpuBackend().for_each(len, BiasActFunctor{z.data(), bias.data(), n_out, relu});
            gpu.for_each(len, BiasActFunctor{d_z.data(), d_b.data(), n_out, relu});
            EXPECT_EQ(to_host(gpu, d_z), z) << n;
        }
    }
}

TEST(CudaKernels, ReluBackwardMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n : k_sizes) {
        auto g = random_floats(n, 1);
        auto a = random_floats(n, 2);
        for (float& v : a) v = std::max(v, 0.0f);
        auto d_g = to_device(gpu, g);
        auto d_a = to_device(gpu, a);
        CpuBackend().for_each(n, ReluBackwardFunctor{g.data(), a.data()});
        gpu.for_each(n, ReluBackwardFunctor{d_g.data(), d_a.data()});
        EXPECT_EQ(to_host(gpu, d_g), g) << n;
    }
}

TEST(CudaKernels, BiasGradMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n_out : {1, 10, 64, 129}) {
        for (int64_t n_batch : {1, 7, 64, 1000}) {
            const auto dz = random_floats(n_out * n_batch, uint64_t(n_out * 7 + n_batch));
            std::vector<float> db(static_cast<size_t>(n_out));
            auto d_dz = to_device(gpu, dz);
            DeviceBuffer<float> d_db(n_out);
            CpuBackend().for_each(n_out, BiasGradFunctor{db.data(), dz.data(), n_out, n_batch});
            gpu.for_each(n_out, BiasGradFunctor{d_db.data(), d_dz.data(), n_out, n_batch});
            // Same summation order on both sides; only FMA contraction may differ.
            EXPECT_LT(test::normalised_error(to_host(gpu, d_db), db), 1e-6);
        }
    }
}

TEST(CudaKernels, SgdUpdateMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n : k_sizes) {
        auto p = random_floats(n, 3);
        const auto g = random_floats(n, 4);
        const std::vector<float> lr = {0.1f};
        auto d_p = to_device(gpu, p);
        auto d_g = to_device(gpu, g);
        auto d_lr = to_device(gpu, lr);
        CpuBackend().for_each(n, SgdUpdateFunctor{p.data(), g.data(), lr.data()});
        gpu.for_each(n, SgdUpdateFunctor{d_p.data(), d_g.data(), d_lr.data()});
        EXPECT_LT(test::normalised_error(to_host(gpu, d_p), p), 1e-6) << n;
    }
}

TEST(CudaKernels, GatherWithShiftsMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    const std::vector<std::pair<int, int>> sizes = {{28, 28}, {5, 7}, {1, 3}};
    for (const auto& [rows, cols] : sizes) {
        const int64_t n_features = int64_t(rows) * cols, n_samples = 37;
        std::vector<uint8_t> images(static_cast<size_t>(n_samples * n_features));
        for (size_t i = 0; i < images.size(); ++i) images[i] = uint8_t(i * 31 + 7);
        const auto perm = epoch_permutation(n_samples, 3, 0);
        const auto shifts = epoch_shifts(n_samples, 3, 3, 0);
        const int64_t first = 5, n_batch = 29, n = n_batch * n_features;
        std::vector<float> cpu(static_cast<size_t>(n));
        CpuBackend().for_each(n, GatherFunctor{cpu.data(), images.data(), perm.data(), first,
                                               n_features, shifts.data(), rows, cols});
        auto d_images = to_device(gpu, images);
        auto d_perm = to_device(gpu, perm);
        auto d_shifts = to_device(gpu, shifts);
        DeviceBuffer<float> d_x(n);
        gpu.for_each(n, GatherFunctor{d_x.data(), d_images.data(), d_perm.data(), first,
                                      n_features, d_shifts.data(), rows, cols});
        EXPECT_EQ(to_host(gpu, d_x), cpu) << rows << "x" << cols;
    }
}

TEST(CudaKernels, MomentumSgdUpdateMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n : k_sizes) {
        for (bool nesterov : {false, true}) {
            auto p = random_floats(n, 3);
            std::vector<float> b(static_cast<size_t>(n), 0.0f);
            OptimizerConfig config;
            config.momentum = 0.9;
            config.nesterov = nesterov;
            config.weight_decay = 0.01;
            const auto table = optimizer_steps(config, {0.1, 0.05, 0.2}, 0);
            auto d_p = to_device(gpu, p);
            auto d_b = to_device(gpu, b);
            auto d_table = to_device(gpu, table);
            for (size_t t = 0; t < table.size(); ++t) {
                const auto g = random_floats(n, 40 + t);
                auto d_g = to_device(gpu, g);
                CpuBackend().for_each(n, SgdUpdateFunctor{p.data(), g.data(),
                                                          lr_address(&table[t]), b.data(), 0.9f,
                                                          0.01f, nesterov});
                gpu.for_each(n, SgdUpdateFunctor{d_p.data(), d_g.data(),
                                                 lr_address(d_table.data() + t), d_b.data(), 0.9f,
                                                 0.01f, nesterov});
            }
            EXPECT_LT(test::normalised_error(to_host(gpu, d_p), p), 1e-6) << n;
            EXPECT_LT(test::normalised_error(to_host(gpu, d_b), b), 1e-6) << n;
        }
    }
}

TEST(CudaKernels, AdamUpdateMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n : k_sizes) {
        for (bool decoupled : {false, true}) {
            auto p = random_floats(n, 5);
            std::vector<float> m(static_cast<size_t>(n), 0.0f), v = m;
            OptimizerConfig config;
            config.kind = decoupled ? OptimizerKind::adamw : OptimizerKind::adam;
            config.weight_decay = 0.01;
            const auto table = optimizer_steps(config, {1e-3, 3e-3, 2e-3}, 0);
            auto d_p = to_device(gpu, p);
            auto d_m = to_device(gpu, m);
            auto d_v = to_device(gpu, v);
            auto d_table = to_device(gpu, table);
            for (size_t t = 0; t < table.size(); ++t) {
                const auto g = random_floats(n, 50 + t, 0.1f);
                auto d_g = to_device(gpu, g);
                CpuBackend().for_each(n, AdamUpdateFunctor{p.data(), g.data(), m.data(), v.data(),
                                                           &table[t], 0.1f, 0.999f, 0.001f, 1e-8f,
                                                           0.01f, decoupled});
                gpu.for_each(n, AdamUpdateFunctor{d_p.data(), d_g.data(), d_m.data(), d_v.data(),
                                                  d_table.data() + t, 0.1f, 0.999f, 0.001f, 1e-8f,
                                                  0.01f, decoupled});
            }
            EXPECT_LT(test::normalised_error(to_host(gpu, d_p), p), 1e-6) << n;
            EXPECT_LT(test::normalised_error(to_host(gpu, d_m), m), 1e-6) << n;
            EXPECT_LT(test::normalised_error(to_host(gpu, d_v), v), 1e-6) << n;
        }
    }
}

TEST(CudaKernels, GradNormMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    const int64_t n_parts = 256;
    for (int64_t n : k_sizes) {
        const auto g = random_floats(n, 6, 0.01f);
        std::vector<float> parts(n_parts);
        float cpu = 0.0f;
        CpuBackend().for_each(n_parts,
                              SquaredNormPartsFunctor{parts.data(), g.data(), n, n_parts});
        CpuBackend().for_each(1, SumPartsFunctor{&cpu, parts.data(), n_parts});
        auto d_g = to_device(gpu, g);
        DeviceBuffer<float> d_parts(n_parts), d_out(1);
        gpu.for_each(n_parts, SquaredNormPartsFunctor{d_parts.data(), d_g.data(), n, n_parts});
        gpu.for_each(1, SumPartsFunctor{d_out.data(), d_parts.data(), n_parts});
        // Same order on both sides; only FMA contraction may differ.
        EXPECT_NEAR(to_host(gpu, d_out)[0], cpu, 1e-6 * cpu) << n;
    }
}

TEST(CudaKernels, SoftmaxXentMatchesCpu) {
    REQUIRE_GPU();
    CudaBackend gpu;
    for (int64_t n_batch : {1, 7, 64, 1000}) {
        for (int64_t n_classes : {2, 10, 47}) {
            const int64_t n_all = n_batch + 3;
            auto logits = random_floats(n_batch * n_classes, uint64_t(n_batch + n_classes), 8.0f);
            std::vector<uint8_t> labels(static_cast<size_t>(n_all));
            for (size_t i = 0; i < labels.size(); ++i) labels[i] = uint8_t(i * 7 % n_classes);
            const auto perm = epoch_permutation(n_all, 1, 0);
            std::vector<float> loss(static_cast<size_t>(n_all), -1.0f);
            std::vector<uint8_t> pred(static_cast<size_t>(n_all), 255);
            auto d_logits = to_device(gpu, logits);
            auto d_labels = to_device(gpu, labels);
            auto d_perm = to_device(gpu, perm);
            auto d_loss = to_device(gpu, loss);
            auto d_pred = to_device(gpu, pred);
            const float scale = 1.0f / float(n_batch);
            CpuBackend().for_each(n_batch, SoftmaxXentFunctor{logits.data(), loss.data(),
                                                              pred.data(), labels.data(),
                                                              perm.data(), 3, n_classes, scale});
            gpu.for_each(n_batch, SoftmaxXentFunctor{d_logits.data(), d_loss.data(),
                                                     d_pred.data(), d_labels.data(),
                                                     d_perm.data(), 3, n_classes, scale});
            // expf/logf differ from the host's by a few ulps.
            EXPECT_LT(test::normalised_error(to_host(gpu, d_logits), logits), 1e-5);
            EXPECT_LT(test::normalised_error(to_host(gpu, d_loss), loss), 1e-5);
            EXPECT_EQ(to_host(gpu, d_pred), pred);
        }
    }
}

TEST(CudaKernels, GemmMatchesCblasForEveryTransposeAtOddSizes) {
    REQUIRE_GPU();
    CudaBackend gpu;
    CpuBackend cpu;
    const int64_t m = 13, n = 7, k = 29;
    for (Trans ta : {Trans::N, Trans::T}) {
        for (Trans tb : {Trans::N, Trans::T}) {
            const int64_t lda = ta == Trans::N ? m : k, ldb = tb == Trans::N ? k : n;
            const auto a = random_floats(m * k, 10);
            const auto b = random_floats(k * n, 11);
            std::vector<float> c(static_cast<size_t>(m * n));
            cpu.gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c.data(), m);
            auto d_a = to_device(gpu, a);
            auto d_b = to_device(gpu, b);
            DeviceBuffer<float> d_c(m * n);
            gpu.gemm(ta, tb, m, n, k, d_a.data(), lda, d_b.data(), ldb, d_c.data(), m);
            EXPECT_LT(test::normalised_error(to_host(gpu, d_c), c), 1e-5);
        }
    }
}

TEST(CudaMemory, OutOfMemoryNamesTheSize) {
    REQUIRE_GPU();
    try {
        DeviceBuffer<float> huge(int64_t(1) << 42);  // 16 TiB
        FAIL() << "allocation of 16 TiB succeeded";
    } catch (const CudaError& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("17592186044416 bytes"));
        EXPECT_THAT(e.what(), ::testing::HasSubstr("cudaMalloc"));
    }
}

std::unique_ptr<Trainer> trainer_on(bool cuda, const ModelShape& shape, const Dataset& data,
                                    int64_t batch, bool graph = true) {
    TrainerOptions options;
    options.batch_size = batch;
    options.use_graph = graph;
    auto t = cuda ? make_cuda_trainer(shape, data, options, 0, "cuda:0") : make_cpu_trainer(shape, data, options);
    t->set_params(init_params(shape, 42));
    return t;
}

TEST(CudaTraining, OneStepMatchesCpu) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(64, 50, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    auto cpu = trainer_on(false, shape, data, 64);
    auto gpu = trainer_on(true, shape, data, 64);
    const auto perm = epoch_permutation(64, 42, 0);
    const EpochResult c = cpu->train_epoch(perm, 0.1f);
    const EpochResult g = gpu->train_epoch(perm, 0.1f);
    EXPECT_NEAR(g.loss, c.loss, 1e-5 * std::abs(c.loss));
    EXPECT_LT(test::normalised_error(gpu->params(), cpu->params()), 1e-5);
}

TEST(CudaTraining, OneEpochLossMatchesCpu) {
    REQUIRE_GPU();
    // 3000 samples in batches of 64: 46 full steps and a partial one of 56.
    const Dataset data = test::synthetic_dataset(3000, 500, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    auto cpu = trainer_on(false, shape, data, 64);
    auto gpu = trainer_on(true, shape, data, 64);
    const auto perm = epoch_permutation(3000, 42, 0);
    const EpochResult c = cpu->train_epoch(perm, 0.1f);
    const EpochResult g = gpu->train_epoch(perm, 0.1f);
    EXPECT_NEAR(g.loss, c.loss, 1e-3 * std::abs(c.loss));
    EXPECT_NEAR(gpu->evaluate().loss, cpu->evaluate().loss, 1e-3);
    EXPECT_LT(test::normalised_error(gpu->params(), cpu->params()), 1e-3);
}

std::vector<float> gpu_run(const Dataset& data, const ModelShape& shape, bool graph) {
    auto t = trainer_on(true, shape, data, 64, graph);
    for (int e = 0; e < 2; ++e) t->train_epoch(epoch_permutation(data.train.size(), 42, e), 0.1f);
    t->evaluate();
    return t->params();
}

TEST(CudaTraining, TwoRunsWithOneSeedAreBitIdentical) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    EXPECT_EQ(gpu_run(data, shape, true), gpu_run(data, shape, true));
}

TEST(CudaTraining, GraphPathEqualsStreamPathBitForBit) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    EXPECT_EQ(gpu_run(data, shape, true), gpu_run(data, shape, false));
}

std::unique_ptr<Trainer> trainer_with(bool cuda, const ModelShape& shape, const Dataset& data,
                                      const OptimizerConfig& optimizer, bool graph = true) {
    TrainerOptions options;
    options.batch_size = 64;
    options.use_graph = graph;
    options.optimizer = optimizer;
    auto t = cuda ? make_cuda_trainer(shape, data, options, 0, "cuda:0")
                  : make_cpu_trainer(shape, data, options);
    t->set_params(init_params(shape, 42));
    return t;
}

// AdamW, a one-cycle schedule over 3 epochs and shifts of up to 2 pixels:
// everything the per-epoch device tables carry.
EpochPlan recipe_plan(int64_t n_train, int64_t steps, int64_t epoch, bool shifts = true) {
    TrainConfig config;
    config.lr = 0.003f;
    config.epochs = 3;
    config.schedule.kind = ScheduleKind::onecycle;
    config.augment_shift = shifts ? 2 : 0;
    return make_epoch_plan(config, n_train, steps, epoch);
}

OptimizerConfig recipe_optimizer() {
    OptimizerConfig o;
    o.kind = OptimizerKind::adamw;
    o.weight_decay = 0.01;
    return o;
}

TEST(CudaTraining, AdamwOneCycleShiftEpochMatchesCpu) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(3000, 500, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    auto cpu = trainer_with(false, shape, data, recipe_optimizer());
    auto gpu = trainer_with(true, shape, data, recipe_optimizer());
    const EpochPlan plan = recipe_plan(3000, cpu->steps_per_epoch(), 0);
    const EpochResult c = cpu->train_epoch(plan);
    const EpochResult g = gpu->train_epoch(plan);
    EXPECT_NEAR(g.loss, c.loss, 1e-3 * std::abs(c.loss));
    EXPECT_NEAR(g.grad_norm, c.grad_norm, 1e-3 * c.grad_norm);
    EXPECT_LT(test::normalised_error(gpu->params(), cpu->params()), 1e-3);
    const auto cs = cpu->optimizer_state(), gs = gpu->optimizer_state();
    EXPECT_EQ(gs.step, cs.step);
    ASSERT_EQ(gs.buffers.size(), 2u);
    EXPECT_LT(test::normalised_error(gs.buffers[0], cs.buffers[0]), 1e-2);
}

std::vector<float> gpu_recipe_run(const Dataset& data, const ModelShape& shape, bool graph) {
    auto t = trainer_with(true, shape, data, recipe_optimizer(), graph);
    // Shifts on, off, on: the recorded epoch must follow the change.
    for (int e = 0; e < 3; ++e) {
        t->train_epoch(recipe_plan(data.train.size(), t->steps_per_epoch(), e, e != 1));
    }
    return t->params();
}

TEST(CudaTraining, RecipeGraphEqualsStreamPathBitForBit) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    EXPECT_EQ(gpu_recipe_run(data, shape, true), gpu_recipe_run(data, shape, false));
}

TEST(CudaTraining, OptimizerStateRoundTripContinuesBitForBit) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    auto straight = trainer_with(true, shape, data, recipe_optimizer());
    const int64_t steps = straight->steps_per_epoch();
    for (int e = 0; e < 3; ++e) straight->train_epoch(recipe_plan(1000, steps, e));
    auto first = trainer_with(true, shape, data, recipe_optimizer());
    first->train_epoch(recipe_plan(1000, steps, 0));
    auto second = trainer_with(true, shape, data, recipe_optimizer());
    second->set_params(first->params());
    second->set_optimizer_state(first->optimizer_state());
    for (int e = 1; e < 3; ++e) second->train_epoch(recipe_plan(1000, steps, e));
    EXPECT_EQ(second->params(), straight->params());
}

// A model too large for any current card (4 * 4e10 bytes of parameters): a CudaError at start
// that names the allocation's size, and through the CLI exit code 1 with that message.
TEST(CudaFaults, ModelTooLargeForTheCardNamesTheSize) {
    REQUIRE_GPU();
    const Dataset d = test::synthetic_dataset(64, 16);
    const ModelShape shape({20, 2000000, 20000, 3});
    const std::string bytes = std::to_string(4 * shape.n_params());
    try {
        make_cuda_trainer(shape, d, TrainerOptions{}, 0, "cuda:0");
        FAIL() << "a " << bytes << "-byte model fitted";
    } catch (const CudaError& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("cudaMalloc of " + bytes + " bytes"));
        EXPECT_THAT(e.what(), ::testing::HasSubstr("free of"));
    }
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // the device stays usable
}

double gpu_final_accuracy(const std::string& dir) {
    std::vector<std::string> args = {"mlptrain", "train", "--data", dir, "--device", "cuda"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::ostringstream out, err;
    EXPECT_EQ(run_cli(int(argv.size()), argv.data(), out, err), 0) << err.str();
    std::cout << out.str();
    std::smatch m;
    const std::string text = out.str();
    if (!std::regex_search(text, m, std::regex(R"(final test_acc ([0-9.]+)%)"))) return -1.0;
    return std::stod(m[1]);
}

TEST(CudaEndToEnd, MnistDefaultRunReaches97Percent) {
    REQUIRE_GPU();
    const char* env = std::getenv("MLPTRAIN_MNIST_DIR");
    const std::string dir = env && *env ? env : std::string(MLPTRAIN_SOURCE_DIR) + "/../shared/data/mnist";
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no MNIST files in " << dir;
    EXPECT_GE(gpu_final_accuracy(dir), 97.0);
}

TEST(CudaEndToEnd, FashionMnistDefaultRunReaches86Percent) {
    REQUIRE_GPU();
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no Fashion-MNIST files in " << dir;
    EXPECT_GE(gpu_final_accuracy(dir), 86.0);
}

}  // namespace
}  // namespace mlp
