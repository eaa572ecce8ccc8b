/* Tests of loader/gguf*.c on valid input: the reader on the real default model and on
 * llama.cpp's vocab files, the writer by round trip (byte-identical rewrite of the real model,
 * every value type, nested arrays), and value rendering. Malformed input is tested in
 * test_gguf_hostile.c. Run under ASan+UBSan too (-DVKLLM_SANITIZE=ON).
 */
#include "gguf_test_util.h"

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
    /* a removed key is not written; removing it again finds nothing */
    assert_int_equal(gguf_writer_set_u32(w, "t.gone", 1), VKLLM_OK);
    assert_true(gguf_writer_remove(w, "t.gone"));
    assert_false(gguf_writer_remove(w, "t.gone"));
    assert_false(gguf_writer_remove(w, "t.never"));

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
    assert_true(gguf_find_key(f, "t.gone") < 0);
    assert_int_equal(gguf_find_key(f, "general.architecture"), 0);

    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        gguf_type et;
        uint64_t n;
        assert_true(gguf_get_arr(f, arrs[i].k, &et, &n));
        assert_int_equal(et, arrs[i].t);
        assert_int_equal(n, arrs[i].n);
        int64_t k = gguf_find_key(f, arrs[i].k);
        if (n) assert_memory_equal(gguf_arr_data(f, (uint64_t)k), arrs[i].p, n * gguf_type_size(et));
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_model),
        cmocka_unit_test(test_rewrite_real_model),
        cmocka_unit_test(test_vocab_files),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_all_types_and_nested),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, gguf_test_setup, gguf_test_teardown);
}
