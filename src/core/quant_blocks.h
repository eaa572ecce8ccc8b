/* Block structs of the quantized formats, bit for bit ggml's (ggml-common.h), so GGUF tensor
 * data can be read in place. The one definition of each layout: quant.c (reference code) and
 * the CPU kernels include this; the shader includes mirror it and a test compares them.
 * Half-precision fields are raw IEEE fp16 bits (core_fp16_to_fp32). Nothing but layouts here.
 */
#ifndef VKLLM_CORE_QUANT_BLOCKS_H
#define VKLLM_CORE_QUANT_BLOCKS_H

#include <stdint.h>
#include <string.h>

#define QUANT_QK 32    /* elements per block of the 32-element formats (Q4_0 ... Q8_1) */
#define QUANT_QK_K 256 /* elements per super-block of the K formats */

/* x = d * (q - 8), q in 0..15; element j in the low nibble of qs[j], j+16 in the high one. */
typedef struct quant_block_q4_0 {
    uint16_t d;
    uint8_t qs[QUANT_QK / 2];
} quant_block_q4_0;

/* x = d * q + m, q in 0..15; nibble order as Q4_0. */
typedef struct quant_block_q4_1 {
    uint16_t d, m;
    uint8_t qs[QUANT_QK / 2];
} quant_block_q4_1;

/* x = d * (q - 16), q in 0..31: low 4 bits as Q4_0, bit 4 of element j is bit j of qh. */
typedef struct quant_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK / 2];
} quant_block_q5_0;

/* x = d * q + m, q in 0..31, bits as Q5_0. */
typedef struct quant_block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK / 2];
} quant_block_q5_1;

/* x = d * q, q in -127..127. */
typedef struct quant_block_q8_0 {
    uint16_t d;
    int8_t qs[QUANT_QK];
} quant_block_q8_0;

/* As Q8_0 plus s = d * sum(qs), rounded to fp16: the activation side of Q4_1/Q5_1, whose
 * min term m * sum(x) becomes m * s without touching the quants. */
typedef struct quant_block_q8_1 {
    uint16_t d, s;
    int8_t qs[QUANT_QK];
} quant_block_q8_1;

/* 16 groups of 16: x = d * (sc & 15) * q - dmin * (sc >> 4), q 2 bits. Within each 128
 * elements, qs[l] holds elements l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7. */
typedef struct quant_block_q2_K {
    uint8_t scales[QUANT_QK_K / 16];
    uint8_t qs[QUANT_QK_K / 4];
    uint16_t d, dmin;
} quant_block_q2_K;

/* 16 groups of 16: x = d * (sc - 32) * (q - (hbit ? 0 : 4)), q 2 bits as Q2_K, the high bit
 * of element 32k + l in bit k of hmask[l]; 6-bit scales packed in 12 bytes. */
typedef struct quant_block_q3_K {
    uint8_t hmask[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} quant_block_q3_K;

/* 8 groups of 32: x = d * sc * q - dmin * m, q 4 bits, 6-bit sc/m packed in 12 bytes. Each 64
 * elements: the first 32 in the low nibbles of 32 bytes, the next 32 in the high ones. */
typedef struct quant_block_q4_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QUANT_QK_K / 2];
} quant_block_q4_K;

/* As Q4_K with a fifth bit: bit k of qh[l] is the high bit of element 32k + l. */
typedef struct quant_block_q5_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 2];
} quant_block_q5_K;

/* 16 groups of 16: x = d * sc * (q - 32), q 6 bits: low 4 in ql, high 2 in qh, int8 sc. */
typedef struct quant_block_q6_K {
    uint8_t ql[QUANT_QK_K / 2];
    uint8_t qh[QUANT_QK_K / 4];
    int8_t scales[QUANT_QK_K / 16];
    uint16_t d;
} quant_block_q6_K;

/* Activation side of the K formats: float scale, and the sum of each 16 quants so a weight
 * format's min term needs no pass over the quants. */
typedef struct quant_block_q8_K {
    float d;
    int8_t qs[QUANT_QK_K];
    int16_t bsums[QUANT_QK_K / 16];
} quant_block_q8_K;

_Static_assert(sizeof(quant_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(quant_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(quant_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(quant_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(quant_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(quant_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(quant_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(quant_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(quant_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(quant_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(quant_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(quant_block_q8_K) == 292, "q8_K layout");

/* The 6-bit scale and min of group j (0..7) of a Q4_K/Q5_K block: groups 0-3 sit in the low 6
 * bits of bytes j and j+4; groups 4-7 keep their low 4 bits in byte j+4 (scale low nibble, min
 * high nibble) and their top 2 bits in the top bits of bytes j-4 and j. */
static inline void quant_k4_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* All 8 scales (out[0..7]) and mins (out[8..15]) of a Q4_K/Q5_K block at once, as 4-byte
 * words: the same bits as quant_k4_scale_min, for SIMD code. */
static inline void quant_k4_scales_mins(const uint8_t *s, uint8_t out[16]) {
    uint32_t u[3], v[4];
    memcpy(u, s, 12);
    v[0] = u[0] & 0x3f3f3f3fu;                                               /* scales 0-3 */
    v[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);        /* scales 4-7 */
    v[2] = u[1] & 0x3f3f3f3fu;                                               /* mins 0-3 */
    v[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4); /* mins 4-7 */
    memcpy(out, v, 16);
}

/* The signed scale (-32..31) of group j (0..15) of a Q3_K block: low 4 bits in the low
 * (j < 8) or high (j >= 8) nibble of byte j % 8, top 2 bits in byte 8 + j % 4 at 2 * (j / 4). */
static inline int quant_k3_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
    int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- vkllm's packed 2:4 sparse formats (not ggml types; docs/sparse.md) ----
 * A row of n columns (n a multiple of 64) is cut into groups of 4 consecutive columns, of
 * which 2 are kept. A block covers 64 columns = 16 groups = 32 kept values:
 *  - pos[8]: group g's two kept positions (0..3 within the group, first < second) are the
 *    nibble of pos[g / 2] (low nibble for even g): bits 0-1 the first, bits 2-3 the second;
 *  - kept value k (0..31) is group k / 2's first (k even) or second (k odd) kept value, at
 *    column 4 * (k / 2) + its position: values 0-15 lie in columns 0-31 of the block, values
 *    16-31 in columns 32-63;
 *  - S24_Q4: x = d * (q - 8), q in 0..15, value k in the low nibble of qs[k] for k < 16 and
 *    the high nibble of qs[k - 16] for k >= 16 (Q4_0's nibble order over the kept values);
 *    S24_Q8: x = d * q, q in -127..127.
 * Activations are quantized to Q8_0 (blocks of 32 columns), so block b of a row meets the
 * activation blocks 2b (values 0-15) and 2b + 1 (values 16-31).
 * The dot product's arithmetic, the same on every backend and kernel set (it is the dense Q4_0
 * AVX2 arithmetic with the zeros skipped): per (row, token) 8 float lanes acc[0..7] = 0; for
 * each block b in order, for each half h = 0, 1 in order: lane l's integer sum is the two
 * products of group 8h + l (weight code times activation code), and
 * acc[l] = fmaf((float)isum_l, d_w * d_x(2b + h), acc[l]) (the scale product rounded to float
 * first); the result is the lanes summed as hsum8 does: ((a0 + a4) + (a2 + a6)) +
 * ((a1 + a5) + (a3 + a7)). */
#define QUANT_S24_COLS 64 /* columns per block */
typedef struct quant_block_s24_q4 {
    uint16_t d;
    uint8_t pos[8];
    uint8_t qs[16];
} quant_block_s24_q4;
typedef struct quant_block_s24_q8 {
    uint16_t d;
    uint8_t pos[8];
    int8_t qs[32];
} quant_block_s24_q8;
_Static_assert(sizeof(quant_block_s24_q4) == 26, "s24_q4 layout");
_Static_assert(sizeof(quant_block_s24_q8) == 42, "s24_q8 layout");

#endif
