// Model files in the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header, then the raw tensor data. Tensors are named as
// the state_dict of PyTorch's nn.Sequential(Linear, ReLU, Linear, ReLU, ..., Linear), so that a
// file loads into such a module with load_state_dict() and no renaming or transposing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/model/model.hpp"

namespace mlp {

// Headers above this are refused before parsing, as the reference implementation does.
constexpr uint64_t k_max_safetensors_header_bytes = 100'000'000;

// Layer l becomes "{2l}.weight" with shape [n_out, n_in] and "{2l}.bias" with shape [n_out],
// dtype F32, data in the flat order; the header is padded with spaces to a multiple of 8 bytes.
// "__metadata__" holds `metadata` plus "layer_sizes" (e.g. "784,128,64,10"), which is always
// written from `shape`, overriding any value in `metadata`. Throws Error when params.size() does
// not match the shape or a metadata string is not valid UTF-8.
std::string encode_safetensors(const ModelShape& shape, const std::vector<float>& params,
                               const std::map<std::string, std::string>& metadata);

// Strict inverse of encode_safetensors; `path` is used only in messages. Every defect (truncated
// file, bad header, wrong dtype or shape, gaps, overlaps, extra or missing tensors, trailing
// bytes) throws a DataError naming the file and the defect. Tensors may appear in any order in
// the data, since the reference writer orders them by name. Non-finite values are accepted.
ModelFile decode_safetensors(const std::string& bytes, const std::string& path);

// encode_safetensors + write_file_atomic: a failed save leaves any previous file intact.
void save_model(const std::string& path, const ModelShape& shape, const std::vector<float>& params,
                const std::map<std::string, std::string>& metadata);

ModelFile load_model(const std::string& path, uint64_t limit_bytes = uint64_t(1) << 32);

// Files other than a model (the optimizer state beside a checkpoint) hold any set of F32 tensors.
struct NamedTensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::vector<float> values;  // row-major; as many as the shape's product
};

struct TensorFile {
    std::vector<NamedTensor> tensors;  // in the order of their data
    std::map<std::string, std::string> metadata;
};

// The tensors in the given order, F32 little-endian, header padded to 8 bytes like
// encode_safetensors. Throws Error when a tensor's value count does not match its shape, a name
// repeats or is "__metadata__", or a metadata string is not valid UTF-8.
std::string encode_tensors(const std::vector<NamedTensor>& tensors,
                           const std::map<std::string, std::string>& metadata);

// Strict inverse of encode_tensors, with the checks of decode_safetensors that do not depend on
// a model: every tensor F32 with 4 x (product of its shape) bytes, the data tiled from offset 0
// without gaps or overlaps, no trailing bytes, string metadata. Each defect throws a DataError
// naming `path` and the defect; which tensors must be present is the caller's business.
TensorFile decode_tensors(const std::string& bytes, const std::string& path);

}  // namespace mlp
