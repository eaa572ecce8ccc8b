/* A model split over several backends (split.h). A step runs the stages one after the other:
 * stage s takes the batch's residual stream from stage s - 1 (eng_batch.x_in) and hands its
 * own to stage s + 1 (x_out); only the last stage has outputs. Every stage does the arithmetic
 * its backend does for a whole model, and the backends give the same bits, so a split model's
 * tokens are those of the model on one backend. */
#include "engine/split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct split_backend {
    eng_backend base;
    eng_backend_vtbl vt;
    const vkllm_allocator *alloc;
    const eng_model *whole;
    uint32_t n;
    eng_split_stage st[ENG_SPLIT_MAX];
    eng_model view[ENG_SPLIT_MAX];
    eng_graph graph[ENG_SPLIT_MAX];
    bool attached[ENG_SPLIT_MAX];
    uint32_t main; /* the stage with the most layers: device info, measurements */
} split_backend;

/* A step is cut into micro-batches of consecutive entries; stage s works on micro-batch
 * t - s at tick t, so while one device runs a micro-batch the next device runs the one before
 * (a Vulkan stage's begin returns while its device works; the CPU stage then runs on the
 * host). One micro-batch: the stages one after the other. */
#define SPLIT_MB_TOKENS 64 /* tokens a micro-batch needs, at least (plan) */

typedef struct split_mb {
    uint32_t e0, e1; /* entries */
    uint32_t t0;     /* first token row */
    uint32_t o0;     /* first output row */
} split_mb;

struct eng_ctx {
    split_backend *sb;
    eng_ctx *sub[ENG_SPLIT_MAX];
    eng_ctx_desc cd;
    uint32_t n_embd, n_vocab;
    float *x[ENG_SPLIT_MAX - 1]; /* residual stream after stage s, n_batch x n_embd */
    eng_seq *mid; /* the batch's entries without outputs, for the stages before the last */
    eng_batch bs[ENG_SPLIT_MAX]; /* each stage's micro-batch in progress */
    split_mb mb[ENG_SPLIT_MAX];
    uint32_t n_mb, max_mb; /* micro-batches of this step; at most (VKLLM_SPLIT_MICRO) */
    bool forced;           /* VKLLM_SPLIT_MICRO set: max_mb whatever the step's size */
    const eng_batch *b;
    float *logits;
    uint32_t tick;
    bool begun;          /* this tick's stages have begun */
    uint32_t begun_mask; /* stages begun in this tick, and done */
    uint32_t done_mask;
    bool busy;
};

/* err's message, prefixed with the stage it came from. */
static void stage_err(const split_backend *sb, uint32_t s, vkllm_status st, core_err *err) {
    char msg[CORE_ERR_LEN], layers[32];
    snprintf(msg, sizeof msg, "%s", err->msg);
    const eng_split_stage *g = &sb->st[s];
    if (g->l1 > g->l0)
        snprintf(layers, sizeof layers, "layers %u-%u", g->l0, g->l1 - 1);
    else
        snprintf(layers, sizeof layers, "the head");
    core_errf(err, st, "%s (%s): %s", g->device, layers, msg);
}

static void split_destroy(eng_backend *base) {
    split_backend *sb = (split_backend *)base;
    if (!sb) return;
    for (uint32_t s = 0; s < sb->n; s++) {
        if (sb->attached[s]) sb->st[s].be->vt->model_detach(sb->st[s].be, &sb->view[s]);
        eng_graph_free(&sb->graph[s], sb->alloc);
    }
    core_free(sb->alloc, sb);
}

static vkllm_status split_attach(eng_backend *base, const eng_model *m, core_err *err) {
    split_backend *sb = (split_backend *)base;
    if (m != sb->whole)
        return core_errf(err, VKLLM_ERR_INTERNAL, "split: attached to another model");
    for (uint32_t s = 0; s < sb->n; s++) {
        if (sb->attached[s]) continue;
        eng_backend *be = sb->st[s].be;
        vkllm_status st = be->vt->model_attach(be, &sb->view[s], err);
        if (st != VKLLM_OK) {
            stage_err(sb, s, st, err);
            return st;
        }
        sb->attached[s] = true;
    }
    return VKLLM_OK;
}

static void split_detach(eng_backend *base, const eng_model *m) {
    split_backend *sb = (split_backend *)base;
    if (m != sb->whole) return;
    for (uint32_t s = 0; s < sb->n; s++)
        if (sb->attached[s]) {
            sb->st[s].be->vt->model_detach(sb->st[s].be, &sb->view[s]);
            sb->attached[s] = false;
        }
}

static void split_ctx_destroy(eng_ctx *c) {
    if (!c) return;
    split_backend *sb = c->sb;
    for (uint32_t s = 0; s < sb->n; s++)
        if (c->sub[s]) sb->st[s].be->vt->ctx_destroy(c->sub[s]);
    for (uint32_t s = 0; s + 1 < ENG_SPLIT_MAX; s++)
        core_free(sb->alloc, c->x[s]);
    core_free(sb->alloc, c->mid);
    core_free(sb->alloc, c);
}

static vkllm_status split_ctx_create(eng_backend *base, const eng_model *m, const eng_graph *g,
                                     const eng_ctx_desc *cd, eng_ctx **out, core_err *err) {
    (void)g; /* each stage runs its own part of the graph */
    split_backend *sb = (split_backend *)base;
    *out = NULL;
    if (m != sb->whole) return core_errf(err, VKLLM_ERR_INTERNAL, "split: another model");
    eng_ctx *c = core_calloc(sb->alloc, 1, sizeof *c);
    if (!c) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "split: out of memory");
    c->sb = sb;
    c->cd = *cd;
    if (!c->cd.n_seqs) c->cd.n_seqs = 1;
    c->n_embd = m->cfg.n_embd;
    c->n_vocab = m->cfg.n_vocab;
    /* micro-batches a step is cut into, at most: one per stage (every device busy once the
     * pipeline is full), and only where they are large enough (plan); VKLLM_SPLIT_MICRO
     * forces a count (1: the stages one after the other) */
    c->max_mb = sb->n;
    const char *env = getenv("VKLLM_SPLIT_MICRO");
    if (env && *env) {
        const long v = strtol(env, NULL, 10);
        c->max_mb = v < 1 ? 1 : v > 64 ? 64 : (uint32_t)v;
        c->forced = true;
    }
    const uint64_t x_floats = (uint64_t)cd->n_batch * m->cfg.n_embd;
    bool ok = true;
    for (uint32_t s = 0; s + 1 < sb->n; s++)
        ok = ok && (c->x[s] = core_calloc(sb->alloc, x_floats, sizeof(float))) != NULL;
    c->mid = core_calloc(sb->alloc, c->cd.n_seqs, sizeof *c->mid);
    if (!ok || !c->mid) {
        split_ctx_destroy(c);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "split: out of memory for the residual streams of %u-token batches",
                         cd->n_batch);
    }
    for (uint32_t s = 0; s < sb->n; s++) {
        eng_ctx_desc sd = *cd;
        if (s + 1 < sb->n) { /* no outputs before the last stage: nothing to ban */
            sd.ban = NULL;
            sd.n_ban = 0;
        }
        eng_backend *be = sb->st[s].be;
        vkllm_status st = be->vt->ctx_create(be, &sb->view[s], &sb->graph[s], &sd, &c->sub[s], err);
        if (st != VKLLM_OK) {
            stage_err(sb, s, st, err);
            split_ctx_destroy(c);
            return st;
        }
    }
    *out = c;
    return VKLLM_OK;
}

/* Micro-batch k of the step as stage s sees it, begun. */
static vkllm_status stage_begin(eng_ctx *c, uint32_t s, uint32_t k, core_err *err) {
    split_backend *sb = c->sb;
    const eng_batch *b = c->b;
    const split_mb *mb = &c->mb[k];
    eng_batch *bs = &c->bs[s];
    *bs = *b;
    bs->n_seqs = mb->e1 - mb->e0;
    bs->n_tokens = (k + 1 < c->n_mb ? c->mb[k + 1].t0 : b->n_tokens) - mb->t0;
    bs->tokens = b->tokens + mb->t0;
    bs->n_out = (k + 1 < c->n_mb ? c->mb[k + 1].o0 : b->n_out) - mb->o0;
    bs->x_in = s > 0 ? c->x[s - 1] + (uint64_t)mb->t0 * c->n_embd : NULL;
    bs->x_out = NULL;
    float *logits = NULL;
    if (s + 1 < sb->n) {
        bs->x_out = c->x[s] + (uint64_t)mb->t0 * c->n_embd;
        bs->seqs = c->mid + mb->e0;
        bs->n_out = 0;
        bs->top_k = 0;
        bs->out_ids = NULL;
        bs->out_vals = NULL;
    } else {
        bs->seqs = b->seqs + mb->e0;
        if (b->top_k) {
            bs->out_ids = b->out_ids + (uint64_t)mb->o0 * b->top_k;
            bs->out_vals = b->out_vals ? b->out_vals + (uint64_t)mb->o0 * b->top_k : NULL;
        } else if (c->logits) {
            logits = c->logits + (uint64_t)mb->o0 * c->n_vocab;
        }
        if (b->top_k) logits = c->logits; /* scratch the backend may ignore */
    }
    return sb->st[s].be->vt->begin(c->sub[s], bs, logits, err);
}

/* Cuts the batch into up to max_mb micro-batches of about equal tokens, whole entries each
 * (an entry's tokens attend in one pass; a sequence split over two entries keeps its order:
 * every stage runs the micro-batches in order). */
static void plan(eng_ctx *c) {
    const eng_batch *b = c->b;
    uint32_t want = c->max_mb < b->n_seqs ? c->max_mb : b->n_seqs;
    /* A stage reads all its weights for each micro-batch: where a step's time is the weights'
     * reading (decode, small batches), M micro-batches over S stages take longer than none
     * (t_1 + ... + t_S plus the overlap ticks), so only steps of SPLIT_MB_TOKENS tokens a
     * micro-batch or more, whose products are compute-bound, are pipelined. */
    if (!c->forced && want > b->n_tokens / SPLIT_MB_TOKENS) want = b->n_tokens / SPLIT_MB_TOKENS;
    if (want < 1) want = 1;
    uint32_t t = 0, o = 0, e = 0;
    c->n_mb = 0;
    for (uint32_t k = 0; k < want; k++) {
        const uint64_t until = (uint64_t)b->n_tokens * (k + 1) / want;
        const uint32_t after = want - k - 1; /* micro-batches still to come: an entry each */
        split_mb *mb = &c->mb[c->n_mb++];
        mb->e0 = e;
        mb->t0 = t;
        mb->o0 = o;
        do {
            t += b->seqs[e].n_tokens;
            o += eng_seq_outs(&b->seqs[e]);
            e++;
        } while (e < b->n_seqs && b->n_seqs - e > after && (after == 0 || t < until));
        mb->e1 = e;
    }
}

static vkllm_status split_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    if (c->busy)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: a step is in progress already");
    if (b->n_seqs == 0 || b->n_seqs > c->cd.n_seqs)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: %u entries, the context takes 1 to %u",
                         b->n_seqs, c->cd.n_seqs);
    for (uint32_t e = 0; e < b->n_seqs; e++) {
        if (b->seqs[e].feed)
            return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                             "split: entry %u is fed from a step in flight (one step at a "
                             "time over a split)",
                             e);
        c->mid[e] = b->seqs[e];
        c->mid[e].out = false;
        c->mid[e].out_rows = 0;
        c->mid[e].ban = false;
    }
    c->b = b;
    c->logits = logits;
    plan(c);
    c->tick = 0;
    c->begun = false;
    c->begun_mask = c->done_mask = 0;
    c->busy = true;
    return VKLLM_OK;
}

/* Ticks until the step is done or the deadline passes: at tick t, stage s runs micro-batch
 * t - s. Every stage's part of a tick is begun before any is waited for, so the devices of a
 * tick work at once (a stage's begin takes its input then: the tick before produced it). */
static vkllm_status split_advance(eng_ctx *c, double deadline, bool *done, core_err *err) {
    *done = false;
    if (!c->busy) return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: no step in progress");
    split_backend *sb = c->sb;
    const uint32_t n_ticks = c->n_mb + sb->n - 1;
    vkllm_status st = VKLLM_OK;
    while (st == VKLLM_OK && c->tick < n_ticks) {
        const uint32_t t = c->tick;
        const uint32_t s0 = t >= c->n_mb ? t - c->n_mb + 1 : 0, s1 = t < sb->n ? t : sb->n - 1;
        for (uint32_t s = s0; !c->begun && s <= s1 && st == VKLLM_OK; s++) {
            st = stage_begin(c, s, t - s, err);
            if (st == VKLLM_OK) c->begun_mask |= 1u << s;
        }
        c->begun = true;
        for (uint32_t s = s0; s <= s1 && st == VKLLM_OK; s++) {
            if (c->done_mask >> s & 1) continue;
            bool d = false;
            st = sb->st[s].be->vt->advance(c->sub[s], deadline, &d, err);
            if (st == VKLLM_OK && !d) return VKLLM_OK; /* the deadline came first */
            c->done_mask |= 1u << s;
        }
        if (st != VKLLM_OK) break;
        c->tick++;
        c->begun = false;
        c->begun_mask = c->done_mask = 0;
        if (deadline > 0 && c->tick < n_ticks && core_time_s() >= deadline) return VKLLM_OK;
    }
    if (st != VKLLM_OK) {
        /* the tick's other stages finish before the error goes up: no device keeps working on
         * buffers the caller may free */
        for (uint32_t s = 0; s < sb->n; s++) {
            if (!(c->begun_mask >> s & 1) || (c->done_mask >> s & 1)) continue;
            bool d = false;
            core_err ignore;
            while (sb->st[s].be->vt->advance(c->sub[s], 0.0, &d, &ignore) == VKLLM_OK && !d)
                ;
        }
        c->busy = false;
        return st;
    }
    c->busy = false;
    *done = true;
    return VKLLM_OK;
}

static vkllm_status split_run(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    vkllm_status st = split_begin(c, b, logits, err);
    bool done = false;
    while (st == VKLLM_OK && !done)
        st = split_advance(c, 0.0, &done, err);
    return st;
}

static vkllm_status split_warmup(eng_ctx *c, core_err *err) {
    split_backend *sb = c->sb;
    for (uint32_t s = 0; s < sb->n; s++) {
        eng_backend *be = sb->st[s].be;
        if (!be->vt->warmup) continue;
        vkllm_status st = be->vt->warmup(c->sub[s], err);
        if (st != VKLLM_OK) return st;
    }
    return VKLLM_OK;
}

static void split_observe(eng_ctx *c, eng_observe_fn fn, void *user) {
    split_backend *sb = c->sb;
    for (uint32_t s = 0; s < sb->n; s++)
        sb->st[s].be->vt->observe(c->sub[s], fn, user);
}

static vkllm_status split_bandwidth(eng_backend *base, double seconds, double *gbps,
                                    uint64_t *bytes, core_err *err) {
    split_backend *sb = (split_backend *)base;
    eng_backend *be = sb->st[sb->main].be;
    return be->vt->bandwidth(be, seconds, gbps, bytes, err);
}

static vkllm_status split_bench_op(eng_backend *base, const vkllm_bench_op_desc *d, uint32_t w_type,
                                   vkllm_bench_op_result *out, core_err *err) {
    split_backend *sb = (split_backend *)base;
    eng_backend *be = sb->st[sb->main].be;
    return be->vt->bench_op(be, d, w_type, out, err);
}

static uint64_t split_held(const eng_backend *base) {
    const split_backend *sb = (const split_backend *)base;
    uint64_t sum = 0;
    for (uint32_t s = 0; s < sb->n; s++) {
        bool seen = false; /* a backend with two stages counts once */
        for (uint32_t q = 0; q < s; q++)
            seen = seen || sb->st[q].be == sb->st[s].be;
        if (!seen) sum += sb->st[s].be->vt->held(sb->st[s].be);
    }
    return sum;
}

/* Every distinct backend of the stages gets the adapter (a backend with two stages once). */
static vkllm_status split_lora_attach(eng_backend *base, const struct eng_lora *l, core_err *err) {
    split_backend *sb = (split_backend *)base;
    for (uint32_t s = 0; s < sb->n; s++) {
        eng_backend *be = sb->st[s].be;
        bool seen = false;
        for (uint32_t q = 0; q < s; q++)
            seen = seen || sb->st[q].be == be;
        if (seen || !be->vt->lora_attach) continue;
        vkllm_status st = be->vt->lora_attach(be, l, err);
        if (st != VKLLM_OK) {
            for (uint32_t q = 0; q < s; q++) {
                bool dup = false;
                for (uint32_t r = 0; r < q; r++)
                    dup = dup || sb->st[r].be == sb->st[q].be;
                if (!dup && sb->st[q].be->vt->lora_detach)
                    sb->st[q].be->vt->lora_detach(sb->st[q].be, l);
            }
            stage_err(sb, s, st, err);
            return st;
        }
    }
    return VKLLM_OK;
}

static void split_lora_detach(eng_backend *base, const struct eng_lora *l) {
    split_backend *sb = (split_backend *)base;
    for (uint32_t s = 0; s < sb->n; s++) {
        bool seen = false;
        for (uint32_t q = 0; q < s; q++)
            seen = seen || sb->st[q].be == sb->st[s].be;
        if (!seen && sb->st[s].be->vt->lora_detach) sb->st[s].be->vt->lora_detach(sb->st[s].be, l);
    }
}

void eng_split_describe(const eng_split_stage *stages, uint32_t n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t s = 0; s < n && len < cap; s++) {
        const eng_split_stage *st = &stages[s];
        char layers[32] = "";
        if (st->l1 > st->l0 + 1)
            snprintf(layers, sizeof layers, "layers %u-%u", st->l0, st->l1 - 1);
        else if (st->l1 == st->l0 + 1)
            snprintf(layers, sizeof layers, "layer %u", st->l0);
        int w = snprintf(buf + len, cap - len, "%s%s [%s%s%s%s%s]", s ? " + " : "", st->device,
                         st->embed ? "embedding" : "", st->embed && *layers ? ", " : "", layers,
                         st->head && (st->embed || *layers) ? ", " : "", st->head ? "head" : "");
        if (w < 0) break;
        len += (size_t)w;
    }
}

vkllm_status eng_split_create(const vkllm_allocator *a, const eng_model *m,
                              const eng_split_stage *stages, uint32_t n, eng_backend **out,
                              core_err *err) {
    *out = NULL;
    if (n < 1 || n > ENG_SPLIT_MAX)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: %u stages (1 to %d)", n,
                         ENG_SPLIT_MAX);
    uint32_t next = 0;
    for (uint32_t s = 0; s < n; s++) {
        const eng_split_stage *st = &stages[s];
        if (!st->be || st->l0 != next || st->l1 < st->l0 || st->l1 > m->cfg.n_layer ||
            st->embed != (s == 0) || st->head != (s + 1 == n))
            return core_errf(err, VKLLM_ERR_INTERNAL,
                             "split: stage %u (layers [%u, %u)) does not continue the one "
                             "before, or holds the embedding or head out of place",
                             s, st->l0, st->l1);
        next = st->l1;
    }
    if (next != m->cfg.n_layer)
        return core_errf(err, VKLLM_ERR_INTERNAL, "split: the stages cover %u of %u layers", next,
                         m->cfg.n_layer);
    split_backend *sb = core_calloc(a, 1, sizeof *sb);
    if (!sb) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "split: out of memory");
    sb->alloc = a;
    sb->whole = m;
    sb->n = n;
    bool observe = true, loras = true;
    for (uint32_t s = 0; s < n; s++) {
        loras = loras && stages[s].be->loras;
        sb->st[s] = stages[s];
        eng_model_stage(m, stages[s].l0, stages[s].l1, stages[s].embed, stages[s].head,
                        &sb->view[s]);
        vkllm_status st = eng_graph_build(&sb->view[s], &sb->graph[s], err);
        if (st != VKLLM_OK) {
            split_destroy(&sb->base);
            return st;
        }
        if (stages[s].l1 - stages[s].l0 > stages[sb->main].l1 - stages[sb->main].l0) sb->main = s;
        observe = observe && stages[s].be->vt->observe;
    }
    sb->vt = (eng_backend_vtbl){
        .destroy = split_destroy,
        .model_attach = split_attach,
        .model_detach = split_detach,
        .ctx_create = split_ctx_create,
        .ctx_destroy = split_ctx_destroy,
        .run = split_run,
        .begin = split_begin,
        .advance = split_advance,
        .warmup = split_warmup,
        .observe = observe ? split_observe : NULL,
        .bandwidth = split_bandwidth,
        .bench_op = split_bench_op,
        .held = split_held,
        .lora_attach = split_lora_attach,
        .lora_detach = split_lora_detach,
    };
    sb->base.vt = &sb->vt;
    sb->base.feeds = false;
    sb->base.bans = stages[n - 1].be->bans;
    sb->base.loras = loras;
    sb->base.info = stages[sb->main].be->info;
    eng_split_describe(stages, n, sb->base.name, sizeof sb->base.name);
    *out = &sb->base;
    return VKLLM_OK;
}

uint32_t eng_split_stages(const eng_backend *be, const eng_split_stage **stages,
                          const eng_model **views) {
    if (!be || be->vt->destroy != split_destroy) return 0;
    const split_backend *sb = (const split_backend *)be;
    if (stages) *stages = sb->st;
    if (views) *views = sb->view;
    return sb->n;
}
