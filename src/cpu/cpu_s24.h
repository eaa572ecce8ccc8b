/* The packed 2:4 formats' (S24_Q4, S24_Q8) matmuls of the SIMD kernel tables: cpu_s24_avx2.c
 * and cpu_s24_avx512.c (built twice, with and without VNNI). Each gives the bits of the
 * reference dot product in src/core/quant_s24.c for every output; the tables' matmul sends
 * the S24 types here (the scalar table calls the reference itself).
 */
#ifndef VKLLM_CPU_S24_H
#define VKLLM_CPU_S24_H

#include "cpu/cpu_kernels.h"

void cpu_avx2_matmul_s24(const cpu_matmul_args *a);
void cpu_avx512_matmul_s24(const cpu_matmul_args *a);
void cpu_avx512vnni_matmul_s24(const cpu_matmul_args *a);

#endif
