/*
 * longctx recipe tools: weight merging (LongRecipe's model merging, task
 * arithmetic), per-token log-probabilities and base-vs-extended impact
 * scores (LongRecipe's impactful-token analysis).
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

/** out[r] = log softmax(logits[r])[targets[r]] for every row r of logits
 *  (ndim >= 2: the last dimension is the vocabulary, contiguous; the others
 *  are rows; f32, bf16 or f16), in one pass over each row (online max and
 *  sum of exp, the sum kept in double). targets has one int64 per row; a
 *  negative target (HF's -100) gives NaN, one >= vocab is refused. A row
 *  with a NaN gives NaN; with +inf entries, the mass is shared by them
 *  (-log(count) at a +inf target, -inf elsewhere); all -inf gives NaN.
 *  Accuracy: within 1e-5 + 1e-6 |result| of the exact value for f32 input. */
LCX_API lcx_status lcx_token_logprobs(struct lcx_context *ctx, const lcx_tensor *logits, const int64_t *targets,
                                      float *out);

/** Impact of a context extension on each token: out[r] = lp_ext[r] - lp_base[r],
 *  the signed difference of the target log-probabilities of the extended and
 *  the base model (shapes must match). LongRecipe's analysis compares the
 *  models' scores of the actual next token; its released code stores softmax
 *  probabilities, i.e. exp(lp), so the probability difference is
 *  exp(lp_ext) - exp(lp_base) = exp(lp_base) (exp(out) - 1); whether the
 *  paper ranks by the signed or the absolute change is not settled: take
 *  fabs(out) for the latter (lcx_impact_topk's use_abs). */
LCX_API lcx_status lcx_token_impact(struct lcx_context *ctx, const lcx_tensor *base_logits,
                                    const lcx_tensor *ext_logits, const int64_t *targets, float *out);

/** Aggregate impact scores per token id and rank them: mean of scores[i]
 *  (or of |scores[i]| with use_abs) over the positions i whose
 *  token_ids[i] is that id (NaN scores and negative ids skipped), then the
 *  k ids with the largest mean, descending, ties to the smaller id. Writes up
 *  to k entries to top_ids and top_means (may be NULL) and their count to
 *  *n_found. ids must be < vocab. Uses O(vocab) temporary memory. */
LCX_API lcx_status lcx_impact_topk(const float *scores, const int64_t *token_ids, int64_t n, int64_t vocab,
                                   int32_t use_abs, int64_t k, int64_t *top_ids, double *top_means,
                                   int64_t *n_found);

#ifdef __cplusplus
}
#endif

#endif
