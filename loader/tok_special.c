/* Special tokens: which tokens are control / end-of-generation (found at load time, by the
 * rules of llama.cpp's llama_vocab::impl::load), and cutting their text out of the input
 * before the tokenizer proper runs (llama.cpp's tokenizer_st_partition).
 *
 * The rules are many small facts about real vocabularies ("<|im_end|>" ends a turn, a control
 * token named "unused" is a placeholder, ...); each is kept as llama.cpp has it because each
 * changes which ids come out or when generation stops.
 */
#include "loader/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* A special id from the metadata; an id past the vocab keeps the default (llama.cpp warns). */
void tok_get_id(const tok_vocab *v, const gguf_file *f, const char *key, int32_t *id) {
    if (*id >= 0 && (uint32_t)*id >= v->n_tokens) *id = -1;
    uint32_t u;
    if (gguf_get_u32(f, key, &u) && u < v->n_tokens) *id = (int32_t)u;
}

static bool text_is(const tok_vocab *v, uint32_t id, const char *s) {
    size_t n = strlen(s);
    return v->strs[id].len == n && memcmp(tok_str_ptr(v, id), s, n) == 0;
}

static bool text_in(const tok_vocab *v, uint32_t id, const char *const *list) {
    for (; *list; list++) {
        if (text_is(v, id, *list)) return true;
    }
    return false;
}

/* Special ids that llama.cpp finds by text when the metadata does not give them. */
enum { FIM_PRE, FIM_SUF, FIM_MID, FIM_PAD, FIM_REP, FIM_SEP, N_FIM };

static const char *const eot_texts[] = {
    "<|eot_id|>",         "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",    "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>", NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_texts[N_FIM][9] = {
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
     "<|code_prefix|>", "<|prefix|>", NULL},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
     "<|code_suffix|>", "<|suffix|>", NULL},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
     "<|code_middle|>", "<|middle|>", NULL},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL},
    {"<|file_sep|>", NULL},
};
/* clang-format off */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[", NULL};
/* clang-format on */
static const char *const always_render_texts[] = {"<|channel|>", "<|message|>", "<|start|>",
                                                  "<|constrain|>", NULL};

/* Attributes and the end-of-generation set, in llama.cpp's order of rules. It walks a hash
 * map, so where several tokens qualify for one role its pick is arbitrary; we take the
 * lowest id. Only the id that owns a text (the last with it) is considered, as there. */
void tok_detect_special(tok_vocab *v, const gguf_file *f) {
    int32_t fim[N_FIM];
    static const char *const fim_keys[N_FIM] = {
        "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
        "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.fim_pad_token_id",
        "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id"};
    static const char *const old_keys[3] = {"tokenizer.ggml.prefix_token_id",
                                            "tokenizer.ggml.suffix_token_id",
                                            "tokenizer.ggml.middle_token_id"};
    for (int k = 0; k < N_FIM; k++) {
        fim[k] = -1;
        tok_get_id(v, f, fim_keys[k], &fim[k]);
        if (k < 3) tok_get_id(v, f, old_keys[k], &fim[k]);
    }
    const uint32_t n = v->n_tokens;
    for (uint32_t i = 0; i < n; i++) {
        if (v->strs[i].token != (int32_t)i) continue;
        bool hit = false;
        if (v->eot < 0 && text_in(v, i, eot_texts)) v->eot = (int32_t)i, hit = true;
        if (v->eom < 0 && text_in(v, i, eom_texts)) v->eom = (int32_t)i, hit = true;
        for (int k = 0; k < N_FIM; k++) {
            if (fim[k] < 0 && text_in(v, i, fim_texts[k])) fim[k] = (int32_t)i, hit = true;
        }
        if (hit) v->attr[i] |= TOK_ATTR_CONTROL;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (v->strs[i].token != (int32_t)i) continue;
        /* Control tokens named "unused" are placeholders. */
        if ((v->attr[i] & TOK_ATTR_CONTROL) &&
            memmem(tok_str_ptr(v, i), v->strs[i].len, "unused", 6)) {
            v->attr[i] |= TOK_ATTR_UNUSED;
        }
    }
    for (int k = FIM_PAD; k <= FIM_SEP; k++) {
        if (fim[k] >= 0) v->is_eog[fim[k]] = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (v->strs[i].token != (int32_t)i) continue;
        if (text_in(v, i, eog_texts)) {
            v->is_eog[i] = 1;
            v->attr[i] |= TOK_ATTR_CONTROL;
        }
        if (text_in(v, i, always_render_texts)) v->attr[i] = TOK_ATTR_USER_DEFINED;
    }
    if (v->eos >= 0) v->is_eog[v->eos] = 1;
    if (v->eot >= 0) v->is_eog[v->eot] = 1;
    if (v->eom >= 0) v->is_eog[v->eom] = 1;

    /* gpt-oss / solar-open: with <|return|> and <|call|>, or <|calls|> and <|flush|>,
     * <|end|> ends a message but not the generation. Gemma 4 / PLaMo: </s> is ordinary. */
    int32_t end_id = -1, s_id = -1;
    bool has_return = false, has_call = false, has_flush = false, has_marker = false;
    for (uint32_t i = 0; i < n; i++) {
        if (!v->is_eog[i]) continue;
        if (text_is(v, i, "<|return|>"))
            has_return = true;
        else if (text_is(v, i, "<|call|>") || text_is(v, i, "<|calls|>"))
            has_call = true;
        else if (text_is(v, i, "<|flush|>"))
            has_flush = true;
        else if (text_is(v, i, "<|end|>"))
            end_id = (int32_t)i;
        if (text_is(v, i, "<|tool_response>") || text_is(v, i, "<|plamo:eos|>"))
            has_marker = true;
        else if (text_is(v, i, "</s>"))
            s_id = (int32_t)i;
    }
    if (end_id >= 0 && has_call && (has_return || has_flush)) {
        v->is_eog[end_id] = 0;
        v->attr[end_id] = TOK_ATTR_USER_DEFINED;
    }
    if (has_marker && s_id >= 0) {
        v->is_eog[s_id] = 0;
        v->attr[s_id] = TOK_ATTR_NORMAL;
    }
}

static int cmp_u64(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

/* The special tokens in matching order, and a byte trie over their texts. */
bool tok_build_specials(tok_vocab *v) {
    /* the end-of-generation set as a list, for samplers that ban it (ignore_eog) */
    v->n_eog = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        v->n_eog += v->is_eog[i] != 0;
    v->eog_ids = core_alloc(v->alloc, ((size_t)v->n_eog + 1) * sizeof *v->eog_ids, 0);
    if (!v->eog_ids) return false;
    for (uint32_t i = 0, k = 0; i < v->n_tokens; i++)
        if (v->is_eog[i]) v->eog_ids[k++] = (int32_t)i;
    v->spec_ids = core_alloc(v->alloc, (size_t)v->n_tokens * sizeof *v->spec_ids, 0);
    if (!v->spec_ids) return false;
    size_t trie_bytes = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        v->spec_rank[i] = -1;
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) {
            v->spec_ids[v->n_spec++] = (int32_t)i;
            trie_bytes += v->strs[i].len;
        }
    }
    /* Longest first, then by id. llama.cpp sorts by length only (std::sort, not stable);
     * different texts of one length can only interact where their occurrences overlap.
     * Sorted as keys (inverted length << 32 | id) to need no comparison context. */
    uint64_t *keys = core_alloc(v->alloc, (size_t)v->n_spec * sizeof *keys + 8, 0);
    if (!keys) return false;
    for (uint32_t r = 0; r < v->n_spec; r++) {
        uint32_t id = (uint32_t)v->spec_ids[r];
        keys[r] = (uint64_t)(UINT32_MAX - v->strs[id].len) << 32 | id;
    }
    qsort(keys, v->n_spec, sizeof *keys, cmp_u64);
    for (uint32_t r = 0; r < v->n_spec; r++)
        v->spec_ids[r] = (int32_t)(uint32_t)keys[r];
    core_free(v->alloc, keys);
    for (uint32_t r = 0; r < v->n_spec; r++)
        v->spec_rank[v->spec_ids[r]] = (int32_t)r;

    for (int c = 0; c < 256; c++)
        v->root_child[c] = -1;
    if (trie_bytes == 0) return true;
    if (trie_bytes > INT32_MAX / 2) return false;
    v->trie = core_alloc(v->alloc, trie_bytes * sizeof *v->trie, 0);
    if (!v->trie) return false;
    /* Insert in reverse matching order so that for a text shared by several ids (possible
     * only for shadowed duplicates) the first in matching order ends up in the node. */
    for (uint32_t r = v->n_spec; r-- > 0;) {
        int32_t id = v->spec_ids[r];
        const uint8_t *t = (const uint8_t *)tok_str_ptr(v, (uint32_t)id);
        uint32_t len = v->strs[id].len;
        int32_t node = -1;
        for (uint32_t k = 0; k < len; k++) {
            int32_t *link = node < 0 ? &v->root_child[t[k]] : &v->trie[node].first_child;
            int32_t child = *link;
            if (node >= 0) {
                while (child >= 0 && v->trie[child].byte != t[k])
                    child = v->trie[child].next_sibling;
            }
            if (child < 0) {
                child = (int32_t)v->n_trie++;
                v->trie[child] = (tok_trie_node){-1, node < 0 ? -1 : *link, -1, t[k]};
                *link = child;
            }
            node = child;
        }
        v->trie[node].token = id;
    }
    return true;
}

static bool contains(const char *s, size_t n, const char *needle) {
    return n >= strlen(needle) && memmem(s, n, needle, strlen(needle)) != NULL;
}

static void set_attr_by_text(tok_vocab *v, const char *text, uint16_t bit, bool on) {
    int32_t id = tok_find_token(v, text, strlen(text));
    if (id < 0) return; /* llama.cpp would throw; nothing to set */
    v->attr[id] = on ? (uint16_t)(v->attr[id] | bit) : (uint16_t)(v->attr[id] & ~bit);
}

void tok_name_attrs(tok_vocab *v, const gguf_file *f) {
    gguf_str pre = {"", 0}, arch = {"", 0}, name = {"", 0};
    gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    gguf_get_str(f, "general.architecture", &arch);
    gguf_get_str(f, "general.name", &name);
    char lower[256];
    size_t ln = name.len < sizeof lower ? (size_t)name.len : sizeof lower;
    for (size_t i = 0; i < ln; i++) {
        char c = name.ptr[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    const char *ps = pre.ptr, *as = arch.ptr;
    size_t pn = (size_t)pre.len, an = (size_t)arch.len;
    if (contains(ps, pn, "jina-v2-de") || contains(ps, pn, "jina-v2-es") ||
        contains(ps, pn, "jina-v2-code") || contains(as, an, "nomic-bert-moe") ||
        contains(as, an, "jina-bert-v3")) {
        set_attr_by_text(v, "<mask>", TOK_ATTR_LSTRIP, true);
    } else if (contains(lower, ln, "phi-3") || contains(lower, ln, "phi3")) {
        /* Phi-3's chat markers eat the whitespace after them. */
        for (uint32_t r = 0; r < v->n_spec; r++)
            v->attr[v->spec_ids[r]] |= TOK_ATTR_RSTRIP;
        set_attr_by_text(v, "</s>", TOK_ATTR_RSTRIP, true);
        set_attr_by_text(v, "<unk>", TOK_ATTR_RSTRIP, false);
        set_attr_by_text(v, "<s>", TOK_ATTR_RSTRIP, false);
        set_attr_by_text(v, "<|endoftext|>", TOK_ATTR_RSTRIP, false);
    } else if (contains(lower, ln, "modern-bert")) {
        set_attr_by_text(v, "[MASK]", TOK_ATTR_LSTRIP, true);
    }
}

static bool is_c_space(uint8_t c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

typedef struct occurrence {
    uint32_t rank, pos; /* sort key: matching order of the token, then position */
} occurrence;

static int cmp_occurrence(const void *pa, const void *pb) {
    const occurrence *a = pa, *b = pb;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static inline bool special_enabled(const tok_vocab *v, int32_t id, bool parse_special) {
    /* Without parse_special only user-defined tokens are cut out (llama.cpp, after
     * Hugging Face tokenizers: added tokens are pre-tokenized before everything else). */
    return parse_special || !(v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN));
}

/* Finds where special tokens are cut out of the text, with llama.cpp's result
 * (tokenizer_st_partition): tokens in matching order, each taking its leftmost
 * non-overlapping occurrences that lie wholly in text no earlier token took. One pass over
 * the text with the trie collects every occurrence; sorting them by (matching order,
 * position) then replays llama.cpp's token-by-token passes without rescanning the text. */
bool tok_find_specials(const tok_vocab *v, const uint8_t *t, size_t len, bool parse_special,
                       tok_buf *occ_buf, tok_buf *mark_buf, bool *any) {
    size_t n_occ = 0;
    *any = false;
    for (size_t i = 0; i < len; i++) {
        int32_t node = v->root_child[t[i]];
        for (size_t j = i; node >= 0;) {
            int32_t id = v->trie[node].token;
            if (id >= 0 && special_enabled(v, id, parse_special)) {
                if (!tok_buf_reserve(v, occ_buf, (n_occ + 1) * sizeof(occurrence))) return false;
                ((occurrence *)occ_buf->p)[n_occ++] =
                    (occurrence){(uint32_t)v->spec_rank[id], (uint32_t)i};
            }
            if (++j >= len) break;
            node = v->trie[node].first_child;
            while (node >= 0 && v->trie[node].byte != t[j])
                node = v->trie[node].next_sibling;
        }
    }
    if (n_occ == 0) return true;
    if (!tok_buf_reserve(v, mark_buf, len * sizeof(int32_t))) return false;
    int32_t *mark = mark_buf->p;
    occurrence *occ = occ_buf->p;
    qsort(occ, n_occ, sizeof *occ, cmp_occurrence);
    memset(mark, 0, len * sizeof *mark);
    size_t last_end = 0;
    uint32_t cur_rank = UINT32_MAX;
    for (size_t k = 0; k < n_occ; k++) {
        if (occ[k].rank != cur_rank) {
            cur_rank = occ[k].rank;
            last_end = 0;
        }
        int32_t id = v->spec_ids[occ[k].rank];
        size_t p = occ[k].pos, n = v->strs[id].len;
        if (p < last_end) continue;
        bool free_run = true;
        for (size_t q = p; q < p + n && free_run; q++)
            free_run = mark[q] == 0;
        if (!free_run) continue;
        mark[p] = id + 1;
        for (size_t q = p + 1; q < p + n; q++)
            mark[q] = -1;
        last_end = p + n;
        /* Whitespace next to a stripping token goes with it, within the free text. */
        if (v->attr[id] & TOK_ATTR_LSTRIP) {
            for (size_t q = p; q > 0 && mark[q - 1] == 0 && is_c_space(t[q - 1]); q--) {
                mark[q - 1] = -1;
            }
        }
        if (v->attr[id] & TOK_ATTR_RSTRIP) {
            while (last_end < len && mark[last_end] == 0 && is_c_space(t[last_end])) {
                mark[last_end++] = -1;
            }
        }
        *any = true;
    }
    return true;
}
