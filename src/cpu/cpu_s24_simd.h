/* The packed 2:4 formats' (S24_Q4, S24_Q8) block unpacking for the AVX2 matmul
 * (cpu_s24_avx2.c; cpu_s24_avx512.c builds the same layout for two rows at once): one
 * 64-column weight block and the two Q8_0 activation blocks it meets, brought into one register
 * layout where a 256-bit maddubs gives every integer the spec (quant_blocks.h) asks for.
 *
 * The activations are compressed to the kept columns rather than the weights expanded with
 * zeros: 32 kept products per block instead of 64, and the shuffle indices are made once per
 * weight block and reused by every token of a tile. The layout, per 128-bit lane L (0, 1):
 * word 2g (g = 0..3) holds the two kept values of group 4L + g of the block's first half
 * (activation block 2b), word 2g + 1 those of group 8 + 4L + g (second half, block 2b + 1).
 * maddubs then leaves group sums in int16 words in that order, and madd with (1, 0) / (0, 1)
 * gives each half's 8 int32 lanes in the spec's lane order (lane l = group 8h + l).
 * Include only from files compiled with AVX2.
 */
#ifndef VKLLM_CPU_S24_SIMD_H
#define VKLLM_CPU_S24_SIMD_H

#include "core/quant.h"
#include "core/quant_blocks.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define S24_INLINE static inline __attribute__((always_inline))

/* pshufb indices into an activation block (32 bytes, columns 16L.. in lane L) that gather the
 * kept columns into the layout above; the same indices serve both halves (even words are read
 * from block 2b, odd words from 2b + 1, and the blend picks them). Group g's positions
 * (p0, p1) become the bytes (4g' + p0, 4g' + p1) of its word, g' = g % 4. */
S24_INLINE __m256i s24_gather_idx(const uint8_t pos[8]) {
    uint64_t p;
    memcpy(&p, pos, 8);
    /* each word gets its group's position byte twice: lane 0 groups 0,8,1,9,2,10,3,11 (bytes
     * 0,4,0,4,1,5,1,5), lane 1 groups 4,12,5,13,6,14,7,15 */
    const __m256i rep = _mm256_setr_epi8(0, 0, 4, 4, 0, 0, 4, 4, 1, 1, 5, 5, 1, 1, 5, 5, 2, 2, 6, 6,
                                         2, 2, 6, 6, 3, 3, 7, 7, 3, 3, 7, 7);
    __m256i t = _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)p), rep);
    /* odd groups sit in the high nibble: dwords 1 and 3 of each lane shift down by 4 */
    t = _mm256_srlv_epi32(t, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
    /* low byte: bits 0-1 (p0); high byte: bits 2-3 (p1) */
    const __m256i lo = _mm256_and_si256(t, _mm256_set1_epi16(0x0003));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t, 2), _mm256_set1_epi16(0x0300));
    const __m256i base = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0,
                                          0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
    return _mm256_add_epi8(_mm256_or_si256(lo, hi), base);
}

/* The kept activation codes of one block for the layout above: x0, x1 the 32 codes of
 * activation blocks 2b and 2b + 1. */
S24_INLINE __m256i s24_gather_x(__m256i x0, __m256i x1, __m256i idx) {
    return _mm256_blend_epi16(_mm256_shuffle_epi8(x0, idx), _mm256_shuffle_epi8(x1, idx), 0xAA);
}

/* The signed weight codes of a block in the layout above: word 2g of lane L holds kept values
 * 8L + 2g, 8L + 2g + 1, word 2g + 1 values 16 + 8L + 2g, 16 + 8L + 2g + 1. */
S24_INLINE __m256i s24_wcodes(quant_type T, const uint8_t *blk, float *d) {
    uint16_t h;
    memcpy(&h, blk, 2);
    *d = _cvtsh_ss(h);
    if (T == QT_S24_Q4) {
        const quant_block_s24_q4 *b = (const quant_block_s24_q4 *)blk;
        /* values k < 16 are low nibbles of qs[k], k >= 16 high nibbles of qs[k - 16]: each
         * byte pair of qs twice, then the odd words' copy shifted down a nibble */
        const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b->qs));
        const __m256i pairs =
            _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10,
                             11, 12, 13, 12, 13, 14, 15, 14, 15);
        const __m256i t = _mm256_shuffle_epi8(q, pairs);
        const __m256i nib = _mm256_and_si256(_mm256_blend_epi16(t, _mm256_srli_epi16(t, 4), 0xAA),
                                             _mm256_set1_epi8(15));
        return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
    }
    const quant_block_s24_q8 *b = (const quant_block_s24_q8 *)blk;
    /* [qs 0-7, qs 16-23 | qs 8-15, qs 24-31], then words interleaved */
    const __m256i q = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)b->qs), 0xD8);
    const __m256i words = _mm256_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0,
                                           1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
    return _mm256_shuffle_epi8(q, words);
}

#endif
