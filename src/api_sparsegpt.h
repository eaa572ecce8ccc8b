/* vkllm_prune's sparsegpt method: the calibration (each layer matrix input's Hessian over a
 * text, gathered on the CPU backend layer after layer) and the pruned matrices it yields,
 * already in the output type, for api_prune.c to write. Shared by src/api_prune.c and
 * src/api_sparsegpt.c only. */
#ifndef VKLLM_API_SPARSEGPT_H
#define VKLLM_API_SPARSEGPT_H

#include "api_internal.h"
#include "core/sparsegpt.h"

/* The layer matrices, in this order (eng_layer's wq, wk, wv, wo, w_gate, w_up, w_down). */
#define PRUNE_SGPT_ROLES 7
extern const char *const prune_sgpt_roles[PRUNE_SGPT_ROLES];

typedef struct prune_sgpt_desc {
    const char *model_path;
    const char *text; /* calibration text */
    size_t text_len;
    uint32_t n_ctx;    /* tokens per chunk (0 = 512) */
    uint32_t n_chunks; /* chunks of the text used (0 = PRUNE_SGPT_CHUNKS), at most what it holds */
    int n_threads;     /* CPU threads; 0 = one per core */
    uint32_t out_type; /* the matrices' type in the output file (S24 types: 2:4 masks only) */
    sgpt_desc algo;
    /* every layer's Hessians from the dense model (the inputs a dense model gives), instead of
     * from the model whose earlier layers are already pruned (the paper's order) */
    bool dense_inputs;
    const vkllm_allocator *a;
    void (*progress)(void *user, uint32_t layers_done, uint32_t n_layer);
    void *progress_user;
} prune_sgpt_desc;

#define PRUNE_SGPT_CHUNKS 16u

typedef struct prune_sgpt_matrix {
    void *data; /* nbytes, out_type */
    uint64_t nbytes;
    uint64_t n_weights, n_zero; /* float weights after pruning, and how many of them are 0 */
} prune_sgpt_matrix;

typedef struct prune_sgpt_result {
    uint32_t n_layer;
    prune_sgpt_matrix *m; /* n_layer x PRUNE_SGPT_ROLES */
    uint32_t n_chunks, n_ctx;
    double seconds_passes, seconds_prune; /* the model's passes (with the Hessian sums), the rest */
} prune_sgpt_result;

/* Runs the calibration and prunes every layer matrix of d->model_path. Errors in err, with
 * the prefix "prune: ". */
vkllm_status prune_sgpt_run(const prune_sgpt_desc *d, prune_sgpt_result *r, core_err *err);
void prune_sgpt_result_free(prune_sgpt_result *r, const vkllm_allocator *a);

/* The Hessians of one layer's inputs (QKV's, the output projection's, gate/up's, down's, in
 * that order: X^T X, upper triangle), as the calibration gathers them with every layer before
 * it left dense: for tests, which hold them to those of a full forward pass. h[k] (n[k] x
 * n[k] doubles) is allocated with d->a. */
#define PRUNE_SGPT_INPUTS 4
vkllm_status prune_sgpt_hessians(const prune_sgpt_desc *d, uint32_t layer,
                                 double *h[PRUNE_SGPT_INPUTS], uint32_t n[PRUNE_SGPT_INPUTS],
                                 core_err *err);

#endif
