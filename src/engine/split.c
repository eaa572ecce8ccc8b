/* A model split over several backends (split.h). A step runs the stages one after the other:
 * stage s takes the batch's residual stream from stage s - 1 (eng_batch.x_in) and hands its
 * own to stage s + 1 (x_out); only the last stage has outputs. Every stage does the arithmetic
 * its backend does for a whole model, and the backends give the same bits, so a split model's
 * tokens are those of the model on one backend. */
#include "engine/split.h"

#include <stdio.h>
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

struct eng_ctx {
    split_backend *sb;
    eng_ctx *sub[ENG_SPLIT_MAX];
    eng_ctx_desc cd;
    float *x[2];  /* residual streams between stages, n_batch x n_embd each */
    eng_seq *mid; /* the batch's entries without outputs, for the stages before the last */
    eng_batch bs; /* the batch as the current stage sees it */
    const eng_batch *b;
    float *logits;
    uint32_t cur; /* the stage in progress */
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
    core_free(sb->alloc, c->x[0]);
    core_free(sb->alloc, c->x[1]);
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
    const uint64_t x_floats = (uint64_t)cd->n_batch * m->cfg.n_embd;
    c->x[0] = core_calloc(sb->alloc, x_floats, sizeof(float));
    c->x[1] = core_calloc(sb->alloc, x_floats, sizeof(float));
    c->mid = core_calloc(sb->alloc, c->cd.n_seqs, sizeof *c->mid);
    if (!c->x[0] || !c->x[1] || !c->mid) {
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

static vkllm_status stage_begin(eng_ctx *c, core_err *err) {
    split_backend *sb = c->sb;
    const uint32_t s = c->cur;
    c->bs = *c->b;
    c->bs.x_in = s > 0 ? c->x[(s - 1) & 1] : NULL;
    c->bs.x_out = NULL;
    float *logits = c->logits;
    if (s + 1 < sb->n) {
        c->bs.x_out = c->x[s & 1];
        c->bs.seqs = c->mid;
        c->bs.n_out = 0;
        c->bs.top_k = 0;
        c->bs.out_ids = NULL;
        c->bs.out_vals = NULL;
        logits = NULL;
    }
    return sb->st[s].be->vt->begin(c->sub[s], &c->bs, logits, err);
}

static vkllm_status split_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    if (c->busy)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: a step is in progress already");
    if (b->n_seqs > c->cd.n_seqs)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: %u entries, the context takes %u",
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
    c->cur = 0;
    vkllm_status st = stage_begin(c, err);
    c->busy = st == VKLLM_OK;
    return st;
}

static vkllm_status split_advance(eng_ctx *c, double deadline, bool *done, core_err *err) {
    *done = false;
    if (!c->busy) return core_errf(err, VKLLM_ERR_INVALID_ARG, "split: no step in progress");
    split_backend *sb = c->sb;
    for (;;) {
        bool stage_done = false;
        const uint32_t s = c->cur;
        vkllm_status st = sb->st[s].be->vt->advance(c->sub[s], deadline, &stage_done, err);
        if (st != VKLLM_OK) {
            c->busy = false;
            return st;
        }
        if (!stage_done) return VKLLM_OK; /* the deadline came first */
        if (++c->cur == sb->n) {
            c->busy = false;
            *done = true;
            return VKLLM_OK;
        }
        if ((st = stage_begin(c, err)) != VKLLM_OK) {
            c->busy = false;
            return st;
        }
        if (deadline > 0 && core_time_s() >= deadline) return VKLLM_OK;
    }
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

void eng_split_describe(const eng_split_stage *stages, uint32_t n, uint32_t n_layer, char *buf,
                        size_t cap) {
    (void)n_layer;
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
    bool observe = true;
    for (uint32_t s = 0; s < n; s++) {
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
    };
    sb->base.vt = &sb->vt;
    sb->base.feeds = false;
    sb->base.bans = stages[n - 1].be->bans;
    sb->base.info = stages[sb->main].be->info;
    eng_split_describe(stages, n, m->cfg.n_layer, sb->base.name, sizeof sb->base.name);
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
