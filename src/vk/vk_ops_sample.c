/* Sampling on the device: argmax and top-k of rows of logits, so that generation reads back
 * one id (greedy) or k candidates per row instead of the whole vocabulary. Order and ties as
 * the CPU sampler (src/sched/sampler.c): larger first, the lower index on equal values; a NaN
 * never ranks above a number. Nothing here samples: the host draws from the k candidates.
 *
 * argmax: one workgroup per row (shaders/argmax.comp). top-k (shaders/topk.comp): a short row
 * or a batch of many rows is one workgroup per row; otherwise each row is cut into chunks of at
 * most TOPK_CHUNK logits, one workgroup per chunk keeps its k best in the scratch buffer, and a
 * second dispatch merges each row's candidates. Both kernels need nothing past tier 0; argmax
 * has a tier-1 build that reduces with subgroup operations. Both leave a row's banned ids out
 * (eng_seq.ban) when the step parameters say so: their last binding is the parameter buffer,
 * or a stand-in that is never read. */
#include "vk/vk_ops.h"

#include <string.h>

struct vk_sample {
    vk_dev *d;
    vk_pipe argmax;
    vk_pipe topk[3]; /* topk.comp's MODE: one pass, first pass, merge pass */
    uint32_t argmax_wg;
    bool cpu; /* a CPU device: fewer, longer top-k chunks */
};

/* Chunk length of the first top-k pass: its candidates (chunks * k) are what the merge pass
 * reads, so this balances the two passes at the widest vocabularies and k = VK_TOPK_MAX; and
 * it is one step (PER * 256 elements) of topk.comp where the device has 24 KiB of shared
 * memory. */
#define TOPK_CHUNK 4096u
/* Stop cutting rows into chunks once the dispatch has about this many workgroups: enough to
 * fill a GPU; on a CPU device (lavapipe) a workgroup has a high fixed cost and there are only
 * as many as cores to run them, so a few. */
#define TOPK_GROUPS 256u
#define TOPK_GROUPS_CPU 4u
#define TOPK_WG 256u /* = NB in topk.comp: one invocation per histogram bin */
#define ARGMAX_WG 512u

static uint32_t topk_chunks(const vk_sample *s, uint32_t n, uint32_t width) {
    const uint32_t groups = s->cpu ? TOPK_GROUPS_CPU : TOPK_GROUPS;
    const uint32_t by_width = (width + TOPK_CHUNK - 1) / TOPK_CHUNK;
    const uint32_t by_rows = (groups + n - 1) / n;
    return by_width < by_rows ? by_width : by_rows;
}

uint64_t vk_topk_scratch_bytes(uint32_t n, uint32_t width, uint32_t k) {
    if (n == 0 || width <= TOPK_CHUNK) return 0;
    /* n * topk_chunks(n, width) <= min(n * by_width, TOPK_GROUPS + n - 1) on any device: a
     * bound that does not shrink with n, so scratch for n rows serves any call with fewer */
    const uint64_t by_width = (width + TOPK_CHUNK - 1) / TOPK_CHUNK;
    uint64_t lists = (uint64_t)n * by_width;
    if (lists > (uint64_t)TOPK_GROUPS + n) lists = (uint64_t)TOPK_GROUPS + n;
    return lists * k * 8; /* (key, id) pairs */
}

vkllm_status vk_sample_create(vk_dev *d, vk_sample **out, core_err *err) {
    vk_sample *s = core_calloc(d->alloc, 1, sizeof *s);
    if (!s) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    s->d = d;
    s->cpu = strcmp(d->info.kind, "cpu-vulkan") == 0;
    /* argmax's tree reduction needs a power of two */
    s->argmax_wg = ARGMAX_WG;
    while (s->argmax_wg > d->info.max_wg_invocations && s->argmax_wg > 64)
        s->argmax_wg /= 2;
    vkllm_status st =
        vk_pipe_for_tier(d, "argmax", 3, (uint32_t[3]){s->argmax_wg, 1, 1}, NULL, &s->argmax, err);
    /* topk.comp's PER: elements per invocation per step; its shared memory is about
     * (PER + 1) * 1 KiB + 3 KiB */
    const uint32_t per = d->info.max_shared >= 24576 ? 16 : 8;
    for (uint32_t mode = 0; mode < 3 && st == VKLLM_OK; mode++)
        st = vk_pipe_for_tier(d, "topk", 5, (uint32_t[3]){TOPK_WG, 1, 1},
                              &(vk_spec){.n = 2, .v = {per, mode}}, &s->topk[mode], err);
    if (st != VKLLM_OK) {
        vk_sample_destroy(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}

void vk_sample_destroy(vk_sample *s) {
    if (!s) return;
    vk_pipe_destroy(s->d, &s->argmax);
    for (int i = 0; i < 3; i++)
        vk_pipe_destroy(s->d, &s->topk[i]);
    core_free(s->d->alloc, s);
}

/* The checks both ops share: a row per workgroup (rows <= 65535, the guaranteed
 * maxComputeWorkGroupCount), and the rows inside the logits slice. */
static vkllm_status check_rows(const char *op, vk_act logits, uint32_t n, uint32_t width,
                               uint64_t out_bytes, vk_slice out, core_err *err) {
    if (width == 0 || n > 65535)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan %s: %u rows of width %u", op, n,
                         width);
    if (logits.stride < width || ((uint64_t)(n - 1) * logits.stride + width) * 4 > logits.s.size)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vulkan %s: %u rows of %u logits, %u apart, overrun a %llu-byte buffer",
                         op, n, width, logits.stride, (unsigned long long)logits.s.size);
    if (out.size < out_bytes)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan %s: output of %llu bytes, %llu needed",
                         op, (unsigned long long)out.size, (unsigned long long)out_bytes);
    return VKLLM_OK;
}

vkllm_status vk_argmax(vk_rec *r, vk_sample *m, vk_act logits, uint32_t n, uint32_t width,
                       const vk_slice *params, vk_slice ids, core_err *err) {
    if (n == 0) return VKLLM_OK;
    vkllm_status st = check_rows("argmax", logits, n, width, (uint64_t)n * 4, ids, err);
    if (st != VKLLM_OK) return st;
    struct {
        uint32_t n_rows, width, stride, ban;
    } pc = {n, width, logits.stride, params != NULL};
    vk_slice b[3] = {logits.s, ids, params ? *params : logits.s};
    return vk_rec_dispatch(r, &m->argmax, b, 3, &pc, sizeof pc, n, 1, 1, err);
}

vkllm_status vk_topk(vk_rec *r, vk_sample *m, vk_act logits, uint32_t n, uint32_t width, uint32_t k,
                     const vk_slice *params, vk_slice ids, vk_slice vals, vk_slice scratch,
                     core_err *err) {
    if (n == 0) return VKLLM_OK;
    if (k == 0 || k > VK_TOPK_MAX)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan topk: k = %u (1 to %u)", k,
                         VK_TOPK_MAX);
    const uint64_t out_bytes = (uint64_t)n * k * 4;
    vkllm_status st = check_rows("topk", logits, n, width, out_bytes, ids, err);
    if (st == VKLLM_OK && vals.size < out_bytes)
        st = core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan topk: values of %llu bytes, %llu needed",
                       (unsigned long long)vals.size, (unsigned long long)out_bytes);
    if (st != VKLLM_OK) return st;
    const uint32_t chunks = topk_chunks(m, n, width);
    struct {
        uint32_t n_rows, width, stride, k;
        uint32_t n_chunks, chunk;
        uint32_t ban;
    } pc = {n, width, logits.stride, k, 1, width, params != NULL};
    const vk_slice prm = params ? *params : logits.s; /* not read without params */
    if (chunks <= 1) { /* one pass; the scratch binding is not read: any buffer will do */
        vk_slice b[5] = {logits.s, ids, ids, vals, prm};
        return vk_rec_dispatch(r, &m->topk[0], b, 5, &pc, sizeof pc, 1, n, 1, err);
    }
    const uint64_t need = (uint64_t)n * chunks * k * 8;
    if (scratch.size < need)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vulkan topk: scratch of %llu bytes, %llu needed (vk_topk_scratch_bytes)",
                         (unsigned long long)scratch.size, (unsigned long long)need);
    pc.n_chunks = chunks;
    pc.chunk = (width + chunks - 1) / chunks;
    vk_slice b[5] = {logits.s, scratch, ids, vals, prm};
    st = vk_rec_dispatch(r, &m->topk[1], b, 5, &pc, sizeof pc, chunks, n, 1, err);
    if (st != VKLLM_OK) return st;
    vk_rec_barrier(r);
    return vk_rec_dispatch(r, &m->topk[2], b, 5, &pc, sizeof pc, 1, n, 1, err);
}
