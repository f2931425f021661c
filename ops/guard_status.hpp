// The non-finite guard's decision (ops/step_guard.hpp) from a step's summed
// batch loss and squared gradient norm, for kernels that compute those sums
// themselves (the fused path's reduction in cuda/kernels/reduce.cu). The
// same rule as StepGuardFunctor, so both paths report the same statuses.
#pragma once

#include <cstdint>

#include "ops/host_device.hpp"
#include "ops/step_guard.hpp"

namespace mlp {

MLP_HD void write_step_status(int32_t* guard, int8_t* status, float loss_sum, float grad_sq,
                              int32_t step, bool stop) {
    const bool bad = !is_finite(loss_sum) || !is_finite(grad_sq);
    if (bad && guard[0] < 0) guard[0] = step;
    const bool stopped = stop && guard[0] >= 0;
    guard[1] = bad || stopped;
    *status = bad ? step_non_finite : stopped ? step_after_stop : step_ok;
}

}  // namespace mlp
