// What a training run does when a step's loss or gradient is not finite
// (--on-nan); the step's guard is ops/step_guard.hpp.
#pragma once

#include <string>

#include "host/config/names.hpp"

namespace mlp {

enum class NanPolicy {
    stop,        // keep the last good step's parameters, end the run with an error
    skip_batch,  // skip that step's update and carry on; the count is reported per epoch
};

// The policies by name (host/config/names.hpp).
constexpr NamedChoice<NanPolicy> k_nan_policies[] = {
    {"stop", NanPolicy::stop, "keep the last good checkpoint, exit 1"},
    {"skip-batch", NanPolicy::skip_batch, "skip its update, count it"},
};

// Throws UsageError naming --on-nan for anything but the names above.
NanPolicy parse_nan_policy(const std::string& name);
std::string to_string(NanPolicy policy);

}  // namespace mlp
