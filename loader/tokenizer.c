/* Tokenizer front end: loading a vocab from GGUF metadata, special tokens, tok_encode and
 * tok_piece. The algorithms live beside it (tok_pre.c, tok_bpe.c, tok_spm.c, tok_special.c;
 * see tok_internal.h).
 *
 * The aim is llama.cpp's ids, bit for bit, so loading follows llama-vocab.cpp
 * (llama_vocab::impl::load): default special ids and flags per model type, token types as
 * attributes, metadata overrides; the special-token rules are in tok_special.c. Where
 * llama.cpp would abort on hostile input we return something sane instead; those places say
 * so.
 * Everything is copied out of the gguf_file, so the vocab may outlive it.
 */
#include "loader/tok_internal.h"
#include "loader/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest text we tokenize in one call. Scratch is a small multiple of the input, and ids
 * are int32 in llama.cpp's API too. */
#define TOK_MAX_TEXT (1u << 28)
/* tok_str.token of a token whose text a later token repeats (not in the lookup table). */
#define TOK_SHADOWED (-2)

/* ---- growable storage ---- */

static void *grow(const tok_vocab *v, void *old, size_t old_bytes, size_t new_bytes) {
    void *p = core_alloc(v->alloc, new_bytes, 0);
    if (!p) return NULL;
    if (old) {
        memcpy(p, old, old_bytes);
        core_free(v->alloc, old);
    }
    return p;
}

bool tok_buf_reserve(const tok_vocab *v, tok_buf *buf, size_t n) {
    if (n <= buf->cap) return true;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < n)
        cap *= 2;
    void *p = grow(v, buf->p, buf->cap, cap);
    if (!p) return false;
    buf->p = p;
    buf->cap = cap;
    return true;
}

void tok_buf_free(const tok_vocab *v, tok_buf *buf) {
    core_free(v->alloc, buf->p);
    buf->p = NULL;
    buf->cap = 0;
}

/* ---- interned strings ---- */

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static uint64_t hash_pair(uint32_t a, uint32_t b) {
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

uint32_t tok_str_find(const tok_vocab *v, const char *s, size_t len) {
    for (uint64_t i = hash_bytes(s, len) & v->str_mask;; i = (i + 1) & v->str_mask) {
        uint32_t sid = v->str_table[i];
        if (sid == TOK_NONE) return TOK_NONE;
        const tok_str *e = &v->strs[sid];
        if (e->len == len && memcmp(v->blob + e->off, s, len) == 0) return sid;
    }
}

static bool str_table_rebuild(tok_vocab *v, uint32_t slots) {
    uint32_t *t = core_alloc(v->alloc, (size_t)slots * sizeof *t, 0);
    if (!t) return false;
    memset(t, 0xFF, (size_t)slots * sizeof *t);
    core_free(v->alloc, v->str_table);
    v->str_table = t;
    v->str_mask = slots - 1;
    for (uint32_t sid = 0; sid < v->n_strs; sid++) {
        const tok_str *e = &v->strs[sid];
        if (e->token == TOK_SHADOWED) continue;
        uint64_t i = hash_bytes(v->blob + e->off, e->len) & v->str_mask;
        while (t[i] != TOK_NONE)
            i = (i + 1) & v->str_mask;
        t[i] = sid;
    }
    return true;
}

/* Interns the bytes at blob[off, off+len) (already appended). Returns the string id; if the
 * string was known, the appended bytes are dropped again. TOK_NONE on allocation failure. */
static uint32_t intern_tail(tok_vocab *v, size_t off, size_t len) {
    const char *s = v->blob + off;
    uint64_t i = hash_bytes(s, len) & v->str_mask;
    for (;; i = (i + 1) & v->str_mask) {
        uint32_t sid = v->str_table[i];
        if (sid == TOK_NONE) break;
        const tok_str *e = &v->strs[sid];
        if (e->len == len && memcmp(v->blob + e->off, s, len) == 0) {
            v->blob_len = off;
            return sid;
        }
    }
    if (v->n_strs == v->cap_strs) {
        uint32_t cap = v->cap_strs * 2;
        tok_str *p = grow(v, v->strs, v->n_strs * sizeof *p, (size_t)cap * sizeof *p);
        if (!p) return TOK_NONE;
        v->strs = p;
        v->cap_strs = cap;
    }
    uint32_t sid = v->n_strs++;
    v->strs[sid] = (tok_str){(uint32_t)off, (uint32_t)len, -1};
    v->str_table[i] = sid;
    if ((uint64_t)v->n_strs * 2 > v->str_mask + 1ull) {
        if (!str_table_rebuild(v, (v->str_mask + 1) * 2)) return TOK_NONE;
    }
    return sid;
}

static bool blob_append(tok_vocab *v, const char *s, size_t len) {
    if (v->blob_len + len > v->blob_cap) {
        size_t cap = v->blob_cap ? v->blob_cap : 4096;
        while (cap < v->blob_len + len)
            cap *= 2;
        if (cap > UINT32_MAX) return false; /* offsets are 32-bit */
        char *p = grow(v, v->blob, v->blob_len, cap);
        if (!p) return false;
        v->blob = p;
        v->blob_cap = cap;
    }
    memcpy(v->blob + v->blob_len, s, len);
    v->blob_len += len;
    return true;
}

static uint32_t intern(tok_vocab *v, const char *s, size_t len) {
    size_t off = v->blob_len;
    if (!blob_append(v, s, len)) return TOK_NONE;
    return intern_tail(v, off, len);
}

const tok_merge *tok_merge_find(const tok_vocab *v, uint32_t left, uint32_t right) {
    if (!v->merges) return NULL;
    for (uint64_t i = hash_pair(left, right) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        const tok_merge *m = &v->merges[i];
        if (m->left == TOK_NONE) return NULL;
        if (m->left == left && m->right == right) return m;
    }
}

/* ---- loading ---- */

static vkllm_status load_tokens(tok_vocab *v, const gguf_file *f, core_err *err) {
    int64_t ti = gguf_find_key(f, "tokenizer.ggml.tokens");
    if (ti < 0) return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens missing");
    if (gguf_kv_type(f, (uint64_t)ti) != GGUF_TYPE_ARRAY ||
        gguf_kv_arr_type(f, (uint64_t)ti) != GGUF_TYPE_STRING) {
        return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens is not a string array");
    }
    uint64_t n = gguf_kv_arr_len(f, (uint64_t)ti);
    if (n == 0 || n > (uint64_t)INT32_MAX / 4) {
        return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens: %llu tokens",
                         (unsigned long long)n);
    }
    v->n_tokens = (uint32_t)n;
    v->cap_strs = v->n_tokens * 2;
    v->strs = core_alloc(v->alloc, (size_t)v->cap_strs * sizeof *v->strs, 0);
    v->scores = core_calloc(v->alloc, n, sizeof *v->scores);
    v->attr = core_calloc(v->alloc, n, sizeof *v->attr);
    v->is_eog = core_calloc(v->alloc, n, 1);
    v->spec_rank = core_alloc(v->alloc, n * sizeof *v->spec_rank, 0);
    uint32_t slots = 1024;
    while (slots < n * 4)
        slots *= 2;
    if (!v->strs || !v->scores || !v->attr || !v->is_eog || !v->spec_rank ||
        !str_table_rebuild(v, slots)) {
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (%u tokens)",
                         v->n_tokens);
    }
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        gguf_str s;
        char empty[32];
        if (!gguf_arr_str(f, (uint64_t)ti, i, &s)) {
            return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens[%u] unreadable", i);
        }
        if (s.len == 0) { /* llama.cpp names empty tokens so that they stay distinct */
            s.len = (uint64_t)snprintf(empty, sizeof empty, "[EMPTY_%u]", i);
            s.ptr = empty;
        }
        if (s.len > UINT32_MAX / 2) {
            return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.tokens[%u] too long", i);
        }
        size_t off = v->blob_len;
        if (!blob_append(v, s.ptr, (size_t)s.len)) goto oom;
        v->strs[i] = (tok_str){(uint32_t)off, (uint32_t)s.len, (int32_t)i};
        v->n_strs = i + 1;
        /* The same text twice: the later id wins, as llama.cpp's token_to_id[word] = i. The
         * earlier entry keeps its text for tok_piece but leaves the lookup table. */
        uint64_t h = hash_bytes(s.ptr, (size_t)s.len) & v->str_mask;
        for (;; h = (h + 1) & v->str_mask) {
            uint32_t sid = v->str_table[h];
            if (sid == TOK_NONE) break;
            const tok_str *e = &v->strs[sid];
            if (e->len == s.len && memcmp(v->blob + e->off, v->blob + off, e->len) == 0) {
                v->strs[sid].token = TOK_SHADOWED;
                break;
            }
        }
        v->str_table[h] = i;
    }
    return VKLLM_OK;
oom:
    return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

static vkllm_status load_merges(tok_vocab *v, const gguf_file *f, core_err *err) {
    int64_t mi = gguf_find_key(f, "tokenizer.ggml.merges");
    if (mi < 0) return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.merges missing");
    if (gguf_kv_type(f, (uint64_t)mi) != GGUF_TYPE_ARRAY ||
        gguf_kv_arr_type(f, (uint64_t)mi) != GGUF_TYPE_STRING) {
        return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.merges is not a string array");
    }
    uint64_t n = gguf_kv_arr_len(f, (uint64_t)mi);
    if (n > (uint64_t)INT32_MAX / 4) {
        return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.merges: %llu merges",
                         (unsigned long long)n);
    }
    uint32_t slots = 16;
    while (slots < n * 2)
        slots *= 2;
    v->merges = core_alloc(v->alloc, (size_t)slots * sizeof *v->merges, 0);
    if (!v->merges) goto oom;
    memset(v->merges, 0xFF, (size_t)slots * sizeof *v->merges);
    v->merge_mask = slots - 1;

    for (uint64_t r = 0; r < n; r++) {
        gguf_str m;
        if (!gguf_arr_str(f, (uint64_t)mi, r, &m)) {
            return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.merges[%llu] unreadable",
                             (unsigned long long)r);
        }
        if (m.len > UINT32_MAX / 4) continue;
        /* "left right", split at the first space after the first byte (a left side may
         * itself be a space). Without one llama.cpp records an empty pair that can never
         * apply; the rank is used up either way. */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp) continue;
        size_t ll = (size_t)(sp - m.ptr), rl = (size_t)m.len - ll - 1;
        uint32_t ls = intern(v, m.ptr, ll);
        uint32_t rs = ls == TOK_NONE ? TOK_NONE : intern(v, sp + 1, rl);
        if (rs == TOK_NONE) goto oom;
        size_t off = v->blob_len;
        if (!blob_append(v, m.ptr, ll) || !blob_append(v, sp + 1, rl)) goto oom;
        uint32_t res = intern_tail(v, off, ll + rl);
        if (res == TOK_NONE) goto oom;
        uint64_t i = hash_pair(ls, rs) & v->merge_mask;
        while (v->merges[i].left != TOK_NONE &&
               !(v->merges[i].left == ls && v->merges[i].right == rs)) {
            i = (i + 1) & v->merge_mask;
        }
        /* A repeated pair keeps its first rank (llama.cpp's map emplace). */
        if (v->merges[i].left == TOK_NONE) v->merges[i] = (tok_merge){ls, rs, (uint32_t)r, res};
    }
    return VKLLM_OK;
oom:
    return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (merges)");
}

/* Scores (SPM merge priority) and token types; both optional, both at least n long. */
static vkllm_status load_scores_types(tok_vocab *v, const gguf_file *f, core_err *err) {
    int64_t si = gguf_find_key(f, "tokenizer.ggml.scores");
    if (si >= 0) {
        gguf_type t = gguf_kv_type(f, (uint64_t)si) == GGUF_TYPE_ARRAY
                          ? gguf_kv_arr_type(f, (uint64_t)si)
                          : GGUF_TYPE_COUNT;
        if (t != GGUF_TYPE_FLOAT32 && t != GGUF_TYPE_INT32) {
            return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.scores: not f32 or i32");
        }
        if (gguf_kv_arr_len(f, (uint64_t)si) < v->n_tokens) {
            return core_errf(err, VKLLM_ERR_BAD_FILE,
                             "tokenizer.ggml.scores: %llu scores for "
                             "%u tokens",
                             (unsigned long long)gguf_kv_arr_len(f, (uint64_t)si), v->n_tokens);
        }
        for (uint32_t i = 0; i < v->n_tokens; i++) {
            double d = 0;
            gguf_arr_f64(f, (uint64_t)si, i, &d);
            v->scores[i] = (float)d;
        }
    }
    int64_t ti = gguf_find_key(f, "tokenizer.ggml.token_type");
    if (ti < 0) {
        for (uint32_t i = 0; i < v->n_tokens; i++)
            v->attr[i] = TOK_ATTR_NORMAL;
        return VKLLM_OK;
    }
    if (gguf_kv_type(f, (uint64_t)ti) != GGUF_TYPE_ARRAY ||
        gguf_kv_arr_type(f, (uint64_t)ti) != GGUF_TYPE_INT32 ||
        gguf_kv_arr_len(f, (uint64_t)ti) < v->n_tokens) {
        return core_errf(err, VKLLM_ERR_BAD_FILE,
                         "tokenizer.ggml.token_type: not an i32 array "
                         "of %u types",
                         v->n_tokens);
    }
    /* llama_token_type (1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte)
     * to attribute bits; anything else is "undefined" (0), which renders as nothing. */
    static const uint8_t type_attr[7] = {0,
                                         TOK_ATTR_NORMAL,
                                         TOK_ATTR_UNKNOWN,
                                         TOK_ATTR_CONTROL,
                                         TOK_ATTR_USER_DEFINED,
                                         TOK_ATTR_UNUSED,
                                         TOK_ATTR_BYTE};
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        int64_t t = 0;
        gguf_arr_i64(f, (uint64_t)ti, i, &t);
        v->attr[i] = (t >= 0 && t < 7) ? type_attr[t] : 0;
    }
    return VKLLM_OK;
}

static void build_byte_tables(tok_vocab *v) {
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t n = uni_encode(uni_byte_to_cpt((uint8_t)b), u);
        memcpy(v->byte_enc[b], u, n); /* code points < 0x144: at most 2 bytes */
        v->byte_enc_len[b] = (uint8_t)n;
        v->byte_sid[b] = tok_str_find(v, (const char *)u, n);
        char one = (char)b;
        v->single_byte_token[b] = tok_find_token(v, &one, 1);
        char hex[7];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        v->byte_token[b] = tok_find_token(v, hex, 6);
        if (v->byte_token[b] < 0) v->byte_token[b] = v->single_byte_token[b];
    }
}

typedef struct pre_name {
    const char *name;
    tok_pre pre;
    bool llama3_flags; /* llama.cpp also sets ignore_merges and add_bos for these */
} pre_name;

/* tokenizer.ggml.pre values and the regex list llama.cpp uses for each. */
static const pre_name pre_names[] = {
    {"default", TOK_PRE_DEFAULT, false},
    {"llama3", TOK_PRE_LLAMA3, true},
    {"llama-v3", TOK_PRE_LLAMA3, true},
    {"llama-bpe", TOK_PRE_LLAMA3, true},
    {"falcon3", TOK_PRE_LLAMA3, true},
    {"falcon-h1", TOK_PRE_LLAMA3, true},
    {"pixtral", TOK_PRE_LLAMA3, true},
    {"midm-2.0", TOK_PRE_LLAMA3, true},
    {"lfm2", TOK_PRE_LLAMA3, true},
    {"jina-v5-nano", TOK_PRE_LLAMA3, true},
    {"dbrx", TOK_PRE_LLAMA3, false},
    {"smaug-bpe", TOK_PRE_LLAMA3, false},
    {"gpt-2", TOK_PRE_GPT2, false},
    {"phi-2", TOK_PRE_GPT2, false},
    {"jina-es", TOK_PRE_GPT2, false},
    {"jina-de", TOK_PRE_GPT2, false},
    {"gigachat", TOK_PRE_GPT2, false},
    {"jina-v2-es", TOK_PRE_GPT2, false},
    {"jina-v2-de", TOK_PRE_GPT2, false},
    {"a.x-4.0", TOK_PRE_GPT2, false},
    {"mellum", TOK_PRE_GPT2, false},
    {"modern-bert", TOK_PRE_GPT2, false},
    {"jina-v1-en", TOK_PRE_GPT2, false},
    {"jina-v2-code", TOK_PRE_GPT2, false},
    {"roberta-bpe", TOK_PRE_GPT2, false},
    {"exaone4", TOK_PRE_GPT2, false},
    {"mpt", TOK_PRE_GPT2, false},
    {"olmo", TOK_PRE_GPT2, false},
    {"jais", TOK_PRE_GPT2, false},
    {"trillion", TOK_PRE_GPT2, false},
    {"granite-docling", TOK_PRE_GPT2, false},
    {"smollm", TOK_PRE_SMOLLM, false},
    {"starcoder", TOK_PRE_SMOLLM, false},
    {"refact", TOK_PRE_SMOLLM, false},
    {"command-r", TOK_PRE_SMOLLM, false},
    {"codeshell", TOK_PRE_SMOLLM, false},
    {"exaone", TOK_PRE_SMOLLM, false},
    {"minerva-7b", TOK_PRE_SMOLLM, false},
    {"mellum2", TOK_PRE_SMOLLM, false},
    {"qwen2", TOK_PRE_QWEN2, false},
    {"deepseek-r1-qwen", TOK_PRE_QWEN2, false},
    {"kormo", TOK_PRE_QWEN2, false},
    {"f2llmv2", TOK_PRE_QWEN2, false},
    {"megrez", TOK_PRE_QWEN2, false},
    {"stablelm2", TOK_PRE_QWEN2, false},
    {"hunyuan", TOK_PRE_QWEN2, false},
    {"solar-open", TOK_PRE_QWEN2, false},
    {"qwen35", TOK_PRE_QWEN35, false},
    {"falcon", TOK_PRE_FALCON, false},
};

static void choose_pre(tok_vocab *v, const gguf_file *f) {
    gguf_str s = {"", 0};
    gguf_get_str(f, "tokenizer.ggml.pre", &s);
    v->pre = TOK_PRE_DEFAULT;
    if (s.len == 0) return; /* llama.cpp: "missing pre-tokenizer type, using: 'default'" */
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
        if (strlen(pre_names[i].name) == s.len && memcmp(pre_names[i].name, s.ptr, s.len) == 0) {
            v->pre = pre_names[i].pre;
            if (pre_names[i].llama3_flags) {
                v->ignore_merges = true;
                v->add_bos = true;
            }
            return;
        }
    }
    /* llama.cpp refuses the file; we tokenize with the default regexes and say so through
     * tok_pre_unknown(). */
    v->pre_fallback = true;
}

vkllm_status tok_load(const gguf_file *f, const vkllm_allocator *a, tok_vocab **out,
                      core_err *err) {
    if (!f || !out) return core_errf(err, VKLLM_ERR_INVALID_ARG, "tok_load: NULL argument");
    *out = NULL;
    gguf_str model;
    if (!gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        return core_errf(err, VKLLM_ERR_BAD_FILE, "tokenizer.ggml.model missing");
    }
    tok_model type;
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        type = TOK_MODEL_SPM;
    } else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        type = TOK_MODEL_BPE;
    } else {
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "tokenizer.ggml.model '%.*s' is not "
                         "supported (gpt2 and llama are)",
                         (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    tok_vocab *v = core_calloc(a, 1, sizeof *v);
    if (!v) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    if (a) v->alloc_store = *a;
    v->alloc = &v->alloc_store;
    v->model = type;
    v->eot = v->eom = -1;
    if (type == TOK_MODEL_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else {
        v->bos = 11, v->eos = 11, v->unk = -1; /* llama.cpp's defaults for gpt2 */
        choose_pre(v, f);
    }
    vkllm_status st = load_tokens(v, f, err);
    if (st == VKLLM_OK) st = load_scores_types(v, f, err);
    if (st == VKLLM_OK && type == TOK_MODEL_BPE) st = load_merges(v, f, err);
    if (st != VKLLM_OK) {
        tok_free(v);
        return st;
    }
    gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    tok_get_id(v, f, "tokenizer.ggml.bos_token_id", &v->bos);
    tok_get_id(v, f, "tokenizer.ggml.eos_token_id", &v->eos);
    tok_get_id(v, f, "tokenizer.ggml.eot_token_id", &v->eot);
    tok_get_id(v, f, "tokenizer.ggml.eom_token_id", &v->eom);
    tok_get_id(v, f, "tokenizer.ggml.unknown_token_id", &v->unk);
    tok_detect_special(v, f);
    build_byte_tables(v);
    if (!tok_build_specials(v)) {
        tok_free(v);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (specials)");
    }
    tok_name_attrs(v, f);
    *out = v;
    return VKLLM_OK;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    const vkllm_allocator *a = v->alloc;
    core_free(a, v->scores);
    core_free(a, v->attr);
    core_free(a, v->is_eog);
    core_free(a, v->eog_ids);
    core_free(a, v->blob);
    core_free(a, v->strs);
    core_free(a, v->str_table);
    core_free(a, v->merges);
    core_free(a, v->spec_ids);
    core_free(a, v->spec_rank);
    core_free(a, v->trie);
    vkllm_allocator copy = v->alloc_store;
    core_free(&copy, v);
}

/* ---- encoding ---- */

static vkllm_status encode_fragment(const tok_vocab *v, const uint8_t *t, size_t len,
                                    bool after_special, tok_scratch *s, tok_out *out) {
    if (v->model == TOK_MODEL_SPM) {
        return tok_spm_encode(v, t, len, v->add_space_prefix && after_special, s, out);
    }
    return tok_bpe_encode(v, t, len, s, out);
}

vkllm_status tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t *ids, size_t cap, size_t *n_out,
                        core_err *err) {
    if (!v || (!text && len) || (!ids && cap) || !n_out) {
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "tok_encode: NULL argument");
    }
    *n_out = 0;
    if (len > TOK_MAX_TEXT) {
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "tokenize: text of %zu bytes is over the "
                         "limit of %u",
                         len, TOK_MAX_TEXT);
    }
    const uint8_t *t = (const uint8_t *)text;
    tok_out out = {ids, cap, 0};
    tok_scratch s;
    memset(&s, 0, sizeof s);
    tok_buf occ = {0}, marks = {0};
    vkllm_status st = VKLLM_OK;

    /* SPM always asks for BOS this way; BPE only when the vocab adds it. llama.cpp asserts
     * that the id exists; we skip a missing one. */
    if (add_special && v->add_bos && v->bos >= 0) tok_out_push(&out, v->bos);

    bool any = false;
    if (len > 0 && v->n_trie > 0) {
        if (!tok_find_specials(v, t, len, parse_special, &occ, &marks, &any)) {
            st = VKLLM_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }
    if (!any) {
        if (len > 0) st = encode_fragment(v, t, len, true, &s, &out);
    } else {
        const int32_t *mark = marks.p;
        bool after_special = true; /* the text start counts as one, for the space prefix */
        size_t p = 0;
        while (p < len && st == VKLLM_OK) {
            if (mark[p] > 0) {
                int32_t id = mark[p] - 1;
                tok_out_push(&out, id);
                p += v->strs[id].len;
                after_special = true;
                continue;
            }
            if (mark[p] < 0) { /* whitespace a token stripped */
                p++;
                continue;
            }
            size_t q = p;
            while (q < len && mark[q] == 0)
                q++;
            st = encode_fragment(v, t + p, q - p, after_special, &s, &out);
            after_special = false;
            p = q;
        }
    }
    if (st == VKLLM_OK && add_special && v->add_eos && v->eos >= 0) tok_out_push(&out, v->eos);

done:
    tok_buf_free(v, &s.cpts);
    tok_buf_free(v, &s.bnd);
    tok_buf_free(v, &s.word);
    tok_buf_free(v, &s.sym);
    tok_buf_free(v, &s.heap);
    tok_buf_free(v, &occ);
    tok_buf_free(v, &marks);
    if (st == VKLLM_ERR_OUT_OF_MEMORY) {
        return core_errf(err, st, "tokenize: out of memory (text of %zu bytes)", len);
    }
    if (st != VKLLM_OK) return st;
    *n_out = out.n;
    if (out.n > cap) {
        return core_errf(err, VKLLM_ERR_BUFFER_TOO_SMALL,
                         "tokenize: %zu tokens do not fit in "
                         "%zu",
                         out.n, cap);
    }
    return VKLLM_OK;
}

/* ---- decoding ---- */

typedef struct piece_out {
    char *buf;
    size_t cap, n;
} piece_out;

static void put(piece_out *o, const void *src, size_t n) {
    if (o->n < o->cap) {
        size_t k = o->cap - o->n < n ? o->cap - o->n : n;
        memcpy(o->buf + o->n, src, k);
    }
    o->n += n;
}

/* GPT-2 byte-level text back to bytes. A code point that stands for no byte is written as
 * llama.cpp does (llama_decode_text): "[UNK_BYTE_0x<its UTF-8 in hex><the token text>]". */
static void decode_byte_level(const uint8_t *t, size_t len, piece_out *o) {
    for (size_t off = 0; off < len;) {
        size_t adv;
        uint32_t c = uni_decode(t + off, len - off, &adv);
        off += adv;
        int b = uni_cpt_to_byte(c);
        if (b >= 0) {
            uint8_t byte = (uint8_t)b;
            put(o, &byte, 1);
            continue;
        }
        uint8_t u[4];
        size_t un = uni_encode(c, u);
        put(o, "[UNK_BYTE_0x", 12);
        for (size_t k = 0; k < un; k++) {
            char hex[3];
            snprintf(hex, sizeof hex, "%02x", u[k]);
            put(o, hex, 2);
        }
        put(o, t, len);
        put(o, "]", 1);
    }
}

/* llama.cpp's token_to_byte: the two characters after "<0x", read as hex. */
static uint8_t byte_token_value(const uint8_t *t, size_t len) {
    unsigned v = 0;
    for (size_t k = 3; k < len && k < 5; k++) {
        uint8_t c = t[k];
        unsigned d = (c >= '0' && c <= '9')   ? c - '0'
                     : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                     : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                              : 16;
        if (d == 16) break;
        v = v * 16 + d;
    }
    return (uint8_t)v;
}

size_t tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, size_t cap) {
    if (!v || id < 0 || (uint32_t)id >= v->n_tokens) return 0;
    piece_out o = {buf, buf ? cap : 0, 0};
    const uint16_t attr = v->attr[id];
    const uint8_t *t = (const uint8_t *)tok_str_ptr(v, (uint32_t)id);
    const size_t len = v->strs[id].len;
    if (attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) {
        if (render_special) put(&o, t, len);
    } else if (attr & TOK_ATTR_USER_DEFINED) {
        put(&o, t, len);
    } else if (attr & TOK_ATTR_NORMAL) {
        if (v->model == TOK_MODEL_BPE) {
            decode_byte_level(t, len, &o);
        } else {
            for (size_t k = 0; k < len;) { /* "▁" (U+2581) back to a space */
                if (k + 3 <= len && t[k] == 0xE2 && t[k + 1] == 0x96 && t[k + 2] == 0x81) {
                    put(&o, " ", 1);
                    k += 3;
                } else {
                    put(&o, t + k, 1);
                    k++;
                }
            }
        }
    } else if (attr & TOK_ATTR_BYTE) {
        uint8_t b = byte_token_value(t, len);
        put(&o, &b, 1);
    }
    /* UNUSED or undefined tokens render as nothing. */
    return o.n;
}

/* ---- getters ---- */

uint32_t tok_n_vocab(const tok_vocab *v) {
    return v ? v->n_tokens : 0;
}
int32_t tok_bos(const tok_vocab *v) {
    return v ? v->bos : -1;
}
int32_t tok_eos(const tok_vocab *v) {
    return v ? v->eos : -1;
}
bool tok_add_bos(const tok_vocab *v) {
    return v && v->add_bos;
}
bool tok_add_eos(const tok_vocab *v) {
    return v && v->add_eos;
}
bool tok_add_space_prefix(const tok_vocab *v) {
    return v && v->add_space_prefix;
}

bool tok_is_eog(const tok_vocab *v, int32_t id) {
    return v && id >= 0 && (uint32_t)id < v->n_tokens && v->is_eog[id];
}

const int32_t *tok_eog_ids(const tok_vocab *v, uint32_t *n) {
    *n = v && v->eog_ids ? v->n_eog : 0;
    return v ? v->eog_ids : NULL;
}

bool tok_is_control(const tok_vocab *v, int32_t id) {
    return v && id >= 0 && (uint32_t)id < v->n_tokens && (v->attr[id] & TOK_ATTR_CONTROL);
}

gguf_str tok_text(const tok_vocab *v, int32_t id) {
    if (!v || id < 0 || (uint32_t)id >= v->n_tokens) return (gguf_str){"", 0};
    return (gguf_str){tok_str_ptr(v, (uint32_t)id), v->strs[id].len};
}

const char *tok_pre_name(const tok_vocab *v) {
    if (!v) return "";
    if (v->model == TOK_MODEL_SPM) return "spm";
    switch (v->pre) {
    case TOK_PRE_GPT2:
        return "gpt-2";
    case TOK_PRE_LLAMA3:
        return "llama3";
    case TOK_PRE_QWEN2:
        return "qwen2";
    case TOK_PRE_QWEN35:
        return "qwen35";
    case TOK_PRE_SMOLLM:
        return "smollm";
    case TOK_PRE_FALCON:
        return "falcon";
    case TOK_PRE_DEFAULT:
        break;
    }
    return "default";
}

bool tok_pre_unknown(const tok_vocab *v) {
    return v && v->pre_fallback;
}
