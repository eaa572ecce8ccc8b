/* Attention: RoPE + KV store, and causal grouped-query attention over the F16 cache, with the
 * CPU path's arithmetic (src/cpu/cpu_backend.c) so greedy tokens agree:
 *  - n_tok < 64 (or head_dim not a multiple of 8): attn_decode.comp, llama.cpp's F16
 *    accumulator; a single query runs split-K (n_splits chunks of the padded cache length,
 *    as attn_head_small) and attn_merge.comp combines the chunks in order;
 *  - n_tok >= 64: attn_prefill.comp, the tiled F32 path of attn_block_large.
 * Positions and cache lengths are read from the step parameter buffer and every grid depends
 * only on the shape and n_tok, so a recorded step replays for the next position.
 * The kernels' fma chains need a fused fma(); vk_attn_create checks the device's with one
 * probe dispatch and builds an exact emulation where it is not (llvmpipe). Nothing here
 * allocates per step or knows about models. */
#include "vk/vk_ops.h"

#include <math.h>

#define ATTN_TILE_Q 64    /* the CPU's CPU_ATTN_TILE_Q: batches from here take the F32 path */
#define ATTN_WG 64        /* the kernels' workgroup size */
#define DECODE_HD_MAX 256 /* attn_decode.comp HD_MAX */
#define PREFILL_HD_MAX 128
#define PREFILL_ROWS 16 /* attn_prefill.comp R */

struct vk_attn {
    vk_dev *d;
    vk_pipe rope_store, decode, merge, prefill;
};

/* Whether the device's fma() rounds once: 1 + 2^-12 squared minus 1 + 2^-11 is 2^-24 fused
 * and 0 when the product is rounded first (a tie, to even). */
static vkllm_status probe_fma(vk_dev *d, bool *fused, core_err *err) {
    vk_pipe p = {0};
    vkllm_status st =
        vk_pipe_create(d, "attn_fma_probe_t0", 3, (uint32_t[3]){1, 1, 1}, NULL, &p, err);
    if (st != VKLLM_OK) return st;
    const float x[3] = {1.0f + 0x1p-12f, 1.0f + 0x1p-12f, -(1.0f + 0x1p-11f)};
    float o[3] = {0};
    vk_arena a;
    vk_arena_init(&a, d, false, 256, "fma probe");
    vk_slice xs, os;
    st = vk_arena_alloc(&a, sizeof x, &xs, err);
    if (st == VKLLM_OK) st = vk_arena_alloc(&a, sizeof o, &os, err);
    if (st == VKLLM_OK) st = vk_upload(d, &xs, x, sizeof x, err);
    vk_rec r = {0};
    if (st == VKLLM_OK) st = vk_rec_init(d, &r, 1, err);
    if (st == VKLLM_OK) st = vk_rec_begin(&r, err);
    const uint32_t n = 1;
    const vk_slice b[3] = {xs, xs, os};
    if (st == VKLLM_OK) st = vk_rec_dispatch(&r, &p, b, 3, &n, sizeof n, 1, 1, 1, err);
    if (st == VKLLM_OK) st = vk_rec_end(&r, err);
    if (st == VKLLM_OK) {
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VkFence f;
        if (d->t.vkCreateFence(d->dev, &fi, NULL, &f) != VK_SUCCESS) {
            st = core_errf(err, VKLLM_ERR_DEVICE, "vulkan: fence for the fma probe");
        } else {
            st = vk_rec_submit_wait(&r, f, err);
            d->t.vkDestroyFence(d->dev, f, NULL);
        }
    }
    vk_rec_free(&r);
    if (st == VKLLM_OK) st = vk_download(d, &os, o, sizeof o, err);
    vk_arena_free(&a);
    vk_pipe_destroy(d, &p);
    if (st != VKLLM_OK) return st;
    if (o[1] != 0x1p-24f)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan: fma emulation gives %a for 0x1p-24",
                         (double)o[1]);
    *fused = o[0] == 0x1p-24f;
    return VKLLM_OK;
}

vkllm_status vk_attn_create(vk_dev *d, vk_attn **out, core_err *err) {
    vk_attn *a = core_calloc(d->alloc, 1, sizeof *a);
    if (!a) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    a->d = d;
    bool fused = true;
    vkllm_status st = probe_fma(d, &fused, err);
    if (st == VKLLM_OK && !fused)
        vk_log(d, VKLLM_LOG_INFO, "vulkan: fma() is not fused on %s: attention emulates it",
               d->info.name);
    const uint32_t ls[3] = {ATTN_WG, 1, 1};
    const vk_spec spec = {1, {fused ? 0u : 1u}}; /* attn.glsl EXACT_FMA */
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "rope_store", 7, ls, &spec, &a->rope_store, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "attn_decode", 6, ls, &spec, &a->decode, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "attn_merge", 3, ls, &spec, &a->merge, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "attn_prefill", 5, ls, &spec, &a->prefill, err);
    if (st != VKLLM_OK) {
        vk_attn_destroy(a);
        return st;
    }
    *out = a;
    return VKLLM_OK;
}

void vk_attn_destroy(vk_attn *a) {
    if (!a) return;
    vk_pipe_destroy(a->d, &a->rope_store);
    vk_pipe_destroy(a->d, &a->decode);
    vk_pipe_destroy(a->d, &a->merge);
    vk_pipe_destroy(a->d, &a->prefill);
    core_free(a->d->alloc, a);
}

/* Split-K partials of a single query: [n_head][n_splits] records of (M, S, acc[head_dim]). */
uint64_t vk_attn_scratch_bytes(const vk_attn_shape *s, uint32_t n_batch) {
    (void)n_batch;
    const uint32_t splits = s->n_splits ? s->n_splits : 1;
    return (uint64_t)s->n_head * splits * (s->head_dim + 2) * sizeof(float);
}

static vkllm_status check_shape(const vk_attn_shape *s, core_err *err) {
    if (s->n_head == 0 || s->n_head_kv == 0 || s->n_head % s->n_head_kv != 0 || s->head_dim == 0 ||
        s->head_dim % 2 != 0 || s->head_dim > DECODE_HD_MAX || s->n_rot > s->head_dim ||
        s->n_rot % 2 != 0 || s->n_ctx == 0 || s->n_splits == 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan attention: unsupported shape (heads %u/%u, head_dim %u, n_rot "
                         "%u, n_ctx %u, splits %u)",
                         s->n_head, s->n_head_kv, s->head_dim, s->n_rot, s->n_ctx, s->n_splits);
    return VKLLM_OK;
}

vkllm_status vk_attn_rope_store(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                                vk_slice rope_cs, vk_act q, vk_act k, vk_act v, vk_slice kcache,
                                vk_slice vcache, uint32_t n_tok, core_err *err) {
    vkllm_status st = check_shape(s, err);
    if (st != VKLLM_OK) return st;
    struct {
        uint32_t n_tok, n_head, n_head_kv, hd, n_rot, n_ctx, stride_q, stride_k, stride_v;
    } pc = {n_tok,    s->n_head, s->n_head_kv, s->head_dim, s->n_rot,
            s->n_ctx, q.stride,  k.stride,     v.stride};
    const uint32_t pairs = (s->n_head + 2 * s->n_head_kv) * s->head_dim / 2;
    vk_slice b[7] = {params, rope_cs, q.s, k.s, v.s, kcache, vcache};
    return vk_rec_dispatch(r, &a->rope_store, b, 7, &pc, sizeof pc, (pairs + ATTN_WG - 1) / ATTN_WG,
                           n_tok, 1, err);
}

vkllm_status vk_attn_attend(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                            vk_act q, vk_slice kcache, vk_slice vcache, vk_act out,
                            vk_slice scratch, uint32_t n_tok, core_err *err) {
    vkllm_status st = check_shape(s, err);
    if (st != VKLLM_OK) return st;
    const uint32_t hd = s->head_dim, group = s->n_head / s->n_head_kv;
    const uint32_t kv_dim = s->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd); /* as the CPU path computes it */
    if (n_tok >= ATTN_TILE_Q && hd % 8 == 0) {
        if (hd > PREFILL_HD_MAX)
            return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                             "vulkan attention: head_dim %u over %u for batches of %u tokens", hd,
                             PREFILL_HD_MAX, n_tok);
        struct {
            uint32_t n_tok, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o;
            float scale;
        } pc = {n_tok, s->n_head, group, hd, s->n_ctx, kv_dim, q.stride, out.stride, scale};
        vk_slice b[5] = {params, q.s, kcache, vcache, out.s};
        return vk_rec_dispatch(r, &a->prefill, b, 5, &pc, sizeof pc, s->n_head,
                               (n_tok + PREFILL_ROWS - 1) / PREFILL_ROWS, 1, err);
    }
    const bool split = n_tok == 1;
    if (split && scratch.size < vk_attn_scratch_bytes(s, n_tok))
        return core_errf(
            err, VKLLM_ERR_INTERNAL, "vulkan attention: scratch of %llu bytes, %llu needed",
            (unsigned long long)scratch.size, (unsigned long long)vk_attn_scratch_bytes(s, n_tok));
    struct {
        uint32_t n_tok, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o, n_splits, split_mode;
        float scale;
    } pc = {n_tok,      s->n_head,   group,           hd,   s->n_ctx, kv_dim, q.stride,
            out.stride, s->n_splits, split ? 1u : 0u, scale};
    vk_slice b[6] = {params, q.s, kcache, vcache, out.s, scratch};
    st = vk_rec_dispatch(r, &a->decode, b, 6, &pc, sizeof pc, s->n_head, split ? s->n_splits : 1,
                         split ? 1 : n_tok, err);
    if (st != VKLLM_OK || !split) return st;
    vk_rec_barrier(r);
    struct {
        uint32_t n_head, hd, n_ctx, n_splits, stride_o;
    } mc = {s->n_head, hd, s->n_ctx, s->n_splits, out.stride};
    vk_slice mb[3] = {params, scratch, out.s};
    return vk_rec_dispatch(r, &a->merge, mb, 3, &mc, sizeof mc, s->n_head, 1, 1, err);
}
