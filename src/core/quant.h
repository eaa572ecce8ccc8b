/* Tensor element types and quantized block formats, bit for bit the GGUF/ggml layouts.
 *
 * Each format is defined here once: its block struct, size, scalar reference dequantizer,
 * reference quantizer and reference dot product. The CPU backend's SIMD kernels (src/cpu)
 * and the shader includes (shaders/) mirror these; tests prove they agree.
 * Type ids are the ggml ids stored in GGUF tensor infos.
 */
#ifndef VKLLM_CORE_QUANT_H
#define VKLLM_CORE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum quant_type {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q4_1 = 3,
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q8_0 = 8,
    QT_Q8_1 = 9,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_BF16 = 30,
    QT_COUNT = 40, /* ggml ids are < QT_COUNT */
    /* vkllm's packed 2:4 sparse formats (quant_blocks.h): ids no ggml type has, so a GGUF
     * file holding them fails in llama.cpp with its "invalid ggml type" error. */
    QT_S24_Q4 = 200,
    QT_S24_Q8 = 201,
} quant_type;

/* Dequantize n values (n a multiple of the block size) from src blocks to dst. */
typedef void (*quant_dequant_fn)(const void *src, float *dst, int64_t n);
/* Quantize n floats (n a multiple of the block size) into blocks. */
typedef void (*quant_quant_fn)(const float *src, void *dst, int64_t n);
/* Dot product of one row x (this type) with one row y (its vec_dot_type), n elements. */
typedef float (*quant_dot_fn)(int64_t n, const void *x, const void *y);

typedef struct quant_traits {
    const char *name;    /* "q4_1" */
    uint32_t block_size; /* elements per block */
    uint32_t type_size;  /* bytes per block */
    bool supported;      /* we can dequantize and compute with it */
    quant_dequant_fn dequant;
    quant_quant_fn quant;    /* reference quantizer (NULL if none) */
    quant_type vec_dot_type; /* the type activations are quantized to for vec_dot */
    quant_dot_fn vec_dot;    /* reference dot product */
} quant_traits;

/* Traits for a type id, or NULL for an id that is not a known ggml type. Known but
 * unsupported types (e.g. Q2_K) return traits with supported=false and valid sizes. */
const quant_traits *quant_traits_of(uint32_t type);
/* Name for any id ("q4_1", or "type#N" for unknown ones); never NULL. */
const char *quant_type_name(uint32_t type);
/* The type id of a name, case-insensitive ("q4_0", "Q4_K"); false if no type has it. */
bool quant_type_by_name(const char *name, uint32_t *out);
/* general.file_type (llama.cpp's llama_ftype): its name as llama.cpp prints it ("Q4_K_M"), or
 * NULL for a value this table does not know; and the value a file whose matrices are all of
 * one type declares (UINT32_MAX if there is none). */
const char *quant_ftype_name(uint32_t ftype);
uint32_t quant_ftype_of(uint32_t type);
/* Bytes of a row of n elements; false if the type is unknown, n is not a multiple of the block
 * size, or the size overflows. */
bool quant_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

#endif
