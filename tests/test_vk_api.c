/* The Vulkan backend through the public API: bad requests get clear errors (unknown device,
 * tier out of range, a memory cap too small for the weights, a context whose KV cache does not
 * fit the device's buffers), the runtime keeps working after them, and generation on Vulkan
 * agrees with the CPU path. The full greedy comparison over the golden prompts and every tier
 * is test_vk_greedy.c. ctest sets VKLLM_VK_VALIDATION=1: any validation message fails.
 *
 * No tolerance: the logits after a prompt and after each of a few greedy decode steps must be
 * the CPU backend's bit for bit (every Vulkan kernel gives the CPU path's bits; against its
 * AVX2 kernels, which the test requires: see test_vk_greedy.c). */
#include <math.h>

#define API_TEST_N_GEN 8
#include "api_test_util.h"

static char g_log[4096];
static void capture_log(void *user, vkllm_log_level level, const char *msg) {
    (void)user, (void)level;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

/* Bad requests get clear errors, never a crash: an unknown device index or name, a tier out
 * of range, a memory cap too small for the weights, a context whose KV cache cannot fit the
 * device's buffers; and auto on a machine whose only Vulkan device is a CPU driver picks the
 * CPU backend with a notice. */
static void test_errors(void **state) {
    (void)state;
    vkllm_runtime *rt = NULL;
    vkllm_runtime_desc rd = {.device = "vulkan:99"};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_NO_DEVICE);
    assert_non_null(strstr(vkllm_runtime_last_error(NULL), "vulkan:99"));
    rd.device = "vulkan:NoSuchGPU";
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_NO_DEVICE);
    assert_non_null(strstr(vkllm_runtime_last_error(NULL), "NoSuchGPU"));
    rd = (vkllm_runtime_desc){.device = "vulkan", .vk_tier_plus1 = 9};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_INVALID_ARG);

    /* 8 MiB of device memory cannot hold the weights */
    rd = (vkllm_runtime_desc){.device = "vulkan", .memory_cap = 8u << 20};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    vkllm_model *m = NULL;
    vkllm_model_desc md = {.path = getenv("VKLLM_MODEL")};
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_ERR_OUT_OF_MEMORY);
    assert_non_null(strstr(vkllm_runtime_last_error(rt), "memory cap"));
    vkllm_runtime_destroy(rt);

    /* a context whose per-layer cache exceeds the largest buffer */
    m = api_test_open(&rt, "vulkan", -1);
    vkllm_session *s = NULL;
    vkllm_session_desc sd = {.n_ctx = 1u << 20};
    assert_int_not_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    assert_null(s);
    assert_non_null(strstr(vkllm_model_last_error(m), "buffer limit"));
    /* the runtime still works after the failures */
    run_out o;
    const vkllm_sampling greedy = {.temperature = 0.0f};
    api_test_generate(m, "Hello", &greedy, &o);
    assert_int_equal(o.n, API_TEST_N_GEN);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);

    /* auto: lavapipe is a CPU driver, so the CPU backend, with a notice */
    g_log[0] = '\0';
    rd = (vkllm_runtime_desc){.device = "auto", .log = capture_log, .log_level = VKLLM_LOG_INFO};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    if (strncmp(vkllm_runtime_backend_name(rt), "cpu", 3) == 0)
        assert_non_null(strstr(g_log, "device auto"));
    vkllm_runtime_destroy(rt);
}

/* Logits bit for bit: after the prompt (a prefill of several token tiles) and after each of
 * 4 decode steps fed the CPU's greedy choice, for 3 prompts, at the device's own tier. */
/* vk_relaxed_products is in effect exactly where the device's fma() is not fused (the runtime's
 * device features say "unfused-fma": lavapipe), and the backend name says so; the CPU backend
 * takes the setting and ignores it. */
static void test_relaxed_info(void **state) {
    (void)state;
    for (int relaxed = 0; relaxed < 2; relaxed++)
        for (int cpu = 0; cpu < 2; cpu++) {
            vkllm_runtime *rt = NULL;
            vkllm_runtime_desc rd = {.device = cpu ? "cpu" : "vulkan",
                                     .vk_relaxed_products = relaxed};
            assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
            vkllm_device_info di = {0};
            vkllm_runtime_device(rt, &di);
            const bool unfused = strstr(di.features, "unfused-fma") != NULL;
            const bool named = strstr(vkllm_runtime_backend_name(rt), "relaxed") != NULL;
            print_message("%s relaxed=%d: %s; features \"%s\"\n", rd.device, relaxed,
                          vkllm_runtime_backend_name(rt), di.features);
            assert_true(di.relaxed_products == (relaxed && !cpu && unfused));
            assert_true(named == di.relaxed_products);
            if (cpu) assert_false(unfused);
            vkllm_runtime_destroy(rt);
        }
}

static void test_logits_identical(void **state) {
    (void)state;
    const char *prompts[] = {"The capital of France is", "def fibonacci(n):",
                             "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"};
    vkllm_runtime *crt, *vrt;
    vkllm_model *cm = api_test_open(&crt, "cpu", -1), *vm = api_test_open(&vrt, "vulkan", -1);
    api_test_require_avx2(crt);
    vkllm_model_info mi = {0};
    vkllm_model_get_info(cm, &mi);
    for (size_t p = 0; p < sizeof prompts / sizeof *prompts; p++) {
        vkllm_session *cs, *vs;
        vkllm_session_desc sd = {.n_ctx = 256};
        assert_int_equal(vkllm_session_create(cm, &sd, &cs), VKLLM_OK);
        assert_int_equal(vkllm_session_create(vm, &sd, &vs), VKLLM_OK);
        int32_t toks[256];
        size_t n = 0;
        assert_int_equal(vkllm_tokenize(cm, prompts[p], strlen(prompts[p]),
                                        VKLLM_TOKENIZE_ADD_SPECIAL | VKLLM_TOKENIZE_PARSE_SPECIAL,
                                        toks, 256, &n),
                         VKLLM_OK);
        for (int step = 0; step <= 4; step++) {
            assert_int_equal(vkllm_session_eval(cs, toks, n), VKLLM_OK);
            assert_int_equal(vkllm_session_eval(vs, toks, n), VKLLM_OK);
            const float *a = vkllm_session_logits(cs), *b = vkllm_session_logits(vs);
            uint32_t am = 0, differ = 0, first = 0;
            for (uint32_t j = 0; j < mi.n_vocab; j++) {
                if (a[j] > a[am]) am = j;
                if (memcmp(&a[j], &b[j], sizeof(float)) != 0 && differ++ == 0) first = j;
            }
            if (differ)
                fail_msg("prompt %zu step %d: %u of %u logits differ from the CPU's (first: "
                         "token %u, %a against %a)",
                         p, step, differ, mi.n_vocab, first, b[first], a[first]);
            toks[0] = (int32_t)am; /* the next step feeds the greedy token */
            n = 1;
        }
        printf("prompt %zu: logits bit-identical after the prompt and 4 decode steps\n", p);
        vkllm_session_destroy(cs);
        vkllm_session_destroy(vs);
    }
    vkllm_model_free(cm);
    vkllm_model_free(vm);
    vkllm_runtime_destroy(crt);
    vkllm_runtime_destroy(vrt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_logits_identical),
        cmocka_unit_test(test_relaxed_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
