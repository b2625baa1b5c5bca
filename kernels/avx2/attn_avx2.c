/* AVX2 attention tiles: register blocks of 4 rows x 16 columns (8
 * accumulators), SLEEF expf8 for the softmax. Widths are multiples of 16. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "attn_avx2.c must be compiled with -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>

#include "../ktable.h"

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
