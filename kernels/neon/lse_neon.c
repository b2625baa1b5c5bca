/* NEON row log-sum-exp: 4 lanes, SLEEF expf4 (u10, advsimd), scalar tail. */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "lse_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "neon_fp16.h"

#define LCX_LSE_BLOCK 512

static inline float32x4_t lcx_ld(const void *x, size_t j, int32_t dt)
{
    if (dt == 0)
        return vld1q_f32((const float *)x + j);
    return lcx_load4_x16_neon((const uint16_t *)x + j, dt == 2);
}

void lcx_k_row_lse__neon(const void *x, int32_t dtype, size_t n, float *max_out, double *sum_out, int32_t *flags)
{
    float m = -INFINITY;
    double s = 0;
    int32_t f = 0;
    for (size_t b = 0; b < n; b += LCX_LSE_BLOCK) {
        const size_t e = b + LCX_LSE_BLOCK < n ? b + LCX_LSE_BLOCK : n;
        float32x4_t vm = vdupq_n_f32(-INFINITY);
        uint32x4_t ok = vdupq_n_u32(0xffffffffu);
        size_t j = b;
        for (; j + 4 <= e; j += 4) {
            const float32x4_t v = lcx_ld(x, j, dtype);
            ok = vandq_u32(ok, vceqq_f32(v, v));
            vm = vmaxnmq_f32(vm, v);
        }
        float bm = vmaxvq_f32(vm);
        if (vminvq_u32(ok) == 0)
            f |= 1;
        for (; j < e; j++) {
            const float v = lcx_load_elem(x, dtype, j);
            if (v != v)
                f |= 1;
            else if (v > bm)
                bm = v;
        }
        if (bm == INFINITY)
            f |= 2;
        if (f)
            break;
        if (bm > m) {
            s *= exp((double)m - (double)bm);
            m = bm;
        }
        if (m == -INFINITY)
            continue;
        const float32x4_t vmax = vdupq_n_f32(m);
        float32x4_t acc = vdupq_n_f32(0);
        for (j = b; j + 4 <= e; j += 4)
            acc = vaddq_f32(acc, Sleef_expf4_u10advsimd(vsubq_f32(lcx_ld(x, j, dtype), vmax)));
        float bs = vaddvq_f32(acc);
        for (; j < e; j++)
            bs += Sleef_expf1_u10purecfma(lcx_load_elem(x, dtype, j) - m);
        s += bs;
    }
    *max_out = m;
    *sum_out = s;
    *flags = f;
}
