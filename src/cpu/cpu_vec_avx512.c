/* AVX-512 versions of the kernels in cpu_vec.h, with the AVX2 versions' bits: where AVX2 keeps
 * two 8-lane accumulators (dot_f32_f16) one 512-bit register holds both; the others are
 * lane-wise chains that only get wider. The scalar tails of the AVX2 kernels (elements past
 * the last full 8) are kept as they are, since they round differently (no fused multiply-add).
 * softmax_tile and swiglu keep AVX2's vector exp and are lent from that table. Compiled with
 * the AVX-512 flags; cpu_ops.c takes this table only with an AVX-512 kernel table. */
#include "cpu/cpu_vec.h"
#include "cpu/cpu_kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__) && \
    defined(__F16C__)

#include "core/common.h"

#include <immintrin.h>
#include <math.h>

static inline __m256 ld_f16_8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static void scale_f16(uint16_t *y, float s, int n) {
    const __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_mul_ps(load_f16x16(y + i), vs), 0));
    for (; i < n; i++) y[i] = core_fp32_to_fp16(core_fp16_to_fp32(y[i]) * s);
}

/* Fused for the elements AVX2 does 8 at a time, unfused for its scalar tail. */
static void mad_f16(uint16_t *y, const uint16_t *x, float s, int n) {
    const __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i),
                            _mm512_cvtps_ph(_mm512_fmadd_ps(load_f16x16(x + i), vs, load_f16x16(y + i)), 0));
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_fmadd_ps(ld_f16_8(x + i), _mm512_castps512_ps256(vs),
                                                         ld_f16_8(y + i)), 0));
    for (; i < n; i++)
        y[i] = core_fp32_to_fp16(core_fp16_to_fp32(y[i]) + core_fp16_to_fp32(x[i]) * s);
}

/* AVX2: acc0 over q[i..i+7], acc1 over q[i+8..i+15]; here acc = acc0 | acc1. */
static float dot_f32_f16(const float *q, const uint16_t *k, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_f16x16(k + i), acc);
    float s = hsum8(_mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)));
    for (; i < n; i++) s += q[i] * core_fp16_to_fp32(k[i]);
    return s;
}

static void axpy_f16_f32(float *y, const uint16_t *x, float s, int n) {
    const __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(load_f16x16(x + i), vs, _mm512_loadu_ps(y + i)));
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(ld_f16_8(x + i), _mm512_castps512_ps256(vs),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += s * core_fp16_to_fp32(x[i]);
}

static void swiglu(float *y, const float *g, const float *u, int n) {
    cpu_vec_kernels_avx2()->swiglu(y, g, u, n);
}

static double softmax_tile(float *kq, float m) { return cpu_vec_kernels_avx2()->softmax_tile(kq, m); }

/* Four 16-lane chains over d at once: the tile's 64 keys. */
static void kq_tile(const float *kt, const float *q, int hd, float *kq) {
    __m512 a[CPU_VEC_TILE / 16];
    for (int j = 0; j < CPU_VEC_TILE / 16; j++) a[j] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const __m512 qd = _mm512_set1_ps(q[d]);
        for (int j = 0; j < CPU_VEC_TILE / 16; j++)
            a[j] = _mm512_fmadd_ps(_mm512_loadu_ps(kt + d * CPU_VEC_TILE + 16 * j), qd, a[j]);
    }
    for (int j = 0; j < CPU_VEC_TILE / 16; j++) _mm512_storeu_ps(kq + 16 * j, a[j]);
}

/* Up to 8 chains of 16 lanes over j at once (the head in registers); an 8-lane chain for an
 * odd last 8 elements. */
static void v_accum(float *acc, const float *p, const float *v, int hd) {
    int i = 0;
    while (hd - i >= 16) {
        const int nb = (hd - i) / 16 < 8 ? (hd - i) / 16 : 8;
        __m512 a[8];
        for (int b = 0; b < nb; b++) a[b] = _mm512_loadu_ps(acc + i + 16 * b);
        for (int j = 0; j < CPU_VEC_TILE; j++) {
            const __m512 pj = _mm512_set1_ps(p[j]);
            for (int b = 0; b < nb; b++)
                a[b] = _mm512_fmadd_ps(_mm512_loadu_ps(v + j * hd + i + 16 * b), pj, a[b]);
        }
        for (int b = 0; b < nb; b++) _mm512_storeu_ps(acc + i + 16 * b, a[b]);
        i += 16 * nb;
    }
    for (; i < hd; i += 8) {
        __m256 a = _mm256_loadu_ps(acc + i);
        for (int j = 0; j < CPU_VEC_TILE; j++)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(v + j * hd + i), _mm256_set1_ps(p[j]), a);
        _mm256_storeu_ps(acc + i, a);
    }
}

/* The decode attention loop with the accumulator in registers: NV vectors of 16 lanes, each
 * value rounded to F16 after every operation as the in-memory accumulator is, so the bits are
 * those of scale_f16 / mad_f16 on acc16; Q converted once instead of at every key. */
static inline __m512 round_f16(__m512 x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static inline __attribute__((always_inline)) void attn_loop(
    int NV, const uint16_t *q16, const uint16_t *kc, const uint16_t *vc, const uint32_t *pages,
    uint32_t page, uint64_t kv_dim, uint32_t j0, uint32_t j1, float scale, uint16_t *acc16,
    float *m_out, float *s_out) {
    __m512 q[8], acc[8];
    for (int b = 0; b < NV; b++) {
        q[b] = load_f16x16(q16 + 16 * b);
        acc[b] = _mm512_setzero_ps();
    }
    float S = 0.0f, M = -INFINITY;
    /* one block-table lookup per page, not a division per key */
    uint32_t j = j0, page_end = j0;
    uint64_t row = 0;
    for (; j < j1; j++, row += kv_dim) {
        if (j == page_end) {
            row = ((uint64_t)pages[j / page] * page + j % page) * kv_dim;
            page_end = (j / page + 1) * page;
        }
        const uint16_t *k = kc + row, *v = vc + row;
        /* the AVX2 dot_f16: accumulators 0|1 over elements 32i..32i+15, 2|3 over the next 16 */
        __m512 s01 = _mm512_setzero_ps(), s23 = _mm512_setzero_ps();
        for (int b = 0; b < NV; b += 2) {
            s01 = _mm512_fmadd_ps(load_f16x16(k + 16 * b), q[b], s01);
            s23 = _mm512_fmadd_ps(load_f16x16(k + 16 * b + 16), q[b + 1], s23);
        }
        const float s = reduce_pairs(s01, s23) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            const __m512 vm = _mm512_set1_ps(ms);
            for (int b = 0; b < NV; b++) acc[b] = round_f16(_mm512_mul_ps(acc[b], vm));
        } else {
            vs = expf(s - M);
        }
        const __m512 vv = _mm512_set1_ps(vs);
        for (int b = 0; b < NV; b++) acc[b] = round_f16(_mm512_fmadd_ps(load_f16x16(v + 16 * b), vv, acc[b]));
        S = fmaf(S, ms, vs);
    }
    for (int b = 0; b < NV; b++)
        _mm256_storeu_si256((__m256i *)(acc16 + 16 * b), _mm512_cvtps_ph(acc[b], _MM_FROUND_TO_NEAREST_INT));
    *m_out = M;
    *s_out = S;
}

static bool attn_chunk_f16(const uint16_t *q16, const uint16_t *kc, const uint16_t *vc,
                           const uint32_t *pages, uint32_t page, uint64_t kv_dim, uint32_t j0,
                           uint32_t j1, int hd, float scale, uint16_t *acc16, float *m, float *s) {
    switch (hd) { /* multiples of 32 (dot_f16 has no tail then), registers for both */
    case 64: attn_loop(4, q16, kc, vc, pages, page, kv_dim, j0, j1, scale, acc16, m, s); return true;
    case 128: attn_loop(8, q16, kc, vc, pages, page, kv_dim, j0, j1, scale, acc16, m, s); return true;
    default: return false;
    }
}

static const cpu_vec_kernels k_avx512 = {scale_f16, mad_f16,      dot_f32_f16, axpy_f16_f32,
                                         swiglu,    kq_tile,      softmax_tile, v_accum,
                                         attn_chunk_f16};

const cpu_vec_kernels *cpu_vec_kernels_avx512(void) { return &k_avx512; }

#else

const cpu_vec_kernels *cpu_vec_kernels_avx512(void) { return NULL; }

#endif
