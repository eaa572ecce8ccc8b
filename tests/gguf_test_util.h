/* Helpers shared by the GGUF tests (test_gguf.c, test_gguf_hostile.c): a scratch folder,
 * file reading, a byte-level GGUF builder for files our writer would never produce, and an
 * "open must fail like this" assertion. Test-only; every function is static inline so each
 * test program takes what it uses. */
#ifndef VKLLM_TESTS_GGUF_TEST_UTIL_H
#define VKLLM_TESTS_GGUF_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/quant.h"
#include "loader/gguf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader/gguf_internal.h" /* gguf_type_size */

/* ---- helpers ---------------------------------------------------------------------------- */

static char g_tmpdir[256]; /* one per test program: set by gguf_test_setup */

static inline const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmpdir, name);
    return p;
}

static inline uint8_t *read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(sz > 0 ? (size_t)sz : 1);
    if (p && sz > 0 && fread(p, 1, (size_t)sz, fp) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(fp);
    *n = (size_t)sz;
    return p;
}

static inline bool gstr_eq(gguf_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static inline void bb_bytes(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static inline void bb_le(bb *b, uint64_t v, unsigned n) {
    uint8_t t[8];
    for (unsigned i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    bb_bytes(b, t, n);
}
static inline void bb_u8(bb *b, uint8_t v) {
    bb_le(b, v, 1);
}
static inline void bb_u32(bb *b, uint32_t v) {
    bb_le(b, v, 4);
}
static inline void bb_u64(bb *b, uint64_t v) {
    bb_le(b, v, 8);
}
static inline void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}
static inline void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_bytes(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static inline void bb_kv_str(bb *b, const char *k, const char *v) {
    bb_str(b, k);
    bb_u32(b, GGUF_TYPE_STRING);
    bb_str(b, v);
}
static inline void bb_kv_u32(bb *b, const char *k, uint32_t v) {
    bb_str(b, k);
    bb_u32(b, GGUF_TYPE_UINT32);
    bb_u32(b, v);
}
static inline void bb_tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static inline void bb_pad(bb *b, size_t a) {
    while (b->n % a)
        bb_u8(b, 0);
}
static inline void bb_fill(bb *b, size_t n, uint8_t v) {
    for (size_t i = 0; i < n; i++)
        bb_u8(b, v);
}

/* Opens exactly n bytes copied to their own allocation (so ASan catches over-reads). */
static inline vkllm_status open_exact(const uint8_t *p, size_t n, bool vocab_only, gguf_file **f,
                               core_err *err) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    gguf_open_desc d = {.vocab_only = vocab_only};
    *f = (gguf_file *)(uintptr_t)1;
    vkllm_status st = gguf_open_memory(copy, n, &d, f, err);
    if (st == VKLLM_OK) {
        /* touch everything the reader hands out while the buffer is alive */
        char buf[256];
        for (uint64_t i = 0; i < gguf_kv_count(*f); i++)
            gguf_kv_format(*f, i, buf, sizeof buf);
        gguf_close(*f);
        *f = NULL;
    }
    free(copy);
    return st;
}

#define EXPECT_FAIL(b, want, sub) expect_fail_((b), (want), (sub), __LINE__)
static inline void expect_fail_(bb *b, vkllm_status want, const char *sub, int line) {
    core_err err = {{0}};
    gguf_file *f;
    vkllm_status st = open_exact(b->p, b->n, false, &f, &err);
    if (st != want || !strstr(err.msg, sub))
        fail_msg("line %d: status %d (want %d), message \"%s\" (want it to contain \"%s\")", line,
                 st, want, err.msg, sub);
    assert_null(f);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- the real model ---------------------------------------------------------------------- */

static inline int gguf_test_setup(void **state) {
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/vkllm_gguf_test.XXXXXX", t && t[0] ? t : "/tmp");
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static inline int gguf_test_teardown(void **state) {
    (void)state;
    DIR *d = opendir(g_tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        unlink(tmp_path(e->d_name));
    }
    if (d) closedir(d);
    rmdir(g_tmpdir);
    return 0;
}

#endif
