/* vkllm_model: a GGUF file opened, its tokenizer and config read, its weights bound and
 * attached to the runtime's backend; plus tokens, chat templates, metadata and tensor tables. */
#include "api_abi.h"
#include "api_internal.h"
#include "sched/json_schema.h"

#include <stdio.h>
#include <string.h>

/* The weights' type as llama.cpp names a file's: general.file_type when it says, else the
 * type of most matrix bytes (upper case, as "Q4_1"). */
static void model_type_name(vkllm_model *m) {
    uint32_t ft;
    const char *name =
        gguf_get_u32(m->file, "general.file_type", &ft) ? quant_ftype_name(ft) : NULL;
    if (!name) {
        /* the ggml ids, then the two S24 ids at QT_COUNT and QT_COUNT + 1 */
        uint64_t bytes[QT_COUNT + 2] = {0};
        uint32_t best = QT_F32;
        for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++) {
            const gguf_tensor *t = gguf_tensor_at(m->file, i);
            const uint32_t slot = t->type == QT_S24_Q4   ? QT_COUNT
                                  : t->type == QT_S24_Q8 ? QT_COUNT + 1
                                                         : t->type;
            if (slot >= QT_COUNT + 2 || t->n_dims < 2) continue;
            bytes[slot] += t->nbytes;
            if (bytes[slot] > bytes[best]) best = slot;
        }
        name = quant_type_name(best == QT_COUNT       ? QT_S24_Q4
                               : best == QT_COUNT + 1 ? QT_S24_Q8
                                                      : best);
    }
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof m->type_name; i++)
        m->type_name[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    m->type_name[i] = '\0';
}

vkllm_status vkllm_model_load(vkllm_runtime *rt, const vkllm_model_desc *user_desc,
                              vkllm_model **out) {
    if (!rt) return VKLLM_ERR_INVALID_ARG;
    vkllm_model_desc local;
    const vkllm_model_desc *desc = user_desc ? API_IN(vkllm_model_desc, user_desc, &local) : NULL;
    if (!desc || !desc->path || !out)
        return core_errf(&rt->err, VKLLM_ERR_INVALID_ARG,
                         "model: desc, path and out are "
                         "required");
    *out = NULL;
    vkllm_model *m = core_calloc(rt->alloc, 1, sizeof *m);
    if (!m) return core_errf(&rt->err, VKLLM_ERR_OUT_OF_MEMORY, "model: out of memory");
    m->rt = rt;
    m->vocab_only = desc->vocab_only;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->lora_mu, NULL);
    gguf_open_desc od = {.allocator = rt->alloc, .vocab_only = desc->vocab_only};
    /* models may be loaded on several threads at once: the message goes to the runtime only
     * on failure */
    core_err err_store = {{0}}, *err = &err_store;
    vkllm_status st = gguf_open(desc->path, &od, &m->file, err);
    if (st != VKLLM_OK) goto fail;
    model_type_name(m);
    if ((st = tok_load(m->file, rt->alloc, &m->vocab, err)) != VKLLM_OK) goto fail;
    if (gguf_get_str(m->file, "tokenizer.chat_template", &m->chat_tmpl))
        m->chat = chat_detect(m->chat_tmpl.ptr, m->chat_tmpl.len);
    else
        m->chat = chat_detect(NULL, 0);
    if (m->chat == CHAT_FORMAT_UNKNOWN) {
        /* as llama.cpp does for templates it does not know */
        rt_log(rt, VKLLM_LOG_WARN, "model: chat template not recognised, using ChatML");
        m->chat = CHAT_FORMAT_CHATML;
        m->chat_tmpl.ptr = NULL;
        m->chat_tmpl.len = 0;
    }
    if (!desc->vocab_only) {
        if ((st = model_config_load(m->file, tok_n_vocab(m->vocab), &m->cfg, err)) != VKLLM_OK)
            goto fail;
        if (m->cfg.n_vocab != tok_n_vocab(m->vocab)) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE,
                           "model: vocab_size %u but the tokenizer "
                           "has %u tokens",
                           m->cfg.n_vocab, tok_n_vocab(m->vocab));
            goto fail;
        }
        if ((st = eng_model_init(&m->em, m->file, &m->cfg, rt->alloc, err)) != VKLLM_OK) goto fail;
        if ((st = eng_graph_build(&m->em, &m->graph, err)) != VKLLM_OK) goto fail;
        pthread_mutex_lock(&rt->be_mu); /* an engine of the runtime may be stepping */
        st = api_place(m, desc, err);
        pthread_mutex_unlock(&rt->be_mu);
        if (st != VKLLM_OK) goto fail;
        rt_log(rt, VKLLM_LOG_INFO, "model: %s, %u layers, %.1f M params, %.1f MiB of weights",
               m->cfg.name, m->cfg.n_layer, (double)m->em.n_params / 1e6,
               (double)m->em.weight_bytes / (1024.0 * 1024.0));
    }
    *out = m;
    return VKLLM_OK;
fail:
    vkllm_model_free(m);
    pthread_mutex_lock(&rt->be_mu);
    rt->err = err_store;
    pthread_mutex_unlock(&rt->be_mu);
    return st;
}

void vkllm_model_free(vkllm_model *m) {
    if (!m) return;
    const vkllm_allocator *a = m->rt->alloc;
    eng_graph_free(&m->graph, a);
    api_lora_free_all(m);
    pthread_mutex_lock(&m->rt->be_mu);
    if (m->be) m->be->vt->model_detach(m->be, &m->em); /* no-op if never attached */
    if (m->split) m->split->vt->destroy(m->split);
    pthread_mutex_unlock(&m->rt->be_mu);
    eng_model_free(&m->em);
    jsc_vocab_free(m->json_vocab);
    tok_free(m->vocab);
    if (m->tensor_names) {
        for (uint64_t i = 0; i < gguf_tensor_count(m->file); i++)
            core_free(a, m->tensor_names[i]);
        core_free(a, m->tensor_names);
    }
    gguf_close(m->file);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->lora_mu);
    core_free(a, m);
}

const char *vkllm_model_last_error(const vkllm_model *m) {
    return m ? m->err.msg : "";
}

void vkllm_model_get_info(const vkllm_model *m, vkllm_model_info *out) {
    if (!m || !out) return;
    vkllm_model_info info = {0}, *o = &info;
    o->architecture = m->vocab_only ? "" : m->cfg.arch;
    o->name = m->vocab_only ? "" : m->cfg.name;
    o->n_vocab = tok_n_vocab(m->vocab);
    o->n_ctx_train = m->cfg.n_ctx_train;
    o->n_embd = m->cfg.n_embd;
    o->n_layer = m->cfg.n_layer;
    o->n_head = m->cfg.n_head;
    o->n_head_kv = m->cfg.n_head_kv;
    o->n_ff = m->cfg.n_ff;
    o->n_params = m->em.n_params;
    o->weight_bytes = m->em.weight_bytes;
    o->decode_weight_bytes = m->em.weight_bytes;
    if (!m->vocab_only && !m->em.tied_output)
        o->decode_weight_bytes -= m->em.tok_embd.row_bytes * (m->em.tok_embd.n_out - 1ull);
    o->bos = tok_bos(m->vocab);
    o->eos = tok_eos(m->vocab);
    o->add_bos = tok_add_bos(m->vocab);
    o->add_eos = tok_add_eos(m->vocab);
    o->has_chat_template = m->chat_tmpl.len > 0;
    o->type = m->type_name;
    o->file_bytes = gguf_file_size(m->file);
    API_OUT(vkllm_model_info, out, &info);
}

size_t vkllm_model_meta_count(const vkllm_model *m) {
    return (size_t)gguf_kv_count(m->file);
}

vkllm_status vkllm_model_meta(const vkllm_model *m, size_t i, char *key, size_t key_cap,
                              char *value, size_t value_cap) {
    if (!m || i >= gguf_kv_count(m->file) || !key || !key_cap || !value || !value_cap)
        return VKLLM_ERR_INVALID_ARG;
    gguf_str k = gguf_kv_key(m->file, i); /* not NUL-terminated in the mapping */
    size_t kl = k.len < key_cap - 1 ? (size_t)k.len : key_cap - 1;
    memcpy(key, k.ptr, kl);
    key[kl] = '\0';
    gguf_kv_format(m->file, i, value, value_cap);
    return VKLLM_OK;
}

size_t vkllm_model_tensor_count(const vkllm_model *m) {
    return (size_t)gguf_tensor_count(m->file);
}

vkllm_status vkllm_model_tensor(const vkllm_model *m_, size_t i, vkllm_tensor_info *out) {
    vkllm_model *m = (vkllm_model *)m_;
    if (!m || !out) return VKLLM_ERR_INVALID_ARG;
    vkllm_tensor_info info = {0}, *o = &info;
    uint64_t n = gguf_tensor_count(m->file);
    if (i >= n) return VKLLM_ERR_INVALID_ARG;
    const vkllm_allocator *a = m->rt->alloc;
    const gguf_tensor *t = gguf_tensor_at(m->file, i);
    vkllm_status st = VKLLM_OK;
    pthread_mutex_lock(&m->mu); /* the names are made on first use, by any thread */
    if (!m->tensor_names) m->tensor_names = core_calloc(a, (size_t)n, sizeof(char *));
    if (!m->tensor_names) {
        st = VKLLM_ERR_OUT_OF_MEMORY;
    } else if (!m->tensor_names[i]) {
        char *s = core_alloc(a, (size_t)t->name.len + 1, 0);
        if (s) {
            memcpy(s, t->name.ptr, (size_t)t->name.len);
            s[t->name.len] = '\0';
        } else {
            st = VKLLM_ERR_OUT_OF_MEMORY;
        }
        m->tensor_names[i] = s;
    }
    if (st == VKLLM_OK) o->name = m->tensor_names[i];
    pthread_mutex_unlock(&m->mu);
    if (st != VKLLM_OK) return st;
    o->type = quant_type_name(t->type);
    o->n_dims = t->n_dims;
    memcpy(o->ne, t->ne, sizeof o->ne);
    o->offset = t->offset;
    o->nbytes = t->nbytes;
    uint64_t end;
    o->in_file = core_add_ok(gguf_data_offset(m->file), t->offset, &end) &&
                 core_add_ok(end, t->nbytes, &end) && end <= gguf_file_size(m->file);
    API_OUT(vkllm_tensor_info, out, &info);
    return VKLLM_OK;
}

/* ---- tokens ---- */

vkllm_status vkllm_tokenize(vkllm_model *m, const char *text, size_t len, uint32_t flags,
                            int32_t *ids, size_t cap, size_t *n_out) {
    if (!m || (!text && len) || !n_out) return VKLLM_ERR_INVALID_ARG;
    return tok_encode(m->vocab, text ? text : "", len, flags & VKLLM_TOKENIZE_ADD_SPECIAL,
                      flags & VKLLM_TOKENIZE_PARSE_SPECIAL, ids, cap, n_out, &m->err);
}

vkllm_status vkllm_token_to_piece(vkllm_model *m, int32_t id, bool render_special, char *buf,
                                  size_t cap, size_t *n_out) {
    if (!m || !n_out) return VKLLM_ERR_INVALID_ARG;
    if (id < 0 || (uint32_t)id >= tok_n_vocab(m->vocab))
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "token id %d out of range [0, %u)", id,
                         tok_n_vocab(m->vocab));
    size_t n = tok_piece(m->vocab, id, render_special, buf, cap);
    *n_out = n;
    return n > cap ? VKLLM_ERR_BUFFER_TOO_SMALL : VKLLM_OK;
}

vkllm_status vkllm_detokenize(vkllm_model *m, const int32_t *ids, size_t n, bool render_special,
                              char *buf, size_t cap, size_t *n_out) {
    if (!m || (!ids && n) || !n_out) return VKLLM_ERR_INVALID_ARG;
    size_t total = 0;
    /* SentencePiece vocabs that add a space prefix when encoding drop it from the first
     * piece when decoding (after a BOS that is not rendered), as llama.cpp does. */
    const bool strip = tok_add_space_prefix(m->vocab);
    const size_t first = !render_special && n > 0 && ids[0] == tok_bos(m->vocab) ? 1 : 0;
    char piece[1024];
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= tok_n_vocab(m->vocab))
            return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "token id %d out of range", ids[i]);
        size_t pl = tok_piece(m->vocab, ids[i], render_special, piece, sizeof piece);
        if (pl > sizeof piece)
            return core_errf(&m->err, VKLLM_ERR_INTERNAL, "token %d: piece of %zu bytes", ids[i],
                             pl);
        const size_t skip = strip && i == first && pl > 0 && piece[0] == ' ' ? 1 : 0;
        const size_t len = pl - skip;
        if (buf && total < cap)
            memcpy(buf + total, piece + skip, len < cap - total ? len : cap - total);
        total += len;
    }
    *n_out = total;
    return total > cap ? VKLLM_ERR_BUFFER_TOO_SMALL : VKLLM_OK;
}

bool vkllm_token_is_eog(const vkllm_model *m, int32_t id) {
    return tok_is_eog(m->vocab, id);
}

vkllm_status vkllm_chat_apply(vkllm_model *m, const vkllm_chat_message *msgs, size_t n,
                              bool add_assistant, char *buf, size_t cap, size_t *n_out) {
    if (!m || (!msgs && n) || !n_out) return VKLLM_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                             "chat: message %zu has no role or "
                             "content",
                             i);
    /* No BOS in the text: tokenizing with VKLLM_TOKENIZE_ADD_SPECIAL adds it, once. */
    const char *bos_text = "";
    return chat_render(m->chat, m->chat_tmpl.ptr, (size_t)m->chat_tmpl.len, msgs, n, add_assistant,
                       bos_text, buf, cap, n_out);
}
