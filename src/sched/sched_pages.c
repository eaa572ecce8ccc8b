/* The scheduler's pages (sched_int.h): reference counts, the free stack, and the prefix
 * cache: full pages keyed by a hash chain of their tokens and attention modes, verified token
 * by token, unused ones evicted least recently released first. */
#include "sched/sched_int.h"

#include <string.h>

/* ---- pages and the prefix cache ---- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Attention mode of token i of a request (sched.h: fixed by its place in the sequence). */
uint8_t sched_tok_mode(const sched *s, const sched_req *r, uint32_t i) {
    if (i >= r->n_prompt) return ENG_ATTN_SPLIT;
    const uint32_t C = s->d.n_batch, k0 = i / C * C;
    return (uint8_t)eng_attn_mode_for(r->n_prompt - k0 < C ? r->n_prompt - k0 : C);
}

void sched_req_set_lora(sched_req *r, const eng_lora_use *use, const uint64_t *ids, uint32_t n,
                        void (*release)(const eng_lora *l)) {
    r->n_lora = (uint8_t)n;
    r->lora_release = release;
    r->lora_root = 0;
    uint64_t h = 0x2545f4914f6cdd1dull;
    for (uint32_t j = 0; j < n; j++) {
        r->lora[j] = use[j];
        uint32_t bits;
        memcpy(&bits, &use[j].scale, sizeof bits);
        h = mix64(h ^ ids[j]);
        h = mix64(h ^ bits);
    }
    if (n) r->lora_root = h ? h : 1;
}

/* Key of page `pi` of a request: its parent's key, its tokens and their modes. Never 0. */
uint64_t sched_page_key(const sched *s, const sched_req *r, uint32_t pi, uint64_t parent) {
    uint64_t h = mix64(parent + 0x9e3779b97f4a7c15ull);
    for (uint32_t j = 0; j < ENG_PAGE; j++) {
        const uint32_t i = pi * ENG_PAGE + j;
        h = mix64(h ^ ((uint64_t)(uint32_t)r->toks[i] | (uint64_t)sched_tok_mode(s, r, i) << 32));
    }
    return h ? h : 1;
}

static bool page_matches(const sched *s, uint32_t p, const sched_req *r, uint32_t pi, uint64_t key,
                         uint64_t parent) {
    if (s->pkey[p] != key || s->pparent[p] != parent) return false;
    for (uint32_t j = 0; j < ENG_PAGE; j++) {
        const uint32_t i = pi * ENG_PAGE + j;
        if (s->ptok[(uint64_t)p * ENG_PAGE + j] != r->toks[i] ||
            s->pmode[(uint64_t)p * ENG_PAGE + j] != sched_tok_mode(s, r, i))
            return false;
    }
    return true;
}

uint32_t sched_cache_find(const sched *s, const sched_req *r, uint32_t pi, uint64_t key,
                          uint64_t parent) {
    for (uint32_t p = s->bucket[key & (s->n_buckets - 1)]; p != NO_PAGE; p = s->hnext[p])
        if (page_matches(s, p, r, pi, key, parent)) return p;
    return NO_PAGE;
}

void sched_cache_insert(sched *s, uint32_t p, const sched_req *r, uint32_t pi, uint64_t key,
                        uint64_t parent) {
    s->pkey[p] = key;
    s->pparent[p] = parent;
    for (uint32_t j = 0; j < ENG_PAGE; j++) {
        s->ptok[(uint64_t)p * ENG_PAGE + j] = r->toks[pi * ENG_PAGE + j];
        s->pmode[(uint64_t)p * ENG_PAGE + j] = sched_tok_mode(s, r, pi * ENG_PAGE + j);
    }
    uint32_t *b = &s->bucket[key & (s->n_buckets - 1)];
    s->hnext[p] = *b;
    *b = p;
}

static void cache_remove(sched *s, uint32_t p) {
    for (uint32_t *q = &s->bucket[s->pkey[p] & (s->n_buckets - 1)]; *q != NO_PAGE;
         q = &s->hnext[*q])
        if (*q == p) {
            *q = s->hnext[p];
            break;
        }
    s->pkey[p] = 0;
}

static void lru_unlink(sched *s, uint32_t p) {
    if (s->lru_prev[p] != NO_PAGE)
        s->lru_next[s->lru_prev[p]] = s->lru_next[p];
    else
        s->lru_head = s->lru_next[p];
    if (s->lru_next[p] != NO_PAGE)
        s->lru_prev[s->lru_next[p]] = s->lru_prev[p];
    else
        s->lru_tail = s->lru_prev[p];
    s->n_lru--;
}

static void lru_push(sched *s, uint32_t p) {
    s->lru_prev[p] = s->lru_tail;
    s->lru_next[p] = NO_PAGE;
    if (s->lru_tail != NO_PAGE)
        s->lru_next[s->lru_tail] = p;
    else
        s->lru_head = p;
    s->lru_tail = p;
    s->n_lru++;
}

/* A page for a sequence: a free one, else the least recently used cached one. */
uint32_t sched_page_alloc(sched *s) {
    uint32_t p = NO_PAGE;
    if (s->n_free) {
        p = s->free_stack[--s->n_free];
    } else if (s->lru_head != NO_PAGE) {
        p = s->lru_head;
        lru_unlink(s, p);
        cache_remove(s, p);
        s->st.pages_evicted++;
    }
    if (p != NO_PAGE) s->ref[p] = 1;
    return p;
}

void sched_page_take(sched *s, uint32_t p) {
    if (s->ref[p]++ == 0) lru_unlink(s, p); /* only cached pages are found with ref 0 */
}

static void page_release(sched *s, uint32_t p) {
    if (--s->ref[p]) return;
    if (s->pkey[p])
        lru_push(s, p);
    else
        s->free_stack[s->n_free++] = p;
}

void sched_req_release_pages(sched *s, sched_req *r) {
    for (uint32_t i = 0; i < r->n_pages; i++)
        page_release(s, r->pages[i]);
    r->n_pages = 0;
    r->n_keys = 0;
    r->n_done = 0;
    r->n_sched = 0;
}
