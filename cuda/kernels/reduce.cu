// Multi-block reductions of the fused path: the gradient's squared norm with
// the non-finite guard, the bias gradients as column sums, and the softmax
// cross-entropy with the output layer's bias gradient; each over a batch of
// models, one row of the grid (blockIdx.y) per model.
//
// Every sum has a fixed shape, and a kernel that needs a grid-wide total lets
// the last block to finish add the per-block parts in index order. Which
// block is last varies from run to run, but what it adds and in what order
// does not: no atomics touch values, only a counter, so the results repeat
// bit for bit on one device. atomicInc wraps the counter back to 0 on the last
// block, ready for the next launch or graph replay. A model's blocks, sums and
// counter are the ones it has alone, whatever the batch around it, so the
// batch does not change its bits.
//
// Inside a block the sums are CUB's where CUB has them, with algorithms whose
// order is fixed for a fixed block size (CUB's collectives use no atomics):
//   - grad_norm_guard's norm, its parts' total and the batch's loss: each
//     thread's strided loop, then cub::BlockReduce over the 256 threads with
//     BLOCK_REDUCE_WARP_REDUCTIONS (a shuffle tree in each warp, then thread
//     0 adds the 8 warps' sums in warp order);
//   - the bias gradient: 32 rows' strided loops over the samples, then
//     cub::WarpReduce (a shuffle tree) over a column's 32 row sums;
//   - the softmax's bias gradient: lanes of rows per column, then one thread
//     per column adds its lanes in order (a column-wise sum over part of a
//     block, which CUB does not offer).
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

#include <algorithm>
#include <string>

#include "cuda/check.hpp"
#include "cuda/kernels/reduce.hpp"
#include "host/base/error.hpp"
#include "ops/guard_status.hpp"
#include "ops/host_device.hpp"

namespace mlp {
namespace {

constexpr int k_reduce_threads = 256;
constexpr int k_softmax_threads = 128;
constexpr int k_column_tile = 32;  // columns per block of the bias gradient, one per lane

// The sum over a k_reduce_threads block: the warp-reductions algorithm is the
// lower-latency one for a block that does little else, and its order depends
// on the block size only.
using BlockSum = cub::BlockReduce<float, k_reduce_threads, cub::BLOCK_REDUCE_WARP_REDUCTIONS>;
// The sum over a full warp (a shuffle tree).
using WarpSum = cub::WarpReduce<float>;

// ----------------------------------------------------------------------------
// kernels

// Thread 0 ends with the sum over the block; every thread must call it, and
// `temp` is free for the next call when it returns.
__device__ float block_sum(BlockSum::TempStorage& temp, float v) {
    const float total = BlockSum(temp).Sum(v);
    __syncthreads();
    return total;
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
    grad_norm_guard_kernel(uint32_t* counters, GradNormGuardModels g) {
    __shared__ BlockSum::TempStorage temp;
    const int64_t model = blockIdx.y;
    const SquaredNormPartsFunctor norm = g.norm.row(model);
    const int64_t chunk = ceil_div<int64_t>(norm.n, gridDim.x);
    const int64_t begin = int64_t(blockIdx.x) * chunk;
    const int64_t end = begin + chunk < norm.n ? begin + chunk : norm.n;
    float acc = 0.0f;
    // A non-finite parameter makes the norm non-finite (GradNormGuardModels); a finite one
    // leaves the gradient's sum as it is, bit for bit.
    const float* params = g.params ? g.params + model * g.norm.x_stride : nullptr;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        acc += norm.x[i] * norm.x[i];
        if (params && !is_finite(params[i])) acc = params[i];
    }
    const float block_total = block_sum(temp, acc);
    if (threadIdx.x == 0) norm.parts[blockIdx.x] = block_total;
    if (!is_last_block(counters + model)) return;

    float part = 0.0f;
    for (int j = threadIdx.x; j < int(gridDim.x); j += blockDim.x) part += __ldcg(norm.parts + j);
    const float total = block_sum(temp, part);
    const StepGuardFunctor guard = g.guard.row(model);
    float loss = 0.0f;
    for (int64_t i = threadIdx.x; i < guard.n_batch; i += blockDim.x) loss += guard.sample_loss[i];
    const float loss_sum = block_sum(temp, loss);
    if (threadIdx.x == 0) {
        *g.sum.row(model).out = total;
        write_step_status(guard.guard, guard.status, loss_sum, total, guard.step, guard.stop);
    }
}

// A 32 x 32 block per 32 columns of one model: lane x reads column x
// (coalesced along the sample-contiguous rows), row y sums samples y, y + 32,
// ...; the 32 row sums of a column are then added by one warp (WarpSum).
__global__ void __launch_bounds__(k_column_tile* k_column_tile)
    bias_grad_kernel(float* grad_bias, int64_t grad_bias_stride, const float* grad_z,
                     int64_t grad_z_stride, int64_t n_out, int64_t n_batch) {
    __shared__ float sums[k_column_tile][k_column_tile + 1];  // +1: the transposed read
    __shared__ WarpSum::TempStorage warp_temp[k_column_tile];
    grad_bias += int64_t(blockIdx.y) * grad_bias_stride;
    grad_z += int64_t(blockIdx.y) * grad_z_stride;
    const int64_t j = int64_t(blockIdx.x) * k_column_tile + threadIdx.x;
    float acc = 0.0f;
    if (j < n_out) {
        for (int64_t s = threadIdx.y; s < n_batch; s += k_column_tile) acc += grad_z[s * n_out + j];
    }
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    // Warp y (the threads of row y: x runs fastest) adds the row sums of column y of the
    // tile; lane 0 ends with the total.
    const float total = WarpSum(warp_temp[threadIdx.y]).Sum(sums[threadIdx.x][threadIdx.y]);
    const int64_t column = int64_t(blockIdx.x) * k_column_tile + threadIdx.y;
    if (threadIdx.x == 0 && column < n_out) grad_bias[column] = total;
}

// One thread per sample of one model runs the shared softmax functor; the
// model's last block then sums its logit gradient's columns. Its threads form
// (row lane, column) pairs: lane r adds rows r, r + n_lanes, ... of its
// column, and then one thread per column adds the lanes in order.
__global__ void __launch_bounds__(k_softmax_threads)
    softmax_xent_bgrad_kernel(float* grad_bias, int64_t grad_bias_stride, uint32_t* counters,
                              SoftmaxXentModels losses, int64_t n_batch) {
    const int64_t model = blockIdx.y;
    const SoftmaxXentFunctor loss = losses.row(model);
    const int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s < n_batch) loss(s);
    if (!is_last_block(counters + model)) return;

    grad_bias += model * grad_bias_stride;
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

// The grid's y dimension holds the models.
static unsigned model_rows(int64_t n_models, const char* kernel) {
    constexpr int64_t k_max_grid_y = 65535;
    if (n_models > k_max_grid_y) {
        throw Error(std::string(kernel) + ": a batch of " + std::to_string(n_models) +
                    " models exceeds the grid's " + std::to_string(k_max_grid_y) + " rows");
    }
    return unsigned(n_models);
}

void launch_grad_norm_guard(uint32_t* d_counters, const GradNormGuardModels& g, int64_t n_models,
                            cudaStream_t stream) {
    if (n_models <= 0) return;
    // A block per 256 values up to the parts a model has: the grid, and so
    // the sum's order, depends on the sizes only.
    const int64_t n_blocks = std::max<int64_t>(
        1, std::min(g.norm.f.n_parts, ceil_div<int64_t>(g.norm.f.n, k_reduce_threads)));
    const dim3 grid(unsigned(n_blocks), model_rows(n_models, "grad_norm_guard"));
    grad_norm_guard_kernel<<<grid, k_reduce_threads, 0, stream>>>(d_counters, g);
    CUDA_CHECK(cudaGetLastError());
}

void launch_bias_grad(Strided<float> d_grad_bias, Strided<const float> d_grad_z, int64_t n_out,
                      int64_t n_batch, int64_t n_models, cudaStream_t stream) {
    if (n_out <= 0 || n_models <= 0) return;
    const dim3 block(k_column_tile, k_column_tile);
    const int64_t n_blocks = ceil_div<int64_t>(n_out, k_column_tile);
    const dim3 grid(unsigned(n_blocks), model_rows(n_models, "bias_grad"));
    bias_grad_kernel<<<grid, block, 0, stream>>>(d_grad_bias.data, d_grad_bias.stride,
                                                 d_grad_z.data, d_grad_z.stride, n_out, n_batch);
    CUDA_CHECK(cudaGetLastError());
}

void launch_softmax_xent_bgrad(Strided<float> d_grad_bias, uint32_t* d_counters,
                               const SoftmaxXentModels& loss, int64_t n_batch, int64_t n_models,
                               cudaStream_t stream) {
    if (n_batch <= 0 || n_models <= 0) return;
    const int64_t n_blocks = ceil_div<int64_t>(n_batch, k_softmax_threads);
    const dim3 grid(unsigned(n_blocks), model_rows(n_models, "softmax_xent_bgrad"));
    softmax_xent_bgrad_kernel<<<grid, k_softmax_threads, 0, stream>>>(
        d_grad_bias.data, d_grad_bias.stride, d_counters, loss, n_batch);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlp
