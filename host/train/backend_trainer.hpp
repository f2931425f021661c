// The Trainer of host/train/trainer.hpp over an Engine<Backend>: what each backend's factory
// (host/cpu/cpu_trainer.cpp, cuda/cuda_trainer.cu) hands out.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/train/engine.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

// Adapts an Engine<Backend> to the Trainer interface; the backend lives as
// long as the trainer.
template <class Backend>
class BackendTrainer final : public Trainer {
public:
    BackendTrainer(std::unique_ptr<Backend> backend, const ModelShape& shape, const Dataset& data,
                   const TrainerOptions& options, const std::vector<OptimizerConfig>& optimizers,
                   std::string device)
        : backend_(std::move(backend)),
          engine_(*backend_, shape, data, options, optimizers),
          device_(std::move(device)) {}

    int64_t n_models() const override { return engine_.n_models(); }
    void plan_model(int64_t k, const EpochPlan& plan) override { engine_.plan_model(k, plan); }
    std::vector<EpochResult> train_models(const StepCallback& on_step) override {
        return engine_.train_epoch(on_step);
    }
    std::vector<EpochResult> evaluate_models() override { return engine_.evaluate(); }
    std::vector<uint8_t> test_predictions(int64_t k) override {
        return engine_.test_predictions(k);
    }
    std::vector<float> gradients(int64_t k, const std::vector<int32_t>& ids,
                                 double* mean_loss) override {
        return engine_.gradients(k, ids, mean_loss);
    }
    double running_loss(int64_t k, int64_t n_samples) override {
        return engine_.running_loss(k, n_samples);
    }
    std::vector<float> params(int64_t k) override { return engine_.params(k); }
    void set_params(int64_t k, const std::vector<float>& params) override {
        engine_.set_params(k, params);
    }
    OptimizerState optimizer_state(int64_t k) override { return engine_.optimizer_state(k); }
    void set_optimizer_state(int64_t k, const OptimizerState& state) override {
        engine_.set_optimizer_state(k, state);
    }
    const ModelShape& shape() const override { return engine_.shape(); }
    int64_t n_train() const override { return engine_.n_train(); }
    int64_t n_test() const override { return engine_.n_test(); }
    int64_t steps_per_epoch() const override { return engine_.steps_per_epoch(); }
    int64_t batch_size() const override { return engine_.batch_size(); }
    std::string device_name() const override { return device_; }
    int64_t train_graph_nodes() const override { return engine_.train_graph_nodes(); }
    void synchronize() override { backend_->synchronize(); }
    double time_seconds(const std::function<void()>& work) override {
        return backend_->time_seconds(work);
    }

private:
    std::unique_ptr<Backend> backend_;
    Engine<Backend> engine_;
    std::string device_;
};

}  // namespace mlp
