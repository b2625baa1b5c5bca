/* longctx-pose-batch: position ids of a training batch for context extension
 * with PoSE (positional skip-wise training) and LongRecipe's sentence-gap
 * template, as a data loader builds them: a short training window (L_c
 * tokens) whose position ids cover a long target context (L_t = scale * L_c).
 *
 * Each batch row is one document and uses its own Philox stream (seed, row),
 * so a row's ids do not depend on the batch size, the order in which workers
 * build rows or the machine. For every row the program builds
 *   pose2   the official two-chunk PoSE sampler (lcx_pose_sample),
 *   pose4   the paper's N-chunk form with 4 chunks (lcx_pose_sample_chunks),
 *   recipe  LongRecipe: sentence units of the document's first L_c tokens
 *           (lcx_split_units), the gap template that scatters L_t - L_c extra
 *           positions over the unit boundaries (lcx_gap_template), and a
 *           contiguous prefix of random length (lcx_prefix_then_template),
 * prints each as runs of consecutive positions (with the token gather
 * indices for PoSE) and checks their invariants: ids start at 0, increase
 * strictly, stay below L_t, form at most the expected number of runs, gather
 * indices stay inside the document, the total skip fits L_t - L_c, and a row
 * rebuilt on its own equals the batch row. It also checks the worked examples
 * of PoSE and LongRecipe (methods spec) and the mean of the PoSE draws over
 * many rows. Exit 1 if any check fails.
 *
 *   longctx-pose-batch [batch] [window L_c] [scale] [seed]
 *   defaults: 8 rows, 2048 tokens, scale 16 (L_t 32768), seed 2024 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <longctx/longctx.h>

static int failures;

#define CHECK(call)                                                                                \
    do {                                                                                           \
        lcx_status st_ = (call);                                                                   \
        if (st_ != LCX_OK) {                                                                       \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call, lcx_status_string(st_), \
                    lcx_last_error());                                                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  FAIL: ");                                                                    \
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

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Llama-3 ids of ".", "\n", "?", "!", ".\n": LongRecipe's sentence ends */
static const int64_t DELIMS[5] = {13, 198, 30, 0, 627};

/* A synthetic document: token ids with a sentence end about every 24 tokens. */
static void make_document(uint64_t seed, int64_t row, int64_t len, int64_t *tok)
{
    lcx_random r;
    lcx_random_init(&r, seed, 1000000 + (uint64_t)row);
    for (int64_t i = 0; i < len; i++)
        tok[i] = lcx_random_below(&r, 24) == 0 ? DELIMS[lcx_random_below(&r, 5)]
                                               : 1000 + (int64_t)lcx_random_below(&r, 127000);
}

/* Document length of a row: up to 5 windows (the official code truncates
 * there); every fourth row is shorter than the window. */
static int64_t doc_length(uint64_t seed, int64_t row, int64_t window)
{
    lcx_random r;
    lcx_random_init(&r, seed, 2000000 + (uint64_t)row);
    if (row % 4 == 3)
        return lcx_random_range(&r, window / 4, window - 1);
    return lcx_random_range(&r, window, 5 * window);
}

/* Prints positions (and gather indices) as runs where both advance by one. */
static int64_t print_runs(const char *label, const int64_t *pos, const int64_t *idx, int64_t n, int max_runs)
{
    int64_t runs = 0, shown = 0;
    printf("    %-6s %5lld ids:", label, (long long)n);
    for (int64_t a = 0; a < n;) {
        int64_t b = a + 1;
        while (b < n && pos[b] == pos[b - 1] + 1 && (!idx || idx[b] == idx[b - 1] + 1))
            b++;
        if (shown < max_runs) {
            if (idx)
                printf(" [%lld..%lld <- tok %lld..]", (long long)pos[a], (long long)pos[b - 1], (long long)idx[a]);
            else
                printf(" [%lld..%lld]", (long long)pos[a], (long long)pos[b - 1]);
            shown++;
        }
        runs++;
        a = b;
    }
    if (runs > shown)
        printf(" ... (%lld runs, last id %lld)", (long long)runs, (long long)pos[n - 1]);
    printf("\n");
    return runs;
}

/* Invariants every PoSE / LongRecipe row satisfies; returns the run count. */
static int64_t check_ids(const char *what, int64_t row, const int64_t *pos, const int64_t *idx, int64_t n,
                         int64_t window, int64_t target, int64_t doc_len)
{
    EXPECT(n >= 1 && n <= window, "%s row %lld: %lld ids for a window of %lld", what, (long long)row,
           (long long)n, (long long)window);
    EXPECT(pos[0] == 0, "%s row %lld: first position %lld, not 0", what, (long long)row, (long long)pos[0]);
    int64_t runs = 1;
    for (int64_t j = 1; j < n; j++) {
        EXPECT(pos[j] > pos[j - 1], "%s row %lld: position %lld at %lld does not increase", what, (long long)row,
               (long long)pos[j], (long long)j);
        if (idx)
            EXPECT(idx[j] > idx[j - 1], "%s row %lld: gather index %lld at %lld does not increase", what,
                   (long long)row, (long long)idx[j], (long long)j);
        runs += pos[j] != pos[j - 1] + 1 || (idx && idx[j] != idx[j - 1] + 1);
    }
    EXPECT(pos[n - 1] < target, "%s row %lld: position %lld >= target %lld", what, (long long)row,
           (long long)pos[n - 1], (long long)target);
    /* the ids of n tokens skip pos[n-1] - (n-1) positions in all; the
     * sampler's skip budget is target - n */
    EXPECT(pos[n - 1] - (n - 1) <= target - n, "%s row %lld: total skip %lld > %lld", what, (long long)row,
           (long long)(pos[n - 1] - (n - 1)), (long long)(target - n));
    if (idx)
        EXPECT(idx[0] == 0 && idx[n - 1] < doc_len, "%s row %lld: gather indices [%lld, %lld] outside the "
               "document of %lld tokens", what, (long long)row, (long long)idx[0], (long long)idx[n - 1],
               (long long)doc_len);
    return runs;
}

typedef struct row_ids {
    int64_t n2, n4, nr;
    int64_t *idx2, *pos2, *idx4, *pos4, *posr;
    int64_t rt1;       /* LongRecipe prefix */
    int64_t units;     /* LongRecipe sentence units */
} row_ids;

/* Builds one row from its own streams; also used to rebuild a row alone. */
static void build_row(uint64_t seed, int64_t row, int64_t window, int64_t target, int64_t *doc, int64_t *tmp,
                      int64_t *unit_len, row_ids *out)
{
    const int64_t doc_len = doc_length(seed, row, window);
    lcx_random r;
    lcx_random_init(&r, seed, (uint64_t)row);
    CHECK(lcx_pose_sample(&r, doc_len, window, target, out->idx2, out->pos2, &out->n2));
    const int64_t w = doc_len < window ? doc_len : window;
    CHECK(lcx_pose_sample_chunks(&r, doc_len, window, target, w < 4 ? (int32_t)w : 4, out->idx4, out->pos4,
                                 &out->n4));

    /* LongRecipe: the template covers the first `base` = L_c tokens of the
     * document (all of it if shorter) and spreads target - base extra
     * positions over its sentence boundaries */
    const int64_t base = w;
    make_document(seed, row, base, doc);
    int64_t n_units;
    CHECK(lcx_split_units(doc, base, DELIMS, 5, tmp, &n_units));
    for (int64_t u = 0; u < n_units; u++)
        unit_len[u] = tmp[u] - (u ? tmp[u - 1] : 0);
    CHECK(lcx_gap_template(unit_len, n_units, target - base, NULL, &r, 0, tmp));
    /* training positions: 0 .. rt1-1, then the template (rt1 ~ U{1..(L+1)/2}) */
    out->rt1 = lcx_random_range(&r, 1, (base + 1) / 2);
    CHECK(lcx_prefix_then_template(out->rt1, tmp, base, out->posr));
    out->nr = base;
    out->units = n_units;
}

static void worked_examples(void)
{
    /* PoSE (official code): L_c 8, L_t 32, document of 20, draws rt1 3,
     * rt2 14, skip 17 -> tokens ids[0:3] ++ ids[9:14], positions
     * [0,1,2,20,21,22,23,24] */
    const int64_t lengths[2] = {3, 5}, skips[2] = {0, 17}, content[2] = {0, 14 - 8};
    int64_t idx[8], pos[8];
    CHECK(lcx_pose_transform(lengths, skips, content, 2, 20, 32, idx, pos));
    const int64_t want_idx[8] = {0, 1, 2, 9, 10, 11, 12, 13}, want_pos[8] = {0, 1, 2, 20, 21, 22, 23, 24};
    EXPECT(memcmp(idx, want_idx, sizeof idx) == 0 && memcmp(pos, want_pos, sizeof pos) == 0,
           "PoSE worked example differs");
    /* LongRecipe: units [[0],[1,2,3],[4,5]], base 6, ext 10, slots {0,3,6}:
     * correct template [0,3,4,5,8,9]; the released code's [2,3,4,5,8,9] */
    const int64_t units[3] = {1, 3, 2}, slots[3] = {0, 3, 6};
    int64_t t[6];
    const int64_t want_ok[6] = {0, 3, 4, 5, 8, 9}, want_quirk[6] = {2, 3, 4, 5, 8, 9};
    CHECK(lcx_gap_template(units, 3, 4, slots, NULL, 0, t));
    EXPECT(memcmp(t, want_ok, sizeof t) == 0, "LongRecipe worked example differs");
    CHECK(lcx_gap_template(units, 3, 4, slots, NULL, 1, t));
    EXPECT(memcmp(t, want_quirk, sizeof t) == 0, "LongRecipe worked example (released quirk) differs");
    printf("worked examples: PoSE [0,1,2,20..24] <- tokens [0..2, 9..13]; LongRecipe template [0,3,4,5,8,9] "
           "(released code: [2,3,4,5,8,9])%s\n", failures ? "" : ": ok");
}

/* Mean of the two-chunk sampler's draws over many documents against the
 * means of the uniform distributions they come from. */
static void draw_statistics(uint64_t seed, int64_t window, int64_t target)
{
    enum { N = 4000 };
    const int64_t doc_len = 3 * window, w = window;
    int64_t *idx = xmalloc((size_t)window * sizeof *idx), *pos = xmalloc((size_t)window * sizeof *pos), n;
    double s_rt1 = 0, s_skip = 0;
    int n_rt1 = 0;
    for (int i = 0; i < N; i++) {
        lcx_random r;
        lcx_random_init(&r, seed, 3000000 + (uint64_t)i);
        CHECK(lcx_pose_sample(&r, doc_len, window, target, idx, pos, &n));
        int64_t rt1 = 1;
        while (rt1 < n && pos[rt1] == rt1 && idx[rt1] == rt1)
            rt1++;
        /* with skip 0 and contiguous content the chunks merge and rt1 is
         * hidden; that event does not depend on rt1, so leave it out */
        if (rt1 < n) {
            s_rt1 += (double)rt1;
            n_rt1++;
        }
        s_skip += (double)(pos[n - 1] - (n - 1));
    }
    /* rt1 ~ U{1..(w+1)/2}, skip ~ U{0..L_t - w}: mean and the standard
     * deviation of an N-sample mean (range / sqrt(12 N)) */
    const double h = (double)((w + 1) / 2), m_rt1 = (1 + h) / 2, sd_rt1 = h / sqrt(12.0 * (n_rt1 ? n_rt1 : 1));
    const double m_skip = (double)(target - w) / 2, sd_skip = (double)(target - w + 1) / sqrt(12.0 * N);
    const double mean_rt1 = n_rt1 ? s_rt1 / n_rt1 : m_rt1;
    const double z1 = (mean_rt1 - m_rt1) / sd_rt1, z2 = (s_skip / N - m_skip) / sd_skip;
    printf("draws over %d documents: chunk-0 length mean %.1f (expected %.1f, z %+.2f, %d draws with two "
           "chunks), skip mean %.1f (expected %.1f, z %+.2f)\n", N, mean_rt1, m_rt1, z1, n_rt1, s_skip / N,
           m_skip, z2);
    EXPECT(fabs(z1) < 5 && fabs(z2) < 5, "PoSE draw means are more than 5 standard deviations off");
    free(idx);
    free(pos);
}

int main(int argc, char **argv)
{
    const int64_t B = argc > 1 ? atoll(argv[1]) : 8;
    const int64_t window = argc > 2 ? atoll(argv[2]) : 2048;
    const int64_t scale = argc > 3 ? atoll(argv[3]) : 16;
    const uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 2024;
    if (B < 1 || B > 4096 || window < 4 || window > (1 << 24) || scale < 1 || scale > 4096) {
        fprintf(stderr, "usage: longctx-pose-batch [batch] [window] [scale] [seed]\n");
        return 2;
    }
    const int64_t target = window * scale;
    printf("longctx-pose-batch: %lld rows, window L_c %lld tokens, target L_t %lld (scale %lld), seed %llu\n",
           (long long)B, (long long)window, (long long)target, (long long)scale, (unsigned long long)seed);
    worked_examples();

    /* the batch: [B][window] position ids and gather indices; rows shorter
     * than the window are padded with position 0 and index -1 */
    const size_t bw = (size_t)(B * window);
    int64_t *pos2 = xmalloc(bw * sizeof *pos2), *idx2 = xmalloc(bw * sizeof *idx2);
    int64_t *pos4 = xmalloc(bw * sizeof *pos4), *idx4 = xmalloc(bw * sizeof *idx4);
    int64_t *posr = xmalloc(bw * sizeof *posr);
    int64_t *doc = xmalloc((size_t)window * sizeof *doc), *tmp = xmalloc((size_t)window * sizeof *tmp);
    int64_t *ulen = xmalloc((size_t)window * sizeof *ulen);
    row_ids *rows = xmalloc((size_t)B * sizeof *rows);
    const double t0 = now();
    for (int64_t b = 0; b < B; b++) {
        row_ids *r = &rows[b];
        r->idx2 = idx2 + b * window;
        r->pos2 = pos2 + b * window;
        r->idx4 = idx4 + b * window;
        r->pos4 = pos4 + b * window;
        r->posr = posr + b * window;
        build_row(seed, b, window, target, doc, tmp, ulen, r);
        for (int64_t j = r->n2; j < window; j++)
            r->pos2[j] = 0, r->idx2[j] = -1;
        for (int64_t j = r->n4; j < window; j++)
            r->pos4[j] = 0, r->idx4[j] = -1;
        for (int64_t j = r->nr; j < window; j++)
            r->posr[j] = 0;
    }
    const double t_build = now() - t0;
    printf("built %lld rows x 3 methods in %.3f ms\n", (long long)B, t_build * 1e3);

    int64_t *chk_i = xmalloc((size_t)window * sizeof *chk_i), *chk_p = xmalloc((size_t)window * sizeof *chk_p);
    int64_t *chk_i4 = xmalloc((size_t)window * sizeof *chk_i4), *chk_p4 = xmalloc((size_t)window * sizeof *chk_p4);
    int64_t *chk_r = xmalloc((size_t)window * sizeof *chk_r);
    for (int64_t b = 0; b < B; b++) {
        const row_ids *r = &rows[b];
        const int64_t doc_len = doc_length(seed, b, window);
        printf("row %lld: document of %lld tokens%s\n", (long long)b, (long long)doc_len,
               doc_len < window ? " (shorter than the window: fewer ids, rest padded)" : "");
        print_runs("pose2", r->pos2, r->idx2, r->n2, 3);
        print_runs("pose4", r->pos4, r->idx4, r->n4, 4);
        printf("    recipe prefix %lld, %lld sentence units:\n", (long long)r->rt1, (long long)r->units);
        print_runs("", r->posr, NULL, r->nr, 4);

        const int64_t w = doc_len < window ? doc_len : window;
        EXPECT(r->n2 == w && r->n4 == w && r->nr == w, "row %lld: %lld/%lld/%lld ids, expected %lld",
               (long long)b, (long long)r->n2, (long long)r->n4, (long long)r->nr, (long long)w);
        const int64_t runs2 = check_ids("pose2", b, r->pos2, r->idx2, r->n2, window, target, doc_len);
        const int64_t runs4 = check_ids("pose4", b, r->pos4, r->idx4, r->n4, window, target, doc_len);
        check_ids("recipe", b, r->posr, NULL, r->nr, window, target, doc_len);
        EXPECT(runs2 <= 2, "pose2 row %lld: %lld runs, at most 2", (long long)b, (long long)runs2);
        EXPECT(runs4 <= 4, "pose4 row %lld: %lld runs, at most 4", (long long)b, (long long)runs4);
        /* PoSE: chunk 0 holds at most (w + 1) / 2 tokens unless the chunks merged */
        int64_t first = 1;
        while (first < r->n2 && r->pos2[first] == first && r->idx2[first] == first)
            first++;
        EXPECT(runs2 == 1 || first <= (w + 1) / 2, "pose2 row %lld: first chunk of %lld tokens > %lld",
               (long long)b, (long long)first, (long long)((w + 1) / 2));
        /* LongRecipe: ids 0 .. rt1-1, then increments of 1 inside a sentence
         * unit and >= 1 at unit ends only */
        for (int64_t j = 0; j < r->rt1; j++)
            EXPECT(r->posr[j] == j, "recipe row %lld: prefix id %lld at %lld", (long long)b,
                   (long long)r->posr[j], (long long)j);
        make_document(seed, b, w, doc);
        for (int64_t j = r->rt1; j < r->nr; j++) {
            const int at_unit_start = j > 0 && (doc[j - 1] == 13 || doc[j - 1] == 198 || doc[j - 1] == 30 ||
                                                doc[j - 1] == 0 || doc[j - 1] == 627);
            EXPECT(at_unit_start || j == r->rt1 || r->posr[j] == r->posr[j - 1] + 1,
                   "recipe row %lld: skip inside a sentence at token %lld", (long long)b, (long long)j);
        }
        /* the row rebuilt on its own (as another worker would) is identical */
        row_ids again = {0, 0, 0, chk_i, chk_p, chk_i4, chk_p4, chk_r, 0, 0};
        build_row(seed, b, window, target, doc, tmp, ulen, &again);
        EXPECT(again.n2 == r->n2 && memcmp(chk_i, r->idx2, (size_t)r->n2 * 8) == 0 &&
                   memcmp(chk_p, r->pos2, (size_t)r->n2 * 8) == 0 && memcmp(chk_i4, r->idx4, (size_t)r->n4 * 8) == 0 &&
                   memcmp(chk_p4, r->pos4, (size_t)r->n4 * 8) == 0 && memcmp(chk_r, r->posr, (size_t)r->nr * 8) == 0,
               "row %lld rebuilt alone differs", (long long)b);
    }
    draw_statistics(seed, window, target);

    free(pos2);
    free(idx2);
    free(pos4);
    free(idx4);
    free(posr);
    free(doc);
    free(tmp);
    free(ulen);
    free(rows);
    free(chk_i);
    free(chk_p);
    free(chk_i4);
    free(chk_p4);
    free(chk_r);
    printf("%s (%d failed checks)\n", failures ? "FAILED" : "OK", failures);
    return failures ? 1 : 0;
}
