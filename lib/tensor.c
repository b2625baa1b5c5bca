/* Tensor description helpers and the validation every op uses. */
#include <inttypes.h>

#include "internal/lcx_internal.h"

lcx_status lcx_tensor_init(lcx_tensor *t, void *data, lcx_dtype dtype, int32_t ndim,
                           const int64_t *shape)
{
    if (!t)
        return lcx_fail(LCX_E_INVALID, "tensor_init: t is NULL");
    if (!shape)
        return lcx_fail(LCX_E_INVALID, "tensor_init: shape is NULL");
    if (ndim < 1 || ndim > LCX_MAX_DIMS)
        return lcx_fail(LCX_E_INVALID, "tensor_init: ndim %" PRId32 " is outside 1..%d", ndim,
                        LCX_MAX_DIMS);
    if (lcx_dtype_size(dtype) == 0)
        return lcx_fail(LCX_E_INVALID, "tensor_init: unknown dtype %d", (int)dtype);
    for (int32_t d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return lcx_fail(LCX_E_INVALID, "tensor_init: shape[%" PRId32 "] = %" PRId64 " is negative",
                            d, shape[d]);
    lcx_tensor r = {0};
    r.data = data;
    r.dtype = dtype;
    r.ndim = ndim;
    int64_t s = 1;
    for (int32_t d = ndim - 1; d >= 0; d--) {
        r.shape[d] = shape[d];
        r.stride[d] = s;
        if (d > 0 && !lcx_mul_i64(s, shape[d] > 0 ? shape[d] : 1, &s))
            return lcx_fail(LCX_E_OVERFLOW, "tensor_init: strides overflow");
    }
    *t = r;
    return LCX_OK;
}

int64_t lcx_tensor_numel(const lcx_tensor *t)
{
    if (!t || t->ndim < 1 || t->ndim > LCX_MAX_DIMS)
        return 0;
    int64_t n = 1;
    for (int32_t d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || !lcx_mul_i64(n, t->shape[d], &n))
            return 0;
    }
    return n;
}

lcx_status lcx_tensor_validate(const lcx_tensor *t, const char *name, int writable)
{
    if (!name)
        name = "tensor";
    if (!t)
        return lcx_fail(LCX_E_INVALID, "%s is NULL", name);
    if (!t->data)
        return lcx_fail(LCX_E_INVALID, "%s: data is NULL", name);
    if (lcx_dtype_size(t->dtype) == 0)
        return lcx_fail(LCX_E_INVALID, "%s: unknown dtype %d", name, (int)t->dtype);
    if (t->ndim < 1 || t->ndim > LCX_MAX_DIMS)
        return lcx_fail(LCX_E_INVALID, "%s: ndim %" PRId32 " is outside 1..%d", name, t->ndim,
                        LCX_MAX_DIMS);
    if ((uintptr_t)t->data % lcx_dtype_size(t->dtype) != 0)
        return lcx_fail(LCX_E_INVALID, "%s: data %p is not aligned to its %zu-byte elements", name,
                        t->data, lcx_dtype_size(t->dtype));
    const int32_t nd = t->ndim;
    for (int32_t d = 0; d < nd; d++) {
        if (t->shape[d] < 0)
            return lcx_fail(LCX_E_INVALID, "%s: shape[%" PRId32 "] = %" PRId64 " is negative", name,
                            d, t->shape[d]);
        if (t->stride[d] < 0)
            return lcx_fail(LCX_E_INVALID, "%s: stride[%" PRId32 "] = %" PRId64 " is negative",
                            name, d, t->stride[d]);
    }
    if (t->stride[nd - 1] != 1)
        return lcx_fail(LCX_E_INVALID, "%s: innermost stride is %" PRId64 ", must be 1", name,
                        t->stride[nd - 1]);
    /* element count, and the furthest element offset, in int64 and in bytes */
    int64_t numel = 1, last = 0;
    for (int32_t d = 0; d < nd; d++) {
        int64_t span;
        if (!lcx_mul_i64(numel, t->shape[d], &numel))
            return lcx_fail(LCX_E_OVERFLOW, "%s: element count overflows", name);
        if (t->shape[d] > 0 && (!lcx_mul_i64(t->shape[d] - 1, t->stride[d], &span) ||
                                !lcx_add_i64(last, span, &last)))
            return lcx_fail(LCX_E_OVERFLOW, "%s: shape x stride overflows", name);
    }
    int64_t bytes;
    const int64_t es = (int64_t)lcx_dtype_size(t->dtype);
    if (!lcx_mul_i64(numel, es, &bytes) || !lcx_add_i64(last, 1, &last) ||
        !lcx_mul_i64(last, es, &bytes) || (uint64_t)bytes > (uint64_t)(SIZE_MAX / 2) ||
        (uintptr_t)t->data > UINTPTR_MAX - (uintptr_t)bytes)
        return lcx_fail(LCX_E_OVERFLOW, "%s: byte size overflows", name);
    if (writable && numel > 1) {
        /* No two elements may share memory: sorted by stride, each dimension
         * of length > 1 must step over everything the inner ones span. */
        int32_t order[LCX_MAX_DIMS], n = 0;
        for (int32_t d = 0; d < nd; d++)
            if (t->shape[d] > 1)
                order[n++] = d;
        for (int32_t i = 1; i < n; i++) /* insertion sort by stride */
            for (int32_t j = i; j > 0 && t->stride[order[j]] < t->stride[order[j - 1]]; j--) {
                int32_t tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        int64_t span = 1; /* elements covered by the inner dimensions so far */
        for (int32_t i = 0; i < n; i++) {
            const int32_t d = order[i];
            if (t->stride[d] < span)
                return lcx_fail(LCX_E_INVALID,
                                "%s: stride[%" PRId32 "] = %" PRId64
                                " makes elements overlap (output views must not alias)",
                                name, d, t->stride[d]);
            span = t->stride[d] * (t->shape[d] - 1) + span;
        }
    }
    return LCX_OK;
}

void lcx_tensor_extent(const lcx_tensor *t, uintptr_t *lo, uintptr_t *hi)
{
    int64_t last = 0, numel = 1;
    for (int32_t d = 0; d < t->ndim; d++) {
        numel *= t->shape[d];
        if (t->shape[d] > 0)
            last += (t->shape[d] - 1) * t->stride[d];
    }
    *lo = (uintptr_t)t->data;
    *hi = numel == 0 ? *lo : *lo + (uintptr_t)((last + 1) * (int64_t)lcx_dtype_size(t->dtype));
}

int lcx_tensors_overlap(const lcx_tensor *a, const lcx_tensor *b)
{
    uintptr_t alo, ahi, blo, bhi;
    lcx_tensor_extent(a, &alo, &ahi);
    lcx_tensor_extent(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

int lcx_views_disjoint(const lcx_tensor *a, const lcx_tensor *b)
{
    if (!lcx_tensors_overlap(a, b))
        return 1;
    /* Two views interleaved in one buffer (q and k heads of a fused QKV
     * projection): same dtype and ndim >= 3; on the "row" dimensions 0..nd-3
     * that have more than one entry, identical strides that nest (each at
     * least the next smaller one times its extent), so rows own disjoint
     * windows [base, base + R) with R the smallest such stride; within every
     * window the footprints of the last two dimensions must not meet. Size-1
     * dimensions are never used for addressing and are ignored. */
    const int32_t nd = a->ndim;
    if (a->dtype != b->dtype || nd != b->ndim || nd < 3)
        return 0;
    int64_t R = INT64_MAX, prev_stride = -1;
    for (int32_t d = 0; d < nd - 2; d++) {
        if (a->shape[d] != b->shape[d])
            return 0;
        if (a->shape[d] <= 1)
            continue;
        if (a->stride[d] != b->stride[d])
            return 0;
        if (prev_stride >= 0 && prev_stride < a->stride[d] * a->shape[d])
            return 0; /* rows of the outer dimension would interleave */
        prev_stride = a->stride[d];
        R = a->stride[d];
    }
    const int64_t es = (int64_t)lcx_dtype_size(a->dtype);
    intptr_t diff = (intptr_t)((const char *)b->data - (const char *)a->data);
    if (diff % es)
        return 0;
    int64_t delta = (int64_t)(diff / es);
    const lcx_tensor *lo = a, *hi = b;
    if (delta < 0) {
        delta = -delta;
        lo = b;
        hi = a;
    }
    const int64_t span_lo = (lo->shape[nd - 2] - 1) * lo->stride[nd - 2] + lo->shape[nd - 1];
    const int64_t span_hi = (hi->shape[nd - 2] - 1) * hi->stride[nd - 2] + hi->shape[nd - 1];
    return span_lo <= delta && delta <= R - span_hi;
}

lcx_status lcx_check_same_shape(const char *op, const lcx_tensor *a, const char *an,
                                const lcx_tensor *b, const char *bn)
{
    if (a->ndim != b->ndim)
        return lcx_fail(LCX_E_INVALID, "%s: %s has %" PRId32 " dims but %s has %" PRId32, op, an,
                        a->ndim, bn, b->ndim);
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return lcx_fail(LCX_E_INVALID,
                            "%s: %s.shape[%" PRId32 "] = %" PRId64 " but %s.shape[%" PRId32
                            "] = %" PRId64,
                            op, an, d, a->shape[d], bn, d, b->shape[d]);
    return LCX_OK;
}
