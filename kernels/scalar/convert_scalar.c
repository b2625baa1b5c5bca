/* Scalar dtype conversion kernels: the reference for every other ISA. */
#include "../ktable.h"
#include "../common/fp_bits.h"

void lcx_k_convert_f32_bf16__scalar(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = lcx_f32_to_bf16_bits(lcx_f32_bits(src[i]));
}

void lcx_k_convert_bf16_f32__scalar(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = lcx_bits_f32(lcx_bf16_to_f32_bits(src[i]));
}

void lcx_k_convert_f32_f16__scalar(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = lcx_f32_to_f16_bits(lcx_f32_bits(src[i]));
}

void lcx_k_convert_f16_f32__scalar(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = lcx_bits_f32(lcx_f16_to_f32_bits(src[i]));
}
