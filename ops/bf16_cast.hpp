// float -> bfloat16, round to nearest even, as the bit pattern (uint16_t): the
// operand cast of --precision bf16, whose GEMMs read bf16 operands and
// accumulate in fp32. The pattern is the upper half of the float's bits, so one
// type serves both compilers: on the device nvcc's __float2bfloat16_rn (one
// cvt.rn.bf16.f32), on the host the same rounding written out in integers, so
// the CPU tests check it and build CPU references of rounded operands. NaN
// stays NaN (quiet, sign kept), infinities stay infinities, and a finite value
// past the largest bf16 rounds to infinity, as IEEE rounding does.
#pragma once

#include <cstdint>
#include <cstring>

#include "ops/host_device.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#endif

namespace mlp {

MLP_HD uint16_t float_to_bf16_bits(float x) {
#if defined(__CUDA_ARCH__)
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
#else
    uint32_t u = 0;
    std::memcpy(&u, &x, sizeof u);
    // NaN: truncating could clear every mantissa bit left and make infinity.
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
    // Add just under half an ulp of the result, plus one when the kept half is
    // odd: ties go to even, and a carry into the exponent is the right rounding.
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
#endif
}

// The float a bf16 pattern stands for (exact: its bits padded with zeros).
MLP_HD float bf16_bits_to_float(uint16_t bits) {
    const uint32_t u = uint32_t(bits) << 16;
    float x = 0.0f;
#if defined(__CUDA_ARCH__)
    x = __uint_as_float(u);
#else
    std::memcpy(&x, &u, sizeof x);
#endif
    return x;
}

// dst[i] = the bf16 pattern of src[i]: a GEMM operand before a bf16 GEMM.
struct Bf16CastFunctor {
    uint16_t* dst;
    const float* src;

    MLP_HD void operator()(int64_t i) const { dst[i] = float_to_bf16_bits(src[i]); }
};

}  // namespace mlp
