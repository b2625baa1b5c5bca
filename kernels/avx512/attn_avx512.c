/* AVX-512 attention tiles: register blocks of 4 rows x 64 columns (16
 * accumulators), SLEEF expf16 for the softmax. */
#if !defined(__AVX512F__)
#error "attn_avx512.c must be compiled with the AVX-512 flags"
#endif
#include <immintrin.h>
#include <sleef.h>

#include "../ktable.h"

/* s[r][0..16NV) = sum_t q[r][t] kt[t][0..16NV) for R rows */
static inline __attribute__((always_inline)) void lcx_qk_block(const float *q, int64_t ldq, const float *kt,
                                                                int64_t ldk, int R, int NV, int32_t d, float *s,
                                                                int64_t lds)
{
    __m512 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_setzero_ps();
    for (int32_t t = 0; t < d; t++) {
        __m512 kv[4];
        for (int v = 0; v < NV; v++)
            kv[v] = _mm512_loadu_ps(kt + t * ldk + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 qb = _mm512_set1_ps(q[r * ldq + t]);
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(qb, kv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(s + r * lds + 16 * v, acc[r][v]);
}

#define LCX_QK_NV(R)                                                                             \
    switch (nv) {                                                                                \
    case 4: lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, R, 4, d, s + i * lds + c, lds); break;   \
    case 3: lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, R, 3, d, s + i * lds + c, lds); break;   \
    case 2: lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, R, 2, d, s + i * lds + c, lds); break;   \
    default: lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, R, 1, d, s + i * lds + c, lds); break;  \
    }

void lcx_k_attn_qk__avx512(const float *q, int64_t ldq, const float *kt, int64_t ldk, int32_t m, int32_t n16,
                           int32_t d, float *s, int64_t lds)
{
    for (int32_t c = 0; c < n16; c += 64) {
        const int nv = (n16 - c) / 16 < 4 ? (n16 - c) / 16 : 4;
        int32_t i = 0;
        for (; i + 4 <= m; i += 4)
            LCX_QK_NV(4)
        for (; i < m; i++)
            LCX_QK_NV(1)
    }
}

/* o[r][0..16NV) += sum_j p[r][j] v[j][0..16NV) */
static inline __attribute__((always_inline)) void lcx_pv_block(const float *p, int64_t ldp, const float *v,
                                                                int64_t ldv, int R, int NV, int32_t n, float *o,
                                                                int64_t ldo)
{
    __m512 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int x = 0; x < NV; x++)
            acc[r][x] = _mm512_loadu_ps(o + r * ldo + 16 * x);
    for (int32_t j = 0; j < n; j++) {
        __m512 vv[4];
        for (int x = 0; x < NV; x++)
            vv[x] = _mm512_loadu_ps(v + j * ldv + 16 * x);
        for (int r = 0; r < R; r++) {
            const __m512 pb = _mm512_set1_ps(p[r * ldp + j]);
            for (int x = 0; x < NV; x++)
                acc[r][x] = _mm512_fmadd_ps(pb, vv[x], acc[r][x]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int x = 0; x < NV; x++)
            _mm512_storeu_ps(o + r * ldo + 16 * x, acc[r][x]);
}

#define LCX_PV_NV(R)                                                                              \
    switch (nv) {                                                                                 \
    case 4: lcx_pv_block(p + i * ldp, ldp, v + c, ldv, R, 4, n16, o + i * ldo + c, ldo); break;   \
    case 3: lcx_pv_block(p + i * ldp, ldp, v + c, ldv, R, 3, n16, o + i * ldo + c, ldo); break;   \
    case 2: lcx_pv_block(p + i * ldp, ldp, v + c, ldv, R, 2, n16, o + i * ldo + c, ldo); break;   \
    default: lcx_pv_block(p + i * ldp, ldp, v + c, ldv, R, 1, n16, o + i * ldo + c, ldo); break;  \
    }

void lcx_k_attn_pv__avx512(const float *p, int64_t ldp, const float *v, int64_t ldv, int32_t m, int32_t n16,
                           int32_t dv16, float *o, int64_t ldo)
{
    for (int32_t c = 0; c < dv16; c += 64) {
        const int nv = (dv16 - c) / 16 < 4 ? (dv16 - c) / 16 : 4;
        int32_t i = 0;
        for (; i + 4 <= m; i += 4)
            LCX_PV_NV(4)
        for (; i < m; i++)
            LCX_PV_NV(1)
    }
}

float lcx_k_attn_exp__avx512(float *x, int32_t n16, float mx)
{
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    for (int32_t j = 0; j < n16; j += 16) {
        const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        _mm512_storeu_ps(x + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

/* ---- direct (decode) products ---- */

#define LCX_PF_DIST 8 /* keys fetched ahead */

static inline __m512 lcx_ld16(const void *p, int32_t dt, int64_t off, __mmask16 m)
{
    if (dt == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)p + off);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + off);
    if (dt == 2)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* M rows (a compile-time constant after inlining, so the accumulators
 * stay in registers) against every key */
static inline __attribute__((always_inline)) void lcx_qk_direct(const float *q, int64_t ldq, const void *k,
                                                                 int64_t kstride, int32_t dt, int M, int32_t nk,
                                                                 int32_t d, float *s, int64_t lds)
{
    const int32_t d16 = d & ~15;
    const __mmask16 tail = (__mmask16)((1u << (d - d16)) - 1u);
    const int64_t rowb = (int64_t)d * (dt == 0 ? 4 : 2);
    for (int32_t j = 0; j < nk; j++) {
        /* cache rows are far apart (kv heads interleave): fetch ahead */
        const char *ahead = (const char *)k + (size_t)((j + LCX_PF_DIST) * kstride) * (dt == 0 ? 4 : 2);
        if (j + LCX_PF_DIST < nk)
            for (int64_t b = 0; b < rowb; b += 64)
                _mm_prefetch(ahead + b, _MM_HINT_T0);
        __m512 acc[8];
        for (int i = 0; i < M; i++)
            acc[i] = _mm512_setzero_ps();
        int32_t t = 0;
        for (; t < d16; t += 16) {
            const __m512 kv = lcx_ld16(k, dt, j * kstride + t, 0xffff);
            for (int i = 0; i < M; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(q + i * ldq + t), kv, acc[i]);
        }
        if (tail) {
            const __m512 kv = lcx_ld16(k, dt, j * kstride + t, tail);
            for (int i = 0; i < M; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + i * ldq + t), kv, acc[i]);
        }
        for (int i = 0; i < M; i++)
            s[i * lds + j] = _mm512_reduce_add_ps(acc[i]);
    }
}

#define LCX_QKD(M)                                                                           \
    do {                                                                                     \
        if (kdtype == 2)                                                                     \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 2, M, nk, d, s + i0 * lds, lds);    \
        else if (kdtype == 1)                                                                \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 1, M, nk, d, s + i0 * lds, lds);    \
        else                                                                                 \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 0, M, nk, d, s + i0 * lds, lds);    \
    } while (0)

/* 16 accumulators -> one vector of their 16 sums: a[n] lands in element
 * 4 * (n % 4) + n / 4 (128-bit lane n % 4, slot n / 4). A reduction tree
 * costs ~3 instructions per sum instead of ~8 for a reduce per vector. */
static inline __m512 lcx_reduce16(const __m512 *a)
{
    __m512 r[8], w[4], p[2];
    for (int x = 0; x < 8; x++) /* halves: lanes 0,1 of a[2x] + 2,3 | same for a[2x+1] */
        r[x] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * x], a[2 * x + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(a[2 * x], a[2 * x + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int x = 0; x < 4; x++) /* lane L of w[x] = 4 partial sums of a[4x + L] */
        w[x] = _mm512_add_ps(_mm512_shuffle_f32x4(r[2 * x], r[2 * x + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(r[2 * x], r[2 * x + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int x = 0; x < 2; x++)
        p[x] = _mm512_add_ps(_mm512_unpacklo_ps(w[2 * x], w[2 * x + 1]), _mm512_unpackhi_ps(w[2 * x], w[2 * x + 1]));
    return _mm512_add_ps(_mm512_shuffle_ps(p[0], p[1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(p[0], p[1], _MM_SHUFFLE(3, 2, 3, 2)));
}

/* 4 rows x 4 keys per step (16 accumulators), reduced together; dt is a
 * constant after inlining; d a multiple of 16 */
static inline __attribute__((always_inline)) void lcx_qk_direct4x4(const float *q, int64_t ldq, const void *k,
                                                                    int64_t kstride, int32_t dt, int32_t nk4,
                                                                    int32_t d, float *s, int64_t lds)
{
    const int64_t es = dt == 0 ? 4 : 2, rowb = (int64_t)d * es;
    for (int32_t j = 0; j < nk4; j += 4) {
        if (j + LCX_PF_DIST < nk4)
            for (int jj = 0; jj < 4; jj++)
                for (int64_t b = 0; b < rowb; b += 64)
                    _mm_prefetch((const char *)k + (size_t)((j + LCX_PF_DIST + jj) * kstride) * (size_t)es + b,
                                 _MM_HINT_T0);
        __m512 acc[16];
        for (int n = 0; n < 16; n++)
            acc[n] = _mm512_setzero_ps();
        for (int32_t t = 0; t < d; t += 16) {
            const __m512 q0 = _mm512_loadu_ps(q + t), q1 = _mm512_loadu_ps(q + ldq + t);
            const __m512 q2 = _mm512_loadu_ps(q + 2 * ldq + t), q3 = _mm512_loadu_ps(q + 3 * ldq + t);
            for (int jj = 0; jj < 4; jj++) { /* acc[4 * key + row] */
                const __m512 kv = lcx_ld16(k, dt, (j + jj) * kstride + t, 0xffff);
                acc[4 * jj + 0] = _mm512_fmadd_ps(q0, kv, acc[4 * jj + 0]);
                acc[4 * jj + 1] = _mm512_fmadd_ps(q1, kv, acc[4 * jj + 1]);
                acc[4 * jj + 2] = _mm512_fmadd_ps(q2, kv, acc[4 * jj + 2]);
                acc[4 * jj + 3] = _mm512_fmadd_ps(q3, kv, acc[4 * jj + 3]);
            }
        }
        /* element 4 * row + key of the sums: row i's 4 keys are lane i */
        const __m512 sum = lcx_reduce16(acc);
        _mm_storeu_ps(s + j, _mm512_castps512_ps128(sum));
        _mm_storeu_ps(s + lds + j, _mm512_extractf32x4_ps(sum, 1));
        _mm_storeu_ps(s + 2 * lds + j, _mm512_extractf32x4_ps(sum, 2));
        _mm_storeu_ps(s + 3 * lds + j, _mm512_extractf32x4_ps(sum, 3));
    }
}

void lcx_k_attn_qk_direct__avx512(const float *q, int64_t ldq, const void *k, int64_t kstride, int32_t kdtype,
                                  int32_t m, int32_t nk, int32_t d, float *s, int64_t lds)
{
    int32_t i0 = 0;
    if ((d & 15) == 0 && nk >= 4) {
        const int32_t nk4 = nk & ~3;
        for (; i0 + 4 <= m; i0 += 4) {
            if (kdtype == 2)
                lcx_qk_direct4x4(q + i0 * ldq, ldq, k, kstride, 2, nk4, d, s + i0 * lds, lds);
            else if (kdtype == 1)
                lcx_qk_direct4x4(q + i0 * ldq, ldq, k, kstride, 1, nk4, d, s + i0 * lds, lds);
            else
                lcx_qk_direct4x4(q + i0 * ldq, ldq, k, kstride, 0, nk4, d, s + i0 * lds, lds);
        }
        if (nk4 < nk && i0 > 0) { /* the last keys of those rows */
            const char *kt = (const char *)k + (size_t)(nk4 * kstride) * (kdtype == 0 ? 4 : 2);
            lcx_k_attn_qk_direct__avx512(q, ldq, kt, kstride, kdtype, i0, nk - nk4, d, s + nk4, lds);
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

/* M rows x 64 columns of o (16 accumulators, constants after inlining);
 * masked loads only on the last column block */
static inline __attribute__((always_inline)) void lcx_pv_direct(const float *p, int64_t ldp, const void *v,
                                                                 int64_t vstride, int32_t dt, int M, int32_t nk,
                                                                 int32_t c, const __mmask16 *mk, float *o,
                                                                 int64_t ldo)
{
    __m512 acc[4][4];
    for (int i = 0; i < M; i++)
        for (int x = 0; x < 4; x++)
            acc[i][x] = _mm512_maskz_loadu_ps(mk[x], o + i * ldo + c + 16 * x);
    for (int32_t j = 0; j < nk; j++) {
        if (j + LCX_PF_DIST < nk)
            _mm_prefetch((const char *)v + (size_t)((j + LCX_PF_DIST) * vstride + c) * (dt == 0 ? 4 : 2), _MM_HINT_T0),
                _mm_prefetch((const char *)v + (size_t)((j + LCX_PF_DIST) * vstride + c) * (dt == 0 ? 4 : 2) + 64,
                             _MM_HINT_T0);
        __m512 vv[4];
        for (int x = 0; x < 4; x++)
            vv[x] = lcx_ld16(v, dt, j * vstride + c + 16 * x, mk[x]);
        for (int i = 0; i < M; i++) {
            const __m512 pb = _mm512_set1_ps(p[i * ldp + j]);
            for (int x = 0; x < 4; x++)
                acc[i][x] = _mm512_fmadd_ps(pb, vv[x], acc[i][x]);
        }
    }
    for (int i = 0; i < M; i++)
        for (int x = 0; x < 4; x++) {
            if (mk[x] == 0xffff) /* masked stores are slow on some cores: only for the tail */
                _mm512_storeu_ps(o + i * ldo + c + 16 * x, acc[i][x]);
            else
                _mm512_mask_storeu_ps(o + i * ldo + c + 16 * x, mk[x], acc[i][x]);
        }
}

#define LCX_PVD(M)                                                                                        \
    do {                                                                                                  \
        if (vdtype == 2)                                                                                  \
            lcx_pv_direct(p + i0 * ldp, ldp, v, vstride, 2, M, nk, c, mk, o + i0 * ldo, ldo);            \
        else if (vdtype == 1)                                                                             \
            lcx_pv_direct(p + i0 * ldp, ldp, v, vstride, 1, M, nk, c, mk, o + i0 * ldo, ldo);            \
        else                                                                                              \
            lcx_pv_direct(p + i0 * ldp, ldp, v, vstride, 0, M, nk, c, mk, o + i0 * ldo, ldo);            \
    } while (0)

void lcx_k_attn_pv_direct__avx512(const float *p, int64_t ldp, const void *v, int64_t vstride, int32_t vdtype,
                                  int32_t m, int32_t nk, int32_t dv, float *o, int64_t ldo)
{
    for (int32_t c = 0; c < dv; c += 64) {
        __mmask16 mk[4];
        for (int x = 0; x < 4; x++) {
            const int32_t left = dv - (c + 16 * x);
            mk[x] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1u) : (__mmask16)0;
        }
        int32_t i0 = 0;
        for (; i0 + 4 <= m; i0 += 4)
            LCX_PVD(4);
        switch (m - i0) {
        case 3: LCX_PVD(3); break;
        case 2: LCX_PVD(2); break;
        case 1: LCX_PVD(1); break;
        default: break;
        }
    }
}
