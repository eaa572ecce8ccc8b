/* Importance matrix files, as llama-imatrix writes them and llama-quantize reads them.
 *
 * Two formats:
 *  - GGUF (llama-imatrix's default): keys general.type = "imatrix", imatrix.datasets (array of
 *    strings), imatrix.chunk_count and imatrix.chunk_size (u32); per weight W two F32 tensors,
 *    "W.in_sum2" (the sums of squared activations, ne = [n / n_mat, n_mat]) and "W.counts" (the
 *    activations summed into each of the n_mat rows, ne = [1, n_mat]), in name order.
 *  - the legacy .dat: i32 entry count; per entry i32 name length, the name, i32 ncall, i32 n,
 *    n f32 (already means, times ncall); then optionally i32 chunk count, i32 length, dataset.
 * The reader checks every size and count; a malformed file is VKLLM_ERR_BAD_FILE with a message
 * naming the entry. The writer writes byte for byte the GGUF file llama-imatrix writes for the
 * same sums, counts and metadata. No model semantics here.
 */
#ifndef VKLLM_LOADER_IMATRIX_H
#define VKLLM_LOADER_IMATRIX_H

#include "core/common.h"

typedef struct imatrix_entry {
    char *name;        /* the weight's name, e.g. "blk.0.attn_q.weight" */
    uint64_t n_values; /* n_counts rows of n_values / n_counts sums */
    float *sums;
    uint64_t n_counts; /* one per expert; 1 for a dense weight */
    int64_t *counts;
} imatrix_entry;

typedef struct imatrix {
    vkllm_allocator alloc;
    imatrix_entry *entries; /* sorted by name, names unique */
    uint64_t n_entries;
    char **datasets;
    uint64_t n_datasets;
    uint32_t chunk_count, chunk_size; /* 0 where the file does not say */
    bool legacy;                      /* read from a .dat file */
    bool has_metadata; /* GGUF with imatrix.datasets, chunk_count and chunk_size all present */
} imatrix;

/* Reads either format (GGUF when the file starts with "GGUF"). */
vkllm_status imatrix_load(const char *path, const vkllm_allocator *a, imatrix **out, core_err *err);
void imatrix_free(imatrix *m);
/* The entry of a weight, or NULL. */
const imatrix_entry *imatrix_find(const imatrix *m, const char *name);
/* The n_values importance weights llama-quantize feeds the quantizer for e: each row of sums
 * divided by its count (1 where the count is 0), or for a legacy file the sums divided by
 * ncall (as they are when ncall is 0). */
void imatrix_weights(const imatrix *m, const imatrix_entry *e, float *out);

/* ---- writer ---- */
typedef struct imatrix_write_entry {
    const char *name;
    const float *sums; /* n_sums values: n_counts rows of n_sums / n_counts */
    uint64_t n_sums;
    const int64_t *counts;
    uint64_t n_counts;
} imatrix_write_entry;

typedef struct imatrix_write_desc {
    const imatrix_write_entry *entries; /* any order; written sorted by name */
    uint64_t n_entries;
    const char *const *datasets; /* the text files the sums were collected over */
    uint64_t n_datasets;
    uint32_t chunk_count; /* chunks evaluated */
    uint32_t chunk_size;  /* tokens per chunk (llama-imatrix: n_ctx / n_parallel) */
    const vkllm_allocator *allocator;
} imatrix_write_desc;

/* Writes the GGUF format. Entries with no sums or no counts are left out, as llama-imatrix
 * does; a name too long for a tensor name ("W.in_sum2" must be under 64 bytes), a duplicate
 * name or n_sums not a multiple of n_counts is VKLLM_ERR_INVALID_ARG. */
vkllm_status imatrix_write(const char *path, const imatrix_write_desc *desc, core_err *err);

#endif
