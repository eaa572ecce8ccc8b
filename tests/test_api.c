/* The public API's contract (include/vkllm.h): zero-value descs, status codes and messages
 * for bad input, allocator callbacks, vocab-only models, detokenize, sampling with seeds,
 * cancel and stop reasons, and context limits. Uses $VKLLM_MODEL and $VKLLM_VOCAB_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vkllm.h"

static const char *model_path(void) {
    const char *p = getenv("VKLLM_MODEL");
    if (!p || !*p) fail_msg("VKLLM_MODEL is not set (ctest sets it)");
    return p;
}

static vkllm_runtime *cpu_runtime(void) {
    vkllm_runtime *rt = NULL;
    vkllm_runtime_desc rd = {.device = "cpu", .n_threads = 2};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    return rt;
}

/* Counts allocations made through the callbacks: every one must be freed. */
typedef struct counter {
    long live, total;
} counter;

static void *count_alloc(void *user, size_t size, size_t align) {
    counter *c = user;
    void *p = aligned_alloc(align, (size + align - 1) / align * align);
    if (p) c->live++, c->total++;
    return p;
}

static void count_free(void *user, void *p) {
    ((counter *)user)->live--;
    free(p);
}

static void test_runtime_bad_args(void **state) {
    vkllm_runtime *rt = (vkllm_runtime *)1;
    vkllm_runtime_desc rd = {.device = "tpu"};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_INVALID_ARG);
    assert_null(rt);
    assert_non_null(strstr(vkllm_runtime_last_error(NULL), "unknown device 'tpu'"));
    rd = (vkllm_runtime_desc){.device = "vulkan:77"};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_NO_DEVICE);
    rd = (vkllm_runtime_desc){.n_threads = -3};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_INVALID_ARG);
    rd = (vkllm_runtime_desc){.allocator = {.alloc = NULL, .free = count_free}};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_INVALID_ARG);
    /* zero desc and NULL desc both mean defaults */
    assert_int_equal(vkllm_runtime_create(NULL, &rt), VKLLM_OK);
    /* auto: a Vulkan GPU where there is one, else the CPU */
    assert_true(strncmp(vkllm_runtime_backend_name(rt), "cpu", 3) == 0 ||
                strncmp(vkllm_runtime_backend_name(rt), "vulkan", 6) == 0);
    vkllm_runtime_destroy(rt);
    assert_string_equal(vkllm_status_str(VKLLM_ERR_CONTEXT_FULL), "context full");
}

/* cpu_isa picks the CPU backend's kernel set: scalar always works; a SIMD set works where the
 * processor has it (the backend's name says which is in use) and is NO_DEVICE with a message
 * naming it elsewhere; an unknown name is INVALID_ARG, whatever the device. */
static void test_runtime_cpu_isa(void **state) {
    vkllm_runtime *rt;
    vkllm_runtime_desc rd = {.device = "cpu", .n_threads = 1, .cpu_isa = "avx9"};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_runtime_last_error(NULL), "unknown CPU kernel set 'avx9'"));
    rd.device = "vulkan";
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_ERR_INVALID_ARG);
    rd.device = "cpu";
    static const char *const sets[] = {"scalar", "avx2", "avx512", "avx512vnni", "auto"};
    int available = 0;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        rd.cpu_isa = sets[i];
        const vkllm_status st = vkllm_runtime_create(&rd, &rt);
        char want[64];
        snprintf(want, sizeof want, "cpu (%s,", sets[i]);
        if (st == VKLLM_OK) {
            if (strcmp(sets[i], "auto") != 0)
                assert_non_null(strstr(vkllm_runtime_backend_name(rt), want));
            print_message("cpu_isa %s: %s\n", sets[i], vkllm_runtime_backend_name(rt));
            vkllm_runtime_destroy(rt);
            available++;
        } else {
            assert_int_equal(st, VKLLM_ERR_NO_DEVICE);
            assert_string_not_equal(sets[i], "scalar");
            assert_string_not_equal(sets[i], "auto");
            snprintf(want, sizeof want, "no %s kernels", sets[i]);
            assert_non_null(strstr(vkllm_runtime_last_error(NULL), want));
            print_message("cpu_isa %s: %s\n", sets[i], vkllm_runtime_last_error(NULL));
        }
    }
    assert_true(available >= 2); /* scalar and auto */
}

static void test_model_load_errors(void **state) {
    vkllm_runtime *rt = cpu_runtime();
    vkllm_model *m = (vkllm_model *)1;
    vkllm_model_desc md = {.path = "/nonexistent/dir/model.gguf"};
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_ERR_IO);
    assert_null(m);
    assert_non_null(strstr(vkllm_runtime_last_error(rt), "model.gguf"));
    md.path = NULL;
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_ERR_INVALID_ARG);
    vkllm_runtime_destroy(rt);
}

static void test_allocator_callbacks(void **state) {
    counter c = {0};
    vkllm_runtime_desc rd = {
        .device = "cpu", .n_threads = 2, .allocator = {count_alloc, count_free, &c}};
    vkllm_runtime *rt;
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    vkllm_model *m;
    vkllm_model_desc md = {.path = model_path()};
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_OK);
    vkllm_session *s;
    vkllm_session_desc sd = {.n_ctx = 64};
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    vkllm_generate_desc gd = {.prompt = "Hello", .max_tokens = 4};
    assert_int_equal(vkllm_generate(s, &gd, NULL), VKLLM_OK);
    long during = c.total;
    assert_int_equal(vkllm_generate(s, &(vkllm_generate_desc){.max_tokens = 4}, NULL), VKLLM_OK);
    assert_int_equal(c.total, during); /* nothing allocated per token */
    vkllm_session_destroy(s);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    assert_true(c.total > 10);
    assert_int_equal(c.live, 0);
}

static void test_vocab_only(void **state) {
    const char *dir = getenv("VKLLM_VOCAB_DIR");
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/ggml-vocab-llama-spm.gguf", dir);
    vkllm_runtime *rt = cpu_runtime();
    vkllm_model *m;
    vkllm_model_desc md = {.path = path, .vocab_only = true};
    if (vkllm_model_load(rt, &md, &m) != VKLLM_OK)
        fail_msg("%s: %s (run scripts/fetch_vocabs.sh)", path, vkllm_runtime_last_error(rt));
    vkllm_session *s = (vkllm_session *)1;
    assert_int_equal(vkllm_session_create(m, NULL, &s), VKLLM_ERR_INVALID_ARG);
    assert_null(s);
    assert_non_null(strstr(vkllm_model_last_error(m), "vocab-only"));
    /* tokenize, detokenize: round trip without the SentencePiece space prefix */
    const char *text = "Hello world, it's 2026!";
    int32_t ids[64];
    size_t n;
    assert_int_equal(vkllm_tokenize(m, text, strlen(text), VKLLM_TOKENIZE_ADD_SPECIAL, ids, 64, &n),
                     VKLLM_OK);
    assert_int_equal(ids[0], 1); /* BOS */
    char out[128];
    size_t len;
    assert_int_equal(vkllm_detokenize(m, ids, n, false, out, sizeof out, &len), VKLLM_OK);
    if (len != strlen(text)) fail_msg("detokenized to [%.*s]", (int)len, out);
    assert_memory_equal(out, text, len);
    /* too small a buffer reports the size needed */
    size_t need;
    int32_t small[2];
    assert_int_equal(vkllm_tokenize(m, text, strlen(text), 0, small, 2, &need),
                     VKLLM_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, n - 1);
    assert_int_equal(vkllm_detokenize(m, ids, n, false, out, 3, &len), VKLLM_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, strlen(text));
    assert_int_equal(vkllm_token_to_piece(m, -1, false, out, sizeof out, &len),
                     VKLLM_ERR_INVALID_ARG);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

typedef struct collect {
    int32_t ids[256];
    int n, stop_after;
} collect;

static bool on_token(void *user, int32_t tok, const char *piece, size_t len) {
    collect *c = user;
    if (c->n < 256) c->ids[c->n++] = tok;
    return c->stop_after == 0 || c->n < c->stop_after;
}

static void gen(vkllm_session *s, const vkllm_sampling *smp, collect *c, int n,
                vkllm_generate_result *r) {
    vkllm_session_reset(s);
    c->n = 0;
    vkllm_generate_desc gd = {.prompt = "Once upon a time",
                              .max_tokens = n,
                              .sampling = *smp,
                              .on_token = on_token,
                              .user = c,
                              .ignore_eog = true};
    assert_int_equal(vkllm_generate(s, &gd, r), VKLLM_OK);
}

static void test_sampling_and_stops(void **state) {
    vkllm_runtime *rt = cpu_runtime();
    vkllm_model *m;
    vkllm_model_desc md = {.path = model_path()};
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_OK);
    vkllm_session *s;
    vkllm_session_desc sd = {.n_ctx = 256};
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    vkllm_generate_result r = {0};
    collect a = {0}, b = {0}, c = {0};
    vkllm_sampling hot = {.temperature = 1.0f,
                          .top_k = 40,
                          .top_p = 0.95f,
                          .min_p = 0.05f,
                          .repeat_penalty = 1.1f,
                          .seed = 1234};
    gen(s, &hot, &a, 24, &r);
    gen(s, &hot, &b, 24, &r);
    assert_int_equal(a.n, 24);
    assert_memory_equal(a.ids, b.ids, sizeof(int32_t) * 24); /* same seed, same text */
    hot.seed = 99;
    gen(s, &hot, &c, 24, &r);
    assert_memory_not_equal(a.ids, c.ids, sizeof(int32_t) * 24);
    assert_int_equal(r.stop, VKLLM_STOP_MAX_TOKENS);
    /* top_k = 1 is greedy whatever the temperature */
    vkllm_sampling greedy = {0}, k1 = {.temperature = 5.0f, .top_k = 1, .seed = 7};
    gen(s, &greedy, &a, 16, &r);
    gen(s, &k1, &b, 16, &r);
    assert_memory_equal(a.ids, b.ids, sizeof(int32_t) * 16);
    /* the callback stops generation */
    a.stop_after = 5;
    gen(s, &greedy, &a, 50, &r);
    assert_int_equal(a.n, 5);
    assert_int_equal(r.stop, VKLLM_STOP_CALLBACK);
    /* continuing picks up from the last sampled token */
    uint32_t past = vkllm_session_n_past(s);
    vkllm_generate_desc more = {.max_tokens = 3};
    assert_int_equal(vkllm_generate(s, &more, &r), VKLLM_OK);
    assert_int_equal(r.n_prompt, 1);
    assert_int_equal(vkllm_session_n_past(s), past + 3);
    /* a full context stops generation with STOP_CONTEXT */
    vkllm_session_reset(s);
    vkllm_generate_desc fill = {.prompt = "Count: 1, 2, 3,", .ignore_eog = true};
    assert_int_equal(vkllm_generate(s, &fill, &r), VKLLM_OK);
    assert_int_equal(r.stop, VKLLM_STOP_CONTEXT);
    assert_int_equal(vkllm_session_n_past(s), 256);
    /* a prompt that does not fit fails before evaluating anything */
    vkllm_session_reset(s);
    char *big = malloc(4000);
    for (int i = 0; i < 3999; i++)
        big[i] = "ab "[i % 3];
    big[3999] = '\0';
    vkllm_generate_desc toolong = {.prompt = big};
    assert_int_equal(vkllm_generate(s, &toolong, &r), VKLLM_ERR_CONTEXT_FULL);
    assert_non_null(strstr(vkllm_session_last_error(s), "context"));
    assert_int_equal(vkllm_session_n_past(s), 0);
    free(big);
    /* bad token ids */
    int32_t bad = 1 << 30;
    assert_int_equal(vkllm_session_eval(s, &bad, 1), VKLLM_ERR_INVALID_ARG);
    vkllm_session_destroy(s);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_bad_args),  cmocka_unit_test(test_runtime_cpu_isa),
        cmocka_unit_test(test_model_load_errors), cmocka_unit_test(test_allocator_callbacks),
        cmocka_unit_test(test_vocab_only),        cmocka_unit_test(test_sampling_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
