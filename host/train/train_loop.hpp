// The epoch loop around a Trainer: order of samples, learning rates and
// augmentation, evaluation, the epoch line, metrics file, progress,
// checkpoints, resuming, and the final model.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/config/train_config.hpp"
#include "host/data/dataset.hpp"
#include "host/formats/run_metadata.hpp"
#include "host/train/trainer.hpp"

namespace mlp {

struct EpochRecord {
    int64_t epoch = 0;     // 1-based
    float lr = 0.0f;       // learning rate of the epoch's first step
    float lr_last = 0.0f;  // and of its last (they differ under onecycle)
    EpochResult train;
    EpochResult test;
    double seconds = 0.0;  // training pass only
    double samples_per_s = 0.0;
};

// Epoch `epoch` (0-based) of a run: the order from the seed, every step's
// learning rate from the schedule, and the shifts when augmenting. A pure
// function of its arguments, which is what lets a resumed run continue bit
// for bit without saved random state.
EpochPlan make_epoch_plan(const TrainConfig& config, int64_t n_train, int64_t steps_per_epoch,
                          int64_t epoch);

// How one epoch ended. Anything but `none` means the model must stop: its parameters are no
// longer worth training on.
enum class EpochStop {
    none,
    bad_step,     // a non-finite loss or gradient under --on-nan stop
    all_skipped,  // --on-nan skip-batch skipped every step
    bad_loss,     // the epoch's training loss is not finite
};

struct EpochOutcome {
    EpochRecord record;  // the test figures only when stop is none
    EpochStop stop = EpochStop::none;
    std::string reason;  // why it stopped, e.g. "non-finite loss or gradient in epoch 3 at ..."
    std::string hint;    // what to try instead, e.g. "try a smaller --lr"
    std::string note;    // the batches --on-nan skip-batch skipped, "" when none
};

// The non-finite checks of a finished training pass (record.train), in a fixed order: a bad
// step under --on-nan stop, every step skipped, a non-finite epoch loss; and the note of the
// batches --on-nan skip-batch skipped. The test figures are the caller's to add when stop is
// none. run_epochs judges every model's epoch with it.
EpochOutcome judge_training_pass(const EpochRecord& record, const TrainConfig& config,
                                 int64_t n_steps);

// One model of the batch that run_epochs trains: its flags, its index in the trainer, and
// where it stands.
struct ModelRun {
    const TrainConfig* config = nullptr;
    int64_t k = 0;
    int64_t epochs_done = 0;
    bool stopped = false;  // its loss or gradient stopped being finite (outcome says how)
    bool has_result = false;
    EpochRecord last;      // its last finished epoch, when has_result
    EpochOutcome outcome;  // of the round it last ran in
};

// A round of run_epochs: every model still training ran its next epoch.
struct EpochRound {
    int64_t epoch = 0;  // 0-based, the furthest model's
    std::vector<ModelRun*> ran;
    double seconds = 0.0;  // plans, the training pass and the test pass
};

// What `train` and `sweep` do around the shared loop; any may be empty.
struct EpochHooks {
    std::function<bool()> abandon;       // before a round: true ends the loop at once
    std::function<void()> before_round;  // after the plans, before the training pass
    StepCallback on_step;                // between steps, where the backend runs them one by one
    // After a round, before its checkpoints: the lines and the metrics file. May throw to end
    // the run (train stops on a model that stopped).
    std::function<void(const EpochRound&)> on_round;
    std::function<void(const ModelRun&)> save_checkpoint;
    // A signal arrived and the run must end after this round's checkpoints: throws Interrupted.
    std::function<void(int sig, const EpochRound&)> interrupted;
};

// The epoch loop that `train` (one model) and `sweep` (each group's batch) share. Each round,
// every model that has not stopped and has fewer than n_epochs epochs runs its next one: the
// plan of make_epoch_plan from its own config and epoch (after a partial resume, models may
// be at different epochs), one timed training pass of all of them, the non-finite checks of
// judge_training_pass per model, and one test pass when any passed. A model that fails them
// stops alone; the others go on. After a round: on_round, then (checkpointing) a checkpoint
// of every model that finished its last epoch or a multiple of checkpoint_every, or of every
// model still going when a signal arrived; then a signal ends the run through `interrupted`,
// unless nothing is left to train and `last` says nothing follows.
void run_epochs(Trainer& trainer, std::vector<ModelRun>& runs, int64_t n_epochs, bool checkpointing,
                int64_t checkpoint_every, bool last, const EpochHooks& hooks);

// Model k of the trainer continues from the checkpoint at `path`: its parameters and optimizer
// state, after load_checkpoint has checked the file against `config` and `data`. Returns the
// epochs the checkpoint holds; *note gets what the check noted ("" when nothing).
int64_t load_model_checkpoint(Trainer& trainer, int64_t k, const std::string& path,
                              const TrainConfig& config, const RunData& data, std::string* note);

// The text of the metrics file at `path`; "" when path is "" or there is no file.
std::string read_metrics_file(const std::string& path);

// The lines of metrics `text` that `keep(line, epoch)` keeps, each line a JSON object with an
// integer "epoch" (others are dropped). A resumed run keeps those of the epochs its checkpoint
// holds, so its file reads like an uninterrupted run's.
std::string kept_metrics(
    const std::string& text,
    const std::function<bool(const nlohmann::json& line, int64_t epoch)>& keep);

// What the saved metadata records of `data`: its name, counts, image size and
// FNV-1a 64 over the decoded images and labels of both splits, so that a
// resumed run checks the data itself rather than the folder it came from.
RunData run_data(const Dataset& data);

// The trainer's options for a run of `config` on the CPU or (cuda) the GPU. Graph replay is
// for CUDA only, and not with per-step progress lines, which need the host between steps; on
// the CPU stepping one by one lets a signal take effect after the current step.
TrainerOptions trainer_options(const TrainConfig& config, bool cuda);

// Runs config.epochs epochs of the trainer built on `data`, printing one line
// per epoch to `out`, starting after the checkpoint's epochs when
// config.resume_path is set (its parameters and optimizer state replace the
// trainer's). Writes the metrics file after every epoch, checkpoints as
// configured, and the model at the end, each with run_data(data) in its
// metadata. Throws Error when the loss stops being finite, or when a
// checkpoint to resume does not match the config or the data (one error
// listing every difference).
std::vector<EpochRecord> run_training(Trainer& trainer, const TrainConfig& config,
                                      const Dataset& data, std::ostream& out);

}  // namespace mlp
