/* Fill every slot with its scalar kernel. The X-macro makes a missing scalar
 * kernel a link error, so no slot can ever be empty. */
#include "../ktable.h"

const char *const lcx_op_names[LCX_OP_COUNT] = {
#define LCX_OP(name, ret, params) #name,
#include "../ops.def"
#undef LCX_OP
};

void lcx_table_init_scalar(lcx_ktable *t)
{
#define LCX_OP(name, ret, params) LCX_KSET(t, name, lcx_k_##name##__scalar);
#include "../ops.def"
#undef LCX_OP
    t->bench_fma_lanes = 1;
    t->bench_fma_accs = 8;
    t->gemm_mr = 4;
    t->gemm_nr = 8;
    t->gemm_rows_mr = 4;
    t->gemm_rows_nt = 4;
}
