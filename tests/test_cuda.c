/* CUDA suite: every CUDA op against the CPU scalar reference on the same
 * inputs. Exits 77 (skipped) in a build without CUDA or without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "internal/lcx_internal.h"
#include "longctx/rope.h"
#include "longctx/positions.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#include "../kernels/common/fp_bits.h"

static lcx_context *gpu, *cpu;

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (lcx_cuda_alloc(gpu->cuda, bytes, &p) != LCX_OK)
        lcx_fail_msg("cudaMalloc: %s", lcx_last_error());
    return p;
}
static void to_dev(void *d, const void *h, size_t bytes)
{
    if (lcx_cuda_copy(gpu->cuda, d, h, bytes, 1) != LCX_OK)
        lcx_fail_msg("copy to device: %s", lcx_last_error());
}
static void to_host(void *h, const void *d, size_t bytes)
{
    if (lcx_cuda_copy(gpu->cuda, h, d, bytes, 0) != LCX_OK)
        lcx_fail_msg("copy to host: %s", lcx_last_error());
}

/* Random views (padded strides, 1-4 dims, every dtype pair, poisoned
 * outputs): the GPU result must equal the CPU scalar result byte for byte,
 * padding included. */
static void test_cuda_convert_vs_scalar(void **state)
{
    (void)state;
    static const lcx_dtype dts[3] = {LCX_F32, LCX_F16, LCX_BF16};
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 11);
    for (int iter = 0; iter < 90; iter++) {
        const lcx_dtype sd = dts[iter % 3], dd = dts[(iter / 3) % 3];
        const int nd = (int)lcx_rng_range(&rng, 1, 4);
        lcx_tensor ts = {0}, td = {0};
        ts.dtype = sd;
        td.dtype = dd;
        ts.ndim = td.ndim = nd;
        int64_t sspan = 1, dspan = 1;
        for (int d = nd - 1; d >= 0; d--) {
            const int64_t n = lcx_rng_range(&rng, 1, d == nd - 1 ? (iter < 10 ? 100000 : 300) : 6);
            ts.shape[d] = td.shape[d] = n;
            ts.stride[d] = d == nd - 1 ? 1 : sspan + lcx_rng_range(&rng, 0, 3);
            td.stride[d] = d == nd - 1 ? 1 : dspan + lcx_rng_range(&rng, 0, 3);
            sspan = ts.stride[d] * n;
            dspan = td.stride[d] * n;
        }
        const size_t sb = (size_t)sspan * lcx_dtype_size(sd), db = (size_t)dspan * lcx_dtype_size(dd);
        unsigned char *hs = malloc(sb), *hc = malloc(db), *hg = malloc(db);
        for (size_t i = 0; i < sb; i++)
            hs[i] = (unsigned char)lcx_rng_u32(&rng);
        memset(hc, 0xCD, db);
        void *ds = dev_alloc(sb), *dd_ = dev_alloc(db);
        to_dev(ds, hs, sb);
        to_dev(dd_, hc, db);
        ts.data = hs;
        td.data = hc;
        assert_int_equal(lcx_convert(cpu, &ts, &td), LCX_OK);
        ts.data = ds;
        td.data = dd_;
        if (lcx_convert(gpu, &ts, &td) != LCX_OK)
            lcx_fail_msg("cuda convert: %s", lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(hg, dd_, db);
        lcx_expect_bytes_equal(hg, hc, db, "cuda vs scalar convert");
        lcx_cuda_free(gpu->cuda, ds);
        lcx_cuda_free(gpu->cuda, dd_);
        free(hs);
        free(hc);
        free(hg);
    }
}

static void test_cuda_bad_input(void **state)
{
    (void)state;
    float *d = dev_alloc(64 * 4);
    uint16_t *e = dev_alloc(64 * 2);
    lcx_tensor t, u;
    const int64_t shape[1] = {64};
    lcx_tensor_init(&t, d, LCX_F32, 1, shape);
    lcx_tensor_init(&u, e, LCX_BF16, 1, shape);
    u.shape[0] = 63;
    assert_int_equal(lcx_convert(gpu, &t, &u), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "shape"));
    u = t;
    assert_int_equal(lcx_convert(gpu, &t, &u), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "overlap"));
    lcx_cuda_free(gpu->cuda, e);
    assert_non_null(lcx_context_kernel_name(gpu, "convert_f32_bf16"));
    assert_null(lcx_context_kernel_name(gpu, "bench_fma"));
    lcx_cuda_free(gpu->cuda, d);
}

/* ---- merge ---- */

static const lcx_dtype all_dts[3] = {LCX_F32, LCX_F16, LCX_BF16};

/* a random view: nd dims, padded outer strides; returns its span in elements */
static int64_t rand_view(lcx_tensor *t, lcx_dtype dt, int nd, const int64_t *shape, lcx_rng *rng)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = nd;
    int64_t span = 1;
    for (int d = nd - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->stride[d] = d == nd - 1 ? 1 : span + lcx_rng_range(rng, 0, 3);
        span = t->stride[d] * (shape[d] > 0 ? shape[d] : 1);
    }
    return span;
}

/* mostly moderate values, some raw bit patterns (inf, NaN, subnormals, huge) */
static void rand_fill(void *p, lcx_dtype dt, int64_t n, lcx_rng *rng)
{
    for (int64_t i = 0; i < n; i++) {
        if (lcx_rng_range(rng, 0, 9) == 0) {
            const uint32_t u = lcx_rng_u32(rng);
            if (dt == LCX_F32)
                memcpy((float *)p + i, &u, 4);
            else
                ((uint16_t *)p)[i] = (uint16_t)u;
        } else {
            lcx_store_elem(p, (int32_t)dt, (size_t)i, (float)lcx_rng_uniform(rng, -4, 4));
        }
    }
}

static int is_nan_elem(const void *p, lcx_dtype dt, size_t i)
{
    const float x = lcx_load_elem(p, (int32_t)dt, i);
    return x != x;
}

/* byte-identical buffers, except that two NaNs compare equal (CPUs and GPUs
 * propagate NaN payloads through an FMA differently) */
static void expect_same_elems(const void *got, const void *want, lcx_dtype dt, int64_t n, const char *what)
{
    const size_t es = lcx_dtype_size(dt);
    for (int64_t i = 0; i < n; i++) {
        const char *g = (const char *)got + (size_t)i * es, *w = (const char *)want + (size_t)i * es;
        if (memcmp(g, w, es) == 0 || (is_nan_elem(got, dt, (size_t)i) && is_nan_elem(want, dt, (size_t)i)))
            continue;
        lcx_fail_msg("%s: element %lld differs: %.9g vs %.9g", what, (long long)i,
                     (double)lcx_load_elem(got, (int32_t)dt, (size_t)i),
                     (double)lcx_load_elem(want, (int32_t)dt, (size_t)i));
    }
}

static void test_cuda_merge_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 12);
    for (int iter = 0; iter < 120; iter++) {
        const int32_t n = iter == 7 ? 64 : (int32_t)lcx_rng_range(&rng, 1, 5);
        const int nd = (int)lcx_rng_range(&rng, 1, 4);
        const int inplace = iter % 5 == 4;
        int64_t shape[4];
        for (int d = 0; d < nd; d++) {
            const int64_t lim = d == nd - 1 ? (iter < 6 ? 70000 : 301) : (iter < 6 ? 3 : 5);
            shape[d] = iter % 17 == 3 && d == 0 ? 0 : iter % 13 == 5 ? 1 : lcx_rng_range(&rng, 1, lim);
        }
        lcx_tensor in[64], out;
        void *h_in[64], *d_in[64];
        int64_t span[64];
        double coeffs[64];
        const lcx_dtype odt = all_dts[iter % 3];
        for (int32_t i = 0; i < n; i++) {
            const lcx_dtype dt = inplace && i == 0 ? odt : all_dts[(iter / 3 + i) % 3];
            span[i] = rand_view(&in[i], dt, nd, shape, &rng);
            const size_t bytes = (size_t)span[i] * lcx_dtype_size(dt);
            h_in[i] = malloc(bytes);
            rand_fill(h_in[i], dt, span[i], &rng);
            d_in[i] = dev_alloc(bytes);
            to_dev(d_in[i], h_in[i], bytes);
            coeffs[i] = iter % 4 == 0 ? 1.0 / n : lcx_rng_uniform(&rng, -2, 2);
        }
        int64_t ospan;
        if (inplace) {
            out = in[0];
            ospan = span[0];
        } else {
            ospan = rand_view(&out, odt, nd, shape, &rng);
        }
        const size_t ob = (size_t)ospan * lcx_dtype_size(odt);
        unsigned char *hc = malloc(ob), *hg = malloc(ob);
        void *dout = inplace ? d_in[0] : dev_alloc(ob);
        if (inplace)
            memcpy(hc, h_in[0], ob);
        else {
            memset(hc, 0xCD, ob);
            to_dev(dout, hc, ob);
        }
        /* CPU scalar reference */
        for (int32_t i = 0; i < n; i++)
            in[i].data = inplace && i == 0 ? hc : h_in[i];
        out.data = hc;
        if (lcx_merge_weights(cpu, n, in, coeffs, &out) != LCX_OK)
            lcx_fail_msg("cpu merge: %s", lcx_last_error());
        for (int32_t i = 0; i < n; i++)
            in[i].data = d_in[i];
        out.data = dout;
        if (lcx_merge_weights(gpu, n, in, coeffs, &out) != LCX_OK)
            lcx_fail_msg("cuda merge: %s", lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(hg, dout, ob);
        expect_same_elems(hg, hc, odt, ospan, "cuda vs scalar merge");
        for (int32_t i = 0; i < n; i++) {
            lcx_cuda_free(gpu->cuda, d_in[i]);
            free(h_in[i]);
        }
        if (!inplace)
            lcx_cuda_free(gpu->cuda, dout);
        free(hc);
        free(hg);
    }
}

static void test_cuda_merge_bad_input(void **state)
{
    (void)state;
    const int64_t shape[2] = {4, 16};
    float *a = dev_alloc(64 * 4), *b = dev_alloc(64 * 4), *o = dev_alloc(64 * 4);
    float poison[64], back[64];
    memset(poison, 0xCD, sizeof poison);
    to_dev(o, poison, sizeof poison);
    lcx_tensor in[2], out;
    lcx_tensor_init(&in[0], a, LCX_F32, 2, shape);
    lcx_tensor_init(&in[1], b, LCX_F32, 2, shape);
    lcx_tensor_init(&out, o, LCX_F32, 2, shape);
    double c[2] = {0.5, 0.5};
    assert_int_equal(lcx_merge_weights(gpu, 0, in, c, &out), LCX_E_INVALID);
    assert_int_equal(lcx_merge_weights(gpu, 65, in, c, &out), LCX_E_INVALID);
    assert_int_equal(lcx_merge_weights(gpu, 2, NULL, c, &out), LCX_E_INVALID);
    c[1] = NAN;
    assert_int_equal(lcx_merge_weights(gpu, 2, in, c, &out), LCX_E_INVALID);
    c[1] = 1e39;
    assert_int_equal(lcx_merge_weights(gpu, 2, in, c, &out), LCX_E_INVALID);
    c[1] = 0.5;
    in[1].shape[0] = 3;
    assert_int_equal(lcx_merge_weights(gpu, 2, in, c, &out), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "shape"));
    in[1].shape[0] = 4;
    lcx_tensor shifted = out;
    shifted.data = o + 1;
    shifted.shape[0] = 3;
    lcx_tensor part = in[0];
    part.shape[0] = 3;
    part.data = o;
    lcx_tensor pin[1] = {part};
    assert_int_equal(lcx_merge_weights(gpu, 1, pin, c, &shifted), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "overlap"));
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(back, o, sizeof back);
    lcx_expect_bytes_equal(back, poison, sizeof back, "merge wrote on bad input");
    assert_non_null(lcx_context_kernel_name(gpu, "merge"));
    lcx_cuda_free(gpu->cuda, a);
    lcx_cuda_free(gpu->cuda, b);
    lcx_cuda_free(gpu->cuda, o);
}

/* ---- logprobs / impact ---- */

/* fill row r of a [rows][vocab] view; specials: 1 NaN, 2 some +inf,
 * 3 all -inf, 4 some -inf, 5 one +inf */
static void lp_fill_row(const lcx_tensor *t, void *base, int64_t row, int64_t vocab, double sigma, int special,
                        lcx_rng *rng)
{
    int64_t off = 0, r = row;
    for (int d = t->ndim - 2; d >= 0; d--) {
        off += (r % t->shape[d]) * t->stride[d];
        r /= t->shape[d];
    }
    char *p = (char *)base + (size_t)off * lcx_dtype_size(t->dtype);
    for (int64_t i = 0; i < vocab; i++) {
        float v = (float)((lcx_rng_uniform(rng, -1, 1) + lcx_rng_uniform(rng, -1, 1) +
                           lcx_rng_uniform(rng, -1, 1)) * sigma);
        if (special == 3 || (special == 4 && lcx_rng_range(rng, 0, 3) == 0))
            v = -INFINITY;
        if (special == 2 && lcx_rng_range(rng, 0, 2) == 0)
            v = INFINITY;
        lcx_store_elem(p, (int32_t)t->dtype, (size_t)i, v);
    }
    if (special == 1)
        lcx_store_elem(p, (int32_t)t->dtype, (size_t)lcx_rng_range(rng, 0, vocab - 1), NAN);
    if (special == 5 || special == 2)
        lcx_store_elem(p, (int32_t)t->dtype, (size_t)lcx_rng_range(rng, 0, vocab - 1), INFINITY);
}

static void expect_close(float got, float want, double tol, const char *what, int64_t r)
{
    if (isnan(want) || isinf(want)) {
        if (!(isnan(want) ? isnan(got) : got == want))
            lcx_fail_msg("%s row %lld: %g, want %g", what, (long long)r, (double)got, (double)want);
        return;
    }
    if (!(fabs((double)got - want) <= tol))
        lcx_fail_msg("%s row %lld: %.9g, want %.9g", what, (long long)r, (double)got, (double)want);
}

static void test_cuda_logprobs_vs_scalar(void **state)
{
    (void)state;
    static const int64_t vocabs[] = {1, 2, 7, 33, 255, 512, 513, 1000, 4097, 50000};
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 13);
    for (int iter = 0; iter < 90; iter++) {
        const lcx_dtype dt = all_dts[iter % 3];
        const int impact = (iter / 3) % 2;
        const int64_t vocab = vocabs[(iter / 6 + iter) % 10];
        const int nd = (int)lcx_rng_range(&rng, 2, 4);
        int64_t shape[4];
        for (int d = 0; d < nd - 1; d++)
            shape[d] = iter % 11 == 2 && d == 0 ? 0 : iter % 7 == 1 ? 1 : lcx_rng_range(&rng, 1, vocab > 4000 ? 3 : 9);
        shape[nd - 1] = vocab;
        const double sigma = iter % 4 == 0 ? 20.0 : iter % 4 == 1 ? 0.5 : 3.0;
        lcx_tensor x[2];
        void *hx[2] = {NULL, NULL}, *dx[2] = {NULL, NULL};
        int64_t rows = 1;
        for (int d = 0; d < nd - 1; d++)
            rows *= shape[d];
        for (int k = 0; k <= impact; k++) {
            const int64_t span = rand_view(&x[k], impact && k == 1 ? all_dts[(iter + 1) % 3] : dt, nd, shape, &rng);
            const size_t bytes = (size_t)span * lcx_dtype_size(x[k].dtype);
            hx[k] = malloc(bytes);
            memset(hx[k], 0xCD, bytes);
            for (int64_t r = 0; r < rows; r++) {
                const int special = lcx_rng_range(&rng, 0, 5) == 0 ? (int)lcx_rng_range(&rng, 1, 5) : 0;
                lp_fill_row(&x[k], hx[k], r, vocab, sigma, special, &rng);
            }
            dx[k] = dev_alloc(bytes);
            to_dev(dx[k], hx[k], bytes);
        }
        int64_t *tg = malloc((size_t)(rows + 1) * sizeof *tg);
        for (int64_t r = 0; r < rows; r++)
            tg[r] = lcx_rng_range(&rng, 0, 15) == 0 ? -100 : lcx_rng_range(&rng, 0, vocab - 1);
        int64_t *dtg = dev_alloc((size_t)(rows + 1) * sizeof *tg);
        to_dev(dtg, tg, (size_t)rows * sizeof *tg);
        /* out at offset 1 of rows + 2 poisoned floats */
        const size_t ob = (size_t)(rows + 2) * sizeof(float);
        float *hc = malloc(ob), *hg = malloc(ob), *lb = malloc(ob), *le = malloc(ob);
        memset(hc, 0xCD, ob);
        memset(hg, 0xCD, ob);
        float *dout = dev_alloc(ob);
        to_dev(dout, hc, ob);
        lcx_tensor hx0 = x[0], hx1 = x[1];
        hx0.data = hx[0];
        hx1.data = hx[1];
        lcx_status st = impact ? lcx_token_impact(cpu, &hx0, &hx1, tg, hc + 1) : lcx_token_logprobs(cpu, &hx0, tg, hc + 1);
        if (st != LCX_OK)
            lcx_fail_msg("cpu logprobs: %s", lcx_last_error());
        if (impact) {
            assert_int_equal(lcx_token_logprobs(cpu, &hx0, tg, lb), LCX_OK);
            assert_int_equal(lcx_token_logprobs(cpu, &hx1, tg, le), LCX_OK);
        }
        x[0].data = dx[0];
        x[1].data = dx[1];
        st = impact ? lcx_token_impact(gpu, &x[0], &x[1], dtg, dout + 1) : lcx_token_logprobs(gpu, &x[0], dtg, dout + 1);
        if (st != LCX_OK)
            lcx_fail_msg("cuda logprobs: %s", lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(hg, dout, ob);
        lcx_expect_bytes_equal(hg, hc, sizeof(float), "cuda logprobs wrote before out");
        lcx_expect_bytes_equal(hg + rows + 1, hc + rows + 1, sizeof(float), "cuda logprobs wrote after out");
        for (int64_t r = 0; r < rows; r++) {
            /* each log-probability within the CPU suite's 1e-5 + 1e-6 |lp| of
             * the exact value on both sides */
            double tol = 2.0 * (1e-5 + 1e-6 * fabs((double)hc[1 + r]));
            if (impact)
                tol = 2.0 * (2e-5 + 1e-6 * ((isfinite(lb[r]) ? fabs((double)lb[r]) : 0.0) +
                                            (isfinite(le[r]) ? fabs((double)le[r]) : 0.0)));
            expect_close(hg[1 + r], hc[1 + r], tol, impact ? "cuda vs scalar impact" : "cuda vs scalar logprobs", r);
        }
        for (int k = 0; k <= impact; k++) {
            lcx_cuda_free(gpu->cuda, dx[k]);
            free(hx[k]);
        }
        lcx_cuda_free(gpu->cuda, dtg);
        lcx_cuda_free(gpu->cuda, dout);
        free(tg);
        free(hc);
        free(hg);
        free(lb);
        free(le);
    }
}

static void test_cuda_logprobs_bad_input(void **state)
{
    (void)state;
    const int64_t shape[2] = {5, 10};
    float *x = dev_alloc(50 * 4), *y = dev_alloc(50 * 4), *o = dev_alloc(8 * 4);
    int64_t *tg = dev_alloc(5 * 8);
    float hx[50];
    for (int i = 0; i < 50; i++)
        hx[i] = (float)i * 0.1f;
    to_dev(x, hx, sizeof hx);
    to_dev(y, hx, sizeof hx);
    float poison[8], back[8];
    memset(poison, 0xCD, sizeof poison);
    to_dev(o, poison, sizeof poison);
    lcx_tensor t, u;
    lcx_tensor_init(&t, x, LCX_F32, 2, shape);
    lcx_tensor_init(&u, y, LCX_F32, 2, shape);
    int64_t htg[5] = {0, 9, -100, 10, 3}; /* row 3 is out of range */
    to_dev(tg, htg, sizeof htg);
    assert_int_equal(lcx_token_logprobs(gpu, &t, tg, o + 1), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "targets[3] = 10"));
    assert_int_equal(lcx_token_impact(gpu, &t, &u, tg, o + 1), LCX_E_INVALID);
    htg[3] = 2;
    to_dev(tg, htg, sizeof htg);
    assert_int_equal(lcx_token_logprobs(gpu, &t, NULL, o + 1), LCX_E_INVALID);
    assert_int_equal(lcx_token_logprobs(gpu, &t, tg, NULL), LCX_E_INVALID);
    assert_int_equal(lcx_token_impact(gpu, &t, NULL, tg, o + 1), LCX_E_INVALID);
    lcx_tensor v = u;
    v.shape[0] = 4;
    assert_int_equal(lcx_token_impact(gpu, &t, &v, tg, o + 1), LCX_E_INVALID);
    lcx_tensor w = t;
    w.ndim = 1;
    w.shape[0] = 50;
    assert_int_equal(lcx_token_logprobs(gpu, &w, tg, o + 1), LCX_E_INVALID);
    /* out overlapping the logits */
    assert_int_equal(lcx_token_logprobs(gpu, &t, tg, x + 2), LCX_E_INVALID);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(back, o, sizeof back);
    lcx_expect_bytes_equal(back, poison, sizeof back, "logprobs wrote on bad input");
    float hx2[50];
    to_host(hx2, x, sizeof hx2);
    lcx_expect_bytes_equal(hx2, hx, sizeof hx, "logprobs wrote into the logits");
    /* and the fixed targets run */
    assert_int_equal(lcx_token_logprobs(gpu, &t, tg, o + 1), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(back, o, sizeof back);
    assert_true(isnan(back[3]));
    assert_true(back[1] < 0 && back[2] < 0);
    assert_non_null(lcx_context_kernel_name(gpu, "row_lse"));
    lcx_cuda_free(gpu->cuda, x);
    lcx_cuda_free(gpu->cuda, y);
    lcx_cuda_free(gpu->cuda, o);
    lcx_cuda_free(gpu->cuda, tg);
}

/* ---- RoPE ---- */

typedef struct rope_layout {
    int64_t B, S, HQ, HK, W, D, hs, ts, bs, span; /* W heads per token: q, k, one spare */
} rope_layout;

/* [B][S][W][D] with padded head, token and batch strides: q = heads
 * [0, HQ), k = heads [HQ, HQ + HK), head W - 1 and the padding never rotated */
static void rope_make_layout(rope_layout *L, int64_t B, int64_t S, int64_t HQ, int64_t HK, int64_t D, int strided)
{
    L->B = B;
    L->S = S;
    L->HQ = HQ;
    L->HK = HK;
    L->W = HQ + HK + 1;
    L->D = D;
    L->hs = D + (strided ? 3 : 0);
    L->ts = L->W * L->hs + (strided ? 5 : 0);
    L->bs = S * L->ts + (strided ? 7 : 0);
    L->span = B * L->bs;
}

static void rope_views(const rope_layout *L, lcx_dtype dt, void *base, lcx_tensor *q, lcx_tensor *k)
{
    const size_t es = lcx_dtype_size(dt);
    memset(q, 0, sizeof *q);
    q->dtype = dt;
    q->ndim = 4;
    q->shape[0] = L->B;
    q->shape[1] = L->S;
    q->shape[2] = L->HQ;
    q->shape[3] = L->D;
    q->stride[0] = L->bs;
    q->stride[1] = L->ts;
    q->stride[2] = L->hs;
    q->stride[3] = 1;
    q->data = base;
    *k = *q;
    k->shape[2] = L->HK;
    k->data = (char *)base + (size_t)(L->HQ * L->hs) * es;
}

/* 1 where element e of the buffer is a rotated dim of a head of q (do_q) or k (do_k) */
static unsigned char *rope_mask(const rope_layout *L, int32_t rd, int do_q, int do_k)
{
    unsigned char *m = calloc((size_t)L->span, 1);
    for (int64_t b = 0; b < L->B; b++)
        for (int64_t s = 0; s < L->S; s++)
            for (int64_t h = 0; h < L->HQ + L->HK; h++) {
                if (h < L->HQ ? !do_q : !do_k)
                    continue;
                for (int32_t i = 0; i < rd; i++)
                    m[b * L->bs + s * L->ts + h * L->hs + i] = 1;
            }
    return m;
}

/* GPU vs CPU scalar: rotated elements within tol (+ one rounding of the
 * 16-bit dtype, relative), every other element byte-identical to orig */
static void rope_compare(const void *gpu_out, const void *cpu_out, const void *orig, const unsigned char *mask,
                         lcx_dtype dt, int64_t span, double tol, const char *what)
{
    const size_t es = lcx_dtype_size(dt);
    const double rel = dt == LCX_BF16 ? 0x1p-7 : dt == LCX_F16 ? 0x1p-10 : 0.0; /* one ulp */
    for (int64_t e = 0; e < span; e++) {
        const char *g = (const char *)gpu_out + (size_t)e * es;
        if (!mask[e]) {
            if (memcmp(g, (const char *)orig + (size_t)e * es, es) != 0)
                lcx_fail_msg("%s: element %lld outside the rotated dims written", what, (long long)e);
            continue;
        }
        const double got = lcx_load_elem(gpu_out, (int32_t)dt, (size_t)e);
        const double want = lcx_load_elem(cpu_out, (int32_t)dt, (size_t)e);
        if (!(fabs(got - want) <= tol + rel * fabs(want)))
            lcx_fail_msg("%s: element %lld: %.9g, want %.9g", what, (long long)e, got, want);
    }
}

static double factors_s[512], factors_l[512];

/* config kind: 0 default, 1 YaRN, 2 LongRoPE with n_hat, 3 Llama-3, 4 NTK */
static void rope_cfg(lcx_rope_config *c, int kind, int32_t head_dim, int32_t rotary_dim, int interleaved, int hf,
                     lcx_rng *rng)
{
    lcx_rope_config_default(c);
    c->head_dim = head_dim;
    c->rotary_dim = rotary_dim;
    c->layout = interleaved ? LCX_ROPE_INTERLEAVED : LCX_ROPE_NEOX;
    c->precision = hf ? LCX_ROPE_HF_F32 : LCX_ROPE_PRECISE;
    switch (kind) {
    case 1:
        c->type = LCX_ROPE_YARN;
        c->base = 1e6;
        c->factor = 16;
        c->original_max_position = 4096;
        c->max_position = 65536;
        break;
    case 2: {
        const int32_t n = (rotary_dim ? rotary_dim : head_dim) / 2;
        for (int32_t i = 0; i < n; i++) {
            factors_s[i] = lcx_rng_uniform(rng, 1, 3);
            factors_l[i] = lcx_rng_uniform(rng, 1, 40);
        }
        c->type = LCX_ROPE_LONGROPE;
        c->factor = 0;
        c->original_max_position = 4096;
        c->max_position = 131072;
        c->short_factor = factors_s;
        c->long_factor = factors_l;
        c->n_hat = 4096;
        break;
    }
    case 3:
        c->type = LCX_ROPE_LLAMA3;
        c->base = 500000;
        c->factor = 8;
        c->original_max_position = 8192;
        c->max_position = 131072;
        break;
    case 4:
        c->type = LCX_ROPE_NTK;
        c->factor = 4;
        break;
    default:
        break;
    }
}

/* positions: 0 NULL, 1 random in [0, 2^31-1] with both ends, 2 small
 * (around n_hat = 4096) */
static int64_t *rope_positions(int kind, int64_t tokens, lcx_rng *rng)
{
    if (kind == 0)
        return NULL;
    int64_t *p = malloc((size_t)(tokens + 1) * sizeof *p);
    for (int64_t i = 0; i < tokens; i++)
        p[i] = kind == 2 ? lcx_rng_range(rng, 4000, 4200) : lcx_rng_range(rng, 0, 2147483647LL);
    if (kind == 1) {
        p[0] = 0;
        if (tokens > 1)
            p[tokens - 1] = 2147483647LL;
        if (tokens > 2)
            p[1] = 4095;
    }
    return p;
}

/* Tolerance between the contexts: the CPU suite accepts 2e-6 against the
 * long-double oracle in precise mode, so 2 x 2e-6 x a here (|x| <= 1). The
 * HF-f32 mode forms the same float angle fl32(p * theta) on both sides, so
 * the same bound holds there too (tighter than the CPU suite's
 * position-scaled HF tolerance); 16-bit outputs may round to neighbouring
 * values, one ulp of the dtype apart. */
static double rope_tol(const lcx_rope *r)
{
    double a = 1.0;
    lcx_rope_get(r, NULL, &a, NULL);
    return 4e-6 * (a > 1.0 ? a : 1.0);
}

typedef struct rope_bufs {
    size_t bytes;
    unsigned char *orig, *hc, *hg;
    void *dbuf;
    int64_t *dpos;
} rope_bufs;

static void rope_bufs_init(rope_bufs *r, const rope_layout *L, lcx_dtype dt, const int64_t *pos, lcx_rng *rng)
{
    r->bytes = (size_t)L->span * lcx_dtype_size(dt);
    r->orig = malloc(r->bytes);
    r->hc = malloc(r->bytes);
    r->hg = malloc(r->bytes);
    for (int64_t e = 0; e < L->span; e++)
        lcx_store_elem(r->orig, (int32_t)dt, (size_t)e, (float)lcx_rng_uniform(rng, -1, 1));
    memcpy(r->hc, r->orig, r->bytes);
    r->dbuf = dev_alloc(r->bytes);
    to_dev(r->dbuf, r->orig, r->bytes);
    r->dpos = NULL;
    if (pos) {
        const size_t pb = (size_t)(L->B * L->S) * sizeof *pos;
        r->dpos = dev_alloc(pb ? pb : 8);
        to_dev(r->dpos, pos, pb);
    }
}

static void rope_bufs_free(rope_bufs *r)
{
    lcx_cuda_free(gpu->cuda, r->dbuf);
    lcx_cuda_free(gpu->cuda, r->dpos);
    free(r->orig);
    free(r->hc);
    free(r->hg);
}

static void test_cuda_rope_apply_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 14);
    for (int iter = 0; iter < 96; iter++) {
        const int kind = iter % 5, interleaved = (iter / 5) % 2, hf = (iter / 10) % 2;
        const lcx_dtype dt = all_dts[(iter / 2) % 3];
        const int qk = iter % 7 == 3 ? 1 : iter % 7 == 5 ? 2 : 3; /* 1 q only, 2 k only, 3 both */
        const int strided = iter % 3 != 0;
        int32_t D = iter % 4 == 1 ? 96 : 64, rd = iter % 4 == 1 ? 48 : iter % 4 == 2 ? 32 : 0;
        if (iter == 40) {
            D = 1024; /* the largest rotary_dim */
            rd = 0;
        }
        const int pkind = kind == 2 && iter % 2 ? 2 : iter % 6 == 0 ? 0 : 1;
        rope_layout L;
        rope_make_layout(&L, iter % 9 == 8 ? 0 : lcx_rng_range(&rng, 1, 3), lcx_rng_range(&rng, 1, iter == 40 ? 4 : 40),
                         lcx_rng_range(&rng, 1, 5), lcx_rng_range(&rng, 1, 3), D, strided);
        lcx_rope_config c;
        rope_cfg(&c, kind, D, rd, interleaved, hf, &rng);
        lcx_rope *rope;
        if (lcx_rope_create(cpu, &c, kind == 2 ? 8192 : 0, &rope) != LCX_OK)
            lcx_fail_msg("rope_create: %s", lcx_last_error());
        int64_t *pos = rope_positions(pkind, L.B * L.S, &rng);
        rope_bufs r;
        rope_bufs_init(&r, &L, dt, pos, &rng);
        lcx_tensor q, k;
        rope_views(&L, dt, r.hc, &q, &k);
        char what[160];
        snprintf(what, sizeof what, "cuda rope iter %d kind %d %s %s %s q%d k%d", iter, kind,
                 interleaved ? "interleaved" : "neox", hf ? "hf_f32" : "precise", lcx_dtype_name(dt), qk & 1,
                 qk >> 1);
        if (lcx_rope_apply(cpu, rope, qk & 1 ? &q : NULL, qk & 2 ? &k : NULL, pos) != LCX_OK)
            lcx_fail_msg("%s: cpu: %s", what, lcx_last_error());
        rope_views(&L, dt, r.dbuf, &q, &k);
        if (lcx_rope_apply(gpu, rope, qk & 1 ? &q : NULL, qk & 2 ? &k : NULL, r.dpos) != LCX_OK)
            lcx_fail_msg("%s: cuda: %s", what, lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(r.hg, r.dbuf, r.bytes);
        unsigned char *mask = rope_mask(&L, rd ? rd : D, qk & 1, qk >> 1);
        rope_compare(r.hg, r.hc, r.orig, mask, dt, L.span, rope_tol(rope), what);
        free(mask);
        rope_bufs_free(&r);
        free(pos);
        lcx_rope_destroy(rope);
    }
}

static void test_cuda_rope_rerotate_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 15);
    for (int iter = 0; iter < 40; iter++) {
        const int interleaved = iter % 2, kf = (iter / 2) % 5, kt = (iter / 3 + 1) % 5;
        const lcx_dtype dt = all_dts[iter % 3];
        const int32_t D = iter % 4 == 1 ? 96 : 64, rd = iter % 4 == 1 ? 48 : 0;
        rope_layout L;
        rope_make_layout(&L, lcx_rng_range(&rng, 1, 3), lcx_rng_range(&rng, 1, 30), 0, lcx_rng_range(&rng, 1, 4), D,
                         iter % 3 != 0);
        lcx_rope_config cf, ct;
        double sf[512], lf[512];
        rope_cfg(&cf, kf, D, rd, interleaved, 0, &rng);
        memcpy(sf, factors_s, sizeof sf);
        memcpy(lf, factors_l, sizeof lf);
        if (kf == 2) {
            cf.short_factor = sf;
            cf.long_factor = lf;
        }
        rope_cfg(&ct, kt, D, rd, interleaved, 0, &rng);
        lcx_rope *from, *to;
        assert_int_equal(lcx_rope_create(cpu, &cf, kf == 2 ? 8192 : 0, &from), LCX_OK);
        assert_int_equal(lcx_rope_create(cpu, &ct, kt == 2 ? 8192 : 0, &to), LCX_OK);
        int64_t *pos = rope_positions(iter % 5 == 0 ? 0 : iter % 3 == 1 ? 2 : 1, L.B * L.S, &rng);
        rope_bufs r;
        rope_bufs_init(&r, &L, dt, pos, &rng);
        lcx_tensor q, k;
        rope_views(&L, dt, r.hc, &q, &k);
        char what[128];
        snprintf(what, sizeof what, "cuda rerotate iter %d %d -> %d %s %s", iter, kf, kt,
                 interleaved ? "interleaved" : "neox", lcx_dtype_name(dt));
        if (lcx_rope_rerotate(cpu, from, to, &k, pos) != LCX_OK)
            lcx_fail_msg("%s: cpu: %s", what, lcx_last_error());
        rope_views(&L, dt, r.dbuf, &q, &k);
        if (lcx_rope_rerotate(gpu, from, to, &k, r.dpos) != LCX_OK)
            lcx_fail_msg("%s: cuda: %s", what, lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(r.hg, r.dbuf, r.bytes);
        unsigned char *mask = rope_mask(&L, rd ? rd : D, 0, 1);
        rope_compare(r.hg, r.hc, r.orig, mask, dt, L.span, 4e-6, what);
        free(mask);
        rope_bufs_free(&r);
        free(pos);
        lcx_rope_destroy(from);
        lcx_rope_destroy(to);
    }
}

/* context shift: every cached key moved by the same delta (magnitude 1) */
static void test_cuda_rope_shift_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 17);
    const int kinds[4] = {0, 1, 3, 4}; /* not LONGROPE with n_hat > 0: refused on both */
    for (int iter = 0; iter < 32; iter++) {
        const int kind = kinds[iter % 4], interleaved = (iter / 4) % 2;
        const lcx_dtype dt = all_dts[iter % 3];
        const int32_t D = iter % 5 == 1 ? 96 : 64, rd = iter % 5 == 1 ? 48 : iter % 5 == 2 ? 32 : 0;
        const int64_t deltas[6] = {1, -1, 2147483647LL, -2147483647LL, 4096, -77};
        const int64_t delta = iter < 6 ? deltas[iter] : lcx_rng_range(&rng, -2147483647LL, 2147483647LL);
        rope_layout L;
        rope_make_layout(&L, lcx_rng_range(&rng, 1, 3), lcx_rng_range(&rng, 1, 30), 0, lcx_rng_range(&rng, 1, 4), D,
                         iter % 3 != 0);
        lcx_rope_config c;
        rope_cfg(&c, kind, D, rd, interleaved, 0, &rng);
        lcx_rope *rope;
        assert_int_equal(lcx_rope_create(cpu, &c, 0, &rope), LCX_OK);
        rope_bufs r;
        rope_bufs_init(&r, &L, dt, NULL, &rng);
        lcx_tensor q, k;
        rope_views(&L, dt, r.hc, &q, &k);
        char what[128];
        snprintf(what, sizeof what, "cuda shift iter %d kind %d delta %lld %s %s", iter, kind, (long long)delta,
                 interleaved ? "interleaved" : "neox", lcx_dtype_name(dt));
        if (lcx_rope_shift(cpu, rope, &k, delta) != LCX_OK)
            lcx_fail_msg("%s: cpu: %s", what, lcx_last_error());
        rope_views(&L, dt, r.dbuf, &q, &k);
        if (lcx_rope_shift(gpu, rope, &k, delta) != LCX_OK)
            lcx_fail_msg("%s: cuda: %s", what, lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(r.hg, r.dbuf, r.bytes);
        unsigned char *mask = rope_mask(&L, rd ? rd : D, 0, 1);
        rope_compare(r.hg, r.hc, r.orig, mask, dt, L.span, 4e-6, what);
        free(mask);
        rope_bufs_free(&r);
        lcx_rope_destroy(rope);
    }
    /* LONGROPE with n_hat > 0: the rotation depends on p, refused with the CPU's message */
    lcx_rope_config c;
    rope_cfg(&c, 2, 64, 0, 0, 0, &rng);
    lcx_rope *rope;
    assert_int_equal(lcx_rope_create(cpu, &c, 8192, &rope), LCX_OK);
    rope_layout L;
    rope_make_layout(&L, 1, 4, 0, 2, 64, 0);
    rope_bufs r;
    rope_bufs_init(&r, &L, LCX_F32, NULL, &rng);
    lcx_tensor q, k;
    rope_views(&L, LCX_F32, r.dbuf, &q, &k);
    assert_int_equal(lcx_rope_shift(gpu, rope, &k, 5), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "n_hat"));
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(r.hg, r.dbuf, r.bytes);
    lcx_expect_bytes_equal(r.hg, r.orig, r.bytes, "refused shift wrote");
    rope_bufs_free(&r);
    lcx_rope_destroy(rope);
}

/* batch samplers: the device rows equal the CPU rows bit for bit (the same
 * Philox streams and draw order); tails of short rows stay as they were */
static void test_cuda_samplers_vs_cpu(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 18);
    const int64_t rows = 300, W = 96, T = 8192; /* more rows than one launch carries */
    int64_t *docs = malloc(sizeof(int64_t) * (size_t)rows);
    for (int64_t r = 0; r < rows; r++)
        docs[r] = lcx_rng_range(&rng, 8, r % 4 ? 20000 : 90);
    const size_t cells = (size_t)(rows * W) * sizeof(int64_t), nb = (size_t)rows * sizeof(int64_t);
    int64_t *hi = malloc(cells), *hp = malloc(cells), *hn = malloc(nb), *gi = malloc(cells), *gp = malloc(cells),
            *gn = malloc(nb);
    int64_t *di = dev_alloc(cells), *dp = dev_alloc(cells), *dn = dev_alloc(nb);
    for (int32_t nch = 0; nch <= 8; nch += 4) {
        const uint64_t seed = lcx_rng_u64(&rng), stream = lcx_rng_u64(&rng);
        for (size_t i = 0; i < (size_t)(rows * W); i++)
            hi[i] = hp[i] = -3;
        to_dev(di, hi, cells);
        to_dev(dp, hp, cells);
        assert_int_equal(lcx_pose_sample_batch(cpu, seed, stream, rows, docs, W, T, nch, hi, hp, hn), LCX_OK);
        assert_int_equal(lcx_pose_sample_batch(gpu, seed, stream, rows, docs, W, T, nch, di, dp, dn), LCX_OK);
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(gi, di, cells);
        to_host(gp, dp, cells);
        to_host(gn, dn, nb);
        lcx_expect_bytes_equal(gn, hn, nb, "cuda PoSE batch n_out");
        lcx_expect_bytes_equal(gi, hi, cells, "cuda PoSE batch indices");
        lcx_expect_bytes_equal(gp, hp, cells, "cuda PoSE batch positions");
    }
    /* RandPos: 70 rows of 50 positions out of 3000 */
    const int64_t n = 50, TL = 3000, rr = 70;
    const size_t pb = (size_t)(rr * n) * sizeof(int64_t);
    assert_int_equal(lcx_randpos_sample_batch(cpu, 11, 5, rr, n, TL, hi), LCX_OK);
    assert_int_equal(lcx_randpos_sample_batch(gpu, 11, 5, rr, n, TL, dp), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(gp, dp, pb);
    lcx_expect_bytes_equal(gp, hi, pb, "cuda RandPos batch");
    /* bad input: refused on the host, nothing written */
    to_dev(dp, hp, cells);
    docs[7] = 0;
    assert_int_equal(lcx_pose_sample_batch(gpu, 1, 1, rows, docs, W, T, 0, NULL, dp, NULL), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "doc_lens[7]"));
    assert_int_equal(lcx_randpos_sample_batch(gpu, 1, 1, 2, 9, 8, dp), LCX_E_INVALID);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(gp, dp, cells);
    lcx_expect_bytes_equal(gp, hp, cells, "refused batch sampler wrote");
    lcx_cuda_free(gpu->cuda, di);
    lcx_cuda_free(gpu->cuda, dp);
    lcx_cuda_free(gpu->cuda, dn);
    free(docs);
    free(hi);
    free(hp);
    free(hn);
    free(gi);
    free(gp);
    free(gn);
}

static void test_cuda_rope_bad_input(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 16);
    rope_layout L;
    rope_make_layout(&L, 2, 4, 2, 1, 64, 1);
    int64_t pos[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    rope_bufs r;
    rope_bufs_init(&r, &L, LCX_F32, pos, &rng);
    lcx_tensor q, k;
    rope_views(&L, LCX_F32, r.dbuf, &q, &k);
    lcx_rope_config c, c2;
    rope_cfg(&c, 0, 64, 0, 0, 0, &rng);
    rope_cfg(&c2, 0, 64, 32, 0, 0, &rng);
    lcx_rope *rope, *other;
    assert_int_equal(lcx_rope_create(gpu, &c, 0, &rope), LCX_OK);
    assert_int_equal(lcx_rope_create(gpu, &c2, 0, &other), LCX_OK);
    /* a position out of range, in device memory: refused with the CPU's message */
    const int64_t bad[2] = {-1, 2147483648LL};
    for (int i = 0; i < 2; i++) {
        pos[5] = bad[i];
        to_dev(r.dpos, pos, sizeof pos);
        char want[160];
        assert_int_equal(lcx_rope_apply(cpu, rope, &q, &k, pos), LCX_E_INVALID);
        snprintf(want, sizeof want, "%s", lcx_last_error());
        assert_int_equal(lcx_rope_apply(gpu, rope, &q, &k, r.dpos), LCX_E_INVALID);
        assert_string_equal(lcx_last_error(), want);
        assert_non_null(strstr(want, "positions[1][1]"));
        assert_int_equal(lcx_rope_rerotate(gpu, rope, rope, &k, r.dpos), LCX_E_INVALID);
        assert_non_null(strstr(lcx_last_error(), "positions[1][1]"));
    }
    pos[5] = 5;
    to_dev(r.dpos, pos, sizeof pos);
    assert_int_equal(lcx_rope_apply(gpu, rope, NULL, NULL, r.dpos), LCX_E_INVALID);
    assert_int_equal(lcx_rope_apply(gpu, NULL, &q, &k, r.dpos), LCX_E_INVALID);
    assert_int_equal(lcx_rope_apply(NULL, rope, &q, &k, r.dpos), LCX_E_INVALID);
    lcx_tensor w = q;
    w.shape[3] = 32; /* head_dim differs from the rope's */
    assert_int_equal(lcx_rope_apply(gpu, rope, &w, &k, r.dpos), LCX_E_INVALID);
    w = q;
    w.ndim = 3;
    assert_int_equal(lcx_rope_apply(gpu, rope, &w, NULL, r.dpos), LCX_E_INVALID);
    w = k;
    w.shape[1] = 3; /* q and k token counts differ */
    assert_int_equal(lcx_rope_apply(gpu, rope, &q, &w, r.dpos), LCX_E_INVALID);
    w = q;
    w.shape[2] = 3; /* q's last head is k's head */
    assert_int_equal(lcx_rope_apply(gpu, rope, &w, &k, r.dpos), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "overlap"));
    w = q;
    w.stride[3] = 2;
    assert_int_equal(lcx_rope_apply(gpu, rope, &w, NULL, r.dpos), LCX_E_INVALID);
    assert_int_equal(lcx_rope_rerotate(gpu, rope, other, &k, r.dpos), LCX_E_INVALID);
    assert_int_equal(lcx_rope_rerotate(gpu, NULL, rope, &k, r.dpos), LCX_E_INVALID);
    assert_int_equal(lcx_rope_rerotate(gpu, rope, rope, NULL, r.dpos), LCX_E_INVALID);
    assert_int_equal(lcx_rope_shift(gpu, rope, NULL, 3), LCX_E_INVALID);
    assert_int_equal(lcx_rope_shift(gpu, rope, &k, 2147483648LL), LCX_E_INVALID);
    assert_int_equal(lcx_rope_shift(gpu, rope, &k, -2147483648LL), LCX_E_INVALID);
    w = k;
    w.shape[3] = 32;
    assert_int_equal(lcx_rope_shift(gpu, rope, &w, 3), LCX_E_INVALID);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(r.hg, r.dbuf, r.bytes);
    lcx_expect_bytes_equal(r.hg, r.orig, r.bytes, "rope wrote on bad input");
    /* and the fixed positions run, rotating exactly the q and k dims */
    assert_int_equal(lcx_rope_apply(gpu, rope, &q, &k, r.dpos), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(r.hg, r.dbuf, r.bytes);
    rope_views(&L, LCX_F32, r.hc, &q, &k);
    assert_int_equal(lcx_rope_apply(cpu, rope, &q, &k, pos), LCX_OK);
    unsigned char *mask = rope_mask(&L, 64, 1, 1);
    rope_compare(r.hg, r.hc, r.orig, mask, LCX_F32, L.span, 4e-6, "rope after bad input");
    free(mask);
    lcx_rope_destroy(rope);
    lcx_rope_destroy(other);
    rope_bufs_free(&r);
}

static int setup(void **state)
{
    (void)state;
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.isa = LCX_ISA_SCALAR;
    if (lcx_context_create(&o, &cpu) != LCX_OK)
        return -1;
    o.device = LCX_DEVICE_CUDA;
    o.isa = LCX_ISA_AUTO;
    return lcx_context_create(&o, &gpu) == LCX_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    lcx_context_destroy(gpu);
    lcx_context_destroy(cpu);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    lcx_context *probe = NULL;
    const lcx_status st = lcx_context_create(&o, &probe);
    if (st == LCX_E_DEVICE) {
        printf("cuda: SKIP (no usable GPU: %s)\n", lcx_last_error());
        return 77;
    }
    if (st != LCX_OK) {
        fprintf(stderr, "cuda: context creation failed: %s: %s\n", lcx_status_string(st),
                lcx_last_error());
        return 1;
    }
    lcx_context_destroy(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_convert_vs_scalar),
        cmocka_unit_test(test_cuda_bad_input),
        cmocka_unit_test(test_cuda_merge_vs_scalar),
        cmocka_unit_test(test_cuda_merge_bad_input),
        cmocka_unit_test(test_cuda_logprobs_vs_scalar),
        cmocka_unit_test(test_cuda_logprobs_bad_input),
        cmocka_unit_test(test_cuda_rope_apply_vs_scalar),
        cmocka_unit_test(test_cuda_rope_rerotate_vs_scalar),
        cmocka_unit_test(test_cuda_rope_shift_vs_scalar),
        cmocka_unit_test(test_cuda_samplers_vs_cpu),
        cmocka_unit_test(test_cuda_rope_bad_input),
    };
    char *args[2] = {argv[0], "auto"};
    if (setup(NULL) != 0) {
        fprintf(stderr, "cuda: context creation failed: %s\n", lcx_last_error());
        return 1;
    }
    const int rc = lcx_test_run("cuda", 2, args, tests, sizeof tests / sizeof *tests);
    teardown(NULL);
    return rc;
}
#else
int main(void)
{
    printf("cuda: SKIP (built without CUDA)\n");
    return 77;
}
#endif
