/* AVX-512 FMA-peak probe: 12 independent 16-lane FMA chains. */
#if !defined(__AVX512F__)
#error "bench_avx512.c must be compiled with -mavx512f"
#endif
#include <immintrin.h>

#include "../ktable.h"

#define LCX_BENCH_ACC 12

float lcx_k_bench_fma__avx512(int64_t iters, float a, float b)
{
    __m512 acc[LCX_BENCH_ACC];
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (int j = 0; j < LCX_BENCH_ACC; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (int64_t i = 0; i < iters; i++) {
        for (int j = 0; j < LCX_BENCH_ACC; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], va, vb);
    }
    __m512 s = acc[0];
    for (int j = 1; j < LCX_BENCH_ACC; j++)
        s = _mm512_add_ps(s, acc[j]);
    return _mm512_reduce_add_ps(s);
}
