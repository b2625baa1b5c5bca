/* CPU feature detection, run once per process.
 * x86-64: CPUID for the instruction sets plus XGETBV for the register state
 * the OS saves (YMM for AVX2, opmask/ZMM for AVX-512).
 * AArch64: Advanced SIMD is architectural. */
#include <string.h>
#include <threads.h>

#include "internal/lcx_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

static uint64_t lcx_xgetbv0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static unsigned lcx_detect(char *model, size_t model_len)
{
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return 0;
    const unsigned max_leaf = a;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        size_t n = sizeof r < model_len - 1 ? sizeof r : model_len - 1;
        memcpy(model, r, n);
        model[n] = 0;
    }
    __cpuid(1, a, b, c, d);
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1,
              f16c = (c >> 29) & 1;
    if (!osxsave || !avx || max_leaf < 7)
        return 0;
    const uint64_t xcr0 = lcx_xgetbv0();
    const int ymm_state = (xcr0 & 0x6) == 0x6;     /* SSE + AVX state */
    const int zmm_state = (xcr0 & 0xe6) == 0xe6;   /* + opmask, ZMM_Hi256, Hi16_ZMM */
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned leaf7_max_sub = a;
    const int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1,
              avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (ymm_state && avx2 && fma && f16c)
        f |= LCX_CPU_AVX2;
    if ((f & LCX_CPU_AVX2) && zmm_state && avx512f && avx512dq && avx512bw && avx512vl) {
        f |= LCX_CPU_AVX512;
        if (leaf7_max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if ((a >> 5) & 1)
                f |= LCX_CPU_AVX512BF16;
        }
    }
    return f;
}
#elif defined(__aarch64__)
static unsigned lcx_detect(char *model, size_t model_len)
{
    (void)model;
    (void)model_len;
    return LCX_CPU_NEON;
}
#else
static unsigned lcx_detect(char *model, size_t model_len)
{
    (void)model;
    (void)model_len;
    return 0;
}
#endif

static unsigned lcx_features_once;
static char lcx_model_once[64];
static once_flag lcx_cpu_flag = ONCE_FLAG_INIT;

static void lcx_cpu_init(void)
{
    lcx_features_once = lcx_detect(lcx_model_once, sizeof lcx_model_once);
}

unsigned lcx_cpu_features(void)
{
    call_once(&lcx_cpu_flag, lcx_cpu_init);
    return lcx_features_once;
}

const char *lcx_cpu_model(void)
{
    call_once(&lcx_cpu_flag, lcx_cpu_init);
    return lcx_model_once;
}
