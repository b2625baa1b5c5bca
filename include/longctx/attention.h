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
    int32_t pv_16bit;             /**< 0 (default): f32-level results everywhere. 1: where a tensor-core
                                       kernel runs (CUDA, q/k/v of one 16-bit dtype) the softmax weights
                                       are rounded to that dtype for the P V product, as FlashAttention
                                       does: a third fewer tensor-core products, error up to 2^-8 (bf16)
                                       or 2^-11 (f16) of max|v| more; other kernels ignore it.
                                       (Added in the padding after n_seqs: initialise the
                                       struct with lcx_attention_params_default, as always) */
} lcx_attention_params;

/** Defaults: scale 0 (1/sqrt(d)), non-causal, no window, no softcap, no varlen, pv_16bit 0. */
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
 *  NULL (defaults). On a CUDA context q, k, v, out and lse are device
 *  memory (lse aligned to 4 bytes) and cu_seqlens_q/k stay host arrays
 *  (validated, then copied during the call); the work is queued on the
 *  context's stream. */
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
 *  lse_a or lse_b. On a CUDA context every tensor and lse is device memory
 *  (the lse arrays aligned to 4 bytes). */
LCX_API lcx_status lcx_attention_merge(struct lcx_context *ctx, const lcx_tensor *out_a, const float *lse_a,
                                       const lcx_tensor *out_b, const float *lse_b, const lcx_tensor *out,
                                       float *lse);

/* ------------------------------------------------------------------ */
/* S2-Attn: LongLoRA's shifted sparse attention (arXiv 2309.12307)     */
/* ------------------------------------------------------------------ */

typedef enum lcx_s2_mode {
    LCX_S2_ROLL = 0,     /**< non-flash path: shifted heads rolled by -g/2, with the wrap-around group */
    LCX_S2_SEGMENTS = 1, /**< flash varlen path: shifted segments [0,g/2), [g/2+kg, g/2+(k+1)g), ... */
    LCX_S2_RAGGED = 2    /**< SFT path: like SEGMENTS, seq need not be a multiple of g (ragged last) */
} lcx_s2_mode;

typedef struct lcx_s2_params {
    size_t struct_size;         /**< sizeof(lcx_s2_params) */
    int64_t group_size;         /**< g, 1..seq (LongLoRA: lcx_s2_default_group_size(seq)) */
    lcx_s2_mode mode;
    int32_t shifted_head_start; /**< first shifted query head; -1 = heads / 2 (LongLoRA) */
    int32_t shift;              /**< +1: LongLoRA's roll (forward floor(-g/2), back floor(g/2)); -1: mirrored */
    double scale;               /**< 0 = 1/sqrt(head_dim) */
    int32_t exact_odd_group;    /**< allow odd g and reproduce LongLoRA's off-by-one (ROLL: the
                                     output of token p is the shifted result of token p+1) */
} lcx_s2_params;

/** Defaults: group_size 0 (set it: the call refuses g <= 0), SEGMENTS
 *  (LongLoRA's current flash path), shifted heads from heads/2, LongLoRA's
 *  shift, 1/sqrt(d), odd g refused. */
LCX_API void lcx_s2_params_default(lcx_s2_params *p);

/** LongLoRA's default group size for a sequence: int(seq / 4) (0 below 4). */
LCX_API int64_t lcx_s2_default_group_size(int64_t seq_len);

/** S2-Attn forward with the tensor conventions of lcx_attention_forward
 *  (seq_q = seq_k, causal within each group, GQA with kv_heads dividing heads:
 *  query head h reads kv head h / (heads / kv_heads), never materialised).
 *  The shift is index arithmetic: no rolled copies. Invalid: group_size <= 0
 *  or > seq, shifted_head_start outside [0, heads], unknown mode or shift,
 *  odd g without exact_odd_group, seq not a multiple of g for ROLL and
 *  SEGMENTS. */
LCX_API lcx_status lcx_attention_s2_forward(struct lcx_context *ctx, const lcx_s2_params *params,
                                            const lcx_tensor *q, const lcx_tensor *k, const lcx_tensor *v,
                                            const lcx_tensor *out, float *lse);

/** The segments of one head kind (shifted 0/1) for a sequence, as
 *  [start, end) pairs in original token order written to seg (capacity
 *  2 * cap entries); ROLL's shifted groups start at ceil(g/2) (the roll is
 *  by -ceil(g/2): for odd g, the reference's -g//2) and the wrap-around
 *  group is returned as the pair (seq - floor(g/2), ceil(g/2)) with start >
 *  end: local order tail then head (for g = 1, the plain segment [0, 1)). For
 *  callers that drive their own varlen attention. */
LCX_API lcx_status lcx_s2_segments(lcx_s2_mode mode, int64_t seq_len, int64_t group_size, int32_t shifted,
                                   int64_t *seg, int64_t cap, int64_t *n_segments);

#ifdef __cplusplus
}
#endif

#endif
