/* AVX2 RoPE kernels: 8 pairs per step, SLEEF sincosf8 (u10). */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "rope_avx2.c must be compiled with -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "../common/rope_common.h"
#include "avx2_fp16.h"

/* 4 precise angles; pos < 2^31, so pos * turns mod 2^64 needs two 32x32->64 products */
static inline __m256d lcx_angle4(__m256i pv, const uint64_t *turns)
{
    const __m256i tau = _mm256_loadu_si256((const __m256i *)turns);
    const __m256i lo = _mm256_mul_epu32(pv, tau);
    const __m256i hi = _mm256_slli_epi64(_mm256_mul_epu32(pv, _mm256_srli_epi64(tau, 32)), 32);
    const __m256i t = _mm256_add_epi64(lo, hi);
    const __m256i odd = _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
    return _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(odd)), _mm256_set1_pd(LCX_ROPE_TURN32));
}

void lcx_k_rope_cossin__avx2(const uint64_t *turns, int64_t pos, int32_t n_pairs, float a, float *cos,
                             float *sin)
{
    const __m256i pv = _mm256_set1_epi64x(pos);
    const __m256 va = _mm256_set1_ps(a);
    for (int32_t i = 0; i < n_pairs; i += 8) {
        const __m256d a0 = lcx_angle4(pv, turns + i), a1 = lcx_angle4(pv, turns + i + 4);
        const __m128 h0 = _mm256_cvtpd_ps(a0), h1 = _mm256_cvtpd_ps(a1);
        const __m128 l0 = _mm256_cvtpd_ps(_mm256_sub_pd(a0, _mm256_cvtps_pd(h0)));
        const __m128 l1 = _mm256_cvtpd_ps(_mm256_sub_pd(a1, _mm256_cvtps_pd(h1)));
        const __m256 h = _mm256_set_m128(h1, h0), l = _mm256_set_m128(l1, l0);
        const Sleef___m256_2 sc = Sleef_sincosf8_u10avx2(h);
        const __m256 s = _mm256_fmadd_ps(l, sc.y, sc.x), c = _mm256_fnmadd_ps(l, sc.x, sc.y);
        _mm256_storeu_ps(cos + i, _mm256_mul_ps(va, c));
        _mm256_storeu_ps(sin + i, _mm256_mul_ps(va, s));
    }
}

void lcx_k_rope_cossin_f32__avx2(const float *theta, float pos, int32_t n_pairs, float a, float *cos,
                                 float *sin)
{
    const __m256 vp = _mm256_set1_ps(pos), va = _mm256_set1_ps(a);
    for (int32_t i = 0; i < n_pairs; i += 8) {
        const Sleef___m256_2 sc = Sleef_sincosf8_u10avx2(_mm256_mul_ps(vp, _mm256_loadu_ps(theta + i)));
        _mm256_storeu_ps(cos + i, _mm256_mul_ps(sc.y, va));
        _mm256_storeu_ps(sin + i, _mm256_mul_ps(sc.x, va));
    }
}

void lcx_k_rope_rot_neox_f32__avx2(float *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                   const float *sin, int32_t n_pairs)
{
    for (int64_t hd = 0; hd < n_heads; hd++) {
        float *u = x + hd * head_stride, *v = u + n_pairs;
        int32_t i = 0;
        for (; i + 8 <= n_pairs; i += 8) {
            const __m256 a = _mm256_loadu_ps(u + i), b = _mm256_loadu_ps(v + i);
            const __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
            _mm256_storeu_ps(u + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
            _mm256_storeu_ps(v + i, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)));
        }
        for (; i < n_pairs; i++) {
            const float a = u[i], b = v[i];
            u[i] = a * cos[i] - b * sin[i];
            v[i] = b * cos[i] + a * sin[i];
        }
    }
}

void lcx_k_rope_rot_interleaved_f32__avx2(float *x, int64_t head_stride, int64_t n_heads,
                                          const float *cos2, const float *sin2, int32_t n_pairs)
{
    const int32_t n = 2 * n_pairs;
    for (int64_t hd = 0; hd < n_heads; hd++) {
        float *p = x + hd * head_stride;
        int32_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 a = _mm256_loadu_ps(p + i);
            const __m256 sw = _mm256_permute_ps(a, 0xb1);
            _mm256_storeu_ps(p + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(cos2 + i),
                                                    _mm256_mul_ps(sw, _mm256_loadu_ps(sin2 + i))));
        }
        for (; i < n; i += 2) {
            const float a = p[i], b = p[i + 1];
            p[i] = a * cos2[i] + b * sin2[i];
            p[i + 1] = b * cos2[i + 1] + a * sin2[i + 1];
        }
    }
}

/* ---- 16-bit head vectors ---- */

static inline __attribute__((always_inline)) void
lcx_rot_neox16(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos, const float *sin,
               int32_t n_pairs, int bf16)
{
    for (int64_t hd = 0; hd < n_heads; hd++) {
        uint16_t *u = x + hd * head_stride, *v = u + n_pairs;
        int32_t i = 0;
        for (; i + 8 <= n_pairs; i += 8) {
            const __m256 a = lcx_load8_x16_avx2(u + i, bf16), b = lcx_load8_x16_avx2(v + i, bf16);
            const __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
            lcx_store8_x16_avx2(u + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)), bf16);
            lcx_store8_x16_avx2(v + i, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)), bf16);
        }
        for (; i < n_pairs; i++) {
            const float a = lcx_load_elem(u, bf16 ? 2 : 1, (size_t)i), b = lcx_load_elem(v, bf16 ? 2 : 1, (size_t)i);
            lcx_store_elem(u, bf16 ? 2 : 1, (size_t)i, a * cos[i] - b * sin[i]);
            lcx_store_elem(v, bf16 ? 2 : 1, (size_t)i, b * cos[i] + a * sin[i]);
        }
    }
}

void lcx_k_rope_rot_neox_x16__avx2(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos,
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
        int32_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 a = lcx_load8_x16_avx2(p + i, bf16);
            const __m256 sw = _mm256_permute_ps(a, 0xb1);
            lcx_store8_x16_avx2(p + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(cos2 + i),
                                                       _mm256_mul_ps(sw, _mm256_loadu_ps(sin2 + i))), bf16);
        }
        for (; i < n; i += 2) {
            const float a = lcx_load_elem(p, bf16 ? 2 : 1, (size_t)i), b = lcx_load_elem(p, bf16 ? 2 : 1, (size_t)i + 1);
            lcx_store_elem(p, bf16 ? 2 : 1, (size_t)i, a * cos2[i] + b * sin2[i]);
            lcx_store_elem(p, bf16 ? 2 : 1, (size_t)i + 1, b * cos2[i + 1] + a * sin2[i + 1]);
        }
    }
}

void lcx_k_rope_rot_interleaved_x16__avx2(uint16_t *x, int64_t head_stride, int64_t n_heads,
                                          const float *cos2, const float *sin2, int32_t n_pairs, int32_t bf16)
{
    if (bf16)
        lcx_rot_il16(x, head_stride, n_heads, cos2, sin2, n_pairs, 1);
    else
        lcx_rot_il16(x, head_stride, n_heads, cos2, sin2, n_pairs, 0);
}
