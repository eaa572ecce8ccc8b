/* Scalar vector kernels (see cpu_vec.h); the reference for the AVX2 ones. */
#include "cpu/cpu_vec.h"

#include "core/common.h"

#include <math.h>
#include <string.h>

static void scale_f16(uint16_t *y, float s, int n) {
    for (int i = 0; i < n; i++) y[i] = core_fp32_to_fp16(core_fp16_to_fp32(y[i]) * s);
}

static void mad_f16(uint16_t *y, const uint16_t *x, float s, int n) {
    for (int i = 0; i < n; i++)
        y[i] = core_fp32_to_fp16(core_fp16_to_fp32(y[i]) + core_fp16_to_fp32(x[i]) * s);
}

static float dot_f32_f16(const float *q, const uint16_t *k, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += q[i] * core_fp16_to_fp32(k[i]);
    return s;
}

static void axpy_f16_f32(float *y, const uint16_t *x, float s, int n) {
    for (int i = 0; i < n; i++) y[i] += s * core_fp16_to_fp32(x[i]);
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* exp(x) as Arm's optimized-routines vector expf computes it (max error ~1.9 ulp):
 * n = round(x / ln 2) by adding 1.5 * 2^23; r = x - n ln2 (ln2 split in two parts);
 * exp(r) - 1 ~ r * (c0 + c1 r + (c2 + c3 r) r^2 + (c4 + c5 r) r^4) evaluated as below;
 * result = 2^n (1 + p), with 2^n split in two factors when |n| > 126 so it cannot
 * overflow or flush early. One scalar lane of cpu_vec_avx2.c's exp_avx2. */
float cpu_vec_expf(float x) {
    const float shift = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, shift);
    const float n = z - shift;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f_bits(z) << 23;
    const float k = bits_f(e + f_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                              fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, 0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f(g + 0x7f000000u);
    const float s2 = bits_f(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

static void swiglu(float *y, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        const float x = g[i];
        y[i] = (x / (1.0f + cpu_vec_expf(0.0f - x))) * u[i];
    }
}

static void kq_tile(const float *kt, const float *q, int hd, float *kq) {
    for (int j = 0; j < CPU_VEC_TILE; j++) {
        float acc = 0.0f;
        for (int d = 0; d < hd; d++) acc = fmaf(kt[d * CPU_VEC_TILE + j], q[d], acc);
        kq[j] = acc;
    }
}

double cpu_vec_hsum8(const float *v) {
    /* the lane order of an AVX2 horizontal add: (0+4)+(2+6) + (1+5)+(3+7) */
    const float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
    return (double)((a0 + a2) + (a1 + a3));
}

static double softmax_tile(float *kq, float m) {
    double sum = 0.0;
    for (int j = 0; j < CPU_VEC_TILE; j += 8) {
        for (int l = 0; l < 8; l++) kq[j + l] = cpu_vec_expf(kq[j + l] - m);
        sum += cpu_vec_hsum8(kq + j);
    }
    return sum;
}

static void v_accum(float *acc, const float *p, const float *v, int hd) {
    for (int i = 0; i < hd; i++) {
        float a = acc[i];
        for (int j = 0; j < CPU_VEC_TILE; j++) a = fmaf(v[j * hd + i], p[j], a);
        acc[i] = a;
    }
}

static const cpu_vec_kernels k_scalar = {scale_f16, mad_f16,      dot_f32_f16, axpy_f16_f32,
                                         swiglu,    kq_tile,      softmax_tile, v_accum, NULL};

const cpu_vec_kernels *cpu_vec_kernels_get(bool avx2) {
#if defined(__x86_64__)
    if (avx2) return cpu_vec_kernels_avx2();
#endif
    return &k_scalar;
}
