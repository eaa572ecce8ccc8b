/* Reference code of the tensor formats: for each ggml type id its name and block size, and for
 * the formats vkllm computes with a scalar dequantizer, quantizer and dot product.
 *
 * This is the numerical definition the SIMD kernels (src/cpu) and the shaders are tested
 * against, so it favours plain loops over speed. It must not allocate, print or keep state.
 *
 * Which numbers we must reproduce, and from where:
 *  - Block layouts and dequantization: ggml-common.h / ggml-quants.c, bit for bit.
 *  - Activation quantizers (Q8_0, Q8_1, Q8_K): the bytes llama.cpp's CPU backend feeds its dot
 *    products on x86, so vkllm's logits can match it exactly. For Q8_0/Q8_1 that is the AVX
 *    path of ggml-cpu/arch/x86/quants.c (multiply by 127/amax, round half to even), which
 *    differs in the last bit from ggml's portable quantize_row_q8_0_ref (multiply by 1/d,
 *    round half away from zero) now and then; for Q8_K both are the same.
 *  - Weight quantizers: Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K are core/quantize.c's,
 *    ggml's reference quantizers to the byte (what llama-quantize writes without an
 *    importance matrix). Q2_K and Q3_K use plain round-to-nearest on min/max (no error search
 *    as ggml does): valid blocks of somewhat lower quality than llama-quantize's, fine for
 *    tests, not for shipping models.
 *  - Dot products: ggml's generic (non-SIMD) formulas, per block
 *    d_x * d_y * sum(q_x * q_y) (+ m_x * s_y for the _1 formats), summed in block order.
 */
#include "core/quant.h"

#include "core/common.h"
#include "core/quant_blocks.h"
#include "core/quant_s24.h"
#include "core/quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define QK QUANT_QK
#define QK_K QUANT_QK_K

static inline float h2f(uint16_t h) {
    return core_fp16_to_fp32(h);
}
static inline uint16_t f2h(float f) {
    return core_fp32_to_fp16(f);
}

/* Round to nearest, ties to even, for |x| < 2^22: adding 1.5 * 2^23 leaves the integer in the
 * low mantissa bits. This is ggml's nearest_int, and what _mm256_round_ps does by default. */
static inline int round_even(float x) {
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- F32, F16, BF16 ----------------------------------------------------------------------- */

static void dequant_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static void quant_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
static float dot_f32(int64_t n, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    /* double, as ggml's scalar path (ggml_float) */
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(x[i] * y[i]);
    return (float)s;
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = h2f(x[i]);
}
static void quant_f16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = f2h(src[i]);
}
static float dot_f16(int64_t n, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)s;
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = core_bf16_to_fp32(x[i]);
}
static void quant_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = core_fp32_to_bf16(src[i]);
}
static float dot_bf16(int64_t n, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(core_bf16_to_fp32(x[i]) * core_bf16_to_fp32(y[i]));
    return (float)s;
}

/* ---- Q8_0, Q8_1 (activations; Q8_0 also weights) ----------------------------------------- */

static float absmax(const float *x, int n) {
    float m = 0.0f;
    for (int j = 0; j < n; j++)
        m = fmaxf(m, fabsf(x[j]));
    return m;
}

/* llama.cpp x86 semantics (see the top of the file): returns the sum of the quants. */
static int quant_block_8(const float *x, int8_t *qs, float *d_out) {
    const float amax = absmax(x, QK);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; j++) {
        qs[j] = (int8_t)round_even(x[j] * id);
        sum += qs[j];
    }
    *d_out = d;
    return sum;
}

static void quant_q8_0(const float *x, void *vy, int64_t n) {
    quant_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK; i++) {
        float d;
        quant_block_8(x + i * QK, y[i].qs, &d);
        y[i].d = f2h(d);
    }
}

static void quant_q8_1(const float *x, void *vy, int64_t n) {
    quant_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK; i++) {
        float d;
        int sum = quant_block_8(x + i * QK, y[i].qs, &d);
        y[i].d = f2h(d);
        y[i].s = f2h(d * (float)sum); /* the float product, then fp16: as ggml */
    }
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const quant_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK; j++)
            dst[i * QK + j] = x[i].qs[j] * d;
    }
}

static void dequant_q8_1(const void *src, float *dst, int64_t n) {
    const quant_block_q8_1 *x = src;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK; j++)
            dst[i * QK + j] = x[i].qs[j] * d;
    }
}

static float dot_q8_0(int64_t n, const void *vx, const void *vy) {
    const quant_block_q8_0 *x = vx, *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++)
            isum += x[i].qs[j] * y[i].qs[j];
        s += (float)isum * (h2f(x[i].d) * h2f(y[i].d));
    }
    return s;
}

/* Activation types with themselves: not used by llama.cpp, here so every supported type has a
 * dot product (tests, and a model that stores a weight in an activation format). */
static float dot_q8_1(int64_t n, const void *vx, const void *vy) {
    const quant_block_q8_1 *x = vx, *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++)
            isum += x[i].qs[j] * y[i].qs[j];
        s += (float)isum * (h2f(x[i].d) * h2f(y[i].d));
    }
    return s;
}

/* ---- Q4_0, Q4_1, Q5_0, Q5_1 (weights) ----------------------------------------------------- */

/* Element j of a 4/5-bit block: low nibble of qs[j] for j < 16, high nibble of qs[j - 16]. */
static inline int nib(const uint8_t *qs, int j) {
    return j < QK / 2 ? qs[j] & 15 : qs[j - QK / 2] >> 4;
}
static inline int bit5(const uint8_t qh[4], int j) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return (int)((h >> j) & 1) << 4;
}

/* The value with the largest magnitude, keeping its sign (first one on ties): Q4_0/Q5_0 map it
 * to -8 / -16 so the full negative range is used. */
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

/* ggml's reference quantizers, from core/quantize.c: one definition of a model file's bytes */
static void quant_q4_0(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q4_0, x, y, 1, n, NULL);
}
static void quant_q4_1(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q4_1, x, y, 1, n, NULL);
}
static void quant_q5_0(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q5_0, x, y, 1, n, NULL);
}
static void quant_q5_1(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q5_1, x, y, 1, n, NULL);
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const quant_block_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK; j++)
            dst[i * QK + j] = (float)(nib(x[i].qs, j) - 8) * d;
    }
}

static void dequant_q4_1(const void *src, float *dst, int64_t n) {
    const quant_block_q4_1 *x = src;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < QK; j++)
            dst[i * QK + j] = (float)nib(x[i].qs, j) * d + m;
    }
}

static void dequant_q5_0(const void *src, float *dst, int64_t n) {
    const quant_block_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < QK; j++)
            dst[i * QK + j] = (float)((nib(x[i].qs, j) | bit5(x[i].qh, j)) - 16) * d;
    }
}

static void dequant_q5_1(const void *src, float *dst, int64_t n) {
    const quant_block_q5_1 *x = src;
    for (int64_t i = 0; i < n / QK; i++) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < QK; j++)
            dst[i * QK + j] = (float)(nib(x[i].qs, j) | bit5(x[i].qh, j)) * d + m;
    }
}

static float dot_q4_0(int64_t n, const void *vx, const void *vy) {
    const quant_block_q4_0 *x = vx;
    const quant_block_q8_0 *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++)
            isum += (nib(x[i].qs, j) - 8) * y[i].qs[j];
        s += (float)isum * h2f(x[i].d) * h2f(y[i].d);
    }
    return s;
}

static float dot_q4_1(int64_t n, const void *vx, const void *vy) {
    const quant_block_q4_1 *x = vx;
    const quant_block_q8_1 *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++)
            isum += nib(x[i].qs, j) * y[i].qs[j];
        /* sum(x*y) = d_x d_y sum(q_x q_y) + m_x sum(y), and sum(y) is s_y */
        s += h2f(x[i].d) * h2f(y[i].d) * (float)isum + h2f(x[i].m) * h2f(y[i].s);
    }
    return s;
}

static float dot_q5_0(int64_t n, const void *vx, const void *vy) {
    const quant_block_q5_0 *x = vx;
    const quant_block_q8_0 *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++)
            isum += ((nib(x[i].qs, j) | bit5(x[i].qh, j)) - 16) * y[i].qs[j];
        s += h2f(x[i].d) * h2f(y[i].d) * (float)isum;
    }
    return s;
}

static float dot_q5_1(int64_t n, const void *vx, const void *vy) {
    const quant_block_q5_1 *x = vx;
    const quant_block_q8_1 *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++)
            isum += (nib(x[i].qs, j) | bit5(x[i].qh, j)) * y[i].qs[j];
        s += h2f(x[i].d) * h2f(y[i].d) * (float)isum + h2f(x[i].m) * h2f(y[i].s);
    }
    return s;
}

/* ---- K formats: the per-element codes, shared by dequant and dot ------------------------- */

/* Codes q and group scales of one super-block, unpacked into plain arrays: x = d * sc[g] *
 * q[e] - dmin * mn[g] with g = e / group. The reference functions below work on these, so
 * each bit layout is decoded in exactly one place. */
typedef struct kunpacked {
    int8_t q[QK_K];
    int16_t sc[16], mn[16];
    int group; /* 16 or 32 */
    float d, dmin;
} kunpacked;

static void unpack_q2_K(const quant_block_q2_K *b, kunpacked *u) {
    u->group = 16;
    u->d = h2f(b->d);
    u->dmin = h2f(b->dmin);
    for (int g = 0; g < 16; g++) {
        u->sc[g] = b->scales[g] & 15;
        u->mn[g] = b->scales[g] >> 4;
    }
    for (int e = 0; e < QK_K; e++) {
        const int half = e / 128, k = (e % 128) / 32, l = e % 32;
        u->q[e] = (int8_t)((b->qs[32 * half + l] >> (2 * k)) & 3);
    }
}

static void unpack_q3_K(const quant_block_q3_K *b, kunpacked *u) {
    u->group = 16;
    u->d = h2f(b->d);
    u->dmin = 0.0f;
    for (int g = 0; g < 16; g++) {
        u->sc[g] = (int16_t)quant_k3_scale(b->scales, g);
        u->mn[g] = 0;
    }
    for (int e = 0; e < QK_K; e++) {
        const int half = e / 128, k = (e % 128) / 32, l = e % 32;
        const int lo = (b->qs[32 * half + l] >> (2 * k)) & 3;
        const int hi = (b->hmask[l] >> (4 * half + k)) & 1;
        u->q[e] = (int8_t)(lo - (hi ? 0 : 4));
    }
}

static void unpack_q45_K(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, uint16_t d,
                         uint16_t dmin, kunpacked *u) {
    u->group = 32;
    u->d = h2f(d);
    u->dmin = h2f(dmin);
    for (int g = 0; g < 8; g++) {
        uint8_t sc, m;
        quant_k4_scale_min(scales, g, &sc, &m);
        u->sc[g] = sc;
        u->mn[g] = m;
    }
    for (int e = 0; e < QK_K; e++) {
        const int g = e / 32, l = e % 32;
        int q = (qs[32 * (g / 2) + l] >> (4 * (g & 1))) & 15;
        if (qh) q |= ((qh[l] >> g) & 1) << 4;
        u->q[e] = (int8_t)q;
    }
}

static void unpack_q6_K(const quant_block_q6_K *b, kunpacked *u) {
    u->group = 16;
    u->d = h2f(b->d);
    u->dmin = 0.0f;
    for (int g = 0; g < 16; g++) {
        u->sc[g] = b->scales[g];
        u->mn[g] = 0;
    }
    for (int e = 0; e < QK_K; e++) {
        /* per 128: ql[l] low/high nibble -> elements l, l+64; ql[l+32] -> l+32, l+96; the
         * top 2 bits of element 32k + l in bits 2k, 2k+1 of qh[l] */
        const int half = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
        const int lo = (ql[l + 32 * (k & 1)] >> (4 * (k >> 1))) & 15;
        const int hi = (qh[l] >> (2 * k)) & 3;
        u->q[e] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

static void unpack_k(quant_type t, const void *blk, kunpacked *u) {
    switch (t) {
    case QT_Q2_K:
        unpack_q2_K(blk, u);
        break;
    case QT_Q3_K:
        unpack_q3_K(blk, u);
        break;
    case QT_Q4_K: {
        const quant_block_q4_K *b = blk;
        unpack_q45_K(b->scales, b->qs, NULL, b->d, b->dmin, u);
        break;
    }
    case QT_Q5_K: {
        const quant_block_q5_K *b = blk;
        unpack_q45_K(b->scales, b->qs, b->qh, b->d, b->dmin, u);
        break;
    }
    default:
        unpack_q6_K(blk, u);
        break;
    }
}

static size_t k_block_bytes(quant_type t) {
    switch (t) {
    case QT_Q2_K:
        return sizeof(quant_block_q2_K);
    case QT_Q3_K:
        return sizeof(quant_block_q3_K);
    case QT_Q4_K:
        return sizeof(quant_block_q4_K);
    case QT_Q5_K:
        return sizeof(quant_block_q5_K);
    default:
        return sizeof(quant_block_q6_K);
    }
}

static void dequant_k(quant_type t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    kunpacked u;
    for (int64_t i = 0; i < n / QK_K; i++, p += k_block_bytes(t), dst += QK_K) {
        unpack_k(t, p, &u);
        for (int g = 0; g < QK_K / u.group; g++) {
            /* as ggml: the group's scale and min in float first, then one multiply-add */
            const float dl = u.d * (float)u.sc[g], ml = u.dmin * (float)u.mn[g];
            for (int l = 0; l < u.group; l++) {
                const int e = g * u.group + l;
                dst[e] = dl * (float)u.q[e] - ml;
            }
        }
    }
}

/* sum over super-blocks of d_x d_y sum_g(sc_g sum(q_x q_y)) - dmin_x d_y sum_g(m_g sum(q_y)),
 * the second sum from the Q8_K bsums. */
static float dot_k(quant_type t, int64_t n, const void *vx, const void *vy) {
    const uint8_t *p = vx;
    const quant_block_q8_K *y = vy;
    kunpacked u;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, p += k_block_bytes(t)) {
        unpack_k(t, p, &u);
        int isum = 0, msum = 0;
        for (int g = 0; g < QK_K / u.group; g++) {
            int gs = 0;
            for (int l = 0; l < u.group; l++) {
                const int e = g * u.group + l;
                gs += u.q[e] * y[i].qs[e];
            }
            isum += u.sc[g] * gs;
            const int bs =
                u.group == 16 ? y[i].bsums[g] : y[i].bsums[2 * g] + y[i].bsums[2 * g + 1];
            msum += u.mn[g] * bs;
        }
        s += u.d * y[i].d * (float)isum - u.dmin * y[i].d * (float)msum;
    }
    return s;
}

static void dequant_q2_K(const void *s, float *d, int64_t n) {
    dequant_k(QT_Q2_K, s, d, n);
}
static void dequant_q3_K(const void *s, float *d, int64_t n) {
    dequant_k(QT_Q3_K, s, d, n);
}
static void dequant_q4_K(const void *s, float *d, int64_t n) {
    dequant_k(QT_Q4_K, s, d, n);
}
static void dequant_q5_K(const void *s, float *d, int64_t n) {
    dequant_k(QT_Q5_K, s, d, n);
}
static void dequant_q6_K(const void *s, float *d, int64_t n) {
    dequant_k(QT_Q6_K, s, d, n);
}
static float dot_q2_K(int64_t n, const void *x, const void *y) {
    return dot_k(QT_Q2_K, n, x, y);
}
static float dot_q3_K(int64_t n, const void *x, const void *y) {
    return dot_k(QT_Q3_K, n, x, y);
}
static float dot_q4_K(int64_t n, const void *x, const void *y) {
    return dot_k(QT_Q4_K, n, x, y);
}
static float dot_q5_K(int64_t n, const void *x, const void *y) {
    return dot_k(QT_Q5_K, n, x, y);
}
static float dot_q6_K(int64_t n, const void *x, const void *y) {
    return dot_k(QT_Q6_K, n, x, y);
}

/* ---- K formats: quantizers ---------------------------------------------------------------- */

/* Scale (>= 0) and min (<= 0) of a group for codes 0..nmax: x ~ scale * q + min. ggml clamps
 * the min to <= 0 as well, so the stored "dmin * m" is a non-negative offset. */
static void group_scale_min(const float *x, int n, int nmax, float *scale, float *min) {
    float mn, mx;
    min_max(x, n, &mn, &mx);
    if (mn > 0.0f) mn = 0.0f;
    *scale = mx > mn ? (mx - mn) / (float)nmax : 0.0f;
    *min = mn;
}

/* Q2_K / Q4_K / Q5_K: per-group scale and min, both quantized against the block maximum to
 * nbits_s bits, then codes recomputed with the quantized values (as ggml's second pass). */
static void quant_affine_k(const float *x, int group, int nmax, int smax, uint16_t *d_out,
                           uint16_t *dmin_out, uint8_t *ls, uint8_t *lm, uint8_t *codes) {
    const int ng = QK_K / group;
    float scale[16], min[16], max_scale = 0.0f, max_min = 0.0f;
    for (int g = 0; g < ng; g++) {
        group_scale_min(x + g * group, group, nmax, &scale[g], &min[g]);
        min[g] = -min[g];
        if (scale[g] > max_scale) max_scale = scale[g];
        if (min[g] > max_min) max_min = min[g];
    }
    const float is = max_scale > 0.0f ? (float)smax / max_scale : 0.0f;
    const float im = max_min > 0.0f ? (float)smax / max_min : 0.0f;
    *d_out = f2h(max_scale / (float)smax);
    *dmin_out = f2h(max_min / (float)smax);
    const float d = h2f(*d_out), dmin = h2f(*dmin_out);
    for (int g = 0; g < ng; g++) {
        ls[g] = (uint8_t)clampi(round_even(is * scale[g]), 0, smax);
        lm[g] = (uint8_t)clampi(round_even(im * min[g]), 0, smax);
        const float dl = d * ls[g], ml = dmin * lm[g];
        for (int l = 0; l < group; l++) {
            const int e = g * group + l;
            codes[e] = dl != 0.0f ? (uint8_t)clampi(round_even((x[e] + ml) / dl), 0, nmax) : 0;
        }
    }
}

static void quant_q2_K(const float *x, void *vy, int64_t n) {
    quant_block_q2_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t ls[16], lm[16], q[QK_K];
        quant_affine_k(x, 16, 3, 15, &y[i].d, &y[i].dmin, ls, lm, q);
        for (int g = 0; g < 16; g++)
            y[i].scales[g] = (uint8_t)(ls[g] | (lm[g] << 4));
        memset(y[i].qs, 0, sizeof y[i].qs);
        for (int e = 0; e < QK_K; e++)
            y[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
    }
}

/* Q4_K, Q5_K, Q6_K: ggml's reference quantizers (a row of n is n / 256 independent blocks) */
static void quant_q4_K(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q4_K, x, y, 1, n, NULL);
}
static void quant_q5_K(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q5_K, x, y, 1, n, NULL);
}
static void quant_q6_K(const float *x, void *y, int64_t n) {
    quantize_rows(QT_Q6_K, x, y, 1, n, NULL);
}

/* Q3_K: symmetric groups; the group scale is max/-(2^(b-1)) as ggml (so the group's
 * largest value gets the extra negative code), group scales quantized to signed sbits. */
static void quant_symmetric_k(const float *x, int half_range, int smax, uint16_t *d_out, int8_t *ls,
                              int8_t *codes) {
    float scale[16], max_scale = 0.0f, max_abs = 0.0f;
    for (int g = 0; g < 16; g++) {
        scale[g] = signed_absmax(x + 16 * g, 16) / -(float)half_range;
        if (fabsf(scale[g]) > max_abs) {
            max_abs = fabsf(scale[g]);
            max_scale = scale[g];
        }
    }
    memset(codes, 0, QK_K);
    memset(ls, 0, 16);
    if (max_abs == 0.0f) {
        *d_out = 0;
        return;
    }
    const float iscale = -(float)(smax + 1) / max_scale;
    *d_out = f2h(1.0f / iscale);
    const float d = h2f(*d_out);
    for (int g = 0; g < 16; g++) {
        ls[g] = (int8_t)clampi(round_even(iscale * scale[g]), -(smax + 1), smax);
        const float dl = d * ls[g];
        if (dl == 0.0f) continue;
        for (int l = 0; l < 16; l++)
            codes[16 * g + l] =
                (int8_t)clampi(round_even(x[16 * g + l] / dl), -half_range, half_range - 1);
    }
}

static void quant_q3_K(const float *x, void *vy, int64_t n) {
    quant_block_q3_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t ls[16], q[QK_K];
        quant_symmetric_k(x, 4, 31, &y[i].d, ls, q);
        memset(y[i].scales, 0, 12);
        for (int g = 0; g < 16; g++) {
            const int v = ls[g] + 32; /* 6 bits, stored with an offset of 32 */
            y[i].scales[g % 8] |= (uint8_t)((v & 15) << (g < 8 ? 0 : 4));
            y[i].scales[8 + g % 4] |= (uint8_t)((v >> 4) << (2 * (g / 4)));
        }
        memset(y[i].qs, 0, sizeof y[i].qs);
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int e = 0; e < QK_K; e++) {
            const int v = q[e] + 4, half = e / 128, k = (e % 128) / 32, l = e % 32;
            y[i].qs[32 * half + l] |= (uint8_t)((v & 3) << (2 * k));
            y[i].hmask[l] |= (uint8_t)((v >> 2) << (4 * half + k));
        }
    }
}

/* ---- Q8_K (activations of the K formats): ggml's quantize_row_q8_K_ref -------------------- */

static void quant_q8_K(const float *x, void *vy, int64_t n) {
    quant_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        const float max = signed_absmax(x, QK_K);
        if (max == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* -127/max rather than -128/max: ggml's choice, so +-127 is the widest code */
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = round_even(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

static float dot_q8_K(int64_t n, const void *vx, const void *vy) {
    const quant_block_q8_K *x = vx, *y = vy;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < QK_K; j++)
            isum += x[i].qs[j] * y[i].qs[j];
        s += (float)isum * (x[i].d * y[i].d);
    }
    return s;
}

static void dequant_q8_K(const void *src, float *dst, int64_t n) {
    const quant_block_q8_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++)
            dst[i * QK_K + j] = x[i].d * x[i].qs[j];
}

/* ---- the table ---------------------------------------------------------------------------- */

/* ggml ids up to GGML_TYPE_COUNT (43) at the time of writing; quant.h's QT_COUNT (40) does not
 * yet cover NVFP4, Q1_0, Q2_0, which are known here by size only. */
#define N_IDS 43

#define KNOWN(id, nm, bs, ts) [id] = {.name = nm, .block_size = bs, .type_size = ts}
#define SUPPORTED(id, nm, bs, ts, dq, q, vdt, dot)                                                 \
    [id] = {.name = nm,                                                                            \
            .block_size = bs,                                                                      \
            .type_size = ts,                                                                       \
            .supported = true,                                                                     \
            .dequant = dq,                                                                         \
            .quant = q,                                                                            \
            .vec_dot_type = vdt,                                                                   \
            .vec_dot = dot}

/* vec_dot_type: what llama.cpp's CPU backend quantizes the activations to for each weight
 * type (ggml-cpu.c type_traits_cpu), so the integer dot products are the same. */
static const quant_traits k_traits[N_IDS] = {
    SUPPORTED(QT_F32, "f32", 1, 4, dequant_f32, quant_f32, QT_F32, dot_f32),
    SUPPORTED(QT_F16, "f16", 1, 2, dequant_f16, quant_f16, QT_F16, dot_f16),
    SUPPORTED(QT_Q4_0, "q4_0", QK, 18, dequant_q4_0, quant_q4_0, QT_Q8_0, dot_q4_0),
    SUPPORTED(QT_Q4_1, "q4_1", QK, 20, dequant_q4_1, quant_q4_1, QT_Q8_1, dot_q4_1),
    SUPPORTED(QT_Q5_0, "q5_0", QK, 22, dequant_q5_0, quant_q5_0, QT_Q8_0, dot_q5_0),
    SUPPORTED(QT_Q5_1, "q5_1", QK, 24, dequant_q5_1, quant_q5_1, QT_Q8_1, dot_q5_1),
    SUPPORTED(QT_Q8_0, "q8_0", QK, 34, dequant_q8_0, quant_q8_0, QT_Q8_0, dot_q8_0),
    SUPPORTED(QT_Q8_1, "q8_1", QK, 36, dequant_q8_1, quant_q8_1, QT_Q8_1, dot_q8_1),
    SUPPORTED(QT_Q2_K, "q2_K", QK_K, 84, dequant_q2_K, quant_q2_K, QT_Q8_K, dot_q2_K),
    SUPPORTED(QT_Q3_K, "q3_K", QK_K, 110, dequant_q3_K, quant_q3_K, QT_Q8_K, dot_q3_K),
    SUPPORTED(QT_Q4_K, "q4_K", QK_K, 144, dequant_q4_K, quant_q4_K, QT_Q8_K, dot_q4_K),
    SUPPORTED(QT_Q5_K, "q5_K", QK_K, 176, dequant_q5_K, quant_q5_K, QT_Q8_K, dot_q5_K),
    SUPPORTED(QT_Q6_K, "q6_K", QK_K, 210, dequant_q6_K, quant_q6_K, QT_Q8_K, dot_q6_K),
    SUPPORTED(QT_Q8_K, "q8_K", QK_K, 292, dequant_q8_K, quant_q8_K, QT_Q8_K, dot_q8_K),
    KNOWN(16, "iq2_xxs", QK_K, 66),
    KNOWN(17, "iq2_xs", QK_K, 74),
    KNOWN(18, "iq3_xxs", QK_K, 98),
    KNOWN(19, "iq1_s", QK_K, 50),
    KNOWN(20, "iq4_nl", 32, 18),
    KNOWN(21, "iq3_s", QK_K, 110),
    KNOWN(22, "iq2_s", QK_K, 82),
    KNOWN(23, "iq4_xs", QK_K, 136),
    KNOWN(24, "i8", 1, 1),
    KNOWN(25, "i16", 1, 2),
    KNOWN(26, "i32", 1, 4),
    KNOWN(27, "i64", 1, 8),
    KNOWN(28, "f64", 1, 8),
    KNOWN(29, "iq1_m", QK_K, 56),
    SUPPORTED(QT_BF16, "bf16", 1, 2, dequant_bf16, quant_bf16, QT_BF16, dot_bf16),
    KNOWN(34, "tq1_0", QK_K, 54),
    KNOWN(35, "tq2_0", QK_K, 66),
    KNOWN(39, "mxfp4", 32, 17),
    KNOWN(40, "nvfp4", 64, 36),
    KNOWN(41, "q1_0", 128, 18),
    KNOWN(42, "q2_0", 64, 18),
};

const quant_traits *quant_traits_of(uint32_t type) {
    if (quant_is_s24(type)) return quant_s24_traits(type);
    if (type >= N_IDS || k_traits[type].name == NULL) return NULL;
    return &k_traits[type];
}

/* Names for ids that are not (or no longer) ggml types: removed ids 4, 5, 31-33, 36-38 and
 * whatever comes after the table. A constant table keeps the function free of state. */
#define UNK10(a)                                                                                   \
    "type#" #a "0", "type#" #a "1", "type#" #a "2", "type#" #a "3", "type#" #a "4",                \
        "type#" #a "5", "type#" #a "6", "type#" #a "7", "type#" #a "8", "type#" #a "9"
static const char *const k_unknown_names[64] = {
    "type#0", "type#1",  "type#2",  "type#3",  "type#4",  "type#5", "type#6",
    "type#7", "type#8",  "type#9",  UNK10(1),  UNK10(2),  UNK10(3), UNK10(4),
    UNK10(5), "type#60", "type#61", "type#62", "type#63",
};

const char *quant_type_name(uint32_t type) {
    const quant_traits *t = quant_traits_of(type);
    if (t) return t->name;
    return type < 64 ? k_unknown_names[type] : "type#64+";
}

bool quant_row_bytes(uint32_t type, uint64_t n, uint64_t *out) {
    const quant_traits *t = quant_traits_of(type);
    if (!t || n % t->block_size != 0) return false;
    return core_mul_ok(n / t->block_size, t->type_size, out);
}

static const struct {
    uint32_t ftype;
    const char *name;
    uint32_t type; /* the type a file of one type declares this ftype for; UINT32_MAX: none */
} k_ftypes[] = {
    {0, "F32", QT_F32},         {1, "F16", QT_F16},         {2, "Q4_0", QT_Q4_0},
    {3, "Q4_1", QT_Q4_1},       {7, "Q8_0", QT_Q8_0},       {8, "Q5_0", QT_Q5_0},
    {9, "Q5_1", QT_Q5_1},       {10, "Q2_K", UINT32_MAX},   {11, "Q3_K_S", UINT32_MAX},
    {12, "Q3_K_M", UINT32_MAX}, {13, "Q3_K_L", UINT32_MAX}, {14, "Q4_K_S", QT_Q4_K},
    {15, "Q4_K_M", UINT32_MAX}, {16, "Q5_K_S", QT_Q5_K},    {17, "Q5_K_M", UINT32_MAX},
    {18, "Q6_K", QT_Q6_K},      {32, "BF16", QT_BF16},
};

const char *quant_ftype_name(uint32_t ftype) {
    for (size_t i = 0; i < sizeof k_ftypes / sizeof k_ftypes[0]; i++)
        if (k_ftypes[i].ftype == ftype) return k_ftypes[i].name;
    return NULL;
}

uint32_t quant_ftype_of(uint32_t type) {
    for (size_t i = 0; i < sizeof k_ftypes / sizeof k_ftypes[0]; i++)
        if (k_ftypes[i].type == type) return k_ftypes[i].ftype;
    return UINT32_MAX;
}

bool quant_type_by_name(const char *name, uint32_t *out) {
    /* the ggml ids below QT_COUNT, then vkllm's own (the S24 formats) */
    for (uint32_t i = 0; name && i < QT_COUNT + 2; i++) {
        const uint32_t id = i < QT_COUNT ? i : QT_S24_Q4 + (i - QT_COUNT);
        const quant_traits *tr = quant_traits_of(id);
        if (!tr || strlen(tr->name) != strlen(name)) continue;
        bool eq = true;
        for (size_t j = 0; eq && name[j]; j++)
            eq = (tr->name[j] | 0x20) == (name[j] | 0x20);
        if (eq) {
            *out = id;
            return true;
        }
    }
    return false;
}
