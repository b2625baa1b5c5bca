/* A CPU emulation of the CUDA runtime and device, enough to run every .cu
 * file of kernels/cuda and tests/test_cuda.c on a machine without a GPU
 * (tools/cuda_emu/run.sh). It checks the kernels' logic, barriers and
 * shared-memory use; it is not a substitute for a run on hardware (blocks
 * run one after another, device math is glibc's within CUDA's documented
 * error bounds, no timing, one device).
 *  - "device" memory is host memory kept PROT_NONE outside kernels and
 *    stream operations (a host access faults);
 *  - one in-order queue serves every stream: kernel launches, async copies,
 *    memsets, stream-ordered frees and event records are DEFERRED until a
 *    synchronising call (stream/event/device synchronize, cudaMemcpy,
 *    cudaFree, a copy to pageable host memory), so a host read of a result
 *    before the sync, or a reuse of a pinned buffer before its copy ran, is
 *    observable; pageable host -> device copies snapshot the source at the
 *    call (CUDA's staging);
 *  - each CUDA thread is a host thread; blocks of a grid run one after
 *    another; __syncthreads is a block barrier that threads leave when they
 *    exit (a barrier completed with exited threads is reported), with a
 *    deadlock timeout and a check that all threads meet at the same
 *    __syncthreads; warp collectives (shuffles, any, ldmatrix, mma) are
 *    exchanges through a per-warp barrier, refused unless all 32 lanes are
 *    live and at the same source line;
 *  - __shared__ variables and dynamic shared memory are poisoned (byte
 *    EMU_POISON, default 0xff) before every block; static + dynamic shared
 *    memory is checked against the opt-in limit and > 48 KiB dynamic against
 *    cudaFuncSetAttribute;
 *  - launch configuration errors (zero grid, > 1024 threads, grid y/z >
 *    65535) are reported through cudaGetLastError as on a GPU;
 *  - kernel arguments are scanned for pointers into mapped host memory that
 *    is neither pinned nor device memory (warning);
 *  - cp.async copies are deferred to cp.async.wait_group (the destination
 *    holds the poison byte from the issue until then); ldmatrix and
 *    mma.sync m16n8k16 are emulated from the PTX fragment layouts;
 *  - EMU_ULP=1 perturbs expf/logf/tanhf/sincosf/log and ex2.approx results by up to the
 *    CUDA documented maximum ulp error (random sign and size);
 *  - EMU_NO_MEMPOOL=1 emulates a device without memory pools
 *    (cudaDevAttrMemoryPoolsSupported 0, cudaMallocAsync/cudaFreeAsync fail);
 *  - stream capture: between cudaStreamBeginCapture and EndCapture the work
 *    queued on any stream is recorded into the graph instead of the queue
 *    (one queue serves every stream), cudaGraphLaunch queues it again; a
 *    host wait, cudaMalloc/cudaFree/cudaMallocHost or a copy from pageable
 *    memory during capture aborts (it would invalidate a global-mode capture
 *    or is not emulated);
 *  - a per-thread current context (cuCtxGetCurrent / cuCtxSetCurrent
 *    through cudaGetDriverEntryPointByVersion): a thread starts without one,
 *    cudaSetDevice and any queued work bind the (single) device's primary
 *    context, as the runtime does. */
#pragma once
#include <atomic>
#include <chrono>
#include <cmath>
#include <cfloat>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct emu_uint3 { unsigned x, y, z; };
inline thread_local emu_uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

template <class T> inline T emu_ld(const void *p)
{
    if ((uintptr_t)p % alignof(T)) { fprintf(stderr, "emu: misaligned %zu-byte vector load at %p\n", sizeof(T), p); abort(); }
    T r;
    memcpy(&r, p, sizeof r);
    return r;
}
inline void emu_generic_write(const void *p, size_t n);
template <class T> inline void emu_st(void *p, const T &v)
{
    if ((uintptr_t)p % alignof(T)) { fprintf(stderr, "emu: misaligned %zu-byte vector store at %p\n", sizeof(T), p); abort(); }
    memcpy(p, &v, sizeof v);
    emu_generic_write(p, sizeof v);
}

/* ---- arithmetic intrinsics (volatile: no contraction, no reassociation) ---- */
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
inline float __double2float_rn(double a) { volatile float r = (float)a; return r; }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b)
{
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline size_t __cvta_generic_to_shared(const void *p) { return (size_t)p; }
inline size_t __cvta_generic_to_global(const void *p) { return (size_t)p; }
inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v)
{
    unsigned long long o = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (v < o && !__atomic_compare_exchange_n(p, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return o;
}

/* device math with the documented worst-case error (EMU_ULP=1) */
inline int emu_ulp_on() { static int on = getenv("EMU_ULP") && atoi(getenv("EMU_ULP")); return on; }
inline thread_local uint64_t emu_rs = 0x9e3779b97f4a7c15ull;
inline int emu_rand_ulp(int max)
{
    emu_rs ^= emu_rs << 13; emu_rs ^= emu_rs >> 7; emu_rs ^= emu_rs << 17;
    return (int)(emu_rs % (uint64_t)(2 * max + 1)) - max;
}
/* deterministic in the input, as the device functions are */
inline int emu_hash_ulp(uint64_t x, int max)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return (int)(x % (uint64_t)(2 * max + 1)) - max;
}
inline float emu_pf(float r, int max, uint64_t in)
{
    if (!emu_ulp_on() || !std::isfinite(r) || r == 0) return r;
    int k = emu_hash_ulp(in, max);
    for (; k > 0; k--) r = nextafterf(r, INFINITY);
    for (; k < 0; k++) r = nextafterf(r, -INFINITY);
    return r;
}
inline double emu_pd(double r, int max, uint64_t in)
{
    if (!emu_ulp_on() || !std::isfinite(r) || r == 0) return r;
    int k = emu_hash_ulp(in, max);
    for (; k > 0; k--) r = nextafter(r, INFINITY);
    for (; k < 0; k++) r = nextafter(r, -INFINITY);
    return r;
}
inline uint64_t emu_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
inline uint64_t emu_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
inline float emu_expf(float x) { return emu_pf(::expf(x), 2, emu_bits(x) * 3 + 1); }
/* ex2.approx.ftz.f32: 2 ulp, subnormal results flushed to +0 */
inline float emu_ex2(float x)
{
    const float r = emu_pf(::exp2f(x), 2, emu_bits(x) * 3 + 7);
    return r < FLT_MIN ? 0.0f : r;
}
/* max.NaN.f32: NaN if either operand is NaN */
inline float emu_fmax_nan(float a, float b) { return a != a || b != b ? NAN : ::fmaxf(a, b); }
inline float emu_logf(float x) { return emu_pf(::logf(x), 1, emu_bits(x) * 3 + 2); }
inline float emu_tanhf(float x) { float r = emu_pf(::tanhf(x), 2, emu_bits(x) * 5 + 3); return r > 1 ? 1 : r < -1 ? -1 : r; }
inline double emu_log(double x) { return emu_pd(::log(x), 1, emu_bits(x) * 7 + 4); }
inline void emu_sincosf(float x, float *s, float *c)
{
    float ss, cc;
    ::sincosf(x, &ss, &cc);
    ss = emu_pf(ss, 2, emu_bits(x) * 11 + 5);
    cc = emu_pf(cc, 2, emu_bits(x) * 13 + 6);
    *s = ss > 1 ? 1 : ss < -1 ? -1 : ss;
    *c = cc > 1 ? 1 : cc < -1 ? -1 : cc;
}


/* ---- fibers: the threads of a block as coroutines on one host thread
 * (default; EMU_THREADS=1 or a TSan build uses one host thread per CUDA
 * thread). Fibers switch only at barriers and warp collectives; the order
 * in which they run each phase is EMU_SCHED: 0 forward, 1 reverse, 2 random. */
extern "C" void emu_ctx_switch(void **save_sp, void *to_sp);
struct emu_bar;
struct emu_tstate;
struct emu_fiber {
    void *sp = nullptr;
    char *stack = nullptr;
    int done = 0;
    emu_bar *wbar = nullptr;
    unsigned long wgen = 0;
    int tid = 0;
};
inline int emu_fibers()
{
#if defined(__SANITIZE_THREAD__)
    return 0;
#else
    static int v = !(getenv("EMU_THREADS") && atoi(getenv("EMU_THREADS")));
    return v;
#endif
}
inline void *emu_sched_sp;
inline emu_fiber *emu_cur_fiber;
inline void emu_yield() { emu_ctx_switch(&emu_cur_fiber->sp, emu_sched_sp); }

/* ---- barriers ---- */
inline std::atomic<int> &emu_exit_warned() { static std::atomic<int> w{0}; return w; }
struct emu_bar {
    std::mutex mu;
    std::condition_variable cv;
    int expected = 0, arrived = 0, full = 0, first_line = 0, mismatch = 0;
    unsigned long gen = 0;
    std::atomic<int> orv[2] = {0, 0};
    const char *what = "barrier";
    void reset(int n) { expected = full = n; arrived = 0; }
    void release()
    {
        if (expected < full && !emu_exit_warned().exchange(1))
            fprintf(stderr, "emu: WARNING %s completed after %d of %d threads exited (undefined in CUDA)\n", what,
                    full - expected, full);
        if (mismatch) {
            fprintf(stderr, "emu: %s reached at different source lines (divergent)\n", what);
            abort();
        }
        arrived = 0;
        orv[(gen + 1) & 1].store(0); /* every thread has read the previous OR of that parity */
        gen++;
        cv.notify_all();
    }
    void wait(int line)
    {
        if (emu_fibers()) {
            const unsigned long g = gen;
            if (arrived == 0) { first_line = line; mismatch = 0; }
            else if (line != first_line) mismatch = 1;
            if (++arrived == expected) { release(); return; }
            emu_cur_fiber->wbar = this;
            emu_cur_fiber->wgen = g;
            emu_yield();
            return;
        }
        std::unique_lock<std::mutex> l(mu);
        const unsigned long g = gen;
        if (arrived == 0) { first_line = line; mismatch = 0; }
        else if (line != first_line) mismatch = 1;
        if (++arrived == expected) { release(); return; }
        if (!cv.wait_for(l, std::chrono::seconds(120), [&] { return gen != g; })) {
            fprintf(stderr, "emu: %s deadlock at line %d (%d of %d arrived): divergent barrier?\n", what, line,
                    arrived, expected);
            abort();
        }
    }
    /* __syncthreads_or: the barrier, then the OR of every thread's p */
    int wait_or(int line, int p)
    {
        unsigned long g;
        if (emu_fibers())
            g = gen;
        else {
            std::lock_guard<std::mutex> l(mu);
            g = gen;
        }
        orv[g & 1].fetch_or(p != 0);
        wait(line);
        return orv[g & 1].load();
    }
    void drop()
    {
        if (emu_fibers()) {
            expected--;
            if (arrived > 0 && arrived == expected) release();
            return;
        }
        std::lock_guard<std::mutex> l(mu);
        expected--;
        if (arrived > 0 && arrived == expected) release();
    }
};

/* ---- memory ---- */
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9 };
typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3 };
#define cudaEventDisableTiming 2
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76,
                      cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };

/* memory pools, stream capture, driver entry points and contexts */
#ifndef CUDART_VERSION
#define CUDART_VERSION 12080
#endif
enum { cudaErrorIllegalState = 401, cudaErrorNotReady = 600, cudaErrorNotSupported = 801,
       cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901 };
constexpr cudaDeviceAttr cudaDevAttrMemoryPoolsSupported = (cudaDeviceAttr)115;
inline int emu_no_mempool() { static int v = getenv("EMU_NO_MEMPOOL") && atoi(getenv("EMU_NO_MEMPOOL")); return v; }
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1,
                               cudaStreamCaptureStatusInvalidated = 2 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
struct emu_graph { std::vector<std::function<void()>> ops; };
typedef emu_graph *cudaGraph_t;
typedef emu_graph *cudaGraphExec_t;
inline cudaStream_t &emu_capturing() { static cudaStream_t s = nullptr; return s; }
inline std::vector<std::function<void()>> &emu_capture_ops() { static std::vector<std::function<void()>> v; return v; }
inline void emu_no_capture(const char *what)
{
    if (emu_capturing()) { fprintf(stderr, "emu: %s during stream capture\n", what); abort(); }
}
enum cudaGetDriverEntryPointFlags { cudaEnableDefault = 0, cudaEnableLegacyStream = 1, cudaEnablePerThreadDefaultStream = 2 };
enum cudaDriverEntryPointQueryResult { cudaDriverEntryPointSuccess = 0, cudaDriverEntryPointSymbolNotFound = 1,
                                       cudaDriverEntryPointVersionNotSufficent = 2 };
inline char emu_primary_ctx; /* the device's primary context */
inline thread_local void *emu_ctx = nullptr;
inline void emu_ctx_bind() { if (!emu_ctx) emu_ctx = &emu_primary_ctx; }
inline int emu_cuCtxGetCurrent(void **c) { *c = emu_ctx; return 0; }
inline int emu_cuCtxSetCurrent(void *c) { emu_ctx = c; return 0; }
inline cudaError_t cudaGetDriverEntryPointByVersion(const char *sym, void **fn, unsigned ver, unsigned long long,
                                                    cudaDriverEntryPointQueryResult *q = nullptr)
{
    void *f = !strcmp(sym, "cuCtxGetCurrent") ? (void *)&emu_cuCtxGetCurrent
              : !strcmp(sym, "cuCtxSetCurrent") ? (void *)&emu_cuCtxSetCurrent : nullptr;
    if (f && ver < 4000) f = nullptr;
    *fn = f;
    if (q) *q = f ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
    return cudaSuccess;
}

struct emu_alloc { char *p; size_t n; };
inline std::vector<emu_alloc> &emu_allocs() { static std::vector<emu_alloc> v; return v; }
inline std::vector<emu_alloc> &emu_pinned() { static std::vector<emu_alloc> v; return v; }
inline int &emu_open_depth() { static int d = 0; return d; }
inline long &emu_launches() { static long n = 0; return n; }
inline void emu_protect_all(int rw)
{
    for (auto &a : emu_allocs())
        mprotect(a.p, a.n, rw ? PROT_READ | PROT_WRITE : PROT_NONE);
}
struct emu_open_scope { /* device memory readable and writable inside */
    emu_open_scope() { if (emu_open_depth()++ == 0) emu_protect_all(1); }
    ~emu_open_scope() { if (--emu_open_depth() == 0) emu_protect_all(0); }
};
inline size_t emu_pg(size_t n) { const size_t ps = (size_t)sysconf(_SC_PAGESIZE); return (n + ps - 1) / ps * ps; }
inline int emu_in(const std::vector<emu_alloc> &v, const void *p, size_t n)
{
    for (auto &a : v)
        if ((const char *)p >= a.p && (const char *)p + n <= a.p + a.n) return 1;
    return 0;
}
inline int emu_is_dev(const void *p, size_t n) { return emu_in(emu_allocs(), p, n); }
inline int emu_is_pinned(const void *p, size_t n) { return emu_in(emu_pinned(), p, n); }

/* the one in-order queue */
inline std::deque<std::function<void()>> &emu_q() { static std::deque<std::function<void()>> q; return q; }
inline unsigned long &emu_q_done() { static unsigned long n = 0; return n; }
inline unsigned long &emu_q_total() { static unsigned long n = 0; return n; }
inline void emu_enqueue(std::function<void()> f)
{
    emu_ctx_bind();
    if (emu_capturing()) { emu_capture_ops().push_back(std::move(f)); return; }
    emu_q().push_back(std::move(f));
    emu_q_total()++;
}
inline void emu_run_until(unsigned long upto)
{
    emu_no_capture("host wait");
    while (emu_q_done() < upto && !emu_q().empty()) {
        auto f = std::move(emu_q().front());
        emu_q().pop_front();
        f();
        emu_q_done()++;
    }
}
inline void emu_drain() { emu_run_until(~0ul); }

inline cudaError_t cudaMalloc(void **p, size_t n)
{
    emu_no_capture("cudaMalloc");
    emu_ctx_bind();
    const size_t m = emu_pg(n ? n : 1);
    void *q = mmap(NULL, m, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) return cudaErrorMemoryAllocation;
    emu_allocs().push_back({(char *)q, m});
    if (emu_open_depth()) mprotect(q, m, PROT_READ | PROT_WRITE);
    *p = q;
    return cudaSuccess;
}
inline void emu_free_now(void *p)
{
    auto &v = emu_allocs();
    for (size_t i = 0; i < v.size(); i++)
        if (v[i].p == p) { munmap(v[i].p, v[i].n); v.erase(v.begin() + (long)i); return; }
    fprintf(stderr, "emu: cudaFree of %p, not a device allocation\n", p);
    abort();
}
inline cudaError_t cudaFree(void *p)
{
    emu_drain(); /* cudaFree synchronises */
    if (p) emu_free_now(p);
    return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t)
{
    if (emu_no_mempool()) return cudaErrorNotSupported;
    emu_no_capture("cudaMallocAsync (graph allocation nodes are not emulated)");
    return cudaMalloc(p, n);
}
inline cudaError_t cudaFreeAsync(void *p, cudaStream_t)
{
    if (emu_no_mempool()) return cudaErrorNotSupported;
    emu_no_capture("cudaFreeAsync (graph free nodes are not emulated)");
    if (!emu_is_dev(p, 1)) { fprintf(stderr, "emu: cudaFreeAsync of %p, not a device allocation\n", p); abort(); }
    emu_enqueue([p] { emu_free_now(p); });
    return cudaSuccess;
}
inline void emu_check_copy(void *d, const void *s, size_t n, cudaMemcpyKind k)
{
    const int dd = emu_is_dev(d, n), sd = emu_is_dev(s, n);
    if ((k == cudaMemcpyHostToDevice && (!dd || sd)) || (k == cudaMemcpyDeviceToHost && (dd || !sd)) ||
        (k == cudaMemcpyDeviceToDevice && (!dd || !sd))) {
        fprintf(stderr, "emu: cudaMemcpy kind %d with wrong memory (%p <- %p, %zu)\n", (int)k, d, s, n);
        abort();
    }
}
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t)
{
    emu_check_copy(d, s, n, k);
    if (k == cudaMemcpyHostToDevice && !emu_is_pinned(s, n)) { /* pageable: staged at the call */
        emu_no_capture("copy from pageable memory");
        auto buf = std::make_shared<std::vector<char>>((const char *)s, (const char *)s + n);
        emu_enqueue([d, buf, n] { emu_open_scope o; memcpy(d, buf->data(), n); });
    } else if (k == cudaMemcpyDeviceToHost && !emu_is_pinned(d, n)) { /* pageable: synchronous */
        emu_drain();
        emu_open_scope o;
        memcpy(d, s, n);
    } else {
        emu_enqueue([d, s, n] { emu_open_scope o; memcpy(d, s, n); });
    }
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k)
{
    emu_check_copy(d, s, n, k);
    emu_drain();
    emu_open_scope o;
    memcpy(d, s, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t)
{
    if (!emu_is_dev(d, n)) { fprintf(stderr, "emu: cudaMemsetAsync on non-device memory %p\n", d); abort(); }
    emu_enqueue([d, v, n] { emu_open_scope o; memset(d, v, n); });
    return cudaSuccess;
}
inline cudaError_t cudaMemset(void *d, int v, size_t n) { emu_drain(); return cudaMemsetAsync(d, v, n, 0) || (emu_drain(), 0); }
inline cudaError_t cudaMallocHost(void **p, size_t n)
{
    emu_no_capture("cudaMallocHost");
    const size_t m = emu_pg(n ? n : 1);
    void *q = mmap(NULL, m, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) return cudaErrorMemoryAllocation;
    memset(q, 0xA7, m);
    emu_pinned().push_back({(char *)q, m});
    *p = q;
    return cudaSuccess;
}
inline cudaError_t cudaFreeHost(void *p)
{
    emu_drain();
    auto &v = emu_pinned();
    for (size_t i = 0; i < v.size(); i++)
        if (v[i].p == p) { munmap(v[i].p, v[i].n); v.erase(v.begin() + (long)i); return cudaSuccess; }
    fprintf(stderr, "emu: cudaFreeHost of %p, not pinned\n", p);
    abort();
}
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline thread_local int emu_dev = 0;
inline cudaError_t cudaGetDevice(int *d) { *d = emu_dev; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { if (d != 0) return cudaErrorInvalidValue; emu_dev = d; emu_ctx = &emu_primary_ctx; return cudaSuccess; }
inline int emu_optin() { static int v = getenv("EMU_OPTIN") ? atoi(getenv("EMU_OPTIN")) : 232448; return v; } /* H100 */
inline cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev)
{
    if (dev != 0) return cudaErrorInvalidValue;
    if (a == cudaDevAttrMemoryPoolsSupported) { *v = !emu_no_mempool(); return cudaSuccess; }
    if (a == cudaDevAttrMaxSharedMemoryPerMultiprocessor) { *v = emu_optin() + 1024; return cudaSuccess; } /* as on sm_80-sm_90 */
    /* an sm_90 device with an H100's shared memory, an sm_86 one with less
     * (EMU_OPTIN), an sm_70 one for a build with SM80=0 */
    const int major = LCX_EMU_SM80 ? (emu_optin() >= 232448 ? 9 : 8) : 7;
    if (a == cudaDevAttrComputeCapabilityMajor) { *v = major; return cudaSuccess; }
    if (a == cudaDevAttrComputeCapabilityMinor) { *v = major == 8 ? 6 : 0; return cudaSuccess; }
    if (a != cudaDevAttrMaxSharedMemoryPerBlockOptin) return cudaErrorInvalidValue;
    *v = emu_optin();
    return cudaSuccess;
}
/* the PTX version a kernel was built from: sm_90 code, or sm_70 with SM80=0 */
struct cudaFuncAttributes { int ptxVersion, binaryVersion, maxDynamicSharedSizeBytes; };
inline std::map<const void *, int> &emu_func_maxdyn() { static std::map<const void *, int> m; return m; }
template <class F> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, F *f)
{
    a->ptxVersion = a->binaryVersion = LCX_EMU_SM80 ? 90 : 70;
    const auto it = emu_func_maxdyn().find((const void *)f);
    a->maxDynamicSharedSizeBytes = it == emu_func_maxdyn().end() ? 48 * 1024 : it->second;
    return cudaSuccess;
}
template <class F> cudaError_t cudaFuncSetAttribute(F *f, cudaFuncAttribute attr, int v)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > emu_optin()) return cudaErrorInvalidValue;
    emu_func_maxdyn()[(const void *)f] = v;
    return cudaSuccess;
}
struct emu_stream { int x; };
struct emu_event { unsigned long at; int recorded; };
inline cudaError_t cudaStreamCreate(cudaStream_t *s) { emu_ctx_bind(); *s = new emu_stream(); return cudaSuccess; }
#define cudaStreamNonBlocking 1
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); } /* one queue serves every stream */
inline cudaError_t cudaStreamDestroy(cudaStream_t s) { emu_drain(); delete s; return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { emu_drain(); return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { emu_drain(); return cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = new emu_event(); return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t)
{
    e->recorded = 1;
    e->at = emu_q_total(); /* everything queued so far */
    return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) { if (e->recorded) emu_run_until(e->at); return cudaSuccess; }
inline thread_local cudaError_t emu_last = cudaSuccess;
inline cudaError_t cudaGetLastError() { cudaError_t e = emu_last; emu_last = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError() { return emu_last; }
inline const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess ? "no error" : e == cudaErrorMemoryAllocation ? "out of memory"
         : e == cudaErrorNotSupported ? "operation not supported"
         : e == cudaErrorStreamCaptureUnsupported ? "operation not permitted when stream is capturing"
         : "emulated error";
}
inline const char *cudaGetErrorName(cudaError_t e)
{
    return e == cudaSuccess ? "cudaSuccess" : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation"
         : e == cudaErrorNotSupported ? "cudaErrorNotSupported"
         : e == cudaErrorStreamCaptureUnsupported ? "cudaErrorStreamCaptureUnsupported"
         : "cudaErrorEmulated";
}

/* ---- stream capture and graphs ---- */
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode)
{
    if (emu_capturing()) return cudaErrorIllegalState;
    emu_capturing() = s;
    emu_capture_ops().clear();
    return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st)
{
    *st = s && s == emu_capturing() ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    if (!s || s != emu_capturing()) return cudaErrorIllegalState;
    *g = new emu_graph{std::move(emu_capture_ops())};
    emu_capture_ops().clear();
    emu_capturing() = nullptr;
    return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long)
{
    *x = new emu_graph(*g);
    return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t)
{
    for (auto &f : x->ops) emu_enqueue(f);
    return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) { delete x; return cudaSuccess; } /* launches queued copies */

/* ---- execution ---- */
struct emu_warp {
    emu_bar bar;
    const void *addr[32];
    uint32_t a[32][4], b[32][2];
    uint64_t slot[2][32];
};
struct emu_copy { void *d; const void *s; };
struct emu_block {
    emu_bar bar, endbar;
    std::vector<std::unique_ptr<emu_warp>> warps;
    std::vector<std::unique_ptr<emu_bar>> wgbars; /* per warpgroup (128 threads): wgmma convergence */
    std::vector<emu_alloc> shared; /* registered __shared__ variables */
    std::vector<uint8_t> unfenced; /* per byte of dynamic shared memory: written by the generic proxy
                                    * (vector store, landed cp.async) and not yet fenced by its writer */
    /* per byte, once fenced: 1 + the block-barrier generation at the writer's
     * fence.proxy.async and the writer; another thread's wgmma may read it
     * only after a barrier has completed since */
    std::vector<uint32_t> fence_gen;
    std::vector<int32_t> fence_tid;
    size_t static_bytes = 0, dyn_bytes = 0;
    char *dyn = nullptr;
    int first_block = 1;
};
inline thread_local emu_block *emu_blk;
inline thread_local emu_warp *emu_cur_warp;
inline thread_local int emu_lane, emu_tid, emu_wphase;
inline thread_local char *emu_dyn_smem;
inline thread_local std::vector<emu_copy> emu_open_group;
inline thread_local std::vector<std::vector<emu_copy>> emu_groups;
inline int emu_poison() { static int v = getenv("EMU_POISON") ? (int)strtol(getenv("EMU_POISON"), 0, 0) : 0xff; return v; }

#define __syncthreads() emu_blk->bar.wait(__LINE__)
#define __syncthreads_or(...) emu_blk->bar.wait_or(__LINE__, (__VA_ARGS__))
#define __shared__ static
#define EMU_SHARED(x) emu_shared_reg(&(x), sizeof(x))
inline void emu_shared_reg(void *p, size_t n)
{
    emu_block &b = *emu_blk;
    if (!b.first_block) return; /* registered: poisoned between blocks by the launcher */
    if (emu_tid == 0) {
        b.shared.push_back({(char *)p, n});
        b.static_bytes += n;
        memset(p, emu_poison(), n);
        if (b.static_bytes > 48 * 1024 || b.static_bytes + b.dyn_bytes > (size_t)emu_optin()) {
            fprintf(stderr, "emu: shared memory %zu static + %zu dynamic exceeds the limits\n", b.static_bytes,
                    b.dyn_bytes);
            abort();
        }
    }
    b.endbar.wait(-1);
}

inline void emu_warp_collective_check(emu_warp &w, unsigned mask)
{
    if (mask != 0xffffffffu || w.bar.expected != 32) {
        fprintf(stderr, "emu: warp collective with mask %08x and %d live lanes\n", mask, w.bar.expected);
        abort();
    }
}
template <class T> inline T emu_shfl_xor(unsigned mask, T v, int o, int line)
{
    static_assert(sizeof(T) <= 8, "shfl type");
    emu_warp &w = *emu_cur_warp;
    emu_warp_collective_check(w, mask);
    const int ph = emu_wphase ^= 1;
    memcpy(&w.slot[ph][emu_lane], &v, sizeof v);
    w.bar.wait(line);
    T r;
    memcpy(&r, &w.slot[ph][emu_lane ^ (o & 31)], sizeof r);
    return r;
}
inline int emu_any(unsigned mask, int p, int line)
{
    emu_warp &w = *emu_cur_warp;
    emu_warp_collective_check(w, mask);
    const int ph = emu_wphase ^= 1;
    w.slot[ph][emu_lane] = p != 0;
    w.bar.wait(line);
    int r = 0;
    for (int l = 0; l < 32; l++) r |= (int)w.slot[ph][l];
    return r;
}
inline void emu_syncwarp(int line)
{
    emu_warp &w = *emu_cur_warp;
    emu_warp_collective_check(w, 0xffffffffu);
    w.bar.wait(line);
}
#define __shfl_xor_sync(m, v, o, ...) emu_shfl_xor((m), (v), (o), __LINE__)
#define __syncwarp(...) emu_syncwarp(__LINE__)
#define __any_sync(m, p) emu_any((m), (p), __LINE__)

inline void emu_generic_write(const void *p, size_t n);
/* the destination holds poison from the issue until the wait that lands the
 * copy: a read before the copy has landed, or a stage overwritten while
 * still being read, both show */
inline void emu_cp_async16(void *d, const void *s)
{
    memset(d, emu_poison(), 16);
    emu_open_group.push_back({d, s});
}
inline void emu_commit() { emu_groups.push_back(std::move(emu_open_group)); emu_open_group.clear(); }
inline void emu_wait(int n)
{
    while ((int)emu_groups.size() > n) {
        for (auto &c : emu_groups.front()) memcpy(c.d, c.s, 16);
        for (auto &c : emu_groups.front()) emu_generic_write(c.d, 16);
        emu_groups.erase(emu_groups.begin());
    }
}
/* ldmatrix .x4: lanes 8j..8j+7 give the row addresses of matrix j; register
 * j of lane l holds (row l/4; columns 2 (l%4), +1) of matrix j, or with
 * .trans (rows 2 (l%4), +1; column l/4) */
inline void emu_ldsm(uint32_t (&r)[4], const uint16_t *p, bool trans)
{
    emu_warp &w = *emu_cur_warp;
    emu_warp_collective_check(w, 0xffffffffu);
    const int l = emu_lane;
    if (((uintptr_t)p) % 16) { fprintf(stderr, "emu: ldmatrix row address %p not 16-byte aligned\n", (const void *)p); abort(); }
    w.addr[l] = p;
    w.bar.wait(-2);
    for (int j = 0; j < 4; j++) {
        auto at = [&](int row, int col) { return (uint32_t)((const uint16_t *)w.addr[8 * j + row])[col]; };
        r[j] = trans ? at(2 * (l % 4), l / 4) | at(2 * (l % 4) + 1, l / 4) << 16
                     : at(l / 4, 2 * (l % 4)) | at(l / 4, 2 * (l % 4) + 1) << 16;
    }
    w.bar.wait(-3);
}
inline void emu_ldsm_x4(uint32_t (&r)[4], const uint16_t *p) { emu_ldsm(r, p, false); }
inline void emu_ldsm_x4_trans(uint32_t (&r)[4], const uint16_t *p) { emu_ldsm(r, p, true); }
inline float emu_h2f(uint32_t h, bool bf16)
{
    uint32_t u;
    if (bf16) u = h << 16;
    else {
        const uint32_t s = (h & 0x8000u) << 16, e = (h >> 10) & 31, m = h & 0x3ff;
        if (e == 31) u = m ? 0x7fffffffu : s | 0x7f800000u; /* NaN: canonical (the payload is the caller's job) */
        else if (e) u = s | ((e + 112) << 23) | (m << 13);
        else { float f = (float)m * 0x1p-24f; memcpy(&u, &f, 4); u |= s; }
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* cvt.rn.{bf16,f16}x2.f32: lo in the low half, both rounded to nearest even */
inline uint32_t emu_f2h(float x, bool bf16)
{
    if (!bf16) {
        if (x != x) return 0x7fffu; /* NaN: canonical, as the hardware's cvt */
        const _Float16 h = (_Float16)x;
        uint16_t r;
        memcpy(&r, &h, 2);
        return r;
    }
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
inline uint32_t emu_pack2(float lo, float hi, bool bf16) { return emu_f2h(lo, bf16) | emu_f2h(hi, bf16) << 16; }
/* cvt.rn.f16.f32: nearest even; NaN becomes the canonical 0x7fff */
inline uint16_t emu_cvt_f16(float x) { return x != x ? (uint16_t)0x7fffu : (uint16_t)emu_f2h(x, false); }
inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline void emu_mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], bool bf16)
{
    emu_warp &w = *emu_cur_warp;
    emu_warp_collective_check(w, 0xffffffffu);
    const int l = emu_lane;
    memcpy(w.a[l], a, sizeof w.a[l]);
    memcpy(w.b[l], b, sizeof w.b[l]);
    w.bar.wait(-4);
    for (int r = 0; r < 4; r++) {
        const int row = l / 4 + 8 * (r / 2), col = 2 * (l % 4) + r % 2;
        double s = d[r];
        for (int k = 0; k < 16; k++) {
            const uint32_t ah = (w.a[(row % 8) * 4 + (k % 8) / 2][row / 8 + 2 * (k / 8)] >> (16 * (k % 2))) & 0xffff;
            const uint32_t bh = (w.b[col * 4 + (k % 8) / 2][k / 8] >> (16 * (k % 2))) & 0xffff;
            s += (double)emu_h2f(ah, bf16) * (double)emu_h2f(bh, bf16);
        }
        d[r] = (float)s;
    }
    w.bar.wait(-5);
}

/* ---- wgmma (sm_90a) ----
 * Each thread computes its own accumulator fragment from shared memory
 * through the descriptors (128-byte swizzled K-major operands only: the XOR
 * of address bits 4-6 with bits 7-9, on the emulated shared addresses,
 * which are the host addresses). mma_async computes the product at issue
 * and queues it; wait_group recomputes it, aborts if the shared operands
 * changed in between (a stage overwritten while in flight, or read before
 * it was complete), and adds it to the accumulators, as the hardware owns
 * them until the wait. mma_async without a wgmma.fence since the last
 * commit, or with this thread's cp.async data landed since its last
 * fence.proxy.async, is reported; a thread that exits with pending groups
 * is reported. With A from registers the warp's lanes exchange their
 * fragments at the issue (mma.sync's A layout), and a change to a
 * thread's A registers before the wait is reported. The 128 threads of a
 * warpgroup meet at every wgmma (a warp that skips one is reported). */
struct emu_wgop {
    float *d;
    int nr; /* N / 2 accumulators */
    uint64_t da, db;
    bool bf16, acc, neg;
    double p[128];
    /* A from registers: this thread's rows of A (gathered from its quad at
     * the issue), and its own fragment registers with their values then */
    bool ra = false;
    double a[2][16];
    const uint32_t *areg = nullptr;
    uint32_t av[4];
};
struct emu_wg_state {
    std::vector<emu_wgop> open;
    std::vector<std::vector<emu_wgop>> groups;
    bool arrived = false;
    std::vector<std::pair<size_t, size_t>> mine; /* this thread's unfenced writes (offset, bytes) */
    unsigned long phase = ~0ul; /* the block-barrier generation of the last wgmma, and the wgmma since */
    int k = 0;
};
inline thread_local emu_wg_state emu_wgs;
inline const char *emu_wg_ptr(uint64_t desc, int row, int k)
{
    if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0 || ((desc >> 32) & 0x3fff) != 64) {
        fprintf(stderr, "emu: wgmma descriptor %#llx: only 128-byte swizzled K-major tiles with 1024-byte atoms "
                        "(stride byte offset 1024, base offset 0) are emulated\n", (unsigned long long)desc);
        abort();
    }
    const uintptr_t base = (uintptr_t)emu_blk->dyn;
    uintptr_t start = (base & ~(uintptr_t)0x3ffff) | (uintptr_t)((desc & 0x3fff) << 4);
    if (start < base) start += 0x40000;
    uintptr_t a = start + (uintptr_t)(row % 8) * 128 + (uintptr_t)(row / 8) * 1024 + (uintptr_t)(k / 8) * 16 +
                  (uintptr_t)(k % 8) * 2;
    a ^= ((a >> 7) & 7) << 4;
    if (a < base || a + 2 > base + emu_blk->dyn_bytes) {
        fprintf(stderr, "emu: wgmma operand address outside the block's dynamic shared memory\n");
        abort();
    }
    if (!emu_blk->unfenced.empty() && (emu_blk->unfenced[a - base] || emu_blk->unfenced[a - base + 1])) {
        fprintf(stderr, "emu: wgmma reads shared memory written by the generic proxy (st.shared or cp.async) "
                        "that its writer has not fenced with fence.proxy.async\n");
        abort();
    }
    for (size_t b = a - base; b < a - base + 2 && !emu_blk->fence_gen.empty(); b++)
        if (emu_blk->fence_gen[b] && emu_blk->fence_tid[b] != emu_tid &&
            (unsigned long)emu_blk->bar.gen < (unsigned long)emu_blk->fence_gen[b]) {
            fprintf(stderr, "emu: wgmma reads shared memory that thread %d wrote and fenced with no barrier "
                            "since\n", (int)emu_blk->fence_tid[b]);
            abort();
        }
    return (const char *)a;
}
inline void emu_wg_product(const emu_wgop &op, double (&p)[128])
{
    const int wl = emu_tid & 127, wq = wl >> 5, l = wl & 31;
    const int nj = op.nr / 4; /* 8-column blocks */
    double a[2][16], b[64][16];
    auto row16 = [&](uint64_t desc, int row, double (&v)[16]) {
        for (int k = 0; k < 16; k++) {
            uint16_t h;
            memcpy(&h, emu_wg_ptr(desc, row, k), 2);
            v[k] = (double)emu_h2f(h, op.bf16);
        }
    };
    if (op.ra)
        memcpy(a, op.a, sizeof a);
    else
        for (int h = 0; h < 2; h++) row16(op.da, 16 * wq + l / 4 + 8 * h, a[h]);
    for (int j = 0; j < nj; j++)
        for (int e = 0; e < 2; e++) row16(op.db, 8 * j + 2 * (l % 4) + e, b[2 * j + e]);
    for (int i = 0; i < op.nr; i++) {
        const int j = i / 4, h = (i / 2) % 2, e = i % 2;
        double s = 0;
        for (int k = 0; k < 16; k++) s += a[h][k] * b[2 * j + e][k];
        p[i] = s;
    }
}
/* fence.proxy.async: this thread's generic writes become visible to the async proxy */
inline void emu_fence_proxy()
{
    if (emu_blk->fence_gen.size() != emu_blk->dyn_bytes) {
        emu_blk->fence_gen.assign(emu_blk->dyn_bytes, 0);
        emu_blk->fence_tid.assign(emu_blk->dyn_bytes, -1);
    }
    const uint32_t g = (uint32_t)emu_blk->bar.gen + 1;
    for (auto &w : emu_wgs.mine) {
        memset(emu_blk->unfenced.data() + w.first, 0, w.second);
        for (size_t b = w.first; b < w.first + w.second; b++) {
            emu_blk->fence_gen[b] = g;
            emu_blk->fence_tid[b] = emu_tid;
        }
    }
    emu_wgs.mine.clear();
}
/* a vector store or a landed cp.async into dynamic shared memory: a
 * generic-proxy write that a wgmma may read only after its writer's
 * fence.proxy.async (and a barrier) */
inline void emu_generic_write(const void *p, size_t n)
{
    if (!emu_blk || (const char *)p < emu_blk->dyn || (const char *)p + n > emu_blk->dyn + emu_blk->dyn_bytes) return;
    const size_t off = (size_t)((const char *)p - emu_blk->dyn);
    if (emu_blk->unfenced.size() != emu_blk->dyn_bytes) emu_blk->unfenced.assign(emu_blk->dyn_bytes, 0);
    memset(emu_blk->unfenced.data() + off, 1, n);
    emu_wgs.mine.push_back({off, n});
}inline void emu_wg_arrive() { emu_wgs.arrived = true; }
/* wgmma.mma_async is .sync.aligned over the warpgroup: its 128 threads meet
 * at every one, each identified by the block's barrier generation and its
 * number since, so a warp that skips or adds a wgmma (a warp-dependent
 * branch) is reported as a divergent barrier */
inline void emu_wg_meet()
{
    const unsigned long g = emu_blk->bar.gen;
    if (g != emu_wgs.phase) { emu_wgs.phase = g; emu_wgs.k = 0; }
    emu_blk->wgbars[(size_t)emu_tid / 128]->wait((int)((g & 0xfffff) * 1024 + (unsigned long)(emu_wgs.k++ & 1023)) - (1 << 30));
}
/* n: the N of the instruction's shape; scale_d: the scale-d predicate's
 * value (0: d = A B, else d += A B); sa, sb: imm-scale-a/b (1 or -1);
 * ta, tb: imm-trans-a/b (only 0, K-major, is emulated) */
template <int NR>
inline void emu_wgmma(float (&d)[NR], uint64_t da, uint64_t db, bool bf16, int n, int scale_d, int sa, int sb, int ta,
                      int tb)
{
    static_assert(NR % 4 == 0 && NR <= 128, "m64nNk16 with N a multiple of 8 up to 256");
    if (n != 2 * NR) { fprintf(stderr, "emu: wgmma m64n%dk16 with %d accumulator registers\n", n, NR); abort(); }
    if (ta || tb) { fprintf(stderr, "emu: wgmma with transposed (MN-major) operands is not emulated\n"); abort(); }
    if ((sa != 1 && sa != -1) || (sb != 1 && sb != -1)) { fprintf(stderr, "emu: wgmma imm-scale must be 1 or -1\n"); abort(); }
    if (blockDim.x * blockDim.y * blockDim.z % 128) { fprintf(stderr, "emu: wgmma in a block of partial warpgroups\n"); abort(); }
    if (!emu_wgs.arrived) { fprintf(stderr, "emu: wgmma.mma_async without a wgmma.fence before it\n"); abort(); }
    emu_wg_meet();
    emu_wgop op;
    op.d = d;
    op.nr = NR;
    op.da = da;
    op.db = db;
    op.bf16 = bf16;
    op.acc = scale_d != 0;
    op.neg = sa * sb < 0;
    emu_wg_product(op, op.p);
    emu_wgs.open.push_back(op);
}
/* wgmma with A from registers: the warp's lanes exchange their fragments
 * (the mma.sync m16n8k16 A layout on the warp's 16 rows of the 64) */
template <int NR>
inline void emu_wgmma_rs(float (&d)[NR], const uint32_t (&a)[4], uint64_t db, bool bf16, int n, int scale_d, int sa,
                         int sb, int tb)
{
    static_assert(NR % 4 == 0 && NR <= 128, "m64nNk16 with N a multiple of 8 up to 256");
    if (n != 2 * NR) { fprintf(stderr, "emu: wgmma m64n%dk16 with %d accumulator registers\n", n, NR); abort(); }
    if (tb) { fprintf(stderr, "emu: wgmma with a transposed (MN-major) B is not emulated\n"); abort(); }
    if ((sa != 1 && sa != -1) || (sb != 1 && sb != -1)) { fprintf(stderr, "emu: wgmma imm-scale must be 1 or -1\n"); abort(); }
    if (blockDim.x * blockDim.y * blockDim.z % 128) { fprintf(stderr, "emu: wgmma in a block of partial warpgroups\n"); abort(); }
    if (!emu_wgs.arrived) { fprintf(stderr, "emu: wgmma.mma_async without a wgmma.fence before it\n"); abort(); }
    emu_wg_meet();
    emu_warp &w = *emu_cur_warp;
    emu_warp_collective_check(w, 0xffffffffu);
    const int l = emu_lane;
    memcpy(w.a[l], a, sizeof w.a[l]);
    w.bar.wait(-6);
    emu_wgop op;
    op.d = d;
    op.nr = NR;
    op.da = 0;
    op.db = db;
    op.bf16 = bf16;
    op.acc = scale_d != 0;
    op.neg = sa * sb < 0;
    op.ra = true;
    op.areg = a;
    memcpy(op.av, a, sizeof op.av);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 16; k++) {
            const int row = l / 4 + 8 * h; /* of the warp's 16 */
            const uint32_t v = (w.a[(row % 8) * 4 + (k % 8) / 2][row / 8 + 2 * (k / 8)] >> (16 * (k % 2))) & 0xffff;
            op.a[h][k] = (double)emu_h2f(v, bf16);
        }
    w.bar.wait(-7);
    emu_wg_product(op, op.p);
    emu_wgs.open.push_back(op);
}
inline void emu_wg_commit()
{
    emu_wgs.groups.push_back(std::move(emu_wgs.open));
    emu_wgs.open.clear();
    emu_wgs.arrived = false;
}
inline void emu_wg_wait(int n)
{
    while ((int)emu_wgs.groups.size() > n) {
        for (auto &op : emu_wgs.groups.front()) {
            double p[128];
            emu_wg_product(op, p);
            if (memcmp(p, op.p, sizeof(double) * (size_t)op.nr)) {
                fprintf(stderr, "emu: shared memory read by a wgmma changed between its issue and its wait_group\n");
                abort();
            }
            if (op.ra && memcmp(op.areg, op.av, sizeof op.av)) {
                fprintf(stderr, "emu: the A registers of a wgmma changed between its issue and its wait_group\n");
                abort();
            }
            for (int i = 0; i < op.nr; i++) {
                const double v = op.neg ? -p[i] : p[i];
                op.d[i] = (float)(op.acc ? (double)op.d[i] + v : v);
            }
        }
        emu_wgs.groups.erase(emu_wgs.groups.begin());
    }
}
inline void emu_wg_exit_check()
{
    if (!emu_wgs.open.empty() || !emu_wgs.groups.empty()) {
        fprintf(stderr, "emu: a thread exited with wgmma groups pending\n");
        abort();
    }
    emu_wgs = emu_wg_state();
}

/* kernel arguments pointing into mapped host memory that is neither device
 * nor pinned memory (a GPU would fault on them) */
inline void emu_scan_args(const void *p, size_t n, const char *kname)
{
    const long ps = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off + 8 <= n; off += 8) {
        uint64_t v;
        memcpy(&v, (const char *)p + off, 8);
        if (v < 65536 || v >= (1ull << 47)) continue;
        if (emu_is_dev((void *)v, 1) || emu_is_pinned((void *)v, 1)) continue;
        if ((v & 0xffffffffull) < 16) continue; /* a small int32 next to padding, not a pointer */
        if (msync((void *)(v & ~(uint64_t)(ps - 1)), (size_t)ps, MS_ASYNC) == 0)
            fprintf(stderr, "emu: WARNING kernel %s argument word at +%zu = %#llx points to host memory\n", kname, off,
                    (unsigned long long)v);
    }
}


struct emu_tstate {
    emu_uint3 tix;
    int lane, tid, wphase;
    emu_warp *warp;
    std::vector<emu_copy> open;
    std::vector<std::vector<emu_copy>> groups;
    emu_wg_state wgs;
    uint64_t rs;
};
inline std::function<void()> *emu_fbody;
inline void emu_fiber_entry()
{
    (*emu_fbody)();
    emu_commit();
    emu_wait(0);
    emu_wg_exit_check();
    emu_blk->bar.drop();
    emu_cur_warp->bar.drop();
    if (!emu_blk->wgbars.empty()) emu_blk->wgbars[(size_t)emu_tid / 128]->drop();
    emu_cur_fiber->done = 1;
    emu_yield();
    abort();
}
inline int emu_sched_mode() { static int v = getenv("EMU_SCHED") ? atoi(getenv("EMU_SCHED")) : 0; return v; }
inline void emu_run_fibers(dim3 grid, dim3 block, long nt, emu_block &blk, std::function<void()> body)
{
    const size_t SS = 256 * 1024;
    static std::vector<char *> pool;
    while ((long)pool.size() < nt) {
        char *p = (char *)mmap(NULL, SS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) abort();
        pool.push_back(p);
    }
    std::vector<emu_fiber> f((size_t)nt);
    std::vector<emu_tstate> ts((size_t)nt);
    std::vector<int> order((size_t)nt);
    blockDim = block;
    gridDim = grid;
    emu_blk = &blk;
    emu_dyn_smem = blk.dyn;
    emu_fbody = &body;
    uint64_t rng = 12345 + (uint64_t)emu_launches();
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = {x, y, z};
                for (long t = 0; t < nt; t++) {
                    emu_fiber &fb = f[(size_t)t];
                    fb = emu_fiber();
                    fb.tid = (int)t;
                    fb.stack = pool[(size_t)t];
                    uintptr_t top = ((uintptr_t)fb.stack + SS) & ~(uintptr_t)15;
                    void **sp = (void **)top;
                    *--sp = nullptr;                         /* fake return address of the entry */
                    *--sp = (void *)&emu_fiber_entry;        /* ret target */
                    for (int r = 0; r < 6; r++) *--sp = nullptr; /* rbp rbx r12-r15 */
                    fb.sp = sp;
                    emu_tstate &st = ts[(size_t)t];
                    st.tix = {(unsigned)(t % block.x), (unsigned)((t / block.x) % block.y), (unsigned)(t / (block.x * block.y))};
                    st.lane = (int)(t % 32);
                    st.tid = (int)t;
                    st.wphase = 0;
                    st.warp = blk.warps[(size_t)t / 32].get();
                    st.open.clear();
                    st.groups.clear();
                    st.wgs = emu_wg_state();
                    st.rs = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t * 0x100000001b3ull) ^ (uint64_t)emu_launches();
                    order[(size_t)t] = (int)t;
                }
                long alive = nt;
                while (alive > 0) {
                    if (emu_sched_mode() == 1)
                        for (long i = 0; i < nt; i++) order[(size_t)i] = (int)(nt - 1 - i);
                    else if (emu_sched_mode() == 2)
                        for (long i = nt - 1; i > 0; i--) {
                            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
                            std::swap(order[(size_t)i], order[(size_t)(rng % (uint64_t)(i + 1))]);
                        }
                    int progress = 0;
                    for (long k = 0; k < nt; k++) {
                        const int t = order[(size_t)k];
                        emu_fiber &fb = f[(size_t)t];
                        if (fb.done || (fb.wbar && fb.wbar->gen == fb.wgen)) continue;
                        fb.wbar = nullptr;
                        emu_tstate &st = ts[(size_t)t];
                        threadIdx = st.tix; emu_lane = st.lane; emu_tid = st.tid; emu_wphase = st.wphase;
                        emu_cur_warp = st.warp; emu_rs = st.rs;
                        std::swap(emu_open_group, st.open);
                        std::swap(emu_groups, st.groups);
                        std::swap(emu_wgs, st.wgs);
                        emu_cur_fiber = &fb;
                        emu_ctx_switch(&emu_sched_sp, fb.sp);
                        st.wphase = emu_wphase; st.rs = emu_rs;
                        std::swap(emu_open_group, st.open);
                        std::swap(emu_groups, st.groups);
                        std::swap(emu_wgs, st.wgs);
                        progress = 1;
                        if (fb.done) alive--;
                    }
                    if (!progress) {
                        fprintf(stderr, "emu: deadlock in block (%u,%u,%u): every live thread waits at a barrier "
                                        "that cannot complete (divergent __syncthreads or warp collective)\n", x, y, z);
                        abort();
                    }
                }
                blk.first_block = 0;
                blk.bar.reset((int)nt);
                for (auto &w : blk.warps) w->bar.reset(32);
                for (auto &w : blk.wgbars) w->reset(128);
                for (auto &sh : blk.shared) memset(sh.p, emu_poison(), sh.n);
                memset(blk.dyn, emu_poison(), blk.dyn_bytes);
                if (!blk.unfenced.empty()) memset(blk.unfenced.data(), 0, blk.unfenced.size());
                if (!blk.fence_gen.empty()) memset(blk.fence_gen.data(), 0, blk.fence_gen.size() * sizeof(uint32_t));
            }
}

template <class F>
void emu_launch(const void *kfn, const char *kname, dim3 grid, dim3 block, size_t dyn, F body)
{
    const long nt = (long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u ||
        nt == 0 || nt > 1024 || block.z > 64) {
        emu_last = cudaErrorInvalidConfiguration;
        return;
    }
    {
        auto it = emu_func_maxdyn().find(kfn);
        const size_t lim = it == emu_func_maxdyn().end() ? 48 * 1024 : (size_t)it->second;
        if (dyn > lim) { emu_last = cudaErrorInvalidValue; return; }
    }
    if (nt % 32) { fprintf(stderr, "emu: block of %ld threads (partial warps not emulated)\n", nt); abort(); }
    if (sizeof(F) > 4096) fprintf(stderr, "emu: WARNING %s: %zu bytes of kernel arguments\n", kname, sizeof(F));
    emu_scan_args(&body, sizeof body, kname);
    emu_enqueue([=] {
        emu_launches()++;
        emu_open_scope o;
        emu_block blk;
        blk.bar.what = "__syncthreads";
        blk.endbar.what = "end of block";
        blk.bar.reset((int)nt);
        blk.endbar.reset((int)nt);
        blk.dyn_bytes = dyn;
        std::unique_ptr<char[]> dynbuf(new char[dyn + 256]);
        blk.dyn = (char *)(((uintptr_t)dynbuf.get() + 255) & ~(uintptr_t)255);
        memset(blk.dyn, emu_poison(), dyn);
        for (long i = 0; i < nt / 32; i++) {
            blk.warps.push_back(std::make_unique<emu_warp>());
            blk.warps.back()->bar.what = "warp collective";
            blk.warps.back()->bar.reset(32);
        }
        for (long i = 0; nt % 128 == 0 && i < nt / 128; i++) {
            blk.wgbars.push_back(std::make_unique<emu_bar>());
            blk.wgbars.back()->what = "warpgroup (wgmma)";
            blk.wgbars.back()->reset(128);
        }
        if (emu_fibers()) {
            emu_run_fibers(grid, block, nt, blk, std::function<void()>(body));
            return;
        }
        std::vector<std::thread> th;
        for (long t = 0; t < nt; t++)
            th.emplace_back([&, t] {
                threadIdx = {(unsigned)(t % block.x), (unsigned)((t / block.x) % block.y), (unsigned)(t / (block.x * block.y))};
                blockDim = block;
                gridDim = grid;
                emu_blk = &blk;
                emu_cur_warp = blk.warps[t / 32].get();
                emu_lane = (int)(t % 32);
                emu_tid = (int)t;
                emu_wphase = 0;
                emu_dyn_smem = blk.dyn;
                emu_rs = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t * 0x100000001b3ull) ^ (uint64_t)emu_launches();
                for (unsigned z = 0; z < grid.z; z++)
                    for (unsigned y = 0; y < grid.y; y++)
                        for (unsigned x = 0; x < grid.x; x++) {
                            blockIdx = {x, y, z};
                            body();
                            emu_commit();
                            emu_wait(0);
                            emu_wg_exit_check();
                            blk.bar.drop(); /* this thread has exited */
                            emu_cur_warp->bar.drop();
                            if (!blk.wgbars.empty()) blk.wgbars[(size_t)t / 128]->drop();
                            blk.endbar.wait(-1);
                            if (t == 0) { /* the next block: fresh barriers and poisoned shared memory */
                                blk.first_block = 0;
                                blk.bar.reset((int)nt);
                                for (auto &w : blk.warps) w->bar.reset(32);
                for (auto &w : blk.wgbars) w->reset(128);
                                for (auto &s : blk.shared) memset(s.p, emu_poison(), s.n);
                                memset(blk.dyn, emu_poison(), dyn);
                                if (!blk.unfenced.empty()) memset(blk.unfenced.data(), 0, blk.unfenced.size());
                                if (!blk.fence_gen.empty())
                                    memset(blk.fence_gen.data(), 0, blk.fence_gen.size() * sizeof(uint32_t));
                            }
                            emu_wphase = 0;
                            blk.endbar.wait(-1);
                        }
            });
        for (auto &t : th) t.join();
    });
}

struct emu_stats_t {
    ~emu_stats_t()
    {
        if (getenv("EMU_STATS"))
            fprintf(stderr, "emu: %ld kernel launches executed, %lu stream ops queued, %lu run\n", emu_launches(),
                    emu_q_total(), emu_q_done());
    }
};
inline emu_stats_t emu_stats;
