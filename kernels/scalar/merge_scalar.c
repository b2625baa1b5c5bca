/* Scalar weight merge (the reference). */
#include <math.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

void lcx_k_merge__scalar(const void *const *src, const int32_t *dtypes, const float *coeffs, int32_t n_in,
                         void *dst, int32_t dst_dtype, size_t len)
{
    for (size_t j = 0; j < len; j++) {
        float acc = 0.0f;
        for (int32_t i = 0; i < n_in; i++)
            acc = fmaf(coeffs[i], lcx_load_elem(src[i], dtypes[i], j), acc);
        lcx_store_elem(dst, dst_dtype, j, acc);
    }
}
