/* AVX-512 matmul of the packed 2:4 formats (S24_Q4, S24_Q8): the bits of cpu_s24_avx2.c (and
 * so of the reference in src/core/quant_s24.c) for two weight rows per instruction.
 *
 * Compiled twice, as cpu_matmul_avx512.c is: as itself (AVX-512 F/BW/VL/DQ, integer sums by
 * maddubs + madd) and included by cpu_s24_avx512vnni.c with CPU_AVX512_VNNI set (vpdpbusd).
 * One 512-bit register holds two rows side by side, each 256-bit half in the AVX2 kernel's
 * layout (cpu_s24_simd.h); every instruction used works within 128-bit lanes or lane by lane,
 * so each half sees exactly the AVX2 kernel's integers and float operations, in its order.
 *  - Without VNNI, the sign trick (|w| unsigned, w's sign moved onto the activation with a
 *    masked negate): maddubs gives each group's two products in an int16 word (exact: at most
 *    2 * 128 * 127), and madd with (1, 0) / (0, 1) picks the first / second half's words.
 *  - With VNNI, the activations are made unsigned (x + 128) once per token and gathered with
 *    the other half's words zeroed, so vpdpbusd's 4 products per int32 lane are one group's
 *    two; the sum starts at -128 * (the group's two codes), made once per weight block, which
 *    leaves exactly the group's integer sum (int32 arithmetic, no saturation).
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

#include <stddef.h>
#include <string.h>

#define MAX_XBLOCKS 1024 /* as cpu_s24_avx2.c, which longer rows are sent to */
#define PANEL_BYTES (64 * 1024)
#define TT_MAX CPU_MM_TT
#define DECODE_RP 2  /* row pairs per decode tile: 4 rows, as the dense kernels */
#define PREFILL_RP 2 /* row pairs per prefill tile, with TT_MAX tokens: 8 accumulators */
#define PREFETCH_AHEAD 4096

/* A row pair's unpacked block: the signed codes (and, without VNNI, |w| and the sign mask;
 * with VNNI the integer sums' starting values), the gather indices and the weight scales
 * [d0 x 8 | d1 x 8]. */
typedef struct s24_pair {
    __m512i w;
#if CPU_AVX512_VNNI
    __m512i base0, base1;
#else
    __m512i uw;
    __mmask64 neg;
#endif
    __m512i idx;
    __m512 dw;
} s24_pair;

/* Bytes of the even (first half's) and odd (second half's) words. */
#define EVEN_BYTES ((__mmask64)0x3333333333333333ull)
#define ODD_BYTES ((__mmask64)0xCCCCCCCCCCCCCCCCull)

/* Two 256-bit halves from two 128-bit loads, each broadcast within its half. */
INLINE __m512i bcast128_pair(const void *a, const void *b) {
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)a))),
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b)), 1);
}

/* The signed codes of both rows' blocks in cpu_s24_simd.h's layout (s24_wcodes for two). */
INLINE __m512i wcodes_pair(quant_type T, const uint8_t *b0, const uint8_t *b1) {
    if (T == QT_S24_Q4) {
        const __m512i q = bcast128_pair(((const quant_block_s24_q4 *)b0)->qs,
                                        ((const quant_block_s24_q4 *)b1)->qs);
        const __m512i pairs =
            _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7));
        /* lane 1 of each half reads qs bytes 8-15 */
        const __m512i lane =
            _mm512_setr_epi32(0, 0, 0, 0, 0x08080808, 0x08080808, 0x08080808, 0x08080808, 0, 0, 0,
                              0, 0x08080808, 0x08080808, 0x08080808, 0x08080808);
        const __m512i t = _mm512_shuffle_epi8(q, _mm512_add_epi8(pairs, lane));
        const __m512i nib = _mm512_and_si512(
            _mm512_mask_blend_epi16((__mmask32)0xAAAAAAAAu, t, _mm512_srli_epi16(t, 4)),
            _mm512_set1_epi8(15));
        return _mm512_sub_epi8(nib, _mm512_set1_epi8(8));
    }
    const __m512i q = _mm512_inserti64x4(
        _mm512_castsi256_si512(
            _mm256_loadu_si256((const __m256i *)((const quant_block_s24_q8 *)b0)->qs)),
        _mm256_loadu_si256((const __m256i *)((const quant_block_s24_q8 *)b1)->qs), 1);
    /* per half [qs 0-7, qs 16-23 | qs 8-15, qs 24-31], then words interleaved */
    const __m512i p = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7), q);
    const __m512i words =
        _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
    return _mm512_shuffle_epi8(p, words);
}

/* Both rows' gather indices (s24_gather_idx for two). */
INLINE __m512i gather_idx_pair(const uint8_t *pos0, const uint8_t *pos1) {
    uint64_t p0, p1;
    memcpy(&p0, pos0, 8);
    memcpy(&p1, pos1, 8);
    const __m512i p =
        _mm512_inserti64x4(_mm512_set1_epi64((long long)p0), _mm256_set1_epi64x((long long)p1), 1);
    const __m512i rep =
        _mm512_broadcast_i64x4(_mm256_setr_epi8(0, 0, 4, 4, 0, 0, 4, 4, 1, 1, 5, 5, 1, 1, 5, 5, 2,
                                                2, 6, 6, 2, 2, 6, 6, 3, 3, 7, 7, 3, 3, 7, 7));
    const __m512i t = _mm512_srlv_epi32(_mm512_shuffle_epi8(p, rep), _mm512_set4_epi32(4, 0, 4, 0));
    /* low bytes bits 0-1 (p0), high bytes bits 2-3 (p1) */
    const __m512i u =
        _mm512_mask_blend_epi8((__mmask64)0xAAAAAAAAAAAAAAAAull, t, _mm512_srli_epi16(t, 2));
    const __m512i base =
        _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
    /* (u & 3) + base as (u & 3) | base: base has no bits 0-1 */
    return _mm512_ternarylogic_epi32(u, _mm512_set1_epi8(3), base, 0xEA);
}

/* What unpack_pair and unpack_quad share: the integer sums' starting values (VNNI) or |w|
 * and its signs, from the codes. */
INLINE void finish_pair(s24_pair *p) {
#if CPU_AVX512_VNNI
    /* the activations come unsigned (x + 128), so each sum starts at -128 * (its group's two
     * codes): maddubs leaves 128 * (sum of a word's two codes) in each word (exact: within
     * [-32768, 32512]), madd picks and negates the even (first half) or odd words */
    const __m512i m = _mm512_maddubs_epi16(_mm512_set1_epi8((char)0x80), p->w);
    p->base0 = _mm512_madd_epi16(m, _mm512_set1_epi32(0x0000ffff));
    p->base1 = _mm512_madd_epi16(m, _mm512_set1_epi32((int)0xffff0000u));
#else
    p->neg = _mm512_movepi8_mask(p->w);
    p->uw = _mm512_abs_epi8(p->w);
#endif
}

INLINE void unpack_pair(quant_type T, const uint8_t *b0, const uint8_t *b1, s24_pair *p) {
    p->w = wcodes_pair(T, b0, b1);
    p->idx = gather_idx_pair(b0 + offsetof(quant_block_s24_q4, pos),
                             b1 + offsetof(quant_block_s24_q4, pos));
    finish_pair(p);
    /* [d0 x 8 | d1 x 8]: both scales in one conversion */
    uint16_t h0, h1;
    memcpy(&h0, b0, 2);
    memcpy(&h1, b1, 2);
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | (uint32_t)h1 << 16)));
    p->dw = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                  _mm512_castps128_ps512(d));
}

/* Both pairs of a quad block (cpu_s24.h's layout, S24_Q4): the same registers as unpack_pair
 * makes from the file layout, in fewer instructions. */
INLINE void unpack_quad(const uint8_t *sb, s24_pair p[2]) {
    const __m512i v = _mm512_loadu_si512((const void *)(sb + 40));
    const __m512i m15 = _mm512_set1_epi8(15), e8 = _mm512_set1_epi8(8);
    p[0].w = _mm512_sub_epi8(_mm512_and_si512(v, m15), e8);
    p[1].w = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m15), e8);
    /* word w shifts by 2 * (w / 8); (bits & 3) | 4 * (its group's index within the lane) */
    const __m512i sh =
        _mm512_setr_epi64(0, 0, 0x0002000200020002ll, 0x0002000200020002ll, 0x0004000400040004ll,
                          0x0004000400040004ll, 0x0006000600060006ll, 0x0006000600060006ll);
    const __m512i base =
        _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
    const __m512 d = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)sb)));
    UNROLL
    for (int i = 0; i < 2; i++) {
        const __m512i src =
            _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(sb + 8 + 16 * i)));
        p[i].idx =
            _mm512_ternarylogic_epi32(_mm512_srlv_epi16(src, sh), _mm512_set1_epi8(3), base, 0xEA);
        finish_pair(&p[i]);
        p[i].dw = _mm512_permutexvar_ps(_mm512_setr_epi32(2 * i, 2 * i, 2 * i, 2 * i, 2 * i, 2 * i,
                                                          2 * i, 2 * i, 2 * i + 1, 2 * i + 1,
                                                          2 * i + 1, 2 * i + 1, 2 * i + 1,
                                                          2 * i + 1, 2 * i + 1, 2 * i + 1),
                                        d);
    }
}

/* The two halves' int32 lane sums of a pair against activation blocks x0, x1 (with VNNI
 * already x + 128). */
INLINE void half_sums(const s24_pair *p, __m512i x0, __m512i x1, __m512i *i0, __m512i *i1) {
#if CPU_AVX512_VNNI
    /* the other half's words zero, so each int32 lane holds one group's two products */
    *i0 = _mm512_dpbusd_epi32(p->base0, _mm512_maskz_shuffle_epi8(EVEN_BYTES, x0, p->idx), p->w);
    *i1 = _mm512_dpbusd_epi32(p->base1, _mm512_maskz_shuffle_epi8(ODD_BYTES, x1, p->idx), p->w);
#else
    const __m512i g = _mm512_mask_shuffle_epi8(_mm512_maskz_shuffle_epi8(EVEN_BYTES, x0, p->idx),
                                               ODD_BYTES, x1, p->idx);
    const __m512i sx = _mm512_mask_sub_epi8(g, p->neg, _mm512_setzero_si512(), g);
    const __m512i p16 = _mm512_maddubs_epi16(p->uw, sx);
    *i0 = _mm512_madd_epi16(p16, _mm512_set1_epi32(1));
    *i1 = _mm512_madd_epi16(p16, _mm512_set1_epi32(1 << 16));
#endif
}

typedef struct s24_tile_args {
    const uint8_t *w;
    size_t w_row_bytes;
    int64_t rows; /* rows of the tile: 2 * RP, or fewer at the edge (the last repeated) */
    int64_t row0; /* rows below it are not written (a quad's rows before r0) */
    const uint8_t *x;
    size_t x_row_bytes;
    int64_t nb;
    const float *ds;
    float *y;
    int64_t y_stride;
} s24_tile_args;

/* Q: the weights are quads (cpu_s24.h; RP 2, one quad); else the file layout. */
INLINE void tile(quant_type T, bool Q, int RP, int TT, const s24_tile_args *a) {
    /* per row and block (a quad block holds 4 rows' bytes) */
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
        if (Q) {
            unpack_quad(a->w + b * CPU_S24_QUAD_BYTES, pr);
        } else {
            UNROLL
            for (int p = 0; p < RP; p++)
                unpack_pair(T, wr[2 * p] + b * wb, wr[2 * p + 1] + b * wb, &pr[p]);
        }
        UNROLL
        for (int t = 0; t < TT; t++) {
            const uint8_t *xp =
                a->x + (size_t)t * a->x_row_bytes + 2 * b * xb + offsetof(quant_block_q8_0, qs);
            __m512i x0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)xp));
            __m512i x1 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xp + xb)));
            if (CPU_AVX512_VNNI) {
                x0 = _mm512_xor_si512(x0, _mm512_set1_epi8((char)0x80));
                x1 = _mm512_xor_si512(x1, _mm512_set1_epi8((char)0x80));
            }
            const __m512 dx0 = _mm512_set1_ps(a->ds[2 * b * TT_MAX + t]);
            const __m512 dx1 = _mm512_set1_ps(a->ds[(2 * b + 1) * TT_MAX + t]);
            UNROLL
            for (int p = 0; p < RP; p++) {
                __m512i i0, i1;
                half_sums(&pr[p], x0, x1, &i0, &i1);
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
            if (2 * p <= last && 2 * p >= a->row0) y[0] = hsum8(_mm512_castps512_ps256(acc[p][t]));
            if (2 * p + 1 <= last && 2 * p + 1 >= a->row0)
                y[1] = hsum8(_mm512_extractf32x8_ps(acc[p][t], 1));
        }
    }
}

INLINE void run_tile(quant_type T, int rp, int tt, const s24_tile_args *a) {
    switch (rp * 8 + tt) {
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

/* Rows [r, r1) in tiles of RP pairs, then single pairs, then a lone row. */
INLINE void run_rows(quant_type T, int RP, int tt, int64_t r, int64_t r1, s24_tile_args *ta,
                     const uint8_t *w, float *y) {
    ta->row0 = 0;
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

/* Rows [r, r1) of S24_Q4 quads (w the matrix's first quad): the quads they touch, each
 * writing only its rows in the range. */
static void run_quads(int tt, int64_t r, int64_t r1, s24_tile_args *ta, const uint8_t *w,
                      float *y) {
    for (int64_t q = r / 4; 4 * q < r1; q++) {
        ta->w = w + (size_t)(q * ta->nb) * CPU_S24_QUAD_BYTES;
        ta->y = y + 4 * q;
        ta->row0 = r > 4 * q ? r - 4 * q : 0;
        ta->rows = r1 - 4 * q < 4 ? r1 - 4 * q : 4;
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
    const bool quads = T == QT_S24_Q4 && a->w_quads;
    if (a->n_tokens == 1) {
        cpu_mm_prep_scales(false, x, a->x_row_bytes, 1, nxb, ds, NULL);
        ta.x = x;
        if (quads)
            run_quads(1, a->r0, a->r1, &ta, w, a->y);
        else
            run_rows(T, DECODE_RP, 1, a->r0, a->r1, &ta, w, a->y);
        return;
    }
    const size_t row_bytes = quads ? (size_t)ta.nb * CPU_S24_QUAD_BYTES / 4 : a->w_row_bytes;
    int64_t panel = (int64_t)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
    panel -= panel % (2 * PREFILL_RP);
    if (panel < 2 * PREFILL_RP) panel = 2 * PREFILL_RP;
    for (int64_t p0 = a->r0; p0 < a->r1; p0 += panel) {
        const int64_t p1 = p0 + panel < a->r1 ? p0 + panel : a->r1;
        for (int64_t t0 = 0; t0 < a->n_tokens; t0 += TT_MAX) {
            const int tt = a->n_tokens - t0 < TT_MAX ? (int)(a->n_tokens - t0) : TT_MAX;
            ta.x = x + (size_t)t0 * a->x_row_bytes;
            cpu_mm_prep_scales(false, ta.x, a->x_row_bytes, tt, nxb, ds, NULL);
            if (quads)
                run_quads(tt, p0, p1, &ta, w, a->y + t0 * a->y_stride);
            else
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
