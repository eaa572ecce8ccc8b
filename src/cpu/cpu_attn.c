/* The CPU backend's attention (cpu_backend_int.h): causal grouped-query attention over the
 * paged F16 or Q8_0 cache, in llama.cpp's arithmetic for each batch shape. */
#include "cpu/cpu_backend_int.h"

#include <math.h>
#include <string.h>

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
uint32_t cpu_seq_items(const eng_ctx *c, const eng_seq *s) {
    const model_config *cfg = &c->m->cfg;
    if (seq_tiled(c, s)) return (s->n_tokens + CPU_VEC_TILE - 1) / CPU_VEC_TILE * cfg->n_head_kv;
    return s->n_tokens * cfg->n_head;
}

void cpu_op_attention(eng_ctx *c, const eng_op *op, int ith, int nth) {
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
