/* The reference model on float (tr_ref_*): train_ref_impl.h's body with TRT float, the adapter
 * targets' names and shapes, and the dense weights made from a loaded model. */
#include "train/train_ref.h"

#define TRT float
#define TRN(name) tr_##name
#include "train/train_ref_impl.h"

const char *tr_target_name(tr_target t) {
    static const char *const names[TR_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
    return (unsigned)t < TR_N_TARGETS ? names[t] : "?";
}

void tr_target_shape(const model_config *c, tr_target t, uint32_t *n_out, uint32_t *n_in) {
    const uint32_t E = c->n_embd, QW = c->n_head * c->head_dim, KW = c->n_head_kv * c->head_dim;
    switch (t) {
    case TR_Q:
        *n_out = QW, *n_in = E;
        return;
    case TR_K:
    case TR_V:
        *n_out = KW, *n_in = E;
        return;
    case TR_O:
        *n_out = E, *n_in = QW;
        return;
    case TR_GATE:
    case TR_UP:
        *n_out = c->n_ff, *n_in = E;
        return;
    case TR_DOWN:
    default:
        *n_out = E, *n_in = c->n_ff;
        return;
    }
}

/* Dequantizes one tensor of the engine's model into dst, after checking its shape. */
static vkllm_status dequant(const eng_weight *ew, uint32_t n_out, uint32_t n_in, float *dst,
                            core_err *err) {
    if (ew->n_out != n_out || ew->n_in != n_in)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: tensor %s is [%u x %u], the config says [%u x %u]",
                         ew->name ? ew->name : "?", ew->n_out, ew->n_in, n_out, n_in);
    const quant_traits *tr = quant_traits_of(ew->type);
    if (!tr || !tr->supported || !tr->dequant || !ew->data || n_in % tr->block_size)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "train: tensor %s of type %s cannot be dequantized",
                         ew->name ? ew->name : "?", quant_type_name(ew->type));
    for (uint32_t r = 0; r < n_out; r++)
        tr->dequant((const unsigned char *)ew->data + r * ew->row_bytes, dst + (uint64_t)r * n_in,
                    n_in);
    return VKLLM_OK;
}

vkllm_status tr_ref_weights_from_engine(tr_ref_weights *w, const eng_model *m,
                                        const vkllm_allocator *a, core_err *err) {
    if (m->no_embed || m->no_head || m->layer0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "train: the model is a stage of a split model, not a whole one");
    const model_config *c = &m->cfg;
    vkllm_status st = tr_ref_weights_alloc(w, c, m->tied_output, m->rope_freqs != NULL, a, err);
    if (st != VKLLM_OK) return st;
    const uint32_t E = c->n_embd;
    st = dequant(&m->tok_embd, c->n_vocab, E, w->tok_embd, err);
    if (st == VKLLM_OK) st = dequant(&m->output_norm, 1, E, w->output_norm, err);
    if (st == VKLLM_OK && !m->tied_output) st = dequant(&m->output, c->n_vocab, E, w->output, err);
    for (uint32_t l = 0; st == VKLLM_OK && l < c->n_layer; l++) {
        const eng_layer *el = &m->layers[l];
        tr_ref_layer *L = &w->layers[l];
        const eng_weight *src[TR_N_TARGETS] = {&el->wq,     &el->wk,   &el->wv,    &el->wo,
                                               &el->w_gate, &el->w_up, &el->w_down};
        float *dst[TR_N_TARGETS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        st = dequant(&el->attn_norm, 1, E, L->attn_norm, err);
        if (st == VKLLM_OK) st = dequant(&el->ffn_norm, 1, E, L->ffn_norm, err);
        for (int t = 0; st == VKLLM_OK && t < TR_N_TARGETS; t++) {
            uint32_t n_out, n_in;
            tr_target_shape(c, (tr_target)t, &n_out, &n_in);
            st = dequant(src[t], n_out, n_in, dst[t], err);
        }
    }
    if (st == VKLLM_OK && m->rope_freqs)
        memcpy(w->rope_freqs, m->rope_freqs, c->n_rot / 2 * sizeof(float));
    if (st != VKLLM_OK) tr_ref_weights_free(w);
    return st;
}
