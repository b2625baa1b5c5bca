/* Tensor-core and asynchronous-copy primitives shared by the CUDA kernels
 * (sm_80 and later: cp.async, ldmatrix, mma.sync m16n8k16 with f32
 * accumulation). Below sm_80 LCX_CUDA_SM80 is 0: cp.async degrades to a
 * plain 16-byte copy and the matrix primitives are not declared, so callers
 * keep a SIMT path for those devices.
 *
 * Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
 * g = lane / 4 and t = lane % 4:
 *   A 16x16 (row): a0 (row g, cols 2t, 2t+1), a1 (row g+8, same cols),
 *                  a2 (row g, cols 2t+8, 2t+9), a3 (row g+8, cols 2t+8, 2t+9)
 *   B 16x8 (col):  b0 (rows 2t, 2t+1, col g), b1 (rows 2t+8, 2t+9, col g)
 *   C/D 16x8 f32:  c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same)
 * so the accumulators of two adjacent 16x8 products are, packed to 16 bits,
 * exactly the A fragment of a 16x16 operand (the FlashAttention P tile). */
#ifndef LCX_CUDA_MMA_CUH
#define LCX_CUDA_MMA_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define LCX_CUDA_SM80 1
#else
#define LCX_CUDA_SM80 0
#endif

/* 16 bytes global -> shared, asynchronous from sm_80 (both 16-byte aligned) */
__device__ __forceinline__ void lcx_cp_async16(void *smem, const void *gmem)
{
#if LCX_CUDA_SM80
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(__cvta_generic_to_global(gmem))
                 : "memory");
#else
    *reinterpret_cast<uint4 *>(smem) = *reinterpret_cast<const uint4 *>(gmem);
#endif
}

__device__ __forceinline__ void lcx_cp_async_commit()
{
#if LCX_CUDA_SM80
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/* wait until at most n of this thread's cp.async groups are in flight */
template <int n> __device__ __forceinline__ void lcx_cp_async_wait()
{
#if LCX_CUDA_SM80
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
#endif
}

/* the f32 value of a 16-bit one (exact; any architecture) */
template <int BF16> __device__ __forceinline__ float lcx_half_to_f32(uint16_t x)
{
    float f;
    if constexpr (BF16)
        f = __uint_as_float((uint32_t)x << 16);
    else
        asm("{\n .reg .f16 h;\n mov.b16 h, %1;\n cvt.f32.f16 %0, h;\n}\n" : "=f"(f) : "h"(x));
    return f;
}

/* x rounded to the nearest-even f16, as bits (one cvt on any architecture:
 * overflow to inf, subnormal results kept; what a NaN becomes is the
 * hardware's, so callers that promise payloads fix NaN up themselves) */
__device__ __forceinline__ uint16_t lcx_cvt_rn_f16(float x)
{
    uint16_t r;
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(r) : "f"(x));
    return r;
}

#if LCX_CUDA_SM80
/* four 8x8 b16 matrices; lanes 8j..8j+7 give the row addresses of matrix j,
 * register j receives (row lane/4, columns 2 (lane%4), +1) of matrix j */
__device__ __forceinline__ void lcx_ldsm_x4(uint32_t (&r)[4], const uint16_t *smem)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s)
                 : "memory");
}

/* the same four matrices transposed: register j receives (rows 2 (lane%4),
 * +1, column lane/4) of matrix j (a B fragment from a row-major K x N tile) */
__device__ __forceinline__ void lcx_ldsm_x4_trans(uint32_t (&r)[4], const uint16_t *smem)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s)
                 : "memory");
}

/* lo and hi rounded to nearest-even 16-bit values, packed lo | hi << 16
 * (one cvt instruction; PTX puts its first source in the upper half) */
template <int BF16> __device__ __forceinline__ uint32_t lcx_pack2_rn(float lo, float hi)
{
    uint32_t r;
    if constexpr (BF16)
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    else
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/* 2^x in one special-function instruction (ex2.approx: 2 ulp; results
 * below 2^-126 flush to +0; 2^-inf = 0, NaN stays NaN) */
__device__ __forceinline__ float lcx_ex2(float x)
{
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
    return r;
}

/* max(x, y), NaN when either is NaN (fmaxf would drop the NaN) */
__device__ __forceinline__ float lcx_fmax_nan(float x, float y)
{
    float r;
    asm("max.NaN.f32 %0, %1, %2;\n" : "=f"(r) : "f"(x), "f"(y));
    return r;
}

/* d += a b: a 16x16 (row), b 16x8 (col), d 16x8 f32 */
template <int BF16>
__device__ __forceinline__ void lcx_mma16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2])
{
    if constexpr (BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

/* ---- sm_90a: warpgroup MMA (wgmma.mma_async) ----
 *
 * Four warps (a warpgroup: threads 128 w .. 128 w + 127) multiply a 64 x 16
 * tile A by a 16 x N tile B, both read from shared memory through matrix
 * descriptors, into f32 accumulators in registers, asynchronously: the
 * accumulators and the shared tiles belong to the tensor cores from the
 * mma_async until a wgmma.wait_group that covers it.
 *
 * Shared layout used here (PTX ISA, "Shared Memory Matrix Layout", K-major
 * with 128-byte swizzling): a tile row holds 64 16-bit values of the
 * reduction (128 bytes) at row * 128; its 16-byte chunk c is stored at
 * chunk c ^ (row % 8) of the row, the XOR taken on shared-address bits
 * 4-6 against bits 7-9, so tiles start on 1024-byte boundaries (base offset
 * 0). Eight rows make a 1024-byte atom; atoms follow each other (stride
 * byte offset 1024; the leading byte offset is unused for swizzled K-major
 * layouts and set to 1). The k-th 16-wide slice of the reduction starts
 * 32 k bytes into the tile: the hardware applies the swizzle to the
 * address it forms, so a descriptor whose start is advanced by 32 k bytes
 * reads chunks 2k, 2k + 1 of every row.
 *
 * Accumulator layout of m64nNk16 (f32): thread l of warp w of the group
 * holds, for each 8-column block j, d[4j + 2h + e] = D[16 w + l / 4 + 8 h]
 * [8 j + 2 (l % 4) + e]: the mma.sync m16n8 C layout, one per warp. */
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LCX_CUDA_SM90A 1
#else
#define LCX_CUDA_SM90A 0
#endif

#if LCX_CUDA_SM90A
/* descriptor of a 128-byte-swizzled K-major tile at shared address s
 * (1024-byte aligned, plus 32 k for the k-th slice) */
__device__ __forceinline__ uint64_t lcx_wg_desc(uint32_t s)
{
    return (uint64_t)((s & 0x3FFFFu) >> 4) | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 | (uint64_t)1 << 62;
}

/* shared-memory writes of this thread (st.shared, cp.async once waited for)
 * made visible to the async proxy that wgmma reads through; a barrier after
 * it orders them before other threads' wgmma */
__device__ __forceinline__ void lcx_fence_proxy_async()
{
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* before the first mma_async of a batch: orders this warpgroup's earlier
 * register and shared-memory accesses before the tensor cores' */
__device__ __forceinline__ void lcx_wg_arrive() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

__device__ __forceinline__ void lcx_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }

/* wait until at most n of this warpgroup's wgmma groups are pending */
template <int n> __device__ __forceinline__ void lcx_wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(n) : "memory");
}

/* pins the accumulators at this point of the program: the compiler sees
 * each register read and written here, so no access to them moves across
 * the wgmma instructions (which it cannot see) */
template <int NR> __device__ __forceinline__ void lcx_wg_pin(float (&d)[NR])
{
#pragma unroll
    for (int i = 0; i < NR; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

#define LCX_WG_D8(i)                                                                                        \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define LCX_WG_D32(i) LCX_WG_D8(i), LCX_WG_D8(i + 8), LCX_WG_D8(i + 16), LCX_WG_D8(i + 24)

/* d += A B: A 64 x 16 (descriptor da), B 16 x 256 (db, K-major: 256 rows
 * of the reduction), d the 128 f32 accumulators of this thread */
template <int BF16> __device__ __forceinline__ void lcx_wgmma_n256(float (&d)[128], uint64_t da, uint64_t db)
{
    if constexpr (BF16)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
                 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
                 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
                     "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                     : LCX_WG_D32(0), LCX_WG_D32(32), LCX_WG_D32(64), LCX_WG_D32(96)
                     : "l"(da), "l"(db), "r"(1));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
                 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
                 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
                     "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                     : LCX_WG_D32(0), LCX_WG_D32(32), LCX_WG_D32(64), LCX_WG_D32(96)
                     : "l"(da), "l"(db), "r"(1));
}

/* d += A B: A 64 x 16 (da), B 16 x 16 (db, K-major: 16 rows), d the 8 f32
 * accumulators of this thread */
template <int BF16> __device__ __forceinline__ void lcx_wgmma_n16(float (&d)[8], uint64_t da, uint64_t db)
{
    if constexpr (BF16)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 "
                     "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
                     : LCX_WG_D8(0)
                     : "l"(da), "l"(db), "r"(1));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 "
                     "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
                     : LCX_WG_D8(0)
                     : "l"(da), "l"(db), "r"(1));
}
/* the same pins for 32-bit registers: the A fragments of a register-A
 * wgmma, which the tensor cores read until the wait */
template <int NR> __device__ __forceinline__ void lcx_wg_pin(uint32_t (&r)[NR])
{
#pragma unroll
    for (int i = 0; i < NR; i++)
        asm volatile("" : "+r"(r[i])::"memory");
}

#define LCX_WG_L32 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
                   "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define LCX_WG_L64 LCX_WG_L32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
                   "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

/* d += A B with A from registers: A 64 x 16, this thread's fragment a (the
 * mma.sync m16n8k16 A layout on the 16 rows of its warp: a[0] row l / 4,
 * columns 2 (l % 4) + {0, 1}; a[1] row + 8; a[2], a[3] columns + 8), B
 * 16 x N (db, K-major: N rows of the reduction), d the N / 2 f32
 * accumulators. N is 64 or 128. The registers of a must keep their values
 * until the wait (pin them after it) */
template <int N, int BF16>
__device__ __forceinline__ void lcx_wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db)
{
    static_assert(N == 64 || N == 128, "m64n64k16 or m64n128k16");
    if constexpr (N == 64 && BF16)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" LCX_WG_L32
                     "}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                     : LCX_WG_D32(0)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    else if constexpr (N == 64)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" LCX_WG_L32
                     "}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                     : LCX_WG_D32(0)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    else if constexpr (BF16)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" LCX_WG_L64
                     "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                     : LCX_WG_D32(0), LCX_WG_D32(32)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" LCX_WG_L64
                     "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                     : LCX_WG_D32(0), LCX_WG_D32(32)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}
#endif

#endif
