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
 *
 * S24_Q4 weights in quads (cpu_s24.h) unpack in fewer instructions: the codes are nibbles in
 * the register order, and a pair's positions give a row's gather indices with one shift
 * (vpsrlvd: each dword's two words shift alike) and a mask. A quad's two row pairs run one
 * after the other, the second from cache.
 */
#include "cpu/cpu_kernels_avx2.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"
#include "cpu/cpu_s24.h"
#include "cpu/cpu_s24_simd.h"

#include <stddef.h>
#include <string.h>

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
    int64_t nb;         /* 64-column weight blocks */
    int pair;           /* quads: the quad's row pair (0, 1) the tile runs */
    int row_lo, row_hi; /* quads: the tile's rows (0, 1) in [row_lo, row_hi) are written */
    const float *ds;    /* ds[xb * TT_MAX + t]: d of activation block xb of token t */
    float *y;
    int64_t y_stride;
} s24_tile_args;

/* Row `half` (0, 1) of row pair `pair` of a quad block sb: its codes, gather indices and
 * scale, as s24_wcodes and s24_gather_idx make them from the file layout. */
INLINE __m256i quad_row(const uint8_t *sb, int pair, int half, __m256i *idx, float *dw) {
    const __m256i src =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(sb + 8 + 16 * pair)));
    /* the row's words sit at 512-bit words 16 half + 0..15: shifts 4 half, 4 half + 2 */
    const __m256i sh = _mm256_setr_epi32(4 * half, 4 * half, 4 * half, 4 * half, 4 * half + 2,
                                         4 * half + 2, 4 * half + 2, 4 * half + 2);
    const __m256i base = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0,
                                          0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
    *idx = _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi32(src, sh), _mm256_set1_epi8(3)), base);
    uint16_t h;
    memcpy(&h, sb + 2 * (2 * pair + half), 2);
    *dw = _cvtsh_ss(h);
    __m256i v = _mm256_loadu_si256((const __m256i *)(sb + 40 + 32 * half));
    if (pair) v = _mm256_srli_epi16(v, 4);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

/* Q: the weights are quads (RR 2: row pair a->pair of the quad at a->w); else the file
 * layout. */
INLINE void tile(quant_type T, bool Q, int RR, int TT, const s24_tile_args *a) {
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
            const size_t step = Q ? CPU_S24_QUAD_BYTES : RR * wb;
            const uintptr_t pf = (uintptr_t)a->w + PREFETCH_AHEAD + (uintptr_t)(b * step);
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            if (step > 64) _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
        }
        __m256i w[4], uw[4], idx[4];
        float dw[4];
        UNROLL
        for (int r = 0; r < RR; r++) {
            if (Q) {
                w[r] = quad_row(a->w + b * CPU_S24_QUAD_BYTES, a->pair, r, &idx[r], &dw[r]);
            } else {
                const uint8_t *blk = a->w + (size_t)r * a->w_row_bytes + b * wb;
                w[r] = s24_wcodes(T, blk, &dw[r]);
                idx[r] = s24_gather_idx(blk + offsetof(quant_block_s24_q4, pos));
            }
            uw[r] = _mm256_sign_epi8(w[r], w[r]);
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
            if (!Q || (r >= a->row_lo && r < a->row_hi))
                a->y[t * a->y_stride + r] = hsum8(acc[r][t]);
    }
}

INLINE void run_tile(quant_type T, int rr, int tt, const s24_tile_args *a) {
    switch (rr * 8 + tt) {
    case 2 * 8 + 1:
        tile(T, false, 2, 1, a);
        break;
    case 2 * 8 + 2:
        tile(T, false, 2, 2, a);
        break;
    case 2 * 8 + 3:
        tile(T, false, 2, 3, a);
        break;
    case 2 * 8 + 4:
        tile(T, false, 2, 4, a);
        break;
    case 1 * 8 + 1:
        tile(T, false, 1, 1, a);
        break;
    case 1 * 8 + 2:
        tile(T, false, 1, 2, a);
        break;
    case 1 * 8 + 3:
        tile(T, false, 1, 3, a);
        break;
    default:
        tile(T, false, 1, 4, a);
        break;
    }
}

/* Rows [r, r1) of S24_Q4 quads (w the matrix's first quad), tt tokens: each row pair they
 * touch, writing only its rows in the range. */
static void run_quads(int tt, int64_t r, int64_t r1, s24_tile_args *ta, const uint8_t *w,
                      float *y) {
    for (int64_t p = r / 2; 2 * p < r1; p++) {
        ta->w = w + (size_t)(p / 2 * ta->nb) * CPU_S24_QUAD_BYTES;
        ta->pair = (int)(p % 2);
        ta->y = y + 2 * p;
        ta->row_lo = r > 2 * p ? (int)(r - 2 * p) : 0;
        ta->row_hi = r1 - 2 * p < 2 ? (int)(r1 - 2 * p) : 2;
        switch (tt) {
        case 1:
            tile(QT_S24_Q4, true, 2, 1, ta);
            break;
        case 2:
            tile(QT_S24_Q4, true, 2, 2, ta);
            break;
        case 3:
            tile(QT_S24_Q4, true, 2, 3, ta);
            break;
        default:
            tile(QT_S24_Q4, true, 2, 4, ta);
            break;
        }
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
    const bool quads = T == QT_S24_Q4 && a->w_quads;
    if (a->n_tokens == 1) {
        cpu_mm_prep_scales(false, x, a->x_row_bytes, 1, nxb, ds, NULL);
        ta.x = x;
        if (quads) {
            run_quads(1, a->r0, a->r1, &ta, w, a->y);
            return;
        }
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
    const size_t row_bytes = quads ? (size_t)ta.nb * CPU_S24_QUAD_BYTES / 4 : a->w_row_bytes;
    int64_t panel = (int64_t)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
    panel -= panel % 4;
    if (panel < 4) panel = 4;
    for (int64_t p0 = a->r0; p0 < a->r1; p0 += panel) {
        const int64_t p1 = p0 + panel < a->r1 ? p0 + panel : a->r1;
        for (int64_t t0 = 0; t0 < a->n_tokens; t0 += TT_MAX) {
            const int tt = a->n_tokens - t0 < TT_MAX ? (int)(a->n_tokens - t0) : TT_MAX;
            ta.x = x + (size_t)t0 * a->x_row_bytes;
            cpu_mm_prep_scales(false, ta.x, a->x_row_bytes, tt, nxb, ds, NULL);
            if (quads) {
                run_quads(tt, p0, p1, &ta, w, a->y + t0 * a->y_stride);
                continue;
            }
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
