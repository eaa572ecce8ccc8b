/* Thread pool: workers spin briefly waiting for the next job (the gap between two decode
 * steps is short), then sleep on a condition variable so an idle runtime costs no CPU.
 * Barriers spin and yield, since ops last microseconds to milliseconds. */
#include "cpu/cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define SPIN_BEFORE_SLEEP 20000
#define SPIN_BEFORE_YIELD 1000

struct cpu_pool {
    const vkllm_allocator *alloc;
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;    /* bumped for each job */
    atomic_int pending; /* workers still running the current job */
    atomic_int sleepers;
    atomic_bool quit;
    cpu_job_fn fn;
    void *arg;
    /* barrier */
    atomic_int bar_count;
    atomic_uint bar_phase;
};

typedef struct worker_arg {
    cpu_pool *p;
    int ith;
} worker_arg;

static void *worker_main(void *varg) {
    cpu_pool *p = ((worker_arg *)varg)->p;
    int ith = ((worker_arg *)varg)->ith;
    unsigned seen = 0; /* gen starts at 0; the first job may be posted before we run */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load(&p->quit)) {
            if (++spins < SPIN_BEFORE_SLEEP) {
                if (spins > SPIN_BEFORE_YIELD) sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        p->fn(p->arg, ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

vkllm_status cpu_pool_create(const vkllm_allocator *a, int n_threads, cpu_pool **out,
                             core_err *err) {
    if (n_threads < 1) n_threads = 1;
    cpu_pool *p = core_calloc(a, 1, sizeof *p);
    worker_arg *args = core_calloc(a, (size_t)n_threads, sizeof *args);
    if (p) p->threads = core_calloc(a, (size_t)n_threads, sizeof *p->threads);
    if (!p || !args || !p->threads) {
        if (p) core_free(a, p->threads);
        core_free(a, p);
        core_free(a, args);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: out of memory for thread pool");
    }
    p->alloc = a;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        args[i].p = p;
        args[i].ith = i;
        const int rc = pthread_create(&p->threads[i], NULL, worker_main, &args[i]);
        if (rc != 0) {
            p->n = i; /* only the started ones */
            cpu_pool_destroy(p);
            core_free(a, args);
            /* EAGAIN: no memory for its stack, or the process's thread limit */
            return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                             "cpu: could not start thread %d of %d: %s (fewer threads need less "
                             "memory)",
                             i + 1, n_threads, strerror(rc));
        }
    }
    /* Workers only read their arg before the first job; wait for that by running one. */
    *out = p;
    cpu_pool_run(p, NULL, NULL);
    core_free(a, args);
    return VKLLM_OK;
}

static void nop_job(void *arg, int ith, int nth) {}

void cpu_pool_run(cpu_pool *p, cpu_job_fn fn, void *arg) {
    p->fn = fn ? fn : nop_job;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    if (p->n > 1) {
        if (atomic_load(&p->sleepers) > 0) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->gen, 1);
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        } else {
            atomic_fetch_add(&p->gen, 1);
            /* a worker may have gone to sleep between the check and the bump */
            if (atomic_load(&p->sleepers) > 0) {
                pthread_mutex_lock(&p->mu);
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
            }
        }
    }
    p->fn(p->arg, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
        if (++spins > SPIN_BEFORE_YIELD) sched_yield();
}

void cpu_pool_barrier(cpu_pool *p) {
    if (p->n == 1) return;
    unsigned phase = atomic_load_explicit(&p->bar_phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->bar_count, 1, memory_order_acq_rel) == p->n - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->bar_phase, 1, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&p->bar_phase, memory_order_acquire) == phase)
        if (++spins > SPIN_BEFORE_YIELD) sched_yield();
}

int cpu_pool_size(const cpu_pool *p) {
    return p->n;
}

void cpu_pool_destroy(cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    const vkllm_allocator *a = p->alloc;
    core_free(a, p->threads);
    core_free(a, p);
}
