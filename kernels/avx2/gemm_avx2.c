/* AVX2 GEMM micro-kernel: 6 rows x 16 columns, 12 ymm accumulators, two
 * vector loads of the packed B panel and 6 broadcasts per reduction step. */
#include <immintrin.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

enum { LCX_MR = 6, LCX_NR = 16 };

/* named accumulators: with arrays GCC keeps a stack copy of each in the loop */
#define LCX_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

void lcx_k_gemm_ukr__avx2(int64_t k, const float *a, const float *b, float *c, int64_t ldc, int32_t first)
{
#define LCX_DECL(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
    LCX_ROWS(LCX_DECL)
#undef LCX_DECL
    if (!first) {
#define LCX_LOAD(i) c##i##0 = _mm256_loadu_ps(c + i * ldc), c##i##1 = _mm256_loadu_ps(c + i * ldc + 8);
        LCX_ROWS(LCX_LOAD)
#undef LCX_LOAD
    }
    for (int64_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        _mm_prefetch((const char *)(b + 8 * LCX_NR), _MM_HINT_T0);
#define LCX_FMA(i)                                          \
    {                                                       \
        const __m256 ai = _mm256_broadcast_ss(a + i);       \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);         \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);         \
    }
        LCX_ROWS(LCX_FMA)
#undef LCX_FMA
        a += LCX_MR;
        b += LCX_NR;
    }
#define LCX_STORE(i) _mm256_storeu_ps(c + i * ldc, c##i##0), _mm256_storeu_ps(c + i * ldc + 8, c##i##1);
    LCX_ROWS(LCX_STORE)
#undef LCX_STORE
}

/* 8 values of a row (dtype dt) widened to f32 */
static inline __m256 lcx_ld8w(const void *src, int32_t dt)
{
    if (dt == 0)
        return _mm256_loadu_ps(src);
    const __m128i h = _mm_loadu_si128((const __m128i *)src);
    if (dt == 2)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* 8 rows x 8 reduction steps per in-register transpose */
static inline __attribute__((always_inline)) void lcx_pack8(const void *src, int64_t rs, int32_t dt, int64_t k,
                                                            int32_t nr, float *dst)
{
    const size_t es = dt == 0 ? 4 : 2;
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 r[8], t[8], s[8];
        for (int i = 0; i < 8; i++)
            r[i] = lcx_ld8w((const char *)src + (size_t)(i * rs + p) * es, dt);
        for (int i = 0; i < 4; i++) {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        /* s[4h + c], 128-bit lane L: column 4L + c of rows 4h .. 4h+3 */
        for (int h = 0; h < 2; h++) {
            s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
            s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
            s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
            s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int c = 0; c < 4; c++) {
            _mm256_storeu_ps(dst + (p + c) * nr, _mm256_permute2f128_ps(s[c], s[4 + c], 0x20));
            _mm256_storeu_ps(dst + (p + 4 + c) * nr, _mm256_permute2f128_ps(s[c], s[4 + c], 0x31));
        }
    }
    for (; p < k; p++)
        for (int i = 0; i < 8; i++)
            dst[p * nr + i] = lcx_load_elem(src, dt, (size_t)(i * rs + p));
}

void lcx_k_gemm_pack__avx2(const void *src, int64_t rs, int64_t cs, int32_t dtype, int32_t rows, int64_t k,
                           int32_t nr, float *dst)
{
    if (cs != 1 || (nr & 7) || (rows & 7)) {
        lcx_k_gemm_pack__scalar(src, rs, cs, dtype, rows, k, nr, dst);
        return;
    }
    const size_t es = dtype == 0 ? 4 : 2;
    for (int32_t j = 0; j < nr; j += 8) {
        if (j < rows) {
            const void *s = (const char *)src + (size_t)(j * rs) * es;
            if (dtype == 2)
                lcx_pack8(s, rs, 2, k, nr, dst + j);
            else if (dtype == 1)
                lcx_pack8(s, rs, 1, k, nr, dst + j);
            else
                lcx_pack8(s, rs, 0, k, nr, dst + j);
        } else {
            for (int64_t p = 0; p < k; p++)
                _mm256_storeu_ps(dst + p * nr + j, _mm256_setzero_ps());
        }
    }
}

/* ---- few-token GEMM from weight rows: 8 tokens in the lanes ---- */

enum { LCX_RMR = 12, LCX_RNT = 8 };

#define LCX_R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* 12 f32 rows at the fixed stride: immediate offsets, named accumulators */
static void lcx_rows12_fixed(int64_t k, const float *w, const float *xp, float *c, int64_t ldc, int32_t first)
{
#define LCX_DECL(i) __m256 a##i = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + (i) * ldc);
    LCX_R12(LCX_DECL)
#undef LCX_DECL
    for (int64_t p = 0; p < k; p++) {
        const __m256 xv = _mm256_loadu_ps(xp + p * LCX_RNT);
#define LCX_FMA(i) a##i = _mm256_fmadd_ps(_mm256_broadcast_ss(w + (i) * LCX_GEMM_ROWS_LD + p), xv, a##i);
        LCX_R12(LCX_FMA)
#undef LCX_FMA
    }
#define LCX_STORE(i) _mm256_storeu_ps(c + (i) * ldc, a##i);
    LCX_R12(LCX_STORE)
#undef LCX_STORE
}

/* one row of any dtype and stride */
static void lcx_rows1(int64_t k, const void *w, int32_t wdt, const float *xp, float *c, int32_t first)
{
    __m256 acc = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c);
    for (int64_t p = 0; p < k; p++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(lcx_load_elem(w, wdt, (size_t)p)), _mm256_loadu_ps(xp + p * LCX_RNT),
                              acc);
    _mm256_storeu_ps(c, acc);
}

void lcx_k_gemm_rows__avx2(int64_t k, const void *w, int64_t ldw, int32_t wdt, int32_t m, const float *xp,
                           float *c, int64_t ldc, int32_t first)
{
    const size_t es = wdt == 0 ? 4 : 2;
    int32_t i = 0;
    if (wdt == 0 && ldw == LCX_GEMM_ROWS_LD)
        for (; i + LCX_RMR <= m; i += LCX_RMR)
            lcx_rows12_fixed(k, (const float *)w + i * ldw, xp, c + i * ldc, ldc, first);
    for (; i < m; i++)
        lcx_rows1(k, (const char *)w + (size_t)(i * ldw) * es, wdt, xp, c + i * ldc, first);
}
