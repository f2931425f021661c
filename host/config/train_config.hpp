// Everything a training run is configured by; the CLI fills it, tests and
// benchmarks build it directly. Defaults are the notebook's run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/config/nan_policy.hpp"
#include "host/config/optimizer.hpp"
#include "host/config/schedule.hpp"

namespace mlp {

struct DataConfig {
    std::string data_dir;           // --data: folder with the four IDX files
    std::string dataset = "mnist";  // --dataset: looked up when data_dir is empty
    bool fetch = true;              // run data/fetch when the named set is not found
    int64_t train_samples = 0;      // use only the first N training samples; 0 = all
    int64_t test_samples = 0;       // use only the first N test samples; 0 = all
    // --max-input-mb: a data file (decoded) or model file above this is refused before it is
    // loaded, so a hostile header or gzip bomb cannot exhaust memory.
    int64_t max_input_mb = 4096;
    uint64_t max_input_bytes() const { return uint64_t(max_input_mb) << 20; }
};

struct TrainConfig {
    DataConfig data;
    std::vector<int64_t> hidden = {128, 64};
    int64_t batch_size = 64;
    int64_t test_batch_size = 1000;
    int64_t epochs = 10;
    float lr = 0.1f;
    uint64_t seed = 42;
    int64_t log_interval = 0;       // steps between progress lines; 0 = none
    std::string device = "auto";    // auto | cpu | cuda
    bool use_graph = true;          // CUDA: replay a recorded epoch
    int threads = 0;                // CPU threads; 0 = library default
    std::string metrics_path;       // JSON lines, one object per epoch
    std::string save_model_path;    // safetensors written at the end
    OptimizerConfig optimizer;      // --optimizer, --momentum, --nesterov, --weight-decay, --beta*
    ScheduleConfig schedule;        // --schedule, --gamma, --step-size, --warmup-pct
    int64_t schedule_epochs = 0;    // cosine, onecycle: epochs the schedule spans; 0 = epochs
    int augment_shift = 0;          // random shifts of up to N pixels per axis; 0 = off
    std::string checkpoint_path;    // model + optimizer state, resumable; empty = none
    int64_t checkpoint_every = 0;   // epochs between checkpoints; 0 = after the last only
    std::string resume_path;        // continue from this checkpoint
    NanPolicy on_nan = NanPolicy::stop;  // --on-nan stop|skip-batch

    // The total the schedule is laid out over.
    int64_t span_epochs() const { return schedule_epochs > 0 ? schedule_epochs : epochs; }
};

}  // namespace mlp
