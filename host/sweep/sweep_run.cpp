#include "host/sweep/sweep_run.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/number_text.hpp"
#include "host/formats/checkpoint.hpp"
#include "host/formats/safetensors.hpp"
#include "host/sweep/memory.hpp"
#include "host/train/interrupt.hpp"
#include "host/train/report.hpp"
#include "host/train/train_loop.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

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
    uint64_t peak = 0, per_model = 0;
    size_t peak_models = 0;
    for (const auto& group : group_points(points)) {
        uint64_t bytes = 0;
        for (size_t i : group) {
            const TrainConfig& c = points[i].config;
            const ModelShape shape(data.n_features(), c.hidden, data.n_classes);
            bytes += model_bytes(shape, c, size);
            if (device.cuda) bytes += cuda_fixed_bytes(shape, c);
        }
        if (bytes > peak) {
            peak = bytes;
            peak_models = group.size();
            per_model = bytes / group.size();
        }
    }
    const uint64_t data_once = data_bytes(size);
    auto refuse = [&](const std::string& where, uint64_t needed, uint64_t have) {
        throw Error("sweep: " + std::to_string(peak_models) + " models training together need " +
                    format_bytes(needed) + " of " + where + " (" + format_bytes(per_model) +
                    " each, the data set's copy included" +
                    (device.cuda ? std::string(", and each model's cuBLAS workspaces") : "") +
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

struct Slot {
    const SweepPoint* point = nullptr;
    ModelShape shape;
    std::unique_ptr<Trainer> trainer;
    int64_t epochs_done = 0;
    bool stopped = false;
    std::string reason;
    bool has_result = false;
    EpochRecord last;  // the last epoch it finished
    // This epoch's outcome, written by the worker that ran it.
    EpochRecord record;
    bool ran = false;
    std::string note;
    std::exception_ptr failure;
};

std::string checkpoint_file(const std::string& dir, const SweepPoint& p) {
    return (std::filesystem::path(dir) / (p.name + ".safetensors")).string();
}

// One epoch of one model through run_one_epoch(), the function `train` runs its epochs with.
void run_epoch(Slot& s, int64_t e) {
    EpochOutcome o = run_one_epoch(*s.trainer, s.point->config, e);
    s.note = std::move(o.note);
    if (o.stop != EpochStop::none) {
        s.stopped = true;
        s.reason = o.reason + " (" + o.hint + ")";
        return;
    }
    s.record = o.record;
    s.ran = true;
}

// Runs run_epoch over `active` on `n_workers` threads, each model on one thread.
void run_epochs(std::vector<Slot*>& active, int64_t e, int n_workers) {
    const int64_t n = int64_t(active.size());
    auto one = [&](int64_t i) {
        Slot& s = *active[size_t(i)];
        try {
            run_epoch(s, e);
        } catch (...) {
            s.failure = std::current_exception();
        }
    };
#ifdef _OPENMP
    if (n_workers > 1 && n > 1) {
#pragma omp parallel num_threads(std::min <int64_t>(n_workers, n))
        {
            // Each model's own loops run on the thread that owns the model.
            omp_set_num_threads(1);
#pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < n; ++i) one(i);
        }
        return;
    }
#else
    (void)n_workers;
#endif
    for (int64_t i = 0; i < n; ++i) one(i);
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

}  // namespace

SweepSummary run_sweep(const std::vector<SweepPoint>& points, const Dataset& data,
                       const DeviceChoice& device, const SweepOptions& options, std::ostream& out) {
    if (points.empty()) throw Error("sweep: no configurations to run");
    check_sweep_memory(points, data, device, options.memory_limit_bytes);
    for (const std::string* dir : {&options.save_dir, &options.checkpoint_dir}) {
        if (!dir->empty()) std::filesystem::create_directories(*dir);
    }
    const int n_cores = int(std::max(1u, std::thread::hardware_concurrency()));
    const int n_workers = device.cuda ? 1 : options.n_threads > 0 ? options.n_threads : n_cores;
    const int64_t n_epochs = points.front().config.epochs;
    // Every model's files carry the data's fingerprint, so that a resumed sweep checks the data
    // itself, as `train --resume` does.
    const RunData fingerprint = run_data(data);

    SweepSummary summary;
    summary.grid_id = options.grid_id;
    summary.n_configs = options.n_configs;
    if (!options.shard.empty()) summary.shards.push_back(options.shard);
    summary.dataset = data.name;
    summary.epochs = n_epochs;

    // The metrics file of the run being resumed, read before this run's first write replaces
    // it: every group's kept lines come from it.
    const std::string old_metrics =
        options.resume_dir.empty() ? "" : read_metrics_file(options.metrics_path);
    const auto final_lines = lines_of_epoch(old_metrics, n_epochs);
    std::string metrics;
    std::vector<float> best_params;
    ModelShape best_shape;
    std::map<std::string, std::string> best_metadata;
    std::string best_name;  // "" until a model finished
    double best_accuracy = 0.0, best_loss = 0.0;
    int64_t best_index = 0;
    int64_t n_files = 0;
    std::vector<ModelSummary> results(points.size());

    const auto groups = group_points(points);
    for (size_t g = 0; g < groups.size(); ++g) {
        std::vector<Slot> slots(groups[g].size());
        std::map<std::string, int64_t> done;
        for (size_t k = 0; k < slots.size(); ++k) {
            Slot& s = slots[k];
            s.point = &points[groups[g][k]];
            const TrainConfig& c = s.point->config;
            s.shape = ModelShape(data.n_features(), c.hidden, data.n_classes);
            TrainerOptions to = trainer_options(c, device.cuda);
            to.cpu_threads = 1;  // the models of a group share the cores, one thread each
            s.trainer = make_trainer(device, s.shape, data, to);
            s.trainer->set_params(init_params(s.shape, c.seed));
            const std::string ckpt =
                options.resume_dir.empty() ? "" : checkpoint_file(options.resume_dir, *s.point);
            if (!ckpt.empty() && std::filesystem::exists(state_path(ckpt))) {
                std::string note;
                const TrainingState state = load_checkpoint(
                    ckpt, s.shape, optimizer_state_names(c.optimizer),
                    training_metadata(c, fingerprint, 0),
                    &note, c.data.max_input_bytes());
                s.trainer->set_params(state.params);
                s.trainer->set_optimizer_state(state.optimizer);
                s.epochs_done = std::min(state.epochs_done, n_epochs);
                if (!note.empty()) out << note << "\n";
                if (s.epochs_done == n_epochs) {
                    // It trains no further epoch, so its results come from here: the test pass
                    // of the loaded parameters, which is the uninterrupted run's last test
                    // pass, and the train figures of its last metrics line, when kept.
                    const auto line = final_lines.find(s.point->name);
                    const nlohmann::json none;
                    const nlohmann::json& l = line == final_lines.end() ? none : line->second;
                    s.last = EpochRecord{};
                    s.last.epoch = n_epochs;
                    s.last.test = s.trainer->evaluate();
                    s.last.train.loss = figure(l, "loss");
                    s.last.train.accuracy = figure(l, "train_accuracy");
                    s.has_result = true;
                }
            } else if (!ckpt.empty()) {
                out << "model " << s.point->index << " " << s.point->name << ": no checkpoint in "
                    << options.resume_dir << ", starting from epoch 1\n";
            }
            done[s.point->name] = s.epochs_done;
        }
        metrics += kept_metrics(old_metrics, [&](const nlohmann::json& line, int64_t epoch) {
            if (!line.contains("model") || !line["model"].is_string()) return false;
            const auto it = done.find(line["model"].get<std::string>());
            return it != done.end() && epoch <= it->second;
        });
        out << "group " << g + 1 << "/" << groups.size() << ": " << slots.size() << " model"
            << (slots.size() == 1 ? "" : "s") << " of " << slots.front().shape.to_string()
            << ", batch " << slots.front().point->config.batch_size << ", "
            << to_string(slots.front().point->config.optimizer.kind) << ", on "
            << slots.front().trainer->device_name()
            << (device.cuda ? " (one model after another)"
                            : " (" + std::to_string(std::min<size_t>(n_workers, slots.size())) +
                                  " at once, one thread each)")
            << std::endl;

        auto save_checkpoints = [&](bool all) {
            if (options.checkpoint_dir.empty()) return;
            for (Slot& s : slots) {
                if (s.stopped || (!all && !s.ran)) continue;
                const TrainConfig& c = s.point->config;
                save_checkpoint(checkpoint_file(options.checkpoint_dir, *s.point), s.shape,
                                s.trainer->params(), s.trainer->optimizer_state(),
                                optimizer_state_names(c.optimizer),
                                training_metadata(c, fingerprint, s.epochs_done));
            }
        };
        for (int64_t e = 0; e < n_epochs; ++e) {
            std::vector<Slot*> active;
            for (Slot& s : slots) {
                s.ran = false;
                s.note.clear();
                if (!s.stopped && s.epochs_done == e) active.push_back(&s);
            }
            if (active.empty()) continue;
            const auto t0 = std::chrono::steady_clock::now();
            run_epochs(active, e, n_workers);
            const double seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (Slot* s : active) {
                if (s->failure) std::rethrow_exception(s->failure);
            }
            std::vector<double> acc;
            for (Slot* s : active) {
                const SweepPoint& p = *s->point;
                if (!s->note.empty())
                    out << "  model " << p.index << " " << p.name << ": " << s->note << "\n";
                if (s->stopped) {
                    out << "  model " << p.index << " " << p.name << ": stopped: " << s->reason
                        << "\n";
                    continue;
                }
                s->epochs_done = e + 1;
                s->last = s->record;
                s->has_result = true;
                acc.push_back(s->record.test.accuracy);
                if (!options.metrics_path.empty()) {
                    nlohmann::json j = epoch_json(s->record);
                    if (s->record.train.skipped_steps > 0) {
                        j["skipped_batches"] = s->record.train.skipped_steps;
                    }
                    j["model"] = p.name;
                    j["index"] = p.index;
                    j["config"] = config_json(p.config);
                    metrics += j.dump() + "\n";
                }
            }
            int64_t running = 0;
            for (const Slot& s : slots) running += !s.stopped;
            char line[256];
            if (acc.empty()) {
                std::snprintf(line, sizeof line, "sweep epoch %lld/%lld: no model finished it",
                              (long long)(e + 1), (long long)n_epochs);
            } else {
                std::snprintf(line, sizeof line,
                              "sweep epoch %lld/%lld test_acc best %s median %s worst %s "
                              "running %lld/%zu time %.3fs",
                              (long long)(e + 1), (long long)n_epochs,
                              percent_text(*std::max_element(acc.begin(), acc.end())).c_str(),
                              percent_text(median(acc)).c_str(),
                              percent_text(*std::min_element(acc.begin(), acc.end())).c_str(),
                              (long long)running, slots.size(), seconds);
            }
            out << line << std::endl;
            if (!options.metrics_path.empty()) write_file_atomic(options.metrics_path, metrics);
            const bool last = e + 1 == n_epochs;
            const int sig = interrupt_signal();
            if (last || sig != 0 ||
                (options.checkpoint_every > 0 && (e + 1) % options.checkpoint_every == 0)) {
                save_checkpoints(sig != 0);
            }
            // A signal in a group's last epoch ends the run here too; only after the very last
            // epoch of the sweep is there nothing left to interrupt.
            if (sig != 0 && !(last && g + 1 == groups.size())) {
                std::string what = "interrupted by " + signal_name(sig) + " after epoch " +
                                   std::to_string(e + 1) + " of group " + std::to_string(g + 1);
                what += options.checkpoint_dir.empty()
                            ? "; no --checkpoint-dir given, nothing saved"
                            : "; checkpoints in " + options.checkpoint_dir +
                                  ", continue with the same flags and --resume " +
                                  options.checkpoint_dir;
                throw Interrupted(sig, what);
            }
        }

        for (Slot& s : slots) {
            const SweepPoint& p = *s.point;
            ModelSummary& m = results[size_t(&p - points.data())];
            m.index = p.index;
            m.name = p.name;
            m.config_key = p.config_key;
            m.config = config_json(p.config);
            m.train_args = train_args(p.config);
            m.stopped = s.stopped;
            m.reason = s.reason;
            m.epochs_done = s.epochs_done;
            const double nan = std::nan("");
            m.test_accuracy = s.has_result ? s.last.test.accuracy : nan;
            m.test_loss = s.has_result ? s.last.test.loss : nan;
            m.train_accuracy = s.has_result ? s.last.train.accuracy : nan;
            m.train_loss = s.has_result ? s.last.train.loss : nan;
            if (s.stopped || !s.has_result) continue;
            const auto metadata = training_metadata(p.config, fingerprint, p.config.epochs);
            if (!options.save_dir.empty()) {
                m.file = p.name + ".safetensors";
                save_model((std::filesystem::path(options.save_dir) / m.file).string(), s.shape,
                           s.trainer->params(), metadata);
                ++n_files;
            }
            // Ties keep the earlier model, as the leaderboard ranks them.
            const bool better =
                best_name.empty() || m.test_accuracy > best_accuracy ||
                (m.test_accuracy == best_accuracy &&
                 (m.test_loss < best_loss || (m.test_loss == best_loss && m.index < best_index)));
            if (!options.save_best_path.empty() && better) {
                best_name = m.name;
                best_accuracy = m.test_accuracy;
                best_loss = m.test_loss;
                best_index = m.index;
                best_params = s.trainer->params();
                best_shape = s.shape;
                best_metadata = metadata;
            }
        }
    }
    summary.models = std::move(results);
    if (!options.save_dir.empty()) {
        save_summary((std::filesystem::path(options.save_dir) / "summary.json").string(), summary);
        out << "saved " << n_files << " model file" << (n_files == 1 ? "" : "s")
            << " and summary.json to " << options.save_dir << std::endl;
    }
    if (!options.save_best_path.empty()) {
        if (!best_name.empty()) {
            save_model(options.save_best_path, best_shape, best_params, best_metadata);
            out << "saved the best model, " << best_name << ", to " << options.save_best_path
                << std::endl;
        } else {
            out << "no model finished; nothing saved to " << options.save_best_path << std::endl;
        }
    }
    return summary;
}

}  // namespace mlp
