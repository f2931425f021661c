// Backend-independent face of a batch of models that train together
// (host/train/batched_engine.hpp): the sweep holds a BatchedTrainer and never
// sees which backend runs it. Model k is addressed by its index in the batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/config/optimizer.hpp"
#include "host/data/dataset.hpp"
#include "host/model/model.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

class BatchedTrainer {
public:
    virtual ~BatchedTrainer() = default;

    virtual int64_t n_models() const = 0;
    // Model k trains in the next train_epoch() as `plan` says.
    virtual void plan_model(int64_t k, const EpochPlan& plan) = 0;
    // One epoch of the planned models; the others keep their state and get an empty result.
    virtual std::vector<EpochResult> train_epoch() = 0;
    // The test pass of every model.
    virtual std::vector<EpochResult> evaluate() = 0;

    virtual std::vector<float> params(int64_t k) = 0;
    virtual void set_params(int64_t k, const std::vector<float>& params) = 0;
    virtual OptimizerState optimizer_state(int64_t k) = 0;
    virtual void set_optimizer_state(int64_t k, const OptimizerState& state) = 0;

    virtual const ModelShape& shape() const = 0;
    virtual int64_t n_train() const = 0;
    virtual int64_t steps_per_epoch() const = 0;
    virtual std::string device_name() const = 0;
    // Launches recorded for one epoch of all the models (0 where no epoch was recorded).
    virtual int64_t train_graph_nodes() const = 0;
    virtual double time_seconds(const std::function<void()>& work) = 0;
};

// One model per entry of `optimizers` (all of one kind), the rest of `options` shared; the
// CPU one spreads the models over `options.cpu_threads` threads (0: one per core), each
// model's GEMMs single-threaded.
std::unique_ptr<BatchedTrainer> make_cpu_batched_trainer(
    const ModelShape& shape, const Dataset& data, const TrainerOptions& options,
    const std::vector<OptimizerConfig>& optimizers);

// Defined by the CUDA backend (cuda/cuda_trainer.cu); host/device/no_cuda.cpp otherwise.
std::unique_ptr<BatchedTrainer> make_cuda_batched_trainer(
    const ModelShape& shape, const Dataset& data, const TrainerOptions& options,
    const std::vector<OptimizerConfig>& optimizers, int device_index,
    const std::string& device_name);

// Adapts a BatchedEngine<Backend> to the interface; the backend lives as long as the trainer.
template <class Backend, template <class> class EngineT>
class BatchedBackendTrainer final : public BatchedTrainer {
public:
    BatchedBackendTrainer(std::unique_ptr<Backend> backend, const ModelShape& shape,
                          const Dataset& data, const TrainerOptions& options,
                          const std::vector<OptimizerConfig>& optimizers, std::string device)
        : backend_(std::move(backend)),
          engine_(*backend_, shape, data, options, optimizers),
          device_(std::move(device)) {}

    int64_t n_models() const override { return engine_.n_models(); }
    void plan_model(int64_t k, const EpochPlan& plan) override { engine_.plan_model(k, plan); }
    std::vector<EpochResult> train_epoch() override { return engine_.train_epoch(); }
    std::vector<EpochResult> evaluate() override { return engine_.evaluate(); }
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
    int64_t steps_per_epoch() const override { return engine_.steps_per_epoch(); }
    std::string device_name() const override { return device_; }
    int64_t train_graph_nodes() const override { return engine_.train_graph_nodes(); }
    double time_seconds(const std::function<void()>& work) override {
        return backend_->time_seconds(work);
    }

private:
    std::unique_ptr<Backend> backend_;
    EngineT<Backend> engine_;
    std::string device_;
};

}  // namespace mlp
