#include "host/config/optimizer.hpp"

#include <cmath>

#include "host/base/error.hpp"
#include "host/config/checks.hpp"
#include "host/config/names.hpp"

namespace mlp {

const OptimizerInfo& optimizer_info(OptimizerKind kind) {
    return entry_of(k_optimizers, kind);
}

void check_optimizer_config(const OptimizerConfig& c) {
    const bool sgd = c.kind == OptimizerKind::sgd;
    check_real("--momentum", c.momentum, k_below_one);
    if (!sgd && c.momentum != 0.0) {
        throw UsageError("--momentum",
                         "is an SGD option; " + to_string(c.kind) + " has --beta1 instead");
    }
    if (c.nesterov && (!sgd || c.momentum == 0.0)) {
        throw UsageError("--nesterov", "needs --optimizer sgd with --momentum > 0");
    }
    check_real("--weight-decay", c.weight_decay, k_non_negative);
    check_real("alpha", c.l2_penalty, k_non_negative);
    check_real("--beta1", c.beta1, k_below_one);
    check_real("--beta2", c.beta2, k_below_one);
    check_real("--eps", c.eps, k_positive);
}

std::vector<std::string> optimizer_state_names(const OptimizerConfig& config) {
    if (config.kind != OptimizerKind::sgd) return {"exp_avg", "exp_avg_sq"};
    if (config.momentum != 0.0) return {"momentum_buffer"};
    return {};
}

std::vector<OptimizerStep> optimizer_steps(const OptimizerConfig& config,
                                           const std::vector<double>& lr, int64_t steps_done) {
    const bool adam = config.kind != OptimizerKind::sgd;
    std::vector<OptimizerStep> steps(lr.size());
    for (size_t k = 0; k < lr.size(); ++k) {
        const double t = double(steps_done) + double(k) + 1.0;
        OptimizerStep& s = steps[k];
        s.lr = float(lr[k]);
        const double bc2_sqrt = std::sqrt(1.0 - std::pow(config.beta2, t));
        s.step_size = adam ? float(lr[k] / (1.0 - std::pow(config.beta1, t))) : s.lr;
        s.bias_correction2_sqrt = adam ? float(bc2_sqrt) : 1.0f;
        if (adam && config.eps_before_bias_correction) {
            // p - lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps): the same update
            // functor with the correction moved into the step size.
            s.step_size = float(lr[k] * bc2_sqrt / (1.0 - std::pow(config.beta1, t)));
            s.bias_correction2_sqrt = 1.0f;
        }
        s.decay =
            config.kind == OptimizerKind::adamw ? float(1.0 - lr[k] * config.weight_decay) : 1.0f;
    }
    return steps;
}

std::string to_string(OptimizerKind kind) {
    return optimizer_info(kind).name;
}

OptimizerKind parse_optimizer_kind(const std::string& name) {
    return parse_name(k_optimizers, name, "--optimizer", "optimizer").value;
}

}  // namespace mlp
