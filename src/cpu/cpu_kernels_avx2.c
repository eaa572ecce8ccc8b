/* AVX2 + FMA + F16C kernels (this file is compiled with -mavx2 -mfma -mf16c; cpu_kernels.c
 * only hands its table out after cpuid says the processor has them).
 *
 * What must hold, and why the code looks the way it does:
 *  - Quantizers give the same bytes as the reference in src/core/quant.c.
 *  - Dot products of the 32-element formats reproduce llama.cpp's x86 AVX2 arithmetic
 *    (ggml-cpu/arch/x86/quants.c, and llamafile's tinyBLAS for Q8_0 prefill, which does the
 *    same per output): per (row, token) one 8-lane float accumulator; per block the lanes'
 *    integer sums of 4 products are converted to float and fused-multiply-added with the
 *    float product d_w * d_x; at the end the lanes are summed as hsum8 does, plus for
 *    Q4_1/Q5_1 a scalar fused sum of m_w * s_x over blocks. Any other order would change the
 *    last bits and, sooner or later, a sampled token.
 *    The K formats likewise follow ggml's AVX2 vec_dot (see cpu_matmul_k_avx2.c); F16 and
 *    F32 rows its four-accumulator vec_dot.
 *  - The matmul reuses each unpacked weight block across a tile of tokens and each
 *    activation block across a tile of rows (register blocking), which keeps the per-output
 *    arithmetic above unchanged: only the loops around it are reordered.
 * This file holds the quantizers, the float-row helpers and the table; the matmul is in
 * cpu_matmul_avx2.c (32-element formats, floats) and cpu_matmul_k_avx2.c (K formats).
 */
#include "cpu/cpu_kernels_avx2.h"
#include "cpu/cpu_kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "core/common.h"
#include "core/quant_blocks.h"

#include <math.h>
#include <string.h>

/* Four int32 vectors (32 values, in order) -> 32 int8 with saturation. The packs work per
 * 128-bit half, so the result comes out in 4-byte groups 0,2,4,6,1,3,5,7 and is permuted
 * back. */
INLINE __m256i pack_i32x32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 ... */
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* ---- activation quantizers ---------------------------------------------------------------- */

/* One 32-element block: llama.cpp x86 semantics (see quant.c). Returns the sum of the codes. */
INLINE int quant_block32(const float *x, int8_t *qs, float *d_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    *d_out = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32(q[0], q[1], q[2], q[3]));
    return hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

static void quant_row_q8_0(const float *x, void *vy, int64_t n) {
    quant_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QUANT_QK; i++) {
        float d;
        quant_block32(x + i * QUANT_QK, y[i].qs, &d);
        y[i].d = f2h(d);
    }
}

static void quant_row_q8_1(const float *x, void *vy, int64_t n) {
    quant_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QUANT_QK; i++) {
        float d;
        const int sum = quant_block32(x + i * QUANT_QK, y[i].qs, &d);
        y[i].d = f2h(d);
        y[i].s = f2h(d * (float)sum);
    }
}

/* ggml's quantize_row_q8_K_ref: scale from the signed value of largest magnitude (the first
 * one on ties), codes rounded half to even, sums of 16. */
static void quant_row_q8_K(const float *x, void *vy, int64_t n) {
    quant_block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QUANT_QK_K; i++, x += QUANT_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QUANT_QK_K; k += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = amax;
        for (int j = 0; j < QUANT_QK_K; j++)
            if (x[j] == amax || x[j] == -amax) {
                max = x[j];
                break;
            }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i hi = _mm256_set1_epi32(127);
        for (int g = 0; g < QUANT_QK_K / 32; g++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), is);
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(
                                            v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
                                        hi);
            }
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), pack_i32x32(q[0], q[1], q[2], q[3]));
            y[i].bsums[2 * g] = (int16_t)hsum_i32(_mm256_add_epi32(q[0], q[1]));
            y[i].bsums[2 * g + 1] = (int16_t)hsum_i32(_mm256_add_epi32(q[2], q[3]));
        }
        y[i].d = 1.0f / iscale;
    }
}

static void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = f2h(x[i]);
}

static void fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++)
        y[i] = h2f(x[i]);
}

/* Same bits as core_fp32_to_bf16: round to nearest even, NaN kept quiet. */
static void fp32_to_bf16_row(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * k));
            const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            const __m256i rounded =
                _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
            const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
            r[k] = _mm256_blendv_epi8(rounded, quiet, nan);
        }
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++)
        y[i] = core_fp32_to_bf16(x[i]);
}

void cpu_avx2_quantize_row(quant_type type, const float *x, void *y, int64_t n) {
    switch (type) {
    case QT_Q8_0:
        quant_row_q8_0(x, y, n);
        break;
    case QT_Q8_1:
        quant_row_q8_1(x, y, n);
        break;
    case QT_Q8_K:
        quant_row_q8_K(x, y, n);
        break;
    case QT_F16:
        fp32_to_fp16_row(x, y, n);
        break;
    case QT_BF16:
        fp32_to_bf16_row(x, y, n);
        break;
    case QT_F32:
        memcpy(y, x, (size_t)n * sizeof(float));
        break;
    default:
        quant_traits_of(type)->quant(x, y, n);
        break;
    }
}

/* ---- float rows ----------------------------------------------------------------------------- */

/* ggml's F32/F16 dot on AVX: four accumulators over steps of 32, reduced (0+2, 1+3, 0+1),
 * halves added, two hadds; the tail added one product at a time. */
INLINE float reduce4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
    s0 = _mm256_add_ps(s0, s1);
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

float cpu_avx2_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n) {
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32)
        for (int k = 0; k < 4; k++) {
            const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8 * k)));
            const __m256 y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8 * k)));
            s[k] = _mm256_fmadd_ps(x, y, s[k]);
        }
    double sum = reduce4(s[0], s[1], s[2], s[3]); /* ggml keeps the tail sum in double */
    for (int64_t i = np; i < n; i++)
        sum += (double)(h2f(a[i]) * h2f(b[i]));
    return (float)sum;
}

float cpu_avx2_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32)
        for (int k = 0; k < 4; k++)
            s[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * k), _mm256_loadu_ps(b + i + 8 * k),
                                   s[k]);
    float sum = reduce4(s[0], s[1], s[2], s[3]);
    for (int64_t i = np; i < n; i++)
        sum = fmaf(a[i], b[i], sum); /* ggml's tail, contracted */
    return sum;
}

static float tb_hsum(__m256 x) {
    __m128 v = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

float cpu_avx2_dot_f32_tb(const float *a, const float *b, int64_t n) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8)
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s);
    return tb_hsum(s);
}

float cpu_avx2_dot_f16_tb(const uint16_t *a, const uint16_t *b, int64_t n) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8)
        s = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), s);
    return tb_hsum(s);
}

/* axpy rounds the product before the add, like the scalar reference, so every ISA and
 * compiler gives the same bits (clang contracts a*b+c within one expression by default, so
 * the scalar tails keep the product in its own statement). */
static void avx2_axpy_f16(float *y, const uint16_t *x, float s, int64_t n) {
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(sv, xv)));
    }
    for (; i < n; i++) {
        const float p = s * h2f(x[i]); /* a separate statement: never contracted to an FMA */
        y[i] += p;
    }
}

static void avx2_axpy_f32(float *y, const float *x, float s, int64_t n) {
    const __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i),
                                              _mm256_mul_ps(sv, _mm256_loadu_ps(x + i))));
    for (; i < n; i++) {
        const float p = s * x[i];
        y[i] += p;
    }
}

float cpu_avx2_dot_bf16(const uint16_t *a, const uint16_t *b, int64_t n) {
    __m256 s[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; k++) {
            const __m256i xa =
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(a + i + 8 * k)));
            const __m256i xb =
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(b + i + 8 * k)));
            s[k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(xa, 16)),
                                   _mm256_castsi256_ps(_mm256_slli_epi32(xb, 16)), s[k]);
        }
    double sum = hsum8(_mm256_add_ps(s[0], s[1]));
    for (; i < n; i++)
        sum += (double)(core_bf16_to_fp32(a[i]) * core_bf16_to_fp32(b[i]));
    return (float)sum;
}

static const cpu_kernels k_avx2 = {
    .isa = CPU_KERN_AVX2,
    .name = "avx2",
    .quantize_row = cpu_avx2_quantize_row,
    .matmul = cpu_avx2_matmul,
    .s24_quads = true,
    .dot_f16 = cpu_avx2_dot_f16,
    .axpy_f16 = avx2_axpy_f16,
    .fp32_to_fp16 = fp32_to_fp16_row,
    .fp16_to_fp32 = fp16_to_fp32_row,
    .dot_f32 = cpu_avx2_dot_f32,
    .dot_f32_tb = cpu_avx2_dot_f32_tb,
    .dot_f16_tb = cpu_avx2_dot_f16_tb,
    .axpy_f32 = avx2_axpy_f32,
};

const cpu_kernels *cpu_kernels_avx2_table(void);
const cpu_kernels *cpu_kernels_avx2_table(void) {
    return &k_avx2;
}

#else /* built without AVX2: the table does not exist */

const cpu_kernels *cpu_kernels_avx2_table(void);
const cpu_kernels *cpu_kernels_avx2_table(void) {
    return NULL;
}

#endif
