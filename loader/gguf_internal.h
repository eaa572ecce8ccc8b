/* Private to loader/gguf*.c: the parsed form of a GGUF file, shared by the reader (gguf.c:
 * parsing and validation; gguf_get.c: queries), the text rendering of values (gguf_format.c)
 * and the writer (gguf_write.c).
 * Nothing outside loader/gguf*.c includes this; everyone else uses loader/gguf.h.
 */
#ifndef VKLLM_LOADER_GGUF_INTERNAL_H
#define VKLLM_LOADER_GGUF_INTERNAL_H

#include "loader/gguf.h"

/* One metadata key/value. All offsets are from the start of the file and were checked at
 * open, so any byte in [raw_off, raw_end) may be read without further bounds checks. */
typedef struct gguf_kv {
    gguf_str key;
    gguf_type type;
    gguf_type arr_type; /* arrays: element type; GGUF_TYPE_COUNT otherwise */
    uint64_t n;         /* strings: byte length; arrays: element count */
    uint64_t val_off;   /* scalars: the value; strings: the bytes; arrays: the first element */
    uint64_t raw_off;   /* the value as stored, from its type tag ... */
    uint64_t raw_end;   /* ... to its end (the writer copies this range verbatim) */
    uint64_t *str_offs; /* string arrays: offset of each element's u64 length prefix */
} gguf_kv;

struct gguf_file {
    vkllm_allocator alloc; /* a copy: the caller's struct need not outlive the open */
    const uint8_t *base;
    uint64_t size;
    void *map; /* gguf_open: the mapping to unmap at close (NULL for memory) */
    size_t map_len;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_off; /* start of the tensor data section */
    uint64_t n_kv, cap_kv;
    gguf_kv *kvs;
    uint64_t *kv_sorted; /* kv indices ordered by key bytes, for binary search */
    uint64_t n_tensors, cap_tensors;
    gguf_tensor *tensors;
    uint64_t *tensor_sorted; /* tensor indices ordered by name */
};

/* Size in bytes of one element of a fixed-size type, 0 for STRING/ARRAY/unknown. */
uint32_t gguf_type_size(gguf_type t);
/* "u32", "string", ... ("type#N" is not produced: unknown types never survive open). */
const char *gguf_type_name(gguf_type t);

/* Little-endian loads from checked memory. */
static inline uint64_t gguf_load_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint32_t gguf_load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A scalar decoded from any numeric or bool encoding, for the converting getters. */
typedef struct gguf_num {
    enum { GGUF_NUM_U, GGUF_NUM_I, GGUF_NUM_F } kind;
    uint64_t u;
    int64_t i;
    double f;
} gguf_num;
/* Decodes a value of fixed-size type t at p; false for STRING/ARRAY. */
bool gguf_num_load(gguf_type t, const uint8_t *p, gguf_num *out);
/* Integer value of n, if it has one (integral floats in range included). */
bool gguf_num_to_i64(const gguf_num *n, int64_t *out);
/* Byte-wise order of names (keys, tensor names): memcmp, then the shorter first. */
int gguf_name_cmp(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen);

#endif
