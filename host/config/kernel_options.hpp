// Which kernels the training step runs (--kernels) and in what arithmetic its GEMMs run
// (--precision), each one name table.
//
// generic: one functor per operation, the oracle every backend runs. fused: the backend's
// fused operations (GEMM epilogues, multi-block reductions, a branching graph on CUDA); on the
// CPU they run the same functors in the same order, so both paths give identical numbers
// there. generic stays the default until a GPU run has passed the GPU tests with fused and
// measured it faster.
//
// fp32 is the default everywhere. tf32 and bf16 are CUDA-only: tf32 runs the GEMMs on tensor
// cores with fp32 accumulation; bf16 rounds each GEMM's two operands to bfloat16
// (ops/bf16_cast.hpp) and accumulates in fp32 into fp32 outputs. In both the weights, gradients
// and optimizer state stay fp32 (the master weights).
#pragma once

#include <string>

#include "host/config/names.hpp"

namespace mlp {

enum class KernelPath { generic, fused };
enum class Precision { fp32, tf32, bf16 };

constexpr NamedChoice<KernelPath> k_kernel_paths[] = {
    {"generic", KernelPath::generic, "one functor per operation, the oracle"},
    {"fused", KernelPath::fused, "GEMM epilogues and multi-block reductions"},
};

constexpr NamedChoice<Precision> k_precisions[] = {
    {"fp32", Precision::fp32, ""},
    {"tf32", Precision::tf32, "CUDA: tensor-core GEMMs, fp32 accumulation"},
    {"bf16", Precision::bf16, "CUDA: bf16 GEMM operands, fp32 accumulation and master weights"},
};

inline std::string to_string(KernelPath k) { return entry_of(k_kernel_paths, k).name; }
inline std::string to_string(Precision p) { return entry_of(k_precisions, p).name; }

// Throw UsageError naming --kernels / --precision for anything but the names above.
inline KernelPath parse_kernel_path(const std::string& s) {
    return parse_name(k_kernel_paths, s, "--kernels", "kernel path").value;
}
inline Precision parse_precision(const std::string& s) {
    return parse_name(k_precisions, s, "--precision", "precision").value;
}

}  // namespace mlp
