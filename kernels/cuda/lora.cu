/* CUDA LoRA linear layers (lcx_lora_linear, lcx_lora_batched, lcx_lora_merge)
 * on device memory, with the CPU engine's arithmetic (lib/lora.c):
 *
 *   y[t][o] = [y_old +] (sum_k x[t][k] W[o][k] + sum_r u[t][r] B[o][r]) + bias[o],
 *   u[t][r] = s * sum_k x[t][k] A[r][k]
 *
 * every sum in f32 and y rounded once (fp_bits.h's round to nearest even).
 *
 * Kernels (256 threads each):
 *  - lcx_lora_mma_kernel: x W^T for x and W of one 16-bit dtype on tensor
 *    cores. Block tile BM tokens x BN outputs (128 x 128, three stages, for
 *    many tokens, two stages where an SM has under 124 KiB of shared
 *    memory; 64 x 64, four stages, for up to 64; dynamic shared memory, 60
 *    and 40 KiB: two blocks per SM), reduction step
 *    BK = 32. Tiles of x and W go to shared memory as stored (rows padded to
 *    40 halves: 16-byte aligned, conflict-free for ldmatrix) by cp.async
 *    16-byte copies where rows allow (inner stride 1, row stride and base
 *    16-byte aligned), element by element otherwise, into a multi-stage
 *    ring. 8 warps as 2 x 4, each a (BM/2) x (BN/4) tile of
 *    mma.sync.m16n8k16 (f32 accumulation; 16-bit products are exact in
 *    f32), fragments read with ldmatrix.x4. Epilogue: the low-rank term u B^T
 *    is added to the f32 accumulators with f32 FMAs (u and B staged in
 *    shared memory 32 ranks at a time), then bias and y_old; one rounding.
 *    Before sm_80 the same tiles are multiplied with f32 FMAs instead.
 *  - lcx_lora_simt_kernel: an f32 SIMT tiled GEMM for every other dtype
 *    combination (and W NULL): tiles BM x BN (64 x 64, or 128 x 16 for
 *    u = s x A^T of rank <= 16), 16 reduction steps per stage through
 *    registers into shared memory, each thread a (BM/16) x (BN/16) tile.
 *    Its reduction runs over [x | u] against [W | B], K + R steps, like the
 *    CPU engine, so the low-rank term lands in the same accumulator. It also
 *    forms u (rows of x gathered by index for lcx_lora_batched; the
 *    reduction split over blockIdx.z when there are few tiles and many
 *    features, the slices summed in order by lcx_lora_usum_kernel), and runs
 *    lists of problems in one launch (one tile per block).
 *  - lcx_lora_gemv_kernel: decode sizes (at most 8 tokens, x and W of one
 *    16-bit dtype, 16-byte W rows): x W^T is memory-bound there, so W is
 *    streamed once by 16-byte loads from blocks of 4 outputs (many blocks,
 *    every SM busy) instead of 64 x 64 tiles, which would give a 4096-output
 *    layer 64 blocks; same epilogue (u B^T in rank order, bias, y_old).
 *  - lcx_lora_merge_kernel: W += s B A elementwise, f32 FMA over the rank.
 *
 * lcx_lora_batched: the host groups tokens by adapter (lib/lora.c); the
 * index list, one problem per adapter for u and one for the delta, and the
 * tile lists are uploaded once through the pinned staging buffer. One launch
 * forms u for every adapter (each tile one adapter's tokens x ranks), one
 * launch adds every delta (each tile one adapter's tokens x outputs, its own
 * rank); tokens with adapter -1 are in no list and their rows are not
 * touched. u lives in the state's device scratch, so repeated calls
 * allocate nothing.
 *
 * Sums run in an order fixed by the shape: results do not depend on the run.
 */
#include <stdint.h>
#include <string.h>

#include "cuda_check.cuh"
#include "elem.cuh"
#include "mma.cuh"
#include "../common/fp_bits.h"

#define LCX_LORA_THREADS 256

/* mma.sync bf16/f16 m16n8k16, ldmatrix, cp.async (mma.cuh) */
#define LCX_LORA_SM80 LCX_CUDA_SM80

namespace {

/* A strided matrix view (a vector: rs 0), dtype 0 f32, 1 f16, 2 bf16;
 * p NULL: absent. */
struct lcx_lv {
    char *p;
    int64_t rs, cs;
    int32_t dt;
};

/* One GEMM: y = [y_old +] alpha (x W^T + u B^T) + bias over M logical rows
 * and N outputs, K features of x, R ranks of u. Logical row m is row
 * xmap[m] of x and ymap[m] of y (maps NULL: identity), row m of u. */
struct lcx_lprob {
    lcx_lv x, w, b, bias, y;
    const float *u; /* f32 [M][ldu] */
    int64_t ldu;
    /* the wgmma kernel only: a.p set, u = s x A^T is formed in the block
     * (R <= 16, A of x's dtype with 16-byte rows) instead of read from u */
    lcx_lv a;
    float s;
    const int32_t *xmap, *ymap;
    int64_t M, N, K, R;
    float alpha;
    int32_t accumulate;
};

struct lcx_lsimt_args {
    lcx_lprob one;            /* the problem when probs is NULL */
    const lcx_lprob *probs;   /* device array: problems of a grouped launch */
    const int4 *tiles;        /* device array: (problem, m0, n0, -) of block blockIdx.x */
    int64_t kchunk;           /* reduction columns per blockIdx.z (split: R = 0 and the
                               * slices go to y + z yz unscaled, summed by usum) */
    int64_t yz;               /* elements between slices of y */
};

__device__ __forceinline__ float lcx_ld(const char *p, int32_t dt, int64_t off)
{
    return lcx_load_elem(p, dt, (size_t)off);
}

/* y[m][o] = [y_old +] alpha acc + bias, rounded once (the CPU epilogue's
 * order of operations, no contraction) */
__device__ __forceinline__ void lcx_lora_put(const lcx_lprob &P, char *ybase, int64_t m, int64_t o, float acc,
                                             float alpha)
{
    float v = __fmul_rn(alpha, acc);
    if (P.bias.p)
        v = __fadd_rn(v, lcx_ld(P.bias.p, P.bias.dt, o * P.bias.cs));
    const int64_t r = P.ymap ? (int64_t)P.ymap[m] : m;
    const int64_t off = r * P.y.rs + o * P.y.cs;
    if (P.accumulate)
        v = __fadd_rn(lcx_ld(ybase, P.y.dt, off), v);
    lcx_store_elem(ybase, P.y.dt, (size_t)off, v);
}

/* ---- SIMT f32 tiled GEMM ---- */

template <int BM, int BN>
__device__ __forceinline__ void lcx_simt_tile(const lcx_lprob &P, int64_t m0, int64_t n0, int64_t kz0, int64_t K,
                                              float alpha, char *ybase, float (&xs)[16][BM + 1],
                                              float (&ws)[16][BN + 1])
{
    constexpr int TM = BM / 16, TN = BN / 16, LX = BM / 16, LW = BN / 16;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t Kt = K + P.R, nk = (Kt + 15) / 16;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++)
            acc[i][j] = 0.0f;
    float rx[LX], rw[LW];
    /* stage kt of [x | u] and [W | B] into registers: element e = tid + 256 i
     * is row e / 16, reduction step e % 16 (consecutive threads along k) */
    auto fetch = [&](int64_t kt) {
#pragma unroll
        for (int i = 0; i < LX; i++) {
            const int e = tid + LCX_LORA_THREADS * i, row = e >> 4;
            const int64_t vk = kt * 16 + (e & 15), m = m0 + row;
            float v = 0.0f;
            if (m < P.M) {
                if (vk < K) {
                    const int64_t xr = P.xmap ? (int64_t)P.xmap[m] : m;
                    v = lcx_ld(P.x.p, P.x.dt, xr * P.x.rs + (kz0 + vk) * P.x.cs);
                } else if (vk < Kt) {
                    v = P.u[m * P.ldu + (vk - K)];
                }
            }
            rx[i] = v;
        }
#pragma unroll
        for (int i = 0; i < LW; i++) {
            const int e = tid + LCX_LORA_THREADS * i, row = e >> 4;
            const int64_t vk = kt * 16 + (e & 15), o = n0 + row;
            float v = 0.0f;
            if (o < P.N) {
                if (vk < K)
                    v = lcx_ld(P.w.p, P.w.dt, o * P.w.rs + (kz0 + vk) * P.w.cs);
                else if (vk < Kt)
                    v = lcx_ld(P.b.p, P.b.dt, o * P.b.rs + (vk - K) * P.b.cs);
            }
            rw[i] = v;
        }
    };
    if (nk > 0)
        fetch(0);
    for (int64_t kt = 0; kt < nk; kt++) {
#pragma unroll
        for (int i = 0; i < LX; i++) {
            const int e = tid + LCX_LORA_THREADS * i;
            xs[e & 15][e >> 4] = rx[i];
        }
#pragma unroll
        for (int i = 0; i < LW; i++) {
            const int e = tid + LCX_LORA_THREADS * i;
            ws[e & 15][e >> 4] = rw[i];
        }
        __syncthreads();
        if (kt + 1 < nk)
            fetch(kt + 1); /* the next stage's loads overlap this stage's FMAs */
#pragma unroll
        for (int kk = 0; kk < 16; kk++) {
            float av[TM], bv[TN];
#pragma unroll
            for (int i = 0; i < TM; i++)
                av[i] = xs[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < TN; j++)
                bv[j] = ws[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++)
                    acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int64_t m = m0 + ty + 16 * i, o = n0 + tx + 16 * j;
            if (m < P.M && o < P.N)
                lcx_lora_put(P, ybase, m, o, acc[i][j], alpha);
        }
}

template <int BM, int BN>
__global__ void __launch_bounds__(LCX_LORA_THREADS) lcx_lora_simt_kernel(const __grid_constant__ lcx_lsimt_args a)
{
    static_assert(BM % 16 == 0 && BN % 16 == 0 && BM >= 16 && BN >= 16, "tile shape");
    __shared__ float xs[16][BM + 1];
    __shared__ float ws[16][BN + 1];
    const int4 t = a.probs ? a.tiles[blockIdx.x] : make_int4(0, (int)blockIdx.x, (int)blockIdx.y, 0);
    /* the problem is read where it is (global or parameter memory), field
     * by field, not copied into registers */
    const lcx_lprob &P = a.probs ? a.probs[t.x] : a.one;
    const int64_t m0 = a.probs ? (int64_t)t.y : (int64_t)t.y * BM;
    int64_t n0 = a.probs ? (int64_t)t.z : (int64_t)t.z * BN;
    const int64_t kz0 = (int64_t)blockIdx.z * a.kchunk;
    const int64_t krem = P.K - kz0, K = krem < a.kchunk ? krem : a.kchunk;
    const float alpha = gridDim.z > 1 ? 1.0f : P.alpha;
    char *ybase = P.y.p + (size_t)((int64_t)blockIdx.z * a.yz) * (P.y.dt == 0 ? 4 : 2);
    for (;;) {
        lcx_simt_tile<BM, BN>(P, m0, n0, kz0, K > 0 ? K : 0, alpha, ybase, xs, ws);
        if (a.probs)
            break;
        n0 += (int64_t)gridDim.y * BN;
        if (n0 >= P.N)
            break;
    }
}

/* u = alpha * (sum of the ks slices in order) into slice ks, over the tiles
 * of the split GEMM that wrote the slices (y f32, inner stride 1) */
template <int BM, int BN>
__global__ void __launch_bounds__(LCX_LORA_THREADS)
    lcx_lora_usum_kernel(const __grid_constant__ lcx_lsimt_args a, int32_t ks)
{
    const int4 t = a.probs ? a.tiles[blockIdx.x] : make_int4(0, (int)blockIdx.x, (int)blockIdx.y, 0);
    const lcx_lprob &P = a.probs ? a.probs[t.x] : a.one;
    const int64_t m0 = a.probs ? (int64_t)t.y : (int64_t)t.y * BM;
    int64_t n0 = a.probs ? (int64_t)t.z : (int64_t)t.z * BN;
    float *y = reinterpret_cast<float *>(P.y.p);
    for (;;) {
        for (int e = threadIdx.x; e < BM * BN; e += LCX_LORA_THREADS) {
            const int64_t m = m0 + e / BN, o = n0 + e % BN;
            if (m >= P.M || o >= P.N)
                continue;
            const int64_t off = m * P.y.rs + o;
            float s = 0.0f;
            for (int32_t z = 0; z < ks; z++)
                s = __fadd_rn(s, y[z * a.yz + off]);
            y[ks * a.yz + off] = __fmul_rn(P.alpha, s);
        }
        if (a.probs)
            break;
        n0 += (int64_t)gridDim.y * BN;
        if (n0 >= P.N)
            break;
    }
}

/* ---- tile copies of the tensor-core GEMMs ---- */

/* the 16-bit values row[(k + j) cs], j = 0 .. 7, as one 16-byte shared
 * store at dst; zeros for k + j >= K, or everywhere when !ok (a row past
 * the problem) */
__device__ __forceinline__ void lcx_chunk8(void *dst, const uint16_t *row, int64_t k, int64_t K, int64_t cs, bool ok)
{
    uint32_t h[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const uint32_t lo = ok && k + 2 * j < K ? row[(k + 2 * j) * cs] : 0u;
        const uint32_t hi = ok && k + 2 * j + 1 < K ? row[(k + 2 * j + 1) * cs] : 0u;
        h[j] = lo | hi << 16;
    }
    *reinterpret_cast<uint4 *>(dst) = make_uint4(h[0], h[1], h[2], h[3]);
}

/* ---- tile output of the tensor-core GEMMs ---- */

/* y rows m0 .. m0 + ROWS - 1 (at most), outputs n0 .. n0 + BN - 1 from the
 * f32 tile ct ([ROWS][LDC], staged in shared memory by the calling block):
 * lcx_lora_put's arithmetic (alpha 1) per output. Where y has x's 16-bit
 * dtype and 16-byte rows, 8 outputs per thread and step are read (y_old)
 * and written by 16 bytes, consecutive threads on consecutive outputs;
 * otherwise element by element, still along rows. */
template <int ROWS, int BN, int LDC, int BF16>
__device__ __forceinline__ void lcx_tile_out(const lcx_lprob &P, const float *ct, int64_t m0, int64_t n0)
{
    constexpr int BM = ROWS;
    const int tid = threadIdx.x;
    const int64_t rows = P.M - m0 < BM ? P.M - m0 : BM, cols = P.N - n0 < BN ? P.N - n0 : BN;
    constexpr int DT = BF16 ? LCX_BF16 : LCX_F16;
    if (P.y.dt == DT && P.y.cs == 1 && P.y.rs % 8 == 0 && (uintptr_t)P.y.p % 16 == 0) {
        /* y of x's dtype with 16-byte rows: 8 outputs per thread and
         * step, y_old and y by 16 bytes; lcx_lora_put's arithmetic
         * (alpha is 1 here) */
#pragma unroll 1
        for (int e = tid; e < BM * BN / 8; e += LCX_LORA_THREADS) {
            const int row = e / (BN / 8), c8 = e % (BN / 8) * 8;
            if (row >= rows || c8 >= cols)
                continue;
            const float *const cp = ct + row * LDC + c8;
            const float4 v0 = *reinterpret_cast<const float4 *>(cp);
            const float4 v1 = *reinterpret_cast<const float4 *>(cp + 4);
            float v[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
            const int64_t m = m0 + row, o0 = n0 + c8;
            if (c8 + 8 > cols) { /* the last outputs of the layer */
#pragma unroll
                for (int j = 0; j < 8; j++)
                    if (j < cols - c8)
                        lcx_lora_put(P, P.y.p, m, o0 + j, v[j], 1.0f);
                continue;
            }
            uint16_t *const yp = reinterpret_cast<uint16_t *>(P.y.p) + m * P.y.rs + o0;
            uint4 old = make_uint4(0u, 0u, 0u, 0u);
            if (P.accumulate)
                old = *reinterpret_cast<const uint4 *>(yp);
            const uint32_t ow[4] = {old.x, old.y, old.z, old.w};
            uint32_t hw[4];
#pragma unroll
            for (int q = 0; q < 4; q++) {
                uint32_t h2 = 0;
#pragma unroll
                for (int t = 0; t < 2; t++) {
                    const int j = 2 * q + t;
                    float x = v[j];
                    if (P.bias.p)
                        x = __fadd_rn(x, lcx_ld(P.bias.p, P.bias.dt, (o0 + j) * P.bias.cs));
                    if (P.accumulate)
                        x = __fadd_rn(lcx_from16<DT>((uint16_t)(ow[q] >> (16 * t))), x);
                    h2 |= (uint32_t)lcx_to16<DT>(x) << (16 * t);
                }
                hw[q] = h2;
            }
            *reinterpret_cast<uint4 *>(yp) = make_uint4(hw[0], hw[1], hw[2], hw[3]);
        }
    } else {
#pragma unroll 4
        for (int e = tid; e < BM * BN; e += LCX_LORA_THREADS) {
            const int row = e / BN, col = e % BN;
            if (row < rows && col < cols)
                lcx_lora_put(P, P.y.p, m0 + row, n0 + col, ct[row * LDC + col], 1.0f);
        }
    }
}

/* ---- the low-rank term of the tensor-core epilogues ---- */

/* ranks q0 .. q0 + rc - 1 of u for rows m0 .. m0 + BM - 1 into us[r][row]
 * ([RC][BM + 1] f32; zeros past M and rc) */
template <int BM, int RC>
__device__ __forceinline__ void lcx_stage_u(const lcx_lprob &P, float *us, int64_t m0, int64_t q0, int rc)
{
    for (int e = threadIdx.x; e < BM * RC; e += LCX_LORA_THREADS) {
        const int row = e / RC, r = e % RC;
        const int64_t m = m0 + row;
        us[r * (BM + 1) + row] = m < P.M && r < rc ? P.u[m * P.ldu + q0 + r] : 0.0f;
    }
}

/* the same ranks of B for outputs n0 .. n0 + BN - 1 into bs[r][col]
 * ([RC][BN + 1] f32, widened) */
template <int BN, int RC>
__device__ __forceinline__ void lcx_stage_b(const lcx_lprob &P, float *bs, int64_t n0, int64_t q0, int rc)
{
    for (int e = threadIdx.x; e < BN * RC; e += LCX_LORA_THREADS) {
        const int col = e / RC, r = e % RC;
        const int64_t o = n0 + col;
        bs[r * (BN + 1) + col] = o < P.N && r < rc ? lcx_ld(P.b.p, P.b.dt, o * P.b.rs + (q0 + r) * P.b.cs) : 0.0f;
    }
}

/* ---- tensor-core GEMM (16-bit x and W of one dtype) ---- */

#if !LCX_LORA_SM80
template <int BF16> __device__ __forceinline__ float lcx_h2f(uint16_t h)
{
    return lcx_bits_f32(BF16 ? lcx_bf16_to_f32_bits(h) : lcx_f16_to_f32_bits(h));
}
#endif

#define LCX_MMA_BK 32
#define LCX_MMA_LDS (LCX_MMA_BK + 8) /* halves per shared row: 80 bytes */
#define LCX_MMA_RC 32                /* ranks per epilogue chunk */

template <int BM, int BN, int STAGES>
struct lcx_mma_cfg {
    static constexpr int WM = BM / 2, WN = BN / 4; /* 8 warps as 2 x 4 */
    static constexpr int MF = WM / 16, NF = WN / 8;
    static constexpr int PIPE = STAGES * (BM + BN) * LCX_MMA_LDS * 2;
    static constexpr int EPI = LCX_MMA_RC * (BM + 1 + BN + 1) * 4;
    /* the f32 tile staged for the stores: whole where it fits the larger of
     * the two above, else in two halves of rows */
    static constexpr int LDC = BN + 8, BIG = PIPE > EPI ? PIPE : EPI;
    static constexpr int EP = BM * LDC * 4 <= BIG ? 1 : 2;
    static constexpr int SMEM = BIG > BM / EP * LDC * 4 ? BIG : BM / EP * LDC * 4;
    static_assert(MF >= 1 && NF >= 2 && NF % 2 == 0 && WM % 16 == 0, "warp tile");
    static_assert(EP == 1 || WM == BM / 2, "a pass of the staged tile is the rows of one warp row");
    static_assert(SMEM <= 64 * 1024, "dynamic shared memory (sm_75 allows 64 KiB per block, sm_80+ more)");
};

/* vec bit 0 (x) and bit 1 (W): that operand's rows may be copied by 16-byte
 * cp.async (inner stride 1, row stride and base 16-byte aligned) */
template <int BM, int BN, int STAGES, int BF16>
__global__ void __launch_bounds__(LCX_LORA_THREADS) lcx_lora_mma_kernel(const lcx_lprob P, int32_t vec)
{
    using C = lcx_mma_cfg<BM, BN, STAGES>;
    constexpr int BK = LCX_MMA_BK, LDS = LCX_MMA_LDS, RC = LCX_MMA_RC, MF = C::MF, NF = C::NF;
    constexpr int CPR = BK / 8; /* 16-byte chunks per tile row */
    extern __shared__ uint4 lcx_lora_smem[]; /* C::SMEM bytes */
    unsigned char *const smem = reinterpret_cast<unsigned char *>(lcx_lora_smem);
    uint16_t *const sp = reinterpret_cast<uint16_t *>(smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp & 1, wn = warp >> 1;
    const int g = lane >> 2, tq = lane & 3;
    const int64_t m0 = (int64_t)blockIdx.x * BM;
    const uint16_t *const xg = reinterpret_cast<const uint16_t *>(P.x.p);
    const uint16_t *const wg = reinterpret_cast<const uint16_t *>(P.w.p);
    const int64_t nk = (P.K + BK - 1) / BK;

    for (int64_t n0 = (int64_t)blockIdx.y * BN; n0 < P.N; n0 += (int64_t)gridDim.y * BN) {
        float acc[MF][NF][4];
#pragma unroll
        for (int i = 0; i < MF; i++)
#pragma unroll
            for (int j = 0; j < NF; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[i][j][e] = 0.0f;

        /* reduction tile kt of x (rows m0..) and W (rows n0..) into stage st */
        auto load = [&](int st, int64_t kt) {
            uint16_t *const sa = sp + st * (BM + BN) * LDS;
            const int64_t k0 = kt * BK;
            for (int c = tid; c < (BM + BN) * CPR; c += LCX_LORA_THREADS) {
                const bool isw = c >= BM * CPR;
                const int cc = isw ? c - BM * CPR : c;
                const int row = cc / CPR, kc = (cc % CPR) * 8;
                const int64_t gr = (isw ? n0 : m0) + row, lim = isw ? P.N : P.M;
                const int64_t rs = isw ? P.w.rs : P.x.rs, cs = isw ? P.w.cs : P.x.cs;
                const uint16_t *const src = isw ? wg : xg;
                uint16_t *const dst = sa + (isw ? BM * LDS : 0) + row * LDS + kc;
                const int64_t k = k0 + kc;
                if (((vec >> (isw ? 1 : 0)) & 1) && gr < lim && k + 8 <= P.K)
                    lcx_cp_async16(dst, src + gr * rs + k);
                else
                    lcx_chunk8(dst, src + gr * rs, k, P.K, cs, gr < lim);
            }
        };

        /* the same copies where the whole tile is inside x and W and both
         * are 16-byte rows (most tiles): each thread keeps its column chunk
         * and steps its rows by a pass (a pointer step per copy, none of
         * load's selects and bounds) */
        constexpr int RPP = LCX_LORA_THREADS / CPR; /* rows per pass */
        static_assert(BM % RPP == 0 && BN % RPP == 0, "copy passes");
        const bool inner = vec == 3 && m0 + BM <= P.M && n0 + BN <= P.N;
        const int crow = tid / CPR, ccol = tid % CPR * 8;
        const uint16_t *const xrow = xg + (inner ? (m0 + crow) * P.x.rs + ccol : 0);
        const uint16_t *const wrow = wg + (inner ? (n0 + crow) * P.w.rs + ccol : 0);
        const int64_t xpass = RPP * P.x.rs, wpass = RPP * P.w.rs;
        auto load_inner = [&](int st, int64_t kt) {
            uint16_t *const d = sp + st * (BM + BN) * LDS + crow * LDS + ccol;
            const int64_t k0 = kt * BK;
#pragma unroll
            for (int i = 0; i < BM / RPP; i++)
                lcx_cp_async16(d + i * RPP * LDS, xrow + i * xpass + k0);
#pragma unroll
            for (int i = 0; i < BN / RPP; i++)
                lcx_cp_async16(d + (BM + i * RPP) * LDS, wrow + i * wpass + k0);
        };
        auto fetch = [&](int st, int64_t kt) {
            if (inner && (kt + 1) * BK <= P.K)
                load_inner(st, kt);
            else
                load(st, kt);
        };

        /* this lane's ldmatrix rows in the stage (the rest of each address
         * is a constant offset) */
        const int aoff = (wm * C::WM + (lane & 15)) * LDS + (lane >> 4) * 8;
        const int boff = BM * LDS + (wn * C::WN + ((lane >> 4) << 3) + (lane & 7)) * LDS + ((lane >> 3) & 1) * 8;
        auto compute = [&](int st) {
            const uint16_t *const sa = sp + st * (BM + BN) * LDS;
#if LCX_LORA_SM80
            const uint16_t *const qa = sa + aoff, *const qb = sa + boff;
#else
            const uint16_t *const sb = sa + BM * LDS;
#endif
#pragma unroll
            for (int kk = 0; kk < BK; kk += 16) {
#if LCX_LORA_SM80
                uint32_t af[MF][4], bfr[NF][2];
#pragma unroll
                for (int mi = 0; mi < MF; mi++)
                    lcx_ldsm_x4(af[mi], qa + mi * 16 * LDS + kk);
#pragma unroll
                for (int nj = 0; nj < NF / 2; nj++) {
                    uint32_t r[4];
                    lcx_ldsm_x4(r, qb + nj * 16 * LDS + kk);
                    bfr[2 * nj][0] = r[0];
                    bfr[2 * nj][1] = r[1];
                    bfr[2 * nj + 1][0] = r[2];
                    bfr[2 * nj + 1][1] = r[3];
                }
#pragma unroll
                for (int mi = 0; mi < MF; mi++)
#pragma unroll
                    for (int ni = 0; ni < NF; ni++)
                        lcx_mma16816<BF16>(acc[mi][ni], af[mi], bfr[ni]);
#else
                /* the accumulator layout of the mma path, filled with FMAs */
#pragma unroll
                for (int mi = 0; mi < MF; mi++)
#pragma unroll
                    for (int ni = 0; ni < NF; ni++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const uint16_t *ar = sa + (wm * C::WM + mi * 16 + g + (e >> 1) * 8) * LDS + kk;
                            const uint16_t *br = sb + (wn * C::WN + ni * 8 + 2 * tq + (e & 1)) * LDS + kk;
                            float s = acc[mi][ni][e];
                            for (int k = 0; k < 16; k++)
                                s = fmaf(lcx_h2f<BF16>(ar[k]), lcx_h2f<BF16>(br[k]), s);
                            acc[mi][ni][e] = s;
                        }
#endif
            }
        };

        /* STAGES-deep ring: one cp.async group per reduction tile (empty
         * groups past the end keep the count uniform) */
#pragma unroll
        for (int st = 0; st < STAGES - 1; st++) {
            if (st < nk)
                fetch(st, st);
            lcx_cp_async_commit();
        }
        /* stages of tile kt and of the tile fetched meanwhile (kt + STAGES - 1) */
        int sc = 0, sf = STAGES - 1;
        for (int64_t kt = 0; kt < nk; kt++) {
            lcx_cp_async_wait<STAGES - 2>(); /* tile kt has landed (this thread's part) */
            __syncthreads();                 /* ... everyone's; stage (kt - 1) % STAGES is free */
            if (kt + STAGES - 1 < nk)
                fetch(sf, kt + STAGES - 1);
            lcx_cp_async_commit();
            compute(sc);
            sc = sc + 1 == STAGES ? 0 : sc + 1;
            sf = sf + 1 == STAGES ? 0 : sf + 1;
        }
        lcx_cp_async_wait<0>();
        __syncthreads(); /* the ring is free: the epilogue reuses it */

        /* low-rank term in f32: acc += u[m][r] B[o][r], RC ranks at a time */
        if (P.R > 0) {
            float *const us = reinterpret_cast<float *>(smem); /* [RC][BM + 1] */
            float *const bs = us + RC * (BM + 1);              /* [RC][BN + 1] */
            for (int64_t r0 = 0; r0 < P.R; r0 += RC) {
                const int rc = P.R - r0 < RC ? (int)(P.R - r0) : RC;
                lcx_stage_u<BM, RC>(P, us, m0, r0, rc);
                lcx_stage_b<BN, RC>(P, bs, n0, r0, rc);
                __syncthreads();
                for (int r = 0; r < rc; r++) {
                    float ur[MF][2], br[NF][2];
#pragma unroll
                    for (int mi = 0; mi < MF; mi++)
#pragma unroll
                        for (int h = 0; h < 2; h++)
                            ur[mi][h] = us[r * (BM + 1) + wm * C::WM + mi * 16 + g + 8 * h];
#pragma unroll
                    for (int ni = 0; ni < NF; ni++)
#pragma unroll
                        for (int h = 0; h < 2; h++)
                            br[ni][h] = bs[r * (BN + 1) + wn * C::WN + ni * 8 + 2 * tq + h];
#pragma unroll
                    for (int mi = 0; mi < MF; mi++)
#pragma unroll
                        for (int ni = 0; ni < NF; ni++)
#pragma unroll
                            for (int e = 0; e < 4; e++)
                                acc[mi][ni][e] = fmaf(ur[mi][e >> 1], br[ni][e & 1], acc[mi][ni][e]);
                }
                __syncthreads();
            }
        }

        /* accumulator (mi, ni, e) is row g + 8 (e / 2), column 2 tq + e % 2 of
         * the warp's 16 x 8 tile (mi, ni): staged in shared memory, in one
         * pass or, where the whole tile does not fit the block's buffer, one
         * per row half of warps (wm), then stored along rows */
        float *const ct = reinterpret_cast<float *>(smem);
#pragma unroll 1
        for (int pass = 0; pass < C::EP; pass++) {
            if (C::EP == 1 || wm == pass) {
                const int rb = wm * C::WM - pass * (BM / C::EP) + g;
#pragma unroll
                for (int mi = 0; mi < MF; mi++)
#pragma unroll
                    for (int ni = 0; ni < NF; ni++)
#pragma unroll
                        for (int h = 0; h < 2; h++) {
                            float *const cp = ct + (rb + mi * 16 + 8 * h) * C::LDC + wn * C::WN + ni * 8 + 2 * tq;
                            *reinterpret_cast<float2 *>(cp) = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
                        }
            }
            __syncthreads();
            lcx_tile_out<BM / C::EP, BN, C::LDC, BF16>(P, ct, m0 + pass * (BM / C::EP), n0);
            __syncthreads(); /* shared memory is reused by the next pass or column tile */
        }
    }
}

/* ---- sm_90a: warpgroup-MMA GEMM (16-bit x and W of one dtype, 16-byte rows) ----
 *
 * Block tile 128 tokens x 256 outputs, two warpgroups of 64 tokens each,
 * reduction step 64 (one 128-byte swizzled row per tile row, mma.cuh),
 * four stages of 48 KiB (50 with A's rows, below) in a ring (one block per
 * SM). Tiles are copied by
 * 16-byte cp.async (the element-wise copy only for a reduction tail shorter
 * than 8 values; rows past the problem are zeros); per stage each
 * warpgroup issues 4 wgmma m64n256k16 and keeps one stage's group in
 * flight while the next is issued. Schedule of iteration kt:
 *   wait for tile kt's copies, fence.proxy.async, barrier: tile kt is
 *   visible to the tensor cores and every warpgroup has waited for the
 *   wgmma of tile kt - 2 (end of iteration kt - 1);
 *   copy tile kt + 2 into the stage of tile kt - 2;
 *   issue tile kt's wgmma, commit, wait until only that group is pending
 *   (tile kt - 1's is done).
 * Epilogue: u B^T added to the accumulators with f32 FMAs from shared
 * memory (as lcx_lora_mma_kernel), the tile staged in shared memory, then
 * bias and y_old and one rounding per output, stored row by row.
 *
 * Rank <= 16 with A of x's dtype and 16-byte rows (P.a set): A's rows are
 * a third operand of every stage (16 rows after W's) and a wgmma
 * m64n16k16 per step forms x A^T beside x W^T, so u = s x A^T (f32 sums,
 * one f32 multiply, as the CPU) costs 1/16 more tensor work and no pass
 * over x of its own. Rows of A past R are not copied: they only feed
 * columns of u that are never read. */
#define LCX_WG_BM 128
#define LCX_WG_BN 256
#define LCX_WG_BK 64
#define LCX_WG_STAGES 4
#define LCX_WG_RA 16                                                       /* rows of A per stage */
#define LCX_WG_STAGE ((LCX_WG_BM + LCX_WG_BN + LCX_WG_RA) * LCX_WG_BK * 2) /* bytes */
#define LCX_WG_SMEM (LCX_WG_STAGES * LCX_WG_STAGE + 1024)       /* + alignment to 1024 bytes */
#define LCX_WG_LDC (LCX_WG_BN + 8)                                 /* f32 per row of the staged tile */
static_assert(LCX_MMA_RC * (LCX_WG_BM + 1 + LCX_WG_BN + 1) * 4 <= LCX_WG_STAGES * LCX_WG_STAGE &&
                  LCX_WG_BM * LCX_WG_LDC * 4 <= LCX_WG_STAGES * LCX_WG_STAGE,
              "epilogue");

template <int BF16, int FA>
__global__ void __launch_bounds__(LCX_LORA_THREADS, 1) lcx_lora_wgmma_kernel(const lcx_lprob P)
{
#if LCX_CUDA_SM90A
    constexpr int BM = LCX_WG_BM, BN = LCX_WG_BN, BK = LCX_WG_BK, S = LCX_WG_STAGES, SB = LCX_WG_STAGE;
    constexpr int RC = LCX_MMA_RC;
    extern __shared__ uint4 lcx_lora_smem[]; /* LCX_WG_SMEM bytes */
    unsigned char *const raw = reinterpret_cast<unsigned char *>(lcx_lora_smem);
    const uint32_t sraw = (uint32_t)__cvta_generic_to_shared(raw);
    const uint32_t pad = (1024u - (sraw & 1023u)) & 1023u;
    unsigned char *const ring = raw + pad; /* stage st: x rows at st SB, W's at + BM 128, A's at + (BM + BN) 128 */
    const uint32_t sring = sraw + pad;
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, wq = (tid >> 5) & 3;
    const int g = lane >> 2, tq = lane & 3;
    const int64_t m0 = (int64_t)blockIdx.x * BM;
    const uint16_t *const xg = reinterpret_cast<const uint16_t *>(P.x.p);
    const uint16_t *const wgp = reinterpret_cast<const uint16_t *>(P.w.p);
    const int64_t nk = (P.K + BK - 1) / BK;
    constexpr bool fa = FA != 0; /* u formed here (P.a); a template argument: no branch among the wgmma */
    const uint16_t *const ag = reinterpret_cast<const uint16_t *>(P.a.p);
    /* copies: this thread's chunk c of rows r0 + 32 i; its swizzled place in
     * a row is the same for every i (r % 8 = r0 % 8) */
    const int cc = tid & 7, r0 = tid >> 3;
    const int dst0 = r0 * 128 + ((cc ^ (r0 & 7)) << 4);

    for (int64_t n0 = (int64_t)blockIdx.y * BN; n0 < P.N; n0 += (int64_t)gridDim.y * BN) {
        float acc[128], accu[8];
#pragma unroll
        for (int i = 0; i < 128; i++)
            acc[i] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++)
            accu[i] = 0.0f;

        const bool inner = m0 + BM <= P.M && n0 + BN <= P.N;
        const uint16_t *const xrow = xg + (inner ? (m0 + r0) * P.x.rs + cc * 8 : 0);
        const uint16_t *const wrow = wgp + (inner ? (n0 + r0) * P.w.rs + cc * 8 : 0);
        const int64_t xpass = 32 * P.x.rs, wpass = 32 * P.w.rs;
        /* reduction tile kt into stage st */
        auto fetch = [&](int st, int64_t kt) {
            unsigned char *const d = ring + st * SB + dst0;
            const int64_t k0 = kt * BK;
            if (fa && r0 < P.R) { /* threads 0-127 hold rows 0-15 of A: the rows below R */
                unsigned char *const da = d + (BM + BN) * 128;
                const uint16_t *const src = ag + r0 * P.a.rs;
                const int64_t k = k0 + cc * 8;
                if (k + 8 <= P.K)
                    lcx_cp_async16(da, src + k);
                else
                    lcx_chunk8(da, src, k, P.K, 1, true);
            }
            if (inner && k0 + BK <= P.K) {
#pragma unroll
                for (int i = 0; i < BM / 32; i++)
                    lcx_cp_async16(d + i * 4096, xrow + i * xpass + k0);
#pragma unroll
                for (int i = 0; i < BN / 32; i++)
                    lcx_cp_async16(d + BM * 128 + i * 4096, wrow + i * wpass + k0);
                return;
            }
            const int64_t k = k0 + cc * 8;
#pragma unroll 1
            for (int i = 0; i < (BM + BN) / 32; i++) {
                const bool isw = i >= BM / 32;
                const int row = r0 + 32 * (isw ? i - BM / 32 : i);
                const int64_t gr = (isw ? n0 : m0) + row, lim = isw ? P.N : P.M;
                const uint16_t *const src = (isw ? wgp + gr * P.w.rs : xg + gr * P.x.rs);
                unsigned char *const dst = d + i * 4096;
                if (gr < lim && k + 8 <= P.K)
                    lcx_cp_async16(dst, src + k);
                else
                    lcx_chunk8(dst, src, k, P.K, 1, gr < lim);
            }
        };

#pragma unroll
        for (int st = 0; st < S - 2; st++) {
            if (st < nk)
                fetch(st, st);
            lcx_cp_async_commit();
        }
        const uint32_t sa = sring + wg * 64 * 128, sb = sring + BM * 128, su = sring + (BM + BN) * 128;
        auto pin = [&] {
            lcx_wg_pin(acc);
            if constexpr (fa)
                lcx_wg_pin(accu);
        };
        int sc = 0, sf = S - 2;
        for (int64_t kt = 0; kt < nk; kt++) {
            lcx_cp_async_wait<S - 3>(); /* tile kt has landed (this thread's copies) */
            lcx_fence_proxy_async();
            __syncthreads(); /* ... everyone's; tile kt - 2's wgmma are done */
            if (kt + S - 2 < nk)
                fetch(sf, kt + S - 2);
            lcx_cp_async_commit();
            lcx_wg_arrive();
            pin();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                const uint64_t dx = lcx_wg_desc(sa + sc * SB + kk * 32);
                lcx_wgmma_n256<BF16>(acc, dx, lcx_wg_desc(sb + sc * SB + kk * 32));
                if constexpr (fa)
                    lcx_wgmma_n16<BF16>(accu, dx, lcx_wg_desc(su + sc * SB + kk * 32));
            }
            lcx_wg_commit();
            pin();
            lcx_wg_wait<1>();
            sc = sc + 1 == S ? 0 : sc + 1;
            sf = sf + 1 == S ? 0 : sf + 1;
        }
        lcx_wg_wait<0>();
        pin();
        lcx_cp_async_wait<0>();
        __syncthreads(); /* the ring is free: the epilogue reuses it */

        /* acc[4 j + 2 h + e] is row wg 64 + 16 wq + g + 8 h, column 8 j + 2 tq + e */
        const int rowb = wg * 64 + wq * 16 + g;
        if (P.R > 0) {
            float *const us = reinterpret_cast<float *>(ring); /* [RC][BM + 1] */
            float *const bs = us + RC * (BM + 1);              /* [RC][BN + 1] */
            for (int64_t q0 = 0; q0 < P.R; q0 += RC) {
                const int rc = P.R - q0 < RC ? (int)(P.R - q0) : RC;
                if constexpr (fa) {
                    /* accu[4 j + 2 h + e]: row rowb + 8 h, rank 8 j + 2 tq + e (R <= RA) */
#pragma unroll
                    for (int i = 0; i < 8; i++)
                        us[(8 * (i >> 2) + 2 * tq + (i & 1)) * (BM + 1) + rowb + 8 * ((i >> 1) & 1)] =
                            __fmul_rn(P.s, accu[i]);
                } else {
                    lcx_stage_u<BM, RC>(P, us, m0, q0, rc);
                }
                lcx_stage_b<BN, RC>(P, bs, n0, q0, rc);
                __syncthreads();
                for (int r = 0; r < rc; r++) {
                    const float u0 = us[r * (BM + 1) + rowb], u1 = us[r * (BM + 1) + rowb + 8];
                    const float *const br = bs + r * (BN + 1) + 2 * tq;
#pragma unroll
                    for (int j = 0; j < 32; j++) {
                        const float b0 = br[8 * j], b1 = br[8 * j + 1];
                        acc[4 * j] = fmaf(u0, b0, acc[4 * j]);
                        acc[4 * j + 1] = fmaf(u0, b1, acc[4 * j + 1]);
                        acc[4 * j + 2] = fmaf(u1, b0, acc[4 * j + 2]);
                        acc[4 * j + 3] = fmaf(u1, b1, acc[4 * j + 3]);
                    }
                }
                __syncthreads();
            }
        }
        /* the tile through shared memory ([BM][LCX_WG_LDC] f32), then out
         * row by row: consecutive threads store consecutive outputs, and
         * the per-element epilogue is one loop, not 128 unrolled copies */
        float *const ct = reinterpret_cast<float *>(ring);
#pragma unroll
        for (int j = 0; j < 32; j++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float *const cp = ct + (rowb + 8 * h) * LCX_WG_LDC + 8 * j + 2 * tq;
                *reinterpret_cast<float2 *>(cp) = make_float2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
            }
        __syncthreads();
        lcx_tile_out<BM, BN, LCX_WG_LDC, BF16>(P, ct, m0, n0);
        __syncthreads(); /* shared memory is reused by the next column tile */
    }
#else
    (void)P; /* launched only where lcx_cuda_wgmma_probe found sm_90a code */
#endif
}

/* 1 where the code the device runs was built for sm_90a (the wgmma kernel above is real) */
__global__ void lcx_wgmma_probe_kernel(int *out)
{
    if (threadIdx.x == 0)
        *out = LCX_CUDA_SM90A;
}

/* ---- decode-sized GEMV (at most 8 tokens, 16-bit x and W of one dtype) ---- */

#define LCX_GEMV_ROWS 4  /* outputs per block */
#define LCX_GEMV_WARPS 8 /* the block's warps split the reduction */

/* the two 16-bit values of a packed pair, widened */
template <int BF16> __device__ __forceinline__ void lcx_widen2(uint32_t w, float &lo, float &hi)
{
    if constexpr (BF16) {
        lo = __uint_as_float(w << 16);
        hi = __uint_as_float(w & 0xffff0000u);
    } else {
        lo = lcx_half_to_f32<0>((uint16_t)(w & 0xffffu));
        hi = lcx_half_to_f32<0>((uint16_t)(w >> 16));
    }
}

/* acc[t][r] += sum of 8 products of x chunk t and W chunk r */
template <int TT, int BF16>
__device__ __forceinline__ void lcx_gemv_chunk(float (&acc)[TT][LCX_GEMV_ROWS], const uint4 (&xv)[TT],
                                               const uint4 (&wv)[LCX_GEMV_ROWS])
{
#pragma unroll
    for (int q = 0; q < 4; q++) {
        float wl[LCX_GEMV_ROWS], wh[LCX_GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < LCX_GEMV_ROWS; r++) {
            const uint32_t w = q == 0 ? wv[r].x : q == 1 ? wv[r].y : q == 2 ? wv[r].z : wv[r].w;
            lcx_widen2<BF16>(w, wl[r], wh[r]);
        }
#pragma unroll
        for (int t = 0; t < TT; t++) {
            const uint32_t x = q == 0 ? xv[t].x : q == 1 ? xv[t].y : q == 2 ? xv[t].z : xv[t].w;
            float xl, xh;
            lcx_widen2<BF16>(x, xl, xh);
#pragma unroll
            for (int r = 0; r < LCX_GEMV_ROWS; r++)
                acc[t][r] = fmaf(xh, wh[r], fmaf(xl, wl[r], acc[t][r]));
        }
    }
}

/* y = [y_old +] x W^T + u B^T + bias for M <= TT tokens: a memory-bound
 * product (each weight used by at most 8 tokens), so W is streamed once
 * with 16-byte loads by many small blocks instead of through the tiles of
 * the tensor-core kernel (which would leave most of the GPU idle). Block:
 * LCX_GEMV_ROWS outputs; chunk c (8 features) of the reduction goes to
 * thread c mod 256, the lanes' sums are reduced by a fixed butterfly and
 * the warps' in warp order, so the result depends on the shape only. W rows
 * are 16-byte aligned (lcx_rows16); x rows are read by 16 bytes when
 * xvec, else element by element. */
template <int TT, int BF16>
__global__ void __launch_bounds__(32 * LCX_GEMV_WARPS, 2) lcx_lora_gemv_kernel(const lcx_lprob P, int32_t xvec)
{
    constexpr int ROWS = LCX_GEMV_ROWS, NTH = 32 * LCX_GEMV_WARPS;
    __shared__ float part[LCX_GEMV_WARPS][TT][ROWS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const uint16_t *const xg = reinterpret_cast<const uint16_t *>(P.x.p);
    const uint16_t *const wg = reinterpret_cast<const uint16_t *>(P.w.p);
    const int64_t nch = P.K / 8, k8 = nch * 8;
    for (int64_t o0 = (int64_t)blockIdx.x * ROWS; o0 < P.N; o0 += (int64_t)gridDim.x * ROWS) {
        float acc[TT][ROWS];
#pragma unroll
        for (int t = 0; t < TT; t++)
#pragma unroll
            for (int r = 0; r < ROWS; r++)
                acc[t][r] = 0.0f;
        const uint16_t *wr[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; r++) /* rows past N read row N - 1 (discarded) */
            wr[r] = wg + (o0 + r < P.N ? o0 + r : P.N - 1) * P.w.rs;
        /* two chunks in flight per thread, one for 8 tokens (whose x
         * chunks alone take 32 registers): two blocks per SM, no spills */
#pragma unroll(TT >= 8 ? 1 : 2)
        for (int64_t c = tid; c < nch; c += NTH) {
            uint4 wv[ROWS], xv[TT];
#pragma unroll
            for (int r = 0; r < ROWS; r++)
                wv[r] = *reinterpret_cast<const uint4 *>(wr[r] + c * 8);
#pragma unroll
            for (int t = 0; t < TT; t++) {
                const int64_t tr = t < P.M ? t : P.M - 1; /* rows past M: discarded */
                if (xvec) {
                    xv[t] = *reinterpret_cast<const uint4 *>(xg + tr * P.x.rs + c * 8);
                } else {
                    uint32_t h[4];
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        h[j] = (uint32_t)xg[tr * P.x.rs + (c * 8 + 2 * j) * P.x.cs] |
                               (uint32_t)xg[tr * P.x.rs + (c * 8 + 2 * j + 1) * P.x.cs] << 16;
                    xv[t] = make_uint4(h[0], h[1], h[2], h[3]);
                }
            }
            lcx_gemv_chunk<TT, BF16>(acc, xv, wv);
        }
        if (tid < P.K - k8) { /* the last K % 8 features, one per thread */
            const int64_t k = k8 + tid;
#pragma unroll
            for (int t = 0; t < TT; t++) {
                const int64_t tr = t < P.M ? t : P.M - 1;
                const float xf = lcx_half_to_f32<BF16>(xg[tr * P.x.rs + k * P.x.cs]);
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                    acc[t][r] = fmaf(xf, lcx_half_to_f32<BF16>(wr[r][k]), acc[t][r]);
            }
        }
#pragma unroll
        for (int t = 0; t < TT; t++)
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                float v = acc[t][r];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1)
                    v += __shfl_xor_sync(0xffffffffu, v, o);
                if (lane == 0)
                    part[warp][t][r] = v;
            }
        __syncthreads();
        if (tid < TT * ROWS) {
            const int t = tid / ROWS, r = tid % ROWS;
            const int64_t o = o0 + r;
            if (t < P.M && o < P.N) {
                float v = part[0][t][r];
#pragma unroll
                for (int w = 1; w < LCX_GEMV_WARPS; w++)
                    v += part[w][t][r];
                for (int64_t j = 0; j < P.R; j++) /* the low-rank term, rank order */
                    v = fmaf(P.u[t * P.ldu + j], lcx_ld(P.b.p, P.b.dt, o * P.b.rs + j * P.b.cs), v);
                lcx_lora_put(P, P.y.p, t, o, v, 1.0f);
            }
        }
        __syncthreads(); /* part is reused by the next outputs */
    }
}

/* ---- merge ---- */

/* W[o][i] = W[o][i] + s sum_r B[o][r] A[r][i] (FMA in rank order from 0) */
__global__ void __launch_bounds__(LCX_LORA_THREADS)
    lcx_lora_merge_kernel(lcx_lv w, lcx_lv a, lcx_lv b, int64_t out, int64_t in, int64_t rank, float scale)
{
    for (int64_t o = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; o < out; o += (int64_t)gridDim.y * blockDim.y)
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < in;
             i += (int64_t)gridDim.x * blockDim.x) {
            float acc = 0.0f;
            for (int64_t r = 0; r < rank; r++)
                acc = fmaf(lcx_ld(b.p, b.dt, o * b.rs + r * b.cs), lcx_ld(a.p, a.dt, r * a.rs + i * a.cs), acc);
            const int64_t off = o * w.rs + i * w.cs;
            lcx_store_elem(w.p, w.dt, (size_t)off, __fadd_rn(lcx_ld(w.p, w.dt, off), __fmul_rn(scale, acc)));
        }
}

/* ---- host side ---- */

lcx_lv lcx_lv_of(const lcx_tensor *t)
{
    lcx_lv v;
    memset(&v, 0, sizeof v);
    if (!t)
        return v;
    v.p = static_cast<char *>(t->data);
    v.dt = (int32_t)t->dtype;
    if (t->ndim == 2) {
        v.rs = t->stride[0];
        v.cs = t->stride[1];
    } else {
        v.rs = 0;
        v.cs = t->stride[0];
    }
    return v;
}

lcx_lv lcx_lv_dense_f32(float *p, int64_t ld)
{
    lcx_lv v;
    v.p = reinterpret_cast<char *>(p);
    v.rs = ld;
    v.cs = 1;
    v.dt = (int32_t)LCX_F32;
    return v;
}

int64_t lcx_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t lcx_align(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* n = a * b * c (non-negative) in size_t, 0 on overflow */
int lcx_mulsz(int64_t a, int64_t b, int64_t c, size_t *n)
{
    size_t t;
    return !__builtin_mul_overflow((size_t)a, (size_t)b, &t) && !__builtin_mul_overflow(t, (size_t)c, n);
}

/* Split of the u = s x A^T reduction (K features) over blockIdx.z when
 * `tiles` blocks would leave the GPU idle: slices of >= 512 features (a
 * multiple of 16), at most 32, at most about 256 blocks in all. From the
 * shape alone, so results do not depend on the device. */
void lcx_usplit(int64_t tiles, int64_t K, int32_t *ks, int64_t *kchunk)
{
    int64_t n = 1;
    if (tiles < 128 && K >= 1024) {
        n = 256 / (tiles > 0 ? tiles : 1);
        n = n < K / 512 ? n : K / 512;
        n = n < 32 ? n : 32;
        n = n > 1 ? n : 1;
    }
    if (n == 1) {
        *ks = 1;
        *kchunk = INT64_MAX;
        return;
    }
    const int64_t ch = lcx_cdiv(lcx_cdiv(K, n), 16) * 16;
    *ks = (int32_t)lcx_cdiv(K, ch);
    *kchunk = ch;
}

lcx_status lcx_launched(const char *what)
{
    return lcx_cuda_status(cudaGetLastError(), what);
}

template <int BM, int BN>
lcx_status lcx_simt_launch(lcx_cuda_state *s, const lcx_lsimt_args &a, int64_t gx, int64_t gy, int32_t gz,
                           int32_t ks)
{
    if (gx <= 0 || gy <= 0)
        return LCX_OK;
    if (gx > INT32_MAX)
        return lcx_fail(LCX_E_UNSUPPORTED, "lora: %lld row tiles exceed the CUDA grid", (long long)gx);
    const dim3 grid((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535), (unsigned)gz);
    lcx_lora_simt_kernel<BM, BN><<<grid, LCX_LORA_THREADS, 0, s->stream>>>(a);
    lcx_status st = lcx_launched("lora gemm kernel launch");
    if (st != LCX_OK || ks <= 1)
        return st;
    const dim3 grid2((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535), 1u);
    lcx_lora_usum_kernel<BM, BN><<<grid2, LCX_LORA_THREADS, 0, s->stream>>>(a, ks);
    return lcx_launched("lora split-sum kernel launch");
}

template <int BM, int BN, int STAGES, int BF16>
lcx_status lcx_mma_go(lcx_cuda_state *s, const lcx_lprob &P, int vec, dim3 grid)
{
    constexpr size_t smem = (size_t)lcx_mma_cfg<BM, BN, STAGES>::SMEM;
    LCX_CUDA_TRY(lcx_cuda_smem_optin(s, (const void *)lcx_lora_mma_kernel<BM, BN, STAGES, BF16>, smem));
    lcx_lora_mma_kernel<BM, BN, STAGES, BF16><<<grid, LCX_LORA_THREADS, smem, s->stream>>>(P, vec);
    return lcx_launched("lora mma kernel launch");
}

template <int BM, int BN, int STAGES>
lcx_status lcx_mma_launch(lcx_cuda_state *s, const lcx_lprob &P, int vec, int bf16)
{
    const int64_t gx = lcx_cdiv(P.M, BM), gy = lcx_cdiv(P.N, BN);
    if (gx > INT32_MAX)
        return lcx_fail(LCX_E_UNSUPPORTED, "lora: %lld row tiles exceed the CUDA grid", (long long)gx);
    const dim3 grid((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535));
    return bf16 ? lcx_mma_go<BM, BN, STAGES, 1>(s, P, vec, grid) : lcx_mma_go<BM, BN, STAGES, 0>(s, P, vec, grid);
}

template <int BF16, int FA> lcx_status lcx_wgmma_go(lcx_cuda_state *s, const lcx_lprob &P)
{
    const int64_t gx = lcx_cdiv(P.M, LCX_WG_BM), gy = lcx_cdiv(P.N, LCX_WG_BN);
    if (gx > INT32_MAX)
        return lcx_fail(LCX_E_UNSUPPORTED, "lora: %lld row tiles exceed the CUDA grid", (long long)gx);
    const dim3 grid((unsigned)gx, (unsigned)(gy < 65535 ? gy : 65535));
    LCX_CUDA_TRY(lcx_cuda_smem_optin(s, (const void *)lcx_lora_wgmma_kernel<BF16, FA>, LCX_WG_SMEM));
    lcx_lora_wgmma_kernel<BF16, FA><<<grid, LCX_LORA_THREADS, LCX_WG_SMEM, s->stream>>>(P);
    return lcx_launched("lora wgmma kernel launch");
}

template <int TT> lcx_status lcx_gemv_go(lcx_cuda_state *s, const lcx_lprob &P, int xvec, int bf16, unsigned grid)
{
    if (bf16)
        lcx_lora_gemv_kernel<TT, 1><<<grid, 32 * LCX_GEMV_WARPS, 0, s->stream>>>(P, xvec);
    else
        lcx_lora_gemv_kernel<TT, 0><<<grid, 32 * LCX_GEMV_WARPS, 0, s->stream>>>(P, xvec);
    return lcx_launched("lora gemv kernel launch");
}

/* at most 8 tokens: the GEMV kernel with the smallest token count >= M */
lcx_status lcx_gemv_launch(lcx_cuda_state *s, const lcx_lprob &P, int xvec, int bf16)
{
    const int64_t blocks = lcx_cdiv(P.N, LCX_GEMV_ROWS);
    const unsigned grid = (unsigned)(blocks < 1048576 ? blocks : 1048576); /* grid-stride beyond */
    return P.M <= 1   ? lcx_gemv_go<1>(s, P, xvec, bf16, grid)
           : P.M <= 2 ? lcx_gemv_go<2>(s, P, xvec, bf16, grid)
           : P.M <= 4 ? lcx_gemv_go<4>(s, P, xvec, bf16, grid)
                      : lcx_gemv_go<8>(s, P, xvec, bf16, grid);
}

/* the 16-byte cp.async path: 16-bit rows with inner stride 1, row stride a
 * multiple of 8 elements and a 16-byte aligned base */
int lcx_rows16(const lcx_lv &v, int64_t rows)
{
    return v.cs == 1 && (rows <= 1 || v.rs % 8 == 0) && (uintptr_t)v.p % 16 == 0;
}

} // namespace

extern "C" lcx_status lcx_cuda_lora_linear(lcx_cuda_state *s, const lcx_tensor *x, const lcx_tensor *w,
                                           const lcx_tensor *bias, const lcx_tensor *a, const lcx_tensor *b,
                                           float scale, const lcx_tensor *y, int accumulate)
{
    const int64_t T = x->shape[0], in = x->shape[1], out = y->shape[1], R = a ? a->shape[0] : 0;
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    /* an error left by earlier, unrelated work is reported as such */
    LCX_CUDA_TRY(cudaPeekAtLastError());
    if (T == 0 || out == 0)
        return LCX_OK;
    lcx_lprob mp;
    memset(&mp, 0, sizeof mp);
    mp.x = lcx_lv_of(x);
    mp.w = lcx_lv_of(w);
    mp.bias = lcx_lv_of(bias);
    mp.y = lcx_lv_of(y);
    mp.M = T;
    mp.N = out;
    mp.K = w ? in : 0;
    mp.alpha = 1.0f;
    mp.accumulate = accumulate != 0;
    lcx_status st;
    const int tc = w && x->dtype == w->dtype && x->dtype != LCX_F32; /* tensor cores */
    const int vec = tc ? lcx_rows16(mp.x, T) | (lcx_rows16(mp.w, out) << 1) : 0;
    const int wgmma = tc && s->wgmma && vec == 3 && T > 64;
    if (R > 0) {
        mp.b = lcx_lv_of(b);
        mp.R = R;
    }
    if (wgmma && R > 0 && R <= LCX_WG_RA && a->dtype == x->dtype && lcx_rows16(lcx_lv_of(a), R)) {
        /* u = s x A^T inside the GEMM */
        mp.a = lcx_lv_of(a);
        mp.s = scale;
    } else if (R > 0) {
        /* u = s x A^T, f32 [T][R] in the device scratch (after ks split
         * slices when the reduction is split) */
        const int small = R <= 16;
        const int64_t bm = small ? 128 : 64, bn = small ? 16 : 64;
        int32_t ks;
        int64_t kchunk;
        lcx_usplit(lcx_cdiv(T, bm) * lcx_cdiv(R, bn), in, &ks, &kchunk);
        size_t ubytes;
        if (!lcx_mulsz(T, R, (int64_t)(ks > 1 ? ks + 1 : 1) * 4, &ubytes))
            return lcx_fail(LCX_E_OVERFLOW, "lora_linear: x A^T of %lld x %lld overflows", (long long)T,
                            (long long)R);
        void *mem;
        if ((st = lcx_cuda_scratch(s, ubytes, &mem)) != LCX_OK)
            return st;
        float *const u = static_cast<float *>(mem);
        lcx_lsimt_args ua;
        memset(&ua, 0, sizeof ua);
        ua.one.x = mp.x;
        ua.one.w = lcx_lv_of(a);
        ua.one.y = lcx_lv_dense_f32(u, R);
        ua.one.M = T;
        ua.one.N = R;
        ua.one.K = in;
        ua.one.alpha = scale;
        ua.kchunk = kchunk;
        ua.yz = T * R;
        st = small ? lcx_simt_launch<128, 16>(s, ua, lcx_cdiv(T, 128), lcx_cdiv(R, 16), ks, ks)
                   : lcx_simt_launch<64, 64>(s, ua, lcx_cdiv(T, 64), lcx_cdiv(R, 64), ks, ks);
        if (st != LCX_OK)
            return st;
        mp.u = u + (ks > 1 ? (int64_t)ks * T * R : 0);
        mp.ldu = R;
    }
    if (tc) {
        const int bf16 = x->dtype == LCX_BF16;
        if (T <= 8 && (vec & 2))
            return lcx_gemv_launch(s, mp, vec & 1, bf16);
        if (T <= 64)
            return lcx_mma_launch<64, 64, 4>(s, mp, vec, bf16);
        if (wgmma && mp.a.p)
            return bf16 ? lcx_wgmma_go<1, 1>(s, mp) : lcx_wgmma_go<0, 1>(s, mp);
        if (wgmma)
            return bf16 ? lcx_wgmma_go<1, 0>(s, mp) : lcx_wgmma_go<0, 0>(s, mp);
        /* three stages where two such blocks fit an SM (sm_80, sm_90: 164-228
         * KiB), else two (sm_86/89: 100 KiB would hold one three-stage block) */
        constexpr int S3 = lcx_mma_cfg<128, 128, 3>::SMEM;
        return s->smem_per_sm >= 2 * (S3 + 1024) ? lcx_mma_launch<128, 128, 3>(s, mp, vec, bf16)
                                                 : lcx_mma_launch<128, 128, 2>(s, mp, vec, bf16);
    }
    lcx_lsimt_args ma;
    memset(&ma, 0, sizeof ma);
    ma.one = mp;
    ma.kchunk = INT64_MAX;
    return lcx_simt_launch<64, 64>(s, ma, lcx_cdiv(T, 64), lcx_cdiv(out, 64), 1, 1);
}

/* whether the device runs the sm_90a build of this file (the wgmma kernel):
 * on a non-blocking stream of its own, so that context creation neither
 * waits for work queued on the caller's (or the legacy) stream nor adds to
 * it */
lcx_status lcx_cuda_wgmma_probe(lcx_cuda_state *s, int *yes)
{
    cudaStream_t ps;
    LCX_CUDA_TRY(cudaStreamCreateWithFlags(&ps, cudaStreamNonBlocking));
    int v = 0;
    lcx_wgmma_probe_kernel<<<1, 32, 0, ps>>>(reinterpret_cast<int *>(s->check));
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(&v, s->check, sizeof v, cudaMemcpyDeviceToHost, ps);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(ps);
    const cudaError_t d = cudaStreamDestroy(ps);
    LCX_CUDA_TRY(e != cudaSuccess ? e : d);
    *yes = v == 1;
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_lora_batched(lcx_cuda_state *s, const lcx_tensor *x, const lcx_lora_adapter *ad,
                                            int32_t n_ad, const int32_t *idx, const int32_t *start,
                                            const lcx_tensor *y)
{
    const int64_t in = x->shape[1], out = y->shape[1];
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaPeekAtLastError());
    const int64_t nmap = n_ad > 0 ? start[n_ad] : 0;
    if (nmap == 0 || out == 0)
        return LCX_OK;
    int64_t groups = 0, rmax = 0;
    for (int32_t i = 0; i < n_ad; i++)
        if (start[i + 1] > start[i]) {
            groups++;
            rmax = ad[i].a.shape[0] > rmax ? ad[i].a.shape[0] : rmax;
        }
    if (out > INT32_MAX || rmax > INT32_MAX) /* tile origins are int32 */
        return lcx_fail(LCX_E_UNSUPPORTED, "lora_batched: %lld outputs or rank %lld exceed the CUDA tile lists",
                        (long long)out, (long long)rmax);
    const int small = rmax <= 16;
    const int64_t ubm = small ? 128 : 64, ubn = small ? 16 : 64;
    int64_t tu = 0, td = 0;
    for (int32_t i = 0; i < n_ad; i++) {
        const int64_t n = start[i + 1] - start[i];
        if (n > 0) {
            tu += lcx_cdiv(n, ubm) * lcx_cdiv(ad[i].a.shape[0], ubn);
            td += lcx_cdiv(n, 64) * lcx_cdiv(out, 64);
        }
    }
    if (tu > INT32_MAX || td > INT32_MAX)
        return lcx_fail(LCX_E_UNSUPPORTED, "lora_batched: %lld tiles exceed the CUDA grid",
                        (long long)(tu > td ? tu : td));
    int32_t ks;
    int64_t kchunk;
    lcx_usplit(tu, in, &ks, &kchunk);
    const int64_t yz = nmap * rmax;
    /* the upload: token indices, 2 x groups problems, the two tile lists;
     * then u (and its split slices) */
    static_assert(alignof(lcx_lprob) <= 16 && alignof(int4) <= 16, "staging and scratch offsets are 16-byte aligned");
    const size_t o_pr = lcx_align((size_t)nmap * sizeof(int32_t), 16);
    const size_t o_tu = lcx_align(o_pr + (size_t)(2 * groups) * sizeof(lcx_lprob), alignof(int4));
    const size_t o_td = o_tu + (size_t)tu * sizeof(int4);
    const size_t up = lcx_align(o_td + (size_t)td * sizeof(int4), 256);
    size_t ubytes;
    if (!lcx_mulsz(nmap, rmax, (int64_t)(ks > 1 ? ks + 1 : 1) * 4, &ubytes) || up + ubytes < up)
        return lcx_fail(LCX_E_OVERFLOW, "lora_batched: x A^T of %lld x %lld overflows", (long long)nmap,
                        (long long)rmax);
    lcx_status st;
    void *dmem, *hmem;
    if ((st = lcx_cuda_scratch(s, up + ubytes, &dmem)) != LCX_OK || (st = lcx_cuda_staging(s, up, &hmem)) != LCX_OK)
        return st;
    char *const dev = static_cast<char *>(dmem), *const host = static_cast<char *>(hmem);
    const int32_t *const didx = reinterpret_cast<const int32_t *>(dev);
    float *const u = reinterpret_cast<float *>(dev + up);
    const float *const ufin = u + (ks > 1 ? (int64_t)ks * yz : 0);
    memcpy(host, idx, (size_t)nmap * sizeof(int32_t));
    lcx_lprob *const hp = reinterpret_cast<lcx_lprob *>(host + o_pr);
    int4 *const htu = reinterpret_cast<int4 *>(host + o_tu), *const htd = reinterpret_cast<int4 *>(host + o_td);
    int64_t gi = 0, ju = 0, jd = 0;
    const lcx_lv xv = lcx_lv_of(x), yv = lcx_lv_of(y);
    for (int32_t i = 0; i < n_ad; i++) {
        const int64_t s0 = start[i], n = start[i + 1] - s0, R = ad[i].a.shape[0];
        if (n == 0)
            continue;
        lcx_lprob pu, pd;
        memset(&pu, 0, sizeof pu);
        memset(&pd, 0, sizeof pd);
        /* u rows of this adapter's tokens: s_i x[idx] A_i^T */
        pu.x = xv;
        pu.xmap = didx + s0;
        pu.w = lcx_lv_of(&ad[i].a);
        pu.y = lcx_lv_dense_f32(u + s0 * rmax, rmax);
        pu.M = n;
        pu.N = R;
        pu.K = in;
        pu.alpha = ad[i].scale;
        /* y[idx] += u B_i^T */
        pd.x = xv;
        pd.u = ufin + s0 * rmax;
        pd.ldu = rmax;
        pd.b = lcx_lv_of(&ad[i].b);
        pd.y = yv;
        pd.ymap = didx + s0;
        pd.M = n;
        pd.N = out;
        pd.R = R;
        pd.alpha = 1.0f;
        pd.accumulate = 1;
        memcpy(hp + gi, &pu, sizeof pu);
        memcpy(hp + groups + gi, &pd, sizeof pd);
        for (int64_t nb = 0; nb < R; nb += ubn)
            for (int64_t mb = 0; mb < n; mb += ubm)
                htu[ju++] = make_int4((int)gi, (int)mb, (int)nb, 0);
        for (int64_t nb = 0; nb < out; nb += 64)
            for (int64_t mb = 0; mb < n; mb += 64)
                htd[jd++] = make_int4((int)(groups + gi), (int)mb, (int)nb, 0);
        gi++;
    }
    if ((st = lcx_cuda_upload(s, dev, up)) != LCX_OK)
        return st;
    lcx_lsimt_args ga;
    memset(&ga, 0, sizeof ga);
    ga.probs = reinterpret_cast<const lcx_lprob *>(dev + o_pr);
    ga.tiles = reinterpret_cast<const int4 *>(dev + o_tu);
    ga.kchunk = kchunk;
    ga.yz = yz;
    st = small ? lcx_simt_launch<128, 16>(s, ga, tu, 1, ks, ks) : lcx_simt_launch<64, 64>(s, ga, tu, 1, ks, ks);
    if (st != LCX_OK)
        return st;
    ga.tiles = reinterpret_cast<const int4 *>(dev + o_td);
    ga.kchunk = INT64_MAX;
    ga.yz = 0;
    return lcx_simt_launch<64, 64>(s, ga, td, 1, 1, 1);
}

extern "C" lcx_status lcx_cuda_lora_merge(lcx_cuda_state *s, const lcx_tensor *w, const lcx_tensor *a,
                                          const lcx_tensor *b, float scale)
{
    const int64_t out = w->shape[0], in = w->shape[1], rank = a->shape[0];
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaPeekAtLastError());
    if (out == 0 || in == 0)
        return LCX_OK;
    const dim3 block(32, LCX_LORA_THREADS / 32);
    const int64_t gx = lcx_cdiv(in, 32), gy = lcx_cdiv(out, LCX_LORA_THREADS / 32);
    const dim3 grid((unsigned)(gx < 65535 ? gx : 65535), (unsigned)(gy < 65535 ? gy : 65535));
    lcx_lora_merge_kernel<<<grid, block, 0, s->stream>>>(lcx_lv_of(w), lcx_lv_of(a), lcx_lv_of(b), out, in, rank,
                                                        scale);
    return lcx_launched("lora merge kernel launch");
}
