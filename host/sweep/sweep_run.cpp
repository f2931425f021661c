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
#include "host/formats/checkpoint.hpp"
#include "host/formats/safetensors.hpp"
#include "host/sweep/memory.hpp"
#include "host/train/batched_trainer.hpp"
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

struct Slot {
    const SweepPoint* point = nullptr;
    int64_t k = 0;  // its index in the group's batch
    int64_t epochs_done = 0;
    bool stopped = false;
    std::string reason;
    bool has_result = false;
    EpochRecord last;  // the last epoch it finished
};

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

}  // namespace

SweepSummary run_sweep(const std::vector<SweepPoint>& points, const Dataset& data,
                       const std::vector<DeviceChoice>& devices, const SweepOptions& options,
                       std::ostream& out) {
    if (points.empty()) throw Error("sweep: no configurations to run");
    if (devices.empty()) throw Error("sweep: no device to run on");
    if (devices.front().cuda && points.front().config.kernels == KernelPath::fused) {
        throw UsageError("--kernels",
                         "fused: a sweep on CUDA trains each group's models batched, with the "
                         "generic kernels (the fused path is for one model: use train)");
    }
    for (const DeviceChoice& device : devices) {
        check_sweep_memory(points, data, device, options.memory_limit_bytes);
    }
    for (const std::string* dir : {&options.save_dir, &options.checkpoint_dir}) {
        if (!dir->empty()) std::filesystem::create_directories(*dir);
    }
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
    std::mutex mutex;  // out, metrics, the best model and n_files, between devices' threads
    auto say = [&](std::ostringstream& log) {
        const std::lock_guard<std::mutex> lock(mutex);
        out << log.str() << std::flush;
        log.str("");
    };
    // Group g on `device`; with several devices, groups run at once, one thread per device.
    // Set by a device's thread that failed, so that the others stop after their epoch instead of
    // training groups whose results are thrown away.
    std::atomic<bool> abandon{false};
    // last_group: the last of its device's groups, after which a signal has nothing left to
    // interrupt there.
    auto run_group = [&](size_t g, const DeviceChoice& device, const std::string& tag,
                         bool last_group) {
        std::ostringstream log;
        std::vector<Slot> slots(groups[g].size());
        const TrainConfig& first = points[groups[g].front()].config;
        const ModelShape shape(data.n_features(), first.hidden, data.n_classes);
        std::vector<OptimizerConfig> optimizers;
        for (size_t k = 0; k < slots.size(); ++k) {
            slots[k].point = &points[groups[g][k]];
            slots[k].k = int64_t(k);
            optimizers.push_back(slots[k].point->config.optimizer);
        }
        // The batch runs the generic kernels; on the CPU the fused path is the same functors
        // in the same order (host/cpu/cpu_fused_ops.hpp), so its models are the same too.
        TrainerOptions to = trainer_options(first, device.cuda);
        to.kernels = KernelPath::generic;
        to.cpu_threads = options.n_threads;
        const auto batch = make_batched_trainer(device, shape, data, to, optimizers);
        std::map<std::string, int64_t> done;
        bool evaluate_loaded = false;  // a resumed model holds every epoch already
        for (Slot& s : slots) {
            const TrainConfig& c = s.point->config;
            batch->set_params(s.k, init_params(shape, c.seed));
            const std::string ckpt =
                options.resume_dir.empty() ? "" : checkpoint_file(options.resume_dir, *s.point);
            if (!ckpt.empty() && std::filesystem::exists(state_path(ckpt))) {
                std::string note;
                const TrainingState state = load_checkpoint(
                    ckpt, shape, optimizer_state_names(c.optimizer),
                    training_metadata(c, fingerprint, 0), &note, c.data.max_input_bytes());
                batch->set_params(s.k, state.params);
                batch->set_optimizer_state(s.k, state.optimizer);
                s.epochs_done = std::min(state.epochs_done, n_epochs);
                if (!note.empty()) log << note << "\n";
                evaluate_loaded = evaluate_loaded || s.epochs_done == n_epochs;
            } else if (!ckpt.empty()) {
                log << "model " << s.point->index << " " << s.point->name << ": no checkpoint in "
                    << options.resume_dir << ", starting from epoch 1\n";
            }
            done[s.point->name] = s.epochs_done;
        }
        say(log);
        if (evaluate_loaded) {
            // A model that trains no further epoch has its results from here: the test pass
            // of the loaded parameters, which is the uninterrupted run's last test pass, and
            // the train figures of its last metrics line, when kept.
            const std::vector<EpochResult> test = batch->evaluate();
            for (Slot& s : slots) {
                if (s.epochs_done != n_epochs) continue;
                const auto line = final_lines.find(s.point->name);
                const nlohmann::json none;
                const nlohmann::json& l = line == final_lines.end() ? none : line->second;
                s.last = EpochRecord{};
                s.last.epoch = n_epochs;
                s.last.test = test[size_t(s.k)];
                s.last.train.loss = figure(l, "loss");
                s.last.train.accuracy = figure(l, "train_accuracy");
                s.has_result = true;
            }
        }
        {
            const std::lock_guard<std::mutex> lock(mutex);
            metrics += kept_metrics(old_metrics, [&](const nlohmann::json& line, int64_t epoch) {
                if (!line.contains("model") || !line["model"].is_string()) return false;
                const auto it = done.find(line["model"].get<std::string>());
                return it != done.end() && epoch <= it->second;
            });
        }
        log << tag << "group " << g + 1 << "/" << groups.size() << ": " << slots.size() << " model"
            << (slots.size() == 1 ? "" : "s") << " of " << shape.to_string() << ", batch "
            << first.batch_size << ", " << to_string(first.optimizer.kind) << ", on "
            << batch->device_name() << " (trained together: one launch per layer for all)"
            << std::endl;
        say(log);

        auto save_checkpoint_of = [&](const Slot& s) {
            const TrainConfig& c = s.point->config;
            save_checkpoint(checkpoint_file(options.checkpoint_dir, *s.point), shape,
                            batch->params(s.k), batch->optimizer_state(s.k),
                            optimizer_state_names(c.optimizer),
                            training_metadata(c, fingerprint, s.epochs_done));
        };
        const int64_t n_steps = batch->steps_per_epoch();
        for (;;) {
            // Every model still training runs its next epoch; after a partial resume they
            // may be at different epochs, each with its own plan.
            std::vector<Slot*> active;
            for (Slot& s : slots) {
                if (!s.stopped && s.epochs_done < n_epochs) active.push_back(&s);
            }
            if (active.empty()) break;
            if (abandon.load()) return;
            const auto t0 = std::chrono::steady_clock::now();
            std::vector<EpochRecord> records(slots.size());
            int64_t e = 0;  // the round's epoch, 0-based: the furthest model's
            for (Slot* s : active) {
                const EpochPlan plan =
                    make_epoch_plan(s->point->config, batch->n_train(), n_steps, s->epochs_done);
                EpochRecord& r = records[size_t(s->k)];
                r.epoch = s->epochs_done + 1;
                r.lr = float(plan.lr.front());
                r.lr_last = float(plan.lr.back());
                batch->plan_model(s->k, plan);
                e = std::max(e, s->epochs_done);
            }
            const auto t1 = std::chrono::steady_clock::now();
            const std::vector<EpochResult> trained = batch->train_epoch();
            const double train_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
            std::vector<EpochOutcome> outcomes(slots.size());
            bool any_tested = false;
            for (Slot* s : active) {
                EpochRecord& r = records[size_t(s->k)];
                r.train = trained[size_t(s->k)];
                r.seconds = train_seconds;
                r.samples_per_s = double(batch->n_train()) / train_seconds;
                outcomes[size_t(s->k)] = judge_training_pass(r, s->point->config, n_steps);
                any_tested = any_tested || outcomes[size_t(s->k)].stop == EpochStop::none;
            }
            if (any_tested) {
                const std::vector<EpochResult> test = batch->evaluate();
                for (Slot* s : active) {
                    EpochOutcome& o = outcomes[size_t(s->k)];
                    if (o.stop == EpochStop::none) o.record.test = test[size_t(s->k)];
                }
            }
            const double seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::vector<double> acc;
            std::string epoch_metrics;
            for (Slot* s : active) {
                const SweepPoint& p = *s->point;
                const EpochOutcome& o = outcomes[size_t(s->k)];
                if (!o.note.empty())
                    log << "  model " << p.index << " " << p.name << ": " << o.note << "\n";
                if (o.stop != EpochStop::none) {
                    s->stopped = true;
                    s->reason = o.reason + " (" + o.hint + ")";
                    log << "  model " << p.index << " " << p.name << ": stopped: " << s->reason
                        << "\n";
                    continue;
                }
                s->epochs_done += 1;
                s->last = o.record;
                s->has_result = true;
                acc.push_back(o.record.test.accuracy);
                if (!options.metrics_path.empty()) {
                    nlohmann::json j = epoch_json(o.record);
                    if (o.record.train.skipped_steps > 0) {
                        j["skipped_batches"] = o.record.train.skipped_steps;
                    }
                    j["model"] = p.name;
                    j["index"] = p.index;
                    j["config"] = config_json(p.config);
                    epoch_metrics += j.dump() + "\n";
                }
            }
            int64_t running = 0, remaining = 0;
            for (const Slot& s : slots) {
                running += !s.stopped;
                remaining += !s.stopped && s.epochs_done < n_epochs;
            }
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
            log << tag << line << std::endl;
            {
                const std::lock_guard<std::mutex> lock(mutex);
                out << log.str() << std::flush;
                metrics += epoch_metrics;
                if (!options.metrics_path.empty()) write_file_atomic(options.metrics_path, metrics);
            }
            log.str("");
            const int sig = interrupt_signal();
            if (!options.checkpoint_dir.empty()) {
                // A model that ran this round after its last epoch or every
                // --checkpoint-every epochs; on a signal, every model still going.
                std::vector<bool> ran(slots.size(), false);
                for (const Slot* s : active) ran[size_t(s->k)] = true;
                for (const Slot& s : slots) {
                    if (s.stopped) continue;
                    const bool due =
                        ran[size_t(s.k)] && (s.epochs_done == n_epochs ||
                                             (options.checkpoint_every > 0 &&
                                              s.epochs_done % options.checkpoint_every == 0));
                    if (due || sig != 0) save_checkpoint_of(s);
                }
            }
            // A signal in a group's last epoch ends the run here too; only after the very last
            // epoch of the sweep is there nothing left to interrupt.
            if (sig != 0 && !(remaining == 0 && last_group)) {
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

        const std::lock_guard<std::mutex> lock(mutex);
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
                save_model((std::filesystem::path(options.save_dir) / m.file).string(), shape,
                           batch->params(s.k), metadata);
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
                best_params = batch->params(s.k);
                best_shape = shape;
                best_metadata = metadata;
            }
        }
    };
    if (devices.size() == 1) {
        for (size_t g = 0; g < groups.size(); ++g) {
            run_group(g, devices.front(), "", g + 1 == groups.size());
        }
    } else {
        // Group g goes to device g mod n; each device's thread runs its groups in order.
        std::vector<std::exception_ptr> failures(devices.size());
        std::vector<std::thread> threads;
        for (size_t d = 0; d < devices.size(); ++d) {
            threads.emplace_back([&, d] {
                const std::string tag = devices[d].cuda
                                            ? "[cuda:" + std::to_string(devices[d].gpu.index) + "] "
                                            : "[cpu " + std::to_string(d) + "] ";
                try {
                    for (size_t g = d; g < groups.size() && !abandon.load(); g += devices.size()) {
                        run_group(g, devices[d], tag, g + devices.size() >= groups.size());
                    }
                } catch (...) {
                    failures[d] = std::current_exception();
                    abandon = true;
                }
            });
        }
        for (std::thread& t : threads) t.join();
        for (const std::exception_ptr& f : failures) {
            if (f) std::rethrow_exception(f);
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
