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
 *                 [--reps N] [--seq LIST] [--quick] [ceilings|convert|merge|logprobs|rope|attention|s2attn ...]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/lcx_internal.h"
#if defined(LCX_BENCH_OPENBLAS)
#include <cblas.h>
#endif

typedef struct bench_opts {
    const char *json;
    int isas[8], n_isas;
    int threads[16], n_threads;
    double mb;          /* working-set size of streaming benchmarks, MiB */
    int reps;
    int want_ceilings, want_convert, want_rope, want_merge, want_logprobs, want_attention, want_s2;
    int64_t seqs[8];
    int n_seqs;
    int quick;
    const char *shape;   /* rope: only this shape (NULL = all) */
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
    printf("\n== attention decode (1 query, heads 32, kv_heads 8, dim 128, bf16 cache; GB/s of cache read) ==\n");
    printf("%-8s %-8s %3s %10s %8s  %s\n", "cache", "isa", "thr", "GB/s", "of copy", "impl");
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
                const stats s = time_it(attn_run, &j, o->reps);
                const double bytes = 2.0 * 2.0 * (double)(C * HKV * D), g = bytes / s.med * 1e-9;
                printf("%-8lld %-8s %3d %10.2f %7.0f%%  %s\n", (long long)C, lcx_isa_name((lcx_isa)o->isas[ii]), t, g,
                       100 * g / copy_gbps[t], lcx_context_kernel_name(ctx, "attn_qk"));
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
            "usage: longctx-bench [--json FILE] [--isa all|LIST] [--threads LIST] [--mb N]\n"
            "                     [--reps N] [--seq LIST] [--quick] [ceilings] [convert] [merge] [logprobs] [rope] [attention] [s2attn]\n"
            "  --isa      comma list of scalar,avx2,avx512,neon, or best (default: all this CPU runs)\n"
            "  --threads  comma list of thread counts (default: 1 and the physical core count)\n"
            "  --mb       working set of the streaming benchmarks in MiB (default 256)\n"
            "  --reps     timed repetitions, median reported (default 9)\n"
            "  --seq      rope and attention prefill: comma list of sequence lengths (default 4096,65536;\n"
            "             attention: keep it <= 65536; rope: up to 2^31-1;\n"
            "             tokens stream through an 8192-token buffer, positions keep growing)\n"
            "  --shape    rope: llama3-8b (32/8 heads x 128), phi3-mini (32/32 x 96) or d64-gqa (32/8 x 64)\n"
            "  --quick    small sizes and few repetitions (smoke test)\n");
}

int main(int argc, char **argv)
{
    bench_opts o = {0};
    o.mb = 256;
    o.reps = 9;
    const char *isa_arg = "all";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json") && i + 1 < argc)
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
        else if (!strcmp(a, "--shape") && i + 1 < argc)
            o.shape = argv[++i];
        else if (!strcmp(a, "--seq") && i + 1 < argc) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            for (char *tok = strtok(buf, ","); tok && o.n_seqs < 8; tok = strtok(NULL, ","))
                o.seqs[o.n_seqs++] = strtoll(tok, NULL, 10);
        }
        else {
            usage();
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (o.mb <= 0 || o.reps < 1) {
        usage();
        return 2;
    }
    if (!o.want_ceilings && !o.want_convert && !o.want_rope && !o.want_merge && !o.want_logprobs &&
        !o.want_attention && !o.want_s2)
        o.want_ceilings = o.want_convert = o.want_rope = o.want_merge = o.want_logprobs = o.want_attention =
            o.want_s2 = 1;
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

    /* ISAs */
    if (!strcmp(isa_arg, "best")) {
        o.isas[o.n_isas++] = (int)lcx_isa_best();
    } else if (!strcmp(isa_arg, "all")) {
        for (int k = LCX_ISA_SCALAR; k <= LCX_ISA_NEON; k++)
            if (lcx_isa_supported((lcx_isa)k))
                o.isas[o.n_isas++] = k;
    } else {
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
    if (o.want_rope)
        bench_rope(&o);
    if (json_f) {
        fprintf(json_f, "\n]}\n");
        if (json_f != stdout)
            fclose(json_f);
    }
    return 0;
}
