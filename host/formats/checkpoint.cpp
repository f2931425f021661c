#include "host/formats/checkpoint.hpp"

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

// The shortest decimal that reads back as the same value, so a flag compares
// equal after a round trip through the file and still reads well ("0.1").
template <class T>
static std::string exact(T v) {
    char buf[40];
    for (int digits = 1; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
        if (T(std::strtod(buf, nullptr)) == v) break;
    }
    return buf;
}

static std::string join(const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

static std::string layer_sizes(const ModelShape& shape) {
    return join(shape.sizes());
}

std::map<std::string, std::string> training_metadata(const TrainConfig& config,
                                                     const std::string& dataset_name,
                                                     int64_t n_train, int64_t n_classes,
                                                     int64_t epochs_done) {
    const OptimizerConfig& o = config.optimizer;
    const ScheduleConfig& s = config.schedule;
    std::map<std::string, std::string> m = {
        {"format", "mlptrain"},
        {"input_scale", "1/255"},
        {"input_offset", "0"},
        {"n_classes", std::to_string(n_classes)},
        {"dataset", dataset_name},
        {"train_samples", std::to_string(n_train)},
        {"epoch", std::to_string(epochs_done)},
        {"epochs", std::to_string(config.epochs)},
        {"seed", std::to_string(config.seed)},
        {"batch_size", std::to_string(config.batch_size)},
        {"hidden", join(config.hidden)},
        {"lr", exact(config.lr)},
        {"optimizer", to_string(o.kind)},
        {"weight_decay", exact(o.weight_decay)},
        {"schedule", to_string(s.kind)},
        {"augment_shift", std::to_string(config.augment_shift)},
    };
    if (o.kind == OptimizerKind::sgd) {
        m["momentum"] = exact(o.momentum);
        m["nesterov"] = o.nesterov ? "true" : "false";
    } else {
        m["beta1"] = exact(o.beta1);
        m["beta2"] = exact(o.beta2);
        m["eps"] = exact(o.eps);
    }
    if (s.kind == ScheduleKind::step) {
        m["gamma"] = exact(s.gamma);
        m["step_size"] = std::to_string(s.step_size);
    }
    if (s.kind == ScheduleKind::onecycle) m["warmup_pct"] = exact(s.warmup_pct);
    if (schedule_depends_on_epochs(s.kind)) {
        m["schedule_epochs"] = std::to_string(config.span_epochs());
    }
    return m;
}

// FNV-1a over the tensors' values as the file stores them (little-endian F32,
// in data order): the structure checks catch a cut or padded file, this
// catches flipped bytes.
static std::string data_checksum(const std::vector<NamedTensor>& tensors) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const NamedTensor& t : tensors) {
        for (float v : t.values) {
            uint32_t bits;
            std::memcpy(&bits, &v, sizeof bits);
            for (int i = 0; i < 4; ++i) {
                h ^= (bits >> (8 * i)) & 0xffu;
                h *= 0x100000001b3ull;
            }
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
    write_file_atomic(state_path(path), encode_tensors(tensors, state_meta), "training state");
    save_model(path, shape, params, metadata);
}

// Each comparable key and the flag a user changes it with.
struct FlagKey {
    const char* key;
    const char* flag;
};
static const FlagKey k_resume_keys[] = {
    {"dataset", "--data/--dataset"},
    {"n_classes", "--data/--dataset"},
    {"train_samples", "--train-samples"},
    {"hidden", "--hidden"},
    {"optimizer", "--optimizer"},
    {"schedule", "--schedule"},
    {"batch_size", "--batch-size"},
    {"seed", "--seed"},
    {"lr", "--lr"},
    {"weight_decay", "--weight-decay"},
    {"momentum", "--momentum"},
    {"nesterov", "--nesterov"},
    {"beta1", "--beta1"},
    {"beta2", "--beta2"},
    {"eps", "--eps"},
    {"gamma", "--gamma"},
    {"step_size", "--step-size"},
    {"warmup_pct", "--warmup-pct"},
    {"schedule_epochs", "--schedule-epochs (default: --epochs)"},
    {"augment_shift", "--augment-shift"},
};

void check_resume_matches(const std::map<std::string, std::string>& saved,
                          const std::map<std::string, std::string>& now, const std::string& path) {
    auto value = [](const std::map<std::string, std::string>& m, const char* key) {
        auto it = m.find(key);
        return it == m.end() ? std::string("(not set)") : it->second;
    };
    for (const FlagKey& k : k_resume_keys) {
        const std::string was = value(saved, k.key), is = value(now, k.key);
        if (was != is) {
            throw Error("--resume " + path + ": " + k.flag + " is " + is + " here but was " + was +
                        " in the checkpoint; a resumed run must keep every flag that shapes "
                        "training (only --epochs, the device and output flags may change)");
        }
    }
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

TrainingState load_checkpoint(const std::string& path, const ModelShape& shape,
                              const std::vector<std::string>& buffer_names,
                              const std::map<std::string, std::string>& now, std::string* note,
                              uint64_t limit_bytes) {
    const std::string spath = state_path(path);
    TensorFile file = decode_tensors(read_file(spath, limit_bytes), spath);
    const auto format = file.metadata.find("format");
    if (format == file.metadata.end() || format->second != k_state_format) {
        throw DataError(spath, "not an mlptrain training state (__metadata__ format is not \"" +
                                   std::string(k_state_format) + "\")");
    }
    const auto sizes = file.metadata.find("layer_sizes");
    if (sizes == file.metadata.end() || sizes->second != layer_sizes(shape)) {
        throw DataError(spath, "layer_sizes " +
                                   (sizes == file.metadata.end() ? "missing" : sizes->second) +
                                   " do not match this run's model " + layer_sizes(shape) +
                                   " (--hidden and the data's image size and classes)");
    }
    const auto checksum = file.metadata.find("data_fnv1a64");
    if (checksum == file.metadata.end() || checksum->second != data_checksum(file.tensors)) {
        throw DataError(spath,
                        "tensor data does not match its checksum (data_fnv1a64): the "
                        "file is damaged");
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
