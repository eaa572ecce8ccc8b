/* The CPU backend: interprets the engine's op list on a thread pool.
 *
 * Every thread walks the whole op list and does its share of each op (rows of a matmul,
 * tokens of a norm, (token, head) pairs of attention), with a barrier between ops that
 * depend on each other. Weights are read in place from the file mapping (S24_Q4 matrices
 * repacked once at attach where the kernels read cpu_s24.h's quads); activations are
 * quantized to the weight format's activation type before a matmul, as llama.cpp does, so
 * results match it. The KV cache is F16. All scratch is allocated at context creation:
 * nothing is allocated per token. A memory cap (vkllm_runtime_desc.memory_cap) counts the
 * attached models' weights (mapped, not copied, but the model's memory all the same) and the
 * contexts' buffers, as the Vulkan backend counts device memory.
 */
#include "cpu/cpu_backend_int.h"

#include "cpu/cpu_bench.h"
#include "cpu/cpu_info.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_pool.h"
#include "cpu/cpu_s24.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include <stdio.h>
#include <string.h>

/* ---- helpers ---- */

/* Counts bytes against the memory cap before allocating, so contexts made on several threads
 * at once never pass it together; false past the cap. */
static bool mem_reserve(cpu_backend *be, uint64_t bytes) {
    uint64_t cur = atomic_load(&be->held);
    do {
        if (be->memory_cap && (cur + bytes < cur || cur + bytes > be->memory_cap)) return false;
    } while (!atomic_compare_exchange_weak(&be->held, &cur, cur + bytes));
    return true;
}

static double mib(uint64_t bytes) {
    return (double)bytes / (1024.0 * 1024.0);
}

/* ---- ops ---- */

static void op_embed(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const eng_weight *w = op->w[0];
    const quant_traits *qt = quant_traits_of(w->type);
    uint32_t lo, hi;
    split(c->b->n_tokens, ith, nth, 1, &lo, &hi);
    float *dst = c->buf[op->dst[0]];
    uint32_t width = c->g->buf_width[op->dst[0]];
    for (uint32_t t = lo; t < hi; t++) {
        const uint8_t *row = (const uint8_t *)w->data + (uint64_t)c->b->tokens[t] * w->row_bytes;
        qt->dequant(row, dst + (uint64_t)t * width, w->n_in);
        cpu_lora_embed(c, op, t, dst + (uint64_t)t * width, ith);
    }
}

/* Rows an op works on: the output head only needs the output rows, which its norm gathers
 * into rows 0 .. n_out - 1 for the matmul after it. */
static uint32_t op_rows(const eng_ctx *c, const eng_op *op) {
    return op->last_rows ? c->b->n_out : c->b->n_tokens;
}

static void op_rms_norm(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const uint32_t n = op_rows(c, op);
    uint32_t lo, hi;
    split(n, ith, nth, 1, &lo, &hi);
    const uint32_t d = op->w[0]->n_in;
    const float *w = op->w[0]->data;
    const float eps = c->m->cfg.rms_eps;
    const uint32_t ws = c->g->buf_width[op->src], wd = c->g->buf_width[op->dst[0]];
    for (uint32_t i = lo; i < hi; i++) {
        const uint32_t row = op->last_rows ? c->out_row[i] : i;
        const float *x = c->buf[op->src] + (uint64_t)row * ws;
        float *y = c->buf[op->dst[0]] + (uint64_t)i * wd;
        /* sum of squares in double, then scale and weight in float, as ggml does */
        double sum = 0.0;
        for (uint32_t j = 0; j < d; j++)
            sum += (double)(x[j] * x[j]);
        const float scale = 1.0f / sqrtf((float)(sum / d) + eps);
        for (uint32_t j = 0; j < d; j++)
            y[j] = (x[j] * scale) * w[j];
    }
}

static void op_matmul(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const uint32_t n_tok = op_rows(c, op);
    const uint32_t ws = c->g->buf_width[op->src];
    const float *src = c->buf[op->src];
    const uint32_t n_in = op->w[0]->n_in;
    /* 1. quantize the input rows once per distinct activation type */
    const bool private_q = n_tok <= CPU_PRIVATE_Q_ROWS;
    const uint8_t *xq[ENG_MAX_FUSED];
    uint64_t xq_stride[ENG_MAX_FUSED];
    for (int i = 0; i < op->n_w; i++) {
        quant_type vdt = quant_traits_of(op->w[i]->type)->vec_dot_type;
        int reuse = -1;
        for (int j = 0; j < i; j++)
            if (quant_traits_of(op->w[j]->type)->vec_dot_type == vdt) reuse = j;
        if (reuse >= 0) {
            xq[i] = xq[reuse];
            xq_stride[i] = xq_stride[reuse];
            continue;
        }
        uint64_t rb = 0;
        quant_row_bytes(vdt, n_in, &rb);
        uint8_t *q = c->qbuf[i];
        uint32_t lo = 0, hi = n_tok;
        if (private_q) /* every thread quantizes the few rows itself */
            q = c->th_qbuf + ((uint64_t)ith * ENG_MAX_FUSED + (uint64_t)i) * c->th_qbuf_bytes;
        else
            split(n_tok, ith, nth, 1, &lo, &hi);
        for (uint32_t t = lo; t < hi; t++)
            cpu_quantize_row(&c->be->k, vdt, src + (uint64_t)t * ws, q + t * rb, n_in);
        xq[i] = q;
        xq_stride[i] = rb;
    }
    /* adapters: A x of every adapted product first (it reads the float input) */
    const bool lora = cpu_lora_op(c, op);
    if (lora) cpu_lora_down(c, op, ith, nth);
    if (!private_q || lora) cpu_pool_barrier(c->be->pool);
    /* 2. rows of all fused weights, concatenated, split evenly over threads */
    uint32_t total = 0;
    for (int i = 0; i < op->n_w; i++)
        total += op->w[i]->n_out;
    uint32_t lo, hi;
    split(total, ith, nth, CPU_MATMUL_ROW_ALIGN, &lo, &hi);
    uint32_t base = 0;
    for (int i = 0; i < op->n_w; i++) {
        const eng_weight *w = op->w[i];
        uint32_t r0 = lo > base ? lo - base : 0, r1 = hi - base < w->n_out ? hi - base : w->n_out;
        if (hi > base && r0 < w->n_out && r0 < r1) {
            const uint32_t wd = c->g->buf_width[op->dst[i]];
            float *dst = c->buf[op->dst[i]];
            if (op->dst[i] == EB_LOGITS) dst = c->logits_out;
            const void *quads = c->ref ? cpu_s24_quads_of(c->ref->quads, c->m, w) : NULL;
            cpu_matmul_desc md = {
                .w_type = w->type,
                .w = quads ? quads : w->data,
                .w_row_bytes = w->row_bytes,
                .w_quads = quads != NULL,
                .n_in = n_in,
                .r0 = r0,
                .r1 = r1,
                .x = xq[i],
                .x_row_bytes = xq_stride[i],
                .n_tokens = n_tok,
                .y = op->accumulate ? c->tmp : dst,
                .y_stride = wd,
            };
            cpu_matmul(&c->be->k, &md);
            if (lora) cpu_lora_up(c, op, i, op->accumulate ? c->tmp : dst, wd, r0, r1);
            if (op->accumulate)
                for (uint32_t t = 0; t < n_tok; t++)
                    for (uint32_t r = r0; r < r1; r++)
                        dst[(uint64_t)t * wd + r] += c->tmp[(uint64_t)t * wd + r];
        }
        base += w->n_out;
    }
}

/* RoPE "normal" mode: pairs (x[2i], x[2i+1]) rotate by pos * base^(-2i/n_rot) (Su et al.
 * 2021, RoFormer). The angle is built by repeated multiplication in float, as ggml does, so
 * the rounding matches llama.cpp. Then K (and V) go to the cache as F16. */
static void op_rope_store(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const model_config *cfg = &c->m->cfg;
    const uint32_t hd = cfg->head_dim, n_rot = cfg->n_rot;
    float *cs = c->th_rope + (uint64_t)ith * hd * 2;
    uint32_t lo, hi;
    split(c->b->n_tokens, ith, nth, 1, &lo, &hi);
    for (uint32_t t = lo; t < hi; t++) {
        const uint32_t pos = c->tok_pos[t];
        eng_rope_cs(cfg, c->m->rope_freqs, pos, cs);
        float *q = c->buf[EB_Q] + (uint64_t)t * c->g->buf_width[EB_Q];
        float *k = c->buf[EB_K] + (uint64_t)t * c->g->buf_width[EB_K];
        for (uint32_t h = 0; h < cfg->n_head + cfg->n_head_kv; h++) {
            float *x = h < cfg->n_head ? q + h * hd : k + (h - cfg->n_head) * hd;
            for (uint32_t i = 0; i < n_rot; i += 2) {
                const float x0 = x[i], x1 = x[i + 1];
                /* fused as llama.cpp's build fuses them (first product into an FMA) */
                x[i] = fmaf(x0, cs[i], -(x1 * cs[i + 1]));
                x[i + 1] = fmaf(x0, cs[i + 1], x1 * cs[i]);
            }
        }
        const uint32_t *pages = c->b->seqs[c->tok_seq[t]].pages;
        const uint64_t slot = (uint64_t)op->layer * c->n_slots +
                              (uint64_t)pages[pos / ENG_PAGE] * ENG_PAGE + pos % ENG_PAGE;
        const float *v = c->buf[EB_V] + (uint64_t)t * c->g->buf_width[EB_V];
        if (c->kv_q8) {
            uint8_t *kc = (uint8_t *)c->kcache, *vc = (uint8_t *)c->vcache;
            cpu_quantize_row(&c->be->k, QT_Q8_0, k, kc + slot * c->kv_row, (int64_t)c->kv_dim);
            cpu_quantize_row(&c->be->k, QT_Q8_0, v, vc + slot * c->kv_row, (int64_t)c->kv_dim);
            continue;
        }
        cpu_fp32_to_fp16_row(&c->be->k, k, c->kcache + slot * c->kv_dim, (int64_t)c->kv_dim);
        cpu_fp32_to_fp16_row(&c->be->k, v, c->vcache + slot * c->kv_dim, (int64_t)c->kv_dim);
    }
}

static void op_swiglu(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const uint32_t w = c->g->buf_width[op->src];
    uint32_t lo, hi;
    split(c->b->n_tokens, ith, nth, 1, &lo, &hi);
    for (uint32_t t = lo; t < hi; t++) {
        const uint64_t off = (uint64_t)t * w;
        c->be->k.ak->swiglu(c->buf[op->dst[0]] + off, c->buf[op->src] + off, c->buf[op->src2] + off,
                            (int)w);
    }
}

static void run_job(void *arg, int ith, int nth) {
    eng_ctx *c = arg;
    const eng_graph *g = c->g;
    for (uint32_t i = c->next_op; i < c->stop_op; i++) {
        const eng_op *op = &g->ops[i];
        switch (op->kind) {
        case EOP_EMBED:
            op_embed(c, op, ith, nth);
            break;
        case EOP_RMS_NORM:
            if (op->last_rows && c->b->n_out == 0) continue;
            op_rms_norm(c, op, ith, nth);
            break;
        case EOP_MATMUL:
            if (op->last_rows && c->b->n_out == 0) continue;
            if (c->observe) { /* reads the input only, as the product does: no barrier */
                const uint32_t w = c->g->buf_width[op->src];
                uint32_t lo, hi;
                split(w, ith, nth, 16, &lo, &hi);
                if (lo < hi)
                    c->observe(c->observe_user, op, c->buf[op->src], op_rows(c, op), w, lo, hi);
            }
            op_matmul(c, op, ith, nth);
            break;
        case EOP_ROPE:
            op_rope_store(c, op, ith, nth);
            break;
        case EOP_KV_STORE:
            continue; /* done with ROPE, same token split: no barrier */
        case EOP_ATTENTION:
            cpu_op_attention(c, op, ith, nth);
            break;
        case EOP_SWIGLU:
            op_swiglu(c, op, ith, nth);
            break;
        }
        cpu_pool_barrier(c->be->pool);
        if (c->deadline > 0) { /* step mode: thread 0 decides for all whether to stop here */
            if (ith == 0 && core_time_s() >= c->deadline) c->stop_op = i + 1;
            cpu_pool_barrier(c->be->pool);
        }
    }
}

/* ---- backend interface ---- */

static vkllm_status cpu_begin(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    vkllm_status st = eng_batch_check(b, &c->cd, c->m->cfg.n_vocab, "cpu", err);
    if (st != VKLLM_OK) return st;
    if ((st = cpu_lora_prepare(c, b, err)) != VKLLM_OK) return st;
    if (b->n_out && !logits)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "cpu: outputs need a logits buffer");
    for (uint32_t e = 0; e < b->n_seqs; e++)
        if (b->seqs[e].feed)
            return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                             "cpu: entry %u is fed from a step in "
                             "flight (one step at a time here)",
                             e);
    if (c->m->no_embed != (b->x_in != NULL) || c->m->no_head != (b->x_out != NULL) ||
        (c->m->no_head && b->n_out))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "cpu: a stage %s the embedding and %s the head takes %s and gives %s",
                         c->m->no_embed ? "without" : "with", c->m->no_head ? "without" : "with",
                         c->m->no_embed ? "x_in" : "tokens",
                         c->m->no_head ? "x_out, no outputs" : "outputs, no x_out");
    if (b->x_in)
        memcpy(c->buf[EB_X], b->x_in, (size_t)b->n_tokens * c->m->cfg.n_embd * sizeof(float));
    uint32_t row = 0, outs = 0;
    c->item0[0] = 0;
    for (uint32_t e = 0; e < b->n_seqs; e++) {
        const eng_seq *s = &b->seqs[e];
        for (uint32_t t = 0; t < s->n_tokens; t++) {
            c->tok_pos[row + t] = s->pos0 + t;
            c->tok_seq[row + t] = e;
        }
        row += s->n_tokens;
        for (uint32_t k = eng_seq_outs(s); k > 0; k--)
            c->out_row[outs++] = row - k;
        c->item0[e + 1] = c->item0[e] + cpu_seq_items(c, s);
    }
    c->b = b;
    c->logits_out = logits;
    c->next_op = 0;
    return VKLLM_OK;
}

static vkllm_status cpu_advance(eng_ctx *c, double deadline, bool *done, core_err *err) {
    const eng_batch *b = c->b;
    *done = false;
    if (!b) return core_errf(err, VKLLM_ERR_INVALID_ARG, "cpu: no step in progress");
    c->deadline = deadline;
    c->stop_op = c->g->n_ops;
    cpu_pool_run(c->be->pool, run_job, c);
    c->next_op = c->stop_op;
    if (c->next_op < c->g->n_ops) return VKLLM_OK;
    c->b = NULL;
    if (b->x_out)
        memcpy(b->x_out, c->buf[EB_X], (size_t)b->n_tokens * c->m->cfg.n_embd * sizeof(float));
    const uint32_t nv = c->m->cfg.n_vocab;
    for (uint32_t r = 0; b->top_k && r < b->n_out; r++) {
        const bool ban = b->seqs[c->tok_seq[c->out_row[r]]].ban; /* its entry's */
        eng_select_top_ban(c->logits_out + (uint64_t)r * nv, nv, b->top_k, c->cd.ban,
                           ban ? c->cd.n_ban : 0, b->out_ids + r * b->top_k,
                           b->out_vals ? b->out_vals + r * b->top_k : NULL);
    }
    *done = true;
    return VKLLM_OK;
}

static vkllm_status cpu_run(eng_ctx *c, const eng_batch *b, float *logits, core_err *err) {
    vkllm_status st = cpu_begin(c, b, logits, err);
    bool done = false;
    if (st == VKLLM_OK) st = cpu_advance(c, 0.0, &done, err);
    return st;
}

static void cpu_ctx_destroy(eng_ctx *c) {
    if (!c) return;
    const vkllm_allocator *a = c->be->alloc;
    cpu_lora_free(c);
    for (int i = 0; i < EB_COUNT; i++)
        core_free(a, c->buf[i]);
    for (int i = 0; i < ENG_MAX_FUSED; i++)
        core_free(a, c->qbuf[i]);
    core_free(a, c->th_qbuf);
    core_free(a, c->tmp);
    core_free(a, c->kcache);
    core_free(a, c->vcache);
    core_free(a, c->th_rope);
    core_free(a, c->th_q16);
    core_free(a, c->th_vacc);
    core_free(a, c->th_tile);
    core_free(a, c->th_q8);
    core_free(a, c->tok_pos);
    core_free(a, c->tok_seq);
    core_free(a, c->out_row);
    core_free(a, c->item0);
    core_free(a, c->ban);
    atomic_fetch_sub(&c->be->held, c->held);
    core_free(a, c);
}

enum { CTX_ZERO = 1, CTX_KV = 2 };

/* One of a context's buffers (64-byte aligned; zeroed with CTX_ZERO): counted in c->want (the
 * KV cache in c->want_kv) whatever happens, so that a failure can say what the whole context
 * needs; NULL once one has failed or would pass the memory cap. */
static void *ctx_alloc(eng_ctx *c, uint64_t n, uint64_t size, int flags) {
    uint64_t bytes;
    if (!core_mul_ok(n, size, &bytes) || bytes > SIZE_MAX / 2) {
        bytes = SIZE_MAX / 2; /* cannot be allocated; the message says how much at least */
        c->failed = true;
    }
    if (bytes == 0) bytes = 64; /* a stage without a head or a layer: no NULL buffers */
    *(flags & CTX_KV ? &c->want_kv : &c->want) += bytes;
    if (c->failed) return NULL;
    if (!mem_reserve(c->be, bytes)) {
        c->failed = c->over_cap = true;
        return NULL;
    }
    c->held += bytes;
    void *p = core_alloc(c->be->alloc, (size_t)bytes, 64);
    if (!p)
        c->failed = true;
    else if (flags & CTX_ZERO)
        memset(p, 0, (size_t)bytes);
    return p;
}

static vkllm_status cpu_ctx_create(eng_backend *base, const eng_model *m, const eng_graph *g,
                                   const eng_ctx_desc *cd, eng_ctx **out, core_err *err) {
    cpu_backend *be = (cpu_backend *)base;
    const vkllm_allocator *a = be->alloc;
    const model_config *cfg = &m->cfg;
    vkllm_status st0 = eng_ban_check(cd, cfg->n_vocab, "cpu", err);
    if (st0 != VKLLM_OK) return st0;
    eng_ctx *c = core_calloc(a, 1, sizeof *c);
    if (!c) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: out of memory");
    c->be = be;
    c->m = m;
    pthread_mutex_lock(&be->models_mu);
    for (const cpu_model_ref *r = be->models; r; r = r->next)
        if (r->m == m) c->ref = r;
    pthread_mutex_unlock(&be->models_mu);
    c->g = g;
    c->cd = *cd;
    if (!c->cd.n_seqs) c->cd.n_seqs = 1;
    if (!c->cd.n_pages) c->cd.n_pages = (cd->n_ctx + ENG_PAGE - 1) / ENG_PAGE;
    const uint32_t n_ctx = c->cd.n_ctx, n_batch = c->cd.n_batch, n_seqs = c->cd.n_seqs;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_slots = (uint64_t)c->cd.n_pages * ENG_PAGE;
    c->kv_dim = (uint64_t)cfg->n_head_kv * cfg->head_dim;
    c->kv_q8 = cd->kv_q8_0;
    c->kv_row = eng_kv_row_bytes((uint32_t)c->kv_dim, c->kv_q8);
    if (c->kv_q8 && cfg->head_dim % 32 != 0) {
        cpu_ctx_destroy(c);
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "cpu: a Q8_0 KV cache needs head_dim a "
                         "multiple of 32 (it is %u)",
                         cfg->head_dim);
    }
    const int nth = cpu_pool_size(be->pool);
    c->tok_pos = ctx_alloc(c, n_batch, sizeof *c->tok_pos, CTX_ZERO);
    c->tok_seq = ctx_alloc(c, n_batch, sizeof *c->tok_seq, CTX_ZERO);
    c->out_row = ctx_alloc(c, n_batch, sizeof *c->out_row, CTX_ZERO);
    c->item0 = ctx_alloc(c, (uint64_t)n_seqs + 1, sizeof *c->item0, CTX_ZERO);
    c->ban = ctx_alloc(c, (uint64_t)cd->n_ban + 1, sizeof *c->ban, 0);
    if (c->ban && cd->n_ban) memcpy(c->ban, cd->ban, (size_t)cd->n_ban * sizeof *c->ban);
    c->cd.ban = c->ban;
    for (int i = 0; i < EB_COUNT; i++)
        c->buf[i] = ctx_alloc(c, n_batch, (uint64_t)g->buf_width[i] * sizeof(float), CTX_ZERO);
    uint32_t max_in = cfg->n_embd;
    if (cfg->n_ff > max_in) max_in = cfg->n_ff;
    if (cfg->n_head * cfg->head_dim > max_in) max_in = cfg->n_head * cfg->head_dim;
    /* worst case activation type is F32: 4 bytes per value */
    c->qbuf_bytes = (uint64_t)n_batch * max_in * 4;
    for (int i = 0; i < ENG_MAX_FUSED; i++)
        c->qbuf[i] = ctx_alloc(c, c->qbuf_bytes, 1, 0);
    c->th_qbuf_bytes = (uint64_t)CPU_PRIVATE_Q_ROWS * max_in * 4;
    c->th_qbuf = ctx_alloc(c, c->th_qbuf_bytes * ENG_MAX_FUSED, (uint64_t)nth, 0);
    c->tmp = ctx_alloc(c, n_batch, (uint64_t)cfg->n_embd * sizeof(float), CTX_ZERO);
    uint64_t kv_elems;
    if (!core_mul_ok((uint64_t)cfg->n_layer * c->n_slots, c->kv_dim, &kv_elems) ||
        kv_elems > SIZE_MAX / 2) {
        cpu_ctx_destroy(c);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: KV cache of %llu tokens too large",
                         (unsigned long long)c->n_slots);
    }
    const uint64_t kv_bytes = kv_elems / c->kv_dim * c->kv_row;
    c->kcache = ctx_alloc(c, kv_bytes, 1, CTX_KV);
    c->vcache = ctx_alloc(c, kv_bytes, 1, CTX_KV);
    c->th_q8 = ctx_alloc(c, (uint64_t)nth, (uint64_t)cfg->head_dim * 3 * sizeof(float), CTX_ZERO);
    c->th_rope = ctx_alloc(c, (uint64_t)nth, (uint64_t)cfg->head_dim * 2 * sizeof(float), CTX_ZERO);
    c->th_q16 = ctx_alloc(c, (uint64_t)nth, (uint64_t)cfg->head_dim * sizeof(uint16_t), CTX_ZERO);
    c->th_vacc = ctx_alloc(c, (uint64_t)nth, (uint64_t)cfg->head_dim * 2 * sizeof(float), CTX_ZERO);
    /* K^T and V tiles, scores, and per query head of a group: M, S and the V sums */
    const uint64_t group = cfg->n_head / cfg->n_head_kv;
    c->th_tile_floats = (uint64_t)cfg->head_dim * CPU_VEC_TILE * 2 + CPU_VEC_TILE +
                        group * CPU_VEC_TILE * (2 + (uint64_t)cfg->head_dim);
    c->th_tile = ctx_alloc(c, (uint64_t)nth, c->th_tile_floats * sizeof(float), CTX_ZERO);
    if (c->failed) {
        const uint64_t others = atomic_load(&be->held) - c->held;
        char what[200];
        snprintf(what, sizeof what,
                 "a context of %u tokens needs %.1f MiB (%.1f MiB of KV cache for %llu tokens, "
                 "%.1f MiB of activations for batches of %u tokens)",
                 n_ctx, mib(c->want_kv + c->want), mib(c->want_kv), (unsigned long long)c->n_slots,
                 mib(c->want), n_batch);
        const bool cap = c->over_cap;
        cpu_ctx_destroy(c);
        if (cap)
            return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                             "cpu: %s: over the memory cap of %.1f MiB (%.1f MiB in use)", what,
                             mib(be->memory_cap), mib(others));
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: out of memory: %s", what);
    }
    *out = c;
    return VKLLM_OK;
}

/* The weights are used in place (S24_Q4 ones repacked, cpu_s24.h); attaching counts them
 * against the memory cap. */
static vkllm_status cpu_model_attach(eng_backend *base, const eng_model *m, core_err *err) {
    cpu_backend *be = (cpu_backend *)base;
    cpu_model_ref *r = core_calloc(be->alloc, 1, sizeof *r);
    if (!r) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: out of memory");
    if (!mem_reserve(be, m->weight_bytes)) {
        core_free(be->alloc, r);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "cpu: model weights: %.1f MiB would pass the memory cap of %.1f MiB "
                         "(%.1f MiB in use)",
                         mib(m->weight_bytes), mib(be->memory_cap), mib(atomic_load(&be->held)));
    }
    *r = (cpu_model_ref){.m = m, .bytes = m->weight_bytes, .next = be->models};
    const uint64_t qb = be->k.kt->s24_quads ? cpu_s24_model_quads_bytes(m) : 0;
    if (qb && !mem_reserve(be, qb)) {
        atomic_fetch_sub(&be->held, r->bytes);
        core_free(be->alloc, r);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "cpu: S24_Q4 weights repacked for the kernels: %.1f MiB more would pass "
                         "the memory cap of %.1f MiB",
                         mib(qb), mib(be->memory_cap));
    }
    r->bytes += qb;
    if (qb && !(r->quads = cpu_s24_model_quads_make(m, be->alloc))) {
        atomic_fetch_sub(&be->held, r->bytes);
        core_free(be->alloc, r);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: out of memory (S24_Q4 repacking)");
    }
    pthread_mutex_lock(&be->models_mu);
    be->models = r;
    pthread_mutex_unlock(&be->models_mu);
    return VKLLM_OK;
}

static void cpu_model_detach(eng_backend *base, const eng_model *m) {
    cpu_backend *be = (cpu_backend *)base;
    for (cpu_model_ref **p = &be->models; *p; p = &(*p)->next)
        if ((*p)->m == m) {
            cpu_model_ref *r = *p;
            pthread_mutex_lock(&be->models_mu);
            *p = r->next;
            pthread_mutex_unlock(&be->models_mu);
            atomic_fetch_sub(&be->held, r->bytes);
            cpu_s24_model_quads_free(r->quads, be->alloc);
            core_free(be->alloc, r);
            return;
        }
}

static uint64_t cpu_held(const eng_backend *base) {
    return atomic_load(&((cpu_backend *)base)->held);
}

static void cpu_destroy(eng_backend *base) {
    cpu_backend *be = (cpu_backend *)base;
    if (!be) return;
    while (be->models) /* models the caller never freed */
        cpu_model_detach(base, be->models->m);
    cpu_pool_destroy(be->pool);
    pthread_mutex_destroy(&be->models_mu);
    core_free(be->alloc, be);
}

/* ---- hooks for cpu_bench.c ---- */

cpu_pool *cpu_backend_pool(eng_backend *be) {
    return ((cpu_backend *)be)->pool;
}
const cpu_ops *cpu_backend_ops(eng_backend *be) {
    return &((cpu_backend *)be)->k;
}
const vkllm_allocator *cpu_backend_alloc(eng_backend *be) {
    return ((cpu_backend *)be)->alloc;
}
float *cpu_ctx_rows(eng_ctx *c, eng_buf b) {
    return c->buf[b];
}
uint16_t *cpu_ctx_cache(eng_ctx *c, bool values) {
    return values ? c->vcache : c->kcache;
}

static void cpu_observe(eng_ctx *c, eng_observe_fn fn, void *user) {
    c->observe = fn;
    c->observe_user = user;
}

static const eng_backend_vtbl k_cpu_vtbl = {
    .observe = cpu_observe,
    .destroy = cpu_destroy,
    .model_attach = cpu_model_attach,
    .model_detach = cpu_model_detach,
    .ctx_create = cpu_ctx_create,
    .ctx_destroy = cpu_ctx_destroy,
    .run = cpu_run,
    .begin = cpu_begin,
    .advance = cpu_advance,
    .bandwidth = cpu_bench_bandwidth,
    .bench_op = cpu_bench_op,
    .held = cpu_held,
};

vkllm_status cpu_backend_create(const cpu_backend_desc *desc, eng_backend **out, core_err *err) {
    cpu_backend *be = core_calloc(desc->alloc, 1, sizeof *be);
    if (!be) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "cpu: out of memory");
    be->alloc = desc->alloc;
    be->memory_cap = desc->memory_cap;
    be->base.vt = &k_cpu_vtbl;
    be->base.bans = true;
    be->base.loras = true;
    pthread_mutex_init(&be->models_mu, NULL);
    vkllm_status st = cpu_pool_create(desc->alloc, desc->n_threads, &be->pool, err);
    if (st != VKLLM_OK) {
        pthread_mutex_destroy(&be->models_mu);
        core_free(desc->alloc, be);
        return st;
    }
    if (!cpu_kernels_get(desc->isa)) {
        cpu_pool_destroy(be->pool);
        pthread_mutex_destroy(&be->models_mu);
        core_free(desc->alloc, be);
        return core_errf(err, VKLLM_ERR_NO_DEVICE, "cpu: this processor has no %s kernels",
                         cpu_kern_isa_name(desc->isa));
    }
    cpu_ops_init(&be->k, desc->isa);
    snprintf(be->base.name, sizeof be->base.name, "cpu (%s, %d threads)", be->k.kt->name,
             cpu_pool_size(be->pool));
    cpu_info_device(&be->base.info);
    snprintf(be->base.info.driver, sizeof be->base.info.driver, "%s", be->k.kt->name);
    *out = &be->base;
    return VKLLM_OK;
}
