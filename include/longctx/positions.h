/*
 * longctx positions: the library's counter-based random generator and the
 * position-index transforms of long-context training recipes (PoSE,
 * LongRecipe's sentence-gap template, RandPos, offsets, document packing).
 * All functions run on the host and write int64_t arrays.
 */
#ifndef LONGCTX_POSITIONS_H
#define LONGCTX_POSITIONS_H

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Random numbers                                                      */
/* ------------------------------------------------------------------ */

/** Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 *  3", SC'11) as a stream: key = (seed low 32 bits, seed high 32 bits),
 *  counter = (block low, block high, stream low, stream high); block b yields
 *  the four 32-bit words of Philox(counter with block b), used in order. The
 *  same (seed, stream) gives the same numbers on every platform, from every
 *  binding and on CUDA. A plain struct so callers can hold it by value;
 *  treat the fields as private. */
typedef struct lcx_random {
    uint64_t seed;
    uint64_t stream;
    uint64_t block;    /**< next block to generate */
    uint32_t buf[4];
    int32_t used;      /**< words of buf already returned (4 = empty) */
} lcx_random;

/** Start the stream (seed, stream) at its first word. NULL is ignored. */
LCX_API void lcx_random_init(lcx_random *r, uint64_t seed, uint64_t stream);
/** Next 32-bit word. */
LCX_API uint32_t lcx_random_u32(lcx_random *r);
/** Next 64-bit value: (first word << 32) | second word. */
LCX_API uint64_t lcx_random_u64(lcx_random *r);
/** Uniform integer in [0, n), n >= 1, without bias: Lemire's multiply-shift
 *  with rejection (D. Lemire, "Fast random integer generation in an
 *  interval", ACM TOMACS 2019) on 64-bit draws. n = 0 returns 0. */
LCX_API uint64_t lcx_random_below(lcx_random *r, uint64_t n);
/** Uniform integer in [lo, hi] (inclusive, lo <= hi), like Python's
 *  random.randint bounds (not its bit stream). */
LCX_API int64_t lcx_random_range(lcx_random *r, int64_t lo, int64_t hi);

/* ------------------------------------------------------------------ */
/* PoSE (positional skip-wise training, arXiv 2309.10400)              */
/* ------------------------------------------------------------------ */

/** Deterministic PoSE transform from explicit draws. The training window
 *  is split into n_chunks chunks of lengths[i] tokens (>= 0); chunk i starts
 *  at window offset st_i = sum of the lengths before it, takes its tokens
 *  from document index content[i] + st_i (content may be NULL: all 0, i.e.
 *  the window prefix) and gets positions skips[i] + st_i + j. skips and
 *  content must be non-decreasing and >= 0; every index must be < doc_len
 *  and every position < target_len. Writes sum(lengths) entries to
 *  index_out (token gather indices) and pos_out (either may be NULL). */
LCX_API lcx_status lcx_pose_transform(const int64_t *lengths, const int64_t *skips, const int64_t *content,
                                      int32_t n_chunks, int64_t doc_len, int64_t target_len,
                                      int64_t *index_out, int64_t *pos_out);

/** The official two-chunk PoSE sampler (its train_preprocess_function_pose):
 *  window w = min(doc_len, window_len); rt1 ~ U{1..floor((w+1)/2)} tokens
 *  from the document start; rt2 ~ U{w..doc_len} ends the second chunk's
 *  content, which starts at rt2 - (w - rt1); skip ~ U{0..target_len - w};
 *  positions j for j < rt1 and j + skip after. Writes w entries to both
 *  arrays (capacity window_len) and w to *n_out. */
LCX_API lcx_status lcx_pose_sample(lcx_random *rng, int64_t doc_len, int64_t window_len, int64_t target_len,
                                   int64_t *index_out, int64_t *pos_out, int64_t *n_out);

/** The paper's N-chunk form: the window (min(doc_len, window_len) tokens) is
 *  cut at n_chunks - 1 distinct uniform points into non-empty chunks; skip
 *  biases u_0 = 0, u_i ~ U{u_(i-1)..target_len - w}; content biases
 *  v_0 = 0, v_i ~ U{v_(i-1)..doc_len - w}. Needs 1 <= n_chunks <= min(w, 1024). */
LCX_API lcx_status lcx_pose_sample_chunks(lcx_random *rng, int64_t doc_len, int64_t window_len,
                                          int64_t target_len, int32_t n_chunks, int64_t *index_out,
                                          int64_t *pos_out, int64_t *n_out);

/* ------------------------------------------------------------------ */
/* LongRecipe (arXiv 2409.00509) position index transformation         */
/* ------------------------------------------------------------------ */

/** Split tokens into sentence units: a unit ends at (and includes) any token
 *  whose id is in delims; a trailing remainder is the last unit. Writes the
 *  end (exclusive) of each unit to unit_ends (capacity n, the worst case)
 *  and the count to *n_units. */
LCX_API lcx_status lcx_split_units(const int64_t *tokens, int64_t n, const int64_t *delims, int32_t n_delims,
                                   int64_t *unit_ends, int64_t *n_units);

/** The sentence-gap template: U units of unit_lengths[u] tokens (total T),
 *  `extra` one-position gaps scattered over the unit boundaries. Among
 *  M = extra + U slots, U distinct slots are chosen uniformly (slots, sorted,
 *  or NULL to draw them with rng); unit 0 is placed in slot 0 and unit u in
 *  the (u+1)-th chosen slot; every other slot is a gap. Token t of unit u gets
 *  position t + (gap slots before unit u's slot), so positions are contiguous
 *  inside a unit, increase strictly, and stay below T + extra. With
 *  `released_quirk` the released code's token-0 position is reproduced: when
 *  unit 0 is a single token, it gets (position of token 1) - 1 instead of 0.
 *  Writes T entries to pos_out. */
LCX_API lcx_status lcx_gap_template(const int64_t *unit_lengths, int64_t n_units, int64_t extra,
                                    const int64_t *slots, lcx_random *rng, int32_t released_quirk,
                                    int64_t *pos_out);

/** LongRecipe training positions: 0..rt1-1, then template[rt1..n-1]
 *  (1 <= rt1 <= n). Requires template[rt1] >= rt1 so positions increase. */
LCX_API lcx_status lcx_prefix_then_template(int64_t rt1, const int64_t *template_pos, int64_t n,
                                            int64_t *pos_out);

/* ------------------------------------------------------------------ */
/* RandPos, offsets, packing                                           */
/* ------------------------------------------------------------------ */

/** RandPos: n distinct positions drawn uniformly from [0, target_len), sorted
 *  ascending (selection sampling, O(target_len) time). n <= target_len. */
LCX_API lcx_status lcx_randpos_sample(lcx_random *rng, int64_t n, int64_t target_len, int64_t *pos_out);

/** pos_out[i] = offset + i for i < n (offset >= 0). */
LCX_API lcx_status lcx_positions_offset(int64_t n, int64_t offset, int64_t *pos_out);

/** Document packing: cu_seqlens[0] = 0 < ... nondecreasing ... cu_seqlens[n_docs]
 *  = total; positions restart at 0 at every document start. Writes total
 *  entries. */
LCX_API lcx_status lcx_positions_packed(const int64_t *cu_seqlens, int32_t n_docs, int64_t *pos_out);

/* ------------------------------------------------------------------ */
/* Batches on a context (CPU threads or a CUDA device)                 */
/* ------------------------------------------------------------------ */

/** PoSE samples for `rows` training rows in one call. Row r draws from its own
 *  stream, lcx_random_init(seed, stream + r) (mod 2^64), exactly as
 *  lcx_pose_sample (n_chunks 0) or lcx_pose_sample_chunks (n_chunks >= 1)
 *  would, so row r's entries equal that call's output whatever the context,
 *  its thread count or its device. doc_lens [rows] is host memory, checked
 *  row by row before anything is written (the single-row rules, window_len
 *  and target_len shared). Row r fills w_r = min(doc_lens[r], window_len)
 *  entries of index_out[r * window_len ...] and pos_out[r * window_len ...]
 *  and leaves the rest of its row untouched; n_out[r] = w_r. Any of the
 *  three outputs may be NULL, not both index_out and pos_out; they must not
 *  overlap. On a CUDA context the outputs are device memory, aligned to
 *  their 8-byte elements, and the work is queued on the context's stream. */
LCX_API lcx_status lcx_pose_sample_batch(struct lcx_context *ctx, uint64_t seed, uint64_t stream, int64_t rows,
                                         const int64_t *doc_lens, int64_t window_len, int64_t target_len,
                                         int32_t n_chunks, int64_t *index_out, int64_t *pos_out, int64_t *n_out);

/** RandPos for `rows` rows: row r = lcx_randpos_sample with the stream
 *  lcx_random_init(seed, stream + r), written to pos_out[r * n ...]
 *  ([rows][n]). O(target_len) per row. On a CUDA context pos_out is device
 *  memory aligned to 8 bytes (one GPU thread draws a row; queued on the
 *  context's stream). */
LCX_API lcx_status lcx_randpos_sample_batch(struct lcx_context *ctx, uint64_t seed, uint64_t stream, int64_t rows,
                                            int64_t n, int64_t target_len, int64_t *pos_out);

#ifdef __cplusplus
}
#endif

#endif
