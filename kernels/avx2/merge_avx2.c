/* AVX2 weight-merge accumulation: 16 elements per step. */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "merge_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "avx2_fp16.h"

static inline __attribute__((always_inline)) void
lcx_merge(float *acc, const void *x, int dt, float c, size_t n, int first)
{
    const __m256 vc = _mm256_set1_ps(c);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a, b;
        if (dt == 0) {
            a = _mm256_loadu_ps((const float *)x + i);
            b = _mm256_loadu_ps((const float *)x + i + 8);
        } else {
            a = lcx_load8_x16_avx2((const uint16_t *)x + i, dt == 2);
            b = lcx_load8_x16_avx2((const uint16_t *)x + i + 8, dt == 2);
        }
        if (first) {
            _mm256_storeu_ps(acc + i, _mm256_mul_ps(vc, a));
            _mm256_storeu_ps(acc + i + 8, _mm256_mul_ps(vc, b));
        } else {
            _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(vc, a, _mm256_loadu_ps(acc + i)));
            _mm256_storeu_ps(acc + i + 8, _mm256_fmadd_ps(vc, b, _mm256_loadu_ps(acc + i + 8)));
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

void lcx_k_merge_acc__avx2(float *acc, const void *x, int32_t dtype, float c, size_t n, int32_t first)
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
