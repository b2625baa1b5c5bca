/* NEON weight-merge accumulation: 8 elements per step. */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "merge_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "neon_fp16.h"

static inline __attribute__((always_inline)) void
lcx_merge(float *acc, const void *x, int dt, float c, size_t n, int first)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t a, b;
        if (dt == 0) {
            a = vld1q_f32((const float *)x + i);
            b = vld1q_f32((const float *)x + i + 4);
        } else {
            a = lcx_load4_x16_neon((const uint16_t *)x + i, dt == 2);
            b = lcx_load4_x16_neon((const uint16_t *)x + i + 4, dt == 2);
        }
        if (first) {
            vst1q_f32(acc + i, vmulq_n_f32(a, c));
            vst1q_f32(acc + i + 4, vmulq_n_f32(b, c));
        } else {
            vst1q_f32(acc + i, vfmaq_n_f32(vld1q_f32(acc + i), a, c));
            vst1q_f32(acc + i + 4, vfmaq_n_f32(vld1q_f32(acc + i + 4), b, c));
        }
    }
    for (; i < n; i++) {
        float v;
        if (dt == 0)
            v = ((const float *)x)[i];
        else if (dt == 2)
            v = lcx_bits_f32(lcx_bf16_to_f32_bits(((const uint16_t *)x)[i]));
        else
            v = lcx_bits_f32(lcx_f16_to_f32_bits(((const uint16_t *)x)[i]));
        acc[i] = first ? c * v : __builtin_fmaf(c, v, acc[i]);
    }
}

void lcx_k_merge_acc__neon(float *acc, const void *x, int32_t dtype, float c, size_t n, int32_t first)
{
    if (first) {
        if (dtype == 0) lcx_merge(acc, x, 0, c, n, 1);
        else if (dtype == 2) lcx_merge(acc, x, 2, c, n, 1);
        else lcx_merge(acc, x, 1, c, n, 1);
    } else {
        if (dtype == 0) lcx_merge(acc, x, 0, c, n, 0);
        else if (dtype == 2) lcx_merge(acc, x, 2, c, n, 0);
        else lcx_merge(acc, x, 1, c, n, 0);
    }
}
