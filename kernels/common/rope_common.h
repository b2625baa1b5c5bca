/* Constants shared by the RoPE kernels of every ISA (static inline only). */
#ifndef LCX_ROPE_COMMON_H
#define LCX_ROPE_COMMON_H

#include <stdint.h>

#define LCX_ROPE_PAD 16
/* 2 pi / 2^32: one unit of the top 32 bits of a 64-bit turn fraction */
#define LCX_ROPE_TURN32 1.4629180792671596e-09

/* The reference step shared by scalar code and SIMD tails: precise angle of
 * pos * turns (mod one turn) in [-pi, pi), as a float plus remainder. */
static inline void lcx_rope_angle(uint64_t turns, int64_t pos, float *hi, float *lo)
{
    const uint64_t t = (uint64_t)pos * turns; /* mod 2^64: exact */
    const double ang = (double)(int32_t)(uint32_t)(t >> 32) * LCX_ROPE_TURN32;
    const float h = (float)ang;
    *hi = h;
    *lo = (float)(ang - (double)h);
}

#endif
