/* libFuzzer target for vkllm serve's request parsing (apps/vkllm/serve_parse.c): every input
 * goes through all four body parsers (chat, completions, tokenize, detokenize), then the
 * error object or the parsed request through the stream's text helpers. Checks beyond "no
 * crash": a refusal is a 400 (or a 500 for out of memory) with a message and an error object
 * that is valid JSON; an accepted request keeps its limits (n, stop strings, max_tokens, the
 * sampling ranges); the UTF-8 helpers keep their contracts on the request's own text.
 *
 * Inputs are plain request bodies, so the seed corpus (tests/data/serve_corpus) is readable
 * JSON, and tests/test_serve_parse_corpus.c replays it through this same function in every
 * test build (no libFuzzer needed there). Built by scripts/fuzz_serve.sh, or by
 * `cmake -DVKLLM_FUZZ=ON` with the other targets in tests/fuzz/.
 *
 * It must not: keep state between inputs, or depend on a model (n_vocab is fixed here). */
#include "apps/vkllm/serve_parse.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The input's name where a replay knows it (tests/test_serve_parse_corpus.c), for the report. */
static const char *g_fuzz_input = "";

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_serve_parse: %s:%d: %s (input %s)\n", __FILE__, __LINE__, #cond, \
                    g_fuzz_input);                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Small limits, so that inputs reach them */
static const srv_limits k_fuzz_lim = {
    .max_n = 4, .max_stop = 4, .max_stop_len = 32, .max_messages = 16, .max_tokens = 1000};
enum { FUZZ_N_VOCAB = 49152 };

static void check_error(const srv_error *e) {
    FUZZ_CHECK(e->status == 400 || e->status == 500);
    FUZZ_CHECK(e->type && e->message[0]);
    char *j = srv_error_json(e);
    if (!j) return; /* out of memory */
    cJSON *o = cJSON_Parse(j);
    FUZZ_CHECK(o && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "error")));
    cJSON_Delete(o);
    free(j);
}

/* The text helpers on a text the request brought: what a stream does with an answer. */
static void check_text(const char *s, size_t n, char *const *stop, size_t n_stop) {
    const size_t done = srv_utf8_complete(s, n);
    FUZZ_CHECK(done <= n && n - done <= 3);
    const size_t hold = srv_stop_holdback(s, n, stop, n_stop);
    FUZZ_CHECK(hold <= n);
    size_t cl = 0;
    char *c = srv_utf8_clean(s, n, &cl);
    if (!c) return;
    FUZZ_CHECK(cl <= 3 * n && c[cl] == '\0');
    size_t again = 0; /* clean text is valid UTF-8: cleaning it again changes nothing */
    char *c2 = srv_utf8_clean(c, cl, &again);
    FUZZ_CHECK(!c2 || (again == cl && memcmp(c, c2, cl) == 0));
    FUZZ_CHECK(srv_utf8_complete(c, cl) == cl);
    free(c2);
    free(c);
}

static void check_request(const srv_request *r, srv_kind kind) {
    FUZZ_CHECK(r->kind == kind);
    FUZZ_CHECK(r->n >= 1 && r->n <= k_fuzz_lim.max_n);
    FUZZ_CHECK(r->n_stop <= k_fuzz_lim.max_stop);
    FUZZ_CHECK(r->max_tokens >= 0 && r->max_tokens <= k_fuzz_lim.max_tokens);
    const vkllm_sampling *s = &r->sampling;
    FUZZ_CHECK(s->temperature >= 0 && s->temperature <= 2);
    FUZZ_CHECK(s->top_p >= 0 && s->top_p <= 1 && s->min_p >= 0 && s->min_p <= 1);
    FUZZ_CHECK(s->top_k >= 0 && s->repeat_last_n > 0 && s->repeat_last_n <= 4096);
    FUZZ_CHECK(s->repeat_penalty >= 0 && s->repeat_penalty <= 10);
    for (size_t i = 0; i < r->n_stop; i++) {
        const size_t len = strlen(r->stop[i]);
        FUZZ_CHECK(len > 0 && len <= k_fuzz_lim.max_stop_len);
    }
    if (kind == SRV_CHAT) {
        FUZZ_CHECK(r->n_messages >= 1 && r->n_messages <= k_fuzz_lim.max_messages);
        FUZZ_CHECK(!r->prompt && !r->tokens);
        for (size_t i = 0; i < r->n_messages; i++) {
            const char *role = r->messages[i].role, *c = r->messages[i].content;
            FUZZ_CHECK(role && c);
            FUZZ_CHECK(!strcmp(role, "system") || !strcmp(role, "user") ||
                       !strcmp(role, "assistant"));
            check_text(c, strlen(c), r->stop, r->n_stop);
        }
    } else {
        FUZZ_CHECK(!r->messages && (r->prompt != NULL) != (r->tokens != NULL));
        if (r->prompt) {
            FUZZ_CHECK(strlen(r->prompt) == r->prompt_len);
            check_text(r->prompt, r->prompt_len, r->stop, r->n_stop);
        } else {
            FUZZ_CHECK(r->n_tokens >= 1);
            for (size_t i = 0; i < r->n_tokens; i++)
                FUZZ_CHECK(r->tokens[i] >= 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    srv_error e;
    static const srv_kind kinds[] = {SRV_CHAT, SRV_COMPLETION};
    for (size_t k = 0; k < 2; k++) {
        srv_request r;
        memset(&e, 0, sizeof e);
        if (srv_parse_request(kinds[k], body, size, &k_fuzz_lim, &r, &e)) {
            check_request(&r, kinds[k]);
            srv_request_free(&r);
        } else {
            check_error(&e);
        }
    }
    srv_tokenize t;
    memset(&e, 0, sizeof e);
    if (srv_parse_tokenize(body, size, &t, &e)) {
        FUZZ_CHECK(t.content && strlen(t.content) == t.len);
        check_text(t.content, t.len, NULL, 0);
        free(t.content);
    } else {
        check_error(&e);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    memset(&e, 0, sizeof e);
    if (srv_parse_detokenize(body, size, FUZZ_N_VOCAB, &ids, &n, &e)) {
        FUZZ_CHECK(ids != NULL);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < FUZZ_N_VOCAB);
        free(ids);
    } else {
        FUZZ_CHECK(!ids && n == 0);
        check_error(&e);
    }
    /* the raw bytes as an answer: what a stream does with whatever the model makes */
    check_text(body, size, NULL, 0);
    return 0;
}
