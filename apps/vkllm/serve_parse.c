/* vkllm serve: JSON request bodies into checked srv_request structs, OpenAI's error object, and
 * the UTF-8 and stop-string helpers of streamed answers (serve_parse.h). Every error names
 * the field (OpenAI's "param", e.g. "messages[2].content") and says what was wrong in words.
 * Nothing here knows HTTP or the engine; nothing here keeps state between calls. */
#include "serve_parse.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"

bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param,
              const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

static bool bad(srv_error *e, const char *param, const char *fmt, const char *a) {
    return srv_fail(e, 400, INVALID, NULL, param, fmt, param, a);
}

/* A field that changes the answer and that vkllm does not do yet. */
static bool unsupported(srv_error *e, const char *param, const char *what) {
    return srv_fail(e, 400, INVALID, "unsupported_parameter", param,
                    "'%s' is not supported yet by vkllm serve (%s)", param, what);
}

vkllm_sampling srv_default_sampling(void) {
    return (vkllm_sampling){.temperature = 0.8f,
                            .top_k = 40,
                            .top_p = 0.95f,
                            .min_p = 0.05f,
                            .repeat_penalty = 1.0f,
                            .repeat_last_n = 64};
}

/* ---- typed fields: absent and null are "not given" ---- */

static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool get_bool(const cJSON *o, const char *name, bool *dst, srv_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return true;
    if (!cJSON_IsBool(v)) return bad(e, name, "'%s' must be a boolean%s", "");
    *dst = cJSON_IsTrue(v);
    return true;
}

/* An integer in [lo, hi]; *set (may be NULL) says whether it was given. */
static bool get_int(const cJSON *o, const char *name, double lo, double hi, long long *dst,
                    bool *set, srv_error *e) {
    const cJSON *v = field(o, name);
    if (set) *set = v != NULL;
    if (!v) return true;
    if (!cJSON_IsNumber(v)) return bad(e, name, "'%s' must be an integer%s", "");
    const double d = v->valuedouble;
    if (!isfinite(d) || floor(d) != d) return bad(e, name, "'%s' must be an integer%s", "");
    if (d < lo || d > hi)
        return srv_fail(e, 400, INVALID, NULL, name, "'%s' must be between %.0f and %.0f (got %g)",
                        name, lo, hi, d);
    *dst = d >= 9.2e18 ? (long long)(unsigned long long)d : (long long)d;
    return true;
}

static bool get_float(const cJSON *o, const char *name, double lo, double hi, float *dst, bool *set,
                      srv_error *e) {
    const cJSON *v = field(o, name);
    if (set) *set = v != NULL;
    if (!v) return true;
    if (!cJSON_IsNumber(v)) return bad(e, name, "'%s' must be a number%s", "");
    const double d = v->valuedouble;
    if (!(d >= lo && d <= hi))
        return srv_fail(e, 400, INVALID, NULL, name, "'%s' must be between %g and %g (got %g)",
                        name, lo, hi, d);
    *dst = (float)d;
    return true;
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static bool oom(srv_error *e) {
    return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* Parses the body; false with the error filled when it is not a JSON object. */
static cJSON *parse_object(const char *body, size_t len, srv_error *e) {
    const char *end = NULL;
    cJSON *root = body && len ? cJSON_ParseWithLengthOpts(body, len, &end, false) : NULL;
    if (root && end) { /* nothing but white space may follow the value */
        for (const char *p = end; p < body + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != '\0') {
                cJSON_Delete(root);
                root = NULL;
                break;
            }
    }
    if (!root) {
        const size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        srv_fail(e, 400, INVALID, NULL, NULL,
                 "We could not parse the JSON body of your request (%s, at byte %zu of %zu). "
                 "It must be one JSON object.",
                 len ? "invalid JSON" : "empty body", at, len);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        srv_fail(e, 400, INVALID, NULL, NULL, "The request body must be a JSON object.");
        return NULL;
    }
    return root;
}

/* ---- fields the engine cannot honour yet ---- */

static bool nonzero_number(const cJSON *o, const char *name, double lo, double hi, srv_error *e,
                           const char *what) {
    float v = 0.0f;
    if (!get_float(o, name, lo, hi, &v, NULL, e)) return false;
    return v == 0.0f ? true : unsupported(e, name, what);
}

static bool check_refused(const cJSON *o, srv_kind kind, srv_error *e) {
    const cJSON *v;
    if ((v = field(o, "logit_bias"))) {
        if (!cJSON_IsObject(v)) return bad(e, "logit_bias", "'%s' must be an object%s", "");
        if (v->child) return unsupported(e, "logit_bias", "no logit biases");
    }
    static const char *const lists[] = {"tools", "functions"};
    for (size_t i = 0; i < 2; i++)
        if ((v = field(o, lists[i]))) {
            if (!cJSON_IsArray(v)) return bad(e, lists[i], "'%s' must be an array%s", "");
            if (v->child) return unsupported(e, lists[i], "no tool calls");
        }
    static const char *const choices[] = {"tool_choice", "function_call"};
    for (size_t i = 0; i < 2; i++)
        if ((v = field(o, choices[i])) && !(cJSON_IsString(v) && (!strcmp(v->valuestring, "none") ||
                                                                  !strcmp(v->valuestring, "auto"))))
            return unsupported(e, choices[i], "no tool calls");
    if ((v = field(o, "audio"))) return unsupported(e, "audio", "text only");
    if ((v = field(o, "modalities"))) {
        if (!cJSON_IsArray(v)) return bad(e, "modalities", "'%s' must be an array%s", "");
        for (const cJSON *m = v->child; m; m = m->next) {
            if (!cJSON_IsString(m))
                return bad(e, "modalities", "'%s' must be an array of strings%s", "");
            if (strcmp(m->valuestring, "text") != 0)
                return unsupported(e, "modalities", "text only");
        }
    }
    if (kind == SRV_COMPLETION) {
        bool echo = false;
        if (!get_bool(o, "echo", &echo, e)) return false;
        if (echo) return unsupported(e, "echo", "the answer without the prompt only");
        if ((v = field(o, "suffix"))) {
            if (!cJSON_IsString(v)) return bad(e, "suffix", "'%s' must be a string%s", "");
            if (v->valuestring[0]) return unsupported(e, "suffix", "no insertion");
        }
        long long best_of = 1;
        if (!get_int(o, "best_of", 1, 20, &best_of, NULL, e)) return false;
        if (best_of > 1) return unsupported(e, "best_of", "use n");
    }
    /* llama-server's sampling extensions vkllm does not have */
    if ((v = field(o, "grammar")) && !(cJSON_IsString(v) && !v->valuestring[0]))
        return unsupported(e, "grammar", "no constrained sampling");
    if (field(o, "json_schema")) return unsupported(e, "json_schema", "no constrained sampling");
    if (!nonzero_number(o, "mirostat", 0, 2, e, "top-k, top-p, min-p and temperature only") ||
        !nonzero_number(o, "n_probs", 0, 1e9, e,
                        "post-sampling probabilities; logprobs gives OpenAI's"))
        return false;
    float typical = 1.0f;
    if (!get_float(o, "typical_p", 0, 1, &typical, NULL, e)) return false;
    if (typical != 1.0f) return unsupported(e, "typical_p", "no locally typical sampling");
    return true;
}

/* response_format (openai-python's shared_params/response_format_*.py): "text", "json_object"
 * (any JSON object) or "json_schema" with {"name", "schema", "strict", "description"}: the
 * schema's compact text goes to the engine, which checks it (serve_gen.c names
 * response_format in its errors). Without "schema": any JSON object. */
static bool parse_response_format(const cJSON *o, srv_request *r, srv_error *e) {
    const cJSON *v = field(o, "response_format");
    if (!v) return true;
    const cJSON *t = cJSON_IsObject(v) ? field(v, "type") : NULL;
    if (!cJSON_IsString(t))
        return bad(e, "response_format", "'%s' must be an object with a string 'type'%s", "");
    if (strcmp(t->valuestring, "text") == 0) return true;
    if (strcmp(t->valuestring, "json_object") == 0) {
        r->json_schema = dup_n(VKLLM_JSON_ANY_OBJECT, strlen(VKLLM_JSON_ANY_OBJECT));
        return r->json_schema ? true : oom(e);
    }
    if (strcmp(t->valuestring, "json_schema") != 0)
        return srv_fail(e, 400, INVALID, NULL, "response_format",
                        "'response_format.type' must be 'text', 'json_object' or "
                        "'json_schema' (got '%.100s')",
                        t->valuestring);
    const char *p = "response_format.json_schema";
    const cJSON *js = field(v, "json_schema");
    if (!cJSON_IsObject(js)) return bad(e, p, "'%s' must be an object%s", "");
    const cJSON *name = field(js, "name"), *strict = field(js, "strict");
    if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > 64)
        return bad(e, "response_format.json_schema.name",
                   "'%s' must be a string of 1 to 64 characters%s", "");
    if (strict && !cJSON_IsBool(strict))
        return bad(e, "response_format.json_schema.strict", "'%s' must be a boolean%s", "");
    /* strict or not, the answer follows the schema: sampling is constrained either way */
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!schema) {
        r->json_schema = dup_n(VKLLM_JSON_ANY_OBJECT, strlen(VKLLM_JSON_ANY_OBJECT));
        return r->json_schema ? true : oom(e);
    }
    if (!cJSON_IsObject(schema) && !cJSON_IsBool(schema))
        return bad(e, "response_format.json_schema.schema", "'%s' must be an object%s", "");
    char *text = cJSON_PrintUnformatted(schema);
    r->json_schema = text ? dup_n(text, strlen(text)) : NULL;
    cJSON_free(text);
    return r->json_schema ? true : oom(e);
}

/* ---- prompts ---- */

/* A message's content: a string, or an array of text parts (joined by newlines). */
static bool message_content(const cJSON *c, size_t i, char **out, srv_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (cJSON_IsString(c)) {
        *out = dup_n(c->valuestring, strlen(c->valuestring));
        return *out ? true : oom(e);
    }
    if (!cJSON_IsArray(c))
        return srv_fail(e, 400, INVALID, NULL, param,
                        "'%s' must be a string or an array of content parts", param);
    size_t len = 0, k = 0;
    for (const cJSON *p = c->child; p; p = p->next, k++) {
        const cJSON *t = cJSON_IsObject(p) ? field(p, "type") : NULL;
        if (!cJSON_IsString(t))
            return srv_fail(e, 400, INVALID, NULL, param,
                            "'%s[%zu]' must be an object with a string 'type'", param, k);
        if (strcmp(t->valuestring, "text") != 0 && strcmp(t->valuestring, "refusal") != 0)
            return srv_fail(e, 400, INVALID, "unsupported_parameter", param,
                            "'%s[%zu]': content parts of type '%.40s' are not supported yet by "
                            "vkllm serve (text only)",
                            param, k, t->valuestring);
        const cJSON *x = field(p, t->valuestring[0] == 't' ? "text" : "refusal");
        if (!cJSON_IsString(x))
            return srv_fail(e, 400, INVALID, NULL, param, "'%s[%zu].%s' must be a string", param, k,
                            t->valuestring);
        len += strlen(x->valuestring) + 1;
    }
    char *s = malloc(len + 1);
    if (!s) return oom(e);
    size_t n = 0;
    for (const cJSON *p = c->child; p; p = p->next) {
        const cJSON *t = field(p, "type");
        const char *x = field(p, t->valuestring[0] == 't' ? "text" : "refusal")->valuestring;
        if (n) s[n++] = '\n';
        memcpy(s + n, x, strlen(x));
        n += strlen(x);
    }
    s[n] = '\0';
    *out = s;
    return true;
}

static bool parse_messages(const cJSON *o, const srv_limits *lim, srv_request *r, srv_error *e) {
    const cJSON *m = field(o, "messages");
    if (!m) return srv_fail(e, 400, INVALID, NULL, "messages", "'messages' is a required property");
    if (!cJSON_IsArray(m)) return bad(e, "messages", "'%s' must be an array%s", "");
    const size_t n = (size_t)cJSON_GetArraySize(m);
    if (n == 0)
        return srv_fail(e, 400, INVALID, NULL, "messages",
                        "'messages' must hold at least one message");
    if (n > lim->max_messages)
        return srv_fail(e, 400, INVALID, NULL, "messages",
                        "'messages' holds %zu messages, at most %zu", n, lim->max_messages);
    r->messages = calloc(n, sizeof *r->messages);
    if (!r->messages) return oom(e);
    size_t i = 0;
    for (const cJSON *x = m->child; x; x = x->next, i++) {
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!cJSON_IsObject(x))
            return srv_fail(e, 400, INVALID, NULL, param, "'%s' must be an object", param);
        const cJSON *role = field(x, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!role)
            return srv_fail(e, 400, INVALID, NULL, param, "'%s' is a required property", param);
        if (!cJSON_IsString(role))
            return srv_fail(e, 400, INVALID, NULL, param, "'%s' must be a string", param);
        const char *rs = role->valuestring, *as = NULL;
        if (!strcmp(rs, "system") || !strcmp(rs, "developer"))
            as = "system";
        else if (!strcmp(rs, "user"))
            as = "user";
        else if (!strcmp(rs, "assistant"))
            as = "assistant";
        else if (!strcmp(rs, "tool") || !strcmp(rs, "function"))
            return srv_fail(e, 400, INVALID, "unsupported_parameter", param,
                            "'%s': '%s' messages are not supported yet by vkllm serve (no tool "
                            "calls)",
                            param, rs);
        else
            return srv_fail(e, 400, INVALID, NULL, param,
                            "'%s' must be one of 'system', 'developer', 'user', 'assistant' (got "
                            "'%.40s')",
                            param, rs);
        const cJSON *tc = field(x, "tool_calls"), *fc = field(x, "function_call");
        if ((tc && !(cJSON_IsArray(tc) && !tc->child)) || fc) {
            snprintf(param, sizeof param, "messages[%zu].%s", i,
                     fc ? "function_call" : "tool_calls");
            return srv_fail(e, 400, INVALID, "unsupported_parameter", param,
                            "'%s' is not supported yet by vkllm serve (no tool calls)", param);
        }
        const cJSON *c = field(x, "content");
        if (!c) {
            snprintf(param, sizeof param, "messages[%zu].content", i);
            return srv_fail(e, 400, INVALID, NULL, param, "'%s' is a required property", param);
        }
        char *content = NULL;
        if (!message_content(c, i, &content, e)) return false;
        r->messages[i] = (vkllm_chat_message){as, content};
        r->n_messages = i + 1;
    }
    return true;
}

static bool token_array(const cJSON *a, const char *param, srv_request *r, srv_error *e) {
    const size_t n = (size_t)cJSON_GetArraySize(a);
    if (n == 0) return srv_fail(e, 400, INVALID, NULL, param, "'%s' is empty", param);
    r->tokens = malloc(n * sizeof *r->tokens);
    if (!r->tokens) return oom(e);
    size_t i = 0;
    for (const cJSON *t = a->child; t; t = t->next, i++) {
        const double d = cJSON_IsNumber(t) ? t->valuedouble : -1.0;
        if (!(d >= 0 && d <= INT32_MAX && floor(d) == d))
            return srv_fail(e, 400, INVALID, NULL, param,
                            "'%s[%zu]' must be a token id (an integer >= 0)", param, i);
        r->tokens[i] = (int32_t)d;
    }
    r->n_tokens = n;
    return true;
}

/* prompt: a string, token ids, or a list of one of those */
static bool parse_prompt(const cJSON *o, srv_request *r, srv_error *e) {
    const cJSON *p = field(o, "prompt");
    if (!p) return srv_fail(e, 400, INVALID, NULL, "prompt", "'prompt' is a required property");
    if (cJSON_IsArray(p) && p->child && (cJSON_IsString(p->child) || cJSON_IsArray(p->child))) {
        const int n = cJSON_GetArraySize(p);
        if (n > 1)
            return srv_fail(e, 400, INVALID, "unsupported_parameter", "prompt",
                            "'prompt' holds %d prompts: one prompt per request is supported yet "
                            "by vkllm serve",
                            n);
        p = p->child;
    }
    if (cJSON_IsString(p)) {
        r->prompt_len = strlen(p->valuestring);
        r->prompt = dup_n(p->valuestring, r->prompt_len);
        return r->prompt ? true : oom(e);
    }
    if (cJSON_IsArray(p)) return token_array(p, "prompt", r, e);
    return srv_fail(e, 400, INVALID, NULL, "prompt",
                    "'prompt' must be a string, an array of token ids, or an array of one of "
                    "those");
}

static bool parse_stop(const cJSON *o, const srv_limits *lim, srv_request *r, srv_error *e) {
    const cJSON *s = field(o, "stop");
    if (!s) return true;
    const cJSON *one = cJSON_IsString(s) ? s : NULL;
    if (!one && !cJSON_IsArray(s))
        return bad(e, "stop", "'%s' must be a string or an array of strings%s", "");
    const size_t n = one ? 1 : (size_t)cJSON_GetArraySize(s);
    if (n > lim->max_stop)
        return srv_fail(e, 400, INVALID, NULL, "stop", "'stop' holds %zu strings, at most %u", n,
                        lim->max_stop);
    for (const cJSON *x = one ? one : s->child; x; x = one ? NULL : x->next) {
        if (!cJSON_IsString(x))
            return bad(e, "stop", "'%s' must be a string or an array of strings%s", "");
        const size_t len = strlen(x->valuestring);
        if (len > lim->max_stop_len)
            return srv_fail(e, 400, INVALID, NULL, "stop",
                            "a stop string is %zu bytes, at most %zu", len, lim->max_stop_len);
        if (len == 0) continue; /* never matches */
        if (!(r->stop[r->n_stop] = dup_n(x->valuestring, len))) return oom(e);
        r->n_stop++;
    }
    return true;
}

static bool parse_sampling(const cJSON *o, const srv_limits *lim, srv_request *r, srv_error *e) {
    long long v = 0;
    bool set = false;
    /* max_completion_tokens wins over max_tokens, which wins over llama-server's n_predict */
    static const char *const len_names[] = {"max_completion_tokens", "max_tokens"};
    for (size_t i = 0; i < 2 && !r->max_tokens; i++) {
        if (!get_int(o, len_names[i], 1, lim->max_tokens, &v, &set, e)) return false;
        if (set) r->max_tokens = (int32_t)v;
    }
    if (!r->max_tokens) {
        if (!get_int(o, "n_predict", -1, lim->max_tokens, &v, &set, e)) return false;
        if (set && v == 0)
            return srv_fail(e, 400, INVALID, NULL, "n_predict", "'n_predict' must not be 0");
        if (set && v > 0) r->max_tokens = (int32_t)v;
    }
    vkllm_sampling *s = &r->sampling;
    if (!get_float(o, "temperature", 0.0, 2.0, &s->temperature, NULL, e) ||
        !get_float(o, "top_p", 0.0, 1.0, &s->top_p, NULL, e) ||
        !get_float(o, "min_p", 0.0, 1.0, &s->min_p, NULL, e) ||
        !get_float(o, "repeat_penalty", 0.0, 10.0, &s->repeat_penalty, NULL, e))
        return false;
    /* top_p 0 (OpenAI) and min_p 1 (llama.cpp) keep only the likeliest token, but
     * vkllm_sampling reads those values as "off": the nearest values it does not */
    if (s->top_p == 0.0f) s->top_p = 1e-6f;
    if (s->min_p == 1.0f) s->min_p = nextafterf(1.0f, 0.0f);
    if (!get_int(o, "top_k", 0, INT32_MAX, &v, &set, e)) return false;
    if (set) s->top_k = (int32_t)v;
    if (!get_int(o, "repeat_last_n", 0, 4096, &v, &set, e)) return false;
    if (set) s->repeat_last_n = v ? (int32_t)v : 64;
    /* any 64-bit seed; -1 is llama.cpp's "random" */
    if (!get_int(o, "seed", -9223372036854775808.0, 18446744073709549568.0, &v, &set, e))
        return false;
    if (set && v != -1) {
        s->seed = (uint64_t)v;
        r->seed_set = true;
    }
    return get_float(o, "presence_penalty", -2.0, 2.0, &r->presence_penalty, NULL, e) &&
           get_float(o, "frequency_penalty", -2.0, 2.0, &r->frequency_penalty, NULL, e);
}

/* chat: logprobs (bool) and top_logprobs (0..20, with logprobs only, as OpenAI); completions:
 * logprobs, the number of alternatives (OpenAI's legacy API takes 0..5; 0..20 here, as
 * vLLM's). */
static bool parse_logprobs(const cJSON *o, srv_kind kind, srv_request *r, srv_error *e) {
    long long k = 0;
    bool set = false;
    if (kind == SRV_COMPLETION) {
        if (!get_int(o, "logprobs", 0, VKLLM_TOP_LOGPROBS_MAX, &k, &set, e)) return false;
        r->logprobs = set;
        r->top_logprobs = (uint32_t)k;
        return true;
    }
    if (!get_bool(o, "logprobs", &r->logprobs, e) ||
        !get_int(o, "top_logprobs", 0, VKLLM_TOP_LOGPROBS_MAX, &k, &set, e))
        return false;
    if (k > 0 && !r->logprobs)
        return srv_fail(e, 400, INVALID, NULL, "top_logprobs",
                        "'top_logprobs' needs 'logprobs' set to true");
    r->top_logprobs = (uint32_t)k;
    return true;
}

bool srv_parse_request(srv_kind kind, const char *body, size_t len, const srv_limits *user_lim,
                       srv_request *r, srv_error *e) {
    memset(r, 0, sizeof *r);
    srv_limits lim = user_lim ? *user_lim : (srv_limits){0};
    if (!lim.max_n) lim.max_n = 8;
    if (!lim.max_stop || lim.max_stop > SRV_MAX_STOP)
        lim.max_stop = lim.max_stop ? SRV_MAX_STOP : 4;
    if (!lim.max_stop_len) lim.max_stop_len = 256;
    if (!lim.max_messages) lim.max_messages = 1024;
    if (lim.max_tokens <= 0) lim.max_tokens = 1 << 30;
    cJSON *o = parse_object(body, len, e);
    if (!o) return false;
    r->kind = kind;
    r->sampling = srv_default_sampling();
    r->n = 1;
    bool ok = true;
    const cJSON *m = field(o, "model");
    if (m && !cJSON_IsString(m))
        ok = bad(e, "model", "'%s' must be a string%s", "");
    else if (m && !(r->model = dup_n(m->valuestring, strlen(m->valuestring))))
        ok = oom(e);
    ok = ok && (kind == SRV_CHAT ? parse_messages(o, &lim, r, e) : parse_prompt(o, r, e));
    ok = ok && check_refused(o, kind, e) && parse_response_format(o, r, e) &&
         parse_sampling(o, &lim, r, e) && parse_logprobs(o, kind, r, e) &&
         parse_stop(o, &lim, r, e);
    long long n = 1;
    ok = ok && get_int(o, "n", 1, lim.max_n, &n, NULL, e);
    r->n = (uint32_t)n;
    ok = ok && get_bool(o, "stream", &r->stream, e) && get_bool(o, "ignore_eos", &r->ignore_eos, e);
    const cJSON *so = ok ? field(o, "stream_options") : NULL;
    if (so && !cJSON_IsObject(so))
        ok = bad(e, "stream_options", "'%s' must be an object%s", "");
    else if (so)
        ok = get_bool(so, "include_usage", &r->include_usage, e);
    cJSON_Delete(o);
    if (!ok) srv_request_free(r);
    return ok;
}

void srv_request_free(srv_request *r) {
    if (!r) return;
    free(r->model);
    for (size_t i = 0; i < r->n_messages; i++)
        free((char *)r->messages[i].content);
    free(r->messages);
    free(r->prompt);
    free(r->tokens);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->json_schema);
    memset(r, 0, sizeof *r);
}

/* ---- tokenize, detokenize ---- */

bool srv_parse_tokenize(const char *body, size_t len, srv_tokenize *t, srv_error *e) {
    memset(t, 0, sizeof *t);
    t->parse_special = true;
    cJSON *o = parse_object(body, len, e);
    if (!o) return false;
    const cJSON *c = field(o, "content");
    bool ok = true;
    if (!c)
        ok = srv_fail(e, 400, INVALID, NULL, "content", "'content' is a required property");
    else if (!cJSON_IsString(c))
        ok = bad(e, "content", "'%s' must be a string%s", "");
    ok = ok && get_bool(o, "add_special", &t->add_special, e) &&
         get_bool(o, "parse_special", &t->parse_special, e) &&
         get_bool(o, "with_pieces", &t->with_pieces, e);
    if (ok) {
        t->len = strlen(c->valuestring);
        if (!(t->content = dup_n(c->valuestring, t->len))) ok = oom(e);
    }
    cJSON_Delete(o);
    return ok;
}

bool srv_parse_detokenize(const char *body, size_t len, uint32_t n_vocab, int32_t **ids, size_t *n,
                          srv_error *e) {
    *ids = NULL;
    *n = 0;
    cJSON *o = parse_object(body, len, e);
    if (!o) return false;
    const cJSON *t = field(o, "tokens");
    bool ok = true;
    if (!t)
        ok = srv_fail(e, 400, INVALID, NULL, "tokens", "'tokens' is a required property");
    else if (!cJSON_IsArray(t))
        ok = bad(e, "tokens", "'%s' must be an array of token ids%s", "");
    const size_t cnt = ok ? (size_t)cJSON_GetArraySize(t) : 0;
    int32_t *v = ok ? malloc((cnt ? cnt : 1) * sizeof *v) : NULL;
    if (ok && !v) ok = oom(e);
    size_t i = 0;
    for (const cJSON *x = ok ? t->child : NULL; x && ok; x = x->next, i++) {
        const double d = cJSON_IsNumber(x) ? x->valuedouble : -1.0;
        if (!(d >= 0 && d < (double)n_vocab && floor(d) == d))
            ok = srv_fail(e, 400, INVALID, NULL, "tokens",
                          "'tokens[%zu]' must be a token id in [0, %u)", i, n_vocab);
        else
            v[i] = (int32_t)d;
    }
    cJSON_Delete(o);
    if (!ok) {
        free(v);
        return false;
    }
    *ids = v;
    *n = cnt;
    return true;
}

char *srv_error_json(const srv_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    if (!err) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : INVALID);
    if (e->param[0])
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code)
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ---- text ---- */

/* Length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot start one. */
static size_t seq_len(unsigned char c) {
    return c < 0x80                 ? 1
           : c >= 0xC2 && c <= 0xDF ? 2
           : c >= 0xE0 && c <= 0xEF ? 3
           : c >= 0xF0 && c <= 0xF4 ? 4
                                    : 0;
}

size_t srv_utf8_complete(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = n, back = 0;
    while (i > 0 && back < 3 && (u[i - 1] & 0xC0) == 0x80) /* continuation bytes */
        i--, back++;
    if (i == 0) return n;
    const size_t need = seq_len(u[i - 1]);
    return need > 1 && back + 1 < need ? i - 1 : n;
}

size_t srv_stop_holdback(const char *s, size_t n, char *const *stop, size_t n_stop) {
    size_t hold = 0;
    for (size_t k = 0; k < n_stop; k++) {
        const size_t sl = strlen(stop[k]);
        for (size_t len = sl - (sl > 0); len > hold; len--) /* longest first */
            if (len <= n && memcmp(s + n - len, stop[k], len) == 0) {
                hold = len;
                break;
            }
    }
    return hold;
}

/* The length of a valid UTF-8 sequence at u[0, n) (Unicode 15, table 3-7), or 0. */
static size_t valid_seq(const unsigned char *u, size_t n) {
    const size_t need = seq_len(u[0]);
    if (need == 0 || need > n) return 0;
    if (need == 1) return 1;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (u[0] == 0xE0) lo = 0xA0;
    if (u[0] == 0xED) hi = 0x9F; /* no surrogates */
    if (u[0] == 0xF0) lo = 0x90;
    if (u[0] == 0xF4) hi = 0x8F; /* at most U+10FFFF */
    if (u[1] < lo || u[1] > hi) return 0;
    for (size_t k = 2; k < need; k++)
        if ((u[k] & 0xC0) != 0x80) return 0;
    return need;
}

char *srv_utf8_clean(const char *s, size_t n, size_t *out_len) {
    char *o = malloc(n * 3 + 1); /* each bad byte becomes 3 */
    if (!o) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        const size_t k = valid_seq(u + i, n - i);
        if (k) {
            memcpy(o + j, u + i, k);
            j += k;
            i += k;
        } else {
            memcpy(o + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i++;
        }
    }
    o[j] = '\0';
    if (out_len) *out_len = j;
    return o;
}
