/* Row and element-wise Vulkan ops (src/vk/vk_ops_misc.c) against the CPU reference, on every
 * capability tier, at widths that are and are not multiples of the workgroup size.
 * Tolerance: NMSE <= 1e-10 (fp32 arithmetic throughout; SwiGLU uses the CPU's exp, so only
 * the division and the order of the norm's sum can differ). */
#include "vk_test_util.h"

#include "cpu/cpu_vec.h"

static const uint32_t k_widths[] = {1, 255, 576, 1537};
static const uint32_t k_rows[] = {1, 3, 7};

static void test_swiglu(void **state) {
    (void)state;
    for (int tier = 0; tier < VK_TIER_COUNT; tier++) {
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
                        ref[t * stride + i] = (x / (1.0f + cpu_vec_expf(0.0f - x))) *
                                              u[t * stride + i];
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

static void test_rms_norm(void **state) {
    (void)state;
    const float eps = 1e-5f;
    for (int tier = 0; tier < VK_TIER_COUNT; tier++) {
        vk_dev *d = vt_dev(tier, 0);
        core_err err = {{0}};
        vk_misc *m;
        assert_int_equal(vk_misc_create(d, &m, &err), VKLLM_OK);
        for (size_t wi = 0; wi < sizeof k_widths / sizeof *k_widths; wi++)
            for (size_t ri = 0; ri < sizeof k_rows / sizeof *k_rows; ri++) {
                const uint32_t w = k_widths[wi], n = k_rows[ri], ss = w + 5, sd = w + 1;
                float *x = malloc((size_t)n * ss * 4), *wt = malloc(w * 4);
                float *ref = calloc((size_t)n * sd, 4), *got = calloc((size_t)n * sd, 4);
                vt_fill(x, (size_t)n * ss, -3.0f, 3.0f);
                vt_fill(wt, w, 0.5f, 1.5f);
                for (uint32_t t = 0; t < n; t++) { /* as src/cpu/cpu_backend.c op_rms_norm */
                    double sum = 0.0;
                    for (uint32_t j = 0; j < w; j++) sum += (double)(x[t * ss + j] * x[t * ss + j]);
                    const float scale = 1.0f / sqrtf((float)(sum / w) + eps);
                    for (uint32_t j = 0; j < w; j++)
                        ref[t * sd + j] = (x[t * ss + j] * scale) * wt[j];
                }
                vk_arena a;
                vk_arena_init(&a, d, false, 0, "test");
                vk_act xa = {vt_slice(&a, x, (size_t)n * ss * 4), ss};
                vk_slice ws = vt_slice(&a, wt, w * 4);
                vk_act da = {vt_slice(&a, NULL, (size_t)n * sd * 4), sd};
                vk_rec r;
                vt_begin(d, &r);
                assert_int_equal(vk_rms_norm(&r, m, xa, ws, da, n, w, eps, &err), VKLLM_OK);
                vt_submit(&r);
                vt_read(d, &da.s, got, (size_t)n * sd * 4);
                const double e = vt_nmse(got, ref, (size_t)n * sd);
                if (e > 1e-10) fail_msg("rms_norm tier %d w %u n %u: nmse %g", tier, w, n, e);
                vk_arena_free(&a);
                free(x), free(wt), free(ref), free(got);
            }
        vk_misc_destroy(m);
        vt_dev_done(d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rms_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
