/* ISA names, availability and kernel-table construction. */
#include <string.h>

#include "internal/lcx_internal.h"

static const char *const lcx_isa_names[] = {"auto", "scalar", "avx2", "avx512", "neon"};

const char *lcx_isa_name(lcx_isa isa)
{
    if ((int)isa < 0 || (int)isa >= (int)(sizeof lcx_isa_names / sizeof *lcx_isa_names))
        return "?";
    return lcx_isa_names[isa];
}

lcx_status lcx_isa_from_name(const char *name, lcx_isa *isa)
{
    if (!name || !isa)
        return lcx_fail(LCX_E_INVALID, "isa_from_name: %s is NULL", !name ? "name" : "isa");
    for (int i = 0; i < (int)(sizeof lcx_isa_names / sizeof *lcx_isa_names); i++) {
        if (strcmp(name, lcx_isa_names[i]) == 0) {
            *isa = (lcx_isa)i;
            return LCX_OK;
        }
    }
    return lcx_fail(LCX_E_INVALID, "unknown ISA name '%.32s' (expected scalar, avx2, avx512, neon or auto)",
                    name);
}

int lcx_isa_compiled(lcx_isa isa)
{
    switch (isa) {
    case LCX_ISA_SCALAR: return 1;
#if defined(LCX_HAVE_AVX2)
    case LCX_ISA_AVX2: return 1;
#endif
#if defined(LCX_HAVE_AVX512)
    case LCX_ISA_AVX512: return 1;
#endif
#if defined(LCX_HAVE_NEON)
    case LCX_ISA_NEON: return 1;
#endif
    default: return 0;
    }
}

unsigned lcx_isa_required(lcx_isa isa)
{
    if (!lcx_isa_compiled(isa))
        return ~0u;
    switch (isa) {
    case LCX_ISA_AVX2: return LCX_CPU_AVX2;
    case LCX_ISA_AVX512: return LCX_CPU_AVX2 | LCX_CPU_AVX512;
    case LCX_ISA_NEON: return LCX_CPU_NEON;
    default: return 0;
    }
}

int lcx_isa_supported(lcx_isa isa)
{
    const unsigned req = lcx_isa_required(isa);
    return req != ~0u && (lcx_cpu_features() & req) == req;
}

lcx_isa lcx_isa_best(void)
{
    static const lcx_isa order[] = {LCX_ISA_AVX512, LCX_ISA_AVX2, LCX_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++)
        if (lcx_isa_supported(order[i]))
            return order[i];
    return LCX_ISA_SCALAR;
}

int lcx_cuda_compiled(void)
{
#if defined(LCX_HAVE_CUDA)
    return 1;
#else
    return 0;
#endif
}

void lcx_build_table(lcx_isa isa, unsigned features, lcx_ktable *t)
{
    memset(t, 0, sizeof *t);
    lcx_table_init_scalar(t);
    /* each level overwrites the slots it implements, on top of the level
     * below it (dav1d / BLIS style) */
#if defined(LCX_HAVE_AVX2)
    if (isa == LCX_ISA_AVX2 || isa == LCX_ISA_AVX512)
        lcx_table_init_avx2(t, features);
#endif
#if defined(LCX_HAVE_AVX512)
    if (isa == LCX_ISA_AVX512)
        lcx_table_init_avx512(t, features);
#endif
#if defined(LCX_HAVE_NEON)
    if (isa == LCX_ISA_NEON)
        lcx_table_init_neon(t, features);
#endif
    (void)isa;
    (void)features;
}

int32_t lcx_op_count(void)
{
    return LCX_OP_COUNT;
}

const char *lcx_op_name(int32_t i)
{
    return i >= 0 && i < LCX_OP_COUNT ? lcx_op_names[i] : NULL;
}
