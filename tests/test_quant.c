/* Tests of core/quant.c (formats, reference code) and cpu/cpu_kernels*.c (SIMD kernels).
 *
 *  - Sizes, names and activation types of every ggml type id.
 *  - Dequantization of hand-built blocks against hand-computed values.
 *  - Activation quantizers (Q8_0, Q8_1, Q8_K) against hand-checked bytes, including the
 *    rounding of ties, which is where llama.cpp's CPU path and ggml's portable reference part.
 *  - quant -> dequant error bounds for every type with a quantizer.
 *  - Reference dot products against the float dot product of the dequantized rows.
 *  - Every kernel table the machine has (scalar, AVX2, ...) against the reference: quantized
 *    rows byte for byte, matmul and f16 helpers within a stated tolerance, on odd shapes,
 *    row ranges and strides.
 *  - Golden values from llama.cpp (ggml_vec_dot_* on x86 AVX2), which the AVX2 matmul must
 *    reproduce bit for bit.
 *
 * Tolerance of a dot product: |a - b| <= 1e-5 * sum_i (|d q_i| + |offset_i|) * |x_i| over the
 * dequantized rows (offset: the per-block min of Q4_1/Q5_1/K formats; the sum bounds every
 * partial sum however the terms are grouped), plus, against the exact float dot product, the
 * fp16 rounding of s = d * sum(q) in the Q4_1/Q5_1 min term. Reordering a float sum of at
 * most a few hundred terms moves it by a few units in 1e-7 of that scale.
 *
 * Two tests depend on core_fp32_to_fp16 rounding subnormal results correctly
 * (test_fp16_subnormal_rounding says what to fix in src/core/common.c if it does not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/common.h"
#include "core/quant.h"
#include "core/quant_blocks.h"
#include "cpu/cpu_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

/* splitmix64: the golden values below were made with this exact generator */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rng_float(uint64_t *s) { /* [-1, 1) */
    return (float)((double)(rng_next(s) >> 40) / 16777216.0) * 2.0f - 1.0f;
}
/* activation-like data: mostly within scale, one value in 64 eight times larger */
static void fill(uint64_t *s, float *x, int64_t n, float scale) {
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

static uint64_t row_bytes(quant_type t, int64_t n) {
    uint64_t b = 0;
    assert_true(quant_row_bytes(t, (uint64_t)n, &b));
    return b;
}

/* Copy of a weight row with the per-block offsets (Q4_1/Q5_1 m, K-format dmin) set to zero,
 * so dequantizing it gives the scaled codes alone. */
static void zero_mins(quant_type t, void *row, int64_t n) {
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
static double abs_terms(quant_type wt, const void *w, const void *x, int64_t n) {
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
static void no_tiny(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 1e-3f) x[i] = x[i] < 0.0f ? -1e-3f : 1e-3f;
}

static double float_dot(quant_type wt, const void *w, const void *x, int64_t n) {
    const quant_traits *qt = quant_traits_of(wt);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    qt->dequant(w, a, n);
    quant_traits_of(qt->vec_dot_type)->dequant(x, b, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    free(a);
    free(b);
    return s;
}

/* Sum over blocks of |m_w * s_x| * 2^-10 for the _1 formats: s_x is d*sum(q) rounded to
 * fp16, so a dot product that uses it differs from the exact one by up to that much. */
static double min_term_slack(quant_type wt, const void *w, const void *x, int64_t n) {
    if (wt != QT_Q4_1 && wt != QT_Q5_1) return 0.0;
    const quant_block_q8_1 *xb = x;
    double s = 0.0;
    for (int64_t i = 0; i < n / QUANT_QK; i++) {
        const uint16_t m = wt == QT_Q4_1 ? ((const quant_block_q4_1 *)w)[i].m
                                         : ((const quant_block_q5_1 *)w)[i].m;
        s += fabs((double)core_fp16_to_fp32(m) * core_fp16_to_fp32(xb[i].s));
    }
    return s / 1024.0;
}

/* ---- type table ------------------------------------------------------------------------- */

static void test_type_table(void **state) {
    (void)state;
    /* ggml's block sizes and bytes (ggml.c type_traits) */
    static const struct {
        uint32_t id, bs, ts;
        const char *name;
    } want[] = {
        {0, 1, 4, "f32"},        {1, 1, 2, "f16"},        {2, 32, 18, "q4_0"},
        {3, 32, 20, "q4_1"},     {6, 32, 22, "q5_0"},     {7, 32, 24, "q5_1"},
        {8, 32, 34, "q8_0"},     {9, 32, 36, "q8_1"},     {10, 256, 84, "q2_K"},
        {11, 256, 110, "q3_K"},  {12, 256, 144, "q4_K"},  {13, 256, 176, "q5_K"},
        {14, 256, 210, "q6_K"},  {15, 256, 292, "q8_K"},  {16, 256, 66, "iq2_xxs"},
        {17, 256, 74, "iq2_xs"}, {18, 256, 98, "iq3_xxs"}, {19, 256, 50, "iq1_s"},
        {20, 32, 18, "iq4_nl"},  {21, 256, 110, "iq3_s"}, {22, 256, 82, "iq2_s"},
        {23, 256, 136, "iq4_xs"}, {24, 1, 1, "i8"},        {25, 1, 2, "i16"},
        {26, 1, 4, "i32"},       {27, 1, 8, "i64"},       {28, 1, 8, "f64"},
        {29, 256, 56, "iq1_m"},  {30, 1, 2, "bf16"},      {34, 256, 54, "tq1_0"},
        {35, 256, 66, "tq2_0"},  {39, 32, 17, "mxfp4"},   {40, 64, 36, "nvfp4"},
        {41, 128, 18, "q1_0"},   {42, 64, 18, "q2_0"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const quant_traits *t = quant_traits_of(want[i].id);
        assert_non_null(t);
        assert_int_equal(t->block_size, want[i].bs);
        assert_int_equal(t->type_size, want[i].ts);
        assert_string_equal(t->name, want[i].name);
        assert_string_equal(quant_type_name(want[i].id), want[i].name);
    }
    /* removed and future ids */
    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 43, 63, 64, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_null(quant_traits_of(unknown[i]));
        uint64_t b = 0;
        assert_false(quant_row_bytes(unknown[i], 256, &b));
    }
    assert_string_equal(quant_type_name(4), "type#4");
    assert_string_equal(quant_type_name(37), "type#37");
    assert_string_equal(quant_type_name(63), "type#63");
    assert_non_null(quant_type_name(UINT32_MAX));
    /* known but not computable */
    assert_false(quant_traits_of(16)->supported);
    assert_null(quant_traits_of(16)->dequant);

    uint64_t b = 0;
    assert_true(quant_row_bytes(QT_Q4_1, 576, &b));
    assert_int_equal(b, 360);
    assert_true(quant_row_bytes(QT_Q6_K, 4096, &b));
    assert_int_equal(b, 16 * 210);
    assert_true(quant_row_bytes(QT_F16, 3, &b));
    assert_int_equal(b, 6);
    assert_false(quant_row_bytes(QT_Q4_0, 33, &b));   /* not a multiple of the block */
    assert_false(quant_row_bytes(QT_Q4_K, 32, &b));
    assert_false(quant_row_bytes(QT_F32, UINT64_MAX / 2, &b)); /* overflow */
}

static void test_supported_and_vec_dot_types(void **state) {
    (void)state;
    /* llama.cpp CPU backend choices (ggml-cpu.c type_traits_cpu) */
    static const struct {
        quant_type w, x;
    } want[] = {{QT_F32, QT_F32},   {QT_F16, QT_F16},   {QT_BF16, QT_BF16}, {QT_Q4_0, QT_Q8_0},
                {QT_Q4_1, QT_Q8_1}, {QT_Q5_0, QT_Q8_0}, {QT_Q5_1, QT_Q8_1}, {QT_Q8_0, QT_Q8_0},
                {QT_Q2_K, QT_Q8_K}, {QT_Q3_K, QT_Q8_K}, {QT_Q4_K, QT_Q8_K}, {QT_Q5_K, QT_Q8_K},
                {QT_Q6_K, QT_Q8_K}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(quant_traits_of(want[i].w)->vec_dot_type, want[i].x);
    for (size_t i = 0; i < N_SUPPORTED; i++) {
        const quant_traits *t = quant_traits_of(k_supported[i]);
        assert_true(t->supported);
        assert_non_null(t->dequant);
        assert_non_null(t->quant);
        assert_non_null(t->vec_dot);
    }
}

/* ---- dequantization of hand-built blocks ---------------------------------------------- */

#define H_0_25 0x3400  /* fp16 0.25 */
#define H_0_5 0x3800   /* 0.5 */
#define H_1 0x3c00     /* 1.0 */
#define H_2 0x4000     /* 2.0 */
#define H_M1 0xbc00    /* -1.0 */

static void test_dequant_known_blocks(void **state) {
    (void)state;
    float y[256];

    quant_block_q4_0 b40 = {.d = H_0_5};
    for (int j = 0; j < 16; j++) b40.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    quant_traits_of(QT_Q4_0)->dequant(&b40, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_float_equal(y[j], (j - 8) * 0.5f, 0.0f);
        assert_float_equal(y[j + 16], (7 - j) * 0.5f, 0.0f);
    }

    quant_block_q4_1 b41 = {.d = H_0_25, .m = H_M1};
    for (int j = 0; j < 16; j++) b41.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    quant_traits_of(QT_Q4_1)->dequant(&b41, y, 32);
    assert_float_equal(y[0], -1.0f, 0.0f);
    assert_float_equal(y[15], 15 * 0.25f - 1.0f, 0.0f);
    assert_float_equal(y[16], 15 * 0.25f - 1.0f, 0.0f);
    assert_float_equal(y[31], -1.0f, 0.0f);

    /* Q5_0: element j gets bit j of qh as bit 4: here the odd elements */
    quant_block_q5_0 b50 = {.d = H_1};
    const uint32_t qh = 0xaaaaaaaau;
    memcpy(b50.qh, &qh, 4);
    for (int j = 0; j < 16; j++) b50.qs[j] = 0x31; /* low 1, high 3 */
    quant_traits_of(QT_Q5_0)->dequant(&b50, y, 32);
    assert_float_equal(y[0], 1 - 16, 0.0f);
    assert_float_equal(y[1], 17 - 16, 0.0f);
    assert_float_equal(y[16], 3 - 16, 0.0f);
    assert_float_equal(y[17], 19 - 16, 0.0f);

    quant_block_q5_1 b51 = {.d = H_0_5, .m = H_1};
    memcpy(b51.qh, &qh, 4);
    for (int j = 0; j < 16; j++) b51.qs[j] = 0x31;
    quant_traits_of(QT_Q5_1)->dequant(&b51, y, 32);
    assert_float_equal(y[1], 17 * 0.5f + 1.0f, 0.0f);
    assert_float_equal(y[16], 3 * 0.5f + 1.0f, 0.0f);

    quant_block_q8_0 b80 = {.d = H_2};
    for (int j = 0; j < 32; j++) b80.qs[j] = (int8_t)(j * 8 - 128);
    quant_traits_of(QT_Q8_0)->dequant(&b80, y, 32);
    assert_float_equal(y[0], -256.0f, 0.0f);
    assert_float_equal(y[31], 240.0f, 0.0f);

    /* Q4_K: group 0 scale 2 min 3 (low bytes), group 5 scale 33 min 20 (split layout) */
    quant_block_q4_K b4k;
    memset(&b4k, 0, sizeof b4k);
    b4k.d = H_1;
    b4k.dmin = H_0_5;
    b4k.scales[0] = 2;
    b4k.scales[4] = 3;
    b4k.scales[9] = (uint8_t)((33 & 15) | ((20 & 15) << 4)); /* group 5: byte j+4 */
    b4k.scales[1] |= (uint8_t)((33 >> 4) << 6);               /* top bits: byte j-4 */
    b4k.scales[5] |= (uint8_t)((20 >> 4) << 6);               /* and byte j */
    for (int l = 0; l < 32; l++) b4k.qs[l] = (uint8_t)(l & 15);       /* group 0, low nibbles */
    for (int l = 0; l < 32; l++) b4k.qs[64 + l] = (uint8_t)(7 << 4); /* group 5, high nibbles */
    quant_traits_of(QT_Q4_K)->dequant(&b4k, y, 256);
    assert_float_equal(y[5], 2.0f * 5 - 0.5f * 3, 0.0f);
    assert_float_equal(y[160 + 3], 33.0f * 7 - 0.5f * 20, 0.0f);
    assert_float_equal(y[32], 0.0f, 0.0f); /* group 1: scale 0, min 0 */

    /* Q6_K: element 64 + l of the first half: high nibble of ql[l], bits 4-5 of qh[l] */
    quant_block_q6_K b6k;
    memset(&b6k, 0, sizeof b6k);
    b6k.d = H_0_5;
    for (int g = 0; g < 16; g++) b6k.scales[g] = (int8_t)(g - 8);
    b6k.ql[3] = 0x90;         /* element 67: low 4 bits 9; element 3: 0 */
    b6k.qh[3] = 2 << 4;       /* element 67: high bits 2 -> q = 41, q - 32 = 9 */
    quant_traits_of(QT_Q6_K)->dequant(&b6k, y, 256);
    assert_float_equal(y[67], 0.5f * (4 - 8) * 9, 0.0f); /* group 67/16 = 4 */
    assert_float_equal(y[3], 0.5f * (0 - 8) * -32, 0.0f);

    /* Q8_K: float scale */
    quant_block_q8_K b8k;
    memset(&b8k, 0, sizeof b8k);
    b8k.d = 0.125f;
    b8k.qs[255] = -100;
    quant_traits_of(QT_Q8_K)->dequant(&b8k, y, 256);
    assert_float_equal(y[255], -12.5f, 0.0f);

    const uint16_t h[3] = {0x3555, 0xfbff, 0x0001}; /* 0.333251953125, -65504, 2^-24 */
    quant_traits_of(QT_F16)->dequant(h, y, 3);
    assert_float_equal(y[0], 0.333251953125f, 0.0f);
    assert_float_equal(y[1], -65504.0f, 0.0f);
    assert_float_equal(y[2], 5.9604644775390625e-8f, 0.0f);
    const uint16_t bf[2] = {0x3f80, 0xc040}; /* 1.0, -3.0 */
    quant_traits_of(QT_BF16)->dequant(bf, y, 2);
    assert_float_equal(y[0], 1.0f, 0.0f);
    assert_float_equal(y[1], -3.0f, 0.0f);
}

/* The word-parallel unpacking of Q4_K/Q5_K scales (for SIMD code) against the per-group one. */
static void test_k4_scale_unpacking(void **state) {
    (void)state;
    uint64_t seed = 17;
    for (int rep = 0; rep < 1000; rep++) {
        uint8_t s12[12], all[16];
        for (int i = 0; i < 12; i++) s12[i] = (uint8_t)rng_next(&seed);
        quant_k4_scales_mins(s12, all);
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            quant_k4_scale_min(s12, g, &sc, &m);
            assert_int_equal(all[g], sc);
            assert_int_equal(all[8 + g], m);
        }
    }
}

/* ---- activation quantizers: hand-checked bytes --------------------------------------- */

static void test_q8_activation_bytes(void **state) {
    (void)state;
    /* amax = 127, so d = 1 and x * 127/amax = x exactly: the codes show the rounding. Ties go
     * to even (2.5 -> 2, 3.5 -> 4, -0.5 -> 0): llama.cpp's x86 path. Its portable
     * quantize_row_q8_0_ref would give 3, 4, -1. */
    float x[32] = {127.0f, 2.5f, 3.5f, -0.5f, -2.5f, 0.49f, 126.5f, -127.0f, 1.0f};
    const int8_t want[32] = {127, 2, 4, 0, -2, 0, 126, -127, 1};
    quant_block_q8_0 b;
    quant_traits_of(QT_Q8_0)->quant(x, &b, 32);
    assert_int_equal(b.d, H_1);
    assert_memory_equal(b.qs, want, 32);

    quant_block_q8_1 b1;
    quant_traits_of(QT_Q8_1)->quant(x, &b1, 32);
    assert_int_equal(b1.d, H_1);
    assert_memory_equal(b1.qs, want, 32);
    /* s = d * sum = 127+2+4+0-2+0+126-127+1 = 131 */
    assert_int_equal(b1.s, core_fp32_to_fp16(131.0f));

    /* all zero: d = 0, codes 0 */
    float z[32] = {0};
    quant_traits_of(QT_Q8_0)->quant(z, &b, 32);
    assert_int_equal(b.d, 0);
    for (int j = 0; j < 32; j++) assert_int_equal(b.qs[j], 0);

    /* a scale that is not exact: amax = 1 -> d = fp16(1/127), codes round(x * 127) */
    float u[32];
    for (int j = 0; j < 32; j++) u[j] = (float)j / 31.0f;
    quant_traits_of(QT_Q8_1)->quant(u, &b1, 32);
    assert_int_equal(b1.d, core_fp32_to_fp16(1.0f / 127.0f));
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        assert_int_equal(b1.qs[j], (int)lrintf((float)j / 31.0f * 127.0f));
        sum += b1.qs[j];
    }
    assert_int_equal(b1.s, core_fp32_to_fp16((1.0f / 127.0f) * (float)sum));

    /* Q8_K: the signed extreme sets the scale (-127 / max), codes round half to even */
    float k[256];
    for (int j = 0; j < 256; j++) k[j] = (float)(j % 16) - 6.0f;
    k[7] = -254.0f; /* max = -254: iscale = 0.5, d = 2 */
    k[8] = 254.0f;  /* same magnitude later: the first one wins */
    quant_block_q8_K bk;
    quant_traits_of(QT_Q8_K)->quant(k, &bk, 256);
    assert_float_equal(bk.d, 2.0f, 0.0f);
    assert_int_equal(bk.qs[7], -127);
    assert_int_equal(bk.qs[8], 127);
    assert_int_equal(bk.qs[0], -3);  /* -6 * 0.5 */
    assert_int_equal(bk.qs[5], 0);   /* -1 * 0.5 = -0.5 -> 0 */
    assert_int_equal(bk.qs[11], 2);  /* 5 * 0.5 = 2.5 -> 2 */
    assert_int_equal(bk.qs[13], 4);  /* 7 * 0.5 = 3.5 -> 4 */
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += bk.qs[16 * g + l];
        assert_int_equal(bk.bsums[g], s);
    }
}

/* Half-precision rounding of the tiny block scales of near-zero activations: core's
 * conversion must agree with IEEE round-to-nearest-even (F16C, which llama.cpp uses) on
 * subnormal results too, or the d bytes of such blocks differ from llama.cpp's. */
static void test_fp16_subnormal_rounding(void **state) {
    (void)state;
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {5.9604644775390625e-8f, 0x0001}, /* 2^-24, the smallest subnormal */
        {2.9802322387695312e-8f, 0x0000}, /* 2^-25: a tie, to even (0) */
        {3.0e-8f, 0x0001},                /* just above the tie */
        {1.0e-7f, 0x0002},                /* 1.68 * 2^-24 */
        {6.0975551605224609e-5f, 0x03ff}, /* the largest subnormal */
        {6.1035156250e-5f, 0x0400},       /* 2^-14, the smallest normal */
        {1.0f / 127.0f * 1e-3f, 0x0084},  /* d of a block with amax 1e-3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = core_fp32_to_fp16(cases[i].f);
        if (got != cases[i].h)
            fail_msg("core_fp32_to_fp16(%g) = 0x%04x, want 0x%04x (src/core/common.c: the subnormal "
                     "shift should be 126 - exponent, not 126 - exponent + 11)",
                     (double)cases[i].f, got, cases[i].h);
        assert_int_equal(core_fp32_to_fp16(-cases[i].f), cases[i].h | 0x8000);
    }
}

/* ---- quant -> dequant --------------------------------------------------------------------- */

/* Root mean square error over the row, relative to the row's RMS, must stay below a bound
 * per format, about 1.3x what the reference quantizers measure on this data (whose 1-in-64
 * outliers set most block scales). The K-format bounds are for vkllm's plain
 * round-to-nearest quantizers; llama.cpp's error-searching ones do better. */
static void test_quant_dequant_error(void **state) {
    (void)state;
    static const struct {
        quant_type t;
        double max_rel_rmse;
    } bounds[] = {
        {QT_F32, 0.0},    {QT_F16, 3e-4},   {QT_BF16, 2.5e-3}, {QT_Q8_0, 0.0125},
        {QT_Q8_1, 0.0125}, {QT_Q8_K, 0.025}, {QT_Q5_0, 0.09},   {QT_Q5_1, 0.06},
        {QT_Q4_0, 0.18},  {QT_Q4_1, 0.13},   {QT_Q6_K, 0.035},  {QT_Q5_K, 0.062},
        {QT_Q4_K, 0.13},  {QT_Q3_K, 0.30},   {QT_Q2_K, 0.50},
    };
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const quant_traits *qt = quant_traits_of(bounds[i].t);
        for (int rep = 0; rep < 4; rep++) {
            fill(&seed, x, N, rep == 3 ? 0.05f : 1.0f);
            if (rep == 2)
                for (int j = 0; j < N; j++) x[j] = fabsf(x[j]) + 0.5f; /* all positive */
            qt->quant(x, q, N);
            qt->dequant(q, y, N);
            double e2 = 0.0, x2 = 0.0;
            for (int j = 0; j < N; j++) {
                e2 += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
                x2 += (double)x[j] * x[j];
            }
            const double rel = sqrt(e2 / x2);
            /* rep 3 (small values) gives blocks subnormal fp16 scales */
            if (rel > bounds[i].max_rel_rmse)
                fail_msg("%s rep %d: relative RMSE %.4g > %.4g%s", qt->name, rep, rel,
                         bounds[i].max_rel_rmse,
                         rep == 3 ? " (subnormal fp16 scales: see test_fp16_subnormal_rounding)" : "");
        }
    }
}

/* ---- reference dot products ------------------------------------------------------------- */

static void test_ref_vec_dot_vs_float(void **state) {
    (void)state;
    enum { N = 1536 };
    static float w[N], x[N];
    static uint8_t wq[N * 4], xq[N * 4];
    uint64_t seed = 11;
    for (size_t i = 0; i < N_SUPPORTED; i++) {
        const quant_traits *qt = quant_traits_of(k_supported[i]);
        for (int rep = 0; rep < 8; rep++) {
            fill(&seed, w, N, 0.1f);
            fill(&seed, x, N, 1.0f);
            qt->quant(w, wq, N);
            quant_traits_of(qt->vec_dot_type)->quant(x, xq, N);
            const double got = qt->vec_dot(N, wq, xq), want = float_dot(k_supported[i], wq, xq, N);
            const double tol = 1e-5 * abs_terms(k_supported[i], wq, xq, N) +
                               min_term_slack(k_supported[i], wq, xq, N);
            if (fabs(got - want) > tol)
                fail_msg("%s: vec_dot %.9g, float dot %.9g, tolerance %.3g", qt->name, got, want,
                         tol);
        }
    }
}

/* ---- kernel tables against the reference ------------------------------------------------ */

static void test_kernel_tables(void **state) {
    (void)state;
    assert_non_null(cpu_kernels_get(CPU_KERN_SCALAR));
    assert_non_null(cpu_kernels_get(CPU_KERN_BEST));
    assert_int_equal(cpu_kernels_get(CPU_KERN_SCALAR)->isa, CPU_KERN_SCALAR);
    assert_string_equal(cpu_kernels_get(CPU_KERN_SCALAR)->name, "scalar");
    assert_null(cpu_kernels_get((cpu_kern_isa)99));
    const cpu_kernels *best = cpu_kernels_get(CPU_KERN_BEST);
    assert_ptr_equal(best, cpu_kernels_get(best->isa));
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (k) print_message("kernel table available: %s\n", k->name);
    }
}

static void check_quantize_row(const cpu_kernels *k, quant_type t, int64_t n, uint64_t *seed) {
    static float x[4096];
    static uint8_t a[4096 * 4], b[4096 * 4];
    const bool is_float = t == QT_F16 || t == QT_BF16 || t == QT_F32;
    for (int rep = 0; rep < 6; rep++) {
        fill(seed, x, n, rep == 5 ? 100.0f : 1.0f);
        if (rep == 1) memset(x, 0, sizeof(float) * (size_t)n); /* zero blocks */
        if (rep == 2) /* amax 127 in every block and halves elsewhere: exact ties to round */
            for (int64_t j = 0; j < n; j++)
                x[j] = j % 32 == 0 ? 127.0f : (float)((j * 37) % 255 - 127) * 0.5f;
        if (t == QT_F16) no_tiny(x, n);
        if (rep == 3 && is_float) { /* specials */
            x[0] = INFINITY;
            if (n > 1) x[n - 1] = -0.0f;
            if (n > 2) x[1] = 65519.0f; /* rounds to the f16 maximum */
            if (n > 3) x[2] = 1e30f;
        }
        quant_traits_of(t)->quant(x, a, n);
        k->quantize_row(t, x, b, n);
        if (memcmp(a, b, row_bytes(t, n)) != 0)
            fail_msg("%s quantize_row(%s, n=%lld, rep %d) differs from the reference", k->name,
                     quant_type_name(t), (long long)n, rep);
    }
}

static void test_quantize_row_identical(void **state) {
    (void)state;
    static const quant_type acts[] = {QT_Q8_0, QT_Q8_1, QT_Q8_K, QT_F16, QT_BF16, QT_F32};
    static const int64_t lens[] = {256, 512, 4096};
    static const int64_t float_lens[] = {1, 7, 8, 15, 16, 17, 33, 100};
    uint64_t seed = 3;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
            const quant_type t = acts[ai];
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
                check_quantize_row(k, t, lens[li], &seed);
            if (t == QT_F16 || t == QT_BF16 || t == QT_F32)
                for (size_t li = 0; li < sizeof float_lens / sizeof float_lens[0]; li++)
                    check_quantize_row(k, t, float_lens[li], &seed);
        }
    }
}

/* The matmul of every table on every supported weight type, against the reference dot product
 * per output, over shapes that exercise the tails of the row and token blocking, row ranges,
 * padded strides; outputs outside the range must be left alone. */
static void check_matmul(const cpu_kernels *k, quant_type wt, int64_t n, int64_t rows,
                         int64_t tokens, int64_t r0, int64_t r1, uint64_t *seed) {
    const quant_traits *qt = quant_traits_of(wt);
    const uint64_t wrb = row_bytes(wt, n) + 64, xrb = row_bytes(qt->vec_dot_type, n) + 32;
    const int64_t ys = rows + 3;
    uint8_t *w = calloc((size_t)(wrb * (uint64_t)rows), 1);
    uint8_t *x = calloc((size_t)(xrb * (uint64_t)tokens), 1);
    float *row = malloc(sizeof(float) * (size_t)n);
    float *y = malloc(sizeof(float) * (size_t)(ys * tokens));
    for (int64_t r = 0; r < rows; r++) {
        fill(seed, row, n, 0.1f);
        qt->quant(row, w + (size_t)r * wrb, n);
    }
    for (int64_t t = 0; t < tokens; t++) {
        fill(seed, row, n, 1.0f);
        quant_traits_of(qt->vec_dot_type)->quant(row, x + (size_t)t * xrb, n);
    }
    for (int64_t i = 0; i < ys * tokens; i++) y[i] = 12345.0f;
    const cpu_matmul_args a = {.w_type = wt, .w = w, .w_row_bytes = wrb, .n_in = n, .r0 = r0,
                               .r1 = r1, .x = x, .x_row_bytes = xrb, .n_tokens = tokens, .y = y,
                               .y_stride = ys};
    k->matmul(&a);
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t r = 0; r < ys; r++) {
            const float got = y[t * ys + r];
            if (r < r0 || r >= r1) {
                if (got != 12345.0f)
                    fail_msg("%s %s: y[%lld][%lld] outside [%lld, %lld) was written", k->name,
                             qt->name, (long long)t, (long long)r, (long long)r0, (long long)r1);
                continue;
            }
            const void *wr = w + (size_t)r * wrb, *xr = x + (size_t)t * xrb;
            const double want = qt->vec_dot(n, wr, xr);
            const double tol = 1e-5 * abs_terms(wt, wr, xr, n) + 1e-30;
            if (fabs(got - want) > tol)
                fail_msg("%s %s n=%lld rows=%lld tokens=%lld: y[%lld][%lld] = %.9g, reference "
                         "%.9g, tolerance %.3g",
                         k->name, qt->name, (long long)n, (long long)rows, (long long)tokens,
                         (long long)t, (long long)r, got, want, tol);
        }
    free(w);
    free(x);
    free(row);
    free(y);
}

static void test_matmul_vs_reference(void **state) {
    (void)state;
    static const int64_t tokens[] = {1, 2, 3, 5, 17};
    static const int64_t rows[] = {1, 3, 8, 13};
    uint64_t seed = 5;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        for (size_t ti = 0; ti < N_SUPPORTED; ti++) {
            const quant_type wt = k_supported[ti];
            const uint32_t bs = quant_traits_of(wt)->block_size;
            const int64_t n = bs == 256 ? 512 : bs == 32 ? 576 : 100;
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                for (size_t tk = 0; tk < sizeof tokens / sizeof tokens[0]; tk++) {
                    const int64_t R = rows[ri];
                    check_matmul(k, wt, n, R, tokens[tk], 0, R, &seed);
                    if (R > 2) check_matmul(k, wt, n, R, tokens[tk], 1, R - 1, &seed);
                }
            /* a row range inside a large matrix, a long row, and one block */
            check_matmul(k, wt, n, 70, 4, 5, 66, &seed);
            check_matmul(k, wt, bs == 1 ? 4100 : 16 * (int64_t)bs, 9, 2, 0, 9, &seed);
            check_matmul(k, wt, bs, 6, 3, 0, 6, &seed);
        }
    }
}

/* Rows longer than the SIMD path's stack buffers (32768 elements) take the reference path. */
static void test_matmul_long_rows(void **state) {
    (void)state;
    uint64_t seed = 9;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        check_matmul(k, QT_Q4_1, 32768 + 32, 5, 2, 0, 5, &seed);
        check_matmul(k, QT_Q8_0, 32768 + 64, 3, 1, 0, 3, &seed);
    }
}

/* ---- golden values from llama.cpp ------------------------------------------------------- */

/* ggml_vec_dot_<type>_<vec_dot_type>, llama.cpp's x86 AVX2 build (the CPU backend's own
 * dot products; for these types its whole mul_mat gives the same floats, prefill included),
 * on 3 weight rows x 2 tokens of n = 576 (512 for the K formats) made by fill() below;
 * weights quantized with our reference quantizer, activations with our quantize_row
 * (byte-identical to llama.cpp's). For Q4_K llama.cpp's AVX2 mul_mat repacks the weights
 * and sums differently; these are its vec_dot values.
 * Output order: token 0 rows 0-2, token 1 rows 0-2, as float bits. */
static const struct {
    quant_type t;
    uint32_t bits[6];
} k_golden[] = {
    {QT_Q4_1, {0xbece1140, 0xbeeb9ec0, 0x403fe758, 0x3fe3e5e6, 0xbfcc338f, 0x3f04cf84}},
    {QT_Q8_0, {0xbfc0d5f4, 0x3fd80e9c, 0x3f44aeab, 0x3fbdbc8e, 0xbe886491, 0x3cc040c8}},
    {QT_Q5_1, {0x3f54de10, 0x40a8e6fe, 0xbf1d0de0, 0x40229d99, 0xbfd400e4, 0x3f4b3210}},
    {QT_Q4_0, {0x3ea6ffc4, 0xbf48bf01, 0xbfc89f37, 0xbf3ce416, 0xbf873c3b, 0xbe81a68e}},
    {QT_Q5_0, {0x3f97cd98, 0xbe2e5078, 0x3f8427d1, 0xc03654eb, 0xbebdd230, 0x3f96ed80}},
    {QT_F16, {0xbedf2615, 0xbfb0649a, 0xc015a414, 0x3fcd3f1e, 0xbf05efde, 0xbe9a594a}},
    {QT_Q4_K, {0xbee6a5f0, 0xbe3b0d90, 0x3fbe0656, 0x400f3814, 0xbfc55bb8, 0x3f7c23a8}},
    {QT_Q5_K, {0xbf87ee1a, 0xbfbb0948, 0xbf4b47bc, 0xbf8646cb, 0xbf2b0397, 0xbe53c838}},
    {QT_Q6_K, {0xbfb7e50c, 0xbfa473e7, 0xbea860c8, 0x3e735980, 0xbde76920, 0x3e625e90}},
};

/* Every SIMD table (AVX2, and AVX-512 with and without VNNI where the processor has them)
 * returns llama.cpp's AVX2 floats; a machine without AVX2 cannot run this check and says so. */
static void test_simd_matches_llama_cpp(void **state) {
    (void)state;
    if (!cpu_kernels_get(CPU_KERN_AVX2)) {
        print_message("no AVX2 on this machine: llama.cpp golden values not checked\n");
        skip();
    }
    enum { NMAX = 576, R = 3, T = 2 };
    for (int isa = CPU_KERN_AVX2; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) {
            print_message("%s: not on this processor, not checked\n", cpu_kern_isa_name((cpu_kern_isa)isa));
            continue;
        }
        for (size_t gi = 0; gi < sizeof k_golden / sizeof k_golden[0]; gi++) {
            const quant_type t = k_golden[gi].t;
            const quant_traits *qt = quant_traits_of(t);
            const int N = qt->block_size == QUANT_QK_K ? 512 : 576;
            const quant_type vdt = qt->vec_dot_type;
            uint64_t seed = 1234 + (uint64_t)t;
            static float row[NMAX];
            static uint8_t w[R][NMAX * 4], x[T][NMAX * 4];
            for (int r = 0; r < R; r++) {
                fill(&seed, row, N, 0.1f);
                qt->quant(row, w[r], N);
            }
            for (int j = 0; j < T; j++) {
                fill(&seed, row, N, 1.0f);
                k->quantize_row(vdt, row, x[j], N);
            }
            float y[T * R];
            const cpu_matmul_args a = {.w_type = t, .w = w, .w_row_bytes = sizeof w[0], .n_in = N,
                                       .r0 = 0, .r1 = R, .x = x, .x_row_bytes = sizeof x[0],
                                       .n_tokens = T, .y = y, .y_stride = R};
            k->matmul(&a);
            for (int i = 0; i < T * R; i++) {
                uint32_t u;
                memcpy(&u, &y[i], 4);
                if (u != k_golden[gi].bits[i])
                    fail_msg("%s %s output %d: 0x%08x, llama.cpp 0x%08x", k->name, qt->name, i, u,
                             k_golden[gi].bits[i]);
            }
        }
        print_message("%s: llama.cpp's bits on %zu formats\n", k->name,
                      sizeof k_golden / sizeof k_golden[0]);
    }
}

/* The AVX-512 tables must return the AVX2 table's bits, not just close values: the Vulkan
 * kernels and the golden tokens are held to AVX2's arithmetic (their float helpers: in
 * test_float_helpers). Every supported weight type,
 * tile edges in rows (odd counts, a lone last row, ranges not starting at 0) and tokens
 * (1..17), padded strides, and Q8_0 weights holding -128 (which no quantizer writes but a
 * file may hold). */
static void check_same_bits(const cpu_kernels *ref, const cpu_kernels *k, quant_type wt, int64_t n,
                            int64_t rows, int64_t tokens, int64_t r0, int64_t r1, uint64_t *seed) {
    const quant_traits *qt = quant_traits_of(wt);
    const uint64_t wrb = row_bytes(wt, n) + 16, xrb = row_bytes(qt->vec_dot_type, n) + 48;
    const int64_t ys = rows + 1;
    uint8_t *w = calloc((size_t)(wrb * (uint64_t)rows), 1);
    uint8_t *x = calloc((size_t)(xrb * (uint64_t)tokens), 1);
    float *row = malloc(sizeof(float) * (size_t)n);
    float *y0 = malloc(sizeof(float) * (size_t)(ys * tokens));
    float *y1 = malloc(sizeof(float) * (size_t)(ys * tokens));
    for (int64_t r = 0; r < rows; r++) {
        fill(seed, row, n, r % 5 == 4 ? 30.0f : 0.1f);
        qt->quant(row, w + (size_t)r * wrb, n);
        if (wt == QT_Q8_0 && r % 3 == 1) /* a code of -128 in some blocks */
            for (int64_t b = 0; b < n / QUANT_QK; b += 2)
                ((quant_block_q8_0 *)(w + (size_t)r * wrb))[b].qs[(b * 7) % QUANT_QK] = -128;
    }
    for (int64_t t = 0; t < tokens; t++) {
        fill(seed, row, n, t % 4 == 3 ? 100.0f : 1.0f);
        ref->quantize_row(qt->vec_dot_type, row, x + (size_t)t * xrb, n);
    }
    for (int64_t i = 0; i < ys * tokens; i++) y0[i] = y1[i] = -7.0f;
    cpu_matmul_args a = {.w_type = wt, .w = w, .w_row_bytes = wrb, .n_in = n, .r0 = r0, .r1 = r1,
                         .x = x, .x_row_bytes = xrb, .n_tokens = tokens, .y = y0, .y_stride = ys};
    ref->matmul(&a);
    a.y = y1;
    k->matmul(&a);
    for (int64_t i = 0; i < ys * tokens; i++)
        if (memcmp(&y0[i], &y1[i], sizeof(float)) != 0)
            fail_msg("%s %s n=%lld rows=%lld [%lld, %lld) tokens=%lld: y[%lld][%lld] = %a, %s %a",
                     k->name, qt->name, (long long)n, (long long)rows, (long long)r0, (long long)r1,
                     (long long)tokens, (long long)(i / ys), (long long)(i % ys), (double)y1[i],
                     ref->name, (double)y0[i]);
    free(w);
    free(x);
    free(row);
    free(y0);
    free(y1);
}

static void test_simd_tables_same_bits(void **state) {
    (void)state;
    const cpu_kernels *ref = cpu_kernels_get(CPU_KERN_AVX2);
    if (!ref) {
        print_message("no AVX2 on this machine: no SIMD tables to compare\n");
        skip();
    }
    static const int64_t tokens[] = {1, 2, 3, 4, 5, 8, 17};
    static const int64_t rows[] = {1, 2, 3, 7, 8, 9, 16, 22};
    uint64_t seed = 77;
    int checked = 0;
    for (int isa = CPU_KERN_AVX2 + 1; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) {
            print_message("%s: not on this processor, not checked\n", cpu_kern_isa_name((cpu_kern_isa)isa));
            continue;
        }
        for (size_t ti = 0; ti < N_SUPPORTED; ti++) {
            const quant_type wt = k_supported[ti];
            const uint32_t bs = quant_traits_of(wt)->block_size;
            const int64_t n = bs == 256 ? 512 : bs == 32 ? 576 : 100;
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                for (size_t tk = 0; tk < sizeof tokens / sizeof tokens[0]; tk++) {
                    const int64_t R = rows[ri];
                    check_same_bits(ref, k, wt, n, R, tokens[tk], 0, R, &seed);
                    if (R > 2) check_same_bits(ref, k, wt, n, R, tokens[tk], 1, R, &seed);
                }
            /* a thread's share of a large matrix, one block per row, long rows */
            check_same_bits(ref, k, wt, n, 200, 1, 4, 196, &seed);
            check_same_bits(ref, k, wt, n, 200, 9, 8, 200, &seed);
            check_same_bits(ref, k, wt, bs == 1 ? 64 : bs, 11, 5, 0, 11, &seed);
            check_same_bits(ref, k, wt, bs == 1 ? 4096 : 128 * (int64_t)bs, 5, 6, 0, 5, &seed);
            if (bs == 32) check_same_bits(ref, k, wt, 32768 + 32, 3, 2, 0, 3, &seed);
        }
        checked++;
    }
    print_message("%d AVX-512 table(s) checked against AVX2 bit for bit\n", checked);
}

/* A token's outputs do not depend on how many tokens share the call: every table, every
 * type, the decode path (one token: other row tiles, prefetching) against the prefill path
 * (token tiles), bit for bit. Batching and the golden tests rely on this. */
static void test_matmul_batch_invariant(void **state) {
    (void)state;
    uint64_t seed = 31;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        for (size_t ti = 0; ti < N_SUPPORTED; ti++) {
            const quant_type wt = k_supported[ti];
            const quant_traits *qt = quant_traits_of(wt);
            const int64_t n = qt->block_size == 256 ? 1024 : qt->block_size == 32 ? 576 : 100;
            enum { R = 23, T = 7 };
            const uint64_t wrb = row_bytes(wt, n), xrb = row_bytes(qt->vec_dot_type, n);
            uint8_t *w = calloc((size_t)(wrb * R), 1), *x = calloc((size_t)(xrb * T), 1);
            float *row = malloc(sizeof(float) * (size_t)n), yall[T * R], yone[R];
            for (int r = 0; r < R; r++) {
                fill(&seed, row, n, 0.1f);
                qt->quant(row, w + (size_t)r * wrb, n);
            }
            for (int t = 0; t < T; t++) {
                fill(&seed, row, n, 1.0f);
                k->quantize_row(qt->vec_dot_type, row, x + (size_t)t * xrb, n);
            }
            cpu_matmul_args a = {.w_type = wt, .w = w, .w_row_bytes = wrb, .n_in = n, .r0 = 0,
                                 .r1 = R, .x = x, .x_row_bytes = xrb, .n_tokens = T, .y = yall,
                                 .y_stride = R};
            k->matmul(&a);
            for (int t = 0; t < T; t++) {
                a.x = x + (size_t)t * xrb;
                a.n_tokens = 1;
                a.y = yone;
                k->matmul(&a);
                if (memcmp(yone, yall + t * R, sizeof yone) != 0)
                    fail_msg("%s %s: token %d alone differs from the batch of %d", k->name,
                             qt->name, t, (int)T);
            }
            free(w);
            free(x);
            free(row);
        }
    }
}

/* ---- f16 / f32 helpers ------------------------------------------------------------------ */

static void test_float_helpers(void **state) {
    (void)state;
    static const int64_t lens[] = {0, 1, 5, 8, 15, 16, 17, 31, 32, 33, 64, 100, 1027};
    const cpu_kernels *ref = cpu_kernels_get(CPU_KERN_SCALAR), *avx2 = cpu_kernels_get(CPU_KERN_AVX2);
    enum { MAXN = 1027 };
    static float a[MAXN], b[MAXN], y0[MAXN], y1[MAXN];
    static uint16_t ha[MAXN], hb[MAXN], h0[MAXN], h1[MAXN];
    uint64_t seed = 21;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            fill(&seed, a, n, 2.0f);
            fill(&seed, b, n, 2.0f);
            no_tiny(a, n);
            no_tiny(b, n);
            ref->fp32_to_fp16(a, ha, n);
            k->fp32_to_fp16(a, h0, n);
            ref->fp32_to_fp16(b, hb, n);
            ref->fp16_to_fp32(ha, y0, n);
            k->fp16_to_fp32(ha, y1, n);
            if (n > 0) {
                assert_memory_equal(ha, h0, (size_t)n * 2);
                assert_memory_equal(y0, y1, (size_t)n * 4);
            }

            double terms = 0.0, terms32 = 0.0;
            for (int64_t i = 0; i < n; i++) {
                terms += fabs((double)core_fp16_to_fp32(ha[i]) * core_fp16_to_fp32(hb[i]));
                terms32 += fabs((double)a[i] * b[i]);
            }
            assert_true(fabs(k->dot_f16(ha, hb, n) - ref->dot_f16(ha, hb, n)) <= 1e-5 * terms);
            assert_true(fabs(k->dot_f32(a, b, n) - ref->dot_f32(a, b, n)) <= 1e-5 * terms32);
            if (avx2 && isa > CPU_KERN_AVX2) { /* the AVX-512 tables: AVX2's bits */
                const float d0 = avx2->dot_f16(ha, hb, n), d1 = k->dot_f16(ha, hb, n);
                const float e0 = avx2->dot_f32(a, b, n), e1 = k->dot_f32(a, b, n);
                if (memcmp(&d0, &d1, 4) != 0 || memcmp(&e0, &e1, 4) != 0)
                    fail_msg("%s dot n=%lld: f16 %a vs avx2 %a, f32 %a vs avx2 %a", k->name,
                             (long long)n, (double)d1, (double)d0, (double)e1, (double)e0);
            }

            /* axpy: the same bits on every ISA (product rounded, then added) */
            memcpy(y0, b, sizeof(float) * (size_t)n);
            memcpy(y1, b, sizeof(float) * (size_t)n);
            ref->axpy_f16(y0, ha, 0.37f, n);
            k->axpy_f16(y1, ha, 0.37f, n);
            if (n > 0) assert_memory_equal(y0, y1, (size_t)n * 4);
            ref->axpy_f32(y0, a, -1.7f, n);
            k->axpy_f32(y1, a, -1.7f, n);
            if (n > 0) assert_memory_equal(y0, y1, (size_t)n * 4);
        }
        /* f16 conversions of specials */
        const float sp[8] = {INFINITY, -INFINITY, 65504.0f, 65520.0f, -0.0f, 1.0f, 1e-3f, -2.0f};
        ref->fp32_to_fp16(sp, h0, 8);
        k->fp32_to_fp16(sp, h1, 8);
        assert_memory_equal(h0, h1, 16);
        assert_int_equal(h1[3], 0x7c00); /* 65520 rounds up to infinity */
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_supported_and_vec_dot_types),
        cmocka_unit_test(test_dequant_known_blocks),
        cmocka_unit_test(test_k4_scale_unpacking),
        cmocka_unit_test(test_q8_activation_bytes),
        cmocka_unit_test(test_fp16_subnormal_rounding),
        cmocka_unit_test(test_quant_dequant_error),
        cmocka_unit_test(test_ref_vec_dot_vs_float),
        cmocka_unit_test(test_kernel_tables),
        cmocka_unit_test(test_quantize_row_identical),
        cmocka_unit_test(test_matmul_vs_reference),
        cmocka_unit_test(test_matmul_long_rows),
        cmocka_unit_test(test_simd_matches_llama_cpp),
        cmocka_unit_test(test_simd_tables_same_bits),
        cmocka_unit_test(test_matmul_batch_invariant),
        cmocka_unit_test(test_float_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
