// The one generic launcher: runs a functor from ops/ over [0, n) with a
// grid-stride loop. Each functor is the same code the CPU backend runs in an
// OpenMP loop, so this file holds no per-operation math.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.hpp"
#include "ops/host_device.hpp"

namespace mlp {

template <class F>
__global__ void for_each_kernel(int64_t n, F f) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

constexpr int k_for_each_block = 256;

// Runs a two-index functor f(row, column) from a flat index.
template <class F>
struct RowColumn {
    F f;
    int64_t n_cols;

    __device__ void operator()(int64_t i) const {
        const int64_t r = i / n_cols;
        f(r, i - r * n_cols);
    }
};

// max_blocks caps the grid (a few waves of the device's SMs); larger ranges
// loop inside the kernel instead of launching more blocks.
template <class F>
void launch_for_each(int64_t n, const F& f, int max_blocks, cudaStream_t stream) {
    if (n <= 0) return;
    const int64_t n_blocks = std::min<int64_t>(ceil_div<int64_t>(n, k_for_each_block), max_blocks);
    for_each_kernel<<<unsigned(n_blocks), k_for_each_block, 0, stream>>>(n, f);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlp
