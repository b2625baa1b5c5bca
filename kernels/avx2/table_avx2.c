/* AVX2 slots (over the scalar table). */
#include "../ktable.h"

void lcx_table_init_avx2(lcx_ktable *t, unsigned features)
{
    (void)features;
    LCX_KSET(t, convert_f32_bf16, lcx_k_convert_f32_bf16__avx2);
    LCX_KSET(t, convert_bf16_f32, lcx_k_convert_bf16_f32__avx2);
    LCX_KSET(t, convert_f32_f16, lcx_k_convert_f32_f16__avx2);
    LCX_KSET(t, convert_f16_f32, lcx_k_convert_f16_f32__avx2);
    LCX_KSET(t, bench_fma, lcx_k_bench_fma__avx2);
    LCX_KSET(t, merge, lcx_k_merge__avx2);
    LCX_KSET(t, row_lse, lcx_k_row_lse__avx2);
    LCX_KSET(t, attn_qk, lcx_k_attn_qk__avx2);
    LCX_KSET(t, attn_pv, lcx_k_attn_pv__avx2);
    LCX_KSET(t, attn_exp, lcx_k_attn_exp__avx2);
    LCX_KSET(t, attn_max, lcx_k_attn_max__avx2);
    LCX_KSET(t, attn_qk_direct, lcx_k_attn_qk_direct__avx2);
    LCX_KSET(t, attn_pv_direct, lcx_k_attn_pv_direct__avx2);
    LCX_KSET(t, rope_cossin, lcx_k_rope_cossin__avx2);
    LCX_KSET(t, rope_cossin_f32, lcx_k_rope_cossin_f32__avx2);
    LCX_KSET(t, rope_rot_neox_f32, lcx_k_rope_rot_neox_f32__avx2);
    LCX_KSET(t, rope_rot_interleaved_f32, lcx_k_rope_rot_interleaved_f32__avx2);
    LCX_KSET(t, rope_rot_neox_x16, lcx_k_rope_rot_neox_x16__avx2);
    LCX_KSET(t, rope_rot_interleaved_x16, lcx_k_rope_rot_interleaved_x16__avx2);
    t->bench_fma_lanes = 8;
    t->bench_fma_accs = 12;
    LCX_KSET(t, gemm_ukr, lcx_k_gemm_ukr__avx2);
    LCX_KSET(t, gemm_pack, lcx_k_gemm_pack__avx2);
    LCX_KSET(t, gemm_rows, lcx_k_gemm_rows__avx2);
    t->gemm_mr = 6;
    t->gemm_nr = 16;
    t->gemm_rows_mr = 12;
    t->gemm_rows_nt = 8;
}
