/* lcx_merge_weights on every ISA against a double oracle: mixed dtypes,
 * strided views, in place, exact averaging of bf16 models, threads, bad
 * input. f32 accumulation: |error| <= (n + 1) 2^-23 sum|c_i x_i| before the
 * single rounding to the output dtype (half an ulp: 2^-9 bf16, 2^-12 f16
 * relative; the tests allow one ulp for an accumulation near a tie). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "ref/convert_ref.h"

static const lcx_dtype dts[3] = {LCX_F32, LCX_F16, LCX_BF16};

static double get(const lcx_tensor *t, int64_t i)
{
    if (t->dtype == LCX_F32)
        return ((const float *)t->data)[i];
    return lcx_ref_decode16(t->dtype, ((const uint16_t *)t->data)[i]);
}

static void put(lcx_tensor *t, int64_t i, double v)
{
    if (t->dtype == LCX_F32)
        ((float *)t->data)[i] = (float)v;
    else
        ((uint16_t *)t->data)[i] = lcx_ref_encode16(t->dtype, lcx_ref_round(t->dtype, v));
}

/* element offset of flat index f */
static int64_t off(const lcx_tensor *t, int64_t f)
{
    int64_t o = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        o += (f % t->shape[d]) * t->stride[d];
        f /= t->shape[d];
    }
    return o;
}

static void make(lcx_tensor *t, lcx_dtype dt, int nd, const int64_t *shape, int pad, lcx_rng *rng)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = nd;
    int64_t span = 1;
    for (int d = nd - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->stride[d] = d == nd - 1 ? 1 : span + (pad ? lcx_rng_range(rng, 0, 3) : 0);
        span = t->stride[d] * shape[d];
    }
    t->data = calloc((size_t)span + 1, lcx_dtype_size(dt));
    for (int64_t i = 0; i < span; i++)
        put(t, i, lcx_rng_uniform(rng, -3, 3));
}

static void test_merge_random(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 31);
    lcx_context *ctx = lcx_test_context(0);
    for (int it = 0; it < 80; it++) {
        const int n = (int)lcx_rng_range(&rng, 1, 5), nd = (int)lcx_rng_range(&rng, 1, 4);
        int64_t shape[4], numel = 1;
        for (int d = 0; d < nd; d++) {
            shape[d] = lcx_rng_range(&rng, 1, d == nd - 1 ? (it < 10 ? 40000 : 300) : 5);
            numel *= shape[d];
        }
        lcx_tensor in[5], out;
        double c[5];
        for (int i = 0; i < n; i++) {
            make(&in[i], dts[lcx_rng_range(&rng, 0, 2)], nd, shape, it & 1, &rng);
            c[i] = lcx_rng_uniform(&rng, -2, 2);
        }
        make(&out, dts[lcx_rng_range(&rng, 0, 2)], nd, shape, it & 2, &rng);
        /* padding of out must survive */
        const size_t ob = (size_t)(out.stride[0] * out.shape[0]) * lcx_dtype_size(out.dtype);
        unsigned char *before = malloc(ob);
        memcpy(before, out.data, ob);
        if (lcx_merge_weights(ctx, n, in, c, &out) != LCX_OK)
            lcx_fail_msg("merge: %s", lcx_last_error());
        char *touched = calloc(ob, 1);
        const size_t es = lcx_dtype_size(out.dtype);
        for (int64_t f = 0; f < numel; f++) {
            double want = 0, mag = 0;
            for (int i = 0; i < n; i++) {
                const double v = (double)(float)c[i] * get(&in[i], off(&in[i], f));
                want += v;
                mag += fabs(v);
            }
            const int64_t o = off(&out, f);
            memset(touched + o * es, 1, es);
            const double got = get(&out, o);
            const double rel = out.dtype == LCX_F32 ? 0 : out.dtype == LCX_BF16 ? 0x1p-8 : 0x1p-11;
            const double tol = (n + 1) * 0x1p-23 * mag + rel * fabs(want) + (out.dtype == LCX_F16 ? 0x1p-24 : 0);
            if (!(fabs(got - want) <= tol))
                lcx_fail_msg("n=%d elem %lld: %.9g, want %.9g (tol %.3g)", n, (long long)f, got, want, tol);
        }
        for (size_t b = 0; b < ob; b++)
            if (!touched[b] && ((unsigned char *)out.data)[b] != before[b])
                lcx_fail_msg("padding byte %zu of out written", b);
        free(touched);
        free(before);
        for (int i = 0; i < n; i++)
            free(in[i].data);
        free(out.data);
    }
    lcx_context_destroy(ctx);
}

/* LongRecipe's merge of two bf16 models: (a + b) / 2 is exact in f32, so the
 * result is the correctly rounded bf16 of the exact average; in place too. */
static void test_merge_exact_average(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 32);
    const int64_t n = 100003;
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2), *o = malloc(n * 2);
    for (int64_t i = 0; i < n; i++) {
        a[i] = lcx_ref_encode16(LCX_BF16, lcx_ref_round(LCX_BF16, lcx_rng_uniform(&rng, -1, 1)));
        b[i] = lcx_ref_encode16(LCX_BF16, lcx_ref_round(LCX_BF16, lcx_rng_uniform(&rng, -1, 1) * 1e-3));
    }
    const int64_t shape[1] = {n};
    lcx_tensor in[2], out;
    lcx_tensor_init(&in[0], a, LCX_BF16, 1, shape);
    lcx_tensor_init(&in[1], b, LCX_BF16, 1, shape);
    lcx_tensor_init(&out, o, LCX_BF16, 1, shape);
    const double half[2] = {0.5, 0.5};
    uint16_t *ref = NULL;
    const int32_t threads[4] = {1, 2, 3, 0};
    for (int k = 0; k < 4; k++) {
        lcx_context *ctx = lcx_test_context(threads[k]);
        assert_int_equal(lcx_merge_weights(ctx, 2, in, half, &out), LCX_OK);
        for (int64_t i = 0; i < n; i++) {
            const double want = lcx_ref_round(LCX_BF16, (lcx_ref_decode16(LCX_BF16, a[i]) +
                                                         lcx_ref_decode16(LCX_BF16, b[i])) / 2);
            if (lcx_ref_decode16(LCX_BF16, o[i]) != want)
                lcx_fail_msg("average %lld: %g, want %g", (long long)i, lcx_ref_decode16(LCX_BF16, o[i]), want);
        }
        if (!ref) {
            ref = malloc(n * 2);
            memcpy(ref, o, n * 2);
        } else {
            lcx_expect_bytes_equal(o, ref, n * 2, "thread-count independence");
        }
        lcx_context_destroy(ctx);
    }
    /* in place: out is inputs[1] */
    lcx_context *ctx = lcx_test_context(0);
    uint16_t *b2 = malloc(n * 2);
    memcpy(b2, b, n * 2);
    in[1].data = b2;
    out.data = b2;
    assert_int_equal(lcx_merge_weights(ctx, 2, in, half, &out), LCX_OK);
    lcx_expect_bytes_equal(b2, ref, n * 2, "in-place merge");
    /* task arithmetic: base + 0.3 (w - base) = 0.7 base + 0.3 w */
    float *fa = malloc(n * 4), *fo = malloc(n * 4);
    for (int64_t i = 0; i < n; i++)
        fa[i] = (float)lcx_rng_uniform(&rng, -1, 1);
    lcx_tensor_init(&in[0], fa, LCX_F32, 1, shape);
    in[1].data = b;
    lcx_tensor_init(&out, fo, LCX_F32, 1, shape);
    const double ta[2] = {0.7, 0.3};
    assert_int_equal(lcx_merge_weights(ctx, 2, in, ta, &out), LCX_OK);
    for (int64_t i = 0; i < n; i++) {
        const double want = (double)0.7f * fa[i] + (double)0.3f * lcx_ref_decode16(LCX_BF16, b[i]);
        if (!(fabs(fo[i] - want) <= 3 * 0x1p-23 * (fabs(fa[i]) + 1e-3)))
            lcx_fail_msg("task arithmetic %lld: %g vs %g", (long long)i, (double)fo[i], want);
    }
    lcx_context_destroy(ctx);
    free(a);
    free(b);
    free(b2);
    free(o);
    free(ref);
    free(fa);
    free(fo);
}

static void test_merge_bad_input(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    float a[64], b[64], o[72], snap[72];
    for (int i = 0; i < 72; i++) {
        a[i % 64] = (float)i;
        b[i % 64] = (float)-i;
        o[i] = snap[i] = 7.0f;
    }
    const int64_t s64[1] = {64}, s32[1] = {32};
    lcx_tensor in[2], out, in_bad[2];
    lcx_tensor_init(&in[0], a, LCX_F32, 1, s64);
    lcx_tensor_init(&in[1], b, LCX_F32, 1, s64);
    lcx_tensor_init(&out, o, LCX_F32, 1, s64);
    const double c[2] = {0.5, 0.5}, cnan[2] = {0.5, NAN}, chuge[2] = {1e39, 1};
    memcpy(in_bad, in, sizeof in);
    lcx_tensor_init(&in_bad[1], b, LCX_F32, 1, s32);
    lcx_tensor part;
    lcx_tensor_init(&part, a + 1, LCX_F32, 1, s64);
    lcx_tensor in_ov[2] = {in[0], in[1]};
    lcx_tensor_init(&in_ov[1], o + 8, LCX_F32, 1, s64); /* overlaps out, not the same view */
    (void)part;
#define BAD(call, msg)                                                                             \
    do {                                                                                           \
        const lcx_status st_ = (call);                                                             \
        if (st_ != LCX_E_INVALID || !strstr(lcx_last_error(), msg))                                \
            lcx_fail_msg("%s: %s '%s' (want '%s')", #call, lcx_status_string(st_), lcx_last_error(), msg); \
        lcx_expect_bytes_equal(o, snap, sizeof o, #call);                                          \
    } while (0)
    BAD(lcx_merge_weights(NULL, 2, in, c, &out), "ctx");
    BAD(lcx_merge_weights(ctx, 0, in, c, &out), "n 0");
    BAD(lcx_merge_weights(ctx, 65, in, c, &out), "n 65");
    BAD(lcx_merge_weights(ctx, 2, NULL, c, &out), "inputs");
    BAD(lcx_merge_weights(ctx, 2, in, NULL, &out), "coeffs");
    BAD(lcx_merge_weights(ctx, 2, in, c, NULL), "out");
    BAD(lcx_merge_weights(ctx, 2, in_bad, c, &out), "shape");
    BAD(lcx_merge_weights(ctx, 2, in, cnan, &out), "coeffs[1]");
    BAD(lcx_merge_weights(ctx, 2, in, chuge, &out), "coeffs[0]");
    BAD(lcx_merge_weights(ctx, 2, in_ov, c, &out), "overlaps");
#undef BAD
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_random),
        cmocka_unit_test(test_merge_exact_average),
        cmocka_unit_test(test_merge_bad_input),
    };
    return lcx_test_run("merge", argc, argv, tests, sizeof tests / sizeof *tests);
}
