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
 *  not depend on the thread count.
 *  CUDA context: inputs[i].data and out->data are device memory (the inputs
 *  array, the tensor descriptors and coeffs stay in host memory); the merge
 *  is queued on the context's stream and its results equal the CPU scalar
 *  kernel's bit for bit (NaN payloads aside). */
LCX_API lcx_status lcx_merge_weights(struct lcx_context *ctx, int32_t n, const lcx_tensor *inputs,
                                     const double *coeffs, const lcx_tensor *out);

/** out[r] = log softmax(logits[r])[targets[r]] for every row r of logits
 *  (ndim >= 2: the last dimension is the vocabulary, contiguous; the others
 *  are rows; f32, bf16 or f16), in one pass over each row (online max and
 *  sum of exp, the sum kept in double). targets has one int64 per row; a
 *  negative target (HF's -100) gives NaN, one >= vocab is refused. A row
 *  with a NaN gives NaN; with +inf entries, the mass is shared by them
 *  (-log(count) at a +inf target, -inf elsewhere); all -inf gives NaN.
 *  Accuracy: within 1e-5 + 1e-6 |result| of the exact value for f32 input.
 *  CUDA context: logits->data, targets and out are device memory, targets
 *  and out aligned to their 8- and 4-byte elements (the tensor descriptor
 *  stays in host memory). The call waits for the context's stream to check
 *  the targets (so a bad one is refused with nothing written), then queues
 *  the kernel on that stream. While the stream is being captured into a
 *  CUDA graph the call cannot wait: it returns LCX_OK, and when the graph
 *  runs a target >= vocab makes the kernel write nothing. */
LCX_API lcx_status lcx_token_logprobs(struct lcx_context *ctx, const lcx_tensor *logits, const int64_t *targets,
                                      float *out);

/** Impact of a context extension on each token: out[r] = lp_ext[r] - lp_base[r],
 *  the signed difference of the target log-probabilities of the extended and
 *  the base model (shapes must match). LongRecipe's analysis compares the
 *  models' scores of the actual next token; its released code stores softmax
 *  probabilities, i.e. exp(lp), so the probability difference is
 *  exp(lp_ext) - exp(lp_base) = exp(lp_base) (exp(out) - 1); whether the
 *  paper ranks by the signed or the absolute change is not settled: take
 *  fabs(out) for the latter (lcx_impact_topk's use_abs). On a CUDA context
 *  the logits data, targets and out are device memory, checked and
 *  captured as for lcx_token_logprobs. */
LCX_API lcx_status lcx_token_impact(struct lcx_context *ctx, const lcx_tensor *base_logits,
                                    const lcx_tensor *ext_logits, const int64_t *targets, float *out);

/** Aggregate impact scores per token id and rank them: mean of scores[i]
 *  (or of |scores[i]| with use_abs) over the positions i whose
 *  token_ids[i] is that id (NaN scores and negative ids skipped; an id whose
 *  scores include both +inf and -inf has no mean and is left out), then the
 *  k ids with the largest mean, descending, ties to the smaller id. Writes up
 *  to k entries to top_ids and top_means (may be NULL) and their count to
 *  *n_found. ids must be < vocab. Uses O(vocab) temporary memory. */
LCX_API lcx_status lcx_impact_topk(const float *scores, const int64_t *token_ids, int64_t n, int64_t vocab,
                                   int32_t use_abs, int64_t k, int64_t *top_ids, double *top_means,
                                   int64_t *n_found);

/* ------------------------------------------------------------------ */
/* LongRoPE evolutionary factor search (arXiv 2402.13753)              */
/* ------------------------------------------------------------------ */

/** Fitness of one individual (lower is better, e.g. the perplexity of the
 *  model with these rescale factors and n_hat). Return 0 on success; any
 *  other value stops the search with LCX_E_CALLBACK. A NaN fitness counts
 *  as +inf (never selected while a finite one exists), so the reported
 *  best fitness is +inf only if no individual had a finite one. */
typedef int (*lcx_longrope_fitness_fn)(void *user, const double *factors, int32_t n_factors, int64_t n_hat,
                                       double *fitness);
/** Called after every iteration with the best fitness so far. */
typedef void (*lcx_longrope_progress_fn)(void *user, int32_t iteration, double best_fitness);

typedef struct lcx_longrope_search_config {
    size_t struct_size;           /**< sizeof(lcx_longrope_search_config) */
    int32_t rotary_dim;           /**< d: the search evolves d/2 factors (2..1024, even) */
    double scale;                 /**< s, the extension ratio (>= 1) */
    double upper_bound;           /**< largest factor; 0 = 1 + s (released code; the paper says 1.25 s) */
    int32_t population;           /**< P (64) */
    int32_t iterations;           /**< T (40) */
    int32_t mutations;            /**< children by mutation per iteration (16) */
    int32_t crossovers;           /**< children by crossover per iteration (16) */
    int32_t parents;              /**< survivors per iteration, the top k (32) */
    double step;                  /**< grid step of mutated values (0.01) */
    double probability;           /**< per-dimension mutation/crossover probability (0.3) */
    int32_t crossover_retries;    /**< passes before a crossover falls back to mutation (20) */
    int32_t max_attempts;         /**< mutation redraws before giving up on a child (1000) */
    const double *initial_factors;/**< d/2 factors, or NULL: YaRN factors from the fields below */
    double base;                  /**< rope base for the YaRN initial factors (10000) */
    int64_t original_max_position;/**< L_orig for the YaRN initial factors (4096) */
    double beta_fast, beta_slow;  /**< YaRN ramp bounds (32, 1; Mistral 128, 2) */
    const int64_t *n_hat_candidates; /**< candidate n_hat values (>= 0), or NULL: n_hat = 0 */
    int32_t n_n_hat;              /**< number of candidates */
    uint64_t seed;                /**< Philox seed (stream 0) */
    lcx_longrope_progress_fn progress;
    void *progress_user;
} lcx_longrope_search_config;

/** The released defaults (P 64, T 40, 16 mutations, 16 crossovers, 32
 *  parents, step 0.01, probability 0.3, 20 retries, upper 1 + s, YaRN init
 *  with base 1e4, L_orig 4096, beta 32/1); rotary_dim 128, scale 8, seed 42. */
LCX_API void lcx_longrope_search_config_default(lcx_longrope_search_config *cfg);

/** YaRN-derived LongRoPE factors: lambda_i = s (1 - m_i) + m_i with m_i = 1 -
 *  clamp((i - lo) / (hi - lo), 0, 1), lo = max(floor(c(beta_fast)), 0), hi =
 *  min(ceil(c(beta_slow)), d - 1), c(r) = d ln(L_orig / (2 pi r)) / (2 ln base). */
LCX_API lcx_status lcx_longrope_yarn_factors(int32_t rotary_dim, double base, int64_t original_max_position,
                                             double scale, double beta_fast, double beta_slow, double *factors);

/** The evolutionary search (methods.md §4.2): individual 0 is the initial
 *  factors, the rest of the first population their mutations; each iteration
 *  keeps the best `parents`, adds `mutations` mutated parents and
 *  `crossovers` crossovers of two distinct parents (falling back to a
 *  mutation of the better one). A mutation walks the dimensions in order and,
 *  with the configured probability, redraws a factor uniformly from the grid
 *  between its neighbours (1 below the first, the upper bound above the
 *  last), so factors stay non-decreasing within [1, upper_bound]; n_hat, when
 *  candidates are given, is redrawn among them with the same probability. A
 *  child equal (to 1e-5 relative) to any individual evaluated before is
 *  redrawn: no individual is evaluated twice. Deterministic for a seed.
 *  Writes the best factors (d/2), n_hat and fitness only on success. */
LCX_API lcx_status lcx_longrope_search(const lcx_longrope_search_config *cfg, lcx_longrope_fitness_fn fitness,
                                       void *user, double *best_factors, int64_t *best_n_hat,
                                       double *best_fitness);

#ifdef __cplusplus
}
#endif

#endif
