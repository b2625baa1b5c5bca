/* CUDA attention: blocked forward with an online softmax (FlashAttention-2
 * order: a thread block owns a tile of query rows and streams the keys), the
 * split-KV combine for decode shapes, and the LSE merge of two partial
 * results. Semantics are those of lib/attention.c (bottom-right causal
 * alignment, window, GQA, softcap, scale, varlen, S2-Attn index arithmetic,
 * NaN and empty-row rules); the host side has validated every argument.
 *
 * q, k and v of one 16-bit dtype with d = dv of 64, 96 or 128 run on tensor
 * cores (attention_tc.cu, same work items and index rules); every other
 * combination, and devices before sm_80, run the SIMT kernel here.
 *
 * Forward kernel (SIMT, f32 arithmetic):
 *  - a block has 4 warps and owns BQ = 4 * RW rows of one (sequence, kv
 *    head): rows enumerate (query position i, query head g of the GQA group)
 *    with the group's heads innermost, so every K/V tile staged in shared
 *    memory serves all G query heads of its kv head; warp w owns rows
 *    [w RW, (w + 1) RW); RW = 8, or 2 when G * seq_q <= 8 (decode) or the
 *    value dim is above 256;
 *  - keys stream in tiles of 32 (one key per lane for the scores): the K
 *    tile is widened to f32 in shared memory, each lane forms the RW scores
 *    of its key with float4 loads (the row stride is 4 mod 32 words, so the
 *    loads of a quarter warp hit distinct banks), softcap and masks are
 *    applied, warp shuffles give the row max and sum, the running output is
 *    rescaled by expf(m_old - m_new) and P goes to shared memory; then the V
 *    tile replaces the K tile and each lane accumulates NC = Dv / 32 output
 *    columns of its warp's rows in registers (O += P V). Weights that are 0
 *    contribute nothing, so a non-finite value at an invisible key cannot
 *    leak in (0 * inf);
 *  - the key tiles a block visits are the union of its rows' visible
 *    intervals (one run, or two for the wrap-around group of S2 ROLL);
 *  - decode shapes (seq_q <= 16, more than 2 * 256 keys, not varlen, not
 *    S2) split the keys into fixed chunks of 256: every (tile, chunk) block
 *    writes its unnormalised output, row max and sum to device scratch and a
 *    second kernel combines the chunks of each row in chunk order. Blocks
 *    walk the work items in a grid-stride loop, so results depend neither on
 *    the grid size nor on the GPU.
 * Inputs of any of f32/bf16/f16 are widened exactly on load; the output is
 * rounded once on store (kernels/common/fp_bits.h, as on the CPU). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attention.cuh"
#include "../common/fp_bits.h"

namespace lcx_ca {

template <int RW, int NC>
__global__ void __launch_bounds__(LCX_CA_THREADS, 1) lcx_ca_forward_kernel(const lcx_ca_args a)
{
    constexpr int BQ = LCX_CA_WARPS * RW, BK = LCX_CA_BK;
    extern __shared__ float4 lcx_ca_smem[];
    float *const Qs = reinterpret_cast<float *>(lcx_ca_smem); /* [BQ][Dp], scaled */
    float *const KV = Qs + BQ * a.Dp;                         /* [BK][ldkv]: K, then V */
    float *const Ps = KV + BK * a.ldkv;                       /* [BQ][BK] */
    __shared__ int64_t rlo[BQ][2], rhi[BQ][2], rq[BQ], ri[BQ], rh[BQ];
    __shared__ int rnv[BQ];
    __shared__ int64_t run_lo[2], run_hi[2];
    __shared__ int n_runs;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t total = a.n_items * a.n_chunks;

    for (int64_t id = blockIdx.x; id < total; id += gridDim.x) {
        const ca_item t = ca_locate(a, id, BQ);
        const int64_t chunk = t.chunk, b = t.b, q0 = t.q0, k0 = t.k0, kvh = t.kvh;
        const int nrows = t.nrows;

        __syncthreads(); /* the previous item is done with the shared arrays */
        if (threadIdx.x < BQ)
            ca_row_setup(a, t, threadIdx.x, rlo, rhi, rnv, ri, rh, rq);
        __syncthreads();
        if (threadIdx.x == 0)
            n_runs = ca_runs(a, t, rlo, rhi, rnv, run_lo, run_hi);
        /* the Q tile, scaled as the CPU does it (widen, then multiply) */
        for (int idx = threadIdx.x; idx < BQ * a.Dp; idx += LCX_CA_THREADS) {
            const int r = idx / a.Dp, c = idx % a.Dp;
            float x = 0.0f;
            if (r < nrows && c < a.D)
                x = lcx_load_elem(a.q, a.qdt, (size_t)(rq[r] + c)) * a.scale;
            Qs[idx] = x;
        }
        __syncthreads();

        float m[RW], l[RW], acc[RW][NC];
        bool rnan[RW];
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
            m[rr] = -INFINITY;
            l[rr] = 0.0f;
            rnan[rr] = false;
#pragma unroll
            for (int t = 0; t < NC; t++)
                acc[rr][t] = 0.0f;
        }
        const bool wact = warp * RW < nrows; /* the warp owns real rows */
        const int nr = n_runs;
        for (int run = 0; run < nr; run++) {
            const int64_t klo = run_lo[run], khi = run_hi[run];
            for (int64_t kb = klo; kb <= khi; kb += BK) {
                const int nk = (int)(khi - kb + 1 < BK ? khi - kb + 1 : BK);
                __syncthreads(); /* the previous tile's V is no longer read */
                for (int idx = threadIdx.x; idx < BK * a.Dp; idx += LCX_CA_THREADS) {
                    const int j = idx / a.Dp, c = idx % a.Dp;
                    float x = 0.0f;
                    if (j < nk && c < a.D)
                        x = lcx_load_elem(a.k, a.kdt,
                                          (size_t)(b * a.kst[0] + (k0 + kb + j) * a.kst[1] + kvh * a.kst[2] + c));
                    KV[j * a.ldkv + c] = x;
                }
                __syncthreads();
                if (wact) {
                    float sc[RW];
#pragma unroll
                    for (int rr = 0; rr < RW; rr++)
                        sc[rr] = 0.0f;
                    const float *kr = KV + lane * a.ldkv;
                    const float *qr = Qs + warp * RW * a.Dp;
                    for (int c = 0; c < a.Dp; c += 4) {
                        const float4 k4 = *reinterpret_cast<const float4 *>(kr + c);
#pragma unroll
                        for (int rr = 0; rr < RW; rr++) {
                            const float4 q4 = *reinterpret_cast<const float4 *>(qr + rr * a.Dp + c);
                            float x = sc[rr];
                            x = fmaf(q4.x, k4.x, x);
                            x = fmaf(q4.y, k4.y, x);
                            x = fmaf(q4.z, k4.z, x);
                            x = fmaf(q4.w, k4.w, x);
                            sc[rr] = x;
                        }
                    }
                    const int64_t jg = kb + lane;
#pragma unroll
                    for (int rr = 0; rr < RW; rr++) {
                        const int r = warp * RW + rr;
                        float sv = sc[rr];
                        if (a.softcap > 0)
                            sv = a.softcap * tanhf(sv / a.softcap);
                        bool vis = lane < nk && jg >= rlo[r][0] && jg <= rhi[r][0];
                        if (rnv[r] > 1)
                            vis = vis || (lane < nk && jg >= rlo[r][1] && jg <= rhi[r][1]);
                        if (!vis)
                            sv = -INFINITY;
                        const bool any_nan = __any_sync(0xffffffffu, sv != sv);
                        const float mx = ca_warp_max(sv);
                        float p = 0.0f;
                        if (any_nan) {
                            rnan[rr] = true; /* a NaN in q or k: the row's output and lse are NaN */
                        } else if (!rnan[rr] && mx != -INFINITY) {
                            const float mn = mx > m[rr] ? mx : m[rr];
                            if (mn > m[rr]) {
                                const float f = expf(m[rr] - mn); /* 0 when m was -inf */
                                l[rr] *= f;
#pragma unroll
                                for (int t = 0; t < NC; t++)
                                    acc[rr][t] *= f;
                                m[rr] = mn;
                            }
                            p = vis ? expf(sv - mn) : 0.0f;
                            l[rr] += ca_warp_sum(p);
                        }
                        Ps[r * BK + lane] = rnan[rr] ? 0.0f : p;
                    }
                }
                __syncthreads(); /* every warp is done with K */
                for (int idx = threadIdx.x; idx < BK * a.Dv; idx += LCX_CA_THREADS) {
                    const int j = (int)(idx / a.Dv), c = (int)(idx % a.Dv);
                    float x = 0.0f;
                    if (j < nk)
                        x = lcx_load_elem(a.v, a.vdt,
                                          (size_t)(b * a.vst[0] + (k0 + kb + j) * a.vst[1] + kvh * a.vst[2] + c));
                    KV[j * a.ldkv + c] = x;
                }
                __syncthreads();
                if (wact) {
                    for (int j = 0; j < nk; j++) {
                        float vv[NC];
#pragma unroll
                        for (int t = 0; t < NC; t++) {
                            const int c = lane + 32 * t;
                            vv[t] = c < a.Dv ? KV[j * a.ldkv + c] : 0.0f;
                        }
#pragma unroll
                        for (int rr = 0; rr < RW; rr++) {
                            const float p = Ps[(warp * RW + rr) * BK + j];
#pragma unroll
                            for (int t = 0; t < NC; t++)
                                acc[rr][t] = p != 0.0f ? fmaf(p, vv[t], acc[rr][t]) : acc[rr][t];
                        }
                    }
                }
            }
        }

        /* finish the rows, or keep them for the combine kernel */
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
            const int r = warp * RW + rr;
            if (r >= nrows)
                continue;
            const int64_t h = rh[r], i = ri[r];
            const float mm = rnan[rr] ? NAN : m[rr], ll = rnan[rr] ? NAN : l[rr];
            if (a.n_chunks > 1) {
                float *pp = a.part + ((((size_t)chunk * a.B + b) * a.H + h) * a.Sq + (q0 + i)) * (size_t)(a.Dv + 2);
#pragma unroll
                for (int t = 0; t < NC; t++) {
                    const int c = lane + 32 * t;
                    if (c < a.Dv)
                        pp[c] = acc[rr][t];
                }
                if (lane == 0) {
                    pp[a.Dv] = mm;
                    pp[a.Dv + 1] = ll;
                }
                continue;
            }
            const int64_t ob = b * a.ost[0] + (q0 + i) * a.ost[1] + h * a.ost[2];
#pragma unroll
            for (int t = 0; t < NC; t++) {
                const int c = lane + 32 * t;
                if (c < a.Dv)
                    lcx_store_elem(a.out, a.odt, (size_t)(ob + c), ca_final(acc[rr][t], ll));
            }
            if (lane == 0 && a.lse)
                a.lse[(b * a.H + h) * a.Sq + q0 + i] = ca_final_lse(mm, ll);
        }
    }
}

/* split-KV: combine the chunks of every row in chunk order (lcx_attn_merge_worker) */
__global__ void __launch_bounds__(LCX_CA_THREADS) lcx_ca_combine_kernel(const lcx_ca_args a)
{
    const int64_t rows = a.B * a.H * a.Sq;
    const size_t rs = (size_t)(a.Dv + 2), cs = (size_t)rows * rs;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const int64_t i = row % a.Sq, h = row / a.Sq % a.H, b = row / (a.Sq * a.H);
        const float *base = a.part + (size_t)row * rs;
        float m = -INFINITY;
        bool nan = false;
        for (int64_t cc = 0; cc < a.n_chunks; cc++) {
            const float mc = base[cc * cs + a.Dv];
            nan |= mc != mc;
            m = mc > m ? mc : m;
        }
        const bool live = !nan && m > -INFINITY;
        const int64_t ob = b * a.ost[0] + i * a.ost[1] + h * a.ost[2];
        for (int c0 = 0; c0 < a.Dv || c0 == 0; c0 += LCX_CA_THREADS) {
            const int c = c0 + (int)threadIdx.x;
            float l = nan ? NAN : 0.0f, o = 0.0f;
            if (live)
                for (int64_t cc = 0; cc < a.n_chunks; cc++) {
                    const float *pr = base + cc * cs;
                    if (pr[a.Dv + 1] == 0)
                        continue;
                    const float f = expf(pr[a.Dv] - m);
                    l += pr[a.Dv + 1] * f;
                    if (c < a.Dv)
                        o += pr[c] * f;
                }
            if (c < a.Dv)
                lcx_store_elem(a.out, a.odt, (size_t)(ob + c), ca_final(o, l));
            if (c == 0 && a.lse)
                a.lse[row] = ca_final_lse(m, l);
        }
    }
}

struct lcx_cam_args {
    const void *a, *b;
    void *o;
    const float *la, *lb;
    float *lo;
    int64_t ast[3], bst[3], ost[3];
    int32_t adt, bdt, odt;
    int64_t B, S, H, Dv;
};

/* lcx_attention_merge: one block per (batch, seq, head) row; out may be
 * out_a or out_b and lse may be lse_a or lse_b: every element is read and
 * written by the same thread, and lse after a barrier behind every read */
__global__ void __launch_bounds__(LCX_CA_THREADS) lcx_ca_merge_kernel(const lcx_cam_args a)
{
    const int64_t rows = a.B * a.S * a.H;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const int64_t h = row % a.H, s = row / a.H % a.S, b = row / (a.H * a.S);
        const int64_t li = (b * a.H + h) * a.S + s;
        const float xa = a.la[li], xb = a.lb[li];
        const float m = xa > xb ? xa : xb;
        const bool empty = m == -INFINITY;
        const float wa = empty ? 0.0f : expf(xa - m), wb = empty ? 0.0f : expf(xb - m);
        const float sum = __fadd_rn(wa, wb), inv = 1.0f / sum;
        const int64_t ao = b * a.ast[0] + s * a.ast[1] + h * a.ast[2];
        const int64_t bo = b * a.bst[0] + s * a.bst[1] + h * a.bst[2];
        const int64_t oo = b * a.ost[0] + s * a.ost[1] + h * a.ost[2];
        for (int64_t c = threadIdx.x; c < a.Dv; c += LCX_CA_THREADS) {
            const float ra = lcx_load_elem(a.a, a.adt, (size_t)(ao + c));
            const float rb = lcx_load_elem(a.b, a.bdt, (size_t)(bo + c));
            const float x = empty ? 0.0f : __fmul_rn(__fadd_rn(__fmul_rn(wa, ra), __fmul_rn(wb, rb)), inv);
            lcx_store_elem(a.o, a.odt, (size_t)(oo + c), x);
        }
        __syncthreads(); /* lse may be lse_a or lse_b: every thread has read it */
        if (threadIdx.x == 0 && a.lo)
            a.lo[li] = empty ? -INFINITY : m + logf(sum);
        __syncthreads();
    }
}

template <int RW, int NC>
lcx_status ca_launch(const lcx_ca_args &a, size_t smem, unsigned grid, lcx_cuda_state *s)
{
    LCX_CUDA_TRY(lcx_cuda_smem_optin(s, (const void *)lcx_ca_forward_kernel<RW, NC>, smem));
    lcx_ca_forward_kernel<RW, NC><<<grid, LCX_CA_THREADS, smem, s->stream>>>(a);
    return lcx_cuda_status(cudaGetLastError(), "attention kernel launch");
}

template <int RW>
lcx_status ca_launch_nc(int nc, const lcx_ca_args &a, size_t smem, unsigned grid, lcx_cuda_state *s)
{
    switch (nc) {
    case 1:
        return ca_launch<RW, 1>(a, smem, grid, s);
    case 2:
        return ca_launch<RW, 2>(a, smem, grid, s);
    case 4:
        return ca_launch<RW, 4>(a, smem, grid, s);
    default:
        return ca_launch<RW, 8>(a, smem, grid, s);
    }
}

} // namespace lcx_ca

using namespace lcx_ca;

extern "C" lcx_status lcx_cuda_attention(lcx_cuda_state *s, const lcx_cuda_attn_desc *d, const lcx_tensor *q,
                                         const lcx_tensor *k, const lcx_tensor *v, const lcx_tensor *out, float *lse)
{
    const char *op = d->op;
    if (d->D < 1 || d->D > LCX_CA_MAX_D || d->Dv < 1 || d->Dv > LCX_CA_MAX_D)
        return lcx_fail(LCX_E_INVALID, "%s: head dims out of range for the CUDA kernel", op);
    lcx_ca_args a;
    memset(&a, 0, sizeof a);
    a.q = q->data;
    a.k = k->data;
    a.v = v->data;
    a.out = out->data;
    a.lse = lse;
    for (int x = 0; x < 3; x++) {
        a.qst[x] = q->stride[x];
        a.kst[x] = k->stride[x];
        a.vst[x] = v->stride[x];
        a.ost[x] = out->stride[x];
    }
    a.qdt = (int32_t)q->dtype;
    a.kdt = (int32_t)k->dtype;
    a.vdt = (int32_t)v->dtype;
    a.odt = (int32_t)out->dtype;
    a.B = d->B;
    a.Sq = d->Sq;
    a.Sk = d->Sk;
    a.H = d->H;
    a.Hkv = d->Hkv;
    a.G = d->H / d->Hkv;
    a.D = d->D;
    a.Dv = d->Dv;
    a.scale = d->scale;
    a.softcap = d->softcap;
    a.causal = d->causal;
    a.window = d->window;
    a.s2 = d->s2;
    a.g = d->g;
    a.h0 = d->h0;
    a.fwd = d->fwd;
    a.back = d->back;
    a.n_seqs = d->cu_q ? d->n_seqs : d->B;
    if (a.B == 0 || a.Sq == 0 || a.H == 0)
        return LCX_OK; /* nothing to write */

    /* tile shape: NC output columns per lane, RW rows per warp (fewer rows
     * for decode-sized tiles and for the widest heads) */
    const int nc = a.Dv <= 32 ? 1 : a.Dv <= 64 ? 2 : a.Dv <= 128 ? 4 : a.Dv <= 256 ? 8 : 16;
    int64_t max_q = a.Sq;
    if (d->cu_q) {
        max_q = 0;
        for (int64_t x = 0; x < a.n_seqs; x++)
            max_q = d->cu_q[x + 1] - d->cu_q[x] > max_q ? d->cu_q[x + 1] - d->cu_q[x] : max_q;
    }

    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    /* an error left by earlier, unrelated work is reported as such */
    LCX_CUDA_TRY(cudaPeekAtLastError());
    int optin = 0;
    LCX_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, s->device));

    /* tensor cores for q, k, v of one 16-bit dtype and d = dv of 64/96/128 */
    const bool tc = q->dtype == k->dtype && q->dtype == v->dtype && (q->dtype == LCX_BF16 || q->dtype == LCX_F16) &&
                    a.D == a.Dv && tc_available((int)a.D, q->dtype == LCX_BF16);
    int BQ, tc_warps = 0, tc_wg = 0;
    size_t smem, smem_static;
    if (tc) {
        /* 128 rows per block where there are that many (prefill), else 64 */
        tc_warps = a.G * max_q >= 128 ? 8 : 4;
        BQ = 16 * tc_warps;
        /* prefill at head dims 64 and 128 on warpgroup MMA where the context
         * found sm_90a code (LONGCTX_CUDA_WGMMA) */
        tc_wg = s->wgmma && tc_warps == 8 && (a.D == 64 || a.D == 128);
        smem = tc_wg ? tc_wg_smem_bytes((int)a.D) : tc_smem_bytes((int)a.D);
        smem_static = 20 * 1024;
        /* 16-byte rows for cp.async: aligned bases, strides in multiples of 8 halves */
        bool vec = ((uintptr_t)a.q | (uintptr_t)a.k | (uintptr_t)a.v) % 16 == 0;
        for (int x = a.B > 1 ? 0 : 1; x < 3; x++)
            vec = vec && a.qst[x] % 8 == 0 && a.kst[x] % 8 == 0 && a.vst[x] % 8 == 0;
        a.vec = vec;
        /* causal rows further down see more keys: start those first */
        a.rev_tiles = a.causal || a.s2;
        a.ksplit = tc_warps == 4 && a.G * max_q <= 16;
        a.pv16 = d->pv16;
        const double log2e = 1.4426950408889634;
        a.xs = a.softcap > 0 ? a.scale / a.softcap : (float)((double)a.scale * log2e);
        a.xc = a.softcap > 0 ? (float)((double)a.softcap * log2e) : 1.0f;
    } else {
        /* 8 rows per block for decode-sized tiles and for head dims above 256
         * (whose tiles then stay within 99 KiB of shared memory), else 32 */
        const int rw = a.G * max_q <= 2 * LCX_CA_WARPS || nc == 16 ? 2 : 8;
        BQ = LCX_CA_WARPS * rw;
        a.Dp = (int32_t)((a.D + 3) & ~3);
        const int64_t wide = a.Dp > a.Dv ? a.Dp : a.Dv;
        a.ldkv = (int32_t)(((wide + 31) & ~31) + 4);
        smem = sizeof(float) * ((size_t)BQ * a.Dp + (size_t)LCX_CA_BK * a.ldkv + (size_t)BQ * LCX_CA_BK);
        smem_static = 1024;
    }
    if (smem + smem_static > (size_t)optin) /* plus the kernel's static row tables */
        return lcx_fail(LCX_E_UNSUPPORTED, "%s: head dims %lld/%lld need %zu bytes of shared memory per block, "
                        "the device allows %d", op, (long long)a.D, (long long)a.Dv, smem + smem_static, optin);

    /* work items: per sequence, kv heads x row tiles; split-KV chunks */
    int64_t n_items = 0;
    if (d->cu_q) {
        for (int64_t x = 0; x < a.n_seqs; x++)
            n_items += a.Hkv * ((a.G * (d->cu_q[x + 1] - d->cu_q[x]) + BQ - 1) / BQ);
    } else {
        a.tiles = (a.G * a.Sq + BQ - 1) / BQ;
        n_items = a.B * a.Hkv * a.tiles;
    }
    a.n_items = n_items;
    a.n_chunks = !d->cu_q && !d->s2 && a.Sq <= LCX_CA_SPLIT_MAX_Q && a.Sk > 2 * LCX_CA_CHUNK
                     ? (a.Sk + LCX_CA_CHUNK - 1) / LCX_CA_CHUNK
                     : 1;
    if (n_items == 0)
        return LCX_OK;

    /* scratch: the varlen tables, then the split-KV partial results */
    const size_t up = d->cu_q ? 3 * (size_t)(a.n_seqs + 1) * sizeof(int64_t) : 0;
    const size_t upa = (up + 255) & ~(size_t)255;
    const size_t part = a.n_chunks > 1 ? (size_t)a.n_chunks * (size_t)(a.B * a.H * a.Sq) * (size_t)(a.Dv + 2) *
                                             sizeof(float)
                                       : 0;
    if (upa + part) {
        void *dmem = NULL;
        lcx_status st = lcx_cuda_scratch(s, upa + part, &dmem);
        if (st != LCX_OK)
            return st;
        if (up) {
            void *hmem = NULL;
            if ((st = lcx_cuda_staging(s, up, &hmem)) != LCX_OK)
                return st;
            int64_t *h = (int64_t *)hmem;
            const size_t n1 = (size_t)a.n_seqs + 1;
            memcpy(h, d->cu_q, n1 * sizeof(int64_t));
            memcpy(h + n1, d->cu_k, n1 * sizeof(int64_t));
            int64_t acc = 0;
            for (int64_t x = 0; x < a.n_seqs; x++) {
                h[2 * n1 + x] = acc;
                acc += a.Hkv * ((a.G * (d->cu_q[x + 1] - d->cu_q[x]) + BQ - 1) / BQ);
            }
            h[2 * n1 + a.n_seqs] = acc;
            if ((st = lcx_cuda_upload(s, dmem, up)) != LCX_OK)
                return st;
            a.cu_q = (const int64_t *)dmem;
            a.cu_k = a.cu_q + n1;
            a.it_start = a.cu_k + n1;
        }
        if (part)
            a.part = (float *)((char *)dmem + upa);
    }

    const int64_t total = a.n_items * a.n_chunks;
    const unsigned grid = (unsigned)(total < (int64_t)1 << 30 ? total : (int64_t)1 << 30);
    lcx_status st;
    if (tc)
        st = tc_launch(a, q->dtype == LCX_BF16, tc_warps, tc_wg, smem, grid, s);
    else if (BQ == 2 * LCX_CA_WARPS)
        st = nc == 16 ? ca_launch<2, 16>(a, smem, grid, s) : ca_launch_nc<2>(nc, a, smem, grid, s);
    else
        st = ca_launch_nc<8>(nc, a, smem, grid, s);
    if (st != LCX_OK || a.n_chunks == 1)
        return st;
    const int64_t rows = a.B * a.H * a.Sq;
    lcx_ca_combine_kernel<<<(unsigned)(rows < (int64_t)1 << 30 ? rows : (int64_t)1 << 30), LCX_CA_THREADS, 0,
                            s->stream>>>(a);
    return lcx_cuda_status(cudaGetLastError(), "attention combine kernel launch");
}

extern "C" int lcx_cuda_attention_tc(lcx_cuda_state *s, int d, int bf16)
{
    lcx_device_scope scope(s->device);
    return scope.err == cudaSuccess && tc_available(d, bf16) ? 1 : 0;
}

extern "C" lcx_status lcx_cuda_attention_merge(lcx_cuda_state *s, const lcx_tensor *out_a, const float *lse_a,
                                               const lcx_tensor *out_b, const float *lse_b, const lcx_tensor *out,
                                               float *lse)
{
    lcx_cam_args a;
    memset(&a, 0, sizeof a);
    a.a = out_a->data;
    a.b = out_b->data;
    a.o = out->data;
    a.la = lse_a;
    a.lb = lse_b;
    a.lo = lse;
    for (int x = 0; x < 3; x++) {
        a.ast[x] = out_a->stride[x];
        a.bst[x] = out_b->stride[x];
        a.ost[x] = out->stride[x];
    }
    a.adt = (int32_t)out_a->dtype;
    a.bdt = (int32_t)out_b->dtype;
    a.odt = (int32_t)out->dtype;
    a.B = out->shape[0];
    a.S = out->shape[1];
    a.H = out->shape[2];
    a.Dv = out->shape[3];
    const int64_t rows = a.B * a.S * a.H;
    if (rows == 0)
        return LCX_OK;
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaPeekAtLastError());
    lcx_ca_merge_kernel<<<(unsigned)(rows < (int64_t)1 << 30 ? rows : (int64_t)1 << 30), LCX_CA_THREADS, 0,
                          s->stream>>>(a);
    return lcx_cuda_status(cudaGetLastError(), "attention merge kernel launch");
}
