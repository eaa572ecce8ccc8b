/* SentencePiece-style BPE (tokenizer.ggml.model "llama") over one fragment of text.
 *
 * As in llama.cpp (llm_tokenizer_spm_session): spaces become U+2581 ("▁"), a space is put in
 * front when the vocab adds a space prefix and the fragment starts the text or follows a
 * special token, and the text is cut into UTF-8 characters by their lead byte alone (invalid
 * bytes are one-byte symbols). Adjacent symbols whose concatenation is a token are merged,
 * highest token score first (leftmost on a tie). A final symbol that is no token is emitted
 * byte by byte as the <0xXX> byte tokens.
 *
 * A merged symbol is always a token (a pair is only queued if its text is one), so unlike
 * llama.cpp no record of how symbols were merged is kept: only never-merged single
 * characters can fall back to bytes.
 */
#include "loader/tok_internal.h"
#include "loader/unicode.h"

#include <string.h>

static void try_bigram(const tok_vocab *v, const uint8_t *t, const tok_symbol *sym, int32_t left,
                       int32_t right, tok_bigram *heap, size_t *nheap) {
    if (left < 0 || right < 0) return;
    /* Symbols are adjacent in t, so their concatenation is a slice of it. */
    uint32_t size = sym[left].n + sym[right].n;
    int32_t id = tok_find_token(v, (const char *)t + sym[left].start, size);
    if (id < 0) return;
    /* Highest score first: the heap pops the smallest key. */
    tok_bigram e = {-v->scores[id], left, right, size, 0};
    tok_heap_push(heap, nheap, e);
}

vkllm_status tok_spm_encode(const tok_vocab *v, const uint8_t *text, size_t len, bool add_prefix,
                            tok_scratch *s, tok_out *out) {
    /* Escaped text: every byte may become the 3 bytes of U+2581. */
    size_t max = (len + 1) * 3;
    if (!tok_buf_reserve(v, &s->word, max) ||
        !tok_buf_reserve(v, &s->sym, max * sizeof(tok_symbol)) ||
        !tok_buf_reserve(v, &s->heap, max * 3 * sizeof(tok_bigram))) {
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    static const uint8_t lower_one_eighth_block[3] = {0xE2, 0x96, 0x81}; /* U+2581 */
    uint8_t *t = s->word.p;
    size_t n = 0;
    if (add_prefix) {
        memcpy(t, lower_one_eighth_block, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(t + n, lower_one_eighth_block, 3);
            n += 3;
        } else {
            t[n++] = text[i];
        }
    }
    if (n == 0) return VKLLM_OK;

    tok_symbol *sym = s->sym.p;
    int32_t nsym = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = uni_utf8_len(t[off]);
        if (cl > n - off) cl = n - off;
        sym[nsym] = (tok_symbol){nsym - 1, -1, (uint32_t)off, (uint32_t)cl, TOK_NONE};
        off += cl;
        if (off < n) sym[nsym].next = nsym + 1;
        nsym++;
    }

    tok_bigram *heap = s->heap.p;
    size_t nheap = 0;
    for (int32_t i = 1; i < nsym; i++)
        try_bigram(v, t, sym, i - 1, i, heap, &nheap);

    while (nheap > 0) {
        tok_bigram e = tok_heap_pop(heap, &nheap);
        tok_symbol *l = &sym[e.left], *r = &sym[e.right];
        /* Stale if either side was merged since: llama.cpp's test, by sizes. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != e.a) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = e.left;
        try_bigram(v, t, sym, l->prev, e.left, heap, &nheap);
        try_bigram(v, t, sym, e.left, l->next, heap, &nheap);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = tok_find_token(v, (const char *)t + sym[i].start, sym[i].n);
        if (id >= 0) {
            tok_out_push(out, id);
            continue;
        }
        for (uint32_t k = sym[i].start; k < sym[i].start + sym[i].n; k++) {
            int32_t b = v->byte_token[t[k]];
            /* llama.cpp aborts when a byte has no token; the unknown token is the nearest
             * thing to a sensible answer, and nothing at all when there is none. */
            if (b < 0) b = v->unk;
            if (b >= 0) tok_out_push(out, b);
        }
    }
    return VKLLM_OK;
}
