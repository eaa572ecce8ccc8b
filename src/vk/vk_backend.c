/* The Vulkan backend: the engine's op list recorded into command buffers, one per step shape.
 *
 * model_attach uploads every weight through a staging buffer into device-local arenas
 * (matrices larger than a buffer are split by rows). A context holds the paged F16 KV cache
 * (per layer, K and V of n_pages * ENG_PAGE slots), the activation rows, the
 * quantized-activation scratch, the RoPE table (host-computed with the CPU path's formula)
 * and two step slots. A slot is a host-visible parameter buffer (vk_step_params: token ids,
 * positions, cache slots, block tables), result buffers, a fence and up to VK_SLOT_RECS
 * recordings bound to those buffers, kept by step shape (rows, and per entry its rows,
 * attention kind and output; outputs; top_k) and replaced least recently used first: the
 * decode steps of a fixed set of sequences replay with only the parameters rewritten. Steps
 * alternate between the slots, so begin writes the parameters of a slot no running step
 * reads, and may queue a second step behind one still running; each recording starts with a
 * barrier that orders it after the step before it on the queue. begin records if needed,
 * writes the parameters and submits; advance waits on the oldest step's fence up to a
 * deadline and then copies out logits, or with device-side sampling only the chosen ids (and
 * values).
 */
#include "vk/vk_backend.h"

#include "vk/vk.h"
#include "vk/vk_bench.h"
#include "vk/vk_ops.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    uint64_t used;      /* when it last ran (LRU) */
    uint32_t *key;      /* the shape it was recorded for (step_key) */
    VkQueryPool qp;     /* profiling only */
    uint16_t *cat;      /* profiling: category of the span ending at timestamp i */
    uint32_t n_stamps;
} vk_step_rec;

#define VK_SLOT_RECS 4

/* What one step in flight uses; steps alternate between two. */
typedef struct vk_slot {
    vk_slice params;                     /* host-visible vk_step_params */
    vk_slice rb_logits, rb_ids, rb_vals; /* host-visible results */
    VkFence fence;
    vk_step_rec recs[VK_SLOT_RECS];
    /* the step submitted from this slot, until advance collects its results */
    bool busy;
    vk_step_rec *run;
    uint32_t n_out, top_k;
    float *logits;
    int32_t *out_ids;
    float *out_vals;
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
};

static uint16_t prof_cat(vk_prof *p, const char *name) {
    for (uint32_t i = 0; i < p->n_cats; i++)
        if (strcmp(p->name[i], name) == 0) return (uint16_t)i;
    if (p->n_cats == VK_PROF_CATS) return VK_PROF_CATS - 1;
    snprintf(p->name[p->n_cats], sizeof p->name[0], "%s", name);
    return (uint16_t)p->n_cats++;
}

/* A timestamp closing the span of the op just recorded (after its barrier). */
static void prof_mark(eng_ctx *c, vk_step_rec *s, const char *name) {
    if (!c->prof.on || !s->qp) return;
    s->cat[s->n_stamps] = prof_cat(&c->prof, name);
    c->be->d->t.vkCmdWriteTimestamp(s->rec.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->qp,
                                    s->n_stamps);
    s->n_stamps++;
}

static void prof_collect(eng_ctx *c, vk_step_rec *s) {
    if (!c->prof.on || !s->qp || s->n_stamps < 2) return;
    uint64_t t[256 * 12];
    if (s->n_stamps > sizeof t / sizeof t[0]) return;
    vk_dev *d = c->be->d;
    if (d->t.vkGetQueryPoolResults(d->dev, s->qp, 0, s->n_stamps, s->n_stamps * 8, t, 8,
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
        return;
    for (uint32_t i = 1; i < s->n_stamps; i++) {
        c->prof.ms[s->cat[i]] += (double)(t[i] - t[i - 1]) * c->prof.ns_per_tick * 1e-6;
        c->prof.calls[s->cat[i]]++;
    }
}

static void prof_report(eng_ctx *c) {
    if (!c->prof.on) return;
    double total = 0.0;
    for (uint32_t i = 0; i < c->prof.n_cats; i++) total += c->prof.ms[i];
    for (uint32_t i = 0; i < c->prof.n_cats; i++)
        if (c->prof.calls[i])
            vk_log(c->be->d, VKLLM_LOG_WARN, "profile %-28s %10.2f ms %5.1f%% %8llu calls",
                   c->prof.name[i], c->prof.ms[i], total > 0 ? 100.0 * c->prof.ms[i] / total : 0,
                   (unsigned long long)c->prof.calls[i]);
}

/* ---- weights ---- */

static const vk_weight *lookup(const vk_model *vm, const eng_weight *w) {
    const eng_model *em = vm->em;
    if (w == &em->tok_embd) return &vm->tok_embd;
    if (w == &em->output_norm) return &vm->output_norm;
    if (w == &em->output) return em->tied_output ? &vm->tok_embd : &vm->output;
    const uintptr_t base = (uintptr_t)em->layers, p = (uintptr_t)w;
    const size_t sz = sizeof(eng_layer);
    if (p < base || p >= base + sz * em->cfg.n_layer) return NULL;
    const size_t l = (p - base) / sz, field = ((p - base) % sz) / sizeof(eng_weight);
    return (const vk_weight *)&vm->layers[l] + field;
}

static vkllm_status upload(vk_backend *be, vk_model *vm, const eng_weight *w, vk_weight *out,
                           bool matrix, core_err *err) {
    if (matrix && !vk_mm_supports(w->type))
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "tensor %s: type %s has no Vulkan kernel; use --device cpu", w->name,
                         quant_type_name(w->type));
    return vk_weight_upload(be->d, &vm->arena, w->name, w->type, w->n_in, w->n_out,
                            w->row_bytes, w->data, out, err);
}

static void model_free(vk_backend *be, vk_model *vm) {
    vk_arena_free(&vm->arena);
    core_free(be->alloc, vm->layers);
    core_free(be->alloc, vm);
}

static vkllm_status vk_model_attach(eng_backend *b, const eng_model *em, core_err *err) {
    vk_backend *be = (vk_backend *)b;
    vk_model *vm = core_calloc(be->alloc, 1, sizeof *vm);
    if (!vm) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    vm->em = em;
    /* blocks as large as a buffer may be, but no larger than the weights need */
    vk_arena_init(&vm->arena, be->d, false, em->weight_bytes + em->weight_bytes / 16 + (1u << 20),
                  "model weights");
    vm->layers = core_calloc(be->alloc, em->cfg.n_layer, sizeof *vm->layers);
    vkllm_status st = vm->layers ? VKLLM_OK
                                 : core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    const double t0 = core_time_s();
    if (st == VKLLM_OK) st = upload(be, vm, &em->tok_embd, &vm->tok_embd, true, err);
    if (st == VKLLM_OK) st = upload(be, vm, &em->output_norm, &vm->output_norm, false, err);
    if (st == VKLLM_OK && !em->tied_output)
        st = upload(be, vm, &em->output, &vm->output, true, err);
    for (uint32_t l = 0; st == VKLLM_OK && l < em->cfg.n_layer; l++) {
        const eng_weight *src = &em->layers[l].attn_norm;
        vk_weight *dst = &vm->layers[l].attn_norm;
        for (size_t f = 0; st == VKLLM_OK && f < sizeof(eng_layer) / sizeof(eng_weight); f++) {
            const bool norm = &src[f] == &em->layers[l].attn_norm ||
                              &src[f] == &em->layers[l].ffn_norm;
            st = upload(be, vm, &src[f], &dst[f], !norm, err);
        }
    }
    if (st != VKLLM_OK) {
        model_free(be, vm);
        return st;
    }
    vk_log(be->d, VKLLM_LOG_INFO, "vulkan: %.1f MiB of weights uploaded in %.2f s",
           (double)em->weight_bytes / 1048576.0, core_time_s() - t0);
    vm->next = be->models;
    be->models = vm;
    return VKLLM_OK;
}

static void vk_model_detach(eng_backend *b, const eng_model *em) {
    vk_backend *be = (vk_backend *)b;
    for (vk_model **p = &be->models; *p; p = &(*p)->next)
        if ((*p)->em == em) {
            vk_model *vm = *p;
            *p = vm->next;
            model_free(be, vm);
            return;
        }
}

/* ---- contexts ---- */

/* Releases a slot's recordings and fence; waits for its step if one is still running. */
static void slot_free(eng_ctx *c, vk_slot *sl) {
    vk_dev *d = c->be->d;
    if (sl->busy && sl->fence) d->t.vkWaitForFences(d->dev, 1, &sl->fence, VK_TRUE, UINT64_MAX);
    for (int i = 0; i < VK_SLOT_RECS; i++) {
        vk_step_rec *sr = &sl->recs[i];
        vk_rec_free(&sr->rec);
        if (sr->qp) d->t.vkDestroyQueryPool(d->dev, sr->qp, NULL);
        core_free(c->be->alloc, sr->cat);
        core_free(c->be->alloc, sr->key);
    }
    if (sl->fence) d->t.vkDestroyFence(d->dev, sl->fence, NULL);
}

static void vk_ctx_destroy(eng_ctx *c) {
    if (!c) return;
    prof_report(c);
    for (int i = 0; i < 2; i++) slot_free(c, &c->slot[i]);
    vk_arena_free(&c->dev);
    vk_arena_free(&c->host);
    core_free(c->be->alloc, c->kc);
    core_free(c->be->alloc, c->vc);
    core_free(c->be->alloc, c->key);
    core_free(c->be->alloc, c->runs);
    core_free(c->be->alloc, c->pseq);
    core_free(c->be->alloc, c);
}

/* A slot's buffers: parameters laid out for the context's limits, results, fence, keys. */
static vkllm_status slot_init(eng_ctx *c, vk_slot *sl, core_err *err) {
    vk_dev *d = c->be->d;
    const eng_ctx_desc *cd = &c->cd;
    const uint64_t nv = c->m->cfg.n_vocab;
    vkllm_status st = vk_arena_alloc(
        &c->host, vk_step_params_bytes(cd->n_batch, cd->n_seqs, cd->n_ctx), &sl->params, err);
    if (st == VKLLM_OK) vk_step_params_init(sl->params.map, cd->n_batch, cd->n_seqs);
    if (st == VKLLM_OK) st = vk_arena_alloc(&c->host, nv * 4 * c->max_out, &sl->rb_logits, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->host, (uint64_t)c->max_out * ENG_TOP_K_MAX * 4, &sl->rb_ids, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->host, (uint64_t)c->max_out * ENG_TOP_K_MAX * 4, &sl->rb_vals, err);
    for (int i = 0; i < VK_SLOT_RECS && st == VKLLM_OK; i++) {
        sl->recs[i].key = core_calloc(c->be->alloc, c->key_words, sizeof(uint32_t));
        if (!sl->recs[i].key) st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    }
    if (st == VKLLM_OK) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VkResult r = d->t.vkCreateFence(d->dev, &fi, NULL, &sl->fence);
        if (r != VK_SUCCESS) st = core_errf(err, VKLLM_ERR_DEVICE, "fence: %s", vk_result_str(r));
    }
    return st;
}

/* VKLLM_VK_PROFILE=1: timestamps need a device that has them. */
static void prof_init(eng_ctx *c) {
    const char *pe = getenv("VKLLM_VK_PROFILE");
    if (!pe || strcmp(pe, "1") != 0) return;
    vk_dev *d = c->be->d;
    VkPhysicalDeviceProperties pp;
    vkGetPhysicalDeviceProperties(d->pdev, &pp);
    c->prof.on = pp.limits.timestampComputeAndGraphics && pp.limits.timestampPeriod > 0;
    c->prof.ns_per_tick = pp.limits.timestampPeriod;
    if (!c->prof.on) vk_log(d, VKLLM_LOG_WARN, "profile: the device has no timestamps");
}

static vkllm_status vk_ctx_create(eng_backend *b, const eng_model *m, const eng_graph *g,
                                  const eng_ctx_desc *cd, eng_ctx **out, core_err *err) {
    vk_backend *be = (vk_backend *)b;
    vk_dev *d = be->d;
    *out = NULL;
    vk_model *vm = be->models;
    while (vm && vm->em != m) vm = vm->next;
    if (!vm) return core_errf(err, VKLLM_ERR_INTERNAL, "vulkan: model not attached");
    if (cd->n_ctx == 0 || cd->n_batch == 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: context of %u positions, batches "
                         "of %u tokens", cd->n_ctx, cd->n_batch);
    const model_config *cfg = &m->cfg;
    eng_ctx *c = core_calloc(be->alloc, 1, sizeof *c);
    if (!c) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    c->be = be;
    c->vm = vm;
    c->m = m;
    c->g = g;
    c->cd = *cd;
    if (!c->cd.n_seqs) c->cd.n_seqs = 1;
    if (!c->cd.n_pages) c->cd.n_pages = (cd->n_ctx + ENG_PAGE - 1) / ENG_PAGE;
    const uint32_t n_batch = c->cd.n_batch, n_seqs = c->cd.n_seqs;
    vk_arena_init(&c->dev, d, false, 64u << 20, "KV cache and activations");
    vk_arena_init(&c->host, d, true, 4u << 20, "step parameters and results");
    c->kc = core_calloc(be->alloc, cfg->n_layer, sizeof *c->kc);
    c->vc = core_calloc(be->alloc, cfg->n_layer, sizeof *c->vc);
    c->key_words = 4 + 3 * n_seqs;
    c->key = core_calloc(be->alloc, c->key_words, sizeof *c->key);
    c->runs = core_calloc(be->alloc, n_seqs, sizeof *c->runs);
    c->pseq = core_calloc(be->alloc, n_seqs, sizeof *c->pseq);
    vkllm_status st = VKLLM_OK;
    if (!c->kc || !c->vc || !c->key || !c->runs || !c->pseq) {
        st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        goto fail;
    }
    /* the KV cache: F16 (or Q8_0), K and V of n_pages * ENG_PAGE slots per layer, each one
     * buffer range */
    const uint64_t n_slots = (uint64_t)c->cd.n_pages * ENG_PAGE;
    const uint32_t kv_dim = cfg->n_head_kv * cfg->head_dim;
    if (cd->kv_q8_0 && cfg->head_dim % 64 != 0) {
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan: a Q8_0 KV cache needs head_dim a "
                       "multiple of 64 (this model's is %u): use an F16 cache", cfg->head_dim);
        goto fail;
    }
    const uint64_t kv_bytes = n_slots * eng_kv_row_bytes(kv_dim, cd->kv_q8_0);
    if (kv_bytes > d->max_buffer || n_slots > UINT32_MAX / 2) {
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED,
                       "vulkan: one layer's K cache of %u pages (%llu positions) is %.1f MiB, "
                       "over the device's buffer limit of %.1f MiB (maxStorageBufferRange); use "
                       "a smaller context (-c) or fewer pages", c->cd.n_pages,
                       (unsigned long long)n_slots, (double)kv_bytes / 1048576.0,
                       (double)d->max_buffer / 1048576.0);
        goto fail;
    }
    /* logits rows the device keeps: one per entry, if they fit one buffer */
    const uint64_t logit_row = (uint64_t)cfg->n_vocab * 4;
    c->max_out = d->max_buffer / logit_row < n_seqs ? (uint32_t)(d->max_buffer / logit_row)
                                                   : n_seqs;
    if (c->max_out == 0) {
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan: a row of %u logits does not fit "
                       "one buffer", cfg->n_vocab);
        goto fail;
    }
    for (int i = 0; i < EB_COUNT && st == VKLLM_OK; i++) {
        const uint32_t rows = i == EB_LOGITS ? c->max_out : n_batch;
        c->buf[i].stride = g->buf_width[i];
        st = vk_arena_alloc(&c->dev, (uint64_t)rows * g->buf_width[i] * 4, &c->buf[i].s, err);
    }
    /* quantized activations: the largest row any matmul input needs */
    uint64_t xq_row = 0;
    for (uint32_t i = 0; i < g->n_ops; i++) {
        const eng_op *op = &g->ops[i];
        if (op->kind != EOP_MATMUL) continue;
        for (int j = 0; j < op->n_w; j++) {
            uint64_t rb = vk_mm_act_row_bytes(op->w[j]->type, op->w[j]->n_in);
            if (rb > xq_row) xq_row = rb;
        }
    }
    /* a Q8_0 cache quantizes the K and V rows through xq[0] and xq[1] */
    const uint64_t kv_xq_row = vk_mm_act_row_bytes(QT_Q8_0, kv_dim);
    if (cd->kv_q8_0 && kv_xq_row > xq_row) xq_row = kv_xq_row;
    for (int i = 0; i < ENG_MAX_FUSED && st == VKLLM_OK; i++)
        st = vk_arena_alloc(&c->dev, xq_row * n_batch, &c->xq[i], err);
    for (uint32_t l = 0; l < cfg->n_layer && st == VKLLM_OK; l++) {
        st = vk_arena_alloc(&c->dev, kv_bytes, &c->kc[l], err);
        if (st == VKLLM_OK) st = vk_arena_alloc(&c->dev, kv_bytes, &c->vc[l], err);
    }
    c->ash = (vk_attn_shape){.n_head = cfg->n_head, .n_head_kv = cfg->n_head_kv,
                             .head_dim = cfg->head_dim, .n_rot = cfg->n_rot,
                             .n_ctx = c->cd.n_ctx, .n_slots = (uint32_t)n_slots,
                             .n_splits = (uint32_t)(be->n_splits > 0 ? be->n_splits : 1)};
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->dev, vk_attn_scratch_bytes(&c->ash, n_seqs), &c->scratch, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->dev,
                            vk_topk_scratch_bytes(c->max_out, cfg->n_vocab, ENG_TOP_K_MAX),
                            &c->topk_scratch, err);
    /* RoPE table: [n_ctx][n_rot] (cos, sin) pairs, computed once on the host */
    if (st == VKLLM_OK) {
        const uint64_t bytes = (uint64_t)c->cd.n_ctx * cfg->n_rot * 4;
        float *cs = core_alloc(be->alloc, (size_t)bytes, 0);
        if (!cs) {
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        } else {
            for (uint32_t p = 0; p < c->cd.n_ctx; p++)
                eng_rope_cs(cfg, m->rope_freqs, p, cs + (uint64_t)p * cfg->n_rot);
            st = vk_arena_alloc(&c->dev, bytes, &c->rope_cs, err);
            if (st == VKLLM_OK) st = vk_upload(d, &c->rope_cs, cs, bytes, err);
            core_free(be->alloc, cs);
        }
    }
    for (int i = 0; i < 2 && st == VKLLM_OK; i++) st = slot_init(c, &c->slot[i], err);
    if (st != VKLLM_OK) goto fail;
    prof_init(c);
    vk_log(d, VKLLM_LOG_INFO, "vulkan context: %u positions, %u pages, %u entries a step, "
           "%.1f MiB of device memory in use", c->cd.n_ctx, c->cd.n_pages, n_seqs,
           (double)d->allocated / 1048576.0);
    *out = c;
    return VKLLM_OK;
fail:
    vk_ctx_destroy(c);
    return st;
}

/* ---- recording one step ---- */

/* The attention kind of an entry: the CPU path's choice (cpu_backend.c seq_tiled,
 * attn_head_small's split), from its mode and size, never from the batch's. */
static uint32_t entry_kind(const eng_ctx *c, const eng_seq *s) {
    if (s->mode == ENG_ATTN_TILED && c->m->cfg.head_dim % 8 == 0) return VK_ATTN_TILED;
    if (s->mode == ENG_ATTN_SPLIT && s->n_tokens == 1) return VK_ATTN_SPLIT;
    return VK_ATTN_SERIAL;
}

/* The shape a recording depends on, into c->key: rows, entries, outputs, top_k, then per entry
 * its rows, (attention kind | out << 8) and its feed. Returns the words in use. */
static uint32_t step_key(eng_ctx *c, const eng_batch *b) {
    uint32_t *k = c->key;
    k[0] = b->n_tokens;
    k[1] = b->n_seqs;
    k[2] = b->n_out;
    k[3] = b->top_k;
    for (uint32_t e = 0; e < b->n_seqs; e++) {
        k[4 + 3 * e] = b->seqs[e].n_tokens;
        k[5 + 3 * e] = entry_kind(c, &b->seqs[e]) | (b->seqs[e].out ? 1u << 8 : 0u);
        k[6 + 3 * e] = b->seqs[e].feed;
    }
    return 4 + 3 * b->n_seqs;
}

/* Attention runs of a shape key: consecutive SERIAL entries share a run, so do consecutive
 * SPLIT entries; a TILED entry is a run of its own. */
static uint32_t attn_runs(const uint32_t *key, vk_attn_run *runs) {
    uint32_t n = 0, row = 0;
    for (uint32_t e = 0; e < key[1]; e++) {
        const uint32_t rows = key[4 + 3 * e], kind = key[5 + 3 * e] & 0xffu;
        if (n && kind != VK_ATTN_TILED && runs[n - 1].kind == kind)
            runs[n - 1].n_rows += rows;
        else
            runs[n++] = (vk_attn_run){.kind = kind, .row0 = row, .n_rows = rows, .entry = e};
        row += rows;
    }
    return n;
}

static vk_act rows_of(const eng_ctx *c, int buf) { return c->buf[buf]; }

/* A Q8_0 cache: the roped K rows and the V rows quantized as the CPU path does (through the
 * matmul activation buffers, free between ops), then packed into the cache's blocks. */
static vkllm_status rec_store_q8(eng_ctx *c, vk_rec *r, const vk_slot *sl, uint32_t layer,
                                 uint32_t n, core_err *err) {
    const model_config *cfg = &c->m->cfg;
    const uint32_t kv_dim = cfg->n_head_kv * cfg->head_dim;
    vk_rec_barrier(r);
    vkllm_status st = vk_mm_quantize(r, c->be->mm, QT_Q8_0, rows_of(c, EB_K), kv_dim, n,
                                     c->xq[0], err);
    if (st == VKLLM_OK)
        st = vk_mm_quantize(r, c->be->mm, QT_Q8_0, rows_of(c, EB_V), kv_dim, n, c->xq[1], err);
    if (st != VKLLM_OK) return st;
    vk_rec_barrier(r);
    return vk_attn_kv_pack_q8(r, c->be->attn, &c->ash, sl->params, c->xq[0], c->xq[1],
                              (uint32_t)(vk_mm_act_row_bytes(QT_Q8_0, kv_dim) / 4), c->kc[layer],
                              c->vc[layer], n, err);
}

static vkllm_status rec_matmul(eng_ctx *c, vk_rec *r, const eng_op *op, uint32_t n,
                               core_err *err) {
    vk_backend *be = c->be;
    const uint32_t n_in = op->w[0]->n_in;
    int slot_of[ENG_MAX_FUSED];
    vkllm_status st = VKLLM_OK;
    /* 1. quantize the input once per distinct activation type */
    for (int i = 0; i < op->n_w && st == VKLLM_OK; i++) {
        const quant_type vdt = quant_traits_of(op->w[i]->type)->vec_dot_type;
        slot_of[i] = i;
        for (int j = 0; j < i; j++)
            if (quant_traits_of(op->w[j]->type)->vec_dot_type == vdt) slot_of[i] = slot_of[j];
        if (slot_of[i] == i)
            st = vk_mm_quantize(r, be->mm, op->w[i]->type, rows_of(c, op->src), n_in, n,
                                c->xq[i], err);
    }
    vk_rec_barrier(r);
    /* 2. the products */
    for (int i = 0; i < op->n_w && st == VKLLM_OK; i++) {
        const vk_weight *w = lookup(c->vm, op->w[i]);
        st = vk_mm_matmul(r, be->mm, w, c->xq[slot_of[i]], n, rows_of(c, op->dst[i]),
                          op->accumulate, err);
    }
    return st;
}

/* Descriptor sets a recording of this shape may allocate, at most: per op its quantizations
 * and matmul parts (16 is ample), per attention op two per run. */
static uint32_t rec_sets(const eng_ctx *c, uint32_t n_runs) {
    return 32 + 16 * c->g->n_ops + 2 * n_runs * c->m->cfg.n_layer;
}

/* The results of the output rows into the slot: logits, or the chosen candidates. */
static vkllm_status rec_results(eng_ctx *c, vk_slot *sl, vk_rec *r, uint32_t n_out,
                                uint32_t top_k, core_err *err) {
    vk_backend *be = c->be;
    const uint32_t nv = c->m->cfg.n_vocab;
    vkllm_status st = VKLLM_OK;
    if (top_k == 0) {
        VkBufferCopy reg = {.srcOffset = c->buf[EB_LOGITS].s.offset,
                            .dstOffset = sl->rb_logits.offset, .size = (uint64_t)n_out * nv * 4};
        be->d->t.vkCmdCopyBuffer(r->cb, c->buf[EB_LOGITS].s.buf, sl->rb_logits.buf, 1, &reg);
    } else if (top_k == 1) {
        st = vk_argmax(r, be->smp, rows_of(c, EB_LOGITS), n_out, nv, sl->rb_ids, err);
    } else {
        st = vk_topk(r, be->smp, rows_of(c, EB_LOGITS), n_out, nv, top_k, sl->rb_ids,
                     sl->rb_vals, c->topk_scratch, err);
    }
    return st;
}

/* Fed entries (eng_seq.feed): their token ids copied from the argmax results of the step in the
 * other slot, which ran before this one (the barrier before this covers it), into this slot's
 * parameters, then a barrier before the embedding reads them. */
static void rec_feeds(eng_ctx *c, vk_slot *sl, vk_rec *r) {
    const vk_slot *prev = &c->slot[sl == &c->slot[0] ? 1 : 0];
    VkBufferCopy reg[64];
    uint32_t n_reg = 0, row = 0;
    const vk_step_params *p = sl->params.map;
    for (uint32_t e = 0; e < c->key[1]; e++) {
        const uint32_t feed = c->key[6 + 3 * e];
        if (feed) {
            reg[n_reg++] = (VkBufferCopy){
                .srcOffset = prev->rb_ids.offset + (uint64_t)(feed - 1) * 4,
                .dstOffset = sl->params.offset + offsetof(vk_step_params, d) +
                             ((uint64_t)p->tok_off + 4ull * row) * 4,
                .size = 4};
        }
        if (n_reg == 64 || (n_reg && (e + 1 == c->key[1]))) {
            c->be->d->t.vkCmdCopyBuffer(r->cb, prev->rb_ids.buf, sl->params.buf, n_reg, reg);
            n_reg = 0;
        }
        row += c->key[4 + 3 * e];
    }
    bool any = false;
    for (uint32_t e = 0; e < c->key[1]; e++) any = any || c->key[6 + 3 * e] != 0;
    if (any) vk_rec_barrier(r);
}

/* Records the step shape c->key (n_key words) into sr, bound to slot sl's buffers. */
static vkllm_status record(eng_ctx *c, vk_slot *sl, vk_step_rec *sr, uint32_t n_key,
                           core_err *err) {
    vk_backend *be = c->be;
    vk_rec *r = &sr->rec;
    const model_config *cfg = &c->m->cfg;
    const uint32_t n = c->key[0], n_out = c->key[2], top_k = c->key[3];
    const uint32_t n_runs = attn_runs(c->key, c->runs);
    sr->valid = false;
    vkllm_status st = VKLLM_OK;
    if (r->max_sets < rec_sets(c, n_runs)) { /* a new pool, large enough for this shape */
        uint32_t sets = rec_sets(c, n_runs > 4 ? n_runs : 4);
        vk_rec_free(r);
        st = vk_rec_init(be->d, r, sets, err);
    }
    if (st == VKLLM_OK) st = vk_rec_begin(r, err);
    if (st != VKLLM_OK) return st;
    /* after whatever the queue ran before: the activations and the cache are shared */
    vk_rec_barrier(r);
    rec_feeds(c, sl, r);
    const uint32_t n_q = c->g->n_ops + 4;
    if (c->prof.on && !sr->qp) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = n_q};
        sr->cat = core_calloc(be->alloc, n_q, sizeof *sr->cat);
        if (!sr->cat || be->d->t.vkCreateQueryPool(be->d->dev, &qi, NULL, &sr->qp) != VK_SUCCESS)
            c->prof.on = false;
    }
    const char *phase = n == 1 ? "decode" : c->key[1] > 1 ? "batch" : "prefill";
    char pname[64];
    sr->n_stamps = 0;
    if (c->prof.on && sr->qp) {
        be->d->t.vkCmdResetQueryPool(r->cb, sr->qp, 0, n_q);
        prof_mark(c, sr, "start");
    }
    for (uint32_t i = 0; i < c->g->n_ops && st == VKLLM_OK; i++) {
        const eng_op *op = &c->g->ops[i];
        if (op->last_rows && n_out == 0) continue; /* no output head */
        switch (op->kind) {
        case EOP_EMBED:
            st = vk_embed(r, be->mm, lookup(c->vm, op->w[0]), sl->params,
                          rows_of(c, op->dst[0]), n, err);
            break;
        case EOP_RMS_NORM: {
            /* the output head's norm gathers the output rows into rows 0 .. n_out - 1 */
            const vk_weight *w = lookup(c->vm, op->w[0]);
            st = vk_rms_norm(r, be->misc, rows_of(c, op->src), 0,
                             op->last_rows ? &sl->params : NULL, w->part[0].s,
                             rows_of(c, op->dst[0]), op->last_rows ? n_out : n, op->w[0]->n_in,
                             cfg->rms_eps, err);
            break;
        }
        case EOP_MATMUL:
            st = rec_matmul(c, r, op, op->last_rows ? n_out : n, err);
            break;
        case EOP_ROPE:
            st = vk_attn_rope_store(r, be->attn, &c->ash, sl->params, c->rope_cs,
                                    rows_of(c, EB_Q), rows_of(c, EB_K), rows_of(c, EB_V),
                                    c->kc[op->layer], c->vc[op->layer], n, !c->cd.kv_q8_0, err);
            if (st == VKLLM_OK && c->cd.kv_q8_0) st = rec_store_q8(c, r, sl, op->layer, n, err);
            break;
        case EOP_KV_STORE:
            continue; /* done by rope_store */
        case EOP_ATTENTION:
            if (c->cd.kv_q8_0)
                st = vk_attn_attend_q8(r, be->attn, &c->ash, sl->params, rows_of(c, op->src),
                                       c->kc[op->layer], c->vc[op->layer],
                                       rows_of(c, op->dst[0]), n, err);
            else
                st = vk_attn_attend(r, be->attn, &c->ash, sl->params, rows_of(c, op->src),
                                    c->kc[op->layer], c->vc[op->layer], rows_of(c, op->dst[0]),
                                    c->scratch, c->runs, n_runs, err);
            break;
        case EOP_SWIGLU:
            st = vk_swiglu(r, be->misc, rows_of(c, op->src), rows_of(c, op->src2),
                           rows_of(c, op->dst[0]), n, c->g->buf_width[op->dst[0]], err);
            break;
        }
        vk_rec_barrier(r);
        if (op->kind == EOP_MATMUL)
            snprintf(pname, sizeof pname, "%s %s %s", phase, eng_op_name(op->kind),
                     quant_type_name(op->w[0]->type));
        else
            snprintf(pname, sizeof pname, "%s %s", phase, eng_op_name(op->kind));
        prof_mark(c, sr, pname);
    }
    if (st == VKLLM_OK && n_out) {
        st = rec_results(c, sl, r, n_out, top_k, err);
        snprintf(pname, sizeof pname, "%s sample/copy-out", phase);
        if (st == VKLLM_OK) prof_mark(c, sr, pname);
    }
    if (st == VKLLM_OK) { /* make the results visible to the host */
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
            .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
        };
        be->d->t.vkCmdPipelineBarrier(r->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                                                 VK_PIPELINE_STAGE_TRANSFER_BIT,
                                      VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    if (st == VKLLM_OK) st = vk_rec_end(r, err);
    if (st == VKLLM_OK) {
        memcpy(sr->key, c->key, n_key * sizeof *c->key);
        sr->valid = true;
    }
    return st;
}

/* The slot's recording of shape c->key: a valid one with that key, else the least recently
 * used (or an empty one) re-recorded. */
static vkllm_status find_rec(eng_ctx *c, vk_slot *sl, uint32_t n_key, vk_step_rec **out,
                             core_err *err) {
    vk_step_rec *victim = &sl->recs[0];
    for (int i = 0; i < VK_SLOT_RECS; i++) {
        vk_step_rec *sr = &sl->recs[i];
        if (sr->valid && memcmp(sr->key, c->key, n_key * sizeof *c->key) == 0) {
            *out = sr;
            return VKLLM_OK;
        }
        if (victim->valid && (!sr->valid || sr->used < victim->used)) victim = sr;
    }
    *out = victim;
    return record(c, sl, victim, n_key, err);
}

/* ---- steps ---- */

static vkllm_status vk_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    vkllm_status st = eng_batch_check(b, &c->cd, c->m->cfg.n_vocab, "vulkan", err);
    if (st != VKLLM_OK) return st;
    if (b->n_out && !b->top_k && !logits)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: outputs need a logits buffer");
    if (b->n_out > c->max_out)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan: %u rows of logits asked for, "
                         "the device keeps at most %u", b->n_out, c->max_out);
    vk_slot *sl = &c->slot[c->next];
    if (sl->busy)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: two steps in flight already; "
                         "advance the first to its end before beginning another");
    const vk_slot *prev = &c->slot[c->next ^ 1];
    for (uint32_t e = 0; e < b->n_seqs; e++)
        if (b->seqs[e].feed && (!prev->busy || prev->top_k != 1 || b->seqs[e].feed > prev->n_out))
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: entry %u is fed from output "
                             "row %u of the step in flight, which %s", e, b->seqs[e].feed - 1,
                             !prev->busy ? "is not there" : prev->top_k != 1 ? "is not argmax"
                                                                              : "it lacks");
    const uint32_t n_key = step_key(c, b);
    vk_step_rec *sr;
    if ((st = find_rec(c, sl, n_key, &sr, err)) != VKLLM_OK) return st;
    for (uint32_t e = 0; e < b->n_seqs; e++)
        c->pseq[e] = (vk_step_seq){.n_tokens = b->seqs[e].n_tokens, .pos0 = b->seqs[e].pos0,
                                   .out = b->seqs[e].out, .pages = b->seqs[e].pages};
    vk_step_params_write(sl->params.map, b->tokens, c->pseq, b->n_seqs);
    vk_dev *d = c->be->d;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                       .pCommandBuffers = &sr->rec.cb};
    VkResult res = d->t.vkResetFences(d->dev, 1, &sl->fence);
    if (res == VK_SUCCESS) res = d->t.vkQueueSubmit(d->queue, 1, &si, sl->fence);
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan step: %s%s", vk_result_str(res),
                         res == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
    sr->used = ++c->clock;
    sl->busy = true;
    sl->run = sr;
    sl->n_out = b->n_out;
    sl->top_k = b->top_k;
    sl->logits = logits;
    sl->out_ids = b->out_ids;
    sl->out_vals = b->out_vals;
    c->next ^= 1;
    c->n_busy++;
    return VKLLM_OK;
}

/* A finished step's results, out of its slot. */
static void collect(eng_ctx *c, vk_slot *sl) {
    const uint32_t nv = c->m->cfg.n_vocab, k = sl->top_k;
    prof_collect(c, sl->run);
    if (sl->n_out && k == 0) memcpy(sl->logits, sl->rb_logits.map, (size_t)sl->n_out * nv * 4);
    const uint32_t *ids = sl->rb_ids.map;
    for (uint32_t i = 0; k && i < sl->n_out * k; i++) sl->out_ids[i] = (int32_t)ids[i];
    if (k && sl->out_vals) {
        if (k == 1) { /* argmax returns ids only: the values are in the logits on the device */
            for (uint32_t i = 0; i < sl->n_out; i++) sl->out_vals[i] = 0.0f;
        } else {
            memcpy(sl->out_vals, sl->rb_vals.map, (size_t)sl->n_out * k * 4);
        }
    }
}

static vkllm_status vk_advance(eng_ctx *c, double deadline, bool *done, core_err *err) {
    *done = false;
    if (c->n_busy == 0) return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: no step in progress");
    vk_dev *d = c->be->d;
    vk_slot *sl = &c->slot[c->n_busy == 2 ? c->next : c->next ^ 1];
    uint64_t timeout = UINT64_MAX;
    if (deadline > 0) {
        const double left = deadline - core_time_s();
        timeout = left > 0 ? (uint64_t)(left * 1e9) : 0;
    }
    VkResult res = d->t.vkWaitForFences(d->dev, 1, &sl->fence, VK_TRUE, timeout);
    if (res == VK_TIMEOUT) return VKLLM_OK;
    sl->busy = false;
    c->n_busy--;
    if (res != VK_SUCCESS) {
        sl->run->valid = false;
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan step: %s%s", vk_result_str(res),
                         res == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
    }
    vkllm_status st = vk_check_validation(d, err);
    if (st != VKLLM_OK) return st;
    collect(c, sl);
    *done = true;
    return VKLLM_OK;
}

/* begin, then advance until this step is done (and any step queued before it). */
static vkllm_status vk_run(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    const uint32_t mine = c->next;
    vkllm_status st = vk_begin(c, b, logits, err);
    bool done = false;
    while (st == VKLLM_OK && c->slot[mine].busy) st = vk_advance(c, 0.0, &done, err);
    return st;
}

/* ---- the backend ---- */

static void vk_destroy(eng_backend *b) {
    vk_backend *be = (vk_backend *)b;
    while (be->models) vk_model_detach(b, be->models->em);
    vk_mm_destroy(be->mm);
    vk_attn_destroy(be->attn);
    vk_misc_destroy(be->misc);
    vk_sample_destroy(be->smp);
    vk_dev_destroy(be->d);
    core_free(be->alloc, be);
}

/* ---- measurement (vk_bench.c) ---- */

static vkllm_status vk_be_bandwidth(eng_backend *b, double seconds, double *gbps,
                                    uint64_t *bytes, core_err *err) {
    return vk_bench_bandwidth(((vk_backend *)b)->d, seconds, gbps, bytes, err);
}

static vkllm_status vk_be_bench_op(eng_backend *b, const vkllm_bench_op_desc *desc,
                                   uint32_t w_type, vkllm_bench_op_result *out, core_err *err) {
    vk_backend *be = (vk_backend *)b;
    return vk_bench_op(be->d, be->mm, be->attn, (uint32_t)(be->n_splits > 0 ? be->n_splits : 1),
                       desc, w_type, out, err);
}

static const eng_backend_vtbl k_vk_vtbl = {
    .destroy = vk_destroy,
    .model_attach = vk_model_attach,
    .model_detach = vk_model_detach,
    .ctx_create = vk_ctx_create,
    .ctx_destroy = vk_ctx_destroy,
    .run = vk_run,
    .begin = vk_begin,
    .advance = vk_advance,
    .bandwidth = vk_be_bandwidth,
    .bench_op = vk_be_bench_op,
};

vkllm_status vk_backend_create(const vk_backend_desc *desc, eng_backend **out, core_err *err) {
    *out = NULL;
    vk_backend *be = core_calloc(desc->alloc, 1, sizeof *be);
    if (!be) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    be->base.vt = &k_vk_vtbl;
    be->base.feeds = true;
    be->alloc = desc->alloc;
    be->n_splits = desc->n_splits;
    vk_dev_desc dd = {.alloc = desc->alloc, .log = desc->log, .log_user = desc->log_user,
                      .select = desc->select, .max_tier = desc->max_tier,
                      .memory_cap = desc->memory_cap, .max_buffer = desc->max_buffer};
    vkllm_status st = vk_dev_create(&dd, &be->d, err);
    if (st == VKLLM_OK && desc->skip_cpu_devices && strcmp(be->d->info.kind, "cpu-vulkan") == 0)
        st = core_errf(err, VKLLM_ERR_NO_DEVICE, "the only Vulkan device is %s, a CPU "
                       "implementation", be->d->info.name);
    if (st == VKLLM_OK) st = vk_misc_create(be->d, &be->misc, err);
    if (st == VKLLM_OK) st = vk_mm_create(be->d, &be->mm, err);
    /* relaxed products change nothing where fma() is fused: the name says so only where they
     * are in effect */
    const bool relaxed = desc->relaxed_products && be->d && be->d->fma_exact;
    if (st == VKLLM_OK && relaxed) {
        vk_mm_tuning t = vk_mm_get_tuning(be->mm);
        t.plain_fma = true;
        st = vk_mm_set_tuning(be->mm, &t, err);
    }
    if (st == VKLLM_OK) st = vk_attn_create(be->d, &be->attn, err);
    if (st == VKLLM_OK) st = vk_sample_create(be->d, &be->smp, err);
    if (st != VKLLM_OK) {
        if (!be->d) core_free(desc->alloc, be);
        else vk_destroy(&be->base);
        return st;
    }
    snprintf(be->base.name, sizeof be->base.name, "vulkan (%.80s, tier %d%s)", be->d->info.name,
             be->d->tier, relaxed ? ", relaxed products" : "");
    vk_dev_info_public(&be->d->info, be->d->index, be->d->tier, &be->base.info);
    be->base.info.relaxed_products = relaxed;
    if (be->d->fma_exact) { /* a runtime property the device list cannot know: the probe's */
        vkllm_device_info *in = &be->base.info;
        const size_t n = strlen(in->features);
        snprintf(in->features + n, sizeof in->features - n, "%s", " unfused-fma");
    }
    *out = &be->base;
    return VKLLM_OK;
}
