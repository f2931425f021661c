// safetensors codec and the model's tensor names. The decoder treats the file as hostile: every
// size in it is checked against the bytes actually present, with overflow-checked arithmetic,
// before anything is allocated on its strength, and every defect becomes a DataError that names the
// file and what is wrong.
#include "host/formats/safetensors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
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

// A tensor entry of the header, checked against the data's size.
struct Placed {
    uint64_t begin = 0;
    uint64_t end = 0;
    NamedTensor tensor;  // name and shape; values once the tiling is known to be sound
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
static std::string in_quotes(const std::string& s) {
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
        return DataError(path, "bad layer_sizes " + in_quotes(text) + ": " + why);
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

// What a file that is not safetensors is, where its first bytes tell: a model or picture passed
// by mistake would otherwise be reported as an absurd header length.
static std::string foreign_format(const std::string& bytes) {
    const auto starts = [&](const char* magic, size_t n) {
        return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
    };
    const auto at = [&](size_t i) { return i < bytes.size() ? unsigned(uint8_t(bytes[i])) : 256u; };
    if (starts("\x89PNG\r\n\x1a\n", 8)) return "a PNG image (starts with \\x89PNG)";
    if (starts("\xff\xd8\xff", 3)) return "a JPEG image (starts with FF D8 FF)";
    if (starts("\x1f\x8b", 2)) return "a gzip file (starts with 1F 8B)";
    if (starts("PK\x03\x04", 4) || starts("PK\x05\x06", 4)) {
        return "a zip archive (starts with PK), as torch.save writes";
    }
    if (starts("\x93NUMPY", 6)) return "a NumPy .npy array (starts with \\x93NUMPY)";
    if (at(0) == 0x80 && at(1) >= 2 && at(1) <= 5) {
        return "a Python pickle (starts with 80 0" + std::to_string(at(1)) + ", protocol " +
               std::to_string(at(1)) + ")";
    }
    if (at(0) == 0 && at(1) == 0 && at(2) == 0x08 && at(3) >= 1 && at(3) <= 4) {
        char magic[16];
        std::snprintf(magic, sizeof magic, "00 00 08 %02X", at(3));
        return std::string("an IDX data file (starts with ") + magic + ")";
    }
    // ONNX's ModelProto starts with field 1, ir_version (tag 0x08, a small varint), followed by
    // one of its string or message fields (producer_name, graph, opset_import, ...).
    const unsigned next = at(2);
    if (at(0) == 0x08 && at(1) >= 1 && at(1) <= 0x7f &&
        (next == 0x12 || next == 0x1a || next == 0x22 || next == 0x28 || next == 0x32 ||
         next == 0x3a || next == 0x42)) {
        return "an ONNX model (a protobuf starting with 08 " + std::to_string(at(1)) +
               ", ir_version " + std::to_string(at(1)) + ")";
    }
    return "";
}

// The 8-byte length and the JSON header after it, checked against the bytes present; sets
// *header_bytes_out to the header's length.
static json read_header(const std::string& bytes, const std::string& path,
                        uint64_t* header_bytes_out) {
    const uint64_t file_bytes = bytes.size();
    const auto not_safetensors = [&] {
        const std::string kind = foreign_format(bytes);
        if (!kind.empty()) {
            throw DataError(path, "not a safetensors file: it looks like " + kind);
        }
    };
    if (file_bytes < k_header_length_bytes) {
        not_safetensors();
        throw DataError(path, "file is " + std::to_string(file_bytes) +
                                  " bytes, too short for the 8-byte safetensors header length");
    }
    const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
    const uint64_t header_bytes = get_le64(raw);
    if (header_bytes > k_max_safetensors_header_bytes) {
        not_safetensors();
        throw DataError(path, "header length " + std::to_string(header_bytes) +
                                  " is over the limit of " +
                                  std::to_string(k_max_safetensors_header_bytes) + " bytes");
    }
    if (header_bytes > file_bytes - k_header_length_bytes) {
        not_safetensors();
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

static std::map<std::string, std::string> read_metadata(const json& header, const std::string& path,
                                                        bool required) {
    std::map<std::string, std::string> metadata;
    const auto it = header.find("__metadata__");
    if (it == header.end()) {
        if (required) throw DataError(path, "header has no __metadata__");
        return metadata;
    }
    if (!it->is_object()) throw DataError(path, "__metadata__ is not a JSON object");
    for (const auto& kv : it->items()) {
        if (!kv.value().is_string()) {
            throw DataError(path, "__metadata__ value of " + in_quotes(kv.key()) +
                                      " is not a string: " + dumped(kv.value()));
        }
        metadata[kv.key()] = kv.value().get<std::string>();
    }
    return metadata;
}

// One tensor entry: its fields, dtype, shape (against `expected` when the layout gives one) and
// data range, which must lie within the data and hold exactly the shape's values.
static Placed check_entry(const std::string& name, const json& entry,
                          const std::vector<uint64_t>* expected, const std::string& shapes_from,
                          uint64_t data_bytes, const std::string& path) {
    const std::string tensor = "tensor " + in_quotes(name);
    if (!entry.is_object()) throw DataError(path, tensor + " is not a JSON object");
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
        if (!entry.contains(field)) throw DataError(path, tensor + " has no " + field);
    }
    const json& dtype = entry["dtype"];
    if (!dtype.is_string() || dtype.get_ref<const std::string&>() != "F32") {
        throw DataError(path, tensor + " has dtype " + dumped(dtype) + ", expected \"F32\"");
    }
    Placed p;
    p.tensor.name = name;
    const json& shape = entry["shape"];
    if (expected) {
        bool ok = shape.is_array() && shape.size() == expected->size();
        for (size_t i = 0; ok && i < expected->size(); ++i) {
            ok = shape[i].is_number_unsigned() && shape[i].get<uint64_t>() == (*expected)[i];
        }
        if (!ok) {
            throw DataError(path, tensor + " has shape " + found_shape_text(shape) + ", expected " +
                                      shape_text(*expected) +
                                      (shapes_from.empty() ? "" : " from " + shapes_from));
        }
        p.tensor.shape = *expected;
    } else {
        bool ok = shape.is_array() && shape.size() <= 8;
        for (size_t i = 0; ok && i < shape.size(); ++i) {
            ok = shape[i].is_number_unsigned();
            if (ok) p.tensor.shape.push_back(shape[i].get<uint64_t>());
        }
        if (!ok) {
            throw DataError(path, tensor + " has shape " + dumped(shape) +
                                      ", expected up to 8 non-negative integers");
        }
    }
    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
        throw DataError(path, tensor + " has data_offsets " + dumped(offsets) +
                                  ", expected two non-negative integers [begin, end]");
    }
    p.begin = offsets[0].get<uint64_t>();
    p.end = offsets[1].get<uint64_t>();
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
    uint64_t n_values = 1;
    bool overflow = false;
    for (uint64_t d : p.tensor.shape) overflow |= __builtin_mul_overflow(n_values, d, &n_values);
    uint64_t want = 0;
    overflow |= __builtin_mul_overflow(n_values, k_f32_bytes, &want);
    if (overflow) {
        throw DataError(path, tensor + " has shape " + shape_text(p.tensor.shape) +
                                  ", whose data would exceed 2^64 bytes");
    }
    if (p.end - p.begin != want) {
        throw DataError(path, tensor + " has " + std::to_string(p.end - p.begin) +
                                  " bytes of data, expected 4 x " + std::to_string(n_values) +
                                  " = " + std::to_string(want));
    }
    return p;
}

TensorFile decode_safetensors(const std::string& bytes, const std::string& path,
                              const TensorLayout* layout) {
    uint64_t header_bytes = 0;
    const json header = read_header(bytes, path, &header_bytes);
    const uint64_t data_bytes = bytes.size() - k_header_length_bytes - header_bytes;
    TensorFile file;
    file.metadata = read_metadata(header, path, layout && layout->metadata_required);

    std::vector<Placed> placed;
    if (layout) {
        const std::vector<TensorSpec> specs = layout->tensors_for(file.metadata, path);
        placed.reserve(specs.size());
        for (const TensorSpec& spec : specs) {
            const auto it = header.find(spec.name);
            if (it == header.end()) throw DataError(path, "missing tensor " + in_quotes(spec.name));
            placed.push_back(
                check_entry(spec.name, *it, &spec.shape, layout->shapes_from, data_bytes, path));
        }
        const size_t n_meta = header.contains("__metadata__") ? 1 : 0;
        if (header.size() != specs.size() + n_meta) {
            for (const auto& kv : header.items()) {
                const std::string& name = kv.key();
                if (name == "__metadata__") continue;
                const bool known = std::any_of(specs.begin(), specs.end(),
                                               [&](const TensorSpec& s) { return s.name == name; });
                if (!known) throw DataError(path, "unexpected tensor " + in_quotes(name));
            }
        }
    } else {
        for (const auto& kv : header.items()) {
            if (kv.key() == "__metadata__") continue;
            placed.push_back(check_entry(kv.key(), kv.value(), nullptr, "", data_bytes, path));
        }
    }

    // The data must be tiled exactly, but in any order: the reference writer sorts tensors by
    // name, so "10.bias" comes before "2.bias" in files written by PyTorch users. Empty tensors
    // sort before a tensor starting where they are.
    std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    if (placed.empty()) {
        if (data_bytes != 0) {
            throw DataError(path, std::to_string(data_bytes) +
                                      " trailing bytes after a header that lists no tensor");
        }
        return file;
    }
    if (placed.front().begin != 0) {
        throw DataError(path, "data_offsets do not start at 0: the first tensor in the data, " +
                                  in_quotes(placed.front().tensor.name) + ", starts at " +
                                  std::to_string(placed.front().begin));
    }
    for (size_t i = 1; i < placed.size(); ++i) {
        if (placed[i].begin != placed[i - 1].end) {
            throw DataError(path, "data_offsets are not contiguous: tensor " +
                                      in_quotes(placed[i].tensor.name) + " starts at " +
                                      std::to_string(placed[i].begin) + " but tensor " +
                                      in_quotes(placed[i - 1].tensor.name) + " ends at " +
                                      std::to_string(placed[i - 1].end));
        }
    }
    if (placed.back().end != data_bytes) {
        throw DataError(path, std::to_string(data_bytes - placed.back().end) +
                                  " trailing bytes after the last tensor");
    }

    // Only now is every allocation known to be backed by bytes actually in the file.
    const auto* data =
        reinterpret_cast<const unsigned char*>(bytes.data()) + k_header_length_bytes + header_bytes;
    file.tensors.reserve(placed.size());
    for (Placed& p : placed) {
        const uint64_t n = (p.end - p.begin) / k_f32_bytes;
        p.tensor.values.resize(size_t(n));
        for (uint64_t i = 0; i < n; ++i) {
            p.tensor.values[size_t(i)] = get_le_f32(data + p.begin + i * k_f32_bytes);
        }
        file.tensors.push_back(std::move(p.tensor));
    }
    return file;
}

std::string encode_safetensors(const TensorFile& file) {
    // ordered_json keeps __metadata__ first and the tensors in the given order, which makes the
    // header readable; readers do not depend on key order.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& kv : file.metadata) meta[kv.first] = kv.second;
    header["__metadata__"] = std::move(meta);
    uint64_t offset = 0;
    for (const NamedTensor& t : file.tensors) {
        uint64_t n = 1;
        bool overflow = false;
        for (uint64_t d : t.shape) overflow |= __builtin_mul_overflow(n, d, &n);
        if (overflow || n != t.values.size()) {
            throw Error("cannot encode tensor " + in_quotes(t.name) + ": " +
                        std::to_string(t.values.size()) + " values for shape " +
                        shape_text(t.shape));
        }
        if (t.name == "__metadata__" || header.contains(t.name)) {
            throw Error("cannot encode tensor " + in_quotes(t.name) + ": name used twice");
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
        throw Error(std::string("cannot encode safetensors metadata: ") + e.what());
    }
    // The format asks for 8-byte alignment of the data so that readers can map it in place.
    while (header_text.size() % 8 != 0) header_text.push_back(' ');
    std::string out;
    out.reserve(k_header_length_bytes + header_text.size() + offset);
    put_le64(out, header_text.size());
    out += header_text;
    for (const NamedTensor& t : file.tensors) {
        for (float v : t.values) {
            uint32_t bits;
            std::memcpy(&bits, &v, sizeof bits);
            put_le32(out, bits);
        }
    }
    return out;
}

// --- Models -----------------------------------------------------------------------------------

static std::vector<TensorSpec> layer_tensors(const ModelShape& shape) {
    std::vector<TensorSpec> specs;
    for (int l = 0; l < shape.n_layers(); ++l) {
        const uint64_t n_in = uint64_t(shape.n_in(l));
        const uint64_t n_out = uint64_t(shape.n_out(l));
        specs.push_back({weight_name(l), {n_out, n_in}});
        specs.push_back({bias_name(l), {n_out}});
    }
    return specs;
}

static ModelShape shape_from_metadata(const std::map<std::string, std::string>& metadata,
                                      const std::string& path) {
    const auto it = metadata.find("layer_sizes");
    if (it == metadata.end()) throw DataError(path, "__metadata__ has no layer_sizes");
    return ModelShape(parse_layer_sizes(it->second, path));
}

TensorFile model_tensors(const ModelShape& shape, const std::vector<float>& params,
                         std::map<std::string, std::string> metadata) {
    if (shape.sizes().size() < 2) throw Error("cannot encode a model with no layers");
    if (params.size() != uint64_t(shape.n_params())) {
        throw Error("cannot encode model " + shape.to_string() + ": got " +
                    std::to_string(params.size()) + " parameters, expected " +
                    std::to_string(shape.n_params()));
    }
    TensorFile file;
    metadata["layer_sizes"] = layer_sizes_text(shape);
    file.metadata = std::move(metadata);
    for (int l = 0; l < shape.n_layers(); ++l) {
        const int64_t n_out = shape.n_out(l), n_weights = n_out * shape.n_in(l);
        const auto w = params.begin() + shape.weight_offset(l);
        const auto b = params.begin() + shape.bias_offset(l);
        file.tensors.push_back(
            {weight_name(l), {uint64_t(n_out), uint64_t(shape.n_in(l))}, {w, w + n_weights}});
        file.tensors.push_back({bias_name(l), {uint64_t(n_out)}, {b, b + n_out}});
    }
    return file;
}

const TensorLayout& model_layout() {
    static const TensorLayout layout{
        [](const std::map<std::string, std::string>& metadata, const std::string& path) {
            return layer_tensors(shape_from_metadata(metadata, path));
        },
        true, "layer_sizes"};
    return layout;
}

std::string encode_model(const ModelShape& shape, const std::vector<float>& params,
                         const std::map<std::string, std::string>& metadata) {
    return encode_safetensors(model_tensors(shape, params, metadata));
}

ModelFile decode_model(const std::string& bytes, const std::string& path) {
    TensorFile file = decode_safetensors(bytes, path, &model_layout());
    ModelFile model;
    model.shape = shape_from_metadata(file.metadata, path);
    model.metadata = std::move(file.metadata);
    model.params.assign(size_t(model.shape.n_params()), 0.0f);
    // The layout made every tensor present with its shape, so each lands where its name says.
    std::map<std::string, const NamedTensor*> by_name;
    for (const NamedTensor& t : file.tensors) by_name[t.name] = &t;
    for (int l = 0; l < model.shape.n_layers(); ++l) {
        const std::vector<float>& w = by_name.at(weight_name(l))->values;
        const std::vector<float>& b = by_name.at(bias_name(l))->values;
        std::copy(w.begin(), w.end(), model.params.begin() + model.shape.weight_offset(l));
        std::copy(b.begin(), b.end(), model.params.begin() + model.shape.bias_offset(l));
    }
    return model;
}

ParamLocation locate_param(const ModelShape& shape, int64_t index) {
    for (int l = 0; l < shape.n_layers(); ++l) {
        const int64_t w = index - shape.weight_offset(l);
        const int64_t n_in = shape.n_in(l);
        if (w >= 0 && w < n_in * shape.n_out(l)) {
            return {weight_name(l), {uint64_t(w / n_in), uint64_t(w % n_in)}};
        }
        const int64_t b = index - shape.bias_offset(l);
        if (b >= 0 && b < shape.n_out(l)) return {bias_name(l), {uint64_t(b)}};
    }
    throw Error("parameter " + std::to_string(index) + " is outside model " + shape.to_string());
}

std::string index_text(const std::vector<uint64_t>& index) {
    return shape_text(index);
}

void check_finite_params(const ModelFile& model, const std::string& path) {
    const auto bad = std::find_if(model.params.begin(), model.params.end(),
                                  [](float v) { return !std::isfinite(v); });
    if (bad == model.params.end()) return;
    const ParamLocation at = locate_param(model.shape, bad - model.params.begin());
    const std::string where = at.index.size() == 2
                                  ? " (row " + std::to_string(at.index[0]) + ", column " +
                                        std::to_string(at.index[1]) + ")"
                                  : "";
    const char* value = std::isnan(*bad) ? "NaN" : *bad > 0 ? "+inf" : "-inf";
    throw DataError(path, "tensor " + in_quotes(at.tensor) + " holds " + value + " at " +
                              index_text(at.index) + where +
                              ", the first non-finite value; a model's parameters must be finite");
}

void save_model(const std::string& path, const ModelShape& shape, const std::vector<float>& params,
                const std::map<std::string, std::string>& metadata) {
    write_file_atomic(path, encode_model(shape, params, metadata), "model");
}

ModelFile load_model(const std::string& path, uint64_t limit_bytes) {
    ModelFile model = decode_model(read_file(path, limit_bytes), path);
    check_finite_params(model, path);
    return model;
}

}  // namespace mlp
