/* libFuzzer target for the GGUF reader (loader/gguf.c, gguf_get.c, gguf_format.c).
 *
 * Opens the input with gguf_open_memory (normally and vocab-only), then touches everything a
 * caller may touch after a successful open: every kv rendered at two buffer sizes, every
 * array element through every accessor, every key looked up by name, every tensor's info and
 * every byte of its data. ASan/UBSan turn any out-of-bounds read or UB into a crash; a
 * successful open that hands out a bad pointer or size fails here.
 * Seeds: tests/data/gguf_corpus (tools/make_hostile_gguf.py). libFuzzer adds new inputs to the
 * first directory it is given, so name a scratch one first to keep the committed seeds small:
 *   mkdir -p /tmp/gguf_fuzz && fuzz_gguf -runs=1000000 /tmp/gguf_fuzz tests/data/gguf_corpus
 */
#include "loader/gguf.h"

#include <stdlib.h>
#include <string.h>

/* Reads n bytes so ASan checks the whole range; the sum keeps the reads from being removed. */
static volatile uint8_t g_sink;
static void touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint8_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s ^= b[i];
    g_sink ^= s;
}

static void walk(const gguf_file *f, bool vocab_only) {
    char small[8], big[512];
    uint64_t n_kv = gguf_kv_count(f);
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_str key = gguf_kv_key(f, i);
        touch(key.ptr, key.len);
        /* keys without a NUL byte must be found again by name, as this index */
        if (!memchr(key.ptr, 0, key.len) && key.len < sizeof big) {
            memcpy(big, key.ptr, key.len);
            big[key.len] = '\0';
            if (gguf_find_key(f, big) != (int64_t)i) abort();
        }
        gguf_kv_format(f, i, small, sizeof small);
        gguf_kv_format(f, i, big, sizeof big);
        if (strlen(big) >= sizeof big || strlen(small) >= sizeof small) abort();
        double d;
        int64_t v;
        gguf_str s;
        gguf_kv_as_f64(f, i, &d);
        gguf_kv_as_i64(f, i, &v);
        if (gguf_kv_as_str(f, i, &s)) touch(s.ptr, s.len);
        if (gguf_kv_type(f, i) != GGUF_TYPE_ARRAY) continue;
        uint64_t n = gguf_kv_arr_len(f, i);
        gguf_type et = gguf_kv_arr_type(f, i);
        const void *raw = gguf_arr_data(f, i);
        for (uint64_t j = 0; j < n; j++) {
            if (gguf_arr_str(f, i, j, &s)) touch(s.ptr, s.len);
            gguf_arr_f64(f, i, j, &d);
            gguf_arr_i64(f, i, j, &v);
        }
        if (raw) {
            uint64_t esz =
                et == GGUF_TYPE_UINT8 || et == GGUF_TYPE_INT8 || et == GGUF_TYPE_BOOL        ? 1
                : et == GGUF_TYPE_UINT16 || et == GGUF_TYPE_INT16                            ? 2
                : et == GGUF_TYPE_UINT64 || et == GGUF_TYPE_INT64 || et == GGUF_TYPE_FLOAT64 ? 8
                                                                                             : 4;
            touch(raw, n * esz);
        }
    }
    uint64_t n_t = gguf_tensor_count(f);
    for (uint64_t i = 0; i < n_t; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        touch(t->name.ptr, t->name.len);
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) abort();
        if (vocab_only) {
            if (t->data) abort();
        } else {
            touch(t->data, t->nbytes);
        }
        if (!memchr(t->name.ptr, 0, t->name.len) && t->name.len < sizeof big) {
            memcpy(big, t->name.ptr, t->name.len);
            big[t->name.len] = '\0';
            if (gguf_find_tensor(f, big) != t) abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int vocab_only = 0; vocab_only < 2; vocab_only++) {
        gguf_open_desc d = {.vocab_only = vocab_only != 0};
        core_err err;
        gguf_file *f = NULL;
        if (gguf_open_memory(data, size, &d, &f, &err) == VKLLM_OK) {
            walk(f, vocab_only != 0);
            gguf_close(f);
        } else if (f || strncmp(err.msg, "gguf: ", 6) != 0) {
            abort(); /* a failure leaves no file and always says what went wrong */
        }
    }
    return 0;
}
