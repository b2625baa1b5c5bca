/* CUDA dtype conversion over a strided index space of up to 4 dims. The
 * bit-exact helpers of kernels/common/fp_bits.h are shared with the CPU, so
 * rounding and NaN payloads match the scalar reference exactly. */
#include <stdint.h>

#include "cuda_check.cuh"
#include "elem.cuh"

namespace {

struct lcx_cvt_dims {
    int64_t shape[4];    /* outer dims padded with 1, innermost last */
    int64_t sstride[4];
    int64_t dstride[4];
};

/* grid-stride over rows (blockIdx.y and beyond) and the inner dimension */
template <lcx_dtype S, lcx_dtype D>
__global__ void lcx_convert_kernel(const void *__restrict__ src, void *__restrict__ dst,
                                   lcx_cvt_dims g, int64_t rows)
{
    const int64_t inner = g.shape[3];
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        int64_t rr = r, so = 0, dof = 0;
        for (int d = 2; d >= 0; d--) {
            const int64_t c = rr % g.shape[d];
            rr /= g.shape[d];
            so += c * g.sstride[d];
            dof += c * g.dstride[d];
        }
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < inner;
             i += (int64_t)gridDim.x * blockDim.x) {
            if (S == D && S != LCX_F32) /* same 16-bit type: copy the bits */
                static_cast<uint16_t *>(dst)[dof + i] = static_cast<const uint16_t *>(src)[so + i];
            else
                lcx_store<D>(dst, dof + i, lcx_load<S>(src, so + i));
        }
    }
}

template <lcx_dtype S>
lcx_status lcx_launch_from(lcx_dtype ddt, const void *src, void *dst, const lcx_cvt_dims &g,
                           int64_t rows, cudaStream_t stream)
{
    const int threads = 256;
    int64_t bx = (g.shape[3] + threads - 1) / threads;
    if (bx > 4096)
        bx = 4096;
    const int64_t by = rows < 65535 ? rows : 65535;
    const dim3 grid((unsigned)bx, (unsigned)by);
    /* an error left by earlier, unrelated work is reported as such, not
     * blamed on this launch */
    LCX_CUDA_TRY(cudaPeekAtLastError());
    switch (ddt) {
    case LCX_F32: lcx_convert_kernel<S, LCX_F32><<<grid, threads, 0, stream>>>(src, dst, g, rows); break;
    case LCX_BF16: lcx_convert_kernel<S, LCX_BF16><<<grid, threads, 0, stream>>>(src, dst, g, rows); break;
    case LCX_F16: lcx_convert_kernel<S, LCX_F16><<<grid, threads, 0, stream>>>(src, dst, g, rows); break;
    default: return lcx_fail(LCX_E_INVALID, "convert: unknown dst dtype %d", (int)ddt);
    }
    return lcx_cuda_status(cudaGetLastError(), "convert kernel launch");
}

} // namespace

extern "C" lcx_status lcx_cuda_convert(lcx_cuda_state *s, const void *src, lcx_dtype sdt,
                                       void *dst, lcx_dtype ddt, int nd, const int64_t *shape,
                                       const int64_t *sstride, const int64_t *dstride)
{
    lcx_cvt_dims g;
    const int pad = 4 - nd;
    int64_t rows = 1;
    for (int d = 0; d < 4; d++) {
        const int k = d - pad;
        g.shape[d] = k >= 0 ? shape[k] : 1;
        g.sstride[d] = k >= 0 ? sstride[k] : 0;
        g.dstride[d] = k >= 0 ? dstride[k] : 0;
        if (d < 3)
            rows *= g.shape[d];
    }
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    switch (sdt) {
    case LCX_F32: return lcx_launch_from<LCX_F32>(ddt, src, dst, g, rows, s->stream);
    case LCX_BF16: return lcx_launch_from<LCX_BF16>(ddt, src, dst, g, rows, s->stream);
    case LCX_F16: return lcx_launch_from<LCX_F16>(ddt, src, dst, g, rows, s->stream);
    default: return lcx_fail(LCX_E_INVALID, "convert: unknown src dtype %d", (int)sdt);
    }
}
