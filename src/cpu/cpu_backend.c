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
#include "cpu/cpu_backend.h"

#include "cpu/cpu_bench.h"
#include "cpu/cpu_info.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_pool.h"
#include "cpu/cpu_s24.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

/* Up to this many rows, each thread quantizes a matmul's input itself instead of sharing
 * the work and meeting at a barrier: cheaper for decode. */
#define CPU_PRIVATE_Q_ROWS 4
#include <stdio.h>
#include <string.h>

/* An attached model and the bytes it holds under the memory cap (its weights and quads). */
typedef struct cpu_model_ref {
    const eng_model *m;
    uint64_t bytes;
    cpu_s24_model_quads *quads; /* its S24_Q4 layer matrices repacked, or NULL */
    struct cpu_model_ref *next;
} cpu_model_ref;

typedef struct cpu_backend {
    eng_backend base;
    const vkllm_allocator *alloc;
    cpu_pool *pool;
    cpu_ops k;
    uint64_t memory_cap;   /* bytes, 0 = none */
    _Atomic uint64_t held; /* weights of attached models and context buffers */
    cpu_model_ref *models; /* attach and detach run under the runtime's backend lock */
    /* the list itself: a scheduler's context creation looks its model up outside that lock */
    pthread_mutex_t models_mu;
} cpu_backend;

struct eng_ctx {
    cpu_backend *be;
    const eng_model *m;
    const cpu_model_ref *ref; /* m's attachment (its quads), NULL if not attached */
    const eng_graph *g;
    eng_ctx_desc cd;
    uint32_t n_ctx, n_batch;
    float *buf[EB_COUNT];         /* activations, n_batch rows each (LOGITS: n_batch rows) */
    uint8_t *qbuf[ENG_MAX_FUSED]; /* quantized matmul inputs */
    uint64_t qbuf_bytes;
    uint8_t *th_qbuf;          /* per-thread copies for small batches: no barrier needed */
    uint64_t th_qbuf_bytes;    /* per thread and fused slot */
    float *tmp;                /* matmul output before a fused residual add */
    uint16_t *kcache, *vcache; /* [n_layer][n_pages * ENG_PAGE][kv_dim] f16 */
    uint64_t n_slots;          /* n_pages * ENG_PAGE */
    bool kv_q8;                /* the cache holds Q8_0 rows (kcache, vcache as bytes) */
    uint64_t kv_row;           /* bytes of one cache row: eng_kv_row_bytes */
    float *th_q8;              /* Q8_0 cache: per thread K row, V row and sum [head_dim] */
    uint64_t kv_dim;
    /* per-thread scratch: attention scores [n_ctx], rope cos/sin [head_dim], q in f16 */
    float *th_rope;
    uint16_t *th_q16;
    float *th_vacc;
    float *th_tile; /* large-batch attention: K^T, V, scores, M, S, sums */
    uint64_t th_tile_floats;
    /* per token of a step: its position and entry; per output: its row; per entry: where
     * its attention work items start (the last one: the total) */
    uint32_t *tok_pos, *tok_seq, *out_row, *item0;
    int32_t *ban; /* eng_ctx_desc.ban, copied (cd.ban points here) */
    /* the current run */
    const eng_batch *b;
    float *logits_out;
    eng_observe_fn observe; /* sees every matmul's input (importance statistics) */
    void *observe_user;
    uint32_t next_op; /* begin/advance: the first op not yet run */
    uint32_t stop_op; /* ops [next_op, stop_op) this pool job runs, at most */
    double deadline;
    /* creation: bytes its buffers need (KV cache apart) and hold under the cap; whether one
     * could not be allocated, or would have passed the cap */
    uint64_t want, want_kv, held;
    bool failed, over_cap;
};

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

/* Even split of [0, n) into nth parts, part ith; rows grouped in multiples of `align`. */
static void split(uint32_t n, int ith, int nth, uint32_t align, uint32_t *lo, uint32_t *hi) {
    uint32_t groups = (n + align - 1) / align;
    uint32_t per = groups / (uint32_t)nth, extra = groups % (uint32_t)nth;
    uint32_t g0 = (uint32_t)ith * per + ((uint32_t)ith < extra ? (uint32_t)ith : extra);
    uint32_t g1 = g0 + per + ((uint32_t)ith < extra ? 1 : 0);
    *lo = g0 * align < n ? g0 * align : n;
    *hi = g1 * align < n ? g1 * align : n;
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
    if (!private_q) cpu_pool_barrier(c->be->pool);
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

/* Causal attention of each (token, head) over the cache: softmax(q.k / sqrt(d)) . v
 * (Vaswani et al. 2017), grouped-query (Ainslie et al. 2023): query head h reads KV head
 * h / (n_head / n_head_kv).
 *
 * The arithmetic follows llama.cpp's CPU flash attention with an F16 cache, so that greedy
 * output is the same token for token:
 *  - batches of fewer than CPU_ATTN_TILE_Q tokens (decode): Q rounded to F16, online softmax
 *    (Rabe & Staats 2021) with the weighted V sum kept in an F16 accumulator;
 *  - larger batches (prefill): Q in F32, scores and the V sum in F32.
 */
#define CPU_ATTN_TILE_Q 64

/* Slot of position j of a sequence in a paged cache (rows of kv_dim halves). */
static inline uint64_t kv_slot(const uint32_t *pages, uint32_t j) {
    return (uint64_t)pages[j / ENG_PAGE] * ENG_PAGE + j % ENG_PAGE;
}

/* Online softmax over keys [j0, j1) with the weighted V sum in an F16 accumulator (acc16),
 * as llama.cpp's flash attention does for small batches; returns the running max and sum. */
static void attn_chunk_f16(eng_ctx *c, const uint16_t *q16, uint32_t j0, uint32_t j1,
                           const uint16_t *kc, const uint16_t *vc, const uint32_t *pages,
                           uint16_t *acc16, float *m_out, float *s_out) {
    const uint32_t hd = c->m->cfg.head_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    const cpu_vec_kernels *ak = c->be->k.ak;
    if (ak->attn_chunk_f16 && ak->attn_chunk_f16(q16, kc, vc, pages, ENG_PAGE, c->kv_dim, j0, j1,
                                                 (int)hd, scale, acc16, m_out, s_out))
        return; /* the same loop, fused (cpu_vec.h) */
    memset(acc16, 0, hd * sizeof *acc16);
    float S = 0.0f, M = -INFINITY;
    for (uint32_t j = j0; j < j1; j++) {
        const uint64_t row = kv_slot(pages, j) * c->kv_dim;
        const float s = cpu_dot_f16(&c->be->k, kc + row, q16, hd) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            ak->scale_f16(acc16, ms, (int)hd);
        } else {
            vs = expf(s - M);
        }
        ak->mad_f16(acc16, vc + row, vs, (int)hd);
        S = fmaf(S, ms, vs); /* llama.cpp builds contract this into an FMA */
    }
    *m_out = M;
    *s_out = S;
}

/* The cache length llama.cpp's graph attends over: used cells padded to 256, at most n_ctx. */
static uint32_t llama_padded_kv(uint32_t n_ctx, uint32_t n_kv) {
    uint32_t p = (n_kv + 255) / 256 * 256;
    if (p < 256) p = 256;
    return p < n_ctx ? p : n_ctx;
}

/* One query head over keys [0, n_kv): SERIAL, or SPLIT when `split` (a single query). */
static void attn_head_small(eng_ctx *c, const float *q, uint32_t n_kv, const uint16_t *kc,
                            const uint16_t *vc, const uint32_t *pages, bool split, float *out,
                            int ith, int nth) {
    const uint32_t hd = c->m->cfg.head_dim;
    uint16_t *q16 = c->th_q16 + (uint64_t)ith * hd;
    uint16_t *acc16 = (uint16_t *)(c->th_vacc + (uint64_t)ith * hd * 2);
    float *vsum = c->th_vacc + (uint64_t)ith * hd * 2 + hd;
    cpu_fp32_to_fp16_row(&c->be->k, q, q16, hd);
    const uint32_t padded = llama_padded_kv(c->n_ctx, n_kv);
    if (!split || padded < 512) {
        float M, S;
        attn_chunk_f16(c, q16, 0, n_kv, kc, vc, pages, acc16, &M, &S);
        const float inv = S == 0.0f ? 0.0f : 1.0f / S;
        for (uint32_t i = 0; i < hd; i++)
            out[i] = core_fp16_to_fp32(acc16[i]) * inv;
        return;
    }
    /* A single query over a long cache: llama.cpp splits the keys into one chunk per thread
     * and merges the partial softmaxes in chunk order; the same here, with our thread count
     * (identical results when both use the same number of threads). */
    const uint32_t chunk = (padded + (uint32_t)nth - 1) / (uint32_t)nth;
    float Mf = -INFINITY, Sf = 0.0f;
    memset(vsum, 0, hd * sizeof *vsum);
    for (uint32_t j0 = 0; j0 < padded && j0 < n_kv; j0 += chunk) {
        const uint32_t j1 = j0 + chunk < n_kv ? j0 + chunk : n_kv;
        float M, S;
        attn_chunk_f16(c, q16, j0, j1, kc, vc, pages, acc16, &M, &S);
        if (S == 0.0f) continue;
        const float m_new = fmaxf(Mf, M);
        const float so = expf(Mf - m_new), sn = expf(M - m_new);
        for (uint32_t i = 0; i < hd; i++)
            vsum[i] = fmaf(vsum[i], so, core_fp16_to_fp32(acc16[i]) * sn);
        Sf = fmaf(Sf, so, S * sn);
        Mf = m_new;
    }
    const float inv = Sf != 0.0f ? 1.0f / Sf : 1.0f;
    for (uint32_t i = 0; i < hd; i++)
        out[i] = vsum[i] * inv;
}

/* Queries at batch rows [t0, t0 + nq), positions qpos0 .. qpos0 + nq - 1 of one sequence, of
 * the query heads h0 .. h0 + n_h - 1 (which share one KV head), nq <= CPU_VEC_TILE, against
 * the cache in tiles of CPU_VEC_TILE positions: each K tile is transposed to F32 and each V
 * tile converted once for all those heads, then per head and query: scores, online softmax
 * per tile, V sum. A query's result depends only on its position and the cache: tiles start
 * at position 0 whatever the batch holds. */
static void attn_block_large(eng_ctx *c, uint32_t h0, uint32_t n_h, uint32_t t0, uint32_t nq,
                             uint32_t qpos0, const uint16_t *kc, const uint16_t *vc,
                             const uint32_t *pages, float *out_buf, uint32_t out_w, int ith) {
    enum { T = CPU_VEC_TILE };
    const uint32_t hd = c->m->cfg.head_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    const cpu_vec_kernels *ak = c->be->k.ak;
    float *kt = c->th_tile + (uint64_t)ith * c->th_tile_floats;
    float *v32 = kt + (uint64_t)hd * T;
    float *kq = v32 + (uint64_t)hd * T;
    float *M = kq + T, *S = M + (uint64_t)n_h * T; /* [head][query] */
    float *acc = S + (uint64_t)n_h * T;            /* [head][query][hd] */
    for (uint32_t i = 0; i < n_h * T; i++) {
        M[i] = -INFINITY;
        S[i] = 0.0f;
    }
    memset(acc, 0, (size_t)n_h * T * hd * sizeof *acc);
    const uint32_t kv_end = qpos0 + nq; /* keys the last query sees */
    for (uint32_t j0 = 0; j0 < kv_end; j0 += T) {
        const uint32_t cnt = kv_end - j0 < T ? kv_end - j0 : T;
        for (uint32_t j = 0; j < T; j++) {
            float *vrow = v32 + (uint64_t)j * hd;
            if (j >= cnt) {
                memset(vrow, 0, hd * sizeof *vrow);
                for (uint32_t d = 0; d < hd; d++)
                    kt[d * T + j] = 0.0f;
                continue;
            }
            /* K row -> F32 through the V row's slot, then scattered into the transpose */
            const uint64_t row = kv_slot(pages, j0 + j) * c->kv_dim;
            c->be->k.kt->fp16_to_fp32(kc + row, vrow, hd);
            for (uint32_t d = 0; d < hd; d++)
                kt[d * T + j] = vrow[d];
            c->be->k.kt->fp16_to_fp32(vc + row, vrow, hd);
        }
        for (uint32_t hh = 0; hh < n_h; hh++) {
            for (uint32_t q = 0; q < nq; q++) {
                const uint32_t n_kv = qpos0 + q + 1;
                if (n_kv <= j0) continue; /* the whole tile is in this query's future */
                const uint32_t vis = n_kv - j0 < T ? n_kv - j0 : T;
                const float *qv =
                    c->buf[EB_Q] + (uint64_t)(t0 + q) * c->g->buf_width[EB_Q] + (h0 + hh) * hd;
                ak->kq_tile(kt, qv, (int)hd, kq);
                float tmax = -INFINITY;
                for (uint32_t j = 0; j < T; j++) {
                    kq[j] = j < vis ? kq[j] * scale : -INFINITY;
                    tmax = kq[j] > tmax ? kq[j] : tmax;
                }
                const uint32_t sq = hh * T + q;
                const float m_new = fmaxf(M[sq], tmax);
                float *a = acc + (uint64_t)sq * hd;
                if (m_new > M[sq]) {
                    const float ms = expf(M[sq] - m_new);
                    for (uint32_t d = 0; d < hd; d++)
                        a[d] *= ms;
                    S[sq] *= ms;
                }
                M[sq] = m_new;
                S[sq] = (float)((double)S[sq] + ak->softmax_tile(kq, m_new));
                ak->v_accum(a, kq, v32, (int)hd);
            }
        }
    }
    for (uint32_t hh = 0; hh < n_h; hh++)
        for (uint32_t q = 0; q < nq; q++) {
            const uint32_t sq = hh * T + q;
            const float inv = S[sq] == 0.0f ? 0.0f : 1.0f / S[sq];
            float *o = out_buf + (uint64_t)(t0 + q) * out_w + (h0 + hh) * hd;
            for (uint32_t d = 0; d < hd; d++)
                o[d] = acc[(uint64_t)sq * hd + d] * inv;
        }
}

/* One query head over keys [0, n_kv) of a Q8_0 cache (kc, vc: this layer's rows, offset to
 * the KV head's blocks): rows dequantized to F32, online softmax, the V sum in F32 (as
 * llama.cpp's flash attention does with a quantized V cache). */
static void attn_head_q8(eng_ctx *c, const float *q, uint32_t n_kv, const uint8_t *kc,
                         const uint8_t *vc, const uint32_t *pages, float *out, int ith) {
    const uint32_t hd = c->m->cfg.head_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    const quant_traits *qt = quant_traits_of(QT_Q8_0);
    float *kr = c->th_q8 + (uint64_t)ith * hd * 3, *vr = kr + hd, *acc = vr + hd;
    memset(acc, 0, hd * sizeof *acc);
    float S = 0.0f, M = -INFINITY;
    for (uint32_t j = 0; j < n_kv; j++) {
        const uint64_t row = kv_slot(pages, j) * c->kv_row;
        qt->dequant(kc + row, kr, hd);
        /* every product and sum rounded on its own (separate statements: no compiler
         * contracts them into fma), which shaders/attn_q8.comp does too */
        float s = 0.0f;
        for (uint32_t i = 0; i < hd; i++) {
            const float p = kr[i] * q[i];
            s += p;
        }
        s *= scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            ms = expf(M - s);
            M = s;
            for (uint32_t i = 0; i < hd; i++)
                acc[i] *= ms;
        } else {
            vs = expf(s - M);
        }
        qt->dequant(vc + row, vr, hd);
        for (uint32_t i = 0; i < hd; i++) {
            const float p = vs * vr[i];
            acc[i] += p;
        }
        const float sm = S * ms;
        S = sm + vs;
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (uint32_t i = 0; i < hd; i++)
        out[i] = acc[i] * inv;
}

/* Whether an entry's queries take the tiled path. */
static bool seq_tiled(const eng_ctx *c, const eng_seq *s) {
    return s->mode == ENG_ATTN_TILED && c->m->cfg.head_dim % 8 == 0 && !c->kv_q8;
}

/* Attention work items of one entry: a KV head x a tile of queries (tiled: each K/V tile is
 * converted once for all the query heads that read it), else a query token x a head. */
static uint32_t seq_items(const eng_ctx *c, const eng_seq *s) {
    const model_config *cfg = &c->m->cfg;
    if (seq_tiled(c, s)) return (s->n_tokens + CPU_VEC_TILE - 1) / CPU_VEC_TILE * cfg->n_head_kv;
    return s->n_tokens * cfg->n_head;
}

static void op_attention(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const model_config *cfg = &c->m->cfg;
    const uint32_t hd = cfg->head_dim, group = cfg->n_head / cfg->n_head_kv;
    const uint16_t *kc = c->kcache + (uint64_t)op->layer * c->n_slots * c->kv_dim;
    const uint16_t *vc = c->vcache + (uint64_t)op->layer * c->n_slots * c->kv_dim;
    float *out = c->buf[op->dst[0]];
    const uint32_t out_w = c->g->buf_width[op->dst[0]];
    const eng_batch *b = c->b;
    uint32_t lo, hi, e = 0, row0 = 0;
    split(c->item0[b->n_seqs], ith, nth, 1, &lo, &hi);
    for (uint32_t item = lo; item < hi; item++) {
        while (item >= c->item0[e + 1])
            row0 += b->seqs[e++].n_tokens;
        const eng_seq *s = &b->seqs[e];
        const uint32_t k = item - c->item0[e];
        if (seq_tiled(c, s)) {
            const uint32_t kvh = k % cfg->n_head_kv, t0 = k / cfg->n_head_kv * CPU_VEC_TILE;
            const uint32_t nq = s->n_tokens - t0 < CPU_VEC_TILE ? s->n_tokens - t0 : CPU_VEC_TILE;
            attn_block_large(c, kvh * group, group, row0 + t0, nq, s->pos0 + t0, kc + kvh * hd,
                             vc + kvh * hd, s->pages, out, out_w, ith);
            continue;
        }
        const uint32_t t = k / cfg->n_head, h = k % cfg->n_head;
        const uint32_t n_kv = s->pos0 + t + 1, kvh = h / group;
        const float *q = c->buf[EB_Q] + (uint64_t)(row0 + t) * c->g->buf_width[EB_Q] + h * hd;
        if (c->kv_q8) {
            const uint64_t lay = (uint64_t)op->layer * c->n_slots * c->kv_row;
            const uint64_t head = (uint64_t)kvh * (hd / 32) * 34;
            attn_head_q8(c, q, n_kv, (const uint8_t *)c->kcache + lay + head,
                         (const uint8_t *)c->vcache + lay + head, s->pages,
                         out + (uint64_t)(row0 + t) * out_w + h * hd, ith);
            continue;
        }
        attn_head_small(c, q, n_kv, kc + kvh * hd, vc + kvh * hd, s->pages,
                        s->mode == ENG_ATTN_SPLIT && s->n_tokens == 1,
                        out + (uint64_t)(row0 + t) * out_w + h * hd, ith, nth);
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
            op_attention(c, op, ith, nth);
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
        c->item0[e + 1] = c->item0[e] + seq_items(c, s);
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
