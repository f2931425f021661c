// Plain SGD over the single flat parameter buffer: p -= lr * g. The learning
// rate is read from device memory rather than baked into the launch so a
// captured graph stays valid when a schedule changes it between epochs.
#pragma once

#include "cuda/ops/hd.hpp"

namespace mlp {

struct SgdUpdateFunctor {
    float* params;
    const float* grads;
    const float* lr;  // one value

    MLP_HD void operator()(int64_t i) const { params[i] -= *lr * grads[i]; }
};

}  // namespace mlp
