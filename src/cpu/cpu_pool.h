/* A small thread pool for the CPU backend: run one function on all threads at once, with a
 * spinning barrier in between ops. Owned by a backend object; no global state. */
#ifndef VKLLM_CPU_POOL_H
#define VKLLM_CPU_POOL_H

#include "core/common.h"

typedef struct cpu_pool cpu_pool;
/* ith in [0, nth); the calling thread is ith 0. */
typedef void (*cpu_job_fn)(void *arg, int ith, int nth);

vkllm_status cpu_pool_create(const vkllm_allocator *a, int n_threads, cpu_pool **out,
                             core_err *err);
void cpu_pool_destroy(cpu_pool *p);
int cpu_pool_size(const cpu_pool *p);
/* Runs fn(arg, ith, nth) on every thread; returns when all have returned. */
void cpu_pool_run(cpu_pool *p, cpu_job_fn fn, void *arg);
/* Called by every thread inside a job: waits until all threads reach it. */
void cpu_pool_barrier(cpu_pool *p);

#endif
