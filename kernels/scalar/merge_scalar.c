/* Scalar weight merge (the reference). */
#include <math.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

static inline float lcx_ld(const void *p, int32_t dt, size_t j)
{
    if (dt == 0)
        return ((const float *)p)[j];
    const uint16_t h = ((const uint16_t *)p)[j];
    return lcx_bits_f32(dt == 2 ? lcx_bf16_to_f32_bits(h) : lcx_f16_to_f32_bits(h));
}

void lcx_k_merge__scalar(const void *const *src, const int32_t *dtypes, const float *coeffs, int32_t n_in,
                         void *dst, int32_t dst_dtype, size_t len)
{
    for (size_t j = 0; j < len; j++) {
        float acc = 0.0f;
        for (int32_t i = 0; i < n_in; i++)
            acc = fmaf(coeffs[i], lcx_ld(src[i], dtypes[i], j), acc);
        if (dst_dtype == 0)
            ((float *)dst)[j] = acc;
        else if (dst_dtype == 2)
            ((uint16_t *)dst)[j] = lcx_f32_to_bf16_bits(lcx_f32_bits(acc));
        else
            ((uint16_t *)dst)[j] = lcx_f32_to_f16_bits(lcx_f32_bits(acc));
    }
}
