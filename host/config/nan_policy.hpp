// What a training run does when a step's loss or gradient is not finite
// (--on-nan); the step's guard is cuda/ops/step_guard.hpp.
#pragma once

namespace mlp {

enum class NanPolicy {
    stop,        // keep the last good step's parameters, end the run with an error
    skip_batch,  // skip that step's update and carry on; the count is reported per epoch
};

}  // namespace mlp
