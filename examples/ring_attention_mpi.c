/* longctx-ring-attention: context-parallel (ring) causal attention over MPI.
 *
 * The sequence (T tokens, q 8 heads, k/v 2 heads, GQA, head dim 128, f32) is
 * cut into chunks spread over the P ranks. Each rank keeps its queries and
 * sends its keys and values around the ring: in step s it computes its
 * queries against the KV chunks of rank (rank - s) mod P while that packet is
 * already on its way to the next rank and the next one is arriving
 * (MPI_Isend / MPI_Irecv posted before the compute, MPI_Testall between
 * blocks to drive progress, MPI_Waitall after). For a (query chunk a, key
 * chunk b) pair of the causal sequence:
 *   b < a  every key precedes every query: non-causal attention;
 *   b == a the diagonal block: causal; lcx_attention_forward's causal mask is
 *          bottom-right aligned (query i sees keys j <= seq_k - seq_q + i),
 *          which for a square block is exactly j <= i;
 *   b > a  every key follows every query: skipped.
 * Each partial result comes with its log-sum-exp, and lcx_attention_merge
 * combines it exactly with what the rank has so far. The layout is zigzag by
 * default (2P chunks, rank r holds chunks r and 2P-1-r, so every rank gets
 * the same causal work) or contiguous (rank r holds chunk r; the last rank
 * then does 2P - 1 times the work of the first).
 *
 * Rank 0 gathers the outputs and LSEs and compares them with one
 * lcx_attention_forward over the whole sequence. Tolerance, a worst-case
 * f32 bound (u = 2^-24, S = scale * max|q| * max|k| with |.| the 2-norm of a
 * head vector, n = ceil(T/64) key tiles, M = merges per row): scores differ
 * from exact by at most Delta = (D + 2) u S (dot product of D terms, the
 * scale and a change of exponent base); each exponential and each rescale
 * by a running maximum or merge weight adds 2u relative (1-ulp expf); the
 * f32 sums over a row add (64 + n) u relative. The normalised weights are
 * then off by at most 2 Delta + 4u (n + 2 + 2M) relative, so an output by
 * that times max|v|, plus 2 (64 + n) u max|v| for the sums:
 *   E_out = max|v| (2 Delta + 4u (n + 2 + 2M) + 2u (64 + n) + u)
 *   E_lse = Delta + 2u (n + 2 + 2M) + (64 + n) u + u max|lse|
 * for each of the two computations; the check allows twice that. Exit 1 on
 * a mismatch (every rank).
 *
 *   mpirun -n P longctx-ring-attention [tokens] [--contiguous] [--full] [--threads N] [--no-check]
 *   defaults: 4096 tokens, zigzag, causal, threads = cores / ranks on the node;
 *   --no-check skips the gather and the single-process reference (whose
 *   O(T^2) time on one rank does not scale) */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#endif
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <longctx/longctx.h>

enum { HQ = 8, HKV = 2, D = 128 };

static float input(uint64_t salt, uint64_t i)
{
    uint64_t z = i + salt * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(int32_t)(uint32_t)(z >> 32) * (1.0f / 2147483648.0f);
}

#define CHECK(call)                                                                                 \
    do {                                                                                            \
        lcx_status st_ = (call);                                                                    \
        if (st_ != LCX_OK) {                                                                        \
            fprintf(stderr, "rank %d: %s:%d: %s: %s: %s\n", g_rank, __FILE__, __LINE__, #call,       \
                    lcx_status_string(st_), lcx_last_error());                                      \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                           \
        }                                                                                           \
    } while (0)

static int g_rank;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "rank %d: out of memory\n", g_rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

/* ---- layout: chunk c covers tokens [T c / NC, T (c + 1) / NC) ---- */
typedef struct layout {
    int64_t T;
    int P, per_rank, NC; /* ranks, chunks per rank, chunks */
} layout;

static int64_t chunk_start(const layout *l, int c)
{
    return l->T * c / l->NC;
}
static int64_t chunk_len(const layout *l, int c)
{
    return chunk_start(l, c + 1) - chunk_start(l, c);
}
/* the k-th chunk of rank r */
static int chunk_of(const layout *l, int r, int k)
{
    return l->per_rank == 1 ? r : (k == 0 ? r : 2 * l->P - 1 - r);
}
static int64_t rank_tokens(const layout *l, int r)
{
    int64_t n = 0;
    for (int k = 0; k < l->per_rank; k++)
        n += chunk_len(l, chunk_of(l, r, k));
    return n;
}

/* q [tok][HQ][D], k and v [tok][HKV][D] of global tokens [t0, t0 + n) */
static void fill(float *q, float *k, float *v, int64_t t0, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        const uint64_t g = (uint64_t)(t0 + t);
        if (q)
            for (int i = 0; i < HQ * D; i++)
                q[t * HQ * D + i] = 3.0f * input(1, g * HQ * D + (uint64_t)i);
        for (int i = 0; i < HKV * D; i++) {
            k[t * HKV * D + i] = input(2, g * HKV * D + (uint64_t)i);
            v[t * HKV * D + i] = input(3, g * HKV * D + (uint64_t)i);
        }
    }
}

static lcx_tensor view(float *p, int64_t seq, int64_t heads)
{
    lcx_tensor t;
    const int64_t shape[4] = {1, seq, heads, D};
    lcx_tensor_init(&t, p, LCX_F32, 4, shape);
    return t;
}

/* Rank 0: one lcx_attention_forward over the whole sequence, compared with
 * the gathered ring result (g_out, g_lse in rank order at displ, displ_l).
 * Returns 1 on a mismatch. */
static int check_against_single(lcx_context *ctx, const layout *lay, const lcx_attention_params *ap,
                                const float *g_out, const float *g_lse, const int *displ, const int *displ_l,
                                double flops)
{
    const int64_t T = lay->T;
    float *fq = xmalloc((size_t)(T * HQ * D) * sizeof *fq), *fk = xmalloc((size_t)(T * HKV * D) * sizeof *fk);
    float *fv = xmalloc((size_t)(T * HKV * D) * sizeof *fv), *ro = xmalloc((size_t)(T * HQ * D) * sizeof *ro);
    float *rl = xmalloc((size_t)(T * HQ) * sizeof *rl);
    fill(fq, fk, fv, 0, T);
    lcx_tensor tq = view(fq, T, HQ), tk = view(fk, T, HKV), tv = view(fv, T, HKV), to = view(ro, T, HQ);
    const double tr = MPI_Wtime();
    CHECK(lcx_attention_forward(ctx, ap, &tq, &tk, &tv, &to, rl));
    const double t_ref = MPI_Wtime() - tr;

    /* compare chunk by chunk */
    double e_out = 0, e_lse = 0, vmax = 0, lmax = 0, qn = 0, kn = 0;
    for (int r = 0; r < lay->P; r++)
        for (int k = 0, off = 0; k < lay->per_rank; k++) {
            const int c = chunk_of(lay, r, k);
            const int64_t c0 = chunk_start(lay, c), nc = chunk_len(lay, c);
            const float *o = g_out + displ[r] + (int64_t)off * HQ * D, *l = g_lse + displ_l[r] + (int64_t)off * HQ;
            for (int64_t i = 0; i < nc * HQ * D; i++) {
                const double d = fabs((double)o[i] - (double)ro[c0 * HQ * D + i]);
                e_out = d > e_out || d != d ? (d != d ? INFINITY : d) : e_out;
            }
            for (int h = 0; h < HQ; h++)
                for (int64_t i = 0; i < nc; i++) {
                    const double a = l[h * nc + i], b = rl[h * T + c0 + i];
                    const double d = a == b ? 0 : fabs(a - b); /* -inf == -inf */
                    e_lse = d > e_lse || d != d ? (d != d ? INFINITY : d) : e_lse;
                    lmax = fmax(lmax, fabs(b));
                }
            off += (int)nc;
        }
    for (int64_t t = 0; t < T; t++) {
        for (int h = 0; h < HQ; h++) {
            double s = 0;
            for (int c = 0; c < D; c++)
                s += (double)fq[(t * HQ + h) * D + c] * fq[(t * HQ + h) * D + c];
            qn = fmax(qn, sqrt(s));
        }
        for (int h = 0; h < HKV; h++) {
            double s = 0;
            for (int c = 0; c < D; c++) {
                s += (double)fk[(t * HKV + h) * D + c] * fk[(t * HKV + h) * D + c];
                vmax = fmax(vmax, fabs(fv[(t * HKV + h) * D + c]));
            }
            kn = fmax(kn, sqrt(s));
        }
    }
    /* the bound of the header comment, twice (ring and reference) */
    const double u = 0x1p-24, S = qn * kn / sqrt((double)D), n = ceil((double)T / 64);
    const double M = (double)(lay->per_rank * lay->per_rank * lay->P); /* merges per row, at most */
    const double delta = (D + 2) * u * S;
    const double tol_out = 2 * vmax * (2 * delta + 4 * u * (n + 2 + 2 * M) + 2 * u * (64 + n) + u);
    const double tol_lse = 2 * (delta + 2 * u * (n + 2 + 2 * M) + (64 + n) * u + u * lmax);
    printf("single call, whole sequence on rank 0 (%d thread(s)): %.2f ms, %.1f GFLOP/s\n",
           lcx_context_n_threads(ctx), t_ref * 1e3, flops / t_ref * 1e-9);
    printf("check: max |out - single| = %.3e (bound %.3e), max |lse - single| = %.3e (bound %.3e)\n", e_out,
           tol_out, e_lse, tol_lse);
    printf("       (f32 bound: u = 2^-24, max|q| %.2f, max|k| %.2f, max|v| %.2f, max|lse| %.2f, %g key tiles, "
           "<= %g merges)\n", qn, kn, vmax, lmax, n, M);
    const int fail = !(e_out <= tol_out) || !(e_lse <= tol_lse);
    printf("%s\n", fail ? "FAILED" : "OK");
    free(fq);
    free(fk);
    free(fv);
    free(ro);
    free(rl);
    return fail;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int P;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const int rank = g_rank;

    int64_t T = 4096;
    int contiguous = 0, causal = 1, threads = -1, check = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--contiguous") == 0)
            contiguous = 1;
        else if (strcmp(argv[i], "--full") == 0)
            causal = 0;
        else if (strcmp(argv[i], "--no-check") == 0)
            check = 0;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            T = atoll(argv[i]);
        else
            T = -1;
    }
    layout lay = {T, P, contiguous ? 1 : 2, contiguous ? P : 2 * P};
    if (T < lay.NC || T > (1LL << 24) || threads < -1) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -n P longctx-ring-attention [tokens >= chunks] [--contiguous] [--full] "
                            "[--threads N] [--no-check]\n");
        MPI_Finalize();
        return 2;
    }

    /* threads: the node's physical cores shared by the ranks on it */
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    int local_ranks;
    MPI_Comm_size(node, &local_ranks);
    MPI_Comm_free(&node);
    lcx_context *ctx;
    lcx_context_options opt;
    lcx_context_options_default(&opt);
    if (threads < 0) {
        opt.n_threads = 1;
        CHECK(lcx_context_create(&opt, &ctx));
        lcx_context_info info;
        lcx_context_info_default(&info);
        CHECK(lcx_context_get_info(ctx, &info));
        lcx_context_destroy(ctx);
        threads = info.n_cores / local_ranks > 1 ? info.n_cores / local_ranks : 1;
    }
    opt.n_threads = threads;
    CHECK(lcx_context_create(&opt, &ctx));

    /* this rank's queries and its KV packet: k of its chunks, then v */
    const int64_t n_loc = rank_tokens(&lay, rank);
    int64_t n_max = 0;
    for (int r = 0; r < P; r++)
        n_max = rank_tokens(&lay, r) > n_max ? rank_tokens(&lay, r) : n_max;
    float *q = xmalloc((size_t)(n_loc * HQ * D) * sizeof *q);
    float *pkt[2];
    pkt[0] = xmalloc((size_t)(2 * n_max * HKV * D) * sizeof(float));
    pkt[1] = xmalloc((size_t)(2 * n_max * HKV * D) * sizeof(float));
    for (int k = 0, off = 0; k < lay.per_rank; k++) {
        const int c = chunk_of(&lay, rank, k);
        fill(q + off * HQ * D, pkt[0] + off * HKV * D, pkt[0] + (n_loc + off) * HKV * D, chunk_start(&lay, c),
             chunk_len(&lay, c));
        off += (int)chunk_len(&lay, c);
    }
    /* per local query chunk: running output and LSE, and a partial result */
    float *out = xmalloc((size_t)(n_loc * HQ * D) * sizeof *out);
    float *lse = xmalloc((size_t)(HQ * n_loc) * sizeof *lse);
    float *part = xmalloc((size_t)(n_loc * HQ * D) * sizeof *part);
    float *plse = xmalloc((size_t)(HQ * n_loc) * sizeof *plse);
    int have[2] = {0, 0};
    lcx_attention_params full, diag;
    lcx_attention_params_default(&full);
    lcx_attention_params_default(&diag);
    diag.causal = causal;

    double t_compute = 0, t_wait = 0;
    int64_t n_full = 0, n_diag = 0, n_skip = 0, n_merge = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    int cur = 0;
    const int right = (rank + 1) % P, left = (rank + P - 1) % P;
    for (int s = 0; s < P; s++) {
        const int owner = (rank - s + P) % P, next_owner = (rank - s - 1 + 2 * P) % P;
        const int64_t n_own = rank_tokens(&lay, owner);
        MPI_Request req[2];
        int nreq = 0;
        if (s < P - 1) {
            MPI_Irecv(pkt[cur ^ 1], (int)(2 * rank_tokens(&lay, next_owner) * HKV * D), MPI_FLOAT, left, s,
                      MPI_COMM_WORLD, &req[nreq++]);
            MPI_Isend(pkt[cur], (int)(2 * n_own * HKV * D), MPI_FLOAT, right, s, MPI_COMM_WORLD, &req[nreq++]);
        }
        const double tc = MPI_Wtime();
        for (int a = 0, qoff = 0; a < lay.per_rank; qoff += (int)chunk_len(&lay, chunk_of(&lay, rank, a)), a++) {
            const int ca = chunk_of(&lay, rank, a);
            const int64_t na = chunk_len(&lay, ca);
            for (int b = 0, koff = 0; b < lay.per_rank; koff += (int)chunk_len(&lay, chunk_of(&lay, owner, b)), b++) {
                const int cb = chunk_of(&lay, owner, b);
                const int64_t nb = chunk_len(&lay, cb);
                if (causal && cb > ca) {
                    n_skip++;
                    continue;
                }
                const lcx_attention_params *ap = cb == ca ? &diag : &full;
                n_diag += cb == ca;
                n_full += cb != ca;
                lcx_tensor tq = view(q + qoff * HQ * D, na, HQ);
                lcx_tensor tk = view(pkt[cur] + koff * HKV * D, nb, HKV);
                lcx_tensor tv = view(pkt[cur] + (n_own + koff) * HKV * D, nb, HKV);
                lcx_tensor to = view(out + qoff * HQ * D, na, HQ);
                float *l = lse + qoff * HQ;
                if (!have[a]) { /* the first partial result is the running one */
                    CHECK(lcx_attention_forward(ctx, ap, &tq, &tk, &tv, &to, l));
                    have[a] = 1;
                } else {
                    lcx_tensor tp = view(part + qoff * HQ * D, na, HQ);
                    float *pl = plse + qoff * HQ;
                    CHECK(lcx_attention_forward(ctx, ap, &tq, &tk, &tv, &tp, pl));
                    CHECK(lcx_attention_merge(ctx, &to, l, &tp, pl, &to, l));
                    n_merge++;
                }
                if (nreq) { /* let the transfer progress between blocks */
                    int done;
                    MPI_Testall(nreq, req, &done, MPI_STATUSES_IGNORE);
                }
            }
        }
        const double tw = MPI_Wtime();
        t_compute += tw - tc;
        if (nreq)
            MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE);
        t_wait += MPI_Wtime() - tw;
        cur ^= 1;
    }
    const double t_ring = MPI_Wtime() - t0;

    /* per-rank figures to rank 0 */
    double stats[6] = {t_compute, t_wait, t_ring, (double)n_full, (double)n_diag, (double)n_skip};
    double *all_stats = rank == 0 ? xmalloc((size_t)P * sizeof stats) : NULL;
    MPI_Gather(stats, 6, MPI_DOUBLE, all_stats, 6, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    const double flops = (causal ? 2.0 : 4.0) * (double)T * (double)T * HQ * D;
    if (rank == 0) {
        double max_ring = 0, max_comp = 0, sum_comp = 0;
        printf("longctx-ring-attention: %d ranks, %lld tokens, q %d / kv %d heads x %d, f32, %s, %s layout "
               "(%d chunks), %s on %d thread(s) per rank\n", P, (long long)T, HQ, HKV, D,
               causal ? "causal" : "non-causal", contiguous ? "contiguous" : "zigzag", lay.NC,
               lcx_context_isa_name(ctx), lcx_context_n_threads(ctx));
        printf("KV packet: up to %.2f MB per rank per step, %d steps\n",
               2.0 * (double)n_max * HKV * D * sizeof(float) / 1e6, P);
        for (int r = 0; r < P; r++) {
            const double *st = all_stats + 6 * r;
            printf("  rank %d: chunks", r);
            for (int k = 0; k < lay.per_rank; k++) {
                const int c = chunk_of(&lay, r, k);
                printf(" %d [%lld, %lld)", c, (long long)chunk_start(&lay, c),
                       (long long)(chunk_start(&lay, c) + chunk_len(&lay, c)));
            }
            printf("; blocks %.0f off-diagonal + %.0f diagonal, %.0f skipped; compute %.2f ms, waiting %.2f ms\n",
                   st[3], st[4], st[5], st[0] * 1e3, st[1] * 1e3);
            max_ring = fmax(max_ring, st[2]);
            max_comp = fmax(max_comp, st[0]);
            sum_comp += st[0];
        }
        printf("ring: %.2f ms (slowest rank), %.1f GFLOP/s in all; load balance (mean / max compute) %.2f\n",
               max_ring * 1e3, flops / max_ring * 1e-9, sum_comp / P / max_comp);
        free(all_stats);
    }

    int fail = 0;
    if (check) {
        /* rank 0 gathers outputs and LSEs in rank order (each rank's chunks
         * one after the other) */
        int *cnt = xmalloc((size_t)P * sizeof *cnt), *displ = xmalloc((size_t)P * sizeof *displ);
        int *cnt_l = xmalloc((size_t)P * sizeof *cnt_l), *displ_l = xmalloc((size_t)P * sizeof *displ_l);
        for (int r = 0, o = 0, ol = 0; r < P; r++) {
            cnt[r] = (int)(rank_tokens(&lay, r) * HQ * D);
            cnt_l[r] = (int)(rank_tokens(&lay, r) * HQ);
            displ[r] = o;
            displ_l[r] = ol;
            o += cnt[r];
            ol += cnt_l[r];
        }
        float *g_out = NULL, *g_lse = NULL;
        if (rank == 0) {
            g_out = xmalloc((size_t)(T * HQ * D) * sizeof *g_out);
            g_lse = xmalloc((size_t)(T * HQ) * sizeof *g_lse);
        }
        MPI_Gatherv(out, cnt[rank], MPI_FLOAT, g_out, cnt, displ, MPI_FLOAT, 0, MPI_COMM_WORLD);
        MPI_Gatherv(lse, cnt_l[rank], MPI_FLOAT, g_lse, cnt_l, displ_l, MPI_FLOAT, 0, MPI_COMM_WORLD);
        if (rank == 0)
            fail = check_against_single(ctx, &lay, &diag, g_out, g_lse, displ, displ_l, flops);
        free(g_out);
        free(g_lse);
        free(cnt);
        free(displ);
        free(cnt_l);
        free(displ_l);
    }
    /* the verdict to every rank; the others sleep meanwhile instead of
     * spinning in MPI, so the reference on rank 0 gets the node's cores */
    MPI_Request breq;
    MPI_Ibcast(&fail, 1, MPI_INT, 0, MPI_COMM_WORLD, &breq);
    for (int done = 0;;) {
        MPI_Test(&breq, &done, MPI_STATUS_IGNORE);
        if (done)
            break;
        const struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }

    free(q);
    free(pkt[0]);
    free(pkt[1]);
    free(out);
    free(lse);
    free(part);
    free(plse);
    lcx_context_destroy(ctx);
    MPI_Finalize();
    return fail;
}
