/* Blocked attention on every ISA against a double-precision oracle.
 * Tolerance (f32 accumulation, SLEEF expf within 1 ulp): the output is a
 * convex combination of value rows, and each score carries an f32 dot-product
 * error of about d * 2^-24 * sum|q_t k_t| * scale, which moves its weight by
 * the same relative amount; we allow |out - ref| <= 2e-4 * max|v| (plus half
 * an ulp of 16-bit outputs) and |lse - ref| <= 2e-4 (1 + |ref|). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "util/json.h"
#include "ref/convert_ref.h"
#include "ref/attn_ref.h"

typedef struct tens {
    lcx_tensor t;
    double *x; /* exact values, dense [b][s][h][d] */
} tens;

static void tens_make(tens *T, lcx_dtype dt, int64_t b, int64_t s, int64_t h, int64_t d, int pad, lcx_rng *rng,
                      double amp)
{
    memset(T, 0, sizeof *T);
    lcx_tensor *t = &T->t;
    t->dtype = dt;
    t->ndim = 4;
    const int64_t sh[4] = {b, s, h, d};
    int64_t span = 1;
    for (int k = 3; k >= 0; k--) {
        t->shape[k] = sh[k];
        t->stride[k] = k == 3 ? 1 : span + (pad && k == 2 ? 3 : 0) + (pad && k == 1 ? 5 : 0);
        span = t->stride[k] * sh[k];
    }
    const size_t es = lcx_dtype_size(dt);
    t->data = calloc((size_t)span + 1, es);
    T->x = malloc(sizeof(double) * (size_t)(b * s * h * d) + 8);
    int64_t f = 0;
    for (int64_t i0 = 0; i0 < b; i0++)
        for (int64_t i1 = 0; i1 < s; i1++)
            for (int64_t i2 = 0; i2 < h; i2++)
                for (int64_t i3 = 0; i3 < d; i3++, f++) {
                    const int64_t o = i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] + i3;
                    double v = lcx_rng_uniform(rng, -amp, amp);
                    if (dt == LCX_F32) {
                        ((float *)t->data)[o] = (float)v;
                        v = (float)v;
                    } else {
                        const uint16_t hh = lcx_ref_encode16(dt, lcx_ref_round(dt, v));
                        ((uint16_t *)t->data)[o] = hh;
                        v = lcx_ref_decode16(dt, hh);
                    }
                    T->x[f] = v;
                }
}

static double tens_get(const tens *T, int64_t b, int64_t s, int64_t h, int64_t d)
{
    const lcx_tensor *t = &T->t;
    const int64_t o = b * t->stride[0] + s * t->stride[1] + h * t->stride[2] + d;
    if (t->dtype == LCX_F32)
        return ((const float *)t->data)[o];
    return lcx_ref_decode16(t->dtype, ((const uint16_t *)t->data)[o]);
}

static void tens_free(tens *T)
{
    free(T->t.data);
    free(T->x);
}


typedef struct acase {
    int64_t B, Sq, Sk, H, Hkv, D, Dv;
    int causal, window, pad;
    double softcap, scale;
    lcx_dtype dq, dk, dv, dout;
    const int64_t *cuq, *cuk;
    int32_t nseq;
} acase;

static void run_case(const acase *c, lcx_rng *rng, const char *what)
{
    tens Q, K, V, O;
    tens_make(&Q, c->dq, c->B, c->Sq, c->H, c->D, c->pad, rng, 1.5);
    tens_make(&K, c->dk, c->B, c->Sk, c->Hkv, c->D, c->pad, rng, 1.5);
    tens_make(&V, c->dv, c->B, c->Sk, c->Hkv, c->Dv, c->pad, rng, 1.0);
    tens_make(&O, c->dout, c->B, c->Sq, c->H, c->Dv, c->pad, rng, 1.0);
    lcx_attention_params p;
    lcx_attention_params_default(&p);
    p.causal = c->causal;
    p.window_left = c->window;
    p.softcap = c->softcap;
    p.scale = c->scale;
    p.cu_seqlens_q = c->cuq;
    p.cu_seqlens_k = c->cuk;
    p.n_seqs = c->nseq;
    const size_t nl = (size_t)(c->B * c->H * c->Sq);
    float *lse = malloc(sizeof(float) * (nl + 1));
    float *lse_ref_out = NULL;
    unsigned char *ref_bytes = NULL;
    const size_t ob = (size_t)(O.t.stride[0] * O.t.shape[0]) * lcx_dtype_size(c->dout);
    const int32_t threads[3] = {1, 3, 0};
    for (int ti = 0; ti < 3; ti++) {
        lcx_context *ctx = lcx_test_context(threads[ti]);
        lse[nl] = 12345.0f;
        memset(O.t.data, 0xCD, ob);
        if (lcx_attention_forward(ctx, &p, &Q.t, &K.t, &V.t, &O.t, lse) != LCX_OK)
            lcx_fail_msg("%s: %s", what, lcx_last_error());
        assert_true(lse[nl] == 12345.0f);
        lcx_context_destroy(ctx);
        if (ti == 0) {
            ref_bytes = malloc(ob);
            memcpy(ref_bytes, O.t.data, ob);
            lse_ref_out = malloc(sizeof(float) * nl);
            memcpy(lse_ref_out, lse, sizeof(float) * nl);
        } else {
            lcx_expect_bytes_equal(O.t.data, ref_bytes, ob, "attention thread-count independence");
            lcx_expect_bytes_equal(lse, lse_ref_out, sizeof(float) * nl, "lse thread-count independence");
        }
    }
    double vmax = 0;
    for (int64_t f = 0; f < c->B * c->Sk * c->Hkv * c->Dv; f++)
        vmax = fmax(vmax, fabs(V.x[f]));
    const double half_ulp = c->dout == LCX_BF16 ? 0x1p-8 : c->dout == LCX_F16 ? 0x1p-11 : 0;
    double *ref = malloc(sizeof(double) * (size_t)c->Dv);
    const int nseq = c->cuq ? c->nseq : (int)c->B;
    for (int s = 0; s < nseq; s++) {
        const int64_t b = c->cuq ? 0 : s, q0 = c->cuq ? c->cuq[s] : 0, lq = c->cuq ? c->cuq[s + 1] - q0 : c->Sq;
        const int64_t k0 = c->cuk ? c->cuk[s] : 0, lk = c->cuk ? c->cuk[s + 1] - k0 : c->Sk;
        for (int64_t i = 0; i < lq; i++)
            for (int64_t h = 0; h < c->H; h++) {
                double rl;
                lcx_ref_attention_row(&Q.t, Q.x, &K.t, K.x, &V.t, V.x, &p, b, q0 + i, i, lq, k0, lk, h, ref, &rl);
                for (int64_t d = 0; d < c->Dv; d++) {
                    const double got = tens_get(&O, b, q0 + i, h, d);
                    if (!(fabs(got - ref[d]) <= 2e-4 * vmax + half_ulp * fabs(ref[d])))
                        lcx_fail_msg("%s: b %lld q %lld h %lld d %lld: %.7g, want %.7g", what, (long long)b,
                                     (long long)(q0 + i), (long long)h, (long long)d, got, ref[d]);
                }
                const float gl = lse[(b * c->H + h) * c->Sq + q0 + i];
                if (isinf(rl) ? gl != (float)rl : !(fabs(gl - rl) <= 2e-4 * (1 + fabs(rl))))
                    lcx_fail_msg("%s: lse b %lld q %lld h %lld: %.7g, want %.7g", what, (long long)b,
                                 (long long)(q0 + i), (long long)h, (double)gl, rl);
            }
    }
    free(ref);
    free(ref_bytes);
    free(lse_ref_out);
    free(lse);
    tens_free(&Q);
    tens_free(&K);
    tens_free(&V);
    tens_free(&O);
}

static acase base_case(void)
{
    acase c = {1, 17, 17, 4, 2, 64, 64, 0, -1, 0, 0, 0, LCX_F32, LCX_F32, LCX_F32, LCX_F32, NULL, NULL, 0};
    return c;
}

static void test_attention_shapes(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 51);
    const int64_t dims[5] = {64, 80, 96, 128, 256};
    for (int k = 0; k < 5; k++) {
        acase c = base_case();
        c.D = c.Dv = dims[k];
        c.Sq = c.Sk = 33;
        c.causal = k & 1;
        run_case(&c, &rng, "head dims");
    }
    /* tile size +-1, seq 1, seq_q > seq_k with causal, dv != d */
    const int64_t seqs[6][2] = {{63, 63}, {64, 64}, {65, 65}, {1, 1}, {1, 200}, {40, 9}};
    for (int k = 0; k < 6; k++)
        for (int causal = 0; causal < 2; causal++) {
            acase c = base_case();
            c.Sq = seqs[k][0];
            c.Sk = seqs[k][1];
            c.causal = causal;
            c.Dv = 48;
            run_case(&c, &rng, "seq lengths");
        }
    /* GQA and MQA, odd head counts, batches, custom scale, softcap, windows */
    const int64_t hh[4][2] = {{6, 3}, {8, 1}, {5, 5}, {12, 4}};
    for (int k = 0; k < 4; k++) {
        acase c = base_case();
        c.B = 2;
        c.H = hh[k][0];
        c.Hkv = hh[k][1];
        c.Sq = 37;
        c.Sk = 70;
        c.causal = 1;
        c.scale = k == 1 ? 0.3 : 0;
        c.softcap = k == 2 ? 5.0 : 0;
        c.window = k == 3 ? 10 : -1;
        run_case(&c, &rng, "heads");
    }
    const int wins[4] = {0, 1, 63, 64};
    for (int k = 0; k < 4; k++) {
        acase c = base_case();
        c.Sq = c.Sk = 150;
        c.causal = 1;
        c.window = wins[k];
        run_case(&c, &rng, "window edges");
    }
}

static void test_attention_dtypes_views_varlen(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 52);
    const lcx_dtype combos[4][4] = {{LCX_F32, LCX_BF16, LCX_BF16, LCX_F32},
                                    {LCX_BF16, LCX_BF16, LCX_BF16, LCX_BF16},
                                    {LCX_F16, LCX_F16, LCX_F16, LCX_F16},
                                    {LCX_F32, LCX_F16, LCX_BF16, LCX_BF16}};
    for (int k = 0; k < 4; k++) {
        acase c = base_case();
        c.dq = combos[k][0];
        c.dk = combos[k][1];
        c.dv = combos[k][2];
        c.dout = combos[k][3];
        c.pad = 1;
        c.B = 2;
        c.Sq = 19;
        c.Sk = 80;
        c.causal = k & 1;
        run_case(&c, &rng, "dtypes and strided views");
    }
    /* varlen: sequences of different lengths, one empty, causal and not */
    const int64_t cuq[5] = {0, 5, 5, 40, 41}, cuk[5] = {0, 9, 20, 55, 130};
    for (int causal = 0; causal < 2; causal++) {
        acase c = base_case();
        c.Sq = 41;
        c.Sk = 130;
        c.cuq = cuq;
        c.cuk = cuk;
        c.nseq = 4;
        c.causal = causal;
        run_case(&c, &rng, "varlen");
    }
    /* decode: one and a few queries over a long cache (split into key chunks) */
    for (int k = 0; k < 2; k++) {
        acase c = base_case();
        c.Sq = k ? 3 : 1;
        c.Sk = 5000 + k * 77;
        c.H = 8;
        c.Hkv = 2;
        c.causal = k;
        c.dk = c.dv = LCX_BF16;
        run_case(&c, &rng, "decode split-KV");
    }
    /* the direct (decode) kernels' paths: bf16 parity split (head dims that
     * are multiples of 32; a 64-column output block plus a masked tail at
     * 96), widening paths (f16, f32, dims 80), 1-4 rows per kv head, chunks
     * split unevenly over 3 threads, a window, padded views, two sequences,
     * K and V of different dtypes; run_case checks 1, 3 and all threads */
    const struct {
        int64_t B, Sq, Sk, H, Hkv, D;
        lcx_dtype dk, dv;
        int window, pad;
    } dec[9] = {
        {1, 1, 3000, 8, 2, 128, LCX_BF16, LCX_BF16, -1, 0}, {2, 1, 1100, 6, 2, 96, LCX_BF16, LCX_BF16, -1, 1},
        {1, 2, 2100, 8, 2, 64, LCX_BF16, LCX_BF16, -1, 0},  {1, 1, 1500, 4, 2, 80, LCX_F16, LCX_F16, -1, 0},
        {1, 1, 1300, 8, 2, 128, LCX_F32, LCX_F32, -1, 1},   {1, 1, 2000, 8, 8, 128, LCX_BF16, LCX_F16, -1, 0},
        {1, 1, 1800, 4, 1, 128, LCX_BF16, LCX_BF16, 700, 0}, {1, 3, 1029, 8, 4, 256, LCX_BF16, LCX_BF16, -1, 0},
        {1, 1, 577, 12, 4, 64, LCX_F16, LCX_BF16, -1, 1},
    };
    for (int k = 0; k < 9; k++) {
        acase c = base_case();
        c.B = dec[k].B;
        c.Sq = dec[k].Sq;
        c.Sk = dec[k].Sk;
        c.H = dec[k].H;
        c.Hkv = dec[k].Hkv;
        c.D = c.Dv = dec[k].D;
        c.dk = dec[k].dk;
        c.dv = dec[k].dv;
        c.causal = 1;
        c.window = dec[k].window;
        c.pad = dec[k].pad;
        run_case(&c, &rng, "decode kernels");
    }
}

/* merge of two halves of the keys equals attention over all of them */
static void test_attention_merge(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 53);
    lcx_context *ctx = lcx_test_context(0);
    const int64_t B = 2, Sq = 7, Sk = 90, H = 4, Hkv = 2, D = 32;
    tens Q, K, V;
    tens_make(&Q, LCX_F32, B, Sq, H, D, 0, &rng, 1.5);
    tens_make(&K, LCX_F32, B, Sk, Hkv, D, 0, &rng, 1.5);
    tens_make(&V, LCX_F32, B, Sk, Hkv, D, 0, &rng, 1.0);
    const size_t on = (size_t)(B * Sq * H * D), ln = (size_t)(B * H * Sq);
    float *oa = malloc(on * 4), *ob = malloc(on * 4), *ow = malloc(on * 4), *om = malloc(on * 4);
    float *la = malloc(ln * 4), *lb = malloc(ln * 4), *lw = malloc(ln * 4), *lm = malloc(ln * 4);
    const int64_t so[4] = {B, Sq, H, D};
    lcx_tensor ta, tb, tw, tm;
    lcx_tensor_init(&ta, oa, LCX_F32, 4, so);
    lcx_tensor_init(&tb, ob, LCX_F32, 4, so);
    lcx_tensor_init(&tw, ow, LCX_F32, 4, so);
    lcx_tensor_init(&tm, om, LCX_F32, 4, so);
    lcx_tensor k1 = K.t, k2 = K.t, v1 = V.t, v2 = V.t;
    k1.shape[1] = v1.shape[1] = 40;
    k2.shape[1] = v2.shape[1] = Sk - 40;
    k2.data = (float *)K.t.data + 40 * K.t.stride[1];
    v2.data = (float *)V.t.data + 40 * V.t.stride[1];
    assert_int_equal(lcx_attention_forward(ctx, NULL, &Q.t, &k1, &v1, &ta, la), LCX_OK);
    assert_int_equal(lcx_attention_forward(ctx, NULL, &Q.t, &k2, &v2, &tb, lb), LCX_OK);
    assert_int_equal(lcx_attention_forward(ctx, NULL, &Q.t, &K.t, &V.t, &tw, lw), LCX_OK);
    assert_int_equal(lcx_attention_merge(ctx, &ta, la, &tb, lb, &tm, lm), LCX_OK);
    for (size_t i = 0; i < on; i++)
        if (!(fabsf(om[i] - ow[i]) <= 2e-5f))
            lcx_fail_msg("merge %zu: %g vs whole %g", i, (double)om[i], (double)ow[i]);
    for (size_t i = 0; i < ln; i++)
        if (!(fabsf(lm[i] - lw[i]) <= 2e-5f * (1 + fabsf(lw[i]))))
            lcx_fail_msg("merge lse %zu: %g vs %g", i, (double)lm[i], (double)lw[i]);
    /* in place into out_a; both -inf gives 0 / -inf */
    for (size_t i = 0; i < ln; i++)
        la[i] = lb[i] = -INFINITY;
    assert_int_equal(lcx_attention_merge(ctx, &ta, la, &tb, lb, &ta, la), LCX_OK);
    for (size_t i = 0; i < on; i++)
        assert_true(oa[i] == 0.0f);
    assert_true(isinf(la[0]) && la[0] < 0);
    free(oa);
    free(ob);
    free(ow);
    free(om);
    free(la);
    free(lb);
    free(lw);
    free(lm);
    tens_free(&Q);
    tens_free(&K);
    tens_free(&V);
    lcx_context_destroy(ctx);
}

/* LongLoRA's inference path: full causal attention, golden s2attn.json */
static void test_attention_golden_full_causal(void **state)
{
    (void)state;
    lcx_json *g = lcx_golden_load("s2attn.json");
    if (!g)
        skip();
    const lcx_json *cfgs = lcx_json_get(g, "configs");
    lcx_context *ctx = lcx_test_context(0);
    for (size_t ci = 0; ci < cfgs->n; ci++) {
        const lcx_json *c = &cfgs->items[ci];
        const int64_t S = (int64_t)lcx_json_num(c, "seq_len"), H = (int64_t)lcx_json_num(c, "num_heads"),
                      D = (int64_t)lcx_json_num(c, "head_dim");
        const size_t n = (size_t)(S * H * D);
        double *buf = malloc(sizeof(double) * n);
        float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *o = malloc(n * 4);
        float *dst[3] = {q, k, v};
        const char *names[3] = {"q", "k", "v"};
        for (int t = 0; t < 3; t++) {
            lcx_json_nums(lcx_json_get(c, names[t]), buf, n);
            for (size_t i = 0; i < n; i++)
                dst[t][i] = (float)buf[i];
        }
        const int64_t sh[4] = {1, S, H, D};
        lcx_tensor tq, tk, tv, to;
        lcx_tensor_init(&tq, q, LCX_F32, 4, sh);
        lcx_tensor_init(&tk, k, LCX_F32, 4, sh);
        lcx_tensor_init(&tv, v, LCX_F32, 4, sh);
        lcx_tensor_init(&to, o, LCX_F32, 4, sh);
        lcx_attention_params p;
        lcx_attention_params_default(&p);
        p.causal = 1;
        p.scale = lcx_json_num(c, "scale");
        assert_int_equal(lcx_attention_forward(ctx, &p, &tq, &tk, &tv, &to, NULL), LCX_OK);
        lcx_json_nums(lcx_json_get(c, "full_causal_out"), buf, n);
        for (size_t i = 0; i < n; i++)
            if (!(fabs(o[i] - buf[i]) <= 1e-5))
                lcx_fail_msg("golden %s full_causal_out[%zu]: %.8g, want %.8g", lcx_json_get(c, "name")->str, i,
                             (double)o[i], buf[i]);
        free(buf);
        free(q);
        free(k);
        free(v);
        free(o);
    }
    lcx_context_destroy(ctx);
    lcx_json_free(g);
}

static void test_attention_bad_input(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    float q[2 * 4 * 8], k[2 * 2 * 8], v[2 * 2 * 8], o[2 * 4 * 8], lse[8];
    for (int i = 0; i < 64; i++)
        q[i] = o[i] = 1;
    for (int i = 0; i < 32; i++)
        k[i] = v[i] = 1;
    for (int i = 0; i < 8; i++)
        lse[i] = 7;
    float o0[64];
    memcpy(o0, o, sizeof o);
    const int64_t sq[4] = {1, 2, 4, 8}, sk[4] = {1, 2, 2, 8};
    lcx_tensor tq, tk, tv, to;
    lcx_attention_params p;
    const int64_t cu_bad[3] = {0, 3, 1}, cu_ok[3] = {0, 1, 2};
    for (int cse = 0;; cse++) {
        lcx_tensor_init(&tq, q, LCX_F32, 4, sq);
        lcx_tensor_init(&tk, k, LCX_F32, 4, sk);
        lcx_tensor_init(&tv, v, LCX_F32, 4, sk);
        lcx_tensor_init(&to, o, LCX_F32, 4, sq);
        lcx_attention_params_default(&p);
        const char *msg;
        lcx_context *cx = ctx;
        switch (cse) {
        case 0: cx = NULL; msg = "ctx"; break;
        case 1: tk.shape[2] = 3; tv.shape[2] = 3; msg = "divisible"; break;
        case 2: tk.shape[3] = 4; msg = "head dim"; break;
        case 3: p.window_left = 4; msg = "window_left"; break;
        case 4: p.scale = NAN; msg = "scale"; break;
        case 5: p.cu_seqlens_q = cu_bad; p.cu_seqlens_k = cu_ok; p.n_seqs = 2; msg = "decrease"; break;
        case 6: p.cu_seqlens_q = cu_ok; p.cu_seqlens_k = cu_ok; p.n_seqs = 1; msg = "end at"; break;
        case 7: p.cu_seqlens_q = cu_ok; p.n_seqs = 2; msg = "varlen"; break;
        case 8: to.shape[3] = 4; msg = "out is"; break;
        case 9: tv.shape[1] = 1; msg = "v is"; break;
        case 10: p.softcap = -1; msg = "softcap"; break;
        case 11: p.struct_size = 3; msg = "struct_size"; break;
        case 12: to.data = q; msg = "overlaps"; break;
        case 13: tq.ndim = 3; tq.shape[0] = 2; tq.shape[1] = 4; tq.shape[2] = 8; tq.stride[0] = 32;
            tq.stride[1] = 8; tq.stride[2] = 1; msg = "dims"; break;
        case 14: p.pv_16bit = 2; msg = "pv_16bit"; break;
        default: goto done;
        }
        const lcx_status st = lcx_attention_forward(cx, &p, &tq, &tk, &tv, &to, lse);
        if (st != LCX_E_INVALID || !strstr(lcx_last_error(), msg))
            lcx_fail_msg("bad input %d: %s '%s' (want '%s')", cse, lcx_status_string(st), lcx_last_error(), msg);
        lcx_expect_bytes_equal(o, o0, sizeof o, "out after a refused call");
        for (int i = 0; i < 8; i++)
            assert_true(lse[i] == 7);
        for (int i = 0; i < 64; i++)
            assert_true(q[i] == 1);
    }
done:
    lcx_context_destroy(ctx);
}

/* Non-finite values: an inf in V at a key a row cannot see never leaks into
 * it (causal future key), a NaN query row gives NaN for that row only; empty
 * shapes are no-ops; out-of-range scale/softcap and an lse overlapping an
 * input are refused. */
static void test_attention_special(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    for (int k = 0; k < 2; k++) {
        const int64_t S = k ? 40 : 4, H = 2, D = 16; /* 4 rows: direct path; 40: tiles */
        float *q = malloc(sizeof(float) * S * H * D), *kk = malloc(sizeof(float) * S * H * D);
        float *v = malloc(sizeof(float) * S * H * D), *o = malloc(sizeof(float) * S * H * D);
        float *lse = malloc(sizeof(float) * H * S);
        for (int64_t i = 0; i < S * H * D; i++) {
            q[i] = 0.01f * (float)(i % 7);
            kk[i] = 0.02f * (float)(i % 5);
            v[i] = 1.0f;
        }
        for (int64_t c = 0; c < D; c++) {
            v[((S - 1) * H + 0) * D + c] = INFINITY; /* last key, head 0 */
            q[((1) * H + 1) * D + c] = NAN;          /* query 1, head 1 */
        }
        const int64_t sh[4] = {1, S, H, D};
        lcx_tensor tq, tk, tv, to;
        lcx_tensor_init(&tq, q, LCX_F32, 4, sh);
        lcx_tensor_init(&tk, kk, LCX_F32, 4, sh);
        lcx_tensor_init(&tv, v, LCX_F32, 4, sh);
        lcx_tensor_init(&to, o, LCX_F32, 4, sh);
        lcx_attention_params p;
        lcx_attention_params_default(&p);
        p.causal = 1;
        assert_int_equal(lcx_attention_forward(ctx, &p, &tq, &tk, &tv, &to, lse), LCX_OK);
        for (int64_t i = 0; i < S - 1; i++)
            for (int64_t c = 0; c < D; c++)
                if (!(fabsf(o[(i * H + 0) * D + c] - 1.0f) <= 1e-6f))
                    lcx_fail_msg("S=%lld: inf at an invisible key leaked into query %lld: %g", (long long)S,
                                 (long long)i, (double)o[(i * H + 0) * D + c]);
        assert_true(isnan(o[(1 * H + 1) * D]) && isnan(lse[1 * S + 1]));
        assert_true(!isnan(o[(2 * H + 1) * D]) && !isnan(lse[1 * S + 2]));
        /* lse overlapping q; scale and softcap out of float range */
        assert_int_equal(lcx_attention_forward(ctx, &p, &tq, &tk, &tv, &to, q), LCX_E_INVALID);
        assert_non_null(strstr(lcx_last_error(), "lse overlaps"));
        p.scale = 1e39;
        assert_int_equal(lcx_attention_forward(ctx, &p, &tq, &tk, &tv, &to, lse), LCX_E_INVALID);
        p.scale = 0;
        p.softcap = 1e-50;
        assert_int_equal(lcx_attention_forward(ctx, &p, &tq, &tk, &tv, &to, lse), LCX_E_INVALID);
        free(q);
        free(kk);
        free(v);
        free(o);
        free(lse);
    }
    /* empty queries over a long cache, and zero heads: nothing to do */
    float dummy[16] = {0};
    uint16_t *cache = calloc(5000 * 16, 2);
    lcx_tensor tq = {0}, tk = {0}, tv = {0}, to = {0};
    const int64_t s0[4] = {1, 0, 2, 8}, sc[4] = {1, 5000, 2, 8};
    lcx_tensor_init(&tq, dummy, LCX_F32, 4, s0);
    lcx_tensor_init(&to, dummy, LCX_F32, 4, s0);
    lcx_tensor_init(&tk, cache, LCX_BF16, 4, sc);
    lcx_tensor_init(&tv, cache, LCX_BF16, 4, sc);
    assert_int_equal(lcx_attention_forward(ctx, NULL, &tq, &tk, &tv, &to, NULL), LCX_OK);
    free(cache);
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_shapes),
        cmocka_unit_test(test_attention_dtypes_views_varlen),
        cmocka_unit_test(test_attention_merge),
        cmocka_unit_test(test_attention_golden_full_causal),
        cmocka_unit_test(test_attention_bad_input),
        cmocka_unit_test(test_attention_special),
    };
    return lcx_test_run("attention", argc, argv, tests, sizeof tests / sizeof *tests);
}
