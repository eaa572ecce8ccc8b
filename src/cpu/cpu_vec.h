/* Vector kernels beyond matmul (cpu_kernels.h): attention's F16 helpers and SwiGLU.
 *
 * vkllm's CPU path gives the same tokens as llama.cpp's, and greedy decoding is sensitive to
 * the last bit: an F16 rounding or a Q8 activation rounding that flips early changes the
 * text a few dozen tokens later. So these follow the arithmetic of llama.cpp's CPU backend:
 *  - attention: the weighted V sum of small batches kept in an F16 accumulator, as its flash
 *    attention does; F32 x F16 dot products for large batches (its tiled path);
 *  - SiLU with the vectorised expf of Arm's optimized-routines (polynomial of degree 5 on
 *    the reduced argument, 2^n by exponent arithmetic), which ggml uses on every SIMD ISA.
 * The scalar versions do the same operations lane by lane with fmaf, so every ISA gives the
 * same bits. Scalar here, AVX2 in cpu_vec_avx2.c, AVX-512 in cpu_vec_avx512.c. */
#ifndef VKLLM_CPU_VEC_H
#define VKLLM_CPU_VEC_H

#include <stdbool.h>
#include <stdint.h>

#define CPU_VEC_TILE 64

typedef struct cpu_vec_kernels {
    /* y[i] = f16(f32(y[i]) * s) */
    void (*scale_f16)(uint16_t *y, float s, int n);
    /* y[i] = f16(f32(y[i]) + f32(x[i]) * s) */
    void (*mad_f16)(uint16_t *y, const uint16_t *x, float s, int n);
    /* sum q[i] * f32(k[i]) */
    float (*dot_f32_f16)(const float *q, const uint16_t *k, int n);
    /* y[i] += s * f32(x[i]) */
    void (*axpy_f16_f32)(float *y, const uint16_t *x, float s, int n);
    /* y[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)) */
    void (*swiglu)(float *y, const float *g, const float *u, int n);
    /* Tiled attention over CPU_VEC_TILE key positions (the large-batch path):
     * kq[j] = sum_d kt[d * TILE + j] * q[d], a sequential FMA chain over d from 0;
     * softmax_tile: kq[j] = exp(kq[j] - m) for all TILE entries (-inf gives 0), returns the
     *   sum, added 8 lanes at a time in double;
     * v_accum: acc[i] = acc[i] + sum_j v[j * hd + i] * p[j], a sequential FMA chain over j.
     * hd is a multiple of 8. */
    void (*kq_tile)(const float *kt, const float *q, int hd, float *kq);
    double (*softmax_tile)(float *kq, float m);
    void (*v_accum)(float *acc, const float *p, const float *v, int hd);
    /* The decode attention loop of one query head over keys [j0, j1) of a paged F16 cache
     * (key j's K and V rows at (pages[j / page] * page + j % page) * kv_dim halves from kc, vc),
     * with exactly the operations of cpu_backend.c's attn_chunk_f16 (dot_f16 of the AVX2
     * kernel table, scale_f16, mad_f16, libm's expf): acc16 (hd halves) gets the F16 weighted
     * V sum, *m the running max, *s the sum. NULL, or false returned, where a table has no
     * such loop for this hd: the caller runs its own. */
    bool (*attn_chunk_f16)(const uint16_t *q16, const uint16_t *kc, const uint16_t *vc,
                           const uint32_t *pages, uint32_t page, uint64_t kv_dim, uint32_t j0,
                           uint32_t j1, int hd, float scale, uint16_t *acc16, float *m, float *s);
} cpu_vec_kernels;

/* exp(x) computed exactly as the SIMD versions compute each lane. */
float cpu_vec_expf(float x);

/* Sum of 8 floats in the lane order of an AVX2 horizontal add, widened to double. */
double cpu_vec_hsum8(const float *v);

/* avx2: use the AVX2 versions (caller checked the processor has AVX2, FMA and F16C). */
const cpu_vec_kernels *cpu_vec_kernels_get(bool avx2);
const cpu_vec_kernels *cpu_vec_kernels_avx2(void);
/* The AVX-512 versions (the AVX2 ones' bits), or NULL in a build without them; only for a
 * processor with AVX-512 F, BW and VL. */
const cpu_vec_kernels *cpu_vec_kernels_avx512(void);

#endif
