// mlptrain-bench: end-to-end training throughput of the production Trainer
// at several batch sizes. Per configuration it trains the default model from
// the seed's initial weights for --epochs epochs, leaves the first --warmup
// out (graph recording, cold caches, page faults), and reports the median
// epoch time, samples/s, time per step and the test accuracy reached, so a
// fast but broken run shows. The JSON it writes has the schema of the Python
// baselines (benchmarks/baselines/common.py), one object per configuration.
//
// An epoch is timed as the product runs it: uploading the epoch's order, every
// step, and reading back the per-sample loss and predictions. CUDA events
// time it on the GPU, a steady clock on the CPU (Trainer::time_seconds).
// Evaluation on the test set happens after each epoch, outside the timing.
//
// With graph replay it also reports the nodes of the recorded epoch graph per
// training step (CUDA: kernels, cuBLAS's included; CPU: the recorded launches):
// the launches a step costs. --optimizer and --momentum time the other update
// rules (the update is one launch over all parameters either way).
//
// --models N,... adds, per batch size, N models trained together by the
// batched trainer a sweep uses (seeds --seed .. --seed + N - 1, each its own
// epoch order), timed the same way: the epoch time of all N, the throughput in
// model-samples/s (N x samples/s), and the ratio of that epoch time to the one
// model trained alone just before, in the same run.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/rng.hpp"
#include "host/cli/cli.hpp"
#include "host/config/names.hpp"
#include "host/config/train_config.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"
#include "host/model/model.hpp"
#include "host/train/report.hpp"
#include "host/train/trainer.hpp"

#ifndef MLPTRAIN_VERSION
#define MLPTRAIN_VERSION "unknown"
#endif

namespace mlp {

struct BenchConfig {
    DataConfig data;
    std::string device = "auto";
    std::vector<int64_t> batch_sizes = {64, 256, 1024, 8192};
    std::vector<int64_t> hidden = {128, 64};
    int64_t epochs = 4;  // including the warm-up, as the baselines count them
    int64_t warmup = 1;
    int threads = 0;
    bool use_graph = true;
    float lr = 0.1f;
    uint64_t seed = 42;
    OptimizerConfig optimizer;
    std::vector<int64_t> models;  // batches of models to time beside one model; empty: none
    std::string json_path;
};

struct BenchResult {
    int64_t batch_size = 0;
    int threads = 0;  // CPU threads the backend used; 0 on the GPU
    std::string device_name;
    std::vector<double> epoch_seconds;
    double median_s = 0.0;
    double samples_per_s = 0.0;
    double step_us = 0.0;
    double test_accuracy = 0.0;
    double final_loss = 0.0;
    int64_t graph_nodes = -1;            // nodes of the recorded epoch graph; -1: no graph
    double graph_nodes_per_step = -1.0;  // graph_nodes / steps per epoch
    int64_t n_models = 1;                // trained together (the batched trainer when > 1)
    bool batched = false;
    double ratio_to_one = -1.0;  // batched: median epoch / one model's; -1: none
};

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int omp_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static BenchResult run_config(const BenchConfig& config, const DeviceChoice& device,
                              const ModelShape& shape, const Dataset& data, int64_t batch_size,
                              std::ostream& out) {
    TrainerOptions options;
    options.batch_size = batch_size;
    options.use_graph = config.use_graph;
    options.cpu_threads = config.threads;
    options.optimizer = config.optimizer;
    auto trainer = make_trainer(device, shape, data, options);
    trainer->set_params(init_params(shape, config.seed));

    BenchResult r;
    r.batch_size = batch_size;
    r.device_name = trainer->device_name();
    // The CPU trainer sets the process-wide OpenMP thread count;
    // reading it back reports what this configuration really ran with.
    r.threads = device.cuda ? 0 : omp_threads();
    out << "batch " << batch_size << " on " << r.device_name << "\n";

    const int64_t n_train = trainer->n_train();
    for (int64_t e = 0; e < config.epochs; ++e) {
        const std::vector<int32_t> perm = epoch_permutation(n_train, config.seed, e);
        EpochRecord rec;
        rec.epoch = e + 1;
        rec.lr = config.lr;
        rec.seconds =
            trainer->time_seconds([&] { rec.train = trainer->train_epoch(perm, config.lr); });
        rec.samples_per_s = double(n_train) / rec.seconds;
        // The first epoch recorded the graph.
        if (e == 0 && config.use_graph) {
            r.graph_nodes = trainer->train_graph_nodes();
            r.graph_nodes_per_step = double(r.graph_nodes) / double(trainer->steps_per_epoch());
        }
        if (!std::isfinite(rec.train.loss)) {
            throw Error("batch " + std::to_string(batch_size) + ": training loss became " +
                        std::to_string(rec.train.loss) + " in epoch " + std::to_string(e + 1) +
                        " (try a smaller --lr)");
        }
        rec.test = trainer->evaluate();
        out << "  " << format_epoch_line(rec, config.epochs)
            << (e < config.warmup ? " (warm-up)" : "") << std::endl;
        r.epoch_seconds.push_back(rec.seconds);
        r.test_accuracy = rec.test.accuracy;
        r.final_loss = rec.train.loss;
    }
    const std::vector<double> timed(r.epoch_seconds.begin() + config.warmup, r.epoch_seconds.end());
    r.median_s = median(timed);
    r.samples_per_s = double(n_train) / r.median_s;
    r.step_us = r.median_s / double((n_train + batch_size - 1) / batch_size) * 1e6;
    return r;
}

// N models of one shape as a sweep trains them (one trainer of N models), seeds config.seed + k.
static BenchResult run_batched_config(const BenchConfig& config, const DeviceChoice& device,
                                      const ModelShape& shape, const Dataset& data,
                                      int64_t batch_size, int64_t n_models, std::ostream& out) {
    TrainerOptions options;
    options.batch_size = batch_size;
    options.use_graph = config.use_graph;
    options.cpu_threads = config.threads;
    const std::vector<OptimizerConfig> optimizers(size_t(n_models), config.optimizer);
    auto batch = make_trainer(device, shape, data, options, optimizers);
    for (int64_t k = 0; k < n_models; ++k) {
        batch->set_params(k, init_params(shape, config.seed + uint64_t(k)));
    }
    BenchResult r;
    r.batch_size = batch_size;
    r.n_models = n_models;
    r.batched = true;
    r.device_name = batch->device_name();
    r.threads = device.cuda ? 0 : omp_threads();
    out << "batch " << batch_size << ", " << n_models << " models together on " << r.device_name
        << "\n";
    const int64_t n_train = batch->n_train(), n_steps = batch->steps_per_epoch();
    for (int64_t e = 0; e < config.epochs; ++e) {
        for (int64_t k = 0; k < n_models; ++k) {
            EpochPlan plan;
            plan.perm = epoch_permutation(n_train, config.seed + uint64_t(k), e);
            plan.lr.assign(size_t(n_steps), double(config.lr));
            batch->plan_model(k, plan);
        }
        std::vector<EpochResult> trained;
        const double seconds = batch->time_seconds([&] { trained = batch->train_models(); });
        if (e == 0 && config.use_graph) {
            r.graph_nodes = batch->train_graph_nodes();
            r.graph_nodes_per_step = double(r.graph_nodes) / double(n_steps);
        }
        const std::vector<EpochResult> test = batch->evaluate_models();
        double loss = 0.0, accuracy = 0.0, best = 0.0;
        for (int64_t k = 0; k < n_models; ++k) {
            loss += trained[size_t(k)].loss / double(n_models);
            accuracy += test[size_t(k)].accuracy / double(n_models);
            best = std::max(best, test[size_t(k)].accuracy);
        }
        if (!std::isfinite(loss)) {
            throw Error("batch " + std::to_string(batch_size) + ", " + std::to_string(n_models) +
                        " models: mean training loss became " + std::to_string(loss) +
                        " in epoch " + std::to_string(e + 1) + " (try a smaller --lr)");
        }
        char line[256];
        std::snprintf(line, sizeof line,
                      "  epoch %lld/%lld mean loss %.4f test_acc mean %.2f%% best %.2f%% time "
                      "%.3fs model-samples/s %.0f%s",
                      (long long)(e + 1), (long long)config.epochs, loss, 100.0 * accuracy,
                      100.0 * best, seconds, double(n_models * n_train) / seconds,
                      e < config.warmup ? " (warm-up)" : "");
        out << line << std::endl;
        r.epoch_seconds.push_back(seconds);
        r.test_accuracy = accuracy;
        r.final_loss = loss;
    }
    const std::vector<double> timed(r.epoch_seconds.begin() + config.warmup, r.epoch_seconds.end());
    r.median_s = median(timed);
    r.samples_per_s = double(n_train) / r.median_s;
    r.step_us = r.median_s / double(n_steps) * 1e6;
    return r;
}

static nlohmann::json result_json(const BenchConfig& config, const DeviceChoice& device,
                                  const Dataset& data, const ModelShape& shape,
                                  const BenchResult& r) {
    return {{"system", "mlptrain"},
            {"device", device.cuda ? "cuda" : "cpu"},
            {"device_name", r.device_name},
            {"batch_size", r.batch_size},
            {"epochs", config.epochs},
            {"warmup", config.warmup},
            {"epoch_times_s", r.epoch_seconds},
            {"median_epoch_s", r.median_s},
            {"samples_per_s", r.samples_per_s},
            {"step_us", r.step_us},
            {"test_accuracy", r.test_accuracy},
            {"final_loss", r.final_loss},
            {"threads", r.threads},
            {"graph", config.use_graph},
            {"optimizer", to_string(config.optimizer.kind)},
            {"momentum", config.optimizer.momentum},
            {"graph_nodes", r.graph_nodes},
            {"graph_nodes_per_step", r.graph_nodes_per_step},
            {"models", r.n_models},
            {"batched", r.batched},
            {"model_samples_per_s", double(r.n_models) * r.samples_per_s},
            {"epoch_ratio_to_one_model", r.ratio_to_one},
            {"dataset", data.name},
            {"n_train", data.train.size()},
            {"n_test", data.test.size()},
            {"model", shape.to_string()},
            {"lr", config.lr},
            {"seed", config.seed},
            {"timer", device.cuda ? "cuda-events" : "steady-clock"},
            {"versions",
             {{"mlptrain", MLPTRAIN_VERSION}, {"gemm_library", gemm_library().description()}}}};
}

static void print_table(const std::vector<BenchResult>& results, int64_t n_timed,
                        std::ostream& out) {
    char line[256];
    std::snprintf(line, sizeof line, "%7s %7s %8s %15s %13s %10s %10s %9s %8s  %s\n", "batch",
                  "models", "threads", "median_epoch_s", "model-smp/s", "step_us", "nodes/step",
                  "test_acc", "x one", "device");
    out << "\nmlptrain, median of " << n_timed << " timed epoch(s) per configuration:\n" << line;
    for (const BenchResult& r : results) {
        char nodes[32] = "-";
        if (r.graph_nodes >= 0) std::snprintf(nodes, sizeof nodes, "%.2f", r.graph_nodes_per_step);
        char ratio[32] = "-";
        if (r.ratio_to_one >= 0) std::snprintf(ratio, sizeof ratio, "%.2f", r.ratio_to_one);
        std::snprintf(line, sizeof line,
                      "%7lld %7lld %8s %15.4f %13.0f %10.1f %10s %8.2f%% %8s  %s\n",
                      (long long)r.batch_size, (long long)r.n_models,
                      r.threads ? std::to_string(r.threads).c_str() : "-", r.median_s,
                      double(r.n_models) * r.samples_per_s, r.step_us, nodes,
                      100.0 * r.test_accuracy, ratio, r.device_name.c_str());
        out << line;
    }
    out.flush();
}

static int run_bench(const BenchConfig& config, std::ostream& out) {
    const DeviceChoice device = choose_device(config.device);
    std::string where;
    const Dataset data = open_dataset(config.data, &where);
    const ModelShape shape(data.n_features(), config.hidden, data.n_classes);

    out << "data: " << data.name << " from " << where << " (" << data.train.size() << " train, "
        << data.test.size() << " test)\n"
        << "model: " << shape.to_string() << ", lr " << config.lr << ", seed " << config.seed
        << ", optimizer " << to_string(config.optimizer.kind) << ", " << config.epochs
        << " epoch(s) per batch size, the first " << config.warmup << " untimed in the median\n";
    if (!device.fallback_reason.empty()) out << "device: cpu [" << device.fallback_reason << "]\n";

    std::vector<BenchResult> results;
    nlohmann::json all = nlohmann::json::array();
    for (int64_t batch : config.batch_sizes) {
        results.push_back(run_config(config, device, shape, data, batch, out));
        const double one = results.back().median_s;
        all.push_back(result_json(config, device, data, shape, results.back()));
        for (int64_t n_models : config.models) {
            results.push_back(
                run_batched_config(config, device, shape, data, batch, n_models, out));
            results.back().ratio_to_one = results.back().median_s / one;
            all.push_back(result_json(config, device, data, shape, results.back()));
        }
        // Written after every configuration, so an interrupted run keeps what it measured.
        if (!config.json_path.empty()) write_file_atomic(config.json_path, all.dump(2) + "\n");
    }
    print_table(results, config.epochs - config.warmup, out);
    if (!config.json_path.empty()) out << "wrote " << config.json_path << "\n";
    return 0;
}

static int bench_main(int argc, char** argv) {
    CLI::App app{"mlptrain-bench: training throughput of mlptrain at several batch sizes"};
    BenchConfig config;
    std::string batch_text = "64,256,1024,8192";
    std::string hidden_text = "128,64";
    app.add_option("--data", config.data.data_dir, "folder with the four IDX files");
    app.add_option("--dataset", config.data.dataset,
                   "named data set: " + name_list(k_datasets) +
                       "; looked up in data/NAME, /usr/share/datasets/NAME, then fetched")
        ->capture_default_str();
    app.add_flag("!--no-fetch", config.data.fetch, "never run data/fetch");
    app.add_option("--train-samples", config.data.train_samples,
                   "use only the first N training samples (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--test-samples", config.data.test_samples,
                   "use only the first N test samples (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--device", config.device, device_help())->capture_default_str();
    app.add_option("--batch-sizes", batch_text, "comma-separated batch sizes")
        ->capture_default_str();
    app.add_option("--hidden", hidden_text, "hidden layer widths")->capture_default_str();
    app.add_option("--epochs", config.epochs,
                   "epochs per batch size, warm-up included (as the baselines count them)")
        ->check(CLI::Range(int64_t(1), int64_t(1000)))
        ->capture_default_str();
    app.add_option("--warmup", config.warmup, "first epochs left out of the median")
        ->check(CLI::Range(int64_t(0), int64_t(1000)))
        ->capture_default_str();
    app.add_option("--threads", config.threads,
                   "CPU threads (0: the trainer's choice, one per core)")
        ->check(CLI::NonNegativeNumber);
    app.add_flag("!--no-graph", config.use_graph,
                 "launch every step instead of replaying a recorded epoch");
    std::string optimizer_text = "sgd";
    app.add_option("--optimizer", optimizer_text, name_list(k_optimizers))->capture_default_str();
    app.add_option("--momentum", config.optimizer.momentum, "sgd: momentum factor")
        ->capture_default_str();
    app.add_option("--lr", config.lr, "learning rate")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--seed", config.seed, "random seed")->capture_default_str();
    std::string models_text;
    app.add_option("--models", models_text,
                   "also time these counts of models trained together (a sweep's batched "
                   "trainer), e.g. 8,32, beside one model alone");
    app.add_option("--json", config.json_path,
                   "write the results here: a JSON array, one object per batch size");
    try {
        app.parse(argc, argv);
        config.batch_sizes = parse_size_list(batch_text, "--batch-sizes");
        config.hidden = parse_size_list(hidden_text, "--hidden");
        if (!models_text.empty()) config.models = parse_size_list(models_text, "--models");
        config.optimizer.kind = parse_optimizer_kind(optimizer_text);
        config.optimizer.weight_decay = optimizer_info(config.optimizer.kind).default_weight_decay;
        parse_device(config.device);
        check_data_config(config.data);
        check_optimizer_config(config.optimizer);
        if (config.warmup >= config.epochs) {
            throw CLI::ValidationError("--warmup", std::to_string(config.warmup) +
                                                       " leaves no epoch to time out of --epochs " +
                                                       std::to_string(config.epochs));
        }
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::ParseError& e) {
        std::cerr << "mlptrain-bench: " << e.what() << "\n";
        return 2;
    } catch (const UsageError& e) {
        std::cerr << "mlptrain-bench: " << e.what() << "\n";
        return 2;
    }
    try {
        return run_bench(config, std::cout);
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "mlptrain-bench: error: " << e.what() << std::endl;
        return 1;
    }
}

}  // namespace mlp

int main(int argc, char** argv) {
    return mlp::bench_main(argc, argv);
}
