/* Measurement on the CPU backend (vkllm_bench_bandwidth, vkllm_bench_op).
 *
 * Bandwidth: every pool thread streams its share of a buffer far larger than the last-level
 * cache, summing 64-bit words so the reads cannot be dropped; the best pass counts.
 * Ops run through the backend's own interpreter: a graph of one ATTENTION op, or of one
 * MATMUL op per copy of the weight matrix, is given to cpu_run exactly as a forward step is
 * (activation quantization, the row split, the barrier after each op), over a context whose
 * activations and F16 cache hold random values. Matrix-vector products cycle through enough
 * copies of the matrix to overflow the last-level cache four times, so the figure is the
 * memory-bound one a model's layers see. Nothing here runs during inference.
 */
#include "cpu/cpu_bench.h"

#include "cpu/cpu_info.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MIB (1ull << 20)

/* The largest cache of CPU 0 (Linux sysfs), else 32 MiB. sysconf's L3 figure is not used:
 * glibc reports 256 MiB on an EPYC whose L3 is 32 MiB. */
static uint64_t llc_bytes(void) {
    uint64_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        unsigned long long v = 0;
        char unit = 0;
        if (fscanf(f, "%llu%c", &v, &unit) >= 1) {
            const uint64_t b = unit == 'K' ? v << 10 : unit == 'M' ? v << 20 : v;
            if (b > best) best = b;
        }
        fclose(f);
    }
    return best ? best : 32 * MIB;
}

/* ---- bandwidth ---- */

/* The baseline build's read loop (gcc vectorizes it with SSE2). */
static uint64_t read_u64(const void *p, size_t bytes) {
    const uint64_t *w = p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (size_t i = 0; i < bytes / 8; i += 8) {
        a0 += w[i], a1 += w[i + 1], a2 += w[i + 2], a3 += w[i + 3];
        a4 += w[i + 4], a5 += w[i + 5], a6 += w[i + 6], a7 += w[i + 7];
    }
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

typedef struct bw_job {
    const uint8_t *p;
    uint64_t bytes; /* a multiple of 4096 */
    cpu_bench_read_fn read;
    atomic_uint_least64_t sink;
} bw_job;

static void bw_thread(void *arg, int ith, int nth) {
    bw_job *j = arg;
    const uint64_t pages = j->bytes / 4096;
    const uint64_t p0 = pages * (uint64_t)ith / (uint64_t)nth;
    const uint64_t p1 = pages * (uint64_t)(ith + 1) / (uint64_t)nth;
    const uint64_t s = j->read(j->p + p0 * 4096, (size_t)((p1 - p0) * 4096));
    atomic_fetch_xor_explicit(&j->sink, s, memory_order_relaxed);
}

vkllm_status cpu_bench_bandwidth(eng_backend *be, double seconds, double *gbps,
                                 uint64_t *bytes_out, core_err *err) {
    const vkllm_allocator *a = cpu_backend_alloc(be);
    /* 8x the last-level cache and at least 256 MiB, but no more than an eighth of RAM */
    uint64_t bytes = 8 * llc_bytes();
    if (bytes < 256 * MIB) bytes = 256 * MIB;
    const uint64_t ram = cpu_info_memory_bytes();
    if (ram && bytes > ram / 8) bytes = ram / 8 / MIB * MIB;
    if (bytes < 16 * MIB) bytes = 16 * MIB;
    if (bytes > SIZE_MAX) bytes = (uint64_t)SIZE_MAX / MIB * MIB;
    uint8_t *p = core_alloc(a, (size_t)bytes, 4096);
    if (!p)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu bandwidth: cannot allocate %.0f MiB",
                         (double)bytes / (double)MIB);
    memset(p, 0x5a, (size_t)bytes); /* every page mapped before the clock starts */
    bw_job j = {.p = p, .bytes = bytes, .read = read_u64};
    const cpu_ops *k = cpu_backend_ops(be);
    if (k->kt->isa >= CPU_KERN_AVX2 && cpu_bench_read_avx2()) j.read = cpu_bench_read_avx2();
    atomic_init(&j.sink, 0);
    cpu_pool *pool = cpu_backend_pool(be);
    double best = INFINITY;
    const double start = core_time_s();
    for (int pass = 0; pass < 2 || core_time_s() - start < seconds; pass++) {
        const double t0 = core_time_s();
        cpu_pool_run(pool, bw_thread, &j);
        const double t = core_time_s() - t0;
        if (t < best) best = t;
    }
    core_free(a, p);
    if (!(best > 0.0))
        return core_errf(err, VKLLM_ERR_INTERNAL, "cpu bandwidth: the clock did not advance");
    *gbps = (double)bytes / best * 1e-9;
    if (bytes_out) *bytes_out = bytes;
    return VKLLM_OK;
}

/* ---- ops: a small graph run by the backend ---- */

typedef struct bench_graph {
    eng_backend *be;
    const vkllm_allocator *a;
    eng_model m;
    eng_graph g;
    eng_weight *w;    /* MATMUL: one per copy */
    uint8_t *w_data;  /* the copies, back to back */
    int32_t *tokens;  /* batch token ids (all 0: no op reads them) */
    uint32_t *pages;  /* block table of the one sequence */
    eng_ctx *c;
} bench_graph;

static void bench_graph_free(bench_graph *bg) {
    if (bg->c) bg->be->vt->ctx_destroy(bg->c);
    core_free(bg->a, bg->g.ops);
    core_free(bg->a, bg->w);
    core_free(bg->a, bg->w_data);
    core_free(bg->a, bg->tokens);
    core_free(bg->a, bg->pages);
}

/* Graph storage and the model shell; every activation buffer is at least 1 wide. */
static vkllm_status bench_graph_init(bench_graph *bg, eng_backend *be, uint32_t n_ops,
                                     uint32_t tokens, core_err *err) {
    memset(bg, 0, sizeof *bg);
    bg->be = be;
    bg->a = cpu_backend_alloc(be);
    bg->g.ops = core_calloc(bg->a, n_ops, sizeof *bg->g.ops);
    bg->g.n_ops = n_ops;
    bg->tokens = core_calloc(bg->a, tokens, sizeof *bg->tokens);
    for (int i = 0; i < EB_COUNT; i++) bg->g.buf_width[i] = 1;
    bg->m.cfg = (model_config){.n_vocab = 1, .n_layer = 1, .n_embd = 1, .n_ff = 1, .n_head = 1,
                               .n_head_kv = 1, .head_dim = 2, .n_rot = 2, .rms_eps = 1e-5f,
                               .rope_base = 10000.0f, .rope_freq_scale = 1.0f};
    if (!bg->g.ops || !bg->tokens)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu bench: out of memory");
    return VKLLM_OK;
}

/* One warm-up run, then runs until `seconds` have passed (at least one). */
static vkllm_status time_runs(bench_graph *bg, const eng_batch *b, double seconds,
                              uint32_t calls_per_run, vkllm_bench_op_result *out,
                              core_err *err) {
    float logits[1]; /* no op writes logits */
    vkllm_status st = bg->be->vt->run(bg->c, b, logits, err);
    uint64_t runs = 0;
    const double t0 = core_time_s();
    double t = 0.0;
    while (st == VKLLM_OK && (runs == 0 || t < seconds)) {
        st = bg->be->vt->run(bg->c, b, logits, err);
        runs++;
        t = core_time_s() - t0;
    }
    if (st != VKLLM_OK) return st;
    out->calls = runs * calls_per_run;
    out->us = t * 1e6 / (double)out->calls;
    return VKLLM_OK;
}

static vkllm_status bench_matmul(eng_backend *be, const vkllm_bench_op_desc *d,
                                 uint32_t w_type, vkllm_bench_op_result *out, core_err *err) {
    const quant_traits *tr = quant_traits_of(w_type);
    if (!tr || !tr->supported || !tr->quant)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "cpu: no matmul kernel for %s weights",
                         quant_type_name(w_type));
    uint64_t rb = 0;
    quant_row_bytes(w_type, d->cols, &rb); /* checked by the caller */
    const uint64_t mat = rb * d->rows;
    /* decode: enough copies to overflow the last-level cache 4x; prefill reuses one */
    uint64_t copies = d->tokens == 1 ? (4 * llc_bytes() + mat - 1) / mat : 1;
    if (copies * mat > ENG_BENCH_MAX_BYTES) copies = ENG_BENCH_MAX_BYTES / mat;
    if (copies > ENG_BENCH_MAX_COPIES) copies = ENG_BENCH_MAX_COPIES;
    if (copies < 1) copies = 1;
    bench_graph bg;
    vkllm_status st = bench_graph_init(&bg, be, (uint32_t)copies, d->tokens, err);
    if (st == VKLLM_OK) {
        bg.w = core_calloc(bg.a, (size_t)copies, sizeof *bg.w);
        bg.w_data = core_alloc(bg.a, (size_t)(copies * mat), 64);
        if (!bg.w || !bg.w_data)
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu bench: %llu copies of a %.1f MiB "
                           "matrix do not fit in memory", (unsigned long long)copies,
                           (double)mat / (double)MIB);
    }
    if (st == VKLLM_OK) st = eng_bench_fill_matrix(bg.a, w_type, d->rows, d->cols, bg.w_data, err);
    if (st == VKLLM_OK) {
        for (uint64_t i = 1; i < copies; i++)
            memcpy(bg.w_data + i * mat, bg.w_data, (size_t)mat);
        for (uint32_t i = 0; i < copies; i++) {
            bg.w[i] = (eng_weight){.name = "bench", .type = w_type, .n_in = d->cols,
                                   .n_out = d->rows, .row_bytes = rb,
                                   .data = bg.w_data + i * mat};
            bg.g.ops[i] = (eng_op){.kind = EOP_MATMUL, .src = EB_XN, .dst = {EB_Q}, .n_w = 1,
                                   .w = {&bg.w[i]}};
        }
        bg.g.buf_width[EB_XN] = d->cols;
        bg.g.buf_width[EB_Q] = d->rows;
        bg.m.cfg.n_embd = d->cols; /* sizes the quantized-input scratch */
        bg.m.cfg.n_ff = d->rows;
        const eng_ctx_desc cd = {.n_ctx = d->tokens, .n_batch = d->tokens};
        bg.pages = eng_ident_pages(bg.a, cd.n_ctx);
        st = bg.pages ? be->vt->ctx_create(be, &bg.m, &bg.g, &cd, &bg.c, err)
                      : core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu bench: out of memory");
    }
    if (st == VKLLM_OK) {
        eng_bench_fill_f32(cpu_ctx_rows(bg.c, EB_XN), (uint64_t)d->tokens * d->cols, 1);
        const eng_seq seq = {.n_tokens = d->tokens, .pages = bg.pages,
                             .mode = eng_attn_mode_for(d->tokens)};
        const eng_batch b = {.tokens = bg.tokens, .n_tokens = d->tokens, .seqs = &seq,
                             .n_seqs = 1};
        st = time_runs(&bg, &b, d->seconds, (uint32_t)copies, out, err);
    }
    bench_graph_free(&bg);
    return st;
}

static vkllm_status bench_attention(eng_backend *be, const vkllm_bench_op_desc *d,
                                    vkllm_bench_op_result *out, core_err *err) {
    bench_graph bg;
    vkllm_status st = bench_graph_init(&bg, be, 1, d->tokens, err);
    const uint32_t q_width = d->n_head * d->head_dim;
    if (st == VKLLM_OK) {
        bg.g.ops[0] = (eng_op){.kind = EOP_ATTENTION, .src = EB_Q, .dst = {EB_ATT}};
        bg.g.buf_width[EB_Q] = bg.g.buf_width[EB_ATT] = q_width;
        model_config *cfg = &bg.m.cfg;
        cfg->n_embd = q_width;
        cfg->n_head = d->n_head;
        cfg->n_head_kv = d->n_head_kv;
        cfg->head_dim = cfg->n_rot = d->head_dim;
        const eng_ctx_desc cd = {.n_ctx = d->n_kv, .n_batch = d->tokens};
        bg.pages = eng_ident_pages(bg.a, cd.n_ctx);
        st = bg.pages ? be->vt->ctx_create(be, &bg.m, &bg.g, &cd, &bg.c, err)
                      : core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu bench: out of memory");
    }
    if (st == VKLLM_OK) {
        const uint64_t n = (uint64_t)d->n_kv * d->n_head_kv * d->head_dim;
        eng_bench_fill_f32(cpu_ctx_rows(bg.c, EB_Q), (uint64_t)d->tokens * q_width, 1);
        eng_bench_fill_f16(cpu_ctx_cache(bg.c, false), n, 2);
        eng_bench_fill_f16(cpu_ctx_cache(bg.c, true), n, 3);
        const eng_seq seq = {.n_tokens = d->tokens, .pos0 = d->n_kv - d->tokens,
                             .pages = bg.pages, .mode = eng_attn_mode_for(d->tokens)};
        const eng_batch b = {.tokens = bg.tokens, .n_tokens = d->tokens, .seqs = &seq,
                             .n_seqs = 1};
        st = time_runs(&bg, &b, d->seconds, 1, out, err);
    }
    bench_graph_free(&bg);
    return st;
}

vkllm_status cpu_bench_op(eng_backend *be, const vkllm_bench_op_desc *d, uint32_t w_type,
                          vkllm_bench_op_result *out, core_err *err) {
    switch (d->op) {
    case VKLLM_BENCH_MATMUL: return bench_matmul(be, d, w_type, out, err);
    case VKLLM_BENCH_ATTENTION: return bench_attention(be, d, out, err);
    }
    return core_errf(err, VKLLM_ERR_INVALID_ARG, "cpu bench: unknown op %d", (int)d->op);
}
