/* GGUF queries: the typed getters, array element access and tensor lookup over a gguf_file
 * that gguf.c has validated, plus the decoding of value encodings shared by the reader, the
 * formatter and the writer. Nothing here re-checks bounds: open already proved every offset
 * and size; what is checked here is the caller's arguments (index, type, range on conversion).
 */
#include "loader/gguf_internal.h"

#include <math.h>
#include <string.h>

/* ---- value types ---------------------------------------------------------------------- */

uint32_t gguf_type_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *gguf_type_name(gguf_type t) {
    static const char *const names[GGUF_TYPE_COUNT] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                       "i32", "f32", "bool", "string", "array",
                                                       "u64", "i64", "f64"};
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "unknown";
}

bool gguf_num_load(gguf_type t, const uint8_t *p, gguf_num *o) {
    memset(o, 0, sizeof *o);
    o->kind = GGUF_NUM_I;
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL:
        o->kind = GGUF_NUM_U;
        o->u = p[0];
        break;
    case GGUF_TYPE_INT8:
        o->i = (int8_t)p[0];
        break;
    case GGUF_TYPE_UINT16:
        o->kind = GGUF_NUM_U;
        o->u = (uint16_t)(p[0] | p[1] << 8);
        break;
    case GGUF_TYPE_INT16:
        o->i = (int16_t)(uint16_t)(p[0] | p[1] << 8);
        break;
    case GGUF_TYPE_UINT32:
        o->kind = GGUF_NUM_U;
        o->u = gguf_load_u32(p);
        break;
    case GGUF_TYPE_INT32:
        o->i = (int32_t)gguf_load_u32(p);
        break;
    case GGUF_TYPE_UINT64:
        o->kind = GGUF_NUM_U;
        o->u = gguf_load_u64(p);
        break;
    case GGUF_TYPE_INT64:
        o->i = (int64_t)gguf_load_u64(p);
        break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t b = gguf_load_u32(p);
        float v;
        memcpy(&v, &b, 4);
        o->kind = GGUF_NUM_F;
        o->f = v;
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        uint64_t b = gguf_load_u64(p);
        memcpy(&o->f, &b, 8);
        o->kind = GGUF_NUM_F;
        break;
    }
    default:
        return false;
    }
    if (o->kind == GGUF_NUM_U) o->f = (double)o->u;
    if (o->kind == GGUF_NUM_I) o->f = (double)o->i;
    return true;
}

/* Integer value of n, if it is one: integer encodings always, floats when integral and in
 * range (so "1.0" reads as 1 but "1.5" does not). u64 values above INT64_MAX do not fit. */
bool gguf_num_to_i64(const gguf_num *n, int64_t *out) {
    switch (n->kind) {
    case GGUF_NUM_U:
        if (n->u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)n->u;
        return true;
    case GGUF_NUM_I:
        *out = n->i;
        return true;
    default:
        /* -2^63 <= f < 2^63, checked before the conversion (out of range would be UB) */
        if (!(n->f >= -9223372036854775808.0 && n->f < 9223372036854775808.0)) return false;
        if (n->f != floor(n->f)) return false;
        *out = (int64_t)n->f;
        return true;
    }
}

/* ---- file --------------------------------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f) {
    return f ? f->version : 0;
}
uint64_t gguf_alignment(const gguf_file *f) {
    return f ? f->alignment : 0;
}
uint64_t gguf_file_size(const gguf_file *f) {
    return f ? f->size : 0;
}

uint64_t gguf_data_offset(const gguf_file *f) {
    return f ? f->data_off : 0;
}

/* ---- metadata ------------------------------------------------------------------------- */

uint64_t gguf_kv_count(const gguf_file *f) {
    return f ? f->n_kv : 0;
}

static const gguf_kv *kv_at(const gguf_file *f, uint64_t i) {
    return f && i < f->n_kv ? &f->kvs[i] : NULL;
}

int gguf_name_cmp(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen) {
    uint64_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, (size_t)n) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

/* Binary search over a name-sorted index (built at open). */
static int64_t find_sorted(const uint64_t *sorted, uint64_t n,
                           const gguf_str *(*name)(const gguf_file *, uint64_t), const gguf_file *f,
                           const char *key) {
    if (!key || !sorted) return -1;
    uint64_t klen = strlen(key), lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const gguf_str *s = name(f, sorted[mid]);
        int c = gguf_name_cmp((const uint8_t *)s->ptr, s->len, (const uint8_t *)key, klen);
        if (c == 0) return (int64_t)sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static const gguf_str *kv_name(const gguf_file *f, uint64_t i) {
    return &f->kvs[i].key;
}
static const gguf_str *tensor_name(const gguf_file *f, uint64_t i) {
    return &f->tensors[i].name;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    return f ? find_sorted(f->kv_sorted, f->n_kv, kv_name, f, key) : -1;
}

gguf_str gguf_kv_key(const gguf_file *f, uint64_t i) {
    const gguf_kv *kv = kv_at(f, i);
    return kv ? kv->key : (gguf_str){"", 0};
}

gguf_type gguf_kv_type(const gguf_file *f, uint64_t i) {
    const gguf_kv *kv = kv_at(f, i);
    return kv ? kv->type : GGUF_TYPE_COUNT;
}

gguf_type gguf_kv_arr_type(const gguf_file *f, uint64_t i) {
    const gguf_kv *kv = kv_at(f, i);
    return kv && kv->type == GGUF_TYPE_ARRAY ? kv->arr_type : GGUF_TYPE_COUNT;
}

uint64_t gguf_kv_arr_len(const gguf_file *f, uint64_t i) {
    const gguf_kv *kv = kv_at(f, i);
    return kv && kv->type == GGUF_TYPE_ARRAY ? kv->n : 0;
}

static bool kv_num(const gguf_file *f, uint64_t i, gguf_num *n) {
    const gguf_kv *kv = kv_at(f, i);
    return kv && gguf_num_load(kv->type, f->base + kv->val_off, n);
}

static bool key_num(const gguf_file *f, const char *key, gguf_num *n, bool want_float) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0) return false;
    gguf_type t = f->kvs[i].type;
    bool is_float = t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64;
    if (t == GGUF_TYPE_BOOL || is_float != want_float) return false;
    return kv_num(f, (uint64_t)i, n);
}

bool gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    gguf_num n;
    if (!key_num(f, key, &n, false)) return false;
    if (n.kind == GGUF_NUM_I && n.i < 0) return false;
    *out = n.kind == GGUF_NUM_U ? n.u : (uint64_t)n.i;
    return true;
}

bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    uint64_t v;
    if (!gguf_get_u64(f, key, &v) || v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

bool gguf_get_i32(const gguf_file *f, const char *key, int32_t *out) {
    gguf_num n;
    int64_t v;
    if (!key_num(f, key, &n, false) || !gguf_num_to_i64(&n, &v) || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

bool gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    gguf_num n;
    if (!key_num(f, key, &n, true)) return false;
    /* a finite f64 beyond float range does not fit (and converting it would be UB) */
    if (isfinite(n.f) && fabs(n.f) > 3.4028234663852886e38) return false;
    *out = (float)n.f;
    return true;
}

bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0 || f->kvs[i].type != GGUF_TYPE_BOOL) return false;
    *out = f->base[f->kvs[i].val_off] != 0;
    return true;
}

bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    int64_t i = gguf_find_key(f, key);
    return i >= 0 && gguf_kv_as_str(f, (uint64_t)i, out);
}

bool gguf_kv_as_f64(const gguf_file *f, uint64_t i, double *out) {
    gguf_num n;
    if (!kv_num(f, i, &n)) return false;
    *out = n.f;
    return true;
}

bool gguf_kv_as_i64(const gguf_file *f, uint64_t i, int64_t *out) {
    gguf_num n;
    return kv_num(f, i, &n) && gguf_num_to_i64(&n, out);
}

bool gguf_kv_as_str(const gguf_file *f, uint64_t i, gguf_str *out) {
    const gguf_kv *kv = kv_at(f, i);
    if (!kv || kv->type != GGUF_TYPE_STRING) return false;
    out->ptr = (const char *)f->base + kv->val_off;
    out->len = kv->n;
    return true;
}

bool gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *len) {
    int64_t i = gguf_find_key(f, key);
    if (i < 0 || f->kvs[i].type != GGUF_TYPE_ARRAY) return false;
    if (elem_type) *elem_type = f->kvs[i].arr_type;
    if (len) *len = f->kvs[i].n;
    return true;
}

bool gguf_arr_str(const gguf_file *f, uint64_t i, uint64_t j, gguf_str *out) {
    const gguf_kv *kv = kv_at(f, i);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || j >= kv->n)
        return false;
    const uint8_t *p = f->base + kv->str_offs[j];
    out->len = gguf_load_u64(p);
    out->ptr = (const char *)p + 8;
    return true;
}

/* Element j of a fixed-size-element array, decoded. */
static bool arr_num(const gguf_file *f, uint64_t i, uint64_t j, gguf_num *n) {
    const gguf_kv *kv = kv_at(f, i);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || j >= kv->n) return false;
    uint32_t esz = gguf_type_size(kv->arr_type);
    return esz && gguf_num_load(kv->arr_type, f->base + kv->val_off + j * esz, n);
}

bool gguf_arr_f64(const gguf_file *f, uint64_t i, uint64_t j, double *out) {
    gguf_num n;
    if (!arr_num(f, i, j, &n)) return false;
    *out = n.f;
    return true;
}

bool gguf_arr_i64(const gguf_file *f, uint64_t i, uint64_t j, int64_t *out) {
    gguf_num n;
    return arr_num(f, i, j, &n) && gguf_num_to_i64(&n, out);
}

const void *gguf_arr_data(const gguf_file *f, uint64_t i) {
    const gguf_kv *kv = kv_at(f, i);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || !gguf_type_size(kv->arr_type)) return NULL;
    return f->base + kv->val_off;
}

/* ---- tensors -------------------------------------------------------------------------- */

uint64_t gguf_tensor_count(const gguf_file *f) {
    return f ? f->n_tensors : 0;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) {
    return f && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f) return NULL;
    int64_t i = find_sorted(f->tensor_sorted, f->n_tensors, tensor_name, f, name);
    return i < 0 ? NULL : &f->tensors[i];
}
