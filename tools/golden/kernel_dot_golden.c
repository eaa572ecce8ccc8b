/* Prints test_cpu_kernels.c's k_golden table: llama.cpp's CPU dot products
 * (ggml_get_type_traits_cpu(type)->vec_dot, the x86 AVX2 code) on the rows that test makes,
 * weights by vkllm's reference quantizer (core/quant.c's traits), activations by vkllm's
 * quantize_row (byte-identical to llama.cpp's). Run it when a reference quantizer changes.
 * Build (from the repository root, after cmake --build build):
 *   cc -std=c11 -O2 -D_GNU_SOURCE -Isrc -I. -Iinclude -Itests tools/golden/kernel_dot_golden.c \
 *      build/libvkllm_internal.a -L$LLAMA_BIN -lggml-cpu -lggml-base -Wl,-rpath,$LLAMA_BIN \
 *      -lm -lpthread -ldl -o /tmp/kernel_dot_golden
 * where LLAMA_BIN is llama.cpp's build. The quantized formats' dot products have only an AVX2
 * code path on x86, so a native build prints the AVX2 values; F16's has an AVX-512 one, so take
 * its line from an AVX2 build (scripts/build_llama_cpp.sh --reference) only. */
#include <stdio.h>
#include <string.h>

#include "core/quant.h"
#include "cpu/cpu_kernels.h"
#include "quant_test_util.h"

typedef void (*ggml_vec_dot_t)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                               size_t by, int nrc);
struct ggml_type_traits_cpu {
    void *from_float;
    ggml_vec_dot_t vec_dot;
    int vec_dot_type;
    long long nrows;
};
const struct ggml_type_traits_cpu *ggml_get_type_traits_cpu(int type);
void ggml_cpu_init(void);

int main(void) {
    enum { NMAX = 576, R = 3, T = 2 };
    static const quant_type types[] = {QT_Q4_1, QT_Q8_0, QT_Q5_1, QT_Q4_0, QT_Q5_0,
                                       QT_F16,  QT_Q4_K, QT_Q5_K, QT_Q6_K};
    ggml_cpu_init();
    const cpu_kernels *k = cpu_kernels_get(CPU_KERN_AVX2);
    if (!k) {
        fprintf(stderr, "needs AVX2\n");
        return 1;
    }
    for (size_t gi = 0; gi < sizeof types / sizeof types[0]; gi++) {
        const quant_type t = types[gi];
        const quant_traits *qt = quant_traits_of(t);
        const int N = qt->block_size == QUANT_QK_K ? 512 : 576;
        uint64_t seed = 1234 + (uint64_t)t;
        static float row[NMAX];
        static uint8_t w[R][NMAX * 4], x[T][NMAX * 4];
        for (int r = 0; r < R; r++) {
            fill(&seed, row, N, 0.1f);
            qt->quant(row, w[r], N);
        }
        for (int j = 0; j < T; j++) {
            fill(&seed, row, N, 1.0f);
            k->quantize_row(qt->vec_dot_type, row, x[j], N);
        }
        printf("    {QT_%s, {", qt->name);
        for (int j = 0; j < T; j++)
            for (int r = 0; r < R; r++) {
                float s;
                ggml_get_type_traits_cpu((int)t)->vec_dot(N, &s, 0, w[r], 0, x[j], 0, 1);
                uint32_t u;
                memcpy(&u, &s, 4);
                printf("0x%08x%s", u, j == T - 1 && r == R - 1 ? "}},\n" : ", ");
            }
    }
    return 0;
}
