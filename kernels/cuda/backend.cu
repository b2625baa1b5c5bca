/* CUDA backend: device selection, stream ownership, synchronisation and the
 * op -> kernel name list. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.cuh"

static pthread_mutex_t lcx_optin_lock = PTHREAD_MUTEX_INITIALIZER;

cudaError_t lcx_cuda_smem_optin(lcx_cuda_state *s, const void *f, size_t bytes)
{
    if (bytes <= 48 * 1024)
        return cudaSuccess;
    int slot = -1;
    for (int i = 0; i < s->n_optin && slot < 0; i++)
        if (s->optin_fn[i] == f) {
            if (s->optin_bytes[i] >= (int)bytes)
                return cudaSuccess;
            slot = i;
        }
    cudaFuncAttributes fa;
    pthread_mutex_lock(&lcx_optin_lock);
    cudaError_t e = cudaFuncGetAttributes(&fa, f);
    if (e == cudaSuccess && fa.maxDynamicSharedSizeBytes < (int)bytes) {
        e = cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
        fa.maxDynamicSharedSizeBytes = (int)bytes;
    }
    pthread_mutex_unlock(&lcx_optin_lock);
    if (e != cudaSuccess)
        return e;
    if (slot < 0 && s->n_optin < LCX_CUDA_OPTIN_SLOTS)
        slot = s->n_optin++;
    if (slot >= 0) {
        s->optin_fn[slot] = f;
        s->optin_bytes[slot] = fa.maxDynamicSharedSizeBytes;
    }
    return cudaSuccess;
}

namespace {
/* The driver's cuCtxGetCurrent and cuCtxSetCurrent (CUresult is an
 * int-sized enum, CUcontext a pointer), found through the runtime so that
 * the library links no driver library and includes no driver header. */
typedef int (*lcx_cu_ctx_get_fn)(void **ctx);
typedef int (*lcx_cu_ctx_set_fn)(void *ctx);
void *lcx_cu_get, *lcx_cu_set;
int lcx_cu_looked; /* 0: not yet, 1: both found, 2: unavailable */

void *lcx_driver_symbol(const char *name)
{
    void *fn = NULL;
    cudaError_t e = cudaSuccess;
#if CUDART_VERSION >= 12050
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    e = cudaGetDriverEntryPointByVersion(name, &fn, 4000, cudaEnableDefault, &q); /* the CUDA 4.0 ABI */
    if (q != cudaDriverEntryPointSuccess)
        fn = NULL;
#elif CUDART_VERSION >= 12000
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    e = cudaGetDriverEntryPoint(name, &fn, cudaEnableDefault, &q);
    if (q != cudaDriverEntryPointSuccess)
        fn = NULL;
#elif CUDART_VERSION >= 11030
    e = cudaGetDriverEntryPoint(name, &fn, cudaEnableDefault);
#else
    (void)name;
#endif
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* a failed look-up is not an error of the caller's work */
        fn = NULL;
    }
    return fn;
}

/* Looked up on first use; threads that race here find the same pointers
 * (the library is built without thread-safe statics, hence the atomics). */
int lcx_cu_ready()
{
    int st = __atomic_load_n(&lcx_cu_looked, __ATOMIC_ACQUIRE);
    if (st == 0) {
        void *g = lcx_driver_symbol("cuCtxGetCurrent"), *p = lcx_driver_symbol("cuCtxSetCurrent");
        __atomic_store_n(&lcx_cu_get, g, __ATOMIC_RELAXED);
        __atomic_store_n(&lcx_cu_set, p, __ATOMIC_RELAXED);
        st = g && p ? 1 : 2;
        __atomic_store_n(&lcx_cu_looked, st, __ATOMIC_RELEASE);
    }
    return st == 1;
}
} // namespace

int lcx_cuda_current_context(void **ctx)
{
    *ctx = NULL;
    return lcx_cu_ready() &&
           reinterpret_cast<lcx_cu_ctx_get_fn>(__atomic_load_n(&lcx_cu_get, __ATOMIC_RELAXED))(ctx) == 0;
}

void lcx_cuda_restore_context(void *ctx)
{
    void *cur = NULL;
    if (lcx_cuda_current_context(&cur) && cur != ctx)
        (void)reinterpret_cast<lcx_cu_ctx_set_fn>(__atomic_load_n(&lcx_cu_set, __ATOMIC_RELAXED))(ctx);
}

extern "C" lcx_status lcx_cuda_open(int device, void *stream, lcx_cuda_state **out)
{
    int count = 0;
    LCX_CUDA_TRY(cudaGetDeviceCount(&count));
    if (device >= count)
        return lcx_fail(LCX_E_DEVICE, "cuda: device %d requested but %d device(s) present", device,
                        count);
    lcx_device_scope scope(device);
    LCX_CUDA_TRY(scope.err);
    int pools = 0, smem_sm = 0;
    LCX_CUDA_TRY(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
    LCX_CUDA_TRY(cudaDeviceGetAttribute(&smem_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
    lcx_cuda_state *s = (lcx_cuda_state *)calloc(1, sizeof *s);
    if (!s)
        return lcx_fail(LCX_E_NOMEM, "cuda: out of host memory");
    s->device = device;
    s->mempool = pools != 0;
    s->smem_per_sm = smem_sm;
    /* the persistent block: the check word, then the tables 256 bytes in */
    void *blk = NULL;
    lcx_status st = lcx_cuda_status(cudaMalloc(&blk, 256 + LCX_CUDA_TABLE_BYTES), "cudaMalloc");
    if (st != LCX_OK) {
        free(s);
        return st;
    }
    s->check = (unsigned long long *)blk;
    s->tables = (char *)blk + 256;
    if (stream) {
        s->stream = (cudaStream_t)stream;
    } else {
        /* a blocking stream: it orders after work the caller queued on the
         * legacy default stream (cudaMemcpy, cudaMemset, <<<>>> without a
         * stream), so inputs prepared there are ready when ops read them */
        st = lcx_cuda_status(cudaStreamCreate(&s->stream), "cudaStreamCreate");
        if (st != LCX_OK) {
            cudaFree(blk);
            free(s);
            return st;
        }
        s->owns_stream = 1;
    }
    /* warpgroup MMA for the LoRA GEMM and attention prefill: opt-in
     * (LONGCTX_CUDA_WGMMA=1) until it has been run on hardware, and only
     * where the device is a 9.0 and runs the sm_90a code (a build with
     * gpu_sm 90a) */
    const char *wg = getenv("LONGCTX_CUDA_WGMMA");
    if (wg && strcmp(wg, "1") == 0) {
        int major = 0, minor = 0;
        st = lcx_cuda_status(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
                             "cudaDeviceGetAttribute");
        if (st == LCX_OK)
            st = lcx_cuda_status(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
                                 "cudaDeviceGetAttribute");
        if (st == LCX_OK && major == 9 && minor == 0)
            st = lcx_cuda_wgmma_probe(s, &s->wgmma);
        if (st != LCX_OK) {
            lcx_cuda_close(s);
            return st;
        }
    }
    *out = s;
    return LCX_OK;
}

extern "C" void lcx_cuda_close(lcx_cuda_state *s)
{
    if (!s)
        return;
    {
        lcx_device_scope scope(s->device);
        if (s->mempool) {
            if (s->scratch)
                cudaFreeAsync(s->scratch, s->stream);
            for (int i = 0; i < s->n_kept; i++)
                cudaFreeAsync(s->kept[i], s->stream);
        }
        cudaStreamSynchronize(s->stream);
        if (!s->mempool) {
            if (s->scratch)
                cudaFree(s->scratch);
            for (int i = 0; i < s->n_kept; i++)
                cudaFree(s->kept[i]);
        }
        cudaFree(s->check);
        for (int i = 0; i < LCX_CUDA_STAGING_SLOTS; i++)
            if (s->stg[i].p) {
                cudaEventDestroy(s->stg[i].ev);
                cudaFreeHost(s->stg[i].p);
            }
        if (s->owns_stream)
            cudaStreamDestroy(s->stream);
    }
    free(s->kept);
    free(s);
}

lcx_status lcx_cuda_capturing(lcx_cuda_state *s, int *yes)
{
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    LCX_CUDA_TRY(cudaStreamIsCapturing(s->stream, &cs));
    *yes = cs != cudaStreamCaptureStatusNone;
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_sync(lcx_cuda_state *s)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_alloc(lcx_cuda_state *s, size_t bytes, void **out)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaMalloc(out, bytes ? bytes : 1));
    return LCX_OK;
}

extern "C" void lcx_cuda_free(lcx_cuda_state *s, void *p)
{
    if (!p)
        return;
    lcx_device_scope scope(s->device);
    cudaFree(p);
}

extern "C" lcx_status lcx_cuda_copy(lcx_cuda_state *s, void *dst, const void *src, size_t bytes,
                                    int to_device)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes,
                                 to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                 s->stream));
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    return LCX_OK;
}

lcx_status lcx_cuda_scratch(lcx_cuda_state *s, size_t bytes, void **out)
{
    int cap = 0;
    lcx_status st = lcx_cuda_capturing(s, &cap);
    if (st != LCX_OK)
        return st;
    if (bytes <= s->scratch_bytes && s->scratch) {
        s->scratch_captured |= cap;
        *out = s->scratch;
        return LCX_OK;
    }
    if (cap)
        return lcx_fail(LCX_E_UNSUPPORTED,
                        "cuda: the call needs %zu bytes of device scratch, the context holds %zu, and it cannot "
                        "grow while its stream is being captured into a graph: make the same call once before "
                        "capturing", bytes, s->scratch_bytes);
    if (s->scratch) {
        if (s->scratch_captured) {
            /* a captured graph uses the block: kept until the state goes */
            void **k = (void **)realloc(s->kept, ((size_t)s->n_kept + 1) * sizeof *k);
            if (!k)
                return lcx_fail(LCX_E_NOMEM, "cuda: out of host memory");
            s->kept = k;
            s->kept[s->n_kept++] = s->scratch;
        } else if (s->mempool) {
            /* stream-ordered: the old block is released after the work
             * queued on it */
            LCX_CUDA_TRY(cudaFreeAsync(s->scratch, s->stream));
        } else {
            /* cudaFree does not order itself after the stream's work: the
             * work queued on the old block finishes first */
            LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
            LCX_CUDA_TRY(cudaFree(s->scratch));
        }
        s->scratch = NULL;
        s->scratch_bytes = 0;
        s->scratch_captured = 0;
    }
    size_t sz = bytes + (bytes >> 2); /* headroom for the next, slightly larger call */
    sz = sz < bytes ? bytes : (sz + ((size_t)1 << 16) - 1) & ~(((size_t)1 << 16) - 1);
    void *p = NULL;
    if (s->mempool)
        LCX_CUDA_TRY(cudaMallocAsync(&p, sz, s->stream));
    else
        LCX_CUDA_TRY(cudaMalloc(&p, sz));
    s->scratch = p;
    s->scratch_bytes = sz;
    *out = p;
    return LCX_OK;
}

lcx_status lcx_cuda_staging(lcx_cuda_state *s, size_t bytes, void **out)
{
    int cap = 0;
    const lcx_status st = lcx_cuda_capturing(s, &cap);
    if (st != LCX_OK)
        return st;
    if (cap)
        return lcx_fail(LCX_E_UNSUPPORTED,
                        "cuda: the call uploads host arrays through the context's pinned staging buffer, which "
                        "cannot be done while its stream is being captured into a graph (the graph would read the "
                        "buffer when it runs, after later calls have refilled it)");
    const int k = s->stg_next;
    if (s->stg[k].p) {
        if (s->stg[k].used) /* the upload made from this slot a ring ago has been read */
            LCX_CUDA_TRY(cudaEventSynchronize(s->stg[k].ev));
        s->stg[k].used = 0;
        if (bytes > s->stg[k].bytes) {
            cudaEventDestroy(s->stg[k].ev);
            cudaFreeHost(s->stg[k].p);
            s->stg[k].p = NULL;
            s->stg[k].bytes = 0;
        }
    }
    if (!s->stg[k].p) {
        size_t sz = bytes < ((size_t)1 << 14) ? (size_t)1 << 14 : bytes + (bytes >> 2);
        sz = sz < bytes ? bytes : sz;
        void *p = NULL;
        LCX_CUDA_TRY(cudaMallocHost(&p, sz));
        const cudaError_t e = cudaEventCreateWithFlags(&s->stg[k].ev, cudaEventDisableTiming);
        if (e != cudaSuccess) {
            cudaFreeHost(p); /* a slot holds a buffer and its event, or neither */
            return lcx_cuda_status(e, "cudaEventCreateWithFlags");
        }
        s->stg[k].p = p;
        s->stg[k].bytes = sz;
    }
    s->stg_cur = k;
    s->stg_next = (k + 1) % LCX_CUDA_STAGING_SLOTS;
    *out = s->stg[k].p;
    return LCX_OK;
}

lcx_status lcx_cuda_upload(lcx_cuda_state *s, void *dev, size_t bytes)
{
    const int k = s->stg_cur;
    LCX_CUDA_TRY(cudaMemcpyAsync(dev, s->stg[k].p, bytes, cudaMemcpyHostToDevice, s->stream));
    LCX_CUDA_TRY(cudaEventRecord(s->stg[k].ev, s->stream));
    s->stg[k].used = 1;
    return LCX_OK;
}

extern "C" const char *lcx_cuda_kernel_name(const lcx_cuda_state *s, const char *op)
{
    if (s->wgmma && strcmp(op, "gemm_ukr") == 0)
        return "lcx_k_lora_gemm_wgmma__cuda"; /* 16-bit x and W of one dtype on sm_90a */
    if (s->wgmma && strncmp(op, "attn_", 5) == 0)
        return "lcx_k_attention_wgmma__cuda"; /* 16-bit q, k, v, head dim 64 or 128, >= 128 rows a block */
    static const char *const names[][2] = {
        {"convert_f32_bf16", "lcx_k_convert_f32_bf16__cuda"},
        {"convert_bf16_f32", "lcx_k_convert_bf16_f32__cuda"},
        {"convert_f32_f16", "lcx_k_convert_f32_f16__cuda"},
        {"convert_f16_f32", "lcx_k_convert_f16_f32__cuda"},
        {"merge", "lcx_k_merge__cuda"},
        /* LoRA: tensor-core (16-bit x and W) or f32 SIMT tiled GEMM with the
         * low-rank term in f32 */
        {"gemm_ukr", "lcx_k_lora_gemm__cuda"},
        {"row_lse", "lcx_k_row_lse__cuda"},
        /* attention: one fused SIMT kernel (tiles of 32 keys, online softmax)
         * serves the tile products, max and exp of the CPU's blocked loop */
        {"attn_qk", "lcx_k_attention__cuda"},
        {"attn_pv", "lcx_k_attention__cuda"},
        {"attn_max", "lcx_k_attention__cuda"},
        {"attn_exp", "lcx_k_attention__cuda"},
        {"attn_qk_direct", "lcx_k_attention__cuda"},
        {"attn_pv_direct", "lcx_k_attention__cuda"},
        /* one fused kernel forms the angles and rotates every head of a token */
        {"rope_cossin", "lcx_k_rope__cuda"},
        {"rope_cossin_f32", "lcx_k_rope__cuda"},
        {"rope_rot_neox_f32", "lcx_k_rope__cuda"},
        {"rope_rot_interleaved_f32", "lcx_k_rope__cuda"},
        {"rope_rot_neox_x16", "lcx_k_rope__cuda"},
        {"rope_rot_interleaved_x16", "lcx_k_rope__cuda"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(op, names[i][0]) == 0)
            return names[i][1];
    return NULL;
}

namespace {
/* *first = the smallest i < n with v[i] outside [lo, hi] */
__global__ void lcx_first_outside_kernel(const int64_t *v, int64_t n, int64_t lo, int64_t hi,
                                         unsigned long long *first)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (v[i] < lo || v[i] > hi)
            atomicMin(first, (unsigned long long)i);
}
} // namespace

lcx_status lcx_cuda_first_outside(lcx_cuda_state *s, const int64_t *v, int64_t n, int64_t lo, int64_t hi,
                                  int64_t *first_out, int64_t *value, const unsigned long long **guard)
{
    *first_out = -1;
    *guard = NULL;
    int cap = 0;
    lcx_status st = lcx_cuda_capturing(s, &cap);
    if (st != LCX_OK)
        return st;
    LCX_CUDA_TRY(cudaMemsetAsync(s->check, 0xff, sizeof *s->check, s->stream));
    const int threads = 256;
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks > 4096)
        blocks = 4096;
    lcx_first_outside_kernel<<<(unsigned)blocks, threads, 0, s->stream>>>(v, n, lo, hi, s->check);
    if ((st = lcx_cuda_status(cudaGetLastError(), "range check kernel launch")) != LCX_OK)
        return st;
    if (cap) {
        /* a host wait would invalidate the capture: the kernels check */
        *guard = s->check;
        return LCX_OK;
    }
    unsigned long long first = ~0ull;
    LCX_CUDA_TRY(cudaMemcpyAsync(&first, s->check, sizeof first, cudaMemcpyDeviceToHost, s->stream));
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    if (first >= (unsigned long long)n)
        return LCX_OK;
    LCX_CUDA_TRY(cudaMemcpyAsync(value, v + first, sizeof *value, cudaMemcpyDeviceToHost, s->stream));
    LCX_CUDA_TRY(cudaStreamSynchronize(s->stream));
    *first_out = (int64_t)first;
    return LCX_OK;
}

/* ---- for the tests and the bench: streams, copies and graphs outside the
 * ops, and the calling thread's device state ---- */

extern "C" int lcx_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" lcx_status lcx_cuda_thread_state(int *device, int *has_context)
{
    void *ctx = NULL;
    *has_context = lcx_cuda_current_context(&ctx) ? ctx != NULL : -1;
    LCX_CUDA_TRY(cudaGetDevice(device));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_set_device(int device)
{
    LCX_CUDA_TRY(cudaSetDevice(device));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_stream_create(lcx_cuda_state *s, void **stream)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    cudaStream_t st = NULL;
    LCX_CUDA_TRY(cudaStreamCreate(&st));
    *stream = st;
    return LCX_OK;
}

extern "C" void lcx_cuda_stream_destroy(lcx_cuda_state *s, void *stream)
{
    lcx_device_scope scope(s->device);
    cudaStreamDestroy((cudaStream_t)stream);
}

extern "C" lcx_status lcx_cuda_stream_sync(lcx_cuda_state *s, void *stream)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaStreamSynchronize((cudaStream_t)stream));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_copy_async(lcx_cuda_state *s, void *stream, void *dst, const void *src, size_t bytes,
                                          int kind)
{
    static const cudaMemcpyKind kinds[3] = {cudaMemcpyDeviceToHost, cudaMemcpyHostToDevice,
                                            cudaMemcpyDeviceToDevice};
    if (kind < 0 || kind > 2)
        return lcx_fail(LCX_E_INVALID, "cuda: copy kind %d", kind);
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kinds[kind], (cudaStream_t)stream));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_capture_begin(lcx_cuda_state *s)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeGlobal));
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_capture_end(lcx_cuda_state *s, void **graph_exec)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    cudaGraph_t g = NULL;
    LCX_CUDA_TRY(cudaStreamEndCapture(s->stream, &g));
    cudaGraphExec_t x = NULL;
    const cudaError_t e = cudaGraphInstantiateWithFlags(&x, g, 0);
    cudaGraphDestroy(g);
    LCX_CUDA_TRY(e);
    *graph_exec = x;
    return LCX_OK;
}

extern "C" lcx_status lcx_cuda_graph_launch(lcx_cuda_state *s, void *graph_exec)
{
    lcx_device_scope scope(s->device);
    LCX_CUDA_TRY(scope.err);
    LCX_CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)graph_exec, s->stream));
    return LCX_OK;
}

extern "C" void lcx_cuda_graph_destroy(lcx_cuda_state *s, void *graph_exec)
{
    lcx_device_scope scope(s->device);
    cudaGraphExecDestroy((cudaGraphExec_t)graph_exec);
}
