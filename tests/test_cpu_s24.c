/* Tests of the packed 2:4 formats' matmuls (cpu/cpu_s24_*.c, through the kernel tables of
 * cpu/cpu_kernels*.c): every table the processor has (scalar, AVX2, AVX-512, AVX-512 VNNI)
 * against the reference dot product of core/quant_s24.c, bit for bit.
 *
 *  - Decode (1 token) and prefill (2 .. 9 tokens, so every tile shape and edge runs), row
 *    lengths 64, 576, 1536, 4096, row ranges that start and end off the tile grid, padded
 *    strides, rows with all-zero blocks, S24_Q8 codes of -128 (no quantizer writes them, a file
 *    may hold them), and outputs outside the range left alone.
 *  - Against the dense product of the same weights with their zeros: the dequantized S24 rows
 *    times the dequantized Q8_0 activations, summed in double. Tolerance: per lane the spec
 *    runs a chain of n/32 fused multiply-adds, the scale product d_w * d_x is rounded once per
 *    term, and hsum8 adds 3 levels; each rounding moves a partial sum by at most 2^-24 of the
 *    sum of |terms| it holds, so |got - exact| <= (n/32 + 4) * 2^-24 * sum |w_i x_i| (first
 *    order; the factor 1.001 covers the rest).
 */
#include "quant_test_util.h"

#include "core/quant_s24.h"
#include "cpu/cpu_kernels.h"
#include "cpu/cpu_s24.h"

#include <stdio.h>

static const quant_type k_s24[] = {QT_S24_Q4, QT_S24_Q8};

typedef struct s24_case {
    uint8_t *w, *x;
    uint64_t wrb, xrb;
} s24_case;

/* rows S24 rows (of which row 1 has its second block zero and row 2 is all zeros), tokens Q8_0
 * rows, strides padded by 8 / 4 bytes. */
static s24_case make_case(quant_type wt, int64_t n, int64_t rows, int64_t tokens, bool extreme,
                          uint64_t *seed) {
    s24_case c = {.wrb = row_bytes(wt, n) + 8, .xrb = row_bytes(QT_Q8_0, n) + 4};
    c.w = calloc((size_t)(c.wrb * (uint64_t)rows), 1);
    c.x = calloc((size_t)(c.xrb * (uint64_t)tokens), 1);
    float *row = malloc(sizeof(float) * (size_t)n);
    assert_true(c.w && c.x && row);
    for (int64_t r = 0; r < rows; r++) {
        fill(seed, row, n, extreme && r % 5 == 4 ? 30.0f : 0.1f);
        if (r == 1 && n > 64) memset(row + 64, 0, 64 * sizeof(float));
        if (r == 2) memset(row, 0, (size_t)n * sizeof(float));
        uint8_t *wr = c.w + (size_t)r * c.wrb;
        quant_traits_of(wt)->quant(row, wr, n);
        if (extreme && wt == QT_S24_Q8 && r % 3 == 1)
            for (int64_t b = 0; b < n / 64; b += 2)
                ((quant_block_s24_q8 *)wr)[b].qs[(b * 7) % 32] = -128;
    }
    for (int64_t t = 0; t < tokens; t++) {
        fill(seed, row, n, extreme && t % 4 == 3 ? 100.0f : 1.0f);
        quant_traits_of(QT_Q8_0)->quant(row, c.x + (size_t)t * c.xrb, n);
    }
    free(row);
    return c;
}

static void free_case(s24_case *c) {
    free(c->w);
    free(c->x);
}

/* One table's matmul over rows [r0, r1) and all tokens against the reference, bit for bit;
 * the outputs around the range must keep their sentinel. quads: the weights go to the kernel
 * repacked in cpu_s24.h's quads (S24_Q4, tables with s24_quads). */
static void check_table(const cpu_kernels *k, quant_type wt, int64_t n, int64_t rows,
                        int64_t tokens, int64_t r0, int64_t r1, const s24_case *c, bool quads) {
    const int64_t ys = rows + 3;
    float *y = malloc(sizeof(float) * (size_t)(ys * tokens));
    assert_non_null(y);
    for (int64_t i = 0; i < ys * tokens; i++)
        y[i] = -12345.0f;
    uint8_t *packed = NULL;
    if (quads) {
        packed = malloc(cpu_s24_quads_bytes(rows, n));
        assert_non_null(packed);
        cpu_s24_quads_pack(c->w, c->wrb, rows, n, packed);
    }
    const cpu_matmul_args a = {.w_type = wt,
                               .w = quads ? (const void *)packed : c->w,
                               .w_row_bytes = c->wrb,
                               .n_in = n,
                               .r0 = r0,
                               .r1 = r1,
                               .x = c->x,
                               .x_row_bytes = c->xrb,
                               .n_tokens = tokens,
                               .y = y,
                               .y_stride = ys,
                               .w_quads = quads};
    k->matmul(&a);
    const quant_dot_fn dot = quant_traits_of(wt)->vec_dot;
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t r = 0; r < ys; r++) {
            const float got = y[t * ys + r];
            const float want = r >= r0 && r < r1
                                   ? dot(n, c->w + (size_t)r * c->wrb, c->x + (size_t)t * c->xrb)
                                   : -12345.0f;
            if (memcmp(&got, &want, sizeof got) != 0)
                fail_msg("%s %s%s n=%lld rows [%lld, %lld) tokens %lld: y[%lld][%lld] = %.9g, "
                         "reference %.9g",
                         k->name, quant_type_name(wt), quads ? " quads" : "", (long long)n,
                         (long long)r0, (long long)r1, (long long)tokens, (long long)t,
                         (long long)r, got, want);
        }
    free(y);
    free(packed);
}

static void test_s24_tables_match_reference(void **state) {
    (void)state;
    static const int64_t lens[] = {64, 576, 1536, 4096};
    static const int64_t token_counts[] = {1, 2, 3, 4, 5, 7, 9};
    uint64_t seed = 21;
    int tables = 0, quad_tables = 0;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        tables++;
        quad_tables += k->s24_quads;
        print_message("S24 matmul on kernel table %s%s\n", k->name,
                      k->s24_quads ? " (file layout and S24_Q4 quads)" : "");
        for (size_t ti = 0; ti < 2; ti++)
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const int64_t n = lens[li], rows = 13;
                for (size_t tc = 0; tc < sizeof token_counts / sizeof token_counts[0]; tc++) {
                    const int64_t tokens = token_counts[tc];
                    for (int extreme = 0; extreme < 2; extreme++) {
                        s24_case c = make_case(k_s24[ti], n, rows, tokens, extreme, &seed);
                        for (int q = 0; q < 1 + (k->s24_quads && ti == 0); q++) {
                            check_table(k, k_s24[ti], n, rows, tokens, 0, rows, &c, q);
                            check_table(k, k_s24[ti], n, rows, tokens, 1, 10, &c, q); /* off-grid */
                            check_table(k, k_s24[ti], n, rows, tokens, 5, 6, &c, q);  /* one row */
                            check_table(k, k_s24[ti], n, rows, tokens, 8, 13, &c, q); /* padded */
                        }
                        free_case(&c);
                    }
                }
            }
    }
    assert_true(tables >= 2); /* scalar and at least AVX2 on any x86-64 test machine */
    if (!quad_tables) print_message("S24_Q4 quads: not run (no kernel table here reads them)\n");
}

/* Rows longer than the SIMD kernels' scale buffers (32768 columns) take the reference path. */
static void test_s24_long_rows(void **state) {
    (void)state;
    uint64_t seed = 23;
    const int64_t n = 32768 + 64;
    for (int isa = 0; isa < CPU_KERN_COUNT; isa++) {
        const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)isa);
        if (!k) continue;
        for (size_t ti = 0; ti < 2; ti++) {
            s24_case c = make_case(k_s24[ti], n, 5, 2, false, &seed);
            check_table(k, k_s24[ti], n, 5, 1, 0, 5, &c, false);
            check_table(k, k_s24[ti], n, 5, 2, 0, 5, &c, false);
            free_case(&c);
        }
    }
}

/* The quad layout's size, and rows it does not take (those stay in the file layout). */
static void test_s24_quads_bytes(void **state) {
    (void)state;
    assert_int_equal(cpu_s24_quads_bytes(13, 576), 4 * 9 * CPU_S24_QUAD_BYTES);
    assert_int_equal(cpu_s24_quads_bytes(4096, 4096), 4096 / 4 * 64 * 26 * 4);
    assert_int_equal(cpu_s24_quads_bytes(4, CPU_S24_QUADS_MAX_IN), CPU_S24_QUADS_MAX_IN / 64 * 104);
    assert_int_equal(cpu_s24_quads_bytes(4, CPU_S24_QUADS_MAX_IN + 64), 0);
    assert_int_equal(cpu_s24_quads_bytes(4, 96), 0);
    assert_int_equal(cpu_s24_quads_bytes(0, 64), 0);
}

/* The reference itself against the dense product of the same weights, zeros included. */
static void test_s24_vs_dense_double(void **state) {
    (void)state;
    static const int64_t lens[] = {64, 576, 1536, 4096};
    uint64_t seed = 29;
    float *wf = malloc(sizeof(float) * 4096), *xf = malloc(sizeof(float) * 4096);
    assert_true(wf && xf);
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            s24_case c = make_case(k_s24[ti], n, 6, 3, true, &seed);
            for (int64_t r = 0; r < 6; r++)
                for (int64_t t = 0; t < 3; t++) {
                    const uint8_t *wr = c.w + (size_t)r * c.wrb, *xr = c.x + (size_t)t * c.xrb;
                    quant_traits_of(k_s24[ti])->dequant(wr, wf, n);
                    quant_traits_of(QT_Q8_0)->dequant(xr, xf, n);
                    double exact = 0.0, mag = 0.0;
                    for (int64_t i = 0; i < n; i++) {
                        exact += (double)wf[i] * xf[i];
                        mag += fabs((double)wf[i] * xf[i]);
                    }
                    const double got = quant_traits_of(k_s24[ti])->vec_dot(n, wr, xr);
                    const double tol = (double)(n / 32 + 4) * ldexp(1.0, -24) * mag * 1.001;
                    if (fabs(got - exact) > tol)
                        fail_msg("%s n=%lld row %lld token %lld: %.9g, dense double %.9g, "
                                 "tolerance %.3g",
                                 quant_type_name(k_s24[ti]), (long long)n, (long long)r,
                                 (long long)t, got, exact, tol);
                    if (r == 2 && got != 0.0) fail_msg("an all-zero row gave %g", got);
                }
            free_case(&c);
        }
    free(wf);
    free(xf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s24_tables_match_reference),
        cmocka_unit_test(test_s24_long_rows),
        cmocka_unit_test(test_s24_quads_bytes),
        cmocka_unit_test(test_s24_vs_dense_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
