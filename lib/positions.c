/* Counter-based random numbers (Philox4x32-10) and position transforms. */
#include <inttypes.h>
#include <string.h>

#include "internal/lcx_internal.h"
#include "longctx/positions.h"
#include "../kernels/common/philox.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

/* ---- Philox4x32-10 ---- */

/* One Philox4x32 block with R rounds (exposed to the tests through the
 * internal header for the published known-answer vectors). */
void lcx_philox4x32(const uint32_t ctr_in[4], const uint32_t key_in[2], int rounds, uint32_t out[4])
{
    lcx_philox4x32_block(ctr_in, key_in, rounds, out);
}

void lcx_random_init(lcx_random *r, uint64_t seed, uint64_t stream)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->seed = seed;
    r->stream = stream;
    r->block = 0;
    r->used = 4;
}

uint32_t lcx_random_u32(lcx_random *r)
{
    if (r->used >= 4) {
        const uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), (uint32_t)r->stream,
                                 (uint32_t)(r->stream >> 32)};
        const uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
        lcx_philox4x32(ctr, key, 10, r->buf);
        r->block++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t lcx_random_u64(lcx_random *r)
{
    const uint64_t hi = lcx_random_u32(r);
    return (hi << 32) | lcx_random_u32(r);
}

uint64_t lcx_random_below(lcx_random *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Lemire: x * n / 2^64 is uniform once the low half of the product is at
     * least (2^64 - n) mod n; reject below that threshold */
    unsigned __int128 m = (unsigned __int128)lcx_random_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        const uint64_t t = (0 - n) % n;
        while (lo < t) {
            m = (unsigned __int128)lcx_random_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

int64_t lcx_random_range(lcx_random *r, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    const uint64_t span = (uint64_t)hi - (uint64_t)lo + 1; /* 0 means the whole 2^64 range */
    return (int64_t)((uint64_t)lo + (span ? lcx_random_below(r, span) : lcx_random_u64(r)));
}

/* ---- PoSE ---- */

#define NUL(p, name)                                                       \
    do {                                                                   \
        if (!(p))                                                          \
            return lcx_fail(LCX_E_INVALID, "%s: " name " is NULL", op);    \
    } while (0)

lcx_status lcx_pose_transform(const int64_t *lengths, const int64_t *skips, const int64_t *content,
                              int32_t n_chunks, int64_t doc_len, int64_t target_len, int64_t *index_out,
                              int64_t *pos_out)
{
    const char *op = "pose_transform";
    NUL(lengths, "lengths");
    NUL(skips, "skips");
    if (n_chunks < 1)
        return lcx_fail(LCX_E_INVALID, "%s: n_chunks %" PRId32 " must be >= 1", op, n_chunks);
    if (doc_len < 0 || target_len < 1)
        return lcx_fail(LCX_E_INVALID, "%s: doc_len %" PRId64 " / target_len %" PRId64 " out of range", op,
                        doc_len, target_len);
    int64_t st = 0;
    for (int32_t i = 0; i < n_chunks; i++) {
        const int64_t v = content ? content[i] : 0;
        if (lengths[i] < 0)
            return lcx_fail(LCX_E_INVALID, "%s: lengths[%" PRId32 "] = %" PRId64 " is negative", op, i, lengths[i]);
        if (skips[i] < 0 || (i && skips[i] < skips[i - 1]))
            return lcx_fail(LCX_E_INVALID, "%s: skips[%" PRId32 "] = %" PRId64 " must be >= 0 and non-decreasing",
                            op, i, skips[i]);
        if (v < 0 || (i && content && v < content[i - 1]))
            return lcx_fail(LCX_E_INVALID, "%s: content[%" PRId32 "] = %" PRId64 " must be >= 0 and non-decreasing",
                            op, i, v);
        int64_t end;
        if (!lcx_add_i64(st, lengths[i], &end))
            return lcx_fail(LCX_E_OVERFLOW, "%s: total length overflows", op);
        if (lengths[i] > 0) {
            if (v > doc_len - end)
                return lcx_fail(LCX_E_INVALID,
                                "%s: chunk %" PRId32 " reads tokens up to %" PRId64 " past doc_len %" PRId64, op, i,
                                v + end - 1, doc_len);
            if (skips[i] > target_len - end)
                return lcx_fail(LCX_E_INVALID,
                                "%s: chunk %" PRId32 " ends at position %" PRId64 ", not below target_len %" PRId64,
                                op, i, skips[i] + end - 1, target_len);
        }
        st = end;
    }
    st = 0;
    for (int32_t i = 0; i < n_chunks; i++) {
        const int64_t v = content ? content[i] : 0;
        for (int64_t j = 0; j < lengths[i]; j++) {
            if (index_out)
                index_out[st + j] = v + st + j;
            if (pos_out)
                pos_out[st + j] = skips[i] + st + j;
        }
        st += lengths[i];
    }
    return LCX_OK;
}

static lcx_status lcx_pose_check(const char *op, const lcx_random *rng, int64_t doc_len, int64_t window_len,
                                 int64_t target_len, const int64_t *n_out)
{
    NUL(rng, "rng");
    NUL(n_out, "n_out");
    if (doc_len < 1)
        return lcx_fail(LCX_E_INVALID, "%s: doc_len %" PRId64 " must be >= 1", op, doc_len);
    if (window_len < 1)
        return lcx_fail(LCX_E_INVALID, "%s: window_len %" PRId64 " must be >= 1", op, window_len);
    const int64_t w = doc_len < window_len ? doc_len : window_len;
    if (target_len < w)
        return lcx_fail(LCX_E_INVALID, "%s: target_len %" PRId64 " is below the window %" PRId64, op, target_len, w);
    return LCX_OK;
}

lcx_status lcx_pose_sample(lcx_random *rng, int64_t doc_len, int64_t window_len, int64_t target_len,
                           int64_t *index_out, int64_t *pos_out, int64_t *n_out)
{
    lcx_status st = lcx_pose_check("pose_sample", rng, doc_len, window_len, target_len, n_out);
    if (st != LCX_OK)
        return st;
    const int64_t w = doc_len < window_len ? doc_len : window_len;
    const int64_t rt1 = lcx_random_range(rng, 1, (w + 1) / 2);
    const int64_t rt2 = lcx_random_range(rng, w, doc_len);
    const int64_t skip = lcx_random_range(rng, 0, target_len - w);
    const int64_t lengths[2] = {rt1, w - rt1}, skips[2] = {0, skip}, content[2] = {0, rt2 - w};
    st = lcx_pose_transform(lengths, skips, content, 2, doc_len, target_len, index_out, pos_out);
    if (st == LCX_OK)
        *n_out = w;
    return st;
}

lcx_status lcx_pose_sample_chunks(lcx_random *rng, int64_t doc_len, int64_t window_len, int64_t target_len,
                                  int32_t n_chunks, int64_t *index_out, int64_t *pos_out, int64_t *n_out)
{
    const char *op = "pose_sample_chunks";
    lcx_status st = lcx_pose_check(op, rng, doc_len, window_len, target_len, n_out);
    if (st != LCX_OK)
        return st;
    const int64_t w = doc_len < window_len ? doc_len : window_len;
    if (n_chunks < 1 || n_chunks > w || n_chunks > 1024)
        return lcx_fail(LCX_E_INVALID, "%s: n_chunks %" PRId32 " must be in 1..min(window, 1024)", op, n_chunks);
    int64_t cuts[1024], lengths[1024], skips[1024], content[1024]; /* 32 KiB of stack */
    /* n_chunks - 1 distinct cut points in 1..w-1 by selection sampling */
    int64_t need = n_chunks - 1, left = w - 1, nc = 0;
    for (int64_t c = 1; c < w && need > 0; c++, left--) {
        if ((int64_t)lcx_random_below(rng, (uint64_t)left) < need) {
            cuts[nc++] = c;
            need--;
        }
    }
    int64_t prev = 0;
    for (int32_t i = 0; i < n_chunks; i++) {
        const int64_t end = i < n_chunks - 1 ? cuts[i] : w;
        lengths[i] = end - prev;
        prev = end;
        skips[i] = i ? lcx_random_range(rng, skips[i - 1], target_len - w) : 0;
        content[i] = i ? lcx_random_range(rng, content[i - 1], doc_len - w) : 0;
    }
    st = lcx_pose_transform(lengths, skips, content, n_chunks, doc_len, target_len, index_out, pos_out);
    if (st == LCX_OK)
        *n_out = w;
    return st;
}

/* ---- LongRecipe ---- */

lcx_status lcx_split_units(const int64_t *tokens, int64_t n, const int64_t *delims, int32_t n_delims,
                           int64_t *unit_ends, int64_t *n_units)
{
    const char *op = "split_units";
    NUL(unit_ends, "unit_ends");
    NUL(n_units, "n_units");
    if (n < 0)
        return lcx_fail(LCX_E_INVALID, "%s: n %" PRId64 " is negative", op, n);
    if (n > 0)
        NUL(tokens, "tokens");
    if (n_delims < 0 || (n_delims > 0 && !delims))
        return lcx_fail(LCX_E_INVALID, "%s: delims is NULL or n_delims %" PRId32 " negative", op, n_delims);
    int64_t u = 0;
    for (int64_t t = 0; t < n; t++) {
        int is_end = t == n - 1;
        for (int32_t k = 0; k < n_delims && !is_end; k++)
            is_end = tokens[t] == delims[k];
        if (is_end)
            unit_ends[u++] = t + 1;
    }
    *n_units = u;
    return LCX_OK;
}

lcx_status lcx_gap_template(const int64_t *unit_lengths, int64_t n_units, int64_t extra, const int64_t *slots,
                            lcx_random *rng, int32_t released_quirk, int64_t *pos_out)
{
    const char *op = "gap_template";
    NUL(unit_lengths, "unit_lengths");
    NUL(pos_out, "pos_out");
    if (n_units < 1)
        return lcx_fail(LCX_E_INVALID, "%s: n_units %" PRId64 " must be >= 1", op, n_units);
    if (extra < 0)
        return lcx_fail(LCX_E_INVALID, "%s: extra %" PRId64 " is negative", op, extra);
    if (!slots && !rng)
        return lcx_fail(LCX_E_INVALID, "%s: give slots or rng", op);
    if (released_quirk != 0 && released_quirk != 1)
        return lcx_fail(LCX_E_INVALID, "%s: released_quirk %" PRId32 " must be 0 or 1", op, released_quirk);
    int64_t total = 0;
    for (int64_t u = 0; u < n_units; u++) {
        if (unit_lengths[u] < 1)
            return lcx_fail(LCX_E_INVALID, "%s: unit_lengths[%" PRId64 "] = %" PRId64 " must be >= 1", op, u,
                            unit_lengths[u]);
        if (!lcx_add_i64(total, unit_lengths[u], &total))
            return lcx_fail(LCX_E_OVERFLOW, "%s: total length overflows", op);
    }
    int64_t m, last;
    if (!lcx_add_i64(extra, n_units, &m) || !lcx_add_i64(total, extra, &last))
        return lcx_fail(LCX_E_OVERFLOW, "%s: positions overflow", op);
    if (slots) {
        for (int64_t u = 0; u < n_units; u++)
            if (slots[u] < 0 || slots[u] >= m || (u && slots[u] <= slots[u - 1]))
                return lcx_fail(LCX_E_INVALID,
                                "%s: slots[%" PRId64 "] = %" PRId64 " must be increasing and in [0, %" PRId64 ")",
                                op, u, slots[u], m);
    }
    /* Walk the slots in order, counting gap (non-chosen) slots. Unit u >= 1
     * sits in the (u+1)-th chosen slot s_u with s_u - u gaps before it; unit
     * 0 sits in slot 0, whatever s_0 is (either way u slots before s_u hold
     * units). */
    int64_t t = 0, gaps = 0, u = 0, need = n_units;
    if (slots) { /* s_u - u gap slots precede unit u >= 1 */
        for (u = 0; u < n_units; u++)
            for (int64_t jj = 0; jj < unit_lengths[u]; jj++, t++)
                pos_out[t] = t + (u ? slots[u] - u : 0);
        u = n_units;
    }
    for (int64_t s = 0; s < m && u < n_units; s++) {
        const int chosen = (int64_t)lcx_random_below(rng, (uint64_t)(m - s)) < need;
        if (!chosen) {
            gaps++;
            continue;
        }
        need--;
        for (int64_t j = 0; j < unit_lengths[u]; j++, t++)
            pos_out[t] = t + (u ? gaps : 0);
        u++;
    }
    if (released_quirk && unit_lengths[0] == 1 && total > 1)
        pos_out[0] = pos_out[1] - 1;
    return LCX_OK;
}

lcx_status lcx_prefix_then_template(int64_t rt1, const int64_t *template_pos, int64_t n, int64_t *pos_out)
{
    const char *op = "prefix_then_template";
    NUL(template_pos, "template_pos");
    NUL(pos_out, "pos_out");
    if (n < 1 || rt1 < 1 || rt1 > n)
        return lcx_fail(LCX_E_INVALID, "%s: need 1 <= rt1 (%" PRId64 ") <= n (%" PRId64 ")", op, rt1, n);
    if (rt1 < n && template_pos[rt1] < rt1)
        return lcx_fail(LCX_E_INVALID, "%s: template_pos[%" PRId64 "] = %" PRId64 " < rt1: positions would repeat",
                        op, rt1, template_pos[rt1]);
    for (int64_t i = 0; i < n; i++)
        pos_out[i] = i < rt1 ? i : template_pos[i];
    return LCX_OK;
}

/* ---- RandPos, offsets, packing ---- */

lcx_status lcx_randpos_sample(lcx_random *rng, int64_t n, int64_t target_len, int64_t *pos_out)
{
    const char *op = "randpos_sample";
    NUL(rng, "rng");
    NUL(pos_out, "pos_out");
    if (n < 0 || target_len < n)
        return lcx_fail(LCX_E_INVALID, "%s: need 0 <= n (%" PRId64 ") <= target_len (%" PRId64 ")", op, n,
                        target_len);
    /* Knuth's selection sampling: position p is taken with probability
     * (still needed) / (still available) */
    int64_t need = n, k = 0;
    for (int64_t p = 0; p < target_len && need > 0; p++) {
        if ((int64_t)lcx_random_below(rng, (uint64_t)(target_len - p)) < need) {
            pos_out[k++] = p;
            need--;
        }
    }
    return LCX_OK;
}

lcx_status lcx_positions_offset(int64_t n, int64_t offset, int64_t *pos_out)
{
    const char *op = "positions_offset";
    NUL(pos_out, "pos_out");
    if (n < 0 || offset < 0 || offset > INT64_MAX - n)
        return lcx_fail(LCX_E_INVALID, "%s: n %" PRId64 " / offset %" PRId64 " out of range", op, n, offset);
    for (int64_t i = 0; i < n; i++)
        pos_out[i] = offset + i;
    return LCX_OK;
}

lcx_status lcx_positions_packed(const int64_t *cu_seqlens, int32_t n_docs, int64_t *pos_out)
{
    const char *op = "positions_packed";
    NUL(cu_seqlens, "cu_seqlens");
    NUL(pos_out, "pos_out");
    if (n_docs < 0)
        return lcx_fail(LCX_E_INVALID, "%s: n_docs %" PRId32 " is negative", op, n_docs);
    if (cu_seqlens[0] != 0)
        return lcx_fail(LCX_E_INVALID, "%s: cu_seqlens[0] = %" PRId64 " must be 0", op, cu_seqlens[0]);
    for (int32_t d = 0; d < n_docs; d++)
        if (cu_seqlens[d + 1] < cu_seqlens[d])
            return lcx_fail(LCX_E_INVALID, "%s: cu_seqlens[%" PRId32 "] = %" PRId64 " decreases", op, d + 1,
                            cu_seqlens[d + 1]);
    for (int32_t d = 0; d < n_docs; d++)
        for (int64_t i = cu_seqlens[d]; i < cu_seqlens[d + 1]; i++)
            pos_out[i] = i - cu_seqlens[d];
    return LCX_OK;
}

/* ---- batches on a context ---- */

typedef struct lcx_pose_batch {
    uint64_t seed, stream;
    const int64_t *doc_lens;
    int64_t window_len, target_len;
    int32_t n_chunks;
    int64_t *index_out, *pos_out, *n_out;
    int64_t rows;
} lcx_pose_batch;

/* rows of task i: i * LCX_POS_ROWS_PER_TASK ... */
#define LCX_POS_ROWS_PER_TASK 16

static void lcx_pose_batch_task(void *arg, int64_t i)
{
    const lcx_pose_batch *b = arg;
    const int64_t r1 = (i + 1) * LCX_POS_ROWS_PER_TASK < b->rows ? (i + 1) * LCX_POS_ROWS_PER_TASK : b->rows;
    for (int64_t r = i * LCX_POS_ROWS_PER_TASK; r < r1; r++) {
        lcx_random rng;
        lcx_random_init(&rng, b->seed, b->stream + (uint64_t)r);
        int64_t *idx = b->index_out ? b->index_out + r * b->window_len : NULL;
        int64_t *pos = b->pos_out ? b->pos_out + r * b->window_len : NULL;
        int64_t n = 0;
        /* arguments checked for every row already: cannot fail */
        if (b->n_chunks == 0)
            (void)lcx_pose_sample(&rng, b->doc_lens[r], b->window_len, b->target_len, idx, pos, &n);
        else
            (void)lcx_pose_sample_chunks(&rng, b->doc_lens[r], b->window_len, b->target_len, b->n_chunks, idx, pos,
                                         &n);
        if (b->n_out)
            b->n_out[r] = n;
    }
}

/* byte ranges [a, a + an) and [b, b + bn) intersect (NULL: empty) */
static int lcx_spans_meet(const void *a, size_t an, const void *b, size_t bn)
{
    if (!a || !b || !an || !bn)
        return 0;
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bn && y < x + an;
}

lcx_status lcx_pose_sample_batch(lcx_context *ctx, uint64_t seed, uint64_t stream, int64_t rows,
                                 const int64_t *doc_lens, int64_t window_len, int64_t target_len, int32_t n_chunks,
                                 int64_t *index_out, int64_t *pos_out, int64_t *n_out)
{
    const char *op = "pose_sample_batch";
    lcx_status st = lcx_check_ctx(ctx, op);
    if (st != LCX_OK)
        return st;
    if (rows < 0)
        return lcx_fail(LCX_E_INVALID, "%s: rows %" PRId64 " is negative", op, rows);
    if (rows == 0)
        return LCX_OK;
    NUL(doc_lens, "doc_lens");
    if (!index_out && !pos_out)
        return lcx_fail(LCX_E_INVALID, "%s: index_out and pos_out are both NULL", op);
    if (window_len < 1)
        return lcx_fail(LCX_E_INVALID, "%s: window_len %" PRId64 " must be >= 1", op, window_len);
    if (n_chunks < 0)
        return lcx_fail(LCX_E_INVALID, "%s: n_chunks %" PRId32 " must be 0 (two-chunk sampler) or >= 1", op,
                        n_chunks);
    int64_t cells;
    if (!lcx_mul_i64(rows, window_len, &cells) || cells > (int64_t)(SIZE_MAX / 8 / 2))
        return lcx_fail(LCX_E_OVERFLOW, "%s: rows x window_len overflows", op);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t d = doc_lens[r], w = d < window_len ? d : window_len;
        if (d < 1)
            return lcx_fail(LCX_E_INVALID, "%s: doc_lens[%" PRId64 "] = %" PRId64 " must be >= 1", op, r, d);
        if (target_len < w)
            return lcx_fail(LCX_E_INVALID, "%s: target_len %" PRId64 " is below row %" PRId64 "'s window %" PRId64,
                            op, target_len, r, w);
        if (n_chunks > w || n_chunks > 1024)
            return lcx_fail(LCX_E_INVALID, "%s: n_chunks %" PRId32 " must be in 1..min(window, 1024) (row %" PRId64
                            ": window %" PRId64 ")", op, n_chunks, r, w);
    }
    const size_t ob = (size_t)cells * sizeof(int64_t), nb = (size_t)rows * sizeof(int64_t);
    if (lcx_spans_meet(index_out, ob, pos_out, ob) || lcx_spans_meet(index_out, ob, n_out, nb) ||
        lcx_spans_meet(pos_out, ob, n_out, nb))
        return lcx_fail(LCX_E_INVALID, "%s: index_out, pos_out and n_out overlap", op);
    if ((st = lcx_check_ptr_aligned(op, "index_out", index_out, sizeof *index_out)) != LCX_OK ||
        (st = lcx_check_ptr_aligned(op, "pos_out", pos_out, sizeof *pos_out)) != LCX_OK ||
        (st = lcx_check_ptr_aligned(op, "n_out", n_out, sizeof *n_out)) != LCX_OK)
        return st;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_pose_batch(ctx->cuda, op, seed, stream, rows, doc_lens, window_len, target_len, n_chunks,
                                   index_out, pos_out, n_out);
#endif
    lcx_pose_batch b = {seed, stream, doc_lens, window_len, target_len, n_chunks, index_out, pos_out, n_out, rows};
    return lcx_parallel(ctx, (rows + LCX_POS_ROWS_PER_TASK - 1) / LCX_POS_ROWS_PER_TASK, lcx_pose_batch_task, &b);
}

typedef struct lcx_randpos_batch {
    uint64_t seed, stream;
    int64_t rows, n, target_len;
    int64_t *pos_out;
} lcx_randpos_batch;

static void lcx_randpos_batch_task(void *arg, int64_t i)
{
    const lcx_randpos_batch *b = arg;
    lcx_random rng;
    lcx_random_init(&rng, b->seed, b->stream + (uint64_t)i);
    (void)lcx_randpos_sample(&rng, b->n, b->target_len, b->pos_out + i * b->n);
}

lcx_status lcx_randpos_sample_batch(lcx_context *ctx, uint64_t seed, uint64_t stream, int64_t rows, int64_t n,
                                    int64_t target_len, int64_t *pos_out)
{
    const char *op = "randpos_sample_batch";
    lcx_status st = lcx_check_ctx(ctx, op);
    if (st != LCX_OK)
        return st;
    if (rows < 0)
        return lcx_fail(LCX_E_INVALID, "%s: rows %" PRId64 " is negative", op, rows);
    if (n < 0 || target_len < n)
        return lcx_fail(LCX_E_INVALID, "%s: need 0 <= n (%" PRId64 ") <= target_len (%" PRId64 ")", op, n,
                        target_len);
    int64_t cells;
    if (!lcx_mul_i64(rows, n, &cells) || cells > (int64_t)(SIZE_MAX / 8 / 2))
        return lcx_fail(LCX_E_OVERFLOW, "%s: rows x n overflows", op);
    if (cells == 0)
        return LCX_OK;
    NUL(pos_out, "pos_out");
    if ((st = lcx_check_ptr_aligned(op, "pos_out", pos_out, sizeof *pos_out)) != LCX_OK)
        return st;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_randpos_batch(ctx->cuda, op, seed, stream, rows, n, target_len, pos_out);
#endif
    lcx_randpos_batch b = {seed, stream, rows, n, target_len, pos_out};
    return lcx_parallel(ctx, rows, lcx_randpos_batch_task, &b);
}
