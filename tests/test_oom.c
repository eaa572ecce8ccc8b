/* Out of memory on the model tools' paths, on purpose (as SQLite's tests inject faults): through
 * the allocator callbacks of vkllm.h every place that allocates on the way (told apart by its
 * call stack) fails once. vkllm_runtime_create with vkllm_model_load, a session generating, an
 * engine answering two requests, vkllm_perplexity (saving a KL base), vkllm_imatrix,
 * vkllm_quantize and vkllm_prune must each return VKLLM_ERR_OUT_OF_MEMORY with a message, give
 * back everything they took (under ASan, leak nothing else either) and leave no file behind, not
 * even a temporary one. Then the memory cap on the CPU backend: a model or a context past it is
 * refused with the sizes, and what a finished call held is counted no more.
 * Needs VKLLM_VOCAB_DIR (scripts/fetch_vocabs.sh) and VKLLM_TEXTS (scripts/fetch_texts.sh). */
#include <dirent.h>
#include <execinfo.h>
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

static char g_dir[64], g_model[128], g_imatrix[128], g_out[128];
static char g_text[4096];
/* the fault-injection calls run on a short text: a call per allocation site */
#define SHORT_TEXT 600

/* The allocator of the calls under test. Recording, it notes each call stack that allocates
 * (a hash of its return addresses); failing, it refuses the first allocation made from the
 * call stack fail_site. So every place that allocates fails once, however many times it runs
 * (a matrix per layer, an entry per weight), at the cost of one call per place. */
#define MAX_SITES 1024
typedef struct fail_alloc {
    long live;
    bool record, failed;
    uint64_t fail_site;
    uint64_t sites[MAX_SITES];
    size_t n_sites;
} fail_alloc;

/* Frames of the stack fail_each calls from: not part of a site (the compiler may call from
 * more than one place in it, a loop peeled or unrolled). */
static int g_base_depth;

static uint64_t call_site(void) {
    void *bt[128];
    const int n = backtrace(bt, 128);
    uint64_t h = 14695981039346656037ull; /* FNV-1a over the return addresses */
    for (int i = 1; i < n - g_base_depth; i++) {
        h ^= (uint64_t)(uintptr_t)bt[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void *fa_alloc(void *user, size_t size, size_t align) {
    fail_alloc *fa = user;
    if (fa->record || (fa->fail_site && !fa->failed)) {
        const uint64_t site = call_site();
        if (fa->record) {
            size_t i = 0;
            while (i < fa->n_sites && fa->sites[i] != site)
                i++;
            if (i == fa->n_sites && i < MAX_SITES) fa->sites[fa->n_sites++] = site;
        } else if (site == fa->fail_site) {
            fa->failed = true;
            return NULL;
        }
    }
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0) return NULL;
    fa->live++;
    return p;
}

static void fa_free(void *user, void *p) {
    fail_alloc *fa = user;
    if (p) fa->live--;
    free(p);
}

/* How many files g_dir holds besides the model and the importance matrix; the first's name. */
static int stray_files(char *first, size_t cap) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "in.gguf") ||
            !strcmp(e->d_name, "im.gguf"))
            continue;
        if (n++ == 0) snprintf(first, cap, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* A call fn(arg, &msg) returning its status and error message; after a success it cleans up
 * (frees what it made, removes the file it wrote). */
typedef vkllm_status (*call_fn)(void *arg, const char **msg);

/* Calls fn once recording where it allocates, then once per place with that place failing:
 * each failure must be out of memory, said so, with every allocation given back and no file
 * left. Returns the number of places. */
static size_t fail_each(const char *what, fail_alloc *fa, call_fn fn, void *arg) {
    const long live = fa->live;
    void *bt[128];
    g_base_depth = backtrace(bt, 128);
    fa->n_sites = 0;
    /* pass -1 records, the others fail a site each */
    for (long k = -1; k < (long)fa->n_sites; k++) {
        char stray[256] = "";
        const char *msg = "";
        fa->record = k < 0;
        fa->fail_site = k < 0 ? 0 : fa->sites[k];
        fa->failed = false;
        const vkllm_status st = fn(arg, &msg);
        if (k < 0) {
            if (st != VKLLM_OK) fail_msg("%s: %s", what, msg);
            assert_int_equal(fa->live, live);
            assert_true(fa->n_sites < MAX_SITES);
            continue;
        }
        if (!fa->failed) fail_msg("%s: allocation site %ld not reached again", what, k);
        if (st == VKLLM_OK) continue; /* the call did without that allocation */
        if (st != VKLLM_ERR_OUT_OF_MEMORY)
            fail_msg("%s, allocation site %ld failing: status %d (%s), not out of memory", what, k,
                     st, msg);
        if (!msg || !*msg) fail_msg("%s, allocation site %ld failing: no message", what, k);
        if (fa->live != live)
            fail_msg("%s, allocation site %ld failing: %ld allocations not given back (%s)", what,
                     k, fa->live - live, msg);
        if (stray_files(stray, sizeof stray))
            fail_msg("%s, allocation site %ld failing: left %s behind (%s)", what, k, stray, msg);
    }
    fa->record = false;
    fa->fail_site = 0;
    print_message("%s: %zu allocation sites, each failed once\n", what, fa->n_sites);
    return fa->n_sites;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/vkllm_oom_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    const char *vd = getenv("VKLLM_VOCAB_DIR"), *td = getenv("VKLLM_TEXTS");
    if (!vd || !td) return -1;
    char vocab[512], path[512], err[512];
    snprintf(vocab, sizeof vocab, "%s/ggml-vocab-llama-spm.gguf", vd);
    snprintf(g_model, sizeof g_model, "%s/in.gguf", g_dir);
    snprintf(g_imatrix, sizeof g_imatrix, "%s/im.gguf", g_dir);
    snprintf(g_out, sizeof g_out, "%s/out.gguf", g_dir);
    vkllm_synth_desc d = {
        .shape = "tiny-quant", .type = "f16", .vocab_path = vocab, .out_path = g_model, .seed = 5};
    if (vkllm_synth(&d, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "synth: %s (scripts/fetch_vocabs.sh)\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/kjv-genesis.txt", td);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s missing (scripts/fetch_texts.sh)\n", path);
        return -1;
    }
    const size_t got = fread(g_text, 1, sizeof g_text, f);
    fclose(f);
    return got == sizeof g_text ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    unlink(g_model);
    unlink(g_imatrix);
    return rmdir(g_dir);
}

/* ---- a model on a runtime: load, perplexity, importance matrix ---- */

typedef struct model_call {
    fail_alloc *fa;
    vkllm_runtime *rt;
    vkllm_model *m;
    char err[512];
} model_call;

static vkllm_status open_model(model_call *c) {
    const vkllm_runtime_desc rd = {
        .device = "cpu", .n_threads = 1, .allocator = {fa_alloc, fa_free, c->fa}};
    const vkllm_model_desc md = {.path = g_model};
    vkllm_status st = vkllm_runtime_create(&rd, &c->rt);
    if (st != VKLLM_OK) {
        snprintf(c->err, sizeof c->err, "%s", vkllm_runtime_last_error(NULL));
        return st;
    }
    st = vkllm_model_load(c->rt, &md, &c->m);
    if (st != VKLLM_OK) {
        snprintf(c->err, sizeof c->err, "%s", vkllm_runtime_last_error(c->rt));
        vkllm_runtime_destroy(c->rt);
    }
    return st;
}

static vkllm_status call_open_model(void *arg, const char **msg) {
    model_call *c = arg;
    const vkllm_status st = open_model(c);
    *msg = c->err;
    if (st == VKLLM_OK) {
        vkllm_model_free(c->m);
        vkllm_runtime_destroy(c->rt);
    }
    return st;
}

static vkllm_status call_perplexity(void *arg, const char **msg) {
    model_call *c = arg;
    const vkllm_perplexity_desc d = {.text = g_text,
                                     .text_len = SHORT_TEXT,
                                     .n_ctx = 32,
                                     .n_batch = 16,
                                     .n_chunks = 2,
                                     .kl_base_out = g_out};
    vkllm_perplexity_result r = {0};
    const vkllm_status st = vkllm_perplexity(c->m, &d, &r);
    *msg = vkllm_model_last_error(c->m);
    if (st == VKLLM_OK) unlink(g_out);
    return st;
}

static vkllm_status call_imatrix(void *arg, const char **msg) {
    model_call *c = arg;
    const vkllm_imatrix_desc d = {.text = g_text,
                                  .text_len = SHORT_TEXT,
                                  .n_ctx = 32,
                                  .n_chunks = 2,
                                  .process_output = true,
                                  .out_path = g_imatrix};
    const vkllm_status st = vkllm_imatrix(c->m, &d);
    *msg = vkllm_model_last_error(c->m);
    return st; /* the file is kept: the quantize and prune calls use it */
}

/* vkllm run's path: a session and a few tokens */
static vkllm_status call_generate(void *arg, const char **msg) {
    model_call *c = arg;
    vkllm_session *s = NULL;
    const vkllm_session_desc sd = {.n_ctx = 64, .n_batch = 16};
    vkllm_status st = vkllm_session_create(c->m, &sd, &s);
    if (st != VKLLM_OK) {
        snprintf(c->err, sizeof c->err, "%s", vkllm_model_last_error(c->m));
        *msg = c->err;
        return st;
    }
    const vkllm_generate_desc gd = {
        .prompt = g_text, .prompt_len = 100, .max_tokens = 4, .sampling = {.temperature = 0}};
    vkllm_generate_result r = {0};
    st = vkllm_generate(s, &gd, &r);
    snprintf(c->err, sizeof c->err, "%s", vkllm_session_last_error(s));
    *msg = c->err;
    vkllm_session_destroy(s);
    return st;
}

/* vkllm run --parallel's path: an engine with two requests (manual: its steps run on this
 * thread, so their allocations have the call stacks of this one) */
static vkllm_status call_engine(void *arg, const char **msg) {
    model_call *c = arg;
    vkllm_engine *e = NULL;
    const vkllm_engine_desc ed = {.max_seqs = 2, .n_ctx = 64, .n_batch = 16, .manual = true};
    vkllm_status st = vkllm_engine_create(c->m, &ed, &e);
    if (st != VKLLM_OK) {
        snprintf(c->err, sizeof c->err, "%s", vkllm_model_last_error(c->m));
        *msg = c->err;
        return st;
    }
    vkllm_request *r[2] = {NULL, NULL};
    for (int i = 0; i < 2 && st == VKLLM_OK; i++) {
        const vkllm_request_desc rd = {.prompt = g_text + 50 * i,
                                       .prompt_len = 40 + 30 * (size_t)i,
                                       .max_tokens = 3,
                                       .sampling = {.temperature = 0}};
        st = vkllm_submit(e, &rd, &r[i]);
    }
    for (int i = 0; i < 2 && st == VKLLM_OK; i++)
        st = vkllm_request_wait(r[i], NULL);
    /* a request that fails on its own (its text buffer) has only its status to say so */
    const char *el = vkllm_engine_last_error(e);
    snprintf(c->err, sizeof c->err, "%s", el && *el ? el : vkllm_status_str(st));
    *msg = c->err;
    for (int i = 0; i < 2; i++)
        vkllm_request_free(r[i]);
    vkllm_engine_destroy(e);
    return st;
}

static void test_eval_out_of_memory(void **state) {
    (void)state;
    fail_alloc fa = {0};
    model_call c = {.fa = &fa};
    assert_true(fail_each("runtime and model", &fa, call_open_model, &c) > 10);
    assert_int_equal(open_model(&c), VKLLM_OK);
    const long live = fa.live;
    assert_true(fail_each("vkllm_session_create, vkllm_generate", &fa, call_generate, &c) > 5);
    assert_true(fail_each("vkllm_engine_create, vkllm_submit", &fa, call_engine, &c) > 5);
    assert_true(fail_each("vkllm_perplexity", &fa, call_perplexity, &c) > 10);
    unlink(g_imatrix); /* the failures must not leave one either */
    assert_true(fail_each("vkllm_imatrix", &fa, call_imatrix, &c) > 10);
    assert_int_equal(access(g_imatrix, F_OK), 0);
    assert_int_equal(fa.live, live);
    vkllm_model_free(c.m);
    vkllm_runtime_destroy(c.rt);
    assert_int_equal(fa.live, 0);
}

/* ---- file to file: quantize, prune ---- */

typedef struct file_call {
    fail_alloc *fa;
    const char *type, *pattern, *method, *format;
    char err[512];
} file_call;

static vkllm_status call_quantize(void *arg, const char **msg) {
    file_call *c = arg;
    const vkllm_allocator a = {fa_alloc, fa_free, c->fa};
    const vkllm_quantize_desc d = {.in_path = g_model,
                                   .out_path = g_out,
                                   .type = c->type,
                                   .imatrix_path = g_imatrix,
                                   .n_threads = 1,
                                   .allocator = &a};
    const vkllm_status st = vkllm_quantize(&d, c->err, sizeof c->err);
    *msg = c->err;
    if (st == VKLLM_OK) unlink(g_out);
    return st;
}

static vkllm_status call_prune(void *arg, const char **msg) {
    file_call *c = arg;
    const vkllm_allocator a = {fa_alloc, fa_free, c->fa};
    const vkllm_prune_desc d = {.in_path = g_model,
                                .out_path = g_out,
                                .method = c->method,
                                .pattern = c->pattern,
                                .format = c->format,
                                .type = c->type,
                                .imatrix_path = g_imatrix,
                                .allocator = &a};
    const vkllm_status st = vkllm_prune(&d, c->err, sizeof c->err);
    *msg = c->err;
    if (st == VKLLM_OK) unlink(g_out);
    return st;
}

static void test_files_out_of_memory(void **state) {
    (void)state;
    if (access(g_imatrix, F_OK) != 0) fail_msg("no importance matrix: test_eval_out_of_memory");
    fail_alloc fa = {0};
    /* a K-quant preset with an importance matrix: per-tensor rules, fallback types */
    file_call q = {.fa = &fa, .type = "q4_k_m"};
    assert_true(fail_each("vkllm_quantize q4_k_m", &fa, call_quantize, &q) > 10);
    const file_call prunes[] = {
        {.fa = &fa, .pattern = "2:4", .method = "magnitude", .format = "dense", .type = "q8_0"},
        {.fa = &fa, .pattern = "unstructured", .method = "wanda"},
        {.fa = &fa, .pattern = "ffn", .method = "wanda"}, /* heads: the same cut, and this
                                                           * model has one KV head */
    };
    for (size_t i = 0; i < sizeof prunes / sizeof prunes[0]; i++) {
        file_call c = prunes[i];
        char what[64];
        snprintf(what, sizeof what, "vkllm_prune %s", c.pattern);
        assert_true(fail_each(what, &fa, call_prune, &c) > 10);
    }
    assert_int_equal(fa.live, 0);
}

/* ---- the memory cap on the CPU: weights and contexts counted ---- */

static void test_cpu_memory_cap(void **state) {
    (void)state;
    vkllm_runtime_desc rd = {.device = "cpu", .n_threads = 1, .memory_cap = 64u << 10};
    const vkllm_model_desc md = {.path = g_model};
    vkllm_runtime *rt;
    vkllm_model *m = NULL;
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_ERR_OUT_OF_MEMORY);
    assert_null(m);
    const char *e = vkllm_runtime_last_error(rt);
    assert_non_null(strstr(e, "cpu: model weights: "));
    assert_non_null(strstr(e, "would pass the memory cap of 0.1 MiB (0.0 MiB in use)"));
    vkllm_runtime_destroy(rt);

    /* room for the weights and a context of 64 tokens (8 MiB of activations, mostly logits),
     * not for one of 256; what a finished call held is given back, so calls after it fit as
     * the first did */
    vkllm_model_info info = {0};
    rd.memory_cap = 0;
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_OK);
    vkllm_model_get_info(m, &info);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    rd.memory_cap = info.weight_bytes + (16u << 20);
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    assert_int_equal(vkllm_model_load(rt, &md, &m), VKLLM_OK);
    vkllm_perplexity_desc d = {
        .text = g_text, .text_len = sizeof g_text, .n_ctx = 64, .n_chunks = 2};
    vkllm_perplexity_result r1 = {0}, r2 = {0};
    assert_int_equal(vkllm_perplexity(m, &d, &r1), VKLLM_OK);
    assert_int_equal(vkllm_perplexity(m, &d, &r2), VKLLM_OK);
    assert_true(r1.ppl == r2.ppl);
    d.n_ctx = 256;
    assert_int_equal(vkllm_perplexity(m, &d, &r2), VKLLM_ERR_OUT_OF_MEMORY);
    e = vkllm_model_last_error(m);
    assert_non_null(strstr(e, "cpu: a context of 256 tokens needs "));
    assert_non_null(strstr(e, "over the memory cap of"));
    d.n_ctx = 64;
    assert_int_equal(vkllm_perplexity(m, &d, &r2), VKLLM_OK);
    assert_true(r1.ppl == r2.ppl);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_out_of_memory),
        cmocka_unit_test(test_files_out_of_memory),
        cmocka_unit_test(test_cpu_memory_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
