// The host side of host/train/engine.hpp: input checks, model stride, read-back reductions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "host/base/error.hpp"
#include "host/data/dataset.hpp"
#include "host/model/model.hpp"
#include "host/train/trainer.hpp"
#include "ops/host_device.hpp"
#include "ops/step_guard.hpp"

namespace mlp {

// A split of the data set on the device: its images (bytes) or float32 features, and its
// labels, uploaded once.
template <class Backend>
struct DeviceSplit {
    typename Backend::template Buffer<uint8_t> images;
    typename Backend::template Buffer<float> features;  // float splits; empty otherwise
    typename Backend::template Buffer<uint8_t> labels;
    int64_t n = 0;
    // The gather's `features` argument: nullptr for images.
    const float* float_features() const { return features.size() > 0 ? features.data() : nullptr; }
};

template <class Backend>
DeviceSplit<Backend> upload_split(Backend& be, const Split& src) {
    DeviceSplit<Backend> dst;
    dst.n = src.size();
    dst.images = be.template alloc<uint8_t>(int64_t(src.images.pixels.size()));
    dst.features = be.template alloc<float>(src.n_float_values());
    dst.labels = be.template alloc<uint8_t>(dst.n);
    be.copy_to_device(dst.images.data(), src.images.pixels.data(),
                      int64_t(src.images.pixels.size()));
    be.copy_to_device(dst.features.data(), src.float_data(), src.n_float_values());
    be.copy_to_device(dst.labels.data(), src.labels.labels.data(), dst.n);
    return dst;
}

// A buffer of n zeros (device buffers start uninitialised).
template <class T, class Backend>
typename Backend::template Buffer<T> zeroed(Backend& be, int64_t n) {
    typename Backend::template Buffer<T> b = be.template alloc<T>(n);
    const std::vector<T> h(static_cast<size_t>(n));  // value-initialised: zero
    be.copy_to_device(b.data(), h.data(), n);
    return b;
}

// Values between two models' parameters (gradients, optimizer state) in a batch: n_params
// rounded up to 64, so that every model's slice is 256-byte aligned for the batched GEMMs.
inline int64_t model_stride(const ModelShape& shape) {
    constexpr int64_t k_align = 64;
    return ceil_div(shape.n_params(), k_align) * k_align;
}

// Before anything is allocated: positive batch sizes, and a model that takes the data's
// features and has an output for each of its classes.
inline void check_engine_inputs(const ModelShape& shape, const Dataset& data,
                                const TrainerOptions& options) {
    if (options.batch_size <= 0) throw Error("batch size must be positive");
    if (options.eval_batch_size <= 0) throw Error("test batch size must be positive");
    if (data.train.has_float_features() != data.test.has_float_features() && data.test.size() > 0 &&
        data.train.size() > 0) {
        throw Error("the training and test splits hold different kinds of data (bytes, floats)");
    }
    if (options.kernels == KernelPath::fused && options.activation != Activation::relu) {
        throw UsageError("--kernels",
                         "the fused kernels run ReLU hidden layers only; use "
                         "--kernels generic for other activations");
    }
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

// A plan orders a subset of the training set, from one sample to all of them (its order's
// length n), gives each of its ceil(n / batch_size) steps a rate, and (shifting) each position
// 2 shifts.
inline void check_epoch_plan(const EpochPlan& plan, int64_t n_train, int64_t batch_size) {
    const int64_t n = int64_t(plan.perm.size());
    if (n < 1 || n > n_train) {
        throw Error("epoch order has " + std::to_string(n) + " entries, not 1.." +
                    std::to_string(n_train) + " (the training samples)");
    }
    for (size_t i = 0; i < plan.perm.size(); ++i) {
        if (plan.perm[i] < 0 || plan.perm[i] >= n_train) {
            throw Error("epoch order entry " + std::to_string(i) + " is " +
                        std::to_string(plan.perm[i]) + ", not a training sample (0.." +
                        std::to_string(n_train - 1) + ")");
        }
    }
    const int64_t n_steps = ceil_div(n, batch_size);
    if (int64_t(plan.lr.size()) != n_steps) {
        throw Error("epoch plan has " + std::to_string(plan.lr.size()) + " learning rates for " +
                    std::to_string(n_steps) + " steps (" + std::to_string(n) + " samples)");
    }
    if (!plan.shifts.empty() && int64_t(plan.shifts.size()) != 2 * n) {
        throw Error("epoch plan has " + std::to_string(plan.shifts.size()) +
                    " shift values, expected 2 per position of its order (" +
                    std::to_string(2 * n) + ")");
    }
}

// The launches of one step of an epoch in which the models' orders have different lengths:
// models [k0, k0 + n_models) take n_batch samples each.
struct StepGroup {
    int64_t k0 = 0, n_models = 0, n_batch = 0;
    bool operator==(const StepGroup& o) const {
        return k0 == o.k0 && n_models == o.n_models && n_batch == o.n_batch;
    }
};

// Appends to `groups` those of the step that starts at position `first`: consecutive models
// whose orders hold the same number of samples from there on (at most batch_size), those whose
// orders have ended left out. All models form one group but at the last steps of the shorter
// orders.
inline void append_step_groups(std::vector<StepGroup>& groups,
                               const std::vector<int64_t>& n_samples, int64_t first,
                               int64_t batch_size) {
    const size_t step_begin = groups.size();
    for (size_t k = 0; k < n_samples.size(); ++k) {
        const int64_t n_batch = std::min(batch_size, n_samples[k] - first);
        if (n_batch <= 0) continue;
        if (groups.size() > step_begin && groups.back().n_batch == n_batch &&
            groups.back().k0 + groups.back().n_models == int64_t(k)) {
            ++groups.back().n_models;
        } else {
            groups.push_back(StepGroup{int64_t(k), 1, n_batch});
        }
    }
}

// The one read-back per pass, reduced: per-sample loss and prediction of n samples, summed
// on the host in sample order (the same result on every run and backend). Sample i is
// labels[perm[i]] (labels[i] without perm). With `status` (one StepStatus per step of
// batch_size samples), only the samples of steps that updated count.
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

// Mean of the gradient's L2 norm over the steps that updated, from their squared norms.
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

}  // namespace mlp
