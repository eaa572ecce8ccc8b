/* The reference model on double (tr64_ref_*): train_ref_impl.h's body with TRT double, where
 * the whole-model gradient checks run, and the float weights widened into it. */
#include "train/train_ref.h"

#define TRT double
#define TRN(name) tr64_##name
#include "train/train_ref_impl.h"

static void widen(double *dst, const float *src, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        dst[i] = src[i];
}

vkllm_status tr64_ref_weights_widen(tr64_ref_weights *out, const tr_ref_weights *in,
                                    const vkllm_allocator *a, core_err *err) {
    const model_config *c = &in->cfg;
    const bool tied = in->output == in->tok_embd;
    vkllm_status st = tr64_ref_weights_alloc(out, c, tied, in->rope_freqs != NULL, a, err);
    if (st != VKLLM_OK) return st;
    const uint64_t E = c->n_embd;
    widen(out->tok_embd, in->tok_embd, c->n_vocab * E);
    widen(out->output_norm, in->output_norm, E);
    if (!tied) widen(out->output, in->output, c->n_vocab * E);
    if (in->rope_freqs) memcpy(out->rope_freqs, in->rope_freqs, c->n_rot / 2 * sizeof(float));
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const tr_ref_layer *s = &in->layers[l];
        tr64_ref_layer *d = &out->layers[l];
        widen(d->attn_norm, s->attn_norm, E);
        widen(d->ffn_norm, s->ffn_norm, E);
        const float *src[TR_N_TARGETS] = {s->wq,     s->wk,   s->wv,    s->wo,
                                          s->w_gate, s->w_up, s->w_down};
        double *dst[TR_N_TARGETS] = {d->wq, d->wk, d->wv, d->wo, d->w_gate, d->w_up, d->w_down};
        for (int t = 0; t < TR_N_TARGETS; t++) {
            uint32_t n_out, n_in;
            tr_target_shape(c, (tr_target)t, &n_out, &n_in);
            widen(dst[t], src[t], (uint64_t)n_out * n_in);
        }
    }
    return VKLLM_OK;
}
