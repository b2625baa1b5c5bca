/* Double-precision attention oracle shared by the CPU and CUDA suites. */
#ifndef LCX_ATTN_REF_H
#define LCX_ATTN_REF_H

#include <stdint.h>

#include "longctx/attention.h"

/* One output row: query row qrow (position i of a sequence of lq queries)
 * of head h in batch b, over keys [k0, k0 + lk), from the exact values of
 * dense [batch][seq][heads][dim] arrays qx, kx, vx whose shapes are those of
 * the views q, k, v (the views' data and strides are not read). Causal is
 * bottom-right aligned, window and softcap as in attention.h. Writes v's dim
 * outputs to out and the natural-log LSE to *lse (out 0, lse -inf when no
 * key is visible). */
void lcx_ref_attention_row(const lcx_tensor *q, const double *qx, const lcx_tensor *k, const double *kx,
                           const lcx_tensor *v, const double *vx, const lcx_attention_params *p, int64_t b,
                           int64_t qrow, int64_t i, int64_t lq, int64_t k0, int64_t lk, int64_t h, double *out,
                           double *lse);

#endif
