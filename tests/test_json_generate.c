/* Structured output on the default model (vkllm_request_desc.json_schema and
 * vkllm_generate_desc.json_schema): greedy and sampled answers, batched with each other and
 * with an unconstrained request, are whole documents the schema accepts; the engine's greedy
 * answer equals vkllm_generate's; ignore_eog still ends at the closed document; max_tokens
 * cuts a document short; bad schemas fail with the keyword named. CPU backend, and Vulkan
 * (lavapipe, VKLLM_TEST_DEVICE=vulkan) on fewer requests. */
#include "api_test_util.h"

#include "sched/json_schema.h"

static vkllm_runtime *g_rt;
static vkllm_model *g_m;
static const char *g_device = "cpu";
static bool g_small;

static const char *k_schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"maxLength\":24},"
    "\"age\":{\"type\":\"integer\"},"
    "\"color\":{\"enum\":[\"red\",\"green\",\"blue\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},"
    "\"maxItems\":3},"
    "\"pet\":{\"type\":[\"boolean\",\"null\"]}},"
    "\"required\":[\"name\",\"age\",\"color\",\"tags\",\"pet\"]}";

/* lavapipe and the sanitizers: a shorter document */
static const char *k_small =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},"
    "\"age\":{\"type\":\"integer\"}},\"required\":[\"name\",\"age\"]}";

static int setup(void **state) {
    (void)state;
    g_m = api_test_open(&g_rt, g_device, -1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    vkllm_model_free(g_m);
    vkllm_runtime_destroy(g_rt);
    return 0;
}

static void chat_prompt(const char *user, char *out, size_t cap) {
    const vkllm_chat_message msg = {"user", user};
    size_t len = 0;
    assert_int_equal(vkllm_chat_apply(g_m, &msg, 1, true, out, cap, &len), VKLLM_OK);
}

/* 1: a whole document of schema; 2: a prefix of one; 0: neither */
static int check_text(const char *schema, const char *text, size_t len) {
    jsc_schema *sc = NULL;
    core_err err;
    assert_int_equal(jsc_compile(NULL, schema, strlen(schema), &sc, &err), VKLLM_OK);
    jsc_state st;
    jsc_init(sc, &st);
    int r = jsc_feed_bytes(sc, &st, text, len) ? (jsc_can_end(sc, &st) ? 1 : 2) : 0;
    jsc_free(sc);
    return r;
}

typedef struct out {
    int32_t ids[512];
    size_t n;
    char text[4096];
    vkllm_request_result res;
} out;

static vkllm_request *submit(vkllm_engine *e, const char *prompt, const char *schema,
                             vkllm_sampling smp, int32_t max_tokens, bool ignore_eog) {
    vkllm_request_desc d = {.struct_size = sizeof d,
                            .prompt = prompt,
                            .max_tokens = max_tokens,
                            .ignore_eog = ignore_eog,
                            .sampling = smp,
                            .json_schema = schema};
    vkllm_request *r = NULL;
    if (vkllm_submit(e, &d, &r) != VKLLM_OK) fail_msg("submit: %s", vkllm_engine_last_error(e));
    return r;
}

static void collect(vkllm_request *r, out *o) {
    memset(o, 0, sizeof *o);
    assert_int_equal(vkllm_request_wait(r, &o->res), VKLLM_OK);
    size_t n = 0, len = 0;
    const int32_t *ids = vkllm_request_tokens(r, &n);
    assert_true(n <= 512);
    memcpy(o->ids, ids, n * sizeof *ids);
    o->n = n;
    const char *t = vkllm_request_text(r, &len);
    assert_true(len < sizeof o->text);
    memcpy(o->text, t, len);
    vkllm_request_free(r);
}

static void expect_document(const char *schema, const out *o, const char *what) {
    print_message("%s: %s (%zu tokens, stop %d)\n", what, o->text, o->n, (int)o->res.stop);
    if (o->res.stop != VKLLM_STOP_EOG) fail_msg("%s: did not end with the document", what);
    if (check_text(schema, o->text, strlen(o->text)) != 1) fail_msg("%s: not a document", what);
    /* an independent look: one object, no text around it */
    const size_t n = strlen(o->text);
    assert_true(n >= 2 && o->text[0] == '{' && o->text[n - 1] == '}');
    for (size_t i = 0; i < o->n; i++)
        assert_false(vkllm_token_is_eog(g_m, o->ids[i]) && i + 1 < o->n);
}

static const vkllm_sampling k_greedy = {0};
static const vkllm_sampling k_topk = {
    .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 11};
static const vkllm_sampling k_full = {.temperature = 1.2f, .seed = 7}; /* every logit */

static void test_engine(void **state) {
    (void)state;
    char prompt[4096];
    chat_prompt("Describe a person as JSON with name, age, favourite color, tags and whether "
                "they have a pet.",
                prompt, sizeof prompt);
    const int32_t max = g_small ? 64 : 160;
    const char *schema = g_small ? k_small : k_schema;
    vkllm_engine_desc ed = {.n_ctx = 512, .max_seqs = 4};
    vkllm_engine *e = NULL;
    assert_int_equal(vkllm_engine_create(g_m, &ed, &e), VKLLM_OK);
    /* the plain request alone, then batched with constrained ones: the same tokens */
    out plain_alone, plain, greedy, sampled, any_obj;
    const int32_t n_plain = g_small ? 6 : 16;
    collect(submit(e, prompt, NULL, k_greedy, n_plain, false), &plain_alone);
    vkllm_request *r[4];
    r[0] = submit(e, prompt, schema, k_greedy, max, false);
    r[1] = submit(e, prompt, NULL, k_greedy, n_plain, false);
    r[2] = submit(e, prompt, schema, g_small ? k_topk : k_full, max, false);
    r[3] = g_small ? NULL : submit(e, prompt, VKLLM_JSON_ANY_OBJECT, k_topk, max, false);
    collect(r[0], &greedy);
    collect(r[1], &plain);
    collect(r[2], &sampled);
    if (r[3]) collect(r[3], &any_obj);
    assert_int_equal(plain.n, plain_alone.n);
    assert_memory_equal(plain.ids, plain_alone.ids, plain.n * sizeof plain.ids[0]);
    expect_document(schema, &greedy, "greedy");
    expect_document(schema, &sampled, "sampled");
    if (r[3]) expect_document(VKLLM_JSON_ANY_OBJECT, &any_obj, "json_object");
    if (!g_small) { /* more seeds: every one a document */
        for (uint64_t seed = 1; seed <= 4; seed++) {
            vkllm_sampling smp = k_topk;
            smp.seed = seed;
            out o;
            collect(submit(e, prompt, k_schema, smp, max, false), &o);
            expect_document(k_schema, &o, "seeded");
        }
    }
    /* ignore_eog: the document still ends the answer, no EOG sampled */
    out ig;
    collect(submit(e, prompt, schema, k_greedy, max, true), &ig);
    expect_document(schema, &ig, "ignore_eog");
    assert_int_equal(ig.n, greedy.n);
    assert_memory_equal(ig.ids, greedy.ids, ig.n * sizeof ig.ids[0]);
    /* max_tokens cuts it short: a prefix */
    out cut;
    collect(submit(e, prompt, schema, k_greedy, 5, false), &cut);
    assert_int_equal(cut.res.stop, VKLLM_STOP_MAX_TOKENS);
    assert_int_equal(check_text(schema, cut.text, strlen(cut.text)), 2);
    /* a bad schema: no request, the keyword named */
    vkllm_request_desc bad = {.struct_size = sizeof bad,
                              .prompt = prompt,
                              .json_schema = "{\"type\":\"object\",\"properties\":{\"a\":{"
                                             "\"$ref\":\"#/$defs/x\"}}}"};
    vkllm_request *br = NULL;
    assert_int_equal(vkllm_submit(e, &bad, &br), VKLLM_ERR_INVALID_ARG);
    assert_null(br);
    assert_non_null(
        strstr(vkllm_engine_last_error(e), "unsupported keyword '$ref' at /properties/a"));
    vkllm_engine_destroy(e);

    /* vkllm_generate: the engine's greedy answer */
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(g_m, &(vkllm_session_desc){.n_ctx = 512}, &s), VKLLM_OK);
    run_out g = {.n = 0};
    vkllm_generate_desc gd = {.struct_size = sizeof gd,
                              .prompt = prompt,
                              .max_tokens = max,
                              .json_schema = schema,
                              .on_token = api_test_on_token,
                              .user = &g};
    vkllm_generate_result gr = {0};
    assert_int_equal(vkllm_generate(s, &gd, &gr), VKLLM_OK);
    assert_int_equal(gr.stop, VKLLM_STOP_EOG);
    assert_int_equal(gr.n_generated, (uint32_t)greedy.n);
    const size_t k = greedy.n < API_TEST_N_GEN ? greedy.n : API_TEST_N_GEN;
    assert_memory_equal(g.ids, greedy.ids, k * sizeof g.ids[0]);
    vkllm_session_reset(s);
    gd.json_schema = "{\"type\":\"string\",\"pattern\":\"x\"}";
    assert_int_equal(vkllm_generate(s, &gd, &gr), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_session_last_error(s), "unsupported keyword 'pattern'"));
    vkllm_session_destroy(s);
}

int main(void) {
    const char *dev = getenv("VKLLM_TEST_DEVICE");
    if (dev) g_device = dev;
    g_small = dev && strcmp(dev, "cpu") != 0; /* lavapipe: ~50x slower */
#ifdef VKLLM_TEST_SANITIZED
    g_small = true;
#endif
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_engine)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
