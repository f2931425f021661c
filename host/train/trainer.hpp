// Backend-independent face of the trainer: the CLI, tests and benchmarks hold
// a Trainer and never see which backend runs it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/config/nan_policy.hpp"
#include "host/config/optimizer.hpp"
#include "host/data/dataset.hpp"
#include "host/model/model.hpp"
#include "host/config/kernel_options.hpp"

namespace mlp {

struct TrainerOptions {
    int64_t batch_size = 64;
    int64_t eval_batch_size = 1000;
    bool use_graph = true;  // record an epoch once and replay it (CUDA graphs; CPU closures)
    int cpu_threads = 0;    // CPU backend threads; 0 = chosen from the batch size
    OptimizerConfig optimizer;  // the update rule; its state lives in the trainer
    NanPolicy on_nan = NanPolicy::stop;  // a step with a non-finite loss or gradient
    KernelPath kernels = KernelPath::generic;  // host/config/kernel_options.hpp
    Precision precision = Precision::fp32;     // tf32, bf16: CUDA only
};

// Everything an epoch of training depends on besides the trainer's state,
// decided on the host before the epoch starts (make_epoch_plan() in
// host/train/train_loop.hpp derives it from the config and the epoch index).
struct EpochPlan {
    std::vector<int32_t> perm;   // order of the training samples
    std::vector<double> lr;      // learning rate of every step: ceil(n_train / batch) values
    std::vector<int8_t> shifts;  // (dx, dy) per position of perm, 2 * n_train values; empty: none
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

class Trainer {
public:
    virtual ~Trainer() = default;

    virtual EpochResult train_epoch(const EpochPlan& plan, const StepCallback& on_step = {}) = 0;
    // One epoch at a constant learning rate, without augmentation.
    EpochResult train_epoch(const std::vector<int32_t>& perm, float lr,
                            const StepCallback& on_step = {});
    virtual EpochResult evaluate() = 0;
    virtual std::vector<uint8_t> test_predictions() = 0;
    virtual std::vector<float> gradients(const std::vector<int32_t>& ids, double* mean_loss) = 0;
    // Mean loss over the first n_samples of the running epoch (waits for them).
    virtual double running_loss(int64_t n_samples) = 0;

    virtual std::vector<float> params() = 0;
    virtual void set_params(const std::vector<float>& params) = 0;
    // The optimizer's buffers and step count, for checkpoints; set throws
    // Error when the buffers do not fit the optimizer and model.
    virtual OptimizerState optimizer_state() = 0;
    virtual void set_optimizer_state(const OptimizerState& state) = 0;

    virtual const ModelShape& shape() const = 0;
    virtual int64_t n_train() const = 0;
    virtual int64_t n_test() const = 0;
    virtual int64_t steps_per_epoch() const = 0;  // ceil(n_train / batch size)
    virtual std::string device_name() const = 0;
    // Launches (graph nodes: kernels, cuBLAS's included) recorded for one training epoch
    // replayed as a graph, the last one trained; 0 where no epoch was recorded (use_graph off).
    virtual int64_t train_graph_nodes() const = 0;
    // Waits for all queued work (for timing); results are already synchronous.
    virtual void synchronize() = 0;
    // Runs `work` (calls on this trainer) and returns its duration in seconds
    // as the device measures it: CUDA events on the GPU, a steady clock on the
    // CPU. Waits for the work to finish.
    virtual double time_seconds(const std::function<void()>& work) = 0;
};

inline EpochResult Trainer::train_epoch(const std::vector<int32_t>& perm, float lr,
                                        const StepCallback& on_step) {
    EpochPlan plan;
    plan.perm = perm;
    plan.lr.assign(size_t(steps_per_epoch()), double(lr));
    return train_epoch(plan, on_step);
}

std::unique_ptr<Trainer> make_cpu_trainer(const ModelShape& shape, const Dataset& data,
                                          const TrainerOptions& options);

// Defined by the CUDA backend (cuda/cuda_trainer.cu) for GPU `device_index`,
// which host/device/ has probed and `device_name` describes; in a build
// without CUDA (host/device/no_cuda.cpp) it throws an Error saying so.
std::unique_ptr<Trainer> make_cuda_trainer(const ModelShape& shape, const Dataset& data,
                                           const TrainerOptions& options, int device_index,
                                           const std::string& device_name);

// Adapts an Engine<Backend> to the Trainer interface; the backend lives as
// long as the trainer.
template <class Backend, template <class> class EngineT>
class BackendTrainer final : public Trainer {
public:
    BackendTrainer(std::unique_ptr<Backend> backend, const ModelShape& shape,
                   const Dataset& data, const TrainerOptions& options, std::string device)
        : backend_(std::move(backend)),
          engine_(*backend_, shape, data, options),
          device_(std::move(device)) {}

    using Trainer::train_epoch;
    EpochResult train_epoch(const EpochPlan& plan, const StepCallback& on_step) override {
        return engine_.train_epoch(plan, on_step);
    }
    EpochResult evaluate() override { return engine_.evaluate(); }
    std::vector<uint8_t> test_predictions() override { return engine_.test_predictions(); }
    std::vector<float> gradients(const std::vector<int32_t>& ids, double* mean_loss) override {
        return engine_.gradients(ids, mean_loss);
    }
    double running_loss(int64_t n_samples) override { return engine_.running_loss(n_samples); }
    std::vector<float> params() override { return engine_.params(); }
    void set_params(const std::vector<float>& params) override { engine_.set_params(params); }
    OptimizerState optimizer_state() override { return engine_.optimizer_state(); }
    void set_optimizer_state(const OptimizerState& state) override {
        engine_.set_optimizer_state(state);
    }
    const ModelShape& shape() const override { return engine_.shape(); }
    int64_t n_train() const override { return engine_.n_train(); }
    int64_t n_test() const override { return engine_.n_test(); }
    int64_t steps_per_epoch() const override { return engine_.steps_per_epoch(); }
    std::string device_name() const override { return device_; }
    int64_t train_graph_nodes() const override { return engine_.train_graph_nodes(); }
    void synchronize() override { backend_->synchronize(); }
    double time_seconds(const std::function<void()>& work) override {
        return backend_->time_seconds(work);
    }

private:
    std::unique_ptr<Backend> backend_;
    EngineT<Backend> engine_;
    std::string device_;
};

}  // namespace mlp
