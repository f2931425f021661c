// Everything a training run is configured by; the CLI fills it, tests and
// benchmarks build it directly. Defaults are the notebook's run.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "host/config/kernel_options.hpp"
#include "host/config/nan_policy.hpp"
#include "host/config/optimizer.hpp"
#include "host/config/schedule.hpp"

namespace mlp {

// The named data sets --dataset looks up (host/data/dataset.hpp, data/fetch).
struct DatasetInfo {
    const char* name;
    const char* help;
};

constexpr DatasetInfo k_datasets[] = {
    {"mnist", "handwritten digits"},
    {"fashion-mnist", "Zalando's pictures of clothes"},
};

// The largest class count: labels are bytes.
constexpr int64_t k_max_classes = 256;
// The largest batch or layer width: more than a run can hold in memory anyway.
constexpr int64_t k_max_batch_size = int64_t(1) << 20;

struct DataConfig {
    std::string data_dir;           // --data: folder with the four IDX files
    std::string dataset = "mnist";  // --dataset: looked up when data_dir is empty
    bool fetch = true;              // run data/fetch when the named set is not found
    int64_t train_samples = 0;      // use only the first N training samples; 0 = all
    int64_t test_samples = 0;       // use only the first N test samples; 0 = all
    // --max-input-mb: a data file (decoded) or model file above this is refused before it is
    // loaded, so a hostile header or gzip bomb cannot exhaust memory.
    int64_t max_input_mb = 4096;
    // --classes: the class count, for data with classes no sample uses; 0 = the largest
    // training label + 1, every class below it used (eval: the model's outputs).
    int64_t classes = 0;
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
    std::string device = "auto";    // parse_device() (host/device/device.hpp) reads it
    bool use_graph = true;          // CUDA: replay a recorded epoch
    KernelPath kernels = KernelPath::generic;  // --kernels generic|fused
    Precision precision = Precision::fp32;     // --precision fp32|tf32|bf16 (CUDA: tf32, bf16)
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

// The flags a command line gave, by their long name ("--momentum"): some checks and
// defaults depend on whether a value was chosen or left at its default.
using GivenFlags = std::set<std::string>;

// Fills in what depends on other settings, for flags not given: the optimizer's default
// weight decay (adamw: 0.01) and the checkpoint path of --checkpoint-every (--save-model,
// else checkpoint.safetensors).
void resolve_train_defaults(TrainConfig& config, const GivenFlags& given);

// Throws UsageError naming the flag for an unknown data set name or a value out of range.
void check_data_config(const DataConfig& config);

// check_data_config, check_optimizer_config, and every other field: ranges (a real value
// must be finite), flags given for another optimizer or schedule, combinations a schedule
// cannot follow. Throws UsageError naming the flag. With `given` empty (a library caller)
// only the values are checked.
void check_train_config(const TrainConfig& config, const GivenFlags& given = {});

}  // namespace mlp
