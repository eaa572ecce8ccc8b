/* Tests of loader/gguf*.c: the reader on the real default model and on llama.cpp's vocab
 * files, the writer by round trip, value rendering, and the reader's answer to hostile input:
 * every malformed file must fail with the right status and a message naming what is wrong,
 * never crash, never leak (run under ASan+UBSan: -DVKLLM_SANITIZE=ON).
 *
 * Hostile files are built here byte by byte (a small builder below mirrors the GGUF layout),
 * or derived from a valid file made with our writer (truncation at every offset). Buffers
 * handed to the reader are exactly the file's size, so ASan sees any read past the end.
 */
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

/* ---- helpers ---------------------------------------------------------------------------- */

static char g_tmpdir[256];

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmpdir, name);
    return p;
}

static uint8_t *read_file(const char *path, size_t *n) {
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

static bool gstr_eq(gguf_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

static size_t elem_size(gguf_type t) {
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
    default:
        return 8;
    }
}

/* Byte builder for hand-made GGUF files. */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_bytes(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void bb_le(bb *b, uint64_t v, unsigned n) {
    uint8_t t[8];
    for (unsigned i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    bb_bytes(b, t, n);
}
static void bb_u8(bb *b, uint8_t v) {
    bb_le(b, v, 1);
}
static void bb_u32(bb *b, uint32_t v) {
    bb_le(b, v, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    bb_le(b, v, 8);
}
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}
static void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_bytes(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_str(bb *b, const char *k, const char *v) {
    bb_str(b, k);
    bb_u32(b, GGUF_TYPE_STRING);
    bb_str(b, v);
}
static void bb_kv_u32(bb *b, const char *k, uint32_t v) {
    bb_str(b, k);
    bb_u32(b, GGUF_TYPE_UINT32);
    bb_u32(b, v);
}
static void bb_tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static void bb_pad(bb *b, size_t a) {
    while (b->n % a)
        bb_u8(b, 0);
}
static void bb_fill(bb *b, size_t n, uint8_t v) {
    for (size_t i = 0; i < n; i++)
        bb_u8(b, v);
}

/* Opens exactly n bytes copied to their own allocation (so ASan catches over-reads). */
static vkllm_status open_exact(const uint8_t *p, size_t n, bool vocab_only, gguf_file **f,
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
static void expect_fail_(bb *b, vkllm_status want, const char *sub, int line) {
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

static const char *model_path(void) {
    const char *p = getenv("VKLLM_MODEL");
    if (!p || access(p, R_OK) != 0)
        fail_msg("default model missing (VKLLM_MODEL=%s): run scripts/fetch_model.sh",
                 p ? p : "(unset)");
    return p;
}

static void test_real_model(void **state) {
    (void)state;
    const char *path = model_path();
    core_err err = {{0}};
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, &(gguf_open_desc){0}, &f, &err), VKLLM_OK);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_tensor_count(f), 272);
    uint32_t u;
    assert_true(gguf_get_u32(f, "llama.block_count", &u));
    assert_int_equal(u, 30);
    assert_true(gguf_get_u32(f, "llama.embedding_length", &u));
    assert_int_equal(u, 576);
    float eps;
    assert_true(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps));
    assert_true(eps > 0.9e-5f && eps < 1.1e-5f);
    gguf_str s;
    assert_true(gguf_get_str(f, "general.architecture", &s));
    assert_true(gstr_eq(s, "llama"));
    assert_true(gguf_get_str(f, "tokenizer.ggml.model", &s));
    assert_true(gstr_eq(s, "gpt2"));

    gguf_type et;
    uint64_t n;
    assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n));
    assert_int_equal(et, GGUF_TYPE_STRING);
    assert_int_equal(n, 49152);
    int64_t ti = gguf_find_key(f, "tokenizer.ggml.tokens");
    assert_true(ti >= 0);
    assert_true(gguf_arr_str(f, (uint64_t)ti, 0, &s));
    assert_true(gstr_eq(s, "<|endoftext|>"));
    assert_true(gguf_arr_str(f, (uint64_t)ti, 49151, &s));
    assert_true(s.len > 0);
    assert_false(gguf_arr_str(f, (uint64_t)ti, 49152, &s));
    assert_null(gguf_arr_data(f, (uint64_t)ti));
    assert_true(gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n));
    assert_int_equal(et, GGUF_TYPE_STRING);
    assert_int_equal(n, 48900);
    int64_t tt = gguf_find_key(f, "tokenizer.ggml.token_type");
    assert_true(tt >= 0);
    assert_int_equal(gguf_kv_arr_type(f, (uint64_t)tt), GGUF_TYPE_INT32);
    assert_non_null(gguf_arr_data(f, (uint64_t)tt));
    int64_t v;
    assert_true(gguf_arr_i64(f, (uint64_t)tt, 0, &v));
    assert_int_equal(v, 3); /* <|endoftext|> is a control token */

    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, QT_Q8_0);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 576);
    assert_int_equal(t->ne[1], 49152);
    assert_int_equal(t->nbytes, 576 / 32 * 34 * 49152ull);
    assert_null(gguf_find_tensor(f, "token_embd.weigh"));
    assert_null(gguf_find_tensor(f, "nope"));
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *ti_ = gguf_tensor_at(f, i);
        assert_non_null(ti_->data);
        assert_int_equal(ti_->offset % 32, 0);
    }
    assert_null(gguf_tensor_at(f, 272));
    gguf_close(f);

    /* The same bytes from memory: every data pointer lies inside the buffer. */
    size_t size;
    uint8_t *buf = read_file(path, &size);
    assert_non_null(buf);
    assert_int_equal(gguf_open_memory(buf, size, NULL, &f, &err), VKLLM_OK);
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        t = gguf_tensor_at(f, i);
        const uint8_t *d = t->data;
        assert_true(d >= buf && d + t->nbytes <= buf + size);
    }
    gguf_close(f);

    /* vocab-only: infos are there, data pointers are not */
    assert_int_equal(gguf_open_memory(buf, size, &(gguf_open_desc){.vocab_only = true}, &f, &err),
                     VKLLM_OK);
    assert_int_equal(gguf_tensor_count(f), 272);
    assert_null(gguf_tensor_at(f, 0)->data);
    gguf_close(f);
    free(buf);
}

/* Rewriting the real model through the writer (copy_kvs + referenced tensors) reproduces it
 * byte for byte: same kv encoding, tensor order, offsets and padding as llama.cpp's writer. */
static void test_rewrite_real_model(void **state) {
    (void)state;
    const char *path = model_path();
    core_err err = {{0}};
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, NULL, &f, &err), VKLLM_OK);
    gguf_writer *w = gguf_writer_create(NULL);
    assert_non_null(w);
    assert_int_equal(gguf_writer_copy_kvs(w, f), VKLLM_OK);
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        assert_int_equal(
            gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes, false),
            VKLLM_OK);
    }
    const char *out = tmp_path("rewrite.gguf");
    assert_int_equal(gguf_writer_write(w, out, &err), VKLLM_OK);
    gguf_writer_free(w);
    gguf_close(f);
    size_t n1, n2;
    uint8_t *a = read_file(path, &n1), *b = read_file(out, &n2);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(n1, n2);
    assert_true(memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    unlink(out);
}

/* llama.cpp's vocab-only test files (n_tensors = 0), when fetched. */
static void test_vocab_files(void **state) {
    (void)state;
    const char *dir = getenv("VKLLM_VOCAB_DIR");
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) skip();
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        core_err err = {{0}};
        gguf_file *f = NULL;
        vkllm_status st = gguf_open(p, &(gguf_open_desc){.vocab_only = true}, &f, &err);
        if (st != VKLLM_OK) fail_msg("%s: %s", p, err.msg);
        gguf_type et;
        uint64_t len;
        assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &len));
        assert_true(len > 0);
        gguf_close(f);
        n++;
    }
    closedir(d);
    if (n == 0) skip();
}

/* ---- writer round trip ------------------------------------------------------------------- */

static void test_writer_round_trip(void **state) {
    (void)state;
    gguf_writer *w = gguf_writer_create(NULL);
    assert_non_null(w);
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u), VKLLM_OK);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -7), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u64(w, "t.u64", 1ull << 40), VKLLM_OK);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", 0.25f), VKLLM_OK);
    assert_int_equal(gguf_writer_set_bool(w, "t.bool", true), VKLLM_OK);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "first"), VKLLM_OK);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo \"w\"\n"), VKLLM_OK);
    assert_int_equal(gguf_writer_set_str(w, "t.empty", ""), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64), VKLLM_OK);
    const uint8_t a_u8[] = {1, 2, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {65535, 1};
    const int16_t a_i16[] = {-32768, 32767};
    const uint32_t a_u32[] = {1, 2, 3, 4000000000u};
    const int32_t a_i32[] = {-1, 5};
    const float a_f32[] = {1.5f, -2.0f};
    const uint8_t a_bool[] = {1, 0, 1};
    const uint64_t a_u64[] = {UINT64_MAX, 0};
    const int64_t a_i64[] = {INT64_MIN, 42};
    const double a_f64[] = {0.1, -1e300};
    struct {
        const char *k;
        gguf_type t;
        const void *p;
        uint64_t n;
    } arrs[] = {
        {"a.u8", GGUF_TYPE_UINT8, a_u8, 3},     {"a.i8", GGUF_TYPE_INT8, a_i8, 3},
        {"a.u16", GGUF_TYPE_UINT16, a_u16, 2},  {"a.i16", GGUF_TYPE_INT16, a_i16, 2},
        {"a.u32", GGUF_TYPE_UINT32, a_u32, 4},  {"a.i32", GGUF_TYPE_INT32, a_i32, 2},
        {"a.f32", GGUF_TYPE_FLOAT32, a_f32, 2}, {"a.bool", GGUF_TYPE_BOOL, a_bool, 3},
        {"a.u64", GGUF_TYPE_UINT64, a_u64, 2},  {"a.i64", GGUF_TYPE_INT64, a_i64, 2},
        {"a.f64", GGUF_TYPE_FLOAT64, a_f64, 2}, {"a.empty", GGUF_TYPE_UINT32, NULL, 0},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++)
        assert_int_equal(gguf_writer_set_arr(w, arrs[i].k, arrs[i].t, arrs[i].p, arrs[i].n),
                         VKLLM_OK);
    const char *strs[] = {"<s>", "", "\xe2\x96\x81the"};
    assert_int_equal(gguf_writer_set_arr_str(w, "a.str", strs, 3), VKLLM_OK);
    assert_int_equal(gguf_writer_set_arr(w, "a.bad", GGUF_TYPE_STRING, strs, 1),
                     VKLLM_ERR_INVALID_ARG);
    assert_int_equal(gguf_writer_set_u32(w, "", 1), VKLLM_ERR_INVALID_ARG);

    /* tensors of several types; sizes chosen so each needs padding to 64 */
    float f32[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t q8[2 * 34], q4[3 * 18], q41[20], f16[2 * 32 * 2];
    for (size_t i = 0; i < sizeof q8; i++)
        q8[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof q4; i++)
        q4[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof q41; i++)
        q41[i] = (uint8_t)(i * 3);
    for (size_t i = 0; i < sizeof f16; i++)
        f16[i] = (uint8_t)(i ^ 0x5a);
    assert_int_equal(gguf_writer_add_tensor(w, "f32", QT_F32, 1, (uint64_t[]){8}, f32, 32, true),
                     VKLLM_OK);
    assert_int_equal(
        gguf_writer_add_tensor(w, "q8", QT_Q8_0, 2, (uint64_t[]){32, 2}, q8, sizeof q8, false),
        VKLLM_OK);
    assert_int_equal(
        gguf_writer_add_tensor(w, "q4", QT_Q4_0, 3, (uint64_t[]){32, 3, 1}, q4, sizeof q4, true),
        VKLLM_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "q41", QT_Q4_1, 4, (uint64_t[]){32, 1, 1, 1}, q41,
                                            sizeof q41, true),
                     VKLLM_OK);
    assert_int_equal(
        gguf_writer_add_tensor(w, "f16", QT_F16, 2, (uint64_t[]){32, 2}, f16, sizeof f16, true),
        VKLLM_OK);
    assert_int_equal(
        gguf_writer_add_tensor(w, "empty", QT_F32, 2, (uint64_t[]){0, 4}, NULL, 0, true), VKLLM_OK);
    /* what the writer refuses */
    assert_int_equal(gguf_writer_add_tensor(w, "f32", QT_F32, 1, (uint64_t[]){8}, f32, 32, true),
                     VKLLM_ERR_INVALID_ARG); /* duplicate */
    assert_int_equal(gguf_writer_add_tensor(w, "x", QT_F32, 1, (uint64_t[]){8}, f32, 31, true),
                     VKLLM_ERR_INVALID_ARG); /* size does not match */
    assert_int_equal(gguf_writer_add_tensor(w, "x", QT_Q8_0, 1, (uint64_t[]){8}, q8, 34, true),
                     VKLLM_ERR_INVALID_ARG); /* not whole blocks */
    assert_int_equal(
        gguf_writer_add_tensor(w, "x", QT_F32, 5, (uint64_t[]){1, 1, 1, 1, 8}, f32, 32, true),
        VKLLM_ERR_INVALID_ARG);
    assert_int_equal(gguf_writer_add_tensor(w, "x", 4, 1, (uint64_t[]){8}, f32, 32, true),
                     VKLLM_ERR_INVALID_ARG); /* removed ggml type id */
    char long_name[80];
    memset(long_name, 'n', 64);
    long_name[64] = '\0';
    assert_int_equal(
        gguf_writer_add_tensor(w, long_name, QT_F32, 1, (uint64_t[]){8}, f32, 32, true),
        VKLLM_ERR_INVALID_ARG);
    core_err err = {{0}};
    const char *path = tmp_path("round_trip.gguf");
    assert_int_equal(gguf_writer_write(w, path, &err), VKLLM_OK);
    memset(q8, 0, sizeof q8); /* copied: changing the source now does not matter */
    gguf_writer_free(w);

    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, NULL, &f, &err), VKLLM_OK);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 64);
    assert_int_equal(gguf_kv_count(f), 9 + 12 + 1);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float fl;
    bool b;
    gguf_str s;
    assert_true(gguf_get_u32(f, "t.u32", &u32) && u32 == 4000000000u);
    assert_false(gguf_get_i32(f, "t.u32", &i32)); /* does not fit */
    assert_true(gguf_get_i32(f, "t.i32", &i32) && i32 == -7);
    assert_false(gguf_get_u32(f, "t.i32", &u32)); /* negative */
    assert_false(gguf_get_u64(f, "t.i32", &u64));
    assert_true(gguf_get_u64(f, "t.u64", &u64) && u64 == 1ull << 40);
    assert_false(gguf_get_u32(f, "t.u64", &u32));
    assert_true(gguf_get_u64(f, "t.u32", &u64) && u64 == 4000000000u);
    assert_true(gguf_get_f32(f, "t.f32", &fl) && fl == 0.25f);
    assert_false(gguf_get_f32(f, "t.u32", &fl)); /* no int -> float */
    assert_false(gguf_get_u32(f, "t.f32", &u32));
    assert_true(gguf_get_bool(f, "t.bool", &b) && b);
    assert_false(gguf_get_u32(f, "t.bool", &u32));
    assert_true(gguf_get_str(f, "t.str", &s) && gstr_eq(s, "h\xc3\xa9llo \"w\"\n"));
    assert_true(gguf_get_str(f, "t.empty", &s) && s.len == 0);
    assert_false(gguf_get_str(f, "t.u32", &s));
    assert_false(gguf_get_u32(f, "absent", &u32));
    assert_false(gguf_get_u32(f, "t.u3", &u32));
    assert_false(gguf_get_arr(f, "t.u32", NULL, NULL));
    /* the first setting of t.str kept its place (key order is insertion order) */
    assert_int_equal(gguf_find_key(f, "t.str"), 6);
    assert_int_equal(gguf_find_key(f, "general.architecture"), 0);

    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        gguf_type et;
        uint64_t n;
        assert_true(gguf_get_arr(f, arrs[i].k, &et, &n));
        assert_int_equal(et, arrs[i].t);
        assert_int_equal(n, arrs[i].n);
        int64_t k = gguf_find_key(f, arrs[i].k);
        if (n) assert_memory_equal(gguf_arr_data(f, (uint64_t)k), arrs[i].p, n * elem_size(et));
        assert_false(gguf_arr_str(f, (uint64_t)k, 0, &s));
    }
    int64_t k = gguf_find_key(f, "a.i64");
    int64_t iv;
    double dv;
    assert_true(gguf_arr_i64(f, (uint64_t)k, 0, &iv) && iv == INT64_MIN);
    k = gguf_find_key(f, "a.u64");
    assert_false(gguf_arr_i64(f, (uint64_t)k, 0, &iv)); /* UINT64_MAX does not fit */
    assert_true(gguf_arr_f64(f, (uint64_t)k, 1, &dv) && dv == 0.0);
    assert_false(gguf_arr_f64(f, (uint64_t)k, 2, &dv));
    k = gguf_find_key(f, "a.f32");
    assert_true(gguf_arr_f64(f, (uint64_t)k, 0, &dv) && dv == 1.5);
    assert_false(gguf_arr_i64(f, (uint64_t)k, 0, &iv)); /* 1.5 is not an integer */
    assert_true(gguf_arr_i64(f, (uint64_t)k, 1, &iv) && iv == -2);
    k = gguf_find_key(f, "a.i16");
    assert_true(gguf_arr_i64(f, (uint64_t)k, 0, &iv) && iv == -32768);
    k = gguf_find_key(f, "a.str");
    assert_int_equal(gguf_kv_arr_len(f, (uint64_t)k), 3);
    assert_true(gguf_arr_str(f, (uint64_t)k, 0, &s) && gstr_eq(s, "<s>"));
    assert_true(gguf_arr_str(f, (uint64_t)k, 1, &s) && s.len == 0);
    assert_true(gguf_arr_str(f, (uint64_t)k, 2, &s) && gstr_eq(s, "\xe2\x96\x81the"));
    assert_false(gguf_arr_f64(f, (uint64_t)k, 0, &dv));
    k = gguf_find_key(f, "t.i32");
    assert_true(gguf_kv_as_i64(f, (uint64_t)k, &iv) && iv == -7);
    assert_true(gguf_kv_as_f64(f, (uint64_t)k, &dv) && dv == -7.0);
    k = gguf_find_key(f, "t.bool");
    assert_true(gguf_kv_as_i64(f, (uint64_t)k, &iv) && iv == 1);
    assert_false(gguf_kv_as_str(f, (uint64_t)k, &s));

    struct {
        const char *name;
        uint32_t type;
        const void *data;
        uint64_t nbytes;
    } want[] = {{"f32", QT_F32, f32, 32},
                {"q4", QT_Q4_0, q4, sizeof q4},
                {"q41", QT_Q4_1, q41, sizeof q41},
                {"f16", QT_F16, f16, sizeof f16},
                {"empty", QT_F32, NULL, 0}};
    assert_int_equal(gguf_tensor_count(f), 6);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, want[i].name);
        assert_non_null(t);
        assert_int_equal(t->type, want[i].type);
        assert_int_equal(t->nbytes, want[i].nbytes);
        assert_int_equal(t->offset % 64, 0);
        if (want[i].nbytes) assert_memory_equal(t->data, want[i].data, want[i].nbytes);
    }
    const gguf_tensor *t = gguf_find_tensor(f, "q4");
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[0], 32);
    assert_int_equal(t->ne[1], 3);
    assert_int_equal(t->ne[3], 1);
    t = gguf_find_tensor(f, "q8"); /* referenced, not copied: written before the memset */
    for (int i = 0; i < 68; i++)
        assert_int_equal(((const uint8_t *)t->data)[i], i);

    /* copy_kvs: a rewrite keeps every kv byte for byte */
    gguf_writer *w2 = gguf_writer_create(NULL);
    assert_int_equal(gguf_writer_copy_kvs(w2, f), VKLLM_OK);
    const char *path2 = tmp_path("copy.gguf");
    assert_int_equal(gguf_writer_write(w2, path2, &err), VKLLM_OK);
    gguf_writer_free(w2);
    gguf_file *f2 = NULL;
    assert_int_equal(gguf_open(path2, NULL, &f2, &err), VKLLM_OK);
    assert_int_equal(gguf_kv_count(f2), gguf_kv_count(f));
    assert_int_equal(gguf_tensor_count(f2), 0);
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        char b1[512], b2[512];
        gguf_kv_format(f, i, b1, sizeof b1);
        gguf_kv_format(f2, i, b2, sizeof b2);
        assert_string_equal(b1, b2);
        assert_int_equal(gguf_kv_type(f, i), gguf_kv_type(f2, i));
    }
    gguf_close(f2);
    gguf_close(f);
}

/* Scalars of every type and nested arrays (which the typed setters cannot make): built by
 * hand, read, copied through the writer, read again. */
static void test_all_types_and_nested(void **state) {
    (void)state;
    bb b = {0};
    bb_hdr(&b, 2, 0, 14);
    const struct {
        const char *k;
        gguf_type t;
        uint64_t bits;
    } sc[] = {
        {"s.u8", GGUF_TYPE_UINT8, 200},
        {"s.i8", GGUF_TYPE_INT8, 0x80},
        {"s.u16", GGUF_TYPE_UINT16, 60000},
        {"s.i16", GGUF_TYPE_INT16, 0xfffe},
        {"s.u32", GGUF_TYPE_UINT32, 7},
        {"s.i32", GGUF_TYPE_INT32, 0xffffffff},
        {"s.f32", GGUF_TYPE_FLOAT32, 0x3fc00000},
        {"s.bool", GGUF_TYPE_BOOL, 0},
        {"s.u64", GGUF_TYPE_UINT64, UINT64_MAX},
        {"s.i64", GGUF_TYPE_INT64, 0x8000000000000000ull},
        {"s.f64", GGUF_TYPE_FLOAT64, 0x4005bf0a8b145769ull}, /* e */
    };
    const unsigned sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 8, 8};
    for (size_t i = 0; i < 11; i++) {
        bb_str(&b, sc[i].k);
        bb_u32(&b, sc[i].t);
        bb_le(&b, sc[i].bits, sizes[i]);
    }
    bb_kv_str(&b, "s.str", "tab\there");
    /* [[1, 2], [], [3]] as arrays of u16 */
    bb_str(&b, "n.arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u64(&b, 3);
    bb_u32(&b, GGUF_TYPE_UINT16);
    bb_u64(&b, 2);
    bb_le(&b, 1, 2);
    bb_le(&b, 2, 2);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 0);
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 1);
    bb_str(&b, "deep");
    /* an empty array of arrays */
    bb_str(&b, "n.empty");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u64(&b, 0);

    core_err err = {{0}};
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(b.p, b.n, NULL, &f, &err), VKLLM_OK);
    assert_int_equal(gguf_version(f), 2);
    assert_int_equal(gguf_kv_count(f), 14);
    const char *fmt[] = {"200",
                         "-128",
                         "60000",
                         "-2",
                         "7",
                         "-1",
                         "1.5",
                         "false",
                         "18446744073709551615",
                         "-9223372036854775808",
                         "2.718281828459045",
                         "\"tab\\there\"",
                         "[3 x array]",
                         "[0 x array]"};
    for (uint64_t i = 0; i < 14; i++) {
        char buf[128];
        gguf_kv_format(f, i, buf, sizeof buf);
        assert_string_equal(buf, fmt[i]);
    }
    int64_t iv;
    double dv;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    assert_true(gguf_kv_as_i64(f, 1, &iv) && iv == -128);
    assert_false(gguf_kv_as_i64(f, 8, &iv)); /* u64 max */
    assert_true(gguf_kv_as_f64(f, 8, &dv) && dv == 18446744073709551615.0);
    assert_false(gguf_kv_as_i64(f, 6, &iv)); /* 1.5 */
    assert_true(gguf_get_u32(f, "s.u8", &u32) && u32 == 200);
    assert_true(gguf_get_i32(f, "s.u16", &i32) && i32 == 60000);
    assert_true(gguf_get_i32(f, "s.i64", &i32) == false);
    assert_true(gguf_get_u64(f, "s.u64", &u64) && u64 == UINT64_MAX);
    float fl;
    assert_true(gguf_get_f32(f, "s.f64", &fl) && fl > 2.718f && fl < 2.719f);
    assert_int_equal(gguf_kv_type(f, 12), GGUF_TYPE_ARRAY);
    assert_int_equal(gguf_kv_arr_type(f, 12), GGUF_TYPE_ARRAY);
    assert_int_equal(gguf_kv_arr_len(f, 12), 3);
    assert_null(gguf_arr_data(f, 12));
    gguf_str s;
    assert_false(gguf_arr_str(f, 12, 0, &s));
    assert_false(gguf_arr_i64(f, 12, 0, &iv));
    assert_int_equal(gguf_kv_type(f, 99), GGUF_TYPE_COUNT);
    assert_int_equal(gguf_kv_key(f, 99).len, 0);

    gguf_writer *w = gguf_writer_create(NULL);
    assert_int_equal(gguf_writer_copy_kvs(w, f), VKLLM_OK);
    assert_int_equal(gguf_writer_write(w, tmp_path("nested.gguf"), &err), VKLLM_OK);
    gguf_writer_free(w);
    gguf_file *f2 = NULL;
    assert_int_equal(gguf_open(tmp_path("nested.gguf"), NULL, &f2, &err), VKLLM_OK);
    assert_int_equal(gguf_kv_count(f2), 14);
    for (uint64_t i = 0; i < 14; i++) {
        char buf[128];
        gguf_kv_format(f2, i, buf, sizeof buf);
        assert_string_equal(buf, fmt[i]);
    }
    gguf_close(f2);
    gguf_close(f);
    free(b.p);
}

/* ---- rendering --------------------------------------------------------------------------- */

static void test_format(void **state) {
    (void)state;
    gguf_writer *w = gguf_writer_create(NULL);
    char long_str[200];
    memset(long_str, 'x', sizeof long_str - 1);
    long_str[sizeof long_str - 1] = '\0';
    memcpy(long_str + 58, "\xc3\xa9", 2); /* a 2-byte character straddling the cut */
    gguf_writer_set_str(w, "long", long_str);
    gguf_writer_set_str(w, "ctl", "a\x01\x7f\xff\\b");
    const char *toks[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "x"};
    gguf_writer_set_arr_str(w, "toks", toks, 5);
    float fs[] = {1e-5f, 0.1f, 100000.0f};
    gguf_writer_set_arr(w, "fs", GGUF_TYPE_FLOAT32, fs, 3);
    int32_t many[20] = {0};
    gguf_writer_set_arr(w, "many", GGUF_TYPE_INT32, many, 20);
    gguf_writer_set_arr(w, "none", GGUF_TYPE_INT32, NULL, 0);
    core_err err = {{0}};
    assert_int_equal(gguf_writer_write(w, tmp_path("fmt.gguf"), &err), VKLLM_OK);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(tmp_path("fmt.gguf"), NULL, &f, &err), VKLLM_OK);
    char buf[256];
    gguf_kv_format(f, 0, buf, sizeof buf);
    char want[100];
    snprintf(want, sizeof want, "\"%.58s\xc3\xa9x\"...", long_str);
    assert_string_equal(buf, want);
    gguf_kv_format(f, 1, buf, sizeof buf);
    assert_string_equal(buf, "\"a\\x01\\x7f\\xff\\\\b\"");
    gguf_kv_format(f, 2, buf, sizeof buf);
    assert_string_equal(buf, "[5 x string] [\"<|endoftext|>\", \"<|im_start|>\", \"<|im_end|>\", "
                             "\"<repo_name>\", ...]");
    gguf_kv_format(f, 3, buf, sizeof buf);
    assert_string_equal(buf, "[3 x f32] [1e-05, 0.1, 100000]");
    gguf_kv_format(f, 4, buf, sizeof buf);
    assert_string_equal(buf, "[20 x i32] [0, 0, 0, 0, 0, 0, 0, 0, ...]");
    gguf_kv_format(f, 5, buf, sizeof buf);
    assert_string_equal(buf, "[0 x i32] []");
    /* small buffers: always terminated, a cut shows as "..." */
    for (size_t cap = 1; cap < 40; cap++) {
        char small[40];
        memset(small, 'Z', sizeof small);
        gguf_kv_format(f, 2, small, cap);
        assert_true(strlen(small) < cap);
        if (cap >= 4) assert_string_equal(small + strlen(small) - 3, "...");
    }
    gguf_kv_format(f, 0, buf, 0); /* nothing written, no crash */
    gguf_kv_format(f, 99, buf, sizeof buf);
    assert_string_equal(buf, "");
    gguf_close(f);
}

/* ---- hostile input ----------------------------------------------------------------------- */

/* A small valid file from the writer whose last tensor ends exactly at the end of the file,
 * so every strict prefix is missing something. */
static uint8_t *small_valid_file(size_t *n) {
    gguf_writer *w = gguf_writer_create(NULL);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 2);
    gguf_writer_set_f32(w, "f", 1.0f);
    gguf_writer_set_bool(w, "b", false);
    const char *strs[] = {"a", "bc"};
    gguf_writer_set_arr_str(w, "toks", strs, 2);
    int32_t arr[3] = {1, 2, 3};
    gguf_writer_set_arr(w, "ints", GGUF_TYPE_INT32, arr, 3);
    float d[16] = {0};
    gguf_writer_add_tensor(w, "t0", QT_F32, 2, (uint64_t[]){4, 2}, d, 32, true);
    gguf_writer_add_tensor(w, "t1", QT_F32, 1, (uint64_t[]){16}, d, 64, true);
    core_err err = {{0}};
    assert_int_equal(gguf_writer_write(w, tmp_path("small.gguf"), &err), VKLLM_OK);
    gguf_writer_free(w);
    uint8_t *p = read_file(tmp_path("small.gguf"), n);
    assert_non_null(p);
    return p;
}

static void test_truncation(void **state) {
    (void)state;
    size_t n;
    uint8_t *p = small_valid_file(&n);
    core_err err = {{0}};
    gguf_file *f;
    assert_int_equal(open_exact(p, n, false, &f, &err), VKLLM_OK);
    for (size_t cut = 0; cut < n; cut++) {
        vkllm_status st = open_exact(p, cut, false, &f, &err);
        if (st != VKLLM_ERR_BAD_FILE || strncmp(err.msg, "gguf: ", 6) != 0)
            fail_msg("truncated at %zu of %zu: status %d, \"%s\"", cut, n, st, err.msg);
        assert_null(f);
    }
    /* vocab-only does not need the data (32 + 64 bytes after the padding), only every
     * tensor info: prefixes fail up to the end of the infos and open from there on. */
    size_t first_ok = n;
    for (size_t cut = 0; cut < n; cut++) {
        vkllm_status st = open_exact(p, cut, true, &f, &err);
        if (st == VKLLM_OK && first_ok == n) first_ok = cut;
        assert_int_equal(st, cut >= first_ok ? VKLLM_OK : VKLLM_ERR_BAD_FILE);
    }
    assert_true(first_ok <= n - 96 && first_ok > n - 96 - 32);
    free(p);
}

/* One byte changed anywhere must never crash or leak (whatever the verdict). */
static void test_bit_flips(void **state) {
    (void)state;
    size_t n;
    uint8_t *p = small_valid_file(&n);
    core_err err = {{0}};
    gguf_file *f;
    const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < n; i++) {
        uint8_t save = p[i];
        for (size_t v = 0; v < sizeof vals; v++) {
            p[i] = vals[v];
            vkllm_status st = open_exact(p, n, false, &f, &err);
            assert_true(st == VKLLM_OK || st == VKLLM_ERR_BAD_FILE || st == VKLLM_ERR_UNSUPPORTED);
        }
        p[i] = save;
    }
    free(p);
}

static void test_header(void **state) {
    (void)state;
    bb b = {0};
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "gguf: file is empty");
    bb_bytes(&b, "GGML", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "bad magic 47 47 4d 4c at offset 0x0");
    bb_hdr(&b, 1, 0, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_UNSUPPORTED, "version 1 is not supported");
    bb_hdr(&b, 4, 0, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_UNSUPPORTED, "version 4 is not supported");
    bb_hdr(&b, 0, 0, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_UNSUPPORTED, "version 0 is not supported");
    bb_hdr(&b, 0x03000000u, 0, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_UNSUPPORTED, "big-endian");
    bb_hdr(&b, 3, 0, UINT64_MAX);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "claims 0 tensors and 18446744073709551615 kvs");
    bb_hdr(&b, 3, 1ull << 60, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "claims 1152921504606846976 tensors");
    bb_hdr(&b, 3, 0, 2); /* two kvs need at least 28 bytes */
    bb_fill(&b, 27, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "more than the 27 bytes after the header");
    bb_hdr(&b, 3, 0, 0); /* the smallest valid file */
    core_err err = {{0}};
    gguf_file *f;
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
}

static void test_bad_kvs(void **state) {
    (void)state;
    bb b = {0};
    bb_hdr(&b, 3, 0, 2);
    bb_kv_u32(&b, "a", 1);
    bb_u64(&b, UINT64_MAX); /* key length */
    bb_fill(&b, 16, 'k');
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "gguf: kv #1: key length 18446744073709551615 past end of file at offset 0x29");

    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "llama.block_count");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_fill(&b, 8, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "gguf: kv #0 'llama.block_count': string length "
                "18446744073709551615 past end of file at offset 0x35");

    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 0); /* empty key */
    bb_u32(&b, GGUF_TYPE_UINT8);
    bb_u8(&b, 0);
    bb_fill(&b, 8, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "kv #0: empty key at offset 0x18");

    bb_hdr(&b, 3, 0, 2);
    bb_kv_u32(&b, "dup", 1);
    bb_kv_u32(&b, "dup", 2);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "kv #1 'dup': duplicate key (kvs #0 and #1)");

    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, 13);
    bb_fill(&b, 8, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "kv #0 'k': unknown value type 13 at offset 0x21");

    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_BOOL);
    bb_u8(&b, 2);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "bool value 2 at offset 0x25 is not 0 or 1");

    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k\n\x01");
    bb_u32(&b, GGUF_TYPE_UINT64);
    bb_u32(&b, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "kv #0 'k\\x0a\\x01': u64 value (8 bytes) at offset 0x27 past end of file");

    /* arrays */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_UINT64);
    bb_u64(&b, 1ull << 61); /* x 8 bytes overflows */
    bb_fill(&b, 16, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "kv #0 'arr': array length 2305843009213693952 x 8-byte "
                "u64 overflows at offset 0x2b");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_UINT32);
    bb_u64(&b, 5);
    bb_fill(&b, 16, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "array of 5 x u32 (20 bytes) at offset 0x33 past end");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_fill(&b, 16, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "array length 18446744073709551615 at offset 0x2b: "
                "18446744073709551615 string elements cannot fit");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "ok");
    bb_u64(&b, 1000);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "array element #1: string length 1000 past end of file");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, 42);
    bb_u64(&b, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "unknown array element type 42 at offset 0x27");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_BOOL);
    bb_u64(&b, 3);
    bb_u8(&b, 0);
    bb_u8(&b, 1);
    bb_u8(&b, 9);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "bool value 9 at offset 0x35");
    /* nested array bombs: a huge outer count, and nesting past the limit */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "bomb");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u64(&b, 1ull << 62);
    bb_fill(&b, 64, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "4611686018427387904 array elements cannot fit");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "deep");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < 40; i++) {
        bb_u32(&b, GGUF_TYPE_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, GGUF_TYPE_UINT8);
    bb_u64(&b, 0);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "arrays nested deeper than 16 levels");
    /* many small inner arrays: linear work, fine */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "wide");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u64(&b, 10000);
    for (int i = 0; i < 10000; i++) {
        bb_u32(&b, GGUF_TYPE_INT8);
        bb_u64(&b, 0);
    }
    core_err err = {{0}};
    gguf_file *f;
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);

    /* general.alignment */
    const struct {
        uint32_t v;
        const char *msg;
    } aligns[] = {{0, "alignment 0 is not a non-zero power of two"},
                  {3, "alignment 3 is not a non-zero power of two"},
                  {0x80000001u, "alignment 2147483649 is not"}};
    for (size_t i = 0; i < 3; i++) {
        bb_hdr(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", aligns[i].v);
        EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, aligns[i].msg);
    }
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, GGUF_TYPE_UINT64);
    bb_u64(&b, 32);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "kv #0 'general.alignment': alignment has type u64, "
                "expected u32");
}

/* A file with one kv and the given tensor infos; data of data_bytes follows the padding. */
static void tensors_file(bb *b, uint32_t align, size_t n, const char *const *names,
                         const uint32_t *n_dims, const uint64_t (*ne)[5], const uint32_t *types,
                         const uint64_t *offs, size_t data_bytes) {
    bb_hdr(b, 3, n, 1);
    bb_kv_u32(b, "general.alignment", align);
    for (size_t i = 0; i < n; i++)
        bb_tinfo(b, names[i], n_dims[i], ne[i], types[i], offs[i]);
    bb_pad(b, align);
    bb_fill(b, data_bytes, 0xab);
}

#define TF1(b, name, nd, ne0, ne1, type, off, data)                                                \
    tensors_file((b), 32, 1, (const char *const[]){name}, (const uint32_t[]){nd},                  \
                 (const uint64_t[][5]){{ne0, ne1, 1, 1, 1}}, (const uint32_t[]){type},             \
                 (const uint64_t[]){off}, (data))

static void test_bad_tensors(void **state) {
    (void)state;
    bb b = {0};
    core_err err = {{0}};
    gguf_file *f;
    TF1(&b, "ok", 2, 32, 2, QT_Q8_0, 0, 68);
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);

    TF1(&b, "t", 5, 1, 1, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "tensor 't': n_dims 5 at offset 0x42 is not in 1..4");
    TF1(&b, "t", 0, 1, 1, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "n_dims 0");
    TF1(&b, "t", 2, 1ull << 32, 1ull << 32, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "tensor 't': element count overflows at ne[1]");
    TF1(&b, "t", 1, 1ull << 63, 1, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "ne[0] = 9223372036854775808 at offset 0x46 does not fit");
    TF1(&b, "t", 1, 1ull << 62, 1, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "size of 4611686018427387904 x 1 f32 elements overflows");
    TF1(&b, "t", 1, 32, 1, 99, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "tensor 't': unknown tensor type 99 at offset 0x4e");
    TF1(&b, "t", 1, 32, 1, 4, 0, 64); /* Q4_2: removed from ggml */
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "unknown tensor type 4");
    TF1(&b, "t", 1, 33, 1, QT_Q4_0, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "ne[0] = 33 is not a multiple of the q4_0 block size 32");
    TF1(&b, "t", 1, 8, 1, QT_F32, 16, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "data offset 0x10 (at offset 0x52) is not a multiple of "
                "the alignment 32");
    TF1(&b, "blk.3.attn_q.weight", 1, 8, 1, QT_F32, 0, 16);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "gguf: tensor 'blk.3.attn_q.weight': data [0x80, +0x20) "
                "past end of file (size 0x90)");
    TF1(&b, "t", 1, 8, 1, QT_F32, 0xffffffffffffffe0ull, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "overflows");
    TF1(&b, "", 1, 8, 1, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "tensor #0: empty name at offset 0x39");
    char nm[65];
    memset(nm, 'n', 64);
    nm[64] = '\0';
    TF1(&b, nm, 1, 8, 1, QT_F32, 0, 64);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "name of 64 bytes at offset 0x39 is longer than 63 bytes");
    nm[63] = '\0';
    TF1(&b, nm, 1, 8, 1, QT_F32, 0, 64);
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);
    /* an unsupported but known type is the model loader's business, not ours */
    TF1(&b, "t", 1, 256, 1, QT_Q2_K, 0, 96);
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);

    /* two tensors */
    const char *names[] = {"a", "b"};
    const uint32_t nd[] = {1, 1}, ty[] = {QT_F32, QT_F32};
    const uint64_t ne[][5] = {{16, 1, 1, 1, 1}, {8, 1, 1, 1, 1}};
    tensors_file(&b, 32, 2, names, nd, ne, ty, (const uint64_t[]){0, 64}, 96);
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);
    tensors_file(&b, 32, 2, names, nd, ne, ty, (const uint64_t[]){32, 64}, 128);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE,
                "tensor 'b': data [0x40, +0x20) overlaps tensor 'a' "
                "[0x20, +0x40)");
    tensors_file(&b, 32, 2, names, nd, ne, ty, (const uint64_t[]){0, 32}, 96);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "tensor 'b': data [0x20, +0x20) overlaps tensor 'a'");
    tensors_file(&b, 32, 2, (const char *const[]){"same", "same"}, nd, ne, ty,
                 (const uint64_t[]){0, 64}, 96);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "tensor 'same': duplicate tensor name (tensors #0 and #1)");
    /* empty tensors overlap nothing, and may sit anywhere aligned inside the data */
    tensors_file(&b, 32, 2, names, nd, (const uint64_t[][5]){{16, 1, 1, 1, 1}, {0, 1, 1, 1, 1}}, ty,
                 (const uint64_t[]){0, 32}, 64);
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);
    /* a custom alignment applies to the data section and to offsets */
    tensors_file(&b, 64, 2, names, nd, ne, ty, (const uint64_t[]){0, 64}, 96);
    assert_int_equal(open_exact(b.p, b.n, false, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);
    tensors_file(&b, 64, 2, names, nd, ne, ty, (const uint64_t[]){0, 96}, 128);
    EXPECT_FAIL(&b, VKLLM_ERR_BAD_FILE, "not a multiple of the alignment 64");
    /* vocab-only: data may be missing, but the infos must still make sense */
    tensors_file(&b, 32, 2, names, nd, ne, ty, (const uint64_t[]){0, 64}, 0);
    assert_int_equal(open_exact(b.p, b.n, true, &f, &err), VKLLM_OK);
    free(b.p);
    memset(&b, 0, sizeof b);
    tensors_file(&b, 32, 2, names, nd, ne, ty, (const uint64_t[]){0, 32}, 0);
    assert_int_equal(open_exact(b.p, b.n, true, &f, &err), VKLLM_ERR_BAD_FILE);
    assert_non_null(strstr(err.msg, "overlaps"));
    free(b.p);
}

static void test_open_errors(void **state) {
    (void)state;
    core_err err = {{0}};
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(tmp_path("does-not-exist.gguf"), NULL, &f, &err), VKLLM_ERR_IO);
    assert_non_null(strstr(err.msg, "does-not-exist.gguf"));
    assert_null(f);
    assert_int_equal(gguf_open(g_tmpdir, NULL, &f, &err), VKLLM_ERR_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));
    FILE *fp = fopen(tmp_path("empty.gguf"), "wb");
    fclose(fp);
    assert_int_equal(gguf_open(tmp_path("empty.gguf"), NULL, &f, &err), VKLLM_ERR_BAD_FILE);
    assert_non_null(strstr(err.msg, "empty"));
    assert_int_equal(gguf_open_memory(NULL, 5, NULL, &f, &err), VKLLM_ERR_INVALID_ARG);
    gguf_writer *w = gguf_writer_create(NULL);
    gguf_writer_set_u64(w, "general.alignment", 32);
    assert_int_equal(gguf_writer_write(w, tmp_path("x.gguf"), &err), VKLLM_ERR_INVALID_ARG);
    assert_int_equal(gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err), VKLLM_ERR_INVALID_ARG);
    gguf_writer_set_u32(w, "general.alignment", 32);
    assert_int_equal(gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err), VKLLM_ERR_IO);
    gguf_writer_free(w);
    /* NULL-safety of the accessors */
    assert_int_equal(gguf_kv_count(NULL), 0);
    assert_int_equal(gguf_find_key(NULL, "x"), -1);
    assert_null(gguf_find_tensor(NULL, "x"));
    gguf_close(NULL);
    gguf_writer_free(NULL);
}

/* ---- allocation failure ------------------------------------------------------------------ */

typedef struct fail_alloc {
    int left; /* allocations that succeed before the first failure */
    int live; /* outstanding allocations */
} fail_alloc;

static void *fa_alloc(void *user, size_t size, size_t align) {
    fail_alloc *fa = user;
    if (fa->left-- <= 0) return NULL;
    size_t r = (size + align - 1) / align * align;
    void *p = aligned_alloc(align, r);
    if (p) fa->live++;
    return p;
}
static void fa_free(void *user, void *p) {
    ((fail_alloc *)user)->live--;
    free(p);
}

/* Every allocation the reader and writer make may fail: each failure gives OUT_OF_MEMORY and
 * frees everything (SQLite-style fault injection). */
static void test_out_of_memory(void **state) {
    (void)state;
    size_t n;
    uint8_t *p = small_valid_file(&n);
    bool done = false;
    for (int k = 0; !done && k < 1000; k++) {
        fail_alloc fa = {k, 0};
        vkllm_allocator a = {fa_alloc, fa_free, &fa};
        core_err err = {{0}};
        gguf_file *f = NULL;
        vkllm_status st = gguf_open_memory(p, n, &(gguf_open_desc){.allocator = &a}, &f, &err);
        if (st == VKLLM_OK) {
            done = true;
            gguf_close(f);
        } else {
            assert_int_equal(st, VKLLM_ERR_OUT_OF_MEMORY);
            assert_null(f);
        }
        assert_int_equal(fa.live, 0);
    }
    assert_true(done);
    done = false;
    for (int k = 0; !done && k < 1000; k++) {
        fail_alloc fa = {k, 0};
        vkllm_allocator a = {fa_alloc, fa_free, &fa};
        gguf_writer *w = gguf_writer_create(&a);
        vkllm_status st = VKLLM_ERR_OUT_OF_MEMORY;
        if (w) {
            const char *strs[] = {"x", "y"};
            float d[8] = {0};
            vkllm_status s1 = gguf_writer_set_str(w, "a", "b");
            vkllm_status s2 = gguf_writer_set_arr_str(w, "s", strs, 2);
            vkllm_status s3 =
                gguf_writer_add_tensor(w, "t", QT_F32, 1, (uint64_t[]){8}, d, 32, true);
            vkllm_status s4 = gguf_writer_set_u32(w, "a", 3);
            st = s1 ? s1 : s2 ? s2 : s3 ? s3 : s4;
            gguf_writer_free(w);
        }
        assert_true(st == VKLLM_OK || st == VKLLM_ERR_OUT_OF_MEMORY);
        done = st == VKLLM_OK;
        assert_int_equal(fa.live, 0);
    }
    assert_true(done);
    free(p);
}

/* ---- the committed hostile corpus (also run through the CLI by cli_gguf_hostile.sh) ------- */

static void test_hostile_corpus(void **state) {
    (void)state;
    const char *td = getenv("VKLLM_TEST_DATA");
    if (!td) fail_msg("VKLLM_TEST_DATA not set");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/gguf_hostile", td);
    DIR *d = opendir(dir);
    if (!d) fail_msg("%s missing (tools/make_hostile_gguf.py makes it)", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0) continue;
        char p[1300];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        core_err err = {{0}};
        gguf_file *f = NULL;
        vkllm_status st = gguf_open(p, NULL, &f, &err);
        if (st != VKLLM_ERR_BAD_FILE && st != VKLLM_ERR_UNSUPPORTED)
            fail_msg("%s: status %d (%s)", e->d_name, st, err.msg);
        if (strncmp(err.msg, "gguf: ", 6) != 0) fail_msg("%s: message \"%s\"", e->d_name, err.msg);
        n++;
    }
    closedir(d);
    assert_true(n >= 20);
}

static int setup(void **state) {
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/test_gguf.XXXXXX", t && t[0] ? t : "/tmp");
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_model),
        cmocka_unit_test(test_rewrite_real_model),
        cmocka_unit_test(test_vocab_files),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_all_types_and_nested),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_bad_kvs),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_hostile_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
