/* AVX-512 dtype conversion kernels (F/BW/DQ/VL), 32 elements per iteration.
 * The f32 -> bf16 slot has a second variant using AVX512-BF16 instructions
 * (convert_avx512bf16.c), installed when the CPU has them. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "convert_avx512.c must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "avx512_bf16_round.h"

void lcx_k_convert_f32_bf16__avx512(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i a = lcx_bf16_round_avx512(_mm512_loadu_ps(src + i));
        const __m256i b = lcx_bf16_round_avx512(_mm512_loadu_ps(src + i + 16));
        _mm256_storeu_si256((__m256i *)(dst + i), a);
        _mm256_storeu_si256((__m256i *)(dst + i + 16), b);
    }
    if (i < n) { /* masked tail, up to 31 elements in two halves */
        for (; i < n; i += 16) {
            const size_t r = n - i < 16 ? n - i : 16;
            const __mmask16 m = (__mmask16)((1u << r) - 1u);
            const __m256i a = lcx_bf16_round_avx512(_mm512_maskz_loadu_ps(m, src + i));
            _mm256_mask_storeu_epi16(dst + i, m, a);
        }
    }
}

void lcx_k_convert_bf16_f32__avx512(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        const __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 16));
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(a), 16));
        _mm512_storeu_si512(dst + i + 16, _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
    }
    for (; i < n; i += 16) {
        const size_t r = n - i < 16 ? n - i : 16;
        const __mmask16 m = (__mmask16)((1u << r) - 1u);
        const __m256i a = _mm256_maskz_loadu_epi16(m, src + i);
        _mm512_mask_storeu_epi32(dst + i, m, _mm512_slli_epi32(_mm512_cvtepu16_epi32(a), 16));
    }
}

void lcx_k_convert_f32_f16__avx512(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i a = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        const __m256i b = _mm512_cvtps_ph(_mm512_loadu_ps(src + i + 16), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(dst + i), a);
        _mm256_storeu_si256((__m256i *)(dst + i + 16), b);
    }
    for (; i < n; i += 16) {
        const size_t r = n - i < 16 ? n - i : 16;
        const __mmask16 m = (__mmask16)((1u << r) - 1u);
        const __m256i a = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(dst + i, m, a);
    }
}

void lcx_k_convert_f16_f32__avx512(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i)));
        const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i + 16)));
        _mm512_storeu_ps(dst + i, a);
        _mm512_storeu_ps(dst + i + 16, b);
    }
    for (; i < n; i += 16) {
        const size_t r = n - i < 16 ? n - i : 16;
        const __mmask16 m = (__mmask16)((1u << r) - 1u);
        const __m512 a = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, a);
    }
}
