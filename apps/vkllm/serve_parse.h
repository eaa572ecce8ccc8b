/* vkllm serve's request parsing: an HTTP body (JSON) into a checked C request, and the text
 * helpers its streams need (UTF-8 boundaries, stop-string hold-back). Pure functions: no
 * HTTP, no engine, no globals, so a unit test and a fuzzer can drive them directly. JSON is
 * cJSON's; the request's fields follow OpenAI's (openai-python's types), plus llama-server's
 * top_k, min_p, repeat_penalty, repeat_last_n, ignore_eos. A field that would change the
 * answer and that vkllm cannot honour yet is refused with its name, never ignored. */
#ifndef VKLLM_APP_SERVE_PARSE_H
#define VKLLM_APP_SERVE_PARSE_H

#include "vkllm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum srv_kind { SRV_CHAT, SRV_COMPLETION } srv_kind;

/* An error as OpenAI's error object says it: the HTTP status, type, code (NULL: null),
 * param ("" : null) and a message for people. */
typedef struct srv_error {
    int status;
    const char *type;
    const char *code;
    char param[64];
    char message[512];
} srv_error;

/* Fills e and returns false (for `return srv_fail(...)`). */
bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param,
              const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Limits a request is checked against; a zero field takes the default in brackets. */
typedef struct srv_limits {
    uint32_t max_n;      /* choices per request [8] */
    uint32_t max_stop;   /* stop strings [4, as OpenAI] */
    size_t max_stop_len; /* bytes of one stop string [256] */
    size_t max_messages; /* chat messages [1024] */
    int32_t max_tokens;  /* max_tokens at most this [2^30] */
} srv_limits;

#define SRV_MAX_STOP 16

typedef struct srv_request {
    srv_kind kind;
    char *model; /* NULL: not given */
    /* chat: roles are "system" (also for "developer"), "user" or "assistant"; contents are
     * the text parts joined */
    vkllm_chat_message *messages;
    size_t n_messages;
    /* completions: a text, or token ids */
    char *prompt;
    size_t prompt_len;
    int32_t *tokens;
    size_t n_tokens;
    int32_t max_tokens; /* 0: not given (until end of generation or a full context) */
    vkllm_sampling sampling;
    bool seed_set;
    char *stop[SRV_MAX_STOP];
    size_t n_stop;
    uint32_t n;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool ignore_eos;
    /* OpenAI's penalties, [-2, 2] */
    float presence_penalty, frequency_penalty;
    /* log-probabilities: chat's logprobs: true with top_logprobs (0..20), or completions'
     * logprobs: N (0..20; OpenAI's legacy API allows 5) */
    bool logprobs;
    uint32_t top_logprobs;
    /* response_format json_object / json_schema: the schema's text (vkllm_request_desc
     * .json_schema); NULL: plain text. */
    char *json_schema;
} srv_request;

/* The sampling of a request that sets none of its fields (llama-server's defaults). */
vkllm_sampling srv_default_sampling(void);

/* Parses a POST /v1/chat/completions (SRV_CHAT) or /v1/completions body. false: *err says
 * why (status 400) and *out holds nothing to free. true: free *out with srv_request_free. */
bool srv_parse_request(srv_kind kind, const char *body, size_t len, const srv_limits *lim,
                       srv_request *out, srv_error *err);
void srv_request_free(srv_request *r);

/* POST /tokenize {"content": str, "add_special": bool, "parse_special": bool,
 * "with_pieces": bool} (llama-server's). Free content with free(). */
typedef struct srv_tokenize {
    char *content;
    size_t len;
    bool add_special;   /* default false */
    bool parse_special; /* default true */
    bool with_pieces;   /* default false */
} srv_tokenize;
bool srv_parse_tokenize(const char *body, size_t len, srv_tokenize *out, srv_error *err);

/* POST /detokenize {"tokens": [int]}: ids in [0, n_vocab). Free *ids with free(). */
bool srv_parse_detokenize(const char *body, size_t len, uint32_t n_vocab, int32_t **ids, size_t *n,
                          srv_error *err);

/* OpenAI's error object, {"error": {"message", "type", "param", "code"}}, malloc'd. */
char *srv_error_json(const srv_error *e);

/* ---- text ---- */

/* Bytes of s[0, n) that end on a UTF-8 character boundary: n less an incomplete sequence
 * at the end (one that more bytes could still complete). */
size_t srv_utf8_complete(const char *s, size_t n);
/* Bytes at the end of s[0, n) that could be the start of one of the stop strings (the
 * longest such suffix, shorter than the stop string): what a stream holds back. */
size_t srv_stop_holdback(const char *s, size_t n, char *const *stop, size_t n_stop);
/* s[0, n) with every invalid or incomplete UTF-8 sequence replaced by U+FFFD, malloc'd and
 * NUL-terminated (*out_len: its length); NULL when out of memory. */
char *srv_utf8_clean(const char *s, size_t n, size_t *out_len);

#endif
