// The non-finite guard of a training step, run over a range of one after the
// step's loss and gradient norm and before its update. Steps run in order on
// one stream, so a single thread can keep "the first bad step" in device
// memory without atomics, and the check costs no host synchronisation: the
// host reads the per-step status back once per epoch, with the losses.
//
// guard[0] is the first step of the epoch whose batch loss or gradient norm is
// not finite (-1: none yet); guard[1] tells this step's update to do nothing.
// With `stop`, every step from the first bad one on skips its update, so the
// parameters and optimizer state stay those of the last good step; otherwise
// only the bad step itself is skipped (--on-nan skip-batch).
#pragma once

#include <cstdint>

#include "ops/host_device.hpp"

namespace mlp {

// x - x is 0 for every finite x and NaN for NaN and the infinities; std::isfinite
// is not callable from device code.
MLP_HD bool is_finite(float x) {
    return x - x == 0.0f;
}

enum StepStatus : int8_t { step_ok = 0, step_non_finite = 1, step_after_stop = 2 };

struct StepGuardFunctor {
    int32_t* guard;            // [2], reset to {-1, 0} before every epoch
    int8_t* status;            // this step's StepStatus
    const float* sample_loss;  // the batch's per-sample losses
    int64_t n_batch;
    const float* grad_sq;  // the step's squared gradient norm
    int32_t step;
    bool stop;

    MLP_HD void operator()(int64_t) const {
        float loss = 0.0f;
        for (int64_t i = 0; i < n_batch; ++i) loss += sample_loss[i];
        // A NaN or infinity anywhere in the gradient makes its squared norm
        // NaN or infinite, so one scalar covers every parameter.
        const bool bad = !is_finite(loss) || !is_finite(*grad_sq);
        if (bad && guard[0] < 0) guard[0] = step;
        const bool stopped = stop && guard[0] >= 0;
        guard[1] = bad || stopped;
        *status = bad ? step_non_finite : stopped ? step_after_stop : step_ok;
    }
};

}  // namespace mlp
