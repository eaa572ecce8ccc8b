/* A packed 2:4 model on Vulkan gives the CPU path's bits (issue 18): the default model
 * (VKLLM_MODEL) with its layer matrices converted to S24_Q4 by eng_prune_s24 into a temporary
 * directory, run through the public API on `--device cpu` and `--device vulkan`:
 *  - the first step's logits of a prompt are identical, bit for bit, at every capability tier
 *    (prefill: the prompt's tokens as one batch through the multi-token kernels);
 *  - 32 greedy tokens of two prompts (prefill, then decode one token at a time) are the same
 *    at every tier;
 *  - a manual engine (paced: steps submitted in segments) decoding both prompts in one batch
 *    gives the same tokens.
 * No tolerance, as tests/test_vk_greedy.c for the dense model: the S24 kernels of both
 * backends follow the spec's arithmetic (quant_blocks.h), and every other op was already
 * exact. Needs AVX2 on the CPU side (api_test_require_avx2). ctest sets VKLLM_VK_VALIDATION=1.
 */
#include "api_test_util.h"

#include "core/quant.h"
#include "engine/prune_s24.h"
#include "loader/gguf.h"

#include <unistd.h>

static char g_dir[64], g_path[96];
static const char *const k_prompts[] = {
    "The quick brown fox jumps over the lazy dog. Then the fox",
    "Shopping list:\n1. Milk\n2. Eggs\n3. Bread\n4. Butter\n5. Apples\n6. Cheese\n7. Rice\n8.",
};
#define N_PROMPTS (sizeof k_prompts / sizeof k_prompts[0])

static int setup(void **state) {
    (void)state;
    const char *src = getenv("VKLLM_MODEL");
    if (!src) {
        fprintf(stderr, "VKLLM_MODEL is not set (scripts/fetch_model.sh)\n");
        return -1;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/vkllm_vks24_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_path, sizeof g_path, "%s/model-s24_q4.gguf", g_dir);
    gguf_file *f = NULL;
    core_err err = {{0}};
    gguf_open_desc od = {0};
    if (gguf_open(src, &od, &f, &err) != VKLLM_OK) {
        fprintf(stderr, "open %s: %s\n", src, err.msg);
        return -1;
    }
    const vkllm_status st = eng_prune_s24(f, g_path, QT_S24_Q4, NULL, NULL, &err);
    gguf_close(f);
    if (st != VKLLM_OK) {
        fprintf(stderr, "prune: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(g_path);
    rmdir(g_dir);
    return 0;
}

/* The S24 model on `device` (tier < 0: the device's own). */
static vkllm_model *open_s24(vkllm_runtime **rt, const char *device, int tier) {
    vkllm_runtime_desc rd = {
        .device = device, .n_threads = API_TEST_THREADS, .vk_tier_plus1 = tier + 1};
    if (vkllm_runtime_create(&rd, rt) != VKLLM_OK)
        fail_msg("runtime %s tier %d: %s", device, tier, vkllm_runtime_last_error(NULL));
    vkllm_model_desc md = {.path = g_path};
    vkllm_model *m = NULL;
    if (vkllm_model_load(*rt, &md, &m) != VKLLM_OK)
        fail_msg("model: %s", vkllm_runtime_last_error(*rt));
    vkllm_model_info mi = {.struct_size = sizeof mi};
    vkllm_model_get_info(m, &mi);
    assert_string_equal(mi.type, "S24_Q4");
    return m;
}

/* The logits after evaluating the prompt as one batch (n_vocab floats, malloc'd). */
static float *first_logits(vkllm_model *m, const char *prompt, uint32_t *n_vocab) {
    int32_t ids[256];
    size_t n = 0;
    assert_int_equal(
        vkllm_tokenize(m, prompt, strlen(prompt), VKLLM_TOKENIZE_ADD_SPECIAL, ids, 256, &n),
        VKLLM_OK);
    assert_true(n > 16); /* more than one matrix-vector tile of tokens on lavapipe */
    vkllm_session_desc sd = {.n_ctx = 256};
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    if (vkllm_session_eval(s, ids, n) != VKLLM_OK)
        fail_msg("eval: %s", vkllm_session_last_error(s));
    vkllm_model_info mi = {.struct_size = sizeof mi};
    vkllm_model_get_info(m, &mi);
    *n_vocab = mi.n_vocab;
    float *out = malloc(sizeof(float) * mi.n_vocab);
    assert_non_null(out);
    memcpy(out, vkllm_session_logits(s), sizeof(float) * mi.n_vocab);
    vkllm_session_destroy(s);
    return out;
}

static void test_s24_model_vulkan_is_cpu(void **state) {
    (void)state;
    vkllm_runtime *crt;
    vkllm_model *cm = open_s24(&crt, "cpu", -1);
    api_test_require_avx2(crt);
    const vkllm_sampling greedy = {.temperature = 0.0f};
    uint32_t nv = 0;
    float *ref_logits = first_logits(cm, k_prompts[1], &nv);
    run_out ref[N_PROMPTS];
    for (size_t p = 0; p < N_PROMPTS; p++)
        api_test_generate(cm, k_prompts[p], &greedy, &ref[p]);
    vkllm_model_free(cm);
    vkllm_runtime_destroy(crt);
    for (int tier = 0; tier <= 2; tier++) {
        vkllm_runtime *rt;
        vkllm_model *m = open_s24(&rt, "vulkan", tier);
        uint32_t nv2 = 0;
        float *lg = first_logits(m, k_prompts[1], &nv2);
        assert_int_equal(nv, nv2);
        for (uint32_t i = 0; i < nv; i++)
            if (memcmp(&lg[i], &ref_logits[i], 4) != 0)
                fail_msg("tier %d: logit %u is %a, the CPU's %a", tier, i, lg[i], ref_logits[i]);
        free(lg);
        for (size_t p = 0; p < N_PROMPTS; p++) {
            run_out o;
            api_test_generate(m, k_prompts[p], &greedy, &o);
            for (int k = 0; k < API_TEST_N_GEN; k++)
                if (k >= o.n || o.ids[k] != ref[p].ids[k])
                    fail_msg("tier %d prompt %zu: token %d is %d, the CPU's %d", tier, p, k,
                             k < o.n ? o.ids[k] : -1, ref[p].ids[k]);
        }
        printf("tier %d (%s): the CPU's logits and %d greedy tokens of %zu prompts\n", tier,
               vkllm_runtime_backend_name(rt), API_TEST_N_GEN, N_PROMPTS);
        vkllm_model_free(m);
        vkllm_runtime_destroy(rt);
    }
    free(ref_logits);
}

/* The engine on Vulkan (the device's tier): both prompts submitted together to a manual
 * engine, so its decode steps run the two sequences' tokens through one multi-token product,
 * and stepped with a budget far below a step's time, so each step is recorded in segments
 * (paced) and submitted a segment per call: the tokens of vkllm_generate on the CPU. */
static void test_s24_engine_paced_batched(void **state) {
    (void)state;
    vkllm_runtime *crt;
    vkllm_model *cm = open_s24(&crt, "cpu", -1);
    api_test_require_avx2(crt);
    const vkllm_sampling greedy = {.temperature = 0.0f};
    run_out ref[N_PROMPTS];
    for (size_t p = 0; p < N_PROMPTS; p++)
        api_test_generate(cm, k_prompts[p], &greedy, &ref[p]);
    vkllm_model_free(cm);
    vkllm_runtime_destroy(crt);

    vkllm_runtime *rt;
    vkllm_model *m = open_s24(&rt, "vulkan", -1);
    vkllm_engine_desc ed = {.n_ctx = 256, .max_seqs = 4, .no_prefix_cache = true, .manual = true};
    vkllm_engine *e = NULL;
    if (vkllm_engine_create(m, &ed, &e) != VKLLM_OK)
        fail_msg("engine: %s", vkllm_model_last_error(m));
    vkllm_request *r[N_PROMPTS];
    for (size_t p = 0; p < N_PROMPTS; p++) {
        const vkllm_request_desc d = {.prompt = k_prompts[p],
                                      .max_tokens = API_TEST_N_GEN,
                                      .ignore_eog = true,
                                      .sampling = greedy};
        if (vkllm_submit(e, &d, &r[p]) != VKLLM_OK)
            fail_msg("submit: %s", vkllm_engine_last_error(e));
    }
    uint32_t active = N_PROMPTS, calls = 0;
    while (active > 0) {
        if (vkllm_step(e, 2e-3, &active) != VKLLM_OK)
            fail_msg("step: %s", vkllm_engine_last_error(e));
        calls++;
    }
    vkllm_engine_stats st = {.struct_size = sizeof st};
    vkllm_engine_get_stats(e, &st);
    for (size_t p = 0; p < N_PROMPTS; p++) {
        assert_int_equal(vkllm_request_wait(r[p], NULL), VKLLM_OK);
        size_t n = 0;
        const int32_t *ids = vkllm_request_tokens(r[p], &n);
        assert_int_equal(n, API_TEST_N_GEN);
        for (size_t k = 0; k < n; k++)
            if (ids[k] != ref[p].ids[k])
                fail_msg("engine prompt %zu: token %zu is %d, the CPU's %d", p, k, ids[k],
                         ref[p].ids[k]);
        vkllm_request_free(r[p]);
    }
    printf("engine (%s): %llu steps in %u calls, the CPU's tokens\n",
           vkllm_runtime_backend_name(rt), (unsigned long long)st.steps, calls);
    /* more calls than steps: the budget cut the steps (segments, or waits on the device) */
    assert_true(calls > st.steps);
    vkllm_engine_destroy(e);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s24_model_vulkan_is_cpu),
        cmocka_unit_test(test_s24_engine_paced_batched),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
