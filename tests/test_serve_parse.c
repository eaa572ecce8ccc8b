/* apps/vkllm/serve_parse.c: vkllm serve's request bodies into srv_request (every field, wrong
 * types, missing fields, bad and huge values, bodies that are not objects, messages without
 * role or content, stop as a string and a list, log-probabilities and penalties, fields
 * refused as not supported yet),
 * tokenize/detokenize bodies, OpenAI's error object, and the stream's text helpers (UTF-8
 * boundaries, stop-string hold-back, cleaning). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "apps/vkllm/serve_parse.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const srv_limits k_lim = {.max_n = 8, .max_tokens = 100000};

static bool parse(srv_kind k, const char *body, srv_request *r, srv_error *e) {
    memset(e, 0, sizeof *e);
    return srv_parse_request(k, body, strlen(body), &k_lim, r, e);
}

/* The body must fail with status 400, this param ("" = none) and a message holding msg. */
static void expect_fail(srv_kind k, const char *body, const char *param, const char *msg,
                        const char *code) {
    srv_request r;
    srv_error e;
    if (parse(k, body, &r, &e)) {
        srv_request_free(&r);
        fail_msg("accepted: %s", body);
    }
    if (e.status != 400 || strcmp(e.param, param) != 0 || !strstr(e.message, msg) ||
        (code ? !e.code || strcmp(e.code, code) != 0 : e.code != NULL))
        fail_msg("%s\n  -> %d param '%s' code %s: %s\n  (wanted param '%s', '%s', code %s)", body,
                 e.status, e.param, e.code ? e.code : "null", e.message, param, msg,
                 code ? code : "null");
    assert_null(r.messages); /* nothing left to free */
    assert_null(r.model);
}

#define CHAT_MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_chat_minimal(void **state) {
    (void)state;
    srv_request r;
    srv_error e;
    assert_true(parse(SRV_CHAT, "{" CHAT_MSG "}", &r, &e));
    assert_int_equal(r.kind, SRV_CHAT);
    assert_null(r.model);
    assert_int_equal(r.n_messages, 1);
    assert_string_equal(r.messages[0].role, "user");
    assert_string_equal(r.messages[0].content, "hi");
    assert_int_equal(r.max_tokens, 0);
    assert_int_equal(r.n, 1);
    assert_false(r.stream || r.include_usage || r.ignore_eos || r.seed_set);
    assert_int_equal(r.n_stop, 0);
    const vkllm_sampling d = srv_default_sampling();
    assert_memory_equal(&r.sampling, &d, sizeof d);
    srv_request_free(&r);
}

static void test_chat_every_field(void **state) {
    (void)state;
    const char *body =
        "{\"model\":\"m.gguf\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"developer\",\"content\":\"really\",\"name\":\"x\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":\"ok\",\"tool_calls\":[]},"
        "{\"role\":\"user\",\"content\":\"\"}],"
        "\"max_tokens\":7,\"max_completion_tokens\":9,\"temperature\":0.5,\"top_p\":0.9,"
        "\"top_k\":12,\"min_p\":0.1,\"seed\":42,\"stop\":[\"x\",\"\",\"yz\"],\"n\":3,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"ignore_eos\":true,"
        "\"repeat_penalty\":1.1,\"repeat_last_n\":32,\"presence_penalty\":0,"
        "\"frequency_penalty\":0.0,\"logprobs\":false,\"top_logprobs\":0,\"logit_bias\":{},"
        "\"response_format\":{\"type\":\"text\"},\"tools\":[],\"tool_choice\":\"none\","
        "\"user\":\"u\",\"metadata\":{\"a\":1},\"store\":false,\"some_new_field\":[1,2],"
        "\"parallel_tool_calls\":true,\"service_tier\":\"auto\",\"modalities\":[\"text\"]}";
    srv_request r;
    srv_error e;
    if (!parse(SRV_CHAT, body, &r, &e)) fail_msg("%s: %s", e.param, e.message);
    assert_string_equal(r.model, "m.gguf");
    assert_int_equal(r.n_messages, 5);
    assert_string_equal(r.messages[0].role, "system");
    assert_string_equal(r.messages[1].role, "system"); /* developer */
    assert_string_equal(r.messages[1].content, "really");
    assert_string_equal(r.messages[2].content, "a\nb");
    assert_string_equal(r.messages[3].role, "assistant");
    assert_string_equal(r.messages[4].content, "");
    assert_int_equal(r.max_tokens, 9); /* max_completion_tokens wins */
    assert_true(r.sampling.temperature == 0.5f && r.sampling.top_p == 0.9f);
    assert_int_equal(r.sampling.top_k, 12);
    assert_true(r.sampling.min_p == 0.1f && r.sampling.repeat_penalty == 1.1f);
    assert_int_equal(r.sampling.repeat_last_n, 32);
    assert_true(r.seed_set);
    assert_int_equal(r.sampling.seed, 42);
    assert_int_equal(r.n_stop, 2); /* the empty one never matches: dropped */
    assert_string_equal(r.stop[0], "x");
    assert_string_equal(r.stop[1], "yz");
    assert_int_equal(r.n, 3);
    assert_true(r.stream && r.include_usage && r.ignore_eos);
    assert_true(r.presence_penalty == 0.0f && r.frequency_penalty == 0.0f);
    assert_false(r.logprobs);
    assert_int_equal(r.top_logprobs, 0);
    srv_request_free(&r);

    /* null is "not given"; max_tokens alone; n_predict (llama-server) when neither */
    assert_true(parse(SRV_CHAT,
                      "{" CHAT_MSG ",\"model\":null,\"max_tokens\":5,\"temperature\":null,"
                      "\"stop\":null,\"seed\":-1,\"stream_options\":null}",
                      &r, &e));
    assert_null(r.model);
    assert_int_equal(r.max_tokens, 5);
    assert_true(r.sampling.temperature == 0.8f);
    assert_false(r.seed_set); /* -1: random */
    srv_request_free(&r);
    assert_true(parse(SRV_CHAT, "{" CHAT_MSG ",\"n_predict\":11}", &r, &e));
    assert_int_equal(r.max_tokens, 11);
    srv_request_free(&r);
    assert_true(parse(SRV_CHAT, "{" CHAT_MSG ",\"n_predict\":-1}", &r, &e));
    assert_int_equal(r.max_tokens, 0);
    srv_request_free(&r);
    /* stop as one string; a 64-bit seed */
    assert_true(
        parse(SRV_CHAT, "{" CHAT_MSG ",\"stop\":\"END\",\"seed\":18446744073709549568}", &r, &e));
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "END");
    assert_true(r.seed_set && r.sampling.seed == 18446744073709549568ull);
    srv_request_free(&r);
}

static void test_completion_prompts(void **state) {
    (void)state;
    srv_request r;
    srv_error e;
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":\"Once\",\"max_tokens\":3}", &r, &e));
    assert_int_equal(r.kind, SRV_COMPLETION);
    assert_string_equal(r.prompt, "Once");
    assert_int_equal(r.prompt_len, 4);
    assert_null(r.messages);
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":[\"Twice\"]}", &r, &e));
    assert_string_equal(r.prompt, "Twice");
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":[1,2,3]}", &r, &e));
    assert_null(r.prompt);
    assert_int_equal(r.n_tokens, 3);
    assert_int_equal(r.tokens[2], 3);
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION,
                      "{\"prompt\":[[4,5]],\"echo\":false,\"suffix\":\"\","
                      "\"best_of\":1,\"logprobs\":null}",
                      &r, &e));
    assert_int_equal(r.n_tokens, 2);
    assert_int_equal(r.tokens[0], 4);
    srv_request_free(&r);
    expect_fail(SRV_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt", "one prompt per request",
                "unsupported_parameter");
    expect_fail(SRV_COMPLETION, "{\"prompt\":[]}", "prompt", "empty", NULL);
    expect_fail(SRV_COMPLETION, "{\"prompt\":[1,-2]}", "prompt", "prompt[1]", NULL);
    expect_fail(SRV_COMPLETION, "{\"prompt\":[1,2.5]}", "prompt", "token id", NULL);
    expect_fail(SRV_COMPLETION, "{\"prompt\":[1,\"x\"]}", "prompt", "token id", NULL);
    expect_fail(SRV_COMPLETION, "{\"prompt\":7}", "prompt", "must be a string", NULL);
    expect_fail(SRV_COMPLETION, "{\"prompt\":{}}", "prompt", "must be a string", NULL);
    expect_fail(SRV_COMPLETION, "{\"max_tokens\":3}", "prompt", "required", NULL);
    expect_fail(SRV_COMPLETION, "{\"prompt\":null}", "prompt", "required", NULL);
    /* messages belong to chat: a completion needs its prompt */
    expect_fail(SRV_COMPLETION, "{" CHAT_MSG "}", "prompt", "required", NULL);
}

/* chat: logprobs (bool) with top_logprobs 0..20; completions: logprobs N 0..20; presence and
 * frequency penalties in [-2, 2] on both. */
static void test_logprobs_and_penalties(void **state) {
    (void)state;
    srv_request r;
    srv_error e;
    assert_true(parse(SRV_CHAT,
                      "{" CHAT_MSG ",\"logprobs\":true,\"top_logprobs\":3,"
                      "\"presence_penalty\":0.5,\"frequency_penalty\":-2}",
                      &r, &e));
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 3);
    assert_true(r.presence_penalty == 0.5f && r.frequency_penalty == -2.0f);
    srv_request_free(&r);
    assert_true(parse(SRV_CHAT, "{" CHAT_MSG ",\"logprobs\":true,\"top_logprobs\":20}", &r, &e));
    assert_true(r.logprobs && r.top_logprobs == 20);
    srv_request_free(&r);
    assert_true(parse(SRV_CHAT, "{" CHAT_MSG ",\"logprobs\":true}", &r, &e));
    assert_true(r.logprobs && r.top_logprobs == 0);
    srv_request_free(&r);
    /* top_logprobs 0 or null without logprobs: nothing asked */
    assert_true(parse(SRV_CHAT, "{" CHAT_MSG ",\"top_logprobs\":0,\"logprobs\":null}", &r, &e));
    assert_false(r.logprobs);
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION,
                      "{\"prompt\":\"x\",\"logprobs\":5,\"presence_penalty\":2,"
                      "\"frequency_penalty\":1.5}",
                      &r, &e));
    assert_true(r.logprobs && r.top_logprobs == 5);
    assert_true(r.presence_penalty == 2.0f && r.frequency_penalty == 1.5f);
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":0}", &r, &e));
    assert_true(r.logprobs && r.top_logprobs == 0); /* the chosen tokens' only */
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":20}", &r, &e));
    assert_true(r.logprobs && r.top_logprobs == 20);
    srv_request_free(&r);
    /* top_logprobs is not a field of OpenAI's completions: ignored there */
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":\"x\",\"top_logprobs\":30}", &r, &e));
    assert_false(r.logprobs);
    srv_request_free(&r);
    static const struct {
        srv_kind kind;
        const char *field, *param, *msg;
    } bad[] = {
        {SRV_CHAT, "\"top_logprobs\":3", "top_logprobs", "needs 'logprobs' set to true"},
        {SRV_CHAT, "\"logprobs\":false,\"top_logprobs\":1", "top_logprobs", "needs 'logprobs'"},
        {SRV_CHAT, "\"logprobs\":true,\"top_logprobs\":21", "top_logprobs", "between 0 and 20"},
        {SRV_CHAT, "\"logprobs\":true,\"top_logprobs\":-1", "top_logprobs", "between 0 and 20"},
        {SRV_CHAT, "\"logprobs\":true,\"top_logprobs\":2.5", "top_logprobs", "integer"},
        {SRV_CHAT, "\"logprobs\":3", "logprobs", "must be a boolean"},
        {SRV_COMPLETION, "\"logprobs\":21", "logprobs", "between 0 and 20"},
        {SRV_COMPLETION, "\"logprobs\":-1", "logprobs", "between 0 and 20"},
        {SRV_COMPLETION, "\"logprobs\":true", "logprobs", "must be an integer"},
        {SRV_CHAT, "\"presence_penalty\":2.5", "presence_penalty", "between -2 and 2"},
        {SRV_CHAT, "\"presence_penalty\":-2.01", "presence_penalty", "between -2 and 2"},
        {SRV_CHAT, "\"frequency_penalty\":-3", "frequency_penalty", "between -2 and 2"},
        {SRV_CHAT, "\"frequency_penalty\":1e400", "frequency_penalty", "between -2 and 2"},
        {SRV_COMPLETION, "\"frequency_penalty\":2.1", "frequency_penalty", "between -2 and 2"},
        {SRV_COMPLETION, "\"presence_penalty\":\"1\"", "presence_penalty", "must be a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s,%s}",
                 bad[i].kind == SRV_CHAT ? CHAT_MSG : "\"prompt\":\"x\"", bad[i].field);
        expect_fail(bad[i].kind, body, bad[i].param, bad[i].msg, NULL);
    }
}

static void test_wrong_types(void **state) {
    (void)state;
    static const struct {
        const char *field, *param, *msg;
    } cases[] = {
        {"\"model\":3", "model", "must be a string"},
        {"\"max_tokens\":\"5\"", "max_tokens", "must be an integer"},
        {"\"max_tokens\":5.5", "max_tokens", "must be an integer"},
        {"\"max_completion_tokens\":true", "max_completion_tokens", "must be an integer"},
        {"\"temperature\":\"hot\"", "temperature", "must be a number"},
        {"\"top_p\":[1]", "top_p", "must be a number"},
        {"\"top_k\":1.5", "top_k", "must be an integer"},
        {"\"min_p\":{}", "min_p", "must be a number"},
        {"\"seed\":\"1\"", "seed", "must be an integer"},
        {"\"n\":\"2\"", "n", "must be an integer"},
        {"\"stream\":1", "stream", "must be a boolean"},
        {"\"stream\":\"true\"", "stream", "must be a boolean"},
        {"\"stream_options\":true", "stream_options", "must be an object"},
        {"\"stream_options\":{\"include_usage\":1}", "include_usage", "must be a boolean"},
        {"\"ignore_eos\":0", "ignore_eos", "must be a boolean"},
        {"\"stop\":5", "stop", "a string or an array of strings"},
        {"\"stop\":[\"a\",5]", "stop", "a string or an array of strings"},
        {"\"stop\":{\"a\":1}", "stop", "a string or an array of strings"},
        {"\"logprobs\":1", "logprobs", "must be a boolean"},
        {"\"logit_bias\":[]", "logit_bias", "must be an object"},
        {"\"response_format\":\"json\"", "response_format", "string 'type'"},
        {"\"response_format\":{\"type\":\"yaml\"}", "response_format", "must be 'text'"},
        {"\"response_format\":{\"type\":\"json_schema\"}", "response_format.json_schema",
         "must be an object"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}",
         "response_format.json_schema.name", "1 to 64 characters"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\","
         "\"strict\":1}}",
         "response_format.json_schema.strict", "must be a boolean"},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\","
         "\"schema\":[]}}",
         "response_format.json_schema.schema", "must be an object"},
        {"\"tools\":{}", "tools", "must be an array"},
        {"\"presence_penalty\":\"0\"", "presence_penalty", "must be a number"},
        {"\"repeat_last_n\":\"8\"", "repeat_last_n", "must be an integer"},
        {"\"modalities\":\"text\"", "modalities", "must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{" CHAT_MSG ",%s}", cases[i].field);
        expect_fail(SRV_CHAT, body, cases[i].param, cases[i].msg, NULL);
    }
}

static void test_messages(void **state) {
    (void)state;
    expect_fail(SRV_CHAT, "{}", "messages", "required", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":null}", "messages", "required", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[]}", "messages", "at least one", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":\"hi\"}", "messages", "must be an array", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[\"hi\"]}", "messages[0]", "must be an object", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role", "required",
                NULL);
    expect_fail(SRV_CHAT,
                "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\"}]}",
                "messages[1].content", "required", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":null}]}",
                "messages[0].content", "required", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[{\"role\":5,\"content\":\"a\"}]}", "messages[0].role",
                "must be a string", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[{\"role\":\"robot\",\"content\":\"a\"}]}",
                "messages[0].role", "must be one of", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
                "messages[0].content", "a string or an array", NULL);
    expect_fail(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}",
                "messages[0].content", "string 'type'", NULL);
    expect_fail(SRV_CHAT,
                "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":3}]}]}",
                "messages[0].content", "must be a string", NULL);
    /* what tool calling and images would need: refused, not ignored */
    expect_fail(SRV_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"a\"}]}",
                "messages[0].role", "not supported yet", "unsupported_parameter");
    expect_fail(SRV_CHAT,
                "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                "\"image_url\":{\"url\":\"x\"}}]}]}",
                "messages[0].content", "not supported yet", "unsupported_parameter");
    expect_fail(SRV_CHAT,
                "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{}]}]}",
                "messages[0].tool_calls", "not supported yet", "unsupported_parameter");
    /* a message limit */
    char body[4096];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"messages\":[");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"role\":\"user\",\"content\":\"x\"}",
                              i ? "," : "");
    snprintf(body + n, sizeof body - n, "]}");
    srv_limits few = {.max_messages = 29};
    srv_request r;
    srv_error e;
    assert_false(srv_parse_request(SRV_CHAT, body, strlen(body), &few, &r, &e));
    assert_string_equal(e.param, "messages");
    few.max_messages = 30;
    assert_true(srv_parse_request(SRV_CHAT, body, strlen(body), &few, &r, &e));
    assert_int_equal(r.n_messages, 30);
    srv_request_free(&r);
}

static void test_bad_values(void **state) {
    (void)state;
    static const struct {
        const char *field, *param, *msg;
    } cases[] = {
        {"\"max_tokens\":-5", "max_tokens", "between 1 and 100000"},
        {"\"max_tokens\":0", "max_tokens", "between 1"},
        {"\"max_tokens\":100001", "max_tokens", "between 1 and 100000"},
        {"\"max_tokens\":1e20", "max_tokens", "between"},
        {"\"max_tokens\":1e400", "max_tokens", "integer"}, /* inf */
        {"\"max_completion_tokens\":-1", "max_completion_tokens", "between"},
        {"\"n_predict\":0", "n_predict", "not be 0"},
        {"\"n_predict\":-2", "n_predict", "between"},
        {"\"temperature\":-0.1", "temperature", "between 0 and 2"},
        {"\"temperature\":2.5", "temperature", "between 0 and 2"},
        {"\"temperature\":-1e400", "temperature", "between"},
        {"\"top_p\":1.01", "top_p", "between 0 and 1"},
        {"\"top_p\":-1", "top_p", "between 0 and 1"},
        {"\"min_p\":2", "min_p", "between 0 and 1"},
        {"\"top_k\":-1", "top_k", "between 0"},
        {"\"top_k\":1e12", "top_k", "between 0"},
        {"\"n\":0", "n", "between 1 and 8"},
        {"\"n\":9", "n", "between 1 and 8"},
        {"\"n\":-3", "n", "between 1 and 8"},
        {"\"seed\":1e30", "seed", "between"},
        {"\"seed\":0.5", "seed", "integer"},
        {"\"repeat_penalty\":-1", "repeat_penalty", "between"},
        {"\"repeat_last_n\":5000", "repeat_last_n", "between 0 and 4096"},
        {"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop", "at most 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{" CHAT_MSG ",%s}", cases[i].field);
        expect_fail(SRV_CHAT, body, cases[i].param, cases[i].msg, NULL);
    }
    char body[1024], longstop[300];
    memset(longstop, 'x', 257);
    longstop[257] = '\0';
    snprintf(body, sizeof body, "{" CHAT_MSG ",\"stop\":\"%s\"}", longstop);
    expect_fail(SRV_CHAT, body, "stop", "at most 256", NULL);
    longstop[256] = '\0'; /* 256 bytes is fine */
    snprintf(body, sizeof body, "{" CHAT_MSG ",\"stop\":[\"%s\"]}", longstop);
    srv_request r;
    srv_error e;
    assert_true(parse(SRV_CHAT, body, &r, &e));
    srv_request_free(&r);
}

static void test_not_objects(void **state) {
    (void)state;
    static const char *bodies[] = {"",     "{",     "{\"messages\":", "[]",         "3",
                                   "null", "\"x\"", "{} trailing",    "{\"a\":1,}", "\x01\x02"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        srv_request r;
        srv_error e;
        assert_false(parse(SRV_CHAT, bodies[i], &r, &e));
        assert_int_equal(e.status, 400);
        assert_string_equal(e.param, "");
        assert_true(strstr(e.message, "JSON") != NULL);
    }
    /* a body with a NUL inside is cut there by nobody: the length counts */
    srv_request r;
    srv_error e;
    const char nul[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\0garbage";
    assert_false(srv_parse_request(SRV_CHAT, nul, sizeof nul - 1, &k_lim, &r, &e));
    assert_true(srv_parse_request(SRV_CHAT, nul, strlen(nul), &k_lim, &r, &e));
    srv_request_free(&r);
    /* deep nesting fails cleanly */
    char deep[4200];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"x\":");
    for (int i = 0; i < 2000; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    assert_false(parse(SRV_CHAT, deep, &r, &e));
}

static void test_refused(void **state) {
    (void)state;
    static const struct {
        srv_kind kind;
        const char *field, *param;
    } cases[] = {
        {SRV_CHAT, "\"logit_bias\":{\"50256\":-100}", "logit_bias"},
        {SRV_CHAT, "\"tools\":[{\"type\":\"function\"}]", "tools"},
        {SRV_CHAT, "\"functions\":[{\"name\":\"f\"}]", "functions"},
        {SRV_CHAT, "\"tool_choice\":\"required\"", "tool_choice"},
        {SRV_CHAT, "\"function_call\":{\"name\":\"f\"}", "function_call"},
        {SRV_CHAT, "\"audio\":{\"voice\":\"x\"}", "audio"},
        {SRV_CHAT, "\"modalities\":[\"text\",\"audio\"]", "modalities"},
        {SRV_CHAT, "\"grammar\":\"root ::= x\"", "grammar"},
        {SRV_CHAT, "\"json_schema\":{}", "json_schema"},
        {SRV_CHAT, "\"mirostat\":2", "mirostat"},
        {SRV_CHAT, "\"typical_p\":0.5", "typical_p"},
        {SRV_CHAT, "\"n_probs\":3", "n_probs"}, /* llama-server's post-sampling figures */
        {SRV_COMPLETION, "\"echo\":true", "echo"},
        {SRV_COMPLETION, "\"suffix\":\"end\"", "suffix"},
        {SRV_COMPLETION, "\"best_of\":3", "best_of"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s,%s}",
                 cases[i].kind == SRV_CHAT ? CHAT_MSG : "\"prompt\":\"x\"", cases[i].field);
        expect_fail(cases[i].kind, body, cases[i].param, "not supported yet",
                    "unsupported_parameter");
    }
}

/* response_format: the schema's compact text for the engine (which checks it) */
static void test_response_format(void **state) {
    (void)state;
    static const struct {
        const char *field, *schema;
    } cases[] = {
        {"\"response_format\":{\"type\":\"text\"}", NULL},
        {"\"response_format\":{\"type\":\"json_object\"}", VKLLM_JSON_ANY_OBJECT},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\"}}",
         VKLLM_JSON_ANY_OBJECT},
        {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\","
         "\"strict\":true,\"schema\":{ \"type\" : \"object\", \"properties\": {\"x\": "
         "{\"$ref\":\"#\"}}}}}",
         "{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#\"}}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{" CHAT_MSG ",%s}", cases[i].field);
        srv_request r;
        srv_error e;
        assert_true(srv_parse_request(SRV_CHAT, body, strlen(body), &k_lim, &r, &e));
        if (cases[i].schema)
            assert_string_equal(r.json_schema, cases[i].schema);
        else
            assert_null(r.json_schema);
        srv_request_free(&r);
    }
}

static void test_tokenize_bodies(void **state) {
    (void)state;
    srv_tokenize t;
    srv_error e;
    const char *b = "{\"content\":\"Hello\"}";
    assert_true(srv_parse_tokenize(b, strlen(b), &t, &e));
    assert_string_equal(t.content, "Hello");
    assert_int_equal(t.len, 5);
    assert_false(t.add_special || t.with_pieces);
    assert_true(t.parse_special);
    free(t.content);
    b = "{\"content\":\"\",\"add_special\":true,\"parse_special\":false,\"with_pieces\":true}";
    assert_true(srv_parse_tokenize(b, strlen(b), &t, &e));
    assert_true(t.add_special && !t.parse_special && t.with_pieces);
    free(t.content);
    static const char *bad_tok[] = {"{}", "{\"content\":1}",
                                    "{\"content\":\"a\",\"add_special\":1}", "[\"a\"]", "{"};
    for (size_t i = 0; i < 5; i++)
        assert_false(srv_parse_tokenize(bad_tok[i], strlen(bad_tok[i]), &t, &e));
    int32_t *ids;
    size_t n;
    b = "{\"tokens\":[1,2,49151]}";
    assert_true(srv_parse_detokenize(b, strlen(b), 49152, &ids, &n, &e));
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 49151);
    free(ids);
    b = "{\"tokens\":[]}";
    assert_true(srv_parse_detokenize(b, strlen(b), 49152, &ids, &n, &e));
    assert_int_equal(n, 0);
    free(ids);
    static const char *bad_ids[] = {"{\"tokens\":[49152]}",
                                    "{\"tokens\":[-1]}",
                                    "{\"tokens\":[1.5]}",
                                    "{\"tokens\":\"1\"}",
                                    "{}",
                                    "{\"tokens\":[\"1\"]}"};
    for (size_t i = 0; i < 6; i++) {
        assert_false(srv_parse_detokenize(bad_ids[i], strlen(bad_ids[i]), 49152, &ids, &n, &e));
        assert_int_equal(e.status, 400);
        assert_null(ids);
    }
}

static void test_error_json(void **state) {
    (void)state;
    srv_error e;
    srv_fail(&e, 400, "invalid_request_error", "context_length_exceeded", "messages", "too %s",
             "long");
    char *s = srv_error_json(&e);
    cJSON *o = cJSON_Parse(s), *err = cJSON_GetObjectItem(o, "error");
    assert_non_null(err);
    assert_string_equal(cJSON_GetObjectItem(err, "message")->valuestring, "too long");
    assert_string_equal(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error");
    assert_string_equal(cJSON_GetObjectItem(err, "param")->valuestring, "messages");
    assert_string_equal(cJSON_GetObjectItem(err, "code")->valuestring, "context_length_exceeded");
    cJSON_Delete(o);
    free(s);
    srv_fail(&e, 404, "invalid_request_error", NULL, NULL, "no \"such\" thing");
    s = srv_error_json(&e);
    o = cJSON_Parse(s);
    err = cJSON_GetObjectItem(o, "error");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(err, "param")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    assert_string_equal(cJSON_GetObjectItem(err, "message")->valuestring, "no \"such\" thing");
    cJSON_Delete(o);
    free(s);
}

static void test_text_helpers(void **state) {
    (void)state;
    /* "é" is C3 A9; "😀" is F0 9F 98 80 */
    assert_int_equal(srv_utf8_complete("ab", 2), 2);
    assert_int_equal(srv_utf8_complete("a\xC3", 2), 1);
    assert_int_equal(srv_utf8_complete("a\xC3\xA9", 3), 3);
    assert_int_equal(srv_utf8_complete("a\xF0\x9F", 3), 1);
    assert_int_equal(srv_utf8_complete("a\xF0\x9F\x98", 4), 1);
    assert_int_equal(srv_utf8_complete("a\xF0\x9F\x98\x80", 5), 5);
    assert_int_equal(srv_utf8_complete("\x80\x80", 2), 2); /* stray: nothing completes it */
    assert_int_equal(srv_utf8_complete("", 0), 0);
    char *stops[] = {"STOP", "\n\n"};
    assert_int_equal(srv_stop_holdback("hello ST", 8, stops, 2), 2);
    assert_int_equal(srv_stop_holdback("hello STO", 9, stops, 2), 3);
    assert_int_equal(srv_stop_holdback("hello S", 7, stops, 2), 1);
    assert_int_equal(srv_stop_holdback("hello\n", 6, stops, 2), 1);
    assert_int_equal(srv_stop_holdback("hello", 5, stops, 2), 0);
    assert_int_equal(srv_stop_holdback("ST", 2, stops, 2), 2);
    assert_int_equal(srv_stop_holdback("x", 1, stops, 0), 0);
    size_t n = 0;
    char *c = srv_utf8_clean("a\xC3\xA9\xF0\x9F", 5, &n);
    assert_int_equal(n, 9);
    assert_memory_equal(c, "a\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD", 9); /* é, then U+FFFD twice */
    free(c);
    c = srv_utf8_clean("\xED\xA0\x80z", 4, &n); /* a surrogate: not UTF-8 */
    assert_string_equal(c, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz");
    free(c);
    c = srv_utf8_clean("\xC0\xAF", 2, &n); /* overlong */
    assert_int_equal(n, 6);
    free(c);
    c = srv_utf8_clean("ok \xF0\x9F\x98\x80", 7, &n);
    assert_string_equal(c, "ok \xF0\x9F\x98\x80");
    free(c);
}

/* top_p 0 and min_p 1 mean "the likeliest token only", which vkllm_sampling spells as values
 * inside (0, 1): 0 and 1 themselves turn those filters off there. */
static void test_sampling_edges(void **state) {
    (void)state;
    srv_request r;
    srv_error e;
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":\"x\",\"top_p\":0,\"min_p\":1}", &r, &e));
    assert_true(r.sampling.top_p > 0.0f && r.sampling.top_p <= 1e-6f);
    assert_true(r.sampling.min_p < 1.0f && r.sampling.min_p > 0.9999f);
    srv_request_free(&r);
    assert_true(parse(SRV_COMPLETION, "{\"prompt\":\"x\",\"top_p\":1,\"min_p\":0}", &r, &e));
    assert_true(r.sampling.top_p == 1.0f && r.sampling.min_p == 0.0f); /* off, as asked */
    srv_request_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_minimal),
        cmocka_unit_test(test_chat_every_field),
        cmocka_unit_test(test_completion_prompts),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_not_objects),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_tokenize_bodies),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_text_helpers),
        cmocka_unit_test(test_logprobs_and_penalties),
        cmocka_unit_test(test_sampling_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
