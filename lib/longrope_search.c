/* LongRoPE evolutionary search of per-dimension rescale factors. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal/lcx_internal.h"
#include "longctx/positions.h"
#include "longctx/recipe.h"

#define LCX_LR_MAX_FACTORS 512

void lcx_longrope_search_config_default(lcx_longrope_search_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->struct_size = sizeof *c;
    c->rotary_dim = 128;
    c->scale = 8;
    c->upper_bound = 0;
    c->population = 64;
    c->iterations = 40;
    c->mutations = 16;
    c->crossovers = 16;
    c->parents = 32;
    c->step = 0.01;
    c->probability = 0.3;
    c->crossover_retries = 20;
    c->max_attempts = 1000;
    c->base = 10000;
    c->original_max_position = 4096;
    c->beta_fast = 32;
    c->beta_slow = 1;
    c->seed = 42;
}

lcx_status lcx_longrope_yarn_factors(int32_t d, double base, int64_t l0, double s, double bf, double bs,
                                     double *factors)
{
    if (!factors)
        return lcx_fail(LCX_E_INVALID, "longrope_yarn_factors: factors is NULL");
    if (d < 2 || d % 2 || d > 2 * LCX_LR_MAX_FACTORS)
        return lcx_fail(LCX_E_INVALID, "longrope_yarn_factors: rotary_dim %" PRId32 " must be even, 2..%d", d,
                        2 * LCX_LR_MAX_FACTORS);
    if (!isfinite(base) || base <= 1 || l0 < 1 || !isfinite(s) || s < 1 || !isfinite(bf) || bf <= 0 ||
        !isfinite(bs) || bs <= 0)
        return lcx_fail(LCX_E_INVALID,
                        "longrope_yarn_factors: base %g, original_max_position %" PRId64
                        ", scale %g, beta %g/%g out of range", base, l0, s, bf, bs);
    const double lb = log(base);
    double lo = floor(d * log((double)l0 / (2 * M_PI * bf)) / (2 * lb));
    double hi = ceil(d * log((double)l0 / (2 * M_PI * bs)) / (2 * lb));
    lo = lo > 0 ? lo : 0;
    hi = hi < d - 1 ? hi : d - 1;
    if (lo == hi)
        hi += 0.001;
    for (int32_t i = 0; i < d / 2; i++) {
        double r = (i - lo) / (hi - lo);
        r = r < 0 ? 0 : r > 1 ? 1 : r;
        const double m = 1 - r;
        factors[i] = s * (1 - m) + m;
    }
    return LCX_OK;
}

/* ---- search state ---- */

typedef struct lcx_ind {
    double *f;
    int64_t n_hat;
    double fit;
    int64_t order; /* evaluation index: breaks fitness ties, so sorting is deterministic */
} lcx_ind;

typedef struct lcx_search {
    const lcx_longrope_search_config *c;
    lcx_longrope_fitness_fn fitness;
    void *user;
    lcx_random rng;
    int32_t n;            /* factors */
    double upper;
    double *hist;         /* every evaluated individual: n factors + n_hat each */
    int64_t *hist_nhat;
    int64_t n_hist, cap_hist;
    lcx_status st;
} lcx_search;

static double lcx_uniform01(lcx_random *r)
{
    return (double)(lcx_random_u64(r) >> 11) * 0x1.0p-53;
}

static int lcx_allclose(const double *a, const double *b, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= 1e-8 + 1e-5 * fabs(b[i])))
            return 0;
    return 1;
}

static int lcx_monotone_in_range(const lcx_search *s, const double *f)
{
    for (int32_t i = 0; i < s->n; i++) {
        if (!(f[i] >= 1.0 && f[i] <= s->upper + 1e-9))
            return 0;
        if (i && f[i] < f[i - 1])
            return 0;
    }
    return 1;
}

static int lcx_novel(const lcx_search *s, const double *f, int64_t n_hat)
{
    for (int64_t h = 0; h < s->n_hist; h++)
        if (s->hist_nhat[h] == n_hat && lcx_allclose(f, s->hist + h * s->n, s->n))
            return 0;
    return 1;
}

/* evaluate and record; returns 0 on success */
static int lcx_eval(lcx_search *s, lcx_ind *x)
{
    if (s->n_hist == s->cap_hist) {
        const int64_t cap = s->cap_hist ? 2 * s->cap_hist : 256;
        double *h = realloc(s->hist, (size_t)(cap * s->n) * sizeof *h);
        int64_t *hn = h ? realloc(s->hist_nhat, (size_t)cap * sizeof *hn) : NULL;
        if (!h || !hn) {
            if (h)
                s->hist = h;
            s->st = lcx_fail(LCX_E_NOMEM, "longrope_search: out of memory for the history");
            return -1;
        }
        s->hist = h;
        s->hist_nhat = hn;
        s->cap_hist = cap;
    }
    memcpy(s->hist + s->n_hist * s->n, x->f, (size_t)s->n * sizeof *x->f);
    s->hist_nhat[s->n_hist++] = x->n_hat;
    double fit = NAN;
    if (s->fitness(s->user, x->f, s->n, x->n_hat, &fit) != 0) {
        s->st = lcx_fail(LCX_E_CALLBACK, "longrope_search: the fitness callback failed (evaluation %" PRId64 ")",
                         s->n_hist);
        return -1;
    }
    x->fit = isnan(fit) ? INFINITY : fit;
    x->order = s->n_hist;
    return 0;
}

/* grid value drawn uniformly from {lo, lo + step, ...} up to hi (inclusive
 * when `incl`), or `cur` when that set is empty */
static double lcx_grid_draw(lcx_search *s, double lo, double hi, int incl, double cur)
{
    const double step = s->c->step;
    double k = floor((hi - lo) / step + 1e-9);
    if (!incl && lo + k * step >= hi - 1e-12)
        k -= 1;
    if (k < 0)
        return cur;
    return lo + (double)lcx_random_below(&s->rng, (uint64_t)k + 1) * step;
}

/* mutate `src` into `dst` until novel and monotone; 0 on success, 1 when
 * max_attempts redraws found nothing new */
static int lcx_mutate(lcx_search *s, const lcx_ind *src, lcx_ind *dst)
{
    const double p = s->c->probability;
    const int32_t n = s->n;
    for (int32_t att = 0; att < s->c->max_attempts; att++) {
        memcpy(dst->f, src->f, (size_t)n * sizeof *dst->f);
        dst->n_hat = src->n_hat;
        for (int32_t i = 0; i < n; i++) {
            if (lcx_uniform01(&s->rng) >= p)
                continue;
            if (n == 1)
                dst->f[i] = lcx_grid_draw(s, 1.0, s->upper, 1, dst->f[i]);
            else if (i == 0)
                dst->f[i] = lcx_grid_draw(s, 1.0, dst->f[1], 0, dst->f[i]);
            else if (i == n - 1)
                dst->f[i] = lcx_grid_draw(s, dst->f[i - 1], s->upper, 1, dst->f[i]);
            else
                dst->f[i] = lcx_grid_draw(s, dst->f[i - 1], dst->f[i + 1], 1, dst->f[i]);
        }
        if (s->c->n_n_hat > 0 && lcx_uniform01(&s->rng) < p)
            dst->n_hat = s->c->n_hat_candidates[lcx_random_below(&s->rng, (uint64_t)s->c->n_n_hat)];
        if (lcx_monotone_in_range(s, dst->f) && lcx_novel(s, dst->f, dst->n_hat))
            return 0;
    }
    return 1;
}

/* crossover of a (better) and b; 0 on success, 1 for "none" */
static int lcx_crossover(lcx_search *s, const lcx_ind *a, const lcx_ind *b, lcx_ind *dst)
{
    const int32_t n = s->n;
    if (a->n_hat == b->n_hat && lcx_allclose(a->f, b->f, n))
        return 1;
    memcpy(dst->f, a->f, (size_t)n * sizeof *dst->f);
    dst->n_hat = a->n_hat;
    const int32_t dims = n + (s->c->n_n_hat > 0); /* n_hat crosses over as one more dimension */
    for (int32_t pass = 0; pass < s->c->crossover_retries; pass++) {
        for (int32_t i = 0; i < dims; i++) {
            if (lcx_uniform01(&s->rng) >= s->c->probability)
                continue;
            if (lcx_uniform01(&s->rng) < 0.5) {
                if (i < n)
                    dst->f[i] = b->f[i];
                else
                    dst->n_hat = b->n_hat;
            }
            if (lcx_monotone_in_range(s, dst->f) && lcx_novel(s, dst->f, dst->n_hat))
                return 0;
        }
    }
    return 1;
}

static int lcx_by_fitness(const void *pa, const void *pb)
{
    const lcx_ind *a = pa, *b = pb;
    if (a->fit != b->fit)
        return a->fit < b->fit ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

static lcx_status lcx_search_check(const lcx_longrope_search_config *c, lcx_longrope_fitness_fn fitness,
                                   const double *bf, const int64_t *bn, const double *bfit)
{
    const char *op = "longrope_search";
    if (!c)
        return lcx_fail(LCX_E_INVALID, "%s: cfg is NULL", op);
    if (c->struct_size != sizeof *c)
        return lcx_fail(LCX_E_INVALID, "%s: cfg struct_size %zu is not a size this library knows (%zu)", op,
                        c->struct_size, sizeof *c);
    if (!fitness || !bf || !bn || !bfit)
        return lcx_fail(LCX_E_INVALID, "%s: %s is NULL", op,
                        !fitness ? "fitness" : !bf ? "best_factors" : !bn ? "best_n_hat" : "best_fitness");
    if (c->rotary_dim < 2 || c->rotary_dim % 2 || c->rotary_dim > 2 * LCX_LR_MAX_FACTORS)
        return lcx_fail(LCX_E_INVALID, "%s: rotary_dim %" PRId32 " must be even, 2..%d", op, c->rotary_dim,
                        2 * LCX_LR_MAX_FACTORS);
    if (!isfinite(c->scale) || c->scale < 1)
        return lcx_fail(LCX_E_INVALID, "%s: scale %g must be finite and >= 1", op, c->scale);
    const double upper = c->upper_bound > 0 ? c->upper_bound : 1 + c->scale;
    if (!isfinite(c->upper_bound) || c->upper_bound < 0 || upper < 1)
        return lcx_fail(LCX_E_INVALID, "%s: upper_bound %g must be 0 or finite and >= 1", op, c->upper_bound);
    if (c->population < 2 || c->parents < 1 || c->parents > c->population || c->iterations < 0 ||
        c->mutations < 0 || c->crossovers < 0 || c->crossover_retries < 1 || c->max_attempts < 1)
        return lcx_fail(LCX_E_INVALID,
                        "%s: population %" PRId32 ", parents %" PRId32 ", iterations %" PRId32 ", mutations %" PRId32
                        ", crossovers %" PRId32 ", crossover_retries %" PRId32 ", max_attempts %" PRId32
                        " out of range", op, c->population, c->parents, c->iterations, c->mutations, c->crossovers,
                        c->crossover_retries, c->max_attempts);
    if (c->crossovers > 0 && c->parents < 2)
        return lcx_fail(LCX_E_INVALID, "%s: crossovers need parents >= 2", op);
    if (!isfinite(c->step) || c->step <= 0 || !isfinite(c->probability) || c->probability <= 0 || c->probability > 1)
        return lcx_fail(LCX_E_INVALID, "%s: step %g must be > 0 and probability %g in (0, 1]", op, c->step,
                        c->probability);
    if ((upper - 1) / c->step > 9007199254740992.0)
        return lcx_fail(LCX_E_INVALID, "%s: step %g is too small for the range [1, %g] (more than 2^53 grid points)",
                        op, c->step, upper);
    if (c->n_n_hat < 0 || (c->n_n_hat > 0 && !c->n_hat_candidates))
        return lcx_fail(LCX_E_INVALID, "%s: n_n_hat %" PRId32 " without candidates", op, c->n_n_hat);
    for (int32_t i = 0; i < c->n_n_hat; i++)
        if (c->n_hat_candidates[i] < 0)
            return lcx_fail(LCX_E_INVALID, "%s: n_hat_candidates[%" PRId32 "] is negative", op, i);
    if (c->initial_factors) {
        for (int32_t i = 0; i < c->rotary_dim / 2; i++) {
            const double f = c->initial_factors[i];
            if (!isfinite(f) || f < 1 || f > upper + 1e-9 || (i && f < c->initial_factors[i - 1]))
                return lcx_fail(LCX_E_INVALID,
                                "%s: initial_factors[%" PRId32 "] = %g must be non-decreasing within [1, %g]", op, i,
                                f, upper);
        }
    }
    return LCX_OK;
}

lcx_status lcx_longrope_search(const lcx_longrope_search_config *c, lcx_longrope_fitness_fn fitness, void *user,
                               double *best_factors, int64_t *best_n_hat, double *best_fitness)
{
    lcx_status st = lcx_search_check(c, fitness, best_factors, best_n_hat, best_fitness);
    if (st != LCX_OK)
        return st;
    lcx_search s = {0};
    s.c = c;
    s.fitness = fitness;
    s.user = user;
    s.n = c->rotary_dim / 2;
    s.upper = c->upper_bound > 0 ? c->upper_bound : 1 + c->scale;
    lcx_random_init(&s.rng, c->seed, 0);

    /* individuals: population + children of one iteration, each with its factors */
    const int32_t cap = (c->population > c->parents ? c->population : c->parents) + c->mutations + c->crossovers;
    lcx_ind *pop = calloc((size_t)cap, sizeof *pop);
    double *store = calloc((size_t)cap * (size_t)s.n, sizeof *store);
    if (!pop || !store) {
        free(pop);
        free(store);
        return lcx_fail(LCX_E_NOMEM, "longrope_search: out of memory");
    }
    for (int32_t i = 0; i < cap; i++)
        pop[i].f = store + (size_t)i * s.n;

    int32_t np = 0;
    /* individual 0: the initial factors */
    if (c->initial_factors)
        memcpy(pop[0].f, c->initial_factors, (size_t)s.n * sizeof(double));
    else if ((st = lcx_longrope_yarn_factors(c->rotary_dim, c->base, c->original_max_position, c->scale,
                                             c->beta_fast > 0 ? c->beta_fast : 32,
                                             c->beta_slow > 0 ? c->beta_slow : 1, pop[0].f)) != LCX_OK)
        goto done;
    for (int32_t i = 0; i < s.n; i++) /* keep within the bound (YaRN ends at s <= upper) */
        pop[0].f[i] = pop[0].f[i] > s.upper ? s.upper : pop[0].f[i];
    pop[0].n_hat = c->n_n_hat > 0 ? c->n_hat_candidates[0] : 0;
    if (lcx_eval(&s, &pop[0]) != 0)
        goto fail;
    np = 1;
    while (np < c->population) {
        if (lcx_mutate(&s, &pop[0], &pop[np]) != 0)
            break; /* the neighbourhood is exhausted */
        if (lcx_eval(&s, &pop[np]) != 0)
            goto fail;
        np++;
    }
    for (int32_t it = 0; it < c->iterations; it++) {
        qsort(pop, (size_t)np, sizeof *pop, lcx_by_fitness);
        const int32_t npar = np < c->parents ? np : c->parents;
        np = npar;
        for (int32_t k = 0; k < c->mutations; k++) {
            const lcx_ind *par = &pop[lcx_random_below(&s.rng, (uint64_t)npar)];
            if (lcx_mutate(&s, par, &pop[np]) != 0)
                continue;
            if (lcx_eval(&s, &pop[np]) != 0)
                goto fail;
            np++;
        }
        for (int32_t k = 0; k < c->crossovers && npar >= 2; k++) {
            int64_t i = (int64_t)lcx_random_below(&s.rng, (uint64_t)npar);
            int64_t j = (int64_t)lcx_random_below(&s.rng, (uint64_t)(npar - 1));
            if (j >= i)
                j++;
            if (j < i) {
                const int64_t t = i;
                i = j;
                j = t;
            }
            int made = lcx_crossover(&s, &pop[i], &pop[j], &pop[np]) == 0;
            if (!made)
                made = lcx_mutate(&s, &pop[i], &pop[np]) == 0;
            if (!made)
                continue;
            if (lcx_eval(&s, &pop[np]) != 0)
                goto fail;
            np++;
        }
        if (c->progress) {
            double best = INFINITY;
            for (int32_t k = 0; k < np; k++)
                best = pop[k].fit < best ? pop[k].fit : best;
            c->progress(c->progress_user, it, best);
        }
    }
    qsort(pop, (size_t)np, sizeof *pop, lcx_by_fitness);
    memcpy(best_factors, pop[0].f, (size_t)s.n * sizeof *best_factors);
    *best_n_hat = pop[0].n_hat;
    *best_fitness = pop[0].fit;
    st = LCX_OK;
    goto done;
fail:
    st = s.st;
done:
    free(pop);
    free(store);
    free(s.hist);
    free(s.hist_nhat);
    return st;
}
