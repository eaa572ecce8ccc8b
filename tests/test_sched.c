/* The engine (continuous batching, paged KV cache, prefix cache, preemption, vkllm_step) on
 * the default model, CPU backend: every request must get exactly the tokens it gets alone. */
#define API_TEST_N_GEN 32
#include "api_test_util.h"

#include <time.h>

#define MAX_REQ 24
#define SCALE(full, small) (g_small ? (small) : (full))
/* The short set: shorter prompts and outputs, and batch invariance compared on its target
 * request only. On lavapipe (~50x slower than the CPU backend) and under the sanitizers
 * (10-20x slower), which check the engine's host logic: the short set runs all of it (mixed
 * batches, paging, preemption, the prefix cache, requests); the release pass compares bits. */
static bool g_small;

typedef struct req_spec {
    char prompt[4096];
    int32_t max_tokens;
    vkllm_sampling smp;
    const char *stop;
    bool stop_at_eog; /* the other tests ignore end-of-generation tokens (fixed lengths) */
} req_spec;

typedef struct req_out {
    int32_t ids[256];
    size_t n;
    char text[2048];
    vkllm_request_result res;
} req_out;

static vkllm_runtime *g_rt;
static vkllm_model *g_m;
static const char *g_device = "cpu";

static bool g_relaxed; /* VKLLM_TEST_RELAXED=1: vk_relaxed_products */

static int setup(void **state) {
    (void)state;
    g_m = api_test_open_ex(&g_rt, g_device, -1, g_relaxed);
    if (g_relaxed) { /* in effect: lavapipe's fma() is not fused */
        vkllm_device_info di = {0};
        vkllm_runtime_device(g_rt, &di);
        if (!di.relaxed_products)
            fail_msg("relaxed products are not in effect on %s (%s)", di.name,
                     vkllm_runtime_backend_name(g_rt));
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    vkllm_model_free(g_m);
    vkllm_runtime_destroy(g_rt);
    return 0;
}

static const char *k_texts[] = {
    "The capital of France is",
    "Write a short poem about the sea.",
    "def fibonacci(n):\n    ",
    "List three colours:",
    "Once upon a time, in a village far away, there lived an old clockmaker who",
    "1, 2, 3, 4, 5,",
    "Translate to German: good morning",
    "Q: Why is the sky blue?\nA:",
};

/* A prompt of roughly `words` words from the texts above (different lengths, different
 * starts). */
static void make_prompt(char *out, size_t cap, int i, int words) {
    size_t n = (size_t)snprintf(out, cap, "%s", k_texts[i % 8]);
    for (int w = 0; n + 64 < cap && w < words; w++)
        n += (size_t)snprintf(out + n, cap - n, " %s", k_texts[(i + w) % 8]);
}

static vkllm_engine *engine(const vkllm_engine_desc *d) {
    vkllm_engine *e = NULL;
    if (vkllm_engine_create(g_m, d, &e) != VKLLM_OK)
        fail_msg("engine: %s", vkllm_model_last_error(g_m));
    return e;
}

static void collect(vkllm_request *r, req_out *o) {
    memset(o, 0, sizeof *o);
    vkllm_status st = vkllm_request_wait(r, &o->res);
    assert_int_equal(st, VKLLM_OK);
    size_t n = 0, len = 0;
    const int32_t *ids = vkllm_request_tokens(r, &n);
    assert_non_null(ids);
    assert_true(n <= 256);
    memcpy(o->ids, ids, n * sizeof *ids);
    o->n = n;
    const char *t = vkllm_request_text(r, &len);
    assert_non_null(t);
    snprintf(o->text, sizeof o->text, "%.*s", (int)len, t);
    vkllm_request_free(r);
}

static vkllm_request *submit(vkllm_engine *e, const req_spec *s) {
    const char *stops[1] = {s->stop};
    vkllm_request_desc d = {.prompt = s->prompt,
                            .max_tokens = s->max_tokens,
                            .ignore_eog = !s->stop_at_eog,
                            .sampling = s->smp,
                            .stop = s->stop ? stops : NULL,
                            .n_stop = s->stop ? 1 : 0};
    vkllm_request *r = NULL;
    if (vkllm_submit(e, &d, &r) != VKLLM_OK) fail_msg("submit: %s", vkllm_engine_last_error(e));
    return r;
}

/* Each spec run alone on a fresh engine of desc d. */
static void run_alone(const vkllm_engine_desc *d, const req_spec *specs, int n, req_out *out) {
    vkllm_engine *e = engine(d);
    for (int i = 0; i < n; i++)
        collect(submit(e, &specs[i]), &out[i]);
    vkllm_engine_destroy(e);
}

static void assert_same(const req_out *a, const req_out *b, const char *what, int i) {
    if (a->n != b->n || memcmp(a->ids, b->ids, a->n * sizeof a->ids[0]) != 0) {
        size_t k = 0;
        while (k < a->n && k < b->n && a->ids[k] == b->ids[k])
            k++;
        fail_msg("%s: request %d differs at token %zu (%zu vs %zu tokens)", what, i, k, a->n, b->n);
    }
    assert_string_equal(a->text, b->text);
}

/* The target (greedy) alone, and batched with 1, 3, 7 and 15 others of different prompt
 * lengths, lengths of output and samplers, some submitted before it and some after. */
static void test_batch_invariance(void **state) {
    (void)state;
    static req_spec specs[16];
    memset(specs, 0, sizeof specs);
    make_prompt(specs[0].prompt, sizeof specs[0].prompt, 0, 6);
    const int target_n = SCALE(24, 12);
    specs[0].max_tokens = target_n;
    for (int i = 1; i < 16; i++) {
        /* from a few tokens to a few hundred (prefill chunks beside the decodes) */
        make_prompt(specs[i].prompt, sizeof specs[i].prompt, i,
                    g_small ? i % 4 : (i * 7) % SCALE(30, 12));
        specs[i].max_tokens = g_small ? 2 + i % 5 : 4 + (i * 5) % SCALE(21, 9);
        if (i % 3 == 1) specs[i].smp = (vkllm_sampling){.temperature = 0.8f, .seed = (uint64_t)i};
        if (i % 5 == 2) specs[i].smp.repeat_penalty = 1.3f; /* needs every logit */
    }
    vkllm_engine_desc d = {.n_ctx = 1024, .max_seqs = 16, .no_prefix_cache = true, .manual = true};
    static req_out alone[16], batched[16];
    /* the short set: the target is compared (the others alone would take minutes) */
    const int n_alone = g_small ? 1 : 16;
    run_alone(&d, specs, n_alone, alone);
    /* the target alone equals vkllm_generate's greedy output */
    run_out ref;
    api_test_generate(g_m, specs[0].prompt, &(vkllm_sampling){0}, &ref);
    assert_true(alone[0].n == (size_t)target_n);
    for (int k = 0; k < target_n; k++)
        assert_int_equal(alone[0].ids[k], ref.ids[k]);

    const int others[] = {1, 3, 7, 15};
    for (int oi = 0; oi < 4; oi++) {
        const int n = others[oi] + 1;
        vkllm_engine *e = engine(&d);
        vkllm_request *r[16];
        /* half the others first; two steps; the target; the rest join mid-flight */
        int next = 1;
        for (; next <= n / 2; next++)
            r[next] = submit(e, &specs[next]);
        for (int s = 0; s < 2; s++)
            assert_int_equal(vkllm_step(e, 0, NULL), VKLLM_OK);
        r[0] = submit(e, &specs[0]);
        assert_int_equal(vkllm_step(e, 0, NULL), VKLLM_OK);
        for (; next < n; next++)
            r[next] = submit(e, &specs[next]);
        for (int i = 0; i < n; i++)
            collect(r[i], &batched[i]);
        vkllm_engine_stats st = {0};
        vkllm_engine_get_stats(e, &st);
        print_message("batched with %d others: %llu steps, %llu tokens decoded\n", n - 1,
                      (unsigned long long)st.steps, (unsigned long long)st.tokens_decoded);
        vkllm_engine_destroy(e);
        for (int i = 0; i < n && i < n_alone; i++)
            assert_same(&alone[i], &batched[i], "batched", i);
    }
}

/* Eight chat requests with one long (~330-token) system prompt: the later ones take its pages from
 * the prefix cache (counted exactly) and answer as without the cache; a cache too small for two
 * system prompts evicts and stays correct. */
static void test_prefix_cache(void **state) {
    (void)state;
    static char sys[2][6000];
    for (int v = 0; v < 2; v++) {
        size_t n = (size_t)snprintf(sys[v], sizeof sys[v], "You are assistant number %d. ", v);
        for (int w = 0; n + 200 < sizeof sys[v] && w < SCALE(22, 10); w++)
            n += (size_t)snprintf(sys[v] + n, sizeof sys[v] - n, "Rule %d: %s ", w,
                                  k_texts[(w + v) % 8]);
    }
    const char *questions[8] = {"What is 2+2?",
                                "Name a planet.",
                                "Say hello.",
                                "What is the capital of Italy?",
                                "Count to five.",
                                "Give me a fruit.",
                                "What colour is grass?",
                                "Spell cat."};
    static req_spec specs[8];
    size_t lens[8];
    for (int i = 0; i < 8; i++) {
        vkllm_chat_message msgs[2] = {{"system", sys[0]}, {"user", questions[i]}};
        size_t len = 0;
        assert_int_equal(
            vkllm_chat_apply(g_m, msgs, 2, true, specs[i].prompt, sizeof specs[i].prompt, &len),
            VKLLM_OK);
        lens[i] = len;
        specs[i].max_tokens = SCALE(8, 4);
    }
    (void)lens;
    /* the tokens the first two prompts share */
    static int32_t t0[4096], t1[4096];
    size_t n0 = 0, n1 = 0;
    const uint32_t fl = VKLLM_TOKENIZE_ADD_SPECIAL | VKLLM_TOKENIZE_PARSE_SPECIAL;
    assert_int_equal(
        vkllm_tokenize(g_m, specs[0].prompt, strlen(specs[0].prompt), fl, t0, 4096, &n0), VKLLM_OK);
    assert_int_equal(
        vkllm_tokenize(g_m, specs[1].prompt, strlen(specs[1].prompt), fl, t1, 4096, &n1), VKLLM_OK);
    size_t shared = 0;
    while (shared < n0 && shared < n1 && t0[shared] == t1[shared])
        shared++;
    assert_true(shared > SCALE(256, 128));
    print_message("system prompt: %zu shared tokens of %zu\n", shared, n0);

    vkllm_engine_desc nocache = {
        .n_ctx = 512, .max_seqs = 8, .no_prefix_cache = true, .manual = true};
    req_out ref[8], got[8];
    run_alone(&nocache, specs, 8, ref);

    vkllm_engine_desc d = {.n_ctx = 512, .max_seqs = 8, .manual = true};
    vkllm_engine *e = engine(&d);
    collect(submit(e, &specs[0]), &got[0]);
    assert_int_equal(got[0].res.n_cached, 0);
    vkllm_request *r[8];
    for (int i = 1; i < 8; i++)
        r[i] = submit(e, &specs[i]);
    for (int i = 1; i < 8; i++)
        collect(r[i], &got[i]);
    vkllm_engine_stats st = {0};
    vkllm_engine_get_stats(e, &st);
    vkllm_engine_destroy(e);
    uint64_t cached = 0;
    for (int i = 0; i < 8; i++) {
        assert_same(&ref[i], &got[i], "prefix cache", i);
        if (i == 0) continue;
        /* every full page of the part it shares with the first request (whose pages are
         * cached before the others start) */
        static int32_t ti[4096];
        size_t ni = 0, sh = 0;
        assert_int_equal(
            vkllm_tokenize(g_m, specs[i].prompt, strlen(specs[i].prompt), fl, ti, 4096, &ni),
            VKLLM_OK);
        while (sh < n0 && sh < ni && t0[sh] == ti[sh])
            sh++;
        assert_true(sh >= shared);
        assert_int_equal(got[i].res.n_cached, sh / 16 * 16);
        cached += got[i].res.n_cached;
    }
    assert_int_equal(st.tokens_cached, cached);
    print_message("prefix cache: %llu prompt tokens not prefilled\n", (unsigned long long)cached);

    /* eviction: room for one sequence of n_ctx and a little more; two system prompts take
     * turns, so cached pages keep being evicted */
    static req_spec mixed[8];
    req_out mref[8], mgot[8];
    for (int i = 0; i < 8; i++) {
        vkllm_chat_message msgs[2] = {{"system", sys[i % 2]}, {"user", questions[i]}};
        size_t len = 0;
        assert_int_equal(
            vkllm_chat_apply(g_m, msgs, 2, true, mixed[i].prompt, sizeof mixed[i].prompt, &len),
            VKLLM_OK);
        mixed[i].max_tokens = specs[i].max_tokens;
        /* the even ones are the requests above: their answers are known */
        if (i % 2 == 0)
            mref[i] = ref[i];
        else
            run_alone(&nocache, &mixed[i], 1, &mref[i]);
    }
    /* a full sequence's pages and 4 more: less than both system prompts' pages */
    vkllm_engine_desc small = {
        .n_ctx = SCALE(512, 256), .max_seqs = 2, .kv_pages = SCALE(32, 16) + 4, .manual = true};
    e = engine(&small);
    for (int i = 0; i < 8; i++)
        r[i] = submit(e, &mixed[i]);
    for (int i = 0; i < 8; i++)
        collect(r[i], &mgot[i]);
    vkllm_engine_get_stats(e, &st);
    vkllm_engine_destroy(e);
    for (int i = 0; i < 8; i++)
        assert_same(&mref[i], &mgot[i], "eviction", i);
    print_message("small cache: %llu pages evicted, %llu tokens cached, %llu preemptions\n",
                  (unsigned long long)st.pages_evicted, (unsigned long long)st.tokens_cached,
                  (unsigned long long)st.preemptions);
    assert_true(st.pages_evicted > 0);
}

/* A KV cache too small for all sequences at once: sequences are preempted and recomputed,
 * and every request still gets its own tokens. */
static void test_preemption(void **state) {
    (void)state;
    static req_spec specs[8];
    memset(specs, 0, sizeof specs);
    /* lavapipe: 4 sequences of ~40 tokens in a 64-token context, 6 pages for 12 */
    const int n = g_small ? 4 : 8;
    for (int i = 0; i < n; i++) {
        make_prompt(specs[i].prompt, sizeof specs[i].prompt, i, g_small ? 1 : 3 + i);
        specs[i].max_tokens = g_small ? 26 + 2 * i : SCALE(40, 24) + 4 * i;
        if (i % 2) specs[i].smp = (vkllm_sampling){.temperature = 0.7f, .seed = 100u + (unsigned)i};
    }
    const uint32_t n_ctx = g_small ? 64 : 256;
    vkllm_engine_desc big = {.n_ctx = n_ctx, .max_seqs = 8, .manual = true};
    req_out ref[8], got[8];
    run_alone(&big, specs, n, ref);
    /* a full sequence's pages and a few more; 8 sequences of ~60-80 tokens want 32-48 */
    vkllm_engine_desc d = {
        .n_ctx = n_ctx, .max_seqs = 8, .kv_pages = g_small ? 6 : SCALE(20, 17), .manual = true};
    vkllm_engine *e = engine(&d);
    vkllm_request *r[8];
    for (int i = 0; i < n; i++)
        r[i] = submit(e, &specs[i]);
    uint32_t preempted = 0;
    for (int i = 0; i < n; i++) {
        collect(r[i], &got[i]);
        preempted += got[i].res.n_preempted;
    }
    vkllm_engine_stats st = {0};
    vkllm_engine_get_stats(e, &st);
    vkllm_engine_destroy(e);
    print_message("preemptions: %llu\n", (unsigned long long)st.preemptions);
    assert_true(st.preemptions > 0);
    assert_int_equal(preempted, st.preemptions);
    for (int i = 0; i < n; i++)
        assert_same(&ref[i], &got[i], "preemption", i);
}

/* vkllm_step with a budget far below one step: a step spans many calls (the CPU backend stops
 * between kernels) and the output equals the engine thread's. */
static void test_step_budget(void **state) {
    (void)state;
    static req_spec specs[4];
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < 4; i++) {
        make_prompt(specs[i].prompt, sizeof specs[i].prompt, i + 2, g_small ? i : 2 + 9 * i);
        specs[i].max_tokens = g_small ? 6 : 10;
    }
    req_out ref[4], got[4];
    vkllm_engine_desc threaded = {.n_ctx = 512, .max_seqs = 4};
    vkllm_engine *e = engine(&threaded);
    vkllm_request *r[4];
    for (int i = 0; i < 4; i++)
        r[i] = submit(e, &specs[i]);
    for (int i = 0; i < 4; i++)
        collect(r[i], &ref[i]);
    assert_int_equal(vkllm_step(e, 0.01, NULL), VKLLM_ERR_INVALID_ARG); /* it has a thread */
    vkllm_engine_destroy(e);

    vkllm_engine_desc manual = {.n_ctx = 512, .max_seqs = 4, .manual = true};
    e = engine(&manual);
    for (int i = 0; i < 4; i++)
        r[i] = submit(e, &specs[i]);
    uint64_t calls = 0;
    uint32_t active = 1;
    while (active) {
        assert_int_equal(vkllm_step(e, 1e-6, &active), VKLLM_OK);
        calls++;
    }
    vkllm_engine_stats st = {0};
    vkllm_engine_get_stats(e, &st);
    for (int i = 0; i < 4; i++)
        collect(r[i], &got[i]);
    vkllm_engine_destroy(e);
    print_message("%llu vkllm_step calls for %llu steps\n", (unsigned long long)calls,
                  (unsigned long long)st.steps);
    assert_true(calls > 10 * st.steps);
    for (int i = 0; i < 4; i++)
        assert_same(&ref[i], &got[i], "vkllm_step", i);
}

/* Overlap (double-buffered submission): greedy requests give the same tokens with the next
 * step submitted while one runs as with one step at a time, including a request that a stop
 * string ends while its next step is already on the device (a dropped entry). On Vulkan steps
 * overlap; the CPU backend takes one step at a time. */
static void test_overlap(void **state) {
    (void)state;
    static req_spec specs[4];
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < 4; i++) {
        make_prompt(specs[i].prompt, sizeof specs[i].prompt, i + 3, g_small ? i : 2 + 3 * i);
        specs[i].max_tokens = (g_small ? 8 : 16) + 3 * (i % 3);
        /* argmax without a ban (ignore_eog's fed steps: test_overlap_ignore_eog) */
        specs[i].stop_at_eog = true;
    }
    const vkllm_engine_desc serial = {.n_ctx = 256, .max_seqs = 4, .no_overlap = true};
    const vkllm_engine_desc overlap = {.n_ctx = 256, .max_seqs = 4};
    req_out a[4], b[4];
    vkllm_engine *e = engine(&serial);
    vkllm_request *r[4];
    for (int i = 0; i < 4; i++)
        r[i] = submit(e, &specs[i]);
    for (int i = 0; i < 4; i++)
        collect(r[i], &a[i]);
    vkllm_engine_destroy(e);
    /* request 1 stops at a piece of its own answer, a few tokens before its last */
    static char stop[16];
    const size_t len = strlen(a[1].text);
    assert_true(len >= 8);
    snprintf(stop, sizeof stop, "%.3s", a[1].text + len / 2);
    specs[1].stop = stop;
    for (int pass = 0; pass < 2; pass++) {
        e = engine(pass ? &overlap : &serial);
        for (int i = 0; i < 4; i++)
            r[i] = submit(e, &specs[i]);
        for (int i = 0; i < 4; i++)
            collect(r[i], pass ? &b[i] : &a[i]);
        vkllm_engine_stats st = {0};
        vkllm_engine_get_stats(e, &st);
        vkllm_engine_destroy(e);
        print_message("%s: %llu steps, %llu submitted while another ran\n",
                      pass ? "overlap" : "serial", (unsigned long long)st.steps,
                      (unsigned long long)st.steps_overlapped);
        if (!pass)
            assert_int_equal(st.steps_overlapped, 0);
        else if (strcmp(g_device, "cpu") == 0)
            assert_int_equal(st.steps_overlapped, 0);
        else
            assert_true(st.steps_overlapped >= 4);
    }
    assert_int_equal(a[1].res.stop, VKLLM_STOP_STRING);
    for (int i = 0; i < 4; i++) {
        assert_same(&a[i], &b[i], "overlap", i);
        assert_int_equal(a[i].res.stop, b[i].res.stop);
    }
}

/* The requests of specs, submitted together to an engine of desc d on model m, collected. */
static void run_together(vkllm_model *m, const vkllm_engine_desc *d, const req_spec *specs, int n,
                         req_out *out, vkllm_engine_stats *st) {
    vkllm_engine *e = NULL;
    if (vkllm_engine_create(m, d, &e) != VKLLM_OK)
        fail_msg("engine: %s", vkllm_model_last_error(m));
    vkllm_request *r[MAX_REQ];
    for (int i = 0; i < n; i++)
        r[i] = submit(e, &specs[i]);
    for (int i = 0; i < n; i++)
        collect(r[i], &out[i]);
    if (st) vkllm_engine_get_stats(e, st);
    vkllm_engine_destroy(e);
}

static bool any_eog(const int32_t *ids, size_t n);

/* Overlap with ignore_eog: greedy requests that ban the end-of-generation tokens stay argmax
 * steps (the backend leaves the EOG ids out of the argmax: eng_seq.ban), so on Vulkan their
 * steps are fed and overlapped, and they give the serial scheduler's tokens and the CPU
 * backend's. Request 0 is a chat prompt whose greedy answer ends after a few tokens: past
 * that point each of its tokens is the best one that is not EOG, chosen on the device in a fed
 * step. */
static void test_overlap_ignore_eog(void **state) {
    (void)state;
    static req_spec specs[4];
    memset(specs, 0, sizeof specs);
    const vkllm_chat_message msg = {"user", "Answer with one word: is water wet?"};
    size_t len = 0;
    assert_int_equal(
        vkllm_chat_apply(g_m, &msg, 1, true, specs[0].prompt, sizeof specs[0].prompt, &len),
        VKLLM_OK);
    for (int i = 1; i < 4; i++)
        make_prompt(specs[i].prompt, sizeof specs[i].prompt, i + 3, g_small ? i : 2 + 3 * i);
    for (int i = 0; i < 4; i++) /* ignore_eog (stop_at_eog false), greedy */
        specs[i].max_tokens = (g_small ? 12 : 16) + 3 * (i % 3);
    const vkllm_engine_desc serial = {.n_ctx = 256, .max_seqs = 4, .no_overlap = true};
    const vkllm_engine_desc overlap = {.n_ctx = 256, .max_seqs = 4};
    /* request 0's answer without the ban: it ends with EOG before max_tokens */
    req_spec stops = specs[0];
    stops.stop_at_eog = true;
    req_out stopped, a[4], b[4];
    run_together(g_m, &serial, &stops, 1, &stopped, NULL);
    assert_int_equal(stopped.res.stop, VKLLM_STOP_EOG);
    assert_true(stopped.n >= 2 && stopped.n + 2 < (size_t)specs[0].max_tokens);
    vkllm_engine_stats ss, so;
    run_together(g_m, &serial, specs, 4, a, &ss);
    run_together(g_m, &overlap, specs, 4, b, &so);
    print_message("ignore_eog: serial %llu steps; overlap %llu steps, %llu submitted while "
                  "another ran\n",
                  (unsigned long long)ss.steps, (unsigned long long)so.steps,
                  (unsigned long long)so.steps_overlapped);
    assert_int_equal(ss.steps_overlapped, 0);
    if (strcmp(g_device, "cpu") == 0)
        assert_int_equal(so.steps_overlapped, 0);
    else /* every decode step after the first, but for the last ones of shorter requests */
        assert_true(so.steps_overlapped >= (uint64_t)specs[0].max_tokens - 4);
    for (int i = 0; i < 4; i++) {
        assert_same(&a[i], &b[i], "overlap, ignore_eog", i);
        assert_int_equal(b[i].res.stop, VKLLM_STOP_MAX_TOKENS);
        assert_int_equal(b[i].n, (size_t)specs[i].max_tokens);
        if (any_eog(b[i].ids, b[i].n)) fail_msg("request %d: an EOG token was chosen", i);
    }
    /* the answer, then the best token that is not EOG where EOG was */
    assert_memory_equal(b[0].ids, stopped.ids, (stopped.n - 1) * sizeof *b[0].ids);
    if (strcmp(g_device, "cpu") != 0) { /* the CPU backend's tokens, one step at a time */
        vkllm_runtime *crt = NULL;
        vkllm_model *cm = api_test_open(&crt, "cpu", -1);
        api_test_require_avx2(crt);
        req_out c[4];
        run_together(cm, &serial, specs, 4, c, NULL);
        vkllm_model_free(cm);
        vkllm_runtime_destroy(crt);
        for (int i = 0; i < 4; i++)
            assert_same(&c[i], &b[i], "overlap, ignore_eog, against the CPU", i);
    }
}

/* A Q8_0 KV cache: the same budget holds ~1.9x the pages; a request gets the same tokens alone
 * and batched; answers follow the F16 cache's (tolerance: the first 4 greedy tokens of at
 * least 3 of 4 prompts equal; quantizing K and V moves logits a little). */
static void test_kv_q8(void **state) {
    (void)state;
    static req_spec specs[4];
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < 4; i++) {
        make_prompt(specs[i].prompt, sizeof specs[i].prompt, i, 1 + 5 * i);
        specs[i].max_tokens = 12;
    }
    const uint64_t budget = 8u << 20;
    vkllm_engine_desc f16 = {.n_ctx = 256, .max_seqs = 4, .kv_bytes = budget, .manual = true};
    vkllm_engine_desc q8 = f16;
    q8.kv_type = "q8_0";
    req_out a16[4], a8[4], b8[4];
    run_alone(&f16, specs, 4, a16);
    run_alone(&q8, specs, 4, a8);
    vkllm_engine *e = engine(&q8);
    vkllm_request *r[4];
    for (int i = 0; i < 4; i++)
        r[i] = submit(e, &specs[i]);
    for (int i = 0; i < 4; i++)
        collect(r[i], &b8[i]);
    vkllm_engine_stats s8, s16;
    vkllm_engine_get_stats(e, &s8);
    vkllm_engine_destroy(e);
    e = engine(&f16);
    vkllm_engine_get_stats(e, &s16);
    vkllm_engine_destroy(e);
    print_message("8 MiB of KV cache: %u pages f16, %u pages q8_0\n", s16.pages_total,
                  s8.pages_total);
    assert_true(s8.pages_total * 100 >= s16.pages_total * 185);
    int agree = 0;
    for (int i = 0; i < 4; i++) {
        assert_same(&a8[i], &b8[i], "q8_0 batched", i);
        agree += memcmp(a8[i].ids, a16[i].ids, 4 * sizeof a8[i].ids[0]) == 0;
    }
    assert_true(agree >= 3);
    vkllm_engine_desc bad = {.kv_type = "q4_0"};
    assert_int_equal(vkllm_engine_create(g_m, &bad, &e), VKLLM_ERR_INVALID_ARG);
}

static bool cancel_after_3(void *user, int32_t tok, const char *piece, size_t len) {
    (void)tok, (void)piece, (void)len;
    int *n = user;
    return ++*n < 3;
}

/* Stop strings, cancel, callbacks, freeing a running request, and bad requests. */
static void test_requests(void **state) {
    (void)state;
    vkllm_engine_desc d = {.n_ctx = 128, .max_seqs = 4};
    vkllm_engine *e = engine(&d);
    req_spec s = {.max_tokens = 24};
    make_prompt(s.prompt, sizeof s.prompt, 4, 2);
    req_out full, cut;
    collect(submit(e, &s), &full);
    assert_int_equal(full.res.stop, VKLLM_STOP_MAX_TOKENS);
    assert_int_equal(full.n, 24);
    /* a stop string from the middle of that answer: the text ends before it */
    const size_t tl = strlen(full.text);
    assert_true(tl > 12);
    char stop[8];
    snprintf(stop, sizeof stop, "%.5s", full.text + tl / 2);
    s.stop = stop;
    collect(submit(e, &s), &cut);
    assert_int_equal(cut.res.stop, VKLLM_STOP_STRING);
    const char *at = strstr(full.text, stop);
    assert_non_null(at);
    assert_int_equal(strlen(cut.text), (size_t)(at - full.text));
    assert_memory_equal(cut.text, full.text, strlen(cut.text));

    /* the callback stops it */
    int count = 0;
    vkllm_request_desc cd = {.prompt = s.prompt,
                             .max_tokens = 50,
                             .ignore_eog = true,
                             .on_token = cancel_after_3,
                             .user = &count};
    vkllm_request *r = NULL;
    assert_int_equal(vkllm_submit(e, &cd, &r), VKLLM_OK);
    vkllm_request_result res = {0};
    assert_int_equal(vkllm_request_wait(r, &res), VKLLM_OK);
    assert_int_equal(res.stop, VKLLM_STOP_CALLBACK);
    assert_int_equal(res.n_generated, 3);
    vkllm_request_free(r);
    /* cancelled: before or while running, it ends with CANCELLED */
    vkllm_request_desc ld = {.prompt = s.prompt, .ignore_eog = true};
    assert_int_equal(vkllm_submit(e, &ld, &r), VKLLM_OK);
    vkllm_request_cancel(r);
    assert_int_equal(vkllm_request_wait(r, &res), VKLLM_OK);
    assert_int_equal(res.stop, VKLLM_STOP_CANCELLED);
    vkllm_request_free(r);
    /* freed while running: the engine lets go of it (ASan checks nothing leaks) */
    assert_int_equal(vkllm_submit(e, &ld, &r), VKLLM_OK);
    vkllm_request_free(r);
    /* without max_tokens it runs into the context (n_ctx 128) */
    assert_int_equal(vkllm_submit(e, &ld, &r), VKLLM_OK);
    assert_int_equal(vkllm_request_wait(r, &res), VKLLM_OK);
    assert_int_equal(res.stop, VKLLM_STOP_CONTEXT);
    assert_int_equal(res.n_prompt + res.n_generated, 129);
    assert_null(vkllm_request_text(NULL, NULL));
    /* kept past the engine: still readable */
    vkllm_request *kept = r;

    /* bad requests */
    static char longp[20000];
    make_prompt(longp, sizeof longp, 1, 400);
    vkllm_request_desc bad = {.prompt = longp};
    assert_int_equal(vkllm_submit(e, &bad, &r), VKLLM_ERR_CONTEXT_FULL);
    assert_null(r);
    assert_non_null(strstr(vkllm_engine_last_error(e), "context"));
    const int32_t toks[2] = {1, 2};
    vkllm_request_desc two = {.prompt = "hi", .tokens = toks, .n_tokens = 2};
    assert_int_equal(vkllm_submit(e, &two, &r), VKLLM_ERR_INVALID_ARG);
    const int32_t badtok[2] = {1, 1 << 30};
    vkllm_request_desc bt = {.tokens = badtok, .n_tokens = 2};
    assert_int_equal(vkllm_submit(e, &bt, &r), VKLLM_ERR_INVALID_ARG);
    vkllm_request_desc neg = {.prompt = "hi", .max_tokens = -1};
    assert_int_equal(vkllm_submit(e, &neg, &r), VKLLM_ERR_INVALID_ARG);
    vkllm_request_desc none = {0};
    assert_int_equal(vkllm_submit(e, &none, &r), VKLLM_ERR_INVALID_ARG);
    vkllm_engine_destroy(e);
    size_t n = 0;
    assert_non_null(vkllm_request_tokens(kept, &n));
    assert_int_equal(n, 129 - res.n_prompt);
    vkllm_request_free(kept);

    /* a KV budget smaller than one sequence */
    vkllm_engine_desc tiny = {.n_ctx = 1024, .kv_pages = 10};
    assert_int_equal(vkllm_engine_create(g_m, &tiny, &e), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_model_last_error(g_m), "KV"));
}

/* ignore_eog bans the end-of-generation tokens from sampling (llama.cpp's ignore_eos): a
 * prompt whose greedy answer ends after a few tokens gives exactly max_tokens tokens, none of
 * them EOG, and the greedy ones begin with the answer that stopped; greedy (the device's
 * top-k with the banned ones dropped), top-k sampled and sampled from every logit; through
 * the engine and through vkllm_generate. */
static bool any_eog(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (vkllm_token_is_eog(g_m, ids[i])) return true;
    return false;
}

typedef struct gen_ids {
    int32_t ids[64];
    size_t n;
} gen_ids;

static bool gen_collect(void *user, int32_t tok, const char *piece, size_t len) {
    (void)piece, (void)len;
    gen_ids *g = user;
    if (g->n < 64) g->ids[g->n++] = tok;
    return true;
}

static void test_ignore_eog(void **state) {
    (void)state;
    const vkllm_chat_message msg = {"user", "Answer with one word: is water wet?"};
    req_spec s = {.max_tokens = 48, .stop_at_eog = true};
    size_t len = 0;
    assert_int_equal(vkllm_chat_apply(g_m, &msg, 1, true, s.prompt, sizeof s.prompt, &len),
                     VKLLM_OK);
    vkllm_engine_desc d = {.n_ctx = 256, .max_seqs = 4};
    vkllm_engine *e = engine(&d);
    req_out stopped;
    collect(submit(e, &s), &stopped);
    print_message("greedy answer without ignore_eog: %zu tokens, '%s'\n", stopped.n, stopped.text);
    assert_int_equal(stopped.res.stop, VKLLM_STOP_EOG);
    assert_true(stopped.n >= 2 && stopped.n < 12);
    assert_true(vkllm_token_is_eog(g_m, stopped.ids[stopped.n - 1]));
    const int32_t max = 16;
    const vkllm_sampling samplings[] = {
        {0},                                             /* greedy */
        {.temperature = 0.8f, .top_k = 40, .seed = 3},   /* candidates from the device */
        {.temperature = 1.5f, .top_p = 1.0f, .seed = 5}, /* every logit */
    };
    for (size_t k = 0; k < sizeof samplings / sizeof samplings[0]; k++) {
        req_spec t = s;
        t.stop_at_eog = false;
        t.max_tokens = max;
        t.smp = samplings[k];
        req_out o;
        collect(submit(e, &t), &o);
        assert_int_equal(o.res.stop, VKLLM_STOP_MAX_TOKENS);
        assert_int_equal(o.n, (size_t)max);
        if (any_eog(o.ids, o.n)) fail_msg("sampling %zu: an EOG token was sampled", k);
        if (k == 0) /* greedy: the answer, then something else than its EOG */
            assert_memory_equal(o.ids, stopped.ids, (stopped.n - 1) * sizeof *o.ids);
        /* vkllm_generate: the same */
        vkllm_session *ss = NULL;
        vkllm_session_desc sd = {.n_ctx = 256};
        assert_int_equal(vkllm_session_create(g_m, &sd, &ss), VKLLM_OK);
        gen_ids g = {.n = 0};
        vkllm_generate_desc gd = {.prompt = s.prompt,
                                  .max_tokens = max,
                                  .ignore_eog = true,
                                  .sampling = samplings[k],
                                  .on_token = gen_collect,
                                  .user = &g};
        vkllm_generate_result gr = {0};
        assert_int_equal(vkllm_generate(ss, &gd, &gr), VKLLM_OK);
        vkllm_session_destroy(ss);
        assert_int_equal(gr.stop, VKLLM_STOP_MAX_TOKENS);
        assert_int_equal(gr.n_generated, (uint32_t)max);
        assert_int_equal(g.n, (size_t)max);
        if (any_eog(g.ids, g.n)) fail_msg("generate, sampling %zu: an EOG token was sampled", k);
        assert_memory_equal(g.ids, o.ids, (size_t)max * sizeof *o.ids); /* the engine's */
    }
    vkllm_engine_destroy(e);
}

int main(void) {
#ifdef VKLLM_TEST_SANITIZED
    g_small = true;
#endif
    const char *dev = getenv("VKLLM_TEST_DEVICE");
    if (dev) g_device = dev;
    if (dev && strcmp(dev, "cpu") != 0) {
        /* lavapipe runs the model ~50x slower than the CPU backend: the engine's behaviour
         * over the Vulkan backend (mixed batches, paged attention, asynchronous steps) on
         * shorter prompts; the prefix cache and the request API are backend-independent */
        g_small = true;
        const char *rx = getenv("VKLLM_TEST_RELAXED");
        if (rx && strcmp(rx, "1") == 0) {
            /* the relaxed products keep a token's outputs the same alone and in a batch */
            g_relaxed = true;
            const struct CMUnitTest relaxed_tests[] = {cmocka_unit_test(test_batch_invariance)};
            return cmocka_run_group_tests(relaxed_tests, setup, teardown);
        }
        const struct CMUnitTest vk_tests[] = {
            cmocka_unit_test(test_batch_invariance),   cmocka_unit_test(test_preemption),
            cmocka_unit_test(test_step_budget),        cmocka_unit_test(test_overlap),
            cmocka_unit_test(test_overlap_ignore_eog), cmocka_unit_test(test_ignore_eog),
        };
        return cmocka_run_group_tests(vk_tests, setup, teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_step_budget),
        cmocka_unit_test(test_kv_q8),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_overlap_ignore_eog),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_ignore_eog),
    };
    return api_test_run_group("test_sched", tests, sizeof tests / sizeof tests[0], setup, teardown);
}
