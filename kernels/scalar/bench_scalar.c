/* Scalar FMA-peak probe (see bench_fma in ops.def). Built with
 * -ffp-contract=off, so a multiply and an add per lane: 2 flops. */
#include "../ktable.h"

float lcx_k_bench_fma__scalar(int64_t iters, float a, float b)
{
    float acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int64_t i = 0; i < iters; i++) {
        for (int j = 0; j < 8; j++)
            acc[j] = acc[j] * a + b;
    }
    float s = 0;
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}
