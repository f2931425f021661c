// safetensors model files: round trips, the exact byte layout PyTorch readers expect, one test
// per malformed-file defect (each message must name the file and the defect), and atomic writes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/read_file.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/model.hpp"

namespace mlp {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ojson = nlohmann::ordered_json;

const std::string k_path = "/models/test.safetensors";

// 3 -> 4 -> 2: 0.weight [4, 3] (48 bytes), 0.bias [4] (16), 2.weight [2, 4] (32), 2.bias [2] (8).
ModelShape small_shape() { return ModelShape({3, 4, 2}); }

// Distinct values, so a tensor landing in the wrong place shows up.
std::vector<float> ramp_params(const ModelShape& shape) {
    std::vector<float> p(size_t(shape.n_params()));
    for (size_t i = 0; i < p.size(); ++i) p[i] = 0.25f * float(i) - 3.0f;
    return p;
}

uint32_t bits_of(float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
    std::vector<uint32_t> out;
    for (float f : v) out.push_back(bits_of(f));
    return out;
}

uint64_t le64_at(const std::string& s, size_t pos) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | uint64_t(uint8_t(s[pos + size_t(i)]));
    return v;
}

std::string le64(uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
    return s;
}

// A safetensors file split into its header and data, so tests can break one thing at a time.
struct Parts {
    ojson header;
    std::string data;
};

Parts split(const std::string& file) {
    uint64_t n = le64_at(file, 0);
    return {ojson::parse(file.substr(8, n)), file.substr(8 + n)};
}

std::string join_text(std::string header_text, const std::string& data) {
    while (header_text.size() % 8 != 0) header_text.push_back(' ');
    return le64(header_text.size()) + header_text + data;
}

std::string join(const Parts& p) { return join_text(p.header.dump(), p.data); }

Parts small_parts() {
    ModelShape shape = small_shape();
    return split(encode_model(shape, ramp_params(shape), {{"epochs", "3"}}));
}

// The message of the DataError that decoding `bytes` throws, or a test failure.
std::string decode_error(const std::string& bytes) {
    try {
        decode_model(bytes, k_path);
    } catch (const DataError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected a DataError, got: " << e.what();
        return "";
    }
    ADD_FAILURE() << "expected a DataError, decoding succeeded";
    return "";
}

#define EXPECT_DEFECT(bytes, ...) \
    EXPECT_THAT(decode_error(bytes), AllOf(StartsWith(k_path + ": "), __VA_ARGS__))

// A fresh directory per test, removed afterwards.
class TempDir : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("mlp_st_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string file(const std::string& name) const { return (dir_ / name).string(); }
    static std::string slurp(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    static void put(const std::string& path, const std::string& bytes) {
        std::ofstream(path, std::ios::binary) << bytes;
    }
    std::vector<std::string> leftover_temp_files() const {
        std::vector<std::string> found;
        for (const auto& e : fs::recursive_directory_iterator(dir_)) {
            std::string name = e.path().filename().string();
            if (name.find(".tmp.") != std::string::npos) found.push_back(name);
        }
        return found;
    }
    fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// Encoding and round trips

TEST(Safetensors, RoundTripKeepsShapeParamsBitsAndMetadata) {
    ModelShape shape({5, 7, 6, 3});
    std::vector<float> params = ramp_params(shape);
    // Values that a lossy or host-endian path would change.
    params[0] = -0.0f;
    params[1] = std::numeric_limits<float>::denorm_min();
    params[2] = std::numeric_limits<float>::infinity();
    params[3] = -std::numeric_limits<float>::infinity();
    params[4] = std::numeric_limits<float>::quiet_NaN();
    params.back() = std::numeric_limits<float>::max();
    std::map<std::string, std::string> meta = {{"epochs", "12"}, {"note", "h\u00e9 \"q\"\n"}};

    ModelFile m = decode_model(encode_model(shape, params, meta), k_path);

    EXPECT_EQ(m.shape.sizes(), shape.sizes());
    EXPECT_EQ(bits_of(m.params), bits_of(params));
    std::map<std::string, std::string> want = meta;
    want["layer_sizes"] = "5,7,6,3";
    EXPECT_EQ(m.metadata, want);
}

TEST(Safetensors, HeaderLengthIsLittleEndianAndPaddedToEight) {
    ModelShape shape = small_shape();
    std::vector<float> params = ramp_params(shape);
    params[0] = 1.0f;  // 0x3f800000
    for (const char* note : {"", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"}) {
        std::string file = encode_model(shape, params, {{"note", note}});
        uint64_t n = le64_at(file, 0);
        EXPECT_EQ(n % 8, 0u) << note;
        ASSERT_EQ(file.size(), 8 + n + 4 * size_t(shape.n_params())) << note;
        std::string header = file.substr(8, n);
        EXPECT_EQ(header.front(), '{');
        // Padding is spaces only, after the closing brace.
        size_t close = header.find_last_of('}');
        EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << note;
        EXPECT_LT(header.size() - close - 1, 8u);
        EXPECT_EQ(file.substr(8 + n, 4), std::string("\x00\x00\x80\x3f", 4));
    }
}

TEST(Safetensors, TensorNamesShapesAndOffsetsMatchPyTorchSequential) {
    ModelShape shape({3, 4, 5, 2});
    Parts p = split(encode_model(shape, ramp_params(shape), {}));
    std::vector<std::string> keys;
    for (const auto& kv : p.header.items()) keys.push_back(kv.key());
    EXPECT_THAT(keys, ElementsAre("__metadata__", "0.weight", "0.bias", "2.weight", "2.bias",
                                  "4.weight", "4.bias"));
    EXPECT_EQ(p.header["__metadata__"], ojson({{"layer_sizes", "3,4,5,2"}}));
    auto expect_tensor = [&](const char* name, std::vector<uint64_t> dims, uint64_t begin,
                             uint64_t end) {
        const ojson& t = p.header[name];
        EXPECT_EQ(t["dtype"], "F32") << name;
        EXPECT_EQ(t["shape"].get<std::vector<uint64_t>>(), dims) << name;
        EXPECT_EQ(t["data_offsets"].get<std::vector<uint64_t>>(),
                  (std::vector<uint64_t>{begin, end}))
            << name;
    };
    // The data is the flat parameter buffer, tensor after tensor.
    expect_tensor("0.weight", {4, 3}, 0, 48);
    expect_tensor("0.bias", {4}, 48, 64);
    expect_tensor("2.weight", {5, 4}, 64, 144);
    expect_tensor("2.bias", {5}, 144, 164);
    expect_tensor("4.weight", {2, 5}, 164, 204);
    expect_tensor("4.bias", {2}, 204, 212);
    EXPECT_EQ(p.data.size(), 4 * size_t(shape.n_params()));
}

TEST(Safetensors, LayerSizesAlwaysComeFromTheShape) {
    ModelShape shape = small_shape();
    Parts p = split(encode_model(shape, ramp_params(shape), {{"layer_sizes", "9,9"}}));
    EXPECT_EQ(p.header["__metadata__"]["layer_sizes"], "3,4,2");
}

TEST(Safetensors, EncodeRejectsWrongParameterCount) {
    ModelShape shape = small_shape();
    std::vector<float> params(size_t(shape.n_params()) - 1);
    EXPECT_THROW(encode_model(shape, params, {}), Error);
}

TEST(Safetensors, EncodeRejectsInvalidUtf8Metadata) {
    ModelShape shape = small_shape();
    EXPECT_THROW(encode_model(shape, ramp_params(shape), {{"note", "\xff\xfe"}}), Error);
}

// The reference writer orders tensors by name ("10.bias" < "2.bias"), not by layer.
TEST(Safetensors, AcceptsTensorsStoredInNameOrder) {
    ModelShape shape({3, 4, 4, 4, 4, 4, 2});  // layers 0..5: names up to "10.weight"
    std::vector<float> params = ramp_params(shape);
    Parts p = split(encode_model(shape, params, {}));
    std::map<std::string, std::string> by_name;  // std::map sorts like the reference writer
    for (const auto& kv : p.header.items()) {
        if (kv.key() == "__metadata__") continue;
        auto off = kv.value()["data_offsets"].get<std::vector<uint64_t>>();
        by_name[kv.key()] = p.data.substr(off[0], off[1] - off[0]);
    }
    ASSERT_EQ(by_name.begin()->first, "0.bias");
    ASSERT_EQ(std::next(by_name.begin(), 2)->first, "10.bias");
    std::string data;
    for (const auto& kv : by_name) {
        p.header[kv.first]["data_offsets"] = {data.size(), data.size() + kv.second.size()};
        data += kv.second;
    }
    p.data = data;
    ModelFile m = decode_model(join(p), k_path);
    EXPECT_EQ(bits_of(m.params), bits_of(params));
}

// ---------------------------------------------------------------------------------------------
// Malformed files: each defect names the file and says what is wrong.

TEST(SafetensorsDefects, FileShorterThanEightBytes) {
    EXPECT_DEFECT(std::string("\x10\x00\x00", 3), HasSubstr("3 bytes, too short"));
    EXPECT_DEFECT(std::string(), HasSubstr("0 bytes, too short"));
}

TEST(SafetensorsDefects, HeaderLengthLargerThanFile) {
    EXPECT_DEFECT(le64(64) + "{}", HasSubstr("header length 64 is larger than the rest of the "
                                             "file (2 bytes)"));
    // A length near 2^64 must not wrap around when added to 8.
    EXPECT_DEFECT(le64(~uint64_t(0) - 3) + "{}", HasSubstr("header length"));
}

TEST(SafetensorsDefects, HeaderLengthOverLimit) {
    EXPECT_DEFECT(le64(k_max_safetensors_header_bytes + 1) + "{}",
                  HasSubstr("header length 100000001 is over the limit of 100000000 bytes"));
}

TEST(SafetensorsDefects, HeaderNotJson) {
    EXPECT_DEFECT(join_text("{\"__metadata__\": ", ""), HasSubstr("header is not valid JSON"));
    EXPECT_DEFECT(join_text("{} trailing", ""), HasSubstr("header is not valid JSON"));
    EXPECT_DEFECT(join_text("{\"a\": \"\xff\"}", ""), HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsDefects, HeaderNotObject) {
    EXPECT_DEFECT(join_text("[1, 2]", ""), HasSubstr("header is not a JSON object"));
    EXPECT_DEFECT(join_text("\"str\"", ""), HasSubstr("header is not a JSON object"));
}

TEST(SafetensorsDefects, HeaderWithDuplicateKey) {
    Parts p = small_parts();
    std::string text = p.header.dump();
    // Repeat the last tensor entry: a second "2.bias" that a lenient parser would let win.
    std::string dup = ",\"2.bias\":" + p.header["2.bias"].dump() + "}";
    text.replace(text.size() - 1, 1, dup);
    EXPECT_DEFECT(join_text(text, p.data), HasSubstr("duplicate key"));
}

TEST(SafetensorsDefects, HeaderNestedTooDeeply) {
    std::string deep = "{\"x\":" + std::string(1000, '[') + std::string(1000, ']') + "}";
    EXPECT_DEFECT(join_text(deep, ""), HasSubstr("nested more than"));
}

TEST(SafetensorsDefects, MissingMetadata) {
    Parts p = small_parts();
    p.header.erase("__metadata__");
    EXPECT_DEFECT(join(p), HasSubstr("header has no __metadata__"));
}

TEST(SafetensorsDefects, MetadataNotObject) {
    Parts p = small_parts();
    p.header["__metadata__"] = "3,4,2";
    EXPECT_DEFECT(join(p), HasSubstr("__metadata__ is not a JSON object"));
}

TEST(SafetensorsDefects, MetadataValueNotString) {
    Parts p = small_parts();
    p.header["__metadata__"]["epochs"] = 3;
    EXPECT_DEFECT(join(p), HasSubstr("__metadata__ value of \"epochs\" is not a string: 3"));
}

TEST(SafetensorsDefects, MissingLayerSizes) {
    Parts p = small_parts();
    p.header["__metadata__"].erase("layer_sizes");
    EXPECT_DEFECT(join(p), HasSubstr("__metadata__ has no layer_sizes"));
}

TEST(SafetensorsDefects, BadLayerSizes) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "empty entry"},
        {"3", "need at least an input and an output size"},
        {"3,,2", "empty entry"},
        {"3,4,", "empty entry"},
        {"3, 4,2", "positive decimal integers"},
        {"3,-4,2", "positive decimal integers"},
        {"3,+4,2", "positive decimal integers"},
        {"3,4.0,2", "positive decimal integers"},
        {"3,0,2", "sizes must be positive"},
        {"3,99999999999999999999,2", "entry too large"},
        {"3,9223372036854775808,2", "entry too large"},
        {"4294967296,4294967296,2", "parameter count too large"},
        {"3000000000,3000000000", "parameter count too large"},
    };
    for (const auto& c : cases) {
        Parts p = small_parts();
        p.header["__metadata__"]["layer_sizes"] = c.first;
        EXPECT_DEFECT(join(p), HasSubstr("bad layer_sizes \"" + c.first + "\""),
                      HasSubstr(c.second))
            << c.first;
    }
    Parts p = small_parts();
    std::string many = "2";
    for (int i = 0; i < 5000; ++i) many += ",2";
    p.header["__metadata__"]["layer_sizes"] = many;
    EXPECT_DEFECT(join(p), HasSubstr("more than 4096 layers"));
}

TEST(SafetensorsDefects, TensorEntryMissingField) {
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
        Parts p = small_parts();
        p.header["2.weight"].erase(field);
        EXPECT_DEFECT(join(p), HasSubstr(std::string("tensor \"2.weight\" has no ") + field));
    }
    Parts p = small_parts();
    p.header["0.bias"] = ojson::array({1, 2});
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.bias\" is not a JSON object"));
}

TEST(SafetensorsDefects, DtypeNotF32) {
    Parts p = small_parts();
    p.header["0.bias"]["dtype"] = "F16";
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.bias\" has dtype \"F16\", expected \"F32\""));
    p.header["0.bias"]["dtype"] = 32;
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.bias\" has dtype 32, expected \"F32\""));
}

TEST(SafetensorsDefects, ShapeNotMatchingLayerSizes) {
    Parts p = small_parts();
    p.header["0.weight"]["shape"] = {3, 4};  // transposed: PyTorch wants [n_out, n_in]
    EXPECT_DEFECT(join(p),
                  HasSubstr("tensor \"0.weight\" has shape [3, 4], expected [4, 3] from "
                            "layer_sizes"));
    p = small_parts();
    p.header["2.bias"]["shape"] = {2, 1};
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"2.bias\" has shape [2, 1], expected [2]"));
    p = small_parts();
    p.header["2.bias"]["shape"] = {-2};
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"2.bias\" has shape [-2], expected [2]"));
    p = small_parts();
    p.header["2.bias"]["shape"] = "2";
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"2.bias\" has shape \"2\", expected [2]"));
    // layer_sizes describing another model: the first tensor's shape disagrees.
    p = small_parts();
    p.header["__metadata__"]["layer_sizes"] = "3,5,2";
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.weight\" has shape [4, 3], expected [5, 3]"));
}

TEST(SafetensorsDefects, MalformedDataOffsets) {
    for (ojson bad : {ojson::array({0}), ojson::array({-4, 44}), ojson::array({0, 4, 8}),
                      ojson("0,48"), ojson::array({0.0, 48.0})}) {
        Parts p = small_parts();
        p.header["0.weight"]["data_offsets"] = bad;
        EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.weight\" has data_offsets"),
                      HasSubstr("expected two non-negative integers"))
            << bad.dump();
    }
    Parts p = small_parts();
    p.header["0.bias"]["data_offsets"] = {64, 48};
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.bias\" has data_offsets [64, 48] that end "
                                     "before they begin"));
}

TEST(SafetensorsDefects, DataOffsetsNotStartingAtZero) {
    Parts p = small_parts();
    for (auto& kv : p.header.items()) {
        if (kv.key() == "__metadata__") continue;
        auto& off = kv.value()["data_offsets"];
        off = {off[0].get<uint64_t>() + 8, off[1].get<uint64_t>() + 8};
    }
    p.data = std::string(8, '\0') + p.data;
    EXPECT_DEFECT(join(p), HasSubstr("data_offsets do not start at 0"),
                  HasSubstr("\"0.weight\", starts at 8"));
}

TEST(SafetensorsDefects, DataOffsetsWithGap) {
    Parts p = small_parts();
    // A 4-byte hole between 0.bias (ends at 64) and 2.weight.
    for (const char* name : {"2.weight", "2.bias"}) {
        auto& off = p.header[name]["data_offsets"];
        off = {off[0].get<uint64_t>() + 4, off[1].get<uint64_t>() + 4};
    }
    p.data.insert(64, 4, '\0');
    EXPECT_DEFECT(join(p), HasSubstr("data_offsets are not contiguous: tensor \"2.weight\" starts "
                                     "at 68 but tensor \"0.bias\" ends at 64"));
}

TEST(SafetensorsDefects, DataOffsetsOverlapping) {
    Parts p = small_parts();
    p.header["0.bias"]["data_offsets"] = {44, 60};  // last weight value shared with the bias
    EXPECT_DEFECT(join(p), HasSubstr("data_offsets are not contiguous: tensor \"0.bias\" starts "
                                     "at 44 but tensor \"0.weight\" ends at 48"));
    p = small_parts();
    p.header["2.bias"]["data_offsets"] = {0, 8};  // aliasing the first weights
    EXPECT_DEFECT(join(p), HasSubstr("not contiguous"));
}

TEST(SafetensorsDefects, DataOffsetsEndBeyondData) {
    Parts p = small_parts();
    p.header["2.bias"]["data_offsets"] = {96, 112};
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"2.bias\" has data_offsets [96, 112] that end "
                                     "beyond the data (104 bytes)"));
    // Offsets near 2^64 must not wrap around into range.
    p.header["2.bias"]["data_offsets"] = {~uint64_t(0) - 3, ~uint64_t(0)};
    EXPECT_DEFECT(join(p), HasSubstr("beyond the data"));
    p = small_parts();
    p.data.resize(100);  // the file is cut short
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"2.bias\" has data_offsets [96, 104] that end "
                                     "beyond the data (100 bytes)"));
}

TEST(SafetensorsDefects, ByteSizeNotMatchingShape) {
    Parts p = small_parts();
    p.header["0.bias"]["data_offsets"] = {48, 52};
    EXPECT_DEFECT(join(p), HasSubstr("tensor \"0.bias\" has 4 bytes of data, expected "
                                     "4 x 4 = 16"));
}

TEST(SafetensorsDefects, UnexpectedExtraTensor) {
    Parts p = small_parts();
    p.header["4.weight"] = {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {104, 108}}};
    p.data += std::string(4, '\0');
    EXPECT_DEFECT(join(p), HasSubstr("unexpected tensor \"4.weight\""));
    p = small_parts();
    p.header["0.weight\n"] = p.header["0.weight"];
    EXPECT_DEFECT(join(p), HasSubstr("unexpected tensor \"0.weight\\n\""));
}

TEST(SafetensorsDefects, MissingTensor) {
    Parts p = small_parts();
    p.header.erase("2.bias");
    p.data.resize(96);
    EXPECT_DEFECT(join(p), HasSubstr("missing tensor \"2.bias\""));
}

TEST(SafetensorsDefects, TrailingBytesAfterLastTensor) {
    Parts p = small_parts();
    p.data += "junk";
    EXPECT_DEFECT(join(p), HasSubstr("4 trailing bytes after the last tensor"));
}

TEST(SafetensorsDefects, NonFiniteValuesAreAccepted) {
    Parts p = small_parts();
    for (size_t i = 0; i < 4; ++i) p.data[i] = '\xff';  // a NaN
    p.data.replace(4, 4, std::string("\x00\x00\x80\x7f", 4));  // +inf
    ModelFile m = decode_model(join(p), k_path);
    EXPECT_TRUE(std::isnan(m.params[0]));
    EXPECT_TRUE(std::isinf(m.params[1]));
}

// Files of other kinds passed as a model: their magic says what they are, instead of a header
// length in the quintillions.
TEST(SafetensorsDefects, OtherFormatsAreNamedByTheirMagic) {
    const std::string tail(64, 'x');
    const std::vector<std::pair<std::string, std::string>> cases = {
        {std::string("\x89PNG\r\n\x1a\n", 8) + tail, "a PNG image (starts with \\x89PNG)"},
        // onnx.save of a ModelProto: ir_version 8, then producer_name.
        {std::string("\x08\x08\x12\x07pytorch", 10) + tail, "an ONNX model"},
        {std::string("\x1f\x8b\x08\x00", 4) + tail, "a gzip file (starts with 1F 8B)"},
        {std::string("PK\x03\x04", 4) + tail, "a zip archive (starts with PK)"},
        {std::string("\x80\x04\x95", 3) + tail, "a Python pickle (starts with 80 04"},
        {std::string("\x00\x00\x08\x03\x00\x00\xea\x60", 8) + tail,
         "an IDX data file (starts with 00 00 08 03)"},
        {std::string("\x00\x00\x08\x01\x00\x00\x00\x00", 8), "an IDX data file"},
        {std::string("\xff\xd8\xff\xe0", 4) + tail, "a JPEG image"},
        {std::string("\x93NUMPY\x01\x00", 8) + tail, "a NumPy .npy array"},
    };
    for (const auto& [bytes, kind] : cases) {
        EXPECT_DEFECT(bytes, HasSubstr("not a safetensors file: it looks like " + kind)) << kind;
        // The training state beside a checkpoint goes through the same codec.
        EXPECT_THROW(decode_safetensors(bytes, k_path), DataError);
    }
    // A plausible length is a safetensors file, whatever its first byte.
    EXPECT_DEFECT(le64(16) + "{\"a\":1}", Not(HasSubstr("looks like")));
}

TEST(Safetensors, LocateParamGivesTensorAndIndex) {
    const ModelShape shape = small_shape();  // 0.weight [4, 3], 0.bias [4], 2.weight [2, 4]
    auto at = [&](int64_t i) {
        const ParamLocation l = locate_param(shape, i);
        return l.tensor + " " + index_text(l.index);
    };
    EXPECT_EQ(at(0), "0.weight [0, 0]");
    EXPECT_EQ(at(5), "0.weight [1, 2]");
    EXPECT_EQ(at(12), "0.bias [0]");
    EXPECT_EQ(at(15), "0.bias [3]");
    EXPECT_EQ(at(16), "2.weight [0, 0]");
    EXPECT_EQ(at(23), "2.weight [1, 3]");
    EXPECT_EQ(at(25), "2.bias [1]");
    EXPECT_THROW(locate_param(shape, 26), Error);
}

// ---------------------------------------------------------------------------------------------
// Files: save/load and atomic writes

using SafetensorsFiles = TempDir;

TEST_F(SafetensorsFiles, SaveLoadRoundTripAndOverwrite) {
    ModelShape shape = small_shape();
    std::vector<float> params = ramp_params(shape);
    const std::string path = file("m.safetensors");
    save_model(path, shape, params, {{"run", "1"}});
    params[5] = 42.0f;
    save_model(path, shape, params, {{"run", "2"}});
    ModelFile m = load_model(path);
    EXPECT_EQ(bits_of(m.params), bits_of(params));
    EXPECT_EQ(m.metadata.at("run"), "2");
    EXPECT_THAT(leftover_temp_files(), ElementsAre());
}

// Such a model would evaluate to a plausible accuracy while predict answers nan%.
TEST_F(SafetensorsFiles, LoadRefusesNonFiniteParamsNamingTensorAndIndex) {
    const ModelShape shape = small_shape();
    const std::string path = file("nan.safetensors");
    std::vector<float> params = ramp_params(shape);
    params[size_t(shape.weight_offset(1) + 1 * 4 + 3)] = std::numeric_limits<float>::quiet_NaN();
    params.back() = std::numeric_limits<float>::infinity();  // later: the first one is named
    save_model(path, shape, params, {});
    try {
        load_model(path);
        FAIL() << "a model with a NaN weight loaded";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith(path + ": "),
                                    HasSubstr("tensor \"2.weight\" holds NaN at [1, 3] (row 1, "
                                              "column 3), the first non-finite value")));
    }
    params = ramp_params(shape);
    params[size_t(shape.bias_offset(0) + 2)] = -std::numeric_limits<float>::infinity();
    save_model(path, shape, params, {});
    try {
        load_model(path);
        FAIL() << "a model with an infinite bias loaded";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("tensor \"0.bias\" holds -inf at [2]"));
    }
}

TEST_F(SafetensorsFiles, LoadMissingFile) {
    const std::string path = file("absent.safetensors");
    EXPECT_THROW(
        {
            try {
                load_model(path);
            } catch (const DataError& e) {
                EXPECT_THAT(e.what(), AllOf(StartsWith(path + ": "), HasSubstr("file not found")));
                throw;
            }
        },
        DataError);
}

TEST_F(SafetensorsFiles, LoadDirectory) {
    try {
        load_model(dir_.string());
        FAIL() << "loading a directory succeeded";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith(dir_.string()), HasSubstr("is a directory")));
    }
}

TEST_F(SafetensorsFiles, LoadRefusesFilesOverTheLimit) {
    ModelShape shape = small_shape();
    const std::string path = file("m.safetensors");
    save_model(path, shape, ramp_params(shape), {});
    const uint64_t size = fs::file_size(path);
    EXPECT_NO_THROW(load_model(path, size));
    try {
        load_model(path, size - 1);
        FAIL() << "a file over the limit loaded";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith(path + ": "),
                                    HasSubstr("file is " + std::to_string(size) +
                                              " bytes, over the size limit of " +
                                              std::to_string(size - 1) + " bytes")));
    }
}

TEST_F(SafetensorsFiles, LoadReportsDefectsWithThePath) {
    const std::string path = file("bad.safetensors");
    put(path, "abc");
    try {
        load_model(path);
        FAIL() << "a 3-byte file loaded";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith(path + ": "), HasSubstr("too short")));
    }
}

TEST_F(SafetensorsFiles, ReadFileReturnsExactBytes) {
    const std::string path = file("blob");
    std::string bytes("a\0b\xff", 4);
    put(path, bytes);
    EXPECT_EQ(read_file(path, 4), bytes);
    put(path, "");
    EXPECT_EQ(read_file(path, 0), "");
}

// Tests run as root, where permissions do not stop writes, so failures are provoked by paths
// that cannot work: a missing directory, and a directory in the way of the rename.
TEST_F(SafetensorsFiles, WriteIntoMissingDirectoryFails) {
    ModelShape shape = small_shape();
    const std::string path = file("no/such/dir/m.safetensors");
    try {
        save_model(path, shape, ramp_params(shape), {});
        FAIL() << "writing into a missing directory succeeded";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "cannot write model to " + path + ": No such file or directory");
    }
    EXPECT_FALSE(fs::exists(file("no")));
    EXPECT_THAT(leftover_temp_files(), ElementsAre());
}

TEST_F(SafetensorsFiles, RenameOntoDirectoryFailsAndCleansUp) {
    ModelShape shape = small_shape();
    const std::string path = file("target");
    fs::create_directory(path);
    put(path + "/keep", "previous contents");
    try {
        save_model(path, shape, ramp_params(shape), {});
        FAIL() << "renaming onto a directory succeeded";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith("cannot write model to " + path + ": "),
                                    HasSubstr("Is a directory")));
    }
    EXPECT_TRUE(fs::is_directory(path));
    EXPECT_EQ(slurp(path + "/keep"), "previous contents");
    EXPECT_THAT(leftover_temp_files(), ElementsAre());
}

// A write that fails halfway (here: over RLIMIT_FSIZE, which binds root too) must leave the
// previous model byte for byte and no temporary file. Runs in a child so the limit stays there.
TEST_F(SafetensorsFiles, FailedWriteLeavesPreviousFileIntact) {
    ModelShape shape = small_shape();
    const std::string path = file("m.safetensors");
    save_model(path, shape, ramp_params(shape), {{"run", "old"}});
    const std::string before = slurp(path);
    EXPECT_EXIT(
        {
            ::signal(SIGXFSZ, SIG_IGN);
            struct rlimit lim;
            ::getrlimit(RLIMIT_FSIZE, &lim);
            lim.rlim_cur = 4096;
            ::setrlimit(RLIMIT_FSIZE, &lim);
            int code = 2;
            try {
                write_file_atomic(path, std::string(1 << 20, 'x'), "model");
            } catch (const Error& e) {
                std::string m = e.what();
                code = m == "cannot write model to " + path + ": File too large" ? 0 : 3;
                if (code != 0) std::fprintf(stderr, "unexpected message: %s\n", m.c_str());
            }
            std::fflush(stderr);
            ::_exit(code);
        },
        ::testing::ExitedWithCode(0), "");
    EXPECT_EQ(slurp(path), before);
    EXPECT_THAT(leftover_temp_files(), ElementsAre());
    EXPECT_EQ(load_model(path).metadata.at("run"), "old");
}

}  // namespace
}  // namespace mlp
