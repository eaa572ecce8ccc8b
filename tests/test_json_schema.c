/* src/sched/json_schema.c, json_fsm.c, json_mask.c: schemas compile (or fail naming the
 * keyword), the automaton accepts and rejects byte strings per construct, and random
 * sampling under the token mask of the default model's vocabulary always gives a whole,
 * valid document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api_internal.h"
#include "sched/json_schema.h"
#include "sched/sampler.h"

static jsc_schema *compile_ok(const char *schema) {
    jsc_schema *sc = NULL;
    core_err err = {{0}};
    vkllm_status st = jsc_compile(NULL, schema, strlen(schema), &sc, &err);
    if (st != VKLLM_OK) fail_msg("%s: %s", schema, err.msg);
    return sc;
}

/* 1: the whole text is a document; 0: rejected at some byte; 2: a prefix only */
static int run_text(const jsc_schema *sc, const char *text) {
    jsc_state st;
    jsc_init(sc, &st);
    if (!jsc_feed_bytes(sc, &st, text, strlen(text))) return 0;
    return jsc_can_end(sc, &st) ? 1 : 2;
}

static void expect(const char *schema, const char *const *good, const char *const *bad,
                   const char *const *partial) {
    jsc_schema *sc = compile_ok(schema);
    for (; good && *good; good++)
        if (run_text(sc, *good) != 1) fail_msg("%s: should accept %s", schema, *good);
    for (; bad && *bad; bad++)
        if (run_text(sc, *bad) != 0) fail_msg("%s: should reject %s", schema, *bad);
    for (; partial && *partial; partial++)
        if (run_text(sc, *partial) != 2) fail_msg("%s: should be a prefix: %s", schema, *partial);
    jsc_free(sc);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_object(void **state) {
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                    "\"ab\":{\"type\":\"string\"},\"c\":{\"type\":\"boolean\"}},"
                    "\"required\":[\"ab\"],\"additionalProperties\":false}";
    expect(s,
           L("{\"ab\":\"x\"}", "{\"a\":1,\"ab\":\"\"}", "{\"ab\":\"x\",\"c\":true}",
             "{ \"a\" : -0 ,\n  \"ab\": \"y\" }"),
           L("{}", "{\"c\":true}", "{\"ab\":\"x\",\"a\":1}", "{\"b\":1}", "{\"ab\":1}",
             "{\"ab\":\"x\",}", "{\"ab\":\"x\"} ", " {\"ab\":\"x\"}",
             "{\"ab\":\"x\",\"ab\":\"y\"}"),
           L("{", "{\"a", "{\"ab\":\"x\""));
    /* whitespace is bounded */
    char buf[128];
    snprintf(buf, sizeof buf, "{%*s\"ab\":\"x\"}", JSC_MAX_WS, "");
    expect(s, L(buf), NULL, NULL);
    snprintf(buf, sizeof buf, "{%*s\"ab\":\"x\"}", JSC_MAX_WS + 1, "");
    expect(s, NULL, L(buf), NULL);
    /* an object without properties: any object; additionalProperties false: {} only */
    expect("{\"type\":\"object\"}", L("{}", "{\"k\":[1,{\"z\":null}],\"\":\"v\"}"),
           L("[]", "{\"k\"}", "{k:1}", "{\"k\":1,}"), NULL);
    expect("{\"type\":\"object\",\"additionalProperties\":false}", L("{}"), L("{\"a\":1}"), NULL);
    expect("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}",
           L("{\"a\":1,\"b\":2}"), L("{\"a\":\"x\"}"), NULL);
}

static void test_array_nested(void **state) {
    expect("{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}},"
           "\"minItems\":1,\"maxItems\":2}",
           L("[[]]", "[[1.5e3,-2],[0]]", "[ [ 1 ] , [] ]"), L("[]", "[[],[],[]]", "[[\"x\"]]"),
           L("[[1"));
    expect("{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"object\",\"properties\":{"
           "\"q\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\",\"y\"]}}},\"required\":[\"q\"]}},"
           "\"required\":[\"p\"]}",
           L("{\"p\":{\"q\":[\"x\",\"y\",\"x\"]}}"), L("{\"p\":{\"q\":[\"z\"]}}", "{\"p\":{}}"),
           NULL);
}

static void test_string(void **state) {
    const char *s = "{\"type\":\"string\"}";
    expect(s,
           L("\"\"", "\"a b\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\uD83D\\uDE00\"",
             "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""),
           L("\"\x01\"", "\"\\x\"", "\"\\uDC00\"", "\"\\uD83Dx\"", "\"\\uD83D\\u0041\"",
             "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"", "\"a\" ",
             "x"),
           L("\"", "\"\\u00", "\"\xe2\x82", "\"\\uD83D"));
    /* lone low surrogate: rejected at its second digit, so no dead end is reachable */
    jsc_schema *sc = compile_ok(s);
    jsc_state st;
    jsc_init(sc, &st);
    assert_true(jsc_feed_bytes(sc, &st, "\"\\uD", 4));
    assert_false(jsc_feed(sc, &st, 'C'));
    jsc_free(sc);
    expect("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
           L("\"ab\"", "\"\xc3\xa9\\n\"", "\"abc\"", "\"\\uD83D\\uDE00x\""), L("\"a\"", "\"abcd\""),
           NULL);
}

static void test_numbers(void **state) {
    expect("{\"type\":\"number\"}", L("0", "-0", "12", "-1.5", "1e5", "2E-3", "0.25e+12"),
           L("01", ".5", "+1", "1.e3", "--1", "0x1", "1234567890123456"), L("-", "1.", "1e+"));
    expect("{\"type\":\"integer\"}", L("0", "-7", "123456789012345"), L("1.5", "1e3", "00"), NULL);
    expect("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", L("[1,22,-3]", "[0 , 1]"),
           L("[1 2]", "[1.0]"), NULL);
}

static void test_enum_const_types(void **state) {
    expect("{\"enum\":[\"red\",\"green\",1,12,null,{\"a\":[true]}]}",
           L("\"red\"", "\"green\"", "1", "12", "null", "{\"a\":[true]}"),
           L("\"blue\"", "2", "123", "{\"a\": [true]}", "\"re\""), L("\"gr", "{\"a\":["));
    expect("{\"const\":\"a\\\"b\\u00e9\"}", L("\"a\\\"b\xc3\xa9\""), L("\"a\\u0022b\xc3\xa9\""),
           NULL);
    expect("{\"type\":\"boolean\"}", L("true", "false"), L("null", "1", "truth"), NULL);
    expect("{\"type\":\"null\"}", L("null"), L("nulll", "0"), NULL);
    expect("{\"type\":[\"string\",\"null\"]}", L("\"x\"", "null"), L("1"), NULL);
    expect("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"array\",\"items\":{\"type\":"
           "\"string\"}}]}",
           L("5", "[\"a\"]"), L("\"a\"", "[1]"), NULL);
    expect("{\"type\":\"integer\",\"enum\":[1,\"x\",2.5,3]}", L("1", "3"), L("\"x\"", "2.5"), NULL);
    /* any value */
    expect("{}", L("1", "\"s\"", "[1,[2,{\"k\":null}]]", "true"), L("[1,]", "{\"a\":}"), NULL);
    /* a huge enum */
    size_t cap = 1 << 20, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{\"enum\":[");
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"v%d\"", i ? "," : "", i * 7);
    snprintf(big + n, cap - n, "]}");
    expect(big, L("\"v0\"", "\"v139993\"", "\"v7\""), L("\"v1\"", "\"v\""), L("\"v13"));
    free(big);
}

static void bad_schema(const char *schema, const char *msg) {
    jsc_schema *sc = NULL;
    core_err err = {{0}};
    assert_int_equal(jsc_compile(NULL, schema, strlen(schema), &sc, &err), VKLLM_ERR_INVALID_ARG);
    assert_null(sc);
    if (!strstr(err.msg, msg)) fail_msg("%s: '%s' does not say '%s'", schema, err.msg, msg);
}

static void test_errors(void **state) {
    bad_schema("{\"$ref\":\"#/$defs/a\"}", "unsupported keyword '$ref' at /");
    bad_schema(
        "{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\",\"minimum\":0}}}",
        "unsupported keyword 'minimum' at /properties/age");
    bad_schema("{\"type\":\"string\",\"pattern\":\"a+\"}", "unsupported keyword 'pattern'");
    bad_schema("{\"oneOf\":[]}", "unsupported keyword 'oneOf'");
    bad_schema("{\"type\":\"strung\"}", "type: unknown type");
    bad_schema("{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"]}", "not in properties");
    bad_schema("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minItems > maxItems");
    bad_schema("{\"type\":\"array\",\"items\":[{}]}", "prefixItems");
    bad_schema("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "same byte");
    bad_schema("{\"enum\":[1],\"type\":\"string\"}", "no value fits");
    bad_schema("false", "accepts nothing");
    bad_schema("{\"type\":", "unexpected end");
    bad_schema("{\"a\":1} x", "text after");
    bad_schema("{\"title\":\"t\",\"title\":\"u\"}", "duplicate key");
    bad_schema("\"\\uDC00\"", "surrogate");
    /* nesting: 40 levels is refused, by the reader or the compiler, with a clear message */
    char deep[1024] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"type\":\"array\",\"items\":");
    strcat(deep, "{}");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    bad_schema(deep, "nested deeper than 30");
    char deeper[2048] = "";
    for (int i = 0; i < 100; i++)
        strcat(deeper, "[");
    bad_schema(deeper, "nested too deep");
}

/* ---- the token mask on the default model's vocabulary ---- */

static vkllm_runtime *g_rt;
static vkllm_model *g_m;
static jsc_vocab *g_v;

static int setup_vocab(void **state) {
    const char *path = getenv("VKLLM_MODEL");
    if (!path) fail_msg("VKLLM_MODEL is not set (scripts/fetch_model.sh fetches the model)");
    if (vkllm_runtime_create(&(vkllm_runtime_desc){.device = "cpu"}, &g_rt) != VKLLM_OK) return -1;
    if (vkllm_model_load(g_rt, &(vkllm_model_desc){.path = path, .vocab_only = true}, &g_m) !=
        VKLLM_OK)
        return -1;
    return jsc_vocab_build(NULL, g_m->vocab, &g_v) == VKLLM_OK ? 0 : -1;
}

static int teardown_vocab(void **state) {
    jsc_vocab_free(g_v);
    vkllm_model_free(g_m);
    vkllm_runtime_destroy(g_rt);
    return 0;
}

/* Random logits, random sampling under the mask: every document ends whole and the
 * automaton accepts all of it again from the start (the text is a document). */
static void sample_docs(const char *schema, int seeds, double *step_ms) {
    const uint32_t nv = tok_n_vocab(g_m->vocab);
    float *logits = malloc(nv * sizeof *logits);
    char *text = malloc(1 << 16);
    double t_mask = 0;
    long n_mask = 0;
    for (int seed = 0; seed < seeds; seed++) {
        jsc_schema *sc = compile_ok(schema);
        jsc_run *run = NULL;
        assert_int_equal(jsc_run_create(NULL, g_v, sc, &run), VKLLM_OK);
        vkllm_sampling p = {.temperature = 1.0f, .top_k = 40, .seed = (uint64_t)seed + 1};
        sched_sampler *smp = NULL;
        assert_int_equal(sched_sampler_create(NULL, nv, &p, &smp), VKLLM_OK);
        sched_sampler_set_json(smp, run);
        uint64_t r = (uint64_t)seed * 7919 + 1;
        size_t len = 0;
        bool ended = false;
        for (int step = 0; step < 150 && !ended; step++) {
            for (uint32_t i = 0; i < nv; i++) { /* flat-ish logits: many tokens compete */
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                logits[i] = (float)((r >> 40) % 1000) / 250.0f;
            }
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            uint8_t *allow = jsc_run_allow_buf(run);
            jsc_run_mask(run, allow);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            const int32_t tok = sched_sampler_sample(smp, logits);
            t_mask +=
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
            n_mask++;
            assert_true(tok >= 0);
            if (tok_is_eog(g_m->vocab, tok)) break;
            char piece[512];
            const size_t pl = tok_piece(g_m->vocab, tok, false, piece, sizeof piece);
            assert_true(pl > 0 && len + pl < (1 << 16));
            memcpy(text + len, piece, pl);
            len += pl;
            jsc_run_accept(run, tok);
            ended = jsc_run_done(run);
        }
        text[len] = '\0';
        /* a document is closed, or (the step limit) its text is still a valid prefix */
        jsc_schema *check = compile_ok(schema);
        const int got = run_text(check, text);
        if (got == 0) fail_msg("seed %d: rejected text %s", seed, text);
        if (seed == 0) print_message("%s -> %.200s\n", schema, text);
        jsc_free(check);
        sched_sampler_free(smp);
        jsc_run_free(run);
    }
    if (step_ms) *step_ms = t_mask / (double)n_mask;
    free(logits);
    free(text);
}

static void test_sampled_documents(void **state) {
    double ms = 0;
    sample_docs("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":"
                "12},\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{"
                "\"enum\":[\"a\",\"bc\",\"d\"]},\"maxItems\":4},\"ok\":{\"type\":\"boolean\"}},"
                "\"required\":[\"name\",\"age\",\"tags\",\"ok\"]}",
                12, &ms);
    print_message("token mask (vocab %u): %.3f ms a step\n", tok_n_vocab(g_m->vocab), ms);
    sample_docs("{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"maxItems\":6}", 8, NULL);
    sample_docs(VKLLM_JSON_ANY_OBJECT, 8, &ms);
    print_message("token mask, any object: %.3f ms a step\n", ms);
}

/* A whole closed document under the mask: forced by greedy over logits favouring one byte. */
static void test_mask_agrees(void **state) {
    jsc_schema *sc = compile_ok("{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"}}"
                                ",\"required\":[\"k\"]}");
    jsc_run *run = NULL;
    assert_int_equal(jsc_run_create(NULL, g_v, sc, &run), VKLLM_OK);
    const uint32_t nv = tok_n_vocab(g_m->vocab);
    uint8_t *allow = malloc(nv);
    const uint32_t n = jsc_run_mask(run, allow);
    assert_true(n > 0);
    /* every allowed token and no other one passes jsc_run_allows: the two agree */
    for (uint32_t i = 0; i < nv; i++)
        if (allow[i] != jsc_run_allows(run, (int32_t)i)) fail_msg("token %u disagrees", i);
    /* at the start only pieces that open the object are allowed */
    for (uint32_t i = 0; i < nv; i++)
        if (allow[i]) {
            char piece[512];
            const size_t pl = tok_piece(g_m->vocab, (int32_t)i, false, piece, sizeof piece);
            assert_true(pl > 0 && piece[0] == '{');
        }
    free(allow);
    jsc_run_free(run);
}

/* A top-level integer with the EOG ids banned (ignore_eog): once no digit may follow, nothing
 * may be sampled and the sampler says so (-1) instead of returning a banned token. */
static void test_banned_end(void **state) {
    const uint32_t nv = tok_n_vocab(g_m->vocab);
    float *logits = malloc(nv * sizeof *logits);
    uint32_t n_eog = 0;
    const int32_t *eog = tok_eog_ids(g_m->vocab, &n_eog);
    for (int seed = 0; seed < 6; seed++) {
        jsc_run *run = NULL;
        assert_int_equal(jsc_run_create(NULL, g_v, compile_ok("{\"type\":\"integer\"}"), &run),
                         VKLLM_OK);
        vkllm_sampling p = {.temperature = seed ? 1.0f : 0.0f, .seed = (uint64_t)seed};
        sched_sampler *smp = NULL;
        assert_int_equal(sched_sampler_create(NULL, nv, &p, &smp), VKLLM_OK);
        sched_sampler_set_json(smp, run);
        sched_sampler_set_banned(smp, eog, n_eog, false);
        uint64_t r = (uint64_t)seed + 99;
        char text[64];
        size_t len = 0;
        int32_t tok = 0;
        for (int step = 0; step < 40 && tok >= 0; step++) {
            for (uint32_t i = 0; i < nv; i++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                logits[i] = (float)((r >> 40) % 1000) / 100.0f;
            }
            tok = sched_sampler_sample(smp, logits);
            if (tok < 0) break;
            assert_false(tok_is_eog(g_m->vocab, tok));
            char piece[512];
            const size_t pl = tok_piece(g_m->vocab, tok, false, piece, sizeof piece);
            assert_true(len + pl < sizeof text);
            memcpy(text + len, piece, pl);
            len += pl;
            jsc_run_accept(run, tok);
        }
        text[len] = '\0';
        assert_int_equal(tok, -1);
        assert_true(len >= 1 && len <= 16);
        jsc_schema *check = compile_ok("{\"type\":\"integer\"}");
        assert_int_equal(run_text(check, text), 1);
        jsc_free(check);
        sched_sampler_free(smp);
        jsc_run_free(run);
    }
    free(logits);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_array_nested),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_enum_const_types),
        cmocka_unit_test(test_errors),
        cmocka_unit_test_setup_teardown(test_sampled_documents, setup_vocab, teardown_vocab),
        cmocka_unit_test_setup_teardown(test_mask_agrees, setup_vocab, teardown_vocab),
        cmocka_unit_test_setup_teardown(test_banned_end, setup_vocab, teardown_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
