/* loader/imatrix.c: llama-imatrix's files read back (the two .imatrix.gguf files of
 * tests/data/quantize, made by llama-imatrix) and written again byte for byte; the weights
 * llama-quantize derives from them; the legacy .dat format; malformed files (every truncation of a
 * legacy file, unpaired or mis-sized tensors) and bad writer input rejected with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/quant.h"
#include "loader/gguf.h"
#include "loader/imatrix.h"

static char g_dir[64];

static int make_dir(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/vkllm_imatrix_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    return rmdir(g_dir);
}

static void data_path(char *buf, size_t cap, const char *name) {
    const char *d = getenv("VKLLM_TEST_DATA");
    if (!d) fail_msg("VKLLM_TEST_DATA is not set");
    snprintf(buf, cap, "%s/quantize/%s", d, name);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Reads llama-imatrix's file and writes it back: the same bytes. */
static void roundtrip(const char *name, uint32_t chunk_count) {
    char path[512], out[128];
    data_path(path, sizeof path, name);
    imatrix *m = NULL;
    core_err e = {{0}};
    if (imatrix_load(path, NULL, &m, &e) != VKLLM_OK) fail_msg("%s", e.msg);
    assert_false(m->legacy);
    assert_true(m->has_metadata);
    assert_int_equal(m->chunk_count, chunk_count);
    assert_int_equal(m->chunk_size, 128);
    assert_int_equal(m->n_datasets, 1);
    assert_string_equal(m->datasets[0], "imatrix.txt");
    assert_true(m->n_entries > 10);
    imatrix_write_entry *we = calloc(m->n_entries, sizeof *we);
    assert_non_null(we);
    /* reversed: the writer sorts */
    for (uint64_t i = 0; i < m->n_entries; i++) {
        const imatrix_entry *s = &m->entries[m->n_entries - 1 - i];
        we[i] = (imatrix_write_entry){s->name, s->sums, s->n_values, s->counts, s->n_counts};
    }
    snprintf(out, sizeof out, "%s/rewritten.gguf", g_dir);
    imatrix_write_desc d = {.entries = we,
                            .n_entries = m->n_entries,
                            .datasets = (const char *const *)m->datasets,
                            .n_datasets = m->n_datasets,
                            .chunk_count = m->chunk_count,
                            .chunk_size = m->chunk_size};
    if (imatrix_write(out, &d, &e) != VKLLM_OK) fail_msg("%s", e.msg);
    size_t na, nb;
    uint8_t *a = slurp(path, &na), *b = slurp(out, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* the weights: sums over counts */
    const imatrix_entry *q = imatrix_find(m, "blk.0.attn_q.weight");
    assert_non_null(q);
    assert_null(imatrix_find(m, "blk.0.attn_q.weigh"));
    float *w = malloc(q->n_values * sizeof *w);
    imatrix_weights(m, q, w);
    assert_true(q->counts[0] > 0);
    for (uint64_t i = 0; i < q->n_values; i++)
        assert_true(w[i] == q->sums[i] / (float)q->counts[0]);
    free(w);
    free(a);
    free(b);
    free(we);
    imatrix_free(m);
    unlink(out);
}

static void test_gguf_roundtrip(void **state) {
    (void)state;
    roundtrip("tiny.imatrix.gguf", 4);
    roundtrip("smollm2.imatrix.gguf", 4);
}

static size_t put_i32(uint8_t *p, int32_t v) {
    memcpy(p, &v, 4);
    return 4;
}

static size_t legacy_entry(uint8_t *p, const char *name, int32_t ncall, const float *v, int n) {
    size_t o = put_i32(p, (int32_t)strlen(name));
    memcpy(p + o, name, strlen(name));
    o += strlen(name);
    o += put_i32(p + o, ncall);
    o += put_i32(p + o, n);
    memcpy(p + o, v, (size_t)n * 4);
    return o + (size_t)n * 4;
}

static void test_legacy(void **state) {
    (void)state;
    uint8_t buf[512];
    const float a[4] = {2, 4, 6, 8}, b[2] = {1, 3}, c[4] = {10, 20, 30, 40};
    size_t n = put_i32(buf, 3);
    n += legacy_entry(buf + n, "w.a", 2, a, 4);
    n += legacy_entry(buf + n, "w.b", 0, b, 2);
    n += legacy_entry(buf + n, "w.a", 10, c, 4); /* the last of a name wins, as in llama.cpp */
    n += put_i32(buf + n, 7);
    n += put_i32(buf + n, 8);
    memcpy(buf + n, "wiki.txt", 8);
    n += 8;
    char path[128];
    snprintf(path, sizeof path, "%s/legacy.dat", g_dir);
    spit(path, buf, n);
    imatrix *m = NULL;
    core_err e = {{0}};
    if (imatrix_load(path, NULL, &m, &e) != VKLLM_OK) fail_msg("%s", e.msg);
    assert_true(m->legacy);
    assert_int_equal(m->n_entries, 2);
    assert_int_equal(m->chunk_count, 7);
    assert_int_equal(m->n_datasets, 1);
    assert_string_equal(m->datasets[0], "wiki.txt");
    float w[4];
    imatrix_weights(m, imatrix_find(m, "w.a"), w);
    assert_true(w[0] == 1.0f && w[3] == 4.0f);
    imatrix_weights(m, imatrix_find(m, "w.b"), w); /* ncall 0: the sums themselves */
    assert_true(w[0] == 1.0f && w[1] == 3.0f);
    imatrix_free(m);
    /* every truncation inside the entries is an error, never a crash */
    const size_t entries_end = n - 16;
    for (size_t k = 0; k < entries_end; k++) {
        spit(path, buf, k);
        m = NULL;
        assert_int_not_equal(imatrix_load(path, NULL, &m, &e), VKLLM_OK);
        assert_null(m);
        assert_non_null(strstr(e.msg, "legacy.dat"));
    }
    /* a negative name length */
    put_i32(buf + 4, -5);
    spit(path, buf, n);
    assert_int_equal(imatrix_load(path, NULL, &m, &e), VKLLM_ERR_BAD_FILE);
    assert_non_null(strstr(e.msg, "bad name"));
    unlink(path);
}

/* A GGUF file of the given f32 tensors (name, ne0, ne1), values 1. */
static void write_gguf(const char *path, const char *const *names, const uint64_t (*ne)[2], int n,
                       bool metadata) {
    gguf_writer *w = gguf_writer_create(NULL);
    static float ones[64];
    for (int i = 0; i < 64; i++)
        ones[i] = 1.0f;
    if (metadata) {
        const char *ds[] = {"x.txt"};
        assert_int_equal(gguf_writer_set_arr_str(w, "imatrix.datasets", ds, 1), VKLLM_OK);
        assert_int_equal(gguf_writer_set_u32(w, "imatrix.chunk_count", 1), VKLLM_OK);
        assert_int_equal(gguf_writer_set_u32(w, "imatrix.chunk_size", 64), VKLLM_OK);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(gguf_writer_add_tensor(w, names[i], QT_F32, 2, ne[i], ones,
                                                ne[i][0] * ne[i][1] * 4, true),
                         VKLLM_OK);
    core_err e = {{0}};
    assert_int_equal(gguf_writer_write(w, path, &e), VKLLM_OK);
    gguf_writer_free(w);
}

static void expect_bad(const char *path, const char *msg) {
    imatrix *m = NULL;
    core_err e = {{0}};
    assert_int_equal(imatrix_load(path, NULL, &m, &e), VKLLM_ERR_BAD_FILE);
    assert_null(m);
    if (!strstr(e.msg, msg)) fail_msg("'%s' does not say '%s'", e.msg, msg);
}

static void test_gguf_malformed(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.gguf", g_dir);
    const uint64_t ne_ok[2][2] = {{8, 2}, {1, 2}};
    write_gguf(path, (const char *const[]){"w.in_sum2"}, ne_ok, 1, true);
    expect_bad(path, "no matching .counts");
    write_gguf(path, (const char *const[]){"w.counts"}, ne_ok + 1, 1, true);
    expect_bad(path, "w.counts has no matching .in_sum2");
    const uint64_t ne_odd[2][2] = {{7, 1}, {1, 2}};
    write_gguf(path, (const char *const[]){"w.in_sum2", "w.counts"}, ne_odd, 2, true);
    expect_bad(path, "7 sums do not split into 2 rows");
    write_gguf(path, (const char *const[]){"w.other"}, ne_ok, 0, true);
    expect_bad(path, "no tensors");
    /* well formed without metadata: loads, has_metadata false (llama-quantize refuses it) */
    write_gguf(path, (const char *const[]){"w.in_sum2", "w.counts"}, ne_ok, 2, false);
    imatrix *m = NULL;
    core_err e = {{0}};
    assert_int_equal(imatrix_load(path, NULL, &m, &e), VKLLM_OK);
    assert_false(m->has_metadata);
    assert_int_equal(m->n_entries, 1);
    assert_int_equal(m->entries[0].n_counts, 2);
    imatrix_free(m);
    unlink(path);
    assert_int_equal(imatrix_load(path, NULL, &m, &e), VKLLM_ERR_IO);
}

static void test_writer_errors(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/w.gguf", g_dir);
    const float s[6] = {1, 2, 3, 4, 5, 6};
    const int64_t c[2] = {3, 0};
    core_err e = {{0}};
    imatrix_write_entry bad_split = {"w", s, 5, c, 2};
    imatrix_write_desc d = {.entries = &bad_split, .n_entries = 1};
    assert_int_equal(imatrix_write(path, &d, &e), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "do not split"));
    imatrix_write_entry long_name = {
        "blk.0.a_name_that_is_far_too_long_for_a_ggml_tensor_name.weight", s, 6, c, 2};
    d.entries = &long_name;
    assert_int_equal(imatrix_write(path, &d, &e), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "too long"));
    const imatrix_write_entry dup[2] = {{"w", s, 6, c, 2}, {"w", s, 6, c, 2}};
    d.entries = dup;
    d.n_entries = 2;
    assert_int_equal(imatrix_write(path, &d, &e), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(e.msg, "two entries named w"));
    assert_int_equal(access(path, F_OK), -1);
    /* a good one reads back; the empty entry is left out; count 0 gives weights of 1 */
    const imatrix_write_entry good[2] = {{"w", s, 6, c, 2}, {"empty", NULL, 0, NULL, 0}};
    d.entries = good;
    if (imatrix_write(path, &d, &e) != VKLLM_OK) fail_msg("%s", e.msg);
    imatrix *m = NULL;
    if (imatrix_load(path, NULL, &m, &e) != VKLLM_OK) fail_msg("%s", e.msg);
    assert_int_equal(m->n_entries, 1);
    float w[6];
    imatrix_weights(m, &m->entries[0], w);
    assert_true(w[0] == 1.0f / 3 && w[2] == 1.0f && w[3] == 1.0f && w[5] == 1.0f);
    imatrix_free(m);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_roundtrip),
        cmocka_unit_test(test_legacy),
        cmocka_unit_test(test_gguf_malformed),
        cmocka_unit_test(test_writer_errors),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
