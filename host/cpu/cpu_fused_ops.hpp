// The CPU backend's fused operations (the fused path of host/train/engine.hpp).
// The CPU has no launch latency to save, so each one is its GEMM and the same
// functors the generic path runs, through the same per-model views
// (ops/per_model.hpp), in the same order on the same data: the fused path
// gives bit-identical numbers here, for one model or a batch, and the CUDA
// backend's fused kernels are checked against these. Written as a base of
// CpuBackend (CRTP) so that its GEMM and for_each, and whatever they record,
// do the work.
#pragma once

#include <cstdint>

#include "host/base/error.hpp"
#include "host/config/kernel_options.hpp"
#include "host/train/backend.hpp"
#include "ops/per_model.hpp"

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

    // The reductions below keep no state between launches.
    void reserve_batch(int64_t) {}

    // The CPU's ReLU backward reads the activation, so it keeps no mask.
    int64_t relu_mask_bytes(int64_t, int64_t) const { return 0; }

    // Per model: z (n_out x n_batch) = W x + bias, then ReLU if `relu`; W is [n_out][n_in].
    void gemm_bias_act(Strided<float> z, Strided<uint8_t>, Strided<const float> w,
                       Strided<const float> x, Strided<const float> bias, bool relu, int64_t n_out,
                       int64_t n_batch, int64_t n_in, int64_t n_models) {
        self().gemm_batched(Trans::T, Trans::N, n_out, n_batch, n_in, w.data, n_in, w.stride,
                            x.data, n_in, x.stride, z.data, n_out, z.stride, n_models);
        self().for_each_2d(
            n_models * n_batch, n_out,
            BiasActModels{BiasActFunctor{z.data, bias.data, n_out,
                                         relu ? Activation::relu : Activation::identity},
                          n_batch, z.stride, bias.stride});
    }

    // Per model: grad_in (n_in x n_batch) = W^T grad_z, times relu'(activation_in); then
    // the bias gradient of the layer that produced activation_in.
    void gemm_drelu_bgrad(Strided<float> grad_in, Strided<float> grad_bias_in,
                          Strided<const float> w, Strided<const float> grad_z,
                          Strided<const float> activation_in, Strided<const uint8_t>, int64_t n_in,
                          int64_t n_batch, int64_t n_out, int64_t n_models) {
        self().gemm_batched(Trans::N, Trans::N, n_in, n_batch, n_out, w.data, n_in, w.stride,
                            grad_z.data, n_out, grad_z.stride, grad_in.data, n_in, grad_in.stride,
                            n_models);
        self().for_each_2d(n_models, n_batch * n_in,
                           ReluBackwardModels{ReluBackwardFunctor{grad_in.data, activation_in.data},
                                              grad_in.stride, activation_in.stride});
        bias_grad(grad_bias_in, grad_in, n_in, n_batch, n_models);
    }

    // Per model: dW^T (n_in x n_out) = x grad_z^T.
    void weight_grad(Strided<float> grad_w, Strided<const float> x, Strided<const float> grad_z,
                     int64_t n_in, int64_t n_out, int64_t n_batch, int64_t n_models) {
        self().gemm_batched(Trans::N, Trans::T, n_in, n_out, n_batch, x.data, n_in, x.stride,
                            grad_z.data, n_out, grad_z.stride, grad_w.data, n_in, grad_w.stride,
                            n_models);
    }
    // Work that weight_grad may have put on a side branch is done after this.
    void join_side() {}

    // Row by row (BiasGradFunctor::sum_rows): the same sums as the functor's column
    // walk, in blocks of one model's outputs (few, so on one thread), or model by model
    // for a batch (spread over the threads from 64 models on, as the views' rule is).
    void bias_grad(Strided<float> grad_bias, Strided<const float> grad_z, int64_t n_out,
                   int64_t n_batch, int64_t n_models) {
        const BiasGradModels views{BiasGradFunctor{grad_bias.data, grad_z.data, n_out, n_batch},
                                   grad_bias.stride, grad_z.stride};
        if (n_models == 1) {
            self().for_each((n_out + k_bias_block - 1) / k_bias_block, BiasGradBlock{views.f});
        } else {
            self().for_each_2d(n_models, 1, BiasGradModelRows{views});
        }
    }

    // The loss and its logit gradient, then the output layer's bias gradient.
    void softmax_xent_bgrad(Strided<float> grad_bias, const SoftmaxXentModels& loss,
                            int64_t n_batch, int64_t n_models) {
        self().for_each_2d(n_models, n_batch, loss);
        bias_grad(grad_bias, Strided<const float>{loss.f.logits, loss.logits_stride},
                  loss.f.n_classes, n_batch, n_models);
    }

    // The step's squared gradient norm and its non-finite guard, as the
    // generic path computes them.
    void grad_norm_guard(const GradNormGuardModels& g, int64_t n_models) {
        self().for_each_2d(n_models, g.norm.f.n_parts, g.norm);
        self().for_each_2d(n_models, 1, g.sum);
        self().for_each_2d(n_models, 1, g.guard);
    }

private:
    static constexpr int64_t k_bias_block = 64;  // outputs per block: whole cache lines

    // Block b of one model's outputs.
    struct BiasGradBlock {
        BiasGradFunctor f;
        void operator()(int64_t b) const {
            const int64_t first = b * k_bias_block;
            f.sum_rows(first, first + k_bias_block < f.n_out ? first + k_bias_block : f.n_out);
        }
    };
    // All outputs of model k (a row per model, as the per-model views spread).
    struct BiasGradModelRows {
        BiasGradModels views;
        struct Model {
            BiasGradFunctor f;
            void operator()(int64_t) const { f.sum_rows(0, f.n_out); }
        };
        Model row(int64_t k) const { return {views.row(k)}; }
        bool spans_models(int64_t n_rows) const { return n_rows > 1; }
    };

    Self& self() { return static_cast<Self&>(*this); }
};

}  // namespace mlp
