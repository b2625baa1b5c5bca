/* Per-token log-probabilities, impact scores and their per-id ranking. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal/lcx_internal.h"
#include "internal/lcx_fpenv.h"
#include "longctx/recipe.h"
#include "../kernels/common/fp_bits.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

#define LCX_LP_ELEMS_PER_TASK 65536

typedef struct lcx_lp_job {
    const lcx_ktable *kt;
    const lcx_tensor *x[2]; /* [1] = NULL for plain logprobs */
    const int64_t *targets;
    float *out;
    int64_t rows, vocab, rows_per_task;
} lcx_lp_job;

static const char *lcx_row_ptr(const lcx_tensor *t, int64_t row)
{
    int64_t off = 0;
    for (int32_t d = t->ndim - 2; d >= 0; d--) {
        off += (row % t->shape[d]) * t->stride[d];
        row /= t->shape[d];
    }
    return (const char *)t->data + (size_t)off * lcx_dtype_size(t->dtype);
}

/* log-probability of `target` in one row */
static double lcx_row_logprob(const lcx_lp_job *j, const lcx_tensor *t, int64_t row, int64_t target)
{
    if (target < 0)
        return NAN;
    const char *p = lcx_row_ptr(t, row);
    float m;
    double s;
    int32_t flags;
    j->kt->row_lse(p, (int32_t)t->dtype, (size_t)j->vocab, &m, &s, &flags);
    if (flags & 1)
        return NAN;
    const double xt = lcx_load_elem(p, (int32_t)t->dtype, (size_t)target);
    if (flags & 2) { /* +inf entries share all the mass (no NaN in the row) */
        int64_t c = 0;
        for (int64_t v = 0; v < j->vocab; v++) {
            const float x = lcx_load_elem(p, (int32_t)t->dtype, (size_t)v);
            if (x != x) /* the kernel stops at the first +inf block: a later NaN still wins */
                return NAN;
            c += x == INFINITY;
        }
        return xt == INFINITY ? -log((double)c) : -INFINITY;
    }
    if (!(s > 0))
        return NAN; /* every logit -inf: no distribution */
    return xt - (double)m - log(s);
}

static void lcx_lp_task(void *arg, int64_t task)
{
    const lcx_lp_job *j = arg;
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t r0 = task * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    for (int64_t r = r0; r < r1; r++) {
        double v = lcx_row_logprob(j, j->x[0], r, j->targets[r]);
        if (j->x[1])
            v = lcx_row_logprob(j, j->x[1], r, j->targets[r]) - v;
        j->out[r] = (float)v;
    }
    lcx_fpenv_leave(env);
}

static lcx_status lcx_lp_check(const char *op, const lcx_tensor *t, const char *name, int64_t *rows,
                               int64_t *vocab)
{
    char what[64];
    snprintf(what, sizeof what, "%s: %s", op, name);
    lcx_status st = lcx_tensor_validate(t, what, 0);
    if (st != LCX_OK)
        return st;
    if (t->ndim < 2)
        return lcx_fail(LCX_E_INVALID, "%s: %s has %" PRId32 " dims, want [rows...][vocab]", op, name, t->ndim);
    *vocab = t->shape[t->ndim - 1];
    *rows = lcx_tensor_numel(t) / (*vocab > 0 ? *vocab : 1);
    if (*vocab < 1)
        return lcx_fail(LCX_E_INVALID, "%s: %s vocabulary is empty", op, name);
    return LCX_OK;
}

static lcx_status lcx_lp_run(lcx_context *ctx, const char *op, const lcx_tensor *a, const lcx_tensor *b,
                             const int64_t *targets, float *out)
{
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK)
        return st;
    int64_t rows, vocab;
    if ((st = lcx_lp_check(op, a, b ? "base_logits" : "logits", &rows, &vocab)) != LCX_OK)
        return st;
    if (b) {
        int64_t rb, vb;
        if ((st = lcx_lp_check(op, b, "ext_logits", &rb, &vb)) != LCX_OK ||
            (st = lcx_check_same_shape(op, a, "base_logits", b, "ext_logits")) != LCX_OK)
            return st;
    }
    if (!targets || !out)
        return lcx_fail(LCX_E_INVALID, "%s: %s is NULL", op, !targets ? "targets" : "out");
    if ((st = lcx_check_ptr_aligned(op, "targets", targets, sizeof *targets)) != LCX_OK ||
        (st = lcx_check_ptr_aligned(op, "out", out, sizeof *out)) != LCX_OK)
        return st;
    {
        uintptr_t t0, t1;
        const uintptr_t o0 = (uintptr_t)out, o1 = o0 + (uintptr_t)rows * sizeof(float);
        const uintptr_t g0 = (uintptr_t)targets, g1 = g0 + (uintptr_t)rows * sizeof(int64_t);
        lcx_tensor_extent(a, &t0, &t1);
        int bad = (o0 < t1 && t0 < o1) || (o0 < g1 && g0 < o1);
        if (b) {
            lcx_tensor_extent(b, &t0, &t1);
            bad |= o0 < t1 && t0 < o1;
        }
        if (bad && rows > 0)
            return lcx_fail(LCX_E_INVALID, "%s: out overlaps the logits or targets", op);
    }
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA) /* targets are checked on the device */
        return lcx_cuda_token_logprobs(ctx->cuda, op, a, b, targets, out, rows, vocab);
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_fail(LCX_E_UNSUPPORTED, "%s: no kernel for this device", op);
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] >= vocab)
            return lcx_fail(LCX_E_INVALID, "%s: targets[%" PRId64 "] = %" PRId64 " >= vocab %" PRId64, op, r,
                            targets[r], vocab);
    if (rows == 0)
        return LCX_OK;
    lcx_lp_job j = {&ctx->kt, {a, b}, targets, out, rows, vocab, 1};
    j.rows_per_task = vocab >= LCX_LP_ELEMS_PER_TASK ? 1 : LCX_LP_ELEMS_PER_TASK / vocab;
    return lcx_parallel(ctx, (rows + j.rows_per_task - 1) / j.rows_per_task, lcx_lp_task, &j);
}

lcx_status lcx_token_logprobs(lcx_context *ctx, const lcx_tensor *logits, const int64_t *targets, float *out)
{
    return lcx_lp_run(ctx, "token_logprobs", logits, NULL, targets, out);
}

lcx_status lcx_token_impact(lcx_context *ctx, const lcx_tensor *base_logits, const lcx_tensor *ext_logits,
                            const int64_t *targets, float *out)
{
    if (!ext_logits)
        return lcx_fail(LCX_E_INVALID, "token_impact: ext_logits is NULL");
    return lcx_lp_run(ctx, "token_impact", base_logits, ext_logits, targets, out);
}

typedef struct { int64_t id; double mean; } lcx_ranked;

static int lcx_rank_cmp(const void *pa, const void *pb)
{
    const lcx_ranked *a = pa, *b = pb;
    if (a->mean != b->mean)
        return a->mean > b->mean ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

lcx_status lcx_impact_topk(const float *scores, const int64_t *token_ids, int64_t n, int64_t vocab, int32_t use_abs,
                           int64_t k, int64_t *top_ids, double *top_means, int64_t *n_found)
{
    const char *op = "impact_topk";
    if (!scores || !token_ids || !top_ids || !n_found)
        return lcx_fail(LCX_E_INVALID, "%s: %s is NULL", op,
                        !scores ? "scores" : !token_ids ? "token_ids" : !top_ids ? "top_ids" : "n_found");
    if (n < 0 || vocab < 1 || k < 0 || (use_abs != 0 && use_abs != 1))
        return lcx_fail(LCX_E_INVALID, "%s: n %" PRId64 ", vocab %" PRId64 ", k %" PRId64 ", use_abs %" PRId32
                        " out of range", op, n, vocab, k, use_abs);
    for (int64_t i = 0; i < n; i++)
        if (token_ids[i] >= vocab)
            return lcx_fail(LCX_E_INVALID, "%s: token_ids[%" PRId64 "] = %" PRId64 " >= vocab %" PRId64, op, i,
                            token_ids[i], vocab);
    double *sum = calloc((size_t)vocab, sizeof *sum);
    int64_t *cnt = calloc((size_t)vocab, sizeof *cnt);
    lcx_ranked *rk = malloc((size_t)vocab * sizeof *rk);
    if (!sum || !cnt || !rk) {
        free(sum);
        free(cnt);
        free(rk);
        return lcx_fail(LCX_E_NOMEM, "%s: cannot allocate %" PRId64 " counters", op, vocab);
    }
    for (int64_t i = 0; i < n; i++) {
        if (token_ids[i] < 0 || isnan(scores[i]))
            continue;
        sum[token_ids[i]] += use_abs ? fabs((double)scores[i]) : (double)scores[i];
        cnt[token_ids[i]]++;
    }
    int64_t m = 0;
    for (int64_t v = 0; v < vocab; v++)
        if (cnt[v] && !isnan(sum[v])) /* +inf and -inf scores of one id have no mean */
            rk[m++] = (lcx_ranked){v, sum[v] / (double)cnt[v]};
    qsort(rk, (size_t)m, sizeof *rk, lcx_rank_cmp);
    const int64_t found = m < k ? m : k;
    for (int64_t i = 0; i < found; i++) {
        top_ids[i] = rk[i].id;
        if (top_means)
            top_means[i] = rk[i].mean;
    }
    *n_found = found;
    free(sum);
    free(cnt);
    free(rk);
    return LCX_OK;
}
