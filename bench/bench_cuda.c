/* longctx-bench --device cuda: the CUDA backend's ops on one GPU.
 *
 * Every op runs on a context created on a stream of our own; times come from
 * CUDA events around the call on that stream (median of the repetitions
 * after two warm-ups). Ceiling: device-to-device cudaMemcpyAsync, bytes read
 * + written. LoRA is compared with cuBLAS in the same run: one GEMM for the
 * base layer, two more for the unfused low-rank delta. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#if defined(LCX_BENCH_CUBLAS)
#include <cublas_v2.h>
#endif

#include "longctx/longctx.h"
#include "bench_cuda.h"

#ifndef LCX_BENCH_SDPA_SCRIPT
#define LCX_BENCH_SDPA_SCRIPT "bench/sdpa_bench.py"
#endif

#define CK(call)                                                                                           \
    do {                                                                                                   \
        const cudaError_t e_ = (call);                                                                     \
        if (e_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "longctx-bench: %s failed: %s\n", #call, cudaGetErrorString(e_));             \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

typedef struct dstats { double med, min, max; } dstats; /* seconds */

typedef void (*dev_fn)(void *arg);

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static cudaStream_t g_stream;
static cudaEvent_t g_e0, g_e1;

/* seconds of one call, by CUDA events on the bench stream */
static double time_once(dev_fn fn, void *arg)
{
    CK(cudaEventRecord(g_e0, g_stream));
    fn(arg);
    CK(cudaEventRecord(g_e1, g_stream));
    CK(cudaEventSynchronize(g_e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, g_e0, g_e1));
    return 1e-3 * (double)ms;
}

static dstats time_dev(dev_fn fn, void *arg, int reps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    fn(arg);
    fn(arg);
    for (int r = 0; r < reps; r++)
        t[r] = time_once(fn, arg);
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return (dstats){t[reps / 2], t[0], t[reps - 1]};
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    CK(cudaMalloc(&p, bytes));
    return p;
}

/* device buffer of n values of dtype, deterministic values in [-r, r) */
static void *dev_fill(lcx_dtype dt, size_t n, float r, uint32_t seed)
{
    const size_t es = lcx_dtype_size(dt);
    void *h = malloc(n * es);
    if (!h) {
        fprintf(stderr, "longctx-bench: out of host memory\n");
        exit(1);
    }
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        const float v = r * ((float)(s >> 8) * (1.0f / 8388608.0f) - 1.0f);
        uint32_t u;
        memcpy(&u, &v, 4);
        if (dt == LCX_F32)
            ((float *)h)[i] = v;
        else if (dt == LCX_BF16)
            ((uint16_t *)h)[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        else { /* f16 of |v| < 2: sign, exponent, 10 mantissa bits (truncated: any value will do) */
            const uint32_t sign = (u >> 16) & 0x8000u;
            const int ex = (int)((u >> 23) & 0xff) - 127 + 15;
            ((uint16_t *)h)[i] = (uint16_t)(ex <= 0 ? sign : sign | (uint32_t)ex << 10 | ((u >> 13) & 0x3ffu));
        }
    }
    void *d = dev_alloc(n * es);
    CK(cudaMemcpy(d, h, n * es, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static lcx_context *make_cuda_ctx(int device)
{
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    o.cuda_device = device;
    o.cuda_stream = (void *)g_stream;
    lcx_context *ctx = NULL;
    if (lcx_context_create(&o, &ctx) != LCX_OK) {
        fprintf(stderr, "longctx-bench: CUDA context on device %d: %s\n", device, lcx_last_error());
        exit(1);
    }
    return ctx;
}

static void check(lcx_status st, const char *what)
{
    if (st != LCX_OK) {
        fprintf(stderr, "longctx-bench: %s: %s\n", what, lcx_last_error());
        exit(1);
    }
}

/* ---- ceiling ---- */

typedef struct copy_dev { void *dst; const void *src; size_t bytes; } copy_dev;

static void copy_dev_run(void *arg)
{
    copy_dev *c = arg;
    CK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, g_stream));
}

static double g_copy; /* GB/s, best run */

static void bench_copy(const lcx_bench_cuda_opts *o)
{
    const size_t bytes = (size_t)(o->mb * 1048576.0);
    copy_dev c = {dev_alloc(bytes), dev_alloc(bytes), bytes};
    CK(cudaMemset(c.dst, 1, bytes));
    CK(cudaMemset((void *)c.src, 2, bytes));
    const dstats s = time_dev(copy_dev_run, &c, o->reps);
    g_copy = 2.0 * (double)bytes / s.min * 1e-9;
    printf("\n== ceiling ==\ndevice-to-device copy (read+write, %.0f MiB): median %.1f GB/s, best %.1f GB/s\n", o->mb,
           2.0 * (double)bytes / s.med * 1e-9, g_copy);
    CK(cudaFree(c.dst));
    CK(cudaFree((void *)c.src));
}

/* ---- RoPE ---- */

typedef struct rope_dev {
    lcx_context *ctx;
    lcx_rope *rope;
    lcx_tensor q, k;
    const int64_t *pos; /* device, or NULL */
} rope_dev;

static void rope_dev_run(void *arg)
{
    rope_dev *j = arg;
    check(lcx_rope_apply(j->ctx, j->rope, &j->q, &j->k, j->pos), "rope_apply");
}

static void bench_rope_dev(const lcx_bench_cuda_opts *o, lcx_context *ctx)
{
    const int64_t hq = 32, hk = 8, D = 128, T = o->quick ? 4096 : 65536;
    printf("\n== rope: q+k in place, llama3-8b heads (32/8 x 128), %lld tokens, YaRN (bytes = q+k read and "
           "written) ==\n%-6s %-8s %-10s %10s %10s %8s\n",
           (long long)T, "dtype", "mode", "positions", "GB/s", "best", "of copy");
    int64_t *hpos = malloc(sizeof(int64_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++)
        hpos[t] = 100000 + t;
    int64_t *dpos = dev_alloc(sizeof(int64_t) * (size_t)T);
    CK(cudaMemcpy(dpos, hpos, sizeof(int64_t) * (size_t)T, cudaMemcpyHostToDevice));
    free(hpos);
    for (int dt = 0; dt < 2; dt++) {
        const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
        void *q = dev_fill(dtype, (size_t)(T * hq * D), 0.5f, 1), *k = dev_fill(dtype, (size_t)(T * hk * D), 0.5f, 2);
        for (int mode = 0; mode < 2; mode++)
            for (int withpos = 0; withpos < 2; withpos++) {
                lcx_rope_config cfg;
                lcx_rope_config_default(&cfg);
                cfg.type = LCX_ROPE_YARN;
                cfg.head_dim = (int32_t)D;
                cfg.factor = 4;
                cfg.original_max_position = 32768;
                cfg.attention_factor = 1.0; /* rotated many times: keep magnitudes */
                cfg.precision = mode ? LCX_ROPE_HF_F32 : LCX_ROPE_PRECISE;
                rope_dev j = {ctx, NULL, {0}, {0}, withpos ? dpos : NULL};
                check(lcx_rope_create(ctx, &cfg, 131072, &j.rope), "rope_create");
                const int64_t sq[4] = {1, T, hq, D}, sk[4] = {1, T, hk, D};
                lcx_tensor_init(&j.q, q, dtype, 4, sq);
                lcx_tensor_init(&j.k, k, dtype, 4, sk);
                const dstats s = time_dev(rope_dev_run, &j, o->reps);
                const double bytes = 2.0 * (double)(T * (hq + hk) * D) * (double)lcx_dtype_size(dtype);
                printf("%-6s %-8s %-10s %10.1f %10.1f %7.0f%%\n", lcx_dtype_name(dtype), mode ? "hf_f32" : "precise",
                       withpos ? "device" : "0..T-1", bytes / s.med * 1e-9, bytes / s.min * 1e-9,
                       100.0 * bytes / s.med * 1e-9 / g_copy);
                lcx_rope_destroy(j.rope);
            }
        CK(cudaFree(q));
        CK(cudaFree(k));
    }
    CK(cudaFree(dpos));
}

/* ---- merge ---- */

typedef struct merge_dev { lcx_context *ctx; lcx_tensor in[2], out; } merge_dev;

static void merge_dev_run(void *arg)
{
    merge_dev *j = arg;
    const double half[2] = {0.5, 0.5};
    check(lcx_merge_weights(j->ctx, 2, j->in, half, &j->out), "merge");
}

static void bench_merge_dev(const lcx_bench_cuda_opts *o, lcx_context *ctx)
{
    printf("\n== merge: out = 0.5 a + 0.5 b (bytes = a + b read, out written) ==\n%-6s %10s %10s %8s\n", "dtype",
           "GB/s", "best", "of copy");
    for (int dt = 0; dt < 2; dt++) {
        const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
        const size_t es = lcx_dtype_size(dtype), n = (size_t)(o->mb * 1048576.0) / es;
        merge_dev j = {ctx, {{0}}, {0}};
        void *a = dev_fill(dtype, n, 1.0f, 3), *b = dev_fill(dtype, n, 1.0f, 4), *c = dev_alloc(n * es);
        const int64_t shape[1] = {(int64_t)n};
        lcx_tensor_init(&j.in[0], a, dtype, 1, shape);
        lcx_tensor_init(&j.in[1], b, dtype, 1, shape);
        lcx_tensor_init(&j.out, c, dtype, 1, shape);
        const dstats s = time_dev(merge_dev_run, &j, o->reps);
        const double bytes = 3.0 * (double)n * (double)es;
        printf("%-6s %10.1f %10.1f %7.0f%%\n", lcx_dtype_name(dtype), bytes / s.med * 1e-9, bytes / s.min * 1e-9,
               100.0 * bytes / s.med * 1e-9 / g_copy);
        CK(cudaFree(a));
        CK(cudaFree(b));
        CK(cudaFree(c));
    }
}

/* ---- log-probabilities ---- */

typedef struct lp_dev { lcx_context *ctx; lcx_tensor logits; const int64_t *targets; float *out; } lp_dev;

static void lp_dev_run(void *arg)
{
    lp_dev *j = arg;
    check(lcx_token_logprobs(j->ctx, &j->logits, j->targets, j->out), "token_logprobs");
}

static void bench_logprobs_dev(const lcx_bench_cuda_opts *o, lcx_context *ctx)
{
    printf("\n== token logprobs (bytes = logits read; the call waits for its target check) ==\n"
           "%-7s %-6s %6s %10s %10s %8s\n",
           "vocab", "dtype", "rows", "GB/s", "best", "of copy");
    const int64_t V = 128256;
    for (int dt = 0; dt < 2; dt++) {
        const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
        const size_t es = lcx_dtype_size(dtype);
        const int64_t rows = (int64_t)(o->mb * 1048576.0 / (double)es / (double)V) + 1;
        int64_t *ht = malloc(sizeof(int64_t) * (size_t)rows);
        for (int64_t r = 0; r < rows; r++)
            ht[r] = (r * 7919) % V;
        lp_dev j = {ctx, {0}, dev_alloc(sizeof(int64_t) * (size_t)rows), dev_alloc(sizeof(float) * (size_t)rows)};
        CK(cudaMemcpy((void *)j.targets, ht, sizeof(int64_t) * (size_t)rows, cudaMemcpyHostToDevice));
        free(ht);
        void *x = dev_fill(dtype, (size_t)(rows * V), 10.0f, 5);
        const int64_t shape[2] = {rows, V};
        lcx_tensor_init(&j.logits, x, dtype, 2, shape);
        const dstats s = time_dev(lp_dev_run, &j, o->reps);
        const double bytes = (double)(rows * V) * (double)es;
        printf("%-7lld %-6s %6lld %10.1f %10.1f %7.0f%%\n", (long long)V, lcx_dtype_name(dtype), (long long)rows,
               bytes / s.med * 1e-9, bytes / s.min * 1e-9, 100.0 * bytes / s.med * 1e-9 / g_copy);
        CK(cudaFree(x));
        CK(cudaFree((void *)j.targets));
        CK(cudaFree(j.out));
    }
}

/* ---- LoRA ---- */

typedef struct lora_dev {
    lcx_context *ctx;
    lcx_tensor x, w, a, b, y;
    int with_delta;
#if defined(LCX_BENCH_CUBLAS)
    cublasHandle_t h;
    cudaDataType_t ct;
    void *u; /* [T][r] unfused low-rank product, x's dtype */
#endif
    int64_t T, in, out, r;
    float scale;
} lora_dev;

static void lora_dev_run(void *arg)
{
    lora_dev *j = arg;
    check(lcx_lora_linear(j->ctx, &j->x, &j->w, NULL, j->with_delta ? &j->a : NULL, j->with_delta ? &j->b : NULL,
                          j->scale, &j->y, 0),
          "lora_linear");
}

#if defined(LCX_BENCH_CUBLAS)
static void cublas_check(cublasStatus_t st, const char *what)
{
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "longctx-bench: %s failed: cuBLAS status %d\n", what, (int)st);
        exit(1);
    }
}

/* row-major y[T][out] = x[T][in] W[out][in]^T is, column-major,
 * y^T (out x T) = op_T(W as in x out) * x^T (in x T) */
static void lora_cublas_run(void *arg)
{
    lora_dev *j = arg;
    const float one = 1.0f, zero = 0.0f;
    cublas_check(cublasGemmEx(j->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)j->out, (int)j->T, (int)j->in, &one, j->w.data,
                              j->ct, (int)j->in, j->x.data, j->ct, (int)j->in, &zero, j->y.data, j->ct, (int)j->out,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (base)");
    if (!j->with_delta)
        return;
    /* u^T (r x T) = op_T(A as in x r) x^T; y^T += s op_T(B as r x out) u^T */
    cublas_check(cublasGemmEx(j->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)j->r, (int)j->T, (int)j->in, &one, j->a.data,
                              j->ct, (int)j->in, j->x.data, j->ct, (int)j->in, &zero, j->u, j->ct, (int)j->r,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (x A^T)");
    cublas_check(cublasGemmEx(j->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)j->out, (int)j->T, (int)j->r, &j->scale, j->b.data,
                              j->ct, (int)j->r, j->u, j->ct, (int)j->r, &one, j->y.data, j->ct, (int)j->out,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (u B^T)");
}
#endif

/* bytes a call must move at least: x, W, y (and A, B with the delta) */
static double lora_bytes(const lora_dev *j, lcx_dtype dt, int with_delta)
{
    const double T = (double)j->T, in = (double)j->in, out = (double)j->out, r = (double)j->r;
    return (double)lcx_dtype_size(dt) * (T * in + out * in + T * out + (with_delta ? r * (in + out) : 0));
}

/* a second context created with LONGCTX_CUDA_WGMMA=1 (the variable restored
 * after) where its kernel for `op` is `want` and the default context's is
 * not; else NULL. Prints which kernels run */
static lcx_context *make_wgmma_ctx(int device, lcx_context *ctx, const char *op, const char *want, const char *what)
{
    const char *old = getenv("LONGCTX_CUDA_WGMMA");
    char keep[16] = "";
    if (old)
        snprintf(keep, sizeof keep, "%s", old);
    setenv("LONGCTX_CUDA_WGMMA", "1", 1);
    lcx_context *wctx = make_cuda_ctx(device);
    if (old)
        setenv("LONGCTX_CUDA_WGMMA", keep, 1);
    else
        unsetenv("LONGCTX_CUDA_WGMMA");
    const char *kn = lcx_context_kernel_name(wctx, op);
    const char *kd = lcx_context_kernel_name(ctx, op);
    if (!kn || strcmp(kn, want) != 0 || (kd && strcmp(kd, kn) == 0)) {
        lcx_context_destroy(wctx); /* not available here, or already the default's */
        wctx = NULL;
    }
    printf("(%s kernels: default %s%s%s)\n", what, kd ? kd : "?", wctx ? ", wgmma " : "", wctx ? kn : "");
    return wctx;
}

static void bench_lora_dev(const lcx_bench_cuda_opts *o, lcx_context *ctx)
{
    static const int64_t def_tokens[4] = {1, 8, 512, 4096};
    const int64_t *tokens = o->n_tokens ? o->tokens : def_tokens;
    const int n_tokens = o->n_tokens ? o->n_tokens : 4;
    const int64_t in = o->quick ? 1024 : 4096, out = in;
    const int r = o->n_ranks ? o->ranks[0] : 16;
    printf("\n== lora: y = x W^T + s (x A^T) B^T, in %lld, out %lld, rank %d; TFLOP/s of the base GEMM "
           "(2 T in out); GB/s of the bytes a call must move at least (x, W, [A, B,] y) and %% of the copy "
           "ceiling (what bounds few tokens) ==\n%-6s %-6s %-26s %10s %10s %9s %7s %9s\n",
           (long long)in, (long long)out, r, "tokens", "dtype", "impl", "ms", "TFLOP/s", "GB/s", "% copy",
           "/ cuBLAS");
#if defined(LCX_BENCH_CUBLAS)
    cublasHandle_t h;
    cublas_check(cublasCreate(&h), "cublasCreate");
    cublas_check(cublasSetStream(h, g_stream), "cublasSetStream");
#endif
    /* the warpgroup-MMA GEMM (opt-in, sm_90a) on a second context, timed
     * beside the default where this device and build run it */
    lcx_context *const wctx = make_wgmma_ctx(o->device, ctx, "gemm_ukr", "lcx_k_lora_gemm_wgmma__cuda", "LoRA GEMM");
    for (int ti = 0; ti < n_tokens; ti++)
        for (int dt = 0; dt < 2; dt++) {
            const int64_t T = tokens[ti];
            const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
            lora_dev j;
            memset(&j, 0, sizeof j);
            j.ctx = ctx;
            j.T = T;
            j.in = in;
            j.out = out;
            j.r = r;
            j.scale = 2.0f;
            const int64_t sx[2] = {T, in}, sw[2] = {out, in}, sa[2] = {r, in}, sb[2] = {out, r}, sy[2] = {T, out};
            lcx_tensor_init(&j.x, dev_fill(dtype, (size_t)(T * in), 1.0f, 6), dtype, 2, sx);
            lcx_tensor_init(&j.w, dev_fill(dtype, (size_t)(out * in), 0.05f, 7), dtype, 2, sw);
            lcx_tensor_init(&j.a, dev_fill(dtype, (size_t)(r * in), 0.05f, 8), dtype, 2, sa);
            lcx_tensor_init(&j.b, dev_fill(dtype, (size_t)(out * r), 0.05f, 9), dtype, 2, sb);
            lcx_tensor_init(&j.y, dev_alloc((size_t)(T * out) * lcx_dtype_size(dtype)), dtype, 2, sy);
            const double flops = 2.0 * (double)T * (double)in * (double)out;
            double base_cublas = 0;
#if defined(LCX_BENCH_CUBLAS)
            j.h = h;
            j.ct = dt ? CUDA_R_16BF : CUDA_R_32F;
            j.u = dev_alloc((size_t)(T * r) * lcx_dtype_size(dtype));
            for (int d = 0; d < 2; d++) {
                j.with_delta = d;
                const dstats s = time_dev(lora_cublas_run, &j, o->reps);
                if (!d)
                    base_cublas = s.med;
                printf("%-6lld %-6s %-26s %10.3f %10.2f %9.1f %6.1f%% %8.2fx\n", (long long)T, lcx_dtype_name(dtype),
                       d ? "cuBLAS base + 2 GEMM delta" : "cuBLAS GEMM (base)", 1e3 * s.med, flops / s.med * 1e-12,
                       lora_bytes(&j, dtype, d) / s.med * 1e-9, 100.0 * lora_bytes(&j, dtype, d) / s.med * 1e-9 / g_copy,
                       s.med / base_cublas);
            }
#endif
            for (int v = 0; v < (wctx && dt ? 4 : 2); v++) {
                const int d = v & 1;
                static const char *const names[4] = {"longctx base", "longctx fused", "longctx wgmma base",
                                                     "longctx wgmma fused"};
                j.with_delta = d;
                j.ctx = v < 2 ? ctx : wctx;
                lcx_status st = lcx_lora_linear(j.ctx, &j.x, &j.w, NULL, d ? &j.a : NULL, d ? &j.b : NULL, j.scale,
                                                &j.y, 0);
                if (st == LCX_OK)
                    st = lcx_context_synchronize(j.ctx);
                if (st != LCX_OK) {
                    printf("%-6lld %-6s %-26s %s\n", (long long)T, lcx_dtype_name(dtype), names[v], lcx_last_error());
                    continue;
                }
                const dstats s = time_dev(lora_dev_run, &j, o->reps);
                printf("%-6lld %-6s %-26s %10.3f %10.2f %9.1f %6.1f%% ", (long long)T, lcx_dtype_name(dtype),
                       names[v], 1e3 * s.med, flops / s.med * 1e-12,
                       lora_bytes(&j, dtype, d) / s.med * 1e-9, 100.0 * lora_bytes(&j, dtype, d) / s.med * 1e-9 / g_copy);
                if (base_cublas > 0)
                    printf("%8.2fx\n", s.med / base_cublas);
                else
                    printf("%9s\n", "-");
            }
#if defined(LCX_BENCH_CUBLAS)
            CK(cudaFree(j.u));
#endif
            CK(cudaFree(j.x.data));
            CK(cudaFree(j.w.data));
            CK(cudaFree(j.a.data));
            CK(cudaFree(j.b.data));
            CK(cudaFree(j.y.data));
        }
#if defined(LCX_BENCH_CUBLAS)
    cublasDestroy(h);
#endif
    if (wctx)
        lcx_context_destroy(wctx);
}

/* ---- attention ---- */

typedef struct attn_dev {
    lcx_context *ctx;
    lcx_attention_params p;
    const lcx_s2_params *s2;
    lcx_tensor q, k, v, o;
} attn_dev;

static void attn_dev_run(void *arg)
{
    attn_dev *j = arg;
    const lcx_status st = j->s2 ? lcx_attention_s2_forward(j->ctx, j->s2, &j->q, &j->k, &j->v, &j->o, NULL)
                                : lcx_attention_forward(j->ctx, &j->p, &j->q, &j->k, &j->v, &j->o, NULL);
    check(st, j->s2 ? "attention_s2_forward" : "attention_forward");
}

/* causal attention over fresh device tensors: q [1][sq][h][d] of qdt, k and
 * v [1][sk][hkv][d] of kvdt, out like q */
static void attn_dev_make(attn_dev *j, lcx_context *ctx, lcx_dtype qdt, lcx_dtype kvdt, int64_t sq, int64_t sk,
                          int64_t h, int64_t hkv, int64_t d, uint32_t seed)
{
    memset(j, 0, sizeof *j);
    j->ctx = ctx;
    lcx_attention_params_default(&j->p);
    j->p.causal = 1;
    const int64_t shq[4] = {1, sq, h, d}, shk[4] = {1, sk, hkv, d};
    lcx_tensor_init(&j->q, dev_fill(qdt, (size_t)(sq * h * d), 1.0f, seed), qdt, 4, shq);
    lcx_tensor_init(&j->k, dev_fill(kvdt, (size_t)(sk * hkv * d), 1.0f, seed + 1), kvdt, 4, shk);
    lcx_tensor_init(&j->v, dev_fill(kvdt, (size_t)(sk * hkv * d), 1.0f, seed + 2), kvdt, 4, shk);
    lcx_tensor_init(&j->o, dev_alloc((size_t)(sq * h * d) * lcx_dtype_size(qdt)), qdt, 4, shq);
}

static void attn_dev_free(attn_dev *j)
{
    CK(cudaFree(j->q.data));
    CK(cudaFree(j->k.data));
    CK(cudaFree(j->v.data));
    CK(cudaFree(j->o.data));
}

/* one timed call when a single call takes a second or more (long prefill
 * with an untuned kernel), the usual repetitions otherwise */
static dstats time_dev_adaptive(dev_fn fn, void *arg, int reps)
{
    const double t = time_once(fn, arg);
    if (t >= 1.0)
        return (dstats){t, t, t};
    return time_dev(fn, arg, reps);
}

/* PyTorch's scaled_dot_product_attention (flash backend) on the same GPU:
 * bench/sdpa_bench.py run through python3 when torch with CUDA imports.
 * Returns the TFLOP/s it prints for (seq, causal), or 0 when unavailable. */
static double sdpa_tflops(int device, int64_t seq, int64_t H, int64_t Hkv, int64_t D, int reps)
{
    const char *script = getenv("LONGCTX_SDPA_SCRIPT");
    FILE *f = NULL;
    const char *cands[3] = {script, LCX_BENCH_SDPA_SCRIPT, "bench/sdpa_bench.py"};
    for (int i = 0; i < 3 && !f; i++)
        if (cands[i] && (f = fopen(cands[i], "r")) != NULL) {
            fclose(f);
            script = cands[i];
        }
    if (!f)
        return 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 '%s' --device %d --seq %lld --heads %lld --kv-heads %lld --dim %lld --reps %d 2>/dev/null",
             script, device, (long long)seq, (long long)H, (long long)Hkv, (long long)D, reps);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0;
    double tf = 0;
    char line[256];
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "sdpa %lf", &tf) == 1)
            break;
    pclose(p);
    return tf;
}

static void bench_attention_dev(const lcx_bench_cuda_opts *o, lcx_context *ctx)
{
    const int64_t H = 32, HKV = 8, D = 128;
    static const int64_t def_seqs[4] = {4096, 16384, 65536, 131072}, quick_seqs[1] = {4096};
    const int64_t *seqs = o->n_seqs ? o->seqs : o->quick ? quick_seqs : def_seqs;
    const int n_seqs = o->n_seqs ? o->n_seqs : o->quick ? 1 : 4;
    printf("\n== attention prefill (heads 32, kv_heads 8, dim 128, causal; TFLOP/s = 2 * 2 * S^2 / 2 * H * D) ==\n"
           "%-8s %-6s %10s %10s %12s %9s\n",
           "seq", "dtype", "ms", "TFLOP/s", "SDPA TFLOP/s", "/ SDPA");
    /* the wgmma kernel (opt-in, sm_90a) on a second context where it runs */
    lcx_context *const wctx = make_wgmma_ctx(o->device, ctx, "attn_qk", "lcx_k_attention_wgmma__cuda", "attention");
    for (int si = 0; si < n_seqs; si++) {
        const int64_t S = seqs[si];
        double sdpa = -1; /* measured once per length (bf16) */
        for (int dt = 0; dt < (wctx ? 5 : 3); dt++) {
            const lcx_dtype dtype = dt ? LCX_BF16 : LCX_F32;
            static const char *const labels[5] = {"f32", "bf16", "bf16*", "wg", "wg*"};
            const char *const label = labels[dt];
            attn_dev j;
            attn_dev_make(&j, dt >= 3 ? wctx : ctx, dtype, dtype, S, S, H, HKV, D, 11);
            j.p.pv_16bit = dt == 2 || dt == 4;
            const dstats s = time_dev_adaptive(attn_dev_run, &j, o->reps);
            const double flops = 2.0 * (double)S * (double)S * (double)H * (double)D, tf = flops / s.med * 1e-12;
            if (dt && sdpa < 0)
                sdpa = sdpa_tflops(o->device, S, H, HKV, D, o->reps);
            if (dt && sdpa > 0)
                printf("%-8lld %-6s %10.2f %10.2f %12.2f %8.0f%%\n", (long long)S, label, 1e3 * s.med, tf, sdpa,
                       100.0 * tf / sdpa);
            else
                printf("%-8lld %-6s %10.2f %10.2f %12s %9s\n", (long long)S, label, 1e3 * s.med, tf,
                       dt ? "n/a" : "-", "-");
            attn_dev_free(&j);
        }
    }
    printf("  (f32 runs the SIMT kernel, bf16 the tensor-core kernel with f32-level P V (P split in two bf16 "
           "halves), bf16* the same with pv_16bit = 1 (P rounded to bf16, FlashAttention's numerics); wg, wg*: "
           "bf16 and bf16* on the wgmma kernel where it runs; SDPA: bench/sdpa_bench.py through python3, flash "
           "backend, bf16; n/a where torch with CUDA is missing)\n");
    if (wctx)
        lcx_context_destroy(wctx);

    /* decode: one query over a bf16 cache; q bf16 (tensor cores) and f32 (SIMT) */
    printf("\n== attention decode (1 query, heads 32, kv_heads 8, dim 128, bf16 cache; GB/s of K+V read) ==\n"
           "%-8s %-5s %10s %10s %8s\n",
           "cache", "q", "us", "GB/s", "of copy");
    const int64_t caches[4] = {4096, 32768, 131072, 524288};
    for (int ci = 0; ci < (o->quick ? 1 : 4); ci++)
        for (int qi = 0; qi < 2; qi++) {
            const int64_t C = caches[ci];
            const lcx_dtype qdt = qi ? LCX_F32 : LCX_BF16;
            attn_dev j;
            attn_dev_make(&j, ctx, qdt, LCX_BF16, 1, C, H, HKV, D, 14);
            const dstats s = time_dev(attn_dev_run, &j, o->reps);
            const double bytes = 2.0 * 2.0 * (double)(C * HKV * D);
            printf("%-8lld %-5s %10.1f %10.1f %7.0f%%\n", (long long)C, lcx_dtype_name(qdt), 1e6 * s.med,
                   bytes / s.med * 1e-9, 100.0 * bytes / s.med * 1e-9 / g_copy);
            attn_dev_free(&j);
        }
}

static void bench_s2_dev(const lcx_bench_cuda_opts *o, lcx_context *ctx)
{
    const int64_t H = 32, HKV = 8, D = 128, S = o->quick ? 4096 : 16384;
    printf("\n== S2-Attn (heads 32, kv_heads 8, dim 128, bf16, seq %lld, SEGMENTS) against full causal ==\n"
           "%-6s %10s %10s %10s %8s\n",
           (long long)S, "g", "S2 ms", "causal ms", "ratio", "ideal");
    attn_dev j;
    attn_dev_make(&j, ctx, LCX_BF16, LCX_BF16, S, S, H, HKV, D, 17);
    const dstats full = time_dev_adaptive(attn_dev_run, &j, o->reps);
    const int64_t gs[2] = {S / 4, 2048};
    for (int gi = 0; gi < 2; gi++) {
        lcx_s2_params sp;
        lcx_s2_params_default(&sp);
        sp.group_size = gs[gi];
        j.s2 = &sp;
        const dstats s = time_dev_adaptive(attn_dev_run, &j, o->reps);
        printf("%-6lld %10.2f %10.2f %10.3f %8.3f\n", (long long)gs[gi], 1e3 * s.med, 1e3 * full.med, s.med / full.med,
               (double)gs[gi] / (double)S);
        j.s2 = NULL;
    }
    attn_dev_free(&j);
}

int lcx_bench_cuda(const lcx_bench_cuda_opts *o)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        fprintf(stderr, "longctx-bench: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "none");
        return 1;
    }
    if (o->device < 0 || o->device >= n) {
        fprintf(stderr, "longctx-bench: CUDA device %d out of range (%d present)\n", o->device, n);
        return 2;
    }
    CK(cudaSetDevice(o->device));
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, o->device));
    printf("CUDA device %d: %s, sm_%d%d, %d SMs, %.1f GiB; median of %d runs after 2 warm-ups (CUDA events)\n",
           o->device, prop.name, prop.major, prop.minor, prop.multiProcessorCount,
           (double)prop.totalGlobalMem / 1073741824.0, o->reps);
    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    CK(cudaEventCreate(&g_e0));
    CK(cudaEventCreate(&g_e1));
    lcx_context *ctx = make_cuda_ctx(o->device);
    bench_copy(o);
    if (o->want_rope)
        bench_rope_dev(o, ctx);
    if (o->want_lora)
        bench_lora_dev(o, ctx);
    if (o->want_merge)
        bench_merge_dev(o, ctx);
    if (o->want_logprobs)
        bench_logprobs_dev(o, ctx);
    if (o->want_attention)
        bench_attention_dev(o, ctx);
    if (o->want_s2)
        bench_s2_dev(o, ctx);
    lcx_context_destroy(ctx);
    CK(cudaEventDestroy(g_e0));
    CK(cudaEventDestroy(g_e1));
    CK(cudaStreamDestroy(g_stream));
    return 0;
}
