/* Shared AVX-512 helper: f32 -> bf16 with integer lanes (round to nearest
 * even, NaN quieted with sign and upper payload kept). Only static inline. */
#ifndef LCX_AVX512_BF16_ROUND_H
#define LCX_AVX512_BF16_ROUND_H
#include <immintrin.h>

static inline __m256i lcx_bf16_round_avx512(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    r = _mm512_srli_epi32(r, 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

#endif
