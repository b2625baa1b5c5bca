/*
 * longctx: long-context LLM building blocks.
 *
 * This is the umbrella header: it declares the context (device, ISA, threads,
 * scratch), the kernel introspection calls and dtype conversion, and includes
 * every op header the library ships.
 */
#ifndef LONGCTX_LONGCTX_H
#define LONGCTX_LONGCTX_H

#include "longctx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Devices and instruction sets                                        */
/* ------------------------------------------------------------------ */

typedef enum lcx_device {
    LCX_DEVICE_CPU = 0,
    LCX_DEVICE_CUDA = 1
} lcx_device;

typedef enum lcx_isa {
    LCX_ISA_AUTO = 0,   /**< LONGCTX_ISA if set, else the best the CPU and OS support */
    LCX_ISA_SCALAR = 1, /**< portable C reference kernels */
    LCX_ISA_AVX2 = 2,   /**< x86-64 AVX2 + FMA + F16C */
    LCX_ISA_AVX512 = 3, /**< x86-64 AVX-512 F/BW/DQ/VL (+ AVX512-BF16 kernels when present) */
    LCX_ISA_NEON = 4    /**< AArch64 Advanced SIMD */
} lcx_isa;

/** "scalar", "avx2", "avx512", "neon" (the names LONGCTX_ISA takes), "auto";
 *  "?" for an unknown value. */
LCX_API const char *lcx_isa_name(lcx_isa isa);
/** Parse an ISA name as LONGCTX_ISA does. Returns LCX_E_INVALID for an
 *  unknown name. */
LCX_API lcx_status lcx_isa_from_name(const char *name, lcx_isa *isa);
/** 1 if this build has kernels for `isa` and this CPU/OS can run them. */
LCX_API int lcx_isa_supported(lcx_isa isa);
/** 1 if this build compiled kernels for `isa` (whatever the CPU). */
LCX_API int lcx_isa_compiled(lcx_isa isa);
/** The ISA LCX_ISA_AUTO resolves to on this machine, ignoring LONGCTX_ISA. */
LCX_API lcx_isa lcx_isa_best(void);
/** 1 if this build contains the CUDA backend. */
LCX_API int lcx_cuda_compiled(void);

/* ------------------------------------------------------------------ */
/* Context                                                             */
/* ------------------------------------------------------------------ */

/** A context: device, ISA, kernel table, thread pool and scratch memory.
 *  A context is used by one thread at a time (its pool and scratch are not
 *  synchronised); different contexts are independent and may be used
 *  concurrently. */
typedef struct lcx_context lcx_context;

/** Caller-supplied parallel loop. It must call task(task_arg, i) exactly once
 *  for every i in [0, n_tasks), in any order and on any threads, and return
 *  only when all calls have returned. Tasks are independent. Return 0 on
 *  success; any other value makes the op fail with LCX_E_CALLBACK (outputs
 *  may then be partially written). */
typedef int (*lcx_parallel_for_fn)(void *user, int64_t n_tasks,
                                   void (*task)(void *task_arg, int64_t index),
                                   void *task_arg);

typedef struct lcx_context_options {
    size_t struct_size;      /**< sizeof(lcx_context_options) */
    lcx_device device;       /**< LCX_DEVICE_CPU (default) or LCX_DEVICE_CUDA */
    lcx_isa isa;             /**< CPU kernels; LCX_ISA_AUTO (default) */
    int32_t n_threads;       /**< 0 = one per physical core (default); 1 = no pool */
    int32_t pin_threads;     /**< non-zero: pin worker i to core i (hwloc) */
    lcx_parallel_for_fn parallel_for; /**< optional: run parallel work here instead of the pool */
    void *parallel_for_user; /**< first argument of parallel_for */
    int32_t cuda_device;     /**< CUDA device ordinal (LCX_DEVICE_CUDA) */
    void *cuda_stream;       /**< cudaStream_t to run on; NULL = the context creates its own */
} lcx_context_options;

/** Fill *opts with the defaults (CPU, auto ISA, one thread per physical core,
 *  no pinning, internal pool, CUDA device 0, own stream). NULL is ignored. */
LCX_API void lcx_context_options_default(lcx_context_options *opts);

/** Create a context. opts may be NULL (defaults).
 *  ISA choice: opts->isa if not AUTO, else LONGCTX_ISA, else the best the CPU
 *  supports. Asking for an ISA this build or CPU lacks is LCX_E_UNSUPPORTED
 *  (never a silent fallback); an unknown LONGCTX_ISA value is LCX_E_INVALID.
 *  A CUDA context in a build without CUDA is LCX_E_UNSUPPORTED; without a
 *  usable device, LCX_E_DEVICE. *out is written only on success. */
LCX_API lcx_status lcx_context_create(const lcx_context_options *opts, lcx_context **out);
/** Destroy a context (joins its threads, frees its scratch). NULL is a no-op. */
LCX_API void lcx_context_destroy(lcx_context *ctx);

/** ISA name of the context's CPU kernels ("scalar", "avx2", ...), or "cuda"
 *  for a CUDA context; "?" for NULL. */
LCX_API const char *lcx_context_isa_name(const lcx_context *ctx);
/** The context's CPU ISA (never LCX_ISA_AUTO); LCX_ISA_AUTO for NULL. */
LCX_API lcx_isa lcx_context_isa(const lcx_context *ctx);
/** The context's device. */
LCX_API lcx_device lcx_context_device(const lcx_context *ctx);
/** Threads parallel work is spread over: the pool size (1 = no pool); with a
 *  parallel_for callback, the n_threads asked for (0 = physical cores), used
 *  only as a hint; 1 for a CUDA context. */
LCX_API int32_t lcx_context_n_threads(const lcx_context *ctx);

/** Name of the kernel serving `op` in this context, e.g.
 *  lcx_context_kernel_name(ctx, "convert_f32_bf16") ->
 *  "lcx_k_convert_f32_bf16__avx512bf16". NULL (with lcx_last_error set) for
 *  an unknown op, or an op with no kernel on the context's device. */
LCX_API const char *lcx_context_kernel_name(const lcx_context *ctx, const char *op);
/** Number of dispatched ops, and the name of op i (NULL out of range). */
LCX_API int32_t lcx_op_count(void);
LCX_API const char *lcx_op_name(int32_t i);

/** What the context knows of the machine (hwloc). */
typedef struct lcx_context_info {
    size_t struct_size;       /**< sizeof(lcx_context_info), set by the caller */
    int32_t n_threads;        /**< threads used for parallel work */
    int32_t n_cores;          /**< physical cores */
    int32_t n_pus;            /**< hardware threads */
    int32_t n_numa;           /**< NUMA nodes */
    int32_t n_packages;       /**< sockets */
    int32_t pinned;           /**< non-zero if every pool worker was bound to its core */
    int64_t l1d_bytes;        /**< per-core data cache sizes, 0 if unknown */
    int64_t l2_bytes;
    int64_t l3_bytes;         /**< size of the first L3 (shared) */
    char cpu_model[96];       /**< CPU model string, "" if unknown */
} lcx_context_info;

/** Zero *info and set its struct_size. NULL is ignored. */
LCX_API void lcx_context_info_default(lcx_context_info *info);
/** Fill *info (info->struct_size must be sizeof(lcx_context_info)). */
LCX_API lcx_status lcx_context_get_info(const lcx_context *ctx, lcx_context_info *info);

/* ------------------------------------------------------------------ */
/* dtype conversion                                                    */
/* ------------------------------------------------------------------ */

/** dst = src converted element by element, between any two of f32, f16 and
 *  bf16 (same dtype = strided copy). Shapes must match; strides may differ.
 *  Rounding: round to nearest, ties to even, subnormals kept, overflow to
 *  ±inf. NaN stays NaN with its sign: narrowing keeps the upper payload bits
 *  and sets the quiet bit; f16 -> f32 quiets signalling NaNs (as F16C and
 *  NEON do); bf16 -> f32 is an exact bit widening. src and dst must not
 *  overlap. On a CUDA context both point to device memory and the call is
 *  asynchronous on the context's stream. */
LCX_API lcx_status lcx_convert(lcx_context *ctx, const lcx_tensor *src, const lcx_tensor *dst);

/** Block until all work queued on the context has finished (CUDA: stream
 *  synchronise; CPU: returns at once). */
LCX_API lcx_status lcx_context_synchronize(lcx_context *ctx);

#ifdef __cplusplus
}
#endif

#include "longctx/rope.h"
#include "longctx/positions.h"
#include "longctx/recipe.h"
#include "longctx/attention.h"
#include "longctx/lora.h"

#endif /* LONGCTX_LONGCTX_H */
