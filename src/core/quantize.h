/* Weight quantizers that write the same bytes as llama.cpp's ggml_quantize_chunk (the function
 * llama-quantize calls), with and without importance weights.
 *
 * quant.h's traits give one reference quantizer per type; this is the model-file quantizer,
 * which for the K formats and for every format with an importance matrix searches for the
 * scales (ggml-quants.c's make_q*_quants family), so its output is a pure function of the
 * input row, the type and the weights. No allocation, no state, no printing.
 */
#ifndef VKLLM_CORE_QUANTIZE_H
#define VKLLM_CORE_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

/* Whether quantize_rows handles type: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
 * Q6_K. */
bool quantize_supported(uint32_t type);

/* Quantizes nrows rows of n_per_row floats (n_per_row a multiple of the type's block size) into
 * dst, rows packed back to back. imatrix: n_per_row importance weights shared by every row, or
 * NULL; F32/F16/BF16 and Q8_0 ignore them, as ggml does. False for an unsupported type. Rows are
 * independent: any split of the rows between threads gives the same bytes. */
bool quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                   const float *imatrix);

#endif
