// Replays every input the fuzzers ever crashed on (fuzz/regressions/<target>/) through the same
// checks the fuzz targets run, so a fixed parser bug that comes back fails the ordinary CPU suite,
// and under the asan preset with the sanitizers' report.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_checks.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> regression_inputs(const std::string& target) {
    const fs::path dir = fs::path(MLPTRAIN_SOURCE_DIR) / "fuzz" / "regressions" / target;
    std::vector<fs::path> files;
    if (fs::is_directory(dir)) {
        for (const auto& entry : fs::directory_iterator(dir)) {
            if (entry.is_regular_file()) files.push_back(entry.path());
        }
    }
    return files;
}

std::vector<uint8_t> contents(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f),
                                std::istreambuf_iterator<char>());
}

template <class Check>
void replay(const std::string& target, Check check) {
    for (const fs::path& path : regression_inputs(target)) {
        SCOPED_TRACE(path.string());
        const std::vector<uint8_t> bytes = contents(path);
        EXPECT_NO_THROW(check(bytes.data(), bytes.size()));
    }
}

TEST(FuzzRegressions, IdxInputsParseOrAreRefused) {
    if (regression_inputs("fuzz_idx").empty()) {
        GTEST_SKIP() << "fuzz/regressions/fuzz_idx/ holds no crash inputs yet";
    }
    replay("fuzz_idx", mlp::fuzz::check_idx_input);
}

TEST(FuzzRegressions, SafetensorsInputsParseOrAreRefused) {
    // The first finding: a number beyond double's range in the header escaped as
    // nlohmann::json::out_of_range instead of an mlp::DataError.
    ASSERT_FALSE(regression_inputs("fuzz_safetensors").empty())
        << "fuzz/regressions/fuzz_safetensors/ is missing";
    replay("fuzz_safetensors", mlp::fuzz::check_safetensors_input);
}

TEST(FuzzRegressions, NumberOverflowInHeaderIsADataErrorNamingTheFile) {
    const std::string header = "2e2222{";
    std::string bytes(8, '\0');
    bytes[0] = char(header.size());
    bytes += header;
    try {
        mlp::decode_model(bytes, "model.safetensors");
        FAIL() << "decoded a header that is not a model";
    } catch (const mlp::DataError& e) {
        EXPECT_EQ(std::string(e.what()).rfind("model.safetensors: header ", 0), 0u) << e.what();
    }
}

}  // namespace
