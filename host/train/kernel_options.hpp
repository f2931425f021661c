// Which kernels the training step runs and in what arithmetic. Kept apart from
// the command line's name tables so the trainer can be built and tested
// without it; the CLI maps --kernels and --precision onto these.
//
// generic: one functor per operation, the oracle every backend runs (today's
// path). fused: the backend's fused operations (GEMM epilogues, multi-block
// reductions, a branching graph on CUDA); on the CPU they run the same
// functors in the same order, so both paths give identical numbers there.
//
// fp32 is the default everywhere. tf32 and bf16 are CUDA-only: tensor-core
// GEMMs with fp32 accumulation; weights, gradients and optimizer state stay
// fp32.
#pragma once

#include <string>

#include "host/base/error.hpp"

namespace mlp {

enum class KernelPath { generic, fused };
enum class Precision { fp32, tf32, bf16 };

inline const char* to_string(KernelPath k) {
    return k == KernelPath::fused ? "fused" : "generic";
}

inline const char* to_string(Precision p) {
    switch (p) {
        case Precision::tf32:
            return "tf32";
        case Precision::bf16:
            return "bf16";
        case Precision::fp32:
            break;
    }
    return "fp32";
}

inline KernelPath parse_kernel_path(const std::string& s) {
    if (s == "generic") return KernelPath::generic;
    if (s == "fused") return KernelPath::fused;
    throw Error("unknown kernel path '" + s + "' (expected generic or fused)");
}

inline Precision parse_precision(const std::string& s) {
    if (s == "fp32") return Precision::fp32;
    if (s == "tf32") return Precision::tf32;
    if (s == "bf16") return Precision::bf16;
    throw Error("unknown precision '" + s + "' (expected fp32, tf32 or bf16)");
}

}  // namespace mlp
