/* Helpers shared by the quantization tests (test_quant.c: the reference code of src/core;
 * test_cpu_kernels.c: the SIMD kernel tables): a seeded generator whose sequence the golden
 * values depend on, activation-like data, the supported types, row sizes, and the scale of a
 * dot product's rounding error. Test-only; every function is static inline. */
#ifndef VKLLM_TESTS_QUANT_TEST_UTIL_H
#define VKLLM_TESTS_QUANT_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/common.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: the golden values of the tests were made with this exact generator */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float rng_float(uint64_t *s) { /* [-1, 1) */
    return (float)((double)(rng_next(s) >> 40) / 16777216.0) * 2.0f - 1.0f;
}
/* activation-like data: mostly within scale, one value in 64 eight times larger */
static inline void fill(uint64_t *s, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float v = rng_float(s) * scale;
        if ((rng_next(s) & 63) == 0) v *= 8.0f;
        x[i] = v;
    }
}

static const quant_type k_supported[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1,
                                         QT_Q5_0, QT_Q5_1, QT_Q8_0, QT_Q8_1, QT_Q2_K,
                                         QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_Q8_K};
#define N_SUPPORTED (sizeof k_supported / sizeof k_supported[0])

static inline uint64_t row_bytes(quant_type t, int64_t n) {
    uint64_t b = 0;
    assert_true(quant_row_bytes(t, (uint64_t)n, &b));
    return b;
}

/* Copy of a weight row with the per-block offsets (Q4_1/Q5_1 m, K-format dmin) set to zero,
 * so dequantizing it gives the scaled codes alone. */
static inline void zero_mins(quant_type t, void *row, int64_t n) {
    uint8_t *p = row;
    const quant_traits *qt = quant_traits_of(t);
    for (int64_t i = 0; i < n / qt->block_size; i++, p += qt->type_size) {
        switch (t) {
        case QT_Q4_1: ((quant_block_q4_1 *)p)->m = 0; break;
        case QT_Q5_1: ((quant_block_q5_1 *)p)->m = 0; break;
        case QT_Q2_K: ((quant_block_q2_K *)p)->dmin = 0; break;
        case QT_Q4_K: ((quant_block_q4_K *)p)->dmin = 0; break;
        case QT_Q5_K: ((quant_block_q5_K *)p)->dmin = 0; break;
        default: break;
        }
    }
}

/* The scale of a dot product's rounding error: sum (|d q_i| + |offset_i|) * |x_i| over the
 * dequantized rows, which bounds every partial sum however the terms are grouped. */
static inline double abs_terms(quant_type wt, const void *w, const void *x, int64_t n) {
    const quant_traits *qt = quant_traits_of(wt);
    const size_t wb = (size_t)row_bytes(wt, n);
    float *a = malloc(sizeof(float) * (size_t)n), *a0 = malloc(sizeof(float) * (size_t)n);
    float *b = malloc(sizeof(float) * (size_t)n);
    uint8_t *w0 = malloc(wb);
    memcpy(w0, w, wb);
    zero_mins(wt, w0, n);
    qt->dequant(w, a, n);
    qt->dequant(w0, a0, n);
    quant_traits_of(qt->vec_dot_type)->dequant(x, b, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (fabs((double)a0[i]) + fabs((double)a[i] - a0[i])) * fabs((double)b[i]);
    free(a);
    free(a0);
    free(b);
    free(w0);
    return s;
}

/* Values below 1e-3 in magnitude nudged up: for tests of conversions to fp16, where
 * subnormal results have their own test (test_fp16_subnormal_rounding). */
static inline void no_tiny(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 1e-3f) x[i] = x[i] < 0.0f ? -1e-3f : 1e-3f;
}

#endif
