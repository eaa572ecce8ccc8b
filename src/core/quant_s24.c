/* Reference code of the packed 2:4 formats S24_Q4 / S24_Q8 (quant_blocks.h, docs/sparse.md):
 * the choice of kept values, quantizers from dense floats, dequantizers and the dot product.
 *
 * The quantizers follow ggml's reference quantizers over the block's 32 kept values (in value
 * order): S24_Q4 as quantize_row_q4_0_ref, S24_Q8 as quantize_row_q8_0_ref (multiply by 1/d,
 * round half away from zero), so a pruned model quantizes as a dense one would.
 *
 * The dot product is not a plain reference loop like quant.c's: it follows the spec's 8-lane
 * order (one lane per group of a 32-column half, fmaf per half, hsum8 at the end), which is the
 * order the SIMD kernels and the shaders use, so all of them give the same bits. Plain C,
 * compiled without -ffast-math and without FP contraction changes (fmaf is explicit).
 */
#include "core/quant_s24.h"

#include "core/common.h"
#include "core/quant_blocks.h"

#include <math.h>
#include <string.h>

#define QK QUANT_QK
#define S24 QUANT_S24_COLS

uint8_t quant_s24_pick(const float x[4]) {
    int a = 0;
    for (int j = 1; j < 4; j++)
        if (fabsf(x[j]) > fabsf(x[a])) a = j; /* strict: ties keep the lower column */
    int b = -1;
    for (int j = 0; j < 4; j++)
        if (j != a && (b < 0 || fabsf(x[j]) > fabsf(x[b]))) b = j;
    const int lo = a < b ? a : b, hi = a < b ? b : a;
    return (uint8_t)(lo | (hi << 2));
}

void quant_s24_prune(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 4) {
        const uint8_t p = quant_s24_pick(x + i);
        for (int j = 0; j < 4; j++)
            if (j != (p & 3) && j != (p >> 2)) x[i + j] = 0.0f;
    }
}

/* The 32 kept values of a 64-column block in value order, and the block's positions: those
 * of quant_s24_pick, or (keep not NULL) the given ones. */
static void gather_kept(const float *x, const uint8_t *keep, float kept[32], uint8_t pos[8]) {
    memset(pos, 0, 8);
    for (int g = 0; g < 16; g++) {
        uint8_t p = 0;
        if (keep) {
            int lo = -1, hi = -1;
            for (int j = 0; j < 4; j++)
                if (keep[4 * g + j]) {
                    if (lo < 0)
                        lo = j;
                    else
                        hi = j;
                }
            p = (uint8_t)(lo | (hi << 2));
        } else {
            p = quant_s24_pick(x + 4 * g);
        }
        pos[g >> 1] |= (uint8_t)(p << (4 * (g & 1)));
        kept[2 * g] = x[4 * g + (p & 3)];
        kept[2 * g + 1] = x[4 * g + (p >> 2)];
    }
}

static void s24_q4_rows(const float *x, const uint8_t *keep, void *vy, int64_t n) {
    quant_block_s24_q4 *y = vy;
    for (int64_t i = 0; i < n / S24; i++, x += S24, keep = keep ? keep + S24 : NULL) {
        float kept[32];
        gather_kept(x, keep, kept, y[i].pos);
        float amax = 0.0f, max = 0.0f; /* the value of largest magnitude, first on ties */
        for (int k = 0; k < 32; k++)
            if (amax < fabsf(kept[k])) {
                amax = fabsf(kept[k]);
                max = kept[k];
            }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = core_fp32_to_fp16(d);
        for (int k = 0; k < 16; k++) {
            /* ggml's rounding: truncate x / d + 8.5; only the +8 end needs the clamp */
            const int q0 = (int8_t)(kept[k] * id + 8.5f);
            const int q1 = (int8_t)(kept[k + 16] * id + 8.5f);
            y[i].qs[k] = (uint8_t)((q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4));
        }
    }
}

static void s24_q8_rows(const float *x, const uint8_t *keep, void *vy, int64_t n) {
    quant_block_s24_q8 *y = vy;
    for (int64_t i = 0; i < n / S24; i++, x += S24, keep = keep ? keep + S24 : NULL) {
        float kept[32], amax = 0.0f;
        gather_kept(x, keep, kept, y[i].pos);
        for (int k = 0; k < 32; k++)
            amax = fmaxf(amax, fabsf(kept[k]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = core_fp32_to_fp16(d);
        for (int k = 0; k < 32; k++)
            y[i].qs[k] = (int8_t)roundf(kept[k] * id);
    }
}

static void quant_s24_q4(const float *x, void *vy, int64_t n) {
    s24_q4_rows(x, NULL, vy, n);
}

static void quant_s24_q8(const float *x, void *vy, int64_t n) {
    s24_q8_rows(x, NULL, vy, n);
}

bool quant_s24_quant_kept(uint32_t type, const float *x, const uint8_t *keep, void *dst,
                          int64_t n) {
    if (!quant_is_s24(type) || n % S24) return false;
    for (int64_t g = 0; g < n; g += 4)
        if (!!keep[g] + !!keep[g + 1] + !!keep[g + 2] + !!keep[g + 3] != 2) return false;
    if (type == QT_S24_Q4)
        s24_q4_rows(x, keep, dst, n);
    else
        s24_q8_rows(x, keep, dst, n);
    return true;
}

/* Signed code of kept value k: (q - 8) for S24_Q4, q for S24_Q8. */
static inline int code_q4(const quant_block_s24_q4 *b, int k) {
    return (k < 16 ? (b->qs[k] & 15) : (b->qs[k - 16] >> 4)) - 8;
}

static void dequant_s24_q4(const void *src, float *dst, int64_t n) {
    const quant_block_s24_q4 *x = src;
    memset(dst, 0, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n / S24; i++) {
        const float d = core_fp16_to_fp32(x[i].d);
        for (int k = 0; k < 32; k++)
            dst[i * S24 + quant_s24_col(x[i].pos, k)] = (float)code_q4(&x[i], k) * d;
    }
}

static void dequant_s24_q8(const void *src, float *dst, int64_t n) {
    const quant_block_s24_q8 *x = src;
    memset(dst, 0, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n / S24; i++) {
        const float d = core_fp16_to_fp32(x[i].d);
        for (int k = 0; k < 32; k++)
            dst[i * S24 + quant_s24_col(x[i].pos, k)] = (float)x[i].qs[k] * d;
    }
}

/* The spec's lane sum: hsum8's order, ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)). */
static float hsum8(const float a[8]) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* One dot product of a row of either S24 type with a Q8_0 row; code(b, k) is the signed weight
 * code of kept value k of block b. Lane l of half h takes group 8h + l (kept values 16h + 2l
 * and 16h + 2l + 1, both within activation block 2b + h). */
#define S24_DOT(name, block_t, code)                                                               \
    static float name(int64_t n, const void *vx, const void *vy) {                                 \
        const block_t *x = vx;                                                                     \
        const quant_block_q8_0 *y = vy;                                                            \
        float acc[8] = {0};                                                                        \
        for (int64_t b = 0; b < n / S24; b++) {                                                    \
            const float dw = core_fp16_to_fp32(x[b].d);                                            \
            for (int h = 0; h < 2; h++) {                                                          \
                const quant_block_q8_0 *yb = &y[2 * b + h];                                        \
                const float scale = dw * core_fp16_to_fp32(yb->d);                                 \
                for (int l = 0; l < 8; l++) {                                                      \
                    const int k = 16 * h + 2 * l;                                                  \
                    const int c0 = quant_s24_col(x[b].pos, k) - 32 * h;                            \
                    const int c1 = quant_s24_col(x[b].pos, k + 1) - 32 * h;                        \
                    const int isum =                                                               \
                        code(&x[b], k) * yb->qs[c0] + code(&x[b], k + 1) * yb->qs[c1];             \
                    acc[l] = fmaf((float)isum, scale, acc[l]);                                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        return hsum8(acc);                                                                         \
    }

static inline int code_q8(const quant_block_s24_q8 *b, int k) {
    return b->qs[k];
}

S24_DOT(dot_s24_q4, quant_block_s24_q4, code_q4)
S24_DOT(dot_s24_q8, quant_block_s24_q8, code_q8)

static const quant_traits k_s24[2] = {
    {.name = "s24_q4",
     .block_size = S24,
     .type_size = sizeof(quant_block_s24_q4),
     .supported = true,
     .dequant = dequant_s24_q4,
     .quant = quant_s24_q4,
     .vec_dot_type = QT_Q8_0,
     .vec_dot = dot_s24_q4},
    {.name = "s24_q8",
     .block_size = S24,
     .type_size = sizeof(quant_block_s24_q8),
     .supported = true,
     .dequant = dequant_s24_q8,
     .quant = quant_s24_q8,
     .vec_dot_type = QT_Q8_0,
     .vec_dot = dot_s24_q8},
};

const quant_traits *quant_s24_traits(uint32_t type) {
    if (type == QT_S24_Q4) return &k_s24[0];
    if (type == QT_S24_Q8) return &k_s24[1];
    return NULL;
}
