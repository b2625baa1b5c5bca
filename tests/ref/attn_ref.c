/* Double-precision attention oracle (see attn_ref.h). */
#include <math.h>
#include <stdlib.h>

#include "attn_ref.h"

/* element (b, s, h, d) of a dense array with t's shape */
static double lcx_ref_at(const lcx_tensor *t, const double *x, int64_t b, int64_t s, int64_t h, int64_t d)
{
    return x[((b * t->shape[1] + s) * t->shape[2] + h) * t->shape[3] + d];
}

void lcx_ref_attention_row(const lcx_tensor *q, const double *qx, const lcx_tensor *k, const double *kx,
                           const lcx_tensor *v, const double *vx, const lcx_attention_params *p, int64_t b,
                           int64_t qrow, int64_t i, int64_t lq, int64_t k0, int64_t lk, int64_t h, double *out,
                           double *lse)
{
    const int64_t D = q->shape[3], Dv = v->shape[3], kvh = h / (q->shape[2] / k->shape[2]);
    const double scale = p->scale > 0 ? p->scale : 1.0 / sqrt((double)D);
    const int64_t pos = lk - lq + i;
    double *sc = malloc(sizeof(double) * (size_t)(lk > 0 ? lk : 1)), m = -INFINITY, l = 0;
    int nan = 0;
    for (int64_t j = 0; j < lk; j++) {
        const int vis = !p->causal || (j <= pos && (p->window_left < 0 || j >= pos - p->window_left));
        sc[j] = -INFINITY;
        if (!vis)
            continue;
        double s = 0;
        for (int64_t c = 0; c < D; c++)
            s += lcx_ref_at(q, qx, b, qrow, h, c) * lcx_ref_at(k, kx, b, k0 + j, kvh, c);
        s *= scale;
        if (p->softcap > 0)
            s = p->softcap * tanh(s / p->softcap);
        sc[j] = s;
        nan |= isnan(s);
        m = s > m ? s : m;
    }
    for (int64_t c = 0; c < Dv; c++)
        out[c] = nan ? NAN : 0; /* a NaN score (q or k) the row sees: its output and lse are NaN */
    if (nan) {
        *lse = NAN;
        free(sc);
        return;
    }
    if (m == -INFINITY) {
        *lse = -INFINITY;
        free(sc);
        return;
    }
    for (int64_t j = 0; j < lk; j++) {
        if (sc[j] == -INFINITY)
            continue;
        const double w = exp(sc[j] - m);
        l += w;
        for (int64_t c = 0; c < Dv; c++)
            out[c] += w * lcx_ref_at(v, vx, b, k0 + j, kvh, c);
    }
    for (int64_t c = 0; c < Dv; c++)
        out[c] /= l;
    *lse = m + log(l);
    free(sc);
}
