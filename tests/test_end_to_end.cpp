// The default run (the notebook's: 784-128-64-10, batch 64, lr 0.1, 10
// epochs, seed 42) and the README's accuracy recipe on real data through the
// command line, CPU backend.
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

double final_test_accuracy(const std::string& data_dir,
                           const std::vector<std::string>& extra = {}, int epochs = 10) {
    std::vector<std::string> args = {"mlptrain", "train", "--data", data_dir, "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::ostringstream out, err;
    const int code = run_cli(int(argv.size()), argv.data(), out, err);
    EXPECT_EQ(code, 0) << err.str();
    std::cout << out.str();
    const std::string text = out.str();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n') >= epochs, true);
    const std::string last = "epoch " + std::to_string(epochs) + "/" + std::to_string(epochs) + " ";
    EXPECT_THAT(text, ::testing::HasSubstr(last));
    std::smatch m;
    if (!std::regex_search(text, m, std::regex(R"(final test_acc ([0-9.]+)%)"))) return -1.0;
    return std::stod(m[1]);
}

// The project's mirror folder (as on CI), else what data/fetch or scripts/get_mnist.sh put in
// data/mnist; MLPTRAIN_MNIST_DIR overrides both.
std::string mnist_dir() {
    if (const char* env = std::getenv("MLPTRAIN_MNIST_DIR"); env && *env) return env;
    const std::string root = MLPTRAIN_SOURCE_DIR;
    for (const std::string& dir : {root + "/../shared/data/mnist", root + "/data/mnist"}) {
        if (has_dataset_files(dir)) return dir;
    }
    return root + "/../shared/data/mnist or " + root + "/data/mnist";
}

TEST(EndToEnd, FashionMnistDefaultRunReaches86Percent) {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    ASSERT_TRUE(has_dataset_files(dir))
        << dir << " is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does)";
    EXPECT_GE(final_test_accuracy(dir), 86.0);
}

TEST(EndToEnd, MnistDefaultRunReaches97_5Percent) {
    const std::string dir = mnist_dir();
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no MNIST files in " << dir;
    EXPECT_GE(final_test_accuracy(dir), 97.5);
}

// The README's accuracy recipe; about 30 s on a 2-core CPU.
TEST(EndToEnd, MnistRecipeReaches98_5Percent) {
    const std::string dir = mnist_dir();
    if (!has_dataset_files(dir)) GTEST_SKIP() << "no MNIST files in " << dir;
    EXPECT_GE(final_test_accuracy(dir,
                                  {"--optimizer", "adamw", "--lr", "0.003", "--schedule",
                                   "onecycle", "--augment-shift", "1", "--epochs", "30"},
                                  30),
              98.5);
}

}  // namespace
}  // namespace mlp
