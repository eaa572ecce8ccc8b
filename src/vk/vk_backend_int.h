/* The Vulkan backend's internals, shared by vk_backend.c (weights, contexts, the backend),
 * vk_record.c (recording a step shape, the profiler, warm-up) and vk_step.c (submitting and
 * finishing steps, paced or whole). Nothing outside src/vk/vk_backend*.c, vk_record.c and
 * vk_step.c includes it. */
#ifndef VKLLM_VK_BACKEND_INT_H
#define VKLLM_VK_BACKEND_INT_H

#include "vk/vk_backend.h"

#include "vk/vk.h"
#include "vk/vk_bench.h"
#include "vk/vk_ops.h"

/* A model's weights on the device; field order mirrors eng_layer. */
typedef struct vk_layer {
    vk_weight attn_norm, wq, wk, wv, wo;
    vk_weight ffn_norm, w_gate, w_up, w_down;
} vk_layer;

typedef struct vk_model {
    const eng_model *em;
    vk_arena arena;
    vk_weight tok_embd, output_norm, output;
    vk_layer *layers;
    struct vk_model *next;
} vk_model;

typedef struct vk_backend {
    eng_backend base;
    const vkllm_allocator *alloc;
    vk_dev *d;
    vk_mm *mm;
    vk_attn *attn;
    vk_misc *misc;
    vk_sample *smp;
    int n_splits;
    vk_model *models;
} vk_backend;

/* VKLLM_VK_PROFILE=1: GPU timestamps after every op, summed per op kind (and weight type for
 * matmuls) and logged when the context is destroyed: where the kernels spend their time. */
#define VK_PROF_CATS 48
typedef struct vk_prof {
    bool on;
    double ns_per_tick;
    char name[VK_PROF_CATS][48];
    double ms[VK_PROF_CATS];
    uint64_t calls[VK_PROF_CATS];
    uint32_t n_cats;
} vk_prof;

/* One recording of a step shape, bound to its slot's parameter and result buffers. */
typedef struct vk_step_rec {
    vk_rec rec;
    bool valid;
    uint64_t used;  /* when it last ran (LRU) */
    uint32_t *key;  /* the shape it was recorded for (step_key) */
    VkQueryPool qp; /* profiling only */
    uint16_t *cat;  /* profiling: category of the span ending at timestamp i */
    uint32_t n_stamps;
    /* paced contexts: a timestamp at the start and end of each segment, and each segment's
     * device time, smoothed over runs (0: not measured yet) */
    VkQueryPool seg_qp;
    float seg_ms[VK_REC_MAX_SEGS];
} vk_step_rec;

#define VK_SLOT_RECS 4

/* What one step in flight uses; steps alternate between two. */
typedef struct vk_slot {
    vk_slice params;                     /* host-visible vk_step_params */
    vk_slice rb_logits, rb_ids, rb_vals; /* host-visible results */
    vk_slice xio;                        /* a split's stage: residual stream in and out */
    VkFence fence;
    vk_step_rec recs[VK_SLOT_RECS];
    /* paced contexts: the step's segments, each submitted with its own fence (the last one's
     * is `fence`) when the budget allows (pace_submit) */
    VkFence seg_fence[VK_REC_MAX_SEGS - 1];
    uint32_t n_submitted, n_complete;
    /* the step begun in this slot, until advance collects its results */
    bool busy;
    vk_step_rec *run;
    uint32_t n_out, top_k;
    float *logits;
    int32_t *out_ids;
    float *out_vals;
    float *x_out;
    uint32_t n_tokens;
} vk_slot;

struct eng_ctx {
    vk_backend *be;
    vk_model *vm;
    const eng_model *m;
    const eng_graph *g;
    eng_ctx_desc cd; /* defaults filled in */
    uint32_t max_out;
    vk_arena dev, host;
    vk_act buf[EB_COUNT];
    vk_slice xq[ENG_MAX_FUSED];
    vk_slice *kc, *vc;
    vk_slice rope_cs, scratch, topk_scratch;
    vk_attn_shape ash;
    vk_slot slot[2];
    uint32_t next;   /* the slot the next begin uses */
    uint32_t n_busy; /* steps in flight: the oldest is in slot next ^ (n_busy == 2 ? 0 : 1) */
    uint64_t clock;  /* LRU stamps */
    /* per-step scratch, sized at creation: a shape key, attention runs, parameter entries */
    uint32_t *key;
    uint32_t key_words;
    vk_attn_run *runs;
    vk_step_seq *pseq;
    vk_prof prof;
    bool stamps; /* the device writes timestamps (paced segments are timed) */
    double ns_per_tick;
    double forced_deadline; /* pace_submit: the deadline a lone segment was last forced for */
};

/* The fence segment k of the slot's step signals: its own, the slot's for the last. */
static inline VkFence *vk_seg_fence(vk_slot *sl, uint32_t k) {
    return k + 1 == sl->run->rec.n_seg ? &sl->fence : &sl->seg_fence[k];
}

/* vk_backend.c */
const vk_weight *vk_lookup(const vk_model *vm, const eng_weight *w);

/* vk_record.c */
void vk_prof_mark(eng_ctx *c, vk_step_rec *s, const char *name);
void vk_prof_collect(eng_ctx *c, vk_step_rec *s);
void vk_prof_report(eng_ctx *c);
/* The shape a recording depends on, into c->key; returns the words in use. */
uint32_t vk_step_key(eng_ctx *c, const eng_batch *b);
/* Records the step shape c->key into sr, bound to slot sl's buffers. */
vkllm_status vk_record(eng_ctx *c, vk_slot *sl, vk_step_rec *sr, uint32_t n_key, core_err *err);
/* The slot's recording of shape c->key, recorded if it has none. */
vkllm_status vk_find_rec(eng_ctx *c, vk_slot *sl, uint32_t n_key, vk_step_rec **out, core_err *err);
vkllm_status vk_ctx_warmup(eng_ctx *c, core_err *err);

/* vk_step.c: the backend's begin, advance and run */
vkllm_status vk_step_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err);
vkllm_status vk_step_advance(eng_ctx *c, double deadline, bool *done, core_err *err);
vkllm_status vk_step_run(eng_ctx *c, const eng_batch *b, float *logits, core_err *err);

#endif
