/* Matrix products and the embedding on the device (src/vk/vk_ops_mm.c) against src/core's
 * reference code, for every weight format x every capability tier:
 *  - the activation quantizer gives the CPU quantizer's values exactly (codes, scales, sums);
 *  - matmul (matrix-vector for n_tok up to the tuning's mv_tokens, tiled above) against
 *    quant_traits vec_dot on the CPU-quantized rows, with and without accumulation into y,
 *    and split weights (a device with a small buffer limit) give the unsplit result bit for
 *    bit;
 *  - the embedding of rows of random blocks is src/core's dequantization bit for bit: the
 *    proof that shaders/quant.glsl reads each block layout as src/core does.
 * Tolerance: NMSE <= 1e-10 against the scalar reference. Every block's integer dot product is
 * exact and its float terms are the reference's, so only the order of the fp32 sum over blocks
 * (and, for F32/F16/BF16, over elements, where the reference sums in double) differs: a few
 * ulp of the largest partial sum. The 32-element formats (Q4_0 .. Q8_0) must moreover give the
 * CPU backend's bits (its AVX2 kernels, where the processor has them): no tolerance.
 */
#include "vk_test_util.h"

#include "core/common.h"
#include "core/quant.h"
#include "cpu/cpu_kernels.h"

#include <math.h>
#include <time.h>

static const uint32_t k_types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                   QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#define N_TYPES (sizeof k_types / sizeof k_types[0])
static const uint32_t k_ntok[] = {1, 2, 5, 8, 9, 33, 70};
#define N_NTOK (sizeof k_ntok / sizeof k_ntok[0])
#define ARENA_BLOCK (16u << 20)

/* Byte offsets of a block's fp16 scale fields (d, m, dmin), -1 terminated: random blocks get
 * finite values there. */
static const int *half_fields(uint32_t type) {
    static const int none[] = {-1}, d0[] = {0, -1}, d0m2[] = {0, 2, -1}, q2k[] = {80, 82, -1},
                     q3k[] = {108, -1}, q6k[] = {208, -1};
    switch (type) {
    case QT_Q4_0:
    case QT_Q5_0:
    case QT_Q8_0:
        return d0;
    case QT_Q4_1:
    case QT_Q5_1:
    case QT_Q4_K:
    case QT_Q5_K:
        return d0m2;
    case QT_Q2_K:
        return q2k;
    case QT_Q3_K:
        return q3k;
    case QT_Q6_K:
        return q6k;
    default:
        return none;
    }
}

static uint32_t rnd32(void) {
    vt_rng ^= vt_rng << 13;
    vt_rng ^= vt_rng >> 7;
    vt_rng ^= vt_rng << 17;
    return (uint32_t)(vt_rng >> 32);
}

/* A finite fp16: any bits but an all-ones exponent; `moderate` keeps the exponent in
 * [-8, 1] so the products of a matmul test stay comparable. */
static uint16_t rnd_half(bool moderate) {
    uint16_t h = (uint16_t)rnd32();
    if (moderate) return (uint16_t)((h & 0x83ff) | ((uint16_t)(7 + rnd32() % 10) << 10));
    if ((h & 0x7c00) == 0x7c00) h &= 0xbfff;
    return h;
}

/* n_rows rows of n_in elements of type, random bytes with finite scales / values. */
static uint8_t *random_rows(uint32_t type, uint32_t n_in, uint32_t n_rows, bool moderate,
                            uint64_t *row_bytes) {
    const quant_traits *tr = quant_traits_of(type);
    assert_true(quant_row_bytes(type, n_in, row_bytes));
    const uint64_t bytes = *row_bytes * n_rows;
    uint8_t *p = malloc(bytes);
    for (uint64_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)rnd32();
    if (type == QT_F32) {
        for (uint64_t i = 0; i < bytes / 4; i++) {
            const float v = vt_uniform(-2.0f, 2.0f);
            memcpy(p + 4 * i, &v, 4);
        }
    } else if (type == QT_F16) {
        for (uint64_t i = 0; i < bytes / 2; i++) {
            const uint16_t h =
                moderate ? core_fp32_to_fp16(vt_uniform(-2.0f, 2.0f)) : rnd_half(false);
            memcpy(p + 2 * i, &h, 2);
        }
    } else if (type == QT_BF16) {
        for (uint64_t i = 0; i < bytes / 2; i++) {
            uint16_t h = core_fp32_to_bf16(vt_uniform(-2.0f, 2.0f));
            if (!moderate && (h = (uint16_t)rnd32(), (h & 0x7f80) == 0x7f80)) h &= 0xbfff;
            memcpy(p + 2 * i, &h, 2);
        }
    } else {
        const uint64_t nblk = bytes / tr->type_size;
        for (uint64_t b = 0; b < nblk; b++)
            for (const int *f = half_fields(type); *f >= 0; f++) {
                const uint16_t h = rnd_half(moderate);
                memcpy(p + b * tr->type_size + *f, &h, 2);
            }
    }
    return p;
}

static vk_mm *mm_new(vk_dev *d) {
    core_err err = {{0}};
    vk_mm *m = NULL;
    if (vk_mm_create(d, &m, &err) != VKLLM_OK) fail_msg("vk_mm_create: %s", err.msg);
    return m;
}

static vk_weight upload(vk_dev *d, vk_arena *a, uint32_t type, uint32_t n_in, uint32_t n_out,
                        uint64_t row_bytes, const void *data) {
    core_err err = {{0}};
    vk_weight w;
    if (vk_weight_upload(d, a, "w", type, n_in, n_out, row_bytes, data, &w, &err) != VKLLM_OK)
        fail_msg("upload: %s", err.msg);
    return w;
}

/* ---- (a) activation quantizer -------------------------------------------------------------- */

/* Activation rows with the awkward cases: a zero block, exact halves after scaling (codes
 * x * 127 / amax = k + 0.5 when amax = 127), a tie for the largest magnitude, tiny and large
 * magnitudes. */
static void act_rows(float *x, uint32_t n_in, uint32_t n_tok, uint32_t stride) {
    for (uint32_t t = 0; t < n_tok; t++) {
        float *r = x + (uint64_t)t * stride;
        const float scale = t % 3 == 0 ? 1.0f : t % 3 == 1 ? 1e-3f : 300.0f;
        for (uint32_t i = 0; i < n_in; i++)
            r[i] = scale * vt_uniform(-1.0f, 1.0f);
        if (t == 1) memset(r, 0, 32 * sizeof(float));
        if (t == 2 && n_in >= 64) {
            for (uint32_t i = 32; i < 64; i++)
                r[i] = (float)((int)(i % 16) - 8) + 0.5f;
            r[40] = 127.0f;
            r[50] = -127.0f;
        }
    }
}

static void check_act(uint32_t w_type, const uint8_t *cpu, const uint32_t *gpu, uint32_t n_in,
                      const char *what) {
    const quant_type vdt = quant_traits_of(w_type)->vec_dot_type;
    if (vdt == QT_Q8_0 || vdt == QT_Q8_1) {
        const size_t bs = vdt == QT_Q8_0 ? 34 : 36, qo = vdt == QT_Q8_0 ? 2 : 4;
        for (uint32_t b = 0; b < n_in / 32; b++) {
            const uint8_t *c = cpu + b * bs;
            const uint32_t *g = gpu + 12 * b;
            uint16_t d, s = 0;
            memcpy(&d, c, 2);
            if (vdt == QT_Q8_1) memcpy(&s, c + 2, 2);
            int sum = 0;
            for (int j = 0; j < 32; j++)
                sum += (int8_t)c[qo + j];
            if (memcmp(c + qo, g, 32) != 0) fail_msg("%s: block %u codes differ", what, b);
            if (g[8] != f32_bits(core_fp16_to_fp32(d)))
                fail_msg("%s: block %u d %08x, cpu %08x", what, b, g[8],
                         f32_bits(core_fp16_to_fp32(d)));
            if (vdt == QT_Q8_1 && g[9] != f32_bits(core_fp16_to_fp32(s)))
                fail_msg("%s: block %u s differs", what, b);
            if ((int32_t)g[10] != sum) fail_msg("%s: block %u code sum differs", what, b);
        }
    } else if (vdt == QT_Q8_K) {
        for (uint32_t b = 0; b < n_in / 256; b++) {
            const uint8_t *c = cpu + b * 292;
            const uint32_t *g = gpu + 84 * b;
            if (memcmp(c + 4, g, 256) != 0) fail_msg("%s: block %u codes differ", what, b);
            for (int k = 0; k < 16; k++) {
                int16_t bs;
                memcpy(&bs, c + 260 + 2 * k, 2);
                if ((int32_t)g[64 + k] != bs) fail_msg("%s: block %u bsums differ", what, b);
            }
            if (memcmp(c, &g[80], 4) != 0) {
                float cd;
                memcpy(&cd, c, 4);
                fail_msg("%s: block %u d %08x, cpu %08x (%g)", what, b, g[80], f32_bits(cd), cd);
            }
        }
    } else {
        for (uint32_t i = 0; i < n_in; i++) {
            float v;
            if (vdt == QT_F32)
                memcpy(&v, cpu + 4 * i, 4);
            else {
                uint16_t h;
                memcpy(&h, cpu + 2 * i, 2);
                v = vdt == QT_F16 ? core_fp16_to_fp32(h) : core_bf16_to_fp32(h);
            }
            if (gpu[i] != f32_bits(v)) fail_msg("%s: element %u differs", what, i);
        }
    }
}

static void test_quantize(void **state) {
    (void)state;
    /* one weight type per activation format */
    static const uint32_t types[] = {QT_Q4_0, QT_Q4_1, QT_Q4_K, QT_F16, QT_BF16, QT_F32};
    static const uint32_t widths[] = {256, 768};
    for (int tier = VT_FIRST_TIER; tier < VK_TIER_COUNT; tier += 2) {
        vk_dev *d = vt_dev(tier, 0);
        vk_mm *m = mm_new(d);
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
            for (size_t wi = 0; wi < 2; wi++) {
                const uint32_t type = types[ti], n_in = widths[wi], n_tok = 7;
                const uint32_t stride = n_in + 8;
                const quant_traits *vt = quant_traits_of(quant_traits_of(type)->vec_dot_type);
                uint64_t crb;
                assert_true(quant_row_bytes(quant_traits_of(type)->vec_dot_type, n_in, &crb));
                const uint64_t grb = vk_mm_act_row_bytes(type, n_in);
                float *x = malloc((size_t)n_tok * stride * 4);
                act_rows(x, n_in, n_tok, stride);
                uint8_t *cpu = malloc(crb * n_tok);
                uint32_t *gpu = malloc(grb * n_tok);
                for (uint32_t t = 0; t < n_tok; t++)
                    vt->quant(x + t * stride, cpu + t * crb, n_in);
                vk_arena a;
                vk_arena_init(&a, d, false, ARENA_BLOCK, "test");
                vk_act xa = {vt_slice(&a, x, (uint64_t)n_tok * stride * 4), stride};
                vk_slice xq = vt_slice(&a, NULL, grb * n_tok);
                core_err err = {{0}};
                vk_rec r;
                vt_begin(d, &r);
                if (vk_mm_quantize(&r, m, type, xa, n_in, n_tok, xq, &err) != VKLLM_OK)
                    fail_msg("%s", err.msg);
                vt_submit(&r);
                vt_read(d, &xq, gpu, grb * n_tok);
                for (uint32_t t = 0; t < n_tok; t++) {
                    char what[96];
                    snprintf(what, sizeof what, "quantize for %s tier %d n_in %u row %u",
                             quant_type_name(type), tier, n_in, t);
                    check_act(type, cpu + t * crb, gpu + t * grb / 4, n_in, what);
                }
                vk_arena_free(&a);
                free(x), free(cpu), free(gpu);
            }
        vk_mm_destroy(m);
        vt_dev_done(d);
    }
}

/* ---- (b, c, d) matmul ------------------------------------------------------------------------ */

static double g_worst[N_TYPES][VK_TIER_COUNT];
static unsigned g_bits_checked; /* shapes whose bits were compared with the CPU path's */

/* n_in for a type: an odd block count, and one more for the 32-element formats. */
static uint32_t width_of(uint32_t type, int k) {
    const uint32_t bs = quant_traits_of(type)->block_size;
    if (bs == 256) return k == 0 ? 256 : 768;
    if (bs == 32) return k == 0 ? 96 : 544;
    return k == 0 ? 37 : 520; /* 37: a row tail of less than 4, odd F16 rows */
}

/* CPU reference: y[t][r] = vec_dot(w[r], quant(x[t])). */
static void reference(uint32_t type, const uint8_t *w, uint64_t wrb, uint32_t n_in, uint32_t n_out,
                      const float *x, uint32_t stride, uint32_t n_tok, float *y,
                      uint32_t y_stride) {
    const quant_traits *tr = quant_traits_of(type), *vt = quant_traits_of(tr->vec_dot_type);
    uint64_t rb;
    assert_true(quant_row_bytes(tr->vec_dot_type, n_in, &rb));
    uint8_t *q = malloc(rb);
    for (uint32_t t = 0; t < n_tok; t++) {
        vt->quant(x + (uint64_t)t * stride, q, n_in);
        for (uint32_t r = 0; r < n_out; r++)
            y[(uint64_t)t * y_stride + r] = tr->vec_dot(n_in, w + r * wrb, q);
    }
    free(q);
}

/* The CPU backend's own result on this processor for the 32-element formats, whose device
 * kernels sum in its order and must give its bits (shaders/matvec.comp): the AVX2 table, which
 * the CPU backend runs wherever the processor has it. false: no such table here (the NMSE
 * check still runs; the bits are then unchecked, and the test says so). */
static bool cpu_order_reference(uint32_t type, const uint8_t *w, uint64_t wrb, uint32_t n_in,
                                uint32_t n_out, const float *x, uint32_t stride, uint32_t n_tok,
                                float *y, uint32_t y_stride) {
    const cpu_kernels *k = cpu_kernels_get(CPU_KERN_AVX2);
    if (!k || quant_traits_of(type)->block_size != 32) return false;
    const quant_type vdt = quant_traits_of(type)->vec_dot_type;
    uint64_t rb;
    assert_true(quant_row_bytes(vdt, n_in, &rb));
    uint8_t *q = malloc(rb * n_tok);
    for (uint32_t t = 0; t < n_tok; t++)
        k->quantize_row(vdt, x + (uint64_t)t * stride, q + t * rb, n_in);
    const cpu_matmul_args a = {.w_type = type,
                               .w = w,
                               .w_row_bytes = wrb,
                               .n_in = n_in,
                               .r0 = 0,
                               .r1 = n_out,
                               .x = q,
                               .x_row_bytes = rb,
                               .n_tokens = n_tok,
                               .y = y,
                               .y_stride = y_stride};
    k->matmul(&a);
    free(q);
    return true;
}

/* A weight in `parts` row ranges, each uploaded on its own: what vk_weight_upload makes on a
 * device with a small buffer limit, without a second device (and its pipelines). */
static vk_weight upload_parts(vk_dev *d, vk_arena *a, uint32_t type, uint32_t n_in, uint32_t n_out,
                              uint64_t wrb, const uint8_t *w, uint32_t parts) {
    vk_weight wt = upload(d, a, type, n_in, n_out, wrb, w);
    wt.n_parts = parts;
    for (uint32_t p = 0; p < parts; p++) {
        const uint32_t r0 = n_out * p / parts, r1 = n_out * (p + 1) / parts;
        const vk_weight one = upload(d, a, type, n_in, r1 - r0, wrb, w + r0 * wrb);
        wt.part[p] = one.part[0];
        wt.part[p].row0 = r0;
    }
    return wt;
}

/* Runs quantize + matmul on the device; y starts as y0 (accumulate) or garbage. parts > 0:
 * the weight in that many parts (upload_parts); n_parts: the parts it had. */
static void run_matmul(vk_dev *d, vk_mm *m, uint32_t type, const uint8_t *w, uint64_t wrb,
                       uint32_t n_in, uint32_t n_out, const float *x, uint32_t stride,
                       uint32_t n_tok, const float *y0, float *y, uint32_t y_stride,
                       bool accumulate, uint32_t parts, uint32_t *n_parts) {
    vk_arena a;
    vk_arena_init(&a, d, false, d->max_buffer < ARENA_BLOCK ? d->max_buffer : ARENA_BLOCK, "test");
    vk_weight wt = parts ? upload_parts(d, &a, type, n_in, n_out, wrb, w, parts)
                         : upload(d, &a, type, n_in, n_out, wrb, w);
    if (n_parts) *n_parts = wt.n_parts;
    const uint64_t grb = vk_mm_act_row_bytes(type, n_in);
    vk_act xa = {vt_slice(&a, x, (uint64_t)n_tok * stride * 4), stride};
    vk_slice xq = vt_slice(&a, NULL, grb * n_tok);
    const uint64_t yb = (uint64_t)n_tok * y_stride * 4;
    vk_act ya = {vt_slice(&a, y0, yb), y_stride};
    core_err err = {{0}};
    vk_rec r;
    vt_begin(d, &r);
    if (vk_mm_quantize(&r, m, type, xa, n_in, n_tok, xq, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    vk_rec_barrier(&r);
    if (vk_mm_matmul(&r, m, &wt, xq, n_tok, ya, accumulate, &err) != VKLLM_OK)
        fail_msg("%s", err.msg);
    vt_submit(&r);
    vt_read(d, &ya.s, y, yb);
    vk_arena_free(&a);
}

/* The other kernel layout than the device's default: GPU-style (rows shared by a subgroup,
 * shared-memory tiles for prefill) on a CPU driver, CPU-style on a GPU. Both are tested. */
static void other_layout(vk_mm *m) {
    vk_mm_tuning t = vk_mm_get_tuning(m);
    t.mv_lane_rows = !t.mv_lane_rows;
    t.tiled = !t.tiled;
    t.mv_rows = t.mv_lane_rows ? 8 : 2;
    t.mv_acc = t.mv_lane_rows ? 16 : 8;
    t.mv_tokens = t.mv_lane_rows ? 16 : 8;
    /* two subgroups on lavapipe: the sum across subgroups in shared memory is run too */
    if (!t.mv_lane_rows) t.mv_threads = 2 * vk_mm_get_tuning(m).mv_threads;
    core_err err = {{0}};
    if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
}

/* (d) The weight in 3 parts gives the one-part result bit for bit (matrix-vector and prefill
 * kernels): each part's dispatch writes its rows. */
static void split_identical(vk_dev *d, vk_mm *m, uint32_t type, int tier, int layout) {
    const uint32_t n_in = width_of(type, 1), n_out = 37;
    for (uint32_t n_tok = 1; n_tok <= 9; n_tok += 8) {
        uint64_t wrb;
        uint8_t *w = random_rows(type, n_in, n_out, true, &wrb);
        float *x = malloc((size_t)n_tok * n_in * 4);
        vt_fill(x, (size_t)n_tok * n_in, -1.0f, 1.0f);
        const size_t ny = (size_t)n_tok * n_out;
        float *a = malloc(ny * 4), *b = malloc(ny * 4);
        run_matmul(d, m, type, w, wrb, n_in, n_out, x, n_in, n_tok, NULL, a, n_out, false, 0, NULL);
        run_matmul(d, m, type, w, wrb, n_in, n_out, x, n_in, n_tok, NULL, b, n_out, false, 3, NULL);
        if (memcmp(a, b, ny * 4) != 0)
            fail_msg("split %s tier %d layout %d n_tok %u: results differ", quant_type_name(type),
                     tier, layout, n_tok);
        free(w), free(x), free(a), free(b);
    }
}

static void test_matmul(void **state) {
    (void)state;
    const uint32_t n_out = 37; /* not a multiple of any workgroup's rows */
    /* runs: each tier with the device's layout; the other layout at tier 2 (tier 1 differs
     * only in the integer dot product) and, for one format of each kernel family (its tier-0
     * sum differs), at tier 0: lavapipe compiles every pipeline, so the test stays short.
     * For the same reason tiers 0 and 1 take a quarter of the device's rows x tokens per
     * thread where it is large (lavapipe's 96: kernels of 768 accumulators, slow to compile):
     * the kernel is the same code at every tier but for the dot product, and tier 2 runs the
     * default. */
    for (int run = 2 * VT_FIRST_TIER; run < 2 * VK_TIER_COUNT; run++) {
        const int tier = run / 2;
        if (run == 3) continue;
        vk_dev *d = vt_dev(tier, 0);
        vk_mm *m = mm_new(d);
        if (run % 2) {
            other_layout(m);
        } else if (tier < 2 && vk_mm_get_tuning(m).mv_acc > 32) {
            vk_mm_tuning t = vk_mm_get_tuning(m);
            t.mv_acc /= 4;
            core_err err = {{0}};
            if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
        }
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = k_types[ti];
            if (run == 1 && type != QT_F16 && type != QT_Q5_0 && type != QT_Q6_K) continue;
            assert_true(vk_mm_supports(type));
            for (int k = 0; k < 2; k++)
                for (size_t ni = 0; ni < N_NTOK; ni++) {
                    const uint32_t n_in = width_of(type, k), n_tok = k_ntok[ni];
                    if (k == 1 && n_tok > 9 && n_tok != 70) continue; /* keep it short */
                    const uint32_t stride = n_in + 4, ys = n_out + 3;
                    uint64_t wrb;
                    uint8_t *w = random_rows(type, n_in, n_out, true, &wrb);
                    float *x = malloc((size_t)n_tok * stride * 4);
                    vt_fill(x, (size_t)n_tok * stride, -1.0f, 1.0f);
                    const size_t ny = (size_t)n_tok * ys;
                    float *ref = calloc(ny, 4), *got = calloc(ny, 4), *y0 = malloc(ny * 4);
                    reference(type, w, wrb, n_in, n_out, x, stride, n_tok, ref, ys);
                    const bool acc = ni % 2 == 1; /* every other shape accumulates */
                    vt_fill(y0, ny, -1.0f, 1.0f);
                    run_matmul(d, m, type, w, wrb, n_in, n_out, x, stride, n_tok, y0, got, ys, acc,
                               0, NULL);
                    float *exact = calloc(ny, 4);
                    if (cpu_order_reference(type, w, wrb, n_in, n_out, x, stride, n_tok, exact,
                                            ys)) {
                        g_bits_checked++;
                        for (uint32_t t = 0; t < n_tok; t++)
                            for (uint32_t i = 0; i < n_out; i++) {
                                const size_t j = (size_t)t * ys + i;
                                const float want = acc ? y0[j] + exact[j] : exact[j];
                                if (f32_bits(got[j]) != f32_bits(want))
                                    fail_msg("matmul %s tier %d layout %d n_in %u n_tok %u acc "
                                             "%d: y[%u][%u] %a, the CPU path's %a",
                                             quant_type_name(type), tier, run % 2, n_in, n_tok, acc,
                                             t, i, got[j], want);
                            }
                    }
                    free(exact);
                    for (uint32_t t = 0; t < n_tok; t++)
                        for (uint32_t i = 0; i < ys; i++) {
                            const size_t j = (size_t)t * ys + i;
                            if (i >= n_out) { /* past the rows: untouched */
                                if (f32_bits(got[j]) != f32_bits(y0[j]))
                                    fail_msg("%s tier %d: y[%u][%u] written past n_out",
                                             quant_type_name(type), tier, t, i);
                                got[j] = ref[j] = 0.0f;
                            } else if (acc) {
                                got[j] -= y0[j]; /* exact enough: compared as NMSE */
                            }
                        }
                    const double e = vt_nmse(got, ref, ny);
                    if (e > g_worst[ti][tier]) g_worst[ti][tier] = e;
                    if (!(e <= 1e-10))
                        fail_msg("matmul %s tier %d layout %d n_in %u n_tok %u acc %d: nmse %g",
                                 quant_type_name(type), tier, run % 2, n_in, n_tok, acc, e);
                    free(w), free(x), free(ref), free(got), free(y0);
                }
            split_identical(d, m, type, tier, run % 2);
        }
        vk_mm_destroy(m);
        vt_dev_done(d);
    }
    if (cpu_kernels_get(CPU_KERN_AVX2))
        printf("32-element formats: %u shapes bit-identical to the CPU path (AVX2)\n",
               g_bits_checked);
    else
        printf("NOTE: no AVX2 here: the 32-element formats' bits were not compared with the "
               "CPU path (NMSE only)\n");
    printf("worst matmul NMSE per type (tier 0, 1, 2):\n");
    for (size_t ti = 0; ti < N_TYPES; ti++)
        printf("  %-5s %9.2e %9.2e %9.2e\n", quant_type_name(k_types[ti]), g_worst[ti][0],
               g_worst[ti][1], g_worst[ti][2]);
}

/* (e) Relaxed products (vk_mm_tuning.plain_fma, vkllm_runtime_desc.vk_relaxed_products): on a
 * device whose fma() is not fused (lavapipe) the kernels' fused multiply-adds become a multiply
 * and an add. For every format, at the device's default layout and best tier:
 *  - batch invariance, bit for bit: each token of a 16- and a 33-token product (full tiles
 *    and a last, smaller one) gets the outputs it gets alone;
 *  - NMSE <= 1e-10 against the scalar reference, as the exact kernels;
 *  - the 32-element formats, element by element against the CPU path's bits: each lane chain
 *    of nb steps rounds twice a step instead of once, so both it and the CPU's are within
 *    2 nb u S of the exact sum (u = 2^-24; S = |d_w| sum |q x| + |m_w| sum |x| over the row,
 *    q the weight codes and x the dequantized activations: the chains' terms in absolute
 *    value), and the lanes' combination and the min chain add a few more roundings:
 *    |got - cpu| <= (4 nb + 16) u S;
 *  - where fma() is not fused, some outputs differ from the CPU's bits (the relaxed kernels
 *    did run); where it is fused, none do (the setting changes nothing there). */
static double abs_terms(uint32_t type, const uint8_t *row, uint32_t n_in, const float *xd) {
    const quant_traits *tr = quant_traits_of(type);
    const int *hf = half_fields(type);
    double s = 0.0;
    uint8_t blk[64];
    float q[32];
    for (uint32_t b = 0; b < n_in / 32; b++) {
        memcpy(blk, row + (size_t)b * tr->type_size, tr->type_size);
        const float d = fabsf(core_fp16_to_fp32((uint16_t)(blk[0] | blk[1] << 8)));
        const float m =
            hf[1] == 2 ? fabsf(core_fp16_to_fp32((uint16_t)(blk[2] | blk[3] << 8))) : 0.0f;
        blk[0] = 0x00, blk[1] = 0x3c; /* d = 1, m = 0: the dequantized values are the codes */
        if (hf[1] == 2) blk[2] = blk[3] = 0;
        tr->dequant(blk, q, 32);
        for (int j = 0; j < 32; j++) {
            const double xa = fabs((double)xd[b * 32 + j]);
            s += (double)d * fabs((double)q[j]) * xa + (double)m * xa;
        }
    }
    return s;
}

static void test_matmul_relaxed(void **state) {
    (void)state;
    static const uint32_t ntok[] = {1, 16, 33};
    const uint32_t n_out = 37;
    vk_dev *d = vt_dev(VK_TIER_COUNT - 1, 0);
    vk_mm *m = mm_new(d);
    vk_mm_tuning t = vk_mm_get_tuning(m);
    t.plain_fma = true;
    core_err err = {{0}};
    if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    unsigned differ = 0, compared = 0;
    double worst = 0.0; /* largest |got - cpu| / tolerance */
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = k_types[ti];
        const quant_traits *tr = quant_traits_of(type), *vt = quant_traits_of(tr->vec_dot_type);
        const uint32_t n_in = width_of(type, 1), nmax = ntok[2];
        uint64_t wrb, xrb;
        uint8_t *w = random_rows(type, n_in, n_out, true, &wrb);
        float *x = malloc((size_t)nmax * n_in * 4), *xd = malloc((size_t)n_in * 4);
        vt_fill(x, (size_t)nmax * n_in, -1.0f, 1.0f);
        assert_true(quant_row_bytes(tr->vec_dot_type, n_in, &xrb));
        uint8_t *xq = malloc(xrb);
        const size_t ny = (size_t)nmax * n_out;
        float *alone = malloc(ny * 4), *got = malloc(ny * 4), *ref = malloc(ny * 4),
              *cpu = malloc(ny * 4);
        for (uint32_t i = 0; i < nmax; i++)
            run_matmul(d, m, type, w, wrb, n_in, n_out, x + (size_t)i * n_in, n_in, 1, NULL,
                       alone + (size_t)i * n_out, n_out, false, 0, NULL);
        for (size_t k = 1; k < 3; k++) {
            run_matmul(d, m, type, w, wrb, n_in, n_out, x, n_in, ntok[k], NULL, got, n_out, false,
                       0, NULL);
            if (memcmp(got, alone, (size_t)ntok[k] * n_out * 4) != 0)
                fail_msg("relaxed %s: a token of %u gets other outputs than alone",
                         quant_type_name(type), ntok[k]);
        }
        reference(type, w, wrb, n_in, n_out, x, n_in, nmax, ref, n_out);
        const double e = vt_nmse(alone, ref, ny);
        if (!(e <= 1e-10)) fail_msg("relaxed %s: nmse %g", quant_type_name(type), e);
        if (cpu_order_reference(type, w, wrb, n_in, n_out, x, n_in, nmax, cpu, n_out)) {
            const uint32_t nb = n_in / 32;
            for (uint32_t i = 0; i < nmax; i++) {
                vt->quant(x + (size_t)i * n_in, xq, n_in);
                vt->dequant(xq, xd, n_in);
                for (uint32_t r = 0; r < n_out; r++) {
                    const size_t j = (size_t)i * n_out + r;
                    const double tol =
                        (4.0 * nb + 16.0) * 0x1p-24 * abs_terms(type, w + r * wrb, n_in, xd);
                    const double dev = fabs((double)alone[j] - (double)cpu[j]);
                    if (!(dev <= tol))
                        fail_msg("relaxed %s: y[%u][%u] %a, the CPU path's %a: off by %g, "
                                 "bound %g",
                                 quant_type_name(type), i, r, alone[j], cpu[j], dev, tol);
                    if (tol > 0 && dev / tol > worst) worst = dev / tol;
                    differ += f32_bits(alone[j]) != f32_bits(cpu[j]);
                    compared++;
                }
            }
        }
        free(w), free(x), free(xd), free(xq), free(alone), free(got), free(ref), free(cpu);
    }
    printf("relaxed products (fma() %s here): %u of %u outputs of the 32-element formats differ "
           "from the CPU path's bits; the largest difference is %.3f of its bound\n",
           d->fma_exact ? "not fused" : "fused", differ, compared, worst);
    if (compared > 0) {
        if (d->fma_exact && differ == 0)
            fail_msg("relaxed products: no output differs from the CPU's bits: the relaxed "
                     "kernels did not run");
        if (!d->fma_exact && differ != 0)
            fail_msg("relaxed products changed %u outputs on a device with a fused fma()", differ);
    }
    vk_mm_destroy(m);
    vt_dev_done(d);
}

/* (d) end to end: a device whose buffers are small enough that vk_weight_upload splits each
 * weight into >= 3 parts gives the single-part result bit for bit (two formats: one with
 * 4-byte and one with 2-byte aligned blocks; test_matmul checks every format on hand-made
 * parts). */
static void test_matmul_split(void **state) {
    (void)state;
    const uint64_t max_buf = 32768;
    const uint32_t n_in = 512;
    /* the parts are recorded by tier-independent code: tier 0 with the device's layout, tier 2
     * with the other */
    static const uint32_t types[] = {QT_Q4_1, QT_Q6_K};
    for (int tier = VT_FIRST_TIER; tier < VK_TIER_COUNT; tier += 2) {
        vk_dev *whole = vt_dev(tier, 0), *split = vt_dev(tier, max_buf);
        vk_mm *mw = mm_new(whole), *ms = mm_new(split);
        if (tier == 2) other_layout(mw), other_layout(ms);
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            const uint32_t type = types[ti];
            uint64_t wrb;
            assert_true(quant_row_bytes(type, n_in, &wrb));
            uint32_t n_out = (uint32_t)(5 * max_buf / wrb);
            if (n_out > 801) n_out = 801;
            for (uint32_t n_tok = 1; n_tok <= 9; n_tok += 8) {
                uint8_t *w = random_rows(type, n_in, n_out, true, &wrb);
                float *x = malloc((size_t)n_tok * n_in * 4);
                vt_fill(x, (size_t)n_tok * n_in, -1.0f, 1.0f);
                const size_t ny = (size_t)n_tok * n_out;
                float *a = malloc(ny * 4), *b = malloc(ny * 4);
                uint32_t parts = 0;
                run_matmul(whole, mw, type, w, wrb, n_in, n_out, x, n_in, n_tok, NULL, a, n_out,
                           false, 0, NULL);
                run_matmul(split, ms, type, w, wrb, n_in, n_out, x, n_in, n_tok, NULL, b, n_out,
                           false, 0, &parts);
                if (parts < 3) fail_msg("%s: %u parts", quant_type_name(type), parts);
                if (memcmp(a, b, ny * 4) != 0)
                    fail_msg("split %s tier %d n_tok %u: results differ", quant_type_name(type),
                             tier, n_tok);
                free(w), free(x), free(a), free(b);
            }
        }
        vk_mm_destroy(mw), vk_mm_destroy(ms);
        vt_dev_done(whole), vt_dev_done(split);
    }
}

/* ---- (e) embedding -------------------------------------------------------------------------- */

static void test_embed(void **state) {
    (void)state;
    const uint32_t n_out = 600;
    /* one tier: the embedding has one build for all (shaders/mm.list) */
    for (int tier = 0; tier < 1; tier++)
        for (int sp = 0; sp < 2; sp++) {
            vk_dev *d = vt_dev(tier, sp ? 65536 : 0);
            vk_mm *m = mm_new(d);
            for (size_t ti = 0; ti < N_TYPES; ti++) {
                const uint32_t type = k_types[ti];
                const quant_traits *tr = quant_traits_of(type);
                const uint32_t n_in = tr->block_size * (400 / tr->type_size + 1); /* rows > 400 B */
                uint64_t wrb;
                uint8_t *w = random_rows(type, n_in, n_out, false, &wrb);
                const int32_t ids[] = {0, 599, 17, -1, 600, 350, 1 << 30, 17, 255, 42};
                const uint32_t n_tok = sizeof ids / sizeof *ids, stride = n_in + 1;
                const uint64_t pbytes = vk_step_params_bytes(n_tok, 1, n_tok, 0);
                vk_step_params *pbuf = calloc(1, pbytes);
                const vk_step_seq seq = {.n_tokens = n_tok, .n_out = 1};
                vk_step_params_init(pbuf, n_tok, 1, NULL, 0);
                vk_step_params_write(pbuf, ids, &seq, 1);
                float *ref = calloc((size_t)n_tok * stride, 4);
                float *got = malloc((size_t)n_tok * stride * 4);
                for (uint32_t t = 0; t < n_tok; t++)
                    if (ids[t] >= 0 && (uint32_t)ids[t] < n_out)
                        tr->dequant(w + (uint64_t)ids[t] * wrb, ref + (size_t)t * stride, n_in);
                vk_arena a;
                vk_arena_init(&a, d, false,
                              d->max_buffer < ARENA_BLOCK ? d->max_buffer : ARENA_BLOCK, "test");
                vk_weight wt = upload(d, &a, type, n_in, n_out, wrb, w);
                if (sp && wt.n_parts < 3) fail_msg("%s: %u parts", tr->name, wt.n_parts);
                vk_slice ps = vt_slice(&a, pbuf, pbytes);
                float *junk = malloc((size_t)n_tok * stride * 4);
                for (size_t i = 0; i < (size_t)n_tok * stride; i++)
                    junk[i] = 12345.0f;
                vk_act da = {vt_slice(&a, junk, (uint64_t)n_tok * stride * 4), stride};
                core_err err = {{0}};
                vk_rec r;
                vt_begin(d, &r);
                if (vk_embed(&r, m, &wt, ps, da, n_tok, &err) != VKLLM_OK) fail_msg("%s", err.msg);
                vt_submit(&r);
                vt_read(d, &da.s, got, (uint64_t)n_tok * stride * 4);
                for (uint32_t t = 0; t < n_tok; t++)
                    for (uint32_t i = 0; i < n_in; i++) {
                        const size_t j = (size_t)t * stride + i;
                        if (f32_bits(got[j]) != f32_bits(ref[j]) &&
                            !(isnan(got[j]) && isnan(ref[j])))
                            fail_msg("embed %s tier %d split %d: token %d element %u: %08x, "
                                     "cpu %08x",
                                     tr->name, tier, sp, ids[t], i, f32_bits(got[j]),
                                     f32_bits(ref[j]));
                    }
                vk_arena_free(&a);
                free(w), free(ref), free(got), free(junk), free(pbuf);
            }
            vk_mm_destroy(m);
            vt_dev_done(d);
        }
}

/* ---- perf mode: VKLLM_MM_BENCH=1 prints timings instead of testing ------------------------- *
 * Shapes of the default model (SmolLM2-135M, Q4_1): a 576 x 576 and b 1536 x 576 decode, c 8
 * tokens, d 512 tokens, e 1536 x 576 x 16 tokens (a 16-sequence step; only when named) (K
 * formats: n_in 1536). Env: VKLLM_MM_BENCH_TYPES (names, default q4_1), VKLLM_MM_BENCH_TIERS
 * ("012"), VKLLM_MM_BENCH_SHAPES ("abcd"), VKLLM_MM_BENCH_REPS (a factor),
 * VKLLM_MM_BENCH_TUNE and VKLLM_MM_BENCH_RELAXED (below). Run with validation off. */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Mean time of one quantize + matmul of n_tok tokens, [n_out x n_in] of type, at tier. */
static void bench_one(vk_dev *d, vk_mm *m, uint32_t type, uint32_t n_in, uint32_t n_out,
                      uint32_t n_tok, int reps) {
    uint64_t wrb;
    uint8_t *w = random_rows(type, n_in, n_out, true, &wrb);
    float *x = malloc((size_t)n_tok * n_in * 4);
    vt_fill(x, (size_t)n_tok * n_in, -1.0f, 1.0f);
    vk_arena a;
    vk_arena_init(&a, d, false, 256u << 20, "bench");
    vk_weight wt = upload(d, &a, type, n_in, n_out, wrb, w);
    const uint64_t grb = vk_mm_act_row_bytes(type, n_in);
    vk_act xa = {vt_slice(&a, x, (uint64_t)n_tok * n_in * 4), n_in};
    vk_slice xq = vt_slice(&a, NULL, grb * n_tok);
    vk_act ya = {vt_slice(&a, NULL, (uint64_t)n_tok * n_out * 4), n_out};
    if (getenv("VKLLM_MM_BENCH_REPS")) reps *= atoi(getenv("VKLLM_MM_BENCH_REPS"));
    double best[2] = {1e30, 1e30};
    for (int mode = 0; mode < 2; mode++) /* 0: quantize + matmul, 1: matmul only */
        for (int it = 0; it < 3; it++) {
            core_err err = {{0}};
            vk_rec r;
            vt_begin(d, &r);
            for (int i = 0; i < reps; i++) {
                if (mode == 0) {
                    if (vk_mm_quantize(&r, m, type, xa, n_in, n_tok, xq, &err) != VKLLM_OK)
                        fail_msg("%s", err.msg);
                    vk_rec_barrier(&r);
                }
                if (vk_mm_matmul(&r, m, &wt, xq, n_tok, ya, false, &err) != VKLLM_OK)
                    fail_msg("%s", err.msg);
                vk_rec_barrier(&r);
            }
            const double t0 = now_s();
            vt_submit(&r);
            const double dt = (now_s() - t0) / reps;
            if (dt < best[mode]) best[mode] = dt;
        }
    printf("  %-5s tier %d  %5u x %5u  n_tok %3u: %9.1f us (matmul only %9.1f us)\n",
           quant_type_name(type), d->tier, n_out, n_in, n_tok, best[0] * 1e6, best[1] * 1e6);
    vk_arena_free(&a);
    free(w), free(x);
}

/* VKLLM_MM_BENCH_TUNE="threads,rows,acc,lane_rows,tiled" overrides the device's tuning;
 * VKLLM_MM_BENCH_RELAXED=1 times the relaxed products. */
static void bench_tuning(vk_mm *m) {
    const char *e = getenv("VKLLM_MM_BENCH_TUNE"), *rx = getenv("VKLLM_MM_BENCH_RELAXED");
    vk_mm_tuning t = vk_mm_get_tuning(m);
    if (rx && strcmp(rx, "1") == 0) { /* relaxed products */
        t.plain_fma = true;
        core_err err = {{0}};
        if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    }
    if (!e) return;
    unsigned v[5];
    if (sscanf(e, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
        fail_msg("VKLLM_MM_BENCH_TUNE: threads,rows,acc,lane_rows,tiled");
    t.mv_threads = v[0], t.mv_rows = v[1], t.mv_acc = v[2];
    t.mv_lane_rows = v[3] != 0, t.tiled = v[4] != 0;
    core_err err = {{0}};
    if (vk_mm_set_tuning(m, &t, &err) != VKLLM_OK) fail_msg("%s", err.msg);
}

static int bench(void) {
    const char *t = getenv("VKLLM_MM_BENCH_TYPES");
    const char *tiers = getenv("VKLLM_MM_BENCH_TIERS"), *shapes = getenv("VKLLM_MM_BENCH_SHAPES");
    for (int tier = 0; tier < VK_TIER_COUNT; tier++) {
        if (tiers && !strchr(tiers, '0' + tier)) continue;
        vk_dev *d = vt_dev(tier, 0);
        vk_mm *m = mm_new(d);
        bench_tuning(m);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t type = k_types[ti];
            if (t ? !strstr(t, quant_type_name(type)) : type != QT_Q4_1) continue;
            const uint32_t n_in = quant_traits_of(type)->block_size == 256 ? 1536 : 576;
            if (!shapes || strchr(shapes, 'a')) bench_one(d, m, type, n_in, 576, 1, 50);
            if (!shapes || strchr(shapes, 'b')) bench_one(d, m, type, n_in, 1536, 1, 50);
            if (!shapes || strchr(shapes, 'c')) bench_one(d, m, type, n_in, 576, 8, 20);
            if (!shapes || strchr(shapes, 'd')) bench_one(d, m, type, n_in, 576, 512, 2);
            if (shapes && strchr(shapes, 'e')) bench_one(d, m, type, n_in, 1536, 16, 20);
        }
        vk_mm_destroy(m);
        vt_dev_done(d);
    }
    return 0;
}

int main(void) {
    if (getenv("VKLLM_MM_BENCH")) return bench();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize),       cmocka_unit_test(test_embed),
        cmocka_unit_test(test_matmul),         cmocka_unit_test(test_matmul_split),
        cmocka_unit_test(test_matmul_relaxed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
