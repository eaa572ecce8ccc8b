/* vkllm_quantize through the public API (src/api_quantize.c; that its files are llama-quantize's
 * byte for byte is cli_quantize's job): the result and progress it reports, the same bytes for
 * any thread count, a short struct_size, and refusals that leave nothing behind. */
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

static char g_dir[64], g_in[128];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/vkllm_quantize_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    const char *vd = getenv("VKLLM_VOCAB_DIR");
    if (!vd) return -1;
    char vocab[512], err[512];
    snprintf(vocab, sizeof vocab, "%s/ggml-vocab-llama-spm.gguf", vd);
    snprintf(g_in, sizeof g_in, "%s/in.gguf", g_dir);
    vkllm_synth_desc d = {
        .shape = "tiny-quant", .type = "f16", .vocab_path = vocab, .out_path = g_in, .seed = 3};
    if (vkllm_synth(&d, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "synth: %s (scripts/fetch_vocabs.sh)\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(g_in);
    return rmdir(g_dir);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

typedef struct progress {
    uint64_t calls, last, total;
} progress;

static void on_progress(void *user, uint64_t done, uint64_t total) {
    progress *p = user;
    assert_true(done > p->last && done <= total);
    p->calls++;
    p->last = done;
    p->total = total;
}

static void test_result_and_threads(void **state) {
    (void)state;
    char out[160], err[512] = "";
    uint8_t *first = NULL;
    size_t first_n = 0;
    const uint32_t threads[] = {1, 3, 0};
    for (size_t k = 0; k < 3; k++) {
        snprintf(out, sizeof out, "%s/out%zu.gguf", g_dir, k);
        progress pr = {0};
        vkllm_quantize_result r = {.struct_size = sizeof r};
        vkllm_quantize_desc d = {.struct_size = sizeof d,
                                 .in_path = g_in,
                                 .out_path = out,
                                 .type = "Q4_K_S",
                                 .n_threads = threads[k],
                                 .progress = on_progress,
                                 .progress_user = &pr,
                                 .result = &r};
        if (vkllm_quantize(&d, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
        /* token_embd, output_norm, and per layer 2 norms and 7 matrices */
        assert_int_equal(r.n_tensors, 2 + 8 * 9);
        /* every matrix converted; the 18 norms are f32 already */
        assert_int_equal(r.n_converted, 1 + 8 * 7);
        assert_int_equal(pr.calls, r.n_converted);
        assert_int_equal(pr.total, r.n_tensors);
        /* rows of 160: all but ffn_down (rows of 256) fall back from Q4_K; the tied token
         * embedding goes to Q8_0 by the output rule, not by a fallback */
        assert_int_equal(r.n_fallback, 8 * 6);
        assert_true(r.bytes_out > 0 && r.bytes_out < r.bytes_in);
        assert_int_equal(r.n_elements, r.bytes_in / 2 - 8 * 2 * 160 - 160); /* f16 but norms */
        size_t n;
        uint8_t *bytes = slurp(out, &n);
        if (!first) {
            first = bytes;
            first_n = n;
        } else {
            assert_int_equal(n, first_n);
            assert_memory_equal(bytes, first, n);
            free(bytes);
        }
        unlink(out);
    }
    free(first);
}

/* A caller built against a vkllm.h without result: struct_size up to allocator. */
static void test_short_struct(void **state) {
    (void)state;
    char out[160], err[512] = "";
    snprintf(out, sizeof out, "%s/short.gguf", g_dir);
    vkllm_quantize_result r = {.struct_size = sizeof r, .n_tensors = 12345};
    vkllm_quantize_desc d = {.in_path = g_in, .out_path = out, .type = "q8_0", .result = &r};
    d.struct_size = (uint32_t)offsetof(vkllm_quantize_desc, result);
    if (vkllm_quantize(&d, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    assert_int_equal(r.n_tensors, 12345); /* the field past its struct_size was not read */
    assert_int_equal(access(out, F_OK), 0);
    unlink(out);
}

static void expect_refused(const vkllm_quantize_desc *d, vkllm_status st, const char *msg) {
    char err[512] = "";
    assert_int_equal(vkllm_quantize(d, err, sizeof err), st);
    if (!strstr(err, msg)) fail_msg("'%s' does not say '%s'", err, msg);
    if (d && d->out_path) assert_int_equal(access(d->out_path, F_OK), -1);
}

static void test_refusals(void **state) {
    (void)state;
    char out[160];
    snprintf(out, sizeof out, "%s/never.gguf", g_dir);
    expect_refused(NULL, VKLLM_ERR_INVALID_ARG, "required");
    expect_refused(&(vkllm_quantize_desc){.in_path = g_in, .out_path = out, .type = "q2_k"},
                   VKLLM_ERR_INVALID_ARG, "unknown quantization type 'q2_k'");
    expect_refused(
        &(vkllm_quantize_desc){.in_path = "/nonexistent.gguf", .out_path = out, .type = "q4_0"},
        VKLLM_ERR_IO, "/nonexistent.gguf");
    expect_refused(&(vkllm_quantize_desc){.in_path = g_in,
                                          .out_path = out,
                                          .type = "q4_0",
                                          .imatrix_path = "/nonexistent.imatrix"},
                   VKLLM_ERR_IO, "/nonexistent.imatrix");
    /* a quantized input without allow_requantize */
    char q[160], err[512];
    snprintf(q, sizeof q, "%s/q.gguf", g_dir);
    vkllm_quantize_desc d = {.in_path = g_in, .out_path = q, .type = "q5_0"};
    if (vkllm_quantize(&d, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    expect_refused(&(vkllm_quantize_desc){.in_path = q, .out_path = out, .type = "q8_0"},
                   VKLLM_ERR_INVALID_ARG, "requantizing");
    d = (vkllm_quantize_desc){
        .in_path = q, .out_path = out, .type = "q8_0", .allow_requantize = true};
    if (vkllm_quantize(&d, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    unlink(out);
    unlink(q);
    /* nothing else was left in the folder */
    assert_int_equal(access(g_dir, F_OK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_and_threads),
        cmocka_unit_test(test_short_struct),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
