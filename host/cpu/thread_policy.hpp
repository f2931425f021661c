// How many threads the CPU backend runs, in one place for the trainer and the
// kernel benchmarks.
#pragma once

namespace mlp {

// `requested` OpenMP threads, or with 0 one per CPU this process may run on (its
// affinity mask), at every batch size: the
// functors and the parts of large GEMMs (CpuBackend::run_gemm) spread over
// them, and the GEMM library runs each part on one thread. The thread count
// changes no result: the GEMMs are cut by their shape alone and every
// reduction sums in a fixed order. A batch of models (host/train/engine.hpp)
// spreads its models over the same threads, each model's GEMMs on the thread
// that owns it. Process-wide; returns the count.
int apply_cpu_threads(int requested);

}  // namespace mlp
