// How many threads the CPU backend runs for a batch size, in one place for
// the trainer and the kernel benchmarks.
#pragma once

#include <cstdint>

namespace mlp {

// `requested` threads, or with 0 the choice for this batch size: one thread
// below batch 1024, else every core. Sets the OpenMP and OpenBLAS counts,
// which are process-wide, and returns the count.
int apply_cpu_threads(int64_t batch_size, int requested);

}  // namespace mlp
