/* The CPU backend's internals, shared by cpu_backend.c (ops, contexts, the backend) and
 * cpu_attn.c (attention over the paged cache). Nothing else includes it. */
#ifndef VKLLM_CPU_BACKEND_INT_H
#define VKLLM_CPU_BACKEND_INT_H

#include "cpu/cpu_backend.h"

#include "cpu/cpu_ops.h"
#include "cpu/cpu_pool.h"
#include "cpu/cpu_s24.h"

#include <pthread.h>
#include <stdatomic.h>

/* Up to this many rows, each thread quantizes a matmul's input itself instead of sharing
 * the work and meeting at a barrier: cheaper for decode. */
#define CPU_PRIVATE_Q_ROWS 4

/* An attached model and the bytes it holds under the memory cap (its weights and quads). */
typedef struct cpu_model_ref {
    const eng_model *m;
    uint64_t bytes;
    cpu_s24_model_quads *quads; /* its S24_Q4 layer matrices repacked, or NULL */
    struct cpu_model_ref *next;
} cpu_model_ref;

typedef struct cpu_backend {
    eng_backend base;
    const vkllm_allocator *alloc;
    cpu_pool *pool;
    cpu_ops k;
    uint64_t memory_cap;   /* bytes, 0 = none */
    _Atomic uint64_t held; /* weights of attached models and context buffers */
    cpu_model_ref *models; /* attach and detach run under the runtime's backend lock */
    /* the list itself: a scheduler's context creation looks its model up outside that lock */
    pthread_mutex_t models_mu;
} cpu_backend;

struct eng_ctx {
    cpu_backend *be;
    const eng_model *m;
    const cpu_model_ref *ref; /* m's attachment (its quads), NULL if not attached */
    const eng_graph *g;
    eng_ctx_desc cd;
    uint32_t n_ctx, n_batch;
    float *buf[EB_COUNT];         /* activations, n_batch rows each (LOGITS: n_batch rows) */
    uint8_t *qbuf[ENG_MAX_FUSED]; /* quantized matmul inputs */
    uint64_t qbuf_bytes;
    uint8_t *th_qbuf;          /* per-thread copies for small batches: no barrier needed */
    uint64_t th_qbuf_bytes;    /* per thread and fused slot */
    float *tmp;                /* matmul output before a fused residual add */
    uint16_t *kcache, *vcache; /* [n_layer][n_pages * ENG_PAGE][kv_dim] f16 */
    uint64_t n_slots;          /* n_pages * ENG_PAGE */
    bool kv_q8;                /* the cache holds Q8_0 rows (kcache, vcache as bytes) */
    uint64_t kv_row;           /* bytes of one cache row: eng_kv_row_bytes */
    float *th_q8;              /* Q8_0 cache: per thread K row, V row and sum [head_dim] */
    uint64_t kv_dim;
    /* per-thread scratch: attention scores [n_ctx], rope cos/sin [head_dim], q in f16 */
    float *th_rope;
    uint16_t *th_q16;
    float *th_vacc;
    float *th_tile; /* large-batch attention: K^T, V, scores, M, S, sums */
    uint64_t th_tile_floats;
    /* per token of a step: its position and entry; per output: its row; per entry: where
     * its attention work items start (the last one: the total) */
    uint32_t *tok_pos, *tok_seq, *out_row, *item0;
    int32_t *ban; /* eng_ctx_desc.ban, copied (cd.ban points here) */
    /* the current run */
    const eng_batch *b;
    float *logits_out;
    eng_observe_fn observe; /* sees every matmul's input (importance statistics) */
    void *observe_user;
    uint32_t next_op; /* begin/advance: the first op not yet run */
    uint32_t stop_op; /* ops [next_op, stop_op) this pool job runs, at most */
    double deadline;
    /* LoRA (cpu_lora.c): the current step's adapters. lora_u holds, per row and fused weight,
     * A x of each adapter of the row's entry (lora_stride floats a row and weight), and its
     * F16 copy for F16 B; th_lora per thread: an input row in F16, or an embedding's A row. */
    bool lora_on;
    uint32_t lora_stride;
    float *lora_u;
    uint16_t *lora_u16;
    uint64_t lora_cap; /* values lora_u holds */
    uint16_t *th_lora;
    uint64_t th_lora_cap; /* uint16 per thread */
    /* creation: bytes its buffers need (KV cache apart) and hold under the cap; whether one
     * could not be allocated, or would have passed the cap */
    uint64_t want, want_kv, held;
    bool failed, over_cap;
};

/* Even split of [0, n) into nth parts, part ith; rows grouped in multiples of `align`. */
static inline void split(uint32_t n, int ith, int nth, uint32_t align, uint32_t *lo, uint32_t *hi) {
    uint32_t groups = (n + align - 1) / align;
    uint32_t per = groups / (uint32_t)nth, extra = groups % (uint32_t)nth;
    uint32_t g0 = (uint32_t)ith * per + ((uint32_t)ith < extra ? (uint32_t)ith : extra);
    uint32_t g1 = g0 + per + ((uint32_t)ith < extra ? 1 : 0);
    *lo = g0 * align < n ? g0 * align : n;
    *hi = g1 * align < n ? g1 * align : n;
}

/* cpu_lora.c: entries' LoRA adapters. prepare (at begin) sizes the scratch; down computes
 * A x of every adapted product of op (all threads, a barrier after); up adds s * B (A x) to
 * rows [r0, r1) of fused weight i's output y; embed adds the embedding's adapters to row t. */
vkllm_status cpu_lora_prepare(eng_ctx *c, const eng_batch *b, core_err *err);
bool cpu_lora_op(const eng_ctx *c, const eng_op *op);
void cpu_lora_down(eng_ctx *c, const eng_op *op, int ith, int nth);
void cpu_lora_up(eng_ctx *c, const eng_op *op, int i, float *y, uint32_t wd, uint32_t r0,
                 uint32_t r1);
void cpu_lora_embed(eng_ctx *c, const eng_op *op, uint32_t t, float *dst, int ith);
void cpu_lora_free(eng_ctx *c);

/* cpu_attn.c: the attention op, and its work items of one entry */
void cpu_op_attention(eng_ctx *c, const eng_op *op, int ith, int nth);
uint32_t cpu_seq_items(const eng_ctx *c, const eng_seq *s);

#endif
