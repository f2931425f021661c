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
#include "host/formats/safetensors.hpp"
#include "idx_fixtures.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

namespace mlp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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

// --kernels fused runs the backend's fused operations, which on the CPU are the generic
// functors in the same order: the same model, bit for bit. The saved metadata names both
// choices; tf32 needs a GPU.
TEST_F(Cli, KernelsAndPrecisionAreRecordedAndFusedEqualsGenericOnTheCpu) {
    for (const std::string k : {"generic", "fused"}) {
        const auto t = run({"train", "--data", data(), "--device", "cpu", "--epochs", "2",
                            "--optimizer", "adamw", "--augment-shift", "1", "--kernels", k,
                            "--save-model", path(k + ".safetensors")});
        ASSERT_EQ(t.code, 0) << t.err;
    }
    const ModelFile generic = load_model(path("generic.safetensors"));
    const ModelFile fused = load_model(path("fused.safetensors"));
    EXPECT_EQ(generic.params, fused.params);
    EXPECT_EQ(generic.metadata.at("kernels"), "generic");
    EXPECT_EQ(fused.metadata.at("kernels"), "fused");
    EXPECT_EQ(fused.metadata.at("precision"), "fp32");

    const auto tf32 = run({"train", "--data", data(), "--device", "cpu", "--precision", "tf32"});
    EXPECT_EQ(tf32.code, 1);
    EXPECT_THAT(tf32.err, HasSubstr("tf32 needs the CUDA backend"));
    const auto bf16 = run({"train", "--data", data(), "--device", "cpu", "--precision", "bf16"});
    EXPECT_EQ(bf16.code, 1);
    EXPECT_THAT(bf16.err, HasSubstr("bf16 needs the CUDA backend"));
    const auto bad = run({"train", "--data", data(), "--device", "cpu", "--kernels", "fast"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_THAT(bad.err, HasSubstr("--kernels"));
    const auto bad_p = run({"train", "--data", data(), "--device", "cpu", "--precision", "fp16"});
    EXPECT_EQ(bad_p.code, 2);
    EXPECT_THAT(bad_p.err, HasSubstr("--precision"));
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
        {{"train", "--device", "cuda:x"}, "--device"},
        {{"eval", "--model", "m.safetensors", "--device", "gpu"}, "--device"},
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

TEST_F(Cli, FloatFlagsRefuseNanAndInfinity) {
    const std::vector<std::vector<std::string>> cases = {
        {"--lr", "nan"},
        {"--lr", "inf"},
        {"--lr", "1e40"},  // past the float's range: infinite
        {"--momentum", "nan"},
        {"--weight-decay", "inf"},
        {"--schedule", "step", "--step-size", "1", "--gamma", "nan"},
        {"--schedule", "step", "--step-size", "1", "--gamma", "inf"},
        {"--optimizer", "adam", "--beta1", "nan"},
        {"--optimizer", "adam", "--beta2", "-nan"},
        {"--optimizer", "adamw", "--eps", "inf"},
        {"--schedule", "onecycle", "--warmup-pct", "nan"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = {"train", "--data", data(), "--device", "cpu"};
        args.insert(args.end(), c.begin(), c.end());
        const auto r = run(args);
        const std::string& flag = c[c.size() - 2];
        EXPECT_EQ(r.code, 2) << flag << " " << c.back() << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr(flag + ": must be a finite number")) << c.back();
        EXPECT_THAT(r.out, Not(HasSubstr("epoch 1/"))) << flag;
    }
}

TEST_F(Cli, RangeErrorsStateTheBoundsInWords) {
    struct Case {
        std::vector<std::string> args;
        std::string expect;
    };
    const std::vector<Case> cases = {
        {{"train", "--lr", "0"}, "--lr: must be > 0, not 0"},
        {{"train", "--lr", "-0.1"}, "--lr: must be > 0, not -0.1"},
        {{"train", "--momentum", "1.5"}, "--momentum: must be >= 0 and < 1, not 1.5"},
        {{"train", "--train-samples", "-1"}, "--train-samples: must be >= 0, not -1"},
        {{"train", "--threads", "-2"}, "--threads: must be >= 0, not -2"},
        {{"train", "--batch-size", "0"}, "--batch-size: must be between 1 and 1048576, not 0"},
        {{"train", "--schedule", "step", "--step-size", "1", "--gamma", "0"},
         "--gamma: must be > 0, not 0"},
        {{"train", "--optimizer", "adam", "--eps", "0"}, "--eps: must be > 0, not 0"},
        {{"train", "--schedule-epochs", "3"},
         "--schedule-epochs: is for --schedule cosine or "
         "onecycle, not constant"},
        {{"eval", "--model", "m.safetensors", "--test-samples", "-1"},
         "--test-samples: must be >= 0, not -1"},
        {{"eval", "--model", "m.safetensors", "--threads", "-1"}, "--threads: must be >= 0"},
        {{"eval", "--model", "m.safetensors", "--classes", "257"},
         "--classes: must be between 0 and 256, not 257"},
    };
    for (const auto& c : cases) {
        const auto r = run(c.args);
        EXPECT_EQ(r.code, 2) << c.expect;
        EXPECT_THAT(r.err, HasSubstr(c.expect));
        EXPECT_THAT(r.err, Not(HasSubstr("179769313486231570"))) << c.expect;
    }
}

TEST_F(Cli, SeedOutsideSixtyFourBitsIsRefusedNotWrapped) {
    for (const char* bad :
         {"-1", "18446744073709551616", "12345678901234567890123", "4x", "", "+5"}) {
        const auto r = run({"train", "--data", data(), "--device", "cpu", "--seed", bad});
        EXPECT_EQ(r.code, 2) << bad;
        EXPECT_THAT(r.err, HasSubstr("--seed: '" + std::string(bad) +
                                     "' is not an integer in 0..18446744073709551615"))
            << bad;
    }
    const auto top = run({"train", "--data", data(), "--device", "cpu", "--epochs", "1", "--hidden",
                          "8", "--seed", "18446744073709551615"});
    ASSERT_EQ(top.code, 0) << top.err;
    EXPECT_THAT(top.out, HasSubstr("seed 18446744073709551615\n"));
}

TEST_F(Cli, VersionNamesTheCommitAndTheBackends) {
    const auto r = run({"--version"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out,
                testing::ContainsRegex(R"(^mlptrain [0-9]+\.[0-9]+\.[0-9]+ \(commit [^)]+\))"));
    EXPECT_THAT(r.out,
                HasSubstr(built_with_cuda() ? "CUDA backend built in" : "CUDA backend not built"));
}

TEST_F(Cli, DeviceByIndexIsAcceptedAndFailsAtRunTimeWithoutThatGpu) {
    if (probe_cuda_device(7).usable) GTEST_SKIP() << "this machine has a GPU 7";
    const auto r = run({"train", "--data", data(), "--device", "cuda:7", "--epochs", "1"});
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr("--device cuda:7: no usable CUDA device: "));
    EXPECT_THAT(r.err, HasSubstr(probe_cuda_device(7).reason));
}

// A single stray label must not reshape the model in silence.
TEST_F(Cli, OneBadTrainingLabelIsRefusedUnlessClassesSaysSo) {
    Dataset d = test::synthetic_dataset(300, 60, 4, 5, 3);
    d.train.labels.labels[17] = 200;
    test::write_idx_dataset(d, data());
    const std::string labels = data() + "/train-labels-idx1-ubyte";
    const auto r = run({"train", "--data", data(), "--device", "cpu", "--epochs", "1"});
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_THAT(r.err, HasSubstr(labels + ": item 17 has label 200"));
    EXPECT_THAT(r.out, Not(HasSubstr("model:")));

    const auto wide = run({"train", "--data", data(), "--device", "cpu", "--epochs", "1",
                           "--hidden", "8", "--classes", "201"});
    ASSERT_EQ(wide.code, 0) << wide.err;
    EXPECT_THAT(wide.out, HasSubstr("model: 20-8-201"));

    const auto narrow = run({"train", "--data", data(), "--device", "cpu", "--classes", "3"});
    EXPECT_EQ(narrow.code, 1);
    EXPECT_THAT(narrow.err, HasSubstr(labels + ": label out of range: item 17 has label 200, "
                                               "but --classes gives 3 classes"));
}

TEST_F(Cli, EvalReadsOnlyTheTestSplit) {
    const auto t = run({"train", "--data", data(), "--device", "cpu", "--epochs", "1", "--hidden",
                        "8", "--save-model", path("m.safetensors")});
    ASSERT_EQ(t.code, 0) << t.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(t.out, m, std::regex(R"(final test_acc ([0-9.]+)%)")));
    std::filesystem::remove(data() + "/train-images-idx3-ubyte");
    std::filesystem::remove(data() + "/train-labels-idx1-ubyte");
    const auto e =
        run({"eval", "--model", path("m.safetensors"), "--data", data(), "--device", "cpu"});
    ASSERT_EQ(e.code, 0) << e.err;
    EXPECT_THAT(e.out, HasSubstr("test_acc " + std::string(m[1]) + "%"));

    // Test labels the model has no output for.
    Dataset d = test::synthetic_dataset(300, 60, 4, 5, 3);
    d.test.labels.labels[5] = 9;
    test::write_idx_dataset(d, path("bad"));
    const auto bad =
        run({"eval", "--model", path("m.safetensors"), "--data", path("bad"), "--device", "cpu"});
    EXPECT_EQ(bad.code, 1);
    EXPECT_THAT(bad.err, HasSubstr(path("bad") + "/t10k-labels-idx1-ubyte: label out of range: "
                                                 "item 5 has label 9, but the model gives 3"));
    const auto more = run({"eval", "--model", path("m.safetensors"), "--data", data(), "--device",
                           "cpu", "--classes", "4"});
    EXPECT_EQ(more.code, 2);
    EXPECT_THAT(more.err, HasSubstr("--classes: 4 is more than the 3 outputs of the model"));
}

TEST_F(Cli, PredictIdxFindsTheGzipFile) {
    const auto t = run({"train", "--data", data(), "--device", "cpu", "--epochs", "1", "--hidden",
                        "8", "--save-model", path("m.safetensors")});
    ASSERT_EQ(t.code, 0) << t.err;
    const std::string images = data() + "/t10k-images-idx3-ubyte";
    const auto raw = run(
        {"predict", "--model", path("m.safetensors"), "--idx", images, "--index", "3", "--json"});
    ASSERT_EQ(raw.code, 0) << raw.err;
    test::write_bytes(images + ".gz", test::gzip_bytes(test::read_bytes(images)));
    std::filesystem::remove(images);
    const auto gz = run(
        {"predict", "--model", path("m.safetensors"), "--idx", images, "--index", "3", "--json"});
    ASSERT_EQ(gz.code, 0) << gz.err;
    const auto a = nlohmann::json::parse(raw.out).at(0);
    const auto b = nlohmann::json::parse(gz.out).at(0);
    EXPECT_EQ(a.at("top"), b.at("top"));
    EXPECT_EQ(b.at("file").get<std::string>(), images + ".gz");
}

TEST_F(Cli, HelpExitsZero) {
    const auto r = run({"train", "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("--batch-size"));
    // The choices come from the name tables.
    EXPECT_THAT(r.out, HasSubstr("sgd, adam or adamw"));
    EXPECT_THAT(r.out, HasSubstr("constant, step (per epoch), cosine (per epoch, to 0) or "
                                 "onecycle (per step; --lr is the peak)"));
    EXPECT_THAT(r.out, HasSubstr("cuda:N"));
    EXPECT_THAT(r.out, HasSubstr("fashion-mnist"));
    EXPECT_THAT(r.out, HasSubstr("--classes"));
    EXPECT_THAT(r.out, HasSubstr("--precision"));
    EXPECT_THAT(r.out, HasSubstr("bf16 (CUDA: bf16 GEMM operands, fp32 accumulation and master "
                                 "weights)"));
}

}  // namespace
}  // namespace mlp
