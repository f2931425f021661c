// The per-step scalars of a parameter update. A schedule changes the learning
// rate every step and Adam's bias correction depends on the global step count,
// so these cannot be launch arguments of a recorded epoch: the host computes
// them in double for every step of the coming epoch (host/config/optimizer.hpp) and
// uploads the table with the epoch order; step k's update reads entry k.
#pragma once

#include <cfloat>
#include <cmath>
#include <type_traits>

#include "ops/host_device.hpp"

namespace mlp {

struct OptimizerStep {
    float lr;
    float step_size;              // Adam: lr / (1 - beta1^t); lr otherwise
    float bias_correction2_sqrt;  // Adam: sqrt(1 - beta2^t); 1 otherwise
    float decay;                  // AdamW: 1 - lr * weight_decay; 1 otherwise
};
static_assert(std::is_standard_layout<OptimizerStep>::value, "lr_address() relies on it");

// Where step's learning rate lies, for functors that need only it. lr is the
// first member of a standard-layout struct, so the two pointers convert into
// each other; nothing is read, and the table may be in device memory.
MLP_HD const float* lr_address(const OptimizerStep* step) {
    return reinterpret_cast<const float*>(step);
}

// Optimizer state that only decays (momentum or Adam's moments of a weight
// whose gradient stays zero, e.g. on an always-black border pixel) sinks into
// the subnormal range within a few thousand steps, where x86 CPUs compute
// about 100 times slower; measured, an AdamW epoch went from 3 s to 15 s.
// Such values cannot move a parameter, so the state is stored flushed to zero
// below FLT_MIN, identically on every backend. fabsf and one compare, not
// two compares joined by &&, which the host compiler may keep as a branch.
MLP_HD float flush_subnormal(float v) {
    return fabsf(v) < FLT_MIN ? 0.0f : v;
}

}  // namespace mlp
