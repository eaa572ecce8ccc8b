/* Measurement on the CPU backend (cpu_bench.c), reached through eng_backend_vtbl, and the few
 * hooks into cpu_backend.c it needs: the backend's thread pool, kernels and allocator, and a
 * context's activation rows and KV cache (to fill them with random inputs). Internal to
 * src/cpu. */
#ifndef VKLLM_CPU_BENCH_H
#define VKLLM_CPU_BENCH_H

#include "cpu/cpu_ops.h"
#include "cpu/cpu_pool.h"
#include "engine/engine.h"

#include <stddef.h>

vkllm_status cpu_bench_bandwidth(eng_backend *be, double seconds, double *gbps,
                                 uint64_t *bytes, core_err *err);
vkllm_status cpu_bench_op(eng_backend *be, const vkllm_bench_op_desc *d, uint32_t w_type,
                          vkllm_bench_op_result *out, core_err *err);

/* Sum of the 64-bit words of [p, p + bytes) (bytes a multiple of 64, p 32-byte aligned): a
 * streaming read whose result the compiler cannot drop. The AVX2 build (cpu_bench_avx2.c)
 * returns NULL where the file was compiled without AVX2. */
typedef uint64_t (*cpu_bench_read_fn)(const void *p, size_t bytes);
cpu_bench_read_fn cpu_bench_read_avx2(void);

/* ---- hooks into cpu_backend.c ---- */
cpu_pool *cpu_backend_pool(eng_backend *be);
const cpu_ops *cpu_backend_ops(eng_backend *be);
const vkllm_allocator *cpu_backend_alloc(eng_backend *be);
/* A context's rows of activation buffer b, and its F16 K (values false) or V cache of layer 0
 * ([n_ctx][n_head_kv * head_dim]). */
float *cpu_ctx_rows(eng_ctx *c, eng_buf b);
uint16_t *cpu_ctx_cache(eng_ctx *c, bool values);

#endif
