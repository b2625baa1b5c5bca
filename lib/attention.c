/* Blocked attention with an online softmax (FlashAttention-style) on the
 * CPU, and the LSE merge of partial results.
 *
 * Work item: (sequence, kv head, block of query positions). The G = heads /
 * kv_heads query heads of a kv head are stacked into one tile of G * BQ rows
 * so every converted K/V tile serves all of them (no repeated KV heads are
 * materialised). Keys stream in tiles of 64; each tile: S = Q K^T (f32),
 * softcap, masks, row max, P = exp(S - max), rescale the running output, O +=
 * P V. Nothing is proportional to seq_q x seq_k; every buffer is a tile in
 * the context's scratch. Decode shapes (few queries, long keys) also split
 * the keys into fixed chunks of LCX_ATTN_CHUNK keys, computed in parallel
 * and merged by their LSE in chunk order, so the result does not depend on
 * the thread count either way.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal/lcx_internal.h"
#include "internal/lcx_fpenv.h"
#include "longctx/attention.h"
#include "../kernels/common/fp_bits.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

#define LCX_ATTN_BK 64          /* keys per tile */
#define LCX_ATTN_ROWS 128       /* target rows (G * BQ) per tile */
#define LCX_ATTN_MAX_D 512      /* head_dim cap */
#define LCX_ATTN_CHUNK 512      /* keys per split-KV chunk (decode) */
#define LCX_ATTN_SPLIT_MAX_Q 16 /* split the keys when seq_q <= this */
#define LCX_ATTN_DIRECT_ROWS 8  /* tiles of at most this many rows read K/V in place */

void lcx_attention_params_default(lcx_attention_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->window_left = -1;
}

typedef struct lcx_attn_job {
    const lcx_ktable *kt;
    const lcx_tensor *q, *k, *v, *out;
    float *lse;
    int64_t B, Sq, Sk, H, Hkv, G, D, Dv, Dp, Dvp;
    float scale, softcap;
    int causal;
    int64_t window;             /* < 0: none */
    const int64_t *cu_q, *cu_k; /* varlen offsets, or NULL */
    int64_t n_seqs;
    int64_t bq, rows;           /* query positions per item, hg * G * bq */
    int64_t hg;                 /* kv heads per item: 1, or all of them for decode */
    /* S2-Attn (LongLoRA shifted groups): 0 = off, else 1 + lcx_s2_mode */
    int s2;
    int64_t g, h0;              /* group size, first shifted query head */
    int64_t fwd, back;          /* ROLL: roll amounts of the shifted heads (LongLoRA's sign convention) */
    int64_t *item_start;        /* per sequence: first item index (n_seqs + 1) */
    int64_t n_items;
    int64_t n_chunks;           /* split-KV chunks per (seq, kv head); 1 = no split */
    int64_t workers;
    float *scratch;
    size_t slot;                /* floats per worker */
    float *partial;             /* split: per item rows * (Dvp + 2) floats */
} lcx_attn_job;

/* element offset of (b, s, h, 0) */
static inline int64_t lcx_at(const lcx_tensor *t, int64_t b, int64_t s, int64_t h)
{
    return b * t->stride[0] + s * t->stride[1] + h * t->stride[2];
}

static void lcx_load_row(const lcx_ktable *kt, const lcx_tensor *t, int64_t off, int64_t n, float *dst)
{
    const char *p = (const char *)t->data + (size_t)off * lcx_dtype_size(t->dtype);
    if (t->dtype == LCX_F32)
        memcpy(dst, p, (size_t)n * sizeof(float));
    else if (t->dtype == LCX_BF16)
        kt->convert_bf16_f32((const uint16_t *)p, dst, (size_t)n);
    else
        kt->convert_f16_f32((const uint16_t *)p, dst, (size_t)n);
}

static void lcx_store_row(const lcx_ktable *kt, const lcx_tensor *t, int64_t off, int64_t n, const float *src)
{
    char *p = (char *)t->data + (size_t)off * lcx_dtype_size(t->dtype);
    if (t->dtype == LCX_F32)
        memcpy(p, src, (size_t)n * sizeof(float));
    else if (t->dtype == LCX_BF16)
        kt->convert_f32_bf16(src, (uint16_t *)p, (size_t)n);
    else
        kt->convert_f32_f16(src, (uint16_t *)p, (size_t)n);
}

/* sequence geometry: batch index, first q/k rows and lengths */
static void lcx_seq(const lcx_attn_job *j, int64_t s, int64_t *b, int64_t *q0, int64_t *lq, int64_t *k0, int64_t *lk)
{
    if (j->cu_q) {
        *b = 0;
        *q0 = j->cu_q[s];
        *lq = j->cu_q[s + 1] - j->cu_q[s];
        *k0 = j->cu_k[s];
        *lk = j->cu_k[s + 1] - j->cu_k[s];
    } else {
        *b = s;
        *q0 = 0;
        *lq = j->Sq;
        *k0 = 0;
        *lk = j->Sk;
    }
}

/* visible keys [lo, hi] (inclusive, may be empty: hi < lo) of query i of a
 * sequence with lq queries and lk keys */
static inline void lcx_visible(const lcx_attn_job *j, int64_t i, int64_t lq, int64_t lk, int64_t *lo, int64_t *hi)
{
    if (!j->causal) {
        *lo = 0;
        *hi = lk - 1;
        return;
    }
    const int64_t p = lk - lq + i;
    *hi = p < lk - 1 ? p : lk - 1;
    *lo = j->window >= 0 ? (p - j->window > 0 ? p - j->window : 0) : 0;
}

static inline int64_t lcx_mod(int64_t a, int64_t n)
{
    const int64_t r = a % n;
    return r < 0 ? r + n : r;
}

/* Visible keys of output row i of query head h: up to two inclusive
 * intervals (lo[k] <= hi[k]; an empty set has hi[0] < lo[0]); returns the
 * count. Plain attention: lcx_visible. S2-Attn (seq_q = seq_k = N):
 * unshifted heads see [floor(i/g) g, i]; shifted heads see, for SEGMENTS and
 * RAGGED, [0, i] below g/2 and [g/2 + floor((i - g/2)/g) g, i] after; for
 * ROLL, the rolled row n = (i - back) mod N sees rolled keys
 * [floor(n/g) g, n], i.e. original keys (m - fwd) mod N, which wrap around
 * for the group that holds the sequence's tail and head. */
static inline int lcx_rowvis(const lcx_attn_job *j, int64_t h, int64_t i, int64_t lq, int64_t lk, int64_t *lo,
                             int64_t *hi)
{
    if (!j->s2) {
        lcx_visible(j, i, lq, lk, lo, hi);
        return 1;
    }
    const int64_t g = j->g, N = lk;
    if (h < j->h0) {
        lo[0] = i / g * g;
        hi[0] = i;
        return 1;
    }
    if (j->s2 != 1 + LCX_S2_ROLL) {
        const int64_t half = g / 2;
        lo[0] = i < half ? 0 : half + (i - half) / g * g;
        hi[0] = i;
        return 1;
    }
    const int64_t n = lcx_mod(i - j->back, N), n0 = n / g * g;
    const int64_t a = lcx_mod(n0 - j->fwd, N), e = lcx_mod(n - j->fwd, N);
    if (a <= e) {
        lo[0] = a;
        hi[0] = e;
        return 1;
    }
    lo[0] = 0; /* the wrap group: [0, e] and [a, N) */
    hi[0] = e;
    lo[1] = a;
    hi[1] = N - 1;
    return 2;
}

/* token whose query produces output row i of head h: i itself, except for
 * ROLL with LongLoRA's odd-group misalignment (rolled back by a different
 * amount than forward) */
static inline int64_t lcx_qsrc(const lcx_attn_job *j, int64_t h, int64_t i, int64_t lq)
{
    if (j->s2 != 1 + LCX_S2_ROLL || h < j->h0)
        return i;
    return lcx_mod(lcx_mod(i - j->back, lq) - j->fwd, lq);
}

/* query head of tile row r (rows: kv head of the item, then query head
 * within the group, then query position) */
static inline int64_t lcx_row_head(const lcx_attn_job *j, int64_t kvh, int64_t r, int64_t nq)
{
    const int64_t rph = j->G * nq;
    return (kvh + r / rph) * j->G + (r % rph) / nq;
}

/* One tile pass over keys [klo, khi] for the rows of item (seq, kvh, qblk):
 * leaves the unnormalised output O, row max m and sum l in the worker slot. */
typedef struct lcx_tile {
    float *Q, *Kt, *V, *S, *O, *m, *l, *row;
} lcx_tile;

static lcx_tile lcx_slot(const lcx_attn_job *j, int64_t w)
{
    lcx_tile t;
    float *p = j->scratch + (size_t)w * j->slot;
    t.Q = p;
    p += j->rows * j->Dp;
    t.Kt = p;
    p += j->Dp * LCX_ATTN_BK;
    t.V = p;
    p += LCX_ATTN_BK * j->Dvp;
    t.S = p;
    p += j->rows * LCX_ATTN_BK;
    t.O = p;
    p += j->rows * j->Dvp;
    t.m = p;
    p += j->rows;
    t.l = p;
    p += j->rows;
    t.row = p; /* staging for one converted row */
    return t;
}

static size_t lcx_slot_floats(const lcx_attn_job *j)
{
    size_t n = (size_t)(j->rows * j->Dp + j->Dp * LCX_ATTN_BK + LCX_ATTN_BK * j->Dvp + j->rows * LCX_ATTN_BK +
                        j->rows * j->Dvp + 2 * j->rows + (j->Dp > j->Dvp ? j->Dp : j->Dvp));
    return (n + 15) & ~(size_t)15; /* keep every slot 64-byte aligned */
}

/* L2 prefetch of `bytes` bytes at p (the empty volatile asm keeps the
 * compiler from deleting a loop whose only effect is the prefetches) */
static inline void lcx_prefetch_bytes(const char *p, int64_t bytes)
{
    for (int64_t b = 0; b < bytes; b += 64) {
        __builtin_prefetch(p + b, 0, 2);
        __asm__ volatile("");
    }
}

static void lcx_attn_tiles(const lcx_attn_job *j, lcx_tile *t, int64_t b, int64_t qs, int64_t ks, int64_t lq,
                           int64_t lk, int64_t kvh, int64_t i0, int64_t nq, int n_iv, const int64_t *ivlo,
                           const int64_t *ivhi)
{
    const lcx_ktable *kt = j->kt;
    const int64_t G = j->G, hg = j->hg, rph = G * nq, R = hg * rph, D = j->D, Dv = j->Dv, Dp = j->Dp,
                  Dvp = j->Dvp;
    /* Q tile, scaled: row (hh * G + g) * nq + i for kv head kvh + hh */
    for (int64_t hh = 0; hh < hg; hh++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t i = 0; i < nq; i++) {
                float *qr = t->Q + ((hh * G + g) * nq + i) * Dp;
                const int64_t h = (kvh + hh) * G + g;
                lcx_load_row(kt, j->q, lcx_at(j->q, b, qs + lcx_qsrc(j, h, i0 + i, lq), h), D, qr);
                for (int64_t c = 0; c < D; c++)
                    qr[c] *= j->scale;
            }
    for (int64_t r = 0; r < R; r++) {
        t->m[r] = -INFINITY;
        t->l[r] = 0.0f;
        memset(t->O + r * Dvp, 0, (size_t)Dvp * sizeof(float));
    }
    /* row visibility bounds of the first and last query decide which key
     * tiles need masks */
    int64_t lo0, hi0, lo1, hi1;
    lcx_visible(j, i0, lq, lk, &lo0, &hi0);
    lcx_visible(j, i0 + nq - 1, lq, lk, &lo1, &hi1);
    /* few rows per kv head (decode): products straight from the cache, no
     * tile copies; with several kv heads per item the cache is swept key
     * row by key row (4 keys, then every head), i.e. sequentially */
    const int direct = rph <= LCX_ATTN_DIRECT_ROWS;
    const size_t kes = lcx_dtype_size(j->k->dtype), ves = lcx_dtype_size(j->v->dtype);
    for (int iv = 0; iv < n_iv; iv++)
    for (int64_t kb = ivlo[iv]; kb <= ivhi[iv]; kb += LCX_ATTN_BK) {
        const int64_t khi = ivhi[iv];
        const int64_t nk = khi - kb + 1 < LCX_ATTN_BK ? khi - kb + 1 : LCX_ATTN_BK;
        const int32_t n16 = (int32_t)((nk + 15) & ~15);
        const char *kbase = (const char *)j->k->data +
                            (size_t)lcx_at(j->k, b, ks + kb, kvh) * lcx_dtype_size(j->k->dtype);
        const char *vbase = (const char *)j->v->data +
                            (size_t)lcx_at(j->v, b, ks + kb, kvh) * lcx_dtype_size(j->v->dtype);
        /* rows past the tile that the direct kernels may prefetch: the rest
         * of the sequence (with split-KV a worker's chunks are contiguous,
         * so this runs on into its next chunk) */
        const int64_t avail = lk - kb < nk + LCX_ATTN_PF_KEYS ? lk - kb : nk + LCX_ATTN_PF_KEYS;
        if (direct) {
            /* one call per kv head over the whole tile */
            for (int64_t hh = 0; hh < hg; hh++)
                kt->attn_qk_direct(t->Q + hh * rph * Dp, Dp, kbase + (size_t)(hh * j->k->stride[2]) * kes,
                                   j->k->stride[1], (int32_t)j->k->dtype, (int32_t)rph, (int32_t)nk, (int32_t)avail,
                                   (int32_t)D, t->S + hh * rph * LCX_ATTN_BK, LCX_ATTN_BK);
            goto softmax;
        }
        /* K^T and V tiles; padded keys are zero. While copying value row jj,
         * fetch key and value row jj of the next tile into L2: a head's rows
         * are far apart (kv heads interleave), so the hardware prefetchers
         * miss them, and the tile's products leave ample time for the fetch
         * (causal f32 prefill at 16k tokens: 119 -> 148 GFLOP/s on 2 cores,
         * with the packing below). */
        /* Kt[c][jj] = K[jj][c] widened, zero for nk <= jj < BK: the GEMM
         * panel packing (in-register transposes) */
        kt->gemm_pack(kbase, j->k->stride[1], 1, (int32_t)j->k->dtype, (int32_t)nk, D, LCX_ATTN_BK, t->Kt);
        for (int64_t jj = 0; jj < n16; jj++) {
            if (jj < nk) {
                if (kb + LCX_ATTN_BK + jj < lk) {
                    lcx_prefetch_bytes(kbase + (size_t)((LCX_ATTN_BK + jj) * j->k->stride[1]) * kes, D * (int64_t)kes);
                    lcx_prefetch_bytes(vbase + (size_t)((LCX_ATTN_BK + jj) * j->v->stride[1]) * ves, Dv * (int64_t)ves);
                }
                lcx_load_row(kt, j->v, lcx_at(j->v, b, ks + kb + jj, kvh), Dv, t->V + jj * Dvp);
            } else
                memset(t->V + jj * Dvp, 0, (size_t)Dv * sizeof(float));
            if (Dvp > Dv)
                memset(t->V + jj * Dvp + Dv, 0, (size_t)(Dvp - Dv) * sizeof(float));
        }
        kt->attn_qk(t->Q, Dp, t->Kt, LCX_ATTN_BK, (int32_t)R, n16, (int32_t)D, t->S, LCX_ATTN_BK);
    softmax:;
        /* masks are needed on a partial tile or where some row's window or
         * causal bound cuts through it */
        int cut = j->causal && (kb + nk - 1 > hi0 || kb < lo1); /* some row misses real keys */
        if (j->s2) { /* S2 rows follow per-head, per-group rules: check each row's coverage */
            cut = 0;
            for (int64_t r = 0; r < R && !cut; r++) {
                int64_t lo[2], hi[2];
                const int nv = lcx_rowvis(j, lcx_row_head(j, kvh, r, nq), i0 + r % nq, lq, lk, lo, hi);
                int cov = 0;
                for (int x = 0; x < nv; x++)
                    cov |= lo[x] <= kb && kb + nk - 1 <= hi[x];
                cut = !cov;
            }
        }
        const int need_mask = nk < n16 || cut;
        for (int64_t r = 0; r < R; r++) {
            float *s = t->S + r * LCX_ATTN_BK;
            if (isnan(t->m[r])) { /* a NaN score earlier: the row stays NaN */
                memset(s, 0, (size_t)n16 * sizeof(float));
                continue;
            }
            if (j->softcap > 0)
                for (int64_t jj = 0; jj < nk; jj++)
                    s[jj] = j->softcap * tanhf(s[jj] / j->softcap);
            if (need_mask) {
                int64_t lo[2], hi[2];
                const int nv = lcx_rowvis(j, lcx_row_head(j, kvh, r, nq), i0 + r % nq, lq, lk, lo, hi);
                for (int64_t jj = 0; jj < n16; jj++) {
                    int vis = jj < nk && kb + jj >= lo[0] && kb + jj <= hi[0];
                    if (nv > 1)
                        vis |= jj < nk && kb + jj >= lo[1] && kb + jj <= hi[1];
                    if (!vis)
                        s[jj] = -INFINITY;
                }
            }
            /* keys past nk are -inf here (need_mask) */
            const float mx = kt->attn_max(s, n16);
            if (mx != mx) { /* NaN in q or k: the row's output and lse are NaN */
                t->m[r] = NAN;
                t->l[r] = NAN;
                memset(s, 0, (size_t)n16 * sizeof(float));
                continue;
            }
            if (mx == -INFINITY) { /* nothing visible in this tile for this row */
                memset(s, 0, (size_t)n16 * sizeof(float));
                continue;
            }
            const float mn = mx > t->m[r] ? mx : t->m[r];
            if (mn > t->m[r]) {
                const float f = expf(t->m[r] - mn); /* 0 when m was -inf */
                t->l[r] *= f;
                float *o = t->O + r * Dvp;
                for (int64_t c = 0; c < Dv; c++)
                    o[c] *= f;
                t->m[r] = mn;
            }
            t->l[r] += kt->attn_exp(s, n16, mn);
        }
        if (cut) {
            /* keys some rows must not see: skip p == 0 terms so that a
             * non-finite value at an invisible key cannot leak in (0 * inf) */
            for (int64_t hh = 0; hh < hg; hh++)
                for (int64_t jj = 0; jj < nk; jj++) {
                    const float *vr = t->V + jj * Dvp;
                    if (direct) {
                        lcx_load_row(kt, j->v, lcx_at(j->v, b, ks + kb + jj, kvh + hh), Dv, t->row);
                        vr = t->row;
                    }
                    for (int64_t r = hh * rph; r < (hh + 1) * rph && r < R; r++) {
                        const float pv = t->S[r * LCX_ATTN_BK + jj];
                        if (pv == 0.0f)
                            continue;
                        float *o = t->O + r * Dvp;
                        for (int64_t c = 0; c < Dv; c++)
                            o[c] += pv * vr[c];
                    }
                }
        } else if (direct) {
            for (int64_t hh = 0; hh < hg; hh++)
                kt->attn_pv_direct(t->S + hh * rph * LCX_ATTN_BK, LCX_ATTN_BK,
                                   vbase + (size_t)(hh * j->v->stride[2]) * ves, j->v->stride[1],
                                   (int32_t)j->v->dtype, (int32_t)rph, (int32_t)nk, (int32_t)avail, (int32_t)Dv,
                                   t->O + hh * rph * Dvp, Dvp);
        } else
            kt->attn_pv(t->S, LCX_ATTN_BK, t->V, Dvp, (int32_t)R, n16, (int32_t)Dvp, t->O, Dvp);
    }
}

static void lcx_attn_finish_row(const lcx_attn_job *j, float *o, float m, float l, int64_t b, int64_t qpos,
                                int64_t h, int64_t lse_row)
{
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t c = 0; c < j->Dv; c++)
        o[c] = isnan(l) ? NAN : l > 0 ? o[c] * inv : 0.0f;
    lcx_store_row(j->kt, j->out, lcx_at(j->out, b, qpos, h), j->Dv, o);
    if (j->lse)
        j->lse[(b * j->H + h) * j->Sq + lse_row] = isnan(l) ? NAN : l > 0 ? m + logf(l) : -INFINITY;
}

/* decode an item index into (seq, kv head, query block, chunk) */
static void lcx_item(const lcx_attn_job *j, int64_t it, int64_t *s, int64_t *kvh, int64_t *qb, int64_t *c)
{
    /* chunk-major: the items of one key chunk (its kv heads) are consecutive,
     * so workers sweep the cache together, page by page */
    *c = it / j->n_items;
    it %= j->n_items;
    int64_t lo = 0, hi = j->n_seqs; /* find s with item_start[s] <= it < item_start[s + 1] */
    while (hi - lo > 1) {
        const int64_t mid = (lo + hi) / 2;
        if (j->item_start[mid] <= it)
            lo = mid;
        else
            hi = mid;
    }
    *s = lo;
    it -= j->item_start[lo];
    const int64_t nqb = (j->item_start[lo + 1] - j->item_start[lo]) / (j->Hkv / j->hg);
    *kvh = (it / nqb) * j->hg;
    *qb = it % nqb;
}

static void lcx_attn_worker(void *arg, int64_t w)
{
    const lcx_attn_job *j = arg;
    lcx_tile t = lcx_slot(j, w);
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t total = j->n_items * j->n_chunks;
    /* split-KV: equal-cost chunks, a contiguous run per worker (each streams
     * its own stretch of the cache and its prefetches stay on it); else
     * round-robin, which balances the causal triangle */
    const int contig = j->n_chunks > 1;
    const int64_t it0 = contig ? total * w / j->workers : w, it1 = contig ? total * (w + 1) / j->workers : total;
    for (int64_t it = it0; it < it1; it += contig ? 1 : j->workers) {
        int64_t s, kvh, qb, c, b, qs, lq, ks, lk;
        lcx_item(j, it, &s, &kvh, &qb, &c);
        lcx_seq(j, s, &b, &qs, &lq, &ks, &lk);
        const int64_t i0 = qb * j->bq, nq = lq - i0 < j->bq ? lq - i0 : j->bq, R = j->hg * j->G * nq;
        int64_t ivlo[2], ivhi[2];
        int n_iv = 1;
        if (!j->s2) {
            int64_t lo0, hi0, lo1, hi1;
            lcx_visible(j, i0, lq, lk, &lo0, &hi0);
            lcx_visible(j, i0 + nq - 1, lq, lk, &lo1, &hi1);
            ivlo[0] = lo0;
            ivhi[0] = hi1;
        } else { /* union of every row's intervals: a main run and the wrap run */
            ivlo[0] = ivlo[1] = lk;
            ivhi[0] = ivhi[1] = -1;
            for (int64_t hh = 0; hh < j->hg; hh++)
                for (int64_t g = 0; g < j->G; g++)
                    for (int64_t i = 0; i < nq; i++) {
                        int64_t lo[2], hi[2];
                        const int nv = lcx_rowvis(j, (kvh + hh) * j->G + g, i0 + i, lq, lk, lo, hi);
                        for (int x = 0; x < nv; x++) {
                            ivlo[x] = lo[x] < ivlo[x] ? lo[x] : ivlo[x];
                            ivhi[x] = hi[x] > ivhi[x] ? hi[x] : ivhi[x];
                        }
                    }
            if (ivhi[1] >= ivlo[1]) {
                n_iv = 2;
                if (ivlo[1] <= ivhi[0] + 1) { /* the runs touch: one run */
                    ivhi[0] = ivhi[1] > ivhi[0] ? ivhi[1] : ivhi[0];
                    n_iv = 1;
                }
            }
        }
        if (j->n_chunks > 1) { /* this chunk's share of the keys */
            const int64_t clo = c * LCX_ATTN_CHUNK, chi = clo + LCX_ATTN_CHUNK - 1;
            ivlo[0] = ivlo[0] > clo ? ivlo[0] : clo;
            ivhi[0] = ivhi[0] < chi ? ivhi[0] : chi;
        }
        if (ivhi[0] >= ivlo[0] || n_iv > 1) {
            lcx_attn_tiles(j, &t, b, qs, ks, lq, lk, kvh, i0, nq, n_iv, ivlo, ivhi);
        } else {
            for (int64_t r = 0; r < R; r++) {
                t.m[r] = -INFINITY;
                t.l[r] = 0;
                memset(t.O + r * j->Dvp, 0, (size_t)j->Dvp * sizeof(float));
            }
        }
        if (j->n_chunks > 1) { /* keep the partial result for the merge pass */
            float *pp = j->partial + (size_t)it * (size_t)(j->rows * (j->Dvp + 2));
            for (int64_t r = 0; r < R; r++) {
                memcpy(pp + r * (j->Dvp + 2), t.O + r * j->Dvp, (size_t)j->Dvp * sizeof(float));
                pp[r * (j->Dvp + 2) + j->Dvp] = t.m[r];
                pp[r * (j->Dvp + 2) + j->Dvp + 1] = t.l[r];
            }
            continue;
        }
        for (int64_t r = 0; r < R; r++) {
            const int64_t h = kvh * j->G + r / nq, i = r % nq; /* rows run over (kv head, g) then i */
            lcx_attn_finish_row(j, t.O + r * j->Dvp, t.m[r], t.l[r], b, qs + i0 + i, h, qs + i0 + i);
        }
    }
    lcx_fpenv_leave(env);
}

/* split-KV: merge the chunks of every (item) in chunk order */
static void lcx_attn_merge_worker(void *arg, int64_t w)
{
    const lcx_attn_job *j = arg;
    lcx_tile t = lcx_slot(j, w);
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t stride = j->rows * (j->Dvp + 2);
    for (int64_t item = w; item < j->n_items; item += j->workers) {
        int64_t s, kvh, qb, c, b, qs, lq, ks, lk;
        lcx_item(j, item, &s, &kvh, &qb, &c);
        lcx_seq(j, s, &b, &qs, &lq, &ks, &lk);
        const int64_t i0 = qb * j->bq, nq = lq - i0 < j->bq ? lq - i0 : j->bq, R = j->hg * j->G * nq;
        const float *base = j->partial + (size_t)item * (size_t)stride; /* chunk cc at cc * n_items */
        for (int64_t r = 0; r < R; r++) {
            float m = -INFINITY;
            int nan = 0;
            for (int64_t cc = 0; cc < j->n_chunks; cc++) {
                const float mc = base[cc * j->n_items * stride + r * (j->Dvp + 2) + j->Dvp];
                nan |= mc != mc;
                m = mc > m ? mc : m;
            }
            float l = nan ? NAN : 0;
            float *o = t.O;
            memset(o, 0, (size_t)j->Dvp * sizeof(float));
            if (!nan && m > -INFINITY) {
                for (int64_t cc = 0; cc < j->n_chunks; cc++) {
                    const float *pr = base + cc * j->n_items * stride + r * (j->Dvp + 2);
                    if (pr[j->Dvp + 1] == 0)
                        continue;
                    const float f = expf(pr[j->Dvp] - m);
                    l += pr[j->Dvp + 1] * f;
                    for (int64_t x = 0; x < j->Dv; x++)
                        o[x] += pr[x] * f;
                }
            }
            const int64_t h = kvh * j->G + r / nq, i = r % nq;
            lcx_attn_finish_row(j, o, m, l, b, qs + i0 + i, h, qs + i0 + i);
        }
    }
    lcx_fpenv_leave(env);
}

static lcx_status lcx_attn_check4(const char *op, const lcx_tensor *t, const char *name, int writable)
{
    char what[64];
    snprintf(what, sizeof what, "%s: %s", op, name);
    lcx_status st = lcx_tensor_validate(t, what, writable);
    if (st != LCX_OK)
        return st;
    if (t->ndim != 4)
        return lcx_fail(LCX_E_INVALID, "%s: %s has %" PRId32 " dims, want 4 [batch][seq][heads][dim]", op, name,
                        t->ndim);
    return LCX_OK;
}

static lcx_status lcx_attn_common(lcx_context *ctx, const char *op, const lcx_attention_params *params,
                                  const lcx_s2_params *s2, const lcx_tensor *q, const lcx_tensor *k,
                                  const lcx_tensor *v, const lcx_tensor *out, float *lse);

lcx_status lcx_attention_forward(lcx_context *ctx, const lcx_attention_params *params, const lcx_tensor *q,
                                 const lcx_tensor *k, const lcx_tensor *v, const lcx_tensor *out, float *lse)
{
    return lcx_attn_common(ctx, "attention_forward", params, NULL, q, k, v, out, lse);
}

void lcx_s2_params_default(lcx_s2_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->mode = LCX_S2_SEGMENTS;
    p->shifted_head_start = -1;
    p->shift = 1;
}

int64_t lcx_s2_default_group_size(int64_t seq_len)
{
    return seq_len >= 4 ? seq_len / 4 : 0;
}

lcx_status lcx_attention_s2_forward(lcx_context *ctx, const lcx_s2_params *s2, const lcx_tensor *q,
                                    const lcx_tensor *k, const lcx_tensor *v, const lcx_tensor *out, float *lse)
{
    const char *op = "attention_s2_forward";
    if (!s2)
        return lcx_fail(LCX_E_INVALID, "%s: params is NULL", op);
    if (s2->struct_size != sizeof *s2)
        return lcx_fail(LCX_E_INVALID, "%s: params struct_size %zu is not a size this library knows (%zu)", op,
                        s2->struct_size, sizeof *s2);
    lcx_attention_params p;
    lcx_attention_params_default(&p);
    p.causal = 1;
    p.scale = s2->scale;
    return lcx_attn_common(ctx, op, &p, s2, q, k, v, out, lse);
}

/* the checks lcx_attention_s2_forward and lcx_s2_segments share */
static lcx_status lcx_s2_check(const char *op, lcx_s2_mode mode, int64_t n, int64_t g, int odd_ok)
{
    if ((int)mode < LCX_S2_ROLL || (int)mode > LCX_S2_RAGGED)
        return lcx_fail(LCX_E_INVALID, "%s: unknown mode %d", op, (int)mode);
    if (g < 1 || g > n)
        return lcx_fail(LCX_E_INVALID, "%s: group_size %" PRId64 " must be in 1..seq (%" PRId64 ")", op, g, n);
    if (g % 2 && !odd_ok)
        return lcx_fail(LCX_E_INVALID, "%s: group_size %" PRId64 " is odd (set exact_odd_group to reproduce "
                        "LongLoRA's off-by-one)", op, g);
    if (mode != LCX_S2_RAGGED && n % g)
        return lcx_fail(LCX_E_INVALID, "%s: seq %" PRId64 " is not a multiple of group_size %" PRId64
                        " (only RAGGED allows that)", op, n, g);
    return LCX_OK;
}

lcx_status lcx_s2_segments(lcx_s2_mode mode, int64_t n, int64_t g, int32_t shifted, int64_t *seg, int64_t cap,
                           int64_t *n_segments)
{
    const char *op = "s2_segments";
    if (!seg || !n_segments)
        return lcx_fail(LCX_E_INVALID, "%s: %s is NULL", op, !seg ? "seg" : "n_segments");
    if (n < 1 || (shifted != 0 && shifted != 1) || cap < 0)
        return lcx_fail(LCX_E_INVALID, "%s: seq %" PRId64 ", shifted %" PRId32 ", cap %" PRId64 " out of range", op,
                        n, shifted, cap);
    lcx_status st = lcx_s2_check(op, mode, n, g, 1);
    if (st != LCX_OK)
        return st;
    int64_t cnt = 0;
    const int64_t half = g / 2;
    /* count first, so nothing is written when cap is too small */
    for (int pass = 0; pass < 2; pass++) {
        cnt = 0;
        int64_t s0 = 0;
        if (shifted && mode == LCX_S2_ROLL) {
            /* the roll is by -ceil(g/2) (odd g: the reference's -g//2), so
             * groups start at ceil(g/2) and the wrap-around group is the
             * last floor(g/2) tokens, then the first ceil(g/2) */
            const int64_t head = g - half;
            for (int64_t st = head; st + g <= n; st += g, cnt++)
                if (pass) {
                    seg[2 * cnt] = st;
                    seg[2 * cnt + 1] = st + g;
                }
            if (pass) {
                seg[2 * cnt] = half > 0 ? n - half : 0;
                seg[2 * cnt + 1] = head;
            }
            cnt++;
        } else {
            while (s0 < n) {
                const int64_t e0 = shifted && s0 == 0 && half > 0 ? half : s0 + g;
                const int64_t e = e0 < n ? e0 : n;
                if (pass) {
                    seg[2 * cnt] = s0;
                    seg[2 * cnt + 1] = e;
                }
                cnt++;
                s0 = e;
            }
        }
        if (!pass && cnt > cap)
            return lcx_fail(LCX_E_INVALID, "%s: %" PRId64 " segments do not fit cap %" PRId64, op, cnt, cap);
    }
    *n_segments = cnt;
    return LCX_OK;
}

static lcx_status lcx_attn_common(lcx_context *ctx, const char *op, const lcx_attention_params *params,
                                  const lcx_s2_params *s2, const lcx_tensor *q, const lcx_tensor *k,
                                  const lcx_tensor *v, const lcx_tensor *out, float *lse)
{
    lcx_attention_params pd;
    lcx_attention_params_default(&pd);
    const lcx_attention_params *p = params ? params : &pd;
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK)
        return st;
    if (p->struct_size != sizeof *p)
        return lcx_fail(LCX_E_INVALID, "%s: params struct_size %zu is not a size this library knows (%zu)", op,
                        p->struct_size, sizeof *p);
    if ((st = lcx_attn_check4(op, q, "q", 0)) != LCX_OK || (st = lcx_attn_check4(op, k, "k", 0)) != LCX_OK ||
        (st = lcx_attn_check4(op, v, "v", 0)) != LCX_OK || (st = lcx_attn_check4(op, out, "out", 1)) != LCX_OK)
        return st;
    const int64_t B = q->shape[0], Sq = q->shape[1], H = q->shape[2], D = q->shape[3];
    const int64_t Sk = k->shape[1], Hkv = k->shape[2], Dv = v->shape[3];
    if (k->shape[0] != B || v->shape[0] != B || out->shape[0] != B)
        return lcx_fail(LCX_E_INVALID, "%s: batch sizes differ (q %" PRId64 ", k %" PRId64 ", v %" PRId64
                        ", out %" PRId64 ")", op, B, k->shape[0], v->shape[0], out->shape[0]);
    if (v->shape[1] != Sk || v->shape[2] != Hkv)
        return lcx_fail(LCX_E_INVALID, "%s: v is [%" PRId64 "][%" PRId64 "] but k is [%" PRId64 "][%" PRId64 "]",
                        op, v->shape[1], v->shape[2], Sk, Hkv);
    if (Hkv < 1 || H % Hkv != 0)
        return lcx_fail(LCX_E_INVALID, "%s: heads %" PRId64 " is not divisible by kv_heads %" PRId64, op, H, Hkv);
    if (k->shape[3] != D)
        return lcx_fail(LCX_E_INVALID, "%s: q head dim %" PRId64 " differs from k's %" PRId64, op, D, k->shape[3]);
    if (out->shape[1] != Sq || out->shape[2] != H || out->shape[3] != Dv)
        return lcx_fail(LCX_E_INVALID, "%s: out is [%" PRId64 "][%" PRId64 "][%" PRId64 "], want [%" PRId64
                        "][%" PRId64 "][%" PRId64 "] (v's dim)", op, out->shape[1], out->shape[2], out->shape[3],
                        Sq, H, Dv);
    if (D < 1 || D > LCX_ATTN_MAX_D || Dv < 1 || Dv > LCX_ATTN_MAX_D)
        return lcx_fail(LCX_E_INVALID, "%s: head dims %" PRId64 "/%" PRId64 " must be in 1..%d", op, D, Dv,
                        LCX_ATTN_MAX_D);
    if (lcx_tensors_overlap(out, q) || lcx_tensors_overlap(out, k) || lcx_tensors_overlap(out, v))
        return lcx_fail(LCX_E_INVALID, "%s: out overlaps q, k or v", op);
    if (!isfinite(p->scale) || p->scale < 0 || p->scale > FLT_MAX)
        return lcx_fail(LCX_E_INVALID, "%s: scale %g must be a finite float >= 0 (0 = 1/sqrt(d))", op, p->scale);
    if (!isfinite(p->softcap) || p->softcap < 0 || (p->softcap > 0 && (p->softcap < FLT_MIN || p->softcap > FLT_MAX)))
        return lcx_fail(LCX_E_INVALID, "%s: softcap %g must be 0 or a normal positive float", op, p->softcap);
    if ((st = lcx_check_ptr_aligned(op, "lse", lse, sizeof *lse)) != LCX_OK)
        return st;
    if (lse) {
        const uintptr_t l0 = (uintptr_t)lse, l1 = l0 + (uintptr_t)(B * H * Sq) * sizeof(float);
        const lcx_tensor *ts[4] = {q, k, v, out};
        for (int x = 0; x < 4; x++) {
            uintptr_t t0, t1;
            lcx_tensor_extent(ts[x], &t0, &t1);
            if (l0 < t1 && t0 < l1)
                return lcx_fail(LCX_E_INVALID, "%s: lse overlaps q, k, v or out", op);
        }
    }
    if (p->causal != 0 && p->causal != 1)
        return lcx_fail(LCX_E_INVALID, "%s: causal %" PRId32 " must be 0 or 1", op, p->causal);
    if (p->pv_16bit != 0 && p->pv_16bit != 1)
        return lcx_fail(LCX_E_INVALID, "%s: pv_16bit %" PRId32 " must be 0 or 1", op, p->pv_16bit);
    if (p->window_left >= 0 && !p->causal)
        return lcx_fail(LCX_E_INVALID, "%s: window_left needs causal attention", op);
    lcx_attn_job j = {0};
    if (p->cu_seqlens_q || p->cu_seqlens_k) {
        if (!p->cu_seqlens_q || !p->cu_seqlens_k || p->n_seqs < 1)
            return lcx_fail(LCX_E_INVALID, "%s: varlen needs cu_seqlens_q, cu_seqlens_k and n_seqs >= 1", op);
        if (B != 1)
            return lcx_fail(LCX_E_INVALID, "%s: varlen needs batch 1 (packed sequences), got %" PRId64, op, B);
        const int64_t *cq = p->cu_seqlens_q, *ck = p->cu_seqlens_k;
        if (cq[0] != 0 || ck[0] != 0)
            return lcx_fail(LCX_E_INVALID, "%s: cu_seqlens must start at 0", op);
        for (int32_t s = 0; s < p->n_seqs; s++)
            if (cq[s + 1] < cq[s] || ck[s + 1] < ck[s])
                return lcx_fail(LCX_E_INVALID, "%s: cu_seqlens decrease at sequence %" PRId32, op, s);
        if (cq[p->n_seqs] != Sq || ck[p->n_seqs] != Sk)
            return lcx_fail(LCX_E_INVALID, "%s: cu_seqlens end at %" PRId64 "/%" PRId64 " but q/k hold %" PRId64
                            "/%" PRId64 " rows", op, cq[p->n_seqs], ck[p->n_seqs], Sq, Sk);
        j.cu_q = cq;
        j.cu_k = ck;
        j.n_seqs = p->n_seqs;
    } else {
        j.n_seqs = B;
    }
    if (s2) {
        const int64_t g = s2->group_size;
        const int32_t h0 = s2->shifted_head_start < 0 ? (int32_t)(H / 2) : s2->shifted_head_start;
        if (Sq != Sk)
            return lcx_fail(LCX_E_INVALID, "%s: seq_q %" PRId64 " must equal seq_k %" PRId64, op, Sq, Sk);
        if (s2->shifted_head_start < -1 || h0 > H)
            return lcx_fail(LCX_E_INVALID, "%s: shifted_head_start %" PRId32 " is outside [0, heads %" PRId64 "]",
                            op, s2->shifted_head_start, H);
        if (s2->shift != 1 && s2->shift != -1)
            return lcx_fail(LCX_E_INVALID, "%s: shift %" PRId32 " must be +1 or -1", op, s2->shift);
        if (s2->exact_odd_group != 0 && s2->exact_odd_group != 1)
            return lcx_fail(LCX_E_INVALID, "%s: exact_odd_group %" PRId32 " must be 0 or 1", op, s2->exact_odd_group);
        if ((st = lcx_s2_check(op, s2->mode, Sq, g, s2->exact_odd_group)) != LCX_OK)
            return st;
        j.s2 = 1 + (int)s2->mode;
        j.g = g;
        j.h0 = h0;
        /* torch.roll amounts: forward floor(-g/2), back floor(g/2); mirrored for shift -1 */
        const int64_t f = -((g + 1) / 2), bk = g / 2;
        j.fwd = s2->shift > 0 ? f : -f;
        j.back = s2->shift > 0 ? bk : -bk;
    }
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA) {
        const lcx_cuda_attn_desc d = {op, B, Sq, Sk, H, Hkv, D, Dv,
                                      (float)(p->scale > 0 ? p->scale : 1.0 / sqrt((double)D)), (float)p->softcap,
                                      p->causal, p->window_left, j.cu_q, j.cu_k, j.n_seqs, j.s2, j.g, j.h0, j.fwd,
                                      j.back, p->pv_16bit};
        return lcx_cuda_attention(ctx->cuda, &d, q, k, v, out, lse);
    }
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_fail(LCX_E_UNSUPPORTED, "%s: no kernel for this device", op);
    if (B == 0 || Sq == 0 || H == 0 || Dv == 0)
        return LCX_OK; /* nothing to write */

    j.kt = &ctx->kt;
    j.q = q;
    j.k = k;
    j.v = v;
    j.out = out;
    j.lse = lse;
    j.B = B;
    j.Sq = Sq;
    j.Sk = Sk;
    j.H = H;
    j.Hkv = Hkv;
    j.G = H / Hkv;
    j.D = D;
    j.Dv = Dv;
    j.Dp = (D + 15) & ~15;
    j.Dvp = (Dv + 15) & ~15;
    j.scale = (float)(p->scale > 0 ? p->scale : 1.0 / sqrt((double)D));
    j.softcap = (float)p->softcap;
    j.causal = p->causal;
    j.window = p->window_left;
    j.bq = LCX_ATTN_ROWS / j.G > 0 ? LCX_ATTN_ROWS / j.G : 1;
    if (!j.cu_q && j.bq > Sq)
        j.bq = Sq; /* no larger tiles (and split buffers) than the queries need */
    j.hg = 1;
    /* decode shapes split the keys into fixed chunks (never for varlen) */
    j.n_chunks = !j.cu_q && !j.s2 && Sq <= LCX_ATTN_SPLIT_MAX_Q && Sk > 2 * LCX_ATTN_CHUNK
                     ? (Sk + LCX_ATTN_CHUNK - 1) / LCX_ATTN_CHUNK
                     : 1;
    if (j.n_chunks > 1 && j.G * Sq <= LCX_ATTN_DIRECT_ROWS) {
        /* decode: one item covers every kv head, so a key chunk is swept once */
        j.hg = Hkv;
        j.bq = Sq;
    }
    j.rows = j.hg * j.G * j.bq;
    /* items: per sequence, kv-head groups x query blocks; prefix sums in scratch */
    const size_t n_starts = (size_t)j.n_seqs + 1;
    int64_t n_items = 0;
    for (int64_t s2 = 0; s2 < j.n_seqs; s2++) {
        const int64_t lq = j.cu_q ? j.cu_q[s2 + 1] - j.cu_q[s2] : Sq;
        n_items += (Hkv / j.hg) * ((lq + j.bq - 1) / j.bq);
    }
    j.n_items = n_items;
    if (n_items == 0)
        return LCX_OK;
    const int64_t total = n_items * j.n_chunks;
    j.workers = ctx->n_threads > 1 ? ctx->n_threads : 1;
    if (j.workers > total)
        j.workers = total;
    j.slot = lcx_slot_floats(&j);
    const size_t head = ((n_starts * sizeof(int64_t)) + 63) & ~(size_t)63;
    const size_t slots = (size_t)j.workers * j.slot * sizeof(float);
    const size_t part = j.n_chunks > 1 ? (size_t)total * (size_t)(j.rows * (j.Dvp + 2)) * sizeof(float) : 0;
    void *mem;
    if ((st = lcx_scratch(ctx, head + slots + part, &mem)) != LCX_OK)
        return st;
    j.item_start = mem;
    j.scratch = (float *)((char *)mem + head);
    j.partial = part ? (float *)((char *)mem + head + slots) : NULL;
    int64_t acc = 0;
    for (int64_t s2 = 0; s2 < j.n_seqs; s2++) {
        j.item_start[s2] = acc;
        const int64_t lq = j.cu_q ? j.cu_q[s2 + 1] - j.cu_q[s2] : Sq;
        acc += (Hkv / j.hg) * ((lq + j.bq - 1) / j.bq);
    }
    j.item_start[j.n_seqs] = acc;
    /* sequences without queries own no items: the binary search in lcx_item
     * lands on the last sequence starting at or before the item */
    if ((st = lcx_parallel(ctx, j.workers, lcx_attn_worker, &j)) != LCX_OK)
        return st;
    if (j.n_chunks > 1) {
        const int64_t w = j.workers < n_items ? j.workers : n_items;
        const int64_t saved = j.workers;
        j.workers = w;
        st = lcx_parallel(ctx, w, lcx_attn_merge_worker, &j);
        j.workers = saved;
    }
    return st;
}

/* ---- merge of two partial results ---- */

typedef struct lcx_amerge_job {
    const lcx_ktable *kt;
    const lcx_tensor *a, *b, *o;
    const float *la, *lb;
    float *lo;
    int64_t B, S, H, Dv;
} lcx_amerge_job;

static void lcx_amerge_task(void *arg, int64_t task)
{
    const lcx_amerge_job *j = arg;
    float ra[LCX_ATTN_MAX_D], rb[LCX_ATTN_MAX_D];
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t b = task / j->S, s = task % j->S;
    for (int64_t h = 0; h < j->H; h++) {
        const int64_t li = (b * j->H + h) * j->S + s;
        const float xa = j->la[li], xb = j->lb[li];
        const float m = xa > xb ? xa : xb;
        lcx_load_row(j->kt, j->a, lcx_at(j->a, b, s, h), j->Dv, ra);
        lcx_load_row(j->kt, j->b, lcx_at(j->b, b, s, h), j->Dv, rb);
        float lse_out;
        if (m == -INFINITY) {
            for (int64_t c = 0; c < j->Dv; c++)
                ra[c] = 0;
            lse_out = -INFINITY;
        } else {
            const float wa = expf(xa - m), wb = expf(xb - m), inv = 1.0f / (wa + wb);
            for (int64_t c = 0; c < j->Dv; c++)
                ra[c] = (wa * ra[c] + wb * rb[c]) * inv;
            lse_out = m + logf(wa + wb);
        }
        lcx_store_row(j->kt, j->o, lcx_at(j->o, b, s, h), j->Dv, ra);
        if (j->lo)
            j->lo[li] = lse_out;
    }
    lcx_fpenv_leave(env);
}

static int lcx_same_view4(const lcx_tensor *a, const lcx_tensor *b)
{
    if (a->data != b->data || a->dtype != b->dtype)
        return 0;
    for (int32_t d = 0; d < 4; d++)
        if (a->shape[d] > 1 && a->stride[d] != b->stride[d])
            return 0;
    return 1;
}

lcx_status lcx_attention_merge(lcx_context *ctx, const lcx_tensor *out_a, const float *lse_a,
                               const lcx_tensor *out_b, const float *lse_b, const lcx_tensor *out, float *lse)
{
    const char *op = "attention_merge";
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK || (st = lcx_attn_check4(op, out_a, "out_a", 0)) != LCX_OK ||
        (st = lcx_attn_check4(op, out_b, "out_b", 0)) != LCX_OK || (st = lcx_attn_check4(op, out, "out", 1)) != LCX_OK ||
        (st = lcx_check_same_shape(op, out_a, "out_a", out_b, "out_b")) != LCX_OK ||
        (st = lcx_check_same_shape(op, out_a, "out_a", out, "out")) != LCX_OK)
        return st;
    if (!lse_a || !lse_b)
        return lcx_fail(LCX_E_INVALID, "%s: %s is NULL", op, !lse_a ? "lse_a" : "lse_b");
    if ((st = lcx_check_ptr_aligned(op, "lse_a", lse_a, sizeof *lse_a)) != LCX_OK ||
        (st = lcx_check_ptr_aligned(op, "lse_b", lse_b, sizeof *lse_b)) != LCX_OK ||
        (st = lcx_check_ptr_aligned(op, "lse", lse, sizeof *lse)) != LCX_OK)
        return st;
    if (out_a->shape[3] > LCX_ATTN_MAX_D)
        return lcx_fail(LCX_E_INVALID, "%s: dim %" PRId64 " > %d", op, out_a->shape[3], LCX_ATTN_MAX_D);
    if ((lcx_tensors_overlap(out, out_a) && !lcx_same_view4(out, out_a)) ||
        (lcx_tensors_overlap(out, out_b) && !lcx_same_view4(out, out_b)))
        return lcx_fail(LCX_E_INVALID, "%s: out overlaps an input without being the same view", op);
    if (lse) {
        const size_t n = (size_t)(out->shape[0] * out->shape[1] * out->shape[2]) * sizeof(float);
        const uintptr_t l0 = (uintptr_t)lse, l1 = l0 + n;
        const float *ls[2] = {lse_a, lse_b};
        for (int x = 0; x < 2; x++)
            if (lse != ls[x] && l0 < (uintptr_t)ls[x] + n && (uintptr_t)ls[x] < l1)
                return lcx_fail(LCX_E_INVALID, "%s: lse partly overlaps lse_a or lse_b", op);
        const lcx_tensor *ts[3] = {out_a, out_b, out};
        for (int x = 0; x < 3; x++) {
            uintptr_t t0, t1;
            lcx_tensor_extent(ts[x], &t0, &t1);
            if (l0 < t1 && t0 < l1)
                return lcx_fail(LCX_E_INVALID, "%s: lse overlaps an output tensor", op);
        }
    }
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_attention_merge(ctx->cuda, out_a, lse_a, out_b, lse_b, out, lse);
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_fail(LCX_E_UNSUPPORTED, "%s: no kernel for this device", op);
    lcx_amerge_job j = {&ctx->kt, out_a, out_b, out, lse_a, lse_b, lse,
                        out->shape[0], out->shape[1], out->shape[2], out->shape[3]};
    return lcx_parallel(ctx, j.B * j.S, lcx_amerge_task, &j);
}
