/* Internal to the AVX2 kernel files (cpu_kernels_avx2.c, cpu_matmul*_avx2.c): small inline
 * helpers and the functions one file lends the other. Include only from files compiled with
 * -mavx2 -mfma -mf16c; everything is inside the same feature guard as those files.
 */
#ifndef VKLLM_CPU_KERNELS_AVX2_H
#define VKLLM_CPU_KERNELS_AVX2_H

#include "cpu/cpu_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}
INLINE uint16_t f2h(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* (hi + lo), then pairs, then the last two: the order of ggml's hsum_float_8. */
INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibble pairs -> 32 bytes 0..15: low nibbles first (elements 0-15), then the
 * high ones (16-31), the element order of the 32-element formats. */
INLINE __m256i nibbles32(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(15));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set. */
INLINE __m256i bits32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i pick =
        _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), pick);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
}

float cpu_avx2_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n);
float cpu_avx2_dot_f32(const float *a, const float *b, int64_t n);
/* tinyBLAS order (cpu_kernels.dot_f32_tb, dot_f16_tb): n a multiple of 8 */
float cpu_avx2_dot_f32_tb(const float *a, const float *b, int64_t n);
float cpu_avx2_dot_f16_tb(const uint16_t *a, const uint16_t *b, int64_t n);
float cpu_avx2_dot_bf16(const uint16_t *a, const uint16_t *b, int64_t n);
void cpu_avx2_matmul(const cpu_matmul_args *a);
void cpu_avx2_quantize_row(quant_type type, const float *x, void *y, int64_t n);
void cpu_avx2_matmul_k(const cpu_matmul_args *a); /* Q4_K, Q5_K, Q6_K */

/* The tile loops must be unrolled for the accumulators to become registers; -O2 alone
 * leaves them as loops over a stack array. */
#define UNROLL _Pragma("GCC unroll 8")

#endif
#endif
