/* AVX2 matmul of the packed 2:4 formats (S24_Q4, S24_Q8) against Q8_0 activations, with the
 * bits of the reference dot product in src/core/quant_s24.c.
 *
 * Per output the spec's arithmetic (quant_blocks.h): 8 float lanes, lane l of half h takes
 * the exact integer sum of group 8h + l's two products, then fma(isum, d_w * d_x, acc_l),
 * half after half, block after block; hsum8 at the end. cpu_s24_simd.h brings a block into a
 * layout where one maddubs gives all 16 group sums of a (row, token) and two madds split them
 * into the halves' lanes; the sign trick (|w| unsigned, w's sign moved onto x) keeps maddubs
 * exact: |w| <= 128, |x| <= 127, so a pair sum stays below 32767.
 *
 * Decode (one token) streams the weights: two rows per step with software prefetch ahead,
 * as the dense kernels do. Prefill reuses each row's unpacked block (codes and gather
 * indices) for a tile of tokens, and walks rows in L2-sized panels.
 */
#include "cpu/cpu_kernels_avx2.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"
#include "cpu/cpu_s24.h"
#include "cpu/cpu_s24_simd.h"

#include <stddef.h>

/* Activation blocks per row the stack scale buffer holds (rows up to 32768 columns); longer
 * rows take the reference path, which gives the same bits. */
#define MAX_XBLOCKS 1024
#define PANEL_BYTES (64 * 1024)
#define TT_MAX CPU_MM_TT
/* Prefill tile: 2 rows x 4 tokens. Each row holds three registers (|w|, w, gather indices)
 * besides the 8 accumulators, which is what 16 ymm registers allow without spills. */
#define PREFILL_RR 2
/* Decode tile: 2 rows. With 4 the three registers per row and the accumulators spill (the
 * dense kernels' 4-row tile holds one register per row). */
#define DECODE_RR 2
#define PREFETCH_AHEAD 4096

typedef struct s24_tile_args {
    const uint8_t *w;
    size_t w_row_bytes;
    const uint8_t *x;
    size_t x_row_bytes;
    int64_t nb;      /* 64-column weight blocks */
    const float *ds; /* ds[xb * TT_MAX + t]: d of activation block xb of token t */
    float *y;
    int64_t y_stride;
} s24_tile_args;

INLINE void tile(quant_type T, int RR, int TT, const s24_tile_args *a) {
    const size_t wb = T == QT_S24_Q4 ? sizeof(quant_block_s24_q4) : sizeof(quant_block_s24_q8);
    const size_t xb = sizeof(quant_block_q8_0);
    const __m256i sel0 = _mm256_set1_epi32(1), sel1 = _mm256_set1_epi32(1 << 16);
    __m256 acc[4][TT_MAX];
    UNROLL
    for (int r = 0; r < RR; r++) {
        UNROLL
        for (int t = 0; t < TT; t++)
            acc[r][t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < a->nb; b++) {
        if (TT == 1) {
            /* uintptr_t: the address may lie past the matrix, which a prefetch tolerates */
            const uintptr_t pf = (uintptr_t)a->w + PREFETCH_AHEAD + (uintptr_t)(b * RR * wb);
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            if (RR * wb > 64) _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
        }
        __m256i w[4], uw[4], idx[4];
        float dw[4];
        UNROLL
        for (int r = 0; r < RR; r++) {
            const uint8_t *blk = a->w + (size_t)r * a->w_row_bytes + b * wb;
            w[r] = s24_wcodes(T, blk, &dw[r]);
            uw[r] = _mm256_sign_epi8(w[r], w[r]);
            idx[r] = s24_gather_idx(blk + offsetof(quant_block_s24_q4, pos));
        }
        UNROLL
        for (int t = 0; t < TT; t++) {
            const uint8_t *xp = a->x + (size_t)t * a->x_row_bytes + 2 * b * xb;
            const __m256i x0 =
                _mm256_loadu_si256((const __m256i *)(xp + offsetof(quant_block_q8_0, qs)));
            const __m256i x1 =
                _mm256_loadu_si256((const __m256i *)(xp + xb + offsetof(quant_block_q8_0, qs)));
            const float dx0 = a->ds[2 * b * TT_MAX + t], dx1 = a->ds[(2 * b + 1) * TT_MAX + t];
            UNROLL
            for (int r = 0; r < RR; r++) {
                const __m256i sx = _mm256_sign_epi8(s24_gather_x(x0, x1, idx[r]), w[r]);
                const __m256i p16 = _mm256_maddubs_epi16(uw[r], sx);
                const __m256 i0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, sel0));
                const __m256 i1 = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, sel1));
                acc[r][t] = _mm256_fmadd_ps(i0, _mm256_set1_ps(dw[r] * dx0), acc[r][t]);
                acc[r][t] = _mm256_fmadd_ps(i1, _mm256_set1_ps(dw[r] * dx1), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < RR; r++) {
        UNROLL
        for (int t = 0; t < TT; t++)
            a->y[t * a->y_stride + r] = hsum8(acc[r][t]);
    }
}

INLINE void run_tile(quant_type T, int rr, int tt, const s24_tile_args *a) {
    switch (rr * 8 + tt) {
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

static void matmul_ref(const cpu_matmul_args *a) {
    const quant_dot_fn dot = quant_traits_of(a->w_type)->vec_dot;
    const uint8_t *w = a->w, *x = a->x;
    for (int64_t t = 0; t < a->n_tokens; t++)
        for (int64_t r = a->r0; r < a->r1; r++)
            a->y[t * a->y_stride + r] =
                dot(a->n_in, w + (size_t)r * a->w_row_bytes, x + (size_t)t * a->x_row_bytes);
}

INLINE void matmul_s24(quant_type T, const cpu_matmul_args *a) {
    const int64_t nxb = a->n_in / QUANT_QK;
    if (nxb > MAX_XBLOCKS) {
        matmul_ref(a);
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
        int64_t r = a->r0;
        for (; r + DECODE_RR <= a->r1; r += DECODE_RR) {
            ta.w = w + (size_t)r * a->w_row_bytes;
            ta.y = a->y + r;
            run_tile(T, DECODE_RR, 1, &ta);
        }
        for (; r < a->r1; r++) {
            ta.w = w + (size_t)r * a->w_row_bytes;
            ta.y = a->y + r;
            run_tile(T, 1, 1, &ta);
        }
        return;
    }
    int64_t panel = (int64_t)(PANEL_BYTES / (a->w_row_bytes ? a->w_row_bytes : 1));
    panel -= panel % PREFILL_RR;
    if (panel < PREFILL_RR) panel = PREFILL_RR;
    for (int64_t p0 = a->r0; p0 < a->r1; p0 += panel) {
        const int64_t p1 = p0 + panel < a->r1 ? p0 + panel : a->r1;
        for (int64_t t0 = 0; t0 < a->n_tokens; t0 += TT_MAX) {
            const int tt = a->n_tokens - t0 < TT_MAX ? (int)(a->n_tokens - t0) : TT_MAX;
            ta.x = x + (size_t)t0 * a->x_row_bytes;
            cpu_mm_prep_scales(false, ta.x, a->x_row_bytes, tt, nxb, ds, NULL);
            int64_t r = p0;
            for (; r + PREFILL_RR <= p1; r += PREFILL_RR) {
                ta.w = w + (size_t)r * a->w_row_bytes;
                ta.y = a->y + t0 * a->y_stride + r;
                run_tile(T, PREFILL_RR, tt, &ta);
            }
            for (; r < p1; r++) {
                ta.w = w + (size_t)r * a->w_row_bytes;
                ta.y = a->y + t0 * a->y_stride + r;
                run_tile(T, 1, tt, &ta);
            }
        }
    }
}

/* One function per format so each gets its own specialised tiles. */
static void matmul_s24_q4(const cpu_matmul_args *a) {
    matmul_s24(QT_S24_Q4, a);
}
static void matmul_s24_q8(const cpu_matmul_args *a) {
    matmul_s24(QT_S24_Q8, a);
}

void cpu_avx2_matmul_s24(const cpu_matmul_args *a) {
    if (a->w_type == QT_S24_Q4)
        matmul_s24_q4(a);
    else
        matmul_s24_q8(a);
}

#endif
