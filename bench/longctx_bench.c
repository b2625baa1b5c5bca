/*
 * longctx-bench: times longctx ops per ISA, thread count and dtype, next to
 * the machine's ceilings measured in the same run:
 *   - memory copy bandwidth (bytes read + written per second, per thread
 *     count): the better of memcpy and a plain streaming loop
 *   - f32 FMA peak (each ISA's register-resident FMA chains, per thread count)
 * Each figure is the median of --reps timed runs after two warm-ups, with the
 * slowest and fastest run beside it. A ceiling is an upper bound, so it is
 * taken from the fastest run; ops are reported by their median and as a
 * fraction of the ceiling at the same thread count.
 *
 *   longctx-bench [--json FILE] [--isa LIST] [--threads LIST] [--mb N]
 *                 [--reps N] [--seq LIST] [--tokens LIST] [--rank LIST] [--dtype LIST] [--quick]
 *                 [ceilings|convert|merge|logprobs|rope|attention|s2attn|lora ...]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/lcx_internal.h"
#if defined(LCX_BENCH_CUDA)
#include "bench_cuda.h"
#endif
#if defined(LCX_BENCH_OPENBLAS)
#include <cblas.h>
#endif

typedef struct bench_opts {
    const char *json;
    int isas[8], n_isas;
    int threads[16], n_threads;
    double mb;          /* working-set size of streaming benchmarks, MiB */
    int reps;
    int want_ceilings, want_convert, want_rope, want_merge, want_logprobs, want_attention, want_s2, want_lora;
    int64_t seqs[8];
    int n_seqs;
    int quick;
    const char *shape;   /* rope: only this shape (NULL = all) */
    int isa_named;       /* --isa gave a list (not all / best) */
    int64_t tokens[8];   /* lora: token counts (0 entries = the defaults) */
    int n_tokens;
    int ranks[8];        /* lora: adapter ranks */
    int n_ranks;
    int lora_dtypes;     /* lora: bit mask of LORA_F32.. (0 = f32 and bf16w) */
} bench_opts;

typedef struct stats { double med, min, max; } stats;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(void *arg);

/* warm-up twice, then `reps` timed runs */
static stats time_it(bench_fn fn, void *arg, int reps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    /* a run of 2 s or more is its own sample: first-touch and pool start-up
     * are noise at that size, and long-context cases would otherwise take
     * (2 + reps) times as long */
    const double w0 = now_s();
    fn(arg);
    const double w = now_s() - w0;
    if (w >= 2.0)
        return (stats){w, w, w};
    fn(arg);
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        fn(arg);
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    return (stats){t[reps / 2], t[0], t[reps - 1]};
}

/* Two calls timed in alternation (a, b, a, b, ...) after a warm-up of each,
 * so drifts of a shared machine hit both alike; their ratio is what the
 * caller reports. */
static void time_pair(bench_fn fa, void *a, bench_fn fb, void *b, int reps, stats *sa, stats *sb)
{
    double ta[64], tb[64];
    if (reps > 64)
        reps = 64;
    fa(a);
    fb(b);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        fa(a);
        ta[r] = now_s() - t0;
        t0 = now_s();
        fb(b);
        tb[r] = now_s() - t0;
    }
    qsort(ta, (size_t)reps, sizeof *ta, cmp_d);
    qsort(tb, (size_t)reps, sizeof *tb, cmp_d);
    *sa = (stats){ta[reps / 2], ta[0], ta[reps - 1]};
    *sb = (stats){tb[reps / 2], tb[0], tb[reps - 1]};
}

/* ---------------- JSON (a flat list of records) ---------------- */
static FILE *json_f;
static int json_first = 1;
static void json_rec(const char *kind, const char *name, const char *isa, const char *kernel,
                     int threads, double bytes, double flops, stats s, double ceiling_frac)
{
    if (!json_f)
        return;
    fprintf(json_f, "%s\n  {\"kind\": \"%s\", \"name\": \"%s\", \"isa\": \"%s\", \"kernel\": \"%s\", "
                    "\"threads\": %d, \"bytes\": %.0f, \"flops\": %.0f, \"median_s\": %.9g, "
                    "\"min_s\": %.9g, \"max_s\": %.9g, \"gbps\": %.4g, \"gflops\": %.4g, "
                    "\"fraction_of_ceiling\": %.4g}",
            json_first ? "" : ",", kind, name, isa, kernel, threads, bytes, flops, s.med, s.min,
            s.max, bytes > 0 ? bytes / s.med * 1e-9 : 0.0, flops > 0 ? flops / s.med * 1e-9 : 0.0,
            ceiling_frac);
    json_first = 0;
}

/* ---------------- contexts ---------------- */
static lcx_context *make_ctx(int isa, int threads)
{
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.isa = (lcx_isa)isa;
    o.n_threads = threads;
    o.pin_threads = threads > 1;
    lcx_context *ctx = NULL;
    if (lcx_context_create(&o, &ctx) != LCX_OK) {
        fprintf(stderr, "longctx-bench: context (isa %s, %d threads): %s\n", lcx_isa_name((lcx_isa)isa),
                threads, lcx_last_error());
        return NULL;
    }
    return ctx;
}

/* ---------------- ceilings ---------------- */
typedef struct copy_job {
    lcx_context *ctx;
    char *dst;
    const char *src;
    size_t bytes;
    int64_t tasks;
} copy_job;

static void copy_task(void *arg, int64_t i)
{
    copy_job *j = arg;
    const size_t lo = j->bytes * (size_t)i / (size_t)j->tasks, hi = j->bytes * (size_t)(i + 1) / (size_t)j->tasks;
    memcpy(j->dst + lo, j->src + lo, hi - lo);
}

/* the same traffic as a copy (one read, one write per word) through plain
 * vectorisable stores rather than the C library's memcpy */
static void stream_task(void *arg, int64_t i)
{
    copy_job *j = arg;
    const size_t n = j->bytes / 8;
    const size_t lo = n * (size_t)i / (size_t)j->tasks, hi = n * (size_t)(i + 1) / (size_t)j->tasks;
    const uint64_t *restrict s = (const uint64_t *)j->src;
    uint64_t *restrict d = (uint64_t *)j->dst;
    for (size_t k = lo; k < hi; k++)
        d[k] = s[k] ^ 0x5555555555555555ull;
}

static void copy_run(void *arg)
{
    copy_job *j = arg;
    lcx_parallel(j->ctx, j->tasks, copy_task, j);
}

static void stream_run(void *arg)
{
    copy_job *j = arg;
    lcx_parallel(j->ctx, j->tasks, stream_task, j);
}

typedef struct fma_job {
    lcx_context *ctx;
    int64_t iters;
    volatile float sink;
} fma_job;

static void fma_task(void *arg, int64_t i)
{
    fma_job *j = arg;
    (void)i;
    const float r = j->ctx->kt.bench_fma(j->iters, 0.999999f, 1e-7f);
    if (r == 12345.0f)
        j->sink = r;
}

static void fma_run(void *arg)
{
    fma_job *j = arg;
    lcx_parallel(j->ctx, j->ctx->n_threads, fma_task, j);
}

/* ceilings per thread count: the fastest run of the best probe */
static double copy_gbps[1025];
#define LCX_ADJ_COPY_BYTES ((size_t)64 << 20) /* per buffer: twice the L3 */
static double fma_peak[1025];

static void bench_ceilings(const bench_opts *o)
{
    const size_t bytes = (size_t)(o->mb * 1048576.0);
    char *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes);
    if (!a || !b) {
        fprintf(stderr, "longctx-bench: cannot allocate 2 x %.0f MiB\n", o->mb);
        exit(1);
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    printf("\n== ceilings ==\n%-28s %-8s %7s %10s %10s %10s\n", "probe", "isa", "threads", "median",
           "min", "max");
    for (int ti = 0; ti < o->n_threads; ti++) {
        const int t = o->threads[ti];
        lcx_context *ctx = make_ctx(LCX_ISA_SCALAR, t);
        if (!ctx)
            continue;
        copy_job j = {ctx, b, a, bytes, (int64_t)t * 4};
        const double moved = 2.0 * (double)bytes;
        const struct { const char *name, *kernel; bench_fn fn; } probes[2] = {
            {"memcpy (read+write)", "memcpy", copy_run},
            {"stream d=s^k (read+write)", "stream_xor", stream_run}};
        for (int p = 0; p < 2; p++) {
            const stats s = time_it(probes[p].fn, &j, o->reps);
            /* a ceiling is an upper bound: the fastest run of the best probe */
            const double best = moved / s.min * 1e-9;
            if (best > copy_gbps[t])
                copy_gbps[t] = best;
            printf("%-28s %-8s %7d %8.2f GB/s %8.2f %8.2f\n", probes[p].name, "-", t,
                   moved / s.med * 1e-9, moved / s.max * 1e-9, best);
            json_rec("ceiling", probes[p].kernel, "-", probes[p].kernel, t, moved, 0, s, 1.0);
        }
        printf("%-28s %-8s %7d %8.2f GB/s\n", "=> copy ceiling (best)", "-", t, copy_gbps[t]);
        lcx_context_destroy(ctx);
    }
    for (int ii = 0; ii < o->n_isas; ii++) {
        for (int ti = 0; ti < o->n_threads; ti++) {
            const int t = o->threads[ti];
            lcx_context *ctx = make_ctx(o->isas[ii], t);
            if (!ctx)
                continue;
            fma_job j = {ctx, 2000000, 0};
            const double per_iter = 2.0 * ctx->kt.bench_fma_lanes * ctx->kt.bench_fma_accs;
            const double flops = per_iter * (double)j.iters * t;
            const stats s = time_it(fma_run, &j, o->reps);
            const double g = flops / s.med * 1e-9;
            if (flops / s.min * 1e-9 > fma_peak[t])
                fma_peak[t] = flops / s.min * 1e-9;
            printf("%-28s %-8s %7d %6.1f GFLOP/s %8.1f %8.1f\n", "f32 FMA peak", lcx_isa_name((lcx_isa)o->isas[ii]),
                   t, g, flops / s.max * 1e-9, flops / s.min * 1e-9);
            json_rec("ceiling", "fma_peak_f32", lcx_isa_name((lcx_isa)o->isas[ii]),
                     ctx->kt.impl[LCX_OP_bench_fma], t, 0, flops, s, 1.0);
            lcx_context_destroy(ctx);
        }
    }
    for (int ti = 0; ti < o->n_threads; ti++)
        printf("%-28s %-8s %7d %6.1f GFLOP/s\n", "=> f32 FMA peak (best)", "-", o->threads[ti],
               fma_peak[o->threads[ti]]);
    free(a);
    free(b);
}

/* ---------------- convert ---------------- */
typedef struct conv_job {
    lcx_context *ctx;
    lcx_tensor src, dst;
} conv_job;

static void conv_run(void *arg)
{
    conv_job *j = arg;
    if (lcx_convert(j->ctx, &j->src, &j->dst) != LCX_OK) {
        fprintf(stderr, "longctx-bench: convert failed: %s\n", lcx_last_error());
        exit(1);
    }
}

static const char *op_of(lcx_dtype s, lcx_dtype d)
{
    if (s == LCX_F32)
        return d == LCX_BF16 ? "convert_f32_bf16" : "convert_f32_f16";
    if (d == LCX_F32)
        return s == LCX_BF16 ? "convert_bf16_f32" : "convert_f16_f32";
    return s == LCX_F16 ? "convert_f16_f32" : "convert_bf16_f32"; /* bounce: first stage */
}

static void bench_convert(const bench_opts *o)
{
    /* n elements such that the f32 side is --mb MiB */
    const int64_t n = (int64_t)(o->mb * 1048576.0 / 4);
    void *f32 = aligned_alloc(64, (size_t)n * 4), *h16 = aligned_alloc(64, (size_t)n * 2),
         *g16 = aligned_alloc(64, (size_t)n * 2);
    if (!f32 || !h16 || !g16) {
        fprintf(stderr, "longctx-bench: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++)
        ((float *)f32)[i] = (float)sin((double)i * 1e-3) * 100.0f;
    memset(h16, 0x3c, (size_t)n * 2);
    memset(g16, 0x3c, (size_t)n * 2);
    const struct { lcx_dtype s, d; } pairs[] = {{LCX_F32, LCX_BF16}, {LCX_BF16, LCX_F32},
                                                {LCX_F32, LCX_F16}, {LCX_F16, LCX_F32},
                                                {LCX_F16, LCX_BF16}};
    printf("\n== convert (%" PRId64 " elements) ==\n%-11s %-8s %7s %10s %8s %8s %9s  %s\n", n, "pair",
           "isa", "threads", "GB/s", "min", "max", "of copy", "kernel");
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        for (int ii = 0; ii < o->n_isas; ii++) {
            for (int ti = 0; ti < o->n_threads; ti++) {
                const int t = o->threads[ti];
                lcx_context *ctx = make_ctx(o->isas[ii], t);
                if (!ctx)
                    continue;
                conv_job j;
                j.ctx = ctx;
                const int64_t shape[1] = {n};
                void *sp = pairs[p].s == LCX_F32 ? f32 : h16;
                void *dp = pairs[p].d == LCX_F32 ? f32 : (pairs[p].s == LCX_F32 ? h16 : g16);
                lcx_tensor_init(&j.src, sp, pairs[p].s, 1, shape);
                lcx_tensor_init(&j.dst, dp, pairs[p].d, 1, shape);
                const stats s = time_it(conv_run, &j, o->reps);
                const double bytes = (double)n * (double)(lcx_dtype_size(pairs[p].s) + lcx_dtype_size(pairs[p].d));
                const double g = bytes / s.med * 1e-9;
                const double frac = copy_gbps[t] > 0 ? g / copy_gbps[t] : 0;
                char name[32];
                snprintf(name, sizeof name, "%s->%s", lcx_dtype_name(pairs[p].s), lcx_dtype_name(pairs[p].d));
                const char *k = lcx_context_kernel_name(ctx, op_of(pairs[p].s, pairs[p].d));
                printf("%-11s %-8s %7d %10.2f %8.2f %8.2f %8.0f%%  %s\n", name,
                       lcx_isa_name((lcx_isa)o->isas[ii]), t, g, bytes / s.max * 1e-9,
                       bytes / s.min * 1e-9, 100 * frac, k ? k : "?");
                json_rec("op", name, lcx_isa_name((lcx_isa)o->isas[ii]), k ? k : "?", t, bytes, 0, s, frac);
                lcx_context_destroy(ctx);
            }
        }
    }
    free(f32);
    free(h16);
    free(g16);
}

/* ---------------- merge ---------------- */

typedef struct merge_job {
    lcx_context *ctx;
    lcx_tensor in[2], out;
} merge_job;

static void merge_run(void *arg)
{
    merge_job *j = arg;
    const double half[2] = {0.5, 0.5};
    if (lcx_merge_weights(j->ctx, 2, j->in, half, &j->out) != LCX_OK) {
        fprintf(stderr, "longctx-bench: merge: %s\n", lcx_last_error());
        exit(1);
    }
}

static void bench_merge(const bench_opts *o)
{
    printf("\n== merge: out = 0.5 a + 0.5 b (two models; bytes = a + b read, out written) ==\n");
    printf("%-6s %-8s %3s %10s %8s %8s %8s  %s\n", "dtype", "isa", "thr", "GB/s", "min", "max", "of copy", "kernel");
    for (int dt = 0; dt < 2; dt++) {
        const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
        const size_t es = lcx_dtype_size(dtype);
        const int64_t n = (int64_t)(o->mb * 1048576.0 / (double)es);
        void *a = aligned_alloc(64, (size_t)n * es), *b = aligned_alloc(64, (size_t)n * es),
             *c = aligned_alloc(64, (size_t)n * es);
        memset(a, 0x3c, (size_t)n * es); /* normal values in either dtype */
        memset(b, 0x3d, (size_t)n * es);
        memset(c, 0, (size_t)n * es);
        for (int ii = 0; ii < o->n_isas; ii++)
            for (int ti = 0; ti < o->n_threads; ti++) {
                const int t = o->threads[ti];
                lcx_context *ctx = make_ctx(o->isas[ii], t);
                if (!ctx)
                    continue;
                merge_job j;
                j.ctx = ctx;
                const int64_t shape[1] = {n};
                lcx_tensor_init(&j.in[0], a, dtype, 1, shape);
                lcx_tensor_init(&j.in[1], b, dtype, 1, shape);
                lcx_tensor_init(&j.out, c, dtype, 1, shape);
                const stats s = time_it(merge_run, &j, o->reps);
                const double bytes = 3.0 * (double)n * (double)es, g = bytes / s.med * 1e-9;
                const char *k = lcx_context_kernel_name(ctx, "merge");
                printf("%-6s %-8s %3d %10.2f %8.2f %8.2f %7.0f%%  %s\n", lcx_dtype_name(dtype),
                       lcx_isa_name((lcx_isa)o->isas[ii]), t, g, bytes / s.max * 1e-9, bytes / s.min * 1e-9,
                       100 * g / copy_gbps[t], k);
                char name[48];
                snprintf(name, sizeof name, "merge/%s", lcx_dtype_name(dtype));
                json_rec("op", name, lcx_isa_name((lcx_isa)o->isas[ii]), k, t, bytes, 0, s, g / copy_gbps[t]);
                lcx_context_destroy(ctx);
            }
        free(a);
        free(b);
        free(c);
    }
}

/* ---------------- logprobs ---------------- */

typedef struct lp_job {
    lcx_context *ctx;
    lcx_tensor logits;
    const int64_t *targets;
    float *out;
} lp_job;

static void lp_run(void *arg)
{
    lp_job *j = arg;
    if (lcx_token_logprobs(j->ctx, &j->logits, j->targets, j->out) != LCX_OK) {
        fprintf(stderr, "longctx-bench: logprobs: %s\n", lcx_last_error());
        exit(1);
    }
}

static void bench_logprobs(const bench_opts *o)
{
    printf("\n== token logprobs: one pass over each row (bytes = logits read) ==\n");
    printf("%-7s %-6s %-8s %3s %10s %8s %8s %8s  %s\n", "vocab", "dtype", "isa", "thr", "GB/s", "min", "max",
           "of copy", "kernel");
    const int64_t vocabs[3] = {32000, 128256, 256000};
    for (int vi = 0; vi < 3; vi++)
        for (int dt = 0; dt < 2; dt++) {
            const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
            const size_t es = lcx_dtype_size(dtype);
            const int64_t V = vocabs[vi], rows = (int64_t)(o->mb * 1048576.0 / (double)es / (double)V) + 1;
            void *x = aligned_alloc(64, (size_t)(rows * V) * es);
            int64_t *tg = malloc(sizeof(int64_t) * (size_t)rows);
            float *out = malloc(sizeof(float) * (size_t)rows);
            if (!x || !tg || !out) {
                fprintf(stderr, "longctx-bench: out of memory\n");
                exit(1);
            }
            for (int64_t i = 0; i < rows * V; i++) {
                const float v = (float)((i * 2654435761u) % 2000) * 0.01f - 10.0f;
                if (dt) {
                    uint32_t u;
                    memcpy(&u, &v, 4);
                    ((uint16_t *)x)[i] = (uint16_t)(u >> 16);
                } else
                    ((float *)x)[i] = v;
            }
            for (int64_t r = 0; r < rows; r++)
                tg[r] = (r * 7919) % V;
            for (int ii = 0; ii < o->n_isas; ii++)
                for (int ti = 0; ti < o->n_threads; ti++) {
                    const int t = o->threads[ti];
                    lcx_context *ctx = make_ctx(o->isas[ii], t);
                    if (!ctx)
                        continue;
                    lp_job j = {ctx, {0}, tg, out};
                    const int64_t shape[2] = {rows, V};
                    lcx_tensor_init(&j.logits, x, dtype, 2, shape);
                    const stats s = time_it(lp_run, &j, o->reps);
                    const double bytes = (double)(rows * V) * (double)es, g = bytes / s.med * 1e-9;
                    const char *k = lcx_context_kernel_name(ctx, "row_lse");
                    printf("%-7lld %-6s %-8s %3d %10.2f %8.2f %8.2f %7.0f%%  %s\n", (long long)V,
                           lcx_dtype_name(dtype), lcx_isa_name((lcx_isa)o->isas[ii]), t, g, bytes / s.max * 1e-9,
                           bytes / s.min * 1e-9, 100 * g / copy_gbps[t], k);
                    char name[48];
                    snprintf(name, sizeof name, "logprobs/%lld/%s", (long long)V, lcx_dtype_name(dtype));
                    json_rec("op", name, lcx_isa_name((lcx_isa)o->isas[ii]), k, t, bytes, 0, s, g / copy_gbps[t]);
                    lcx_context_destroy(ctx);
                }
            free(x);
            free(tg);
            free(out);
        }
}

/* ---------------- attention ---------------- */

typedef struct attn_job {
    lcx_context *ctx;
    lcx_attention_params p;
    const lcx_s2_params *s2; /* S2-Attn instead of p when set */
    lcx_tensor q, k, v, o;
} attn_job;

static void attn_run(void *arg)
{
    attn_job *j = arg;
    const lcx_status st = j->s2 ? lcx_attention_s2_forward(j->ctx, j->s2, &j->q, &j->k, &j->v, &j->o, NULL)
                                : lcx_attention_forward(j->ctx, &j->p, &j->q, &j->k, &j->v, &j->o, NULL);
    if (st != LCX_OK) {
        fprintf(stderr, "longctx-bench: %s: %s\n", j->s2 ? "s2attn" : "attention", lcx_last_error());
        exit(1);
    }
}

#if defined(LCX_BENCH_OPENBLAS)
/* the unfused path: per head, S = Q K^T (sgemm), masked softmax, O = P V (sgemm) */
typedef struct blas_job {
    const float *q, *k, *v;
    float *o, *s;
    int64_t S, H, Hkv, D;
    int causal;
} blas_job;

static void blas_run(void *arg)
{
    blas_job *j = arg;
    const int64_t S = j->S, H = j->H, D = j->D, G = j->H / j->Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t h = 0; h < H; h++) {
        const float *qh = j->q + h * D, *kh = j->k + (h / G) * D, *vh = j->v + (h / G) * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)S, (int)D, scale, qh, (int)(H * D), kh,
                    (int)(j->Hkv * D), 0.0f, j->s, (int)S);
        for (int64_t r = 0; r < S; r++) {
            float *row = j->s + r * S;
            const int64_t n = j->causal ? r + 1 : S;
            float m = -INFINITY, l = 0;
            for (int64_t c = 0; c < n; c++)
                m = row[c] > m ? row[c] : m;
            for (int64_t c = 0; c < n; c++) {
                row[c] = expf(row[c] - m);
                l += row[c];
            }
            const float inv = 1.0f / l;
            for (int64_t c = 0; c < n; c++)
                row[c] *= inv;
            for (int64_t c = n; c < S; c++)
                row[c] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)D, (int)S, 1.0f, j->s, (int)S, vh,
                    (int)(j->Hkv * D), 0.0f, j->o + h * D, (int)(H * D));
    }
}
#endif

static void bench_attention(const bench_opts *o)
{
    const int64_t H = 32, HKV = 8, D = 128;
    printf("\n== attention prefill (heads 32, kv_heads 8, dim 128; GFLOP/s, fraction of the FMA peak) ==\n");
    printf("%-7s %-6s %-6s %-8s %3s %10s %8s %10s  %s\n", "seq", "causal", "dtype", "isa", "thr", "GFLOP/s", "of peak",
           "scratch", "impl");
    for (int qi = 0; qi < o->n_seqs; qi++) {
        const int64_t S = o->seqs[qi];
        float *qf = malloc(sizeof(float) * (size_t)(S * H * D)), *kf = malloc(sizeof(float) * (size_t)(S * HKV * D));
        float *vf = malloc(sizeof(float) * (size_t)(S * HKV * D)), *of = malloc(sizeof(float) * (size_t)(S * H * D));
        uint16_t *qh = malloc(2 * (size_t)(S * H * D)), *kh = malloc(2 * (size_t)(S * HKV * D)),
                 *vh = malloc(2 * (size_t)(S * HKV * D));
        if (!qf || !kf || !vf || !of || !qh || !kh || !vh) {
            fprintf(stderr, "longctx-bench: out of memory for attention at seq %lld\n", (long long)S);
            exit(1);
        }
        for (int64_t i = 0; i < S * H * D; i++) {
            qf[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
            uint32_t u;
            memcpy(&u, &qf[i], 4);
            qh[i] = (uint16_t)(u >> 16);
        }
        for (int64_t i = 0; i < S * HKV * D; i++) {
            kf[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
            vf[i] = (float)((i * 15485863) % 1000) * 1e-3f - 0.5f;
            uint32_t u;
            memcpy(&u, &kf[i], 4);
            kh[i] = (uint16_t)(u >> 16);
            memcpy(&u, &vf[i], 4);
            vh[i] = (uint16_t)(u >> 16);
        }
        for (int causal = 1; causal >= 0; causal--) {
            const double flops = 4.0 * (double)S * (double)S * H * D * (causal ? 0.5 : 1.0);
            for (int dt = 0; dt < 2; dt++) {
                for (int ii = 0; ii < o->n_isas; ii++)
                    for (int ti = 0; ti < o->n_threads; ti++) {
                        const int t = o->threads[ti];
                        lcx_context *ctx = make_ctx(o->isas[ii], t);
                        if (!ctx)
                            continue;
                        attn_job j = {0};
                        j.ctx = ctx;
                        lcx_attention_params_default(&j.p);
                        j.p.causal = causal;
                        const int64_t sq[4] = {1, S, H, D}, sk[4] = {1, S, HKV, D};
                        const lcx_dtype d16 = dt ? LCX_BF16 : LCX_F32;
                        lcx_tensor_init(&j.q, dt ? (void *)qh : (void *)qf, d16, 4, sq);
                        lcx_tensor_init(&j.k, dt ? (void *)kh : (void *)kf, d16, 4, sk);
                        lcx_tensor_init(&j.v, dt ? (void *)vh : (void *)vf, d16, 4, sk);
                        lcx_tensor_init(&j.o, of, LCX_F32, 4, sq);
                        const int reps = S >= 16384 ? 1 : o->reps < 3 ? o->reps : 3;
                        const stats s = time_it(attn_run, &j, reps);
                        const double g = flops / s.med * 1e-9;
                        printf("%-7lld %-6d %-6s %-8s %3d %10.1f %7.0f%% %8.1f MB  %s\n", (long long)S, causal,
                               dt ? "bf16" : "f32", lcx_isa_name((lcx_isa)o->isas[ii]), t, g, 100 * g / fma_peak[t],
                               (double)ctx->scratch_size / 1e6, lcx_context_kernel_name(ctx, "attn_qk"));
                        char name[64];
                        snprintf(name, sizeof name, "attention/prefill/%lld/%s/%s", (long long)S,
                                 causal ? "causal" : "full", dt ? "bf16" : "f32");
                        json_rec("op", name, lcx_isa_name((lcx_isa)o->isas[ii]), lcx_context_kernel_name(ctx, "attn_qk"),
                                 t, 0, flops, s, g / fma_peak[t]);
                        lcx_context_destroy(ctx);
                    }
            }
#if defined(LCX_BENCH_OPENBLAS)
            if ((double)S * (double)S * 4 <= 2.2e9) {
                for (int ti = 0; ti < o->n_threads; ti++) {
                    const int t = o->threads[ti];
                    openblas_set_num_threads(t);
                    blas_job b = {qf, kf, vf, of, malloc(sizeof(float) * (size_t)(S * S)), S, H, HKV, D, causal};
                    if (!b.s)
                        continue;
                    const stats s = time_it(blas_run, &b, S >= 8192 ? 1 : 3);
                    const double g = flops / s.med * 1e-9;
                    printf("%-7lld %-6d %-6s %-8s %3d %10.1f %7.0f%% %8.1f MB  %s\n", (long long)S, causal, "f32",
                           "openblas", t, g, 100 * g / fma_peak[t], (double)S * (double)S * 4 / 1e6,
                           "unfused sgemm + softmax + sgemm");
                    char name[64];
                    snprintf(name, sizeof name, "attention/prefill/%lld/%s/openblas", (long long)S,
                             causal ? "causal" : "full");
                    json_rec("op", name, "openblas", "cblas_sgemm", t, 0, flops, s, g / fma_peak[t]);
                    free(b.s);
                }
            }
#endif
        }
        free(qf);
        free(kf);
        free(vf);
        free(of);
        free(qh);
        free(kh);
        free(vh);
    }
    /* decode: one query over a bf16 cache */
    printf("\n== attention decode (1 query, heads 32, kv_heads 8, dim 128, bf16 cache; GB/s of cache read) ==\n"
           "   of copy: against the copy ceiling above; adj. copy: the stream probe (read+write, %d MiB) timed\n"
           "   in alternation with the decode, medians (this machine's bandwidth drifts between runs)\n",
           (int)(LCX_ADJ_COPY_BYTES >> 20));
    printf("%-8s %-8s %3s %10s %8s %10s %9s  %s\n", "cache", "isa", "thr", "GB/s", "of copy", "adj. copy", "fraction",
           "impl");
    char *ca = aligned_alloc(64, LCX_ADJ_COPY_BYTES), *cb = aligned_alloc(64, LCX_ADJ_COPY_BYTES);
    if (!ca || !cb) {
        fprintf(stderr, "longctx-bench: out of memory for the copy probe\n");
        exit(1);
    }
    memset(ca, 1, LCX_ADJ_COPY_BYTES);
    memset(cb, 2, LCX_ADJ_COPY_BYTES);
    const int64_t caches[3] = {4096, 65536, o->quick ? 65536 : 524288};
    for (int ci = 0; ci < (o->quick ? 1 : 3); ci++) {
        const int64_t C = caches[ci];
        uint16_t *kc = malloc(2 * (size_t)(C * HKV * D)), *vc = malloc(2 * (size_t)(C * HKV * D));
        float *q1 = malloc(sizeof(float) * (size_t)(H * D)), *o1 = malloc(sizeof(float) * (size_t)(H * D));
        if (!kc || !vc || !q1 || !o1) {
            fprintf(stderr, "longctx-bench: out of memory for the decode cache\n");
            exit(1);
        }
        for (int64_t i = 0; i < C * HKV * D; i++)
            kc[i] = vc[i] = (uint16_t)(0x3c00 + (i % 256)); /* bf16 values near 0.0078..0.0156 */
        for (int64_t i = 0; i < H * D; i++)
            q1[i] = 0.01f * (float)(i % 17);
        for (int ii = 0; ii < o->n_isas; ii++)
            for (int ti = 0; ti < o->n_threads; ti++) {
                const int t = o->threads[ti];
                lcx_context *ctx = make_ctx(o->isas[ii], t);
                if (!ctx)
                    continue;
                attn_job j = {0};
                j.ctx = ctx;
                lcx_attention_params_default(&j.p);
                j.p.causal = 1;
                const int64_t sq[4] = {1, 1, H, D}, sk[4] = {1, C, HKV, D};
                lcx_tensor_init(&j.q, q1, LCX_F32, 4, sq);
                lcx_tensor_init(&j.k, kc, LCX_BF16, 4, sk);
                lcx_tensor_init(&j.v, vc, LCX_BF16, 4, sk);
                lcx_tensor_init(&j.o, o1, LCX_F32, 4, sq);
                copy_job cj = {ctx, cb, ca, LCX_ADJ_COPY_BYTES, (int64_t)t * 4};
                stats s, sc;
                time_pair(attn_run, &j, stream_run, &cj, o->reps, &s, &sc);
                const double bytes = 2.0 * 2.0 * (double)(C * HKV * D), g = bytes / s.med * 1e-9;
                const double gc = 2.0 * (double)LCX_ADJ_COPY_BYTES / sc.med * 1e-9;
                printf("%-8lld %-8s %3d %10.2f %7.0f%% %10.2f %8.0f%%  %s\n", (long long)C,
                       lcx_isa_name((lcx_isa)o->isas[ii]), t, g, 100 * g / copy_gbps[t], gc, 100 * g / gc,
                       lcx_context_kernel_name(ctx, "attn_qk"));
                char name[64];
                snprintf(name, sizeof name, "attention/decode/%lld/bf16", (long long)C);
                json_rec("op", name, lcx_isa_name((lcx_isa)o->isas[ii]), lcx_context_kernel_name(ctx, "attn_qk"), t,
                         bytes, 0, s, g / copy_gbps[t]);
                lcx_context_destroy(ctx);
            }
        free(kc);
        free(vc);
        free(q1);
        free(o1);
    }
    free(ca);
    free(cb);
}

/* ---------------- S2-Attn ---------------- */

static void bench_s2(const bench_opts *o)
{
    const int64_t H = 8, HKV = 2, D = 64;
    printf("\n== S2-Attn (heads 8, kv_heads 2, dim 64, f32, SEGMENTS) vs full causal attention on the same input ==\n");
    printf("%-7s %-6s %-8s %3s %10s %10s %10s %8s %8s\n", "seq", "g", "isa", "thr", "s2 ms", "causal ms", "GFLOP/s",
           "ratio", "ideal");
    for (int qi = 0; qi < o->n_seqs; qi++) {
        const int64_t S = o->seqs[qi];
        float *q = malloc(sizeof(float) * (size_t)(S * H * D)), *k = malloc(sizeof(float) * (size_t)(S * HKV * D));
        float *v = malloc(sizeof(float) * (size_t)(S * HKV * D)), *out = malloc(sizeof(float) * (size_t)(S * H * D));
        if (!q || !k || !v || !out) {
            fprintf(stderr, "longctx-bench: out of memory for S2 at seq %lld\n", (long long)S);
            exit(1);
        }
        for (int64_t i = 0; i < S * H * D; i++)
            q[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        for (int64_t i = 0; i < S * HKV * D; i++) {
            k[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
            v[i] = (float)((i * 15485863) % 1000) * 1e-3f - 0.5f;
        }
        for (int ii = 0; ii < o->n_isas; ii++)
            for (int ti = 0; ti < o->n_threads; ti++) {
                const int t = o->threads[ti];
                lcx_context *ctx = make_ctx(o->isas[ii], t);
                if (!ctx)
                    continue;
                attn_job a = {0};
                a.ctx = ctx;
                lcx_attention_params_default(&a.p);
                a.p.causal = 1;
                const int64_t sq[4] = {1, S, H, D}, sk[4] = {1, S, HKV, D};
                lcx_tensor_init(&a.q, q, LCX_F32, 4, sq);
                lcx_tensor_init(&a.k, k, LCX_F32, 4, sk);
                lcx_tensor_init(&a.v, v, LCX_F32, 4, sk);
                lcx_tensor_init(&a.o, out, LCX_F32, 4, sq);
                const stats sc = time_it(attn_run, &a, o->reps < 3 ? o->reps : 3);
                const int64_t gs[2] = {S / 4, 2048};
                for (int gi = 0; gi < 2; gi++) {
                    if (gs[gi] > S || (gi == 1 && S % 2048))
                        continue;
                    lcx_s2_params sp;
                    lcx_s2_params_default(&sp);
                    sp.group_size = gs[gi];
                    attn_job j = a;
                    j.s2 = &sp;
                    const stats s = time_it(attn_run, &j, o->reps);
                    const double flops = 4.0 * (double)S * (double)gs[gi] * H * D / 2;
                    printf("%-7lld %-6lld %-8s %3d %10.2f %10.2f %10.1f %8.4f %8.4f\n", (long long)S,
                           (long long)gs[gi], lcx_isa_name((lcx_isa)o->isas[ii]), t, s.med * 1e3, sc.med * 1e3,
                           flops / s.med * 1e-9, s.med / sc.med, (double)gs[gi] / (double)S);
                    char name[64];
                    snprintf(name, sizeof name, "s2attn/%lld/g%lld", (long long)S, (long long)gs[gi]);
                    json_rec("op", name, lcx_isa_name((lcx_isa)o->isas[ii]), "s2", t, 0, flops, s,
                             (s.med / sc.med) / ((double)gs[gi] / (double)S));
                }
                lcx_context_destroy(ctx);
            }
        free(q);
        free(k);
        free(v);
        free(out);
    }
}

/* ---------------- LoRA ---------------- */

/* operand dtypes of a LoRA row: all f32; bf16 weights (W, A, B) with f32
 * activations (x, y); all bf16 */
enum { LORA_F32, LORA_BF16W, LORA_BF16, LORA_NDT };
static const char *const lora_dt_name[LORA_NDT] = {"f32", "bf16w", "bf16"};

/* the multi-adapter batch: 8 adapters of mixed rank, mean 16 */
#define LORA_NAD 8
static const int lora_ad_rank[LORA_NAD] = {4, 8, 8, 16, 16, 8, 4, 64};

typedef struct lora_job {
    lcx_context *ctx;
    lcx_tensor x, w, a, b, y;
    int lowrank; /* 0: the base GEMM alone (a = b = NULL) */
    float scale;
    const lcx_lora_adapter *ad; /* lcx_lora_batched when set */
    int32_t n_ad;
    const int32_t *of_token;
} lora_job;

static void lora_run(void *arg)
{
    lora_job *j = arg;
    const lcx_status st = j->ad ? lcx_lora_batched(j->ctx, &j->x, j->ad, j->n_ad, j->of_token, &j->y)
                                : lcx_lora_linear(j->ctx, &j->x, &j->w, NULL, j->lowrank ? &j->a : NULL,
                                                  j->lowrank ? &j->b : NULL, j->scale, &j->y, 0);
    if (st != LCX_OK) {
        fprintf(stderr, "longctx-bench: %s: %s\n", j->ad ? "lora_batched" : "lora_linear", lcx_last_error());
        exit(1);
    }
}

#if defined(LCX_BENCH_OPENBLAS)
/* the unfused path: y = x W^T (one sgemm); with a rank, u = x A^T and
 * y += s u B^T (two more) */
typedef struct lora_blas_job {
    const float *x, *w, *a, *b;
    float *y, *u;
    int T, in, out, r;
    float scale;
} lora_blas_job;

static void lora_blas_run(void *arg)
{
    lora_blas_job *j = arg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, j->out, j->in, 1.0f, j->x, j->in, j->w, j->in, 0.0f,
                j->y, j->out);
    if (j->r == 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, j->r, j->in, 1.0f, j->x, j->in, j->a, j->in, 0.0f,
                j->u, j->r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, j->out, j->r, j->scale, j->u, j->r, j->b, j->r, 1.0f,
                j->y, j->out);
}
#endif

/* medians kept for the ratios and the target summary. kind 0:
 * lcx_lora_linear (rank 0 = the base GEMM alone); 1: lcx_lora_batched with
 * one adapter of rank 16; 2: 8 adapters, tokens round-robin; 3: 8 adapters,
 * tokens in random blocks. isa -1: OpenBLAS. */
enum { LORA_LINEAR, LORA_ONE, LORA_RR, LORA_BLOCKS };
typedef struct lora_res {
    int kind, isa, t, dt, rank;
    int64_t T, out;
    double sec;
} lora_res;
static lora_res *lora_tab;
static int lora_n, lora_cap;

static void lora_put(int kind, int isa, int t, int dt, int64_t T, int64_t out, int rank, double sec)
{
    if (lora_n == lora_cap) {
        lora_cap = lora_cap ? 2 * lora_cap : 256;
        lora_tab = realloc(lora_tab, sizeof *lora_tab * (size_t)lora_cap);
        if (!lora_tab) {
            fprintf(stderr, "longctx-bench: out of memory\n");
            exit(1);
        }
    }
    lora_tab[lora_n++] = (lora_res){kind, isa, t, dt, rank, T, out, sec};
}

/* the recorded median, 0 when that case did not run */
static double lora_get(int kind, int isa, int t, int dt, int64_t T, int64_t out, int rank)
{
    for (int i = 0; i < lora_n; i++) {
        const lora_res *r = &lora_tab[i];
        if (r->kind == kind && r->isa == isa && r->t == t && r->dt == dt && r->T == T && r->out == out &&
            r->rank == rank)
            return r->sec;
    }
    return 0;
}

static void *lora_alloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "longctx-bench: out of memory for the lora buffers (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static uint64_t lora_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* small uniform values in [-amp, amp) from a fixed-seed xorshift */
static void lora_fill(float *p, int64_t n, float amp, uint64_t *s)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = amp * ((float)(lora_next(s) >> 40) * (1.0f / 8388608.0f) - 1.0f);
}

/* an f32 operand and its bf16 copy (lcx_convert) */
typedef struct lora_pair {
    float *f;
    uint16_t *h;
} lora_pair;

static lora_pair lora_make(lcx_context *cx, int64_t n, float amp, uint64_t *seed)
{
    lora_pair p = {lora_alloc(sizeof(float) * (size_t)n), lora_alloc(2 * (size_t)n)};
    lora_fill(p.f, n, amp, seed);
    lcx_tensor s, d;
    const int64_t shape[1] = {n};
    lcx_tensor_init(&s, p.f, LCX_F32, 1, shape);
    lcx_tensor_init(&d, p.h, LCX_BF16, 1, shape);
    if (lcx_convert(cx, &s, &d) != LCX_OK) {
        fprintf(stderr, "longctx-bench: convert: %s\n", lcx_last_error());
        exit(1);
    }
    return p;
}

static void lora_free(lora_pair *p)
{
    free(p->f);
    free(p->h);
    p->f = NULL;
    p->h = NULL;
}

/* a [rows][cols] operand: the f32 data or its bf16 copy */
static void lora_view(lcx_tensor *t, const lora_pair *p, int bf16, int64_t rows, int64_t cols)
{
    const int64_t shape[2] = {rows, cols};
    lcx_tensor_init(t, bf16 ? (void *)p->h : (void *)p->f, bf16 ? LCX_BF16 : LCX_F32, 2, shape);
}

/* fewer timed runs for the big shapes; time_it's own rule (a first run of
 * 2 s or more is the sample) covers the biggest */
static int lora_reps(const bench_opts *o, double flops)
{
    const int r = flops >= 1e10 ? 1 : flops >= 1e9 ? 3 : flops >= 1e8 ? 5 : o->reps;
    return r < o->reps ? r : o->reps;
}

static const char *lora_isa_name(int isa)
{
    return isa < 0 ? "openblas" : lcx_isa_name((lcx_isa)isa);
}

static const char *lora_impl(lcx_context *ctx)
{
    const char *k = lcx_context_kernel_name(ctx, "gemm_ukr");
    return k ? k : "?";
}

/* the scalar kernels take minutes over the big shapes: calls of more flops
 * than this are skipped for scalar unless --isa names it */
#define LORA_SCALAR_MAX_FLOPS 2e9

static int lora_skip(const bench_opts *o, int isa, double flops)
{
    return isa == LCX_ISA_SCALAR && !o->isa_named && flops > LORA_SCALAR_MAX_FLOPS;
}

/* up to this many tokens the op is bound by the weight read */
#define LORA_BW_TOKENS 16

/* one row of the lora table (and its JSON record) */
static void lora_row(int64_t T, int64_t out, int rank, int dt, int isa, int t, stats s, double flops, double bytes,
                     double base_sec, double blas_sec, const char *impl)
{
    const double g = flops / s.med * 1e-9, frac = fma_peak[t] > 0 ? g / fma_peak[t] : 0;
    char rk[16] = "-", gb[16] = "-", cp[16] = "-", xb[16] = "-", ob[16] = "-";
    if (rank)
        snprintf(rk, sizeof rk, "%d", rank);
    if (T <= LORA_BW_TOKENS) {
        snprintf(gb, sizeof gb, "%.2f", bytes / s.med * 1e-9);
        if (copy_gbps[t] > 0)
            snprintf(cp, sizeof cp, "%.0f%%", 100 * bytes / s.med * 1e-9 / copy_gbps[t]);
    }
    if (rank && base_sec > 0)
        snprintf(xb, sizeof xb, "%.2fx", s.med / base_sec);
    if (blas_sec > 0)
        snprintf(ob, sizeof ob, "%.0f%%", 100 * blas_sec / s.med);
    printf("%-6lld %-5lld %4s %-5s %-8s %3d %10.3f %9.1f %7.0f%% %8s %8s %7s %8s  %s\n", (long long)T, (long long)out,
           rk, lora_dt_name[dt], lora_isa_name(isa), t, s.med * 1e3, g, 100 * frac, gb, cp, xb, ob, impl);
    char name[96];
    if (rank)
        snprintf(rk, sizeof rk, "r%d", rank);
    snprintf(name, sizeof name, "lora/T%lld/out%lld/%s/%s", (long long)T, (long long)out, rank ? rk : "base",
             isa < 0 ? (rank ? "unfused" : "sgemm") : lora_dt_name[dt]);
    json_rec("op", name, lora_isa_name(isa), impl, t, bytes, flops, s, frac);
}

static void bench_lora_batched(const bench_opts *o, const int *isas, int n_isas, int dt_mask, int64_t in,
                               int64_t out, const int64_t *toks, int n_toks, lcx_context *cx, uint64_t *seed);
static void lora_targets(const bench_opts *o, const int *isas, int n_isas, int dt_mask, const int64_t *outs,
                         int n_outs, const int64_t *toks, int n_toks, int64_t bout, const int64_t *btoks,
                         int n_btoks);

static void bench_lora(const bench_opts *o)
{
    const int64_t in = o->quick ? 256 : 4096;
    const int64_t outs_full[2] = {4096, 1024}, outs_quick[1] = {256};
    const int64_t *outs = o->quick ? outs_quick : outs_full;
    const int n_outs = o->quick ? 1 : 2;
    const int64_t toks_full[4] = {1, 16, 512, 4096}, toks_quick[2] = {16, 64};
    const int64_t *toks = o->n_tokens ? o->tokens : o->quick ? toks_quick : toks_full;
    const int n_toks = o->n_tokens ? o->n_tokens : o->quick ? 2 : 4;
    /* multi-adapter token counts: those of the list from 64 up */
    int64_t btoks[8];
    int n_btoks = 0;
    for (int ti = 0; ti < n_toks; ti++)
        if (toks[ti] >= 64)
            btoks[n_btoks++] = toks[ti];
    const int ranks_full[3] = {8, 16, 64}, ranks_quick[2] = {8, 16};
    const int *ranks = o->n_ranks ? o->ranks : o->quick ? ranks_quick : ranks_full;
    const int n_ranks = o->n_ranks ? o->n_ranks : o->quick ? 2 : 3;
    const int dt_mask = o->lora_dtypes ? o->lora_dtypes : (1 << LORA_F32) | (1 << LORA_BF16W);
    /* --quick: the best ISA of the list only */
    int isas[8], n_isas = 0;
    for (int ii = 0; ii < o->n_isas; ii++)
        if (!o->quick)
            isas[n_isas++] = o->isas[ii];
        else if (n_isas == 0 || o->isas[ii] > isas[0]) {
            isas[0] = o->isas[ii];
            n_isas = 1;
        }
    const float scale = 2.0f; /* alpha / r: LongLoRA's alpha 16 at rank 8 */

    printf("\n== lora: y = x W^T + s (x A^T) B^T, in %lld%s; GFLOP/s, fraction of the FMA peak ==\n", (long long)in,
           o->quick ? " (--quick: tiny shapes, one ISA)" : " (Llama projections)");
    printf("   flops: base 2*T*out*in, a rank r adds 2*T*r*(in+out). tokens <= %d are bound by the weight read:\n"
           "   GB/s = W+A+B bytes read per second, of copy = fraction of the copy ceiling (a W that fits the L3\n"
           "   may stay there between runs). x base: time / the base GEMM's time (same dtype, ISA, threads).\n"
           "   of blas: OpenBLAS f32 time / ours at the same tokens, out, rank and threads (base: one sgemm;\n"
           "   rank r: the unfused sgemm + u = x A^T + y += s u B^T). bf16w: bf16 W, A, B with f32 x and y.\n"
           "   targets (avx512, 2 threads): base f32 >= 80%% of sgemm at tokens 512; fused rank 16 <= 1.15x base;\n"
           "   8 adapters of mixed rank <= 1.3x one adapter (summary after the multi-adapter table)\n",
           LORA_BW_TOKENS);
    printf("%-6s %-5s %4s %-5s %-8s %3s %10s %9s %8s %8s %8s %7s %8s  %s\n", "tokens", "out", "rank", "dtype", "isa",
           "thr", "ms", "GFLOP/s", "of peak", "GB/s", "of copy", "x base", "of blas", "impl");
    lcx_context *cx = make_ctx(LCX_ISA_AUTO, 1); /* the bf16 copies */
    if (!cx)
        exit(1);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int rmax = 0;
    for (int ri = 0; ri < n_ranks; ri++)
        rmax = ranks[ri] > rmax ? ranks[ri] : rmax;
    for (int oi = 0; oi < n_outs; oi++) {
        const int64_t out = outs[oi];
        /* W once per out, one A [r][in] and B [out][r] per rank */
        lora_pair w = lora_make(cx, out * in, 0.02f, &seed), A[8], B[8];
        for (int ri = 0; ri < n_ranks; ri++) {
            A[ri] = lora_make(cx, (int64_t)ranks[ri] * in, 0.02f, &seed);
            B[ri] = lora_make(cx, out * ranks[ri], 0.02f, &seed);
        }
        for (int ti = 0; ti < n_toks; ti++) {
            const int64_t T = toks[ti];
            lora_pair x = lora_make(cx, T * in, 1.0f, &seed), y = lora_make(cx, T * out, 0.0f, &seed);
            const double fbase = 2.0 * (double)T * (double)out * (double)in;
#if defined(LCX_BENCH_OPENBLAS)
            float *u = lora_alloc(sizeof(float) * (size_t)(T * rmax));
            for (int thi = 0; thi < o->n_threads; thi++) {
                const int t = o->threads[thi];
                openblas_set_num_threads(t);
                for (int ri = -1; ri < n_ranks; ri++) {
                    const int r = ri < 0 ? 0 : ranks[ri];
                    lora_blas_job bj = {x.f, w.f, r ? A[ri].f : NULL, r ? B[ri].f : NULL, y.f, u, (int)T, (int)in,
                                        (int)out, r, scale};
                    const double flops = fbase + 2.0 * (double)T * r * (double)(in + out);
                    const double bytes = 4.0 * ((double)out * (double)in + (double)r * (double)(in + out));
                    const stats s = time_it(lora_blas_run, &bj, lora_reps(o, flops));
                    lora_put(LORA_LINEAR, -1, t, LORA_F32, T, out, r, s.med);
                    lora_row(T, out, r, LORA_F32, -1, t, s, flops, bytes, lora_get(LORA_LINEAR, -1, t, LORA_F32, T, out, 0),
                             0, r ? "cblas_sgemm x3 (unfused)" : "cblas_sgemm");
                }
            }
            free(u);
#endif
            for (int dt = 0; dt < LORA_NDT; dt++) {
                if (!(dt_mask & (1 << dt)))
                    continue;
                const int wbf = dt != LORA_F32, abf = dt == LORA_BF16;
                const double es = wbf ? 2.0 : 4.0;
                for (int ii = 0; ii < n_isas; ii++) {
                    if (lora_skip(o, isas[ii], fbase)) {
                        if (dt == 0 || !(dt_mask & ((1 << dt) - 1)))
                            printf("%-6lld %-5lld %4s %-5s %-8s (skipped: %.1f GFLOP per call; --isa scalar runs it)\n",
                                   (long long)T, (long long)out, "", "", "scalar", fbase * 1e-9);
                        continue;
                    }
                    for (int thi = 0; thi < o->n_threads; thi++) {
                        const int t = o->threads[thi];
                        lcx_context *ctx = make_ctx(isas[ii], t);
                        if (!ctx)
                            continue;
                        lora_job j = {0};
                        j.ctx = ctx;
                        j.scale = scale;
                        lora_view(&j.x, &x, abf, T, in);
                        lora_view(&j.w, &w, wbf, out, in);
                        lora_view(&j.y, &y, abf, T, out);
                        for (int ri = -1; ri < n_ranks; ri++) {
                            const int r = ri < 0 ? 0 : ranks[ri];
                            j.lowrank = r > 0;
                            if (r) {
                                lora_view(&j.a, &A[ri], wbf, r, in);
                                lora_view(&j.b, &B[ri], wbf, out, r);
                            }
                            const double flops = fbase + 2.0 * (double)T * r * (double)(in + out);
                            const double bytes = es * ((double)out * (double)in + (double)r * (double)(in + out));
                            stats s, sb;
                            double base = 0;
                            if (r == 0) {
                                s = time_it(lora_run, &j, lora_reps(o, flops));
                                lora_put(LORA_LINEAR, isas[ii], t, dt, T, out, 0, s.med);
                                base = s.med;
                            } else {
                                /* timed in alternation with the base GEMM: the
                                 * fused/base ratio is read within one pair */
                                lora_job jb = j;
                                jb.lowrank = 0;
                                time_pair(lora_run, &jb, lora_run, &j, lora_reps(o, flops), &sb, &s);
                                base = lora_get(LORA_LINEAR, isas[ii], t, dt, T, out, 0);
                                lora_put(LORA_LINEAR, isas[ii], t, dt, T, out, r, s.med * base / sb.med);
                                base = sb.med;
                            }
                            lora_row(T, out, r, dt, isas[ii], t, s, flops, bytes, base,
                                     lora_get(LORA_LINEAR, -1, t, LORA_F32, T, out, r), lora_impl(ctx));
                        }
                        lcx_context_destroy(ctx);
                    }
                }
            }
            lora_free(&x);
            lora_free(&y);
        }
        lora_free(&w);
        for (int ri = 0; ri < n_ranks; ri++) {
            lora_free(&A[ri]);
            lora_free(&B[ri]);
        }
    }
    const int64_t bout = outs[0]; /* multi-adapter: out 4096 (--quick: 256) */
    bench_lora_batched(o, isas, n_isas, dt_mask, in, bout, btoks, n_btoks, cx, &seed);
    lora_targets(o, isas, n_isas, dt_mask, outs, n_outs, toks, n_toks, bout, btoks, n_btoks);
    lcx_context_destroy(cx);
    free(lora_tab);
    lora_tab = NULL;
    lora_n = lora_cap = 0;
}

/* lcx_lora_batched: 8 adapters of mixed rank against one adapter of rank 16
 * over every token (the delta alone: y += s_i (x A_i^T) B_i^T) */
static void bench_lora_batched(const bench_opts *o, const int *isas, int n_isas, int dt_mask, int64_t in,
                               int64_t out, const int64_t *toks, int n_toks, lcx_context *cx, uint64_t *seed)
{
    int rsum = 0;
    char rlist[64] = "";
    for (int i = 0; i < LORA_NAD; i++) {
        rsum += lora_ad_rank[i];
        snprintf(rlist + strlen(rlist), sizeof rlist - strlen(rlist), "%s%d", i ? "," : "", lora_ad_rank[i]);
    }
    printf("\n== lora multi-adapter: lcx_lora_batched, y += s_i (x A_i^T) B_i^T, in %lld, out %lld ==\n",
           (long long)in, (long long)out);
    printf("   %d adapters of ranks %s (mean %.1f) against 1 adapter of rank 16 over every token;\n"
           "   rr: token t -> adapter t %% %d; blocks: runs of 1..T/8 tokens, each to a random adapter.\n"
           "   ratio = time of the %d / time of the 1 (target <= 1.3x); ideal = their flop ratio\n",
           LORA_NAD, rlist, (double)rsum / LORA_NAD, LORA_NAD, LORA_NAD);
    printf("%-6s %-6s %-5s %-8s %3s %10s %10s %9s %8s %7s %7s  %s\n", "tokens", "assign", "dtype", "isa", "thr",
           "1 x r16 ms", "8 mixed ms", "GFLOP/s", "of peak", "ratio", "ideal", "impl");
    if (n_toks == 0)
        printf("(no token count >= 64 in the list)\n");
    /* the adapters: 8 of mixed rank and the one of rank 16 */
    lora_pair A[LORA_NAD + 1], B[LORA_NAD + 1];
    for (int i = 0; i <= LORA_NAD; i++) {
        const int r = i < LORA_NAD ? lora_ad_rank[i] : 16;
        A[i] = lora_make(cx, (int64_t)r * in, 0.02f, seed);
        B[i] = lora_make(cx, out * r, 0.02f, seed);
    }
    const float scale = 2.0f;
    for (int ti = 0; ti < n_toks; ti++) {
        const int64_t T = toks[ti];
        lora_pair x = lora_make(cx, T * in, 1.0f, seed), y = lora_make(cx, T * out, 0.0f, seed);
        int32_t *one = lora_alloc(sizeof(int32_t) * (size_t)T), *rr = lora_alloc(sizeof(int32_t) * (size_t)T),
                *blk = lora_alloc(sizeof(int32_t) * (size_t)T);
        for (int64_t t = 0; t < T; t++) {
            one[t] = 0;
            rr[t] = (int32_t)(t % LORA_NAD);
        }
        for (int64_t t = 0; t < T;) {
            const int64_t len = 1 + (int64_t)(lora_next(seed) % (uint64_t)(T / LORA_NAD > 1 ? T / LORA_NAD : 1));
            const int32_t ad = (int32_t)(lora_next(seed) % LORA_NAD);
            for (int64_t k = 0; k < len && t < T; k++)
                blk[t++] = ad;
        }
        const double f1 = 2.0 * (double)T * 16 * (double)(in + out);
        double frr = 0, fblk = 0;
        for (int64_t t = 0; t < T; t++) {
            frr += 2.0 * lora_ad_rank[rr[t]] * (double)(in + out);
            fblk += 2.0 * lora_ad_rank[blk[t]] * (double)(in + out);
        }
        for (int dt = 0; dt < LORA_NDT; dt++) {
            if (!(dt_mask & (1 << dt)))
                continue;
            const int wbf = dt != LORA_F32, abf = dt == LORA_BF16;
            lcx_lora_adapter ad[LORA_NAD + 1];
            for (int i = 0; i <= LORA_NAD; i++) {
                const int r = i < LORA_NAD ? lora_ad_rank[i] : 16;
                lora_view(&ad[i].a, &A[i], wbf, r, in);
                lora_view(&ad[i].b, &B[i], wbf, out, r);
                ad[i].scale = scale;
            }
            for (int ii = 0; ii < n_isas; ii++) {
                if (lora_skip(o, isas[ii], f1)) {
                    if (dt == 0 || !(dt_mask & ((1 << dt) - 1)))
                        printf("%-6lld %-6s %-5s %-8s (skipped: %.1f GFLOP per call; --isa scalar runs it)\n",
                               (long long)T, "", "", "scalar", f1 * 1e-9);
                    continue;
                }
                for (int thi = 0; thi < o->n_threads; thi++) {
                    const int t = o->threads[thi];
                    lcx_context *ctx = make_ctx(isas[ii], t);
                    if (!ctx)
                        continue;
                    lora_job j1 = {0}, j = {0};
                    j1.ctx = ctx;
                    lora_view(&j1.x, &x, abf, T, in);
                    lora_view(&j1.y, &y, abf, T, out);
                    j1.ad = &ad[LORA_NAD];
                    j1.n_ad = 1;
                    j1.of_token = one;
                    char name[96];
                    for (int m = 0; m < 2; m++) {
                        const double f = m ? fblk : frr;
                        j = j1;
                        j.ad = ad;
                        j.n_ad = LORA_NAD;
                        j.of_token = m ? blk : rr;
                        /* one adapter and the eight timed in alternation */
                        stats s1, s;
                        time_pair(lora_run, &j1, lora_run, &j, lora_reps(o, f1 > f ? f1 : f), &s1, &s);
                        if (m == 0) {
                            lora_put(LORA_ONE, isas[ii], t, dt, T, out, 16, s1.med);
                            snprintf(name, sizeof name, "lora/batched/T%lld/out%lld/1xr16/%s", (long long)T,
                                     (long long)out, lora_dt_name[dt]);
                            json_rec("op", name, lcx_isa_name((lcx_isa)isas[ii]), lora_impl(ctx), t, 0, f1, s1,
                                     f1 / s1.med * 1e-9 / fma_peak[t]);
                        }
                        /* stored relative to the one adapter of this pair; random
                         * blocks need not give each adapter T/8 tokens, so theirs
                         * is also divided by the flop ratio */
                        lora_put(m ? LORA_BLOCKS : LORA_RR, isas[ii], t, dt, T, out, 0,
                                 s.med * lora_get(LORA_ONE, isas[ii], t, dt, T, out, 16) / s1.med / (f / f1));
                        const double g = f / s.med * 1e-9;
                        printf("%-6lld %-6s %-5s %-8s %3d %10.3f %10.3f %9.1f %7.0f%% %6.2fx %6.2fx  %s\n",
                               (long long)T, m ? "blocks" : "rr", lora_dt_name[dt], lcx_isa_name((lcx_isa)isas[ii]), t,
                               s1.med * 1e3, s.med * 1e3, g, 100 * g / fma_peak[t], s.med / s1.med, f / f1,
                               lora_impl(ctx));
                        snprintf(name, sizeof name, "lora/batched/T%lld/out%lld/%dx-mixed-%s/%s", (long long)T,
                                 (long long)out, LORA_NAD, m ? "blocks" : "rr", lora_dt_name[dt]);
                        json_rec("op", name, lcx_isa_name((lcx_isa)isas[ii]), lora_impl(ctx), t, 0, f, s,
                                 g / fma_peak[t]);
                    }
                    lcx_context_destroy(ctx);
                }
            }
        }
        lora_free(&x);
        lora_free(&y);
        free(one);
        free(rr);
        free(blk);
    }
    for (int i = 0; i <= LORA_NAD; i++) {
        lora_free(&A[i]);
        lora_free(&B[i]);
    }
}

/* the targets, read back from the tables above */
static void lora_targets(const bench_opts *o, const int *isas, int n_isas, int dt_mask, const int64_t *outs,
                         int n_outs, const int64_t *toks, int n_toks, int64_t bout, const int64_t *btoks,
                         int n_btoks)
{
    /* AVX-512 on 2 threads; elsewhere the best ISA and the largest thread
     * count of the run stand in */
    int isa = -1, t = 0;
    for (int ii = 0; ii < n_isas; ii++)
        if (isas[ii] == LCX_ISA_AVX512 || (isa != LCX_ISA_AVX512 && isas[ii] > isa))
            isa = isas[ii];
    for (int ti = 0; ti < o->n_threads; ti++)
        if (o->threads[ti] == 2 || (t != 2 && o->threads[ti] > t))
            t = o->threads[ti];
    if (isa < 0 || t == 0)
        return;
    printf("\n== lora targets (%s, %d thread%s%s) ==\n", lcx_isa_name((lcx_isa)isa), t, t == 1 ? "" : "s",
           isa == LCX_ISA_AVX512 && t == 2 ? "" : "; the targets are for avx512 on 2 threads");
    /* base GEMM against sgemm, at every token count (the target: 512) */
    printf("%-44s %-5s %-5s", "check", "dtype", "out");
    for (int ti = 0; ti < n_toks; ti++) {
        char h[16];
        snprintf(h, sizeof h, "T=%lld", (long long)toks[ti]);
        printf(" %7s", h);
    }
    printf("  verdict\n");
#if defined(LCX_BENCH_OPENBLAS)
    for (int oi = 0; oi < n_outs; oi++) {
        printf("%-44s %-5s %-5lld", "base GEMM / OpenBLAS sgemm (>= 80% at T=512)", "f32", (long long)outs[oi]);
        const char *verdict = "T=512 not run";
        for (int ti = 0; ti < n_toks; ti++) {
            const double ours = lora_get(LORA_LINEAR, isa, t, LORA_F32, toks[ti], outs[oi], 0),
                         blas = lora_get(LORA_LINEAR, -1, t, LORA_F32, toks[ti], outs[oi], 0);
            if (ours > 0 && blas > 0) {
                printf(" %6.0f%%", 100 * blas / ours);
                if (toks[ti] == 512)
                    verdict = blas / ours >= 0.8 ? "met" : "MISSED";
            } else
                printf(" %7s", "-");
        }
        printf("  %s\n", verdict);
    }
#else
    printf("base GEMM / OpenBLAS sgemm: not measured (built without OpenBLAS)\n");
#endif
    /* fused rank 16 against the base GEMM, every dtype and shape */
    for (int dt = 0; dt < LORA_NDT; dt++) {
        if (!(dt_mask & (1 << dt)))
            continue;
        for (int oi = 0; oi < n_outs; oi++) {
            printf("%-44s %-5s %-5lld", "fused rank 16 / base GEMM (<= 1.15x)", lora_dt_name[dt], (long long)outs[oi]);
            int n = 0, ok = 1;
            for (int ti = 0; ti < n_toks; ti++) {
                const double base = lora_get(LORA_LINEAR, isa, t, dt, toks[ti], outs[oi], 0),
                             fused = lora_get(LORA_LINEAR, isa, t, dt, toks[ti], outs[oi], 16);
                if (base > 0 && fused > 0) {
                    printf(" %6.2fx", fused / base);
                    n++;
                    ok &= fused / base <= 1.15;
                } else
                    printf(" %7s", "-");
            }
            printf("  %s\n", n == 0 ? "rank 16 not run" : ok ? "met" : "MISSED");
        }
    }
    /* 8 adapters of mixed rank against one, per assignment */
    for (int dt = 0; dt < LORA_NDT; dt++) {
        if (!(dt_mask & (1 << dt)))
            continue;
        for (int m = 0; m < 2; m++) {
            char what[64];
            snprintf(what, sizeof what, "%d mixed adapters (%s) / 1 (<= 1.3x)", LORA_NAD,
                     m ? "blocks/flop" : "rr");
            printf("%-44s %-5s %-5lld", what, lora_dt_name[dt], (long long)bout);
            int n = 0, ok = 1;
            for (int ti = 0; ti < n_toks; ti++) {
                int listed = 0;
                for (int bi = 0; bi < n_btoks; bi++)
                    listed |= btoks[bi] == toks[ti];
                const double one = listed ? lora_get(LORA_ONE, isa, t, dt, toks[ti], bout, 16) : 0,
                             many = listed ? lora_get(m ? LORA_BLOCKS : LORA_RR, isa, t, dt, toks[ti], bout, 0) : 0;
                if (one > 0 && many > 0) {
                    printf(" %6.2fx", many / one);
                    n++;
                    ok &= many / one <= 1.3;
                } else
                    printf(" %7s", "-");
            }
            printf("  %s\n", n == 0 ? "not run" : ok ? "met" : "MISSED");
        }
    }
}

/* ---------------- rope ---------------- */

/* The common engine approach, written plainly: a cos/sin table for every
 * position, built once (not timed), then rotate every head of q and k. */
typedef struct table_rope {
    float *cos, *sin; /* [max_pos][n_pairs] */
    int32_t n_pairs;
} table_rope;

static void table_rope_rotate(const table_rope *tr, float *x, int64_t tokens, int64_t heads, int32_t dim,
                              const int64_t *pos)
{
    const int32_t n = tr->n_pairs;
    for (int64_t t = 0; t < tokens; t++) {
        const float *c = tr->cos + pos[t] * n, *s = tr->sin + pos[t] * n;
        for (int64_t h = 0; h < heads; h++) {
            float *u = x + (t * heads + h) * dim, *v = u + n;
            for (int32_t i = 0; i < n; i++) {
                const float a = u[i], b = v[i];
                u[i] = a * c[i] - b * s[i];
                v[i] = b * c[i] + a * s[i];
            }
        }
    }
}

typedef struct table_job {
    const table_rope *tr;
    float *q, *k;
    int64_t tokens, hq, hk;
    int32_t dim;
    const int64_t *pos;
    int64_t tasks;
} table_job;

static void table_task(void *arg, int64_t i)
{
    table_job *j = arg;
    const int64_t lo = j->tokens * i / j->tasks, hi = j->tokens * (i + 1) / j->tasks;
    table_rope_rotate(j->tr, j->q + lo * j->hq * j->dim, hi - lo, j->hq, j->dim, j->pos + lo);
    table_rope_rotate(j->tr, j->k + lo * j->hk * j->dim, hi - lo, j->hk, j->dim, j->pos + lo);
}

typedef struct rope_bench_job {
    lcx_context *ctx;
    lcx_rope *rope;       /* NULL: table baseline */
    table_job tj;
    lcx_tensor q, k;
    int64_t *pos;         /* chunk positions, rewritten per chunk */
    int64_t seq, chunk;
} rope_bench_job;

/* rotate `seq` tokens through a `chunk`-token buffer (positions advance) */
static void rope_run(void *arg)
{
    rope_bench_job *j = arg;
    for (int64_t base = 0; base < j->seq; base += j->chunk) {
        const int64_t n = j->seq - base < j->chunk ? j->seq - base : j->chunk;
        for (int64_t t = 0; t < n; t++)
            j->pos[t] = base + t;
        if (j->rope) {
            j->q.shape[1] = j->k.shape[1] = n;
            if (lcx_rope_apply(j->ctx, j->rope, &j->q, &j->k, j->pos) != LCX_OK) {
                fprintf(stderr, "longctx-bench: rope_apply: %s\n", lcx_last_error());
                exit(1);
            }
        } else {
            j->tj.tokens = n;
            lcx_parallel(j->ctx, j->tj.tasks, table_task, &j->tj);
        }
    }
}

static void bench_rope(const bench_opts *o)
{
    static const struct { const char *name; int hq, hk, dim; } shapes[] = {
        {"llama3-8b", 32, 8, 128}, {"phi3-mini", 32, 32, 96}, {"d64-gqa", 32, 8, 64}};
    printf("\n== rope: q+k in place, YaRN-scaled frequencies (bytes = q+k read and written) ==\n");
    printf("%-10s %8s %-5s %-8s %-8s %3s %10s %8s %8s %8s  %s\n", "shape", "seq", "dtype", "mode", "isa", "thr",
           "Mtok/s", "GB/s", "min", "of copy", "kernel / impl");
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        if (o->shape && strcmp(o->shape, shapes[si].name) != 0)
            continue;
        const int hq = shapes[si].hq, hk = shapes[si].hk, D = shapes[si].dim;
        for (int qi = 0; qi < o->n_seqs; qi++) {
            const int64_t seq = o->seqs[qi];
            const int64_t chunk = seq < 8192 ? seq : 8192;
            const size_t nq = (size_t)chunk * hq * D, nk = (size_t)chunk * hk * D;
            float *qb = aligned_alloc(64, nq * 4), *kb = aligned_alloc(64, nk * 4);
            int64_t *pos = malloc(sizeof(int64_t) * (size_t)chunk);
            if (!qb || !kb || !pos) {
                fprintf(stderr, "longctx-bench: out of memory for the rope buffers\n");
                exit(1);
            }
            lcx_rope_config cfg;
            lcx_rope_config_default(&cfg);
            cfg.type = LCX_ROPE_YARN;
            cfg.head_dim = D;
            cfg.factor = 4;
            cfg.original_max_position = 32768;
            /* the same buffer is rotated thousands of times: magnitude 1 keeps
             * the data finite (the cost does not depend on a) */
            cfg.attention_factor = 1.0;
            for (int dt = 0; dt < 2; dt++) {
                const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
                const size_t es = lcx_dtype_size(dtype);
                for (size_t i = 0; i < nq; i++)
                    qb[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
                for (size_t i = 0; i < nk; i++)
                    kb[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
                if (dt) { /* real bf16 values (not f32 bytes read as bf16: subnormals and NaNs) */
                    lcx_context *cx = make_ctx(LCX_ISA_AUTO, 1);
                    lcx_tensor s1, d1;
                    const int64_t n1[1] = {(int64_t)nq}, n2[1] = {(int64_t)nk};
                    lcx_tensor_init(&s1, qb, LCX_F32, 1, n1);
                    lcx_tensor_init(&d1, qb, LCX_BF16, 1, n1);
                    float *tmp = malloc(nq * 4);
                    memcpy(tmp, qb, nq * 4);
                    s1.data = tmp;
                    lcx_convert(cx, &s1, &d1);
                    memcpy(tmp, kb, nk * 4);
                    lcx_tensor_init(&s1, tmp, LCX_F32, 1, n2);
                    lcx_tensor_init(&d1, kb, LCX_BF16, 1, n2);
                    lcx_convert(cx, &s1, &d1);
                    free(tmp);
                    lcx_context_destroy(cx);
                }
                const double bytes = 2.0 * (double)seq * (hq + hk) * D * (double)es;
                for (int mode = 0; mode < 3; mode++) { /* precise, hf_f32, table baseline */
                    if (mode == 2 && dtype != LCX_F32)
                        continue;
                    cfg.precision = mode == 1 ? LCX_ROPE_HF_F32 : LCX_ROPE_PRECISE;
                    for (int ii = 0; ii < (mode == 2 ? 1 : o->n_isas); ii++) {
                        for (int ti = 0; ti < o->n_threads; ti++) {
                            const int t = o->threads[ti];
                            const int isa = mode == 2 ? LCX_ISA_SCALAR : o->isas[ii];
                            lcx_context *ctx = make_ctx(isa, t);
                            if (!ctx)
                                continue;
                            rope_bench_job j;
                            memset(&j, 0, sizeof j);
                            j.ctx = ctx;
                            j.pos = pos;
                            j.seq = seq;
                            j.chunk = chunk;
                            table_rope tr = {0};
                            if (mode == 2 && (double)seq * (D / 2) * 8.0 > 2e9) {
                                printf("%-10s %8lld %-5s %-8s (table baseline skipped: %.1f GB table)\n",
                                       shapes[si].name, (long long)seq, lcx_dtype_name(dtype), "table",
                                       (double)seq * (D / 2) * 8e-9);
                                lcx_context_destroy(ctx);
                                continue;
                            }
                            if (mode < 2) {
                                if (lcx_rope_create(ctx, &cfg, seq, &j.rope) != LCX_OK) {
                                    fprintf(stderr, "longctx-bench: rope_create: %s\n", lcx_last_error());
                                    exit(1);
                                }
                                const int64_t sq[4] = {1, chunk, hq, D}, sk[4] = {1, chunk, hk, D};
                                lcx_tensor_init(&j.q, qb, dtype, 4, sq);
                                lcx_tensor_init(&j.k, kb, dtype, 4, sk);
                            } else {
                                double th[64], a;
                                lcx_rope_frequencies(&cfg, seq, th, &a);
                                tr.n_pairs = D / 2;
                                tr.cos = malloc(sizeof(float) * (size_t)seq * tr.n_pairs);
                                tr.sin = malloc(sizeof(float) * (size_t)seq * tr.n_pairs);
                                if (!tr.cos || !tr.sin) {
                                    fprintf(stderr, "longctx-bench: out of memory for the cos/sin table\n");
                                    exit(1);
                                }
                                for (int64_t p = 0; p < seq; p++)
                                    for (int i = 0; i < tr.n_pairs; i++) {
                                        const double ang = fmod((double)p * th[i], 2 * M_PI);
                                        tr.cos[p * tr.n_pairs + i] = (float)(a * cos(ang));
                                        tr.sin[p * tr.n_pairs + i] = (float)(a * sin(ang));
                                    }
                                j.tj = (table_job){&tr, qb, kb, chunk, hq, hk, D, pos, (int64_t)t * 8};
                            }
                            const stats s = time_it(rope_run, &j, o->reps);
                            const double g = bytes / s.med * 1e-9, frac = g / copy_gbps[t];
                            const char *impl = mode == 2 ? "table (plain C)" : lcx_context_kernel_name(ctx, mode ? "rope_cossin_f32" : "rope_cossin");
                            const char *mname = mode == 0 ? "precise" : mode == 1 ? "hf_f32" : "table";
                            printf("%-10s %8lld %-5s %-8s %-8s %3d %10.2f %8.2f %8.2f %7.0f%%  %s\n", shapes[si].name,
                                   (long long)seq, lcx_dtype_name(dtype), mname, mode == 2 ? "-" : lcx_isa_name((lcx_isa)isa), t,
                                   (double)seq / s.med * 1e-6, g, bytes / s.max * 1e-9, 100 * frac, impl);
                            char name[96];
                            snprintf(name, sizeof name, "rope/%s/seq%lld/%s/%s", shapes[si].name, (long long)seq,
                                     lcx_dtype_name(dtype), mname);
                            json_rec("op", name, mode == 2 ? "-" : lcx_isa_name((lcx_isa)isa), impl, t, bytes, 0, s, frac);
                            lcx_rope_destroy(j.rope);
                            free(tr.cos);
                            free(tr.sin);
                            lcx_context_destroy(ctx);
                        }
                    }
                }
            }
            free(qb);
            free(kb);
            free(pos);
        }
    }
}

/* ---------------- options ---------------- */
static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: longctx-bench [--device cpu|cuda[:N]] [--json FILE] [--isa all|LIST] [--threads LIST] [--mb N]\n"
            "                     [--reps N] [--seq LIST] [--tokens LIST] [--rank LIST] [--dtype LIST] [--quick]\n"
            "                     [ceilings] [convert] [merge] [logprobs] [rope] [attention] [s2attn] [lora]\n"
            "  --device   cpu (default) or cuda[:N]: the CUDA backend on GPU N (default 0): ceiling\n"
            "             (device-to-device copy), rope, lora (against cuBLAS), merge, logprobs, attention\n"
            "             and s2attn (against PyTorch SDPA when python3 has torch with CUDA; --seq, default\n"
            "             4096,16384,65536,131072)\n"
            "  --isa      comma list of scalar,avx2,avx512,neon, or best (default: all this CPU runs)\n"
            "  --threads  comma list of thread counts (default: 1 and the physical core count)\n"
            "  --mb       working set of the streaming benchmarks in MiB (default 256)\n"
            "  --reps     timed repetitions, median reported (default 9)\n"
            "  --seq      rope and attention prefill: comma list of sequence lengths (default 4096,65536;\n"
            "             attention: keep it <= 65536; rope: up to 2^31-1;\n"
            "             tokens stream through an 8192-token buffer, positions keep growing)\n"
            "  --shape    rope: llama3-8b (32/8 heads x 128), phi3-mini (32/32 x 96) or d64-gqa (32/8 x 64)\n"
            "  --tokens   lora: comma list of token counts (default 1,16,512,4096; --quick 16,64); the\n"
            "             multi-adapter table takes those >= 64\n"
            "  --rank     lora: comma list of adapter ranks (default 8,16,64; --quick 8,16)\n"
            "  --dtype    lora: comma list of f32, bf16w (bf16 W, A, B; f32 x, y), bf16 (all bf16)\n"
            "             (default f32,bf16w)\n"
            "  --quick    small sizes and few repetitions (smoke test); lora: in/out 256, the best ISA only\n"
            "lora: in 4096, out 4096 and 1024 (Llama projections): base GEMM, fused rank r, OpenBLAS sgemm\n"
            "  and the unfused 3-sgemm path; then 8 adapters of mixed rank against one (lcx_lora_batched).\n"
            "  Scalar skips calls over 2 GFLOP unless --isa names it.\n");
}

int main(int argc, char **argv)
{
    bench_opts o = {0};
    o.mb = 256;
    o.reps = 9;
    const char *isa_arg = "all";
    int cuda_device = -1; /* --device cuda[:N] */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "cpu"))
                cuda_device = -1;
            else if (!strncmp(d, "cuda", 4) && (d[4] == 0 || (d[4] == ':' && d[5] >= '0' && d[5] <= '9')))
                cuda_device = d[4] ? atoi(d + 5) : 0;
            else {
                usage();
                return 2;
            }
        } else if (!strcmp(a, "--json") && i + 1 < argc)
            o.json = argv[++i];
        else if (!strcmp(a, "--isa") && i + 1 < argc)
            isa_arg = argv[++i];
        else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if ((o.n_threads = parse_list(argv[++i], o.threads, 16)) <= 0) {
                usage();
                return 2;
            }
        } else if (!strcmp(a, "--mb") && i + 1 < argc)
            o.mb = atof(argv[++i]);
        else if (!strcmp(a, "--reps") && i + 1 < argc)
            o.reps = atoi(argv[++i]);
        else if (!strcmp(a, "--quick")) {
            o.mb = 16;
            o.reps = 3;
            o.quick = 1;
        } else if (!strcmp(a, "ceilings"))
            o.want_ceilings = 1;
        else if (!strcmp(a, "convert"))
            o.want_convert = 1;
        else if (!strcmp(a, "rope"))
            o.want_rope = 1;
        else if (!strcmp(a, "merge"))
            o.want_merge = 1;
        else if (!strcmp(a, "logprobs"))
            o.want_logprobs = 1;
        else if (!strcmp(a, "attention"))
            o.want_attention = 1;
        else if (!strcmp(a, "s2attn"))
            o.want_s2 = 1;
        else if (!strcmp(a, "lora"))
            o.want_lora = 1;
        else if (!strcmp(a, "--shape") && i + 1 < argc)
            o.shape = argv[++i];
        else if (!strcmp(a, "--seq") && i + 1 < argc) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            for (char *tok = strtok(buf, ","); tok && o.n_seqs < 8; tok = strtok(NULL, ","))
                o.seqs[o.n_seqs++] = strtoll(tok, NULL, 10);
        } else if (!strcmp(a, "--tokens") && i + 1 < argc) {
            char buf[256], *end;
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                const long long v = strtoll(tok, &end, 10);
                if (*end || v < 1 || v > 65536 || o.n_tokens == 8) {
                    usage();
                    return 2;
                }
                o.tokens[o.n_tokens++] = v;
            }
        } else if (!strcmp(a, "--rank") && i + 1 < argc) {
            if ((o.n_ranks = parse_list(argv[++i], o.ranks, 8)) <= 0) {
                usage();
                return 2;
            }
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int k = 0;
                while (k < LORA_NDT && strcmp(tok, lora_dt_name[k]))
                    k++;
                if (k == LORA_NDT) {
                    usage();
                    return 2;
                }
                o.lora_dtypes |= 1 << k;
            }
        } else {
            usage();
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (o.mb <= 0 || o.reps < 1) {
        usage();
        return 2;
    }
    if (!o.want_ceilings && !o.want_convert && !o.want_rope && !o.want_merge && !o.want_logprobs &&
        !o.want_attention && !o.want_s2 && !o.want_lora)
        o.want_ceilings = o.want_convert = o.want_rope = o.want_merge = o.want_logprobs = o.want_attention =
            o.want_s2 = o.want_lora = 1;
    const int seq_given = o.n_seqs; /* the CUDA attention bench has its own default lengths */
    if (o.n_seqs == 0) {
        o.seqs[o.n_seqs++] = o.quick ? 2048 : 4096;
        if (!o.quick)
            o.seqs[o.n_seqs++] = 65536;
    }
    for (int i = 0; i < o.n_seqs; i++)
        if (o.seqs[i] < 1 || o.seqs[i] > 2147483647LL) {
            usage();
            return 2;
        }
    o.want_ceilings = 1; /* every op figure is reported against the ceilings */

    if (cuda_device >= 0) {
#if defined(LCX_BENCH_CUDA)
        const lcx_bench_cuda_opts co = {cuda_device, o.reps, o.mb, o.quick, o.want_rope, o.want_merge,
                                        o.want_logprobs, o.want_lora, o.want_attention, o.want_s2,
                                        o.tokens, o.n_tokens, o.ranks, o.n_ranks,
                                        seq_given ? o.seqs : NULL, seq_given ? o.n_seqs : 0};
        return lcx_bench_cuda(&co);
#else
        (void)seq_given;
        fprintf(stderr, "longctx-bench: built without the CUDA backend\n");
        return 2;
#endif
    }

    /* ISAs */
    if (!strcmp(isa_arg, "best")) {
        o.isas[o.n_isas++] = (int)lcx_isa_best();
    } else if (!strcmp(isa_arg, "all")) {
        for (int k = LCX_ISA_SCALAR; k <= LCX_ISA_NEON; k++)
            if (lcx_isa_supported((lcx_isa)k))
                o.isas[o.n_isas++] = k;
    } else {
        o.isa_named = 1;
        char buf[128];
        snprintf(buf, sizeof buf, "%s", isa_arg);
        for (char *tok = strtok(buf, ","); tok && o.n_isas < 8; tok = strtok(NULL, ",")) {
            lcx_isa k;
            if (lcx_isa_from_name(tok, &k) != LCX_OK || k == LCX_ISA_AUTO) {
                fprintf(stderr, "longctx-bench: %s\n", lcx_last_error());
                return 2;
            }
            if (!lcx_isa_supported(k)) {
                fprintf(stderr, "longctx-bench: ISA %s is not available here, skipped\n", tok);
                continue;
            }
            o.isas[o.n_isas++] = (int)k;
        }
    }

    lcx_context *probe = make_ctx(LCX_ISA_AUTO, 1);
    if (!probe)
        return 1;
    lcx_context_info info;
    info.struct_size = sizeof info;
    lcx_context_get_info(probe, &info);
    lcx_context_destroy(probe);
    if (o.n_threads == 0) {
        o.threads[o.n_threads++] = 1;
        if (info.n_cores > 1)
            o.threads[o.n_threads++] = info.n_cores;
    }

    printf("longctx-bench %s: %s, %d cores / %d threads, L1d %" PRId64 " KiB, L2 %" PRId64
           " KiB, L3 %" PRId64 " KiB\n",
           lcx_version_string(), info.cpu_model[0] ? info.cpu_model : "unknown CPU", info.n_cores,
           info.n_pus, info.l1d_bytes >> 10, info.l2_bytes >> 10, info.l3_bytes >> 10);
    printf("median of %d runs after 2 warm-ups; working set %.0f MiB\n", o.reps, o.mb);

    if (o.json) {
        json_f = !strcmp(o.json, "-") ? stdout : fopen(o.json, "w");
        if (!json_f) {
            fprintf(stderr, "longctx-bench: cannot write %s\n", o.json);
            return 1;
        }
        fprintf(json_f, "{\"version\": \"%s\", \"cpu\": \"%s\", \"cores\": %d, \"records\": [",
                lcx_version_string(), info.cpu_model, info.n_cores);
    }
    if (o.want_ceilings)
        bench_ceilings(&o);
    if (o.want_convert)
        bench_convert(&o);
    if (o.want_merge)
        bench_merge(&o);
    if (o.want_logprobs)
        bench_logprobs(&o);
    if (o.want_attention)
        bench_attention(&o);
    if (o.want_s2)
        bench_s2(&o);
    if (o.want_lora)
        bench_lora(&o);
    if (o.want_rope)
        bench_rope(&o);
    if (json_f) {
        fprintf(json_f, "\n]}\n");
        if (json_f != stdout)
            fclose(json_f);
    }
    return 0;
}
