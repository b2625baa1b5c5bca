/* AVX2 attention tiles: register blocks of 4 rows x 16 columns (8
 * accumulators), SLEEF expf8 for the softmax. Widths are multiples of 16. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "attn_avx2.c must be compiled with -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/prefetch.h"
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

float lcx_k_attn_max__avx2(const float *x, int32_t n16)
{
    __m256 mx = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
    for (int32_t j = 0; j < n16; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        mx = _mm256_max_ps(mx, v);
    }
    if (_mm256_movemask_ps(nan))
        return NAN;
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

/* ---- direct (decode) products: 8-lane chunks, scalar tails ----
 * While on key j the kernels fetch the same bytes of key j + LCX_ATTN_PF_KEYS
 * into L2 (below nk_avail): the next 64-key tile's rows of this head, which
 * the hardware prefetchers miss (kv heads interleave, so a head's rows are
 * far apart). */

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

/* M rows (a compile-time constant after inlining, so the accumulators stay
 * in registers) against every key, one key at a time */
static inline __attribute__((always_inline)) void lcx_qk_direct(const float *q, int64_t ldq, const void *k,
                                                                 int64_t kstride, int32_t dt, int M, int32_t nk,
                                                                 int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    const int32_t d8 = d & ~7;
    const int64_t es = dt == 0 ? 4 : 2;
    for (int32_t j = 0; j < nk; j++) {
        if (j + LCX_ATTN_PF_KEYS < nk_avail)
            lcx_pf_bytes((const char *)k + (size_t)((j + LCX_ATTN_PF_KEYS) * kstride * es), d * es);
        __m256 acc[4];
        for (int i = 0; i < M; i++)
            acc[i] = _mm256_setzero_ps();
        for (int32_t t = 0; t < d8; t += 8) {
            const __m256 kv = lcx_ld8(k, dt, j * kstride + t);
            for (int i = 0; i < M; i++)
                acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i * ldq + t), kv, acc[i]);
        }
        for (int i = 0; i < M; i++) {
            float r = lcx_hsum8(acc[i]);
            for (int32_t t = d8; t < d; t++)
                r += q[i * ldq + t] * lcx_load_elem(k, dt, (size_t)(j * kstride + t));
            s[i * lds + j] = r;
        }
    }
}

/* 4 rows x 2 keys per step (8 accumulators, 4 query and 2 key vectors: 14
 * of the 16 registers); the 8 sums are reduced together by one
 * horizontal-add tree. dt is a constant after inlining; d a multiple of 8. */
static inline __attribute__((always_inline)) void lcx_qk_direct4x2(const float *q, int64_t ldq, const void *k,
                                                                    int64_t kstride, int32_t dt, int32_t nk2,
                                                                    int32_t nk_avail, int32_t d, float *s,
                                                                    int64_t lds)
{
    const int64_t es = dt == 0 ? 4 : 2;
    for (int32_t j = 0; j < nk2; j += 2) {
        for (int jj = 0; jj < 2; jj++)
            if (j + jj + LCX_ATTN_PF_KEYS < nk_avail)
                lcx_pf_bytes((const char *)k + (size_t)((j + jj + LCX_ATTN_PF_KEYS) * kstride * es), d * es);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int32_t t = 0; t < d; t += 8) {
            const __m256 k0 = lcx_ld8(k, dt, j * kstride + t), k1 = lcx_ld8(k, dt, (j + 1) * kstride + t);
            const __m256 q0 = _mm256_loadu_ps(q + t), q1 = _mm256_loadu_ps(q + ldq + t);
            const __m256 q2 = _mm256_loadu_ps(q + 2 * ldq + t), q3 = _mm256_loadu_ps(q + 3 * ldq + t);
            a0 = _mm256_fmadd_ps(q0, k0, a0);
            a1 = _mm256_fmadd_ps(q1, k0, a1);
            a2 = _mm256_fmadd_ps(q2, k0, a2);
            a3 = _mm256_fmadd_ps(q3, k0, a3);
            a4 = _mm256_fmadd_ps(q0, k1, a4);
            a5 = _mm256_fmadd_ps(q1, k1, a5);
            a6 = _mm256_fmadd_ps(q2, k1, a6);
            a7 = _mm256_fmadd_ps(q3, k1, a7);
        }
        /* per 128-bit lane: the lane sums of a0..a3 (u0) and a4..a7 (u1);
         * adding the two lanes gives rows 0..3 of key j, then of key j + 1 */
        const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
        float r[8];
        _mm256_storeu_ps(r, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31)));
        for (int i = 0; i < 4; i++) {
            s[i * lds + j] = r[i];
            s[i * lds + j + 1] = r[4 + i];
        }
    }
}

#define LCX_QKD(M)                                                                           \
    do {                                                                                     \
        if (kdtype == 2)                                                                     \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 2, M, nk, nk_avail, d, s + i0 * lds, lds); \
        else if (kdtype == 1)                                                                \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 1, M, nk, nk_avail, d, s + i0 * lds, lds); \
        else                                                                                 \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 0, M, nk, nk_avail, d, s + i0 * lds, lds); \
    } while (0)

void lcx_k_attn_qk_direct__avx2(const float *q, int64_t ldq, const void *k, int64_t kstride, int32_t kdtype,
                                int32_t m, int32_t nk, int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    int32_t i0 = 0;
    if ((d & 7) == 0 && nk >= 2) {
        const int32_t nk2 = nk & ~1;
        for (; i0 + 4 <= m; i0 += 4) {
            if (kdtype == 2)
                lcx_qk_direct4x2(q + i0 * ldq, ldq, k, kstride, 2, nk2, nk_avail, d, s + i0 * lds, lds);
            else if (kdtype == 1)
                lcx_qk_direct4x2(q + i0 * ldq, ldq, k, kstride, 1, nk2, nk_avail, d, s + i0 * lds, lds);
            else
                lcx_qk_direct4x2(q + i0 * ldq, ldq, k, kstride, 0, nk2, nk_avail, d, s + i0 * lds, lds);
        }
        if (nk2 < nk && i0 > 0) { /* the last key of those rows */
            const char *kt = (const char *)k + (size_t)(nk2 * kstride) * (kdtype == 0 ? 4 : 2);
            lcx_k_attn_qk_direct__avx2(q, ldq, kt, kstride, kdtype, i0, nk - nk2, nk_avail - nk2, d, s + nk2, lds);
        }
    }
    for (; i0 + 4 <= m; i0 += 4)
        LCX_QKD(4);
    switch (m - i0) {
    case 3: LCX_QKD(3); break;
    case 2: LCX_QKD(2); break;
    case 1: LCX_QKD(1); break;
    default: break;
    }
}

/* M rows (a constant after inlining: the accumulators stay in registers)
 * x 16 columns of o at c, over every key */
static inline __attribute__((always_inline)) void lcx_pv_rows(const float *p, int64_t ldp, const void *v,
                                                               int64_t vstride, int32_t dt, int M, int32_t nk,
                                                               int32_t nk_avail, int32_t c, float *o, int64_t ldo)
{
    const int64_t es = dt == 0 ? 4 : 2;
    const int pf = ((c * es) & 63) == 0; /* this block starts a cache line of the row */
    __m256 acc[4][2];
    for (int i = 0; i < M; i++) {
        acc[i][0] = _mm256_loadu_ps(o + i * ldo + c);
        acc[i][1] = _mm256_loadu_ps(o + i * ldo + c + 8);
    }
    for (int32_t j = 0; j < nk; j++) {
        if (pf && j + LCX_ATTN_PF_KEYS < nk_avail)
            _mm_prefetch((const char *)v + (size_t)(((j + LCX_ATTN_PF_KEYS) * vstride + c) * es), _MM_HINT_T1);
        const __m256 v0 = lcx_ld8(v, dt, j * vstride + c), v1 = lcx_ld8(v, dt, j * vstride + c + 8);
        for (int i = 0; i < M; i++) {
            const __m256 pb = _mm256_broadcast_ss(p + i * ldp + j);
            acc[i][0] = _mm256_fmadd_ps(pb, v0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(pb, v1, acc[i][1]);
        }
    }
    for (int i = 0; i < M; i++) {
        _mm256_storeu_ps(o + i * ldo + c, acc[i][0]);
        _mm256_storeu_ps(o + i * ldo + c + 8, acc[i][1]);
    }
}

static inline __attribute__((always_inline)) void lcx_pv_direct(const float *p, int64_t ldp, const void *v,
                                                                 int64_t vstride, int32_t dt, int32_t m, int32_t nk,
                                                                 int32_t nk_avail, int32_t dv, float *o, int64_t ldo)
{
    const int32_t d16 = dv & ~15;
    for (int32_t c = 0; c < d16; c += 16) {
        int32_t i0 = 0;
        for (; i0 + 4 <= m; i0 += 4)
            lcx_pv_rows(p + i0 * ldp, ldp, v, vstride, dt, 4, nk, nk_avail, c, o + i0 * ldo, ldo);
        switch (m - i0) {
        case 3: lcx_pv_rows(p + i0 * ldp, ldp, v, vstride, dt, 3, nk, nk_avail, c, o + i0 * ldo, ldo); break;
        case 2: lcx_pv_rows(p + i0 * ldp, ldp, v, vstride, dt, 2, nk, nk_avail, c, o + i0 * ldo, ldo); break;
        case 1: lcx_pv_rows(p + i0 * ldp, ldp, v, vstride, dt, 1, nk, nk_avail, c, o + i0 * ldo, ldo); break;
        default: break;
        }
    }
    for (int32_t j = 0; j < nk && d16 < dv; j++)
        for (int32_t i = 0; i < m; i++)
            for (int32_t c = d16; c < dv; c++)
                o[i * ldo + c] += p[i * ldp + j] * lcx_load_elem(v, dt, (size_t)(j * vstride + c));
}

void lcx_k_attn_pv_direct__avx2(const float *p, int64_t ldp, const void *v, int64_t vstride, int32_t vdtype,
                                int32_t m, int32_t nk, int32_t nk_avail, int32_t dv, float *o, int64_t ldo)
{
    if (vdtype == 2)
        lcx_pv_direct(p, ldp, v, vstride, 2, m, nk, nk_avail, dv, o, ldo);
    else if (vdtype == 1)
        lcx_pv_direct(p, ldp, v, vstride, 1, m, nk, nk_avail, dv, o, ldo);
    else
        lcx_pv_direct(p, ldp, v, vstride, 0, m, nk, nk_avail, dv, o, ldo);
}
