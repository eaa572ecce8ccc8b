/* Reference code of vkllm's packed 2:4 sparse formats S24_Q4 and S24_Q8 (layouts and the dot
 * product's arithmetic: the end of quant_blocks.h; docs/sparse.md).
 *
 * quant.c's type table hands out these traits for QT_S24_Q4 / QT_S24_Q8; the helpers below are
 * the pieces the SIMD kernels, the pruning tools and the tests share, so each rule (which 2 of 4
 * are kept, where kept value k sits) is written once. Nothing here allocates or keeps state.
 */
#ifndef VKLLM_CORE_QUANT_S24_H
#define VKLLM_CORE_QUANT_S24_H

#include "core/quant.h"

#include <stdbool.h>
#include <stdint.h>

/* The traits of QT_S24_Q4 / QT_S24_Q8, or NULL for any other id. */
const quant_traits *quant_s24_traits(uint32_t type);

/* True for QT_S24_Q4 and QT_S24_Q8. */
static inline bool quant_is_s24(uint32_t type) {
    return type == QT_S24_Q4 || type == QT_S24_Q8;
}

/* The two columns (0..3, first < second) kept in a group of 4 values: the 2 of largest |x|,
 * ties to the lower column. Returned as the group's position nibble (bits 0-1 the first, bits
 * 2-3 the second). */
uint8_t quant_s24_pick(const float x[4]);

/* Column (0..63 within its block) of kept value k (0..31) of a block with positions pos[8]. */
static inline int quant_s24_col(const uint8_t pos[8], int k) {
    const int g = k >> 1;
    const int nib = (pos[g >> 1] >> (4 * (g & 1))) & 15;
    return 4 * g + ((k & 1) ? (nib >> 2) : (nib & 3));
}

/* Keep 2 of every 4 values of n floats (n a multiple of 4) in place, zeroing the others, by the
 * rule of quant_s24_pick: the dense twin of what the quantizers store. */
void quant_s24_prune(float *x, int64_t n);

/* Quantizes n floats (n a multiple of 64) to S24_Q4 or S24_Q8 keeping the columns marked in
 * keep (n bytes, exactly two nonzero in every group of 4) instead of quant_s24_pick's: a
 * pruner that chose its own mask stores exactly that mask, even where a kept value is 0 or
 * smaller than a pruned one. The kept values quantize as in the plain quantizer. False (and
 * nothing written) for another type or a group that does not keep exactly two. */
bool quant_s24_quant_kept(uint32_t type, const float *x, const uint8_t *keep, void *dst, int64_t n);

#endif
