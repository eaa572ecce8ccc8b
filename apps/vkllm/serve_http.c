/* vkllm serve's HTTP side, on libmicrohttpd: one thread per connection (callbacks may block:
 * a connection waits for its answer on its own thread), a connection limit and an idle
 * timeout. Every request passes, in this order: the route (404 unknown path, 405 wrong
 * method), /health (no key), the API key (401), the body limit (413, after the body is read
 * and dropped; a Content-Length far over it is answered before), the model still loading
 * (503), then its endpoint.
 * Completions are in serve_gen.c; the small endpoints (models, tokenize, detokenize, metrics)
 * are here. No HTTP is parsed here: MHD does that. */
#include "serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct srv_conn { /* one HTTP request's state between MHD's calls */
    char *body;
    size_t len, cap;
    bool too_big;
} srv_conn;

enum {
    EP_HEALTH,
    EP_MODELS,
    EP_MODEL,
    EP_CHAT,
    EP_COMPLETIONS,
    EP_TOKENIZE,
    EP_DETOKENIZE,
    EP_METRICS,
    EP_PAGE
};

static const struct {
    const char *path; /* ending in '/': a prefix */
    bool post;
    int ep;
} k_routes[] = {
    {"/health", false, EP_HEALTH},          {"/v1/health", false, EP_HEALTH},
    {"/v1/models", false, EP_MODELS},       {"/models", false, EP_MODELS},
    {"/v1/models/", false, EP_MODEL},       {"/v1/chat/completions", true, EP_CHAT},
    {"/chat/completions", true, EP_CHAT},   {"/v1/completions", true, EP_COMPLETIONS},
    {"/completions", true, EP_COMPLETIONS}, {"/tokenize", true, EP_TOKENIZE},
    {"/detokenize", true, EP_DETOKENIZE},   {"/metrics", false, EP_METRICS},
    {"/index.html", false, EP_PAGE},
};

/* The chat page (apps/vkllm/serve_page.html, embedded by cmake/embed.cmake). */
extern const unsigned char srv_page_html[];
extern const size_t srv_page_html_len;

/* ---- replies ---- */

enum MHD_Result srv_reply_json(struct MHD_Connection *c, unsigned status, char *json) {
    if (!json) {
        static const char k_oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                    "\"server_error\",\"param\":null,\"code\":null}}";
        status = 500;
        json = malloc(sizeof k_oom);
        if (!json) return MHD_NO;
        memcpy(json, k_oom, sizeof k_oom);
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    const enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result srv_reply_error(struct MHD_Connection *c, const srv_error *e) {
    return srv_reply_json(c, (unsigned)e->status, srv_error_json(e));
}

static enum MHD_Result reply_text(struct MHD_Connection *c, const char *type, char *text) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    const enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_cjson(struct MHD_Connection *c, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return srv_reply_json(c, 200, s);
}

bool srv_client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char b;
    const ssize_t k = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    /* 0: the client closed its side; data (a pipelined request) or nothing yet: still there */
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int srv_model_adapter(const char *name) {
    const vkllm_lora *l;
    const size_t n = cli_lora(&l);
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, vkllm_adapter_name(l[i].adapter)) == 0) return (int)i;
    return -1;
}

bool srv_model_known(const srv_server *s, const char *name) {
    return strcmp(name, s->name) == 0 || strcmp(name, s->file_name) == 0 ||
           (s->o.alias && strcmp(name, s->o.alias) == 0) || srv_model_adapter(name) >= 0;
}

/* ---- the small endpoints ---- */

static cJSON *model_entry(const srv_server *s, const char *id) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "vkllm");
    vkllm_model_info mi = {.struct_size = sizeof mi};
    vkllm_model_get_info(s->model, &mi);
    cJSON *meta = cJSON_AddObjectToObject(m, "meta"); /* as llama-server's */
    cJSON_AddNumberToObject(meta, "n_vocab", mi.n_vocab);
    cJSON_AddNumberToObject(meta, "n_ctx_train", mi.n_ctx_train);
    cJSON_AddNumberToObject(meta, "n_ctx", s->n_ctx);
    cJSON_AddNumberToObject(meta, "n_params", (double)mi.n_params);
    cJSON_AddNumberToObject(meta, "size", (double)mi.file_bytes);
    cJSON_AddStringToObject(meta, "type", mi.type ? mi.type : "");
    const int k = srv_model_adapter(id);
    if (k >= 0) { /* a LoRA adapter of the served model: the model field picks it */
        const vkllm_lora *l;
        cli_lora(&l);
        cJSON *ad = cJSON_AddObjectToObject(meta, "lora");
        cJSON_AddStringToObject(ad, "base", s->name);
        cJSON_AddNumberToObject(ad, "rank", vkllm_adapter_rank(l[k].adapter));
        cJSON_AddNumberToObject(ad, "scale", l[k].scale);
    }
    return m;
}

static enum MHD_Result ep_models(srv_server *s, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(d, model_entry(s, s->file_name));
    if (s->o.alias && strcmp(s->o.alias, s->file_name) != 0)
        cJSON_AddItemToArray(d, model_entry(s, s->o.alias));
    const vkllm_lora *l;
    const size_t n = cli_lora(&l);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(d, model_entry(s, vkllm_adapter_name(l[i].adapter)));
    return reply_cjson(c, o);
}

static enum MHD_Result ep_model(srv_server *s, struct MHD_Connection *c, const char *id) {
    if (!srv_model_known(s, id)) {
        srv_error e;
        srv_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                 "The model '%.200s' does not exist (this server has '%s')", id, s->name);
        return srv_reply_error(c, &e);
    }
    return reply_cjson(c, model_entry(s, id));
}

/* A token's text as a JSON string where it is valid UTF-8, else its bytes (llama-server). */
static cJSON *piece_json(const char *p, size_t n) {
    size_t cl = 0;
    char *clean = srv_utf8_clean(p, n, &cl);
    cJSON *v = NULL;
    if (clean && cl == n && memcmp(clean, p, n) == 0) {
        v = cJSON_CreateString(clean);
    } else {
        v = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(v, cJSON_CreateNumber((unsigned char)p[i]));
    }
    free(clean);
    return v;
}

static enum MHD_Result ep_tokenize(srv_server *s, struct MHD_Connection *c, const srv_conn *sc) {
    srv_tokenize t;
    srv_error e;
    if (!srv_parse_tokenize(sc->body, sc->len, &t, &e)) return srv_reply_error(c, &e);
    const uint32_t flags = (t.add_special ? VKLLM_TOKENIZE_ADD_SPECIAL : 0) |
                           (t.parse_special ? VKLLM_TOKENIZE_PARSE_SPECIAL : 0);
    size_t n = 0;
    vkllm_status st = vkllm_tokenize(s->model, t.content, t.len, flags, NULL, 0, &n);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (ids && (st == VKLLM_OK || st == VKLLM_ERR_BUFFER_TOO_SMALL))
        st = vkllm_tokenize(s->model, t.content, t.len, flags, ids, n, &n);
    free(t.content);
    if (!ids || st != VKLLM_OK) {
        free(ids);
        srv_fail(&e, 500, "server_error", NULL, NULL, "tokenize failed: %s", vkllm_status_str(st));
        return srv_reply_error(c, &e);
    }
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++) {
        if (!t.with_pieces) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            continue;
        }
        char piece[256];
        size_t pl = 0;
        vkllm_token_to_piece(s->model, ids[i], true, piece, sizeof piece, &pl);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "id", ids[i]);
        cJSON_AddItemToObject(x, "piece", piece_json(piece, pl < sizeof piece ? pl : sizeof piece));
        cJSON_AddItemToArray(a, x);
    }
    free(ids);
    return reply_cjson(c, o);
}

static enum MHD_Result ep_detokenize(srv_server *s, struct MHD_Connection *c, const srv_conn *sc) {
    int32_t *ids = NULL;
    size_t n = 0, need = 0;
    srv_error e;
    if (!srv_parse_detokenize(sc->body, sc->len, s->n_vocab, &ids, &n, &e))
        return srv_reply_error(c, &e);
    vkllm_status st = vkllm_detokenize(s->model, ids, n, true, NULL, 0, &need);
    char *text = malloc(need + 1);
    if (text && (st == VKLLM_OK || st == VKLLM_ERR_BUFFER_TOO_SMALL))
        st = vkllm_detokenize(s->model, ids, n, true, text, need + 1, &need);
    free(ids);
    if (!text || st != VKLLM_OK) {
        free(text);
        srv_fail(&e, 500, "server_error", NULL, NULL, "detokenize failed: %s",
                 vkllm_status_str(st));
        return srv_reply_error(c, &e);
    }
    size_t cl = 0;
    char *clean = srv_utf8_clean(text, need, &cl);
    free(text);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", clean ? clean : "");
    free(clean);
    return reply_cjson(c, o);
}

/* Prometheus text format (version 0.0.4). */
static enum MHD_Result ep_metrics(srv_server *s, struct MHD_Connection *c) {
    vkllm_engine_stats st = {.struct_size = sizeof st};
    vkllm_engine_get_stats(s->engine, &st);
    enum { CAP = 16384 }; /* the counters and four histograms fit with room to spare */
    char *t = malloc(CAP);
    if (!t) return MHD_NO;
    size_t n = 0;
#define METRIC(name, kind, help, v)                                                                \
    n += (size_t)snprintf(t + n, CAP - n,                                                          \
                          "# HELP vkllm_" name " " help "\n# TYPE vkllm_" name " " kind            \
                          "\nvkllm_" name " %llu\n",                                               \
                          (unsigned long long)(v))
    METRIC("http_requests_total", "counter", "HTTP requests received", atomic_load(&s->n_http));
    METRIC("requests_total", "counter", "completion requests admitted",
           atomic_load(&s->n_completions));
    METRIC("requests_rejected_total", "counter", "completion requests refused with 429",
           atomic_load(&s->n_rejected));
    METRIC("requests_disconnected_total", "counter", "requests whose client went away",
           atomic_load(&s->n_disconnected));
    METRIC("prompt_tokens_total", "counter", "prompt tokens of finished requests, not cached",
           atomic_load(&s->n_prompt_tokens));
    METRIC("generated_tokens_total", "counter", "tokens generated for finished requests",
           atomic_load(&s->n_gen_tokens));
    METRIC("requests_inflight", "gauge", "engine requests submitted and not yet freed",
           (unsigned long long)atomic_load(&s->inflight));
    METRIC("requests_running", "gauge", "sequences the engine runs", st.running);
    METRIC("requests_waiting", "gauge", "requests queued in the engine", st.waiting);
    METRIC("engine_steps_total", "counter", "engine steps", st.steps);
    METRIC("tokens_prefilled_total", "counter", "prompt tokens run", st.tokens_prefilled);
    METRIC("tokens_decoded_total", "counter", "tokens sampled", st.tokens_decoded);
    METRIC("tokens_cached_total", "counter", "prompt tokens from the prefix cache",
           st.tokens_cached);
    METRIC("preemptions_total", "counter", "sequences preempted", st.preemptions);
    METRIC("kv_pages_total", "gauge", "KV cache pages", st.pages_total);
    METRIC("kv_pages_used", "gauge", "KV cache pages in use", st.pages_used);
    METRIC("kv_pages_cached", "gauge", "unused KV pages kept in the prefix cache", st.pages_cached);
#undef METRIC
    /* both counts over finished engine requests (every choice), so the ratio never passes 1 */
    const unsigned long long seen = atomic_load(&s->n_prompt_seen),
                             cached = atomic_load(&s->n_prompt_cached);
    n += (size_t)snprintf(t + n, CAP - n,
                          "# HELP vkllm_prefix_cache_hit_ratio prompt tokens the prefix cache "
                          "held, of all prompt tokens of finished requests\n"
                          "# TYPE vkllm_prefix_cache_hit_ratio gauge\n"
                          "vkllm_prefix_cache_hit_ratio %.6f\n",
                          seen ? (double)cached / (double)seen : 0.0);
    n = srv_metrics_text(&s->metrics, t, CAP, n);
    if (n >= CAP) { /* never with these metrics; a cut reply would parse wrongly */
        free(t);
        srv_error e;
        srv_fail(&e, 500, "server_error", NULL, NULL, "the metrics do not fit %d bytes", CAP);
        return srv_reply_error(c, &e);
    }
    return reply_text(c, "text/plain; version=0.0.4", t);
}

/* The chat page: one file, its CSS and JS inline, nothing loaded from elsewhere (the CSP says
 * so to the browser); it talks to this server's own /v1 endpoints. no-cache: the browser asks
 * again each time, so a new binary's page is never hidden behind an old copy. */
static enum MHD_Result ep_page(struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        srv_page_html_len, (void *)srv_page_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src "
                            "'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    const enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- routing ---- */

/* A constant-time comparison: the key's bytes do not leak through the reply's timing. */
static bool key_ok(const char *want, const char *auth) {
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) return false;
    const char *got = auth + 7;
    const size_t a = strlen(want), b = strlen(got);
    unsigned char d = a != b;
    for (size_t i = 0; i < a; i++)
        d |= (unsigned char)(want[i] ^ got[i < b ? i : 0]);
    return d == 0;
}

static enum MHD_Result route(srv_server *s, struct MHD_Connection *c, const char *url,
                             const char *method, srv_conn *sc) {
    srv_error e;
    int ep = strcmp(url, "/") == 0 ? EP_PAGE : -1; /* "/" would be a prefix in k_routes */
    bool post = false;
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0] && ep < 0; i++) {
        const size_t pl = strlen(k_routes[i].path);
        const bool prefix = k_routes[i].path[pl - 1] == '/';
        if (prefix ? strncmp(url, k_routes[i].path, pl) == 0 && url[pl]
                   : strcmp(url, k_routes[i].path) == 0)
            ep = k_routes[i].ep, post = k_routes[i].post;
    }
    if (ep < 0) {
        srv_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "Invalid URL (%.16s %.200s)", method, url);
        return srv_reply_error(c, &e);
    }
    const bool is_post = strcmp(method, "POST") == 0;
    const bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (post ? !is_post : !is_get) {
        srv_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                 "Method %.16s is not allowed for %.200s (use %s)", method, url,
                 post ? "POST" : "GET");
        struct MHD_Response *r = NULL;
        char *json = srv_error_json(&e);
        if (json) r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(json);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Allow", post ? "POST" : "GET, HEAD");
        const enum MHD_Result ret = MHD_queue_response(c, 405, r);
        MHD_destroy_response(r);
        return ret;
    }
    const int state = atomic_load(&s->state);
    /* the page needs no key (it has a field for it, and sends it with its API calls) and is
     * there while the model loads */
    if (ep == EP_PAGE) return ep_page(c);
    if (ep == EP_HEALTH) {
        if (state == SRV_READY) {
            char *ok = malloc(16);
            if (!ok) return MHD_NO;
            memcpy(ok, "{\"status\":\"ok\"}", 16);
            return srv_reply_json(c, 200, ok);
        }
    } else if (s->o.api_key &&
               !key_ok(s->o.api_key, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                                 MHD_HTTP_HEADER_AUTHORIZATION))) {
        const bool none =
            !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        srv_fail(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                 none ? "You didn't provide an API key: send it in an 'Authorization: Bearer "
                        "KEY' header"
                      : "Incorrect API key provided");
        return srv_reply_error(c, &e);
    }
    if (sc->too_big) {
        srv_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                 "The request body is larger than %zu bytes (vkllm serve --max-body)",
                 s->o.max_body);
        return srv_reply_error(c, &e);
    }
    if (state != SRV_READY) {
        srv_fail(&e, 503, "unavailable_error", NULL, NULL,
                 state == SRV_LOADING ? "Loading model" : "The server is shutting down");
        return srv_reply_error(c, &e);
    }
    switch (ep) {
    case EP_MODELS:
        return ep_models(s, c);
    case EP_MODEL:
        return ep_model(s, c, url + strlen("/v1/models/"));
    case EP_CHAT:
        return srv_completions(s, c, SRV_CHAT, sc->body, sc->len);
    case EP_COMPLETIONS:
        return srv_completions(s, c, SRV_COMPLETION, sc->body, sc->len);
    case EP_TOKENIZE:
        return ep_tokenize(s, c, sc);
    case EP_DETOKENIZE:
        return ep_detokenize(s, c, sc);
    default:
        return ep_metrics(s, c);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    srv_server *s = cls;
    srv_conn *sc = *con_cls;
    if (!sc) { /* the headers are in */
        sc = calloc(1, sizeof *sc);
        if (!sc) return MHD_NO;
        *con_cls = sc;
        atomic_fetch_add(&s->n_http, 1);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (len > s->o.max_body) {
            /* 413 after the body is read and dropped, so that the client, which sends it
             * before it reads the reply, gets the reply; one far too large is answered now
             * and the connection closed */
            sc->too_big = true;
            const unsigned long long drain = 16ull * s->o.max_body;
            if (len > (drain > (64ull << 20) ? drain : 64ull << 20))
                return route(s, c, url, method, sc);
        }
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (!sc->too_big && sc->len + *upload_size > s->o.max_body) {
            sc->too_big = true; /* chunked, no length: read on, keep nothing */
            free(sc->body);
            sc->body = NULL;
            sc->len = sc->cap = 0;
        }
        if (!sc->too_big) {
            if (sc->len + *upload_size + 1 > sc->cap) {
                size_t cap = sc->cap ? sc->cap : 4096;
                while (cap < sc->len + *upload_size + 1)
                    cap *= 2;
                char *b = realloc(sc->body, cap);
                if (!b) return MHD_NO;
                sc->body = b;
                sc->cap = cap;
            }
            memcpy(sc->body + sc->len, upload, *upload_size);
            sc->len += *upload_size;
            sc->body[sc->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(s, c, url, method, sc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    srv_server *s = cls;
    srv_conn *sc = *con_cls;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && s->o.cli.verbose)
        fprintf(stderr, "vkllm serve: a request ended early (%s)\n",
                toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT      ? "the client went away"
                : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                : "error");
    if (sc) {
        free(sc->body);
        free(sc);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    fprintf(stderr, "vkllm serve: http: ");
    vfprintf(stderr, fmt, ap);
}

struct MHD_Daemon *srv_http_start(srv_server *s, int *port_out) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    const int gai = getaddrinfo(s->o.host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "error: --host %s: %s\n", s->o.host, gai_strerror(gai));
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (s->o.cli.verbose) flags |= MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->o.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        fprintf(stderr, "error: cannot listen on %s port %d: %s\n", s->o.host, s->o.port,
                errno ? strerror(errno) : "libmicrohttpd failed");
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = di && di->port ? di->port : s->o.port;
    return d;
}
