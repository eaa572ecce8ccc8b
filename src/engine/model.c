/* Binds the tensors of a llama-family GGUF file to eng_model: finds each one by its GGUF
 * name, checks its shape against the config and that its type is one we can compute with.
 * The weights stay where the loader mapped them; backends copy them if they need to. */
#include "engine/engine.h"

#include "core/quant_s24.h"

#include <stdio.h>
#include <string.h>

#define NAME_LEN 64

typedef struct bind_ctx {
    const gguf_file *f;
    eng_model *m;
    char *next_name;
    core_err *err;
} bind_ctx;

/* Binds tensor `name` as a [n_out x n_in] matrix (n_out = 1 for a vector). sparse_ok: the
 * packed 2:4 formats are allowed (the layer matrices; the token embedding is read a row at a
 * time and the output head gains little, so both stay dense, as `vkllm prune` writes them). */
static vkllm_status bind(bind_ctx *bc, eng_weight *w, const char *name, uint32_t n_in,
                         uint32_t n_out, bool optional, bool sparse_ok, bool *found) {
    const gguf_tensor *t = gguf_find_tensor(bc->f, name);
    if (found) *found = t != NULL;
    if (!t) {
        if (optional) return VKLLM_OK;
        return core_errf(bc->err, VKLLM_ERR_BAD_FILE, "model: tensor '%s' missing", name);
    }
    bool vec = n_out == 1;
    bool shape_ok = vec ? (t->ne[0] == n_in && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1)
                        : (t->ne[0] == n_in && t->ne[1] == n_out && t->ne[2] == 1 && t->ne[3] == 1);
    if (!shape_ok)
        return core_errf(bc->err, VKLLM_ERR_BAD_FILE,
                         "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected "
                         "[%u, %u]",
                         name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                         (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], n_in, n_out);
    const quant_traits *qt = quant_traits_of(t->type);
    if (!qt || !qt->supported || (vec && t->type != QT_F32))
        return core_errf(bc->err, VKLLM_ERR_UNSUPPORTED,
                         "model: tensor '%s' has type %s, which vkllm cannot compute with%s", name,
                         quant_type_name(t->type), vec ? " (norms must be f32)" : "");
    if (quant_is_s24(t->type) && !sparse_ok)
        return core_errf(bc->err, VKLLM_ERR_UNSUPPORTED,
                         "model: tensor '%s' has type %s: the 2:4 sparse formats are for the "
                         "layer matrices; the token embedding and the output head must be dense",
                         name, quant_type_name(t->type));
    if (!t->data)
        return core_errf(bc->err, VKLLM_ERR_BAD_FILE, "model: tensor '%s' has no data", name);
    uint64_t rb;
    if (!quant_row_bytes(t->type, n_in, &rb))
        return core_errf(bc->err, VKLLM_ERR_BAD_FILE, "model: tensor '%s' row size", name);
    snprintf(bc->next_name, NAME_LEN, "%s", name);
    w->name = bc->next_name;
    bc->next_name += NAME_LEN;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = rb;
    w->data = t->data;
    bc->m->n_params += (uint64_t)n_in * n_out;
    bc->m->weight_bytes += rb * n_out;
    return VKLLM_OK;
}

vkllm_status eng_model_init(eng_model *m, const gguf_file *f, const model_config *cfg,
                            const vkllm_allocator *a, core_err *err) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->alloc = a;
    const uint32_t d = cfg->n_embd, hd = cfg->head_dim;
    const uint32_t dq = cfg->n_head * hd, dkv = cfg->n_head_kv * hd;
    m->layers = core_calloc(a, cfg->n_layer, sizeof *m->layers);
    size_t n_names = (size_t)cfg->n_layer * 9 + 4;
    m->names = core_calloc(a, n_names, NAME_LEN);
    if (!m->layers || !m->names) {
        eng_model_free(m);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "model: out of memory for %u layers",
                         cfg->n_layer);
    }
    bind_ctx bc = {f, m, m->names, err};
    vkllm_status st;
    bool has_output = false;
#define BIND(w, name, in, out, opt, sparse, found)                                                 \
    do {                                                                                           \
        if ((st = bind(&bc, (w), (name), (in), (out), (opt), (sparse), (found))) != VKLLM_OK)      \
            goto fail;                                                                             \
    } while (0)
    BIND(&m->tok_embd, "token_embd.weight", d, cfg->n_vocab, false, false, NULL);
    BIND(&m->output_norm, "output_norm.weight", d, 1, false, false, NULL);
    BIND(&m->output, "output.weight", d, cfg->n_vocab, true, false, &has_output);
    if (!has_output) {
        m->output = m->tok_embd;
        m->tied_output = true;
    }
    char name[NAME_LEN];
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        eng_layer *L = &m->layers[il];
#define LAYER(w, suffix, in, out)                                                                  \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%u.%s", il, (suffix));                                    \
        BIND((w), name, (in), (out), false, (out) > 1, NULL);                                      \
    } while (0)
        LAYER(&L->attn_norm, "attn_norm.weight", d, 1);
        LAYER(&L->wq, "attn_q.weight", d, dq);
        LAYER(&L->wk, "attn_k.weight", d, dkv);
        LAYER(&L->wv, "attn_v.weight", d, dkv);
        LAYER(&L->wo, "attn_output.weight", dq, d);
        LAYER(&L->ffn_norm, "ffn_norm.weight", d, 1);
        LAYER(&L->w_gate, "ffn_gate.weight", d, cfg->n_ff);
        LAYER(&L->w_up, "ffn_up.weight", d, cfg->n_ff);
        LAYER(&L->w_down, "ffn_down.weight", cfg->n_ff, d);
#undef LAYER
    }
    const gguf_tensor *rf = gguf_find_tensor(f, "rope_freqs.weight");
    if (rf) {
        if (rf->type != QT_F32 || rf->ne[0] != cfg->n_rot / 2 || rf->ne[1] != 1 || !rf->data) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE,
                           "model: tensor 'rope_freqs.weight' must be "
                           "f32 [%u]",
                           cfg->n_rot / 2);
            goto fail;
        }
        m->rope_freqs = rf->data;
    }
#undef BIND
    return VKLLM_OK;
fail:
    eng_model_free(m);
    return st;
}

void eng_model_free(eng_model *m) {
    if (!m) return;
    core_free(m->alloc, m->layers);
    core_free(m->alloc, m->names);
    m->layers = NULL;
    m->names = NULL;
}

uint64_t eng_layer_bytes(const eng_layer *l) {
    const eng_weight *w = &l->attn_norm;
    uint64_t bytes = 0;
    for (size_t f = 0; f < sizeof(eng_layer) / sizeof(eng_weight); f++)
        bytes += eng_weight_bytes(&w[f]);
    return bytes;
}

void eng_model_stage(const eng_model *m, uint32_t l0, uint32_t l1, bool embed, bool head,
                     eng_model *out) {
    *out = *m;
    out->layers = m->layers + l0;
    out->cfg.n_layer = l1 - l0;
    out->layer0 = m->layer0 + l0;
    out->no_embed = m->no_embed || !embed;
    out->no_head = m->no_head || !head;
    /* a tied head is the embedding's data: one copy where the stage has both */
    out->tied_output = m->tied_output && !out->no_embed && !out->no_head;
    out->weight_bytes = 0;
    out->n_params = 0;
    const eng_weight *ws[3] = {out->no_embed ? NULL : &m->tok_embd,
                               out->no_head ? NULL : &m->output_norm,
                               out->no_head || out->tied_output ? NULL : &m->output};
    for (int i = 0; i < 3; i++)
        if (ws[i]) {
            out->weight_bytes += eng_weight_bytes(ws[i]);
            out->n_params += (uint64_t)ws[i]->n_in * ws[i]->n_out;
        }
    for (uint32_t l = l0; l < l1; l++) {
        const eng_weight *w = &m->layers[l].attn_norm;
        for (size_t f = 0; f < sizeof(eng_layer) / sizeof(eng_weight); f++)
            out->n_params += (uint64_t)w[f].n_in * w[f].n_out;
        out->weight_bytes += eng_layer_bytes(&m->layers[l]);
    }
}
