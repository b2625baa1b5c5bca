/* Scalar row log-sum-exp (the reference). */
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

#define LCX_LSE_BLOCK 512

void lcx_k_row_lse__scalar(const void *x, int32_t dtype, size_t n, float *max_out, double *sum_out, int32_t *flags)
{
    float m = -INFINITY;
    double s = 0;
    int32_t f = 0;
    for (size_t b = 0; b < n; b += LCX_LSE_BLOCK) {
        const size_t e = b + LCX_LSE_BLOCK < n ? b + LCX_LSE_BLOCK : n;
        float bm = -INFINITY;
        for (size_t j = b; j < e; j++) {
            const float v = lcx_load_elem(x, dtype, j);
            if (v != v)
                f |= 1;
            else if (v > bm)
                bm = v;
        }
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
        float bs = 0;
        for (size_t j = b; j < e; j++)
            bs += Sleef_expf1_u10purec(lcx_load_elem(x, dtype, j) - m);
        s += bs;
    }
    *max_out = m;
    *sum_out = s;
    *flags = f;
}
