/* Models split over several devices (src/api_place.c, src/engine/split.c), through the public
 * API on the default model: the CPU backend and lavapipe, and two logical lavapipe devices.
 *  - partial offload: greedy tokens of every gpu_layers from 0 to all the layers equal the
 *    CPU backend's (every stage does its backend's arithmetic, and the Vulkan kernels give
 *    the CPU's bits), with the placement -ngl gives (docs/offload.md);
 *  - a split over two logical devices on one physical device, and over Vulkan and the CPU,
 *    alone and with 15 sequences batched in the engine;
 *  - a memory cap below the model's size places the model in part on the CPU and still
 *    runs; a cap below one layer is a clear error;
 *  - bad input: devices that do not exist, lists and shares that do not parse.
 * Under the sanitizers a shorter set (VKLLM_TEST_SANITIZED): a few gpu_layers values, fewer
 * tokens and sequences. The validation layer is on (VKLLM_VK_VALIDATION, set by ctest): a
 * message fails the step that saw it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef VKLLM_TEST_SANITIZED
#define API_TEST_N_GEN 6
static const bool g_small = true;
#else
#define API_TEST_N_GEN 10
static const bool g_small = false;
#endif
#include "api_test_util.h"
#include "vkllm.h"

#define N_TOK API_TEST_N_GEN
#define MAX_STAGES 8

/* A short prompt (a serial attention prefill) and one of 70+ tokens (tiled attention). */
static const char *k_prompts[2] = {
    "The capital of France is",
    "Once upon a time, in a village far away, there lived an old clockmaker who made clocks "
    "for every house in the valley. Each clock had a different voice, and every morning the "
    "whole village woke to a chorus of chimes. One winter the clockmaker fell ill, and",
};

static run_out g_ref[2]; /* the CPU backend's tokens */
static uint32_t g_layers;

static vkllm_runtime *runtime(const char *device, uint64_t cap) {
    vkllm_runtime_desc rd = {.device = device, .n_threads = API_TEST_THREADS, .memory_cap = cap};
    vkllm_runtime *rt = NULL;
    if (vkllm_runtime_create(&rd, &rt) != VKLLM_OK)
        fail_msg("runtime %s: %s", device, vkllm_runtime_last_error(NULL));
    return rt;
}

static vkllm_status load(vkllm_runtime *rt, int ngl, const float *split, uint32_t n_split,
                         vkllm_model **m) {
    vkllm_model_desc md = {.struct_size = sizeof md,
                           .path = getenv("VKLLM_MODEL"),
                           .gpu_layers_plus1 = ngl + 1,
                           .split = split,
                           .n_split = n_split,
                           .n_ctx_hint = 1024};
    *m = NULL;
    return vkllm_model_load(rt, &md, m);
}

static size_t placement(const vkllm_model *m, vkllm_placement *p) {
    for (int i = 0; i < MAX_STAGES; i++)
        p[i].struct_size = sizeof *p;
    size_t n = 0;
    assert_int_equal(vkllm_model_placement(m, p, MAX_STAGES, &n), VKLLM_OK);
    assert_true(n >= 1 && n <= MAX_STAGES);
    /* the stages cover the layers in order, embedding first and head last */
    uint32_t next = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p[i].layer0, next);
        next += p[i].n_layers;
        assert_true(p[i].embedding == (i == 0));
        assert_true(p[i].output == (i + 1 == n));
        assert_true(p[i].weight_bytes > 0);
    }
    assert_int_equal(next, g_layers);
    return n;
}

/* Layers the placement put on Vulkan devices. */
static uint32_t gpu_layers(const vkllm_placement *p, size_t n) {
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(p[i].device, "vulkan", 6) == 0) k += p[i].n_layers;
    return k;
}

static void generate_n(vkllm_model *m, const char *prompt, run_out *o) {
    api_test_generate(m, prompt, &(vkllm_sampling){0}, o); /* greedy, N_TOK tokens */
}

/* The CPU's tokens for the prompts in mask (bit p: prompt p). */
static void expect_ref_some(vkllm_model *m, const char *what, unsigned mask) {
    for (int p = 0; p < 2; p++) {
        if (!(mask >> p & 1)) continue;
        run_out o;
        generate_n(m, k_prompts[p], &o);
        assert_int_equal(o.n, N_TOK);
        for (int k = 0; k < N_TOK; k++)
            if (o.ids[k] != g_ref[p].ids[k])
                fail_msg("%s: prompt %d differs from the CPU backend at token %d (%d vs %d)", what,
                         p, k, o.ids[k], g_ref[p].ids[k]);
    }
}

static void expect_ref(vkllm_model *m, const char *what) {
    expect_ref_some(m, what, 3);
}

static int setup(void **state) {
    (void)state;
    if (!getenv("VKLLM_MODEL")) {
        fprintf(stderr, "VKLLM_MODEL is not set (scripts/fetch_model.sh)\n");
        return -1;
    }
    vkllm_runtime *rt = runtime("cpu", 0);
    api_test_require_avx2(rt); /* the Vulkan stages give the AVX2 kernels' bits */
    vkllm_model *m = NULL;
    if (load(rt, -1, NULL, 0, &m) != VKLLM_OK) {
        fprintf(stderr, "model: %s\n", vkllm_runtime_last_error(rt));
        return -1;
    }
    vkllm_model_info info = {.struct_size = sizeof info};
    vkllm_model_get_info(m, &info);
    g_layers = info.n_layer;
    for (int p = 0; p < 2; p++)
        generate_n(m, k_prompts[p], &g_ref[p]);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    return 0;
}

/* Every gpu_layers from 0 to all (the short set: a few): the placement -ngl gives
 * (docs/offload.md), and the CPU's tokens. */
static void test_gpu_layers(void **state) {
    (void)state;
    vkllm_runtime *rt = runtime("vulkan", 0);
    const int L = (int)g_layers;
    const int few[] = {0, L / 2, L + 5};
    const int n_vals = g_small ? 3 : L + 2;
    for (int v = 0; v < n_vals; v++) {
        const int ngl = g_small ? few[v] : v == L + 1 ? -1 : v; /* -1: the default, all */
        vkllm_model *m = NULL;
        if (load(rt, ngl, NULL, 0, &m) != VKLLM_OK)
            fail_msg("gpu_layers %d: %s", ngl, vkllm_runtime_last_error(rt));
        vkllm_placement p[MAX_STAGES];
        const size_t n = placement(m, p);
        const int want = ngl < 0 || ngl > L ? L : ngl;
        assert_int_equal(gpu_layers(p, n), (uint32_t)want);
        if (want == 0 || want == L) {
            assert_int_equal(n, 1); /* one device: no split at all */
        } else {
            /* the CPU's layers and embedding, the GPU's, then the head on the CPU */
            assert_int_equal(n, 3);
            assert_string_equal(p[0].device, "cpu");
            assert_int_equal(p[0].n_layers, (uint32_t)(L - want));
            assert_string_equal(p[2].device, "cpu");
            assert_int_equal(p[2].n_layers, 0);
        }
        char what[64];
        snprintf(what, sizeof what, "gpu_layers %d", ngl);
        /* the sweep alternates the prompts; both where the placement changes shape */
        const bool edge = g_small || want == 0 || want == L || want == L / 2;
        expect_ref_some(m, what, edge ? 3u : 1u << (v % 2));
        vkllm_model_free(m);
    }
    vkllm_runtime_destroy(rt);
}

/* Two logical devices on lavapipe (vulkan:0 twice), and Vulkan with the CPU, in shares. */
static void test_device_lists(void **state) {
    (void)state;
    static const struct {
        const char *device;
        float split[2];
    } cases[] = {
        {"vulkan:0,vulkan:0", {3, 1}}, {"vulkan:0,vulkan:0", {1, 1}}, {"vulkan:0,cpu", {1, 1}},
        {"cpu,vulkan:0", {1, 2}},      {"vulkan:0,vulkan:0", {0, 1}},
    };
    const int n_cases = g_small ? 1 : (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < n_cases; c++) {
        vkllm_runtime *rt = runtime(cases[c].device, 0);
        vkllm_model *m = NULL;
        if (load(rt, -1, cases[c].split, 2, &m) != VKLLM_OK)
            fail_msg("%s: %s", cases[c].device, vkllm_runtime_last_error(rt));
        vkllm_placement p[MAX_STAGES];
        const size_t n = placement(m, p);
        const float s0 = cases[c].split[0], s1 = cases[c].split[1];
        const uint32_t first = (uint32_t)(g_layers * s0 / (s0 + s1) + 0.5f);
        if (first == 0) { /* a device with no share holds nothing */
            assert_int_equal(n, 1);
        } else {
            assert_int_equal(n, 2);
            assert_int_equal(p[0].n_layers, first);
            assert_int_equal(p[1].layer0, first);
        }
        expect_ref(m, cases[c].device);
        vkllm_model_free(m);
        vkllm_runtime_destroy(rt);
    }
}

typedef struct seq_out {
    int32_t ids[32];
    size_t n;
} seq_out;

/* n greedy requests of different prompt lengths batched in one engine; budget > 0: a manual
 * engine stepped with that budget (a split's steps resumed across calls). */
static void run_engine_ex(vkllm_model *m, int n, seq_out *out, double budget) {
    vkllm_engine_desc d = {
        .n_ctx = 512, .max_seqs = 16, .no_prefix_cache = true, .manual = budget > 0};
    vkllm_engine *e = NULL;
    if (vkllm_engine_create(m, &d, &e) != VKLLM_OK)
        fail_msg("engine: %s", vkllm_model_last_error(m));
    static char prompts[16][600];
    vkllm_request *r[16];
    for (int i = 0; i < n; i++) {
        /* 1 to ~60 words: prefill chunks of every attention kind beside the decodes */
        snprintf(prompts[i], sizeof prompts[i], "%.*s", 8 + (i * 37) % 300,
                 k_prompts[1] + (i * 3) % 40);
        vkllm_request_desc rd = {
            .prompt = prompts[i], .max_tokens = g_small ? 4 : 8 + i % 5, .ignore_eog = true};
        if (vkllm_submit(e, &rd, &r[i]) != VKLLM_OK)
            fail_msg("submit: %s", vkllm_engine_last_error(e));
    }
    uint32_t active = 1;
    for (long calls = 0; budget > 0 && active; calls++) {
        assert_int_equal(vkllm_step(e, budget, &active), VKLLM_OK);
        assert_true(calls < 1000000);
    }
    for (int i = 0; i < n; i++) {
        vkllm_request_result res = {0};
        assert_int_equal(vkllm_request_wait(r[i], &res), VKLLM_OK);
        const int32_t *ids = vkllm_request_tokens(r[i], &out[i].n);
        assert_non_null(ids);
        assert_true(out[i].n <= 32);
        memcpy(out[i].ids, ids, out[i].n * sizeof *ids);
        vkllm_request_free(r[i]);
    }
    vkllm_engine_destroy(e);
}

static void run_engine(vkllm_model *m, int n, seq_out *out) {
    run_engine_ex(m, n, out, 0.0);
}

/* 15 sequences at once on a split model: each one's tokens are the CPU engine's; the first
 * split again as a manual engine stepped with a 5 ms budget. */
static void test_batched(void **state) {
    (void)state;
    const int n = g_small ? 5 : 15;
    static seq_out ref[16], got[16];
    vkllm_runtime *rt = runtime("cpu", 0);
    vkllm_model *m = NULL;
    assert_int_equal(load(rt, -1, NULL, 0, &m), VKLLM_OK);
    run_engine(m, n, ref);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    static const struct {
        const char *device;
        int ngl;
        float split[2];
    } cases[] = {
        {"vulkan", 12, {0, 0}}, {"vulkan:0,vulkan:0", -1, {3, 1}}, {"vulkan:0,cpu", -1, {1, 1}}};
    const int n_cases = g_small ? 1 : 3;
    for (int c = 0; c < n_cases; c++) {
        rt = runtime(cases[c].device, 0);
        const bool list = strchr(cases[c].device, ',') != NULL;
        if (load(rt, cases[c].ngl, list ? cases[c].split : NULL, list ? 2 : 0, &m) != VKLLM_OK)
            fail_msg("%s: %s", cases[c].device, vkllm_runtime_last_error(rt));
        vkllm_placement p[MAX_STAGES];
        assert_true(placement(m, p) >= 2);
        for (int pass = 0; pass < (c == 0 ? 2 : 1); pass++) {
            run_engine_ex(m, n, got, pass ? 0.005 : 0.0);
            for (int i = 0; i < n; i++)
                if (got[i].n != ref[i].n || memcmp(got[i].ids, ref[i].ids, ref[i].n * 4) != 0)
                    fail_msg("%s%s: sequence %d of %d differs from the CPU engine's",
                             cases[c].device, pass ? " (stepped)" : "", i, n);
        }
        vkllm_model_free(m);
        vkllm_runtime_destroy(rt);
    }
}

/* The prefix cache across a split: a prompt of 3+ pages run twice on one engine; the second
 * run takes its full pages from the cache (the K and V of every stage's layers) and answers as
 * the first, which is the CPU engine's answer. */
static void test_prefix_cache(void **state) {
    (void)state;
    static const char *devices[] = {"cpu", "vulkan:0,vulkan:0"};
    static seq_out out[2][2];
    uint32_t cached[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
        vkllm_runtime *rt = runtime(devices[d], 0);
        vkllm_model *m = NULL;
        assert_int_equal(load(rt, -1, NULL, 0, &m), VKLLM_OK);
        vkllm_engine_desc ed = {.n_ctx = 512, .max_seqs = 4};
        vkllm_engine *e = NULL;
        if (vkllm_engine_create(m, &ed, &e) != VKLLM_OK)
            fail_msg("engine: %s", vkllm_model_last_error(m));
        for (int run = 0; run < 2; run++) {
            vkllm_request_desc rd = {
                .prompt = k_prompts[1], .max_tokens = N_TOK, .ignore_eog = true};
            vkllm_request *r = NULL;
            assert_int_equal(vkllm_submit(e, &rd, &r), VKLLM_OK);
            vkllm_request_result res = {.struct_size = sizeof res};
            assert_int_equal(vkllm_request_wait(r, &res), VKLLM_OK);
            const int32_t *ids = vkllm_request_tokens(r, &out[d][run].n);
            assert_non_null(ids);
            memcpy(out[d][run].ids, ids, out[d][run].n * sizeof *ids);
            if (run == 1) cached[d] = res.n_cached;
            vkllm_request_free(r);
        }
        vkllm_engine_destroy(e);
        vkllm_model_free(m);
        vkllm_runtime_destroy(rt);
    }
    for (int d = 0; d < 2; d++) {
        if (cached[d] < 32) fail_msg("%s: %u prompt tokens from the cache", devices[d], cached[d]);
        for (int run = 0; run < 2; run++)
            if (out[d][run].n != out[0][0].n ||
                memcmp(out[d][run].ids, out[0][0].ids, out[0][0].n * 4) != 0)
                fail_msg("%s, run %d: not the CPU's first answer", devices[d], run);
    }
    assert_int_equal(cached[0], cached[1]);
}

/* A Vulkan memory cap below the model's size: part of it on the CPU, same tokens; a cap that
 * holds no layer: a clear error. */
static void test_memory_cap(void **state) {
    (void)state;
    vkllm_runtime *rt = runtime("cpu", 0);
    vkllm_model *m = NULL;
    assert_int_equal(load(rt, -1, NULL, 0, &m), VKLLM_OK);
    vkllm_model_info info = {.struct_size = sizeof info};
    vkllm_model_get_info(m, &info);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);

    const uint64_t cap = info.weight_bytes * 2 / 3; /* with room for a context */
    rt = runtime("vulkan", cap);
    if (load(rt, -1, NULL, 0, &m) != VKLLM_OK)
        fail_msg("cap %.1f MiB: %s", (double)cap / 1048576.0, vkllm_runtime_last_error(rt));
    vkllm_placement p[MAX_STAGES];
    const size_t n = placement(m, p);
    assert_true(n >= 2);
    const uint32_t on_gpu = gpu_layers(p, n);
    assert_true(on_gpu > 0 && on_gpu < g_layers);
    uint64_t gpu_bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(p[i].device, "vulkan", 6) == 0) gpu_bytes += p[i].weight_bytes;
    assert_true(gpu_bytes < cap);
    expect_ref(m, "memory cap");
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);

    rt = runtime("vulkan", 4ull << 20); /* less than one layer and a context */
    assert_int_equal(load(rt, -1, NULL, 0, &m), VKLLM_ERR_OUT_OF_MEMORY);
    assert_null(m);
    const char *msg = vkllm_runtime_last_error(rt);
    if (!strstr(msg, "holds no layer") || !strstr(msg, "vulkan:0"))
        fail_msg("cap below one layer: '%s'", msg);
    vkllm_runtime_destroy(rt);
}

static void expect_runtime_error(const char *device, vkllm_status want, const char *pat) {
    vkllm_runtime_desc rd = {.device = device, .n_threads = 1};
    vkllm_runtime *rt = NULL;
    const vkllm_status st = vkllm_runtime_create(&rd, &rt);
    const char *msg = vkllm_runtime_last_error(NULL);
    if (st != want || rt || !strstr(msg, pat))
        fail_msg("device '%s': status %d '%s' (want %d and '%s')", device, st, msg, want, pat);
}

static void expect_load_error(vkllm_runtime *rt, int ngl, const float *split, uint32_t n,
                              const char *pat) {
    vkllm_model *m = NULL;
    const vkllm_status st = load(rt, ngl, split, n, &m);
    const char *msg = vkllm_runtime_last_error(rt);
    if (st != VKLLM_ERR_INVALID_ARG || m || !strstr(msg, pat))
        fail_msg("split of %u: status %d '%s' (want '%s')", n, st, msg, pat);
}

static void test_bad_input(void **state) {
    (void)state;
    expect_runtime_error("vulkan:0,vulkan:9", VKLLM_ERR_NO_DEVICE, "vulkan:9");
    expect_runtime_error("vulkan:0,,cpu", VKLLM_ERR_INVALID_ARG, "empty entry");
    expect_runtime_error("vulkan:0,", VKLLM_ERR_INVALID_ARG, "empty entry");
    expect_runtime_error("auto,cpu", VKLLM_ERR_INVALID_ARG, "auto");
    expect_runtime_error("cpu,cpu", VKLLM_ERR_INVALID_ARG, "cpu listed twice");
    expect_runtime_error("vulkan:0,gpu", VKLLM_ERR_INVALID_ARG, "unknown device 'gpu'");

    vkllm_runtime *rt = runtime("vulkan:0,vulkan:0", 0);
    const float three[3] = {1, 1, 1}, zero[2] = {0, 0}, neg[2] = {1, -1};
    const float nan2[2] = {1, strtof("nan", NULL)};
    expect_load_error(rt, -1, three, 3, "3 shares for 2 devices");
    expect_load_error(rt, -1, three, 1, "1 shares for 2 devices");
    expect_load_error(rt, -1, zero, 2, "sum to zero");
    expect_load_error(rt, -1, neg, 2, "share 1 is -1");
    expect_load_error(rt, -1, nan2, 2, "share 1 is nan");
    vkllm_runtime_destroy(rt);

    /* gpu_layers past the layer count: all of them (and the head) on the GPU */
    rt = runtime("vulkan", 0);
    vkllm_model *m = NULL;
    assert_int_equal(load(rt, 1000, NULL, 0, &m), VKLLM_OK);
    vkllm_placement p[MAX_STAGES];
    assert_int_equal(placement(m, p), 1);
    assert_string_equal(p[0].device, "vulkan:0");
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* vkllm_model_placement strides by the caller's struct_size, as vkllm_list_devices does: a
 * newer header's longer struct keeps its extra bytes, an older one's gets only its own. */
typedef struct newer_placement {
    vkllm_placement p;
    unsigned char extra[24];
} newer_placement;

static void test_placement_abi(void **state) {
    (void)state;
    vkllm_runtime *rt = runtime("vulkan:0,vulkan:0", 0);
    vkllm_model *m = NULL;
    assert_int_equal(load(rt, -1, NULL, 0, &m), VKLLM_OK);
    newer_placement big[3];
    memset(big, 0x5a, sizeof big);
    big[0].p.struct_size = sizeof big[0];
    size_t n = 0;
    assert_int_equal(vkllm_model_placement(m, &big[0].p, 3, &n), VKLLM_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < sizeof big[i].extra; k++)
            if (big[i].extra[k] != 0x5a) fail_msg("stage %zu: extra byte %zu written", i, k);
    assert_string_equal(big[1].p.device, "vulkan:0");
    assert_int_equal(big[0].p.layer0 + big[0].p.n_layers, big[1].p.layer0);
    assert_true(big[2].p.struct_size == 0x5a5a5a5a); /* past n: untouched */
    const size_t old = offsetof(vkllm_placement, layer0);
    unsigned char small[2 * sizeof(vkllm_placement)];
    memset(small, 0x5a, sizeof small);
    const uint32_t sz = (uint32_t)old;
    memcpy(small, &sz, sizeof sz);
    assert_int_equal(vkllm_model_placement(m, (vkllm_placement *)(void *)small, 2, &n), VKLLM_OK);
    for (size_t k = 2 * old; k < sizeof small; k++)
        if (small[k] != 0x5a) fail_msg("byte %zu past the old structs was written", k);
    vkllm_placement bad = {.struct_size = 2};
    assert_int_equal(vkllm_model_placement(m, &bad, 1, &n), VKLLM_ERR_INVALID_ARG);
    assert_int_equal(vkllm_model_placement(m, NULL, 0, &n), VKLLM_OK);
    assert_int_equal(n, 2);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),    cmocka_unit_test(test_placement_abi),
        cmocka_unit_test(test_gpu_layers),   cmocka_unit_test(test_device_lists),
        cmocka_unit_test(test_memory_cap),   cmocka_unit_test(test_batched),
        cmocka_unit_test(test_prefix_cache),
    };
    return api_test_run_group("split", tests, sizeof tests / sizeof tests[0], setup, NULL);
}
