/* lcx_merge_weights: validation, strided walk and threading around the
 * one-pass merge kernels (f32 accumulation in registers, rounded once). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal/lcx_internal.h"
#include "internal/lcx_fpenv.h"
#include "longctx/recipe.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

#define LCX_MERGE_MAX_INPUTS 64
#define LCX_MERGE_CHUNK 16384 /* elements per task */

typedef struct lcx_merge_job {
    const lcx_ktable *kt;
    int32_t n;
    const lcx_tensor *in;
    float c[LCX_MERGE_MAX_INPUTS];
    const lcx_tensor *out;
    int64_t numel, inner;
} lcx_merge_job;

/* element offset of flat row `row` (all dims but the last) in tensor t */
static int64_t lcx_row_offset(const lcx_tensor *t, int64_t row)
{
    int64_t off = 0;
    for (int32_t d = t->ndim - 2; d >= 0; d--) {
        off += (row % t->shape[d]) * t->stride[d];
        row /= t->shape[d];
    }
    return off;
}

static void lcx_merge_task(void *arg, int64_t task)
{
    const lcx_merge_job *j = arg;
    const void *src[LCX_MERGE_MAX_INPUTS];
    int32_t dts[LCX_MERGE_MAX_INPUTS];
    for (int32_t i = 0; i < j->n; i++)
        dts[i] = (int32_t)j->in[i].dtype;
    const lcx_fpenv env = lcx_fpenv_enter();
    int64_t idx = task * LCX_MERGE_CHUNK;
    const int64_t end = idx + LCX_MERGE_CHUNK < j->numel ? idx + LCX_MERGE_CHUNK : j->numel;
    while (idx < end) {
        const int64_t row = idx / j->inner, col = idx % j->inner;
        const int64_t len = j->inner - col < end - idx ? j->inner - col : end - idx;
        for (int32_t i = 0; i < j->n; i++) {
            const lcx_tensor *t = &j->in[i];
            src[i] = (const char *)t->data + (size_t)(lcx_row_offset(t, row) + col) * lcx_dtype_size(t->dtype);
        }
        const lcx_tensor *o = j->out;
        char *q = (char *)o->data + (size_t)(lcx_row_offset(o, row) + col) * lcx_dtype_size(o->dtype);
        j->kt->merge(src, dts, j->c, j->n, q, (int32_t)o->dtype, (size_t)len);
        idx += len;
    }
    lcx_fpenv_leave(env);
}

static int lcx_same_view(const lcx_tensor *a, const lcx_tensor *b)
{
    if (a->data != b->data || a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->shape[d] > 1 && a->stride[d] != b->stride[d])
            return 0;
    return 1;
}

lcx_status lcx_merge_weights(lcx_context *ctx, int32_t n, const lcx_tensor *inputs, const double *coeffs,
                             const lcx_tensor *out)
{
    lcx_status st;
    if ((st = lcx_check_ctx(ctx, "merge_weights")) != LCX_OK)
        return st;
    if (n < 1 || n > LCX_MERGE_MAX_INPUTS)
        return lcx_fail(LCX_E_INVALID, "merge_weights: n %" PRId32 " is outside 1..%d", n, LCX_MERGE_MAX_INPUTS);
    if (!inputs || !coeffs)
        return lcx_fail(LCX_E_INVALID, "merge_weights: %s is NULL", !inputs ? "inputs" : "coeffs");
    if ((st = lcx_tensor_validate(out, "merge_weights: out", 1)) != LCX_OK)
        return st;
    lcx_merge_job j = {0};
    for (int32_t i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof name, "merge_weights: inputs[%" PRId32 "]", i);
        if ((st = lcx_tensor_validate(&inputs[i], name, 0)) != LCX_OK ||
            (st = lcx_check_same_shape("merge_weights", &inputs[i], name + 15, out, "out")) != LCX_OK)
            return st;
        if (!isfinite(coeffs[i]) || fabs(coeffs[i]) > 3.0e38)
            return lcx_fail(LCX_E_INVALID, "merge_weights: coeffs[%" PRId32 "] = %g is not a finite float", i,
                            coeffs[i]);
        if (lcx_tensors_overlap(&inputs[i], out) && !lcx_same_view(&inputs[i], out))
            return lcx_fail(LCX_E_INVALID,
                            "merge_weights: inputs[%" PRId32 "] overlaps out without being the same view", i);
        j.c[i] = (float)coeffs[i];
    }
    j.numel = lcx_tensor_numel(out);
    if (j.numel == 0)
        return LCX_OK;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_merge(ctx->cuda, n, inputs, j.c, out);
#endif
    if (ctx->device != LCX_DEVICE_CPU)
        return lcx_fail(LCX_E_UNSUPPORTED, "merge_weights: no kernel for this device");
    j.kt = &ctx->kt;
    j.n = n;
    j.in = inputs;
    j.out = out;
    j.inner = out->shape[out->ndim - 1];
    const int64_t tasks = (j.numel + LCX_MERGE_CHUNK - 1) / LCX_MERGE_CHUNK;
    return lcx_parallel(ctx, tasks, lcx_merge_task, &j);
}
