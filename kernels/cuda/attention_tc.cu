/* CUDA attention forward on tensor cores (sm_80+: mma.sync m16n8k16,
 * ldmatrix, cp.async) for q, k and v of one 16-bit dtype and head dims
 * d = dv of 64, 96 or 128; other shapes take the SIMT kernel of
 * attention.cu. Work items, row order (query position x the GQA group's
 * heads, so a K/V tile serves the whole group), masks, S2 index rules and
 * split-KV are those of the SIMT kernel (attention.cuh).
 *
 * A block has 8 warps and owns 128 rows (4 warps and 64 rows for short
 * query sets: decode), 16 per warp; keys stream in tiles of 64 through two
 * shared-memory stages (K and V rows as stored, padded to
 * d + 8 halves so the eight rows an ldmatrix reads fall in distinct banks),
 * copied by cp.async while the previous tile is multiplied (a 128-row
 * block halves the K/V traffic from L2 per query row). The Q tile goes
 * through the second stage's buffers into registers (A fragments) once per
 * item. Per tile and warp:
 *  - S = Q K^T: 16 x 64 in f32 accumulators (16-bit products are exact in
 *    f32), then S * scale, softcap, masks and the online softmax on the
 *    fragments (each row lives in a quad of lanes: max and NaN by two
 *    shuffles; the row sum l is kept per lane and summed at the end);
 *  - O += P V on tensor cores. P is rounded to 16 bits for the A operand,
 *    which alone would cost ~3 significant digits; P is therefore split as
 *    P = hi + lo, both 16-bit, and both are multiplied (products exact, sums
 *    in f32): P keeps ~16 bits, the CPU suite's 2e-4 bound holds and the
 *    result is the f32-accumulated attention the API documents. f16 has a
 *    narrow exponent range, so for f16 P is scaled by 2^14 first (weights
 *    down to ~1e-12 stay normal) and O by 2^-14 at the end, exactly.
 *    With lcx_attention_params.pv_16bit the caller accepts FlashAttention's
 *    numerics instead: hi only, a third fewer tensor-core products (Q K^T
 *    takes D/2 mma.sync per warp and tile, P V D with the split, D/2 without);
 *  - a weight of 0 must contribute nothing even where V holds inf or NaN
 *    (a key invisible to this row but visible to another): every thread
 *    checks the V values it staged (integer tests) and one __syncthreads_or
 *    per tile tells the block; only in such tiles are the V fragments tested
 *    (one vote per 16 keys x 16 columns), and a piece holding inf or NaN is
 *    done with f32 FMAs that skip zero weights instead.
 * Scores and running maxima are kept in base 2 (the scale carries log2 e).
 * Without softcap the row maximum is taken over the raw scores and scaled
 * once, and a weight is one ex2.approx (2 ulp) of one FFMA (s xs - m); with
 * softcap the scores are transformed first. A NaN score reaches the row
 * maximum through max.NaN; a maximum of +inf (scores past the float range)
 * makes the row NaN, as inf - inf does on the CPU.
 * The hot loop carries no per-fragment tests: whether a tile needs masks,
 * softcap, the inf/NaN-in-V care or pv_16bit is decided once per tile (per
 * warp) and each case has its own straight-line copy; the rows' visible
 * intervals stay in shared memory (registers hold the accumulators, Q
 * fragments and scores: up to 255 per thread at d = 128, no spills).
 * Decode-sized items (at most 16 rows) split each tile's keys over the four
 * warps instead (16 keys each, all on the same rows), and the warps'
 * partial results are merged in warp order at the end of the item, so four
 * warps work where one would.
 * On sm_90a, where the context enabled it (LONGCTX_CUDA_WGMMA=1; see
 * lcx_cuda_open), prefill blocks of 128 rows at head dims 64 and 128 take a
 * warpgroup-MMA (wgmma) variant of the same kernel (template argument WG):
 * the two warpgroups own 64 rows each; S = Q K^T is D / 16 wgmma m64n64k16
 * with Q's A fragments from registers (the layout is mma.sync's) and K
 * staged by cp.async in the 128-byte-swizzled K-major layout of mma.cuh;
 * O += P V is 4 (8 with the lo half of P) wgmma m64nDk16 with P from
 * registers and V^T as the B operand, which the block writes once per tile
 * from the padded V rows (the B operand wants the keys along its rows; the
 * padded rows stay for the inf/NaN test and the careful path, which in
 * this variant does a whole tile by FMAs). A tile is skipped only when no
 * row of the warpgroup sees it (a wgmma is collective). Softmax, masks,
 * NaN rules and the epilogue are the shared code: the accumulators of
 * m64nNk16 are the m16n8 fragments of each warp. Not yet done: K/V copies
 * overlapped with the MMAs of the other warpgroup (FA3's ping-pong), TMA
 * and an in-register transpose of V (stmatrix).
 * Sums run in an order fixed by the shape; results do not depend on the grid
 * size or the run. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "attention.cuh"
#include "mma.cuh"
#include "../common/fp_bits.h"

#define LCX_TC_BK 64 /* keys per tile */

namespace lcx_ca {

size_t tc_smem_bytes(int d) { return (size_t)4 * LCX_TC_BK * (size_t)(d + 8) * sizeof(uint16_t); }

/* the wgmma kernel: per stage a swizzled K tile and a padded V tile, then
 * one swizzled V^T tile; + 1024 for the alignment of the swizzled tiles */
size_t tc_wg_smem_bytes(int d)
{
    return (size_t)(2 * (LCX_TC_BK * d + LCX_TC_BK * (d + 8)) + 64 * d) * sizeof(uint16_t) + 1024;
}

namespace {

#if LCX_CUDA_SM80
template <int BF16> __device__ __forceinline__ float tc_widen(uint32_t h)
{
    return lcx_half_to_f32<BF16>((uint16_t)h);
}

/* hi and lo halves of the weights x0, x1: x = hi + lo to ~16 bits */
template <int BF16> __device__ __forceinline__ void tc_split(float x0, float x1, uint32_t &hi, uint32_t &lo)
{
    hi = lcx_pack2_rn<BF16>(x0, x1);
    lo = lcx_pack2_rn<BF16>(x0 - tc_widen<BF16>(hi & 0xffffu), x1 - tc_widen<BF16>(hi >> 16));
}

/* bit 15 or 31 set where the 16-bit half of r is inf or NaN (and no bit
 * elsewhere): x = (r & E) ^ E leaves each half 0 exactly where its exponent
 * bits are all set, at most E < 2^15 elsewhere; (x - 1) & ~x has the top bit
 * of a half set where the half is 0 (a borrow out of a zero low half only
 * touches the high half's answer when the low half already reports). OR
 * these over many words, test once */
template <int BF16> __device__ __forceinline__ uint32_t tc_nonfinite_bits(uint32_t r)
{
    constexpr uint32_t E = BF16 ? 0x7f807f80u : 0x7c007c00u;
    const uint32_t x = (r & E) ^ E;
    return (x - 0x00010001u) & ~x & 0x80008000u;
}

/* either 16-bit half of a packed pair is inf or NaN */
template <int BF16> __device__ __forceinline__ bool tc_nonfinite2(uint32_t r)
{
    return tc_nonfinite_bits<BF16>(r) != 0;
}
#endif

/* `rows` 16-bit rows of D elements at global offsets off(j) into shared
 * rows of LD halves, by the block's NT threads; rows at or past `n` are
 * zero (their products must be 0, not garbage) */
template <int D, int LD, int NT, class OFF>
__device__ __forceinline__ void tc_stage(uint16_t *dst, const uint16_t *src, OFF off, int rows, int n, int vec)
{
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    if (vec) {
        for (int idx = threadIdx.x; idx < rows * CH; idx += NT) {
            const int j = idx / CH, c = idx % CH;
            uint16_t *d = dst + j * LD + c * 8;
            if (j < n)
                lcx_cp_async16(d, src + off(j) + c * 8);
            else
                *reinterpret_cast<uint4 *>(d) = make_uint4(0, 0, 0, 0);
        }
    } else {
        for (int idx = threadIdx.x; idx < rows * D; idx += NT) {
            const int j = idx / D, c = idx % D;
            dst[j * LD + c] = j < n ? src[off(j) + c] : (uint16_t)0;
        }
    }
}

/* tc_stage for rows at src + j * stride (the keys of a tile are
 * consecutive), ROWS of them: where the block's threads cover whole rows per
 * pass (D = 64, 128), each thread keeps its column and steps its row by
 * NT / (D / 8), so a copy costs a pointer step, not an index division */
template <int D, int LD, int NT, int ROWS>
__device__ __forceinline__ void tc_stage_rows(uint16_t *dst, const uint16_t *src, int64_t stride, int n, int vec)
{
    constexpr int CH = D / 8;
    static_assert(ROWS == LCX_TC_BK, "tc_own_nonfinite reads back the rows of a whole tile");
    if constexpr (NT % CH == 0 && ROWS % (NT / CH) == 0) {
        if (vec) {
            constexpr int RP = NT / CH; /* rows per pass */
            const int j0 = threadIdx.x / CH, c = threadIdx.x % CH * 8;
            const uint16_t *g = src + j0 * stride + c;
            uint16_t *d = dst + j0 * LD + c;
#pragma unroll
            for (int i = 0; i < ROWS / RP; i++, g += RP * stride) {
                if (j0 + i * RP < n)
                    lcx_cp_async16(d + i * RP * LD, g);
                else
                    *reinterpret_cast<uint4 *>(d + i * RP * LD) = make_uint4(0, 0, 0, 0);
            }
            return;
        }
    }
    tc_stage<D, LD, NT>(dst, src, [&](int j) { return j * stride; }, ROWS, n, vec);
}

#if LCX_CUDA_SM80
/* the K tile for the wgmma kernel: the operand layout of mma.cuh (K-major,
 * 128-byte swizzle), one 64-key x 64-column block after another (D / 64
 * of them, 8 KiB each): the 16-byte chunk c of key j goes to block c / 8,
 * row j, chunk (c % 8) ^ (j % 8). Keys at or past n are zero */
template <int D, int NT>
__device__ __forceinline__ void tc_stage_sw(uint16_t *dst, const uint16_t *src, int64_t stride, int n, int vec)
{
    constexpr int CH = D / 8;
    for (int idx = threadIdx.x; idx < LCX_TC_BK * CH; idx += NT) {
        const int j = idx / CH, c = idx % CH;
        uint16_t *const d = dst + (c >> 3) * (LCX_TC_BK * 64) + j * 64 + (((c & 7) ^ (j & 7)) << 3);
        if (j >= n)
            *reinterpret_cast<uint4 *>(d) = make_uint4(0, 0, 0, 0);
        else if (vec)
            lcx_cp_async16(d, src + j * stride + c * 8);
        else
            for (int e = 0; e < 8; e++)
                d[e] = src[j * stride + c * 8 + e];
    }
}

/* V^T of a staged V tile (rows of LD halves) for the wgmma kernel's P V:
 * the B operand wants the reduction (keys) along rows, so row n of vt is
 * column n of V, its 64 keys in 128 bytes, swizzled as K's. A task turns 8
 * keys x 2 columns (eight 32-bit reads) into two 16-byte chunks */
template <int D, int LD, int NT>
__device__ __forceinline__ void tc_transpose_v(const uint16_t *vs, uint16_t *vt)
{
    constexpr int NP = D / 2;
    for (int t = threadIdx.x; t < 8 * NP; t += NT) {
        const int n = 2 * (t % NP), jb = t / NP;
        uint32_t w[8];
#pragma unroll
        for (int i = 0; i < 8; i++)
            w[i] = *reinterpret_cast<const uint32_t *>(vs + (jb * 8 + i) * LD + n);
        uint32_t lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = (w[2 * i] & 0xffffu) | (w[2 * i + 1] << 16);
            hi[i] = (w[2 * i] >> 16) | (w[2 * i + 1] & 0xffff0000u);
        }
        *reinterpret_cast<uint4 *>(vt + n * 64 + ((jb ^ (n & 7)) << 3)) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
        *reinterpret_cast<uint4 *>(vt + (n + 1) * 64 + ((jb ^ ((n + 1) & 7)) << 3)) =
            make_uint4(hi[0], hi[1], hi[2], hi[3]);
    }
}

/* some 16-bit value this thread staged with tc_stage (rows < n; the rest
 * are zeros) is inf or NaN. Read back after the thread's own cp.async
 * wait, which makes its copies visible to it; the block's OR then comes
 * from one __syncthreads_or */
template <int D, int LD, int NT, int BF16>
__device__ __forceinline__ bool tc_own_nonfinite(const uint16_t *dst, int n, int vec)
{
    uint32_t bad = 0;
    constexpr int CH = D / 8;
    if (vec) {
        if constexpr (NT % CH == 0 && LCX_TC_BK % (NT / CH) == 0) { /* as tc_stage_rows of a tile */
            constexpr int RP = NT / CH;
            const int j0 = threadIdx.x / CH, c = threadIdx.x % CH * 8;
            for (int j = j0; j < n; j += RP) {
                const uint4 w = *reinterpret_cast<const uint4 *>(dst + j * LD + c);
                bad |= tc_nonfinite_bits<BF16>(w.x) | tc_nonfinite_bits<BF16>(w.y) | tc_nonfinite_bits<BF16>(w.z) |
                       tc_nonfinite_bits<BF16>(w.w);
            }
        } else {
            for (int idx = threadIdx.x; idx < n * CH; idx += NT) {
                const int j = idx / CH, c = idx % CH;
                const uint4 w = *reinterpret_cast<const uint4 *>(dst + j * LD + c * 8);
                bad |= tc_nonfinite_bits<BF16>(w.x) | tc_nonfinite_bits<BF16>(w.y) | tc_nonfinite_bits<BF16>(w.z) |
                       tc_nonfinite_bits<BF16>(w.w);
            }
        }
    } else {
        for (int idx = threadIdx.x; idx < n * D; idx += NT) {
            const int j = idx / D, c = idx % D;
            bad |= tc_nonfinite_bits<BF16>((uint32_t)dst[j * LD + c]);
        }
    }
    return bad != 0;
}
#endif

template <int D, int BF16, int WARPS, int WG>
__global__ void __launch_bounds__(32 * WARPS, 1) lcx_ca_tc_kernel(const lcx_ca_args a)
{
#if LCX_CUDA_SM80
#if !LCX_CUDA_SM90A
    if constexpr (WG != 0)
        return; /* launched only where the context's probe found sm_90a code */
#endif
    constexpr bool wgm = WG != 0;
    static_assert(!wgm || ((D == 64 || D == 128) && WARPS == 8), "wgmma: head dim 64 or 128, two warpgroups");
    constexpr int BQ = 16 * WARPS, BK = LCX_TC_BK, LD = D + 8, NTH = 32 * WARPS;
    constexpr int KF = D / 16; /* k-steps of Q K^T */
    constexpr int NT = BK / 8; /* 8-key column tiles of S */
    constexpr int VN = D / 8;  /* 8-column tiles of O */
    /* f16: P is scaled by 2^14 before the split, O by 2^-14 at the end */
    constexpr float PS = BF16 ? 1.0f : 16384.0f, PS_INV = BF16 ? 1.0f : 1.0f / 16384.0f;
    /* scores are kept in base 2 (a.xs, a.xc carry log2(e)): one ex2 per
     * weight; m too, back to natural logs (x ln 2) for lse and the split-KV
     * partials. Read from the kernel parameters where used, not held in
     * registers */
    constexpr float LN2 = 0.6931471805599453f;
    extern __shared__ uint4 lcx_tc_smem[];
    /* mma.sync: [stage][K, V][BK][LD]; wgmma: [stage][K swizzled (BK x D),
     * V (BK x LD)], then V^T (D x BK, swizzled), from a 1024-byte boundary */
    uint16_t *const sm =
        reinterpret_cast<uint16_t *>(reinterpret_cast<unsigned char *>(lcx_tc_smem) +
                                     (wgm ? (1024u - ((uint32_t)__cvta_generic_to_shared(lcx_tc_smem) & 1023u)) & 1023u
                                          : 0u));
    constexpr int KT = wgm ? BK * D : BK * LD, ST = KT + BK * LD; /* halves: a K tile, a stage */
    uint16_t *const Qs = sm + ST; /* stage 1 (and V^T: up to 128 rows) */
    uint16_t *const Vt = sm + 2 * ST;
    (void)Vt; /* (wgmma only) */
    static_assert(!wgm || BQ * LD <= ST + 64 * D, "Q rows fit stage 1 and V^T");
    __shared__ int64_t rlo[BQ][2], rhi[BQ][2], rq[BQ], ri[BQ], rh[BQ];
    __shared__ int rnv[BQ];
    __shared__ int64_t run_lo[2], run_hi[2];
    __shared__ int n_runs;
    __shared__ float pscr[WARPS][16][17]; /* P of a 16-key step, for the careful path */
    __shared__ int64_t wspan[WARPS][2];   /* the warps' key spans (wgmma: a warpgroup's union) */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int64_t total = a.n_items * a.n_chunks;
    const uint16_t *const qg = (const uint16_t *)a.q, *const kg = (const uint16_t *)a.k,
                          *const vg = (const uint16_t *)a.v;

    for (int64_t id = blockIdx.x; id < total; id += gridDim.x) {
        const ca_item t = ca_locate(a, id, BQ);
        __syncthreads(); /* the previous item is done with shared memory */
        if (threadIdx.x < BQ)
            ca_row_setup(a, t, threadIdx.x, rlo, rhi, rnv, ri, rh, rq);
        __syncthreads();
        if (threadIdx.x == 0)
            n_runs = ca_runs(a, t, rlo, rhi, rnv, run_lo, run_hi);
        /* (key-split decode items read rows 0-15 only) */
        tc_stage<D, LD, NTH>(Qs, qg, [&](int j) { return rq[j]; }, a.ksplit ? 16 : BQ, t.nrows, a.vec);
        lcx_cp_async_commit();
        lcx_cp_async_wait<0>();
        __syncthreads();

        /* this warp's rows: Q fragments, visible intervals, key span */
        /* key-split (decode: at most 16 rows): every warp has rows 0-15 and
         * takes 16 of each tile's 64 keys; the four partial softmaxes are
         * merged at the end of the item */
        const bool ks = a.ksplit != 0;
        const int wr = ks ? 0 : warp * 16;
        uint32_t qf[KF][4];
#pragma unroll
        for (int kk = 0; kk < KF; kk++)
            lcx_ldsm_x4(qf[kk], Qs + (wr + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
        /* the rows' visible intervals stay in shared memory (rlo, rhi,
         * rnv: read per tile, registers are short); their union here */
        const int r0 = wr + g, r1 = wr + g + 8;
        int64_t wlo = INT64_MAX, whi = -1;
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int r = hr ? r1 : r0;
            for (int x = 0; x < rnv[r]; x++) {
                wlo = rlo[r][x] < wlo ? rlo[r][x] : wlo;
                whi = rhi[r][x] > whi ? rhi[r][x] : whi;
            }
        }
        for (int o = 4; o < 32; o <<= 1) {
            const int64_t l2 = __shfl_xor_sync(0xffffffffu, wlo, o), h2 = __shfl_xor_sync(0xffffffffu, whi, o);
            wlo = l2 < wlo ? l2 : wlo;
            whi = h2 > whi ? h2 : whi;
        }
        const int nr = n_runs;
        const int64_t n0 = nr > 0 ? (run_hi[0] - run_lo[0] + BK) / BK : 0;
        const int64_t ntiles = n0 + (nr > 1 ? (run_hi[1] - run_lo[1] + BK) / BK : 0);
        if (wgm && lane == 0) {
            wspan[warp][0] = wlo;
            wspan[warp][1] = whi;
        }
        __syncthreads(); /* Qs (stage 1) is free */
        if constexpr (wgm) { /* a wgmma takes the warpgroup's 64 rows: their union */
            for (int w = warp & ~3; w < (warp & ~3) + 4; w++) {
                wlo = wspan[w][0] < wlo ? wspan[w][0] : wlo;
                whi = wspan[w][1] > whi ? wspan[w][1] : whi;
            }
        }

        float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
        bool rnan[2] = {false, false};
        float acc[VN][4];
#pragma unroll
        for (int vn = 0; vn < VN; vn++)
            acc[vn][0] = acc[vn][1] = acc[vn][2] = acc[vn][3] = 0.0f;

        /* tile ti: its first key and its key count */
        auto tile = [&](int64_t ti, int64_t &kb, int &nk) {
            const int x = ti < n0 ? 0 : 1;
            kb = run_lo[x] + (ti - (x ? n0 : 0)) * BK;
            nk = (int)(run_hi[x] - kb + 1 < BK ? run_hi[x] - kb + 1 : BK);
        };
        auto issue = [&](int64_t ti) {
            int64_t kb;
            int nk;
            tile(ti, kb, nk);
            const int st = (int)(ti & 1);
            /* the tile's keys are consecutive: row offsets are affine in j
             * (the stage's buffers were freed by the previous tile's last
             * barrier) */
            const int64_t key0 = t.k0 + kb;
            const int64_t k0 = t.b * a.kst[0] + key0 * a.kst[1] + t.kvh * a.kst[2], ks1 = a.kst[1];
            const int64_t v0 = t.b * a.vst[0] + key0 * a.vst[1] + t.kvh * a.vst[2], vs1 = a.vst[1];
            if constexpr (wgm)
                tc_stage_sw<D, NTH>(sm + st * ST, kg + k0, ks1, nk, a.vec);
            else
                tc_stage_rows<D, LD, NTH, BK>(sm + st * ST, kg + k0, ks1, nk, a.vec);
            tc_stage_rows<D, LD, NTH, BK>(sm + st * ST + KT, vg + v0, vs1, nk, a.vec);
            lcx_cp_async_commit();
        };
        if (ntiles > 0)
            issue(0);
        for (int64_t ti = 0; ti < ntiles; ti++) {
            if (ti + 1 < ntiles) {
                issue(ti + 1);
                lcx_cp_async_wait<1>();
            } else {
                lcx_cp_async_wait<0>();
            }
            int64_t kb;
            int nk;
            tile(ti, kb, nk);
            const uint16_t *const Ks = sm + (ti & 1) * ST, *const Vs = Ks + KT;
#if LCX_CUDA_SM90A
            if constexpr (wgm)
                lcx_fence_proxy_async(); /* this thread's K copies, for the tensor cores' reads */
#endif
            /* the tile is complete for the block; whether V holds inf/NaN */
            const bool vmine = tc_own_nonfinite<D, LD, NTH, BF16>(Vs, nk, a.vec);
            const bool vbad = __syncthreads_or(vmine) != 0;
#if LCX_CUDA_SM90A
            if constexpr (wgm) {
                if (!vbad) { /* (a tile with inf/NaN in V takes f32 FMAs from Vs instead) */
                    tc_transpose_v<D, LD, NTH>(Vs, Vt);
                    lcx_fence_proxy_async();
                    __syncthreads();
                }
            }
#endif
            /* some row of this warp (wgmma: warpgroup) sees a key of the tile */
            if (kb <= whi && kb + nk - 1 >= wlo) {
                float s[NT][4];
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
                /* this lane's ldmatrix row of a 16-key group: key (lane & 7) +
                 * 8 (lane >> 4), halves 8 ((lane >> 3) & 1) on; the rest of
                 * the address is constant (an immediate offset) */
                const uint16_t *const kq = Ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8;
                if constexpr (wgm) {
#if LCX_CUDA_SM90A
                    /* S = Q K^T for the warpgroup's 64 rows: Q from registers
                     * (the A fragments are mma.sync's), K^T one 16-column
                     * slice of the swizzled blocks per step */
                    float(&sf)[4 * NT] = reinterpret_cast<float(&)[4 * NT]>(s);
                    const uint32_t k_s = (uint32_t)__cvta_generic_to_shared(Ks);
                    lcx_wg_arrive();
                    lcx_wg_pin(sf);
#pragma unroll
                    for (int kk = 0; kk < KF; kk++)
                        lcx_wgmma_rs<BK, BF16>(sf, qf[kk], lcx_wg_desc(k_s + (kk >> 2) * 8192 + (kk & 3) * 32));
                    lcx_wg_commit();
                    lcx_wg_wait<0>();
                    lcx_wg_pin(sf);
#pragma unroll
                    for (int kk = 0; kk < KF; kk++)
                        lcx_wg_pin(qf[kk]);
#endif
                } else if (!ks) {
#pragma unroll
                    for (int kk = 0; kk < KF; kk++)
#pragma unroll
                        for (int np = 0; np < NT / 2; np++) {
                            uint32_t r[4];
                            lcx_ldsm_x4(r, kq + np * 16 * LD + kk * 16);
                            const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                            lcx_mma16816<BF16>(s[2 * np], qf[kk], b0);
                            lcx_mma16816<BF16>(s[2 * np + 1], qf[kk], b1);
                        }
                } else { /* key split: this warp's 16 keys, into s[0] and s[1] */
#pragma unroll
                    for (int kk = 0; kk < KF; kk++) {
                        uint32_t r[4];
                        lcx_ldsm_x4(r, kq + warp * 16 * LD + kk * 16);
                        const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                        lcx_mma16816<BF16>(s[0], qf[kk], b0);
                        lcx_mma16816<BF16>(s[1], qf[kk], b1);
                    }
                }
                /* scale, softcap, masks; online softmax per row (quad of lanes).
                 * Most tiles are visible whole to every row of the warp: no masks */
                bool cover = nk == BK;
#pragma unroll
                for (int hr = 0; hr < 2; hr++)
                    cover = cover && rnv[hr ? r1 : r0] >= 1 && rlo[hr ? r1 : r0][0] <= kb &&
                            rhi[hr ? r1 : r0][0] >= kb + BK - 1;
                const bool full = !ks && !__any_sync(0xffffffffu, !cover);
                /* without softcap the maximum is taken over the raw scores and
                 * scaled once (a.xs > 0 and rounding is monotone: the same
                 * value), and a weight is ex2(fma(s, xs, -m)); with softcap
                 * the scores are transformed first. One copy of the loops
                 * each, chosen once per tile */
                auto softmax = [&](auto softcap, auto masked) {
                    constexpr bool SC = decltype(softcap)::value, MASK = decltype(masked)::value;
#pragma unroll
                    for (int hr = 0; hr < 2; hr++) {
                        float mx = -INFINITY;
                        /* masks: the row's visible intervals relative to the
                         * tile, clamped to [-1, BK] (empty: l > h) */
                        const int r = hr ? r1 : r0, nvr = MASK ? rnv[r] : 0;
                        auto rel = [&](int64_t v) { return (int)(v < kb - 1 ? -1 : v > kb + BK ? BK : v - kb); };
                        const int l0 = nvr >= 1 ? rel(rlo[r][0]) : BK, h0 = nvr >= 1 ? rel(rhi[r][0]) : -1;
                        const int l1 = nvr >= 2 ? rel(rlo[r][1]) : BK, h1 = nvr >= 2 ? rel(rhi[r][1]) : -1;
#pragma unroll
                        for (int nt = 0; nt < NT; nt++)
#pragma unroll
                            for (int e = 0; e < 2; e++) {
                                float x = s[nt][2 * hr + e];
                                if constexpr (SC)
                                    x = a.xc * tanhf(x * a.xs);
                                if constexpr (MASK) { /* key split: only this warp's 16 keys (s[0], s[1]) */
                                    const int jj = (ks ? warp * 16 : 0) + nt * 8 + 2 * tq + e;
                                    const bool vis = jj < nk && ((jj >= l0 && jj <= h0) || (jj >= l1 && jj <= h1)) &&
                                                     (!ks || nt < 2);
                                    x = vis ? x : -INFINITY;
                                }
                                mx = lcx_fmax_nan(mx, x);
                                s[nt][2 * hr + e] = x;
                            }
                        for (int o = 1; o < 4; o <<= 1)
                            mx = lcx_fmax_nan(mx, __shfl_xor_sync(0xffffffffu, mx, o));
                        if constexpr (!SC)
                            mx *= a.xs;
                        /* a NaN in q or k, or a score past the float range: the
                         * row's output and lse are NaN (as the CPU: inf - inf) */
                        if (mx != mx || mx == INFINITY)
                            rnan[hr] = true;
                        const bool live = !rnan[hr] && mx != -INFINITY;
                        float mn = m[hr];
                        if (live && mx > m[hr]) {
                            mn = mx;
                            const float f = lcx_ex2(m[hr] - mn); /* 0 when m was -inf */
                            l[hr] *= f;
#pragma unroll
                            for (int vn = 0; vn < VN; vn++) {
                                acc[vn][2 * hr] *= f;
                                acc[vn][2 * hr + 1] *= f;
                            }
                            m[hr] = mn;
                        }
                        /* the FMA skips the rounding of s xs, so the row's
                         * largest weight is 2^d with |d| <= ulp(m) / 2, not 1:
                         * harmless (<= 2^(1/32)) while |m| < 2^20; past that
                         * (scores of such size only come from huge scales)
                         * the rounded product keeps the largest weight 1 */
                        if (live && (SC || fabsf(mn) < 0x1p20f)) {
#pragma unroll
                            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                                for (int e = 0; e < 2; e++) { /* masked: 2^-inf = 0 */
                                    const float x = s[nt][2 * hr + e];
                                    const float p = SC ? lcx_ex2(x - mn) : lcx_ex2(fmaf(x, a.xs, -mn));
                                    l[hr] += p;
                                    s[nt][2 * hr + e] = p;
                                }
                        } else if (live) {
#pragma unroll
                            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                                for (int e = 0; e < 2; e++) {
                                    const float p = lcx_ex2(__fsub_rn(__fmul_rn(s[nt][2 * hr + e], a.xs), mn));
                                    l[hr] += p;
                                    s[nt][2 * hr + e] = p;
                                }
                        } else {
#pragma unroll
                            for (int nt = 0; nt < NT; nt++)
                                s[nt][2 * hr] = s[nt][2 * hr + 1] = 0.0f;
                        }
                    }
                };
                if (a.softcap > 0) {
                    if (full)
                        softmax(std::true_type(), std::false_type());
                    else
                        softmax(std::true_type(), std::true_type());
                } else {
                    if (full)
                        softmax(std::false_type(), std::false_type());
                    else
                        softmax(std::false_type(), std::true_type());
                }
                /* the careful path: the weights p0, p1 of 16 keys (S columns
                 * 2 kk, 2 kk + 1) through shared memory, then the V columns
                 * 16 vp to 16 vp + 15 of those keys by f32 FMAs that skip
                 * zero weights (a key with inf or NaN in V that a row does
                 * not see must add nothing to it) */
                auto stage_p = [&](const float(&p0)[4], const float(&p1)[4]) {
                    float(*ps)[17] = pscr[warp];
                    __syncwarp();
                    for (int e = 0; e < 2; e++) {
                        ps[g][2 * tq + e] = p0[e];
                        ps[g + 8][2 * tq + e] = p0[2 + e];
                        ps[g][8 + 2 * tq + e] = p1[e];
                        ps[g + 8][8 + 2 * tq + e] = p1[2 + e];
                    }
                    __syncwarp();
                };
                auto fma_piece = [&](int kk, int vp) {
                    const float(*ps)[17] = pscr[warp];
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const int row = g + 8 * ((e >> 1) & 1), col = vp * 16 + (e >> 2) * 8 + 2 * tq + (e & 1);
                        float o = acc[2 * vp + (e >> 2)][e & 3];
#pragma unroll 1
                        for (int j = 0; j < 16; j++) {
                            const float p = ps[row][j];
                            if (p != 0.0f)
                                o = fmaf(p * PS, tc_widen<BF16>(Vs[(kk * 16 + j) * LD + col]), o);
                        }
                        acc[2 * vp + (e >> 2)][e & 3] = o;
                    }
                };
                /* O += P V: 16 keys (step kk) with weights p0, p1 (S columns
                 * 2 kk and 2 kk + 1), 16 columns of V at a time */
                auto pv = [&](int kk, const float(&p0)[4], const float(&p1)[4]) {
                    const uint16_t *const vq =
                        Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
                    uint32_t ah[4], al[4];
                    /* V without inf/NaN: every 16 columns on tensor cores,
                     * with the lo half of P or without */
                    auto clean = [&](auto with_lo) {
#pragma unroll
                        for (int vp = 0; vp < VN / 2; vp++) {
                            uint32_t vf[4];
                            lcx_ldsm_x4_trans(vf, vq + vp * 16);
                            const uint32_t b0[2] = {vf[0], vf[1]}, b1[2] = {vf[2], vf[3]};
                            lcx_mma16816<BF16>(acc[2 * vp], ah, b0);
                            lcx_mma16816<BF16>(acc[2 * vp + 1], ah, b1);
                            if constexpr (decltype(with_lo)::value) {
                                lcx_mma16816<BF16>(acc[2 * vp], al, b0);
                                lcx_mma16816<BF16>(acc[2 * vp + 1], al, b1);
                            }
                        }
                    };
                    if (a.pv16 && !vbad) { /* P rounded to 16 bits: hi only */
                        ah[0] = lcx_pack2_rn<BF16>(p0[0] * PS, p0[1] * PS);
                        ah[1] = lcx_pack2_rn<BF16>(p0[2] * PS, p0[3] * PS);
                        ah[2] = lcx_pack2_rn<BF16>(p1[0] * PS, p1[1] * PS);
                        ah[3] = lcx_pack2_rn<BF16>(p1[2] * PS, p1[3] * PS);
                        clean(std::false_type());
                        return;
                    }
                    /* hi (the pv_16bit rounding) and lo */
                    tc_split<BF16>(p0[0] * PS, p0[1] * PS, ah[0], al[0]);
                    tc_split<BF16>(p0[2] * PS, p0[3] * PS, ah[1], al[1]);
                    tc_split<BF16>(p1[0] * PS, p1[1] * PS, ah[2], al[2]);
                    tc_split<BF16>(p1[2] * PS, p1[3] * PS, ah[3], al[3]);
                    if (!vbad) {
                        clean(std::true_type());
                        return;
                    }
                    /* V of this tile holds inf or NaN somewhere (vbad is the
                     * same for the whole block: the votes are uniform) */
                    bool staged = false;
#pragma unroll
                    for (int vp = 0; vp < VN / 2; vp++) {
                        uint32_t vf[4];
                        lcx_ldsm_x4_trans(vf, vq + vp * 16);
                        if (!__any_sync(0xffffffffu, tc_nonfinite2<BF16>(vf[0]) || tc_nonfinite2<BF16>(vf[1]) ||
                                                         tc_nonfinite2<BF16>(vf[2]) || tc_nonfinite2<BF16>(vf[3]))) {
                            const uint32_t b0[2] = {vf[0], vf[1]}, b1[2] = {vf[2], vf[3]};
                            lcx_mma16816<BF16>(acc[2 * vp], ah, b0);
                            lcx_mma16816<BF16>(acc[2 * vp + 1], ah, b1);
                            if (!a.pv16) {
                                lcx_mma16816<BF16>(acc[2 * vp], al, b0);
                                lcx_mma16816<BF16>(acc[2 * vp + 1], al, b1);
                            }
                            continue;
                        }
                        /* inf or NaN in these V rows and columns */
                        if (!staged) {
                            stage_p(p0, p1);
                            staged = true;
                        }
                        fma_piece(kk, vp);
                    }
                };
                if constexpr (wgm) {
#if LCX_CUDA_SM90A
                    if (!vbad) {
                        /* O += P V for the warpgroup: P from registers (the S
                         * fragments packed as A fragments, hi and lo as above),
                         * V^T one 16-key slice per step; pv_16bit: hi only */
                        float(&af)[D / 2] = reinterpret_cast<float(&)[D / 2]>(acc);
                        const uint32_t vt_s = (uint32_t)__cvta_generic_to_shared(Vt);
                        auto batch = [&](auto with_lo) {
                            constexpr bool LO = decltype(with_lo)::value;
                            uint32_t ph[BK / 16][4], pl[BK / 16][4];
#pragma unroll
                            for (int kk = 0; kk < BK / 16; kk++)
#pragma unroll
                                for (int i = 0; i < 4; i++) {
                                    const float *const p = s[2 * kk + (i >> 1)] + 2 * (i & 1);
                                    if constexpr (LO)
                                        tc_split<BF16>(p[0] * PS, p[1] * PS, ph[kk][i], pl[kk][i]);
                                    else
                                        ph[kk][i] = lcx_pack2_rn<BF16>(p[0] * PS, p[1] * PS);
                                }
                            lcx_wg_arrive();
                            lcx_wg_pin(af);
#pragma unroll
                            for (int kk = 0; kk < BK / 16; kk++) {
                                const uint64_t dv = lcx_wg_desc(vt_s + kk * 32);
                                lcx_wgmma_rs<D, BF16>(af, ph[kk], dv);
                                if constexpr (LO)
                                    lcx_wgmma_rs<D, BF16>(af, pl[kk], dv);
                            }
                            lcx_wg_commit();
                            lcx_wg_wait<0>();
                            lcx_wg_pin(af);
#pragma unroll
                            for (int kk = 0; kk < BK / 16; kk++) {
                                lcx_wg_pin(ph[kk]);
                                if constexpr (LO)
                                    lcx_wg_pin(pl[kk]);
                            }
                        };
                        if (a.pv16)
                            batch(std::false_type());
                        else
                            batch(std::true_type());
                    } else { /* inf or NaN somewhere in V: every piece by FMAs */
#pragma unroll
                        for (int kk = 0; kk < BK / 16; kk++) {
                            stage_p(s[2 * kk], s[2 * kk + 1]);
#pragma unroll
                            for (int vp = 0; vp < VN / 2; vp++)
                                fma_piece(kk, vp);
                        }
                    }
#endif
                } else if (!ks) {
#pragma unroll
                    for (int kk = 0; kk < BK / 16; kk++)
                        pv(kk, s[2 * kk], s[2 * kk + 1]);
                } else { /* this warp's 16 keys */
                    pv(warp, s[0], s[1]);
                }
            }
            __syncthreads(); /* every warp is done with this stage */
        }

#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
            l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
        }
        if (ks) {
            /* merge the warps' partial rows in warp order (the split-KV
             * combine of lib/attention.c): through the idle stage buffers */
            float *const mg = reinterpret_cast<float *>(sm); /* [warp][lane][VN * 4 + 4] */
            constexpr int MS = VN * 4 + 4;
            float *const mine = mg + (warp * 32 + lane) * MS;
#pragma unroll
            for (int vn = 0; vn < VN; vn++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    mine[vn * 4 + e] = acc[vn][e];
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                mine[VN * 4 + hr] = rnan[hr] ? NAN : m[hr];
                mine[VN * 4 + 2 + hr] = rnan[hr] ? NAN : l[hr];
            }
            __syncthreads();
            if (warp == 0) {
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    float mx = -INFINITY;
                    bool nan = false;
                    for (int w = 0; w < WARPS; w++) {
                        const float mw = mg[(w * 32 + lane) * MS + VN * 4 + hr];
                        nan |= mw != mw;
                        mx = mw > mx ? mw : mx;
                    }
                    float lsum = 0.0f, o[VN][2];
#pragma unroll
                    for (int vn = 0; vn < VN; vn++)
                        o[vn][0] = o[vn][1] = 0.0f;
                    if (!nan && mx > -INFINITY)
                        for (int w = 0; w < WARPS; w++) {
                            const float *pw = mg + (w * 32 + lane) * MS;
                            if (pw[VN * 4 + 2 + hr] == 0.0f)
                                continue; /* this warp's keys were all invisible */
                            const float f = lcx_ex2(pw[VN * 4 + hr] - mx);
                            lsum += pw[VN * 4 + 2 + hr] * f;
#pragma unroll
                            for (int vn = 0; vn < VN; vn++) {
                                o[vn][0] += pw[vn * 4 + 2 * hr] * f;
                                o[vn][1] += pw[vn * 4 + 2 * hr + 1] * f;
                            }
                        }
                    rnan[hr] = nan;
                    m[hr] = mx;
                    l[hr] = lsum;
#pragma unroll
                    for (int vn = 0; vn < VN; vn++) {
                        acc[vn][2 * hr] = o[vn][0];
                        acc[vn][2 * hr + 1] = o[vn][1];
                    }
                }
            }
        }

        /* finish the rows, or keep them for the combine kernel */
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            float ll = l[hr];
            const int r = wr + g + 8 * hr;
            if (ks && warp != 0)
                continue;
            if (r >= t.nrows)
                continue;
            const int64_t h = rh[r], i = ri[r];
            const float mm = rnan[hr] ? NAN : m[hr] * LN2;
            ll = rnan[hr] ? NAN : ll;
            if (a.n_chunks > 1) {
                float *pp = a.part + ((((size_t)t.chunk * a.B + t.b) * a.H + h) * a.Sq + (t.q0 + i)) *
                                         (size_t)(a.Dv + 2);
#pragma unroll
                for (int vn = 0; vn < VN; vn++) {
                    pp[vn * 8 + 2 * tq] = acc[vn][2 * hr] * PS_INV;
                    pp[vn * 8 + 2 * tq + 1] = acc[vn][2 * hr + 1] * PS_INV;
                }
                if (tq == 0) {
                    pp[a.Dv] = mm;
                    pp[a.Dv + 1] = ll;
                }
                continue;
            }
            const int64_t ob = t.b * a.ost[0] + (t.q0 + i) * a.ost[1] + h * a.ost[2];
#pragma unroll
            for (int vn = 0; vn < VN; vn++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    lcx_store_elem(a.out, a.odt, (size_t)(ob + vn * 8 + 2 * tq + e),
                                   ca_final(acc[vn][2 * hr + e] * PS_INV, ll));
            if (tq == 0 && a.lse)
                a.lse[(t.b * a.H + h) * a.Sq + t.q0 + i] = ca_final_lse(mm, ll);
        }
    }
#endif
}

/* the kernel has tensor-core code for this device: built from sm_80+ PTX
 * (a build for older targets, JIT-compiled here, has an empty body) */
template <int D, int BF16> bool tc_built()
{
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, lcx_ca_tc_kernel<D, BF16, 4, 0>) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return fa.ptxVersion >= 80;
}

template <int D, int BF16, int WARPS, int WG>
lcx_status tc_go(const lcx_ca_args &a, size_t smem, unsigned grid, lcx_cuda_state *s)
{
    LCX_CUDA_TRY(lcx_cuda_smem_optin(s, (const void *)lcx_ca_tc_kernel<D, BF16, WARPS, WG>, smem));
    lcx_ca_tc_kernel<D, BF16, WARPS, WG><<<grid, 32 * WARPS, smem, s->stream>>>(a);
    return lcx_cuda_status(cudaGetLastError(), WG ? "attention wgmma kernel launch"
                                                  : "attention tensor-core kernel launch");
}

template <int D, int BF16>
lcx_status tc_go_w(int warps, int wg, const lcx_ca_args &a, size_t smem, unsigned grid, lcx_cuda_state *s)
{
    if constexpr (D == 64 || D == 128)
        if (wg)
            return tc_go<D, BF16, 8, 1>(a, smem, grid, s);
    return warps == 8 ? tc_go<D, BF16, 8, 0>(a, smem, grid, s) : tc_go<D, BF16, 4, 0>(a, smem, grid, s);
}

} // namespace

bool tc_available(int d, int bf16)
{
    switch (d * 2 + (bf16 ? 1 : 0)) {
    case 64 * 2 + 1:
        return tc_built<64, 1>();
    case 64 * 2:
        return tc_built<64, 0>();
    case 96 * 2 + 1:
        return tc_built<96, 1>();
    case 96 * 2:
        return tc_built<96, 0>();
    case 128 * 2 + 1:
        return tc_built<128, 1>();
    case 128 * 2:
        return tc_built<128, 0>();
    default:
        return false;
    }
}

lcx_status tc_launch(const lcx_ca_args &a, int bf16, int warps, int wg, size_t smem, unsigned grid, lcx_cuda_state *s)
{
    switch (a.D * 2 + (bf16 ? 1 : 0)) {
    case 64 * 2 + 1:
        return tc_go_w<64, 1>(warps, wg, a, smem, grid, s);
    case 64 * 2:
        return tc_go_w<64, 0>(warps, wg, a, smem, grid, s);
    case 96 * 2 + 1:
        return tc_go_w<96, 1>(warps, wg, a, smem, grid, s);
    case 96 * 2:
        return tc_go_w<96, 0>(warps, wg, a, smem, grid, s);
    case 128 * 2 + 1:
        return tc_go_w<128, 1>(warps, wg, a, smem, grid, s);
    default:
        return tc_go_w<128, 0>(warps, wg, a, smem, grid, s);
    }
}

} // namespace lcx_ca
