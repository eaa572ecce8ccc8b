/* Helpers for tests that run the model through the public API (header-only, static inline):
 * the golden prompts file's escapes, a runtime + model on a device, and N-token generation
 * that records the ids. */
#ifndef VKLLM_API_TEST_UTIL_H
#define VKLLM_API_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vkllm.h"

/* One line of tests/data/golden/prompts.txt (or a golden file's prompt field) unescaped into
 * out (at least strlen(s) + 1 bytes): \n \t \r \\ and \xHH. Returns the length, or
 * (size_t)-1 for any other escape. */
static inline size_t api_test_unescape(const char *s, char *out) {
    size_t n = 0;
    for (; *s && *s != '\n'; s++) {
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case '\\':
            out[n++] = '\\';
            break;
        case 'x': {
            unsigned v = 0;
            if (sscanf(s + 1, "%2x", &v) != 1) return (size_t)-1;
            out[n++] = (char)v;
            s += 2;
            break;
        }
        default:
            return (size_t)-1;
        }
    }
    out[n] = '\0';
    return n;
}

#ifndef API_TEST_N_GEN
#define API_TEST_N_GEN 32
#endif
#ifndef API_TEST_THREADS
#define API_TEST_THREADS 2
#endif

typedef struct run_out {
    int32_t ids[API_TEST_N_GEN];
    int n;
} run_out;

static inline bool api_test_on_token(void *user, int32_t id, const char *piece, size_t len) {
    (void)piece, (void)len;
    run_out *o = user;
    if (o->n < API_TEST_N_GEN) o->ids[o->n++] = id;
    return true;
}

/* The default model (VKLLM_MODEL) on a runtime for `device`; tier < 0: the device's own. */
/* relaxed: vkllm_runtime_desc.vk_relaxed_products */
static inline vkllm_model *api_test_open_ex(vkllm_runtime **rt, const char *device, int tier,
                                            bool relaxed) {
    const char *path = getenv("VKLLM_MODEL");
    if (!path) fail_msg("VKLLM_MODEL is not set (scripts/fetch_model.sh)");
    vkllm_runtime_desc rd = {.device = device,
                             .n_threads = API_TEST_THREADS,
                             .vk_tier_plus1 = tier + 1,
                             .vk_relaxed_products = relaxed};
    if (vkllm_runtime_create(&rd, rt) != VKLLM_OK)
        fail_msg("runtime %s tier %d: %s", device, tier, vkllm_runtime_last_error(NULL));
    vkllm_model_desc md = {.path = path};
    vkllm_model *m = NULL;
    if (vkllm_model_load(*rt, &md, &m) != VKLLM_OK)
        fail_msg("model: %s", vkllm_runtime_last_error(*rt));
    return m;
}

static inline vkllm_model *api_test_open(vkllm_runtime **rt, const char *device, int tier) {
    return api_test_open_ex(rt, device, tier, false);
}

/* API_TEST_N_GEN tokens from a fresh session (end-of-generation tokens ignored). */
static inline void api_test_generate(vkllm_model *m, const char *prompt, const vkllm_sampling *smp,
                                     run_out *o) {
    vkllm_session_desc sd = {.n_ctx = 1024};
    vkllm_session *s = NULL;
    if (vkllm_session_create(m, &sd, &s) != VKLLM_OK)
        fail_msg("session: %s", vkllm_model_last_error(m));
    memset(o, 0, sizeof *o);
    vkllm_generate_desc gd = {.prompt = prompt,
                              .max_tokens = API_TEST_N_GEN,
                              .ignore_eog = true,
                              .sampling = *smp,
                              .on_token = api_test_on_token,
                              .user = o};
    if (vkllm_generate(s, &gd, NULL) != VKLLM_OK)
        fail_msg("generate: %s", vkllm_session_last_error(s));
    vkllm_session_destroy(s);
}

/* The Vulkan path gives the bits of the CPU backend's AVX2 kernels (docs/architecture.md), as
 * do its AVX-512 ones; on a processor without AVX2 the CPU runs scalar kernels that sum in
 * another order, so a test that compares the two paths bit for bit fails here with that
 * reason. */
static inline void api_test_require_avx2(vkllm_runtime *cpu_rt) {
    const char *name = vkllm_runtime_backend_name(cpu_rt);
    if (!strstr(name, "avx2") && !strstr(name, "avx512"))
        fail_msg("the CPU backend here is \"%s\": without AVX2 its kernels sum in another order "
                 "than the Vulkan kernels, so the two paths are not expected to be identical",
                 name);
}

/* Runs the group; with VKLLM_TEST_ONLY=name,name,... only the tests named there (scripts/test.sh's
 * ThreadSanitizer pass picks the engine tests that use threads). A name no test has fails. */
static inline int api_test_run_group(const char *group, const struct CMUnitTest *tests, size_t n,
                                     CMFixtureFunction setup, CMFixtureFunction teardown) {
    const char *only = getenv("VKLLM_TEST_ONLY");
    if (!only || !*only) return _cmocka_run_group_tests(group, tests, n, setup, teardown);
    struct CMUnitTest sel[64];
    size_t k = 0;
    for (const char *p = only; *p && k < 64;) {
        const size_t len = strcspn(p, ",");
        size_t i = 0;
        while (i < n && (strlen(tests[i].name) != len || strncmp(tests[i].name, p, len) != 0))
            i++;
        if (i == n) {
            fprintf(stderr, "VKLLM_TEST_ONLY: %s has no test '%.*s'\n", group, (int)len, p);
            return 1;
        }
        sel[k++] = tests[i];
        p += len + (p[len] == ',');
    }
    print_message("VKLLM_TEST_ONLY: %zu of the %zu tests of %s\n", k, n, group);
    return _cmocka_run_group_tests(group, sel, k, setup, teardown);
}

#endif
