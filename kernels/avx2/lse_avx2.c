/* AVX2 row log-sum-exp: 8 lanes, SLEEF expf8 (u10), scalar tail. */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "lse_avx2.c must be compiled with -mavx2 -mfma -mf16c"
#endif
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "avx2_fp16.h"

#define LCX_LSE_BLOCK 512

static inline __m256 lcx_ld(const void *x, size_t j, int32_t dt)
{
    if (dt == 0)
        return _mm256_loadu_ps((const float *)x + j);
    return lcx_load8_x16_avx2((const uint16_t *)x + j, dt == 2);
}

static inline float lcx_hmax(__m256 v)
{
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

static inline float lcx_hsum(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

void lcx_k_row_lse__avx2(const void *x, int32_t dtype, size_t n, float *max_out, double *sum_out, int32_t *flags)
{
    float m = -INFINITY;
    double s = 0;
    int32_t f = 0;
    for (size_t b = 0; b < n; b += LCX_LSE_BLOCK) {
        const size_t e = b + LCX_LSE_BLOCK < n ? b + LCX_LSE_BLOCK : n;
        __m256 vm = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
        size_t j = b;
        for (; j + 8 <= e; j += 8) {
            const __m256 v = lcx_ld(x, j, dtype);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            vm = _mm256_max_ps(vm, v); /* NaN lanes are flagged separately */
        }
        float bm = lcx_hmax(vm);
        for (; j < e; j++) {
            const float v = lcx_load_elem(x, dtype, j);
            if (v != v)
                f |= 1;
            else if (v > bm)
                bm = v;
        }
        if (_mm256_movemask_ps(nan))
            f |= 1;
        if (bm == INFINITY)
            f |= 2;
        if (f)
            break;
        if (bm > m) {
            s *= exp((double)m - (double)bm);
            m = bm;
        }
        if (m == -INFINITY)
            continue;
        const __m256 vmax = _mm256_set1_ps(m);
        __m256 acc = _mm256_setzero_ps();
        for (j = b; j + 8 <= e; j += 8)
            acc = _mm256_add_ps(acc, Sleef_expf8_u10avx2(_mm256_sub_ps(lcx_ld(x, j, dtype), vmax)));
        float bs = lcx_hsum(acc);
        for (; j < e; j++)
            bs += Sleef_expf1_u10purecfma(lcx_load_elem(x, dtype, j) - m);
        s += bs;
    }
    *max_out = m;
    *sum_out = s;
    *flags = f;
}
