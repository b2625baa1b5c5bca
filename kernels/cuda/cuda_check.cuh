/* Shared by the CUDA sources: the backend state and the error check that
 * turns every failed CUDA call into LCX_E_DEVICE with CUDA's own text. */
#ifndef LCX_CUDA_CHECK_CUH
#define LCX_CUDA_CHECK_CUH

#include <cuda_runtime.h>

#include "../../lib/internal/lcx_cuda.h"

struct lcx_cuda_state {
    int device;
    cudaStream_t stream;
    int owns_stream;
    /* pinned staging for small host-to-device uploads (cudaMemcpyAsync from
     * pageable memory may read it after the call returns on some systems);
     * `staged` is recorded after each upload and waited on before reuse */
    void *staging;
    size_t staging_bytes;
    cudaEvent_t staged;
    /* device scratch (stream-ordered allocation on `stream`), grown on
     * demand and kept: per-call temporaries of the ops (LoRA's u = s x A^T,
     * uploaded index lists) */
    void *scratch;
    size_t scratch_bytes;
};

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

/* Make `dev` current for the scope of a call and restore the caller's
 * current device afterwards, so the library never changes it. */
struct lcx_device_scope {
    int prev;
    cudaError_t err;
    explicit lcx_device_scope(int dev) : prev(-1)
    {
        err = cudaGetDevice(&prev);
        if (err == cudaSuccess && prev != dev)
            err = cudaSetDevice(dev);
        else if (err != cudaSuccess)
            prev = -1;
    }
    ~lcx_device_scope()
    {
        int cur;
        if (prev >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev)
            cudaSetDevice(prev);
    }
};

/* Index of the first of n device-resident values outside [lo, hi] (-1 if
 * none) and that value, found by a kernel on the state's stream which the
 * call then waits for: used to refuse bad device-side indices before any
 * kernel that writes is queued. */
lcx_status lcx_cuda_first_outside(lcx_cuda_state *s, const int64_t *v, int64_t n, int64_t lo, int64_t hi,
                                  int64_t *first, int64_t *value);

/* At least `bytes` of the state's device scratch, for work queued on its
 * stream (contents are not kept between calls). */
lcx_status lcx_cuda_scratch(lcx_cuda_state *s, size_t bytes, void **out);

/* The pinned staging buffer, at least `bytes` (and never less than the
 * 16 KiB that rope.cu's tables take from it), once the previous upload from
 * it has been read; fill it, then queue the copy with lcx_cuda_upload. */
lcx_status lcx_cuda_staging(lcx_cuda_state *s, size_t bytes, void **out);

/* Queue the copy of the first `bytes` of the staging buffer to `dev` on the
 * state's stream and record `staged` after it. */
lcx_status lcx_cuda_upload(lcx_cuda_state *s, void *dev, size_t bytes);

#define LCX_CUDA_TRY(call)                                                    \
    do {                                                                      \
        lcx_status lcx_st_ = lcx_cuda_status((call), #call);                  \
        if (lcx_st_ != LCX_OK)                                                \
            return lcx_st_;                                                   \
    } while (0)

#endif
