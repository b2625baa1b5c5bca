/* Scalar GEMM micro-kernel (the reference): a 4 x 8 tile, plain loops. */
#include "../ktable.h"
#include "../common/fp_bits.h"

enum { LCX_MR = 4, LCX_NR = 8 };

void lcx_k_gemm_ukr__scalar(int64_t k, const float *a, const float *b, float *c, int64_t ldc, int32_t first)
{
    float acc[LCX_MR][LCX_NR];
    for (int i = 0; i < LCX_MR; i++)
        for (int j = 0; j < LCX_NR; j++)
            acc[i][j] = first ? 0.0f : c[i * ldc + j];
    for (int64_t p = 0; p < k; p++) {
        const float *ap = a + p * LCX_MR, *bp = b + p * LCX_NR;
        for (int i = 0; i < LCX_MR; i++)
            for (int j = 0; j < LCX_NR; j++)
                acc[i][j] += ap[i] * bp[j];
    }
    for (int i = 0; i < LCX_MR; i++)
        for (int j = 0; j < LCX_NR; j++)
            c[i * ldc + j] = acc[i][j];
}

void lcx_k_gemm_pack__scalar(const void *src, int64_t rs, int64_t cs, int32_t dtype, int32_t rows, int64_t k,
                             int32_t nr, float *dst)
{
    for (int32_t j = 0; j < nr; j++) {
        if (j < rows) {
            for (int64_t p = 0; p < k; p++)
                dst[p * nr + j] = lcx_load_elem(src, dtype, (size_t)(j * rs + p * cs));
        } else {
            for (int64_t p = 0; p < k; p++)
                dst[p * nr + j] = 0.0f;
        }
    }
}

enum { LCX_RMR = 4, LCX_RNT = 4 };

void lcx_k_gemm_rows__scalar(int64_t k, const void *w, int64_t ldw, int32_t wdt, int32_t m, const float *xp,
                             float *c, int64_t ldc, int32_t first)
{
    for (int32_t i = 0; i < m; i++) {
        float acc[LCX_RNT];
        for (int j = 0; j < LCX_RNT; j++)
            acc[j] = first ? 0.0f : c[i * ldc + j];
        for (int64_t p = 0; p < k; p++) {
            const float wv = lcx_load_elem(w, wdt, (size_t)(i * ldw + p));
            for (int j = 0; j < LCX_RNT; j++)
                acc[j] += wv * xp[p * LCX_RNT + j];
        }
        for (int j = 0; j < LCX_RNT; j++)
            c[i * ldc + j] = acc[j];
    }
}
