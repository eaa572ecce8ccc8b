/* Tests of core/quant.c: the block formats and their reference code (the SIMD kernel tables
 * of cpu/cpu_kernels*.c are tested in test_cpu_kernels.c).
 *
 *  - Sizes, names and activation types of every ggml type id.
 *  - Dequantization of hand-built blocks against hand-computed values.
 *  - Activation quantizers (Q8_0, Q8_1, Q8_K) against hand-checked bytes, including the
 *    rounding of ties, which is where llama.cpp's CPU path and ggml's portable reference part.
 *  - quant -> dequant error bounds for every type with a quantizer.
 *  - Reference dot products against the float dot product of the dequantized rows.
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
#include "quant_test_util.h"

#include "core/quant_s24.h"

#include <stdio.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static double float_dot(quant_type wt, const void *w, const void *x, int64_t n) {
    const quant_traits *qt = quant_traits_of(wt);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    qt->dequant(w, a, n);
    quant_traits_of(qt->vec_dot_type)->dequant(x, b, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
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
        const uint16_t m =
            wt == QT_Q4_1 ? ((const quant_block_q4_1 *)w)[i].m : ((const quant_block_q5_1 *)w)[i].m;
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
        {0, 1, 4, "f32"},         {1, 1, 2, "f16"},         {2, 32, 18, "q4_0"},
        {3, 32, 20, "q4_1"},      {6, 32, 22, "q5_0"},      {7, 32, 24, "q5_1"},
        {8, 32, 34, "q8_0"},      {9, 32, 36, "q8_1"},      {10, 256, 84, "q2_K"},
        {11, 256, 110, "q3_K"},   {12, 256, 144, "q4_K"},   {13, 256, 176, "q5_K"},
        {14, 256, 210, "q6_K"},   {15, 256, 292, "q8_K"},   {16, 256, 66, "iq2_xxs"},
        {17, 256, 74, "iq2_xs"},  {18, 256, 98, "iq3_xxs"}, {19, 256, 50, "iq1_s"},
        {20, 32, 18, "iq4_nl"},   {21, 256, 110, "iq3_s"},  {22, 256, 82, "iq2_s"},
        {23, 256, 136, "iq4_xs"}, {24, 1, 1, "i8"},         {25, 1, 2, "i16"},
        {26, 1, 4, "i32"},        {27, 1, 8, "i64"},        {28, 1, 8, "f64"},
        {29, 256, 56, "iq1_m"},   {30, 1, 2, "bf16"},       {34, 256, 54, "tq1_0"},
        {35, 256, 66, "tq2_0"},   {39, 32, 17, "mxfp4"},    {40, 64, 36, "nvfp4"},
        {41, 128, 18, "q1_0"},    {42, 64, 18, "q2_0"},
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
    assert_false(quant_row_bytes(QT_Q4_0, 33, &b)); /* not a multiple of the block */
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

#define H_0_25 0x3400 /* fp16 0.25 */
#define H_0_5 0x3800  /* 0.5 */
#define H_1 0x3c00    /* 1.0 */
#define H_2 0x4000    /* 2.0 */
#define H_M1 0xbc00   /* -1.0 */

static void test_dequant_known_blocks(void **state) {
    (void)state;
    float y[256];

    quant_block_q4_0 b40 = {.d = H_0_5};
    for (int j = 0; j < 16; j++)
        b40.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    quant_traits_of(QT_Q4_0)->dequant(&b40, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_float_equal(y[j], (j - 8) * 0.5f, 0.0f);
        assert_float_equal(y[j + 16], (7 - j) * 0.5f, 0.0f);
    }

    quant_block_q4_1 b41 = {.d = H_0_25, .m = H_M1};
    for (int j = 0; j < 16; j++)
        b41.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    quant_traits_of(QT_Q4_1)->dequant(&b41, y, 32);
    assert_float_equal(y[0], -1.0f, 0.0f);
    assert_float_equal(y[15], 15 * 0.25f - 1.0f, 0.0f);
    assert_float_equal(y[16], 15 * 0.25f - 1.0f, 0.0f);
    assert_float_equal(y[31], -1.0f, 0.0f);

    /* Q5_0: element j gets bit j of qh as bit 4: here the odd elements */
    quant_block_q5_0 b50 = {.d = H_1};
    const uint32_t qh = 0xaaaaaaaau;
    memcpy(b50.qh, &qh, 4);
    for (int j = 0; j < 16; j++)
        b50.qs[j] = 0x31; /* low 1, high 3 */
    quant_traits_of(QT_Q5_0)->dequant(&b50, y, 32);
    assert_float_equal(y[0], 1 - 16, 0.0f);
    assert_float_equal(y[1], 17 - 16, 0.0f);
    assert_float_equal(y[16], 3 - 16, 0.0f);
    assert_float_equal(y[17], 19 - 16, 0.0f);

    quant_block_q5_1 b51 = {.d = H_0_5, .m = H_1};
    memcpy(b51.qh, &qh, 4);
    for (int j = 0; j < 16; j++)
        b51.qs[j] = 0x31;
    quant_traits_of(QT_Q5_1)->dequant(&b51, y, 32);
    assert_float_equal(y[1], 17 * 0.5f + 1.0f, 0.0f);
    assert_float_equal(y[16], 3 * 0.5f + 1.0f, 0.0f);

    quant_block_q8_0 b80 = {.d = H_2};
    for (int j = 0; j < 32; j++)
        b80.qs[j] = (int8_t)(j * 8 - 128);
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
    b4k.scales[1] |= (uint8_t)((33 >> 4) << 6);              /* top bits: byte j-4 */
    b4k.scales[5] |= (uint8_t)((20 >> 4) << 6);              /* and byte j */
    for (int l = 0; l < 32; l++)
        b4k.qs[l] = (uint8_t)(l & 15); /* group 0, low nibbles */
    for (int l = 0; l < 32; l++)
        b4k.qs[64 + l] = (uint8_t)(7 << 4); /* group 5, high nibbles */
    quant_traits_of(QT_Q4_K)->dequant(&b4k, y, 256);
    assert_float_equal(y[5], 2.0f * 5 - 0.5f * 3, 0.0f);
    assert_float_equal(y[160 + 3], 33.0f * 7 - 0.5f * 20, 0.0f);
    assert_float_equal(y[32], 0.0f, 0.0f); /* group 1: scale 0, min 0 */

    /* Q6_K: element 64 + l of the first half: high nibble of ql[l], bits 4-5 of qh[l] */
    quant_block_q6_K b6k;
    memset(&b6k, 0, sizeof b6k);
    b6k.d = H_0_5;
    for (int g = 0; g < 16; g++)
        b6k.scales[g] = (int8_t)(g - 8);
    b6k.ql[3] = 0x90;   /* element 67: low 4 bits 9; element 3: 0 */
    b6k.qh[3] = 2 << 4; /* element 67: high bits 2 -> q = 41, q - 32 = 9 */
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
        for (int i = 0; i < 12; i++)
            s12[i] = (uint8_t)rng_next(&seed);
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
    for (int j = 0; j < 32; j++)
        assert_int_equal(b.qs[j], 0);

    /* a scale that is not exact: amax = 1 -> d = fp16(1/127), codes round(x * 127) */
    float u[32];
    for (int j = 0; j < 32; j++)
        u[j] = (float)j / 31.0f;
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
    for (int j = 0; j < 256; j++)
        k[j] = (float)(j % 16) - 6.0f;
    k[7] = -254.0f; /* max = -254: iscale = 0.5, d = 2 */
    k[8] = 254.0f;  /* same magnitude later: the first one wins */
    quant_block_q8_K bk;
    quant_traits_of(QT_Q8_K)->quant(k, &bk, 256);
    assert_float_equal(bk.d, 2.0f, 0.0f);
    assert_int_equal(bk.qs[7], -127);
    assert_int_equal(bk.qs[8], 127);
    assert_int_equal(bk.qs[0], -3); /* -6 * 0.5 */
    assert_int_equal(bk.qs[5], 0);  /* -1 * 0.5 = -0.5 -> 0 */
    assert_int_equal(bk.qs[11], 2); /* 5 * 0.5 = 2.5 -> 2 */
    assert_int_equal(bk.qs[13], 4); /* 7 * 0.5 = 3.5 -> 4 */
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
            s += bk.qs[16 * g + l];
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
            fail_msg(
                "core_fp32_to_fp16(%g) = 0x%04x, want 0x%04x (src/core/common.c: the subnormal "
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
        {QT_F32, 0.0},    {QT_F16, 3e-4},   {QT_BF16, 2.5e-3}, {QT_Q8_0, 0.0125}, {QT_Q8_1, 0.0125},
        {QT_Q8_K, 0.025}, {QT_Q5_0, 0.09},  {QT_Q5_1, 0.06},   {QT_Q4_0, 0.18},   {QT_Q4_1, 0.13},
        {QT_Q6_K, 0.035}, {QT_Q5_K, 0.062}, {QT_Q4_K, 0.13},   {QT_Q3_K, 0.30},   {QT_Q2_K, 0.50},
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
                for (int j = 0; j < N; j++)
                    x[j] = fabsf(x[j]) + 0.5f; /* all positive */
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
                         rep == 3 ? " (subnormal fp16 scales: see test_fp16_subnormal_rounding)"
                                  : "");
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

/* ---- the packed 2:4 formats (core/quant_s24.c) ------------------------------------------ */

static void test_s24_traits(void **state) {
    (void)state;
    static const struct {
        uint32_t id, ts;
        const char *name;
    } want[] = {{QT_S24_Q4, 26, "s24_q4"}, {QT_S24_Q8, 42, "s24_q8"}};
    for (size_t i = 0; i < 2; i++) {
        const quant_traits *t = quant_traits_of(want[i].id);
        assert_non_null(t);
        assert_string_equal(t->name, want[i].name);
        assert_string_equal(quant_type_name(want[i].id), want[i].name);
        assert_int_equal(t->block_size, 64);
        assert_int_equal(t->type_size, want[i].ts);
        assert_true(t->supported);
        assert_int_equal(t->vec_dot_type, QT_Q8_0);
        assert_non_null(t->dequant);
        assert_non_null(t->quant);
        assert_non_null(t->vec_dot);
        uint32_t id = 0;
        assert_true(quant_type_by_name(want[i].name, &id));
        assert_int_equal(id, want[i].id);
        uint64_t b = 0;
        assert_true(quant_row_bytes(want[i].id, 576, &b));
        assert_int_equal(b, 9 * want[i].ts);
        assert_false(quant_row_bytes(want[i].id, 96, &b)); /* not a multiple of 64 */
    }
    uint32_t id = 0;
    assert_true(quant_type_by_name("S24_Q4", &id));
    assert_int_equal(id, QT_S24_Q4);
    assert_null(quant_traits_of(199));
    assert_null(quant_traits_of(202));
    assert_string_equal(quant_type_name(202), "type#64+");
}

/* Which 2 of 4 are kept: largest |x|, ties to the lower column, positions in ascending order. */
static void test_s24_pick(void **state) {
    (void)state;
    static const struct {
        float x[4];
        int lo, hi;
    } cases[] = {
        {{0.1f, -3.0f, 2.0f, 0.5f}, 1, 2}, {{4.0f, 0.0f, 0.0f, -5.0f}, 0, 3},
        {{1.0f, -3.0f, 3.0f, 3.0f}, 1, 2}, /* a three-way tie: the two lowest */
        {{2.0f, 2.0f, 2.0f, 2.0f}, 0, 1},  {{0.0f, 0.0f, 0.0f, 0.0f}, 0, 1},
        {{0.0f, 0.0f, 0.0f, 7.0f}, 0, 3}, /* one nonzero: it and the lowest zero */
        {{0.0f, -1.0f, 0.0f, 1.0f}, 1, 3}, {{-0.0f, 0.0f, 1e-30f, 0.0f}, 0, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t p = quant_s24_pick(cases[i].x);
        if ((p & 3) != cases[i].lo || (p >> 2) != cases[i].hi)
            fail_msg("case %zu: kept %d, %d; want %d, %d", i, p & 3, p >> 2, cases[i].lo,
                     cases[i].hi);
    }
}

/* quant_s24_quant_kept stores the caller's mask, not quant_s24_pick's: here a pruner kept a
 * value that is 0 (pick would take the lower zero column) and dropped nothing else nonzero, and
 * another group keeps its smaller values; a dense row with the mask's zeros, dequantized, comes
 * back with exactly the kept columns. A mask of 1 or 3 per group is refused. */
static void test_s24_quant_kept(void **state) {
    (void)state;
    const quant_type types[] = {QT_S24_Q4, QT_S24_Q8};
    float x[64];
    uint8_t keep[64];
    for (int g = 0; g < 16; g++) {
        const int lo = g % 3, hi = 3; /* kept columns */
        for (int j = 0; j < 4; j++) {
            keep[4 * g + j] = j == lo || j == hi;
            x[4 * g + j] = keep[4 * g + j] ? 0.5f * (float)((g + j) % 5 - 2) : 0.0f;
        }
    }
    x[4 * 1 + 1] = 0.0f; /* group 1 keeps columns 1 and 3, column 1 is 0: pick would take 0 */
    x[4 * 2 + 2] = 0.1f, x[4 * 2 + 0] = 0.9f; /* group 2 keeps 2 and 3, not the larger 0 */
    keep[4 * 2 + 2] = 1, keep[4 * 2 + 0] = 0;
    for (int ti = 0; ti < 2; ti++) {
        const quant_traits *qt = quant_traits_of(types[ti]);
        uint8_t q[42];
        float y[64];
        assert_true(quant_s24_quant_kept(types[ti], x, keep, q, 64));
        uint8_t pos[8];
        memcpy(pos, q + 2, 8);
        for (int k = 0; k < 32; k++) {
            const int c = quant_s24_col(pos, k);
            if (!keep[c])
                fail_msg("%s: value %d at column %d, which the mask drops", qt->name, k, c);
        }
        qt->dequant(q, y, 64);
        for (int c = 0; c < 64; c++)
            if (!keep[c] && y[c] != 0.0f) fail_msg("%s: column %d is %g", qt->name, c, y[c]);
        assert_true(fabsf(y[4 * 2 + 2] - 0.1f) < 0.1f && y[4 * 2 + 0] == 0.0f);
        /* without the mask the group-2 choice is pick's */
        uint8_t q2[42];
        qt->quant(x, q2, 64);
        assert_int_equal((q2[2 + 1] & 15) & 3, 0);
        keep[4] = 1; /* group 1 now keeps three */
        assert_false(quant_s24_quant_kept(types[ti], x, keep, q, 64));
        keep[4] = 0, keep[7] = 0; /* and now one */
        assert_false(quant_s24_quant_kept(types[ti], x, keep, q, 64));
        keep[7] = 1;
        assert_false(quant_s24_quant_kept(QT_Q4_0, x, keep, q, 64));
    }
}

/* A block whose kept values are exactly representable: group g keeps columns (g % 4) and 3 (or
 * 0 and 1 when g % 4 == 3), the dropped ones are smaller in magnitude. Kept value k is
 * (k % 16) - 8 for S24_Q4 (so the largest magnitude is -8 and d = 1) and 127 - 8k for S24_Q8. */
static void s24_hand_block(quant_type t, float x[64], float kept[32], uint8_t pos[8]) {
    memset(pos, 0, 8);
    for (int g = 0; g < 16; g++) {
        const int lo = g % 4 == 3 ? 0 : g % 4, hi = g % 4 == 3 ? 1 : 3;
        pos[g / 2] |= (uint8_t)((lo | hi << 2) << (4 * (g & 1)));
        for (int j = 0; j < 4; j++)
            x[4 * g + j] = 0.25f * (float)(j + 1) / 4.0f; /* < 0.5 */
        for (int e = 0; e < 2; e++) {
            const int k = 2 * g + e;
            kept[k] = t == QT_S24_Q4 ? (float)(k % 16 - 8) : (float)(127 - 8 * k);
            if (kept[k] == 0.0f) kept[k] = t == QT_S24_Q4 ? -1.0f : 1.0f; /* keep it kept */
            x[4 * g + (e ? hi : lo)] = kept[k];
        }
    }
}

static void test_s24_round_trip(void **state) {
    (void)state;
    const quant_type types[] = {QT_S24_Q4, QT_S24_Q8};
    for (int ti = 0; ti < 2; ti++) {
        const quant_traits *qt = quant_traits_of(types[ti]);
        float x[128], kept[32], y[128];
        uint8_t pos[8], q[2 * 42];
        s24_hand_block(types[ti], x, kept, pos);
        memset(x + 64, 0, 64 * sizeof(float)); /* an all-zero block after it */
        qt->quant(x, q, 128);
        const uint8_t *b = q;
        assert_memory_equal(b + 2, pos, 8);
        assert_int_equal(core_fp16_to_fp32((uint16_t)(b[0] | b[1] << 8)), 1.0f);
        qt->dequant(q, y, 128);
        for (int c = 0; c < 64; c++) {
            float want = 0.0f;
            for (int k = 0; k < 32; k++)
                if (quant_s24_col(pos, k) == c) want = kept[k];
            if (y[c] != want) fail_msg("%s column %d: %g, want %g", qt->name, c, y[c], want);
        }
        /* the all-zero block: scale 0 (-0 for S24_Q4: 0 / -8, as ggml's Q4_0 writes it),
         * every group keeps columns 0 and 1, all values 0 */
        const uint8_t *z = q + qt->type_size;
        assert_int_equal(z[0] | z[1] << 8, types[ti] == QT_S24_Q4 ? 0x8000 : 0);
        for (int i = 0; i < 8; i++)
            assert_int_equal(z[2 + i], 0x44);
        for (int c = 64; c < 128; c++)
            assert_true(y[c] == 0.0f);
        const uint8_t code = types[ti] == QT_S24_Q4 ? 0x88 : 0; /* q - 8 == 0 / q == 0 */
        for (uint32_t i = 10; i < qt->type_size; i++)
            assert_int_equal(z[i], code);
    }
    /* S24_Q4's nibble order: value k in the low nibble of qs[k], value k + 16 in the high one;
     * kept value k is k % 16 - 8 (or -1 for 0), so q = k % 16 (or 7) */
    float x[64], kept[32];
    uint8_t pos[8];
    quant_block_s24_q4 b4;
    s24_hand_block(QT_S24_Q4, x, kept, pos);
    quant_traits_of(QT_S24_Q4)->quant(x, &b4, 64);
    for (int k = 0; k < 16; k++) {
        const int q = k == 8 ? 7 : k;
        assert_int_equal(b4.qs[k], q | q << 4);
    }
}

/* Random rows: positions follow quant_s24_pick, the error of the kept values is within the
 * format's step, dropped columns dequantize to exactly 0, and a group with a single nonzero
 * keeps it. */
static void test_s24_quant_random(void **state) {
    (void)state;
    enum { N = 1536 };
    static float x[N], y[N];
    static uint8_t q[N];
    uint64_t seed = 5;
    const quant_type types[] = {QT_S24_Q4, QT_S24_Q8};
    for (int ti = 0; ti < 2; ti++) {
        const quant_traits *qt = quant_traits_of(types[ti]);
        for (int rep = 0; rep < 4; rep++) {
            fill(&seed, x, N, 1.0f);
            if (rep == 1)
                for (int j = 0; j < N; j += 4)
                    x[j] = x[j + 1] = x[j + 2] = 0.0f;
            qt->quant(x, q, N);
            qt->dequant(q, y, N);
            for (int blk = 0; blk < N / 64; blk++) {
                const uint8_t *b = q + (size_t)blk * qt->type_size;
                const float d = fabsf(core_fp16_to_fp32((uint16_t)(b[0] | b[1] << 8)));
                for (int g = 0; g < 16; g++) {
                    const float *xg = x + 64 * blk + 4 * g, *yg = y + 64 * blk + 4 * g;
                    const uint8_t p = quant_s24_pick(xg);
                    assert_int_equal((b[2 + g / 2] >> (4 * (g & 1))) & 15, p);
                    for (int j = 0; j < 4; j++) {
                        const bool keep = j == (p & 3) || j == (p >> 2);
                        /* half a step (a whole one at S24_Q4's clamped +8 end), plus the fp16
                         * rounding of d: 2^-11 of up to 127 steps */
                        const double step = types[ti] == QT_S24_Q4 ? 1.0 : 0.5;
                        const double tol = step * d + 127.0 * d / 2048.0 + 1e-7;
                        if (keep ? fabs((double)xg[j] - yg[j]) > tol : yg[j] != 0.0f)
                            fail_msg("%s rep %d block %d group %d col %d: %g -> %g", qt->name, rep,
                                     blk, g, j, xg[j], yg[j]);
                    }
                }
            }
        }
    }
}

/* The spec's arithmetic written the dense way, as the SIMD kernels do it: the signed weight
 * codes spread over their 64 columns with zeros between, lane l of half h summing the 4
 * columns of group 8h + l. Same bits as the reference, which walks the kept values. */
static float s24_dense_spec_dot(quant_type t, int64_t n, const void *w, const void *x) {
    const quant_traits *qt = quant_traits_of(t);
    const quant_block_q8_0 *xb = x;
    float acc[8] = {0}, v[64];
    for (int64_t b = 0; b < n / 64; b++) {
        const uint8_t *wb = (const uint8_t *)w + b * qt->type_size;
        const float dw = core_fp16_to_fp32((uint16_t)(wb[0] | wb[1] << 8));
        qt->dequant(wb, v, 64);
        for (int h = 0; h < 2; h++) {
            const float scale = dw * core_fp16_to_fp32(xb[2 * b + h].d);
            for (int l = 0; l < 8; l++) {
                int isum = 0;
                for (int j = 0; j < 4; j++) {
                    const int c = 32 * h + 4 * l + j;
                    isum += (dw != 0.0f ? (int)lrintf(v[c] / dw) : 0) * xb[2 * b + h].qs[c % 32];
                }
                acc[l] = fmaf((float)isum, scale, acc[l]);
            }
        }
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

static void test_s24_ref_dot(void **state) {
    (void)state;
    enum { N = 4096 };
    static float w[N], x[N];
    static uint8_t wq[N], xq[N * 2];
    uint64_t seed = 13;
    const quant_type types[] = {QT_S24_Q4, QT_S24_Q8};
    const int64_t lens[] = {64, 576, 1536, 4096};
    for (int ti = 0; ti < 2; ti++) {
        const quant_traits *qt = quant_traits_of(types[ti]);
        for (int li = 0; li < 4; li++) {
            const int64_t n = lens[li];
            fill(&seed, w, n, 0.1f);
            fill(&seed, x, n, 1.0f);
            if (n >= 128) memset(w + 64, 0, 64 * sizeof(float)); /* an all-zero block */
            qt->quant(w, wq, n);
            quant_traits_of(QT_Q8_0)->quant(x, xq, n);
            const float got = qt->vec_dot(n, wq, xq);
            const float spec = s24_dense_spec_dot(types[ti], n, wq, xq);
            if (memcmp(&got, &spec, sizeof got) != 0)
                fail_msg("%s n=%lld: reference %.9g, dense spec order %.9g", qt->name, (long long)n,
                         got, spec);
            const double want = float_dot(types[ti], wq, xq, n);
            const double tol = 1e-5 * abs_terms(types[ti], wq, xq, n);
            if (fabs(got - want) > tol)
                fail_msg("%s n=%lld: %.9g, double dot %.9g, tolerance %.3g", qt->name, (long long)n,
                         got, want, tol);
        }
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
        cmocka_unit_test(test_s24_traits),
        cmocka_unit_test(test_s24_pick),
        cmocka_unit_test(test_s24_quant_kept),
        cmocka_unit_test(test_s24_round_trip),
        cmocka_unit_test(test_s24_quant_random),
        cmocka_unit_test(test_s24_ref_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
