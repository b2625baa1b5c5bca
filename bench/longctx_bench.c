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
 *                 [--reps N] [--quick] [ceilings|convert ...]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/lcx_internal.h"

typedef struct bench_opts {
    const char *json;
    int isas[8], n_isas;
    int threads[16], n_threads;
    double mb;          /* working-set size of streaming benchmarks, MiB */
    int reps;
    int want_ceilings, want_convert;
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
    fn(arg);
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
            "                     [--reps N] [--quick] [ceilings] [convert]\n"
            "  --isa      comma list of scalar,avx2,avx512,neon (default: all this CPU runs)\n"
            "  --threads  comma list of thread counts (default: 1 and the physical core count)\n"
            "  --mb       working set of the streaming benchmarks in MiB (default 256)\n"
            "  --reps     timed repetitions, median reported (default 9)\n"
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
        } else if (!strcmp(a, "ceilings"))
            o.want_ceilings = 1;
        else if (!strcmp(a, "convert"))
            o.want_convert = 1;
        else {
            usage();
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (o.mb <= 0 || o.reps < 1) {
        usage();
        return 2;
    }
    if (!o.want_ceilings && !o.want_convert)
        o.want_ceilings = o.want_convert = 1;
    o.want_ceilings = 1; /* every op figure is reported against the ceilings */

    /* ISAs */
    if (!strcmp(isa_arg, "all")) {
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
    if (json_f) {
        fprintf(json_f, "\n]}\n");
        if (json_f != stdout)
            fclose(json_f);
    }
    return 0;
}
