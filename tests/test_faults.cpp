// Faults during training (docs/RELIABILITY.md): a non-finite loss or gradient
// (--on-nan), SIGINT/SIGTERM sent to a real mlptrain process, and checkpoint
// writes that fail on a full file system, over a size limit or under a path
// that cannot be a directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli_runner.hpp"
#include "host/base/error.hpp"
#include "host/cli/cli.hpp"
#include "host/formats/checkpoint.hpp"
#include "host/formats/safetensors.hpp"
#include "host/train/trainer.hpp"
#include "ops/step_guard.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace mlp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using test::CliResult;

CliResult run(std::vector<std::string> args) { return test::run_mlptrain(std::move(args)); }

using test::slurp;

class Faults : public ::testing::Test {
public:
    void SetUp() override {
        dir_ = test::make_temp_dir("mlptrain_faults_" + std::string(::testing::UnitTest::GetInstance()
                                                                        ->current_test_info()
                                                                        ->name()));
        test::write_idx_dataset(test::synthetic_dataset(600, 60, 28, 28, 10), data());
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string data() const { return (dir_ / "data").string(); }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    std::vector<std::string> leftover_temp_files() const {
        std::vector<std::string> found;
        for (const auto& e : fs::recursive_directory_iterator(dir_)) {
            const std::string name = e.path().filename().string();
            if (name.find(".tmp.") != std::string::npos) found.push_back(name);
        }
        return found;
    }
    std::vector<std::string> train_args() const {
        return {"train", "--data", data(), "--device", "cpu", "--hidden", "32", "--batch-size",
                "16"};
    }

    fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// Non-finite loss or gradient

TEST(StepGuard, RecordsTheFirstBadStepAndStopsLaterUpdates) {
    int32_t guard[2] = {-1, 0};
    int8_t status[4] = {};
    const float nan = std::nanf("");
    const float losses[4] = {1.0f, nan, 1.0f, 1.0f};
    const float grad_sq[4] = {2.0f, 2.0f, INFINITY, 2.0f};
    for (int32_t step = 0; step < 4; ++step) {
        StepGuardFunctor{guard, status + step, losses + step, 1, grad_sq + step, step, true}(0);
        EXPECT_EQ(guard[1], step == 0 ? 0 : 1) << "step " << step;
    }
    EXPECT_EQ(guard[0], 1);
    EXPECT_EQ(status[0], step_ok);
    EXPECT_EQ(status[1], step_non_finite);
    EXPECT_EQ(status[2], step_non_finite);  // its own gradient is infinite
    EXPECT_EQ(status[3], step_after_stop);
}

TEST(StepGuard, SkipBatchSkipsOnlyTheBadSteps) {
    int32_t guard[2] = {-1, 0};
    int8_t status[3] = {};
    const float losses[3] = {INFINITY, 1.0f, 1.0f};
    const float grad_sq[3] = {1.0f, 1.0f, std::nanf("")};
    for (int32_t step = 0; step < 3; ++step) {
        StepGuardFunctor{guard, status + step, losses + step, 1, grad_sq + step, step, false}(0);
        EXPECT_EQ(guard[1], step == 1 ? 0 : 1) << "step " << step;
    }
    EXPECT_EQ(guard[0], 0);
    EXPECT_EQ(status[1], step_ok);
}

std::vector<int32_t> identity(int32_t n) {
    std::vector<int32_t> perm(size_t(n), 0);
    for (int32_t i = 0; i < n; ++i) perm[size_t(i)] = i;
    return perm;
}

// With --on-nan stop, once a step goes bad no later step changes the parameters: the epoch
// ends with exactly the parameters of a run over only the steps before the bad one.
TEST(NonFinite, StopKeepsParametersOfTheLastGoodStep) {
    Dataset d = test::synthetic_dataset(256, 32);
    TrainerOptions options;
    options.batch_size = 16;
    auto trainer = make_cpu_trainer(ModelShape({20, 8, 3}), d, options);
    trainer->set_params(init_params(trainer->shape(), 1));
    const EpochResult r = trainer->train_epoch(identity(256), 1e9f);
    ASSERT_GE(r.first_bad_step, 1);
    EXPECT_EQ(r.skipped_steps, trainer->steps_per_epoch() - r.first_bad_step);

    const int64_t n_good = r.first_bad_step * 16;
    d.train.images.n_items = n_good;
    d.train.images.pixels.resize(size_t(n_good * 20));
    d.train.labels.n_items = n_good;
    d.train.labels.labels.resize(size_t(n_good));
    auto good = make_cpu_trainer(ModelShape({20, 8, 3}), d, options);
    good->set_params(init_params(good->shape(), 1));
    const EpochResult g = good->train_epoch(identity(int32_t(n_good)), 1e9f);
    EXPECT_EQ(g.first_bad_step, -1);
    EXPECT_EQ(trainer->params(), good->params());
}

TEST(NonFinite, SkipBatchLeavesAGoodRunUntouched) {
    const Dataset d = test::synthetic_dataset(256, 32);
    TrainerOptions options;
    options.batch_size = 16;
    const std::vector<int32_t> perm = identity(256);
    std::vector<std::vector<float>> params;
    for (NanPolicy p : {NanPolicy::stop, NanPolicy::skip_batch}) {
        options.on_nan = p;
        auto trainer = make_cpu_trainer(ModelShape({20, 8, 3}), d, options);
        trainer->set_params(init_params(trainer->shape(), 1));
        const EpochResult r = trainer->train_epoch(perm, 0.1f);
        EXPECT_EQ(r.first_bad_step, -1);
        EXPECT_EQ(r.skipped_steps, 0);
        EXPECT_EQ(r.n_samples, 256);
        params.push_back(trainer->params());
    }
    EXPECT_EQ(params[0], params[1]);
}

// A learning rate that explodes in epoch 2 (step decay with gamma 1e9): the run stops in
// epoch 2 naming the step, exits 1, and the checkpoint of epoch 1 is left as it was.
TEST_F(Faults, HugeLearningRateStopsAndKeepsLastGoodCheckpoint) {
    auto args = train_args();
    const std::string ckpt = path("c.safetensors");
    args.insert(args.end(), {"--epochs", "3", "--schedule", "step", "--step-size", "1", "--gamma",
                             "1e12", "--checkpoint", ckpt, "--checkpoint-every", "1"});
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_THAT(r.err, testing::MatchesRegex(
                           ".*non-finite loss or gradient in epoch 2 at step [0-9]+/38; stopped "
                           "\\(the last good checkpoint, .*c.safetensors, holds epoch 1.*"));
    EXPECT_THAT(r.out, HasSubstr("epoch 1/3"));
    EXPECT_THAT(r.out, testing::Not(HasSubstr("epoch 2/3")));
    EXPECT_EQ(load_model(ckpt).metadata.at("epoch"), "1");
}

TEST_F(Faults, SkipBatchCountsSkippedBatches) {
    auto args = train_args();
    args.insert(args.end(), {"--epochs", "1", "--lr", "1e12", "--on-nan", "skip-batch"});
    const CliResult r = run(args);
    // Once a huge step leaves the parameters infinite every later batch is bad too, so the
    // run skips batches and, when none is left, stops.
    EXPECT_THAT(r.out + r.err, testing::ContainsRegex("skipped [0-9]+ of 38 batches|every step"));
}

TEST_F(Faults, OnNanRejectsUnknownPolicy) {
    auto args = train_args();
    args.insert(args.end(), {"--on-nan", "ignore"});
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr("--on-nan"));
}

// ---------------------------------------------------------------------------------------------
// Signals, sent to the real binary

struct Child {
    pid_t pid = -1;
    int out_fd = -1;
};

Child spawn_mlptrain(const std::vector<std::string>& args) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<std::string> all = {MLPTRAIN_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    Child c;
    EXPECT_EQ(posix_spawn(&c.pid, MLPTRAIN_BINARY, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    c.out_fd = fds[0];
    return c;
}

// Reads the child's stdout until `marker` shows up (true) or it ends (false).
bool read_until(int fd, const std::string& marker, std::string& text) {
    char buf[4096];
    while (text.find(marker) == std::string::npos) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return false;
        text.append(buf, size_t(n));
    }
    return true;
}

void check_signal_checkpoint_resumes(Faults& f, const std::vector<std::string>& base,
                                     const std::string& ckpt, int sig) {
    std::vector<std::string> args = base;
    args.insert(args.end(), {"--epochs", "1000000", "--checkpoint", ckpt});
    Child c = spawn_mlptrain(args);
    std::string text;
    ASSERT_TRUE(read_until(c.out_fd, "epoch 1/", text)) << text;
    ASSERT_EQ(::kill(c.pid, sig), 0);
    read_until(c.out_fd, "\x01never", text);  // drain to EOF
    ::close(c.out_fd);
    int status = 0;
    ASSERT_EQ(::waitpid(c.pid, &status, 0), c.pid);
    ASSERT_TRUE(WIFEXITED(status)) << text;
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << text;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, std::regex("checkpoint of epoch ([0-9]+) in "))) << text;
    const int epochs_done = std::stoi(m[1]);
    ASSERT_GE(epochs_done, 1);
    EXPECT_EQ(load_model(ckpt).metadata.at("epoch"), std::to_string(epochs_done));

    // The resumed run ends exactly where an uninterrupted one does.
    const std::string target = std::to_string(epochs_done + 1);
    std::vector<std::string> resumed = base;
    resumed.insert(resumed.end(), {"--epochs", target, "--resume", ckpt, "--save-model",
                                   f.path("resumed.safetensors")});
    const CliResult r = run(resumed);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("resumed from " + ckpt + " after epoch " + m[1].str()));
    std::vector<std::string> straight = base;
    straight.insert(straight.end(),
                    {"--epochs", target, "--save-model", f.path("straight.safetensors")});
    ASSERT_EQ(run(straight).code, 0);
    EXPECT_EQ(load_model(f.path("resumed.safetensors")).params,
              load_model(f.path("straight.safetensors")).params);
}

TEST_F(Faults, SigtermWritesCheckpointThatResumes) {
    check_signal_checkpoint_resumes(*this, train_args(), path("c.safetensors"), SIGTERM);
}

TEST_F(Faults, SigintWritesCheckpointThatResumes) {
    check_signal_checkpoint_resumes(*this, train_args(), path("c.safetensors"), SIGINT);
}

// ---------------------------------------------------------------------------------------------
// Disk faults: the previous checkpoint (both files) stays byte for byte, no temp file is left

struct Checkpoint {
    std::string model, state;
};

class CheckpointWrites : public Faults {
protected:
    void SetUp() override {
        Faults::SetUp();
        shape_ = ModelShape({20, 64, 3});
    }
    // Writes a checkpoint of `epochs` epochs at `at`.
    void save(const std::string& at, int64_t epochs) {
        TrainConfig config;
        std::vector<float> params(size_t(shape_.n_params()), float(epochs));
        OptimizerState state;
        save_checkpoint(at, shape_, params, state, {},
                        training_metadata(config, "synthetic", 600, 3, epochs));
    }
    Checkpoint read(const std::string& at) { return {slurp(at), slurp(state_path(at))}; }
    ModelShape shape_{std::vector<int64_t>{1, 1}};
};

// RLIMIT_FSIZE binds root too; in a child, so the limit stays there.
TEST_F(CheckpointWrites, OverFileSizeLimitKeepsPrevious) {
    const std::string at = path("c.safetensors");
    save(at, 1);
    const Checkpoint before = read(at);
    EXPECT_EXIT(
        {
            ::signal(SIGXFSZ, SIG_IGN);
            struct rlimit lim;
            ::getrlimit(RLIMIT_FSIZE, &lim);
            lim.rlim_cur = 4096;
            ::setrlimit(RLIMIT_FSIZE, &lim);
            int code = 2;
            try {
                save(at, 2);
            } catch (const Error& e) {
                const std::string m = e.what();
                code = m.find(state_path(at)) != std::string::npos &&
                               m.find("File too large") != std::string::npos
                           ? 0
                           : 3;
                if (code != 0) std::fprintf(stderr, "unexpected message: %s\n", m.c_str());
            }
            std::fflush(stderr);
            ::_exit(code);
        },
        ::testing::ExitedWithCode(0), "");
    const Checkpoint after = read(at);
    EXPECT_EQ(after.model, before.model);
    EXPECT_EQ(after.state, before.state);
    EXPECT_THAT(leftover_temp_files(), testing::ElementsAre());
}

TEST_F(CheckpointWrites, UnderARegularFileFailsNamingThePath) {
    std::ofstream(path("file")) << "x";
    const std::string at = path("file/c.safetensors");
    try {
        save(at, 1);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr(state_path(at)));
        EXPECT_THAT(e.what(), HasSubstr("Not a directory"));
    }
    EXPECT_EQ(slurp(path("file")), "x");
}

// A full file system: a 64 KiB tmpfs in a private mount namespace of a child process. Skips
// where the sandbox forbids mounting (no CAP_SYS_ADMIN).
TEST_F(CheckpointWrites, FullFileSystemKeepsPrevious) {
    const std::string mnt = path("mnt");
    fs::create_directories(mnt);
    const std::string at = mnt + "/c.safetensors";
    EXPECT_EXIT(
        {
            if (::unshare(CLONE_NEWNS) != 0 ||
                ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
                ::_exit(77);
            }
            int code = 0;
            try {
                save(at, 1);  // about 6 KiB each file
                const Checkpoint before = read(at);
                std::ofstream(mnt + "/filler", std::ios::binary)
                    << std::string(64 * 1024 - 16 * 1024, 'f');
                shape_ = ModelShape({20, 512, 3});  // 45 KiB: does not fit
                try {
                    save(at, 2);
                    code = 4;
                } catch (const Error& e) {
                    const std::string m = e.what();
                    if (m.find(state_path(at)) == std::string::npos ||
                        m.find("No space left on device") == std::string::npos) {
                        std::fprintf(stderr, "unexpected message: %s\n", m.c_str());
                        code = 3;
                    }
                }
                const Checkpoint after = read(at);
                if (after.model != before.model || after.state != before.state) code = 5;
                for (const auto& e : fs::directory_iterator(mnt)) {
                    if (e.path().filename().string().find(".tmp.") != std::string::npos) code = 6;
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "%s\n", e.what());
                code = 7;
            }
            std::fflush(stderr);
            ::_exit(code);
        },
        ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace mlp
