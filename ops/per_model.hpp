// Many models in one launch: each functor of ops/ seen through a batch of
// models that share a shape (host/train/engine.hpp; one model is a batch of
// one). Every per-model
// array of a batch is one buffer with model k's slice at k * stride, so model
// k's copy of a functor is model 0's with each pointer moved by k strides;
// the math is the functor's own, untouched, which is why model k of a batch
// computes bit for bit what one model computes alone on the same backend.
//
// Each view is run by Backend::for_each_2d. A view of a per-element or
// per-sample functor has one row per model (row k, column j: element j of
// model k); a view of a two-index functor (gather, bias + ReLU) has one row
// per sample of every model (row k * n_batch + s). `row(r)` hands out the
// row's functor, which the CPU backend hoists out of its inner loop (so that
// loop vectorises as it does for one model); operator()(r, c) is row(r)(c),
// which the GPU runs per element. `spans_models(n_rows)` says whether the
// rows reach past model 0: the CPU backend then spreads the models over its
// threads, and otherwise runs the view as it runs the bare functor for one
// model (same threading, same order).
#pragma once

#include <cstdint>

#include "ops/activation.hpp"
#include "ops/adam_update.hpp"
#include "ops/bias_act.hpp"
#include "ops/bias_grad.hpp"
#include "ops/gather.hpp"
#include "ops/grad_norm.hpp"
#include "ops/host_device.hpp"
#include "ops/l2_penalty.hpp"
#include "ops/optimizer_step.hpp"
#include "ops/relu_backward.hpp"
#include "ops/sgd_update.hpp"
#include "ops/softmax_xent.hpp"
#include "ops/step_guard.hpp"

namespace mlp {

// The update's scalars that differ between the models of a batch (a sweep's
// --momentum, --weight-decay, --beta1/2 lists), one entry per model in device
// memory; the learning rate and Adam's bias corrections are in each model's
// table of OptimizerStep.
struct ModelScalars {
    int32_t keeps_momentum;  // SGD: the model has a momentum buffer (momentum != 0)
    float momentum;
    float weight_decay;
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    float eps;
    float l2;  // OptimizerConfig::l2_penalty (scikit-learn's alpha)
};

// Sample `row` of a two-index functor, as a one-index one over its columns.
template <class F>
struct RowOf {
    F f;
    int64_t row;

    MLP_HD void operator()(int64_t c) const { f(row, c); }
};

struct GatherModels {
    GatherFunctor f;  // model 0's
    int64_t n_batch;  // rows per model
    int64_t x_stride, perm_stride, shifts_stride;

    MLP_HD RowOf<GatherFunctor> row(int64_t r) const {
        const int64_t k = r / n_batch;
        GatherFunctor g = f;
        g.x += k * x_stride;
        g.perm += k * perm_stride;
        if (g.shifts) g.shifts += k * shifts_stride;
        return {g, r - k * n_batch};
    }
    bool spans_models(int64_t n_rows) const { return n_rows > n_batch; }
    MLP_HD void operator()(int64_t r, int64_t c) const { row(r)(c); }
};

struct BiasActModels {
    BiasActFunctor f;
    int64_t n_batch;
    int64_t z_stride, bias_stride;

    MLP_HD RowOf<BiasActFunctor> row(int64_t r) const {
        const int64_t k = r / n_batch;
        BiasActFunctor g = f;
        g.z += k * z_stride;
        g.bias += k * bias_stride;
        return {g, r - k * n_batch};
    }
    bool spans_models(int64_t n_rows) const { return n_rows > n_batch; }
    MLP_HD void operator()(int64_t r, int64_t c) const { row(r)(c); }
};

struct SoftmaxXentModels {
    SoftmaxXentFunctor f;
    int64_t logits_stride, sample_stride, perm_stride;

    MLP_HD SoftmaxXentFunctor row(int64_t k) const {
        SoftmaxXentFunctor g = f;
        g.logits += k * logits_stride;
        g.sample_loss += k * sample_stride;
        g.sample_pred += k * sample_stride;
        g.perm += k * perm_stride;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t s) const { row(k)(s); }
};

struct BiasGradModels {
    BiasGradFunctor f;
    int64_t grad_bias_stride, grad_z_stride;

    MLP_HD BiasGradFunctor row(int64_t k) const {
        BiasGradFunctor g = f;
        g.grad_bias += k * grad_bias_stride;
        g.grad_z += k * grad_z_stride;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t j) const { row(k)(j); }
};

struct ReluBackwardModels {
    ReluBackwardFunctor f;
    int64_t grad_stride, activation_stride;

    MLP_HD ReluBackwardFunctor row(int64_t k) const {
        ReluBackwardFunctor g = f;
        g.grad += k * grad_stride;
        g.activation += k * activation_stride;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t i) const { row(k)(i); }
};

struct ActivationBackwardModels {
    ActivationBackwardFunctor f;
    int64_t grad_stride, activation_stride;

    MLP_HD ActivationBackwardFunctor row(int64_t k) const {
        ActivationBackwardFunctor g = f;
        g.grad += k * grad_stride;
        g.activation += k * activation_stride;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t i) const { row(k)(i); }
};

// Model k's penalty is its own l2 over the step's batch size.
struct L2PenaltyModels {
    L2PenaltyFunctor f;  // scale unused: set per model
    const ModelScalars* scalars;
    int64_t stride;  // parameters and gradients
    float inv_batch;

    MLP_HD L2PenaltyFunctor row(int64_t k) const {
        L2PenaltyFunctor g = f;
        g.grad += k * stride;
        g.param += k * stride;
        g.scale = scalars[k].l2 * inv_batch;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t i) const { row(k)(i); }
};

struct SquaredNormPartsModels {
    SquaredNormPartsFunctor f;
    int64_t x_stride;  // parts: n_parts per model

    MLP_HD SquaredNormPartsFunctor row(int64_t k) const {
        SquaredNormPartsFunctor g = f;
        g.parts += k * f.n_parts;
        g.x += k * x_stride;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t j) const { row(k)(j); }
};

struct SumPartsModels {
    SumPartsFunctor f;
    int64_t out_stride;  // parts: n_parts per model

    MLP_HD SumPartsFunctor row(int64_t k) const {
        SumPartsFunctor g = f;
        g.out += k * out_stride;
        g.parts += k * f.n_parts;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t j) const { row(k)(j); }
};

// The guard of every model: guard has 2 entries per model, and each model's
// stop flag (its --on-nan, or "frozen": a model that sits out the epoch is
// given a guard that has already stopped, so its update does nothing).
struct StepGuardModels {
    StepGuardFunctor f;
    const int8_t* stop;  // [n_models]
    int64_t status_stride, sample_stride, grad_sq_stride;

    MLP_HD StepGuardFunctor row(int64_t k) const {
        StepGuardFunctor g = f;
        g.guard += 2 * k;
        g.status += k * status_stride;
        g.sample_loss += k * sample_stride;
        g.grad_sq += k * grad_sq_stride;
        g.stop = stop[k] != 0;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t j) const { row(k)(j); }
};

// Parameters, gradients and optimizer state: n_params per model. The step
// tables hold n_steps entries per model; the skip flag is guard[2k + 1].
struct SgdUpdateModels {
    SgdUpdateFunctor f;  // momentum, weight_decay: replaced by the model's scalars
    const OptimizerStep* steps;
    const ModelScalars* scalars;
    int64_t n_params, n_steps;

    MLP_HD SgdUpdateFunctor row(int64_t k) const {
        SgdUpdateFunctor g = f;
        g.params += k * n_params;
        g.grads += k * n_params;
        g.lr = lr_address(steps + k * n_steps);
        g.skip += 2 * k;
        // A model without momentum runs plain SGD, as it does alone, even where
        // others of the batch keep a buffer.
        const ModelScalars s = scalars[k];
        g.momentum_buffer =
            g.momentum_buffer && s.keeps_momentum ? g.momentum_buffer + k * n_params : nullptr;
        g.momentum = s.momentum;
        g.weight_decay = s.weight_decay;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t i) const { row(k)(i); }
};

struct AdamUpdateModels {
    AdamUpdateFunctor f;  // step and the scalars: replaced by the model's
    const ModelScalars* scalars;
    int64_t n_params, n_steps;

    MLP_HD AdamUpdateFunctor row(int64_t k) const {
        AdamUpdateFunctor g = f;
        g.params += k * n_params;
        g.grads += k * n_params;
        g.exp_avg += k * n_params;
        g.exp_avg_sq += k * n_params;
        g.step += k * n_steps;
        g.skip += 2 * k;
        const ModelScalars s = scalars[k];
        g.one_minus_beta1 = s.one_minus_beta1;
        g.beta2 = s.beta2;
        g.one_minus_beta2 = s.one_minus_beta2;
        g.eps = s.eps;
        g.weight_decay = s.weight_decay;
        return g;
    }
    bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    MLP_HD void operator()(int64_t k, int64_t i) const { row(k)(i); }
};

// The gradient norm and guard of a step (Backend::grad_norm_guard): the three views the CPU
// launches one after another, which a backend may run as one kernel. `params` (model k's at
// k * norm.x_stride) lets such a kernel count a non-finite parameter as a non-finite gradient:
// where the backend's fused ReLU turns a NaN pre-activation into 0 (cuBLASLt's epilogue), a
// NaN weight would otherwise leave the loss finite and the guard silent. The functors need no
// such check: their ReLU keeps NaN, so a NaN parameter reaches the loss.
struct GradNormGuardModels {
    SquaredNormPartsModels norm;
    SumPartsModels sum;
    StepGuardModels guard;
    const float* params;
};

}  // namespace mlp
