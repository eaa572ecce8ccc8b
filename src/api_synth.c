/* vkllm_synth: GGUF files of known llama-family shapes with pseudo-random weights and a real
 * tokenizer, for benchmarks (speed does not depend on the weights' values).
 *
 * Weights: each matrix holds up to SYNTH_ROWS distinct rows of uniform values in
 * [-1/sqrt(n_in), 1/sqrt(n_in)] (so activations stay bounded through the layers), quantized by
 * src/core's reference quantizer and repeated down the matrix; norms are 1. Generating and
 * quantizing every row of a 7B model would take minutes and change no timing.
 * Tokenizer: every tokenizer.* key of the vocabulary file, verbatim; the model's vocabulary
 * size is its token count.
 */
#include "vkllm.h"

#include "api_abi.h"

#include "core/common.h"
#include "core/quant.h"
#include "loader/gguf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SYNTH_ROWS 16

typedef struct synth_shape {
    const char *name, *vocab_hint;
    uint32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_ctx;
    float rope_base, rms_eps;
    bool tied; /* output head = token embedding */
} synth_shape;

static const synth_shape k_shapes[] = {
    {"smollm2-135m", "SmolLM2", 576, 1536, 30, 9, 3, 8192, 100000.0f, 1e-5f, true},
    {"smollm2-360m", "SmolLM2", 960, 2560, 32, 15, 5, 8192, 100000.0f, 1e-5f, true},
    {"llama-3.2-1b", "llama-bpe", 2048, 8192, 16, 32, 8, 131072, 500000.0f, 1e-5f, true},
    {"llama-3.2-3b", "llama-bpe", 3072, 8192, 28, 24, 8, 131072, 500000.0f, 1e-5f, true},
    {"llama-2-7b", "llama-spm", 4096, 11008, 32, 32, 32, 4096, 10000.0f, 1e-5f, false},
    {"llama-3-8b", "llama-bpe", 4096, 14336, 32, 32, 8, 8192, 500000.0f, 1e-5f, false},
    /* for quantization tests: 8 layers, so llama-quantize's first-eighth rules pick a layer;
     * rows of 160 (not a multiple of 256: the fallback types) and of 256 (ffn_down) */
    {"tiny-quant", "llama-spm", 160, 256, 8, 5, 1, 256, 10000.0f, 1e-5f, true},
};
#define N_SHAPES (sizeof k_shapes / sizeof k_shapes[0])

const char *const *vkllm_synth_shapes(void) {
    static const char *names[N_SHAPES + 1];
    for (size_t i = 0; i < N_SHAPES; i++)
        names[i] = k_shapes[i].name;
    names[N_SHAPES] = NULL;
    return names;
}

static const synth_shape *find_shape(const char *name) {
    for (size_t i = 0; name && i < N_SHAPES; i++)
        if (strcmp(k_shapes[i].name, name) == 0) return &k_shapes[i];
    return NULL;
}

const char *vkllm_synth_shape_vocab(const char *shape) {
    const synth_shape *s = find_shape(shape);
    return s ? s->vocab_hint : NULL;
}

bool vkllm_synth_shape_info(const char *shape, vkllm_model_info *out) {
    const synth_shape *s = find_shape(shape);
    if (!s || !out) return false;
    vkllm_model_info info = {0}, *o = &info;
    o->architecture = "llama";
    o->name = s->name;
    o->n_embd = s->n_embd;
    o->n_ff = s->n_ff;
    o->n_layer = s->n_layer;
    o->n_head = s->n_head;
    o->n_head_kv = s->n_head_kv;
    o->n_ctx_train = s->n_ctx;
    o->n_vocab = strcmp(s->vocab_hint, "SmolLM2") == 0     ? 49152
                 : strcmp(s->vocab_hint, "llama-bpe") == 0 ? 128256
                                                           : 32000;
    o->bos = o->eos = -1;
    API_OUT(vkllm_model_info, out, &info);
    return true;
}

static const uint32_t k_types[] = {QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0, QT_Q4_K,
                                   QT_Q5_K, QT_Q6_K, QT_F16,  QT_BF16, QT_F32};

/* A matrix type vkllm_synth writes, by name (case-insensitive); NULL or "" is q4_0. */
static bool find_type(const char *name, uint32_t *out) {
    uint32_t id;
    if (!quant_type_by_name(name && *name ? name : "q4_0", &id)) return false;
    for (size_t i = 0; i < sizeof k_types / sizeof *k_types; i++)
        if (k_types[i] == id) {
            *out = id;
            return true;
        }
    return false;
}

typedef struct synth {
    gguf_writer *w;
    const vkllm_allocator *alloc;
    uint64_t rng;
    float *row; /* n_in floats */
    core_err *err;
} synth;

static float next_unit(uint64_t *x) { /* [-1, 1) */
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return (float)(int32_t)(*x >> 32) / 2147483648.0f;
}

/* Adds an n_out x n_in matrix of `type`: SYNTH_ROWS random rows repeated. */
static vkllm_status add_matrix(synth *s, const char *name, uint32_t type, uint32_t n_in,
                               uint32_t n_out) {
    uint64_t rb, total;
    if (!quant_row_bytes(type, n_in, &rb))
        return core_errf(s->err, VKLLM_ERR_INVALID_ARG,
                         "%s: rows of %u elements are not a "
                         "multiple of %s's block of %u",
                         name, n_in, quant_type_name(type), quant_traits_of(type)->block_size);
    if (!core_mul_ok(rb, n_out, &total) || total > SIZE_MAX)
        return core_errf(s->err, VKLLM_ERR_INVALID_ARG, "%s: too large", name);
    const quant_traits *tr = quant_traits_of(type);
    if (!tr->quant)
        return core_errf(s->err, VKLLM_ERR_UNSUPPORTED, "no quantizer for %s",
                         quant_type_name(type));
    uint8_t *data = core_alloc(s->alloc, (size_t)total, 0);
    if (!data)
        return core_errf(s->err, VKLLM_ERR_OUT_OF_MEMORY, "%s: %llu bytes", name,
                         (unsigned long long)total);
    const float scale = 1.0f / sqrtf((float)n_in);
    const uint32_t distinct = n_out < SYNTH_ROWS ? n_out : SYNTH_ROWS;
    for (uint32_t r = 0; r < distinct; r++) {
        for (uint32_t i = 0; i < n_in; i++)
            s->row[i] = scale * next_unit(&s->rng);
        tr->quant(s->row, data + (size_t)r * rb, n_in);
    }
    for (uint32_t r = distinct; r < n_out; r++)
        memcpy(data + (size_t)r * rb, data + (size_t)(r % distinct) * rb, (size_t)rb);
    const uint64_t ne[2] = {n_in, n_out};
    vkllm_status st = gguf_writer_add_tensor(s->w, name, type, 2, ne, data, total, true);
    core_free(s->alloc, data);
    if (st != VKLLM_OK) return core_errf(s->err, st, "%s: cannot add the tensor", name);
    return VKLLM_OK;
}

static vkllm_status add_norm(synth *s, const char *name, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        s->row[i] = 1.0f;
    const uint64_t ne[1] = {n};
    vkllm_status st =
        gguf_writer_add_tensor(s->w, name, QT_F32, 1, ne, s->row, (uint64_t)n * 4, true);
    if (st != VKLLM_OK) return core_errf(s->err, st, "%s: cannot add the tensor", name);
    return VKLLM_OK;
}

static vkllm_status write_model(synth *s, const synth_shape *sh, uint32_t type,
                                const gguf_file *vocab, const char *path) {
    gguf_type et;
    uint64_t n_vocab = 0, n_copied = 0;
    if (!gguf_get_arr(vocab, "tokenizer.ggml.tokens", &et, &n_vocab) || n_vocab == 0 ||
        n_vocab > INT32_MAX)
        return core_errf(s->err, VKLLM_ERR_BAD_FILE,
                         "the vocabulary file has no "
                         "tokenizer.ggml.tokens");
    const uint32_t hd = sh->n_embd / sh->n_head, n_kv = hd * sh->n_head_kv;
    char name[64];
    snprintf(name, sizeof name, "synthetic %s %s", sh->name, quant_type_name(type));
    vkllm_status st = VKLLM_OK;
#define SET(call)                                                                                  \
    if (st == VKLLM_OK) st = (call)
    SET(gguf_writer_set_str(s->w, "general.architecture", "llama"));
    SET(gguf_writer_set_str(s->w, "general.name", name));
    if (quant_ftype_of(type) != UINT32_MAX)
        SET(gguf_writer_set_u32(s->w, "general.file_type", quant_ftype_of(type)));
    SET(gguf_writer_set_u32(s->w, "llama.context_length", sh->n_ctx));
    SET(gguf_writer_set_u32(s->w, "llama.embedding_length", sh->n_embd));
    SET(gguf_writer_set_u32(s->w, "llama.block_count", sh->n_layer));
    SET(gguf_writer_set_u32(s->w, "llama.feed_forward_length", sh->n_ff));
    SET(gguf_writer_set_u32(s->w, "llama.attention.head_count", sh->n_head));
    SET(gguf_writer_set_u32(s->w, "llama.attention.head_count_kv", sh->n_head_kv));
    SET(gguf_writer_set_u32(s->w, "llama.rope.dimension_count", hd));
    SET(gguf_writer_set_f32(s->w, "llama.rope.freq_base", sh->rope_base));
    SET(gguf_writer_set_f32(s->w, "llama.attention.layer_norm_rms_epsilon", sh->rms_eps));
    SET(gguf_writer_set_u32(s->w, "llama.vocab_size", (uint32_t)n_vocab));
    SET(gguf_writer_copy_kvs_prefix(s->w, vocab, "tokenizer.", &n_copied));
#undef SET
    if (st != VKLLM_OK) return core_errf(s->err, st, "cannot set the metadata");
    st = add_matrix(s, "token_embd.weight", type, sh->n_embd, (uint32_t)n_vocab);
    if (st == VKLLM_OK) st = add_norm(s, "output_norm.weight", sh->n_embd);
    if (st == VKLLM_OK && !sh->tied)
        st = add_matrix(s, "output.weight", type, sh->n_embd, (uint32_t)n_vocab);
    for (uint32_t l = 0; st == VKLLM_OK && l < sh->n_layer; l++) {
        const struct {
            const char *part;
            uint32_t n_in, n_out;
        } mats[] = {
            {"attn_q", sh->n_embd, sh->n_embd}, {"attn_k", sh->n_embd, n_kv},
            {"attn_v", sh->n_embd, n_kv},       {"attn_output", sh->n_embd, sh->n_embd},
            {"ffn_gate", sh->n_embd, sh->n_ff}, {"ffn_up", sh->n_embd, sh->n_ff},
            {"ffn_down", sh->n_ff, sh->n_embd},
        };
        char tn[64];
        snprintf(tn, sizeof tn, "blk.%u.attn_norm.weight", l);
        st = add_norm(s, tn, sh->n_embd);
        snprintf(tn, sizeof tn, "blk.%u.ffn_norm.weight", l);
        if (st == VKLLM_OK) st = add_norm(s, tn, sh->n_embd);
        for (size_t i = 0; st == VKLLM_OK && i < sizeof mats / sizeof *mats; i++) {
            snprintf(tn, sizeof tn, "blk.%u.%s.weight", l, mats[i].part);
            st = add_matrix(s, tn, type, mats[i].n_in, mats[i].n_out);
        }
    }
    if (st != VKLLM_OK) return st;
    return gguf_writer_write(s->w, path, s->err);
}

vkllm_status vkllm_synth(const vkllm_synth_desc *user_desc, char *err, size_t err_cap) {
    vkllm_synth_desc local;
    const vkllm_synth_desc *desc = user_desc ? API_IN(vkllm_synth_desc, user_desc, &local) : NULL;
    core_err e = {{0}};
    vkllm_status st = VKLLM_OK;
    const synth_shape *sh = desc ? find_shape(desc->shape) : NULL;
    uint32_t type = 0;
    if (!desc || !desc->out_path) {
        st = core_errf(&e, VKLLM_ERR_INVALID_ARG,
                       "synth: a shape, a vocabulary file and an "
                       "output path are required");
    } else if (!sh) {
        char list[256] = "";
        for (size_t i = 0; i < N_SHAPES; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     k_shapes[i].name);
        st = core_errf(&e, VKLLM_ERR_INVALID_ARG, "unknown shape '%s' (known: %s)",
                       desc->shape ? desc->shape : "", list);
    } else if (!find_type(desc->type, &type)) {
        st = core_errf(&e, VKLLM_ERR_INVALID_ARG,
                       "unknown or unsupported weight type '%s' "
                       "(q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, f16, bf16, f32)",
                       desc->type);
    } else if (!desc->vocab_path) {
        st = core_errf(&e, VKLLM_ERR_INVALID_ARG, "synth: a vocabulary file is required");
    }
    gguf_file *vocab = NULL;
    if (st == VKLLM_OK) {
        gguf_open_desc od = {.allocator = desc->allocator, .vocab_only = true};
        st = gguf_open(desc->vocab_path, &od, &vocab, &e);
    }
    synth s = {.alloc = desc ? desc->allocator : NULL,
               .err = &e,
               .rng = desc && desc->seed ? desc->seed : 1};
    if (st == VKLLM_OK) {
        s.w = gguf_writer_create(s.alloc);
        const uint32_t widest = sh->n_ff > sh->n_embd ? sh->n_ff : sh->n_embd;
        s.row = core_alloc(s.alloc, (size_t)widest * sizeof(float), 0);
        if (!s.w || !s.row) st = core_errf(&e, VKLLM_ERR_OUT_OF_MEMORY, "synth: out of memory");
    }
    if (st == VKLLM_OK) st = write_model(&s, sh, type, vocab, desc->out_path);
    if (s.row) core_free(s.alloc, s.row);
    gguf_writer_free(s.w);
    gguf_close(vocab);
    if (st != VKLLM_OK && err && err_cap) snprintf(err, err_cap, "%s", e.msg);
    return st;
}
