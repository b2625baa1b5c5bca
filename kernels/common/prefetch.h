/*
 * L2 prefetch of a byte range, shared by the direct (decode) attention
 * kernels of every ISA. __builtin_prefetch with locality 2 is PREFETCHT1 on
 * x86-64 and PRFM PLDL2KEEP on AArch64.
 */
#ifndef LCX_PREFETCH_H
#define LCX_PREFETCH_H

#include <stdint.h>

static inline void lcx_pf_bytes(const char *p, int64_t bytes)
{
    /* the empty volatile asm keeps the compiler from deleting a loop whose
     * only effect is the prefetches (GCC does at -O1 and above) */
    for (int64_t b = 0; b < bytes; b += 64) {
        __builtin_prefetch(p + b, 0, 2);
        __asm__ volatile("");
    }
}

#endif
