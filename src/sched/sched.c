/* The scheduler (sched.h): requests, admission, preemption, step planning, commit and the
 * steps' driving; the pages and the prefix cache are in sched_pages.c. */
#include "sched/json_schema.h"
#include "sched/sched_int.h"

#include "sched/logprobs.h"

#include <string.h>

/* ---- requests ---- */

vkllm_status sched_req_create(sched *s, const int32_t *prompt, uint32_t n_prompt,
                              const vkllm_request_desc *d, sched_req **out, core_err *err) {
    *out = NULL;
    if (n_prompt == 0) return core_errf(err, VKLLM_ERR_INVALID_ARG, "request: empty prompt");
    if (n_prompt > s->d.n_ctx)
        return core_errf(err, VKLLM_ERR_CONTEXT_FULL,
                         "request: prompt is %u tokens, the "
                         "context holds %u (n_ctx)",
                         n_prompt, s->d.n_ctx);
    if (d->max_tokens < 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "request: max_tokens %d < 0", d->max_tokens);
    if (d->n_stop && !d->stop)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "request: %zu stop strings, no array",
                         d->n_stop);
    vkllm_status st = sched_sampler_check_openai(d->presence_penalty, d->frequency_penalty,
                                                 d->top_logprobs, "request", err);
    if (st != VKLLM_OK) return st;
    const uint32_t nv = s->d.m->cfg.n_vocab;
    for (uint32_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= nv)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "request: token %u has id %d, out of "
                             "range [0, %u)",
                             i, prompt[i], nv);
    const vkllm_allocator *a = s->a;
    sched_req *r = core_calloc(a, 1, sizeof *r);
    if (!r) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "request: out of memory");
    r->s = s;
    r->a = a;
    r->toks = core_calloc(a, (size_t)s->d.n_ctx + 1, sizeof *r->toks);
    r->pages = core_calloc(a, s->pages_per_seq, sizeof *r->pages);
    r->keys = core_calloc(a, s->pages_per_seq, sizeof *r->keys);
    bool ok = r->toks && r->pages && r->keys;
    if (ok && d->n_stop) {
        r->stop = core_calloc(a, d->n_stop, sizeof *r->stop);
        ok = r->stop != NULL;
        for (size_t i = 0; ok && i < d->n_stop; i++) {
            const char *t = d->stop[i] ? d->stop[i] : "";
            const size_t n = strlen(t);
            if (n == 0) continue; /* an empty stop string never matches */
            r->stop[r->n_stop] = core_alloc(a, n + 1, 0);
            ok = r->stop[r->n_stop] != NULL;
            if (ok) memcpy(r->stop[r->n_stop++], t, n + 1);
            if (n > r->stop_max) r->stop_max = n;
        }
    }
    if (ok) ok = sched_sampler_create(a, nv, &d->sampling, &r->smp) == VKLLM_OK;
    if (ok)
        ok = sched_sampler_set_penalties(r->smp, d->presence_penalty, d->frequency_penalty) ==
             VKLLM_OK;
    if (!ok) {
        sched_req_free(r);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "request: out of memory");
    }
    memcpy(r->toks, prompt, (size_t)n_prompt * sizeof *prompt);
    r->n_prompt = r->n_toks = n_prompt;
    r->res.n_prompt = n_prompt;
    for (uint32_t i = 0; i < n_prompt; i++)
        sched_sampler_accept(r->smp, prompt[i]);
    if (d->ignore_eog) { /* banned from sampling, as llama.cpp's ignore_eos */
        uint32_t n_eog = 0;
        const int32_t *eog = tok_eog_ids(s->d.vocab, &n_eog);
        /* where the backend leaves them out of the candidates (the context has the list), its
         * entries say so and a greedy request stays an argmax, which steps can be fed from */
        r->ban = n_eog && s->ctx_bans;
        sched_sampler_set_banned(r->smp, eog, n_eog, r->ban);
    }
    r->on_logprobs = d->on_logprobs;
    r->top_logprobs = d->top_logprobs;
    /* log-probabilities are over every logit: no device sampling for this one */
    r->top_need = r->on_logprobs ? 0 : sched_sampler_top_needed(r->smp, ENG_TOP_K_MAX);
    r->max_tokens = d->max_tokens;
    r->ignore_eog = d->ignore_eog;
    r->on_token = d->on_token;
    r->user = d->user;
    r->t_submit = core_time_s();
    r->state = SR_QUEUED;
    *out = r;
    return VKLLM_OK;
}

void sched_req_set_json(sched_req *r, jsc_run *run) {
    r->json = run;
    sched_sampler_set_json(r->smp, run);
    r->top_need = sched_sampler_top_needed(r->smp, ENG_TOP_K_MAX);
}

void sched_req_free(sched_req *r) {
    if (!r) return;
    const vkllm_allocator *a = r->a;
    for (size_t i = 0; i < r->n_stop; i++)
        core_free(a, r->stop[i]);
    core_free(a, r->stop);
    sched_sampler_free(r->smp);
    jsc_run_free(r->json);
    core_free(a, r->toks);
    core_free(a, r->pages);
    core_free(a, r->keys);
    core_free(a, r->text);
    for (uint32_t j = 0; j < r->n_lora; j++)
        if (r->lora_release) r->lora_release(r->lora[j].lora);
    core_free(a, r);
}

void sched_add(sched *s, sched_req *r) {
    r->state = SR_WAITING;
    r->next = NULL;
    if (s->wait_tail)
        s->wait_tail->next = r;
    else
        s->wait_head = r;
    s->wait_tail = r;
}

static void wait_push_front(sched *s, sched_req *r) {
    r->next = s->wait_head;
    s->wait_head = r;
    if (!s->wait_tail) s->wait_tail = r;
}

static sched_req *wait_pop(sched *s) {
    sched_req *r = s->wait_head;
    if (!r) return NULL;
    s->wait_head = r->next;
    if (!s->wait_head) s->wait_tail = NULL;
    r->next = NULL;
    return r;
}

static void run_remove(sched *s, uint32_t i) {
    memmove(&s->run[i], &s->run[i + 1], (s->n_run - i - 1) * sizeof *s->run);
    s->n_run--;
}

static uint32_t run_index(const sched *s, const sched_req *r) {
    for (uint32_t i = 0; i < s->n_run; i++)
        if (s->run[i] == r) return i;
    return UINT32_MAX;
}

/* Ends a request: its pages go back, it leaves the queues, it joins the finished list. */
static void finish(sched *s, sched_req *r, vkllm_stop_reason why, vkllm_status status) {
    if (r->state == SR_RUNNING) {
        run_remove(s, run_index(s, r));
    } else if (r->state == SR_WAITING) {
        for (sched_req **q = &s->wait_head, *prev = NULL; *q; prev = *q, q = &(*q)->next)
            if (*q == r) {
                *q = r->next;
                if (s->wait_tail == r) s->wait_tail = prev;
                break;
            }
    }
    sched_req_release_pages(s, r);
    for (uint32_t k = 0; k < s->n_flight; k++) { /* its entries in flight are dropped */
        sched_step *st = &s->step[(s->head + k) & 1];
        for (uint32_t e = 0; e < st->batch.n_seqs; e++)
            if (st->req[e] == r) st->req[e] = NULL;
    }
    r->state = SR_DONE;
    r->res.stop = why;
    r->res.status = status;
    r->res.total_seconds = core_time_s() - r->t_submit;
    r->next = s->finished;
    s->finished = r;
}

static void preempt(sched *s, uint32_t i) {
    sched_req *r = s->run[i];
    run_remove(s, i);
    sched_req_release_pages(s, r);
    r->state = SR_WAITING;
    r->res.n_preempted++;
    s->st.preemptions++;
    wait_push_front(s, r);
}

/* ---- planning ---- */

/* Pages for positions [0, n_pos) of running slot i. Preempts (where allowed: no step in
 * flight) younger sequences that have nothing planned when the pool is empty; false when no
 * page can be had. */
static bool ensure_pages(sched *s, uint32_t i, uint32_t n_pos, bool may_preempt) {
    sched_req *r = s->run[i];
    while (r->n_pages * ENG_PAGE < n_pos) {
        uint32_t p = sched_page_alloc(s);
        if (p == NO_PAGE) {
            const uint32_t y = s->n_run - 1;
            if (!may_preempt || y == i || s->run[y]->n_sched) return false;
            preempt(s, y);
            continue;
        }
        r->pages[r->n_pages++] = p;
    }
    return true;
}

/* Positions [pos, pos + n) of r as the step's next entry. feed (1 + an output row of the step
 * in flight): the one token at pos = n_toks is not sampled yet; the device supplies it. */
static void add_entry(sched_step *st, sched_req *r, uint32_t pos, uint32_t n, uint8_t mode,
                      uint32_t feed) {
    eng_batch *b = &st->batch;
    eng_seq *e = &st->seqs[b->n_seqs];
    memcpy(st->tokens + b->n_tokens, r->toks + pos, (size_t)n * sizeof *r->toks);
    *e = (eng_seq){.n_tokens = n,
                   .pos0 = pos,
                   .mode = mode,
                   .pages = r->pages,
                   .out = feed || pos + n == r->n_toks,
                   .feed = feed,
                   .ban = r->ban,
                   .n_lora = r->n_lora};
    if (r->n_lora) { /* the step's own copy: it may outlive the request (overlap) */
        eng_lora_use *u = st->lora + (uint64_t)b->n_seqs * ENG_LORA_MAX_PER_SEQ;
        memcpy(u, r->lora, r->n_lora * sizeof *u);
        e->lora = u;
    }
    st->req[b->n_seqs++] = r;
    b->n_tokens += n;
    b->n_out += e->out ? 1u : 0u;
    r->n_sched += n;
}

/* Entries for running slot i, up to `avail` tokens: prompt tokens in pieces of their chunks,
 * generated tokens (being recomputed) one per entry. Returns the tokens added. */
static uint32_t plan_seq(sched *s, sched_step *st, uint32_t i, uint32_t avail) {
    const uint32_t C = s->d.n_batch;
    uint32_t added = 0;
    while (avail > added && st->batch.n_seqs < s->max_entries) {
        sched_req *r = s->run[i];
        const uint32_t pos = r->n_done + r->n_sched;
        if (pos >= r->n_toks) break;
        uint32_t n = 1;
        if (pos < r->n_prompt) {
            const uint32_t end = (pos / C + 1) * C < r->n_prompt ? (pos / C + 1) * C : r->n_prompt;
            n = end - pos < avail - added ? end - pos : avail - added;
        }
        if (!ensure_pages(s, i, pos + n, true)) break;
        add_entry(st, r, pos, n, sched_tok_mode(s, r, pos), 0);
        added += n;
    }
    return added;
}

/* Takes prefix-cache pages for a waiting request and makes it running, if the pages its
 * known tokens need are available (admission waits otherwise). */
static bool admit(sched *s, sched_req *r) {
    uint32_t hits = 0, hits_idle = 0;
    uint64_t parent = r->lora_root;
    const uint32_t max_hit = (r->n_toks - 1) / ENG_PAGE; /* leave a token to compute */
    while (s->d.prefix_cache && hits < max_hit) {
        const uint64_t key = sched_page_key(s, r, hits, parent);
        const uint32_t p = sched_cache_find(s, r, hits, key, parent);
        if (p == NO_PAGE) break;
        r->pages[hits] = p;
        r->keys[hits] = key;
        hits_idle += s->ref[p] == 0;
        parent = key;
        hits++;
    }
    const uint32_t need = (r->n_toks + ENG_PAGE - 1) / ENG_PAGE - hits;
    const uint32_t avail = s->n_free + s->n_lru - hits_idle;
    /* with others running, keep a page for each of them to grow into */
    if (need > avail || (s->n_run && need + s->n_run > avail)) return false;
    for (uint32_t i = 0; i < hits; i++)
        sched_page_take(s, r->pages[i]);
    r->n_pages = r->n_keys = hits;
    r->n_done = hits * ENG_PAGE;
    const uint32_t cached_prompt = r->n_done < r->n_prompt ? r->n_done : r->n_prompt;
    if (r->res.n_preempted == 0) {
        r->res.n_cached = cached_prompt;
        r->res.queue_seconds = core_time_s() - r->t_submit;
    }
    s->st.tokens_cached += cached_prompt;
    r->state = SR_RUNNING;
    r->admit_no = ++s->admit_counter;
    r->n_sched = 0;
    s->run[s->n_run++] = r;
    return true;
}

/* Builds the next step (none in flight); false when there is nothing to run. */
static bool plan(sched *s, sched_step *st) {
    /* cancellations first */
    for (uint32_t i = s->n_run; i-- > 0;)
        if (atomic_load(&s->run[i]->cancel)) finish(s, s->run[i], VKLLM_STOP_CANCELLED, VKLLM_OK);
    for (sched_req *r = s->wait_head, *nx; r; r = nx) {
        nx = r->next;
        if (atomic_load(&r->cancel)) finish(s, r, VKLLM_STOP_CANCELLED, VKLLM_OK);
    }
    eng_batch *b = &st->batch;
    b->n_tokens = b->n_seqs = b->n_out = 0;
    uint32_t budget = s->d.n_batch;
    /* running sequences, oldest first; a token kept for each later one that decodes */
    uint32_t later = 0; /* decoding sequences not yet planned */
    for (uint32_t j = 0; j < s->n_run; j++)
        later += s->run[j]->n_toks - s->run[j]->n_done == 1;
    for (uint32_t i = 0; i < s->n_run && budget; i++) {
        const sched_req *r = s->run[i];
        const bool decoding = r->n_toks - r->n_done == 1;
        if (decoding) later--;
        const uint32_t avail = decoding ? 1 : (budget > later ? budget - later : 0);
        if (avail == 0) continue;
        const uint32_t before = s->n_run;
        budget -= plan_seq(s, st, i, avail);
        if (s->n_run < before && i >= s->n_run) break; /* preempted itself: none left */
        if (s->n_run < before) { /* younger ones were preempted: count the rest again */
            later = 0;
            for (uint32_t j = i + 1; j < s->n_run; j++)
                later += s->run[j]->n_toks - s->run[j]->n_done == 1;
        }
    }
    /* then new (or preempted) requests while there is room */
    while (s->wait_head && s->n_run < s->d.max_seqs && budget &&
           st->batch.n_seqs < s->max_entries) {
        sched_req *r = s->wait_head;
        if (!admit(s, r)) break;
        wait_pop(s);
        budget -= plan_seq(s, st, s->n_run - 1, budget);
    }
    return b->n_seqs > 0;
}

/* Candidates per output row the step's samplers need: 1 (argmax) when all are greedy, 0
 * (full logits) when one needs them all. */
static uint32_t step_top(const sched_step *st) {
    uint32_t top = 1;
    for (uint32_t e = 0; e < st->batch.n_seqs; e++)
        if (st->batch.seqs[e].out) {
            const uint32_t need = st->req[e]->top_need;
            if (need == 0)
                top = 0;
            else if (top && need > top)
                top = need;
        }
    return top;
}

/* The step after cur, planned while cur runs (sched.h, overlap): when every entry of cur is a
 * greedy output of its own sequence and no waiting request could start, each sequence that
 * goes on gets one entry at its next position, fed from cur's argmax. False (and nothing
 * planned) otherwise; the serial plan then runs after the commit. */
static bool plan_fed(sched *s, const sched_step *cur, sched_step *nx) {
    const eng_batch *cb = &cur->batch;
    if (!s->d.overlap || !s->d.be->feeds || cb->top_k != 1 || cb->n_out != cb->n_seqs ||
        cb->n_seqs != s->n_run || (s->wait_head && s->n_run < s->d.max_seqs))
        return false;
    for (uint32_t e = 0; e < cb->n_seqs; e++) {
        const sched_req *r = cur->req[e];
        if (!r || r->state != SR_RUNNING || atomic_load(&r->cancel) || r->n_toks >= s->d.n_ctx)
            return false;
    }
    eng_batch *b = &nx->batch;
    b->n_tokens = b->n_seqs = b->n_out = 0;
    for (uint32_t e = 0; e < cb->n_seqs; e++) {
        sched_req *r = cur->req[e];
        /* one that ends at this commit for sure gets no entry */
        if (r->max_tokens > 0 && r->res.n_generated + 1 >= (uint32_t)r->max_tokens) continue;
        if (!ensure_pages(s, run_index(s, r), r->n_toks + 1, false)) {
            for (uint32_t k = 0; k < b->n_seqs; k++)
                nx->req[k]->n_sched--;
            b->n_seqs = 0;
            return false;
        }
        add_entry(nx, r, r->n_toks, 1, sched_tok_mode(s, r, r->n_toks), e + 1);
    }
    b->top_k = 1;
    return b->n_seqs > 0;
}

/* ---- commit ---- */

/* Newly full pages of a request join the prefix cache (unless an equal page is there). */
static void register_pages(sched *s, sched_req *r) {
    while ((r->n_keys + 1) * ENG_PAGE <= r->n_done && r->n_keys < r->n_pages) {
        const uint32_t pi = r->n_keys, p = r->pages[pi];
        const uint64_t parent = pi ? r->keys[pi - 1] : r->lora_root;
        const uint64_t key = sched_page_key(s, r, pi, parent);
        if (!s->pkey[p] && sched_cache_find(s, r, pi, key, parent) == NO_PAGE)
            sched_cache_insert(s, p, r, pi, key, parent);
        r->keys[r->n_keys++] = key;
    }
}

/* ---- the requests' callbacks, through sched_desc.call ---- */

typedef struct token_call {
    int32_t tok;
    const char *piece;
    size_t len;
} token_call;

static bool call_on_token(sched_req *r, void *arg) {
    const token_call *t = arg;
    return r->on_token(r->user, t->tok, t->piece, t->len);
}

typedef struct logprobs_call {
    int32_t tok;
    float lp;
    const vkllm_token_logprob *top;
    uint32_t n_top;
} logprobs_call;

static bool call_on_logprobs(sched_req *r, void *arg) {
    const logprobs_call *l = arg;
    r->on_logprobs(r->user, l->tok, l->lp, l->top, l->n_top);
    return true;
}

static bool call_user(sched *s, sched_req *r, bool (*fn)(sched_req *, void *), void *arg) {
    return s->d.call ? s->d.call(s->d.call_ctx, r, fn, arg) : fn(r, arg);
}

/* Appends a sampled token; finishes the request when a stop condition holds. logits: the
 * row it was sampled from (NULL: only candidates; never so for a request with on_logprobs). */
static void take_token(sched *s, sched_req *r, int32_t tok, const float *logits) {
    if (tok < 0) { /* the schema allows nothing more (sched_sampler_sample) */
        finish(s, r, VKLLM_STOP_EOG, VKLLM_OK);
        return;
    }
    sched_sampler_accept_output(r->smp, tok);
    if (r->json) jsc_run_accept(r->json, tok);
    r->toks[r->n_toks++] = tok;
    r->res.n_generated++;
    s->st.tokens_decoded++;
    if (r->res.n_generated == 1) r->res.ttft_seconds = core_time_s() - r->t_submit;
    if (r->on_logprobs && logits) {
        vkllm_token_logprob top[VKLLM_TOP_LOGPROBS_MAX];
        logprobs_call l = {.tok = tok, .top = top};
        l.n_top = sched_logprobs(logits, s->d.m->cfg.n_vocab, tok, r->top_logprobs, &l.lp, top);
        call_user(s, r, call_on_logprobs, &l);
    }
    if (tok_is_eog(s->d.vocab, tok) && !r->ignore_eog) {
        finish(s, r, VKLLM_STOP_EOG, VKLLM_OK);
        return;
    }
    char piece[256];
    size_t pl = tok_piece(s->d.vocab, tok, false, piece, sizeof piece);
    if (pl > sizeof piece) pl = sizeof piece;
    if (r->text_len + pl + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap * 2 : 256;
        while (cap < r->text_len + pl + 1)
            cap *= 2;
        char *t = core_alloc(s->a, cap, 0);
        if (!t) {
            finish(s, r, VKLLM_STOP_ERROR, VKLLM_ERR_OUT_OF_MEMORY);
            return;
        }
        if (r->text_len) memcpy(t, r->text, r->text_len);
        core_free(s->a, r->text);
        r->text = t;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, piece, pl);
    r->text_len += pl;
    r->text[r->text_len] = '\0';
    for (size_t i = 0; i < r->n_stop; i++) {
        const size_t n = strlen(r->stop[i]);
        const size_t from = r->text_len >= pl + n ? r->text_len - pl - n + 1 : 0;
        for (size_t at = from; at + n <= r->text_len; at++)
            if (memcmp(r->text + at, r->stop[i], n) == 0) {
                r->text_len = at;
                r->text[at] = '\0';
                finish(s, r, VKLLM_STOP_STRING, VKLLM_OK);
                return;
            }
    }
    bool go = true;
    if (r->on_token) go = call_user(s, r, call_on_token, &(token_call){tok, piece, pl});
    if (!go) {
        finish(s, r, VKLLM_STOP_CALLBACK, VKLLM_OK);
        return;
    }
    if (r->json && jsc_run_done(r->json)) { /* the document is closed: nothing may follow */
        finish(s, r, VKLLM_STOP_EOG, VKLLM_OK);
        return;
    }
    if (r->max_tokens > 0 && r->res.n_generated >= (uint32_t)r->max_tokens) {
        finish(s, r, VKLLM_STOP_MAX_TOKENS, VKLLM_OK);
        return;
    }
    if (r->n_toks > s->d.n_ctx) finish(s, r, VKLLM_STOP_CONTEXT, VKLLM_OK);
}

static void commit(sched *s, sched_step *st) {
    const eng_batch *b = &st->batch;
    const uint32_t nv = s->d.m->cfg.n_vocab, top = b->top_k;
    s->st.steps++;
    for (uint32_t e = 0; e < b->n_seqs; e++) { /* first every entry's positions */
        sched_req *r = st->req[e];
        if (!r) continue;
        r->n_done += b->seqs[e].n_tokens;
        r->n_sched -= b->seqs[e].n_tokens;
        if (s->d.prefix_cache) register_pages(s, r);
    }
    uint32_t o = 0;
    for (uint32_t e = 0; e < b->n_seqs; e++) {
        if (b->seqs[e].n_tokens > 1 || !b->seqs[e].out)
            s->st.tokens_prefilled += b->seqs[e].n_tokens;
        if (!b->seqs[e].out) continue;
        sched_req *r = st->req[e];
        const uint32_t row = o++;
        if (!r || r->state != SR_RUNNING) continue; /* ended while the step ran */
        const float *logits = top ? NULL : s->logits + (uint64_t)row * nv;
        const int32_t tok =
            top ? sched_sampler_sample_top(r->smp, st->cand_ids + (uint64_t)row * top,
                                           st->cand_vals + (uint64_t)row * top, r->top_need)
                : sched_sampler_sample(r->smp, logits);
        take_token(s, r, tok, logits);
    }
}

/* ---- driving ---- */

/* A step failed (n: the steps involved from head, planned or in flight): the requests in them
 * fail too; a step still in flight is waited for first. */
static vkllm_status fail_steps(sched *s, uint32_t n, vkllm_status st) {
    for (uint32_t k = 1; k < s->n_flight; k++) { /* let the device finish the later one */
        bool done = false;
        core_err e;
        while (s->d.be->vt->advance(s->ctx, 0.0, &done, &e) == VKLLM_OK && !done) {
        }
    }
    if (s->n_flight > n) n = s->n_flight;
    s->n_flight = 0;
    for (uint32_t k = 0; k < n; k++) {
        sched_step *p = &s->step[(s->head + k) & 1];
        for (uint32_t e = 0; e < p->batch.n_seqs; e++) {
            sched_req *r = p->req[e];
            if (r && r->state == SR_RUNNING) finish(s, r, VKLLM_STOP_ERROR, st);
        }
        p->batch.n_seqs = 0;
    }
    return st;
}

vkllm_status sched_advance(sched *s, double deadline, bool *ready, core_err *err) {
    *ready = s->to_commit != NULL;
    if (*ready) return VKLLM_OK; /* sched_commit first */
    eng_backend *be = s->d.be;
    vkllm_status st = VKLLM_OK;
    if (s->n_flight == 0) {
        sched_step *p = &s->step[s->head];
        if (!plan(s, p)) return VKLLM_OK;
        /* sample on the device when every output's sampler can (a few candidates suffice) */
        p->batch.top_k = step_top(p);
        st = be->vt->begin(s->ctx, &p->batch, s->logits, err);
        if (st != VKLLM_OK) return fail_steps(s, 1, st);
        s->n_flight = 1;
    }
    if (s->n_flight == 1) { /* the next step, while this one runs, where it can be planned */
        sched_step *nx = &s->step[s->head ^ 1];
        if (plan_fed(s, &s->step[s->head], nx)) {
            core_err ferr = {{0}};
            if (be->vt->begin(s->ctx, &nx->batch, s->logits, &ferr) == VKLLM_OK) {
                s->n_flight = 2;
                s->st.steps_overlapped++;
            } else { /* not taken: the serial plan builds it after the commit */
                for (uint32_t e = 0; e < nx->batch.n_seqs; e++)
                    nx->req[e]->n_sched--;
                nx->batch.n_seqs = 0;
            }
        }
    }
    bool done = false;
    st = be->vt->advance(s->ctx, deadline, &done, err);
    if (st != VKLLM_OK) return fail_steps(s, 1, st);
    if (!done) return VKLLM_OK;
    sched_step *p = &s->step[s->head];
    s->head ^= 1; /* p is no longer in flight: finishing a request in it skips p */
    s->n_flight--;
    s->to_commit = p;
    *ready = true;
    return VKLLM_OK;
}

void sched_commit(sched *s) {
    sched_step *p = s->to_commit;
    if (!p) return;
    s->to_commit = NULL;
    commit(s, p);
}

uint32_t sched_active(const sched *s) {
    uint32_t n = s->n_run;
    for (const sched_req *r = s->wait_head; r; r = r->next)
        n++;
    return n;
}

sched_req *sched_take_finished(sched *s) {
    sched_req *f = s->finished;
    s->finished = NULL;
    return f;
}

void sched_stats(const sched *s, vkllm_engine_stats *out) {
    *out = s->st;
    out->pages_total = s->d.n_pages;
    out->pages_used = s->d.n_pages - s->n_free - s->n_lru;
    out->pages_cached = s->n_lru;
    out->running = s->n_run;
    out->waiting = 0;
    for (const sched_req *r = s->wait_head; r; r = r->next)
        out->waiting++;
}

/* ---- create / destroy ---- */

bool sched_busy(const sched *s) {
    return s->n_flight > 0 || s->to_commit != NULL;
}

void sched_cancel_all(sched *s) {
    s->to_commit = NULL;                 /* its requests are finished below */
    for (; s->n_flight; s->n_flight--) { /* the device finishes before block tables go */
        bool done = false;
        core_err e;
        while (s->d.be->vt->advance(s->ctx, 0.0, &done, &e) == VKLLM_OK && !done) {
        }
    }
    while (s->n_run)
        finish(s, s->run[s->n_run - 1], VKLLM_STOP_CANCELLED, VKLLM_OK);
    while (s->wait_head)
        finish(s, s->wait_head, VKLLM_STOP_CANCELLED, VKLLM_OK);
}

void sched_destroy(sched *s) {
    if (!s) return;
    const vkllm_allocator *a = s->a;
    if (s->ctx) s->d.be->vt->ctx_destroy(s->ctx);
    void *bufs[] = {s->ref,    s->free_stack, s->pkey,     s->pparent,  s->ptok, s->pmode,
                    s->bucket, s->hnext,      s->lru_prev, s->lru_next, s->run,  s->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        core_free(a, bufs[i]);
    for (int k = 0; k < 2; k++) {
        sched_step *p = &s->step[k];
        void *sb[] = {p->tokens, p->seqs, p->req, p->cand_ids, p->cand_vals, p->lora};
        for (size_t i = 0; i < sizeof sb / sizeof sb[0]; i++)
            core_free(a, sb[i]);
    }
    core_free(a, s);
}

vkllm_status sched_create(const sched_desc *d, sched **out, core_err *err) {
    *out = NULL;
    const vkllm_allocator *a = d->alloc;
    sched *s = core_calloc(a, 1, sizeof *s);
    if (!s) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "engine: out of memory");
    s->d = *d;
    s->a = a;
    s->pages_per_seq = (d->n_ctx + ENG_PAGE - 1) / ENG_PAGE;
    s->max_entries = d->max_seqs + 64;
    const uint32_t np = d->n_pages, nv = d->m->cfg.n_vocab;
    s->n_buckets = 1;
    while (s->n_buckets < np)
        s->n_buckets <<= 1;
    s->ref = core_calloc(a, np, sizeof *s->ref);
    s->free_stack = core_calloc(a, np, sizeof *s->free_stack);
    s->pkey = core_calloc(a, np, sizeof *s->pkey);
    s->pparent = core_calloc(a, np, sizeof *s->pparent);
    s->ptok = core_calloc(a, (size_t)np * ENG_PAGE, sizeof *s->ptok);
    s->pmode = core_calloc(a, (size_t)np * ENG_PAGE, sizeof *s->pmode);
    s->bucket = core_calloc(a, s->n_buckets, sizeof *s->bucket);
    s->hnext = core_calloc(a, np, sizeof *s->hnext);
    s->lru_prev = core_calloc(a, np, sizeof *s->lru_prev);
    s->lru_next = core_calloc(a, np, sizeof *s->lru_next);
    s->run = core_calloc(a, d->max_seqs, sizeof *s->run);
    s->logits = core_calloc(a, (size_t)d->max_seqs * nv, sizeof *s->logits);
    bool ok = s->ref && s->free_stack && s->pkey && s->pparent && s->ptok && s->pmode &&
              s->bucket && s->hnext && s->lru_prev && s->lru_next && s->run && s->logits;
    for (int k = 0; k < 2; k++) {
        sched_step *p = &s->step[k];
        p->tokens = core_calloc(a, d->n_batch, sizeof *p->tokens);
        p->seqs = core_calloc(a, s->max_entries, sizeof *p->seqs);
        p->req = core_calloc(a, s->max_entries, sizeof *p->req);
        p->cand_ids = core_calloc(a, (size_t)d->max_seqs * ENG_TOP_K_MAX, sizeof *p->cand_ids);
        p->cand_vals = core_calloc(a, (size_t)d->max_seqs * ENG_TOP_K_MAX, sizeof *p->cand_vals);
        p->lora = core_calloc(a, (size_t)s->max_entries * ENG_LORA_MAX_PER_SEQ, sizeof *p->lora);
        ok = ok && p->tokens && p->seqs && p->req && p->cand_ids && p->cand_vals && p->lora;
        p->batch = (eng_batch){
            .tokens = p->tokens, .seqs = p->seqs, .out_ids = p->cand_ids, .out_vals = p->cand_vals};
    }
    if (!ok) {
        sched_destroy(s);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "engine: out of memory for %u pages", np);
    }
    for (uint32_t i = 0; i < s->n_buckets; i++)
        s->bucket[i] = NO_PAGE;
    for (uint32_t p = 0; p < np; p++)
        s->free_stack[s->n_free++] = np - 1 - p;
    s->lru_head = s->lru_tail = NO_PAGE;
    /* the EOG ids, for requests with ignore_eog, where the backend selects without them */
    uint32_t n_eog = 0;
    const int32_t *eog = d->be->bans ? tok_eog_ids(d->vocab, &n_eog) : NULL;
    s->ctx_bans = eog && n_eog;
    const eng_ctx_desc cd = {.n_ctx = d->n_ctx,
                             .n_batch = d->n_batch,
                             .n_seqs = s->max_entries,
                             .n_pages = np,
                             .kv_q8_0 = d->kv_q8_0,
                             .paced = d->paced,
                             .ban = s->ctx_bans ? eog : NULL,
                             .n_ban = s->ctx_bans ? n_eog : 0};
    vkllm_status st = d->be->vt->ctx_create(d->be, d->m, d->g, &cd, &s->ctx, err);
    if (st == VKLLM_OK && d->warmup && d->be->vt->warmup) st = d->be->vt->warmup(s->ctx, err);
    if (st != VKLLM_OK) {
        sched_destroy(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}
