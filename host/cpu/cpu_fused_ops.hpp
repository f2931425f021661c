// The CPU backend's fused operations (the fused path of host/train/engine.hpp).
// The CPU has no launch latency to save, so each one is its GEMM and the same
// functors the generic path runs, in the same order on the same data: the
// fused path gives bit-identical numbers here, and the CUDA backend's fused
// kernels are checked against these. Written as a base of CpuBackend (CRTP) so
// that its GEMM and for_each, and whatever they record, do the work.
#pragma once

#include <cstdint>

#include "host/base/error.hpp"
#include "host/train/backend.hpp"
#include "host/config/kernel_options.hpp"
#include "ops/bias_act.hpp"
#include "ops/bias_grad.hpp"
#include "ops/grad_norm.hpp"
#include "ops/relu_backward.hpp"
#include "ops/softmax_xent.hpp"
#include "ops/step_guard.hpp"

namespace mlp {

template <class Self>
class CpuFusedOps {
public:
    // The CPU computes in fp32 only: there is no tensor-core rounding to
    // model, and a silent fp32 run under another name would be a wrong figure.
    void set_precision(Precision precision) {
        if (precision != Precision::fp32) {
            throw Error(std::string("precision ") + to_string(precision) +
                        " needs the CUDA backend; the CPU backend computes in fp32 only");
        }
    }

    // The CPU's ReLU backward reads the activation, so it keeps no mask.
    int64_t relu_mask_bytes(int64_t, int64_t) const { return 0; }

    // z (n_out x n_batch) = W x + bias, then ReLU if `relu`; W is [n_out][n_in].
    void gemm_bias_act(float* z, uint8_t*, const float* w, const float* x, const float* bias,
                       bool relu, int64_t n_out, int64_t n_batch, int64_t n_in) {
        self().gemm(Trans::T, Trans::N, n_out, n_batch, n_in, w, n_in, x, n_in, z, n_out);
        self().for_each_2d(n_batch, n_out, BiasActFunctor{z, bias, n_out, relu});
    }

    // grad_in (n_in x n_batch) = W^T grad_z, times relu'(activation_in); then
    // the bias gradient of the layer that produced activation_in.
    void gemm_drelu_bgrad(float* grad_in, float* grad_bias_in, const float* w, const float* grad_z,
                          const float* activation_in, const uint8_t*, int64_t n_in, int64_t n_batch,
                          int64_t n_out) {
        self().gemm(Trans::N, Trans::N, n_in, n_batch, n_out, w, n_in, grad_z, n_out, grad_in,
                    n_in);
        self().for_each(n_batch * n_in, ReluBackwardFunctor{grad_in, activation_in});
        bias_grad(grad_bias_in, grad_in, n_in, n_batch);
    }

    // dW^T (n_in x n_out) = x grad_z^T.
    void weight_grad(float* grad_w, const float* x, const float* grad_z, int64_t n_in,
                     int64_t n_out, int64_t n_batch) {
        self().gemm(Trans::N, Trans::T, n_in, n_out, n_batch, x, n_in, grad_z, n_out, grad_w, n_in);
    }
    // Work that weight_grad may have put on a side branch is done after this.
    void join_side() {}

    void bias_grad(float* grad_bias, const float* grad_z, int64_t n_out, int64_t n_batch) {
        self().for_each(n_out, BiasGradFunctor{grad_bias, grad_z, n_out, n_batch});
    }

    // The loss and its logit gradient, then the output layer's bias gradient.
    void softmax_xent_bgrad(float* grad_bias, const SoftmaxXentFunctor& loss, int64_t n_batch) {
        self().for_each(n_batch, loss);
        bias_grad(grad_bias, loss.logits, loss.n_classes, n_batch);
    }

    // The step's squared gradient norm and its non-finite guard, as the
    // generic path computes them (parts: scratch of n_parts values).
    void grad_norm_guard(float* grad_sq, int32_t* guard, int8_t* status, float* parts,
                         const float* grads, const float* sample_loss, int64_t n_params,
                         int64_t n_batch, int64_t n_parts, int32_t step, bool stop) {
        self().for_each(n_parts, SquaredNormPartsFunctor{parts, grads, n_params, n_parts});
        self().for_each(1, SumPartsFunctor{grad_sq, parts, n_parts});
        self().for_each(1,
                        StepGuardFunctor{guard, status, sample_loss, n_batch, grad_sq, step, stop});
    }

private:
    Self& self() { return static_cast<Self&>(*this); }
};

}  // namespace mlp
