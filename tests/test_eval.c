/* Perplexity and KL divergence (vkllm_perplexity, src/api_eval.c), and the multi-row outputs
 * it relies on: an entry's last k rows give the same logits as k one-token entries, on the
 * CPU and on Vulkan. The text is the book of Genesis from Debian's bible-kjv package (public
 * domain; scripts/fetch_texts.sh extracts it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_internal.h"
#include "api_test_util.h"
#include "loader/imatrix.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char *read_text(size_t *len) {
    const char *dir = getenv("VKLLM_TEXTS");
    if (!dir) fail_msg("VKLLM_TEXTS is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/kjv-genesis.txt", dir);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s is missing (scripts/fetch_texts.sh makes it)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc((size_t)n + 1);
    assert_non_null(t);
    assert_int_equal(fread(t, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    t[n] = '\0';
    *len = (size_t)n;
    return t;
}

/* One step of 40 tokens at positions 0..39: as one entry whose last k rows are output, and as
 * an entry of 40 - k tokens followed by k one-token entries (every entry in the same attention
 * mode): the logits must be the same bits. */
static void rows_vs_entries(const char *device, int tier) {
    vkllm_runtime *rt;
    vkllm_model *m = api_test_open(&rt, device, tier);
    eng_backend *be = rt->backend;
    const uint32_t n = 40, k = 9, nv = m->cfg.n_vocab;
    uint32_t *pages = eng_ident_pages(NULL, 64);
    int32_t toks[40];
    for (uint32_t i = 0; i < n; i++)
        toks[i] = (int32_t)((i * 7919u + 13u) % nv);
    float *a = calloc((size_t)k * nv, sizeof(float)), *b = calloc((size_t)k * nv, sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    for (int mode = ENG_ATTN_SERIAL; mode <= ENG_ATTN_TILED; mode++) {
        eng_ctx *c1 = NULL, *c2 = NULL;
        const eng_ctx_desc cd1 = {.n_ctx = 64, .n_batch = 64, .n_seqs = 1, .max_out = k};
        const eng_ctx_desc cd2 = {.n_ctx = 64, .n_batch = 64, .n_seqs = 1 + k};
        assert_int_equal(be->vt->ctx_create(be, &m->em, &m->graph, &cd1, &c1, &rt->err), VKLLM_OK);
        assert_int_equal(be->vt->ctx_create(be, &m->em, &m->graph, &cd2, &c2, &rt->err), VKLLM_OK);
        const eng_seq one = {.n_tokens = n,
                             .out = true,
                             .out_rows = (uint16_t)k,
                             .mode = (uint8_t)mode,
                             .pages = pages};
        const eng_batch b1 = {.tokens = toks, .n_tokens = n, .seqs = &one, .n_seqs = 1, .n_out = k};
        if (be->vt->run(c1, &b1, a, &rt->err) != VKLLM_OK) fail_msg("%s", rt->err.msg);
        eng_seq many[10];
        many[0] = (eng_seq){.n_tokens = n - k, .mode = (uint8_t)mode, .pages = pages};
        for (uint32_t i = 0; i < k; i++)
            many[1 + i] = (eng_seq){.n_tokens = 1,
                                    .pos0 = n - k + i,
                                    .out = true,
                                    .mode = (uint8_t)mode,
                                    .pages = pages};
        const eng_batch b2 = {
            .tokens = toks, .n_tokens = n, .seqs = many, .n_seqs = 1 + k, .n_out = k};
        if (be->vt->run(c2, &b2, b, &rt->err) != VKLLM_OK) fail_msg("%s", rt->err.msg);
        assert_memory_equal(a, b, (size_t)k * nv * sizeof(float));
        /* an entry may not ask for more rows than it has */
        eng_seq bad = one;
        bad.n_tokens = 4;
        const eng_batch b3 = {.tokens = toks, .n_tokens = 4, .seqs = &bad, .n_seqs = 1, .n_out = k};
        assert_int_equal(be->vt->run(c1, &b3, a, &rt->err), VKLLM_ERR_INVALID_ARG);
        be->vt->ctx_destroy(c1);
        be->vt->ctx_destroy(c2);
    }
    free(a);
    free(b);
    free(pages);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

static void test_rows_cpu(void **state) {
    (void)state;
    rows_vs_entries("cpu", -1);
}

static void test_rows_vulkan(void **state) {
    (void)state;
    rows_vs_entries("vulkan", -1);
#ifdef VKLLM_TEST_SANITIZED
    printf("not run under the sanitizers (the release pass runs it): tier 0\n");
#else
    rows_vs_entries("vulkan", 0);
#endif
}

static vkllm_perplexity_result ppl(vkllm_model *m, const char *text, size_t len, uint32_t n_ctx,
                                   uint32_t n_batch, uint32_t chunks, const char *kl_out,
                                   const char *kl_in) {
    vkllm_perplexity_desc d = {.text = text,
                               .text_len = len,
                               .n_ctx = n_ctx,
                               .n_batch = n_batch,
                               .n_chunks = chunks,
                               .kl_base_out = kl_out,
                               .kl_base_in = kl_in};
    vkllm_perplexity_result r = {.struct_size = sizeof r};
    if (vkllm_perplexity(m, &d, &r) != VKLLM_OK)
        fail_msg("perplexity: %s", vkllm_model_last_error(m));
    return r;
}

/* The figure llama-perplexity (its AVX2 reference build, tools/golden/make_ppl_golden.sh)
 * prints for the same text, context and chunks, from tests/data/perplexity_golden.txt. */
static void test_golden_cpu(void **state) {
    (void)state;
    const char *dir = getenv("VKLLM_TEST_DATA");
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/perplexity_golden.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s is missing", path);
    size_t len;
    char *text = read_text(&len);
    vkllm_runtime *rt;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    char line[512];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned c, b, chunks;
        double want;
        if (line[0] == '#' || sscanf(line, "%u %u %u %lf", &c, &b, &chunks, &want) != 4) continue;
#ifdef VKLLM_TEST_SANITIZED
        if (checked > 0) { /* 10-20x slower here: the release pass checks every line */
            printf("not run under the sanitizers: c=%u b=%u chunks=%u\n", c, b, chunks);
            continue;
        }
#endif
        const vkllm_perplexity_result r = ppl(m, text, len, c, b, chunks, NULL, NULL);
        const double rel = fabs(r.ppl - want) / want;
        printf("c=%u b=%u chunks=%u: vkllm %.4f, llama-perplexity %.4f (%.4f%%)\n", c, b, chunks,
               r.ppl, want, 100 * rel);
        /* the bound is 0.1 %; the figures agree to the 4 decimals printed */
        assert_true(rel < 1e-3);
        assert_true(fabs(r.ppl - want) <= 0.00005 + 1e-9);
        assert_int_equal(r.n_chunks, chunks);
        assert_int_equal(r.n_scored, (uint64_t)chunks * (c - 1 - c / 2));
        assert_true(r.ppl_err > 0 && r.ppl_err < r.ppl);
        checked++;
    }
    fclose(f);
    assert_true(checked > 0);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    free(text);
}

/* The Vulkan path's figure has the CPU path's bits. */
static void test_vulkan_equals_cpu(void **state) {
    (void)state;
#ifdef VKLLM_TEST_SANITIZED
    /* lavapipe under the sanitizers takes minutes here; test_rows_vulkan drives the same host
     * code, and the release pass compares the figures */
    printf("not run under the sanitizers (the release pass runs it)\n");
    return;
#endif
    size_t len;
    char *text = read_text(&len);
    vkllm_runtime *rc, *rv;
    vkllm_model *mc = api_test_open(&rc, "cpu", -1), *mv = api_test_open(&rv, "vulkan", -1);
    api_test_require_avx2(rc);
    const vkllm_perplexity_result a = ppl(mc, text, len, 64, 0, 2, NULL, NULL);
    const vkllm_perplexity_result b = ppl(mv, text, len, 64, 0, 2, NULL, NULL);
    printf("cpu %.6f vulkan %.6f\n", a.ppl, b.ppl);
    assert_memory_equal(&a.ppl, &b.ppl, sizeof a.ppl);
    vkllm_model_free(mc);
    vkllm_model_free(mv);
    vkllm_runtime_destroy(rc);
    vkllm_runtime_destroy(rv);
    free(text);
}

/* KL against itself is ~0 (the base's log-probabilities are kept to 16 bits) with every top-1
 * the same; against another attention arithmetic (smaller steps) small but not zero. */
static void test_kl(void **state) {
    (void)state;
    size_t len;
    char *text = read_text(&len);
    vkllm_runtime *rt;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    char dir[] = "/tmp/vkllm-kl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char base[256];
    snprintf(base, sizeof base, "%s/base.kl", dir);
    const vkllm_perplexity_result r0 = ppl(m, text, len, 128, 0, 3, base, NULL);
    const vkllm_perplexity_result r1 = ppl(m, NULL, 0, 128, 0, 0, NULL, base);
    printf("self: ppl %.5f base %.5f KL %.3g top-1 %.4f\n", r1.ppl, r1.ppl_base, r1.kl_mean,
           r1.top1_same);
    assert_int_equal(r1.n_chunks, 3);
    assert_memory_equal(&r0.ppl, &r1.ppl, sizeof r0.ppl);
    assert_true(fabs(r1.ppl_base - r0.ppl) / r0.ppl < 1e-6);
    assert_true(r1.kl_mean >= 0 && r1.kl_mean < 1e-6);
    assert_true(r1.top1_same == 1.0);
    const vkllm_perplexity_result r2 = ppl(m, text, len, 128, 16, 0, NULL, base);
    printf("n_batch 16: ppl %.5f KL %.3g +/- %.3g top-1 %.4f\n", r2.ppl, r2.kl_mean, r2.kl_err,
           r2.top1_same);
    assert_true(r2.kl_mean > 1e-9 && r2.kl_mean < 1e-2);
    assert_true(r2.top1_same > 0.95);
    /* a text other than the base's is refused */
    vkllm_perplexity_desc d = {
        .text = "another text entirely", .text_len = 21, .n_ctx = 128, .kl_base_in = base};
    vkllm_perplexity_result r = {0};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_model_last_error(m), "differ"));
    /* another context than the base's */
    d = (vkllm_perplexity_desc){.n_ctx = 64, .kl_base_in = base};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_BAD_FILE);
    assert_non_null(strstr(vkllm_model_last_error(m), "context"));
    /* a file cut short */
    struct stat st;
    assert_int_equal(stat(base, &st), 0);
    assert_int_equal(truncate(base, st.st_size - 100), 0);
    d = (vkllm_perplexity_desc){.n_ctx = 128, .kl_base_in = base};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_BAD_FILE);
    assert_non_null(strstr(vkllm_model_last_error(m), "cut off"));
    /* not a KL file at all */
    d.kl_base_in = getenv("VKLLM_MODEL");
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_BAD_FILE);
    unlink(base);
    rmdir(dir);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    free(text);
}

static void test_errors(void **state) {
    (void)state;
    vkllm_runtime *rt;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    vkllm_perplexity_result r = {0};
    /* a text shorter than two chunks */
    vkllm_perplexity_desc d = {.text = "In the beginning", .text_len = 16, .n_ctx = 512};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_model_last_error(m), "at least 1024"));
    /* no text */
    d = (vkllm_perplexity_desc){.n_ctx = 512};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_INVALID_ARG);
    /* a batch that does not divide the context */
    size_t len;
    char *text = read_text(&len);
    d = (vkllm_perplexity_desc){.text = text, .text_len = len, .n_ctx = 128, .n_batch = 48};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_INVALID_ARG);
    /* a KL base that cannot be written leaves nothing behind */
    d = (vkllm_perplexity_desc){.text = text,
                                .text_len = len,
                                .n_ctx = 64,
                                .n_chunks = 2,
                                .kl_base_out = "/nonexistent-dir/base.kl"};
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_IO);
    /* both KL modes at once */
    d.kl_base_in = "/tmp/x";
    assert_int_equal(vkllm_perplexity(m, &d, &r), VKLLM_ERR_INVALID_ARG);
    free(text);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* vkllm_imatrix through the API (cli_imatrix checks the bytes against llama-imatrix's): the
 * file loads, has one entry per layer matrix with every token counted, and refuses what it
 * cannot do. */
static void test_imatrix(void **state) {
    (void)state;
    size_t len;
    char *text = read_text(&len);
    vkllm_runtime *rt;
    vkllm_model *m = api_test_open(&rt, "cpu", -1);
    char dir[] = "/tmp/vkllm-im-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[256];
    snprintf(out, sizeof out, "%s/im.gguf", dir);
    vkllm_imatrix_desc d = {
        .text = text, .text_len = len, .out_path = out, .n_ctx = 64, .n_chunks = 2};
    if (vkllm_imatrix(m, &d) != VKLLM_OK) fail_msg("imatrix: %s", vkllm_model_last_error(m));
    imatrix *im = NULL;
    core_err err = {{0}};
    assert_int_equal(imatrix_load(out, NULL, &im, &err), VKLLM_OK);
    assert_int_equal(im->n_entries, 7 * m->cfg.n_layer);
    assert_int_equal(im->chunk_count, 2);
    assert_int_equal(im->chunk_size, 64);
    for (uint64_t i = 0; i < im->n_entries; i++) {
        assert_int_equal(im->entries[i].n_counts, 1);
        assert_int_equal(im->entries[i].counts[0], 128);
        double sum = 0;
        for (uint64_t j = 0; j < im->entries[i].n_values; j++)
            sum += im->entries[i].sums[j];
        assert_true(sum > 0);
    }
    imatrix_free(im);
    unlink(out);
    /* a text shorter than two chunks, and nothing written */
    d.text_len = 40;
    assert_int_equal(vkllm_imatrix(m, &d), VKLLM_ERR_INVALID_ARG);
    assert_int_not_equal(access(out, F_OK), 0);
    rmdir(dir);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    /* the Vulkan backend does not show its products' inputs */
    m = api_test_open(&rt, "vulkan", -1);
    d = (vkllm_imatrix_desc){.text = text, .text_len = len, .out_path = "/tmp/never.gguf"};
    assert_int_equal(vkllm_imatrix(m, &d), VKLLM_ERR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_model_last_error(m), "cpu"));
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_cpu),   cmocka_unit_test(test_rows_vulkan),
        cmocka_unit_test(test_golden_cpu), cmocka_unit_test(test_vulkan_equals_cpu),
        cmocka_unit_test(test_kl),         cmocka_unit_test(test_errors),
        cmocka_unit_test(test_imatrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
