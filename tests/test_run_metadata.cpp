// The run metadata table (host/formats/run_metadata.hpp): what a resumed run compares (every
// difference at once, the data by fingerprint), the resume defaults taken from a checkpoint, and
// the input normalisation eval requires.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "host/base/error.hpp"
#include "host/formats/run_metadata.hpp"

namespace mlp {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

RunData fingerprinted(const std::string& name, uint64_t hash) {
    RunData d;
    d.name = name;
    d.n_train = 100;
    d.n_test = 20;
    d.n_classes = 3;
    d.image_rows = 4;
    d.image_cols = 5;
    d.fnv1a64 = hash;
    return d;
}

std::string resume_error(const std::map<std::string, std::string>& saved,
                         const std::map<std::string, std::string>& now) {
    try {
        check_resume_matches(saved, now, "c.safetensors");
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "the resume check passed";
    return "";
}

TEST(RunMetadata, Fnv1a64MatchesTheReferenceValues) {
    // The published test vectors of FNV-1a 64.
    EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
    EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
    EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
    EXPECT_EQ(fnv1a64("bar", 3, fnv1a64("foo", 3)), fnv1a64("foobar", 6));
}

TEST(RunMetadata, FingerprintIsWrittenWithTheImageSize) {
    const auto m = training_metadata(TrainConfig{}, fingerprinted("mnist", 0xabc), 2);
    EXPECT_EQ(m.at("data_fingerprint"), "fnv1a64:0000000000000abc");
    EXPECT_EQ(m.at("train_samples"), "100");
    EXPECT_EQ(m.at("test_samples"), "20");
    EXPECT_EQ(m.at("image_rows"), "4");
    EXPECT_EQ(m.at("image_cols"), "5");
    EXPECT_EQ(m.at("n_classes"), "3");
    EXPECT_EQ(m.at("epoch"), "2");
    // Without a fingerprint only the name and counts are known.
    const auto legacy = training_metadata(TrainConfig{}, "mnist", 100, 3, 2);
    EXPECT_EQ(legacy.count("data_fingerprint"), 0u);
    EXPECT_EQ(legacy.count("image_rows"), 0u);
    EXPECT_EQ(legacy.at("dataset"), "mnist");
}

TEST(RunMetadata, ResumeComparesTheDataByFingerprintNotByName) {
    const TrainConfig c;
    const auto saved = training_metadata(c, fingerprinted("mnist", 1), 2);
    // The same bytes in a folder of another name.
    EXPECT_NO_THROW(
        check_resume_matches(saved, training_metadata(c, fingerprinted("mnist-raw", 1), 0), "c"));
    // Other bytes in a folder of the same name.
    EXPECT_THAT(resume_error(saved, training_metadata(c, fingerprinted("mnist", 2), 0)),
                AllOf(StartsWith("--resume c.safetensors: "), HasSubstr("the data"),
                      HasSubstr("fnv1a64:0000000000000002 here but was fnv1a64:0000000000000001"),
                      Not(HasSubstr("name"))));
    RunData more_test = fingerprinted("mnist", 1);
    more_test.n_test = 21;
    EXPECT_THAT(resume_error(saved, training_metadata(c, more_test, 0)),
                HasSubstr("--test-samples is 21 here but was 20"));
}

TEST(RunMetadata, ResumeReportsEveryMismatchAtOnce) {
    TrainConfig c;
    const auto saved = training_metadata(c, fingerprinted("mnist", 1), 2);
    c.lr = 0.05f;
    c.seed = 7;
    c.optimizer.kind = OptimizerKind::adam;
    RunData other = fingerprinted("mnist", 9);
    other.n_train = 99;
    const std::string e = resume_error(saved, training_metadata(c, other, 0));
    EXPECT_THAT(e, AllOf(HasSubstr("--lr is 0.05 here but was 0.1 in the checkpoint"),
                         HasSubstr("--seed is 7 here but was 42"),
                         HasSubstr("--optimizer is adam here but was sgd"),
                         HasSubstr("--momentum is (not set) here but was 0"),
                         HasSubstr("--train-samples is 99 here but was 100"),
                         HasSubstr("the data (--data/--dataset)")));
}

TEST(RunMetadata, ResumeRefusesAnotherInputScale) {
    const TrainConfig c;
    auto saved = training_metadata(c, fingerprinted("mnist", 1), 2);
    saved["input_scale"] = "1";
    EXPECT_THAT(
        resume_error(saved, training_metadata(c, fingerprinted("mnist", 1), 0)),
        HasSubstr("input_scale (mlptrain trains on pixel * 1/255) is 1/255 here but was 1"));
}

// The flags a CLI run of `train --resume c.safetensors` gives, as typed.
std::set<std::string> flags(std::initializer_list<const char*> names) {
    return std::set<std::string>(names.begin(), names.end());
}

std::string resume_config_error(const std::map<std::string, std::string>& saved,
                                const TrainConfig& parsed, const std::set<std::string>& given) {
    try {
        resume_config(saved, parsed, given, "c.safetensors");
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "resume_config accepted the flags";
    return "";
}

TrainConfig adamw_onecycle() {
    TrainConfig c;
    c.hidden = {16, 8};
    c.batch_size = 32;
    c.epochs = 3;
    c.lr = 0.003f;
    c.seed = 9;
    c.augment_shift = 2;
    c.optimizer.kind = OptimizerKind::adamw;
    c.optimizer.weight_decay = 0.01;
    c.optimizer.beta2 = 0.99;
    c.schedule.kind = ScheduleKind::onecycle;
    c.schedule.warmup_pct = 0.25;
    c.schedule_epochs = 5;
    c.data.train_samples = 100;
    c.data.test_samples = 20;
    return c;
}

TEST(ResumeConfig, TakesEveryTrainingFlagFromTheCheckpoint) {
    const TrainConfig run = adamw_onecycle();
    const auto saved = training_metadata(run, fingerprinted("mnist", 1), 2);
    TrainConfig parsed;  // the CLI's defaults: nothing given but the outputs
    parsed.device = "cpu";
    parsed.save_model_path = "out.safetensors";
    const TrainConfig c =
        resume_config(saved, parsed, flags({"--device", "--save-model"}), "c.safetensors");
    // The config writes exactly the checkpoint's metadata back.
    EXPECT_EQ(training_metadata(c, fingerprinted("mnist", 1), 2), saved);
    EXPECT_EQ(c.hidden, run.hidden);
    EXPECT_EQ(c.epochs, 3);
    EXPECT_EQ(c.optimizer.kind, OptimizerKind::adamw);
    EXPECT_EQ(c.optimizer.beta2, 0.99);
    EXPECT_EQ(c.schedule.kind, ScheduleKind::onecycle);
    EXPECT_EQ(c.schedule_epochs, 5);
    EXPECT_EQ(c.data.train_samples, 100);
    EXPECT_EQ(c.data.test_samples, 20);
    EXPECT_EQ(c.device, "cpu");
    EXPECT_EQ(c.save_model_path, "out.safetensors");
}

// Every precision is written by name and read back by a resumed run; a
// checkpoint of one precision does not resume in another.
TEST(RunMetadata, PrecisionIsRecordedAndReadBack) {
    for (Precision p : {Precision::fp32, Precision::tf32, Precision::bf16}) {
        TrainConfig run;
        run.precision = p;
        const auto saved = training_metadata(run, fingerprinted("mnist", 1), 2);
        EXPECT_EQ(saved.at("precision"), to_string(p));
        TrainConfig parsed;
        const TrainConfig c = resume_config(saved, parsed, {}, "c.safetensors");
        EXPECT_EQ(c.precision, p);
    }
    TrainConfig bf16;
    bf16.precision = Precision::bf16;
    const auto saved = training_metadata(bf16, fingerprinted("mnist", 1), 2);
    EXPECT_EQ(saved.at("precision"), "bf16");
    TrainConfig fp32 = bf16;
    fp32.precision = Precision::fp32;
    EXPECT_THAT(resume_error(saved, training_metadata(fp32, fingerprinted("mnist", 1), 2)),
                HasSubstr("precision"));
}

TEST(ResumeConfig, GivenFlagsMustMatchExceptThoseThatMayChange) {
    const TrainConfig run = adamw_onecycle();
    const auto saved = training_metadata(run, fingerprinted("mnist", 1), 2);
    TrainConfig parsed = run;
    parsed.epochs = 5;  // may change: within the schedule's 5 epochs
    const TrainConfig c = resume_config(
        saved, parsed, flags({"--lr", "--optimizer", "--beta2", "--epochs", "--hidden"}), "c");
    EXPECT_EQ(c.epochs, 5);

    TrainConfig other = run;
    other.lr = 0.01f;
    other.seed = 1;
    other.schedule.warmup_pct = 0.3;
    const std::string e =
        resume_config_error(saved, other, flags({"--lr", "--seed", "--warmup-pct", "--beta1"}));
    EXPECT_THAT(e, AllOf(StartsWith("--resume c.safetensors: "),
                         HasSubstr("--lr is 0.01 here but was 0.003 in the checkpoint"),
                         HasSubstr("--seed is 1 here but was 9"),
                         HasSubstr("--warmup-pct is 0.3 here but was 0.25"),
                         HasSubstr("leave a flag out to take the checkpoint's value"),
                         Not(HasSubstr("--beta1"))));  // given with the checkpoint's value
}

TEST(ResumeConfig, RefusesFlagsThatDoNotApplyToTheCheckpointsRun) {
    const auto saved = training_metadata(adamw_onecycle(), fingerprinted("mnist", 1), 2);
    TrainConfig parsed;
    parsed.optimizer.momentum = 0.9;
    parsed.schedule.gamma = 0.5;
    const std::string e = resume_config_error(saved, parsed, flags({"--momentum", "--gamma"}));
    EXPECT_THAT(e, AllOf(HasSubstr("--momentum does not apply to --optimizer adamw with "
                                   "--schedule onecycle"),
                         HasSubstr("--gamma does not apply")));
}

TEST(ResumeConfig, RefusesEpochsPastAOneCycleSchedule) {
    const auto saved = training_metadata(adamw_onecycle(), fingerprinted("mnist", 1), 2);
    TrainConfig parsed;
    parsed.epochs = 6;
    EXPECT_THAT(resume_config_error(saved, parsed, flags({"--epochs"})),
                HasSubstr("--epochs 6 runs past the one-cycle schedule, which spans 5 epochs"));
}

TEST(ResumeConfig, ACosineScheduleKeepsItsSpanWhenEpochsGrow) {
    TrainConfig run;
    run.schedule.kind = ScheduleKind::cosine;
    run.epochs = 3;  // the span defaults to the epochs
    const auto saved = training_metadata(run, fingerprinted("mnist", 1), 3);
    TrainConfig parsed;
    parsed.epochs = 10;
    const TrainConfig c = resume_config(saved, parsed, flags({"--epochs"}), "c");
    EXPECT_EQ(c.span_epochs(), 3);
    EXPECT_NO_THROW(
        check_resume_matches(saved, training_metadata(c, fingerprinted("m", 1), 0), "c"));
}

TEST(ResumeConfig, AMetadataValueThatDoesNotReadBackNamesTheFile) {
    auto saved = training_metadata(TrainConfig{}, fingerprinted("mnist", 1), 2);
    saved["lr"] = "fast";
    try {
        resume_config(saved, TrainConfig{}, {}, "c.safetensors");
        FAIL() << "accepted lr \"fast\"";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), AllOf(StartsWith("c.safetensors: "),
                                    HasSubstr("lr is \"fast\", expected a finite number")));
    }
    saved = training_metadata(TrainConfig{}, fingerprinted("mnist", 1), 2);
    saved["optimizer"] = "lbfgs";
    EXPECT_THROW(resume_config(saved, TrainConfig{}, {}, "c"), DataError);
}

TEST(InputNormalisation, EvalAcceptsOnlyWhatTrainingApplies) {
    EXPECT_NO_THROW(check_input_normalisation({}, "m"));
    EXPECT_NO_THROW(
        check_input_normalisation({{"input_scale", "1/255"}, {"input_offset", "0"}}, "m"));
    EXPECT_NO_THROW(check_input_normalisation({{"input_scale", "0.00392156862745098"}}, "m"));
    const std::vector<std::pair<std::string, std::string>> refused = {
        {"input_scale", "2/255"}, {"input_scale", "1"}, {"input_offset", "-1"}};
    for (const auto& [key, value] : refused) {
        try {
            check_input_normalisation({{key, value}}, "m.safetensors");
            FAIL() << key << " " << value << " accepted";
        } catch (const DataError& e) {
            EXPECT_THAT(e.what(), AllOf(StartsWith("m.safetensors: "),
                                        HasSubstr("metadata " + key + " is " + value),
                                        HasSubstr("predict honours")));
        }
    }
    EXPECT_THROW(check_input_normalisation({{"input_scale", "x"}}, "m"), DataError);
}

}  // namespace
}  // namespace mlp
