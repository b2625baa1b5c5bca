/* lcx_convert and the conversion kernels of every ISA, against the
 * value-arithmetic oracle in tests/ref/convert_ref.c. Conversions are exact
 * operations (one correctly rounded result), so the tolerance is zero. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "ref/convert_ref.h"
#include "internal/lcx_internal.h"

static const lcx_dtype all_dt[3] = {LCX_F32, LCX_F16, LCX_BF16};

static uint32_t f2u(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float u2f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* ---- checks of one converted element against the oracle ---- */

static void check_narrow(lcx_dtype dt, const float *src, const uint16_t *out, size_t n,
                         const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t b = f2u(src[i]);
        if (isnan(src[i])) {
            const uint16_t want = lcx_ref_nan16(dt, b);
            if (out[i] != want)
                lcx_fail_msg("%s[%zu]: NaN 0x%08x -> 0x%04x, want 0x%04x", what, i, b, out[i], want);
            continue;
        }
        const double want = lcx_ref_round(dt, (double)src[i]);
        const double got = lcx_ref_decode16(dt, out[i]);
        if (!(got == want) || !!signbit(got) != !!signbit(want))
            lcx_fail_msg("%s[%zu]: %a (0x%08x) -> 0x%04x = %a, want %a", what, i, (double)src[i], b,
                         out[i], got, want);
    }
}

static void check_widen(lcx_dtype dt, const uint16_t *src, const float *out, size_t n,
                        const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const double v = lcx_ref_decode16(dt, src[i]);
        const uint32_t got = f2u(out[i]);
        if (isnan(v)) {
            const uint32_t want = lcx_ref_nan_widen(dt, src[i]);
            if (got != want)
                lcx_fail_msg("%s[%zu]: NaN 0x%04x -> 0x%08x, want 0x%08x", what, i, src[i], got, want);
            continue;
        }
        if (!((double)out[i] == v) || !!signbit(out[i]) != !!signbit(v))
            lcx_fail_msg("%s[%zu]: 0x%04x -> %a, want %a", what, i, src[i], (double)out[i], v);
    }
}

/* Expected 16-bit result of converting 16-bit `h` of dtype s to dtype d. */
static uint16_t expect16(lcx_dtype s, lcx_dtype d, uint16_t h)
{
    if (s == d)
        return h;
    const double v = lcx_ref_decode16(s, h);
    if (isnan(v))
        return lcx_ref_nan16(d, lcx_ref_nan_widen(s, h));
    return lcx_ref_encode16(d, lcx_ref_round(d, v));
}

/* Check dst element i (dtype dd) against src element (dtype sd). */
static void check_elem(lcx_dtype sd, const void *s, lcx_dtype dd, const void *d, const char *what,
                       size_t i)
{
    if (sd == LCX_F32 && dd == LCX_F32) {
        if (memcmp(s, d, 4) != 0)
            lcx_fail_msg("%s[%zu]: f32 copy differs", what, i);
    } else if (sd == LCX_F32) {
        check_narrow(dd, s, d, 1, what);
    } else if (dd == LCX_F32) {
        check_widen(sd, s, d, 1, what);
    } else {
        uint16_t h, o;
        memcpy(&h, s, 2);
        memcpy(&o, d, 2);
        const uint16_t w = expect16(sd, dd, h);
        if (o != w)
            lcx_fail_msg("%s[%zu]: %s 0x%04x -> %s 0x%04x, want 0x%04x", what, i, lcx_dtype_name(sd),
                         h, lcx_dtype_name(dd), o, w);
    }
}

/* ---- inputs ---- */

/* f32 values that exercise every rounding path of both 16-bit formats. */
static size_t edge_f32(float *v, size_t cap, lcx_rng *rng)
{
    size_t n = 0;
#define PUSH(x) do { if (n < cap) v[n++] = (x); } while (0)
#define PUSHU(u) PUSH(u2f(u))
    const uint32_t specials[] = {
        0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007fffffu, 0x807fffffu,
        0x00400000u, 0x00000200u, 0x00008000u, 0x00018000u, /* f32 subnormals incl. bf16 ties */
        0x00800000u, 0x80800000u, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u,
        0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu, 0x7fa5a5a5u,
        0x7fc0dead, 0xffffffffu, 0x7f7f8000u, 0x7f7f7fffu, 0x7f7fc000u, 0x7f7effffu,
        0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0xbf808000u, 0xbf818000u,
        0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477ff001u, 0x47800000u, 0xc77ff000u,
        0x38800000u, 0x387fffffu, 0x387fe000u, 0x387ff000u, 0x33800000u, 0x33000000u,
        0x33000001u, 0x32ffffffu, 0x33c00000u, 0x34000000u, 0x3f801000u, 0x3f803000u,
        0x3f800fffu, 0x3f801001u, 0x3c003000u, 0x3c001000u, 0x00ffffffu, 0x3f7fffffu};
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        PUSHU(specials[i]);
    /* exact midpoints between neighbouring f16 / bf16 values, normal and subnormal */
    for (int k = 0; k < 300; k++) {
        const lcx_dtype dt = (k & 1) ? LCX_F16 : LCX_BF16;
        uint16_t h = (uint16_t)lcx_rng_range(rng, 0, dt == LCX_F16 ? 0x7bfe : 0x7f7e);
        if (k % 5 == 0)
            h = (uint16_t)lcx_rng_range(rng, 0, dt == LCX_F16 ? 0x3ff : 0x7f); /* subnormal */
        const double a = lcx_ref_decode16(dt, h), b = lcx_ref_decode16(dt, (uint16_t)(h + 1));
        const float mid = (float)((a + b) / 2);
        PUSH((k & 2) ? -mid : mid);
        PUSHU(f2u(mid) + 1u);
        PUSHU(f2u(mid) - 1u);
    }
    /* random patterns of every class, and ordinary magnitudes */
    while (n < cap) {
        switch (lcx_rng_range(rng, 0, 3)) {
        case 0: PUSHU(lcx_rng_u32(rng)); break;
        case 1: PUSH((float)lcx_rng_uniform(rng, -70000.0, 70000.0)); break;
        case 2: PUSH((float)ldexp(lcx_rng_uniform(rng, -1, 1), (int)lcx_rng_range(rng, -150, 128))); break;
        default: PUSHU(lcx_rng_u32(rng) & 0x807fffffu); break; /* f32 subnormals */
        }
    }
#undef PUSH
#undef PUSHU
    return n;
}

static void make_tensor(lcx_tensor *t, void *data, lcx_dtype dt, int nd, const int64_t *shape,
                        const int64_t *stride)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dt;
    t->ndim = nd;
    for (int d = 0; d < nd; d++) {
        t->shape[d] = shape[d];
        t->stride[d] = stride[d];
    }
}

static void convert_1d(lcx_context *ctx, lcx_dtype sd, const void *s, lcx_dtype dd, void *d,
                       size_t n)
{
    lcx_tensor ts, td;
    const int64_t shape[1] = {(int64_t)n}, stride[1] = {1};
    make_tensor(&ts, (void *)s, sd, 1, shape, stride);
    make_tensor(&td, d, dd, 1, shape, stride);
    lcx_status st = lcx_convert(ctx, &ts, &td);
    if (st != LCX_OK)
        lcx_fail_msg("convert %s->%s n=%zu: %s: %s", lcx_dtype_name(sd), lcx_dtype_name(dd), n,
                     lcx_status_string(st), lcx_last_error());
}

/* ---- tests ---- */

/* Every 16-bit pattern widened, through lcx_convert. */
static void test_widen_exhaustive(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    uint16_t *src = malloc(65536 * 2);
    lcx_guarded g;
    float *dst = lcx_guard_alloc(&g, 65536 * 4);
    for (uint32_t i = 0; i < 65536; i++)
        src[i] = (uint16_t)i;
    for (int k = 0; k < 2; k++) {
        const lcx_dtype dt = k ? LCX_F16 : LCX_BF16;
        lcx_guard_poison(&g, 0xCD);
        convert_1d(ctx, dt, src, LCX_F32, dst, 65536);
        check_widen(dt, src, dst, 65536, dt == LCX_F16 ? "f16->f32" : "bf16->f32");
        lcx_guard_check(&g, "widen");
    }
    lcx_guard_free(&g);
    free(src);
    lcx_context_destroy(ctx);
}

/* Edge and random f32 values narrowed, through lcx_convert. */
static void test_narrow_edges(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 1);
    enum { N = 200003 };
    float *src = malloc(N * sizeof *src);
    const size_t n = edge_f32(src, N, &rng);
    lcx_context *ctx = lcx_test_context(0);
    lcx_guarded g;
    uint16_t *dst = lcx_guard_alloc(&g, n * 2);
    for (int k = 0; k < 2; k++) {
        const lcx_dtype dt = k ? LCX_F16 : LCX_BF16;
        lcx_guard_poison(&g, 0xCD);
        convert_1d(ctx, LCX_F32, src, dt, dst, n);
        check_narrow(dt, src, dst, n, dt == LCX_F16 ? "f32->f16" : "f32->bf16");
        lcx_guard_check(&g, "narrow");
    }
    lcx_guard_free(&g);
    free(src);
    lcx_context_destroy(ctx);
}

/* Every dtype pair, lengths 0..80 and a few large ones, at unaligned offsets:
 * vector bodies, tails and masked tails, with guard bytes. */
static void test_lengths_offsets(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 2);
    lcx_context *ctx = lcx_test_context(0);
    const size_t cap = 5000;
    float *pool = malloc(cap * 4);
    edge_f32(pool, cap, &rng);
    size_t lens[100];
    size_t nl = 0;
    for (size_t l = 0; l <= 80; l++)
        lens[nl++] = l;
    const size_t big[] = {127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 4093};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++)
        lens[nl++] = big[i];
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 3; di++) {
            const lcx_dtype sd = all_dt[si], dd = all_dt[di];
            const size_t ses = lcx_dtype_size(sd), des = lcx_dtype_size(dd);
            for (size_t li = 0; li < nl; li++) {
                const size_t n = lens[li], off = (size_t)lcx_rng_range(&rng, 0, 3);
                unsigned char *s = malloc((n + off) * ses + 1);
                for (size_t i = 0; i < n; i++) {
                    const size_t j = (size_t)lcx_rng_range(&rng, 0, (int64_t)cap - 1);
                    if (sd == LCX_F32)
                        memcpy(s + (off + i) * ses, &pool[j], 4);
                    else {
                        const uint16_t h = (uint16_t)lcx_rng_u32(&rng);
                        memcpy(s + (off + i) * ses, &h, 2);
                    }
                }
                lcx_guarded g;
                unsigned char *d = lcx_guard_alloc(&g, (n + off) * des);
                convert_1d(ctx, sd, s + off * ses, dd, d + off * des, n);
                char what[64];
                snprintf(what, sizeof what, "%s->%s n=%zu", lcx_dtype_name(sd), lcx_dtype_name(dd), n);
                for (size_t i = 0; i < n; i++)
                    check_elem(sd, s + (off + i) * ses, dd, d + (off + i) * des, what, i);
                for (size_t i = 0; i < off * des; i++)
                    if (d[i] != 0xCD)
                        lcx_fail_msg("%s: byte before the output changed", what);
                lcx_guard_check(&g, what);
                lcx_guard_free(&g);
                free(s);
            }
        }
    free(pool);
    lcx_context_destroy(ctx);
}

/* Random 1-4 dim views with padded strides on both sides: every element
 * converted, every padding byte of dst left as it was. */
static void test_strided(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 3);
    lcx_context *ctx = lcx_test_context(0);
    for (int iter = 0; iter < 60; iter++) {
        const lcx_dtype sd = all_dt[lcx_rng_range(&rng, 0, 2)], dd = all_dt[lcx_rng_range(&rng, 0, 2)];
        const int nd = (int)lcx_rng_range(&rng, 1, 4);
        int64_t shape[4], ss[4], ds[4], numel = 1;
        for (int d = 0; d < nd; d++) {
            shape[d] = lcx_rng_range(&rng, 1, d == nd - 1 ? 70 : 5);
            numel *= shape[d];
        }
        int64_t sspan = 1, dspan = 1;
        for (int d = nd - 1; d >= 0; d--) {
            ss[d] = d == nd - 1 ? 1 : sspan + lcx_rng_range(&rng, 0, 3) * (iter & 1);
            ds[d] = d == nd - 1 ? 1 : dspan + lcx_rng_range(&rng, 0, 5);
            sspan = ss[d] * shape[d];
            dspan = ds[d] * shape[d];
        }
        const size_t ses = lcx_dtype_size(sd), des = lcx_dtype_size(dd);
        unsigned char *s = malloc((size_t)sspan * ses);
        for (int64_t i = 0; i < sspan; i++) {
            const uint32_t u = lcx_rng_u32(&rng);
            memcpy(s + i * (int64_t)ses, &u, ses);
        }
        lcx_guarded g;
        unsigned char *dbuf = lcx_guard_alloc(&g, (size_t)dspan * des);
        unsigned char *ref = malloc((size_t)dspan * des);
        memcpy(ref, dbuf, (size_t)dspan * des);
        lcx_tensor ts, td;
        make_tensor(&ts, s, sd, nd, shape, ss);
        make_tensor(&td, dbuf, dd, nd, shape, ds);
        lcx_status st = lcx_convert(ctx, &ts, &td);
        if (st != LCX_OK)
            lcx_fail_msg("strided convert: %s", lcx_last_error());
        char *touched = calloc((size_t)dspan, 1);
        for (int64_t f = 0; f < numel; f++) {
            int64_t r = f, so = 0, dof = 0;
            for (int d = nd - 1; d >= 0; d--) {
                so += (r % shape[d]) * ss[d];
                dof += (r % shape[d]) * ds[d];
                r /= shape[d];
            }
            touched[dof] = 1;
            check_elem(sd, s + so * (int64_t)ses, dd, dbuf + dof * (int64_t)des, "strided", (size_t)f);
        }
        for (int64_t i = 0; i < dspan; i++)
            if (!touched[i] && memcmp(dbuf + i * (int64_t)des, ref + i * (int64_t)des, des) != 0)
                lcx_fail_msg("strided: padding element %lld of dst was written", (long long)i);
        lcx_guard_check(&g, "strided");
        lcx_guard_free(&g);
        free(touched);
        free(ref);
        free(s);
    }
    lcx_context_destroy(ctx);
}

static int serial_reverse_for(void *user, int64_t n, void (*task)(void *, int64_t), void *arg)
{
    int *calls = user;
    (*calls)++;
    for (int64_t i = n - 1; i >= 0; i--)
        task(arg, i);
    return 0;
}

/* Bit-identical results for 1, 2, 3 and 5 threads and a caller callback. */
static void test_thread_independence(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 4);
    const int64_t rows = 37, cols = 4099; /* several tasks, ragged rows */
    const size_t n = (size_t)(rows * cols);
    float *src = malloc(n * 4);
    edge_f32(src, n, &rng);
    const int64_t shape[2] = {rows, cols}, stride[2] = {cols, 1};
    uint16_t *out[6];
    const int32_t threads[5] = {1, 2, 3, 5, 0};
    for (int dt = 0; dt < 2; dt++) {
        for (int k = 0; k < 6; k++) {
            lcx_context *ctx;
            int calls = 0;
            if (k < 5) {
                ctx = lcx_test_context(threads[k]);
            } else {
                lcx_context_options o;
                lcx_context_options_default(&o);
                o.isa = lcx_test_isa;
                o.parallel_for = serial_reverse_for;
                o.parallel_for_user = &calls;
                assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
            }
            out[k] = malloc(n * 2);
            memset(out[k], 0xCD, n * 2);
            lcx_tensor ts, td;
            make_tensor(&ts, src, LCX_F32, 2, shape, stride);
            make_tensor(&td, out[k], dt ? LCX_F16 : LCX_BF16, 2, shape, stride);
            assert_int_equal(lcx_convert(ctx, &ts, &td), LCX_OK);
            if (k == 5 && calls != 1)
                lcx_fail_msg("parallel_for callback called %d times, want 1", calls);
            lcx_context_destroy(ctx);
        }
        check_narrow(dt ? LCX_F16 : LCX_BF16, src, out[0], n, "threads=1");
        for (int k = 1; k < 6; k++)
            lcx_expect_bytes_equal(out[0], out[k], n * 2, "thread-count independence");
        for (int k = 0; k < 6; k++)
            free(out[k]);
    }
    free(src);
}

static int failing_for(void *user, int64_t n, void (*task)(void *, int64_t), void *arg)
{
    (void)user;
    (void)n;
    (void)task;
    (void)arg;
    return 1;
}

/* A callback reporting failure surfaces as LCX_E_CALLBACK. */
static void test_callback_error(void **state)
{
    (void)state;
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.isa = lcx_test_isa;
    o.parallel_for = failing_for;
    lcx_context *ctx;
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
    const size_t n = 100000;
    float *s = calloc(n, 4);
    uint16_t *d = calloc(n, 2);
    lcx_tensor ts, td;
    const int64_t shape[1] = {(int64_t)n}, stride[1] = {1};
    make_tensor(&ts, s, LCX_F32, 1, shape, stride);
    make_tensor(&td, d, LCX_BF16, 1, shape, stride);
    assert_int_equal(lcx_convert(ctx, &ts, &td), LCX_E_CALLBACK);
    assert_non_null(strstr(lcx_last_error(), "parallel_for"));
    free(s);
    free(d);
    lcx_context_destroy(ctx);
}

/* The caller's floating-point environment (flush-to-zero, denormals-are-
 * zero, default NaN, another rounding mode) must not change any result. */
static uint64_t read_fpenv(void)
{
#if defined(__x86_64__)
    unsigned int m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
#else
    return 0;
#endif
}

static void write_fpenv(uint64_t v)
{
#if defined(__x86_64__)
    unsigned int m = (unsigned int)v;
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
#elif defined(__aarch64__)
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
#else
    (void)v;
#endif
}

/* flush-to-zero, denormals-are-zero / default NaN, round toward zero */
static uint64_t hostile_fpenv(uint64_t normal)
{
#if defined(__x86_64__)
    return normal | 0x8040u | 0x6000u;
#elif defined(__aarch64__)
    return normal | (1ull << 24) | (1ull << 25) | (3ull << 22) | (1ull << 19);
#else
    return normal;
#endif
}

static void test_caller_fp_environment(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 6);
    enum { N = 30011 };
    float *src = malloc(N * 4), *w = malloc(N * 4);
    uint16_t *h = malloc(N * 2), *s16 = malloc(N * 2);
    edge_f32(src, N, &rng);
    for (size_t i = 0; i < N; i++)
        s16[i] = (uint16_t)lcx_rng_u32(&rng);
    lcx_context *ctx = lcx_test_context(1); /* the caller's thread runs the kernels */
    const uint64_t normal = read_fpenv(), hostile = hostile_fpenv(normal);
    for (int k = 0; k < 2; k++) {
        const lcx_dtype dt = k ? LCX_F16 : LCX_BF16;
        write_fpenv(hostile);
        convert_1d(ctx, LCX_F32, src, dt, h, N);
        convert_1d(ctx, dt, s16, LCX_F32, w, N);
        const uint64_t after = read_fpenv();
        write_fpenv(normal);
        if (after != hostile)
            lcx_fail_msg("the call changed the caller's FP control register: 0x%llx -> 0x%llx",
                         (unsigned long long)hostile, (unsigned long long)after);
        check_narrow(dt, src, h, N, "narrow under FTZ/DAZ/RZ");
        check_widen(dt, s16, w, N, "widen under FTZ/DAZ/RZ");
    }
    lcx_context_destroy(ctx);
    free(src);
    free(w);
    free(h);
    free(s16);
}

/* Every invalid argument: its status, a message, and no output byte changed. */
static void test_bad_input(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(0);
    float src[64];
    for (int i = 0; i < 64; i++)
        src[i] = (float)i;
    lcx_guarded g;
    unsigned char *dst = lcx_guard_alloc(&g, 256);
    unsigned char snap[256];
    memcpy(snap, dst, sizeof snap);
    const int64_t sh[2] = {4, 16}, st[2] = {16, 1};

    struct bad {
        const char *name;
        lcx_status want;
        const char *msg; /* substring the message must contain */
    };
    for (int c = 0;; c++) {
        lcx_tensor ts, td;
        make_tensor(&ts, src, LCX_F32, 2, sh, st);
        make_tensor(&td, dst, LCX_BF16, 2, sh, st);
        lcx_context *cx = ctx;
        const lcx_tensor *ps = &ts, *pd = &td;
        struct bad b = {0};
        switch (c) {
        case 0: b = (struct bad){"ctx NULL", LCX_E_INVALID, "ctx"}; cx = NULL; break;
        case 1: b = (struct bad){"src NULL", LCX_E_INVALID, "src"}; ps = NULL; break;
        case 2: b = (struct bad){"dst NULL", LCX_E_INVALID, "dst"}; pd = NULL; break;
        case 3: b = (struct bad){"src data NULL", LCX_E_INVALID, "data"}; ts.data = NULL; break;
        case 4: b = (struct bad){"dst data NULL", LCX_E_INVALID, "data"}; td.data = NULL; break;
        case 5: b = (struct bad){"ndim 0", LCX_E_INVALID, "ndim"}; ts.ndim = 0; break;
        case 6: b = (struct bad){"ndim 5", LCX_E_INVALID, "ndim"}; td.ndim = 5; break;
        case 7: b = (struct bad){"negative shape", LCX_E_INVALID, "negative"}; ts.shape[0] = -4; td.shape[0] = -4; break;
        case 8: b = (struct bad){"negative stride", LCX_E_INVALID, "negative"}; td.stride[0] = -16; break;
        case 9: b = (struct bad){"inner stride 2", LCX_E_INVALID, "innermost"}; ts.stride[1] = 2; break;
        case 10: b = (struct bad){"shape mismatch", LCX_E_INVALID, "shape"}; td.shape[1] = 15; break;
        case 11: b = (struct bad){"ndim mismatch", LCX_E_INVALID, "dims"}; td.ndim = 1; td.shape[0] = 64; td.stride[0] = 1; break;
        case 12: b = (struct bad){"unknown src dtype", LCX_E_INVALID, "dtype"}; ts.dtype = (lcx_dtype)7; break;
        case 13: b = (struct bad){"unknown dst dtype", LCX_E_INVALID, "dtype"}; td.dtype = (lcx_dtype)-1; break;
        case 14: b = (struct bad){"element count overflow", LCX_E_OVERFLOW, "element count"};
            ts.shape[0] = td.shape[0] = INT64_MAX / 8; ts.stride[0] = 0; break;
        case 15: b = (struct bad){"stride overflow", LCX_E_OVERFLOW, "overflow"}; ts.stride[0] = INT64_MAX / 2; break;
        case 16: b = (struct bad){"byte size overflow", LCX_E_OVERFLOW, "overflow"};
            ts.shape[0] = td.shape[0] = INT64_MAX / 5; ts.shape[1] = td.shape[1] = 1; ts.stride[0] = td.stride[0] = 2; break;
        case 17: b = (struct bad){"dst aliases itself", LCX_E_INVALID, "overlap"}; td.stride[0] = 0; break;
        case 18: b = (struct bad){"src and dst overlap", LCX_E_INVALID, "overlap"}; ts.data = dst + 8; break;
        case 19: b = (struct bad){"dst rows overlap", LCX_E_INVALID, "overlap"}; td.stride[0] = 8; break;
        case 20: b = (struct bad){"misaligned src", LCX_E_INVALID, "aligned"}; ts.data = (char *)src + 2; break;
        case 21: b = (struct bad){"misaligned dst", LCX_E_INVALID, "aligned"}; td.data = dst + 1; break;
        default: goto done;
        }
        const lcx_status got = lcx_convert(cx, ps, pd);
        if (got != b.want)
            lcx_fail_msg("bad input '%s': got %s, want %s (%s)", b.name, lcx_status_string(got),
                         lcx_status_string(b.want), lcx_last_error());
        if (!strstr(lcx_last_error(), b.msg))
            lcx_fail_msg("bad input '%s': message '%s' does not mention '%s'", b.name,
                         lcx_last_error(), b.msg);
        lcx_expect_bytes_equal(dst, snap, sizeof snap, b.name);
        lcx_guard_check(&g, b.name);
    }
done:
    /* empty tensors are valid and write nothing */
    {
        lcx_tensor ts, td;
        const int64_t z[2] = {0, 16};
        make_tensor(&ts, src, LCX_F32, 2, z, st);
        make_tensor(&td, dst, LCX_F16, 2, z, st);
        assert_int_equal(lcx_convert(ctx, &ts, &td), LCX_OK);
        lcx_expect_bytes_equal(dst, snap, sizeof snap, "empty tensor");
    }
    lcx_guard_free(&g);
    lcx_context_destroy(ctx);
}

/* Every kernel variant of the ISA under test, called straight from the
 * table, including variants the CPU would not be given by default (AVX-512
 * without the BF16 instructions). */
static void test_table_variants(void **state)
{
    (void)state;
    const lcx_isa isa = lcx_test_isa == LCX_ISA_AUTO ? lcx_isa_best() : lcx_test_isa;
    const unsigned feat = lcx_cpu_features();
    unsigned masks[2] = {feat, feat & ~(unsigned)LCX_CPU_AVX512BF16};
    const int nmask = (feat & LCX_CPU_AVX512BF16) ? 2 : 1;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 5);
    enum { N = 20011 };
    float *src = malloc(N * 4);
    edge_f32(src, N, &rng);
    uint16_t *h = malloc(N * 2), *s16 = malloc(N * 2);
    float *w = malloc(N * 4);
    for (size_t i = 0; i < N; i++)
        s16[i] = (uint16_t)lcx_rng_u32(&rng);
    for (int m = 0; m < nmask; m++) {
        lcx_ktable t;
        lcx_build_table(isa, masks[m], &t);
        for (int op = 0; op < LCX_OP_COUNT; op++) {
            if (!t.impl[op])
                lcx_fail_msg("slot %s is empty", lcx_op_names[op]);
        }
        const char *suffix = isa == LCX_ISA_SCALAR ? "__scalar" : lcx_isa_name(isa);
        if (!strstr(t.impl[LCX_OP_convert_f32_bf16], suffix))
            lcx_fail_msg("convert_f32_bf16 served by %s on %s", t.impl[LCX_OP_convert_f32_bf16],
                         lcx_isa_name(isa));
        if (isa == LCX_ISA_AVX512 && lcx_isa_compiled(LCX_ISA_AVX512)) {
            const int bf = strstr(t.impl[LCX_OP_convert_f32_bf16], "avx512bf16") != NULL;
            if (bf != !!(masks[m] & LCX_CPU_AVX512BF16))
                lcx_fail_msg("AVX512-BF16 variant %s with features 0x%x",
                             bf ? "installed" : "missing", masks[m]);
        }
        /* every length mod the vector width, at the start of the buffers */
        for (size_t n = N - 40; n <= N; n++) {
            t.convert_f32_bf16(src, h, n);
            check_narrow(LCX_BF16, src, h, n, t.impl[LCX_OP_convert_f32_bf16]);
            t.convert_f32_f16(src, h, n);
            check_narrow(LCX_F16, src, h, n, t.impl[LCX_OP_convert_f32_f16]);
            t.convert_bf16_f32(s16, w, n);
            check_widen(LCX_BF16, s16, w, n, t.impl[LCX_OP_convert_bf16_f32]);
            t.convert_f16_f32(s16, w, n);
            check_widen(LCX_F16, s16, w, n, t.impl[LCX_OP_convert_f16_f32]);
        }
        /* the FMA probe with a = 1: accumulator j (of `lanes` lanes) starts at
         * j and gains b per iteration; all sums stay exact in f32 */
        const double L = t.bench_fma_lanes, A = t.bench_fma_accs, it = 1000, b = 3;
        const double want = L * A * (A - 1) / 2 + L * A * it * b;
        const float r = t.bench_fma((int64_t)it, 1.0f, (float)b);
        if ((double)r != want)
            lcx_fail_msg("%s(1000, 1, 3) = %.1f, want %.1f", t.impl[LCX_OP_bench_fma], (double)r, want);
    }
    free(src);
    free(h);
    free(s16);
    free(w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widen_exhaustive),
        cmocka_unit_test(test_narrow_edges),
        cmocka_unit_test(test_lengths_offsets),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_thread_independence),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_caller_fp_environment),
        cmocka_unit_test(test_table_variants),
    };
    return lcx_test_run("convert", argc, argv, tests, sizeof tests / sizeof *tests);
}
