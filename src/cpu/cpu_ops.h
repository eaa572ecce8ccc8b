/* The arithmetic the CPU backend needs: thin inline wrappers over the kernel table of
 * cpu_kernels.h chosen at start-up (SIMD where the processor has it, the scalar reference
 * otherwise). The backend calls only these. */
#ifndef VKLLM_CPU_OPS_H
#define VKLLM_CPU_OPS_H

#include "core/common.h"
#include "core/quant.h"
#include "cpu/cpu_vec.h"
#include "cpu/cpu_kernels.h"

typedef struct cpu_ops {
    const cpu_kernels *kt;
    const cpu_vec_kernels *ak;
} cpu_ops;

/* Weight rows per matmul call are split across threads in multiples of this. */
#define CPU_MATMUL_ROW_ALIGN CPU_KERN_ROW_BLOCK

/* The best kernels the processor has, or at most `want` (CPU_KERN_SCALAR for tests). */
void cpu_ops_init(cpu_ops *k, cpu_kern_isa want);

/* float row -> activation type `type` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32). */
static inline void cpu_quantize_row(const cpu_ops *k, quant_type type, const float *x, void *y,
                                    int64_t n) {
    k->kt->quantize_row(type, x, y, n);
}

typedef cpu_matmul_args cpu_matmul_desc;

static inline void cpu_matmul(const cpu_ops *k, const cpu_matmul_desc *d) { k->kt->matmul(d); }

static inline void cpu_fp32_to_fp16_row(const cpu_ops *k, const float *x, uint16_t *y,
                                        int64_t n) {
    k->kt->fp32_to_fp16(x, y, n);
}
static inline float cpu_dot_f16(const cpu_ops *k, const uint16_t *a, const uint16_t *b,
                                int64_t n) {
    return k->kt->dot_f16(a, b, n);
}
/* y += a * x */
static inline void cpu_axpy_f16(const cpu_ops *k, float *y, const uint16_t *x, float a,
                                int64_t n) {
    k->kt->axpy_f16(y, x, a, n);
}

#endif
