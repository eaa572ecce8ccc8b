/* Chunked evaluation of a token stream as llama.cpp's tools do it (perplexity, importance
 * matrix): chunks of n_ctx tokens, each a fresh sequence whose first token is BOS, evaluated
 * in n_batch pieces, the logits of the second half's positions handed to a callback. */
#ifndef VKLLM_API_EVAL_H
#define VKLLM_API_EVAL_H

#include "api_internal.h"

typedef struct eval_run {
    vkllm_model *m;
    eng_ctx *ctx;
    uint32_t n_ctx, n_batch, n_vocab;
    /* positions first .. end - 1 give logits; positions from end on do not run */
    uint32_t first, end;
    uint32_t max_out; /* output rows per step; 0: no outputs (every position just runs) */
    uint32_t *pages;
    int32_t *toks;
    eng_seq *seqs;
    float *logits;
    /* adapters every step uses (held by the caller) */
    eng_lora_use lora[ENG_LORA_MAX_PER_SEQ];
    uint8_t n_lora;
} eval_run;

/* rows of logits (n x n_vocab) for positions pos0 .. pos0 + n - 1 of the chunk */
typedef vkllm_status (*eval_rows_fn)(void *user, const float *logits, uint32_t pos0, uint32_t n);

typedef enum eval_outputs {
    EVAL_OUT_NONE,   /* every position runs, no logits */
    EVAL_OUT_SCORED, /* positions n_ctx / 2 .. n_ctx - 2 give logits (perplexity's) */
    EVAL_OUT_ALL,    /* every position gives logits, a whole step at once */
} eval_outputs;

/* A context for chunks of n_ctx tokens on the model's backend. Errors in m->err. */
vkllm_status eval_open(vkllm_model *m, uint32_t n_ctx, uint32_t n_batch, eval_outputs outputs,
                       eval_run *r);
void eval_close(eval_run *r);
/* Evaluates one chunk (n_ctx tokens, its first replaced by BOS when bos is set). */
vkllm_status eval_chunk(eval_run *r, const int32_t *chunk, bool bos, eval_rows_fn on_rows,
                        void *user);
/* A text's tokens as llama.cpp's tools tokenize it (BOS/EOS added as the vocabulary says,
 * special-token text not parsed); *out allocated with the runtime's allocator. */
vkllm_status eval_tokenize(vkllm_model *m, const char *text, size_t len, int32_t **out,
                           size_t *n_out);

#endif
