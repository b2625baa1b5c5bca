#include "rope_ref.h"

#include <math.h>

#define PI_L 3.141592653589793238462643383279502884L

static long double g(long double s, long double m)
{
    return s <= 1 ? 1 : 1 + 0.1L * m * logl(s);
}

void lcx_ref_rope_freqs(const lcx_rope_config *c, int64_t seq_len, long double *theta, long double *a)
{
    const int d = c->rotary_dim ? c->rotary_dim : c->head_dim, n = d / 2;
    long double b = c->base, s = c->factor;
    *a = 1;
    if (c->type == LCX_ROPE_NTK)
        b *= expl(logl(s) * d / (d - 2));
    if (c->type == LCX_ROPE_DYNAMIC) {
        long double L = seq_len > c->max_position ? seq_len : c->max_position;
        b *= expl(logl(s * L / c->max_position - (s - 1)) * d / (d - 2));
    }
    for (int i = 0; i < n; i++)
        theta[i] = expl(-(2.0L * i / d) * logl(b));
    const long double L0 = c->original_max_position > 0 ? c->original_max_position : c->max_position;
    if (c->type == LCX_ROPE_LINEAR)
        for (int i = 0; i < n; i++)
            theta[i] = theta[i] / s;
    if (c->type == LCX_ROPE_YARN) {
        if (s == 0)
            s = (long double)c->max_position / L0;
        long double bf = c->beta_fast ? c->beta_fast : 32, bs = c->beta_slow ? c->beta_slow : 1;
        long double lo = d * logl(L0 / (2 * PI_L * bf)) / (2 * logl(c->base));
        long double hi = d * logl(L0 / (2 * PI_L * bs)) / (2 * logl(c->base));
        if (c->truncate) {
            lo = floorl(lo);
            hi = ceill(hi);
        }
        lo = fmaxl(lo, 0);
        hi = fminl(hi, d - 1);
        if (hi == lo)
            hi = hi + 0.001L;
        for (int i = 0; i < n; i++) {
            long double ramp = fminl(fmaxl((i - lo) / (hi - lo), 0), 1);
            theta[i] = theta[i] * (1 - ramp) + theta[i] / s * ramp;
        }
        if (c->attention_factor)
            *a = c->attention_factor;
        else if (c->mscale && c->mscale_all_dim)
            *a = g(s, c->mscale) / g(s, c->mscale_all_dim);
        else
            *a = g(s, 1);
    }
    if (c->type == LCX_ROPE_LLAMA3) {
        for (int i = 0; i < n; i++) {
            const long double lambda = 2 * PI_L / theta[i];
            const long double edge_hi = L0 / c->high_freq_factor, edge_lo = L0 / c->low_freq_factor;
            if (lambda > edge_lo)
                theta[i] = theta[i] / s;
            else if (lambda >= edge_hi) {
                long double sg = (L0 / lambda - c->low_freq_factor) / (c->high_freq_factor - c->low_freq_factor);
                theta[i] = sg * theta[i] + (1 - sg) * theta[i] / s;
            }
        }
    }
    if (c->type == LCX_ROPE_LONGROPE) {
        if (s == 0)
            s = (long double)c->max_position / L0;
        const double *lam = seq_len > c->original_max_position ? c->long_factor : c->short_factor;
        for (int i = 0; i < n; i++)
            theta[i] = theta[i] / lam[i];
        *a = c->attention_factor ? c->attention_factor : s <= 1 ? 1 : sqrtl(1 + logl(s) / logl(L0));
    }
}

void lcx_ref_rope_rotate(const double *x, int head_dim, int d, lcx_rope_layout layout, long double p,
                         const long double *theta, long double a, double *out)
{
    for (int i = 0; i < head_dim; i++)
        out[i] = x[i];
    for (int i = 0; i < d / 2; i++) {
        const long double ang = fmodl(p * theta[i], 2 * PI_L);
        const long double c = a * cosl(ang), s = a * sinl(ang);
        const int iu = layout == LCX_ROPE_NEOX ? i : 2 * i, iv = layout == LCX_ROPE_NEOX ? i + d / 2 : 2 * i + 1;
        const long double u = x[iu], v = x[iv];
        out[iu] = (double)(u * c - v * s);
        out[iv] = (double)(v * c + u * s);
    }
}
