/* AVX2 FMA-peak probe: 12 independent 8-lane FMA chains (2 FMA ports x
 * latency 4-5 needs at least 10 in flight). */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "bench_avx2.c must be compiled with -mavx2 -mfma"
#endif
#include <immintrin.h>

#include "../ktable.h"

#define LCX_BENCH_ACC 12

float lcx_k_bench_fma__avx2(int64_t iters, float a, float b)
{
    __m256 acc[LCX_BENCH_ACC];
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (int j = 0; j < LCX_BENCH_ACC; j++)
        acc[j] = _mm256_set1_ps((float)j);
    for (int64_t i = 0; i < iters; i++) {
        for (int j = 0; j < LCX_BENCH_ACC; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], va, vb);
    }
    __m256 s = acc[0];
    for (int j = 1; j < LCX_BENCH_ACC; j++)
        s = _mm256_add_ps(s, acc[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    float t = 0;
    for (int k = 0; k < 8; k++)
        t += out[k];
    return t;
}
