/* The vector kernel tables of src/cpu/cpu_vec*.c (attention's F16 helpers, the tiled
 * attention kernels, SwiGLU): every table the processor can run against the AVX2 one.
 *  - AVX-512 must give the AVX2 table's bits for every function and length (the CPU path's
 *    output does not depend on the instruction set; Vulkan is held to the same bits).
 *  - The scalar table gives the same bits for the lane-wise functions (scale_f16, SwiGLU,
 *    kq_tile, softmax_tile, v_accum); its dot product and its unfused multiply-adds round
 *    differently and are held to a relative tolerance of 1e-5 of the sum of |terms|.
 * A processor without AVX2 (or without AVX-512) cannot run those tables: the test says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/common.h"
#include "cpu/cpu_kernels.h"
#include "cpu/cpu_vec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MAXN = 300, HD_MAX = 256 };

static float frand(uint64_t *s, float scale) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return scale * ((float)(int32_t)(*s >> 32) / 2147483648.0f);
}

static void fill_f32(uint64_t *s, float *x, int n, float scale) {
    for (int i = 0; i < n; i++) x[i] = frand(s, scale);
}

static void fill_f16(uint64_t *s, uint16_t *x, int n, float scale) {
    for (int i = 0; i < n; i++) x[i] = core_fp32_to_fp16(frand(s, scale));
}

static const int k_lens[] = {1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 64, 100, 128, 257, 300};
static const int k_hds[] = {8, 24, 64, 80, 128, 136, 256};

/* Compares table k with table ref. exact_all: every function bit for bit; otherwise the dot
 * product and the multiply-adds within tolerance. */
static void compare(const cpu_vec_kernels *ref, const cpu_vec_kernels *k, const char *name,
                    bool exact_all) {
    uint64_t seed = 99;
    static float a0[MAXN], a1[MAXN], g[MAXN], u[MAXN];
    static uint16_t h0[MAXN], h1[MAXN], x[MAXN];
    for (size_t it = 0; it < 8 * sizeof k_lens / sizeof k_lens[0]; it++) {
        const int n = k_lens[it % (sizeof k_lens / sizeof k_lens[0])];
        /* scale_f16: lane-wise */
        fill_f16(&seed, h0, n, 4.0f);
        memcpy(h1, h0, sizeof h0);
        ref->scale_f16(h0, 0.731f, n);
        k->scale_f16(h1, 0.731f, n);
        if (memcmp(h0, h1, (size_t)n * 2) != 0) fail_msg("%s scale_f16 n=%d", name, n);

        /* mad_f16, axpy_f16_f32 */
        fill_f16(&seed, h0, n, 4.0f);
        memcpy(h1, h0, sizeof h0);
        fill_f16(&seed, x, n, 4.0f);
        ref->mad_f16(h0, x, -0.37f, n);
        k->mad_f16(h1, x, -0.37f, n);
        fill_f32(&seed, a0, n, 3.0f);
        memcpy(a1, a0, sizeof a0);
        ref->axpy_f16_f32(a0, x, 1.9f, n);
        k->axpy_f16_f32(a1, x, 1.9f, n);
        for (int i = 0; i < n; i++) {
            const float m0 = core_fp16_to_fp32(h0[i]), m1 = core_fp16_to_fp32(h1[i]);
            const bool same = memcmp(&h0[i], &h1[i], 2) == 0 && memcmp(&a0[i], &a1[i], 4) == 0;
            if (exact_all && !same)
                fail_msg("%s mad_f16/axpy_f16_f32 n=%d i=%d: %a/%a vs %a/%a", name, n, i,
                         (double)m1, (double)a1[i], (double)m0, (double)a0[i]);
            /* one rounding of a product apart, then the f16 rounding */
            if (fabsf(m0 - m1) > 2e-3f * (fabsf(m0) + 4.0f) || fabsf(a0[i] - a1[i]) > 1e-5f * (fabsf(a0[i]) + 8.0f))
                fail_msg("%s mad_f16/axpy_f16_f32 n=%d i=%d out of tolerance", name, n, i);
        }

        /* dot_f32_f16 */
        fill_f32(&seed, a0, n, 2.0f);
        fill_f16(&seed, x, n, 2.0f);
        const float d0 = ref->dot_f32_f16(a0, x, n), d1 = k->dot_f32_f16(a0, x, n);
        double terms = 0.0;
        for (int i = 0; i < n; i++) terms += fabs((double)a0[i] * core_fp16_to_fp32(x[i]));
        if (exact_all ? memcmp(&d0, &d1, 4) != 0 : fabs((double)d0 - d1) > 1e-5 * terms)
            fail_msg("%s dot_f32_f16 n=%d: %a vs %a", name, n, (double)d1, (double)d0);

        /* swiglu: lane-wise, the same exp */
        fill_f32(&seed, g, n, 12.0f);
        fill_f32(&seed, u, n, 2.0f);
        if (n > 3) g[3] = 100.0f, g[2] = -100.0f; /* exp's wide-range branch */
        ref->swiglu(a0, g, u, n);
        k->swiglu(a1, g, u, n);
        if (memcmp(a0, a1, (size_t)n * 4) != 0) fail_msg("%s swiglu n=%d", name, n);
    }
    /* mad_f16 alone, many more times: a fused and an unfused multiply-add round to the same
     * f16 but for ~1 element in 10^4 */
    if (exact_all)
        for (int it = 0; it < 20000; it++) {
            const int n = 24; /* 16 + 8: both vector widths */
            fill_f16(&seed, h0, n, 4.0f);
            memcpy(h1, h0, sizeof h0);
            fill_f16(&seed, x, n, 4.0f);
            const float sc = frand(&seed, 3.0f);
            ref->mad_f16(h0, x, sc, n);
            k->mad_f16(h1, x, sc, n);
            if (memcmp(h0, h1, (size_t)n * 2) != 0) fail_msg("%s mad_f16 n=%d (rep %d)", name, n, it);
        }
    /* the tiled attention kernels over head sizes (multiples of 8) */
    static float kt[HD_MAX * CPU_VEC_TILE], v[CPU_VEC_TILE * HD_MAX], q[HD_MAX];
    static float kq0[CPU_VEC_TILE], kq1[CPU_VEC_TILE], acc0[HD_MAX], acc1[HD_MAX];
    for (size_t hi = 0; hi < sizeof k_hds / sizeof k_hds[0]; hi++) {
        const int hd = k_hds[hi];
        fill_f32(&seed, kt, hd * CPU_VEC_TILE, 1.0f);
        fill_f32(&seed, q, hd, 1.0f);
        ref->kq_tile(kt, q, hd, kq0);
        k->kq_tile(kt, q, hd, kq1);
        if (memcmp(kq0, kq1, sizeof kq0) != 0) fail_msg("%s kq_tile hd=%d", name, hd);
        kq0[5] = -INFINITY; /* a masked key */
        memcpy(kq1, kq0, sizeof kq0);
        const double s0 = ref->softmax_tile(kq0, 1.5f), s1 = k->softmax_tile(kq1, 1.5f);
        if (s0 != s1 || memcmp(kq0, kq1, sizeof kq0) != 0) fail_msg("%s softmax_tile hd=%d", name, hd);
        fill_f32(&seed, v, CPU_VEC_TILE * hd, 1.0f);
        fill_f32(&seed, acc0, hd, 1.0f);
        memcpy(acc1, acc0, sizeof acc0);
        ref->v_accum(acc0, kq0, v, hd);
        k->v_accum(acc1, kq0, v, hd);
        if (memcmp(acc0, acc1, (size_t)hd * 4) != 0) fail_msg("%s v_accum hd=%d", name, hd);
    }
}

static void test_avx512_equals_avx2(void **state) {
    (void)state;
    if (!cpu_kernels_get(CPU_KERN_AVX512)) {
        print_message("no AVX-512 on this processor: the AVX-512 vector kernels are not checked\n");
        skip();
    }
    assert_non_null(cpu_vec_kernels_avx512());
    compare(cpu_vec_kernels_avx2(), cpu_vec_kernels_avx512(), "avx512", true);
}

/* The fused decode attention loop (attn_chunk_f16) against the same loop composed from the
 * AVX2 kernels, as cpu_backend.c runs it without one: dot_f16 of the AVX2 kernel table,
 * scale_f16 and mad_f16 of the AVX2 vector table, libm's expf. Random paged caches (pages in
 * shuffled order, kv_dim wider than the head), head sizes 64 and 128, chunks not starting at
 * 0, and scores that rise key after key (the rescaling branch every time) or fall. */
static void composed_chunk(const cpu_kernels *kt, const cpu_vec_kernels *ak, const uint16_t *q16,
                           const uint16_t *kc, const uint16_t *vc, const uint32_t *pages,
                           uint32_t page, uint64_t kv_dim, uint32_t j0, uint32_t j1, int hd,
                           float scale, uint16_t *acc16, float *m_out, float *s_out) {
    memset(acc16, 0, (size_t)hd * sizeof *acc16);
    float S = 0.0f, M = -INFINITY;
    for (uint32_t j = j0; j < j1; j++) {
        const uint64_t row = ((uint64_t)pages[j / page] * page + j % page) * kv_dim;
        const float sc = kt->dot_f16(kc + row, q16, hd) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (sc > M) {
            const float m_old = M;
            M = sc;
            ms = expf(m_old - M);
            ak->scale_f16(acc16, ms, hd);
        } else {
            vs = expf(sc - M);
        }
        ak->mad_f16(acc16, vc + row, vs, hd);
        S = fmaf(S, ms, vs);
    }
    *m_out = M;
    *s_out = S;
}

static void test_attn_chunk_fused(void **state) {
    (void)state;
    const cpu_kernels *kt = cpu_kernels_get(CPU_KERN_AVX2);
    if (!cpu_kernels_get(CPU_KERN_AVX512) || !kt) {
        print_message("no AVX-512 on this processor: the fused attention loop is not checked\n");
        skip();
    }
    const cpu_vec_kernels *ak = cpu_vec_kernels_avx2(), *fk = cpu_vec_kernels_avx512();
    assert_non_null(fk->attn_chunk_f16);
    enum { PAGE = 16, NPAGE = 40, KVD = 160 };
    static uint16_t kc[NPAGE * PAGE * KVD], vc[NPAGE * PAGE * KVD], q16[128], a0[128], a1[128];
    uint32_t pages[NPAGE];
    uint64_t seed = 5;
    int checked = 0;
    for (int rep = 0; rep < 24; rep++) {
        const int hd = rep % 2 ? 128 : 64;
        for (uint32_t i = 0; i < NPAGE; i++) pages[i] = i;
        for (uint32_t i = NPAGE - 1; i > 0; i--) { /* a shuffled block table */
            const uint32_t k = (uint32_t)((frand(&seed, 1.0f) + 1.0f) * 1000.0f) % (i + 1);
            const uint32_t t = pages[i];
            pages[i] = pages[k];
            pages[k] = t;
        }
        fill_f16(&seed, kc, NPAGE * PAGE * KVD, 2.0f);
        fill_f16(&seed, vc, NPAGE * PAGE * KVD, 2.0f);
        fill_f16(&seed, q16, hd, 2.0f);
        const uint32_t n = NPAGE * PAGE, j0 = (uint32_t)(rep * 37) % 100, j1 = n - (uint32_t)(rep * 11) % 50;
        if (rep % 3 == 2) /* scores rising along the keys: the max moves at every key */
            for (uint32_t j = 0; j < n; j++) {
                const uint64_t row = ((uint64_t)pages[j / PAGE] * PAGE + j % PAGE) * KVD + 16;
                for (int d = 0; d < hd; d++)
                    kc[row + d] = core_fp32_to_fp16(core_fp16_to_fp32(q16[d]) * (0.001f * (float)j));
            }
        float m0, s0, m1, s1;
        const float scale = 1.0f / sqrtf((float)hd);
        composed_chunk(kt, ak, q16, kc + 16, vc + 16, pages, PAGE, KVD, j0, j1, hd, scale, a0, &m0, &s0);
        assert_true(fk->attn_chunk_f16(q16, kc + 16, vc + 16, pages, PAGE, KVD, j0, j1, hd, scale,
                                       a1, &m1, &s1));
        if (memcmp(a0, a1, (size_t)hd * 2) != 0 || memcmp(&m0, &m1, 4) != 0 || memcmp(&s0, &s1, 4) != 0)
            fail_msg("attn_chunk_f16 hd=%d keys [%u, %u) rep %d: not the composed loop's bits", hd,
                     j0, j1, rep);
        checked++;
    }
    /* a head size it has no loop for: it says so, the caller runs its own */
    assert_false(fk->attn_chunk_f16(q16, kc, vc, pages, PAGE, KVD, 0, 4, 80, 0.1f, a1, &(float){0}, &(float){0}));
    print_message("%d chunks equal the composed AVX2 loop bit for bit\n", checked);
}

static void test_avx2_against_scalar(void **state) {
    (void)state;
    if (!cpu_kernels_get(CPU_KERN_AVX2)) {
        print_message("no AVX2 on this processor: the AVX2 vector kernels are not checked\n");
        skip();
    }
    compare(cpu_vec_kernels_get(false), cpu_vec_kernels_get(true), "avx2", false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_avx512_equals_avx2),
        cmocka_unit_test(test_attn_chunk_fused),
        cmocka_unit_test(test_avx2_against_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
