#include "host/sweep/memory.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "host/config/kernel_options.hpp"
#include "host/config/optimizer.hpp"
#include "host/train/engine_host.hpp"
#include "ops/optimizer_step.hpp"

namespace mlp {

uint64_t data_bytes(const DataSize& d) {
    return uint64_t(d.n_train + d.n_test) * uint64_t(d.n_features * d.feature_bytes + 1);
}

uint64_t model_bytes(const ModelShape& shape, const TrainConfig& config, const DataSize& d) {
    const uint64_t stride = uint64_t(model_stride(shape));  // n_params, padded
    const uint64_t n_buffers = 2 + optimizer_state_names(config.optimizer).size();
    const uint64_t n_steps = uint64_t((d.n_train + config.batch_size - 1) / config.batch_size);
    const uint64_t capacity = uint64_t(std::max(config.batch_size, config.test_batch_size));
    uint64_t widths = 0, mask_bits = 0;
    for (int64_t w : shape.sizes()) widths += uint64_t(w);
    for (int l = 1; l < shape.n_layers(); ++l) {
        widths += uint64_t(shape.n_in(l));  // the input gradient of layer l
        mask_bits += uint64_t((shape.n_in(l) + 127) / 128 * 128);
    }
    const uint64_t n_max = uint64_t(std::max(d.n_train, d.n_test));
    uint64_t bytes = 4 * stride * n_buffers;                            // params, grads, state
    bytes += 4 * capacity * widths;                                     // activations, gradients
    if (config.kernels == KernelPath::fused) bytes += capacity * mask_bits / 8;  // CUDA's masks
    bytes += 4 * uint64_t(d.n_train) + 2 * uint64_t(d.n_train);          // order, shifts
    bytes += 4 * uint64_t(d.n_train);                                    // the order's host copy
    bytes += 5 * n_max;                                                  // loss, prediction
    bytes += n_steps * (sizeof(OptimizerStep) + 4 + 1);                  // step tables
    bytes += 2 * 4 + 1 + 28;                                             // guard, stop, scalars
    bytes += 256 * 4;                                                    // gradient-norm parts
    return bytes;
}

// cuda/cuda_backend.cu, k_cublas_workspace_bytes: the workspace each of the backend's two
// cuBLAS handles (main and side stream) gets. host/ may not include cuda/, so the figure is
// repeated here; keep the two in step.
constexpr uint64_t k_cublas_workspace_bytes = uint64_t(32) << 20;
// What cublasCreate and the backend's streams, events and cuBLASLt plans take on the device
// besides the workspaces, per handle: an allowance, not a measured figure (no GPU has run
// this yet).
constexpr uint64_t k_cublas_handle_bytes = uint64_t(4) << 20;

uint64_t batch_fixed_bytes(const ModelShape& shape, const TrainConfig& config, const DataSize& d,
                           int64_t n_models, bool cuda) {
    const uint64_t n_steps = uint64_t((d.n_train + config.batch_size - 1) / config.batch_size);
    uint64_t bytes = data_bytes(d) + uint64_t(d.n_train + d.n_test);  // data copy, host labels
    bytes += 4 * uint64_t(d.n_test);                                  // the shared test order
    // One epoch plan on the host at a time: order, rates, shifts; and the read-back of one
    // model's per-sample figures.
    bytes += 4 * uint64_t(d.n_train) + 8 * n_steps + 2 * uint64_t(d.n_train);
    bytes += 5 * uint64_t(std::max(d.n_train, d.n_test));
    if (!cuda) return bytes;
    bytes += 2 * (k_cublas_workspace_bytes + k_cublas_handle_bytes);
    if (config.precision == Precision::bf16) {
        // Two operand sets (main and side stream), each a bf16 copy of every model's weights
        // or widest activation block, and of every model's widest activation block.
        const uint64_t capacity = uint64_t(std::max(config.batch_size, config.test_batch_size));
        uint64_t widest = 0;  // the inputs included: the first layer's operands
        for (int64_t w : shape.sizes()) widest = std::max(widest, uint64_t(w));
        const uint64_t act = capacity * widest;
        bytes += 2 * 2 * uint64_t(n_models) * (std::max(uint64_t(shape.n_params()), act) + act);
    }
    return bytes;
}

uint64_t available_host_bytes() {
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
        std::istringstream fields(line);
        std::string key;
        uint64_t kib = 0;
        if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
    }
    const long pages = sysconf(_SC_AVPHYS_PAGES);
    const long page_size = sysconf(_SC_PAGESIZE);
    return pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : 0;
}

std::string format_bytes(uint64_t bytes) {
    char buf[32];
    if (bytes >= (uint64_t(1) << 30)) {
        std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(uint64_t(1) << 30));
    } else {
        std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(1 << 20));
    }
    return buf;
}

}  // namespace mlp
