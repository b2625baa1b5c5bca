/* Contexts: device, ISA, threads, topology, scratch. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hwloc.h>

#include "internal/lcx_internal.h"
#if defined(LCX_HAVE_CUDA)
#include "internal/lcx_cuda.h"
#endif

#define LCX_MAX_THREADS 1024

void lcx_context_info_default(lcx_context_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

void lcx_context_options_default(lcx_context_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->device = LCX_DEVICE_CPU;
    opts->isa = LCX_ISA_AUTO;
    opts->n_threads = 0;
    opts->pin_threads = 0;
    opts->cuda_device = 0;
}

/* Resolve the ISA: option, else LONGCTX_ISA, else the best supported. */
static lcx_status lcx_pick_isa(lcx_isa requested, lcx_isa *out)
{
    lcx_isa isa = requested;
    const char *source = "the isa option";
    if (isa == LCX_ISA_AUTO) {
        const char *env = getenv("LONGCTX_ISA");
        if (env && *env) {
            if (lcx_isa_from_name(env, &isa) != LCX_OK)
                return lcx_fail(LCX_E_INVALID,
                                "context: LONGCTX_ISA='%.32s' is not one of scalar, avx2, avx512, neon, auto",
                                env);
            source = "LONGCTX_ISA";
        }
    }
    if (isa == LCX_ISA_AUTO) {
        *out = lcx_isa_best();
        return LCX_OK;
    }
    if (!lcx_isa_compiled(isa))
        return lcx_fail(LCX_E_UNSUPPORTED, "context: ISA '%s' (from %s) is not compiled into this build",
                        lcx_isa_name(isa), source);
    if (!lcx_isa_supported(isa))
        return lcx_fail(LCX_E_UNSUPPORTED,
                        "context: ISA '%s' (from %s) is not supported by this CPU/OS", lcx_isa_name(isa),
                        source);
    *out = isa;
    return LCX_OK;
}

static int64_t lcx_cache_size(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, 0);
    return o && o->attr ? (int64_t)o->attr->cache.size : 0;
}

static void lcx_fill_topology(lcx_context *ctx)
{
    lcx_context_info *in = &ctx->info;
    const char *model = lcx_cpu_model();
    const char *m = model;
    while (*m == ' ')
        m++;
    snprintf(in->cpu_model, sizeof in->cpu_model, "%s", m);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    in->n_cores = in->n_pus = online > 0 ? (int32_t)online : 1;
    in->n_numa = in->n_packages = 1;
    if (!ctx->topo)
        return;
    hwloc_topology_t t = ctx->topo;
    int v;
    if ((v = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE)) > 0)
        in->n_cores = v;
    if ((v = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU)) > 0)
        in->n_pus = v;
    if ((v = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE)) > 0)
        in->n_numa = v;
    if ((v = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE)) > 0)
        in->n_packages = v;
    in->l1d_bytes = lcx_cache_size(t, HWLOC_OBJ_L1CACHE);
    in->l2_bytes = lcx_cache_size(t, HWLOC_OBJ_L2CACHE);
    in->l3_bytes = lcx_cache_size(t, HWLOC_OBJ_L3CACHE);
    if (!in->cpu_model[0]) {
        hwloc_obj_t pkg = hwloc_get_obj_by_type(t, HWLOC_OBJ_PACKAGE, 0);
        const char *s = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        if (s)
            snprintf(in->cpu_model, sizeof in->cpu_model, "%s", s);
    }
}

lcx_status lcx_context_create(const lcx_context_options *opts, lcx_context **out)
{
    lcx_context_options o;
    lcx_context_options_default(&o);
    if (!out)
        return lcx_fail(LCX_E_INVALID, "context_create: out is NULL");
    if (opts) {
        if (opts->struct_size != sizeof o)
            return lcx_fail(LCX_E_INVALID,
                            "context_create: opts->struct_size %zu is not a size this library knows (%zu)",
                            opts->struct_size, sizeof o);
        o = *opts;
    }
    if (o.device != LCX_DEVICE_CPU && o.device != LCX_DEVICE_CUDA)
        return lcx_fail(LCX_E_INVALID, "context_create: unknown device %d", (int)o.device);
    if ((int)o.isa < LCX_ISA_AUTO || (int)o.isa > LCX_ISA_NEON)
        return lcx_fail(LCX_E_INVALID, "context_create: unknown isa %d", (int)o.isa);
    if (o.n_threads < 0 || o.n_threads > LCX_MAX_THREADS)
        return lcx_fail(LCX_E_INVALID, "context_create: n_threads %" PRId32 " is outside 0..%d",
                        o.n_threads, LCX_MAX_THREADS);
    if (o.pin_threads != 0 && o.pin_threads != 1)
        return lcx_fail(LCX_E_INVALID, "context_create: pin_threads %" PRId32 " must be 0 or 1",
                        o.pin_threads);
    if (o.pin_threads && o.parallel_for)
        return lcx_fail(LCX_E_INVALID,
                        "context_create: pin_threads needs the internal pool, not a parallel_for callback");
    if (!o.parallel_for && o.parallel_for_user)
        return lcx_fail(LCX_E_INVALID, "context_create: parallel_for_user given without parallel_for");
    if (o.device == LCX_DEVICE_CUDA && o.cuda_device < 0)
        return lcx_fail(LCX_E_INVALID, "context_create: cuda_device %" PRId32 " is negative",
                        o.cuda_device);
    if (o.device == LCX_DEVICE_CPU && (o.cuda_device != 0 || o.cuda_stream))
        return lcx_fail(LCX_E_INVALID, "context_create: cuda_device/cuda_stream set on a CPU context");

    lcx_isa isa = LCX_ISA_SCALAR;
    lcx_status st = lcx_pick_isa(o.isa, &isa);
    if (st != LCX_OK)
        return st;
#if !defined(LCX_HAVE_CUDA)
    if (o.device == LCX_DEVICE_CUDA)
        return lcx_fail(LCX_E_UNSUPPORTED, "context_create: this build has no CUDA backend");
#endif

    lcx_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return lcx_fail(LCX_E_NOMEM, "context_create: out of memory");
    ctx->device = o.device;
    ctx->isa = isa;
    ctx->features = lcx_cpu_features();
    lcx_build_table(isa, ctx->features, &ctx->kt);
    ctx->parallel_for = o.parallel_for;
    ctx->parallel_for_user = o.parallel_for_user;
    ctx->info.struct_size = sizeof ctx->info;

    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) == 0) {
        if (hwloc_topology_load(topo) == 0)
            ctx->topo = topo;
        else
            hwloc_topology_destroy(topo);
    }
    lcx_fill_topology(ctx);

    int32_t nt = o.n_threads;
    if (nt == 0)
        nt = ctx->info.n_cores > 0 ? ctx->info.n_cores : 1;
    if (nt > LCX_MAX_THREADS)
        nt = LCX_MAX_THREADS;
    if (o.device == LCX_DEVICE_CUDA)
        nt = 1; /* host side of a CUDA context runs on the caller's thread */
    ctx->n_threads = nt;
    ctx->info.n_threads = nt;
    if (nt > 1 && !o.parallel_for && o.device == LCX_DEVICE_CPU) {
        st = lcx_pool_create(nt, ctx->topo, o.pin_threads, &ctx->pool);
        if (st != LCX_OK) {
            lcx_context_destroy(ctx);
            return st;
        }
        ctx->pinned = o.pin_threads && lcx_pool_pinned(ctx->pool);
    }
    ctx->info.pinned = ctx->pinned;

    if (o.device == LCX_DEVICE_CUDA) {
#if defined(LCX_HAVE_CUDA)
        st = lcx_cuda_open(o.cuda_device, o.cuda_stream, &ctx->cuda);
        if (st != LCX_OK) {
            lcx_context_destroy(ctx);
            return st;
        }
        for (int i = 0; i < LCX_OP_COUNT; i++)
            ctx->cuda_impl[i] = lcx_cuda_kernel_name(ctx->cuda, lcx_op_names[i]);
#endif
    }
    *out = ctx;
    return LCX_OK;
}

void lcx_context_destroy(lcx_context *ctx)
{
    if (!ctx)
        return;
#if defined(LCX_HAVE_CUDA)
    if (ctx->cuda)
        lcx_cuda_close(ctx->cuda);
#endif
    lcx_pool_destroy(ctx->pool);
    if (ctx->topo)
        hwloc_topology_destroy(ctx->topo);
    free(ctx->scratch);
    free(ctx);
}

lcx_status lcx_check_ctx(const lcx_context *ctx, const char *op)
{
    if (!ctx)
        return lcx_fail(LCX_E_INVALID, "%s: ctx is NULL", op);
    return LCX_OK;
}

const char *lcx_context_isa_name(const lcx_context *ctx)
{
    if (!ctx)
        return "?";
    return ctx->device == LCX_DEVICE_CUDA ? "cuda" : lcx_isa_name(ctx->isa);
}

lcx_isa lcx_context_isa(const lcx_context *ctx)
{
    return ctx ? ctx->isa : LCX_ISA_AUTO;
}

lcx_device lcx_context_device(const lcx_context *ctx)
{
    return ctx ? ctx->device : LCX_DEVICE_CPU;
}

int32_t lcx_context_n_threads(const lcx_context *ctx)
{
    return ctx ? ctx->n_threads : 0;
}

const char *lcx_context_kernel_name(const lcx_context *ctx, const char *op)
{
    if (!ctx || !op) {
        lcx_fail(LCX_E_INVALID, "context_kernel_name: %s is NULL", !ctx ? "ctx" : "op");
        return NULL;
    }
    for (int i = 0; i < LCX_OP_COUNT; i++) {
        if (strcmp(op, lcx_op_names[i]) != 0)
            continue;
        const char *name = ctx->device == LCX_DEVICE_CUDA ? ctx->cuda_impl[i] : ctx->kt.impl[i];
        if (!name)
            lcx_fail(LCX_E_UNSUPPORTED, "context_kernel_name: op '%s' has no kernel on %s", op,
                     lcx_context_isa_name(ctx));
        return name;
    }
    lcx_fail(LCX_E_INVALID, "context_kernel_name: unknown op '%.64s'", op);
    return NULL;
}

lcx_status lcx_context_get_info(const lcx_context *ctx, lcx_context_info *info)
{
    if (!ctx || !info)
        return lcx_fail(LCX_E_INVALID, "context_get_info: %s is NULL", !ctx ? "ctx" : "info");
    if (info->struct_size != sizeof *info)
        return lcx_fail(LCX_E_INVALID,
                        "context_get_info: info->struct_size %zu is not a size this library knows (%zu)",
                        info->struct_size, sizeof *info);
    *info = ctx->info;
    return LCX_OK;
}

lcx_status lcx_context_synchronize(lcx_context *ctx)
{
    lcx_status st = lcx_check_ctx(ctx, "context_synchronize");
    if (st != LCX_OK)
        return st;
#if defined(LCX_HAVE_CUDA)
    if (ctx->device == LCX_DEVICE_CUDA)
        return lcx_cuda_sync(ctx->cuda);
#endif
    return LCX_OK;
}

/* ---- parallel loops ---- */

lcx_status lcx_parallel(lcx_context *ctx, int64_t n, lcx_task_fn fn, void *arg)
{
    if (n <= 0)
        return LCX_OK;
    if (ctx->parallel_for && n > 1) {
        if (ctx->parallel_for(ctx->parallel_for_user, n, fn, arg) != 0)
            return lcx_fail(LCX_E_CALLBACK, "parallel_for callback returned an error");
        return LCX_OK;
    }
    if (!ctx->pool || n == 1) {
        for (int64_t i = 0; i < n; i++)
            fn(arg, i);
        return LCX_OK;
    }
    lcx_pool_run(ctx->pool, n, fn, arg);
    return LCX_OK;
}

lcx_status lcx_scratch(lcx_context *ctx, size_t bytes, void **out)
{
    if (bytes <= ctx->scratch_size) {
        *out = ctx->scratch;
        return LCX_OK;
    }
    size_t sz = bytes + (bytes >> 2); /* grow with headroom */
    sz = (sz + 4095) & ~(size_t)4095;
    void *p = NULL;
    if (sz < bytes || posix_memalign(&p, 64, sz) != 0)
        return lcx_fail(LCX_E_NOMEM, "scratch: cannot allocate %zu bytes", bytes);
    free(ctx->scratch);
    ctx->scratch = p;
    ctx->scratch_size = sz;
    *out = p;
    return LCX_OK;
}
