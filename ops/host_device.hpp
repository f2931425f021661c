// The host/device macro MLP_HD, and ceil_div(): the one header of ours that
// every functor in ops/ includes. MLP_HD marks the per-element math that both
// backends run: nvcc compiles it for the device, the host compiler for the CPU
// backend and its tests.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MLP_HD __host__ __device__ __forceinline__
#else
#define MLP_HD inline
#endif

namespace mlp {

template <class T>
MLP_HD T ceil_div(T a, T b) {
    return (a + b - 1) / b;
}

}  // namespace mlp
