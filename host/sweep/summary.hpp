// The results of a sweep as people and scripts read them: the leaderboard,
// mean and standard deviation over the seeds of each configuration, and
// summary.json, which sweep-merge joins across the shards of one sweep.
//
// summary.json (format "mlptrain-sweep", version 1):
//   {"format", "version", "grid_id", "n_configs" (the whole product), "shards" (["K/N", ...]),
//    "dataset", "epochs",
//    "models": [{"index", "name", "config_key", "config": {...}, "train_args", "status" ("ok"
//                | "stopped"), "reason" (stopped), "epochs_done", "test_accuracy",
//                "test_loss", "train_accuracy", "train_loss", "file" (when saved)}],
//    "leaderboard": [names, best first],
//    "seed_stats": [{"config_key", "n_seeds", "seeds", "test_accuracy_mean",
//                    "test_accuracy_std", "test_loss_mean", "test_loss_std"}]}
// Accuracies are fractions in [0, 1]; standard deviations are over seeds (n - 1).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mlp {

struct ModelSummary {
    int64_t index = 0;
    std::string name;
    std::string config_key;
    nlohmann::json config;  // hidden, lr, seed, optimizer and its values, batch size, ...
    std::string train_args;
    bool stopped = false;
    std::string reason;  // why it stopped
    int64_t epochs_done = 0;
    // Of the last epoch it finished; NaN when it finished none.
    double test_accuracy = 0.0;
    double test_loss = 0.0;
    double train_accuracy = 0.0;
    double train_loss = 0.0;
    std::string file;  // the saved model, "" when none
};

struct SweepSummary {
    std::string grid_id;
    int64_t n_configs = 0;
    std::vector<std::string> shards;  // "K/N" of each shard held; empty: the whole sweep
    std::string dataset;
    int64_t epochs = 0;
    std::vector<ModelSummary> models;  // by index
};

struct SeedStats {
    std::string config_key;
    std::vector<uint64_t> seeds;
    double accuracy_mean = 0.0, accuracy_std = 0.0;
    double loss_mean = 0.0, loss_std = 0.0;
};

// Indices into summary.models, best first: models that finished by test accuracy (higher
// first), then test loss (lower), then index; stopped models after them, by index.
std::vector<size_t> rank_models(const SweepSummary& summary);

// Configurations that finished with two seeds or more, best mean accuracy first.
std::vector<SeedStats> seed_stats(const SweepSummary& summary);

nlohmann::json summary_json(const SweepSummary& summary);
// Strict inverse of summary_json: each missing or mistyped field throws a DataError naming
// `path` and the field.
SweepSummary parse_summary(const nlohmann::json& j, const std::string& path);
SweepSummary load_summary(const std::string& path);
void save_summary(const std::string& path, const SweepSummary& summary);

// The leaderboard table, then the mean +- std table when a configuration ran with
// several seeds.
void print_leaderboard(std::ostream& out, const SweepSummary& summary);

// Joins the summaries of shards of one sweep (paths only for messages). Throws DataError
// when two come from different sweeps (grid_id) or hold the same configuration. `missing`
// receives the indices of the product that none holds.
SweepSummary merge_summaries(const std::vector<SweepSummary>& parts,
                             const std::vector<std::string>& paths, std::vector<int64_t>* missing);

}  // namespace mlp
