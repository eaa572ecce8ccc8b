/* AVX-512 matmul of the packed 2:4 formats (S24_Q4, S24_Q8): the bits of cpu_s24_avx2.c (and
 * so of the reference in src/core/quant_s24.c) for two weight rows per instruction.
 *
 * Compiled twice, as cpu_matmul_avx512.c is: as itself (AVX-512 F/BW/VL/DQ, integer sums by
 * maddubs + madd) and included by cpu_s24_avx512vnni.c with CPU_AVX512_VNNI set (vpdpbusd).
 * One 512-bit register holds two rows side by side, each 256-bit half in the AVX2 kernel's
 * layout (cpu_s24_simd.h); every instruction used works within 128-bit lanes or lane by lane,
 * so each half sees exactly the AVX2 kernel's integers and float operations, in its order.
 *  - Sign trick: |w| unsigned, w's sign moved onto the activation with a masked negate.
 *  - Without VNNI, maddubs gives each group's two products in an int16 word (exact: at most
 *    2 * 128 * 127), and madd with (1, 0) / (0, 1) picks the first / second half's words.
 *  - With VNNI, vpdpbusd sums 4 byte products per int32 lane; |w| with the other half's words
 *    zeroed leaves exactly a group's two products in each lane.
 * The scale products d_w * d_x are rounded as the AVX2 kernel's (one float multiply each),
 * here for both rows at once.
 */
#include "cpu/cpu_kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__) &&                              \
    (!CPU_AVX512_VNNI || defined(__AVX512VNNI__))

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"
#include "cpu/cpu_s24.h"
#include "cpu/cpu_s24_simd.h"

#include <stddef.h>
#include <string.h>

#define MAX_XBLOCKS 1024 /* as cpu_s24_avx2.c, which longer rows are sent to */
#define PANEL_BYTES (64 * 1024)
#define TT_MAX CPU_MM_TT
#define DECODE_RP 2  /* row pairs per decode tile: 4 rows, as the dense kernels */
#define PREFILL_RP 2 /* row pairs per prefill tile, with TT_MAX tokens: 8 accumulators */
#define PREFETCH_AHEAD 4096

INLINE __m512i pair512(__m256i a, __m256i b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

/* A row pair's unpacked block: the codes (|w| and the sign mask, or with VNNI |w| split by
 * half), the gather indices and the weight scales [d0 x 8 | d1 x 8]. */
typedef struct s24_pair {
    __m512i uw0, uw1; /* without VNNI only uw0 (all of |w|) */
    __m512i idx;
    __mmask64 neg;
    __m512 dw;
} s24_pair;

INLINE void unpack_pair(quant_type T, const uint8_t *b0, const uint8_t *b1, s24_pair *p) {
    float d0, d1;
    const __m512i w = pair512(s24_wcodes(T, b0, &d0), s24_wcodes(T, b1, &d1));
    p->idx = pair512(s24_gather_idx(b0 + offsetof(quant_block_s24_q4, pos)),
                     s24_gather_idx(b1 + offsetof(quant_block_s24_q4, pos)));
    p->neg = _mm512_movepi8_mask(w);
    const __m512i uw = _mm512_abs_epi8(w);
#if CPU_AVX512_VNNI
    p->uw0 = _mm512_maskz_mov_epi16((__mmask32)0x55555555u, uw); /* first half's words */
    p->uw1 = _mm512_maskz_mov_epi16((__mmask32)0xAAAAAAAAu, uw);
#else
    p->uw0 = uw;
    p->uw1 = uw;
#endif
    p->dw = _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

/* The two halves' int32 lane sums of a pair against the gathered, signed activations. */
INLINE void half_sums(const s24_pair *p, __m512i sx, __m512i *i0, __m512i *i1) {
#if CPU_AVX512_VNNI
    *i0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), p->uw0, sx);
    *i1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), p->uw1, sx);
#else
    const __m512i p16 = _mm512_maddubs_epi16(p->uw0, sx);
    *i0 = _mm512_madd_epi16(p16, _mm512_set1_epi32(1));
    *i1 = _mm512_madd_epi16(p16, _mm512_set1_epi32(1 << 16));
#endif
}

typedef struct s24_tile_args {
    const uint8_t *w;
    size_t w_row_bytes;
    int64_t rows; /* rows of the tile: 2 * RP, or fewer at the edge (the last repeated) */
    const uint8_t *x;
    size_t x_row_bytes;
    int64_t nb;
    const float *ds;
    float *y;
    int64_t y_stride;
} s24_tile_args;

INLINE void tile(quant_type T, int RP, int TT, const s24_tile_args *a) {
    const size_t wb = T == QT_S24_Q4 ? sizeof(quant_block_s24_q4) : sizeof(quant_block_s24_q8);
    const size_t xb = sizeof(quant_block_q8_0);
    const int64_t last = a->rows - 1;
    const uint8_t *wr[2 * 4];
    UNROLL
    for (int r = 0; r < 2 * RP; r++)
        wr[r] = a->w + (size_t)(r < last ? r : last) * a->w_row_bytes;
    __m512 acc[4][TT_MAX];
    UNROLL
    for (int p = 0; p < RP; p++) {
        UNROLL
        for (int t = 0; t < TT; t++)
            acc[p][t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < a->nb; b++) {
        if (TT == 1) {
            const uintptr_t pf = (uintptr_t)a->w + PREFETCH_AHEAD + (uintptr_t)(b * 2 * RP * wb);
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
        }
        s24_pair pr[4];
        UNROLL
        for (int p = 0; p < RP; p++)
            unpack_pair(T, wr[2 * p] + b * wb, wr[2 * p + 1] + b * wb, &pr[p]);
        UNROLL
        for (int t = 0; t < TT; t++) {
            const uint8_t *xp =
                a->x + (size_t)t * a->x_row_bytes + 2 * b * xb + offsetof(quant_block_q8_0, qs);
            const __m512i x0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xp));
            const __m512i x1 =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xp + xb)));
            const __m512 dx0 = _mm512_set1_ps(a->ds[2 * b * TT_MAX + t]);
            const __m512 dx1 = _mm512_set1_ps(a->ds[(2 * b + 1) * TT_MAX + t]);
            UNROLL
            for (int p = 0; p < RP; p++) {
                const __m512i g = _mm512_mask_blend_epi16((__mmask32)0xAAAAAAAAu,
                                                          _mm512_shuffle_epi8(x0, pr[p].idx),
                                                          _mm512_shuffle_epi8(x1, pr[p].idx));
                const __m512i sx = _mm512_mask_sub_epi8(g, pr[p].neg, _mm512_setzero_si512(), g);
                __m512i i0, i1;
                half_sums(&pr[p], sx, &i0, &i1);
                acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(pr[p].dw, dx0),
                                            acc[p][t]);
                acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), _mm512_mul_ps(pr[p].dw, dx1),
                                            acc[p][t]);
            }
        }
    }
    UNROLL
    for (int p = 0; p < RP; p++) {
        UNROLL
        for (int t = 0; t < TT; t++) {
            float *y = a->y + t * a->y_stride + 2 * p;
            y[0] = hsum8(_mm512_castps512_ps256(acc[p][t]));
            if (2 * p + 1 <= last) y[1] = hsum8(_mm512_extractf32x8_ps(acc[p][t], 1));
        }
    }
}

INLINE void run_tile(quant_type T, int rp, int tt, const s24_tile_args *a) {
    switch (rp * 8 + tt) {
    case 2 * 8 + 1:
        tile(T, 2, 1, a);
        break;
    case 2 * 8 + 2:
        tile(T, 2, 2, a);
        break;
    case 2 * 8 + 3:
        tile(T, 2, 3, a);
        break;
    case 2 * 8 + 4:
        tile(T, 2, 4, a);
        break;
    case 1 * 8 + 1:
        tile(T, 1, 1, a);
        break;
    case 1 * 8 + 2:
        tile(T, 1, 2, a);
        break;
    case 1 * 8 + 3:
        tile(T, 1, 3, a);
        break;
    default:
        tile(T, 1, 4, a);
        break;
    }
}

/* Rows [r, r1) in tiles of RP pairs, then single pairs, then a lone row. */
INLINE void run_rows(quant_type T, int RP, int tt, int64_t r, int64_t r1, s24_tile_args *ta,
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

INLINE void matmul_s24(quant_type T, const cpu_matmul_args *a) {
    const int64_t nxb = a->n_in / QUANT_QK;
    if (nxb > MAX_XBLOCKS) {
        cpu_avx2_matmul_s24(a);
        return;
    }
    float ds[MAX_XBLOCKS * TT_MAX];
    const uint8_t *w = a->w, *x = a->x;
    s24_tile_args ta = {.w_row_bytes = a->w_row_bytes,
                        .x_row_bytes = a->x_row_bytes,
                        .nb = a->n_in / QUANT_S24_COLS,
                        .ds = ds,
                        .y_stride = a->y_stride};
    if (a->n_tokens == 1) {
        cpu_mm_prep_scales(false, x, a->x_row_bytes, 1, nxb, ds, NULL);
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
            cpu_mm_prep_scales(false, ta.x, a->x_row_bytes, tt, nxb, ds, NULL);
            run_rows(T, PREFILL_RP, tt, p0, p1, &ta, w, a->y + t0 * a->y_stride);
        }
    }
}

static void matmul_s24_q4(const cpu_matmul_args *a) {
    matmul_s24(QT_S24_Q4, a);
}
static void matmul_s24_q8(const cpu_matmul_args *a) {
    matmul_s24(QT_S24_Q8, a);
}

void CPU_AVX512_FN(matmul_s24)(const cpu_matmul_args *a) {
    if (a->w_type == QT_S24_Q4)
        matmul_s24_q4(a);
    else
        matmul_s24_q8(a);
}

#endif /* without these instructions nothing is defined here, and no table calls it */
