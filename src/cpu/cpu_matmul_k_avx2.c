/* AVX2 matmul of the K formats (Q4_K, Q5_K, Q6_K) against Q8_K activations.
 *
 * Per output the arithmetic is ggml's AVX2 ggml_vec_dot_q{4,5,6}_K_q8_K: per super-block 8
 * int32 lanes (lane k: the products of bytes 4k..4k+3 of every 32-element chunk, times their
 * group scale; for Q6_K less 32 * the scaled activation sums of chunk k), converted to float
 * and fused-multiply-added with d_x * d_w into an 8-lane accumulator; the min terms as ggml
 * sums them (Q4_K: a 4-lane fused accumulator; Q5_K: a scalar fused sum). The integer lane
 * values are fixed by that definition, so results match llama.cpp's vec_dot bit for bit.
 * (llama.cpp repacks Q4_K on AVX2 and then sums in another order: not that one.)
 *
 * Each 32-element chunk of a weight super-block is unpacked once into codes and scales and
 * applied to a tile of up to four tokens while in registers, which roughly halves the work
 * per output in prefill.
 */
#include "cpu/cpu_kernels_avx2.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"

#include <math.h>

#define KTT 4                 /* tokens per tile */
#define K_PANEL_BYTES (64 * 1024)

typedef struct kacc {
    __m256 acc;
    __m128 accm;  /* Q4_K */
    float summs;  /* Q5_K */
} kacc;

/* Codes of chunk c (elements 32c..32c+31) of a super-block as unsigned bytes, and the int16
 * scales of its 16 maddubs pairs. sm: quant_k4_scales_mins of the block (Q4_K, Q5_K). */
INLINE void kchunk(quant_type T, const uint8_t *p, const uint8_t *sm, int c, __m256i *q,
                   __m256i *sc) {
    const __m256i m4 = _mm256_set1_epi8(15);
    if (T == QT_Q6_K) {
        /* per 128 elements: chunk cc takes the low nibbles of ql[0..31], ql[32..63], then
         * the high ones; its top 2 bits are bits 2cc, 2cc+1 of qh */
        const quant_block_q6_K *b = (const quant_block_q6_K *)p;
        const int h = c / 4, cc = c % 4;
        const __m256i l = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (cc & 1)));
        const __m256i lo = _mm256_and_si256(cc < 2 ? l : _mm256_srli_epi16(l, 4), m4);
        const __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        const __m256i top = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * cc), _mm256_set1_epi8(3));
        *q = _mm256_or_si256(lo, _mm256_slli_epi16(top, 4));
        /* groups of 16: the two halves of the chunk */
        *sc = _mm256_cvtepi8_epi16(
            _mm_unpacklo_epi64(_mm_set1_epi8(b->scales[2 * c]), _mm_set1_epi8(b->scales[2 * c + 1])));
        return;
    }
    /* Q4_K/Q5_K: 64 elements per 32 bytes, chunk 2j in the low nibbles and 2j+1 in the high
     * ones; Q5_K's fifth bit of chunk c is bit c of qh */
    const uint8_t *qs = T == QT_Q4_K ? ((const quant_block_q4_K *)p)->qs : ((const quant_block_q5_K *)p)->qs;
    const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * (c / 2)));
    __m256i v = _mm256_and_si256(c & 1 ? _mm256_srli_epi16(bits, 4) : bits, m4);
    if (T == QT_Q5_K) {
        const __m256i hb = _mm256_loadu_si256((const __m256i *)((const quant_block_q5_K *)p)->qh);
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(hb, c), _mm256_set1_epi8(1));
        v = _mm256_or_si256(v, _mm256_slli_epi16(h, 4));
    }
    *q = v;
    *sc = _mm256_set1_epi16((short)sm[c]);
}

/* RR weight rows against TT tokens (RR * TT <= 4): each chunk of each row is unpacked once
 * and applied to the TT tokens while in registers; with one token, RR rows share each
 * activation load and stream side by side (decode). Per output the operations and their
 * order are those of one row alone. */
INLINE void krows(quant_type T, int RR, int TT, const uint8_t *w, size_t w_row_bytes,
                  int64_t nsb, const uint8_t *x, size_t x_row_bytes, float *y, int64_t y_stride) {
    kacc ka[4][KTT];
    UNROLL
    for (int r = 0; r < RR; r++)
        UNROLL
        for (int t = 0; t < TT; t++) ka[r][t] = (kacc){_mm256_setzero_ps(), _mm_setzero_ps(), 0.0f};
    for (int64_t i = 0; i < nsb; i++) {
        const quant_block_q8_K *yb[KTT];
        UNROLL
        for (int t = 0; t < TT; t++) yb[t] = (const quant_block_q8_K *)(x + (size_t)t * x_row_bytes) + i;
        const uint8_t *p[4];
        uint8_t sm[4][16];
        float dw[4], dminw[4];
        UNROLL
        for (int r = 0; r < RR; r++) {
            p[r] = w + (size_t)r * w_row_bytes + (size_t)i * cpu_mm_kblock_bytes(T);
            if (TT == 1) /* decode streams RR rows: fetch the next super-block of each */
                _mm_prefetch((const char *)(p[r] + 2 * cpu_mm_kblock_bytes(T)), _MM_HINT_T0);
            dminw[r] = 0.0f;
            if (T == QT_Q6_K) {
                dw[r] = h2f(((const quant_block_q6_K *)p[r])->d);
            } else if (T == QT_Q4_K) {
                const quant_block_q4_K *b = (const quant_block_q4_K *)p[r];
                dw[r] = h2f(b->d);
                dminw[r] = h2f(b->dmin);
                quant_k4_scales_mins(b->scales, sm[r]);
            } else {
                const quant_block_q5_K *b = (const quant_block_q5_K *)p[r];
                dw[r] = h2f(b->d);
                dminw[r] = h2f(b->dmin);
                quant_k4_scales_mins(b->scales, sm[r]);
            }
        }
        __m256i sumi[4][KTT];
        UNROLL
        for (int r = 0; r < RR; r++)
            UNROLL
            for (int t = 0; t < TT; t++) sumi[r][t] = _mm256_setzero_si256();
        UNROLL
        for (int c = 0; c < 8; c++) {
            __m256i yq[KTT];
            UNROLL
            for (int t = 0; t < TT; t++) yq[t] = _mm256_loadu_si256((const __m256i *)(yb[t]->qs + 32 * c));
            UNROLL
            for (int r = 0; r < RR; r++) {
                __m256i q, sc;
                kchunk(T, p[r], sm[r], c, &q, &sc);
                UNROLL
                for (int t = 0; t < TT; t++)
                    sumi[r][t] = _mm256_add_epi32(sumi[r][t], _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, yq[t])));
            }
        }
        UNROLL
        for (int r = 0; r < RR; r++) {
            if (T == QT_Q6_K) {
                const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)((const quant_block_q6_K *)p[r])->scales));
                UNROLL
                for (int t = 0; t < TT; t++) {
                    const __m256i bs = _mm256_loadu_si256((const __m256i *)yb[t]->bsums);
                    sumi[r][t] = _mm256_sub_epi32(sumi[r][t], _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
                }
            } else {
                /* min term: the 8 mins times the 32-element sums of x (pairs of bsums) */
                const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sm[r] + 8)));
                UNROLL
                for (int t = 0; t < TT; t++) {
                    const float dmin = -yb[t]->d * dminw[r];
                    const __m256i bs = _mm256_loadu_si256((const __m256i *)yb[t]->bsums);
                    const __m128i bs32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                    const __m128i prod = _mm_madd_epi16(mins, bs32);
                    if (T == QT_Q4_K) {
                        ka[r][t].accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), ka[r][t].accm);
                    } else {
                        const int msum = _mm_cvtsi128_si32(prod) + _mm_extract_epi32(prod, 1) +
                                         _mm_extract_epi32(prod, 2) + _mm_extract_epi32(prod, 3);
                        ka[r][t].summs = fmaf(dmin, (float)msum, ka[r][t].summs);
                    }
                }
            }
            UNROLL
            for (int t = 0; t < TT; t++)
                ka[r][t].acc = _mm256_fmadd_ps(_mm256_set1_ps(yb[t]->d * dw[r]), _mm256_cvtepi32_ps(sumi[r][t]), ka[r][t].acc);
        }
    }
    UNROLL
    for (int r = 0; r < RR; r++)
        UNROLL
        for (int t = 0; t < TT; t++) {
            float v = hsum8(ka[r][t].acc);
            if (T == QT_Q4_K) {
                __m128 m = _mm_add_ps(ka[r][t].accm, _mm_movehl_ps(ka[r][t].accm, ka[r][t].accm));
                m = _mm_add_ss(m, _mm_movehdup_ps(m));
                v += _mm_cvtss_f32(m);
            } else if (T == QT_Q5_K) {
                v += ka[r][t].summs;
            }
            y[t * y_stride + r] = v;
        }
}

INLINE void krow_tt(quant_type T, int tt, const uint8_t *w, int64_t nsb, const uint8_t *x,
                    size_t xrb, float *y, int64_t ys) {
    switch (tt) {
    case 1: krows(T, 1, 1, w, 0, nsb, x, xrb, y, ys); break;
    case 2: krows(T, 1, 2, w, 0, nsb, x, xrb, y, ys); break;
    case 3: krows(T, 1, 3, w, 0, nsb, x, xrb, y, ys); break;
    default: krows(T, 1, 4, w, 0, nsb, x, xrb, y, ys); break;
    }
}

/* Rows in panels of ~64 KB (kept in L2) x token tiles of KTT. */
INLINE void matmul_kt(quant_type T, const cpu_matmul_args *a) {
    const int64_t nsb = a->n_in / QUANT_QK_K;
    const uint8_t *w = a->w, *x = a->x;
    if (a->n_tokens == 1) {
        int64_t r = a->r0;
        for (; r + 4 <= a->r1; r += 4)
            krows(T, 4, 1, w + (size_t)r * a->w_row_bytes, a->w_row_bytes, nsb, x,
                  a->x_row_bytes, a->y + r, a->y_stride);
        for (; r < a->r1; r++)
            krow_tt(T, 1, w + (size_t)r * a->w_row_bytes, nsb, x, a->x_row_bytes, a->y + r,
                    a->y_stride);
        return;
    }
    int64_t panel = (int64_t)(K_PANEL_BYTES / (a->w_row_bytes ? a->w_row_bytes : 1));
    if (panel < 1 || a->n_tokens <= KTT) panel = a->r1 - a->r0;
    for (int64_t p0 = a->r0; p0 < a->r1; p0 += panel) {
        const int64_t p1 = p0 + panel < a->r1 ? p0 + panel : a->r1;
        for (int64_t t0 = 0; t0 < a->n_tokens; t0 += KTT) {
            const int tt = a->n_tokens - t0 < KTT ? (int)(a->n_tokens - t0) : KTT;
            for (int64_t r = p0; r < p1; r++)
                krow_tt(T, tt, w + (size_t)r * a->w_row_bytes, nsb,
                        x + (size_t)t0 * a->x_row_bytes, a->x_row_bytes,
                        a->y + t0 * a->y_stride + r, a->y_stride);
        }
    }
}

static void matmul_q4_K(const cpu_matmul_args *a) { matmul_kt(QT_Q4_K, a); }
static void matmul_q5_K(const cpu_matmul_args *a) { matmul_kt(QT_Q5_K, a); }
static void matmul_q6_K(const cpu_matmul_args *a) { matmul_kt(QT_Q6_K, a); }

void cpu_avx2_matmul_k(const cpu_matmul_args *a) {
    switch (a->w_type) {
    case QT_Q4_K: matmul_q4_K(a); break;
    case QT_Q5_K: matmul_q5_K(a); break;
    default: matmul_q6_K(a); break;
    }
}

#endif
