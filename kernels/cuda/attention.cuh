/* Shared by the CUDA attention kernels (attention.cu: SIMT forward, split-KV
 * combine, merge; attention_tc.cu: tensor-core forward): the launch
 * arguments and the index rules of lib/attention.c on the device. */
#ifndef LCX_CUDA_ATTENTION_CUH
#define LCX_CUDA_ATTENTION_CUH

#include <math.h>
#include <stdint.h>

#include "cuda_check.cuh"
#include "longctx/attention.h"

#define LCX_CA_BK 32           /* keys per tile (one per lane) */
#define LCX_CA_WARPS 4         /* warps per block */
#define LCX_CA_THREADS (32 * LCX_CA_WARPS)
#define LCX_CA_CHUNK 256       /* keys per split-KV chunk */
#define LCX_CA_SPLIT_MAX_Q 16  /* split the keys when seq_q <= this */
#define LCX_CA_MAX_D 512

namespace lcx_ca {

struct lcx_ca_args {
    const void *q, *k, *v;
    void *out;
    float *lse;
    int64_t qst[3], kst[3], vst[3], ost[3]; /* element strides of batch, seq, head */
    int32_t qdt, kdt, vdt, odt;
    int64_t B, Sq, Sk, H, Hkv, G, D, Dv;
    int32_t Dp;   /* Q row stride in shared memory (D rounded up to 4) */
    int32_t ldkv; /* K/V row stride in shared memory (4 mod 32) */
    float scale, softcap;
    int32_t causal;
    int64_t window;
    int64_t n_seqs;
    const int64_t *cu_q, *cu_k, *it_start; /* varlen (device copies), else NULL */
    int64_t tiles;                         /* not varlen: row tiles per (sequence, kv head) */
    int64_t n_items, n_chunks;
    float *part; /* split: [chunk][B][H][Sq][Dv + 2] (unnormalised O, m, l) */
    int32_t s2;  /* 0 off, else 1 + lcx_s2_mode */
    int64_t g, h0, fwd, back;
    int32_t vec;       /* tensor-core path: q/k/v rows 16-byte aligned */
    int32_t rev_tiles; /* visit a (sequence, kv head)'s row tiles last first (causal: longest first) */
    int32_t ksplit;    /* tensor-core decode: the warps split each tile's keys (items of <= 16 rows) */
    int32_t pv16;      /* tensor-core path: P rounded to 16 bits for P V (lcx_attention_params.pv_16bit) */
    float xs, xc;      /* tensor-core path, scores in base 2: x = s xs, or with softcap xc tanh(s xs) */
};

__device__ __forceinline__ int64_t ca_mod(int64_t a, int64_t n)
{
    const int64_t r = a % n;
    return r < 0 ? r + n : r;
}

/* visible keys of output row i of query head h (lcx_rowvis of lib/attention.c) */
__device__ inline int ca_rowvis(const lcx_ca_args &a, int64_t h, int64_t i, int64_t lq, int64_t lk, int64_t *lo,
                         int64_t *hi)
{
    if (!a.s2) {
        if (!a.causal) {
            lo[0] = 0;
            hi[0] = lk - 1;
            return 1;
        }
        const int64_t p = lk - lq + i;
        hi[0] = p < lk - 1 ? p : lk - 1;
        lo[0] = a.window >= 0 ? (p - a.window > 0 ? p - a.window : 0) : 0;
        return 1;
    }
    const int64_t g = a.g, N = lk;
    if (h < a.h0) {
        lo[0] = i / g * g;
        hi[0] = i;
        return 1;
    }
    if (a.s2 != 1 + LCX_S2_ROLL) {
        const int64_t half = g / 2;
        lo[0] = i < half ? 0 : half + (i - half) / g * g;
        hi[0] = i;
        return 1;
    }
    const int64_t n = ca_mod(i - a.back, N), n0 = n / g * g;
    const int64_t s = ca_mod(n0 - a.fwd, N), e = ca_mod(n - a.fwd, N);
    if (s <= e) {
        lo[0] = s;
        hi[0] = e;
        return 1;
    }
    lo[0] = 0;
    hi[0] = e;
    lo[1] = s;
    hi[1] = N - 1;
    return 2;
}

/* token whose query produces output row i of head h (lcx_qsrc) */
__device__ inline int64_t ca_qsrc(const lcx_ca_args &a, int64_t h, int64_t i, int64_t lq)
{
    if (a.s2 != 1 + LCX_S2_ROLL || h < a.h0)
        return i;
    return ca_mod(ca_mod(i - a.back, lq) - a.fwd, lq);
}

__device__ __forceinline__ float ca_warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

__device__ __forceinline__ float ca_warp_sum(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* out row and lse of a finished row (lcx_attn_finish_row) */
__device__ __forceinline__ float ca_final(float o, float l)
{
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    return isnan(l) ? NAN : l > 0 ? o * inv : 0.0f;
}

__device__ __forceinline__ float ca_final_lse(float m, float l)
{
    return isnan(l) ? NAN : l > 0 ? m + logf(l) : -INFINITY;
}

/* one work item: a tile of BQ rows of one (sequence, kv head), and for
 * split-KV one chunk of its keys */
struct ca_item {
    int64_t b, q0, lq, k0, lk, kvh, f0, chunk;
    int nrows;
};

__device__ inline ca_item ca_locate(const lcx_ca_args &a, int64_t id, int BQ)
{
    ca_item t;
    t.chunk = id % a.n_chunks;
    const int64_t it = id / a.n_chunks;
    int64_t s, rem;
    if (a.it_start) {
        int64_t lo = 0, hi = a.n_seqs;
        while (hi - lo > 1) {
            const int64_t mid = (lo + hi) / 2;
            if (a.it_start[mid] <= it)
                lo = mid;
            else
                hi = mid;
        }
        s = lo;
        rem = it - a.it_start[lo];
    } else {
        s = it / (a.Hkv * a.tiles);
        rem = it % (a.Hkv * a.tiles);
    }
    if (a.cu_q) {
        t.b = 0;
        t.q0 = a.cu_q[s];
        t.lq = a.cu_q[s + 1] - t.q0;
        t.k0 = a.cu_k[s];
        t.lk = a.cu_k[s + 1] - t.k0;
    } else {
        t.b = s;
        t.q0 = 0;
        t.lq = a.Sq;
        t.k0 = 0;
        t.lk = a.Sk;
    }
    const int64_t nt = (a.G * t.lq + BQ - 1) / BQ;
    t.kvh = rem / nt;
    t.f0 = (a.rev_tiles ? nt - 1 - rem % nt : rem % nt) * BQ;
    t.nrows = (int)(a.G * t.lq - t.f0 < BQ ? a.G * t.lq - t.f0 : BQ);
    return t;
}

/* row r of an item: its visible intervals, output position, head and the
 * offset of its query row (rows past the item's end see nothing) */
__device__ inline void ca_row_setup(const lcx_ca_args &a, const ca_item &t, int r, int64_t (*rlo)[2],
                                    int64_t (*rhi)[2], int *rnv, int64_t *ri, int64_t *rh, int64_t *rq)
{
    if (r < t.nrows) {
        const int64_t f = t.f0 + r, i = f / a.G, h = t.kvh * a.G + f % a.G;
        int64_t lo[2] = {0, 0}, hi[2] = {-1, -1};
        rnv[r] = ca_rowvis(a, h, i, t.lq, t.lk, lo, hi);
        rlo[r][0] = lo[0];
        rhi[r][0] = hi[0];
        rlo[r][1] = lo[1];
        rhi[r][1] = hi[1];
        ri[r] = i;
        rh[r] = h;
        rq[r] = t.b * a.qst[0] + (t.q0 + ca_qsrc(a, h, i, t.lq)) * a.qst[1] + h * a.qst[2];
    } else {
        rnv[r] = 0;
        rlo[r][0] = rlo[r][1] = 0;
        rhi[r][0] = rhi[r][1] = -1;
        ri[r] = rh[r] = rq[r] = 0;
    }
}

/* the key runs an item visits: the union of its rows' intervals (a main run
 * and the wrap-around run of S2 ROLL), cut to the item's split-KV chunk */
__device__ inline int ca_runs(const lcx_ca_args &a, const ca_item &t, const int64_t (*rlo)[2],
                              const int64_t (*rhi)[2], const int *rnv, int64_t *run_lo, int64_t *run_hi)
{
    int64_t ivlo[2] = {t.lk, t.lk}, ivhi[2] = {-1, -1};
    for (int r = 0; r < t.nrows; r++)
        for (int x = 0; x < rnv[r]; x++) {
            ivlo[x] = rlo[r][x] < ivlo[x] ? rlo[r][x] : ivlo[x];
            ivhi[x] = rhi[r][x] > ivhi[x] ? rhi[r][x] : ivhi[x];
        }
    int n = ivhi[0] >= ivlo[0] ? 1 : 0;
    if (ivhi[1] >= ivlo[1]) {
        if (n && ivlo[1] <= ivhi[0] + 1)
            ivhi[0] = ivhi[1] > ivhi[0] ? ivhi[1] : ivhi[0];
        else
            n = 2;
    }
    if (a.n_chunks > 1) { /* this chunk's share of the keys (never S2: one run) */
        const int64_t clo = t.chunk * LCX_CA_CHUNK, chi = clo + LCX_CA_CHUNK - 1;
        ivlo[0] = ivlo[0] > clo ? ivlo[0] : clo;
        ivhi[0] = ivhi[0] < chi ? ivhi[0] : chi;
        n = ivhi[0] >= ivlo[0] ? 1 : 0;
    }
    run_lo[0] = ivlo[0];
    run_hi[0] = ivhi[0];
    run_lo[1] = ivlo[1];
    run_hi[1] = ivhi[1];
    return n;
}

/* the tensor-core forward (attention_tc.cu) for q, k and v of one 16-bit
 * dtype (bf16 1, f16 0) and head dims d = dv in {64, 96, 128}; available
 * where that kernel was built for sm_80 or later and the device runs it
 * (the current device must be the context's). A block of `warps` (4 or 8)
 * owns 16 * warps rows. */
bool tc_available(int d, int bf16);
size_t tc_smem_bytes(int d);
size_t tc_wg_smem_bytes(int d);
/* wg: the wgmma kernel (sm_90a; warps 8, d 64 or 128) */
lcx_status tc_launch(const lcx_ca_args &a, int bf16, int warps, int wg, size_t smem, unsigned grid,
                     lcx_cuda_state *s);

} // namespace lcx_ca

#endif
