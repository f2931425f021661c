#include "host/sweep/sweep_run.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/number_text.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/device/device.hpp"
#include "host/formats/checkpoint.hpp"
#include "host/formats/safetensors.hpp"
#include "host/sweep/memory.hpp"
#include "host/train/interrupt.hpp"
#include "host/train/report.hpp"
#include "host/train/train_loop.hpp"

namespace mlp {

// lr as the shortest decimal that reads back as the float, so that 0.05 is not written as
// 0.05000000074505806.
static double short_float(float v) {
    return std::strtod(shortest_text(v).c_str(), nullptr);
}

nlohmann::json config_json(const TrainConfig& c) {
    const OptimizerConfig& o = c.optimizer;
    nlohmann::json j = {{"hidden", c.hidden},
                        {"lr", short_float(c.lr)},
                        {"seed", c.seed},
                        {"optimizer", to_string(o.kind)},
                        {"weight_decay", o.weight_decay},
                        {"batch_size", c.batch_size},
                        {"epochs", c.epochs},
                        {"schedule", to_string(c.schedule.kind)},
                        {"augment_shift", c.augment_shift}};
    if (o.kind == OptimizerKind::sgd) {
        j["momentum"] = o.momentum;
        j["nesterov"] = o.nesterov;
    } else {
        j["beta1"] = o.beta1;
        j["beta2"] = o.beta2;
    }
    return j;
}

static DataSize size_of(const Dataset& data) {
    return DataSize{data.train.size(), data.test.size(), data.n_features()};
}

void check_sweep_memory(const std::vector<SweepPoint>& points, const Dataset& data,
                        const DeviceChoice& device, uint64_t limit_bytes) {
    const DataSize size = size_of(data);
    uint64_t peak = 0, per_model = 0, fixed = 0;
    size_t peak_models = 0;
    for (const auto& group : group_points(points)) {
        const TrainConfig& first = points[group.front()].config;
        const ModelShape shape(data.n_features(), first.hidden, data.n_classes);
        const TrainConfig* most_state = &first;
        for (size_t i : group) {
            if (optimizer_state_names(points[i].config.optimizer).size() >
                optimizer_state_names(most_state->optimizer).size()) {
                most_state = &points[i].config;
            }
        }
        const uint64_t models = group.size() * model_bytes(shape, *most_state, size);
        const uint64_t once =
            batch_fixed_bytes(shape, first, size, int64_t(group.size()), device.cuda);
        if (models + once > peak) {
            peak = models + once;
            peak_models = group.size();
            per_model = models / group.size();
            fixed = once;
        }
    }
    const uint64_t data_once = data_bytes(size);
    auto refuse = [&](const std::string& where, uint64_t needed, uint64_t have) {
        throw Error("sweep: " + std::to_string(peak_models) + " models training together need " +
                    format_bytes(needed) + " of " + where + " (" + format_bytes(per_model) +
                    " each, and " + format_bytes(fixed) + " for the batch: the data set's copy" +
                    (device.cuda ? std::string(" and the cuBLAS workspaces") : "") +
                    (where == "host memory"
                         ? ", plus " + format_bytes(data_once) + " for the data set loaded once"
                         : std::string()) +
                    "), but " + format_bytes(have) +
                    " is available; sweep fewer models (--shard K/N, shorter lists)");
    };
    if (device.cuda) {
        const uint64_t gpu = limit_bytes ? limit_bytes : device.gpu.total_bytes;
        if (gpu > 0 && peak > gpu) refuse("GPU memory", peak, gpu);
        return;
    }
    // MemAvailable is read after the data set was loaded, so it is counted in
    // the need only against a given limit.
    const uint64_t have = limit_bytes ? limit_bytes : available_host_bytes();
    const uint64_t needed = limit_bytes ? peak + data_once : peak;
    if (have > 0 && needed > have) refuse("host memory", needed, have);
}

namespace {

std::string checkpoint_file(const std::string& dir, const SweepPoint& p) {
    return (std::filesystem::path(dir) / (p.name + ".safetensors")).string();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// Each model's metrics line of epoch `epoch` in metrics `text`: the train figures of a model
// whose checkpoint already holds every epoch.
std::map<std::string, nlohmann::json> lines_of_epoch(const std::string& text, int64_t epoch) {
    std::map<std::string, nlohmann::json> found;
    kept_metrics(text, [&](const nlohmann::json& line, int64_t e) {
        if (e == epoch && line.contains("model") && line["model"].is_string()) {
            found[line["model"].get<std::string>()] = line;
        }
        return false;
    });
    return found;
}

// A train figure of a metrics line, NaN (not measured) when the line lacks it.
double figure(const nlohmann::json& line, const char* key) {
    return line.is_object() && line.contains(key) && line[key].is_number() ? line[key].get<double>()
                                                                           : std::nan("");
}

// The group's line of a round: best, median and worst test accuracy of the models that
// finished it, and how many are still running.
std::string round_line(const EpochRound& round, const std::vector<ModelRun>& runs,
                       int64_t n_epochs) {
    std::vector<double> acc;
    for (const ModelRun* m : round.ran) {
        if (!m->stopped) acc.push_back(m->last.test.accuracy);
    }
    int64_t running = 0;
    for (const ModelRun& m : runs) running += !m.stopped;
    char line[256];
    if (acc.empty()) {
        std::snprintf(line, sizeof line, "sweep epoch %lld/%lld: no model finished it",
                      (long long)(round.epoch + 1), (long long)n_epochs);
    } else {
        std::snprintf(line, sizeof line,
                      "sweep epoch %lld/%lld test_acc best %s median %s worst %s "
                      "running %lld/%zu time %.3fs",
                      (long long)(round.epoch + 1), (long long)n_epochs,
                      percent_text(*std::max_element(acc.begin(), acc.end())).c_str(),
                      percent_text(median(acc)).c_str(),
                      percent_text(*std::min_element(acc.begin(), acc.end())).c_str(),
                      (long long)running, runs.size(), round.seconds);
    }
    return line;
}

// A sweep in progress: what its groups share (the outputs, the best model so far, the lock
// between devices' threads), and the parts of a group's run.
class SweepRun {
public:
    SweepRun(const std::vector<SweepPoint>& points, const Dataset& data,
             const SweepOptions& options, std::ostream& out)
        : points_(points),
          data_(data),
          options_(options),
          out_(out),
          groups_(group_points(points)),
          n_epochs_(points.front().config.epochs),
          // Every model's files carry the data's fingerprint, so that a resumed sweep checks
          // the data itself, as `train --resume` does.
          fingerprint_(run_data(data)),
          // The metrics file of the run being resumed, read before this run's first write
          // replaces it: every group's kept lines come from it.
          old_metrics_(options.resume_dir.empty() ? "" : read_metrics_file(options.metrics_path)),
          final_lines_(lines_of_epoch(old_metrics_, n_epochs_)),
          results_(points.size()) {}

    size_t n_groups() const { return groups_.size(); }

    // Group g on `device`. last_group: the last of its device's groups, after which a signal
    // has nothing left to interrupt there.
    void run_group(size_t g, const DeviceChoice& device, const std::string& tag, bool last_group);

    // summary.json and the best model, after every group.
    SweepSummary finish(const std::string& shard);

    // Set by a device's thread that failed, so that the others stop after their epoch
    // instead of training groups whose results are thrown away.
    std::atomic<bool> abandon{false};

private:
    struct Group {
        std::vector<const SweepPoint*> points;  // model k's point
        ModelShape shape;
        std::unique_ptr<Trainer> trainer;
        std::vector<ModelRun> runs;
    };

    void say(std::ostringstream& log) {
        const std::lock_guard<std::mutex> lock(mutex_);
        out_ << log.str() << std::flush;
        log.str("");
    }
    void start_models(Group& group, std::ostringstream& log);
    void report_round(const Group& group, const EpochRound& round, const std::string& tag);
    void finish_group(const Group& group);

    const std::vector<SweepPoint>& points_;
    const Dataset& data_;
    const SweepOptions& options_;
    std::ostream& out_;
    const std::vector<std::vector<size_t>> groups_;
    const int64_t n_epochs_;
    const RunData fingerprint_;
    const std::string old_metrics_;
    const std::map<std::string, nlohmann::json> final_lines_;

    std::mutex mutex_;  // everything below, and out_, between devices' threads
    std::string metrics_;
    std::vector<ModelSummary> results_;
    int64_t n_files_ = 0;
    std::string best_name_;  // "" until a model finished
    std::vector<float> best_params_;
    ModelShape best_shape_;
    std::map<std::string, std::string> best_metadata_;
    double best_accuracy_ = 0.0, best_loss_ = 0.0;
    int64_t best_index_ = 0;
};

// Every model's initial weights, or its checkpoint when resuming; a model whose checkpoint
// holds every epoch has its results from here: the test pass of the loaded parameters, which
// is the uninterrupted run's last test pass, and the train figures of its last metrics line,
// when kept. Then the kept metrics lines of every model's finished epochs.
void SweepRun::start_models(Group& group, std::ostringstream& log) {
    std::map<std::string, int64_t> done;
    bool evaluate_loaded = false;
    for (ModelRun& m : group.runs) {
        const SweepPoint& p = *group.points[size_t(m.k)];
        group.trainer->set_params(m.k, init_params(group.shape, p.config.seed));
        const std::string ckpt =
            options_.resume_dir.empty() ? "" : checkpoint_file(options_.resume_dir, p);
        if (!ckpt.empty() && std::filesystem::exists(state_path(ckpt))) {
            std::string note;
            const int64_t held =
                load_model_checkpoint(*group.trainer, m.k, ckpt, p.config, fingerprint_, &note);
            m.epochs_done = std::min(held, n_epochs_);
            if (!note.empty()) log << note << "\n";
            evaluate_loaded = evaluate_loaded || m.epochs_done == n_epochs_;
        } else if (!ckpt.empty()) {
            log << "model " << p.index << " " << p.name << ": no checkpoint in "
                << options_.resume_dir << ", starting from epoch 1\n";
        }
        done[p.name] = m.epochs_done;
    }
    say(log);
    if (evaluate_loaded) {
        const std::vector<EpochResult> test = group.trainer->evaluate_models();
        for (ModelRun& m : group.runs) {
            if (m.epochs_done != n_epochs_) continue;
            const auto line = final_lines_.find(group.points[size_t(m.k)]->name);
            const nlohmann::json none;
            const nlohmann::json& l = line == final_lines_.end() ? none : line->second;
            m.last = EpochRecord{};
            m.last.epoch = n_epochs_;
            m.last.test = test[size_t(m.k)];
            m.last.train.loss = figure(l, "loss");
            m.last.train.accuracy = figure(l, "train_accuracy");
            m.has_result = true;
        }
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    metrics_ += kept_metrics(old_metrics_, [&](const nlohmann::json& line, int64_t epoch) {
        if (!line.contains("model") || !line["model"].is_string()) return false;
        const auto it = done.find(line["model"].get<std::string>());
        return it != done.end() && epoch <= it->second;
    });
}

// The lines of a round (each model's note or stop, then the group's line) and every model's
// metrics line, written out at once.
void SweepRun::report_round(const Group& group, const EpochRound& round, const std::string& tag) {
    std::ostringstream log;
    std::string epoch_metrics;
    for (const ModelRun* m : round.ran) {
        const SweepPoint& p = *group.points[size_t(m->k)];
        const EpochOutcome& o = m->outcome;
        if (!o.note.empty())
            log << "  model " << p.index << " " << p.name << ": " << o.note << "\n";
        if (m->stopped) {
            log << "  model " << p.index << " " << p.name << ": stopped: " << o.reason << " ("
                << o.hint << ")\n";
            continue;
        }
        if (!options_.metrics_path.empty()) {
            nlohmann::json j = epoch_json(m->last);
            if (m->last.train.skipped_steps > 0) j["skipped_batches"] = m->last.train.skipped_steps;
            j["model"] = p.name;
            j["index"] = p.index;
            j["config"] = config_json(p.config);
            epoch_metrics += j.dump() + "\n";
        }
    }
    log << tag << round_line(round, group.runs, n_epochs_) << std::endl;
    const std::lock_guard<std::mutex> lock(mutex_);
    out_ << log.str() << std::flush;
    metrics_ += epoch_metrics;
    if (!options_.metrics_path.empty()) write_file_atomic(options_.metrics_path, metrics_);
}

// Each model's summary entry, its model file, and whether it is the best so far.
void SweepRun::finish_group(const Group& group) {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const ModelRun& r : group.runs) {
        const SweepPoint& p = *group.points[size_t(r.k)];
        ModelSummary& m = results_[size_t(&p - points_.data())];
        m.index = p.index;
        m.name = p.name;
        m.config_key = p.config_key;
        m.config = config_json(p.config);
        m.train_args = train_args(p.config);
        m.stopped = r.stopped;
        m.reason = r.stopped ? r.outcome.reason + " (" + r.outcome.hint + ")" : "";
        m.epochs_done = r.epochs_done;
        const double nan = std::nan("");
        m.test_accuracy = r.has_result ? r.last.test.accuracy : nan;
        m.test_loss = r.has_result ? r.last.test.loss : nan;
        m.train_accuracy = r.has_result ? r.last.train.accuracy : nan;
        m.train_loss = r.has_result ? r.last.train.loss : nan;
        if (r.stopped || !r.has_result) continue;
        const auto metadata = training_metadata(p.config, fingerprint_, p.config.epochs);
        if (!options_.save_dir.empty()) {
            m.file = p.name + ".safetensors";
            save_model((std::filesystem::path(options_.save_dir) / m.file).string(), group.shape,
                       group.trainer->params(r.k), metadata);
            ++n_files_;
        }
        // Ties keep the earlier model, as the leaderboard ranks them.
        const bool better =
            best_name_.empty() || m.test_accuracy > best_accuracy_ ||
            (m.test_accuracy == best_accuracy_ &&
             (m.test_loss < best_loss_ || (m.test_loss == best_loss_ && m.index < best_index_)));
        if (!options_.save_best_path.empty() && better) {
            best_name_ = m.name;
            best_accuracy_ = m.test_accuracy;
            best_loss_ = m.test_loss;
            best_index_ = m.index;
            best_params_ = group.trainer->params(r.k);
            best_shape_ = group.shape;
            best_metadata_ = metadata;
        }
    }
}

void SweepRun::run_group(size_t g, const DeviceChoice& device, const std::string& tag,
                         bool last_group) {
    Group group;
    for (size_t i : groups_[g]) group.points.push_back(&points_[i]);
    const TrainConfig& first = group.points.front()->config;
    group.shape = ModelShape(data_.n_features(), first.hidden, data_.n_classes);
    std::vector<OptimizerConfig> optimizers;
    for (const SweepPoint* p : group.points) {
        optimizers.push_back(p->config.optimizer);
        ModelRun m;
        m.config = &p->config;
        m.k = int64_t(group.runs.size());
        group.runs.push_back(m);
    }
    TrainerOptions to = trainer_options(first, device.cuda);
    to.cpu_threads = options_.n_threads;
    group.trainer = make_trainer(device, group.shape, data_, to, optimizers);
    std::ostringstream log;
    start_models(group, log);
    log << tag << "group " << g + 1 << "/" << groups_.size() << ": " << group.runs.size()
        << " model" << (group.runs.size() == 1 ? "" : "s") << " of " << group.shape.to_string()
        << ", batch " << first.batch_size << ", " << to_string(first.optimizer.kind) << ", on "
        << group.trainer->device_name() << " (trained together: one launch per layer for all)"
        << std::endl;
    if (!device.cuda) {
        const std::string warning = take_gemm_library_warning();
        if (!warning.empty()) log << tag << "warning: " << warning << std::endl;
    }
    say(log);

    EpochHooks hooks;
    hooks.abandon = [&] { return abandon.load(); };
    hooks.on_round = [&](const EpochRound& round) { report_round(group, round, tag); };
    hooks.save_checkpoint = [&](const ModelRun& m) {
        const SweepPoint& p = *group.points[size_t(m.k)];
        save_checkpoint(checkpoint_file(options_.checkpoint_dir, p), group.shape,
                        group.trainer->params(m.k), group.trainer->optimizer_state(m.k),
                        optimizer_state_names(p.config.optimizer),
                        training_metadata(p.config, fingerprint_, m.epochs_done));
    };
    hooks.interrupted = [&](int sig, const EpochRound& round) {
        std::string what = "interrupted by " + signal_name(sig) + " after epoch " +
                           std::to_string(round.epoch + 1) + " of group " + std::to_string(g + 1);
        what += options_.checkpoint_dir.empty()
                    ? "; no --checkpoint-dir given, nothing saved"
                    : "; checkpoints in " + options_.checkpoint_dir +
                          ", continue with the same flags and --resume " + options_.checkpoint_dir;
        throw Interrupted(sig, what);
    };
    run_epochs(*group.trainer, group.runs, n_epochs_, !options_.checkpoint_dir.empty(),
               options_.checkpoint_every, last_group, hooks);
    if (abandon.load()) return;
    finish_group(group);
}

SweepSummary SweepRun::finish(const std::string& shard) {
    SweepSummary summary;
    summary.grid_id = options_.grid_id;
    summary.n_configs = options_.n_configs;
    if (!shard.empty()) summary.shards.push_back(shard);
    summary.dataset = data_.name;
    summary.epochs = n_epochs_;
    summary.models = std::move(results_);
    if (!options_.save_dir.empty()) {
        save_summary((std::filesystem::path(options_.save_dir) / "summary.json").string(), summary);
        out_ << "saved " << n_files_ << " model file" << (n_files_ == 1 ? "" : "s")
             << " and summary.json to " << options_.save_dir << std::endl;
    }
    if (!options_.save_best_path.empty()) {
        if (!best_name_.empty()) {
            save_model(options_.save_best_path, best_shape_, best_params_, best_metadata_);
            out_ << "saved the best model, " << best_name_ << ", to " << options_.save_best_path
                 << std::endl;
        } else {
            out_ << "no model finished; nothing saved to " << options_.save_best_path << std::endl;
        }
    }
    return summary;
}

}  // namespace

SweepSummary run_sweep(const std::vector<SweepPoint>& points, const Dataset& data,
                       const std::vector<DeviceChoice>& devices, const SweepOptions& options,
                       std::ostream& out) {
    if (points.empty()) throw Error("sweep: no configurations to run");
    if (devices.empty()) throw Error("sweep: no device to run on");
    for (const DeviceChoice& device : devices) {
        check_sweep_memory(points, data, device, options.memory_limit_bytes);
    }
    for (const std::string* dir : {&options.save_dir, &options.checkpoint_dir}) {
        if (!dir->empty()) std::filesystem::create_directories(*dir);
    }
    SweepRun run(points, data, options, out);
    const size_t n_groups = run.n_groups();
    if (devices.size() == 1) {
        for (size_t g = 0; g < n_groups; ++g) {
            run.run_group(g, devices.front(), "", g + 1 == n_groups);
        }
        return run.finish(options.shard);
    }
    // Group g goes to device g mod n; each device's thread runs its groups in order. A CPU
    // device's GEMM library is loaded first, here: loading OpenBLAS sets an environment
    // variable for a moment, which the other threads might read.
    for (const DeviceChoice& device : devices) {
        if (!device.cuda) (void)gemm_library();
    }
    std::vector<std::exception_ptr> failures(devices.size());
    std::vector<std::thread> threads;
    for (size_t d = 0; d < devices.size(); ++d) {
        threads.emplace_back([&, d] {
            const std::string tag = devices[d].cuda
                                        ? "[cuda:" + std::to_string(devices[d].gpu.index) + "] "
                                        : "[cpu " + std::to_string(d) + "] ";
            try {
                for (size_t g = d; g < n_groups && !run.abandon.load(); g += devices.size()) {
                    run.run_group(g, devices[d], tag, g + devices.size() >= n_groups);
                }
            } catch (...) {
                failures[d] = std::current_exception();
                run.abandon = true;
            }
        });
    }
    for (std::thread& t : threads) t.join();
    for (const std::exception_ptr& f : failures) {
        if (f) std::rethrow_exception(f);
    }
    return run.finish(options.shard);
}

}  // namespace mlp
