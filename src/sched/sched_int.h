/* The scheduler's internals, shared by sched.c (requests, planning, commit, driving) and
 * sched_pages.c (the page allocator and the prefix cache). Nothing else includes it. */
#ifndef VKLLM_SCHED_INT_H
#define VKLLM_SCHED_INT_H

#include "sched/sched.h"

#define NO_PAGE UINT32_MAX

/* A planned step: its batch, and per entry its request (NULL once the request ended while the
 * step was in flight: that entry's result is dropped). */
typedef struct sched_step {
    eng_batch batch;
    int32_t *tokens;
    eng_seq *seqs;
    sched_req **req;
    int32_t *cand_ids;
    float *cand_vals;
    eng_lora_use *lora; /* ENG_LORA_MAX_PER_SEQ per entry: its adapters (eng_seq.lora) */
} sched_step;

struct sched {
    sched_desc d;
    const vkllm_allocator *a;
    eng_ctx *ctx;
    uint32_t pages_per_seq, max_entries;
    /* pages: reference counts, the free stack, and for the prefix cache per page its key
     * (0: not in the cache), its parent's key, its tokens and modes, hash chains, and the LRU
     * list of cached pages nobody uses (head: least recently released) */
    uint32_t *ref, *free_stack, n_free;
    uint64_t *pkey, *pparent;
    int32_t *ptok;
    uint8_t *pmode;
    uint32_t *bucket, n_buckets, *hnext;
    uint32_t *lru_prev, *lru_next, lru_head, lru_tail, n_lru;
    /* requests */
    sched_req *wait_head, *wait_tail;
    sched_req **run;
    uint32_t n_run;
    uint64_t admit_counter;
    sched_req *finished;
    /* the steps: n_flight of them in flight, step[head] the oldest */
    sched_step step[2];
    uint32_t head, n_flight;
    sched_step *to_commit; /* done on the device, waiting for sched_commit */
    float *logits;         /* full logits of a step with top_k 0 (never one that overlaps) */
    bool ctx_bans;         /* EOG ids left out of eng_seq.ban entries' candidates */
    vkllm_engine_stats st;
};

/* sched_pages.c */
uint8_t sched_tok_mode(const sched *s, const sched_req *r, uint32_t i);
uint64_t sched_page_key(const sched *s, const sched_req *r, uint32_t pi, uint64_t parent);
uint32_t sched_cache_find(const sched *s, const sched_req *r, uint32_t pi, uint64_t key,
                          uint64_t parent);
void sched_cache_insert(sched *s, uint32_t p, const sched_req *r, uint32_t pi, uint64_t key,
                        uint64_t parent);
uint32_t sched_page_alloc(sched *s);
void sched_page_take(sched *s, uint32_t p);
void sched_req_release_pages(sched *s, sched_req *r);

#endif
