// Optimizer configuration, state and per-step scalars. The update rules are
// the fused functors in ops/ (sgd_update.hpp, adam_update.hpp), run by
// host/train/engine.hpp over the flat parameter buffer; this file holds what
// the host computes for them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/optimizer_step.hpp"

namespace mlp {

enum class OptimizerKind { sgd, adam, adamw };

// The optimizers by name (host/config/names.hpp), with the facts the checks and
// the CLI's defaults read.
struct OptimizerInfo {
    const char* name;
    OptimizerKind value;
    const char* help;
    const char* flags;            // the optimizer's own flags, space-separated
    double default_weight_decay;  // PyTorch's default for the class
};

constexpr OptimizerInfo k_optimizers[] = {
    {"sgd", OptimizerKind::sgd, "", "--momentum --nesterov", 0.0},
    {"adam", OptimizerKind::adam, "", "--beta1 --beta2 --eps", 0.0},
    {"adamw", OptimizerKind::adamw, "", "--beta1 --beta2 --eps", 0.01},
};

const OptimizerInfo& optimizer_info(OptimizerKind kind);

// PyTorch's hyperparameters and defaults (torch.optim.SGD, Adam, AdamW).
// Weight decay applies to every parameter, biases included, as PyTorch does
// by default; PyTorch's AdamW default of 0.01 (default_weight_decay above) is
// applied by resolve_train_defaults() for a command line that leaves
// --weight-decay out; a library caller sets it explicitly.
struct OptimizerConfig {
    OptimizerKind kind = OptimizerKind::sgd;
    double momentum = 0.0;      // sgd
    bool nesterov = false;      // sgd, needs momentum > 0
    double weight_decay = 0.0;  // L2 in the gradient (sgd, adam); decoupled (adamw)
    double beta1 = 0.9;         // adam, adamw
    double beta2 = 0.999;
    double eps = 1e-8;
    // scikit-learn's alpha: an L2 penalty alpha / 2 * ||W||^2 per sample of a batch, on the
    // weights alone (no biases), added to the gradient as alpha * W / batch_size before any
    // optimizer reads it (host/train/engine.hpp). Every optimizer; 0 is off.
    double l2_penalty = 0.0;
    // Adam, AdamW: eps added to sqrt(v) before the bias correction, as scikit-learn's
    // AdamOptimizer does (lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)); off:
    // PyTorch's m_hat / (sqrt(v_hat) + eps). The two differ only while sqrt(v) is near eps.
    bool eps_before_bias_correction = false;
};

// Throws UsageError, naming the flag, for a configuration PyTorch would refuse
// (NaN and infinity included) or that mixes options of different optimizers
// (e.g. --nesterov without --momentum, --momentum with adam).
void check_optimizer_config(const OptimizerConfig& config);

// State buffers an optimizer keeps, one value per parameter, named as in
// PyTorch's optimizer state: {"momentum_buffer"} for SGD with momentum,
// {"exp_avg", "exp_avg_sq"} for Adam and AdamW, none for plain SGD.
std::vector<std::string> optimizer_state_names(const OptimizerConfig& config);

// Everything an optimizer carries from one step to the next.
struct OptimizerState {
    int64_t step = 0;                         // updates done so far (PyTorch's state["step"])
    std::vector<std::vector<float>> buffers;  // in optimizer_state_names() order
};

// The update scalars of the steps steps_done + 1, ..., steps_done + lr.size()
// (1-based step counts, as in PyTorch's bias correction), from each step's
// learning rate; computed in double and rounded once, as PyTorch does with its
// Python-float factors.
std::vector<OptimizerStep> optimizer_steps(const OptimizerConfig& config,
                                           const std::vector<double>& lr, int64_t steps_done);

// The names of k_optimizers; parse throws UsageError naming --optimizer and the value.
std::string to_string(OptimizerKind kind);
OptimizerKind parse_optimizer_kind(const std::string& name);

}  // namespace mlp
