/* CUDA RoPE apply and re-rotate: one block per token (grid-stride), the
 * cos/sin of each pair computed once into shared memory and shared by every
 * head of q and k, then every (head, pair) rotated in f32 and rounded once.
 * The arithmetic mirrors the CPU scalar kernels (kernels/scalar/rope_scalar.c)
 * operation by operation with explicit round-to-nearest intrinsics (no
 * contraction); only sincosf differs from the CPU's (by an ulp or so).
 * Positions are checked on the device before anything is written. The
 * per-pair tables travel in kernel arguments to the state's persistent
 * table block, so a call neither allocates nor waits (and can be captured
 * into a CUDA graph, which then carries its own copy of the tables). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_check.cuh"
#include "elem.cuh"
#include "../common/fp_bits.h"
#include "../common/rope_common.h"

#define LCX_ROPE_CUDA_THREADS 128
#define LCX_ROPE_CUDA_MAX_PAIRS 512
#define LCX_ROPE_CUDA_MAX_POS 2147483647LL
/* table words per fill launch: 3.75 KiB of arguments, under the 4 KiB limit */
#define LCX_ROPE_FILL_WORDS 480

static_assert(4 * LCX_ROPE_CUDA_MAX_PAIRS * sizeof(uint64_t) <= LCX_CUDA_TABLE_BYTES, "rope tables");

namespace {

struct lcx_rope_view {
    char *data;
    int64_t stride[3]; /* batch, seq, head strides in elements; innermost is 1 */
    int64_t heads;
    int32_t dtype;
};

struct lcx_rope_kargs {
    lcx_rope_view x[2];
    int32_t nx;
    const int64_t *pos; /* NULL: p = s */
    int64_t seq, tokens;
    int32_t n, interleaved, mode;
    float a;
    int64_t n_hat, n_hat_from;
    const uint64_t *turns, *turns0, *from, *from0; /* device copies */
    const float *theta, *theta0;
    const unsigned long long *guard; /* captured position check, else NULL */
};

struct lcx_rope_fill_args {
    uint64_t *dst;
    int32_t n;
    uint64_t v[LCX_ROPE_FILL_WORDS];
};

__global__ void __launch_bounds__(LCX_ROPE_CUDA_THREADS) lcx_rope_fill_kernel(const lcx_rope_fill_args f)
{
    for (int32_t i = threadIdx.x; i < f.n; i += blockDim.x)
        f.dst[i] = f.v[i];
}

/* precise angle of pos * turns (mod one turn), as lcx_rope_angle */
__device__ __forceinline__ void lcx_rope_cs_turns(uint64_t turns, int64_t pos, float a, float *c, float *s)
{
    const uint64_t t = (uint64_t)pos * turns;
    const double ang = __dmul_rn((double)(int32_t)(uint32_t)(t >> 32), LCX_ROPE_TURN32);
    const float h = __double2float_rn(ang);
    const float l = __double2float_rn(__dsub_rn(ang, (double)h));
    float sh, ch;
    sincosf(h, &sh, &ch);
    /* sin(h + l) = sin h + l cos h, cos(h + l) = cos h - l sin h */
    const float sv = __fadd_rn(sh, __fmul_rn(l, ch)), cv = __fsub_rn(ch, __fmul_rn(l, sh));
    *c = __fmul_rn(a, cv);
    *s = __fmul_rn(a, sv);
}

/* every (head, pair) of one token of view v, rotated by the block's tables:
 * thread t starts at w = t (head w / n, pair w % n) and steps w by the
 * block size as a (head, pair) carry, so no element pays an index division */
template <int DT>
__device__ __forceinline__ void lcx_rope_rows(const lcx_rope_view &v, int64_t b, int64_t s, int32_t n,
                                              int32_t interleaved, const float *sc, const float *ss)
{
    constexpr int64_t es = DT == 0 ? 4 : 2;
    const int32_t dh = (int32_t)blockDim.x / n, di = (int32_t)blockDim.x % n;
    int64_t h = (int64_t)(threadIdx.x / (uint32_t)n);
    int32_t i = (int32_t)(threadIdx.x % (uint32_t)n);
    /* the head row h as a byte pointer, advanced with h */
    const int64_t hb = v.stride[2] * es;
    char *hp = v.data + (b * v.stride[0] + s * v.stride[1]) * es + h * hb;
    const int64_t dstep = dh * hb;
    /* pair i: bytes of x and y within the head row */
    const int32_t xm = interleaved ? 2 * (int32_t)es : (int32_t)es, yo = interleaved ? (int32_t)es : n * (int32_t)es;
    while (h < v.heads) {
        char *const px = hp + i * xm, *const py = px + yo;
        const float x = lcx_load<DT>(px, 0), y = lcx_load<DT>(py, 0);
        const float c = sc[i], sn = ss[i];
        lcx_store<DT>(px, 0, __fsub_rn(__fmul_rn(x, c), __fmul_rn(y, sn)));
        lcx_store<DT>(py, 0, __fadd_rn(__fmul_rn(y, c), __fmul_rn(x, sn)));
        i += di;
        h += dh;
        hp += dstep;
        if (i >= n) {
            i -= n;
            h++;
            hp += hb;
        }
    }
}

__global__ void __launch_bounds__(LCX_ROPE_CUDA_THREADS) lcx_rope_kernel(const lcx_rope_kargs a)
{
    __shared__ float sc[LCX_ROPE_CUDA_MAX_PAIRS], ss[LCX_ROPE_CUDA_MAX_PAIRS];
    if (lcx_guard_tripped(a.guard)) /* a position is out of range: write nothing */
        return;
    const int32_t n = a.n;
    for (int64_t tok = blockIdx.x; tok < a.tokens; tok += gridDim.x) {
        const int64_t b = tok / a.seq, s = tok % a.seq;
        const int64_t p = a.pos ? a.pos[tok] : s;
        for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
            float c, sn;
            if (a.mode == 3) { /* shift: one rotation (turns = delta * turns) at every position */
                lcx_rope_cs_turns(a.turns[i], 1, 1.0f, &c, &sn);
            } else if (a.mode == 0) { /* precise apply */
                const int plain = p < a.n_hat;
                lcx_rope_cs_turns(plain ? a.turns0[i] : a.turns[i], p, plain ? 1.0f : a.a, &c, &sn);
            } else if (a.mode == 1) { /* HF float32: fl32(p * theta), plain sincosf */
                const int plain = p < a.n_hat;
                const float ang = __fmul_rn((float)p, plain ? a.theta0[i] : a.theta[i]);
                const float am = plain ? 1.0f : a.a;
                float sh, ch;
                sincosf(ang, &sh, &ch);
                c = __fmul_rn(ch, am);
                sn = __fmul_rn(sh, am);
            } else { /* re-rotate: exact difference of turns, magnitude 1 */
                const uint64_t tt = p < a.n_hat ? a.turns0[i] : a.turns[i];
                const uint64_t tf = p < a.n_hat_from ? a.from0[i] : a.from[i];
                lcx_rope_cs_turns(tt - tf, p, 1.0f, &c, &sn);
            }
            sc[i] = c;
            ss[i] = sn;
        }
        __syncthreads();
        for (int32_t k = 0; k < a.nx; k++) {
            const lcx_rope_view &v = a.x[k];
            if (v.dtype == 0)
                lcx_rope_rows<0>(v, b, s, n, a.interleaved, sc, ss);
            else if (v.dtype == 2)
                lcx_rope_rows<2>(v, b, s, n, a.interleaved, sc, ss);
            else
                lcx_rope_rows<1>(v, b, s, n, a.interleaved, sc, ss);
        }
        __syncthreads(); /* the tables are read before the next token overwrites them */
    }
}

/* Done on the device and waited for, so a bad position is refused before
 * the kernel that writes q/k is queued; during stream capture the kernel
 * reads the result (*guard) instead. */
lcx_status lcx_rope_positions_ok(lcx_cuda_state *s, const char *op, const int64_t *pos, int64_t tokens,
                                 int64_t seq, const unsigned long long **guard)
{
    int64_t first, bad;
    const lcx_status st =
        lcx_cuda_first_outside(s, pos, tokens, 0, LCX_ROPE_CUDA_MAX_POS, &first, &bad, guard);
    if (st != LCX_OK || first < 0)
        return st;
    return lcx_fail(LCX_E_INVALID, "%s: positions[%lld][%lld] = %lld is outside [0, 2^31-1]", op,
                    (long long)(first / seq), (long long)(first % seq), (long long)bad);
}

void lcx_rope_view_of(const lcx_tensor *t, lcx_rope_view *v)
{
    v->data = (char *)t->data;
    v->stride[0] = t->stride[0];
    v->stride[1] = t->stride[1];
    v->stride[2] = t->stride[2];
    v->heads = t->shape[2];
    v->dtype = (int32_t)t->dtype;
}

} // namespace

extern "C" lcx_status lcx_cuda_rope(lcx_cuda_state *s, const char *op, const lcx_cuda_rope_desc *d,
                                    const lcx_tensor *q, const lcx_tensor *k, const int64_t *positions,
                                    int64_t batch, int64_t seq)
{
    const int32_t n = d->n_pairs;
    if (n < 1 || n > LCX_ROPE_CUDA_MAX_PAIRS || (!q && !k) || d->mode < 0 || d->mode > 3)
        return lcx_fail(LCX_E_INVALID, "%s: bad arguments for the CUDA kernel", op);
    lcx_rope_kargs a;
    a.nx = 0;
    if (q)
        lcx_rope_view_of(q, &a.x[a.nx++]);
    if (k)
        lcx_rope_view_of(k, &a.x[a.nx++]);
    if (a.nx == 1)
        a.x[1] = a.x[0];
    a.pos = positions;
    a.seq = seq;
    a.tokens = batch * seq;
    a.n = n;
    a.interleaved = d->interleaved != 0;
    a.mode = d->mode;
    a.a = d->a;
    a.n_hat = d->n_hat;
    a.n_hat_from = d->n_hat_from;
    a.turns = a.turns0 = a.from = a.from0 = NULL;
    a.theta = a.theta0 = NULL;
    a.guard = NULL;

    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    /* an error left by earlier, unrelated work is reported as such */
    LCX_CUDA_TRY(cudaPeekAtLastError());
    if (a.tokens == 0)
        return LCX_OK;
    lcx_status st;
    if (positions && (st = lcx_rope_positions_ok(s, op, positions, a.tokens, seq, &a.guard)) != LCX_OK)
        return st;

    /* the per-pair tables of this call, in the order the kernel reads them
     * from the state's table block (a whole number of 64-bit words) */
    const size_t n_u64 = d->mode == 1 ? 0 : d->mode == 2 ? 4 * (size_t)n : 2 * (size_t)n;
    const size_t n_f32 = d->mode == 1 ? 2 * (size_t)n : 0;
    const size_t words = n_u64 + n_f32 / 2;
    uint64_t host[4 * LCX_ROPE_CUDA_MAX_PAIRS];
    unsigned char *const hb = (unsigned char *)host;
    if (d->mode == 1) {
        memcpy(hb, d->theta, (size_t)n * sizeof(float));
        memcpy(hb + (size_t)n * sizeof(float), d->theta0, (size_t)n * sizeof(float));
    } else {
        memcpy(hb, d->turns, (size_t)n * sizeof(uint64_t));
        memcpy(hb + (size_t)n * sizeof(uint64_t), d->turns0, (size_t)n * sizeof(uint64_t));
        if (d->mode == 2) {
            memcpy(hb + 2 * (size_t)n * sizeof(uint64_t), d->from_turns, (size_t)n * sizeof(uint64_t));
            memcpy(hb + 3 * (size_t)n * sizeof(uint64_t), d->from_turns0, (size_t)n * sizeof(uint64_t));
        }
    }
    /* queued after the previous call's rope kernel on the same stream, so
     * the block is rewritten only once that kernel has read it */
    uint64_t *const dev = (uint64_t *)s->tables;
    lcx_rope_fill_args f;
    memset(&f, 0, sizeof f); /* no stale stack bytes in the unused words */
    for (size_t w0 = 0; w0 < words; w0 += LCX_ROPE_FILL_WORDS) {
        const size_t cnt = words - w0 < LCX_ROPE_FILL_WORDS ? words - w0 : LCX_ROPE_FILL_WORDS;
        f.dst = dev + w0;
        f.n = (int32_t)cnt;
        memcpy(f.v, host + w0, cnt * sizeof(uint64_t));
        lcx_rope_fill_kernel<<<1, LCX_ROPE_CUDA_THREADS, 0, s->stream>>>(f);
        if ((st = lcx_cuda_status(cudaGetLastError(), "rope table kernel launch")) != LCX_OK)
            return st;
    }
    if (d->mode == 1) {
        a.theta = (const float *)dev;
        a.theta0 = a.theta + n;
    } else {
        a.turns = dev;
        a.turns0 = dev + n;
        if (d->mode == 2) {
            a.from = dev + 2 * (size_t)n;
            a.from0 = dev + 3 * (size_t)n;
        }
    }
    const int64_t blocks = a.tokens < (1 << 20) ? a.tokens : (1 << 20);
    lcx_rope_kernel<<<(unsigned)blocks, LCX_ROPE_CUDA_THREADS, 0, s->stream>>>(a);
    return lcx_cuda_status(cudaGetLastError(), "rope kernel launch");
}
