/* The AVX-512 kernel tables: "avx512" (F, BW, VL, DQ) and "avx512vnni" (the same plus VNNI).
 * cpu_kernels.c hands each out only when cpuid says the processor (and the OS, for the
 * 512-bit register state) supports it.
 *
 * Every function of these tables returns the same bits as the AVX2 table's, so vkllm's
 * output does not depend on which x86 processor runs it, stays equal to llama.cpp's AVX2
 * arithmetic, and stays the reference the Vulkan kernels are tested against. The speed comes
 * from doing two of AVX2's 8-lane accumulators in one 512-bit register (two rows of a
 * matmul, or accumulators 0|1 and 2|3 of a dot product), which changes no lane's operations
 * or their order. What would not get faster this way is lent from the AVX2 table.
 * The matmul is in cpu_matmul_avx512.c (built twice, with and without VNNI).
 */
#include "cpu/cpu_kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)

#include <math.h>
#include <string.h>

static float avx512_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n) {
    __m512 s01 = _mm512_setzero_ps(), s23 = _mm512_setzero_ps();
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32) {
        s01 = _mm512_fmadd_ps(load_f16x16(a + i), load_f16x16(b + i), s01);
        s23 = _mm512_fmadd_ps(load_f16x16(a + i + 16), load_f16x16(b + i + 16), s23);
    }
    double sum = reduce_pairs(s01, s23); /* ggml keeps the tail sum in double */
    for (int64_t i = np; i < n; i++)
        sum += (double)(_cvtsh_ss(a[i]) * _cvtsh_ss(b[i]));
    return (float)sum;
}

static float avx512_dot_f32(const float *a, const float *b, int64_t n) {
    __m512 s01 = _mm512_setzero_ps(), s23 = _mm512_setzero_ps();
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32) {
        s01 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s01);
        s23 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s23);
    }
    float sum = reduce_pairs(s01, s23);
    for (int64_t i = np; i < n; i++)
        sum = fmaf(a[i], b[i], sum); /* ggml's tail, contracted */
    return sum;
}

/* A mask of the first min(left, 16) lanes. */
INLINE __mmask16 lanes(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* The product rounded before the add, as in every other table; a masked tail instead of a
 * scalar loop (lanes are independent, so the width changes nothing). */
static void avx512_axpy_f16(float *y, const uint16_t *x, float s, int64_t n) {
    const __m512 sv = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, x + i));
        const __m512 yv = _mm512_maskz_loadu_ps(k, y + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(yv, _mm512_mul_ps(sv, xv)));
    }
}

static void avx512_axpy_f32(float *y, const float *x, float s, int64_t n) {
    const __m512 sv = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 yv = _mm512_maskz_loadu_ps(k, y + i);
        _mm512_mask_storeu_ps(
            y + i, k, _mm512_add_ps(yv, _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(k, x + i))));
    }
}

static void avx512_fp32_to_fp16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m256i h =
            _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(y + i, k, h);
    }
}

static void avx512_fp16_to_fp32(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, x + i)));
    }
}

/* The two tables differ only in their matmul. */
#define AVX512_TABLE(ISA, NAME, MATMUL)                                                            \
    {                                                                                              \
        .isa = ISA, .name = NAME, .quantize_row = cpu_avx2_quantize_row, .matmul = MATMUL,         \
        .s24_quads = true, .dot_f16 = avx512_dot_f16, .axpy_f16 = avx512_axpy_f16,                 \
        .fp32_to_fp16 = avx512_fp32_to_fp16, .fp16_to_fp32 = avx512_fp16_to_fp32,                  \
        .dot_f32 = avx512_dot_f32, .axpy_f32 = avx512_axpy_f32, .dot_f32_tb = cpu_avx2_dot_f32_tb, \
        .dot_f16_tb = cpu_avx2_dot_f16_tb,                                                         \
    }

static const cpu_kernels k_avx512 = AVX512_TABLE(CPU_KERN_AVX512, "avx512", cpu_avx512_matmul);
static const cpu_kernels k_avx512vnni =
    AVX512_TABLE(CPU_KERN_AVX512VNNI, "avx512vnni", cpu_avx512vnni_matmul);

const cpu_kernels *cpu_kernels_avx512_table(bool vnni);
const cpu_kernels *cpu_kernels_avx512_table(bool vnni) {
    return vnni ? &k_avx512vnni : &k_avx512;
}

#else /* built without AVX-512 (another architecture): no table */

const cpu_kernels *cpu_kernels_avx512_table(bool vnni);
const cpu_kernels *cpu_kernels_avx512_table(bool vnni) {
    (void)vnni;
    return NULL;
}

#endif
