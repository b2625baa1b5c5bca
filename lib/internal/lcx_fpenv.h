/* Private: run kernels under the default floating-point environment.
 * Hardware f16 conversions (F16C, AVX-512, NEON FCVTN/FCVTL) follow the
 * caller's MXCSR / FPCR (flush-to-zero, denormals-are-zero, default-NaN,
 * rounding mode); engines often set FTZ/DAZ. Every driver that calls such
 * kernels brackets each task with these, so results match the scalar
 * reference whatever the caller's settings. Baseline instructions only. */
#ifndef LCX_FPENV_H
#define LCX_FPENV_H

#include <stdint.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
typedef unsigned int lcx_fpenv;
static inline lcx_fpenv lcx_fpenv_enter(void)
{
    const unsigned int old = _mm_getcsr();
    /* round to nearest, no FTZ (bit 15), no DAZ (bit 6), all exceptions masked */
    const unsigned int want = 0x1f80u;
    if (old != want)
        _mm_setcsr(want);
    return old;
}
static inline void lcx_fpenv_leave(lcx_fpenv old)
{
    if (_mm_getcsr() != old)
        _mm_setcsr(old);
}
#elif defined(__aarch64__)
typedef uint64_t lcx_fpenv;
static inline lcx_fpenv lcx_fpenv_enter(void)
{
    uint64_t old;
    __asm__ volatile("mrs %0, fpcr" : "=r"(old));
    /* RMode 0 (nearest), FZ 0, DN 0, AHP 0, FZ16 0; trap enables kept off */
    if (old != 0)
        __asm__ volatile("msr fpcr, %0" : : "r"((uint64_t)0));
    return old;
}
static inline void lcx_fpenv_leave(lcx_fpenv old)
{
    if (old != 0)
        __asm__ volatile("msr fpcr, %0" : : "r"(old));
}
#else
typedef int lcx_fpenv;
static inline lcx_fpenv lcx_fpenv_enter(void) { return 0; }
static inline void lcx_fpenv_leave(lcx_fpenv old) { (void)old; }
#endif

#endif
