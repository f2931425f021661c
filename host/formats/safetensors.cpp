// safetensors codec. The decoder treats the file as hostile: every size in it is checked against
// the bytes actually present, with overflow-checked arithmetic, before anything is allocated on
// its strength, and every defect becomes a DataError that names the file and what is wrong.
#include "host/formats/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/read_file.hpp"

namespace mlp {

// The byte packing below assumes IEEE-754 binary32; the byte order itself is handled explicitly,
// so the files are little-endian on any host.
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
              "safetensors F32 needs IEEE-754 single precision floats");

using json = nlohmann::json;

namespace {

constexpr uint64_t k_header_length_bytes = 8;
constexpr uint64_t k_f32_bytes = 4;
// Our headers are three levels deep; the cap stops a hostile "[[[[..." header early.
constexpr int k_max_header_depth = 16;
// Far beyond any network this trainer can run, yet it keeps the per-layer bookkeeping small
// when layer_sizes comes from an untrusted file.
constexpr size_t k_max_layers = 4096;
constexpr size_t k_max_quoted_chars = 80;

// One tensor the layer sizes call for, and where its values go in the flat parameter buffer.
struct TensorSpec {
    std::string name;
    std::vector<uint64_t> shape;
    uint64_t n_values = 0;
    uint64_t param_offset = 0;
};

// A validated tensor entry of the header.
struct Placed {
    uint64_t begin = 0;
    uint64_t end = 0;
    const TensorSpec* spec = nullptr;
};

// Thrown from inside the JSON parser's callback, where a DataError would lose the path.
struct HeaderDefect {
    std::string what;
};

}  // namespace

static void put_le32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xffu));
}

static void put_le64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xffu));
}

static uint64_t get_le64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | uint64_t(p[i]);
    return v;
}

static float get_le_f32(const unsigned char* p) {
    uint32_t bits = uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
                    (uint32_t(p[3]) << 24);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

static std::string weight_name(int layer) { return std::to_string(2 * layer) + ".weight"; }
static std::string bias_name(int layer) { return std::to_string(2 * layer) + ".bias"; }

static std::string layer_sizes_text(const ModelShape& shape) {
    std::string s;
    for (size_t i = 0; i < shape.sizes().size(); ++i) {
        if (i) s += ',';
        s += std::to_string(shape.sizes()[i]);
    }
    return s;
}

static std::string truncated_to(std::string s, size_t max_chars) {
    if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
    return s;
}

static std::string truncated(std::string s) {
    return truncated_to(std::move(s), k_max_quoted_chars);
}

// Names and values from the file are quoted JSON-style so that control characters and huge
// strings cannot garble the message.
static std::string quoted(const std::string& s) {
    return truncated(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}

static std::string dumped(const json& j) {
    return truncated(j.dump(-1, ' ', false, json::error_handler_t::replace));
}

static std::string shape_text(const std::vector<uint64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

// Renders a well-formed shape exactly like shape_text, so expected and found line up.
static std::string found_shape_text(const json& shape) {
    if (!shape.is_array() || shape.size() > 8) return dumped(shape);
    std::vector<uint64_t> dims;
    for (const json& d : shape) {
        if (!d.is_number_unsigned()) return dumped(shape);
        dims.push_back(d.get<uint64_t>());
    }
    return shape_text(dims);
}

std::string encode_safetensors(const ModelShape& shape, const std::vector<float>& params,
                               const std::map<std::string, std::string>& metadata) {
    if (shape.sizes().size() < 2) throw Error("cannot encode a model with no layers");
    if (params.size() != uint64_t(shape.n_params())) {
        throw Error("cannot encode model " + shape.to_string() + ": got " +
                    std::to_string(params.size()) + " parameters, expected " +
                    std::to_string(shape.n_params()));
    }
    // ordered_json keeps __metadata__ first and the tensors in layer order, which makes the
    // header readable; readers do not depend on key order.
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) meta[kv.first] = kv.second;
    meta["layer_sizes"] = layer_sizes_text(shape);
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    header["__metadata__"] = std::move(meta);
    uint64_t offset = 0;
    auto add_tensor = [&](const std::string& name, nlohmann::ordered_json dims, int64_t n) {
        const uint64_t end = offset + uint64_t(n) * k_f32_bytes;
        nlohmann::ordered_json entry = nlohmann::ordered_json::object();
        entry["dtype"] = "F32";
        entry["shape"] = std::move(dims);
        entry["data_offsets"] = nlohmann::ordered_json::array({offset, end});
        header[name] = std::move(entry);
        offset = end;
    };
    for (int l = 0; l < shape.n_layers(); ++l) {
        add_tensor(weight_name(l), nlohmann::ordered_json::array({shape.n_out(l), shape.n_in(l)}),
                   shape.n_out(l) * shape.n_in(l));
        add_tensor(bias_name(l), nlohmann::ordered_json::array({shape.n_out(l)}), shape.n_out(l));
    }
    std::string header_text;
    try {
        header_text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("cannot encode model metadata: ") + e.what());
    }
    // The format asks for 8-byte alignment of the data so that readers can map it in place.
    while (header_text.size() % 8 != 0) header_text.push_back(' ');

    std::string out;
    out.reserve(k_header_length_bytes + header_text.size() + params.size() * k_f32_bytes);
    put_le64(out, header_text.size());
    out += header_text;
    for (float v : params) {
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        put_le32(out, bits);
    }
    return out;
}

// nlohmann's message without its "[json.exception...] " tag, and with the raw header bytes it
// quotes made printable, since they may be anything.
static std::string parse_error_text(const json::exception& e) {
    std::string text = e.what();
    size_t tag_end = text.find("] ");
    if (text.rfind("[json.exception.", 0) == 0 && tag_end != std::string::npos) {
        text.erase(0, tag_end + 2);
    }
    for (char& c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return truncated_to(text, 4 * k_max_quoted_chars);
}

// Parses the header, refusing duplicate keys (which JSON parsers resolve inconsistently, so two
// readers could see different models) and absurd nesting.
static json parse_header(const char* first, const char* last, const std::string& path) {
    std::vector<size_t> key_counts;  // one per open object or array
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
        switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            if (depth >= k_max_header_depth) {
                throw HeaderDefect{"header is nested more than " +
                                   std::to_string(k_max_header_depth) + " levels deep"};
            }
            key_counts.push_back(0);
            break;
        case json::parse_event_t::key:
            if (!key_counts.empty()) ++key_counts.back();
            break;
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            if (event == json::parse_event_t::object_end && !key_counts.empty() &&
                parsed.is_object() && parsed.size() != key_counts.back()) {
                throw HeaderDefect{"header has a duplicate key in " + dumped(parsed)};
            }
            if (!key_counts.empty()) key_counts.pop_back();
            break;
        case json::parse_event_t::value:
            break;
        }
        return true;
    };
    try {
        return json::parse(first, last, callback);
    } catch (const HeaderDefect& d) {
        throw DataError(path, d.what);
    } catch (const json::parse_error& e) {
        throw DataError(path, "header is not valid JSON: " + parse_error_text(e));
    } catch (const json::exception& e) {
        // Valid JSON that nlohmann cannot hold, e.g. a number beyond double's range (found by
        // fuzzing: it escaped as a non-mlp exception).
        throw DataError(path, "header cannot be parsed: " + parse_error_text(e));
    }
}

// "784,128,64,10" -> sizes, refusing anything that is not plain positive decimal integers and
// anything whose parameter count would overflow ModelShape's int64 arithmetic.
static std::vector<int64_t> parse_layer_sizes(const std::string& text, const std::string& path) {
    auto bad = [&](const std::string& why) {
        return DataError(path, "bad layer_sizes " + quoted(text) + ": " + why);
    };
    std::vector<int64_t> sizes;
    size_t pos = 0;
    for (;;) {
        size_t comma = text.find(',', pos);
        size_t end = comma == std::string::npos ? text.size() : comma;
        if (end == pos) throw bad("empty entry");
        uint64_t v = 0;
        for (size_t i = pos; i < end; ++i) {
            char c = text[i];
            if (c < '0' || c > '9') throw bad("entries must be positive decimal integers");
            if (__builtin_mul_overflow(v, uint64_t(10), &v) ||
                __builtin_add_overflow(v, uint64_t(c - '0'), &v) ||
                v > uint64_t(std::numeric_limits<int64_t>::max())) {
                throw bad("entry too large");
            }
        }
        if (v == 0) throw bad("sizes must be positive");
        sizes.push_back(int64_t(v));
        if (sizes.size() > k_max_layers + 1) {
            throw bad("more than " + std::to_string(k_max_layers) + " layers");
        }
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    if (sizes.size() < 2) throw bad("need at least an input and an output size");
    uint64_t total_bytes = 0;
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
        uint64_t n_in = uint64_t(sizes[l]);
        uint64_t n_out = uint64_t(sizes[l + 1]);
        uint64_t layer = 0;
        if (__builtin_mul_overflow(n_in, n_out, &layer) ||
            __builtin_add_overflow(layer, n_out, &layer) ||
            __builtin_mul_overflow(layer, k_f32_bytes, &layer) ||
            __builtin_add_overflow(total_bytes, layer, &total_bytes) ||
            total_bytes > uint64_t(std::numeric_limits<int64_t>::max())) {
            throw bad("parameter count too large");
        }
    }
    return sizes;
}

static std::vector<TensorSpec> expected_tensors(const ModelShape& shape) {
    std::vector<TensorSpec> specs;
    for (int l = 0; l < shape.n_layers(); ++l) {
        const uint64_t n_in = uint64_t(shape.n_in(l));
        const uint64_t n_out = uint64_t(shape.n_out(l));
        specs.push_back({weight_name(l), {n_out, n_in}, n_out * n_in,
                         uint64_t(shape.weight_offset(l))});
        specs.push_back({bias_name(l), {n_out}, n_out, uint64_t(shape.bias_offset(l))});
    }
    return specs;
}

// Checks one tensor entry against what the layer sizes call for; returns where its data lies.
static Placed check_tensor(const json& entry, const TensorSpec& spec, uint64_t data_bytes,
                           const std::string& path) {
    const std::string tensor = "tensor " + quoted(spec.name);
    if (!entry.is_object()) throw DataError(path, tensor + " is not a JSON object");
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
        if (!entry.contains(field)) throw DataError(path, tensor + " has no " + field);
    }
    const json& dtype = entry["dtype"];
    if (!dtype.is_string() || dtype.get_ref<const std::string&>() != "F32") {
        throw DataError(path, tensor + " has dtype " + dumped(dtype) + ", expected \"F32\"");
    }
    const json& shape = entry["shape"];
    bool shape_ok = shape.is_array() && shape.size() == spec.shape.size();
    for (size_t i = 0; shape_ok && i < spec.shape.size(); ++i) {
        shape_ok = shape[i].is_number_unsigned() && shape[i].get<uint64_t>() == spec.shape[i];
    }
    if (!shape_ok) {
        throw DataError(path, tensor + " has shape " + found_shape_text(shape) + ", expected " +
                                  shape_text(spec.shape) + " from layer_sizes");
    }
    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
        throw DataError(path, tensor + " has data_offsets " + dumped(offsets) +
                                  ", expected two non-negative integers [begin, end]");
    }
    Placed p{offsets[0].get<uint64_t>(), offsets[1].get<uint64_t>(), &spec};
    const std::string range = "[" + std::to_string(p.begin) + ", " + std::to_string(p.end) + "]";
    if (p.end < p.begin) {
        throw DataError(path,
                        tensor + " has data_offsets " + range + " that end before they begin");
    }
    if (p.end > data_bytes) {
        throw DataError(path, tensor + " has data_offsets " + range +
                                  " that end beyond the data (" + std::to_string(data_bytes) +
                                  " bytes)");
    }
    // n_values * 4 cannot overflow: parse_layer_sizes bounded the total byte count.
    const uint64_t want = spec.n_values * k_f32_bytes;
    if (p.end - p.begin != want) {
        throw DataError(path, tensor + " has " + std::to_string(p.end - p.begin) +
                                  " bytes of data, expected 4 x " +
                                  std::to_string(spec.n_values) + " = " + std::to_string(want));
    }
    return p;
}

// The 8-byte length and the JSON header after it, checked against the bytes present; sets
// *header_bytes_out to the header's length.
static json read_header(const std::string& bytes, const std::string& path,
                        uint64_t* header_bytes_out) {
    const uint64_t file_bytes = bytes.size();
    if (file_bytes < k_header_length_bytes) {
        throw DataError(path, "file is " + std::to_string(file_bytes) +
                                  " bytes, too short for the 8-byte safetensors header length");
    }
    const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
    const uint64_t header_bytes = get_le64(raw);
    if (header_bytes > k_max_safetensors_header_bytes) {
        throw DataError(path, "header length " + std::to_string(header_bytes) +
                                  " is over the limit of " +
                                  std::to_string(k_max_safetensors_header_bytes) + " bytes");
    }
    if (header_bytes > file_bytes - k_header_length_bytes) {
        throw DataError(path, "header length " + std::to_string(header_bytes) +
                                  " is larger than the rest of the file (" +
                                  std::to_string(file_bytes - k_header_length_bytes) + " bytes)");
    }
    const char* header_begin = bytes.data() + k_header_length_bytes;
    json header = parse_header(header_begin, header_begin + header_bytes, path);
    if (!header.is_object()) throw DataError(path, "header is not a JSON object");
    *header_bytes_out = header_bytes;
    return header;
}

ModelFile decode_safetensors(const std::string& bytes, const std::string& path) {
    const uint64_t file_bytes = bytes.size();
    const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
    uint64_t header_bytes = 0;
    const json header = read_header(bytes, path, &header_bytes);

    auto meta_it = header.find("__metadata__");
    if (meta_it == header.end()) throw DataError(path, "header has no __metadata__");
    if (!meta_it->is_object()) throw DataError(path, "__metadata__ is not a JSON object");
    ModelFile model;
    for (const auto& kv : meta_it->items()) {
        if (!kv.value().is_string()) {
            throw DataError(path, "__metadata__ value of " + quoted(kv.key()) +
                                      " is not a string: " + dumped(kv.value()));
        }
        model.metadata[kv.key()] = kv.value().get<std::string>();
    }
    auto sizes_it = model.metadata.find("layer_sizes");
    if (sizes_it == model.metadata.end()) throw DataError(path, "__metadata__ has no layer_sizes");
    model.shape = ModelShape(parse_layer_sizes(sizes_it->second, path));

    const uint64_t data_bytes = file_bytes - k_header_length_bytes - header_bytes;
    const std::vector<TensorSpec> specs = expected_tensors(model.shape);
    std::vector<Placed> placed;
    placed.reserve(specs.size());
    for (const TensorSpec& spec : specs) {
        auto it = header.find(spec.name);
        if (it == header.end()) throw DataError(path, "missing tensor " + quoted(spec.name));
        placed.push_back(check_tensor(*it, spec, data_bytes, path));
    }
    if (header.size() != specs.size() + 1) {
        for (const auto& kv : header.items()) {
            const std::string& name = kv.key();
            if (name == "__metadata__") continue;
            bool known = std::any_of(specs.begin(), specs.end(),
                                     [&](const TensorSpec& s) { return s.name == name; });
            if (!known) throw DataError(path, "unexpected tensor " + quoted(name));
        }
    }

    // The data must be tiled exactly, but in any order: the reference writer sorts tensors by
    // name, so "10.bias" comes before "2.bias" in files written by PyTorch users.
    std::sort(placed.begin(), placed.end(),
              [](const Placed& a, const Placed& b) { return a.begin < b.begin; });
    if (placed.front().begin != 0) {
        throw DataError(path, "data_offsets do not start at 0: the first tensor in the data, " +
                                  quoted(placed.front().spec->name) + ", starts at " +
                                  std::to_string(placed.front().begin));
    }
    for (size_t i = 1; i < placed.size(); ++i) {
        if (placed[i].begin != placed[i - 1].end) {
            throw DataError(path, "data_offsets are not contiguous: tensor " +
                                      quoted(placed[i].spec->name) + " starts at " +
                                      std::to_string(placed[i].begin) + " but tensor " +
                                      quoted(placed[i - 1].spec->name) + " ends at " +
                                      std::to_string(placed[i - 1].end));
        }
    }
    if (placed.back().end != data_bytes) {
        throw DataError(path, std::to_string(data_bytes - placed.back().end) +
                                  " trailing bytes after the last tensor");
    }

    // Only now is the allocation known to be backed by bytes actually in the file.
    model.params.assign(size_t(model.shape.n_params()), 0.0f);
    const unsigned char* data = raw + k_header_length_bytes + header_bytes;
    for (const Placed& p : placed) {
        const unsigned char* src = data + p.begin;
        float* dst = model.params.data() + p.spec->param_offset;
        for (uint64_t i = 0; i < p.spec->n_values; ++i) dst[i] = get_le_f32(src + i * k_f32_bytes);
    }
    return model;
}

void save_model(const std::string& path, const ModelShape& shape, const std::vector<float>& params,
                const std::map<std::string, std::string>& metadata) {
    write_file_atomic(path, encode_safetensors(shape, params, metadata), "model");
}

ModelFile load_model(const std::string& path, uint64_t limit_bytes) {
    return decode_safetensors(read_file(path, limit_bytes), path);
}

static uint64_t element_count(const std::vector<uint64_t>& shape, bool* overflow) {
    uint64_t n = 1;
    for (uint64_t d : shape) *overflow |= __builtin_mul_overflow(n, d, &n);
    return n;
}

std::string encode_tensors(const std::vector<NamedTensor>& tensors,
                           const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) meta[kv.first] = kv.second;
    header["__metadata__"] = std::move(meta);
    uint64_t offset = 0;
    for (const NamedTensor& t : tensors) {
        bool overflow = false;
        const uint64_t n = element_count(t.shape, &overflow);
        if (overflow || n != t.values.size()) {
            throw Error("cannot encode tensor " + quoted(t.name) + ": " +
                        std::to_string(t.values.size()) + " values for shape " +
                        shape_text(t.shape));
        }
        if (t.name == "__metadata__" || header.contains(t.name)) {
            throw Error("cannot encode tensor " + quoted(t.name) + ": name used twice");
        }
        nlohmann::ordered_json entry = nlohmann::ordered_json::object();
        entry["dtype"] = "F32";
        entry["shape"] = t.shape;
        entry["data_offsets"] = nlohmann::ordered_json::array({offset, offset + n * k_f32_bytes});
        header[t.name] = std::move(entry);
        offset += n * k_f32_bytes;
    }
    std::string header_text;
    try {
        header_text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("cannot encode tensor file metadata: ") + e.what());
    }
    while (header_text.size() % 8 != 0) header_text.push_back(' ');
    std::string out;
    out.reserve(k_header_length_bytes + header_text.size() + offset);
    put_le64(out, header_text.size());
    out += header_text;
    for (const NamedTensor& t : tensors) {
        for (float v : t.values) {
            uint32_t bits;
            std::memcpy(&bits, &v, sizeof bits);
            put_le32(out, bits);
        }
    }
    return out;
}

TensorFile decode_tensors(const std::string& bytes, const std::string& path) {
    uint64_t header_bytes = 0;
    const json header = read_header(bytes, path, &header_bytes);
    const uint64_t data_bytes = bytes.size() - k_header_length_bytes - header_bytes;
    TensorFile file;
    struct Entry {
        uint64_t begin, end;
        NamedTensor tensor;
    };
    std::vector<Entry> entries;
    for (const auto& kv : header.items()) {
        if (kv.key() == "__metadata__") {
            if (!kv.value().is_object()) throw DataError(path, "__metadata__ is not a JSON object");
            for (const auto& m : kv.value().items()) {
                if (!m.value().is_string()) {
                    throw DataError(path, "__metadata__ value of " + quoted(m.key()) +
                                              " is not a string: " + dumped(m.value()));
                }
                file.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string tensor = "tensor " + quoted(kv.key());
        const json& e = kv.value();
        if (!e.is_object()) throw DataError(path, tensor + " is not a JSON object");
        for (const char* field : {"dtype", "shape", "data_offsets"}) {
            if (!e.contains(field)) throw DataError(path, tensor + " has no " + field);
        }
        if (!e["dtype"].is_string() || e["dtype"].get_ref<const std::string&>() != "F32") {
            throw DataError(path, tensor + " has dtype " + dumped(e["dtype"]) +
                                      ", expected \"F32\"");
        }
        const json& shape = e["shape"];
        Entry entry;
        entry.tensor.name = kv.key();
        bool ok = shape.is_array() && shape.size() <= 8;
        for (size_t i = 0; ok && i < shape.size(); ++i) {
            ok = shape[i].is_number_unsigned();
            if (ok) entry.tensor.shape.push_back(shape[i].get<uint64_t>());
        }
        if (!ok) {
            throw DataError(path, tensor + " has shape " + dumped(shape) +
                                      ", expected up to 8 non-negative integers");
        }
        const json& offsets = e["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
            !offsets[1].is_number_unsigned()) {
            throw DataError(path, tensor + " has data_offsets " + dumped(offsets) +
                                      ", expected two non-negative integers [begin, end]");
        }
        entry.begin = offsets[0].get<uint64_t>();
        entry.end = offsets[1].get<uint64_t>();
        const std::string range =
            "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
        if (entry.end < entry.begin || entry.end > data_bytes) {
            throw DataError(path, tensor + " has data_offsets " + range +
                                      " outside the data (" + std::to_string(data_bytes) +
                                      " bytes)");
        }
        bool overflow = false;
        uint64_t want = element_count(entry.tensor.shape, &overflow);
        overflow |= __builtin_mul_overflow(want, k_f32_bytes, &want);
        if (overflow || entry.end - entry.begin != want) {
            throw DataError(path, tensor + " has " + std::to_string(entry.end - entry.begin) +
                                      " bytes of data, but shape " +
                                      shape_text(entry.tensor.shape) + " of F32 needs " +
                                      (overflow ? std::string("more than 2^64") :
                                                  std::to_string(want)));
        }
        entries.push_back(std::move(entry));
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t at = 0;
    for (const Entry& e : entries) {
        if (e.begin != at) {
            throw DataError(path, "data_offsets are not contiguous: tensor " +
                                      quoted(e.tensor.name) + " starts at " +
                                      std::to_string(e.begin) + ", expected " +
                                      std::to_string(at));
        }
        at = e.end;
    }
    if (at != data_bytes) {
        throw DataError(path, std::to_string(data_bytes - at) +
                                  " trailing bytes after the last tensor");
    }
    // Every size is now backed by bytes in the file.
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data()) +
                       k_header_length_bytes + header_bytes;
    for (Entry& e : entries) {
        const uint64_t n = (e.end - e.begin) / k_f32_bytes;
        e.tensor.values.resize(size_t(n));
        for (uint64_t i = 0; i < n; ++i) {
            e.tensor.values[size_t(i)] = get_le_f32(data + e.begin + i * k_f32_bytes);
        }
        file.tensors.push_back(std::move(e.tensor));
    }
    return file;
}

}  // namespace mlp
