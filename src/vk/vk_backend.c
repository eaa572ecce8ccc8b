/* The Vulkan backend: the engine's op list recorded into one command buffer per step.
 *
 * model_attach uploads every weight through a staging buffer into device-local arenas
 * (matrices larger than a buffer are split by rows). A context holds the F16 KV cache (one
 * range per layer and K/V), the activation rows, the quantized-activation scratch, the RoPE
 * table (host-computed with the CPU path's formula) and two recordings: one for single-token
 * steps, replayed for every generated token with only the step parameter buffer (token id,
 * position) rewritten, and one for other shapes, re-recorded when the shape changes. A step
 * is one submit and one fence wait; only token ids go up and logits, or with device-side
 * sampling only the chosen ids (and values), come down.
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

typedef struct vk_step {
    VkQueryPool qp;     /* profiling only */
    uint16_t *cat;      /* profiling: category of the span ending at timestamp i */
    uint32_t n_stamps;
    vk_rec rec;
    vk_slice params; /* host-visible vk_step_params */
    bool valid;
    uint32_t n_tokens, n_out, top_k; /* the shape it was recorded for */
} vk_step;

struct eng_ctx {
    vk_backend *be;
    vk_model *vm;
    const eng_model *m;
    const eng_graph *g;
    uint32_t n_ctx, n_batch, max_out;
    eng_ctx_desc cd;
    int32_t scratch_ids[1];
    /* begin/advance: the step in progress */
    const eng_batch *pend;
    float *pend_logits;
    vk_arena dev, host;
    vk_act buf[EB_COUNT];
    vk_slice xq[ENG_MAX_FUSED];
    vk_slice *kc, *vc;
    vk_slice rope_cs, scratch, topk_scratch;
    vk_slice rb_logits, rb_ids, rb_vals; /* host-visible results */
    vk_attn_shape ash;
    vk_step steps[2]; /* [0]: single-token steps, [1]: everything else */
    VkFence fence;
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
static void prof_mark(eng_ctx *c, vk_step *s, const char *name) {
    if (!c->prof.on || !s->qp) return;
    s->cat[s->n_stamps] = prof_cat(&c->prof, name);
    c->be->d->t.vkCmdWriteTimestamp(s->rec.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->qp,
                                    s->n_stamps);
    s->n_stamps++;
}

static void prof_collect(eng_ctx *c, vk_step *s) {
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

static void vk_ctx_destroy(eng_ctx *c) {
    if (!c) return;
    vk_dev *d = c->be->d;
    prof_report(c);
    for (int i = 0; i < 2; i++) {
        vk_rec_free(&c->steps[i].rec);
        if (c->steps[i].qp) d->t.vkDestroyQueryPool(d->dev, c->steps[i].qp, NULL);
        core_free(c->be->alloc, c->steps[i].cat);
    }
    if (c->fence) d->t.vkDestroyFence(d->dev, c->fence, NULL);
    vk_arena_free(&c->dev);
    vk_arena_free(&c->host);
    core_free(c->be->alloc, c->kc);
    core_free(c->be->alloc, c->vc);
    core_free(c->be->alloc, c);
}

static vkllm_status vk_ctx_create(eng_backend *b, const eng_model *m, const eng_graph *g,
                                  const eng_ctx_desc *cd, eng_ctx **out, core_err *err) {
    const uint32_t n_ctx = cd->n_ctx, n_batch = cd->n_batch;
    vk_backend *be = (vk_backend *)b;
    vk_dev *d = be->d;
    *out = NULL;
    vk_model *vm = be->models;
    while (vm && vm->em != m) vm = vm->next;
    if (!vm) return core_errf(err, VKLLM_ERR_INTERNAL, "vulkan: model not attached");
    const model_config *cfg = &m->cfg;
    eng_ctx *c = core_calloc(be->alloc, 1, sizeof *c);
    if (!c) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    c->be = be;
    c->vm = vm;
    c->m = m;
    c->g = g;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->cd = *cd;
    c->cd.n_seqs = 1;
    c->cd.n_pages = (n_ctx + ENG_PAGE - 1) / ENG_PAGE;
    vk_arena_init(&c->dev, d, false, 64u << 20, "KV cache and activations");
    vk_arena_init(&c->host, d, true, 4u << 20, "step parameters and results");
    c->kc = core_calloc(be->alloc, cfg->n_layer, sizeof *c->kc);
    c->vc = core_calloc(be->alloc, cfg->n_layer, sizeof *c->vc);
    vkllm_status st = VKLLM_OK;
    if (!c->kc || !c->vc) {
        st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        goto fail;
    }
    /* logits rows the device keeps: all of a batch if they fit one buffer */
    const uint64_t logit_row = (uint64_t)cfg->n_vocab * 4;
    c->max_out = d->max_buffer / logit_row < n_batch ? (uint32_t)(d->max_buffer / logit_row)
                                                    : n_batch;
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
    for (int i = 0; i < ENG_MAX_FUSED && st == VKLLM_OK; i++)
        st = vk_arena_alloc(&c->dev, xq_row * n_batch, &c->xq[i], err);
    /* the KV cache: F16, one range per layer */
    const uint64_t kv_bytes = (uint64_t)n_ctx * cfg->n_head_kv * cfg->head_dim * 2;
    if (st == VKLLM_OK && kv_bytes > d->max_buffer)
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED,
                       "vulkan: one layer's K cache for %u positions is %.1f MiB, over the "
                       "device's buffer limit of %.1f MiB; use a smaller context (-c)",
                       n_ctx, (double)kv_bytes / 1048576.0, (double)d->max_buffer / 1048576.0);
    for (uint32_t l = 0; l < cfg->n_layer && st == VKLLM_OK; l++) {
        st = vk_arena_alloc(&c->dev, kv_bytes, &c->kc[l], err);
        if (st == VKLLM_OK) st = vk_arena_alloc(&c->dev, kv_bytes, &c->vc[l], err);
    }
    c->ash = (vk_attn_shape){.n_head = cfg->n_head, .n_head_kv = cfg->n_head_kv,
                             .head_dim = cfg->head_dim, .n_rot = cfg->n_rot, .n_ctx = n_ctx,
                             .n_splits = (uint32_t)(be->n_splits > 0 ? be->n_splits : 1)};
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->dev, vk_attn_scratch_bytes(&c->ash, n_batch), &c->scratch, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->dev,
                            vk_topk_scratch_bytes(c->max_out, cfg->n_vocab, ENG_TOP_K_MAX),
                            &c->topk_scratch, err);
    /* RoPE table: [n_ctx][n_rot] (cos, sin) pairs, computed once on the host */
    if (st == VKLLM_OK) {
        const uint64_t bytes = (uint64_t)n_ctx * cfg->n_rot * 4;
        float *cs = core_alloc(be->alloc, (size_t)bytes, 0);
        if (!cs) {
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        } else {
            for (uint32_t p = 0; p < n_ctx; p++)
                eng_rope_cs(cfg, m->rope_freqs, p, cs + (uint64_t)p * cfg->n_rot);
            st = vk_arena_alloc(&c->dev, bytes, &c->rope_cs, err);
            if (st == VKLLM_OK) st = vk_upload(d, &c->rope_cs, cs, bytes, err);
            core_free(be->alloc, cs);
        }
    }
    /* host-visible: results and one parameter buffer per recording */
    if (st == VKLLM_OK) st = vk_arena_alloc(&c->host, logit_row * c->max_out, &c->rb_logits, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->host, (uint64_t)c->max_out * ENG_TOP_K_MAX * 4, &c->rb_ids, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->host, (uint64_t)c->max_out * ENG_TOP_K_MAX * 4, &c->rb_vals, err);
    for (int i = 0; i < 2 && st == VKLLM_OK; i++) {
        st = vk_arena_alloc(&c->host, sizeof(vk_step_params) + 4ull * n_batch,
                            &c->steps[i].params, err);
        if (st == VKLLM_OK) st = vk_rec_init(d, &c->steps[i].rec, 32 + 16 * g->n_ops, err);
    }
    if (st == VKLLM_OK) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VkResult r = d->t.vkCreateFence(d->dev, &fi, NULL, &c->fence);
        if (r != VK_SUCCESS) st = core_errf(err, VKLLM_ERR_DEVICE, "fence: %s", vk_result_str(r));
    }
    const char *pe = getenv("VKLLM_VK_PROFILE");
    if (st == VKLLM_OK && pe && strcmp(pe, "1") == 0) {
        VkPhysicalDeviceProperties pp;
        vkGetPhysicalDeviceProperties(d->pdev, &pp);
        c->prof.on = pp.limits.timestampComputeAndGraphics && pp.limits.timestampPeriod > 0;
        c->prof.ns_per_tick = pp.limits.timestampPeriod;
        if (!c->prof.on) vk_log(d, VKLLM_LOG_WARN, "profile: the device has no timestamps");
        for (int i = 0; i < 2 && c->prof.on; i++) {
            VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                        .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                        .queryCount = g->n_ops + 4};
            c->steps[i].cat = core_calloc(be->alloc, g->n_ops + 4, sizeof *c->steps[i].cat);
            if (!c->steps[i].cat ||
                d->t.vkCreateQueryPool(d->dev, &qi, NULL, &c->steps[i].qp) != VK_SUCCESS)
                c->prof.on = false;
        }
    }
    if (st != VKLLM_OK) goto fail;
    vk_log(d, VKLLM_LOG_INFO, "vulkan context: %u positions, %.1f MiB of device memory in use",
           n_ctx, (double)d->allocated / 1048576.0);
    *out = c;
    return VKLLM_OK;
fail:
    vk_ctx_destroy(c);
    return st;
}

/* ---- recording one step ---- */

static vk_act rows_of(const eng_ctx *c, int buf) { return c->buf[buf]; }

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

static vkllm_status record(eng_ctx *c, vk_step *s, const eng_batch *b, core_err *err) {
    vk_backend *be = c->be;
    vk_rec *r = &s->rec;
    const model_config *cfg = &c->m->cfg;
    const uint32_t n = b->n_tokens;
    vkllm_status st = vk_rec_begin(r, err);
    const char *phase = n == 1 ? "decode" : "prefill";
    char pname[64];
    s->n_stamps = 0;
    if (c->prof.on && s->qp && st == VKLLM_OK) {
        be->d->t.vkCmdResetQueryPool(r->cb, s->qp, 0, c->g->n_ops + 4);
        prof_mark(c, s, "start");
    }
    for (uint32_t i = 0; i < c->g->n_ops && st == VKLLM_OK; i++) {
        const eng_op *op = &c->g->ops[i];
        switch (op->kind) {
        case EOP_EMBED:
            st = vk_embed(r, be->mm, lookup(c->vm, op->w[0]), s->params, rows_of(c, op->dst[0]),
                          n, err);
            break;
        case EOP_RMS_NORM: {
            /* the output head's norm reads the last n_out rows and writes rows 0.. */
            const uint32_t t0 = op->last_rows ? n - b->n_out : 0;
            const vk_weight *w = lookup(c->vm, op->w[0]);
            st = vk_rms_norm(r, be->misc, rows_of(c, op->src), t0, w->part[0].s,
                             rows_of(c, op->dst[0]), n - t0, op->w[0]->n_in, cfg->rms_eps, err);
            break;
        }
        case EOP_MATMUL:
            st = rec_matmul(c, r, op, op->last_rows ? b->n_out : n, err);
            break;
        case EOP_ROPE:
            st = vk_attn_rope_store(r, be->attn, &c->ash, s->params, c->rope_cs,
                                    rows_of(c, EB_Q), rows_of(c, EB_K), rows_of(c, EB_V),
                                    c->kc[op->layer], c->vc[op->layer], n, err);
            break;
        case EOP_KV_STORE:
            continue; /* done by rope_store */
        case EOP_ATTENTION:
            st = vk_attn_attend(r, be->attn, &c->ash, s->params, rows_of(c, op->src),
                                c->kc[op->layer], c->vc[op->layer], rows_of(c, op->dst[0]),
                                c->scratch, n, err);
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
        prof_mark(c, s, pname);
    }
    /* the results: logits, or the chosen candidates */
    const uint32_t nv = cfg->n_vocab;
    if (st == VKLLM_OK && b->top_k == 0) {
        VkBufferCopy reg = {.srcOffset = c->buf[EB_LOGITS].s.offset,
                            .dstOffset = c->rb_logits.offset,
                            .size = (uint64_t)b->n_out * nv * 4};
        be->d->t.vkCmdCopyBuffer(r->cb, c->buf[EB_LOGITS].s.buf, c->rb_logits.buf, 1, &reg);
    } else if (st == VKLLM_OK && b->top_k == 1) {
        st = vk_argmax(r, be->smp, rows_of(c, EB_LOGITS), b->n_out, nv, c->rb_ids, err);
    } else if (st == VKLLM_OK) {
        st = vk_topk(r, be->smp, rows_of(c, EB_LOGITS), b->n_out, nv, b->top_k, c->rb_ids,
                     c->rb_vals, c->topk_scratch, err);
    }
    snprintf(pname, sizeof pname, "%s sample/copy-out", phase);
    if (st == VKLLM_OK) prof_mark(c, s, pname);
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
    s->valid = st == VKLLM_OK;
    s->n_tokens = n;
    s->n_out = b->n_out;
    s->top_k = b->top_k;
    return st;
}

/* One sequence whose block table is the identity (the session's), in the mode its size
 * implies: the contiguous cache this backend still keeps. */
static vkllm_status vk_run_one(eng_ctx *c, const eng_batch *b, uint32_t pos0, float *logits,
                              core_err *err);

static vkllm_status vk_run(eng_ctx *c, const eng_batch *b0, float *logits, core_err *err) {
    vkllm_status st = eng_batch_check(b0, &c->cd, c->m->cfg.n_vocab, "vulkan", err);
    if (st != VKLLM_OK) return st;
    const eng_seq *sq = &b0->seqs[0];
    bool ident = sq->mode == eng_attn_mode_for(sq->n_tokens);
    for (uint32_t p = 0; ident && p * ENG_PAGE < sq->pos0 + sq->n_tokens; p++)
        ident = sq->pages[p] == p;
    if (!ident)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan: paged and batched steps are not "
                         "implemented yet");
    /* no output wanted: compute the last token's logits anyway, into scratch */
    eng_batch b = *b0;
    b.n_out = 1;
    if (b0->n_out == 0) b.top_k = 1, b.out_ids = c->scratch_ids, b.out_vals = NULL;
    return vk_run_one(c, &b, sq->pos0, logits, err);
}

static vkllm_status vk_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    c->pend = b;
    c->pend_logits = logits;
    return VKLLM_OK;
}

static vkllm_status vk_advance(eng_ctx *c, double deadline, bool *done, core_err *err) {
    (void)deadline;
    *done = false;
    if (!c->pend) return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: no step in progress");
    const eng_batch *b = c->pend;
    c->pend = NULL;
    vkllm_status st = vk_run(c, b, c->pend_logits, err);
    *done = st == VKLLM_OK;
    return st;
}

static vkllm_status vk_run_one(eng_ctx *c, const eng_batch *b, uint32_t pos0, float *logits,
                              core_err *err) {
    const uint32_t nv = c->m->cfg.n_vocab;
    if (b->n_tokens == 0 || b->n_tokens > c->n_batch || b->n_out == 0 ||
        b->n_out > b->n_tokens)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: batch of %u tokens (%u outputs), "
                         "limit %u", b->n_tokens, b->n_out, c->n_batch);
    if (b->n_out > c->max_out)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan: %u rows of logits asked for, "
                         "the device keeps at most %u", b->n_out, c->max_out);
    if ((uint64_t)pos0 + b->n_tokens > c->n_ctx)
        return core_errf(err, VKLLM_ERR_CONTEXT_FULL, "vulkan: positions %u..%u past context %u",
                         pos0, pos0 + b->n_tokens - 1, c->n_ctx);
    if (b->top_k > ENG_TOP_K_MAX || (b->top_k && !b->out_ids) || (!b->top_k && !logits))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: top_k %u (max %d) needs out_ids; "
                         "logits need a buffer", b->top_k, ENG_TOP_K_MAX);
    for (uint32_t t = 0; t < b->n_tokens; t++)
        if (b->tokens[t] < 0 || (uint32_t)b->tokens[t] >= nv)
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: token id %d out of range "
                             "[0, %u)", b->tokens[t], nv);
    vk_step *s = &c->steps[b->n_tokens == 1 ? 0 : 1];
    vkllm_status st = VKLLM_OK;
    if (!s->valid || s->n_tokens != b->n_tokens || s->n_out != b->n_out || s->top_k != b->top_k)
        st = record(c, s, b, err);
    if (st != VKLLM_OK) return st;
    vk_step_params *p = s->params.map;
    p->n_tokens = b->n_tokens;
    p->pos0 = pos0;
    p->n_kv = pos0 + b->n_tokens;
    p->n_out = b->n_out;
    memcpy(p->tokens, b->tokens, (size_t)b->n_tokens * sizeof *b->tokens);
    if ((st = vk_rec_submit_wait(&s->rec, c->fence, err)) != VKLLM_OK) {
        s->valid = false;
        return st;
    }
    prof_collect(c, s);
    if (b->top_k == 0) {
        memcpy(logits, c->rb_logits.map, (size_t)b->n_out * nv * 4);
        return VKLLM_OK;
    }
    const uint32_t k = b->top_k, *ids = c->rb_ids.map;
    for (uint32_t i = 0; i < b->n_out * k; i++) b->out_ids[i] = (int32_t)ids[i];
    if (b->out_vals) {
        if (k == 1) { /* argmax returns ids only: the values are in the logits on the device */
            for (uint32_t i = 0; i < b->n_out; i++) b->out_vals[i] = 0.0f;
        } else {
            memcpy(b->out_vals, c->rb_vals.map, (size_t)b->n_out * k * 4);
        }
    }
    return VKLLM_OK;
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
    if (st == VKLLM_OK) st = vk_attn_create(be->d, &be->attn, err);
    if (st == VKLLM_OK) st = vk_sample_create(be->d, &be->smp, err);
    if (st != VKLLM_OK) {
        if (!be->d) core_free(desc->alloc, be);
        else vk_destroy(&be->base);
        return st;
    }
    snprintf(be->base.name, sizeof be->base.name, "vulkan (%.80s, tier %d)", be->d->info.name,
             be->d->tier);
    vk_dev_info_public(&be->d->info, be->d->index, be->d->tier, &be->base.info);
    *out = &be->base;
    return VKLLM_OK;
}
