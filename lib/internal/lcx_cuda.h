/* Private: the CUDA backend's host interface (the .cu files in kernels/cuda), usable
 * from C and C++. Present only in builds with LCX_HAVE_CUDA. Every call
 * checks every CUDA result and maps failures to LCX_E_DEVICE with the CUDA
 * error text in lcx_last_error(). */
#ifndef LCX_CUDA_H
#define LCX_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lcx_cuda_state lcx_cuda_state;

lcx_status lcx_fail(lcx_status status, const char *fmt, ...);

/* Select `device`, use `stream` (NULL: create one). */
lcx_status lcx_cuda_open(int device, void *stream, lcx_cuda_state **out);
void lcx_cuda_close(lcx_cuda_state *s);
lcx_status lcx_cuda_sync(lcx_cuda_state *s);

/* dst = convert(src) over an nd-dim strided index space (nd <= 4, innermost
 * stride 1 on both), queued on the state's stream. */
lcx_status lcx_cuda_convert(lcx_cuda_state *s, const void *src, lcx_dtype sdt, void *dst,
                            lcx_dtype ddt, int nd, const int64_t *shape, const int64_t *sstride,
                            const int64_t *dstride);

/* Device memory for tests and the bench (synchronous copies). */
lcx_status lcx_cuda_alloc(lcx_cuda_state *s, size_t bytes, void **out);
void lcx_cuda_free(lcx_cuda_state *s, void *p);
lcx_status lcx_cuda_copy(lcx_cuda_state *s, void *dst, const void *src, size_t bytes, int to_device);

/* Name of the CUDA kernel serving op `name`, or NULL. */
const char *lcx_cuda_kernel_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
