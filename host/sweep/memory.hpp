// What a sweep will allocate, estimated before anything is: the models of a
// group train in one batch (host/train/engine.hpp), each model with
// its parameters, gradients, optimizer buffers, activations and per-sample
// buffers in the batch's arrays, and the batch with one copy of the data set
// and, on CUDA, one backend; the data set loaded by the command is counted once
// more on the host.
#pragma once

#include <cstdint>
#include <string>

#include "host/config/train_config.hpp"
#include "host/model/model.hpp"

namespace mlp {

struct DataSize {
    int64_t n_train = 0;
    int64_t n_test = 0;
    int64_t n_features = 0;
    int64_t feature_bytes = 1;  // 1: image bytes; 4: float32 features (Python's arrays)
};

// Bytes one model of a batch holds while it trains (its slices of the batch's buffers), with
// the optimizer state `config` keeps; a batch gives every model the most state any of its
// models keeps (SGD with and without momentum: a momentum buffer for each).
uint64_t model_bytes(const ModelShape& shape, const TrainConfig& config, const DataSize& data);

// Bytes a batch holds once, whatever its model count besides the bf16 copies: the data
// set's copy and the host-side epoch plan; on CUDA (cuda) also the backend's two cuBLAS
// handles and their workspaces and, under --precision bf16, the bf16 copies of the
// n_models models' GEMM operands.
uint64_t batch_fixed_bytes(const ModelShape& shape, const TrainConfig& config, const DataSize& data,
                           int64_t n_models, bool cuda);

// Bytes of the loaded data set: features and labels of both splits.
uint64_t data_bytes(const DataSize& data);

// Memory the host can give now: MemAvailable of /proc/meminfo, else the free
// physical pages; 0 when neither can be read.
uint64_t available_host_bytes();

// "1.23 GiB", "45.6 MiB".
std::string format_bytes(uint64_t bytes);

}  // namespace mlp
