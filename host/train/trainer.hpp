// Backend-independent face of the trainer: the CLI, the sweep, tests and benchmarks hold
// a Trainer of one model or many and never see which backend runs it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/base/error.hpp"
#include "host/config/kernel_options.hpp"
#include "host/config/nan_policy.hpp"
#include "host/config/optimizer.hpp"
#include "host/data/dataset.hpp"
#include "host/model/model.hpp"
#include "ops/activation.hpp"

namespace mlp {

struct TrainerOptions {
    int64_t batch_size = 64;
    int64_t eval_batch_size = 1000;
    bool use_graph = true;      // record an epoch once and replay it (CUDA graphs; CPU closures)
    int cpu_threads = 0;        // CPU backend threads; 0 = one per core (no result depends on it)
    OptimizerConfig optimizer;  // the update rule; its state lives in the trainer
    NanPolicy on_nan = NanPolicy::stop;        // a step with a non-finite loss or gradient
    KernelPath kernels = KernelPath::generic;  // host/config/kernel_options.hpp
    Precision precision = Precision::fp32;     // tf32, bf16: CUDA only
    Activation activation = Activation::relu;  // of the hidden layers (ops/activation.hpp)
};

// Everything an epoch of training depends on besides the trainer's state,
// decided on the host before the epoch starts (make_epoch_plan() in
// host/train/train_loop.hpp derives it from the config and the epoch index).
struct EpochPlan {
    // Order of the samples the model trains on this epoch: all n_train of them, or a subset of
    // n < n_train (a cross-validation fold: host/train/engine.hpp)
    std::vector<int32_t> perm;
    std::vector<double> lr;      // learning rate of every step: ceil(n / batch) values
    std::vector<int8_t> shifts;  // (dx, dy) per position of perm, 2 * n values; empty: none
};

struct EpochResult {
    int64_t n_samples = 0;
    double loss = 0.0;      // mean cross-entropy over the samples
    double accuracy = 0.0;  // fraction in [0, 1]
    // Training only: L2 norm of the loss gradient (before weight decay and
    // momentum), averaged over the epoch's steps.
    double grad_norm = 0.0;
    // Training only: the first step (0-based) whose loss or gradient was not
    // finite, -1 if none; and how many steps skipped their update for it
    // (NanPolicy). Loss and accuracy count the samples of updating steps only.
    int64_t first_bad_step = -1;
    int64_t skipped_steps = 0;
};

// Called between training steps (steps_done, n_steps) where the backend runs
// steps one by one; never inside a recorded graph.
using StepCallback = std::function<void(int64_t, int64_t)>;

// A batch of n >= 1 models of one shape that train together (host/train/engine.hpp); model
// k is addressed by its index. The members without k are for a trainer of one model and
// refuse a batch.
class Trainer {
public:
    virtual ~Trainer() = default;

    virtual int64_t n_models() const = 0;
    // Model k trains in the next train_models() as `plan` says.
    virtual void plan_model(int64_t k, const EpochPlan& plan) = 0;
    // One epoch of the planned models; the others keep their state and get an empty result.
    virtual std::vector<EpochResult> train_models(const StepCallback& on_step = {}) = 0;
    // The test pass of every model.
    virtual std::vector<EpochResult> evaluate_models() = 0;
    virtual std::vector<uint8_t> test_predictions(int64_t k) = 0;
    virtual std::vector<float> gradients(int64_t k, const std::vector<int32_t>& ids,
                                         double* mean_loss) = 0;
    // Mean loss over the first n_samples of the running epoch (waits for them).
    virtual double running_loss(int64_t k, int64_t n_samples) = 0;

    virtual std::vector<float> params(int64_t k) = 0;
    virtual void set_params(int64_t k, const std::vector<float>& params) = 0;
    // The optimizer's buffers and step count, for checkpoints; set throws
    // Error when the buffers do not fit the optimizer and model.
    virtual OptimizerState optimizer_state(int64_t k) = 0;
    virtual void set_optimizer_state(int64_t k, const OptimizerState& state) = 0;

    virtual const ModelShape& shape() const = 0;
    virtual int64_t n_train() const = 0;
    virtual int64_t n_test() const = 0;
    virtual int64_t steps_per_epoch() const = 0;  // ceil(n_train / batch size): a whole order
    virtual int64_t batch_size() const = 0;
    virtual std::string device_name() const = 0;
    // Launches (graph nodes: kernels, cuBLAS's included) recorded for one training epoch
    // of all the models replayed as a graph, the last one trained; 0 where no epoch was
    // recorded (use_graph off).
    virtual int64_t train_graph_nodes() const = 0;
    // Waits for all queued work (for timing); results are already synchronous.
    virtual void synchronize() = 0;
    // Runs `work` (calls on this trainer) and returns its duration in seconds
    // as the device measures it: CUDA events on the GPU, a steady clock on the
    // CPU. Waits for the work to finish.
    virtual double time_seconds(const std::function<void()>& work) = 0;

    // One model.
    EpochResult train_epoch(const EpochPlan& plan, const StepCallback& on_step = {}) {
        plan_model(only(), plan);
        return train_models(on_step).front();
    }
    // One epoch over `perm` (all the training samples or a subset) at a constant learning
    // rate, without augmentation.
    EpochResult train_epoch(const std::vector<int32_t>& perm, float lr,
                            const StepCallback& on_step = {}) {
        EpochPlan plan;
        plan.perm = perm;
        plan.lr.assign(size_t((int64_t(perm.size()) + batch_size() - 1) / batch_size()),
                       double(lr));
        return train_epoch(plan, on_step);
    }
    EpochResult evaluate() {
        only();
        return evaluate_models().front();
    }
    std::vector<uint8_t> test_predictions() { return test_predictions(only()); }
    std::vector<float> gradients(const std::vector<int32_t>& ids, double* mean_loss) {
        return gradients(only(), ids, mean_loss);
    }
    double running_loss(int64_t n_samples) { return running_loss(only(), n_samples); }
    std::vector<float> params() { return params(only()); }
    void set_params(const std::vector<float>& p) { set_params(only(), p); }
    OptimizerState optimizer_state() { return optimizer_state(only()); }
    void set_optimizer_state(const OptimizerState& state) { set_optimizer_state(only(), state); }

private:
    int64_t only() const {
        if (n_models() != 1) {
            throw Error("this trainer holds " + std::to_string(n_models()) +
                        " models: name the model");
        }
        return 0;
    }
};

// One model per entry of `optimizers` (all of one kind), the rest of `options` shared; empty:
// one model of options.optimizer. The CPU trainer sets the threads (host/cpu/thread_policy.hpp):
// options.cpu_threads, 0 for one per core, over which one model spreads its GEMMs' parts and
// functors, and a batch its models.
std::unique_ptr<Trainer> make_cpu_trainer(const ModelShape& shape, const Dataset& data,
                                          const TrainerOptions& options,
                                          const std::vector<OptimizerConfig>& optimizers = {});

// Defined by the CUDA backend (cuda/cuda_trainer.cu) for GPU `device_index`,
// which host/device/ has probed and `device_name` describes; in a build
// without CUDA (host/device/no_cuda.cpp) it throws an Error saying so.
std::unique_ptr<Trainer> make_cuda_trainer(const ModelShape& shape, const Dataset& data,
                                           const TrainerOptions& options,
                                           const std::vector<OptimizerConfig>& optimizers,
                                           int device_index, const std::string& device_name);

}  // namespace mlp
