/* AVX2 + F16C dtype conversion kernels, 16 elements per iteration. */
#if !defined(__AVX2__) || !defined(__F16C__) || !defined(__FMA__)
#error "convert_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

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

void lcx_k_convert_f32_bf16__avx2(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = lcx_bf16_round_avx2(_mm256_loadu_ps(src + i));
        const __m256i b = lcx_bf16_round_avx2(_mm256_loadu_ps(src + i + 8));
        /* packus works per 128-bit lane: fix the order with a permute */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(dst + i), p);
    }
    for (; i < n; i++)
        dst[i] = lcx_f32_to_bf16_bits(lcx_f32_bits(src[i]));
}

void lcx_k_convert_bf16_f32__avx2(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        const __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 8));
        const __m256i ua = _mm256_slli_epi32(_mm256_cvtepu16_epi32(a), 16);
        const __m256i ub = _mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16);
        _mm256_storeu_si256((__m256i *)(dst + i), ua);
        _mm256_storeu_si256((__m256i *)(dst + i + 8), ub);
    }
    for (; i < n; i++)
        dst[i] = lcx_bits_f32(lcx_bf16_to_f32_bits(src[i]));
}

void lcx_k_convert_f32_f16__avx2(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        const __m128i b = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), a);
        _mm_storeu_si128((__m128i *)(dst + i + 8), b);
    }
    for (; i < n; i++)
        dst[i] = lcx_f32_to_f16_bits(lcx_f32_bits(src[i]));
}

void lcx_k_convert_f16_f32__avx2(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i)));
        const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i + 8)));
        _mm256_storeu_ps(dst + i, a);
        _mm256_storeu_ps(dst + i + 8, b);
    }
    for (; i < n; i++)
        dst[i] = lcx_bits_f32(lcx_f16_to_f32_bits(src[i]));
}
