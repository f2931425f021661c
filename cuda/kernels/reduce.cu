// Multi-block reductions of the fused path: the gradient's squared norm with
// the non-finite guard, the bias gradients as column sums, and the softmax
// cross-entropy with the output layer's bias gradient.
//
// Every sum has a fixed shape (each thread's strided loop, then a warp
// shuffle tree, then a tree over the block's warps), and a kernel that needs
// a grid-wide total lets the last block to finish add the per-block parts in
// index order. Which block is last varies from run to run, but what it adds
// and in what order does not: no atomics touch values, only a counter, so the
// results repeat bit for bit on one device. atomicInc wraps the counter back
// to 0 on the last block, ready for the next launch or graph replay.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/kernels/reduce.hpp"
#include "ops/guard_status.hpp"
#include "ops/host_device.hpp"

namespace mlp {
namespace {

constexpr int k_reduce_threads = 256;
constexpr int k_softmax_threads = 128;
constexpr int k_column_tile = 32;  // columns per block of the bias gradient, one per lane
constexpr unsigned k_full_mask = 0xffffffffu;

// ----------------------------------------------------------------------------
// kernels

// Lane 0 ends with the sum of the warp's 32 values.
__device__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(k_full_mask, v, offset);
    return v;
}

// Thread 0 ends with the sum over a one-dimensional block whose size is a
// multiple of 32. Every thread must call it.
__device__ float block_sum(float v) {
    __shared__ float warp_sums[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) v = warp_sum(lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0f);
    __syncthreads();  // warp_sums is free for the next call
    return v;
}

// Called by every thread after its block's writes: true in the block that
// finishes last, whose threads then see every other block's writes (read
// them with __ldcg, past the non-coherent L1).
__device__ bool is_last_block(uint32_t* counter) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicInc(counter, gridDim.x - 1) == gridDim.x - 1;
    __syncthreads();
    return last;
}

__global__ void __launch_bounds__(k_reduce_threads)
    grad_norm_guard_kernel(float* grad_sq, int32_t* guard, int8_t* status, float* parts,
                           uint32_t* counter, const float* grads, const float* sample_loss,
                           int64_t n, int64_t n_batch, int32_t step, bool stop) {
    const int64_t chunk = ceil_div<int64_t>(n, gridDim.x);
    const int64_t begin = int64_t(blockIdx.x) * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    float acc = 0.0f;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) acc += grads[i] * grads[i];
    const float block_total = block_sum(acc);
    if (threadIdx.x == 0) parts[blockIdx.x] = block_total;
    if (!is_last_block(counter)) return;

    float part = 0.0f;
    for (int j = threadIdx.x; j < int(gridDim.x); j += blockDim.x) part += __ldcg(parts + j);
    const float total = block_sum(part);
    float loss = 0.0f;
    for (int64_t i = threadIdx.x; i < n_batch; i += blockDim.x) loss += sample_loss[i];
    const float loss_sum = block_sum(loss);
    if (threadIdx.x == 0) {
        *grad_sq = total;
        write_step_status(guard, status, loss_sum, total, step, stop);
    }
}

// A 32 x 32 block per 32 columns: lane x reads column x (coalesced along the
// sample-contiguous rows), row y sums samples y, y + 32, ...; the 32 row sums
// of a column are then added by one warp's shuffle tree.
__global__ void __launch_bounds__(k_column_tile* k_column_tile)
    bias_grad_kernel(float* grad_bias, const float* grad_z, int64_t n_out, int64_t n_batch) {
    __shared__ float sums[k_column_tile][k_column_tile + 1];  // +1: the transposed read
    const int64_t j = int64_t(blockIdx.x) * k_column_tile + threadIdx.x;
    float acc = 0.0f;
    if (j < n_out) {
        for (int64_t s = threadIdx.y; s < n_batch; s += k_column_tile) acc += grad_z[s * n_out + j];
    }
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    // Warp y adds the row sums of column y of the tile.
    const float total = warp_sum(sums[threadIdx.x][threadIdx.y]);
    const int64_t column = int64_t(blockIdx.x) * k_column_tile + threadIdx.y;
    if (threadIdx.x == 0 && column < n_out) grad_bias[column] = total;
}

// One thread per sample runs the shared softmax functor; the last block then
// sums the logit gradient's columns. Its threads form (row lane, column)
// pairs: lane r adds rows r, r + n_lanes, ... of its column, and then one
// thread per column adds the lanes in order.
__global__ void __launch_bounds__(k_softmax_threads)
    softmax_xent_bgrad_kernel(float* grad_bias, uint32_t* counter, SoftmaxXentFunctor loss,
                              int64_t n_batch) {
    const int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s < n_batch) loss(s);
    if (!is_last_block(counter)) return;

    __shared__ float lane_sums[k_softmax_threads];
    const int64_t n_classes = loss.n_classes;
    const int n_threads = int(blockDim.x);
    const int n_lanes = n_classes >= n_threads ? 1 : int(n_threads / n_classes);
    const int n_pass_cols = n_threads / n_lanes;
    const int lane = threadIdx.x / n_pass_cols;
    const int col = threadIdx.x % n_pass_cols;
    for (int64_t c0 = 0; c0 < n_classes; c0 += n_pass_cols) {
        const int64_t c = c0 + col;
        float acc = 0.0f;
        if (lane < n_lanes && c < n_classes) {
            for (int64_t r = lane; r < n_batch; r += n_lanes) {
                acc += __ldcg(loss.logits + r * n_classes + c);
            }
        }
        lane_sums[threadIdx.x] = acc;
        __syncthreads();
        if (lane == 0 && c < n_classes) {
            float total = 0.0f;
            for (int r = 0; r < n_lanes; ++r) total += lane_sums[r * n_pass_cols + col];
            grad_bias[c] = total;
        }
        __syncthreads();
    }
}

}  // namespace

// ----------------------------------------------------------------------------
// launchers

void launch_grad_norm_guard(float* d_grad_sq, int32_t* d_guard, int8_t* d_status, float* d_parts,
                            uint32_t* d_counter, const float* d_grads, const float* d_sample_loss,
                            int64_t n_params, int64_t n_batch, int64_t max_blocks, int32_t step,
                            bool stop, cudaStream_t stream) {
    // A block per 256 values up to max_blocks: the grid, and so the sum's
    // order, depends on the sizes only.
    const int64_t n_blocks =
        std::max<int64_t>(1, std::min(max_blocks, ceil_div<int64_t>(n_params, k_reduce_threads)));
    grad_norm_guard_kernel<<<unsigned(n_blocks), k_reduce_threads, 0, stream>>>(
        d_grad_sq, d_guard, d_status, d_parts, d_counter, d_grads, d_sample_loss, n_params, n_batch,
        step, stop);
    CUDA_CHECK(cudaGetLastError());
}

void launch_bias_grad(float* d_grad_bias, const float* d_grad_z, int64_t n_out, int64_t n_batch,
                      cudaStream_t stream) {
    if (n_out <= 0) return;
    const dim3 block(k_column_tile, k_column_tile);
    const int64_t n_blocks = ceil_div<int64_t>(n_out, k_column_tile);
    bias_grad_kernel<<<unsigned(n_blocks), block, 0, stream>>>(d_grad_bias, d_grad_z, n_out,
                                                               n_batch);
    CUDA_CHECK(cudaGetLastError());
}

void launch_softmax_xent_bgrad(float* d_grad_bias, uint32_t* d_counter,
                               const SoftmaxXentFunctor& loss, int64_t n_batch,
                               cudaStream_t stream) {
    if (n_batch <= 0) return;
    const int64_t n_blocks = ceil_div<int64_t>(n_batch, k_softmax_threads);
    softmax_xent_bgrad_kernel<<<unsigned(n_blocks), k_softmax_threads, 0, stream>>>(
        d_grad_bias, d_counter, loss, n_batch);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlp
