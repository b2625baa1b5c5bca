/* CUDA suite: every CUDA op against the CPU scalar reference on the same
 * inputs. Exits 77 (skipped) in a build without CUDA or without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "internal/lcx_internal.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"

static lcx_context *gpu, *cpu;

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (lcx_cuda_alloc(gpu->cuda, bytes, &p) != LCX_OK)
        lcx_fail_msg("cudaMalloc: %s", lcx_last_error());
    return p;
}
static void to_dev(void *d, const void *h, size_t bytes)
{
    if (lcx_cuda_copy(gpu->cuda, d, h, bytes, 1) != LCX_OK)
        lcx_fail_msg("copy to device: %s", lcx_last_error());
}
static void to_host(void *h, const void *d, size_t bytes)
{
    if (lcx_cuda_copy(gpu->cuda, h, d, bytes, 0) != LCX_OK)
        lcx_fail_msg("copy to host: %s", lcx_last_error());
}

/* Random views (padded strides, 1-4 dims, every dtype pair, poisoned
 * outputs): the GPU result must equal the CPU scalar result byte for byte,
 * padding included. */
static void test_cuda_convert_vs_scalar(void **state)
{
    (void)state;
    static const lcx_dtype dts[3] = {LCX_F32, LCX_F16, LCX_BF16};
    lcx_rng rng;
    lcx_rng_seed(&rng, lcx_test_seed, 11);
    for (int iter = 0; iter < 90; iter++) {
        const lcx_dtype sd = dts[iter % 3], dd = dts[(iter / 3) % 3];
        const int nd = (int)lcx_rng_range(&rng, 1, 4);
        lcx_tensor ts = {0}, td = {0};
        ts.dtype = sd;
        td.dtype = dd;
        ts.ndim = td.ndim = nd;
        int64_t sspan = 1, dspan = 1;
        for (int d = nd - 1; d >= 0; d--) {
            const int64_t n = lcx_rng_range(&rng, 1, d == nd - 1 ? (iter < 10 ? 100000 : 300) : 6);
            ts.shape[d] = td.shape[d] = n;
            ts.stride[d] = d == nd - 1 ? 1 : sspan + lcx_rng_range(&rng, 0, 3);
            td.stride[d] = d == nd - 1 ? 1 : dspan + lcx_rng_range(&rng, 0, 3);
            sspan = ts.stride[d] * n;
            dspan = td.stride[d] * n;
        }
        const size_t sb = (size_t)sspan * lcx_dtype_size(sd), db = (size_t)dspan * lcx_dtype_size(dd);
        unsigned char *hs = malloc(sb), *hc = malloc(db), *hg = malloc(db);
        for (size_t i = 0; i < sb; i++)
            hs[i] = (unsigned char)lcx_rng_u32(&rng);
        memset(hc, 0xCD, db);
        void *ds = dev_alloc(sb), *dd_ = dev_alloc(db);
        to_dev(ds, hs, sb);
        to_dev(dd_, hc, db);
        ts.data = hs;
        td.data = hc;
        assert_int_equal(lcx_convert(cpu, &ts, &td), LCX_OK);
        ts.data = ds;
        td.data = dd_;
        if (lcx_convert(gpu, &ts, &td) != LCX_OK)
            lcx_fail_msg("cuda convert: %s", lcx_last_error());
        assert_int_equal(lcx_context_synchronize(gpu), LCX_OK);
        to_host(hg, dd_, db);
        lcx_expect_bytes_equal(hg, hc, db, "cuda vs scalar convert");
        lcx_cuda_free(gpu->cuda, ds);
        lcx_cuda_free(gpu->cuda, dd_);
        free(hs);
        free(hc);
        free(hg);
    }
}

static void test_cuda_bad_input(void **state)
{
    (void)state;
    float *d = dev_alloc(64 * 4);
    uint16_t *e = dev_alloc(64 * 2);
    lcx_tensor t, u;
    const int64_t shape[1] = {64};
    lcx_tensor_init(&t, d, LCX_F32, 1, shape);
    lcx_tensor_init(&u, e, LCX_BF16, 1, shape);
    u.shape[0] = 63;
    assert_int_equal(lcx_convert(gpu, &t, &u), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "shape"));
    u = t;
    assert_int_equal(lcx_convert(gpu, &t, &u), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "overlap"));
    lcx_cuda_free(gpu->cuda, e);
    assert_non_null(lcx_context_kernel_name(gpu, "convert_f32_bf16"));
    assert_null(lcx_context_kernel_name(gpu, "bench_fma"));
    lcx_cuda_free(gpu->cuda, d);
}

static int setup(void **state)
{
    (void)state;
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.isa = LCX_ISA_SCALAR;
    if (lcx_context_create(&o, &cpu) != LCX_OK)
        return -1;
    o.device = LCX_DEVICE_CUDA;
    o.isa = LCX_ISA_AUTO;
    return lcx_context_create(&o, &gpu) == LCX_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    lcx_context_destroy(gpu);
    lcx_context_destroy(cpu);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    lcx_context *probe = NULL;
    const lcx_status st = lcx_context_create(&o, &probe);
    if (st == LCX_E_DEVICE) {
        printf("cuda: SKIP (no usable GPU: %s)\n", lcx_last_error());
        return 77;
    }
    if (st != LCX_OK) {
        fprintf(stderr, "cuda: context creation failed: %s: %s\n", lcx_status_string(st),
                lcx_last_error());
        return 1;
    }
    lcx_context_destroy(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_convert_vs_scalar),
        cmocka_unit_test(test_cuda_bad_input),
    };
    char *args[2] = {argv[0], "auto"};
    if (setup(NULL) != 0) {
        fprintf(stderr, "cuda: context creation failed: %s\n", lcx_last_error());
        return 1;
    }
    const int rc = lcx_test_run("cuda", 2, args, tests, sizeof tests / sizeof *tests);
    teardown(NULL);
    return rc;
}
#else
int main(void)
{
    printf("cuda: SKIP (built without CUDA)\n");
    return 77;
}
#endif
