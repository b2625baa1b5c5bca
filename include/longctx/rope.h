/*
 * longctx RoPE: every scaling variant, both layouts, precise angles.
 *
 * A pair i of a head vector x (u, v) = (x[i], x[i + d/2]) in NeoX layout or
 * (x[2i], x[2i+1]) in interleaved layout is rotated by the angle p * theta_i
 * and scaled by the magnitude factor a:
 *   (u, v) -> (a (u cos - v sin), a (v cos + u sin)),   dims >= d unchanged.
 * theta_i and a depend on the variant (see lcx_rope_frequencies).
 */
#ifndef LONGCTX_ROPE_H
#define LONGCTX_ROPE_H

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lcx_context;

typedef enum lcx_rope_type {
    LCX_ROPE_DEFAULT = 0,  /**< theta_i = base^(-2i/d), a = 1 (also ABF: a larger base) */
    LCX_ROPE_LINEAR = 1,   /**< position interpolation: theta_i / factor */
    LCX_ROPE_NTK = 2,      /**< static NTK-aware base: base * factor^(d/(d-2)) */
    LCX_ROPE_DYNAMIC = 3,  /**< dynamic NTK: base grows with the length (L0 = max_position) */
    LCX_ROPE_YARN = 4,     /**< YaRN ramp, magnitude from mscale / attention_factor */
    LCX_ROPE_LLAMA3 = 5,   /**< Llama-3.1 three-band frequency scaling */
    LCX_ROPE_LONGROPE = 6  /**< LongRoPE / Phi-3: per-pair factors, short and long sets */
} lcx_rope_type;

typedef enum lcx_rope_layout {
    LCX_ROPE_NEOX = 0,        /**< half-split: pair i = (x[i], x[i + d/2]) */
    LCX_ROPE_INTERLEAVED = 1  /**< GPT-J: pair i = (x[2i], x[2i+1]) */
} lcx_rope_layout;

typedef enum lcx_rope_precision {
    LCX_ROPE_PRECISE = 0, /**< angles from exact integer turn arithmetic: ~1e-7 rad at any position < 2^31 */
    LCX_ROPE_HF_F32 = 1   /**< Hugging Face's float32 path (theta, p*theta, cos/sin in float32):
                               for parity tests; inaccurate beyond ~100k positions */
} lcx_rope_precision;

typedef struct lcx_rope_config {
    size_t struct_size;            /**< sizeof(lcx_rope_config) */
    lcx_rope_type type;
    lcx_rope_layout layout;
    int32_t head_dim;              /**< D: elements per head vector */
    int32_t rotary_dim;            /**< d: rotated dims, even, <= head_dim (<= 1024); 0 = head_dim */
    double base;                   /**< rope_theta, > 1 */
    double factor;                 /**< s; YARN/LONGROPE: 0 = max_position / original_max_position */
    int64_t original_max_position; /**< L0 of YARN, LLAMA3, LONGROPE (original_max_position_embeddings) */
    int64_t max_position;          /**< max_position_embeddings: DYNAMIC's L0, LONGROPE's L_max */
    double beta_fast, beta_slow;   /**< YaRN ramp bounds; 0 = default (32, 1) */
    int32_t truncate;              /**< YaRN: floor/ceil the correction range (default 1) */
    double attention_factor;       /**< a for YARN/LONGROPE; 0 = derive (YaRN g(s), LongRoPE
                                        sqrt(1 + ln s / ln L0)); must be 0 for the others (a = 1) */
    double mscale, mscale_all_dim; /**< YaRN / DeepSeek; 0 = absent */
    double low_freq_factor, high_freq_factor; /**< LLAMA3 (defaults 1, 4) */
    const double *short_factor;    /**< LONGROPE: rotary_dim/2 factors (copied at create) */
    const double *long_factor;     /**< LONGROPE: rotary_dim/2 factors (copied at create) */
    int64_t n_hat;                 /**< LONGROPE: positions p < n_hat use plain RoPE (theta^0, a = 1) */
    lcx_rope_precision precision;
} lcx_rope_config;

/** Hugging Face's defaults: DEFAULT type, NeoX, head_dim 128, rotary_dim 0 (=
 *  head_dim), base 10000, factor 1, max_position 2048, original_max_position
 *  0 (= max_position), beta 32/1, truncate 1, derived attention factor, no
 *  mscale, low/high freq factors 1/4, no LongRoPE arrays, n_hat 0, precise.
 *  Note for YARN and LONGROPE: the default factor 1 is taken literally (a
 *  derived attention factor of 1); set factor = 0 to derive s from
 *  max_position / original_max_position as Hugging Face does for Phi-3. */
LCX_API void lcx_rope_config_default(lcx_rope_config *cfg);

/** Check a config; LCX_E_INVALID with a message naming the field. */
LCX_API lcx_status lcx_rope_config_validate(const lcx_rope_config *cfg);

/** Frequencies theta_i (rotary_dim/2 doubles) and the magnitude factor a for
 *  sequence length seq_len (DYNAMIC: L = max(seq_len, max_position);
 *  LONGROPE: long factors iff seq_len > original_max_position, so pass the
 *  current length for HF's rule or the maximum context for vLLM's and
 *  llama.cpp's; other types ignore it). Either output may be NULL. */
LCX_API lcx_status lcx_rope_frequencies(const lcx_rope_config *cfg, int64_t seq_len,
                                        double *inv_freq, double *attention_factor);

/** DeepSeek's softmax-scale multiplier: g(s, mscale_all_dim)^2 for YaRN with
 *  mscale_all_dim set (g(s, m) = 1 + 0.1 m ln s for s > 1, else 1), else 1. */
LCX_API lcx_status lcx_rope_softmax_scale_multiplier(const lcx_rope_config *cfg, double *mult);

/** A rope object: the config (factor arrays copied), the frequencies for a
 *  length in the forms the kernels use, and the magnitude factor. Read-only
 *  during apply/rerotate/shift, so several contexts may share one. */
typedef struct lcx_rope lcx_rope;

/** Build a rope object (config copied, frequencies for seq_len). */
LCX_API lcx_status lcx_rope_create(struct lcx_context *ctx, const lcx_rope_config *cfg,
                                   int64_t seq_len, lcx_rope **out);
LCX_API void lcx_rope_destroy(lcx_rope *rope);
/** Recompute the frequencies for another length, in place, no allocation
 *  (dynamic NTK growth, LongRoPE short -> long). Not concurrently with an
 *  apply that uses the same rope object. */
LCX_API lcx_status lcx_rope_set_length(lcx_rope *rope, int64_t seq_len);
/** Current frequencies (rotary_dim/2 doubles, may be NULL) and factor. */
LCX_API lcx_status lcx_rope_get(const lcx_rope *rope, double *inv_freq, double *attention_factor,
                                int32_t *rotary_dim);

/** Rotate q [batch][seq][heads][head_dim] and k [batch][seq][kv_heads][head_dim]
 *  in place (either may be NULL, not both; f32, bf16 or f16, strided views
 *  with innermost stride 1). positions: int64 [batch][seq], contiguous, each
 *  in [0, 2^31 - 1]; NULL means 0..seq-1 for every batch row. The cos/sin of
 *  a (token, pair) are computed once and shared by every head of q and k.
 *  16-bit inputs are rotated in f32 and rounded once.
 *  On a CUDA context, q, k and positions are device memory and the work is
 *  queued on the context's stream (the rope object stays on the host; its
 *  tables are copied during the call, so it may change once the call
 *  returns); positions must be aligned to 8 bytes. Non-NULL positions are
 *  range-checked on the device first: the call then waits for the stream
 *  (work queued before it included) and refuses an out-of-range position
 *  with LCX_E_INVALID, nothing written. While the stream is being captured
 *  into a CUDA graph the call cannot wait: it returns LCX_OK, and when the
 *  graph runs an out-of-range position makes the rotation write nothing. */
LCX_API lcx_status lcx_rope_apply(struct lcx_context *ctx, const lcx_rope *rope, const lcx_tensor *q,
                                  const lcx_tensor *k, const int64_t *positions);

/** Re-rotate cached keys k [batch][seq][kv_heads][head_dim] that were rotated
 *  by `from` at `positions` so they carry the rotation of `to` at the same
 *  positions: multiply by the rotation of angle p*(theta_to - theta_from)
 *  with magnitude 1 (a is never applied twice). Both ropes need the same
 *  head_dim, rotary_dim and layout. Precise angles always. On a CUDA
 *  context: device memory, stream, position check and graph capture as for
 *  lcx_rope_apply. */
LCX_API lcx_status lcx_rope_rerotate(struct lcx_context *ctx, const lcx_rope *from,
                                     const lcx_rope *to, const lcx_tensor *k,
                                     const int64_t *positions);

/** Context shift: move cached keys rotated by `rope` from position p to
 *  p + delta (delta may be negative), magnitude 1. Precise angles. Refused
 *  for LONGROPE with n_hat > 0 (the rotation then depends on p). On a CUDA
 *  context: k is device memory and the work is queued on the context's
 *  stream. */
LCX_API lcx_status lcx_rope_shift(struct lcx_context *ctx, const lcx_rope *rope, const lcx_tensor *k,
                                  int64_t delta);

#ifdef __cplusplus
}
#endif

#endif
