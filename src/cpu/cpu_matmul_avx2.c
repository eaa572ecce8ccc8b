/* AVX2 matmul: Y[t][r] = dot(W row r, X row t), the CPU backend's hot path.
 *
 * Decode (one token) is memory bound: four weight rows per step, with software prefetch a
 * few KB ahead of the rows being read, while the activation row stays in L1. Prefill is
 * compute bound: a 3-row x 4-token tile reuses each unpacked weight block for four tokens and
 * each activation block for three rows, with the 12 accumulators in registers; rows are
 * walked in panels of ~64 KB so a panel stays in L2 while all token tiles pass over it.
 *
 * Per output the arithmetic is exactly llama.cpp's AVX2 dot product (see the top of
 * cpu_kernels_avx2.c): tiling changes which outputs are computed together, never the
 * operations or their order within one output. Block scales of the activations are
 * converted to float once per token tile (fp16 -> f32 is exact, so this changes nothing).
 */
#include "cpu/cpu_kernels_avx2.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"
#include "cpu/cpu_s24.h"

#include <math.h>
#include <stddef.h>

/* Blocks per row the stack scale buffers hold (rows up to 32768 elements); longer rows take
 * the scalar reference path. */
#define MAX_BLOCKS 1024
/* Weight bytes per row panel in prefill: well inside L2 next to the activation tile. */
#define PANEL_BYTES (64 * 1024)
#define TT_MAX CPU_MM_TT
/* Prefill tile: PREFILL_RR rows x TT_MAX tokens, 12 accumulators. Measured against 2x4, 4x2,
 * 4x3, 3x3 on Zen 3: 3x4 is 5-10% faster than the next best. */
#define PREFILL_RR 3
/* Decode prefetch distance in weight bytes (tuned on Zen 3: 1-8 KB all help, 4 KB best). */
#define PREFETCH_AHEAD 4096

/* ---- per-format weight access: the codes of one block as 32 bytes, and its scales -------- */

/* d and m of an affine block, which sit next to each other: one conversion for both. */
INLINE void half_pair(const uint16_t *h, float *d, float *m) {
    uint32_t u;
    memcpy(&u, h, 4);
    const __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
    *d = _mm_cvtss_f32(v);
    *m = _mm_cvtss_f32(_mm_movehdup_ps(v));
}

/* Codes of block p as 32 bytes in element order; *d and *m its scale and min (m only for
 * affine formats). */
INLINE __m256i wcodes(quant_type t, const uint8_t *p, float *d, float *m) {
    switch (t) {
    case QT_Q4_0: {
        const quant_block_q4_0 *b = (const quant_block_q4_0 *)p;
        *d = h2f(b->d);
        return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
    }
    case QT_Q4_1: {
        const quant_block_q4_1 *b = (const quant_block_q4_1 *)p;
        half_pair(&b->d, d, m);
        return nibbles32(b->qs);
    }
    case QT_Q5_0: {
        /* q - 16 as a signed byte: the nibble with 0xf0 or-ed in where bit 5 is clear */
        const quant_block_q5_0 *b = (const quant_block_q5_0 *)p;
        *d = h2f(b->d);
        const __m256i hi = _mm256_andnot_si256(bits32(b->qh), _mm256_set1_epi8((char)0xf0));
        return _mm256_or_si256(nibbles32(b->qs), hi);
    }
    case QT_Q5_1: {
        const quant_block_q5_1 *b = (const quant_block_q5_1 *)p;
        half_pair(&b->d, d, m);
        const __m256i hi = _mm256_and_si256(bits32(b->qh), _mm256_set1_epi8(0x10));
        return _mm256_or_si256(nibbles32(b->qs), hi);
    }
    default: {
        const quant_block_q8_0 *b = (const quant_block_q8_0 *)p;
        *d = h2f(b->d);
        return _mm256_loadu_si256((const __m256i *)b->qs);
    }
    }
}

/* ---- the tile --------------------------------------------------------------------------- */

typedef struct tile_args {
    const uint8_t *w; /* first row of the tile */
    size_t w_row_bytes;
    const uint8_t *x; /* first token of the tile */
    size_t x_row_bytes;
    int64_t nb;
    const float *ds, *ss;
    float *y; /* y[t * y_stride + r], first row and token of the tile */
    int64_t y_stride;
} tile_args;

/* RR rows x TT tokens over all blocks. T, RR, TT are constants at every call site, so the
 * loops unroll and the accumulators live in registers. */
INLINE void tile(quant_type T, int RR, int TT, const tile_args *a) {
    const bool aff = cpu_mm_affine(T);
    const size_t wb = cpu_mm_wblock_bytes(T), xb = cpu_mm_xblock_bytes(T),
                 xq = cpu_mm_xqs_offset(T);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][TT_MAX];
    __m128 msum[4];
    UNROLL
    for (int r = 0; r < RR; r++) {
        msum[r] = _mm_setzero_ps();
        UNROLL
        for (int t = 0; t < TT; t++)
            acc[r][t] = _mm256_setzero_ps();
    }
    float ms1[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* TT == 1: the min sums as scalars */
    for (int64_t b = 0; b < a->nb; b++) {
        if (TT == 1) {
            /* decode streams the weights from memory: ask for what the next tiles need
             * (measured: +25-70% GB/s on Zen 3, whose prefetcher loses track of the RR
             * interleaved row streams). uintptr_t: the address may lie past the matrix,
             * which a prefetch tolerates but pointer arithmetic would not. */
            const uintptr_t pf = (uintptr_t)a->w + PREFETCH_AHEAD + (uintptr_t)(b * RR * wb);
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
            if (RR * wb > 128) _mm_prefetch((const char *)(pf + 128), _MM_HINT_T0);
        }
        __m256i q[4], uq[4];
        /* d_w * d_x for every (row, token). With one token as a broadcast register; with
         * more, four tokens per multiply, kept in memory and broadcast by loads, which
         * frees registers and FP pipe slots for the products. */
        __m256 d1[4];
        float dd[4][TT_MAX] __attribute__((aligned(16)));
        const __m128 dx4 = _mm_loadu_ps(a->ds + b * TT_MAX);
        UNROLL
        for (int r = 0; r < RR; r++) {
            float d, m = 0.0f;
            q[r] = wcodes(T, a->w + (size_t)r * a->w_row_bytes + b * wb, &d, &m);
            if (TT == 1) {
                d1[r] = _mm256_set1_ps(d * a->ds[b * TT_MAX]);
                if (aff) ms1[r] = fmaf(m, a->ss[b * TT_MAX], ms1[r]); /* ggml: fused */
            } else {
                _mm_store_ps(dd[r], _mm_mul_ps(_mm_set1_ps(d), dx4));
                /* m_w * s_x for the tile's tokens at once; lane t is ggml's fused sum */
                if (aff)
                    msum[r] =
                        _mm_fmadd_ps(_mm_set1_ps(m), _mm_loadu_ps(a->ss + b * TT_MAX), msum[r]);
            }
            /* signed formats: |w| as the unsigned maddubs operand, its sign moved onto x */
            uq[r] = aff ? q[r] : _mm256_sign_epi8(q[r], q[r]);
        }
        UNROLL
        for (int t = 0; t < TT; t++) {
            const __m256i qx = _mm256_loadu_si256(
                (const __m256i *)(a->x + (size_t)t * a->x_row_bytes + b * xb + xq));
            UNROLL
            for (int r = 0; r < RR; r++) {
                const __m256i sx = aff ? qx : _mm256_sign_epi8(qx, q[r]);
                const __m256i p16 = _mm256_maddubs_epi16(uq[r], sx);
                const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                const __m256 dd_rt = TT == 1 ? d1[r] : _mm256_broadcast_ss(&dd[r][t]);
                acc[r][t] = _mm256_fmadd_ps(dd_rt, p, acc[r][t]);
            }
        }
    }
    if (TT == 1) {
        UNROLL
        for (int r = 0; r < RR; r++)
            msum[r] = _mm_set_ss(ms1[r]);
    }
    UNROLL
    for (int r = 0; r < RR; r++) {
        float ms[TT_MAX];
        _mm_storeu_ps(ms, msum[r]);
        UNROLL
        for (int t = 0; t < TT; t++) {
            float v = hsum8(acc[r][t]);
            if (aff) v += ms[t];
            a->y[t * a->y_stride + r] = v;
        }
    }
}

/* The tile shapes the drivers use: 4x1 (decode), 3x4 (prefill) and their edges. */
INLINE void run_tile(quant_type T, int rr, int tt, const tile_args *a) {
    switch (rr * 8 + tt) {
    case 4 * 8 + 1:
        tile(T, 4, 1, a);
        break;
    case 3 * 8 + 1:
        tile(T, 3, 1, a);
        break;
    case 3 * 8 + 2:
        tile(T, 3, 2, a);
        break;
    case 3 * 8 + 3:
        tile(T, 3, 3, a);
        break;
    case 3 * 8 + 4:
        tile(T, 3, 4, a);
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

INLINE void matmul_q32(quant_type T, const cpu_matmul_args *a) {
    const int64_t nb = a->n_in / QUANT_QK;
    if (nb > MAX_BLOCKS) {
        matmul_ref(a);
        return;
    }
    float ds[MAX_BLOCKS * TT_MAX], ss[MAX_BLOCKS * TT_MAX];
    const uint8_t *w = a->w, *x = a->x;
    tile_args ta = {.w_row_bytes = a->w_row_bytes,
                    .x_row_bytes = a->x_row_bytes,
                    .nb = nb,
                    .ds = ds,
                    .ss = ss,
                    .y_stride = a->y_stride};
    if (a->n_tokens == 1) {
        cpu_mm_prep_scales(cpu_mm_affine(T), x, a->x_row_bytes, 1, nb, ds, ss);
        ta.x = x;
        int64_t r = a->r0;
        for (; r + 4 <= a->r1; r += 4) {
            ta.w = w + (size_t)r * a->w_row_bytes;
            ta.y = a->y + r;
            run_tile(T, 4, 1, &ta);
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
            cpu_mm_prep_scales(cpu_mm_affine(T), ta.x, a->x_row_bytes, tt, nb, ds, ss);
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

/* One function per format so each gets its own fully specialised tiles. */
static void matmul_q4_0(const cpu_matmul_args *a) {
    matmul_q32(QT_Q4_0, a);
}
static void matmul_q4_1(const cpu_matmul_args *a) {
    matmul_q32(QT_Q4_1, a);
}
static void matmul_q5_0(const cpu_matmul_args *a) {
    matmul_q32(QT_Q5_0, a);
}
static void matmul_q5_1(const cpu_matmul_args *a) {
    matmul_q32(QT_Q5_1, a);
}
static void matmul_q8_0(const cpu_matmul_args *a) {
    matmul_q32(QT_Q8_0, a);
}

/* ---- float weights: one dot product per output ---------------------------------------- */

static void matmul_float(const cpu_matmul_args *a) {
    const uint8_t *w = a->w, *x = a->x;
    for (int64_t t = 0; t < a->n_tokens; t++)
        for (int64_t r = a->r0; r < a->r1; r++) {
            const void *wr = w + (size_t)r * a->w_row_bytes, *xr = x + (size_t)t * a->x_row_bytes;
            float v;
            switch (a->w_type) {
            case QT_F16:
                v = cpu_avx2_dot_f16(wr, xr, a->n_in);
                break;
            case QT_BF16:
                v = cpu_avx2_dot_bf16(wr, xr, a->n_in);
                break;
            default:
                v = cpu_avx2_dot_f32(wr, xr, a->n_in);
                break;
            }
            a->y[t * a->y_stride + r] = v;
        }
}

void cpu_avx2_matmul(const cpu_matmul_args *a) {
    switch (a->w_type) {
    case QT_Q4_0:
        matmul_q4_0(a);
        break;
    case QT_Q4_1:
        matmul_q4_1(a);
        break;
    case QT_Q5_0:
        matmul_q5_0(a);
        break;
    case QT_Q5_1:
        matmul_q5_1(a);
        break;
    case QT_Q8_0:
        matmul_q8_0(a);
        break;
    case QT_Q4_K:
    case QT_Q5_K:
    case QT_Q6_K:
        cpu_avx2_matmul_k(a);
        break;
    case QT_F16:
    case QT_BF16:
    case QT_F32:
        matmul_float(a);
        break;
    case QT_S24_Q4:
    case QT_S24_Q8:
        cpu_avx2_matmul_s24(a);
        break;
    default:
        matmul_ref(a);
        break;
    }
}

#endif
