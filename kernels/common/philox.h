/*
 * Philox4x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011), shared by the CPU stream (lib/positions.c) and the CUDA samplers
 * (kernels/cuda/positions.cu) so both draw the same numbers. Only static
 * inline helpers live here.
 */
#ifndef LCX_PHILOX_H
#define LCX_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#  define LCX_PHILOX_HD __host__ __device__
#else
#  define LCX_PHILOX_HD
#endif

#define LCX_PHILOX_M0 0xD2511F53u
#define LCX_PHILOX_M1 0xCD9E8D57u
#define LCX_PHILOX_W0 0x9E3779B9u
#define LCX_PHILOX_W1 0xBB67AE85u

/* One block: `rounds` rounds of counter c under key k (10 for Philox4x32-10). */
LCX_PHILOX_HD static inline void lcx_philox4x32_block(const uint32_t c_in[4], const uint32_t k_in[2], int rounds,
                                                      uint32_t out[4])
{
    uint32_t c0 = c_in[0], c1 = c_in[1], c2 = c_in[2], c3 = c_in[3];
    uint32_t k0 = k_in[0], k1 = k_in[1];
    for (int r = 0; r < rounds; r++) {
        if (r) {
            k0 += LCX_PHILOX_W0;
            k1 += LCX_PHILOX_W1;
        }
        const uint64_t p0 = (uint64_t)LCX_PHILOX_M0 * c0, p1 = (uint64_t)LCX_PHILOX_M1 * c2;
        const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

#endif
