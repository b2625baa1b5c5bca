/* Double-precision oracles for dtype conversion, written from the formats'
 * definitions (value arithmetic), independent of the library's bit tricks. */
#ifndef LCX_CONVERT_REF_H
#define LCX_CONVERT_REF_H

#include <stdint.h>

#include "longctx/common.h"

/* Value of a 16-bit pattern of dtype f16 or bf16 (NaN for NaN patterns). */
double lcx_ref_decode16(lcx_dtype dt, uint16_t bits);
/* x rounded to the nearest value of dtype (ties to even, subnormals kept,
 * ±inf past the largest finite value); x must not be NaN. */
double lcx_ref_round(lcx_dtype dt, double x);
/* Bit pattern of v, which must be exactly representable in dtype (not NaN). */
uint16_t lcx_ref_encode16(lcx_dtype dt, double v);
/* The 16-bit pattern the contract prescribes for narrowing a NaN f32 `bits`
 * to dtype: sign kept, upper payload bits kept, quiet bit set. */
uint16_t lcx_ref_nan16(lcx_dtype dt, uint32_t f32_bits);
/* The f32 pattern the contract prescribes for widening a 16-bit NaN. */
uint32_t lcx_ref_nan_widen(lcx_dtype dt, uint16_t bits);

#endif
