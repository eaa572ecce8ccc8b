/* vkllm_synth (the `vkllm synth` command): a file of the SmolLM2-135M shape with random
 * weights and the default model's tokenizer loads through the public API with that shape,
 * tokenizes as the default model does, and generates; bad requests (unknown shape or type,
 * rows that do not fit a type's block, a missing vocabulary, no output path) get clear errors
 * and write nothing. That llama.cpp loads the files too is shown in bench/README.md (it needs
 * llama.cpp's build, which the tests do not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vkllm.h"

static char g_dir[64];

static int make_dir(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/vkllm_synth_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static const char *model_path(void) {
    const char *p = getenv("VKLLM_MODEL");
    if (!p) fail_msg("VKLLM_MODEL is not set (scripts/fetch_model.sh)");
    return p;
}

static void tokenize(vkllm_model *m, const char *text, int32_t *ids, size_t *n) {
    assert_int_equal(vkllm_tokenize(m, text, strlen(text), VKLLM_TOKENIZE_ADD_SPECIAL, ids, 64, n),
                     VKLLM_OK);
}

static void test_synth_loads(void **state) {
    (void)state;
    const char *types[] = {"q4_0", "Q8_0"};
    vkllm_runtime *rt;
    assert_int_equal(
        vkllm_runtime_create(&(vkllm_runtime_desc){.device = "cpu", .n_threads = 2}, &rt),
        VKLLM_OK);
    vkllm_model *ref;
    assert_int_equal(vkllm_model_load(rt, &(vkllm_model_desc){.path = model_path()}, &ref),
                     VKLLM_OK);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        char path[128], err[512] = "";
        snprintf(path, sizeof path, "%s/synth-%zu.gguf", g_dir, t);
        vkllm_synth_desc d = {.shape = "smollm2-135m",
                              .type = types[t],
                              .vocab_path = model_path(),
                              .out_path = path,
                              .seed = 7};
        if (vkllm_synth(&d, err, sizeof err) != VKLLM_OK) fail_msg("synth: %s", err);
        vkllm_model *m;
        assert_int_equal(vkllm_model_load(rt, &(vkllm_model_desc){.path = path}, &m), VKLLM_OK);
        vkllm_model_info mi = {0};
        vkllm_model_get_info(m, &mi);
        assert_int_equal(mi.n_embd, 576);
        assert_int_equal(mi.n_layer, 30);
        assert_int_equal(mi.n_head, 9);
        assert_int_equal(mi.n_head_kv, 3);
        assert_int_equal(mi.n_ff, 1536);
        assert_int_equal(mi.n_vocab, 49152);
        int32_t a[64], b[64];
        size_t na, nb;
        tokenize(m, "Hello, world! 12345", a, &na);
        tokenize(ref, "Hello, world! 12345", b, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof *a);
        vkllm_session *s;
        assert_int_equal(vkllm_session_create(m, &(vkllm_session_desc){.n_ctx = 64}, &s), VKLLM_OK);
        vkllm_generate_result res = {0};
        vkllm_generate_desc gd = {.prompt = "Hello",
                                  .max_tokens = 4,
                                  .ignore_eog = true,
                                  .sampling = {.temperature = 0.0f}};
        assert_int_equal(vkllm_generate(s, &gd, &res), VKLLM_OK);
        assert_int_equal(res.n_generated, 4);
        vkllm_session_destroy(s);
        vkllm_model_free(m);
        unlink(path);
    }
    vkllm_model_free(ref);
    vkllm_runtime_destroy(rt);
}

static void expect_error(const vkllm_synth_desc *d, vkllm_status want, const char *needle) {
    char err[512] = "";
    assert_int_equal(vkllm_synth(d, err, sizeof err), want);
    if (!strstr(err, needle)) fail_msg("error '%s' does not mention '%s'", err, needle);
    if (d && d->out_path) assert_int_not_equal(access(d->out_path, F_OK), 0); /* nothing written */
}

static void test_synth_errors(void **state) {
    (void)state;
    char out[128];
    snprintf(out, sizeof out, "%s/bad.gguf", g_dir);
    const char *vocab = model_path();
    expect_error(NULL, VKLLM_ERR_INVALID_ARG, "required");
    expect_error(&(vkllm_synth_desc){.shape = "llama-9000", .vocab_path = vocab, .out_path = out},
                 VKLLM_ERR_INVALID_ARG, "unknown shape 'llama-9000' (known: smollm2-135m");
    expect_error(
        &(vkllm_synth_desc){
            .shape = "smollm2-135m", .type = "q3_x", .vocab_path = vocab, .out_path = out},
        VKLLM_ERR_INVALID_ARG, "unknown or unsupported weight type 'q3_x'");
    /* 576-wide rows are not a multiple of Q4_K's 256-element blocks */
    expect_error(
        &(vkllm_synth_desc){
            .shape = "smollm2-135m", .type = "q4_k", .vocab_path = vocab, .out_path = out},
        VKLLM_ERR_INVALID_ARG, "not a multiple of q4_K's block of 256");
    expect_error(&(vkllm_synth_desc){.shape = "smollm2-135m",
                                     .vocab_path = "/nonexistent.gguf",
                                     .out_path = out},
                 VKLLM_ERR_IO, "/nonexistent.gguf");
    expect_error(&(vkllm_synth_desc){.shape = "smollm2-135m", .vocab_path = vocab},
                 VKLLM_ERR_INVALID_ARG, "required");
    expect_error(&(vkllm_synth_desc){.shape = "smollm2-135m", .out_path = out},
                 VKLLM_ERR_INVALID_ARG, "a vocabulary file is required");
    const char *const *shapes = vkllm_synth_shapes();
    int n = 0;
    for (; shapes[n]; n++)
        assert_non_null(vkllm_synth_shape_vocab(shapes[n]));
    assert_true(n >= 3);
    assert_null(vkllm_synth_shape_vocab("nope"));
}

static int remove_dir(void **state) {
    (void)state;
    return rmdir(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_loads),
        cmocka_unit_test(test_synth_errors),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
