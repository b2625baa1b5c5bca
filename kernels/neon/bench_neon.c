/* NEON FMA-peak probe: 12 independent 4-lane FMA chains. */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "bench_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>

#include "../ktable.h"

#define LCX_BENCH_ACC 12

float lcx_k_bench_fma__neon(int64_t iters, float a, float b)
{
    float32x4_t acc[LCX_BENCH_ACC];
    const float32x4_t vb = vdupq_n_f32(b);
    for (int j = 0; j < LCX_BENCH_ACC; j++)
        acc[j] = vdupq_n_f32((float)j);
    for (int64_t i = 0; i < iters; i++) {
        for (int j = 0; j < LCX_BENCH_ACC; j++)
            acc[j] = vfmaq_n_f32(vb, acc[j], a);
    }
    float32x4_t s = acc[0];
    for (int j = 1; j < LCX_BENCH_ACC; j++)
        s = vaddq_f32(s, acc[j]);
    return vaddvq_f32(s);
}
