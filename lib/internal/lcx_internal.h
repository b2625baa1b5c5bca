/* Private declarations shared by lib/ (never installed). */
#ifndef LCX_INTERNAL_H
#define LCX_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "longctx/longctx.h"
#include "../../kernels/ktable.h"

#if defined(__GNUC__)
#  define LCX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define LCX_PRINTF(f, a)
#endif

/* ---- errors (status.c) ---- */
/* Record a thread-local message and return `status`. */
lcx_status lcx_fail(lcx_status status, const char *fmt, ...) LCX_PRINTF(2, 3);

/* ---- sizes ---- */
/* a * b into *out; 0 on overflow (of int64_t). */
static inline int lcx_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline int lcx_add_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* ---- tensors (tensor.c) ---- */
/* Byte extent [lo, hi) a validated tensor touches; lo == hi when empty. */
void lcx_tensor_extent(const lcx_tensor *t, uintptr_t *lo, uintptr_t *hi);
/* 1 if two validated tensors' byte extents intersect. */
int lcx_tensors_overlap(const lcx_tensor *a, const lcx_tensor *b);
/* 1 if two validated views share no element: byte extents apart, or two
 * views interleaved row by row in one buffer (fused QKV). Conservative: 0
 * means "may overlap". */
int lcx_views_disjoint(const lcx_tensor *a, const lcx_tensor *b);
/* Check shapes (ndim and every extent) match; message names both tensors. */
lcx_status lcx_check_same_shape(const char *op, const lcx_tensor *a, const char *an,
                                const lcx_tensor *b, const char *bn);

/* ---- CPU detection and dispatch (cpu.c, dispatch.c) ---- */
unsigned lcx_cpu_features(void);          /* LCX_CPU_* bits, detected once */
const char *lcx_cpu_model(void);          /* brand string, "" if unknown */
/* Required feature bits of an ISA level; 0 for scalar, ~0u if not compiled. */
unsigned lcx_isa_required(lcx_isa isa);
/* Fill t for `isa` with variants chosen by `features` (normally
 * lcx_cpu_features(); tests pass a subset to reach every variant). */
void lcx_build_table(lcx_isa isa, unsigned features, lcx_ktable *t);

/* ---- random numbers (positions.c) ---- */
/* One Philox4x32 block (rounds = 10 for Philox4x32-10). */
void lcx_philox4x32(const uint32_t ctr[4], const uint32_t key[2], int rounds, uint32_t out[4]);

/* ---- RoPE (rope.c) ---- */
struct lcx_rope;
/* The HF-f32 mode frequencies of a rope object (rotary_dim/2 floats). */
void lcx_rope_hf_theta(const struct lcx_rope *rope, float *theta);

/* ---- thread pool (pool.c) ---- */
typedef struct lcx_pool lcx_pool;
typedef void (*lcx_task_fn)(void *arg, int64_t index);
struct hwloc_topology;
lcx_status lcx_pool_create(int32_t n_threads, struct hwloc_topology *topo, int pin, lcx_pool **out);
void lcx_pool_destroy(lcx_pool *pool);
/* 1 if every worker was bound to its core */
int lcx_pool_pinned(const lcx_pool *pool);
/* Run fn(arg, i) for i in [0, n): thread t of T runs [t*n/T, (t+1)*n/T). */
void lcx_pool_run(lcx_pool *pool, int64_t n, lcx_task_fn fn, void *arg);

/* ---- CUDA backend (kernels/cuda, only with LCX_HAVE_CUDA) ---- */
typedef struct lcx_cuda_state lcx_cuda_state;

/* ---- context ---- */
struct lcx_context {
    lcx_device device;
    lcx_isa isa;
    unsigned features;
    lcx_ktable kt;
    const char *cuda_impl[LCX_OP_COUNT]; /* CUDA kernel names (CUDA contexts) */
    int32_t n_threads;
    int pinned;
    lcx_pool *pool;                      /* NULL when n_threads == 1 or a callback is used */
    lcx_parallel_for_fn parallel_for;
    void *parallel_for_user;
    struct hwloc_topology *topo;
    lcx_context_info info;
    void *scratch;
    size_t scratch_size;
    lcx_cuda_state *cuda;
};

/* Run fn(arg, i) for every i in [0, n) on the context's threads (pool or
 * caller callback); inline when n <= 1 or single-threaded. */
lcx_status lcx_parallel(lcx_context *ctx, int64_t n, lcx_task_fn fn, void *arg);
/* Scratch memory from the context: at least `bytes`, 64-byte aligned, kept
 * and reused across calls; contents are not preserved between calls. */
lcx_status lcx_scratch(lcx_context *ctx, size_t bytes, void **out);
/* Common first check of every op: ctx non-NULL. */
lcx_status lcx_check_ctx(const lcx_context *ctx, const char *op);
/* A plain array argument (positions, targets, lse, sampler outputs) must be
 * aligned to its `size`-byte elements on every device, as tensors are
 * (lcx_tensor_validate): a misaligned load faults on the GPU and is
 * undefined behaviour in C on the CPU. NULL passes. */
static inline lcx_status lcx_check_ptr_aligned(const char *op, const char *name, const void *p, size_t size)
{
    if ((uintptr_t)p % size == 0)
        return LCX_OK;
    return lcx_fail(LCX_E_INVALID, "%s: %s %p is not aligned to its %zu-byte elements", op, name, p, size);
}

#endif
