// Shape of a fully connected ReLU network and the layout of its single flat
// parameter buffer. Layer l (0-based) stores its weight as PyTorch's
// nn.Linear does, [n_out][n_in] row-major, followed by its bias [n_out]; the
// layers follow each other. In column-major (cuBLAS/CBLAS) terms the weight
// is an n_in x n_out matrix with leading dimension n_in, i.e. W^T, so the
// forward GEMM is Z = op(W^T)^T X = gemm(T, N, n_out, batch, n_in). Keeping
// PyTorch's layout means checkpoints need no transpose to be loaded elsewhere.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/activation.hpp"

namespace mlp {

class ModelShape {
public:
    ModelShape() = default;
    // sizes = {n_inputs, hidden..., n_classes}; throws Error when fewer than
    // two sizes or any size is not positive.
    explicit ModelShape(std::vector<int64_t> sizes);
    // {n_inputs, hidden..., n_classes}: the shape a data set and --hidden give.
    ModelShape(int64_t n_inputs, const std::vector<int64_t>& hidden, int64_t n_classes);

    const std::vector<int64_t>& sizes() const { return sizes_; }
    int n_layers() const { return int(sizes_.size()) - 1; }
    int64_t n_in(int layer) const { return sizes_[size_t(layer)]; }
    int64_t n_out(int layer) const { return sizes_[size_t(layer) + 1]; }
    int64_t n_inputs() const { return sizes_.front(); }
    int64_t n_classes() const { return sizes_.back(); }
    int64_t max_width() const;  // widest layer output (not counting inputs)

    int64_t weight_offset(int layer) const { return offsets_[size_t(layer)]; }
    int64_t bias_offset(int layer) const {
        return offsets_[size_t(layer)] + n_in(layer) * n_out(layer);
    }
    int64_t n_params() const { return offsets_.back(); }

    std::string to_string() const;  // "784-128-64-10"

private:
    std::vector<int64_t> sizes_;
    std::vector<int64_t> offsets_;  // n_layers + 1 entries
};

// He-normal weights (std = sqrt(2 / n_in)) drawn on the host from the seed, so
// every backend starts from the same values; zero biases.
std::vector<float> init_params(const ModelShape& shape, uint64_t seed);

// The hidden layers' activation by its name (k_activation_names); throws Error listing the
// names for any other.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation act);

// A model file's "activation" metadata: relu when absent (every model before the key existed
// was a ReLU network); an unknown name is a DataError naming `path`.
Activation activation_of(const std::map<std::string, std::string>& metadata,
                         const std::string& path);

// A model as a file holds it: its shape, its parameters and the metadata saved with them
// (host/formats/safetensors.hpp reads and writes it).
struct ModelFile {
    ModelShape shape;
    std::vector<float> params;                    // the flat layout above
    std::map<std::string, std::string> metadata;  // everything in __metadata__, layer_sizes too
};

}  // namespace mlp
