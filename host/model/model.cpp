#include "host/model/model.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "host/base/error.hpp"
#include "host/base/rng.hpp"

namespace mlp {

ModelShape::ModelShape(std::vector<int64_t> sizes) : sizes_(std::move(sizes)) {
    if (sizes_.size() < 2) throw Error("model needs at least an input and an output size");
    for (int64_t s : sizes_) {
        if (s <= 0) throw Error("model layer sizes must be positive, got " + std::to_string(s));
    }
    offsets_.push_back(0);
    for (int l = 0; l < n_layers(); ++l) {
        offsets_.push_back(offsets_.back() + n_in(l) * n_out(l) + n_out(l));
    }
}

static std::vector<int64_t> layer_sizes(int64_t n_inputs, const std::vector<int64_t>& hidden,
                                        int64_t n_classes) {
    std::vector<int64_t> sizes = {n_inputs};
    sizes.insert(sizes.end(), hidden.begin(), hidden.end());
    sizes.push_back(n_classes);
    return sizes;
}

ModelShape::ModelShape(int64_t n_inputs, const std::vector<int64_t>& hidden, int64_t n_classes)
    : ModelShape(layer_sizes(n_inputs, hidden, n_classes)) {}

int64_t ModelShape::max_width() const {
    return *std::max_element(sizes_.begin() + 1, sizes_.end());
}

std::string ModelShape::to_string() const {
    std::string s;
    for (size_t i = 0; i < sizes_.size(); ++i) {
        if (i) s += '-';
        s += std::to_string(sizes_[i]);
    }
    return s;
}

std::vector<float> init_params(const ModelShape& shape, uint64_t seed) {
    std::vector<float> params(size_t(shape.n_params()), 0.0f);
    Rng rng(seed, k_stream_init);
    for (int l = 0; l < shape.n_layers(); ++l) {
        const double std_dev = std::sqrt(2.0 / double(shape.n_in(l)));
        float* w = params.data() + shape.weight_offset(l);
        for (int64_t i = 0; i < shape.n_in(l) * shape.n_out(l); ++i) {
            w[i] = float(rng.normal() * std_dev);
        }
    }
    return params;
}

Activation parse_activation(const std::string& name) {
    std::string names;
    for (size_t i = 0; i < std::size(k_activation_names); ++i) {
        if (name == k_activation_names[i]) return Activation(i);
        names += (i > 0 ? ", " : "") + std::string(k_activation_names[i]);
    }
    throw Error("unknown activation '" + name + "' (use " + names + ")");
}

const char* activation_name(Activation act) {
    return k_activation_names[size_t(act)];
}

Activation activation_of(const std::map<std::string, std::string>& metadata,
                         const std::string& path) {
    const auto it = metadata.find("activation");
    if (it == metadata.end()) return Activation::relu;
    try {
        return parse_activation(it->second);
    } catch (const Error& e) {
        throw DataError(path, std::string("metadata ") + e.what());
    }
}

}  // namespace mlp
