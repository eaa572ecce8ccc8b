/* Builds the op list of one forward step of a llama model (Touvron et al. 2023, "LLaMA":
 * pre-norm RMSNorm, rotary embeddings, grouped-query attention, SwiGLU feed-forward).
 * The residual adds are fused into the output projections (MATMUL with accumulate). */
#include "engine/engine.h"

#include <math.h>
#include <string.h>

void eng_rope_cs(const model_config *cfg, const float *rope_freqs, uint32_t pos, float *cs) {
    const float theta_scale = powf(cfg->rope_base, -2.0f / (float)cfg->n_rot);
    float theta = (float)pos;
    for (uint32_t i = 0; i < cfg->n_rot; i += 2) {
        const float ff = rope_freqs ? rope_freqs[i / 2] : 1.0f;
        const float th = cfg->rope_freq_scale * (theta / ff);
        cs[i] = cosf(th);
        cs[i + 1] = sinf(th);
        theta *= theta_scale;
    }
}

void eng_select_top_ban(const float *logits, uint32_t n, uint32_t k, const int32_t *ban,
                        uint32_t n_ban, int32_t *ids, float *vals) {
    /* insertion into a sorted list of k: k is small (<= ENG_TOP_K_MAX) */
    uint32_t have = 0, b = 0; /* ban[b]: the next banned id at or after i */
    for (uint32_t i = 0; i < n; i++) {
        while (b < n_ban && ban[b] < (int64_t)i)
            b++;
        if (b < n_ban && ban[b] == (int64_t)i) continue;
        const float v = logits[i];
        if (v != v) continue; /* NaN never wins */
        if (have == k && !(v > (vals ? vals[k - 1] : logits[ids[k - 1]]))) continue;
        uint32_t j = have < k ? have++ : k - 1;
        while (j > 0 && v > (vals ? vals[j - 1] : logits[ids[j - 1]])) {
            ids[j] = ids[j - 1];
            if (vals) vals[j] = vals[j - 1];
            j--;
        }
        ids[j] = (int32_t)i;
        if (vals) vals[j] = v;
    }
    for (uint32_t j = have; j < k; j++) {
        ids[j] = -1;
        if (vals) vals[j] = -INFINITY;
    }
}

const char *eng_op_name(eng_op_kind k) {
    switch (k) {
    case EOP_EMBED:
        return "embed";
    case EOP_RMS_NORM:
        return "rms_norm";
    case EOP_MATMUL:
        return "matmul";
    case EOP_ROPE:
        return "rope";
    case EOP_KV_STORE:
        return "kv_store";
    case EOP_ATTENTION:
        return "attention";
    case EOP_SWIGLU:
        return "swiglu";
    }
    return "?";
}

static eng_op *push(eng_graph *g, eng_op_kind kind, uint16_t layer) {
    eng_op *op = &g->ops[g->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->layer = layer;
    return op;
}

vkllm_status eng_graph_build(const eng_model *m, eng_graph *g, core_err *err) {
    const model_config *c = &m->cfg;
    memset(g, 0, sizeof *g);
    uint32_t cap = 10 * c->n_layer + 3; /* 10 ops per layer, embed, final norm, head */
    g->ops = core_calloc(m->alloc, cap, sizeof *g->ops);
    if (!g->ops) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "graph: out of memory");
    g->buf_width[EB_X] = c->n_embd;
    g->buf_width[EB_XN] = c->n_embd;
    g->buf_width[EB_Q] = c->n_head * c->head_dim;
    g->buf_width[EB_K] = c->n_head_kv * c->head_dim;
    g->buf_width[EB_V] = c->n_head_kv * c->head_dim;
    g->buf_width[EB_ATT] = c->n_head * c->head_dim;
    g->buf_width[EB_GATE] = c->n_ff;
    g->buf_width[EB_UP] = c->n_ff;
    g->buf_width[EB_LOGITS] = m->no_head ? 0 : c->n_vocab;

    eng_op *op;
    if (!m->no_embed) {
        op = push(g, EOP_EMBED, 0);
        op->dst[0] = EB_X;
        op->w[0] = &m->tok_embd;
    }
    for (uint32_t il = 0; il < c->n_layer; il++) {
        const eng_layer *L = &m->layers[il];
        op = push(g, EOP_RMS_NORM, il);
        op->src = EB_X, op->dst[0] = EB_XN, op->w[0] = &L->attn_norm;

        op = push(g, EOP_MATMUL, il);
        op->src = EB_XN, op->n_w = 3;
        op->w[0] = &L->wq, op->dst[0] = EB_Q;
        op->w[1] = &L->wk, op->dst[1] = EB_K;
        op->w[2] = &L->wv, op->dst[2] = EB_V;

        push(g, EOP_ROPE, il);
        push(g, EOP_KV_STORE, il);
        op = push(g, EOP_ATTENTION, il);
        op->src = EB_Q, op->dst[0] = EB_ATT;

        op = push(g, EOP_MATMUL, il);
        op->src = EB_ATT, op->n_w = 1, op->w[0] = &L->wo, op->dst[0] = EB_X;
        op->accumulate = true;

        op = push(g, EOP_RMS_NORM, il);
        op->src = EB_X, op->dst[0] = EB_XN, op->w[0] = &L->ffn_norm;

        op = push(g, EOP_MATMUL, il);
        op->src = EB_XN, op->n_w = 2;
        op->w[0] = &L->w_gate, op->dst[0] = EB_GATE;
        op->w[1] = &L->w_up, op->dst[1] = EB_UP;

        op = push(g, EOP_SWIGLU, il);
        op->src = EB_GATE, op->src2 = EB_UP, op->dst[0] = EB_GATE;

        op = push(g, EOP_MATMUL, il);
        op->src = EB_GATE, op->n_w = 1, op->w[0] = &L->w_down, op->dst[0] = EB_X;
        op->accumulate = true;
    }
    if (m->no_head) return VKLLM_OK;
    op = push(g, EOP_RMS_NORM, 0);
    op->src = EB_X, op->dst[0] = EB_XN, op->w[0] = &m->output_norm, op->last_rows = true;
    op = push(g, EOP_MATMUL, 0);
    op->src = EB_XN, op->n_w = 1, op->w[0] = &m->output, op->dst[0] = EB_LOGITS;
    op->last_rows = true;
    return VKLLM_OK;
}

void eng_graph_free(eng_graph *g, const vkllm_allocator *a) {
    core_free(a, g->ops);
    g->ops = NULL;
    g->n_ops = 0;
}
