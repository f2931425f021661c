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
#include <memory>
#include <random>
#include <regex>
#include <sstream>

#include "backend_cases.hpp"
#include "cuda/cuda_backend.cuh"
#include "gpu/gpu_status.hpp"
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

bool starts_with_any(const std::string& name, std::initializer_list<const char*> prefixes) {
    for (const char* p : prefixes) {
        if (name.rfind(p, 0) == 0) return true;
    }
    return false;
}

// Every case of the table (backend_cases.hpp) whose name starts with one of
// `prefixes`, at the odd check sizes and the benchmarks' sizes: CUDA against
// the CPU backend from the same inputs, within the case's tolerance.
void expect_cases_match_cpu(std::initializer_list<const char*> prefixes) {
    CudaBackend gpu;
    CpuBackend cpu;
    std::vector<cases::CaseShape> shapes = cases::check_shapes();
    for (const cases::CaseShape& at : cases::benchmark_shapes()) {
        if (at.batch == 1024) shapes.push_back(at);  // the largest the tolerances were set for
    }
    int n_checked = 0;
    for (const cases::CaseShape& at : shapes) {
        for (const auto& c : cases::step_cases<CudaBackend, CpuBackend>(at)) {
            if (!starts_with_any(c.info.name, prefixes)) continue;
            ++n_checked;
            const double err = cases::check_case(c, gpu, cpu);
            EXPECT_GE(err, 0.0) << c.info.name << ": an output is missing or not finite";
            EXPECT_LE(err, c.info.tolerance) << c.info.name;
        }
    }
    EXPECT_GT(n_checked, 0) << "no case matched";
}

TEST(CudaKernels, GatherMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"gather/"});
}

TEST(CudaKernels, GatherWithShiftsMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"gather_shift/"});
}

TEST(CudaKernels, BiasActMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"bias_relu/", "bias/"});
}

TEST(CudaKernels, ReluBackwardMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"relu_backward/"});
}

TEST(CudaKernels, BiasGradMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"bias_grad/"});
}

TEST(CudaKernels, SgdUpdateMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"sgd_update/"});
}

TEST(CudaKernels, MomentumSgdUpdateMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"momentum_update/", "nesterov_update/"});
}

TEST(CudaKernels, AdamUpdateMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"adamw_update/", "adam_steps/", "adamw_steps/"});
}

TEST(CudaKernels, GradNormMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"grad_norm/"});
}

TEST(CudaKernels, SoftmaxXentMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"softmax_xent/"});
}

TEST(CudaKernels, GemmMatchesCblasForEveryTransposeAtOddSizes) {
    REQUIRE_GPU();
    expect_cases_match_cpu({"gemm_"});
}

// The whole table, so a case added without a test of its own is checked too.
TEST(CudaKernels, EveryTableCaseMatchesCpu) {
    REQUIRE_GPU();
    expect_cases_match_cpu({""});
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

std::vector<float> random_floats(int64_t n, uint64_t seed) {
    Rng rng(seed, 99);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = float(rng.normal());
    return v;
}

int current_device() {
    int device = -1;
    EXPECT_EQ(cudaGetDevice(&device), cudaSuccess);
    return device;
}

int device_of(const void* p) {
    cudaPointerAttributes attributes{};
    EXPECT_EQ(cudaPointerGetAttributes(&attributes, p), cudaSuccess);
    return attributes.device;
}

// Buffers remember the device they were allocated on, the backend's for alloc(), and the
// backend's calls leave the thread's current device as they found it.
TEST(CudaDevices, BuffersLandOnTheBackendsDevice) {
    REQUIRE_GPU();
    const int before = current_device();
    CudaBackend gpu(0);
    EXPECT_EQ(gpu.device(), 0);
    auto d = gpu.alloc<float>(1000);
    EXPECT_EQ(d.device(), 0);
    EXPECT_EQ(device_of(d.data()), 0);
    gpu.copy_to_device(d.data(), std::vector<float>(1000, 1.0f).data(), 1000);
    gpu.synchronize();
    EXPECT_EQ(current_device(), before);
}

// Two backends on two devices driven from one thread, each call made while the other device
// is current: the buffers, GEMMs, recordings, timings and trainers of each stay on its own
// device, and the thread's current device is the caller's after every call.
TEST(CudaDevices, TwoBackendsOnTwoDevicesDoNotCross) {
    REQUIRE_GPU();
    int n_devices = 0;
    ASSERT_EQ(cudaGetDeviceCount(&n_devices), cudaSuccess);
    if (n_devices < 2) GTEST_SKIP() << "one CUDA device here; this test needs two";
    const int64_t m = 37, n = 33, k = 20;
    const std::vector<float> a = random_floats(m * k, 1), b = random_floats(k * n, 2);
    std::vector<float> want(size_t(m * n));
    CpuBackend().gemm(Trans::N, Trans::N, m, n, k, a.data(), m, b.data(), k, want.data(), m);
    ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
    auto gpu0 = std::make_unique<CudaBackend>(0);
    EXPECT_EQ(current_device(), 1);
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    auto gpu1 = std::make_unique<CudaBackend>(1);
    EXPECT_EQ(current_device(), 0);
    CudaBackend* backends[2] = {gpu0.get(), gpu1.get()};
    for (int device : {0, 1}) {
        CudaBackend& be = *backends[device];
        const int other = 1 - device;
        ASSERT_EQ(cudaSetDevice(other), cudaSuccess);
        auto d_a = be.alloc<float>(m * k), d_b = be.alloc<float>(k * n);
        auto d_c = be.alloc<float>(m * n);
        EXPECT_EQ(device_of(d_a.data()), device);
        EXPECT_EQ(d_c.device(), device);
        be.copy_to_device(d_a.data(), a.data(), m * k);
        be.copy_to_device(d_b.data(), b.data(), k * n);
        const auto gemm = [&] {
            be.gemm(Trans::N, Trans::N, m, n, k, d_a.data(), m, d_b.data(), k, d_c.data(), m);
        };
        gemm();
        std::vector<float> got(size_t(m * n));
        be.copy_to_host(got.data(), d_c.data(), m * n);
        EXPECT_LT(test::normalised_error(got, want), 1e-5) << "device " << device;
        CudaBackend::Graph graph;
        be.copy_to_device(d_c.data(), std::vector<float>(size_t(m * n), 0.0f).data(), m * n);
        be.run_graph(graph, 0, gemm);
        be.copy_to_host(got.data(), d_c.data(), m * n);
        EXPECT_LT(test::normalised_error(got, want), 1e-5) << "device " << device << ", graph";
        EXPECT_GE(be.time_seconds(gemm), 0.0);
        EXPECT_EQ(current_device(), other) << "after device " << device << "'s calls";
    }
    // Each released while the other device is current (device 0 is, after the loop).
    gpu1.reset();
    EXPECT_EQ(current_device(), 0);
    ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
    gpu0.reset();
    EXPECT_EQ(current_device(), 1);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);

    // A trainer on device 1, made and trained while device 0 is current, trains as one on
    // device 0 does (to float tolerance: the two cards need not be the same model).
    const Dataset data = test::synthetic_dataset(640, 64, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    std::vector<float> params[2];
    for (int device : {1, 0}) {
        ASSERT_EQ(cudaSetDevice(1 - device), cudaSuccess);
        TrainerOptions options;
        auto t =
            make_cuda_trainer(shape, data, options, {}, device, "cuda:" + std::to_string(device));
        t->set_params(init_params(shape, 42));
        t->train_epoch(epoch_permutation(640, 42, 0), 0.1f);
        params[device] = t->params();
        EXPECT_EQ(current_device(), 1 - device);
    }
    EXPECT_LT(test::normalised_error(params[1], params[0]), 1e-5);
}

std::unique_ptr<Trainer> trainer_on(bool cuda, const ModelShape& shape, const Dataset& data,
                                    int64_t batch, bool graph = true) {
    TrainerOptions options;
    options.batch_size = batch;
    options.use_graph = graph;
    auto t = cuda ? make_cuda_trainer(shape, data, options, {}, 0, "cuda:0")
                  : make_cpu_trainer(shape, data, options);
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
    auto t = cuda ? make_cuda_trainer(shape, data, options, {}, 0, "cuda:0")
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

// The Python package's path: float32 features (unscaled, signed), each hidden activation,
// scikit-learn's L2 penalty and Adam's epsilon placed as scikit-learn places it, recorded as a
// graph: CUDA follows the CPU.
TEST(CudaTraining, FloatFeaturesActivationsAndL2MatchCpu) {
    REQUIRE_GPU();
    const int64_t n = 1500, n_features = 40;
    std::vector<float> x(size_t(n * n_features));
    std::vector<uint8_t> y(static_cast<size_t>(n));
    const std::vector<float> noise = random_floats(n * n_features, 5);
    for (int64_t i = 0; i < n; ++i) {
        y[size_t(i)] = uint8_t(i % 5);
        for (int64_t f = 0; f < n_features; ++f) {
            x[size_t(i * n_features + f)] =
                3.0f * noise[size_t(i * n_features + f)] + (f % 5 == i % 5 ? 1.5f : 0.0f);
        }
    }
    Dataset data;
    data.name = "tabular";
    data.n_classes = 5;
    data.train = make_float_split(x, y, n, 1, int(n_features));
    data.test = make_float_split(x, y, n, 1, int(n_features));
    const ModelShape shape({n_features, 64, 32, 5});
    OptimizerConfig adam;
    adam.kind = OptimizerKind::adam;
    adam.l2_penalty = 1e-3;
    adam.eps_before_bias_correction = true;
    for (Activation act :
         {Activation::relu, Activation::tanh, Activation::logistic, Activation::identity}) {
        SCOPED_TRACE(activation_name(act));
        std::vector<float> params[2];
        double loss[2] = {0.0, 0.0};
        for (bool cuda : {false, true}) {
            TrainerOptions options;
            options.batch_size = 50;
            options.optimizer = adam;
            options.activation = act;
            auto t = cuda ? make_cuda_trainer(shape, data, options, {}, 0, "cuda:0")
                          : make_cpu_trainer(shape, data, options);
            t->set_params(init_params(shape, 42));
            for (int e = 0; e < 2; ++e) {
                loss[cuda] = t->train_epoch(epoch_permutation(n, 42, e), 0.003f).loss;
            }
            params[cuda] = t->params();
        }
        EXPECT_NEAR(loss[1], loss[0], 1e-3 * std::abs(loss[0]));
        EXPECT_LT(test::normalised_error(params[1], params[0]), 1e-3);
    }
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

// A batch of models on CUDA (host/train/engine.hpp): model k of a batch against the same
// model trained alone on CUDA, to float tolerance (a strided-batched GEMM may sum in another
// order than one GEMM), and against the CPU batch, on the generic and the fused path. Models
// differ in seed, learning rate and momentum; AdamW models in betas and weight decay; all
// with shifts.
struct BatchMember {
    OptimizerConfig optimizer;
    uint64_t seed;
    float lr;
};

void expect_cuda_batch_matches(const std::vector<BatchMember>& members, bool graph,
                               KernelPath kernels = KernelPath::generic) {
    const Dataset data = test::synthetic_dataset(1000, 200, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    TrainerOptions options;
    options.batch_size = 64;
    options.use_graph = graph;
    options.kernels = kernels;
    std::vector<OptimizerConfig> optimizers;
    for (const BatchMember& m : members) optimizers.push_back(m.optimizer);
    auto gpu = make_cuda_trainer(shape, data, options, optimizers, 0, "cuda:0");
    auto cpu = make_cpu_trainer(shape, data, options, optimizers);
    for (size_t k = 0; k < members.size(); ++k) {
        gpu->set_params(int64_t(k), init_params(shape, members[k].seed));
        cpu->set_params(int64_t(k), init_params(shape, members[k].seed));
    }
    const int64_t steps = gpu->steps_per_epoch();
    auto plan = [&](size_t k, int64_t e) {
        TrainConfig c;
        c.lr = members[k].lr;
        c.seed = members[k].seed;
        c.epochs = 2;
        c.augment_shift = 1;
        return make_epoch_plan(c, 1000, steps, e);
    };
    std::vector<EpochResult> g, c;
    for (int64_t e = 0; e < 2; ++e) {
        for (size_t k = 0; k < members.size(); ++k) {
            gpu->plan_model(int64_t(k), plan(k, e));
            cpu->plan_model(int64_t(k), plan(k, e));
        }
        g = gpu->train_models();
        c = cpu->train_models();
    }
    const std::vector<EpochResult> gt = gpu->evaluate_models(), ct = cpu->evaluate_models();
    for (size_t k = 0; k < members.size(); ++k) {
        TrainerOptions one = options;
        one.optimizer = members[k].optimizer;
        auto alone = make_cuda_trainer(shape, data, one, {}, 0, "cuda:0");
        alone->set_params(init_params(shape, members[k].seed));
        EpochResult a;
        for (int64_t e = 0; e < 2; ++e) a = alone->train_epoch(plan(k, e));
        EXPECT_NEAR(g[k].loss, a.loss, 1e-3 * std::abs(a.loss)) << "model " << k;
        EXPECT_NEAR(g[k].loss, c[k].loss, 1e-3 * std::abs(c[k].loss)) << "model " << k;
        EXPECT_LT(test::normalised_error(gpu->params(int64_t(k)), alone->params()), 1e-3)
            << "model " << k;
        EXPECT_LT(test::normalised_error(gpu->params(int64_t(k)), cpu->params(int64_t(k))), 1e-3)
            << "model " << k;
        EXPECT_NEAR(gt[k].accuracy, alone->evaluate().accuracy, 0.01) << "model " << k;
        EXPECT_NEAR(gt[k].loss, ct[k].loss, 1e-2 * std::abs(ct[k].loss)) << "model " << k;
        EXPECT_EQ(gpu->optimizer_state(int64_t(k)).step, alone->optimizer_state().step);
    }
}

OptimizerConfig sgd_with(double momentum) {
    OptimizerConfig o;
    o.momentum = momentum;
    return o;
}

TEST(CudaBatched, SgdModelsMatchAloneAndCpu) {
    REQUIRE_GPU();
    expect_cuda_batch_matches(
        {{sgd_with(0.0), 1, 0.1f}, {sgd_with(0.9), 2, 0.05f}, {sgd_with(0.0), 3, 0.2f}}, true);
}

TEST(CudaBatched, AdamwModelsMatchAloneAndCpuWithoutGraph) {
    REQUIRE_GPU();
    OptimizerConfig a = recipe_optimizer(), b = recipe_optimizer();
    b.beta1 = 0.8;
    b.weight_decay = 0.0;
    expect_cuda_batch_matches({{a, 1, 0.003f}, {b, 2, 0.01f}}, false);
}

// The fused path over a batch: cuBLASLt's strided-batch epilogues (or, where it refuses one,
// the batched GEMM and the per-model views) and the reductions over (model, part).
TEST(CudaBatched, FusedModelsMatchAloneAndCpu) {
    REQUIRE_GPU();
    expect_cuda_batch_matches(
        {{sgd_with(0.0), 1, 0.1f}, {sgd_with(0.9), 2, 0.05f}, {sgd_with(0.0), 3, 0.2f}}, true,
        KernelPath::fused);
    OptimizerConfig a = recipe_optimizer(), b = recipe_optimizer();
    b.beta1 = 0.8;
    expect_cuda_batch_matches({{a, 1, 0.003f}, {b, 2, 0.01f}}, false, KernelPath::fused);
}

// Models on their own subsets of one training set (cross-validation folds) ending at
// different steps with different last batches: the CUDA batch against the CPU batch (itself
// bit for bit each model alone on its subset, EngineBatch.ModelsOnTheirOwnSubsetsMatchAlone),
// recorded as a graph and not, on both kernel paths; the graph is recorded once per set of
// order lengths and replayed by the next epoch.
TEST(CudaBatched, ModelsOnTheirOwnSubsetsMatchCpu) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 200, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    const std::vector<int64_t> sizes = {800, 1000, 801, 130, 64};
    for (KernelPath kernels : {KernelPath::generic, KernelPath::fused}) {
        for (bool graph : {true, false}) {
            TrainerOptions options;
            options.batch_size = 64;
            options.use_graph = graph;
            options.kernels = kernels;
            std::vector<OptimizerConfig> optimizers(sizes.size(), sgd_with(0.9));
            auto gpu = make_cuda_trainer(shape, data, options, optimizers, 0, "cuda:0");
            auto cpu = make_cpu_trainer(shape, data, options, optimizers);
            for (size_t k = 0; k < sizes.size(); ++k) {
                gpu->set_params(int64_t(k), init_params(shape, k));
                cpu->set_params(int64_t(k), init_params(shape, k));
            }
            std::vector<EpochResult> g, c;
            for (int64_t e = 0; e < 2; ++e) {
                for (size_t k = 0; k < sizes.size(); ++k) {
                    const std::vector<int32_t> all = epoch_permutation(1000, 7 + k, e);
                    EpochPlan plan;
                    plan.perm.assign(all.begin(), all.begin() + sizes[k]);
                    plan.lr.assign(size_t((sizes[k] + 63) / 64), 0.05);
                    plan.shifts = epoch_shifts(sizes[k], 1, 7 + k, e);
                    gpu->plan_model(int64_t(k), plan);
                    cpu->plan_model(int64_t(k), plan);
                }
                g = gpu->train_models();
                c = cpu->train_models();
            }
            for (size_t k = 0; k < sizes.size(); ++k) {
                const std::string where = "model " + std::to_string(k) + (graph ? " graph" : "") +
                                          (kernels == KernelPath::fused ? " fused" : "");
                EXPECT_EQ(g[k].n_samples, sizes[k]) << where;
                EXPECT_NEAR(g[k].loss, c[k].loss, 1e-3 * std::abs(c[k].loss)) << where;
                EXPECT_LT(test::normalised_error(gpu->params(int64_t(k)), cpu->params(int64_t(k))),
                          1e-3)
                    << where;
                EXPECT_EQ(gpu->optimizer_state(int64_t(k)).step,
                          cpu->optimizer_state(int64_t(k)).step)
                    << where;
            }
        }
    }
}

// tf32 and bf16 in a batch: recorded as a graph (bf16's operand casts of every model fit the
// scratch reserved up front, nothing is allocated while capturing) and near the CPU's fp32
// batch and the same model alone on CUDA in that precision; bf16 operands carry 8
// significant bits, hence the looser bound (the single-model bound of test_fused.cu).
TEST(CudaBatched, Tf32AndBf16BatchesRecordAndStayNearCpu) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(1000, 200, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    const std::vector<OptimizerConfig> optimizers = {sgd_with(0.0), sgd_with(0.9)};
    auto plan_of = [&](int64_t k, int64_t steps) {
        EpochPlan plan;
        plan.perm = epoch_permutation(1000, uint64_t(k + 1), 0);
        plan.lr.assign(size_t(steps), 0.05);
        return plan;
    };
    TrainerOptions fp32;
    auto cpu = make_cpu_trainer(shape, data, fp32, optimizers);
    for (int64_t k = 0; k < 2; ++k) {
        cpu->set_params(k, init_params(shape, uint64_t(k + 1)));
        cpu->plan_model(k, plan_of(k, cpu->steps_per_epoch()));
    }
    cpu->train_models();
    for (Precision precision : {Precision::tf32, Precision::bf16}) {
        TrainerOptions options;
        options.precision = precision;
        auto gpu = make_cuda_trainer(shape, data, options, optimizers, 0, "cuda:0");
        for (int64_t k = 0; k < 2; ++k) {
            gpu->set_params(k, init_params(shape, uint64_t(k + 1)));
            gpu->plan_model(k, plan_of(k, gpu->steps_per_epoch()));
        }
        const std::vector<EpochResult> r = gpu->train_models();
        EXPECT_GT(gpu->train_graph_nodes(), 0) << to_string(precision);
        const double bound = precision == Precision::bf16 ? 5e-2 : 1e-2;
        for (int64_t k = 0; k < 2; ++k) {
            EXPECT_TRUE(std::isfinite(r[size_t(k)].loss)) << to_string(precision);
            EXPECT_LT(test::normalised_error(gpu->params(k), cpu->params(k)), bound)
                << to_string(precision) << " model " << k;
            TrainerOptions one = options;
            one.optimizer = optimizers[size_t(k)];
            auto alone = make_cuda_trainer(shape, data, one, {}, 0, "cuda:0");
            alone->set_params(init_params(shape, uint64_t(k + 1)));
            alone->train_epoch(plan_of(k, alone->steps_per_epoch()));
            EXPECT_LT(test::normalised_error(gpu->params(k), alone->params()), bound)
                << to_string(precision) << " model " << k << " against the model alone";
        }
    }
}

// The launches of an epoch do not grow with the models: every GEMM and functor covers all
// of them. cuBLAS may pick kernels with another count of launches for another batch count,
// so the bound is loose; 8 models trained one after another would record 8 times the nodes.
TEST(CudaBatched, GraphNodesDoNotGrowWithTheModels) {
    REQUIRE_GPU();
    const Dataset data = test::synthetic_dataset(640, 100, 28, 28, 10);
    const ModelShape shape({784, 128, 64, 10});
    TrainerOptions options;
    int64_t nodes[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
        const std::vector<OptimizerConfig> optimizers(i == 0 ? 1 : 8, OptimizerConfig{});
        auto b = make_cuda_trainer(shape, data, options, optimizers, 0, "cuda:0");
        for (int64_t k = 0; k < b->n_models(); ++k) {
            b->set_params(k, init_params(shape, uint64_t(k)));
            EpochPlan plan;
            plan.perm = epoch_permutation(640, uint64_t(k), 0);
            plan.lr.assign(size_t(b->steps_per_epoch()), 0.1);
            b->plan_model(k, plan);
        }
        b->train_models();
        nodes[i] = b->train_graph_nodes();
    }
    EXPECT_GT(nodes[0], 0);
    EXPECT_LT(nodes[1], 2 * nodes[0]) << "1 model: " << nodes[0] << " nodes, 8: " << nodes[1];
}

// A model too large for any current card (4 * 4e10 bytes of parameters): a CudaError at start
// that names the allocation's size, and through the CLI exit code 1 with that message.
TEST(CudaFaults, ModelTooLargeForTheCardNamesTheSize) {
    REQUIRE_GPU();
    const Dataset d = test::synthetic_dataset(64, 16);
    const ModelShape shape({20, 2000000, 20000, 3});
    const std::string bytes = std::to_string(4 * shape.n_params());
    try {
        make_cuda_trainer(shape, d, TrainerOptions{}, {}, 0, "cuda:0");
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
    const std::string dir =
        env && *env ? env : std::string(MLPTRAIN_SOURCE_DIR) + "/../shared/data/mnist";
    REQUIRE_DATA(dir, "MNIST");
    EXPECT_GE(gpu_final_accuracy(dir), 97.0);
}

TEST(CudaEndToEnd, FashionMnistDefaultRunReaches86Percent) {
    REQUIRE_GPU();
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    // The GPU check carries MNIST only; Fashion-MNIST is Debian's package, absent there.
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no Fashion-MNIST files in " << dir;
    EXPECT_GE(gpu_final_accuracy(dir), 86.0);
}

}  // namespace
}  // namespace mlp
