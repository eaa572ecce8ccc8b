/* Importance matrix files (imatrix.h): the GGUF and legacy .dat readers, the GGUF writer.
 *
 * The reader follows llama.cpp's common/imatrix-loader.cpp in what it accepts and what it makes
 * of it (counts rounded to the nearest integer, a legacy name ending at its first NUL, the last
 * of two legacy entries of one name kept), and rejects what that code would misread: negative
 * or oversized lengths, sums that do not split evenly into the counts' rows, non-finite counts.
 * The writer mirrors llama-imatrix's save_imatrix: the same keys in the same order, the
 * tensors sorted by name, counts stored as floats. Never prints.
 */
#include "loader/imatrix.h"

#include "core/quant.h"
#include "loader/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUM_SUFFIX ".in_sum2"
#define COUNT_SUFFIX ".counts"
#define MAX_LEGACY_NAME 4096 /* no weight name comes near; a larger length is a corrupt file */

static imatrix *imatrix_new(const vkllm_allocator *a) {
    imatrix *m = core_calloc(a, 1, sizeof *m);
    if (m && a) m->alloc = *a;
    return m;
}

void imatrix_free(imatrix *m) {
    if (!m) return;
    vkllm_allocator a = m->alloc;
    for (uint64_t i = 0; i < m->n_entries; i++) {
        core_free(&a, m->entries[i].name);
        core_free(&a, m->entries[i].sums);
        core_free(&a, m->entries[i].counts);
    }
    for (uint64_t i = 0; i < m->n_datasets; i++)
        core_free(&a, m->datasets[i]);
    core_free(&a, m->entries);
    core_free(&a, m->datasets);
    core_free(&a, m);
}

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const imatrix_entry *)a)->name, ((const imatrix_entry *)b)->name);
}

const imatrix_entry *imatrix_find(const imatrix *m, const char *name) {
    if (!m || !name || !m->n_entries) return NULL;
    const imatrix_entry key = {.name = (char *)name};
    return bsearch(&key, m->entries, (size_t)m->n_entries, sizeof key, entry_cmp);
}

void imatrix_weights(const imatrix *m, const imatrix_entry *e, float *out) {
    if (m->legacy) {
        const int64_t ncall = e->n_counts ? e->counts[0] : 0;
        for (uint64_t i = 0; i < e->n_values; i++)
            out[i] = ncall > 0 ? e->sums[i] / (float)ncall : e->sums[i];
        return;
    }
    const uint64_t ne0 = e->n_values / e->n_counts;
    for (uint64_t j = 0; j < e->n_counts; j++) {
        const float count = (float)e->counts[j];
        for (uint64_t i = 0; i < ne0; i++)
            out[j * ne0 + i] = count > 0.0f ? e->sums[j * ne0 + i] / count : 1.0f;
    }
}

/* A NUL-terminated copy of n bytes. */
static char *dup_n(const vkllm_allocator *a, const char *s, uint64_t n) {
    if (n >= SIZE_MAX) return NULL;
    char *p = core_alloc(a, (size_t)n + 1, 0);
    if (!p) return NULL;
    memcpy(p, s, (size_t)n);
    p[n] = '\0';
    return p;
}

static vkllm_status grow_entries(imatrix *m, uint64_t *cap) {
    if (m->n_entries < *cap) return VKLLM_OK;
    const uint64_t nc = *cap ? *cap * 2 : 64;
    imatrix_entry *p = core_calloc(&m->alloc, (size_t)nc, sizeof *p);
    if (!p) return VKLLM_ERR_OUT_OF_MEMORY;
    if (m->entries) memcpy(p, m->entries, (size_t)m->n_entries * sizeof *p);
    core_free(&m->alloc, m->entries);
    m->entries = p;
    *cap = nc;
    return VKLLM_OK;
}

/* ---- GGUF ---------------------------------------------------------------------------------- */

static bool has_suffix(gguf_str s, const char *suf, uint64_t *base_len) {
    const size_t n = strlen(suf);
    if (s.len < n || memcmp(s.ptr + s.len - n, suf, n) != 0) return false;
    *base_len = s.len - n;
    return true;
}

static vkllm_status load_gguf_meta(imatrix *m, const gguf_file *f, const char *path,
                                   core_err *err) {
    gguf_type et;
    uint64_t n;
    const int64_t kd = gguf_find_key(f, "imatrix.datasets");
    if (kd >= 0 && gguf_get_arr(f, "imatrix.datasets", &et, &n) && et == GGUF_TYPE_STRING) {
        if (n && !(m->datasets = core_calloc(&m->alloc, (size_t)n, sizeof(char *))))
            return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        for (uint64_t j = 0; j < n; j++) {
            gguf_str s;
            if (!gguf_arr_str(f, (uint64_t)kd, j, &s) ||
                !(m->datasets[j] = dup_n(&m->alloc, s.ptr, s.len)))
                return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            m->n_datasets = j + 1;
        }
    }
    const bool has_count = gguf_find_key(f, "imatrix.chunk_count") >= 0;
    const bool has_size = gguf_find_key(f, "imatrix.chunk_size") >= 0;
    if (has_count && !gguf_get_u32(f, "imatrix.chunk_count", &m->chunk_count))
        return core_errf(err, VKLLM_ERR_BAD_FILE, "%s: imatrix.chunk_count is not a u32", path);
    if (has_size && !gguf_get_u32(f, "imatrix.chunk_size", &m->chunk_size))
        return core_errf(err, VKLLM_ERR_BAD_FILE, "%s: imatrix.chunk_size is not a u32", path);
    m->has_metadata = kd >= 0 && has_count && has_size;
    return VKLLM_OK;
}

static vkllm_status load_gguf(imatrix *m, const char *path, core_err *err) {
    gguf_file *f = NULL;
    gguf_open_desc od = {.allocator = &m->alloc};
    vkllm_status st = gguf_open(path, &od, &f, err);
    if (st != VKLLM_OK) {
        char msg[CORE_ERR_LEN];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return core_errf(err, st, "%s: %s", path, msg);
    }
    const uint64_t nt = gguf_tensor_count(f);
    uint64_t cap = 0;
    if (nt == 0)
        st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: no tensors (no importance data)", path);
    if (st == VKLLM_OK) st = load_gguf_meta(m, f, path, err);
    /* pass 1: one entry per W.in_sum2 */
    for (uint64_t i = 0; st == VKLLM_OK && i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t bl;
        if (!has_suffix(t->name, SUM_SUFFIX, &bl)) continue;
        if (t->type != QT_F32) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: tensor %.*s is %s, not f32", path,
                           (int)t->name.len, t->name.ptr, quant_type_name(t->type));
            break;
        }
        if ((st = grow_entries(m, &cap)) != VKLLM_OK) {
            core_errf(err, st, "%s: out of memory for its entries", path);
            break;
        }
        imatrix_entry *e = &m->entries[m->n_entries];
        e->n_values = t->nbytes / sizeof(float);
        e->name = dup_n(&m->alloc, t->name.ptr, bl);
        e->sums = e->n_values ? core_alloc(&m->alloc, (size_t)t->nbytes, 0) : NULL;
        if (!e->name || (e->n_values && !e->sums)) {
            core_free(&m->alloc, e->name);
            core_free(&m->alloc, e->sums);
            e->name = NULL, e->sums = NULL;
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            break;
        }
        if (e->n_values) memcpy(e->sums, t->data, (size_t)t->nbytes);
        m->n_entries++;
    }
    if (st == VKLLM_OK && m->n_entries)
        qsort(m->entries, (size_t)m->n_entries, sizeof *m->entries, entry_cmp);
    /* pass 2: each W.counts joins its entry */
    for (uint64_t i = 0; st == VKLLM_OK && i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t bl;
        if (!has_suffix(t->name, COUNT_SUFFIX, &bl)) continue;
        char *base = dup_n(&m->alloc, t->name.ptr, bl);
        imatrix_entry *e = base ? (imatrix_entry *)imatrix_find(m, base) : NULL;
        core_free(&m->alloc, base);
        if (!base)
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        else if (!e)
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: %.*s has no matching %s tensor", path,
                           (int)t->name.len, t->name.ptr, SUM_SUFFIX);
        else if (t->type != QT_F32)
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: tensor %.*s is %s, not f32", path,
                           (int)t->name.len, t->name.ptr, quant_type_name(t->type));
        else if (e->counts)
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: %s has two count tensors", path, e->name);
        if (st != VKLLM_OK) break;
        const uint64_t nc = t->nbytes / sizeof(float);
        if (nc == 0 || e->n_values % nc != 0) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE,
                           "%s: %s: %llu sums do not split into %llu rows of counts", path, e->name,
                           (unsigned long long)e->n_values, (unsigned long long)nc);
            break;
        }
        if (!(e->counts = core_alloc(&m->alloc, (size_t)nc * sizeof(int64_t), 0))) {
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            break;
        }
        e->n_counts = nc;
        for (uint64_t j = 0; j < nc; j++) {
            float c;
            memcpy(&c, (const uint8_t *)t->data + 4 * j, 4);
            if (!isfinite(c) || fabsf(c) > 9.0e18f) {
                st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: %s: count %llu is not a count", path,
                               e->name, (unsigned long long)j);
                break;
            }
            e->counts[j] = (int64_t)lroundf(c);
        }
    }
    for (uint64_t i = 0; st == VKLLM_OK && i < m->n_entries; i++) {
        if (!m->entries[i].counts)
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: %s%s has no matching %s tensor", path,
                           m->entries[i].name, SUM_SUFFIX, COUNT_SUFFIX);
        else if (i && strcmp(m->entries[i].name, m->entries[i - 1].name) == 0)
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: two entries named %s", path,
                           m->entries[i].name);
    }
    gguf_close(f);
    return st;
}

/* ---- legacy .dat --------------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    uint64_t size, off;
} rd;

static bool rd_i32(rd *r, int32_t *v) {
    if (r->size - r->off < 4) return false;
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return true;
}

static vkllm_status read_file(const vkllm_allocator *a, const char *path, uint8_t **data,
                              uint64_t *size, core_err *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return core_errf(err, VKLLM_ERR_IO, "%s: cannot open", path);
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    uint8_t *buf = n >= 0 && fseek(fp, 0, SEEK_SET) == 0 ? core_alloc(a, (size_t)n + 1, 0) : NULL;
    const bool ok = buf && fread(buf, 1, (size_t)n, fp) == (size_t)n;
    fclose(fp);
    if (!ok) {
        core_free(a, buf);
        return core_errf(err, n < 0 ? VKLLM_ERR_IO : VKLLM_ERR_OUT_OF_MEMORY, "%s: cannot read",
                         path);
    }
    *data = buf;
    *size = (uint64_t)n;
    return VKLLM_OK;
}

/* Appends an entry; duplicates are resolved once all are read (dedupe_last), so a file of
 * many entries costs a sort, not a search per entry. */
static vkllm_status legacy_put(imatrix *m, uint64_t *cap, char *name, float *sums, uint64_t n,
                               int64_t ncall) {
    if (grow_entries(m, cap) != VKLLM_OK) return VKLLM_ERR_OUT_OF_MEMORY;
    int64_t *counts = core_alloc(&m->alloc, sizeof(int64_t), 0);
    if (!counts) return VKLLM_ERR_OUT_OF_MEMORY;
    counts[0] = ncall;
    m->entries[m->n_entries++] = (imatrix_entry){name, n, sums, 1, counts};
    return VKLLM_OK;
}

typedef struct seq_entry {
    imatrix_entry e;
    uint64_t seq; /* position in the file */
} seq_entry;

static int seq_cmp(const void *a, const void *b) {
    const seq_entry *x = a, *y = b;
    const int c = strcmp(x->e.name, y->e.name);
    return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* Sorts the entries by name and keeps the last of each name (llama.cpp's map overwrites). */
static vkllm_status dedupe_last(imatrix *m) {
    const uint64_t n = m->n_entries;
    seq_entry *t = core_alloc(&m->alloc, (size_t)n * sizeof *t + 1, 0);
    if (!t) return VKLLM_ERR_OUT_OF_MEMORY;
    for (uint64_t i = 0; i < n; i++)
        t[i] = (seq_entry){m->entries[i], i};
    qsort(t, (size_t)n, sizeof *t, seq_cmp);
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(t[i].e.name, t[i + 1].e.name) == 0) {
            core_free(&m->alloc, t[i].e.name);
            core_free(&m->alloc, t[i].e.sums);
            core_free(&m->alloc, t[i].e.counts);
        } else {
            m->entries[k++] = t[i].e;
        }
    }
    m->n_entries = k;
    core_free(&m->alloc, t);
    return VKLLM_OK;
}

static vkllm_status load_legacy(imatrix *m, const char *path, core_err *err) {
    uint8_t *buf = NULL;
    uint64_t size = 0, cap = 0;
    vkllm_status st = read_file(&m->alloc, path, &buf, &size, err);
    if (st != VKLLM_OK) return st;
    rd r = {buf, size, 0};
    int32_t n_entries = 0;
    m->legacy = true;
    if (!rd_i32(&r, &n_entries) || n_entries < 1)
        st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: not a GGUF file and no legacy imatrix data",
                       path);
    for (int32_t i = 0; st == VKLLM_OK && i < n_entries; i++) {
        int32_t len = 0, ncall = 0, nval = 0;
        if (!rd_i32(&r, &len) || len < 0 || len > MAX_LEGACY_NAME || size - r.off < (uint64_t)len) {
            st = core_errf(err, VKLLM_ERR_BAD_FILE, "%s: entry %d: bad name (offset 0x%llx)", path,
                           i + 1, (unsigned long long)r.off);
            break;
        }
        char *name = dup_n(&m->alloc, (const char *)buf + r.off, (uint64_t)len);
        r.off += (uint64_t)len;
        uint64_t bytes = 0;
        if (!name || !rd_i32(&r, &ncall) || !rd_i32(&r, &nval) || nval < 1 ||
            !core_mul_ok((uint64_t)nval, 4, &bytes) || size - r.off < bytes) {
            st = core_errf(err, name ? VKLLM_ERR_BAD_FILE : VKLLM_ERR_OUT_OF_MEMORY,
                           "%s: entry %d (%s): bad value count or truncated data", path, i + 1,
                           name ? name : "?");
            core_free(&m->alloc, name);
            break;
        }
        float *sums = core_alloc(&m->alloc, (size_t)bytes, 0);
        if (!sums) {
            core_free(&m->alloc, name);
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            break;
        }
        memcpy(sums, buf + r.off, (size_t)bytes);
        r.off += bytes;
        if (legacy_put(m, &cap, name, sums, (uint64_t)nval, ncall) != VKLLM_OK) {
            core_free(&m->alloc, name);
            core_free(&m->alloc, sums);
            st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        }
    }
    /* the optional trailer: chunk count, then the dataset's name */
    int32_t n_chunks = 0, len = 0;
    if (st == VKLLM_OK && r.off < size && rd_i32(&r, &n_chunks)) {
        m->chunk_count = n_chunks > 0 ? (uint32_t)n_chunks : 0;
        if (rd_i32(&r, &len) && len > 0 && size - r.off >= (uint64_t)len) {
            char *ds = dup_n(&m->alloc, (const char *)buf + r.off, (uint64_t)len);
            m->datasets = ds ? core_alloc(&m->alloc, sizeof(char *), 0) : NULL;
            if (!m->datasets) {
                core_free(&m->alloc, ds);
                st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            } else {
                m->datasets[0] = ds;
                m->n_datasets = 1;
            }
        }
    }
    if (st == VKLLM_OK && dedupe_last(m) != VKLLM_OK)
        st = core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    core_free(&m->alloc, buf);
    return st;
}

vkllm_status imatrix_load(const char *path, const vkllm_allocator *a, imatrix **out,
                          core_err *err) {
    if (!path || !out) return core_errf(err, VKLLM_ERR_INVALID_ARG, "imatrix: path/out is NULL");
    *out = NULL;
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return core_errf(err, VKLLM_ERR_IO, "%s: cannot open the importance matrix", path);
    const size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    imatrix *m = imatrix_new(a);
    if (!m) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "imatrix: out of memory");
    vkllm_status st = got == 4 && memcmp(magic, "GGUF", 4) == 0 ? load_gguf(m, path, err)
                                                                : load_legacy(m, path, err);
    if (st != VKLLM_OK) {
        imatrix_free(m);
        return st;
    }
    *out = m;
    return VKLLM_OK;
}

/* ---- writer -------------------------------------------------------------------------------- */

static int wentry_cmp(const void *a, const void *b) {
    return strcmp((*(const imatrix_write_entry *const *)a)->name,
                  (*(const imatrix_write_entry *const *)b)->name);
}

/* ggml_n_dims: the dimensions up to the last one above 1 (at least 1). */
static uint32_t n_dims_of(const uint64_t ne[2]) {
    return ne[1] > 1 ? 2 : 1;
}

static vkllm_status add_entry(gguf_writer *w, const imatrix_write_entry *e, float *tmp,
                              core_err *err) {
    char name[64];
    const uint64_t ne_s[2] = {e->n_sums / e->n_counts, e->n_counts};
    const uint64_t ne_c[2] = {1, e->n_counts};
    snprintf(name, sizeof name, "%s%s", e->name, SUM_SUFFIX);
    vkllm_status st = gguf_writer_add_tensor(w, name, QT_F32, n_dims_of(ne_s), ne_s, e->sums,
                                             e->n_sums * 4, false);
    for (uint64_t j = 0; j < e->n_counts; j++)
        tmp[j] = (float)e->counts[j];
    snprintf(name, sizeof name, "%s%s", e->name, COUNT_SUFFIX);
    if (st == VKLLM_OK)
        st = gguf_writer_add_tensor(w, name, QT_F32, n_dims_of(ne_c), ne_c, tmp, e->n_counts * 4,
                                    true);
    if (st != VKLLM_OK) return core_errf(err, st, "imatrix: cannot add %s", e->name);
    return VKLLM_OK;
}

vkllm_status imatrix_write(const char *path, const imatrix_write_desc *d, core_err *err) {
    if (!path || !d || (d->n_entries && !d->entries) || (d->n_datasets && !d->datasets))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "imatrix: path/desc missing");
    const vkllm_allocator *a = d->allocator;
    uint64_t max_counts = 1;
    for (uint64_t i = 0; i < d->n_entries; i++) {
        const imatrix_write_entry *e = &d->entries[i];
        if (!e->name || (e->n_sums && !e->sums) || (e->n_counts && !e->counts))
            return core_errf(err, VKLLM_ERR_INVALID_ARG, "imatrix: entry %llu is incomplete",
                             (unsigned long long)i);
        if (strlen(e->name) + strlen(SUM_SUFFIX) >= 64)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "imatrix: name '%s' too long for a tensor name", e->name);
        if (e->n_counts && e->n_sums % e->n_counts != 0)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "imatrix: %s: %llu sums do not split into %llu rows", e->name,
                             (unsigned long long)e->n_sums, (unsigned long long)e->n_counts);
        if (e->n_counts > max_counts) max_counts = e->n_counts;
    }
    const imatrix_write_entry **order =
        core_calloc(a, d->n_entries ? (size_t)d->n_entries : 1, sizeof *order);
    float *tmp = core_alloc(a, (size_t)max_counts * sizeof(float), 0);
    gguf_writer *w = gguf_writer_create(a);
    vkllm_status st = order && tmp && w ? VKLLM_OK : VKLLM_ERR_OUT_OF_MEMORY;
    if (st != VKLLM_OK) core_errf(err, st, "imatrix: out of memory");
    for (uint64_t i = 0; st == VKLLM_OK && i < d->n_entries; i++)
        order[i] = &d->entries[i];
    if (st == VKLLM_OK && d->n_entries)
        qsort(order, (size_t)d->n_entries, sizeof *order, wentry_cmp);
    for (uint64_t i = 1; st == VKLLM_OK && i < d->n_entries; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0)
            st = core_errf(err, VKLLM_ERR_INVALID_ARG, "imatrix: two entries named %s",
                           order[i]->name);
    if (st == VKLLM_OK) {
        st = gguf_writer_set_str(w, "general.type", "imatrix");
        if (st == VKLLM_OK)
            st = gguf_writer_set_arr_str(w, "imatrix.datasets", d->datasets, d->n_datasets);
        if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "imatrix.chunk_count", d->chunk_count);
        if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "imatrix.chunk_size", d->chunk_size);
        if (st != VKLLM_OK) core_errf(err, st, "imatrix: cannot set the metadata");
    }
    for (uint64_t i = 0; st == VKLLM_OK && i < d->n_entries; i++)
        if (order[i]->n_sums && order[i]->n_counts) st = add_entry(w, order[i], tmp, err);
    if (st == VKLLM_OK) st = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    core_free(a, tmp);
    core_free(a, order);
    return st;
}
