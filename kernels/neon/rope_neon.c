/* NEON RoPE kernels: 4 pairs per step, SLEEF sincosf4 (u10, advsimd). */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "rope_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "../common/rope_common.h"
#include "neon_fp16.h"

/* 2 precise angles; pos < 2^31: pos * turns mod 2^64 from two 32x32->64 products */
static inline float64x2_t lcx_angle2(uint32x2_t pv, const uint64_t *turns)
{
    const uint64x2_t tau = vld1q_u64(turns);
    const uint64x2_t lo = vmull_u32(pv, vmovn_u64(tau));
    const uint64x2_t hi = vshlq_n_u64(vmull_u32(pv, vshrn_n_u64(tau, 32)), 32);
    const int32x2_t h = vreinterpret_s32_u32(vshrn_n_u64(vaddq_u64(lo, hi), 32));
    return vmulq_n_f64(vcvtq_f64_s64(vmovl_s32(h)), LCX_ROPE_TURN32);
}

void lcx_k_rope_cossin__neon(const uint64_t *turns, int64_t pos, int32_t n_pairs, float a, float *cos,
                             float *sin)
{
    const uint32x2_t pv = vdup_n_u32((uint32_t)pos);
    for (int32_t i = 0; i < n_pairs; i += 4) {
        const float64x2_t a0 = lcx_angle2(pv, turns + i), a1 = lcx_angle2(pv, turns + i + 2);
        const float32x2_t h0 = vcvt_f32_f64(a0), h1 = vcvt_f32_f64(a1);
        const float32x2_t l0 = vcvt_f32_f64(vsubq_f64(a0, vcvt_f64_f32(h0)));
        const float32x2_t l1 = vcvt_f32_f64(vsubq_f64(a1, vcvt_f64_f32(h1)));
        const float32x4_t h = vcombine_f32(h0, h1), l = vcombine_f32(l0, l1);
        const Sleef_float32x4_t_2 sc = Sleef_sincosf4_u10advsimd(h);
        const float32x4_t s = vfmaq_f32(sc.x, l, sc.y), c = vfmsq_f32(sc.y, l, sc.x);
        vst1q_f32(cos + i, vmulq_n_f32(c, a));
        vst1q_f32(sin + i, vmulq_n_f32(s, a));
    }
}

void lcx_k_rope_cossin_f32__neon(const float *theta, float pos, int32_t n_pairs, float a, float *cos,
                                 float *sin)
{
    for (int32_t i = 0; i < n_pairs; i += 4) {
        const Sleef_float32x4_t_2 sc = Sleef_sincosf4_u10advsimd(vmulq_n_f32(vld1q_f32(theta + i), pos));
        vst1q_f32(cos + i, vmulq_n_f32(sc.y, a));
        vst1q_f32(sin + i, vmulq_n_f32(sc.x, a));
    }
}

void lcx_k_rope_rot_neox_f32__neon(float *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                   const float *sin, int32_t n_pairs)
{
    for (int64_t hd = 0; hd < n_heads; hd++) {
        float *u = x + hd * head_stride, *v = u + n_pairs;
        int32_t i = 0;
        for (; i + 4 <= n_pairs; i += 4) {
            const float32x4_t a = vld1q_f32(u + i), b = vld1q_f32(v + i);
            const float32x4_t c = vld1q_f32(cos + i), s = vld1q_f32(sin + i);
            vst1q_f32(u + i, vfmsq_f32(vmulq_f32(a, c), b, s));
            vst1q_f32(v + i, vfmaq_f32(vmulq_f32(b, c), a, s));
        }
        for (; i < n_pairs; i++) {
            const float a = u[i], b = v[i];
            u[i] = a * cos[i] - b * sin[i];
            v[i] = b * cos[i] + a * sin[i];
        }
    }
}

void lcx_k_rope_rot_interleaved_f32__neon(float *x, int64_t head_stride, int64_t n_heads,
                                          const float *cos2, const float *sin2, int32_t n_pairs)
{
    const int32_t n = 2 * n_pairs;
    for (int64_t hd = 0; hd < n_heads; hd++) {
        float *p = x + hd * head_stride;
        int32_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const float32x4_t a = vld1q_f32(p + i);
            const float32x4_t sw = vrev64q_f32(a);
            vst1q_f32(p + i, vfmaq_f32(vmulq_f32(sw, vld1q_f32(sin2 + i)), a, vld1q_f32(cos2 + i)));
        }
        for (; i < n; i += 2) {
            const float a = p[i], b = p[i + 1];
            p[i] = a * cos2[i] + b * sin2[i];
            p[i + 1] = b * cos2[i + 1] + a * sin2[i + 1];
        }
    }
}

/* ---- 16-bit head vectors ---- */

static inline __attribute__((always_inline)) void
lcx_rot_neox16(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos, const float *sin,
               int32_t n_pairs, int bf16)
{
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *u = x + hd * head_stride, *v = u + n_pairs;
        int32_t i = 0;
        for (; i + 4 <= n_pairs; i += 4) {
            const float32x4_t a = lcx_load4_x16_neon(u + i, bf16), b = lcx_load4_x16_neon(v + i, bf16);
            const float32x4_t c = vld1q_f32(cos + i), s = vld1q_f32(sin + i);
            lcx_store4_x16_neon(u + i, vfmsq_f32(vmulq_f32(a, c), b, s), bf16);
            lcx_store4_x16_neon(v + i, vfmaq_f32(vmulq_f32(b, c), a, s), bf16);
        }
        for (; i < n_pairs; i++) {
            const float a = lcx_load_elem(u, bf16 ? 2 : 1, (size_t)i), b = lcx_load_elem(v, bf16 ? 2 : 1, (size_t)i);
            lcx_store_elem(u, bf16 ? 2 : 1, (size_t)i, a * cos[i] - b * sin[i]);
            lcx_store_elem(v, bf16 ? 2 : 1, (size_t)i, b * cos[i] + a * sin[i]);
        }
    }
}

void lcx_k_rope_rot_neox_x16__neon(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                   const float *sin, int32_t n_pairs, int32_t bf16)
{
    if (bf16)
        lcx_rot_neox16(x, head_stride, n_heads, cos, sin, n_pairs, 1);
    else
        lcx_rot_neox16(x, head_stride, n_heads, cos, sin, n_pairs, 0);
}

static inline __attribute__((always_inline)) void
lcx_rot_il16(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos2, const float *sin2,
             int32_t n_pairs, int bf16)
{
    const int32_t n = 2 * n_pairs;
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *p = x + hd * head_stride;
        int32_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const float32x4_t a = lcx_load4_x16_neon(p + i, bf16);
            const float32x4_t r = vfmaq_f32(vmulq_f32(vrev64q_f32(a), vld1q_f32(sin2 + i)), a, vld1q_f32(cos2 + i));
            lcx_store4_x16_neon(p + i, r, bf16);
        }
        for (; i < n; i += 2) {
            const float a = lcx_load_elem(p, bf16 ? 2 : 1, (size_t)i), b = lcx_load_elem(p, bf16 ? 2 : 1, (size_t)i + 1);
            lcx_store_elem(p, bf16 ? 2 : 1, (size_t)i, a * cos2[i] + b * sin2[i]);
            lcx_store_elem(p, bf16 ? 2 : 1, (size_t)i + 1, b * cos2[i + 1] + a * sin2[i + 1]);
        }
    }
}

void lcx_k_rope_rot_interleaved_x16__neon(uint16_t *x, int64_t head_stride, int64_t n_heads,
                                          const float *cos2, const float *sin2, int32_t n_pairs, int32_t bf16)
{
    if (bf16)
        lcx_rot_il16(x, head_stride, n_heads, cos2, sin2, n_pairs, 1);
    else
        lcx_rot_il16(x, head_stride, n_heads, cos2, sin2, n_pairs, 0);
}
