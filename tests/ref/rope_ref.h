/* Long-double oracle for RoPE, written from spec/rope.md independently of
 * lib/rope.c (exp/log instead of pow, fmodl reduction, cosl/sinl). */
#ifndef LCX_ROPE_REF_H
#define LCX_ROPE_REF_H

#include <stdint.h>

#include "longctx/rope.h"

/* theta_i (rotary_dim/2) and a for sequence length seq_len. */
void lcx_ref_rope_freqs(const lcx_rope_config *c, int64_t seq_len, long double *theta, long double *a);
/* out = rotation of the head vector x (head_dim values) at position p; dims
 * >= d copied. theta has d/2 entries. */
void lcx_ref_rope_rotate(const double *x, int head_dim, int d, lcx_rope_layout layout, long double p,
                         const long double *theta, long double a, double *out);

#endif
