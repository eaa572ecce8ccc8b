/* LoRA adapters on the CPU backend (engine/lora.h): each entry's adapters add s * B (A x) to
 * the products of the weights they adapt, on that entry's rows only, so requests on different
 * adapters (or none) share one step and the base product is computed once.
 *
 * The arithmetic is llama.cpp's for the same request alone: A x and B (A x) are F32 or F16
 * matrix products (x, and A x, rounded to F16 for F16 tensors), then scaled, then added to the
 * base product before any residual add. llama.cpp runs those products through tinyBLAS when
 * the request's product has two or more rows (a prompt chunk) and the shapes allow it, else
 * through ggml's dot product (a decode step): the two sum in different orders, so the choice
 * here follows the entry's own row count, which keeps a token's bits independent of the rest
 * of the step. Adapters are read from their file mapping in place.
 */
#include "cpu/cpu_backend_int.h"

#include "engine/lora.h"

#include <string.h>

static uint32_t rows_of(const eng_ctx *c, const eng_op *op) {
    return op->last_rows ? c->b->n_out : c->b->n_tokens;
}

/* The entry of row t of op's input, and how many rows of op that entry has. */
static const eng_seq *row_entry(const eng_ctx *c, const eng_op *op, uint32_t t, uint32_t *n) {
    const uint32_t e = op->last_rows ? c->tok_seq[c->out_row[t]] : c->tok_seq[t];
    const eng_seq *s = &c->b->seqs[e];
    *n = op->last_rows ? eng_seq_outs(s) : s->n_tokens;
    return s;
}

static float dot32(const eng_ctx *c, bool tb, const float *a, const float *b, uint32_t n) {
    return tb ? c->be->k.kt->dot_f32_tb(a, b, n) : c->be->k.kt->dot_f32(a, b, n);
}

static float dot16(const eng_ctx *c, bool tb, const uint16_t *a, const uint16_t *b, uint32_t n) {
    return tb ? c->be->k.kt->dot_f16_tb(a, b, n) : c->be->k.kt->dot_f16(a, b, n);
}

/* tinyBLAS takes a product of k columns and m rows over n >= 2 tokens when k % 8 == 0 and
 * m % 4 == 0 (its 8-lane AVX2 build); anything else goes to ggml's dot product. */
static bool use_tb(uint32_t n_tok, uint32_t k, uint32_t m) {
    return n_tok >= 2 && k % 8 == 0 && m % 4 == 0;
}

vkllm_status cpu_lora_prepare(eng_ctx *c, const eng_batch *b, core_err *err) {
    c->lora_on = false;
    uint32_t stride = 0, max_rank = 0;
    for (uint32_t e = 0; e < b->n_seqs; e++) {
        uint32_t sum = 0;
        for (uint32_t j = 0; j < b->seqs[e].n_lora; j++) {
            const eng_lora *l = b->seqs[e].lora[j].lora;
            sum += l->max_rank;
            if (l->max_rank > max_rank) max_rank = l->max_rank;
        }
        if (sum > stride) stride = sum;
    }
    if (stride == 0) return VKLLM_OK;
    const model_config *cfg = &c->m->cfg;
    uint64_t need = (uint64_t)b->n_tokens * ENG_MAX_FUSED * stride;
    if (need > c->lora_cap) {
        core_free(c->be->alloc, c->lora_u);
        core_free(c->be->alloc, c->lora_u16);
        c->lora_u = core_alloc(c->be->alloc, need * sizeof(float), 64);
        c->lora_u16 = core_alloc(c->be->alloc, need * sizeof(uint16_t), 64);
        c->lora_cap = c->lora_u && c->lora_u16 ? need : 0;
        if (!c->lora_cap)
            return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                             "cpu: out of memory for the adapters' scratch (%.1f MiB)",
                             (double)need * 6 / (1024.0 * 1024.0));
    }
    /* an input row in F16 (the widest product input), or an embedding A row in F32 and F16 */
    uint64_t th = cfg->n_ff;
    if (cfg->n_embd > th) th = cfg->n_embd;
    if ((uint64_t)cfg->n_head * cfg->head_dim > th) th = (uint64_t)cfg->n_head * cfg->head_dim;
    if (3ull * max_rank > th) th = 3ull * max_rank;
    th = (th + 31) & ~31ull;
    if (th > c->th_lora_cap) {
        const uint64_t nth = (uint64_t)cpu_pool_size(c->be->pool);
        core_free(c->be->alloc, c->th_lora);
        c->th_lora = core_alloc(c->be->alloc, th * nth * sizeof(uint16_t), 64);
        c->th_lora_cap = c->th_lora ? th : 0;
        if (!c->th_lora)
            return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                             "cpu: out of memory for the adapters' scratch");
    }
    c->lora_stride = stride;
    c->lora_on = true;
    return VKLLM_OK;
}

void cpu_lora_free(eng_ctx *c) {
    core_free(c->be->alloc, c->lora_u);
    core_free(c->be->alloc, c->lora_u16);
    core_free(c->be->alloc, c->th_lora);
    c->lora_u = NULL;
    c->lora_u16 = NULL;
    c->th_lora = NULL;
    c->lora_cap = c->th_lora_cap = 0;
}

bool cpu_lora_op(const eng_ctx *c, const eng_op *op) {
    if (!c->lora_on || op->kind != EOP_MATMUL) return false;
    for (uint32_t e = 0; e < c->b->n_seqs; e++) {
        const eng_seq *s = &c->b->seqs[e];
        for (uint32_t j = 0; j < s->n_lora; j++)
            for (int i = 0; i < op->n_w; i++)
                if (eng_lora_find(s->lora[j].lora, op->w[i], false)) return true;
    }
    return false;
}

static uint64_t u_index(const eng_ctx *c, uint32_t t, int i, uint32_t off) {
    return ((uint64_t)t * ENG_MAX_FUSED + (uint64_t)i) * c->lora_stride + off;
}

void cpu_lora_down(eng_ctx *c, const eng_op *op, int ith, int nth) {
    const uint32_t n_rows = rows_of(c, op), n_w = op->n_w;
    const uint32_t ws = c->g->buf_width[op->src], n_in = op->w[0]->n_in;
    uint32_t lo, hi;
    split(n_rows * n_w, ith, nth, 1, &lo, &hi);
    uint16_t *x16 = c->th_lora + (uint64_t)ith * c->th_lora_cap;
    int64_t x16_row = -1;
    for (uint32_t item = lo; item < hi; item++) {
        const uint32_t t = item / n_w;
        const int i = (int)(item % n_w);
        uint32_t nr;
        const eng_seq *s = row_entry(c, op, t, &nr);
        const float *x = c->buf[op->src] + (uint64_t)t * ws;
        uint32_t off = 0;
        for (uint32_t j = 0; j < s->n_lora; off += s->lora[j].lora->max_rank, j++) {
            const eng_lora_pair *p = eng_lora_find(s->lora[j].lora, op->w[i], false);
            if (!p) continue;
            float *u = c->lora_u + u_index(c, t, i, off);
            const bool tb = use_tb(nr, n_in, p->rank);
            const uint8_t *a = p->a.data;
            if (p->a.type == QT_F32) {
                for (uint32_t q = 0; q < p->rank; q++)
                    u[q] = dot32(c, tb, (const float *)(a + q * p->a.row_bytes), x, n_in);
            } else {
                if (x16_row != (int64_t)t) {
                    cpu_fp32_to_fp16_row(&c->be->k, x, x16, n_in);
                    x16_row = t;
                }
                for (uint32_t q = 0; q < p->rank; q++)
                    u[q] = dot16(c, tb, (const uint16_t *)(a + q * p->a.row_bytes), x16, n_in);
            }
            if (p->b.type == QT_F16)
                cpu_fp32_to_fp16_row(&c->be->k, u, c->lora_u16 + u_index(c, t, i, off), p->rank);
        }
    }
}

/* y[r] += factor * (B row r . u) for r in [r0, r1): the product rounded before the add, as
 * ggml scales the product before adding it. */
static void add_up(const eng_ctx *c, const eng_lora_pair *p, float factor, bool tb, const float *u,
                   const uint16_t *u16, float *y, uint32_t r0, uint32_t r1) {
    const uint8_t *bm = p->b.data;
    for (uint32_t r = r0; r < r1; r++) {
        const void *row = bm + (uint64_t)r * p->b.row_bytes;
        const float d =
            p->b.type == QT_F32 ? dot32(c, tb, row, u, p->rank) : dot16(c, tb, row, u16, p->rank);
        const float ds = d * factor;
        y[r] += ds;
    }
}

void cpu_lora_up(eng_ctx *c, const eng_op *op, int i, float *y, uint32_t wd, uint32_t r0,
                 uint32_t r1) {
    const uint32_t n_rows = rows_of(c, op);
    for (uint32_t t = 0; t < n_rows; t++) {
        uint32_t nr;
        const eng_seq *s = row_entry(c, op, t, &nr);
        uint32_t off = 0;
        for (uint32_t j = 0; j < s->n_lora; off += s->lora[j].lora->max_rank, j++) {
            const eng_lora *l = s->lora[j].lora;
            const eng_lora_pair *p = eng_lora_find(l, op->w[i], false);
            if (!p) continue;
            const uint64_t ui = u_index(c, t, i, off);
            add_up(c, p, eng_lora_factor(l, p, s->lora[j].scale), use_tb(nr, p->rank, p->b.n_out),
                   c->lora_u + ui, c->lora_u16 + ui, y + (uint64_t)t * wd, r0, r1);
        }
    }
}

void cpu_lora_embed(eng_ctx *c, const eng_op *op, uint32_t t, float *dst, int ith) {
    if (!c->lora_on) return;
    const eng_seq *s = &c->b->seqs[c->tok_seq[t]];
    const int32_t tok = c->b->tokens[t];
    for (uint32_t j = 0; j < s->n_lora; j++) {
        const eng_lora *l = s->lora[j].lora;
        const eng_lora_pair *p = eng_lora_find(l, op->w[0], true);
        if (!p) continue;
        /* the adapter's A row of this token, as F32 (ggml's get_rows), and its F16 copy */
        float *u = (float *)(c->th_lora + (uint64_t)ith * c->th_lora_cap);
        uint16_t *u16 = (uint16_t *)(u + p->rank);
        const uint8_t *row = (const uint8_t *)p->a.data + (uint64_t)tok * p->a.row_bytes;
        if (p->a.type == QT_F32)
            memcpy(u, row, p->rank * sizeof(float));
        else
            c->be->k.kt->fp16_to_fp32((const uint16_t *)row, u, p->rank);
        if (p->b.type == QT_F16) cpu_fp32_to_fp16_row(&c->be->k, u, u16, p->rank);
        add_up(c, p, eng_lora_factor(l, p, s->lora[j].scale),
               use_tb(s->n_tokens, p->rank, p->b.n_out), u, u16, dst, 0, p->b.n_out);
    }
}
