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

#endif
