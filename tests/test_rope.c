/* RoPE on every ISA: golden data (all configs, both layouts, both modes),
 * the long-double oracle for the variants without golden data, properties,
 * views, dtypes, threads, re-rotation and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "util/json.h"
#include "ref/convert_ref.h"
#include "ref/rope_ref.h"
#include "internal/lcx_internal.h"

#define MAXD 256

static lcx_json *golden;

static const lcx_json *golden_configs(void)
{
    if (!golden) {
        golden = lcx_golden_load("rope_hf.json");
        if (!golden)
            return NULL;
    }
    return lcx_json_get(golden, "configs");
}

/* Build our config from a golden config entry. */
static void config_from_golden(const lcx_json *g, lcx_rope_config *c, double *sf, double *lf)
{
    lcx_rope_config_default(c);
    const char *kind = lcx_json_get(g, "kind")->str;
    const lcx_json *rp = lcx_json_get(g, "rope_params");
    c->head_dim = (int32_t)lcx_json_num(g, "head_dim");
    c->rotary_dim = (int32_t)lcx_json_num(g, "rotary_dim");
    c->base = lcx_json_num(g, "base");
    c->max_position = (int64_t)lcx_json_num(g, "max_position_embeddings");
    const double f = lcx_json_num(rp, "factor");
    c->factor = isnan(f) ? (strcmp(kind, "longrope") == 0 ? 0 : 1) : f;
    const double l0 = lcx_json_num(rp, "original_max_position_embeddings");
    c->original_max_position = isnan(l0) ? 0 : (int64_t)l0;
    if (!strcmp(kind, "default"))
        c->type = LCX_ROPE_DEFAULT;
    else if (!strcmp(kind, "linear"))
        c->type = LCX_ROPE_LINEAR;
    else if (!strcmp(kind, "dynamic"))
        c->type = LCX_ROPE_DYNAMIC;
    else if (!strcmp(kind, "yarn"))
        c->type = LCX_ROPE_YARN;
    else if (!strcmp(kind, "llama3")) {
        c->type = LCX_ROPE_LLAMA3;
        c->low_freq_factor = lcx_json_num(rp, "low_freq_factor");
        c->high_freq_factor = lcx_json_num(rp, "high_freq_factor");
    } else if (!strcmp(kind, "longrope")) {
        c->type = LCX_ROPE_LONGROPE;
        lcx_json_nums(lcx_json_get(rp, "short_factor"), sf, MAXD / 2);
        lcx_json_nums(lcx_json_get(rp, "long_factor"), lf, MAXD / 2);
        c->short_factor = sf;
        c->long_factor = lf;
    } else {
        lcx_fail_msg("unknown golden kind %s", kind);
    }
}

static lcx_context *ctx_threads(int32_t n)
{
    return lcx_test_context(n);
}

/* Rotate `n_pos` copies of x (one per position, `heads` heads each) in f32. */
static void rotate_rows(lcx_context *ctx, const lcx_rope *rope, const double *x, int D, const int64_t *pos,
                        int n_pos, int heads, int as_k, float *out)
{
    for (int t = 0; t < n_pos; t++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < D; i++)
                out[((size_t)t * heads + h) * D + i] = (float)x[i];
    lcx_tensor tq;
    const int64_t shape[4] = {1, n_pos, heads, D};
    lcx_tensor_init(&tq, out, LCX_F32, 4, shape);
    const lcx_status st = lcx_rope_apply(ctx, rope, as_k ? NULL : &tq, as_k ? &tq : NULL, pos);
    if (st != LCX_OK)
        lcx_fail_msg("rope_apply: %s", lcx_last_error());
}

/* ---- golden ---- */

static void test_golden_frequencies(void **state)
{
    (void)state;
    const lcx_json *cfgs = golden_configs();
    if (!cfgs)
        skip();
    for (size_t ci = 0; ci < cfgs->n; ci++) {
        const lcx_json *g = &cfgs->items[ci];
        lcx_rope_config c;
        double sf[MAXD / 2], lf[MAXD / 2];
        config_from_golden(g, &c, sf, lf);
        const lcx_json *vars = lcx_json_get(g, "variants");
        for (size_t vi = 0; vi < vars->n; vi++) {
            const lcx_json *v = &vars->items[vi];
            const double sl = lcx_json_num(v, "seq_len");
            double want[MAXD / 2], got[MAXD / 2], a;
            const size_t n = lcx_json_nums(lcx_json_get(v, "inv_freq"), want, MAXD / 2);
            if (lcx_rope_frequencies(&c, isnan(sl) ? 0 : (int64_t)sl, got, &a) != LCX_OK)
                lcx_fail_msg("%s: %s", lcx_json_get(g, "name")->str, lcx_last_error());
            lcx_expect_close(got, want, n, 0, 4e-16, lcx_json_get(g, "name")->str);
            const double wa = lcx_json_num(v, "attention_factor");
            lcx_expect_close(&a, &wa, 1, 0, 1e-15, "attention_factor");
        }
    }
}

/* Every golden config and variant, both layouts, both modes, q and k, with
 * several heads sharing one cos/sin row. */
static void test_golden_rotations(void **state)
{
    (void)state;
    const lcx_json *cfgs = golden_configs();
    if (!cfgs)
        skip();
    double posd[16];
    const size_t npos = lcx_json_nums(lcx_json_get(golden, "positions"), posd, 16);
    int64_t pos[16];
    for (size_t i = 0; i < npos; i++)
        pos[i] = (int64_t)posd[i];
    lcx_context *ctx = ctx_threads(0);
    const int heads = 3;
    float *out = malloc(sizeof(float) * npos * heads * MAXD);
    for (size_t ci = 0; ci < cfgs->n; ci++) {
        const lcx_json *g = &cfgs->items[ci];
        const char *name = lcx_json_get(g, "name")->str;
        lcx_rope_config c;
        double sf[MAXD / 2], lf[MAXD / 2], q[MAXD];
        config_from_golden(g, &c, sf, lf);
        const int D = c.head_dim;
        lcx_json_nums(lcx_json_get(g, "q"), q, MAXD);
        double qmax = 0;
        for (int i = 0; i < D; i++)
            qmax = fmax(qmax, fabs(q[i]));
        const lcx_json *vars = lcx_json_get(g, "variants");
        for (size_t vi = 0; vi < vars->n; vi++) {
            const lcx_json *v = &vars->items[vi];
            const double sl = lcx_json_num(v, "seq_len");
            double theta_max = 0, th[MAXD / 2];
            const size_t n = lcx_json_nums(lcx_json_get(v, "inv_freq"), th, MAXD / 2);
            for (size_t i = 0; i < n; i++)
                theta_max = fmax(theta_max, th[i]);
            for (int mode = 0; mode < 2; mode++)
                for (int lay = 0; lay < 2; lay++) {
                    c.layout = lay ? LCX_ROPE_INTERLEAVED : LCX_ROPE_NEOX;
                    c.precision = mode ? LCX_ROPE_HF_F32 : LCX_ROPE_PRECISE;
                    lcx_rope *rope;
                    assert_int_equal(lcx_rope_create(ctx, &c, isnan(sl) ? 0 : (int64_t)sl, &rope), LCX_OK);
                    if (mode) {
                        /* our float32 frequencies follow HF's float32 operations: equal
                         * to its inv_freq, or one ulp apart where pow/exp round apart */
                        float mine[MAXD / 2];
                        double hf[MAXD / 2];
                        lcx_rope_hf_theta(rope, mine);
                        const size_t nh = lcx_json_nums(lcx_json_get(v, "hf_f32_inv_freq"), hf, MAXD / 2);
                        for (size_t i = 0; i < nh; i++)
                            if (!(fabs(mine[i] - hf[i]) <= 0x1p-23 * fabs(hf[i])))
                                lcx_fail_msg("%s HF f32 theta[%zu] = %a, HF %a", name, i, (double)mine[i], hf[i]);
                    }
                    char key[64];
                    snprintf(key, sizeof key, "rot_%s_%s", lay ? "interleaved" : "neox", mode ? "hf_f32" : "exact");
                    const lcx_json *rows = lcx_json_get(v, key);
                    for (int as_k = 0; as_k < 2; as_k++) {
                        rotate_rows(ctx, rope, q, D, pos, (int)npos, heads, as_k, out);
                        for (size_t t = 0; t < npos; t++) {
                            double want[MAXD], got[MAXD];
                            lcx_json_nums(&rows->items[t], want, MAXD);
                            /* spec §5 tolerances */
                            const double tol = mode ? 1e-6 + 2.5e-7 * (double)pos[t] * theta_max * qmax : 2e-6;
                            for (int h = 0; h < heads; h++) {
                                for (int i = 0; i < D; i++)
                                    got[i] = out[(t * heads + h) * D + i];
                                char what[160];
                                snprintf(what, sizeof what, "%s seq %g %s p=%lld head %d%s", name, sl, key,
                                         (long long)pos[t], h, as_k ? " (k)" : "");
                                lcx_expect_close(got, want, (size_t)D, tol, 0, what);
                            }
                        }
                    }
                    lcx_rope_destroy(rope);
                }
        }
    }
    free(out);
    lcx_context_destroy(ctx);
}

static void test_golden_constants(void **state)
{
    (void)state;
    if (!golden_configs())
        skip();
    const lcx_json *dc = lcx_json_get(golden, "derived_constants");
    lcx_rope_config c;
    lcx_rope_config_default(&c);
    c.type = LCX_ROPE_YARN;
    c.head_dim = 64;
    c.original_max_position = 4096;
    double a, m;
    const struct { double s; const char *key; } yarn_a[] = {
        {4, "yarn_attention_factor_f4"}, {32, "yarn_attention_factor_f32"}, {40, "yarn_attention_factor_f40"}};
    for (int i = 0; i < 3; i++) {
        c.factor = yarn_a[i].s;
        assert_int_equal(lcx_rope_frequencies(&c, 0, NULL, &a), LCX_OK);
        const double w = lcx_json_num(dc, yarn_a[i].key);
        lcx_expect_close(&a, &w, 1, 0, 1e-15, yarn_a[i].key);
        assert_int_equal(lcx_rope_softmax_scale_multiplier(&c, &m), LCX_OK);
        assert_true(m == 1.0);
    }
    /* DeepSeek: mscale = mscale_all_dim, so a = 1 and the softmax multiplier is g^2 */
    c.factor = 40;
    const struct { double m; const char *key; } ds[] = {
        {0.707, "deepseek_softmax_scale_multiplier_v2lite_mscale_all_dim_0p707_f40"},
        {1.0, "deepseek_softmax_scale_multiplier_v3_mscale_all_dim_1_f40"}};
    for (int i = 0; i < 2; i++) {
        c.mscale = c.mscale_all_dim = ds[i].m;
        assert_int_equal(lcx_rope_softmax_scale_multiplier(&c, &m), LCX_OK);
        const double w = lcx_json_num(dc, ds[i].key);
        lcx_expect_close(&m, &w, 1, 0, 1e-14, ds[i].key);
        assert_int_equal(lcx_rope_frequencies(&c, 0, NULL, &a), LCX_OK);
        assert_true(fabs(a - 1) < 1e-15);
    }
    /* asymmetric synthetic: mscale 1, mscale_all_dim 0.707 -> a = 1.0857264 */
    c.mscale = 1;
    c.mscale_all_dim = 0.707;
    assert_int_equal(lcx_rope_frequencies(&c, 0, NULL, &a), LCX_OK);
    assert_true(fabs(a - 1.0857264) < 1e-7);
    /* NTK static base for d 128, s 4: theta_1 = b'^(-2/128) */
    lcx_rope_config_default(&c);
    c.type = LCX_ROPE_NTK;
    c.factor = 4;
    double th[64];
    assert_int_equal(lcx_rope_frequencies(&c, 0, th, &a), LCX_OK);
    const double bprime = lcx_json_num(dc, "ntk_static_f4_effective_base_d128");
    const double w1 = pow(bprime, -2.0 / 128);
    lcx_expect_close(&th[1], &w1, 1, 0, 1e-14, "ntk static theta_1");
    /* the last NTK frequency is exactly theta0_last / s */
    const double wl = pow(10000.0, -126.0 / 128) / 4;
    lcx_expect_close(&th[63], &wl, 1, 0, 1e-14, "ntk static theta_last");
}

/* ---- oracle: the variants without golden data, random positions to 2^31-1 ---- */

static void check_against_oracle(lcx_context *ctx, const lcx_rope_config *c, int64_t seq_len, lcx_rng *rng,
                                 const char *what)
{
    const int D = c->head_dim, d = c->rotary_dim ? c->rotary_dim : D;
    const int ntok = 24, heads = 2;
    int64_t pos[24];
    for (int t = 0; t < ntok; t++)
        pos[t] = t < 4 ? t : t < 8 ? 2147483647 - t : lcx_rng_range(rng, 0, 2147483647);
    double x[MAXD];
    for (int i = 0; i < D; i++)
        x[i] = lcx_rng_uniform(rng, -2, 2);
    lcx_rope *rope;
    if (lcx_rope_create(ctx, c, seq_len, &rope) != LCX_OK)
        lcx_fail_msg("%s: %s", what, lcx_last_error());
    float *out = malloc(sizeof(float) * ntok * heads * D);
    rotate_rows(ctx, rope, x, D, pos, ntok, heads, 0, out);
    long double theta[MAXD / 2], a;
    lcx_ref_rope_freqs(c, seq_len, theta, &a);
    long double theta0[MAXD / 2], a0;
    lcx_rope_config plain = *c;
    plain.type = LCX_ROPE_DEFAULT;
    plain.attention_factor = 0;
    lcx_ref_rope_freqs(&plain, 0, theta0, &a0);
    for (int t = 0; t < ntok; t++) {
        double want[MAXD], got[MAXD], xf[MAXD];
        for (int i = 0; i < D; i++)
            xf[i] = (float)x[i];
        const int plain_pos = c->type == LCX_ROPE_LONGROPE && pos[t] < c->n_hat;
        lcx_ref_rope_rotate(xf, D, d, c->layout, (long double)pos[t], plain_pos ? theta0 : theta,
                            plain_pos ? 1.0L : a, want);
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < D; i++)
                got[i] = out[((size_t)t * heads + h) * D + i];
            char w[160];
            snprintf(w, sizeof w, "%s p=%lld", what, (long long)pos[t]);
            lcx_expect_close(got, want, (size_t)D, 2e-6, 0, w);
        }
    }
    free(out);
    lcx_rope_destroy(rope);
}

static void test_oracle_variants(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 21);
    lcx_context *ctx = ctx_threads(0);
    double sf[64], lf[64];
    for (int i = 0; i < 64; i++) {
        sf[i] = 1.0 + 0.05 * i * lcx_rng_uniform(&rng, 0.5, 1.5);
        lf[i] = 1.0 + 0.4 * i * lcx_rng_uniform(&rng, 0.5, 1.5);
    }
    for (int lay = 0; lay < 2; lay++) {
        lcx_rope_config c;
        const lcx_rope_layout L = lay ? LCX_ROPE_INTERLEAVED : LCX_ROPE_NEOX;
        /* ABF */
        lcx_rope_config_default(&c);
        c.layout = L;
        c.base = 500000;
        check_against_oracle(ctx, &c, 0, &rng, "abf 5e5");
        /* static NTK */
        c.type = LCX_ROPE_NTK;
        c.base = 10000;
        c.factor = 4;
        check_against_oracle(ctx, &c, 0, &rng, "ntk s4");
        /* YaRN, gpt-oss: truncate false, d 64, base 150000, L0 4096, s 32 */
        lcx_rope_config_default(&c);
        c.layout = L;
        c.type = LCX_ROPE_YARN;
        c.head_dim = 64;
        c.base = 150000;
        c.original_max_position = 4096;
        c.factor = 32;
        c.truncate = 0;
        check_against_oracle(ctx, &c, 0, &rng, "yarn gpt-oss truncate=0");
        /* DeepSeek-V2-Lite rope slice: d 64, interleaved in practice, mscale = mscale_all_dim */
        c.base = 10000;
        c.factor = 40;
        c.truncate = 1;
        c.mscale = c.mscale_all_dim = 0.707;
        check_against_oracle(ctx, &c, 0, &rng, "yarn deepseek");
        /* explicit attention factor, custom betas, asymmetric mscale */
        c.mscale = 1;
        c.attention_factor = 0.9;
        c.beta_fast = 16;
        c.beta_slow = 2;
        check_against_oracle(ctx, &c, 0, &rng, "yarn explicit a");
        /* partial rotary with a large head (80 of 160) */
        lcx_rope_config_default(&c);
        c.layout = L;
        c.head_dim = 160;
        c.rotary_dim = 80;
        check_against_oracle(ctx, &c, 0, &rng, "partial 80/160");
        /* tiny and odd-pair dims: d 2, d 6, d 34 */
        const int dims[3] = {2, 6, 34};
        for (int k = 0; k < 3; k++) {
            c.head_dim = dims[k] + 4;
            c.rotary_dim = dims[k];
            check_against_oracle(ctx, &c, 0, &rng, "small d");
        }
        /* LongRoPE with n_hat, both sets, d 128 */
        lcx_rope_config_default(&c);
        c.layout = L;
        c.type = LCX_ROPE_LONGROPE;
        c.original_max_position = 4096;
        c.max_position = 131072;
        c.factor = 0;
        c.short_factor = sf;
        c.long_factor = lf;
        c.n_hat = 6;
        check_against_oracle(ctx, &c, 4096, &rng, "longrope short n_hat 6");
        check_against_oracle(ctx, &c, 4097, &rng, "longrope long n_hat 6");
        /* dynamic NTK at several lengths, Llama-3 */
        lcx_rope_config_default(&c);
        c.layout = L;
        c.type = LCX_ROPE_DYNAMIC;
        c.factor = 2;
        c.max_position = 4096;
        check_against_oracle(ctx, &c, 100000, &rng, "dynamic 100k");
        c.type = LCX_ROPE_LLAMA3;
        c.factor = 8;
        c.original_max_position = 8192;
        c.base = 500000;
        check_against_oracle(ctx, &c, 0, &rng, "llama3");
    }
    lcx_context_destroy(ctx);
}

/* ---- properties ---- */

static void test_properties(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 22);
    lcx_context *ctx = ctx_threads(0);
    lcx_rope_config c;
    lcx_rope_config_default(&c);
    c.type = LCX_ROPE_YARN;
    c.head_dim = 96;
    c.rotary_dim = 64;
    c.factor = 4;
    c.original_max_position = 4096;
    const int D = 96, T = 33, H = 5;
    float *x = malloc(sizeof(float) * T * H * D), *y = malloc(sizeof(float) * T * H * D);
    int64_t pos[33];
    for (int t = 0; t < T; t++)
        pos[t] = t == 0 ? 0 : lcx_rng_range(&rng, 0, 3000000);
    for (int i = 0; i < T * H * D; i++)
        x[i] = (float)lcx_rng_uniform(&rng, -3, 3);
    const int64_t shape[4] = {1, T, H, D};
    float *rows[2];
    for (int lay = 0; lay < 2; lay++) {
        c.layout = lay ? LCX_ROPE_INTERLEAVED : LCX_ROPE_NEOX;
        lcx_rope *rope;
        assert_int_equal(lcx_rope_create(ctx, &c, 0, &rope), LCX_OK);
        double a;
        lcx_rope_get(rope, NULL, &a, NULL);
        lcx_tensor t;
        rows[lay] = malloc(sizeof(float) * T * H * D);
        float *src = x;
        if (lay) { /* interleaved input = P^-1 of the NeoX input: x_il[2i] = x[i], x_il[2i+1] = x[i+d/2] */
            src = malloc(sizeof(float) * T * H * D);
            for (int v = 0; v < T * H; v++) {
                memcpy(src + v * D, x + v * D, sizeof(float) * D);
                for (int i = 0; i < 32; i++) {
                    src[v * D + 2 * i] = x[v * D + i];
                    src[v * D + 2 * i + 1] = x[v * D + 32 + i];
                }
            }
        }
        memcpy(y, src, sizeof(float) * T * H * D);
        lcx_tensor_init(&t, y, LCX_F32, 4, shape);
        assert_int_equal(lcx_rope_apply(ctx, rope, &t, NULL, pos), LCX_OK);
        for (int v = 0; v < T * H; v++) {
            double n0 = 0, n1 = 0;
            for (int i = 0; i < 64; i++) {
                n0 += (double)src[v * D + i] * src[v * D + i];
                n1 += (double)y[v * D + i] * y[v * D + i];
            }
            /* norm times a */
            if (!(fabs(sqrt(n1) - a * sqrt(n0)) <= 4e-6 * sqrt(n0)))
                lcx_fail_msg("norm %g, want %g x %g", sqrt(n1), a, sqrt(n0));
            /* pass-through dims bit-identical */
            if (memcmp(y + v * D + 64, src + v * D + 64, sizeof(float) * 32) != 0)
                lcx_fail_msg("pass-through dims changed (vector %d)", v);
            /* position 0: x * a */
            if (v < H)
                for (int i = 0; i < 64; i++)
                    if (!(fabs(y[v * D + i] - a * src[v * D + i]) <= 1e-6 * fabs(a * src[v * D + i]) + 1e-30))
                        lcx_fail_msg("p=0: %g, want %g", (double)y[v * D + i], a * src[v * D + i]);
        }
        memcpy(rows[lay], y, sizeof(float) * T * H * D);
        if (lay)
            free(src);
        lcx_rope_destroy(rope);
    }
    /* interleaved(P^-1 x) = P^-1 NeoX(x) */
    for (int v = 0; v < T * H; v++)
        for (int i = 0; i < 32; i++) {
            if (!(fabs(rows[1][v * D + 2 * i] - rows[0][v * D + i]) <= 1e-6) ||
                !(fabs(rows[1][v * D + 2 * i + 1] - rows[0][v * D + 32 + i]) <= 1e-6))
                lcx_fail_msg("interleaved differs from permuted NeoX at vector %d pair %d", v, i);
        }
    free(rows[0]);
    free(rows[1]);
    free(x);
    free(y);
    lcx_context_destroy(ctx);
}

/* bf16 / f16 q and k in strided views of a fused QKV buffer, q-only, k-only,
 * several batches with their own positions, thread-count independence. */
static void test_views_dtypes_threads(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 23);
    const int B = 2, S = 37, HQ = 4, HK = 2, D = 64, W = HQ + 2 * HK; /* fused [B][S][W][D] */
    lcx_rope_config c;
    lcx_rope_config_default(&c);
    c.type = LCX_ROPE_LLAMA3;
    c.factor = 8;
    c.original_max_position = 8192;
    c.base = 500000;
    c.head_dim = D;
    int64_t pos[2 * 37];
    for (int i = 0; i < B * S; i++)
        pos[i] = lcx_rng_range(&rng, 0, 1 << 24);
    const size_t nel = (size_t)B * S * W * D;
    double *xs = malloc(sizeof(double) * nel);
    for (size_t i = 0; i < nel; i++)
        xs[i] = lcx_rng_uniform(&rng, -2, 2);
    const lcx_dtype dts[3] = {LCX_F32, LCX_BF16, LCX_F16};
    long double theta[32], a;
    lcx_ref_rope_freqs(&c, 0, theta, &a);
    for (int di = 0; di < 3; di++) {
        for (int lay = 0; lay < 2; lay++) {
            c.layout = lay ? LCX_ROPE_INTERLEAVED : LCX_ROPE_NEOX;
            const lcx_dtype dt = dts[di];
            const size_t es = lcx_dtype_size(dt);
            unsigned char *ref_out = NULL;
            for (int variant = 0; variant < 6; variant++) {
                /* 0-3: threads 1,2,3,default with q+k; 4: q only; 5: k only */
                const int32_t nt = variant < 4 ? (int32_t[]){1, 2, 3, 0}[variant] : 0;
                lcx_context *ctx = ctx_threads(nt);
                lcx_rope *rope;
                assert_int_equal(lcx_rope_create(ctx, &c, 0, &rope), LCX_OK);
                lcx_guarded g;
                unsigned char *buf = lcx_guard_alloc(&g, nel * es);
                float tmp;
                uint16_t h;
                double *in = malloc(sizeof(double) * nel);
                for (size_t i = 0; i < nel; i++) {
                    tmp = (float)xs[i];
                    if (dt == LCX_F32)
                        memcpy(buf + i * es, &tmp, 4);
                    else {
                        lcx_tensor s1, d1;
                        const int64_t one[1] = {1};
                        lcx_tensor_init(&s1, &tmp, LCX_F32, 1, one);
                        lcx_tensor_init(&d1, &h, dt, 1, one);
                        lcx_convert(ctx, &s1, &d1);
                        memcpy(buf + i * es, &h, 2);
                        tmp = (float)lcx_ref_decode16(dt, h);
                    }
                    in[i] = tmp;
                }
                unsigned char *orig = malloc(nel * es);
                memcpy(orig, buf, nel * es);
                lcx_tensor tq = {0}, tk = {0};
                tq.data = buf;
                tk.data = buf + (size_t)HQ * D * es;
                tq.dtype = tk.dtype = dt;
                tq.ndim = tk.ndim = 4;
                const int64_t st[4] = {(int64_t)S * W * D, (int64_t)W * D, D, 1};
                memcpy(tq.stride, st, sizeof st);
                memcpy(tk.stride, st, sizeof st);
                const int64_t sq[4] = {B, S, HQ, D}, sk[4] = {B, S, HK, D};
                memcpy(tq.shape, sq, sizeof sq);
                memcpy(tk.shape, sk, sizeof sk);
                const int do_q = variant != 5, do_k = variant != 4;
                if (lcx_rope_apply(ctx, rope, do_q ? &tq : NULL, do_k ? &tk : NULL, pos) != LCX_OK)
                    lcx_fail_msg("apply: %s", lcx_last_error());
                lcx_guard_check(&g, "rope views");
                /* check every element: rotated heads against the oracle, the
                 * rest (v heads, unrotated q or k) untouched */
                const double rel = dt == LCX_F32 ? 0 : dt == LCX_BF16 ? 0x1p-8 : 0x1p-11;
                for (int b = 0; b < B; b++)
                    for (int s = 0; s < S; s++)
                        for (int w = 0; w < W; w++) {
                            const size_t off = (((size_t)b * S + s) * W + w) * D;
                            const int rotated = (w < HQ && do_q) || (w >= HQ && w < HQ + HK && do_k);
                            if (!rotated) {
                                if (memcmp(buf + off * es, orig + off * es, (size_t)D * es))
                                    lcx_fail_msg("head %d of token (%d,%d) written", w, b, s);
                                continue;
                            }
                            double want[64];
                            lcx_ref_rope_rotate(in + off, D, D, c.layout, (long double)pos[b * S + s], theta, a,
                                                want);
                            for (int i = 0; i < D; i++) {
                                double got;
                                if (dt == LCX_F32) {
                                    float f;
                                    memcpy(&f, buf + (off + i) * es, 4);
                                    got = f;
                                } else {
                                    memcpy(&h, buf + (off + i) * es, 2);
                                    got = lcx_ref_decode16(dt, h);
                                }
                                if (!(fabs(got - want[i]) <= 2e-6 + rel * fabs(want[i])))
                                    lcx_fail_msg("%s %s token (%d,%d) head %d dim %d: %.9g, want %.9g",
                                                 lcx_dtype_name(dt), lay ? "interleaved" : "neox", b, s, w, i, got,
                                                 want[i]);
                            }
                        }
                if (variant == 0) {
                    ref_out = malloc(nel * es);
                    memcpy(ref_out, buf, nel * es);
                } else if (variant < 4) {
                    lcx_expect_bytes_equal(buf, ref_out, nel * es, "thread-count independence");
                }
                free(orig);
                free(in);
                lcx_guard_free(&g);
                lcx_rope_destroy(rope);
                lcx_context_destroy(ctx);
            }
            free(ref_out);
        }
    }
    free(xs);
}

/* LongRoPE short -> long re-rotation equals rotating with the long set; a
 * context shift by delta equals rotating at p + delta; set_length moves a
 * dynamic rope to the golden bases without re-creating it. */
static void test_rerotate_shift_length(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 24);
    lcx_context *ctx = ctx_threads(0);
    double sf[48], lf[48];
    for (int i = 0; i < 48; i++) {
        sf[i] = 1 + 0.02 * i;
        lf[i] = 1 + 0.9 * i;
    }
    lcx_rope_config c;
    lcx_rope_config_default(&c);
    c.type = LCX_ROPE_LONGROPE;
    c.head_dim = 96;
    c.original_max_position = 4096;
    c.max_position = 131072;
    c.factor = 0;
    c.short_factor = sf;
    c.long_factor = lf;
    const int T = 40, H = 3, D = 96;
    const size_t nel = (size_t)T * H * D;
    float *x = malloc(nel * 4), *y = malloc(nel * 4), *z = malloc(nel * 4);
    for (size_t i = 0; i < nel; i++)
        x[i] = (float)lcx_rng_uniform(&rng, -2, 2);
    int64_t pos[40];
    for (int t = 0; t < T; t++)
        pos[t] = lcx_rng_range(&rng, 0, 200000);
    const int64_t shape[4] = {1, T, H, D};
    for (int lay = 0; lay < 2; lay++) {
        c.layout = lay ? LCX_ROPE_INTERLEAVED : LCX_ROPE_NEOX;
        lcx_rope *rs, *rl;
        assert_int_equal(lcx_rope_create(ctx, &c, 4096, &rs), LCX_OK);
        assert_int_equal(lcx_rope_create(ctx, &c, 4096, &rl), LCX_OK);
        assert_int_equal(lcx_rope_set_length(rl, 4097), LCX_OK); /* switch to the long set in place */
        lcx_tensor ty, tz;
        memcpy(y, x, nel * 4);
        memcpy(z, x, nel * 4);
        lcx_tensor_init(&ty, y, LCX_F32, 4, shape);
        lcx_tensor_init(&tz, z, LCX_F32, 4, shape);
        assert_int_equal(lcx_rope_apply(ctx, rs, NULL, &ty, pos), LCX_OK);
        assert_int_equal(lcx_rope_rerotate(ctx, rs, rl, &ty, pos), LCX_OK);
        assert_int_equal(lcx_rope_apply(ctx, rl, NULL, &tz, pos), LCX_OK);
        for (size_t i = 0; i < nel; i++)
            if (!(fabsf(y[i] - z[i]) <= 3e-6f))
                lcx_fail_msg("rerotate short->long: %g vs %g at %zu", (double)y[i], (double)z[i], i);
        /* shift: rotate at p, shift by delta, compare with rotation at p + delta */
        const int64_t delta = lay ? 987654321 : -1234567;
        int64_t p2[40];
        for (int t = 0; t < T; t++) {
            pos[t] = lcx_rng_range(&rng, 1300000, 1000000000);
            p2[t] = pos[t] + delta;
        }
        memcpy(y, x, nel * 4);
        memcpy(z, x, nel * 4);
        assert_int_equal(lcx_rope_apply(ctx, rl, NULL, &ty, pos), LCX_OK);
        assert_int_equal(lcx_rope_shift(ctx, rl, &ty, delta), LCX_OK);
        assert_int_equal(lcx_rope_apply(ctx, rl, NULL, &tz, p2), LCX_OK);
        for (size_t i = 0; i < nel; i++)
            if (!(fabsf(y[i] - z[i]) <= 3e-6f))
                lcx_fail_msg("shift by %lld: %g vs %g at %zu", (long long)delta, (double)y[i], (double)z[i], i);
        lcx_rope_destroy(rs);
        lcx_rope_destroy(rl);
    }
    /* dynamic NTK: grow in place, compare with fresh frequencies */
    lcx_rope_config_default(&c);
    c.type = LCX_ROPE_DYNAMIC;
    c.factor = 4;
    c.max_position = 4096;
    lcx_rope *r;
    assert_int_equal(lcx_rope_create(ctx, &c, 0, &r), LCX_OK);
    const int64_t lens[3] = {4096, 16384, 32768};
    for (int i = 0; i < 3; i++) {
        double got[64], want[64];
        assert_int_equal(lcx_rope_set_length(r, lens[i]), LCX_OK);
        assert_int_equal(lcx_rope_get(r, got, NULL, NULL), LCX_OK);
        assert_int_equal(lcx_rope_frequencies(&c, lens[i], want, NULL), LCX_OK);
        lcx_expect_bytes_equal(got, want, sizeof got, "set_length");
    }
    lcx_rope_destroy(r);
    free(x);
    free(y);
    free(z);
    lcx_context_destroy(ctx);
}

/* Every kernel variant of the ISA against the scalar kernels: cos/sin rows
 * and rotations at many sizes (including every tail). */
static void test_kernels_vs_scalar(void **state)
{
    (void)state;
    const lcx_isa isa = lcx_test_isa == LCX_ISA_AUTO ? lcx_isa_best() : lcx_test_isa;
    lcx_ktable t, ref;
    lcx_build_table(isa, lcx_cpu_features(), &t);
    lcx_build_table(LCX_ISA_SCALAR, 0, &ref);
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 25);
    _Alignas(64) uint64_t turns[512];
    _Alignas(64) float th[512], c1[512], s1[512], c2[512], s2[512];
    for (int i = 0; i < 512; i++) {
        turns[i] = lcx_rng_u64(&rng);
        th[i] = (float)lcx_rng_uniform(&rng, 0, 1.2);
    }
    for (int k = 0; k < 200; k++) {
        const int64_t p = k < 3 ? k : lcx_rng_range(&rng, 0, 2147483647);
        t.rope_cossin(turns, p, 512, 1.25f, c1, s1);
        ref.rope_cossin(turns, p, 512, 1.25f, c2, s2);
        for (int i = 0; i < 512; i++)
            if (!(fabsf(c1[i] - c2[i]) <= 4e-7f) || !(fabsf(s1[i] - s2[i]) <= 4e-7f))
                lcx_fail_msg("%s p=%lld pair %d: (%g,%g) vs scalar (%g,%g)", t.impl[LCX_OP_rope_cossin],
                             (long long)p, i, (double)c1[i], (double)s1[i], (double)c2[i], (double)s2[i]);
        t.rope_cossin_f32(th, (float)(p & 0xffffff), 512, 0.75f, c1, s1);
        ref.rope_cossin_f32(th, (float)(p & 0xffffff), 512, 0.75f, c2, s2);
        for (int i = 0; i < 512; i++)
            if (!(fabsf(c1[i] - c2[i]) <= 3e-7f) || !(fabsf(s1[i] - s2[i]) <= 3e-7f))
                lcx_fail_msg("%s pair %d differs from scalar", t.impl[LCX_OP_rope_cossin_f32], i);
    }
    float *x = malloc(4 * 4 * 1100), *y = malloc(4 * 4 * 1100);
    for (int n = 1; n <= 70; n++) {
        for (int i = 0; i < 4 * 1100; i++)
            x[i] = y[i] = (float)lcx_rng_uniform(&rng, -2, 2);
        for (int i = 0; i < 2 * n; i++) {
            c1[i] = (float)lcx_rng_uniform(&rng, -1, 1);
            s1[i] = (float)lcx_rng_uniform(&rng, -1, 1);
        }
        t.rope_rot_neox_f32(x + 1, 2 * n + 3, 4, c1, s1, n);
        ref.rope_rot_neox_f32(y + 1, 2 * n + 3, 4, c1, s1, n);
        for (int i = 0; i < 4 * 1100; i++)
            if (!(fabsf(x[i] - y[i]) <= 2e-6f))
                lcx_fail_msg("%s n=%d elem %d", t.impl[LCX_OP_rope_rot_neox_f32], n, i);
        memcpy(x, y, 4 * 4 * 1100); /* same input for the next layout */
        t.rope_rot_interleaved_f32(x + 1, 2 * n + 3, 4, c1, s1, n);
        ref.rope_rot_interleaved_f32(y + 1, 2 * n + 3, 4, c1, s1, n);
        for (int i = 0; i < 4 * 1100; i++)
            if (!(fabsf(x[i] - y[i]) <= 2e-6f))
                lcx_fail_msg("%s n=%d elem %d", t.impl[LCX_OP_rope_rot_interleaved_f32], n, i);
    }
    free(x);
    free(y);
    /* 16-bit rotations, every variant of this ISA (AVX-512 with and without
     * the BF16 instructions), against the scalar kernels: the same f32
     * rotation rounded once, so at most one 16-bit ulp apart (FMA) */
    const unsigned feat = lcx_cpu_features();
    const unsigned masks[2] = {feat, feat & ~(unsigned)LCX_CPU_AVX512BF16};
    uint16_t *hx = malloc(2 * 4 * 1100), *hy = malloc(2 * 4 * 1100);
    for (int mi = 0; mi < ((feat & LCX_CPU_AVX512BF16) ? 2 : 1); mi++) {
        lcx_build_table(isa, masks[mi], &t);
        for (int bf = 0; bf < 2; bf++) {
            const lcx_dtype dt = bf ? LCX_BF16 : LCX_F16;
            for (int n = 1; n <= 140; n++) {
                /* every other run tiny: results in the subnormal range */
                const double scale = n % 2 ? 1 : bf ? 1e-38 : 1e-5;
                for (int i = 0; i < 4 * 1100; i++) {
                    const double v = lcx_rng_uniform(&rng, -2, 2) * scale;
                    hx[i] = hy[i] = lcx_ref_encode16(dt, lcx_ref_round(dt, v));
                }
                for (int i = 0; i < 2 * n; i++) {
                    c1[i] = (float)lcx_rng_uniform(&rng, -1, 1);
                    s1[i] = (float)lcx_rng_uniform(&rng, -1, 1);
                }
                for (int lay = 0; lay < 2; lay++) {
                    memcpy(hx, hy, 2 * 4 * 1100); /* same input for both kernels */
                    const char *name = lay ? t.impl[LCX_OP_rope_rot_interleaved_x16] : t.impl[LCX_OP_rope_rot_neox_x16];
                    if (lay) {
                        t.rope_rot_interleaved_x16(hx + 1, 2 * n + 3, 4, c1, s1, n, bf);
                        ref.rope_rot_interleaved_x16(hy + 1, 2 * n + 3, 4, c1, s1, n, bf);
                    } else {
                        t.rope_rot_neox_x16(hx + 1, 2 * n + 3, 4, c1, s1, n, bf);
                        ref.rope_rot_neox_x16(hy + 1, 2 * n + 3, 4, c1, s1, n, bf);
                    }
                    for (int i = 0; i < 4 * 1100; i++) {
                        const double a = lcx_ref_decode16(dt, hx[i]), b = lcx_ref_decode16(dt, hy[i]);
                        /* one 16-bit ulp of the result, plus the f32 rounding of
                         * terms of size <= 2*scale (FMA or not) */
                        const double ulp = fmax(fabs(b), bf ? 0x1p-126 : 0x1p-14) * (bf ? 0x1p-7 : 0x1p-10);
                        if (!(fabs(a - b) <= ulp + 0x1p-21 * scale))
                            lcx_fail_msg("%s %s n=%d elem %d: %g vs scalar %g", name, lcx_dtype_name(dt), n, i, a, b);
                    }
                }
            }
        }
    }
    free(hx);
    free(hy);
}

/* ---- bad input ---- */

static void test_bad_config(void **state)
{
    (void)state;
    double f[64], ones[64];
    for (int i = 0; i < 64; i++)
        f[i] = ones[i] = 1;
    for (int k = 0;; k++) {
        lcx_rope_config c;
        lcx_rope_config_default(&c);
        const char *field = NULL;
        switch (k) {
        case 0: c.struct_size = 8; field = "struct_size"; break;
        case 1: c.type = (lcx_rope_type)9; field = "type"; break;
        case 2: c.layout = (lcx_rope_layout)2; field = "layout"; break;
        case 3: c.precision = (lcx_rope_precision)5; field = "precision"; break;
        case 4: c.rotary_dim = 97; field = "rotary_dim 97 is odd"; break;
        case 5: c.rotary_dim = 130; field = "rotary_dim"; break;
        case 6: c.head_dim = 1; field = "head_dim"; break;
        case 7: c.base = 1.0; field = "base"; break;
        case 8: c.base = NAN; field = "base"; break;
        case 9: c.type = LCX_ROPE_LINEAR; c.factor = 0; field = "factor"; break;
        case 10: c.type = LCX_ROPE_LINEAR; c.factor = INFINITY; field = "factor"; break;
        case 11: c.factor = -2; field = "factor"; break;
        case 12: c.type = LCX_ROPE_LLAMA3; c.factor = 8; c.original_max_position = 8192; c.high_freq_factor = 1;
            field = "high_freq_factor"; break;
        case 13: c.type = LCX_ROPE_LONGROPE; c.original_max_position = 4096; field = "short_factor"; break;
        case 14: c.type = LCX_ROPE_LONGROPE; c.original_max_position = 4096; c.short_factor = f;
            c.long_factor = f; c.n_hat = -1; field = "n_hat"; break;
        case 15: c.type = LCX_ROPE_YARN; c.original_max_position = 4096; c.factor = 4; c.mscale = NAN;
            field = "mscale"; break;
        case 16: c.attention_factor = -1; field = "attention_factor"; break;
        case 17: c.type = LCX_ROPE_DYNAMIC; c.factor = 2; c.max_position = 0; field = "max_position"; break;
        case 18: c.type = LCX_ROPE_LLAMA3; c.factor = 8; c.original_max_position = 0; field = "original_max_position"; break;
        case 19: c.type = LCX_ROPE_LONGROPE; c.original_max_position = 4096; c.short_factor = ones;
            c.long_factor = f; f[5] = -1; field = "long_factor[5]"; break;
        case 20: c.type = LCX_ROPE_YARN; c.factor = 4; c.original_max_position = 4096; c.truncate = 2;
            field = "truncate"; break;
        case 21: c.type = LCX_ROPE_LLAMA3; c.factor = 8; c.original_max_position = 8192; c.attention_factor = 1.2;
            field = "attention_factor"; break;
        case 22: c.type = LCX_ROPE_YARN; c.factor = 4; c.original_max_position = -5; field = "original_max_position"; break;
        default: return;
        }
        const lcx_status st = lcx_rope_config_validate(&c);
        if (st != LCX_E_INVALID || !strstr(lcx_last_error(), field))
            lcx_fail_msg("bad config %d: got %s '%s', want a message naming '%s'", k, lcx_status_string(st),
                         lcx_last_error(), field);
        double th[64];
        memset(th, 0x5a, sizeof th);
        assert_int_equal(lcx_rope_frequencies(&c, 0, th, NULL), LCX_E_INVALID);
        for (int i = 0; i < 64; i++)
            assert_int_equal(((unsigned char *)th)[i], 0x5a);
        f[5] = 1;
    }
}

static void test_bad_apply(void **state)
{
    (void)state;
    lcx_context *ctx = ctx_threads(0);
    lcx_rope_config c;
    lcx_rope_config_default(&c);
    c.head_dim = 16;
    lcx_rope *rope;
    assert_int_equal(lcx_rope_create(ctx, &c, 0, &rope), LCX_OK);
    const int64_t sq[4] = {1, 4, 2, 16}, sk[4] = {1, 4, 1, 16};
    float q[128], k[64];
    for (int i = 0; i < 128; i++)
        q[i] = (float)i;
    for (int i = 0; i < 64; i++)
        k[i] = (float)-i;
    float q0[128], k0[64];
    memcpy(q0, q, sizeof q);
    memcpy(k0, k, sizeof k);
    for (int cse = 0;; cse++) {
        lcx_tensor tq, tk;
        lcx_tensor_init(&tq, q, LCX_F32, 4, sq);
        lcx_tensor_init(&tk, k, LCX_F32, 4, sk);
        int64_t pos[5] = {0, 1, 2, 3, 0};
        const int64_t *pp = pos;
        lcx_context *cx = ctx;
        const lcx_rope *r = rope;
        const lcx_tensor *pq = &tq, *pk = &tk;
        const char *msg;
        switch (cse) {
        case 0: cx = NULL; msg = "ctx"; break;
        case 1: r = NULL; msg = "rope is NULL"; break;
        case 2: pq = pk = NULL; msg = "both NULL"; break;
        case 3: tq.ndim = 3; tq.shape[0] = 4; tq.shape[1] = 2; tq.shape[2] = 16;
            tq.stride[0] = 32; tq.stride[1] = 16; tq.stride[2] = 1; msg = "want 4"; break;
        case 4: tk.shape[3] = 8; msg = "head_dim"; break;
        case 5: tk.shape[1] = 3; msg = "tokens"; break;
        case 6: tk.data = q + 16; msg = "overlap"; break;
        case 7: pos[2] = -1; msg = "positions[0][2]"; break;
        case 8: pos[3] = 2147483648LL; msg = "outside"; break;
        case 9: tq.stride[3] = 2; msg = "innermost"; break;
        case 10: tq.dtype = (lcx_dtype)5; msg = "dtype"; break;
        case 11: tq.stride[2] = 0; msg = "overlap"; break;
        case 12: pp = (const int64_t *)(const void *)((const char *)pos + 4); msg = "not aligned"; break;
        default: goto done;
        }
        const lcx_status st = lcx_rope_apply(cx, r, pq, pk, pp);
        if (st != LCX_E_INVALID || !strstr(lcx_last_error(), msg))
            lcx_fail_msg("bad apply %d: %s '%s' (want '%s')", cse, lcx_status_string(st), lcx_last_error(), msg);
        lcx_expect_bytes_equal(q, q0, sizeof q, "q after refused call");
        lcx_expect_bytes_equal(k, k0, sizeof k, "k after refused call");
    }
done:;
    lcx_rope_config c2 = c;
    c2.head_dim = 32;
    lcx_rope *other;
    assert_int_equal(lcx_rope_create(ctx, &c2, 0, &other), LCX_OK);
    lcx_tensor tk;
    lcx_tensor_init(&tk, k, LCX_F32, 4, sk);
    assert_int_equal(lcx_rope_rerotate(ctx, rope, other, &tk, NULL), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "differ"));
    assert_int_equal(lcx_rope_shift(ctx, rope, &tk, (int64_t)1 << 40), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "delta"));
    /* q and k interleaved in one buffer but overlapping through a size-1 dim's stride */
    {
        float buf[2 * 64 + 64];
        lcx_tensor a = {0}, b2;
        a.data = buf;
        a.dtype = LCX_F32;
        a.ndim = 4;
        const int64_t sh[4] = {2, 1, 4, 16}, st[4] = {64, 1000000, 16, 1};
        memcpy(a.shape, sh, sizeof sh);
        memcpy(a.stride, st, sizeof st);
        b2 = a;
        b2.data = buf + 64; /* k batch 0 = q batch 1 */
        assert_int_equal(lcx_rope_apply(ctx, rope, &a, &b2, NULL), LCX_E_INVALID);
        assert_non_null(strstr(lcx_last_error(), "overlap"));
        /* a real fused layout with a size-1 batch of stride 0 is accepted */
        const int64_t sh1[4] = {1, 2, 2, 16}, st1[4] = {0, 96, 16, 1};
        memcpy(a.shape, sh1, sizeof sh1);
        memcpy(a.stride, st1, sizeof st1);
        b2 = a;
        b2.data = buf + 32;
        b2.shape[2] = 4;
        for (int i = 0; i < 192; i++)
            buf[i] = 0;
        assert_int_equal(lcx_rope_apply(ctx, rope, &a, &b2, NULL), LCX_OK);
    }
    /* shift of LongRoPE keys with n_hat is refused (rotation depends on p) */
    {
        double f[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        lcx_rope_config lc = c;
        lc.type = LCX_ROPE_LONGROPE;
        lc.original_max_position = 4096;
        lc.short_factor = lc.long_factor = f;
        lc.n_hat = 4;
        lcx_rope *lr;
        assert_int_equal(lcx_rope_create(ctx, &lc, 0, &lr), LCX_OK);
        assert_int_equal(lcx_rope_shift(ctx, lr, &tk, 3), LCX_E_INVALID);
        assert_non_null(strstr(lcx_last_error(), "n_hat"));
        lcx_rope_destroy(lr);
    }
    assert_int_equal(lcx_rope_create(ctx, &c, -1, &other), LCX_E_INVALID);
    assert_int_equal(lcx_rope_set_length(rope, -5), LCX_E_INVALID);
    lcx_expect_bytes_equal(k, k0, sizeof k, "k after refused rerotate/shift");
    lcx_rope_destroy(other);
    lcx_rope_destroy(rope);
    lcx_rope_destroy(NULL);
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_frequencies),
        cmocka_unit_test(test_golden_rotations),
        cmocka_unit_test(test_golden_constants),
        cmocka_unit_test(test_oracle_variants),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_views_dtypes_threads),
        cmocka_unit_test(test_rerotate_shift_length),
        cmocka_unit_test(test_kernels_vs_scalar),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_apply),
    };
    const int rc = lcx_test_run("rope", argc, argv, tests, sizeof tests / sizeof *tests);
    lcx_json_free(golden);
    return rc;
}
