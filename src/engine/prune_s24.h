/* Rewrites a llama-family GGUF with its layer matrices in a packed 2:4 format (S24_Q4 or
 * S24_Q8, docs/sparse.md): what `vkllm prune` and the engine tests build on. Each converted
 * matrix is dequantized row by row and requantized by the reference quantizer of
 * src/core/quant_s24.c, which keeps the 2 of every 4 weights of largest magnitude. The token
 * embedding, the output head, norms and every other tensor are copied as they are, and so is
 * the metadata, less general.file_type (no llama.cpp file type describes these formats), plus
 * the vkllm.sparsity.* keys. Never prints.
 */
#ifndef VKLLM_ENGINE_PRUNE_S24_H
#define VKLLM_ENGINE_PRUNE_S24_H

#include "core/common.h"
#include "core/quant.h"
#include "loader/gguf.h"

#include <stdbool.h>
#include <stdint.h>

/* Metadata a pruned file carries (docs/sparse.md). */
/* Metadata of a pruned file (docs/sparse.md), written by eng_prune_s24 and vkllm_prune. */
#define ENG_SPARSITY_KEY_PATTERN "vkllm.sparsity.pattern" /* "2:4", "4:8", "unstructured", ... */
#define ENG_SPARSITY_KEY_METHOD "vkllm.sparsity.method"   /* "magnitude", "wanda", "sparsegpt" */
#define ENG_SPARSITY_KEY_FORMAT "vkllm.sparsity.format"   /* "packed" (S24) or "dense" */
#define ENG_SPARSITY_KEY_AMOUNT "vkllm.sparsity.amount"   /* f32: the fraction removed */

typedef struct eng_prune_stats {
    uint32_t n_pruned;            /* matrices converted */
    uint64_t bytes_in, bytes_out; /* their data before and after */
} eng_prune_stats;

/* True for a tensor the conversion applies to: blk.N.{attn_q, attn_k, attn_v, attn_output,
 * ffn_gate, ffn_up, ffn_down}.weight, two dimensions, rows a multiple of 64 columns, in a
 * type with a dequantizer. */
bool eng_prune_s24_applies(const gguf_tensor *t);

/* n_rows rows of n_in columns from src (in src_type) to dst (in type, S24_Q4 or S24_Q8);
 * scratch holds n_in floats. */
void eng_prune_s24_rows(uint32_t src_type, const void *src, quant_type type, void *dst,
                        int64_t n_in, int64_t n_rows, float *scratch);

/* Writes src, its layer matrices converted to `type`, to dst_path. stats may be NULL. */
vkllm_status eng_prune_s24(const gguf_file *src, const char *dst_path, quant_type type,
                           const vkllm_allocator *a, eng_prune_stats *stats, core_err *err);

#endif
