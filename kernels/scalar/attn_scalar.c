/* Scalar attention tile kernels (the reference). */
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/fp_bits.h"

void lcx_k_attn_qk__scalar(const float *q, int64_t ldq, const float *kt, int64_t ldk, int32_t m, int32_t n16,
                           int32_t d, float *s, int64_t lds)
{
    for (int32_t i = 0; i < m; i++) {
        float *si = s + i * lds;
        for (int32_t j = 0; j < n16; j++)
            si[j] = 0.0f;
        for (int32_t t = 0; t < d; t++) {
            const float qv = q[i * ldq + t];
            const float *kr = kt + t * ldk;
            for (int32_t j = 0; j < n16; j++)
                si[j] += qv * kr[j];
        }
    }
}

void lcx_k_attn_pv__scalar(const float *p, int64_t ldp, const float *v, int64_t ldv, int32_t m, int32_t n16,
                           int32_t dv16, float *o, int64_t ldo)
{
    for (int32_t i = 0; i < m; i++) {
        float *oi = o + i * ldo;
        for (int32_t j = 0; j < n16; j++) {
            const float pv = p[i * ldp + j];
            const float *vr = v + j * ldv;
            for (int32_t c = 0; c < dv16; c++)
                oi[c] += pv * vr[c];
        }
    }
}

float lcx_k_attn_exp__scalar(float *x, int32_t n16, float mx)
{
    float sum = 0.0f;
    for (int32_t j = 0; j < n16; j++) {
        x[j] = Sleef_expf1_u10purec(x[j] - mx);
        sum += x[j];
    }
    return sum;
}

float lcx_k_attn_max__scalar(const float *x, int32_t n16)
{
    float mx = -INFINITY;
    int nan = 0;
    for (int32_t j = 0; j < n16; j++) {
        nan |= x[j] != x[j];
        mx = x[j] > mx ? x[j] : mx;
    }
    return nan ? NAN : mx;
}

static inline const void *lcx_row(const void *base, int32_t dt, int64_t off)
{
    return (const char *)base + (size_t)off * (dt == 0 ? 4 : 2);
}

void lcx_k_attn_qk_direct__scalar(const float *q, int64_t ldq, const void *k, int64_t kstride, int32_t kdtype,
                                  int32_t m, int32_t nk, int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    (void)nk_avail; /* the reference does not prefetch */
    for (int32_t j = 0; j < nk; j++) {
        const void *kr = lcx_row(k, kdtype, j * kstride);
        for (int32_t i = 0; i < m; i++) {
            float acc = 0;
            for (int32_t t = 0; t < d; t++)
                acc += q[i * ldq + t] * lcx_load_elem(kr, kdtype, (size_t)t);
            s[i * lds + j] = acc;
        }
    }
}

void lcx_k_attn_pv_direct__scalar(const float *p, int64_t ldp, const void *v, int64_t vstride, int32_t vdtype,
                                  int32_t m, int32_t nk, int32_t nk_avail, int32_t dv, float *o, int64_t ldo)
{
    (void)nk_avail;
    for (int32_t j = 0; j < nk; j++) {
        const void *vr = lcx_row(v, vdtype, j * vstride);
        for (int32_t i = 0; i < m; i++) {
            const float pv = p[i * ldp + j];
            for (int32_t c = 0; c < dv; c++)
                o[i * ldo + c] += pv * lcx_load_elem(vr, vdtype, (size_t)c);
        }
    }
}
