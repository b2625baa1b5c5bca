/* CUDA per-token log-probabilities and impact scores: one block per row,
 * a max reduction (with NaN and +inf detection), then the sum of
 * exp(x - max) accumulated in double, with the special-value rules of
 * lib/logprobs.c. Targets are checked on the device before anything is
 * written. */
#include <math.h>
#include <stdint.h>

#include "cuda_check.cuh"
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

/* log-probability of `target` in one row; every thread of the block calls
 * it and gets the same value */
__device__ double lcx_lp_row_logprob(const lcx_lp_view &v, int64_t row, int64_t target, int64_t vocab,
                                     lcx_lp_smem &sm)
{
    const void *p = lcx_lp_row(v, row);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float m = -INFINITY;
    int32_t nan = 0;
    long long ninf = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float x = lcx_load_elem(p, v.dtype, (size_t)j);
        if (x != x)
            nan = 1;
        else {
            m = fmaxf(m, x);
            ninf += x == INFINITY;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        nan |= __shfl_xor_sync(0xffffffffu, nan, o);
        ninf += __shfl_xor_sync(0xffffffffu, ninf, o);
    }
    if (lane == 0) {
        sm.m[warp] = m;
        sm.nan[warp] = nan;
        sm.ninf[warp] = ninf;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
            m = fmaxf(m, sm.m[w]);
            nan |= sm.nan[w];
            ninf += sm.ninf[w];
        }
        sm.bm = m;
        sm.bnan = nan;
        sm.bninf = ninf;
    }
    __syncthreads();
    m = sm.bm;
    nan = sm.bnan;
    ninf = sm.bninf;
    __syncthreads(); /* the block values are read before the next reduction reuses them */
    if (target < 0 || nan)
        return NAN;
    const float xt = lcx_load_elem(p, v.dtype, (size_t)target);
    if (ninf) /* +inf entries share all the mass */
        return xt == INFINITY ? -log((double)ninf) : -INFINITY;
    if (m == -INFINITY)
        return NAN; /* every logit -inf: no distribution */
    double s = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
        s += (double)expf(lcx_load_elem(p, v.dtype, (size_t)j) - m);
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0)
        sm.s[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            s += sm.s[w];
        sm.bs = s;
    }
    __syncthreads();
    s = sm.bs;
    __syncthreads();
    return (double)xt - (double)m - log(s);
}

__global__ void __launch_bounds__(LCX_LP_THREADS) lcx_logprobs_kernel(const lcx_lp_args a)
{
    __shared__ lcx_lp_smem sm;
    if (lcx_guard_tripped(a.guard)) /* a target is out of range: write nothing */
        return;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const int64_t t = a.targets[r];
        double v = lcx_lp_row_logprob(a.x[0], r, t, a.vocab, sm);
        if (a.two)
            v = lcx_lp_row_logprob(a.x[1], r, t, a.vocab, sm) - v;
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
