/* NEON helpers shared by the NEON kernels (static inline only). */
#ifndef LCX_NEON_FP16_H
#define LCX_NEON_FP16_H
#include <arm_neon.h>
#include <stdint.h>

/* f32 -> bf16 on integer lanes: round to nearest even, NaN quieted. */
static inline uint16x4_t lcx_bf16_round_neon(float32x4_t x)
{
    const uint32x4_t u = vreinterpretq_u32_f32(x);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t r = vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
    const uint32x4_t q = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
    const uint32x4_t ordered = vceqq_f32(x, x);       /* all ones unless NaN */
    const uint32x4_t sel = vbslq_u32(ordered, vshrq_n_u32(r, 16), q);
    return vmovn_u32(sel);
}

/* 4 bf16 or f16 values -> f32 */
static inline float32x4_t lcx_load4_x16_neon(const uint16_t *p, int bf16)
{
    const uint16x4_t h = vld1_u16(p);
    if (bf16)
        return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

/* f32 -> 4 bf16 or f16 values, rounded to nearest even */
static inline void lcx_store4_x16_neon(uint16_t *p, float32x4_t x, int bf16)
{
    vst1_u16(p, bf16 ? lcx_bf16_round_neon(x) : vreinterpret_u16_f16(vcvt_f16_f32(x)));
}

#endif
