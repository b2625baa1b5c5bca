/* Element access by dtype known at compile time (lcx_dtype: f32, f16,
 * bf16) for the element-wise CUDA kernels: widened to f32 exactly, stored
 * rounded to nearest even, with the values and NaN payloads of the
 * bit-exact helpers of kernels/common/fp_bits.h that the CPU uses. f16
 * converts with the cvt instructions (the software forms take a dozen
 * instructions and branches), NaN through the software rule. A kernel
 * picks the instance once per view, not per element. */
#ifndef LCX_CUDA_ELEM_CUH
#define LCX_CUDA_ELEM_CUH

#include <stdint.h>

#include "../common/fp_bits.h"
#include "longctx/common.h"
#include "mma.cuh"

/* a 16-bit value of dtype DT (LCX_F16, LCX_BF16) widened to f32, and an
 * f32 rounded to one */
template <int DT> __device__ __forceinline__ float lcx_from16(uint16_t h)
{
    if constexpr (DT == LCX_BF16)
        return lcx_bits_f32(lcx_bf16_to_f32_bits(h));
    else {
        if ((h & 0x7fffu) > 0x7c00u) /* NaN: quiet, payload kept */
            return lcx_bits_f32(lcx_f16_to_f32_bits(h));
        return lcx_half_to_f32<0>(h);
    }
}

template <int DT> __device__ __forceinline__ uint16_t lcx_to16(float x)
{
    const uint32_t u = lcx_f32_bits(x);
    if constexpr (DT == LCX_BF16)
        return lcx_f32_to_bf16_bits(u);
    else
        return (u & 0x7fffffffu) > 0x7f800000u ? lcx_f32_to_f16_bits(u) : lcx_cvt_rn_f16(x);
}

template <int DT> __device__ __forceinline__ float lcx_load(const void *p, int64_t i)
{
    if constexpr (DT == LCX_F32)
        return static_cast<const float *>(p)[i];
    else
        return lcx_from16<DT>(static_cast<const uint16_t *>(p)[i]);
}

template <int DT> __device__ __forceinline__ void lcx_store(void *p, int64_t i, float x)
{
    if constexpr (DT == LCX_F32)
        static_cast<float *>(p)[i] = x;
    else
        static_cast<uint16_t *>(p)[i] = lcx_to16<DT>(x);
}

#endif
