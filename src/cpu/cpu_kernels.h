/* The CPU backend's arithmetic kernels, one constant table per instruction set.
 *
 * cpu_kernels_get() returns the table for an ISA if the running processor has it (cpuid), so
 * a binary built for any x86-64 uses AVX2 where it can. The scalar table is the reference
 * code of src/core/quant.c, callable on every machine, and what tests compare against.
 * Tables are immutable; there is no global mutable state. Nothing here allocates, and the
 * kernels are safe to call from many threads at once on disjoint outputs.
 *
 * Numbers: the AVX2 quantizers give the same bytes as the reference (and as llama.cpp's x86
 * CPU backend). The AVX2 matmul of Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K/F16/F32 follows
 * the lane order of llama.cpp's x86 AVX2 ggml_vec_dot_*, so on the same inputs it returns
 * the same floats; for Q4_1, Q5_0, Q5_1 and Q8_0 (tinyBLAS included) that is what llama.cpp's
 * whole mul_mat returns, decode and prefill. Against the scalar reference the results differ
 * by float rounding only. Q2_K, Q3_K and BF16 use the reference / a plain AVX2 loop.
 * The AVX-512 tables (with and without VNNI) return the AVX2 table's bits for every function:
 * they put two of its 8-lane accumulators in one register (cpu_kernels_avx512.c), so the
 * output of a model does not depend on which of these the processor has.
 * The packed 2:4 formats (S24_Q4, S24_Q8; cpu_s24.h, docs/sparse.md) are the exception to the
 * scalar table's other order: their reference dot product already follows the 8-lane order,
 * so every table, scalar included, gives the same bits for them.
 */
#ifndef VKLLM_CPU_KERNELS_H
#define VKLLM_CPU_KERNELS_H

#include "core/quant.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Same values as cpu_ops.h's cpu_isa, so the two convert by a cast. */
typedef enum cpu_kern_isa {
    CPU_KERN_BEST = -1, /* the best the processor has */
    CPU_KERN_SCALAR = 0,
    CPU_KERN_AVX2 = 1,       /* AVX2 + FMA + F16C */
    CPU_KERN_AVX512 = 2,     /* AVX2's + AVX-512 F, BW, VL, DQ */
    CPU_KERN_AVX512VNNI = 3, /* AVX512's + VNNI */
    CPU_KERN_COUNT = 4,
} cpu_kern_isa;

/* Y[t][r] = dot(W row r, X row t) for r in [r0, r1), t in [0, n_tokens).
 * W rows are in w_type; X rows must already be in quant_traits_of(w_type)->vec_dot_type
 * (see quantize_row). Callers split [0, n_rows) across threads by rows; ranges starting at
 * a multiple of CPU_KERN_ROW_BLOCK keep every thread on the fast path. */
typedef struct cpu_matmul_args {
    quant_type w_type;  /* a supported type (quant_traits.supported) */
    const void *w;      /* row 0 of the weight matrix */
    size_t w_row_bytes; /* bytes from one weight row to the next (>= quant_row_bytes) */
    int64_t n_in;       /* elements per row, a multiple of the type's block size */
    int64_t r0, r1;     /* weight rows to compute */
    const void *x;      /* n_tokens activation rows */
    size_t x_row_bytes; /* bytes from one activation row to the next */
    int64_t n_tokens;
    float *y;         /* y[t * y_stride + r] */
    int64_t y_stride; /* floats from one token's outputs to the next */
    /* W is S24_Q4 in cpu_s24.h's quad layout (w_row_bytes unused): only for tables with
     * s24_quads set */
    bool w_quads;
} cpu_matmul_args;

#define CPU_KERN_ROW_BLOCK 4

typedef struct cpu_kernels {
    cpu_kern_isa isa;
    const char *name; /* "scalar", "avx2", "avx512", "avx512vnni" */
    /* n floats -> one row of `type`, which is an activation type (Q8_0, Q8_1, Q8_K, F16,
     * BF16, F32) or any type with a reference quantizer. n a multiple of its block size. */
    void (*quantize_row)(quant_type type, const float *x, void *y, int64_t n);
    void (*matmul)(const cpu_matmul_args *a);
    /* matmul takes S24_Q4 weights in cpu_s24.h's quad layout (cpu_matmul_args.w_quads), the
     * layout these kernels read fastest */
    bool s24_quads;
    /* sum a[i] * b[i] over f16 rows, f32 accumulation (the KV cache's q.k). */
    float (*dot_f16)(const uint16_t *a, const uint16_t *b, int64_t n);
    /* y[i] += s * x[i], x f16 (attention's weighted sum of V rows). */
    void (*axpy_f16)(float *y, const uint16_t *x, float s, int64_t n);
    void (*fp32_to_fp16)(const float *x, uint16_t *y, int64_t n); /* round to nearest even */
    void (*fp16_to_fp32)(const uint16_t *x, float *y, int64_t n);
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*axpy_f32)(float *y, const float *x, float s, int64_t n);
    /* The dot products of llama.cpp's tinyBLAS (its F32 and F16 matrix products over two or
     * more tokens): one 8-lane FMA accumulator over n (a multiple of 8), then its horizontal
     * sum, so that LoRA products give llama.cpp's floats. The same bits on every table. */
    float (*dot_f32_tb)(const float *a, const float *b, int64_t n);
    float (*dot_f16_tb)(const uint16_t *a, const uint16_t *b, int64_t n);
} cpu_kernels;

/* The table for `isa`, or NULL if this processor (or build) lacks it. CPU_KERN_BEST never
 * returns NULL: at worst the scalar table. */
const cpu_kernels *cpu_kernels_get(cpu_kern_isa isa);
const char *cpu_kern_isa_name(cpu_kern_isa isa);
/* The ISA named "scalar", "avx2", "avx512" or "avx512vnni" (or "auto"/"best" for
 * CPU_KERN_BEST); false for any other name. */
bool cpu_kern_isa_parse(const char *name, cpu_kern_isa *out);

#endif
