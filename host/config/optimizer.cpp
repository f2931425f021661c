#include "host/config/optimizer.hpp"

#include <cmath>
#include <cstdio>
#include <utility>

#include "host/base/error.hpp"

namespace mlp {

static std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

void check_optimizer_config(const OptimizerConfig& c) {
    const bool sgd = c.kind == OptimizerKind::sgd;
    if (!(c.momentum >= 0.0 && c.momentum < 1.0)) {
        throw Error("--momentum " + num(c.momentum) + " is outside [0, 1)");
    }
    if (!sgd && c.momentum != 0.0) {
        throw Error("--momentum is an SGD option; " + to_string(c.kind) + " has --beta1 instead");
    }
    if (c.nesterov && (!sgd || c.momentum == 0.0)) {
        throw Error("--nesterov needs --optimizer sgd with --momentum > 0");
    }
    if (!(c.weight_decay >= 0.0) || !std::isfinite(c.weight_decay)) {
        throw Error("--weight-decay " + num(c.weight_decay) + " must be finite and >= 0");
    }
    for (const auto& [flag, v] : {std::pair<const char*, double>{"--beta1", c.beta1},
                                  std::pair<const char*, double>{"--beta2", c.beta2}}) {
        if (!(v >= 0.0 && v < 1.0)) {
            throw Error(std::string(flag) + " " + num(v) + " is outside [0, 1)");
        }
    }
    if (!(c.eps > 0.0) || !std::isfinite(c.eps)) {
        throw Error("--eps " + num(c.eps) + " must be positive and finite");
    }
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
        s.step_size = adam ? float(lr[k] / (1.0 - std::pow(config.beta1, t))) : s.lr;
        s.bias_correction2_sqrt = adam ? float(std::sqrt(1.0 - std::pow(config.beta2, t))) : 1.0f;
        s.decay =
            config.kind == OptimizerKind::adamw ? float(1.0 - lr[k] * config.weight_decay) : 1.0f;
    }
    return steps;
}

std::string to_string(OptimizerKind kind) {
    switch (kind) {
        case OptimizerKind::sgd:
            return "sgd";
        case OptimizerKind::adam:
            return "adam";
        case OptimizerKind::adamw:
            return "adamw";
    }
    return "unknown";
}

OptimizerKind parse_optimizer_kind(const std::string& name) {
    for (OptimizerKind k : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw}) {
        if (to_string(k) == name) return k;
    }
    throw Error("unknown optimizer '" + name + "' (use sgd, adam or adamw)");
}

}  // namespace mlp
