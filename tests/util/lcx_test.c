#include "lcx_test.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lcx_isa lcx_test_isa = LCX_ISA_AUTO;
uint64_t lcx_test_seed = 0;

int lcx_test_run(const char *suite, int argc, char **argv, const struct CMUnitTest *tests,
                 size_t n_tests)
{
    const char *name = argc > 1 ? argv[1] : "auto";
    if (lcx_isa_from_name(name, &lcx_test_isa) != LCX_OK) {
        fprintf(stderr, "%s: unknown ISA '%s'\n", suite, name);
        return 2;
    }
    if (lcx_test_isa != LCX_ISA_AUTO && !lcx_isa_supported(lcx_test_isa)) {
        printf("%s/%s: SKIP (ISA %s)\n", suite, name,
               lcx_isa_compiled(lcx_test_isa) ? "not supported by this CPU" : "not compiled");
        return 77;
    }
    const char *env = getenv("LONGCTX_TEST_SEED");
    lcx_test_seed = env && *env ? strtoull(env, NULL, 0)
                                : ((uint64_t)time(NULL) << 20) ^ (uint64_t)clock();
    printf("%s/%s: seed %" PRIu64 " (replay with LONGCTX_TEST_SEED=%" PRIu64 ")\n", suite, name,
           lcx_test_seed, lcx_test_seed);
    /* LONGCTX_TEST_FILTER: run only the tests whose names match (cmocka's
     * pattern: * and ? wildcards) */
    const char *filter = getenv("LONGCTX_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    char group[128];
    snprintf(group, sizeof group, "%s/%s", suite, name);
    return _cmocka_run_group_tests(group, tests, n_tests, NULL, NULL);
}

lcx_context *lcx_test_context(int32_t n_threads)
{
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.isa = lcx_test_isa;
    o.n_threads = n_threads;
    lcx_context *ctx = NULL;
    lcx_status st = lcx_context_create(&o, &ctx);
    if (st != LCX_OK)
        lcx_fail_msg("context_create(isa=%s, threads=%d): %s: %s", lcx_isa_name(lcx_test_isa),
                     (int)n_threads, lcx_status_string(st), lcx_last_error());
    return ctx;
}

static uint64_t lcx_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lcx_rng_seed(lcx_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = lcx_splitmix(&x);
}

static inline uint64_t lcx_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t lcx_rng_u64(lcx_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = lcx_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lcx_rotl(s[3], 45);
    return result;
}

uint32_t lcx_rng_u32(lcx_rng *r)
{
    return (uint32_t)(lcx_rng_u64(r) >> 32);
}

double lcx_rng_uniform(lcx_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(lcx_rng_u64(r) >> 11) * 0x1.0p-53);
}

int64_t lcx_rng_range(lcx_rng *r, int64_t lo, int64_t hi)
{
    const uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(span ? lcx_rng_u64(r) % span : lcx_rng_u64(r));
}

void *lcx_guard_alloc(lcx_guarded *g, size_t bytes)
{
    g->bytes = bytes;
    g->base = malloc(bytes + 2 * LCX_GUARD_BYTES);
    if (!g->base)
        fail_msg("out of memory allocating %zu bytes", bytes);
    for (size_t i = 0; i < LCX_GUARD_BYTES; i++) {
        g->base[i] = (unsigned char)(0xA5 ^ i);
        g->base[LCX_GUARD_BYTES + bytes + i] = (unsigned char)(0x5A ^ i);
    }
    g->data = g->base + LCX_GUARD_BYTES;
    lcx_guard_poison(g, 0xCD);
    return g->data;
}

void lcx_guard_poison(lcx_guarded *g, unsigned char byte)
{
    memset(g->data, byte, g->bytes);
}

void lcx_guard_check(const lcx_guarded *g, const char *what)
{
    for (size_t i = 0; i < LCX_GUARD_BYTES; i++) {
        if (g->base[i] != (unsigned char)(0xA5 ^ i))
            lcx_fail_msg("%s: guard byte %zu before the buffer was overwritten", what,
                         LCX_GUARD_BYTES - i);
        if (g->base[LCX_GUARD_BYTES + g->bytes + i] != (unsigned char)(0x5A ^ i))
            lcx_fail_msg("%s: guard byte %zu after the buffer was overwritten", what, i);
    }
}

void lcx_guard_free(lcx_guarded *g)
{
    free(g->base);
    g->base = NULL;
    g->data = NULL;
}

void lcx_fail_msg(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fail_msg("%s [isa %s, seed %" PRIu64 "]", buf, lcx_isa_name(lcx_test_isa), lcx_test_seed);
}

void lcx_expect_close(const double *got, const double *want, size_t n, double atol, double rtol,
                      const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const double g = got[i], w = want[i];
        if (isnan(w) || isnan(g)) {
            if (isnan(w) != isnan(g))
                lcx_fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, g, w);
            continue;
        }
        if (isinf(w) || isinf(g)) {
            if (g != w)
                lcx_fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, g, w);
            continue;
        }
        if (fabs(g - w) > atol + rtol * fabs(w))
            lcx_fail_msg("%s[%zu]: got %.9g, want %.9g (|err| %.3g > %.3g + %.3g*|want|)", what, i,
                         g, w, fabs(g - w), atol, rtol);
    }
}

void lcx_expect_bytes_equal(const void *a, const void *b, size_t n, const char *what)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            lcx_fail_msg("%s: byte %zu differs (0x%02x vs 0x%02x)", what, i, x[i], y[i]);
}
