// Checkpoints and resuming: the generic tensor codec of the state file (one
// test per defect), checkpoint files, flag checks on resume, and the promise
// that a resumed run continues bit for bit like an uninterrupted one, through
// the command line on synthetic data written as IDX files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "host/base/error.hpp"
#include "host/cli/cli.hpp"
#include "host/formats/checkpoint.hpp"
#include "host/formats/safetensors.hpp"
#include "host/train/train_loop.hpp"
#include "host/train/trainer.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

namespace mlp {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string k_state = "/ckpt/run.state.safetensors";

std::string le64(uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
    return s;
}

// A file from header JSON text and raw data, the header padded as the format asks.
std::string file_of(std::string header, const std::string& data) {
    while (header.size() % 8 != 0) header.push_back(' ');
    return le64(header.size()) + header + data;
}

std::string tensors_error(const std::string& bytes) {
    try {
        decode_safetensors(bytes, k_state);
    } catch (const DataError& e) {
        return e.what();
    }
    ADD_FAILURE() << "decoding succeeded";
    return "";
}

#define EXPECT_STATE_DEFECT(bytes, ...) \
    EXPECT_THAT(tensors_error(bytes), AllOf(StartsWith(k_state + ": "), __VA_ARGS__))

TEST(TensorFile, RoundTripsAnyShapeInOrder) {
    const std::vector<NamedTensor> tensors = {
        {"b", {2, 3}, {1, 2, 3, 4, 5, -6.5f}}, {"a", {1}, {7}}, {"empty", {0}, {}}};
    const std::string bytes = encode_safetensors({tensors, {{"k", "v"}}});
    uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | uint8_t(bytes[size_t(i)]);
    EXPECT_EQ(header_bytes % 8, 0u);
    const TensorFile f = decode_safetensors(bytes, k_state);
    ASSERT_EQ(f.tensors.size(), 3u);
    EXPECT_EQ(f.tensors[0].name, "b");
    EXPECT_EQ(f.tensors[0].shape, (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(f.tensors[0].values, tensors[0].values);
    EXPECT_EQ(f.tensors[1].values, std::vector<float>{7});
    EXPECT_EQ(f.metadata.at("k"), "v");
    EXPECT_THROW(encode_safetensors({{{"x", {2}, {1}}}, {}}), Error);
    EXPECT_THROW(encode_safetensors({{{"x", {1}, {1}}, {"x", {1}, {2}}}, {}}), Error);
}

TEST(TensorFile, EachDefectIsNamed) {
    const std::string four(4, '\0'), eight(8, '\0');
    EXPECT_STATE_DEFECT("abc", HasSubstr("too short"));
    EXPECT_STATE_DEFECT(le64(100) + "{}", HasSubstr("larger than the rest"));
    EXPECT_STATE_DEFECT(file_of("[1]", ""), HasSubstr("not a JSON object"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "ab"),
                        HasSubstr("dtype \"F16\""));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four),
                        HasSubstr("4 bytes of data, expected 4 x 2 = 8"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
                        HasSubstr("do not start at 0"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
                        HasSubstr("4 trailing bytes"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", four),
                        HasSubstr("end beyond the data (4 bytes)"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                four),
                        HasSubstr("not contiguous"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":{"dtype":"F32","shape":[1]}})", four),
                        HasSubstr("has no data_offsets"));
    EXPECT_STATE_DEFECT(file_of(R"({"__metadata__":{"a":1}})", ""), HasSubstr("not a string"));
    EXPECT_STATE_DEFECT(file_of(R"({"x":1,"x":2})", ""), HasSubstr("duplicate key"));
}

TEST(Checkpoint, StatePathSitsBesideTheModel) {
    EXPECT_EQ(state_path("a/run.safetensors"), "a/run.state.safetensors");
    EXPECT_EQ(state_path("ckpt"), "ckpt.state.safetensors");
}

TEST(Checkpoint, MetadataHoldsTheFlagsExactly) {
    TrainConfig c;
    c.optimizer.kind = OptimizerKind::adamw;
    c.optimizer.weight_decay = 0.01;
    c.optimizer.eps = 1e-8;
    c.schedule.kind = ScheduleKind::onecycle;
    c.lr = 0.003f;
    const auto m = training_metadata(c, "fashion-mnist", 60000, 10, 4);
    EXPECT_EQ(m.at("lr"), "0.003");
    EXPECT_EQ(m.at("eps"), "1e-08");
    EXPECT_EQ(m.at("weight_decay"), "0.01");
    EXPECT_EQ(m.at("optimizer"), "adamw");
    EXPECT_EQ(m.at("schedule"), "onecycle");
    EXPECT_EQ(m.at("warmup_pct"), "0.3");
    EXPECT_EQ(m.at("schedule_epochs"), "10");
    EXPECT_EQ(m.at("epoch"), "4");
    EXPECT_EQ(m.at("dataset"), "fashion-mnist");
    EXPECT_EQ(m.at("input_scale"), "1/255");
    EXPECT_EQ(m.count("momentum"), 0u);  // only the chosen optimizer's flags
    EXPECT_EQ(m.count("gamma"), 0u);
}

TEST(Checkpoint, ResumeRefusesChangedFlagsNamingThem) {
    TrainConfig c;
    const auto saved = training_metadata(c, "d", 100, 3, 2);
    TrainConfig more_epochs = c;
    more_epochs.epochs = 20;  // constant schedule: may change
    EXPECT_NO_THROW(check_resume_matches(saved, training_metadata(more_epochs, "d", 100, 3, 0),
                                         "c.safetensors"));
    TrainConfig lr = c;
    lr.lr = 0.05f;
    try {
        check_resume_matches(saved, training_metadata(lr, "d", 100, 3, 0), "c.safetensors");
        FAIL() << "accepted another --lr";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), AllOf(HasSubstr("--resume c.safetensors"), HasSubstr("--lr"),
                                    HasSubstr("0.05"), HasSubstr("0.1")));
    }
    TrainConfig opt = c;
    opt.optimizer.kind = OptimizerKind::adam;
    EXPECT_THROW(check_resume_matches(saved, training_metadata(opt, "d", 100, 3, 0), "c"), Error);
    EXPECT_THROW(check_resume_matches(saved, training_metadata(c, "e", 100, 3, 0), "c"), Error);
    EXPECT_THROW(check_resume_matches(saved, training_metadata(c, "d", 99, 3, 0), "c"), Error);
    TrainConfig cosine = c;
    cosine.schedule.kind = ScheduleKind::cosine;
    const auto saved_cosine = training_metadata(cosine, "d", 100, 3, 2);
    cosine.epochs = 20;  // moves the cosine's span: refused
    EXPECT_THROW(check_resume_matches(saved_cosine, training_metadata(cosine, "d", 100, 3, 0), "c"),
                 Error);
    cosine.schedule_epochs = 10;  // ... unless the span is kept
    EXPECT_NO_THROW(
        check_resume_matches(saved_cosine, training_metadata(cosine, "d", 100, 3, 0), "c"));
}

TEST(Checkpoint, NonFiniteOptimizerStateIsRefusedNamingTensorAndIndex) {
    const fs::path dir = test::make_temp_dir("mlptrain_ckpt_nan");
    const std::string at = (dir / "c.safetensors").string();
    const ModelShape shape({3, 4, 2});  // 0.weight [4, 3], 0.bias [4], 2.weight [2, 4], 2.bias
    TrainConfig config;
    config.optimizer.kind = OptimizerKind::adam;
    const auto meta = training_metadata(config, "d", 100, 2, 1);
    const size_t n = size_t(shape.n_params());
    OptimizerState state;
    state.step = 4;
    state.buffers = {std::vector<float>(n, 0.5f), std::vector<float>(n, 0.25f)};
    state.buffers[1][17] = std::numeric_limits<float>::infinity();  // 2.weight [0, 1]
    const std::vector<std::string> names = {"exp_avg", "exp_avg_sq"};
    save_checkpoint(at, shape, std::vector<float>(n, 1.0f), state, names, meta);
    try {
        load_checkpoint(at, shape, names, meta, nullptr);
        FAIL() << "a state with an infinite exp_avg_sq loaded";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith(state_path(at) + ": "),
                                    HasSubstr("tensor \"exp_avg_sq\" holds +inf at [17] "
                                              "(\"2.weight\" at [0, 1])")));
    }
    std::vector<float> params(n, 1.0f);
    params[2] = std::numeric_limits<float>::quiet_NaN();
    state.buffers[1][17] = 0.0f;
    save_checkpoint(at, shape, params, state, names, meta);
    try {
        load_checkpoint(at, shape, names, meta, nullptr);
        FAIL() << "a state with a NaN parameter loaded";
    } catch (const DataError& e) {
        // The state's own copy of the parameters is checked before the model file is read.
        EXPECT_THAT(e.what(), AllOf(StartsWith(state_path(at) + ": "),
                                    HasSubstr("tensor \"params\" holds NaN at [2]")));
    }
    fs::remove_all(dir);
}

using test::CliResult;

CliResult run(std::vector<std::string> args) { return test::run_mlptrain(std::move(args)); }

using test::slurp;

std::vector<std::string> lines_of(const std::string& path) {
    std::istringstream in(slurp(path));
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

class Resume : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir("mlptrain_resume_" + std::string(::testing::UnitTest::GetInstance()
                                                                         ->current_test_info()
                                                                         ->name()));
        // 8x8 images so that shifts of 2 pixels matter; 300 samples in
        // batches of 32 leave a partial last step.
        test::write_idx_dataset(test::synthetic_dataset(300, 60, 8, 8, 3), data());
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string data() const { return (dir_ / "data").string(); }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }

    // Trains 3 epochs straight, and 2 + checkpoint + resume to 3; the saved
    // models must be the same bytes, and so must the metrics of the epochs.
    void expect_bit_identical_resume(const std::vector<std::string>& flags,
                                     const std::vector<std::string>& stop_flags = {}) {
        std::vector<std::string> common = {"train",    "--data", data(),         "--device", "cpu",
                                           "--hidden", "16,8",   "--batch-size", "32"};
        common.insert(common.end(), flags.begin(), flags.end());
        auto with = [&](const std::vector<std::string>& extra) {
            return test::concat(common, extra);
        };
        const auto straight = run(with({"--epochs", "3", "--save-model", path("a.safetensors"),
                                        "--metrics", path("a.jsonl")}));
        ASSERT_EQ(straight.code, 0) << straight.err;

        std::vector<std::string> first = {
            "--epochs", "2", "--checkpoint", path("c.safetensors"), "--metrics", path("b.jsonl")};
        first.insert(first.end(), stop_flags.begin(), stop_flags.end());
        const auto stopped = run(with(first));
        ASSERT_EQ(stopped.code, 0) << stopped.err;
        ASSERT_TRUE(fs::exists(path("c.state.safetensors")));
        // The checkpoint's model file is an ordinary, strictly loadable model.
        EXPECT_EQ(load_model(path("c.safetensors")).metadata.at("epoch"), "2");

        const auto resumed =
            run(with({"--epochs", "3", "--resume", path("c.safetensors"), "--save-model",
                      path("b.safetensors"), "--metrics", path("b.jsonl")}));
        ASSERT_EQ(resumed.code, 0) << resumed.err;
        EXPECT_THAT(resumed.out,
                    HasSubstr("resumed from " + path("c.safetensors") + " after epoch 2"));
        EXPECT_THAT(resumed.out, HasSubstr("epoch 3/3 "));
        EXPECT_THAT(resumed.out, ::testing::Not(HasSubstr("epoch 2/3 ")));

        const ModelFile a = load_model(path("a.safetensors"));
        const ModelFile b = load_model(path("b.safetensors"));
        EXPECT_EQ(a.params, b.params);  // bit for bit
        EXPECT_EQ(slurp(path("a.safetensors")), slurp(path("b.safetensors")));

        // The metrics file reads like the uninterrupted run's, timings aside.
        const auto ma = lines_of(path("a.jsonl")), mb = lines_of(path("b.jsonl"));
        ASSERT_EQ(ma.size(), 3u);
        ASSERT_EQ(mb.size(), 3u);
        for (size_t i = 0; i < 3; ++i) {
            auto ja = nlohmann::json::parse(ma[i]), jb = nlohmann::json::parse(mb[i]);
            for (auto* j : {&ja, &jb}) {
                j->erase("epoch_time_s");
                j->erase("samples_per_s");
            }
            EXPECT_EQ(ja, jb) << "epoch " << i + 1;
        }
    }

    fs::path dir_;
};

// --resume alone takes the checkpoint's training flags: the stopped run's optimizer, schedule,
// shifts and model, with nothing typed again.
TEST_F(Resume, TakesTheCheckpointsFlagsWhenNoneAreGiven) {
    const std::vector<std::string> flags = {
        "--hidden",     "16,8", "--batch-size",     "32", "--optimizer", "adamw",
        "--lr",         "0.01", "--schedule",       "cosine", "--schedule-epochs", "3",
        "--augment-shift", "1", "--weight-decay", "0.05"};
    auto train = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"train", "--data", data(), "--device", "cpu"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run(args);
    };
    std::vector<std::string> straight = flags;
    straight.insert(straight.end(), {"--epochs", "3", "--save-model", path("a.safetensors")});
    ASSERT_EQ(train(straight).code, 0);
    std::vector<std::string> first = flags;
    first.insert(first.end(), {"--epochs", "2", "--checkpoint", path("c.safetensors")});
    ASSERT_EQ(train(first).code, 0);
    const auto resumed = train({"--epochs", "3", "--resume", path("c.safetensors"),
                                "--save-model", path("b.safetensors")});
    ASSERT_EQ(resumed.code, 0) << resumed.err;
    EXPECT_THAT(resumed.out, HasSubstr("optimizer: adamw"));
    EXPECT_THAT(resumed.out, HasSubstr("weight_decay 0.05"));
    EXPECT_EQ(slurp(path("a.safetensors")), slurp(path("b.safetensors")));
}

TEST_F(Resume, SgdContinuesBitForBit) {
    expect_bit_identical_resume({"--lr", "0.1"});
}

TEST_F(Resume, MomentumAndStepScheduleContinueBitForBit) {
    expect_bit_identical_resume({"--momentum", "0.9", "--nesterov", "--weight-decay", "1e-4",
                                 "--schedule", "step", "--step-size", "1", "--gamma", "0.5"});
}

TEST_F(Resume, AdamwOneCycleShiftContinuesBitForBit) {
    // The one-cycle schedule spans 3 epochs in both runs: the stopped run
    // says so with --schedule-epochs.
    expect_bit_identical_resume(
        {"--optimizer", "adamw", "--lr", "0.01", "--schedule", "onecycle", "--augment-shift", "2"},
        {"--schedule-epochs", "3"});
}

TEST_F(Resume, MismatchedFlagsAndBadFilesAreClearErrors) {
    const std::vector<std::string> base = {"train",    "--data", data(),        "--device", "cpu",
                                           "--hidden", "8",      "--optimizer", "adam"};
    auto with = [&](const std::vector<std::string>& extra) {
        return test::concat(base, extra);
    };
    ASSERT_EQ(run(with({"--epochs", "1", "--checkpoint", path("c.safetensors")})).code, 0);

    const auto lr = run(with({"--epochs", "2", "--lr", "0.01", "--resume", path("c.safetensors")}));
    EXPECT_EQ(lr.code, 1);
    EXPECT_THAT(lr.err, AllOf(HasSubstr("--lr is 0.01 here but was 0.1"),
                              HasSubstr(path("c.safetensors"))));

    const auto hidden =
        run({"train", "--data", data(), "--device", "cpu", "--hidden", "9", "--optimizer", "adam",
             "--epochs", "2", "--resume", path("c.safetensors")});
    EXPECT_EQ(hidden.code, 1);
    EXPECT_THAT(hidden.err, AllOf(HasSubstr(path("c.safetensors")),
                                  HasSubstr("--hidden is 9 here but was 8")));

    // Every mismatching flag in one error, not one per attempt.
    const auto several = run({"train", "--data", data(), "--device", "cpu", "--hidden", "9",
                              "--optimizer", "adam", "--lr", "0.5", "--beta2", "0.9", "--epochs",
                              "2", "--resume", path("c.safetensors")});
    EXPECT_EQ(several.code, 1);
    EXPECT_THAT(several.err, AllOf(HasSubstr("--hidden is 9"), HasSubstr("--lr is 0.5"),
                                   HasSubstr("--beta2 is 0.9")));

    const auto done = run(with({"--epochs", "1", "--resume", path("c.safetensors")}));
    EXPECT_EQ(done.code, 1);
    EXPECT_THAT(done.err, HasSubstr("already holds 1 epochs"));

    // A truncated state file is named with its defect.
    const std::string state = slurp(path("c.state.safetensors"));
    std::ofstream(path("c.state.safetensors"), std::ios::binary)
        << state.substr(0, state.size() - 4);
    const auto cut = run(with({"--epochs", "2", "--resume", path("c.safetensors")}));
    EXPECT_EQ(cut.code, 1);
    EXPECT_THAT(cut.err, AllOf(HasSubstr(path("c.state.safetensors")), HasSubstr("data")));

    // One flipped bit in the data is caught by the checksum.
    ASSERT_EQ(run(with({"--epochs", "1", "--checkpoint", path("f.safetensors")})).code, 0);
    std::string flipped = slurp(path("f.state.safetensors"));
    flipped[flipped.size() - 3] = char(flipped[flipped.size() - 3] ^ 0x10);
    std::ofstream(path("f.state.safetensors"), std::ios::binary) << flipped;
    const auto damaged = run(with({"--epochs", "2", "--resume", path("f.safetensors")}));
    EXPECT_EQ(damaged.code, 1);
    EXPECT_THAT(damaged.err, AllOf(HasSubstr(path("f.state.safetensors")), HasSubstr("checksum")));

    const auto missing = run(with({"--epochs", "2", "--resume", path("nothing.safetensors")}));
    EXPECT_EQ(missing.code, 1);
    EXPECT_THAT(missing.err, HasSubstr(path("nothing.state.safetensors")));
}

TEST_F(Resume, APlainModelOrAStateFileIsNotACheckpoint) {
    const std::vector<std::string> base = {"train", "--data",   data(), "--device",
                                           "cpu",   "--hidden", "8"};
    auto with = [&](const std::vector<std::string>& extra) {
        return test::concat(base, extra);
    };
    ASSERT_EQ(run(with({"--epochs", "1", "--save-model", path("m.safetensors")})).code, 0);
    const auto model = run(with({"--epochs", "2", "--resume", path("m.safetensors")}));
    EXPECT_EQ(model.code, 1);
    EXPECT_THAT(model.err,
                AllOf(HasSubstr(path("m.safetensors") + ": is a model, not a checkpoint"),
                      HasSubstr(path("m.state.safetensors")),
                      HasSubstr("train --checkpoint " + path("m.safetensors"))));
    EXPECT_THROW(checkpoint_metadata(path("m.safetensors")), DataError);

    ASSERT_EQ(run(with({"--epochs", "1", "--checkpoint", path("c.safetensors")})).code, 0);
    EXPECT_EQ(checkpoint_metadata(path("c.safetensors")).at("format"), "mlptrain-state");
    const auto state = run(with({"--epochs", "2", "--resume", path("c.state.safetensors")}));
    EXPECT_EQ(state.code, 1);
    EXPECT_THAT(state.err, AllOf(HasSubstr("is the training state of a checkpoint"),
                                 HasSubstr("--resume " + path("c.safetensors"))));

    // A model copied over the state file.
    fs::copy_file(path("m.safetensors"), path("c.state.safetensors"),
                  fs::copy_options::overwrite_existing);
    const auto copied = run(with({"--epochs", "2", "--resume", path("c.safetensors")}));
    EXPECT_EQ(copied.code, 1);
    EXPECT_THAT(copied.err, AllOf(HasSubstr(path("c.state.safetensors") + ": is a model"),
                                  HasSubstr("--checkpoint")));
}

// Through the library, where the loop sees the data itself: a resumed run checks the decoded
// bytes, not the folder's name.
class LibraryResume : public Resume {
protected:
    std::vector<float> train(const Dataset& d, const TrainConfig& c) {
        TrainerOptions options;
        options.batch_size = c.batch_size;
        options.optimizer = c.optimizer;
        const ModelShape shape(d.n_features(), c.hidden, d.n_classes);
        auto trainer = make_cpu_trainer(shape, d, options);
        trainer->set_params(init_params(shape, c.seed));
        std::ostringstream out;
        run_training(*trainer, c, d, out);
        return trainer->params();
    }
    TrainConfig config(int64_t epochs) const {
        TrainConfig c;
        c.hidden = {8};
        c.batch_size = 32;
        c.epochs = epochs;
        c.optimizer.kind = OptimizerKind::adam;
        return c;
    }
    Dataset data_ = test::synthetic_dataset(300, 60, 8, 8, 3);
};

TEST_F(LibraryResume, SameDataUnderAnotherNameResumesBitForBit) {
    data_.name = "mnist";
    const std::vector<float> straight = train(data_, config(2));
    TrainConfig first = config(1);
    first.checkpoint_path = path("c.safetensors");
    train(data_, first);
    EXPECT_THAT(load_model(path("c.safetensors")).metadata.at("data_fingerprint"),
                StartsWith("fnv1a64:"));
    Dataset renamed = data_;
    renamed.name = "mnist-raw";
    TrainConfig second = config(2);
    second.resume_path = path("c.safetensors");
    EXPECT_EQ(train(renamed, second), straight);
}

TEST_F(LibraryResume, AlteredDataUnderTheSameNameIsRefused) {
    data_.name = "mnist";
    TrainConfig first = config(1);
    first.checkpoint_path = path("c.safetensors");
    train(data_, first);
    Dataset altered = data_;
    altered.test.images.pixels[5] ^= 1;  // one bit of one test image
    TrainConfig second = config(2);
    second.resume_path = path("c.safetensors");
    second.lr = 0.05f;
    try {
        train(altered, second);
        FAIL() << "resumed on other data";
    } catch (const Error& e) {
        // Every difference in one message.
        EXPECT_THAT(e.what(), AllOf(HasSubstr("--resume " + path("c.safetensors")),
                                    HasSubstr("the data (--data/--dataset)"),
                                    HasSubstr("--lr is 0.05 here but was 0.1")));
    }
}

TEST_F(Resume, StateAloneResumesWhenTheModelFileIsBehind) {
    // A crash between the two writes leaves the state one epoch ahead of the
    // model file; the state is self-contained, so the run resumes from it.
    const std::vector<std::string> base = {"train", "--data",   data(), "--device",
                                           "cpu",   "--hidden", "8"};
    auto with = [&](const std::vector<std::string>& extra) {
        return test::concat(base, extra);
    };
    ASSERT_EQ(run(with({"--epochs", "1", "--checkpoint", path("old.safetensors")})).code, 0);
    ASSERT_EQ(run(with({"--epochs", "2", "--checkpoint", path("c.safetensors")})).code, 0);
    fs::copy_file(path("old.safetensors"), path("c.safetensors"),
                  fs::copy_options::overwrite_existing);
    const auto r = run(with({"--epochs", "3", "--resume", path("c.safetensors")}));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, AllOf(HasSubstr("holds epoch 1"), HasSubstr("after epoch 2")));
}

TEST_F(Resume, CheckpointEveryWritesOnSchedule) {
    const auto r = run({"train", "--data", data(), "--device", "cpu", "--hidden", "8", "--epochs",
                        "3", "--checkpoint-every", "2", "--checkpoint", path("c.safetensors")});
    ASSERT_EQ(r.code, 0) << r.err;
    // Written after epoch 2 and after the last.
    EXPECT_EQ(load_model(path("c.safetensors")).metadata.at("epoch"), "3");
    const TensorFile state = decode_safetensors(slurp(path("c.state.safetensors")), "state");
    EXPECT_EQ(state.metadata.at("epoch"), "3");
    EXPECT_EQ(state.metadata.at("optimizer_step"), std::to_string(3 * 5));  // 300 / 64 -> 5
    for (const auto& entry : fs::directory_iterator(dir_)) {
        EXPECT_THAT(entry.path().string(), ::testing::Not(HasSubstr(".tmp.")));
    }
}

TEST_F(Resume, NewFlagCombinationsAreUsageErrors) {
    struct Case {
        std::vector<std::string> args;
        std::string expect;
    };
    const std::vector<Case> cases = {
        {{"--nesterov"}, "--nesterov"},
        {{"--optimizer", "adam", "--momentum", "0.9"}, "--momentum"},
        {{"--optimizer", "adamw", "--nesterov"}, "--nesterov"},
        {{"--beta1", "0.8"}, "--beta1"},
        {{"--optimizer", "adam", "--beta2", "1"}, "--beta2"},
        {{"--optimizer", "sgd2"}, "--optimizer"},
        {{"--momentum", "1.5"}, "--momentum"},
        {{"--weight-decay", "-1"}, "--weight-decay"},
        {{"--schedule", "step"}, "--step-size"},
        {{"--gamma", "0.5"}, "--gamma"},
        {{"--schedule", "cosine", "--warmup-pct", "0.2"}, "--warmup-pct"},
        {{"--schedule", "onecycle", "--warmup-pct", "0"}, "--warmup-pct"},
        {{"--schedule-epochs", "5"}, "--schedule-epochs"},
        {{"--schedule", "onecycle", "--epochs", "5", "--schedule-epochs", "4"},
         "--schedule-epochs"},
        {{"--augment-shift", "-1"}, "--augment-shift"},
        {{"--augment-shift", "200"}, "--augment-shift"},
        {{"--checkpoint-every", "-2"}, "--checkpoint-every"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = {"train", "--data", data(), "--device", "cpu"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        const auto r = run(args);
        EXPECT_EQ(r.code, 2) << c.expect << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr(c.expect));
    }
}

}  // namespace
}  // namespace mlp
