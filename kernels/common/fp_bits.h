/*
 * Bit-exact scalar conversions between binary32, binary16 and bfloat16.
 * Shared by the scalar kernels, the SIMD tails and the CUDA kernels, so every
 * backend rounds and treats NaN the same way:
 *  - narrowing rounds to nearest, ties to even; subnormals are produced, not
 *    flushed; values past the largest finite number become ±inf;
 *  - a NaN keeps its sign and the upper bits of its payload, with the quiet
 *    bit set (what F16C, NEON and AVX512-BF16 do);
 *  - f16 -> f32 is exact and quiets signalling NaNs; bf16 -> f32 is a plain
 *    bit widening.
 * Only static inline helpers live here.
 */
#ifndef LCX_FP_BITS_H
#define LCX_FP_BITS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#  define LCX_HD __host__ __device__
#else
#  define LCX_HD
#endif

LCX_HD static inline uint32_t lcx_f32_bits(float x)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
#endif
}

LCX_HD static inline float lcx_bits_f32(uint32_t u)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
#endif
}

LCX_HD static inline uint16_t lcx_f32_to_bf16_bits(uint32_t u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u)            /* NaN: keep sign+payload, quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    /* round to nearest even: add 0x7fff plus the lowest kept bit; a carry out
     * of the mantissa bumps the exponent, up to inf for the largest values */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

LCX_HD static inline uint32_t lcx_bf16_to_f32_bits(uint16_t h)
{
    return (uint32_t)h << 16;
}

LCX_HD static inline uint16_t lcx_f32_to_f16_bits(uint32_t u)
{
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)                             /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x03ffu));
    if (a >= 0x477ff000u)                            /* >= 65520: rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) {                          /* normal f16 (>= 2^-14) */
        /* rebias exponent 127 -> 15 and round the 13 dropped bits */
        uint32_t r = a - 0x38000000u;
        r += 0x0fffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    if (a < 0x33000000u)                             /* < 2^-25: rounds to zero */
        return (uint16_t)sign;
    {
        /* subnormal f16: value = m * 2^-24 with m = mant24 >> shift */
        const uint32_t e = a >> 23;                  /* 102 .. 112 */
        const uint32_t mant = (a & 0x007fffffu) | 0x00800000u;
        const uint32_t shift = 126u - e;             /* 14 .. 24 */
        uint32_t m = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (m & 1u)))
            m += 1u;                                 /* may carry into the smallest normal */
        return (uint16_t)(sign | m);
    }
}

LCX_HD static inline uint32_t lcx_f16_to_f32_bits(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x03ffu;
    if (e == 0x1fu)                                  /* inf, or NaN made quiet */
        return sign | 0x7f800000u | (m << 13) | (m ? 0x00400000u : 0u);
    if (e != 0)
        return sign | ((e + 112u) << 23) | (m << 13);
    if (m == 0)
        return sign;
    {
        /* subnormal: normalise m * 2^-24 */
        uint32_t exp = 113u;                         /* 127 - 14 */
        while (!(m & 0x0400u)) {
            m <<= 1;
            exp -= 1u;
        }
        return sign | (exp << 23) | ((m & 0x03ffu) << 13);
    }
}

/* Element j of a buffer of dtype 0 = f32, 1 = f16, 2 = bf16 (the lcx_dtype
 * values), widened to f32 exactly / rounded from f32 to nearest even. */
LCX_HD static inline float lcx_load_elem(const void *p, int32_t dtype, size_t j)
{
    if (dtype == 0)
        return ((const float *)p)[j];
    const uint16_t h = ((const uint16_t *)p)[j];
    return lcx_bits_f32(dtype == 2 ? lcx_bf16_to_f32_bits(h) : lcx_f16_to_f32_bits(h));
}

LCX_HD static inline void lcx_store_elem(void *p, int32_t dtype, size_t j, float x)
{
    if (dtype == 0)
        ((float *)p)[j] = x;
    else
        ((uint16_t *)p)[j] = dtype == 2 ? lcx_f32_to_bf16_bits(lcx_f32_bits(x)) : lcx_f32_to_f16_bits(lcx_f32_bits(x));
}

#endif
