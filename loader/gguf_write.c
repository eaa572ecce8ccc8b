/* GGUF v3 writer: collects key/values and tensors in memory, then writes one file in the
 * layout the reader (gguf.c) and llama.cpp expect: header, kvs, tensor infos, zero padding to
 * general.alignment (default 32), then each tensor's data padded to the alignment.
 *
 * Values are kept already encoded (the bytes that follow the type tag in the file), so
 * copying a kv from an opened file, nested arrays included, is a byte copy. Everything the
 * caller passes is copied unless add_tensor is told not to. Never prints.
 */
#include "loader/gguf_internal.h"

#include "core/quant.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct wkv {
    char *key; /* NUL-terminated copy; key_len bytes are written */
    uint64_t key_len;
    gguf_type type;
    uint8_t *payload; /* the encoded value */
    uint64_t len;
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    const void *data;
    void *owned; /* the copy, when the caller asked for one */
    uint64_t nbytes;
} wtensor;

struct gguf_writer {
    vkllm_allocator alloc;
    wkv *kvs;
    uint64_t n_kv, cap_kv;
    wtensor *ts;
    uint64_t n_t, cap_t;
};

gguf_writer *gguf_writer_create(const vkllm_allocator *a) {
    gguf_writer *w = core_calloc(a, 1, sizeof *w);
    if (w && a) w->alloc = *a;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    vkllm_allocator a = w->alloc;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        core_free(&a, w->kvs[i].key);
        core_free(&a, w->kvs[i].payload);
    }
    for (uint64_t i = 0; i < w->n_t; i++) {
        core_free(&a, w->ts[i].name);
        core_free(&a, w->ts[i].owned);
    }
    core_free(&a, w->kvs);
    core_free(&a, w->ts);
    core_free(&a, w);
}

static bool wgrow(gguf_writer *w, void **arr, uint64_t *cap, uint64_t n, size_t elem) {
    if (n < *cap) return true;
    uint64_t nc = *cap ? *cap * 2 : 16, bytes;
    if (!core_mul_ok(nc, elem, &bytes) || bytes > SIZE_MAX) return false;
    void *p = core_alloc(&w->alloc, (size_t)bytes, 0);
    if (!p) return false;
    if (*arr) memcpy(p, *arr, (size_t)(*cap * elem));
    core_free(&w->alloc, *arr);
    *arr = p;
    *cap = nc;
    return true;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Stores an encoded value under key (key_len bytes), taking ownership of payload. A key set
 * twice keeps its first position and its last value. */
static vkllm_status set_encoded(gguf_writer *w, const char *key, uint64_t key_len, gguf_type type,
                                uint8_t *payload, uint64_t len) {
    for (uint64_t i = 0; i < w->n_kv; i++) {
        wkv *kv = &w->kvs[i];
        if (kv->key_len == key_len && memcmp(kv->key, key, (size_t)key_len) == 0) {
            core_free(&w->alloc, kv->payload);
            kv->type = type;
            kv->payload = payload;
            kv->len = len;
            return VKLLM_OK;
        }
    }
    char *k = core_alloc(&w->alloc, (size_t)key_len + 1, 0);
    if (!k || !wgrow(w, (void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof(wkv))) {
        core_free(&w->alloc, k);
        core_free(&w->alloc, payload);
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    memcpy(k, key, (size_t)key_len);
    k[key_len] = '\0';
    w->kvs[w->n_kv++] = (wkv){k, key_len, type, payload, len};
    return VKLLM_OK;
}

static vkllm_status set_bytes(gguf_writer *w, const char *key, gguf_type type, const void *v,
                              uint64_t len) {
    if (!w || !key || !key[0]) return VKLLM_ERR_INVALID_ARG;
    uint8_t *p = NULL;
    if (len) {
        if (len > SIZE_MAX || !(p = core_alloc(&w->alloc, (size_t)len, 0)))
            return VKLLM_ERR_OUT_OF_MEMORY;
        memcpy(p, v, (size_t)len);
    }
    return set_encoded(w, key, strlen(key), type, p, len);
}

static vkllm_status set_scalar(gguf_writer *w, const char *key, gguf_type type, uint64_t bits) {
    uint8_t b[8];
    unsigned n = gguf_type_size(type);
    put_le(b, bits, n);
    return set_bytes(w, key, type, b, n);
}

bool gguf_writer_remove(gguf_writer *w, const char *key) {
    if (!w || !key) return false;
    const size_t kl = strlen(key);
    for (uint64_t i = 0; i < w->n_kv; i++) {
        wkv *kv = &w->kvs[i];
        if (kv->key_len != kl || memcmp(kv->key, key, kl) != 0) continue;
        core_free(&w->alloc, kv->key);
        core_free(&w->alloc, kv->payload);
        memmove(kv, kv + 1, (size_t)(w->n_kv - i - 1) * sizeof *kv); /* keep the order */
        w->n_kv--;
        return true;
    }
    return false;
}

vkllm_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    return set_scalar(w, key, GGUF_TYPE_UINT32, v);
}
vkllm_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v);
}
vkllm_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    return set_scalar(w, key, GGUF_TYPE_UINT64, v);
}
vkllm_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}
vkllm_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    return set_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0);
}

vkllm_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!w || !key || !key[0] || !v) return VKLLM_ERR_INVALID_ARG;
    uint64_t n = strlen(v), len;
    if (!core_add_ok(n, 8, &len) || len > SIZE_MAX) return VKLLM_ERR_OUT_OF_MEMORY;
    uint8_t *p = core_alloc(&w->alloc, (size_t)len, 0);
    if (!p) return VKLLM_ERR_OUT_OF_MEMORY;
    put_le(p, n, 8);
    memcpy(p + 8, v, (size_t)n);
    return set_encoded(w, key, strlen(key), GGUF_TYPE_STRING, p, len);
}

vkllm_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type,
                                 const void *data, uint64_t n) {
    if (!w || !key || !key[0]) return VKLLM_ERR_INVALID_ARG;
    uint32_t esz = gguf_type_size(elem_type);
    uint64_t bytes, len;
    if (!esz || (n && !data) || !core_mul_ok(n, esz, &bytes) || !core_add_ok(bytes, 12, &len) ||
        len > SIZE_MAX)
        return VKLLM_ERR_INVALID_ARG;
    uint8_t *p = core_alloc(&w->alloc, (size_t)len, 0);
    if (!p) return VKLLM_ERR_OUT_OF_MEMORY;
    put_le(p, (uint32_t)elem_type, 4);
    put_le(p + 4, n, 8);
    if (bytes) memcpy(p + 12, data, (size_t)bytes);
    return set_encoded(w, key, strlen(key), GGUF_TYPE_ARRAY, p, len);
}

vkllm_status gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n) {
    if (!w || !key || !key[0] || (n && !strs)) return VKLLM_ERR_INVALID_ARG;
    uint64_t len = 12;
    for (uint64_t j = 0; j < n; j++) {
        if (!strs[j]) return VKLLM_ERR_INVALID_ARG;
        if (!core_add_ok(len, 8 + (uint64_t)strlen(strs[j]), &len)) return VKLLM_ERR_OUT_OF_MEMORY;
    }
    if (len > SIZE_MAX) return VKLLM_ERR_OUT_OF_MEMORY;
    uint8_t *p = core_alloc(&w->alloc, (size_t)len, 0);
    if (!p) return VKLLM_ERR_OUT_OF_MEMORY;
    put_le(p, GGUF_TYPE_STRING, 4);
    put_le(p + 4, n, 8);
    uint64_t o = 12;
    for (uint64_t j = 0; j < n; j++) {
        size_t sl = strlen(strs[j]);
        put_le(p + o, sl, 8);
        memcpy(p + o + 8, strs[j], sl);
        o += 8 + sl;
    }
    return set_encoded(w, key, strlen(key), GGUF_TYPE_ARRAY, p, len);
}

vkllm_status gguf_writer_copy_kvs(gguf_writer *w, const gguf_file *src) {
    return gguf_writer_copy_kvs_prefix(w, src, "", NULL);
}

vkllm_status gguf_writer_copy_kvs_prefix(gguf_writer *w, const gguf_file *src, const char *prefix,
                                         uint64_t *n) {
    if (!w || !src || !prefix) return VKLLM_ERR_INVALID_ARG;
    const size_t pl = strlen(prefix);
    if (n) *n = 0;
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const gguf_kv *kv = &src->kvs[i];
        if (kv->key.len < pl || memcmp(kv->key.ptr, prefix, pl) != 0) continue;
        if (n) (*n)++;
        /* the encoded value follows the u32 type tag at raw_off */
        uint64_t len = kv->raw_end - kv->raw_off - 4;
        uint8_t *p = NULL;
        if (len && !(p = core_alloc(&w->alloc, (size_t)len, 0))) return VKLLM_ERR_OUT_OF_MEMORY;
        if (len) memcpy(p, src->base + kv->raw_off + 4, (size_t)len);
        vkllm_status st = set_encoded(w, kv->key.ptr, kv->key.len, kv->type, p, len);
        if (st) return st;
    }
    return VKLLM_OK;
}

vkllm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne, const void *data,
                                    uint64_t nbytes, bool copy) {
    if (!w || !name || !ne) return VKLLM_ERR_INVALID_ARG;
    size_t nl = strlen(name);
    /* the reader's (and ggml's) limits: 1..63 name bytes, 1..4 dims, int64 element counts */
    if (nl == 0 || nl >= 64 || n_dims == 0 || n_dims > GGUF_MAX_DIMS) return VKLLM_ERR_INVALID_ARG;
    uint64_t rows = 1, nel = 1, row, total;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (!core_mul_ok(nel, ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return VKLLM_ERR_INVALID_ARG;
        if (d > 0) rows *= ne[d];
    }
    if (!quant_row_bytes(type, ne[0], &row) || !core_mul_ok(row, rows, &total) || total != nbytes ||
        (nbytes && !data && copy) || nbytes > SIZE_MAX)
        return VKLLM_ERR_INVALID_ARG;
    for (uint64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->ts[i].name, name) == 0) return VKLLM_ERR_INVALID_ARG;
    wtensor t = {.type = type, .n_dims = n_dims, .data = data, .nbytes = nbytes};
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = d < n_dims ? ne[d] : 1;
    t.name = core_strdup(&w->alloc, name);
    if (copy && nbytes) {
        t.owned = core_alloc(&w->alloc, (size_t)nbytes, 0);
        if (t.owned) memcpy(t.owned, data, (size_t)nbytes);
        t.data = t.owned;
    }
    if (!t.name || (copy && nbytes && !t.owned) ||
        !wgrow(w, (void **)&w->ts, &w->cap_t, w->n_t, sizeof(wtensor))) {
        core_free(&w->alloc, t.name);
        core_free(&w->alloc, t.owned);
        return VKLLM_ERR_OUT_OF_MEMORY;
    }
    w->ts[w->n_t++] = t;
    return VKLLM_OK;
}

/* ---- output ----------------------------------------------------------------------------- */

typedef struct wout {
    FILE *fp;
    bool ok;
} wout;

static void out_bytes(wout *o, const void *p, uint64_t n) {
    if (o->ok && n && fwrite(p, 1, (size_t)n, o->fp) != n) o->ok = false;
}

static void out_le(wout *o, uint64_t v, unsigned n) {
    uint8_t b[8];
    put_le(b, v, n);
    out_bytes(o, b, n);
}

static void out_zeros(wout *o, uint64_t n) {
    static const uint8_t z[256];
    while (n) {
        uint64_t k = n < sizeof z ? n : sizeof z;
        out_bytes(o, z, k);
        n -= k;
    }
}

static uint64_t pad_to(uint64_t x, uint64_t a) {
    return (a - x % a) % a;
}

vkllm_status gguf_writer_write(gguf_writer *w, const char *path, core_err *err) {
    return gguf_writer_write_with(w, path, NULL, NULL, err);
}

vkllm_status gguf_writer_write_with(gguf_writer *w, const char *path, gguf_tensor_data_fn fn,
                                    void *user, core_err *err) {
    if (!w || !path) return core_errf(err, VKLLM_ERR_INVALID_ARG, "gguf: writer/path is NULL");
    for (uint64_t i = 0; i < w->n_t; i++)
        if (w->ts[i].nbytes && !w->ts[i].data && !fn)
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "gguf: tensor %s has no data",
                             w->ts[i].name);
    uint64_t align = 32;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        if (strcmp(kv->key, "general.alignment") != 0) continue;
        uint32_t a = kv->type == GGUF_TYPE_UINT32 ? gguf_load_u32(kv->payload) : 0;
        if (a == 0 || (a & (a - 1)))
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "gguf: general.alignment must be a "
                             "non-zero power of two stored as u32");
        align = a;
    }
    /* the file is written under a temporary name next to it (a rename within a folder cannot
     * cross filesystems) and renamed when complete: a failed or interrupted write never
     * leaves a half file under the name */
    char tmp[4096];
    const int tl = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (tl < 0 || (size_t)tl >= sizeof tmp)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "gguf: path too long: '%s'", path);
    wout o = {fopen(tmp, "wb"), true};
    if (!o.fp) return core_errf(err, VKLLM_ERR_IO, "gguf: cannot create '%s'", path);
    out_bytes(&o, "GGUF", 4);
    out_le(&o, 3, 4);
    out_le(&o, w->n_t, 8);
    out_le(&o, w->n_kv, 8);
    uint64_t pos = 24;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        out_le(&o, kv->key_len, 8);
        out_bytes(&o, kv->key, kv->key_len);
        out_le(&o, (uint32_t)kv->type, 4);
        out_bytes(&o, kv->payload, kv->len);
        pos += 8 + kv->key_len + 4 + kv->len;
    }
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        uint64_t nl = strlen(t->name);
        out_le(&o, nl, 8);
        out_bytes(&o, t->name, nl);
        out_le(&o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            out_le(&o, t->ne[d], 8);
        out_le(&o, t->type, 4);
        out_le(&o, off, 8);
        pos += 8 + nl + 4 + 8ull * t->n_dims + 4 + 8;
        off += t->nbytes + pad_to(t->nbytes, align);
    }
    out_zeros(&o, pad_to(pos, align));
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; o.ok && i < w->n_t; i++) {
        const void *data = w->ts[i].data;
        if (!data && w->ts[i].nbytes && (st = fn(user, i, w->ts[i].nbytes, &data, err)) != VKLLM_OK)
            break;
        out_bytes(&o, data, w->ts[i].nbytes);
        out_zeros(&o, pad_to(w->ts[i].nbytes, align));
    }
    if (fclose(o.fp) != 0) o.ok = false;
    if (st != VKLLM_OK || !o.ok) {
        remove(tmp);
        if (st != VKLLM_OK) return st;
        return core_errf(err, VKLLM_ERR_IO, "gguf: write to '%s' failed", path);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return core_errf(err, VKLLM_ERR_IO, "gguf: cannot rename '%s' to '%s'", tmp, path);
    }
    return VKLLM_OK;
}
