/* The step parameter buffer (vk_step_params, src/vk/vk_ops.h): its layout for a context's
 * capacities and the host writer that fills it for one step. Only host memory here: no
 * Vulkan calls, no checks of the batch (eng_batch_check has made them).
 */
#include "vk/vk_ops.h"

#define TOK_WORDS 4 /* id, position, slot, entry */
#define SEQ_WORDS 4 /* pos0, n_tokens, row0, table start */

static uint64_t pages_for(uint32_t max_pos) {
    return ((uint64_t)max_pos + VK_PAGE - 1) / VK_PAGE;
}

uint64_t vk_step_params_bytes(uint32_t max_tokens, uint32_t max_seqs, uint32_t max_pos,
                              uint32_t n_ban) {
    /* outputs and their ban flags: at most one per row */
    const uint64_t words = (uint64_t)TOK_WORDS * max_tokens + (uint64_t)SEQ_WORDS * max_seqs +
                           2ull * max_tokens + n_ban + (uint64_t)max_seqs * pages_for(max_pos);
    return sizeof(vk_step_params) + 4 * words;
}

void vk_step_params_init(vk_step_params *p, uint32_t max_tokens, uint32_t max_seqs,
                         const int32_t *ban, uint32_t n_ban) {
    *p = (vk_step_params){0};
    p->tok_off = 0;
    p->seq_off = TOK_WORDS * max_tokens;
    p->out_off = p->seq_off + SEQ_WORDS * max_seqs;
    p->ban_off = p->out_off + max_tokens;
    p->lst_off = p->ban_off + max_tokens;
    p->n_ban = ban ? n_ban : 0;
    for (uint32_t i = 0; i < p->n_ban; i++)
        p->d[p->lst_off + i] = (uint32_t)ban[i];
    p->tab_off = p->lst_off + p->n_ban;
}

void vk_step_params_write(vk_step_params *p, const int32_t *tokens, const vk_step_seq *seqs,
                          uint32_t n_seqs) {
    uint32_t row = 0, n_out = 0, tab = p->tab_off;
    for (uint32_t e = 0; e < n_seqs; e++) {
        const vk_step_seq *s = &seqs[e];
        const uint32_t n_pages = (uint32_t)pages_for(s->pos0 + s->n_tokens);
        uint32_t *table = p->d + tab;
        for (uint32_t i = 0; i < n_pages; i++)
            table[i] = s->pages ? s->pages[i] : i;
        uint32_t *se = p->d + p->seq_off + SEQ_WORDS * e;
        se[0] = s->pos0;
        se[1] = s->n_tokens;
        se[2] = row;
        se[3] = tab;
        for (uint32_t t = 0; t < s->n_tokens; t++, row++) {
            const uint32_t pos = s->pos0 + t;
            uint32_t *tk = p->d + p->tok_off + TOK_WORDS * row;
            tk[0] = tokens ? (uint32_t)tokens[row] : 0u;
            tk[1] = pos;
            tk[2] = table[pos / VK_PAGE] * VK_PAGE + pos % VK_PAGE;
            tk[3] = e;
        }
        for (uint32_t k = s->n_out; k > 0; k--) {
            p->d[p->ban_off + n_out] = s->ban ? 1u : 0u;
            p->d[p->out_off + n_out++] = row - k;
        }
        tab += n_pages;
    }
    p->n_tokens = row;
    p->n_seqs = n_seqs;
    p->n_out = n_out;
    p->n_table = tab - p->tab_off;
}
