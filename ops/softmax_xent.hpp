// Softmax + cross-entropy, one sample (row of n_classes logits) per call.
// The loss uses log-sum-exp around the row maximum, so extreme logits neither
// overflow nor give log(0). The gradient of the mean loss over the batch with
// respect to the logits is (softmax - onehot) / n_batch; it overwrites the
// logits in place when `grad_scale` is non-zero. Loss and the predicted class
// are written per sample at `first + s` into epoch-long buffers, reduced once per
// epoch, so no step needs a host round trip.
#pragma once

#include <cmath>

#include "ops/host_device.hpp"

namespace mlp {

struct SoftmaxXentFunctor {
    float* logits;            // [n_batch * n_classes]; becomes dlogits when grad_scale != 0
    float* sample_loss;       // [epoch], written at first + s
    uint8_t* sample_pred;     // [epoch], argmax class, written at first + s
    const uint8_t* labels;    // data set labels
    const int32_t* perm;      // label of row s is labels[perm[first + s]]
    int64_t first;
    int64_t n_classes;
    float grad_scale;         // 1 / n_batch for training, 0 for evaluation

    MLP_HD void operator()(int64_t s) const {
        float* row = logits + s * n_classes;
        const int label = labels[perm[first + s]];
        float max_v = row[0];
        int arg_max = 0;
        for (int64_t c = 1; c < n_classes; ++c) {
            if (row[c] > max_v) {
                max_v = row[c];
                arg_max = int(c);
            }
        }
        float sum = 0.0f;
        for (int64_t c = 0; c < n_classes; ++c) sum += expf(row[c] - max_v);
        const float log_sum = logf(sum);
        sample_loss[first + s] = log_sum - (row[label] - max_v);
        sample_pred[first + s] = uint8_t(arg_max);
        if (grad_scale != 0.0f) {
            for (int64_t c = 0; c < n_classes; ++c) {
                const float p = expf(row[c] - max_v - log_sum);
                row[c] = (p - (c == label ? 1.0f : 0.0f)) * grad_scale;
            }
        }
    }
};

}  // namespace mlp
