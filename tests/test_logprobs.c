/* lcx_token_logprobs / lcx_token_impact / lcx_impact_topk on every ISA
 * against a long-double oracle; special values; threads; bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "ref/convert_ref.h"

/* exact log softmax at target, from the decoded (exact) input values */
static long double ref_logprob(const double *x, int64_t v, int64_t t)
{
    if (t < 0)
        return NAN;
    long double m = -INFINITY;
    int64_t ninf = 0;
    for (int64_t i = 0; i < v; i++) {
        if (isnan(x[i]))
            return NAN;
        if (x[i] == INFINITY)
            ninf++;
        if (x[i] > m)
            m = x[i];
    }
    if (ninf)
        return x[t] == INFINITY ? -logl((long double)ninf) : -INFINITY;
    if (m == -INFINITY)
        return NAN;
    long double s = 0;
    for (int64_t i = 0; i < v; i++)
        s += expl((long double)x[i] - m);
    return (long double)x[t] - m - logl(s);
}

static void check(float got, long double want, const char *what, int64_t r)
{
    if (isnan(want) || isinf(want)) {
        if (!(isnan(want) ? isnan(got) : got == (float)want))
            lcx_fail_msg("%s row %lld: %g, want %Lg", what, (long long)r, (double)got, want);
        return;
    }
    if (!(fabsl((long double)got - want) <= 1e-5L + 1e-6L * fabsl(want)))
        lcx_fail_msg("%s row %lld: %.9g, want %.9Lg", what, (long long)r, (double)got, want);
}

/* fill a [rows][vocab] tensor with row stride `ld`, and its exact values */
static void fill(lcx_tensor *t, lcx_dtype dt, int64_t rows, int64_t vocab, int64_t ld, double sigma, lcx_rng *rng,
                 double *exact)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = 2;
    t->shape[0] = rows;
    t->shape[1] = vocab;
    t->stride[0] = ld;
    t->stride[1] = 1;
    t->data = malloc((size_t)(rows * ld) * lcx_dtype_size(dt));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < vocab; i++) {
            /* sum of uniforms: roughly normal */
            double v = (lcx_rng_uniform(rng, -1, 1) + lcx_rng_uniform(rng, -1, 1) + lcx_rng_uniform(rng, -1, 1)) * sigma;
            if (dt == LCX_F32) {
                ((float *)t->data)[r * ld + i] = (float)v;
                v = (float)v;
            } else {
                const uint16_t h = lcx_ref_encode16(dt, lcx_ref_round(dt, v));
                ((uint16_t *)t->data)[r * ld + i] = h;
                v = lcx_ref_decode16(dt, h);
            }
            exact[r * vocab + i] = v;
        }
}

static void test_logprobs_random(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 41);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t vocabs[] = {1, 2, 15, 16, 17, 511, 512, 513, 1000, 4099, 32000};
    const lcx_dtype dts[3] = {LCX_F32, LCX_BF16, LCX_F16};
    for (size_t vi = 0; vi < sizeof vocabs / sizeof *vocabs; vi++)
        for (int di = 0; di < 3; di++) {
            const int64_t v = vocabs[vi], rows = 7, ld = v + (di == 1 ? 3 : 0);
            const double sigma = di == 2 ? 3 : (vi % 3 == 0 ? 1 : vi % 3 == 1 ? 10 : 30);
            double *exact = malloc(sizeof(double) * rows * v);
            lcx_tensor t;
            fill(&t, dts[di], rows, v, ld, sigma, &rng, exact);
            int64_t tg[7];
            for (int r = 0; r < rows; r++)
                tg[r] = r == 6 ? -100 : lcx_rng_range(&rng, 0, v - 1);
            float out[8];
            out[7] = 123.0f;
            if (lcx_token_logprobs(ctx, &t, tg, out) != LCX_OK)
                lcx_fail_msg("logprobs: %s", lcx_last_error());
            assert_true(out[7] == 123.0f);
            for (int r = 0; r < rows; r++) {
                char what[64];
                snprintf(what, sizeof what, "%s vocab %lld", lcx_dtype_name(dts[di]), (long long)v);
                check(out[r], ref_logprob(exact + r * v, v, tg[r]), what, r);
            }
            free(exact);
            free(t.data);
        }
    /* a large vocabulary, 3-D [batch][seq][vocab] */
    const int64_t V = 131072;
    double *exact = malloc(sizeof(double) * 4 * V);
    lcx_tensor t;
    fill(&t, LCX_F32, 4, V, V, 8, &rng, exact);
    t.ndim = 3;
    t.shape[0] = 2;
    t.shape[1] = 2;
    t.shape[2] = V;
    t.stride[0] = 2 * V;
    t.stride[1] = V;
    t.stride[2] = 1;
    const int64_t tg[4] = {0, V - 1, 12345, 77};
    float out[4];
    assert_int_equal(lcx_token_logprobs(ctx, &t, tg, out), LCX_OK);
    for (int r = 0; r < 4; r++)
        check(out[r], ref_logprob(exact + r * V, V, tg[r]), "vocab 131072", r);
    free(exact);
    free(t.data);
    lcx_context_destroy(ctx);
}

static void test_logprobs_special(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    enum { V = 40, R = 9 };
    double x[R][V];
    for (int r = 0; r < R; r++)
        for (int i = 0; i < V; i++)
            x[r][i] = (i % 7) - 3.0;
    x[0][5] = INFINITY;                                  /* one +inf */
    x[1][5] = x[1][17] = x[1][39] = INFINITY;            /* three +inf, target on one */
    x[2][3] = -INFINITY;                                 /* target is -inf */
    x[3][20] = NAN;                                      /* NaN row */
    for (int i = 0; i < V; i++)
        x[4][i] = -INFINITY;                             /* no distribution */
    x[5][0] = 1e30;                                      /* huge logits */
    x[5][1] = -1e30;
    x[6][2] = 3e38;
    x[6][3] = 3.1e38;
    for (int i = 0; i < V; i++)
        x[7][i] = i == 9 ? 0 : -INFINITY;                /* one finite value */
    const int64_t tg[R] = {5, 17, 3, 0, 0, 1, 2, 9, 8};
    float f[R * V];
    for (int r = 0; r < R; r++)
        for (int i = 0; i < V; i++)
            f[r * V + i] = (float)x[r][i];
    lcx_tensor t;
    const int64_t shape[2] = {R, V};
    lcx_tensor_init(&t, f, LCX_F32, 2, shape);
    float out[R];
    assert_int_equal(lcx_token_logprobs(ctx, &t, tg, out), LCX_OK);
    for (int r = 0; r < R; r++) {
        double xf[V];
        for (int i = 0; i < V; i++)
            xf[i] = f[r * V + i];
        check(out[r], ref_logprob(xf, V, tg[r]), "special", r);
    }
    assert_true(out[0] == 0.0f);
    assert_true(fabsf(out[1] + logf(3.0f)) < 1e-6f);
    assert_true(isinf(out[2]) && out[2] < 0);
    assert_true(isnan(out[3]) && isnan(out[4]));
    assert_true(out[7] == 0.0f);
    /* +inf early in the row and a NaN in a later block: NaN */
    {
        float row[1000];
        for (int i = 0; i < 1000; i++)
            row[i] = 0;
        row[0] = INFINITY;
        row[600] = NAN;
        const int64_t s2[2] = {1, 1000}, tz = 0;
        float o2;
        lcx_tensor_init(&t, row, LCX_F32, 2, s2);
        assert_int_equal(lcx_token_logprobs(ctx, &t, &tz, &o2), LCX_OK);
        assert_true(isnan(o2));
        /* out overlapping the logits is refused */
        assert_int_equal(lcx_token_logprobs(ctx, &t, &tz, row + 5), LCX_E_INVALID);
    }
    /* vocab 1: log-probability 0 */
    float one = 4.5f, o1;
    const int64_t s1[2] = {1, 1}, t0 = 0;
    lcx_tensor_init(&t, &one, LCX_F32, 2, s1);
    assert_int_equal(lcx_token_logprobs(ctx, &t, &t0, &o1), LCX_OK);
    assert_true(o1 == 0.0f);
    lcx_context_destroy(ctx);
}

static void test_impact_threads_topk(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 42);
    const int64_t rows = 50, V = 3001;
    double *eb = malloc(sizeof(double) * rows * V), *ee = malloc(sizeof(double) * rows * V);
    lcx_tensor tb, te;
    fill(&tb, LCX_BF16, rows, V, V, 5, &rng, eb);
    fill(&te, LCX_BF16, rows, V, V, 5, &rng, ee);
    int64_t tg[50];
    for (int r = 0; r < rows; r++)
        tg[r] = lcx_rng_range(&rng, 0, V - 1);
    float ref[50], out[50];
    const int32_t threads[4] = {1, 2, 3, 0};
    for (int k = 0; k < 4; k++) {
        lcx_context *ctx = lcx_test_context(threads[k]);
        assert_int_equal(lcx_token_impact(ctx, &tb, &te, tg, out), LCX_OK);
        if (k == 0) {
            memcpy(ref, out, sizeof ref);
            for (int r = 0; r < rows; r++)
                check(out[r], ref_logprob(ee + r * V, V, tg[r]) - ref_logprob(eb + r * V, V, tg[r]), "impact", r);
        } else {
            lcx_expect_bytes_equal(out, ref, sizeof ref, "impact thread-count independence");
        }
        lcx_context_destroy(ctx);
    }
    /* ranking: ids 3 (mean 2), 7 (mean -5, |.| 5), 1 (mean 1); NaN and negative ids skipped */
    const float sc[8] = {1, 3, -4, -6, 1, NAN, 9, 2};
    const int64_t ids[8] = {3, 3, 7, 7, 1, 1, -1, 5};
    int64_t top[4], nf;
    double means[4];
    assert_int_equal(lcx_impact_topk(sc, ids, 8, 10, 0, 3, top, means, &nf), LCX_OK);
    assert_int_equal(nf, 3);
    assert_true(top[0] == 3 && means[0] == 2.0 && top[1] == 5 && means[1] == 2.0 && top[2] == 1);
    assert_int_equal(lcx_impact_topk(sc, ids, 8, 10, 1, 10, top, means, &nf), LCX_OK);
    assert_int_equal(nf, 4);
    assert_true(top[0] == 7 && means[0] == 5.0 && top[1] == 3 && top[2] == 5 && top[3] == 1);
    free(eb);
    free(ee);
    free(tb.data);
    free(te.data);
}

static void test_logprobs_bad_input(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    float x[32] = {0}, out[4] = {7, 7, 7, 7};
    const int64_t s2[2] = {4, 8}, s1[1] = {32}, s3[2] = {4, 7};
    lcx_tensor t, t1, t3;
    lcx_tensor_init(&t, x, LCX_F32, 2, s2);
    lcx_tensor_init(&t1, x, LCX_F32, 1, s1);
    lcx_tensor_init(&t3, x, LCX_F32, 2, s3);
    const int64_t tg[4] = {0, 1, 2, 3}, tbad[4] = {0, 8, 1, 1};
    int64_t top[2], nf = 99;
#define BAD(call, msg)                                                                             \
    do {                                                                                           \
        const lcx_status st_ = (call);                                                             \
        if (st_ != LCX_E_INVALID || !strstr(lcx_last_error(), msg))                                \
            lcx_fail_msg("%s: %s '%s' (want '%s')", #call, lcx_status_string(st_), lcx_last_error(), msg); \
        for (int i_ = 0; i_ < 4; i_++)                                                             \
            assert_true(out[i_] == 7.0f);                                                          \
    } while (0)
    BAD(lcx_token_logprobs(NULL, &t, tg, out), "ctx");
    BAD(lcx_token_logprobs(ctx, NULL, tg, out), "logits");
    BAD(lcx_token_logprobs(ctx, &t, NULL, out), "targets");
    BAD(lcx_token_logprobs(ctx, &t, tg, NULL), "out");
    BAD(lcx_token_logprobs(ctx, &t1, tg, out), "dims");
    BAD(lcx_token_logprobs(ctx, &t, tbad, out), "targets[1] = 8");
    {
        int64_t tgm[5] = {0, 1, 2, 3, 0};
        float outm[5];
        BAD(lcx_token_logprobs(ctx, &t, (const int64_t *)(const void *)((const char *)tgm + 4), out), "not aligned");
        BAD(lcx_token_logprobs(ctx, &t, tg, (float *)(void *)((char *)outm + 2)), "not aligned");
    }
    BAD(lcx_token_impact(ctx, &t, &t3, tg, out), "shape");
    BAD(lcx_token_impact(ctx, &t, NULL, tg, out), "ext_logits");
    BAD(lcx_impact_topk(out, tg, 4, 3, 0, 2, top, NULL, &nf), "token_ids[3]");
    BAD(lcx_impact_topk(out, tg, 4, 10, 2, 2, top, NULL, &nf), "use_abs");
#undef BAD
    assert_int_equal(nf, 99);
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logprobs_random),
        cmocka_unit_test(test_logprobs_special),
        cmocka_unit_test(test_impact_threads_topk),
        cmocka_unit_test(test_logprobs_bad_input),
    };
    return lcx_test_run("logprobs", argc, argv, tests, sizeof tests / sizeof *tests);
}
