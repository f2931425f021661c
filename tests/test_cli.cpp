// The mlptrain command line, run in-process: exit codes, messages, the epoch
// line format, the metrics file, and train -> save -> eval.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli_runner.hpp"
#include "host/cli/cli.hpp"
#include "host/device/device.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

namespace mlp {
namespace {

using ::testing::HasSubstr;

using test::CliResult;

CliResult run(std::vector<std::string> args) { return test::run_mlptrain(std::move(args)); }

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir("mlptrain_cli_" + std::string(::testing::UnitTest::GetInstance()
                                                                     ->current_test_info()
                                                                     ->name()));
        test::write_idx_dataset(test::synthetic_dataset(300, 60, 4, 5, 3), data());
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string data() const { return (dir_ / "data").string(); }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }

    std::filesystem::path dir_;
};

TEST_F(Cli, TrainPrintsOneStableLinePerEpoch) {
    const auto r = run({"train", "--data", data(), "--device", "cpu", "--epochs", "3",
                        "--hidden", "8", "--batch-size", "16", "--metrics", path("m.jsonl")});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::regex line(
        R"(epoch (\d+)/3 loss [0-9.]+ train_acc [0-9.]+% test_loss [0-9.]+ test_acc [0-9.]+% )"
        R"(time [0-9.]+s samples/s [0-9]+)");
    int n_lines = 0;
    std::istringstream lines(r.out);
    for (std::string l; std::getline(lines, l);) {
        std::smatch m;
        if (std::regex_match(l, m, line)) {
            EXPECT_EQ(std::stoi(m[1]), ++n_lines);
        }
    }
    EXPECT_EQ(n_lines, 3) << r.out;
    EXPECT_THAT(r.out, HasSubstr("model: 20-8-3"));
    EXPECT_THAT(r.out, HasSubstr("final test_acc"));

    std::ifstream metrics(path("m.jsonl"));
    int n_json = 0;
    for (std::string l; std::getline(metrics, l);) {
        const auto j = nlohmann::json::parse(l);
        EXPECT_EQ(j.at("epoch").get<int>(), ++n_json);
        for (const char* key : {"loss", "train_accuracy", "test_loss", "test_accuracy",
                                "epoch_time_s", "samples_per_s", "lr", "lr_last",
                                "grad_norm"}) {
            EXPECT_TRUE(j.contains(key)) << key;
        }
    }
    EXPECT_EQ(n_json, 3);
}

TEST_F(Cli, MetricsCarryTheScheduledLearningRateAndGradientNorm) {
    const auto r = run({"train", "--data", data(), "--device", "cpu", "--epochs", "2",
                        "--hidden", "8", "--batch-size", "16", "--schedule", "step",
                        "--step-size", "1", "--gamma", "0.5", "--lr", "0.2", "--metrics",
                        path("m.jsonl")});
    ASSERT_EQ(r.code, 0) << r.err;
    std::ifstream metrics(path("m.jsonl"));
    std::vector<nlohmann::json> epochs;
    for (std::string l; std::getline(metrics, l);) epochs.push_back(nlohmann::json::parse(l));
    ASSERT_EQ(epochs.size(), 2u);
    EXPECT_NEAR(epochs[0].at("lr").get<double>(), 0.2, 1e-7);
    EXPECT_NEAR(epochs[1].at("lr").get<double>(), 0.1, 1e-7);
    EXPECT_NEAR(epochs[1].at("lr_last").get<double>(), 0.1, 1e-7);
    for (const auto& j : epochs) {
        EXPECT_GT(j.at("grad_norm").get<double>(), 0.0);
        EXPECT_LT(j.at("grad_norm").get<double>(), 100.0);
    }
}

TEST_F(Cli, SavedModelEvaluatesToTheSameAccuracy) {
    const auto t = run({"train", "--data", data(), "--device", "cpu", "--epochs", "2",
                        "--save-model", path("m.safetensors")});
    ASSERT_EQ(t.code, 0) << t.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(t.out, m, std::regex(R"(final test_acc ([0-9.]+)%)")));
    const std::string acc = m[1];

    const auto e = run({"eval", "--model", path("m.safetensors"), "--data", data(), "--device",
                        "cpu"});
    ASSERT_EQ(e.code, 0) << e.err;
    EXPECT_THAT(e.out, HasSubstr("test_acc " + acc + "%"));
    EXPECT_THAT(e.out, HasSubstr("confusion matrix"));

    const auto j = run({"eval", "--model", path("m.safetensors"), "--data", data(), "--device",
                        "cpu", "--json"});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto parsed = nlohmann::json::parse(j.out);
    EXPECT_EQ(parsed.at("n_samples").get<int>(), 60);
    EXPECT_EQ(parsed.at("confusion_matrix").size(), 3u);
    int64_t total = 0;
    for (const auto& row : parsed.at("confusion_matrix"))
        for (const auto& v : row) total += v.get<int64_t>();
    EXPECT_EQ(total, 60);
}

TEST_F(Cli, UsageErrorsExitWithTwoAndNameTheFlag) {
    struct Case {
        std::vector<std::string> args;
        std::string expect;
    };
    const std::vector<Case> cases = {
        {{"train", "--bogus"}, "--bogus"},
        {{"train", "--batch-size", "0"}, "--batch-size"},
        {{"train", "--batch-size", "many"}, "--batch-size"},
        {{"train", "--epochs", "-1"}, "--epochs"},
        {{"train", "--lr", "-0.1"}, "--lr"},
        {{"train", "--device", "tpu"}, "--device"},
        {{"train", "--dataset", "cifar"}, "--dataset"},
        {{"train", "--hidden", "128,x"}, "--hidden"},
        {{"train", "--hidden", "128,0"}, "--hidden"},
        {{"eval"}, "--model"},
        {{}, "subcommand"},
        {{"fly"}, "fly"},
    };
    for (const auto& c : cases) {
        const auto r = run(c.args);
        EXPECT_EQ(r.code, 2) << c.expect;
        EXPECT_THAT(r.err, HasSubstr(c.expect));
    }
}

TEST_F(Cli, MissingDataIsARuntimeErrorNamingTheFolder) {
    const auto r = run({"train", "--data", path("nowhere"), "--device", "cpu"});
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err, HasSubstr(path("nowhere")));
    std::filesystem::remove(data() + "/t10k-labels-idx1-ubyte");
    const auto r2 = run({"train", "--data", data(), "--device", "cpu"});
    EXPECT_EQ(r2.code, 1);
    EXPECT_THAT(r2.err, HasSubstr("t10k-labels-idx1-ubyte"));
}

TEST_F(Cli, CudaWithoutADeviceIsAClearError) {
    if (probe_cuda_device().usable) GTEST_SKIP() << "a CUDA device is present";
    const auto r = run({"train", "--data", data(), "--device", "cuda"});
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err, HasSubstr("--device cuda: no usable CUDA device"));
    const auto a = run({"train", "--data", data(), "--device", "auto", "--epochs", "1"});
    EXPECT_EQ(a.code, 0) << a.err;
    EXPECT_THAT(a.out, HasSubstr("[no usable CUDA device"));
}

TEST_F(Cli, NonFiniteLossStopsWithAnError) {
    const auto r = run({"train", "--data", data(), "--device", "cpu", "--epochs", "2", "--lr",
                        "1e30"});
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err, HasSubstr("non-finite loss or gradient in epoch 1 at step "));
}

TEST_F(Cli, HelpExitsZero) {
    const auto r = run({"train", "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("--batch-size"));
}

}  // namespace
}  // namespace mlp
