/* longctx-longrope-search: LongRoPE's evolutionary search for per-frequency
 * rescale factors (lcx_longrope_search) on a toy fitness function.
 *
 * In a real search the fitness is the perplexity of the model on long
 * documents with the candidate factors and n_hat (an expensive callback the
 * caller owns). Here it is a cheap stand-in with the same shape: a
 * "perplexity" exp(2 + distance), where distance is the mean squared log
 * ratio between the candidate factors and a hidden target curve (a smooth,
 * non-decreasing curve unlike the YaRN ramp the search starts from) plus a
 * penalty for an n_hat other than the target's. The program prints the
 * initial, best and target factors, and checks that the fitness improved,
 * the best factors are non-decreasing inside [1, upper bound], the returned
 * fitness is that of the returned factors and the smallest evaluated, no
 * individual was evaluated twice, the progress never got worse, a second run
 * with the same seed gives the same result, and a failing callback stops the
 * search with LCX_E_CALLBACK without writing the outputs. Exit 1 on failure.
 *
 *   longctx-longrope-search [iterations] [population] [seed]
 *   defaults: 40 iterations, population 64 (the released defaults), seed 42 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <longctx/longctx.h>

enum { DIM = 128, NF = DIM / 2, MAX_EVALS = 1 << 20 };
static const double SCALE = 8;                  /* extension ratio s */
static const int64_t N_HAT[] = {0, 1, 2, 4, 8, 16, 32, 64};
static const int64_t TARGET_N_HAT = 4;

static int failures;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL: ");                                                                      \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct toy {
    double target[NF];
    int64_t evals, fail_at;
    double best_seen;
    double *history; /* [MAX_EVALS][NF] of evaluated factors, or NULL */
    int64_t *history_n_hat;
    int64_t cap;
    int32_t iterations_seen;
    double last_progress;
    int progress_worse;
} toy;

/* mean squared log ratio to the target, plus 0.05 per doubling of n_hat away from it */
static double distance(const toy *t, const double *f, int64_t n_hat)
{
    double s = 0;
    for (int i = 0; i < NF; i++) {
        const double r = log(f[i] / t->target[i]);
        s += r * r;
    }
    return s / NF + 0.05 * fabs(log2((double)n_hat + 1) - log2((double)TARGET_N_HAT + 1));
}

static int fitness(void *user, const double *f, int32_t n, int64_t n_hat, double *out)
{
    toy *t = user;
    if (n != NF)
        return 1;
    if (t->fail_at >= 0 && t->evals == t->fail_at)
        return 1; /* e.g. the evaluation job crashed */
    if (t->history && t->evals < t->cap) {
        memcpy(t->history + t->evals * NF, f, NF * sizeof *f);
        t->history_n_hat[t->evals] = n_hat;
    }
    t->evals++;
    *out = exp(2 + distance(t, f, n_hat)); /* a perplexity-like value */
    t->best_seen = fmin(t->best_seen, *out);
    return 0;
}

static void progress(void *user, int32_t iteration, double best)
{
    toy *t = user;
    if (t->iterations_seen > 0 && best > t->last_progress)
        t->progress_worse = 1;
    t->last_progress = best;
    t->iterations_seen++;
    if (iteration % 10 == 0 || iteration < 2)
        printf("  iteration %3d: best %.6f\n", iteration, best);
}

static void print_factors(const char *label, const double *f)
{
    printf("  %-8s", label);
    for (int i = 0; i < NF; i += 4)
        printf(" %5.2f", f[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    lcx_longrope_search_config cfg;
    lcx_longrope_search_config_default(&cfg);
    cfg.iterations = argc > 1 ? atoi(argv[1]) : 40;
    cfg.population = argc > 2 ? atoi(argv[2]) : 64;
    cfg.seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 42;
    if (cfg.iterations < 1 || cfg.iterations > 1000 || cfg.population < 4 || cfg.population > 4096) {
        fprintf(stderr, "usage: longctx-longrope-search [iterations] [population] [seed]\n");
        return 2;
    }
    if (cfg.parents > cfg.population)
        cfg.parents = cfg.population / 2;
    cfg.rotary_dim = DIM;
    cfg.scale = SCALE;
    cfg.n_hat_candidates = N_HAT;
    cfg.n_n_hat = (int32_t)(sizeof N_HAT / sizeof N_HAT[0]);
    cfg.progress = progress;

    /* the hidden optimum: a logistic curve from 1 to 0.9 s centred on pair 40 */
    toy t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < NF; i++)
        t.target[i] = 1 + (0.9 * SCALE - 1) / (1 + exp(-(i - 40) / 3.0));
    t.fail_at = -1;
    t.best_seen = INFINITY;
    t.cap = (int64_t)cfg.population + (int64_t)cfg.iterations * (cfg.mutations + cfg.crossovers);
    t.history = malloc((size_t)t.cap * NF * sizeof *t.history);
    t.history_n_hat = malloc((size_t)t.cap * sizeof *t.history_n_hat);
    if (!t.history || !t.history_n_hat)
        return 1;
    cfg.progress_user = &t;

    double init[NF], best[NF], best2[NF];
    lcx_status st = lcx_longrope_yarn_factors(DIM, cfg.base, cfg.original_max_position, SCALE, cfg.beta_fast,
                                              cfg.beta_slow, init);
    if (st != LCX_OK) {
        fprintf(stderr, "lcx_longrope_yarn_factors: %s\n", lcx_last_error());
        return 1;
    }
    const double f_init = exp(2 + distance(&t, init, 0));
    printf("longctx-longrope-search: %d factors (rotary dim %d), scale %.0f, population %d, %d iterations, "
           "%d mutations + %d crossovers, %d parents, n_hat from %d candidates, seed %llu\n",
           NF, DIM, SCALE, cfg.population, cfg.iterations, cfg.mutations, cfg.crossovers, cfg.parents,
           cfg.n_n_hat, (unsigned long long)cfg.seed);
    printf("initial (YaRN factors, n_hat 0): fitness %.6f\n", f_init);

    int64_t n_hat = -1;
    double f_best = NAN;
    const double t0 = now();
    st = lcx_longrope_search(&cfg, fitness, &t, best, &n_hat, &f_best);
    const double dt = now() - t0;
    if (st != LCX_OK) {
        fprintf(stderr, "lcx_longrope_search: %s: %s\n", lcx_status_string(st), lcx_last_error());
        return 1;
    }
    printf("search: %lld evaluations in %.1f ms (%.1f us each, the toy fitness included)\n", (long long)t.evals,
           dt * 1e3, dt / (double)t.evals * 1e6);
    printf("best: fitness %.6f (%.1f%% of the initial), n_hat %lld (target %lld), distance %.5f -> %.5f\n",
           f_best, 100 * f_best / f_init, (long long)n_hat, (long long)TARGET_N_HAT, distance(&t, init, 0),
           distance(&t, best, n_hat));
    printf("factors of pairs 0, 4, 8, ... 60:\n");
    print_factors("initial", init);
    print_factors("best", best);
    print_factors("target", t.target);

    /* checks */
    EXPECT(f_best < f_init, "no improvement: %.6f >= %.6f", f_best, f_init);
    const double upper = cfg.upper_bound > 0 ? cfg.upper_bound : 1 + SCALE;
    for (int i = 0; i < NF; i++) {
        EXPECT(best[i] >= 1 - 1e-12 && best[i] <= upper + 1e-9, "factor %d = %.6f outside [1, %.2f]", i, best[i],
               upper);
        EXPECT(i == 0 || best[i] >= best[i - 1], "factors decrease at pair %d: %.6f < %.6f", i, best[i],
               best[i - 1]);
    }
    int found = 0;
    for (int i = 0; i < cfg.n_n_hat; i++)
        found |= N_HAT[i] == n_hat;
    EXPECT(found, "n_hat %lld is not a candidate", (long long)n_hat);
    EXPECT(exp(2 + distance(&t, best, n_hat)) == f_best, "returned fitness is not that of the returned factors");
    EXPECT(f_best == t.best_seen, "returned fitness %.9f is not the smallest evaluated %.9f", f_best, t.best_seen);
    EXPECT(t.iterations_seen == cfg.iterations && !t.progress_worse,
           "progress: %d calls for %d iterations%s", t.iterations_seen, cfg.iterations,
           t.progress_worse ? ", best fitness got worse" : "");
    EXPECT(t.evals == t.cap, "%lld evaluations, expected P + T (mutations + crossovers) = %lld",
           (long long)t.evals, (long long)t.cap);
    /* no individual evaluated twice (the library's 1e-5 relative test) */
    int64_t dups = 0;
    const int64_t ne = t.evals < t.cap ? t.evals : t.cap;
    for (int64_t a = 0; a < ne; a++)
        for (int64_t b = a + 1; b < ne; b++) {
            if (t.history_n_hat[a] != t.history_n_hat[b])
                continue;
            const double *x = t.history + a * NF, *y = t.history + b * NF;
            int same = 1;
            for (int i = 0; i < NF && same; i++)
                same = fabs(x[i] - y[i]) <= 1e-5 * fabs(y[i]) + 1e-8;
            dups += same;
        }
    EXPECT(dups == 0, "%lld pairs of evaluated individuals are equal", (long long)dups);

    /* the same seed gives the same search */
    toy t2 = t;
    t2.history = NULL;
    t2.evals = 0;
    t2.best_seen = INFINITY;
    t2.iterations_seen = 0;
    cfg.progress = NULL;
    int64_t n_hat2 = -1;
    double f2 = NAN;
    st = lcx_longrope_search(&cfg, fitness, &t2, best2, &n_hat2, &f2);
    EXPECT(st == LCX_OK && f2 == f_best && n_hat2 == n_hat && memcmp(best, best2, sizeof best) == 0,
           "a second run with seed %llu differs", (unsigned long long)cfg.seed);

    /* a failing evaluation stops the search and leaves the outputs alone */
    toy t3 = t2;
    t3.evals = 0;
    t3.fail_at = 10;
    double keep[NF];
    for (int i = 0; i < NF; i++)
        keep[i] = best2[i] = -1;
    int64_t n_hat3 = -7;
    double f3 = -7;
    st = lcx_longrope_search(&cfg, fitness, &t3, best2, &n_hat3, &f3);
    EXPECT(st == LCX_E_CALLBACK && n_hat3 == -7 && f3 == -7 && memcmp(best2, keep, sizeof keep) == 0,
           "failing fitness: status %s, outputs %s", lcx_status_string(st),
           n_hat3 == -7 && f3 == -7 ? "untouched" : "written");
    printf("checks: improvement, bounds, monotone factors, returned = best evaluated, %lld distinct "
           "individuals, progress, determinism, callback failure -> %s\n", (long long)ne,
           lcx_status_string(st));

    free(t.history);
    free(t.history_n_hat);
    printf("%s (%d failed checks)\n", failures ? "FAILED" : "OK", failures);
    return failures ? 1 : 0;
}
