/*
 * longctx: common definitions shared by every public header.
 *
 * Conventions (see README.md):
 *  - every fallible call returns lcx_status (LCX_OK = 0, errors negative);
 *    lcx_last_error() then holds a thread-local message naming the argument
 *    and the reason;
 *  - bad input is refused before any output byte is written;
 *  - option structs start with `size_t struct_size` and have a *_default()
 *    initialiser; no function takes or returns a struct by value;
 *  - tensors are described by lcx_tensor (strides in elements, innermost
 *    stride 1).
 */
#ifndef LONGCTX_COMMON_H
#define LONGCTX_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "longctx/version.h"

#if defined(_WIN32)
#  if defined(LCX_BUILDING)
#    define LCX_API __declspec(dllexport)
#  elif defined(LCX_STATIC)
#    define LCX_API
#  else
#    define LCX_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define LCX_API __attribute__((visibility("default")))
#else
#  define LCX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

/** Runtime library version, packed as LCX_VERSION_NUMBER is. Compare it with
 *  the macro to detect a header/library mismatch (same major = same ABI). */
LCX_API uint32_t lcx_version(void);
/** Runtime library version as "MAJOR.MINOR.PATCH". */
LCX_API const char *lcx_version_string(void);

/* ------------------------------------------------------------------ */
/* Status                                                              */
/* ------------------------------------------------------------------ */

typedef enum lcx_status {
    LCX_OK = 0,
    LCX_E_INVALID = -1,     /**< an argument is invalid (message names it) */
    LCX_E_UNSUPPORTED = -2, /**< valid request this build/CPU/device cannot serve */
    LCX_E_NOMEM = -3,       /**< an allocation failed */
    LCX_E_OVERFLOW = -4,    /**< a size computation overflows */
    LCX_E_DEVICE = -5,      /**< the CUDA runtime reported an error */
    LCX_E_CALLBACK = -6,    /**< a caller-supplied callback reported failure */
    LCX_E_INTERNAL = -7     /**< a library bug: please report it */
} lcx_status;

/** Name of a status code ("LCX_E_INVALID: invalid argument"); never NULL. */
LCX_API const char *lcx_status_string(lcx_status status);
/** Message of the most recent failed call on the calling thread ("" if none).
 *  The pointer stays valid until the next longctx call on this thread. */
LCX_API const char *lcx_last_error(void);

/* ------------------------------------------------------------------ */
/* Data types and tensors                                              */
/* ------------------------------------------------------------------ */

typedef enum lcx_dtype {
    LCX_F32 = 0,  /**< IEEE binary32 */
    LCX_F16 = 1,  /**< IEEE binary16 (stored as uint16_t bits) */
    LCX_BF16 = 2  /**< bfloat16: the upper half of a binary32 (uint16_t bits) */
} lcx_dtype;

/** Size in bytes of one element, 0 for an unknown dtype. */
LCX_API size_t lcx_dtype_size(lcx_dtype dtype);
/** "f32", "f16", "bf16"; "?" for an unknown dtype. */
LCX_API const char *lcx_dtype_name(lcx_dtype dtype);

#define LCX_MAX_DIMS 4

/** A strided view of memory. Dimension ndim-1 is the innermost; its stride
 *  must be 1 (the LoRA ops of lora.h also accept other inner strides). Strides are in elements, not bytes, and must be >= 0. Entries
 *  of shape/stride at index >= ndim are ignored. */
typedef struct lcx_tensor {
    void *data;
    lcx_dtype dtype;
    int32_t ndim;                  /**< 1 .. LCX_MAX_DIMS */
    int64_t shape[LCX_MAX_DIMS];
    int64_t stride[LCX_MAX_DIMS];  /**< in elements */
} lcx_tensor;

/** Fill *t as a dense row-major tensor over data. Returns LCX_E_INVALID for
 *  a NULL t or shape, or ndim outside 1..LCX_MAX_DIMS; does not validate the
 *  shape values (lcx_tensor_validate does). */
LCX_API lcx_status lcx_tensor_init(lcx_tensor *t, void *data, lcx_dtype dtype,
                                   int32_t ndim, const int64_t *shape);

/** The validation every op applies to its tensor arguments: non-NULL data
 *  aligned to its element size (as every plain array argument of an op
 *  must be too: positions, targets, lse, sampler outputs), known dtype,
 *  1 <= ndim <= LCX_MAX_DIMS, shapes >= 0, strides >= 0 with the
 *  innermost stride 1, and no size overflow (LCX_E_OVERFLOW). With
 *  `writable` non-zero it also refuses layouts in which two elements share
 *  memory (e.g. a zero stride on a dimension longer than 1). `name` is used
 *  in the error message and may be NULL. */
LCX_API lcx_status lcx_tensor_validate(const lcx_tensor *t, const char *name, int writable);

/** Number of elements of a tensor (0 for NULL or invalid ndim). */
LCX_API int64_t lcx_tensor_numel(const lcx_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* LONGCTX_COMMON_H */
