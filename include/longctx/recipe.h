/*
 * longctx recipe tools: weight merging (LongRecipe's model merging, task
 * arithmetic).
 */
#ifndef LONGCTX_RECIPE_H
#define LONGCTX_RECIPE_H

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lcx_context;

/** out = sum_i coeffs[i] * inputs[i] over n (1..64) same-shape tensors,
 *  each f32, bf16 or f16 (independently), accumulated in f32 in input order
 *  and rounded once to out's dtype (round to nearest even). Strided views
 *  allowed. out may be one of the inputs (identical view: in-place merge);
 *  any other overlap is refused. LongRecipe's merge is n = 2 with coeffs
 *  0.5, 0.5; task arithmetic base + sum l_i (w_i - base) is coeffs
 *  (1 - sum l_i, l_1, ..., l_k) over (base, w_1, ..., w_k). The result does
 *  not depend on the thread count. */
LCX_API lcx_status lcx_merge_weights(struct lcx_context *ctx, int32_t n, const lcx_tensor *inputs,
                                     const double *coeffs, const lcx_tensor *out);

#ifdef __cplusplus
}
#endif

#endif
