/* lcx_convert: validation, stride walking and threading around the
 * contiguous-run conversion kernels. */
#include <string.h>

#include "internal/lcx_internal.h"
#include "internal/lcx_fpenv.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

/* Elements per task: large enough to amortise dispatch, small enough to
 * spread a few MB over every core. Tasks depend only on the shape, so the
 * result never depends on the thread count. */
#define LCX_CONVERT_CHUNK 16384
/* f16 <-> bf16 goes through f32 (exact widening, then one rounding) in
 * blocks of this many elements on the stack. */
#define LCX_CONVERT_BOUNCE 1024

typedef struct lcx_convert_job {
    const lcx_ktable *kt;
    const char *src;
    char *dst;
    lcx_dtype sdt, ddt;
    size_t ses, des;          /* element sizes */
    int nd;                   /* collapsed dims, innermost last */
    int64_t shape[LCX_MAX_DIMS];
    int64_t sstride[LCX_MAX_DIMS], dstride[LCX_MAX_DIMS];
    int64_t inner, numel;
} lcx_convert_job;

static void lcx_convert_run(const lcx_convert_job *j, const void *s, void *d, size_t n)
{
    const lcx_ktable *kt = j->kt;
    if (j->sdt == j->ddt) {
        memcpy(d, s, n * j->ses);
        return;
    }
    if (j->sdt == LCX_F32) {
        if (j->ddt == LCX_BF16)
            kt->convert_f32_bf16(s, d, n);
        else
            kt->convert_f32_f16(s, d, n);
        return;
    }
    if (j->ddt == LCX_F32) {
        if (j->sdt == LCX_BF16)
            kt->convert_bf16_f32(s, d, n);
        else
            kt->convert_f16_f32(s, d, n);
        return;
    }
    /* f16 <-> bf16 */
    float tmp[LCX_CONVERT_BOUNCE];
    const uint16_t *sp = s;
    uint16_t *dp = d;
    for (size_t i = 0; i < n; i += LCX_CONVERT_BOUNCE) {
        const size_t m = n - i < LCX_CONVERT_BOUNCE ? n - i : LCX_CONVERT_BOUNCE;
        if (j->sdt == LCX_F16) {
            kt->convert_f16_f32(sp + i, tmp, m);
            kt->convert_f32_bf16(tmp, dp + i, m);
        } else {
            kt->convert_bf16_f32(sp + i, tmp, m);
            kt->convert_f32_f16(tmp, dp + i, m);
        }
    }
}

static void lcx_convert_task(void *arg, int64_t task)
{
    const lcx_convert_job *j = arg;
    const lcx_fpenv env = lcx_fpenv_enter();
    int64_t idx = task * LCX_CONVERT_CHUNK;
    const int64_t end = idx + LCX_CONVERT_CHUNK < j->numel ? idx + LCX_CONVERT_CHUNK : j->numel;
    while (idx < end) {
        /* locate flat index idx: row offsets from the outer coordinates */
        int64_t row = idx / j->inner, col = idx % j->inner;
        int64_t so = col, dof = col;
        for (int d = j->nd - 2; d >= 0; d--) {
            const int64_t c = row % j->shape[d];
            row /= j->shape[d];
            so += c * j->sstride[d];
            dof += c * j->dstride[d];
        }
        const int64_t n = (j->inner - col) < (end - idx) ? (j->inner - col) : (end - idx);
        lcx_convert_run(j, j->src + (size_t)so * j->ses, j->dst + (size_t)dof * j->des, (size_t)n);
        idx += n;
    }
    lcx_fpenv_leave(env);
}

/* Merge adjacent dimensions that are contiguous in both tensors and drop
 * size-1 dimensions; the innermost result dimension has stride 1 in both. */
static void lcx_collapse(const lcx_tensor *a, const lcx_tensor *b, lcx_convert_job *j)
{
    int nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] == 1)
            continue;
        if (nd > 0 && j->sstride[nd - 1] == a->stride[d] * a->shape[d] &&
            j->dstride[nd - 1] == b->stride[d] * a->shape[d]) {
            j->shape[nd - 1] *= a->shape[d];
            j->sstride[nd - 1] = a->stride[d];
            j->dstride[nd - 1] = b->stride[d];
            continue;
        }
        j->shape[nd] = a->shape[d];
        j->sstride[nd] = a->stride[d];
        j->dstride[nd] = b->stride[d];
        nd++;
    }
    if (nd == 0 || j->sstride[nd - 1] != 1 || j->dstride[nd - 1] != 1) {
        /* the innermost dimension was size 1 and dropped: runs are single
         * elements (nd <= 3 here, so there is room) */
        j->shape[nd] = 1;
        j->sstride[nd] = j->dstride[nd] = 1;
        nd++;
    }
    j->nd = nd;
    j->inner = j->shape[nd - 1];
}

lcx_status lcx_convert(lcx_context *ctx, const lcx_tensor *src, const lcx_tensor *dst)
{
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, "convert")) != LCX_OK ||
        (st = lcx_tensor_validate(src, "convert: src", 0)) != LCX_OK ||
        (st = lcx_tensor_validate(dst, "convert: dst", 1)) != LCX_OK ||
        (st = lcx_check_same_shape("convert", src, "src", dst, "dst")) != LCX_OK)
        return st;
    if (lcx_tensors_overlap(src, dst))
        return lcx_fail(LCX_E_INVALID, "convert: src and dst overlap in memory");
    const int64_t numel = lcx_tensor_numel(src);
    if (numel == 0)
        return LCX_OK;

    lcx_convert_job j = {0};
    j.kt = &ctx->kt;
    j.src = src->data;
    j.dst = dst->data;
    j.sdt = src->dtype;
    j.ddt = dst->dtype;
    j.ses = lcx_dtype_size(src->dtype);
    j.des = lcx_dtype_size(dst->dtype);
    j.numel = numel;
    lcx_collapse(src, dst, &j);

#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_convert(ctx->cuda, j.src, j.sdt, j.dst, j.ddt, j.nd, j.shape, j.sstride,
                                j.dstride);
#endif
    const int64_t n_tasks = (numel + LCX_CONVERT_CHUNK - 1) / LCX_CONVERT_CHUNK;
    return lcx_parallel(ctx, n_tasks, lcx_convert_task, &j);
}
