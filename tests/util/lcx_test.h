/* Test helpers: ISA selection, seeded RNG, guarded buffers, comparisons. */
#ifndef LCX_TEST_H
#define LCX_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "longctx/longctx.h"

/* ---- the ISA a test executable runs for (argv[1]) ---- */
extern lcx_isa lcx_test_isa;
extern uint64_t lcx_test_seed;

/* Parse argv[1] (an ISA name, default "auto"), print the seed, and run the
 * group. Returns 77 (meson: skipped) when the ISA is not compiled or not
 * supported by this CPU. LONGCTX_TEST_SEED=<n> replays a run. */
int lcx_test_run(const char *suite, int argc, char **argv, const struct CMUnitTest *tests,
                 size_t n_tests);

/* A context for the ISA under test with n_threads (0 = default). */
lcx_context *lcx_test_context(int32_t n_threads);

/* ---- deterministic RNG (xoshiro256**, seeded per test from the run seed) ---- */
typedef struct lcx_rng { uint64_t s[4]; } lcx_rng;
void lcx_rng_seed(lcx_rng *r, uint64_t seed, uint64_t stream);
uint64_t lcx_rng_u64(lcx_rng *r);
uint32_t lcx_rng_u32(lcx_rng *r);
double lcx_rng_uniform(lcx_rng *r, double lo, double hi); /* [lo, hi) */
int64_t lcx_rng_range(lcx_rng *r, int64_t lo, int64_t hi); /* [lo, hi] */

/* ---- guarded buffers: 256 guard bytes each side, data poisoned ---- */
typedef struct lcx_guarded {
    unsigned char *base;
    size_t bytes;
    void *data;
} lcx_guarded;
#define LCX_GUARD_BYTES 256
void *lcx_guard_alloc(lcx_guarded *g, size_t bytes);
void lcx_guard_poison(lcx_guarded *g, unsigned char byte);
/* fails the test (with the seed) if a guard byte changed */
void lcx_guard_check(const lcx_guarded *g, const char *what);
void lcx_guard_free(lcx_guarded *g);

/* ---- comparisons (fail the test with index, values and seed) ---- */
void lcx_fail_msg(const char *fmt, ...);
/* |got - want| <= atol + rtol * |want| for every element; NaN must match NaN. */
void lcx_expect_close(const double *got, const double *want, size_t n, double atol, double rtol,
                      const char *what);
void lcx_expect_bytes_equal(const void *a, const void *b, size_t n, const char *what);

#endif
