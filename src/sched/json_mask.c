/* The token mask of a schema's automaton. The vocabulary's pieces are sorted bytewise once;
 * a walk over them keeps the automaton's state after each prefix of the current piece, so a
 * piece that shares its first L bytes with the one before starts from the state after those
 * L bytes, and a piece whose shared prefix holds a rejected byte is skipped without feeding a
 * byte: the cost is the number of distinct accepted prefixes, not the vocabulary's bytes.
 * Control and end-of-generation tokens, and tokens with no bytes, are never in the table:
 * the EOG ids are allowed exactly when the document can end. */
#include "loader/tokenizer.h"
#include "sched/json_schema.h"

#include <stdlib.h>
#include <string.h>

#define PIECE_MAX 512 /* longer pieces are never allowed (no vocabulary has them) */

struct jsc_vocab {
    const vkllm_allocator *alloc;
    uint32_t n_vocab, n; /* tokens in the table */
    int32_t *ids;        /* sorted by their bytes */
    uint32_t *off;       /* n + 1 offsets into bytes */
    uint16_t *lcp;       /* bytes shared with the piece before */
    uint8_t *bytes;
    uint32_t max_len;
    uint32_t *piece_of; /* id -> index in the table, or UINT32_MAX */
    uint8_t *plain;     /* the piece is printable ASCII without '"' and '\\' */
    const int32_t *eog;
    uint32_t n_eog;
};

struct jsc_run {
    const vkllm_allocator *alloc;
    const jsc_vocab *v;
    jsc_schema *sc;
    jsc_state st;
    jsc_state *path; /* max_len + 1 states: after each prefix of the current piece */
    uint8_t *allow;
};

typedef struct sort_ent {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
} sort_ent;

static int ent_cmp(const void *x, const void *y) {
    const sort_ent *a = x, *b = y;
    const uint32_t n = a->len < b->len ? a->len : b->len;
    const int c = memcmp(a->p, b->p, n);
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

vkllm_status jsc_vocab_build(const vkllm_allocator *a, const tok_vocab *tv, jsc_vocab **out) {
    *out = NULL;
    const uint32_t nv = tok_n_vocab(tv);
    jsc_vocab *v = core_calloc(a, 1, sizeof *v);
    if (!v) return VKLLM_ERR_OUT_OF_MEMORY;
    v->alloc = a;
    v->n_vocab = nv;
    v->eog = tok_eog_ids(tv, &v->n_eog);
    char buf[PIECE_MAX];
    size_t total = 0;
    for (uint32_t i = 0; i < nv; i++) {
        const size_t n = tok_piece(tv, (int32_t)i, false, buf, sizeof buf);
        if (n && n <= PIECE_MAX && !tok_is_control(tv, (int32_t)i) && !tok_is_eog(tv, (int32_t)i))
            total += n, v->n++;
    }
    sort_ent *e = core_calloc(a, v->n ? v->n : 1, sizeof *e);
    v->ids = core_calloc(a, v->n ? v->n : 1, sizeof *v->ids);
    v->off = core_calloc(a, (size_t)v->n + 1, sizeof *v->off);
    v->lcp = core_calloc(a, v->n ? v->n : 1, sizeof *v->lcp);
    v->bytes = core_alloc(a, total ? total : 1, 0);
    uint8_t *tmp = core_alloc(a, total ? total : 1, 0);
    v->piece_of = core_calloc(a, nv ? nv : 1, sizeof *v->piece_of);
    v->plain = core_calloc(a, v->n ? v->n : 1, 1);
    if (!v->plain || !e || !v->ids || !v->off || !v->lcp || !v->bytes || !tmp || !v->piece_of) {
        core_free(a, e);
        core_free(a, tmp);
        jsc_vocab_free(v);
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    size_t at = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < nv; i++) {
        v->piece_of[i] = UINT32_MAX;
        const size_t n = tok_piece(tv, (int32_t)i, false, buf, sizeof buf);
        if (!n || n > PIECE_MAX || tok_is_control(tv, (int32_t)i) || tok_is_eog(tv, (int32_t)i))
            continue;
        memcpy(tmp + at, buf, n);
        e[k++] = (sort_ent){tmp + at, (uint32_t)n, (int32_t)i};
        at += n;
    }
    qsort(e, v->n, sizeof *e, ent_cmp);
    at = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        v->ids[i] = e[i].id;
        v->piece_of[e[i].id] = i;
        v->off[i] = (uint32_t)at;
        memcpy(v->bytes + at, e[i].p, e[i].len);
        at += e[i].len;
        if (e[i].len > v->max_len) v->max_len = e[i].len;
        v->plain[i] = 1;
        for (uint32_t b = 0; b < e[i].len; b++)
            if (e[i].p[b] < 0x20 || e[i].p[b] > 0x7e || e[i].p[b] == '"' || e[i].p[b] == '\\')
                v->plain[i] = 0;
        uint32_t l = 0;
        if (i)
            while (l < e[i].len && l < e[i - 1].len && e[i].p[l] == e[i - 1].p[l])
                l++;
        v->lcp[i] = (uint16_t)l;
    }
    v->off[v->n] = (uint32_t)at;
    core_free(a, e);
    core_free(a, tmp);
    *out = v;
    return VKLLM_OK;
}

void jsc_vocab_free(jsc_vocab *v) {
    if (!v) return;
    const vkllm_allocator *a = v->alloc;
    core_free(a, v->ids);
    core_free(a, v->off);
    core_free(a, v->lcp);
    core_free(a, v->bytes);
    core_free(a, v->piece_of);
    core_free(a, v->plain);
    core_free(a, v);
}

vkllm_status jsc_run_create(const vkllm_allocator *a, const jsc_vocab *v, jsc_schema *sc,
                            jsc_run **out) {
    *out = NULL;
    jsc_run *r = core_calloc(a, 1, sizeof *r);
    if (r) {
        r->path = core_calloc(a, (size_t)v->max_len + 1, sizeof *r->path);
        r->allow = core_calloc(a, v->n_vocab ? v->n_vocab : 1, 1);
    }
    if (!r || !r->path || !r->allow) {
        if (r) core_free(a, r->path), core_free(a, r->allow), core_free(a, r);
        jsc_free(sc);
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    r->alloc = a;
    r->v = v;
    r->sc = sc;
    jsc_init(sc, &r->st);
    *out = r;
    return VKLLM_OK;
}

void jsc_run_free(jsc_run *r) {
    if (!r) return;
    jsc_free(r->sc);
    core_free(r->alloc, r->path);
    core_free(r->alloc, r->allow);
    core_free(r->alloc, r);
}

uint8_t *jsc_run_allow_buf(jsc_run *r) {
    return r->allow;
}

static bool is_eog(const jsc_vocab *v, int32_t tok) {
    for (uint32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == tok) return true;
    return false;
}

uint32_t jsc_run_mask(jsc_run *r, uint8_t *allow) {
    const jsc_vocab *v = r->v;
    const jsc_schema *sc = r->sc;
    memset(allow, 0, v->n_vocab);
    uint32_t count = 0;
    if (jsc_can_end(sc, &r->st))
        for (uint32_t i = 0; i < v->n_eog; i++)
            if (v->eog[i] >= 0 && (uint32_t)v->eog[i] < v->n_vocab) allow[v->eog[i]] = 1, count++;
    if (jsc_done(&r->st)) return count;
    jsc_state *path = r->path;
    jsc_copy(&path[0], &r->st);
    /* inside a string, printable ASCII pieces that fit its maxLength need no walk: most of
     * the vocabulary */
    uint32_t plain_room = 0;
    const jsc_frame *top = &r->st.f[r->st.depth - 1];
    if (jsc_in_string_body(sc, top, &plain_room) == false) plain_room = 0;
    /* path[0 .. valid] hold the states after the prefixes of the last piece walked; the
     * piece before failed at its byte fail (UINT32_MAX: it did not) */
    uint32_t valid = 0, fail = UINT32_MAX;
    for (uint32_t i = 0; i < v->n; i++) {
        const uint32_t l = v->lcp[i];
        if (l > fail) continue; /* it shares the byte the piece before failed at */
        const uint8_t *p = v->bytes + v->off[i];
        const uint32_t len = v->off[i + 1] - v->off[i];
        if (v->plain[i] && len <= plain_room) {
            allow[v->ids[i]] = 1;
            count++;
            fail = UINT32_MAX;
            if (valid > l) valid = l; /* path[0 .. l] still hold: this piece starts with them */
            continue;
        }
        uint32_t k = l < valid ? l : valid;
        for (; k < len; k++) {
            jsc_copy(&path[k + 1], &path[k]);
            if (!jsc_feed(sc, &path[k + 1], p[k])) break;
        }
        if (k < len) {
            valid = fail = k;
            continue;
        }
        valid = len;
        fail = UINT32_MAX;
        allow[v->ids[i]] = 1;
        count++;
    }
    return count;
}

bool jsc_run_allows(const jsc_run *r, int32_t tok) {
    const jsc_vocab *v = r->v;
    if (tok < 0 || (uint32_t)tok >= v->n_vocab) return false;
    if (is_eog(v, tok)) return jsc_can_end(r->sc, &r->st);
    const uint32_t i = v->piece_of[tok];
    if (i == UINT32_MAX) return false;
    jsc_state *s = &r->path[0];
    jsc_copy(s, &r->st);
    return jsc_feed_bytes(r->sc, s, v->bytes + v->off[i], v->off[i + 1] - v->off[i]);
}

void jsc_run_accept(jsc_run *r, int32_t tok) {
    const jsc_vocab *v = r->v;
    if (tok < 0 || (uint32_t)tok >= v->n_vocab || v->piece_of[tok] == UINT32_MAX) return;
    const uint32_t i = v->piece_of[tok];
    jsc_state s;
    jsc_copy(&s, &r->st);
    /* a token the mask did not allow (a caller that sampled without it) leaves the state */
    if (jsc_feed_bytes(r->sc, &s, v->bytes + v->off[i], v->off[i + 1] - v->off[i]))
        jsc_copy(&r->st, &s);
}

bool jsc_run_done(const jsc_run *r) {
    return jsc_done(&r->st);
}
