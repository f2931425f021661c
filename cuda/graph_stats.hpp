// The size of the CUDA graphs the backend records, for the benchmarks
// (mlptrain-bench reports graph nodes per training step). Plain C++, no CUDA
// headers; defined in cuda/cuda_trainer.cu, so only in a build with CUDA.
#pragma once

#include <cstdint>

namespace mlp {

// Nodes of the graph that a CudaBackend on this thread recorded last (after a
// Trainer's first graph-replayed train_epoch: that epoch's graph); -1 if none.
int64_t last_recorded_graph_nodes();

}  // namespace mlp
