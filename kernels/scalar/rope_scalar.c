/* Scalar RoPE kernels: the reference for every ISA. */
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"
#include "../common/rope_common.h"

void lcx_k_rope_cossin__scalar(const uint64_t *turns, int64_t pos, int32_t n_pairs, float a,
                               float *cos, float *sin)
{
    for (int32_t i = 0; i < n_pairs; i++) {
        float h, l;
        lcx_rope_angle(turns[i], pos, &h, &l);
        const Sleef_float_2 sc = Sleef_sincosf1_u10purec(h);
        /* sin(h + l) = sin h + l cos h, cos(h + l) = cos h - l sin h (|l| < 1.2e-7) */
        const float s = sc.x + l * sc.y, c = sc.y - l * sc.x;
        cos[i] = a * c;
        sin[i] = a * s;
    }
}

void lcx_k_rope_cossin_f32__scalar(const float *theta, float pos, int32_t n_pairs, float a,
                                   float *cos, float *sin)
{
    for (int32_t i = 0; i < n_pairs; i++) {
        const Sleef_float_2 sc = Sleef_sincosf1_u10purec(pos * theta[i]);
        cos[i] = sc.y * a;
        sin[i] = sc.x * a;
    }
}

void lcx_k_rope_rot_neox_f32__scalar(float *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                     const float *sin, int32_t n_pairs)
{
    for (int64_t h = 0; h < n_heads; h++) {
        float *u = x + h * head_stride, *v = u + n_pairs;
        for (int32_t i = 0; i < n_pairs; i++) {
            const float a = u[i], b = v[i];
            u[i] = a * cos[i] - b * sin[i];
            v[i] = b * cos[i] + a * sin[i];
        }
    }
}

void lcx_k_rope_rot_interleaved_f32__scalar(float *x, int64_t head_stride, int64_t n_heads,
                                            const float *cos2, const float *sin2, int32_t n_pairs)
{
    for (int64_t h = 0; h < n_heads; h++) {
        float *p = x + h * head_stride;
        for (int32_t i = 0; i < n_pairs; i++) {
            const float a = p[2 * i], b = p[2 * i + 1];
            /* sin2 holds (-s, s): a' = a c - b s, b' = b c + a s */
            p[2 * i] = a * cos2[2 * i] + b * sin2[2 * i];
            p[2 * i + 1] = b * cos2[2 * i + 1] + a * sin2[2 * i + 1];
        }
    }
}

void lcx_k_rope_rot_neox_x16__scalar(uint16_t *x, int64_t head_stride, int64_t n_heads, const float *cos,
                                     const float *sin, int32_t n_pairs, int32_t bf16)
{
    for (int64_t h = 0; h < n_heads; h++) {
        uint16_t *u = x + h * head_stride, *v = u + n_pairs;
        for (int32_t i = 0; i < n_pairs; i++) {
            const float a = lcx_load_elem(u, bf16 ? 2 : 1, (size_t)i), b = lcx_load_elem(v, bf16 ? 2 : 1, (size_t)i);
            lcx_store_elem(u, bf16 ? 2 : 1, (size_t)i, a * cos[i] - b * sin[i]);
            lcx_store_elem(v, bf16 ? 2 : 1, (size_t)i, b * cos[i] + a * sin[i]);
        }
    }
}

void lcx_k_rope_rot_interleaved_x16__scalar(uint16_t *x, int64_t head_stride, int64_t n_heads,
                                            const float *cos2, const float *sin2, int32_t n_pairs, int32_t bf16)
{
    for (int64_t h = 0; h < n_heads; h++) {
        uint16_t *p = x + h * head_stride;
        for (int32_t i = 0; i < 2 * n_pairs; i += 2) {
            const float a = lcx_load_elem(p, bf16 ? 2 : 1, (size_t)i), b = lcx_load_elem(p, bf16 ? 2 : 1, (size_t)i + 1);
            lcx_store_elem(p, bf16 ? 2 : 1, (size_t)i, a * cos2[i] + b * sin2[i]);
            lcx_store_elem(p, bf16 ? 2 : 1, (size_t)i + 1, b * cos2[i + 1] + a * sin2[i + 1]);
        }
    }
}
