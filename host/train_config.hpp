// Everything a training run is configured by; the CLI fills it, tests and
// benchmarks build it directly. Defaults are the notebook's run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlp {

struct DataConfig {
    std::string data_dir;           // --data: folder with the four IDX files
    std::string dataset = "mnist";  // --dataset: looked up when data_dir is empty
    bool fetch = true;              // run data/fetch when the named set is not found
    int64_t train_samples = 0;      // use only the first N training samples; 0 = all
    int64_t test_samples = 0;       // use only the first N test samples; 0 = all
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
};

}  // namespace mlp
