/* AArch64 NEON dtype conversion kernels. f16 uses FCVTN/FCVTL (round to
 * nearest even per the default FPCR, subnormals kept, NaN quieted with its
 * payload); bf16 uses integer lanes, identical to the scalar reference. */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "convert_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "neon_fp16.h"

void lcx_k_convert_f32_bf16__neon(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x4_t a = lcx_bf16_round_neon(vld1q_f32(src + i));
        const uint16x4_t b = lcx_bf16_round_neon(vld1q_f32(src + i + 4));
        vst1q_u16(dst + i, vcombine_u16(a, b));
    }
    for (; i < n; i++)
        dst[i] = lcx_f32_to_bf16_bits(lcx_f32_bits(src[i]));
}

void lcx_k_convert_bf16_f32__neon(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vld1q_u16(src + i);
        vst1q_u32((uint32_t *)(dst + i), vshll_n_u16(vget_low_u16(h), 16));
        vst1q_u32((uint32_t *)(dst + i + 4), vshll_high_n_u16(h, 16));
    }
    for (; i < n; i++)
        dst[i] = lcx_bits_f32(lcx_bf16_to_f32_bits(src[i]));
}

void lcx_k_convert_f32_f16__neon(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x4_t a = vcvt_f16_f32(vld1q_f32(src + i));
        const float16x8_t ab = vcvt_high_f16_f32(a, vld1q_f32(src + i + 4));
        vst1q_u16(dst + i, vreinterpretq_u16_f16(ab));
    }
    for (; i < n; i++)
        dst[i] = lcx_f32_to_f16_bits(lcx_f32_bits(src[i]));
}

void lcx_k_convert_f16_f32__neon(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(src + i));
        vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(dst + i + 4, vcvt_high_f32_f16(h));
    }
    for (; i < n; i++)
        dst[i] = lcx_bits_f32(lcx_f16_to_f32_bits(src[i]));
}
