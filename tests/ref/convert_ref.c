#include "convert_ref.h"

#include <math.h>

typedef struct lcx_fmt {
    int mant_bits;  /* explicit fraction bits */
    int exp_bits;
    int emin;       /* exponent of the smallest normal */
    double max;     /* largest finite */
} lcx_fmt;

static lcx_fmt lcx_fmt_of(lcx_dtype dt)
{
    if (dt == LCX_F16)
        return (lcx_fmt){10, 5, -14, 65504.0};
    /* bf16: 8 exponent bits as binary32, 7 fraction bits */
    return (lcx_fmt){7, 8, -126, ldexp(255.0 / 128.0, 127)};
}

double lcx_ref_decode16(lcx_dtype dt, uint16_t bits)
{
    const lcx_fmt f = lcx_fmt_of(dt);
    const int emask = (1 << f.exp_bits) - 1, bias = emask >> 1;
    const int sign = bits >> 15;
    const int e = (bits >> f.mant_bits) & emask;
    const int m = bits & ((1 << f.mant_bits) - 1);
    double v;
    if (e == emask)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, f.emin - f.mant_bits);
    else
        v = ldexp(1.0 + ldexp((double)m, -f.mant_bits), e - bias);
    return sign ? -v : v;
}

double lcx_ref_round(lcx_dtype dt, double x)
{
    const lcx_fmt f = lcx_fmt_of(dt);
    if (x == 0 || isinf(x))
        return x;
    const double a = fabs(x);
    int e = ilogb(a);
    if (e < f.emin)
        e = f.emin;                                  /* subnormal spacing */
    const double ulp = ldexp(1.0, e - f.mant_bits);
    const double r = nearbyint(a / ulp) * ulp;       /* ties to even (default mode) */
    const double v = r > f.max ? INFINITY : r;
    return x < 0 ? -v : v;
}

uint16_t lcx_ref_nan16(lcx_dtype dt, uint32_t b)
{
    const uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    if (dt == LCX_F16) /* keep the top 10 payload bits, set the quiet bit (0x200) */
        return (uint16_t)(sign | 0x7c00u | ((b >> 13) & 0x3ffu) | 0x200u);
    return (uint16_t)(sign | 0x7f80u | ((b >> 16) & 0x7fu) | 0x40u);
}

uint32_t lcx_ref_nan_widen(lcx_dtype dt, uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    if (dt == LCX_F16)
        return sign | 0x7f800000u | ((uint32_t)(h & 0x3ffu) << 13) | 0x00400000u;
    return (uint32_t)h << 16;                        /* bf16: exact widening */
}

uint16_t lcx_ref_encode16(lcx_dtype dt, double v)
{
    const lcx_fmt f = lcx_fmt_of(dt);
    const int emask = (1 << f.exp_bits) - 1, bias = emask >> 1;
    const uint16_t sign = signbit(v) ? 0x8000u : 0;
    const double a = fabs(v);
    if (a == 0)
        return sign;
    if (isinf(a))
        return (uint16_t)(sign | (emask << f.mant_bits));
    const int e = ilogb(a);
    if (e < f.emin) /* subnormal: a = m * 2^(emin - mant_bits) */
        return (uint16_t)(sign | (uint16_t)ldexp(a, f.mant_bits - f.emin));
    const double m = ldexp(a, -e) - 1.0; /* fraction in [0, 1) */
    return (uint16_t)(sign | ((e + bias) << f.mant_bits) | (uint16_t)ldexp(m, f.mant_bits));
}
