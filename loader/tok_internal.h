/* Internals shared by the tokenizer's files: the vocab struct, its string tables, scratch
 * buffers, and the entry points of each algorithm.
 *
 * loader/tokenizer.c   loading from GGUF, special tokens, tok_encode/tok_piece and getters
 * loader/tok_pre.c     pre-tokenizers: hand-written equivalents of llama.cpp's split regexes
 * loader/tok_bpe.c     byte-level BPE over one pre-tokenized word (tokenizer.ggml.model gpt2)
 * loader/tok_spm.c     SentencePiece BPE with byte fallback (tokenizer.ggml.model llama)
 * loader/tok_special.c control / end-of-generation tokens, and cutting special tokens out
 *
 * Nothing here is visible outside loader/tok_*.c and loader/tokenizer.c.
 */
#ifndef VKLLM_LOADER_TOK_INTERNAL_H
#define VKLLM_LOADER_TOK_INTERNAL_H

#include "loader/tokenizer.h"

typedef enum tok_model {
    TOK_MODEL_SPM, /* "llama" */
    TOK_MODEL_BPE, /* "gpt2" */
} tok_model;

/* Pre-tokenizers: each names one of llama.cpp's regex lists (llama-vocab.cpp,
 * llm_tokenizer_bpe), which we implement by hand in tok_pre.c. */
typedef enum tok_pre {
    TOK_PRE_DEFAULT, /* punctuation runs, GPT-2 regex, digit runs, ASCII digit triples */
    TOK_PRE_GPT2,    /* the GPT-2 regex alone */
    TOK_PRE_LLAMA3,  /* Llama 3: case-insensitive contractions, \p{N}{1,3}, newline runs */
    TOK_PRE_QWEN2,   /* as Llama 3 but single digits */
    TOK_PRE_QWEN35,  /* as Qwen 2, combining marks count as letters */
    TOK_PRE_SMOLLM,  /* every digit on its own, then the GPT-2 regex (also starcoder, ...) */
    TOK_PRE_FALCON,  /* punctuation runs (with '`'), GPT-2 regex, ASCII digit triples */
} tok_pre;

/* Token attributes, bit for bit llama.cpp's llama_token_attr (a token can have several:
 * a NORMAL token that the loader recognises as end-of-turn also becomes CONTROL). */
enum {
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7, /* cutting the token out also drops whitespace before it */
    TOK_ATTR_RSTRIP = 1 << 8, /* ... and after it */
};

#define TOK_NONE UINT32_MAX

/* An interned string. Every token text is one (string id == token id for the first n_tokens),
 * and so is every string a BPE merge mentions, so merges work on small integers. */
typedef struct tok_str {
    uint32_t off, len; /* in vocab->blob */
    int32_t token;     /* the id whose text this is (llama.cpp: the last such id), or -1 */
} tok_str;

/* A BPE merge: pair of string ids -> rank (order in tokenizer.ggml.merges) and the id of the
 * concatenated string. */
typedef struct tok_merge {
    uint32_t left, right; /* TOK_NONE marks an empty slot */
    uint32_t rank;
    uint32_t result;
} tok_merge;

struct tok_vocab {
    vkllm_allocator alloc_store;
    const vkllm_allocator *alloc;

    tok_model model;
    tok_pre pre;
    bool pre_fallback;  /* tokenizer.ggml.pre named something we do not know */
    bool ignore_merges; /* llama3: a word that is a whole token is not merged */
    bool add_space_prefix;
    bool add_bos, add_eos;
    int32_t bos, eos, eot, eom, unk;

    uint32_t n_tokens;
    float *scores;    /* SPM merge priority, per token */
    uint16_t *attr;   /* TOK_ATTR_*, per token */
    uint8_t *is_eog;  /* per token */
    int32_t *eog_ids; /* the ids with is_eog set, ascending (tok_build_specials) */
    uint32_t n_eog;

    /* Interned strings and the open-addressing table over them. */
    char *blob;
    size_t blob_len, blob_cap;
    tok_str *strs;
    uint32_t n_strs, cap_strs;
    uint32_t *str_table; /* string ids, TOK_NONE = empty */
    uint32_t str_mask;

    tok_merge *merges; /* open-addressing table keyed by (left, right) */
    uint32_t merge_mask;

    /* BPE: the GPT-2 encoding of each byte (UTF-8, 1 or 2 bytes), the string id of that
     * one-character string, and the token of each raw one-byte string (fallback). */
    uint8_t byte_enc[256][2];
    uint8_t byte_enc_len[256];
    uint32_t byte_sid[256];
    int32_t single_byte_token[256];
    /* SPM byte fallback: <0xXX> tokens (or the raw byte), -1 if absent. */
    int32_t byte_token[256];

    /* Special tokens (CONTROL, USER_DEFINED, UNKNOWN) in llama.cpp's matching order: longest
     * text first. spec_rank[id] is the position in that order, or -1. A byte trie over their
     * texts finds every occurrence in one pass over the input. */
    int32_t *spec_ids;
    uint32_t n_spec;
    int32_t *spec_rank;
    struct tok_trie_node *trie;
    uint32_t n_trie;
    int32_t root_child[256];
};

/* Trie node: children as a sibling list; the root's children are indexed directly
 * (root_child) because every lookup starts there and most end there. */
typedef struct tok_trie_node {
    int32_t first_child, next_sibling;
    int32_t token; /* special token ending here, or -1 */
    uint8_t byte;
} tok_trie_node;

/* ---- string table (tokenizer.c) ---- */
uint32_t tok_str_find(const tok_vocab *v, const char *s, size_t len);
static inline const char *tok_str_ptr(const tok_vocab *v, uint32_t sid) {
    return v->blob + v->strs[sid].off;
}
/* Token id of a text, or -1 (llama.cpp's text_to_token). */
static inline int32_t tok_find_token(const tok_vocab *v, const char *s, size_t len) {
    uint32_t sid = tok_str_find(v, s, len);
    return sid == TOK_NONE ? -1 : v->strs[sid].token;
}
const tok_merge *tok_merge_find(const tok_vocab *v, uint32_t left, uint32_t right);

/* ---- scratch and output ---- */

/* A grow-only buffer reused for the whole of one tok_encode call. */
typedef struct tok_buf {
    void *p;
    size_t cap; /* bytes */
} tok_buf;
/* Makes buf hold at least n bytes, keeping its contents. False on allocation failure. */
bool tok_buf_reserve(const tok_vocab *v, tok_buf *buf, size_t n);
void tok_buf_free(const tok_vocab *v, tok_buf *buf);

/* Ids are written while they fit; n keeps counting so the caller learns the size needed. */
typedef struct tok_out {
    int32_t *ids;
    size_t cap, n;
} tok_out;
static inline void tok_out_push(tok_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* Priority queue entry for both BPE flavours: smaller key first, then smaller left. */
typedef struct tok_bigram {
    float key;
    int32_t left, right;
    uint32_t a, b; /* BPE: string ids of left and right when queued; SPM: a = byte size */
} tok_bigram;

typedef struct tok_symbol {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the word */
    uint32_t sid;      /* BPE: interned string id or TOK_NONE */
} tok_symbol;

/* Scratch for one encode call. */
typedef struct tok_scratch {
    tok_buf cpts, bnd, word, sym, heap;
} tok_scratch;

/* ---- algorithms ---- */

/* Marks word starts: bnd[i] = 1 where a word begins (bnd[0] and bnd[n] are set on return).
 * bnd must hold n + 1 bytes, zeroed. */
void tok_pretokenize(tok_pre pre, const uint32_t *cpts, size_t n, uint8_t *bnd);

/* BPE over one fragment of raw text (no special tokens inside). */
vkllm_status tok_bpe_encode(const tok_vocab *v, const uint8_t *text, size_t len, tok_scratch *s,
                            tok_out *out);
/* SentencePiece over one fragment; add_prefix puts the leading space in front. */
vkllm_status tok_spm_encode(const tok_vocab *v, const uint8_t *text, size_t len, bool add_prefix,
                            tok_scratch *s, tok_out *out);

/* ---- special tokens (tok_special.c) ---- */

/* A special id from the metadata key; an id past the vocab keeps the default, and a default
 * past the vocab becomes -1 (llama.cpp warns and does the same). */
void tok_get_id(const tok_vocab *v, const gguf_file *f, const char *key, int32_t *id);
/* Attributes by token text, and the end-of-generation set. Needs bos/eos/eot/eom set. */
void tok_detect_special(tok_vocab *v, const gguf_file *f);
/* spec_ids in matching order, spec_rank and the trie. False on allocation failure. */
bool tok_build_specials(tok_vocab *v);
/* Whitespace-stripping attributes llama.cpp sets by model name (Phi-3, jina, ...); after
 * tok_build_specials. */
void tok_name_attrs(tok_vocab *v, const gguf_file *f);
/* Where special tokens are cut out of t: mark (int32_t per byte, allocated only if a
 * special token occurs) gets id + 1 where one starts, -1 inside one or in whitespace it
 * strips, 0 in text; *any says whether any was cut. occ is scratch. False on allocation
 * failure. */
bool tok_find_specials(const tok_vocab *v, const uint8_t *t, size_t len, bool parse_special,
                       tok_buf *occ, tok_buf *mark, bool *any);

/* Binary heap of tok_bigram (tok_bpe.c). n is the number of entries in use. */
void tok_heap_push(tok_bigram *heap, size_t *n, tok_bigram e);
tok_bigram tok_heap_pop(tok_bigram *heap, size_t *n);

#endif
