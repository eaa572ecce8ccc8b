/* vkllm_quantize: a GGUF model requantized as llama-quantize (llama.cpp's src/llama-quant.cpp)
 * does it, so that the output file is byte-identical to llama-quantize's for the same input,
 * preset and importance matrix.
 *
 * What llama-quantize decides, and this file decides the same way:
 *  - tensor order: by layer number ("blk.N."; others first), then by name;
 *  - which tensors are quantized (2-D and up, names ending in "weight", no norms, ...), and to
 *    which type: the preset's type, moved up for the output head (and a tied token embedding),
 *    for attn_v / ffn_down in the "use more bits" layers of the _M presets, and moved to a
 *    32-element format (or F16) where a row is not a multiple of the type's block;
 *  - metadata: every input key in order, then general.quantization_version and
 *    general.file_type moved last, split keys dropped, then the quantize.imatrix.* keys;
 *  - alignment 32, each tensor padded to it.
 * Rows are quantized by src/core/quantize.c, which is byte-identical to ggml's quantizers.
 * Only the rules of the presets vkllm offers are here (no IQ, Q2_K, Q3_K, MoE or tensor-type
 * overrides). The file is written under a temporary name next to the output and renamed when
 * complete; on any failure nothing is left behind.
 */
#include "vkllm.h"

#include "api_abi.h"

#include "core/common.h"
#include "core/quant.h"
#include "core/quantize.h"
#include "loader/gguf.h"
#include "loader/imatrix.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUANT_VERSION 2    /* GGML_QNT_VERSION, general.quantization_version */
#define NAME_MAX_LEN 64    /* GGML_MAX_NAME */
#define CHUNK_VALUES 16384 /* floats a worker dequantizes at a time */

/* llama_ftype values (general.file_type) of the presets */
enum {
    FT_F32 = 0,
    FT_F16 = 1,
    FT_Q4_0 = 2,
    FT_Q4_1 = 3,
    FT_Q8_0 = 7,
    FT_Q5_0 = 8,
    FT_Q5_1 = 9,
    FT_Q4_K_S = 14,
    FT_Q4_K_M = 15,
    FT_Q5_K_S = 16,
    FT_Q5_K_M = 17,
    FT_Q6_K = 18,
    FT_BF16 = 32,
};

static const struct {
    const char *name;
    uint32_t ftype, type;
} k_presets[] = {
    {"q4_0", FT_Q4_0, QT_Q4_0},     {"q4_1", FT_Q4_1, QT_Q4_1},   {"q5_0", FT_Q5_0, QT_Q5_0},
    {"q5_1", FT_Q5_1, QT_Q5_1},     {"q8_0", FT_Q8_0, QT_Q8_0},   {"q4_k_s", FT_Q4_K_S, QT_Q4_K},
    {"q4_k_m", FT_Q4_K_M, QT_Q4_K}, {"q4_k", FT_Q4_K_M, QT_Q4_K}, {"q5_k_s", FT_Q5_K_S, QT_Q5_K},
    {"q5_k_m", FT_Q5_K_M, QT_Q5_K}, {"q5_k", FT_Q5_K_M, QT_Q5_K}, {"q6_k", FT_Q6_K, QT_Q6_K},
    {"f16", FT_F16, QT_F16},        {"bf16", FT_BF16, QT_BF16},   {"f32", FT_F32, QT_F32},
};
#define N_PRESETS (sizeof k_presets / sizeof k_presets[0])

static bool is_quantized(uint32_t t) {
    return t != QT_F32 && t != QT_F16 && t != QT_BF16;
}

/* ---- the per-tensor rules ------------------------------------------------------------------ */

typedef enum cat {
    CAT_OTHER,
    CAT_OUTPUT,
    CAT_TOKEN_EMBD,
    CAT_ATTN_V, /* attn_v, attn_qkv, attn_kv_b */
    CAT_FFN_DOWN,
    CAT_FFN_GATE,
    CAT_FFN_UP,
} cat;

static cat category_of(const char *n) {
    if (strcmp(n, "output.weight") == 0) return CAT_OUTPUT;
    if (strcmp(n, "token_embd.weight") == 0 || strcmp(n, "per_layer_token_embd.weight") == 0)
        return CAT_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight") || strstr(n, "attn_kv_b.weight") || strstr(n, "attn_v.weight"))
        return CAT_ATTN_V;
    /* attn_k, attn_q, attn_output have no rule for these presets */
    if (strstr(n, "attn_k.weight") || strstr(n, "attn_q.weight") || strstr(n, "attn_output.weight"))
        return CAT_OTHER;
    if (strstr(n, "ffn_up")) return CAT_FFN_UP;
    if (strstr(n, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(n, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* Tensors llama-quantize leaves as they are, whatever the preset. */
static bool allows_quantization(const char *n, uint32_t n_dims) {
    static const char *const never[] = {
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    };
    const size_t len = strlen(n);
    /* llama.cpp tests name.rfind("weight") == size - 6, which a 5-byte name also passes */
    if (n_dims < 2 || (len != 5 && (len < 6 || strcmp(n + len - 6, "weight") != 0))) return false;
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (strstr(n, never[i])) return false;
    return strcmp(n, "position_embd.weight") != 0 && strcmp(n, "token_types.weight") != 0;
}

typedef struct rules {
    uint32_t ftype, default_type;
    bool tied, falcon, is_70b, has_imatrix;
    int n_attn_v, i_attn_v, n_layer, i_ffn_down;
    uint32_t n_fallback;
} rules;

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between. */
static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The preset's type, moved for the tensor's role (llama_tensor_get_type_impl). */
static uint32_t type_for_role(rules *r, uint32_t t, cat c, uint64_t nx) {
    const uint32_t ft = r->ftype;
    if (c == CAT_OUTPUT || (r->tied && c == CAT_TOKEN_EMBD)) {
        if (r->falcon || nx % quant_traits_of(t)->block_size != 0) return QT_Q8_0;
        return t != QT_Q8_0 ? QT_Q6_K : t;
    }
    if (c == CAT_TOKEN_EMBD) return t;
    if (c == CAT_ATTN_V) {
        if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(r->i_attn_v, r->n_attn_v))
            t = QT_Q6_K;
        else if (ft == FT_Q4_K_S && r->i_attn_v < 4)
            t = QT_Q5_K;
        /* 70B: attn_v is 8x smaller than attn_q, so more bits cost little */
        if (r->is_70b && (t == QT_Q3_K || t == QT_Q4_K)) t = QT_Q5_K;
        r->i_attn_v++;
        return t;
    }
    if (c == CAT_FFN_DOWN) {
        const int i = r->i_ffn_down++, n = r->n_layer;
        if (ft == FT_Q4_K_M) {
            if (r->falcon)
                t = i < n / 16 ? QT_Q6_K : use_more_bits(i, n) ? QT_Q5_K : QT_Q4_K;
            else if (use_more_bits(i, n))
                t = QT_Q6_K;
        } else if (ft == FT_Q5_K_M && use_more_bits(i, n)) {
            t = QT_Q6_K;
        } else if (ft == FT_Q4_K_S && !r->falcon && i < n / 8) {
            t = QT_Q5_K;
        } else if ((ft == FT_Q4_0 || ft == FT_Q5_0) && r->has_imatrix && i < n / 8) {
            /* llama.cpp guards the first ffn_down layers of Q4_0/Q5_0, with an imatrix only */
            t = ft == FT_Q4_0 ? QT_Q4_1 : QT_Q5_1;
        }
    }
    return t;
}

/* A row length the type cannot split into blocks: a smaller block (tensor_type_fallback). */
static uint32_t fallback_type(rules *r, uint32_t t, uint64_t nx) {
    if (nx % quant_traits_of(t)->block_size == 0) return t;
    r->n_fallback++;
    uint32_t f = t == QT_Q4_K ? QT_Q5_0 : t == QT_Q5_K ? QT_Q5_1 : t == QT_Q6_K ? QT_Q8_0 : t;
    return nx % quant_traits_of(f)->block_size == 0 ? f : QT_F16;
}

/* ---- the plan ------------------------------------------------------------------------------- */

typedef struct plan {
    const gguf_tensor *t;
    char name[NAME_MAX_LEN];
    uint32_t n_dims;   /* ggml_n_dims: up to the last dimension above 1 */
    int layer;         /* "blk.N.", or -1 */
    uint32_t type;     /* output type */
    const float *imat; /* importance weights, or NULL */
} plan;

static int plan_cmp(const void *a, const void *b) {
    const plan *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

typedef struct qctx {
    const vkllm_quantize_desc *d;
    const vkllm_allocator *alloc;
    core_err *err;
    gguf_file *in;
    imatrix *im;
    float **im_w; /* per imatrix entry: its importance weights */
    plan *plans;
    uint64_t n;
    rules r;
    uint8_t *out; /* the tensor being written */
    uint32_t n_threads;
    uint64_t n_elements, bytes_in, bytes_out;
} qctx;

static vkllm_status make_plans(qctx *q) {
    const uint64_t n = gguf_tensor_count(q->in);
    if (n == 0)
        return core_errf(q->err, VKLLM_ERR_INVALID_ARG,
                         "%s has no tensors (a vocabulary-only file?)", q->d->in_path);
    q->plans = core_calloc(q->alloc, (size_t)n, sizeof *q->plans);
    if (!q->plans) return core_errf(q->err, VKLLM_ERR_OUT_OF_MEMORY, "out of memory");
    q->n = n;
    for (uint64_t i = 0; i < n; i++) {
        plan *p = &q->plans[i];
        p->t = gguf_tensor_at(q->in, i);
        if (p->t->name.len >= NAME_MAX_LEN || memchr(p->t->name.ptr, 0, p->t->name.len))
            return core_errf(q->err, VKLLM_ERR_BAD_FILE, "tensor %llu: name '%.*s' is not valid",
                             (unsigned long long)i, (int)p->t->name.len, p->t->name.ptr);
        memcpy(p->name, p->t->name.ptr, p->t->name.len);
        p->layer = -1;
        if (sscanf(p->name, "blk.%d.", &p->layer) != 1) p->layer = -1;
        p->n_dims = 1;
        for (uint32_t d = 1; d < GGUF_MAX_DIMS; d++)
            if (p->t->ne[d] > 1) p->n_dims = d + 1;
        if (p->t->ne[3] > 1)
            return core_errf(q->err, VKLLM_ERR_UNSUPPORTED, "%s: 4-D tensors are not supported",
                             p->name);
        if (category_of(p->name) == CAT_ATTN_V) q->r.n_attn_v++;
        if (category_of(p->name) == CAT_OUTPUT) q->r.tied = false;
        q->n_elements += p->t->ne[0] * p->t->ne[1] * p->t->ne[2];
        q->bytes_in += p->t->nbytes;
    }
    qsort(q->plans, (size_t)n, sizeof *q->plans, plan_cmp);
    for (uint64_t i = 0; i < n; i++) {
        plan *p = &q->plans[i];
        p->type = p->t->type;
        if (!allows_quantization(p->name, p->n_dims)) continue;
        uint32_t t = q->r.default_type;
        if (is_quantized(t)) {
            t = type_for_role(&q->r, t, category_of(p->name), p->t->ne[0]);
            t = fallback_type(&q->r, t, p->t->ne[0]);
        }
        p->type = t;
    }
    return VKLLM_OK;
}

/* Importance weights: every entry's, checked finite as llama-quantize does; a weight whose entry
 * has another size is an error (token embeddings excepted: they are quantized without). */
static vkllm_status attach_imatrix(qctx *q) {
    q->im_w = core_calloc(q->alloc, (size_t)q->im->n_entries + 1, sizeof *q->im_w);
    if (!q->im_w) return core_errf(q->err, VKLLM_ERR_OUT_OF_MEMORY, "out of memory");
    for (uint64_t i = 0; i < q->im->n_entries; i++) {
        const imatrix_entry *e = &q->im->entries[i];
        if (!(q->im_w[i] = core_alloc(q->alloc, (size_t)e->n_values * sizeof(float) + 1, 0)))
            return core_errf(q->err, VKLLM_ERR_OUT_OF_MEMORY, "out of memory");
        imatrix_weights(q->im, e, q->im_w[i]);
        for (uint64_t j = 0; j < e->n_values; j++)
            if (!isfinite(q->im_w[i][j]))
                return core_errf(q->err, VKLLM_ERR_BAD_FILE,
                                 "%s: %s: importance weight %llu is not finite", q->d->imatrix_path,
                                 e->name, (unsigned long long)j);
    }
    for (uint64_t i = 0; i < q->n; i++) {
        plan *p = &q->plans[i];
        if (p->type == p->t->type) continue;
        const imatrix_entry *e = imatrix_find(q->im, p->name);
        if (!e) continue;
        if (e->n_values == p->t->ne[0] * p->t->ne[2]) {
            p->imat = q->im_w[e - q->im->entries];
        } else if (category_of(p->name) != CAT_TOKEN_EMBD) {
            return core_errf(q->err, VKLLM_ERR_INVALID_ARG,
                             "%s: the importance matrix has %llu values for %s, which needs %llu",
                             q->d->imatrix_path, (unsigned long long)e->n_values, p->name,
                             (unsigned long long)(p->t->ne[0] * p->t->ne[2]));
        }
    }
    return VKLLM_OK;
}

/* Every conversion can be done: checked before anything is written. */
static vkllm_status check_conversions(qctx *q) {
    for (uint64_t i = 0; i < q->n; i++) {
        const plan *p = &q->plans[i];
        if (p->type == p->t->type) continue;
        if (is_quantized(p->t->type) && !q->d->allow_requantize)
            return core_errf(q->err, VKLLM_ERR_INVALID_ARG,
                             "%s is %s: requantizing a quantized model is disabled (allow it "
                             "with --allow-requantize; quality is lower than from F32/F16)",
                             p->name, quant_type_name(p->t->type));
        const quant_traits *tr = quant_traits_of(p->t->type);
        if (is_quantized(p->t->type) && (!tr || !tr->dequant))
            return core_errf(q->err, VKLLM_ERR_UNSUPPORTED, "%s: cannot dequantize %s", p->name,
                             quant_type_name(p->t->type));
        if (!quantize_supported(p->type))
            return core_errf(q->err, VKLLM_ERR_UNSUPPORTED, "%s: cannot quantize to %s", p->name,
                             quant_type_name(p->type));
    }
    return VKLLM_OK;
}

/* ---- metadata ---------------------------------------------------------------------------------
 */

/* A string llama-quantize passes through a 128-byte override: cut to 127 bytes. */
static vkllm_status set_str127(gguf_writer *w, const char *key, const char *v) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v);
    gguf_writer_remove(w, key);
    return gguf_writer_set_str(w, key, buf);
}

static vkllm_status set_u32_last(gguf_writer *w, const char *key, uint32_t v) {
    gguf_writer_remove(w, key);
    return gguf_writer_set_u32(w, key, v);
}

static vkllm_status build_header(qctx *q, gguf_writer *w) {
    vkllm_status st = gguf_writer_copy_kvs(w, q->in);
    if (st == VKLLM_OK) st = set_u32_last(w, "general.quantization_version", QUANT_VERSION);
    if (st == VKLLM_OK) st = set_u32_last(w, "general.file_type", q->r.ftype);
    gguf_writer_remove(w, "split.no");
    gguf_writer_remove(w, "split.count");
    gguf_writer_remove(w, "split.tensors.count");
    if (st == VKLLM_OK && q->im) {
        st = set_str127(w, "quantize.imatrix.file", q->d->imatrix_path);
        if (st == VKLLM_OK && q->im->n_datasets)
            st = set_str127(w, "quantize.imatrix.dataset", q->im->datasets[0]);
        if (st == VKLLM_OK)
            st = set_u32_last(w, "quantize.imatrix.entries_count", (uint32_t)q->im->n_entries);
        if (st == VKLLM_OK && q->im->chunk_count > 0 && q->im->chunk_count <= INT32_MAX)
            st = set_u32_last(w, "quantize.imatrix.chunks_count", q->im->chunk_count);
    }
    for (uint64_t i = 0; st == VKLLM_OK && i < q->n; i++) {
        const plan *p = &q->plans[i];
        const bool copy = p->type == p->t->type;
        uint64_t row, nbytes = p->t->nbytes;
        if (!copy) {
            quant_row_bytes(p->type, p->t->ne[0], &row);
            nbytes = row * p->t->ne[1] * p->t->ne[2];
        }
        st = gguf_writer_add_tensor(w, p->name, p->type, p->n_dims, p->t->ne,
                                    copy ? p->t->data : NULL, nbytes, false);
    }
    if (st != VKLLM_OK)
        return core_errf(q->err, st, "quantize: cannot build the output's header: %s",
                         vkllm_status_str(st));
    return VKLLM_OK;
}

/* ---- quantizing a tensor ------------------------------------------------------------------- */

typedef struct job {
    const plan *p;
    const uint8_t *src;
    uint8_t *dst;
    uint64_t row_src, row_dst;
    int64_t r0, r1;
    float *scratch; /* CHUNK_VALUES floats, or one row if longer */
} job;

static void to_f32(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    if (type == QT_F16)
        for (int64_t j = 0; j < n; j++)
            dst[j] = core_fp16_to_fp32(((const uint16_t *)src)[j]);
    else if (type == QT_BF16)
        for (int64_t j = 0; j < n; j++)
            dst[j] = core_bf16_to_fp32(((const uint16_t *)src)[j]);
    else
        quant_traits_of(type)->dequant(src, dst, n);
}

static void *run_job(void *arg) {
    job *j = arg;
    const plan *p = j->p;
    const int64_t npr = (int64_t)p->t->ne[0], per_expert = (int64_t)p->t->ne[1];
    int64_t chunk = CHUNK_VALUES / npr > 0 ? CHUNK_VALUES / npr : 1;
    for (int64_t r = j->r0; r < j->r1;) {
        /* a chunk never crosses an expert: each has its own slice of importance weights */
        int64_t nr = j->r1 - r < chunk ? j->r1 - r : chunk;
        if (per_expert - r % per_expert < nr) nr = per_expert - r % per_expert;
        const uint8_t *s = j->src + (size_t)r * j->row_src;
        const float *x = (const float *)s;
        if (p->t->type != QT_F32) {
            to_f32(p->t->type, s, j->scratch, nr * npr);
            x = j->scratch;
        }
        const float *qw = p->imat ? p->imat + (r / per_expert) * npr : NULL;
        quantize_rows(p->type, x, j->dst + (size_t)r * j->row_dst, nr, npr, qw);
        r += nr;
    }
    return NULL;
}

static vkllm_status quantize_tensor(qctx *q, const plan *p, uint64_t nbytes) {
    const int64_t rows = (int64_t)(p->t->ne[1] * p->t->ne[2]), npr = (int64_t)p->t->ne[0];
    uint32_t nth = q->n_threads;
    if ((int64_t)nth > rows) nth = (uint32_t)rows;
    if (nth == 0) nth = 1;
    const size_t scratch = (size_t)(npr > CHUNK_VALUES ? npr : CHUNK_VALUES);
    job *jobs = core_calloc(q->alloc, nth, sizeof *jobs);
    pthread_t *tids = core_calloc(q->alloc, nth, sizeof *tids);
    float *buf = core_alloc(q->alloc, (size_t)nth * scratch * sizeof(float), 64);
    vkllm_status st = jobs && tids && buf ? VKLLM_OK : VKLLM_ERR_OUT_OF_MEMORY;
    uint32_t started = 0;
    for (uint32_t k = 0; st == VKLLM_OK && k < nth; k++) {
        job *j = &jobs[k];
        j->p = p;
        j->src = p->t->data;
        j->dst = q->out;
        quant_row_bytes(p->t->type, (uint64_t)npr, &j->row_src);
        j->row_dst = nbytes / (uint64_t)rows;
        j->r0 = rows * k / nth;
        j->r1 = rows * (k + 1) / nth;
        j->scratch = buf + (size_t)k * scratch;
        if (k == 0) continue; /* the calling thread takes the first share */
        if (pthread_create(&tids[k], NULL, run_job, j) != 0) break;
        started = k;
    }
    if (st == VKLLM_OK) {
        /* shares whose thread did not start run here */
        run_job(&jobs[0]);
        for (uint32_t k = started + 1; k < nth; k++)
            run_job(&jobs[k]);
        for (uint32_t k = 1; k <= started; k++)
            pthread_join(tids[k], NULL);
    }
    core_free(q->alloc, buf);
    core_free(q->alloc, tids);
    core_free(q->alloc, jobs);
    if (st != VKLLM_OK)
        return core_errf(q->err, st,
                         "quantize: %s: out of memory for %u threads' scratch (%.1f MiB)", p->name,
                         nth, (double)nth * scratch * sizeof(float) / (1024.0 * 1024.0));
    return VKLLM_OK;
}

static vkllm_status produce(void *user, uint64_t i, uint64_t nbytes, const void **data,
                            core_err *err) {
    qctx *q = user;
    const plan *p = &q->plans[i];
    (void)err;
    core_free(q->alloc, q->out);
    if (nbytes > SIZE_MAX || !(q->out = core_alloc(q->alloc, (size_t)nbytes, 64)))
        return core_errf(q->err, VKLLM_ERR_OUT_OF_MEMORY,
                         "quantize: %s: out of memory for its output (%.1f MiB)", p->name,
                         (double)nbytes / (1024.0 * 1024.0));
    vkllm_status st = quantize_tensor(q, p, nbytes);
    if (st != VKLLM_OK) return st;
    if (q->d->progress) q->d->progress(q->d->progress_user, i + 1, q->n);
    *data = q->out;
    return VKLLM_OK;
}

/* ---- the whole run --------------------------------------------------------------------------- */

static vkllm_status check_model(qctx *q) {
    gguf_str arch;
    char key[96];
    if (!gguf_get_str(q->in, "general.architecture", &arch) || arch.len == 0 || arch.len > 64)
        return core_errf(q->err, VKLLM_ERR_BAD_FILE, "%s: no general.architecture", q->d->in_path);
    uint32_t n_layer = 0, n_expert = 0, n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
    if (!gguf_get_u32(q->in, key, &n_layer))
        return core_errf(q->err, VKLLM_ERR_BAD_FILE, "%s: no %s", q->d->in_path, key);
    snprintf(key, sizeof key, "%.*s.expert_count", (int)arch.len, arch.ptr);
    if (gguf_get_u32(q->in, key, &n_expert) && n_expert > 1)
        return core_errf(q->err, VKLLM_ERR_UNSUPPORTED,
                         "%s: mixture-of-experts models are not supported", q->d->in_path);
    const bool llama = arch.len == 5 && memcmp(arch.ptr, "llama", 5) == 0;
    q->r.falcon = arch.len == 6 && memcmp(arch.ptr, "falcon", 6) == 0;
    snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.len, arch.ptr);
    gguf_get_u32(q->in, key, &n_head);
    snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)arch.len, arch.ptr);
    if (!gguf_get_u32(q->in, key, &n_head_kv)) n_head_kv = n_head;
    q->r.is_70b = llama && n_layer == 80 && n_head != n_head_kv;
    q->r.n_layer = (int)n_layer;
    return VKLLM_OK;
}

static vkllm_status run(qctx *q, const char *path) {
    vkllm_status st = check_model(q);
    if (st == VKLLM_OK) st = make_plans(q);
    if (st == VKLLM_OK && q->im) st = attach_imatrix(q);
    if (st == VKLLM_OK) st = check_conversions(q);
    gguf_writer *w = NULL;
    if (st == VKLLM_OK && !(w = gguf_writer_create(q->alloc)))
        st = core_errf(q->err, VKLLM_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == VKLLM_OK) st = build_header(q, w);
    if (st == VKLLM_OK) st = gguf_writer_write_with(w, path, produce, q, q->err);
    for (uint64_t i = 0; st == VKLLM_OK && i < q->n; i++) {
        uint64_t row;
        quant_row_bytes(q->plans[i].type, q->plans[i].t->ne[0], &row);
        q->bytes_out += row * q->plans[i].t->ne[1] * q->plans[i].t->ne[2];
    }
    gguf_writer_free(w);
    return st;
}

static vkllm_status check_desc(const vkllm_quantize_desc *d, uint32_t *ftype, uint32_t *type,
                               core_err *e) {
    if (!d || !d->in_path || !d->out_path || !d->type)
        return core_errf(e, VKLLM_ERR_INVALID_ARG,
                         "quantize: an input, an output and a type are required");
    for (size_t i = 0; i < N_PRESETS; i++) {
        const char *a = k_presets[i].name, *b = d->type;
        while (*a && tolower((unsigned char)*b) == *a)
            a++, b++;
        if (*a == 0 && *b == 0) {
            *ftype = k_presets[i].ftype;
            *type = k_presets[i].type;
            return VKLLM_OK;
        }
    }
    return core_errf(e, VKLLM_ERR_INVALID_ARG,
                     "unknown quantization type '%s' (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K_S, "
                     "Q4_K_M = Q4_K, Q5_K_S, Q5_K_M = Q5_K, Q6_K, F16, BF16, F32)",
                     d->type);
}

vkllm_status vkllm_quantize(const vkllm_quantize_desc *user_desc, char *err, size_t err_cap) {
    vkllm_quantize_desc local;
    const vkllm_quantize_desc *d =
        user_desc ? API_IN(vkllm_quantize_desc, user_desc, &local) : NULL;
    core_err e = {{0}};
    qctx q = {.d = d, .err = &e, .r = {.tied = true}};
    vkllm_status st = check_desc(d, &q.r.ftype, &q.r.default_type, &e);
    if (st == VKLLM_OK) {
        q.alloc = d->allocator;
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        q.n_threads = d->n_threads ? d->n_threads : nc > 0 ? (uint32_t)nc : 1;
        if (q.n_threads > 1024) q.n_threads = 1024;
        gguf_open_desc od = {.allocator = d->allocator};
        st = gguf_open(d->in_path, &od, &q.in, &e);
        if (st != VKLLM_OK) {
            char msg[CORE_ERR_LEN];
            snprintf(msg, sizeof msg, "%s", e.msg);
            core_errf(&e, st, "%s: %s", d->in_path, msg);
        }
    }
    if (st == VKLLM_OK && d->imatrix_path) {
        st = imatrix_load(d->imatrix_path, d->allocator, &q.im, &e);
        if (st == VKLLM_OK && !q.im->legacy && !q.im->has_metadata)
            st = core_errf(&e, VKLLM_ERR_BAD_FILE,
                           "%s: no imatrix.datasets / chunk_count / chunk_size metadata",
                           d->imatrix_path);
        q.r.has_imatrix = st == VKLLM_OK;
    }
    /* the writer writes under a temporary name next to the output and renames it */
    if (st == VKLLM_OK) st = run(&q, d->out_path);
    if (st == VKLLM_OK && d->result) {
        vkllm_quantize_result r = {.n_tensors = q.n,
                                   .n_elements = q.n_elements,
                                   .bytes_in = q.bytes_in,
                                   .bytes_out = q.bytes_out,
                                   .n_fallback = q.r.n_fallback};
        for (uint64_t i = 0; i < q.n; i++)
            r.n_converted += q.plans[i].type != q.plans[i].t->type;
        API_OUT(vkllm_quantize_result, d->result, &r);
    }
    core_free(q.alloc, q.out);
    for (uint64_t i = 0; q.im_w && i < q.im->n_entries; i++)
        core_free(q.alloc, q.im_w[i]);
    core_free(q.alloc, q.im_w);
    core_free(q.alloc, q.plans);
    imatrix_free(q.im);
    gguf_close(q.in);
    if (st != VKLLM_OK && err && err_cap) snprintf(err, err_cap, "%s", e.msg);
    return st;
}
