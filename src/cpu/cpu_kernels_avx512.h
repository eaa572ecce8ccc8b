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

#if defined(__AVX512F__)
/* INLINE, UNROLL, hsum8, and the AVX2 functions these tables lend (cpu_avx2_matmul,
 * cpu_avx2_quantize_row): every file that includes this one is compiled with AVX2 too. */
#include "cpu/cpu_kernels_avx2.h"

INLINE __m512 load_f16x16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* ggml's AVX F32/F16 dot: accumulators s0..s3 over steps of 32, reduced (0+2, 1+3, 0+1),
 * 128-bit halves added, two hadds. Here a = s0|s1 and b = s2|s3, so a + b is (0+2)|(1+3). */
INLINE float reduce_pairs(__m512 a, __m512 b) {
    const __m512 c = _mm512_add_ps(a, b);
    const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}
#endif

#endif
