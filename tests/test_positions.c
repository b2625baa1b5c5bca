/* Random numbers and position transforms: known answers, the spec's worked
 * examples, invariants, chi-square uniformity of every sampler with fixed
 * seeds (critical values at significance 0.001), and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "internal/lcx_internal.h"

/* chi-square statistic of observed counts against expected counts */
static double chi2(const double *obs, const double *expect, int k)
{
    double s = 0;
    for (int i = 0; i < k; i++)
        s += (obs[i] - expect[i]) * (obs[i] - expect[i]) / expect[i];
    return s;
}

/* upper 0.001 critical value of chi-square with df degrees of freedom
 * (Wilson-Hilferty approximation, accurate to ~1% for df >= 3) */
static double chi2_crit(int df)
{
    const double z = 3.0902323061678132; /* standard normal 0.999 quantile */
    const double a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

static void expect_uniform(const double *obs, int k, double total, const char *what)
{
    double *e = malloc(sizeof(double) * k);
    for (int i = 0; i < k; i++)
        e[i] = total / k;
    const double c = chi2(obs, e, k), crit = chi2_crit(k - 1);
    free(e);
    if (c > crit)
        lcx_fail_msg("%s: chi-square %.2f > %.2f (df %d, p = 0.001)", what, c, crit, k - 1);
}

/* Philox4x32-10 known-answer vectors published with Random123 (kat_vectors). */
static void test_philox_known_answers(void **state)
{
    (void)state;
    const struct { uint32_t ctr[4], key[2], out[4]; } kat[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}};
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        lcx_philox4x32(kat[k].ctr, kat[k].key, 10, out);
        for (int i = 0; i < 4; i++)
            if (out[i] != kat[k].out[i])
                lcx_fail_msg("KAT %d word %d: 0x%08x, want 0x%08x", k, i, out[i], kat[k].out[i]);
        /* the same block through the public stream: key = seed, counter = (block, stream) */
        lcx_random r;
        lcx_random_init(&r, ((uint64_t)kat[k].key[1] << 32) | kat[k].key[0],
                        ((uint64_t)kat[k].ctr[3] << 32) | kat[k].ctr[2]);
        r.block = ((uint64_t)kat[k].ctr[1] << 32) | kat[k].ctr[0];
        for (int i = 0; i < 4; i++)
            assert_int_equal(lcx_random_u32(&r), kat[k].out[i]);
    }
    /* stream (seed 0, stream 0) starts with the first KAT block, then block 1 */
    lcx_random r;
    lcx_random_init(&r, 0, 0);
    assert_int_equal(lcx_random_u32(&r), 0x6627e8d5);
    assert_int_equal(lcx_random_u32(&r), 0xe169c58d);
    assert_int_equal(lcx_random_u64(&r), ((uint64_t)0xbc57ac4c << 32) | 0x9b00dbd8);
    uint32_t ctr[4] = {1, 0, 0, 0}, key[2] = {0, 0}, out[4];
    lcx_philox4x32(ctr, key, 10, out);
    assert_int_equal(lcx_random_u32(&r), out[0]);
    /* different streams and seeds differ */
    lcx_random a, b;
    lcx_random_init(&a, 1, 0);
    lcx_random_init(&b, 1, 1);
    assert_true(lcx_random_u64(&a) != lcx_random_u64(&b));
}

static void test_bounded_uniform(void **state)
{
    (void)state;
    lcx_random r;
    lcx_random_init(&r, 12345, 1);
    const uint64_t ns[4] = {1, 7, 10, 1000003};
    for (int k = 0; k < 4; k++) {
        const int bins = ns[k] < 64 ? (int)ns[k] : 50;
        double obs[64] = {0};
        const int draws = 200000;
        for (int i = 0; i < draws; i++) {
            const uint64_t v = lcx_random_below(&r, ns[k]);
            if (v >= ns[k])
                lcx_fail_msg("below(%llu) returned %llu", (unsigned long long)ns[k], (unsigned long long)v);
            obs[(int)(v * (uint64_t)bins / ns[k])]++;
        }
        if (ns[k] > 1 && ns[k] < 64)
            expect_uniform(obs, bins, draws, "below small n");
    }
    /* n just above 2^63: half the 64-bit draws are rejected; check the range
     * and the balance of the four quarters */
    const uint64_t big = ((uint64_t)1 << 63) + 12345;
    double q[4] = {0};
    for (int i = 0; i < 40000; i++) {
        const uint64_t v = lcx_random_below(&r, big);
        assert_true(v < big);
        q[(int)(v / (big / 4 + 1))]++;
    }
    expect_uniform(q, 4, 40000, "below 2^63 + 12345");
    assert_int_equal(lcx_random_range(&r, 5, 5), 5);
    for (int i = 0; i < 1000; i++) {
        const int64_t v = lcx_random_range(&r, -3, 3);
        assert_true(v >= -3 && v <= 3);
    }
    assert_int_equal(lcx_random_below(&r, 0), 0);
}

/* methods.md §2.2 worked example: L_c 8, L_t 32, L 20, rt1 3, rt2 14, skip 17 */
static void test_pose_worked_example(void **state)
{
    (void)state;
    const int64_t lengths[2] = {3, 5}, skips[2] = {0, 17}, content[2] = {0, 14 - 8};
    int64_t idx[8], pos[8];
    assert_int_equal(lcx_pose_transform(lengths, skips, content, 2, 20, 32, idx, pos), LCX_OK);
    const int64_t want_pos[8] = {0, 1, 2, 20, 21, 22, 23, 24}, want_idx[8] = {0, 1, 2, 9, 10, 11, 12, 13};
    lcx_expect_bytes_equal(pos, want_pos, sizeof pos, "PoSE positions");
    lcx_expect_bytes_equal(idx, want_idx, sizeof idx, "PoSE token indices");
}

static void test_pose_samplers(void **state)
{
    (void)state;
    lcx_random r;
    lcx_random_init(&r, 2024, 3);
    const int64_t L = 20, Lc = 8, Lt = 32;
    double skip_hist[25] = {0}, rt1_hist[4] = {0}, start_hist[13] = {0};
    const int trials = 50000;
    for (int t = 0; t < trials; t++) {
        int64_t idx[8], pos[8], n = 0;
        assert_int_equal(lcx_pose_sample(&r, L, Lc, Lt, idx, pos, &n), LCX_OK);
        assert_int_equal(n, 8);
        int64_t rt1 = 8;
        for (int j = 1; j < 8; j++) {
            if (pos[j] <= pos[j - 1] || idx[j] <= idx[j - 1])
                lcx_fail_msg("PoSE positions/indices not increasing");
            if (rt1 == 8 && pos[j] != j)
                rt1 = j;
        }
        assert_true(pos[0] == 0 && pos[7] < Lt && idx[7] < L);
        const int64_t skip = pos[7] - 7;
        /* skip 0 hides the chunk boundary; count rt1 only when visible */
        skip_hist[skip]++;
        if (skip > 0) {
            assert_true(rt1 >= 1 && rt1 <= 4);
            rt1_hist[rt1 - 1]++;
            /* chunk-1 content start rt2 - (w - rt1) - rt1 = rt2 - w in 0..L-w */
            start_hist[idx[rt1] - rt1]++;
        }
    }
    expect_uniform(skip_hist, 25, trials, "PoSE skip ~ U{0..L_t - L_c}");
    double n_vis = 0;
    for (int i = 0; i < 4; i++)
        n_vis += rt1_hist[i];
    expect_uniform(rt1_hist, 4, n_vis, "PoSE rt1 ~ U{1..(L_c+1)/2}");
    expect_uniform(start_hist, 13, n_vis, "PoSE content offset ~ U{0..L - L_c}");
    /* a document shorter than the window: w = L, contiguous content */
    int64_t idx[8], pos[8], n;
    assert_int_equal(lcx_pose_sample(&r, 5, 8, 32, idx, pos, &n), LCX_OK);
    assert_int_equal(n, 5);
    for (int j = 0; j < 5; j++)
        assert_int_equal(idx[j], j);

    /* N chunks: cut point of N = 2 uniform over 1..w-1; invariants for N = 5 */
    double cut_hist[7] = {0};
    for (int t = 0; t < 30000; t++) {
        assert_int_equal(lcx_pose_sample_chunks(&r, L, Lc, Lt, 2, idx, pos, &n), LCX_OK);
        int cut = 0;
        for (int j = 1; j < 8 && !cut; j++)
            if (idx[j] != idx[j - 1] + 1 || pos[j] != pos[j - 1] + 1)
                cut = j;
        if (cut)
            cut_hist[cut - 1]++;
    }
    double nc = 0;
    for (int i = 0; i < 7; i++)
        nc += cut_hist[i];
    expect_uniform(cut_hist, 7, nc, "PoSE N=2 cut point");
    for (int t = 0; t < 2000; t++) {
        int64_t i2[64], p2[64];
        assert_int_equal(lcx_pose_sample_chunks(&r, 500, 64, 4096, 5, i2, p2, &n), LCX_OK);
        assert_int_equal(n, 64);
        for (int j = 1; j < 64; j++)
            if (p2[j] <= p2[j - 1] || i2[j] <= i2[j - 1])
                lcx_fail_msg("N-chunk PoSE not increasing");
        assert_true(p2[63] < 4096 && i2[63] < 500 && p2[0] == 0 && i2[0] == 0);
    }
}

/* methods.md §3.2 worked example and the stars-and-bars distribution */
static void test_longrecipe(void **state)
{
    (void)state;
    const int64_t toks[9] = {5, 13, 7, 8, 198, 9, 30, 4, 4}, delims[3] = {13, 198, 30};
    int64_t ends[9], nu = 0;
    assert_int_equal(lcx_split_units(toks, 9, delims, 3, ends, &nu), LCX_OK);
    const int64_t want_ends[4] = {2, 5, 7, 9};
    assert_int_equal(nu, 4);
    lcx_expect_bytes_equal(ends, want_ends, sizeof want_ends, "split_units");

    const int64_t units[3] = {1, 3, 2}, slots[3] = {0, 3, 6};
    int64_t pos[6];
    assert_int_equal(lcx_gap_template(units, 3, 4, slots, NULL, 0, pos), LCX_OK);
    const int64_t correct[6] = {0, 3, 4, 5, 8, 9}, quirk[6] = {2, 3, 4, 5, 8, 9};
    lcx_expect_bytes_equal(pos, correct, sizeof pos, "gap template");
    assert_int_equal(lcx_gap_template(units, 3, 4, slots, NULL, 1, pos), LCX_OK);
    lcx_expect_bytes_equal(pos, quirk, sizeof pos, "gap template, released quirk");
    /* the first chosen slot does not move unit 0 */
    const int64_t slots2[3] = {2, 3, 6};
    assert_int_equal(lcx_gap_template(units, 3, 4, slots2, NULL, 0, pos), LCX_OK);
    lcx_expect_bytes_equal(pos, correct, sizeof pos, "gap template, s_0 = 2");

    /* random slots: invariants, and for U = 2 the chosen pair is uniform over
     * C(M, 2), so P(s_1 = k) = k / C(M, 2), k = 1..M-1 */
    lcx_random r;
    lcx_random_init(&r, 77, 0);
    const int64_t u2[2] = {3, 4}, E = 9, M = E + 2;
    double obs[10] = {0}, exp_[10];
    const int trials = 40000;
    for (int t = 0; t < trials; t++) {
        int64_t p[7];
        assert_int_equal(lcx_gap_template(u2, 2, E, NULL, &r, 0, p), LCX_OK);
        for (int j = 0; j < 3; j++)
            assert_int_equal(p[j], j);
        for (int j = 4; j < 7; j++)
            assert_int_equal(p[j], p[j - 1] + 1);
        const int64_t gaps = p[3] - 3; /* = s_1 - 1 */
        assert_true(gaps >= 0 && gaps <= E && p[6] < 7 + E);
        obs[gaps]++;
    }
    for (int k = 1; k < M; k++)
        exp_[k - 1] = trials * (double)k / (M * (M - 1) / 2.0);
    const double c = chi2(obs, exp_, (int)(M - 1));
    if (c > chi2_crit((int)(M - 2)))
        lcx_fail_msg("gap template slot distribution: chi-square %.2f", c);
    /* many units: exactly `extra` gaps in total when the last slot is used, never more */
    int64_t ul[50], p[200];
    for (int i = 0; i < 50; i++)
        ul[i] = 1 + i % 4;
    for (int t = 0; t < 200; t++) {
        assert_int_equal(lcx_gap_template(ul, 50, 60, NULL, &r, 0, p), LCX_OK);
        int64_t T = 0;
        for (int i = 0; i < 50; i++)
            T += ul[i];
        for (int64_t j = 1; j < T; j++)
            assert_true(p[j] > p[j - 1]);
        assert_true(p[T - 1] <= T - 1 + 60);
    }
    /* prefix then template */
    int64_t out[6];
    assert_int_equal(lcx_prefix_then_template(2, correct, 6, out), LCX_OK);
    const int64_t want[6] = {0, 1, 4, 5, 8, 9};
    lcx_expect_bytes_equal(out, want, sizeof out, "prefix_then_template");
}

static void test_randpos_offset_packed(void **state)
{
    (void)state;
    lcx_random r;
    lcx_random_init(&r, 9, 9);
    double hist[20] = {0};
    const int trials = 20000;
    for (int t = 0; t < trials; t++) {
        int64_t p[5];
        assert_int_equal(lcx_randpos_sample(&r, 5, 20, p), LCX_OK);
        for (int j = 0; j < 5; j++) {
            assert_true(p[j] >= 0 && p[j] < 20);
            if (j)
                assert_true(p[j] > p[j - 1]);
            hist[p[j]]++;
        }
    }
    expect_uniform(hist, 20, trials * 5.0, "RandPos inclusion");
    int64_t all[20];
    assert_int_equal(lcx_randpos_sample(&r, 20, 20, all), LCX_OK);
    for (int j = 0; j < 20; j++)
        assert_int_equal(all[j], j);
    int64_t o[4];
    assert_int_equal(lcx_positions_offset(4, 100, o), LCX_OK);
    assert_true(o[0] == 100 && o[3] == 103);
    const int64_t cu[4] = {0, 3, 3, 7};
    int64_t pk[7];
    assert_int_equal(lcx_positions_packed(cu, 3, pk), LCX_OK);
    const int64_t want[7] = {0, 1, 2, 0, 1, 2, 3};
    lcx_expect_bytes_equal(pk, want, sizeof pk, "packed positions");
}

/* batches: row r equals the single-row sampler on stream (seed, stream + r),
 * whatever the thread count; rows leave their tail untouched */
static void test_batches(void **state)
{
    (void)state;
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 61);
    const int64_t rows = 37, W = 48, T = 4096;
    int64_t docs[37];
    for (int64_t r = 0; r < rows; r++) /* short and long documents, some shorter than the window */
        docs[r] = lcx_rng_range(&rng, 6, r % 3 ? 3000 : 60);
    const uint64_t seed = lcx_rng_u64(&rng), stream = UINT64_MAX - 5; /* wraps around mod 2^64 */
    const int32_t threads[3] = {1, 3, 0};
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(rows * W)), *pos = malloc(sizeof(int64_t) * (size_t)(rows * W));
    int64_t n_out[37], ri[48], rp[48], rn;
    assert_non_null(idx);
    assert_non_null(pos);
    for (int ti = 0; ti < 3; ti++) {
        lcx_context *ctx = lcx_test_context(threads[ti]);
        for (int32_t nch = 0; nch <= 6; nch += 3) { /* two-chunk, then 3 and 6 chunks */
            for (int64_t i = 0; i < rows * W; i++)
                idx[i] = pos[i] = -7;
            assert_int_equal(lcx_pose_sample_batch(ctx, seed, stream, rows, docs, W, T, nch, idx, pos, n_out),
                             LCX_OK);
            for (int64_t r = 0; r < rows; r++) {
                lcx_random g;
                lcx_random_init(&g, seed, stream + (uint64_t)r);
                if (nch == 0)
                    assert_int_equal(lcx_pose_sample(&g, docs[r], W, T, ri, rp, &rn), LCX_OK);
                else
                    assert_int_equal(lcx_pose_sample_chunks(&g, docs[r], W, T, nch, ri, rp, &rn), LCX_OK);
                assert_int_equal(n_out[r], rn);
                lcx_expect_bytes_equal(idx + r * W, ri, sizeof(int64_t) * (size_t)rn, "batch PoSE indices");
                lcx_expect_bytes_equal(pos + r * W, rp, sizeof(int64_t) * (size_t)rn, "batch PoSE positions");
                for (int64_t j = rn; j < W; j++)
                    if (idx[r * W + j] != -7 || pos[r * W + j] != -7)
                        lcx_fail_msg("batch PoSE wrote past row %lld's window", (long long)r);
            }
            /* either output alone, n_out optional */
            int64_t *only = malloc(sizeof(int64_t) * (size_t)(rows * W));
            assert_non_null(only);
            assert_int_equal(lcx_pose_sample_batch(ctx, seed, stream, rows, docs, W, T, nch, NULL, only, NULL),
                             LCX_OK);
            for (int64_t r = 0; r < rows; r++)
                lcx_expect_bytes_equal(only + r * W, pos + r * W, sizeof(int64_t) * (size_t)n_out[r],
                                       "batch PoSE positions alone");
            free(only);
        }
        /* RandPos */
        const int64_t n = 40, TL = 700;
        int64_t *rpos = malloc(sizeof(int64_t) * (size_t)(rows * n)), one[40];
        assert_non_null(rpos);
        assert_int_equal(lcx_randpos_sample_batch(ctx, seed, stream, rows, n, TL, rpos), LCX_OK);
        for (int64_t r = 0; r < rows; r++) {
            lcx_random g;
            lcx_random_init(&g, seed, stream + (uint64_t)r);
            assert_int_equal(lcx_randpos_sample(&g, n, TL, one), LCX_OK);
            lcx_expect_bytes_equal(rpos + r * n, one, sizeof one, "batch RandPos");
        }
        /* different rows really differ (streams are distinct) */
        assert_true(memcmp(rpos, rpos + n, sizeof one) != 0);
        free(rpos);
        lcx_context_destroy(ctx);
    }
    free(idx);
    free(pos);
}

static void test_bad_input(void **state)
{
    (void)state;
    int64_t out[16], snap[16];
    for (int i = 0; i < 16; i++)
        out[i] = snap[i] = 0x5a5a;
    lcx_random r;
    lcx_random_init(&r, 1, 1);
    int64_t n = 77;
    const int64_t len2[2] = {3, 5}, sk_bad[2] = {5, 2}, sk_ok[2] = {0, 30}, ct[2] = {0, 0};
#define BAD(call, msg)                                                                         \
    do {                                                                                       \
        const lcx_status st_ = (call);                                                         \
        if (st_ != LCX_E_INVALID || !strstr(lcx_last_error(), msg))                            \
            lcx_fail_msg("%s: got %s '%s', want a message with '%s'", #call, lcx_status_string(st_), \
                         lcx_last_error(), msg);                                               \
    } while (0)
    BAD(lcx_pose_transform(NULL, sk_ok, NULL, 2, 20, 32, out, out), "lengths");
    BAD(lcx_pose_transform(len2, sk_bad, NULL, 2, 20, 32, out, out), "non-decreasing");
    BAD(lcx_pose_transform(len2, sk_ok, NULL, 2, 20, 32, out, out), "target_len");
    BAD(lcx_pose_transform(len2, (int64_t[]){0, 0}, (int64_t[]){0, 13}, 2, 20, 32, out, out), "doc_len");
    BAD(lcx_pose_transform(len2, sk_ok, ct, 0, 20, 32, out, out), "n_chunks");
    BAD(lcx_pose_sample(NULL, 20, 8, 32, out, out, &n), "rng");
    BAD(lcx_pose_sample(&r, 20, 8, 4, out, out, &n), "target_len");
    BAD(lcx_pose_sample(&r, 0, 8, 32, out, out, &n), "doc_len");
    BAD(lcx_pose_sample_chunks(&r, 20, 8, 32, 9, out, out, &n), "n_chunks");
    BAD(lcx_split_units(NULL, 3, NULL, 0, out, &n), "tokens");
    BAD(lcx_gap_template((int64_t[]){1, 0}, 2, 3, NULL, &r, 0, out), "unit_lengths[1]");
    BAD(lcx_gap_template((int64_t[]){1, 2}, 2, 3, (int64_t[]){0, 9}, NULL, 0, out), "slots[1]");
    BAD(lcx_gap_template((int64_t[]){1, 2}, 2, -1, NULL, &r, 0, out), "extra");
    BAD(lcx_gap_template((int64_t[]){1, 2}, 2, 3, NULL, NULL, 0, out), "rng");
    BAD(lcx_prefix_then_template(0, out, 4, out), "rt1");
    BAD(lcx_prefix_then_template(2, (int64_t[]){0, 1, 1, 3}, 4, out), "repeat");
    BAD(lcx_randpos_sample(&r, 21, 20, out), "target_len");
    BAD(lcx_positions_offset(-1, 0, out), "out of range");
    BAD(lcx_positions_packed((int64_t[]){1, 3}, 1, out), "cu_seqlens[0]");
    BAD(lcx_positions_packed((int64_t[]){0, 3, 2}, 2, out), "decreases");
    lcx_context *ctx = lcx_test_context(2);
    const int64_t docs[2] = {20, 0}, docs_ok[2] = {20, 3};
    BAD(lcx_pose_sample_batch(NULL, 1, 1, 2, docs_ok, 8, 32, 0, out, NULL, NULL), "ctx");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, -1, docs_ok, 8, 32, 0, out, NULL, NULL), "rows");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, NULL, 8, 32, 0, out, NULL, NULL), "doc_lens");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs, 8, 32, 0, out, NULL, NULL), "doc_lens[1]");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs_ok, 8, 32, 0, NULL, NULL, NULL), "both NULL");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs_ok, 0, 32, 0, out, NULL, NULL), "window_len");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs_ok, 8, 7, 0, out, NULL, NULL), "target_len");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs_ok, 8, 32, 4, out, NULL, NULL), "n_chunks"); /* row 1: w 3 */
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs_ok, 8, 32, -1, out, NULL, NULL), "n_chunks");
    BAD(lcx_pose_sample_batch(ctx, 1, 1, 2, docs_ok, 8, 32, 0, out, out + 4, NULL), "overlap");
    BAD(lcx_randpos_sample_batch(ctx, 1, 1, 2, 9, 8, out), "target_len");
    BAD(lcx_randpos_sample_batch(ctx, 1, 1, -2, 3, 8, out), "rows");
    BAD(lcx_randpos_sample_batch(ctx, 1, 1, 2, 3, 8, NULL), "pos_out");
    lcx_context_destroy(ctx);
#undef BAD
    lcx_expect_bytes_equal(out, snap, sizeof out, "outputs after refused calls");
    assert_int_equal(n, 77);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_bounded_uniform),
        cmocka_unit_test(test_pose_worked_example),
        cmocka_unit_test(test_pose_samplers),
        cmocka_unit_test(test_longrecipe),
        cmocka_unit_test(test_randpos_offset_packed),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_bad_input),
    };
    return lcx_test_run("positions", argc, argv, tests, sizeof tests / sizeof *tests);
}
