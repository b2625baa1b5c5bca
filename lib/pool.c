/* The context's thread pool.
 *
 * T threads take part in a job: the caller (index 0) and T-1 workers. Thread
 * t runs a fixed contiguous range of the n tasks (n/T each, the first n%T
 * threads one more): a static partition, so which task runs
 * where is fixed, and since every op makes its tasks independent of T, its
 * result never depends on the thread count. Workers spin briefly on the job
 * generation (low start latency for back-to-back calls), then sleep on a
 * condition variable. Optional pinning puts worker t on physical core t
 * (hwloc); the caller's own thread is never re-bound.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include <hwloc.h>

#include "internal/lcx_internal.h"

#define LCX_SPIN_ROUNDS 20000


struct lcx_worker {
    struct lcx_pool *pool;
    pthread_t thread;
    int index;
    hwloc_bitmap_t cpuset; /* NULL = not pinned */
};

struct lcx_pool {
    int n;                      /* threads taking part, caller included */
    struct lcx_worker *workers; /* n - 1 */
    hwloc_topology_t topo;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    atomic_uint_fast64_t gen;   /* bumped once per job */
    atomic_int pending;         /* workers still running the current job */
    int stop;
    int n_pinned;               /* workers successfully bound to a core */
    lcx_task_fn fn;
    void *arg;
    int64_t n_tasks;
};

static inline void lcx_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* One round of a spin-wait: a CPU pause, and every 64 rounds a yield, so a
 * thread sharing the core (the caller woken onto a pinned worker's core, or
 * an oversubscribed machine) gets to run instead of waiting out the spin. */
static inline void lcx_spin_pause(int round)
{
    if ((round & 63) == 63)
        sched_yield();
    else
        lcx_cpu_relax();
}

static void lcx_run_range(struct lcx_pool *p, int t)
{
    /* thread t gets n/T tasks, plus one of the n%T left over if t < n%T */
    const int64_t q = p->n_tasks / p->n, r = p->n_tasks % p->n;
    const int64_t lo = q * t + (t < r ? t : r), hi = lo + q + (t < r ? 1 : 0);
    for (int64_t i = lo; i < hi; i++)
        p->fn(p->arg, i);
}

static void *lcx_worker_main(void *arg)
{
    struct lcx_worker *w = arg;
    struct lcx_pool *p = w->pool;
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int s = 0; g == seen && s < LCX_SPIN_ROUNDS; s++) {
            lcx_spin_pause(s);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !p->stop)
                pthread_cond_wait(&p->cv_start, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (g == seen) /* stop requested, no new job */
            break;
        seen = g;
        if (p->stop)
            break;
        lcx_run_range(p, w->index);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

lcx_status lcx_pool_create(int32_t n_threads, struct hwloc_topology *topo, int pin, lcx_pool **out)
{
    struct lcx_pool *p = calloc(1, sizeof *p);
    if (!p)
        return lcx_fail(LCX_E_NOMEM, "context: cannot allocate the thread pool");
    p->n = n_threads;
    p->topo = topo;
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return lcx_fail(LCX_E_NOMEM, "context: cannot allocate %d workers", (int)n_threads);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    const int ncores = topo ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) : 0;
    for (int t = 1; t < n_threads; t++) {
        struct lcx_worker *w = &p->workers[t - 1];
        w->pool = p;
        w->index = t;
        if (pin && ncores > 0) {
            hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)(t % ncores));
            if (core && core->cpuset) {
                w->cpuset = hwloc_bitmap_dup(core->cpuset);
                if (w->cpuset)
                    hwloc_bitmap_singlify(w->cpuset); /* one PU of the core */
            }
        }
        if (pthread_create(&w->thread, NULL, lcx_worker_main, w) != 0) {
            if (w->cpuset)
                hwloc_bitmap_free(w->cpuset);
            p->n = t; /* workers 1..t-1 exist */
            lcx_pool_destroy(p);
            return lcx_fail(LCX_E_NOMEM, "context: cannot start worker thread %d of %d", t,
                            (int)n_threads);
        }
        /* bind from here, synchronously, so the outcome is known */
        if (w->cpuset && hwloc_set_thread_cpubind(topo, w->thread, w->cpuset, 0) == 0)
            p->n_pinned++;
    }
    *out = p;
    return LCX_OK;
}

int lcx_pool_pinned(const lcx_pool *p)
{
    return p && p->n > 1 && p->n_pinned == p->n - 1;
}

void lcx_pool_destroy(lcx_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n; t++) {
        pthread_join(p->workers[t - 1].thread, NULL);
        if (p->workers[t - 1].cpuset)
            hwloc_bitmap_free(p->workers[t - 1].cpuset);
    }
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_start);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

void lcx_pool_run(lcx_pool *p, int64_t n, lcx_task_fn fn, void *arg)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);

    lcx_run_range(p, 0);

    for (int s = 0; s < LCX_SPIN_ROUNDS; s++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        lcx_spin_pause(s);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
