/* Position samplers on the GPU: the CPU's Philox4x32-10 streams and draw
 * order (lib/positions.c), so row r of a batch equals the CPU's row r bit
 * for bit. One block per PoSE row (thread 0 draws, every thread writes);
 * one thread per RandPos row (selection sampling is sequential). */
#include <stdint.h>

#include "cuda_check.cuh"
#include "../common/philox.h"

namespace {

constexpr int kRowsPerLaunch = 256; /* doc lengths travel in the kernel arguments */
constexpr int kMaxChunks = 1024;
constexpr int kThreads = 256;

struct lcx_drng {
    uint64_t seed, stream, block;
    uint32_t buf[4];
    int used;
};

__device__ void lcx_drng_init(lcx_drng *r, uint64_t seed, uint64_t stream)
{
    r->seed = seed;
    r->stream = stream;
    r->block = 0;
    r->used = 4;
}

__device__ uint32_t lcx_drng_u32(lcx_drng *r)
{
    if (r->used >= 4) {
        const uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), (uint32_t)r->stream,
                                 (uint32_t)(r->stream >> 32)};
        const uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
        lcx_philox4x32_block(ctr, key, 10, r->buf);
        r->block++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

__device__ uint64_t lcx_drng_u64(lcx_drng *r)
{
    const uint64_t hi = lcx_drng_u32(r);
    return (hi << 32) | lcx_drng_u32(r);
}

/* Lemire's multiply-shift with rejection, as lcx_random_below */
__device__ uint64_t lcx_drng_below(lcx_drng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    uint64_t x = lcx_drng_u64(r);
    uint64_t lo = x * n, hi = __umul64hi(x, n);
    if (lo < n) {
        const uint64_t t = (0 - n) % n;
        while (lo < t) {
            x = lcx_drng_u64(r);
            lo = x * n;
            hi = __umul64hi(x, n);
        }
    }
    return hi;
}

__device__ int64_t lcx_drng_range(lcx_drng *r, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    const uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    return (int64_t)((uint64_t)lo + (span ? lcx_drng_below(r, span) : lcx_drng_u64(r)));
}

struct lcx_pose_kargs {
    uint64_t seed, stream; /* stream of row 0 of this launch */
    int64_t rows, window_len, target_len;
    int32_t n_chunks; /* 0: the two-chunk sampler */
    int64_t *index_out, *pos_out, *n_out; /* at row 0 of this launch */
    int64_t doc_len[kRowsPerLaunch];
};

__global__ void __launch_bounds__(kThreads) lcx_pose_kernel(const lcx_pose_kargs a)
{
    __shared__ int64_t len[kMaxChunks], skip[kMaxChunks], content[kMaxChunks];
    __shared__ int32_t nc;
    const int64_t r = blockIdx.x;
    if (r >= a.rows)
        return;
    const int64_t doc = a.doc_len[r], w = doc < a.window_len ? doc : a.window_len;
    if (threadIdx.x == 0) {
        lcx_drng g;
        lcx_drng_init(&g, a.seed, a.stream + (uint64_t)r);
        if (a.n_chunks == 0) { /* lcx_pose_sample */
            const int64_t rt1 = lcx_drng_range(&g, 1, (w + 1) / 2);
            const int64_t rt2 = lcx_drng_range(&g, w, doc);
            const int64_t sk = lcx_drng_range(&g, 0, a.target_len - w);
            len[0] = rt1;
            len[1] = w - rt1;
            skip[0] = 0;
            skip[1] = sk;
            content[0] = 0;
            content[1] = rt2 - w;
            nc = 2;
        } else { /* lcx_pose_sample_chunks: cut points first (into len), then biases */
            int64_t need = a.n_chunks - 1, left = w - 1, k = 0;
            for (int64_t c = 1; c < w && need > 0; c++, left--)
                if ((int64_t)lcx_drng_below(&g, (uint64_t)left) < need) {
                    len[k++] = c;
                    need--;
                }
            int64_t prev = 0;
            for (int32_t i = 0; i < a.n_chunks; i++) {
                const int64_t end = i < a.n_chunks - 1 ? len[i] : w;
                len[i] = end - prev;
                prev = end;
                skip[i] = i ? lcx_drng_range(&g, skip[i - 1], a.target_len - w) : 0;
                content[i] = i ? lcx_drng_range(&g, content[i - 1], doc - w) : 0;
            }
            nc = a.n_chunks;
        }
        if (a.n_out)
            a.n_out[r] = w;
    }
    __syncthreads();
    int64_t *idx = a.index_out ? a.index_out + r * a.window_len : NULL;
    int64_t *pos = a.pos_out ? a.pos_out + r * a.window_len : NULL;
    int64_t st = 0;
    for (int32_t i = 0; i < nc; i++) {
        for (int64_t j = threadIdx.x; j < len[i]; j += blockDim.x) {
            if (idx)
                idx[st + j] = content[i] + st + j;
            if (pos)
                pos[st + j] = skip[i] + st + j;
        }
        st += len[i];
    }
}

__global__ void lcx_randpos_kernel(uint64_t seed, uint64_t stream, int64_t rows, int64_t n, int64_t target_len,
                                   int64_t *pos_out)
{
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < rows; r += (int64_t)gridDim.x * blockDim.x) {
        lcx_drng g;
        lcx_drng_init(&g, seed, stream + (uint64_t)r);
        int64_t *out = pos_out + r * n;
        int64_t need = n, k = 0;
        for (int64_t p = 0; p < target_len && need > 0; p++)
            if ((int64_t)lcx_drng_below(&g, (uint64_t)(target_len - p)) < need) {
                out[k++] = p;
                need--;
            }
    }
}

} // namespace

extern "C" lcx_status lcx_cuda_pose_batch(lcx_cuda_state *s, const char *op, uint64_t seed, uint64_t stream,
                                          int64_t rows, const int64_t *doc_lens, int64_t window_len,
                                          int64_t target_len, int32_t n_chunks, int64_t *index_out,
                                          int64_t *pos_out, int64_t *n_out)
{
    if (rows < 0 || n_chunks < 0 || n_chunks > kMaxChunks || (!index_out && !pos_out) || !doc_lens)
        return lcx_fail(LCX_E_INVALID, "%s: bad arguments for the CUDA kernel", op);
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaPeekAtLastError());
    for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerLaunch) {
        lcx_pose_kargs a;
        a.seed = seed;
        a.stream = stream + (uint64_t)r0;
        a.rows = rows - r0 < kRowsPerLaunch ? rows - r0 : kRowsPerLaunch;
        a.window_len = window_len;
        a.target_len = target_len;
        a.n_chunks = n_chunks;
        a.index_out = index_out ? index_out + r0 * window_len : NULL;
        a.pos_out = pos_out ? pos_out + r0 * window_len : NULL;
        a.n_out = n_out ? n_out + r0 : NULL;
        for (int64_t i = 0; i < a.rows; i++)
            a.doc_len[i] = doc_lens[r0 + i];
        lcx_pose_kernel<<<(unsigned)a.rows, kThreads, 0, s->stream>>>(a);
        LCX_CUDA_TRY(cudaGetLastError());
    }
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_randpos_batch(lcx_cuda_state *s, const char *op, uint64_t seed, uint64_t stream,
                                             int64_t rows, int64_t n, int64_t target_len, int64_t *pos_out)
{
    if (rows < 0 || n < 0 || target_len < n || !pos_out)
        return lcx_fail(LCX_E_INVALID, "%s: bad arguments for the CUDA kernel", op);
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaPeekAtLastError());
    if (rows == 0 || n == 0)
        return LCX_OK;
    const int threads = 128;
    const int64_t blocks = (rows + threads - 1) / threads;
    lcx_randpos_kernel<<<(unsigned)(blocks < 65535 ? blocks : 65535), threads, 0, s->stream>>>(seed, stream, rows, n,
                                                                                              target_len, pos_out);
    LCX_CUDA_TRY(cudaGetLastError());
    return LCX_OK;
}
