/*
 * LoRA linear layers (lora.h) on one GEMM engine:
 *
 *   y[t][o] = [y_old +] alpha * (sum_k x[t][k] w[o][k] + sum_r u[t][r] b[o][r]) + bias[o]
 *
 * The second sum is the low-rank term with u = s x A^T (formed by the packed
 * path from its own packed x, by a separate run of the engine on the other
 * paths): it is `rank` more reduction steps of the same output tile, so the
 * fused layer writes y once.
 *
 * Three paths, chosen by the shape alone:
 *  - packed (BLIS layout): x rows are packed into MR-row panels [k][MR] and
 *    weight rows into NR-column panels [k][NR], both f32 (dtype conversion
 *    happens while packing); the ISA micro-kernel gemm_ukr accumulates an
 *    MR x NR tile over KC reduction steps into an f32 tile buffer; the
 *    epilogue adds bias and y_old and rounds once. Per worker: a column
 *    block of NC outputs (its weight panel packed once) x every token.
 *  - rows, for few tokens: the tokens are packed into vector lanes ([k][NT],
 *    cheap: there are few) and the weights are read as stored, one
 *    broadcast weight per FMA (gemm_rows): no weight packing, which would
 *    cost more than the few-token product itself.
 *  - dot, for one to a few tokens (decode, memory-bound): dot products
 *    straight from the weight rows (attn_qk_direct), vectorised along the
 *    reduction, so a single token still fills the vector lanes.
 * Each output element's sum runs in an order fixed by the shape and the ISA
 * (KC blocks in order), never by the thread count or the column blocking.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal/lcx_internal.h"
#include "internal/lcx_fpenv.h"
#include "../kernels/common/fp_bits.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

/* dot path up to this many tokens, rows path up to LCX_LORA_ROWS_T (where
 * it beats the packed path on AVX-512: 178 against 155 GFLOP/s at 256
 * tokens x 4096 x 4096 on two Zen 4 cores; beyond it the token lanes and
 * tiles outgrow L2) */
#define LCX_LORA_DOT_T 8
#define LCX_LORA_ROWS_T 256
/* packed x of one token chunk, in floats (bounds scratch for long inputs) */
#define LCX_LORA_XPACK_FLOATS ((int64_t)4 << 20)

/* A 2-D matrix view of any dtype; cs may differ from 1 (internal
 * transposed views). data NULL: absent. */
typedef struct lcx_mat {
    char *data;
    int32_t dt;
    int64_t rows, cols, rs, cs;
} lcx_mat;

static lcx_mat lcx_mat_of(const lcx_tensor *t)
{
    lcx_mat m = {0};
    if (!t)
        return m;
    m.data = t->data;
    m.dt = (int32_t)t->dtype;
    m.rows = t->ndim == 2 ? t->shape[0] : 1;
    m.cols = t->shape[t->ndim - 1];
    m.rs = t->ndim == 2 ? t->stride[0] : 0;
    m.cs = t->stride[t->ndim - 1];
    return m;
}

static lcx_mat lcx_mat_dense(float *p, int64_t rows, int64_t cols)
{
    lcx_mat m = {(char *)p, LCX_F32, rows, cols, cols, 1};
    return m;
}

static inline char *lcx_mat_at(const lcx_mat *m, int64_t r, int64_t c)
{
    return m->data + (size_t)(r * m->rs + c * m->cs) * (m->dt == LCX_F32 ? 4 : 2);
}

/* n elements of row r from column c0 of m, as f32 */
static void lcx_mat_load(const lcx_ktable *kt, const lcx_mat *m, int64_t r, int64_t c0, int64_t n, float *dst)
{
    const char *p = lcx_mat_at(m, r, c0);
    if (m->cs == 1) {
        if (m->dt == LCX_F32)
            memcpy(dst, p, (size_t)n * sizeof(float));
        else if (m->dt == LCX_BF16)
            kt->convert_bf16_f32((const uint16_t *)p, dst, (size_t)n);
        else
            kt->convert_f16_f32((const uint16_t *)p, dst, (size_t)n);
        return;
    }
    for (int64_t j = 0; j < n; j++)
        dst[j] = lcx_load_elem(p, m->dt, (size_t)(j * m->cs));
}

/* n f32 values into row r of m from column c0, rounded to m's dtype */
static void lcx_mat_store(const lcx_ktable *kt, const lcx_mat *m, int64_t r, int64_t c0, int64_t n, const float *src)
{
    char *p = lcx_mat_at(m, r, c0);
    if (m->cs == 1) {
        if (m->dt == LCX_F32)
            memcpy(p, src, (size_t)n * sizeof(float));
        else if (m->dt == LCX_BF16)
            kt->convert_f32_bf16(src, (uint16_t *)p, (size_t)n);
        else
            kt->convert_f32_f16(src, (uint16_t *)p, (size_t)n);
        return;
    }
    for (int64_t j = 0; j < n; j++)
        lcx_store_elem(p, m->dt, (size_t)(j * m->cs), src[j]);
}

/* ---- the GEMM engine ---- */

typedef struct lcx_gemm {
    lcx_mat x, w;        /* x [T][K] against w [N][K]; w.data NULL: no such term */
    lcx_mat u, b;        /* u [T][R] (f32, by logical row) against b [N][R]; R = 0: none */
    lcx_mat a;           /* packed path: A [R][K]; the engine forms u = ascale x A^T itself
                          * from the packed x (u unused); data NULL: u is given */
    float ascale;
    lcx_mat bias;        /* [N] or absent */
    lcx_mat y;           /* [T][N] */
    const int32_t *xmap; /* logical row t -> row xmap[t] of x; NULL: identity */
    const int32_t *ymap; /* logical row t -> row ymap[t] of y; NULL: identity */
    float alpha;
    int accumulate;
    int64_t T, N, K, R;
} lcx_gemm;

enum { LCX_PATH_PACKED = 0, LCX_PATH_ROWS = 1, LCX_PATH_DOT = 2 };

typedef struct lcx_gplan {
    int path;                             /* LCX_PATH_* */
    int workers;
    int64_t MR, NR, KC, MC, NC, NCp, Kp;  /* Kp = K + R */
    int64_t tch;                          /* tokens per packed chunk */
    int64_t Rp;                           /* R rounded up to NR when the engine forms u */
    int64_t n_cb, n_ts;                   /* column blocks (rows: chunks), token slices of each */
    int64_t dch, n_dch;                   /* dot/rows: columns per chunk, chunks */
    int64_t NT, RM, n_tg, KB;             /* rows: tokens per group, rows per call, groups, k block */
    size_t shared, slot;                  /* scratch bytes: shared part, per worker */
} lcx_gplan;

static int64_t lcx_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t lcx_round_up(int64_t a, int64_t b) { return lcx_ceil_div(a, b) * b; }
static size_t lcx_fbytes(int64_t n) { return (((size_t)n * sizeof(float)) + 63) & ~(size_t)63; }

static int64_t lcx_clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Blocking from the cache sizes and the tile shape; the reduction block KC
 * depends on neither the thread count nor the column blocking. */
static void lcx_gemm_plan(const lcx_context *ctx, const lcx_gemm *g, lcx_gplan *p)
{
    memset(p, 0, sizeof *p);
    const lcx_ktable *kt = &ctx->kt;
    const int64_t l1 = ctx->info.l1d_bytes > 0 ? ctx->info.l1d_bytes : 32 << 10;
    const int64_t l2 = ctx->info.l2_bytes > 0 ? ctx->info.l2_bytes : 512 << 10;
    const int64_t W = ctx->n_threads > 1 ? ctx->n_threads : 1;
    p->MR = kt->gemm_mr;
    p->NR = kt->gemm_nr;
    p->Kp = g->K + g->R;
    /* blocking for at least one output (an empty product runs nothing, but
     * is still planned) */
    const int64_t N = g->N > 0 ? g->N : 1;
    const int dw = g->w.data == NULL || g->w.cs == 1, db = g->R == 0 || g->b.cs == 1;
    p->path = !dw || !db                  ? LCX_PATH_PACKED
              : g->T <= LCX_LORA_DOT_T && g->K <= INT32_MAX && g->R <= INT32_MAX ? LCX_PATH_DOT
              : g->T <= LCX_LORA_ROWS_T && g->T * p->Kp <= LCX_LORA_XPACK_FLOATS ? LCX_PATH_ROWS
                                        : LCX_PATH_PACKED;
    if (p->path == LCX_PATH_ROWS) {
        /* chunks of whole row blocks, four per worker: each row's sum is
         * independent of the chunking, so this may follow the thread count */
        p->NT = kt->gemm_rows_nt;
        p->RM = kt->gemm_rows_mr;
        p->n_tg = lcx_ceil_div(g->T, p->NT);
        p->dch = lcx_round_up(lcx_ceil_div(N, 4 * W), p->RM);
        p->n_dch = lcx_ceil_div(N, p->dch);
        /* few chunks (narrow outputs, e.g. u = x A^T): split the token
         * groups too; a chunk's rows are then copied once per slice */
        p->n_ts = p->n_dch >= 2 * W ? 1 : lcx_clamp(lcx_ceil_div(2 * W, p->n_dch), 1, p->n_tg);
        const int64_t items = p->n_dch * p->n_ts;
        p->workers = (int)(W < items ? W : items);
        p->shared = lcx_fbytes(p->n_tg * p->NT * (p->Kp > 0 ? p->Kp : 1));
        /* weight rows are copied (and widened) a k block at a time into an
         * L1 buffer whose rows are not 4 KiB apart: RM rows read in
         * lockstep straight from a matrix with a power-of-two row length
         * all fall into one L1 set */
        p->KB = LCX_GEMM_ROWS_KB;
        p->slot = lcx_fbytes(p->n_tg * p->dch * p->NT) + 3 * lcx_fbytes(p->dch) +
                  lcx_fbytes(p->RM * LCX_GEMM_ROWS_LD) + lcx_fbytes(p->Kp + 16);
        return;
    }
    if (p->path == LCX_PATH_DOT) {
        /* weight rows of one chunk fit half of L2; a multiple of 4 (the
         * 4-row dot kernels), independent of the thread count */
        const int64_t rowb = g->K * (g->w.dt == LCX_F32 ? 4 : 2) + g->R * (g->b.dt == LCX_F32 ? 4 : 2) + 1;
        p->dch = lcx_clamp((l2 / 2) / rowb / 4 * 4, 4, 256);
        p->n_dch = lcx_ceil_div(N, p->dch);
        p->workers = (int)(W < p->n_dch ? W : p->n_dch);
        p->shared = lcx_fbytes(g->T * g->K);
        p->slot = 2 * lcx_fbytes(g->T * p->dch) + 2 * lcx_fbytes(p->dch);
        return;
    }
    /* x micro-panel (MR x KC) in half of L1, the weight slab of one reduction
     * block (KC x NC) in half of L2; a worker packs a column block's whole
     * panel ((K + R) x NC, so its scratch grows with K) once and reuses it
     * for every token block */
    p->KC = lcx_clamp((l1 / 2) / (p->MR * 4) / 16 * 16, 64, 1024);
    const int64_t nc_max = lcx_clamp((l2 / 2) / (p->KC * 4) / p->NR * p->NR, p->NR, 4096);
    p->MC = 8 * p->MR;
    /* column blocks: a multiple of the worker count, so that each worker
     * gets the same number of (nearly) equal blocks */
    const int64_t n_cb = lcx_round_up(lcx_ceil_div(N, nc_max), W);
    p->NC = lcx_round_up(lcx_ceil_div(N, n_cb), p->NR);
    p->n_cb = lcx_ceil_div(N, p->NC);
    p->NCp = p->NC;
    const int64_t kp1 = p->Kp > 0 ? p->Kp : 1;
    const int64_t t1 = g->T > 0 ? g->T : 1;
    p->tch = lcx_clamp(LCX_LORA_XPACK_FLOATS / kp1 / p->MR * p->MR, p->MR, lcx_round_up(t1, p->MR));
    /* few column blocks (narrow outputs): split each chunk's tokens too */
    const int64_t mc_blocks = lcx_ceil_div(p->tch, p->MC);
    p->n_ts = p->n_cb >= W ? 1 : lcx_clamp(lcx_ceil_div(W, p->n_cb), 1, mc_blocks);
    const int64_t items = p->n_cb * p->n_ts;
    p->workers = (int)(W < items ? W : items);
    p->Rp = g->a.data ? lcx_round_up(g->R, p->NR) : 0;
    p->shared = lcx_fbytes(p->tch * kp1) + lcx_fbytes(g->K * p->Rp);
    p->slot = lcx_fbytes(kp1 * p->NCp) + lcx_fbytes(p->MC * p->NCp) + lcx_fbytes(kp1 + p->NCp) +
              lcx_fbytes(p->NCp) + lcx_fbytes(p->MR * p->Rp);
}

typedef struct lcx_gemm_run {
    const lcx_gemm *g;
    const lcx_gplan *p;
    const lcx_ktable *kt;
    char *mem;       /* shared part, then one slot per worker */
    int64_t t0, tc;  /* packed path: the current token chunk */
} lcx_gemm_run;

static inline int64_t lcx_row_of(const int32_t *map, int64_t t)
{
    return map ? map[t] : t;
}

/* Logical row t of [x | u] over reduction columns [k0, k0 + n) as f32. */
static void lcx_load_xu(const lcx_ktable *kt, const lcx_gemm *g, int64_t t, int64_t k0, int64_t n, float *dst)
{
    if (k0 < g->K) {
        const int64_t nx = g->K - k0 < n ? g->K - k0 : n;
        lcx_mat_load(kt, &g->x, lcx_row_of(g->xmap, t), k0, nx, dst);
        dst += nx, k0 += nx, n -= nx;
    }
    if (n > 0)
        memcpy(dst, lcx_mat_at(&g->u, t, k0 - g->K), (size_t)n * sizeof(float));
}

/* y[t][o0 .. o0+n) = [y_old +] alpha * acc + bias for logical row t */
static void lcx_epilogue(const lcx_ktable *kt, const lcx_gemm *g, int64_t t, int64_t o0, int64_t n, const float *acc,
                         const float *bias, float *tmp)
{
    const int64_t r = lcx_row_of(g->ymap, t);
    if (g->accumulate)
        lcx_mat_load(kt, &g->y, r, o0, n, tmp);
    for (int64_t j = 0; j < n; j++) {
        float v = g->alpha * acc[j];
        if (bias)
            v += bias[j];
        tmp[j] = g->accumulate ? tmp[j] + v : v;
    }
    lcx_mat_store(kt, &g->y, r, o0, n, tmp);
}

/* ---- packed path ---- */

/* Phase 1: pack the chunk's x rows into MR-row panels [Kp][MR]. When the
 * engine forms u, the panel's x part is packed first and u = ascale x A^T of
 * its MR tokens is computed from it with the micro-kernel (A packed like a
 * weight panel) and written into the panel's last R rows: x is packed once
 * for both products. */
static void lcx_pack_x_task(void *arg, int64_t w)
{
    const lcx_gemm_run *run = arg;
    const lcx_gemm *g = run->g;
    const lcx_gplan *p = run->p;
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t n_ir = lcx_ceil_div(run->tc, p->MR);
    const int64_t lo = w * n_ir / p->workers, hi = (w + 1) * n_ir / p->workers;
    float *xp = (float *)run->mem;
    char *slot = run->mem + p->shared + (size_t)w * p->slot;
    float *tmp = (float *)(slot + lcx_fbytes(p->Kp * p->NCp) + lcx_fbytes(p->MC * p->NCp));
    float *ut = (float *)(slot + p->slot - lcx_fbytes(p->MR * p->Rp));
    const float *ap = (const float *)(run->mem + lcx_fbytes(p->tch * (p->Kp > 0 ? p->Kp : 1)));
    const int64_t nload = g->a.data ? g->K : p->Kp;
    for (int64_t ir = lo; ir < hi; ir++) {
        float *dst = xp + ir * p->Kp * p->MR;
        for (int64_t ii = 0; ii < p->MR; ii++) {
            const int64_t t = ir * p->MR + ii;
            if (t < run->tc) {
                lcx_load_xu(run->kt, g, run->t0 + t, 0, nload, tmp);
                for (int64_t k = 0; k < nload; k++)
                    dst[k * p->MR + ii] = tmp[k];
            } else {
                for (int64_t k = 0; k < nload; k++)
                    dst[k * p->MR + ii] = 0.0f;
            }
        }
        if (g->a.data) {
            for (int64_t jr = 0; jr < p->Rp; jr += p->NR)
                run->kt->gemm_ukr(g->K, dst, ap + jr * g->K, ut + jr, p->Rp, 1);
            for (int64_t r = 0; r < g->R; r++)
                for (int64_t ii = 0; ii < p->MR; ii++)
                    dst[(g->K + r) * p->MR + ii] = g->ascale * ut[ii * p->Rp + r];
        }
    }
    lcx_fpenv_leave(env);
}

/* Phase 2: worker w takes items (column block, token slice) in order; a
 * column block's weight panel [NCp/NR][Kp][NR] is packed once per run of
 * items on it. */
static void lcx_gemm_task(void *arg, int64_t w)
{
    const lcx_gemm_run *run = arg;
    const lcx_gemm *g = run->g;
    const lcx_gplan *p = run->p;
    const lcx_ktable *kt = run->kt;
    const lcx_fpenv env = lcx_fpenv_enter();
    char *slot = run->mem + p->shared + (size_t)w * p->slot;
    float *wp = (float *)slot;
    float *cb_buf = (float *)(slot + lcx_fbytes(p->Kp * p->NCp));
    float *tmp = (float *)(slot + lcx_fbytes(p->Kp * p->NCp) + lcx_fbytes(p->MC * p->NCp));
    float *bias = tmp + lcx_fbytes(p->Kp + p->NCp) / sizeof(float);
    const float *xp = (const float *)run->mem;
    const int64_t items = p->n_cb * p->n_ts;
    const int64_t lo = w * items / p->workers, hi = (w + 1) * items / p->workers;
    const int64_t n_mc = lcx_ceil_div(run->tc, p->MC);
    int64_t packed = -1;
    for (int64_t it = lo; it < hi; it++) {
        const int64_t cb = it / p->n_ts, ts = it % p->n_ts;
        const int64_t o0 = cb * p->NC, nc = g->N - o0 < p->NC ? g->N - o0 : p->NC;
        const int64_t n_jr = lcx_ceil_div(nc, p->NR);
        if (packed != cb) {
            for (int64_t jr = 0; jr < n_jr; jr++) {
                float *dst = wp + jr * p->Kp * p->NR;
                const int64_t o = o0 + jr * p->NR;
                const int32_t rows = (int32_t)(nc - jr * p->NR < p->NR ? nc - jr * p->NR : p->NR);
                if (g->K > 0)
                    kt->gemm_pack(lcx_mat_at(&g->w, o, 0), g->w.rs, g->w.cs, g->w.dt, rows, g->K, (int32_t)p->NR,
                                  dst);
                if (g->R > 0)
                    kt->gemm_pack(lcx_mat_at(&g->b, o, 0), g->b.rs, g->b.cs, g->b.dt, rows, g->R, (int32_t)p->NR,
                                  dst + g->K * p->NR);
            }
            if (g->bias.data)
                lcx_mat_load(kt, &g->bias, 0, o0, nc, bias);
            packed = cb;
        }
        const int64_t mc_lo = ts * n_mc / p->n_ts, mc_hi = (ts + 1) * n_mc / p->n_ts;
        for (int64_t mb = mc_lo; mb < mc_hi; mb++) {
            const int64_t i0 = mb * p->MC, mc = run->tc - i0 < p->MC ? run->tc - i0 : p->MC;
            const int64_t n_ir = lcx_ceil_div(mc, p->MR);
            const int64_t n_pc = p->Kp > 0 ? lcx_ceil_div(p->Kp, p->KC) : 1;
            for (int64_t pc = 0; pc < n_pc; pc++) {
                const int64_t k0 = pc * p->KC, kc = p->Kp - k0 < p->KC ? p->Kp - k0 : p->KC;
                for (int64_t ir = 0; ir < n_ir; ir++) {
                    const float *a = xp + (i0 / p->MR + ir) * p->Kp * p->MR + k0 * p->MR;
                    float *c = cb_buf + ir * p->MR * p->NCp;
                    for (int64_t jr = 0; jr < n_jr; jr++)
                        kt->gemm_ukr(kc, a, wp + jr * p->Kp * p->NR + k0 * p->NR, c + jr * p->NR, p->NCp,
                                     pc == 0);
                }
            }
            for (int64_t i = 0; i < mc; i++)
                lcx_epilogue(kt, g, run->t0 + i0 + i, o0, nc, cb_buf + i * p->NCp, g->bias.data ? bias : NULL,
                             tmp);
        }
    }
    lcx_fpenv_leave(env);
}

/* ---- dot path ---- */

static void lcx_dot_task(void *arg, int64_t w)
{
    const lcx_gemm_run *run = arg;
    const lcx_gemm *g = run->g;
    const lcx_gplan *p = run->p;
    const lcx_ktable *kt = run->kt;
    const lcx_fpenv env = lcx_fpenv_enter();
    const float *xf = (const float *)run->mem;
    char *slot = run->mem + p->shared + (size_t)w * p->slot;
    float *s = (float *)slot, *s2 = (float *)(slot + lcx_fbytes(g->T * p->dch));
    float *bias = (float *)(slot + 2 * lcx_fbytes(g->T * p->dch));
    float *tmp = bias + lcx_fbytes(p->dch) / sizeof(float);
    const int32_t T = (int32_t)g->T;
    const int64_t lo = w * p->n_dch / p->workers, hi = (w + 1) * p->n_dch / p->workers;
    for (int64_t ch = lo; ch < hi; ch++) {
        const int64_t o0 = ch * p->dch, nc = g->N - o0 < p->dch ? g->N - o0 : p->dch;
        if (g->K > 0)
            kt->attn_qk_direct(xf, g->K, lcx_mat_at(&g->w, o0, 0), g->w.rs, g->w.dt, T, (int32_t)nc,
                               (int32_t)nc, (int32_t)g->K, s, p->dch);
        else
            memset(s, 0, (size_t)(g->T * p->dch) * sizeof(float));
        if (g->R > 0) {
            kt->attn_qk_direct((const float *)g->u.data, g->u.rs, lcx_mat_at(&g->b, o0, 0), g->b.rs, g->b.dt, T,
                               (int32_t)nc, (int32_t)nc, (int32_t)g->R, s2, p->dch);
            for (int64_t i = 0; i < g->T; i++)
                for (int64_t j = 0; j < nc; j++)
                    s[i * p->dch + j] += s2[i * p->dch + j];
        }
        if (g->bias.data)
            lcx_mat_load(kt, &g->bias, 0, o0, nc, bias);
        for (int64_t i = 0; i < g->T; i++)
            lcx_epilogue(kt, g, i, o0, nc, s + i * p->dch, g->bias.data ? bias : NULL, tmp);
    }
    lcx_fpenv_leave(env);
}

/* Tokens into lanes: group tg holds tokens tg*NT .. tg*NT+NT-1 as [Kp][NT]
 * (zero padded); worker w packs a contiguous range of groups. */
static void lcx_rows_pack_task(void *arg, int64_t w)
{
    const lcx_gemm_run *run = arg;
    const lcx_gemm *g = run->g;
    const lcx_gplan *p = run->p;
    const lcx_fpenv env = lcx_fpenv_enter();
    const int64_t gstride = p->NT * (p->Kp > 0 ? p->Kp : 1);
    char *slot = run->mem + p->shared + (size_t)w * p->slot;
    float *row = (float *)(slot + p->slot - lcx_fbytes(p->Kp + 16));
    const int64_t lo = w * p->n_tg / p->workers, hi = (w + 1) * p->n_tg / p->workers;
    for (int64_t tg = lo; tg < hi; tg++) {
        float *dst = (float *)run->mem + tg * gstride;
        for (int64_t j = 0; j < p->NT; j++) {
            const int64_t t = tg * p->NT + j;
            if (t < g->T)
                lcx_load_xu(run->kt, g, t, 0, p->Kp, row);
            for (int64_t k = 0; k < p->Kp; k++)
                dst[k * p->NT + j] = t < g->T ? row[k] : 0.0f;
        }
    }
    lcx_fpenv_leave(env);
}

static void lcx_rows_task(void *arg, int64_t w)
{
    const lcx_gemm_run *run = arg;
    const lcx_gemm *g = run->g;
    const lcx_gplan *p = run->p;
    const lcx_ktable *kt = run->kt;
    const lcx_fpenv env = lcx_fpenv_enter();
    const float *xp = (const float *)run->mem;
    const int64_t gstride = p->NT * (p->Kp > 0 ? p->Kp : 1); /* floats per packed token group */
    char *slot = run->mem + p->shared + (size_t)w * p->slot;
    float *cb = (float *)slot;
    float *acc = (float *)(slot + lcx_fbytes(p->n_tg * p->dch * p->NT));
    float *bias = acc + lcx_fbytes(p->dch) / sizeof(float);
    float *tmp = bias + lcx_fbytes(p->dch) / sizeof(float);
    float *wb = tmp + lcx_fbytes(p->dch) / sizeof(float);
    const int64_t ldb = LCX_GEMM_ROWS_LD;
    const int64_t items = p->n_dch * p->n_ts;
    const int64_t lo = w * items / p->workers, hi = (w + 1) * items / p->workers;
    for (int64_t it = lo; it < hi; it++) {
        const int64_t ch = it / p->n_ts, ts = it % p->n_ts;
        const int64_t tg0 = ts * p->n_tg / p->n_ts, tg1 = (ts + 1) * p->n_tg / p->n_ts;
        const int64_t o0 = ch * p->dch, nc = g->N - o0 < p->dch ? g->N - o0 : p->dch;
        /* row blocks outer, k blocks, token groups inner: a block of weight
         * rows is read from memory once, the other groups use the copy */
        for (int64_t i = 0; i < nc; i += p->RM) {
            const int32_t m = (int32_t)(nc - i < p->RM ? nc - i : p->RM);
            if (p->Kp == 0)
                for (int64_t tg = tg0; tg < tg1; tg++)
                    memset(cb + (tg * p->dch + i) * p->NT, 0, (size_t)(m * p->NT) * sizeof(float));
            for (int64_t k0 = 0; k0 < p->Kp; k0 += p->KB) {
                const int64_t kb = p->Kp - k0 < p->KB ? p->Kp - k0 : p->KB;
                for (int32_t r = 0; r < m; r++) {
                    float *dst = wb + r * ldb;
                    const int64_t nx = k0 < g->K ? (g->K - k0 < kb ? g->K - k0 : kb) : 0;
                    if (nx > 0)
                        lcx_mat_load(kt, &g->w, o0 + i + r, k0, nx, dst);
                    if (nx < kb)
                        lcx_mat_load(kt, &g->b, o0 + i + r, k0 + nx - g->K, kb - nx, dst + nx);
                }
                /* fetch the next block of these rows while this one is
                 * multiplied (the rows are far apart: no hardware stream) */
                if (k0 + kb < g->K)
                    for (int32_t r = 0; r < m; r++) {
                        const char *nx = lcx_mat_at(&g->w, o0 + i + r, k0 + kb);
                        const int64_t bytes = (g->K - k0 - kb < p->KB ? g->K - k0 - kb : p->KB) *
                                              (g->w.dt == LCX_F32 ? 4 : 2);
                        for (int64_t b = 0; b < bytes; b += 64)
                            __builtin_prefetch(nx + b, 0, 2);
                    }
                for (int64_t tg = tg0; tg < tg1; tg++)
                    kt->gemm_rows(kb, wb, ldb, LCX_F32, m, xp + tg * gstride + k0 * p->NT,
                                  cb + (tg * p->dch + i) * p->NT, p->NT, k0 == 0);
            }
        }
        if (g->bias.data)
            lcx_mat_load(kt, &g->bias, 0, o0, nc, bias);
        const int64_t t1 = tg1 * p->NT < g->T ? tg1 * p->NT : g->T;
        for (int64_t t = tg0 * p->NT; t < t1; t++) {
            const float *c = cb + (t / p->NT) * p->dch * p->NT + t % p->NT;
            for (int64_t o = 0; o < nc; o++)
                acc[o] = c[o * p->NT];
            lcx_epilogue(kt, g, t, o0, nc, acc, g->bias.data ? bias : NULL, tmp);
        }
    }
    lcx_fpenv_leave(env);
}

static size_t lcx_gemm_bytes(const lcx_gplan *p)
{
    return p->shared + (size_t)(p->workers > 0 ? p->workers : 1) * p->slot;
}

/* Scratch that g needs for any token count up to t_max (its other fields
 * set): within one path the scratch grows with the token count, so the
 * largest count each path can be chosen for bounds it. */
static size_t lcx_gemm_bytes_upto(const lcx_context *ctx, lcx_gemm *g, int64_t t_max)
{
    const int64_t kp = g->K + g->R > 0 ? g->K + g->R : 1;
    int64_t rows_max = LCX_LORA_XPACK_FLOATS / kp;
    rows_max = rows_max < LCX_LORA_ROWS_T ? rows_max : LCX_LORA_ROWS_T;
    const int64_t sizes[3] = {t_max, t_max < LCX_LORA_DOT_T ? t_max : LCX_LORA_DOT_T,
                              t_max < rows_max ? t_max : rows_max};
    size_t need = 0;
    for (int i = 0; i < 3; i++) {
        lcx_gplan p;
        g->T = sizes[i];
        lcx_gemm_plan(ctx, g, &p);
        need = lcx_gemm_bytes(&p) > need ? lcx_gemm_bytes(&p) : need;
    }
    return need;
}

/* Run a planned GEMM in scratch `mem` of lcx_gemm_bytes(p). */
static lcx_status lcx_gemm_exec(lcx_context *ctx, const lcx_gemm *g, const lcx_gplan *p, char *mem)
{
    if (g->T == 0 || g->N == 0)
        return LCX_OK;
    lcx_gemm_run run = {g, p, &ctx->kt, mem, 0, 0};
    lcx_status st;
    if (p->path == LCX_PATH_ROWS) {
        if ((st = lcx_parallel(ctx, p->workers, lcx_rows_pack_task, &run)) != LCX_OK)
            return st;
        return lcx_parallel(ctx, p->workers, lcx_rows_task, &run);
    }
    if (p->path == LCX_PATH_DOT) {
        const lcx_fpenv env = lcx_fpenv_enter();
        for (int64_t t = 0; t < g->T; t++)
            if (g->K > 0)
                lcx_mat_load(&ctx->kt, &g->x, lcx_row_of(g->xmap, t), 0, g->K, (float *)mem + t * g->K);
        lcx_fpenv_leave(env);
        return lcx_parallel(ctx, p->workers, lcx_dot_task, &run);
    }
    if (g->a.data) {
        /* A as weight panels [Rp/NR][K][NR] after the packed x */
        float *ap = (float *)(mem + lcx_fbytes(p->tch * (p->Kp > 0 ? p->Kp : 1)));
        const lcx_fpenv env = lcx_fpenv_enter();
        for (int64_t jr = 0; jr < p->Rp; jr += p->NR) {
            const int32_t rows = (int32_t)(g->R - jr < p->NR ? g->R - jr : p->NR);
            ctx->kt.gemm_pack(lcx_mat_at(&g->a, jr, 0), g->a.rs, g->a.cs, g->a.dt, rows, g->K, (int32_t)p->NR,
                              ap + jr * g->K);
        }
        lcx_fpenv_leave(env);
    }
    for (run.t0 = 0; run.t0 < g->T; run.t0 += p->tch) {
        run.tc = g->T - run.t0 < p->tch ? g->T - run.t0 : p->tch;
        if ((st = lcx_parallel(ctx, p->workers, lcx_pack_x_task, &run)) != LCX_OK ||
            (st = lcx_parallel(ctx, p->workers, lcx_gemm_task, &run)) != LCX_OK)
            return st;
    }
    return LCX_OK;
}

/* ---- validation ---- */

/* The LoRA ops take views with any inner stride (a weight stored [in][out]
 * is a transposed view of W): validated as the same view with a trailing
 * dimension of one element, which the shared routine accepts. */
static lcx_status lcx_check_view(const char *op, const lcx_tensor *t, const char *name, int nd, int writable)
{
    char what[64];
    snprintf(what, sizeof what, "%s: %s", op, name);
    if (!t || t->ndim != nd) {
        if (!t)
            return lcx_tensor_validate(t, what, writable);
        return lcx_fail(LCX_E_INVALID, "%s must be %d-D, got ndim %d", what, nd, (int)t->ndim);
    }
    lcx_tensor e = *t;
    e.ndim = nd + 1;
    e.shape[nd] = 1;
    e.stride[nd] = 1;
    return lcx_tensor_validate(&e, what, writable);
}

static lcx_status lcx_check_mat(const char *op, const lcx_tensor *t, const char *name, int writable)
{
    return lcx_check_view(op, t, name, 2, writable);
}

/* A [rank][in] and B [out][rank] of one adapter against in and out. */
static lcx_status lcx_check_ab(const char *op, const lcx_tensor *a, const char *an, const lcx_tensor *b,
                               const char *bn, int64_t in, int64_t out, float scale, const lcx_tensor *y)
{
    lcx_status st;
    if ((st = lcx_check_mat(op, a, an, 0)) != LCX_OK || (st = lcx_check_mat(op, b, bn, 0)) != LCX_OK)
        return st;
    if (a->shape[0] == 0 || b->shape[1] == 0)
        return lcx_fail(LCX_E_INVALID, "%s: rank 0 (%s is [%lld][%lld], %s is [%lld][%lld])", op, an,
                        (long long)a->shape[0], (long long)a->shape[1], bn, (long long)b->shape[0],
                        (long long)b->shape[1]);
    if (a->shape[1] != in)
        return lcx_fail(LCX_E_INVALID, "%s: %s has %lld columns, the input has %lld features", op, an,
                        (long long)a->shape[1], (long long)in);
    if (b->shape[0] != out)
        return lcx_fail(LCX_E_INVALID, "%s: %s has %lld rows, the output has %lld features", op, bn,
                        (long long)b->shape[0], (long long)out);
    if (b->shape[1] != a->shape[0])
        return lcx_fail(LCX_E_INVALID, "%s: rank mismatch: %s has %lld rows, %s has %lld columns", op, an,
                        (long long)a->shape[0], bn, (long long)b->shape[1]);
    if (!isfinite(scale))
        return lcx_fail(LCX_E_INVALID, "%s: scale %g is not finite", op, (double)scale);
    if (y && (!lcx_views_disjoint(y, a) || !lcx_views_disjoint(y, b)))
        return lcx_fail(LCX_E_INVALID, "%s: the output overlaps %s or %s", op, an, bn);
    return LCX_OK;
}

/* After validation: the device has no kernel (CPU and CUDA contexts are
 * served; this is for devices a later version may add) */
static lcx_status lcx_no_device_kernel(const char *op)
{
    return lcx_fail(LCX_E_UNSUPPORTED, "%s: no kernel for this device", op);
}

/* Tokens grouped by adapter (counting sort, token order kept inside a
 * group): idx[start[i] .. start[i + 1]) are adapter i's tokens; cursor is
 * n scratch entries. */
static void lcx_group_tokens(int64_t T, int32_t n, const int32_t *map, int32_t *start, int32_t *cursor, int32_t *idx)
{
    memset(start, 0, ((size_t)n + 1) * sizeof(int32_t));
    for (int64_t t = 0; t < T; t++)
        if (map[t] >= 0)
            start[map[t] + 1]++;
    for (int32_t i = 0; i < n; i++) {
        start[i + 1] += start[i];
        cursor[i] = start[i];
    }
    for (int64_t t = 0; t < T; t++)
        if (map[t] >= 0)
            idx[cursor[map[t]]++] = (int32_t)t;
}

/* ---- public ops ---- */

lcx_status lcx_lora_linear(lcx_context *ctx, const lcx_tensor *x, const lcx_tensor *w, const lcx_tensor *bias,
                           const lcx_tensor *a, const lcx_tensor *b, float scale, const lcx_tensor *y, int accumulate)
{
    static const char op[] = "lora_linear";
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK || (st = lcx_check_mat(op, x, "x", 0)) != LCX_OK ||
        (st = lcx_check_mat(op, y, "y", 1)) != LCX_OK)
        return st;
    const int64_t T = x->shape[0], in = x->shape[1], out = y->shape[1];
    if (y->shape[0] != T)
        return lcx_fail(LCX_E_INVALID, "%s: x has %lld tokens, y has %lld", op, (long long)T,
                        (long long)y->shape[0]);
    if (!lcx_views_disjoint(y, x))
        return lcx_fail(LCX_E_INVALID, "%s: y overlaps x", op);
    if (w) {
        if ((st = lcx_check_mat(op, w, "w", 0)) != LCX_OK)
            return st;
        if (w->shape[0] != out || w->shape[1] != in)
            return lcx_fail(LCX_E_INVALID, "%s: w is [%lld][%lld], expected [out %lld][in %lld]", op,
                            (long long)w->shape[0], (long long)w->shape[1], (long long)out, (long long)in);
        if (!lcx_views_disjoint(y, w))
            return lcx_fail(LCX_E_INVALID, "%s: y overlaps w", op);
    }
    if (bias) {
        if ((st = lcx_check_view(op, bias, "bias", 1, 0)) != LCX_OK)
            return st;
        if (bias->shape[0] != out)
            return lcx_fail(LCX_E_INVALID, "%s: bias must be 1-D of the %lld outputs", op, (long long)out);
        if (!lcx_views_disjoint(y, bias))
            return lcx_fail(LCX_E_INVALID, "%s: y overlaps bias", op);
    }
    if ((a == NULL) != (b == NULL))
        return lcx_fail(LCX_E_INVALID, "%s: a and b must both be given or both be NULL", op);
    if (a && (st = lcx_check_ab(op, a, "a", b, "b", in, out, scale, y)) != LCX_OK)
        return st;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_lora_linear(ctx->cuda, x, w, bias, a, b, scale, y, accumulate);
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_no_device_kernel(op);

    const int64_t R = a ? a->shape[0] : 0;
    lcx_gemm main_g = {0}, u_g = {0};
    main_g.x = lcx_mat_of(x);
    main_g.w = lcx_mat_of(w);
    main_g.bias = lcx_mat_of(bias);
    main_g.y = lcx_mat_of(y);
    main_g.alpha = 1.0f;
    main_g.accumulate = accumulate != 0;
    main_g.T = T, main_g.N = out, main_g.K = w ? in : 0, main_g.R = R;
    lcx_gplan mp, up;
    size_t ubytes = 0, need;
    if (R > 0) {
        /* u = scale * x A^T, f32 [T][R] ahead of the engine's scratch */
        u_g.x = main_g.x;
        u_g.w = lcx_mat_of(a);
        u_g.alpha = scale;
        u_g.T = T, u_g.N = R, u_g.K = in;
        ubytes = lcx_fbytes(T * R);
        lcx_gemm_plan(ctx, &u_g, &up);
        main_g.b = lcx_mat_of(b);
    }
    lcx_gemm_plan(ctx, &main_g, &mp);
    if (R > 0 && w && mp.path == LCX_PATH_PACKED) {
        /* the packed path forms u from its own packed x (whose reduction
         * is x's features only when W is there: without W, u = s x A^T
         * runs as its own GEMM like on the other paths) */
        main_g.a = lcx_mat_of(a);
        main_g.ascale = scale;
        lcx_gemm_plan(ctx, &main_g, &mp);
        ubytes = 0;
    }
    need = lcx_gemm_bytes(&mp);
    if (R > 0 && !main_g.a.data && lcx_gemm_bytes(&up) > need)
        need = lcx_gemm_bytes(&up);
    void *mem;
    if ((st = lcx_scratch(ctx, ubytes + need, &mem)) != LCX_OK)
        return st;
    if (R > 0 && !main_g.a.data) {
        float *u = mem;
        u_g.y = lcx_mat_dense(u, T, R);
        main_g.u = lcx_mat_dense(u, T, R);
        if ((st = lcx_gemm_exec(ctx, &u_g, &up, (char *)mem + ubytes)) != LCX_OK)
            return st;
    }
    return lcx_gemm_exec(ctx, &main_g, &mp, (char *)mem + ubytes);
}

lcx_status lcx_lora_batched(lcx_context *ctx, const lcx_tensor *x, const lcx_lora_adapter *adapters,
                            int32_t n_adapters, const int32_t *adapter_of_token, const lcx_tensor *y)
{
    static const char op[] = "lora_batched";
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK || (st = lcx_check_mat(op, x, "x", 0)) != LCX_OK ||
        (st = lcx_check_mat(op, y, "y", 1)) != LCX_OK)
        return st;
    const int64_t T = x->shape[0], in = x->shape[1], out = y->shape[1];
    if (y->shape[0] != T)
        return lcx_fail(LCX_E_INVALID, "%s: x has %lld tokens, y has %lld", op, (long long)T,
                        (long long)y->shape[0]);
    if (!lcx_views_disjoint(y, x))
        return lcx_fail(LCX_E_INVALID, "%s: y overlaps x", op);
    if (n_adapters < 0 || (n_adapters > 0 && !adapters))
        return lcx_fail(LCX_E_INVALID, "%s: %d adapters at %p", op, (int)n_adapters, (const void *)adapters);
    if (T > 0 && !adapter_of_token)
        return lcx_fail(LCX_E_INVALID, "%s: adapter_of_token is NULL", op);
    if (T > INT32_MAX)
        return lcx_fail(LCX_E_INVALID, "%s: %lld tokens exceed the index range", op, (long long)T);
    for (int32_t i = 0; i < n_adapters; i++) {
        char an[32], bn[32];
        snprintf(an, sizeof an, "adapters[%d].a", (int)i);
        snprintf(bn, sizeof bn, "adapters[%d].b", (int)i);
        if ((st = lcx_check_ab(op, &adapters[i].a, an, &adapters[i].b, bn, in, out, adapters[i].scale, y)) !=
            LCX_OK)
            return st;
    }
    for (int64_t t = 0; t < T; t++)
        if (adapter_of_token[t] < -1 || adapter_of_token[t] >= n_adapters)
            return lcx_fail(LCX_E_INVALID, "%s: token %lld has adapter %d, outside -1..%d", op, (long long)t,
                            (int)adapter_of_token[t], (int)n_adapters - 1);
    if (T == 0 || n_adapters == 0 || out == 0)
        return LCX_OK;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA) {
        /* grouped here, uploaded by the backend */
        void *gmem;
        if ((st = lcx_scratch(ctx, ((size_t)T + 2 * (size_t)n_adapters + 1) * sizeof(int32_t), &gmem)) != LCX_OK)
            return st;
        int32_t *start = gmem, *cursor = start + n_adapters + 1, *idx = cursor + n_adapters;
        lcx_group_tokens(T, n_adapters, adapter_of_token, start, cursor, idx);
        return lcx_cuda_lora_batched(ctx->cuda, x, adapters, n_adapters, idx, start, y);
    }
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_no_device_kernel(op);

    /* tokens grouped by adapter (counting sort, token order kept inside a
     * group). Scratch is sized before the counts are known: within one
     * path the engine's scratch grows with the token count, so the largest
     * group size each path can see (T, or the path's upper limit) bounds
     * it. */
    int64_t max_r = 0;
    size_t need = 0;
    for (int32_t i = 0; i < n_adapters; i++) {
        const int64_t R = adapters[i].a.shape[0];
        max_r = R > max_r ? R : max_r;
        lcx_gemm ug = {0}, dg = {0};
        ug.N = R, ug.K = in;
        ug.x = lcx_mat_of(x);
        ug.w = lcx_mat_of(&adapters[i].a);
        dg.N = out, dg.R = R;
        dg.b = lcx_mat_of(&adapters[i].b);
        const size_t bu = lcx_gemm_bytes_upto(ctx, &ug, T), bd = lcx_gemm_bytes_upto(ctx, &dg, T);
        need = bu > need ? bu : need;
        need = bd > need ? bd : need;
    }
    const size_t idx_bytes = (((size_t)T + 2 * (size_t)n_adapters + 1) * sizeof(int32_t) + 63) & ~(size_t)63;
    const size_t ubytes = lcx_fbytes(T * max_r);
    void *mem;
    if ((st = lcx_scratch(ctx, idx_bytes + ubytes + need, &mem)) != LCX_OK)
        return st;
    int32_t *start = mem, *cursor = start + n_adapters + 1, *idx = cursor + n_adapters;
    lcx_group_tokens(T, n_adapters, adapter_of_token, start, cursor, idx);
    float *u = (float *)((char *)mem + idx_bytes);
    char *gmem = (char *)mem + idx_bytes + ubytes;
    for (int32_t i = 0; i < n_adapters; i++) {
        const int64_t n = start[i + 1] - start[i], R = adapters[i].a.shape[0];
        if (n == 0)
            continue;
        /* u = s_i x[idx] A_i^T, then y[idx] += u B_i^T */
        lcx_gemm ug = {0}, dg = {0};
        lcx_gplan gp;
        ug.x = lcx_mat_of(x);
        ug.w = lcx_mat_of(&adapters[i].a);
        ug.y = lcx_mat_dense(u, n, R);
        ug.xmap = idx + start[i];
        ug.alpha = adapters[i].scale;
        ug.T = n, ug.N = R, ug.K = in;
        lcx_gemm_plan(ctx, &ug, &gp);
        if ((st = lcx_gemm_exec(ctx, &ug, &gp, gmem)) != LCX_OK)
            return st;
        dg.u = lcx_mat_dense(u, n, R);
        dg.b = lcx_mat_of(&adapters[i].b);
        dg.y = lcx_mat_of(y);
        dg.ymap = idx + start[i];
        dg.alpha = 1.0f;
        dg.accumulate = 1;
        dg.T = n, dg.N = out, dg.R = R;
        lcx_gemm_plan(ctx, &dg, &gp);
        if ((st = lcx_gemm_exec(ctx, &dg, &gp, gmem)) != LCX_OK)
            return st;
    }
    return LCX_OK;
}

lcx_status lcx_lora_merge(lcx_context *ctx, const lcx_tensor *w, const lcx_tensor *a, const lcx_tensor *b,
                          float scale)
{
    static const char op[] = "lora_merge";
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, op)) != LCX_OK || (st = lcx_check_mat(op, w, "w", 1)) != LCX_OK ||
        (st = lcx_check_ab(op, a, "a", b, "b", w->shape[1], w->shape[0], scale, w)) != LCX_OK)
        return st;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_lora_merge(ctx->cuda, w, a, b, scale);
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_no_device_kernel(op);
    /* W[o][i] += scale * sum_r B[o][r] A[r][i]: the engine with x = B
     * (rows o, reduction r) against A^T (rows i, reduction r) */
    lcx_gemm g = {0};
    g.x = lcx_mat_of(b);
    const lcx_mat am = lcx_mat_of(a);
    g.w = (lcx_mat){am.data, am.dt, am.cols, am.rows, am.cs, am.rs};
    g.y = lcx_mat_of(w);
    g.alpha = scale;
    g.accumulate = 1;
    g.T = w->shape[0], g.N = w->shape[1], g.K = a->shape[0];
    lcx_gplan p;
    lcx_gemm_plan(ctx, &g, &p);
    void *mem;
    if ((st = lcx_scratch(ctx, lcx_gemm_bytes(&p), &mem)) != LCX_OK)
        return st;
    return lcx_gemm_exec(ctx, &g, &p, mem);
}
