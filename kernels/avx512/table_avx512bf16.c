/* Slots served with AVX512-BF16 instructions, installed over the AVX-512
 * table only when CPUID reports AVX512_BF16. */
#include "../ktable.h"

void lcx_table_init_avx512bf16(lcx_ktable *t, unsigned features)
{
    if (!(features & LCX_CPU_AVX512BF16))
        return;
    LCX_KSET(t, convert_f32_bf16, lcx_k_convert_f32_bf16__avx512bf16);
    LCX_KSET(t, rope_rot_neox_x16, lcx_k_rope_rot_neox_x16__avx512bf16);
    LCX_KSET(t, rope_rot_interleaved_x16, lcx_k_rope_rot_interleaved_x16__avx512bf16);
}
