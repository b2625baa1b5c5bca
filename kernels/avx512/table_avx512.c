/* AVX-512 slots (over the AVX2 table). */
#include "../ktable.h"

void lcx_table_init_avx512(lcx_ktable *t, unsigned features)
{
    LCX_KSET(t, convert_f32_bf16, lcx_k_convert_f32_bf16__avx512);
    LCX_KSET(t, convert_bf16_f32, lcx_k_convert_bf16_f32__avx512);
    LCX_KSET(t, convert_f32_f16, lcx_k_convert_f32_f16__avx512);
    LCX_KSET(t, convert_f16_f32, lcx_k_convert_f16_f32__avx512);
    LCX_KSET(t, bench_fma, lcx_k_bench_fma__avx512);
    LCX_KSET(t, merge, lcx_k_merge__avx512);
    LCX_KSET(t, row_lse, lcx_k_row_lse__avx512);
    LCX_KSET(t, attn_qk, lcx_k_attn_qk__avx512);
    LCX_KSET(t, attn_pv, lcx_k_attn_pv__avx512);
    LCX_KSET(t, attn_exp, lcx_k_attn_exp__avx512);
    LCX_KSET(t, attn_max, lcx_k_attn_max__avx512);
    LCX_KSET(t, attn_qk_direct, lcx_k_attn_qk_direct__avx512);
    LCX_KSET(t, attn_pv_direct, lcx_k_attn_pv_direct__avx512);
    LCX_KSET(t, rope_cossin, lcx_k_rope_cossin__avx512);
    LCX_KSET(t, rope_cossin_f32, lcx_k_rope_cossin_f32__avx512);
    LCX_KSET(t, rope_rot_neox_f32, lcx_k_rope_rot_neox_f32__avx512);
    LCX_KSET(t, rope_rot_interleaved_f32, lcx_k_rope_rot_interleaved_f32__avx512);
    LCX_KSET(t, rope_rot_neox_x16, lcx_k_rope_rot_neox_x16__avx512);
    LCX_KSET(t, rope_rot_interleaved_x16, lcx_k_rope_rot_interleaved_x16__avx512);
    t->bench_fma_lanes = 16;
    t->bench_fma_accs = 12;
    LCX_KSET(t, gemm_ukr, lcx_k_gemm_ukr__avx512);
    LCX_KSET(t, gemm_pack, lcx_k_gemm_pack__avx512);
    LCX_KSET(t, gemm_rows, lcx_k_gemm_rows__avx512);
    t->gemm_mr = 12;
    t->gemm_nr = 32;
    t->gemm_rows_mr = 24;
    t->gemm_rows_nt = 16;
#if defined(LCX_HAVE_AVX512BF16)
    lcx_table_init_avx512bf16(t, features);
#else
    (void)features;
#endif
}
