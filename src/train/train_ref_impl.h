/* The one body of the reference model (train_ref.h), compiled by train_ref.c (TRT float, names
 * tr_*) and train_ref_f64.c (TRT double, names tr64_*), both of which include train_ref.h first
 * and then define TRT and TRN. No include guard on purpose. */
#if !defined(TRT) || !defined(TRN)
#error "train_ref_impl.h is included by train_ref.c and train_ref_f64.c only"
#endif

#include <string.h>

/* Hands out consecutive pieces of one block: a first pass with base NULL only counts (and
 * notes an overflow), a second hands out pointers into the block of the counted size. */
typedef struct arena {
    unsigned char *base;
    uint64_t used; /* bytes */
    bool overflow;
} arena;

static void *take(arena *a, uint64_t n1, uint64_t n2, uint64_t elem) {
    uint64_t n, bytes, end;
    if (!core_mul_ok(n1, n2, &n) || !core_mul_ok(n, elem, &bytes) ||
        !core_add_ok(a->used, (bytes + 15) & ~(uint64_t)15, &end)) {
        a->overflow = true;
        return NULL;
    }
    void *p = a->base ? a->base + a->used : NULL;
    a->used = end;
    return p;
}

static TRT *takeR(arena *a, uint64_t n1, uint64_t n2) {
    return take(a, n1, n2, sizeof(TRT));
}

/* The weights' pieces, in a fixed order, from the arena. */
static void weights_layout(TRN(ref_weights) * w, arena *ar, bool tied, bool with_rope_freqs) {
    const model_config *c = &w->cfg;
    const uint64_t E = c->n_embd, QW = (uint64_t)c->n_head * c->head_dim;
    const uint64_t KW = (uint64_t)c->n_head_kv * c->head_dim;
    w->layers = take(ar, c->n_layer, 1, sizeof *w->layers);
    w->tok_embd = takeR(ar, c->n_vocab, E);
    w->output_norm = takeR(ar, E, 1);
    w->output = tied ? w->tok_embd : takeR(ar, c->n_vocab, E);
    w->rope_freqs = with_rope_freqs ? take(ar, c->n_rot / 2, 1, sizeof(float)) : NULL;
    for (uint32_t l = 0; l < c->n_layer; l++) {
        TRN(ref_layer) L;
        L.attn_norm = takeR(ar, E, 1);
        L.wq = takeR(ar, QW, E);
        L.wk = takeR(ar, KW, E);
        L.wv = takeR(ar, KW, E);
        L.wo = takeR(ar, E, QW);
        L.ffn_norm = takeR(ar, E, 1);
        L.w_gate = takeR(ar, c->n_ff, E);
        L.w_up = takeR(ar, c->n_ff, E);
        L.w_down = takeR(ar, E, c->n_ff);
        if (w->layers) w->layers[l] = L;
    }
}

vkllm_status TRN(ref_weights_alloc)(TRN(ref_weights) * w, const model_config *cfg, bool tied,
                                    bool with_rope_freqs, const vkllm_allocator *a, core_err *err) {
    memset(w, 0, sizeof *w);
    const model_config *c = cfg;
    if (!c->n_embd || !c->n_layer || !c->n_head || !c->n_head_kv || !c->head_dim || !c->n_ff ||
        !c->n_vocab)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: a model size is 0 (n_embd %u, n_layer %u, n_head %u, n_head_kv "
                         "%u, head_dim %u, n_ff %u, n_vocab %u)",
                         c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
                         c->n_vocab);
    if (c->n_head % c->n_head_kv)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: n_head_kv %u does not divide n_head %u", c->n_head_kv, c->n_head);
    if (c->n_rot % 2 || c->n_rot > c->head_dim || c->head_dim % 2)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: n_rot %u must be even and at most head_dim %u (even)", c->n_rot,
                         c->head_dim);
    if (c->rope_scaling == MODEL_ROPE_SCALING_YARN)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "train: YaRN rope scaling is not supported");
    w->cfg = *c;
    arena ar = {0};
    weights_layout(w, &ar, tied, with_rope_freqs);
    if (ar.overflow || ar.used > SIZE_MAX)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "train: the weights' size overflows");
    w->mem = core_alloc(a, (size_t)ar.used, 64);
    if (!w->mem)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "train: out of memory for %.1f MiB of dense weights",
                         (double)ar.used / (1 << 20));
    memset(w->mem, 0, (size_t)ar.used);
    w->alloc = a;
    ar = (arena){.base = w->mem};
    weights_layout(w, &ar, tied, with_rope_freqs);
    return VKLLM_OK;
}

void TRN(ref_weights_free)(TRN(ref_weights) * w) {
    core_free(w->alloc, w->mem);
    memset(w, 0, sizeof *w);
}

/* What the forward pass keeps for the backward pass, per layer. */
typedef struct saved_layer {
    TRT *x_mid;         /* residual after attention [T x E] */
    TRT *xn1, *rstd1;   /* attention norm's output and 1/rms */
    TRT *q, *k, *v, *p; /* after RoPE; attention probabilities [H x T x T] */
    TRT *att;           /* attention output [T x QW] */
    TRT *xn2, *rstd2;   /* FFN norm */
    TRT *gate, *up, *act;
    TRT *ax[TR_N_TARGETS]; /* each adapter's A x [T x rank] */
} saved_layer;

typedef struct run_mem {
    TRT *cs;  /* RoPE table [T x n_rot] */
    TRT **xs; /* residual stream entering layer l (xs[n_layer]: after the last) */
    saved_layer *L;
    TRT *xnf, *rstdf, *logits;
    /* backward scratch */
    TRT *dlogits, *dx, *dxn, *dq, *dk, *dv, *dqr, *dkr, *datt, *dgate, *dup, *dact;
} run_mem;

static const TRN(lora) * adapter(const TRN(lora_set) * ls, uint32_t l, tr_target t) {
    if (!ls || !ls->ad) return NULL;
    const TRN(lora) *a = &ls->ad[(uint64_t)l * TR_N_TARGETS + t];
    return a->rank ? a : NULL;
}

static void run_layout(run_mem *m, arena *ar, const model_config *c, const TRN(lora_set) * ls,
                       uint32_t T, bool backward) {
    const uint64_t E = c->n_embd, QW = (uint64_t)c->n_head * c->head_dim;
    const uint64_t KW = (uint64_t)c->n_head_kv * c->head_dim, F = c->n_ff, V = c->n_vocab;
    m->cs = takeR(ar, T, c->n_rot);
    m->xs = take(ar, c->n_layer + 1ull, 1, sizeof *m->xs);
    m->L = take(ar, c->n_layer, 1, sizeof *m->L);
    for (uint32_t l = 0; l <= c->n_layer; l++) {
        TRT *x = takeR(ar, T, E);
        if (m->xs) m->xs[l] = x;
    }
    for (uint32_t l = 0; l < c->n_layer; l++) {
        saved_layer s;
        s.x_mid = takeR(ar, T, E);
        s.xn1 = takeR(ar, T, E);
        s.rstd1 = takeR(ar, T, 1);
        s.q = takeR(ar, T, QW);
        s.k = takeR(ar, T, KW);
        s.v = takeR(ar, T, KW);
        s.p = takeR(ar, (uint64_t)c->n_head * T, T);
        s.att = takeR(ar, T, QW);
        s.xn2 = takeR(ar, T, E);
        s.rstd2 = takeR(ar, T, 1);
        s.gate = takeR(ar, T, F);
        s.up = takeR(ar, T, F);
        s.act = takeR(ar, T, F);
        for (int t = 0; t < TR_N_TARGETS; t++) {
            const TRN(lora) *a = adapter(ls, l, (tr_target)t);
            s.ax[t] = a ? takeR(ar, T, a->rank) : NULL;
        }
        if (m->L) m->L[l] = s;
    }
    m->xnf = takeR(ar, T, E);
    m->rstdf = takeR(ar, T, 1);
    m->logits = takeR(ar, T, V);
    if (!backward) return;
    m->dlogits = takeR(ar, T, V);
    m->dx = takeR(ar, T, E);
    m->dxn = takeR(ar, T, E);
    m->dq = takeR(ar, T, QW);
    m->dqr = takeR(ar, T, QW);
    m->datt = takeR(ar, T, QW);
    m->dk = takeR(ar, T, KW);
    m->dkr = takeR(ar, T, KW);
    m->dv = takeR(ar, T, KW);
    m->dgate = takeR(ar, T, F);
    m->dup = takeR(ar, T, F);
    m->dact = takeR(ar, T, F);
}

static vkllm_status check_run(const TRN(ref_weights) * w, const TRN(lora_set) * ls,
                              const TRN(ref_step) * s, core_err *err) {
    const model_config *c = &w->cfg;
    if (!s->tokens || !s->n_tokens)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "train: the step has no tokens");
    for (uint32_t t = 0; t < s->n_tokens; t++)
        if (s->tokens[t] < 0 || s->tokens[t] >= (int64_t)c->n_vocab)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "train: token %d at position %u is outside the vocabulary (%u)",
                             (int)s->tokens[t], t, c->n_vocab);
    if (s->targets && s->top_ids)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: a step has targets (cross-entropy) or teacher top-k ids "
                         "(distillation), not both");
    if (s->top_ids && (!s->top_p || !s->top_k))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: teacher top-k ids without their probabilities or with k = 0");
    if (s->backward && !s->targets && !s->top_ids)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: a backward pass needs a loss (targets or teacher top-k)");
    for (uint32_t l = 0; ls && ls->ad && l < c->n_layer; l++)
        for (int t = 0; t < TR_N_TARGETS; t++) {
            const TRN(lora) *a = adapter(ls, l, (tr_target)t);
            if (a && (!a->a || !a->b))
                return core_errf(err, VKLLM_ERR_INVALID_ARG,
                                 "train: the adapter on layer %u's %s has rank %u but no %s "
                                 "matrix",
                                 l, tr_target_name((tr_target)t), a->rank, a->a ? "B" : "A");
        }
    return VKLLM_OK;
}

/* y = x W^T, plus the adapter's s B (A x) (A x kept in ax). */
static void proj_fwd(const TRT *x, const TRT *W, const TRN(lora_set) * ls, const TRN(lora) * a,
                     uint32_t T, uint32_t n_in, uint32_t n_out, TRT *ax, TRT *y) {
    TRN(linear_fwd)(x, W, T, n_in, n_out, y);
    if (a) TRN(lora_fwd)
    (x, a->a, a->b, T, n_in, n_out, a->rank, (TRT)tr_lora_scale(ls->scale, ls->alpha, a->rank), ax,
     y);
}

/* dx += dy W (+ the adapter's part), the adapter's gradients into its da, db. */
static void proj_bwd(const TRT *x, const TRT *W, const TRN(lora_set) * ls, const TRN(lora) * a,
                     const TRT *ax, const TRT *dy, uint32_t T, uint32_t n_in, uint32_t n_out,
                     TRT *dx) {
    TRN(linear_bwd)(dy, W, T, n_in, n_out, dx);
    if (a) TRN(lora_bwd)
    (x, a->a, a->b, ax, dy, T, n_in, n_out, a->rank,
     (TRT)tr_lora_scale(ls->scale, ls->alpha, a->rank), a->da, a->db, dx);
}

static void zero(TRT *p, uint64_t n1, uint64_t n2) {
    memset(p, 0, (size_t)(n1 * n2) * sizeof *p);
}

static void forward(const TRN(ref_weights) * w, const TRN(lora_set) * ls, const TRN(ref_step) * s,
                    run_mem *m) {
    const model_config *c = &w->cfg;
    const uint32_t T = s->n_tokens, E = c->n_embd, F = c->n_ff;
    const uint32_t QW = c->n_head * c->head_dim, KW = c->n_head_kv * c->head_dim;
    const tr_attn_dims ad = {T, c->n_head, c->n_head_kv, c->head_dim};
    for (uint32_t t = 0; t < T; t++)
        memcpy(m->xs[0] + (uint64_t)t * E, w->tok_embd + (uint64_t)s->tokens[t] * E,
               E * sizeof(TRT));
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const TRN(ref_layer) *W = &w->layers[l];
        saved_layer *S = &m->L[l];
        const TRT *x = m->xs[l];
        TRN(rms_norm_fwd)(x, W->attn_norm, T, E, (TRT)c->rms_eps, S->xn1, S->rstd1);
        proj_fwd(S->xn1, W->wq, ls, adapter(ls, l, TR_Q), T, E, QW, S->ax[TR_Q], S->q);
        proj_fwd(S->xn1, W->wk, ls, adapter(ls, l, TR_K), T, E, KW, S->ax[TR_K], S->k);
        proj_fwd(S->xn1, W->wv, ls, adapter(ls, l, TR_V), T, E, KW, S->ax[TR_V], S->v);
        TRN(rope_fwd)(S->q, m->cs, T, c->n_head, c->head_dim, c->n_rot, S->q);
        TRN(rope_fwd)(S->k, m->cs, T, c->n_head_kv, c->head_dim, c->n_rot, S->k);
        TRN(attn_fwd)(S->q, S->k, S->v, ad, S->att, S->p);
        proj_fwd(S->att, W->wo, ls, adapter(ls, l, TR_O), T, QW, E, S->ax[TR_O], S->x_mid);
        for (uint64_t i = 0; i < (uint64_t)T * E; i++)
            S->x_mid[i] += x[i];
        TRN(rms_norm_fwd)(S->x_mid, W->ffn_norm, T, E, (TRT)c->rms_eps, S->xn2, S->rstd2);
        proj_fwd(S->xn2, W->w_gate, ls, adapter(ls, l, TR_GATE), T, E, F, S->ax[TR_GATE], S->gate);
        proj_fwd(S->xn2, W->w_up, ls, adapter(ls, l, TR_UP), T, E, F, S->ax[TR_UP], S->up);
        TRN(swiglu_fwd)(S->gate, S->up, (uint64_t)T * F, S->act);
        TRT *xo = m->xs[l + 1];
        proj_fwd(S->act, W->w_down, ls, adapter(ls, l, TR_DOWN), T, F, E, S->ax[TR_DOWN], xo);
        for (uint64_t i = 0; i < (uint64_t)T * E; i++)
            xo[i] += S->x_mid[i];
    }
    TRN(rms_norm_fwd)(m->xs[c->n_layer], w->output_norm, T, E, (TRT)c->rms_eps, m->xnf, m->rstdf);
    TRN(linear_fwd)(m->xnf, w->output, T, E, c->n_vocab, m->logits);
}

/* From dlogits (already holding the loss's gradient) back to every adapter. */
static void backward(const TRN(ref_weights) * w, const TRN(lora_set) * ls, const TRN(ref_step) * s,
                     run_mem *m) {
    const model_config *c = &w->cfg;
    const uint32_t T = s->n_tokens, E = c->n_embd, F = c->n_ff;
    const uint32_t QW = c->n_head * c->head_dim, KW = c->n_head_kv * c->head_dim;
    const tr_attn_dims ad = {T, c->n_head, c->n_head_kv, c->head_dim};
    zero(m->dxn, T, E);
    TRN(linear_bwd)(m->dlogits, w->output, T, E, c->n_vocab, m->dxn);
    zero(m->dx, T, E); /* from here: the gradient of the residual stream */
    TRN(rms_norm_bwd)(m->xs[c->n_layer], w->output_norm, m->rstdf, m->dxn, T, E, m->dx);
    for (uint32_t l = c->n_layer; l-- > 0;) {
        const TRN(ref_layer) *W = &w->layers[l];
        const saved_layer *S = &m->L[l];
        /* x_out = x_mid + down(swiglu(gate(xn2), up(xn2))): dx passes through to x_mid */
        zero(m->dact, T, F);
        proj_bwd(S->act, W->w_down, ls, adapter(ls, l, TR_DOWN), S->ax[TR_DOWN], m->dx, T, F, E,
                 m->dact);
        zero(m->dgate, T, F);
        zero(m->dup, T, F);
        TRN(swiglu_bwd)(S->gate, S->up, m->dact, (uint64_t)T * F, m->dgate, m->dup);
        zero(m->dxn, T, E);
        proj_bwd(S->xn2, W->w_gate, ls, adapter(ls, l, TR_GATE), S->ax[TR_GATE], m->dgate, T, E, F,
                 m->dxn);
        proj_bwd(S->xn2, W->w_up, ls, adapter(ls, l, TR_UP), S->ax[TR_UP], m->dup, T, E, F, m->dxn);
        TRN(rms_norm_bwd)(S->x_mid, W->ffn_norm, S->rstd2, m->dxn, T, E, m->dx);
        /* x_mid = x + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))) */
        zero(m->datt, T, QW);
        proj_bwd(S->att, W->wo, ls, adapter(ls, l, TR_O), S->ax[TR_O], m->dx, T, QW, E, m->datt);
        zero(m->dq, T, QW);
        zero(m->dk, T, KW);
        zero(m->dv, T, KW);
        TRN(attn_bwd)(S->q, S->k, S->v, S->p, m->datt, ad, m->dq, m->dk, m->dv);
        zero(m->dqr, T, QW);
        zero(m->dkr, T, KW);
        TRN(rope_bwd)(m->dq, m->cs, T, c->n_head, c->head_dim, c->n_rot, m->dqr);
        TRN(rope_bwd)(m->dk, m->cs, T, c->n_head_kv, c->head_dim, c->n_rot, m->dkr);
        zero(m->dxn, T, E);
        proj_bwd(S->xn1, W->wq, ls, adapter(ls, l, TR_Q), S->ax[TR_Q], m->dqr, T, E, QW, m->dxn);
        proj_bwd(S->xn1, W->wk, ls, adapter(ls, l, TR_K), S->ax[TR_K], m->dkr, T, E, KW, m->dxn);
        proj_bwd(S->xn1, W->wv, ls, adapter(ls, l, TR_V), S->ax[TR_V], m->dv, T, E, KW, m->dxn);
        TRN(rms_norm_bwd)(m->xs[l], W->attn_norm, S->rstd1, m->dxn, T, E, m->dx);
    }
}

vkllm_status TRN(ref_run)(const TRN(ref_weights) * w, const TRN(lora_set) * ls,
                          const TRN(ref_step) * s, TRT *loss, core_err *err) {
    vkllm_status st = check_run(w, ls, s, err);
    if (st != VKLLM_OK) return st;
    const model_config *c = &w->cfg;
    const uint32_t T = s->n_tokens;
    arena ar = {0};
    run_mem m;
    memset(&m, 0, sizeof m);
    run_layout(&m, &ar, c, ls, T, s->backward);
    if (ar.overflow || ar.used > SIZE_MAX)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "train: the activations of %u tokens overflow the address space", T);
    void *mem = core_alloc(w->alloc, (size_t)ar.used, 64);
    float *cs = core_alloc(w->alloc, c->n_rot ? c->n_rot * sizeof(float) : 1, 0);
    if (!mem || !cs) {
        core_free(w->alloc, mem);
        core_free(w->alloc, cs);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "train: out of memory for %.1f MiB of activations (%u tokens)",
                         (double)ar.used / (1 << 20), T);
    }
    ar = (arena){.base = mem};
    run_layout(&m, &ar, c, ls, T, s->backward);
    for (uint32_t t = 0; t < T; t++) {
        eng_rope_cs(c, w->rope_freqs, t, cs);
        for (uint32_t i = 0; i < c->n_rot; i++)
            m.cs[(uint64_t)t * c->n_rot + i] = (TRT)cs[i];
    }
    forward(w, ls, s, &m);
    if (s->logits) memcpy(s->logits, m.logits, (size_t)T * c->n_vocab * sizeof(TRT));
    *loss = 0;
    if (s->backward) zero(m.dlogits, T, c->n_vocab);
    if (s->targets)
        st = TRN(cross_entropy)(m.logits, s->targets, T, c->n_vocab, loss,
                                s->backward ? m.dlogits : NULL, NULL, err);
    else if (s->top_ids)
        st = TRN(kl_topk)(m.logits, s->top_ids, s->top_p, T, c->n_vocab, s->top_k, loss,
                          s->backward ? m.dlogits : NULL, NULL, err);
    if (st == VKLLM_OK && s->backward) backward(w, ls, s, &m);
    core_free(w->alloc, mem);
    core_free(w->alloc, cs);
    return st;
}
