/* vkllm_perplexity: a model scored over a text the way llama-perplexity scores it, so the two
 * figures can be compared; and the saved log-probabilities of one model against which another
 * is compared (KL divergence, top-1 agreement).
 *
 * A chunk is evaluated as one sequence: its first half as one entry with no output, then one
 * single-token entry per scored position, each with its logits out. Every token keeps the
 * attention arithmetic of the batch llama-perplexity evaluates it in (the n_batch piece of the
 * chunk that holds it: eng_attn_mode_for), and a backend's per-row results do not depend on
 * how a step is cut into entries, so the logits are those of the whole chunk in one batch. */
#include "api_eval.h"
#include "api_abi.h"
#include "api_internal.h"

#define _FILE_OFFSET_BITS 64
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* Output rows per step, at most: their logits must fit a device buffer (64 MiB leaves room on
 * devices whose buffers end at 128 MiB), and 256 holds a 512-token chunk's in one step. */
#define EVAL_MAX_OUT 256u
#define EVAL_LOGIT_BYTES (64u << 20)

/* ---- the KL base file --------------------------------------------------------------------
 * "VKLLMKL1", u32 n_vocab, u32 n_ctx, u32 n_chunks, u32 0, i32 tokens[n_chunks * n_ctx] (BOS
 * not substituted), then for each scored position of each chunk in order (n_ctx - 1 - n_ctx/2
 * per chunk): f32 lp_min, f32 step, i32 argmax, f32 lp_token, u16 q[n_vocab], where the
 * position's log-probability of token i is lp_min + step * q[i] (log-probabilities under
 * lp_min, which is at most 32 nats under the largest, read as lp_min: their
 * probabilities, e^-32 at most, do not matter) and lp_token is the
 * exact log-probability of the text's next token. Little-endian. */
static const char k_kl_magic[8] = {'V', 'K', 'L', 'L', 'M', 'K', 'L', '1'};
#define KL_ROW_HEAD 16u
#define KL_RANGE 32.0f

static uint64_t kl_row_bytes(uint32_t n_vocab) {
    return KL_ROW_HEAD + 2ull * n_vocab;
}

/* Log-softmax of one row: its maximum, and log(sum(exp(l - max))) summed in double as
 * llama-perplexity does. */
static void row_lse(const float *l, uint32_t n, float *max_out, double *lse_out, int32_t *arg) {
    float mx = l[0];
    int32_t am = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > mx) mx = l[i], am = (int32_t)i;
    double s = 0.0;
    for (uint32_t i = 0; i < n; i++)
        s += expf(l[i] - mx);
    *max_out = mx;
    *lse_out = log(s);
    *arg = am;
}

static void kl_pack_row(const float *l, uint32_t n, int32_t tok, uint8_t *out) {
    float mx;
    double lse;
    int32_t am;
    row_lse(l, n, &mx, &lse, &am);
    float lo = l[0];
    for (uint32_t i = 1; i < n; i++)
        lo = l[i] < lo ? l[i] : lo;
    if (lo < mx - KL_RANGE) lo = mx - KL_RANGE;
    const float step = (mx - lo) / 65535.0f;
    const float head[2] = {(float)((double)lo - mx - lse), step};
    const float lp_tok = (float)((double)l[tok] - mx - lse);
    memcpy(out, head, 8);
    memcpy(out + 8, &am, 4);
    memcpy(out + 12, &lp_tok, 4);
    uint16_t *q = (uint16_t *)(void *)(out + KL_ROW_HEAD);
    for (uint32_t i = 0; i < n; i++) {
        float v = step > 0.0f ? (l[i] - lo) / step : 0.0f;
        q[i] = v <= 0.0f ? 0 : v >= 65535.0f ? 65535 : (uint16_t)lrintf(v);
    }
}

/* KL(base || this) of one position, with base's log-probabilities renormalised after their
 * quantization. lp: this model's log-probabilities. */
static double kl_row(const uint8_t *row, const float *l, float mx, double lse, uint32_t n,
                     float *scratch) {
    float head[2];
    memcpy(head, row, 8);
    const uint16_t *q = (const uint16_t *)(const void *)(row + KL_ROW_HEAD);
    double zb = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        scratch[i] = head[0] + head[1] * (float)q[i];
        zb += exp((double)scratch[i]);
    }
    const double lzb = log(zb);
    double kl = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        const double lb = (double)scratch[i] - lzb;
        const double lt = (double)l[i] - mx - lse;
        kl += exp(lb) * (lb - lt);
    }
    return kl;
}

/* ---- chunked evaluation ------------------------------------------------------------------ */

vkllm_status eval_open(vkllm_model *m, uint32_t n_ctx, uint32_t n_batch, eval_outputs outputs,
                       eval_run *r) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->n_ctx = n_ctx;
    r->n_batch = n_batch < n_ctx ? n_batch : n_ctx;
    r->first = outputs == EVAL_OUT_ALL ? 0 : n_ctx / 2;
    r->end = outputs == EVAL_OUT_SCORED ? n_ctx - 1 : n_ctx;
    r->n_vocab = m->cfg.n_vocab;
    const vkllm_allocator *a = m->rt->alloc;
    uint32_t max_out = 0;
    if (outputs == EVAL_OUT_ALL) {
        max_out = r->n_batch; /* every row of a step, as llama.cpp's tools compute them */
    } else if (outputs == EVAL_OUT_SCORED) {
        const uint64_t fit = EVAL_LOGIT_BYTES / ((uint64_t)r->n_vocab * 4);
        max_out = fit < EVAL_MAX_OUT ? (fit ? (uint32_t)fit : 1u) : EVAL_MAX_OUT;
        if (max_out > r->n_batch) max_out = r->n_batch;
    }
    r->max_out = max_out;
    r->pages = eng_ident_pages(a, n_ctx);
    r->toks = core_calloc(a, n_ctx, sizeof(int32_t));
    r->seqs = core_calloc(a, 1, sizeof(eng_seq));
    r->logits = core_calloc(a, (size_t)(max_out ? max_out : 1) * r->n_vocab, sizeof(float));
    if (!r->pages || !r->toks || !r->seqs || !r->logits) {
        const uint32_t rows = max_out ? max_out : 1;
        const double mib = (double)rows * r->n_vocab * sizeof(float) / (1024.0 * 1024.0);
        eval_close(r);
        return core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY,
                         "evaluation: out of memory for the logits of %u rows (%.1f MiB)", rows,
                         mib);
    }
    eng_backend *be = m->be;
    const eng_ctx_desc cd = {
        .n_ctx = n_ctx, .n_batch = r->n_batch, .n_seqs = 1, .max_out = max_out ? max_out : 1};
    pthread_mutex_lock(&m->rt->be_mu);
    vkllm_status st = be->vt->ctx_create(be, &m->em, &m->graph, &cd, &r->ctx, &m->err);
    pthread_mutex_unlock(&m->rt->be_mu);
    if (st != VKLLM_OK) eval_close(r);
    return st;
}

void eval_close(eval_run *r) {
    if (!r->m) return;
    const vkllm_allocator *a = r->m->rt->alloc;
    if (r->ctx) {
        pthread_mutex_lock(&r->m->rt->be_mu);
        r->m->be->vt->ctx_destroy(r->ctx);
        pthread_mutex_unlock(&r->m->rt->be_mu);
    }
    core_free(a, r->pages);
    core_free(a, r->toks);
    core_free(a, r->seqs);
    core_free(a, r->logits);
    memset(r, 0, sizeof *r);
}

static vkllm_status eval_step(eval_run *r, const int32_t *toks, uint32_t n_tok, uint32_t n_seqs,
                              uint32_t n_out) {
    const eng_batch b = {
        .tokens = toks, .n_tokens = n_tok, .seqs = r->seqs, .n_seqs = n_seqs, .n_out = n_out};
    eng_backend *be = r->m->be;
    pthread_mutex_lock(&r->m->rt->be_mu);
    vkllm_status st = be->vt->run(r->ctx, &b, r->logits, &r->m->err);
    pthread_mutex_unlock(&r->m->rt->be_mu);
    return st;
}

vkllm_status eval_chunk(eval_run *r, const int32_t *chunk, bool bos, eval_rows_fn on_rows,
                        void *user) {
    const uint32_t n_ctx = r->n_ctx, first = r->first;
    memcpy(r->toks, chunk, n_ctx * sizeof(int32_t));
    if (bos) r->toks[0] = tok_bos(r->m->vocab);
    /* the output positions are first .. end - 1, the last rows of their steps */
    const uint32_t end = r->end;
    for (uint32_t b0 = 0; b0 < end; b0 += r->n_batch) {
        const uint32_t b1 = b0 + r->n_batch < end ? b0 + r->n_batch : end;
        /* llama-perplexity's batch holds the piece's tokens up to n_ctx - 1 */
        const uint32_t piece = (b0 + r->n_batch < n_ctx ? b0 + r->n_batch : n_ctx) - b0;
        const uint8_t mode = (uint8_t)eng_attn_mode_for(piece);
        for (uint32_t p = b0; p < b1;) {
            const uint32_t out0 = p > first ? p : first;
            uint32_t q = b1;
            if (r->max_out && q > out0 && q - out0 > r->max_out) q = out0 + r->max_out;
            const uint32_t n_out = r->max_out && q > out0 ? q - out0 : 0;
            r->seqs[0] = (eng_seq){.n_tokens = q - p,
                                   .pos0 = p,
                                   .out = n_out > 0,
                                   .out_rows = (uint16_t)n_out,
                                   .mode = mode,
                                   .pages = r->pages,
                                   .lora = r->n_lora ? r->lora : NULL,
                                   .n_lora = r->n_lora};
            vkllm_status st = eval_step(r, r->toks + p, q - p, 1, n_out);
            if (st != VKLLM_OK) return st;
            if (n_out && on_rows) {
                st = on_rows(user, r->logits, out0, n_out);
                if (st != VKLLM_OK) return st;
            }
            p = q;
        }
    }
    return VKLLM_OK;
}

/* Tokens of a text as llama.cpp's tools tokenize it (special tokens added, not parsed). */
vkllm_status eval_tokenize(vkllm_model *m, const char *text, size_t len, int32_t **out,
                           size_t *n_out) {
    const vkllm_allocator *a = m->rt->alloc;
    const size_t cap = len + 4; /* every token takes a byte, but BOS and EOS */
    int32_t *ids = core_calloc(a, cap, sizeof(int32_t));
    if (!ids) return core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "tokenize: out of memory");
    vkllm_status st = tok_encode(m->vocab, text, len, true, false, ids, cap, n_out, &m->err);
    if (st != VKLLM_OK) {
        core_free(a, ids);
        return st;
    }
    *out = ids;
    return VKLLM_OK;
}

/* ---- perplexity -------------------------------------------------------------------------- */

typedef struct ppl_state {
    eval_run *r;
    const int32_t *chunk; /* the chunk's original tokens */
    double nll, nll2;
    uint64_t count;
    FILE *kl_out;
    const uint8_t *kl_in; /* this chunk's rows in the base file */
    double kl, kl2, base_nll;
    uint64_t same;
    uint8_t *rowbuf;
    float *scratch;
} ppl_state;

static vkllm_status ppl_rows(void *user, const float *logits, uint32_t pos0, uint32_t n) {
    ppl_state *s = user;
    const uint32_t nv = s->r->n_vocab;
    const uint64_t rb = kl_row_bytes(nv);
    for (uint32_t i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * nv;
        const uint32_t pos = pos0 + i;
        const int32_t tok = s->chunk[pos + 1];
        float mx;
        double lse;
        int32_t am;
        row_lse(l, nv, &mx, &lse, &am);
        const double v = lse - ((double)l[tok] - mx);
        s->nll += v;
        s->nll2 += v * v;
        s->count++;
        if (s->kl_out) {
            kl_pack_row(l, nv, tok, s->rowbuf);
            if (fwrite(s->rowbuf, 1, rb, s->kl_out) != rb)
                return core_errf(&s->r->m->err, VKLLM_ERR_IO, "kl-base: write failed");
        }
        if (s->kl_in) {
            const uint8_t *row = s->kl_in + (uint64_t)(pos - s->r->first) * rb;
            const double k = kl_row(row, l, mx, lse, nv, s->scratch);
            int32_t bam;
            float blp;
            memcpy(&bam, row + 8, 4);
            memcpy(&blp, row + 12, 4);
            s->kl += k;
            s->kl2 += k * k;
            s->same += bam == am;
            s->base_nll -= blp;
        }
    }
    return VKLLM_OK;
}

/* Reads n bytes at offset off of f into buf; false on a short read. */
static bool read_at(FILE *f, uint64_t off, void *buf, size_t n) {
    return fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, n, f) == n;
}

/* Opens a KL base file and checks its header and size: *tokens gets its n_chunks * n_ctx
 * tokens. */
static vkllm_status kl_open(vkllm_model *m, const char *path, uint32_t n_ctx, FILE **fo,
                            uint32_t *n_chunks, int32_t **tokens) {
    const vkllm_allocator *a = m->rt->alloc;
    FILE *f = fopen(path, "rb");
    if (!f) return core_errf(&m->err, VKLLM_ERR_IO, "--kl %s: cannot open it", path);
    uint8_t head[24];
    uint32_t h[4];
    vkllm_status st = VKLLM_OK;
    if (!read_at(f, 0, head, sizeof head) || memcmp(head, k_kl_magic, 8) != 0) {
        st =
            core_errf(&m->err, VKLLM_ERR_BAD_FILE,
                      "--kl %s: not a KL base file (vkllm perplexity --kl-base writes them)", path);
        goto fail;
    }
    memcpy(h, head + 8, 16);
    if (h[0] != m->cfg.n_vocab) {
        st = core_errf(&m->err, VKLLM_ERR_BAD_FILE,
                       "--kl %s: saved from a model with %u tokens in its vocabulary, this one "
                       "has %u",
                       path, h[0], m->cfg.n_vocab);
        goto fail;
    }
    if (h[1] != n_ctx) {
        st = core_errf(&m->err, VKLLM_ERR_BAD_FILE,
                       "--kl %s: saved with a context of %u, this run uses %u (give -c %u)", path,
                       h[1], n_ctx, h[1]);
        goto fail;
    }
    const uint64_t rows = (uint64_t)h[2] * (n_ctx - 1 - n_ctx / 2);
    const uint64_t want = 24 + (uint64_t)h[2] * n_ctx * 4 + rows * kl_row_bytes(h[0]);
    off_t size = -1;
    if (fseeko(f, 0, SEEK_END) == 0) size = ftello(f);
    if (h[2] == 0 || h[2] > (1u << 24) || size < 0 || (uint64_t)size != want) {
        st = core_errf(&m->err, VKLLM_ERR_BAD_FILE,
                       "--kl %s: %lld bytes where its header (%u chunks) says %llu: cut off or "
                       "not a KL base file",
                       path, (long long)size, h[2], (unsigned long long)want);
        goto fail;
    }
    int32_t *t = core_calloc(a, (size_t)h[2] * n_ctx, sizeof(int32_t));
    if (!t) {
        st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "--kl: out of memory");
        goto fail;
    }
    if (!read_at(f, 24, t, (size_t)h[2] * n_ctx * 4)) {
        core_free(a, t);
        st = core_errf(&m->err, VKLLM_ERR_IO, "--kl %s: read failed", path);
        goto fail;
    }
    for (size_t i = 0; i < (size_t)h[2] * n_ctx; i++)
        if (t[i] < 0 || (uint32_t)t[i] >= m->cfg.n_vocab) {
            core_free(a, t);
            st = core_errf(&m->err, VKLLM_ERR_BAD_FILE, "--kl %s: token id %d out of range", path,
                           t[i]);
            goto fail;
        }
    *fo = f;
    *n_chunks = h[2];
    *tokens = t;
    return VKLLM_OK;
fail:
    fclose(f);
    return st;
}

vkllm_status vkllm_perplexity(vkllm_model *m, const vkllm_perplexity_desc *user_desc,
                              vkllm_perplexity_result *user_out) {
    if (!m || !user_desc || !user_out) return VKLLM_ERR_INVALID_ARG;
    vkllm_perplexity_desc dl;
    const vkllm_perplexity_desc *d = API_IN(vkllm_perplexity_desc, user_desc, &dl);
    vkllm_perplexity_result res = {0};
    if (m->vocab_only)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "perplexity: the model was loaded vocab-only and has no weights");
    if (d->kl_base_in && d->kl_base_out)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "perplexity: save a KL base or compare against one, not both");
    const uint32_t n_ctx = d->n_ctx ? d->n_ctx : 512;
    if (n_ctx < 4 || n_ctx > (1u << 20) || n_ctx > m->cfg.n_ctx_train * 4u)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "perplexity: context %u outside [4, %u]",
                         n_ctx,
                         m->cfg.n_ctx_train * 4u < (1u << 20) ? m->cfg.n_ctx_train * 4u : 1u << 20);
    const uint32_t n_batch = d->n_batch ? d->n_batch : n_ctx;
    if (n_batch < n_ctx && n_ctx % n_batch)
        return core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                         "perplexity: the batch size (%u) must divide the context (%u)", n_batch,
                         n_ctx);
    const vkllm_allocator *a = m->rt->alloc;
    int32_t *tokens = NULL;
    size_t n_tokens = 0;
    uint32_t n_chunks = 0;
    FILE *kl_in = NULL, *kl_out = NULL;
    char tmp[4200] = "";
    eval_run r = {0};
    ppl_state s = {0};
    uint8_t *rows = NULL;
    vkllm_status st;
    if (d->kl_base_in) {
        st = kl_open(m, d->kl_base_in, n_ctx, &kl_in, &n_chunks, &tokens);
        if (st != VKLLM_OK) return st;
        n_tokens = (size_t)n_chunks * n_ctx;
        if (d->text) { /* the text must be the one the base was scored on */
            int32_t *t2;
            size_t n2;
            st = eval_tokenize(m, d->text, d->text_len, &t2, &n2);
            if (st != VKLLM_OK) goto done;
            const bool same = n2 >= n_tokens && memcmp(t2, tokens, n_tokens * 4) == 0;
            core_free(a, t2);
            if (!same) {
                st = core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                               "perplexity: the text's tokens differ from those the KL base %s "
                               "was saved with (another text, or a model with another "
                               "tokenizer)",
                               d->kl_base_in);
                goto done;
            }
        }
    } else {
        if (!d->text) return core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "perplexity: no text");
        st = eval_tokenize(m, d->text, d->text_len, &tokens, &n_tokens);
        if (st != VKLLM_OK) return st;
        if (n_tokens < 2ull * n_ctx) {
            st = core_errf(&m->err, VKLLM_ERR_INVALID_ARG,
                           "perplexity: the text is %zu tokens; a context of %u needs at "
                           "least %u",
                           n_tokens, n_ctx, 2 * n_ctx);
            goto done;
        }
        n_chunks = (uint32_t)(n_tokens / n_ctx);
    }
    if (d->n_chunks && d->n_chunks < n_chunks) n_chunks = d->n_chunks;
    const uint32_t per_chunk = n_ctx - 1 - n_ctx / 2;
    const uint64_t rb = kl_row_bytes(m->cfg.n_vocab);
    if (d->kl_base_out) {
        int n = snprintf(tmp, sizeof tmp, "%s.tmp", d->kl_base_out);
        if (n < 0 || (size_t)n >= sizeof tmp) {
            st = core_errf(&m->err, VKLLM_ERR_INVALID_ARG, "--kl-base: path too long");
            goto done;
        }
        kl_out = fopen(tmp, "wb");
        if (!kl_out) {
            st = core_errf(&m->err, VKLLM_ERR_IO, "--kl-base %s: cannot create %s", d->kl_base_out,
                           tmp);
            tmp[0] = '\0';
            goto done;
        }
        const uint32_t h[4] = {m->cfg.n_vocab, n_ctx, n_chunks, 0};
        if (fwrite(k_kl_magic, 1, 8, kl_out) != 8 || fwrite(h, 4, 4, kl_out) != 4 ||
            fwrite(tokens, 4, (size_t)n_chunks * n_ctx, kl_out) != (size_t)n_chunks * n_ctx) {
            st = core_errf(&m->err, VKLLM_ERR_IO, "--kl-base %s: write failed", tmp);
            goto done;
        }
        s.rowbuf = core_alloc(a, rb, 16);
        if (!s.rowbuf) {
            st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "perplexity: out of memory");
            goto done;
        }
    }
    if (kl_in) {
        rows = core_alloc(a, (size_t)(per_chunk * rb), 16);
        s.scratch = core_calloc(a, m->cfg.n_vocab, sizeof(float));
        if (!rows || !s.scratch) {
            st = core_errf(&m->err, VKLLM_ERR_OUT_OF_MEMORY, "perplexity: out of memory");
            goto done;
        }
    }
    st = eval_open(m, n_ctx, n_batch, EVAL_OUT_SCORED, &r);
    if (st != VKLLM_OK) goto done;
    if (d->n_lora) {
        uint64_t ids[ENG_LORA_MAX_PER_SEQ];
        st = api_lora_take(m, d->lora, d->n_lora, r.lora, ids, &m->err);
        if (st != VKLLM_OK) goto done;
        r.n_lora = (uint8_t)d->n_lora;
    }
    s.r = &r;
    s.kl_out = kl_out;
    const bool bos = tok_add_bos(m->vocab) && tok_bos(m->vocab) >= 0;
    for (uint32_t c = 0; c < n_chunks; c++) {
        s.chunk = tokens + (size_t)c * n_ctx;
        if (kl_in) {
            const uint64_t off = 24 + (uint64_t)n_tokens * 4 + (uint64_t)c * per_chunk * rb;
            if (!read_at(kl_in, off, rows, (size_t)(per_chunk * rb))) {
                st = core_errf(&m->err, VKLLM_ERR_IO, "--kl %s: read failed", d->kl_base_in);
                goto done;
            }
            s.kl_in = rows;
        }
        st = eval_chunk(&r, s.chunk, bos, ppl_rows, &s);
        if (st != VKLLM_OK) goto done;
        if (d->progress) d->progress(d->progress_user, c + 1, n_chunks);
    }
    const double n = (double)s.count;
    const double mean = s.nll / n;
    res.ppl = exp(mean);
    const double var = s.nll2 / n - mean * mean;
    res.ppl_err = var > 0 && n > 1 ? sqrt(var / (n - 1)) * res.ppl : 0.0;
    res.n_chunks = n_chunks;
    res.n_scored = s.count;
    if (kl_in) {
        res.kl_mean = s.kl / n;
        const double kv = s.kl2 / n - res.kl_mean * res.kl_mean;
        res.kl_err = kv > 0 && n > 1 ? sqrt(kv / (n - 1)) : 0.0;
        res.top1_same = (double)s.same / n;
        res.ppl_base = exp(s.base_nll / n);
    }
    if (kl_out) {
        const bool bad = fclose(kl_out) != 0;
        kl_out = NULL;
        if (bad || rename(tmp, d->kl_base_out) != 0) {
            st = core_errf(&m->err, VKLLM_ERR_IO, "--kl-base %s: cannot write it", d->kl_base_out);
            goto done;
        }
        tmp[0] = '\0';
    }
    API_OUT(vkllm_perplexity_result, user_out, &res);
done:
    for (uint32_t j = 0; j < r.n_lora; j++) /* eval_close clears r */
        api_lora_release(r.lora[j].lora);
    const bool had_lora = r.n_lora > 0;
    eval_close(&r);
    if (had_lora) api_lora_collect(m);
    if (kl_out) fclose(kl_out);
    if (tmp[0]) remove(tmp);
    if (kl_in) fclose(kl_in);
    core_free(a, rows);
    core_free(a, s.rowbuf);
    core_free(a, s.scratch);
    core_free(a, tokens);
    return st;
}
