// Hidden-layer activations (scikit-learn's MLPClassifier names: relu, tanh, logistic,
// identity), their value and their derivative, written once for both backends and for the
// host's double-precision predictor. The derivative is taken from the activation's output A,
// not from Z, because a hidden layer keeps only A (in place of Z): relu' = A > 0,
// tanh' = 1 - A^2, logistic' = A (1 - A), identity' = 1.
#pragma once

#include <cmath>

#include "ops/host_device.hpp"

namespace mlp {

enum class Activation : int8_t { relu, tanh, logistic, identity };

// Their names, by enumerator (scikit-learn's, which a model file's "activation" metadata and
// the Python estimator use); host/model/model.hpp parses them.
constexpr const char* k_activation_names[] = {"relu", "tanh", "logistic", "identity"};

// v <= 0, not !(v > 0), for ReLU: a NaN stays NaN, as in PyTorch, so the non-finite guard sees
// it instead of a silently dead unit. logistic through tanh (1/2 + tanh(v/2)/2) would differ
// from scikit-learn's 1 / (1 + e^-v) in the last bits; the exponential form is kept, with
// e^-v overflowing to infinity for very negative v, which gives the limit 0.
template <class T>
MLP_HD T activate(Activation act, T v) {
    switch (act) {
        case Activation::relu:
            return v <= T(0) ? T(0) : v;
        case Activation::tanh:
            return std::tanh(v);
        case Activation::logistic:
            return T(1) / (T(1) + std::exp(-v));
        case Activation::identity:
            break;
    }
    return v;
}

// dL/dZ from dL/dA = g and the activation's output a. ReLU is written as PyTorch's
// threshold_backward (a <= 0 ? 0 : g), so a NaN activation passes the gradient through.
template <class T>
MLP_HD T activation_backward(Activation act, T a, T g) {
    switch (act) {
        case Activation::relu:
            return a <= T(0) ? T(0) : g;
        case Activation::tanh:
            return g * (T(1) - a * a);
        case Activation::logistic:
            return g * a * (T(1) - a);
        case Activation::identity:
            break;
    }
    return g;
}

// Backward of a non-ReLU hidden activation, in place on the upstream gradient (ReLU keeps its
// own functor, ops/relu_backward.hpp, whose unconditional store the CPU vectorises).
struct ActivationBackwardFunctor {
    float* grad;              // dA in, dZ out
    const float* activation;  // A of the forward pass
    Activation act;

    MLP_HD void operator()(int64_t i) const {
        grad[i] = activation_backward(act, activation[i], grad[i]);
    }
};

}  // namespace mlp
