/* Internal to the AVX-512 kernel files (cpu_kernels_avx512.c, cpu_matmul_avx512*.c). Include
 * only from files compiled with the AVX-512 flags of CMakeLists.txt.
 *
 * CPU_AVX512_VNNI (0 or 1) says which of the two builds of cpu_matmul_avx512.c this is; its
 * one exported function is named by CPU_AVX512_FN so both builds link into one library. The
 * AVX-512 tables lend the AVX2 table's functions for what they do not speed up themselves
 * (K formats, float weights, quantizers): every processor with AVX-512 has AVX2, and those
 * give the same bits anyway.
 */
#ifndef VKLLM_CPU_KERNELS_AVX512_H
#define VKLLM_CPU_KERNELS_AVX512_H

#include "cpu/cpu_kernels.h"

#ifndef CPU_AVX512_VNNI
#define CPU_AVX512_VNNI 0
#endif

#if CPU_AVX512_VNNI
#define CPU_AVX512_FN(name) cpu_avx512vnni_##name
#else
#define CPU_AVX512_FN(name) cpu_avx512_##name
#endif

void cpu_avx512_matmul(const cpu_matmul_args *a);
void cpu_avx512vnni_matmul(const cpu_matmul_args *a);
void cpu_avx512_matmul_k(const cpu_matmul_args *a); /* Q4_K, Q5_K, Q6_K (cpu_matmul_k_avx512.c) */

/* From the AVX2 files (compiled with AVX2; callable wherever AVX-512 is). */
void cpu_avx2_matmul(const cpu_matmul_args *a);
void cpu_avx2_quantize_row(quant_type type, const float *x, void *y, int64_t n);

#if defined(__AVX512F__)
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#endif

#endif
