/* Public core: version, status strings, tensors, context options, ISA
 * choice and refusal, kernel names, topology info. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lcx_test.h"
#include "internal/lcx_internal.h"

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(lcx_version(), LCX_VERSION_NUMBER);
    assert_string_equal(lcx_version_string(), LCX_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", LCX_VERSION_MAJOR, LCX_VERSION_MINOR, LCX_VERSION_PATCH);
    assert_string_equal(buf, LCX_VERSION_STRING);
}

static void test_status_strings(void **state)
{
    (void)state;
    const struct { lcx_status s; const char *name; } codes[] = {
        {LCX_OK, "LCX_OK"}, {LCX_E_INVALID, "LCX_E_INVALID"}, {LCX_E_UNSUPPORTED, "LCX_E_UNSUPPORTED"},
        {LCX_E_NOMEM, "LCX_E_NOMEM"}, {LCX_E_OVERFLOW, "LCX_E_OVERFLOW"}, {LCX_E_DEVICE, "LCX_E_DEVICE"},
        {LCX_E_CALLBACK, "LCX_E_CALLBACK"}, {LCX_E_INTERNAL, "LCX_E_INTERNAL"}};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        const char *s = lcx_status_string(codes[i].s);
        assert_non_null(s);
        if (strncmp(s, codes[i].name, strlen(codes[i].name)) != 0 || s[strlen(codes[i].name)] != ':')
            lcx_fail_msg("status %d named '%s', want prefix '%s:'", (int)codes[i].s, s, codes[i].name);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, lcx_status_string(codes[j].s));
    }
    assert_non_null(strstr(lcx_status_string((lcx_status)-99), "unknown"));
    assert_non_null(strstr(lcx_status_string((lcx_status)5), "unknown"));
    assert_int_equal(lcx_dtype_size(LCX_F32), 4);
    assert_int_equal(lcx_dtype_size(LCX_F16), 2);
    assert_int_equal(lcx_dtype_size(LCX_BF16), 2);
    assert_int_equal(lcx_dtype_size((lcx_dtype)3), 0);
    assert_string_equal(lcx_dtype_name(LCX_BF16), "bf16");
    assert_string_equal(lcx_dtype_name((lcx_dtype)9), "?");
}

/* The thread-local message: each thread sees its own. */
#include <pthread.h>
static void *other_thread(void *arg)
{
    (void)arg;
    lcx_context *ctx;
    lcx_context_create(NULL, NULL);
    (void)ctx;
    return strstr(lcx_last_error(), "out is NULL") ? (void *)1 : NULL;
}

static void test_last_error_thread_local(void **state)
{
    (void)state;
    lcx_tensor t;
    assert_int_equal(lcx_tensor_init(&t, NULL, LCX_F32, 9, (int64_t[]){1}), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "ndim 9"));
    pthread_t th;
    void *ok = NULL;
    assert_int_equal(pthread_create(&th, NULL, other_thread, NULL), 0);
    pthread_join(th, &ok);
    assert_non_null(ok);
    assert_non_null(strstr(lcx_last_error(), "ndim 9")); /* unchanged here */
}

static void test_tensor_helpers(void **state)
{
    (void)state;
    float buf[24];
    lcx_tensor t;
    const int64_t shape[3] = {2, 3, 4};
    assert_int_equal(lcx_tensor_init(&t, buf, LCX_F32, 3, shape), LCX_OK);
    assert_int_equal(t.stride[0], 12);
    assert_int_equal(t.stride[1], 4);
    assert_int_equal(t.stride[2], 1);
    assert_int_equal(lcx_tensor_numel(&t), 24);
    assert_int_equal(lcx_tensor_validate(&t, "t", 1), LCX_OK);
    assert_int_equal(lcx_tensor_init(NULL, buf, LCX_F32, 3, shape), LCX_E_INVALID);
    assert_int_equal(lcx_tensor_init(&t, buf, LCX_F32, 3, NULL), LCX_E_INVALID);
    assert_int_equal(lcx_tensor_init(&t, buf, LCX_F32, 0, shape), LCX_E_INVALID);
    assert_int_equal(lcx_tensor_numel(NULL), 0);
    assert_int_equal(lcx_tensor_validate(NULL, "q", 0), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "q is NULL"));
    /* a broadcast (stride 0) view is a valid input but not a valid output */
    lcx_tensor_init(&t, buf, LCX_F32, 3, shape);
    t.stride[0] = 0;
    assert_int_equal(lcx_tensor_validate(&t, "in", 0), LCX_OK);
    assert_int_equal(lcx_tensor_validate(&t, "out", 1), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "out: stride[0]"));
    /* size-1 dimensions may have any stride, even as outputs */
    const int64_t s1[2] = {1, 5};
    lcx_tensor_init(&t, buf, LCX_F32, 2, s1);
    t.stride[0] = 0;
    assert_int_equal(lcx_tensor_validate(&t, "out", 1), LCX_OK);
    /* permuted but non-overlapping outputs are fine */
    const int64_t s2[3] = {3, 2, 4};
    lcx_tensor_init(&t, buf, LCX_F32, 3, s2);
    t.stride[0] = 4;
    t.stride[1] = 12;
    assert_int_equal(lcx_tensor_validate(&t, "out", 1), LCX_OK);
    /* pointer wrap-around is an overflow */
    const int64_t s3[1] = {1024};
    lcx_tensor_init(&t, (void *)((UINTPTR_MAX - 64) & ~(uintptr_t)15), LCX_F32, 1, s3);
    assert_int_equal(lcx_tensor_validate(&t, "w", 0), LCX_E_OVERFLOW);
}

static lcx_status create_with(const lcx_context_options *o, lcx_context **out)
{
    return lcx_context_create(o, out);
}

/* Every invalid context option: its code, a message, *out untouched. */
static void test_context_bad_options(void **state)
{
    (void)state;
    lcx_context *const sentinel = (lcx_context *)(uintptr_t)0x1234;
    assert_int_equal(lcx_context_create(NULL, NULL), LCX_E_INVALID);
    for (int c = 0;; c++) {
        lcx_context_options o;
        lcx_context_options_default(&o);
        const char *msg = NULL;
        lcx_status want = LCX_E_INVALID;
        switch (c) {
        case 0: o.struct_size = 0; msg = "struct_size"; break;
        case 1: o.struct_size = sizeof o - 8; msg = "struct_size"; break;
        case 2: o.struct_size = sizeof o + 8; msg = "struct_size"; break;
        case 3: o.device = (lcx_device)7; msg = "device"; break;
        case 4: o.isa = (lcx_isa)99; msg = "isa"; break;
        case 5: o.isa = (lcx_isa)-1; msg = "isa"; break;
        case 6: o.n_threads = -1; msg = "n_threads"; break;
        case 7: o.n_threads = 100000; msg = "n_threads"; break;
        case 8: o.pin_threads = 2; msg = "pin_threads"; break;
        case 9: o.pin_threads = 1; o.parallel_for = (lcx_parallel_for_fn)(uintptr_t)1; msg = "pin_threads"; break;
        case 10: o.parallel_for_user = &o; msg = "parallel_for_user"; break;
        case 11: o.device = LCX_DEVICE_CUDA; o.cuda_device = -1; msg = "cuda_device"; break;
        case 12: o.cuda_stream = &o; msg = "CPU context"; break;
        case 13: o.cuda_device = 1; msg = "CPU context"; break;
        default: return;
        }
        lcx_context *ctx = sentinel;
        const lcx_status got = create_with(&o, &ctx);
        if (got != want || ctx != sentinel || !strstr(lcx_last_error(), msg))
            lcx_fail_msg("bad option case %d: got %s, ctx %p, message '%s' (want '%s')", c,
                         lcx_status_string(got), (void *)ctx, lcx_last_error(), msg);
    }
}

static void expect_kernels_of(lcx_context *ctx, lcx_isa isa)
{
    for (int32_t i = 0; i < lcx_op_count(); i++) {
        const char *op = lcx_op_name(i);
        const char *k = lcx_context_kernel_name(ctx, op);
        if (!k)
            lcx_fail_msg("op %s has no kernel: %s", op, lcx_last_error());
        char want[96];
        snprintf(want, sizeof want, "lcx_k_%s__%s", op, lcx_isa_name(isa));
        /* every op of this issue has a kernel on every ISA; AVX-512 may use
         * a sub-variant (…__avx512bf16) */
        if (strncmp(k, want, strlen(want)) != 0)
            lcx_fail_msg("op %s on %s served by %s", op, lcx_isa_name(isa), k);
    }
    assert_null(lcx_context_kernel_name(ctx, "no_such_op"));
    assert_non_null(strstr(lcx_last_error(), "unknown op"));
    assert_null(lcx_context_kernel_name(ctx, NULL));
    assert_null(lcx_context_kernel_name(NULL, "convert_f32_bf16"));
    assert_null(lcx_op_name(-1));
    assert_null(lcx_op_name(lcx_op_count()));
}

/* The ISA under test by option; every other ISA refused or served. */
static void test_isa_override(void **state)
{
    (void)state;
    unsetenv("LONGCTX_ISA");
    for (int i = LCX_ISA_SCALAR; i <= LCX_ISA_NEON; i++) {
        lcx_context_options o;
        lcx_context_options_default(&o);
        o.isa = (lcx_isa)i;
        lcx_context *ctx = NULL;
        const lcx_status st = lcx_context_create(&o, &ctx);
        if (lcx_isa_supported((lcx_isa)i)) {
            assert_int_equal(st, LCX_OK);
            assert_int_equal(lcx_context_isa(ctx), i);
            assert_string_equal(lcx_context_isa_name(ctx), lcx_isa_name((lcx_isa)i));
            expect_kernels_of(ctx, (lcx_isa)i);
            lcx_context_destroy(ctx);
        } else {
            if (st != LCX_E_UNSUPPORTED || ctx != NULL)
                lcx_fail_msg("ISA %s is not available but create returned %s", lcx_isa_name((lcx_isa)i),
                             lcx_status_string(st));
            assert_non_null(strstr(lcx_last_error(), lcx_isa_name((lcx_isa)i)));
        }
    }
    /* auto picks the best */
    lcx_context *ctx;
    assert_int_equal(lcx_context_create(NULL, &ctx), LCX_OK);
    assert_int_equal(lcx_context_isa(ctx), lcx_isa_best());
    lcx_context_destroy(ctx);
    lcx_context_destroy(NULL); /* no-op */
}

/* LONGCTX_ISA overrides auto; the option overrides LONGCTX_ISA. */
static void test_isa_env(void **state)
{
    (void)state;
    lcx_context *ctx = NULL;
    lcx_context_options o;
    lcx_context_options_default(&o);
    const lcx_isa isa = lcx_test_isa == LCX_ISA_AUTO ? lcx_isa_best() : lcx_test_isa;

    setenv("LONGCTX_ISA", lcx_isa_name(isa), 1);
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
    assert_int_equal(lcx_context_isa(ctx), isa);
    lcx_context_destroy(ctx);

    setenv("LONGCTX_ISA", "scalar", 1);
    o.isa = isa;
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
    assert_int_equal(lcx_context_isa(ctx), isa); /* option wins */
    lcx_context_destroy(ctx);
    o.isa = LCX_ISA_AUTO;
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
    assert_int_equal(lcx_context_isa(ctx), LCX_ISA_SCALAR);
    lcx_context_destroy(ctx);

    ctx = NULL;
    setenv("LONGCTX_ISA", "avx9000", 1);
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_E_INVALID);
    assert_non_null(strstr(lcx_last_error(), "LONGCTX_ISA"));
    assert_null(ctx);
    /* an ISA this machine cannot run, named in the environment */
    for (int i = LCX_ISA_SCALAR; i <= LCX_ISA_NEON; i++) {
        if (lcx_isa_supported((lcx_isa)i))
            continue;
        setenv("LONGCTX_ISA", lcx_isa_name((lcx_isa)i), 1);
        assert_int_equal(lcx_context_create(&o, &ctx), LCX_E_UNSUPPORTED);
        assert_non_null(strstr(lcx_last_error(), "LONGCTX_ISA"));
        assert_null(ctx);
    }
    setenv("LONGCTX_ISA", "auto", 1);
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
    assert_int_equal(lcx_context_isa(ctx), lcx_isa_best());
    lcx_context_destroy(ctx);
    unsetenv("LONGCTX_ISA");
    lcx_isa parsed;
    assert_int_equal(lcx_isa_from_name(NULL, &parsed), LCX_E_INVALID);
    assert_int_equal(lcx_isa_from_name("avx2", NULL), LCX_E_INVALID);
    assert_int_equal(lcx_isa_from_name("neon", &parsed), LCX_OK);
    assert_int_equal(parsed, LCX_ISA_NEON);
    assert_string_equal(lcx_isa_name((lcx_isa)42), "?");
}

static void test_cuda_refusal(void **state)
{
    (void)state;
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.device = LCX_DEVICE_CUDA;
    lcx_context *ctx = NULL;
    const lcx_status st = lcx_context_create(&o, &ctx);
    if (!lcx_cuda_compiled()) {
        assert_int_equal(st, LCX_E_UNSUPPORTED);
        assert_non_null(strstr(lcx_last_error(), "CUDA"));
        assert_null(ctx);
    } else if (st != LCX_OK) {
        /* built with CUDA, but no usable device here */
        assert_int_equal(st, LCX_E_DEVICE);
        assert_non_null(strstr(lcx_last_error(), "cuda"));
        assert_null(ctx);
    } else {
        assert_string_equal(lcx_context_isa_name(ctx), "cuda");
        lcx_context_destroy(ctx);
    }
}

static void test_info_and_threads(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(3);
    assert_int_equal(lcx_context_n_threads(ctx), 3);
    lcx_context_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(lcx_context_get_info(ctx, &info), LCX_E_INVALID); /* struct_size 0 */
    info.struct_size = sizeof info;
    assert_int_equal(lcx_context_get_info(ctx, &info), LCX_OK);
    assert_int_equal(info.n_threads, 3);
    assert_true(info.n_cores >= 1);
    assert_true(info.n_pus >= info.n_cores);
    assert_true(info.n_numa >= 1);
    assert_int_equal(info.pinned, 0);
    assert_int_equal(lcx_context_get_info(NULL, &info), LCX_E_INVALID);
    assert_int_equal(lcx_context_synchronize(ctx), LCX_OK);
    assert_int_equal(lcx_context_synchronize(NULL), LCX_E_INVALID);
    lcx_context_destroy(ctx);

    /* default: one thread per physical core; pinning accepted */
    lcx_context_options o;
    lcx_context_options_default(&o);
    o.isa = lcx_test_isa;
    o.pin_threads = 1;
    assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
    assert_int_equal(lcx_context_get_info(ctx, &info), LCX_OK);
    assert_int_equal(info.n_threads, info.n_cores);
    lcx_context_destroy(ctx);
    /* a context is cheap to create and destroy repeatedly (threads joined) */
    for (int i = 0; i < 20; i++) {
        o.n_threads = 1 + i % 4;
        assert_int_equal(lcx_context_create(&o, &ctx), LCX_OK);
        lcx_context_destroy(ctx);
    }
}

/* The pool runs every task exactly once, for any task and thread count,
 * including more threads than tasks, and back-to-back jobs. */
typedef struct pool_probe { _Atomic int *hits; int64_t n; } pool_probe;
static void pool_task(void *arg, int64_t i)
{
    pool_probe *p = arg;
    atomic_fetch_add(&p->hits[i], 1);
}

static void test_pool_runs_each_task_once(void **state)
{
    (void)state;
    const int32_t threads[] = {1, 2, 3, 5, 8};
    const int64_t sizes[] = {0, 1, 2, 3, 7, 64, 1001};
    _Atomic int *hits = calloc(1001, sizeof *hits);
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        lcx_context *ctx = lcx_test_context(threads[t]);
        for (int rep = 0; rep < 50; rep++) {
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
                const int64_t n = sizes[k];
                for (int64_t i = 0; i < n; i++)
                    atomic_store(&hits[i], 0);
                pool_probe p = {hits, n};
                assert_int_equal(lcx_parallel(ctx, n, pool_task, &p), LCX_OK);
                for (int64_t i = 0; i < n; i++)
                    if (atomic_load(&hits[i]) != 1)
                        lcx_fail_msg("threads %d, n %lld: task %lld ran %d times", (int)threads[t],
                                     (long long)n, (long long)i, atomic_load(&hits[i]));
            }
        }
        lcx_context_destroy(ctx);
    }
    free(hits);
}

/* Scratch: aligned, grows on demand, reused (same pointer) when it fits. */
static void test_scratch(void **state)
{
    (void)state;
    lcx_context *ctx = lcx_test_context(1);
    void *a, *b, *c;
    assert_int_equal(lcx_scratch(ctx, 1000, &a), LCX_OK);
    assert_int_equal((uintptr_t)a % 64, 0);
    memset(a, 1, 1000);
    assert_int_equal(lcx_scratch(ctx, 500, &b), LCX_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(lcx_scratch(ctx, 1 << 20, &c), LCX_OK);
    assert_int_equal((uintptr_t)c % 64, 0);
    memset(c, 2, 1 << 20);
    assert_int_equal(lcx_scratch(ctx, 1 << 19, &b), LCX_OK);
    assert_ptr_equal(b, c);
    assert_int_equal(lcx_scratch(ctx, SIZE_MAX - 8, &b), LCX_E_NOMEM);
    lcx_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_last_error_thread_local),
        cmocka_unit_test(test_tensor_helpers),
        cmocka_unit_test(test_context_bad_options),
        cmocka_unit_test(test_isa_override),
        cmocka_unit_test(test_isa_env),
        cmocka_unit_test(test_cuda_refusal),
        cmocka_unit_test(test_info_and_threads),
        cmocka_unit_test(test_pool_runs_each_task_once),
        cmocka_unit_test(test_scratch),
    };
    return lcx_test_run("core", argc, argv, tests, sizeof tests / sizeof *tests);
}
