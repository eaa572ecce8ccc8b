/* Attention: RoPE + KV store, and causal grouped-query attention over the paged F16 cache,
 * with the CPU path's arithmetic (src/cpu/cpu_backend.c) so greedy tokens agree:
 *  - SERIAL (or TILED with head_dim not a multiple of 8): attn_decode.comp, llama.cpp's F16
 *    accumulator, over a run of rows of any entries;
 *  - SPLIT: the same for one-token entries, split-K (n_splits chunks of the padded cache
 *    length, as attn_head_small) and attn_merge.comp combines the chunks in order;
 *  - TILED: attn_prefill.comp, the tiled F32 path of attn_block_large, one entry a dispatch;
 *  - on CPU drivers (vk_attn_set_lane), SERIAL and SPLIT runs use attn_lane.comp instead: the
 *    same arithmetic with one invocation per (head, split, row), no shared memory; and the
 *    merge one invocation per (head, row) (attn_merge.comp LANE).
 * Positions, cache slots and block tables are read from the step parameter buffer and every
 * grid depends only on the shape and the runs, so a recorded step replays for the next
 * positions. The kernels' fma chains need a fused fma(); where the device's is not
 * (llvmpipe), every pipeline is built with shaders/common.glsl's exact emulation
 * (vk_dev.fma_exact). Nothing here allocates per step or knows about models. */
#include "vk/vk_ops.h"

#include <math.h>
#include <string.h>

#define ATTN_WG 64        /* the kernels' workgroup size */
#define DECODE_HD_MAX 256 /* attn_decode.comp HD_MAX */
#define PREFILL_HD_MAX 128
#define PREFILL_ROWS 16 /* attn_prefill.comp R */
#define LANE_WG 8       /* attn_lane.comp: lavapipe's SIMD width */
#define LANE_HDS 4      /* head sizes with a built attn_lane pipeline */

struct vk_attn {
    vk_dev *d;
    vk_pipe rope_store, decode, merge, merge_lane, prefill, kv_pack_q8;
    vk_pipe q8_pipe[LANE_HDS]; /* attn_q8 by head size */
    uint32_t q8_hd[LANE_HDS];
    bool lane;                   /* SERIAL and SPLIT runs through attn_lane.comp */
    vk_pipe lane_pipe[LANE_HDS]; /* by head size (its specialization) */
    uint32_t lane_hd[LANE_HDS];
};

vkllm_status vk_attn_create(vk_dev *d, vk_attn **out, core_err *err) {
    vk_attn *a = core_calloc(d->alloc, 1, sizeof *a);
    if (!a) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    a->d = d;
    /* lavapipe loads memory one lane at a time: attn_decode's shared-memory tiles cost ~25x */
    a->lane = strcmp(d->info.kind, "cpu-vulkan") == 0;
    vkllm_status st = VKLLM_OK;
    const uint32_t ls[3] = {ATTN_WG, 1, 1};
    const vk_spec *spec = NULL; /* EXACT_FMA comes from vk_pipe_create */
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "rope_store", 7, ls, spec, &a->rope_store, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "attn_decode", 6, ls, spec, &a->decode, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "attn_merge", 3, ls, spec, &a->merge, err);
    const vk_spec lane_spec = {.n = 1, .v = {1}}; /* attn_merge LANE */
    if (st == VKLLM_OK)
        st = vk_pipe_for_tier(d, "attn_merge", 3, (uint32_t[3]){LANE_WG, 1, 1}, &lane_spec,
                              &a->merge_lane, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "attn_prefill", 5, ls, spec, &a->prefill, err);
    if (st == VKLLM_OK) st = vk_pipe_for_tier(d, "kv_pack_q8", 5, ls, spec, &a->kv_pack_q8, err);
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
    vk_pipe_destroy(a->d, &a->merge_lane);
    vk_pipe_destroy(a->d, &a->prefill);
    vk_pipe_destroy(a->d, &a->kv_pack_q8);
    for (int i = 0; i < LANE_HDS; i++) {
        vk_pipe_destroy(a->d, &a->lane_pipe[i]);
        vk_pipe_destroy(a->d, &a->q8_pipe[i]);
    }
    core_free(a->d->alloc, a);
}

bool vk_attn_get_lane(const vk_attn *a) {
    return a->lane;
}
void vk_attn_set_lane(vk_attn *a, bool lane) {
    a->lane = lane;
}

/* Split-K partials of the one-token entries: [entry][n_head][n_splits] (M, S, acc). */
uint64_t vk_attn_scratch_bytes(const vk_attn_shape *s, uint32_t max_seqs) {
    const uint32_t splits = s->n_splits ? s->n_splits : 1;
    return (uint64_t)(max_seqs ? max_seqs : 1) * s->n_head * splits * (s->head_dim + 2) *
           sizeof(float);
}

static vkllm_status check_shape(const vk_attn_shape *s, core_err *err) {
    if (s->n_head == 0 || s->n_head_kv == 0 || s->n_head % s->n_head_kv != 0 || s->head_dim == 0 ||
        s->head_dim % 2 != 0 || s->head_dim > DECODE_HD_MAX || s->n_rot > s->head_dim ||
        s->n_rot % 2 != 0 || s->n_ctx == 0 || s->n_slots == 0 || s->n_splits == 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan attention: unsupported shape (heads %u/%u, head_dim %u, n_rot "
                         "%u, n_ctx %u, slots %u, splits %u)",
                         s->n_head, s->n_head_kv, s->head_dim, s->n_rot, s->n_ctx, s->n_slots,
                         s->n_splits);
    return VKLLM_OK;
}

vkllm_status vk_attn_rope_store(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                                vk_slice rope_cs, vk_act q, vk_act k, vk_act v, vk_slice kcache,
                                vk_slice vcache, uint32_t n_tok, bool store, core_err *err) {
    vkllm_status st = check_shape(s, err);
    if (st != VKLLM_OK) return st;
    struct {
        uint32_t n_tok, n_head, n_head_kv, hd, n_rot, n_ctx, n_slots, stride_q, stride_k, stride_v,
            store;
    } pc = {n_tok,      s->n_head, s->n_head_kv, s->head_dim, s->n_rot,       s->n_ctx,
            s->n_slots, q.stride,  k.stride,     v.stride,    store ? 1u : 0u};
    const uint32_t pairs = (s->n_head + 2 * s->n_head_kv) * s->head_dim / 2;
    vk_slice b[7] = {params, rope_cs, q.s, k.s, v.s, kcache, vcache};
    return vk_rec_dispatch(r, &a->rope_store, b, 7, &pc, sizeof pc, (pairs + ATTN_WG - 1) / ATTN_WG,
                           n_tok, 1, err);
}

/* The pipeline of stem (attn_lane, attn_q8) for head size hd (NULL when every slot holds another
 * size: the workgroup kernel then runs). */
static vkllm_status hd_pipe(vk_attn *a, const char *stem, uint32_t n_bind, vk_pipe *pipes,
                            uint32_t *hds, uint32_t hd, vk_pipe **out, core_err *err) {
    *out = NULL;
    for (int i = 0; i < LANE_HDS; i++) {
        if (pipes[i].name && hds[i] != hd) continue;
        if (!pipes[i].name) {
            const vk_spec spec = {.n = 1, .v = {hd}};
            vkllm_status st = vk_pipe_for_tier(a->d, stem, n_bind, (uint32_t[3]){LANE_WG, 1, 1},
                                               &spec, &pipes[i], err);
            if (st != VKLLM_OK) return st;
            hds[i] = hd;
        }
        *out = &pipes[i];
        return VKLLM_OK;
    }
    return VKLLM_OK;
}

static vkllm_status lane_pipe(vk_attn *a, uint32_t hd, vk_pipe **out, core_err *err) {
    return hd_pipe(a, "attn_lane", 6, a->lane_pipe, a->lane_hd, hd, out, err);
}

/* One run's first (or only) dispatch. */
static vkllm_status attend_run(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                               vk_act q, vk_slice kcache, vk_slice vcache, vk_act out,
                               vk_slice scratch, const vk_attn_run *run, core_err *err) {
    const uint32_t hd = s->head_dim, group = s->n_head / s->n_head_kv;
    const uint32_t kv_dim = s->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd); /* as the CPU path computes it */
    if (run->kind == VK_ATTN_TILED && hd % 8 == 0) {
        if (hd > PREFILL_HD_MAX)
            return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                             "vulkan attention: head_dim %u over %u for batches of %u tokens", hd,
                             PREFILL_HD_MAX, run->n_rows);
        struct {
            uint32_t entry, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o;
            float scale;
        } pc = {run->entry, s->n_head, group, hd, s->n_ctx, kv_dim, q.stride, out.stride, scale};
        vk_slice b[5] = {params, q.s, kcache, vcache, out.s};
        return vk_rec_dispatch(r, &a->prefill, b, 5, &pc, sizeof pc, s->n_head,
                               (run->n_rows + PREFILL_ROWS - 1) / PREFILL_ROWS, 1, err);
    }
    const bool split = run->kind == VK_ATTN_SPLIT;
    const uint32_t n_split = split ? s->n_splits : 1;
    vk_pipe *lp = NULL;
    if (a->lane && hd % 8 == 0 && (uint64_t)run->n_rows * s->n_head * n_split <= 65535u * LANE_WG) {
        vkllm_status st = lane_pipe(a, hd, &lp, err);
        if (st != VKLLM_OK) return st;
    }
    if (lp) {
        struct {
            uint32_t row0, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o, n_splits,
                split_mode;
            float scale;
            uint32_t n_rows;
        } pc = {run->row0,  s->n_head,   group,           hd,    s->n_ctx,   kv_dim, q.stride,
                out.stride, s->n_splits, split ? 1u : 0u, scale, run->n_rows};
        const uint32_t n = run->n_rows * s->n_head * n_split;
        vk_slice b[6] = {params, q.s, kcache, vcache, out.s, scratch};
        return vk_rec_dispatch(r, lp, b, 6, &pc, sizeof pc, (n + LANE_WG - 1) / LANE_WG, 1, 1, err);
    }
    struct {
        uint32_t row0, n_head, group, hd, n_ctx, kv_dim, stride_q, stride_o, n_splits, split_mode;
        float scale;
    } pc = {run->row0,  s->n_head,   group,           hd,   s->n_ctx, kv_dim, q.stride,
            out.stride, s->n_splits, split ? 1u : 0u, scale};
    vk_slice b[6] = {params, q.s, kcache, vcache, out.s, scratch};
    return vk_rec_dispatch(r, &a->decode, b, 6, &pc, sizeof pc, s->n_head, split ? s->n_splits : 1,
                           run->n_rows, err);
}

vkllm_status vk_attn_attend(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                            vk_act q, vk_slice kcache, vk_slice vcache, vk_act out,
                            vk_slice scratch, const vk_attn_run *runs, uint32_t n_runs,
                            core_err *err) {
    vkllm_status st = check_shape(s, err);
    bool any_split = false;
    for (uint32_t i = 0; i < n_runs && st == VKLLM_OK; i++) {
        if (runs[i].kind > VK_ATTN_TILED || runs[i].n_rows == 0)
            return core_errf(err, VKLLM_ERR_INTERNAL,
                             "vulkan attention: run %u of kind %u, "
                             "%u rows",
                             i, runs[i].kind, runs[i].n_rows);
        any_split = any_split || runs[i].kind == VK_ATTN_SPLIT;
        if (any_split && scratch.size < vk_attn_scratch_bytes(s, 1))
            return core_errf(err, VKLLM_ERR_INTERNAL,
                             "vulkan attention: scratch of %llu "
                             "bytes, %llu needed an entry",
                             (unsigned long long)scratch.size,
                             (unsigned long long)vk_attn_scratch_bytes(s, 1));
        st = attend_run(r, a, s, params, q, kcache, vcache, out, scratch, &runs[i], err);
    }
    if (st != VKLLM_OK || !any_split) return st;
    vk_rec_barrier(r);
    for (uint32_t i = 0; i < n_runs && st == VKLLM_OK; i++) {
        if (runs[i].kind != VK_ATTN_SPLIT) continue;
        struct {
            uint32_t row0, n_head, hd, n_ctx, n_splits, stride_o, n_rows;
        } mc = {runs[i].row0, s->n_head,  s->head_dim,   s->n_ctx,
                s->n_splits,  out.stride, runs[i].n_rows};
        vk_slice mb[3] = {params, scratch, out.s};
        const uint32_t n = runs[i].n_rows * s->n_head;
        if (a->lane && n <= 65535u * LANE_WG)
            st = vk_rec_dispatch(r, &a->merge_lane, mb, 3, &mc, sizeof mc,
                                 (n + LANE_WG - 1) / LANE_WG, 1, 1, err);
        else
            st = vk_rec_dispatch(r, &a->merge, mb, 3, &mc, sizeof mc, s->n_head, runs[i].n_rows, 1,
                                 err);
    }
    return st;
}

/* ---- Q8_0 cache ---- */

static vkllm_status check_q8(const vk_attn_shape *s, core_err *err) {
    vkllm_status st = check_shape(s, err);
    if (st == VKLLM_OK && s->head_dim % 64 != 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan: a Q8_0 KV cache needs head_dim a multiple of 64 (this model's "
                         "is %u): use an F16 cache",
                         s->head_dim);
    return st;
}

uint64_t vk_attn_q8_row_bytes(const vk_attn_shape *s) {
    return (uint64_t)s->n_head_kv * s->head_dim / 64 * 68;
}

vkllm_status vk_attn_kv_pack_q8(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                                vk_slice xk, vk_slice xv, uint32_t x_row_words, vk_slice kcache,
                                vk_slice vcache, uint32_t n_tok, core_err *err) {
    vkllm_status st = check_q8(s, err);
    if (st != VKLLM_OK) return st;
    const uint32_t n_pairs = s->n_head_kv * s->head_dim / 64;
    struct {
        uint32_t n_tok, n_pairs, n_ctx, n_slots, x_row_words;
    } pc = {n_tok, n_pairs, s->n_ctx, s->n_slots, x_row_words};
    vk_slice b[5] = {params, xk, xv, kcache, vcache};
    return vk_rec_dispatch(r, &a->kv_pack_q8, b, 5, &pc, sizeof pc,
                           (2 * n_pairs + ATTN_WG - 1) / ATTN_WG, n_tok, 1, err);
}

vkllm_status vk_attn_attend_q8(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                               vk_act q, vk_slice kcache, vk_slice vcache, vk_act out,
                               uint32_t n_tok, core_err *err) {
    vkllm_status st = check_q8(s, err);
    if (st != VKLLM_OK) return st;
    if ((uint64_t)n_tok * s->n_head > 65535u * LANE_WG)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan attention: %u rows of %u heads", n_tok,
                         s->n_head);
    vk_pipe *p;
    st = hd_pipe(a, "attn_q8", 5, a->q8_pipe, a->q8_hd, s->head_dim, &p, err);
    if (st != VKLLM_OK) return st;
    if (!p)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan attention: more than %d head sizes",
                         LANE_HDS);
    struct {
        uint32_t n_rows, n_head, group, n_ctx, kv_row_words, stride_q, stride_o;
        float scale;
    } pc = {n_tok,
            s->n_head,
            s->n_head / s->n_head_kv,
            s->n_ctx,
            (uint32_t)(vk_attn_q8_row_bytes(s) / 4),
            q.stride,
            out.stride,
            1.0f / sqrtf((float)s->head_dim)}; /* as the CPU path computes it */
    vk_slice b[5] = {params, q.s, kcache, vcache, out.s};
    const uint32_t n = n_tok * s->n_head;
    return vk_rec_dispatch(r, p, b, 5, &pc, sizeof pc, (n + LANE_WG - 1) / LANE_WG, 1, 1, err);
}
