/* f32 -> bf16 with the AVX512-BF16 instruction VCVTNEPS2BF16. The
 * instruction rounds to nearest even and quiets NaN exactly as the scalar
 * reference does, but it treats subnormal inputs as zero (and flushes
 * subnormal results); a vector holding any f32 subnormal is therefore
 * converted with the integer path, which keeps them. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512BF16__)
#error "convert_avx512bf16.c must be compiled with the AVX-512 flags plus -mavx512bf16"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "avx512_bf16_round.h"

/* lanes whose f32 is a nonzero subnormal: exponent field 0, mantissa != 0 */
static inline __mmask16 lcx_subnormal_mask(__m512 x)
{
    const __m512i a = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    const __mmask16 small = _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(0x00800000));
    return _mm512_mask_cmpneq_epu32_mask(small, a, _mm512_setzero_si512());
}

static inline __m256i lcx_bf16_cvt(__m512 x)
{
    if (__builtin_expect(lcx_subnormal_mask(x) != 0, 0))
        return lcx_bf16_round_avx512(x);
    return (__m256i)_mm512_cvtneps_pbh(x);
}

void lcx_k_convert_f32_bf16__avx512bf16(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i a = lcx_bf16_cvt(_mm512_loadu_ps(src + i));
        const __m256i b = lcx_bf16_cvt(_mm512_loadu_ps(src + i + 16));
        _mm256_storeu_si256((__m256i *)(dst + i), a);
        _mm256_storeu_si256((__m256i *)(dst + i + 16), b);
    }
    for (; i < n; i += 16) {
        const size_t r = n - i < 16 ? n - i : 16;
        const __mmask16 m = (__mmask16)((1u << r) - 1u);
        const __m256i a = lcx_bf16_cvt(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, a);
    }
}
