/*
 * longctx LoRA: low-rank adapted linear layers (arXiv 2106.09685; LongLoRA,
 * arXiv 2309.12307, trains q/k/v/o with rank 8, alpha 16). PEFT semantics:
 * y = x W^T + bias + s (x A^T) B^T with the scale s passed in, never derived
 * (alpha / r, rsLoRA's alpha / sqrt(r), or anything else is the caller's).
 *
 * Shapes (2-D strided views, bias 1-D; f32, bf16 or f16 each,
 * independently; accumulation in f32, one rounding to y's dtype):
 *   x [tokens][in], W [out][in], bias [out], A [rank][in], B [out][rank],
 *   y [tokens][out].
 * Unlike the other ops, the LoRA ops accept any inner stride: a weight
 * stored [in][out] is passed as the transposed view of W (strides {1, out}).
 * Weights with inner stride 1 take the faster few-token paths.
 * The base product and the low-rank product accumulate into the same f32
 * output tile: u = s x A^T is computed once per block of tokens and enters
 * the GEMM as `rank` extra reduction steps against B, so y is written once.
 * Results do not depend on the thread count. y must not overlap any input;
 * the check compares address ranges, so y and x as column slices of one
 * buffer are refused too.
 *
 * CUDA context: the data of every tensor (x, w, bias, a, b, y, the adapters'
 * a and b) is device memory; the tensor descriptors, the adapter array and
 * adapter_of_token stay in host memory. Arguments are validated on the host
 * with the CPU's rules and messages before anything is queued, so bad input
 * writes nothing; the work is then queued on the context's stream
 * (lcx_context_synchronize waits for it). Same arithmetic: f32 accumulation,
 * the low-rank term in f32 (u = s x A^T kept in f32, its `rank` products
 * added to the output tile with f32 FMAs), one rounding of y. x and W of one
 * 16-bit dtype run on tensor cores (sm_80 and later; products of 16-bit
 * values are exact in f32, sums in f32); other dtype mixes, and W NULL, on
 * an f32 SIMT GEMM. Results stay within the CPU test suite's bound of the
 * exact value, so CPU and CUDA agree within twice it, not bit for bit.
 */
#ifndef LONGCTX_LORA_H
#define LONGCTX_LORA_H

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lcx_context;

/** y = [y +] x W^T + bias + scale (x A^T) B^T.
 *  w NULL: no base product (the delta alone, plus bias if given); bias
 *  NULL: none; a and b both NULL: no low-rank term (scale ignored).
 *  accumulate != 0 adds the result to y's current values (one rounding of
 *  the f32 sum), otherwise y is overwritten. Invalid: shapes that do not
 *  match, rank 0 (A or B with an empty rank dimension), only one of a/b,
 *  a non-finite scale with a low-rank term, y overlapping any input. */
LCX_API lcx_status lcx_lora_linear(struct lcx_context *ctx, const lcx_tensor *x, const lcx_tensor *w,
                                   const lcx_tensor *bias, const lcx_tensor *a, const lcx_tensor *b, float scale,
                                   const lcx_tensor *y, int accumulate);

/** One adapter of a multi-adapter batch: A [rank][in], B [out][rank],
 *  scale s. Ranks may differ between adapters. */
typedef struct lcx_lora_adapter {
    lcx_tensor a;
    lcx_tensor b;
    float scale;
} lcx_lora_adapter;

/** y[t] += s_i (x[t] A_i^T) B_i^T with i = adapter_of_token[t] for every
 *  token t (i = -1: the token has no adapter and y[t] is left as it is).
 *  Tokens of one adapter are gathered (by index, without copies of x or y)
 *  and run as one GEMM, so a batch of many adapters costs about what one
 *  adapter over all its tokens costs. Invalid: an index < -1 or >=
 *  n_adapters, n_adapters < 0, adapters NULL with n_adapters > 0, an
 *  adapter whose shapes do not match x and y or whose scale is not finite,
 *  y overlapping x or any adapter.
 *  CUDA context: adapters and adapter_of_token are host arrays (checked and
 *  grouped by adapter on the host); the grouping goes to the device through
 *  the context's pinned staging buffer, so the call may wait until the
 *  previous upload from that buffer has been read by the device. One launch
 *  forms x A_i^T for every adapter, one adds every delta. */
LCX_API lcx_status lcx_lora_batched(struct lcx_context *ctx, const lcx_tensor *x,
                                    const lcx_lora_adapter *adapters, int32_t n_adapters,
                                    const int32_t *adapter_of_token, const lcx_tensor *y);

/** W += scale B A in place, in f32 with one rounding per element to W's
 *  dtype (unmerge: the same call with -scale; merge then unmerge restores W
 *  within that rounding). W [out][in], A [rank][in], B [out][rank]. Invalid:
 *  shape mismatch, rank 0, non-finite scale, W overlapping A or B.
 *  CUDA context: W, A and B data are device memory; one elementwise kernel
 *  (f32 FMAs over the rank, one rounding). */
LCX_API lcx_status lcx_lora_merge(struct lcx_context *ctx, const lcx_tensor *w, const lcx_tensor *a,
                                  const lcx_tensor *b, float scale);

#ifdef __cplusplus
}
#endif

#endif /* LONGCTX_LORA_H */
