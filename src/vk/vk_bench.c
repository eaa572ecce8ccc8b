/* Measurement on the Vulkan backend (vkllm_bench_bandwidth, vkllm_bench_op).
 *
 * Every measurement records n calls into one command buffer (each call followed by the
 * barrier the forward pass puts after an op), times one warm-up submit to size n so that a
 * submit lasts about a quarter of the measuring time, then submits until the time is up. Time
 * is the device's: two timestamps around the recording where the queue has them
 * (timestampValidBits, timestampPeriod), else the wall clock around submit and wait.
 *
 * Bandwidth: shaders/bw_read.comp over device-local buffers totalling 512 MiB on a GPU (10x a
 * 50 MB L2), 256 MiB on a CPU driver, each at most 256 MiB and the device's buffer limit, and
 * at most a quarter of the device's memory. The best submit counts.
 * MATMUL: the forward pass's sequence (vk_backend.c rec_matmul): quantize x, barrier,
 * matmul, barrier; a matrix-vector product cycles through copies of the weights totalling
 * 256 MiB, so it streams from memory, not from L2. ATTENTION: vk_attn_attend over an F16
 * cache of random values. Nothing here runs during inference or changes the backend's state.
 */
#include "vk/vk_bench.h"

#include "engine/engine.h"

#include <math.h>
#include <string.h>

#define MIB (1ull << 20)
#define BENCH_COPIES_BYTES (256 * MIB) /* decode weights, cycled: past any GPU's L2 */
#define BENCH_MAX_SETS 32768           /* descriptor sets in one recording */
#define BW_MAX_BUFS 16
#define BW_BUF_MAX (256 * MIB)
#define BW_WG_GPU 256
#define BW_WG_CPU 64     /* lavapipe: one workgroup runs on one core, 8 lanes at a time */
#define BW_PER_THREAD 16 /* 16-byte words per invocation, about */

/* ---- timing ---- */

typedef struct vk_timer {
    vk_dev *d;
    VkFence fence;
    VkQueryPool qp; /* timestamps before and after the calls; VK_NULL_HANDLE: wall clock */
    double ns_per_tick;
    uint64_t mask; /* timestampValidBits */
} vk_timer;

static void timer_free(vk_timer *t) {
    if (!t->d) return;
    if (t->qp) t->d->t.vkDestroyQueryPool(t->d->dev, t->qp, t->d->vkac);
    if (t->fence) t->d->t.vkDestroyFence(t->d->dev, t->fence, t->d->vkac);
    memset(t, 0, sizeof *t);
}

static vkllm_status timer_init(vk_dev *d, vk_timer *t, core_err *err) {
    memset(t, 0, sizeof *t);
    t->d = d;
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkResult r = d->t.vkCreateFence(d->dev, &fi, d->vkac, &t->fence);
    if (r != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan bench: fence: %s", vk_result_str(r));
    VkPhysicalDeviceProperties pp;
    d->fn.vkGetPhysicalDeviceProperties(d->pdev, &pp);
    VkQueueFamilyProperties qf[32];
    uint32_t nq = 32;
    d->fn.vkGetPhysicalDeviceQueueFamilyProperties(d->pdev, &nq, qf);
    const uint32_t bits = d->qfam < nq ? qf[d->qfam].timestampValidBits : 0;
    if (bits == 0 || !(pp.limits.timestampPeriod > 0.0f)) return VKLLM_OK;
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                .queryCount = 2};
    if (d->t.vkCreateQueryPool(d->dev, &qi, d->vkac, &t->qp) != VK_SUCCESS) {
        t->qp = VK_NULL_HANDLE;
        return VKLLM_OK;
    }
    t->ns_per_tick = pp.limits.timestampPeriod;
    t->mask = bits >= 64 ? UINT64_MAX : (1ull << bits) - 1;
    return VKLLM_OK;
}

/* Records n calls (and their barriers) into r. */
typedef vkllm_status (*rec_calls_fn)(void *arg, vk_rec *r, uint32_t n, core_err *err);

static vkllm_status record(vk_timer *t, vk_rec *r, rec_calls_fn fn, void *arg, uint32_t n,
                           uint32_t sets_per_call, core_err *err) {
    vk_rec_free(r);
    vkllm_status st = vk_rec_init(t->d, r, n * sets_per_call + 4, err);
    if (st == VKLLM_OK) st = vk_rec_begin(r, err);
    if (st != VKLLM_OK) return st;
    if (t->qp) {
        t->d->t.vkCmdResetQueryPool(r->cb, t->qp, 0, 2);
        t->d->t.vkCmdWriteTimestamp(r->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, t->qp, 0);
    }
    st = fn(arg, r, n, err);
    if (st == VKLLM_OK && t->qp)
        t->d->t.vkCmdWriteTimestamp(r->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, t->qp, 1);
    if (st == VKLLM_OK) st = vk_rec_end(r, err);
    return st;
}

/* Submits r and waits; *sec gets the device's time for it. */
static vkllm_status submit(vk_timer *t, vk_rec *r, double *sec, core_err *err) {
    const double t0 = core_time_s();
    vkllm_status st = vk_rec_submit_wait(r, t->fence, err);
    *sec = core_time_s() - t0;
    if (st != VKLLM_OK || !t->qp) return st;
    uint64_t ts[2];
    VkResult res =
        t->d->t.vkGetQueryPoolResults(t->d->dev, t->qp, 0, 2, sizeof ts, ts, sizeof ts[0],
                                      VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (res != VK_SUCCESS)
        return core_errf(err, VKLLM_ERR_DEVICE, "vulkan bench: timestamps: %s", vk_result_str(res));
    const double dev = (double)((ts[1] - ts[0]) & t->mask) * t->ns_per_tick * 1e-9;
    if (dev > 0.0) *sec = dev;
    return VKLLM_OK;
}

/* Times calls recorded `unit` at a time (one cycle through the weight copies): *calls timed,
 * *mean and *best (the fastest submit's) seconds per call. */
static vkllm_status measure(vk_timer *t, rec_calls_fn fn, void *arg, uint32_t unit,
                            uint32_t sets_per_call, double seconds, uint64_t *calls, double *mean,
                            double *best, core_err *err) {
    vk_rec r = {0};
    uint32_t n = unit;
    double s = 0.0;
    vkllm_status st = record(t, &r, fn, arg, n, sets_per_call, err);
    if (st == VKLLM_OK) st = submit(t, &r, &s, err); /* warm-up, and the size of a call */
    uint32_t max_n = BENCH_MAX_SETS / sets_per_call / unit * unit;
    if (max_n < unit) max_n = unit;
    const double target = seconds / 4;
    if (st == VKLLM_OK && s < target && n < max_n) {
        const double want = s > 0.0 ? (double)n * target / s : (double)max_n;
        uint32_t n2 = want >= (double)max_n ? max_n : (uint32_t)ceil(want);
        n2 = (n2 + unit - 1) / unit * unit;
        if (n2 > max_n) n2 = max_n;
        if (n2 > n) {
            n = n2;
            st = record(t, &r, fn, arg, n, sets_per_call, err);
        }
    }
    uint64_t done = 0;
    double total = 0.0, fastest = INFINITY;
    const double start = core_time_s();
    while (st == VKLLM_OK && (done == 0 || core_time_s() - start < seconds)) {
        st = submit(t, &r, &s, err);
        total += s;
        done += n;
        if (s / n < fastest) fastest = s / n;
    }
    vk_rec_free(&r);
    if (st != VKLLM_OK) return st;
    if (!(total > 0.0))
        return core_errf(err, VKLLM_ERR_INTERNAL, "vulkan bench: the clock did not advance");
    *calls = done;
    *mean = total / (double)done;
    if (best) *best = fastest;
    return VKLLM_OK;
}

/* want, at most a quarter of the device's memory and half of what its memory cap leaves */
static uint64_t device_budget(const vk_dev *d, uint64_t want) {
    if (d->info.device_local_bytes && want > d->info.device_local_bytes / 4)
        want = d->info.device_local_bytes / 4;
    if (d->memory_cap) {
        const uint64_t free_b = d->memory_cap > d->allocated ? d->memory_cap - d->allocated : 0;
        if (want > free_b / 2) want = free_b / 2;
    }
    return want;
}

/* ---- bandwidth ---- */

typedef struct bw_bench {
    vk_dev *d;
    vk_pipe pipe;
    vk_buffer src[BW_MAX_BUFS], dst;
    uint64_t n_vec[BW_MAX_BUFS]; /* 16-byte words read from each */
    uint32_t groups[BW_MAX_BUFS], dst0[BW_MAX_BUFS];
    uint32_t n_bufs, wg;
} bw_bench;

static void bw_free(bw_bench *b) {
    for (uint32_t i = 0; i < b->n_bufs; i++)
        vk_buffer_destroy(b->d, &b->src[i]);
    vk_buffer_destroy(b->d, &b->dst);
    vk_pipe_destroy(b->d, &b->pipe);
}

/* The pipeline, n_bufs source buffers of bytes[i] (multiples of 16) and the output words. */
static vkllm_status bw_init(bw_bench *b, vk_dev *d, uint32_t n_bufs, const uint64_t *bytes,
                            core_err *err) {
    memset(b, 0, sizeof *b);
    b->d = d;
    const bool cpu = strcmp(d->info.kind, "cpu-vulkan") == 0;
    b->wg = cpu ? BW_WG_CPU : BW_WG_GPU;
    while (b->wg > d->info.max_wg_invocations)
        b->wg /= 2;
    uint32_t words = 0;
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < n_bufs && st == VKLLM_OK; i++) {
        st = vk_buffer_create(d, bytes[i], false, &b->src[i], "bandwidth buffer", err);
        if (st != VKLLM_OK) break;
        b->n_bufs = i + 1;
        b->n_vec[i] = bytes[i] / 16;
        uint64_t g =
            (b->n_vec[i] + (uint64_t)b->wg * BW_PER_THREAD - 1) / ((uint64_t)b->wg * BW_PER_THREAD);
        b->groups[i] = (uint32_t)(g < 1 ? 1 : g > 65535 ? 65535 : g);
        b->dst0[i] = words;
        words += b->groups[i];
    }
    if (st == VKLLM_OK)
        st = vk_buffer_create(d, (uint64_t)words * 4, false, &b->dst, "bandwidth output", err);
    if (st == VKLLM_OK)
        st = vk_pipe_for_tier(d, "bw_read", 2, (uint32_t[3]){b->wg, 1, 1}, NULL, &b->pipe, err);
    return st;
}

/* n passes over every buffer; a barrier between passes (they write the same words). */
static vkllm_status rec_bw(void *arg, vk_rec *r, uint32_t n, core_err *err) {
    bw_bench *b = arg;
    vkllm_status st = VKLLM_OK;
    for (uint32_t p = 0; p < n && st == VKLLM_OK; p++) {
        for (uint32_t i = 0; i < b->n_bufs && st == VKLLM_OK; i++) {
            struct {
                uint32_t n, dst0;
            } pc = {(uint32_t)b->n_vec[i], b->dst0[i]};
            const vk_slice bind[2] = {{b->src[i].buf, 0, b->n_vec[i] * 16, NULL},
                                      {b->dst.buf, 0, b->dst.size, NULL}};
            st = vk_rec_dispatch(r, &b->pipe, bind, 2, &pc, sizeof pc, b->groups[i], 1, 1, err);
        }
        vk_rec_barrier(r);
    }
    return st;
}

vkllm_status vk_bench_read_checksum(vk_dev *d, const void *data, uint64_t bytes, uint32_t *out,
                                    core_err *err) {
    if (bytes == 0 || bytes % 16 != 0 || bytes > d->max_buffer || bytes / 16 > UINT32_MAX)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "vulkan checksum: %llu bytes (a multiple "
                         "of 16 up to %llu)",
                         (unsigned long long)bytes, (unsigned long long)d->max_buffer);
    bw_bench b;
    vk_timer t = {0};
    vkllm_status st = bw_init(&b, d, 1, &bytes, err);
    uint32_t *words = NULL;
    if (st == VKLLM_OK) {
        const vk_slice s = {b.src[0].buf, 0, bytes, NULL};
        st = vk_upload(d, &s, data, bytes, err);
    }
    if (st == VKLLM_OK) st = timer_init(d, &t, err);
    vk_rec r = {0};
    double sec;
    if (st == VKLLM_OK) st = record(&t, &r, rec_bw, &b, 1, 1, err);
    if (st == VKLLM_OK) st = submit(&t, &r, &sec, err);
    vk_rec_free(&r);
    if (st == VKLLM_OK) {
        words = core_alloc(d->alloc, (size_t)b.groups[0] * 4, 0);
        if (!words) st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan checksum: out of memory");
    }
    if (st == VKLLM_OK) {
        const vk_slice s = {b.dst.buf, 0, (uint64_t)b.groups[0] * 4, NULL};
        st = vk_download(d, &s, words, s.size, err);
    }
    if (st == VKLLM_OK) {
        uint32_t x = 0;
        for (uint32_t i = 0; i < b.groups[0]; i++)
            x ^= words[i];
        *out = x;
    }
    core_free(d->alloc, words);
    timer_free(&t);
    bw_free(&b);
    return st;
}

vkllm_status vk_bench_bandwidth(vk_dev *d, double seconds, double *gbps, uint64_t *bytes_out,
                                core_err *err) {
    const bool cpu = strcmp(d->info.kind, "cpu-vulkan") == 0;
    uint64_t total = device_budget(d, cpu ? 256 * MIB : 512 * MIB);
    if (total < 16 * MIB) total = 16 * MIB;
    uint64_t per = d->max_buffer < BW_BUF_MAX ? d->max_buffer : BW_BUF_MAX;
    per = per / (64 * 1024) * (64 * 1024);
    if (per == 0)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan bandwidth: buffers of at most %llu "
                         "bytes",
                         (unsigned long long)d->max_buffer);
    uint32_t n_bufs = (uint32_t)((total + per - 1) / per);
    if (n_bufs > BW_MAX_BUFS) n_bufs = BW_MAX_BUFS;
    uint64_t sizes[BW_MAX_BUFS] = {0}, sum = 0;
    for (uint32_t i = 0; i < n_bufs; i++) {
        sizes[i] = total - sum < per ? (total - sum + 15) / 16 * 16 : per;
        sum += sizes[i];
    }
    bw_bench b;
    vk_timer t = {0};
    vkllm_status st = bw_init(&b, d, n_bufs, sizes, err);
    if (st == VKLLM_OK) { /* written once, so the reads see real pages */
        VkCommandBuffer cb;
        st = vk_oneshot_begin(d, &cb, err);
        for (uint32_t i = 0; i < n_bufs && st == VKLLM_OK; i++)
            d->t.vkCmdFillBuffer(cb, b.src[i].buf, 0, sizes[i], 0x5a5a5a5au + i);
        if (st == VKLLM_OK) st = vk_oneshot_end(d, cb, err);
    }
    if (st == VKLLM_OK) st = timer_init(d, &t, err);
    uint64_t calls = 0;
    double mean = 0.0, best = 0.0;
    if (st == VKLLM_OK) st = measure(&t, rec_bw, &b, 1, n_bufs, seconds, &calls, &mean, &best, err);
    timer_free(&t);
    bw_free(&b);
    if (st != VKLLM_OK) return st;
    *gbps = (double)sum / best * 1e-9;
    if (bytes_out) *bytes_out = sum;
    return VKLLM_OK;
}

/* ---- ops ---- */

/* A device-local slice of `bytes` of its own buffer, filled from host if non-NULL. */
static vkllm_status dev_slice(vk_arena *a, const void *host, uint64_t bytes, vk_slice *out,
                              core_err *err) {
    vkllm_status st = vk_arena_alloc(a, bytes, out, err);
    if (st == VKLLM_OK && host) st = vk_upload(a->d, out, host, bytes, err);
    return st;
}

/* Fills copies 1.. of w[0] on the device (one command buffer of copies). */
static vkllm_status copy_weights(vk_dev *d, vk_arena *a, vk_weight *w, uint32_t copies,
                                 core_err *err) {
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 1; i < copies && st == VKLLM_OK; i++) {
        w[i] = w[0];
        for (uint32_t p = 0; p < w[0].n_parts && st == VKLLM_OK; p++)
            st = vk_arena_alloc(a, w[0].part[p].s.size, &w[i].part[p].s, err);
    }
    if (st != VKLLM_OK || copies < 2) return st;
    VkCommandBuffer cb;
    st = vk_oneshot_begin(d, &cb, err);
    for (uint32_t i = 1; i < copies && st == VKLLM_OK; i++)
        for (uint32_t p = 0; p < w[0].n_parts; p++) {
            const VkBufferCopy reg = {w[0].part[p].s.offset, w[i].part[p].s.offset,
                                      w[0].part[p].s.size};
            d->t.vkCmdCopyBuffer(cb, w[0].part[p].s.buf, w[i].part[p].s.buf, 1, &reg);
        }
    if (st == VKLLM_OK) st = vk_oneshot_end(d, cb, err);
    return st;
}

typedef struct mm_bench {
    vk_mm *mm;
    uint32_t w_type, cols, tokens, copies;
    vk_weight *w;
    vk_act x, y;
    vk_slice xq;
} mm_bench;

/* As vk_backend.c records a MATMUL op: quantize, barrier, product, and the op's barrier. */
static vkllm_status rec_mm(void *arg, vk_rec *r, uint32_t n, core_err *err) {
    mm_bench *b = arg;
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < n && st == VKLLM_OK; i++) {
        st = vk_mm_quantize(r, b->mm, b->w_type, b->x, b->cols, b->tokens, b->xq, err);
        vk_rec_barrier(r);
        if (st == VKLLM_OK)
            st = vk_mm_matmul(r, b->mm, &b->w[i % b->copies], b->xq, b->tokens, b->y, false, err);
        vk_rec_barrier(r);
    }
    return st;
}

static vkllm_status bench_matmul(vk_dev *d, vk_mm *mm, const vkllm_bench_op_desc *desc,
                                 uint32_t w_type, vkllm_bench_op_result *out, core_err *err) {
    if (!vk_mm_supports(w_type))
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "vulkan: no matmul kernel for %s weights",
                         quant_type_name(w_type));
    const uint32_t rows = desc->rows, cols = desc->cols, tokens = desc->tokens;
    uint64_t rb = 0;
    quant_row_bytes(w_type, cols, &rb); /* checked by the caller */
    const uint64_t mat = rb * rows;
    const uint64_t xb = (uint64_t)tokens * cols * 4, yb = (uint64_t)tokens * rows * 4;
    const uint64_t qb = vk_mm_act_row_bytes(w_type, cols) * tokens;
    if (xb > d->max_buffer || yb > d->max_buffer || qb > d->max_buffer)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan: %u tokens of %u inputs and %u "
                         "outputs do not fit the device's buffers of %llu bytes",
                         tokens, cols, rows, (unsigned long long)d->max_buffer);
    const uint64_t target = device_budget(d, BENCH_COPIES_BYTES);
    uint64_t copies = tokens == 1 ? (target + mat - 1) / mat : 1;
    if (copies * mat > ENG_BENCH_MAX_BYTES) copies = ENG_BENCH_MAX_BYTES / mat;
    if (copies > ENG_BENCH_MAX_COPIES) copies = ENG_BENCH_MAX_COPIES;
    if (copies < 1) copies = 1;
    mm_bench b = {
        .mm = mm, .w_type = w_type, .cols = cols, .tokens = tokens, .copies = (uint32_t)copies};
    vk_arena wa, aa;
    /* weights packed into buffers as large as allowed; activations one buffer each */
    vk_arena_init(&wa, d, false, copies * (mat + 256 * VK_MAX_PARTS), "benchmark weights");
    vk_arena_init(&aa, d, false, 1, "benchmark activations");
    uint8_t *host = core_alloc(d->alloc, (size_t)mat, 64);
    float *x = core_alloc(d->alloc, (size_t)xb, 0);
    b.w = core_calloc(d->alloc, (size_t)copies, sizeof *b.w);
    vk_timer t = {0};
    vkllm_status st = VKLLM_OK;
    if (!host || !x || !b.w)
        st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                       "vulkan bench: out of memory for a %.1f "
                       "MiB matrix",
                       (double)mat / (double)MIB);
    if (st == VKLLM_OK) st = eng_bench_fill_matrix(d->alloc, w_type, rows, cols, host, err);
    if (st == VKLLM_OK)
        st = vk_weight_upload(d, &wa, "benchmark", w_type, cols, rows, rb, host, &b.w[0], err);
    if (st == VKLLM_OK) st = copy_weights(d, &wa, b.w, b.copies, err);
    if (st == VKLLM_OK) {
        eng_bench_fill_f32(x, (uint64_t)tokens * cols, 1);
        b.x.stride = cols;
        b.y.stride = rows;
        st = dev_slice(&aa, x, xb, &b.x.s, err);
    }
    if (st == VKLLM_OK) st = dev_slice(&aa, NULL, qb, &b.xq, err);
    if (st == VKLLM_OK) st = dev_slice(&aa, NULL, yb, &b.y.s, err);
    if (st == VKLLM_OK) st = timer_init(d, &t, err);
    if (st == VKLLM_OK)
        st = measure(&t, rec_mm, &b, b.copies, 1 + b.w[0].n_parts, desc->seconds, &out->calls,
                     &out->us, NULL, err);
    out->us *= 1e6;
    timer_free(&t);
    core_free(d->alloc, b.w);
    core_free(d->alloc, x);
    core_free(d->alloc, host);
    vk_arena_free(&aa);
    vk_arena_free(&wa);
    return st;
}

typedef struct attn_bench {
    vk_attn *attn;
    vk_attn_shape s;
    vk_slice params, kc, vc, scratch;
    vk_act q, o;
    vk_attn_run run; /* one entry of `tokens` queries, in the mode llama.cpp uses for them */
} attn_bench;

static vkllm_status rec_attn(void *arg, vk_rec *r, uint32_t n, core_err *err) {
    attn_bench *b = arg;
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < n && st == VKLLM_OK; i++) {
        st = vk_attn_attend(r, b->attn, &b->s, b->params, b->q, b->kc, b->vc, b->o, b->scratch,
                            &b->run, 1, err);
        vk_rec_barrier(r);
    }
    return st;
}

static vkllm_status bench_attention(vk_dev *d, vk_attn *attn, uint32_t n_splits,
                                    const vkllm_bench_op_desc *desc, vkllm_bench_op_result *out,
                                    core_err *err) {
    const eng_attn_mode mode = eng_attn_mode_for(desc->tokens);
    attn_bench b = {
        .attn = attn,
        .s = {.n_head = desc->n_head,
              .n_head_kv = desc->n_head_kv,
              .head_dim = desc->head_dim,
              .n_rot = desc->head_dim,
              .n_ctx = desc->n_kv,
              .n_slots = desc->n_kv,
              .n_splits = n_splits},
        .run = {.kind = mode == ENG_ATTN_SPLIT    ? VK_ATTN_SPLIT
                        : mode == ENG_ATTN_SERIAL ? VK_ATTN_SERIAL
                                                  : VK_ATTN_TILED,
                .n_rows = desc->tokens},
    };
    const uint32_t q_width = desc->n_head * desc->head_dim;
    const uint64_t kv_n = (uint64_t)desc->n_kv * desc->n_head_kv * desc->head_dim;
    const uint64_t qb = (uint64_t)desc->tokens * q_width * 4;
    if (kv_n * 2 > d->max_buffer || qb > d->max_buffer)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "vulkan attention: a cache of %u positions "
                         "(%.1f MiB) or %u queries do not fit the device's buffers of %.1f MiB",
                         desc->n_kv, (double)kv_n * 2 / (double)MIB, desc->tokens,
                         (double)d->max_buffer / (double)MIB);
    vk_arena da, ha;
    vk_arena_init(&da, d, false, 1, "benchmark attention");
    vk_arena_init(&ha, d, true, 1, "benchmark parameters");
    uint16_t *kv = core_alloc(d->alloc, (size_t)(kv_n * 2), 0);
    float *q = core_alloc(d->alloc, (size_t)qb, 0);
    vk_timer t = {0};
    vkllm_status st = VKLLM_OK;
    if (!kv || !q) st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "vulkan bench: out of memory");
    if (st == VKLLM_OK) {
        eng_bench_fill_f16(kv, kv_n, 2);
        st = dev_slice(&da, kv, kv_n * 2, &b.kc, err);
    }
    if (st == VKLLM_OK) {
        eng_bench_fill_f16(kv, kv_n, 3);
        st = dev_slice(&da, kv, kv_n * 2, &b.vc, err);
    }
    if (st == VKLLM_OK) {
        eng_bench_fill_f32(q, (uint64_t)desc->tokens * q_width, 1);
        b.q.stride = b.o.stride = q_width;
        st = dev_slice(&da, q, qb, &b.q.s, err);
    }
    if (st == VKLLM_OK) st = dev_slice(&da, NULL, qb, &b.o.s, err);
    if (st == VKLLM_OK) st = dev_slice(&da, NULL, vk_attn_scratch_bytes(&b.s, 1), &b.scratch, err);
    if (st == VKLLM_OK)
        st = vk_arena_alloc(&ha, vk_step_params_bytes(desc->tokens, 1, desc->n_kv, 0), &b.params,
                            err);
    if (st == VKLLM_OK) { /* one sequence on an identity block table, ending at n_kv */
        const vk_step_seq seq = {
            .n_tokens = desc->tokens, .pos0 = desc->n_kv - desc->tokens, .n_out = 1};
        vk_step_params_init(b.params.map, desc->tokens, 1, NULL, 0);
        vk_step_params_write(b.params.map, NULL, &seq, 1);
        st = timer_init(d, &t, err);
    }
    if (st == VKLLM_OK)
        st = measure(&t, rec_attn, &b, 1, 2, desc->seconds, &out->calls, &out->us, NULL, err);
    out->us *= 1e6;
    timer_free(&t);
    core_free(d->alloc, q);
    core_free(d->alloc, kv);
    vk_arena_free(&ha);
    vk_arena_free(&da);
    return st;
}

vkllm_status vk_bench_op(vk_dev *d, vk_mm *mm, vk_attn *attn, uint32_t n_splits,
                         const vkllm_bench_op_desc *desc, uint32_t w_type,
                         vkllm_bench_op_result *out, core_err *err) {
    vkllm_status st = VKLLM_ERR_INVALID_ARG;
    switch (desc->op) {
    case VKLLM_BENCH_MATMUL:
        st = bench_matmul(d, mm, desc, w_type, out, err);
        break;
    case VKLLM_BENCH_ATTENTION:
        st = bench_attention(d, attn, n_splits, desc, out, err);
        break;
    default:
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "vulkan bench: unknown op %d", (int)desc->op);
    }
    /* any validation message during set-up (uploads, copies) fails the measurement too */
    if (st == VKLLM_OK) st = vk_check_validation(d, err);
    return st;
}
