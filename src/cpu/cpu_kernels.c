/* Kernel tables and their selection: the scalar table (plain loops over the reference code of
 * src/core/quant.c) and the choice of the best table the processor supports. The SIMD tables
 * live in cpu_kernels_<isa>.c, each compiled with its own instruction-set flags; this file is
 * compiled for the baseline, so it must not use any SIMD intrinsics itself.
 */
#include "cpu/cpu_kernels.h"

#include <math.h>

#include "core/common.h"

#include <string.h>

/* Each SIMD file defines its getter; it returns NULL when the file was built without its
 * instruction set (another architecture, an old compiler). */
const cpu_kernels *cpu_kernels_avx2_table(void);
const cpu_kernels *cpu_kernels_avx512_table(bool vnni);

/* ---- scalar ------------------------------------------------------------------------------- */

static void ref_quantize_row(quant_type type, const float *x, void *y, int64_t n) {
    quant_traits_of(type)->quant(x, y, n);
}

static void ref_matmul(const cpu_matmul_args *a) {
    const quant_dot_fn dot = quant_traits_of(a->w_type)->vec_dot;
    const uint8_t *w = a->w, *x = a->x;
    for (int64_t t = 0; t < a->n_tokens; t++)
        for (int64_t r = a->r0; r < a->r1; r++)
            a->y[t * a->y_stride + r] =
                dot(a->n_in, w + (size_t)r * a->w_row_bytes, x + (size_t)t * a->x_row_bytes);
}

static float ref_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float p = core_fp16_to_fp32(a[i]) * core_fp16_to_fp32(b[i]);
        s += p;
    }
    return s;
}

/* The product in its own statement: clang would otherwise be free to fuse it with the add,
 * and every table must give the same bits here. */
static void ref_axpy_f16(float *y, const uint16_t *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float p = s * core_fp16_to_fp32(x[i]);
        y[i] += p;
    }
}

static void ref_fp32_to_fp16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = core_fp32_to_fp16(x[i]);
}

static void ref_fp16_to_fp32(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = core_fp16_to_fp32(x[i]);
}

static float ref_dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float p = a[i] * b[i];
        s += p;
    }
    return s;
}

static void ref_axpy_f32(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float p = s * x[i];
        y[i] += p;
    }
}

/* tinyBLAS's horizontal sum of its 8 lanes: halves, then pairs, then the last two. */
static float tb_hsum8(const float *v) {
    float s[4];
    for (int i = 0; i < 4; i++)
        s[i] = v[i + 4] + v[i];
    const float a = s[0] + s[2], b = s[1] + s[3];
    return a + b;
}

static float ref_dot_f32_tb(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
    return tb_hsum8(acc);
}

static float ref_dot_f16_tb(const uint16_t *a, const uint16_t *b, int64_t n) {
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] = fmaf(core_fp16_to_fp32(a[i + l]), core_fp16_to_fp32(b[i + l]), acc[l]);
    return tb_hsum8(acc);
}

static const cpu_kernels k_scalar = {
    .isa = CPU_KERN_SCALAR,
    .name = "scalar",
    .quantize_row = ref_quantize_row,
    .matmul = ref_matmul,
    .dot_f16 = ref_dot_f16,
    .axpy_f16 = ref_axpy_f16,
    .fp32_to_fp16 = ref_fp32_to_fp16,
    .fp16_to_fp32 = ref_fp16_to_fp32,
    .dot_f32 = ref_dot_f32,
    .dot_f32_tb = ref_dot_f32_tb,
    .dot_f16_tb = ref_dot_f16_tb,
    .axpy_f32 = ref_axpy_f32,
};

/* ---- selection ---------------------------------------------------------------------------- */

static bool has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* F16C has no __builtin_cpu_supports name on older compilers; every processor with AVX2
     * and FMA (Haswell, Zen and later) has it. */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

/* The AVX-512 tables use AVX2 functions too. libgcc's cpu model also checks (XGETBV) that the
 * OS saves the 512-bit register state before it reports any AVX-512 feature. */
static bool has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return false;
#endif
}

static bool has_avx512vnni(void) {
#if defined(__x86_64__) || defined(__i386__)
    return has_avx512() && __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

const cpu_kernels *cpu_kernels_get(cpu_kern_isa isa) {
    switch (isa) {
    case CPU_KERN_SCALAR:
        return &k_scalar;
    case CPU_KERN_AVX2:
        return has_avx2() ? cpu_kernels_avx2_table() : NULL;
    case CPU_KERN_AVX512:
        return has_avx512() ? cpu_kernels_avx512_table(false) : NULL;
    case CPU_KERN_AVX512VNNI:
        return has_avx512vnni() ? cpu_kernels_avx512_table(true) : NULL;
    case CPU_KERN_BEST:
        for (int i = CPU_KERN_COUNT - 1; i > CPU_KERN_SCALAR; i--) {
            const cpu_kernels *k = cpu_kernels_get((cpu_kern_isa)i);
            if (k) return k;
        }
        return &k_scalar;
    default:
        return NULL;
    }
}

static const char *const k_isa_names[CPU_KERN_COUNT] = {"scalar", "avx2", "avx512", "avx512vnni"};

const char *cpu_kern_isa_name(cpu_kern_isa isa) {
    return isa >= 0 && isa < CPU_KERN_COUNT ? k_isa_names[isa] : "best";
}

bool cpu_kern_isa_parse(const char *name, cpu_kern_isa *out) {
    if (!name) return false;
    if (strcmp(name, "auto") == 0 || strcmp(name, "best") == 0) {
        *out = CPU_KERN_BEST;
        return true;
    }
    for (int i = 0; i < CPU_KERN_COUNT; i++)
        if (strcmp(name, k_isa_names[i]) == 0) {
            *out = (cpu_kern_isa)i;
            return true;
        }
    return false;
}
