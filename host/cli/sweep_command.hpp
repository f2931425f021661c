// `mlptrain sweep` (many configurations from comma lists, trained side by
// side) and `mlptrain sweep-merge` (the leaderboard of a sharded sweep).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "host/cli/training_flags.hpp"
#include "host/config/train_config.hpp"
#include "host/sweep/grid.hpp"
#include "host/sweep/sweep_run.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace mlp {

struct SweepCommand {
    TrainConfig base;
    // The swept flags as given; parsed into `axes` when the parse completes.
    std::vector<std::string> hidden;
    std::string lr, seed, momentum, weight_decay, beta1, beta2;
    TrainingFlags flags;  // the flags shared with `train` that are kept as text
    int threads = 0;      // models trained at once on the CPU; 0: one per core
    std::string shard;
    int64_t max_models = 1024;
    int64_t max_memory_mb = 0;
    SweepOptions options;
    SweepAxes axes;
    std::vector<SweepPoint> points;  // this shard's, after the parse
};

// Adds the subcommand; its checks (lists, flags that do not suit the optimizer or schedule,
// --max-models) run when the parse completes and are usage errors naming the flag.
CLI::App* add_sweep_command(CLI::App& app, SweepCommand& command);
int run_sweep_command(const SweepCommand& command, std::ostream& out);

struct SweepMergeCommand {
    std::vector<std::string> inputs;  // folders holding summary.json, or summary files
    std::string out_path;             // --out: the merged summary.json
};

CLI::App* add_sweep_merge_command(CLI::App& app, SweepMergeCommand& command);
int run_sweep_merge(const SweepMergeCommand& command, std::ostream& out);

}  // namespace mlp
