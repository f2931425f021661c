// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header, then the raw tensor data. One codec reads and writes any set of
// named F32 tensors with string metadata (models and the training state beside a checkpoint);
// the model functions below map a ModelFile's flat parameters to the state_dict names of
// PyTorch's nn.Sequential(Linear, ReLU, Linear, ReLU, ..., Linear), so that a model file loads
// into such a module with load_state_dict() and no renaming or transposing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "host/model/model.hpp"

namespace mlp {

// Headers above this are refused before parsing, as the reference implementation does.
constexpr uint64_t k_max_safetensors_header_bytes = 100'000'000;

struct NamedTensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::vector<float> values;  // row-major; as many as the shape's product
};

struct TensorFile {
    std::vector<NamedTensor> tensors;  // in the order of their data
    std::map<std::string, std::string> metadata;
};

// A tensor a file must hold.
struct TensorSpec {
    std::string name;
    std::vector<uint64_t> shape;
};

// The tensors a file of a known kind must hold, given its metadata, so that the decoder can name
// a missing, unexpected or misshapen tensor at the point where it reads the entry.
struct TensorLayout {
    // Returns the tensors, in the order their defects are reported; throws a DataError for
    // metadata that cannot say (e.g. no layer_sizes).
    std::function<std::vector<TensorSpec>(const std::map<std::string, std::string>& metadata,
                                          const std::string& path)>
        tensors_for;
    bool metadata_required = false;  // "header has no __metadata__" otherwise
    std::string shapes_from;         // for messages: "expected [4, 3] from layer_sizes"
};

// The tensors in the given order, F32 little-endian, "__metadata__" first, the header padded
// with spaces to a multiple of 8 bytes. Throws Error when a tensor's value count does not match
// its shape, a name repeats or is "__metadata__", or a metadata string is not valid UTF-8.
std::string encode_safetensors(const TensorFile& file);

// Strict inverse of encode_safetensors; `path` is used only in messages. Every defect (not a
// safetensors file at all, truncated file, bad header, dtype not F32, byte size not matching the
// shape, gaps, overlaps, trailing bytes, and with a layout: missing, extra or misshapen tensors)
// throws a DataError naming the file and the defect. Tensors may appear in any order in the
// data, since the reference writer orders them by name. Non-finite values are accepted: the
// codec keeps bits; whether they are usable is the reader's business (load_model).
TensorFile decode_safetensors(const std::string& bytes, const std::string& path,
                              const TensorLayout* layout = nullptr);

// --- Models ---------------------------------------------------------------------------------

// Layer l becomes "{2l}.weight" with shape [n_out, n_in] and "{2l}.bias" with shape [n_out], in
// the flat order; the metadata gets "layer_sizes" (e.g. "784,128,64,10") from `shape`,
// overriding any value in `metadata`. Throws Error when params.size() does not match the shape.
TensorFile model_tensors(const ModelShape& shape, const std::vector<float>& params,
                         std::map<std::string, std::string> metadata);

// What a model file must hold: __metadata__ with layer_sizes, and the tensors those sizes give.
const TensorLayout& model_layout();

// model_tensors + encode_safetensors, and decode_safetensors with model_layout() back into a
// ModelFile (metadata layer_sizes included).
std::string encode_model(const ModelShape& shape, const std::vector<float>& params,
                         const std::map<std::string, std::string>& metadata);
ModelFile decode_model(const std::string& bytes, const std::string& path);

// Where flat parameter `index` of a model lives: "2.weight" at {row, column}, "2.bias" at {i}.
struct ParamLocation {
    std::string tensor;
    std::vector<uint64_t> index;
};
ParamLocation locate_param(const ModelShape& shape, int64_t index);

// "[3, 17]"
std::string index_text(const std::vector<uint64_t>& index);

// Throws DataError(path, ...) naming the tensor and index of the first NaN or infinity in the
// parameters.
void check_finite_params(const ModelFile& model, const std::string& path);

// encode_model + write_file_atomic: a failed save leaves any previous file intact.
void save_model(const std::string& path, const ModelShape& shape, const std::vector<float>& params,
                const std::map<std::string, std::string>& metadata);

// read_file + decode_model + check_finite_params: a model that loads can be evaluated.
ModelFile load_model(const std::string& path, uint64_t limit_bytes = uint64_t(1) << 32);

}  // namespace mlp
