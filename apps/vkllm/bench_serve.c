/* vkllm bench's serving tests: the engine (continuous batching, prefix cache, vkllm_step)
 * with --parallel (batched prefill and aggregate decode), --prefix (time to first token with
 * and without the prefix cache) and --step-budget (vkllm_step call times against the longest
 * kernel). Records follow docs/bench-json.md ("Serving records"). Public API only. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* ---- serving tests: the engine ---- */

typedef struct serve_req {
    vkllm_request *r;
    int n_tok; /* tokens seen by the callback */
    double t_first;
} serve_req;

static bool serve_on_token(void *user, int32_t tok, const char *piece, size_t len) {
    (void)tok, (void)piece, (void)len;
    serve_req *q = user;
    if (q->n_tok++ == 0) q->t_first = now_s();
    return true;
}

static void rand_tokens(int32_t *t, int n, uint32_t n_vocab, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 88172645463325252ull;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t[i] = (int32_t)(x % n_vocab);
    }
}

static vkllm_engine *serve_engine(const model_ctx *mc, uint32_t max_seqs, uint32_t n_ctx,
                                  uint32_t n_batch, bool prefix_cache, bool overlap) {
    const vkllm_engine_desc ed = {.max_seqs = max_seqs,
                                  .n_ctx = n_ctx,
                                  .n_batch = n_batch,
                                  .no_prefix_cache = !prefix_cache,
                                  .manual = true,
                                  .no_overlap = !overlap};
    vkllm_engine *eng = NULL;
    if (vkllm_engine_create(mc->model, &ed, &eng) != VKLLM_OK) {
        fprintf(stderr, "error: engine: %s\n", vkllm_model_last_error(mc->model));
        return NULL;
    }
    return eng;
}

/* n sequences of a distinct n_prompt-token prompt each, n_gen tokens each: prefill rate (all
 * prompts to every first token) and aggregate decode rate (the tokens after the first). */
static int serve_batch(bench_env *e, model_ctx *mc, int n, int n_prompt, int n_gen, int n_batch,
                       bool overlap, uint64_t seed, double *pp_tps, double *tg_tps) {
    vkllm_engine *eng = serve_engine(mc, (uint32_t)n, (uint32_t)(n_prompt + n_gen + 1),
                                     (uint32_t)(n_batch > n ? n_batch : n), false, overlap);
    if (!eng) return 1;
    serve_req *q = calloc((size_t)n, sizeof *q);
    int32_t *toks = malloc((size_t)n_prompt * sizeof *toks);
    int rc = q && toks ? 0 : 1;
    const double t0 = now_s();
    for (int i = 0; rc == 0 && i < n; i++) {
        rand_tokens(toks, n_prompt, mc->mi.n_vocab, seed * 1000 + (uint64_t)i);
        const vkllm_request_desc d = {.tokens = toks,
                                      .n_tokens = (size_t)n_prompt,
                                      .max_tokens = n_gen,
                                      .ignore_eog = true,
                                      .on_token = serve_on_token,
                                      .user = &q[i]};
        if (vkllm_submit(eng, &d, &q[i].r) != VKLLM_OK) {
            fprintf(stderr, "error: submit: %s\n", vkllm_engine_last_error(eng));
            rc = 1;
        }
    }
    double t_all_first = 0.0;
    uint32_t active = 1;
    while (rc == 0 && active) {
        if (vkllm_step(eng, 0.0, &active) != VKLLM_OK) {
            fprintf(stderr, "error: step: %s\n", vkllm_engine_last_error(eng));
            rc = 1;
        }
        if (t_all_first == 0.0) {
            bool all = true;
            for (int i = 0; i < n; i++)
                all = all && q[i].n_tok > 0;
            if (all) t_all_first = now_s();
        }
    }
    const double t1 = now_s();
    for (int i = 0; q && i < n; i++) {
        vkllm_request_result res = {0};
        if (q[i].r && vkllm_request_wait(q[i].r, &res) != VKLLM_OK) rc = 1;
        vkllm_request_free(q[i].r);
    }
    if (rc == 0) {
        *pp_tps = (double)n * n_prompt / (t_all_first - t0);
        *tg_tps = n_gen > 1 ? (double)n * (n_gen - 1) / (t1 - t_all_first) : 0.0;
    }
    vkllm_engine_destroy(eng);
    free(q);
    free(toks);
    return rc;
}

static void print_serve_row(const bench_env *e, const model_ctx *mc, const char *test,
                            const char *what, double mean, double sd) {
    char dev[96];
    device_label(&e->dev, dev, sizeof dev);
    printf("| %s | %s | %s | %d | %s | %s | %.2f ± %.2f |\n",
           mc->mi.name && *mc->mi.name ? mc->mi.name : short_name(mc->path), mc->mi.type, dev,
           e->threads, test, what, mean, sd);
    fflush(stdout);
}

static void serve_record(bench_env *e, const model_ctx *mc, const char *kind, const char *name,
                         int n_prompt, int n_gen, int n_batch, int n_parallel, int n_shared,
                         const double *x, bool tps) {
    cJSON *r = record_new(e);
    add_model(r, mc->path, &mc->mi, mc->mi.type);
    add_test(r, kind, name, n_prompt, n_gen, 0, n_batch);
    cJSON *t = cJSON_GetObjectItem(r, "test");
    cJSON_AddNumberToObject(t, "n_parallel", n_parallel);
    cJSON_AddNumberToObject(t, "n_shared", n_shared);
    add_samples(r, x, e->reps, tps);
    if (!tps) { /* seconds: the mean and stddev under their own names */
        double mean, sd;
        mean_sd(x, e->reps, &mean, &sd);
        cJSON_AddNumberToObject(r, "seconds_mean", mean);
        cJSON_AddNumberToObject(r, "seconds_stddev", sd);
    }
    cJSON_AddNullToObject(r, "bytes_per_token");
    cJSON_AddNullToObject(r, "roofline_fraction");
    cJSON_AddNullToObject(r, "op");
    cJSON_AddItemToArray(e->records, r);
}

static int serve_parallel(bench_env *e, model_ctx *mc, const bench_opts *o) {
    const int n_prompt = o->prompt.v[0] > 0 ? o->prompt.v[0] : 1;
    const int n_gen = o->gen.v[0] > 1 ? o->gen.v[0] : 2;
    for (int pi = 0; pi < o->parallel.n; pi++) {
        const int n = o->parallel.v[pi];
        double pp[1000], tg[1000];
        char name[64];
        const char *sfx = o->no_overlap ? " serial" : ""; /* one step at a time */
        snprintf(name, sizeof name, "pp%d+tg%d x%d%s", n_prompt, n_gen, n, sfx);
        for (int rep = -1; rep < e->reps; rep++) {
            progress(e, "bench %s %s: %s", short_name(mc->path), name, rep < 0 ? "warm-up" : "run");
            double a = 0, b = 0;
            /* the warm-up is one short sequence: pipelines and caches */
            if (serve_batch(e, mc, rep < 0 ? 1 : n, n_prompt, rep < 0 ? 4 : n_gen, o->batch.v[0],
                            !o->no_overlap, (uint64_t)rep + 2, &a, &b))
                return 1;
            if (rep >= 0) pp[rep] = a, tg[rep] = b;
        }
        progress_clear(e);
        char nm[80];
        snprintf(nm, sizeof nm, "pp%d x%d%s", n_prompt, n, sfx);
        serve_record(e, mc, "batched-prefill", nm, n_prompt, 0, o->batch.v[0], n, 0, pp, true);
        double mean, sd;
        mean_sd(pp, e->reps, &mean, &sd);
        print_serve_row(e, mc, nm, "prefill t/s (all sequences)", mean, sd);
        snprintf(nm, sizeof nm, "tg%d x%d%s", n_gen, n, sfx);
        serve_record(e, mc, "batched-decode", nm, n_prompt, n_gen, o->batch.v[0], n, 0, tg, true);
        mean_sd(tg, e->reps, &mean, &sd);
        print_serve_row(e, mc, nm, "decode t/s (aggregate)", mean, sd);
    }
    return 0;
}

/* Time to first token of a request whose first `shared` tokens an earlier request had, with
 * the prefix cache (those pages reused) and without (all prefilled). */
static int serve_prefix(bench_env *e, model_ctx *mc, const bench_opts *o) {
    const int tail = o->prompt.v[0] > 0 ? o->prompt.v[0] : 16;
    for (int pi = 0; pi < o->prefix.n; pi++) {
        const int shared = o->prefix.v[pi], len = shared + tail;
        int32_t *toks = malloc((size_t)len * sizeof *toks);
        if (!toks) return 1;
        rand_tokens(toks, shared, mc->mi.n_vocab, 7);
        double x[2][1000];
        for (int cached = 1; cached >= 0; cached--) {
            vkllm_engine *eng = serve_engine(mc, 1, (uint32_t)len + 1, (uint32_t)o->batch.v[0],
                                             cached, !o->no_overlap);
            if (!eng) {
                free(toks);
                return 1;
            }
            /* rep -1 puts the prefix in the cache (and warms up) */
            for (int rep = -1; rep < e->reps; rep++) {
                progress(e, "bench %s ttft shared %d (%s): %s", short_name(mc->path), shared,
                         cached ? "cached" : "uncached", rep < 0 ? "warm-up" : "run");
                rand_tokens(toks + shared, tail, mc->mi.n_vocab, 100 + (uint64_t)rep);
                const vkllm_request_desc d = {
                    .tokens = toks, .n_tokens = (size_t)len, .max_tokens = 1, .ignore_eog = true};
                vkllm_request *r = NULL;
                vkllm_request_result res = {0};
                if (vkllm_submit(eng, &d, &r) != VKLLM_OK || vkllm_request_wait(r, &res)) {
                    fprintf(stderr, "error: ttft: %s\n", vkllm_engine_last_error(eng));
                    vkllm_request_free(r);
                    vkllm_engine_destroy(eng);
                    free(toks);
                    return 1;
                }
                vkllm_request_free(r);
                if (rep >= 0) x[cached][rep] = res.ttft_seconds;
            }
            vkllm_engine_destroy(eng);
        }
        free(toks);
        progress_clear(e);
        char nm[80];
        double mc_, sc, mu, su;
        snprintf(nm, sizeof nm, "ttft p%d shared%d cached", len, shared);
        serve_record(e, mc, "ttft-cached", nm, len, 1, o->batch.v[0], 1, shared, x[1], false);
        mean_sd(x[1], e->reps, &mc_, &sc);
        print_serve_row(e, mc, nm, "seconds", mc_, sc);
        snprintf(nm, sizeof nm, "ttft p%d shared%d uncached", len, shared);
        serve_record(e, mc, "ttft-uncached", nm, len, 1, o->batch.v[0], 1, shared, x[0], false);
        mean_sd(x[0], e->reps, &mu, &su);
        print_serve_row(e, mc, nm, "seconds", mu, su);
        printf("|  |  |  |  | shared %d: prefix cache speedup | x | %.1f |\n", shared,
               mc_ > 0 ? mu / mc_ : 0.0);
    }
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* vkllm_step(budget) while sequences prefill and decode: how long the calls take, against the
 * longest single kernel of the workload (vkllm_bench_op on the model's largest matrices). */
static int serve_step_budget(bench_env *e, model_ctx *mc, const bench_opts *o) {
    const int n = o->parallel.n ? o->parallel.v[0] : 4;
    const int n_prompt = o->prompt.v[0] > 0 ? o->prompt.v[0] : 1;
    const int n_gen = o->gen.v[0] > 0 ? o->gen.v[0] : 1;
    const int n_batch = o->batch.v[0] > n ? o->batch.v[0] : n;
    /* the longest kernels: the output head for one token, the FFN down matrix (or the head)
     * over a whole prompt chunk */
    const vkllm_model_info *mi = &mc->mi;
    const char *type = mi->type;
    char lower[16];
    snprintf(lower, sizeof lower, "%s", type);
    for (char *c = lower; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    vkllm_bench_op_result head = {0}, chunk = {0};
    const uint32_t chunk_tok = (uint32_t)(n_prompt * n < n_batch ? n_prompt * n : n_batch);
    vkllm_bench_op_desc hd = {.op = VKLLM_BENCH_MATMUL,
                              .type = lower,
                              .rows = mi->n_vocab,
                              .cols = mi->n_embd,
                              .tokens = 1,
                              .seconds = 0.3};
    /* the fused gate and up projections: 2 n_ff rows over n_embd, one op */
    vkllm_bench_op_desc cd = {.op = VKLLM_BENCH_MATMUL,
                              .type = lower,
                              .rows = 2 * mi->n_ff,
                              .cols = mi->n_embd,
                              .tokens = chunk_tok,
                              .seconds = 0.3};
    if (vkllm_bench_op(e->rt, &hd, &head) != VKLLM_OK) head.us = 0;
    if (vkllm_bench_op(e->rt, &cd, &chunk) != VKLLM_OK) chunk.us = 0;
    for (int bi = 0; bi < o->step_ms.n; bi++) {
        const double budget = o->step_ms.v[bi] * 1e-3;
        vkllm_engine *eng = serve_engine(mc, (uint32_t)n, (uint32_t)(n_prompt + n_gen + 1),
                                         (uint32_t)n_batch, false, !o->no_overlap);
        if (!eng) return 1;
        serve_req *q = calloc((size_t)n, sizeof *q);
        int32_t *toks = malloc((size_t)n_prompt * sizeof *toks);
        size_t cap = 1 << 16, nc = 0;
        double *calls = malloc(cap * sizeof *calls);
        int rc = q && toks && calls ? 0 : 1;
        /* warm-up: as many requests through the same engine (first touches of the weights,
         * pipelines a GPU driver builds at their first use) */
        for (int i = 0; rc == 0 && i < n; i++) {
            rand_tokens(toks, n_prompt, mi->n_vocab, 400 + (uint64_t)i);
            const vkllm_request_desc wd = {
                .tokens = toks, .n_tokens = (size_t)n_prompt, .max_tokens = 2, .ignore_eog = true};
            if (vkllm_submit(eng, &wd, &q[i].r) != VKLLM_OK) rc = 1;
        }
        for (int i = 0; q && i < n; i++) {
            if (rc == 0 && vkllm_request_wait(q[i].r, NULL) != VKLLM_OK) rc = 1;
            vkllm_request_free(q[i].r);
            q[i].r = NULL;
        }
        uint64_t steps0 = 0;
        {
            vkllm_engine_stats s0;
            vkllm_engine_get_stats(eng, &s0);
            steps0 = s0.steps;
        }
        for (int i = 0; rc == 0 && i < n; i++) {
            rand_tokens(toks, n_prompt, mi->n_vocab, 500 + (uint64_t)i);
            const vkllm_request_desc d = {.tokens = toks,
                                          .n_tokens = (size_t)n_prompt,
                                          .max_tokens = n_gen,
                                          .ignore_eog = true};
            if (vkllm_submit(eng, &d, &q[i].r) != VKLLM_OK) rc = 1;
        }
        uint32_t active = 1;
        progress(e, "bench %s step budget %d ms", short_name(mc->path), o->step_ms.v[bi]);
        while (rc == 0 && active) {
            const double t0 = now_s();
            if (vkllm_step(eng, budget, &active) != VKLLM_OK) rc = 1;
            if (nc < cap) calls[nc++] = now_s() - t0;
        }
        progress_clear(e);
        for (int i = 0; q && i < n; i++)
            vkllm_request_free(q[i].r);
        vkllm_engine_stats st = {0};
        vkllm_engine_get_stats(eng, &st);
        vkllm_engine_destroy(eng);
        if (rc == 0 && nc) {
            qsort(calls, nc, sizeof *calls, cmp_d);
            double sum = 0;
            for (size_t i = 0; i < nc; i++)
                sum += calls[i];
            const double p99 = calls[(size_t)((double)(nc - 1) * 0.99)], mx = calls[nc - 1];
            char nm[80];
            snprintf(nm, sizeof nm, "step budget %d ms, %d seqs", o->step_ms.v[bi], n);
            cJSON *r = record_new(e);
            add_model(r, mc->path, mi, mi->type);
            add_test(r, "step-budget", nm, n_prompt, n_gen, 0, n_batch);
            cJSON *t = cJSON_GetObjectItem(r, "test");
            cJSON_AddNumberToObject(t, "n_parallel", n);
            cJSON_AddNumberToObject(t, "budget_seconds", budget);
            cJSON_AddNumberToObject(r, "calls", (double)nc);
            cJSON_AddNumberToObject(r, "steps", (double)(st.steps - steps0));
            cJSON_AddNumberToObject(r, "call_seconds_mean", sum / (double)nc);
            cJSON_AddNumberToObject(r, "call_seconds_p99", p99);
            cJSON_AddNumberToObject(r, "call_seconds_max", mx);
            cJSON_AddNumberToObject(r, "kernel_seconds_head", head.us * 1e-6);
            cJSON_AddNumberToObject(r, "kernel_seconds_chunk", chunk.us * 1e-6);
            cJSON_AddItemToArray(e->records, r);
            char dev[96];
            device_label(&e->dev, dev, sizeof dev);
            printf("| %s | %s | %s | %d | %s | calls %zu for %llu steps: mean %.2f ms, p99 %.2f "
                   "ms, max %.2f ms (over budget by %.2f ms); longest kernels: head %.2f ms, "
                   "%u-token FFN gate+up %.2f ms |  |\n",
                   mi->name && *mi->name ? mi->name : short_name(mc->path), mi->type, dev,
                   e->threads, nm, nc, (unsigned long long)(st.steps - steps0),
                   sum / (double)nc * 1e3, p99 * 1e3, mx * 1e3, (mx - budget) * 1e3, head.us * 1e-3,
                   chunk_tok, chunk.us * 1e-3);
        }
        free(q);
        free(toks);
        free(calls);
        if (rc) {
            fprintf(stderr, "error: step budget test failed\n");
            return 1;
        }
    }
    return 0;
}

int bench_serve(bench_env *e, const bench_opts *o, const char *path) {
    model_ctx mc = {.path = path};
    vkllm_model_desc md = {.path = path};
    if (vkllm_model_load(e->rt, &md, &mc.model) != VKLLM_OK) {
        fprintf(stderr, "error: %s: %s\n", path, vkllm_runtime_last_error(e->rt));
        return 1;
    }
    vkllm_model_get_info(mc.model, &mc.mi);
    int rc = 0;
    if (o->parallel.n && !o->step_ms.n) rc = serve_parallel(e, &mc, o);
    if (rc == 0 && o->prefix.n) rc = serve_prefix(e, &mc, o);
    if (rc == 0 && o->step_ms.n) rc = serve_step_budget(e, &mc, o);
    vkllm_model_free(mc.model);
    return rc;
}
