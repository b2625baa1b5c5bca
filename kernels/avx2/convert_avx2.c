/* AVX2 + F16C dtype conversion kernels, 16 elements per iteration. */
#if !defined(__AVX2__) || !defined(__F16C__) || !defined(__FMA__)
#error "convert_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "avx2_fp16.h"

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
