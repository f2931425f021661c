#include "host/formats/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/read_file.hpp"
#include "host/formats/safetensors.hpp"

namespace mlp {

static const char* const k_state_format = "mlptrain-state";

std::string state_path(const std::string& checkpoint_path) {
    const std::string ext = ".safetensors";
    const std::string& p = checkpoint_path;
    if (p.size() > ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0) {
        return p.substr(0, p.size() - ext.size()) + ".state" + ext;
    }
    return p + ".state" + ext;
}

static std::string layer_sizes(const ModelShape& shape) {
    std::string s;
    for (size_t i = 0; i < shape.sizes().size(); ++i) {
        s += (i ? "," : "") + std::to_string(shape.sizes()[i]);
    }
    return s;
}

// FNV-1a over the tensors' values as the file stores them (little-endian F32,
// in data order): the structure checks catch a cut or padded file, this
// catches flipped bytes.
static std::string data_checksum(const std::vector<NamedTensor>& tensors) {
    uint64_t h = k_fnv1a64_offset;
    for (const NamedTensor& t : tensors) {
        for (float v : t.values) {
            uint32_t bits;
            std::memcpy(&bits, &v, sizeof bits);
            const unsigned char le[4] = {uint8_t(bits), uint8_t(bits >> 8), uint8_t(bits >> 16),
                                         uint8_t(bits >> 24)};
            h = fnv1a64(le, 4, h);
        }
    }
    char buf[20];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return buf;
}

void save_checkpoint(const std::string& path, const ModelShape& shape,
                     const std::vector<float>& params, const OptimizerState& optimizer,
                     const std::vector<std::string>& buffer_names,
                     const std::map<std::string, std::string>& metadata) {
    if (optimizer.buffers.size() != buffer_names.size()) {
        throw Error("cannot save checkpoint " + path + ": " +
                    std::to_string(optimizer.buffers.size()) + " optimizer buffers for " +
                    std::to_string(buffer_names.size()) + " names");
    }
    const uint64_t n = uint64_t(shape.n_params());
    std::vector<NamedTensor> tensors = {{"params", {n}, params}};
    for (size_t k = 0; k < buffer_names.size(); ++k) {
        tensors.push_back({buffer_names[k], {n}, optimizer.buffers[k]});
    }
    std::map<std::string, std::string> state_meta = metadata;
    state_meta["format"] = k_state_format;
    state_meta["layer_sizes"] = layer_sizes(shape);
    state_meta["optimizer_step"] = std::to_string(optimizer.step);
    state_meta["data_fnv1a64"] = data_checksum(tensors);
    write_file_atomic(state_path(path), encode_safetensors({tensors, state_meta}),
                      "training state");
    save_model(path, shape, params, metadata);
}

// A name from the file, quoted and cut short, so it cannot garble the message.
static std::string printable(const std::string& s) {
    const std::string q =
        nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return q.size() > 80 ? q.substr(0, 80) + "..." : q;
}

static int64_t parse_count(const std::map<std::string, std::string>& meta, const char* key,
                           const std::string& path) {
    auto it = meta.find(key);
    if (it == meta.end()) throw DataError(path, std::string("__metadata__ has no ") + key);
    const std::string& text = it->second;
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < 0 || text[0] == '-' || text[0] == '+') {
        throw DataError(path, std::string("__metadata__ ") + key + " is \"" + text +
                                  "\", expected a non-negative integer");
    }
    return v;
}

// The file a resumed run was pointed at when no state lies beside it: a plain model, or the
// state file itself, each said in words with what to pass instead.
[[noreturn]] static void refuse_non_checkpoint(const std::string& path, uint64_t limit_bytes) {
    const std::string spath = state_path(path);
    const TensorFile file = decode_safetensors(read_file(path, limit_bytes), path);
    const auto format = file.metadata.find("format");
    if (format != file.metadata.end() && format->second == k_state_format) {
        const std::string suffix = ".state.safetensors";
        const size_t stem = path.size() - std::min(path.size(), suffix.size());
        const std::string model = path.size() > suffix.size() && path.substr(stem) == suffix
                                      ? path.substr(0, stem) + ".safetensors"
                                      : std::string("the model file beside it");
        throw DataError(path, "is the training state of a checkpoint, not the checkpoint; " +
                                  ("resume with --resume " + model));
    }
    throw DataError(path, "is a model, not a checkpoint: there is no training state (" + spath +
                              ") beside it. A checkpoint is written by train --checkpoint " + path +
                              " (the model and its training state beside it) and "
                              "resumed with --resume " +
                              path);
}

// The state file, its format and layer sizes checked; a damaged file fails its checksum.
static TensorFile read_state(const std::string& path, uint64_t limit_bytes) {
    const std::string spath = state_path(path);
    if (!std::filesystem::exists(spath) && std::filesystem::is_regular_file(path)) {
        refuse_non_checkpoint(path, limit_bytes);
    }
    TensorFile file = decode_safetensors(read_file(spath, limit_bytes), spath);
    const auto format = file.metadata.find("format");
    if (format != file.metadata.end() && format->second == "mlptrain") {
        throw DataError(spath,
                        "is a model, not a checkpoint's training state (__metadata__ "
                        "format is \"mlptrain\"); write a checkpoint with train "
                        "--checkpoint " +
                            path);
    }
    if (format == file.metadata.end() || format->second != k_state_format) {
        throw DataError(spath, "not an mlptrain training state (__metadata__ format is not \"" +
                                   std::string(k_state_format) + "\")");
    }
    const auto checksum = file.metadata.find("data_fnv1a64");
    if (checksum == file.metadata.end() || checksum->second != data_checksum(file.tensors)) {
        throw DataError(spath,
                        "tensor data does not match its checksum (data_fnv1a64): the "
                        "file is damaged");
    }
    return file;
}

std::map<std::string, std::string> checkpoint_metadata(const std::string& path,
                                                       uint64_t limit_bytes) {
    return read_state(path, limit_bytes).metadata;
}

// A resumed run would carry a NaN or infinity on for good; named like a model's bad value.
static void check_finite(const NamedTensor& t, const ModelShape& shape, const std::string& spath) {
    const auto bad =
        std::find_if(t.values.begin(), t.values.end(), [](float v) { return !std::isfinite(v); });
    if (bad == t.values.end()) return;
    const int64_t i = bad - t.values.begin();
    const ParamLocation at = locate_param(shape, i);
    const char* value = std::isnan(*bad) ? "NaN" : *bad > 0 ? "+inf" : "-inf";
    throw DataError(spath, "tensor " + printable(t.name) + " holds " + value + " at [" +
                               std::to_string(i) + "] (" + printable(at.tensor) + " at " +
                               index_text(at.index) +
                               "), the first non-finite value; a checkpoint's parameters and "
                               "optimizer state must be finite");
}

TrainingState load_checkpoint(const std::string& path, const ModelShape& shape,
                              const std::vector<std::string>& buffer_names,
                              const std::map<std::string, std::string>& now, std::string* note,
                              uint64_t limit_bytes) {
    const std::string spath = state_path(path);
    TensorFile file = read_state(path, limit_bytes);
    const auto sizes = file.metadata.find("layer_sizes");
    if (sizes == file.metadata.end() || sizes->second != layer_sizes(shape)) {
        throw DataError(spath, "layer_sizes " +
                                   (sizes == file.metadata.end() ? "missing" : sizes->second) +
                                   " do not match this run's model " + layer_sizes(shape) +
                                   " (--hidden and the data's image size and classes)");
    }
    check_resume_matches(file.metadata, now, path);

    TrainingState state;
    state.metadata = file.metadata;
    state.epochs_done = parse_count(file.metadata, "epoch", spath);
    state.optimizer.step = parse_count(file.metadata, "optimizer_step", spath);
    std::vector<std::string> wanted = {"params"};
    wanted.insert(wanted.end(), buffer_names.begin(), buffer_names.end());
    const uint64_t n = uint64_t(shape.n_params());
    for (const std::string& name : wanted) {
        NamedTensor* found = nullptr;
        for (NamedTensor& t : file.tensors) {
            if (t.name == name) found = &t;
        }
        if (!found) throw DataError(spath, "missing tensor \"" + name + "\"");
        if (found->shape != std::vector<uint64_t>{n}) {
            throw DataError(spath, "tensor \"" + name + "\" does not have shape [" +
                                       std::to_string(n) + "] (the model's parameter count)");
        }
        check_finite(*found, shape, spath);
        if (name == "params") {
            state.params = std::move(found->values);
        } else {
            state.optimizer.buffers.push_back(std::move(found->values));
        }
    }
    if (file.tensors.size() != wanted.size()) {
        for (const NamedTensor& t : file.tensors) {
            bool known = false;
            for (const std::string& w : wanted) known |= t.name == w;
            if (!known) throw DataError(spath, "unexpected tensor " + printable(t.name));
        }
    }

    if (note) {
        note->clear();
        if (!std::filesystem::exists(path)) {
            *note = "note: " + path + " is missing; resuming from " + spath;
        } else {
            const ModelFile model = load_model(path, limit_bytes);
            const auto epoch = model.metadata.find("epoch");
            if (epoch == model.metadata.end() ||
                epoch->second != std::to_string(state.epochs_done)) {
                *note = "note: " + path + " holds epoch " +
                        (epoch == model.metadata.end() ? "?" : epoch->second) + ", " + spath +
                        " epoch " + std::to_string(state.epochs_done) +
                        " (a run stopped between the two writes); resuming from the state";
            }
        }
    }
    return state;
}

}  // namespace mlp
