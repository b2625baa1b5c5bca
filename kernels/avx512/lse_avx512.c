/* AVX-512 row log-sum-exp: 16 lanes, SLEEF expf16 (u10). */
#if !defined(__AVX512F__) || !defined(__AVX512BW__)
#error "lse_avx512.c must be compiled with the AVX-512 flags"
#endif
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#include "../ktable.h"

#define LCX_LSE_BLOCK 512

static inline __m512 lcx_ld(const void *x, size_t j, int32_t dt, __mmask16 m)
{
    if (dt == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)x + j);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)x + j);
    if (dt == 2)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline __mmask16 lcx_mask(size_t j, size_t e)
{
    return e - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (e - j)) - 1u);
}

void lcx_k_row_lse__avx512(const void *x, int32_t dtype, size_t n, float *max_out, double *sum_out,
                           int32_t *flags)
{
    float m = -INFINITY;
    double s = 0;
    int32_t f = 0;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (size_t b = 0; b < n; b += LCX_LSE_BLOCK) {
        const size_t e = b + LCX_LSE_BLOCK < n ? b + LCX_LSE_BLOCK : n;
        __m512 vm = ninf;
        __mmask16 nan = 0;
        for (size_t j = b; j < e; j += 16) {
            const __mmask16 k = lcx_mask(j, e);
            const __m512 v = lcx_ld(x, j, dtype, k);
            nan |= _mm512_mask_cmp_ps_mask(k, v, v, _CMP_UNORD_Q);
            vm = _mm512_mask_max_ps(vm, k, vm, v);
        }
        const float bm = _mm512_reduce_max_ps(vm);
        if (nan)
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
        const __m512 vmax = _mm512_set1_ps(m);
        __m512 acc = _mm512_setzero_ps();
        for (size_t j = b; j < e; j += 16) {
            const __mmask16 k = lcx_mask(j, e);
            /* masked-off lanes load 0: exp(0 - m) is masked out of the sum */
            const __m512 t = Sleef_expf16_u10avx512f(_mm512_sub_ps(lcx_ld(x, j, dtype, k), vmax));
            acc = _mm512_mask_add_ps(acc, k, acc, t);
        }
        s += (double)_mm512_reduce_add_ps(acc);
    }
    *max_out = m;
    *sum_out = s;
    *flags = f;
}
