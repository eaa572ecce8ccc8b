/* vkllm serve: chat and text completions on the engine. A job is one HTTP request: n engine
 * requests (choices) with the same prompt; choice 0 goes first and the others follow once its
 * prompt is in the KV cache (its first token), so they take the prompt from the prefix cache.
 *
 * Threads. MHD runs each connection on a thread of its own, which waits here (a timed wait on
 * the job's condition variable, so that it also notices a client that went away, or the
 * server stopping); the engine thread's on_token appends each piece to its choice under the
 * job's lock and signals. A request's end is seen by polling vkllm_request_done at each wake.
 * Streams are written by MHD's content reader (the same connection thread): each delta holds
 * only text that cannot be the start of a stop string and ends on a UTF-8 boundary; at a
 * choice's end the rest of the engine's final text (a stop string already cut off) follows.
 * A client that disconnects cancels its requests at once; they are freed when MHD lets go of
 * the response (its free callback), or here for answers that are not streamed.
 *
 * Log-probabilities: on_logprobs records each sampled token's figures with the offset where
 * its text starts in the choice's pieces (it runs just before that token's on_token). A token
 * is reported with the text it starts in: a delta carries the tokens that start before its
 * end; the whole answer, those that start inside its final text, and at its very end those of
 * an answer cut by length (an end-of-generation token, or one past a stop string, is not part
 * of the answer). So a stream reports the same tokens as the answer that is not streamed. */
#include "serve.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define WAIT_MS 40 /* how often a waiting connection checks its client and the server */

typedef struct gen_job gen_job;

/* One sampled token's log-probabilities (on_logprobs). */
typedef struct gen_lp {
    int32_t token;
    float logprob;
    uint32_t n_top;
    size_t offset; /* where its text starts in the choice's pieces: bytes, and characters */
    size_t char_offset;
    vkllm_token_logprob top[VKLLM_TOP_LOGPROBS_MAX];
} gen_lp;

typedef struct gen_choice {
    gen_job *job;
    uint32_t index;
    vkllm_request *req; /* NULL until submitted */
    char *got;          /* the pieces on_token gave (under job->mu) */
    size_t n_got, cap_got;
    size_t n_chars; /* characters (UTF-8 sequences begun) in got */
    size_t sent;    /* bytes of the text already streamed */
    bool finished;  /* its last chunk is written (streams) */
    gen_lp *lp;     /* what on_logprobs gave (under job->mu), n_lp_sent of them streamed */
    size_t n_lp, cap_lp, n_lp_sent;
    bool lp_oom; /* on_logprobs could not keep one: the request stops, the answer is a 500 */
} gen_choice;

struct gen_job {
    srv_server *s;
    struct MHD_Connection *conn;
    srv_request rq;
    uint64_t seed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gen_choice *ch;
    uint32_t n_submitted;
    bool gone; /* the client disconnected, or the server stops: cancelled */
    char id[64];
    long long created;
    /* the stream's bytes not yet handed to MHD */
    char *out;
    size_t out_len, out_off, out_cap;
    bool started, ended;
    double t_admit; /* srv_now() at admission: /metrics' request duration */
};

static void job_free(gen_job *j) {
    if (!j) return;
    srv_timing tm = {.duration = srv_now() - j->t_admit};
    for (uint32_t i = 0; j->ch && i < j->rq.n; i++) { /* the token counters of /metrics */
        vkllm_request_result r = {.struct_size = sizeof r};
        if (!j->ch[i].req || !vkllm_request_done(j->ch[i].req)) continue;
        vkllm_request_wait(j->ch[i].req, &r);
        atomic_fetch_add(&j->s->n_prompt_tokens, i == 0 ? r.n_prompt - r.n_cached : 0);
        atomic_fetch_add(&j->s->n_gen_tokens, r.n_generated);
        atomic_fetch_add(&j->s->n_prompt_seen, r.n_prompt);
        atomic_fetch_add(&j->s->n_prompt_cached, r.n_cached);
        srv_timing_add(&tm, i, &r);
    }
    srv_metrics_observe(&j->s->metrics, &tm);
    for (uint32_t i = 0; j->ch && i < j->rq.n; i++) {
        vkllm_request_free(j->ch[i].req); /* cancels it if it still runs */
        free(j->ch[i].got);
        free(j->ch[i].lp);
    }
    atomic_fetch_sub(&j->s->inflight, (int)j->rq.n);
    free(j->ch);
    free(j->out);
    srv_request_free(&j->rq);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static void job_cancel(gen_job *j) {
    j->gone = true;
    for (uint32_t i = 0; i < j->n_submitted; i++)
        vkllm_request_cancel(j->ch[i].req);
}

static bool on_token(void *user, int32_t tok, const char *piece, size_t len) {
    (void)tok;
    gen_choice *c = user;
    gen_job *j = c->job;
    pthread_mutex_lock(&j->mu);
    if (c->n_got + len + 1 > c->cap_got) {
        size_t cap = c->cap_got ? c->cap_got * 2 : 256;
        while (cap < c->n_got + len + 1)
            cap *= 2;
        char *g = realloc(c->got, cap);
        if (!g) {
            pthread_mutex_unlock(&j->mu);
            return false;
        }
        c->got = g;
        c->cap_got = cap;
    }
    memcpy(c->got + c->n_got, piece, len);
    c->n_got += len;
    for (size_t k = 0; k < len; k++) /* lead bytes: text_offset counts characters */
        c->n_chars += ((unsigned char)piece[k] & 0xC0) != 0x80;
    const bool go = !j->gone && !c->lp_oom;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return go;
}

static void on_logprobs(void *user, int32_t tok, float logprob, const vkllm_token_logprob *top,
                        uint32_t n_top) {
    gen_choice *c = user;
    pthread_mutex_lock(&c->job->mu);
    if (c->n_lp == c->cap_lp) {
        const size_t cap = c->cap_lp ? c->cap_lp * 2 : 64;
        gen_lp *g = realloc(c->lp, cap * sizeof *g);
        if (!g) {
            c->lp_oom = true; /* its on_token stops the request */
            pthread_mutex_unlock(&c->job->mu);
            return;
        }
        c->lp = g;
        c->cap_lp = cap;
    }
    gen_lp *e = &c->lp[c->n_lp++];
    *e = (gen_lp){.token = tok,
                  .logprob = logprob,
                  .n_top = n_top,
                  .offset = c->n_got,
                  .char_offset = c->n_chars};
    memcpy(e->top, top, n_top * sizeof *top);
    pthread_mutex_unlock(&c->job->mu);
}

/* Submits choice i (without the job's lock: tokenizing takes a while). */
static vkllm_status submit(gen_job *j, uint32_t i, srv_error *err) {
    const srv_request *q = &j->rq;
    vkllm_request_desc d = {
        .struct_size = sizeof d,
        .json_schema = q->json_schema,
        .prompt = q->prompt,
        .prompt_len = q->prompt_len,
        .tokens = q->tokens,
        .n_tokens = q->n_tokens,
        .messages = q->messages,
        .n_messages = q->n_messages,
        .max_tokens = q->max_tokens,
        .ignore_eog = q->ignore_eos,
        .sampling = q->sampling,
        .stop = (const char *const *)q->stop,
        .n_stop = q->n_stop,
        .on_token = on_token,
        .user = &j->ch[i],
        .presence_penalty = q->presence_penalty,
        .frequency_penalty = q->frequency_penalty,
        .on_logprobs = q->logprobs ? on_logprobs : NULL,
        .top_logprobs = q->top_logprobs,
    };
    d.sampling.seed = j->seed + i; /* n > 1: different answers, reproducible from one seed */
    const int ad = q->model ? srv_model_adapter(q->model) : -1;
    if (ad >= 0) { /* the model field names one of the --lora adapters */
        const vkllm_lora *l;
        cli_lora(&l);
        d.lora = &l[ad];
        d.n_lora = 1;
    }
    vkllm_request *r = NULL;
    const vkllm_status st = vkllm_submit(j->s->engine, &d, &r);
    const char *param = q->kind == SRV_CHAT ? "messages" : "prompt";
    /* the library checks the schema (vkllm_request_desc.json_schema) and says so */
    if (st == VKLLM_ERR_INVALID_ARG && q->json_schema &&
        strncmp(vkllm_engine_last_error(j->s->engine), "json schema:", 12) == 0)
        param = "response_format";
    if (st == VKLLM_ERR_CONTEXT_FULL)
        srv_fail(err, 400, "invalid_request_error", "context_length_exceeded", param,
                 "This model's maximum context length is %u tokens; your prompt is longer "
                 "(vkllm serve -c sets the context).",
                 j->s->n_ctx);
    else if (st == VKLLM_ERR_INVALID_ARG)
        srv_fail(err, 400, "invalid_request_error", NULL, param, "%s",
                 vkllm_engine_last_error(j->s->engine));
    else if (st != VKLLM_OK)
        srv_fail(err, 500, "server_error", NULL, NULL, "the engine failed: %s",
                 vkllm_status_str(st));
    pthread_mutex_lock(&j->mu);
    j->ch[i].req = r;
    if (st == VKLLM_OK) j->n_submitted = i + 1;
    pthread_mutex_unlock(&j->mu);
    return st;
}

/* Submits the choices after the first once its prompt is in the cache. Called with j->mu
 * held; may drop it meanwhile. false: a submission failed (*err). */
static bool submit_rest(gen_job *j, srv_error *err) {
    while (j->n_submitted < j->rq.n && j->n_submitted > 0 &&
           (j->ch[0].n_got > 0 || vkllm_request_done(j->ch[0].req))) {
        const uint32_t i = j->n_submitted;
        pthread_mutex_unlock(&j->mu);
        const vkllm_status st = submit(j, i, err);
        pthread_mutex_lock(&j->mu);
        if (st != VKLLM_OK) return false;
    }
    return true;
}

static bool all_done(const gen_job *j) {
    if (j->n_submitted < j->rq.n) return false;
    for (uint32_t i = 0; i < j->rq.n; i++)
        if (!vkllm_request_done(j->ch[i].req)) return false;
    return true;
}

/* Waits a little for the engine (j->mu held). false: the client went away or the server
 * stops; the job is cancelled then. */
static bool job_wait(gen_job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    if (!j->gone && srv_client_gone(j->conn)) {
        atomic_fetch_add(&j->s->n_disconnected, 1);
        job_cancel(j);
    } else if (!j->gone && atomic_load(&j->s->state) == SRV_STOPPING) {
        job_cancel(j);
    }
    return !j->gone;
}

static const char *finish_reason(vkllm_stop_reason r) {
    return r == VKLLM_STOP_MAX_TOKENS || r == VKLLM_STOP_CONTEXT ? "length" : "stop";
}

/* ---- JSON ---- */

static cJSON *head(const gen_job *j, bool chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object",
                            j->rq.kind == SRV_CHAT
                                ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->rq.model ? j->rq.model : j->s->name);
    cJSON_AddStringToObject(o, "system_fingerprint", j->s->fingerprint);
    return o;
}

/* A text made valid UTF-8 (an answer may end inside a character, or hold stray bytes). */
static cJSON *text_json(const char *t, size_t n) {
    size_t len = 0;
    char *clean = srv_utf8_clean(t ? t : "", t ? n : 0, &len);
    cJSON *v = cJSON_CreateString(clean ? clean : "");
    free(clean);
    return v;
}

/* ---- log-probabilities as JSON ---- */

/* A token's text (special tokens rendered: an alternative <|im_end|> says the answer could
 * end there) into buf; its length. */
static size_t token_text(const gen_job *j, int32_t tok, char *buf, size_t cap) {
    size_t n = 0;
    if (vkllm_token_to_piece(j->s->model, tok, true, buf, cap, &n) != VKLLM_OK && n <= cap) n = 0;
    return n < cap ? n : cap;
}

/* OpenAI's figure: -9999 stands for -inf (JSON has no infinities) */
static double lp_value(float lp) {
    return lp > -9999.0f ? (double)lp : -9999.0;
}

/* chat: {"token", "logprob", "bytes"} (the exact bytes, where token is not valid UTF-8) */
static cJSON *chat_token_json(const gen_job *j, int32_t tok, float lp) {
    char buf[512];
    const size_t n = token_text(j, tok, buf, sizeof buf);
    cJSON *o = cJSON_CreateObject(), *b = cJSON_CreateArray();
    cJSON_AddItemToObject(o, "token", text_json(buf, n));
    cJSON_AddNumberToObject(o, "logprob", lp_value(lp));
    for (size_t k = 0; k < n; k++)
        cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)buf[k]));
    cJSON_AddItemToObject(o, "bytes", b);
    return o;
}

/* choices[].logprobs for entries [from, to) of a choice: chat's {"content": [...],
 * "refusal": null}, completions' {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
 * NULL (JSON null) when the request did not ask for them. */
static cJSON *lp_json(const gen_job *j, const gen_choice *c, size_t from, size_t to) {
    if (!j->rq.logprobs) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (j->rq.kind == SRV_CHAT) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t i = from; i < to; i++) {
            const gen_lp *e = &c->lp[i];
            cJSON *t = chat_token_json(j, e->token, e->logprob);
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (uint32_t k = 0; k < e->n_top; k++)
                cJSON_AddItemToArray(top, chat_token_json(j, e->top[k].token, e->top[k].logprob));
            cJSON_AddItemToArray(content, t);
        }
        cJSON_AddNullToObject(o, "refusal");
        return o;
    }
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (size_t i = from; i < to; i++) {
        const gen_lp *e = &c->lp[i];
        char buf[512];
        size_t n = token_text(j, e->token, buf, sizeof buf);
        cJSON_AddItemToArray(toks, text_json(buf, n));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(lp_value(e->logprob)));
        cJSON *d = cJSON_CreateObject();
        for (uint32_t k = 0; k < e->n_top; k++) {
            n = token_text(j, e->top[k].token, buf, sizeof buf);
            char *key = srv_utf8_clean(buf, n, NULL);
            /* two ids with one text: the more likely one stands for both */
            if (key && !cJSON_GetObjectItemCaseSensitive(d, key))
                cJSON_AddNumberToObject(d, key, lp_value(e->top[k].logprob));
            free(key);
        }
        cJSON_AddItemToArray(tops, d);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)e->char_offset));
    }
    return o;
}

/* The entries reported with a choice's final text of len bytes (see the top of the file). */
static size_t lp_final(const gen_choice *c, size_t len, vkllm_stop_reason stop) {
    const bool cut = stop == VKLLM_STOP_EOG || stop == VKLLM_STOP_STRING;
    size_t n = 0;
    while (n < c->n_lp && (c->lp[n].offset < len || (c->lp[n].offset == len && !cut)))
        n++;
    return n;
}

/* The entries whose text starts before byte `safe` of the pieces, from n_lp_sent on. */
static size_t lp_before(const gen_choice *c, size_t safe) {
    size_t n = c->n_lp_sent;
    while (n < c->n_lp && c->lp[n].offset < safe)
        n++;
    return n;
}

static void add_usage(cJSON *o, const gen_job *j) {
    vkllm_request_result r0 = {.struct_size = sizeof r0};
    uint64_t gen = 0;
    for (uint32_t i = 0; i < j->rq.n; i++) {
        vkllm_request_result r = {.struct_size = sizeof r};
        vkllm_request_wait(j->ch[i].req, &r); /* done: returns at once */
        if (i == 0) r0 = r;
        gen += r.n_generated;
    }
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r0.n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(r0.n_prompt + gen));
    cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(pd, "cached_tokens", r0.n_cached);
}

/* One choice of a chunk: delta text (NULL: none), finish reason (NULL: null), logprobs
 * (taken; NULL: null). */
static char *chunk(const gen_job *j, uint32_t index, const char *text, size_t n, bool role,
                   const char *finish, cJSON *logprobs) {
    cJSON *o = head(j, true), *cs = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cs, c);
    cJSON_AddNumberToObject(c, "index", index);
    if (j->rq.kind == SRV_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text) cJSON_AddItemToObject(d, "content", text_json(text, n));
    } else {
        cJSON_AddItemToObject(c, "text", text_json(text, text ? n : 0));
    }
    if (logprobs)
        cJSON_AddItemToObject(c, "logprobs", logprobs);
    else
        cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    if (j->rq.include_usage) cJSON_AddNullToObject(o, "usage");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- streams ---- */

static void out_add(gen_job *j, const char *a, size_t n) {
    if (j->out_len + n > j->out_cap) {
        size_t cap = j->out_cap ? j->out_cap * 2 : 4096;
        while (cap < j->out_len + n)
            cap *= 2;
        char *o = realloc(j->out, cap);
        if (!o) return; /* the reader ends the stream when nothing is written */
        j->out = o;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, a, n);
    j->out_len += n;
}

/* One Server-Sent Event: "data: JSON\n\n" (takes json). */
static void out_event(gen_job *j, char *json) {
    if (!json) return;
    out_add(j, "data: ", 6);
    out_add(j, json, strlen(json));
    out_add(j, "\n\n", 2);
    free(json);
}

/* Writes what the choices have to say (j->mu held). */
static void stream_fill(gen_job *j) {
    if (!j->started) {
        j->started = true;
        if (j->rq.kind == SRV_CHAT)
            for (uint32_t i = 0; i < j->rq.n; i++)
                out_event(j, chunk(j, i, "", 0, true, NULL, NULL));
    }
    bool all = j->n_submitted == j->rq.n;
    for (uint32_t i = 0; i < j->n_submitted; i++) {
        gen_choice *c = &j->ch[i];
        if (c->finished) continue;
        if (vkllm_request_done(c->req)) {
            vkllm_request_result r = {.struct_size = sizeof r};
            vkllm_request_wait(c->req, &r);
            size_t len = 0;
            const char *t = vkllm_request_text(c->req, &len);
            if (r.status != VKLLM_OK || c->lp_oom) {
                srv_error e;
                srv_fail(&e, 500, "server_error", NULL, NULL, "the request failed: %s",
                         vkllm_status_str(c->lp_oom ? VKLLM_ERR_OUT_OF_MEMORY : r.status));
                out_event(j, srv_error_json(&e));
                j->ended = true;
                return;
            }
            const size_t n_lp = lp_final(c, len, r.stop);
            if (len > c->sent || n_lp > c->n_lp_sent)
                out_event(j, chunk(j, i, t + c->sent, len > c->sent ? len - c->sent : 0, false,
                                   NULL, lp_json(j, c, c->n_lp_sent, n_lp)));
            c->sent = len > c->sent ? len : c->sent;
            c->n_lp_sent = n_lp;
            out_event(j, chunk(j, i, j->rq.kind == SRV_CHAT ? NULL : "", 0, false,
                               finish_reason(r.stop), NULL));
            c->finished = true;
            continue;
        }
        all = false;
        size_t safe = c->n_got - srv_stop_holdback(c->got, c->n_got, j->rq.stop, j->rq.n_stop);
        safe = srv_utf8_complete(c->got, safe);
        if (safe > c->sent) {
            const size_t n_lp = lp_before(c, safe);
            out_event(j, chunk(j, i, c->got + c->sent, safe - c->sent, false, NULL,
                               lp_json(j, c, c->n_lp_sent, n_lp)));
            c->sent = safe;
            c->n_lp_sent = n_lp;
        }
    }
    if (all && !j->ended) {
        if (j->rq.include_usage) {
            cJSON *o = head(j, true);
            cJSON_AddArrayToObject(o, "choices");
            add_usage(o, j);
            out_event(j, cJSON_PrintUnformatted(o));
            cJSON_Delete(o);
        }
        out_add(j, "data: [DONE]\n\n", 14);
        j->ended = true;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen_job *j = cls;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->out_off < j->out_len) {
            const size_t k = j->out_len - j->out_off < max ? j->out_len - j->out_off : max;
            memcpy(buf, j->out + j->out_off, k);
            j->out_off += k;
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)k;
        }
        j->out_off = j->out_len = 0;
        if (j->ended || j->gone) {
            const bool ok = j->ended && !j->gone;
            pthread_mutex_unlock(&j->mu);
            return ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
        }
        srv_error err;
        if (!submit_rest(j, &err)) {
            out_event(j, srv_error_json(&err));
            j->ended = true;
            continue;
        }
        stream_fill(j);
        if (j->out_len || j->ended) continue;
        job_wait(j);
    }
}

static void stream_free(void *cls) {
    gen_job *j = cls;
    pthread_mutex_lock(&j->mu);
    if (!j->ended && !j->gone) { /* the connection ended before the stream did */
        atomic_fetch_add(&j->s->n_disconnected, 1);
        job_cancel(j);
    }
    pthread_mutex_unlock(&j->mu);
    job_free(j);
}

/* ---- the whole answer at once ---- */

static char *answer_json(gen_job *j) {
    cJSON *o = head(j, false), *cs = cJSON_AddArrayToObject(o, "choices");
    for (uint32_t i = 0; i < j->rq.n; i++) {
        vkllm_request_result r = {.struct_size = sizeof r};
        vkllm_request_wait(j->ch[i].req, &r);
        size_t len = 0;
        const char *t = vkllm_request_text(j->ch[i].req, &len);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(cs, c);
        cJSON_AddNumberToObject(c, "index", i);
        if (j->rq.kind == SRV_CHAT) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddItemToObject(m, "content", text_json(t, len));
            cJSON_AddNullToObject(m, "refusal");
        } else {
            cJSON_AddItemToObject(c, "text", text_json(t, len));
        }
        cJSON *lp = lp_json(j, &j->ch[i], 0, lp_final(&j->ch[i], len, r.stop));
        if (lp)
            cJSON_AddItemToObject(c, "logprobs", lp);
        else
            cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", finish_reason(r.stop));
    }
    add_usage(o, j);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The first failed status of the choices, VKLLM_OK if none. */
static vkllm_status failed(const gen_job *j) {
    for (uint32_t i = 0; i < j->rq.n; i++) {
        vkllm_request_result r = {.struct_size = sizeof r};
        if (vkllm_request_wait(j->ch[i].req, &r) != VKLLM_OK) return r.status;
        if (j->ch[i].lp_oom) return VKLLM_ERR_OUT_OF_MEMORY;
    }
    return VKLLM_OK;
}

enum MHD_Result srv_completions(srv_server *s, struct MHD_Connection *conn, srv_kind kind,
                                const char *body, size_t len) {
    srv_error err;
    gen_job *j = calloc(1, sizeof *j);
    if (!j) return srv_reply_json(conn, 500, NULL);
    if (!srv_parse_request(kind, body, len, &s->lim, &j->rq, &err)) {
        free(j);
        return srv_reply_error(conn, &err);
    }
    if (j->rq.model && !srv_model_known(s, j->rq.model)) {
        srv_fail(&err, 404, "invalid_request_error", "model_not_found", "model",
                 "The model '%.200s' does not exist (this server has '%s')", j->rq.model, s->name);
        srv_request_free(&j->rq);
        free(j);
        return srv_reply_error(conn, &err);
    }
    /* admission: the engine queues up to --queue requests beyond --parallel, then 429 */
    const int n = (int)j->rq.n;
    if (atomic_fetch_add(&s->inflight, n) + n > s->max_inflight) {
        atomic_fetch_sub(&s->inflight, n);
        atomic_fetch_add(&s->n_rejected, 1);
        srv_request_free(&j->rq);
        free(j);
        srv_fail(&err, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                 "The server is busy: %d sequences run and %d wait (vkllm serve --parallel, "
                 "--queue); try again later",
                 s->parallel, s->o.queue);
        return srv_reply_error(conn, &err);
    }
    atomic_fetch_add(&s->n_completions, 1);
    j->t_admit = srv_now();
    j->s = s;
    j->conn = conn;
    j->created = (long long)time(NULL);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    uint8_t rnd[16] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) { /* no entropy: the clock */
        const uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)clock() << 32 ^ (uintptr_t)j;
        memcpy(rnd, &t, sizeof t);
    }
    int k = snprintf(j->id, sizeof j->id, "%s", kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
    for (size_t i = 0; i < 12; i++)
        k += snprintf(j->id + k, sizeof j->id - (size_t)k, "%02x", rnd[i]);
    memcpy(&j->seed, rnd + 8, sizeof j->seed);
    if (j->rq.seed_set) j->seed = j->rq.sampling.seed;
    j->ch = calloc(j->rq.n, sizeof *j->ch);
    if (!j->ch) {
        job_free(j);
        return srv_reply_json(conn, 500, NULL);
    }
    for (uint32_t i = 0; i < j->rq.n; i++)
        j->ch[i] = (gen_choice){.job = j, .index = i};
    if (submit(j, 0, &err) != VKLLM_OK) { /* bad prompts fail here, before any reply */
        job_free(j);
        return srv_reply_error(conn, &err);
    }
    if (j->rq.stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, j, stream_free);
        if (!r) {
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        const enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r); /* MHD keeps it until the connection is done with it */
        return ret;
    }
    pthread_mutex_lock(&j->mu);
    bool ok = true;
    while (ok && !all_done(j)) {
        if (!submit_rest(j, &err)) {
            job_cancel(j);
            pthread_mutex_unlock(&j->mu);
            job_free(j);
            return srv_reply_error(conn, &err);
        }
        if (!all_done(j)) ok = job_wait(j);
    }
    pthread_mutex_unlock(&j->mu);
    if (!ok) { /* nobody to answer, or shutting down */
        const bool stopping = atomic_load(&s->state) == SRV_STOPPING;
        job_free(j);
        if (!stopping) return MHD_NO; /* closes the connection */
        srv_fail(&err, 503, "unavailable_error", NULL, NULL, "The server is shutting down");
        return srv_reply_error(conn, &err);
    }
    const vkllm_status st = failed(j);
    if (st != VKLLM_OK) {
        srv_fail(&err, 500, "server_error", NULL, NULL, "the request failed: %s",
                 vkllm_status_str(st));
        job_free(j);
        return srv_reply_error(conn, &err);
    }
    char *json = answer_json(j);
    job_free(j);
    return srv_reply_json(conn, 200, json);
}
