// The training step, written once against the backend interface
// (host/train/backend.hpp) and instantiated for the CPU and the CUDA backend.
//
// Activations are sample-contiguous ("features x batch" column-major, the
// notebook's layout): act[0] is the gathered input batch, act[l + 1] the
// output of layer l. Hidden outputs hold relu(Z) in place; the last holds the
// logits, which the loss overwrites with their gradient. Parameters and their
// gradients share one flat layout (host/model/model.hpp), so the update is one
// launch over one buffer.
//
// An epoch is a fixed sequence of steps whose launch arguments depend only on
// the step's position in the epoch. Whatever changes between epochs or steps
// lives in device buffers rewritten before each epoch: the order, the
// augmentation shifts, and a table of per-step update scalars (learning rate,
// Adam's bias corrections) that step k reads at entry k. That is what lets a
// backend record the epoch once (a CUDA graph) and replay it. Loss and
// prediction per sample, and the gradient's squared norm per step, are read
// back once per epoch. So is each step's status from the non-finite guard
// (ops/step_guard.hpp), which runs before the update and can tell the
// update to do nothing (--on-nan).
//
// The optimizer's state (momentum or Adam's moments) is flat buffers in the
// parameter layout, plus the count of updates done, so a checkpoint holds
// everything a resumed run needs to continue bit for bit.
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
#include "host/train/trainer.hpp"
#include "ops/adam_update.hpp"
#include "ops/bias_act.hpp"
#include "ops/bias_grad.hpp"
#include "ops/gather.hpp"
#include "ops/grad_norm.hpp"
#include "ops/relu_backward.hpp"
#include "ops/sgd_update.hpp"
#include "ops/softmax_xent.hpp"
#include "ops/step_guard.hpp"

namespace mlp {

// A split of the data set on the device: its images and labels, uploaded once.
template <class Backend>
struct DeviceSplit {
    typename Backend::template Buffer<uint8_t> images;
    typename Backend::template Buffer<uint8_t> labels;
    int64_t n = 0;
};

template <class Backend>
DeviceSplit<Backend> upload_split(Backend& be, const Split& src) {
    DeviceSplit<Backend> dst;
    dst.n = src.size();
    dst.images = be.template alloc<uint8_t>(int64_t(src.images.pixels.size()));
    dst.labels = be.template alloc<uint8_t>(dst.n);
    be.copy_to_device(dst.images.data(), src.images.pixels.data(),
                      int64_t(src.images.pixels.size()));
    be.copy_to_device(dst.labels.data(), src.labels.labels.data(), dst.n);
    return dst;
}

// A buffer of n values that reads as zeros: device buffers start uninitialised, and optimizer
// state must start at zero.
template <class T, class Backend>
typename Backend::template Buffer<T> zeroed(Backend& be, int64_t n) {
    typename Backend::template Buffer<T> b = be.template alloc<T>(n);
    const std::vector<T> h(static_cast<size_t>(n));  // value-initialised: zero
    be.copy_to_device(b.data(), h.data(), n);
    return b;
}

// What an engine checks of its inputs before it allocates anything: positive batch sizes, and
// a model that takes the data's features and has an output for each of its classes.
inline void check_engine_inputs(const ModelShape& shape, const Dataset& data,
                                const TrainerOptions& options) {
    if (options.batch_size <= 0) throw Error("batch size must be positive");
    if (options.eval_batch_size <= 0) throw Error("test batch size must be positive");
    if (shape.n_inputs() != data.n_features()) {
        throw Error("model input size " + std::to_string(shape.n_inputs()) +
                    " does not match the data's " + std::to_string(data.n_features()) +
                    " features");
    }
    if (shape.n_classes() < data.n_classes) {
        throw Error("model has " + std::to_string(shape.n_classes()) +
                    " outputs but the data has " + std::to_string(data.n_classes) + " classes");
    }
}

inline void check_param_count(const ModelShape& shape, int64_t n) {
    if (n != shape.n_params()) {
        throw Error("parameter vector has " + std::to_string(n) + " values, model " +
                    shape.to_string() + " needs " + std::to_string(shape.n_params()));
    }
}

// An epoch plan must give every training sample a place, every step a rate, and (when it
// shifts) every sample its two shifts.
inline void check_epoch_plan(const EpochPlan& plan, int64_t n_train, int64_t n_steps) {
    if (int64_t(plan.perm.size()) != n_train) {
        throw Error("epoch order has " + std::to_string(plan.perm.size()) + " entries for " +
                    std::to_string(n_train) + " training samples");
    }
    if (int64_t(plan.lr.size()) != n_steps) {
        throw Error("epoch plan has " + std::to_string(plan.lr.size()) + " learning rates for " +
                    std::to_string(n_steps) + " steps");
    }
    if (!plan.shifts.empty() && int64_t(plan.shifts.size()) != 2 * n_train) {
        throw Error("epoch plan has " + std::to_string(plan.shifts.size()) +
                    " shift values, expected 2 per training sample (" +
                    std::to_string(2 * n_train) + ")");
    }
}

// The one read-back per pass, reduced: per-sample loss and prediction of n
// samples (h_loss, h_pred, read back from the device), summed on the host in
// sample order (the same result on every run and backend). Sample i is
// labels[perm[i]] (labels[i] without perm). With `status` (one StepStatus per
// step of batch_size samples), only the samples of steps that updated count.
inline EpochResult reduce_samples(const float* h_loss, const uint8_t* h_pred, int64_t n,
                                  const int32_t* perm, const std::vector<uint8_t>& labels,
                                  const int8_t* status, int64_t batch_size) {
    EpochResult r;
    double sum = 0.0;
    int64_t correct = 0, counted = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (status && status[i / batch_size] != step_ok) continue;
        ++counted;
        sum += double(h_loss[i]);
        const int64_t sample = perm ? perm[i] : i;
        correct += h_pred[i] == labels[size_t(sample)];
    }
    r.n_samples = counted;
    // No step updated: NaN, which the training loop reports.
    r.loss = counted > 0 ? sum / double(counted) : std::nan("");
    r.accuracy = counted > 0 ? double(correct) / double(counted) : 0.0;
    return r;
}

// Mean over an epoch's updating steps (status step_ok) of the gradient's L2
// norm, from each step's squared norm h_grad_sq.
inline double mean_grad_norm(const int8_t* status, const float* h_grad_sq, int64_t n_steps) {
    double sum = 0.0;
    int64_t counted = 0;
    for (int64_t k = 0; k < n_steps; ++k) {
        if (status[k] != step_ok) continue;
        sum += std::sqrt(double(h_grad_sq[k]));
        ++counted;
    }
    return counted > 0 ? sum / double(counted) : 0.0;
}

template <class Backend>
class Engine {
    static_assert(check_backend<Backend>(), "see host/train/backend.hpp");

public:
    template <class T>
    using Buffer = typename Backend::template Buffer<T>;

    Engine(Backend& backend, const ModelShape& shape, const Dataset& data,
           const TrainerOptions& options)
        : be_(backend), shape_(shape), options_(options) {
        check_engine_inputs(shape, data, options);
        check_optimizer_config(options.optimizer);
        train_ = upload_split(be_, data.train);
        test_ = upload_split(be_, data.test);
        h_train_labels_ = data.train.labels.labels;
        h_test_labels_ = data.test.labels.labels;
        image_rows_ = int(data.train.images.n_rows);
        image_cols_ = int(data.train.images.n_cols);

        params_ = be_.template alloc<float>(shape.n_params());
        grads_ = be_.template alloc<float>(shape.n_params());
        for (size_t k = 0; k < optimizer_state_names(options.optimizer).size(); ++k) {
            opt_state_.push_back(zeroed<float>(be_, shape.n_params()));
        }
        n_steps_ = ceil_div(train_.n, options.batch_size);
        step_table_ = be_.template alloc<OptimizerStep>(n_steps_);
        step_grad_sq_ = be_.template alloc<float>(n_steps_);
        grad_sq_parts_ = be_.template alloc<float>(k_norm_parts);
        guard_ = be_.template alloc<int32_t>(2);
        step_status_ = be_.template alloc<int8_t>(n_steps_);
        train_shifts_ = be_.template alloc<int8_t>(2 * train_.n);

        capacity_ = std::max<int64_t>(options.batch_size, options.eval_batch_size);
        for (int64_t width : shape.sizes()) {
            act_.push_back(be_.template alloc<float>(capacity_ * width));
        }
        for (auto& s : scratch_) s = be_.template alloc<float>(capacity_ * shape.max_width());

        train_perm_ = be_.template alloc<int32_t>(train_.n);
        test_perm_ = be_.template alloc<int32_t>(test_.n);
        std::vector<int32_t> identity(size_t(test_.n));
        std::iota(identity.begin(), identity.end(), 0);
        be_.copy_to_device(test_perm_.data(), identity.data(), test_.n);

        const int64_t n_max = std::max(train_.n, test_.n);
        sample_loss_ = be_.template alloc<float>(n_max);
        sample_pred_ = be_.template alloc<uint8_t>(n_max);
        be_.set_precision(options.precision);
        reserve_gemm_operands();
        if (options.kernels == KernelPath::fused) alloc_fused();
    }

    const ModelShape& shape() const { return shape_; }
    int64_t n_train() const { return train_.n; }
    int64_t n_test() const { return test_.n; }
    int64_t steps_per_epoch() const { return n_steps_; }
    // The recorded epochs (key 1: with shifts, 0: without), for their node count.
    const typename Backend::Graph& train_graph() const { return train_graph_; }
    // Launches recorded for the last epoch trained with a graph; 0 if none was recorded.
    int64_t train_graph_nodes() const { return train_graph_.n_nodes(last_train_key_); }

    void set_params(const std::vector<float>& h_params) {
        check_param_count(int64_t(h_params.size()));
        be_.copy_to_device(params_.data(), h_params.data(), shape_.n_params());
    }
    std::vector<float> params() {
        std::vector<float> h(size_t(shape_.n_params()));
        be_.copy_to_host(h.data(), params_.data(), shape_.n_params());
        return h;
    }

    OptimizerState optimizer_state() {
        OptimizerState state;
        state.step = steps_done_;
        for (const auto& buffer : opt_state_) {
            state.buffers.emplace_back(size_t(shape_.n_params()));
            be_.copy_to_host(state.buffers.back().data(), buffer.data(), shape_.n_params());
        }
        return state;
    }
    void set_optimizer_state(const OptimizerState& state) {
        const std::string kind = to_string(options_.optimizer.kind);
        if (state.buffers.size() != opt_state_.size()) {
            throw Error("optimizer state has " + std::to_string(state.buffers.size()) +
                        " buffers, " + kind + " here keeps " + std::to_string(opt_state_.size()));
        }
        if (state.step < 0) throw Error("optimizer step count is negative");
        for (size_t k = 0; k < opt_state_.size(); ++k) {
            check_param_count(int64_t(state.buffers[k].size()));
            be_.copy_to_device(opt_state_[k].data(), state.buffers[k].data(), shape_.n_params());
        }
        steps_done_ = state.step;
    }

    // One epoch over the training set as `plan` says; the optimizer carries
    // on from its state.
    EpochResult train_epoch(const EpochPlan& plan, const StepCallback& on_step) {
        check_epoch_plan(plan, train_.n, n_steps_);
        const bool augment = !plan.shifts.empty();
        be_.copy_to_device(train_perm_.data(), plan.perm.data(), train_.n);
        if (augment) be_.copy_to_device(train_shifts_.data(), plan.shifts.data(), 2 * train_.n);
        const std::vector<OptimizerStep> table =
            optimizer_steps(options_.optimizer, plan.lr, steps_done_);
        be_.copy_to_device(step_table_.data(), table.data(), n_steps_);
        const int32_t guard_start[2] = {-1, 0};
        be_.copy_to_device(guard_.data(), guard_start, 2);
        const int64_t batch = options_.batch_size;
        auto steps = [&](bool report) {
            for (int64_t step = 0; step < n_steps_; ++step) {
                const int64_t first = step * batch;
                train_step(step, first, std::min(batch, train_.n - first), augment);
                if (report && on_step) on_step(step + 1, n_steps_);
            }
        };
        if (options_.use_graph) {
            // The gather's arguments differ with and without shifts, so
            // switching between the two records the epoch afresh.
            last_train_key_ = augment ? 1 : 0;
            be_.run_graph(train_graph_, last_train_key_, [&] { steps(false); });
        } else {
            steps(true);
        }
        steps_done_ += n_steps_;
        std::vector<int8_t> status(static_cast<size_t>(n_steps_));
        be_.copy_to_host(status.data(), step_status_.data(), n_steps_);
        EpochResult r = reduce(train_.n, plan.perm.data(), h_train_labels_, &status);
        r.grad_norm = mean_grad_norm(status);
        for (int64_t k = 0; k < n_steps_; ++k) {
            if (status[size_t(k)] == step_ok) continue;
            ++r.skipped_steps;
            if (r.first_bad_step < 0) r.first_bad_step = k;
        }
        return r;
    }

    // Mean loss and accuracy over the test set, in batches of eval_batch_size.
    EpochResult evaluate() {
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
        return reduce(test_.n, nullptr, h_test_labels_);
    }

    // Predicted class of every test sample, from the last evaluate().
    std::vector<uint8_t> test_predictions() {
        std::vector<uint8_t> h(size_t(test_.n));
        be_.copy_to_host(h.data(), sample_pred_.data(), test_.n);
        return h;
    }

    // Gradient of the mean loss over the training samples `ids` (at most one
    // batch) with respect to every parameter; parameters are not changed.
    std::vector<float> gradients(const std::vector<int32_t>& ids, double* mean_loss) {
        const int64_t n = int64_t(ids.size());
        if (n <= 0 || n > capacity_ || n > train_.n) {
            throw Error("gradient batch must hold 1.." + std::to_string(capacity_) + " samples");
        }
        be_.copy_to_device(train_perm_.data(), ids.data(), n);
        compute_gradients(0, n, nullptr);
        std::vector<float> h(size_t(shape_.n_params()));
        be_.copy_to_host(h.data(), grads_.data(), shape_.n_params());
        if (mean_loss) {
            std::vector<float> loss(static_cast<size_t>(n));
            be_.copy_to_host(loss.data(), sample_loss_.data(), n);
            *mean_loss = std::accumulate(loss.begin(), loss.end(), 0.0) / double(n);
        }
        return h;
    }

    double running_loss(int64_t n_samples) {
        const int64_t n = std::min(n_samples, train_.n);
        std::vector<float> loss(static_cast<size_t>(n));
        be_.copy_to_host(loss.data(), sample_loss_.data(), n);
        return n > 0 ? std::accumulate(loss.begin(), loss.end(), 0.0) / double(n) : 0.0;
    }

private:
    void check_param_count(int64_t n) const { mlp::check_param_count(shape_, n); }

    // The largest operands the step's GEMMs get, for a backend that casts
    // them (bf16): A is a weight matrix or a layer's input, B a layer's input
    // or an output gradient, each at most capacity_ samples wide.
    void reserve_gemm_operands() {
        int64_t n_weights = 0;
        for (int l = 0; l < shape_.n_layers(); ++l) {
            n_weights = std::max(n_weights, shape_.n_in(l) * shape_.n_out(l));
        }
        int64_t widest = 0;  // inputs included: act_[0] is the forward's first B
        for (int64_t width : shape_.sizes()) widest = std::max(widest, width);
        const int64_t n_act = capacity_ * widest;
        be_.reserve_gemm_operands(std::max(n_weights, n_act), n_act);
    }

    float* weight(int l) { return params_.data() + shape_.weight_offset(l); }
    float* bias(int l) { return params_.data() + shape_.bias_offset(l); }

    // Gather (shifting the images when `shifts` is set), then every layer's
    // GEMM and bias(+ReLU) epilogue; leaves the logits in act_.back().
    void forward(const DeviceSplit<Backend>& split, const int32_t* perm, int64_t first,
                 int64_t n_batch, const int8_t* shifts) {
        const int64_t n_in = shape_.n_inputs();
        be_.for_each_2d(n_batch, n_in,
                        GatherFunctor{act_[0].data(), split.images.data(), perm, first, n_in,
                                      shifts, image_rows_, image_cols_});
        for (int l = 0; l < shape_.n_layers(); ++l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            float* z = act_[size_t(l) + 1].data();
            if (fused_) {
                const bool hidden = l + 1 < shape_.n_layers();
                be_.gemm_bias_act(z, hidden ? relu_mask_[size_t(l)].data() : nullptr, weight(l),
                                  act_[size_t(l)].data(), bias(l), hidden, out, n_batch, in);
                continue;
            }
            be_.gemm(Trans::T, Trans::N, out, n_batch, in, weight(l), in, act_[size_t(l)].data(),
                     in, z, out);
            const bool relu = l + 1 < shape_.n_layers();
            be_.for_each_2d(n_batch, out, BiasActFunctor{z, bias(l), out, relu});
        }
    }

    // Step `step` of an epoch: gradients of the batch at `first`, their
    // squared norm into the step's slot, then the optimizer's update with the
    // step's entry of the scalar table.
    void train_step(int64_t step, int64_t first, int64_t n_batch, bool augment) {
        if (fused_) return train_step_fused(step, first, n_batch, augment);
        compute_gradients(first, n_batch, augment ? train_shifts_.data() : nullptr);
        be_.for_each(k_norm_parts, SquaredNormPartsFunctor{grad_sq_parts_.data(), grads_.data(),
                                                           shape_.n_params(), k_norm_parts});
        be_.for_each(
            1, SumPartsFunctor{step_grad_sq_.data() + step, grad_sq_parts_.data(), k_norm_parts});
        be_.for_each(
            1, StepGuardFunctor{guard_.data(), step_status_.data() + step,
                                sample_loss_.data() + first, n_batch, step_grad_sq_.data() + step,
                                int32_t(step), options_.on_nan == NanPolicy::stop});
        update(step_table_.data() + step);
    }

    // One fused functor over the flat parameter buffer per optimizer.
    void update(const OptimizerStep* step) {
        const OptimizerConfig& o = options_.optimizer;
        const int64_t n = shape_.n_params();
        const int32_t* skip = guard_.data() + 1;
        if (o.kind == OptimizerKind::sgd) {
            float* momentum = opt_state_.empty() ? nullptr : opt_state_[0].data();
            be_.for_each(
                n, SgdUpdateFunctor{params_.data(), grads_.data(), lr_address(step), skip, momentum,
                                    float(o.momentum), float(o.weight_decay), o.nesterov});
        } else {
            be_.for_each(n,
                         AdamUpdateFunctor{params_.data(), grads_.data(), opt_state_[0].data(),
                                           opt_state_[1].data(), step, skip, float(1.0 - o.beta1),
                                           float(o.beta2), float(1.0 - o.beta2), float(o.eps),
                                           float(o.weight_decay), o.kind == OptimizerKind::adamw});
        }
    }

    // Forward, loss and backward over the training batch at `first`; leaves
    // the gradient of the batch's mean loss in grads_.
    void compute_gradients(int64_t first, int64_t n_batch, const int8_t* shifts) {
        if (fused_) return compute_gradients_fused(first, n_batch, shifts);
        forward(train_, train_perm_.data(), first, n_batch, shifts);
        const int n_layers = shape_.n_layers();
        be_.for_each(n_batch, SoftmaxXentFunctor{act_.back().data(), sample_loss_.data(),
                                                 sample_pred_.data(), train_.labels.data(),
                                                 train_perm_.data(), first, shape_.n_classes(),
                                                 1.0f / float(n_batch)});
        const float* grad_z = act_.back().data();
        for (int l = n_layers - 1; l >= 0; --l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            const float* input = act_[size_t(l)].data();
            // dW^T (in x out, column-major) = X (in x batch) * dZ^T (batch x out).
            be_.gemm(Trans::N, Trans::T, in, out, n_batch, input, in, grad_z, out,
                     grads_.data() + shape_.weight_offset(l), in);
            be_.for_each(
                out, BiasGradFunctor{grads_.data() + shape_.bias_offset(l), grad_z, out, n_batch});
            if (l == 0) break;
            // dA_in (in x batch) = W^T (in x out) * dZ (out x batch).
            float* grad_in = scratch_[size_t(l) % 2].data();
            be_.gemm(Trans::N, Trans::N, in, n_batch, out, weight(l), in, grad_z, out, grad_in, in);
            be_.for_each(n_batch * in, ReluBackwardFunctor{grad_in, input});
            grad_z = grad_in;
        }
    }

    // The fused path (KernelPath::fused): the same step through the backend's
    // fused operations. Each hidden layer keeps what its ReLU backward needs
    // (a mask on CUDA) and its own input gradient, so a weight gradient that
    // the backend runs on a side branch never races the next layer's writes.
    void alloc_fused() {
        fused_ = true;
        for (int l = 0; l + 1 < shape_.n_layers(); ++l) {
            relu_mask_.push_back(
                be_.template alloc<uint8_t>(be_.relu_mask_bytes(shape_.n_out(l), capacity_)));
        }
        for (int l = 0; l < shape_.n_layers(); ++l) {
            grad_act_.push_back(be_.template alloc<float>(l == 0 ? 0 : capacity_ * shape_.n_in(l)));
        }
    }

    void train_step_fused(int64_t step, int64_t first, int64_t n_batch, bool augment) {
        compute_gradients_fused(first, n_batch, augment ? train_shifts_.data() : nullptr);
        be_.grad_norm_guard(step_grad_sq_.data() + step, guard_.data(), step_status_.data() + step,
                            grad_sq_parts_.data(), grads_.data(), sample_loss_.data() + first,
                            shape_.n_params(), n_batch, k_norm_parts, int32_t(step),
                            options_.on_nan == NanPolicy::stop);
        update(step_table_.data() + step);
    }

    // Softmax with the output bias gradient, then per layer the weight
    // gradient (independent of the chain below it) and the input gradient
    // with ReLU backward and the bias gradient of the layer beneath.
    void compute_gradients_fused(int64_t first, int64_t n_batch, const int8_t* shifts) {
        forward(train_, train_perm_.data(), first, n_batch, shifts);
        const int n_layers = shape_.n_layers();
        be_.softmax_xent_bgrad(
            grads_.data() + shape_.bias_offset(n_layers - 1),
            SoftmaxXentFunctor{act_.back().data(), sample_loss_.data(), sample_pred_.data(),
                               train_.labels.data(), train_perm_.data(), first, shape_.n_classes(),
                               1.0f / float(n_batch)},
            n_batch);
        const float* grad_z = act_.back().data();
        for (int l = n_layers - 1; l >= 0; --l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            const float* input = act_[size_t(l)].data();
            be_.weight_grad(grads_.data() + shape_.weight_offset(l), input, grad_z, in, out,
                            n_batch);
            if (l == 0) break;
            float* grad_in = grad_act_[size_t(l)].data();
            be_.gemm_drelu_bgrad(grad_in, grads_.data() + shape_.bias_offset(l - 1), weight(l),
                                 grad_z, input, relu_mask_[size_t(l) - 1].data(), in, n_batch, out);
            grad_z = grad_in;
        }
        be_.join_side();
    }

    void eval_step(int64_t first, int64_t n_batch) {
        forward(test_, test_perm_.data(), first, n_batch, nullptr);
        be_.for_each(n_batch,
                     SoftmaxXentFunctor{act_.back().data(), sample_loss_.data(),
                                        sample_pred_.data(), test_.labels.data(), test_perm_.data(),
                                        first, shape_.n_classes(), 0.0f});
    }

    // The one read-back per pass (reduce_samples).
    EpochResult reduce(int64_t n, const int32_t* perm, const std::vector<uint8_t>& labels,
                       const std::vector<int8_t>* status = nullptr) {
        std::vector<float> loss(static_cast<size_t>(n));
        std::vector<uint8_t> pred(static_cast<size_t>(n));
        be_.copy_to_host(loss.data(), sample_loss_.data(), n);
        be_.copy_to_host(pred.data(), sample_pred_.data(), n);
        return reduce_samples(loss.data(), pred.data(), n, perm, labels,
                              status ? status->data() : nullptr, options_.batch_size);
    }

    double mean_grad_norm(const std::vector<int8_t>& status) {
        std::vector<float> sq(static_cast<size_t>(n_steps_));
        be_.copy_to_host(sq.data(), step_grad_sq_.data(), n_steps_);
        return mlp::mean_grad_norm(status.data(), sq.data(), n_steps_);
    }

    // Chunks of the first gradient-norm pass (ops/grad_norm.hpp): a few
    // hundred values each for the 10^5 of the default model, few enough for
    // one call to add the parts up.
    static constexpr int64_t k_norm_parts = 256;

    Backend& be_;
    ModelShape shape_;
    TrainerOptions options_;
    DeviceSplit<Backend> train_, test_;
    std::vector<uint8_t> h_train_labels_, h_test_labels_;
    int image_rows_ = 0, image_cols_ = 0;
    Buffer<float> params_, grads_;
    std::vector<Buffer<float>> opt_state_;  // optimizer_state_names() order
    int64_t steps_done_ = 0;                // updates so far: Adam's t before this epoch
    int64_t n_steps_ = 0;                   // steps per epoch
    Buffer<OptimizerStep> step_table_;      // [n_steps_], rewritten every epoch
    Buffer<int8_t> train_shifts_;           // [2 * n_train], rewritten when augmenting
    Buffer<float> step_grad_sq_;            // [n_steps_], squared gradient norm per step
    Buffer<float> grad_sq_parts_;           // [k_norm_parts]
    Buffer<int32_t> guard_;                 // [2], StepGuardFunctor's first bad step and skip
    Buffer<int8_t> step_status_;            // [n_steps_], StepStatus per step
    std::vector<Buffer<float>> act_;
    Buffer<float> scratch_[2];
    Buffer<int32_t> train_perm_, test_perm_;
    Buffer<float> sample_loss_;
    Buffer<uint8_t> sample_pred_;
    int64_t capacity_ = 0;
    typename Backend::Graph train_graph_, eval_graph_;
    int64_t last_train_key_ = 0;  // the train_graph_ key of the last graph-replayed epoch
    bool fused_ = false;          // KernelPath::fused
    std::vector<Buffer<uint8_t>> relu_mask_;  // fused: per hidden layer, backend's format
    std::vector<Buffer<float>> grad_act_;     // fused: [l] = gradient of layer l's input
};

}  // namespace mlp
