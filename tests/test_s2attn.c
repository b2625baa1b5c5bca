/* S2-Attn on every ISA: golden LongLoRA outputs (configs A roll, C ragged),
 * a literal double-precision re-enactment of LongLoRA's roll / segment code
 * for the rest (batches, GQA, 16-bit inputs, odd head counts, odd groups),
 * relations between the modes, threads and bad input. Tolerance as for
 * blocked attention: 2e-4 * max|v| (f32 inputs), plus 16-bit output ulps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "util/json.h"
#include "ref/convert_ref.h"

/* literal reference on dense double arrays x[n][h][d] (n < N) */
static void s2_reference(const double *q, const double *k, const double *v, int64_t N, int64_t H, int64_t Hkv,
                         int64_t D, int64_t g, lcx_s2_mode mode, int64_t h0, double scale, double *out)
{
    const int64_t G = H / Hkv, half = g / 2;
    const int64_t fwd = -((g + 1) / 2), back = g / 2; /* Python: -g // 2, g // 2 */
    double *qq = malloc(sizeof(double) * N * D), *kk = malloc(sizeof(double) * N * D),
           *vv = malloc(sizeof(double) * N * D), *oo = malloc(sizeof(double) * N * D), *w = malloc(sizeof(double) * N);
    for (int64_t h = 0; h < H; h++) {
        const int shifted = h >= h0, roll = shifted && mode == LCX_S2_ROLL;
        for (int64_t n = 0; n < N; n++) {
            /* torch.roll(x, fwd): x'[n] = x[(n - fwd) mod N] */
            const int64_t src = roll ? ((n - fwd) % N + N) % N : n;
            for (int64_t c = 0; c < D; c++) {
                qq[n * D + c] = q[(src * H + h) * D + c];
                kk[n * D + c] = k[(src * Hkv + h / G) * D + c];
                vv[n * D + c] = v[(src * Hkv + h / G) * D + c];
            }
        }
        /* segments in (rolled) order */
        for (int64_t n = 0; n < N; n++) {
            int64_t s0;
            if (!shifted || roll)
                s0 = n / g * g;
            else
                s0 = n < half ? 0 : half + (n - half) / g * g;
            double m = -INFINITY, l = 0;
            for (int64_t j = s0; j <= n; j++) {
                double s = 0;
                for (int64_t c = 0; c < D; c++)
                    s += qq[n * D + c] * kk[j * D + c];
                w[j] = s * scale;
                m = w[j] > m ? w[j] : m;
            }
            for (int64_t c = 0; c < D; c++)
                oo[n * D + c] = 0;
            for (int64_t j = s0; j <= n; j++) {
                const double e = exp(w[j] - m);
                l += e;
                for (int64_t c = 0; c < D; c++)
                    oo[n * D + c] += e * vv[j * D + c];
            }
            for (int64_t c = 0; c < D; c++)
                oo[n * D + c] /= l;
        }
        for (int64_t n = 0; n < N; n++) {
            const int64_t dst = roll ? ((n + back) % N + N) % N : n; /* roll back */
            for (int64_t c = 0; c < D; c++)
                out[(dst * H + h) * D + c] = oo[n * D + c];
        }
    }
    free(qq);
    free(kk);
    free(vv);
    free(oo);
    free(w);
}

typedef struct s2case {
    int64_t B, N, H, Hkv, D, g;
    lcx_s2_mode mode;
    int32_t h0, exact;
    lcx_dtype dt;
} s2case;

static void fill(lcx_rng *rng, lcx_dtype dt, void *buf, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = lcx_rng_uniform(rng, -1.5, 1.5);
        if (dt == LCX_F32) {
            ((float *)buf)[i] = (float)v;
            v = (float)v;
        } else {
            const uint16_t h = lcx_ref_encode16(dt, lcx_ref_round(dt, v));
            ((uint16_t *)buf)[i] = h;
            v = lcx_ref_decode16(dt, h);
        }
        x[i] = v;
    }
}

static void run_s2(const s2case *c, lcx_rng *rng, const char *what)
{
    const size_t es = lcx_dtype_size(c->dt);
    const size_t nq = (size_t)(c->B * c->N * c->H * c->D), nk = (size_t)(c->B * c->N * c->Hkv * c->D);
    void *q = malloc(nq * es), *k = malloc(nk * es), *v = malloc(nk * es);
    float *o = malloc(nq * sizeof(float)), *o2 = malloc(nq * sizeof(float));
    double *xq = malloc(sizeof(double) * nq), *xk = malloc(sizeof(double) * nk), *xv = malloc(sizeof(double) * nk);
    double *ref = malloc(sizeof(double) * nq / c->B);
    fill(rng, c->dt, q, xq, nq);
    fill(rng, c->dt, k, xk, nk);
    fill(rng, c->dt, v, xv, nk);
    const int64_t sq[4] = {c->B, c->N, c->H, c->D}, sk[4] = {c->B, c->N, c->Hkv, c->D};
    lcx_tensor tq, tk, tv, to;
    lcx_tensor_init(&tq, q, c->dt, 4, sq);
    lcx_tensor_init(&tk, k, c->dt, 4, sk);
    lcx_tensor_init(&tv, v, c->dt, 4, sk);
    lcx_tensor_init(&to, o, LCX_F32, 4, sq);
    lcx_s2_params p;
    lcx_s2_params_default(&p);
    p.group_size = c->g;
    p.mode = c->mode;
    p.shifted_head_start = c->h0;
    p.exact_odd_group = c->exact;
    const int32_t threads[3] = {1, 3, 0}; /* 3: an uneven split on any machine */
    for (int ti = 0; ti < 3; ti++) {
        lcx_context *ctx = lcx_test_context(threads[ti]);
        if (lcx_attention_s2_forward(ctx, &p, &tq, &tk, &tv, &to, NULL) != LCX_OK)
            lcx_fail_msg("%s: %s", what, lcx_last_error());
        lcx_context_destroy(ctx);
        if (ti == 0)
            memcpy(o2, o, nq * sizeof(float));
        else
            lcx_expect_bytes_equal(o, o2, nq * sizeof(float), "S2 thread-count independence");
    }
    const int64_t h0 = c->h0 < 0 ? c->H / 2 : c->h0;
    for (int64_t b = 0; b < c->B; b++) {
        const size_t oq = (size_t)(b * c->N * c->H * c->D), ok = (size_t)(b * c->N * c->Hkv * c->D);
        s2_reference(xq + oq, xk + ok, xv + ok, c->N, c->H, c->Hkv, c->D, c->g, c->mode, h0,
                     1.0 / sqrt((double)c->D), ref);
        for (size_t i = 0; i < nq / c->B; i++)
            if (!(fabs(o[oq + i] - ref[i]) <= 2e-4 * 1.5))
                lcx_fail_msg("%s: batch %lld element %zu (token %zu head %zu): %.7g, want %.7g", what, (long long)b, i,
                             i / (size_t)(c->H * c->D), (i / (size_t)c->D) % (size_t)c->H, (double)o[oq + i], ref[i]);
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(o2);
    free(xq);
    free(xk);
    free(xv);
    free(ref);
}

static void test_s2_oracle(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 61);
    const s2case cases[] = {
        {1, 64, 4, 4, 16, 16, LCX_S2_ROLL, -1, 0, LCX_F32},
        {2, 64, 8, 2, 32, 16, LCX_S2_ROLL, -1, 0, LCX_F32},      /* batches, GQA */
        {1, 96, 6, 3, 16, 24, LCX_S2_SEGMENTS, -1, 0, LCX_BF16}, /* bf16 */
        {1, 100, 4, 1, 16, 32, LCX_S2_RAGGED, -1, 0, LCX_F16},   /* MQA, ragged, f16 */
        {1, 80, 5, 5, 8, 20, LCX_S2_ROLL, -1, 0, LCX_F32},       /* odd head count: heads 2..4 shifted */
        {1, 60, 4, 2, 16, 15, LCX_S2_ROLL, -1, 1, LCX_F32},      /* odd g: LongLoRA's off-by-one */
        {1, 60, 4, 2, 16, 15, LCX_S2_SEGMENTS, -1, 1, LCX_F32},
        {1, 200, 4, 2, 64, 50, LCX_S2_ROLL, 1, 0, LCX_F32},      /* long groups: tiles of 64 keys */
        {1, 130, 2, 1, 16, 128, LCX_S2_RAGGED, -1, 0, LCX_F32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[64];
        snprintf(what, sizeof what, "S2 case %zu", i);
        run_s2(&cases[i], &rng, what);
    }
}

/* golden LongLoRA outputs: A (roll, g 16) and C (SFT ragged, N 100, g 32) */
static void test_s2_golden(void **state)
{
    (void)state;
    lcx_json *gj = lcx_golden_load("s2attn.json");
    if (!gj)
        skip();
    const lcx_json *cfgs = lcx_json_get(gj, "configs");
    lcx_context *ctx = lcx_test_context(0);
    for (size_t ci = 0; ci < cfgs->n; ci++) {
        const lcx_json *c = &cfgs->items[ci];
        const int64_t S = (int64_t)lcx_json_num(c, "seq_len"), H = (int64_t)lcx_json_num(c, "num_heads"),
                      D = (int64_t)lcx_json_num(c, "head_dim"), g = (int64_t)lcx_json_num(c, "group_size");
        const int roll = !strcmp(lcx_json_get(c, "semantics")->str, "roll");
        const size_t n = (size_t)(S * H * D);
        double *buf = malloc(sizeof(double) * n);
        float *x[4];
        const char *names[3] = {"q", "k", "v"};
        for (int t = 0; t < 4; t++)
            x[t] = malloc(n * 4);
        for (int t = 0; t < 3; t++) {
            lcx_json_nums(lcx_json_get(c, names[t]), buf, n);
            for (size_t i = 0; i < n; i++)
                x[t][i] = (float)buf[i];
        }
        const int64_t sh[4] = {1, S, H, D};
        lcx_tensor tq, tk, tv, to;
        lcx_tensor_init(&tq, x[0], LCX_F32, 4, sh);
        lcx_tensor_init(&tk, x[1], LCX_F32, 4, sh);
        lcx_tensor_init(&tv, x[2], LCX_F32, 4, sh);
        lcx_tensor_init(&to, x[3], LCX_F32, 4, sh);
        lcx_s2_params p;
        lcx_s2_params_default(&p);
        p.group_size = g;
        p.mode = roll ? LCX_S2_ROLL : S % g ? LCX_S2_RAGGED : LCX_S2_SEGMENTS;
        p.scale = lcx_json_num(c, "scale");
        if (lcx_attention_s2_forward(ctx, &p, &tq, &tk, &tv, &to, NULL) != LCX_OK)
            lcx_fail_msg("golden %s: %s", lcx_json_get(c, "name")->str, lcx_last_error());
        lcx_json_nums(lcx_json_get(c, "out"), buf, n);
        for (size_t i = 0; i < n; i++)
            if (!(fabs(x[3][i] - buf[i]) <= 1e-5))
                lcx_fail_msg("golden %s out[%zu]: %.8g, want %.8g", lcx_json_get(c, "name")->str, i, (double)x[3][i],
                             buf[i]);
        /* the segment lists of both head kinds */
        const char *keys[2] = {"segments_unshifted_heads",
                               roll ? "segments_shifted_heads_in_rolled_coords" : "segments_shifted_heads"};
        for (int sh2 = 0; sh2 < 2; sh2++) {
            if (roll && sh2)
                continue; /* ours are in original order (wrap group as start > end); checked below */
            int64_t seg[64], nseg;
            assert_int_equal(lcx_s2_segments(p.mode, S, g, sh2, seg, 32, &nseg), LCX_OK);
            const lcx_json *want = lcx_json_get(c, keys[sh2]);
            assert_int_equal(nseg, (int64_t)want->n);
            for (int64_t s = 0; s < nseg; s++) {
                double se[2];
                lcx_json_nums(&want->items[s], se, 2);
                assert_int_equal(seg[2 * s], (int64_t)se[0]);
                assert_int_equal(seg[2 * s + 1], (int64_t)se[1]);
            }
        }
        if (roll) {
            int64_t seg[64], nseg;
            assert_int_equal(lcx_s2_segments(LCX_S2_ROLL, S, g, 1, seg, 32, &nseg), LCX_OK);
            assert_int_equal(nseg, S / g);
            assert_int_equal(seg[2 * (nseg - 1)], S - g / 2); /* wrap group: tail then head */
            assert_int_equal(seg[2 * (nseg - 1) + 1], g / 2);
        }
        for (int t = 0; t < 4; t++)
            free(x[t]);
        free(buf);
    }
    lcx_context_destroy(ctx);
    lcx_json_free(gj);
}

/* largest |x - y| over n floats; NaN counts as infinitely different */
static double max_abs_diff(const float *x, const float *y, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= m))
            m = d != d ? INFINITY : d;
    }
    return m;
}

/* g = seq with no shifted head is full causal attention; ROLL and SEGMENTS
 * differ only for shifted heads at the first g/2 tokens */
static void test_s2_relations(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 62);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t N = 128, H = 4, Hkv = 2, D = 32, g = 32;
    float *q = malloc(N * H * D * 4), *k = malloc(N * Hkv * D * 4), *v = malloc(N * Hkv * D * 4);
    float *a = malloc(N * H * D * 4), *b = malloc(N * H * D * 4);
    for (int64_t i = 0; i < N * H * D; i++)
        q[i] = (float)lcx_rng_uniform(&rng, -1, 1);
    for (int64_t i = 0; i < N * Hkv * D; i++) {
        k[i] = (float)lcx_rng_uniform(&rng, -1, 1);
        v[i] = (float)lcx_rng_uniform(&rng, -1, 1);
    }
    const int64_t sq[4] = {1, N, H, D}, sk[4] = {1, N, Hkv, D};
    lcx_tensor tq, tk, tv, ta, tb;
    lcx_tensor_init(&tq, q, LCX_F32, 4, sq);
    lcx_tensor_init(&tk, k, LCX_F32, 4, sk);
    lcx_tensor_init(&tv, v, LCX_F32, 4, sk);
    lcx_tensor_init(&ta, a, LCX_F32, 4, sq);
    lcx_tensor_init(&tb, b, LCX_F32, 4, sq);
    lcx_s2_params p;
    lcx_s2_params_default(&p);
    p.group_size = N;
    p.shifted_head_start = (int32_t)H; /* no shifted head */
    assert_int_equal(lcx_attention_s2_forward(ctx, &p, &tq, &tk, &tv, &ta, NULL), LCX_OK);
    lcx_attention_params ap;
    lcx_attention_params_default(&ap);
    ap.causal = 1;
    assert_int_equal(lcx_attention_forward(ctx, &ap, &tq, &tk, &tv, &tb, NULL), LCX_OK);
    for (int64_t i = 0; i < N * H * D; i++)
        if (!(fabsf(a[i] - b[i]) <= 1e-6f))
            lcx_fail_msg("g = seq, no shift: %g vs causal %g at %lld", (double)a[i], (double)b[i], (long long)i);
    p.group_size = g;
    p.shifted_head_start = -1;
    p.mode = LCX_S2_ROLL;
    assert_int_equal(lcx_attention_s2_forward(ctx, &p, &tq, &tk, &tv, &ta, NULL), LCX_OK);
    p.mode = LCX_S2_SEGMENTS;
    assert_int_equal(lcx_attention_s2_forward(ctx, &p, &tq, &tk, &tv, &tb, NULL), LCX_OK);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++) {
            const int may_differ = h >= H / 2 && n < g / 2;
            const double diff = max_abs_diff(a + (n * H + h) * D, b + (n * H + h) * D, D);
            if (!may_differ && !(diff <= 1e-6))
                lcx_fail_msg("ROLL and SEGMENTS differ at token %lld head %lld", (long long)n, (long long)h);
            if (may_differ && n > 0 && !(diff > 1e-6))
                lcx_fail_msg("ROLL and SEGMENTS agree at token %lld head %lld (wrap group expected)", (long long)n,
                             (long long)h);
        }
    free(q);
    free(k);
    free(v);
    free(a);
    free(b);
    lcx_context_destroy(ctx);
}

static void test_s2_bad_input(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    float q[64 * 4 * 8], o[64 * 4 * 8];
    for (int i = 0; i < 64 * 4 * 8; i++)
        q[i] = o[i] = 1;
    const int64_t sh[4] = {1, 64, 4, 8}, sh60[4] = {1, 60, 4, 8};
    lcx_tensor tq, to, t60q, t60o;
    lcx_tensor_init(&tq, q, LCX_F32, 4, sh);
    lcx_tensor_init(&to, o, LCX_F32, 4, sh);
    lcx_tensor_init(&t60q, q, LCX_F32, 4, sh60);
    lcx_tensor_init(&t60o, o, LCX_F32, 4, sh60);
    for (int cse = 0;; cse++) {
        lcx_s2_params p;
        lcx_s2_params_default(&p);
        p.group_size = 16;
        const lcx_tensor *Q = &tq, *O = &to;
        const char *msg;
        switch (cse) {
        case 0: p.group_size = -1; msg = "group_size"; break;
        case 1: p.group_size = 65; msg = "group_size"; break;
        case 2: p.shifted_head_start = 5; msg = "shifted_head_start"; break;
        case 3: p.mode = (lcx_s2_mode)7; msg = "mode"; break;
        case 4: p.group_size = 15; msg = "odd"; break;
        case 5: p.group_size = 16; p.mode = LCX_S2_ROLL; Q = &t60q; O = &t60o; msg = "multiple"; break;
        case 6: p.group_size = 16; p.mode = LCX_S2_SEGMENTS; Q = &t60q; O = &t60o; msg = "multiple"; break;
        case 7: p.shift = 0; msg = "shift"; break;
        case 8: p.struct_size = 1; msg = "struct_size"; break;
        case 9: p.group_size = 0; msg = "group_size"; break;
        default: goto done;
        }
        const lcx_status st = lcx_attention_s2_forward(ctx, &p, Q, Q, Q, O, NULL);
        if (st != LCX_E_INVALID || !strstr(lcx_last_error(), msg))
            lcx_fail_msg("bad S2 input %d: %s '%s' (want '%s')", cse, lcx_status_string(st), lcx_last_error(), msg);
        for (int i = 0; i < 64 * 4 * 8; i++)
            assert_true(o[i] == 1);
    }
done:;
    /* RAGGED accepts a sequence that is not a multiple of g */
    lcx_s2_params p;
    lcx_s2_params_default(&p);
    p.group_size = 16;
    p.mode = LCX_S2_RAGGED;
    float k60[60 * 4 * 8];
    for (int i = 0; i < 60 * 4 * 8; i++)
        k60[i] = 0.5f;
    lcx_tensor tk;
    lcx_tensor_init(&tk, k60, LCX_F32, 4, sh60);
    assert_int_equal(lcx_attention_s2_forward(ctx, &p, &t60q, &tk, &tk, &t60o, NULL), LCX_OK);
    assert_int_equal(lcx_s2_default_group_size(8192), 2048);
    int64_t seg[8], ns;
    assert_int_equal(lcx_s2_segments(LCX_S2_SEGMENTS, 64, 16, 1, seg, 3, &ns), LCX_E_INVALID); /* 5 segments */
    /* odd g, ROLL: the roll is by -ceil(g/2), so the shifted groups of 15
     * tokens in threes are {2,3,4} .. {11,12,13} and {14, 0, 1}; g = 1
     * leaves token 0 alone at the end */
    int64_t odd[16], nodd;
    const int64_t want15[10] = {2, 5, 5, 8, 8, 11, 11, 14, 14, 2};
    assert_int_equal(lcx_s2_segments(LCX_S2_ROLL, 15, 3, 1, odd, 8, &nodd), LCX_OK);
    assert_int_equal(nodd, 5);
    for (int i = 0; i < 10; i++)
        assert_int_equal(odd[i], want15[i]);
    const int64_t want4[8] = {1, 2, 2, 3, 3, 4, 0, 1};
    assert_int_equal(lcx_s2_segments(LCX_S2_ROLL, 4, 1, 1, odd, 8, &nodd), LCX_OK);
    assert_int_equal(nodd, 4);
    for (int i = 0; i < 8; i++)
        assert_int_equal(odd[i], want4[i]);
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s2_oracle),
        cmocka_unit_test(test_s2_golden),
        cmocka_unit_test(test_s2_relations),
        cmocka_unit_test(test_s2_bad_input),
    };
    return lcx_test_run("s2attn", argc, argv, tests, sizeof tests / sizeof *tests);
}
