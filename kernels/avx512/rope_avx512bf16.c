/* bf16 RoPE rotations rounding with VCVTNEPS2BF16 (one instruction for
 * round-to-nearest-even and NaN quieting). The instruction flushes subnormal
 * results, so a vector holding any f32 subnormal takes the integer path.
 * f16 goes to the plain AVX-512 kernels. */
#if !defined(__AVX512F__) || !defined(__AVX512BF16__) || !defined(__AVX512DQ__)
#error "rope_avx512bf16.c must be compiled with the AVX-512 flags plus -mavx512bf16"
#endif
#include <immintrin.h>

#include "../ktable.h"
#include "avx512_bf16_round.h"

static inline __m512 lcx_ldbf(const uint16_t *p, __mmask16 m)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

static inline void lcx_stbf(uint16_t *p, __mmask16 m, __m512 x)
{
    /* fpclass 0x20: denormal */
    const __m256i h = __builtin_expect(_mm512_fpclass_ps_mask(x, 0x20) != 0, 0)
                          ? lcx_bf16_round_avx512(x)
                          : (__m256i)_mm512_cvtneps_pbh(x);
    if (m == 0xffff)
        _mm256_storeu_si256((__m256i *)p, h);
    else
        _mm256_mask_storeu_epi16(p, m, h);
}

void lcx_k_rope_rot_neox_x16__avx512bf16(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                         const float *sin, int32_t n_pairs, int32_t bf16)
{
    if (!bf16) {
        lcx_k_rope_rot_neox_x16__avx512(x, head_stride, n_heads, cos, sin, n_pairs, bf16);
        return;
    }
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *u = x + hd * head_stride, *v = u + n_pairs;
        for (int32_t i = 0; i < n_pairs; i += 16) {
            const __mmask16 m = n_pairs - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n_pairs - i)) - 1u);
            const __m512 a = lcx_ldbf(u + i, m), b = lcx_ldbf(v + i, m);
            const __m512 c = _mm512_maskz_loadu_ps(m, cos + i), s = _mm512_maskz_loadu_ps(m, sin + i);
            lcx_stbf(u + i, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
            lcx_stbf(v + i, m, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
        }
    }
}

void lcx_k_rope_rot_interleaved_x16__avx512bf16(uint16_t *x, int64_t head_stride, int64_t n_heads,
                                                const float *cos2, const float *sin2, int32_t n_pairs,
                                                int32_t bf16)
{
    if (!bf16) {
        lcx_k_rope_rot_interleaved_x16__avx512(x, head_stride, n_heads, cos2, sin2, n_pairs, bf16);
        return;
    }
    const int32_t n = 2 * n_pairs;
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *p = x + hd * head_stride;
        for (int32_t i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
            const __m512 a = lcx_ldbf(p + i, m);
            const __m512 sw = _mm512_permute_ps(a, 0xb1);
            lcx_stbf(p + i, m, _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, cos2 + i),
                                               _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(m, sin2 + i))));
        }
    }
}
