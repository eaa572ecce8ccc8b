/* GGUF reader: opens a file (read-only mmap) or a memory buffer and validates all of it once,
 * building the tables that the queries in gguf_get.c answer from.
 *
 * Layout (GGUF spec, ggml/docs/gguf.md): header {magic "GGUF", u32 version, u64 n_tensors,
 * u64 n_kv}, then n_kv key/values {string key, u32 type, value}, then n_tensors tensor infos
 * {string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset}, then padding up to
 * general.alignment, then the tensor data. Strings are {u64 len, bytes}, arrays
 * {u32 elem_type, u64 n, elems}. All little-endian; v2 and v3 share this layout (v1 had u32
 * counts, v3 only added big-endian files, which we reject).
 *
 * Every field read from the file is bounds- and overflow-checked before it is used, and a
 * failure names the field, the item (kv or tensor) and the offset. After a successful open no
 * accessor needs a bounds check against the file again. Memory used is proportional to what
 * was actually parsed, never to a count the file merely claims.
 * Must not: know about models, tokenizers or backends; print; trust the file.
 */
#include "loader/gguf_internal.h"

#include "core/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_HEADER_BYTES 24u
#define GGUF_DEFAULT_ALIGNMENT 32u
/* ggml's GGML_MAX_NAME is 64 including the terminating NUL. */
#define GGUF_MAX_NAME 64u
/* Arrays of arrays are legal GGUF; we validate and skip them, but bound the recursion. */
#define GGUF_MAX_NESTING 16
/* Smallest possible encodings, used to reject counts the remaining bytes cannot hold:
 * a kv is a key length, >= 1 key byte, a type and >= 1 value byte; a tensor info a name
 * length, >= 1 name byte, n_dims, >= 1 ne, type and offset. */
#define GGUF_MIN_KV_BYTES (8u + 1u + 4u + 1u)
#define GGUF_MIN_TENSOR_BYTES (8u + 1u + 4u + 8u + 4u + 8u)
#define GGUF_MIN_ARRAY_BYTES (4u + 8u)

/* ---- parser --------------------------------------------------------------------------- */

typedef struct parser {
    gguf_file *f;
    core_err *err;
    bool vocab_only;
    uint64_t pos;
    char ctx[160]; /* what is being parsed, e.g. "kv #7 'llama.block_count'" */
} parser;

/* Printable rendering of a name from the file for messages: hostile names may hold anything. */
static void describe_name(char *dst, size_t cap, const uint8_t *p, uint64_t len) {
    size_t o = 0;
    for (uint64_t i = 0; i < len && o + 8 < cap; i++) {
        if (o + 12 >= cap && i + 1 < len) { /* leave room for "..." */
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            dst[o++] = (char)c;
        } else {
            snprintf(dst + o, cap - o, "\\x%02x", c);
            o += 4;
        }
    }
    dst[o] = '\0';
}

static void set_ctx(parser *ps, const char *kind, uint64_t i, const gguf_str *name) {
    if (!name) {
        snprintf(ps->ctx, sizeof ps->ctx, "%s #%llu", kind, (unsigned long long)i);
        return;
    }
    char nm[100];
    describe_name(nm, sizeof nm, (const uint8_t *)name->ptr, name->len);
    if (strcmp(kind, "kv") == 0)
        snprintf(ps->ctx, sizeof ps->ctx, "kv #%llu '%s'", (unsigned long long)i, nm);
    else
        snprintf(ps->ctx, sizeof ps->ctx, "%s '%s'", kind, nm);
}

static vkllm_status bad(parser *ps, const char *fmt, ...) CORE_PRINTF(2, 3);
static vkllm_status bad(parser *ps, const char *fmt, ...) {
    char detail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (ps->ctx[0]) return core_errf(ps->err, VKLLM_ERR_BAD_FILE, "gguf: %s: %s", ps->ctx, detail);
    return core_errf(ps->err, VKLLM_ERR_BAD_FILE, "gguf: %s", detail);
}

static uint64_t left(const parser *ps) {
    return ps->f->size - ps->pos;
}

static vkllm_status need(parser *ps, uint64_t n, const char *what) {
    if (n <= left(ps)) return VKLLM_OK;
    return bad(ps, "%s (%llu bytes) at offset 0x%llx past end of file (size 0x%llx)", what,
               (unsigned long long)n, (unsigned long long)ps->pos, (unsigned long long)ps->f->size);
}

static vkllm_status rd_u32(parser *ps, const char *what, uint32_t *out) {
    vkllm_status st = need(ps, 4, what);
    if (st) return st;
    *out = gguf_load_u32(ps->f->base + ps->pos);
    ps->pos += 4;
    return VKLLM_OK;
}

static vkllm_status rd_u64(parser *ps, const char *what, uint64_t *out) {
    vkllm_status st = need(ps, 8, what);
    if (st) return st;
    *out = gguf_load_u64(ps->f->base + ps->pos);
    ps->pos += 8;
    return VKLLM_OK;
}

/* A GGUF string: u64 length, then that many bytes (no terminator). elem is the string's index
 * in its array, or UINT64_MAX for a lone string; the message names it only on failure, since
 * formatting a name for each of ~100k vocabulary strings would double the open time. */
static vkllm_status rd_str_elem(parser *ps, const char *what, uint64_t elem, gguf_str *out) {
    char name[96], lname[112];
    uint64_t len_off = ps->pos;
    if (left(ps) < 8 || gguf_load_u64(ps->f->base + ps->pos) > left(ps) - 8) {
        if (elem == UINT64_MAX)
            snprintf(name, sizeof name, "%s", what);
        else
            snprintf(name, sizeof name, "array element #%llu: %s", (unsigned long long)elem, what);
        if (left(ps) < 8) {
            snprintf(lname, sizeof lname, "%s length", name);
            return need(ps, 8, lname);
        }
        return bad(ps, "%s length %llu past end of file at offset 0x%llx (%llu bytes left)", name,
                   (unsigned long long)gguf_load_u64(ps->f->base + ps->pos),
                   (unsigned long long)len_off, (unsigned long long)(left(ps) - 8));
    }
    uint64_t len = gguf_load_u64(ps->f->base + ps->pos);
    ps->pos += 8;
    out->ptr = (const char *)ps->f->base + ps->pos;
    out->len = len;
    ps->pos += len;
    return VKLLM_OK;
}

static vkllm_status rd_str(parser *ps, const char *what, gguf_str *out) {
    return rd_str_elem(ps, what, UINT64_MAX, out);
}

/* Bools must be 0 or 1 (GGUF spec: "anything else is invalid"). */
static vkllm_status check_bools(parser *ps, const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return bad(ps, "bool value %u at offset 0x%llx is not 0 or 1", p[i],
                       (unsigned long long)(ps->pos + i));
    return VKLLM_OK;
}

static vkllm_status parse_value(parser *ps, gguf_type type, int depth, gguf_kv *kv);

static vkllm_status parse_array(parser *ps, int depth, gguf_kv *kv) {
    uint64_t et_off = ps->pos, n_off, n;
    uint32_t et;
    vkllm_status st;
    if ((st = rd_u32(ps, "array element type", &et))) return st;
    if (et >= GGUF_TYPE_COUNT)
        return bad(ps, "unknown array element type %u at offset 0x%llx", et,
                   (unsigned long long)et_off);
    n_off = ps->pos;
    if ((st = rd_u64(ps, "array length", &n))) return st;
    if (kv) {
        kv->arr_type = (gguf_type)et;
        kv->n = n;
        kv->val_off = ps->pos;
    }
    uint32_t esz = gguf_type_size((gguf_type)et);
    if (esz) {
        uint64_t bytes;
        if (!core_mul_ok(n, esz, &bytes))
            return bad(ps, "array length %llu x %u-byte %s overflows at offset 0x%llx",
                       (unsigned long long)n, esz, gguf_type_name((gguf_type)et),
                       (unsigned long long)n_off);
        if (bytes > left(ps))
            return bad(ps,
                       "array of %llu x %s (%llu bytes) at offset 0x%llx past end of file "
                       "(size 0x%llx)",
                       (unsigned long long)n, gguf_type_name((gguf_type)et),
                       (unsigned long long)bytes, (unsigned long long)ps->pos,
                       (unsigned long long)ps->f->size);
        if (et == GGUF_TYPE_BOOL && (st = check_bools(ps, ps->f->base + ps->pos, n))) return st;
        ps->pos += bytes;
        return VKLLM_OK;
    }
    /* Variable-size elements: check the count against the smallest element first, so a huge
     * length fails before any allocation or long loop. */
    uint64_t min = et == GGUF_TYPE_STRING ? 8 : GGUF_MIN_ARRAY_BYTES;
    if (n > left(ps) / min)
        return bad(ps,
                   "array length %llu at offset 0x%llx: %llu %s elements cannot fit in the "
                   "%llu bytes left",
                   (unsigned long long)n, (unsigned long long)n_off, (unsigned long long)n,
                   gguf_type_name((gguf_type)et), (unsigned long long)left(ps));
    if (et == GGUF_TYPE_ARRAY && depth + 1 >= GGUF_MAX_NESTING)
        return bad(ps, "arrays nested deeper than %d levels at offset 0x%llx", GGUF_MAX_NESTING,
                   (unsigned long long)et_off);
    if (kv && et == GGUF_TYPE_STRING && n > 0) {
        /* n <= file size / 8 here, so this table is at most the size of the file */
        kv->str_offs = core_alloc(&ps->f->alloc, (size_t)n * sizeof(uint64_t), 0);
        if (!kv->str_offs)
            return core_errf(ps->err, VKLLM_ERR_OUT_OF_MEMORY,
                             "gguf: %s: out of memory for a %llu-string index", ps->ctx,
                             (unsigned long long)n);
    }
    for (uint64_t j = 0; j < n; j++) {
        if (et == GGUF_TYPE_STRING) {
            gguf_str s;
            if (kv) kv->str_offs[j] = ps->pos;
            if ((st = rd_str_elem(ps, "string", j, &s))) return st;
        } else {
            if ((st = parse_value(ps, GGUF_TYPE_ARRAY, depth + 1, NULL))) return st;
        }
    }
    return VKLLM_OK;
}

/* Parses one value of the given type at ps->pos; fills kv (the top-level value) if non-NULL. */
static vkllm_status parse_value(parser *ps, gguf_type type, int depth, gguf_kv *kv) {
    vkllm_status st;
    if (type == GGUF_TYPE_ARRAY) return parse_array(ps, depth, kv);
    if (type == GGUF_TYPE_STRING) {
        gguf_str s;
        if ((st = rd_str(ps, "string", &s))) return st;
        if (kv) {
            kv->n = s.len;
            kv->val_off = (uint64_t)((const uint8_t *)s.ptr - ps->f->base);
        }
        return VKLLM_OK;
    }
    uint32_t esz = gguf_type_size(type);
    char what[32];
    snprintf(what, sizeof what, "%s value", gguf_type_name(type));
    if ((st = need(ps, esz, what))) return st;
    if (type == GGUF_TYPE_BOOL && (st = check_bools(ps, ps->f->base + ps->pos, 1))) return st;
    if (kv) kv->val_off = ps->pos;
    ps->pos += esz;
    return VKLLM_OK;
}

/* Grows a table by doubling, so memory follows what was parsed, not what was claimed. */
static bool grow(gguf_file *f, void **arr, uint64_t *cap, uint64_t n, size_t elem) {
    if (n < *cap) return true;
    uint64_t nc = *cap ? *cap * 2 : 16, bytes;
    if (!core_mul_ok(nc, elem, &bytes) || bytes > SIZE_MAX) return false;
    void *p = core_alloc(&f->alloc, (size_t)bytes, 0);
    if (!p) return false;
    if (*arr) memcpy(p, *arr, (size_t)(*cap * elem));
    core_free(&f->alloc, *arr);
    *arr = p;
    *cap = nc;
    return true;
}

static vkllm_status parse_kvs(parser *ps, uint64_t n_kv) {
    gguf_file *f = ps->f;
    vkllm_status st;
    for (uint64_t i = 0; i < n_kv; i++) {
        set_ctx(ps, "kv", i, NULL);
        if (!grow(f, (void **)&f->kvs, &f->cap_kv, f->n_kv, sizeof(gguf_kv)))
            return core_errf(ps->err, VKLLM_ERR_OUT_OF_MEMORY, "gguf: out of memory for kvs");
        gguf_kv *kv = &f->kvs[f->n_kv++];
        memset(kv, 0, sizeof *kv);
        kv->arr_type = GGUF_TYPE_COUNT;
        kv->type = GGUF_TYPE_COUNT;
        uint64_t key_off = ps->pos;
        if ((st = rd_str(ps, "key", &kv->key))) return st;
        if (kv->key.len == 0)
            return bad(ps, "empty key at offset 0x%llx", (unsigned long long)key_off);
        set_ctx(ps, "kv", i, &kv->key);
        kv->raw_off = ps->pos;
        uint32_t type;
        if ((st = rd_u32(ps, "value type", &type))) return st;
        if (type >= GGUF_TYPE_COUNT)
            return bad(ps, "unknown value type %u at offset 0x%llx", type,
                       (unsigned long long)kv->raw_off);
        kv->type = (gguf_type)type;
        if ((st = parse_value(ps, kv->type, 0, kv))) return st;
        kv->raw_end = ps->pos;
    }
    ps->ctx[0] = '\0';
    return VKLLM_OK;
}

/* ---- sorting (for duplicate detection, binary search and overlap checks) -------------- */

typedef struct sort_ent {
    const uint8_t *p; /* name bytes, or NULL when sorting by number */
    uint64_t len;     /* name length, or the number */
    uint64_t idx;
} sort_ent;

static int cmp_name(const void *a_, const void *b_) {
    const sort_ent *a = a_, *b = b_;
    int c = gguf_name_cmp(a->p, a->len, b->p, b->len);
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_num(const void *a_, const void *b_) {
    const sort_ent *a = a_, *b = b_;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Name order of n items, written as indices into *out (allocated). */
static vkllm_status sort_names(parser *ps, uint64_t n, bool tensors, uint64_t **out) {
    gguf_file *f = ps->f;
    *out = NULL;
    if (n == 0) return VKLLM_OK;
    sort_ent *e = core_calloc(&f->alloc, (size_t)n, sizeof *e);
    uint64_t *idx = core_calloc(&f->alloc, (size_t)n, sizeof *idx);
    if (!e || !idx) {
        core_free(&f->alloc, e);
        core_free(&f->alloc, idx);
        return core_errf(ps->err, VKLLM_ERR_OUT_OF_MEMORY, "gguf: out of memory for an index");
    }
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str *s = tensors ? &f->tensors[i].name : &f->kvs[i].key;
        e[i] = (sort_ent){(const uint8_t *)s->ptr, s->len, i};
    }
    qsort(e, (size_t)n, sizeof *e, cmp_name);
    for (uint64_t i = 0; i < n; i++)
        idx[i] = e[i].idx;
    core_free(&f->alloc, e);
    *out = idx;
    return VKLLM_OK;
}

static vkllm_status check_duplicates(parser *ps, bool tensors) {
    gguf_file *f = ps->f;
    uint64_t n = tensors ? f->n_tensors : f->n_kv;
    const uint64_t *s = tensors ? f->tensor_sorted : f->kv_sorted;
    for (uint64_t i = 1; i < n; i++) {
        const gguf_str *a = tensors ? &f->tensors[s[i - 1]].name : &f->kvs[s[i - 1]].key;
        const gguf_str *b = tensors ? &f->tensors[s[i]].name : &f->kvs[s[i]].key;
        if (a->len == b->len && memcmp(a->ptr, b->ptr, (size_t)a->len) == 0) {
            set_ctx(ps, tensors ? "tensor" : "kv", s[i], b);
            return bad(ps, "duplicate %s (%s #%llu and #%llu)", tensors ? "tensor name" : "key",
                       tensors ? "tensors" : "kvs", (unsigned long long)s[i - 1],
                       (unsigned long long)s[i]);
        }
    }
    return VKLLM_OK;
}

/* general.alignment (GGUF spec): u32, a power of two; 32 when absent. */
static vkllm_status read_alignment(parser *ps) {
    gguf_file *f = ps->f;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gguf_find_key(f, "general.alignment");
    if (i < 0) return VKLLM_OK;
    const gguf_kv *kv = &f->kvs[i];
    set_ctx(ps, "kv", (uint64_t)i, &kv->key);
    if (kv->type != GGUF_TYPE_UINT32)
        return bad(ps, "alignment has type %s, expected u32", gguf_type_name(kv->type));
    uint32_t a = gguf_load_u32(f->base + kv->val_off);
    if (a == 0 || (a & (a - 1)) != 0)
        return bad(ps, "alignment %u is not a non-zero power of two", a);
    f->alignment = a;
    ps->ctx[0] = '\0';
    return VKLLM_OK;
}

/* ---- tensor infos --------------------------------------------------------------------- */

static vkllm_status parse_tensor(parser *ps, uint64_t i, gguf_tensor *t) {
    vkllm_status st;
    set_ctx(ps, "tensor", i, NULL);
    uint64_t name_off = ps->pos;
    if ((st = rd_str(ps, "name", &t->name))) return st;
    if (t->name.len == 0)
        return bad(ps, "empty name at offset 0x%llx", (unsigned long long)name_off);
    if (t->name.len >= GGUF_MAX_NAME) {
        set_ctx(ps, "tensor", i, &t->name);
        return bad(ps,
                   "name of %llu bytes at offset 0x%llx is longer than %u bytes "
                   "(ggml's GGML_MAX_NAME)",
                   (unsigned long long)t->name.len, (unsigned long long)name_off,
                   GGUF_MAX_NAME - 1);
    }
    set_ctx(ps, "tensor", i, &t->name);
    uint64_t off = ps->pos;
    if ((st = rd_u32(ps, "n_dims", &t->n_dims))) return st;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return bad(ps, "n_dims %u at offset 0x%llx is not in 1..%d", t->n_dims,
                   (unsigned long long)off, GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        char what[16];
        snprintf(what, sizeof what, "ne[%u]", d);
        off = ps->pos;
        if ((st = rd_u64(ps, what, &t->ne[d]))) return st;
        /* ggml stores ne as int64 */
        if (t->ne[d] > (uint64_t)INT64_MAX)
            return bad(ps, "ne[%u] = %llu at offset 0x%llx does not fit in int64", d,
                       (unsigned long long)t->ne[d], (unsigned long long)off);
        if (!core_mul_ok(nel, t->ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return bad(ps, "element count overflows at ne[%u] = %llu (offset 0x%llx)", d,
                       (unsigned long long)t->ne[d], (unsigned long long)off);
    }
    off = ps->pos;
    if ((st = rd_u32(ps, "type", &t->type))) return st;
    const quant_traits *tr = quant_traits_of(t->type);
    if (!tr)
        return bad(ps, "unknown tensor type %u at offset 0x%llx", t->type, (unsigned long long)off);
    off = ps->pos;
    if ((st = rd_u64(ps, "data offset", &t->offset))) return st;
    if (tr->block_size == 0 || t->ne[0] % tr->block_size != 0)
        return bad(ps, "ne[0] = %llu is not a multiple of the %s block size %u",
                   (unsigned long long)t->ne[0], tr->name, tr->block_size);
    uint64_t row, rows = t->ne[1] * t->ne[2] * t->ne[3]; /* <= nel: cannot overflow */
    if (!quant_row_bytes(t->type, t->ne[0], &row) || !core_mul_ok(row, rows, &t->nbytes))
        return bad(ps, "size of %llu x %llu %s elements overflows", (unsigned long long)t->ne[0],
                   (unsigned long long)rows, tr->name);
    if (t->offset % ps->f->alignment != 0)
        return bad(ps,
                   "data offset 0x%llx (at offset 0x%llx) is not a multiple of the "
                   "alignment %llu",
                   (unsigned long long)t->offset, (unsigned long long)off,
                   (unsigned long long)ps->f->alignment);
    uint64_t end;
    if (!core_add_ok(t->offset, t->nbytes, &end))
        return bad(ps, "data offset 0x%llx + size 0x%llx overflows", (unsigned long long)t->offset,
                   (unsigned long long)t->nbytes);
    return VKLLM_OK;
}

/* Places each tensor in the data section: inside the file (unless vocab-only) and not
 * overlapping another tensor's bytes. Empty tensors occupy nothing and overlap nothing. */
static vkllm_status place_tensors(parser *ps) {
    gguf_file *f = ps->f;
    uint64_t n = f->n_tensors;
    for (uint64_t i = 0; i < n; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t abs, end;
        set_ctx(ps, "tensor", i, &t->name);
        if (!core_add_ok(f->data_off, t->offset, &abs) || !core_add_ok(abs, t->nbytes, &end))
            return bad(ps, "data offset 0x%llx overflows", (unsigned long long)t->offset);
        if (ps->vocab_only) continue;
        if (end > f->size)
            return bad(ps, "data [0x%llx, +0x%llx) past end of file (size 0x%llx)",
                       (unsigned long long)abs, (unsigned long long)t->nbytes,
                       (unsigned long long)f->size);
        t->data = f->base + abs;
    }
    if (n < 2) {
        ps->ctx[0] = '\0';
        return VKLLM_OK;
    }
    sort_ent *e = core_calloc(&f->alloc, (size_t)n, sizeof *e);
    if (!e) return core_errf(ps->err, VKLLM_ERR_OUT_OF_MEMORY, "gguf: out of memory");
    for (uint64_t i = 0; i < n; i++)
        e[i] = (sort_ent){NULL, f->tensors[i].offset, i};
    qsort(e, (size_t)n, sizeof *e, cmp_num);
    vkllm_status st = VKLLM_OK;
    uint64_t max_end = 0, max_idx = 0;
    bool any = false;
    for (uint64_t k = 0; k < n && st == VKLLM_OK; k++) {
        const gguf_tensor *t = &f->tensors[e[k].idx];
        if (t->nbytes == 0) continue;
        if (any && t->offset < max_end) {
            const gguf_tensor *o = &f->tensors[max_idx];
            char nm[100];
            describe_name(nm, sizeof nm, (const uint8_t *)o->name.ptr, o->name.len);
            set_ctx(ps, "tensor", e[k].idx, &t->name);
            st = bad(ps,
                     "data [0x%llx, +0x%llx) overlaps tensor '%s' [0x%llx, +0x%llx) "
                     "(offsets relative to the data section at 0x%llx)",
                     (unsigned long long)t->offset, (unsigned long long)t->nbytes, nm,
                     (unsigned long long)o->offset, (unsigned long long)o->nbytes,
                     (unsigned long long)f->data_off);
        }
        if (!any || t->offset + t->nbytes > max_end) {
            max_end = t->offset + t->nbytes;
            max_idx = e[k].idx;
        }
        any = true;
    }
    core_free(&f->alloc, e);
    if (st == VKLLM_OK) ps->ctx[0] = '\0';
    return st;
}

static vkllm_status parse_tensors(parser *ps, uint64_t n_tensors) {
    gguf_file *f = ps->f;
    vkllm_status st;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (!grow(f, (void **)&f->tensors, &f->cap_tensors, f->n_tensors, sizeof(gguf_tensor)))
            return core_errf(ps->err, VKLLM_ERR_OUT_OF_MEMORY, "gguf: out of memory for tensors");
        gguf_tensor *t = &f->tensors[f->n_tensors];
        memset(t, 0, sizeof *t);
        if ((st = parse_tensor(ps, i, t))) return st;
        f->n_tensors++;
    }
    ps->ctx[0] = '\0';
    /* The data section starts at the first multiple of the alignment after the infos. */
    uint64_t a = f->alignment, end;
    if (!core_add_ok(ps->pos, a - 1, &end)) return bad(ps, "data section offset overflows");
    f->data_off = end & ~(a - 1);
    if ((st = sort_names(ps, f->n_tensors, true, &f->tensor_sorted))) return st;
    if ((st = check_duplicates(ps, true))) return st;
    return place_tensors(ps);
}

static vkllm_status parse_header(parser *ps, uint64_t *n_tensors, uint64_t *n_kv) {
    gguf_file *f = ps->f;
    vkllm_status st;
    if (f->size == 0) return bad(ps, "file is empty");
    if ((st = need(ps, 4, "magic"))) return st;
    const uint8_t *m = f->base;
    if (memcmp(m, "GGUF", 4) != 0)
        return bad(ps,
                   "bad magic %02x %02x %02x %02x at offset 0x0 (expected \"GGUF\"): not a "
                   "GGUF file",
                   m[0], m[1], m[2], m[3]);
    ps->pos = 4;
    if ((st = rd_u32(ps, "version", &f->version))) return st;
    uint32_t v = f->version;
    /* A big-endian file's small version number reads with its low 16 bits zero. */
    if (v != 0 && (v & 0xffffu) == 0)
        return core_errf(ps->err, VKLLM_ERR_UNSUPPORTED,
                         "gguf: version field 0x%08x looks "
                         "byte-swapped: big-endian GGUF files are not supported",
                         v);
    if (v == 1)
        return core_errf(ps->err, VKLLM_ERR_UNSUPPORTED,
                         "gguf: GGUF version 1 is not "
                         "supported (it used 32-bit counts); convert the model again");
    if (v != 2 && v != 3)
        return core_errf(ps->err, VKLLM_ERR_UNSUPPORTED,
                         "gguf: GGUF version %u is not "
                         "supported (only versions 2 and 3)",
                         v);
    if ((st = rd_u64(ps, "tensor count", n_tensors))) return st;
    if ((st = rd_u64(ps, "kv count", n_kv))) return st;
    /* Reject counts that could not fit, before anything is sized or looped from them. */
    uint64_t kv_min, t_min, total;
    if (!core_mul_ok(*n_kv, GGUF_MIN_KV_BYTES, &kv_min) ||
        !core_mul_ok(*n_tensors, GGUF_MIN_TENSOR_BYTES, &t_min) ||
        !core_add_ok(kv_min, t_min, &total) || total > left(ps))
        return bad(ps,
                   "header at offset 0x8 claims %llu tensors and %llu kvs, more than the "
                   "%llu bytes after the header can hold",
                   (unsigned long long)*n_tensors, (unsigned long long)*n_kv,
                   (unsigned long long)left(ps));
    return VKLLM_OK;
}

static vkllm_status parse_file(parser *ps) {
    uint64_t n_tensors = 0, n_kv = 0;
    vkllm_status st;
    gguf_file *f = ps->f;
    if ((st = parse_header(ps, &n_tensors, &n_kv))) return st;
    if ((st = parse_kvs(ps, n_kv))) return st;
    if ((st = sort_names(ps, f->n_kv, false, &f->kv_sorted))) return st;
    if ((st = check_duplicates(ps, false))) return st;
    if ((st = read_alignment(ps))) return st;
    return parse_tensors(ps, n_tensors);
}

/* ---- open / close --------------------------------------------------------------------- */

static vkllm_status open_impl(const void *data, size_t size, void *map, const gguf_open_desc *desc,
                              gguf_file **out, core_err *err) {
    const vkllm_allocator *a = desc ? desc->allocator : NULL;
    gguf_file *f = core_calloc(a, 1, sizeof *f);
    if (!f) {
        if (map) munmap(map, size);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "gguf: out of memory");
    }
    if (a) f->alloc = *a;
    f->base = data;
    f->size = size;
    f->map = map;
    f->map_len = size;
    parser ps = {.f = f, .err = err, .vocab_only = desc && desc->vocab_only};
    vkllm_status st = parse_file(&ps);
    if (st != VKLLM_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return VKLLM_OK;
}

vkllm_status gguf_open_memory(const void *data, size_t size, const gguf_open_desc *desc,
                              gguf_file **out, core_err *err) {
    if (!out) return core_errf(err, VKLLM_ERR_INVALID_ARG, "gguf: out is NULL");
    *out = NULL;
    if (!data && size) return core_errf(err, VKLLM_ERR_INVALID_ARG, "gguf: data is NULL");
    static const uint8_t empty[1];
    return open_impl(data ? data : empty, size, NULL, desc, out, err);
}

vkllm_status gguf_open(const char *path, const gguf_open_desc *desc, gguf_file **out,
                       core_err *err) {
    if (!out || !path) return core_errf(err, VKLLM_ERR_INVALID_ARG, "gguf: path/out is NULL");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return core_errf(err, VKLLM_ERR_IO, "gguf: cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return core_errf(err, VKLLM_ERR_IO, "gguf: '%s' is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return core_errf(err, VKLLM_ERR_IO, "gguf: '%s' is too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return gguf_open_memory(NULL, 0, desc, out, err);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file referenced */
    /* ENOMEM: no room in the address space (a process limit, ulimit -v), not an I/O fault */
    if (map == MAP_FAILED)
        return core_errf(err, map_errno == ENOMEM ? VKLLM_ERR_OUT_OF_MEMORY : VKLLM_ERR_IO,
                         "gguf: cannot map '%s' (%.1f MiB): %s", path,
                         (double)size / (1024.0 * 1024.0), strerror(map_errno));
    return open_impl(map, size, map, desc, out, err);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    vkllm_allocator a = f->alloc;
    for (uint64_t i = 0; i < f->n_kv; i++)
        core_free(&a, f->kvs[i].str_offs);
    core_free(&a, f->kvs);
    core_free(&a, f->kv_sorted);
    core_free(&a, f->tensors);
    core_free(&a, f->tensor_sorted);
    if (f->map) munmap(f->map, f->map_len);
    core_free(&a, f);
}
