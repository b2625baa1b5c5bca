/* AVX2 weight merge: 8 elements per step, every input accumulated in a
 * register (one pass over memory), scalar tail. */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "merge_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "avx2_fp16.h"

static inline __m256 lcx_ld(const void *x, size_t j, int32_t dt)
{
    if (dt == 0)
        return _mm256_loadu_ps((const float *)x + j);
    return lcx_load8_x16_avx2((const uint16_t *)x + j, dt == 2);
}

void lcx_k_merge__avx2(const void *const *src, const int32_t *dtypes, const float *coeffs, int32_t n_in,
                       void *dst, int32_t dst_dtype, size_t len)
{
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int32_t i = 0; i < n_in; i++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(coeffs[i]), lcx_ld(src[i], j, dtypes[i]), acc);
        if (dst_dtype == 0)
            _mm256_storeu_ps((float *)dst + j, acc);
        else
            lcx_store8_x16_avx2((uint16_t *)dst + j, acc, dst_dtype == 2);
    }
    for (; j < len; j++) {
        float acc = 0.0f;
        for (int32_t i = 0; i < n_in; i++)
            acc = __builtin_fmaf(coeffs[i], lcx_load_elem(src[i], dtypes[i], j), acc);
        lcx_store_elem(dst, dst_dtype, j, acc);
    }
}
