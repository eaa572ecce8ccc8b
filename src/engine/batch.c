/* Batch checks shared by the backends, and the block table of a lone sequence. */
#include "engine/engine.h"
#include "engine/lora.h"

#include <math.h>

vkllm_status eng_batch_check(const eng_batch *b, const eng_ctx_desc *cd, uint32_t n_vocab,
                             const char *who, core_err *err) {
    if (b->n_tokens == 0 || b->n_tokens > cd->n_batch || b->n_seqs == 0 || !b->seqs ||
        b->n_seqs > (cd->n_seqs ? cd->n_seqs : 1) || !b->tokens)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "%s: batch of %u tokens in %u entries, "
                         "limits %u and %u",
                         who, b->n_tokens, b->n_seqs, cd->n_batch, cd->n_seqs ? cd->n_seqs : 1);
    const uint64_t slots = (uint64_t)cd->n_pages * ENG_PAGE;
    uint32_t rows = 0, outs = 0;
    for (uint32_t i = 0; i < b->n_seqs; i++) {
        const eng_seq *s = &b->seqs[i];
        if (s->n_tokens == 0 || s->mode > ENG_ATTN_TILED || !s->pages)
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: entry %u has %u tokens, mode %u%s",
                             who, i, s->n_tokens, s->mode, s->pages ? "" : ", no block table");
        if (s->feed && s->n_tokens != 1)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "%s: entry %u of %u tokens is fed "
                             "from the step before",
                             who, i, s->n_tokens);
        if ((uint64_t)s->pos0 + s->n_tokens > cd->n_ctx)
            return core_errf(err, VKLLM_ERR_CONTEXT_FULL, "%s: positions %u..%u past context %u",
                             who, s->pos0, s->pos0 + s->n_tokens - 1, cd->n_ctx);
        const uint32_t n_pages = (s->pos0 + s->n_tokens + ENG_PAGE - 1) / ENG_PAGE;
        for (uint32_t p = 0; p < n_pages; p++)
            if ((uint64_t)s->pages[p] * ENG_PAGE >= slots)
                return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: entry %u names page %u of %u",
                                 who, i, s->pages[p], cd->n_pages);
        if (s->n_lora > ENG_LORA_MAX_PER_SEQ || (s->n_lora && !s->lora))
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: entry %u names %u adapters (max %d)",
                             who, i, s->n_lora, ENG_LORA_MAX_PER_SEQ);
        for (uint32_t j = 0; j < s->n_lora; j++)
            if (!s->lora[j].lora || !isfinite(s->lora[j].scale))
                return core_errf(err, VKLLM_ERR_INVALID_ARG,
                                 "%s: entry %u: adapter %u is missing or its scale is not finite",
                                 who, i, j);
        rows += s->n_tokens;
        if (eng_seq_outs(s) > s->n_tokens)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "%s: entry %u wants %u output rows of "
                             "%u tokens",
                             who, i, eng_seq_outs(s), s->n_tokens);
        outs += eng_seq_outs(s);
    }
    if (rows != b->n_tokens || outs != b->n_out)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "%s: entries cover %u tokens and %u "
                         "outputs, the batch says %u and %u",
                         who, rows, outs, b->n_tokens, b->n_out);
    for (uint32_t t = 0; t < b->n_tokens; t++)
        if (b->tokens[t] < 0 || (uint32_t)b->tokens[t] >= n_vocab)
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: token id %d out of range [0, %u)",
                             who, b->tokens[t], n_vocab);
    if (b->top_k > ENG_TOP_K_MAX || (b->top_k && !b->out_ids))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: top_k %u (max %d) needs out_ids", who,
                         b->top_k, ENG_TOP_K_MAX);
    return VKLLM_OK;
}

vkllm_status eng_ban_check(const eng_ctx_desc *cd, uint32_t n_vocab, const char *who,
                           core_err *err) {
    if (cd->n_ban && !cd->ban)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: %u banned ids, no list", who, cd->n_ban);
    for (uint32_t i = 0; i < cd->n_ban; i++)
        if (cd->ban[i] < 0 || (uint32_t)cd->ban[i] >= n_vocab ||
            (i && cd->ban[i] <= cd->ban[i - 1]))
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "%s: banned id %u is %d: the list must be ascending, in [0, %u)", who,
                             i, cd->ban[i], n_vocab);
    return VKLLM_OK;
}

uint32_t *eng_ident_pages(const vkllm_allocator *a, uint32_t n_ctx) {
    const uint32_t n = (n_ctx + ENG_PAGE - 1) / ENG_PAGE;
    uint32_t *p = core_calloc(a, n ? n : 1, sizeof *p);
    for (uint32_t i = 0; p && i < n; i++)
        p[i] = i;
    return p;
}
