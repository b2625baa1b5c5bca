/* AVX-512 weight-merge accumulation: 32 elements per step, masked tail. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__)
#error "merge_avx512.c must be compiled with the AVX-512 flags"
#endif
#include <immintrin.h>

#include "../ktable.h"

static inline __m512 lcx_ld(const void *x, size_t i, int dt, __mmask16 m)
{
    if (dt == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)x + i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)x + i);
    if (dt == 2)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline __attribute__((always_inline)) void
lcx_merge(float *acc, const void *x, int dt, float c, size_t n, int first)
{
    const __m512 vc = _mm512_set1_ps(c);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = lcx_ld(x, i, dt, 0xffff), b = lcx_ld(x, i + 16, dt, 0xffff);
        if (first) {
            _mm512_storeu_ps(acc + i, _mm512_mul_ps(vc, a));
            _mm512_storeu_ps(acc + i + 16, _mm512_mul_ps(vc, b));
        } else {
            _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(vc, a, _mm512_loadu_ps(acc + i)));
            _mm512_storeu_ps(acc + i + 16, _mm512_fmadd_ps(vc, b, _mm512_loadu_ps(acc + i + 16)));
        }
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 a = lcx_ld(x, i, dt, m);
        const __m512 r = first ? _mm512_mul_ps(vc, a) : _mm512_fmadd_ps(vc, a, _mm512_maskz_loadu_ps(m, acc + i));
        _mm512_mask_storeu_ps(acc + i, m, r);
    }
}

void lcx_k_merge_acc__avx512(float *acc, const void *x, int32_t dtype, float c, size_t n, int32_t first)
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
