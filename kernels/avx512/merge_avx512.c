/* AVX-512 weight merge: 16 elements per step, every input accumulated in a
 * register (one pass over memory), masked tail. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__)
#error "merge_avx512.c must be compiled with the AVX-512 flags"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "avx512_bf16_round.h"

static inline __m512 lcx_ld(const void *x, size_t j, int32_t dt, __mmask16 m)
{
    if (dt == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)x + j);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)x + j);
    if (dt == 2)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline void lcx_st(void *d, size_t j, int32_t dt, __mmask16 m, __m512 v)
{
    if (dt == 0) {
        if (m == 0xffff)
            _mm512_storeu_ps((float *)d + j, v);
        else
            _mm512_mask_storeu_ps((float *)d + j, m, v);
        return;
    }
    const __m256i h = dt == 2 ? lcx_bf16_round_avx512(v) : _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    if (m == 0xffff)
        _mm256_storeu_si256((__m256i *)((uint16_t *)d + j), h);
    else
        _mm256_mask_storeu_epi16((uint16_t *)d + j, m, h);
}

void lcx_k_merge__avx512(const void *const *src, const int32_t *dtypes, const float *coeffs, int32_t n_in,
                         void *dst, int32_t dst_dtype, size_t len)
{
    for (size_t j = 0; j < len; j += 16) {
        const __mmask16 m = len - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (len - j)) - 1u);
        __m512 acc = _mm512_setzero_ps();
        for (int32_t i = 0; i < n_in; i++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(coeffs[i]), lcx_ld(src[i], j, dtypes[i], m), acc);
        lcx_st(dst, j, dst_dtype, m, acc);
    }
}
