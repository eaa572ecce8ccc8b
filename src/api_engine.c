/* vkllm_engine: the scheduler (src/sched/sched.c) behind the public API, with its engine
 * thread or the host's vkllm_step.
 *
 * Threads and locks. The scheduler is only ever touched by the driving thread (the engine
 * thread, or whoever is inside vkllm_step: e->stepping lets one in at a time). Other threads
 * reach the engine through e->mu only: new requests wait in an inbox until the driving
 * thread takes them; finished ones are marked done (and freed, if the user already let go)
 * and the stats snapshot is published, under e->mu. A step's device part (planning,
 * submission, waiting: sched_advance) runs under the runtime's backend lock rt->be_mu, which
 * the engines and sessions of one runtime take in turns; its commit (sampling, on_token,
 * finishing requests: sched_commit) runs with no lock held, so a callback may call any engine
 * function (submit, free, cancel, stats, vkllm_generate on another session) without
 * deadlocking. The two locks are never held together: nothing can wait on them in two orders.
 *
 * Calls that would wait for the driving thread from the driving thread itself (a callback
 * that waits for an unfinished request of its own engine, or destroys its own engine) are
 * refused: t_driving says which engine's steps this thread is inside. */
#include "api_abi.h"
#include "api_internal.h"
#include "sched/sched.h"

#include <string.h>

struct vkllm_engine {
    vkllm_model *m;
    sched *s;
    uint32_t n_ctx;
    bool manual;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_t th;
    bool has_thread, stop;
    atomic_int stepping;          /* manual: a thread is driving (vkllm_step) */
    sched_req *in_head, *in_tail; /* submitted, not yet taken by the driving thread */
    sched_req *all;               /* every request not yet freed */
    vkllm_engine_stats stats;     /* the scheduler's, as of the last step (under mu) */
    const sched_req *in_cb;       /* whose callback the driving thread is in (under mu) */
    core_err err;                 /* written under mu */
};

/* The engine whose steps (callbacks included) this thread is running, or NULL. Per thread,
 * never shared: it only answers "am I the driving thread of e?". */
static _Thread_local vkllm_engine *t_driving;

static void engine_err(vkllm_engine *e, const core_err *err) {
    pthread_mutex_lock(&e->mu);
    e->err = *err;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the driving side (engine thread or vkllm_step) ---- */

/* Moves the inbox into the scheduler. Called with e->mu held. */
static void take_inbox(vkllm_engine *e) {
    for (sched_req *r = e->in_head, *nx; r; r = nx) {
        nx = r->next;
        sched_add(e->s, r);
    }
    e->in_head = e->in_tail = NULL;
}

static void all_remove(vkllm_engine *e, sched_req *r) {
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        e->all = r->all_next;
    if (r->all_next) r->all_next->all_prev = r->all_prev;
}

/* Marks finished requests done and frees those the user has let go; publishes the stats
 * first, so that a thread that sees a request done sees the stats of its last step. Called
 * with e->mu held. */
static void reap(vkllm_engine *e, sched_req *f) {
    sched_stats(e->s, &e->stats);
    for (sched_req *nx; f; f = nx) {
        nx = f->next;
        f->next = NULL;
        if (f->released) {
            all_remove(e, f);
            sched_req_free(f);
        } else {
            atomic_store(&f->done, 1);
        }
    }
    pthread_cond_broadcast(&e->cv_done);
}

/* Runs a request's callback for the scheduler (fn calls its on_token or on_logprobs), unless
 * the user has freed the request; while it runs, in_cb names the request, so that
 * vkllm_request_free on another thread waits for it to return: after vkllm_request_free, a
 * request's callbacks are never called again. */
static bool call_cb(void *ctx, sched_req *r, bool (*fn)(sched_req *, void *), void *arg) {
    vkllm_engine *e = ctx;
    pthread_mutex_lock(&e->mu);
    const bool freed = r->released;
    if (!freed) e->in_cb = r;
    pthread_mutex_unlock(&e->mu);
    if (freed) return true; /* it is cancelled at the next step */
    const bool go = fn(r, arg);
    pthread_mutex_lock(&e->mu);
    e->in_cb = NULL;
    pthread_cond_broadcast(&e->cv_done);
    pthread_mutex_unlock(&e->mu);
    return go;
}

/* One call of the scheduler: its device part under the runtime's backend lock, its commit
 * (callbacks) under no lock. */
static vkllm_status work(vkllm_engine *e, double deadline, bool *stepped) {
    vkllm_runtime *rt = e->m->rt;
    core_err err = {{0}};
    bool ready = false;
    pthread_mutex_lock(&rt->be_mu);
    vkllm_status st = sched_advance(e->s, deadline, &ready, &err);
    pthread_mutex_unlock(&rt->be_mu);
    if (ready) sched_commit(e->s);
    *stepped = ready;
    sched_req *f = sched_take_finished(e->s);
    pthread_mutex_lock(&e->mu);
    if (st != VKLLM_OK) e->err = err;
    reap(e, f);
    pthread_mutex_unlock(&e->mu);
    api_lora_collect(e->m); /* adapters the freed requests were the last users of */
    if (st != VKLLM_OK) rt_log(rt, VKLLM_LOG_ERROR, "engine: %s", err.msg);
    return st;
}

static void *engine_thread(void *arg) {
    vkllm_engine *e = arg;
    t_driving = e;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        take_inbox(e);
        if (!sched_active(e->s) && !sched_busy(e->s)) {
            pthread_cond_wait(&e->cv_work, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        bool stepped;
        work(e, 0.0, &stepped); /* a failed step fails its requests; the thread goes on */
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* vkllm_step's work, by the thread that set e->stepping. */
static vkllm_status step(vkllm_engine *e, double budget_seconds, uint32_t *n_active) {
    vkllm_engine *outer = t_driving; /* a callback of another engine may drive this one */
    t_driving = e;
    const double deadline = budget_seconds > 0 ? core_time_s() + budget_seconds : 0.0;
    vkllm_status st = VKLLM_OK;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        take_inbox(e);
        pthread_mutex_unlock(&e->mu);
        bool stepped = false;
        if (!sched_active(e->s) && !sched_busy(e->s)) break;
        st = work(e, deadline, &stepped);
        if (st != VKLLM_OK || deadline <= 0 || core_time_s() >= deadline) break;
        if (!stepped && !sched_busy(e->s)) break; /* nothing more to do */
    }
    if (n_active) *n_active = sched_active(e->s);
    t_driving = outer;
    /* let go, and wake the threads in vkllm_request_wait that waited for this call to end */
    atomic_store(&e->stepping, 0);
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cv_done);
    pthread_mutex_unlock(&e->mu);
    return st;
}

vkllm_status vkllm_step(vkllm_engine *e, double budget_seconds, uint32_t *n_active) {
    if (!e) return VKLLM_ERR_INVALID_ARG;
    if (n_active) *n_active = 0;
    core_err err;
    if (!e->manual) {
        core_errf(&err, VKLLM_ERR_INVALID_ARG,
                  "vkllm_step: this engine has its own thread "
                  "(create it with manual set to drive it yourself)");
        engine_err(e, &err);
        return VKLLM_ERR_INVALID_ARG;
    }
    if (t_driving == e) {
        core_errf(&err, VKLLM_ERR_INVALID_ARG,
                  "vkllm_step: called from inside one of this engine's callbacks");
        engine_err(e, &err);
        return VKLLM_ERR_INVALID_ARG;
    }
    if (atomic_exchange(&e->stepping, 1)) {
        core_errf(&err, VKLLM_ERR_INVALID_ARG, "vkllm_step: already running on another thread");
        engine_err(e, &err);
        return VKLLM_ERR_INVALID_ARG;
    }
    return step(e, budget_seconds, n_active);
}

/* ---- engine ---- */

vkllm_status vkllm_engine_create(vkllm_model *m, const vkllm_engine_desc *user_desc,
                                 vkllm_engine **out) {
    if (!m || !out) return VKLLM_ERR_INVALID_ARG;
    *out = NULL;
    if (m->vocab_only)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "engine: the model was loaded "
                         "vocab-only and has no weights");
    vkllm_engine_desc local;
    const vkllm_engine_desc *desc = API_IN(vkllm_engine_desc, user_desc, &local);
    const model_config *cfg = &m->cfg;
    const uint32_t max_seqs = desc->max_seqs ? desc->max_seqs : 16;
    const uint32_t n_ctx =
        desc->n_ctx ? desc->n_ctx : (cfg->n_ctx_train < 4096 ? cfg->n_ctx_train : 4096);
    uint32_t n_batch = desc->n_batch ? desc->n_batch : 512;
    if (max_seqs > 1024 || n_ctx > 1u << 20 || n_batch > 1u << 16)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "engine: max_seqs %u (max 1024), "
                         "n_ctx %u (max %u) or n_batch %u (max %u) too large",
                         max_seqs, n_ctx, 1u << 20, n_batch, 1u << 16);
    if (n_batch < max_seqs) n_batch = max_seqs;
    bool q8 = false;
    if (desc->kv_type && strcmp(desc->kv_type, "q8_0") == 0)
        q8 = true;
    else if (desc->kv_type && strcmp(desc->kv_type, "f16") != 0)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "engine: KV cache type '%s' (f16 or "
                         "q8_0)",
                         desc->kv_type);
    const uint64_t page_bytes = (uint64_t)cfg->n_layer * 2 *
                                eng_kv_row_bytes(cfg->n_head_kv * cfg->head_dim, q8) * ENG_PAGE;
    const uint64_t per_seq = (n_ctx + ENG_PAGE - 1) / ENG_PAGE;
    uint64_t pages = desc->kv_pages;
    if (!pages && desc->kv_bytes) pages = desc->kv_bytes / page_bytes;
    if (!pages) {
        pages = per_seq * max_seqs;
        if (pages * page_bytes > (1ull << 30)) pages = (1ull << 30) / page_bytes;
        if (pages < per_seq) pages = per_seq;
    }
    if (pages < per_seq)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "engine: a KV cache of %llu pages "
                         "(%.1f MiB) holds %llu tokens, but one sequence of n_ctx %u needs %llu "
                         "pages: raise the KV budget or lower n_ctx",
                         (unsigned long long)pages, (double)(pages * page_bytes) / 1048576.0,
                         (unsigned long long)pages * ENG_PAGE, n_ctx, (unsigned long long)per_seq);
    if (pages > UINT32_MAX / ENG_PAGE)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "engine: %llu KV pages, too many",
                         (unsigned long long)pages);
    vkllm_runtime *rt = m->rt;
    vkllm_engine *e = core_calloc(rt->alloc, 1, sizeof *e);
    if (!e) return core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "engine: out of memory");
    e->m = m;
    e->n_ctx = n_ctx;
    e->manual = desc->manual;
    const sched_desc sd = {.alloc = rt->alloc,
                           .be = m->be,
                           .m = &m->em,
                           .g = &m->graph,
                           .vocab = m->vocab,
                           .max_seqs = max_seqs,
                           .n_ctx = n_ctx,
                           .n_batch = n_batch,
                           .n_pages = (uint32_t)pages,
                           .prefix_cache = !desc->no_prefix_cache,
                           .kv_q8_0 = q8,
                           .overlap = !desc->no_overlap,
                           .paced = desc->manual,
                           .warmup = desc->warmup,
                           .call = call_cb,
                           .call_ctx = e};
    pthread_mutex_lock(&rt->be_mu); /* its backend context: an engine may be stepping */
    vkllm_status st = sched_create(&sd, &e->s, &m->err);
    pthread_mutex_unlock(&rt->be_mu);
    if (st != VKLLM_OK) {
        core_free(rt->alloc, e);
        return st;
    }
    sched_stats(e->s, &e->stats);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv_work, NULL);
    pthread_cond_init(&e->cv_done, NULL);
    if (!e->manual) {
        if (pthread_create(&e->th, NULL, engine_thread, e) != 0) {
            vkllm_engine_destroy(e);
            return core_errf(&m->err, VKLLM_ERR_INTERNAL, "engine: cannot start its thread");
        }
        e->has_thread = true;
    }
    rt_log(rt, VKLLM_LOG_INFO,
           "engine: %u sequences of up to %u tokens, %u tokens per step, "
           "KV cache %llu pages of %s (%.1f MiB), prefix cache %s",
           max_seqs, n_ctx, n_batch, (unsigned long long)pages, q8 ? "q8_0" : "f16",
           (double)(pages * page_bytes) / 1048576.0, desc->no_prefix_cache ? "off" : "on");
    *out = e;
    return VKLLM_OK;
}

void vkllm_engine_destroy(vkllm_engine *e) {
    if (!e) return;
    vkllm_runtime *rt = e->m->rt;
    if (t_driving == e) { /* it would wait for itself */
        rt_log(rt, VKLLM_LOG_ERROR,
               "vkllm_engine_destroy: called from inside one of the "
               "engine's own callbacks (or its vkllm_step); ignored");
        return;
    }
    if (e->has_thread) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->cv_work);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->th, NULL);
    }
    /* this thread drives the scheduler now */
    pthread_mutex_lock(&e->mu);
    take_inbox(e);
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&rt->be_mu);
    sched_cancel_all(e->s); /* waits for the steps in flight */
    pthread_mutex_unlock(&rt->be_mu);
    pthread_mutex_lock(&e->mu);
    reap(e, sched_take_finished(e->s));
    for (sched_req *r = e->all; r; r = r->all_next)
        r->s = NULL, r->owner = NULL; /* orphans */
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&rt->be_mu);
    sched_destroy(e->s);
    pthread_mutex_unlock(&rt->be_mu);
    api_lora_collect(e->m);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv_work);
    pthread_cond_destroy(&e->cv_done);
    core_free(rt->alloc, e);
}

const char *vkllm_engine_last_error(const vkllm_engine *e) {
    return e ? e->err.msg : "";
}

void vkllm_engine_get_stats(vkllm_engine *e, vkllm_engine_stats *out) {
    if (!out) return;
    vkllm_engine_stats st = {0};
    if (e) { /* the driving thread's snapshot: never the scheduler, which it may be changing */
        pthread_mutex_lock(&e->mu);
        st = e->stats;
        pthread_mutex_unlock(&e->mu);
    }
    API_OUT(vkllm_engine_stats, out, &st);
}

/* ---- requests ---- */

/* The prompt's tokens: text tokenized, chat messages rendered then tokenized, or a copy.
 * Reads only what never changes after create (the model, n_ctx): no lock needed. */
static vkllm_status prompt_tokens(vkllm_engine *e, const vkllm_request_desc *d, int32_t **out,
                                  uint32_t *n_out, core_err *err) {
    vkllm_model *m = e->m;
    const vkllm_allocator *a = m->rt->alloc;
    const int kinds = (d->prompt != NULL) + (d->tokens != NULL) + (d->messages != NULL);
    if (kinds != 1)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "request: give exactly one of prompt, "
                         "tokens and messages (%d given)",
                         kinds);
    if (d->tokens) {
        if (d->n_tokens == 0 || d->n_tokens > e->n_ctx)
            return core_errf(err, d->n_tokens ? VKLLM_ERR_CONTEXT_FULL : VKLLM_ERR_INVALID_ARG,
                             "request: prompt of %zu tokens, the context holds %u", d->n_tokens,
                             e->n_ctx);
        *out = core_alloc(a, d->n_tokens * sizeof **out, 0);
        if (!*out) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "request: out of memory");
        memcpy(*out, d->tokens, d->n_tokens * sizeof **out);
        *n_out = (uint32_t)d->n_tokens;
        return VKLLM_OK;
    }
    char *text = NULL;
    const char *src = d->prompt;
    size_t len = d->prompt ? (d->prompt_len ? d->prompt_len : strlen(d->prompt)) : 0;
    if (d->messages) {
        /* checked here, so that vkllm_chat_apply has no error to write into the model (other
         * threads may be using it) */
        for (size_t i = 0; i < d->n_messages; i++)
            if (!d->messages[i].role || !d->messages[i].content)
                return core_errf(err, VKLLM_ERR_INVALID_ARG,
                                 "request: chat message %zu has no "
                                 "role or content",
                                 i);
        size_t need = 0;
        vkllm_status st = vkllm_chat_apply(m, d->messages, d->n_messages, true, NULL, 0, &need);
        if (st != VKLLM_OK && st != VKLLM_ERR_BUFFER_TOO_SMALL)
            return core_errf(err, st, "request: the chat template failed (%s)",
                             vkllm_status_str(st));
        text = core_alloc(a, need + 1, 0);
        if (!text) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "request: out of memory");
        st = vkllm_chat_apply(m, d->messages, d->n_messages, true, text, need + 1, &len);
        if (st != VKLLM_OK) {
            core_free(a, text);
            return core_errf(err, st, "request: the chat template failed (%s)",
                             vkllm_status_str(st));
        }
        src = text;
    }
    /* at most n_ctx + 1 tokens: one more than fits says the prompt is too long */
    const size_t cap = (size_t)e->n_ctx + 1;
    int32_t *ids = core_alloc(a, cap * sizeof *ids, 0);
    size_t got = 0;
    vkllm_status st = ids ? tok_encode(m->vocab, src, len, true, true, ids, cap, &got, err)
                          : core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "request: out of memory");
    core_free(a, text);
    if (st == VKLLM_ERR_BUFFER_TOO_SMALL || (st == VKLLM_OK && got > e->n_ctx))
        st = core_errf(err, VKLLM_ERR_CONTEXT_FULL,
                       "request: the prompt is more than the %u "
                       "tokens the context holds (n_ctx)",
                       e->n_ctx);
    if (st == VKLLM_OK && got == 0)
        st = core_errf(err, VKLLM_ERR_INVALID_ARG, "request: the prompt has no tokens");
    if (st != VKLLM_OK) {
        core_free(a, ids);
        return st;
    }
    *out = ids;
    *n_out = (uint32_t)got;
    return VKLLM_OK;
}

vkllm_status vkllm_submit(vkllm_engine *e, const vkllm_request_desc *user_desc,
                          vkllm_request **out) {
    if (!e || !user_desc || !out) return VKLLM_ERR_INVALID_ARG;
    vkllm_request_desc local;
    const vkllm_request_desc *d = API_IN(vkllm_request_desc, user_desc, &local);
    *out = NULL;
    int32_t *toks = NULL;
    uint32_t n = 0;
    core_err err;
    /* tokenizing and making the request need no lock (sched_req_create reads only what
     * sched_create set): the driving thread is not held up meanwhile */
    vkllm_status st = prompt_tokens(e, d, &toks, &n, &err);
    sched_req *r = NULL;
    if (st == VKLLM_OK) st = sched_req_create(e->s, toks, n, d, &r, &err);
    core_free(e->m->rt->alloc, toks);
    if (st == VKLLM_OK && d->n_lora) {
        eng_lora_use use[ENG_LORA_MAX_PER_SEQ];
        uint64_t ids[ENG_LORA_MAX_PER_SEQ];
        st = api_lora_take(e->m, d->lora, d->n_lora, use, ids, &err);
        if (st == VKLLM_OK)
            sched_req_set_lora(r, use, ids, (uint32_t)d->n_lora, api_lora_release);
        else
            sched_req_free(r), r = NULL;
    }
    if (st == VKLLM_OK && d->json_schema) { /* structured output */
        struct jsc_run *run = NULL;
        st = api_json_run(e->m, d->json_schema, &run, &err);
        if (st == VKLLM_OK)
            sched_req_set_json(r, run);
        else
            sched_req_free(r), r = NULL;
    }
    pthread_mutex_lock(&e->mu);
    if (st == VKLLM_OK) {
        r->owner = e;
        r->all_next = e->all;
        if (e->all) e->all->all_prev = r;
        e->all = r;
        if (e->in_tail)
            e->in_tail->next = r;
        else
            e->in_head = r;
        e->in_tail = r;
        pthread_cond_signal(&e->cv_work);
        *out = r;
    } else {
        e->err = err;
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

void vkllm_request_cancel(vkllm_request *r) {
    if (r) atomic_store(&r->cancel, 1);
}

bool vkllm_request_done(const vkllm_request *r) {
    return r && atomic_load(&r->done);
}

vkllm_status vkllm_request_wait(vkllm_request *r, vkllm_request_result *out) {
    if (!r) return VKLLM_ERR_INVALID_ARG;
    vkllm_engine *e = r->owner;
    if (e && t_driving == e && !atomic_load(&r->done)) { /* it would wait for itself */
        core_err err;
        core_errf(&err, VKLLM_ERR_INVALID_ARG,
                  "vkllm_request_wait: called from inside one of "
                  "its engine's callbacks (or vkllm_step) for a request not yet finished");
        engine_err(e, &err);
        rt_log(e->m->rt, VKLLM_LOG_ERROR, "%s", err.msg);
        return VKLLM_ERR_INVALID_ARG;
    }
    if (e && e->manual) {
        while (!atomic_load(&r->done)) {
            if (!atomic_exchange(&e->stepping, 1)) { /* drive it ourselves */
                vkllm_status st = step(e, 0.0, NULL);
                if (st != VKLLM_OK && !atomic_load(&r->done)) return st;
                continue;
            }
            /* another thread is in vkllm_step: wait for the request, or for that call to end
             * (step() broadcasts after letting go, under mu: no wakeup is lost) */
            pthread_mutex_lock(&e->mu);
            while (!atomic_load(&r->done) && atomic_load(&e->stepping))
                pthread_cond_wait(&e->cv_done, &e->mu);
            pthread_mutex_unlock(&e->mu);
        }
    } else if (e) {
        pthread_mutex_lock(&e->mu);
        while (!atomic_load(&r->done))
            pthread_cond_wait(&e->cv_done, &e->mu);
        pthread_mutex_unlock(&e->mu);
    }
    if (out) API_OUT(vkllm_request_result, out, &r->res);
    return r->res.status;
}

const int32_t *vkllm_request_tokens(const vkllm_request *r, size_t *n) {
    if (n) *n = 0;
    if (!r || !atomic_load(&r->done)) return NULL;
    if (n) *n = r->n_toks - r->n_prompt;
    return r->toks + r->n_prompt;
}

const char *vkllm_request_text(const vkllm_request *r, size_t *len) {
    if (len) *len = 0;
    if (!r || !atomic_load(&r->done)) return NULL;
    if (len) *len = r->text_len;
    return r->text ? r->text : "";
}

void vkllm_request_free(vkllm_request *r) {
    if (!r) return;
    vkllm_engine *e = r->owner;
    /* its adapters' model (they live while r holds them), to let go the ones it was the last
     * user of */
    vkllm_model *lm = r->n_lora ? api_adapter_of(r->lora[0].lora)->model : NULL;
    if (!e) { /* finished, and the engine is gone */
        sched_req_free(r);
        if (lm) api_lora_collect(lm);
        return;
    }
    pthread_mutex_lock(&e->mu);
    const bool done = atomic_load(&r->done);
    if (!done) {
        r->released = true; /* the driving thread frees it when it finishes */
        atomic_store(&r->cancel, 1);
        pthread_cond_signal(&e->cv_work);
        /* its callback may be running on the driving thread: no callback after we return
         * (from inside a callback, this thread is the driving thread: nothing to wait for) */
        if (t_driving != e)
            while (e->in_cb == r)
                pthread_cond_wait(&e->cv_done, &e->mu);
    } else {
        all_remove(e, r);
    }
    pthread_mutex_unlock(&e->mu);
    if (done) sched_req_free(r);
    if (done && lm) api_lora_collect(lm);
}
