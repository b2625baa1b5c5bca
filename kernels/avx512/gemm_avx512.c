/* AVX-512 GEMM micro-kernel: 12 rows x 32 columns, 24 zmm accumulators; per
 * reduction step two vector loads of the packed B panel and 12 broadcasts
 * of the packed A panel (folded into the FMAs as embedded broadcasts). */
#include <immintrin.h>

#include "../ktable.h"

enum { LCX_MR = 12, LCX_NR = 32 };

void lcx_k_gemm_ukr__avx512(int64_t k, const float *a, const float *b, float *c, int64_t ldc, int32_t first)
{
    __m512 c0[LCX_MR], c1[LCX_MR];
    for (int i = 0; i < LCX_MR; i++) {
        c0[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc);
        c1[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc + 16);
    }
    for (int64_t p = 0; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        _mm_prefetch((const char *)(b + 8 * LCX_NR), _MM_HINT_T0);
        for (int i = 0; i < LCX_MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += LCX_MR;
        b += LCX_NR;
    }
    for (int i = 0; i < LCX_MR; i++) {
        _mm512_storeu_ps(c + i * ldc, c0[i]);
        _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
    }
}

/* 16 values of row `src` (dtype dt) widened to f32 */
static inline __m512 lcx_ld16w(const void *src, int32_t dt)
{
    if (dt == 0)
        return _mm512_loadu_ps(src);
    const __m256i h = _mm256_loadu_si256((const __m256i *)src);
    if (dt == 2)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* 16 x 16 transpose in registers: row i of r becomes column i */
static inline void lcx_transpose16(__m512 *r)
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i+3 */
    for (int i = 0; i < 4; i++) {
        const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int j = 0; j < 4; j++) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 u1 = _mm512_shuffle_f32x4(r[j], r[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512 v0 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 v1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
        t[j] = _mm512_shuffle_f32x4(u0, v0, _MM_SHUFFLE(2, 0, 2, 0));
        t[4 + j] = _mm512_shuffle_f32x4(u0, v0, _MM_SHUFFLE(3, 1, 3, 1));
        t[8 + j] = _mm512_shuffle_f32x4(u1, v1, _MM_SHUFFLE(2, 0, 2, 0));
        t[12 + j] = _mm512_shuffle_f32x4(u1, v1, _MM_SHUFFLE(3, 1, 3, 1));
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

/* contiguous rows, 16 at a time, 16 reduction steps per transpose */
static inline __attribute__((always_inline)) void lcx_pack16(const void *src, int64_t rs, int32_t dt, int64_t k,
                                                             int32_t nr, float *dst)
{
    const size_t es = dt == 0 ? 4 : 2;
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = lcx_ld16w((const char *)src + (size_t)(i * rs + p) * es, dt);
        lcx_transpose16(r);
        for (int i = 0; i < 16; i++)
            _mm512_storeu_ps(dst + (p + i) * nr, r[i]);
    }
    for (; p < k; p++) {
        float col[16];
        for (int i = 0; i < 16; i++)
            col[i] = dt == 0   ? ((const float *)src)[i * rs + p]
                     : dt == 2 ? _mm_cvtss_f32(_mm_castsi128_ps(
                                     _mm_cvtsi32_si128((int)((uint32_t)((const uint16_t *)src)[i * rs + p] << 16))))
                               : _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(((const uint16_t *)src)[i * rs + p])));
        _mm512_storeu_ps(dst + p * nr, _mm512_loadu_ps(col));
    }
}

void lcx_k_gemm_pack__avx512(const void *src, int64_t rs, int64_t cs, int32_t dtype, int32_t rows, int64_t k,
                             int32_t nr, float *dst)
{
    if (cs != 1 || (nr & 15) || (rows & 15)) {
        lcx_k_gemm_pack__scalar(src, rs, cs, dtype, rows, k, nr, dst);
        return;
    }
    const size_t es = dtype == 0 ? 4 : 2;
    for (int32_t j = 0; j < nr; j += 16) {
        if (j < rows) {
            const void *s = (const char *)src + (size_t)(j * rs) * es;
            if (dtype == 2)
                lcx_pack16(s, rs, 2, k, nr, dst + j);
            else if (dtype == 1)
                lcx_pack16(s, rs, 1, k, nr, dst + j);
            else
                lcx_pack16(s, rs, 0, k, nr, dst + j);
        } else {
            for (int64_t p = 0; p < k; p++)
                _mm512_storeu_ps(dst + p * nr + j, _mm512_setzero_ps());
        }
    }
}

/* ---- few-token GEMM from weight rows: 16 tokens in the lanes ---- */

enum { LCX_RMR = 24, LCX_RNT = 16 };

static inline __m512 lcx_bcast_w(const void *w, int32_t dt, int64_t off)
{
    if (dt == 0)
        return _mm512_set1_ps(((const float *)w)[off]);
    const uint16_t h = ((const uint16_t *)w)[off];
    if (dt == 2)
        return _mm512_castsi512_ps(_mm512_set1_epi32((int)((uint32_t)h << 16)));
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
}

/* M rows (a constant after inlining), dt and (when ld_fixed) the row
 * stride constants too, so each broadcast is an FMA memory operand at an
 * immediate offset */
static inline __attribute__((always_inline)) void lcx_rows(int64_t k, const void *w, int64_t ldw, int32_t dt, int M,
                                                           int ld_fixed, const float *xp, float *c, int64_t ldc,
                                                           int32_t first)
{
    const int64_t ld = ld_fixed ? LCX_GEMM_ROWS_LD : ldw;
    __m512 acc[LCX_RMR];
    for (int i = 0; i < M; i++)
        acc[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + i * ldc);
    for (int64_t p = 0; p < k; p++) {
        const __m512 xv = _mm512_loadu_ps(xp + p * LCX_RNT);
        for (int i = 0; i < M; i++)
            acc[i] = _mm512_fmadd_ps(lcx_bcast_w(w, dt, i * ld + p), xv, acc[i]);
    }
    for (int i = 0; i < M; i++)
        _mm512_storeu_ps(c + i * ldc, acc[i]);
}

/* 24 rows of f32 at the fixed stride: named accumulators (GCC does not
 * unroll a 24-long loop over an accumulator array and keeps it in memory) */
#define LCX_R24(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
                   X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

static void lcx_rows24_fixed(int64_t k, const float *w, const float *xp, float *c, int64_t ldc, int32_t first)
{
#define LCX_DECL(i) __m512 a##i = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + (i) * ldc);
    LCX_R24(LCX_DECL)
#undef LCX_DECL
    for (int64_t p = 0; p < k; p++) {
        const __m512 xv = _mm512_loadu_ps(xp + p * LCX_RNT);
#define LCX_FMA(i) a##i = _mm512_fmadd_ps(_mm512_set1_ps(w[(i) * LCX_GEMM_ROWS_LD + p]), xv, a##i);
        LCX_R24(LCX_FMA)
#undef LCX_FMA
    }
#define LCX_STORE(i) _mm512_storeu_ps(c + (i) * ldc, a##i);
    LCX_R24(LCX_STORE)
#undef LCX_STORE
}

#define LCX_ROWS_DT(M)                                                                                    \
    do {                                                                                                  \
        const char *wi = (const char *)w + (size_t)(i * ldw) * es;                                        \
        if (wdt == 0 && ldw == LCX_GEMM_ROWS_LD)                                                          \
            lcx_rows(k, wi, ldw, 0, M, 1, xp, c + i * ldc, ldc, first);                                   \
        else if (wdt == 2)                                                                                \
            lcx_rows(k, wi, ldw, 2, M, 0, xp, c + i * ldc, ldc, first);                                   \
        else if (wdt == 1)                                                                                \
            lcx_rows(k, wi, ldw, 1, M, 0, xp, c + i * ldc, ldc, first);                                   \
        else                                                                                              \
            lcx_rows(k, wi, ldw, 0, M, 0, xp, c + i * ldc, ldc, first);                                   \
    } while (0)

void lcx_k_gemm_rows__avx512(int64_t k, const void *w, int64_t ldw, int32_t wdt, int32_t m, const float *xp,
                             float *c, int64_t ldc, int32_t first)
{
    const size_t es = wdt == 0 ? 4 : 2;
    int32_t i = 0;
    if (wdt == 0 && ldw == LCX_GEMM_ROWS_LD)
        for (; i + 24 <= m; i += 24)
            lcx_rows24_fixed(k, (const float *)w + i * ldw, xp, c + i * ldc, ldc, first);
    for (; i + 24 <= m; i += 24)
        LCX_ROWS_DT(24);
    for (; i + 8 <= m; i += 8)
        LCX_ROWS_DT(8);
    for (; i + 4 <= m; i += 4)
        LCX_ROWS_DT(4);
    for (; i < m; i++)
        LCX_ROWS_DT(1);
}
