// The default run (the notebook's: 784-128-64-10, batch 64, lr 0.1, 10
// epochs, seed 42) on real data through the command line, CPU backend.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sstream>

#include "host/cli/cli.hpp"
#include "host/data/dataset.hpp"

namespace mlp {
namespace {

double final_test_accuracy(const std::string& data_dir) {
    std::vector<std::string> args = {"mlptrain", "train", "--data", data_dir, "--device", "cpu"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::ostringstream out, err;
    const int code = run_cli(int(argv.size()), argv.data(), out, err);
    EXPECT_EQ(code, 0) << err.str();
    std::cout << out.str();
    const std::string text = out.str();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n') >= 10, true);
    EXPECT_THAT(text, ::testing::HasSubstr("epoch 10/10 "));
    std::smatch m;
    if (!std::regex_search(text, m, std::regex(R"(final test_acc ([0-9.]+)%)"))) return -1.0;
    return std::stod(m[1]);
}

std::string mnist_dir() {
    if (const char* env = std::getenv("MLPTRAIN_MNIST_DIR"); env && *env) return env;
    return std::string(MLPTRAIN_SOURCE_DIR) + "/../shared/data/mnist";
}

TEST(EndToEnd, FashionMnistDefaultRunReaches86Percent) {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    ASSERT_TRUE(has_dataset_files(dir))
        << dir << " is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does)";
    EXPECT_GE(final_test_accuracy(dir), 86.0);
}

TEST(EndToEnd, MnistDefaultRunReaches97Percent) {
    const std::string dir = mnist_dir();
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no MNIST files in " << dir;
    EXPECT_GE(final_test_accuracy(dir), 97.0);
}

}  // namespace
}  // namespace mlp
