/* Byte-level BPE (tokenizer.ggml.model "gpt2") over one fragment of text, and the bigram heap
 * shared with the SentencePiece path.
 *
 * As in llama.cpp (llm_tokenizer_bpe_session): the fragment is decoded to code points (an
 * invalid byte becomes U+FFFD, whose UTF-8 is then what gets encoded), split into words by
 * the pre-tokenizer, and each word's bytes are mapped to GPT-2's printable characters. Each
 * character starts as a symbol; the adjacent pair with the lowest merge rank (leftmost on a
 * tie) is merged until no pair has a rank. A final symbol that is not a token is emitted as
 * the tokens of its single bytes, where such tokens exist.
 *
 * Symbols are string ids in the vocab's interned table, so a merge lookup is one hash probe on
 * two integers. Scratch comes from the caller's tok_scratch; nothing is allocated per word.
 */
#include "loader/tok_internal.h"
#include "loader/unicode.h"

#include <string.h>

static inline bool bigram_less(const tok_bigram *x, const tok_bigram *y) {
    return x->key < y->key || (x->key == y->key && x->left < y->left);
}

void tok_heap_push(tok_bigram *heap, size_t *n, tok_bigram e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_less(&e, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = e;
}

tok_bigram tok_heap_pop(tok_bigram *heap, size_t *n) {
    tok_bigram top = heap[0];
    tok_bigram last = heap[--(*n)];
    size_t i = 0, cnt = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && bigram_less(&heap[c + 1], &heap[c])) c++;
        if (!bigram_less(&heap[c], &last)) break;
        heap[i] = heap[c];
        i = c;
    }
    if (cnt > 0) heap[i] = last;
    return top;
}

static void try_bigram(const tok_vocab *v, const tok_symbol *sym, int32_t left, int32_t right,
                       tok_bigram *heap, size_t *nheap) {
    if (left < 0 || right < 0) return;
    uint32_t ls = sym[left].sid, rs = sym[right].sid;
    if (ls == TOK_NONE || rs == TOK_NONE) return;
    const tok_merge *m = tok_merge_find(v, ls, rs);
    if (!m) return;
    tok_bigram e = {(float)m->rank, left, right, ls, rs};
    tok_heap_push(heap, nheap, e);
}

/* Emits the tokens of one word: wb[0..nb) are the word's raw (re-encoded UTF-8) bytes. */
static void bpe_word(const tok_vocab *v, const uint8_t *wb, size_t nb, tok_symbol *sym,
                     tok_bigram *heap, uint8_t *enc, tok_out *out) {
    if (v->ignore_merges) {
        /* Llama 3: a word that is a token as a whole is taken as is. */
        size_t ne = 0;
        for (size_t i = 0; i < nb; i++) {
            memcpy(enc + ne, v->byte_enc[wb[i]], v->byte_enc_len[wb[i]]);
            ne += v->byte_enc_len[wb[i]];
        }
        int32_t id = tok_find_token(v, (const char *)enc, ne);
        if (id >= 0) {
            tok_out_push(out, id);
            return;
        }
    }
    for (size_t i = 0; i < nb; i++) {
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < nb ? (int32_t)i + 1 : -1;
        sym[i].start = (uint32_t)i;
        sym[i].n = 1;
        sym[i].sid = v->byte_sid[wb[i]];
    }
    size_t nheap = 0;
    for (size_t i = 1; i < nb; i++)
        try_bigram(v, sym, (int32_t)i - 1, (int32_t)i, heap, &nheap);

    while (nheap > 0) {
        tok_bigram e = tok_heap_pop(heap, &nheap);
        tok_symbol *l = &sym[e.left], *r = &sym[e.right];
        /* A queued pair is stale once either side has changed: a symbol only ever grows, and
         * its string id changes with it. */
        if (l->n == 0 || r->n == 0 || l->sid != e.a || r->sid != e.b) continue;
        const tok_merge *m = tok_merge_find(v, e.a, e.b);
        l->sid = m->result;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = e.left;
        try_bigram(v, sym, l->prev, e.left, heap, &nheap);
        try_bigram(v, sym, e.left, l->next, heap, &nheap);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const tok_symbol *s = &sym[i];
        int32_t id = s->sid == TOK_NONE ? -1 : v->strs[s->sid].token;
        if (id >= 0) {
            tok_out_push(out, id);
            continue;
        }
        /* Not a token: llama.cpp looks up every byte of the encoded text as a one-byte
         * token and drops the bytes that are none. */
        for (uint32_t k = s->start; k < s->start + s->n; k++) {
            for (uint8_t j = 0; j < v->byte_enc_len[wb[k]]; j++) {
                int32_t b = v->single_byte_token[v->byte_enc[wb[k]][j]];
                if (b >= 0) tok_out_push(out, b);
            }
        }
    }
}

vkllm_status tok_bpe_encode(const tok_vocab *v, const uint8_t *text, size_t len, tok_scratch *s,
                            tok_out *out) {
    if (!tok_buf_reserve(v, &s->cpts, len * sizeof(uint32_t)) ||
        !tok_buf_reserve(v, &s->bnd, len + 1)) {
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    uint32_t *cpts = s->cpts.p;
    uint8_t *bnd = s->bnd.p;
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t adv;
        cpts[n++] = uni_decode(text + off, len - off, &adv);
        off += adv;
    }
    memset(bnd, 0, n + 1);
    tok_pretokenize(v->pre, cpts, n, bnd);

    size_t a = 0;
    while (a < n) {
        size_t b = a + 1;
        while (!bnd[b])
            b++;
        /* Word bytes (<= 4 per code point), then the same again x2 for the GPT-2 encoding
         * (each byte becomes at most two), one symbol per byte, and at most three queued
         * pairs per byte (one initial pair, two per merge). */
        size_t max_bytes = (b - a) * 4;
        if (!tok_buf_reserve(v, &s->word, max_bytes * 3) ||
            !tok_buf_reserve(v, &s->sym, max_bytes * sizeof(tok_symbol)) ||
            !tok_buf_reserve(v, &s->heap, max_bytes * 3 * sizeof(tok_bigram))) {
            return VKLLM_ERR_OUT_OF_MEMORY;
        }
        uint8_t *wb = s->word.p;
        size_t nb = 0;
        for (size_t i = a; i < b; i++)
            nb += uni_encode(cpts[i], wb + nb);
        bpe_word(v, wb, nb, s->sym.p, s->heap.p, wb + max_bytes, out);
        a = b;
    }
    return VKLLM_OK;
}
