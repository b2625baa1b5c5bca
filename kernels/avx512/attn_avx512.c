/* AVX-512 attention tiles: register blocks of 4 rows x 64 columns (16
 * accumulators), SLEEF expf16 for the softmax. */
#if !defined(__AVX512F__)
#error "attn_avx512.c must be compiled with the AVX-512 flags"
#endif
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/prefetch.h"

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

float lcx_k_attn_max__avx512(const float *x, int32_t n16)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (int32_t j = 0; j < n16; j += 16) {
        const __m512 v = _mm512_loadu_ps(x + j);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        mx = _mm512_max_ps(mx, v);
    }
    return nan ? NAN : _mm512_reduce_max_ps(mx);
}

/* ---- direct (decode) products ----
 *
 * Cache rows of one kv head are far apart (the kv heads of a position
 * interleave), which the hardware prefetchers follow poorly. Each kernel
 * therefore fetches, while it works on key j, the same bytes of key
 * j + LCX_ATTN_PF_KEYS into L2 (when that row is below nk_avail): with the
 * driver's 64-key tiles that is exactly what the next tile's call on this
 * head will read. Measured on Zen 4 over a 64k-key bf16 cache: 1.5x one
 * thread, 1.3x two; L1 prefetches (T0) at that distance were 2x slower. */

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
                                                                 int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    const int32_t d16 = d & ~15;
    const __mmask16 tail = (__mmask16)((1u << (d - d16)) - 1u);
    const int64_t es = dt == 0 ? 4 : 2;
    for (int32_t j = 0; j < nk; j++) {
        if (j + LCX_ATTN_PF_KEYS < nk_avail)
            lcx_pf_bytes((const char *)k + (size_t)((j + LCX_ATTN_PF_KEYS) * kstride * es), d * es);
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

#define LCX_QKD(M)                                                                                     \
    do {                                                                                               \
        if (kdtype == 2)                                                                               \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 2, M, nk, nk_avail, d, s + i0 * lds, lds);    \
        else if (kdtype == 1)                                                                          \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 1, M, nk, nk_avail, d, s + i0 * lds, lds);    \
        else                                                                                           \
            lcx_qk_direct(q + i0 * ldq, ldq, k, kstride, 0, M, nk, nk_avail, d, s + i0 * lds, lds);    \
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

/* the 4 x 4 sums of a block (lcx_reduce16 order) into rows of s */
static inline void lcx_store4x4(__m512 sum, float *s, int64_t lds)
{
    _mm_storeu_ps(s, _mm512_castps512_ps128(sum));
    _mm_storeu_ps(s + lds, _mm512_extractf32x4_ps(sum, 1));
    _mm_storeu_ps(s + 2 * lds, _mm512_extractf32x4_ps(sum, 2));
    _mm_storeu_ps(s + 3 * lds, _mm512_extractf32x4_ps(sum, 3));
}

/* 4 rows x 4 keys per step (16 accumulators), reduced together; dt is a
 * constant after inlining; d a multiple of 16 */
static inline __attribute__((always_inline)) void lcx_qk_direct4x4(const float *q, int64_t ldq, const void *k,
                                                                    int64_t kstride, int32_t dt, int32_t nk4,
                                                                    int32_t nk_avail, int32_t d, float *s,
                                                                    int64_t lds)
{
    const int64_t es = dt == 0 ? 4 : 2, rowb = (int64_t)d * es;
    for (int32_t j = 0; j < nk4; j += 4) {
        for (int jj = 0; jj < 4; jj++)
            if (j + jj + LCX_ATTN_PF_KEYS < nk_avail)
                lcx_pf_bytes((const char *)k + (size_t)((j + jj + LCX_ATTN_PF_KEYS) * kstride * es), rowb);
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
        lcx_store4x4(lcx_reduce16(acc), s + j, lds);
    }
}

/* bf16 keys, split by parity: a 64-byte load of 32 bf16 gives the even
 * elements as f32 by a shift and the odd ones by a mask (two cheap ops
 * instead of a widening shuffle and a shift per 16). The 4 query rows are
 * permuted the same way once per call into qp ([4][d]: per 32-block the 16
 * even elements, then the 16 odd ones); each dot product is the same sum in
 * another order of the f32 additions. d a multiple of 32, at most
 * LCX_EO_MAX_D. */
#define LCX_EO_MAX_D 1024
static const int32_t lcx_even_idx[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int32_t lcx_odd_idx[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};

static void lcx_qk_direct4x4_bf16eo(const float *q, int64_t ldq, const uint16_t *k, int64_t kstride, int32_t nk4,
                                    int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    float qp[4 * LCX_EO_MAX_D] __attribute__((aligned(64)));
    const __m512i ie = _mm512_loadu_si512(lcx_even_idx), io = _mm512_loadu_si512(lcx_odd_idx);
    for (int r = 0; r < 4; r++)
        for (int32_t t = 0; t < d; t += 32) {
            const __m512 a = _mm512_loadu_ps(q + r * ldq + t), b = _mm512_loadu_ps(q + r * ldq + t + 16);
            _mm512_store_ps(qp + r * d + t, _mm512_permutex2var_ps(a, ie, b));
            _mm512_store_ps(qp + r * d + t + 16, _mm512_permutex2var_ps(a, io, b));
        }
    const __m512i hi = _mm512_set1_epi32((int32_t)0xffff0000u);
    for (int32_t j = 0; j < nk4; j += 4) {
        for (int jj = 0; jj < 4; jj++)
            if (j + jj + LCX_ATTN_PF_KEYS < nk_avail)
                lcx_pf_bytes((const char *)(k + (size_t)((j + jj + LCX_ATTN_PF_KEYS) * kstride)), 2 * (int64_t)d);
        __m512 acc[16];
        for (int n = 0; n < 16; n++)
            acc[n] = _mm512_setzero_ps();
        for (int32_t t = 0; t < d; t += 32) {
            const __m512 q0e = _mm512_load_ps(qp + t), q0o = _mm512_load_ps(qp + t + 16);
            const __m512 q1e = _mm512_load_ps(qp + d + t), q1o = _mm512_load_ps(qp + d + t + 16);
            const __m512 q2e = _mm512_load_ps(qp + 2 * d + t), q2o = _mm512_load_ps(qp + 2 * d + t + 16);
            const __m512 q3e = _mm512_load_ps(qp + 3 * d + t), q3o = _mm512_load_ps(qp + 3 * d + t + 16);
            for (int jj = 0; jj < 4; jj++) { /* acc[4 * key + row] */
                const __m512i x = _mm512_loadu_si512(k + (size_t)((j + jj) * kstride) + t);
                const __m512 ke = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
                const __m512 ko = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
                acc[4 * jj + 0] = _mm512_fmadd_ps(q0o, ko, _mm512_fmadd_ps(q0e, ke, acc[4 * jj + 0]));
                acc[4 * jj + 1] = _mm512_fmadd_ps(q1o, ko, _mm512_fmadd_ps(q1e, ke, acc[4 * jj + 1]));
                acc[4 * jj + 2] = _mm512_fmadd_ps(q2o, ko, _mm512_fmadd_ps(q2e, ke, acc[4 * jj + 2]));
                acc[4 * jj + 3] = _mm512_fmadd_ps(q3o, ko, _mm512_fmadd_ps(q3e, ke, acc[4 * jj + 3]));
            }
        }
        lcx_store4x4(lcx_reduce16(acc), s + j, lds);
    }
}

void lcx_k_attn_qk_direct__avx512(const float *q, int64_t ldq, const void *k, int64_t kstride, int32_t kdtype,
                                  int32_t m, int32_t nk, int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    int32_t i0 = 0;
    if ((d & 15) == 0 && nk >= 4) {
        const int32_t nk4 = nk & ~3;
        for (; i0 + 4 <= m; i0 += 4) {
            if (kdtype == 2 && (d & 31) == 0 && d <= LCX_EO_MAX_D)
                lcx_qk_direct4x4_bf16eo(q + i0 * ldq, ldq, k, kstride, nk4, nk_avail, d, s + i0 * lds, lds);
            else if (kdtype == 2)
                lcx_qk_direct4x4(q + i0 * ldq, ldq, k, kstride, 2, nk4, nk_avail, d, s + i0 * lds, lds);
            else if (kdtype == 1)
                lcx_qk_direct4x4(q + i0 * ldq, ldq, k, kstride, 1, nk4, nk_avail, d, s + i0 * lds, lds);
            else
                lcx_qk_direct4x4(q + i0 * ldq, ldq, k, kstride, 0, nk4, nk_avail, d, s + i0 * lds, lds);
        }
        if (nk4 < nk && i0 > 0) { /* the last keys of those rows */
            const char *kt = (const char *)k + (size_t)(nk4 * kstride) * (kdtype == 0 ? 4 : 2);
            lcx_k_attn_qk_direct__avx512(q, ldq, kt, kstride, kdtype, i0, nk - nk4, nk_avail - nk4, d, s + nk4, lds);
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
                                                                 int32_t nk_avail, int32_t c, int32_t dv,
                                                                 const __mmask16 *mk, float *o, int64_t ldo)
{
    const int64_t es = dt == 0 ? 4 : 2, cols = dv - c < 64 ? dv - c : 64;
    __m512 acc[4][4];
    for (int i = 0; i < M; i++)
        for (int x = 0; x < 4; x++)
            acc[i][x] = _mm512_maskz_loadu_ps(mk[x], o + i * ldo + c + 16 * x);
    for (int32_t j = 0; j < nk; j++) {
        if (j + LCX_ATTN_PF_KEYS < nk_avail)
            lcx_pf_bytes((const char *)v + (size_t)(((j + LCX_ATTN_PF_KEYS) * vstride + c) * es), cols * es);
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

/* bf16 values, 64 full columns: the parity split of lcx_qk_direct4x4_bf16eo
 * applied to the outputs. Accumulators hold the even and the odd columns of
 * each 32-column half (permuted in at entry, back at exit), so a 64-byte
 * load of 32 values feeds them after a shift and a mask. Every output
 * element sees the same products in the same order as lcx_pv_direct. */
static const int32_t lcx_lo_idx[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int32_t lcx_hi_idx[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

static inline __attribute__((always_inline)) void lcx_pv_direct_bf16eo(const float *p, int64_t ldp,
                                                                        const uint16_t *v, int64_t vstride, int M,
                                                                        int32_t nk, int32_t nk_avail, int32_t c,
                                                                        float *o, int64_t ldo)
{
    const __m512i ie = _mm512_loadu_si512(lcx_even_idx), io = _mm512_loadu_si512(lcx_odd_idx);
    const __m512i hi = _mm512_set1_epi32((int32_t)0xffff0000u);
    __m512 acc[4][4]; /* [row][even 0-31, odd 0-31, even 32-63, odd 32-63] */
    for (int i = 0; i < M; i++)
        for (int h = 0; h < 2; h++) {
            const float *oi = o + i * ldo + c + 32 * h;
            const __m512 a = _mm512_loadu_ps(oi), b = _mm512_loadu_ps(oi + 16);
            acc[i][2 * h] = _mm512_permutex2var_ps(a, ie, b);
            acc[i][2 * h + 1] = _mm512_permutex2var_ps(a, io, b);
        }
    for (int32_t j = 0; j < nk; j++) {
        const uint16_t *vr = v + (size_t)(j * vstride) + c;
        if (j + LCX_ATTN_PF_KEYS < nk_avail)
            lcx_pf_bytes((const char *)(vr + LCX_ATTN_PF_KEYS * vstride), 128);
        const __m512i x0 = _mm512_loadu_si512(vr), x1 = _mm512_loadu_si512(vr + 32);
        const __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(x0, 16));
        const __m512 o0 = _mm512_castsi512_ps(_mm512_and_si512(x0, hi));
        const __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(x1, 16));
        const __m512 o1 = _mm512_castsi512_ps(_mm512_and_si512(x1, hi));
        for (int i = 0; i < M; i++) {
            const __m512 pb = _mm512_set1_ps(p[i * ldp + j]);
            acc[i][0] = _mm512_fmadd_ps(pb, e0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(pb, o0, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(pb, e1, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(pb, o1, acc[i][3]);
        }
    }
    const __m512i il = _mm512_loadu_si512(lcx_lo_idx), ih = _mm512_loadu_si512(lcx_hi_idx);
    for (int i = 0; i < M; i++)
        for (int h = 0; h < 2; h++) {
            float *oi = o + i * ldo + c + 32 * h;
            _mm512_storeu_ps(oi, _mm512_permutex2var_ps(acc[i][2 * h], il, acc[i][2 * h + 1]));
            _mm512_storeu_ps(oi + 16, _mm512_permutex2var_ps(acc[i][2 * h], ih, acc[i][2 * h + 1]));
        }
}

#define LCX_PVD(M)                                                                                            \
    do {                                                                                                      \
        if (vdtype == 2 && c + 64 <= dv)                                                                      \
            lcx_pv_direct_bf16eo(p + i0 * ldp, ldp, v, vstride, M, nk, nk_avail, c, o + i0 * ldo, ldo);      \
        else if (vdtype == 2)                                                                                 \
            lcx_pv_direct(p + i0 * ldp, ldp, v, vstride, 2, M, nk, nk_avail, c, dv, mk, o + i0 * ldo, ldo);  \
        else if (vdtype == 1)                                                                                 \
            lcx_pv_direct(p + i0 * ldp, ldp, v, vstride, 1, M, nk, nk_avail, c, dv, mk, o + i0 * ldo, ldo);  \
        else                                                                                                  \
            lcx_pv_direct(p + i0 * ldp, ldp, v, vstride, 0, M, nk, nk_avail, c, dv, mk, o + i0 * ldo, ldo);  \
    } while (0)

void lcx_k_attn_pv_direct__avx512(const float *p, int64_t ldp, const void *v, int64_t vstride, int32_t vdtype,
                                  int32_t m, int32_t nk, int32_t nk_avail, int32_t dv, float *o, int64_t ldo)
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
