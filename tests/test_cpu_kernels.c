/* Tests of cpu/cpu_kernels*.c: every kernel table the processor has (scalar, AVX2, AVX-512,
 * AVX-512 VNNI) against the reference code of core/quant.c.
 *
 *  - Quantized activation rows byte for byte; matmul and the f16/f32 helpers within the
 *    tolerance of test_quant.c (quant_test_util.h's abs_terms), on odd shapes, row ranges and
 *    strides; outputs outside the range left alone.
 *  - Golden values from llama.cpp (ggml_vec_dot_* on x86 AVX2), which every SIMD table's
 *    matmul must reproduce bit for bit.
 *  - The AVX-512 tables equal the AVX2 one bit for bit, and a token's outputs alone equal its
 *    outputs in a batch (the decode paths against the prefill paths).
 */
#include "quant_test_util.h"

#include "cpu/cpu_kernels.h"

#include <stdio.h>

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

/* Row length of the matmul checks: two K super-blocks, the default model's 576 for the
 * 32-element formats, an odd 100 for the float types. */
static int64_t test_row_len(quant_type wt) {
    const uint32_t bs = quant_traits_of(wt)->block_size;
    return bs == 256 ? 512 : bs == 32 ? 576 : 100;
}

/* Operands of a matmul test: rows weight rows of wt and tokens activation rows in wt's
 * activation type (reference quantizers, which every table's quantize_row matches byte for
 * byte), made by fill(), at strides of the row sizes plus w_pad / x_pad bytes. extreme: every
 * fifth weight row 300x larger, Q8_0 codes of -128 in some blocks (no quantizer writes them,
 * a file may hold them), every fourth activation row 100x larger. */
typedef struct mm_case {
    uint8_t *w, *x;
    uint64_t wrb, xrb;
} mm_case;

static mm_case make_case(quant_type wt, int64_t n, int64_t rows, int64_t tokens, uint64_t w_pad,
                         uint64_t x_pad, bool extreme, uint64_t *seed) {
    const quant_traits *qt = quant_traits_of(wt);
    mm_case c = {.wrb = row_bytes(wt, n) + w_pad, .xrb = row_bytes(qt->vec_dot_type, n) + x_pad};
    c.w = calloc((size_t)(c.wrb * (uint64_t)rows), 1);
    c.x = calloc((size_t)(c.xrb * (uint64_t)tokens), 1);
    float *row = malloc(sizeof(float) * (size_t)n);
    assert_true(c.w && c.x && row);
    for (int64_t r = 0; r < rows; r++) {
        fill(seed, row, n, extreme && r % 5 == 4 ? 30.0f : 0.1f);
        qt->quant(row, c.w + (size_t)r * c.wrb, n);
        if (extreme && wt == QT_Q8_0 && r % 3 == 1)
            for (int64_t b = 0; b < n / QUANT_QK; b += 2)
                ((quant_block_q8_0 *)(c.w + (size_t)r * c.wrb))[b].qs[(b * 7) % QUANT_QK] = -128;
    }
    for (int64_t t = 0; t < tokens; t++) {
        fill(seed, row, n, extreme && t % 4 == 3 ? 100.0f : 1.0f);
        quant_traits_of(qt->vec_dot_type)->quant(row, c.x + (size_t)t * c.xrb, n);
    }
    free(row);
    return c;
}

static void free_case(mm_case *c) {
    free(c->w);
    free(c->x);
}

/* The matmul of every table on every supported weight type, against the reference dot product
 * per output, over shapes that exercise the tails of the row and token blocking, row ranges,
 * padded strides; outputs outside the range must be left alone. */
static void check_matmul(const cpu_kernels *k, quant_type wt, int64_t n, int64_t rows,
                         int64_t tokens, int64_t r0, int64_t r1, uint64_t *seed) {
    const quant_traits *qt = quant_traits_of(wt);
    mm_case c = make_case(wt, n, rows, tokens, 64, 32, false, seed);
    const int64_t ys = rows + 3;
    float *y = malloc(sizeof(float) * (size_t)(ys * tokens));
    for (int64_t i = 0; i < ys * tokens; i++) y[i] = 12345.0f;
    const cpu_matmul_args a = {.w_type = wt, .w = c.w, .w_row_bytes = c.wrb, .n_in = n, .r0 = r0,
                               .r1 = r1, .x = c.x, .x_row_bytes = c.xrb, .n_tokens = tokens,
                               .y = y, .y_stride = ys};
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
            const void *wr = c.w + (size_t)r * c.wrb, *xr = c.x + (size_t)t * c.xrb;
            const double want = qt->vec_dot(n, wr, xr);
            const double tol = 1e-5 * abs_terms(wt, wr, xr, n) + 1e-30;
            if (fabs(got - want) > tol)
                fail_msg("%s %s n=%lld rows=%lld tokens=%lld: y[%lld][%lld] = %.9g, reference "
                         "%.9g, tolerance %.3g",
                         k->name, qt->name, (long long)n, (long long)rows, (long long)tokens,
                         (long long)t, (long long)r, got, want, tol);
        }
    free_case(&c);
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
            const int64_t n = test_row_len(wt);
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
 * on 3 weight rows x 2 tokens of n = 576 (512 for the K formats) made by fill()
 * (quant_test_util.h); weights quantized with our reference quantizer, activations with our quantize_row
 * (byte-identical to llama.cpp's). For Q4_K llama.cpp's AVX2 mul_mat repacks the weights
 * and sums differently; these are its vec_dot values.
 * Output order: token 0 rows 0-2, token 1 rows 0-2, as float bits.
 * tools/golden/kernel_dot_golden.c prints this table. */
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
    {QT_Q4_K, {0xbedaedb0, 0xbdac4bc0, 0x3fb9e024, 0x402e3e14, 0xbfd449ba, 0x3f823adc}},
    {QT_Q5_K, {0xbf6317b0, 0xbfc31d44, 0xbf677910, 0xbf86e92f, 0xbf164894, 0xbe7bfcf4}},
    {QT_Q6_K, {0xbfb3f768, 0xbfabc601, 0xbea86920, 0x3e801fbc, 0xbdd14d48, 0x3e16c1f0}},
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
    mm_case c = make_case(wt, n, rows, tokens, 16, 48, true, seed);
    const int64_t ys = rows + 1;
    float *y0 = malloc(sizeof(float) * (size_t)(ys * tokens));
    float *y1 = malloc(sizeof(float) * (size_t)(ys * tokens));
    for (int64_t i = 0; i < ys * tokens; i++) y0[i] = y1[i] = -7.0f;
    cpu_matmul_args a = {.w_type = wt, .w = c.w, .w_row_bytes = c.wrb, .n_in = n, .r0 = r0,
                         .r1 = r1, .x = c.x, .x_row_bytes = c.xrb, .n_tokens = tokens, .y = y0,
                         .y_stride = ys};
    ref->matmul(&a);
    a.y = y1;
    k->matmul(&a);
    for (int64_t i = 0; i < ys * tokens; i++)
        if (memcmp(&y0[i], &y1[i], sizeof(float)) != 0)
            fail_msg("%s %s n=%lld rows=%lld [%lld, %lld) tokens=%lld: y[%lld][%lld] = %a, %s %a",
                     k->name, qt->name, (long long)n, (long long)rows, (long long)r0, (long long)r1,
                     (long long)tokens, (long long)(i / ys), (long long)(i % ys), (double)y1[i],
                     ref->name, (double)y0[i]);
    free_case(&c);
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
            const int64_t n = test_row_len(wt);
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
            mm_case c = make_case(wt, n, R, T, 0, 0, false, &seed);
            float yall[T * R], yone[R];
            cpu_matmul_args a = {.w_type = wt, .w = c.w, .w_row_bytes = c.wrb, .n_in = n,
                                 .r0 = 0, .r1 = R, .x = c.x, .x_row_bytes = c.xrb, .n_tokens = T,
                                 .y = yall, .y_stride = R};
            k->matmul(&a);
            for (int t = 0; t < T; t++) {
                a.x = c.x + (size_t)t * c.xrb;
                a.n_tokens = 1;
                a.y = yone;
                k->matmul(&a);
                if (memcmp(yone, yall + t * R, sizeof yone) != 0)
                    fail_msg("%s %s: token %d alone differs from the batch of %d", k->name,
                             qt->name, t, (int)T);
            }
            free_case(&c);
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
