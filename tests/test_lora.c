/* LoRA adapters through the public API on the CPU backend: loading and its errors, sessions,
 * and many adapters at once in one engine.
 *
 * - Damaged adapters (another architecture, not an adapter, a missing half, a wrong shape or
 *   rank, an unknown suffix, a quantized tensor, a tensor the model lacks, no file, a
 *   vocab-only model) fail to load with a message naming the problem.
 * - A session's greedy tokens change with an adapter, equal the base model's at scale 0, and
 *   a changed adapter set forgets the session's cache while an unchanged one keeps it.
 * - 16 requests over 4 adapter sets (F32 and F16, two at once with scales) and the base model
 *   in one engine: each request's tokens equal the same request alone in a session with its
 *   adapters; prefix-cache pages are shared only between requests with the same adapters.
 * - An adapter freed while a request uses it stays until the request is freed; adapters are
 *   loaded and freed on another thread while the engine runs (ThreadSanitizer pass).
 * Agreement with llama.cpp's own LoRA is tests/cli_lora.sh's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_test_util.h"
#include "lora_test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define N_TOK 12
#define N_REQ 16

static char g_dir[256];
static char g_path[8][512]; /* adapters written at setup */
enum { AD_A32, AD_B16, AD_C32, AD_STRONG, AD_N };

static const char *path_of(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/vkllm-test-lora.XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    const char *model = getenv("VKLLM_MODEL");
    if (!model) return -1;
    const lora_spec specs[AD_N] = {
        [AD_A32] = {.rank = 8, .alpha = 16, .seed = 1, .name = "a32"},
        [AD_B16] = {.rank = 16,
                    .alpha = 8,
                    .f16 = true,
                    .seed = 2,
                    .targets = "q,v,down",
                    .amp = 2,
                    .name = "b16"},
        [AD_C32] = {.rank = 4,
                    .alpha = 0,
                    .seed = 3,
                    .targets = "o,gate,up",
                    .layer_every = 2,
                    .amp = 2,
                    .name = "c32"},
        [AD_STRONG] = {.rank = 8, .alpha = 8, .seed = 4, .amp = 6, .name = "strong"},
    };
    for (int i = 0; i < AD_N; i++) {
        snprintf(g_path[i], sizeof g_path[i], "%s/ad%d.gguf", g_dir, i);
        if (lora_write(model, g_path[i], &specs[i])) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static vkllm_adapter *load(vkllm_model *m, const char *path) {
    vkllm_adapter_desc d = {.struct_size = sizeof d, .path = path};
    vkllm_adapter *a = NULL;
    if (vkllm_adapter_load(m, &d, &a) != VKLLM_OK)
        fail_msg("adapter %s: %s", path, vkllm_model_last_error(m));
    return a;
}

/* ---- loading ---- */

static void expect_load_error(vkllm_model *m, const char *path, vkllm_status want,
                              const char *needle) {
    vkllm_adapter_desc d = {.struct_size = sizeof d, .path = path};
    vkllm_adapter *a = (vkllm_adapter *)(uintptr_t)1;
    const vkllm_status st = vkllm_adapter_load(m, &d, &a);
    if (st == VKLLM_OK) fail_msg("%s loaded; expected an error with \"%s\"", path, needle);
    assert_null(a);
    const char *msg = vkllm_model_last_error(m);
    if (want != VKLLM_OK && st != want)
        fail_msg("%s: status %d (%s), expected %d", path, st, msg, want);
    if (!strstr(msg, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", path, msg, needle);
}

static void test_load_errors(void **state) {
    (void)state;
    vkllm_runtime *rt = NULL;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    const char *model = getenv("VKLLM_MODEL");
    const struct {
        lora_fault f;
        vkllm_status st;
        const char *needle;
    } cases[] = {
        {LORA_WRONG_ARCH, VKLLM_ERR_INVALID_ARG, "arch mismatch"},
        {LORA_NOT_ADAPTER, VKLLM_ERR_BAD_FILE, "general.type"},
        {LORA_MISSING_B, VKLLM_ERR_BAD_FILE, "missing one component"},
        {LORA_WRONG_SHAPE, VKLLM_ERR_INVALID_ARG, "incorrect shape"},
        {LORA_BAD_SUFFIX, VKLLM_ERR_BAD_FILE, "unexpected suffix"},
        {LORA_QUANTIZED, VKLLM_ERR_UNSUPPORTED, "f32 or f16"},
        {LORA_NO_TARGET, VKLLM_ERR_INVALID_ARG, "does not exist in base model"},
        {LORA_RANK_MISMATCH, VKLLM_ERR_INVALID_ARG, "not transposed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const lora_spec sp = {.rank = 4, .alpha = 4, .seed = 9, .fault = cases[i].f};
        const char *p = path_of("bad.gguf");
        assert_int_equal(lora_write(model, p, &sp), 0);
        expect_load_error(m, p, cases[i].st, cases[i].needle);
    }
    expect_load_error(m, path_of("none.gguf"), VKLLM_OK, "none.gguf");
    expect_load_error(m, model, VKLLM_ERR_BAD_FILE, "general.type"); /* a model, not an adapter */
    /* a file cut short */
    {
        FILE *in = fopen(g_path[AD_A32], "rb");
        FILE *out = fopen(path_of("cut.gguf"), "wb");
        char buf[4096];
        for (size_t n, left = 100000; left && (n = fread(buf, 1, sizeof buf, in)) > 0;
             left -= n < left ? n : left)
            fwrite(buf, 1, n < left ? n : left, out);
        fclose(in);
        fclose(out);
        expect_load_error(m, path_of("cut.gguf"), VKLLM_ERR_BAD_FILE, "cut.gguf");
    }
    /* more than VKLLM_MAX_LORA at once, a NULL adapter, a non-finite scale */
    vkllm_adapter *a = load(m, g_path[AD_A32]);
    vkllm_session_desc sd = {.n_ctx = 256};
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    vkllm_lora many[VKLLM_MAX_LORA + 1];
    for (int i = 0; i <= VKLLM_MAX_LORA; i++)
        many[i] = (vkllm_lora){a, 1.0f};
    assert_int_equal(vkllm_session_set_lora(s, many, VKLLM_MAX_LORA + 1), VKLLM_ERR_INVALID_ARG);
    vkllm_lora bad[2] = {{a, 1.0f}, {NULL, 1.0f}};
    assert_int_equal(vkllm_session_set_lora(s, bad, 2), VKLLM_ERR_INVALID_ARG);
    bad[1] = (vkllm_lora){a, NAN};
    assert_int_equal(vkllm_session_set_lora(s, bad, 2), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_session_last_error(s), "scale"));
    vkllm_session_destroy(s);
    assert_string_equal(vkllm_adapter_name(a), "a32");
    assert_int_equal(vkllm_adapter_rank(a), 8);
    assert_int_equal(vkllm_adapter_n_tensors(a), 7 * 30);
    vkllm_adapter_free(a);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    /* a vocab-only model has no weights */
    vkllm_runtime_desc rd = {.device = "cpu"};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    vkllm_model_desc md = {.path = model, .vocab_only = true};
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_OK);
    expect_load_error(m, g_path[AD_A32], VKLLM_ERR_INVALID_ARG, "vocab-only");
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* ---- sessions ---- */

static int gen(vkllm_session *s, const char *prompt, int32_t *ids) {
    run_out o = {0};
    vkllm_generate_desc gd = {.prompt = prompt,
                              .max_tokens = N_TOK,
                              .ignore_eog = true,
                              .on_token = api_test_on_token,
                              .user = &o};
    if (vkllm_generate(s, &gd, NULL) != VKLLM_OK)
        fail_msg("generate: %s", vkllm_session_last_error(s));
    memcpy(ids, o.ids, (size_t)o.n * sizeof *ids);
    return o.n;
}

/* Greedy tokens of prompt alone in a fresh session with the given adapters. */
static int alone(vkllm_model *m, const char *prompt, const vkllm_lora *l, size_t n, int32_t *ids) {
    vkllm_session_desc sd = {.n_ctx = 512};
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    if (vkllm_session_set_lora(s, l, n) != VKLLM_OK)
        fail_msg("set_lora: %s", vkllm_session_last_error(s));
    const int k = gen(s, prompt, ids);
    vkllm_session_destroy(s);
    return k;
}

static void test_session(void **state) {
    (void)state;
    vkllm_runtime *rt = NULL;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    vkllm_adapter *st = load(m, g_path[AD_STRONG]);
    const char *p = "The capital of France is";
    int32_t base[N_TOK], with[N_TOK], zero[N_TOK];
    const int nb = alone(m, p, NULL, 0, base);
    const vkllm_lora l1 = {st, 1.0f}, l0 = {st, 0.0f};
    const int nw = alone(m, p, &l1, 1, with);
    const int nz = alone(m, p, &l0, 1, zero);
    assert_int_equal(nb, N_TOK);
    assert_int_equal(nw, N_TOK);
    assert_int_equal(nz, N_TOK);
    if (memcmp(base, with, sizeof base) == 0) fail_msg("the adapter changed no token");
    if (memcmp(base, zero, sizeof base) != 0) fail_msg("scale 0 is not the base model");
    /* an unchanged set keeps the cache, a changed one forgets it */
    vkllm_session_desc sd = {.n_ctx = 256};
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    assert_int_equal(vkllm_session_set_lora(s, &l1, 1), VKLLM_OK);
    const int32_t toks[3] = {1, 2, 3};
    assert_int_equal(vkllm_session_eval(s, toks, 3), VKLLM_OK);
    assert_int_equal(vkllm_session_set_lora(s, &l1, 1), VKLLM_OK);
    assert_int_equal(vkllm_session_n_past(s), 3);
    assert_int_equal(vkllm_session_set_lora(s, &l0, 1), VKLLM_OK);
    assert_int_equal(vkllm_session_n_past(s), 0);
    /* the session keeps the adapter after the user lets it go */
    vkllm_adapter_free(st);
    int32_t again[N_TOK];
    assert_int_equal(vkllm_session_set_lora(s, NULL, 0), VKLLM_OK);
    assert_int_equal(gen(s, p, again), N_TOK);
    assert_memory_equal(again, base, sizeof base);
    vkllm_session_destroy(s);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* ---- many adapters in one engine ---- */

typedef struct mix {
    vkllm_lora l[2];
    size_t n;
} mix;

static void test_engine_mix(void **state) {
    (void)state;
    vkllm_runtime *rt = NULL;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    vkllm_adapter *ad[3];
    for (int i = 0; i < 3; i++)
        ad[i] = load(m, g_path[i]);
    /* the base model, three adapters, and two at once with scales */
    const mix mixes[5] = {{.n = 0},
                          {{{ad[AD_A32], 1.0f}}, 1},
                          {{{ad[AD_B16], 1.0f}}, 1},
                          {{{ad[AD_C32], 0.5f}}, 1},
                          {{{ad[AD_A32], 0.7f}, {ad[AD_B16], 1.5f}}, 2}};
    static const char *topics[] = {"The history of",   "A recipe for",      "Why the sky is",
                                   "In 1969 the crew", "def fibonacci(n):", "Dear diary, today"};
    char prompts[N_REQ][160];
    vkllm_engine_desc ed = {.max_seqs = N_REQ, .n_ctx = 512};
    vkllm_engine *e = NULL;
    assert_int_equal(vkllm_engine_create(m, &ed, &e), VKLLM_OK);
    vkllm_request *r[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        /* prompts of 1 to ~40 tokens: prefill rows (tinyBLAS order) and decode rows (ggml's) */
        snprintf(prompts[i], sizeof prompts[i], "%s %.*s", topics[i % 6], 1 + (i * 13) % 120,
                 "the quiet river town, where every winter the bakers light the old ovens and "
                 "the children race sleds down the long hill past the mill");
        const mix *x = &mixes[i % 5];
        vkllm_request_desc rd = {.struct_size = sizeof rd,
                                 .prompt = prompts[i],
                                 .max_tokens = N_TOK,
                                 .ignore_eog = true,
                                 .lora = x->n ? x->l : NULL,
                                 .n_lora = x->n};
        if (vkllm_submit(e, &rd, &r[i]) != VKLLM_OK)
            fail_msg("submit: %s", vkllm_engine_last_error(e));
    }
    int32_t got[N_REQ][N_TOK], want[N_TOK];
    size_t n_got[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        vkllm_request_result res = {.struct_size = sizeof res};
        assert_int_equal(vkllm_request_wait(r[i], &res), VKLLM_OK);
        const int32_t *ids = vkllm_request_tokens(r[i], &n_got[i]);
        assert_int_equal(n_got[i], N_TOK);
        memcpy(got[i], ids, sizeof got[i]);
        vkllm_request_free(r[i]);
    }
    for (int i = 0; i < N_REQ; i++) {
        const mix *x = &mixes[i % 5];
        assert_int_equal(alone(m, prompts[i], x->l, x->n, want), N_TOK);
        if (memcmp(got[i], want, sizeof want) != 0)
            fail_msg("request %d (adapter set %d): batched tokens differ from alone", i, i % 5);
    }
    /* the adapter sets do give different answers: not all equal to the base */
    int differ = 0;
    for (int i = 0; i < N_REQ; i++) {
        int32_t b[N_TOK];
        if (i % 5 == 0) continue;
        alone(m, prompts[i], NULL, 0, b);
        differ += memcmp(b, got[i], sizeof b) != 0;
    }
    if (differ < 4) fail_msg("only %d of the adapted requests differ from the base model", differ);
    vkllm_engine_destroy(e);
    for (int i = 0; i < 3; i++)
        vkllm_adapter_free(ad[i]);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* A long prompt twice per adapter set: the second run reuses the first one's pages, never
 * another set's (whose KV entries differ). */
static void test_prefix_cache(void **state) {
    (void)state;
    vkllm_runtime *rt = NULL;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    vkllm_adapter *a = load(m, g_path[AD_A32]);
    vkllm_engine_desc ed = {.max_seqs = 2, .n_ctx = 512};
    vkllm_engine *e = NULL;
    assert_int_equal(vkllm_engine_create(m, &ed, &e), VKLLM_OK);
    const char *p = "Once upon a time, in a kingdom by the sea, there lived a lighthouse keeper "
                    "who kept a logbook of every ship that passed, and one night";
    const vkllm_lora sets[3][1] = {{{a, 1.0f}}, {{a, 1.0f}}, {{a, 0.5f}}};
    const size_t ns[4] = {0, 1, 1, 1};
    uint32_t cached[4];
    int32_t ids[4][N_TOK];
    for (int k = 0; k < 4; k++) {
        vkllm_request_desc rd = {.struct_size = sizeof rd,
                                 .prompt = p,
                                 .max_tokens = N_TOK,
                                 .ignore_eog = true,
                                 .lora = k ? sets[k - 1] : NULL,
                                 .n_lora = ns[k]};
        vkllm_request *r = NULL;
        assert_int_equal(vkllm_submit(e, &rd, &r), VKLLM_OK);
        vkllm_request_result res = {.struct_size = sizeof res};
        assert_int_equal(vkllm_request_wait(r, &res), VKLLM_OK);
        cached[k] = res.n_cached;
        size_t n;
        memcpy(ids[k], vkllm_request_tokens(r, &n), sizeof ids[k]);
        vkllm_request_free(r);
    }
    /* base first (nothing cached); the adapter after the base: nothing from the base's pages;
     * the same adapter again: its own pages; another scale: none */
    assert_int_equal(cached[0], 0);
    assert_int_equal(cached[1], 0);
    if (cached[2] < 16) fail_msg("the same adapter reused %u tokens", cached[2]);
    assert_int_equal(cached[3], 0);
    assert_memory_equal(ids[1], ids[2], sizeof ids[1]);
    vkllm_engine_destroy(e);
    vkllm_adapter_free(a);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* ---- lifetimes and threads ---- */

typedef struct churn {
    vkllm_model *m;
    atomic_int stop;
    int loads;
} churn;

static void *churn_main(void *arg) {
    churn *c = arg;
    while (!atomic_load(&c->stop)) {
        vkllm_adapter *a = load(c->m, g_path[AD_C32]);
        vkllm_adapter_free(a);
        c->loads++;
    }
    return NULL;
}

/* A request's adapter freed by the user mid-request stays until the request is freed; other
 * adapters come and go on another thread meanwhile. */
static void test_free_while_used(void **state) {
    (void)state;
    vkllm_runtime *rt = NULL;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    vkllm_adapter *a = load(m, g_path[AD_STRONG]);
    const vkllm_lora l = {a, 1.0f};
    const char *p = "Tell me about the moon.";
    int32_t want[N_TOK];
    alone(m, p, &l, 1, want);
    churn c = {.m = m};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_main, &c), 0);
    vkllm_engine_desc ed = {.max_seqs = 4, .n_ctx = 256};
    vkllm_engine *e = NULL;
    assert_int_equal(vkllm_engine_create(m, &ed, &e), VKLLM_OK);
    vkllm_request *r[4];
    for (int i = 0; i < 4; i++) {
        vkllm_request_desc rd = {.struct_size = sizeof rd,
                                 .prompt = p,
                                 .max_tokens = N_TOK,
                                 .ignore_eog = true,
                                 .lora = &l,
                                 .n_lora = 1};
        assert_int_equal(vkllm_submit(e, &rd, &r[i]), VKLLM_OK);
    }
    vkllm_adapter_free(a); /* the requests hold it */
    for (int i = 0; i < 4; i++) {
        vkllm_request_result res = {.struct_size = sizeof res};
        assert_int_equal(vkllm_request_wait(r[i], &res), VKLLM_OK);
        size_t n;
        const int32_t *ids = vkllm_request_tokens(r[i], &n);
        assert_int_equal(n, N_TOK);
        assert_memory_equal(ids, want, sizeof want);
        vkllm_request_free(r[i]);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    assert_true(c.loads > 0);
    vkllm_engine_destroy(e);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_session),
        cmocka_unit_test(test_engine_mix),      cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_free_while_used),
    };
    return api_test_run_group("lora", tests, sizeof tests / sizeof tests[0], setup, teardown);
}
