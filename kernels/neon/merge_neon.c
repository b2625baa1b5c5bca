/* NEON weight merge: 4 elements per step, every input accumulated in a
 * register (one pass over memory), scalar tail. */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "merge_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "neon_fp16.h"

static inline float32x4_t lcx_ld(const void *x, size_t j, int32_t dt)
{
    if (dt == 0)
        return vld1q_f32((const float *)x + j);
    return lcx_load4_x16_neon((const uint16_t *)x + j, dt == 2);
}

void lcx_k_merge__neon(const void *const *src, const int32_t *dtypes, const float *coeffs, int32_t n_in,
                       void *dst, int32_t dst_dtype, size_t len)
{
    size_t j = 0;
    for (; j + 4 <= len; j += 4) {
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (int32_t i = 0; i < n_in; i++)
            acc = vfmaq_n_f32(acc, lcx_ld(src[i], j, dtypes[i]), coeffs[i]);
        if (dst_dtype == 0)
            vst1q_f32((float *)dst + j, acc);
        else
            lcx_store4_x16_neon((uint16_t *)dst + j, acc, dst_dtype == 2);
    }
    for (; j < len; j++) {
        float acc = 0.0f;
        for (int32_t i = 0; i < n_in; i++)
            acc = __builtin_fmaf(coeffs[i], lcx_load_elem(src[i], dtypes[i], j), acc);
        lcx_store_elem(dst, dst_dtype, j, acc);
    }
}
