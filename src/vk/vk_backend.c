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
 *
 * Here: weights, contexts and the backend. Recording a step shape is vk_record.c, running
 * steps (whole, or paced in segments for a host's frame budget) vk_step.c; the structs they
 * share are in vk_backend_int.h.
 */
#include "vk/vk_backend_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- weights ---- */

const vk_weight *vk_lookup(const vk_model *vm, const eng_weight *w) {
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
    return vk_weight_upload(be->d, &vm->arena, w->name, w->type, w->n_in, w->n_out, w->row_bytes,
                            w->data, out, err);
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
    const uint64_t expect = em->weight_bytes + em->weight_bytes / 16 + (1u << 20);
    vk_arena_init(&vm->arena, be->d, false, expect, "model weights");
    vm->arena.expect = expect;
    vm->layers = core_calloc(be->alloc, em->cfg.n_layer + 1u, sizeof *vm->layers);
    vkllm_status st =
        vm->layers ? VKLLM_OK : core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    const double t0 = core_time_s();
    /* a stage of a split model holds only its part (eng_model_stage) */
    if (st == VKLLM_OK && !em->no_embed && !vk_embed_supports(em->tok_embd.type))
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED,
                       "tensor %s: type %s has no Vulkan embedding kernel; use --device cpu",
                       em->tok_embd.name, quant_type_name(em->tok_embd.type));
    if (st == VKLLM_OK && !em->no_embed)
        st = upload(be, vm, &em->tok_embd, &vm->tok_embd, true, err);
    if (st == VKLLM_OK && !em->no_head)
        st = upload(be, vm, &em->output_norm, &vm->output_norm, false, err);
    if (st == VKLLM_OK && !em->no_head && !em->tied_output)
        st = upload(be, vm, &em->output, &vm->output, true, err);
    for (uint32_t l = 0; st == VKLLM_OK && l < em->cfg.n_layer; l++) {
        const eng_weight *src = &em->layers[l].attn_norm;
        vk_weight *dst = &vm->layers[l].attn_norm;
        for (size_t f = 0; st == VKLLM_OK && f < sizeof(eng_layer) / sizeof(eng_weight); f++) {
            const bool norm =
                &src[f] == &em->layers[l].attn_norm || &src[f] == &em->layers[l].ffn_norm;
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
    if (sl->busy && sl->fence && sl->n_submitted)
        d->t.vkWaitForFences(d->dev, 1, vk_seg_fence(sl, sl->n_submitted - 1), VK_TRUE, UINT64_MAX);
    for (int i = 0; i < VK_SLOT_RECS; i++) {
        vk_step_rec *sr = &sl->recs[i];
        vk_rec_free(&sr->rec);
        if (sr->qp) d->t.vkDestroyQueryPool(d->dev, sr->qp, d->vkac);
        if (sr->seg_qp) d->t.vkDestroyQueryPool(d->dev, sr->seg_qp, d->vkac);
        core_free(c->be->alloc, sr->cat);
        core_free(c->be->alloc, sr->key);
    }
    if (sl->fence) d->t.vkDestroyFence(d->dev, sl->fence, d->vkac);
    for (int i = 0; i < VK_REC_MAX_SEGS - 1; i++)
        if (sl->seg_fence[i]) d->t.vkDestroyFence(d->dev, sl->seg_fence[i], d->vkac);
}

static void vk_ctx_destroy(eng_ctx *c) {
    if (!c) return;
    vk_prof_report(c);
    for (int i = 0; i < 2; i++)
        slot_free(c, &c->slot[i]);
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
        &c->host, vk_step_params_bytes(cd->n_batch, cd->n_seqs, cd->n_ctx, cd->n_ban), &sl->params,
        err);
    if (st == VKLLM_OK)
        vk_step_params_init(sl->params.map, cd->n_batch, cd->n_seqs, cd->ban, cd->n_ban);
    /* a split's stage without the head has no results to read back */
    const uint64_t outs = c->m->no_head ? 1 : c->max_out;
    if (st == VKLLM_OK) st = vk_arena_alloc(&c->host, nv * 4 * outs, &sl->rb_logits, err);
    if (st == VKLLM_OK) st = vk_arena_alloc(&c->host, outs * ENG_TOP_K_MAX * 4, &sl->rb_ids, err);
    if (st == VKLLM_OK) st = vk_arena_alloc(&c->host, outs * ENG_TOP_K_MAX * 4, &sl->rb_vals, err);
    /* a stage of a split model: its residual stream in and out (eng_batch.x_in, x_out) */
    if (st == VKLLM_OK && (c->m->no_embed || c->m->no_head))
        st = vk_arena_alloc(&c->host, (uint64_t)cd->n_batch * c->m->cfg.n_embd * 4, &sl->xio, err);
    for (int i = 0; i < VK_SLOT_RECS && st == VKLLM_OK; i++) {
        sl->recs[i].key = core_calloc(c->be->alloc, c->key_words, sizeof(uint32_t));
        if (!sl->recs[i].key) st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    }
    if (st == VKLLM_OK) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VkResult r = d->t.vkCreateFence(d->dev, &fi, d->vkac, &sl->fence);
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
    d->fn.vkGetPhysicalDeviceProperties(d->pdev, &pp);
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
    while (vm && vm->em != m)
        vm = vm->next;
    if (!vm) return core_errf(err, VKLLM_ERR_INTERNAL, "vulkan: model not attached");
    if (cd->n_ctx == 0 || cd->n_batch == 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vulkan: context of %u positions, batches "
                         "of %u tokens",
                         cd->n_ctx, cd->n_batch);
    const model_config *cfg = &m->cfg;
    vkllm_status st0 = eng_ban_check(cd, cfg->n_vocab, "vulkan", err);
    if (st0 != VKLLM_OK) return st0;
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
    c->kc = core_calloc(be->alloc, cfg->n_layer + 1u, sizeof *c->kc); /* + 1: a head-only stage */
    c->vc = core_calloc(be->alloc, cfg->n_layer + 1u, sizeof *c->vc);
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
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED,
                       "vulkan: a Q8_0 KV cache needs head_dim a "
                       "multiple of 64 (this model's is %u): use an F16 cache",
                       cfg->head_dim);
        goto fail;
    }
    const uint64_t kv_bytes = n_slots * eng_kv_row_bytes(kv_dim, cd->kv_q8_0);
    if (kv_bytes > d->max_buffer || n_slots > UINT32_MAX / 2) {
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED,
                       "vulkan: one layer's K cache of %u pages (%llu positions) is %.1f MiB, "
                       "over the device's buffer limit of %.1f MiB (maxStorageBufferRange); use "
                       "a smaller context (-c) or fewer pages",
                       c->cd.n_pages, (unsigned long long)n_slots, (double)kv_bytes / 1048576.0,
                       (double)d->max_buffer / 1048576.0);
        goto fail;
    }
    /* logits rows the device keeps: one per entry or as asked, if they fit one buffer */
    const uint64_t logit_row = (uint64_t)cfg->n_vocab * 4;
    uint32_t want_out = c->cd.max_out ? c->cd.max_out : n_seqs;
    if (want_out > n_batch) want_out = n_batch;
    c->max_out =
        d->max_buffer / logit_row < want_out ? (uint32_t)(d->max_buffer / logit_row) : want_out;
    if (c->max_out == 0) {
        st = core_errf(err, VKLLM_ERR_UNSUPPORTED,
                       "vulkan: a row of %u logits does not fit "
                       "one buffer",
                       cfg->n_vocab);
        goto fail;
    }
    for (int i = 0; i < EB_COUNT && st == VKLLM_OK; i++) {
        const uint32_t rows = i == EB_LOGITS ? c->max_out : n_batch;
        c->buf[i].stride = g->buf_width[i];
        const uint64_t bytes = (uint64_t)rows * g->buf_width[i] * 4; /* 0: a stage's no head */
        st = vk_arena_alloc(&c->dev, bytes ? bytes : 256, &c->buf[i].s, err);
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
    c->ash = (vk_attn_shape){.n_head = cfg->n_head,
                             .n_head_kv = cfg->n_head_kv,
                             .head_dim = cfg->head_dim,
                             .n_rot = cfg->n_rot,
                             .n_ctx = c->cd.n_ctx,
                             .n_slots = (uint32_t)n_slots,
                             .n_splits = (uint32_t)(be->n_splits > 0 ? be->n_splits : 1)};
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&c->dev, vk_attn_scratch_bytes(&c->ash, n_seqs), &c->scratch, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(
            &c->dev,
            m->no_head ? 256 : vk_topk_scratch_bytes(c->max_out, cfg->n_vocab, ENG_TOP_K_MAX),
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
    for (int i = 0; i < 2 && st == VKLLM_OK; i++)
        st = slot_init(c, &c->slot[i], err);
    if (st != VKLLM_OK) goto fail;
    c->cd.ban = NULL; /* the caller's: its ids are in the parameter buffers now */
    prof_init(c);
    if (c->cd.paced) {
        VkPhysicalDeviceProperties pp;
        d->fn.vkGetPhysicalDeviceProperties(d->pdev, &pp);
        c->stamps = pp.limits.timestampComputeAndGraphics && pp.limits.timestampPeriod > 0;
        c->ns_per_tick = pp.limits.timestampPeriod;
    }
    vk_log(d, VKLLM_LOG_INFO,
           "vulkan context: %u positions, %u pages, %u entries a step, "
           "%.1f MiB of device memory in use",
           c->cd.n_ctx, c->cd.n_pages, n_seqs, (double)d->allocated / 1048576.0);
    *out = c;
    return VKLLM_OK;
fail:
    if (st == VKLLM_ERR_OUT_OF_MEMORY && err) { /* which context did not fit */
        char msg[CORE_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", err->msg);
        core_errf(err, st, "vulkan: a context of %u tokens (batches of %u): %s", c->cd.n_ctx,
                  n_batch, msg);
    }
    vk_ctx_destroy(c);
    return st;
}

/* ---- the backend ---- */

static void vk_destroy(eng_backend *b) {
    vk_backend *be = (vk_backend *)b;
    while (be->models)
        vk_model_detach(b, be->models->em);
    vk_mm_destroy(be->mm);
    vk_attn_destroy(be->attn);
    vk_misc_destroy(be->misc);
    vk_sample_destroy(be->smp);
    vk_dev_destroy(be->d);
    core_free(be->alloc, be);
}

/* ---- measurement (vk_bench.c) ---- */

static vkllm_status vk_be_bandwidth(eng_backend *b, double seconds, double *gbps, uint64_t *bytes,
                                    core_err *err) {
    return vk_bench_bandwidth(((vk_backend *)b)->d, seconds, gbps, bytes, err);
}

static vkllm_status vk_be_bench_op(eng_backend *b, const vkllm_bench_op_desc *desc, uint32_t w_type,
                                   vkllm_bench_op_result *out, core_err *err) {
    vk_backend *be = (vk_backend *)b;
    return vk_bench_op(be->d, be->mm, be->attn, (uint32_t)(be->n_splits > 0 ? be->n_splits : 1),
                       desc, w_type, out, err);
}

static uint64_t vk_be_held(const eng_backend *b) {
    return atomic_load(&((const vk_backend *)b)->d->allocated);
}

static const eng_backend_vtbl k_vk_vtbl = {
    .destroy = vk_destroy,
    .model_attach = vk_model_attach,
    .model_detach = vk_model_detach,
    .ctx_create = vk_ctx_create,
    .ctx_destroy = vk_ctx_destroy,
    .run = vk_step_run,
    .warmup = vk_ctx_warmup,
    .begin = vk_step_begin,
    .advance = vk_step_advance,
    .bandwidth = vk_be_bandwidth,
    .bench_op = vk_be_bench_op,
    .held = vk_be_held,
};

struct vk_dev *vk_backend_dev(eng_backend *be) {
    return ((vk_backend *)be)->d;
}

vkllm_status vk_backend_create(const vk_backend_desc *desc, eng_backend **out, core_err *err) {
    *out = NULL;
    vk_backend *be = core_calloc(desc->alloc, 1, sizeof *be);
    if (!be) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    be->base.vt = &k_vk_vtbl;
    be->base.feeds = true;
    be->base.bans = true;
    be->alloc = desc->alloc;
    be->n_splits = desc->n_splits;
    vk_dev_desc dd = {.alloc = desc->alloc,
                      .log = desc->log,
                      .log_user = desc->log_user,
                      .select = desc->select,
                      .max_tier = desc->max_tier,
                      .memory_cap = desc->memory_cap,
                      .max_buffer = desc->max_buffer,
                      .host = desc->host,
                      .vkac = desc->vkac};
    vkllm_status st = vk_dev_create(&dd, &be->d, err);
    if (st == VKLLM_OK && desc->skip_cpu_devices && strcmp(be->d->info.kind, "cpu-vulkan") == 0)
        st = core_errf(err, VKLLM_ERR_NO_DEVICE,
                       "the only Vulkan device is %s, a CPU "
                       "implementation",
                       be->d->info.name);
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
        if (!be->d)
            core_free(desc->alloc, be);
        else
            vk_destroy(&be->base);
        return st;
    }
    snprintf(be->base.name, sizeof be->base.name, "vulkan (%.60s, tier %d%s%s)", be->d->info.name,
             be->d->tier, relaxed ? ", relaxed products" : "",
             be->d->own_device ? "" : ", the host's device");
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
