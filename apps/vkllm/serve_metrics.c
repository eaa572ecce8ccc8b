/* vkllm serve's latency histograms for /metrics: time to first token, time per output token,
 * queue time and request duration, one observation per finished completion request (an HTTP
 * request, all its choices). Requests finish on many connection threads at once, so the
 * histograms sit behind one mutex: an observation is a handful of additions, far below the
 * cost of the request, and /metrics reads a consistent copy (a _count that equals its +Inf
 * bucket, a _sum of the same observations). Prometheus text format 0.0.4: cumulative `le`
 * buckets ending in +Inf, then _sum and _count. */
#include "serve.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Upper bounds in seconds. Latencies on this runtime span a few ms per token on a GPU to
 * seconds for a long prompt on a CPU, so the bounds grow by about 2.5x from 1 ms to 60 s. */
static const double k_bounds_latency[SRV_HIST_BOUNDS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60};
/* A whole request: up to the default --timeout. */
static const double k_bounds_request[SRV_HIST_BOUNDS] = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

void srv_timing_add(srv_timing *t, uint32_t choice, const vkllm_request_result *r) {
    /* the first token the client sees is choice 0's: the others start after it */
    if (choice == 0 && r->n_generated >= 1) {
        t->has_first = true;
        t->queue = r->queue_seconds;
        t->ttft = r->ttft_seconds;
    }
    if (r->n_generated >= 2 && r->total_seconds > r->ttft_seconds) {
        t->decode_seconds += r->total_seconds - r->ttft_seconds;
        t->decode_tokens += r->n_generated - 1;
    }
}

static void hist_add(srv_hist *h, const double *bounds, double v) {
    if (!(v >= 0)) v = 0; /* NaN or a clock step: counted, at zero */
    size_t i = 0;
    while (i < SRV_HIST_BOUNDS && v > bounds[i])
        i++;
    h->bucket[i]++; /* i == SRV_HIST_BOUNDS: only +Inf holds it */
    h->count++;
    h->sum += v;
}

void srv_metrics_observe(srv_metrics *m, const srv_timing *t) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->h.duration, k_bounds_request, t->duration);
    if (t->has_first) {
        hist_add(&m->h.queue, k_bounds_latency, t->queue);
        hist_add(&m->h.ttft, k_bounds_latency, t->ttft);
    }
    if (t->decode_tokens)
        hist_add(&m->h.tpot, k_bounds_latency, t->decode_seconds / (double)t->decode_tokens);
    pthread_mutex_unlock(&m->mu);
}

static size_t put_hist(char *t, size_t cap, size_t n, const char *name, const char *help,
                       const srv_hist *h, const double *bounds) {
    if (n < cap)
        n += (size_t)snprintf(t + n, cap - n, "# HELP vkllm_%s %s\n# TYPE vkllm_%s histogram\n",
                              name, help, name);
    unsigned long long cum = 0;
    for (size_t i = 0; i <= SRV_HIST_BOUNDS && n < cap; i++) {
        cum += h->bucket[i];
        if (i < SRV_HIST_BOUNDS)
            n += (size_t)snprintf(t + n, cap - n, "vkllm_%s_bucket{le=\"%g\"} %llu\n", name,
                                  bounds[i], cum);
        else
            n += (size_t)snprintf(t + n, cap - n, "vkllm_%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    if (n < cap)
        n += (size_t)snprintf(t + n, cap - n, "vkllm_%s_sum %.9g\nvkllm_%s_count %llu\n", name,
                              h->sum, name, (unsigned long long)h->count);
    return n;
}

size_t srv_metrics_text(srv_metrics *m, char *t, size_t cap, size_t n) {
    pthread_mutex_lock(&m->mu);
    const srv_hists c = m->h;
    pthread_mutex_unlock(&m->mu);
    n = put_hist(t, cap, n, "time_to_first_token_seconds",
                 "engine submit to the first generated token (choice 0)", &c.ttft,
                 k_bounds_latency);
    n = put_hist(t, cap, n, "time_per_output_token_seconds",
                 "per request: mean time between generated tokens after the first, over its "
                 "choices",
                 &c.tpot, k_bounds_latency);
    n = put_hist(t, cap, n, "queue_time_seconds",
                 "engine submit to admission into a sequence (choice 0)", &c.queue,
                 k_bounds_latency);
    n = put_hist(t, cap, n, "request_duration_seconds",
                 "completion request admitted to its end (answer sent, failed or cancelled)",
                 &c.duration, k_bounds_request);
    return n;
}
