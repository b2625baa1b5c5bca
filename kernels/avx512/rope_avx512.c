/* AVX-512 RoPE kernels: 16 pairs per step, SLEEF sincosf16 (u10). */
#if !defined(__AVX512F__) || !defined(__AVX512DQ__)
#error "rope_avx512.c must be compiled with -mavx512f -mavx512dq"
#endif
#include <immintrin.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/rope_common.h"
#include "avx512_bf16_round.h"

/* 8 precise angles: top 32 bits of pos * turns (mod 2^64) as a signed turn fraction */
static inline __m512d lcx_angle8(__m512i pv, const uint64_t *turns)
{
    const __m512i t = _mm512_mullo_epi64(pv, _mm512_loadu_si512(turns));
    const __m256i h = _mm512_cvtepi64_epi32(_mm512_srai_epi64(t, 32));
    return _mm512_mul_pd(_mm512_cvtepi32_pd(h), _mm512_set1_pd(LCX_ROPE_TURN32));
}

void lcx_k_rope_cossin__avx512(const uint64_t *turns, int64_t pos, int32_t n_pairs, float a, float *cos,
                               float *sin)
{
    const __m512i pv = _mm512_set1_epi64(pos);
    const __m512 va = _mm512_set1_ps(a);
    for (int32_t i = 0; i < n_pairs; i += 16) {
        const __m512d a0 = lcx_angle8(pv, turns + i), a1 = lcx_angle8(pv, turns + i + 8);
        const __m256 h0 = _mm512_cvtpd_ps(a0), h1 = _mm512_cvtpd_ps(a1);
        const __m256 l0 = _mm512_cvtpd_ps(_mm512_sub_pd(a0, _mm512_cvtps_pd(h0)));
        const __m256 l1 = _mm512_cvtpd_ps(_mm512_sub_pd(a1, _mm512_cvtps_pd(h1)));
        const __m512 h = _mm512_insertf32x8(_mm512_castps256_ps512(h0), h1, 1);
        const __m512 l = _mm512_insertf32x8(_mm512_castps256_ps512(l0), l1, 1);
        const Sleef___m512_2 sc = Sleef_sincosf16_u10avx512f(h);
        const __m512 s = _mm512_fmadd_ps(l, sc.y, sc.x), c = _mm512_fnmadd_ps(l, sc.x, sc.y);
        _mm512_storeu_ps(cos + i, _mm512_mul_ps(va, c));
        _mm512_storeu_ps(sin + i, _mm512_mul_ps(va, s));
    }
}

void lcx_k_rope_cossin_f32__avx512(const float *theta, float pos, int32_t n_pairs, float a, float *cos,
                                   float *sin)
{
    const __m512 vp = _mm512_set1_ps(pos), va = _mm512_set1_ps(a);
    for (int32_t i = 0; i < n_pairs; i += 16) {
        const Sleef___m512_2 sc = Sleef_sincosf16_u10avx512f(_mm512_mul_ps(vp, _mm512_loadu_ps(theta + i)));
        _mm512_storeu_ps(cos + i, _mm512_mul_ps(sc.y, va));
        _mm512_storeu_ps(sin + i, _mm512_mul_ps(sc.x, va));
    }
}

void lcx_k_rope_rot_neox_f32__avx512(float *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                     const float *sin, int32_t n_pairs)
{
    /* full vectors unmasked (masked stores are slow on some cores), then a
     * masked tail */
    const int32_t full = n_pairs & ~15;
    const __mmask16 tm = (__mmask16)((1u << (n_pairs - full)) - 1u);
    for (int64_t hd = 0; hd < n_heads; hd++) {
        float *u = x + hd * head_stride, *v = u + n_pairs;
        for (int32_t i = 0; i < full; i += 16) {
            const __m512 a = _mm512_loadu_ps(u + i), b = _mm512_loadu_ps(v + i);
            const __m512 c = _mm512_loadu_ps(cos + i), s = _mm512_loadu_ps(sin + i);
            _mm512_storeu_ps(u + i, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
            _mm512_storeu_ps(v + i, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
        }
        if (tm) {
            const __m512 a = _mm512_maskz_loadu_ps(tm, u + full), b = _mm512_maskz_loadu_ps(tm, v + full);
            const __m512 c = _mm512_maskz_loadu_ps(tm, cos + full), s = _mm512_maskz_loadu_ps(tm, sin + full);
            _mm512_mask_storeu_ps(u + full, tm, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
            _mm512_mask_storeu_ps(v + full, tm, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
        }
    }
}

void lcx_k_rope_rot_interleaved_f32__avx512(float *x, int64_t head_stride, int64_t n_heads,
                                            const float *cos2, const float *sin2, int32_t n_pairs)
{
    const int32_t n = 2 * n_pairs, full = n & ~15;
    const __mmask16 tm = (__mmask16)((1u << (n - full)) - 1u);
    for (int64_t hd = 0; hd < n_heads; hd++) {
        float *p = x + hd * head_stride;
        for (int32_t i = 0; i < full; i += 16) {
            const __m512 a = _mm512_loadu_ps(p + i);
            const __m512 sw = _mm512_permute_ps(a, 0xb1); /* (x1, x0, x3, x2, ...) */
            _mm512_storeu_ps(p + i, _mm512_fmadd_ps(a, _mm512_loadu_ps(cos2 + i),
                                                    _mm512_mul_ps(sw, _mm512_loadu_ps(sin2 + i))));
        }
        if (tm) {
            const __m512 a = _mm512_maskz_loadu_ps(tm, p + full);
            const __m512 sw = _mm512_permute_ps(a, 0xb1);
            const __m512 r = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(tm, cos2 + full),
                                             _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(tm, sin2 + full)));
            _mm512_mask_storeu_ps(p + full, tm, r);
        }
    }
}

/* ---- 16-bit head vectors ---- */

static inline __m512 lcx_ld16x16(const uint16_t *p, __mmask16 m, int bf16)
{
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (bf16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline void lcx_st16x16(uint16_t *p, __mmask16 m, __m512 x, int bf16)
{
    const __m256i h = bf16 ? lcx_bf16_round_avx512(x) : _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);
    if (m == 0xffff)
        _mm256_storeu_si256((__m256i *)p, h);
    else
        _mm256_mask_storeu_epi16(p, m, h);
}

static inline __attribute__((always_inline)) void
lcx_rot_neox16(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos, const float *sin,
               int32_t n_pairs, int bf16)
{
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *u = x + hd * head_stride, *v = u + n_pairs;
        for (int32_t i = 0; i < n_pairs; i += 16) {
            const __mmask16 m = n_pairs - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n_pairs - i)) - 1u);
            const __m512 a = lcx_ld16x16(u + i, m, bf16), b = lcx_ld16x16(v + i, m, bf16);
            const __m512 c = _mm512_maskz_loadu_ps(m, cos + i), s = _mm512_maskz_loadu_ps(m, sin + i);
            lcx_st16x16(u + i, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)), bf16);
            lcx_st16x16(v + i, m, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)), bf16);
        }
    }
}

void lcx_k_rope_rot_neox_x16__avx512(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                     const float *sin, int32_t n_pairs, int32_t bf16)
{
    if (bf16)
        lcx_rot_neox16(x, head_stride, n_heads, cos, sin, n_pairs, 1);
    else
        lcx_rot_neox16(x, head_stride, n_heads, cos, sin, n_pairs, 0);
}

static inline __attribute__((always_inline)) void
lcx_rot_il16(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos2, const float *sin2,
             int32_t n_pairs, int bf16)
{
    const int32_t n = 2 * n_pairs;
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *p = x + hd * head_stride;
        for (int32_t i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
            const __m512 a = lcx_ld16x16(p + i, m, bf16);
            const __m512 sw = _mm512_permute_ps(a, 0xb1);
            const __m512 r = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, cos2 + i),
                                             _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(m, sin2 + i)));
            lcx_st16x16(p + i, m, r, bf16);
        }
    }
}

void lcx_k_rope_rot_interleaved_x16__avx512(uint16_t *x, int64_t head_stride, int64_t n_heads,
                                            const float *cos2, const float *sin2, int32_t n_pairs, int32_t bf16)
{
    if (bf16)
        lcx_rot_il16(x, head_stride, n_heads, cos2, sin2, n_pairs, 1);
    else
        lcx_rot_il16(x, head_stride, n_heads, cos2, sin2, n_pairs, 0);
}
