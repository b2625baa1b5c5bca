/* longctx-info: the library version, the machine as longctx sees it, and the
 * kernel serving each op on every ISA this machine runs.
 * LONGCTX_ISA=scalar|avx2|avx512|neon picks the default context's ISA. */
#include <stdio.h>

#include <longctx/longctx.h>

static int print_kernels(lcx_context *ctx)
{
    for (int32_t i = 0; i < lcx_op_count(); i++) {
        const char *k = lcx_context_kernel_name(ctx, lcx_op_name(i));
        printf("  %-20s %s\n", lcx_op_name(i), k ? k : "(none)");
    }
    return 0;
}

int main(void)
{
    printf("longctx %s (header %s)\n", lcx_version_string(), LCX_VERSION_STRING);
    if (lcx_version() >> 16 != LCX_VERSION_MAJOR) {
        fprintf(stderr, "library major version differs from the header's\n");
        return 1;
    }
    lcx_context *ctx;
    lcx_status st = lcx_context_create(NULL, &ctx);
    if (st != LCX_OK) {
        fprintf(stderr, "lcx_context_create: %s: %s\n", lcx_status_string(st), lcx_last_error());
        return st == LCX_E_UNSUPPORTED ? 77 : 1; /* 77: ISA named by LONGCTX_ISA absent */
    }
    lcx_context_info info;
    info.struct_size = sizeof info;
    lcx_context_get_info(ctx, &info);
    printf("cpu:       %s\n", info.cpu_model[0] ? info.cpu_model : "(unknown)");
    printf("topology:  %d package(s), %d NUMA node(s), %d cores, %d hardware threads\n",
           info.n_packages, info.n_numa, info.n_cores, info.n_pus);
    printf("caches:    L1d %lld KiB, L2 %lld KiB, L3 %lld KiB\n", (long long)info.l1d_bytes >> 10,
           (long long)info.l2_bytes >> 10, (long long)info.l3_bytes >> 10);
    printf("threads:   %d%s\n", info.n_threads, info.pinned ? " (pinned)" : "");
    printf("best ISA:  %s; this context: %s\n", lcx_isa_name(lcx_isa_best()), lcx_context_isa_name(ctx));
    printf("compiled:");
    for (int k = LCX_ISA_SCALAR; k <= LCX_ISA_NEON; k++)
        if (lcx_isa_compiled((lcx_isa)k))
            printf(" %s%s", lcx_isa_name((lcx_isa)k), lcx_isa_supported((lcx_isa)k) ? "" : "(not on this CPU)");
    printf("%s\n", lcx_cuda_compiled() ? " cuda" : "");
    printf("kernels (%s):\n", lcx_context_isa_name(ctx));
    print_kernels(ctx);
    lcx_context_destroy(ctx);

    for (int k = LCX_ISA_SCALAR; k <= LCX_ISA_NEON; k++) {
        if (!lcx_isa_supported((lcx_isa)k))
            continue;
        lcx_context_options o;
        lcx_context_options_default(&o);
        o.isa = (lcx_isa)k;
        o.n_threads = 1;
        if (lcx_context_create(&o, &ctx) != LCX_OK)
            return 1;
        printf("kernels (%s):\n", lcx_isa_name((lcx_isa)k));
        print_kernels(ctx);
        lcx_context_destroy(ctx);
    }
    if (lcx_cuda_compiled()) {
        lcx_context_options o;
        lcx_context_options_default(&o);
        o.device = LCX_DEVICE_CUDA;
        st = lcx_context_create(&o, &ctx);
        if (st == LCX_OK) {
            printf("kernels (cuda):\n");
            print_kernels(ctx);
            lcx_context_destroy(ctx);
        } else {
            printf("cuda: no usable device (%s)\n", lcx_last_error());
        }
    }
    return 0;
}
