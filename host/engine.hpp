// The training step, written once against the backend interface
// (host/backend.hpp) and instantiated for the CPU and the CUDA backend.
//
// Activations are sample-contiguous ("features x batch" column-major, the
// notebook's layout): act[0] is the gathered input batch, act[l + 1] the
// output of layer l. Hidden outputs hold relu(Z) in place; the last holds the
// logits, which the loss overwrites with their gradient. Parameters and their
// gradients share one flat layout (host/model.hpp), so the update is one
// launch over one buffer.
//
// An epoch is a fixed sequence of steps whose launch arguments depend only on
// the step's position in the epoch; the order itself lives in a device buffer
// that is rewritten before each epoch. That is what lets a backend record the
// epoch once (a CUDA graph) and replay it. Loss and prediction are written
// per sample and read back once per epoch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cuda/ops/bias_act.hpp"
#include "cuda/ops/bias_grad.hpp"
#include "cuda/ops/gather.hpp"
#include "cuda/ops/relu_backward.hpp"
#include "cuda/ops/sgd_update.hpp"
#include "cuda/ops/softmax_xent.hpp"
#include "host/backend.hpp"
#include "host/dataset.hpp"
#include "host/error.hpp"
#include "host/model.hpp"
#include "host/trainer.hpp"

namespace mlp {

template <class Backend>
class Engine {
public:
    template <class T>
    using Buffer = typename Backend::template Buffer<T>;

    Engine(Backend& backend, const ModelShape& shape, const Dataset& data,
           const TrainerOptions& options)
        : be_(backend), shape_(shape), options_(options) {
        if (options.batch_size <= 0) throw Error("batch size must be positive");
        if (options.eval_batch_size <= 0) throw Error("test batch size must be positive");
        if (shape.n_inputs() != data.n_features()) {
            throw Error("model input size " + std::to_string(shape.n_inputs()) +
                        " does not match the data's " + std::to_string(data.n_features()) +
                        " features");
        }
        if (shape.n_classes() < data.n_classes) {
            throw Error("model has " + std::to_string(shape.n_classes()) +
                        " outputs but the data has " + std::to_string(data.n_classes) +
                        " classes");
        }
        upload_split(train_, data.train);
        upload_split(test_, data.test);
        h_train_labels_ = data.train.labels.labels;
        h_test_labels_ = data.test.labels.labels;

        params_ = be_.template alloc<float>(shape.n_params());
        grads_ = be_.template alloc<float>(shape.n_params());
        lr_ = be_.template alloc<float>(1);

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
    }

    const ModelShape& shape() const { return shape_; }
    int64_t n_train() const { return train_.n; }
    int64_t n_test() const { return test_.n; }

    void set_params(const std::vector<float>& h_params) {
        check_param_count(int64_t(h_params.size()));
        be_.copy_to_device(params_.data(), h_params.data(), shape_.n_params());
    }
    std::vector<float> params() {
        std::vector<float> h(size_t(shape_.n_params()));
        be_.copy_to_host(h.data(), params_.data(), shape_.n_params());
        return h;
    }

    // One epoch of SGD over the training set in the order `perm`.
    EpochResult train_epoch(const std::vector<int32_t>& perm, float lr,
                            const StepCallback& on_step) {
        if (int64_t(perm.size()) != train_.n) {
            throw Error("epoch order has " + std::to_string(perm.size()) + " entries for " +
                        std::to_string(train_.n) + " training samples");
        }
        be_.copy_to_device(train_perm_.data(), perm.data(), train_.n);
        be_.copy_to_device(lr_.data(), &lr, 1);
        const int64_t batch = options_.batch_size;
        const int64_t n_steps = ceil_div(train_.n, batch);
        auto steps = [&](bool report) {
            for (int64_t step = 0; step < n_steps; ++step) {
                const int64_t first = step * batch;
                train_step(first, std::min(batch, train_.n - first), true);
                if (report && on_step) on_step(step + 1, n_steps);
            }
        };
        if (options_.use_graph) {
            be_.run_graph(train_graph_, n_steps, [&] { steps(false); });
        } else {
            steps(true);
        }
        return reduce(train_.n, perm.data(), h_train_labels_);
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
        train_step(0, n, false);
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
    struct DeviceSplit {
        Buffer<uint8_t> images;
        Buffer<uint8_t> labels;
        int64_t n = 0;
    };

    void upload_split(DeviceSplit& dst, const Split& src) {
        dst.n = src.size();
        dst.images = be_.template alloc<uint8_t>(int64_t(src.images.pixels.size()));
        dst.labels = be_.template alloc<uint8_t>(dst.n);
        be_.copy_to_device(dst.images.data(), src.images.pixels.data(),
                           int64_t(src.images.pixels.size()));
        be_.copy_to_device(dst.labels.data(), src.labels.labels.data(), dst.n);
    }

    void check_param_count(int64_t n) const {
        if (n != shape_.n_params()) {
            throw Error("parameter vector has " + std::to_string(n) + " values, model " +
                        shape_.to_string() + " needs " + std::to_string(shape_.n_params()));
        }
    }

    float* weight(int l) { return params_.data() + shape_.weight_offset(l); }
    float* bias(int l) { return params_.data() + shape_.bias_offset(l); }

    // Gather, then every layer's GEMM and bias(+ReLU) epilogue; leaves the
    // logits in act_.back().
    void forward(const DeviceSplit& split, const int32_t* perm, int64_t first, int64_t n_batch) {
        const int64_t n_in = shape_.n_inputs();
        be_.for_each(n_batch * n_in,
                     GatherFunctor{act_[0].data(), split.images.data(), perm, first, n_in});
        for (int l = 0; l < shape_.n_layers(); ++l) {
            const int64_t in = shape_.n_in(l), out = shape_.n_out(l);
            float* z = act_[size_t(l) + 1].data();
            be_.gemm(Trans::T, Trans::N, out, n_batch, in, weight(l), in, act_[size_t(l)].data(),
                     in, z, out);
            const bool relu = l + 1 < shape_.n_layers();
            be_.for_each(n_batch * out, BiasActFunctor{z, bias(l), out, relu});
        }
    }

    void train_step(int64_t first, int64_t n_batch, bool update) {
        forward(train_, train_perm_.data(), first, n_batch);
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
            be_.for_each(out, BiasGradFunctor{grads_.data() + shape_.bias_offset(l), grad_z, out,
                                              n_batch});
            if (l == 0) break;
            // dA_in (in x batch) = W^T (in x out) * dZ (out x batch).
            float* grad_in = scratch_[size_t(l) % 2].data();
            be_.gemm(Trans::N, Trans::N, in, n_batch, out, weight(l), in, grad_z, out, grad_in,
                     in);
            be_.for_each(n_batch * in, ReluBackwardFunctor{grad_in, input});
            grad_z = grad_in;
        }
        if (update) {
            be_.for_each(shape_.n_params(),
                         SgdUpdateFunctor{params_.data(), grads_.data(), lr_.data()});
        }
    }

    void eval_step(int64_t first, int64_t n_batch) {
        forward(test_, test_perm_.data(), first, n_batch);
        be_.for_each(n_batch, SoftmaxXentFunctor{act_.back().data(), sample_loss_.data(),
                                                 sample_pred_.data(), test_.labels.data(),
                                                 test_perm_.data(), first, shape_.n_classes(),
                                                 0.0f});
    }

    // The one read-back per pass: per-sample loss and prediction, summed on
    // the host in sample order (the same result on every run and backend).
    EpochResult reduce(int64_t n, const int32_t* perm, const std::vector<uint8_t>& labels) {
        std::vector<float> loss(static_cast<size_t>(n));
        std::vector<uint8_t> pred(static_cast<size_t>(n));
        be_.copy_to_host(loss.data(), sample_loss_.data(), n);
        be_.copy_to_host(pred.data(), sample_pred_.data(), n);
        EpochResult r;
        double sum = 0.0;
        int64_t correct = 0;
        for (int64_t i = 0; i < n; ++i) {
            sum += double(loss[size_t(i)]);
            const int64_t sample = perm ? perm[i] : i;
            correct += pred[size_t(i)] == labels[size_t(sample)];
        }
        r.n_samples = n;
        r.loss = sum / double(n);
        r.accuracy = double(correct) / double(n);
        return r;
    }

    Backend& be_;
    ModelShape shape_;
    TrainerOptions options_;
    DeviceSplit train_, test_;
    std::vector<uint8_t> h_train_labels_, h_test_labels_;
    Buffer<float> params_, grads_, lr_;
    std::vector<Buffer<float>> act_;
    Buffer<float> scratch_[2];
    Buffer<int32_t> train_perm_, test_perm_;
    Buffer<float> sample_loss_;
    Buffer<uint8_t> sample_pred_;
    int64_t capacity_ = 0;
    typename Backend::Graph train_graph_, eval_graph_;
};

}  // namespace mlp
