/* GGUF v2/v3 reader and writer.
 *
 * The reader maps a file (or takes a memory buffer) and checks every offset, size, count,
 * string length, array length, dimension and alignment before using it; a malformed file
 * gives VKLLM_ERR_BAD_FILE and a message that names the field and the offset. After a
 * successful open every pointer handed out points inside the mapping and every size is
 * correct, so callers need no further bounds checks. Strings are not NUL-terminated.
 * The writer produces files llama.cpp reads. No Vulkan, no model semantics here.
 */
#ifndef VKLLM_LOADER_GGUF_H
#define VKLLM_LOADER_GGUF_H

#include "core/common.h"

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

typedef struct gguf_str {
    const char *ptr; /* not NUL-terminated */
    uint64_t len;
} gguf_str;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims = 1 */
    uint32_t type;              /* quant_type id */
    uint64_t offset;            /* relative to the start of the data section */
    uint64_t nbytes;
    const void *data; /* inside the mapping; NULL for a vocab-only open */
} gguf_tensor;

typedef struct gguf_file gguf_file;

typedef struct gguf_open_desc {
    const vkllm_allocator *allocator;
    bool vocab_only; /* metadata only: tensor infos are read and checked, data need not exist */
} gguf_open_desc;

/* Opens and validates a file (mmap). err receives the message on failure. */
vkllm_status gguf_open(const char *path, const gguf_open_desc *desc, gguf_file **out,
                       core_err *err);
/* Same over a caller-owned buffer that must outlive the gguf_file (fuzzing, tests). */
vkllm_status gguf_open_memory(const void *data, size_t size, const gguf_open_desc *desc,
                              gguf_file **out, core_err *err);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
/* Where the tensor data section starts in the file. */
uint64_t gguf_data_offset(const gguf_file *f);

/* ---- metadata ---- */
uint64_t gguf_kv_count(const gguf_file *f);
/* Index of a key, or -1. */
int64_t gguf_find_key(const gguf_file *f, const char *key);
gguf_str gguf_kv_key(const gguf_file *f, uint64_t i);
gguf_type gguf_kv_type(const gguf_file *f, uint64_t i);
/* For arrays: element type and length. */
gguf_type gguf_kv_arr_type(const gguf_file *f, uint64_t i);
uint64_t gguf_kv_arr_len(const gguf_file *f, uint64_t i);

/* Typed getters by key. Integers convert between widths and signedness when the value fits;
 * floats accept FLOAT32/FLOAT64. Return false if absent, wrong type or out of range. */
bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
bool gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
bool gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
bool gguf_get_f32(const gguf_file *f, const char *key, float *out);
bool gguf_get_bool(const gguf_file *f, const char *key, bool *out);
bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Scalar value of kv i (any numeric or bool type) as double / int64; false if not scalar. */
bool gguf_kv_as_f64(const gguf_file *f, uint64_t i, double *out);
bool gguf_kv_as_i64(const gguf_file *f, uint64_t i, int64_t *out);
bool gguf_kv_as_str(const gguf_file *f, uint64_t i, gguf_str *out);

/* Arrays by key: element type and length; false if absent or not an array. */
bool gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *len);
/* Element j of array kv i. Numeric elements convert as the scalar getters; strings are indexed
 * in O(1) (offsets are built at open). Return false on wrong type or index. */
bool gguf_arr_str(const gguf_file *f, uint64_t i, uint64_t j, gguf_str *out);
bool gguf_arr_f64(const gguf_file *f, uint64_t i, uint64_t j, double *out);
bool gguf_arr_i64(const gguf_file *f, uint64_t i, uint64_t j, int64_t *out);
/* Raw pointer to the elements of a numeric array (little-endian, packed), or NULL. */
const void *gguf_arr_data(const gguf_file *f, uint64_t i);

/* Renders kv i as text into buf (arrays shortened to their first few elements). */
void gguf_kv_format(const gguf_file *f, uint64_t i, char *buf, size_t cap);

/* ---- tensors ---- */
uint64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
/* By name, or NULL. */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_create(const vkllm_allocator *a);
void gguf_writer_free(gguf_writer *w);
/* Each setter copies its arguments. A key set twice keeps the last value. */
vkllm_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
vkllm_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
vkllm_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
vkllm_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
vkllm_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
vkllm_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Drops key (a copied kv a rewritten file must not keep); false if it was not set. A key set
 * again afterwards goes last, as ggml's gguf_set_* place a key that was removed. */
bool gguf_writer_remove(gguf_writer *w, const char *key);
/* Numeric array: elem_type one of the numeric types, n elements packed little-endian. */
vkllm_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type,
                                 const void *data, uint64_t n);
vkllm_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n);
/* Copies every kv of an opened file (for tools that rewrite a model). */
vkllm_status gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src);
/* Copies the kvs whose key starts with prefix (e.g. "tokenizer."); returns how many in *n. */
vkllm_status gguf_writer_copy_kvs_prefix(gguf_writer *w, const gguf_file *src, const char *prefix,
                                         uint64_t *n);
/* Adds a tensor; data (nbytes, which must match type and shape) is copied or, if the
 * caller promises it outlives the write, referenced (copy=false). With copy=false, data may be
 * NULL: gguf_writer_write_with's callback then supplies it. */
vkllm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne, const void *data,
                                    uint64_t nbytes, bool copy);
/* Writes a GGUF v3 file (alignment from general.alignment, default 32), under a temporary name
 * next to path that is renamed to path when complete; on failure nothing is left. */
vkllm_status gguf_writer_write(gguf_writer *w, const char *path, core_err *err);
/* Sets *data to the bytes of tensor i (added with data NULL), nbytes long, valid until the
 * next call; on failure returns the status with err set. Called in tensor order, so a caller
 * can produce one tensor at a time. */
typedef vkllm_status (*gguf_tensor_data_fn)(void *user, uint64_t i, uint64_t nbytes,
                                            const void **data, core_err *err);
vkllm_status gguf_writer_write_with(gguf_writer *w, const char *path, gguf_tensor_data_fn fn,
                                    void *user, core_err *err);

#endif
