/* Shared by the CUDA sources: the backend state and the error check that
 * turns every failed CUDA call into LCX_E_DEVICE with CUDA's own text. */
#ifndef LCX_CUDA_CHECK_CUH
#define LCX_CUDA_CHECK_CUH

#include <cuda_runtime.h>

#include "../../lib/internal/lcx_cuda.h"

/* Bytes of the RoPE tables (4 sets of up to 512 64-bit values) kept in the
 * state's persistent device block. */
#define LCX_CUDA_TABLE_BYTES (4 * 512 * 8)

/* kernels whose shared-memory opt-in a state remembers (more are set
 * before every launch) */
#define LCX_CUDA_OPTIN_SLOTS 32

/* pinned upload buffers in the staging ring */
#define LCX_CUDA_STAGING_SLOTS 4

struct lcx_cuda_state {
    int device;
    cudaStream_t stream;
    int owns_stream;
    /* cudaDevAttrMemoryPoolsSupported: 0 on some drivers, vGPU and MIG
     * set-ups, where cudaMallocAsync fails and the scratch falls back to
     * cudaMalloc / cudaFree */
    int mempool;
    int smem_per_sm; /* cudaDevAttrMaxSharedMemoryPerMultiprocessor */
    /* the LoRA GEMM runs on warpgroup MMA (lora.cu): the device runs the
     * sm_90a build of the kernels and LONGCTX_CUDA_WGMMA=1 asked for it */
    int wgmma;
    /* pinned staging for small host-to-device uploads (cudaMemcpyAsync from
     * pageable memory may read it after the call returns on some systems):
     * a ring of LCX_CUDA_STAGING_SLOTS buffers, each with an event recorded
     * after its upload and waited on before the slot is refilled, so the
     * host may run that many uploading calls ahead of the device */
    struct {
        void *p;
        size_t bytes;
        cudaEvent_t ev; /* created with the buffer */
        int used;       /* ev has been recorded */
    } stg[LCX_CUDA_STAGING_SLOTS];
    int stg_cur;        /* the slot lcx_cuda_staging handed out */
    int stg_next;       /* the slot the next lcx_cuda_staging takes */
    /* device scratch (stream-ordered allocation on `stream` when the device
     * has memory pools), grown on demand and kept: per-call temporaries of
     * the ops (LoRA's u = s x A^T, uploaded index lists) */
    void *scratch;
    size_t scratch_bytes;
    /* set when the scratch was handed to work captured into a CUDA graph:
     * the graph keeps its address, so a larger block replaces it without
     * freeing it (kept[] is freed with the state) */
    int scratch_captured;
    void **kept;
    int n_kept;
    /* a small device block allocated with the state and kept for its life,
     * so that no call has to allocate for it (not even while the stream is
     * being captured): the range check's result word (`check`) and the RoPE
     * tables (`tables`, LCX_CUDA_TABLE_BYTES) */
    unsigned long long *check;
    void *tables;
    /* kernels given more than the default 48 KiB of dynamic shared memory
     * on this device (cudaFuncSetAttribute), with the size: set once, not
     * before every launch */
    const void *optin_fn[LCX_CUDA_OPTIN_SLOTS];
    int optin_bytes[LCX_CUDA_OPTIN_SLOTS];
    int n_optin;
};

/* Before launching kernel f with `bytes` of dynamic shared memory: the
 * opt-in above 48 KiB (cudaFuncSetAttribute, a driver call). The attribute
 * belongs to the kernel on the device, shared by every state there, so it
 * is only ever raised (under a process-wide lock); a state that has seen it
 * at `bytes` or more for f skips the calls from then on. */
cudaError_t lcx_cuda_smem_optin(lcx_cuda_state *s, const void *f, size_t bytes);

/* A failed call is reported and the thread's last-error slot cleared, so
 * that a later, unrelated call does not see it again (sticky errors stay
 * sticky: the next call fails on its own). */
static inline lcx_status lcx_cuda_status(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return LCX_OK;
    (void)cudaGetLastError();
    return lcx_fail(LCX_E_DEVICE, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                    cudaGetErrorName(e));
}

/* The calling thread's current CUDA context (NULL: none), through the
 * driver's cuCtxGetCurrent looked up once with cudaGetDriverEntryPoint:
 * returns 0 when the driver cannot say. */
int lcx_cuda_current_context(void **ctx);
/* Make `ctx` (from lcx_cuda_current_context, NULL included) the calling
 * thread's current context again if another one is current now. */
void lcx_cuda_restore_context(void *ctx);

/* Make `dev` current for the scope of a call and give the calling thread
 * back the context it had, so the library never changes the thread's
 * current device. Restoring a device with cudaSetDevice is not enough: a
 * thread without a current context reports device 0, and setting device 0
 * "back" would create device 0's primary context (memory and start-up time
 * on a GPU the caller may never use), so the context itself is restored,
 * none included; cudaSetDevice(prev) is the fallback when the driver's
 * entry points cannot be found. */
struct lcx_device_scope {
    int prev;
    int known; /* ctx is the caller's context */
    void *ctx;
    cudaError_t err;
    explicit lcx_device_scope(int dev) : prev(-1), known(0), ctx(NULL)
    {
        known = lcx_cuda_current_context(&ctx);
        err = cudaGetDevice(&prev);
        if (err == cudaSuccess && prev != dev)
            err = cudaSetDevice(dev);
        else if (err != cudaSuccess)
            prev = -1;
    }
    ~lcx_device_scope()
    {
        if (known) {
            lcx_cuda_restore_context(ctx);
            return;
        }
        int cur;
        if (prev >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev)
            cudaSetDevice(prev);
    }
};

/* 1 in *yes if the state's stream is being captured into a CUDA graph
 * (then no call may wait for the stream on the host). */
lcx_status lcx_cuda_capturing(lcx_cuda_state *s, int *yes);

/* *yes = 1 where the device runs the sm_90a build of the kernels (lora.cu;
 * one tiny launch and a synchronisation, at context creation) */
lcx_status lcx_cuda_wgmma_probe(lcx_cuda_state *s, int *yes);

/* Range check of n device-resident values against [lo, hi] by a kernel on
 * the state's stream, so that bad device-side indices are refused before any
 * kernel that writes is queued. Outside stream capture the call waits for
 * the kernel: *first is the index of the first value outside (-1 if none),
 * *value that value, and *guard NULL. While the stream is being captured
 * into a graph no host wait is allowed: *first is -1 and *guard is the
 * device word the kernel leaves the result in (~0ull when every value is in
 * range); the op's writing kernels, queued after it, must read it first and
 * write nothing when it is not ~0ull. */
lcx_status lcx_cuda_first_outside(lcx_cuda_state *s, const int64_t *v, int64_t n, int64_t lo, int64_t hi,
                                  int64_t *first, int64_t *value, const unsigned long long **guard);

/* A writing kernel's first test: the range check before it found a bad
 * value (see lcx_cuda_first_outside) */
__device__ __forceinline__ bool lcx_guard_tripped(const unsigned long long *guard)
{
    return guard && *guard != ~0ull;
}

/* At least `bytes` of the state's device scratch, for work queued on its
 * stream (contents are not kept between calls). While the stream is being
 * captured the scratch cannot grow (LCX_E_UNSUPPORTED: the graph would
 * keep a block the state later frees): the same call made once outside
 * capture sizes it. */
lcx_status lcx_cuda_scratch(lcx_cuda_state *s, size_t bytes, void **out);

/* The next pinned staging buffer of the ring, at least `bytes` (at least
 * 16 KiB), once the upload made from it LCX_CUDA_STAGING_SLOTS uploads ago
 * has been read; fill it, then queue the copy with lcx_cuda_upload. Refused (LCX_E_UNSUPPORTED) while the stream is being
 * captured: a captured copy would read the buffer when the graph runs, long
 * after later calls have refilled it. */
lcx_status lcx_cuda_staging(lcx_cuda_state *s, size_t bytes, void **out);

/* Queue the copy of the first `bytes` of the staging buffer last handed out
 * to `dev` on the state's stream and record its slot's event after it. */
lcx_status lcx_cuda_upload(lcx_cuda_state *s, void *dev, size_t bytes);

#define LCX_CUDA_TRY(call)                                                    \
    do {                                                                      \
        lcx_status lcx_st_ = lcx_cuda_status((call), #call);                  \
        if (lcx_st_ != LCX_OK)                                                \
            return lcx_st_;                                                   \
    } while (0)

#endif
