/* RoPE: configuration, frequencies (long double), rope objects, and the
 * apply / re-rotate / shift drivers around the rope kernels. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/lcx_internal.h"
#include "internal/lcx_fpenv.h"
#include "longctx/rope.h"
#include "../kernels/common/rope_common.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

#define LCX_ROPE_MAX_DIM 1024            /* rotary_dim cap: per-task buffers live on the stack */
#define LCX_ROPE_MAX_PAIRS (LCX_ROPE_MAX_DIM / 2)
#define LCX_ROPE_TOKENS_PER_TASK 16
#define LCX_ROPE_MAX_POS 2147483647LL
#define LCX_PI_L 3.141592653589793238462643383279502884L

typedef long double ld;

void lcx_rope_config_default(lcx_rope_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->type = LCX_ROPE_DEFAULT;
    cfg->layout = LCX_ROPE_NEOX;
    cfg->head_dim = 128;
    cfg->rotary_dim = 0;
    cfg->base = 10000.0;
    cfg->factor = 1.0;
    cfg->original_max_position = 0;
    cfg->max_position = 2048;
    cfg->beta_fast = 32.0;
    cfg->beta_slow = 1.0;
    cfg->truncate = 1;
    cfg->attention_factor = 0.0;
    cfg->low_freq_factor = 1.0;
    cfg->high_freq_factor = 4.0;
    cfg->precision = LCX_ROPE_PRECISE;
}

static int32_t lcx_rope_dim(const lcx_rope_config *c)
{
    return c->rotary_dim ? c->rotary_dim : c->head_dim;
}

static int64_t lcx_rope_l0(const lcx_rope_config *c)
{
    return c->original_max_position > 0 ? c->original_max_position : c->max_position;
}

#define BAD(...) return lcx_fail(LCX_E_INVALID, "rope: " __VA_ARGS__)

static lcx_status lcx_check_positive(const char *field, double v)
{
    if (!isfinite(v) || v <= 0)
        return lcx_fail(LCX_E_INVALID, "rope: %s = %g must be finite and > 0", field, v);
    return LCX_OK;
}

lcx_status lcx_rope_config_validate(const lcx_rope_config *c)
{
    if (!c)
        BAD("config is NULL");
    if (c->struct_size != sizeof *c)
        BAD("config struct_size %zu is not a size this library knows (%zu)", c->struct_size, sizeof *c);
    if ((int)c->type < LCX_ROPE_DEFAULT || (int)c->type > LCX_ROPE_LONGROPE)
        BAD("unknown type %d", (int)c->type);
    if (c->layout != LCX_ROPE_NEOX && c->layout != LCX_ROPE_INTERLEAVED)
        BAD("unknown layout %d", (int)c->layout);
    if (c->precision != LCX_ROPE_PRECISE && c->precision != LCX_ROPE_HF_F32)
        BAD("unknown precision %d", (int)c->precision);
    if (c->head_dim < 2)
        BAD("head_dim %" PRId32 " must be >= 2", c->head_dim);
    if (c->rotary_dim < 0)
        BAD("rotary_dim %" PRId32 " is negative", c->rotary_dim);
    const int32_t d = lcx_rope_dim(c);
    if (d % 2)
        BAD("rotary_dim %" PRId32 " is odd", d);
    if (d > c->head_dim)
        BAD("rotary_dim %" PRId32 " > head_dim %" PRId32, d, c->head_dim);
    if (d > LCX_ROPE_MAX_DIM)
        BAD("rotary_dim %" PRId32 " > %d is not supported", d, LCX_ROPE_MAX_DIM);
    if (!isfinite(c->base) || c->base <= 1)
        BAD("base = %g must be finite and > 1", c->base);
    if (!isfinite(c->factor) || c->factor < 0)
        BAD("factor = %g must be finite and >= 0", c->factor);
    if (!isfinite(c->attention_factor) || c->attention_factor < 0)
        BAD("attention_factor = %g must be finite and >= 0 (0 = derive)", c->attention_factor);
    if (c->attention_factor != 0 && c->type != LCX_ROPE_YARN && c->type != LCX_ROPE_LONGROPE)
        BAD("attention_factor = %g is only defined for YARN and LONGROPE (a = 1 otherwise)", c->attention_factor);
    if (c->original_max_position < 0 || c->max_position < 0)
        BAD("original_max_position %" PRId64 " / max_position %" PRId64 " must be >= 0", c->original_max_position,
            c->max_position);
    lcx_status st;
    switch (c->type) {
    case LCX_ROPE_DEFAULT:
        break;
    case LCX_ROPE_LINEAR:
    case LCX_ROPE_NTK:
        if ((st = lcx_check_positive("factor", c->factor)) != LCX_OK)
            return st;
        if (c->type == LCX_ROPE_NTK && d < 4)
            BAD("rotary_dim %" PRId32 " must be >= 4 for NTK (d/(d-2) exponent)", d);
        break;
    case LCX_ROPE_DYNAMIC:
        if ((st = lcx_check_positive("factor", c->factor)) != LCX_OK)
            return st;
        if (d < 4)
            BAD("rotary_dim %" PRId32 " must be >= 4 for DYNAMIC (d/(d-2) exponent)", d);
        if (c->max_position <= 0)
            BAD("max_position %" PRId64 " must be > 0 for DYNAMIC", c->max_position);
        break;
    case LCX_ROPE_YARN:
        if (lcx_rope_l0(c) <= 0)
            BAD("original_max_position (or max_position) must be > 0 for YARN");
        if (c->factor == 0 && c->max_position <= 0)
            BAD("factor 0 (derive) needs max_position > 0");
        if (!isfinite(c->beta_fast) || c->beta_fast < 0 || !isfinite(c->beta_slow) || c->beta_slow < 0)
            BAD("beta_fast = %g, beta_slow = %g must be finite and >= 0 (0 = default)", c->beta_fast,
                c->beta_slow);
        if (c->truncate != 0 && c->truncate != 1)
            BAD("truncate %" PRId32 " must be 0 or 1", c->truncate);
        if (!isfinite(c->mscale) || !isfinite(c->mscale_all_dim) || c->mscale < 0 || c->mscale_all_dim < 0)
            BAD("mscale = %g, mscale_all_dim = %g must be finite and >= 0 (0 = absent)", c->mscale,
                c->mscale_all_dim);
        break;
    case LCX_ROPE_LLAMA3:
        if ((st = lcx_check_positive("factor", c->factor)) != LCX_OK ||
            (st = lcx_check_positive("low_freq_factor", c->low_freq_factor)) != LCX_OK ||
            (st = lcx_check_positive("high_freq_factor", c->high_freq_factor)) != LCX_OK)
            return st;
        if (c->high_freq_factor <= c->low_freq_factor)
            BAD("high_freq_factor %g must be > low_freq_factor %g", c->high_freq_factor,
                c->low_freq_factor);
        if (c->original_max_position <= 0)
            BAD("original_max_position %" PRId64 " must be > 0 for LLAMA3", c->original_max_position);
        break;
    case LCX_ROPE_LONGROPE:
        if (!c->short_factor || !c->long_factor)
            BAD("LONGROPE needs short_factor and long_factor (%" PRId32 " values each)", d / 2);
        for (int32_t i = 0; i < d / 2; i++) {
            if (!isfinite(c->short_factor[i]) || c->short_factor[i] <= 0)
                BAD("short_factor[%" PRId32 "] = %g must be finite and > 0", i, c->short_factor[i]);
            if (!isfinite(c->long_factor[i]) || c->long_factor[i] <= 0)
                BAD("long_factor[%" PRId32 "] = %g must be finite and > 0", i, c->long_factor[i]);
        }
        if (c->original_max_position <= 1)
            BAD("original_max_position %" PRId64 " must be > 1 for LONGROPE", c->original_max_position);
        if (c->factor == 0 && c->max_position <= 0)
            BAD("factor 0 (derive) needs max_position > 0");
        if (c->n_hat < 0)
            BAD("n_hat %" PRId64 " is negative", c->n_hat);
        break;
    }
    return LCX_OK;
}

/* ---- frequencies, in long double ---- */

static ld lcx_yarn_g(ld s, ld m)
{
    return s <= 1 ? 1.0L : 1.0L + 0.1L * m * logl(s);
}

static ld lcx_scale_factor(const lcx_rope_config *c)
{
    return c->factor > 0 ? (ld)c->factor : (ld)c->max_position / (ld)lcx_rope_l0(c);
}

/* theta (n = d/2 values), magnitude factor, and whether the long set is used */
static void lcx_rope_compute(const lcx_rope_config *c, int64_t seq_len, ld *theta, ld *a_out)
{
    const int32_t d = lcx_rope_dim(c), n = d / 2;
    ld base = c->base, a = 1.0L;
    const ld s = c->factor;
    if (c->type == LCX_ROPE_NTK) {
        base = base * powl(s, (ld)d / (ld)(d - 2));
    } else if (c->type == LCX_ROPE_DYNAMIC) {
        const ld l0 = (ld)c->max_position;
        const ld len = seq_len > c->max_position ? (ld)seq_len : l0;
        base = base * powl(s * len / l0 - (s - 1), (ld)d / (ld)(d - 2));
    }
    for (int32_t i = 0; i < n; i++)
        theta[i] = powl(base, -(ld)(2 * i) / (ld)d);

    switch (c->type) {
    case LCX_ROPE_DEFAULT:
    case LCX_ROPE_NTK:
    case LCX_ROPE_DYNAMIC:
        break;
    case LCX_ROPE_LINEAR:
        for (int32_t i = 0; i < n; i++)
            theta[i] /= s;
        break;
    case LCX_ROPE_YARN: {
        const ld sf = lcx_scale_factor(c), l0 = (ld)lcx_rope_l0(c);
        const ld bf = c->beta_fast > 0 ? c->beta_fast : 32.0, bs = c->beta_slow > 0 ? c->beta_slow : 1.0;
        const ld lb = logl((ld)c->base);
        ld lo = (ld)d * logl(l0 / (bf * 2 * LCX_PI_L)) / (2 * lb);
        ld hi = (ld)d * logl(l0 / (bs * 2 * LCX_PI_L)) / (2 * lb);
        if (c->truncate) {
            lo = floorl(lo);
            hi = ceill(hi);
        }
        if (lo < 0)
            lo = 0;
        if (hi > d - 1)
            hi = d - 1;
        if (lo == hi)
            hi += 0.001L;
        for (int32_t i = 0; i < n; i++) {
            ld r = ((ld)i - lo) / (hi - lo);
            r = r < 0 ? 0 : r > 1 ? 1 : r;
            const ld w = 1 - r; /* extrapolation weight */
            theta[i] = theta[i] * (w + (1 - w) / sf);
        }
        if (c->attention_factor > 0)
            a = c->attention_factor;
        else if (c->mscale > 0 && c->mscale_all_dim > 0)
            a = lcx_yarn_g(sf, c->mscale) / lcx_yarn_g(sf, c->mscale_all_dim);
        else
            a = lcx_yarn_g(sf, 1);
        break;
    }
    case LCX_ROPE_LLAMA3: {
        const ld l0 = (ld)c->original_max_position, lf = c->low_freq_factor, hf = c->high_freq_factor;
        const ld wl_hi = l0 / hf, wl_lo = l0 / lf;
        for (int32_t i = 0; i < n; i++) {
            const ld wl = 2 * LCX_PI_L / theta[i];
            if (wl < wl_hi)
                continue;
            if (wl > wl_lo) {
                theta[i] /= s;
            } else {
                const ld sg = (l0 / wl - lf) / (hf - lf);
                theta[i] = (1 - sg) * theta[i] / s + sg * theta[i];
            }
        }
        break;
    }
    case LCX_ROPE_LONGROPE: {
        const ld sf = lcx_scale_factor(c), l0 = (ld)c->original_max_position;
        const double *f = seq_len > c->original_max_position ? c->long_factor : c->short_factor;
        for (int32_t i = 0; i < n; i++)
            theta[i] /= (ld)f[i];
        if (c->attention_factor > 0)
            a = c->attention_factor;
        else
            a = sf <= 1 ? 1.0L : sqrtl(1 + logl(sf) / logl(l0));
        break;
    }
    }
    *a_out = a;
}

/* Hugging Face's float32 frequencies: the same operations in float32, in the
 * order its rope init functions perform them. */
static void lcx_rope_compute_hf_f32(const lcx_rope_config *c, int64_t seq_len, float *theta)
{
    const int32_t d = lcx_rope_dim(c), n = d / 2;
    double base = c->base;
    if (c->type == LCX_ROPE_NTK)
        base = base * pow(c->factor, (double)d / (d - 2));
    else if (c->type == LCX_ROPE_DYNAMIC) {
        const double len = seq_len > c->max_position ? (double)seq_len : (double)c->max_position;
        base = base * pow(c->factor * len / (double)c->max_position - (c->factor - 1), (double)d / (d - 2));
    }
    float pf[LCX_ROPE_MAX_PAIRS]; /* base ** (arange(0, d, 2) / d) */
    for (int32_t i = 0; i < n; i++) {
        pf[i] = powf((float)base, (float)(2 * i) / (float)d);
        theta[i] = 1.0f / pf[i];
    }
    const float s = (float)c->factor;
    switch (c->type) {
    case LCX_ROPE_DEFAULT:
    case LCX_ROPE_NTK:
    case LCX_ROPE_DYNAMIC:
        break;
    case LCX_ROPE_LINEAR:
        for (int32_t i = 0; i < n; i++)
            theta[i] = theta[i] / s;
        break;
    case LCX_ROPE_YARN: {
        const double sf = c->factor > 0 ? c->factor : (double)c->max_position / (double)lcx_rope_l0(c);
        const double l0 = (double)lcx_rope_l0(c);
        const double bf = c->beta_fast > 0 ? c->beta_fast : 32.0, bs = c->beta_slow > 0 ? c->beta_slow : 1.0;
        double lo = d * log(l0 / (bf * 2 * M_PI)) / (2 * log(c->base));
        double hi = d * log(l0 / (bs * 2 * M_PI)) / (2 * log(c->base));
        if (c->truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        lo = lo > 0 ? lo : 0;
        hi = hi < d - 1 ? hi : d - 1;
        if (lo == hi)
            hi += 0.001;
        for (int32_t i = 0; i < n; i++) {
            const float ext = 1.0f / pf[i], inter = 1.0f / ((float)sf * pf[i]);
            float r = ((float)i - (float)lo) / (float)(hi - lo);
            r = r < 0 ? 0 : r > 1 ? 1 : r;
            const float w = 1.0f - r;
            theta[i] = inter * (1.0f - w) + ext * w;
        }
        break;
    }
    case LCX_ROPE_LLAMA3: {
        const double l0 = (double)c->original_max_position;
        const double wl_lo = l0 / c->low_freq_factor, wl_hi = l0 / c->high_freq_factor;
        for (int32_t i = 0; i < n; i++) {
            const float inv = theta[i];
            const float wl = (float)(2 * M_PI) / inv;
            float t = wl > (float)wl_lo ? inv / s : inv;
            const float sm = ((float)l0 / wl - (float)c->low_freq_factor) /
                             (float)(c->high_freq_factor - c->low_freq_factor);
            const float smoothed = (1.0f - sm) * t / s + sm * t;
            if (!(wl < (float)wl_hi) && !(wl > (float)wl_lo))
                t = smoothed;
            theta[i] = t;
        }
        break;
    }
    case LCX_ROPE_LONGROPE: {
        const double *f = seq_len > c->original_max_position ? c->long_factor : c->short_factor;
        for (int32_t i = 0; i < n; i++)
            theta[i] = 1.0f / ((float)f[i] * pf[i]);
        break;
    }
    }
}

lcx_status lcx_rope_frequencies(const lcx_rope_config *cfg, int64_t seq_len, double *inv_freq,
                                double *attention_factor)
{
    lcx_status st = lcx_rope_config_validate(cfg);
    if (st != LCX_OK)
        return st;
    if (seq_len < 0)
        BAD("seq_len %" PRId64 " is negative", seq_len);
    ld theta[LCX_ROPE_MAX_PAIRS], a;
    lcx_rope_compute(cfg, seq_len, theta, &a);
    if (inv_freq)
        for (int32_t i = 0; i < lcx_rope_dim(cfg) / 2; i++)
            inv_freq[i] = (double)theta[i];
    if (attention_factor)
        *attention_factor = (double)a;
    return LCX_OK;
}

lcx_status lcx_rope_softmax_scale_multiplier(const lcx_rope_config *cfg, double *mult)
{
    lcx_status st = lcx_rope_config_validate(cfg);
    if (st != LCX_OK)
        return st;
    if (!mult)
        BAD("mult is NULL");
    double m = 1.0;
    if (cfg->type == LCX_ROPE_YARN && cfg->mscale_all_dim > 0) {
        const double g = (double)lcx_yarn_g(lcx_scale_factor(cfg), cfg->mscale_all_dim);
        m = g * g;
    }
    *mult = m;
    return LCX_OK;
}

/* ---- rope objects ---- */

struct lcx_rope {
    lcx_rope_config cfg;    /* factor arrays point into `factors` */
    lcx_device device;
    int32_t n_pairs, n_pad;
    int64_t seq_len;
    double a;
    double *theta;          /* n_pairs: current set, double */
    double *factors;        /* LONGROPE: short then long (owned copy) */
    /* precise mode: fractional turns per pair, current set and plain RoPE (n_hat) */
    uint64_t *turns, *turns0;
    /* HF f32 mode */
    float *theta_f32, *theta0_f32;
};

static uint64_t lcx_turns_of(ld theta)
{
    ld x = theta / (2 * LCX_PI_L);
    x -= floorl(x);
    const ld t = ldexpl(x, 64);
    if (t >= 18446744073709551616.0L)
        return 0;
    return (uint64_t)t;
}

static void lcx_rope_fill(lcx_rope *r)
{
    ld theta[LCX_ROPE_MAX_PAIRS], a;
    lcx_rope_compute(&r->cfg, r->seq_len, theta, &a);
    r->a = (double)a;
    for (int32_t i = 0; i < r->n_pairs; i++) {
        r->theta[i] = (double)theta[i];
        r->turns[i] = lcx_turns_of(theta[i]);
    }
    lcx_rope_compute_hf_f32(&r->cfg, r->seq_len, r->theta_f32);
}

lcx_status lcx_rope_create(lcx_context *ctx, const lcx_rope_config *cfg, int64_t seq_len, lcx_rope **out)
{
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, "rope_create")) != LCX_OK || (st = lcx_rope_config_validate(cfg)) != LCX_OK)
        return st;
    if (!out)
        BAD("out is NULL");
    if (seq_len < 0)
        BAD("seq_len %" PRId64 " is negative", seq_len);
    const int32_t n = lcx_rope_dim(cfg) / 2;
    const int32_t pad = (n + LCX_ROPE_PAD - 1) / LCX_ROPE_PAD * LCX_ROPE_PAD;
    lcx_rope *r = calloc(1, sizeof *r);
    if (!r)
        return lcx_fail(LCX_E_NOMEM, "rope_create: out of memory");
    r->cfg = *cfg;
    r->cfg.rotary_dim = 2 * n;
    r->device = ctx->device;
    r->n_pairs = n;
    r->n_pad = pad;
    r->seq_len = seq_len;
    r->theta = calloc((size_t)pad, sizeof *r->theta);
    r->turns = aligned_alloc(64, (size_t)pad * sizeof *r->turns);
    r->turns0 = aligned_alloc(64, (size_t)pad * sizeof *r->turns0);
    r->theta_f32 = aligned_alloc(64, (size_t)pad * sizeof *r->theta_f32);
    r->theta0_f32 = aligned_alloc(64, (size_t)pad * sizeof *r->theta0_f32);
    if (cfg->type == LCX_ROPE_LONGROPE)
        r->factors = malloc(2 * (size_t)n * sizeof *r->factors);
    if (!r->theta || !r->turns || !r->turns0 || !r->theta_f32 || !r->theta0_f32 ||
        (cfg->type == LCX_ROPE_LONGROPE && !r->factors)) {
        lcx_rope_destroy(r);
        return lcx_fail(LCX_E_NOMEM, "rope_create: out of memory");
    }
    memset(r->turns, 0, (size_t)pad * sizeof *r->turns);
    memset(r->turns0, 0, (size_t)pad * sizeof *r->turns0);
    memset(r->theta_f32, 0, (size_t)pad * sizeof *r->theta_f32);
    memset(r->theta0_f32, 0, (size_t)pad * sizeof *r->theta0_f32);
    if (r->factors) {
        memcpy(r->factors, cfg->short_factor, (size_t)n * sizeof *r->factors);
        memcpy(r->factors + n, cfg->long_factor, (size_t)n * sizeof *r->factors);
        r->cfg.short_factor = r->factors;
        r->cfg.long_factor = r->factors + n;
    } else {
        r->cfg.short_factor = r->cfg.long_factor = NULL;
    }
    /* plain RoPE with the same base and dim: used below n_hat */
    lcx_rope_config plain = r->cfg;
    plain.type = LCX_ROPE_DEFAULT;
    plain.attention_factor = 0;
    ld theta0[LCX_ROPE_MAX_PAIRS], a0;
    lcx_rope_compute(&plain, 0, theta0, &a0);
    for (int32_t i = 0; i < n; i++)
        r->turns0[i] = lcx_turns_of(theta0[i]);
    lcx_rope_compute_hf_f32(&plain, 0, r->theta0_f32);
    lcx_rope_fill(r);
    *out = r;
    return LCX_OK;
}

void lcx_rope_destroy(lcx_rope *r)
{
    if (!r)
        return;
    free(r->theta);
    free(r->turns);
    free(r->turns0);
    free(r->theta_f32);
    free(r->theta0_f32);
    free(r->factors);
    free(r);
}

lcx_status lcx_rope_set_length(lcx_rope *r, int64_t seq_len)
{
    if (!r)
        BAD("set_length: rope is NULL");
    if (seq_len < 0)
        BAD("set_length: seq_len %" PRId64 " is negative", seq_len);
    r->seq_len = seq_len;
    lcx_rope_fill(r);
    return LCX_OK;
}

void lcx_rope_hf_theta(const lcx_rope *r, float *theta)
{
    memcpy(theta, r->theta_f32, (size_t)r->n_pairs * sizeof *theta);
}

lcx_status lcx_rope_get(const lcx_rope *r, double *inv_freq, double *attention_factor, int32_t *rotary_dim)
{
    if (!r)
        BAD("get: rope is NULL");
    if (inv_freq)
        memcpy(inv_freq, r->theta, (size_t)r->n_pairs * sizeof *inv_freq);
    if (attention_factor)
        *attention_factor = r->a;
    if (rotary_dim)
        *rotary_dim = 2 * r->n_pairs;
    return LCX_OK;
}

/* ---- apply / rerotate / shift ---- */

typedef enum { LCX_ROPE_JOB_APPLY, LCX_ROPE_JOB_REROTATE, LCX_ROPE_JOB_SHIFT } lcx_rope_job_kind;

typedef struct lcx_rope_job {
    lcx_rope_job_kind kind;
    const lcx_ktable *kt;
    const lcx_rope *r, *from; /* REROTATE: r = to */
    const lcx_tensor *x[2];   /* q, k (either NULL) */
    const int64_t *pos;
    int64_t batch, seq, tokens;
    const uint64_t *shift_turns; /* SHIFT: delta * turns mod 2^64 */
} lcx_rope_job;

/* Rotate the first 2*n_pairs dims of every head of one token of tensor t. */
static void lcx_rope_rotate_token(const lcx_rope_job *j, const lcx_tensor *t, int64_t b, int64_t s,
                                  const float *c, const float *sn)
{
    const lcx_ktable *kt = j->kt;
    const int32_t n = j->r->n_pairs;
    const int interleaved = j->r->cfg.layout == LCX_ROPE_INTERLEAVED;
    const int64_t heads = t->shape[2], hs = t->stride[2];
    const size_t es = lcx_dtype_size(t->dtype);
    char *base = (char *)t->data + (size_t)(b * t->stride[0] + s * t->stride[1]) * es;
    if (t->dtype == LCX_F32) {
        if (interleaved)
            kt->rope_rot_interleaved_f32((float *)base, hs, heads, c, sn, n);
        else
            kt->rope_rot_neox_f32((float *)base, hs, heads, c, sn, n);
        return;
    }
    /* 16-bit: widened in registers, rotated in f32, rounded once */
    const int32_t bf16 = t->dtype == LCX_BF16;
    if (interleaved)
        kt->rope_rot_interleaved_x16((uint16_t *)base, hs, heads, c, sn, n, bf16);
    else
        kt->rope_rot_neox_x16((uint16_t *)base, hs, heads, c, sn, n, bf16);
}

static void lcx_rope_task(void *arg, int64_t task)
{
    const lcx_rope_job *j = arg;
    const lcx_rope *r = j->r;
    const lcx_ktable *kt = j->kt;
    const int32_t n = r->n_pairs, pad = r->n_pad;
    _Alignas(64) float c[LCX_ROPE_MAX_PAIRS], sn[LCX_ROPE_MAX_PAIRS];
    _Alignas(64) float c2[LCX_ROPE_MAX_DIM], s2[LCX_ROPE_MAX_DIM];
    _Alignas(64) uint64_t dt[LCX_ROPE_MAX_PAIRS];
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t t0 = task * LCX_ROPE_TOKENS_PER_TASK;
    const int64_t t1 = t0 + LCX_ROPE_TOKENS_PER_TASK < j->tokens ? t0 + LCX_ROPE_TOKENS_PER_TASK : j->tokens;
    for (int64_t tok = t0; tok < t1; tok++) {
        const int64_t b = tok / j->seq, s = tok % j->seq;
        const int64_t p = j->pos ? j->pos[tok] : s;
        if (j->kind == LCX_ROPE_JOB_APPLY) {
            const int plain = r->cfg.type == LCX_ROPE_LONGROPE && p < r->cfg.n_hat;
            const float a = plain ? 1.0f : (float)r->a;
            if (r->cfg.precision == LCX_ROPE_PRECISE)
                kt->rope_cossin(plain ? r->turns0 : r->turns, p, pad, a, c, sn);
            else
                kt->rope_cossin_f32(plain ? r->theta0_f32 : r->theta_f32, (float)p, pad, a, c, sn);
        } else if (j->kind == LCX_ROPE_JOB_REROTATE) {
            /* exact: the difference of two turn fractions, mod one turn */
            const lcx_rope *f = j->from;
            const uint64_t *tt = r->cfg.type == LCX_ROPE_LONGROPE && p < r->cfg.n_hat ? r->turns0 : r->turns;
            const uint64_t *tf = f->cfg.type == LCX_ROPE_LONGROPE && p < f->cfg.n_hat ? f->turns0 : f->turns;
            for (int32_t i = 0; i < pad; i++)
                dt[i] = tt[i] - tf[i];
            kt->rope_cossin(dt, p, pad, 1.0f, c, sn);
        } else {
            kt->rope_cossin(j->shift_turns, 1, pad, 1.0f, c, sn);
        }
        const float *cr = c, *sr = sn;
        if (r->cfg.layout == LCX_ROPE_INTERLEAVED) {
            for (int32_t i = 0; i < n; i++) {
                c2[2 * i] = c2[2 * i + 1] = c[i];
                s2[2 * i] = -sn[i];
                s2[2 * i + 1] = sn[i];
            }
            cr = c2;
            sr = s2;
        }
        for (int k = 0; k < 2; k++)
            if (j->x[k])
                lcx_rope_rotate_token(j, j->x[k], b, s, cr, sr);
    }
    lcx_fpenv_leave(env);
}

static lcx_status lcx_rope_check_x(const lcx_rope *r, const lcx_tensor *t, const char *name)
{
    char what[48];
    snprintf(what, sizeof what, "rope: %s", name);
    lcx_status st = lcx_tensor_validate(t, what, 1);
    if (st != LCX_OK)
        return st;
    if (t->ndim != 4)
        return lcx_fail(LCX_E_INVALID, "rope: %s has %" PRId32 " dims, want 4 [batch][seq][heads][head_dim]",
                        name, t->ndim);
    if (t->shape[3] != r->cfg.head_dim)
        return lcx_fail(LCX_E_INVALID, "rope: %s head_dim %" PRId64 " differs from the rope's %" PRId32,
                        name, t->shape[3], r->cfg.head_dim);
    return LCX_OK;
}

/* Common validation of apply/rerotate/shift; fills job shapes. */
static lcx_status lcx_rope_prepare(lcx_context *ctx, const char *op, const lcx_rope *r, const lcx_tensor *q,
                                   const lcx_tensor *k, const int64_t *positions, int need_pos_check,
                                   lcx_rope_job *j)
{
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK)
        return st;
    if (!r)
        return lcx_fail(LCX_E_INVALID, "%s: rope is NULL", op);
    if (!q && !k)
        return lcx_fail(LCX_E_INVALID, "%s: q and k are both NULL", op);
    if (q && (st = lcx_rope_check_x(r, q, "q")) != LCX_OK)
        return st;
    if (k && (st = lcx_rope_check_x(r, k, "k")) != LCX_OK)
        return st;
    if (q && k) {
        if (q->shape[0] != k->shape[0] || q->shape[1] != k->shape[1])
            return lcx_fail(LCX_E_INVALID,
                            "%s: q is [%" PRId64 "][%" PRId64 "] tokens but k is [%" PRId64 "][%" PRId64 "]",
                            op, q->shape[0], q->shape[1], k->shape[0], k->shape[1]);
        if (!lcx_views_disjoint(q, k))
            return lcx_fail(LCX_E_INVALID, "%s: q and k overlap in memory", op);
    }
    const lcx_tensor *t = q ? q : k;
    j->batch = t->shape[0];
    j->seq = t->shape[1];
    if (!lcx_mul_i64(j->batch, j->seq, &j->tokens))
        return lcx_fail(LCX_E_OVERFLOW, "%s: batch x seq overflows", op);
    if (!positions && j->seq - 1 > LCX_ROPE_MAX_POS)
        return lcx_fail(LCX_E_INVALID, "%s: seq %" PRId64 " exceeds the position range [0, 2^31-1]", op, j->seq);
    if ((st = lcx_check_ptr_aligned(op, "positions", positions, sizeof *positions)) != LCX_OK)
        return st;
    /* CUDA: positions live in device memory and are checked there (before
     * anything is written) by lcx_cuda_rope */
    if (positions && need_pos_check && ctx->device == LCX_DEVICE_CPU) {
        for (int64_t i = 0; i < j->tokens; i++)
            if (positions[i] < 0 || positions[i] > LCX_ROPE_MAX_POS)
                return lcx_fail(LCX_E_INVALID,
                                "%s: positions[%" PRId64 "][%" PRId64 "] = %" PRId64 " is outside [0, 2^31-1]",
                                op, i / j->seq, i % j->seq, positions[i]);
    }
    j->kt = &ctx->kt;
    j->r = r;
    j->x[0] = q;
    j->x[1] = k;
    j->pos = positions;
    return LCX_OK;
}

#if defined(LCX_HAVE_CUDA)
static int64_t lcx_rope_nhat(const lcx_rope *r)
{
    return r->cfg.type == LCX_ROPE_LONGROPE ? r->cfg.n_hat : 0;
}

static lcx_status lcx_rope_run_cuda(lcx_context *ctx, const char *op, const lcx_rope_job *j)
{
    const lcx_rope *r = j->r;
    lcx_cuda_rope_desc d;
    memset(&d, 0, sizeof d);
    d.n_pairs = r->n_pairs;
    d.interleaved = r->cfg.layout == LCX_ROPE_INTERLEAVED;
    d.a = 1.0f;
    d.n_hat = lcx_rope_nhat(r);
    d.turns = r->turns;
    d.turns0 = r->turns0;
    if (j->kind == LCX_ROPE_JOB_APPLY) {
        d.a = (float)r->a;
        if (r->cfg.precision == LCX_ROPE_PRECISE) {
            d.mode = 0;
        } else {
            d.mode = 1;
            d.theta = r->theta_f32;
            d.theta0 = r->theta0_f32;
        }
    } else if (j->kind == LCX_ROPE_JOB_SHIFT) {
        d.mode = 3;
        d.n_hat = 0;
        d.turns = d.turns0 = j->shift_turns;
    } else {
        d.mode = 2;
        d.n_hat_from = lcx_rope_nhat(j->from);
        d.from_turns = j->from->turns;
        d.from_turns0 = j->from->turns0;
    }
    return lcx_cuda_rope(ctx->cuda, op, &d, j->x[0], j->x[1], j->pos, j->batch, j->seq);
}
#endif

static lcx_status lcx_rope_run(lcx_context *ctx, const char *op, lcx_rope_job *j)
{
    if (j->tokens == 0)
        return LCX_OK;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_rope_run_cuda(ctx, op, j);
#else
    (void)op;
#endif
    const int64_t n_tasks = (j->tokens + LCX_ROPE_TOKENS_PER_TASK - 1) / LCX_ROPE_TOKENS_PER_TASK;
    return lcx_parallel(ctx, n_tasks, lcx_rope_task, j);
}

lcx_status lcx_rope_apply(lcx_context *ctx, const lcx_rope *rope, const lcx_tensor *q, const lcx_tensor *k,
                          const int64_t *positions)
{
    lcx_rope_job j = {0};
    lcx_status st = lcx_rope_prepare(ctx, "rope_apply", rope, q, k, positions, 1, &j);
    if (st != LCX_OK)
        return st;
    j.kind = LCX_ROPE_JOB_APPLY;
    return lcx_rope_run(ctx, "rope_apply", &j);
}

lcx_status lcx_rope_rerotate(lcx_context *ctx, const lcx_rope *from, const lcx_rope *to, const lcx_tensor *k,
                             const int64_t *positions)
{
    if (!from || !to)
        return lcx_fail(LCX_E_INVALID, "rope_rerotate: %s is NULL", !from ? "from" : "to");
    if (!k)
        return lcx_fail(LCX_E_INVALID, "rope_rerotate: k is NULL");
    if (from->cfg.head_dim != to->cfg.head_dim || from->n_pairs != to->n_pairs ||
        from->cfg.layout != to->cfg.layout)
        return lcx_fail(LCX_E_INVALID,
                        "rope_rerotate: from and to differ in head_dim, rotary_dim or layout");
    lcx_rope_job j = {0};
    lcx_status st = lcx_rope_prepare(ctx, "rope_rerotate", to, NULL, k, positions, 1, &j);
    if (st != LCX_OK)
        return st;
    j.kind = LCX_ROPE_JOB_REROTATE;
    j.from = from;
    return lcx_rope_run(ctx, "rope_rerotate", &j);
}

lcx_status lcx_rope_shift(lcx_context *ctx, const lcx_rope *rope, const lcx_tensor *k, int64_t delta)
{
    if (!k)
        return lcx_fail(LCX_E_INVALID, "rope_shift: k is NULL");
    if (delta < -LCX_ROPE_MAX_POS || delta > LCX_ROPE_MAX_POS)
        return lcx_fail(LCX_E_INVALID, "rope_shift: delta %" PRId64 " is outside +-(2^31-1)", delta);
    lcx_rope_job j = {0};
    lcx_status st = lcx_rope_prepare(ctx, "rope_shift", rope, NULL, k, NULL, 0, &j);
    if (st != LCX_OK)
        return st;
    if (rope->cfg.type == LCX_ROPE_LONGROPE && rope->cfg.n_hat > 0)
        return lcx_fail(LCX_E_INVALID,
                        "rope_shift: LONGROPE with n_hat %" PRId64 " rotates positions below n_hat differently; "
                        "shift needs positions (use lcx_rope_rerotate)", rope->cfg.n_hat);
    _Alignas(64) uint64_t turns[LCX_ROPE_MAX_PAIRS];
    for (int32_t i = 0; i < rope->n_pad; i++)
        turns[i] = (uint64_t)delta * rope->turns[i]; /* exact mod one turn, sign included */
    j.kind = LCX_ROPE_JOB_SHIFT;
    j.shift_turns = turns;
    return lcx_rope_run(ctx, "rope_shift", &j);
}
