// Runs the configurations of a sweep. The models of a group (host/sweep/grid.hpp: the same
// layer sizes, batch size and optimizer kind) train together in one Trainer of all of them
// (host/train/engine.hpp), through the epoch driver `train` uses (run_epochs): each layer's
// GEMM of every model in one batched call,
// every functor in one launch over all models, each model with its own initial weights,
// epoch order, shifts and update scalars, the data set on the device once. On the CPU the
// models are spread over the cores and model k ends bit for bit where `mlptrain train` with
// its flags would; on CUDA the same to float tolerance. Groups run one after another (with
// --devices, each GPU's groups one after another, the GPUs at once). A model
// whose loss stops being finite stops alone (or skips its bad batches, --on-nan) and the
// others go on.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "host/data/dataset.hpp"
#include "host/device/device.hpp"
#include "host/sweep/grid.hpp"
#include "host/sweep/summary.hpp"

namespace mlp {

struct SweepOptions {
    int n_threads = 0;                // CPU: threads the models are spread over; 0 = one per core
    std::string metrics_path;         // JSON lines: every model's epochs, with "model"
    std::string save_dir;             // NAME.safetensors per model, and summary.json
    std::string save_best_path;       // the best model only
    std::string checkpoint_dir;       // NAME.safetensors (+ state) per model, resumable
    int64_t checkpoint_every = 0;     // epochs between checkpoints; 0 = after the last only
    std::string resume_dir;           // continue from the checkpoints in this folder
    uint64_t memory_limit_bytes = 0;  // 0: what the host (or the GPU) has
    // For the summary: the whole product, its fingerprint and this run's shard.
    int64_t n_configs = 0;
    std::string grid_id;
    std::string shard;  // "K/N", "" for the whole sweep
};

// Throws Error, naming the sizes, when the largest group's models would not fit in
// `limit_bytes` (0: the host's available memory; on CUDA the GPU's memory instead, where each
// model's buffers and its copy of the data live; host memory is not checked there). Called by
// run_sweep before any trainer is made.
void check_sweep_memory(const std::vector<SweepPoint>& points, const Dataset& data,
                        const DeviceChoice& device, uint64_t limit_bytes);

// Trains every point, printing one line per epoch of each group (best, median and worst test
// accuracy, models still running) and a line for each model that stops. Writes the outputs of
// `options` as it goes (every file through a temporary name), and returns the summary that
// summary.json holds. Throws Interrupted after a signal, once the checkpoints are written.
// With several devices (--devices), group g runs on device g mod n, the devices' groups at
// once, one host thread per device; their lines carry the device ("[cuda:1] ...").
SweepSummary run_sweep(const std::vector<SweepPoint>& points, const Dataset& data,
                       const std::vector<DeviceChoice>& devices, const SweepOptions& options,
                       std::ostream& out);

// The configuration of a point as summary.json and the metrics file record it.
nlohmann::json config_json(const TrainConfig& config);

}  // namespace mlp
