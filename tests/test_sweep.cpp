// mlptrain sweep, sweep-merge and ensembles: the configuration grid, models
// identical to `mlptrain train` runs, the per-model non-finite guard, the
// outputs (leaderboard, summary.json, metrics), shards, limits, checkpoints,
// and eval/predict over several models.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.hpp"
#include "host/base/error.hpp"
#include "host/formats/safetensors.hpp"
#include "host/sweep/grid.hpp"
#include "host/sweep/summary.hpp"
#include "host/sweep/sweep_run.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

namespace mlp {
namespace {

using test::CliResult;
using test::slurp;
using ::testing::HasSubstr;

CliResult run(std::vector<std::string> args) {
    return test::run_mlptrain(std::move(args));
}

// The message of the UsageError that `f` throws, "" when it throws none.
template <class F>
std::string usage_error(F f) {
    try {
        f();
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

TEST(SweepGrid, ParsesListsAndRanges) {
    EXPECT_EQ(parse_seed_list("1..4,9", "--seed", 1024), (std::vector<uint64_t>{1, 2, 3, 4, 9}));
    EXPECT_EQ(parse_float_list("0.05,0.1", "--lr"), (std::vector<float>{0.05f, 0.1f}));
    EXPECT_EQ(parse_real_list("0,0.9", "--momentum"), (std::vector<double>{0.0, 0.9}));
    EXPECT_EQ(parse_hidden_list({"128,64/256", "none"}, "--hidden"),
              (std::vector<std::vector<int64_t>>{{128, 64}, {256}, {}}));
    const Shard s = parse_shard("1/3", "--shard");
    EXPECT_TRUE(s.keeps(4));
    EXPECT_FALSE(s.keeps(3));
}

TEST(SweepGrid, RefusesBadListsNamingTheFlag) {
    EXPECT_THAT(usage_error([] { parse_float_list("0.1,", "--lr"); }), HasSubstr("--lr"));
    EXPECT_THAT(usage_error([] { parse_float_list("0.1..0.5", "--lr"); }),
                HasSubstr("ranges A..B are for --seed"));
    EXPECT_THAT(usage_error([] { parse_float_list("0.1,0.1", "--lr"); }), HasSubstr("twice"));
    EXPECT_THAT(usage_error([] { parse_real_list("nan", "--momentum"); }), HasSubstr("--momentum"));
    EXPECT_THAT(usage_error([] { parse_seed_list("5..2", "--seed", 1024); }),
                HasSubstr("ends before it starts"));
    EXPECT_THAT(usage_error([] { parse_seed_list("1..2000", "--seed", 1024); }),
                HasSubstr("more than 1024"));
    EXPECT_THAT(usage_error([] { parse_seed_list("1,1..3", "--seed", 1024); }),
                HasSubstr("seed 1 appears twice"));
    EXPECT_THAT(usage_error([] { parse_hidden_list({"128,0"}, "--hidden"); }),
                HasSubstr("--hidden"));
    EXPECT_THAT(usage_error([] { parse_shard("3/3", "--shard"); }), HasSubstr("K must be below N"));
    EXPECT_THAT(usage_error([] { parse_shard("1", "--shard"); }), HasSubstr("K/N"));
}

TEST(SweepGrid, ProductInFixedOrderWithNames) {
    SweepAxes axes;
    axes.hidden = {{8}, {4, 4}};
    axes.lr = {0.05f, 0.1f};
    axes.seed = {1, 2, 3};
    const auto points = expand_grid(TrainConfig{}, axes, 1024);
    ASSERT_EQ(points.size(), 12u);
    EXPECT_EQ(points[0].name, "h8_lr0.05_seed1");
    EXPECT_EQ(points[1].name, "h8_lr0.05_seed2");
    EXPECT_EQ(points[3].name, "h8_lr0.1_seed1");
    EXPECT_EQ(points[11].name, "h4x4_lr0.1_seed3");
    EXPECT_EQ(points[11].config_key, "h4x4_lr0.1");
    EXPECT_EQ(points[11].config.hidden, (std::vector<int64_t>{4, 4}));
    EXPECT_EQ(points[11].config.seed, 3u);
    EXPECT_EQ(points[11].index, 11);
    const auto groups = group_points(points);
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[1].front(), 6u);
    const auto shard = select_shard(points, Shard{2, 5});
    ASSERT_EQ(shard.size(), 2u);
    EXPECT_EQ(shard[0].index, 2);
    EXPECT_EQ(shard[1].index, 7);
    EXPECT_THAT(usage_error([&] { expand_grid(TrainConfig{}, axes, 11); }),
                HasSubstr("--max-models: the lists give 12 configurations (2 x 2 x 3)"));
    TrainConfig adam;
    adam.optimizer.kind = OptimizerKind::adam;
    SweepAxes momentum;
    momentum.momentum = {0.9};
    EXPECT_THAT(usage_error([&] { expand_grid(adam, momentum, 8); }),
                HasSubstr("--momentum: is for --optimizer sgd"));
}

TEST(SweepSummary, MeanAndStdOverSeedsAndRanking) {
    SweepSummary s;
    s.n_configs = 3;
    auto model = [](int64_t i, const char* key, uint64_t seed, double acc, double loss) {
        ModelSummary m;
        m.index = i;
        m.config_key = key;
        m.name = std::string(key) + "_seed" + std::to_string(seed);
        m.config = {{"seed", seed}};
        m.epochs_done = 1;
        m.test_accuracy = acc;
        m.test_loss = loss;
        return m;
    };
    s.models = {model(0, "a", 1, 0.90, 0.3), model(1, "a", 2, 0.94, 0.2),
                model(2, "b", 1, 0.95, 0.1)};
    s.models[2].stopped = true;
    s.models[2].reason = "non-finite";
    EXPECT_EQ(rank_models(s), (std::vector<size_t>{1, 0, 2}));
    const auto stats = seed_stats(s);
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_DOUBLE_EQ(stats[0].accuracy_mean, 0.92);
    EXPECT_NEAR(stats[0].accuracy_std, 0.0282842712, 1e-9);  // sample std of 0.90, 0.94
    const SweepSummary back = parse_summary(summary_json(s), "x.json");
    EXPECT_EQ(back.models.size(), 3u);
    EXPECT_TRUE(back.models[2].stopped);
    nlohmann::json broken = summary_json(s);
    broken["models"][1].erase("test_loss");
    try {
        parse_summary(broken, "x.json");
        FAIL() << "no error for a missing field";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("x.json: models[1] has no \"test_loss\""));
    }
}

// A model whose accuracy is not a number has no result: it ranks after every model with one,
// and the sort stays a strict order.
TEST(SweepSummary, NonFiniteAccuracyRanksLast) {
    SweepSummary s;
    s.n_configs = 3;
    for (int64_t i = 0; i < 3; ++i) {
        ModelSummary m;
        m.index = i;
        m.name = "m" + std::to_string(i);
        m.epochs_done = 1;
        m.test_accuracy = i == 0 ? std::nan("") : 0.4 + 0.2 * double(i);
        m.test_loss = i == 0 ? std::nan("") : 0.5;
        s.models.push_back(m);
    }
    EXPECT_EQ(rank_models(s), (std::vector<size_t>{2, 1, 0}));
}

TEST(SweepSummary, RefusesACountOfConfigurationsAboveTheCap) {
    SweepSummary s;
    s.n_configs = 1;
    nlohmann::json j = summary_json(s);
    j["n_configs"] = (int64_t(1) << 20) + 1;
    try {
        parse_summary(j, "big.json");
        FAIL() << "no error for n_configs above the cap";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("big.json: n_configs 1048577"));
    }
}

// train_args carries every flag that changes the model, so `train` makes the same one.
TEST(SweepGrid, TrainArgsCarryKernelsPrecisionAndClasses) {
    TrainConfig c;
    EXPECT_THAT(train_args(c), Not(HasSubstr("--kernels")));
    EXPECT_THAT(train_args(c), Not(HasSubstr("--precision")));
    EXPECT_THAT(train_args(c), Not(HasSubstr("--classes")));
    c.kernels = KernelPath::fused;
    c.precision = Precision::bf16;
    c.data.classes = 12;
    EXPECT_THAT(train_args(c), HasSubstr("--classes 12 --kernels fused --precision bf16"));
    SweepAxes axes;
    EXPECT_NE(grid_id(TrainConfig{}, axes), grid_id(c, axes));
}

// On CUDA a group's batch brings one backend, whose cuBLAS workspaces (72 MiB with the
// handles' allowance) the estimate counts once, not once per model.
TEST(SweepMemory, CudaCountsTheBatchsWorkspacesOnce) {
    const Dataset data = test::synthetic_dataset(30, 10, 4, 5, 3);
    TrainConfig c;
    c.hidden = {8};
    std::vector<SweepPoint> points(8);
    for (int i = 0; i < 8; ++i) {
        points[size_t(i)].index = i;
        points[size_t(i)].name = "m" + std::to_string(i);
        points[size_t(i)].config = c;
        points[size_t(i)].config.seed = uint64_t(i);
    }
    DeviceChoice cpu;
    DeviceChoice cuda;
    cuda.cuda = true;
    EXPECT_NO_THROW(check_sweep_memory(points, data, cpu, uint64_t(60) << 20));
    EXPECT_NO_THROW(check_sweep_memory(points, data, cuda, uint64_t(100) << 20));
    try {
        check_sweep_memory(points, data, cuda, uint64_t(60) << 20);
        FAIL() << "the batch's workspaces (72 MiB) fit in 60 MiB";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr("8 models training together need"));
        EXPECT_THAT(e.what(), HasSubstr("GPU memory"));
        EXPECT_THAT(e.what(), HasSubstr("cuBLAS workspaces"));
    }
}

class Sweep : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir(
            "mlptrain_sweep_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
        test::write_idx_dataset(test::synthetic_dataset(300, 60, 4, 5, 3), data());
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string data() const { return (dir_ / "data").string(); }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }

    // Runs `mlptrain train` with the train_args of every model of the summary in `dir` and
    // expects the model file it saves to be byte for byte the sweep's.
    void expect_models_match_train(const std::string& dir, size_t n_models) {
        const SweepSummary s = load_summary(dir + "/summary.json");
        ASSERT_EQ(s.models.size(), n_models);
        for (const ModelSummary& m : s.models) {
            std::vector<std::string> args = {"train", "--data", data(), "--device", "cpu"};
            std::istringstream words(m.train_args);
            for (std::string w; words >> w;) args.push_back(w);
            const std::string mine = path("train_" + m.name + ".safetensors");
            args.insert(args.end(), {"--save-model", mine});
            const auto r = run(args);
            ASSERT_EQ(r.code, 0) << r.err;
            ASSERT_FALSE(m.file.empty());
            const std::string theirs = slurp(dir + "/" + m.file);
            ASSERT_FALSE(theirs.empty()) << m.file;
            EXPECT_TRUE(slurp(mine) == theirs) << m.name << " differs from train " << m.train_args;
        }
    }

    std::filesystem::path dir_;
};

TEST_F(Sweep, FourModelsIdenticalToTrainWithLeaderboardAndSummary) {
    const std::string out = path("D");
    const auto r =
        run({"sweep", "--lr", "0.05,0.1", "--seed", "1,2", "--epochs", "2", "--data", data(),
             "--device", "cpu", "--save-dir", out, "--hidden", "8", "--batch-size", "16"});
    ASSERT_EQ(r.code, 0) << r.err << r.out;
    EXPECT_THAT(r.out, HasSubstr("sweep: 4 configurations"));
    EXPECT_THAT(r.out, HasSubstr("sweep epoch 2/2 test_acc best"));
    EXPECT_THAT(r.out, HasSubstr("running 4/4"));
    EXPECT_THAT(r.out, HasSubstr("leaderboard (4 models, by test accuracy)"));
    EXPECT_THAT(r.out, HasSubstr("mean +- std over seeds"));
    for (const char* name :
         {"h8_lr0.05_seed1", "h8_lr0.05_seed2", "h8_lr0.1_seed1", "h8_lr0.1_seed2"}) {
        EXPECT_TRUE(std::filesystem::exists(out + "/" + name + ".safetensors")) << name;
    }
    const auto j = nlohmann::json::parse(slurp(out + "/summary.json"));
    EXPECT_EQ(j["models"].size(), 4u);
    EXPECT_EQ(j["leaderboard"].size(), 4u);
    EXPECT_EQ(j["seed_stats"].size(), 2u);
    EXPECT_EQ(j["models"][2]["config"]["lr"], 0.1);
    expect_models_match_train(out, 4);
    // The explicit train command, as a user would type it.
    const auto t = run({"train", "--lr", "0.1", "--seed", "2", "--epochs", "2", "--data", data(),
                        "--device", "cpu", "--hidden", "8", "--batch-size", "16", "--save-model",
                        path("typed.safetensors")});
    ASSERT_EQ(t.code, 0) << t.err;
    EXPECT_TRUE(slurp(path("typed.safetensors")) == slurp(out + "/h8_lr0.1_seed2.safetensors"));
}

TEST_F(Sweep, MomentumWithStepScheduleAndShiftsMatchesTrain) {
    const auto r =
        run({"sweep", "--momentum",      "0,0.9",   "--lr",       "0.02,0.05", "--seed",
             "3",     "--epochs",        "3",       "--schedule", "step",      "--step-size",
             "1",     "--augment-shift", "1",       "--data",     data(),      "--device",
             "cpu",   "--save-dir",      path("D"), "--hidden",   "8,6",       "--batch-size",
             "32"});
    ASSERT_EQ(r.code, 0) << r.err << r.out;
    expect_models_match_train(path("D"), 4);
}

TEST_F(Sweep, AdamwWithOneCycleShiftsAndTwoShapesMatchesTrain) {
    const auto r =
        run({"sweep",      "--optimizer",     "adamw",   "--beta1",      "0.9,0.8", "--lr",
             "0.003,0.01", "--hidden",        "8/6,4",   "--epochs",     "2",       "--schedule",
             "onecycle",   "--augment-shift", "1",       "--data",       data(),    "--device",
             "cpu",        "--save-dir",      path("D"), "--batch-size", "16",      "--threads",
             "2"});
    ASSERT_EQ(r.code, 0) << r.err << r.out;
    EXPECT_THAT(r.out, HasSubstr("group 2/2: 4 models of 20-6-4-3"));
    expect_models_match_train(path("D"), 8);
}

// --kernels fused trains each group through the fused operations over the batch; on the CPU
// they are the generic functors in the same order, so its models are the generic sweep's and
// `train --kernels fused`'s, byte for byte.
TEST_F(Sweep, FusedKernelsMatchGenericAndTrain) {
    for (const char* kernels : {"generic", "fused"}) {
        const auto r =
            run({"sweep", "--momentum",      "0,0.9",       "--seed",   "1,2",  "--epochs",
                 "2",     "--augment-shift", "1",           "--data",   data(), "--device",
                 "cpu",   "--save-dir",      path(kernels), "--hidden", "8,6",  "--batch-size",
                 "16",    "--kernels",       kernels});
        ASSERT_EQ(r.code, 0) << r.err << r.out;
    }
    const SweepSummary generic = load_summary(path("generic") + "/summary.json");
    const SweepSummary fused = load_summary(path("fused") + "/summary.json");
    ASSERT_EQ(generic.models.size(), 4u);
    ASSERT_EQ(fused.models.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
        ASSERT_FALSE(fused.models[i].file.empty()) << fused.models[i].name;
        EXPECT_EQ(load_model(path("fused") + "/" + fused.models[i].file).params,
                  load_model(path("generic") + "/" + generic.models[i].file).params)
            << fused.models[i].name;
    }
    expect_models_match_train(path("fused"), 4);
}

TEST_F(Sweep, DivergingModelStopsAloneOthersGoOn) {
    const auto r = run({"sweep", "--lr", "0.05,1e30", "--epochs", "2", "--data", data(), "--device",
                        "cpu", "--hidden", "8", "--batch-size", "16", "--save-dir", path("D"),
                        "--metrics", path("m.jsonl")});
    ASSERT_EQ(r.code, 0) << r.err << r.out;
    EXPECT_THAT(r.out, HasSubstr("model 1 h8_lr1e+30_seed42: stopped: non-finite loss or "
                                 "gradient in epoch 1"));
    EXPECT_THAT(r.out, HasSubstr("running 1/2"));
    const SweepSummary s = load_summary(path("D") + "/summary.json");
    EXPECT_FALSE(s.models[0].stopped);
    EXPECT_EQ(s.models[0].epochs_done, 2);
    EXPECT_TRUE(s.models[1].stopped);
    EXPECT_FALSE(std::filesystem::exists(path("D") + "/h8_lr1e+30_seed42.safetensors"));
    // Every epoch of the model that ran, with its name and config.
    std::istringstream lines(slurp(path("m.jsonl")));
    int n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
        const auto j = nlohmann::json::parse(line);
        EXPECT_EQ(j["model"], "h8_lr0.05_seed42");
        EXPECT_EQ(j["config"]["hidden"], nlohmann::json::array({8}));
        EXPECT_EQ(j["epoch"], n + 1);
    }
    EXPECT_EQ(n, 2);
    // All of them diverging is a failure of the run.
    const auto all = run({"sweep", "--lr", "1e30", "--epochs", "1", "--data", data(), "--device",
                          "cpu", "--hidden", "8"});
    EXPECT_EQ(all.code, 1);
    EXPECT_THAT(all.err, HasSubstr("every model of the sweep stopped"));
}

TEST_F(Sweep, ShardsMergeIntoTheWholeLeaderboard) {
    const std::vector<std::string> common = {
        "sweep",  "--lr", "0.05,0.1,0.2", "--seed", "1..2",     "--epochs", "1",
        "--data", data(), "--device",     "cpu",    "--hidden", "8"};
    auto with = [&](const std::vector<std::string>& extra) {
        return run(test::concat(common, extra));
    };
    ASSERT_EQ(with({"--save-dir", path("all")}).code, 0);
    const auto s0 = with({"--shard", "0/2", "--save-dir", path("s0")});
    ASSERT_EQ(s0.code, 0) << s0.err;
    EXPECT_THAT(s0.out, HasSubstr("sweep: 3 configurations (shard 0/2 of 6)"));
    ASSERT_EQ(with({"--shard", "1/2", "--save-dir", path("s1")}).code, 0);
    const auto m = run({"sweep-merge", path("s0"), path("s1"), "--out", path("merged.json")});
    ASSERT_EQ(m.code, 0) << m.err;
    EXPECT_THAT(m.out, HasSubstr("6 of 6 configurations"));
    const auto merged = nlohmann::json::parse(slurp(path("merged.json")));
    const auto whole = nlohmann::json::parse(slurp(path("all") + "/summary.json"));
    EXPECT_EQ(merged["leaderboard"], whole["leaderboard"]);
    EXPECT_EQ(merged["seed_stats"], whole["seed_stats"]);
    // A shard alone is reported incomplete; twice, or with another sweep, refused.
    EXPECT_THAT(run({"sweep-merge", path("s0")}).out, HasSubstr("missing 3 configurations"));
    const auto twice = run({"sweep-merge", path("s0"), path("s0")});
    EXPECT_EQ(twice.code, 1);
    EXPECT_THAT(twice.err, HasSubstr("holds configuration 0"));
    ASSERT_EQ(run({"sweep", "--lr", "0.3", "--epochs", "1", "--data", data(), "--device", "cpu",
                   "--hidden", "8", "--save-dir", path("other")})
                  .code,
              0);
    const auto other = run({"sweep-merge", path("s0"), path("other")});
    EXPECT_EQ(other.code, 1);
    EXPECT_THAT(other.err, HasSubstr("is from another sweep"));
    // Nor are shards of another data set, though their flags agree.
    SweepSummary elsewhere = load_summary(path("s1") + "/summary.json");
    elsewhere.dataset = "other-data";
    save_summary(path("elsewhere.json"), elsewhere);
    const auto data_set = run({"sweep-merge", path("s0"), path("elsewhere.json")});
    EXPECT_EQ(data_set.code, 1);
    EXPECT_THAT(data_set.err, HasSubstr("data other-data"));
    const auto none = run({"sweep-merge", path("nowhere")});
    EXPECT_EQ(none.code, 1);
    EXPECT_THAT(none.err, HasSubstr("nowhere"));
}

TEST_F(Sweep, LimitsAreClearErrors) {
    const auto many =
        run({"sweep", "--lr", "0.1,0.2", "--seed", "1..600", "--data", data(), "--device", "cpu"});
    EXPECT_EQ(many.code, 2);
    EXPECT_THAT(many.err, HasSubstr("--max-models: the lists give 1200 configurations"));
    const auto memory = run({"sweep", "--seed", "1..4", "--data", data(), "--device", "cpu",
                             "--max-memory-mb", "1", "--hidden", "4096", "--epochs", "1"});
    EXPECT_EQ(memory.code, 1);
    EXPECT_THAT(memory.err, HasSubstr("4 models training together need"));
    EXPECT_THAT(memory.err, HasSubstr("but 1.0 MiB is available"));
    const auto shard = run({"sweep", "--shard", "2/2", "--data", data(), "--device", "cpu"});
    EXPECT_EQ(shard.code, 2);
    EXPECT_THAT(shard.err, HasSubstr("--shard"));
    const auto beta = run({"sweep", "--beta1", "0.9,0.8", "--data", data(), "--device", "cpu"});
    EXPECT_EQ(beta.code, 2);
    EXPECT_THAT(beta.err, HasSubstr("--beta1: is for --optimizer adam or adamw"));
    const auto device = run({"sweep", "--data", data(), "--device", "gpu"});
    EXPECT_EQ(device.code, 2);
    EXPECT_THAT(device.err, HasSubstr("--device: 'gpu' is not a device"));
    // --max-models is checked before the --seed range that depends on it.
    const auto cap =
        run({"sweep", "--max-models", "0", "--seed", "1..3", "--data", data(), "--device", "cpu"});
    EXPECT_EQ(cap.code, 2);
    EXPECT_THAT(cap.err, HasSubstr("--max-models: must be between 1 and 1048576, not 0"));
    const auto lr = run({"sweep", "--lr", "0.1,-1", "--data", data(), "--device", "cpu"});
    EXPECT_EQ(lr.code, 2);
    EXPECT_THAT(lr.err, HasSubstr("--lr"));
}

TEST_F(Sweep, ResumedSweepEndsBitForBitAndSaveBestIsTheLeader) {
    const std::vector<std::string> common = {
        "sweep",    "--lr", "0.05,0.1", "--momentum", "0.9",          "--data", data(),
        "--device", "cpu",  "--hidden", "8",          "--batch-size", "16"};
    auto with = [&](const std::vector<std::string>& extra) {
        return run(test::concat(common, extra));
    };
    const auto whole = with(
        {"--epochs", "3", "--save-dir", path("whole"), "--save-best", path("best.safetensors")});
    ASSERT_EQ(whole.code, 0) << whole.err;
    ASSERT_EQ(with({"--epochs", "1", "--checkpoint-dir", path("ck")}).code, 0);
    const auto resumed = with({"--epochs", "3", "--resume", path("ck"), "--checkpoint-dir",
                               path("ck"), "--save-dir", path("resumed")});
    ASSERT_EQ(resumed.code, 0) << resumed.err;
    EXPECT_THAT(resumed.out, Not(HasSubstr("sweep epoch 1/3")));
    EXPECT_THAT(resumed.out, HasSubstr("sweep epoch 2/3"));
    for (const char* name : {"h8_m0.9_lr0.05_seed42", "h8_m0.9_lr0.1_seed42"}) {
        const std::string a = slurp(path("whole") + "/" + name + ".safetensors");
        ASSERT_FALSE(a.empty()) << name;
        EXPECT_TRUE(a == slurp(path("resumed") + "/" + name + ".safetensors")) << name;
    }
    const SweepSummary s = load_summary(path("whole") + "/summary.json");
    const std::string leader = s.models[rank_models(s).front()].file;
    EXPECT_TRUE(slurp(path("best.safetensors")) == slurp(path("whole") + "/" + leader));
}

// The (model, epoch) of every line of a metrics file, in order.
std::vector<std::pair<std::string, int64_t>> metrics_lines(const std::string& text) {
    std::vector<std::pair<std::string, int64_t>> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        lines.emplace_back(j["model"].get<std::string>(), j["epoch"].get<int64_t>());
    }
    return lines;
}

// A sweep stopped after its first group, whose checkpoints then hold every epoch, resumes to
// the results, files and best model of an uninterrupted sweep: the finished models are not
// left without results.
TEST_F(Sweep, ResumeAfterAFinishedGroupKeepsItsModels) {
    const std::vector<std::string> common = {"sweep", "--lr",         "0.05,0.1", "--epochs",
                                             "2",     "--data",       data(),     "--device",
                                             "cpu",   "--batch-size", "16"};
    auto with = [&](const std::vector<std::string>& extra) {
        return run(test::concat(common, extra));
    };
    const auto whole = with({"--hidden", "8/6", "--save-dir", path("whole"), "--save-best",
                             path("best_whole.safetensors"), "--metrics", path("whole.jsonl")});
    ASSERT_EQ(whole.code, 0) << whole.err;
    // Group 1 alone: its checkpoints are those of an interrupted run after that group.
    ASSERT_EQ(
        with({"--hidden", "8", "--checkpoint-dir", path("ck"), "--metrics", path("m.jsonl")}).code,
        0);
    const auto resumed = with({"--hidden", "8/6", "--resume", path("ck"), "--checkpoint-dir",
                               path("ck"), "--save-dir", path("resumed"), "--save-best",
                               path("best_resumed.safetensors"), "--metrics", path("m.jsonl")});
    ASSERT_EQ(resumed.code, 0) << resumed.err << resumed.out;
    const auto a = nlohmann::json::parse(slurp(path("whole") + "/summary.json"));
    const auto b = nlohmann::json::parse(slurp(path("resumed") + "/summary.json"));
    EXPECT_EQ(a["leaderboard"], b["leaderboard"]);
    EXPECT_EQ(a["models"], b["models"]);
    for (const auto& m : a["models"]) {
        const std::string file = m["file"].get<std::string>();
        EXPECT_TRUE(slurp(path("whole") + "/" + file) == slurp(path("resumed") + "/" + file))
            << file;
    }
    EXPECT_TRUE(slurp(path("best_whole.safetensors")) == slurp(path("best_resumed.safetensors")));
    EXPECT_EQ(metrics_lines(slurp(path("whole.jsonl"))), metrics_lines(slurp(path("m.jsonl"))));
    // Without the metrics lines the train figures are not measured (null), the rest the same.
    ASSERT_EQ(
        with({"--hidden", "8/6", "--resume", path("ck"), "--save-dir", path("nometrics")}).code, 0);
    const auto c = nlohmann::json::parse(slurp(path("nometrics") + "/summary.json"));
    EXPECT_EQ(a["leaderboard"], c["leaderboard"]);
    EXPECT_TRUE(c["models"][0]["train_accuracy"].is_null());
    EXPECT_EQ(a["models"][0]["test_accuracy"], c["models"][0]["test_accuracy"]);
}

// Resuming a sweep whose groups all stopped part way keeps every group's earlier metrics lines.
TEST_F(Sweep, ResumedMetricsKeepEveryGroupsLines) {
    const std::vector<std::string> common = {"sweep", "--lr",         "0.05,0.1", "--hidden",
                                             "8/6",   "--data",       data(),     "--device",
                                             "cpu",   "--batch-size", "16"};
    auto with = [&](const std::vector<std::string>& extra) {
        return run(test::concat(common, extra));
    };
    ASSERT_EQ(with({"--epochs", "2", "--metrics", path("whole.jsonl")}).code, 0);
    ASSERT_EQ(
        with({"--epochs", "1", "--checkpoint-dir", path("ck"), "--metrics", path("m.jsonl")}).code,
        0);
    const auto r = with({"--epochs", "2", "--resume", path("ck"), "--metrics", path("m.jsonl")});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto lines = metrics_lines(slurp(path("m.jsonl")));
    EXPECT_EQ(lines.size(), 8u);
    EXPECT_EQ(metrics_lines(slurp(path("whole.jsonl"))), lines);
}

TEST_F(Sweep, EnsembleEvalAndPredictAverageTheMembers) {
    ASSERT_EQ(run({"sweep", "--seed", "1,2", "--epochs", "2", "--data", data(), "--device", "cpu",
                   "--hidden", "8", "--save-dir", path("D")})
                  .code,
              0);
    const std::string a = path("D") + "/h8_lr0.1_seed1.safetensors";
    const std::string b = path("D") + "/h8_lr0.1_seed2.safetensors";
    const auto text =
        run({"eval", "--model", a, "--model", b, "--data", data(), "--device", "cpu"});
    ASSERT_EQ(text.code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("ensemble of 2 models"));
    EXPECT_THAT(text.out, HasSubstr(a));
    const auto j = nlohmann::json::parse(
        run({"eval", "--model", a, "--model", b, "--data", data(), "--json"}).out);
    ASSERT_EQ(j["members"].size(), 2u);
    // A member's accuracy matches the single-model eval.
    const auto one = nlohmann::json::parse(
        run({"eval", "--model", a, "--data", data(), "--json", "--device", "cpu"}).out);
    EXPECT_NEAR(j["members"][0]["test_accuracy"].get<double>(), one["test_accuracy"].get<double>(),
                1.0 / 60 + 1e-9);
    EXPECT_EQ(j["n_samples"], 60);

    // predict: the ensemble's probability of a class is the mean of the members'.
    const std::string idx = data() + "/t10k-images-idx3-ubyte";
    auto top = [&](std::vector<std::string> models) {
        std::vector<std::string> args = {"predict"};
        for (auto& m : models) args.insert(args.end(), {"--model", m});
        args.insert(args.end(), {"--idx", idx, "--index", "0", "--top-k", "3", "--json"});
        const auto r = run(args);
        EXPECT_EQ(r.code, 0) << r.err;
        std::map<int, double> p;
        const nlohmann::json parsed = nlohmann::json::parse(r.out);
        for (const auto& t : parsed[0]["top"]) {
            p[t["class"].get<int>()] = t["probability"].get<double>();
        }
        return p;
    };
    const auto pa = top({a}), pb = top({b}), pab = top({a, b});
    for (const auto& [label, p] : pab) EXPECT_NEAR(p, 0.5 * (pa.at(label) + pb.at(label)), 1e-12);

    // Members that do not take the same inputs are refused, naming the file.
    const std::string wide = (dir_ / "wide").string();
    test::write_idx_dataset(test::synthetic_dataset(60, 20, 5, 5, 3), wide);
    ASSERT_EQ(run({"train", "--data", wide, "--device", "cpu", "--epochs", "1", "--hidden", "4",
                   "--save-model", path("wide.safetensors")})
                  .code,
              0);
    const auto bad =
        run({"eval", "--model", a, "--model", path("wide.safetensors"), "--data", data()});
    EXPECT_EQ(bad.code, 1);
    EXPECT_THAT(bad.err, HasSubstr(path("wide.safetensors") + ": is a 25-4-3 model"));
}

}  // namespace
}  // namespace mlp

namespace mlp {
namespace {

// Groups spread over several devices run at once, one thread per device, and end where one
// device running them in turn ends: here two CPU "devices" (the path --devices takes with
// GPUs), three shapes, so one device runs two groups.
TEST(SweepDevices, GroupsSpreadOverDevicesMatchOneDevice) {
    const Dataset data = test::synthetic_dataset(200, 50, 4, 5, 3);
    TrainConfig base;
    base.epochs = 2;
    base.batch_size = 16;
    base.augment_shift = 1;
    SweepAxes axes;
    axes.hidden = {{8}, {6, 4}, {5}};
    axes.seed = {1, 2};
    axes.lr = {0.05f, 0.1f};
    const auto points = expand_grid(base, axes, 100);
    ASSERT_EQ(points.size(), 12u);
    const std::filesystem::path dir = test::make_temp_dir("mlptrain_sweep_devices");
    std::vector<SweepSummary> summaries;
    std::vector<std::string> logs;
    for (size_t n_devices : {size_t(1), size_t(2)}) {
        SweepOptions options;
        options.save_dir = (dir / std::to_string(n_devices)).string();
        options.metrics_path = (dir / (std::to_string(n_devices) + ".jsonl")).string();
        std::ostringstream out;
        summaries.push_back(
            run_sweep(points, data, std::vector<DeviceChoice>(n_devices), options, out));
        logs.push_back(out.str());
    }
    EXPECT_THAT(logs[1], HasSubstr("[cpu 0] group 1/3"));
    EXPECT_THAT(logs[1], HasSubstr("[cpu 1] group 2/3"));
    EXPECT_THAT(logs[1], HasSubstr("[cpu 0] group 3/3"));
    ASSERT_EQ(summaries[0].models.size(), summaries[1].models.size());
    for (size_t i = 0; i < summaries[0].models.size(); ++i) {
        const ModelSummary& a = summaries[0].models[i];
        const ModelSummary& b = summaries[1].models[i];
        EXPECT_EQ(a.name, b.name);
        EXPECT_EQ(a.test_accuracy, b.test_accuracy) << a.name;
        ASSERT_FALSE(a.file.empty());
        EXPECT_TRUE(slurp((dir / "1" / a.file).string()) == slurp((dir / "2" / b.file).string()))
            << a.name;
    }
    // Every model's epochs are in the metrics file, whichever thread wrote them.
    std::istringstream lines(slurp((dir / "2.jsonl").string()));
    int64_t n_lines = 0;
    for (std::string line; std::getline(lines, line);) ++n_lines;
    EXPECT_EQ(n_lines, 12 * 2);
    std::filesystem::remove_all(dir);
}

TEST(SweepDevices, DevicesFlagIsCheckedNamingIt) {
    const auto with_cpu = run({"sweep", "--devices", "0,1", "--device", "cpu", "--data", "x"});
    EXPECT_EQ(with_cpu.code, 2);
    EXPECT_THAT(with_cpu.err, HasSubstr("--devices"));
    EXPECT_THAT(with_cpu.err, HasSubstr("--device cpu"));
    const auto twice = run({"sweep", "--devices", "0,1..2,1", "--data", "x"});
    EXPECT_EQ(twice.code, 2);
    EXPECT_THAT(twice.err, HasSubstr("--devices"));
    EXPECT_THAT(twice.err, HasSubstr("GPU 1 is listed twice"));
    const auto empty = run({"sweep", "--devices", "0,", "--data", "x"});
    EXPECT_EQ(empty.code, 2);
    EXPECT_THAT(empty.err, HasSubstr("--devices"));
    const auto word = run({"sweep", "--devices", "gpu", "--data", "x"});
    EXPECT_EQ(word.code, 2);
    EXPECT_THAT(word.err, HasSubstr("--devices"));
}

}  // namespace
}  // namespace mlp
