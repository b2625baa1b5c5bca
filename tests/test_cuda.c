/* CUDA suite: every CUDA op against the CPU scalar reference on the same
 * inputs. Exits 77 (skipped) in a build without CUDA or without a GPU. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "util/json.h"
#include "ref/attn_ref.h"
#include "internal/lcx_internal.h"
#include "longctx/rope.h"
#include "longctx/positions.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#include "../kernels/common/fp_bits.h"
#include "ref/convert_ref.h"

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
/* a view of the given shape with rows padded by 0..padmax elements per dim */
static int64_t rand_view_pad(lcx_tensor *t, lcx_dtype dt, int nd, const int64_t *shape, lcx_rng *rng, int padmax)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = nd;
    int64_t span = 1;
    for (int d = nd - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->stride[d] = d == nd - 1 ? 1 : span + lcx_rng_range(rng, 0, padmax);
        span = t->stride[d] * (shape[d] > 0 ? shape[d] : 1);
    }
    return span;
}

static int64_t rand_view(lcx_tensor *t, lcx_dtype dt, int nd, const int64_t *shape, lcx_rng *rng)
{
    return rand_view_pad(t, dt, nd, shape, rng, 3);
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
        /* inputs of one dtype (odd iterations) or mixed; every view dense
         * (one third of the iterations: one flat row) or padded */
        const int padmax = iter % 3 == 1 ? 0 : 3;
        for (int32_t i = 0; i < n; i++) {
            const lcx_dtype dt = inplace && i == 0 ? odt : all_dts[(iter / 3 + (iter % 2 ? 0 : i)) % 3];
            span[i] = rand_view_pad(&in[i], dt, nd, shape, &rng, padmax);
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
            ospan = rand_view_pad(&out, odt, nd, shape, &rng, padmax);
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
        if ((special == 2 || special == 7) && lcx_rng_range(rng, 0, 2) == 0)
            v = INFINITY;
        if (special == 6) /* rising: a new running maximum at every element */
            v = (float)(sigma * (8.0 * (double)i / (double)vocab - 4.0));
        lcx_store_elem(p, (int32_t)t->dtype, (size_t)i, v);
    }
    if (special == 1 || special == 7) /* 7: NaN beside +inf */
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
                const int special = lcx_rng_range(&rng, 0, 5) == 0 ? (int)lcx_rng_range(&rng, 1, 7) : 0;
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

/* ---- attention ----
 * Every case runs on the CPU scalar context (host copies) and on the CUDA
 * context (device copies) with the same inputs; both results are checked
 * against a double-precision oracle with the CPU attention suite's
 * tolerance (tests/test_attention.c): |out - ref| <= 2e-4 max|v| plus half
 * an ulp of 16-bit outputs, |lse - ref| <= 2e-4 (1 + |ref|), -inf exact.
 * Input padding holds NaN (never read), output padding and an lse guard are
 * poisoned and must stay untouched, and a second run is bit-identical. */

typedef struct att_t {
    lcx_tensor t;   /* host view */
    void *h, *d;    /* host and device buffers */
    size_t bytes;
    double *x;      /* exact values, dense [b][s][h][d] */
} att_t;

static void att_make(att_t *A, lcx_dtype dt, int64_t b, int64_t s, int64_t h, int64_t d, int pad, lcx_rng *rng,
                     double amp, int output)
{
    memset(A, 0, sizeof *A);
    lcx_tensor *t = &A->t;
    t->dtype = dt;
    t->ndim = 4;
    const int64_t sh[4] = {b, s, h, d};
    int64_t span = 1;
    for (int k = 3; k >= 0; k--) {
        t->shape[k] = sh[k];
        t->stride[k] = k == 3 ? 1 : span + (pad && k == 2 ? 3 : 0) + (pad && k == 1 ? 5 : 0);
        span = t->stride[k] * (sh[k] > 0 ? sh[k] : 1);
    }
    A->bytes = (size_t)(span + 1) * lcx_dtype_size(dt);
    A->h = malloc(A->bytes);
    memset(A->h, output ? 0xCD : 0xFF, A->bytes); /* inputs: NaN padding; outputs: poison */
    A->x = malloc(sizeof(double) * (size_t)(b * s * h * d) + 8);
    int64_t f = 0;
    for (int64_t i0 = 0; i0 < b; i0++)
        for (int64_t i1 = 0; i1 < s; i1++)
            for (int64_t i2 = 0; i2 < h; i2++)
                for (int64_t i3 = 0; i3 < d; i3++, f++) {
                    const size_t o = (size_t)(i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] + i3);
                    if (output)
                        continue;
                    lcx_store_elem(A->h, (int32_t)dt, o, (float)lcx_rng_uniform(rng, -amp, amp));
                    A->x[f] = lcx_load_elem(A->h, (int32_t)dt, o);
                }
    t->data = A->h;
    A->d = dev_alloc(A->bytes);
    to_dev(A->d, A->h, A->bytes);
}

static lcx_tensor att_dev(const att_t *A)
{
    lcx_tensor t = A->t;
    t.data = A->d;
    return t;
}

static void att_free(att_t *A)
{
    lcx_cuda_free(gpu->cuda, A->d);
    free(A->h);
    free(A->x);
}


typedef struct att_case {
    int64_t B, Sq, Sk, H, Hkv, D, Dv;
    int causal, window, pad;
    double softcap, scale;
    lcx_dtype dq, dk, dv, dout;
    const int64_t *cuq, *cuk;
    int32_t nseq;
    int64_t plant_key; /* >= 0: V of this key (batch 0, kv head 0) gets inf in column 1 and NaN in 2;
                        * plant_mode 1: inf in the last column only, 2: NaN in column 0 only */
    int plant_mode;
    int64_t plant_q;   /* >= 0: q of this row (batch 0, head 0) gets NaN in column 0 */
    int64_t plant_k;   /* >= 0: k of this key (batch 0, kv head 0) gets NaN in column 3 */
    int pv16;          /* lcx_attention_params.pv_16bit */
    int ramp_qk;       /* q = (16, 1, 0...), k of key j = (j / 16, j % 16, 0...): score of key j = j */
} att_case;

static att_case att_base(void)
{
    att_case c = {1, 17, 17, 4, 2, 64, 64, 0, -1, 0, 0, 0, LCX_F32, LCX_F32, LCX_F32, LCX_F32, NULL, NULL, 0, -1, 0, -1, -1, 0, 0};
    return c;
}

/* a causal case of one dtype everywhere and head dims d = dv */
static att_case att_causal(lcx_dtype dt, int64_t Sq, int64_t Sk, int64_t D)
{
    att_case c = att_base();
    c.dq = c.dk = c.dv = c.dout = dt;
    c.Sq = Sq;
    c.Sk = Sk;
    c.D = c.Dv = D;
    c.causal = 1;
    return c;
}

/* 1 where byte i of an output buffer belongs to the view */
static unsigned char *att_mask(const att_t *O)
{
    unsigned char *mask = calloc(O->bytes, 1);
    const lcx_tensor *t = &O->t;
    const size_t es = lcx_dtype_size(t->dtype);
    for (int64_t a = 0; a < t->shape[0]; a++)
        for (int64_t s = 0; s < t->shape[1]; s++)
            for (int64_t h = 0; h < t->shape[2]; h++)
                memset(mask + (size_t)(a * t->stride[0] + s * t->stride[1] + h * t->stride[2]) * es, 1,
                       (size_t)t->shape[3] * es);
    return mask;
}

static void att_check(const att_case *c, const att_t *Q, const att_t *K, const att_t *V, const att_t *O,
                      const void *obuf, const float *lse, const lcx_attention_params *p, const char *what,
                      const char *who)
{
    double vmax = 0;
    for (int64_t f = 0; f < c->B * c->Sk * c->Hkv * c->Dv; f++)
        if (isfinite(V->x[f]))
            vmax = fmax(vmax, fabs(V->x[f]));
    const double half_ulp = c->dout == LCX_BF16 ? 0x1p-8 : c->dout == LCX_F16 ? 0x1p-11 : 0;
    /* pv_16bit: each weight may be rounded to q's 16-bit dtype for P V
     * (relative error <= u, the weights' sum l kept exact), so |O - ref| may
     * grow by u sum_j p_j |v_j| / l <= u max|v| */
    const double pv_u = !c->pv16 ? 0 : c->dq == LCX_BF16 ? 0x1p-8 : c->dq == LCX_F16 ? 0x1p-11 : 0;
    double *ref = malloc(sizeof(double) * (size_t)c->Dv);
    const int nseq = c->cuq ? c->nseq : (int)c->B;
    for (int s = 0; s < nseq; s++) {
        const int64_t b = c->cuq ? 0 : s, q0 = c->cuq ? c->cuq[s] : 0, lq = c->cuq ? c->cuq[s + 1] - q0 : c->Sq;
        const int64_t k0 = c->cuk ? c->cuk[s] : 0, lk = c->cuk ? c->cuk[s + 1] - k0 : c->Sk;
        for (int64_t i = 0; i < lq; i++)
            for (int64_t h = 0; h < c->H; h++) {
                double rl;
                lcx_ref_attention_row(&Q->t, Q->x, &K->t, K->x, &V->t, V->x, p, b, q0 + i, i, lq, k0, lk, h, ref, &rl);
                const size_t ob = (size_t)(b * O->t.stride[0] + (q0 + i) * O->t.stride[1] + h * O->t.stride[2]);
                for (int64_t d = 0; d < c->Dv; d++) {
                    const double got = lcx_load_elem(obuf, (int32_t)c->dout, ob + (size_t)d);
                    if (!isfinite(ref[d]) ? (isnan(ref[d]) ? !isnan(got) : got != ref[d])
                                          : !(fabs(got - ref[d]) <= (2e-4 + pv_u) * vmax + half_ulp * fabs(ref[d])))
                        lcx_fail_msg("%s (%s): b %lld q %lld h %lld d %lld: %.7g, want %.7g", what, who,
                                     (long long)b, (long long)(q0 + i), (long long)h, (long long)d, got, ref[d]);
                }
                const float gl = lse[(b * c->H + h) * c->Sq + q0 + i];
                if (isnan(rl) ? !isnan(gl) : isinf(rl) ? gl != (float)rl : !(fabs(gl - rl) <= 2e-4 * (1 + fabs(rl))))
                    lcx_fail_msg("%s (%s): lse b %lld q %lld h %lld: %.7g, want %.7g", what, who, (long long)b,
                                 (long long)(q0 + i), (long long)h, (double)gl, rl);
            }
    }
    free(ref);
}

/* A's values replaced: key rows (keys 1) (j / 16, j % 16, 0...) for
 * position j, query rows (16, 1, 0...): exact in every dtype, and every
 * path computes the scores j exactly (distinct: one largest per row) */
static void att_ramp(att_t *A, int64_t b, int64_t s, int64_t h, int64_t d, int keys)
{
    for (int64_t x = 0; x < b * s * h * d; x++) {
        const int64_t e = x % d, hh = x / d % h, ss = x / d / h % s, bb = x / d / h / s;
        const double v = e > 1 ? 0 : keys ? (e ? ss % 16 : ss / 16) : (e ? 1 : 16);
        A->x[x] = v;
        lcx_store_elem(A->h, (int32_t)A->t.dtype,
                       (size_t)(bb * A->t.stride[0] + ss * A->t.stride[1] + hh * A->t.stride[2] + e), (float)v);
    }
    to_dev(A->d, A->h, A->bytes);
}

static void att_run(const att_case *c, lcx_rng *rng, const char *what)
{
    att_t Q, K, V, O;
    att_make(&Q, c->dq, c->B, c->Sq, c->H, c->D, c->pad, rng, 1.5, 0);
    att_make(&K, c->dk, c->B, c->Sk, c->Hkv, c->D, c->pad, rng, 1.5, 0);
    if (c->ramp_qk) {
        att_ramp(&Q, c->B, c->Sq, c->H, c->D, 0);
        att_ramp(&K, c->B, c->Sk, c->Hkv, c->D, 1);
    }
    att_make(&V, c->dv, c->B, c->Sk, c->Hkv, c->Dv, c->pad, rng, 1.0, 0);
    att_make(&O, c->dout, c->B, c->Sq, c->H, c->Dv, c->pad, rng, 1.0, 1);
    if (c->plant_key >= 0) {
        const size_t o = (size_t)(c->plant_key * V.t.stride[1]);
        const int64_t x = c->plant_key * c->Hkv * c->Dv;
        if (c->plant_mode != 2) {
            const int64_t col = c->plant_mode == 1 ? c->Dv - 1 : 1;
            lcx_store_elem(V.h, (int32_t)c->dv, o + (size_t)col, INFINITY);
            V.x[x + col] = INFINITY;
        }
        if (c->plant_mode != 1) {
            const int64_t col = c->plant_mode == 2 ? 0 : 2;
            lcx_store_elem(V.h, (int32_t)c->dv, o + (size_t)col, NAN);
            V.x[x + col] = NAN;
        }
        to_dev(V.d, V.h, V.bytes);
    }
    if (c->plant_q >= 0) {
        lcx_store_elem(Q.h, (int32_t)c->dq, (size_t)(c->plant_q * Q.t.stride[1]), NAN);
        Q.x[c->plant_q * c->H * c->D] = NAN;
        to_dev(Q.d, Q.h, Q.bytes);
    }
    if (c->plant_k >= 0) {
        lcx_store_elem(K.h, (int32_t)c->dk, (size_t)(c->plant_k * K.t.stride[1]) + 3, NAN);
        K.x[c->plant_k * c->Hkv * c->D + 3] = NAN;
        to_dev(K.d, K.h, K.bytes);
    }
    lcx_attention_params p;
    lcx_attention_params_default(&p);
    p.causal = c->causal;
    p.window_left = c->window;
    p.softcap = c->softcap;
    p.scale = c->scale;
    p.cu_seqlens_q = c->cuq;
    p.cu_seqlens_k = c->cuk;
    p.n_seqs = c->nseq;
    p.pv_16bit = c->pv16;
    const size_t nl = (size_t)(c->B * c->H * c->Sq);
    float *lse_c = malloc(sizeof(float) * (nl + 1)), *lse_g = malloc(sizeof(float) * (nl + 1)),
          *lse_g2 = malloc(sizeof(float) * (nl + 1));
    float *dlse = dev_alloc(sizeof(float) * (nl + 1));
    for (size_t i = 0; i <= nl; i++)
        lse_c[i] = 12345.0f;
    to_dev(dlse, lse_c, sizeof(float) * (nl + 1));
    /* CPU scalar on the host copies */
    if (lcx_attention_forward(cpu, &p, &Q.t, &K.t, &V.t, &O.t, lse_c) != LCX_OK)
        lcx_fail_msg("%s: cpu: %s", what, lcx_last_error());
    /* CUDA on the device copies, twice */
    const lcx_tensor q = att_dev(&Q), k = att_dev(&K), v = att_dev(&V), o = att_dev(&O);
    unsigned char *g1 = malloc(O.bytes), *g2 = malloc(O.bytes);
    for (int rep = 0; rep < 2; rep++) {
        if (lcx_attention_forward(gpu, &p, &q, &k, &v, &o, dlse) != LCX_OK)
            lcx_fail_msg("%s: cuda: %s", what, lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(rep ? g2 : g1, O.d, O.bytes);
        to_host(rep ? lse_g2 : lse_g, dlse, sizeof(float) * (nl + 1));
    }
    lcx_expect_bytes_equal(g2, g1, O.bytes, "cuda attention run-to-run");
    lcx_expect_bytes_equal(lse_g2, lse_g, sizeof(float) * (nl + 1), "cuda attention lse run-to-run");
    assert_true(lse_g[nl] == 12345.0f && lse_c[nl] == 12345.0f);
    unsigned char *mask = att_mask(&O);
    for (size_t i = 0; i < O.bytes; i++)
        if (!mask[i] && (g1[i] != 0xCD || ((unsigned char *)O.h)[i] != 0xCD))
            lcx_fail_msg("%s: output byte %zu outside the view was written", what, i);
    att_check(c, &Q, &K, &V, &O, O.h, lse_c, &p, what, "cpu scalar");
    att_check(c, &Q, &K, &V, &O, g1, lse_g, &p, what, "cuda");
    free(mask);
    free(g1);
    free(g2);
    free(lse_c);
    free(lse_g);
    free(lse_g2);
    lcx_cuda_free(gpu->cuda, dlse);
    att_free(&Q);
    att_free(&K);
    att_free(&V);
    att_free(&O);
}

static void test_cuda_attention_shapes(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 21);
    /* head dims (and odd ones: q/k rows not a multiple of 4, dv != d) */
    const int64_t dims[8][2] = {{64, 64}, {80, 80}, {96, 96}, {128, 128}, {256, 256}, {30, 20}, {512, 512}, {40, 200}};
    for (int x = 0; x < 8; x++) {
        att_case c = att_base();
        c.D = dims[x][0];
        c.Dv = dims[x][1];
        c.Sq = c.Sk = x == 6 ? 21 : 33;
        c.causal = x & 1;
        att_run(&c, &rng, "cuda attention head dims");
    }
    /* seq 1, tile sizes +-1 (32 keys and 32 / 8 rows per block on the GPU,
     * 64 on the CPU), seq_q > seq_k with causal (rows that see no key) */
    const int64_t seqs[13][2] = {{63, 63}, {64, 64}, {65, 65}, {1, 1},  {1, 200}, {40, 9},  {31, 31},
                                 {32, 32}, {33, 33}, {7, 33}, {8, 31}, {9, 65}, {100, 3}};
    for (int x = 0; x < 13; x++)
        for (int causal = 0; causal < 2; causal++) {
            att_case c = att_base();
            c.Sq = seqs[x][0];
            c.Sk = seqs[x][1];
            c.causal = causal;
            c.Dv = 48;
            att_run(&c, &rng, "cuda attention seq lengths");
        }
    /* GQA and MQA, odd head counts, batches, custom scale, softcap, window;
     * a group wider than a block's rows */
    const int64_t hh[6][2] = {{6, 3}, {8, 1}, {5, 5}, {12, 4}, {64, 1}, {7, 1}};
    for (int x = 0; x < 6; x++) {
        att_case c = att_base();
        c.B = 2;
        c.H = hh[x][0];
        c.Hkv = hh[x][1];
        c.Sq = x == 4 ? 5 : 37;
        c.Sk = 70;
        c.causal = 1;
        c.scale = x == 1 ? 0.3 : 0;
        c.softcap = x == 2 || x == 5 ? 5.0 : 0;
        c.window = x == 3 ? 10 : -1;
        att_run(&c, &rng, "cuda attention heads");
    }
    const int wins[8] = {0, 1, 31, 32, 33, 63, 64, 149};
    for (int x = 0; x < 8; x++) {
        att_case c = att_base();
        c.Sq = c.Sk = 150;
        c.causal = 1;
        c.window = wins[x];
        att_run(&c, &rng, "cuda attention window edges");
    }
}

static void test_cuda_attention_dtypes_varlen_decode(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 22);
    const lcx_dtype combos[6][4] = {{LCX_F32, LCX_BF16, LCX_BF16, LCX_F32}, {LCX_BF16, LCX_BF16, LCX_BF16, LCX_BF16},
                                    {LCX_F16, LCX_F16, LCX_F16, LCX_F16},   {LCX_F32, LCX_F16, LCX_BF16, LCX_BF16},
                                    {LCX_BF16, LCX_F32, LCX_F16, LCX_F16},  {LCX_F16, LCX_BF16, LCX_F32, LCX_F32}};
    for (int x = 0; x < 6; x++) {
        att_case c = att_base();
        c.dq = combos[x][0];
        c.dk = combos[x][1];
        c.dv = combos[x][2];
        c.dout = combos[x][3];
        c.pad = 1;
        c.B = 2;
        c.Sq = 19;
        c.Sk = 80;
        c.causal = x & 1;
        att_run(&c, &rng, "cuda attention dtypes and strided views");
    }
    /* varlen: different lengths, a sequence without queries and one without keys */
    const int64_t cuq[6] = {0, 5, 5, 40, 41, 44}, cuk[6] = {0, 9, 20, 55, 130, 130};
    for (int causal = 0; causal < 2; causal++)
        for (int pad = 0; pad < 2; pad++) {
            att_case c = att_base();
            c.Sq = 44;
            c.Sk = 130;
            c.cuq = cuq;
            c.cuk = cuk;
            c.nseq = 5;
            c.causal = causal;
            c.window = causal && pad ? 7 : -1;
            c.pad = pad;
            c.H = 6;
            c.Hkv = 2;
            att_run(&c, &rng, "cuda attention varlen");
        }
    /* decode: split over chunks of 256 keys (more than 512 keys, at most 16
     * queries), the edges of the split rule, window, MQA, 16-bit caches */
    const struct {
        int64_t B, Sq, Sk, H, Hkv, D;
        lcx_dtype dk, dv;
        int causal, window, pad;
    } dec[10] = {
        {1, 1, 5000, 8, 2, 64, LCX_BF16, LCX_BF16, 0, -1, 0},  {1, 3, 5077, 8, 2, 64, LCX_BF16, LCX_BF16, 1, -1, 0},
        {1, 1, 3000, 8, 2, 128, LCX_BF16, LCX_BF16, 1, -1, 0}, {2, 1, 1100, 6, 2, 96, LCX_BF16, LCX_BF16, 1, -1, 1},
        {1, 16, 2100, 4, 2, 64, LCX_F16, LCX_F16, 1, -1, 0},   {1, 17, 2100, 4, 2, 64, LCX_F32, LCX_F32, 1, -1, 0},
        {1, 1, 513, 32, 1, 128, LCX_BF16, LCX_F16, 1, -1, 0},  {1, 1, 512, 8, 2, 80, LCX_F16, LCX_F16, 0, -1, 1},
        {1, 2, 1800, 4, 1, 128, LCX_BF16, LCX_BF16, 1, 700, 0}, {1, 3, 1029, 8, 4, 256, LCX_BF16, LCX_BF16, 1, -1, 0},
    };
    for (int x = 0; x < 10; x++) {
        att_case c = att_base();
        c.B = dec[x].B;
        c.Sq = dec[x].Sq;
        c.Sk = dec[x].Sk;
        c.H = dec[x].H;
        c.Hkv = dec[x].Hkv;
        c.D = c.Dv = dec[x].D;
        c.dk = dec[x].dk;
        c.dv = dec[x].dv;
        c.causal = dec[x].causal;
        c.window = dec[x].window;
        c.pad = dec[x].pad;
        att_run(&c, &rng, "cuda attention decode");
    }
}

/* merge: two halves of the keys merged on the device equal the whole; the
 * device merge equals the CPU merge on the same inputs (mixed dtypes, in
 * place); both -inf gives 0 / -inf */
static void test_cuda_attention_merge(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 23);
    const int64_t B = 2, Sq = 7, Sk = 90, H = 4, Hkv = 2, D = 32;
    att_t Q, K, V, OA, OB, OW, OF, OM;
    att_make(&Q, LCX_F32, B, Sq, H, D, 0, &rng, 1.5, 0);
    att_make(&K, LCX_F32, B, Sk, Hkv, D, 0, &rng, 1.5, 0);
    att_make(&V, LCX_F32, B, Sk, Hkv, D, 0, &rng, 1.0, 0);
    att_make(&OA, LCX_F32, B, Sq, H, D, 0, &rng, 1.0, 1);
    att_make(&OB, LCX_F32, B, Sq, H, D, 0, &rng, 1.0, 1);
    att_make(&OW, LCX_F32, B, Sq, H, D, 0, &rng, 1.0, 1);
    att_make(&OF, LCX_F32, B, Sq, H, D, 0, &rng, 1.0, 1);
    att_make(&OM, LCX_BF16, B, Sq, H, D, 1, &rng, 1.0, 1);
    const size_t ln = (size_t)(B * H * Sq), on = (size_t)(B * Sq * H * D);
    float *dl = dev_alloc(sizeof(float) * 4 * ln);
    float *la = dl, *lb = dl + ln, *lw = dl + 2 * ln, *lm = dl + 3 * ln;
    lcx_tensor q = att_dev(&Q), k = att_dev(&K), v = att_dev(&V), ta = att_dev(&OA), tb = att_dev(&OB),
               tw = att_dev(&OW), tf = att_dev(&OF), tm;
    lcx_tensor k1 = k, k2 = k, v1 = v, v2 = v;
    k1.shape[1] = v1.shape[1] = 40;
    k2.shape[1] = v2.shape[1] = Sk - 40;
    k2.data = (float *)k.data + 40 * k.stride[1];
    v2.data = (float *)v.data + 40 * v.stride[1];
    assert_int_equal(lcx_attention_forward(gpu, NULL, &q, &k1, &v1, &ta, la), LCX_OK);
    assert_int_equal(lcx_attention_forward(gpu, NULL, &q, &k2, &v2, &tb, lb), LCX_OK);
    assert_int_equal(lcx_attention_forward(gpu, NULL, &q, &k, &v, &tw, lw), LCX_OK);
    assert_int_equal(lcx_attention_merge(gpu, &ta, la, &tb, lb, &tf, lm), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    float *hl = malloc(sizeof(float) * 4 * ln), *hw = malloc(sizeof(float) * on), *hm = malloc(sizeof(float) * on);
    to_host(hl, dl, sizeof(float) * 4 * ln);
    to_host(hw, OW.d, sizeof(float) * on);
    to_host(hm, OF.d, sizeof(float) * on);
    for (size_t i = 0; i < on; i++)
        if (!(fabsf(hm[i] - hw[i]) <= 2e-5f))
            lcx_fail_msg("cuda merge %zu: %g vs whole %g", i, (double)hm[i], (double)hw[i]);
    for (size_t i = 0; i < ln; i++)
        if (!(fabsf(hl[3 * ln + i] - hl[2 * ln + i]) <= 2e-5f * (1 + fabsf(hl[2 * ln + i]))))
            lcx_fail_msg("cuda merge lse %zu: %g vs %g", i, (double)hl[3 * ln + i], (double)hl[2 * ln + i]);
    /* the same partial results merged on the CPU and on the device into a
     * padded bf16 view (poisoned padding stays), with some -inf and one
     * pair of -inf rows */
    hl[0] = -INFINITY;
    hl[ln + 1] = -INFINITY;
    hl[2] = hl[ln + 2] = -INFINITY;
    to_dev(dl, hl, sizeof(float) * 2 * ln);
    float *ha = malloc(sizeof(float) * on), *hb = malloc(sizeof(float) * on), *hlm = malloc(sizeof(float) * ln);
    to_host(ha, OA.d, sizeof(float) * on);
    to_host(hb, OB.d, sizeof(float) * on);
    lcx_tensor ca = OA.t, cb = OB.t;
    ca.data = ha;
    cb.data = hb;
    memset(OM.h, 0xCD, OM.bytes);
    assert_int_equal(lcx_attention_merge(cpu, &ca, hl, &cb, hl + ln, &OM.t, hlm), LCX_OK);
    tm = att_dev(&OM);
    unsigned char *pz = malloc(OM.bytes);
    memset(pz, 0xCD, OM.bytes);
    to_dev(OM.d, pz, OM.bytes);
    assert_int_equal(lcx_attention_merge(gpu, &ta, la, &tb, lb, &tm, lm), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    unsigned char *gm = malloc(OM.bytes);
    float *glm = malloc(sizeof(float) * ln);
    to_host(gm, OM.d, OM.bytes);
    to_host(glm, lm, sizeof(float) * ln);
    unsigned char *mask = att_mask(&OM);
    for (size_t i = 0; i < OM.bytes; i++)
        if (!mask[i] && gm[i] != 0xCD)
            lcx_fail_msg("cuda merge wrote outside the view (byte %zu)", i);
    free(mask);
    for (size_t i = 0; i < on; i++) {
        const int64_t d = (int64_t)i % D, hh = (int64_t)i / D % H, s = (int64_t)i / (D * H) % Sq, b = (int64_t)i / (D * H * Sq);
        const size_t o = (size_t)(b * OM.t.stride[0] + s * OM.t.stride[1] + hh * OM.t.stride[2] + d);
        const float g = lcx_load_elem(gm, LCX_BF16, o), c = lcx_load_elem(OM.h, LCX_BF16, o);
        /* one bf16 rounding of nearly equal f32 values: at most an ulp apart */
        if (!(fabsf(g - c) <= 0x1p-7f * fabsf(c) + 2e-5f))
            lcx_fail_msg("cuda merge vs cpu %zu: %g vs %g", i, (double)g, (double)c);
    }
    for (size_t i = 0; i < ln; i++) {
        const int both_inf = isinf(hlm[i]) && isinf(glm[i]) && hlm[i] < 0 && glm[i] < 0;
        if (!both_inf && !(fabsf(glm[i] - hlm[i]) <= 2e-5f * (1 + fabsf(hlm[i]))))
            lcx_fail_msg("cuda merge lse vs cpu %zu: %g vs %g", i, (double)glm[i], (double)hlm[i]);
    }
    assert_true(isinf(glm[2]) && glm[2] < 0);
    for (int64_t d = 0; d < D; d++) /* row (b 0, s 2, h 0) has lse index 2 */
        assert_true(lcx_load_elem(gm, LCX_BF16, (size_t)(2 * OM.t.stride[1] + d)) == 0.0f);
    /* in place into out_a / lse_a */
    assert_int_equal(lcx_attention_merge(gpu, &ta, la, &tb, lb, &ta, la), LCX_OK);
    assert_int_equal(lcx_attention_merge(cpu, &ca, hl, &cb, hl + ln, &ca, hl), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    float *ga = malloc(sizeof(float) * on), *gla = malloc(sizeof(float) * ln);
    to_host(ga, OA.d, sizeof(float) * on);
    to_host(gla, la, sizeof(float) * ln);
    for (size_t i = 0; i < on; i++)
        if (!(fabsf(ga[i] - ha[i]) <= 2e-5f))
            lcx_fail_msg("cuda in-place merge %zu: %g vs %g", i, (double)ga[i], (double)ha[i]);
    for (size_t i = 0; i < ln; i++)
        if (!(gla[i] == hl[i] || fabsf(gla[i] - hl[i]) <= 2e-5f * (1 + fabsf(hl[i]))))
            lcx_fail_msg("cuda in-place merge lse %zu: %g vs %g", i, (double)gla[i], (double)hl[i]);
    free(ga);
    free(gla);
    free(gm);
    free(glm);
    free(pz);
    free(ha);
    free(hb);
    free(hlm);
    free(hl);
    free(hw);
    free(hm);
    lcx_cuda_free(gpu->cuda, dl);
    att_free(&Q);
    att_free(&K);
    att_free(&V);
    att_free(&OA);
    att_free(&OB);
    att_free(&OW);
    att_free(&OF);
    att_free(&OM);
}

/* bad input: LCX_E_INVALID with the CPU's message, nothing written */
static void test_cuda_attention_bad_input(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 24);
    att_t Q, K, V, O;
    att_make(&Q, LCX_F32, 1, 9, 4, 32, 0, &rng, 1.0, 0);
    att_make(&K, LCX_F32, 1, 12, 2, 32, 0, &rng, 1.0, 0);
    att_make(&V, LCX_F32, 1, 12, 2, 32, 0, &rng, 1.0, 0);
    att_make(&O, LCX_F32, 1, 9, 4, 32, 0, &rng, 1.0, 1);
    const size_t nl = 4 * 9;
    float *dlse = dev_alloc(sizeof(float) * nl), *hl = malloc(sizeof(float) * nl);
    for (size_t i = 0; i < nl; i++)
        hl[i] = 777.0f;
    to_dev(dlse, hl, sizeof(float) * nl);
    const lcx_tensor q = att_dev(&Q), k = att_dev(&K), v = att_dev(&V), o = att_dev(&O);
    const int64_t cuq[3] = {0, 4, 9}, cuk_bad[3] = {0, 7, 5}, cuk_end[3] = {0, 5, 11};
    for (int x = 0; x < 10; x++) {
        lcx_attention_params p;
        lcx_attention_params_default(&p);
        lcx_tensor qq = q, kk = k, vv = v, oo = o, hq = Q.t, hk = K.t, hv = V.t, ho = O.t;
        float *lse = dlse, *lse_h = hl;
        switch (x) {
        case 0: p.window_left = 3; break;           /* window without causal */
        case 1: p.causal = 2; break;
        case 2: qq.shape[2] = hq.shape[2] = 3; oo.shape[2] = ho.shape[2] = 3; break; /* 3 % 2 */
        case 3: kk.shape[3] = hk.shape[3] = 16; break;
        case 4: oo.shape[3] = ho.shape[3] = 16; break;
        case 5: p.scale = -1; break;
        case 6: p.softcap = NAN; break;
        case 7: p.cu_seqlens_q = cuq; p.cu_seqlens_k = cuk_bad; p.n_seqs = 2; break;
        case 8: p.cu_seqlens_q = cuq; p.cu_seqlens_k = cuk_end; p.n_seqs = 2; break;
        default: oo = qq; ho = hq; break;          /* out aliases q */
        }
        assert_int_equal(lcx_attention_forward(cpu, &p, &hq, &hk, &hv, &ho, lse_h), LCX_E_INVALID);
        char want[256];
        snprintf(want, sizeof want, "%s", lcx_last_error());
        assert_int_equal(lcx_attention_forward(gpu, &p, &qq, &kk, &vv, &oo, lse), LCX_E_INVALID);
        assert_string_equal(lcx_last_error(), want);
    }
    /* merge: a NULL lse, shapes that differ, a partly overlapping lse */
    assert_int_equal(lcx_attention_merge(gpu, &o, dlse, &o, NULL, &o, dlse), LCX_E_INVALID);
    lcx_tensor o2 = o;
    o2.shape[1] = 8;
    assert_int_equal(lcx_attention_merge(gpu, &o, dlse, &o2, dlse, &o, dlse), LCX_E_INVALID);
    assert_int_equal(lcx_attention_merge(gpu, &o, dlse, &o, dlse, &o, dlse + 1), LCX_E_INVALID);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    unsigned char *g = malloc(O.bytes);
    float *gl = malloc(sizeof(float) * nl);
    to_host(g, O.d, O.bytes);
    to_host(gl, dlse, sizeof(float) * nl);
    unsigned char *pz = malloc(O.bytes);
    memset(pz, 0xCD, O.bytes);
    lcx_expect_bytes_equal(g, pz, O.bytes, "cuda attention wrote on bad input");
    lcx_expect_bytes_equal(gl, hl, sizeof(float) * nl, "cuda attention wrote lse on bad input");
    if (gpu->device == LCX_DEVICE_CUDA)
        assert_non_null(lcx_context_kernel_name(gpu, "attn_qk"));
    free(g);
    free(gl);
    free(pz);
    free(hl);
    lcx_cuda_free(gpu->cuda, dlse);
    att_free(&Q);
    att_free(&K);
    att_free(&V);
    att_free(&O);
}

/* S2-Attn: the CUDA result against the CPU scalar result on the same inputs
 * (the CPU suite checks that one against LongLoRA's golden outputs and a
 * literal re-enactment), f32 outputs, the attention tolerance */
/* a second CUDA context created with LONGCTX_CUDA_WGMMA=1 (the caller's
 * value of the variable restored after); NULL, after a note, where its
 * kernel for `op` is not `want` (no compute capability 9.0 device running a
 * build with sm_90a: the wgmma kernels are not used there) */
static lcx_context *wgmma_context(const char *op, const char *want, const char *what)
{
    const char *old = getenv("LONGCTX_CUDA_WGMMA");
    char keep[16] = "";
    if (old)
        snprintf(keep, sizeof keep, "%s", old);
    setenv("LONGCTX_CUDA_WGMMA", "1", 1);
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    lcx_context *wg = NULL;
    const lcx_status st = lcx_context_create(&o, &wg);
    if (old)
        setenv("LONGCTX_CUDA_WGMMA", keep, 1);
    else
        unsetenv("LONGCTX_CUDA_WGMMA");
    if (st != LCX_OK)
        lcx_fail_msg("wgmma context: %s", lcx_last_error());
    const char *name = lcx_context_kernel_name(wg, op);
    assert_non_null(name);
    if (strcmp(name, want) != 0) {
        printf("%s: not available here (a compute capability 9.0 device running a build with "
               "-Dgpu_sm=...,90a); skipped\n", what);
        lcx_context_destroy(wg);
        return NULL;
    }
    return wg;
}

/* S2-Attn against the CPU: every mode, f32 and 16-bit */
static void att_s2_suite(lcx_rng *rngp)
{
    lcx_rng rng = *rngp;
    const struct {
        int64_t B, N, H, Hkv, D, g;
        lcx_s2_mode mode;
        int32_t h0, shift, exact;
        lcx_dtype dt;
    } cs[9] = {
        {1, 64, 4, 4, 64, 16, LCX_S2_ROLL, -1, 1, 0, LCX_F32},      {2, 96, 6, 2, 64, 24, LCX_S2_SEGMENTS, -1, 1, 0, LCX_F32},
        {1, 70, 4, 2, 80, 16, LCX_S2_RAGGED, -1, 1, 0, LCX_BF16},    {1, 45, 4, 1, 32, 9, LCX_S2_ROLL, -1, 1, 1, LCX_F32},
        {1, 128, 8, 2, 128, 32, LCX_S2_ROLL, 3, -1, 0, LCX_F16},     {1, 33, 5, 5, 64, 33, LCX_S2_SEGMENTS, 0, 1, 1, LCX_F32},
        {1, 40, 4, 4, 64, 1, LCX_S2_ROLL, -1, 1, 1, LCX_F32},        {1, 100, 4, 2, 64, 30, LCX_S2_RAGGED, 4, 1, 0, LCX_F32},
        {1, 96, 16, 1, 64, 48, LCX_S2_ROLL, -1, 1, 0, LCX_BF16},
    };
    for (int x = 0; x < 9; x++) {
        att_t Q, K, V, O;
        att_make(&Q, cs[x].dt, cs[x].B, cs[x].N, cs[x].H, cs[x].D, x & 1, &rng, 1.5, 0);
        att_make(&K, cs[x].dt, cs[x].B, cs[x].N, cs[x].Hkv, cs[x].D, x & 1, &rng, 1.5, 0);
        att_make(&V, cs[x].dt, cs[x].B, cs[x].N, cs[x].Hkv, cs[x].D, x & 1, &rng, 1.0, 0);
        att_make(&O, LCX_F32, cs[x].B, cs[x].N, cs[x].H, cs[x].D, x & 1, &rng, 1.0, 1);
        lcx_s2_params p;
        lcx_s2_params_default(&p);
        p.group_size = cs[x].g;
        p.mode = cs[x].mode;
        p.shifted_head_start = cs[x].h0;
        p.shift = cs[x].shift;
        p.exact_odd_group = cs[x].exact;
        const size_t nl = (size_t)(cs[x].B * cs[x].H * cs[x].N);
        float *lc = malloc(sizeof(float) * nl), *lg = malloc(sizeof(float) * nl), *dl = dev_alloc(sizeof(float) * nl);
        if (lcx_attention_s2_forward(cpu, &p, &Q.t, &K.t, &V.t, &O.t, lc) != LCX_OK)
            lcx_fail_msg("s2 %d: cpu: %s", x, lcx_last_error());
        const lcx_tensor q = att_dev(&Q), k = att_dev(&K), v = att_dev(&V), o = att_dev(&O);
        if (lcx_attention_s2_forward(gpu, &p, &q, &k, &v, &o, dl) != LCX_OK)
            lcx_fail_msg("s2 %d: cuda: %s", x, lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        unsigned char *g = malloc(O.bytes);
        to_host(g, O.d, O.bytes);
        to_host(lg, dl, sizeof(float) * nl);
        double vmax = 0;
        for (int64_t f = 0; f < cs[x].B * cs[x].N * cs[x].Hkv * cs[x].D; f++)
            vmax = fmax(vmax, fabs(V.x[f]));
        unsigned char *mask = att_mask(&O);
        for (size_t i = 0; i < O.bytes; i += 4) {
            if (!mask[i]) {
                if (g[i] != 0xCD || g[i + 1] != 0xCD || g[i + 2] != 0xCD || g[i + 3] != 0xCD)
                    lcx_fail_msg("s2 %d: output byte %zu outside the view was written", x, i);
                continue;
            }
            const float a = lcx_load_elem(g, LCX_F32, i / 4), c = lcx_load_elem(O.h, LCX_F32, i / 4);
            if (!(fabs((double)a - c) <= 2e-4 * vmax))
                lcx_fail_msg("s2 %d: element %zu: %.7g vs cpu %.7g", x, i / 4, (double)a, (double)c);
        }
        for (size_t i = 0; i < nl; i++)
            if (!(fabs((double)lg[i] - lc[i]) <= 2e-4 * (1 + fabs((double)lc[i]))))
                lcx_fail_msg("s2 %d: lse %zu: %.7g vs cpu %.7g", x, i, (double)lg[i], (double)lc[i]);
        free(mask);
        free(g);
        free(lc);
        free(lg);
        lcx_cuda_free(gpu->cuda, dl);
        att_free(&Q);
        att_free(&K);
        att_free(&V);
        att_free(&O);
    }
    *rngp = rng;
}

static void test_cuda_attention_s2(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 25);
    att_s2_suite(&rng);
}

/* The tensor-core forward (q, k, v of one 16-bit dtype, d = dv of 64, 96 or
 * 128, compute capability >= 8): shapes around its 64-row, 64-key tiles,
 * both dtypes and head dims, 16-byte rows (cp.async) and padded ones
 * (element copies), causal/window/softcap/scale/GQA/MQA/varlen, split-KV
 * decode, and inf/NaN planted in V at a key that some rows of a tile see and
 * others do not (a zero weight must not turn them into NaN). Same oracle
 * and tolerance as every attention case: P's split into two 16-bit halves
 * keeps the f32-accumulation accuracy the bound assumes. */
/* scores past the float range (scale q.k overflows to +inf): every row and
 * its lse are NaN, as on the CPU (inf - inf in the softmax; the double
 * oracle has no overflow, so the CPU is the reference here), on the
 * tensor-core kernel (prefill, key-split decode, softcap off) and the SIMT
 * one. Rows see 64+ keys of random sign: each has a positive score */
static void att_overflow(lcx_rng *rng)
{
    const struct {
        int64_t Sq, Sk, D;
        lcx_dtype dt;
    } oc[3] = {{70, 70, 64, LCX_BF16}, {1, 300, 128, LCX_F16}, {40, 64, 64, LCX_F32}};
    for (int x = 0; x < 3; x++) {
        att_t Q, K, V, O;
        att_make(&Q, oc[x].dt, 1, oc[x].Sq, 4, oc[x].D, 0, rng, 1.5, 0);
        att_make(&K, oc[x].dt, 1, oc[x].Sk, 2, oc[x].D, 0, rng, 1.5, 0);
        att_make(&V, oc[x].dt, 1, oc[x].Sk, 2, oc[x].D, 0, rng, 1.0, 0);
        att_make(&O, oc[x].dt, 1, oc[x].Sq, 4, oc[x].D, 0, rng, 1.0, 1);
        lcx_attention_params p;
        lcx_attention_params_default(&p);
        p.scale = 1e38;
        const size_t nl = (size_t)(4 * oc[x].Sq);
        float *lse_c = malloc(sizeof(float) * nl), *lse_g = malloc(sizeof(float) * nl);
        float *dlse = dev_alloc(sizeof(float) * nl);
        assert_int_equal(lcx_attention_forward(cpu, &p, &Q.t, &K.t, &V.t, &O.t, lse_c), LCX_OK);
        const lcx_tensor q = att_dev(&Q), k = att_dev(&K), v = att_dev(&V), o = att_dev(&O);
        assert_int_equal(lcx_attention_forward(gpu, &p, &q, &k, &v, &o, dlse), LCX_OK);
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        unsigned char *g = malloc(O.bytes);
        to_host(g, O.d, O.bytes);
        to_host(lse_g, dlse, sizeof(float) * nl);
        for (size_t i = 0; i < nl * (size_t)oc[x].D; i++) {
            const double c = lcx_load_elem(O.h, (int32_t)oc[x].dt, i), d = lcx_load_elem(g, (int32_t)oc[x].dt, i);
            if (!isnan(c) || !isnan(d))
                lcx_fail_msg("attention overflow case %d: element %zu: cpu %g, cuda %g, want NaN", x, i, c, d);
        }
        for (size_t i = 0; i < nl; i++)
            if (!isnan(lse_c[i]) || !isnan(lse_g[i]))
                lcx_fail_msg("attention overflow case %d: lse %zu: cpu %g, cuda %g, want NaN", x, i,
                             (double)lse_c[i], (double)lse_g[i]);
        free(g);
        free(lse_c);
        free(lse_g);
        lcx_cuda_free(gpu->cuda, dlse);
        att_free(&Q);
        att_free(&K);
        att_free(&V);
        att_free(&O);
    }
}

/* the tensor-core cases: every shape class, feature and edge of the
 * mma.sync kernel (and of the wgmma one, on a context that has it) */
static void att_tc_suite(lcx_rng *rngp)
{
    lcx_rng rng = *rngp;
    const int64_t dims[3] = {64, 96, 128};
    const int64_t seqs[7][2] = {{1, 1}, {63, 63}, {64, 64}, {65, 65}, {130, 200}, {200, 130}, {7, 300}};
    for (int di = 0; di < 3; di++)
        for (int x = 0; x < 7; x++) {
            att_case c = att_base();
            c.dq = c.dk = c.dv = (x + di) & 1 ? LCX_F16 : LCX_BF16;
            c.dout = x % 3 == 0 ? LCX_F32 : c.dq;
            c.D = c.Dv = dims[di];
            c.H = 8;
            c.Hkv = 2;
            c.Sq = seqs[x][0];
            c.Sk = seqs[x][1];
            c.causal = (x + di) % 3 != 0;
            c.pad = x == 3 || x == 5;
            att_run(&c, &rng, "cuda attention tensor cores: shapes");
        }
    /* features on bf16, d 128 */
    for (int x = 0; x < 9; x++) {
        att_case c = att_base();
        c.dq = c.dk = c.dv = c.dout = LCX_BF16;
        c.D = c.Dv = 128;
        c.Sq = c.Sk = 150;
        c.causal = 1;
        const int wins[4] = {0, 63, 64, 100};
        if (x < 4)
            c.window = wins[x];
        if (x == 4)
            c.softcap = 4.0;
        if (x == 5)
            c.scale = 0.4;
        if (x == 6) {
            c.H = 7;
            c.Hkv = 1;
            c.B = 2;
            c.Sq = 33;
        }
        if (x == 7) { /* a GQA group wider than a block's 64 rows */
            c.H = 96;
            c.Hkv = 1;
            c.Sq = 3;
        }
        if (x == 8) {
            c.causal = 0;
            c.B = 3;
            c.Sq = 70;
            c.pad = 1;
        }
        att_run(&c, &rng, "cuda attention tensor cores: features");
    }
    const int64_t cuq[6] = {0, 5, 5, 40, 41, 110}, cuk[6] = {0, 9, 20, 55, 130, 230};
    for (int causal = 0; causal < 2; causal++) {
        att_case c = att_base();
        c.dq = c.dk = c.dv = causal ? LCX_F16 : LCX_BF16;
        c.Sq = 110;
        c.Sk = 230;
        c.cuq = cuq;
        c.cuk = cuk;
        c.nseq = 5;
        c.causal = causal;
        c.H = 8;
        c.Hkv = 2;
        c.D = c.Dv = causal ? 96 : 64;
        att_run(&c, &rng, "cuda attention tensor cores: varlen");
    }
    /* decode (split-KV over 256-key chunks) */
    const struct {
        int64_t Sq, Sk, H, Hkv, D;
        lcx_dtype dt;
        int window;
    } dec[5] = {{1, 3000, 8, 2, 128, LCX_BF16, -1}, {3, 1100, 8, 2, 64, LCX_F16, -1}, {16, 2100, 4, 1, 96, LCX_BF16, 700},
                {1, 513, 32, 1, 128, LCX_F16, -1},  {2, 1029, 8, 8, 128, LCX_BF16, -1}};
    for (int x = 0; x < 5; x++) {
        att_case c = att_base();
        c.dq = c.dk = c.dv = c.dout = dec[x].dt;
        c.Sq = dec[x].Sq;
        c.Sk = dec[x].Sk;
        c.H = dec[x].H;
        c.Hkv = dec[x].Hkv;
        c.D = c.Dv = dec[x].D;
        c.causal = 1;
        c.window = dec[x].window;
        c.pad = x == 4;
        att_run(&c, &rng, "cuda attention tensor cores: decode");
    }
    /* inf and NaN in V at a key some rows of a tile see and others do not:
     * the last key under causal masking (one row sees it), a key inside a
     * window band, the last key of a split decode; inf alone in the last
     * column (the upper half of a packed pair) and NaN alone in column 0 */
    const struct {
        int64_t Sq, Sk, D, key;
        lcx_dtype dt;
        int window, pad, mode;
    } pl[7] = {{100, 100, 64, 99, LCX_BF16, -1, 0, 0},  {100, 100, 128, 40, LCX_F16, 10, 1, 0},
               {2, 1000, 128, 999, LCX_BF16, -1, 0, 0}, {2, 1000, 96, 998, LCX_F16, -1, 1, 0},
               {100, 100, 128, 99, LCX_BF16, -1, 0, 1}, {100, 100, 64, 70, LCX_F16, -1, 1, 1},
               {100, 100, 96, 99, LCX_BF16, -1, 0, 2}};
    for (int x = 0; x < 7; x++) {
        att_case c = att_base();
        c.dq = c.dk = c.dv = pl[x].dt;
        c.dout = x & 1 ? LCX_F32 : pl[x].dt;
        c.Sq = pl[x].Sq;
        c.Sk = pl[x].Sk;
        c.D = c.Dv = pl[x].D;
        c.H = 4;
        c.Hkv = 1;
        c.causal = 1;
        c.window = pl[x].window;
        c.pad = pl[x].pad;
        c.plant_key = pl[x].key;
        c.plant_mode = pl[x].mode;
        att_run(&c, &rng, "cuda attention tensor cores: inf/NaN in V");
    }
    /* pv_16bit (P rounded to 16 bits for P V): prefill with GQA, causal and
     * not, padded rows, varlen, a split decode, inf/NaN in V */
    for (int x = 0; x < 6; x++) {
        att_case c = att_base();
        c.dq = c.dk = c.dv = x & 1 ? LCX_F16 : LCX_BF16;
        c.dout = x == 2 ? LCX_F32 : c.dq;
        c.D = c.Dv = x == 1 ? 64 : x == 3 ? 96 : 128;
        c.H = 8;
        c.Hkv = 2;
        c.Sq = c.Sk = 200;
        c.causal = x != 1;
        c.pad = x == 1;
        c.pv16 = 1;
        if (x == 3) {
            c.Sq = 110;
            c.Sk = 230;
            c.cuq = cuq;
            c.cuk = cuk;
            c.nseq = 5;
        }
        if (x == 4) {
            c.Sq = 1;
            c.Sk = 3000;
        }
        if (x == 5) {
            c.plant_key = 150;
            c.window = 60;
        }
        att_run(&c, &rng, "cuda attention tensor cores: pv_16bit");
    }
    /* pv_16bit is applied where the tensor-core kernel runs (the result
     * differs from the f32-level one) and ignored elsewhere (f32 q: the SIMT
     * kernel, bit-identical) */
    for (int x = 0; x < 2; x++) {
        const lcx_dtype dt = x ? LCX_F32 : LCX_BF16;
        att_t Q, K, V, O;
        att_make(&Q, dt, 1, 100, 4, 64, 0, &rng, 1.5, 0);
        att_make(&K, dt, 1, 100, 2, 64, 0, &rng, 1.5, 0);
        att_make(&V, dt, 1, 100, 2, 64, 0, &rng, 1.0, 0);
        att_make(&O, LCX_F32, 1, 100, 4, 64, 0, &rng, 1.0, 1);
        const lcx_tensor q = att_dev(&Q), k = att_dev(&K), v = att_dev(&V), o = att_dev(&O);
        unsigned char *r[2] = {malloc(O.bytes), malloc(O.bytes)};
        for (int f = 0; f < 2; f++) {
            lcx_attention_params p;
            lcx_attention_params_default(&p);
            p.causal = 1;
            p.pv_16bit = f;
            assert_int_equal(lcx_attention_forward(gpu, &p, &q, &k, &v, &o, NULL), LCX_OK);
            assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
            to_host(r[f], O.d, O.bytes);
        }
        const int tc = !x && lcx_cuda_attention_tc(gpu->cuda, 64, 1);
        if (tc != (memcmp(r[0], r[1], O.bytes) != 0))
            lcx_fail_msg("pv_16bit on %s q (tensor-core kernel: %d): outputs %s", lcx_dtype_name(dt), tc,
                         tc ? "identical" : "differ");
        free(r[0]);
        free(r[1]);
        att_free(&Q);
        att_free(&K);
        att_free(&V);
        att_free(&O);
    }
    /* NaN in a query row (every score of the row NaN: the row, and only it,
     * is NaN) and in a key some rows see (under causal masking and in a
     * window band): on the tensor-core kernel (bf16, f16) and the SIMT one
     * (f32, a split decode) */
    const struct {
        int64_t Sq, Sk, D, q, k;
        lcx_dtype dt;
        int window;
    } pn[6] = {{100, 100, 64, 37, -1, LCX_BF16, -1},
               {100, 100, 128, -1, 60, LCX_F16, -1},
               {130, 130, 96, 129, 5, LCX_BF16, 20},
               {70, 70, 64, 3, 50, LCX_F32, -1},
               {1, 1000, 128, 0, -1, LCX_BF16, -1},
               {2, 1000, 64, 1, 700, LCX_F32, -1}};
    for (int x = 0; x < 6; x++) {
        att_case c = att_causal(pn[x].dt, pn[x].Sq, pn[x].Sk, pn[x].D);
        c.H = 4;
        c.Hkv = 2;
        c.window = pn[x].window;
        c.plant_q = pn[x].q;
        c.plant_k = pn[x].k;
        att_run(&c, &rng, "cuda attention: NaN in q or k");
    }
    att_overflow(&rng);
    /* huge but finite scaled scores (scale 1e7, 1e9: the weight of a row's
     * largest score is 1, every other 0): exact, distinct scores on every
     * path (prefill, key-split decode, SIMT) */
    const struct {
        int64_t Sq, Sk, D;
        lcx_dtype dt;
        double scale;
    } hs[4] = {{70, 70, 64, LCX_F16, 1e7}, {70, 70, 64, LCX_BF16, 1e9}, {1, 300, 128, LCX_BF16, 1e9},
               {40, 40, 64, LCX_F32, 1e9}};
    for (int x = 0; x < 4; x++) {
        att_case c = att_causal(hs[x].dt, hs[x].Sq, hs[x].Sk, hs[x].D);
        c.scale = hs[x].scale;
        c.ramp_qk = 1;
        att_run(&c, &rng, "cuda attention: huge finite scores");
    }
    *rngp = rng;
}

static void test_cuda_attention_tensor_cores(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 26);
    att_tc_suite(&rng);
}

/* the tensor-core and S2 cases again on a context with the wgmma kernel
 * (prefill blocks of 128 rows at head dims 64 and 128 take it; the rest,
 * decode and head dim 96, stay on mma.sync there) */
static void test_cuda_attention_wgmma(void **state)
{
    (void)state;
    lcx_context *const wg = wgmma_context("attn_qk", "lcx_k_attention_wgmma__cuda", "cuda attention wgmma");
    if (!wg)
        skip();
    /* the default stays mma.sync */
    assert_string_equal(lcx_context_kernel_name(gpu, "attn_qk"), "lcx_k_attention__cuda");
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 28);
    lcx_context *const first = gpu;
    gpu = wg;
    att_tc_suite(&rng);
    att_s2_suite(&rng);
    gpu = first;
    lcx_context_destroy(wg);
}

/* LongLoRA's golden S2-Attn outputs (and full causal outputs) on the GPU:
 * f32 inputs as given (tolerance of the CPU golden test), and the same
 * values in bf16 (exact: they lie on a 1/64 grid) with the head dim
 * zero-padded from 16 to 64 so that the tensor-core kernel runs them (the
 * padded q/k columns add nothing to the scores, the padded v columns must
 * come out 0; tolerance 2e-4 max|v|, the attention bound) */
static void test_cuda_attention_golden(void **state)
{
    (void)state;
    lcx_json *gj = lcx_golden_load("s2attn.json");
    if (!gj)
        skip();
    const lcx_json *cfgs = lcx_json_get(gj, "configs");
    for (size_t ci = 0; ci < cfgs->n; ci++) {
        const lcx_json *c = &cfgs->items[ci];
        const char *name = lcx_json_get(c, "name")->str;
        const int64_t S = (int64_t)lcx_json_num(c, "seq_len"), H = (int64_t)lcx_json_num(c, "num_heads"),
                      D = (int64_t)lcx_json_num(c, "head_dim"), g = (int64_t)lcx_json_num(c, "group_size");
        const int roll = !strcmp(lcx_json_get(c, "semantics")->str, "roll");
        const size_t n = (size_t)(S * H * D);
        double *in[3], *want[2];
        const char *names[3] = {"q", "k", "v"}, *outs[2] = {"out", "full_causal_out"};
        for (int t = 0; t < 3; t++) {
            in[t] = malloc(sizeof(double) * n);
            lcx_json_nums(lcx_json_get(c, names[t]), in[t], n);
        }
        for (int t = 0; t < 2; t++) {
            want[t] = malloc(sizeof(double) * n);
            lcx_json_nums(lcx_json_get(c, outs[t]), want[t], n);
        }
        double vmax = 0;
        for (size_t i = 0; i < n; i++)
            vmax = fmax(vmax, fabs(in[2][i]));
        for (int variant = 0; variant < 2; variant++) {
            const lcx_dtype dt = variant ? LCX_BF16 : LCX_F32;
            const int64_t Dp = variant ? 64 : D;
            const size_t es = lcx_dtype_size(dt), np = (size_t)(S * H * Dp);
            void *h[4], *d[4];
            for (int t = 0; t < 4; t++) {
                h[t] = calloc(np, es);
                d[t] = dev_alloc(np * es);
            }
            for (int t = 0; t < 3; t++)
                for (size_t i = 0; i < n; i++) {
                    const size_t o = i / (size_t)D * (size_t)Dp + i % (size_t)D;
                    lcx_store_elem(h[t], (int32_t)dt, o, (float)in[t][i]);
                    assert_true(lcx_load_elem(h[t], (int32_t)dt, o) == in[t][i]); /* exact in bf16 */
                }
            memset(h[3], 0xCD, np * es);
            for (int t = 0; t < 4; t++)
                to_dev(d[t], h[t], np * es);
            const int64_t sh[4] = {1, S, H, Dp};
            lcx_tensor tv[4];
            for (int t = 0; t < 4; t++)
                lcx_tensor_init(&tv[t], d[t], dt, 4, sh);
            for (int which = 0; which < 2; which++) {
                lcx_status st;
                if (which == 0) {
                    lcx_s2_params p;
                    lcx_s2_params_default(&p);
                    p.group_size = g;
                    p.mode = roll ? LCX_S2_ROLL : S % g ? LCX_S2_RAGGED : LCX_S2_SEGMENTS;
                    p.scale = lcx_json_num(c, "scale");
                    st = lcx_attention_s2_forward(gpu, &p, &tv[0], &tv[1], &tv[2], &tv[3], NULL);
                } else {
                    lcx_attention_params p;
                    lcx_attention_params_default(&p);
                    p.causal = 1;
                    p.scale = lcx_json_num(c, "scale");
                    st = lcx_attention_forward(gpu, &p, &tv[0], &tv[1], &tv[2], &tv[3], NULL);
                }
                if (st != LCX_OK)
                    lcx_fail_msg("golden %s: cuda: %s", name, lcx_last_error());
                assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
                to_host(h[3], d[3], np * es);
                const double tol = variant ? 2e-4 * vmax : 1e-5;
                for (size_t o = 0; o < np; o++) {
                    const double got = lcx_load_elem(h[3], (int32_t)dt, o);
                    const size_t col = o % (size_t)Dp, i = o / (size_t)Dp * (size_t)D + col;
                    const double ref = col < (size_t)D ? want[which][i] : 0.0;
                    if (!(fabs(got - ref) <= tol + (variant ? 0x1p-8 * fabs(ref) : 0)))
                        lcx_fail_msg("golden %s %s %s: element %zu: %.8g, want %.8g", name, outs[which],
                                     variant ? "bf16 d 64" : "f32", o, got, ref);
                }
            }
            for (int t = 0; t < 4; t++) {
                free(h[t]);
                lcx_cuda_free(gpu->cuda, d[t]);
            }
        }
        for (int t = 0; t < 3; t++)
            free(in[t]);
        for (int t = 0; t < 2; t++)
            free(want[t]);
    }
    lcx_json_free(gj);
}

/* ---- LoRA ---- */

/* Each case runs on both contexts from the same fresh random inputs (the
 * device buffers are byte copies of the host ones, gaps and borders
 * included) and both results are checked against a double-precision oracle
 * with the bound of tests/test_lora.c: with u = 2^-24 and
 *   M = sum_k |x_k W_ok| + |s| sum_j (sum_k |x_k A_jk|) |B_oj| + |bias_o| + |y_old|,
 *   tol = 2 ((in + rank + 2) u M + u_y |ref| + sub_y)
 * (u_y the unit roundoff of y's dtype, sub_y half its smallest subnormal);
 * so the two contexts agree within twice that. Rows and bytes that must
 * not change (adapter -1, gaps between elements, the borders around every
 * buffer) are compared byte for byte. */

#define LORA_TOL_C 2.0
#define LORA_U24 0x1p-24

static double lora_unit_roundoff(lcx_dtype dt)
{
    return dt == LCX_F32 ? 0x1p-24 : dt == LCX_BF16 ? 0x1p-8 : 0x1p-11;
}

static double lora_sub_half(lcx_dtype dt)
{
    return dt == LCX_F32 ? 0x1p-150 : dt == LCX_BF16 ? 0x1p-134 : 0x1p-25;
}

/* layouts: dense; rows padded by 3; rows padded to a multiple of 8 plus 8
 * (16-byte rows); the same starting one element in (misaligned); the
 * transposed view (column-major, padded columns) */
enum { LL_DENSE, LL_PAD, LL_PAD8, LL_OFF, LL_TRANS, LL_COUNT };
static const char *const lora_layout_names[LL_COUNT] = {"dense", "pad", "pad8", "off", "trans"};

/* poisoned elements before and after every view: a multiple of 8, so
 * views of 16-byte rows start 16-byte aligned (the tensor cores' cp.async
 * path; LL_OFF starts one element later) */
#define LORA_BORDER 24

/* A 1-D or 2-D view over a host buffer and a device copy of it. */
typedef struct lview {
    lcx_tensor t;         /* over the host buffer */
    unsigned char *host;  /* LORA_BORDER elements, the span, LORA_BORDER elements */
    unsigned char *orig;  /* the bytes as made (before any call) */
    unsigned char *elem;  /* 1 for the bytes of an element */
    void *dev;
    size_t bytes;
    int64_t off;          /* element offset of the view in the buffer */
    double *v;            /* exact values [rows][cols] */
    int64_t rows, cols;
} lview;

static int64_t lview_at(const lview *w, int64_t r, int64_t c)
{
    return w->off + (w->t.ndim == 1 ? c * w->t.stride[0] : r * w->t.stride[0] + c * w->t.stride[1]);
}

static double lora_get(lcx_dtype dt, const void *buf, int64_t o)
{
    if (dt == LCX_F32)
        return ((const float *)buf)[o];
    return lcx_ref_decode16(dt, ((const uint16_t *)buf)[o]);
}

static double lora_put(lcx_dtype dt, void *buf, int64_t o, double v)
{
    if (dt == LCX_F32) {
        ((float *)buf)[o] = (float)v;
        return (float)v;
    }
    const uint16_t h = lcx_ref_encode16(dt, lcx_ref_round(dt, v));
    ((uint16_t *)buf)[o] = h;
    return lcx_ref_decode16(dt, h);
}

/* values uniform in [-amp, amp) (NaN everywhere with amp NaN: an output that
 * must not be read) */
static void lview_make(lview *w, lcx_dtype dt, int nd, int64_t rows, int64_t cols, int layout, double amp,
                       lcx_rng *rng)
{
    memset(w, 0, sizeof *w);
    w->rows = nd == 1 ? 1 : rows;
    w->cols = cols;
    lcx_tensor *t = &w->t;
    t->dtype = dt;
    t->ndim = nd;
    int64_t span;
    const int64_t lead = layout == LL_OFF ? 1 : 0;
    if (nd == 1) {
        t->shape[0] = cols;
        t->stride[0] = layout == LL_TRANS ? 2 : 1;
        span = cols > 0 ? (cols - 1) * t->stride[0] + 1 : 0;
    } else {
        t->shape[0] = rows;
        t->shape[1] = cols;
        t->stride[1] = 1;
        switch (layout) {
        case LL_PAD: t->stride[0] = cols + 3; break;
        case LL_PAD8:
        case LL_OFF: t->stride[0] = (cols + 7) / 8 * 8 + 8; break;
        case LL_TRANS:
            t->stride[0] = 1;
            t->stride[1] = rows + 2;
            break;
        default: t->stride[0] = cols; break;
        }
        span = rows > 0 && cols > 0 ? (rows - 1) * t->stride[0] + (cols - 1) * t->stride[1] + 1 : 0;
    }
    const size_t es = lcx_dtype_size(dt);
    const int64_t n = span + lead + 2 * LORA_BORDER;
    w->bytes = (size_t)n * es;
    w->off = LORA_BORDER + lead;
    w->host = malloc(w->bytes);
    w->orig = malloc(w->bytes);
    w->elem = calloc(w->bytes, 1);
    for (size_t i = 0; i < w->bytes; i++)
        w->host[i] = (unsigned char)(0xA5 ^ (i * 7));
    w->v = malloc(sizeof(double) * (size_t)(w->rows * cols + 1));
    for (int64_t r = 0; r < w->rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const int64_t o = lview_at(w, r, c);
            w->v[r * cols + c] = lora_put(dt, w->host, o, isnan(amp) ? NAN : lcx_rng_uniform(rng, -amp, amp));
            memset(w->elem + (size_t)o * es, 1, es);
        }
    memcpy(w->orig, w->host, w->bytes);
    t->data = w->host + (size_t)w->off * es;
    w->dev = dev_alloc(w->bytes);
    to_dev(w->dev, w->host, w->bytes);
}

/* the view over the device copy */
static lcx_tensor lview_dev(const lview *w)
{
    lcx_tensor t = w->t;
    t.data = (unsigned char *)w->dev + (size_t)w->off * lcx_dtype_size(w->t.dtype);
    return t;
}

/* buf (a whole buffer after a call) has every non-element byte as made */
static void lview_gaps_kept(const lview *w, const unsigned char *buf, const char *what, const char *side)
{
    for (size_t i = 0; i < w->bytes; i++)
        if (!w->elem[i] && buf[i] != w->orig[i])
            lcx_fail_msg("%s (%s): byte %zu outside the elements was written (border %d elements)", what, side, i,
                         LORA_BORDER);
}

static void lview_free(lview *w)
{
    if (w->dev)
        lcx_cuda_free(gpu->cuda, w->dev);
    free(w->host);
    free(w->orig);
    free(w->elem);
    free(w->v);
    memset(w, 0, sizeof *w);
}

/* element (r, c) of buffer `buf` (a copy of w's buffer) within tol of ref */
static void lora_expect(const lview *w, const unsigned char *buf, const double *ref, const double *tol,
                        const unsigned char *keep_row, const unsigned char *kept, const char *what, const char *side)
{
    const size_t es = lcx_dtype_size(w->t.dtype);
    for (int64_t r = 0; r < w->rows; r++)
        for (int64_t c = 0; c < w->cols; c++) {
            const int64_t o = lview_at(w, r, c);
            if (keep_row && keep_row[r]) {
                if (memcmp(buf + (size_t)o * es, kept + (size_t)o * es, es) != 0)
                    lcx_fail_msg("%s (%s): row %lld (no adapter) col %lld changed: %.9g, was %.9g", what, side,
                                 (long long)r, (long long)c, lora_get(w->t.dtype, buf, o),
                                 lora_get(w->t.dtype, kept, o));
                continue;
            }
            const double got = lora_get(w->t.dtype, buf, o), want = ref[r * w->cols + c], tl = tol[r * w->cols + c];
            if (!(fabs(got - want) <= tl))
                lcx_fail_msg("%s (%s): [%lld][%lld] = %.9g, want %.9g (|err| %.3g > tol %.3g)", what, side,
                             (long long)r, (long long)c, got, want, fabs(got - want), tl);
        }
    lview_gaps_kept(w, buf, what, side);
}

/* the device buffer of w, read back (caller frees) */
static unsigned char *lview_back(const lview *w)
{
    unsigned char *b = malloc(w->bytes);
    to_host(b, w->dev, w->bytes);
    return b;
}

/* an input is left as it was on both sides */
static void lview_unchanged(const lview *w, const char *what)
{
    unsigned char *b = lview_back(w);
    lcx_expect_bytes_equal(b, w->orig, w->bytes, what);
    lcx_expect_bytes_equal(w->host, w->orig, w->bytes, what);
    free(b);
}

/* ---- lcx_lora_linear ---- */

typedef struct lora_lcase {
    int64_t T, in, out, R;
    lcx_dtype dx, dw, da, db, dbias, dy;
    int lx, lw, ly;
    int has_w, has_bias, has_lr, acc;
    float scale;
} lora_lcase;

static void lora_ldesc(const lora_lcase *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "cuda lora_linear T=%lld in=%lld out=%lld rank=%lld x=%s/%s W=%s/%s A=%s B=%s bias=%s y=%s/%s w=%d "
             "bias=%d lowrank=%d acc=%d scale=%g",
             (long long)c->T, (long long)c->in, (long long)c->out, (long long)c->R, lcx_dtype_name(c->dx),
             lora_layout_names[c->lx], lcx_dtype_name(c->dw), lora_layout_names[c->lw], lcx_dtype_name(c->da),
             lcx_dtype_name(c->db), lcx_dtype_name(c->dbias), lcx_dtype_name(c->dy), lora_layout_names[c->ly],
             c->has_w, c->has_bias, c->has_lr, c->acc, (double)c->scale);
}

typedef struct lora_ldata {
    lview x, w, a, b, bias, y;
} lora_ldata;

/* ref/tol of test_lora.c's lin_oracle, y_old read from `yold` (a copy of
 * y's buffer) when accumulating */
static void lora_linear_oracle(const lora_lcase *c, const lora_ldata *d, const unsigned char *yold, double *ref,
                               double *tol)
{
    const int64_t T = c->T, in = c->in, out = c->out, R = c->has_lr ? c->R : 0;
    const double s = c->has_lr ? c->scale : 0, uy = lora_unit_roundoff(c->dy), sy = lora_sub_half(c->dy);
    double *u = malloc(sizeof(double) * (size_t)(R + 1)), *ua = malloc(sizeof(double) * (size_t)(R + 1));
    for (int64_t t = 0; t < T; t++) {
        const double *x = d->x.v + t * in;
        for (int64_t j = 0; j < R; j++) {
            double acc = 0, aa = 0;
            for (int64_t k = 0; k < in; k++) {
                acc += x[k] * d->a.v[j * in + k];
                aa += fabs(x[k] * d->a.v[j * in + k]);
            }
            u[j] = acc;
            ua[j] = aa;
        }
        for (int64_t o = 0; o < out; o++) {
            double base = 0, babs = 0, p = 0, pabs = 0;
            if (c->has_w)
                for (int64_t k = 0; k < in; k++) {
                    base += x[k] * d->w.v[o * in + k];
                    babs += fabs(x[k] * d->w.v[o * in + k]);
                }
            for (int64_t j = 0; j < R; j++) {
                p += u[j] * d->b.v[o * R + j];
                pabs += ua[j] * fabs(d->b.v[o * R + j]);
            }
            const double bias = c->has_bias ? d->bias.v[o] : 0;
            const double yo = c->acc ? lora_get(c->dy, yold, lview_at(&d->y, t, o)) : 0;
            const double r = yo + base + bias + s * p;
            const double M = babs + fabs(s) * pabs + fabs(bias) + fabs(yo);
            ref[t * out + o] = r;
            tol[t * out + o] = LORA_TOL_C * ((double)(in + R + 2) * LORA_U24 * M + uy * fabs(r) + sy);
        }
    }
    free(u);
    free(ua);
}

static lcx_status lora_linear_call(lcx_context *ctx, const lora_lcase *c, const lora_ldata *d, int on_dev)
{
    lcx_tensor x = on_dev ? lview_dev(&d->x) : d->x.t, w = on_dev ? lview_dev(&d->w) : d->w.t;
    lcx_tensor a = on_dev ? lview_dev(&d->a) : d->a.t, b = on_dev ? lview_dev(&d->b) : d->b.t;
    lcx_tensor bias = on_dev ? lview_dev(&d->bias) : d->bias.t, y = on_dev ? lview_dev(&d->y) : d->y.t;
    return lcx_lora_linear(ctx, &x, c->has_w ? &w : NULL, c->has_bias ? &bias : NULL, c->has_lr ? &a : NULL,
                           c->has_lr ? &b : NULL, c->scale, &y, c->acc);
}

static void lora_run_linear(const lora_lcase *c, lcx_rng *rng)
{
    char desc[512];
    lora_ldesc(c, desc, sizeof desc);
    lora_ldata d;
    memset(&d, 0, sizeof d);
    const double rin = sqrt((double)(c->in > 0 ? c->in : 1)), sr = sqrt((double)(c->R > 0 ? c->R : 1));
    lview_make(&d.x, c->dx, 2, c->T, c->in, c->lx, 1.0, rng);
    if (c->has_w)
        lview_make(&d.w, c->dw, 2, c->out, c->in, c->lw, 1.0 / rin, rng);
    if (c->has_bias)
        lview_make(&d.bias, c->dbias, 1, 1, c->out, c->lw == LL_TRANS ? LL_TRANS : LL_DENSE, 0.5, rng);
    if (c->has_lr) {
        lview_make(&d.a, c->da, 2, c->R, c->in, c->lx == LL_PAD ? LL_TRANS : c->lx == LL_PAD8 ? LL_PAD8 : LL_DENSE,
                   1.0 / rin, rng);
        lview_make(&d.b, c->db, 2, c->out, c->R, c->lw == LL_TRANS ? LL_TRANS : LL_PAD, 2.0 / sr, rng);
    }
    /* without accumulate y is NaN: it must be neither read nor kept */
    lview_make(&d.y, c->dy, 2, c->T, c->out, c->ly, c->acc ? 1.0 : NAN, rng);
    const size_t n = (size_t)(c->T * c->out) + 1;
    double *ref = malloc(sizeof(double) * n), *tol = malloc(sizeof(double) * n);
    lora_linear_oracle(c, &d, d.y.orig, ref, tol);
    lcx_status st = lora_linear_call(cpu, c, &d, 0);
    if (st != LCX_OK)
        lcx_fail_msg("%s: cpu: %s", desc, lcx_last_error());
    st = lora_linear_call(gpu, c, &d, 1);
    if (st != LCX_OK)
        lcx_fail_msg("%s: cuda: %s: %s", desc, lcx_status_string(st), lcx_last_error());
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    unsigned char *yg = lview_back(&d.y);
    lora_expect(&d.y, d.y.host, ref, tol, NULL, NULL, desc, "cpu scalar");
    lora_expect(&d.y, yg, ref, tol, NULL, NULL, desc, "cuda");
    free(yg);
    lview_unchanged(&d.x, "lora_linear x");
    lview *ins[4] = {&d.w, &d.a, &d.b, &d.bias};
    for (int i = 0; i < 4; i++)
        if (ins[i]->host)
            lview_unchanged(ins[i], "lora_linear weights");
    free(ref);
    free(tol);
    lview_free(&d.x);
    lview_free(&d.w);
    lview_free(&d.a);
    lview_free(&d.b);
    lview_free(&d.bias);
    lview_free(&d.y);
}

static const int64_t lora_tokens[4] = {1, 7, 64, 300};
static const int64_t lora_io[4][2] = {{33, 100}, {257, 33}, {100, 257}, {256, 64}};
static const int64_t lora_ranks[4] = {1, 8, 16, 64};
static const float lora_scales[6] = {0.5f, -1.25f, 0.0f, 2.0f, -0.375f, 1.5f};

/* dtype sets: 0 all f32, 1 all bf16, 2 all f16, 3 f32 x and y with bf16
 * weights, 4 x and W of one 16-bit dtype with the rest random, 5 random */
static void lora_dtypes(lora_lcase *c, int set, lcx_rng *rng)
{
    static const lcx_dtype d3[3] = {LCX_F32, LCX_BF16, LCX_F16};
    switch (set) {
    case 0: c->dx = c->dw = c->da = c->db = c->dbias = c->dy = LCX_F32; break;
    case 1: c->dx = c->dw = c->da = c->db = c->dbias = c->dy = LCX_BF16; break;
    case 2: c->dx = c->dw = c->da = c->db = c->dbias = c->dy = LCX_F16; break;
    case 3:
        c->dx = c->dy = LCX_F32;
        c->dw = c->da = c->db = c->dbias = LCX_BF16;
        break;
    case 4:
        c->dx = c->dw = lcx_rng_range(rng, 0, 1) ? LCX_BF16 : LCX_F16;
        c->da = d3[lcx_rng_range(rng, 0, 2)];
        c->db = d3[lcx_rng_range(rng, 0, 2)];
        c->dbias = d3[lcx_rng_range(rng, 0, 2)];
        c->dy = d3[lcx_rng_range(rng, 0, 2)];
        break;
    default:
        c->dx = d3[lcx_rng_range(rng, 0, 2)];
        c->dw = d3[lcx_rng_range(rng, 0, 2)];
        c->da = d3[lcx_rng_range(rng, 0, 2)];
        c->db = d3[lcx_rng_range(rng, 0, 2)];
        c->dbias = d3[lcx_rng_range(rng, 0, 2)];
        c->dy = d3[lcx_rng_range(rng, 0, 2)];
        break;
    }
}

/* a case from a table row {T, in, out, R, dtype set, x layout, W layout,
 * accumulate}; the rest zero */
static void lora_case_row(lora_lcase *c, const int64_t row[8], lcx_rng *rng)
{
    memset(c, 0, sizeof *c);
    c->T = row[0];
    c->in = row[1];
    c->out = row[2];
    c->R = row[3];
    lora_dtypes(c, (int)row[4], rng);
    c->lx = (int)row[5];
    c->lw = (int)row[6];
    c->acc = (int)row[7];
}

static void test_cuda_lora_linear_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 17);
    static const int xl[4] = {LL_DENSE, LL_PAD8, LL_PAD, LL_OFF}, wl[4] = {LL_DENSE, LL_PAD8, LL_TRANS, LL_PAD};
    static const int yl[3] = {LL_PAD, LL_DENSE, LL_TRANS};
    int iter = 0;
    /* every dtype set x every token count, two shapes and ranks each,
     * options rotating */
    for (int set = 0; set < 6; set++)
        for (int ti = 0; ti < 4; ti++)
            for (int v = 0; v < 2; v++, iter++) {
                lora_lcase c;
                memset(&c, 0, sizeof c);
                c.T = lora_tokens[ti];
                c.in = lora_io[(set + ti + 2 * v) % 4][0];
                c.out = lora_io[(set + ti + 2 * v) % 4][1];
                c.R = lora_ranks[(iter + set) % 4];
                lora_dtypes(&c, set, &rng);
                c.lx = xl[(iter / 2) % 4];
                c.lw = wl[(iter / 3) % 4];
                c.ly = yl[iter % 3];
                c.has_w = iter % 5 != 2;
                c.has_bias = iter % 2;
                c.has_lr = iter % 7 != 3;
                c.acc = (iter / 2) % 2;
                c.scale = lora_scales[iter % 6];
                lora_run_linear(&c, &rng);
            }
    /* the tensor-core paths on purpose: 16-byte rows with and without a
     * reduction tail, odd rows, a misaligned start, ranks that leave a
     * partial chunk of the f32 epilogue; and reductions long enough to split
     * u = s x A^T over several blocks */
    static const int64_t sp[][8] = {
        /* T, in, out, R, set, lx, lw, acc */
        {300, 256, 64, 64, 1, LL_DENSE, LL_DENSE, 0},
        {300, 100, 257, 33, 2, LL_PAD8, LL_PAD8, 1},
        {64, 257, 100, 16, 1, LL_PAD, LL_DENSE, 1},
        {65, 256, 129, 8, 2, LL_OFF, LL_PAD8, 0},
        {300, 128, 96, 8, 2, LL_PAD, LL_DENSE, 1},
        {7, 64, 33, 1, 1, LL_DENSE, LL_TRANS, 1},
        {1, 1100, 100, 8, 1, LL_DENSE, LL_DENSE, 1},
        {7, 2100, 33, 64, 0, LL_PAD, LL_DENSE, 0},
        {64, 1100, 70, 20, 3, LL_DENSE, LL_PAD8, 1},
        {300, 1030, 40, 16, 4, LL_PAD8, LL_DENSE, 0},
        /* at most 8 tokens with 16-byte W rows: the GEMV kernel (1, 2, 4
         * and 8 token instances; x by 16 bytes or element by element,
         * transposed x; reductions with and without a tail, shorter than
         * one pass of the block, longer than several) */
        {1, 1000, 70, 16, 1, LL_DENSE, LL_DENSE, 0},
        {8, 777, 33, 8, 2, LL_PAD8, LL_PAD8, 1},
        {3, 300, 9, 64, 1, LL_OFF, LL_PAD8, 0},
        {6, 129, 257, 16, 2, LL_TRANS, LL_PAD8, 1},
        {2, 16, 1000, 8, 1, LL_PAD, LL_PAD8, 1},
        {5, 4100, 20, 1, 4, LL_DENSE, LL_PAD8, 0},
        {4, 2056, 11, 33, 2, LL_PAD8, LL_DENSE, 1},
        {2, 200, 37, 8, 2, LL_DENSE, LL_DENSE, 0},
        {7, 5, 19, 4, 1, LL_PAD, LL_PAD8, 1},
    };
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++, iter++) {
        lora_lcase c;
        lora_case_row(&c, sp[i], &rng);
        c.ly = yl[i % 3];
        c.has_w = c.has_lr = 1;
        c.has_bias = (int)(i % 2);
        c.scale = lora_scales[i % 6];
        lora_run_linear(&c, &rng);
    }
    /* options on a tensor-core shape and an f32 one: W NULL, bias only, no
     * low-rank term, scale 0 and negative, accumulate */
    for (int set = 0; set < 2; set++)
        for (int flags = 0; flags < 8; flags++)
            for (int acc = 0; acc < 2; acc++) {
                lora_lcase c;
                memset(&c, 0, sizeof c);
                c.T = set ? 70 : 9;
                c.in = set ? 100 : 64;
                c.out = 33;
                c.R = 8;
                lora_dtypes(&c, set ? 1 : 0, &rng);
                c.lx = c.lw = LL_DENSE;
                c.ly = LL_PAD;
                c.has_lr = flags & 1;
                c.has_w = (flags >> 1) & 1;
                c.has_bias = (flags >> 2) & 1;
                c.acc = acc;
                c.scale = flags == 5 ? 0.0f : flags & 2 ? -0.75f : 1.25f;
                lora_run_linear(&c, &rng);
            }
    assert_non_null(lcx_context_kernel_name(gpu, "gemm_ukr"));
}

/* The warpgroup-MMA GEMM (sm_90a, opt-in through LONGCTX_CUDA_WGMMA=1 at
 * context creation) on a context of its own: 128 x 256 tiles, reduction
 * steps of 64, four stages. Shapes: one interior tile on the fast copy path;
 * edge tiles in tokens and outputs; reductions shorter than the two-stage
 * prologue, with a tail of whole 16-byte chunks, with a tail inside a chunk
 * (element copies), long enough to wrap the ring several times; several
 * output tiles; ranks 1, 8 and 16 with A of x's dtype and 16-byte rows (u
 * formed inside the GEMM, tails included), 33 and 64 (u from the SIMT
 * kernel, two epilogue chunks), none; both 16-bit dtypes; accumulate and
 * bias; y of x's dtype with 16-byte rows (the 16-byte epilogue, with a
 * last partial chunk of outputs) and other y. Skipped where the device
 * cannot run it. */
static void test_cuda_lora_wgmma(void **state)
{
    (void)state;
    lcx_context *const wg = wgmma_context("gemm_ukr", "lcx_k_lora_gemm_wgmma__cuda", "cuda lora wgmma");
    if (!wg)
        skip();
    lcx_context *const first = gpu;
    /* the default stays mma.sync */
    assert_string_equal(lcx_context_kernel_name(gpu, "gemm_ukr"), "lcx_k_lora_gemm__cuda");
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 23);
    static const int64_t sp[][8] = {
        /* T, in, out, R, set, lx, lw, acc */
        {128, 512, 256, 8, 1, LL_DENSE, LL_DENSE, 0},
        {300, 256, 64, 64, 2, LL_DENSE, LL_DENSE, 1},
        {200, 1000, 600, 16, 1, LL_PAD8, LL_PAD8, 0},
        {130, 1003, 520, 33, 2, LL_PAD8, LL_PAD8, 1},
        {257, 64, 257, 0, 1, LL_DENSE, LL_PAD8, 0},
        {65, 8, 300, 8, 2, LL_PAD8, LL_DENSE, 1},
        {129, 136, 255, 16, 4, LL_DENSE, LL_DENSE, 0},
        {300, 520, 300, 1, 2, LL_DENSE, LL_PAD8, 1},
        {140, 2048, 256, 16, 1, LL_DENSE, LL_DENSE, 0},
        {150, 1003, 300, 16, 2, LL_PAD8, LL_PAD8, 0},
    };
    gpu = wg;
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        lora_lcase c;
        lora_case_row(&c, sp[i], &rng);
        c.ly = i % 3 == 0 ? LL_DENSE : i % 3 == 1 ? LL_PAD8 : LL_PAD; /* 16-byte rows: vector epilogue */
        c.has_w = 1;
        c.has_lr = c.R > 0;
        c.R = c.R > 0 ? c.R : 1;
        c.has_bias = (int)(i % 2);
        c.scale = lora_scales[i % 6];
        lora_run_linear(&c, &rng);
    }
    gpu = first;
    lcx_context_destroy(wg);
}

/* ---- lcx_lora_batched ---- */

static void test_cuda_lora_batched_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 18);
    static const int64_t mixed[6] = {1, 8, 16, 64, 3, 8};
    /* T, in, out, adapters, percentage of tokens without adapter, dtype set */
    static const int64_t bc[][6] = {
        {1, 33, 100, 4, 0, 1},   {7, 257, 33, 4, 30, 0},    {64, 100, 257, 6, 20, 2},  {300, 256, 64, 4, 20, 3},
        {300, 33, 100, 6, 10, 1}, {7, 1100, 70, 3, 0, 5},   {64, 2100, 40, 4, 25, 4},  {300, 100, 33, 1, 50, 2},
        {40, 64, 48, 5, 100, 1},  {12, 1030, 65, 8, 10, 0},
    };
    for (size_t ci = 0; ci < sizeof bc / sizeof bc[0]; ci++) {
        const int64_t T = bc[ci][0], in = bc[ci][1], out = bc[ci][2];
        const int32_t n = (int32_t)bc[ci][3];
        lora_lcase base;
        memset(&base, 0, sizeof base);
        base.T = T;
        base.in = in;
        base.out = out;
        lora_dtypes(&base, (int)bc[ci][5], &rng);
        base.lx = ci % 2 ? LL_PAD : LL_DENSE;
        base.lw = LL_DENSE;
        base.ly = ci % 3 == 1 ? LL_TRANS : LL_PAD;
        base.has_w = 1;
        base.has_bias = (int)(ci % 2);
        char desc[512];
        int len = snprintf(desc, sizeof desc, "cuda lora_batched T=%lld in=%lld out=%lld x=%s/%s y=%s/%s adapters=%d",
                           (long long)T, (long long)in, (long long)out, lcx_dtype_name(base.dx),
                           lora_layout_names[base.lx], lcx_dtype_name(base.dy), lora_layout_names[base.ly], (int)n);
        lora_ldata d;
        memset(&d, 0, sizeof d);
        const double rin = sqrt((double)in);
        lview_make(&d.x, base.dx, 2, T, in, base.lx, 1.0, &rng);
        lview_make(&d.w, base.dw, 2, out, in, base.lw, 1.0 / rin, &rng);
        if (base.has_bias)
            lview_make(&d.bias, base.dbias, 1, 1, out, LL_DENSE, 0.5, &rng);
        lview_make(&d.y, base.dy, 2, T, out, base.ly, NAN, &rng);
        /* the base product first (its rows with adapter -1 must stay as the
         * base-only result) */
        const size_t ny = (size_t)(T * out) + 1;
        double *ref = malloc(sizeof(double) * ny), *tol = malloc(sizeof(double) * ny);
        lora_linear_oracle(&base, &d, d.y.orig, ref, tol);
        if (lora_linear_call(cpu, &base, &d, 0) != LCX_OK)
            lcx_fail_msg("%s: cpu base: %s", desc, lcx_last_error());
        if (lora_linear_call(gpu, &base, &d, 1) != LCX_OK)
            lcx_fail_msg("%s: cuda base: %s", desc, lcx_last_error());
        unsigned char *yg0 = lview_back(&d.y), *yc0 = malloc(d.y.bytes);
        memcpy(yc0, d.y.host, d.y.bytes);
        lora_expect(&d.y, yc0, ref, tol, NULL, NULL, desc, "cpu scalar base");
        lora_expect(&d.y, yg0, ref, tol, NULL, NULL, desc, "cuda base");
        /* adapters of mixed ranks and dtypes, tokens mapped with some -1 */
        lview A[8], B[8];
        lcx_lora_adapter hA[8], dA[8];
        int64_t ranks[8];
        static const lcx_dtype d3[3] = {LCX_F32, LCX_BF16, LCX_F16};
        for (int32_t i = 0; i < n; i++) {
            ranks[i] = mixed[(ci + (size_t)i) % 6];
            const lcx_dtype da = bc[ci][5] < 3 ? base.dw : d3[lcx_rng_range(&rng, 0, 2)];
            const lcx_dtype db = bc[ci][5] < 3 ? base.dw : d3[lcx_rng_range(&rng, 0, 2)];
            lview_make(&A[i], da, 2, ranks[i], in, i % 3 == 2 ? LL_TRANS : LL_DENSE, 1.0 / rin, &rng);
            lview_make(&B[i], db, 2, out, ranks[i], i % 2 ? LL_PAD : LL_DENSE, 2.0 / sqrt((double)ranks[i]), &rng);
            hA[i].a = A[i].t;
            hA[i].b = B[i].t;
            dA[i].a = lview_dev(&A[i]);
            dA[i].b = lview_dev(&B[i]);
            hA[i].scale = dA[i].scale = lora_scales[(ci + (size_t)i) % 6];
            if (len < (int)sizeof desc - 48)
                len += snprintf(desc + len, sizeof desc - (size_t)len, " [r%lld %s/%s s=%g]", (long long)ranks[i],
                                lcx_dtype_name(da), lcx_dtype_name(db), (double)hA[i].scale);
        }
        int32_t *map = malloc(sizeof(int32_t) * (size_t)(T + 1));
        unsigned char *keep = calloc((size_t)T + 1, 1);
        for (int64_t t = 0; t < T; t++) {
            map[t] = lcx_rng_range(&rng, 0, 99) < bc[ci][4] ? -1 : (int32_t)lcx_rng_range(&rng, 0, n - 1);
            if (ci == 3) /* runs of one adapter, in reverse adapter order */
                map[t] = t % 11 == 5 ? -1 : (int32_t)(n - 1 - t * n / T);
            keep[t] = map[t] < 0;
        }
        lcx_tensor hx = d.x.t, hy = d.y.t, dx = lview_dev(&d.x), dy = lview_dev(&d.y);
        if (lcx_lora_batched(cpu, &hx, hA, n, map, &hy) != LCX_OK)
            lcx_fail_msg("%s: cpu: %s", desc, lcx_last_error());
        const lcx_status st = lcx_lora_batched(gpu, &dx, dA, n, map, &dy);
        if (st != LCX_OK)
            lcx_fail_msg("%s: cuda: %s: %s", desc, lcx_status_string(st), lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        unsigned char *yg = lview_back(&d.y);
        /* each side against the oracle from its own base result */
        for (int side = 0; side < 2; side++) {
            const unsigned char *yold = side ? yg0 : yc0;
            double u[64], ua[64];
            for (int64_t t = 0; t < T; t++) {
                if (map[t] < 0)
                    continue;
                const int32_t i = map[t];
                const int64_t R = ranks[i];
                const double s = hA[i].scale;
                for (int64_t j = 0; j < R; j++) {
                    double acc = 0, aa = 0;
                    for (int64_t k = 0; k < in; k++) {
                        acc += d.x.v[t * in + k] * A[i].v[j * in + k];
                        aa += fabs(d.x.v[t * in + k] * A[i].v[j * in + k]);
                    }
                    u[j] = acc;
                    ua[j] = aa;
                }
                for (int64_t o = 0; o < out; o++) {
                    double p = 0, pabs = 0;
                    for (int64_t j = 0; j < R; j++) {
                        p += u[j] * B[i].v[o * R + j];
                        pabs += ua[j] * fabs(B[i].v[o * R + j]);
                    }
                    const double yo = lora_get(base.dy, yold, lview_at(&d.y, t, o));
                    const double r = yo + s * p, M = fabs(yo) + fabs(s) * pabs;
                    ref[t * out + o] = r;
                    tol[t * out + o] = LORA_TOL_C * ((double)(in + R + 2) * LORA_U24 * M +
                                                     lora_unit_roundoff(base.dy) * fabs(r) + lora_sub_half(base.dy));
                }
            }
            lora_expect(&d.y, side ? yg : d.y.host, ref, tol, keep, yold, desc, side ? "cuda" : "cpu scalar");
        }
        lview_unchanged(&d.x, "lora_batched x");
        for (int32_t i = 0; i < n; i++) {
            lview_unchanged(&A[i], "lora_batched A");
            lview_unchanged(&B[i], "lora_batched B");
            lview_free(&A[i]);
            lview_free(&B[i]);
        }
        free(yg);
        free(yg0);
        free(yc0);
        free(map);
        free(keep);
        free(ref);
        free(tol);
        lview_free(&d.x);
        lview_free(&d.w);
        lview_free(&d.bias);
        lview_free(&d.y);
    }
}

/* ---- lcx_lora_merge ---- */

static void test_cuda_lora_merge_vs_scalar(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 19);
    static const lcx_dtype d3[3] = {LCX_F32, LCX_BF16, LCX_F16};
    /* out, in, rank, W dtype (3: random), A/B dtype (3: random), W layout */
    static const int64_t mc[][6] = {
        {33, 100, 1, 0, 0, LL_DENSE}, {257, 33, 8, 1, 1, LL_PAD},  {100, 257, 16, 2, 2, LL_PAD8},
        {64, 64, 64, 1, 0, LL_TRANS}, {1, 100, 8, 3, 3, LL_PAD},    {100, 1, 16, 3, 3, LL_DENSE},
        {65, 130, 33, 2, 0, LL_PAD},  {31, 257, 64, 0, 1, LL_TRANS},
    };
    for (size_t ci = 0; ci < sizeof mc / sizeof mc[0] + 1; ci++) {
        const int last = ci == sizeof mc / sizeof mc[0]; /* scale 0 leaves W as it is */
        const int64_t *m = mc[last ? 1 : ci];
        const int64_t out = m[0], in = m[1], R = m[2];
        const lcx_dtype dw = m[3] < 3 ? d3[m[3]] : d3[lcx_rng_range(&rng, 0, 2)];
        const lcx_dtype da = m[4] < 3 ? d3[m[4]] : d3[lcx_rng_range(&rng, 0, 2)];
        const lcx_dtype db = m[4] < 3 ? d3[m[4]] : d3[lcx_rng_range(&rng, 0, 2)];
        const float s = last ? 0.0f : lora_scales[ci % 6] == 0.0f ? -0.625f : lora_scales[ci % 6];
        char desc[256];
        snprintf(desc, sizeof desc, "cuda lora_merge out=%lld in=%lld rank=%lld W=%s/%s A=%s B=%s s=%g",
                 (long long)out, (long long)in, (long long)R, lcx_dtype_name(dw), lora_layout_names[m[5]],
                 lcx_dtype_name(da), lcx_dtype_name(db), (double)s);
        lview W, A, B;
        lview_make(&W, dw, 2, out, in, (int)m[5], 1.0, &rng);
        lview_make(&A, da, 2, R, in, ci % 2 ? LL_TRANS : LL_DENSE, 1.0, &rng);
        lview_make(&B, db, 2, out, R, LL_PAD, 1.0 / sqrt((double)R), &rng);
        const size_t n = (size_t)(out * in) + 1;
        double *ref = malloc(sizeof(double) * n), *tol = malloc(sizeof(double) * n), *S = malloc(sizeof(double) * n);
        const double uw = lora_unit_roundoff(dw), sw = lora_sub_half(dw);
        for (int64_t o = 0; o < out; o++)
            for (int64_t k = 0; k < in; k++) {
                double p = 0, pa = 0;
                for (int64_t j = 0; j < R; j++) {
                    p += B.v[o * R + j] * A.v[j * in + k];
                    pa += fabs(B.v[o * R + j] * A.v[j * in + k]);
                }
                const double w = W.v[o * in + k], r = w + (double)s * p;
                S[o * in + k] = fabs((double)s) * pa;
                ref[o * in + k] = r;
                tol[o * in + k] = LORA_TOL_C * ((double)(R + 2) * LORA_U24 * (fabs(w) + S[o * in + k]) + uw * fabs(r) + sw);
            }
        lcx_tensor hw = W.t, ha = A.t, hb = B.t, dw_ = lview_dev(&W), da_ = lview_dev(&A), db_ = lview_dev(&B);
        if (lcx_lora_merge(cpu, &hw, &ha, &hb, s) != LCX_OK)
            lcx_fail_msg("%s: cpu: %s", desc, lcx_last_error());
        const lcx_status st = lcx_lora_merge(gpu, &dw_, &da_, &db_, s);
        if (st != LCX_OK)
            lcx_fail_msg("%s: cuda: %s: %s", desc, lcx_status_string(st), lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        unsigned char *wg = lview_back(&W), *wc = malloc(W.bytes);
        memcpy(wc, W.host, W.bytes);
        lora_expect(&W, wc, ref, tol, NULL, NULL, desc, "cpu scalar merge");
        lora_expect(&W, wg, ref, tol, NULL, NULL, desc, "cuda merge");
        /* unmerge (-s) on each side from its own merged W: back to W within
         * two roundings, test_lora.c's merge-then-unmerge bound */
        if (lcx_lora_merge(cpu, &hw, &ha, &hb, -s) != LCX_OK)
            lcx_fail_msg("%s: cpu unmerge: %s", desc, lcx_last_error());
        if (lcx_lora_merge(gpu, &dw_, &da_, &db_, -s) != LCX_OK)
            lcx_fail_msg("%s: cuda unmerge: %s", desc, lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        unsigned char *wg2 = lview_back(&W);
        char d2[300];
        snprintf(d2, sizeof d2, "%s, then unmerged", desc);
        for (int side = 0; side < 2; side++) {
            const unsigned char *merged = side ? wg : wc;
            for (int64_t o = 0; o < out; o++)
                for (int64_t k = 0; k < in; k++) {
                    const double wm = lora_get(dw, merged, lview_at(&W, o, k)), w = W.v[o * in + k];
                    ref[o * in + k] = w;
                    tol[o * in + k] = LORA_TOL_C * ((double)(R + 2) * LORA_U24 * (fabs(w) + fabs(wm) + 2 * S[o * in + k]) +
                                                    uw * (fabs(wm) + fabs(w)) + 2 * sw);
                }
            lora_expect(&W, side ? wg2 : W.host, ref, tol, NULL, NULL, d2, side ? "cuda" : "cpu scalar");
        }
        lview_unchanged(&A, "lora_merge A");
        lview_unchanged(&B, "lora_merge B");
        free(wg);
        free(wg2);
        free(wc);
        free(ref);
        free(tol);
        free(S);
        lview_free(&W);
        lview_free(&A);
        lview_free(&B);
    }
}

/* ---- bad input ---- */

/* Each invalid call on the CUDA context returns LCX_E_INVALID with the
 * message the CPU context gives for the same call on host buffers of the
 * same layout, and no device byte changes. */
static void lora_expect_same_refusal(lcx_status sg, const char *mg, lcx_status sc, const char *mc, const char *what)
{
    if (sg != LCX_E_INVALID || sc != LCX_E_INVALID)
        lcx_fail_msg("%s: cuda %s, cpu %s, want LCX_E_INVALID (%s)", what, lcx_status_string(sg),
                     lcx_status_string(sc), mg);
    if (strcmp(mg, mc) != 0)
        lcx_fail_msg("%s: cuda says '%s', cpu says '%s'", what, mg, mc);
}

static void test_cuda_lora_bad_input(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 20);
    /* x [4][8], W [6][8], bias [6], A [2][8], B [6][2], y [4][6] f32 (buffers
     * large enough for the wrong shapes below), adapters of ranks 2, 3, 2 */
    lview x, w, bias, a, b, y, A[3], B[3];
    lview_make(&x, LCX_F32, 2, 4, 8, LL_DENSE, 1, &rng);
    lview_make(&w, LCX_F32, 2, 8, 8, LL_DENSE, 1, &rng);
    lview_make(&bias, LCX_F32, 1, 1, 32, LL_DENSE, 1, &rng);
    lview_make(&a, LCX_F32, 2, 4, 8, LL_DENSE, 1, &rng);
    lview_make(&b, LCX_F32, 2, 8, 4, LL_DENSE, 1, &rng);
    lview_make(&y, LCX_F32, 2, 4, 8, LL_DENSE, 1, &rng);
    for (int i = 0; i < 3; i++) {
        lview_make(&A[i], LCX_F32, 2, 4, 8, LL_DENSE, 1, &rng);
        lview_make(&B[i], LCX_F32, 2, 8, 4, LL_DENSE, 1, &rng);
    }
    lview *all[12] = {&x, &w, &bias, &a, &b, &y, &A[0], &B[0], &A[1], &B[1], &A[2], &B[2]};
    const int64_t sx[2] = {4, 8}, sw[2] = {6, 8}, sb[1] = {6}, sa[2] = {2, 8}, sB[2] = {6, 2}, sy[2] = {4, 6};
    const int64_t ranks[3] = {2, 3, 2};
    char mg[512];
    /* linear */
    for (int cse = 0;; cse++) {
        lcx_tensor t[2][6];
        const lcx_tensor *p[2][6];
        float s = 0.5f;
        int ok = 1;
        const char *what = "";
        for (int side = 0; side < 2; side++) {
            lcx_tensor *tx = &t[side][0], *tw = &t[side][1], *tb = &t[side][2], *ta = &t[side][3], *tB = &t[side][4],
                       *ty = &t[side][5];
            lcx_tensor_init(tx, (side ? lview_dev(&x) : x.t).data, LCX_F32, 2, sx);
            lcx_tensor_init(tw, (side ? lview_dev(&w) : w.t).data, LCX_F32, 2, sw);
            lcx_tensor_init(tb, (side ? lview_dev(&bias) : bias.t).data, LCX_F32, 1, sb);
            lcx_tensor_init(ta, (side ? lview_dev(&a) : a.t).data, LCX_F32, 2, sa);
            lcx_tensor_init(tB, (side ? lview_dev(&b) : b.t).data, LCX_F32, 2, sB);
            lcx_tensor_init(ty, (side ? lview_dev(&y) : y.t).data, LCX_F32, 2, sy);
            for (int i = 0; i < 6; i++)
                p[side][i] = &t[side][i];
            switch (cse) {
            case 0: tw->shape[1] = 7; tw->stride[0] = 7; what = "W in != x in"; break;
            case 1: tw->shape[0] = 5; what = "W out != y out"; break;
            case 2: tb->shape[0] = 5; what = "bias length != out"; break;
            case 3: ta->shape[1] = 7; ta->stride[0] = 7; what = "A in != x in"; break;
            case 4: tB->shape[0] = 5; what = "B out != y out"; break;
            case 5: ta->shape[0] = 3; what = "A rank 3 != B rank 2"; break;
            case 6: ty->shape[0] = 3; what = "y tokens != x tokens"; break;
            case 7: ta->shape[0] = 0; tB->shape[1] = 0; tB->stride[0] = 1; what = "rank 0"; break;
            case 8: p[side][4] = NULL; what = "A without B"; break;
            case 9: s = NAN; what = "NaN scale"; break;
            case 10: s = -INFINITY; what = "-inf scale"; break;
            case 11: ty->data = tx->data; what = "y aliasing x"; break;
            case 12: ty->data = tw->data; what = "y aliasing W"; break;
            case 13: ty->data = (float *)ta->data + 3; what = "y overlapping A"; break;
            case 14: ty->data = (float *)tB->data + 5; what = "y overlapping B"; break;
            case 15: ty->data = tb->data; what = "y overlapping bias"; break;
            case 16: ty->stride[0] = 0; what = "y rows sharing memory"; break;
            case 17: ty->shape[1] = 5; p[side][1] = NULL; what = "y out != B out (no W)"; break;
            case 18: p[side][0] = NULL; what = "NULL x"; break;
            default: ok = 0; break;
            }
        }
        if (!ok)
            break;
        const lcx_status sc = lcx_lora_linear(cpu, p[0][0], p[0][1], p[0][2], p[0][3], p[0][4], s, p[0][5], cse & 1);
        snprintf(mg, sizeof mg, "%s", lcx_last_error());
        const lcx_status sg = lcx_lora_linear(gpu, p[1][0], p[1][1], p[1][2], p[1][3], p[1][4], s, p[1][5], cse & 1);
        lora_expect_same_refusal(sg, lcx_last_error(), sc, mg, what);
    }
    /* batched */
    for (int cse = 0;; cse++) {
        lcx_tensor tx[2], ty[2];
        lcx_lora_adapter ad[2][3];
        const lcx_lora_adapter *pad[2] = {ad[0], ad[1]};
        int32_t map[4] = {0, 1, -1, 0};
        int32_t n = 3;
        int ok = 1;
        const char *what = "";
        for (int side = 0; side < 2; side++) {
            lcx_tensor_init(&tx[side], (side ? lview_dev(&x) : x.t).data, LCX_F32, 2, sx);
            lcx_tensor_init(&ty[side], (side ? lview_dev(&y) : y.t).data, LCX_F32, 2, sy);
            for (int i = 0; i < 3; i++) {
                const int64_t s2a[2] = {ranks[i], 8}, s2b[2] = {6, ranks[i]};
                lcx_tensor_init(&ad[side][i].a, (side ? lview_dev(&A[i]) : A[i].t).data, LCX_F32, 2, s2a);
                lcx_tensor_init(&ad[side][i].b, (side ? lview_dev(&B[i]) : B[i].t).data, LCX_F32, 2, s2b);
                ad[side][i].scale = 0.5f;
            }
            switch (cse) {
            case 0: map[3] = 3; what = "adapter index == n_adapters"; break;
            case 1: map[2] = -2; what = "adapter index -2"; break;
            case 2: n = -1; pad[side] = NULL; what = "n_adapters < 0"; break; /* (message prints the pointer) */
            case 3: pad[side] = NULL; what = "adapters NULL with n_adapters 3"; break;
            case 4: ad[side][1].a.shape[1] = 7; ad[side][1].a.stride[0] = 7; what = "adapter A in != x in"; break;
            case 5: ad[side][0].b.shape[0] = 5; what = "adapter B out != y out"; break;
            case 6: ad[side][1].a.shape[0] = 2; what = "adapter A rank != B rank"; break;
            case 7: ad[side][1].scale = NAN; what = "adapter NaN scale"; break;
            case 8: ad[side][2].scale = INFINITY; what = "unused adapter inf scale"; break;
            case 9: ty[side].data = tx[side].data; what = "y aliasing x"; break;
            case 10: ty[side].data = (float *)ad[side][0].b.data + 2; what = "y overlapping adapter 0 B"; break;
            case 11: ty[side].data = ad[side][2].a.data; what = "y aliasing unused adapter A"; break;
            case 12: ty[side].shape[0] = 3; what = "y tokens != x tokens"; break;
            default: ok = 0; break;
            }
        }
        if (!ok)
            break;
        const lcx_status sc = lcx_lora_batched(cpu, &tx[0], pad[0], n, map, &ty[0]);
        snprintf(mg, sizeof mg, "%s", lcx_last_error());
        const lcx_status sg = lcx_lora_batched(gpu, &tx[1], pad[1], n, map, &ty[1]);
        lora_expect_same_refusal(sg, lcx_last_error(), sc, mg, what);
    }
    /* merge: W [6][8] at w, A [2][8] at a, B [6][2] at b */
    for (int cse = 0;; cse++) {
        lcx_tensor tw[2], ta[2], tB[2];
        float s = 0.5f;
        int ok = 1;
        const char *what = "";
        for (int side = 0; side < 2; side++) {
            lcx_tensor_init(&tw[side], (side ? lview_dev(&w) : w.t).data, LCX_F32, 2, sw);
            lcx_tensor_init(&ta[side], (side ? lview_dev(&a) : a.t).data, LCX_F32, 2, sa);
            lcx_tensor_init(&tB[side], (side ? lview_dev(&b) : b.t).data, LCX_F32, 2, sB);
            switch (cse) {
            case 0: tw[side].shape[1] = 7; tw[side].stride[0] = 7; what = "W in != A in"; break;
            case 1: tw[side].shape[0] = 5; what = "W out != B out"; break;
            case 2: ta[side].shape[0] = 3; what = "A rank 3 != B rank 2"; break;
            case 3: ta[side].shape[0] = 0; tB[side].shape[1] = 0; tB[side].stride[0] = 1; what = "rank 0"; break;
            case 4: s = INFINITY; what = "inf scale"; break;
            case 5: tw[side].data = ta[side].data; what = "W aliasing A"; break;
            case 6: tw[side].data = (float *)tB[side].data + 1; what = "W overlapping B"; break;
            case 7: tw[side].stride[0] = 0; what = "W rows sharing memory"; break;
            default: ok = 0; break;
            }
        }
        if (!ok)
            break;
        const lcx_status sc = lcx_lora_merge(cpu, &tw[0], &ta[0], &tB[0], s);
        snprintf(mg, sizeof mg, "%s", lcx_last_error());
        const lcx_status sg = lcx_lora_merge(gpu, &tw[1], &ta[1], &tB[1], s);
        lora_expect_same_refusal(sg, lcx_last_error(), sc, mg, what);
    }
    assert_int_equal(lcx_lora_linear(NULL, &x.t, NULL, NULL, NULL, NULL, 1.0f, &y.t, 0), LCX_E_INVALID);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    for (int i = 0; i < 12; i++) {
        lview_unchanged(all[i], "lora wrote on bad input");
        lview_free(all[i]);
    }
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

/* ---- the backend around the ops: thread state, devices, caller streams,
 * graph capture, alignment, failures ---- */

static lcx_tensor dense(void *data, lcx_dtype dt, int32_t nd, const int64_t *shape)
{
    lcx_tensor t;
    assert_int_equal(lcx_tensor_init(&t, data, dt, nd, shape), LCX_OK);
    return t;
}

static void random_f32(float *p, size_t n, lcx_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)lcx_rng_uniform(rng, -2, 2);
}

/* A thread that has never used CUDA: its state before and after a
 * conversion queued and waited for on `ctx`. */
typedef struct thread_probe {
    lcx_context *ctx;
    const lcx_tensor *src, *dst;
    int dev0, ctx0, dev1, ctx1;
    lcx_status st;
    char msg[256];
} thread_probe;

static void *thread_probe_run(void *arg)
{
    thread_probe *p = arg;
    p->st = lcx_cuda_thread_state(&p->dev0, &p->ctx0);
    if (p->st == LCX_OK)
        p->st = lcx_convert(p->ctx, p->src, p->dst);
    if (p->st == LCX_OK)
        p->st = lcx_context_synchronize(p->ctx);
    if (p->st != LCX_OK)
        snprintf(p->msg, sizeof p->msg, "%s", lcx_last_error());
    if (lcx_cuda_thread_state(&p->dev1, &p->ctx1) != LCX_OK)
        p->dev1 = p->ctx1 = -2;
    return NULL;
}

static void *ctx_alloc(lcx_context *ctx, size_t bytes)
{
    void *p = NULL;
    if (lcx_cuda_alloc(ctx->cuda, bytes, &p) != LCX_OK)
        lcx_fail_msg("cudaMalloc: %s", lcx_last_error());
    return p;
}

/* Convert f32 to bf16 on ctx, from this thread or from a fresh one, and
 * check the result and that the thread's state is as it was: same device,
 * and a thread that had no current context still has none. */
static void convert_on(lcx_context *ctx, int fresh_thread, lcx_rng *rng)
{
    enum { N = 1000 };
    float h[N];
    uint16_t want[N], got[N];
    random_f32(h, N, rng);
    for (int i = 0; i < N; i++)
        want[i] = lcx_f32_to_bf16_bits(lcx_f32_bits(h[i]));
    float *ds = ctx_alloc(ctx, sizeof h);
    uint16_t *dd = ctx_alloc(ctx, sizeof got);
    assert_int_equal(lcx_cuda_copy(ctx->cuda, ds, h, sizeof h, 1), LCX_OK);
    const int64_t shape[1] = {N};
    const lcx_tensor s = dense(ds, LCX_F32, 1, shape), d = dense(dd, LCX_BF16, 1, shape);
    thread_probe p = {ctx, &s, &d, -1, -1, -1, -1, LCX_OK, ""};
    if (fresh_thread) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, thread_probe_run, &p), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
    } else {
        thread_probe_run(&p);
    }
    if (p.st != LCX_OK)
        lcx_fail_msg("convert (%s thread): %s", fresh_thread ? "fresh" : "calling", p.msg);
    assert_int_equal(lcx_cuda_copy(ctx->cuda, got, dd, sizeof got, 0), LCX_OK);
    lcx_expect_bytes_equal(got, want, sizeof got, "convert");
    if (fresh_thread && p.ctx0 >= 0) /* the driver says whether a context is current */
        assert_int_equal(p.ctx0, 0);
    if (p.ctx1 != p.ctx0)
        lcx_fail_msg("the %s thread's current context changed (%d before, %d after; device %d)",
                     fresh_thread ? "fresh" : "calling", p.ctx0, p.ctx1, p.dev1);
    assert_int_equal(p.dev1, p.dev0);
    lcx_cuda_free(ctx->cuda, ds);
    lcx_cuda_free(ctx->cuda, dd);
}

/* The calling thread's device is never changed, and a thread without a
 * current context is left without one (no primary context made current for
 * the device 0 such a thread reports). */
static void test_cuda_thread_state_kept(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 301);
    convert_on(gpu, 0, &rng);
    convert_on(gpu, 1, &rng);
}

/* A context on device 1 (skipped with fewer than two devices): correct
 * results, the caller's current device 0 unchanged, a fresh thread left
 * without a context. */
static void test_cuda_second_device(void **state)
{
    (void)state;
    if (lcx_cuda_device_count() < 2) {
        skip();
        return;
    }
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 302);
    assert_int_equal(lcx_cuda_set_device(0), LCX_OK);
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    o.cuda_device = 1;
    lcx_context *c = NULL;
    if (lcx_context_create(&o, &c) != LCX_OK)
        lcx_fail_msg("context on device 1: %s", lcx_last_error());
    int dev, has;
    assert_int_equal(lcx_cuda_thread_state(&dev, &has), LCX_OK);
    assert_int_equal(dev, 0);
    convert_on(c, 0, &rng);
    convert_on(c, 1, &rng);
    lcx_context_destroy(c);
    assert_int_equal(lcx_cuda_thread_state(&dev, &has), LCX_OK);
    assert_int_equal(dev, 0);
}

/* The shared-memory opt-in of a kernel is a property of the device, shared
 * by every context there: a second context asking for less must not lower
 * it under the first (SIMT attention, f32: its shared memory grows with the
 * head dim; d = 256 needs more than d = 192, both over 48 KiB) */
static void test_cuda_smem_optin_shared(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 305);
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    lcx_context *c2 = NULL, *const first = gpu;
    if (lcx_context_create(&o, &c2) != LCX_OK)
        lcx_fail_msg("second context: %s", lcx_last_error());
    const int64_t dims[3] = {256, 192, 256};
    for (int x = 0; x < 3; x++) {
        att_case c = att_base();
        c.Sq = c.Sk = 40;
        c.D = c.Dv = dims[x];
        c.causal = 1;
        gpu = x == 1 ? c2 : first;
        att_run(&c, &rng, "cuda attention: two contexts, growing and shrinking shared memory");
    }
    gpu = first;
    lcx_context_destroy(c2);
}

/* a context on a stream the test owns */
static lcx_context *ctx_on_stream(void *stream)
{
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    o.cuda_stream = stream;
    lcx_context *c = NULL;
    if (lcx_context_create(&o, &c) != LCX_OK)
        lcx_fail_msg("context on a caller stream: %s", lcx_last_error());
    return c;
}

/* Work is ordered on the caller's stream: a large device copy queued there
 * fills the inputs, two ops follow without any wait, and after one stream
 * synchronisation the results equal those of the same ops on inputs that
 * were ready beforehand. */
static void test_cuda_caller_stream_order(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 303);
    void *cs = NULL;
    assert_int_equal(lcx_cuda_stream_create(gpu->cuda, &cs), LCX_OK);
    lcx_context *c = ctx_on_stream(cs);
    /* 8 MiB copied; the ops read its last 4096 floats, written last */
    const size_t big = (size_t)2 << 20, n = 4096;
    float *h = malloc(big * sizeof *h), *poison = malloc(big * sizeof *h);
    random_f32(h, big, &rng);
    memset(poison, 0xff, big * sizeof *h);
    float *src = dev_alloc(big * sizeof *h), *dst = dev_alloc(big * sizeof *h), *ref = dev_alloc(n * sizeof *h);
    uint16_t *out = dev_alloc(n * 2), *ref_out = dev_alloc(n * 2);
    to_dev(src, h, big * sizeof *h);
    to_dev(dst, poison, big * sizeof *h);
    to_dev(ref, h + big - n, n * sizeof *h);
    to_dev(out, poison, n * 2);
    lcx_rope_config cfg;
    rope_cfg(&cfg, 1, 32, 32, 0, 0, &rng);
    lcx_rope *rope = NULL;
    assert_int_equal(lcx_rope_create(cpu, &cfg, 0, &rope), LCX_OK);
    /* tail as [1][32 tokens][4 heads][32] for RoPE, flat for the conversion */
    const int64_t sq[4] = {1, 32, 4, 32}, sflat[1] = {(int64_t)n};
    const lcx_tensor q = dense(dst + big - n, LCX_F32, 4, sq), qr = dense(ref, LCX_F32, 4, sq);
    const lcx_tensor f = dense(dst + big - n, LCX_F32, 1, sflat), fr = dense(ref, LCX_F32, 1, sflat);
    const lcx_tensor o = dense(out, LCX_BF16, 1, sflat), orf = dense(ref_out, LCX_BF16, 1, sflat);

    assert_int_equal(lcx_cuda_copy_async(c->cuda, cs, dst, src, big * sizeof *h, 2), LCX_OK);
    if (lcx_convert(c, &f, &o) != LCX_OK || lcx_rope_apply(c, rope, &q, NULL, NULL) != LCX_OK)
        lcx_fail_msg("ops on the caller stream: %s", lcx_last_error());
    assert_int_equal(lcx_cuda_stream_sync(c->cuda, cs), LCX_OK);

    assert_int_equal(lcx_convert(gpu, &fr, &orf), LCX_OK);
    assert_int_equal(lcx_rope_apply(gpu, rope, &qr, NULL, NULL), LCX_OK);
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    uint16_t *o1 = malloc(n * 2), *o2 = malloc(n * 2);
    float *t1 = malloc(n * sizeof *h), *t2 = malloc(n * sizeof *h);
    to_host(o1, out, n * 2);
    to_host(o2, ref_out, n * 2);
    to_host(t1, dst + big - n, n * sizeof *h);
    to_host(t2, ref, n * sizeof *h);
    lcx_expect_bytes_equal(o1, o2, n * 2, "convert after a copy on the caller stream");
    lcx_expect_bytes_equal(t1, t2, n * sizeof *h, "rope after a convert on the caller stream");

    lcx_rope_destroy(rope);
    lcx_context_destroy(c);
    lcx_cuda_stream_destroy(gpu->cuda, cs);
    lcx_cuda_free(gpu->cuda, src);
    lcx_cuda_free(gpu->cuda, dst);
    lcx_cuda_free(gpu->cuda, ref);
    lcx_cuda_free(gpu->cuda, out);
    lcx_cuda_free(gpu->cuda, ref_out);
    free(h);
    free(poison);
    free(o1);
    free(o2);
    free(t1);
    free(t2);
}

/* RoPE with device positions and token log-probabilities captured into a
 * CUDA graph on the context's (caller) stream: the calls return at once
 * (nothing runs), the launched graph gives the results of the same calls
 * made outside capture, and when the positions or targets in device memory
 * are made bad before a launch, the rotation or the log-probabilities write
 * nothing. A call that would have to grow the scratch is refused during
 * capture without breaking it. */
static void test_cuda_graph_capture(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 304);
    void *cs = NULL;
    assert_int_equal(lcx_cuda_stream_create(gpu->cuda, &cs), LCX_OK);
    lcx_context *c = ctx_on_stream(cs);
    lcx_rope_config cfg;
    rope_cfg(&cfg, 2, 16, 16, 0, 0, &rng);
    lcx_rope *rope = NULL;
    assert_int_equal(lcx_rope_create(cpu, &cfg, 8192, &rope), LCX_OK);

    enum { B = 2, S = 6, H = 2, D = 16, ROWS = 6, V = 50, NQ = B * S * H * D, NK = B * S * D };
    float hq[NQ], hk[NK], hl[ROWS * V], rq[NQ], rk[NK], rout[ROWS], gq[NQ], gk[NK], gout[ROWS], poison[ROWS];
    const int64_t hpos[B * S] = {0, 5, 17, 1000, 4095, 4096, 70000, 2147483647LL, 3, 9000, 131071, 12};
    const int64_t htg[ROWS] = {0, 49, -100, 7, 13, 25};
    random_f32(hq, NQ, &rng);
    random_f32(hk, NK, &rng);
    random_f32(hl, ROWS * V, &rng);
    memset(poison, 0xff, sizeof poison);
    float *dq = dev_alloc(sizeof hq), *dk = dev_alloc(sizeof hk), *dl = dev_alloc(sizeof hl);
    float *dout = dev_alloc(sizeof rout);
    int64_t *dpos = dev_alloc(sizeof hpos), *dtg = dev_alloc(sizeof htg);
    to_dev(dpos, hpos, sizeof hpos);
    to_dev(dtg, htg, sizeof htg);
    to_dev(dl, hl, sizeof hl);
    const int64_t sq[4] = {B, S, H, D}, sk[4] = {B, S, 1, D}, sl[3] = {3, 2, V};
    const lcx_tensor q = dense(dq, LCX_F32, 4, sq), k = dense(dk, LCX_F32, 4, sk), lg = dense(dl, LCX_F32, 3, sl);
#define RESET()                                                                                                  \
    do {                                                                                                       \
        to_dev(dq, hq, sizeof hq);                                                                             \
        to_dev(dk, hk, sizeof hk);                                                                             \
        to_dev(dout, poison, sizeof poison);                                                                   \
    } while (0)
#define READ()                                                                                                   \
    do {                                                                                                       \
        assert_int_equal(lcx_context_synchronize(c), LCX_OK);                                                  \
        to_host(gq, dq, sizeof gq);                                                                            \
        to_host(gk, dk, sizeof gk);                                                                            \
        to_host(gout, dout, sizeof gout);                                                                      \
    } while (0)

    /* the reference: the same calls outside capture */
    RESET();
    assert_int_equal(lcx_rope_apply(c, rope, &q, &k, dpos), LCX_OK);
    assert_int_equal(lcx_token_logprobs(c, &lg, dtg, dout), LCX_OK);
    assert_int_equal(lcx_context_synchronize(c), LCX_OK);
    to_host(rq, dq, sizeof rq);
    to_host(rk, dk, sizeof rk);
    to_host(rout, dout, sizeof rout);

    /* LoRA with a rank needs scratch this fresh context does not have yet */
    const int64_t sx[2] = {2, 4}, sa[2] = {1, 4}, sb[2] = {3, 1}, sy[2] = {2, 3};
    float *lx = dev_alloc(64), *la = dev_alloc(64), *lb = dev_alloc(64), *ly = dev_alloc(64);
    to_dev(ly, poison, 2 * 3 * sizeof(float));
    const lcx_tensor tx = dense(lx, LCX_F32, 2, sx), ta = dense(la, LCX_F32, 2, sa), tb = dense(lb, LCX_F32, 2, sb),
                     ty = dense(ly, LCX_F32, 2, sy);

    RESET();
    assert_int_equal(lcx_cuda_capture_begin(c->cuda), LCX_OK);
    const lcx_status s1 = lcx_rope_apply(c, rope, &q, &k, dpos);
    const lcx_status s2 = lcx_token_logprobs(c, &lg, dtg, dout);
    const lcx_status s3 = lcx_lora_linear(c, &tx, NULL, NULL, &ta, &tb, 1.0f, &ty, 0);
    char m3[256];
    snprintf(m3, sizeof m3, "%s", lcx_last_error());
    void *graph = NULL;
    const lcx_status se = lcx_cuda_capture_end(c->cuda, &graph);
    if (se != LCX_OK)
        lcx_fail_msg("capture: %s", lcx_last_error());
    assert_int_equal(s1, LCX_OK);
    assert_int_equal(s2, LCX_OK);
    assert_int_equal(s3, LCX_E_UNSUPPORTED);
    assert_non_null(strstr(m3, "captured"));

    READ(); /* nothing has run yet */
    lcx_expect_bytes_equal(gq, hq, sizeof gq, "q before the graph runs");
    lcx_expect_bytes_equal(gout, poison, sizeof gout, "out before the graph runs");

    assert_int_equal(lcx_cuda_graph_launch(c->cuda, graph), LCX_OK);
    READ();
    lcx_expect_bytes_equal(gq, rq, sizeof gq, "captured rope q");
    lcx_expect_bytes_equal(gk, rk, sizeof gk, "captured rope k");
    lcx_expect_bytes_equal(gout, rout, sizeof gout, "captured logprobs");

    /* a position out of range: the rotation writes nothing */
    int64_t bad = -1;
    RESET();
    to_dev(dpos + 7, &bad, sizeof bad);
    assert_int_equal(lcx_cuda_graph_launch(c->cuda, graph), LCX_OK);
    READ();
    lcx_expect_bytes_equal(gq, hq, sizeof gq, "q after a bad position");
    lcx_expect_bytes_equal(gk, hk, sizeof gk, "k after a bad position");
    lcx_expect_bytes_equal(gout, rout, sizeof gout, "logprobs beside a bad position");
    /* outside capture the same call is refused */
    assert_int_equal(lcx_rope_apply(c, rope, &q, &k, dpos), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "positions[1][1]"));

    /* a target >= vocab: the log-probabilities write nothing */
    bad = V;
    RESET();
    to_dev(dpos, hpos, sizeof hpos);
    to_dev(dtg + 4, &bad, sizeof bad);
    assert_int_equal(lcx_cuda_graph_launch(c->cuda, graph), LCX_OK);
    READ();
    lcx_expect_bytes_equal(gq, rq, sizeof gq, "q beside a bad target");
    lcx_expect_bytes_equal(gout, poison, sizeof gout, "out after a bad target");
    assert_int_equal(lcx_token_logprobs(c, &lg, dtg, dout), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "targets[4]"));

    /* good inputs again: the graph still works */
    RESET();
    to_dev(dtg, htg, sizeof htg);
    assert_int_equal(lcx_cuda_graph_launch(c->cuda, graph), LCX_OK);
    READ();
    lcx_expect_bytes_equal(gq, rq, sizeof gq, "captured rope q, again");
    lcx_expect_bytes_equal(gout, rout, sizeof gout, "captured logprobs, again");
    to_host(gout, ly, 2 * 3 * sizeof(float));
    lcx_expect_bytes_equal(gout, poison, 2 * 3 * sizeof(float), "lora refused during capture");
#undef RESET
#undef READ

    lcx_cuda_graph_destroy(c->cuda, graph);
    lcx_rope_destroy(rope);
    lcx_context_destroy(c);
    lcx_cuda_stream_destroy(gpu->cuda, cs);
    void *all[10] = {dq, dk, dl, dout, dpos, dtg, lx, la, lb, ly};
    for (int i = 0; i < 10; i++)
        lcx_cuda_free(gpu->cuda, all[i]);
}

/* One misaligned device pointer per op family on the CUDA context:
 * LCX_E_INVALID naming the argument, and not a byte written (the whole
 * arena the arguments live in is unchanged). */
static void expect_misaligned(lcx_status st, const char *what, const char *arg)
{
    const char *m = lcx_last_error();
    if (st != LCX_E_INVALID || !strstr(m, "aligned") || !strstr(m, arg))
        lcx_fail_msg("%s: status %d, message '%s' (want LCX_E_INVALID about %s alignment)", what, (int)st, m, arg);
}

static void test_cuda_misaligned(void **state)
{
    (void)state;
    enum { REG = 4096, NREG = 24 };
    const size_t bytes = (size_t)REG * NREG;
    unsigned char *h = malloc(bytes), *back = malloc(bytes);
    memset(h, 0xab, bytes);
    unsigned char *arena = dev_alloc(bytes);
    to_dev(arena, h, bytes);
#define AT(i, off) ((void *)(arena + (size_t)(i) * REG + (off)))

    const int64_t s64[1] = {64};
    lcx_tensor a = dense(AT(0, 2), LCX_F32, 1, s64), b = dense(AT(1, 0), LCX_BF16, 1, s64);
    expect_misaligned(lcx_convert(gpu, &a, &b), "convert", "src");

    lcx_rope_config cfg;
    rope_cfg(&cfg, 0, 16, 16, 0, 0, NULL);
    lcx_rope *rope = NULL;
    assert_int_equal(lcx_rope_create(cpu, &cfg, 0, &rope), LCX_OK);
    const int64_t sq[4] = {1, 4, 2, 16}, sk[4] = {1, 4, 1, 16};
    lcx_tensor q = dense(AT(2, 0), LCX_F32, 4, sq), k = dense(AT(3, 0), LCX_F32, 4, sk);
    expect_misaligned(lcx_rope_apply(gpu, rope, &q, &k, AT(4, 4)), "rope_apply", "positions");
    expect_misaligned(lcx_rope_rerotate(gpu, rope, rope, &k, AT(4, 4)), "rope_rerotate", "positions");
    lcx_tensor kb = dense(AT(3, 1), LCX_BF16, 4, sk);
    expect_misaligned(lcx_rope_shift(gpu, rope, &kb, 3), "rope_shift", "k");
    lcx_rope_destroy(rope);

    const int64_t docs[2] = {10, 20};
    expect_misaligned(lcx_pose_sample_batch(gpu, 1, 2, 2, docs, 8, 64, 0, NULL, AT(5, 4), NULL), "pose", "pos_out");
    expect_misaligned(lcx_pose_sample_batch(gpu, 1, 2, 2, docs, 8, 64, 0, AT(5, 0), NULL, AT(6, 4)), "pose",
                      "n_out");
    expect_misaligned(lcx_randpos_sample_batch(gpu, 1, 2, 2, 4, 16, AT(5, 4)), "randpos", "pos_out");

    const int64_t sx[2] = {2, 4}, sa[2] = {1, 4}, sb[2] = {3, 1}, sy[2] = {2, 3}, sw[2] = {3, 4};
    lcx_tensor lx = dense(AT(7, 1), LCX_BF16, 2, sx), la = dense(AT(8, 0), LCX_BF16, 2, sa),
               lb = dense(AT(9, 0), LCX_BF16, 2, sb), ly = dense(AT(10, 0), LCX_F32, 2, sy);
    expect_misaligned(lcx_lora_linear(gpu, &lx, NULL, NULL, &la, &lb, 1.0f, &ly, 0), "lora_linear", "x");
    lcx_lora_adapter ad = {dense(AT(8, 0), LCX_F32, 2, sa), dense(AT(9, 0), LCX_F32, 2, sb), 0.5f};
    const int32_t map[2] = {0, 0};
    lx = dense(AT(7, 0), LCX_F32, 2, sx);
    ly = dense(AT(10, 2), LCX_F32, 2, sy);
    expect_misaligned(lcx_lora_batched(gpu, &lx, &ad, 1, map, &ly), "lora_batched", "y");
    lcx_tensor lw = dense(AT(11, 1), LCX_BF16, 2, sw);
    expect_misaligned(lcx_lora_merge(gpu, &lw, &la, &lb, 1.0f), "lora_merge", "w");

    const lcx_tensor mi[2] = {dense(AT(12, 0), LCX_F32, 1, s64), dense(AT(13, 0), LCX_F32, 1, s64)};
    const double co[2] = {0.5, 0.5};
    lcx_tensor mo = dense(AT(14, 1), LCX_BF16, 1, s64);
    expect_misaligned(lcx_merge_weights(gpu, 2, mi, co, &mo), "merge_weights", "out");

    const int64_t sl[2] = {2, 50};
    const lcx_tensor lg = dense(AT(15, 0), LCX_F32, 2, sl), lg2 = dense(AT(16, 0), LCX_F32, 2, sl);
    expect_misaligned(lcx_token_logprobs(gpu, &lg, AT(17, 4), AT(18, 0)), "token_logprobs", "targets");
    expect_misaligned(lcx_token_logprobs(gpu, &lg, AT(17, 0), AT(18, 2)), "token_logprobs", "out");
    expect_misaligned(lcx_token_impact(gpu, &lg, &lg2, AT(17, 0), AT(18, 2)), "token_impact", "out");

    const int64_t st4[4] = {1, 4, 2, 8};
    const lcx_tensor aq = dense(AT(19, 0), LCX_F32, 4, st4), ak = dense(AT(20, 0), LCX_F32, 4, st4),
                     av = dense(AT(21, 0), LCX_F32, 4, st4), ao = dense(AT(22, 0), LCX_F32, 4, st4);
    expect_misaligned(lcx_attention_forward(gpu, NULL, &aq, &ak, &av, &ao, AT(23, 2)), "attention_forward", "lse");
    expect_misaligned(lcx_attention_merge(gpu, &aq, AT(23, 2), &ak, AT(23, 64), &ao, AT(23, 128)),
                      "attention_merge", "lse_a");
    expect_misaligned(lcx_attention_merge(gpu, &aq, AT(23, 0), &ak, AT(23, 64), &ao, AT(23, 130)),
                      "attention_merge", "lse");
    lcx_s2_params s2;
    lcx_s2_params_default(&s2);
    s2.group_size = 2;
    expect_misaligned(lcx_attention_s2_forward(gpu, &s2, &aq, &ak, &av, &ao, AT(23, 2)), "attention_s2", "lse");
#undef AT

    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(back, arena, bytes);
    lcx_expect_bytes_equal(back, h, bytes, "device memory after misaligned calls");
    lcx_cuda_free(gpu->cuda, arena);
    free(h);
    free(back);
}

/* A call that fails on the device (LoRA's f32 temporary x A^T of 2^16
 * tokens x rank 2^30, 256 TiB, from zero-stride views over a few bytes):
 * LCX_E_DEVICE with CUDA's error in the message, nothing written, and the
 * context still works (the scratch it had is gone and comes back). */
static void test_cuda_failure_recovery(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 305);
    const int64_t T = 1 << 16, R = (int64_t)1 << 30;
    unsigned char *poison = malloc((size_t)T * 4), *back = malloc((size_t)T * 4);
    memset(poison, 0xab, (size_t)T * 4);
    float *one = dev_alloc(256), *dy = dev_alloc((size_t)T * 4);
    to_dev(dy, poison, (size_t)T * 4);
    lcx_tensor x = {one, LCX_F32, 2, {T, 1}, {0, 1}}, a = {one + 8, LCX_F32, 2, {R, 1}, {0, 1}},
               b = {one + 16, LCX_F32, 2, {1, R}, {0, 0}};
    const int64_t sy[2] = {T, 1};
    const lcx_tensor y = dense(dy, LCX_F32, 2, sy);
    const lcx_status st = lcx_lora_linear(gpu, &x, NULL, NULL, &a, &b, 1.0f, &y, 0);
    if (st != LCX_E_DEVICE || !strstr(lcx_last_error(), "cudaErrorMemoryAllocation"))
        lcx_fail_msg("a 256 TiB temporary: status %d, '%s'", (int)st, lcx_last_error());
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(back, dy, (size_t)T * 4);
    lcx_expect_bytes_equal(back, poison, (size_t)T * 4, "y after the failed call");

    /* the context works: a LoRA call with a rank (scratch again) equals the CPU */
    enum { LT = 5, IN = 7, OUT = 3, RK = 2 };
    float hx[LT * IN], ha[RK * IN], hb[OUT * RK], hy[LT * OUT], gy[LT * OUT];
    random_f32(hx, LT * IN, &rng);
    random_f32(ha, RK * IN, &rng);
    random_f32(hb, OUT * RK, &rng);
    float *dx = dev_alloc(sizeof hx), *da = dev_alloc(sizeof ha), *db = dev_alloc(sizeof hb);
    to_dev(dx, hx, sizeof hx);
    to_dev(da, ha, sizeof ha);
    to_dev(db, hb, sizeof hb);
    const int64_t shx[2] = {LT, IN}, sha[2] = {RK, IN}, shb[2] = {OUT, RK}, shy[2] = {LT, OUT};
    lcx_tensor cx = dense(hx, LCX_F32, 2, shx), ca = dense(ha, LCX_F32, 2, sha), cb = dense(hb, LCX_F32, 2, shb),
               cy = dense(hy, LCX_F32, 2, shy);
    assert_int_equal(lcx_lora_linear(cpu, &cx, NULL, NULL, &ca, &cb, 0.75f, &cy, 0), LCX_OK);
    cx.data = dx;
    ca.data = da;
    cb.data = db;
    cy.data = dy;
    if (lcx_lora_linear(gpu, &cx, NULL, NULL, &ca, &cb, 0.75f, &cy, 0) != LCX_OK)
        lcx_fail_msg("lora after a failure: %s", lcx_last_error());
    assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
    to_host(gy, dy, sizeof gy);
    for (int i = 0; i < LT * OUT; i++)
        if (!(fabs((double)gy[i] - (double)hy[i]) <= 1e-5 * (1 + fabs((double)hy[i]))))
            lcx_fail_msg("lora after a failure: y[%d] = %g, CPU %g", i, (double)gy[i], (double)hy[i]);
    lcx_cuda_free(gpu->cuda, one);
    lcx_cuda_free(gpu->cuda, dy);
    lcx_cuda_free(gpu->cuda, dx);
    lcx_cuda_free(gpu->cuda, da);
    lcx_cuda_free(gpu->cuda, db);
    free(poison);
    free(back);
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
        cmocka_unit_test(test_cuda_lora_linear_vs_scalar),
        cmocka_unit_test(test_cuda_lora_wgmma),
        cmocka_unit_test(test_cuda_lora_batched_vs_scalar),
        cmocka_unit_test(test_cuda_lora_merge_vs_scalar),
        cmocka_unit_test(test_cuda_lora_bad_input),
        cmocka_unit_test(test_cuda_attention_shapes),
        cmocka_unit_test(test_cuda_attention_dtypes_varlen_decode),
        cmocka_unit_test(test_cuda_attention_merge),
        cmocka_unit_test(test_cuda_attention_bad_input),
        cmocka_unit_test(test_cuda_attention_s2),
        cmocka_unit_test(test_cuda_attention_tensor_cores),
        cmocka_unit_test(test_cuda_attention_wgmma),
        cmocka_unit_test(test_cuda_attention_golden),
        cmocka_unit_test(test_cuda_thread_state_kept),
        cmocka_unit_test(test_cuda_second_device),
        cmocka_unit_test(test_cuda_smem_optin_shared),
        cmocka_unit_test(test_cuda_caller_stream_order),
        cmocka_unit_test(test_cuda_graph_capture),
        cmocka_unit_test(test_cuda_misaligned),
        cmocka_unit_test(test_cuda_failure_recovery),
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
