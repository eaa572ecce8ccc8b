/* Recording a step shape into command buffers (vk_backend.c's contexts): the op list as
 * dispatches, the feeds of a double-buffered step, the results copied out; paced steps cut
 * into timed segments; the profiler's timestamps; warm-up (recording without running, which
 * builds every pipeline). Nothing here submits. */
#include "vk/vk_backend_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t prof_cat(vk_prof *p, const char *name) {
    for (uint32_t i = 0; i < p->n_cats; i++)
        if (strcmp(p->name[i], name) == 0) return (uint16_t)i;
    if (p->n_cats == VK_PROF_CATS) return VK_PROF_CATS - 1;
    snprintf(p->name[p->n_cats], sizeof p->name[0], "%s", name);
    return (uint16_t)p->n_cats++;
}

/* A timestamp closing the span of the op just recorded (after its barrier). */
void vk_prof_mark(eng_ctx *c, vk_step_rec *s, const char *name) {
    if (!c->prof.on || !s->qp) return;
    s->cat[s->n_stamps] = prof_cat(&c->prof, name);
    c->be->d->t.vkCmdWriteTimestamp(s->rec.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->qp,
                                    s->n_stamps);
    s->n_stamps++;
}

void vk_prof_collect(eng_ctx *c, vk_step_rec *s) {
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

void vk_prof_report(eng_ctx *c) {
    if (!c->prof.on) return;
    double total = 0.0;
    for (uint32_t i = 0; i < c->prof.n_cats; i++)
        total += c->prof.ms[i];
    for (uint32_t i = 0; i < c->prof.n_cats; i++)
        if (c->prof.calls[i])
            vk_log(c->be->d, VKLLM_LOG_WARN, "profile %-28s %10.2f ms %5.1f%% %8llu calls",
                   c->prof.name[i], c->prof.ms[i], total > 0 ? 100.0 * c->prof.ms[i] / total : 0,
                   (unsigned long long)c->prof.calls[i]);
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
 * its rows, (attention kind | output rows << 8) and its feed. Returns the words in use. */
uint32_t vk_step_key(eng_ctx *c, const eng_batch *b) {
    uint32_t *k = c->key;
    k[0] = b->n_tokens;
    k[1] = b->n_seqs;
    k[2] = b->n_out;
    k[3] = b->top_k;
    for (uint32_t e = 0; e < b->n_seqs; e++) {
        k[4 + 3 * e] = b->seqs[e].n_tokens;
        k[5 + 3 * e] = entry_kind(c, &b->seqs[e]) | eng_seq_outs(&b->seqs[e]) << 8;
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

static vk_act rows_of(const eng_ctx *c, int buf) {
    return c->buf[buf];
}

/* A Q8_0 cache: the roped K rows and the V rows quantized as the CPU path does (through the
 * matmul activation buffers, free between ops), then packed into the cache's blocks. */
static vkllm_status rec_store_q8(eng_ctx *c, vk_rec *r, const vk_slot *sl, uint32_t layer,
                                 uint32_t n, core_err *err) {
    const model_config *cfg = &c->m->cfg;
    const uint32_t kv_dim = cfg->n_head_kv * cfg->head_dim;
    vk_rec_barrier(r);
    vkllm_status st =
        vk_mm_quantize(r, c->be->mm, QT_Q8_0, rows_of(c, EB_K), kv_dim, n, c->xq[0], err);
    if (st == VKLLM_OK)
        st = vk_mm_quantize(r, c->be->mm, QT_Q8_0, rows_of(c, EB_V), kv_dim, n, c->xq[1], err);
    if (st != VKLLM_OK) return st;
    vk_rec_barrier(r);
    return vk_attn_kv_pack_q8(r, c->be->attn, &c->ash, sl->params, c->xq[0], c->xq[1],
                              (uint32_t)(vk_mm_act_row_bytes(QT_Q8_0, kv_dim) / 4), c->kc[layer],
                              c->vc[layer], n, err);
}

/* The op's products; w0, when not NULL, stands for its first weight (a row range of it). */
static vkllm_status rec_matmul_w(eng_ctx *c, vk_rec *r, const eng_op *op, const vk_weight *w0,
                                 uint32_t n, core_err *err) {
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
            st = vk_mm_quantize(r, be->mm, op->w[i]->type, rows_of(c, op->src), n_in, n, c->xq[i],
                                err);
    }
    vk_rec_barrier(r);
    /* 2. the products */
    for (int i = 0; i < op->n_w && st == VKLLM_OK; i++) {
        const vk_weight *w = i == 0 && w0 ? w0 : vk_lookup(c->vm, op->w[i]);
        st = vk_mm_matmul(r, be->mm, w, c->xq[slot_of[i]], n, rows_of(c, op->dst[i]),
                          op->accumulate, err);
    }
    return st;
}

static vkllm_status rec_matmul(eng_ctx *c, vk_rec *r, const eng_op *op, uint32_t n, core_err *err) {
    return rec_matmul_w(c, r, op, NULL, n, err);
}

/* Descriptor sets a recording of this shape may allocate, at most: per op its quantizations
 * and matmul parts (16 is ample), per attention op two per run. */
static uint32_t rec_sets(const eng_ctx *c, uint32_t n_runs) {
    return 32 + 16 * c->g->n_ops + 2 * n_runs * c->m->cfg.n_layer;
}

/* The results of the output rows into the slot: logits, or the chosen candidates. */
static vkllm_status rec_results(eng_ctx *c, vk_slot *sl, vk_rec *r, uint32_t n_out, uint32_t top_k,
                                core_err *err) {
    vk_backend *be = c->be;
    const uint32_t nv = c->m->cfg.n_vocab;
    vkllm_status st = VKLLM_OK;
    if (top_k == 0) {
        VkBufferCopy reg = {.srcOffset = c->buf[EB_LOGITS].s.offset,
                            .dstOffset = sl->rb_logits.offset,
                            .size = (uint64_t)n_out * nv * 4};
        be->d->t.vkCmdCopyBuffer(r->cb, c->buf[EB_LOGITS].s.buf, sl->rb_logits.buf, 1, &reg);
    } else if (top_k == 1) {
        st = vk_argmax(r, be->smp, rows_of(c, EB_LOGITS), n_out, nv, &sl->params, sl->rb_ids, err);
    } else {
        st = vk_topk(r, be->smp, rows_of(c, EB_LOGITS), n_out, nv, top_k, &sl->params, sl->rb_ids,
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
            reg[n_reg++] =
                (VkBufferCopy){.srcOffset = prev->rb_ids.offset + (uint64_t)(feed - 1) * 4,
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
    for (uint32_t e = 0; e < c->key[1]; e++)
        any = any || c->key[6 + 3 * e] != 0;
    if (any) vk_rec_barrier(r);
}

/* Ends a paced step's segment and starts the next, timestamps around each. */
static vkllm_status seg_split(eng_ctx *c, vk_step_rec *sr, core_err *err) {
    vk_dev *d = c->be->d;
    vk_rec *r = &sr->rec;
    if (sr->seg_qp)
        d->t.vkCmdWriteTimestamp(r->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, sr->seg_qp,
                                 2 * r->n_seg - 1);
    vkllm_status st = vk_rec_split(r, err);
    if (st == VKLLM_OK && sr->seg_qp)
        d->t.vkCmdWriteTimestamp(r->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, sr->seg_qp,
                                 2 * (r->n_seg - 1));
    return st;
}

/* A paced step's output head: the product in row chunks of about a layer's weight bytes, a
 * segment each, so that no segment holds a whole vocabulary's product (several layers' work
 * for a small model). Chunks start at rows whose byte offset the device can bind. */
static vkllm_status rec_head_paced(eng_ctx *c, vk_step_rec *sr, const eng_op *op, uint32_t n,
                                   core_err *err) {
    const vk_weight *w = vk_lookup(c->vm, op->w[0]);
    /* a head-only stage of a split model has no layer to size chunks by: one chunk */
    const uint64_t layer_bytes = c->m->cfg.n_layer ? eng_layer_bytes(&c->m->layers[0]) : 0;
    const uint64_t head_bytes = w->row_bytes * w->n_out;
    uint32_t chunks = layer_bytes ? (uint32_t)((head_bytes + layer_bytes - 1) / layer_bytes) : 1;
    const uint32_t room = VK_REC_MAX_SEGS - sr->rec.n_seg; /* segments left */
    if (chunks > 8) chunks = 8;
    if (chunks > room) chunks = room;
    if (w->n_parts != 1 || chunks < 2) return rec_matmul(c, &sr->rec, op, n, err);
    uint64_t step = c->be->d->info.min_ssbo_align ? c->be->d->info.min_ssbo_align : 256;
    uint64_t g = w->row_bytes, t = step; /* rows per chunk: a multiple of step / gcd */
    while (t) {
        const uint64_t m = g % t;
        g = t;
        t = m;
    }
    const uint64_t unit = step / g;
    const uint32_t n_rows = w->part[0].n_rows;
    uint64_t per = (n_rows + chunks - 1) / chunks;
    per = (per + unit - 1) / unit * unit;
    vk_weight head = *w;
    vkllm_status st = VKLLM_OK;
    for (uint64_t r0 = 0; r0 < n_rows && st == VKLLM_OK; r0 += per) {
        const uint64_t nr = n_rows - r0 < per ? n_rows - r0 : per;
        head.part[0] = w->part[0];
        head.part[0].s.offset += r0 * w->row_bytes;
        head.part[0].s.size = nr * w->row_bytes;
        head.part[0].row0 = w->part[0].row0 + (uint32_t)r0;
        head.part[0].n_rows = (uint32_t)nr;
        if (r0 == 0) { /* the first chunk quantizes the input too */
            st = rec_matmul_w(c, &sr->rec, op, &head, n, err);
        } else {
            st = seg_split(c, sr, err);
            if (st == VKLLM_OK)
                st = vk_mm_matmul(&sr->rec, c->be->mm, &head, c->xq[0], n, rows_of(c, op->dst[0]),
                                  op->accumulate, err);
        }
    }
    return st;
}

/* Records the step shape c->key (n_key words) into sr, bound to slot sl's buffers. */
vkllm_status vk_record(eng_ctx *c, vk_slot *sl, vk_step_rec *sr, uint32_t n_key, core_err *err) {
    vk_backend *be = c->be;
    vk_rec *r = &sr->rec;
    const model_config *cfg = &c->m->cfg;
    const uint32_t n = c->key[0], n_out = c->key[2], top_k = c->key[3];
    const uint32_t n_runs = attn_runs(c->key, c->runs);
    sr->valid = false;
    memset(sr->seg_ms, 0, sizeof sr->seg_ms); /* another shape: its segments are untimed */
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
    if (c->m->no_embed) { /* a split's stage: the residual stream from the stage before */
        VkBufferCopy reg = {.srcOffset = sl->xio.offset,
                            .dstOffset = c->buf[EB_X].s.offset,
                            .size = (uint64_t)n * cfg->n_embd * 4};
        be->d->t.vkCmdCopyBuffer(r->cb, sl->xio.buf, c->buf[EB_X].s.buf, 1, &reg);
        vk_rec_barrier(r);
    }
    const uint32_t n_q = c->g->n_ops + 4;
    if (c->prof.on && !sr->qp) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = n_q};
        sr->cat = core_calloc(be->alloc, n_q, sizeof *sr->cat);
        if (!sr->cat ||
            be->d->t.vkCreateQueryPool(be->d->dev, &qi, be->d->vkac, &sr->qp) != VK_SUCCESS)
            c->prof.on = false;
    }
    const char *phase = n == 1 ? "decode" : c->key[1] > 1 ? "batch" : "prefill";
    char pname[64];
    sr->n_stamps = 0;
    if (c->prof.on && sr->qp) {
        be->d->t.vkCmdResetQueryPool(r->cb, sr->qp, 0, n_q);
        vk_prof_mark(c, sr, "start");
    }
    /* paced: a segment per group of layers (one layer where there are few), the output head
     * one more */
    uint32_t lps = (cfg->n_layer + VK_REC_MAX_SEGS - 3) / (VK_REC_MAX_SEGS - 2);
    if (lps == 0) lps = 1; /* a head-only stage of a split model */
    uint32_t group = 0;
    if (c->cd.paced && c->stamps && !sr->seg_qp) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = 2 * VK_REC_MAX_SEGS};
        if (be->d->t.vkCreateQueryPool(be->d->dev, &qi, be->d->vkac, &sr->seg_qp) != VK_SUCCESS)
            sr->seg_qp = VK_NULL_HANDLE; /* untimed: one segment at a time */
    }
    if (sr->seg_qp) {
        be->d->t.vkCmdResetQueryPool(r->cb, sr->seg_qp, 0, 2 * VK_REC_MAX_SEGS);
        be->d->t.vkCmdWriteTimestamp(r->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, sr->seg_qp, 0);
    }
    for (uint32_t i = 0; i < c->g->n_ops && st == VKLLM_OK; i++) {
        const eng_op *op = &c->g->ops[i];
        if (op->last_rows && n_out == 0) continue; /* no output head */
        const uint32_t g = op->last_rows ? UINT32_MAX : op->layer / lps;
        if (c->cd.paced && g != group) {
            group = g;
            st = seg_split(c, sr, err);
            if (st != VKLLM_OK) break;
        }
        switch (op->kind) {
        case EOP_EMBED:
            st = vk_embed(r, be->mm, vk_lookup(c->vm, op->w[0]), sl->params, rows_of(c, op->dst[0]),
                          n, err);
            break;
        case EOP_RMS_NORM: {
            /* the output head's norm gathers the output rows into rows 0 .. n_out - 1 */
            const vk_weight *w = vk_lookup(c->vm, op->w[0]);
            st =
                vk_rms_norm(r, be->misc, rows_of(c, op->src), 0, op->last_rows ? &sl->params : NULL,
                            w->part[0].s, rows_of(c, op->dst[0]), op->last_rows ? n_out : n,
                            op->w[0]->n_in, cfg->rms_eps, err);
            break;
        }
        case EOP_MATMUL:
            if (c->cd.paced && op->last_rows && op->n_w == 1)
                st = rec_head_paced(c, sr, op, n_out, err);
            else
                st = rec_matmul(c, r, op, op->last_rows ? n_out : n, err);
            break;
        case EOP_ROPE:
            st = vk_attn_rope_store(r, be->attn, &c->ash, sl->params, c->rope_cs, rows_of(c, EB_Q),
                                    rows_of(c, EB_K), rows_of(c, EB_V), c->kc[op->layer],
                                    c->vc[op->layer], n, !c->cd.kv_q8_0, err);
            if (st == VKLLM_OK && c->cd.kv_q8_0) st = rec_store_q8(c, r, sl, op->layer, n, err);
            break;
        case EOP_KV_STORE:
            continue; /* done by rope_store */
        case EOP_ATTENTION:
            if (c->cd.kv_q8_0)
                st = vk_attn_attend_q8(r, be->attn, &c->ash, sl->params, rows_of(c, op->src),
                                       c->kc[op->layer], c->vc[op->layer], rows_of(c, op->dst[0]),
                                       n, err);
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
        vk_prof_mark(c, sr, pname);
    }
    if (st == VKLLM_OK && c->m->no_head) { /* the residual stream to the stage after */
        VkBufferCopy reg = {.srcOffset = c->buf[EB_X].s.offset,
                            .dstOffset = sl->xio.offset,
                            .size = (uint64_t)n * cfg->n_embd * 4};
        be->d->t.vkCmdCopyBuffer(r->cb, c->buf[EB_X].s.buf, sl->xio.buf, 1, &reg);
    }
    if (st == VKLLM_OK && n_out && !c->m->no_head) {
        st = rec_results(c, sl, r, n_out, top_k, err);
        snprintf(pname, sizeof pname, "%s sample/copy-out", phase);
        if (st == VKLLM_OK) vk_prof_mark(c, sr, pname);
    }
    if (st == VKLLM_OK) { /* make the results visible to the host */
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
            .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
        };
        be->d->t.vkCmdPipelineBarrier(
            r->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    if (st == VKLLM_OK && sr->seg_qp)
        be->d->t.vkCmdWriteTimestamp(r->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, sr->seg_qp,
                                     2 * r->n_seg - 1);
    if (st == VKLLM_OK) st = vk_rec_end(r, err);
    if (st == VKLLM_OK) {
        memcpy(sr->key, c->key, n_key * sizeof *c->key);
        sr->valid = true;
    }
    return st;
}

/* The slot's recording of shape c->key: a valid one with that key, else the least recently
 * used (or an empty one) re-recorded. */
vkllm_status vk_find_rec(eng_ctx *c, vk_slot *sl, uint32_t n_key, vk_step_rec **out,
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
    return vk_record(c, sl, victim, n_key, err);
}

/* Records, without running them, the step shapes a context meets: 1 to 17 one-token entries
 * (every matrix-vector tile count, split attention) with logits, argmax and top-k outputs,
 * and prompt chunks of each attention kind. Recording builds every pipeline a dispatch uses,
 * which is what a first step of a new shape would otherwise pay for (tens of milliseconds a
 * kernel on some drivers). */
vkllm_status vk_ctx_warmup(eng_ctx *c, core_err *err) {
    vk_dev *d = c->be->d;
    vk_step_rec sr = {0};
    sr.key = core_calloc(c->be->alloc, c->key_words, sizeof *sr.key);
    if (!sr.key) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    const uint32_t tops[3] = {0, 1, ENG_TOP_K_MAX / 2};
    const uint32_t max_e = c->cd.n_seqs < 17 ? c->cd.n_seqs : 17;
    uint32_t *k = c->key;
    vkllm_status st = VKLLM_OK;
    for (uint32_t m = 1; m <= max_e && st == VKLLM_OK; m++)
        for (int t = 0; t < 3 && st == VKLLM_OK; t++) {
            if (m > c->max_out || m > c->cd.n_batch) continue;
            k[0] = k[1] = k[2] = m;
            k[3] = tops[t];
            for (uint32_t e = 0; e < m; e++) {
                k[4 + 3 * e] = 1;
                k[5 + 3 * e] = VK_ATTN_SPLIT | 1u << 8;
                k[6 + 3 * e] = 0;
            }
            st = vk_record(c, &c->slot[0], &sr, 4 + 3 * m, err);
        }
    const uint32_t chunks[4] = {2, 63, 64, c->cd.n_batch};
    for (int i = 0; i < 4 && st == VKLLM_OK; i++) {
        const uint32_t rows = chunks[i];
        if (rows > c->cd.n_batch || (i == 3 && rows <= 64)) continue;
        const eng_seq s = {.n_tokens = rows, .mode = (uint8_t)eng_attn_mode_for(rows)};
        k[0] = rows;
        k[1] = k[2] = 1;
        k[3] = 1;
        k[4] = rows;
        k[5] = entry_kind(c, &s) | 1u << 8;
        k[6] = 0;
        st = vk_record(c, &c->slot[0], &sr, 7, err);
    }
    vk_rec_free(&sr.rec);
    if (sr.qp) d->t.vkDestroyQueryPool(d->dev, sr.qp, d->vkac);
    if (sr.seg_qp) d->t.vkDestroyQueryPool(d->dev, sr.seg_qp, d->vkac);
    core_free(c->be->alloc, sr.cat);
    core_free(c->be->alloc, sr.key);
    return st;
}
