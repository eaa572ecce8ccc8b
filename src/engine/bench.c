/* Random inputs for the op benchmarks (eng_backend_vtbl.bench_op): weight matrices, activation
 * rows and F16 cache rows, generated the same way for every backend. Speed does not depend on
 * the values, only on their being valid (finite scales, no NaN), so a matrix repeats a few
 * random rows instead of quantizing every one. */
#include "engine/engine.h"

#include <math.h>
#include <string.h>

#define BENCH_DISTINCT_ROWS 16

static uint32_t rng_next(uint64_t *x) { /* xorshift64 */
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return (uint32_t)(*x >> 32);
}

static float rng_unit(uint64_t *x) { /* [-1, 1) */
    return (float)(int32_t)rng_next(x) / 2147483648.0f;
}

vkllm_status eng_bench_fill_matrix(const vkllm_allocator *a, uint32_t w_type, uint32_t rows,
                                   uint32_t cols, void *data, core_err *err) {
    const quant_traits *tr = quant_traits_of(w_type);
    uint64_t rb = 0;
    if (!tr || !tr->quant || !quant_row_bytes(w_type, cols, &rb))
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "bench: no quantizer for %s rows of %u",
                         quant_type_name(w_type), cols);
    float *x = core_alloc(a, (size_t)cols * sizeof(float), 0);
    if (!x) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "bench: out of memory");
    uint8_t *d = data;
    uint64_t rng = 0x2545f4914f6cdd1dull;
    const float scale = 1.0f / sqrtf((float)cols);
    const uint32_t distinct = rows < BENCH_DISTINCT_ROWS ? rows : BENCH_DISTINCT_ROWS;
    for (uint32_t r = 0; r < distinct; r++) {
        for (uint32_t i = 0; i < cols; i++) x[i] = scale * rng_unit(&rng);
        tr->quant(x, d + (uint64_t)r * rb, cols);
    }
    for (uint32_t r = distinct; r < rows; r++)
        memcpy(d + (uint64_t)r * rb, d + (uint64_t)(r % distinct) * rb, (size_t)rb);
    core_free(a, x);
    return VKLLM_OK;
}

void eng_bench_fill_f32(float *x, uint64_t n, uint64_t seed) {
    uint64_t rng = seed | 1;
    for (uint64_t i = 0; i < n; i++) x[i] = rng_unit(&rng);
}

void eng_bench_fill_f16(uint16_t *x, uint64_t n, uint64_t seed) {
    uint64_t rng = seed | 1;
    for (uint64_t i = 0; i < n; i++) { /* sign and mantissa random, exponent 13..15 */
        const uint32_t r = rng_next(&rng);
        x[i] = (uint16_t)((r & 0x83ffu) | ((13u + (r >> 16) % 3u) << 10));
    }
}
