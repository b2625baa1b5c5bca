/* CUDA backend: device selection, stream ownership, synchronisation and the
 * op -> kernel name list. */
#include <stdlib.h>
#include <string.h>

#include "cuda_check.cuh"

extern "C" lcx_status lcx_cuda_open(int device, void *stream, lcx_cuda_state **out)
{
    int count = 0;
    LCX_CUDA_TRY(cudaGetDeviceCount(&count));
    if (device >= count)
        return lcx_fail(LCX_E_DEVICE, "cuda: device %d requested but %d device(s) present", device,
                        count);
    lcx_device_scope scope(device);
    LCX_CUDA_TRY(scope.err);
    lcx_cuda_state *s = (lcx_cuda_state *)calloc(1, sizeof *s);
    if (!s)
        return lcx_fail(LCX_E_NOMEM, "cuda: out of host memory");
    s->device = device;
    if (stream) {
        s->stream = (cudaStream_t)stream;
    } else {
        /* a blocking stream: it orders after work the caller queued on the
         * legacy default stream (cudaMemcpy, cudaMemset, <<<>>> without a
         * stream), so inputs prepared there are ready when ops read them */
        lcx_status st = lcx_cuda_status(cudaStreamCreate(&s->stream), "cudaStreamCreate");
        if (st != LCX_OK) {
            free(s);
            return st;
        }
        s->owns_stream = 1;
    }
    *out = s;
    return LCX_OK;
}

extern "C" void lcx_cuda_close(lcx_cuda_state *s)
{
    if (!s)
        return;
    {
        lcx_device_scope scope(s->device);
        if (s->scratch)
            cudaFreeAsync(s->scratch, s->stream);
        cudaStreamSynchronize(s->stream);
        if (s->staging) {
            cudaEventDestroy(s->staged);
            cudaFreeHost(s->staging);
        }
        if (s->owns_stream)
            cudaStreamDestroy(s->stream);
    }
    free(s);
}

extern "C" lcx_status lcx_cuda_sync(lcx_cuda_state *s)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_alloc(lcx_cuda_state *s, size_t bytes, void **out)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaMalloc(out, bytes ? bytes : 1));
    return LCX_OK;
}

extern "C" void lcx_cuda_free(lcx_cuda_state *s, void *p)
{
    if (!p)
        return;
    lcx_device_scope scope(s->device);
    cudaFree(p);
}

extern "C" lcx_status lcx_cuda_copy(lcx_cuda_state *s, void *dst, const void *src, size_t bytes,
                                    int to_device)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes,
                                 to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                 s->stream));
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    return LCX_OK;
}

lcx_status lcx_cuda_scratch(lcx_cuda_state *s, size_t bytes, void **out)
{
    if (bytes <= s->scratch_bytes && s->scratch) {
        *out = s->scratch;
        return LCX_OK;
    }
    /* stream-ordered: the old block is released after the work queued on
     * it, the new one is usable by everything queued from here on */
    if (s->scratch) {
        LCX_CUDA_TRY(cudaFreeAsync(s->scratch, s->stream));
        s->scratch = NULL;
        s->scratch_bytes = 0;
    }
    size_t sz = bytes + (bytes >> 2); /* headroom for the next, slightly larger call */
    sz = sz < bytes ? bytes : (sz + ((size_t)1 << 16) - 1) & ~(((size_t)1 << 16) - 1);
    void *p = NULL;
    LCX_CUDA_TRY(cudaMallocAsync(&p, sz, s->stream));
    s->scratch = p;
    s->scratch_bytes = sz;
    *out = p;
    return LCX_OK;
}

lcx_status lcx_cuda_staging(lcx_cuda_state *s, size_t bytes, void **out)
{
    if (!s->staging) {
        LCX_CUDA_TRY(cudaEventCreateWithFlags(&s->staged, cudaEventDisableTiming));
    } else {
        LCX_CUDA_TRY(cudaEventSynchronize(s->staged)); /* the previous upload has been read */
        if (bytes <= s->staging_bytes) {
            *out = s->staging;
            return LCX_OK;
        }
        cudaFreeHost(s->staging);
        s->staging = NULL;
        s->staging_bytes = 0;
    }
    size_t sz = bytes < ((size_t)1 << 14) ? (size_t)1 << 14 : bytes + (bytes >> 2);
    sz = sz < bytes ? bytes : sz;
    void *p = NULL;
    const cudaError_t e = cudaMallocHost(&p, sz);
    if (e != cudaSuccess) {
        /* no buffer: the event goes with it, as lcx_cuda_close expects */
        cudaEventDestroy(s->staged);
        return lcx_cuda_status(e, "cudaMallocHost");
    }
    s->staging = p;
    s->staging_bytes = sz;
    *out = p;
    return LCX_OK;
}

lcx_status lcx_cuda_upload(lcx_cuda_state *s, void *dev, size_t bytes)
{
    LCX_CUDA_TRY(cudaMemcpyAsync(dev, s->staging, bytes, cudaMemcpyHostToDevice, s->stream));
    LCX_CUDA_TRY(cudaEventRecord(s->staged, s->stream));
    return LCX_OK;
}

extern "C" const char *lcx_cuda_kernel_name(const char *op)
{
    static const char *const names[][2] = {
        {"convert_f32_bf16", "lcx_k_convert_f32_bf16__cuda"},
        {"convert_bf16_f32", "lcx_k_convert_bf16_f32__cuda"},
        {"convert_f32_f16", "lcx_k_convert_f32_f16__cuda"},
        {"convert_f16_f32", "lcx_k_convert_f16_f32__cuda"},
        {"merge", "lcx_k_merge__cuda"},
        /* LoRA: tensor-core (16-bit x and W) or f32 SIMT tiled GEMM with the
         * low-rank term in f32 */
        {"gemm_ukr", "lcx_k_lora_gemm__cuda"},
        {"row_lse", "lcx_k_row_lse__cuda"},
        /* attention: one fused SIMT kernel (tiles of 32 keys, online softmax)
         * serves the tile products, max and exp of the CPU's blocked loop */
        {"attn_qk", "lcx_k_attention__cuda"},
        {"attn_pv", "lcx_k_attention__cuda"},
        {"attn_max", "lcx_k_attention__cuda"},
        {"attn_exp", "lcx_k_attention__cuda"},
        {"attn_qk_direct", "lcx_k_attention__cuda"},
        {"attn_pv_direct", "lcx_k_attention__cuda"},
        /* one fused kernel forms the angles and rotates every head of a token */
        {"rope_cossin", "lcx_k_rope__cuda"},
        {"rope_cossin_f32", "lcx_k_rope__cuda"},
        {"rope_rot_neox_f32", "lcx_k_rope__cuda"},
        {"rope_rot_interleaved_f32", "lcx_k_rope__cuda"},
        {"rope_rot_neox_x16", "lcx_k_rope__cuda"},
        {"rope_rot_interleaved_x16", "lcx_k_rope__cuda"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(op, names[i][0]) == 0)
            return names[i][1];
    return NULL;
}

namespace {
/* *first = the smallest i < n with v[i] outside [lo, hi] */
__global__ void lcx_first_outside_kernel(const int64_t *v, int64_t n, int64_t lo, int64_t hi,
                                         unsigned long long *first)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (v[i] < lo || v[i] > hi)
            atomicMin(first, (unsigned long long)i);
}
} // namespace

lcx_status lcx_cuda_first_outside(lcx_cuda_state *s, const int64_t *v, int64_t n, int64_t lo, int64_t hi,
                                  int64_t *first_out, int64_t *value)
{
    *first_out = -1;
    unsigned long long *d_first = NULL, first = ~0ull;
    LCX_CUDA_TRY(cudaMallocAsync((void **)&d_first, sizeof *d_first, s->stream));
    cudaError_t e = cudaMemsetAsync(d_first, 0xff, sizeof *d_first, s->stream);
    const char *what = "cudaMemsetAsync";
    if (e == cudaSuccess) {
        const int threads = 256;
        int64_t blocks = (n + threads - 1) / threads;
        if (blocks > 4096)
            blocks = 4096;
        lcx_first_outside_kernel<<<(unsigned)blocks, threads, 0, s->stream>>>(v, n, lo, hi, d_first);
        e = cudaGetLastError();
        what = "range check kernel launch";
    }
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(&first, d_first, sizeof first, cudaMemcpyDeviceToHost, s->stream);
        what = "cudaMemcpyAsync";
    }
    const cudaError_t ef = cudaFreeAsync(d_first, s->stream);
    if (e == cudaSuccess) {
        e = ef;
        what = "cudaFreeAsync";
    }
    if (e == cudaSuccess) {
        e = cudaStreamSynchronize(s->stream);
        what = "cudaStreamSynchronize";
    }
    if (e != cudaSuccess) {
        cudaStreamSynchronize(s->stream);
        return lcx_cuda_status(e, what);
    }
    if (first >= (unsigned long long)n)
        return LCX_OK;
    LCX_CUDA_TRY(cudaMemcpyAsync(value, v + first, sizeof *value, cudaMemcpyDeviceToHost, s->stream));
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    *first_out = (int64_t)first;
    return LCX_OK;
}
