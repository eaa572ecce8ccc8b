/* The packed 2:4 formats' (S24_Q4, S24_Q8) matmuls of the SIMD kernel tables: cpu_s24_avx2.c
 * and cpu_s24_avx512.c (built twice, with and without VNNI). Each gives the bits of the
 * reference dot product in src/core/quant_s24.c for every output; the tables' matmul sends
 * the S24 types here (the scalar table calls the reference itself).
 */
#ifndef VKLLM_CPU_S24_H
#define VKLLM_CPU_S24_H

#include "cpu/cpu_kernels.h"

/* S24_Q4 weights in quads: the layout the SIMD kernels read, built once from the file's by
 * cpu_s24_quads_pack (the CPU backend does it when a model is attached), the same bytes per
 * weight, so decode reads no more; only the unpacking work changes, never the bits. Rows go
 * in groups of 4 (a last group short of 4 repeats its last row); group q's 64-column block b
 * is the CPU_S24_QUAD_BYTES at (q * n_in / 64 + b) * CPU_S24_QUAD_BYTES:
 *  - bytes 0-7: the 4 rows' scales d (fp16);
 *  - bytes 8-39: for rows (0, 1) then (2, 3), 16 bytes from which one vpsrlvw gives the
 *    pshufb gather indices of cpu_s24_simd.h's layout for both rows (cpu_s24_quads.c says how
 *    the positions are spread);
 *  - bytes 40-103: the codes q (0..15) in cpu_s24_simd.h's layout for rows (0, 1) as low
 *    nibbles, rows (2, 3) as high nibbles (byte i: byte i of the two rows' 512-bit registers). */
#define CPU_S24_QUAD_BYTES 104
#define CPU_S24_QUADS_MAX_IN 32768 /* longer rows stay in the file layout */

/* Bytes of a rows x n_in S24_Q4 matrix in quads; 0 if n_in is not a multiple of 64 or above
 * CPU_S24_QUADS_MAX_IN. */
uint64_t cpu_s24_quads_bytes(int64_t rows, int64_t n_in);
/* Repacks rows x n_in S24_Q4 (rows w_row_bytes apart) into dst (cpu_s24_quads_bytes). */
void cpu_s24_quads_pack(const void *w, size_t w_row_bytes, int64_t rows, int64_t n_in, void *dst);

/* A model's S24_Q4 layer matrices in quads (the CPU backend's, made at attach). */
typedef struct cpu_s24_model_quads cpu_s24_model_quads;
struct eng_model;
struct eng_weight;
struct vkllm_allocator;
/* Bytes the quads of m's S24_Q4 layer matrices take (0: none to repack). */
uint64_t cpu_s24_model_quads_bytes(const struct eng_model *m);
/* Repacks them (NULL if out of memory) and hands the file pages they came from back to the
 * kernel, as nothing reads them again. */
cpu_s24_model_quads *cpu_s24_model_quads_make(const struct eng_model *m,
                                              const struct vkllm_allocator *a);
void cpu_s24_model_quads_free(cpu_s24_model_quads *q, const struct vkllm_allocator *a);
/* The quads of m's weight w, or NULL (not repacked; q may be NULL). */
const void *cpu_s24_quads_of(const cpu_s24_model_quads *q, const struct eng_model *m,
                             const struct eng_weight *w);

void cpu_avx2_matmul_s24(const cpu_matmul_args *a);
void cpu_avx512_matmul_s24(const cpu_matmul_args *a);
void cpu_avx512vnni_matmul_s24(const cpu_matmul_args *a);

#endif
