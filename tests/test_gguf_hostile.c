/* The GGUF reader's answer to hostile input: every malformed file must fail with the right
 * status and a message naming what is wrong, never crash, never leak (run under ASan+UBSan).
 *
 * Hostile files are built here byte by byte (gguf_test_util.h's builder mirrors the GGUF
 * layout), or derived from a valid file made with our writer (truncation at every offset,
 * byte overwrites). Buffers handed to the reader are exactly the file's size, so ASan sees
 * any read past the end. Also: allocation failure at every allocation, and the committed
 * corpus tests/data/gguf_hostile/ (which cli_gguf_hostile.sh also runs through the CLI).
 */
#include "gguf_test_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_bad_kvs),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_hostile_corpus),
    };
    return cmocka_run_group_tests(tests, gguf_test_setup, gguf_test_teardown);
}
