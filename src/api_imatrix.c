/* vkllm_imatrix: the importance matrix of a model over a calibration text, collected as
 * llama-imatrix collects it. The CPU backend shows every matrix product's input (the observe
 * hook); per weight the squares of each input column are summed over the rows in order, in
 * float, and the rows counted: the same arithmetic as llama-imatrix on the same activations,
 * which the CPU path computes with llama.cpp's bits. Products of fewer than 16 rows are left
 * out, as llama-imatrix leaves them out. */
#include "api_abi.h"
#include "api_eval.h"
#include "api_internal.h"
#include "loader/imatrix.h"

#include <math.h>
#include <string.h>

/* llama-imatrix skips products of fewer rows */
#define IM_MIN_ROWS 16

typedef struct im_weight {
    const eng_weight *w;
    float *sums; /* n_in */
    int64_t count;
} im_weight;

typedef struct im_state {
    const eng_graph *g;
    im_weight *ws;
    uint32_t n_ws;
    int32_t (*op_ws)[ENG_MAX_FUSED]; /* per op: its weights' indices in ws, -1 for none */
} im_state;

static void im_observe(void *user, const eng_op *op, const float *x, uint32_t n_rows,
                       uint32_t width, uint32_t col0, uint32_t col1) {
    im_state *s = user;
    if (n_rows < IM_MIN_ROWS) return;
    const int32_t *idx = s->op_ws[op - s->g->ops];
    for (int i = 0; i < op->n_w; i++) {
        if (idx[i] < 0) continue;
        im_weight *w = &s->ws[idx[i]];
        for (uint32_t r = 0; r < n_rows; r++) {
            const float *row = x + (size_t)r * width;
            /* llama-imatrix's acc[j] += x[j] * x[j], a multiply and an add (not fused) */
            for (uint32_t j = col0; j < col1; j++)
                w->sums[j] += row[j] * row[j];
        }
        if (col0 == 0) w->count += n_rows; /* one call per op covers column 0 */
    }
}

static void im_free(im_state *s, const vkllm_allocator *a) {
    for (uint32_t i = 0; s->ws && i < s->n_ws; i++)
        core_free(a, s->ws[i].sums);
    core_free(a, s->ws);
    core_free(a, s->op_ws);
}

/* One entry per distinct weight of the graph's products (a weight used by two ops, as a tied
 * output head is not, would share its entry). */
static vkllm_status im_init(im_state *s, const vkllm_model *m, bool process_output, core_err *err) {
    const vkllm_allocator *a = m->rt->alloc;
    const eng_graph *g = &m->graph;
    s->g = g;
    s->op_ws = core_calloc(a, g->n_ops, sizeof *s->op_ws);
    s->ws = core_calloc(a, (size_t)g->n_ops * ENG_MAX_FUSED, sizeof *s->ws);
    if (!s->op_ws || !s->ws)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "imatrix: out of memory");
    for (uint32_t o = 0; o < g->n_ops; o++) {
        const eng_op *op = &g->ops[o];
        for (int i = 0; i < ENG_MAX_FUSED; i++)
            s->op_ws[o][i] = -1;
        if (op->kind != EOP_MATMUL || (op->last_rows && !process_output)) continue;
        for (int i = 0; i < op->n_w; i++) {
            uint32_t k = 0;
            while (k < s->n_ws && s->ws[k].w != op->w[i])
                k++;
            if (k == s->n_ws) {
                s->ws[k].w = op->w[i];
                s->ws[k].sums = core_calloc(a, op->w[i]->n_in, sizeof(float));
                if (!s->ws[k].sums)
                    return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "imatrix: out of memory");
                s->n_ws++;
            }
            s->op_ws[o][i] = (int32_t)k;
        }
    }
    return VKLLM_OK;
}

vkllm_status vkllm_imatrix(vkllm_model *m, const vkllm_imatrix_desc *user_desc) {
    if (!m || !user_desc) return VKLLM_ERR_INVALID_ARG;
    vkllm_imatrix_desc dl;
    const vkllm_imatrix_desc *d = API_IN(vkllm_imatrix_desc, user_desc, &dl);
    if (m->vocab_only)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "imatrix: the model was loaded vocab-only and has no weights");
    if (!d->text || !d->out_path)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "imatrix: a text and an output path "
                         "are needed");
    eng_backend *be = m->be;
    if (!be->vt->observe)
        return core_errf(&m->err, VKLLM_ERR_UNSUPPORTED,
                         "imatrix: the %s backend cannot show the products' inputs; collect on "
                         "the CPU (device \"cpu\")",
                         be->name);
    const uint32_t n_ctx = d->n_ctx ? d->n_ctx : 512;
    if (n_ctx < IM_MIN_ROWS || n_ctx > (1u << 20))
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "imatrix: context %u outside [%u, %u]",
                         n_ctx, IM_MIN_ROWS, 1u << 20);
    const uint32_t n_batch = d->n_batch ? d->n_batch : n_ctx;
    if (n_batch < n_ctx && n_ctx % n_batch)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "imatrix: the batch size (%u) must divide the context (%u)", n_batch,
                         n_ctx);
    const vkllm_allocator *a = m->rt->alloc;
    int32_t *tokens = NULL;
    size_t n_tokens = 0;
    im_state s = {0};
    eval_run r = {0};
    imatrix_write_entry *we = NULL;
    vkllm_status st = eval_tokenize(m, d->text, d->text_len, &tokens, &n_tokens);
    if (st != VKLLM_OK) return st;
    if (n_tokens < 2ull * n_ctx) {
        st = core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                       "imatrix: the text is %zu tokens; a context of %u needs at least %u",
                       n_tokens, n_ctx, 2 * n_ctx);
        goto done;
    }
    uint32_t n_chunks = (uint32_t)(n_tokens / n_ctx);
    if (d->n_chunks && d->n_chunks < n_chunks) n_chunks = d->n_chunks;
    if ((st = im_init(&s, m, d->process_output && !m->em.tied_output, &m->err)) != VKLLM_OK)
        goto done;
    /* the output head runs on every row when its input is collected, as in llama-imatrix */
    const bool head = d->process_output && !m->em.tied_output;
    if ((st = eval_open(m, n_ctx, n_batch, head ? EVAL_OUT_ALL : EVAL_OUT_NONE, &r)) != VKLLM_OK)
        goto done;
    be->vt->observe(r.ctx, im_observe, &s);
    const bool bos = tok_add_bos(m->vocab) && tok_bos(m->vocab) >= 0;
    for (uint32_t c = 0; c < n_chunks; c++) {
        st = eval_chunk(&r, tokens + (size_t)c * n_ctx, bos, NULL, NULL);
        if (st != VKLLM_OK) goto done;
        if (d->progress) d->progress(d->progress_user, c + 1, n_chunks);
    }
    be->vt->observe(r.ctx, NULL, NULL);
    for (uint32_t i = 0; i < s.n_ws; i++)
        for (uint32_t j = 0; j < s.ws[i].w->n_in; j++)
            if (!isfinite(s.ws[i].sums[j])) {
                st = core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                               "imatrix: non-finite sums for %s: the model's activations "
                               "overflow on this text",
                               s.ws[i].w->name);
                goto done;
            }
    we = core_calloc(a, s.n_ws ? s.n_ws : 1, sizeof *we);
    if (!we) {
        st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "imatrix: out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < s.n_ws; i++)
        we[i] = (imatrix_write_entry){.name = s.ws[i].w->name,
                                      .sums = s.ws[i].sums,
                                      .n_sums = s.ws[i].w->n_in,
                                      .counts = &s.ws[i].count,
                                      .n_counts = 1};
    const char *dataset = d->dataset ? d->dataset : "text";
    const imatrix_write_desc wd = {.entries = we,
                                   .n_entries = s.n_ws,
                                   .datasets = &dataset,
                                   .n_datasets = 1,
                                   .chunk_count = n_chunks,
                                   .chunk_size = n_ctx,
                                   .allocator = a};
    st = imatrix_write(d->out_path, &wd, &m->err);
done:
    if (r.ctx) be->vt->observe(r.ctx, NULL, NULL);
    eval_close(&r);
    im_free(&s, a);
    core_free(a, we);
    core_free(a, tokens);
    return st;
}
