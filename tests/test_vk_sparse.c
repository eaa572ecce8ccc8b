/* The packed 2:4 formats (S24_Q4, S24_Q8) on the device (src/vk/vk_ops_mm.c, shaders/quant.glsl
 * Q_S24) against src/core's reference dot product (quant_traits_of(type)->vec_dot, the spec's
 * arithmetic of quant_blocks.h), bit for bit, no tolerance: for every capability tier x both
 * kernel layouts (the device's own, and the other one: on lavapipe the GPU layout of rows shared
 * by a subgroup and shared-memory tiles for prefill; on a GPU the CPU-driver one), rows of 64,
 * 576, 1536 and 4096 columns, 1 to 33 tokens (single and multi-token matrix-vector tiles, a
 * last partial tile, the tiled kernel), with and without accumulation into y, and a weight
 * split into 3 parts. The activations are quantized on the device; test_vk_mm proves that
 * quantizer gives the CPU's Q8_0 blocks, so the reference quantizes them on the CPU.
 * ctest runs this under lavapipe's default vector width and at LP_NATIVE_VECTOR_WIDTH=128 and
 * 512 (subgroups of 4 and 16 lanes instead of 8). test_sparse_relaxed: the relaxed products
 * (plain_fma) within a stated bound of the reference.
 */
#include "vk_test_util.h"

#include "core/common.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

#include <math.h>

static const uint32_t k_types[] = {QT_S24_Q4, QT_S24_Q8};
static const uint32_t k_cols[] = {64, 576, 1536, 4096};
static const uint32_t k_ntok[] = {1, 2, 8, 16, 33};
#define N_OUT 37 /* not a multiple of any workgroup's rows */
#define ARENA_BLOCK (16u << 20)

static uint32_t rnd32(void) {
    vt_rng ^= vt_rng << 13;
    vt_rng ^= vt_rng >> 7;
    vt_rng ^= vt_rng << 17;
    return (uint32_t)(vt_rng >> 32);
}

/* A random fp16 scale of either sign with exponent in [-8, 1]. */
static uint16_t rnd_scale(void) {
    return (uint16_t)((rnd32() & 0x83ff) | ((7 + rnd32() % 10) << 10));
}

/* n_rows rows of n_in columns: even rows random blocks (any valid positions, any codes,
 * S24_Q8 codes in -127..127), odd rows the reference quantizer's blocks of random floats. */
static uint8_t *s24_rows(uint32_t type, uint32_t n_in, uint32_t n_rows, uint64_t *rb) {
    static const uint8_t pairs[6] = {0x4, 0x8, 0xc, 0x9, 0xd, 0xe}; /* first < second */
    const quant_traits *tr = quant_traits_of(type);
    assert_non_null(tr);
    assert_true(quant_row_bytes(type, n_in, rb));
    uint8_t *w = malloc(*rb * n_rows);
    float *x = malloc((size_t)n_in * sizeof(float));
    for (uint32_t r = 0; r < n_rows; r++) {
        uint8_t *row = w + (uint64_t)r * *rb;
        if (r % 2) {
            vt_fill(x, n_in, -1.0f, 1.0f);
            tr->quant(x, row, n_in);
            continue;
        }
        for (uint64_t i = 0; i < *rb; i++)
            row[i] = (uint8_t)rnd32();
        for (uint32_t b = 0; b < n_in / QUANT_S24_COLS; b++) {
            uint8_t *blk = row + (uint64_t)b * tr->type_size;
            const uint16_t d = rnd_scale();
            memcpy(blk, &d, 2);
            for (int j = 0; j < 8; j++)
                blk[2 + j] = (uint8_t)(pairs[rnd32() % 6] | (pairs[rnd32() % 6] << 4));
            if (type == QT_S24_Q8)
                for (int k = 0; k < 32; k++)
                    if (blk[10 + k] == 0x80) blk[10 + k] = 0x81;
        }
    }
    free(x);
    return w;
}

/* y[t][r] = vec_dot(w[r], q8_0(x[t])), the reference. */
static void reference(uint32_t type, const uint8_t *w, uint64_t wrb, uint32_t n_in, const float *x,
                      uint32_t n_tok, float *y, uint32_t ys) {
    const quant_traits *tr = quant_traits_of(type), *vt = quant_traits_of(tr->vec_dot_type);
    assert_int_equal(tr->vec_dot_type, QT_Q8_0);
    uint64_t qb;
    assert_true(quant_row_bytes(QT_Q8_0, n_in, &qb));
    uint8_t *q = malloc(qb);
    for (uint32_t t = 0; t < n_tok; t++) {
        vt->quant(x + (size_t)t * n_in, q, n_in);
        for (uint32_t r = 0; r < N_OUT; r++)
            y[(size_t)t * ys + r] = tr->vec_dot(n_in, w + r * wrb, q);
    }
    free(q);
}

static vk_weight upload(vk_dev *d, vk_arena *a, uint32_t type, uint32_t n_in, uint32_t n_out,
                        uint64_t rb, const uint8_t *w) {
    core_err err = {{0}};
    vk_weight wt;
    if (vk_weight_upload(d, a, "w", type, n_in, n_out, rb, w, &wt, &err) != VKLLM_OK)
        fail_msg("upload: %s", err.msg);
    return wt;
}

/* quantize + matmul on the device; y starts as y0. parts > 1: the weight's rows in that many
 * parts, each its own buffer (what a device with a small buffer limit makes). */
static void run(vk_dev *d, vk_mm *m, uint32_t type, const uint8_t *w, uint64_t rb, uint32_t n_in,
                const float *x, uint32_t n_tok, const float *y0, float *y, uint32_t ys, bool acc,
                uint32_t parts) {
    vk_arena a;
    vk_arena_init(&a, d, false, ARENA_BLOCK, "test");
    vk_weight wt = upload(d, &a, type, n_in, N_OUT, rb, w);
    if (parts > 1) {
        wt.n_parts = parts;
        for (uint32_t p = 0; p < parts; p++) {
            const uint32_t r0 = N_OUT * p / parts, r1 = N_OUT * (p + 1) / parts;
            const vk_weight one = upload(d, &a, type, n_in, r1 - r0, rb, w + r0 * rb);
            wt.part[p] = one.part[0];
            wt.part[p].row0 = r0;
        }
    }
    const uint64_t xqb = vk_mm_act_row_bytes(type, n_in) * n_tok, yb = (uint64_t)n_tok * ys * 4;
    assert_true(xqb > 0);
    vk_act xa = {vt_slice(&a, x, (uint64_t)n_tok * n_in * 4), n_in};
    vk_slice xq = vt_slice(&a, NULL, xqb);
    vk_act ya = {vt_slice(&a, y0, yb), ys};
    core_err err = {{0}};
    vk_rec r;
    vt_begin(d, &r);
    if (vk_mm_quantize(&r, m, type, xa, n_in, n_tok, xq, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    vk_rec_barrier(&r);
    if (vk_mm_matmul(&r, m, &wt, xq, n_tok, ya, acc, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    vt_submit(&r);
    vt_read(d, &ya.s, y, yb);
    vk_arena_free(&a);
}

/* Layout 1: the other kernel layout than the device's default (as test_vk_mm's other_layout);
 * layout 0 on tiers 0 and 1: the device's, with a quarter of its accumulators where it has
 * many (lavapipe compiles every pipeline, and its 12 rows x 16 tokens a thread take long);
 * tier 2 runs the device's own tuning, the one models run. */
static void set_layout(vk_mm *m, int tier, int layout) {
    vk_mm_tuning t = vk_mm_get_tuning(m);
    if (layout == 1) {
        const uint32_t threads = t.mv_threads;
        t.mv_lane_rows = !t.mv_lane_rows;
        t.tiled = !t.tiled;
        t.mv_rows = t.mv_lane_rows ? 8 : 2;
        t.mv_acc = t.mv_lane_rows ? 16 : 8;
        t.mv_tokens = t.mv_lane_rows ? 16 : 8;
        /* two subgroups on lavapipe: the sum across subgroups in shared memory runs too */
        if (!t.mv_lane_rows) t.mv_threads = 2 * threads;
    } else if (tier < 2 && t.mv_acc > 32) {
        t.mv_acc /= 4;
    } else {
        return;
    }
    core_err err = {{0}};
    if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
}

static unsigned g_shapes; /* shapes compared, all tiers and layouts */

static void check_type(vk_dev *d, vk_mm *m, uint32_t type, int tier, int layout) {
    for (size_t ci = 0; ci < sizeof k_cols / sizeof *k_cols; ci++)
        for (size_t ni = 0; ni < sizeof k_ntok / sizeof *k_ntok; ni++) {
            const uint32_t n_in = k_cols[ci], n_tok = k_ntok[ni], ys = N_OUT + 3;
            const bool acc = (ci + ni) % 2 == 1;
            /* the last shape of each width again with the weight in 3 parts */
            const uint32_t parts = ni + 1 == sizeof k_ntok / sizeof *k_ntok ? 3 : 1;
            uint64_t rb;
            uint8_t *w = s24_rows(type, n_in, N_OUT, &rb);
            float *x = malloc((size_t)n_tok * n_in * 4);
            vt_fill(x, (size_t)n_tok * n_in, -1.0f, 1.0f);
            if (n_tok > 1) /* a token of large and one of tiny activations */
                for (uint32_t i = 0; i < n_in; i++)
                    x[n_in + i] *= i % 2 ? 300.0f : 1e-3f;
            const size_t ny = (size_t)n_tok * ys;
            float *ref = calloc(ny, 4), *got = malloc(ny * 4), *y0 = malloc(ny * 4);
            vt_fill(y0, ny, -1.0f, 1.0f);
            reference(type, w, rb, n_in, x, n_tok, ref, ys);
            run(d, m, type, w, rb, n_in, x, n_tok, y0, got, ys, acc, parts);
            for (uint32_t t = 0; t < n_tok; t++)
                for (uint32_t r = 0; r < ys; r++) {
                    const size_t j = (size_t)t * ys + r;
                    const float want = r >= N_OUT ? y0[j] : acc ? y0[j] + ref[j] : ref[j];
                    if (f32_bits(got[j]) != f32_bits(want))
                        fail_msg("%s tier %d layout %d n_in %u n_tok %u acc %d parts %u: "
                                 "y[%u][%u] %a, want %a%s",
                                 quant_type_name(type), tier, layout, n_in, n_tok, acc, parts, t, r,
                                 got[j], want, r >= N_OUT ? " (past the rows: untouched)" : "");
                }
            g_shapes++;
            free(w), free(x), free(ref), free(got), free(y0);
        }
}

static void test_sparse_matmul(void **state) {
    (void)state;
    for (int tier = VT_FIRST_TIER; tier < VK_TIER_COUNT; tier++)
        for (int layout = 0; layout < 2; layout++) {
            vk_dev *d = vt_dev(tier, 0);
            core_err err = {{0}};
            vk_mm *m = NULL;
            if (vk_mm_create(d, &m, &err) != VKLLM_OK) fail_msg("vk_mm_create: %s", err.msg);
            set_layout(m, tier, layout);
            const vk_mm_tuning tn = vk_mm_get_tuning(m);
            printf("tier %d layout %d: subgroup %u, %u threads, %s\n", tier, layout,
                   d->info.subgroup_size, tn.mv_threads,
                   tn.mv_lane_rows ? "a thread per row" : "8 threads per row");
            for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
                assert_true(vk_mm_supports(k_types[ti]));
                check_type(d, m, k_types[ti], tier, layout);
            }
            vk_mm_destroy(m);
            vt_dev_done(d);
        }
    printf("packed 2:4: %u shapes bit-identical to the reference dot product\n", g_shapes);
}

/* Relaxed products (vk_mm_tuning.plain_fma, vkllm_runtime_desc.vk_relaxed_products) at the
 * best tier and the device's layout: on a device whose fma() is not fused (lavapipe) the lane
 * chains round twice a step, as test_vk_mm's test_matmul_relaxed states for the dense formats:
 *  - each of 33 tokens gets the outputs it gets alone (batch invariance, bit for bit);
 *  - |got - ref| <= (4 nb + 16) u S, nb the row's 32-column halves, u = 2^-24, S the sum of
 *    |w x| over the row (the dequantized weight and activation values);
 *  - where fma() is not fused some outputs differ from the reference's bits (the relaxed
 *    kernels ran), and where it is fused none do. */
static void test_sparse_relaxed(void **state) {
    (void)state;
    const uint32_t n_in = 1536, n_tok = 33, nb = n_in / 32;
    vk_dev *d = vt_dev(VK_TIER_COUNT - 1, 0);
    core_err err = {{0}};
    vk_mm *m = NULL;
    if (vk_mm_create(d, &m, &err) != VKLLM_OK) fail_msg("vk_mm_create: %s", err.msg);
    vk_mm_tuning t = vk_mm_get_tuning(m);
    t.plain_fma = true;
    if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    unsigned differ = 0, compared = 0;
    for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
        const uint32_t type = k_types[ti];
        const quant_traits *tr = quant_traits_of(type), *vt = quant_traits_of(QT_Q8_0);
        uint64_t rb, qb;
        uint8_t *w = s24_rows(type, n_in, N_OUT, &rb);
        assert_true(quant_row_bytes(QT_Q8_0, n_in, &qb));
        const size_t ny = (size_t)n_tok * N_OUT;
        float *x = malloc((size_t)n_tok * n_in * 4), *ref = malloc(ny * 4), *got = malloc(ny * 4);
        float *one = malloc(N_OUT * 4), *wd = malloc(n_in * 4), *xd = malloc(n_in * 4);
        uint8_t *xq = malloc(qb);
        vt_fill(x, (size_t)n_tok * n_in, -1.0f, 1.0f);
        reference(type, w, rb, n_in, x, n_tok, ref, N_OUT);
        run(d, m, type, w, rb, n_in, x, n_tok, NULL, got, N_OUT, false, 1);
        for (uint32_t i = 0; i < n_tok; i++) {
            run(d, m, type, w, rb, n_in, x + (size_t)i * n_in, 1, NULL, one, N_OUT, false, 1);
            if (memcmp(one, got + (size_t)i * N_OUT, N_OUT * 4) != 0)
                fail_msg("relaxed %s: token %u of %u gets other outputs than alone",
                         quant_type_name(type), i, n_tok);
            vt->quant(x + (size_t)i * n_in, xq, n_in);
            vt->dequant(xq, xd, n_in);
            for (uint32_t r = 0; r < N_OUT; r++) {
                tr->dequant(w + r * rb, wd, n_in);
                double sum = 0.0;
                for (uint32_t j = 0; j < n_in; j++)
                    sum += fabs((double)wd[j] * xd[j]);
                const size_t j = (size_t)i * N_OUT + r;
                const double tol = (4.0 * nb + 16.0) * 0x1p-24 * sum;
                const double dev = fabs((double)got[j] - (double)ref[j]);
                if (!(dev <= tol))
                    fail_msg("relaxed %s: y[%u][%u] %a, the reference's %a: off by %g, bound %g",
                             quant_type_name(type), i, r, got[j], ref[j], dev, tol);
                differ += f32_bits(got[j]) != f32_bits(ref[j]);
                compared++;
            }
        }
        free(w), free(x), free(ref), free(got), free(one), free(wd), free(xd), free(xq);
    }
    printf("relaxed products (fma() %s here): %u of %u outputs differ from the reference's "
           "bits\n",
           d->fma_exact ? "not fused" : "fused", differ, compared);
    if (d->fma_exact && differ == 0)
        fail_msg("relaxed products: no output differs from the reference: the relaxed kernels "
                 "did not run");
    if (!d->fma_exact && differ != 0)
        fail_msg("relaxed products changed %u outputs on a device with a fused fma()", differ);
    vk_mm_destroy(m);
    vt_dev_done(d);
}

/* The embedding has no packed 2:4 kernel (vk_embed_supports): vk_embed says so instead of
 * dispatching. */
static void test_sparse_embed_refused(void **state) {
    (void)state;
    vk_dev *d = vt_dev(0, 0);
    core_err err = {{0}};
    vk_mm *m = NULL;
    if (vk_mm_create(d, &m, &err) != VKLLM_OK) fail_msg("vk_mm_create: %s", err.msg);
    for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
        assert_false(vk_embed_supports(k_types[ti]));
        uint64_t rb;
        uint8_t *w = s24_rows(k_types[ti], 64, N_OUT, &rb);
        vk_arena a;
        vk_arena_init(&a, d, false, ARENA_BLOCK, "test");
        vk_weight wt = upload(d, &a, k_types[ti], 64, N_OUT, rb, w);
        vk_slice ps = vt_slice(&a, NULL, 4096);
        vk_act da = {vt_slice(&a, NULL, 64 * 4), 64};
        vk_rec r;
        vt_begin(d, &r);
        assert_int_equal(vk_embed(&r, m, &wt, ps, da, 1, &err), VKLLM_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, quant_type_name(k_types[ti])));
        vt_submit(&r);
        vk_arena_free(&a);
        free(w);
    }
    vk_mm_destroy(m);
    vt_dev_done(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_matmul),
        cmocka_unit_test(test_sparse_relaxed),
        cmocka_unit_test(test_sparse_embed_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
