/* vkllm serve: an OpenAI-compatible HTTP server on one engine (docs/serve.md). Shared between
 * serve.c (options, start-up, signals, shutdown), serve_http.c (libmicrohttpd: routing, API
 * key, body limits, replies, the small endpoints) and serve_gen.c (completions: engine
 * requests, streams). Request bodies are parsed by serve_parse.c. Public API only. */
#ifndef VKLLM_APP_SERVE_H
#define VKLLM_APP_SERVE_H

#include "cli.h"
#include "serve_parse.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

typedef enum srv_state { SRV_LOADING, SRV_READY, SRV_STOPPING } srv_state;

typedef struct srv_opts {
    cli_opts cli; /* model, device, threads, -c, -b, --parallel, --kv-mib, -v ... */
    const char *host;
    int port;
    char *api_key; /* NULL: no key needed */
    const char *alias;
    size_t max_body; /* request body bytes */
    int timeout_s;   /* idle connection */
    int max_conns;   /* connections at once */
    int queue;       /* engine requests that may wait beyond --parallel, then 429 */
    int max_n;       /* choices per request */
    int max_tokens;  /* a request's max_tokens at most (0: the context) */
} srv_opts;

/* serve_metrics.c: latency histograms for /metrics */
#define SRV_HIST_BOUNDS 16
typedef struct srv_hist {
    unsigned long long bucket[SRV_HIST_BOUNDS + 1]; /* per bucket, not cumulative; last: +Inf */
    unsigned long long count;
    double sum;
} srv_hist;
typedef struct srv_hists {
    srv_hist ttft, tpot, queue, duration;
} srv_hists;
typedef struct srv_metrics {
    pthread_mutex_t mu;
    srv_hists h;
} srv_metrics;
/* One finished completion request's times, gathered over its choices. */
typedef struct srv_timing {
    double duration; /* admitted to its end */
    bool has_first;  /* choice 0 generated a token: queue and ttft hold its times */
    double queue, ttft;
    double decode_seconds; /* first token to finish, summed over choices */
    unsigned long long decode_tokens;
} srv_timing;

typedef struct srv_server {
    srv_opts o;
    atomic_int state;
    vkllm_runtime *rt;
    vkllm_model *model;
    vkllm_engine *engine;
    uint32_t n_ctx, n_vocab, parallel;
    char name[256];      /* the model's id: --alias, else the file's name */
    char file_name[256]; /* the model file's base name */
    long long created;   /* start time, Unix seconds */
    char fingerprint[64];
    srv_limits lim;
    atomic_int inflight; /* engine requests submitted and not yet freed */
    int max_inflight;    /* parallel + queue */
    /* counters for /metrics */
    atomic_ullong n_http, n_completions, n_rejected, n_disconnected, n_prompt_tokens, n_gen_tokens;
    /* prompt tokens of finished engine requests (every choice), and of those the cached */
    atomic_ullong n_prompt_seen, n_prompt_cached;
    srv_metrics metrics;
} srv_server;

/* serve_metrics.c */
double srv_now(void); /* monotonic seconds */
void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_timing_add(srv_timing *t, uint32_t choice, const vkllm_request_result *r);
void srv_metrics_observe(srv_metrics *m, const srv_timing *t);
/* Appends the histograms to t (cap bytes, n used); returns the new length (>= cap: cut). */
size_t srv_metrics_text(srv_metrics *m, char *t, size_t cap, size_t n);

/* serve_http.c */
struct MHD_Daemon *srv_http_start(srv_server *s, int *port_out);
/* Queues a JSON reply (takes json, malloc'd; NULL: 500) and returns MHD's result. */
enum MHD_Result srv_reply_json(struct MHD_Connection *c, unsigned status, char *json);
enum MHD_Result srv_reply_error(struct MHD_Connection *c, const srv_error *e);
/* True once the client has closed its side of the connection (or it failed). */
bool srv_client_gone(struct MHD_Connection *c);
/* true when name is the served model's id, its file name or its alias, or the name of one of
 * its --lora adapters */
bool srv_model_known(const srv_server *s, const char *name);
/* The --lora adapter a request's model names (index into cli_lora's list), or -1: the base
 * model (or an unknown name). */
int srv_model_adapter(const char *name);

/* serve_gen.c: POST /v1/chat/completions and /v1/completions with a complete body */
enum MHD_Result srv_completions(srv_server *s, struct MHD_Connection *c, srv_kind kind,
                                const char *body, size_t len);

int cmd_serve(int argc, char **argv);

#endif
