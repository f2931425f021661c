// The training step of many models at once: the models of a sweep's group
// (same layer sizes, batch size and optimizer kind) train side by side, each
// layer's GEMM of every model in one gemm_batched call and every functor in
// one launch over all models (ops/per_model.hpp). Written once against the
// backend interface, like Engine (host/train/engine.hpp), whose step it
// repeats launch for launch; so model k of a batch is, on the CPU, bit for
// bit the model that Engine makes with model k's options, and on CUDA the
// same to float tolerance (a batched GEMM may sum in another order).
//
// Every per-model array is one buffer holding the models' slices one after
// another: parameters, gradients and optimizer state (n_params each),
// activations (capacity x width each), the epoch order and shifts, the step
// tables, the per-sample losses and predictions, the guard. The data set is
// on the device once. What differs between the models' updates (momentum,
// weight decay, Adam's betas and eps) is a device table of ModelScalars; the
// learning rate of each step is in each model's step table. The launches
// depend only on the step's position, so an epoch of all models is recorded
// once and replayed, as for one model.
//
// Each epoch, the caller plans the models that train (plan_model); the
// others sit it out with their state untouched: their guard starts stopped,
// so their updates do nothing. That is how a model that diverged, or one
// that has finished its epochs, stays put while the rest go on.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "host/base/error.hpp"
#include "host/config/optimizer.hpp"
#include "host/data/dataset.hpp"
#include "host/model/model.hpp"
#include "host/train/backend.hpp"
#include "host/train/engine.hpp"  // DeviceSplit, zeroed, the input checks, the host reductions
#include "host/train/trainer.hpp"
#include "ops/per_model.hpp"

namespace mlp {

template <class Backend>
class BatchedEngine {
    static_assert(check_backend<Backend>(), "see host/train/backend.hpp");

public:
    template <class T>
    using Buffer = typename Backend::template Buffer<T>;

    // One model per entry of `optimizers`, all of `options.optimizer.kind` (and nesterov);
    // the other fields of options are shared. The fused kernels are not batched: options
    // must ask for the generic ones.
    BatchedEngine(Backend& backend, const ModelShape& shape, const Dataset& data,
                  const TrainerOptions& options, const std::vector<OptimizerConfig>& optimizers)
        : be_(backend),
          shape_(shape),
          options_(options),
          n_models_(int64_t(optimizers.size())),
          optimizers_(optimizers) {
        if (n_models_ <= 0) throw Error("a batch of models needs at least one model");
        check_engine_inputs(shape, data, options);
        if (options.kernels != KernelPath::generic) {
            throw Error("a batch of models runs the generic kernels only");
        }
        std::vector<ModelScalars> scalars;
        for (const OptimizerConfig& o : optimizers) {
            check_optimizer_config(o);
            if (o.kind != optimizers.front().kind || o.nesterov != optimizers.front().nesterov) {
                throw Error("the models of a batch share one optimizer kind");
            }
            // The conversions Engine::update makes, so the floats are the same.
            scalars.push_back(ModelScalars{int32_t(o.momentum != 0.0), float(o.momentum),
                                           float(o.weight_decay), float(1.0 - o.beta1),
                                           float(o.beta2), float(1.0 - o.beta2), float(o.eps)});
        }
        options_.optimizer = optimizers.front();
        // Room for the most state any model keeps (SGD: momentum buffers when one model has
        // momentum); each model reads and writes only its own (optimizer_state_names).
        size_t n_state = 0;
        for (const OptimizerConfig& o : optimizers) {
            n_state = std::max(n_state, optimizer_state_names(o).size());
        }
        train_ = upload_split(be_, data.train);
        test_ = upload_split(be_, data.test);
        h_train_labels_ = data.train.labels.labels;
        h_test_labels_ = data.test.labels.labels;
        image_rows_ = int(data.train.images.n_rows);
        image_cols_ = int(data.train.images.n_cols);

        const int64_t n_params = shape.n_params();
        params_ = be_.template alloc<float>(n_models_ * n_params);
        grads_ = be_.template alloc<float>(n_models_ * n_params);
        for (size_t s = 0; s < n_state; ++s) {
            opt_state_.push_back(zeroed<float>(be_, n_models_ * n_params));
        }
        steps_done_.assign(size_t(n_models_), 0);
        n_steps_ = ceil_div(train_.n, options.batch_size);
        // A model that never trains still has its table read (its results discarded).
        step_table_ = zeroed<OptimizerStep>(be_, n_models_ * n_steps_);
        step_grad_sq_ = be_.template alloc<float>(n_models_ * n_steps_);
        step_status_ = be_.template alloc<int8_t>(n_models_ * n_steps_);
        grad_sq_parts_ = be_.template alloc<float>(n_models_ * k_norm_parts);
        guard_ = be_.template alloc<int32_t>(2 * n_models_);
        stop_ = be_.template alloc<int8_t>(n_models_);
        scalars_ = be_.template alloc<ModelScalars>(n_models_);
        be_.copy_to_device(scalars_.data(), scalars.data(), n_models_);

        capacity_ = std::max<int64_t>(options.batch_size, options.eval_batch_size);
        for (int64_t width : shape.sizes()) {
            act_stride_.push_back(capacity_ * width);
            act_.push_back(be_.template alloc<float>(n_models_ * capacity_ * width));
        }
        scratch_stride_ = capacity_ * shape.max_width();
        for (auto& s : scratch_) s = be_.template alloc<float>(n_models_ * scratch_stride_);

        // Every model starts with the identity order, so a model that sits out an epoch
        // before its first plan still gathers valid samples.
        train_perm_ = be_.template alloc<int32_t>(n_models_ * train_.n);
        train_shifts_ = zeroed<int8_t>(be_, n_models_ * 2 * train_.n);
        std::vector<int32_t> identity(size_t(train_.n));
        std::iota(identity.begin(), identity.end(), 0);
        for (int64_t k = 0; k < n_models_; ++k) {
            be_.copy_to_device(train_perm_.data() + k * train_.n, identity.data(), train_.n);
        }
        test_perm_ = be_.template alloc<int32_t>(test_.n);  // one identity for every model
        identity.resize(size_t(test_.n));
        std::iota(identity.begin(), identity.end(), 0);
        be_.copy_to_device(test_perm_.data(), identity.data(), test_.n);

        n_max_ = std::max(train_.n, test_.n);
        sample_loss_ = be_.template alloc<float>(n_models_ * n_max_);
        sample_pred_ = be_.template alloc<uint8_t>(n_models_ * n_max_);
        be_.set_precision(options.precision);
        reserve_gemm_operands();
        planned_.assign(size_t(n_models_), false);
    }

    const ModelShape& shape() const { return shape_; }
    int64_t n_models() const { return n_models_; }
    int64_t n_train() const { return train_.n; }
    int64_t n_test() const { return test_.n; }
    int64_t steps_per_epoch() const { return n_steps_; }
    // Launches recorded for the last epoch trained with a graph; 0 if none was recorded.
    int64_t train_graph_nodes() const { return train_graph_.n_nodes(last_train_key_); }

    void set_params(int64_t k, const std::vector<float>& h_params) {
        check_model(k);
        check_param_count(int64_t(h_params.size()));
        be_.copy_to_device(params_.data() + k * shape_.n_params(), h_params.data(),
                           shape_.n_params());
    }
    std::vector<float> params(int64_t k) {
        check_model(k);
        std::vector<float> h(size_t(shape_.n_params()));
        be_.copy_to_host(h.data(), params_.data() + k * shape_.n_params(), shape_.n_params());
        return h;
    }

    OptimizerState optimizer_state(int64_t k) {
        check_model(k);
        OptimizerState state;
        state.step = steps_done_[size_t(k)];
        for (size_t s = 0; s < n_state(k); ++s) {
            state.buffers.emplace_back(size_t(shape_.n_params()));
            be_.copy_to_host(state.buffers.back().data(),
                             opt_state_[s].data() + k * shape_.n_params(), shape_.n_params());
        }
        return state;
    }
    void set_optimizer_state(int64_t k, const OptimizerState& state) {
        check_model(k);
        if (state.buffers.size() != n_state(k)) {
            throw Error("optimizer state has " + std::to_string(state.buffers.size()) +
                        " buffers, " + to_string(options_.optimizer.kind) + " here keeps " +
                        std::to_string(n_state(k)));
        }
        if (state.step < 0) throw Error("optimizer step count is negative");
        for (size_t s = 0; s < n_state(k); ++s) {
            check_param_count(int64_t(state.buffers[s].size()));
            be_.copy_to_device(opt_state_[s].data() + k * shape_.n_params(),
                               state.buffers[s].data(), shape_.n_params());
        }
        steps_done_[size_t(k)] = state.step;
    }

    // Model k trains in the next train_epoch() as `plan` says (its order, learning rates
    // and shifts). Either every planned model of an epoch has shifts or none has.
    void plan_model(int64_t k, const EpochPlan& plan) {
        check_model(k);
        check_epoch_plan(plan, train_.n, n_steps_);
        const bool augment = !plan.shifts.empty();
        if (n_planned_ > 0 && augment != augment_) {
            throw Error("the models of a batch either all shift their images or none does");
        }
        augment_ = augment;
        be_.copy_to_device(train_perm_.data() + k * train_.n, plan.perm.data(), train_.n);
        if (augment) {
            be_.copy_to_device(train_shifts_.data() + k * 2 * train_.n, plan.shifts.data(),
                               2 * train_.n);
        }
        const std::vector<OptimizerStep> table =
            optimizer_steps(optimizers_[size_t(k)], plan.lr, steps_done_[size_t(k)]);
        be_.copy_to_device(step_table_.data() + k * n_steps_, table.data(), n_steps_);
        n_planned_ += !planned_[size_t(k)];
        planned_[size_t(k)] = true;
    }

    // One epoch of every planned model, the optimizers carrying on from their state; the
    // others are left as they were and get an empty result (n_samples 0). Afterwards no
    // model is planned.
    std::vector<EpochResult> train_epoch() {
        if (n_planned_ == 0) throw Error("no model of the batch was planned for this epoch");
        std::vector<int32_t> guard_start(size_t(2 * n_models_));
        std::vector<int8_t> stop(static_cast<size_t>(n_models_));
        for (int64_t k = 0; k < n_models_; ++k) {
            const bool on = planned_[size_t(k)];
            // A model that sits out starts with a stopped guard: first bad step 0, stop set.
            guard_start[size_t(2 * k)] = on ? -1 : 0;
            guard_start[size_t(2 * k + 1)] = 0;
            stop[size_t(k)] = !on || options_.on_nan == NanPolicy::stop;
        }
        be_.copy_to_device(guard_.data(), guard_start.data(), 2 * n_models_);
        be_.copy_to_device(stop_.data(), stop.data(), n_models_);
        const int64_t batch = options_.batch_size;
        auto steps = [&] {
            for (int64_t step = 0; step < n_steps_; ++step) {
                const int64_t first = step * batch;
                train_step(step, first, std::min(batch, train_.n - first), augment_);
            }
        };
        if (options_.use_graph) {
            last_train_key_ = augment_ ? 1 : 0;
            be_.run_graph(train_graph_, last_train_key_, steps);
        } else {
            steps();
        }
        std::vector<int8_t> status(size_t(n_models_ * n_steps_));
        be_.copy_to_host(status.data(), step_status_.data(), n_models_ * n_steps_);
        std::vector<float> grad_sq(size_t(n_models_ * n_steps_));
        be_.copy_to_host(grad_sq.data(), step_grad_sq_.data(), n_models_ * n_steps_);
        std::vector<int32_t> perm(size_t(train_.n));
        std::vector<EpochResult> results(static_cast<size_t>(n_models_));
        for (int64_t k = 0; k < n_models_; ++k) {
            if (!planned_[size_t(k)]) continue;
            steps_done_[size_t(k)] += n_steps_;
            const int8_t* s = status.data() + k * n_steps_;
            be_.copy_to_host(perm.data(), train_perm_.data() + k * train_.n, train_.n);
            EpochResult& r = results[size_t(k)];
            r = reduce(k, train_.n, perm.data(), h_train_labels_, s);
            r.grad_norm = mean_grad_norm(s, grad_sq.data() + k * n_steps_, n_steps_);
            for (int64_t j = 0; j < n_steps_; ++j) {
                if (s[j] == step_ok) continue;
                ++r.skipped_steps;
                if (r.first_bad_step < 0) r.first_bad_step = j;
            }
        }
        planned_.assign(size_t(n_models_), false);
        n_planned_ = 0;
        return results;
    }

    // Mean loss and accuracy over the test set of every model.
    std::vector<EpochResult> evaluate() {
        const int64_t batch = options_.eval_batch_size;
        const int64_t n_steps = ceil_div(test_.n, batch);
        auto passes = [&] {
            for (int64_t step = 0; step < n_steps; ++step) {
                const int64_t first = step * batch;
                eval_step(first, std::min(batch, test_.n - first));
            }
        };
        if (options_.use_graph) {
            be_.run_graph(eval_graph_, n_steps, passes);
        } else {
            passes();
        }
        std::vector<EpochResult> results;
        for (int64_t k = 0; k < n_models_; ++k) {
            results.push_back(reduce(k, test_.n, nullptr, h_test_labels_, nullptr));
        }
        return results;
    }

private:
    // Buffers model k's optimizer keeps, the first of opt_state_.
    size_t n_state(int64_t k) const { return optimizer_state_names(optimizers_[size_t(k)]).size(); }

    void check_model(int64_t k) const {
        if (k < 0 || k >= n_models_) {
            throw Error("model " + std::to_string(k) + " is not in this batch of " +
                        std::to_string(n_models_));
        }
    }
    void check_param_count(int64_t n) const { mlp::check_param_count(shape_, n); }

    // Every model's operands, one strided span each (for a backend that casts them): A is
    // a weight matrix or a layer's input, B a layer's input or an output gradient, each at
    // most capacity_ samples of the widest layer, inputs included (act_[0] is the forward's
    // first B and the first weight gradient's A).
    void reserve_gemm_operands() {
        int64_t widest = 0;
        for (int64_t width : shape_.sizes()) widest = std::max(widest, width);
        const int64_t n_act = capacity_ * widest;
        be_.reserve_gemm_operands(n_models_ * std::max(shape_.n_params(), n_act),
                                  n_models_ * n_act);
    }

    float* weight(int l) { return params_.data() + shape_.weight_offset(l); }
    float* bias(int l) { return params_.data() + shape_.bias_offset(l); }

    // Engine::forward for every model.
    void forward(const DeviceSplit<Backend>& split, const int32_t* perm, int64_t perm_stride,
                 int64_t first, int64_t n_batch, const int8_t* shifts) {
        const int64_t n_in = shape_.n_inputs(), n_params = shape_.n_params();
        be_.for_each_2d(n_models_ * n_batch, n_in,
                        GatherModels{GatherFunctor{act_[0].data(), split.images.data(), perm, first,
                                                   n_in, shifts, image_rows_, image_cols_},
                                     n_batch, act_stride_[0], perm_stride, 2 * train_.n});
        for (int l = 0; l < shape_.n_layers(); ++l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            float* z = act_[size_t(l) + 1].data();
            const int64_t z_stride = act_stride_[size_t(l) + 1];
            be_.gemm_batched(Trans::T, Trans::N, out, n_batch, in, weight(l), in, n_params,
                             act_[size_t(l)].data(), in, act_stride_[size_t(l)], z, out, z_stride,
                             n_models_);
            const bool relu = l + 1 < shape_.n_layers();
            be_.for_each_2d(
                n_models_ * n_batch, out,
                BiasActModels{BiasActFunctor{z, bias(l), out, relu}, n_batch, z_stride, n_params});
        }
    }

    // Engine::train_step for every model.
    void train_step(int64_t step, int64_t first, int64_t n_batch, bool augment) {
        compute_gradients(first, n_batch, augment ? train_shifts_.data() : nullptr);
        const int64_t n_params = shape_.n_params();
        be_.for_each_2d(
            n_models_, k_norm_parts,
            SquaredNormPartsModels{SquaredNormPartsFunctor{grad_sq_parts_.data(), grads_.data(),
                                                           n_params, k_norm_parts},
                                   n_params});
        be_.for_each_2d(n_models_, 1,
                        SumPartsModels{SumPartsFunctor{step_grad_sq_.data() + step,
                                                       grad_sq_parts_.data(), k_norm_parts},
                                       n_steps_});
        be_.for_each_2d(
            n_models_, 1,
            StepGuardModels{StepGuardFunctor{guard_.data(), step_status_.data() + step,
                                             sample_loss_.data() + first, n_batch,
                                             step_grad_sq_.data() + step, int32_t(step), true},
                            stop_.data(), n_steps_, n_max_, n_steps_});
        update(step_table_.data() + step);
    }

    void update(const OptimizerStep* step) {
        const OptimizerConfig& o = options_.optimizer;
        const int64_t n = shape_.n_params();
        const int32_t* skip = guard_.data() + 1;
        if (o.kind == OptimizerKind::sgd) {
            float* momentum = opt_state_.empty() ? nullptr : opt_state_[0].data();
            be_.for_each_2d(
                n_models_, n,
                SgdUpdateModels{SgdUpdateFunctor{params_.data(), grads_.data(), lr_address(step),
                                                 skip, momentum, 0.0f, 0.0f, o.nesterov},
                                step, scalars_.data(), n, n_steps_});
        } else {
            be_.for_each_2d(
                n_models_, n,
                AdamUpdateModels{
                    AdamUpdateFunctor{params_.data(), grads_.data(), opt_state_[0].data(),
                                      opt_state_[1].data(), step, skip, 0.0f, 0.0f, 0.0f, 0.0f,
                                      0.0f, o.kind == OptimizerKind::adamw},
                    scalars_.data(), n, n_steps_});
        }
    }

    // Engine::compute_gradients for every model.
    void compute_gradients(int64_t first, int64_t n_batch, const int8_t* shifts) {
        forward(train_, train_perm_.data(), train_.n, first, n_batch, shifts);
        const int n_layers = shape_.n_layers();
        const int64_t n_params = shape_.n_params();
        be_.for_each_2d(
            n_models_, n_batch,
            SoftmaxXentModels{
                SoftmaxXentFunctor{act_.back().data(), sample_loss_.data(), sample_pred_.data(),
                                   train_.labels.data(), train_perm_.data(), first,
                                   shape_.n_classes(), 1.0f / float(n_batch)},
                act_stride_.back(), n_max_, train_.n});
        const float* grad_z = act_.back().data();
        int64_t grad_z_stride = act_stride_.back();
        for (int l = n_layers - 1; l >= 0; --l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            const float* input = act_[size_t(l)].data();
            const int64_t input_stride = act_stride_[size_t(l)];
            be_.gemm_batched(Trans::N, Trans::T, in, out, n_batch, input, in, input_stride, grad_z,
                             out, grad_z_stride, grads_.data() + shape_.weight_offset(l), in,
                             n_params, n_models_);
            be_.for_each_2d(n_models_, out,
                            BiasGradModels{BiasGradFunctor{grads_.data() + shape_.bias_offset(l),
                                                           grad_z, out, n_batch},
                                           n_params, grad_z_stride});
            if (l == 0) break;
            float* grad_in = scratch_[size_t(l) % 2].data();
            be_.gemm_batched(Trans::N, Trans::N, in, n_batch, out, weight(l), in, n_params, grad_z,
                             out, grad_z_stride, grad_in, in, scratch_stride_, n_models_);
            be_.for_each_2d(n_models_, n_batch * in,
                            ReluBackwardModels{ReluBackwardFunctor{grad_in, input}, scratch_stride_,
                                               input_stride});
            grad_z = grad_in;
            grad_z_stride = scratch_stride_;
        }
    }

    void eval_step(int64_t first, int64_t n_batch) {
        forward(test_, test_perm_.data(), 0, first, n_batch, nullptr);
        be_.for_each_2d(n_models_, n_batch,
                        SoftmaxXentModels{
                            SoftmaxXentFunctor{act_.back().data(), sample_loss_.data(),
                                               sample_pred_.data(), test_.labels.data(),
                                               test_perm_.data(), first, shape_.n_classes(), 0.0f},
                            act_stride_.back(), n_max_, 0});
    }

    // Engine::reduce for model k: its slice of the per-sample figures (reduce_samples).
    EpochResult reduce(int64_t k, int64_t n, const int32_t* perm,
                       const std::vector<uint8_t>& labels, const int8_t* status) {
        std::vector<float> loss(static_cast<size_t>(n));
        std::vector<uint8_t> pred(static_cast<size_t>(n));
        be_.copy_to_host(loss.data(), sample_loss_.data() + k * n_max_, n);
        be_.copy_to_host(pred.data(), sample_pred_.data() + k * n_max_, n);
        return reduce_samples(loss.data(), pred.data(), n, perm, labels, status,
                              options_.batch_size);
    }

    // Engine's chunking of the gradient-norm pass, so the norms are the same.
    static constexpr int64_t k_norm_parts = 256;

    Backend& be_;
    ModelShape shape_;
    TrainerOptions options_;
    int64_t n_models_ = 0;
    std::vector<OptimizerConfig> optimizers_;  // one per model
    DeviceSplit<Backend> train_, test_;
    std::vector<uint8_t> h_train_labels_, h_test_labels_;
    int image_rows_ = 0, image_cols_ = 0;
    Buffer<float> params_, grads_;          // [n_models * n_params]
    std::vector<Buffer<float>> opt_state_;  // optimizer_state_names() order, same layout
    std::vector<int64_t> steps_done_;       // per model: Adam's t before this epoch
    int64_t n_steps_ = 0;
    Buffer<OptimizerStep> step_table_;  // [n_models * n_steps]
    Buffer<float> step_grad_sq_;        // [n_models * n_steps]
    Buffer<int8_t> step_status_;        // [n_models * n_steps]
    Buffer<float> grad_sq_parts_;       // [n_models * k_norm_parts]
    Buffer<int32_t> guard_;             // [2 * n_models]
    Buffer<int8_t> stop_;               // [n_models], StepGuardModels' stop flags
    Buffer<ModelScalars> scalars_;      // [n_models]
    std::vector<Buffer<float>> act_;    // [n_models * capacity * width]
    std::vector<int64_t> act_stride_;   // capacity * width
    Buffer<float> scratch_[2];          // [n_models * capacity * max width]
    int64_t scratch_stride_ = 0;
    Buffer<int32_t> train_perm_;   // [n_models * n_train]
    Buffer<int8_t> train_shifts_;  // [n_models * 2 * n_train]
    Buffer<int32_t> test_perm_;    // [n_test], the identity, shared
    Buffer<float> sample_loss_;    // [n_models * n_max]
    Buffer<uint8_t> sample_pred_;  // [n_models * n_max]
    int64_t n_max_ = 0;
    int64_t capacity_ = 0;
    std::vector<bool> planned_;
    int64_t n_planned_ = 0;
    bool augment_ = false;
    typename Backend::Graph train_graph_, eval_graph_;
    int64_t last_train_key_ = 0;
};

}  // namespace mlp
