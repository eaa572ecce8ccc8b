/* AVX-512 matmul of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): the same floats as
 * cpu_matmul_avx2.c, bit for bit, from half the instructions.
 *
 * This file is compiled twice: as itself (AVX-512 F/BW/VL/DQ: integer products by
 * maddubs + madd) and, included by cpu_matmul_avx512vnni.c with CPU_AVX512_VNNI set, with
 * VNNI (one vpdpbusd per 32 products). cpu_kernels.c hands out each table only when cpuid
 * says the processor has its instructions.
 *
 * Why the bits cannot change: per output, the AVX2 kernel (llama.cpp's arithmetic) keeps 8
 * float lanes; lane l takes, block after block, fma(d_w * d_x, isum_l, acc_l), where isum_l
 * is the exact integer sum of the products of elements 4l..4l+3; at the end the lanes are
 * added in hsum8 order, plus the fused min chain of Q4_1/Q5_1. Here one 512-bit register
 * holds two outputs side by side: lanes 0-7 are row r0's 8 lanes, lanes 8-15 row r1's, both
 * for the same token and block. Every lane then sees exactly the float operations of the
 * AVX2 lane it stands for, in the same order; only the integer sums are computed
 * differently, and integer sums are exact:
 *  - unsigned codes (Q4_1, Q5_1): products of code and activation byte;
 *  - offset codes (Q4_0, Q5_0: nibble - 8, 5 bits - 16; Q8_0 with VNNI: (q + 128) - 128): the
 *    unsigned code times the activation, less offset * (sum of the 4 activations), taken as
 *    the accumulator the products are added to;
 *  - Q8_0 without VNNI: |q| times the activation with q's sign (maddubs would saturate on
 *    q + 128), as the AVX2 kernel does.
 * maddubs's int16 pair sums cannot saturate on these ranges (31 * 127 * 2 and 128 * 127 * 2
 * are below 32767), so the two builds give the same integers as AVX2's madd chain.
 *
 * Register layout of a row pair's codes for one block: [r0 elements 0-31 | r1 elements 0-31],
 * so the activation block is a plain broadcast of its 32 bytes into both halves. Tiles are
 * RP row pairs x TT tokens; rows are walked in L2-sized panels for prefill, as in AVX2.
 */
#include "cpu/cpu_kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__) &&         \
    (!CPU_AVX512_VNNI || defined(__AVX512VNNI__))

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"
#include "cpu/cpu_s24.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Blocks per row the stack scale buffers hold; longer rows go to the AVX2 table, which
 * sends them to the reference path (the same bits as before). */
#define MAX_BLOCKS 1024
#define PANEL_BYTES (64 * 1024)
#define TT_MAX CPU_MM_TT
/* Prefill tile: PREFILL_RP row pairs x TT_MAX tokens, 16 accumulators (measured on a 2-core
 * Sapphire Rapids VM: 3-5% ahead of 3 pairs). */
#define PREFILL_RP 4
/* Decode tile: DECODE_RP row pairs (4 rows, as AVX2) share each activation block (4 pairs
 * measured slower: synthetic 1B decode 27.7 against 31.4 tok/s in Q4_0, 23.8 against 29.0 in
 * Q4_1, 2 threads). */
#define DECODE_RP 2
#define PREFETCH_AHEAD 4096

/* What the codes are offset by (0: used as they are). Q8_0 without VNNI takes the sign
 * trick instead (offset 0, sign_trick true). */
INLINE int code_offset(quant_type t) {
    switch (t) {
    case QT_Q4_0: return 8;
    case QT_Q5_0: return 16;
    case QT_Q8_0: return CPU_AVX512_VNNI ? 128 : 0;
    default: return 0;
    }
}
INLINE bool sign_trick(quant_type t) { return t == QT_Q8_0 && !CPU_AVX512_VNNI; }

/* acc + the sums of 4 products of unsigned u and signed s bytes, per int32 lane. */
INLINE __m512i dot4(__m512i acc, __m512i u, __m512i s) {
#if CPU_AVX512_VNNI
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    const __m512i p16 = _mm512_maddubs_epi16(u, s);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
#endif
}

/* 16 bytes of nibble pairs of each row -> [r0: 16 low, 16 high nibbles | r1: the same]. */
INLINE __m512i nibbles_pair(const uint8_t *q0, const uint8_t *q1) {
    const __m256i t = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)q0)),
        _mm_loadu_si128((const __m128i *)q1), 1);
    /* [q0, q0, q1, q1] as 128-bit parts, the second copy of each shifted down a nibble */
    const __m512i d = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
                                               _mm512_castsi256_si512(t));
    const __m512i s = _mm512_srlv_epi64(d, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(s, _mm512_set1_epi8(15));
}

/* [d0, 0, d1, 0] from two halves: one 64-bit move, as the affine formats' [d0, m0, d1, m1] */
INLINE __m128 d_pair(uint16_t d0, uint16_t d1) {
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)d0 | (uint64_t)d1 << 32)));
}

/* Codes of block b of rows p0 and p1 as unsigned bytes (offset or |q|, see above), and the
 * pair's scales as [d0, m0, d1, m1] (m only for affine formats). *sgn: for the sign trick,
 * the lanes whose code is negative. */
INLINE __m512i wcodes_pair(quant_type T, const uint8_t *p0, const uint8_t *p1, __m128 *dm,
                           __mmask64 *sgn) {
    switch (T) {
    case QT_Q4_0: {
        const quant_block_q4_0 *a = (const quant_block_q4_0 *)p0, *b = (const quant_block_q4_0 *)p1;
        *dm = d_pair(a->d, b->d);
        return nibbles_pair(a->qs, b->qs);
    }
    case QT_Q4_1: {
        const quant_block_q4_1 *a = (const quant_block_q4_1 *)p0, *b = (const quant_block_q4_1 *)p1;
        uint32_t u0, u1;
        memcpy(&u0, &a->d, 4); /* d and m sit next to each other */
        memcpy(&u1, &b->d, 4);
        *dm = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)u0 | (uint64_t)u1 << 32)));
        return nibbles_pair(a->qs, b->qs);
    }
    case QT_Q5_0:
    case QT_Q5_1: {
        const bool aff = T == QT_Q5_1;
        const uint8_t *qh0, *qh1;
        __m512i v;
        if (aff) {
            const quant_block_q5_1 *a = (const quant_block_q5_1 *)p0, *b = (const quant_block_q5_1 *)p1;
            uint32_t u0, u1;
            memcpy(&u0, &a->d, 4);
            memcpy(&u1, &b->d, 4);
            *dm = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)u0 | (uint64_t)u1 << 32)));
            v = nibbles_pair(a->qs, b->qs);
            qh0 = a->qh;
            qh1 = b->qh;
        } else {
            const quant_block_q5_0 *a = (const quant_block_q5_0 *)p0, *b = (const quant_block_q5_0 *)p1;
            *dm = d_pair(a->d, b->d);
            v = nibbles_pair(a->qs, b->qs);
            qh0 = a->qh;
            qh1 = b->qh;
        }
        /* bit j of qh is the fifth bit of element j: one mask bit per byte lane */
        uint32_t h0, h1;
        memcpy(&h0, qh0, 4);
        memcpy(&h1, qh1, 4);
        const __mmask64 hi = (__mmask64)h0 | (__mmask64)h1 << 32;
        return _mm512_or_si512(v, _mm512_maskz_mov_epi8(hi, _mm512_set1_epi8(16)));
    }
    default: {
        const quant_block_q8_0 *a = (const quant_block_q8_0 *)p0, *b = (const quant_block_q8_0 *)p1;
        *dm = d_pair(a->d, b->d);
        const __m512i q = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a->qs)),
            _mm256_loadu_si256((const __m256i *)b->qs), 1);
        if (CPU_AVX512_VNNI) return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80)); /* q + 128 */
        *sgn = _mm512_movepi8_mask(q);
        return _mm512_abs_epi8(q);
    }
    }
}

typedef struct tile_args {
    const uint8_t *w; /* first row of the tile */
    size_t w_row_bytes;
    int64_t rows;     /* rows of the tile (2 * RP, or 1 for a lone last row) */
    const uint8_t *x; /* first token of the tile */
    size_t x_row_bytes;
    int64_t nb;
    const float *ds, *ss;
    float *y; /* y[t * y_stride + r], first row and token of the tile */
    int64_t y_stride;
} tile_args;

/* RP row pairs x TT tokens over all blocks; T, RP, TT are constants at every call site. A
 * tile of one row (a->rows == 1) runs that row in both halves and stores one. */
INLINE void tile(quant_type T, int RP, int TT, const tile_args *a) {
    const bool aff = cpu_mm_affine(T), sgn_trick = sign_trick(T);
    const int off = code_offset(T);
    const size_t wb = cpu_mm_wblock_bytes(T), xb = cpu_mm_xblock_bytes(T), xq = cpu_mm_xqs_offset(T);
    const int64_t last = a->rows - 1;
    const uint8_t *wr[2 * 4];
    UNROLL
    for (int r = 0; r < 2 * RP; r++) wr[r] = a->w + (size_t)(r < last ? r : last) * a->w_row_bytes;
    __m512 acc[4][TT_MAX];
    __m256 msum[4]; /* affine: [r0 tokens 0-3 | r1 tokens 0-3], ggml's fused min chain */
    UNROLL
    for (int p = 0; p < RP; p++) {
        msum[p] = _mm256_setzero_ps();
        UNROLL
        for (int t = 0; t < TT; t++) acc[p][t] = _mm512_setzero_ps();
    }
    /* lanes 0-7 <- element 0 of a 128-bit scale vector, lanes 8-15 <- element 2 */
    const __m512i pick_d = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m256i pick_m = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3);
    for (int64_t b = 0; b < a->nb; b++) {
        if (TT == 1) {
            /* decode streams the weights: ask for what the next tiles need, as AVX2 does */
            const uintptr_t pf = (uintptr_t)a->w + PREFETCH_AHEAD + (uintptr_t)(b * 2 * RP * wb);
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
            if (2 * RP * wb > 128) _mm_prefetch((const char *)(pf + 128), _MM_HINT_T0);
        }
        __m512i q[4];
        __m512 dw[4];
        __mmask64 neg[4];
        UNROLL
        for (int p = 0; p < RP; p++) {
            __m128 dm;
            neg[p] = 0;
            q[p] = wcodes_pair(T, wr[2 * p] + b * wb, wr[2 * p + 1] + b * wb, &dm, &neg[p]);
            dw[p] = _mm512_permutexvar_ps(pick_d, _mm512_castps128_ps512(dm));
            if (aff) {
                const __m256 m = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), pick_m);
                const __m256 s4 = _mm256_broadcast_ps((const __m128 *)(a->ss + b * TT_MAX));
                msum[p] = _mm256_fmadd_ps(m, s4, msum[p]);
            }
        }
        UNROLL
        for (int t = 0; t < TT; t++) {
            const uint8_t *xp = a->x + (size_t)t * a->x_row_bytes + b * xb + xq;
            const __m512i xv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xp));
            /* the offset's share, subtracted by starting the integer sums at it */
            __m512i base = _mm512_setzero_si512();
            if (off)
                base = _mm512_sub_epi32(base, dot4(_mm512_setzero_si512(), _mm512_set1_epi8((char)off), xv));
            const __m512 dx = _mm512_set1_ps(a->ds[b * TT_MAX + t]);
            UNROLL
            for (int p = 0; p < RP; p++) {
                const __m512i sx = sgn_trick ? _mm512_mask_sub_epi8(xv, neg[p], _mm512_setzero_si512(), xv) : xv;
                const __m512 prod = _mm512_cvtepi32_ps(dot4(base, q[p], sx));
                acc[p][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], dx), prod, acc[p][t]);
            }
        }
    }
    UNROLL
    for (int p = 0; p < RP; p++) {
        float ms[8];
        _mm256_storeu_ps(ms, msum[p]);
        UNROLL
        for (int t = 0; t < TT; t++) {
            const __m512 v = acc[p][t];
            float *y = a->y + t * a->y_stride + 2 * p;
            float v0 = hsum8(_mm512_castps512_ps256(v)); /* row r0's 8 lanes, then r1's */
            if (aff) v0 += ms[t];
            y[0] = v0;
            if (2 * p + 1 <= last) {
                float v1 = hsum8(_mm512_extractf32x8_ps(v, 1));
                if (aff) v1 += ms[4 + t];
                y[1] = v1;
            }
        }
    }
}

/* The tile shapes the drivers use: 2 pairs x 1 token (decode), 4 pairs x 1-4 tokens (prefill)
 * and their edges (one pair, or one row, with any token count). */
INLINE void run_tile(quant_type T, int rp, int tt, const tile_args *a) {
    switch (rp * 8 + tt) {
    case 2 * 8 + 1: tile(T, 2, 1, a); break;
    case 4 * 8 + 1: tile(T, 4, 1, a); break;
    case 4 * 8 + 2: tile(T, 4, 2, a); break;
    case 4 * 8 + 3: tile(T, 4, 3, a); break;
    case 4 * 8 + 4: tile(T, 4, 4, a); break;
    case 1 * 8 + 1: tile(T, 1, 1, a); break;
    case 1 * 8 + 2: tile(T, 1, 2, a); break;
    case 1 * 8 + 3: tile(T, 1, 3, a); break;
    default: tile(T, 1, 4, a); break;
    }
}

/* Rows [r, r1) of the panel in tiles of RP pairs, then single pairs, then a lone row. */
INLINE void run_rows(quant_type T, int RP, int tt, int64_t r, int64_t r1, tile_args *ta,
                     const uint8_t *w, float *y) {
    for (; r + 2 * RP <= r1; r += 2 * RP) {
        ta->w = w + (size_t)r * ta->w_row_bytes;
        ta->y = y + r;
        ta->rows = 2 * RP;
        run_tile(T, RP, tt, ta);
    }
    for (; r < r1; r += 2) {
        ta->w = w + (size_t)r * ta->w_row_bytes;
        ta->y = y + r;
        ta->rows = r + 1 < r1 ? 2 : 1;
        run_tile(T, 1, tt, ta);
    }
}

INLINE void matmul_q32(quant_type T, const cpu_matmul_args *a) {
    const int64_t nb = a->n_in / QUANT_QK;
    if (nb > MAX_BLOCKS) {
        cpu_avx2_matmul(a);
        return;
    }
    float ds[MAX_BLOCKS * TT_MAX], ss[MAX_BLOCKS * TT_MAX];
    const uint8_t *w = a->w, *x = a->x;
    tile_args ta = {.w_row_bytes = a->w_row_bytes, .x_row_bytes = a->x_row_bytes, .nb = nb,
                    .ds = ds, .ss = ss, .y_stride = a->y_stride};
    if (a->n_tokens == 1) {
        cpu_mm_prep_scales(cpu_mm_affine(T), x, a->x_row_bytes, 1, nb, ds, ss);
        ta.x = x;
        run_rows(T, DECODE_RP, 1, a->r0, a->r1, &ta, w, a->y);
        return;
    }
    int64_t panel = (int64_t)(PANEL_BYTES / (a->w_row_bytes ? a->w_row_bytes : 1));
    panel -= panel % (2 * PREFILL_RP);
    if (panel < 2 * PREFILL_RP) panel = 2 * PREFILL_RP;
    for (int64_t p0 = a->r0; p0 < a->r1; p0 += panel) {
        const int64_t p1 = p0 + panel < a->r1 ? p0 + panel : a->r1;
        for (int64_t t0 = 0; t0 < a->n_tokens; t0 += TT_MAX) {
            const int tt = a->n_tokens - t0 < TT_MAX ? (int)(a->n_tokens - t0) : TT_MAX;
            ta.x = x + (size_t)t0 * a->x_row_bytes;
            cpu_mm_prep_scales(cpu_mm_affine(T), ta.x, a->x_row_bytes, tt, nb, ds, ss);
            run_rows(T, PREFILL_RP, tt, p0, p1, &ta, w, a->y + t0 * a->y_stride);
        }
    }
}

static void matmul_q4_0(const cpu_matmul_args *a) { matmul_q32(QT_Q4_0, a); }
static void matmul_q4_1(const cpu_matmul_args *a) { matmul_q32(QT_Q4_1, a); }
static void matmul_q5_0(const cpu_matmul_args *a) { matmul_q32(QT_Q5_0, a); }
static void matmul_q5_1(const cpu_matmul_args *a) { matmul_q32(QT_Q5_1, a); }
static void matmul_q8_0(const cpu_matmul_args *a) { matmul_q32(QT_Q8_0, a); }

void CPU_AVX512_FN(matmul)(const cpu_matmul_args *a) {
    switch (a->w_type) {
    case QT_Q4_0: matmul_q4_0(a); break;
    case QT_Q4_1: matmul_q4_1(a); break;
    case QT_Q5_0: matmul_q5_0(a); break;
    case QT_Q5_1: matmul_q5_1(a); break;
    case QT_Q8_0: matmul_q8_0(a); break;
    case QT_Q4_K:
    case QT_Q5_K:
    case QT_Q6_K: cpu_avx512_matmul_k(a); break;
    case QT_S24_Q4:
    case QT_S24_Q8: CPU_AVX512_FN(matmul_s24)(a); break;
    default: cpu_avx2_matmul(a); break; /* floats and the rest: AVX2's, the same bits */
    }
}

#endif /* without these instructions (another architecture) nothing is defined here, and
        * cpu_kernels_avx512.c hands out no table that would call it */
