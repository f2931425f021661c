#include "host/train/train_loop.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/read_file.hpp"
#include "host/base/rng.hpp"
#include "host/config/schedule.hpp"
#include "host/formats/checkpoint.hpp"
#include "host/formats/run_metadata.hpp"
#include "host/formats/safetensors.hpp"
#include "host/train/interrupt.hpp"
#include "host/train/report.hpp"

namespace mlp {

EpochPlan make_epoch_plan(const TrainConfig& config, int64_t n_train, int64_t steps_per_epoch,
                          int64_t epoch) {
    EpochPlan plan;
    plan.perm = epoch_permutation(n_train, config.seed, epoch);
    plan.lr.resize(size_t(steps_per_epoch));
    for (int64_t k = 0; k < steps_per_epoch; ++k) {
        plan.lr[size_t(k)] =
            lr_at(config.schedule, config.lr, epoch, k, steps_per_epoch, config.span_epochs());
    }
    if (config.augment_shift > 0) {
        plan.shifts = epoch_shifts(n_train, config.augment_shift, config.seed, epoch);
    }
    return plan;
}

std::string read_metrics_file(const std::string& path) {
    if (path.empty() || !std::filesystem::exists(path)) return "";
    return read_file(path, uint64_t(1) << 30);
}

std::string kept_metrics(
    const std::string& text,
    const std::function<bool(const nlohmann::json& line, int64_t epoch)>& keep) {
    std::istringstream lines(text);
    std::string kept;
    for (std::string line; std::getline(lines, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() &&
            keep(j, j["epoch"].get<int64_t>())) {
            kept += line + "\n";
        }
    }
    return kept;
}

EpochOutcome judge_training_pass(const EpochRecord& record, const TrainConfig& config,
                                 int64_t n_steps) {
    EpochOutcome o;
    o.record = record;
    const EpochRecord& r = o.record;
    const std::string in = "epoch " + std::to_string(r.epoch);
    if (r.train.first_bad_step >= 0 && config.on_nan == NanPolicy::stop) {
        o.stop = EpochStop::bad_step;
        o.reason = "non-finite loss or gradient in " + in + " at step " +
                   std::to_string(r.train.first_bad_step + 1) + "/" + std::to_string(n_steps);
        o.hint = "try a smaller --lr, or --on-nan skip-batch";
        return o;
    }
    if (r.train.skipped_steps == n_steps) {
        o.stop = EpochStop::all_skipped;
        o.reason = "every step of " + in + " had a non-finite loss or gradient";
        o.hint = "try a smaller --lr";
        return o;
    }
    if (r.train.skipped_steps > 0) {
        o.note = in + ": skipped " + std::to_string(r.train.skipped_steps) + " of " +
                 std::to_string(n_steps) +
                 " batches with a non-finite loss or gradient (first: step " +
                 std::to_string(r.train.first_bad_step + 1) + ")";
    }
    if (!std::isfinite(r.train.loss)) {
        o.stop = EpochStop::bad_loss;
        o.reason = "training loss became " + std::to_string(r.train.loss) + " in " + in;
        o.hint = "try a smaller --lr";
    }
    return o;
}

void run_epochs(Trainer& trainer, std::vector<ModelRun>& runs, int64_t n_epochs, bool checkpointing,
                int64_t checkpoint_every, bool last, const EpochHooks& hooks) {
    const int64_t n_train = trainer.n_train();
    const int64_t n_steps = trainer.steps_per_epoch();
    for (;;) {
        EpochRound round;
        for (ModelRun& m : runs) {
            if (!m.stopped && m.epochs_done < n_epochs) round.ran.push_back(&m);
        }
        if (round.ran.empty()) return;
        if (hooks.abandon && hooks.abandon()) return;
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<EpochRecord> records;
        for (ModelRun* m : round.ran) {
            const EpochPlan plan = make_epoch_plan(*m->config, n_train, n_steps, m->epochs_done);
            EpochRecord r;
            r.epoch = m->epochs_done + 1;
            r.lr = float(plan.lr.front());
            r.lr_last = float(plan.lr.back());
            records.push_back(r);
            trainer.plan_model(m->k, plan);
            round.epoch = std::max(round.epoch, m->epochs_done);
        }
        if (hooks.before_round) hooks.before_round();
        const auto t1 = std::chrono::steady_clock::now();
        const std::vector<EpochResult> trained = trainer.train_models(hooks.on_step);
        const double train_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        bool any_passed = false;
        for (size_t i = 0; i < round.ran.size(); ++i) {
            ModelRun& m = *round.ran[i];
            EpochRecord& r = records[i];
            r.train = trained[size_t(m.k)];
            r.seconds = train_seconds;
            r.samples_per_s = double(n_train) / train_seconds;
            m.outcome = judge_training_pass(r, *m.config, n_steps);
            any_passed = any_passed || m.outcome.stop == EpochStop::none;
        }
        if (any_passed) {
            const std::vector<EpochResult> test = trainer.evaluate_models();
            for (ModelRun* m : round.ran) {
                if (m->outcome.stop == EpochStop::none) m->outcome.record.test = test[size_t(m->k)];
            }
        }
        round.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (ModelRun* m : round.ran) {
            if (m->outcome.stop != EpochStop::none) {
                m->stopped = true;
                continue;
            }
            m->epochs_done += 1;
            m->last = m->outcome.record;
            m->has_result = true;
        }
        if (hooks.on_round) hooks.on_round(round);

        const int sig = interrupt_signal();
        if (checkpointing) {
            for (ModelRun& m : runs) {
                if (m.stopped) continue;
                const bool ran =
                    std::find(round.ran.begin(), round.ran.end(), &m) != round.ran.end();
                const bool due =
                    ran && (m.epochs_done == n_epochs ||
                            (checkpoint_every > 0 && m.epochs_done % checkpoint_every == 0));
                if (due || sig != 0) hooks.save_checkpoint(m);
            }
        }
        int64_t remaining = 0;
        for (const ModelRun& m : runs) remaining += !m.stopped && m.epochs_done < n_epochs;
        if (sig != 0 && !(remaining == 0 && last)) hooks.interrupted(sig, round);
    }
}

int64_t load_model_checkpoint(Trainer& trainer, int64_t k, const std::string& path,
                              const TrainConfig& config, const RunData& data, std::string* note) {
    const TrainingState state =
        load_checkpoint(path, trainer.shape(), optimizer_state_names(config.optimizer),
                        training_metadata(config, data, 0), note, config.data.max_input_bytes());
    trainer.set_params(k, state.params);
    trainer.set_optimizer_state(k, state.optimizer);
    return state.epochs_done;
}

RunData run_data(const Dataset& data) {
    RunData r;
    r.name = data.name;
    r.n_train = data.train.size();
    r.n_test = data.test.size();
    r.n_classes = data.n_classes;
    r.image_rows = data.train.images.n_rows;
    r.image_cols = data.train.images.n_cols;
    uint64_t h = k_fnv1a64_offset;
    for (const Split* s : {&data.train, &data.test}) {
        h = fnv1a64(s->images.pixels.data(), s->images.pixels.size(), h);
        h = fnv1a64(s->labels.labels.data(), s->labels.labels.size(), h);
    }
    r.fnv1a64 = h;
    return r;
}

// `train`: one model through run_epochs, with its epoch lines, its metrics file, its
// checkpoint (also of the state an epoch started from, when a signal stops it mid-epoch) and
// the errors that end it.
static std::vector<EpochRecord> train_model(Trainer& trainer, const TrainConfig& config,
                                            const RunData& data, std::ostream& out) {
    std::vector<EpochRecord> records;
    std::string metrics;
    ProgressBar progress(true);
    const int64_t n_train = trainer.n_train();
    std::vector<ModelRun> runs(1);
    ModelRun& run = runs.front();
    run.config = &config;

    if (!config.resume_path.empty()) {
        std::string note;
        run.epochs_done =
            load_model_checkpoint(trainer, 0, config.resume_path, config, data, &note);
        if (run.epochs_done >= config.epochs) {
            throw Error("--resume " + config.resume_path + ": the checkpoint already holds " +
                        std::to_string(run.epochs_done) + " epochs; ask for more with --epochs");
        }
        if (!note.empty()) out << note << "\n";
        out << "resumed from " << config.resume_path << " after epoch " << run.epochs_done
            << std::endl;
        metrics = kept_metrics(
            read_metrics_file(config.metrics_path),
            [&](const nlohmann::json&, int64_t epoch) { return epoch <= run.epochs_done; });
    }
    const bool checkpointing = !config.checkpoint_path.empty();
    int64_t saved_epochs = -1;  // epochs in the checkpoint this run wrote last; -1: none
    auto save = [&](int64_t epochs_done, const std::vector<float>& params,
                    const OptimizerState& state) {
        save_checkpoint(config.checkpoint_path, trainer.shape(), params, state,
                        optimizer_state_names(config.optimizer),
                        training_metadata(config, data, epochs_done));
        saved_epochs = epochs_done;
    };
    // A signal seen mid-epoch leaves the parameters between two epochs; the
    // checkpoint it writes is the state after the last whole epoch, which
    // --resume continues from exactly as an uninterrupted run would.
    auto stop_for_signal = [&](int sig, int64_t epochs_done, const std::string& when) {
        std::string what = "interrupted by " + signal_name(sig) + " " + when;
        if (checkpointing) {
            what += "; checkpoint of epoch " + std::to_string(epochs_done) + " in " +
                    config.checkpoint_path + ", continue with --resume " + config.checkpoint_path;
        } else {
            what += "; no --checkpoint given, nothing saved";
        }
        return Interrupted(sig, what);
    };
    std::vector<float> epoch_start_params;
    OptimizerState epoch_start_state;

    EpochHooks hooks;
    hooks.before_round = [&] {
        if (!checkpointing) return;
        epoch_start_params = trainer.params();
        epoch_start_state = trainer.optimizer_state();
    };
    hooks.on_step = [&](int64_t done, int64_t total) {
        const int64_t e = run.epochs_done;
        // Only the host's flag is read: no device synchronisation.
        if (const int sig = interrupt_signal()) {
            progress.clear();
            if (checkpointing) save(e, epoch_start_params, epoch_start_state);
            throw stop_for_signal(sig, e,
                                  "in epoch " + std::to_string(e + 1) + " after step " +
                                      std::to_string(done) + "/" + std::to_string(total));
        }
        progress.update(done, total);
        if (config.log_interval > 0 && done % config.log_interval == 0) {
            progress.clear();
            const int64_t n_seen = std::min(n_train, done * config.batch_size);
            out << "epoch " << e + 1 << " step " << done << "/" << total << " [" << n_seen << "/"
                << n_train << "] loss " << trainer.running_loss(n_seen) << std::endl;
        }
    };
    hooks.on_round = [&](const EpochRound&) {
        progress.clear();
        const EpochOutcome& o = run.outcome;
        if (o.stop == EpochStop::bad_step) {
            const std::string kept = saved_epochs >= 0
                                         ? "the last good checkpoint, " + config.checkpoint_path +
                                               ", holds epoch " + std::to_string(saved_epochs)
                                     : checkpointing ? "no checkpoint was written by this run"
                                                     : "nothing saved";
            throw Error(o.reason + "; stopped (" + kept + "; " + o.hint + ")");
        }
        if (!o.note.empty()) out << o.note << std::endl;
        if (o.stop != EpochStop::none) throw Error(o.reason + "; stopped (" + o.hint + ")");
        out << format_epoch_line(run.last, config.epochs) << std::endl;
        records.push_back(run.last);
        if (!config.metrics_path.empty()) {
            nlohmann::json j = epoch_json(run.last);
            if (run.last.train.skipped_steps > 0)
                j["skipped_batches"] = run.last.train.skipped_steps;
            metrics += j.dump() + "\n";
            write_file_atomic(config.metrics_path, metrics);
        }
    };
    hooks.save_checkpoint = [&](const ModelRun& m) {
        save(m.epochs_done, trainer.params(), trainer.optimizer_state());
    };
    hooks.interrupted = [&](int sig, const EpochRound& round) {
        throw stop_for_signal(sig, round.epoch + 1,
                              "after epoch " + std::to_string(round.epoch + 1));
    };
    run_epochs(trainer, runs, config.epochs, checkpointing, config.checkpoint_every, true, hooks);

    if (!config.save_model_path.empty()) {
        save_model(config.save_model_path, trainer.shape(), trainer.params(),
                   training_metadata(config, data, config.epochs));
        out << "saved model to " << config.save_model_path << std::endl;
    }
    if (!config.checkpoint_path.empty()) {
        out << "checkpoint: " << config.checkpoint_path << " (+ "
            << state_path(config.checkpoint_path) << ")" << std::endl;
    }
    return records;
}

TrainerOptions trainer_options(const TrainConfig& config, bool cuda) {
    TrainerOptions options;
    options.batch_size = config.batch_size;
    options.eval_batch_size = config.test_batch_size;
    options.cpu_threads = config.threads;
    options.use_graph = config.use_graph && config.log_interval == 0 && cuda;
    options.optimizer = config.optimizer;
    options.on_nan = config.on_nan;
    options.kernels = config.kernels;
    options.precision = config.precision;
    return options;
}

std::vector<EpochRecord> run_training(Trainer& trainer, const TrainConfig& config,
                                      const Dataset& data, std::ostream& out) {
    // The fingerprint reads every byte of the data; only a run that saves or resumes needs it.
    const bool records_data = !config.resume_path.empty() || !config.checkpoint_path.empty() ||
                              !config.save_model_path.empty();
    RunData facts;
    if (records_data) {
        facts = run_data(data);
    } else {
        facts.name = data.name;
        facts.n_train = data.train.size();
        facts.n_classes = data.n_classes;
    }
    return train_model(trainer, config, facts, out);
}

}  // namespace mlp
