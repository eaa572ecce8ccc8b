/* Block geometry shared by the SIMD matmul files (cpu_matmul*_avx2.c, cpu_matmul*_avx512.c):
 * one definition of which weight formats are affine, how big their blocks and their
 * activation blocks are, and the table of activation block scales a token tile reads.
 * Include only from files compiled with F16C (every SIMD file here is). */
#ifndef VKLLM_CPU_MATMUL_BLOCKS_H
#define VKLLM_CPU_MATMUL_BLOCKS_H

#include "core/quant.h"
#include "core/quant_blocks.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tokens per tile of the 32-element formats' prefill: the scale table's stride. */
#define CPU_MM_TT 4

/* Formats whose codes are unsigned with a min (x = d*q + m); their activations are Q8_1,
 * whose s adds m * s_x per block. The others are signed (x = d*q) against Q8_0. */
static inline bool cpu_mm_affine(quant_type t) { return t == QT_Q4_1 || t == QT_Q5_1; }

static inline size_t cpu_mm_wblock_bytes(quant_type t) {
    switch (t) {
    case QT_Q4_0: return sizeof(quant_block_q4_0);
    case QT_Q4_1: return sizeof(quant_block_q4_1);
    case QT_Q5_0: return sizeof(quant_block_q5_0);
    case QT_Q5_1: return sizeof(quant_block_q5_1);
    default: return sizeof(quant_block_q8_0);
    }
}

static inline size_t cpu_mm_xblock_bytes(quant_type t) {
    return cpu_mm_affine(t) ? sizeof(quant_block_q8_1) : sizeof(quant_block_q8_0);
}

static inline size_t cpu_mm_xqs_offset(quant_type t) {
    return cpu_mm_affine(t) ? offsetof(quant_block_q8_1, qs) : offsetof(quant_block_q8_0, qs);
}

static inline size_t cpu_mm_kblock_bytes(quant_type t) {
    return t == QT_Q4_K ? sizeof(quant_block_q4_K)
         : t == QT_Q5_K ? sizeof(quant_block_q5_K)
                        : sizeof(quant_block_q6_K);
}

/* ds[b*CPU_MM_TT + t] = d of block b of token t (and ss its s, Q8_1 only), for tt tokens
 * from x; zero past tt, so the unused lanes of the min sums stay finite. fp16 -> f32 is
 * exact, so a kernel that reads these floats computes what it would from the halves. */
static inline void cpu_mm_prep_scales(bool aff, const uint8_t *x, size_t xrb, int tt,
                                      int64_t nb, float *ds, float *ss) {
    const size_t xb = aff ? sizeof(quant_block_q8_1) : sizeof(quant_block_q8_0);
    for (int64_t b = 0; b < nb; b++)
        for (int t = 0; t < CPU_MM_TT; t++) {
            const uint16_t *h = t < tt ? (const uint16_t *)(x + (size_t)t * xrb + b * xb) : NULL;
            ds[b * CPU_MM_TT + t] = h ? _cvtsh_ss(h[0]) : 0.0f;
            if (aff) ss[b * CPU_MM_TT + t] = h ? _cvtsh_ss(h[1]) : 0.0f;
        }
}

#endif
