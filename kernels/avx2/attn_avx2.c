/* AVX2 attention tiles: register blocks of 4 rows x 16 columns (8
 * accumulators), SLEEF expf8 for the softmax. Widths are multiples of 16. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "attn_avx2.c must be compiled with -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "avx2_fp16.h"

static inline __attribute__((always_inline)) void lcx_qk_block(const float *q, int64_t ldq, const float *kt,
                                                                int64_t ldk, int R, int32_t d, float *s, int64_t lds)
{
    __m256 acc[4][2];
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int32_t t = 0; t < d; t++) {
        const __m256 k0 = _mm256_loadu_ps(kt + t * ldk), k1 = _mm256_loadu_ps(kt + t * ldk + 8);
        for (int r = 0; r < R; r++) {
            const __m256 qb = _mm256_broadcast_ss(q + r * ldq + t);
            acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(s + r * lds, acc[r][0]);
        _mm256_storeu_ps(s + r * lds + 8, acc[r][1]);
    }
}

void lcx_k_attn_qk__avx2(const float *q, int64_t ldq, const float *kt, int64_t ldk, int32_t m, int32_t n16,
                         int32_t d, float *s, int64_t lds)
{
    for (int32_t c = 0; c < n16; c += 16) {
        int32_t i = 0;
        for (; i + 4 <= m; i += 4)
            lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, 4, d, s + i * lds + c, lds);
        for (; i < m; i++)
            lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, 1, d, s + i * lds + c, lds);
    }
}

static inline __attribute__((always_inline)) void lcx_pv_block(const float *p, int64_t ldp, const float *v,
                                                                int64_t ldv, int R, int32_t n, float *o, int64_t ldo)
{
    __m256 acc[4][2];
    for (int r = 0; r < R; r++) {
        acc[r][0] = _mm256_loadu_ps(o + r * ldo);
        acc[r][1] = _mm256_loadu_ps(o + r * ldo + 8);
    }
    for (int32_t j = 0; j < n; j++) {
        const __m256 v0 = _mm256_loadu_ps(v + j * ldv), v1 = _mm256_loadu_ps(v + j * ldv + 8);
        for (int r = 0; r < R; r++) {
            const __m256 pb = _mm256_broadcast_ss(p + r * ldp + j);
            acc[r][0] = _mm256_fmadd_ps(pb, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(pb, v1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(o + r * ldo, acc[r][0]);
        _mm256_storeu_ps(o + r * ldo + 8, acc[r][1]);
    }
}

void lcx_k_attn_pv__avx2(const float *p, int64_t ldp, const float *v, int64_t ldv, int32_t m, int32_t n16,
                         int32_t dv16, float *o, int64_t ldo)
{
    for (int32_t c = 0; c < dv16; c += 16) {
        int32_t i = 0;
        for (; i + 4 <= m; i += 4)
            lcx_pv_block(p + i * ldp, ldp, v + c, ldv, 4, n16, o + i * ldo + c, ldo);
        for (; i < m; i++)
            lcx_pv_block(p + i * ldp, ldp, v + c, ldv, 1, n16, o + i * ldo + c, ldo);
    }
}

float lcx_k_attn_exp__avx2(float *x, int32_t n16, float mx)
{
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (int32_t j = 0; j < n16; j += 8) {
        const __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        _mm256_storeu_ps(x + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

/* ---- direct (decode) products: 8-lane chunks, scalar tails ---- */

static inline __m256 lcx_ld8(const void *p, int32_t dt, int64_t off)
{
    if (dt == 0)
        return _mm256_loadu_ps((const float *)p + off);
    return lcx_load8_x16_avx2((const uint16_t *)p + off, dt == 2);
}

static inline float lcx_hsum8(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

static inline __attribute__((always_inline)) void lcx_qk_direct(const float *q, int64_t ldq, const void *k,
                                                                 int64_t kstride, int32_t dt, int32_t m, int32_t nk,
                                                                 int32_t d, float *s, int64_t lds)
{
    const int32_t d8 = d & ~7;
    for (int32_t j = 0; j < nk; j++) {
        __m256 acc[8];
        for (int32_t i = 0; i < m; i++)
            acc[i] = _mm256_setzero_ps();
        for (int32_t t = 0; t < d8; t += 8) {
            const __m256 kv = lcx_ld8(k, dt, j * kstride + t);
            for (int32_t i = 0; i < m; i++)
                acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i * ldq + t), kv, acc[i]);
        }
        for (int32_t i = 0; i < m; i++) {
            float r = lcx_hsum8(acc[i]);
            for (int32_t t = d8; t < d; t++)
                r += q[i * ldq + t] * lcx_load_elem(k, dt, (size_t)(j * kstride + t));
            s[i * lds + j] = r;
        }
    }
}

void lcx_k_attn_qk_direct__avx2(const float *q, int64_t ldq, const void *k, int64_t kstride, int32_t kdtype,
                                int32_t m, int32_t nk, int32_t d, float *s, int64_t lds)
{
    for (int32_t i0 = 0; i0 < m; i0 += 8) {
        const int32_t mm = m - i0 < 8 ? m - i0 : 8;
        if (kdtype == 2)
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 2, mm, nk, d, s + i0 * lds, lds);
        else if (kdtype == 1)
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 1, mm, nk, d, s + i0 * lds, lds);
        else
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 0, mm, nk, d, s + i0 * lds, lds);
    }
}

static inline __attribute__((always_inline)) void lcx_pv_direct(const float *p, int64_t ldp, const void *v,
                                                                 int64_t vstride, int32_t dt, int32_t m, int32_t nk,
                                                                 int32_t dv, float *o, int64_t ldo)
{
    const int32_t d16 = dv & ~15;
    for (int32_t c = 0; c < d16; c += 16)
        for (int32_t i0 = 0; i0 < m; i0 += 4) {
            const int32_t mm = m - i0 < 4 ? m - i0 : 4;
            __m256 acc[4][2];
            for (int32_t i = 0; i < mm; i++) {
                acc[i][0] = _mm256_loadu_ps(o + (i0 + i) * ldo + c);
                acc[i][1] = _mm256_loadu_ps(o + (i0 + i) * ldo + c + 8);
            }
            for (int32_t j = 0; j < nk; j++) {
                const __m256 v0 = lcx_ld8(v, dt, j * vstride + c), v1 = lcx_ld8(v, dt, j * vstride + c + 8);
                for (int32_t i = 0; i < mm; i++) {
                    const __m256 pb = _mm256_broadcast_ss(p + (i0 + i) * ldp + j);
                    acc[i][0] = _mm256_fmadd_ps(pb, v0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(pb, v1, acc[i][1]);
                }
            }
            for (int32_t i = 0; i < mm; i++) {
                _mm256_storeu_ps(o + (i0 + i) * ldo + c, acc[i][0]);
                _mm256_storeu_ps(o + (i0 + i) * ldo + c + 8, acc[i][1]);
            }
        }
    for (int32_t j = 0; j < nk && d16 < dv; j++)
        for (int32_t i = 0; i < m; i++)
            for (int32_t c = d16; c < dv; c++)
                o[i * ldo + c] += p[i * ldp + j] * lcx_load_elem(v, dt, (size_t)(j * vstride + c));
}

void lcx_k_attn_pv_direct__avx2(const float *p, int64_t ldp, const void *v, int64_t vstride, int32_t vdtype,
                                int32_t m, int32_t nk, int32_t dv, float *o, int64_t ldo)
{
    if (vdtype == 2)
        lcx_pv_direct(p, ldp, v, vstride, 2, m, nk, dv, o, ldo);
    else if (vdtype == 1)
        lcx_pv_direct(p, ldp, v, vstride, 1, m, nk, dv, o, ldo);
    else
        lcx_pv_direct(p, ldp, v, vstride, 0, m, nk, dv, o, ldo);
}
