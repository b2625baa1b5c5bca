/* CUDA weight merge over a strided index space of up to 4 dims: f32 FMA
 * accumulation in input order from 0, one rounding to the output dtype with
 * the bit-exact helpers of kernels/common/fp_bits.h, so every finite result
 * matches the CPU scalar kernel bit for bit. */
#include <stdint.h>

#include "cuda_check.cuh"
#include "elem.cuh"
#include "../common/fp_bits.h"

#define LCX_CUDA_MERGE_MAX 64

namespace {

/* kernel parameter block (about 2.5 KB, under the 4 KB parameter limit) */
struct lcx_merge_args {
    const void *src[LCX_CUDA_MERGE_MAX];
    int64_t sstride[LCX_CUDA_MERGE_MAX][3]; /* outer strides; innermost is 1 */
    float coeff[LCX_CUDA_MERGE_MAX];
    int8_t sdt[LCX_CUDA_MERGE_MAX];
    void *dst;
    int64_t dstride[3];
    int64_t shape[4]; /* outer dims padded with 1, innermost last */
    int32_t n;
    int32_t ddt;
};

/* element i of an input of dtype DT, or of the runtime dtype dt (DT -1) */
template <int DT> __device__ __forceinline__ float lcx_merge_ld(const char *p, int64_t i, int32_t dt)
{
    if constexpr (DT >= 0)
        return lcx_load<DT>(p, i);
    else
        return lcx_load_elem(p, dt, (size_t)i);
}

/* SDT: the dtype of every input (-1: mixed, read per input); DDT: the
 * output's. Each block row starts by placing the inputs' row pointers in
 * shared memory, so an input element costs a pointer read, a load and an
 * FMA, not three 64-bit stride products and a dtype test */
template <int SDT, int DDT>
__global__ void __launch_bounds__(256) lcx_merge_kernel(const lcx_merge_args a, int64_t rows)
{
    __shared__ const char *rowp[LCX_CUDA_MERGE_MAX];
    const int64_t inner = a.shape[3];
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        int64_t c[3], rr = r;
        for (int d = 2; d >= 0; d--) {
            c[d] = rr % a.shape[d];
            rr /= a.shape[d];
        }
        __syncthreads(); /* the previous row's pointers have been read */
        for (int32_t k = (int32_t)threadIdx.x; k < a.n; k += (int32_t)blockDim.x)
            rowp[k] = static_cast<const char *>(a.src[k]) +
                      (c[0] * a.sstride[k][0] + c[1] * a.sstride[k][1] + c[2] * a.sstride[k][2]) *
                          (a.sdt[k] == 0 ? 4 : 2);
        __syncthreads();
        const int64_t dof = c[0] * a.dstride[0] + c[1] * a.dstride[1] + c[2] * a.dstride[2];
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < inner;
             i += (int64_t)gridDim.x * blockDim.x) {
            float acc = 0.0f;
            for (int32_t k = 0; k < a.n; k++)
                acc = __fmaf_rn(a.coeff[k], lcx_merge_ld<SDT>(rowp[k], i, a.sdt[k]), acc);
            lcx_store<DDT>(a.dst, dof + i, acc);
        }
    }
}

template <int SDT>
void lcx_merge_go(int32_t ddt, const lcx_merge_args &a, int64_t rows, dim3 grid, int threads, cudaStream_t st)
{
    if (ddt == 0)
        lcx_merge_kernel<SDT, 0><<<grid, threads, 0, st>>>(a, rows);
    else if (ddt == 1)
        lcx_merge_kernel<SDT, 1><<<grid, threads, 0, st>>>(a, rows);
    else
        lcx_merge_kernel<SDT, 2><<<grid, threads, 0, st>>>(a, rows);
}

} // namespace

extern "C" lcx_status lcx_cuda_merge(lcx_cuda_state *s, int32_t n, const lcx_tensor *inputs,
                                     const float *coeffs, const lcx_tensor *out)
{
    if (n < 1 || n > LCX_CUDA_MERGE_MAX || out->ndim < 1 || out->ndim > 4)
        return lcx_fail(LCX_E_INVALID, "merge_weights: bad arguments for the CUDA kernel");
    lcx_merge_args a;
    const int pad = 4 - out->ndim;
    int64_t rows = 1, numel = 1;
    for (int d = 0; d < 4; d++) {
        const int k = d - pad;
        a.shape[d] = k >= 0 ? out->shape[k] : 1;
        numel *= a.shape[d];
        if (d < 3) {
            rows *= a.shape[d];
            a.dstride[d] = k >= 0 ? out->stride[k] : 0;
            for (int32_t i = 0; i < n; i++)
                a.sstride[i][d] = k >= 0 ? inputs[i].stride[k] : 0;
        }
    }
    if (numel == 0)
        return LCX_OK;
    for (int32_t i = 0; i < n; i++) {
        a.src[i] = inputs[i].data;
        a.sdt[i] = (int8_t)inputs[i].dtype;
        a.coeff[i] = coeffs[i];
    }
    for (int32_t i = n; i < LCX_CUDA_MERGE_MAX; i++) {
        a.src[i] = NULL;
        a.sdt[i] = 0;
        a.coeff[i] = 0.0f;
        a.sstride[i][0] = a.sstride[i][1] = a.sstride[i][2] = 0;
    }
    a.dst = out->data;
    a.n = n;
    a.ddt = (int32_t)out->dtype;
    /* every tensor dense row-major: one row of numel elements */
    bool dense = true;
    for (int32_t i = -1; i < n && dense; i++) {
        const int64_t *st = i < 0 ? a.dstride : a.sstride[i];
        int64_t want = a.shape[3];
        for (int d = 2; d >= 0; d--) {
            dense = dense && (a.shape[d] == 1 || st[d] == want);
            want *= a.shape[d];
        }
    }
    if (dense) {
        a.shape[3] = numel;
        a.shape[0] = a.shape[1] = a.shape[2] = 1;
        rows = 1;
    }
    int sdt = a.sdt[0];
    for (int32_t i = 1; i < n; i++)
        sdt = a.sdt[i] == sdt ? sdt : -1;

    const int threads = 256;
    int64_t bx = (a.shape[3] + threads - 1) / threads;
    if (bx > 4096)
        bx = 4096;
    const int64_t by = rows < 65535 ? rows : 65535;
    const dim3 grid((unsigned)bx, (unsigned)by);
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    /* an error left by earlier, unrelated work is reported as such */
    LCX_CUDA_TRY(cudaPeekAtLastError());
    switch (sdt) {
    case 0:
        lcx_merge_go<0>(a.ddt, a, rows, grid, threads, s->stream);
        break;
    case 1:
        lcx_merge_go<1>(a.ddt, a, rows, grid, threads, s->stream);
        break;
    case 2:
        lcx_merge_go<2>(a.ddt, a, rows, grid, threads, s->stream);
        break;
    default:
        lcx_merge_go<-1>(a.ddt, a, rows, grid, threads, s->stream);
    }
    return lcx_cuda_status(cudaGetLastError(), "merge kernel launch");
}
