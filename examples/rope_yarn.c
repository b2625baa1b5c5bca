/* longctx-rope-demo: YaRN-scaled RoPE (Qwen2-style: head_dim 128, base 1e6,
 * factor 4, original context 32768) over a batch of 131072 tokens, q with 8
 * heads and k with 2 (GQA), in place. Prints the time of the precise and
 * the Hugging Face float32 modes and their largest error against a
 * double-precision oracle on sampled tokens, then runs causal attention over
 * the rotated q and k (up to 16384 tokens) with an oracle check.
 *   longctx-rope-demo [tokens] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <longctx/longctx.h>

enum { HQ = 8, HK = 2, D = 128 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float input(size_t i)
{
    /* deterministic values in [-1, 1) */
    uint32_t x = (uint32_t)i * 2654435761u;
    x ^= x >> 15;
    return (float)(x & 0xffff) / 32768.0f - 1.0f;
}

#define CHECK(call)                                                                  \
    do {                                                                             \
        lcx_status st_ = (call);                                                     \
        if (st_ != LCX_OK) {                                                         \
            fprintf(stderr, "%s: %s: %s\n", #call, lcx_status_string(st_), lcx_last_error()); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

int main(int argc, char **argv)
{
    const int64_t T = argc > 1 ? atoll(argv[1]) : 131072;
    if (T < 1 || T > (1LL << 31)) {
        fprintf(stderr, "usage: longctx-rope-demo [tokens]\n");
        return 2;
    }
    lcx_context *ctx;
    CHECK(lcx_context_create(NULL, &ctx));
    lcx_rope_config cfg;
    lcx_rope_config_default(&cfg);
    cfg.type = LCX_ROPE_YARN;
    cfg.head_dim = D;
    cfg.base = 1e6;
    cfg.factor = 4;
    cfg.original_max_position = 32768;
    double theta[D / 2], a;
    CHECK(lcx_rope_frequencies(&cfg, T, theta, &a));
    printf("YaRN: head_dim %d, base 1e6, factor 4, L0 32768 -> attention factor %.10f\n", D, a);
    printf("batch: %lld tokens, q %d heads, k %d heads, f32, %s on %d threads\n", (long long)T, HQ, HK,
           lcx_context_isa_name(ctx), lcx_context_n_threads(ctx));

    const size_t nq = (size_t)T * HQ * D, nk = (size_t)T * HK * D;
    float *q = malloc(nq * sizeof *q), *k = malloc(nk * sizeof *k);
    if (!q || !k) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    lcx_tensor tq, tk;
    const int64_t sq[4] = {1, T, HQ, D}, sk[4] = {1, T, HK, D};
    lcx_tensor_init(&tq, q, LCX_F32, 4, sq);
    lcx_tensor_init(&tk, k, LCX_F32, 4, sk);

    /* sample tokens for the error check: the first, the last, and spread */
    enum { NS = 512 };
    int64_t sample[NS];
    for (int i = 0; i < NS; i++)
        sample[i] = i == NS - 1 ? T - 1 : (int64_t)((double)i / (NS - 1) * (double)(T - 1));

    for (int mode = 0; mode < 2; mode++) {
        cfg.precision = mode ? LCX_ROPE_HF_F32 : LCX_ROPE_PRECISE;
        lcx_rope *rope;
        CHECK(lcx_rope_create(ctx, &cfg, T, &rope));
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            for (size_t i = 0; i < nq; i++)
                q[i] = input(i);
            for (size_t i = 0; i < nk; i++)
                k[i] = input(i + nq);
            const double t0 = now();
            CHECK(lcx_rope_apply(ctx, rope, &tq, &tk, NULL)); /* positions 0..T-1 */
            const double t = now() - t0;
            best = t < best ? t : best;
        }
        /* oracle: double angle reduced mod 2 pi, double cos/sin */
        double err = 0;
        for (int si = 0; si < NS; si++) {
            const int64_t p = sample[si];
            for (int h = 0; h < HQ; h++) {
                const size_t off = ((size_t)p * HQ + h) * D;
                for (int i = 0; i < D / 2; i++) {
                    const double ang = fmod((double)p * theta[i], 2 * M_PI);
                    const double u = input(off + i), v = input(off + i + D / 2);
                    const double wu = a * (u * cos(ang) - v * sin(ang)), wv = a * (v * cos(ang) + u * sin(ang));
                    err = fmax(err, fmax(fabs(q[off + i] - wu), fabs(q[off + i + D / 2] - wv)));
                }
            }
        }
        const double bytes = 2.0 * (double)(nq + nk) * sizeof(float);
        printf("%-8s: %8.2f ms  %7.2f Mtokens/s  %6.2f GB/s   max |error| vs oracle %.2e\n",
               mode ? "hf_f32" : "precise", best * 1e3, (double)T / best * 1e-6, bytes / best * 1e-9, err);
        lcx_rope_destroy(rope);
    }
    /* causal attention over the rotated q and k (precise mode), on up to
     * 16384 tokens, with an oracle check of the last query's output */
    {
        const int64_t Ta = T < 16384 ? T : 16384;
        cfg.precision = LCX_ROPE_PRECISE;
        lcx_rope *rope;
        CHECK(lcx_rope_create(ctx, &cfg, T, &rope));
        for (size_t i = 0; i < nq; i++)
            q[i] = input(i);
        for (size_t i = 0; i < nk; i++)
            k[i] = input(i + nq);
        CHECK(lcx_rope_apply(ctx, rope, &tq, &tk, NULL));
        lcx_rope_destroy(rope);
        float *v = malloc((size_t)Ta * HK * D * sizeof *v), *o = malloc((size_t)Ta * HQ * D * sizeof *o);
        if (!v || !o)
            return 1;
        for (size_t i = 0; i < (size_t)Ta * HK * D; i++)
            v[i] = input(i + nq + nk);
        lcx_tensor aq, ak, av, ao;
        const int64_t saq[4] = {1, Ta, HQ, D}, sak[4] = {1, Ta, HK, D};
        lcx_tensor_init(&aq, q, LCX_F32, 4, saq);
        lcx_tensor_init(&ak, k, LCX_F32, 4, sak);
        lcx_tensor_init(&av, v, LCX_F32, 4, sak);
        lcx_tensor_init(&ao, o, LCX_F32, 4, saq);
        lcx_attention_params ap;
        lcx_attention_params_default(&ap);
        ap.causal = 1;
        const double t0 = now();
        CHECK(lcx_attention_forward(ctx, &ap, &aq, &ak, &av, &ao, NULL));
        const double t = now() - t0;
        /* oracle for the last query of head 0 (sees every key) */
        const int64_t last = Ta - 1;
        double m = -INFINITY, l = 0, err = 0;
        double *sc = malloc(sizeof(double) * (size_t)Ta), ref[D] = {0};
        for (int64_t j = 0; j < Ta; j++) {
            double s = 0;
            for (int c = 0; c < D; c++)
                s += (double)q[(size_t)last * HQ * D + c] * k[(size_t)j * HK * D + c];
            sc[j] = s / sqrt((double)D);
            m = sc[j] > m ? sc[j] : m;
        }
        for (int64_t j = 0; j < Ta; j++) {
            const double w = exp(sc[j] - m);
            l += w;
            for (int c = 0; c < D; c++)
                ref[c] += w * v[(size_t)j * HK * D + c];
        }
        for (int c = 0; c < D; c++) {
            /* an if, not fmax: GCC 12's aarch64 vectoriser crashes on an fmax reduction here */
            const double e = fabs(o[(size_t)last * HQ * D + c] - ref[c] / l);
            if (e > err)
                err = e;
        }
        printf("attention: causal, %lld tokens, q %d / kv %d heads: %8.2f ms  %6.1f GFLOP/s   "
               "max |error| of the last query vs oracle %.2e\n",
               (long long)Ta, HQ, HK, t * 1e3, 2.0 * (double)Ta * (double)Ta * HQ * D / t * 1e-9, err);
        free(sc);
        free(v);
        free(o);
    }
    free(q);
    free(k);
    lcx_context_destroy(ctx);
    return 0;
}
