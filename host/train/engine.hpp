// The training step, written once against the backend interface (host/train/backend.hpp),
// instantiated for the CPU and the CUDA backend, over a batch of n >= 1 models of one shape:
// one model is a batch of one. docs/ARCHITECTURE.md draws how a step flows.
//
// Activations are sample-contiguous (column-major "features x batch", the notebook's layout):
// act[0] is the gathered input, act[l + 1] layer l's output (act(Z) in place, ReLU or another
// activation of ops/activation.hpp; the logits, then their gradient, for the last). Every per-model
// array is one buffer of the models' slices; parameters, gradients and optimizer state are flat
// (host/model/model.hpp), model_stride() values per model. Each layer's GEMM of every model is one
// gemm_batched call and each functor one launch over all models through the views of
// ops/per_model.hpp, which call the functor unchanged on model k's slice: on the CPU model k of a
// batch is bit for bit the model alone.
//
// An epoch is a fixed sequence of steps whose launch arguments depend only on the step's
// position; what changes between epochs (order, shifts, each model's table of per-step
// OptimizerStep) is rewritten in device buffers before it, so a backend records the epoch once
// (a CUDA graph) and replays it. Per-sample losses and predictions, each step's squared
// gradient norm and its status from the non-finite guard (which can skip the update, --on-nan)
// are read back once per epoch. Models not planned for an epoch sit it out untouched.
//
// Each model's order may hold any subset of the training set (cross-validation trains each fold
// on its own part of one resident data set): model k runs ceil(n_k / batch) steps, the last one
// of n_k mod batch samples when that is not 0, exactly the steps it runs alone on its subset.
// An epoch has the longest order's step count; a step where the models take different sample
// counts (the last steps of the shorter orders) launches once per group of consecutive models
// with one count (append_step_groups), and a model whose order has ended takes no part. Every
// launch thus sees model k's shapes as they are when it trains alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "host/base/error.hpp"
#include "host/config/optimizer.hpp"
#include "host/data/dataset.hpp"
#include "host/model/model.hpp"
#include "host/train/backend.hpp"
#include "host/train/engine_host.hpp"  // the input checks and the host reductions
#include "host/train/trainer.hpp"
#include "ops/per_model.hpp"

namespace mlp {

template <class Backend>
class Engine {
    static_assert(check_backend<Backend>(), "see host/train/backend.hpp");

public:
    template <class T>
    using Buffer = typename Backend::template Buffer<T>;

    // One model per entry of `optimizers`, all of one kind (those with momentum: all Nesterov or
    // none); empty: one model of options.optimizer. The other fields of options are shared.
    Engine(Backend& backend, const ModelShape& shape, const Dataset& data,
           const TrainerOptions& options, const std::vector<OptimizerConfig>& optimizers = {})
        : be_(backend),
          shape_(shape),
          options_(options),
          optimizers_(optimizers.empty() ? std::vector<OptimizerConfig>{options.optimizer}
                                         : optimizers),
          n_models_(int64_t(optimizers_.size())) {
        check_engine_inputs(shape, data, options);
        std::vector<ModelScalars> scalars;
        // Nesterov's rule is one flag of the update for the batch; a model without momentum
        // runs plain SGD whatever the flag, so only the models with momentum must agree.
        int64_t with_momentum = -1;
        for (const OptimizerConfig& o : optimizers_) {
            check_optimizer_config(o);
            if (o.kind != optimizers_.front().kind) {
                throw Error("the models of a batch share one optimizer kind");
            }
            if (o.momentum != 0.0 && with_momentum >= 0 &&
                o.nesterov != optimizers_[size_t(with_momentum)].nesterov) {
                throw Error("the models of a batch with momentum share Nesterov's rule or not");
            }
            if (o.momentum != 0.0 && with_momentum < 0) with_momentum = &o - optimizers_.data();
            scalars.push_back(ModelScalars{int32_t(o.momentum != 0.0), float(o.momentum),
                                           float(o.weight_decay), float(1.0 - o.beta1),
                                           float(o.beta2), float(1.0 - o.beta2), float(o.eps),
                                           float(o.l2_penalty)});
            l2_ = l2_ || o.l2_penalty != 0.0;
        }
        options_.optimizer = optimizers_.front();
        if (with_momentum >= 0) {
            options_.optimizer.nesterov = optimizers_[size_t(with_momentum)].nesterov;
        }
        // Room for the most state any model keeps (SGD: momentum buffers when one model has
        // momentum); each model reads and writes only its own (optimizer_state_names).
        size_t n_state = 0;
        for (const OptimizerConfig& o : optimizers_)
            n_state = std::max(n_state, optimizer_state_names(o).size());
        train_ = upload_split(be_, data.train);
        test_ = upload_split(be_, data.test);
        h_train_labels_ = data.train.labels.labels;
        h_test_labels_ = data.test.labels.labels;
        image_rows_ = int(data.train.images.n_rows);
        image_cols_ = int(data.train.images.n_cols);

        stride_ = model_stride(shape);
        params_ = be_.template alloc<float>(n_models_ * stride_);
        grads_ = zeroed<float>(be_, n_models_ * stride_);
        for (size_t s = 0; s < n_state; ++s) {
            opt_state_.push_back(zeroed<float>(be_, n_models_ * stride_));
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
        // Each layer's own input gradient: a weight gradient that the fused path runs on a
        // side branch then never races the next layer's writes.
        for (int l = 0; l < shape.n_layers(); ++l) {
            grad_act_.push_back(
                be_.template alloc<float>(l == 0 ? 0 : n_models_ * capacity_ * shape.n_in(l)));
        }

        // Every model starts with the identity order, so a model that sits out an epoch
        // before its first plan still gathers valid samples.
        std::vector<int32_t> identity(size_t(train_.n));
        std::iota(identity.begin(), identity.end(), 0);
        train_perm_ = be_.template alloc<int32_t>(n_models_ * train_.n);
        for (int64_t k = 0; k < n_models_; ++k) {
            be_.copy_to_device(train_perm_.data() + k * train_.n, identity.data(), train_.n);
        }
        h_perm_.assign(size_t(n_models_), identity);
        n_samples_.assign(size_t(n_models_), train_.n);
        group_keys_[n_samples_] = 0;  // whole orders: keys 0 and 1, as before subsets existed
        train_shifts_ = zeroed<int8_t>(be_, n_models_ * 2 * train_.n);
        test_perm_ = be_.template alloc<int32_t>(test_.n);  // one identity for every model
        identity.resize(size_t(test_.n));
        std::iota(identity.begin(), identity.end(), 0);
        be_.copy_to_device(test_perm_.data(), identity.data(), test_.n);

        n_max_ = std::max(train_.n, test_.n);
        sample_loss_ = be_.template alloc<float>(n_models_ * n_max_);
        sample_pred_ = be_.template alloc<uint8_t>(n_models_ * n_max_);
        be_.set_precision(options.precision);
        reserve_gemm_operands();
        be_.reserve_batch(n_models_);
        if (options.kernels == KernelPath::fused) alloc_fused();
        planned_.assign(size_t(n_models_), false);
        n_run_ = n_models_;
    }

    const ModelShape& shape() const { return shape_; }
    int64_t n_models() const { return n_models_; }
    int64_t n_train() const { return train_.n; }
    int64_t n_test() const { return test_.n; }
    int64_t steps_per_epoch() const { return n_steps_; }
    int64_t batch_size() const { return options_.batch_size; }
    // The recorded epochs (key 2 g + 1: with shifts, 2 g: without, g numbering the orders'
    // lengths in the order they first trained, 0 for whole orders), and the launches recorded
    // for the last epoch trained with a graph (0 if none was recorded).
    const typename Backend::Graph& train_graph() const { return train_graph_; }
    int64_t train_graph_nodes() const { return train_graph_.n_nodes(last_train_key_); }

    void set_params(int64_t k, const std::vector<float>& h_params) {
        check_model(k);
        check_param_count(shape_, int64_t(h_params.size()));
        be_.copy_to_device(params_.data() + k * stride_, h_params.data(), shape_.n_params());
    }
    std::vector<float> params(int64_t k) {
        return read(params_, k * stride_, shape_.n_params(), k);
    }

    OptimizerState optimizer_state(int64_t k) {
        check_model(k);
        OptimizerState state;
        state.step = steps_done_[size_t(k)];
        for (size_t s = 0; s < n_state(k); ++s) {
            state.buffers.push_back(read(opt_state_[s], k * stride_, shape_.n_params(), k));
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
            check_param_count(shape_, int64_t(state.buffers[s].size()));
            be_.copy_to_device(opt_state_[s].data() + k * stride_, state.buffers[s].data(),
                               shape_.n_params());
        }
        steps_done_[size_t(k)] = state.step;
    }

    // Model k trains in the next train_epoch() as `plan` says (its order of a subset of the
    // training set, learning rates and shifts). Either every planned model of an epoch has
    // shifts or none has.
    void plan_model(int64_t k, const EpochPlan& plan) {
        check_model(k);
        check_epoch_plan(plan, train_.n, options_.batch_size);
        const bool augment = !plan.shifts.empty();
        if (n_planned_ > 0 && augment != augment_) {
            throw Error("the models of a batch either all shift their images or none does");
        }
        augment_ = augment;
        const int64_t n = int64_t(plan.perm.size());
        be_.copy_to_device(train_perm_.data() + k * train_.n, plan.perm.data(), n);
        h_perm_[size_t(k)] = plan.perm;
        n_samples_[size_t(k)] = n;
        if (augment) {
            be_.copy_to_device(train_shifts_.data() + k * 2 * train_.n, plan.shifts.data(), 2 * n);
        }
        const std::vector<OptimizerStep> table =
            optimizer_steps(optimizers_[size_t(k)], plan.lr, steps_done_[size_t(k)]);
        be_.copy_to_device(step_table_.data() + k * n_steps_, table.data(), int64_t(table.size()));
        n_planned_ += !planned_[size_t(k)];
        planned_[size_t(k)] = true;
    }

    // One epoch of every planned model, the optimizers carrying on from their state; the
    // others are left as they were and get an empty result (n_samples 0). on_step is called
    // between steps where they run one by one (no graph). Afterwards no model is planned.
    std::vector<EpochResult> train_epoch(const StepCallback& on_step = {}) {
        if (n_planned_ == 0) throw Error("no model of the batch was planned for this epoch");
        std::vector<int32_t> guard_start(size_t(2 * n_models_));
        std::vector<int8_t> stop(static_cast<size_t>(n_models_));
        for (int64_t k = 0; k < n_models_; ++k) {
            const bool on = planned_[size_t(k)];
            // A model that sits out starts with a stopped guard: first bad step 0, stop set.
            guard_start[size_t(2 * k)] = on ? -1 : 0;
            stop[size_t(k)] = !on || options_.on_nan == NanPolicy::stop;
        }
        be_.copy_to_device(guard_.data(), guard_start.data(), 2 * n_models_);
        be_.copy_to_device(stop_.data(), stop.data(), n_models_);
        const std::vector<bool> planned =
            std::exchange(planned_, std::vector<bool>(size_t(n_models_)));
        n_planned_ = 0;
        const int64_t batch = options_.batch_size;
        // Models that sit out keep their last order's length, so that finishing models leave
        // the launches (and a recorded graph) as they were.
        const int64_t n_steps =
            ceil_div(*std::max_element(n_samples_.begin(), n_samples_.end()), batch);
        // The launches of every step, worked out once: step s's are groups[begin[s],
        // begin[s + 1]).
        std::vector<StepGroup> groups;
        std::vector<size_t> begin{0};
        for (int64_t step = 0; step < n_steps; ++step) {
            append_step_groups(groups, n_samples_, step * batch, batch);
            begin.push_back(groups.size());
        }
        auto steps = [&](bool report) {
            for (int64_t step = 0; step < n_steps; ++step) {
                const int64_t first = step * batch;
                for (size_t i = begin[size_t(step)]; i < begin[size_t(step) + 1]; ++i) {
                    const StepGroup& g = groups[i];
                    run_models(g.k0, g.n_models, [&] { train_step(step, first, g.n_batch); });
                }
                if (report && on_step) on_step(step + 1, n_steps);
            }
        };
        if (options_.use_graph) {
            // The gather's arguments differ with and without shifts, and the launches with
            // the orders' lengths: either change records the epoch afresh.
            const auto key = group_keys_.emplace(n_samples_, int64_t(group_keys_.size())).first;
            last_train_key_ = 2 * key->second + (augment_ ? 1 : 0);
            const int8_t* shifts = augment_ ? train_shifts_.data() : nullptr;
            if (train_graph_.n_nodes(last_train_key_) == 0) {
                warm_up(train_.n, batch,
                        [&](int64_t f, int64_t n) { compute_gradients(f, n, shifts); });
                // Each launch shape of the steps where the orders' lengths part the models:
                // cuBLASLt plans are per shape and model count.
                std::vector<StepGroup> shapes;
                for (const StepGroup& g : groups) {
                    if (g.n_models == n_models_ &&
                        (g.n_batch == batch || g.n_batch == train_.n % batch)) {
                        continue;  // the warm-up's shapes
                    }
                    if (std::find(shapes.begin(), shapes.end(), g) == shapes.end()) {
                        shapes.push_back(g);
                    }
                }
                for (const StepGroup& g : shapes) {
                    run_models(g.k0, g.n_models, [&] { compute_gradients(0, g.n_batch, shifts); });
                }
            }
            be_.run_graph(train_graph_, last_train_key_, [&] { steps(false); });
        } else {
            steps(true);
        }
        std::vector<int8_t> status(size_t(n_models_ * n_steps_));
        be_.copy_to_host(status.data(), step_status_.data(), n_models_ * n_steps_);
        std::vector<float> grad_sq(size_t(n_models_ * n_steps_));
        be_.copy_to_host(grad_sq.data(), step_grad_sq_.data(), n_models_ * n_steps_);
        std::vector<EpochResult> results(static_cast<size_t>(n_models_));
        for (int64_t k = 0; k < n_models_; ++k) {
            if (!planned[size_t(k)]) continue;
            const int64_t n_k = n_samples_[size_t(k)], steps_k = ceil_div(n_k, batch);
            steps_done_[size_t(k)] += steps_k;
            const int8_t* s = status.data() + k * n_steps_;
            EpochResult& r = results[size_t(k)];
            r = reduce(k, n_k, h_perm_[size_t(k)].data(), h_train_labels_, s);
            r.grad_norm = mean_grad_norm(s, grad_sq.data() + k * n_steps_, steps_k);
            for (int64_t j = 0; j < steps_k; ++j) {
                r.skipped_steps += s[j] != step_ok;
                if (s[j] != step_ok && r.first_bad_step < 0) r.first_bad_step = j;
            }
        }
        return results;
    }

    // Mean loss and accuracy over the test set of every model, in batches of eval_batch_size.
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
            if (eval_graph_.n_nodes(n_steps) == 0) {
                warm_up(test_.n, batch, [&](int64_t f, int64_t n) { eval_step(f, n); });
            }
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

    // Predicted class of every test sample by model k, from the last evaluate().
    std::vector<uint8_t> test_predictions(int64_t k) {
        return read(sample_pred_, k * n_max_, test_.n, k);
    }

    // Gradient of model k's mean loss over the training samples `ids` (at most one batch)
    // with respect to every parameter; no parameter changes. Model k's epoch order is
    // overwritten (its next plan_model sets it again).
    std::vector<float> gradients(int64_t k, const std::vector<int32_t>& ids, double* mean_loss) {
        check_model(k);
        const int64_t n = int64_t(ids.size());
        if (n <= 0 || n > capacity_ || n > train_.n) {
            throw Error("gradient batch must hold 1.." + std::to_string(capacity_) + " samples");
        }
        be_.copy_to_device(train_perm_.data() + k * train_.n, ids.data(), n);
        h_perm_[size_t(k)] = ids;
        n_samples_[size_t(k)] = n;
        run_models(k, 1, [&] { compute_gradients(0, n, nullptr); });
        if (mean_loss) *mean_loss = running_loss(k, n);
        return read(grads_, k * stride_, shape_.n_params(), k);
    }

    // Mean loss of model k over the first n_samples of the running epoch.
    double running_loss(int64_t k, int64_t n_samples) {
        const int64_t n = std::min(n_samples, train_.n);
        const std::vector<float> loss = read(sample_loss_, k * n_max_, n, k);
        return n > 0 ? std::accumulate(loss.begin(), loss.end(), 0.0) / double(n) : 0.0;
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

    // Runs `launch` with models [k0, k0 + n) as the ones the step's launches cover.
    template <class Launch>
    void run_models(int64_t k0, int64_t n, const Launch& launch) {
        k0_ = k0;
        n_run_ = n;
        try {
            launch();
        } catch (...) {
            k0_ = 0;
            n_run_ = n_models_;
            throw;
        }
        k0_ = 0;
        n_run_ = n_models_;
    }
    // The first of the running models' slices of b, `per_model` values each (null for an
    // empty buffer, such as the first layer's input gradient).
    template <class T>
    T* at(const Buffer<T>& b, int64_t per_model) const {
        return b.data() ? b.data() + k0_ * per_model : nullptr;
    }

    // n values of model k's slice, `offset` values into b.
    template <class T>
    std::vector<T> read(const Buffer<T>& b, int64_t offset, int64_t n, int64_t k) {
        check_model(k);
        std::vector<T> h(static_cast<size_t>(n));
        be_.copy_to_host(h.data(), b.data() + offset, n);
        return h;
    }

    // A pass's first and shorter last step, run before its first recording (changing no
    // parameter): cuBLAS(Lt) loads its modules, and a failing cuBLASLt plan can fall back.
    template <class Pass>
    void warm_up(int64_t n, int64_t batch, const Pass& pass) {
        pass(0, std::min(batch, n));
        if (n > batch && n % batch != 0) pass(n - n % batch, n % batch);
    }

    // Every model's GEMM operands (for a backend that casts them), model k's k strides on: A a
    // weight matrix or a layer's input, B an input or output gradient, inputs included.
    void reserve_gemm_operands() {
        int64_t n_weights = 0, widest = 0;
        for (int l = 0; l < shape_.n_layers(); ++l) {
            n_weights = std::max(n_weights, shape_.n_in(l) * shape_.n_out(l));
        }
        for (int64_t width : shape_.sizes()) widest = std::max(widest, width);
        const int64_t n_act = capacity_ * widest;
        be_.reserve_gemm_operands(
            (n_models_ - 1) * std::max(stride_, n_act) + std::max(n_weights, n_act),
            n_models_ * n_act);
    }

    float* weight(int l) { return at(params_, stride_) + shape_.weight_offset(l); }
    float* bias(int l) { return at(params_, stride_) + shape_.bias_offset(l); }
    float* grads() { return at(grads_, stride_); }
    Strided<float> per_model(float* p) const { return {p, stride_}; }

    // Gather (shifting the images when `shifts` is set), then every layer's GEMM and
    // bias(+ReLU) epilogue; leaves the logits in act_.back(). Model k reads its order at
    // perm + k * perm_stride.
    void forward(const DeviceSplit<Backend>& split, const int32_t* perm, int64_t perm_stride,
                 int64_t first, int64_t n_batch, const int8_t* shifts) {
        const int64_t n_in = shape_.n_inputs();
        be_.for_each_2d(n_run_ * n_batch, n_in,
                        GatherModels{GatherFunctor{at(act_[0], act_stride_[0]), split.images.data(),
                                                   perm, first, n_in, shifts, image_rows_,
                                                   image_cols_, split.float_features()},
                                     n_batch, act_stride_[0], perm_stride, 2 * train_.n});
        for (int l = 0; l < shape_.n_layers(); ++l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            const Strided<float> z{at(act_[size_t(l) + 1], act_stride_[size_t(l) + 1]),
                                   act_stride_[size_t(l) + 1]};
            const Strided<float> x{at(act_[size_t(l)], act_stride_[size_t(l)]),
                                   act_stride_[size_t(l)]};
            const bool relu = l + 1 < shape_.n_layers();
            if (fused_) {
                const Strided<uint8_t> mask =
                    relu ? Strided<uint8_t>{at(relu_mask_[size_t(l)], mask_stride_[size_t(l)]),
                                            mask_stride_[size_t(l)]}
                         : Strided<uint8_t>{};
                be_.gemm_bias_act(z, mask, per_model(weight(l)), x, per_model(bias(l)), relu, out,
                                  n_batch, in, n_run_);
                continue;
            }
            be_.gemm_batched(Trans::T, Trans::N, out, n_batch, in, weight(l), in, stride_, x.data,
                             in, x.stride, z.data, out, z.stride, n_run_);
            be_.for_each_2d(
                n_run_ * n_batch, out,
                BiasActModels{BiasActFunctor{z.data, bias(l), out,
                                             relu ? options_.activation : Activation::identity},
                              n_batch, z.stride, stride_});
        }
    }

    // Step `step` of an epoch: gradients of the batch at `first`, their squared norm into
    // the step's slot and the guard, then the update with the step's entry of the tables.
    // The reductions (bias gradients, norm and guard) are the backend's on both paths: the
    // functors on the CPU, parallel kernels on CUDA (a functor sums in one thread).
    void train_step(int64_t step, int64_t first, int64_t n_batch) {
        compute_gradients(first, n_batch, augment_ ? train_shifts_.data() : nullptr);
        const int64_t parts = k_norm_parts;
        const GradNormGuardModels g{
            SquaredNormPartsModels{SquaredNormPartsFunctor{at(grad_sq_parts_, parts), grads(),
                                                           shape_.n_params(), k_norm_parts},
                                   stride_},
            SumPartsModels{SumPartsFunctor{at(step_grad_sq_, n_steps_) + step,
                                           at(grad_sq_parts_, parts), k_norm_parts},
                           n_steps_},
            StepGuardModels{
                StepGuardFunctor{at(guard_, 2), at(step_status_, n_steps_) + step,
                                 at(sample_loss_, n_max_) + first, n_batch,
                                 at(step_grad_sq_, n_steps_) + step, int32_t(step), true},
                at(stop_, 1), n_steps_, n_max_, n_steps_},
            at(params_, stride_)};
        be_.grad_norm_guard(g, n_run_);
        update(at(step_table_, n_steps_) + step, n_batch);
    }

    // One functor over every model's flat parameter slice, per optimizer; before it, the L2
    // penalty of the models that have one (scikit-learn's alpha), on the weights alone.
    void update(const OptimizerStep* step, int64_t n_batch) {
        const OptimizerConfig& o = options_.optimizer;
        if (l2_) {
            for (int l = 0; l < shape_.n_layers(); ++l) {
                const int64_t w = shape_.weight_offset(l);
                be_.for_each_2d(
                    n_run_, shape_.n_in(l) * shape_.n_out(l),
                    L2PenaltyModels{L2PenaltyFunctor{grads() + w, at(params_, stride_) + w, 0.0f},
                                    at(scalars_, 1), stride_, 1.0f / float(n_batch)});
            }
        }
        const int32_t* skip = at(guard_, 2) + 1;
        if (o.kind == OptimizerKind::sgd) {
            float* momentum = opt_state_.empty() ? nullptr : at(opt_state_[0], stride_);
            be_.for_each_2d(
                n_run_, shape_.n_params(),
                SgdUpdateModels{SgdUpdateFunctor{at(params_, stride_), grads(), lr_address(step),
                                                 skip, momentum, 0.0f, 0.0f, o.nesterov},
                                step, at(scalars_, 1), stride_, n_steps_});
        } else {
            be_.for_each_2d(
                n_run_, shape_.n_params(),
                AdamUpdateModels{
                    AdamUpdateFunctor{at(params_, stride_), grads(), at(opt_state_[0], stride_),
                                      at(opt_state_[1], stride_), step, skip, 0.0f, 0.0f, 0.0f,
                                      0.0f, 0.0f, o.kind == OptimizerKind::adamw},
                    at(scalars_, 1), stride_, n_steps_});
        }
    }

    SoftmaxXentModels loss_of(const DeviceSplit<Backend>& split, const int32_t* perm,
                              int64_t perm_stride, int64_t first, int64_t n_batch,
                              float grad_scale) {
        return SoftmaxXentModels{
            SoftmaxXentFunctor{at(act_.back(), act_stride_.back()), at(sample_loss_, n_max_),
                               at(sample_pred_, n_max_), split.labels.data(), perm, first,
                               shape_.n_classes(), grad_scale * (1.0f / float(n_batch))},
            act_stride_.back(), n_max_, perm_stride};
    }

    // Forward, loss and backward over the training batch at `first`; leaves the gradient
    // of each model's mean loss over the batch in its slice of grads_. The fused path runs
    // the same step through the backend's fused operations, each hidden layer keeping what
    // its ReLU backward needs (a mask on CUDA).
    void compute_gradients(int64_t first, int64_t n_batch, const int8_t* shifts) {
        const int32_t* perm = at(train_perm_, train_.n);
        forward(train_, perm, train_.n, first, n_batch,
                shifts ? shifts + k0_ * 2 * train_.n : nullptr);
        const int n_layers = shape_.n_layers();
        const SoftmaxXentModels loss = loss_of(train_, perm, train_.n, first, n_batch, 1.0f);
        if (fused_) {
            be_.softmax_xent_bgrad(per_model(grads() + shape_.bias_offset(n_layers - 1)), loss,
                                   n_batch, n_run_);
        } else {
            be_.for_each_2d(n_run_, n_batch, loss);
        }
        Strided<const float> grad_z{at(act_.back(), act_stride_.back()), act_stride_.back()};
        for (int l = n_layers - 1; l >= 0; --l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            const Strided<const float> input{at(act_[size_t(l)], act_stride_[size_t(l)]),
                                             act_stride_[size_t(l)]};
            const Strided<float> grad_w = per_model(grads() + shape_.weight_offset(l));
            const Strided<float> grad_in{at(grad_act_[size_t(l)], capacity_ * in), capacity_ * in};
            if (fused_) {
                be_.weight_grad(grad_w, input, grad_z, in, out, n_batch, n_run_);
                if (l == 0) break;
                be_.gemm_drelu_bgrad(grad_in, per_model(grads() + shape_.bias_offset(l - 1)),
                                     per_model(weight(l)), grad_z, input,
                                     Strided<const uint8_t>{
                                         at(relu_mask_[size_t(l) - 1], mask_stride_[size_t(l) - 1]),
                                         mask_stride_[size_t(l) - 1]},
                                     in, n_batch, out, n_run_);
                grad_z = grad_in;
                continue;
            }
            // dW^T (in x batch . batch x out) = X dZ^T, then the bias gradient of dZ.
            be_.gemm_batched(Trans::N, Trans::T, in, out, n_batch, input.data, in, input.stride,
                             grad_z.data, out, grad_z.stride, grad_w.data, in, stride_, n_run_);
            be_.bias_grad(per_model(grads() + shape_.bias_offset(l)), grad_z, out, n_batch, n_run_);
            if (l == 0) break;
            // dA_in (in x batch) = W^T dZ, then ReLU's derivative.
            be_.gemm_batched(Trans::N, Trans::N, in, n_batch, out, weight(l), in, stride_,
                             grad_z.data, out, grad_z.stride, grad_in.data, in, grad_in.stride,
                             n_run_);
            if (options_.activation == Activation::relu) {
                be_.for_each_2d(n_run_, n_batch * in,
                                ReluBackwardModels{ReluBackwardFunctor{grad_in.data, input.data},
                                                   grad_in.stride, input.stride});
            } else {
                be_.for_each_2d(
                    n_run_, n_batch * in,
                    ActivationBackwardModels{
                        ActivationBackwardFunctor{grad_in.data, input.data, options_.activation},
                        grad_in.stride, input.stride});
            }
            grad_z = grad_in;
        }
        if (fused_) be_.join_side();
    }

    void alloc_fused() {
        fused_ = true;
        for (int l = 0; l + 1 < shape_.n_layers(); ++l) {
            mask_stride_.push_back(be_.relu_mask_bytes(shape_.n_out(l), capacity_));
            relu_mask_.push_back(be_.template alloc<uint8_t>(n_models_ * mask_stride_.back()));
        }
    }

    void eval_step(int64_t first, int64_t n_batch) {
        forward(test_, test_perm_.data(), 0, first, n_batch, nullptr);
        be_.for_each_2d(n_run_, n_batch,
                        loss_of(test_, test_perm_.data(), 0, first, n_batch, 0.0f));
    }

    // The one read-back per pass of model k: its slice of the per-sample figures
    // (reduce_samples).
    EpochResult reduce(int64_t k, int64_t n, const int32_t* perm,
                       const std::vector<uint8_t>& labels, const int8_t* status) {
        const std::vector<float> loss = read(sample_loss_, k * n_max_, n, k);
        const std::vector<uint8_t> pred = read(sample_pred_, k * n_max_, n, k);
        return reduce_samples(loss.data(), pred.data(), n, perm, labels, status,
                              options_.batch_size);
    }

    // Chunks of the first gradient-norm pass (ops/grad_norm.hpp): a few hundred values each
    // for the 10^5 of the default model, few enough for one call to add the parts up.
    static constexpr int64_t k_norm_parts = 256;

    Backend& be_;
    ModelShape shape_;
    TrainerOptions options_;
    std::vector<OptimizerConfig> optimizers_;  // one per model
    int64_t n_models_ = 0;
    int64_t stride_ = 0;  // model_stride(shape_)
    DeviceSplit<Backend> train_, test_;
    std::vector<uint8_t> h_train_labels_, h_test_labels_;
    int image_rows_ = 0, image_cols_ = 0;
    Buffer<float> params_, grads_;              // [n_models * stride]
    std::vector<Buffer<float>> opt_state_;      // optimizer_state_names() order, same layout
    std::vector<int64_t> steps_done_;           // per model: Adam's t before this epoch
    int64_t n_steps_ = 0;                       // steps per epoch
    Buffer<OptimizerStep> step_table_;          // [n_models * n_steps], rewritten every epoch
    Buffer<float> step_grad_sq_;                // [n_models * n_steps], squared gradient norms
    Buffer<int8_t> step_status_;                // [n_models * n_steps], StepStatus per step
    Buffer<float> grad_sq_parts_;               // [n_models * k_norm_parts]
    Buffer<int32_t> guard_;                     // [2 * n_models], StepGuardFunctor's pairs
    Buffer<int8_t> stop_;                       // [n_models], StepGuardModels' stop flags
    Buffer<ModelScalars> scalars_;              // [n_models]
    std::vector<Buffer<float>> act_;            // [n_models * capacity * width]
    std::vector<int64_t> act_stride_;           // capacity * width
    std::vector<Buffer<float>> grad_act_;       // [l]: layer l's input gradient, capacity * n_in(l)
    Buffer<int32_t> train_perm_;                // [n_models * n_train]
    std::vector<std::vector<int32_t>> h_perm_;  // each model's order, as on the device
    Buffer<int8_t> train_shifts_;               // [n_models * 2 * n_train]
    Buffer<int32_t> test_perm_;                 // [n_test], the identity, shared
    Buffer<float> sample_loss_;                 // [n_models * n_max]
    Buffer<uint8_t> sample_pred_;               // [n_models * n_max]
    int64_t n_max_ = 0;
    int64_t capacity_ = 0;
    std::vector<bool> planned_;
    int64_t n_planned_ = 0;
    std::vector<int64_t> n_samples_;                      // per model: its last order's length
    std::map<std::vector<int64_t>, int64_t> group_keys_;  // n_samples_ -> g of the graph keys
    int64_t k0_ = 0, n_run_ = 0;  // the models the launches issued now run (run_models)
    bool augment_ = false;
    typename Backend::Graph train_graph_, eval_graph_;
    int64_t last_train_key_ = 0;  // the train_graph_ key of the last graph-replayed epoch
    bool fused_ = false;          // KernelPath::fused
    bool l2_ = false;             // some model has an L2 penalty
    std::vector<Buffer<uint8_t>> relu_mask_;  // fused: per hidden layer, backend's format
    std::vector<int64_t> mask_stride_;        // fused: bytes per model of each mask
};

}  // namespace mlp
