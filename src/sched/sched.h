/* The scheduler: requests, continuous batching over a paged KV cache, the prefix cache and
 * preemption. One sched runs one model's requests on one backend context; it is driven from
 * one thread at a time (the engine thread or the host's vkllm_step), and only submissions and
 * cancels cross threads (src/api_engine.c holds the lock for those). sched_req_create only
 * reads what sched_create set, so any thread may call it.
 *
 * A step is planned, started (backend begin), advanced until done (backend advance, possibly
 * over several vkllm_step calls), then committed: each sequence with an output samples its
 * next token, full pages enter the prefix cache, finished requests leave.
 *
 * Overlap (double-buffered submission): while a step whose every entry is a greedy output
 * runs, and nothing else waits for a place, the next step is planned and submitted too: one
 * entry per sequence at its next position, whose token the device copies from the running
 * step's argmax (eng_seq.feed). The host's commit of step N then overlaps the device's step
 * N + 1. The tokens are the serial scheduler's: the fed token is the one the host samples (a
 * greedy sampler takes the argmax; with ignore_eog, the argmax of the ids that are not EOG,
 * which the backend selects: eng_seq.ban), and a token's arithmetic never depends on what
 * shares its step. A sequence that ends at the commit before leaves a wasted entry behind (its
 * result is dropped; its KV write lands on its own released page before any later step
 * runs).
 *
 * Exactness: a token's attention arithmetic is fixed by its own place in its sequence, never
 * by what shares the step (engine.h, eng_attn_mode): prompt tokens use the mode of the
 * n_batch-sized chunk from position 0 that holds them (as vkllm_generate chunks a prompt),
 * generated tokens the single-token mode. A request's tokens are therefore the same alone,
 * batched, after a prefix-cache hit (page keys include the modes) and after a preemption
 * (recomputed generated tokens keep the single-token mode).
 */
#ifndef VKLLM_SCHED_SCHED_H
#define VKLLM_SCHED_SCHED_H

#include "core/common.h"
#include "engine/engine.h"
#include "engine/lora.h"
#include "loader/tokenizer.h"
#include "sched/sampler.h"

#include <stdatomic.h>

typedef enum sched_state { SR_QUEUED, SR_WAITING, SR_RUNNING, SR_DONE } sched_state;

/* The object behind a vkllm_request handle. */
typedef struct vkllm_request sched_req;
struct vkllm_request {
    struct sched *s; /* NULL once the engine is gone */
    const vkllm_allocator *a;
    void *owner; /* the vkllm_engine */
    /* tokens: the prompt, then what was generated; capacity n_ctx + 1 */
    int32_t *toks;
    uint32_t n_prompt, n_toks;
    uint32_t n_done;  /* positions [0, n_done) are in the KV cache */
    uint32_t n_sched; /* positions [n_done, n_done + n_sched) are in steps not committed */
    uint32_t *pages;  /* block table, n_pages of capacity ceil(n_ctx / ENG_PAGE) */
    uint32_t n_pages;
    uint64_t *keys; /* prefix-cache keys of its full pages, a chain from page 0 */
    uint32_t n_keys;
    sched_sampler *smp;
    uint32_t top_need; /* candidates its sampler needs (sched_sampler_top_needed) */
    bool ban;          /* its entries' candidates leave out the EOG ids (ignore_eog, eng_seq.ban) */
    int32_t max_tokens;
    bool ignore_eog;
    struct jsc_run *json; /* structured output (sched_req_set_json), owned */
    char **stop;
    size_t n_stop, stop_max;
    vkllm_token_fn on_token;
    void *user;
    vkllm_logprobs_fn on_logprobs; /* non-NULL: its steps read full logits (top_need 0) */
    /* its LoRA adapters (sched_req_set_lora); lora_root: the prefix-cache key its page chain
     * starts from (0 without adapters), so pages computed with other adapters never match */
    eng_lora_use lora[ENG_LORA_MAX_PER_SEQ];
    uint8_t n_lora;
    uint64_t lora_root;
    void (*lora_release)(const eng_lora *l); /* called for each adapter when it is freed */
    uint32_t top_logprobs;
    /* output */
    char *text;
    size_t text_len, text_cap;
    vkllm_request_result res;
    double t_submit;
    uint64_t admit_no; /* admission order: the largest is the youngest */
    sched_state state;
    atomic_int cancel;
    atomic_int done;            /* set once, when finished; readable from any thread */
    bool released;              /* the user freed the handle */
    struct vkllm_request *next; /* queue links */
    struct vkllm_request *all_prev, *all_next; /* the engine's list of live handles */
};

typedef struct sched_desc {
    const vkllm_allocator *alloc;
    eng_backend *be;
    const eng_model *m;
    const eng_graph *g;
    const tok_vocab *vocab;
    uint32_t max_seqs, n_ctx, n_batch, n_pages;
    bool prefix_cache;
    bool kv_q8_0;
    bool overlap; /* plan and submit the next step while one runs, where the backend feeds */
    bool paced;   /* steps are driven with deadlines (eng_ctx_desc.paced) */
    bool warmup;  /* prepare every step shape's kernels at creation (backend warmup) */
    /* runs one of a request's callbacks, fn(r, arg), which calls its on_token or on_logprobs
     * (NULL: called directly); api_engine.c's wrapper skips the callbacks of freed requests
     * and lets vkllm_request_free wait for one in progress */
    bool (*call)(void *ctx, sched_req *r, bool (*fn)(sched_req *r, void *arg), void *arg);
    void *call_ctx;
} sched_desc;

typedef struct sched sched;

vkllm_status sched_create(const sched_desc *d, sched **out, core_err *err);
/* Finishes every request it holds as cancelled (they join the finished list). */
void sched_cancel_all(sched *s);
/* Frees the scheduler; call sched_cancel_all and take the finished requests first. */
void sched_destroy(sched *s);

/* A request from its prompt tokens and parameters (checked: the prompt fits n_ctx). */
vkllm_status sched_req_create(sched *s, const int32_t *prompt, uint32_t n_prompt,
                              const vkllm_request_desc *d, sched_req **out, core_err *err);
void sched_req_free(sched_req *r);
/* Structured output: the request's tokens follow run's schema (json_schema.h), and it ends
 * (VKLLM_STOP_EOG) once the document is closed. The request owns run from here on. Call
 * before sched_add. */
void sched_req_set_json(sched_req *r, struct jsc_run *run);
/* The request's adapters; ids: a number per adapter that no other adapter ever had (its load
 * serial), for the prefix-cache key. Call before sched_add. */
void sched_req_set_lora(sched_req *r, const eng_lora_use *use, const uint64_t *ids, uint32_t n,
                        void (*release)(const eng_lora *l));
/* Hands a request to the scheduler (the caller's thread owns the scheduler now). */
void sched_add(sched *s, sched_req *r);

/* A step is driven in two calls, so that the caller can hold the backend lock (api_engine.c:
 * the runtime's be_mu) exactly around the part that uses the backend, and run the
 * requests' callbacks with no lock held:
 *
 * sched_advance plans a step when none is in progress, submits it (and, overlapping, the
 * next one), and works on the oldest one until it is done on the device or core_time_s()
 * passes deadline (<= 0: until done). *ready: it is done and waits for sched_commit (it stays
 * ready, and nothing else runs, until then). The only call here that uses the backend,
 * besides sched_create, sched_cancel_all and sched_destroy.
 *
 * sched_commit commits the ready step: each output samples its token, requests take their
 * tokens (on_logprobs and on_token are called here), full pages enter the prefix cache,
 * finished requests join the finished list (sched_take_finished). It never calls the
 * backend: a step in flight (overlap) keeps running on the device meanwhile. */
vkllm_status sched_advance(sched *s, double deadline, bool *ready, core_err *err);
void sched_commit(sched *s);
/* Requests queued or running, and whether a step is in progress (in flight or waiting for
 * its commit). */
uint32_t sched_active(const sched *s);
bool sched_busy(const sched *s);
/* Finished requests since the last call, linked through next (the caller marks them done). */
sched_req *sched_take_finished(sched *s);
void sched_stats(const sched *s, vkllm_engine_stats *out);

#endif
