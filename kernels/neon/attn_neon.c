/* NEON attention tiles: register blocks of 4 rows x 16 columns (16
 * accumulators), SLEEF expf4 for the softmax. Widths are multiples of 16. */
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "attn_neon.c must be compiled for AArch64 with NEON"
#endif
#include <arm_neon.h>
#include <math.h>
#include <sleef.h>

#include "../ktable.h"
#include "../common/prefetch.h"
#include "../common/fp_bits.h"
#include "neon_fp16.h"

static inline __attribute__((always_inline)) void lcx_qk_block(const float *q, int64_t ldq, const float *kt,
                                                                int64_t ldk, int R, int32_t d, float *s, int64_t lds)
{
    float32x4_t acc[4][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 4; v++)
            acc[r][v] = vdupq_n_f32(0);
    for (int32_t t = 0; t < d; t++) {
        float32x4_t kv[4];
        for (int v = 0; v < 4; v++)
            kv[v] = vld1q_f32(kt + t * ldk + 4 * v);
        for (int r = 0; r < R; r++) {
            const float qs = q[r * ldq + t];
            for (int v = 0; v < 4; v++)
                acc[r][v] = vfmaq_n_f32(acc[r][v], kv[v], qs);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 4; v++)
            vst1q_f32(s + r * lds + 4 * v, acc[r][v]);
}

void lcx_k_attn_qk__neon(const float *q, int64_t ldq, const float *kt, int64_t ldk, int32_t m, int32_t n16,
                         int32_t d, float *s, int64_t lds)
{
    for (int32_t c = 0; c < n16; c += 16) {
        int32_t i = 0;
        for (; i + 4 <= m; i += 4)
            lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, 4, d, s + i * lds + c, lds);
        for (; i < m; i++)
            lcx_qk_block(q + i * ldq, ldq, kt + c, ldk, 1, d, s + i * lds + c, lds);
    }
}

static inline __attribute__((always_inline)) void lcx_pv_block(const float *p, int64_t ldp, const float *v,
                                                                int64_t ldv, int R, int32_t n, float *o, int64_t ldo)
{
    float32x4_t acc[4][4];
    for (int r = 0; r < R; r++)
        for (int x = 0; x < 4; x++)
            acc[r][x] = vld1q_f32(o + r * ldo + 4 * x);
    for (int32_t j = 0; j < n; j++) {
        float32x4_t vv[4];
        for (int x = 0; x < 4; x++)
            vv[x] = vld1q_f32(v + j * ldv + 4 * x);
        for (int r = 0; r < R; r++) {
            const float ps = p[r * ldp + j];
            for (int x = 0; x < 4; x++)
                acc[r][x] = vfmaq_n_f32(acc[r][x], vv[x], ps);
        }
    }
    for (int r = 0; r < R; r++)
        for (int x = 0; x < 4; x++)
            vst1q_f32(o + r * ldo + 4 * x, acc[r][x]);
}

void lcx_k_attn_pv__neon(const float *p, int64_t ldp, const float *v, int64_t ldv, int32_t m, int32_t n16,
                         int32_t dv16, float *o, int64_t ldo)
{
    for (int32_t c = 0; c < dv16; c += 16) {
        int32_t i = 0;
        for (; i + 4 <= m; i += 4)
            lcx_pv_block(p + i * ldp, ldp, v + c, ldv, 4, n16, o + i * ldo + c, ldo);
        for (; i < m; i++)
            lcx_pv_block(p + i * ldp, ldp, v + c, ldv, 1, n16, o + i * ldo + c, ldo);
    }
}

float lcx_k_attn_exp__neon(float *x, int32_t n16, float mx)
{
    const float32x4_t vm = vdupq_n_f32(mx);
    float32x4_t acc = vdupq_n_f32(0);
    for (int32_t j = 0; j < n16; j += 4) {
        const float32x4_t e = Sleef_expf4_u10advsimd(vsubq_f32(vld1q_f32(x + j), vm));
        vst1q_f32(x + j, e);
        acc = vaddq_f32(acc, e);
    }
    return vaddvq_f32(acc);
}

float lcx_k_attn_max__neon(const float *x, int32_t n16)
{
    float32x4_t mx = vdupq_n_f32(-INFINITY);
    uint32x4_t ok = vdupq_n_u32(~0u);
    for (int32_t j = 0; j < n16; j += 4) {
        const float32x4_t v = vld1q_f32(x + j);
        ok = vandq_u32(ok, vceqq_f32(v, v));
        mx = vmaxnmq_f32(mx, v);
    }
    if (vminvq_u32(ok) == 0)
        return NAN;
    return vmaxvq_f32(mx);
}

/* ---- direct (decode) products: 4-lane chunks, scalar tails ----
 * While on key j the kernels fetch the same bytes of key j + LCX_ATTN_PF_KEYS
 * into L2 (below nk_avail): the next 64-key tile's rows of this head, far
 * apart in the cache because kv heads interleave. */

static inline float32x4_t lcx_ld4(const void *p, int32_t dt, int64_t off)
{
    if (dt == 0)
        return vld1q_f32((const float *)p + off);
    return lcx_load4_x16_neon((const uint16_t *)p + off, dt == 2);
}

/* M rows (a constant after inlining) against one key at a time: each key
 * vector is widened once for all rows, and the M accumulator chains are
 * independent */
static inline __attribute__((always_inline)) void lcx_qk_rows(const float *q, int64_t ldq, const void *k,
                                                               int64_t kstride, int32_t dt, int M, int32_t nk,
                                                               int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    const int32_t d4 = d & ~3;
    const int64_t es = dt == 0 ? 4 : 2;
    for (int32_t j = 0; j < nk; j++) {
        if (j + LCX_ATTN_PF_KEYS < nk_avail)
            lcx_pf_bytes((const char *)k + (size_t)((j + LCX_ATTN_PF_KEYS) * kstride * es), d * es);
        float32x4_t acc[4];
        for (int i = 0; i < M; i++)
            acc[i] = vdupq_n_f32(0);
        for (int32_t t = 0; t < d4; t += 4) {
            const float32x4_t kv = lcx_ld4(k, dt, j * kstride + t);
            for (int i = 0; i < M; i++)
                acc[i] = vfmaq_f32(acc[i], vld1q_f32(q + i * ldq + t), kv);
        }
        for (int i = 0; i < M; i++) {
            float r = vaddvq_f32(acc[i]);
            for (int32_t t = d4; t < d; t++)
                r += q[i * ldq + t] * lcx_load_elem(k, dt, (size_t)(j * kstride + t));
            s[i * lds + j] = r;
        }
    }
}

#define LCX_ROWS_M(fn, M, ...)                                                                \
    do {                                                                                    \
        if (dt == 2)                                                                        \
            fn(__VA_ARGS__, 2, M);                                                          \
        else if (dt == 1)                                                                   \
            fn(__VA_ARGS__, 1, M);                                                          \
        else                                                                                \
            fn(__VA_ARGS__, 0, M);                                                          \
    } while (0)

static inline __attribute__((always_inline)) void lcx_qk_call(const float *q, int64_t ldq, const void *k,
                                                               int64_t kstride, int32_t nk, int32_t nk_avail, int32_t d,
                                                               float *s, int64_t lds, int32_t dt, int M)
{
    lcx_qk_rows(q, ldq, k, kstride, dt, M, nk, nk_avail, d, s, lds);
}

void lcx_k_attn_qk_direct__neon(const float *q, int64_t ldq, const void *k, int64_t kstride, int32_t kdtype,
                                int32_t m, int32_t nk, int32_t nk_avail, int32_t d, float *s, int64_t lds)
{
    const int32_t dt = kdtype;
    int32_t i0 = 0;
    for (; i0 + 4 <= m; i0 += 4)
        LCX_ROWS_M(lcx_qk_call, 4, q + i0 * ldq, ldq, k, kstride, nk, nk_avail, d, s + i0 * lds, lds);
    switch (m - i0) {
    case 3: LCX_ROWS_M(lcx_qk_call, 3, q + i0 * ldq, ldq, k, kstride, nk, nk_avail, d, s + i0 * lds, lds); break;
    case 2: LCX_ROWS_M(lcx_qk_call, 2, q + i0 * ldq, ldq, k, kstride, nk, nk_avail, d, s + i0 * lds, lds); break;
    case 1: LCX_ROWS_M(lcx_qk_call, 1, q + i0 * ldq, ldq, k, kstride, nk, nk_avail, d, s + i0 * lds, lds); break;
    default: break;
    }
}

/* M rows x 16 columns of o at c kept in registers over every key (the
 * output is loaded and stored once per call, not once per key) */
static inline __attribute__((always_inline)) void lcx_pv_call(const float *p, int64_t ldp, const void *v,
                                                               int64_t vstride, int32_t nk, int32_t nk_avail, int32_t c,
                                                               float *o, int64_t ldo, int32_t dt, int M)
{
    const int64_t es = dt == 0 ? 4 : 2;
    float32x4_t acc[4][4];
    for (int i = 0; i < M; i++)
        for (int x = 0; x < 4; x++)
            acc[i][x] = vld1q_f32(o + i * ldo + c + 4 * x);
    for (int32_t j = 0; j < nk; j++) {
        if (j + LCX_ATTN_PF_KEYS < nk_avail)
            lcx_pf_bytes((const char *)v + (size_t)(((j + LCX_ATTN_PF_KEYS) * vstride + c) * es), 16 * es);
        float32x4_t vv[4];
        for (int x = 0; x < 4; x++)
            vv[x] = lcx_ld4(v, dt, j * vstride + c + 4 * x);
        for (int i = 0; i < M; i++) {
            const float pv = p[i * ldp + j];
            for (int x = 0; x < 4; x++)
                acc[i][x] = vfmaq_n_f32(acc[i][x], vv[x], pv);
        }
    }
    for (int i = 0; i < M; i++)
        for (int x = 0; x < 4; x++)
            vst1q_f32(o + i * ldo + c + 4 * x, acc[i][x]);
}

void lcx_k_attn_pv_direct__neon(const float *p, int64_t ldp, const void *v, int64_t vstride, int32_t vdtype,
                                int32_t m, int32_t nk, int32_t nk_avail, int32_t dv, float *o, int64_t ldo)
{
    const int32_t dt = vdtype, d16 = dv & ~15;
    for (int32_t c = 0; c < d16; c += 16) {
        int32_t i0 = 0;
        for (; i0 + 4 <= m; i0 += 4)
            LCX_ROWS_M(lcx_pv_call, 4, p + i0 * ldp, ldp, v, vstride, nk, nk_avail, c, o + i0 * ldo, ldo);
        switch (m - i0) {
        case 3: LCX_ROWS_M(lcx_pv_call, 3, p + i0 * ldp, ldp, v, vstride, nk, nk_avail, c, o + i0 * ldo, ldo); break;
        case 2: LCX_ROWS_M(lcx_pv_call, 2, p + i0 * ldp, ldp, v, vstride, nk, nk_avail, c, o + i0 * ldo, ldo); break;
        case 1: LCX_ROWS_M(lcx_pv_call, 1, p + i0 * ldp, ldp, v, vstride, nk, nk_avail, c, o + i0 * ldo, ldo); break;
        default: break;
        }
    }
    for (int32_t j = 0; j < nk && d16 < dv; j++)
        for (int32_t i = 0; i < m; i++) {
            const float pv = p[i * ldp + j];
            int32_t c = d16;
            for (; c + 4 <= dv; c += 4)
                vst1q_f32(o + i * ldo + c, vfmaq_n_f32(vld1q_f32(o + i * ldo + c), lcx_ld4(v, dt, j * vstride + c), pv));
            for (; c < dv; c++)
                o[i * ldo + c] += pv * lcx_load_elem(v, dt, (size_t)(j * vstride + c));
        }
}
