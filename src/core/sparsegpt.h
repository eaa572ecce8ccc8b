/* SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
 * Pruned in One-Shot", Algorithm 1): prune one weight matrix W (n_out x n_in) given the
 * Hessian H = X^T X of its input over calibration tokens, choosing the mask by the OBS score
 * w^2 / [H^-1]_jj^2 and updating the weights not yet processed so that W X changes least.
 *
 * Pure arithmetic: no model, no files, no threads; memory through the caller's allocator.
 * The calibration (which inputs, which tokens, which order of layers) is src/api_sparsegpt.c's.
 */
#ifndef VKLLM_CORE_SPARSEGPT_H
#define VKLLM_CORE_SPARSEGPT_H

#include "core/common.h"

#include <stdbool.h>
#include <stdint.h>

#define SGPT_DAMP_DEFAULT 0.01f
#define SGPT_BLOCK_DEFAULT 128u

typedef struct sgpt_desc {
    /* N:M: keep `keep_n` of every `group_m` consecutive columns of a row (2:4, 4:8); group_m
     * 0: unstructured, `sparsity` of the matrix's weights removed, chosen per block of columns
     * over all rows (the paper's adaptive mask selection) */
    uint32_t keep_n, group_m;
    double sparsity;
    float damp;         /* lambda: H += lambda * mean(diag H) * I; 0 = SGPT_DAMP_DEFAULT */
    uint32_t blocksize; /* columns per lazy-update block, a multiple of group_m; 0 = 128 */
} sgpt_desc;

/* One input's inverse Hessian as the algorithm reads it, shared by every matrix that reads
 * that input (Q, K and V; gate and up). */
typedef struct sgpt_factor {
    uint32_t n;
    float *u;      /* n x n row-major, upper triangle: U with U^T U = (H + damping)^-1 */
    uint8_t *dead; /* n: 1 where H_ii = 0 (an input that was always 0) */
    uint32_t n_dead;
} sgpt_factor;

/* Adds x^T x for rows [i0, i1) of the upper triangle (columns j >= i) of the n x n Hessian h
 * (row-major, double): n_rows rows of n floats at x, row stride `stride`. Disjoint [i0, i1)
 * may run on several threads at once. Each entry is summed over the rows in order in float,
 * then added to h in double, whatever [i0, i1) is: the result does not depend on the split. */
void sgpt_hessian_add(double *h, uint32_t n, const float *x, uint32_t n_rows, uint32_t stride,
                      uint32_t i0, uint32_t i1);

/* The split point of a balanced share of the triangle: threads given input columns [c0, c1)
 * of w take Hessian rows [sgpt_hessian_split(n, c0, w), sgpt_hessian_split(n, c1, w)), each
 * about the same number of entries (row i has n - i). Monotonic, 0 at 0 and n at w. */
uint32_t sgpt_hessian_split(uint32_t n, uint32_t c, uint32_t w);

/* Factors h (n x n, only the upper triangle j >= i is read; destroyed): dead inputs get
 * H_ii = 1, then H += damp * mean(diag H) * I, then U = the upper Cholesky factor of H^-1, in
 * double (H = R R^T with R upper, U = R^-1, so no explicit inverse is formed). A non-finite
 * H, or one not positive definite after damping, is VKLLM_ERR_INVALID_ARG with a message
 * naming `what` and the column. */
vkllm_status sgpt_factor_make(double *h, uint32_t n, float damp, const char *what,
                              const vkllm_allocator *a, sgpt_factor *f, core_err *err);
void sgpt_factor_free(sgpt_factor *f, const vkllm_allocator *a);

/* Prunes w (n_out x n_in floats, row-major, in place) with the factor of its input. keep (may be
 * NULL) gets n_out * n_in bytes: 1 where the weight is kept, 0 where it was pruned (a kept
 * weight may still end exactly 0: a dead input's, or one the updates brought there).
 * Weights of dead inputs are zeroed first, as in the paper. Errors: shapes and options
 * (VKLLM_ERR_INVALID_ARG), memory. */
vkllm_status sgpt_prune_factored(float *w, uint32_t n_out, uint32_t n_in, const sgpt_factor *f,
                                 const sgpt_desc *d, uint8_t *keep, const vkllm_allocator *a,
                                 core_err *err);

/* Both steps for one matrix: h (n_in x n_in, upper triangle read, not modified). */
vkllm_status sgpt_prune(float *w, uint32_t n_out, uint32_t n_in, const double *h,
                        const sgpt_desc *d, uint8_t *keep, const vkllm_allocator *a, core_err *err);

#endif
