/* AVX2 + FMA + F16C versions of the kernels in cpu_vec.h. F16 stores round to nearest even
 * (_mm256_cvtps_ph with mode 0), as the scalar reference does. */
#include "cpu/cpu_vec.h"

#include "core/common.h"

#include <immintrin.h>

static void scale_f16(uint16_t *y, float s, int n) {
    const __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_mul_ps(v, vs), 0));
    }
    for (; i < n; i++) y[i] = core_fp32_to_fp16(core_fp16_to_fp32(y[i]) * s);
}

static void mad_f16(uint16_t *y, const uint16_t *x, float s, int n) {
    const __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vy = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        __m256 vx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        vy = _mm256_fmadd_ps(vx, vs, vy);
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(vy, 0));
    }
    for (; i < n; i++)
        y[i] = core_fp32_to_fp16(core_fp16_to_fp32(y[i]) + core_fp16_to_fp32(x[i]) * s);
}

static float hsum(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

static float dot_f32_f16(const float *q, const uint16_t *k, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8),
                               _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8))),
                               acc1);
    }
    float s = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += q[i] * core_fp16_to_fp32(k[i]);
    return s;
}

static void axpy_f16_f32(float *y, const uint16_t *x, float s, int n) {
    const __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vx, vs, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += s * core_fp16_to_fp32(x[i]);
}

/* 8 lanes of cpu_vec_expf: the same operations in the same order. */
static __m256 exp_avx2(__m256 x) {
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 absn = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(absn, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 p_hi = _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f));
    const __m256 p_lo = _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f));
    const __m256 j = _mm256_fmadd_ps(_mm256_fmadd_ps(p_hi, u, p_lo), u,
                                     _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 normal = _mm256_fmadd_ps(j, k, k);
    if (!_mm256_movemask_ps(big)) return normal;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 huge = _mm256_cmp_ps(absn, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    __m256 r = _mm256_blendv_ps(normal, scaled, big);
    return _mm256_blendv_ps(r, _mm256_mul_ps(s1, s1), huge);
}

static void swiglu(float *y, const float *g, const float *u, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
        const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        const float x = g[i];
        y[i] = (x / (1.0f + cpu_vec_expf(0.0f - x))) * u[i];
    }
}

static void kq_tile(const float *kt, const float *q, int hd, float *kq) {
    for (int j = 0; j < CPU_VEC_TILE; j += 16) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int d = 0; d < hd; d++) {
            const __m256 qd = _mm256_set1_ps(q[d]);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(kt + d * CPU_VEC_TILE + j), qd, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(kt + d * CPU_VEC_TILE + j + 8), qd, a1);
        }
        _mm256_storeu_ps(kq + j, a0);
        _mm256_storeu_ps(kq + j + 8, a1);
    }
}

static double softmax_tile(float *kq, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    double sum = 0.0;
    for (int j = 0; j < CPU_VEC_TILE; j += 8) {
        const __m256 v = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(kq + j), vm));
        _mm256_storeu_ps(kq + j, v);
        __m128 h = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        sum += (double)_mm_cvtss_f32(h);
    }
    return sum;
}

static void v_accum(float *acc, const float *p, const float *v, int hd) {
    for (int i = 0; i < hd; i += 8) {
        __m256 a = _mm256_loadu_ps(acc + i);
        for (int j = 0; j < CPU_VEC_TILE; j++)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(v + j * hd + i), _mm256_set1_ps(p[j]), a);
        _mm256_storeu_ps(acc + i, a);
    }
}

static const cpu_vec_kernels k_avx2 = {scale_f16, mad_f16,      dot_f32_f16, axpy_f16_f32,
                                       swiglu,    kq_tile,      softmax_tile, v_accum, NULL};

const cpu_vec_kernels *cpu_vec_kernels_avx2(void) { return &k_avx2; }
