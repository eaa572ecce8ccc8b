/* AVX-512 matmul of the K formats (Q4_K, Q5_K, Q6_K) against Q8_K activations, with the bits
 * of cpu_matmul_k_avx2.c (ggml's AVX2 vec_dot): one 512-bit register holds two weight rows'
 * 8 int32 lanes (lanes 0-7 row r0, 8-15 row r1) for the same token and super-block.
 *
 * Per super-block and output, the AVX2 kernel sums each lane's integer products exactly,
 * then does one fma(d_x * d_w, lanes, acc), plus the min terms (Q4_K: a 4-lane fused chain;
 * Q5_K: a scalar fused sum; Q6_K: an integer correction). Here the same integer lanes come out
 * of the same maddubs/madd sequence, only two rows at a time, and each row's float operations
 * are those of its half of the register, in the same order. Scales for a chunk are picked out
 * of one per-super-block vector with vpermw. VNNI gains nothing here (the per-chunk scale
 * sits between the byte products and the int32 sums), so both AVX-512 tables use this file.
 * Tiles: 2 row pairs x 1 token (decode), 2 row pairs x 4 tokens (prefill, L2 panels).
 */
#include "cpu/cpu_kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)

#include "core/quant_blocks.h"
#include "cpu/cpu_matmul_blocks.h"

#include <math.h>
#include <string.h>

#define KTT 4 /* tokens per tile */
#define KRP 2 /* row pairs per tile */
#define K_PANEL_BYTES (64 * 1024)

INLINE __m512i pair256(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* Codes of chunk c (elements 32c..32c+31) of both rows' super-blocks as unsigned bytes, as
 * cpu_matmul_k_avx2.c's kchunk makes them for one row. */
INLINE __m512i kchunk_pair(quant_type T, const uint8_t *p0, const uint8_t *p1, int c) {
    const __m512i m4 = _mm512_set1_epi8(15);
    if (T == QT_Q6_K) {
        const quant_block_q6_K *a = (const quant_block_q6_K *)p0, *b = (const quant_block_q6_K *)p1;
        const int h = c / 4, cc = c % 4;
        const __m512i l = pair256(a->ql + 64 * h + 32 * (cc & 1), b->ql + 64 * h + 32 * (cc & 1));
        const __m512i lo = _mm512_and_si512(cc < 2 ? l : _mm512_srli_epi16(l, 4), m4);
        const __m512i hb = pair256(a->qh + 32 * h, b->qh + 32 * h);
        const __m512i top = _mm512_and_si512(_mm512_srli_epi16(hb, 2 * cc), _mm512_set1_epi8(3));
        return _mm512_or_si512(lo, _mm512_slli_epi16(top, 4));
    }
    const uint8_t *qs0 = T == QT_Q4_K ? ((const quant_block_q4_K *)p0)->qs : ((const quant_block_q5_K *)p0)->qs;
    const uint8_t *qs1 = T == QT_Q4_K ? ((const quant_block_q4_K *)p1)->qs : ((const quant_block_q5_K *)p1)->qs;
    const __m512i bits = pair256(qs0 + 32 * (c / 2), qs1 + 32 * (c / 2));
    __m512i v = _mm512_and_si512(c & 1 ? _mm512_srli_epi16(bits, 4) : bits, m4);
    if (T == QT_Q5_K) {
        const __m512i hb = pair256(((const quant_block_q5_K *)p0)->qh, ((const quant_block_q5_K *)p1)->qh);
        const __m512i h = _mm512_and_si512(_mm512_srli_epi16(hb, c), _mm512_set1_epi8(1));
        v = _mm512_or_si512(v, _mm512_slli_epi16(h, 4));
    }
    return v;
}

/* vpermw index: chunk c's scale for each int16 maddubs pair of both rows. ss holds (Q4_K,
 * Q5_K) words 0-7 row r0's 8 chunk scales and 8-15 row r1's; (Q6_K) words 0-15 r0's 16 group
 * scales and 16-31 r1's. */
INLINE __m512i scale_index(quant_type T, int c) {
    if (T == QT_Q6_K) {
        const short a = (short)(2 * c), b = (short)(2 * c + 1);
        return _mm512_set_epi16((short)(b + 16), (short)(b + 16), (short)(b + 16), (short)(b + 16),
                                (short)(b + 16), (short)(b + 16), (short)(b + 16), (short)(b + 16),
                                (short)(a + 16), (short)(a + 16), (short)(a + 16), (short)(a + 16),
                                (short)(a + 16), (short)(a + 16), (short)(a + 16), (short)(a + 16),
                                b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a);
    }
    const short a = (short)c, b = (short)(8 + c);
    return _mm512_set_epi16(b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b,
                            a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a);
}

typedef struct kpair_acc {
    __m512 acc;    /* [r0 8 lanes | r1 8 lanes] */
    __m256 accm;   /* Q4_K: [r0 4 lanes | r1 4 lanes] */
    float summs[2]; /* Q5_K */
} kpair_acc;

/* RP row pairs (rows 2p, 2p+1 of the tile; a lone last row is run in both halves) x TT
 * tokens over all super-blocks. */
INLINE void kpairs(quant_type T, int RP, int TT, const uint8_t *w, size_t w_row_bytes,
                   int64_t rows, int64_t nsb, const uint8_t *x, size_t x_row_bytes, float *y,
                   int64_t y_stride) {
    const int64_t last = rows - 1;
    const uint8_t *wr[2 * KRP];
    UNROLL
    for (int r = 0; r < 2 * RP; r++) wr[r] = w + (size_t)(r < last ? r : last) * w_row_bytes;
    kpair_acc ka[KRP][KTT];
    UNROLL
    for (int p = 0; p < RP; p++)
        UNROLL
        for (int t = 0; t < TT; t++)
            ka[p][t] = (kpair_acc){_mm512_setzero_ps(), _mm256_setzero_ps(), {0.0f, 0.0f}};
    for (int64_t i = 0; i < nsb; i++) {
        const quant_block_q8_K *yb[KTT];
        UNROLL
        for (int t = 0; t < TT; t++) yb[t] = (const quant_block_q8_K *)(x + (size_t)t * x_row_bytes) + i;
        const uint8_t *p0[KRP], *p1[KRP];
        __m512i ss[KRP];
        __m256i mins[KRP];
        float dw[KRP][2], dminw[KRP][2];
        UNROLL
        for (int p = 0; p < RP; p++) {
            p0[p] = wr[2 * p] + (size_t)i * cpu_mm_kblock_bytes(T);
            p1[p] = wr[2 * p + 1] + (size_t)i * cpu_mm_kblock_bytes(T);
            if (TT == 1) {
                _mm_prefetch((const char *)(p0[p] + 2 * cpu_mm_kblock_bytes(T)), _MM_HINT_T0);
                _mm_prefetch((const char *)(p1[p] + 2 * cpu_mm_kblock_bytes(T)), _MM_HINT_T0);
            }
            if (T == QT_Q6_K) {
                const quant_block_q6_K *a = (const quant_block_q6_K *)p0[p], *b = (const quant_block_q6_K *)p1[p];
                dw[p][0] = _cvtsh_ss(a->d);
                dw[p][1] = _cvtsh_ss(b->d);
                ss[p] = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a->scales))),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales)), 1);
            } else {
                const uint8_t *sc0 = T == QT_Q4_K ? ((const quant_block_q4_K *)p0[p])->scales : ((const quant_block_q5_K *)p0[p])->scales;
                const uint8_t *sc1 = T == QT_Q4_K ? ((const quant_block_q4_K *)p1[p])->scales : ((const quant_block_q5_K *)p1[p])->scales;
                const uint16_t *h0 = (const uint16_t *)p0[p], *h1 = (const uint16_t *)p1[p]; /* d, dmin */
                dw[p][0] = _cvtsh_ss(h0[0]);
                dminw[p][0] = _cvtsh_ss(h0[1]);
                dw[p][1] = _cvtsh_ss(h1[0]);
                dminw[p][1] = _cvtsh_ss(h1[1]);
                uint8_t sm0[16], sm1[16];
                quant_k4_scales_mins(sc0, sm0);
                quant_k4_scales_mins(sc1, sm1);
                uint64_t s0, s1, m0, m1;
                memcpy(&s0, sm0, 8);
                memcpy(&s1, sm1, 8);
                memcpy(&m0, sm0 + 8, 8);
                memcpy(&m1, sm1 + 8, 8);
                ss[p] = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_set_epi64x((long long)s1, (long long)s0)));
                mins[p] = _mm256_cvtepu8_epi16(_mm_set_epi64x((long long)m1, (long long)m0));
            }
        }
        __m512i sumi[KRP][KTT];
        UNROLL
        for (int p = 0; p < RP; p++)
            UNROLL
            for (int t = 0; t < TT; t++) sumi[p][t] = _mm512_setzero_si512();
        UNROLL
        for (int c = 0; c < 8; c++) {
            __m512i yq[KTT];
            UNROLL
            for (int t = 0; t < TT; t++)
                yq[t] = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(yb[t]->qs + 32 * c)));
            const __m512i idx = scale_index(T, c);
            UNROLL
            for (int p = 0; p < RP; p++) {
                const __m512i q = kchunk_pair(T, p0[p], p1[p], c);
                const __m512i sc = _mm512_permutexvar_epi16(idx, ss[p]);
                UNROLL
                for (int t = 0; t < TT; t++)
                    sumi[p][t] = _mm512_add_epi32(sumi[p][t], _mm512_madd_epi16(sc, _mm512_maddubs_epi16(q, yq[t])));
            }
        }
        UNROLL
        for (int p = 0; p < RP; p++) {
            UNROLL
            for (int t = 0; t < TT; t++) {
                const __m256i bs = _mm256_loadu_si256((const __m256i *)yb[t]->bsums);
                if (T == QT_Q6_K) {
                    const __m512i corr = _mm512_madd_epi16(_mm512_broadcast_i64x4(bs), ss[p]);
                    sumi[p][t] = _mm512_sub_epi32(sumi[p][t], _mm512_slli_epi32(corr, 5));
                } else {
                    /* min term: each row's 8 mins times the 32-element sums of x */
                    const __m128i bs32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                    const __m256i prod = _mm256_madd_epi16(mins[p], _mm256_broadcastsi128_si256(bs32));
                    const float dm0 = -yb[t]->d * dminw[p][0], dm1 = -yb[t]->d * dminw[p][1];
                    if (T == QT_Q4_K) {
                        const __m256 dm = _mm256_setr_ps(dm0, dm0, dm0, dm0, dm1, dm1, dm1, dm1);
                        ka[p][t].accm = _mm256_fmadd_ps(dm, _mm256_cvtepi32_ps(prod), ka[p][t].accm);
                    } else {
                        int v[8];
                        _mm256_storeu_si256((__m256i *)v, prod);
                        ka[p][t].summs[0] = fmaf(dm0, (float)(v[0] + v[1] + v[2] + v[3]), ka[p][t].summs[0]);
                        ka[p][t].summs[1] = fmaf(dm1, (float)(v[4] + v[5] + v[6] + v[7]), ka[p][t].summs[1]);
                    }
                }
                const __m512 d = _mm512_insertf32x8(_mm512_set1_ps(yb[t]->d * dw[p][0]),
                                                    _mm256_set1_ps(yb[t]->d * dw[p][1]), 1);
                ka[p][t].acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi[p][t]), ka[p][t].acc);
            }
        }
    }
    UNROLL
    for (int p = 0; p < RP; p++)
        UNROLL
        for (int t = 0; t < TT; t++)
            for (int h = 0; h < 2 && 2 * p + h <= last; h++) {
                const __m512 a = ka[p][t].acc;
                float v = hsum8(h ? _mm512_extractf32x8_ps(a, 1) : _mm512_castps512_ps256(a));
                if (T == QT_Q4_K) {
                    __m128 m = h ? _mm256_extractf128_ps(ka[p][t].accm, 1) : _mm256_castps256_ps128(ka[p][t].accm);
                    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
                    m = _mm_add_ss(m, _mm_movehdup_ps(m));
                    v += _mm_cvtss_f32(m);
                } else if (T == QT_Q5_K) {
                    v += ka[p][t].summs[h];
                }
                y[t * y_stride + 2 * p + h] = v;
            }
}

INLINE void run_kpairs(quant_type T, int rp, int tt, const uint8_t *w, size_t wrb, int64_t rows,
                       int64_t nsb, const uint8_t *x, size_t xrb, float *y, int64_t ys) {
    switch (rp * 8 + tt) {
    case 2 * 8 + 1: kpairs(T, 2, 1, w, wrb, rows, nsb, x, xrb, y, ys); break;
    case 2 * 8 + 2: kpairs(T, 2, 2, w, wrb, rows, nsb, x, xrb, y, ys); break;
    case 2 * 8 + 3: kpairs(T, 2, 3, w, wrb, rows, nsb, x, xrb, y, ys); break;
    case 2 * 8 + 4: kpairs(T, 2, 4, w, wrb, rows, nsb, x, xrb, y, ys); break;
    case 1 * 8 + 1: kpairs(T, 1, 1, w, wrb, rows, nsb, x, xrb, y, ys); break;
    case 1 * 8 + 2: kpairs(T, 1, 2, w, wrb, rows, nsb, x, xrb, y, ys); break;
    case 1 * 8 + 3: kpairs(T, 1, 3, w, wrb, rows, nsb, x, xrb, y, ys); break;
    default: kpairs(T, 1, 4, w, wrb, rows, nsb, x, xrb, y, ys); break;
    }
}

/* Rows [r, r1): tiles of KRP pairs, then single pairs, then a lone row. */
INLINE void krows_range(quant_type T, int tt, int64_t r, int64_t r1, const cpu_matmul_args *a,
                        int64_t nsb, const uint8_t *x, float *y) {
    const uint8_t *w = a->w;
    for (; r + 2 * KRP <= r1; r += 2 * KRP)
        run_kpairs(T, KRP, tt, w + (size_t)r * a->w_row_bytes, a->w_row_bytes, 2 * KRP, nsb, x,
                   a->x_row_bytes, y + r, a->y_stride);
    for (; r < r1; r += 2)
        run_kpairs(T, 1, tt, w + (size_t)r * a->w_row_bytes, a->w_row_bytes, r + 1 < r1 ? 2 : 1,
                   nsb, x, a->x_row_bytes, y + r, a->y_stride);
}

INLINE void matmul_kt(quant_type T, const cpu_matmul_args *a) {
    const int64_t nsb = a->n_in / QUANT_QK_K;
    const uint8_t *x = a->x;
    if (a->n_tokens == 1) {
        krows_range(T, 1, a->r0, a->r1, a, nsb, x, a->y);
        return;
    }
    int64_t panel = (int64_t)(K_PANEL_BYTES / (a->w_row_bytes ? a->w_row_bytes : 1));
    panel -= panel % (2 * KRP);
    if (panel < 2 * KRP) panel = 2 * KRP;
    for (int64_t p0 = a->r0; p0 < a->r1; p0 += panel) {
        const int64_t p1 = p0 + panel < a->r1 ? p0 + panel : a->r1;
        for (int64_t t0 = 0; t0 < a->n_tokens; t0 += KTT) {
            const int tt = a->n_tokens - t0 < KTT ? (int)(a->n_tokens - t0) : KTT;
            krows_range(T, tt, p0, p1, a, nsb, x + (size_t)t0 * a->x_row_bytes,
                        a->y + t0 * a->y_stride);
        }
    }
}

static void matmul_q4_K(const cpu_matmul_args *a) { matmul_kt(QT_Q4_K, a); }
static void matmul_q5_K(const cpu_matmul_args *a) { matmul_kt(QT_Q5_K, a); }
static void matmul_q6_K(const cpu_matmul_args *a) { matmul_kt(QT_Q6_K, a); }

void cpu_avx512_matmul_k(const cpu_matmul_args *a) {
    switch (a->w_type) {
    case QT_Q4_K: matmul_q4_K(a); break;
    case QT_Q5_K: matmul_q5_K(a); break;
    default: matmul_q6_K(a); break;
    }
}

#endif
