// How many threads the CPU backend runs for a batch size, in one place for
// the trainer and the kernel benchmarks.
#pragma once

#include <cstdint>

namespace mlp {

// The batch size from which a trainer runs on every core by default.
constexpr int64_t k_threaded_batch_size = 1024;

// `requested` threads, or with 0 the choice for this batch size: one thread
// below k_threaded_batch_size, else every core. Sets the OpenMP and OpenBLAS counts,
// which are process-wide, and returns the count.
int apply_cpu_threads(int64_t batch_size, int requested);

// For a batch of models (host/train/engine.hpp; TrainerOptions::spread_models): `requested` OpenMP threads, 0 for
// one per core, over which the models are spread, and one OpenBLAS thread, since each
// model's GEMM runs on the thread that owns the model. Returns the OpenMP count.
int apply_batched_cpu_threads(int requested);

}  // namespace mlp
