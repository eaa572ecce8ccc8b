/* vkllm_session: one sequence's context (KV cache on the backend), prompt evaluation in
 * chunks of n_batch, and the generate loop with sampling, streaming callback and cancel.
 * Every backend call holds the runtime's backend lock (be_mu), and only for that call:
 * vkllm_generate's on_token runs with no lock held, so it may call into vkllm (another
 * session, an engine) from there.
 * The last sampled token is kept "pending" (not yet evaluated) so a later call continues
 * exactly where generation stopped. */
#include "api_abi.h"
#include "api_internal.h"
#include "sched/json_schema.h"
#include "sched/logprobs.h"

#include <string.h>

vkllm_status vkllm_session_create(vkllm_model *m, const vkllm_session_desc *user_desc,
                                  vkllm_session **out) {
    if (!m || !out) return VKLLM_ERR_INVALID_ARG;
    *out = NULL;
    if (m->vocab_only)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "session: the model was loaded "
                         "vocab-only and has no weights");
    vkllm_session_desc local;
    const vkllm_session_desc *desc = API_IN(vkllm_session_desc, user_desc, &local);
    const vkllm_allocator *a = m->rt->alloc;
    uint32_t n_ctx =
        desc->n_ctx ? desc->n_ctx : (m->cfg.n_ctx_train < 4096 ? m->cfg.n_ctx_train : 4096);
    uint32_t n_batch = desc->n_batch ? desc->n_batch : 512;
    if (n_ctx > 1u << 20)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "session: n_ctx %u too large (max %u)",
                         n_ctx, 1u << 20);
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (n_batch > 4096) n_batch = 4096;
    vkllm_session *s = core_calloc(a, 1, sizeof *s);
    if (!s) return core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "session: out of memory");
    s->model = m;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->pending = -1;
    s->logits = core_calloc(a, m->cfg.n_vocab, sizeof(float));
    s->tokbuf = core_calloc(a, (size_t)n_ctx + 1, sizeof(int32_t));
    vkllm_status st = VKLLM_OK;
    if (!s->logits || !s->tokbuf) {
        st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "session: out of memory");
        goto fail;
    }
    if (sched_sampler_create(a, m->cfg.n_vocab, NULL, &s->sampler) != VKLLM_OK) {
        st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "session: out of memory");
        goto fail;
    }
    s->pages = eng_ident_pages(a, n_ctx);
    if (!s->pages) {
        st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "session: out of memory");
        goto fail;
    }
    eng_backend *be = m->be;
    /* the EOG ids, for vkllm_generate with ignore_eog, where the backend selects without them */
    uint32_t n_eog = 0;
    const int32_t *eog = be->bans ? tok_eog_ids(m->vocab, &n_eog) : NULL;
    s->ctx_bans = eog && n_eog;
    const eng_ctx_desc cd = {.n_ctx = n_ctx,
                             .n_batch = n_batch,
                             .n_seqs = 1,
                             .ban = s->ctx_bans ? eog : NULL,
                             .n_ban = s->ctx_bans ? n_eog : 0};
    pthread_mutex_lock(&m->rt->be_mu); /* an engine of the runtime may be stepping */
    st = be->vt->ctx_create(be, &m->em, &m->graph, &cd, &s->ctx, &m->err);
    pthread_mutex_unlock(&m->rt->be_mu);
    if (st != VKLLM_OK) goto fail;
    *out = s;
    return VKLLM_OK;
fail:
    vkllm_session_destroy(s);
    return st;
}

void vkllm_session_destroy(vkllm_session *s) {
    if (!s) return;
    const vkllm_allocator *a = s->model->rt->alloc;
    if (s->ctx) {
        vkllm_runtime *rt = s->model->rt;
        pthread_mutex_lock(&rt->be_mu);
        s->model->be->vt->ctx_destroy(s->ctx);
        pthread_mutex_unlock(&rt->be_mu);
    }
    sched_sampler_free(s->sampler);
    core_free(a, s->logits);
    core_free(a, s->tokbuf);
    core_free(a, s->pages);
    vkllm_model *m = s->model;
    for (uint32_t j = 0; j < s->n_lora; j++)
        api_lora_release(s->lora[j].lora);
    const bool had_lora = s->n_lora > 0;
    core_free(a, s);
    if (had_lora) api_lora_collect(m);
}

const char *vkllm_session_last_error(const vkllm_session *s) {
    return s ? s->err.msg : "";
}

void vkllm_session_reset(vkllm_session *s) {
    s->n_past = 0;
    s->pending = -1;
}

vkllm_status vkllm_session_set_lora(vkllm_session *s, const vkllm_lora *lora, size_t n) {
    if (!s) return VKLLM_ERR_INVALID_ARG;
    eng_lora_use use[ENG_LORA_MAX_PER_SEQ];
    uint64_t ids[ENG_LORA_MAX_PER_SEQ];
    vkllm_status st = api_lora_take(s->model, lora, n, use, ids, &s->err);
    if (st != VKLLM_OK) return st;
    bool same = n == s->n_lora;
    for (size_t j = 0; same && j < n; j++)
        same = ids[j] == s->lora_ids[j] && use[j].scale == s->lora[j].scale;
    if (!same) vkllm_session_reset(s); /* its cache was computed with the old adapters */
    for (uint32_t j = 0; j < s->n_lora; j++)
        api_lora_release(s->lora[j].lora);
    memcpy(s->lora, use, n * sizeof *use);
    memcpy(s->lora_ids, ids, n * sizeof *ids);
    s->n_lora = (uint32_t)n;
    api_lora_collect(s->model);
    return VKLLM_OK;
}

uint32_t vkllm_session_n_past(const vkllm_session *s) {
    return s->n_past;
}
uint32_t vkllm_session_n_ctx(const vkllm_session *s) {
    return s->n_ctx;
}
const float *vkllm_session_logits(const vkllm_session *s) {
    return s->logits;
}

void vkllm_session_cancel(vkllm_session *s) {
    if (s) atomic_store(&s->cancel, 1);
}

/* Evaluates tokens in chunks of n_batch; logits of the last one land in s->logits, or with
 * top_k > 0 only its top_k best candidates in s->cand_ids / s->cand_vals (selected on the
 * device by a GPU backend, so the logits never cross the bus; without the EOG ids with ban). */
static vkllm_status eval_tokens(vkllm_session *s, const int32_t *toks, size_t n, uint32_t top_k,
                                bool ban) {
    if (n == 0) return VKLLM_OK;
    if ((uint64_t)s->n_past + n > s->n_ctx)
        return core_errf(&s->err, VKLLM_ERR_CONTEXT_FULL,
                         "%zu tokens do not fit in the context: %u of %u already used", n,
                         s->n_past, s->n_ctx);
    eng_backend *be = s->model->be;
    for (size_t i = 0; i < n;) {
        uint32_t chunk = (uint32_t)(n - i < s->n_batch ? n - i : s->n_batch);
        const bool last = i + chunk == n;
        /* the attention arithmetic llama.cpp uses for a batch of this size */
        const eng_seq seq = {.n_tokens = chunk,
                             .pos0 = s->n_past,
                             .out = last,
                             .mode = eng_attn_mode_for(chunk),
                             .pages = s->pages,
                             .ban = ban,
                             .lora = s->n_lora ? s->lora : NULL,
                             .n_lora = (uint8_t)s->n_lora};
        eng_batch b = {.tokens = toks + i,
                       .n_tokens = chunk,
                       .seqs = &seq,
                       .n_seqs = 1,
                       .n_out = last ? 1 : 0,
                       .top_k = last ? top_k : 0,
                       .out_ids = s->cand_ids,
                       .out_vals = s->cand_vals};
        pthread_mutex_lock(&s->model->rt->be_mu);
        vkllm_status st = be->vt->run(s->ctx, &b, s->logits, &s->err);
        pthread_mutex_unlock(&s->model->rt->be_mu);
        if (st != VKLLM_OK) return st;
        s->n_past += chunk;
        i += chunk;
    }
    return VKLLM_OK;
}

vkllm_status vkllm_session_eval(vkllm_session *s, const int32_t *tokens, size_t n) {
    if (!s || (!tokens && n)) return VKLLM_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->model->cfg.n_vocab)
            return core_errf(&s->err, VKLLM_ERR_INVALID_ARG,
                             "eval: token %zu has id %d, out "
                             "of range [0, %u)",
                             i, tokens[i], s->model->cfg.n_vocab);
    s->pending = -1;
    return eval_tokens(s, tokens, n, 0, false);
}

vkllm_status vkllm_generate(vkllm_session *s, const vkllm_generate_desc *user_desc,
                            vkllm_generate_result *res) {
    if (!s || !user_desc) return VKLLM_ERR_INVALID_ARG;
    vkllm_generate_desc local;
    const vkllm_generate_desc *d = API_IN(vkllm_generate_desc, user_desc, &local);
    vkllm_generate_result r = {0};
    if (res) API_OUT(vkllm_generate_result, res, &r);
    vkllm_model *m = s->model;
    atomic_store(&s->cancel, 0);
    if (d->max_tokens < 0)
        return core_errf(&s->err, VKLLM_ERR_INVALID_ARG, "generate: max_tokens %d < 0",
                         d->max_tokens);
    if (d->prompt && d->tokens)
        return core_errf(&s->err, VKLLM_ERR_INVALID_ARG,
                         "generate: give prompt or tokens, "
                         "not both");
    const vkllm_status cst = sched_sampler_check_openai(d->presence_penalty, d->frequency_penalty,
                                                        d->top_logprobs, "generate", &s->err);
    if (cst != VKLLM_OK) return cst;

    /* 1. the input: the pending token, then the prompt */
    size_t n = 0, room = (size_t)s->n_ctx + 1;
    if (s->pending >= 0) s->tokbuf[n++] = s->pending;
    if (d->prompt) {
        size_t len = d->prompt_len ? d->prompt_len : strlen(d->prompt);
        uint32_t flags = VKLLM_TOKENIZE_PARSE_SPECIAL;
        if (s->n_past == 0 && n == 0) flags |= VKLLM_TOKENIZE_ADD_SPECIAL;
        size_t got = 0;
        vkllm_status st = tok_encode(m->vocab, d->prompt, len, flags & VKLLM_TOKENIZE_ADD_SPECIAL,
                                     true, s->tokbuf + n, room - n, &got, &s->err);
        if (st == VKLLM_ERR_BUFFER_TOO_SMALL || (st == VKLLM_OK && s->n_past + n + got > s->n_ctx))
            return core_errf(&s->err, VKLLM_ERR_CONTEXT_FULL,
                             "prompt is %zu tokens, but the context has room for %u (n_ctx %u, "
                             "%u used)",
                             got, s->n_ctx - s->n_past - (uint32_t)n, s->n_ctx, s->n_past);
        if (st != VKLLM_OK) return st;
        n += got;
    } else if (d->tokens) {
        if (s->n_past + n + d->n_tokens > s->n_ctx)
            return core_errf(&s->err, VKLLM_ERR_CONTEXT_FULL,
                             "prompt is %zu tokens, but the context has room for %u (n_ctx %u)",
                             d->n_tokens, s->n_ctx - s->n_past - (uint32_t)n, s->n_ctx);
        for (size_t i = 0; i < d->n_tokens; i++) {
            if (d->tokens[i] < 0 || (uint32_t)d->tokens[i] >= m->cfg.n_vocab)
                return core_errf(&s->err, VKLLM_ERR_INVALID_ARG,
                                 "generate: token %zu has id "
                                 "%d, out of range",
                                 i, d->tokens[i]);
            s->tokbuf[n++] = d->tokens[i];
        }
    }
    if (n == 0 && s->n_past == 0)
        return core_errf(&s->err, VKLLM_ERR_INVALID_ARG,
                         "generate: empty prompt and empty "
                         "context (nothing to continue from)");

    /* structured output: the run's mask applies from the first generated token */
    struct jsc_run *json = NULL;
    if (d->json_schema) {
        vkllm_status jst = api_json_run(m, d->json_schema, &json, &s->err);
        if (jst != VKLLM_OK) return jst;
    }

    /* 2. prefill */
    sched_sampler_reset(s->sampler, &d->sampling);
    sched_sampler_set_json(s->sampler, json);
    uint32_t n_eog = 0;
    const int32_t *eog_ids = d->ignore_eog ? tok_eog_ids(m->vocab, &n_eog) : NULL;
    /* ignore_eog: never sampled; left out of the candidates by the backend where it can */
    const bool ban = n_eog && s->ctx_bans;
    sched_sampler_set_banned(s->sampler, eog_ids, n_eog, ban);
    if (sched_sampler_set_penalties(s->sampler, d->presence_penalty, d->frequency_penalty) !=
        VKLLM_OK)
        return core_errf(&s->err, VKLLM_ERR_OUT_OF_MEMORY, "generate: out of memory");
    /* log-probabilities are over every logit: then no sampling on the device */
    const uint32_t top = d->on_logprobs ? 0 : sched_sampler_top_needed(s->sampler, ENG_TOP_K_MAX);
    double t0 = core_time_s();
    vkllm_status st = eval_tokens(s, s->tokbuf, n, top, ban);
    if (st != VKLLM_OK) {
        sched_sampler_set_json(s->sampler, NULL);
        jsc_run_free(json);
        return st;
    }
    s->pending = -1;
    r.n_prompt = (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        sched_sampler_accept(s->sampler, s->tokbuf[i]);
    double t1 = core_time_s();
    r.prefill_seconds = t1 - t0;

    /* 3. decode */
    char piece[256];
    for (;;) {
        if (atomic_load(&s->cancel)) {
            r.stop = VKLLM_STOP_CANCELLED;
            break;
        }
        int32_t tok = top ? sched_sampler_sample_top(s->sampler, s->cand_ids, s->cand_vals, top)
                          : sched_sampler_sample(s->sampler, s->logits);
        if (tok < 0) { /* the schema allows no token (sched_sampler_set_json) */
            r.stop = VKLLM_STOP_EOG;
            break;
        }
        sched_sampler_accept_output(s->sampler, tok);
        if (json) jsc_run_accept(json, tok);
        s->pending = tok;
        r.n_generated++;
        if (d->on_logprobs) {
            vkllm_token_logprob tl[VKLLM_TOP_LOGPROBS_MAX];
            float lp;
            const uint32_t nt =
                sched_logprobs(s->logits, m->cfg.n_vocab, tok, d->top_logprobs, &lp, tl);
            d->on_logprobs(d->user, tok, lp, tl, nt);
        }
        bool eog = tok_is_eog(m->vocab, tok) && !d->ignore_eog;
        if (eog) {
            r.stop = VKLLM_STOP_EOG;
            break;
        }
        if (d->on_token) {
            size_t pl = tok_piece(m->vocab, tok, false, piece, sizeof piece);
            if (pl > sizeof piece) pl = sizeof piece;
            if (!d->on_token(d->user, tok, piece, pl)) {
                r.stop = VKLLM_STOP_CALLBACK;
                break;
            }
        }
        if (json && jsc_run_done(json)) { /* the document is closed */
            r.stop = VKLLM_STOP_EOG;
            break;
        }
        if (d->max_tokens > 0 && r.n_generated >= (uint32_t)d->max_tokens) {
            r.stop = VKLLM_STOP_MAX_TOKENS;
            break;
        }
        if (s->n_past + 1 > s->n_ctx) {
            r.stop = VKLLM_STOP_CONTEXT;
            break;
        }
        st = eval_tokens(s, &tok, 1, top, ban);
        if (st != VKLLM_OK) break;
        s->pending = -1;
    }
    r.decode_seconds = core_time_s() - t1;
    sched_sampler_set_json(s->sampler, NULL);
    jsc_run_free(json);
    if (res) API_OUT(vkllm_generate_result, res, &r);
    return st;
}

/* ---- standalone sampler ---- */

struct vkllm_sampler {
    const vkllm_allocator *alloc;
    sched_sampler *s;
};

vkllm_status vkllm_sampler_create(vkllm_model *m, const vkllm_sampling *params,
                                  vkllm_sampler **out) {
    if (!m || !out) return VKLLM_ERR_INVALID_ARG;
    const vkllm_allocator *a = m->rt->alloc;
    vkllm_sampler *smp = core_calloc(a, 1, sizeof *smp);
    if (!smp) return VKLLM_ERR_OUT_OF_MEMORY;
    smp->alloc = a;
    vkllm_status st = sched_sampler_create(a, tok_n_vocab(m->vocab), params, &smp->s);
    if (st != VKLLM_OK) {
        core_free(a, smp);
        return st;
    }
    *out = smp;
    return VKLLM_OK;
}

void vkllm_sampler_destroy(vkllm_sampler *smp) {
    if (!smp) return;
    sched_sampler_free(smp->s);
    core_free(smp->alloc, smp);
}

int32_t vkllm_sampler_sample(vkllm_sampler *smp, const float *logits) {
    return sched_sampler_sample(smp->s, logits);
}

void vkllm_sampler_accept(vkllm_sampler *smp, int32_t token) {
    sched_sampler_accept(smp->s, token);
}
