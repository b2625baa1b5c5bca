/* LongRoPE factor search: YaRN initial factors (methods.md §4.2 example),
 * convergence on a synthetic fitness with a hidden monotone optimum, the
 * invariants of every evaluated individual, determinism, n_hat, callbacks
 * and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"

#define NF 8 /* factors in the synthetic searches (rotary_dim 16) */

typedef struct probe {
    const double *target;
    double upper;
    int64_t evals, fail_at, want_nhat;
    double *seen;        /* every evaluated individual */
    int64_t *seen_nhat;
    uint64_t hash;
    int bad;             /* first invariant broken (0 = none) */
} probe;

static int fitness(void *user, const double *f, int32_t n, int64_t n_hat, double *out)
{
    probe *p = user;
    if (p->fail_at && p->evals + 1 == p->fail_at)
        return 1;
    for (int32_t i = 0; i < n && !p->bad; i++) {
        if (!(f[i] >= 1.0 && f[i] <= p->upper + 1e-9))
            p->bad = 1;
        else if (i && f[i] < f[i - 1])
            p->bad = 2;
    }
    for (int64_t e = 0; e < p->evals && !p->bad; e++) {
        int same = p->seen_nhat[e] == n_hat;
        for (int32_t i = 0; i < n && same; i++)
            same = fabs(p->seen[e * n + i] - f[i]) <= 1e-8 + 1e-5 * fabs(f[i]);
        if (same)
            p->bad = 3;
    }
    memcpy(p->seen + p->evals * n, f, sizeof(double) * (size_t)n);
    p->seen_nhat[p->evals] = n_hat;
    double d = 0;
    for (int32_t i = 0; i < n; i++) {
        d += (f[i] - p->target[i]) * (f[i] - p->target[i]);
        uint64_t bits;
        memcpy(&bits, &f[i], 8);
        p->hash = (p->hash ^ bits) * 0x100000001b3ull;
    }
    d += 0.01 * (double)((n_hat - p->want_nhat) * (n_hat - p->want_nhat));
    p->hash = (p->hash ^ (uint64_t)n_hat) * 0x100000001b3ull;
    p->evals++;
    *out = d;
    return 0;
}

static void progress(void *user, int32_t it, double best)
{
    double *last = user;
    if (it > 0 && best > last[1])
        last[2] = 1; /* best fitness went up: elitism broken */
    last[0] = it;
    last[1] = best;
}

static void probe_init(probe *p, const double *target, double upper)
{
    memset(p, 0, sizeof *p);
    p->target = target;
    p->upper = upper;
    p->seen = malloc(sizeof(double) * 20000 * NF);
    p->seen_nhat = malloc(sizeof(int64_t) * 20000);
    p->hash = 0xcbf29ce484222325ull;
}

static void test_yarn_initial_factors(void **state)
{
    (void)state;
    double f[64];
    /* d 128, base 1e4, L_orig 4096, s 8: 1 up to 20, ramp 1.269.., 8 from 46 */
    assert_int_equal(lcx_longrope_yarn_factors(128, 1e4, 4096, 8, 32, 1, f), LCX_OK);
    for (int i = 0; i <= 20; i++)
        assert_true(f[i] == 1.0);
    assert_true(fabs(f[21] - 1.269230769) < 1e-6);
    assert_true(fabs(f[22] - 1.538461538) < 1e-6);
    assert_true(fabs(f[45] - 7.730769231) < 1e-6);
    for (int i = 46; i < 64; i++)
        assert_true(f[i] == 8.0);
    assert_int_equal(lcx_longrope_yarn_factors(127, 1e4, 4096, 8, 32, 1, f), LCX_E_INVALID);
    assert_int_equal(lcx_longrope_yarn_factors(128, 1.0, 4096, 8, 32, 1, f), LCX_E_INVALID);
}

/* The hidden optimum lies on the 0.01 grid, non-decreasing in [1, 1 + s]:
 * the default search (64 + 40 x 32 = 1344 evaluations at most) must get every
 * factor within 0.05 (5 grid steps) of it, starting from the YaRN factors. */
static void test_search_converges(void **state)
{
    (void)state;
    const double target[NF] = {1.0, 1.0, 1.12, 1.5, 2.33, 3.1, 3.6, 4.0};
    lcx_longrope_search_config c;
    lcx_longrope_search_config_default(&c);
    c.rotary_dim = 2 * NF;
    c.scale = 4;
    c.original_max_position = 4096;
    double last[3] = {0};
    c.progress = progress;
    c.progress_user = last;
    probe p;
    probe_init(&p, target, 5.0);
    double best[NF], fit;
    int64_t nh = -1;
    assert_int_equal(lcx_longrope_search(&c, fitness, &p, best, &nh, &fit), LCX_OK);
    if (p.bad)
        lcx_fail_msg("an evaluated individual broke invariant %d (1 bounds, 2 monotone, 3 duplicate)", p.bad);
    assert_true(p.evals <= 64 + 40 * 32);
    assert_int_equal((int)last[0], 39);
    assert_true(last[2] == 0);
    assert_true(last[1] == fit);
    for (int i = 0; i < NF; i++)
        if (!(fabs(best[i] - target[i]) <= 0.05))
            lcx_fail_msg("factor %d: %g, optimum %g (fitness %g after %lld evaluations)", i, best[i], target[i], fit,
                         (long long)p.evals);
    assert_int_equal(nh, 0);
    /* the same seed replays the same evaluations; another seed does not */
    probe q;
    probe_init(&q, target, 5.0);
    c.progress = NULL;
    double best2[NF], fit2;
    int64_t nh2;
    assert_int_equal(lcx_longrope_search(&c, fitness, &q, best2, &nh2, &fit2), LCX_OK);
    assert_true(q.hash == p.hash && q.evals == p.evals && fit2 == fit);
    lcx_expect_bytes_equal(best, best2, sizeof best, "same seed");
    probe r;
    probe_init(&r, target, 5.0);
    c.seed = 43;
    assert_int_equal(lcx_longrope_search(&c, fitness, &r, best2, &nh2, &fit2), LCX_OK);
    assert_true(r.hash != p.hash);
    free(p.seen);
    free(p.seen_nhat);
    free(q.seen);
    free(q.seen_nhat);
    free(r.seen);
    free(r.seen_nhat);
}

/* n_hat is searched jointly among the candidates; a custom upper bound holds */
static void test_search_n_hat_and_bound(void **state)
{
    (void)state;
    const double target[NF] = {1.0, 1.1, 1.2, 1.3, 1.6, 2.0, 2.5, 2.5};
    const int64_t cands[6] = {0, 2, 4, 8, 16, 32};
    lcx_longrope_search_config c;
    lcx_longrope_search_config_default(&c);
    c.rotary_dim = 2 * NF;
    c.scale = 4;
    c.upper_bound = 2.5;
    c.n_hat_candidates = cands;
    c.n_n_hat = 6;
    c.iterations = 30;
    probe p;
    probe_init(&p, target, 2.5);
    p.want_nhat = 8;
    double best[NF], fit;
    int64_t nh;
    assert_int_equal(lcx_longrope_search(&c, fitness, &p, best, &nh, &fit), LCX_OK);
    if (p.bad)
        lcx_fail_msg("invariant %d broken", p.bad);
    assert_int_equal(nh, 8);
    for (int i = 0; i < NF; i++)
        assert_true(best[i] <= 2.5 + 1e-9);
    free(p.seen);
    free(p.seen_nhat);
}

static void test_search_errors(void **state)
{
    (void)state;
    const double target[NF] = {1, 1, 1, 1, 1, 1, 1, 1};
    lcx_longrope_search_config c;
    lcx_longrope_search_config_default(&c);
    c.rotary_dim = 2 * NF;
    c.scale = 4;
    probe p;
    probe_init(&p, target, 5.0);
    p.fail_at = 100;
    double best[NF] = {7, 7, 7, 7, 7, 7, 7, 7}, fit = 7;
    int64_t nh = 7;
    assert_int_equal(lcx_longrope_search(&c, fitness, &p, best, &nh, &fit), LCX_E_CALLBACK);
    assert_non_null(strstr(lcx_last_error(), "fitness"));
    assert_true(best[0] == 7 && nh == 7 && fit == 7); /* outputs untouched */
    assert_int_equal(p.evals, 99);
    const double bad_init[NF] = {1, 2, 1.5, 3, 3, 3, 3, 3};
    for (int k = 0;; k++) {
        lcx_longrope_search_config b = c;
        const char *msg;
        switch (k) {
        case 0: b.struct_size = 4; msg = "struct_size"; break;
        case 1: b.rotary_dim = 7; msg = "rotary_dim"; break;
        case 2: b.scale = 0.5; msg = "scale"; break;
        case 3: b.parents = 100; msg = "parents"; break;
        case 4: b.probability = 0; msg = "probability"; break;
        case 5: b.initial_factors = bad_init; msg = "initial_factors[2]"; break;
        case 6: b.n_n_hat = 2; msg = "n_n_hat"; break;
        case 7: b.upper_bound = -1; msg = "upper_bound"; break;
        default: goto done;
        }
        const lcx_status st = lcx_longrope_search(&b, fitness, &p, best, &nh, &fit);
        if (st != LCX_E_INVALID || !strstr(lcx_last_error(), msg))
            lcx_fail_msg("bad config %d: %s '%s' (want '%s')", k, lcx_status_string(st), lcx_last_error(), msg);
    }
done:
    assert_int_equal(lcx_longrope_search(&c, NULL, &p, best, &nh, &fit), LCX_E_INVALID);
    assert_int_equal(lcx_longrope_search(NULL, fitness, &p, best, &nh, &fit), LCX_E_INVALID);
    free(p.seen);
    free(p.seen_nhat);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yarn_initial_factors),
        cmocka_unit_test(test_search_converges),
        cmocka_unit_test(test_search_n_hat_and_bound),
        cmocka_unit_test(test_search_errors),
    };
    return lcx_test_run("search", argc, argv, tests, sizeof tests / sizeof *tests);
}
