// An independent double-precision implementation of the network, written as
// plainly as possible (per-sample loops, no GEMM, no functors), to check the
// production step against: loss, gradients and whole SGD epochs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "host/data/dataset.hpp"
#include "host/model/model.hpp"

namespace mlp::test {

struct ReferenceMlp {
    ModelShape shape;
    std::vector<double> params;  // flat layout of host/model/model.hpp
    Activation activation = Activation::relu;  // of the hidden layers (forward and losses)

    double weight(int l, int64_t o, int64_t i) const {
        return params[size_t(shape.weight_offset(l) + o * shape.n_in(l) + i)];
    }
    double bias(int l, int64_t o) const { return params[size_t(shape.bias_offset(l) + o)]; }

    double act(double v) const {
        return activation == Activation::relu ? std::max(v, 0.0) : activate(activation, v);
    }

    // Pre-activations of every layer for one input (z[l] has n_out(l) values).
    std::vector<std::vector<double>> forward(const std::vector<double>& x) const {
        std::vector<std::vector<double>> z;
        std::vector<double> a = x;
        for (int l = 0; l < shape.n_layers(); ++l) {
            std::vector<double> zl(size_t(shape.n_out(l)));
            for (int64_t o = 0; o < shape.n_out(l); ++o) {
                double s = bias(l, o);
                for (int64_t i = 0; i < shape.n_in(l); ++i) s += weight(l, o, i) * a[size_t(i)];
                zl[size_t(o)] = s;
            }
            z.push_back(zl);
            a = zl;
            if (l + 1 < shape.n_layers()) {
                for (double& v : a) v = act(v);
            }
        }
        return z;
    }

    static std::vector<double> input(const Split& split, int64_t sample) {
        const int64_t nf = split.images.n_features();
        std::vector<double> x(static_cast<size_t>(nf));
        for (int64_t f = 0; f < nf; ++f) {
            x[size_t(f)] = split.has_float_features()
                               ? double(split.features[size_t(sample * nf + f)])
                               : double(split.images.pixels[size_t(sample * nf + f)]) / 255.0;
        }
        return x;
    }

    double sample_loss(const Split& split, int64_t sample) const {
        const auto z = forward(input(split, sample));
        const auto& logits = z.back();
        const double m = *std::max_element(logits.begin(), logits.end());
        double sum = 0.0;
        for (double v : logits) sum += std::exp(v - m);
        return m + std::log(sum) - logits[split.labels.labels[size_t(sample)]];
    }

    double mean_loss(const Split& split, const std::vector<int32_t>& ids) const {
        double s = 0.0;
        for (int32_t id : ids) s += sample_loss(split, id);
        return s / double(ids.size());
    }

    // Analytic gradient of the mean loss over `ids` (plain backprop).
    std::vector<double> gradient(const Split& split, const std::vector<int32_t>& ids) const {
        std::vector<double> g(params.size(), 0.0);
        const double scale = 1.0 / double(ids.size());
        for (int32_t id : ids) {
            const auto x = input(split, id);
            const auto z = forward(x);
            std::vector<double> dz = z.back();
            const double m = *std::max_element(dz.begin(), dz.end());
            double sum = 0.0;
            for (double v : dz) sum += std::exp(v - m);
            for (size_t c = 0; c < dz.size(); ++c) {
                dz[c] = std::exp(z.back()[c] - m) / sum -
                        (int64_t(c) == split.labels.labels[size_t(id)] ? 1.0 : 0.0);
            }
            for (int l = shape.n_layers() - 1; l >= 0; --l) {
                std::vector<double> a_in(size_t(shape.n_in(l)));
                for (int64_t i = 0; i < shape.n_in(l); ++i) {
                    a_in[size_t(i)] = l == 0 ? x[size_t(i)] : act(z[size_t(l) - 1][size_t(i)]);
                }
                for (int64_t o = 0; o < shape.n_out(l); ++o) {
                    for (int64_t i = 0; i < shape.n_in(l); ++i) {
                        g[size_t(shape.weight_offset(l) + o * shape.n_in(l) + i)] +=
                            scale * dz[size_t(o)] * a_in[size_t(i)];
                    }
                    g[size_t(shape.bias_offset(l) + o)] += scale * dz[size_t(o)];
                }
                if (l == 0) break;
                std::vector<double> da(size_t(shape.n_in(l)), 0.0);
                for (int64_t i = 0; i < shape.n_in(l); ++i) {
                    for (int64_t o = 0; o < shape.n_out(l); ++o) {
                        da[size_t(i)] += weight(l, o, i) * dz[size_t(o)];
                    }
                    da[size_t(i)] = activation_backward(
                        activation, act(z[size_t(l) - 1][size_t(i)]), da[size_t(i)]);
                }
                dz = da;
            }
        }
        return g;
    }

    // Central finite differences of mean_loss over `ids` for every parameter.
    std::vector<double> numeric_gradient(const Split& split, const std::vector<int32_t>& ids,
                                         double h) {
        std::vector<double> numeric(params.size());
        for (size_t i = 0; i < params.size(); ++i) {
            const double saved = params[i];
            params[i] = saved + h;
            const double up = mean_loss(split, ids);
            params[i] = saved - h;
            const double down = mean_loss(split, ids);
            params[i] = saved;
            numeric[i] = (up - down) / (2.0 * h);
        }
        return numeric;
    }

    // The smallest |pre-activation| of a hidden layer over `ids`: a ReLU input closer to 0 than
    // a finite difference's step would straddle two slopes.
    double min_abs_hidden_z(const Split& split, const std::vector<int32_t>& ids) const {
        double m = 1e300;
        for (int32_t id : ids) {
            const auto z = forward(input(split, id));
            for (size_t l = 0; l + 1 < z.size(); ++l) {
                for (double v : z[l]) m = std::min(m, std::abs(v));
            }
        }
        return m;
    }

    // One epoch of minibatch SGD in the order `perm`, last batch partial.
    void sgd_epoch(const Split& split, const std::vector<int32_t>& perm, int64_t batch,
                   double lr) {
        for (size_t first = 0; first < perm.size(); first += size_t(batch)) {
            const size_t last = std::min(perm.size(), first + size_t(batch));
            const std::vector<int32_t> ids(perm.begin() + long(first), perm.begin() + long(last));
            const auto g = gradient(split, ids);
            for (size_t i = 0; i < params.size(); ++i) params[i] -= lr * g[i];
        }
    }
};

// init_params with every bias set away from zero (a pattern of +-0.1, offset 0.013), so that
// the ReLU inputs of a few samples keep clear of the kink for finite differences.
inline std::vector<float> params_with_biases_off_zero(const ModelShape& shape, uint64_t seed) {
    std::vector<float> params = init_params(shape, seed);
    for (int l = 0; l < shape.n_layers(); ++l) {
        for (int64_t o = 0; o < shape.n_out(l); ++o) {
            params[size_t(shape.bias_offset(l) + o)] = 0.05f * float((o % 5) - 2) + 0.013f;
        }
    }
    return params;
}

// ||a - b|| / max(||b||, tiny): the normalised error every backend check uses.
template <class A, class B>
double normalised_error(const A& a, const B& b) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < b.size(); ++i) {
        const double d = double(a[i]) - double(b[i]);
        num += d * d;
        den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace mlp::test
