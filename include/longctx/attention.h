/*
 * longctx attention: blocked (flash-style) forward with an online softmax,
 * O(seq) memory, causal (bottom-right aligned) or not, sliding window, GQA /
 * MQA, softcap, custom scale, variable-length batches, optional LSE, and the
 * exact merge of partial results over disjoint key sets.
 */
#ifndef LONGCTX_ATTENTION_H
#define LONGCTX_ATTENTION_H

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lcx_context;

typedef struct lcx_attention_params {
    size_t struct_size;           /**< sizeof(lcx_attention_params) */
    double scale;                 /**< softmax scale; 0 = 1/sqrt(head_dim) */
    int32_t causal;               /**< 1: query i sees keys j <= seq_k - seq_q + i (bottom-right) */
    int32_t window_left;          /**< < 0 unlimited; else (causal only) also j >= that position - window_left */
    double softcap;               /**< 0 off; else scores s -> softcap * tanh(s / softcap) (after scaling) */
    const int64_t *cu_seqlens_q;  /**< varlen: n_seqs + 1 offsets into the packed query rows, or NULL */
    const int64_t *cu_seqlens_k;  /**< varlen: n_seqs + 1 offsets into the packed key rows */
    int32_t n_seqs;               /**< varlen: number of sequences (batch dimension must be 1) */
} lcx_attention_params;

/** Defaults: scale 0 (1/sqrt(d)), non-causal, no window, no softcap, no varlen. */
LCX_API void lcx_attention_params_default(lcx_attention_params *p);

/** out = softmax(scale * q k^T [+ masks, softcap]) v per (batch, head).
 *  q [batch][seq_q][heads][d], k [batch][seq_k][kv_heads][d], v
 *  [batch][seq_k][kv_heads][dv], out [batch][seq_q][heads][dv]; kv_heads
 *  divides heads (head h reads kv head h / (heads / kv_heads)); f32, bf16 or
 *  f16 each, strided views with innermost stride 1; accumulation in f32.
 *  lse (optional) is float [batch][heads][seq_q], natural log of the softmax
 *  denominator (including the scale). A query row that sees no key gets out
 *  0 and lse -inf. With varlen (cu_seqlens_q/k), batch is 1, seq_q/seq_k are
 *  the packed totals, each sequence is attended independently (causal
 *  alignment within each) and lse is [1][heads][total_q]. params may be
 *  NULL (defaults). */
LCX_API lcx_status lcx_attention_forward(struct lcx_context *ctx, const lcx_attention_params *params,
                                         const lcx_tensor *q, const lcx_tensor *k, const lcx_tensor *v,
                                         const lcx_tensor *out, float *lse);

/** Exact combination of two partial attention results over disjoint key
 *  sets (split-KV, ring attention): with m = max(lse_a, lse_b),
 *  w_x = exp(lse_x - m): out = (w_a out_a + w_b out_b) / (w_a + w_b), lse =
 *  m + log(w_a + w_b); both -inf gives out 0, lse -inf. Tensors
 *  [batch][seq][heads][dv] of any dtypes, lse_* float [batch][heads][seq]
 *  (natural log; a base-2 LSE as some kernels keep it converts by
 *  lse = lse2 * ln 2). out may be out_a or out_b (same view); lse may be
 *  lse_a or lse_b. */
LCX_API lcx_status lcx_attention_merge(struct lcx_context *ctx, const lcx_tensor *out_a, const float *lse_a,
                                       const lcx_tensor *out_b, const float *lse_b, const lcx_tensor *out,
                                       float *lse);

#ifdef __cplusplus
}
#endif

#endif
