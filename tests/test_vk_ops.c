/* Row and element-wise Vulkan ops (src/vk/vk_ops_misc.c) against the CPU reference, on every
 * capability tier, at widths that are and are not multiples of the workgroup size.
 * Tolerance: NMSE <= 1e-10 (fp32 arithmetic throughout; SwiGLU uses the CPU's exp, so only
 * the division and the order of the norm's sum can differ). */
#include "vk_test_util.h"

#include "cpu/cpu_vec.h"

#include <unistd.h>

static const uint32_t k_widths[] = {1, 255, 576, 1537};
static const uint32_t k_rows[] = {1, 3, 7, 48};

static void test_swiglu(void **state) {
    (void)state;
    for (int tier = VT_FIRST_TIER; tier < VK_TIER_COUNT; tier++) {
        vk_dev *d = vt_dev(tier, 0);
        core_err err = {{0}};
        vk_misc *m;
        assert_int_equal(vk_misc_create(d, &m, &err), VKLLM_OK);
        for (size_t wi = 0; wi < sizeof k_widths / sizeof *k_widths; wi++)
            for (size_t ri = 0; ri < sizeof k_rows / sizeof *k_rows; ri++) {
                const uint32_t w = k_widths[wi], n = k_rows[ri], stride = w + 3;
                const size_t cnt = (size_t)n * stride;
                float *g = malloc(cnt * 4), *u = malloc(cnt * 4), *ref = calloc(cnt, 4),
                      *got = calloc(cnt, 4);
                vt_fill(g, cnt, -12.0f, 12.0f);
                vt_fill(u, cnt, -2.0f, 2.0f);
                for (uint32_t t = 0; t < n; t++)
                    for (uint32_t i = 0; i < w; i++) {
                        const float x = g[t * stride + i];
                        ref[t * stride + i] =
                            (x / (1.0f + cpu_vec_expf(0.0f - x))) * u[t * stride + i];
                    }
                vk_arena a;
                vk_arena_init(&a, d, false, 0, "test");
                vk_act ga = {vt_slice(&a, g, cnt * 4), stride};
                vk_act ua = {vt_slice(&a, u, cnt * 4), stride};
                vk_act da = {vt_slice(&a, NULL, cnt * 4), stride};
                vk_rec r;
                vt_begin(d, &r);
                assert_int_equal(vk_swiglu(&r, m, ga, ua, da, n, w, &err), VKLLM_OK);
                vt_submit(&r);
                vt_read(d, &da.s, got, cnt * 4);
                const double e = vt_nmse(got, ref, cnt);
                if (e > 1e-10) fail_msg("swiglu tier %d w %u n %u: nmse %g", tier, w, n, e);
                vk_arena_free(&a);
                free(g), free(u), free(ref), free(got);
            }
        vk_misc_destroy(m);
        vt_dev_done(d);
    }
}

/* Row t's values by t % 6, on top of uniform [-3, 3] (kind 0): magnitudes spread over 2^-80 ..
 * 2^20 (the double sum rounds, squares underflow to subnormals and zero), all zero, a few
 * values in a row of zeros, squares near float's largest, and one square past it (inf). */
static void rms_row_kind(float *x, uint32_t w, uint32_t t) {
    uint32_t s = 0x9e3779b9u * (t + 1);
    for (uint32_t j = 0; j < w; j++) {
        s = s * 1664525u + 1013904223u;
        const float u = (float)(s >> 8) / 16777216.0f; /* [0, 1) */
        switch (t % 6) {
        case 1:
            x[j] = ldexpf(1.0f + u, (int)(s % 101) - 80) * (s & 1 ? -1.0f : 1.0f);
            break;
        case 2:
            x[j] = 0.0f;
            break;
        case 3:
            x[j] = j % 97 == 5 ? 1.5f + u : 0.0f;
            break;
        case 4:
            x[j] = ldexpf(1.0f + u, 62) * (s & 1 ? -1.0f : 1.0f);
            break;
        case 5:
            if (j == w / 2) x[j] = 3e19f;
            break;
        default:
            break;
        }
    }
}

/* rms_norm on n rows of x (w wide, ss apart) must give the CPU path's bits. */
static void rms_check(vk_dev *d, vk_misc *m, int tier, const float *x, uint32_t n, uint32_t w,
                      uint32_t ss, float eps) {
    const uint32_t sd = w + 1;
    float *wt = malloc(w * 4), *ref = calloc((size_t)n * sd, 4), *got = calloc((size_t)n * sd, 4);
    vt_fill(wt, w, 0.5f, 1.5f);
    for (uint32_t t = 0; t < n; t++) { /* as src/cpu/cpu_backend.c op_rms_norm */
        double sum = 0.0;
        for (uint32_t j = 0; j < w; j++)
            sum += (double)(x[t * ss + j] * x[t * ss + j]);
        const float scale = 1.0f / sqrtf((float)(sum / w) + eps);
        for (uint32_t j = 0; j < w; j++)
            ref[t * sd + j] = (x[t * ss + j] * scale) * wt[j];
    }
    core_err err = {{0}};
    vk_arena a;
    vk_arena_init(&a, d, false, 0, "test");
    vk_act xa = {vt_slice(&a, x, (size_t)n * ss * 4), ss};
    vk_slice ws = vt_slice(&a, wt, w * 4);
    vk_act da = {vt_slice(&a, NULL, (size_t)n * sd * 4), sd};
    vk_rec r;
    vt_begin(d, &r);
    assert_int_equal(vk_rms_norm(&r, m, xa, 0, NULL, ws, da, n, w, eps, &err), VKLLM_OK);
    vt_submit(&r);
    vt_read(d, &da.s, got, (size_t)n * sd * 4);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t j = 0; j < w; j++) {
            const float g = got[t * sd + j], f = ref[t * sd + j];
            if (f32_bits(g) != f32_bits(f) && !(isnan(g) && isnan(f)))
                fail_msg("rms_norm tier %d w %u row %u [%u]: %a, the CPU path's %a", tier, w, t, j,
                         g, f);
        }
    vk_arena_free(&a);
    free(wt), free(ref), free(got);
}

/* Rows of 4 whose mean lands on a float rounding boundary, so that the roundings of the
 * sequential double sum decide the result (eps 0). a^2 = A = 0x1.003774p+0 (last bit even):
 *  - a, 2^-12, 5 2^-29, 5 2^-29: squares A, 2^-24 (A + 2^-24 is a float tie), then 25 2^-58
 *    twice, each under half an ulp of the double sum and dropped: the mean is the tie A/4 +
 *    2^-26, which rounds to A/4; the exact sum (any tree order) is above the tie and rounds up;
 *  - a, 2^-12, 7 2^-29, 0: 49 2^-58 is over half an ulp, the sum rounds up, and so does the
 *    mean; a truncating sum would round it down.
 * a was searched for so that 1 / sqrt() keeps the one-ulp difference of the means. Both
 * properties are checked here, so the rows cannot silently lose their point. */
#define RMS_EDGE_A 0x1.001bb8p+0f
static const float k_rms_edge[2][4] = {
    {RMS_EDGE_A, 0x1p-12f, 0x5p-29f, 0x5p-29f},
    {RMS_EDGE_A, 0x1p-12f, 0x7p-29f, 0.0f},
};

static float rms_edge_scale(const float *x, bool exact) {
    long double e = 0.0L;
    double seq = 0.0;
    for (int j = 0; j < 4; j++) {
        seq += (double)(x[j] * x[j]);
        e += (long double)(x[j] * x[j]);
    }
    return 1.0f / sqrtf(exact ? (float)(e / 4) : (float)(seq / 4));
}

/* Bit for bit the CPU path's: random rows of every kind of rms_row_kind, and k_rms_edge. The
 * sum of squares is its sequential double sum, emulated exactly (shaders/rms_norm.comp). */
static void test_rms_norm(void **state) {
    (void)state;
    if (sizeof(long double) > sizeof(double)) /* x87's 64-bit mantissa holds the exact sum */
        assert_true(rms_edge_scale(k_rms_edge[0], false) != rms_edge_scale(k_rms_edge[0], true));
    const float a2 = RMS_EDGE_A * RMS_EDGE_A;
    assert_true(rms_edge_scale(k_rms_edge[1], false) !=
                1.0f / sqrtf((float)(((double)a2 + 0x1p-24) / 4))); /* the truncated sum's */
    for (int tier = VT_FIRST_TIER; tier < VK_TIER_COUNT; tier++) {
        vk_dev *d = vt_dev(tier, 0);
        core_err err = {{0}};
        vk_misc *m;
        assert_int_equal(vk_misc_create(d, &m, &err), VKLLM_OK);
        for (int lane = 0; lane < 2; lane++) { /* a row per workgroup (GPUs), per lane (CPU) */
            vk_misc_set_lane(m, lane != 0);
            for (size_t wi = 0; wi < sizeof k_widths / sizeof *k_widths; wi++)
                for (size_t ri = 0; ri < sizeof k_rows / sizeof *k_rows; ri++) {
                    const uint32_t w = k_widths[wi], n = k_rows[ri], ss = w + 5;
                    float *x = malloc((size_t)n * ss * 4);
                    vt_fill(x, (size_t)n * ss, -3.0f, 3.0f);
                    for (uint32_t t = 0; t < n; t++)
                        rms_row_kind(x + (size_t)t * ss, w, t);
                    rms_check(d, m, tier, x, n, w, ss, 1e-5f);
                    free(x);
                }
            rms_check(d, m, tier, &k_rms_edge[0][0], 2, 4, 4, 0.0f);
        }
        vk_misc_destroy(m);
        vt_dev_done(d);
    }
}

/* rms_norm of the output head writes rows from 0: read from row0 on, or gathered from the
 * step's output rows (vk_step_params: the last row of each entry with an output). */
static void test_rms_norm_row0(void **state) {
    (void)state;
    vk_dev *d = vt_dev(0, 0);
    core_err err = {{0}};
    vk_misc *m;
    assert_int_equal(vk_misc_create(d, &m, &err), VKLLM_OK);
    const uint32_t w = 64, n = 5, row0 = 3;
    float x[5 * 64], wt[64], got[3 * 64];
    vt_fill(x, n * w, -1.0f, 1.0f);
    for (uint32_t i = 0; i < w; i++)
        wt[i] = 1.0f;
    /* entries of 2, 1 and 2 rows, outputs from the first and the last: rows 1 and 4 */
    const vk_step_seq seqs[3] = {
        {.n_tokens = 2, .n_out = 1}, {.n_tokens = 1}, {.n_tokens = 2, .pos0 = 7, .n_out = 1}};
    const uint64_t pb = vk_step_params_bytes(n, 3, 16, 0);
    vk_step_params *p = calloc(1, pb);
    vk_step_params_init(p, n, 3, NULL, 0);
    vk_step_params_write(p, NULL, seqs, 3);
    assert_int_equal(p->n_out, 2);
    vk_arena a;
    vk_arena_init(&a, d, false, 0, "test");
    vk_act xa = {vt_slice(&a, x, sizeof x), w};
    vk_slice ws = vt_slice(&a, wt, sizeof wt), ps = vt_slice(&a, p, pb);
    for (int g = 0; g < 4; g++) { /* without and with gather, in both layouts */
        const int gather = g & 1;
        vk_misc_set_lane(m, g >= 2);
        const uint32_t rows = gather ? 2 : n - row0;
        const uint32_t src[2] = {gather ? 1 : row0, gather ? 4 : row0 + 1};
        vk_act da = {vt_slice(&a, NULL, sizeof got), w};
        vk_rec r;
        vt_begin(d, &r);
        assert_int_equal(
            vk_rms_norm(&r, m, xa, row0, gather ? &ps : NULL, ws, da, rows, w, 1e-5f, &err),
            VKLLM_OK);
        vt_submit(&r);
        vt_read(d, &da.s, got, sizeof got);
        for (uint32_t t = 0; t < rows; t++) {
            const float *xr = x + src[t] * w;
            double sum = 0.0;
            for (uint32_t j = 0; j < w; j++)
                sum += (double)(xr[j] * xr[j]);
            const float scale = 1.0f / sqrtf((float)(sum / w) + 1e-5f);
            for (uint32_t j = 0; j < w; j++)
                assert_true(fabsf(got[t * w + j] - xr[j] * scale) < 1e-5f);
        }
        for (uint32_t j = rows * w; j < 3 * w; j++)
            assert_true(got[j] == 0.0f);
    }
    vk_arena_free(&a);
    free(p);
    vk_misc_destroy(m);
    vt_dev_done(d);
}

/* The messenger must see a real validation error (a buffer with no usage bits), and
 * vk_check_validation must turn it into a failed status: this is what fails every other test
 * on a message. Needs the layer: ctest sets VKLLM_VK_VALIDATION=1. */
static void test_validation_catches(void **state) {
    (void)state;
    const char *v = getenv("VKLLM_VK_VALIDATION");
    if (!v || strcmp(v, "1") != 0)
        fail_msg("run with VKLLM_VK_VALIDATION=1 (ctest does): this test checks the layer");
    vk_dev *d = vt_dev(0, 0);
    assert_true(d->val.enabled);
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = 256,
                             .usage = 0,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer b = VK_NULL_HANDLE;
    if (d->t.vkCreateBuffer(d->dev, &bi, NULL, &b) == VK_SUCCESS)
        d->t.vkDestroyBuffer(d->dev, b, NULL);
    core_err err = {{0}};
    assert_true(d->val.n_messages > 0);
    assert_int_equal(vk_check_validation(d, &err), VKLLM_ERR_DEVICE);
    assert_non_null(strstr(err.msg, "validation"));
    vk_dev_destroy(d);
}

static int g_cache_damaged, g_cache_loaded;
static void cache_log(void *user, vkllm_log_level level, const char *msg) {
    (void)user, (void)level;
    if (strstr(msg, "damaged")) g_cache_damaged++;
    if (strstr(msg, "pipeline cache:") && strstr(msg, "bytes from")) g_cache_loaded++;
}

static vk_dev *cache_dev(void) {
    vk_dev_desc dd = {.log = cache_log, .select = "vulkan", .max_tier = -1};
    core_err err = {{0}};
    vk_dev *d = NULL;
    if (vk_dev_create(&dd, &d, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    vk_misc *m;
    if (vk_misc_create(d, &m, &err) != VKLLM_OK) fail_msg("%s", err.msg);
    vk_misc_destroy(m);
    return d;
}

/* The on-disk pipeline cache: written on exit, read on the next start, and a damaged file
 * (truncated, or bytes changed) is ignored with a notice, never handed to the driver. */
static void test_pipeline_cache(void **state) {
    (void)state;
    char dir[] = "/tmp/vkllm_pc_XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("VKLLM_CACHE", dir, 1);
    vk_dev *d = cache_dev();
    char path[600];
    snprintf(path, sizeof path, "%s", d->cache_path);
    vk_dev_destroy(d); /* writes the file */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    assert_true(len > 32);
    d = cache_dev();
    assert_int_equal(g_cache_loaded, 1);
    assert_int_equal(g_cache_damaged, 0);
    vk_dev_destroy(d);
    /* flip a byte in the middle */
    f = fopen(path, "r+b");
    fseek(f, len / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, len / 2, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    d = cache_dev();
    assert_int_equal(g_cache_damaged, 1);
    vt_dev_done(d); /* rewrites a good file */
    /* truncate */
    assert_int_equal(truncate(path, len / 3), 0);
    d = cache_dev();
    assert_int_equal(g_cache_damaged, 2);
    vt_dev_done(d);
    remove(path);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/pipelines", dir);
    rmdir(sub);
    rmdir(dir);
    unsetenv("VKLLM_CACHE");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu),         cmocka_unit_test(test_rms_norm),
        cmocka_unit_test(test_rms_norm_row0),  cmocka_unit_test(test_validation_catches),
        cmocka_unit_test(test_pipeline_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
