/* Reading and binding LoRA adapters (lora.h). The checks and their messages follow llama.cpp's
 * loader, so a file one runtime refuses the other refuses for the same reason. */
#include "engine/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_NAME_LEN 96

static bool str_is(gguf_str s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && memcmp(s.ptr, z, n) == 0;
}

static bool ends_with(gguf_str s, const char *suffix, uint64_t *stem) {
    size_t n = strlen(suffix);
    if (s.len < n || memcmp(s.ptr + s.len - n, suffix, n) != 0) return false;
    *stem = s.len - n;
    return true;
}

/* The model weight named name[0..len), or NULL. Norm vectors are not adaptable. */
static const eng_weight *model_weight(const eng_model *m, const char *name, uint64_t len,
                                      bool *embed) {
    *embed = false;
    const eng_weight *ws[2] = {&m->tok_embd, m->tied_output ? NULL : &m->output};
    for (int i = 0; i < 2; i++)
        if (ws[i] && strlen(ws[i]->name) == len && memcmp(ws[i]->name, name, len) == 0) {
            *embed = i == 0;
            return ws[i];
        }
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const eng_layer *L = &m->layers[l];
        const eng_weight *lw[7] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                   &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++)
            if (strlen(lw[i]->name) == len && memcmp(lw[i]->name, name, len) == 0) return lw[i];
    }
    return NULL;
}

static int cmp_pair(const void *x, const void *y) {
    const eng_lora_pair *a = x, *b = y;
    uintptr_t pa = (uintptr_t)a->target, pb = (uintptr_t)b->target;
    if (pa != pb) return pa < pb ? -1 : 1;
    return (int)a->embed - (int)b->embed;
}

static vkllm_status bind_half(eng_weight *w, const gguf_tensor *t, core_err *err) {
    char nm[LORA_NAME_LEN];
    snprintf(nm, sizeof nm, "%.*s", (int)(t->name.len < 80 ? t->name.len : 80), t->name.ptr);
    if (t->type != QT_F32 && t->type != QT_F16)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "lora: tensor '%s' has type %s; adapters must be f32 or f16", nm,
                         quant_type_name(t->type));
    if (t->n_dims > 2 || t->ne[2] != 1 || t->ne[3] != 1)
        return core_errf(err, VKLLM_ERR_BAD_FILE, "lora: tensor '%s' is not a matrix", nm);
    if (!t->data) return core_errf(err, VKLLM_ERR_BAD_FILE, "lora: tensor '%s' has no data", nm);
    w->type = t->type;
    w->n_in = (uint32_t)t->ne[0];
    w->n_out = (uint32_t)t->ne[1];
    w->row_bytes = t->ne[0] * (t->type == QT_F32 ? 4u : 2u);
    w->data = t->data;
    return VKLLM_OK;
}

vkllm_status eng_lora_init(eng_lora *l, const gguf_file *f, const eng_model *m,
                           const vkllm_allocator *a, core_err *err) {
    memset(l, 0, sizeof *l);
    l->alloc = a;
    gguf_str s = {"", 0};
    if (!gguf_get_str(f, "general.type", &s) || !str_is(s, "adapter"))
        return core_errf(err, VKLLM_ERR_BAD_FILE,
                         "lora: expect general.type to be 'adapter', but got: %.*s",
                         (int)(s.len < 64 ? s.len : 64), s.ptr);
    s = (gguf_str){"", 0};
    if (!gguf_get_str(f, "general.architecture", &s) || !str_is(s, m->cfg.arch))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "lora: the adapter is for architecture '%.*s', the model is '%s' (model "
                         "arch and LoRA arch mismatch)",
                         (int)(s.len < 32 ? s.len : 32), s.ptr, m->cfg.arch);
    if (!gguf_get_str(f, "adapter.type", &s) || !str_is(s, "lora"))
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "lora: expect adapter.type to be 'lora' (other adapter types are not "
                         "supported)");
    if (gguf_find_key(f, "adapter.alora.invocation_tokens") >= 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "lora: activated LoRA (adapter.alora.invocation_tokens) is not supported");
    if (gguf_find_key(f, "adapter.lora.alpha") >= 0 &&
        !gguf_get_f32(f, "adapter.lora.alpha", &l->alpha))
        return core_errf(err, VKLLM_ERR_BAD_FILE, "lora: adapter.lora.alpha is not a float");
    if (l->alpha != l->alpha)
        return core_errf(err, VKLLM_ERR_BAD_FILE, "lora: adapter.lora.alpha is NaN");
    if (gguf_get_str(f, "general.name", &s) && s.len > 0)
        snprintf(l->name, sizeof l->name, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);

    const uint64_t n_t = gguf_tensor_count(f);
    l->pairs = core_calloc(a, n_t ? n_t : 1, sizeof *l->pairs);
    l->names = core_calloc(a, n_t ? n_t : 1, LORA_NAME_LEN);
    if (!l->pairs || !l->names) {
        eng_lora_free(l);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "lora: out of memory");
    }
    /* which half each pair has seen: bit 0 A, bit 1 B */
    uint8_t *seen = core_calloc(a, n_t ? n_t : 1, 1);
    if (!seen) {
        eng_lora_free(l);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "lora: out of memory");
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; i < n_t && st == VKLLM_OK; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t stem;
        int half;
        if (ends_with(t->name, ".lora_a", &stem))
            half = 0;
        else if (ends_with(t->name, ".lora_b", &stem))
            half = 1;
        else if (ends_with(t->name, "_norm.weight", &stem))
            continue; /* llama.cpp skips norm vectors too: most adapters work without them */
        else {
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "lora: tensor '%.*s' has unexpected suffix",
                           (int)(t->name.len < 80 ? t->name.len : 80), t->name.ptr);
            break;
        }
        bool embed;
        const eng_weight *w = model_weight(m, t->name.ptr, stem, &embed);
        if (!w) {
            st = core_errf(err, VKLLM_ERR_INVALID_ARG,
                           "lora: tensor '%.*s' does not exist in base model (hint: maybe wrong "
                           "base model?)",
                           (int)(stem < 80 ? stem : 80), t->name.ptr);
            break;
        }
        uint32_t p = 0;
        while (p < l->n_pairs && l->pairs[p].target != w->name)
            p++;
        if (p == l->n_pairs) {
            l->n_pairs++;
            l->pairs[p].target = w->name;
            l->pairs[p].embed = embed;
        }
        eng_lora_pair *pr = &l->pairs[p];
        if (seen[p] & (1u << half)) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "lora: tensor '%.*s' appears twice",
                           (int)(t->name.len < 80 ? t->name.len : 80), t->name.ptr);
            break;
        }
        seen[p] |= (uint8_t)(1u << half);
        eng_weight *hw = half ? &pr->b : &pr->a;
        if ((st = bind_half(hw, t, err)) != VKLLM_OK) break;
        char *nm = l->names + (size_t)i * LORA_NAME_LEN;
        snprintf(nm, LORA_NAME_LEN, "%.*s", (int)(t->name.len < 90 ? t->name.len : 90),
                 t->name.ptr);
        hw->name = nm;
    }
    for (uint32_t p = 0; p < l->n_pairs && st == VKLLM_OK; p++) {
        eng_lora_pair *pr = &l->pairs[p];
        const char *tn = pr->target;
        if (seen[p] != 3) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE,
                           "lora: LoRA tensor pair for '%s' is missing one component", tn);
            break;
        }
        bool embed;
        const eng_weight *w = model_weight(m, tn, strlen(tn), &embed);
        bool ok;
        if (pr->embed) /* A [n_vocab rows x rank], B [n_embd rows x rank] */
            ok = w->n_in == pr->b.n_out && w->n_out == pr->a.n_out && pr->a.n_in == pr->b.n_in;
        else
            ok = w->n_in == pr->a.n_in && w->n_out == pr->b.n_out;
        if (!ok) {
            st = core_errf(err, VKLLM_ERR_INVALID_ARG,
                           "lora: tensor '%s' has incorrect shape (hint: maybe wrong base model?)",
                           tn);
            break;
        }
        if (!pr->embed && pr->a.n_out != pr->b.n_in) {
            st = core_errf(err, VKLLM_ERR_INVALID_ARG,
                           "lora: lora_a of '%s' is not transposed (rank %u, lora_b has %u "
                           "columns)",
                           tn, pr->a.n_out, pr->b.n_in);
            break;
        }
        pr->rank = pr->b.n_in;
        if (pr->rank == 0 || pr->rank > ENG_LORA_MAX_RANK) {
            st = core_errf(err, VKLLM_ERR_UNSUPPORTED, "lora: '%s' has rank %u (1 to %u supported)",
                           tn, pr->rank, ENG_LORA_MAX_RANK);
            break;
        }
        if (pr->rank > l->max_rank) l->max_rank = pr->rank;
        l->bytes += eng_weight_bytes(&pr->a) + eng_weight_bytes(&pr->b);
    }
    core_free(a, seen);
    if (st == VKLLM_OK && l->n_pairs == 0)
        st = core_errf(err, VKLLM_ERR_BAD_FILE, "lora: the adapter adapts no tensor");
    if (st != VKLLM_OK) {
        eng_lora_free(l);
        return st;
    }
    qsort(l->pairs, l->n_pairs, sizeof *l->pairs, cmp_pair);
    return VKLLM_OK;
}

vkllm_status eng_lora_load(eng_lora *l, const char *path, const eng_model *m,
                           const vkllm_allocator *a, core_err *err) {
    memset(l, 0, sizeof *l);
    gguf_open_desc od = {.allocator = a};
    gguf_file *f = NULL;
    vkllm_status st = gguf_open(path, &od, &f, err);
    if (st != VKLLM_OK) return st;
    if ((st = eng_lora_init(l, f, m, a, err)) != VKLLM_OK) {
        gguf_close(f);
        return st;
    }
    l->file = f;
    if (!l->name[0]) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = strlen(base);
        if (n > 5 && strcmp(base + n - 5, ".gguf") == 0) n -= 5;
        snprintf(l->name, sizeof l->name, "%.*s", (int)(n < 63 ? n : 63), base);
    }
    return VKLLM_OK;
}

void eng_lora_free(eng_lora *l) {
    if (!l) return;
    core_free(l->alloc, l->pairs);
    core_free(l->alloc, l->names);
    if (l->file) gguf_close(l->file);
    memset(l, 0, sizeof *l);
}

const eng_lora_pair *eng_lora_find(const eng_lora *l, const eng_weight *w, bool embed) {
    uint32_t lo = 0, hi = l->n_pairs;
    const eng_lora_pair key = {.target = w->name, .embed = embed};
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = cmp_pair(&l->pairs[mid], &key);
        if (c == 0) return &l->pairs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
