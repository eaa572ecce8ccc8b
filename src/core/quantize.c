/* Model-file quantizers, byte for byte those of llama.cpp's ggml-quants.c (the version vendored
 * by llama-cpp-python 0.3.36), which llama-quantize runs.
 *
 * What has to match, and why the code is written the way it is:
 *  - The algorithms: without importance weights, the legacy formats take the block's extreme
 *    value (quantize_row_*_ref), Q8_0 rounds half away from zero (roundf), and the K formats
 *    search each group's scale and min (make_qkx2/make_qx) then quantize the group scales
 *    against the block's largest one. With importance weights, the legacy formats search too
 *    (make_qx / make_qkx3 with weights qw * sqrt(sigma2 + x^2)), and the K formats quantize
 *    their group scales with a weighted search of their own (make_qp).
 *  - The float arithmetic: ggml-base is built with -O3 for baseline x86-64 (SSE2, no FMA), so
 *    every product and sum is rounded to float on its own and sums run in index order. This
 *    file is compiled the same way (no -mfma, ISO C so no contraction); each expression keeps
 *    ggml's operand order (w*x*l is (w*x)*l), since a reordering changes the last bit and
 *    then, through a search's comparisons, whole blocks.
 *  - The integer conversions: codes that ggml stores in uint8_t/int8_t before clamping wrap
 *    the same way here (the arrays have the same types).
 * fp16 rounding is core_fp32_to_fp16 (IEEE round to nearest even, as ggml's software path).
 */
#include "core/quantize.h"

#include "core/common.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define QK QUANT_QK
#define QK_K QUANT_QK_K
#define GROUP_EPS 1e-15f /* a group whose largest magnitude is below this is all zero */

static inline uint16_t f2h(float f) {
    return core_fp32_to_fp16(f);
}
static inline float h2f(uint16_t h) {
    return core_fp16_to_fp32(h);
}
static inline int imin(int a, int b) {
    return a < b ? a : b;
}
static inline int imax(int a, int b) {
    return a > b ? a : b;
}

/* Round to nearest, ties to even, for |x| < 2^22, by the float magic number 1.5 * 2^23. */
static inline int nearest_int(float x) {
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- scale searches ----------------------------------------------------------------------- */

/* Symmetric codes L = l + nmax, l in [-nmax, nmax - 1], minimising sum w (x - s l)^2 over 18
 * trial inverse scales around -nmax / max (w = qw, or x^2 without qw). Returns s. */
static float search_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Affine codes L in [0, nmax], x ~ s L - m with m >= 0, minimising sum w (s L - m - x)^2 over
 * nstep + 1 trial inverse scales (rmin + rdelta k + nmax) / (max - min), each followed by the
 * weighted least-squares s and m for its codes. Returns s; *neg_min gets m. */
static float search_affine(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = diff * diff;
            err += w[i] * diff;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

/* Non-negative codes L in [0, nmax] for the group scales of a K block, weighted by each
 * group's total weight: a scan of 8 trial scales around nmax / max, then up to 5 rounds of
 * moving single codes while that raises (sum w x L)^2 / sum w L^2. Returns the block scale. */
static float search_scales(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0.0f;
    for (int i = 0; i < n; i++)
        max = max > x[i] ? max : x[i];
    if (max < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)nearest_int(iscale * x[i]);
    const float scale = 1 / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * L[i];
        best += w[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imin(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * l;
            mse += w[i] * diff * diff;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = imin(nmax, nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += w[i] * x[i] * l;
        suml2 += w[i] * l * l;
    }
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float slx = sumlx - w[i] * x[i] * L[i];
            float sl2 = suml2 - w[i] * L[i] * L[i];
            if (!(slx > 0 && sl2 > 0)) continue;
            const int nl = imin(nmax, nearest_int(x[i] * sl2 / slx));
            if (nl == L[i]) continue;
            slx += w[i] * x[i] * nl;
            sl2 += w[i] * nl * nl;
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (uint8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ---- Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 ------------------------------------------------------- */

/* The value of largest magnitude, sign kept (the first on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *mn) *mn = x[j];
        if (x[j] > *mx) *mx = x[j];
    }
}

/* 4-bit codes 0..15: element j in the low nibble of qs[j], j + 16 in the high one. */
static void pack4(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < QK / 2; j++)
        qs[j] = (uint8_t)(q[j] | (q[j + QK / 2] << 4));
}

/* 5-bit codes 0..31: low bits as pack4, bit 4 of element j in bit j of qh. */
static void pack5(const uint8_t *q, uint8_t *qs, uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | ((q[j + QK / 2] & 15) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + QK / 2] >> 4) & 1) << (j + QK / 2);
    }
    memcpy(qh, &h, 4);
}

/* Without weights: the extreme value maps to the most negative code (-8 / -16); codes are
 * truncations of x / d + offset, as ggml's reference quantizers. */
static void row_q4_0(const float *x, quant_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        const float d = signed_absmax(x, QK) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int j = 0; j < QK; j++)
            q[j] = (uint8_t)imin(15, (int)(x[j] * id + 8.5f));
        y[i].d = f2h(d);
        pack4(q, y[i].qs);
    }
}

static void row_q5_0(const float *x, quant_block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        const float d = signed_absmax(x, QK) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int j = 0; j < QK; j++)
            q[j] = (uint8_t)imin(31, (int)(x[j] * id + 16.5f));
        y[i].d = f2h(d);
        pack5(q, y[i].qs, y[i].qh);
    }
}

static void row_q4_1(const float *x, quant_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float mn, mx;
        min_max(x, QK, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int j = 0; j < QK; j++)
            q[j] = (uint8_t)imin(15, (int)((x[j] - mn) * id + 0.5f));
        y[i].d = f2h(d);
        y[i].m = f2h(mn);
        pack4(q, y[i].qs);
    }
}

static void row_q5_1(const float *x, quant_block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float mn, mx;
        min_max(x, QK, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int j = 0; j < QK; j++) /* ggml does not clamp here: (x - mn) * id <= 31 */
            q[j] = (uint8_t)(int)((x[j] - mn) * id + 0.5f);
        y[i].d = f2h(d);
        y[i].m = f2h(mn);
        pack5(q, y[i].qs, y[i].qh);
    }
}

static void row_q8_0(const float *x, quant_block_q8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < QK; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* With weights: the row's mean square sigma2 makes each weight qw * sqrt(sigma2 + x^2). */
static float row_sigma2(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++)
        s += x[j] * x[j];
    return s / n;
}

static void block_weights(const float *x, const float *qw, float sigma2, float *w, int n) {
    for (int j = 0; j < n; j++)
        w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
}

static void row_q4_0_w(const float *x, quant_block_q4_0 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    for (int64_t i = 0; i < n / QK; i++) {
        float w[QK];
        int8_t L[QK];
        block_weights(x + i * QK, qw + i * QK, sigma2, w, QK);
        y[i].d = f2h(search_symmetric(QK, 8, x + i * QK, L, w));
        pack4((const uint8_t *)L, y[i].qs);
    }
}

static void row_q5_0_w(const float *x, quant_block_q5_0 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    for (int64_t i = 0; i < n / QK; i++) {
        float w[QK];
        int8_t L[QK];
        block_weights(x + i * QK, qw + i * QK, sigma2, w, QK);
        y[i].d = f2h(search_symmetric(QK, 16, x + i * QK, L, w));
        pack5((const uint8_t *)L, y[i].qs, y[i].qh);
    }
}

/* Q4_1 / Q5_1 with weights: d and m of one block each, nmax 15 or 31. */
static void affine_block_w(const float *x, const float *qw, float sigma2, int nmax, uint16_t *d,
                           uint16_t *m, uint8_t *L) {
    float w[QK], neg_min;
    uint8_t aux[QK];
    block_weights(x, qw, sigma2, w, QK);
    const float s = search_affine(QK, nmax, x, w, L, &neg_min, aux, -0.9f, 0.05f, 36);
    *d = f2h(s);
    *m = f2h(-neg_min);
}

static void row_q4_1_w(const float *x, quant_block_q4_1 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    for (int64_t i = 0; i < n / QK; i++) {
        uint8_t L[QK];
        affine_block_w(x + i * QK, qw + i * QK, sigma2, 15, &y[i].d, &y[i].m, L);
        pack4(L, y[i].qs);
    }
}

static void row_q5_1_w(const float *x, quant_block_q5_1 *y, int64_t n, const float *qw) {
    const float sigma2 = row_sigma2(x, n);
    for (int64_t i = 0; i < n / QK; i++) {
        uint8_t L[QK];
        affine_block_w(x + i * QK, qw + i * QK, sigma2, 31, &y[i].d, &y[i].m, L);
        pack5(L, y[i].qs, y[i].qh);
    }
}

/* ---- Q4_K, Q5_K ---------------------------------------------------------------------------- */

/* The 12 scale bytes from 8 scale and 8 min codes, assigned in ggml's order (codes above 63
 * are not masked for groups 0-3, as ggml: only its weighted Q4_K path can produce them). */
static void pack_k4_scales(const uint8_t ls[8], const uint8_t lm[8], uint8_t s[12]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 15) | ((lm[j] & 15) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Requantizes each group with the stored (fp16, 6-bit) scale and min; a group whose scale is
 * zero keeps the codes of its search. */
static void k4_final_codes(const float *x, const uint8_t *scales, uint16_t d16, uint16_t dmin16,
                           int nmax, uint8_t *L) {
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        quant_k4_scale_min(scales, j, &sc, &m);
        const float d = h2f(d16) * sc;
        if (!d) continue;
        const float dm = h2f(dmin16) * m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + l] + dm) / d)));
    }
}

static void pack_q4_K_codes(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 64, qs += 32)
        for (int l = 0; l < 32; l++)
            qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

static void pack_q5_K_codes(const uint8_t *L, uint8_t *qs, uint8_t *qh) {
    memset(qh, 0, QK_K / 8);
    for (int j = 0; j < QK_K; j += 64, qs += 32) {
        const int bit = j / 32; /* the pair of qh bits this 64 uses */
        for (int l = 0; l < 32; l++) {
            int lo = L[j + l], hi = L[j + l + 32];
            if (lo > 15) {
                lo -= 16;
                qh[l] |= (uint8_t)(1u << bit);
            }
            if (hi > 15) {
                hi -= 16;
                qh[l] |= (uint8_t)(2u << bit);
            }
            qs[l] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* One Q4_K / Q5_K super-block (nmax 15 / 31): scales, mins, d, dmin and the codes L. Without
 * qw, each group is weighted av_x + |x| with av_x its own RMS, searched with the reference
 * parameters, and the group scales are rounded against the largest; with qw, the weights are
 * qw * sqrt(sigma2 + x^2) over the whole block and the group scales are searched too. */
static void k4_block(const float *x, const float *qw, int nmax, uint8_t scales[12], uint16_t *d16,
                     uint16_t *dmin16, uint8_t *L) {
    float sc[8], mn[8], w[32], sw[8];
    uint8_t aux[32], ls[8], lm[8];
    if (!qw) {
        const float rmin = nmax == 15 ? -1.0f : -0.5f;
        const int nstep = nmax == 15 ? 20 : 15;
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            const float *xg = x + 32 * j;
            float sum_x2 = 0.0f;
            for (int l = 0; l < 32; l++)
                sum_x2 += xg[l] * xg[l];
            const float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++)
                w[l] = av_x + fabsf(xg[l]);
            sc[j] = search_affine(32, nmax, xg, w, L + 32 * j, &mn[j], aux, rmin, 0.1f, nstep);
            if (sc[j] > max_scale) max_scale = sc[j];
            if (mn[j] > max_min) max_min = mn[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)nearest_int(inv_scale * sc[j]);
            lm[j] = (uint8_t)nearest_int(inv_min * mn[j]);
            ls[j] = ls[j] < 63 ? ls[j] : 63;
            lm[j] = lm[j] < 63 ? lm[j] : 63;
        }
        *d16 = f2h(max_scale / 63.f);
        *dmin16 = f2h(max_min / 63.f);
    } else {
        float sum_x2 = 0.0f;
        for (int l = 0; l < QK_K; l++)
            sum_x2 += x[l] * x[l];
        const float sigma2 = 2 * sum_x2 / QK_K;
        for (int j = 0; j < 8; j++) {
            const float *xg = x + 32 * j;
            block_weights(xg, qw + 32 * j, sigma2, w, 32);
            float sumw = 0.0f;
            for (int l = 0; l < 32; l++)
                sumw += w[l];
            sw[j] = sumw;
            sc[j] = search_affine(32, nmax, xg, w, L + 32 * j, &mn[j], aux, -0.9f, 0.05f, 36);
        }
        const float d_block = search_scales(8, 63, sc, ls, sw);
        const float m_block = search_scales(8, 63, mn, lm, sw);
        if (nmax == 31) /* ggml's Q5_K clamps the codes here, its Q4_K does not */
            for (int j = 0; j < 8; j++) {
                ls[j] = ls[j] < 63 ? ls[j] : 63;
                lm[j] = lm[j] < 63 ? lm[j] : 63;
            }
        *d16 = f2h(d_block);
        *dmin16 = f2h(m_block);
    }
    pack_k4_scales(ls, lm, scales);
    k4_final_codes(x, scales, *d16, *dmin16, nmax, L);
}

static void row_q4_K(const float *x, quant_block_q4_K *y, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t L[QK_K];
        k4_block(x + i * QK_K, qw ? qw + i * QK_K : NULL, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        pack_q4_K_codes(L, y[i].qs);
    }
}

static void row_q5_K(const float *x, quant_block_q5_K *y, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t L[QK_K];
        k4_block(x + i * QK_K, qw ? qw + i * QK_K : NULL, 31, y[i].scales, &y[i].d, &y[i].dmin, L);
        pack_q5_K_codes(L, y[i].qs, y[i].qh);
    }
}

/* ---- Q6_K ----------------------------------------------------------------------------------- */

/* 16 groups of 16 searched symmetrically (weights x^2, or qw), group scales rounded to int8
 * against the largest (which maps to -128), codes requantized with the stored scales. */
static void row_q6_K(const float *x, quant_block_q6_K *y, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t L[QK_K];
        float sc[16], max_scale = 0.0f, max_abs = 0.0f;
        for (int g = 0; g < 16; g++) {
            sc[g] = search_symmetric(16, 32, x + 16 * g, L + 16 * g,
                                     qw ? qw + QK_K * i + 16 * g : NULL);
            if (fabsf(sc[g]) > max_abs) {
                max_abs = fabsf(sc[g]);
                max_scale = sc[g];
            }
        }
        if (max_abs < GROUP_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int g = 0; g < 16; g++)
            y[i].scales[g] = (int8_t)imin(127, nearest_int(iscale * sc[g]));
        for (int g = 0; g < 16; g++) {
            const float d = h2f(y[i].d) * y[i].scales[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * g + l] / d))) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
                ql[l + 32] = (uint8_t)((q2 & 15) | ((q4 & 15) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
    }
}

/* ---- entry points ------------------------------------------------------------------------- */

bool quantize_supported(uint32_t type) {
    switch (type) {
    case QT_F32:
    case QT_F16:
    case QT_BF16:
    case QT_Q4_0:
    case QT_Q4_1:
    case QT_Q5_0:
    case QT_Q5_1:
    case QT_Q8_0:
    case QT_Q4_K:
    case QT_Q5_K:
    case QT_Q6_K:
        return true;
    default:
        return false;
    }
}

bool quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                   const float *qw) {
    if (!quantize_supported(type)) return false;
    uint64_t row_bytes;
    if (!quant_row_bytes(type, (uint64_t)n_per_row, &row_bytes)) return false;
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        void *y = (uint8_t *)dst + (size_t)r * row_bytes;
        const int64_t nb = n_per_row / quant_traits_of(type)->block_size;
        switch (type) {
        case QT_F32:
            memcpy(y, x, (size_t)n_per_row * sizeof(float));
            break;
        case QT_F16:
            for (int64_t j = 0; j < n_per_row; j++)
                ((uint16_t *)y)[j] = f2h(x[j]);
            break;
        case QT_BF16:
            for (int64_t j = 0; j < n_per_row; j++)
                ((uint16_t *)y)[j] = core_fp32_to_bf16(x[j]);
            break;
        case QT_Q4_0:
            qw ? row_q4_0_w(x, y, n_per_row, qw) : row_q4_0(x, y, nb);
            break;
        case QT_Q4_1:
            qw ? row_q4_1_w(x, y, n_per_row, qw) : row_q4_1(x, y, nb);
            break;
        case QT_Q5_0:
            qw ? row_q5_0_w(x, y, n_per_row, qw) : row_q5_0(x, y, nb);
            break;
        case QT_Q5_1:
            qw ? row_q5_1_w(x, y, n_per_row, qw) : row_q5_1(x, y, nb);
            break;
        case QT_Q8_0:
            row_q8_0(x, y, nb);
            break;
        case QT_Q4_K:
            row_q4_K(x, y, n_per_row, qw);
            break;
        case QT_Q5_K:
            row_q5_K(x, y, n_per_row, qw);
            break;
        default:
            row_q6_K(x, y, n_per_row, qw);
            break;
        }
    }
    return true;
}
