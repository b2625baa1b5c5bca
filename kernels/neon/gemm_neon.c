/* NEON GEMM micro-kernel: 8 rows x 12 columns, 24 q-register accumulators;
 * per reduction step 3 loads of the packed B panel, 2 of the packed A panel
 * and 24 by-element FMAs (FMLA .4s, v.s[lane]). */
#include <arm_neon.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

enum { LCX_MR = 8, LCX_NR = 12 };

/* named accumulators: with arrays GCC keeps a stack copy of each in the loop */
#define LCX_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

void lcx_k_gemm_ukr__neon(int64_t k, const float *a, const float *b, float *c, int64_t ldc, int32_t first)
{
#define LCX_DECL(i) float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0, c##i##2 = c##i##0;
    LCX_ROWS(LCX_DECL)
#undef LCX_DECL
    if (!first) {
#define LCX_LOAD(i)                                                                                   \
    c##i##0 = vld1q_f32(c + i * ldc), c##i##1 = vld1q_f32(c + i * ldc + 4), c##i##2 = vld1q_f32(c + i * ldc + 8);
        LCX_ROWS(LCX_LOAD)
#undef LCX_LOAD
    }
    for (int64_t p = 0; p < k; p++) {
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define LCX_FMA(i)                                                  \
    c##i##0 = vfmaq_laneq_f32(c##i##0, b0, (i) < 4 ? a0 : a1, (i) & 3); \
    c##i##1 = vfmaq_laneq_f32(c##i##1, b1, (i) < 4 ? a0 : a1, (i) & 3); \
    c##i##2 = vfmaq_laneq_f32(c##i##2, b2, (i) < 4 ? a0 : a1, (i) & 3);
        LCX_ROWS(LCX_FMA)
#undef LCX_FMA
        a += LCX_MR;
        b += LCX_NR;
    }
#define LCX_STORE(i)                                                                                  \
    vst1q_f32(c + i * ldc, c##i##0), vst1q_f32(c + i * ldc + 4, c##i##1), vst1q_f32(c + i * ldc + 8, c##i##2);
    LCX_ROWS(LCX_STORE)
#undef LCX_STORE
}

/* 4 values of a row (dtype dt) widened to f32 */
static inline float32x4_t lcx_ld4w(const void *src, int32_t dt)
{
    if (dt == 0)
        return vld1q_f32(src);
    const uint16x4_t h = vld1_u16(src);
    if (dt == 2)
        return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

/* 4 rows x 4 reduction steps per in-register transpose */
static inline __attribute__((always_inline)) void lcx_pack4(const void *src, int64_t rs, int32_t dt, int64_t k,
                                                            int32_t nr, float *dst)
{
    const size_t es = dt == 0 ? 4 : 2;
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
        float32x4_t r[4];
        for (int i = 0; i < 4; i++)
            r[i] = lcx_ld4w((const char *)src + (size_t)(i * rs + p) * es, dt);
        const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
        const float64x2_t t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
        const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
        const float64x2_t t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
        vst1q_f32(dst + p * nr, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
        vst1q_f32(dst + (p + 1) * nr, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
        vst1q_f32(dst + (p + 2) * nr, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
        vst1q_f32(dst + (p + 3) * nr, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
    }
    for (; p < k; p++)
        for (int i = 0; i < 4; i++)
            dst[p * nr + i] = lcx_load_elem(src, dt, (size_t)(i * rs + p));
}

void lcx_k_gemm_pack__neon(const void *src, int64_t rs, int64_t cs, int32_t dtype, int32_t rows, int64_t k,
                           int32_t nr, float *dst)
{
    if (cs != 1 || (nr & 3) || (rows & 3)) {
        lcx_k_gemm_pack__scalar(src, rs, cs, dtype, rows, k, nr, dst);
        return;
    }
    const size_t es = dtype == 0 ? 4 : 2;
    for (int32_t j = 0; j < nr; j += 4) {
        if (j < rows) {
            const void *s = (const char *)src + (size_t)(j * rs) * es;
            if (dtype == 2)
                lcx_pack4(s, rs, 2, k, nr, dst + j);
            else if (dtype == 1)
                lcx_pack4(s, rs, 1, k, nr, dst + j);
            else
                lcx_pack4(s, rs, 0, k, nr, dst + j);
        } else {
            for (int64_t p = 0; p < k; p++)
                vst1q_f32(dst + p * nr + j, vdupq_n_f32(0.0f));
        }
    }
}

/* ---- few-token GEMM from weight rows: 8 tokens in two vectors ---- */

enum { LCX_RMR = 12, LCX_RNT = 8 };

#define LCX_R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* 12 f32 rows at the fixed stride: immediate offsets, named accumulators */
static void lcx_rows12_fixed(int64_t k, const float *w, const float *xp, float *c, int64_t ldc, int32_t first)
{
#define LCX_DECL(i)                                                                                    \
    float32x4_t a##i##0 = first ? vdupq_n_f32(0.0f) : vld1q_f32(c + (i) * ldc),                        \
                a##i##1 = first ? vdupq_n_f32(0.0f) : vld1q_f32(c + (i) * ldc + 4);
    LCX_R12(LCX_DECL)
#undef LCX_DECL
    for (int64_t p = 0; p < k; p++) {
        const float32x4_t x0 = vld1q_f32(xp + p * LCX_RNT), x1 = vld1q_f32(xp + p * LCX_RNT + 4);
#define LCX_FMA(i)                                                   \
    {                                                                \
        const float wv = w[(i) * LCX_GEMM_ROWS_LD + p];              \
        a##i##0 = vfmaq_n_f32(a##i##0, x0, wv);                      \
        a##i##1 = vfmaq_n_f32(a##i##1, x1, wv);                      \
    }
        LCX_R12(LCX_FMA)
#undef LCX_FMA
    }
#define LCX_STORE(i) vst1q_f32(c + (i) * ldc, a##i##0), vst1q_f32(c + (i) * ldc + 4, a##i##1);
    LCX_R12(LCX_STORE)
#undef LCX_STORE
}

/* one row of any dtype and stride */
static void lcx_rows1(int64_t k, const void *w, int32_t wdt, const float *xp, float *c, int32_t first)
{
    float32x4_t a0 = first ? vdupq_n_f32(0.0f) : vld1q_f32(c), a1 = first ? vdupq_n_f32(0.0f) : vld1q_f32(c + 4);
    for (int64_t p = 0; p < k; p++) {
        const float wv = lcx_load_elem(w, wdt, (size_t)p);
        a0 = vfmaq_n_f32(a0, vld1q_f32(xp + p * LCX_RNT), wv);
        a1 = vfmaq_n_f32(a1, vld1q_f32(xp + p * LCX_RNT + 4), wv);
    }
    vst1q_f32(c, a0);
    vst1q_f32(c + 4, a1);
}

void lcx_k_gemm_rows__neon(int64_t k, const void *w, int64_t ldw, int32_t wdt, int32_t m, const float *xp,
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
