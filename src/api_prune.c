/* vkllm_prune: a model's layer matrices pruned by magnitude, by Wanda's activation-aware
 * score or by SparseGPT, in an unstructured, N:M or structured (whole FFN channels, whole
 * attention head groups) pattern, written dense (the zeros kept, in a GGUF type llama.cpp also
 * runs) or, for 2:4, in vkllm's packed formats (docs/sparse.md).
 *
 * Scores: magnitude |W_ij|; Wanda |W_ij| * sqrt(E[x_j^2]), the input column's mean square
 * from an importance matrix (loader/imatrix.h). As in the Wanda paper, unstructured magnitude
 * pruning compares the weights of a whole matrix, Wanda those of one output row; N:M compares
 * the M consecutive weights of a row's group. Structured patterns score a channel (a head
 * group) by the sum of its weights' scores in every matrix it touches, and remove the same
 * number from every layer, so the file keeps one n_ff (n_head) that llama.cpp reads.
 * SparseGPT (unstructured and N:M) also updates the kept weights; its calibration and
 * pruning run before the file is written (api_sparsegpt.c), which then takes its matrices.
 * Every other tensor is copied as it is; the file is written under a temporary name. */
#include "api_abi.h"
#include "api_internal.h"
#include "api_sparsegpt.h"
#include "core/kth.h"
#include "core/quant_s24.h"
#include "engine/prune_s24.h"
#include "loader/imatrix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum prune_pattern { PP_UNSTRUCTURED, PP_NM, PP_FFN, PP_HEADS } prune_pattern;

typedef struct prune_job {
    const vkllm_prune_desc *d;
    const vkllm_allocator *a;
    core_err *err;
    gguf_file *in;
    model_config cfg;
    imatrix *im;
    bool wanda, sgpt;
    prune_sgpt_result sg; /* sgpt: the pruned matrices */
    uint64_t progress_base, progress_total;
    prune_pattern pat;
    uint32_t nm_n, nm_m;
    float sparsity;
    bool packed;
    uint32_t out_type;
    /* structured: per layer the kept channels (FFN) or kept KV groups (heads), ascending */
    uint32_t n_keep;
    uint32_t *keep; /* n_layer x n_keep */
    /* totals over the pruned matrices */
    uint64_t n_weights, n_zero, bytes_in, bytes_out;
    uint32_t n_matrices;
} prune_job;

/* ---- tensors ---- */

/* The layer and role of blk.N.<role>.weight; false for anything else. */
static bool layer_matrix(const gguf_tensor *t, uint32_t *layer, char role[32]) {
    char name[96];
    if (t->n_dims != 2 || t->name.len >= sizeof name) return false;
    memcpy(name, t->name.ptr, (size_t)t->name.len);
    name[t->name.len] = '\0';
    unsigned l;
    int n = 0;
    if (sscanf(name, "blk.%u.%31[a-z_].weight%n", &l, role, &n) != 2 || name[n] != '\0')
        return false;
    static const char *const roles[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0) {
            *layer = l;
            return true;
        }
    return false;
}

static vkllm_status dequant(prune_job *j, const gguf_tensor *t, const char *name, float **out) {
    const quant_traits *tr = quant_traits_of(t->type);
    if (!tr || !tr->supported || !tr->dequant)
        return core_errf(j->err, VKLLM_ERR_UNSUPPORTED,
                         "prune: %s is %s, which vkllm cannot "
                         "read",
                         name, quant_type_name(t->type));
    const uint64_t n = t->ne[0] * t->ne[1];
    float *w = core_alloc(j->a, (size_t)n * sizeof(float), 64);
    if (!w)
        return core_errf(j->err, VKLLM_ERR_OUT_OF_MEMORY,
                         "prune: %s: out of memory for its weights as F32 (%.1f MiB)", name,
                         (double)n * sizeof(float) / (1024.0 * 1024.0));
    uint64_t rb;
    quant_row_bytes(t->type, t->ne[0], &rb);
    for (uint64_t r = 0; r < t->ne[1]; r++)
        tr->dequant((const uint8_t *)t->data + r * rb, w + r * t->ne[0], (int64_t)t->ne[0]);
    *out = w;
    return VKLLM_OK;
}

/* Input-column factors of a matrix: sqrt of the mean squares (Wanda), or NULL (magnitude). */
static vkllm_status col_factors(prune_job *j, const char *name, uint64_t n_in, float **out) {
    *out = NULL;
    if (!j->wanda) return VKLLM_OK;
    const imatrix_entry *e = imatrix_find(j->im, name);
    if (!e)
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: the importance matrix has no "
                         "entry for %s (was it made from this model?)",
                         name);
    if (e->n_values != n_in || e->n_counts != 1)
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: the importance matrix's %s has "
                         "%llu values, the matrix %llu columns",
                         name, (unsigned long long)e->n_values, (unsigned long long)n_in);
    float *f = core_alloc(j->a, (size_t)n_in * sizeof(float), 64);
    if (!f) return core_errf(j->err, VKLLM_ERR_OUT_OF_MEMORY, "prune: out of memory");
    imatrix_weights(j->im, e, f);
    for (uint64_t i = 0; i < n_in; i++)
        f[i] = sqrtf(f[i] > 0 ? f[i] : 0);
    *out = f;
    return VKLLM_OK;
}

static inline float score(const float *w, const float *cf, uint64_t i, uint64_t n_in) {
    return fabsf(w[i]) * (cf ? cf[i % n_in] : 1.0f);
}

CORE_KTH_SMALLEST(kth_smallest, float)

/* Zeroes the k lowest-scoring of the n weights at w (scores at s, same order): every weight
 * scoring under the k-th smallest score, then ties in index order. */
static void zero_lowest(float *w, const float *s, uint64_t n, uint64_t k, float *tmp) {
    if (k == 0) return;
    memcpy(tmp, s, (size_t)n * sizeof(float));
    const float t = kth_smallest(tmp, n, k - 1);
    uint64_t z = 0;
    for (uint64_t i = 0; i < n; i++)
        if (s[i] < t) w[i] = 0.0f, z++;
    for (uint64_t i = 0; i < n && z < k; i++)
        if (s[i] == t) w[i] = 0.0f, z++;
}

/* Unstructured and N:M patterns, in place. */
static vkllm_status prune_matrix(prune_job *j, float *w, uint64_t n_in, uint64_t n_out,
                                 const float *cf) {
    const uint64_t n = n_in * n_out;
    if (j->pat == PP_NM) { /* keep the N best of each group of M, ties to the lower column */
        for (uint64_t g = 0; g < n; g += j->nm_m) {
            float sc[8];
            bool keep[8] = {false};
            for (uint32_t c = 0; c < j->nm_m; c++)
                sc[c] = score(w, cf, g + c, n_in);
            for (uint32_t k = 0; k < j->nm_n; k++) {
                int best = -1;
                for (uint32_t c = 0; c < j->nm_m; c++)
                    if (!keep[c] && (best < 0 || sc[c] > sc[best])) best = (int)c;
                keep[best] = true;
            }
            for (uint32_t c = 0; c < j->nm_m; c++)
                if (!keep[c]) w[g + c] = 0.0f;
        }
        return VKLLM_OK;
    }
    /* unstructured: magnitude over the matrix, Wanda per output row */
    const uint64_t span = j->wanda ? n_in : n;
    float *s = core_alloc(j->a, (size_t)span * sizeof(float), 64);
    float *tmp = core_alloc(j->a, (size_t)span * sizeof(float), 64);
    if (!s || !tmp) {
        core_free(j->a, s);
        core_free(j->a, tmp);
        return core_errf(j->err, VKLLM_ERR_OUT_OF_MEMORY,
                         "prune: out of memory for the scores of %llu weights (%.1f MiB)",
                         (unsigned long long)span, 2.0 * span * sizeof(float) / (1024.0 * 1024.0));
    }
    const uint64_t k = (uint64_t)((double)span * j->sparsity + 0.5);
    for (uint64_t r0 = 0; r0 < n; r0 += span) {
        for (uint64_t i = 0; i < span; i++)
            s[i] = score(w, cf, r0 + i, n_in);
        zero_lowest(w + r0, s, span, k, tmp);
    }
    core_free(j->a, s);
    core_free(j->a, tmp);
    return VKLLM_OK;
}

/* ---- structured patterns: which channels (head groups) every layer keeps ---- */

static const gguf_tensor *layer_tensor(prune_job *j, uint32_t l, const char *role, char *name,
                                       size_t cap) {
    snprintf(name, cap, "blk.%u.%s.weight", l, role);
    const gguf_tensor *t = gguf_find_tensor(j->in, name);
    if (!t || t->n_dims != 2 || !t->data) {
        core_errf(j->err, VKLLM_ERR_BAD_FILE, "prune: %s is missing", name);
        return NULL;
    }
    return t;
}

/* Adds to sc[unit] the scores of the weights of unit u: rows [u*per, (u+1)*per) (rows) or
 * columns of that range (cols) of blk.l.<role>. */
static vkllm_status add_scores(prune_job *j, uint32_t l, const char *role, bool cols, uint32_t per,
                               uint32_t n_units, double *sc) {
    char name[96];
    const gguf_tensor *t = layer_tensor(j, l, role, name, sizeof name);
    if (!t) return VKLLM_ERR_BAD_FILE;
    const uint64_t n_in = t->ne[0], n_out = t->ne[1];
    if ((cols ? n_in : n_out) != (uint64_t)per * n_units)
        return core_errf(j->err, VKLLM_ERR_BAD_FILE,
                         "prune: %s has a shape the model's "
                         "hyperparameters do not give",
                         name);
    float *w = NULL, *cf = NULL;
    vkllm_status st = dequant(j, t, name, &w);
    if (st == VKLLM_OK) st = col_factors(j, name, n_in, &cf);
    if (st == VKLLM_OK)
        for (uint64_t r = 0; r < n_out; r++)
            for (uint64_t c = 0; c < n_in; c++)
                sc[(cols ? c : r) / per] += score(w, cf, r * n_in + c, n_in);
    core_free(j->a, w);
    core_free(j->a, cf);
    return st;
}

static int cmp_u32(const void *a, const void *b) {
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct unit_score {
    double s;
    uint32_t i;
} unit_score;

/* Best score first, ties to the lower index. */
static int cmp_unit(const void *a, const void *b) {
    const unit_score *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The n_keep best-scoring units of n, ascending; ties to the lower index. us: n entries. */
static void best_units(const double *sc, uint32_t n, uint32_t n_keep, unit_score *us,
                       uint32_t *out) {
    for (uint32_t u = 0; u < n; u++)
        us[u] = (unit_score){sc[u], u};
    qsort(us, n, sizeof *us, cmp_unit);
    for (uint32_t k = 0; k < n_keep; k++)
        out[k] = us[k].i;
    qsort(out, n_keep, sizeof *out, cmp_u32);
}

static vkllm_status plan_structured(prune_job *j) {
    const model_config *c = &j->cfg;
    const bool ffn = j->pat == PP_FFN;
    const uint32_t n = ffn ? c->n_ff : c->n_head_kv;
    const uint32_t remove = (uint32_t)((double)n * j->sparsity + 0.5);
    uint32_t keep = n - remove;
    if (ffn) { /* ffn_down's rows must stay whole blocks of the output type */
        const uint32_t blk = quant_traits_of(j->out_type)->block_size;
        keep -= keep % blk;
        if (keep == 0 || remove == 0)
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: removing %.3g of %u FFN "
                             "channels leaves no whole block of %u (the type's block)",
                             (double)j->sparsity, n, blk);
    } else if (keep == 0 || remove == 0) {
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: removing %.3g of %u KV head "
                         "groups removes %s",
                         (double)j->sparsity, n, keep ? "none" : "all");
    }
    const uint32_t hd = c->head_dim, qpg = c->n_head / c->n_head_kv;
    if (!ffn && (keep * qpg * hd) % quant_traits_of(j->out_type)->block_size)
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: %u heads of %u make rows that are "
                         "not whole blocks of %s",
                         keep * qpg, hd, quant_type_name(j->out_type));
    j->n_keep = keep;
    j->keep = core_calloc(j->a, (size_t)c->n_layer * keep, sizeof *j->keep);
    double *sc = core_calloc(j->a, n, sizeof *sc);
    unit_score *us = core_calloc(j->a, n, sizeof *us);
    if (!j->keep || !sc || !us) {
        core_free(j->a, sc);
        core_free(j->a, us);
        return core_errf(j->err, VKLLM_ERR_OUT_OF_MEMORY, "prune: out of memory");
    }
    vkllm_status st = VKLLM_OK;
    for (uint32_t l = 0; l < c->n_layer && st == VKLLM_OK; l++) {
        memset(sc, 0, n * sizeof *sc);
        if (ffn) {
            st = add_scores(j, l, "ffn_gate", false, 1, n, sc);
            if (st == VKLLM_OK) st = add_scores(j, l, "ffn_up", false, 1, n, sc);
            if (st == VKLLM_OK) st = add_scores(j, l, "ffn_down", true, 1, n, sc);
        } else { /* a group: its K and V heads, its query heads, their output columns */
            st = add_scores(j, l, "attn_q", false, qpg * hd, n, sc);
            if (st == VKLLM_OK) st = add_scores(j, l, "attn_k", false, hd, n, sc);
            if (st == VKLLM_OK) st = add_scores(j, l, "attn_v", false, hd, n, sc);
            if (st == VKLLM_OK) st = add_scores(j, l, "attn_output", true, qpg * hd, n, sc);
        }
        if (st == VKLLM_OK) best_units(sc, n, keep, us, j->keep + (size_t)l * keep);
        if (j->d->progress)
            j->d->progress(j->d->progress_user, l + 1, c->n_layer + gguf_tensor_count(j->in));
    }
    core_free(j->a, sc);
    core_free(j->a, us);
    return st;
}

/* Copies the kept units of a matrix: rows (or columns) [u*per, (u+1)*per) of each kept u. */
static float *select_units(prune_job *j, const float *w, uint64_t n_in, uint64_t n_out, bool cols,
                           uint32_t per, const uint32_t *keep, uint64_t *new_in,
                           uint64_t *new_out) {
    const uint64_t k = (uint64_t)j->n_keep * per;
    *new_in = cols ? k : n_in;
    *new_out = cols ? n_out : k;
    float *o = core_alloc(j->a, (size_t)(*new_in * *new_out) * sizeof(float), 64);
    if (!o) return NULL;
    for (uint32_t u = 0; u < j->n_keep; u++)
        for (uint32_t p = 0; p < per; p++) {
            const uint64_t src = (uint64_t)keep[u] * per + p, dst = (uint64_t)u * per + p;
            if (cols)
                for (uint64_t r = 0; r < n_out; r++)
                    o[r * k + dst] = w[r * n_in + src];
            else
                memcpy(o + dst * n_in, w + src * n_in, (size_t)n_in * sizeof(float));
        }
    return o;
}

/* ---- the output file ---- */

typedef struct out_tensor {
    const gguf_tensor *t;
    char name[96];
    char role[32];
    uint32_t layer;
    bool make; /* made here (pruned or reshaped); else copied */
    uint64_t ne[2];
} out_tensor;

typedef struct produce_ctx {
    prune_job *j;
    out_tensor *ts;
    uint64_t n_ts;
    void *buf;
} produce_ctx;

/* The role's structured cut: rows or columns, per unit; false if the pattern leaves it. */
static bool cut_of(const prune_job *j, const char *role, bool *cols, uint32_t *per) {
    const model_config *c = &j->cfg;
    if (j->pat == PP_FFN) {
        *per = 1;
        *cols = strcmp(role, "ffn_down") == 0;
        return *cols || strcmp(role, "ffn_gate") == 0 || strcmp(role, "ffn_up") == 0;
    }
    if (j->pat == PP_HEADS) {
        const uint32_t qpg = c->n_head / c->n_head_kv;
        *cols = strcmp(role, "attn_output") == 0;
        *per = (*cols || strcmp(role, "attn_q") == 0) ? qpg * c->head_dim : c->head_dim;
        return *cols || strcmp(role, "attn_q") == 0 || strcmp(role, "attn_k") == 0 ||
               strcmp(role, "attn_v") == 0;
    }
    return false;
}

static vkllm_status produce(void *user, uint64_t i, uint64_t nbytes, const void **data,
                            core_err *err) {
    produce_ctx *p = user;
    prune_job *j = p->j;
    const out_tensor *o = &p->ts[i];
    (void)err;
    if (j->sgpt) { /* pruned already: the matrix in the output type */
        int role = 0;
        while (role < PRUNE_SGPT_ROLES && strcmp(o->role, prune_sgpt_roles[role]) != 0)
            role++;
        const prune_sgpt_matrix *sm = &j->sg.m[(size_t)o->layer * PRUNE_SGPT_ROLES + role];
        if (role == PRUNE_SGPT_ROLES || sm->nbytes != nbytes || !sm->data)
            return core_errf(j->err, VKLLM_ERR_BAD_FILE,
                             "prune: %s: no pruned matrix of %llu bytes", o->name,
                             (unsigned long long)nbytes);
        j->n_zero += sm->n_zero;
        j->n_weights += sm->n_weights;
        j->bytes_in += o->t->nbytes;
        j->bytes_out += nbytes;
        j->n_matrices++;
        *data = sm->data;
        if (j->d->progress)
            j->d->progress(j->d->progress_user, j->progress_base + i + 1, j->progress_total);
        return VKLLM_OK;
    }
    float *w = NULL, *cf = NULL, *cut = NULL;
    vkllm_status st = dequant(j, o->t, o->name, &w);
    uint64_t n_in = o->t->ne[0], n_out = o->t->ne[1];
    bool cols;
    uint32_t per;
    if (st == VKLLM_OK && cut_of(j, o->role, &cols, &per)) {
        uint64_t ni, no;
        cut = select_units(j, w, n_in, n_out, cols, per, j->keep + (size_t)o->layer * j->n_keep,
                           &ni, &no);
        if (!cut)
            st = core_errf(j->err, VKLLM_ERR_OUT_OF_MEMORY,
                           "prune: %s: out of memory for its kept %s (%.1f MiB)", o->name,
                           cols ? "columns" : "rows",
                           (double)j->n_keep * per * (cols ? n_out : n_in) * sizeof(float) /
                               (1024.0 * 1024.0));
        core_free(j->a, w);
        w = cut;
        n_in = ni;
        n_out = no;
    }
    if (st == VKLLM_OK && (j->pat == PP_UNSTRUCTURED || j->pat == PP_NM)) {
        st = col_factors(j, o->name, n_in, &cf);
        if (st == VKLLM_OK) st = prune_matrix(j, w, n_in, n_out, cf);
    }
    if (st == VKLLM_OK) {
        const quant_traits *tr = quant_traits_of(j->out_type);
        const uint64_t rb = nbytes / n_out;
        for (uint64_t r = 0; r < n_out; r++)
            tr->quant(w + r * n_in, (uint8_t *)p->buf + r * rb, (int64_t)n_in);
        for (uint64_t k = 0; k < n_in * n_out; k++)
            j->n_zero += w[k] == 0.0f;
        j->n_weights += n_in * n_out;
        j->bytes_in += o->t->nbytes;
        j->bytes_out += nbytes;
        j->n_matrices++;
        *data = p->buf;
    }
    core_free(j->a, w);
    core_free(j->a, cf);
    if (j->d->progress)
        j->d->progress(j->d->progress_user, j->progress_base + i + 1, j->progress_total);
    return st;
}

static vkllm_status set_meta(prune_job *j, gguf_writer *w) {
    const model_config *c = &j->cfg;
    static const char *const pats[] = {"unstructured", "N:M", "ffn", "heads"};
    char key[96], pat[16];
    vkllm_status st = VKLLM_OK;
    gguf_writer_remove(w, "general.file_type"); /* no llama.cpp file type says what this is */
    if (j->pat == PP_NM)
        snprintf(pat, sizeof pat, "%u:%u", j->nm_n, j->nm_m);
    else
        snprintf(pat, sizeof pat, "%s", pats[j->pat]);
#define SET(call)                                                                                  \
    if (st == VKLLM_OK) st = (call)
    SET(gguf_writer_set_str(w, ENG_SPARSITY_KEY_PATTERN, pat));
    SET(gguf_writer_set_str(w, ENG_SPARSITY_KEY_METHOD,
                            j->sgpt    ? "sparsegpt"
                            : j->wanda ? "wanda"
                                       : "magnitude"));
    SET(gguf_writer_set_str(w, ENG_SPARSITY_KEY_FORMAT, j->packed ? "packed" : "dense"));
    SET(gguf_writer_set_f32(w, ENG_SPARSITY_KEY_AMOUNT, j->sparsity));
    if (j->pat == PP_FFN) {
        snprintf(key, sizeof key, "%s.feed_forward_length", c->arch);
        SET(gguf_writer_set_u32(w, key, j->n_keep));
    } else if (j->pat ==
               PP_HEADS) { /* the head size stays; say it, as n_embd / n_head no longer is */
        const uint32_t qpg = c->n_head / c->n_head_kv;
        snprintf(key, sizeof key, "%s.attention.head_count", c->arch);
        SET(gguf_writer_set_u32(w, key, j->n_keep * qpg));
        snprintf(key, sizeof key, "%s.attention.head_count_kv", c->arch);
        SET(gguf_writer_set_u32(w, key, j->n_keep));
        snprintf(key, sizeof key, "%s.attention.key_length", c->arch);
        SET(gguf_writer_set_u32(w, key, c->head_dim));
        snprintf(key, sizeof key, "%s.attention.value_length", c->arch);
        SET(gguf_writer_set_u32(w, key, c->head_dim));
        snprintf(key, sizeof key, "%s.rope.dimension_count", c->arch);
        SET(gguf_writer_set_u32(w, key, c->n_rot));
    }
#undef SET
    return st;
}

static void sgpt_progress(void *user, uint32_t done, uint32_t n_layer) {
    const prune_job *j = user;
    (void)n_layer;
    if (j->d->progress) j->d->progress(j->d->progress_user, done, j->progress_total);
}

/* SparseGPT's calibration and pruning, into j->sg (before the file is written). */
static vkllm_status run_sgpt(prune_job *j) {
    const vkllm_prune_desc *d = j->d;
    const prune_sgpt_desc sd = {
        .model_path = d->in_path,
        .text = d->calib_text,
        .text_len = d->calib_text_len,
        .n_ctx = d->calib_ctx,
        .n_chunks = d->calib_chunks,
        .n_threads = d->n_threads,
        .out_type = j->out_type,
        .algo = {.keep_n = j->pat == PP_NM ? j->nm_n : 0,
                 .group_m = j->pat == PP_NM ? j->nm_m : 0,
                 .sparsity = j->sparsity,
                 .damp = d->damp,
                 .blocksize = d->blocksize},
        .dense_inputs = d->dense_inputs,
        .a = j->a,
        .progress = sgpt_progress,
        .progress_user = j,
    };
    return prune_sgpt_run(&sd, &j->sg, j->err);
}

/* Options into the job; errors name what is wrong. */
static vkllm_status parse_desc(prune_job *j, const vkllm_prune_desc *d) {
    const char *method = d->method ? d->method : "magnitude";
    if (strcmp(method, "magnitude") == 0)
        j->wanda = false;
    else if (strcmp(method, "wanda") == 0)
        j->wanda = true;
    else if (strcmp(method, "sparsegpt") == 0)
        j->sgpt = true;
    else
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: unknown method '%s' (magnitude, wanda, sparsegpt)", method);
    const char *pat = d->pattern ? d->pattern : "2:4";
    unsigned nn, mm;
    char tail;
    if (strcmp(pat, "unstructured") == 0)
        j->pat = PP_UNSTRUCTURED;
    else if (strcmp(pat, "ffn") == 0)
        j->pat = PP_FFN;
    else if (strcmp(pat, "heads") == 0)
        j->pat = PP_HEADS;
    else if (sscanf(pat, "%u:%u%c", &nn, &mm, &tail) == 2 && nn >= 1 && nn < mm && mm <= 8 &&
             mm % 2 == 0 && nn * 2 == mm) {
        j->pat = PP_NM, j->nm_n = nn, j->nm_m = mm;
    } else {
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: unknown pattern '%s' "
                         "(unstructured, 2:4, 4:8, ffn, heads)",
                         pat);
    }
    const float s = d->sparsity;
    if (j->pat == PP_NM) {
        if (s != 0.0f && s != 0.5f)
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: %s removes half of every "
                             "group: a sparsity of %g does not apply",
                             pat, (double)s);
        j->sparsity = 0.5f;
    } else {
        if (s != 0.0f && !(s > 0.0f && s < 1.0f))
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: sparsity %g is outside "
                             "(0, 1)",
                             (double)s);
        j->sparsity = s != 0.0f ? s : j->pat == PP_UNSTRUCTURED ? 0.5f : 0.25f;
    }
    const char *fmt = d->format                           ? d->format
                      : (j->pat == PP_NM && j->nm_m == 4) ? "packed"
                                                          : "dense";
    if (strcmp(fmt, "packed") == 0) {
        if (!(j->pat == PP_NM && j->nm_m == 4))
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: the packed format holds "
                             "2:4 patterns only (give --format dense)");
        j->packed = true;
    } else if (strcmp(fmt, "dense") != 0) {
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: unknown format '%s' (packed, "
                         "dense)",
                         fmt);
    }
    const char *type = d->type ? d->type : j->packed ? "s24_q4" : "q8_0";
    const quant_traits *tr = NULL;
    if (!quant_type_by_name(type, &j->out_type) || !(tr = quant_traits_of(j->out_type)) ||
        !tr->quant || !tr->supported || j->out_type == QT_Q8_1 || j->out_type == QT_Q8_K)
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: '%s' is not a type pruned "
                         "matrices can be written in",
                         type);
    if (j->packed != quant_is_s24(j->out_type))
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: the %s format takes %s, not "
                         "'%s'",
                         j->packed ? "packed" : "dense",
                         j->packed ? "s24_q4 or s24_q8" : "a dense type", type);
    if (j->wanda && !d->imatrix_path)
        return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                         "prune: wanda needs an importance "
                         "matrix (vkllm imatrix, or --calib TEXT on the command line)");
    if (j->sgpt) {
        if (j->pat != PP_UNSTRUCTURED && j->pat != PP_NM)
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: sparsegpt prunes the unstructured, 2:4 and 4:8 patterns; "
                             "whole channels and heads (%s) are magnitude's or wanda's",
                             pat);
        if (d->imatrix_path || !d->calib_text)
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: sparsegpt needs the calibration text itself (--calib "
                             "TEXT): %s",
                             d->imatrix_path ? "an importance matrix holds only the diagonal of "
                                               "the Hessians it needs"
                                             : "none was given");
        if (!(d->damp >= 0.0f) || !isfinite(d->damp))
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: dampening %g is not a number >= 0", (double)d->damp);
        const uint32_t bs = d->blocksize ? d->blocksize : SGPT_BLOCK_DEFAULT;
        if (j->pat == PP_NM && bs % j->nm_m)
            return core_errf(j->err, VKLLM_ERR_INVALID_ARG,
                             "prune: the block size %u is not a multiple of %u (the pattern's "
                             "group)",
                             bs, j->nm_m);
    }
    return VKLLM_OK;
}

vkllm_status vkllm_prune(const vkllm_prune_desc *user_desc, char *errbuf, size_t err_cap) {
    vkllm_prune_desc dl;
    const vkllm_prune_desc *d = API_IN(vkllm_prune_desc, user_desc, &dl);
    core_err e = {{0}};
    prune_job j = {.d = d, .a = d->allocator, .err = &e};
    gguf_writer *w = NULL;
    out_tensor *ts = NULL;
    produce_ctx pc = {0};
    vkllm_status st = VKLLM_OK;
    if (!user_desc || !d->in_path || !d->out_path) {
        st = core_errf(&e, VKLLM_ERR_INVALID_ARG, "prune: an input and an output path are needed");
        goto done;
    }
    if ((st = parse_desc(&j, d)) != VKLLM_OK) goto done;
    const gguf_open_desc od = {.allocator = j.a};
    if ((st = gguf_open(d->in_path, &od, &j.in, &e)) != VKLLM_OK) goto done;
    if ((st = model_config_load(j.in, 0, &j.cfg, &e)) != VKLLM_OK) goto done;
    if (j.wanda && (st = imatrix_load(d->imatrix_path, j.a, &j.im, &e)) != VKLLM_OK) goto done;
    if ((j.pat == PP_FFN || j.pat == PP_HEADS) && (st = plan_structured(&j)) != VKLLM_OK) goto done;
    const uint64_t nt = gguf_tensor_count(j.in);
    j.progress_base = j.keep || j.sgpt ? j.cfg.n_layer : 0;
    j.progress_total = j.progress_base + nt;
    ts = core_calloc(j.a, nt ? nt : 1, sizeof *ts);
    w = gguf_writer_create(j.a);
    if (!ts || !w) {
        st = core_errf(&e, VKLLM_ERR_OUT_OF_MEMORY, "prune: out of memory");
        goto done;
    }
    if ((st = gguf_writer_copy_kvs(w, j.in)) != VKLLM_OK || (st = set_meta(&j, w)) != VKLLM_OK) {
        core_errf(&e, st, "prune: cannot build the output's metadata: %s", vkllm_status_str(st));
        goto done;
    }
    uint64_t max_bytes = 0, n_make = 0;
    for (uint64_t i = 0; i < nt; i++) {
        out_tensor *o = &ts[i];
        o->t = gguf_tensor_at(j.in, i);
        snprintf(o->name, sizeof o->name, "%.*s", (int)o->t->name.len, o->t->name.ptr);
        bool cols;
        uint32_t per;
        o->make = layer_matrix(o->t, &o->layer, o->role) &&
                  (j.pat == PP_UNSTRUCTURED || j.pat == PP_NM || cut_of(&j, o->role, &cols, &per));
        o->ne[0] = o->t->ne[0];
        o->ne[1] = o->t->ne[1];
        if (!o->make) {
            st = gguf_writer_add_tensor(w, o->name, o->t->type, o->t->n_dims, o->t->ne, o->t->data,
                                        o->t->nbytes, false);
        } else {
            if (o->layer >= j.cfg.n_layer) {
                st = core_errf(&e, VKLLM_ERR_BAD_FILE, "prune: %s: no such layer", o->name);
                goto done;
            }
            if (cut_of(&j, o->role, &cols, &per)) o->ne[cols ? 0 : 1] = (uint64_t)j.n_keep * per;
            uint64_t rb, nb;
            if (!quant_row_bytes(j.out_type, o->ne[0], &rb) || !core_mul_ok(rb, o->ne[1], &nb)) {
                st = core_errf(&e, VKLLM_ERR_INVALID_ARG,
                               "prune: %s has rows of %llu, not whole "
                               "blocks of %s",
                               o->name, (unsigned long long)o->ne[0], quant_type_name(j.out_type));
                goto done;
            }
            max_bytes = nb > max_bytes ? nb : max_bytes;
            n_make++;
            st = gguf_writer_add_tensor(w, o->name, j.out_type, 2, o->ne, NULL, nb, false);
        }
        if (st != VKLLM_OK) {
            if (!e.msg[0]) core_errf(&e, st, "prune: %s", o->name);
            goto done;
        }
    }
    if (n_make == 0) {
        st = core_errf(&e, VKLLM_ERR_INVALID_ARG, "prune: %s has no layer matrices to prune",
                       d->in_path);
        goto done;
    }
    if (j.sgpt && (st = run_sgpt(&j)) != VKLLM_OK) goto done;
    pc = (produce_ctx){.j = &j, .ts = ts, .n_ts = nt, .buf = core_alloc(j.a, max_bytes, 64)};
    if (!pc.buf) {
        st = core_errf(&e, VKLLM_ERR_OUT_OF_MEMORY,
                       "prune: out of memory for the output buffer (%.1f MiB)",
                       (double)max_bytes / (1024.0 * 1024.0));
        goto done;
    }
    st = gguf_writer_write_with(w, d->out_path, produce, &pc, &e);
    if (st == VKLLM_OK && d->result) {
        vkllm_prune_result r = {.n_matrices = j.n_matrices,
                                .n_weights = j.n_weights,
                                .n_zero = j.n_zero,
                                .bytes_in = j.bytes_in,
                                .bytes_out = j.bytes_out,
                                .calib_chunks = j.sg.n_chunks,
                                .calib_ctx = j.sg.n_ctx,
                                .calib_seconds = j.sg.seconds_passes,
                                .solve_seconds = j.sg.seconds_prune};
        API_OUT(vkllm_prune_result, d->result, &r);
    }
done:
    if (st != VKLLM_OK && errbuf && err_cap) snprintf(errbuf, err_cap, "%s", e.msg);
    core_free(j.a, pc.buf);
    core_free(j.a, ts);
    core_free(j.a, j.keep);
    prune_sgpt_result_free(&j.sg, j.a);
    gguf_writer_free(w);
    if (j.im) imatrix_free(j.im);
    if (j.in) gguf_close(j.in);
    return st;
}
