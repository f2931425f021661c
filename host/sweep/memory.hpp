// What a sweep will allocate, estimated before anything is: every model keeps
// its parameters, gradients, optimizer buffers, activations and per-sample
// buffers, and (the engine uploads its own copy) the data set's bytes; the data
// set loaded by the command is counted once more.
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
};

// Bytes one model's trainer holds while it trains (the engine's buffers and one
// epoch plan).
uint64_t model_bytes(const ModelShape& shape, const TrainConfig& config, const DataSize& data);

// Bytes a model's trainer holds on CUDA beyond model_bytes(): each trainer has its own
// backend, with two cuBLAS handles and their workspaces, the ReLU masks of the fused
// kernels and, under --precision bf16, the bf16 copies of the GEMM operands.
uint64_t cuda_fixed_bytes(const ModelShape& shape, const TrainConfig& config);

// Bytes of the loaded data set: images and labels of both splits.
uint64_t data_bytes(const DataSize& data);

// Memory the host can give now: MemAvailable of /proc/meminfo, else the free
// physical pages; 0 when neither can be read.
uint64_t available_host_bytes();

// "1.23 GiB", "45.6 MiB".
std::string format_bytes(uint64_t bytes);

}  // namespace mlp
