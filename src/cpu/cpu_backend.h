/* The CPU backend (see cpu_backend.c): creation only; everything else goes through
 * eng_backend_vtbl. */
#ifndef VKLLM_CPU_BACKEND_H
#define VKLLM_CPU_BACKEND_H

#include "cpu/cpu_kernels.h"
#include "engine/engine.h"

typedef struct cpu_backend_desc {
    const vkllm_allocator *alloc;
    int n_threads;       /* >= 1 */
    cpu_kern_isa isa;    /* CPU_KERN_BEST or a table the processor has (0 is the scalar one) */
    uint64_t memory_cap; /* bytes of weights and context buffers, 0 = no cap */
} cpu_backend_desc;

vkllm_status cpu_backend_create(const cpu_backend_desc *desc, eng_backend **out, core_err *err);

#endif
