/* LoRA linear layers (lcx_lora_linear, lcx_lora_batched, lcx_lora_merge) on
 * every ISA against a double-precision oracle computed from the exact values
 * stored in the tensors (16-bit inputs widen exactly).
 *
 * Tolerance. With u = 2^-24 (f32 unit roundoff), an f32 sum of n products
 * carries at most about n u sum|terms| of error, in any order, with or
 * without FMA. The low-rank path first forms u_j = s (x A^T)_j in f32
 * (error <= (in + 1) u |s| sum_k |x_k A_jk|), then adds `rank` more products
 * u_j B_oj to the same accumulator as the in products x_k W_ok, the bias and
 * the old y. With
 *   M = sum_k |x_k W_ok| + |s| sum_j (sum_k |x_k A_jk|) |B_oj| + |bias_o| + |y_old|
 * the f32 result is within (2 in + rank + 3) u M of the exact value, and the
 * final rounding to y's dtype adds at most u_y |result| (unit roundoff of the
 * output: 2^-24 f32, 2^-8 bf16, 2^-11 f16) plus half its smallest subnormal.
 * Every element is checked against
 *   tol = C ((in + rank + 2) u M + u_y |ref| + sub_y),   C = 2,
 * which covers the bound above (2 (in + rank + 2) >= 2 in + rank + 3).
 * lcx_lora_batched uses the same bound with the adapter's rank, no W and no
 * bias. lcx_lora_merge (W += s B A, `rank` products per element):
 *   tol = C ((rank + 2) u (|W| + |s| sum_j |B_oj A_jk|) + u_W |ref| + sub_W),
 * and merge followed by unmerge (the same call with -s) is two such
 * operations, so |W'' - W| <= C ((rank + 2) u (|W| + |W'| + 2 S) +
 * u_W (|W'| + |W|) + 2 sub_W) with W' the merged value and
 * S = |s| sum_j |B_oj A_jk|: for an f32 W a few ulps of |W| + S, for a 16-bit
 * W two roundings of half an ulp each of the intermediate magnitudes.
 *
 * The checks are not vacuous: in every case with at least 8 tokens and 8
 * outputs, the low-rank term, the scale (the result with s replaced by 1),
 * the bias, the base product and the old y (with accumulate) must each move
 * some element by more than 2 tol, so an implementation that drops one of
 * them, ignores the scale or adds the bias twice fails the comparison. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "ref/convert_ref.h"

#define TOL_C 2.0
#define U24 0x1p-24

static const lcx_dtype dts[3] = {LCX_F32, LCX_BF16, LCX_F16};
/* scales: none is 1 (so "scale ignored" is detectable), both signs */
static const float scales[7] = {2.0f, -0.5f, 0.375f, -1.75f, 1.5f, -2.5f, 0.625f};

static double unit_roundoff(lcx_dtype dt)
{
    return dt == LCX_F32 ? 0x1p-24 : dt == LCX_BF16 ? 0x1p-8 : 0x1p-11;
}

/* half the smallest subnormal of the dtype */
static double sub_half(lcx_dtype dt)
{
    return dt == LCX_F32 ? 0x1p-150 : dt == LCX_BF16 ? 0x1p-134 : 0x1p-25;
}

/* ------------------------------------------------------------------ */
/* Views: a 1-D or 2-D lcx_tensor over a guarded buffer, with the exact  */
/* values of its elements kept dense (row-major) beside it.             */
/* ------------------------------------------------------------------ */

enum { L_DENSE, L_PAD, L_INNER, L_TRANS, L_COUNT };
static const char *const layout_names[L_COUNT] = {"dense", "pad", "inner", "trans"};

typedef struct view {
    lcx_guarded g;
    lcx_tensor t;
    double *v; /* exact values, [rows][cols] */
    int64_t rows, cols;
    int layout;
    unsigned char *snap;
} view;

static int64_t view_off(const view *w, int64_t r, int64_t c)
{
    if (w->t.ndim == 1)
        return c * w->t.stride[0];
    return r * w->t.stride[0] + c * w->t.stride[1];
}

static double raw_get(lcx_dtype dt, const void *data, int64_t o)
{
    if (dt == LCX_F32)
        return ((const float *)data)[o];
    return lcx_ref_decode16(dt, ((const uint16_t *)data)[o]);
}

/* store v rounded to dt at element offset o; returns the stored value */
static double raw_put(lcx_dtype dt, void *data, int64_t o, double v)
{
    if (dt == LCX_F32) {
        ((float *)data)[o] = (float)v;
        return (float)v;
    }
    const uint16_t h = lcx_ref_encode16(dt, lcx_ref_round(dt, v));
    ((uint16_t *)data)[o] = h;
    return lcx_ref_decode16(dt, h);
}

static void raw_put_nan(lcx_dtype dt, void *data, int64_t o)
{
    if (dt == LCX_F32)
        ((float *)data)[o] = NAN;
    else
        ((uint16_t *)data)[o] = dt == LCX_BF16 ? 0x7fc0u : 0x7e00u;
}

static double view_get(const view *w, int64_t r, int64_t c)
{
    return raw_get(w->t.dtype, w->t.data, view_off(w, r, c));
}

/* nd = 1: a vector of `cols` elements (rows must be 1). Layouts: dense, rows
 * padded, inner stride 2..3 (and padded rows), transposed (column-major with
 * a padded column stride). Elements are uniform in [-amp, amp); the bytes
 * between elements keep the guard poison. */
static void view_make(view *w, lcx_dtype dt, int nd, int64_t rows, int64_t cols, int layout, double amp,
                      lcx_rng *rng)
{
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->layout = layout;
    lcx_tensor *t = &w->t;
    t->dtype = dt;
    t->ndim = nd;
    int64_t span;
    if (nd == 1) {
        t->shape[0] = cols;
        t->stride[0] = layout == L_INNER || layout == L_TRANS ? lcx_rng_range(rng, 2, 3) : 1;
        span = cols > 0 ? (cols - 1) * t->stride[0] + 1 : 0;
    } else {
        t->shape[0] = rows;
        t->shape[1] = cols;
        switch (layout) {
        case L_PAD:
            t->stride[1] = 1;
            t->stride[0] = cols + lcx_rng_range(rng, 1, 5);
            break;
        case L_INNER:
            t->stride[1] = lcx_rng_range(rng, 2, 3);
            t->stride[0] = cols * t->stride[1] + lcx_rng_range(rng, 0, 3);
            break;
        case L_TRANS:
            t->stride[0] = 1;
            t->stride[1] = rows + lcx_rng_range(rng, 0, 3);
            break;
        default:
            t->stride[1] = 1;
            t->stride[0] = cols;
            break;
        }
        span = rows > 0 && cols > 0 ? (rows - 1) * t->stride[0] + (cols - 1) * t->stride[1] + 1 : 0;
    }
    t->data = lcx_guard_alloc(&w->g, (size_t)span * lcx_dtype_size(dt));
    w->v = malloc(sizeof(double) * (size_t)(rows * cols + 1));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w->v[r * cols + c] = raw_put(dt, t->data, view_off(w, r, c), lcx_rng_uniform(rng, -amp, amp));
}

static void view_fill_nan(view *w)
{
    for (int64_t r = 0; r < w->rows; r++)
        for (int64_t c = 0; c < w->cols; c++) {
            raw_put_nan(w->t.dtype, w->t.data, view_off(w, r, c));
            w->v[r * w->cols + c] = NAN;
        }
}

static void view_snap(view *w)
{
    free(w->snap);
    w->snap = malloc(w->g.bytes + 1);
    memcpy(w->snap, w->g.data, w->g.bytes);
}

/* the whole buffer (elements and gaps) and its guards are as at the snapshot */
static void view_unchanged(const view *w, const char *what)
{
    lcx_expect_bytes_equal(w->g.data, w->snap, w->g.bytes, what);
    lcx_guard_check(&w->g, what);
}

static void view_free(view *w)
{
    lcx_guard_free(&w->g);
    free(w->v);
    free(w->snap);
    w->v = NULL;
    w->snap = NULL;
}

/* Check an output view against ref/tol (ref NAN-free). Rows with
 * keep_row[r] != 0 must be bit-identical to the snapshot; bytes between the
 * elements must be untouched; guards intact. */
static void check_out(const view *y, const double *ref, const double *tol, const unsigned char *keep_row,
                      const char *what)
{
    const size_t es = lcx_dtype_size(y->t.dtype);
    unsigned char *elem = calloc(y->g.bytes + 1, 1);
    const unsigned char *now = y->g.data;
    for (int64_t r = 0; r < y->rows; r++)
        for (int64_t c = 0; c < y->cols; c++) {
            const int64_t o = view_off(y, r, c);
            memset(elem + o * (int64_t)es, 1, es);
            if (keep_row && keep_row[r]) {
                if (memcmp(now + o * (int64_t)es, y->snap + o * (int64_t)es, es) != 0)
                    lcx_fail_msg("%s: row %lld (no adapter) col %lld changed: %.9g, was %.9g", what, (long long)r,
                                 (long long)c, view_get(y, r, c), raw_get(y->t.dtype, y->snap, o));
                continue;
            }
            const double got = view_get(y, r, c), want = ref[r * y->cols + c], tl = tol[r * y->cols + c];
            if (!(fabs(got - want) <= tl))
                lcx_fail_msg("%s: [%lld][%lld] = %.9g, want %.9g (|err| %.3g > tol %.3g)", what, (long long)r,
                             (long long)c, got, want, fabs(got - want), tl);
        }
    for (size_t b = 0; b < y->g.bytes; b++)
        if (!elem[b] && now[b] != y->snap[b])
            lcx_fail_msg("%s: byte %zu between the elements was written", what, b);
    lcx_guard_check(&y->g, what);
    free(elem);
}

/* ------------------------------------------------------------------ */
/* lcx_lora_linear                                                      */
/* ------------------------------------------------------------------ */

typedef struct lcase {
    int64_t T, in, out, rank;
    lcx_dtype dx, dw, da, db, dbias, dy;
    int lx, lw, la, lb, lbias, ly;
    int has_w, has_bias, has_lr, acc;
    float scale;
} lcase;

static void describe(const lcase *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "T=%lld in=%lld out=%lld rank=%lld x=%s/%s W=%s/%s A=%s/%s B=%s/%s bias=%s/%s y=%s/%s "
             "w=%d bias=%d lowrank=%d acc=%d scale=%g",
             (long long)c->T, (long long)c->in, (long long)c->out, (long long)c->rank, lcx_dtype_name(c->dx),
             layout_names[c->lx], lcx_dtype_name(c->dw), layout_names[c->lw], lcx_dtype_name(c->da),
             layout_names[c->la], lcx_dtype_name(c->db), layout_names[c->lb], lcx_dtype_name(c->dbias),
             layout_names[c->lbias], lcx_dtype_name(c->dy), layout_names[c->ly], c->has_w, c->has_bias,
             c->has_lr, c->acc, (double)c->scale);
}

typedef struct lin_data {
    view x, w, a, b, bias, y;
} lin_data;

static void lin_make(lin_data *d, const lcase *c, lcx_rng *rng)
{
    const double rin = sqrt((double)(c->in > 0 ? c->in : 1)), sr = sqrt((double)(c->rank > 0 ? c->rank : 1));
    memset(d, 0, sizeof *d);
    view_make(&d->x, c->dx, 2, c->T, c->in, c->lx, 1.0, rng);
    if (c->has_w)
        view_make(&d->w, c->dw, 2, c->out, c->in, c->lw, 1.0 / rin, rng);
    if (c->has_bias)
        view_make(&d->bias, c->dbias, 1, 1, c->out, c->lbias, 0.5, rng);
    if (c->has_lr) {
        view_make(&d->a, c->da, 2, c->rank, c->in, c->la, 1.0 / rin, rng);
        view_make(&d->b, c->db, 2, c->out, c->rank, c->lb, 2.0 / sr, rng);
    }
    view_make(&d->y, c->dy, 2, c->T, c->out, c->ly, 1.0, rng);
    if (!c->acc)
        view_fill_nan(&d->y); /* must be neither read nor kept */
}

static void lin_free(lin_data *d)
{
    view_free(&d->x);
    view_free(&d->w);
    view_free(&d->a);
    view_free(&d->b);
    view_free(&d->bias);
    view_free(&d->y);
}

static lcx_status lin_call(lcx_context *ctx, const lcase *c, lin_data *d)
{
    return lcx_lora_linear(ctx, &d->x.t, c->has_w ? &d->w.t : NULL, c->has_bias ? &d->bias.t : NULL,
                           c->has_lr ? &d->a.t : NULL, c->has_lr ? &d->b.t : NULL, c->scale, &d->y.t, c->acc);
}

/* ratios max |term| / tol over the elements, for the non-vacuity checks */
typedef struct sens {
    double lr, sc, bias, base, yold;
} sens;

/* ref and tol for every y element (the NaN y of accumulate = 0 is not read) */
static void lin_oracle(const lcase *c, const lin_data *d, double *ref, double *tol, sens *se)
{
    const int64_t T = c->T, in = c->in, out = c->out, R = c->has_lr ? c->rank : 0;
    /* without a low-rank term the scale is ignored (it may be NaN) */
    const double s = c->has_lr ? c->scale : 0, uy = unit_roundoff(c->dy), sy = sub_half(c->dy);
    double *u = malloc(sizeof(double) * (size_t)(R > 0 ? R : 1)), *ua = malloc(sizeof(double) * (size_t)(R > 0 ? R : 1));
    memset(se, 0, sizeof *se);
    for (int64_t t = 0; t < T; t++) {
        const double *x = d->x.v + t * in;
        for (int64_t j = 0; j < R; j++) {
            const double *a = d->a.v + j * in;
            double acc = 0, aa = 0;
            for (int64_t k = 0; k < in; k++) {
                acc += x[k] * a[k];
                aa += fabs(x[k] * a[k]);
            }
            u[j] = acc;
            ua[j] = aa;
        }
        for (int64_t o = 0; o < out; o++) {
            double base = 0, babs = 0;
            if (c->has_w) {
                const double *w = d->w.v + o * in;
                for (int64_t k = 0; k < in; k++) {
                    base += x[k] * w[k];
                    babs += fabs(x[k] * w[k]);
                }
            }
            double p = 0, pabs = 0;
            for (int64_t j = 0; j < R; j++) {
                const double bj = d->b.v[o * R + j];
                p += u[j] * bj;
                pabs += ua[j] * fabs(bj);
            }
            const double bias = c->has_bias ? d->bias.v[o] : 0, yo = c->acc ? d->y.v[t * out + o] : 0;
            const double r = yo + base + bias + s * p;
            const double M = babs + fabs(s) * pabs + fabs(bias) + fabs(yo);
            const double tl = TOL_C * ((double)(in + R + 2) * U24 * M + uy * fabs(r) + sy);
            ref[t * out + o] = r;
            tol[t * out + o] = tl;
            se->lr = fmax(se->lr, fabs(s * p) / tl);
            se->sc = fmax(se->sc, fabs((s - 1) * p) / tl);
            se->bias = fmax(se->bias, fabs(bias) / tl);
            se->base = fmax(se->base, fabs(base) / tl);
            se->yold = fmax(se->yold, fabs(yo) / tl);
        }
    }
    free(u);
    free(ua);
}

/* The terms the case has must each be far above the tolerance somewhere. */
static void lin_nonvacuous(const lcase *c, const sens *se, const char *desc)
{
    if (c->T < 8 || c->out < 8)
        return;
    if (c->has_lr && c->scale != 0 && !(se->lr > 2))
        lcx_fail_msg("vacuous: low-rank term at most %.3g tol (%s)", se->lr, desc);
    if (c->has_lr && !(se->sc > 2))
        lcx_fail_msg("vacuous: scale changes at most %.3g tol (%s)", se->sc, desc);
    if (c->has_bias && !(se->bias > 2))
        lcx_fail_msg("vacuous: bias at most %.3g tol (%s)", se->bias, desc);
    if (c->has_w && c->in >= 8 && !(se->base > 2))
        lcx_fail_msg("vacuous: base product at most %.3g tol (%s)", se->base, desc);
    if (c->acc && !(se->yold > 2))
        lcx_fail_msg("vacuous: old y at most %.3g tol (%s)", se->yold, desc);
}

static void run_linear(lcx_context *ctx, const lcase *c, lcx_rng *rng)
{
    char desc[512];
    describe(c, desc, sizeof desc);
    lin_data d;
    lin_make(&d, c, rng);
    double *ref = malloc(sizeof(double) * (size_t)(c->T * c->out + 1));
    double *tol = malloc(sizeof(double) * (size_t)(c->T * c->out + 1));
    sens se;
    lin_oracle(c, &d, ref, tol, &se);
    lin_nonvacuous(c, &se, desc);
    view_snap(&d.x);
    view_snap(&d.y);
    if (c->has_w)
        view_snap(&d.w);
    if (c->has_lr) {
        view_snap(&d.a);
        view_snap(&d.b);
    }
    if (c->has_bias)
        view_snap(&d.bias);
    const lcx_status st = lin_call(ctx, c, &d);
    if (st != LCX_OK)
        lcx_fail_msg("lora_linear(%s): %s: %s", desc, lcx_status_string(st), lcx_last_error());
    check_out(&d.y, ref, tol, NULL, desc);
    view_unchanged(&d.x, "x");
    if (c->has_w)
        view_unchanged(&d.w, "W");
    if (c->has_lr) {
        view_unchanged(&d.a, "A");
        view_unchanged(&d.b, "B");
    }
    if (c->has_bias)
        view_unchanged(&d.bias, "bias");
    free(ref);
    free(tol);
    lin_free(&d);
}

static lcase lcase_random(lcx_rng *rng, int64_t T, int64_t in, int64_t out, int64_t rank, int views)
{
    lcase c;
    memset(&c, 0, sizeof c);
    c.T = T;
    c.in = in;
    c.out = out;
    c.rank = rank;
    c.dx = dts[lcx_rng_range(rng, 0, 2)];
    c.dw = dts[lcx_rng_range(rng, 0, 2)];
    c.da = dts[lcx_rng_range(rng, 0, 2)];
    c.db = dts[lcx_rng_range(rng, 0, 2)];
    c.dbias = dts[lcx_rng_range(rng, 0, 2)];
    c.dy = dts[lcx_rng_range(rng, 0, 2)];
    const int hi = views ? L_COUNT - 1 : L_PAD;
    c.lx = (int)lcx_rng_range(rng, 0, hi);
    c.lw = (int)lcx_rng_range(rng, 0, hi);
    c.la = (int)lcx_rng_range(rng, 0, hi);
    c.lb = (int)lcx_rng_range(rng, 0, hi);
    c.lbias = views && lcx_rng_range(rng, 0, 1) ? L_INNER : L_DENSE;
    c.ly = (int)lcx_rng_range(rng, 0, hi);
    c.has_w = c.has_lr = 1;
    c.has_bias = lcx_rng_range(rng, 0, 3) != 0;
    c.acc = (int)lcx_rng_range(rng, 0, 1);
    c.scale = scales[lcx_rng_range(rng, 0, 6)];
    return c;
}

static const int64_t rank_list[5] = {1, 8, 16, 64, 128};

static void test_linear_small_tokens(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 101);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t ins[8] = {1, 3, 17, 33, 100, 255, 256, 257}, outs[7] = {1, 3, 17, 31, 32, 33, 65};
    /* every token count of the small-token path and past it, twice */
    for (int rep = 0; rep < 2; rep++)
        for (int64_t T = 1; T <= 20; T++) {
            const lcase c = lcase_random(&rng, T, ins[lcx_rng_range(&rng, 0, 7)], outs[lcx_rng_range(&rng, 0, 6)],
                                         rank_list[lcx_rng_range(&rng, 0, 3)], 0);
            run_linear(ctx, &c, &rng);
        }
    /* one token: GEMV over sizes around the vector widths */
    for (int k = 0; k < 12; k++) {
        const lcase c = lcase_random(&rng, 1, ins[k % 8] + (k >= 8 ? 800 : 0), outs[k % 7] + (k % 3) * 64,
                                     rank_list[k % 5], 0);
        run_linear(ctx, &c, &rng);
    }
    lcx_context_destroy(ctx);
}

static void test_linear_tiles(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 102);
    lcx_context *ctx = lcx_test_context(0);
    /* tokens and outputs around the register tile, reductions around the
     * reduction block */
    const int64_t Ts[6] = {11, 12, 13, 23, 24, 25}, outs[6] = {31, 32, 33, 63, 64, 65};
    const int64_t ins[6] = {255, 256, 257, 511, 512, 513};
    int k = 0;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++, k++) {
            const lcase c = lcase_random(&rng, Ts[i], ins[k % 6], outs[j], rank_list[k % 5], 0);
            run_linear(ctx, &c, &rng);
        }
    /* reduction lengths, from 1 to past 1000 */
    const int64_t ins2[14] = {1, 3, 17, 33, 100, 255, 256, 257, 511, 512, 513, 1000, 1024, 1031};
    for (int i = 0; i < 14; i++) {
        const lcase c = lcase_random(&rng, 37, ins2[i], 40, rank_list[i % 4], 0);
        run_linear(ctx, &c, &rng);
    }
    /* odd sizes everywhere */
    const int64_t odd[5] = {1, 3, 17, 33, 100};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            const lcase c = lcase_random(&rng, odd[i], odd[(i + j) % 5], odd[j], rank_list[(i + j) % 5], 0);
            run_linear(ctx, &c, &rng);
        }
    lcx_context_destroy(ctx);
}

static void test_linear_ranks(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 103);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t ranks[17] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128};
    for (int i = 0; i < 17; i++)
        for (int big = 0; big < 2; big++) {
            const lcase c = lcase_random(&rng, big ? 30 : 9, 100, 50, ranks[i], 0);
            run_linear(ctx, &c, &rng);
        }
    /* the large cases: several token blocks, a long reduction */
    lcase c = lcase_random(&rng, 64, 1024, 256, 64, 0);
    run_linear(ctx, &c, &rng);
    c = lcase_random(&rng, 100, 1000, 100, 16, 0);
    c.acc = 1;
    run_linear(ctx, &c, &rng);
    c = lcase_random(&rng, 130, 300, 70, 8, 0);
    run_linear(ctx, &c, &rng);
    /* more tokens than the few-token paths take (packed GEMM): dense
     * weights of every dtype, whole and partial 16-row transposes, reduction
     * lengths with and without a tail of the 16-step transpose */
    const int64_t packed[6][4] = {{300, 300, 70, 16}, {257, 256, 64, 8}, {400, 33, 96, 1},
                                  {290, 129, 31, 64}, {260, 200, 40, 128}, {270, 64, 50, 33}};
    for (int i = 0; i < 6; i++)
        for (int d = 0; d < 3; d++) {
            c = lcase_random(&rng, packed[i][0], packed[i][1], packed[i][2], packed[i][3], 0);
            c.lw = c.lb = L_DENSE;
            c.has_w = 1;
            c.dw = c.db = dts[d];
            run_linear(ctx, &c, &rng);
            if (d == 0) { /* the delta alone (u as its own GEMM) */
                c.has_w = 0;
                run_linear(ctx, &c, &rng);
            }
        }
    /* few tokens with a transposed B take the packed path too: delta only */
    for (int i = 0; i < 3; i++) {
        c = lcase_random(&rng, 5 + 40 * i, 64, 40, 8, 0);
        c.has_w = 0;
        c.lb = L_TRANS;
        run_linear(ctx, &c, &rng);
    }
    lcx_context_destroy(ctx);
}

/* every dtype of x, W, A, B, bias and y, independently */
static void test_linear_dtypes(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 104);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t Ts[4] = {1, 5, 13, 30};
    for (int combo = 0; combo < 729; combo++) {
        lcase c = lcase_random(&rng, Ts[combo % 4], (combo & 4) ? 67 : 40, (combo & 8) ? 33 : 9,
                               (combo & 16) ? 8 : 4, 0);
        int k = combo;
        c.dx = dts[k % 3], k /= 3;
        c.dw = dts[k % 3], k /= 3;
        c.da = dts[k % 3], k /= 3;
        c.db = dts[k % 3], k /= 3;
        c.dbias = dts[k % 3], k /= 3;
        c.dy = dts[k % 3];
        c.has_bias = 1;
        run_linear(ctx, &c, &rng);
    }
    lcx_context_destroy(ctx);
}

/* padded rows, inner strides > 1 and transposed views of every operand */
static void test_linear_views(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 105);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t Ts[6] = {1, 4, 12, 13, 25, 70}, ins[3] = {17, 64, 257}, outs[3] = {5, 32, 33};
    for (int it = 0; it < 90; it++) {
        lcase c = lcase_random(&rng, Ts[it % 6], ins[(it / 6) % 3], outs[(it / 2) % 3], rank_list[it % 3], 1);
        if (it < 30) { /* one operand strided at a time, the others dense */
            c.lx = c.lw = c.la = c.lb = c.ly = L_DENSE;
            c.lbias = L_DENSE;
            const int lay = L_PAD + it % 3;
            switch ((it / 3) % 6) {
            case 0: c.lx = lay; break;
            case 1: c.lw = lay; break;
            case 2: c.la = lay; break;
            case 3: c.lb = lay; break;
            case 4: c.ly = lay; break;
            default: c.lbias = L_INNER; break;
            }
        }
        run_linear(ctx, &c, &rng);
    }
    lcx_context_destroy(ctx);
}

/* accumulate, W NULL, bias NULL, plain linear, negative and zero scales */
static void test_linear_options(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 106);
    lcx_context *ctx = lcx_test_context(0);
    const float sc[4] = {-1.25f, 0.0f, 0.75f, -3.0f};
    for (int shape = 0; shape < 2; shape++)
        for (int flags = 0; flags < 8; flags++)
            for (int acc = 0; acc < 2; acc++)
                for (int si = 0; si < 4; si++) {
                    const int has_lr = flags & 1, has_w = (flags >> 1) & 1, has_bias = (flags >> 2) & 1;
                    if (!has_lr && si > 0)
                        continue;
                    lcase c = lcase_random(&rng, shape ? 45 : 6, shape ? 300 : 70, shape ? 70 : 24, shape ? 16 : 8, 0);
                    c.has_lr = has_lr;
                    c.has_w = has_w;
                    c.has_bias = has_bias;
                    c.acc = acc;
                    c.scale = sc[si];
                    run_linear(ctx, &c, &rng);
                }
    /* no low-rank term: the scale is ignored, even when not finite */
    lcase c = lcase_random(&rng, 9, 50, 20, 4, 0);
    c.has_lr = 0;
    c.scale = NAN;
    run_linear(ctx, &c, &rng);
    c.scale = INFINITY;
    run_linear(ctx, &c, &rng);
    lcx_context_destroy(ctx);
}

/* The tolerance is far tighter than the terms it must detect: the results
 * with the low-rank term dropped, the scale replaced by 1, the bias added
 * twice or the old y ignored are each rejected for a typical case. */
static void test_linear_sensitivity(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 107);
    lcx_context *ctx = lcx_test_context(0);
    for (int k = 0; k < 2; k++) {
        lcase c = lcase_random(&rng, k ? 40 : 7, 257, 33, 8, 0);
        c.dy = k ? LCX_BF16 : LCX_F32;
        c.has_bias = c.acc = 1;
        c.scale = -0.5f;
        lin_data d;
        lin_make(&d, &c, &rng);
        const size_t n = (size_t)(c.T * c.out);
        double *ref = malloc(sizeof(double) * n), *tol = malloc(sizeof(double) * n);
        double *alt = malloc(sizeof(double) * n), *atol_ = malloc(sizeof(double) * n);
        sens se;
        lin_oracle(&c, &d, ref, tol, &se);
        assert_int_equal(lin_call(ctx, &c, &d), LCX_OK);
        double *got = malloc(sizeof(double) * n);
        for (int64_t t = 0; t < c.T; t++)
            for (int64_t o = 0; o < c.out; o++)
                got[t * c.out + o] = view_get(&d.y, t, o);
        for (int w = 0; w < 4; w++) {
            lcase b = c;
            if (w == 0)
                b.has_lr = 0;
            else if (w == 1)
                b.scale = 1.0f;
            else if (w == 3)
                b.acc = 0;
            lin_oracle(&b, &d, alt, atol_, &se);
            if (w == 2)
                for (int64_t t = 0; t < c.T; t++)
                    for (int64_t o = 0; o < c.out; o++)
                        alt[t * c.out + o] += d.bias.v[o];
            size_t outside = 0;
            for (size_t i = 0; i < n; i++)
                outside += !(fabs(got[i] - alt[i]) <= tol[i]);
            if (outside < n / 4)
                lcx_fail_msg("variant %d of the oracle (%s) accepts %zu of %zu outputs", w,
                             w == 0 ? "no low-rank term" : w == 1 ? "scale 1" : w == 2 ? "bias twice" : "old y ignored",
                             n - outside, n);
        }
        free(got);
        free(ref);
        free(tol);
        free(alt);
        free(atol_);
        lin_free(&d);
    }
    lcx_context_destroy(ctx);
}

/* ------------------------------------------------------------------ */
/* lcx_lora_batched                                                     */
/* ------------------------------------------------------------------ */

typedef struct bcase {
    int64_t T, in, out;
    int32_t n;
    int64_t ranks[8];
    lcx_dtype dx, dy, da[8], db[8];
    int lx, ly, la[8], lb[8];
    float scale[8];
    int32_t map[512];
} bcase;

static void run_batched(lcx_context *ctx, const bcase *c, lcx_rng *rng, const char *what)
{
    char desc[640];
    int n = snprintf(desc, sizeof desc, "%s: T=%lld in=%lld out=%lld x=%s/%s y=%s/%s adapters=%d", what,
                     (long long)c->T, (long long)c->in, (long long)c->out, lcx_dtype_name(c->dx),
                     layout_names[c->lx], lcx_dtype_name(c->dy), layout_names[c->ly], (int)c->n);
    for (int i = 0; i < c->n && n < (int)sizeof desc - 64; i++)
        n += snprintf(desc + n, sizeof desc - (size_t)n, " [r%lld A=%s/%s B=%s/%s s=%g]", (long long)c->ranks[i],
                      lcx_dtype_name(c->da[i]), layout_names[c->la[i]], lcx_dtype_name(c->db[i]),
                      layout_names[c->lb[i]], (double)c->scale[i]);
    view x, y, A[8], B[8];
    lcx_lora_adapter ad[8];
    view_make(&x, c->dx, 2, c->T, c->in, c->lx, 1.0, rng);
    view_make(&y, c->dy, 2, c->T, c->out, c->ly, 1.0, rng);
    const double rin = sqrt((double)c->in);
    for (int i = 0; i < c->n; i++) {
        view_make(&A[i], c->da[i], 2, c->ranks[i], c->in, c->la[i], 1.0 / rin, rng);
        view_make(&B[i], c->db[i], 2, c->out, c->ranks[i], c->lb[i], 2.0 / sqrt((double)c->ranks[i]), rng);
        ad[i].a = A[i].t;
        ad[i].b = B[i].t;
        ad[i].scale = c->scale[i];
        view_snap(&A[i]);
        view_snap(&B[i]);
    }
    view_snap(&x);
    view_snap(&y);
    const size_t ny = (size_t)(c->T * c->out);
    double *ref = malloc(sizeof(double) * (ny + 1)), *tol = malloc(sizeof(double) * (ny + 1));
    unsigned char *keep = calloc((size_t)c->T + 1, 1);
    const double uy = unit_roundoff(c->dy), sy = sub_half(c->dy);
    double lr_ratio = 0;
    int64_t mapped = 0;
    double u[128], ua[128];
    for (int64_t t = 0; t < c->T; t++) {
        const int32_t i = c->map[t];
        if (i < 0) {
            keep[t] = 1;
            continue;
        }
        mapped++;
        const int64_t R = c->ranks[i];
        const double s = c->scale[i];
        const double *xr = x.v + t * c->in;
        for (int64_t j = 0; j < R; j++) {
            double acc = 0, aa = 0;
            for (int64_t k = 0; k < c->in; k++) {
                acc += xr[k] * A[i].v[j * c->in + k];
                aa += fabs(xr[k] * A[i].v[j * c->in + k]);
            }
            u[j] = acc;
            ua[j] = aa;
        }
        for (int64_t o = 0; o < c->out; o++) {
            double p = 0, pabs = 0;
            for (int64_t j = 0; j < R; j++) {
                p += u[j] * B[i].v[o * R + j];
                pabs += ua[j] * fabs(B[i].v[o * R + j]);
            }
            const double yo = y.v[t * c->out + o];
            const double r = yo + s * p;
            const double M = fabs(yo) + fabs(s) * pabs;
            const double tl = TOL_C * ((double)(c->in + R + 2) * U24 * M + uy * fabs(r) + sy);
            ref[t * c->out + o] = r;
            tol[t * c->out + o] = tl;
            lr_ratio = fmax(lr_ratio, fabs(s * p) / tl);
        }
    }
    if (mapped >= 8 && c->out >= 8 && !(lr_ratio > 2))
        lcx_fail_msg("vacuous: adapter deltas at most %.3g tol (%s)", lr_ratio, desc);
    const lcx_status st = lcx_lora_batched(ctx, &x.t, c->n ? ad : NULL, c->n, c->map, &y.t);
    if (st != LCX_OK)
        lcx_fail_msg("lora_batched(%s): %s: %s", desc, lcx_status_string(st), lcx_last_error());
    check_out(&y, ref, tol, keep, desc);
    view_unchanged(&x, "x");
    for (int i = 0; i < c->n; i++) {
        view_unchanged(&A[i], "adapter A");
        view_unchanged(&B[i], "adapter B");
        view_free(&A[i]);
        view_free(&B[i]);
    }
    view_free(&x);
    view_free(&y);
    free(ref);
    free(tol);
    free(keep);
}

static bcase bcase_random(lcx_rng *rng, int64_t T, int64_t in, int64_t out, int32_t n, const int64_t *ranks,
                          int views, int none_pct)
{
    bcase c;
    memset(&c, 0, sizeof c);
    c.T = T;
    c.in = in;
    c.out = out;
    c.n = n;
    const int hi = views ? L_COUNT - 1 : L_PAD;
    c.dx = dts[lcx_rng_range(rng, 0, 2)];
    c.dy = dts[lcx_rng_range(rng, 0, 2)];
    c.lx = (int)lcx_rng_range(rng, 0, hi);
    c.ly = (int)lcx_rng_range(rng, 0, hi);
    for (int i = 0; i < n; i++) {
        c.ranks[i] = ranks[i];
        c.da[i] = dts[lcx_rng_range(rng, 0, 2)];
        c.db[i] = dts[lcx_rng_range(rng, 0, 2)];
        c.la[i] = (int)lcx_rng_range(rng, 0, hi);
        c.lb[i] = (int)lcx_rng_range(rng, 0, hi);
        c.scale[i] = scales[lcx_rng_range(rng, 0, 6)];
    }
    for (int64_t t = 0; t < T; t++)
        c.map[t] = n == 0 || lcx_rng_range(rng, 0, 99) < none_pct ? -1 : (int32_t)lcx_rng_range(rng, 0, n - 1);
    return c;
}

static void test_batched(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 201);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t mixed[4] = {1, 8, 16, 64}, ranks6[6] = {8, 1, 16, 3, 64, 8};
    const int64_t Ts[8] = {1, 2, 7, 12, 13, 50, 130, 300};
    for (int k = 0; k < 8; k++)
        for (int rep = 0; rep < 2; rep++) {
            bcase c = bcase_random(&rng, Ts[k], k & 1 ? 257 : 64, k & 2 ? 33 : 70, 4, mixed, 0, 20);
            run_batched(ctx, &c, &rng, "mixed ranks");
        }
    /* an adapter no token uses (index 2 of 6), interleaved adapters */
    for (int k = 0; k < 4; k++) {
        bcase c = bcase_random(&rng, 40 + k * 31, 100, 48, 6, ranks6, 0, 10);
        for (int64_t t = 0; t < c.T; t++)
            if (c.map[t] == 2)
                c.map[t] = (int32_t)(t % 2 ? 5 : -1);
        run_batched(ctx, &c, &rng, "unused adapter");
    }
    /* runs of one adapter, then another, tokens in reverse adapter order */
    {
        bcase c = bcase_random(&rng, 96, 128, 64, 4, mixed, 0, 0);
        for (int64_t t = 0; t < c.T; t++)
            c.map[t] = (int32_t)(3 - t / 24);
        run_batched(ctx, &c, &rng, "contiguous runs");
    }
    /* one adapter over all tokens */
    {
        bcase c = bcase_random(&rng, 70, 200, 65, 1, mixed + 3, 0, 0);
        run_batched(ctx, &c, &rng, "single adapter");
    }
    /* every token without an adapter, and no adapters at all */
    {
        bcase c = bcase_random(&rng, 30, 50, 20, 3, mixed, 0, 100);
        run_batched(ctx, &c, &rng, "all tokens -1");
        c = bcase_random(&rng, 30, 50, 20, 0, mixed, 0, 100);
        run_batched(ctx, &c, &rng, "no adapters");
    }
    lcx_context_destroy(ctx);
}

/* inner strides > 1 and transposed views of x, y and the adapters */
static void test_batched_views(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 202);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t mixed[4] = {1, 8, 16, 64};
    const int64_t Ts[6] = {1, 5, 12, 13, 50, 130};
    for (int k = 0; k < 12; k++) {
        bcase c = bcase_random(&rng, Ts[k % 6], k & 1 ? 257 : 64, k & 2 ? 33 : 70, 4, mixed, 1, 20);
        run_batched(ctx, &c, &rng, "strided views");
    }
    lcx_context_destroy(ctx);
}

/* ------------------------------------------------------------------ */
/* lcx_lora_merge                                                       */
/* ------------------------------------------------------------------ */

static void run_merge(lcx_context *ctx, int64_t out, int64_t in, int64_t rank, lcx_dtype dw, lcx_dtype da,
                      lcx_dtype db, int lw, int la, int lb, float s, lcx_rng *rng)
{
    char desc[256];
    snprintf(desc, sizeof desc, "merge out=%lld in=%lld rank=%lld W=%s/%s A=%s/%s B=%s/%s s=%g", (long long)out,
             (long long)in, (long long)rank, lcx_dtype_name(dw), layout_names[lw], lcx_dtype_name(da),
             layout_names[la], lcx_dtype_name(db), layout_names[lb], (double)s);
    view W, A, B;
    view_make(&W, dw, 2, out, in, lw, 1.0, rng);
    view_make(&A, da, 2, rank, in, la, 1.0, rng);
    view_make(&B, db, 2, out, rank, lb, 1.0 / sqrt((double)rank), rng);
    view_snap(&W);
    view_snap(&A);
    view_snap(&B);
    const size_t n = (size_t)(out * in);
    double *w0 = malloc(sizeof(double) * n), *ref = malloc(sizeof(double) * n), *tol = malloc(sizeof(double) * n);
    double *S = malloc(sizeof(double) * n);
    memcpy(w0, W.v, sizeof(double) * n);
    const double uw = unit_roundoff(dw), sw = sub_half(dw);
    double ratio = 0;
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++) {
            double p = 0, pa = 0;
            for (int64_t j = 0; j < rank; j++) {
                p += B.v[o * rank + j] * A.v[j * in + k];
                pa += fabs(B.v[o * rank + j] * A.v[j * in + k]);
            }
            const double w = w0[o * in + k], r = w + (double)s * p;
            S[o * in + k] = fabs((double)s) * pa;
            ref[o * in + k] = r;
            tol[o * in + k] = TOL_C * ((double)(rank + 2) * U24 * (fabs(w) + S[o * in + k]) + uw * fabs(r) + sw);
            ratio = fmax(ratio, fabs((double)s * p) / tol[o * in + k]);
        }
    if (s != 0 && n >= 64 && !(ratio > 2))
        lcx_fail_msg("vacuous: s B A at most %.3g tol (%s)", ratio, desc);
    lcx_status st = lcx_lora_merge(ctx, &W.t, &A.t, &B.t, s);
    if (st != LCX_OK)
        lcx_fail_msg("%s: %s: %s", desc, lcx_status_string(st), lcx_last_error());
    check_out(&W, ref, tol, NULL, desc);
    view_unchanged(&A, "A");
    view_unchanged(&B, "B");
    /* unmerge: the same call with -s */
    view_snap(&W);
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++) {
            const double wm = view_get(&W, o, k), w = w0[o * in + k];
            ref[o * in + k] = w;
            tol[o * in + k] = TOL_C * ((double)(rank + 2) * U24 * (fabs(w) + fabs(wm) + 2 * S[o * in + k]) +
                                       uw * (fabs(wm) + fabs(w)) + 2 * sw);
        }
    st = lcx_lora_merge(ctx, &W.t, &A.t, &B.t, -s);
    if (st != LCX_OK)
        lcx_fail_msg("un%s: %s: %s", desc, lcx_status_string(st), lcx_last_error());
    char d2[300];
    snprintf(d2, sizeof d2, "merge then unmerge (%s)", desc);
    check_out(&W, ref, tol, NULL, d2);
    view_unchanged(&A, "A");
    view_unchanged(&B, "B");
    free(w0);
    free(ref);
    free(tol);
    free(S);
    view_free(&W);
    view_free(&A);
    view_free(&B);
}

static void test_merge(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 301);
    lcx_context *ctx = lcx_test_context(0);
    /* every W dtype with every A and B dtype */
    int k = 0;
    for (int w = 0; w < 3; w++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++, k++)
                run_merge(ctx, k % 2 ? 33 : 64, k % 3 ? 257 : 40, rank_list[k % 4], dts[w], dts[a], dts[b], L_DENSE,
                          L_DENSE, L_DENSE, scales[k % 7], &rng);
    /* shapes */
    const int64_t shapes[8][3] = {{1, 1, 1}, {1, 100, 8}, {100, 1, 8}, {3, 17, 128},
                                  {65, 513, 16}, {31, 33, 64}, {256, 1024, 64}, {17, 255, 3}};
    for (int i = 0; i < 8; i++)
        run_merge(ctx, shapes[i][0], shapes[i][1], shapes[i][2], dts[lcx_rng_range(&rng, 0, 2)],
                  dts[lcx_rng_range(&rng, 0, 2)], dts[lcx_rng_range(&rng, 0, 2)], (int)lcx_rng_range(&rng, 0, 1),
                  (int)lcx_rng_range(&rng, 0, 1), (int)lcx_rng_range(&rng, 0, 1), scales[lcx_rng_range(&rng, 0, 6)],
                  &rng);
    /* scale 0 leaves W as it is (ref = W, tolerance of one rounding) */
    run_merge(ctx, 20, 30, 4, LCX_BF16, LCX_F32, LCX_F32, L_PAD, L_DENSE, L_DENSE, 0.0f, &rng);
    lcx_context_destroy(ctx);
}

/* inner strides > 1 and transposed views of W, A and B */
static void test_merge_views(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 302);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t shapes[6][3] = {{1, 1, 1}, {1, 100, 8}, {100, 1, 8}, {3, 17, 128}, {65, 257, 16}, {31, 33, 64}};
    for (int i = 0; i < 12; i++) {
        int lw = (int)lcx_rng_range(&rng, 0, 3), la = (int)lcx_rng_range(&rng, 0, 3), lb = (int)lcx_rng_range(&rng, 0, 3);
        if (i < 6) /* W strided (the output), A and B dense */
            lw = L_INNER + i % 2, la = lb = L_DENSE;
        run_merge(ctx, shapes[i % 6][0], shapes[i % 6][1], shapes[i % 6][2], dts[lcx_rng_range(&rng, 0, 2)],
                  dts[lcx_rng_range(&rng, 0, 2)], dts[lcx_rng_range(&rng, 0, 2)], lw, la, lb,
                  scales[lcx_rng_range(&rng, 0, 6)], &rng);
    }
    lcx_context_destroy(ctx);
}

/* ------------------------------------------------------------------ */
/* Thread-count independence                                            */
/* ------------------------------------------------------------------ */

static void test_threads(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 401);
    const int32_t threads[4] = {1, 2, 3, 0};
    lcx_context *ctxs[4];
    for (int i = 0; i < 4; i++)
        ctxs[i] = lcx_test_context(threads[i]);
    /* packed-GEMM shapes (> 256 tokens), few-token (lanes and dot) shapes */
    const int64_t shapes[6][4] = {{300, 300, 70, 16}, {64, 513, 33, 8},   {5, 257, 65, 8},
                                  {1, 1000, 96, 64},  {270, 130, 200, 8}, {20, 400, 100, 16}};
    for (int k = 0; k < 6; k++) {
        lcase c = lcase_random(&rng, shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], 0);
        c.acc = k & 1;
        c.has_bias = 1;
        lin_data d;
        lin_make(&d, &c, &rng);
        view_snap(&d.y);
        unsigned char *first = malloc(d.y.g.bytes + 1);
        for (int i = 0; i < 4; i++) {
            memcpy(d.y.g.data, d.y.snap, d.y.g.bytes);
            if (lin_call(ctxs[i], &c, &d) != LCX_OK)
                lcx_fail_msg("threads %d: %s", (int)threads[i], lcx_last_error());
            if (i == 0)
                memcpy(first, d.y.g.data, d.y.g.bytes);
            else
                lcx_expect_bytes_equal(d.y.g.data, first, d.y.g.bytes, "lora_linear thread-count independence");
        }
        free(first);
        lin_free(&d);
    }
    /* batched: many tokens over mixed ranks, and a few tokens */
    const int64_t mixed[4] = {1, 8, 16, 64};
    for (int k = 0; k < 2; k++) {
        bcase c = bcase_random(&rng, k ? 200 : 6, 160, 48, 4, mixed, 0, 10);
        view x, y, A[4], B[4];
        lcx_lora_adapter ad[4];
        view_make(&x, c.dx, 2, c.T, c.in, c.lx, 1.0, &rng);
        view_make(&y, c.dy, 2, c.T, c.out, c.ly, 1.0, &rng);
        for (int i = 0; i < 4; i++) {
            view_make(&A[i], c.da[i], 2, c.ranks[i], c.in, c.la[i], 0.1, &rng);
            view_make(&B[i], c.db[i], 2, c.out, c.ranks[i], c.lb[i], 0.3, &rng);
            ad[i].a = A[i].t;
            ad[i].b = B[i].t;
            ad[i].scale = c.scale[i];
        }
        view_snap(&y);
        unsigned char *first = malloc(y.g.bytes + 1);
        for (int i = 0; i < 4; i++) {
            memcpy(y.g.data, y.snap, y.g.bytes);
            if (lcx_lora_batched(ctxs[i], &x.t, ad, 4, c.map, &y.t) != LCX_OK)
                lcx_fail_msg("batched threads %d: %s", (int)threads[i], lcx_last_error());
            if (i == 0)
                memcpy(first, y.g.data, y.g.bytes);
            else
                lcx_expect_bytes_equal(y.g.data, first, y.g.bytes, "lora_batched thread-count independence");
        }
        free(first);
        view_free(&x);
        view_free(&y);
        for (int i = 0; i < 4; i++) {
            view_free(&A[i]);
            view_free(&B[i]);
        }
    }
    /* merge */
    {
        view W, A, B;
        view_make(&W, LCX_BF16, 2, 200, 300, L_DENSE, 1.0, &rng);
        view_make(&A, LCX_F32, 2, 16, 300, L_DENSE, 1.0, &rng);
        view_make(&B, LCX_F32, 2, 200, 16, L_DENSE, 0.25, &rng);
        view_snap(&W);
        unsigned char *first = malloc(W.g.bytes + 1);
        for (int i = 0; i < 4; i++) {
            memcpy(W.g.data, W.snap, W.g.bytes);
            if (lcx_lora_merge(ctxs[i], &W.t, &A.t, &B.t, 0.5f) != LCX_OK)
                lcx_fail_msg("merge threads %d: %s", (int)threads[i], lcx_last_error());
            if (i == 0)
                memcpy(first, W.g.data, W.g.bytes);
            else
                lcx_expect_bytes_equal(W.g.data, first, W.g.bytes, "lora_merge thread-count independence");
        }
        free(first);
        view_free(&W);
        view_free(&A);
        view_free(&B);
    }
    for (int i = 0; i < 4; i++)
        lcx_context_destroy(ctxs[i]);
}

/* ------------------------------------------------------------------ */
/* Edge cases and bad input                                             */
/* ------------------------------------------------------------------ */

/* zero tokens: nothing to do, nothing written */
static void test_empty(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 501);
    lcx_context *ctx = lcx_test_context(0);
    lcase c = lcase_random(&rng, 0, 40, 12, 4, 0);
    c.has_bias = 1;
    lin_data d;
    lin_make(&d, &c, &rng);
    view_snap(&d.y);
    assert_int_equal(lin_call(ctx, &c, &d), LCX_OK);
    view_unchanged(&d.y, "y of zero tokens");
    int32_t map[1] = {0};
    lcx_lora_adapter ad = {d.a.t, d.b.t, 1.0f};
    assert_int_equal(lcx_lora_batched(ctx, &d.x.t, &ad, 1, map, &d.y.t), LCX_OK);
    view_unchanged(&d.y, "batched y of zero tokens");
    lin_free(&d);
    /* no outputs, on each path (dot, rows, packed, packed by a transposed W) */
    const int64_t Ts[4] = {4, 20, 300, 4};
    for (int i = 0; i < 4; i++) {
        lcase e = lcase_random(&rng, Ts[i], 16, 0, 4, 0);
        e.has_bias = 0;
        e.lw = i == 3 ? L_TRANS : L_DENSE;
        lin_make(&d, &e, &rng);
        view_snap(&d.x);
        assert_int_equal(lin_call(ctx, &e, &d), LCX_OK);
        view_unchanged(&d.x, "x of a product with no outputs");
        lin_free(&d);
    }
    /* merge of a W with no columns (A^T is then a view of inner stride 0) */
    view W, A, B;
    view_make(&W, LCX_F32, 2, 4, 0, L_DENSE, 1.0, &rng);
    view_make(&A, LCX_F32, 2, 2, 0, L_DENSE, 1.0, &rng);
    view_make(&B, LCX_F32, 2, 4, 2, L_DENSE, 1.0, &rng);
    assert_int_equal(lcx_lora_merge(ctx, &W.t, &A.t, &B.t, 1.0f), LCX_OK);
    view_free(&W);
    view_free(&A);
    view_free(&B);
    lcx_context_destroy(ctx);
}

static const char sentinel_msg_prefix[] = "tensor_init";

/* leaves a known message in lcx_last_error() */
static void set_sentinel_error(void)
{
    const int64_t sh[1] = {1};
    (void)lcx_tensor_init(NULL, NULL, LCX_F32, 1, sh);
}

/* the call failed with LCX_E_INVALID and a message of its own */
static void expect_invalid(lcx_status st, const char *what)
{
    const char *m = lcx_last_error();
    if (st != LCX_E_INVALID)
        lcx_fail_msg("%s: %s (%s), want LCX_E_INVALID", what, lcx_status_string(st), m);
    if (!m || !*m || strncmp(m, sentinel_msg_prefix, sizeof sentinel_msg_prefix - 1) == 0)
        lcx_fail_msg("%s: no message of its own in lcx_last_error() ('%s')", what, m ? m : "(null)");
}

static void test_linear_bad_input(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 601);
    lcx_context *ctx = lcx_test_context(0);
    /* T 4, in 8, out 6, rank 2; buffers large enough for the wrong shapes */
    view x, w, bias, a, b, y;
    view_make(&x, LCX_F32, 2, 4, 8, L_DENSE, 1, &rng);
    view_make(&w, LCX_F32, 2, 8, 8, L_DENSE, 1, &rng);
    view_make(&bias, LCX_F32, 1, 1, 32, L_DENSE, 1, &rng);
    view_make(&a, LCX_F32, 2, 4, 8, L_DENSE, 1, &rng);
    view_make(&b, LCX_F32, 2, 8, 4, L_DENSE, 1, &rng);
    view_make(&y, LCX_F32, 2, 4, 8, L_DENSE, 1, &rng);
    view *all[6] = {&x, &w, &bias, &a, &b, &y};
    for (int i = 0; i < 6; i++)
        view_snap(all[i]);
    const int64_t sx[2] = {4, 8}, sw[2] = {6, 8}, sb[1] = {6}, sa[2] = {2, 8}, sB[2] = {6, 2}, sy[2] = {4, 6};
    for (int cse = 0;; cse++) {
        lcx_tensor tx, tw, tb, ta, tB, ty;
        lcx_tensor_init(&tx, x.t.data, LCX_F32, 2, sx);
        lcx_tensor_init(&tw, w.t.data, LCX_F32, 2, sw);
        lcx_tensor_init(&tb, bias.t.data, LCX_F32, 1, sb);
        lcx_tensor_init(&ta, a.t.data, LCX_F32, 2, sa);
        lcx_tensor_init(&tB, b.t.data, LCX_F32, 2, sB);
        lcx_tensor_init(&ty, y.t.data, LCX_F32, 2, sy);
        lcx_context *cx = ctx;
        const lcx_tensor *px = &tx, *pw = &tw, *pb = &tb, *pa = &ta, *pB = &tB, *py = &ty;
        float s = 0.5f;
        int acc = cse & 1;
        const char *what;
        switch (cse) {
        case 0: cx = NULL; what = "NULL ctx"; break;
        case 1: px = NULL; what = "NULL x"; break;
        case 2: py = NULL; what = "NULL y"; break;
        case 3: tw.shape[1] = 7; tw.stride[0] = 7; what = "W in != x in"; break;
        case 4: tw.shape[0] = 5; what = "W out != y out"; break;
        case 5: tb.shape[0] = 5; what = "bias length != out"; break;
        case 6: tb.shape[0] = 7; what = "bias length 7 != out"; break;
        case 7: ta.shape[1] = 7; ta.stride[0] = 7; what = "A in != x in"; break;
        case 8: tB.shape[0] = 5; what = "B out != y out"; break;
        case 9: ta.shape[0] = 3; what = "A rank 3 != B rank 2"; break;
        case 10: tB.shape[1] = 3; tB.stride[0] = 3; what = "B rank 3 != A rank 2"; break;
        case 11: ty.shape[0] = 3; what = "y tokens != x tokens"; break;
        case 12: ta.shape[0] = 0; tB.shape[1] = 0; tB.stride[0] = 1; what = "rank 0"; break;
        case 13: pB = NULL; what = "A without B"; break;
        case 14: pa = NULL; what = "B without A"; break;
        case 15: s = NAN; what = "NaN scale"; break;
        case 16: s = INFINITY; what = "inf scale"; break;
        case 17: s = -INFINITY; what = "-inf scale"; break;
        case 18: ty.data = x.t.data; what = "y aliasing x"; break;
        case 19: ty.data = w.t.data; what = "y aliasing W"; break;
        case 20: ty.data = (float *)a.t.data + 3; what = "y overlapping A"; break;
        case 21: ty.data = (float *)b.t.data + 5; what = "y overlapping B"; break;
        case 22: ty.data = bias.t.data; what = "y overlapping bias"; break;
        case 23: ty.stride[0] = 0; what = "y rows sharing memory"; break;
        case 24: tx.ndim = 3; tx.shape[0] = 2; tx.shape[1] = 2; tx.shape[2] = 8; tx.stride[0] = 16;
            tx.stride[1] = 8; tx.stride[2] = 1; what = "3-D x"; break;
        case 25: tw.data = NULL; what = "W data NULL"; break;
        case 26: ta.dtype = (lcx_dtype)7; what = "A dtype unknown"; break;
        case 27: ty.shape[1] = 5; pw = NULL; what = "y out != B out (no W)"; break;
        case 28: tw.shape[1] = 7; tw.stride[0] = 7; pa = pB = NULL; what = "W in != x in (plain linear)"; break;
        default: goto done;
        }
        set_sentinel_error();
        const lcx_status st = lcx_lora_linear(cx, px, pw, pb, pa, pB, s, py, acc);
        expect_invalid(st, what);
        for (int i = 0; i < 6; i++)
            view_unchanged(all[i], what);
    }
done:
    for (int i = 0; i < 6; i++)
        view_free(all[i]);
    lcx_context_destroy(ctx);
}

static void test_batched_bad_input(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 602);
    lcx_context *ctx = lcx_test_context(0);
    /* T 4, in 8, out 6; adapters of rank 2, 3 and 2 (the last unused) */
    view x, y, A[3], B[3];
    view_make(&x, LCX_F32, 2, 4, 8, L_DENSE, 1, &rng);
    view_make(&y, LCX_BF16, 2, 4, 8, L_DENSE, 1, &rng);
    for (int i = 0; i < 3; i++) {
        view_make(&A[i], LCX_F32, 2, 4, 8, L_DENSE, 1, &rng);
        view_make(&B[i], LCX_F32, 2, 8, 4, L_DENSE, 1, &rng);
    }
    view *all[8] = {&x, &y, &A[0], &B[0], &A[1], &B[1], &A[2], &B[2]};
    for (int i = 0; i < 8; i++)
        view_snap(all[i]);
    const int64_t sx[2] = {4, 8}, sy[2] = {4, 6}, ranks[3] = {2, 3, 2};
    for (int cse = 0;; cse++) {
        lcx_tensor tx, ty;
        lcx_lora_adapter ad[3];
        lcx_tensor_init(&tx, x.t.data, LCX_F32, 2, sx);
        lcx_tensor_init(&ty, y.t.data, LCX_BF16, 2, sy);
        for (int i = 0; i < 3; i++) {
            const int64_t sa[2] = {ranks[i], 8}, sB[2] = {6, ranks[i]};
            lcx_tensor_init(&ad[i].a, A[i].t.data, LCX_F32, 2, sa);
            lcx_tensor_init(&ad[i].b, B[i].t.data, LCX_F32, 2, sB);
            ad[i].scale = 0.5f;
        }
        int32_t map[4] = {0, 1, -1, 0};
        int32_t n = 3;
        lcx_context *cx = ctx;
        const lcx_tensor *px = &tx, *py = &ty;
        const lcx_lora_adapter *pad = ad;
        const char *what;
        switch (cse) {
        case 0: cx = NULL; what = "NULL ctx"; break;
        case 1: px = NULL; what = "NULL x"; break;
        case 2: py = NULL; what = "NULL y"; break;
        case 3: map[3] = 3; what = "adapter index == n_adapters"; break;
        case 4: map[0] = 7; what = "adapter index > n_adapters"; break;
        case 5: map[2] = -2; what = "adapter index -2"; break;
        case 6: n = -1; what = "n_adapters < 0"; break;
        case 7: pad = NULL; what = "adapters NULL with n_adapters 3"; break;
        case 8: n = 0; map[1] = map[3] = -1; what = "index 0 with no adapters"; break;
        case 9: ad[1].a.shape[1] = 7; ad[1].a.stride[0] = 7; what = "adapter A in != x in"; break;
        case 10: ad[0].b.shape[0] = 5; what = "adapter B out != y out"; break;
        case 11: ad[1].a.shape[0] = 2; what = "adapter A rank != B rank"; break;
        case 12: ad[0].a.shape[0] = 0; ad[0].b.shape[1] = 0; ad[0].b.stride[0] = 1; what = "adapter rank 0"; break;
        case 13: ad[1].scale = NAN; what = "adapter NaN scale"; break;
        case 14: ad[0].scale = INFINITY; what = "adapter inf scale"; break;
        case 15: ad[2].scale = -INFINITY; what = "unused adapter -inf scale"; break;
        case 16: ad[2].b.shape[0] = 5; what = "unused adapter B out != y out"; break;
        case 17: ty.shape[0] = 3; what = "y tokens != x tokens"; break;
        case 18: ty.data = x.t.data; ty.dtype = LCX_F32; what = "y aliasing x"; break;
        case 19: ty.data = A[1].t.data; ty.dtype = LCX_F32; what = "y aliasing adapter 1 A"; break;
        case 20: ty.data = (float *)B[0].t.data + 2; ty.dtype = LCX_F32; what = "y overlapping adapter 0 B"; break;
        case 21: ty.data = A[2].t.data; ty.dtype = LCX_F32; what = "y aliasing unused adapter A"; break;
        case 22: ty.stride[0] = 0; what = "y rows sharing memory"; break;
        case 23: ad[0].a.data = NULL; what = "adapter A data NULL"; break;
        default: goto done;
        }
        set_sentinel_error();
        const lcx_status st = lcx_lora_batched(cx, px, pad, n, map, py);
        expect_invalid(st, what);
        for (int i = 0; i < 8; i++)
            view_unchanged(all[i], what);
    }
done:
    for (int i = 0; i < 8; i++)
        view_free(all[i]);
    lcx_context_destroy(ctx);
}

static void test_merge_bad_input(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 603);
    lcx_context *ctx = lcx_test_context(0);
    /* W [6][8], A [2][8], B [6][2]; A's buffer also holds a whole W */
    view w, a, b;
    view_make(&w, LCX_F32, 2, 8, 8, L_DENSE, 1, &rng);
    view_make(&a, LCX_F32, 2, 8, 8, L_DENSE, 1, &rng);
    view_make(&b, LCX_F32, 2, 8, 8, L_DENSE, 1, &rng);
    view *all[3] = {&w, &a, &b};
    for (int i = 0; i < 3; i++)
        view_snap(all[i]);
    const int64_t sw[2] = {6, 8}, sa[2] = {2, 8}, sB[2] = {6, 2};
    for (int cse = 0;; cse++) {
        lcx_tensor tw, ta, tB;
        lcx_tensor_init(&tw, w.t.data, LCX_F32, 2, sw);
        lcx_tensor_init(&ta, a.t.data, LCX_F32, 2, sa);
        lcx_tensor_init(&tB, b.t.data, LCX_F32, 2, sB);
        lcx_context *cx = ctx;
        const lcx_tensor *pw = &tw, *pa = &ta, *pB = &tB;
        float s = 0.5f;
        const char *what;
        switch (cse) {
        case 0: cx = NULL; what = "NULL ctx"; break;
        case 1: pw = NULL; what = "NULL W"; break;
        case 2: pa = NULL; what = "NULL A"; break;
        case 3: pB = NULL; what = "NULL B"; break;
        case 4: tw.shape[1] = 7; tw.stride[0] = 7; what = "W in != A in"; break;
        case 5: tw.shape[0] = 5; what = "W out != B out"; break;
        case 6: ta.shape[0] = 3; what = "A rank 3 != B rank 2"; break;
        case 7: ta.shape[0] = 0; tB.shape[1] = 0; tB.stride[0] = 1; what = "rank 0"; break;
        case 8: s = NAN; what = "NaN scale"; break;
        case 9: s = INFINITY; what = "inf scale"; break;
        case 10: s = -INFINITY; what = "-inf scale"; break;
        case 11: tw.data = a.t.data; what = "W aliasing A"; break;
        case 12: tw.data = (float *)b.t.data + 1; what = "W overlapping B"; break;
        case 13: tw.stride[0] = 0; what = "W rows sharing memory"; break;
        case 14: tB.dtype = (lcx_dtype)9; what = "B dtype unknown"; break;
        default: goto done;
        }
        set_sentinel_error();
        const lcx_status st = lcx_lora_merge(cx, pw, pa, pB, s);
        expect_invalid(st, what);
        for (int i = 0; i < 3; i++)
            view_unchanged(all[i], what);
    }
done:
    for (int i = 0; i < 3; i++)
        view_free(all[i]);
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_small_tokens),
        cmocka_unit_test(test_linear_tiles),
        cmocka_unit_test(test_linear_ranks),
        cmocka_unit_test(test_linear_dtypes),
        cmocka_unit_test(test_linear_views),
        cmocka_unit_test(test_linear_options),
        cmocka_unit_test(test_linear_sensitivity),
        cmocka_unit_test(test_batched),
        cmocka_unit_test(test_batched_views),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_views),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_linear_bad_input),
        cmocka_unit_test(test_batched_bad_input),
        cmocka_unit_test(test_merge_bad_input),
    };
    return lcx_test_run("lora", argc, argv, tests, sizeof tests / sizeof *tests);
}
