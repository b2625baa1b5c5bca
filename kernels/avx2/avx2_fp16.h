/* AVX2 helpers shared by the AVX2 kernels (static inline only). */
#ifndef LCX_AVX2_FP16_H
#define LCX_AVX2_FP16_H
#include <immintrin.h>
#include <stdint.h>

/* f32 -> bf16 on integer lanes: round to nearest even, NaN quieted. */
static inline __m256i lcx_bf16_round_avx2(__m256 x)
{
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    r = _mm256_srli_epi32(r, 16);
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_epi8(r, q, _mm256_castps_si256(isnan));
}

/* 8 bf16 or f16 values -> f32 */
static inline __m256 lcx_load8_x16_avx2(const uint16_t *p, int bf16)
{
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (bf16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* f32 -> 8 bf16 or f16 values, rounded to nearest even */
static inline void lcx_store8_x16_avx2(uint16_t *p, __m256 x, int bf16)
{
    __m128i h;
    if (bf16) {
        const __m256i r = lcx_bf16_round_avx2(x);
        h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    } else {
        h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);
    }
    _mm_storeu_si128((__m128i *)p, h);
}

#endif
