/* Scalar weight-merge accumulation (the reference). */
#include "../ktable.h"
#include "../common/fp_bits.h"

void lcx_k_merge_acc__scalar(float *acc, const void *x, int32_t dtype, float c, size_t n, int32_t first)
{
    const float *xf = x;
    const uint16_t *xh = x;
    for (size_t i = 0; i < n; i++) {
        float v;
        if (dtype == 0)
            v = xf[i];
        else if (dtype == 2)
            v = lcx_bits_f32(lcx_bf16_to_f32_bits(xh[i]));
        else
            v = lcx_bits_f32(lcx_f16_to_f32_bits(xh[i]));
        acc[i] = (first ? 0.0f : acc[i]) + c * v;
    }
}
