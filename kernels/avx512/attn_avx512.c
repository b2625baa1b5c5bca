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
