/* The calibration of vkllm_prune's sparsegpt method (api_sparsegpt.h): each layer matrix's
 * input Hessian H = X^T X over the chunks of a text, and the matrices pruned with it by
 * src/core/sparsegpt.c, in the paper's order: layer l's Hessians come from the model whose
 * layers before l are already pruned and updated (Frantar & Alistarh 2023, section 3.4).
 *
 * How it runs one layer at a time without a full forward pass per layer: the model is loaded
 * privately on a CPU runtime, and each round runs a graph of its own, built from the model's
 * op list, over every chunk:
 *
 *     embed -> [layer l-1, pruned] -> capture -> layer l (observed)
 *
 * The embedding is a table of floats: the residual stream at layer l-1's input, kept from the
 * previous round (round 0 embeds the tokens). "capture" is a one-row F32 product of the
 * residual stream whose input the observe hook copies back into that table, so the next round
 * starts from layer l's input as the pruned layers before it made it. The observe hook also
 * sums layer l's four inputs (QKV's, the output projection's, gate/up's, down's) into their
 * Hessians (Q, K and V share one; gate and up share one). Each round thus costs two layers per
 * token, the whole calibration about two forward passes, and its activations are those of a
 * full forward pass of the partly pruned model, bit for bit (the table holds the floats the
 * residual stream held). After a round, layer l is pruned, quantized to the output type, and
 * its quantized matrices replace the model's (unless dense_inputs), so the next rounds see
 * exactly the weights the output file will hold.
 *
 * Memory: the residual table (chunks x n_ctx x n_embd floats), one layer's Hessians in double
 * (3 x 576^2 + 1536^2 entries, 27 MB, for the default model) and the output matrices. */
#include "api_sparsegpt.h"
#include "api_eval.h"
#include "core/quant_s24.h"

#include <stdio.h>
#include <string.h>

const char *const prune_sgpt_roles[PRUNE_SGPT_ROLES] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

#define OPS_PER_LAYER 10 /* eng_graph_build's */
#define N_INPUTS PRUNE_SGPT_INPUTS

typedef struct sgpt_run {
    const prune_sgpt_desc *d;
    const vkllm_allocator *a;
    core_err *err;
    vkllm_runtime *rt;
    vkllm_model *m;
    eng_ctx *ctx;
    int32_t *tokens;
    uint32_t n_ctx, n_chunks, n_embd;
    uint32_t *pages;
    int32_t *toks;  /* one step's token ids */
    float *table;   /* the residual stream at the current layer's input, per chunk */
    float *capw;    /* the capture product's weight: one row of zeros */
    eng_weight emb; /* the table as an F32 embedding of n_ctx "tokens" (one chunk) */
    eng_weight cap;
    eng_op ops[2 * OPS_PER_LAYER + 2];
    eng_graph g;
    int8_t slot[2 * OPS_PER_LAYER + 2]; /* per op: the Hessian it sums, or -1 */
    uint32_t capture;                   /* the capture op */
    float *res;                         /* the chunk's rows of the table */
    double *h[N_INPUTS];
    uint32_t hn[N_INPUTS];
    const eng_op *hop[N_INPUTS]; /* the op whose input each Hessian is */
} sgpt_run;

/* On the pool's threads, each with its own columns [col0, col1) of the op's input. */
static void sgpt_observe(void *user, const eng_op *op, const float *x, uint32_t n_rows,
                         uint32_t width, uint32_t col0, uint32_t col1) {
    sgpt_run *s = user;
    const uint32_t i = (uint32_t)(op - s->g.ops);
    if (i == s->capture) {
        for (uint32_t r = 0; r < n_rows; r++)
            memcpy(s->res + (size_t)r * width + col0, x + (size_t)r * width + col0,
                   (size_t)(col1 - col0) * sizeof(float));
        return;
    }
    const int k = s->slot[i];
    if (k < 0) return;
    /* the thread's share of the Hessian's rows: as many entries as its share of the columns */
    sgpt_hessian_add(s->h[k], width, x, n_rows, width, sgpt_hessian_split(width, col0, width),
                     sgpt_hessian_split(width, col1, width));
}

/* The op list of round l: embed, layer l-1's ops, capture, layer l's ops. */
static void build_round(sgpt_run *s, uint32_t l) {
    const eng_graph *mg = &s->m->graph;
    uint32_t n = 0, nh = 0;
    s->ops[n++] = mg->ops[0]; /* EMBED, its weight set per chunk */
    for (int pass = 0; pass < 2; pass++) {
        const uint32_t layer = l - 1 + (uint32_t)pass;
        if (pass == 0 && l == 0) {
            /* no layer before: the table gets the embedding itself */
        } else {
            for (uint32_t i = 0; i < mg->n_ops; i++) {
                const eng_op *op = &mg->ops[i];
                if (op->kind == EOP_EMBED || op->last_rows || op->layer != layer) continue;
                s->slot[n] = -1;
                if (pass == 1 && op->kind == EOP_MATMUL) {
                    s->slot[n] = (int8_t)nh;
                    s->hop[nh++] = &s->ops[n];
                }
                s->ops[n++] = *op;
            }
        }
        if (pass == 0) { /* capture: a product of the residual stream, one row, into Q */
            s->capture = n;
            s->slot[n] = -1;
            s->ops[n++] =
                (eng_op){.kind = EOP_MATMUL, .src = EB_X, .dst = {EB_Q}, .n_w = 1, .w = {&s->cap}};
        }
    }
    s->slot[0] = -1;
    s->g.n_ops = n;
}

static vkllm_status run_chunk(sgpt_run *s, uint32_t l, uint32_t c) {
    vkllm_model *m = s->m;
    const uint32_t n_ctx = s->n_ctx;
    s->res = s->table + (size_t)c * n_ctx * s->n_embd;
    if (l == 0) {
        memcpy(s->toks, s->tokens + (size_t)c * n_ctx, n_ctx * sizeof *s->toks);
        if (tok_add_bos(m->vocab) && tok_bos(m->vocab) >= 0) s->toks[0] = tok_bos(m->vocab);
        s->ops[0].w[0] = &m->em.tok_embd;
    } else {
        for (uint32_t t = 0; t < n_ctx; t++)
            s->toks[t] = (int32_t)t;
        s->emb.data = s->res;
        s->ops[0].w[0] = &s->emb;
    }
    const eng_seq seq = {
        .n_tokens = n_ctx, .pos0 = 0, .mode = (uint8_t)eng_attn_mode_for(n_ctx), .pages = s->pages};
    const eng_batch b = {.tokens = s->toks, .n_tokens = n_ctx, .seqs = &seq, .n_seqs = 1};
    eng_backend *be = m->be;
    pthread_mutex_lock(&m->rt->be_mu);
    vkllm_status st = be->vt->run(s->ctx, &b, NULL, &m->err);
    pthread_mutex_unlock(&m->rt->be_mu);
    if (st != VKLLM_OK) core_errf(s->err, st, "prune: sparsegpt calibration: %s", m->err.msg);
    return st;
}

static eng_weight *role_weight(eng_layer *L, int k) {
    eng_weight *const w[PRUNE_SGPT_ROLES] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                             &L->w_gate, &L->w_up, &L->w_down};
    return w[k];
}

/* Prunes one matrix with its input's factor into r (out_type bytes). */
static vkllm_status prune_one(sgpt_run *s, const eng_weight *w, const sgpt_factor *f,
                              prune_sgpt_matrix *r) {
    const vkllm_allocator *a = s->a;
    const quant_traits *in = quant_traits_of(w->type), *out = quant_traits_of(s->d->out_type);
    const uint64_t n = (uint64_t)w->n_in * w->n_out;
    uint64_t rb;
    if (!in || !in->dequant || !quant_row_bytes(s->d->out_type, w->n_in, &rb))
        return core_errf(s->err, VKLLM_ERR_UNSUPPORTED, "prune: %s: cannot convert from %s to %s",
                         w->name, quant_type_name(w->type), quant_type_name(s->d->out_type));
    float *x = core_alloc(a, (size_t)n * sizeof *x, 64);
    uint8_t *keep = core_alloc(a, (size_t)n, 64);
    r->nbytes = rb * w->n_out;
    r->data = core_alloc(a, (size_t)r->nbytes, 64);
    if (!x || !keep || !r->data) {
        core_free(a, x);
        core_free(a, keep);
        return core_errf(s->err, VKLLM_ERR_OUT_OF_MEMORY, "prune: out of memory for %s", w->name);
    }
    for (uint32_t i = 0; i < w->n_out; i++)
        in->dequant((const uint8_t *)w->data + i * w->row_bytes, x + (size_t)i * w->n_in,
                    (int64_t)w->n_in);
    vkllm_status st = sgpt_prune_factored(x, w->n_out, w->n_in, f, &s->d->algo, keep, a, s->err);
    if (st != VKLLM_OK) {
        char msg[CORE_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", s->err->msg);
        core_errf(s->err, st, "prune: %s: %s", w->name, msg);
    }
    for (uint64_t i = 0; st == VKLLM_OK && i < n; i++)
        r->n_zero += x[i] == 0.0f;
    r->n_weights = n;
    for (uint32_t i = 0; st == VKLLM_OK && i < w->n_out; i++) {
        const float *row = x + (size_t)i * w->n_in;
        uint8_t *dst = (uint8_t *)r->data + i * rb;
        if (!quant_is_s24(s->d->out_type))
            out->quant(row, dst, (int64_t)w->n_in);
        else if (!quant_s24_quant_kept(s->d->out_type, row, keep + (size_t)i * w->n_in, dst,
                                       (int64_t)w->n_in))
            st = core_errf(s->err, VKLLM_ERR_INVALID_ARG,
                           "prune: %s: the packed format needs a 2:4 mask", w->name);
    }
    core_free(a, x);
    core_free(a, keep);
    return st;
}

/* Factors layer l's Hessians one at a time and prunes the matrices that read each input. */
static vkllm_status prune_layer(sgpt_run *s, uint32_t l, prune_sgpt_matrix *out) {
    eng_layer *L = &s->m->em.layers[l];
    vkllm_status st = VKLLM_OK;
    for (int k = 0; k < N_INPUTS && st == VKLLM_OK; k++) {
        const eng_op *op = s->hop[k];
        char what[128];
        snprintf(what, sizeof what, "prune: the input of %s", op->w[0]->name);
        sgpt_factor f;
        st = sgpt_factor_make(s->h[k], s->hn[k], s->d->algo.damp, what, s->a, &f, s->err);
        for (int i = 0; i < op->n_w && st == VKLLM_OK; i++) {
            int role = 0;
            while (role < PRUNE_SGPT_ROLES && role_weight(L, role) != op->w[i])
                role++;
            if (role == PRUNE_SGPT_ROLES)
                st = core_errf(s->err, VKLLM_ERR_UNSUPPORTED,
                               "prune: sparsegpt: %s is not a layer matrix", op->w[i]->name);
            else
                st = prune_one(s, op->w[i], &f, &out[role]);
        }
        sgpt_factor_free(&f, s->a);
    }
    if (st != VKLLM_OK || s->d->dense_inputs) return st;
    for (int role = 0; role < PRUNE_SGPT_ROLES; role++) { /* the next rounds run these */
        eng_weight *w = role_weight(L, role);
        w->type = s->d->out_type;
        w->data = out[role].data;
        w->row_bytes = out[role].nbytes / w->n_out;
    }
    return VKLLM_OK;
}

static vkllm_status open_model(sgpt_run *s) {
    const prune_sgpt_desc *d = s->d;
    vkllm_runtime_desc rd = {.struct_size = sizeof rd, .device = "cpu", .n_threads = d->n_threads};
    if (d->a) rd.allocator = *d->a;
    vkllm_status st = vkllm_runtime_create(&rd, &s->rt);
    if (st != VKLLM_OK)
        return core_errf(s->err, st, "prune: sparsegpt calibration: %s",
                         vkllm_runtime_last_error(NULL));
    const vkllm_model_desc md = {.struct_size = sizeof md, .path = d->model_path};
    if ((st = vkllm_model_load(s->rt, &md, &s->m)) != VKLLM_OK)
        return core_errf(s->err, st, "prune: sparsegpt calibration: %s",
                         vkllm_runtime_last_error(s->rt));
    size_t n_tokens = 0;
    if ((st = eval_tokenize(s->m, d->text, d->text_len, &s->tokens, &n_tokens)) != VKLLM_OK)
        return core_errf(s->err, st, "prune: the calibration text: %s", s->m->err.msg);
    const model_config *c = &s->m->cfg;
    s->n_ctx = d->n_ctx ? d->n_ctx : 512;
    if (s->n_ctx < 16 || s->n_ctx > c->n_vocab || s->n_ctx > (1u << 20))
        return core_errf(s->err, VKLLM_ERR_INVALID_ARG,
                         "prune: a calibration context of %u: outside [16, %u]", s->n_ctx,
                         c->n_vocab < (1u << 20) ? c->n_vocab : (1u << 20));
    if (n_tokens < s->n_ctx)
        return core_errf(s->err, VKLLM_ERR_INVALID_ARG,
                         "prune: the calibration text is %zu tokens; a context of %u needs at "
                         "least %u",
                         n_tokens, s->n_ctx, s->n_ctx);
    s->n_chunks = (uint32_t)(n_tokens / s->n_ctx);
    const uint32_t want = d->n_chunks ? d->n_chunks : PRUNE_SGPT_CHUNKS;
    if (want < s->n_chunks) s->n_chunks = want;
    s->n_embd = c->n_embd;
    return VKLLM_OK;
}

static vkllm_status setup(sgpt_run *s) {
    vkllm_model *m = s->m;
    const vkllm_allocator *a = s->a;
    const uint32_t n_ctx = s->n_ctx, n_embd = s->n_embd;
    uint64_t cells;
    if (!core_mul_ok((uint64_t)s->n_chunks * n_ctx, n_embd, &cells) || cells > SIZE_MAX / 4)
        return core_errf(s->err, VKLLM_ERR_OUT_OF_MEMORY, "prune: calibration too large");
    s->table = core_alloc(a, (size_t)cells * sizeof(float), 64);
    s->capw = core_calloc(a, n_embd, sizeof(float));
    s->toks = core_calloc(a, n_ctx, sizeof *s->toks);
    s->pages = eng_ident_pages(a, n_ctx);
    if (!s->table || !s->capw || !s->toks || !s->pages)
        return core_errf(s->err, VKLLM_ERR_OUT_OF_MEMORY,
                         "prune: out of memory for the calibration (%llu MiB of activations)",
                         (unsigned long long)(cells * 4 >> 20));
    s->emb = (eng_weight){.name = "sparsegpt.residual",
                          .type = QT_F32,
                          .n_in = n_embd,
                          .n_out = n_ctx,
                          .row_bytes = (uint64_t)n_embd * 4};
    s->cap = (eng_weight){.name = "sparsegpt.capture",
                          .type = QT_F32,
                          .n_in = n_embd,
                          .n_out = 1,
                          .row_bytes = (uint64_t)n_embd * 4,
                          .data = s->capw};
    s->g.ops = s->ops;
    memcpy(s->g.buf_width, m->graph.buf_width, sizeof s->g.buf_width);
    if (m->graph.n_ops != OPS_PER_LAYER * m->cfg.n_layer + 3 || m->graph.ops[0].kind != EOP_EMBED)
        return core_errf(s->err, VKLLM_ERR_UNSUPPORTED,
                         "prune: sparsegpt: the model's op list is not the one this was written "
                         "for");
    eng_backend *be = m->be;
    const eng_ctx_desc cd = {.n_ctx = n_ctx, .n_batch = n_ctx, .n_seqs = 1, .max_out = 1};
    pthread_mutex_lock(&m->rt->be_mu);
    vkllm_status st = be->vt->ctx_create(be, &m->em, &s->g, &cd, &s->ctx, &m->err);
    pthread_mutex_unlock(&m->rt->be_mu);
    if (st != VKLLM_OK) return core_errf(s->err, st, "prune: sparsegpt: %s", m->err.msg);
    if (!be->vt->observe)
        return core_errf(s->err, VKLLM_ERR_UNSUPPORTED,
                         "prune: sparsegpt: the backend cannot show the products' inputs");
    be->vt->observe(s->ctx, sgpt_observe, s);
    return VKLLM_OK;
}

static void free_hessians(sgpt_run *s) {
    for (int k = 0; k < N_INPUTS; k++) {
        core_free(s->a, s->h[k]);
        s->h[k] = NULL;
    }
}

/* Round l over every chunk: layer l's Hessians summed into s->h (allocated here). */
static vkllm_status gather_round(sgpt_run *s, uint32_t l) {
    build_round(s, l);
    for (int k = 0; k < N_INPUTS; k++) {
        s->hn[k] = s->hop[k]->w[0]->n_in;
        s->h[k] = core_calloc(s->a, (size_t)s->hn[k] * s->hn[k], sizeof(double));
        if (!s->h[k])
            return core_errf(s->err, VKLLM_ERR_OUT_OF_MEMORY,
                             "prune: out of memory for a %u x %u Hessian", s->hn[k], s->hn[k]);
    }
    vkllm_status st = VKLLM_OK;
    for (uint32_t c = 0; c < s->n_chunks && st == VKLLM_OK; c++)
        st = run_chunk(s, l, c);
    return st;
}

static void close_run(sgpt_run *s) {
    free_hessians(s);
    if (s->ctx) {
        s->m->be->vt->observe(s->ctx, NULL, NULL);
        pthread_mutex_lock(&s->m->rt->be_mu);
        s->m->be->vt->ctx_destroy(s->ctx);
        pthread_mutex_unlock(&s->m->rt->be_mu);
    }
    if (s->m) core_free(s->m->rt->alloc, s->tokens);
    vkllm_model_free(s->m); /* its weights may point at the result's matrices: gone with it */
    vkllm_runtime_destroy(s->rt);
    core_free(s->a, s->table);
    core_free(s->a, s->capw);
    core_free(s->a, s->toks);
    core_free(s->a, s->pages);
}

vkllm_status prune_sgpt_hessians(const prune_sgpt_desc *d, uint32_t layer,
                                 double *h[PRUNE_SGPT_INPUTS], uint32_t n[PRUNE_SGPT_INPUTS],
                                 core_err *err) {
    sgpt_run s = {.d = d, .a = d->a, .err = err};
    vkllm_status st = open_model(&s);
    if (st == VKLLM_OK) st = setup(&s);
    if (st == VKLLM_OK && layer >= s.m->cfg.n_layer)
        st = core_errf(err, VKLLM_ERR_INVALID_ARG, "prune: no layer %u", layer);
    for (uint32_t l = 0; l <= layer && st == VKLLM_OK; l++) {
        st = gather_round(&s, l);
        if (l < layer) free_hessians(&s);
    }
    for (int k = 0; k < N_INPUTS; k++) {
        h[k] = st == VKLLM_OK ? s.h[k] : NULL;
        n[k] = st == VKLLM_OK ? s.hn[k] : 0;
        if (st == VKLLM_OK) s.h[k] = NULL;
    }
    close_run(&s);
    return st;
}

vkllm_status prune_sgpt_run(const prune_sgpt_desc *d, prune_sgpt_result *r, core_err *err) {
    memset(r, 0, sizeof *r);
    sgpt_run s = {.d = d, .a = d->a, .err = err};
    vkllm_status st = open_model(&s);
    if (st == VKLLM_OK) st = setup(&s);
    const uint32_t n_layer = st == VKLLM_OK ? s.m->cfg.n_layer : 0;
    if (st == VKLLM_OK) {
        r->m = core_calloc(s.a, (size_t)n_layer * PRUNE_SGPT_ROLES, sizeof *r->m);
        if (!r->m) st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "prune: out of memory");
        r->n_layer = n_layer;
        r->n_chunks = s.n_chunks;
        r->n_ctx = s.n_ctx;
    }
    for (uint32_t l = 0; l < n_layer && st == VKLLM_OK; l++) {
        const double t0 = core_time_s();
        st = gather_round(&s, l);
        const double t1 = core_time_s();
        if (st == VKLLM_OK) st = prune_layer(&s, l, r->m + (size_t)l * PRUNE_SGPT_ROLES);
        free_hessians(&s);
        r->seconds_passes += t1 - t0;
        r->seconds_prune += core_time_s() - t1;
        if (st == VKLLM_OK && d->progress) d->progress(d->progress_user, l + 1, n_layer);
    }
    close_run(&s);
    if (st != VKLLM_OK) prune_sgpt_result_free(r, s.a);
    return st;
}

void prune_sgpt_result_free(prune_sgpt_result *r, const vkllm_allocator *a) {
    for (uint64_t i = 0; r->m && i < (uint64_t)r->n_layer * PRUNE_SGPT_ROLES; i++)
        core_free(a, r->m[i].data);
    core_free(a, r->m);
    memset(r, 0, sizeof *r);
}
