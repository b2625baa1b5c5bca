/* CUDA per-token log-probabilities and impact scores: one block per row,
 * one pass over the row (a running maximum and sum of exp(x - max) per
 * thread, in double, joined in a fixed order; NaN and +inf noted apart),
 * with the special-value rules of lib/logprobs.c. Targets are checked on
 * the device before anything is written. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.cuh"
#include "elem.cuh"
#include "../common/fp_bits.h"

#define LCX_LP_THREADS 256

namespace {

struct lcx_lp_view {
    const void *data;
    int64_t shape[3];  /* outer dims padded with 1 */
    int64_t stride[3];
    int32_t dtype;
};

struct lcx_lp_args {
    lcx_lp_view x[2]; /* x[1] is used only for impact */
    int32_t two;
    const int64_t *targets;
    float *out;
    int64_t rows, vocab;
    const unsigned long long *guard; /* captured target check, else NULL */
};

struct lcx_lp_smem {
    float m[LCX_LP_THREADS / 32];
    int32_t nan[LCX_LP_THREADS / 32];
    long long ninf[LCX_LP_THREADS / 32];
    double s[LCX_LP_THREADS / 32];
    float bm;
    int32_t bnan;
    long long bninf;
    double bs;
};

__device__ __forceinline__ const void *lcx_lp_row(const lcx_lp_view &v, int64_t row)
{
    int64_t off = 0;
    for (int d = 2; d >= 0; d--) {
        off += (row % v.shape[d]) * v.stride[d];
        row /= v.shape[d];
    }
    return (const char *)v.data + off * (v.dtype == 0 ? 4 : 2);
}

/* (m, s) of two partial sums s = sum exp(x - m) as one, in double (a part
 * with m = -inf holds nothing) */
__device__ __forceinline__ void lcx_lp_join(float &m, double &s, float m2, double s2)
{
    const float mn = m2 > m ? m2 : m;
    const double a = m == -INFINITY ? 0.0 : s * exp((double)m - (double)mn);
    const double b = m2 == -INFINITY ? 0.0 : s2 * exp((double)m2 - (double)mn);
    m = mn;
    s = a + b;
}

/* log-probability of `target` in one row, reading the row once: each
 * thread keeps a running maximum m and sum s = sum exp(x - m) over its
 * elements (rescaled when m grows, as the CPU's blocked pass does per
 * block), with NaN and +inf noted apart; the threads' parts are joined in a
 * fixed order. Every thread of the block calls it and gets the same value */
template <int DT>
__device__ double lcx_lp_row_logprob(const lcx_lp_view &v, int64_t row, int64_t target, int64_t vocab,
                                     lcx_lp_smem &sm)
{
    const void *p = lcx_lp_row(v, row);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float m = -INFINITY;
    double s = 0;
    int32_t nan = 0;
    long long ninf = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float x = lcx_load<DT>(p, j);
        if (x != x) {
            nan = 1;
        } else if (x == INFINITY) {
            ninf++;
        } else if (x != -INFINITY) { /* -inf adds nothing */
            if (x > m) {
                s *= exp((double)m - (double)x); /* 0 while m is -inf (s is 0 then) */
                m = x;
            }
            s += (double)expf(x - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const double s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lcx_lp_join(m, s, m2, s2);
        nan |= __shfl_xor_sync(0xffffffffu, nan, o);
        ninf += __shfl_xor_sync(0xffffffffu, ninf, o);
    }
    if (lane == 0) {
        sm.m[warp] = m;
        sm.s[warp] = s;
        sm.nan[warp] = nan;
        sm.ninf[warp] = ninf;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
            lcx_lp_join(m, s, sm.m[w], sm.s[w]);
            nan |= sm.nan[w];
            ninf += sm.ninf[w];
        }
        sm.bm = m;
        sm.bs = s;
        sm.bnan = nan;
        sm.bninf = ninf;
    }
    __syncthreads();
    m = sm.bm;
    s = sm.bs;
    nan = sm.bnan;
    ninf = sm.bninf;
    __syncthreads(); /* the block values are read before the next row reuses them */
    if (target < 0 || nan)
        return NAN;
    const float xt = lcx_load<DT>(p, target);
    if (ninf) /* +inf entries share all the mass */
        return xt == INFINITY ? -log((double)ninf) : -INFINITY;
    if (!(s > 0))
        return NAN; /* every logit -inf: no distribution */
    return (double)xt - (double)m - log(s);
}

__device__ __forceinline__ double lcx_lp_logprob(const lcx_lp_view &v, int64_t row, int64_t target, int64_t vocab,
                                                 lcx_lp_smem &sm)
{
    if (v.dtype == 0)
        return lcx_lp_row_logprob<0>(v, row, target, vocab, sm);
    if (v.dtype == 2)
        return lcx_lp_row_logprob<2>(v, row, target, vocab, sm);
    return lcx_lp_row_logprob<1>(v, row, target, vocab, sm);
}

__global__ void __launch_bounds__(LCX_LP_THREADS) lcx_logprobs_kernel(const lcx_lp_args a)
{
    __shared__ lcx_lp_smem sm;
    if (lcx_guard_tripped(a.guard)) /* a target is out of range: write nothing */
        return;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const int64_t t = a.targets[r];
        double v = lcx_lp_logprob(a.x[0], r, t, a.vocab, sm);
        if (a.two)
            v = lcx_lp_logprob(a.x[1], r, t, a.vocab, sm) - v;
        if (threadIdx.x == 0)
            a.out[r] = (float)v;
    }
}

/* the kernel's view of a [rows...][vocab] tensor: the row dims padded to 3 */
lcx_status lcx_lp_view_of(const lcx_tensor *t, lcx_lp_view *v)
{
    if (t->ndim < 2 || t->ndim > 4)
        return lcx_fail(LCX_E_INVALID, "token_logprobs: bad tensor for the CUDA kernel");
    const int outer = t->ndim - 1, pad = 3 - outer;
    for (int d = 0; d < 3; d++) {
        const int k = d - pad;
        v->shape[d] = k >= 0 ? t->shape[k] : 1;
        v->stride[d] = k >= 0 ? t->stride[k] : 0;
    }
    v->data = t->data;
    v->dtype = (int32_t)t->dtype;
    return LCX_OK;
}

/* The target check: done on the device and waited for, so a bad target is
 * refused before the kernel that writes out is queued (negative targets are
 * valid: their rows get NaN); during stream capture the kernel reads the
 * result (*guard) instead. */
lcx_status lcx_lp_targets_ok(lcx_cuda_state *s, const char *op, const int64_t *targets, int64_t rows,
                             int64_t vocab, const unsigned long long **guard)
{
    int64_t first, bad;
    const lcx_status st =
        lcx_cuda_first_outside(s, targets, rows, INT64_MIN, vocab - 1, &first, &bad, guard);
    if (st != LCX_OK || first < 0)
        return st;
    return lcx_fail(LCX_E_INVALID, "%s: targets[%lld] = %lld >= vocab %lld", op, (long long)first,
                    (long long)bad, (long long)vocab);
}

} // namespace

extern "C" lcx_status lcx_cuda_token_logprobs(lcx_cuda_state *s, const char *op, const lcx_tensor *logits,
                                              const lcx_tensor *ext_logits, const int64_t *targets, float *out,
                                              int64_t rows, int64_t vocab)
{
    lcx_lp_args a;
    lcx_status st;
    if ((st = lcx_lp_view_of(logits, &a.x[0])) != LCX_OK)
        return st;
    a.two = ext_logits != NULL;
    if ((st = lcx_lp_view_of(ext_logits ? ext_logits : logits, &a.x[1])) != LCX_OK)
        return st;
    a.targets = targets;
    a.out = out;
    a.rows = rows;
    a.vocab = vocab;
    a.guard = NULL;
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    /* an error left by earlier, unrelated work is reported as such */
    LCX_CUDA_TRY(cudaPeekAtLastError());
    if (rows == 0)
        return LCX_OK;
    if ((st = lcx_lp_targets_ok(s, op, targets, rows, vocab, &a.guard)) != LCX_OK)
        return st;
    const int64_t blocks = rows < (1 << 20) ? rows : (1 << 20);
    lcx_logprobs_kernel<<<(unsigned)blocks, LCX_LP_THREADS, 0, s->stream>>>(a);
    return lcx_cuda_status(cudaGetLastError(), "logprobs kernel launch");
}
