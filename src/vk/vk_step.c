/* Running recorded steps (vk_record.c): begin writes the parameters and submits (whole) or
 * leaves the segments to advance (paced); advance submits paced segments as the deadline
 * allows and waits for the oldest step; collect copies its results out. */
#include "vk/vk_backend_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- steps ---- */

vkllm_status vk_step_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    vkllm_status st = eng_batch_check(b, &c->cd, c->m->cfg.n_vocab, "vulkan", err);
    if (st != VKLLM_OK) return st;
    if (b->n_out && !b->top_k && !logits)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: outputs need a logits buffer");
    for (uint32_t e = 0; e < b->n_seqs; e++)
        if (b->seqs[e].n_lora)
            return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                             "vulkan: LoRA adapters do not run on this backend yet (use the CPU)");
    if (b->n_out > c->max_out)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan: %u rows of logits asked for, "
                         "the device keeps at most %u",
                         b->n_out, c->max_out);
    if (c->m->no_embed != (b->x_in != NULL) || c->m->no_head != (b->x_out != NULL) ||
        (c->m->no_head && b->n_out))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vulkan: a stage %s the embedding and %s the head takes %s and gives %s",
                         c->m->no_embed ? "without" : "with", c->m->no_head ? "without" : "with",
                         c->m->no_embed ? "x_in" : "tokens",
                         c->m->no_head ? "x_out, no outputs" : "outputs, no x_out");
    vk_slot *sl = &c->slot[c->next];
    if (sl->busy)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vulkan: two steps in flight already; "
                         "advance the first to its end before beginning another");
    const vk_slot *prev = &c->slot[c->next ^ 1];
    for (uint32_t e = 0; e < b->n_seqs; e++)
        if (b->seqs[e].feed && (!prev->busy || prev->top_k != 1 || b->seqs[e].feed > prev->n_out))
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "vulkan: entry %u is fed from output "
                             "row %u of the step in flight, which %s",
                             e, b->seqs[e].feed - 1,
                             !prev->busy        ? "is not there"
                             : prev->top_k != 1 ? "is not argmax"
                                                : "it lacks");
    const uint32_t n_key = vk_step_key(c, b);
    vk_step_rec *sr;
    if ((st = vk_find_rec(c, sl, n_key, &sr, err)) != VKLLM_OK) return st;
    for (uint32_t e = 0; e < b->n_seqs; e++)
        c->pseq[e] = (vk_step_seq){.n_tokens = b->seqs[e].n_tokens,
                                   .pos0 = b->seqs[e].pos0,
                                   .n_out = eng_seq_outs(&b->seqs[e]),
                                   .pages = b->seqs[e].pages,
                                   .ban = b->seqs[e].ban};
    vk_step_params_write(sl->params.map, b->tokens, c->pseq, b->n_seqs);
    if (b->x_in) memcpy(sl->xio.map, b->x_in, (size_t)b->n_tokens * c->m->cfg.n_embd * 4);
    sl->n_submitted = sl->n_complete = 0;
    if (!c->cd.paced) { /* the whole step now; paced steps go out in advance (pace_submit) */
        vk_dev *d = c->be->d;
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                           .commandBufferCount = sr->rec.n_seg,
                           .pCommandBuffers = sr->rec.cbs};
        VkResult res = d->t.vkResetFences(d->dev, 1, &sl->fence);
        if (res == VK_SUCCESS) res = vk_queue_submit(d, &si, sl->fence);
        if (res != VK_SUCCESS)
            return core_errf(err, VKLLM_ERR_DEVICE, "vulkan step: %s%s", vk_result_str(res),
                             res == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
        sl->n_submitted = sr->rec.n_seg;
    }
    sr->used = ++c->clock;
    sl->busy = true;
    sl->run = sr;
    sl->n_out = b->n_out;
    sl->top_k = b->top_k;
    sl->logits = logits;
    sl->out_ids = b->out_ids;
    sl->out_vals = b->out_vals;
    sl->x_out = b->x_out;
    sl->n_tokens = b->n_tokens;
    c->next ^= 1;
    c->n_busy++;
    return VKLLM_OK;
}

/* A finished step's results, out of its slot. */
static void collect(eng_ctx *c, vk_slot *sl) {
    const uint32_t nv = c->m->cfg.n_vocab, k = sl->top_k;
    vk_prof_collect(c, sl->run);
    vk_step_rec *sr = sl->run;
    uint64_t t[2 * VK_REC_MAX_SEGS];
    const uint32_t n_seg = sr->rec.n_seg;
    vk_dev *d = c->be->d;
    if (sr->seg_qp &&
        d->t.vkGetQueryPoolResults(d->dev, sr->seg_qp, 0, 2 * n_seg, sizeof t, t, 8,
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
        for (uint32_t i = 0; i < n_seg; i++) {
            const float ms = (float)((double)(t[2 * i + 1] - t[2 * i]) * c->ns_per_tick * 1e-6);
            sr->seg_ms[i] = sr->seg_ms[i] > 0 ? 0.5f * (sr->seg_ms[i] + ms) : ms;
        }
    if (sl->x_out) memcpy(sl->x_out, sl->xio.map, (size_t)sl->n_tokens * c->m->cfg.n_embd * 4);
    if (sl->n_out && k == 0) memcpy(sl->logits, sl->rb_logits.map, (size_t)sl->n_out * nv * 4);
    const uint32_t *ids = sl->rb_ids.map;
    for (uint32_t i = 0; k && i < sl->n_out * k; i++)
        sl->out_ids[i] = (int32_t)ids[i];
    if (k && sl->out_vals) {
        if (k == 1) { /* argmax returns ids only: the values are in the logits on the device */
            for (uint32_t i = 0; i < sl->n_out; i++)
                sl->out_vals[i] = 0.0f;
        } else {
            memcpy(sl->out_vals, sl->rb_vals.map, (size_t)sl->n_out * k * 4);
        }
    }
}

/* ---- paced steps: segments submitted as the host's budget allows ---- */

static vkllm_status seg_submit(eng_ctx *c, vk_slot *sl, core_err *err) {
    vk_dev *d = c->be->d;
    const uint32_t k = sl->n_submitted;
    VkFence *f = vk_seg_fence(sl, k);
    VkResult res = VK_SUCCESS;
    if (!*f) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        res = d->t.vkCreateFence(d->dev, &fi, d->vkac, f);
    } else {
        res = d->t.vkResetFences(d->dev, 1, f);
    }
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &sl->run->rec.cbs[k]};
    if (res == VK_SUCCESS) res = vk_queue_submit(d, &si, *f);
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan step segment: %s%s", vk_result_str(res),
                         res == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
    sl->n_submitted++;
    return VKLLM_OK;
}

/* The steps in flight, oldest first. */
static vk_slot *busy_slot(eng_ctx *c, uint32_t i) {
    return &c->slot[(c->n_busy == 2 ? c->next : c->next ^ 1) ^ i];
}

/* Submits the next segments of the steps in flight, oldest first: all of them without a
 * deadline; with one, those whose measured device times say they finish by the deadline
 * after the segments still running. When none of vkllm's work runs and the next segment does
 * not fit (or was never timed), it goes anyway, once per deadline (per vkllm_step call), so
 * every call makes progress: a call may overrun its budget by one segment. */
static vkllm_status pace_submit(eng_ctx *c, double deadline, core_err *err) {
    vk_dev *d = c->be->d;
    const double now_ms = core_time_s() * 1e3, end_ms = deadline * 1e3;
    double queued_ms = 0.0;
    bool running = false;
    for (uint32_t i = 0; i < c->n_busy; i++) {
        vk_slot *sl = busy_slot(c, i);
        const vk_step_rec *sr = sl->run;
        while (sl->n_complete < sl->n_submitted &&
               d->t.vkGetFenceStatus(d->dev, *vk_seg_fence(sl, sl->n_complete)) == VK_SUCCESS)
            sl->n_complete++;
        for (uint32_t k = sl->n_complete; k < sl->n_submitted; k++) {
            running = true;
            queued_ms += sr->seg_ms[k];
        }
        while (sl->n_submitted < sr->rec.n_seg) {
            const float est = sr->seg_ms[sl->n_submitted];
            if (deadline > 0 && !(est > 0 && now_ms + queued_ms + est <= end_ms)) {
                if (running || c->forced_deadline == deadline) return VKLLM_OK;
                c->forced_deadline = deadline;
            }
            vkllm_status st = seg_submit(c, sl, err);
            if (st != VKLLM_OK) return st;
            queued_ms += est;
            running = true;
        }
    }
    return VKLLM_OK;
}

vkllm_status vk_step_advance(eng_ctx *c, double deadline, bool *done, core_err *err) {
    *done = false;
    if (c->n_busy == 0) return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan: no step in progress");
    vk_dev *d = c->be->d;
    vk_slot *sl = busy_slot(c, 0);
    VkResult res = VK_SUCCESS;
    for (;;) {
        uint64_t timeout = UINT64_MAX;
        if (deadline > 0) {
            const double left = deadline - core_time_s();
            timeout = left > 0 ? (uint64_t)(left * 1e9) : 0;
        }
        if (c->cd.paced) {
            vkllm_status st = pace_submit(c, deadline, err);
            if (st != VKLLM_OK) return st;
            if (sl->n_submitted < sl->run->rec.n_seg) {  /* wait for a segment, then submit more */
                if (sl->n_complete == sl->n_submitted) { /* nothing fits before the deadline */
                    /* the call's time is the host's budget: sleep it out rather than have
                     * vkllm_step spin on advance until the deadline */
                    const double left = deadline - core_time_s();
                    if (left > 0) {
                        struct timespec ts = {.tv_sec = (time_t)left,
                                              .tv_nsec =
                                                  (long)((left - (double)(time_t)left) * 1e9)};
                        nanosleep(&ts, NULL);
                    }
                    return VKLLM_OK;
                }
                res = d->t.vkWaitForFences(d->dev, 1, vk_seg_fence(sl, sl->n_complete), VK_TRUE,
                                           timeout);
                if (res == VK_TIMEOUT) return VKLLM_OK;
                if (res != VK_SUCCESS) break;
                continue;
            }
        }
        res = d->t.vkWaitForFences(d->dev, 1, &sl->fence, VK_TRUE, timeout);
        break;
    }
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
vkllm_status vk_step_run(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    const uint32_t mine = c->next;
    vkllm_status st = vk_step_begin(c, b, logits, err);
    bool done = false;
    while (st == VKLLM_OK && c->slot[mine].busy)
        st = vk_step_advance(c, 0.0, &done, err);
    return st;
}
