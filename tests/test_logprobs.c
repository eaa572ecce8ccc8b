/* Log-probabilities (src/sched/logprobs.c, vkllm_logprobs_fn) and OpenAI's penalties through
 * the API. Without a model: sched_logprobs against a double-precision log-softmax computed
 * here, its top entries against a full sort. With the default model, on the CPU backend (and
 * on Vulkan with VKLLM_TEST_DEVICE=vulkan: test_logprobs_vulkan, lavapipe with the validation
 * layer, fewer tokens): a greedy request's figures against the log-softmax of the full logits
 * of the same tokens read with vkllm_session_eval; the same figures, bit for bit, from
 * vkllm_generate and from a request batched with others; the callback's order and count with
 * and without ignore_eog; penalties that change a repetitive answer, and their range checks. */
#define API_TEST_N_GEN 32
#include "api_test_util.h"

#include "sched/logprobs.h"

#include <math.h>

/* ---- sched_logprobs alone ---- */

#define NV 49152 /* the default model's vocabulary size */

/* log-softmax of logits[token] in double, NaN as -inf */
static double ref_logprob(const float *l, uint32_t n, int32_t token) {
    double mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (l[i] > mx) mx = l[i];
    double z = 0.0;
    for (uint32_t i = 0; i < n; i++)
        if (l[i] == l[i]) z += exp((double)l[i] - mx);
    return (double)l[token] - mx - log(z);
}

/* Stated tolerance: the figure is computed in double and rounded to float once, so it is
 * within one float rounding (2^-24 relative) of the double reference, plus the reference's
 * own double roundings; 2^-22 relative leaves room for both. */
static void assert_close(float got, double want, const char *what, int i) {
    if (!(fabs((double)got - want) <= ldexp(fabs(want), -22) + 1e-12))
        fail_msg("%s %d: logprob %.9g, the double reference %.12g", what, i, (double)got, want);
}

static uint64_t g_rng = 99;
static float rnd_unit(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) & 0xffffff) / 16777216.0f;
}

static void test_log_softmax(void **state) {
    (void)state;
    static float l[NV];
    const float scales[] = {1.0f, 8.0f, 40.0f};
    for (int sc = 0; sc < 3; sc++) {
        for (uint32_t i = 0; i < NV; i++)
            l[i] = (rnd_unit() - 0.5f) * scales[sc];
        if (sc == 2) { /* ties at the top, -inf and NaN logits */
            l[100] = l[200] = l[300] = 30.0f;
            l[5] = -INFINITY;
            l[6] = NAN;
        }
        vkllm_token_logprob top[VKLLM_TOP_LOGPROBS_MAX];
        float lp = 0.0f;
        const uint32_t k = VKLLM_TOP_LOGPROBS_MAX;
        /* many tokens: the figure is the double log-softmax within the tolerance */
        double total = 0.0;
        for (uint32_t t = 0; t < NV; t += 97) {
            assert_int_equal(sched_logprobs(l, NV, (int32_t)t, 0, &lp, top), 0);
            if (l[t] != l[t] || l[t] == -INFINITY) {
                assert_true(lp == -INFINITY);
                continue;
            }
            assert_true(lp <= 0.0f);
            assert_close(lp, ref_logprob(l, NV, (int32_t)t), "token", (int)t);
        }
        /* over a smaller vocabulary, every figure: the probabilities sum to 1 */
        for (uint32_t t = 0; t < 2000; t++) {
            sched_logprobs(l, 2000, (int32_t)t, 0, &lp, top);
            total += exp((double)lp);
        }
        if (fabs(total - 1.0) > 1e-6)
            fail_msg("scale %g: probabilities sum to %.9f", (double)scales[sc], total);
        /* the top entries: the k largest logits (ties to the lower id), each with the figure
         * the token itself gets, largest first */
        assert_int_equal(sched_logprobs(l, NV, 0, k, &lp, top), k);
        for (uint32_t i = 0; i < k; i++) {
            const int32_t id = top[i].token;
            assert_true(id >= 0 && id < NV);
            uint32_t above = 0; /* tokens that must come before id */
            for (uint32_t j = 0; j < NV; j++)
                above += l[j] > l[id] || (l[j] == l[id] && (int32_t)j < id);
            assert_int_equal(above, i);
            float own;
            sched_logprobs(l, NV, id, 0, &own, NULL);
            assert_true(own == top[i].logprob); /* the same bits */
            assert_close(top[i].logprob, ref_logprob(l, NV, id), "top", (int)i);
            if (i) assert_true(top[i].logprob <= top[i - 1].logprob);
        }
        if (sc == 2) { /* the tie: lower id first */
            assert_int_equal(top[0].token, 100);
            assert_int_equal(top[1].token, 200);
            assert_int_equal(top[2].token, 300);
            assert_true(top[0].logprob == top[2].logprob);
        }
    }
    /* fewer finite logits than asked: fewer entries; nothing finite: none, -inf */
    float few[8] = {0.0f, -INFINITY, 1.0f, NAN, -INFINITY, -INFINITY, 2.0f, -INFINITY};
    vkllm_token_logprob top[VKLLM_TOP_LOGPROBS_MAX];
    float lp;
    assert_int_equal(sched_logprobs(few, 8, 6, 5, &lp, top), 3);
    assert_int_equal(top[0].token, 6);
    assert_int_equal(top[1].token, 2);
    assert_int_equal(top[2].token, 0);
    assert_close(lp, ref_logprob(few, 8, 6), "few", 6);
    assert_int_equal(sched_logprobs(few, 8, 8, 0, &lp, top), 0); /* an id out of range */
    assert_true(lp == -INFINITY);
    const float none[3] = {-INFINITY, NAN, -INFINITY};
    assert_int_equal(sched_logprobs(none, 3, 0, 3, &lp, top), 0);
    assert_true(lp == -INFINITY);
    /* one logit far above the rest: its figure is ~0, the others' ~ the gap */
    float one[4] = {0.0f, 100.0f, 0.0f, 0.0f};
    sched_logprobs(one, 4, 1, 0, &lp, NULL);
    assert_true(lp <= 0.0f && lp > -1e-30f);
    sched_logprobs(one, 4, 0, 0, &lp, NULL);
    assert_close(lp, ref_logprob(one, 4, 0), "gap", 0);
}

/* ---- through the API, on the model ---- */

#define MAXG 32

typedef struct lp_rec {
    int32_t tok[MAXG];
    float lp[MAXG];
    uint32_t n_top[MAXG];
    vkllm_token_logprob top[MAXG][VKLLM_TOP_LOGPROBS_MAX];
    size_t n;       /* on_logprobs calls */
    size_t n_piece; /* on_token calls */
    bool order_bad; /* an on_token without its on_logprobs just before */
} lp_rec;

static void rec_logprobs(void *user, int32_t tok, float lp, const vkllm_token_logprob *top,
                         uint32_t n_top) {
    lp_rec *r = user;
    if (r->n >= MAXG) return;
    r->tok[r->n] = tok;
    r->lp[r->n] = lp;
    r->n_top[r->n] = n_top;
    memcpy(r->top[r->n], top, n_top * sizeof *top);
    r->n++;
}

static bool rec_token(void *user, int32_t tok, const char *piece, size_t len) {
    (void)piece, (void)len;
    lp_rec *r = user;
    if (r->n != r->n_piece + 1 || r->tok[r->n_piece] != tok) r->order_bad = true;
    r->n_piece++;
    return true;
}

static vkllm_runtime *g_rt;
static vkllm_model *g_m;
static const char *g_device = "cpu";
static bool g_small; /* lavapipe: fewer tokens */

static int setup(void **state) {
    (void)state;
    g_m = api_test_open(&g_rt, g_device, -1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    vkllm_model_free(g_m);
    vkllm_runtime_destroy(g_rt);
    return 0;
}

static vkllm_engine *engine(uint32_t max_seqs) {
    vkllm_engine_desc d = {.n_ctx = 512, .max_seqs = max_seqs};
    vkllm_engine *e = NULL;
    if (vkllm_engine_create(g_m, &d, &e) != VKLLM_OK)
        fail_msg("engine: %s", vkllm_model_last_error(g_m));
    return e;
}

static vkllm_request_desc lp_desc(const char *prompt, int32_t n, uint32_t top, lp_rec *rec) {
    return (vkllm_request_desc){.struct_size = sizeof(vkllm_request_desc),
                                .prompt = prompt,
                                .max_tokens = n,
                                .ignore_eog = true,
                                .on_token = rec_token,
                                .user = rec,
                                .on_logprobs = rec_logprobs,
                                .top_logprobs = top};
}

static void wait_free(vkllm_request *r, vkllm_request_result *res) {
    assert_int_equal(vkllm_request_wait(r, res), VKLLM_OK);
    vkllm_request_free(r);
}

static void assert_same_rec(const lp_rec *a, const lp_rec *b, const char *what) {
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (a->tok[i] != b->tok[i] || memcmp(&a->lp[i], &b->lp[i], sizeof a->lp[i]) != 0 ||
            a->n_top[i] != b->n_top[i] ||
            memcmp(a->top[i], b->top[i], a->n_top[i] * sizeof a->top[i][0]) != 0)
            fail_msg("%s: token %zu differs (%d %.9g vs %d %.9g)", what, i, a->tok[i],
                     (double)a->lp[i], b->tok[i], (double)b->lp[i]);
    }
}

static const char *k_prompt = "The capital of France is";

/* A greedy request's figures: each token is the argmax of the full logits of the same
 * tokens (vkllm_session_eval, one token at a time after the prompt: the attention the engine
 * uses for generated tokens), its figure their log-softmax (double reference, the stated
 * tolerance), its top entries the best logits in order; vkllm_generate gives the same bits. */
static void test_greedy_equals_full_logits(void **state) {
    (void)state;
    const int32_t n_gen = g_small ? 6 : 24;
    const uint32_t k = 5;
    static lp_rec got, gen;
    memset(&got, 0, sizeof got);
    vkllm_engine *e = engine(4);
    vkllm_request_desc d = lp_desc(k_prompt, n_gen, k, &got);
    vkllm_request *r = NULL;
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
    vkllm_request_result res = {0};
    wait_free(r, &res);
    vkllm_engine_destroy(e);
    assert_int_equal(res.n_generated, (uint32_t)n_gen);
    assert_int_equal(got.n, (size_t)n_gen);
    assert_int_equal(got.n_piece, (size_t)n_gen);
    assert_false(got.order_bad);

    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(g_m, &(vkllm_session_desc){.n_ctx = 512}, &s), VKLLM_OK);
    int32_t toks[256];
    size_t n_tok = 0;
    assert_int_equal(vkllm_tokenize(g_m, k_prompt, strlen(k_prompt),
                                    VKLLM_TOKENIZE_ADD_SPECIAL | VKLLM_TOKENIZE_PARSE_SPECIAL, toks,
                                    256, &n_tok),
                     VKLLM_OK);
    vkllm_model_info mi = {0};
    vkllm_model_get_info(g_m, &mi);
    assert_int_equal(vkllm_session_eval(s, toks, n_tok), VKLLM_OK);
    for (int i = 0; i < n_gen; i++) {
        const float *l = vkllm_session_logits(s);
        int32_t best = 0;
        for (uint32_t j = 1; j < mi.n_vocab; j++)
            if (l[j] > l[best]) best = (int32_t)j;
        assert_int_equal(got.tok[i], best); /* greedy */
        assert_true(got.lp[i] <= 0.0f);
        assert_close(got.lp[i], ref_logprob(l, mi.n_vocab, got.tok[i]), "generated", i);
        assert_int_equal(got.n_top[i], k);
        assert_int_equal(got.top[i][0].token, best);
        assert_true(got.top[i][0].logprob == got.lp[i]);
        for (uint32_t t = 0; t < k; t++) {
            const int32_t id = got.top[i][t].token;
            uint32_t above = 0;
            for (uint32_t j = 0; j < mi.n_vocab; j++)
                above += l[j] > l[id] || (l[j] == l[id] && (int32_t)j < id);
            assert_int_equal(above, t);
            assert_close(got.top[i][t].logprob, ref_logprob(l, mi.n_vocab, id), "top", i);
        }
        assert_int_equal(vkllm_session_eval(s, &got.tok[i], 1), VKLLM_OK);
    }

    /* vkllm_generate: the same figures, bit for bit */
    memset(&gen, 0, sizeof gen);
    vkllm_session_reset(s);
    vkllm_generate_desc gd = {.struct_size = sizeof gd,
                              .prompt = k_prompt,
                              .max_tokens = n_gen,
                              .ignore_eog = true,
                              .on_token = rec_token,
                              .user = &gen,
                              .on_logprobs = rec_logprobs,
                              .top_logprobs = k};
    vkllm_generate_result gr = {0};
    assert_int_equal(vkllm_generate(s, &gd, &gr), VKLLM_OK);
    vkllm_session_destroy(s);
    assert_false(gen.order_bad);
    assert_same_rec(&got, &gen, "vkllm_generate");
}

/* The same request alone, and batched with others (sampled, penalised, greedy without
 * figures, longer prompts), some of them submitted first: the same figures, bit for bit (a
 * token's logits are the same bits in any batch, and the figures are a function of them). */
static void test_batched_equals_alone(void **state) {
    (void)state;
    const int32_t n_gen = g_small ? 5 : 16;
    static lp_rec alone, batched, other_lp;
    memset(&alone, 0, sizeof alone);
    memset(&batched, 0, sizeof batched);
    memset(&other_lp, 0, sizeof other_lp);
    vkllm_engine *e = engine(4);
    vkllm_request_desc d = lp_desc("Write a short poem about the sea.", n_gen, 3, &alone);
    vkllm_request *r = NULL;
    vkllm_request_result res;
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
    wait_free(r, &res);
    vkllm_engine_destroy(e);

    e = engine(4);
    vkllm_request_desc o1 = {.prompt = "Once upon a time, in a village far away, there lived",
                             .max_tokens = n_gen + 3,
                             .ignore_eog = true,
                             .sampling = {.temperature = 0.9f, .seed = 5}};
    vkllm_request_desc o2 = lp_desc("1, 2, 3, 4, 5,", n_gen - 2, 0, &other_lp);
    o2.sampling = (vkllm_sampling){.temperature = 0.7f, .top_k = 20, .seed = 9};
    o2.frequency_penalty = 0.75f;
    o2.presence_penalty = -0.5f;
    vkllm_request_desc o3 = {
        .prompt = "def fibonacci(n):\n    ", .max_tokens = n_gen, .ignore_eog = true};
    vkllm_request *r1, *r2, *r3;
    assert_int_equal(vkllm_submit(e, &o1, &r1), VKLLM_OK);
    assert_int_equal(vkllm_submit(e, &o2, &r2), VKLLM_OK);
    d.user = &batched;
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
    assert_int_equal(vkllm_submit(e, &o3, &r3), VKLLM_OK);
    wait_free(r, &res);
    wait_free(r1, &res);
    wait_free(r2, &res);
    wait_free(r3, &res);
    vkllm_engine_destroy(e);
    assert_same_rec(&alone, &batched, "batched");
    /* top_logprobs 0: the sampled token's figure only */
    assert_int_equal(other_lp.n, (size_t)(n_gen - 2));
    for (size_t i = 0; i < other_lp.n; i++) {
        assert_int_equal(other_lp.n_top[i], 0);
        assert_true(other_lp.lp[i] <= 0.0f && other_lp.lp[i] > -INFINITY);
    }
}

/* Once per sampled token, before its on_token: also for the end-of-generation token that ends
 * a request (no on_token for it); with ignore_eog that token never comes, yet it may be among
 * the most likely (the figures are the model's, before the ban). */
static void test_callback_contract(void **state) {
    (void)state;
    const vkllm_chat_message msg = {"user", "Answer with one word: is water wet?"};
    static char prompt[1024];
    size_t len = 0;
    assert_int_equal(vkllm_chat_apply(g_m, &msg, 1, true, prompt, sizeof prompt, &len), VKLLM_OK);
    static lp_rec a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    vkllm_engine *e = engine(2);
    vkllm_request_desc d = lp_desc(prompt, 24, 4, &a);
    d.ignore_eog = false;
    vkllm_request *r = NULL;
    vkllm_request_result res = {0};
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
    wait_free(r, &res);
    assert_int_equal(res.stop, VKLLM_STOP_EOG);
    assert_int_equal(a.n, res.n_generated);
    assert_int_equal(a.n_piece, res.n_generated - 1);
    assert_true(vkllm_token_is_eog(g_m, a.tok[a.n - 1]));
    assert_false(a.order_bad);
    /* ignore_eog: as many tokens as asked, none EOG, the same figures up to the EOG */
    const int32_t n = (int32_t)a.n + 2;
    d = lp_desc(prompt, n, 4, &b);
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
    wait_free(r, &res);
    vkllm_engine_destroy(e);
    assert_int_equal(b.n, (size_t)n);
    assert_int_equal(b.n_piece, (size_t)n);
    for (size_t i = 0; i < b.n; i++)
        assert_false(vkllm_token_is_eog(g_m, b.tok[i]));
    for (size_t i = 0; i + 1 < a.n; i++)
        assert_true(a.tok[i] == b.tok[i] && a.lp[i] == b.lp[i]);
    /* where the EOG token was the most likely, the banned one still heads the list */
    const size_t at = a.n - 1;
    assert_int_equal(b.top[at][0].token, a.tok[at]);
    assert_true(b.top[at][0].logprob == a.lp[at]);
    assert_int_not_equal(b.tok[at], a.tok[at]);
}

/* Presence and frequency penalties: a prompt that invites repetition answers otherwise with a
 * frequency penalty, the engine and vkllm_generate alike; out of range: VKLLM_ERR_INVALID_ARG
 * on both, as top_logprobs over VKLLM_TOP_LOGPROBS_MAX. */
static void test_penalties(void **state) {
    (void)state;
    const int32_t n_gen = g_small ? 8 : 24;
    const char *p = "Repeat after me: hello hello hello hello hello hello";
    vkllm_engine *e = engine(2);
    int32_t ids[3][MAXG];
    size_t n_ids[3];
    const float pens[3][2] = {{0.0f, 0.0f}, {0.0f, 2.0f}, {2.0f, 0.5f}};
    for (int k = 0; k < 3; k++) {
        vkllm_request_desc d = {.struct_size = sizeof d,
                                .prompt = p,
                                .max_tokens = n_gen,
                                .ignore_eog = true,
                                .presence_penalty = pens[k][0],
                                .frequency_penalty = pens[k][1]};
        vkllm_request *r = NULL;
        assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
        assert_int_equal(vkllm_request_wait(r, NULL), VKLLM_OK);
        const int32_t *t = vkllm_request_tokens(r, &n_ids[k]);
        assert_int_equal(n_ids[k], (size_t)n_gen);
        memcpy(ids[k], t, n_ids[k] * sizeof *t);
        size_t len = 0;
        print_message("presence %g frequency %g: '%s'\n", (double)pens[k][0], (double)pens[k][1],
                      vkllm_request_text(r, &len));
        vkllm_request_free(r);
        /* vkllm_generate: the same tokens */
        vkllm_session *s = NULL;
        assert_int_equal(vkllm_session_create(g_m, &(vkllm_session_desc){.n_ctx = 512}, &s),
                         VKLLM_OK);
        run_out o = {.n = 0};
        vkllm_generate_desc gd = {.struct_size = sizeof gd,
                                  .prompt = p,
                                  .max_tokens = n_gen,
                                  .ignore_eog = true,
                                  .on_token = api_test_on_token,
                                  .user = &o,
                                  .presence_penalty = pens[k][0],
                                  .frequency_penalty = pens[k][1]};
        assert_int_equal(vkllm_generate(s, &gd, NULL), VKLLM_OK);
        vkllm_session_destroy(s);
        assert_int_equal(o.n, n_gen);
        assert_memory_equal(o.ids, ids[k], (size_t)n_gen * sizeof *o.ids);
    }
    /* the greedy answer repeats one token; with a penalty the same token keeps not winning */
    assert_memory_not_equal(ids[0], ids[1], (size_t)n_gen * sizeof ids[0][0]);
    assert_memory_not_equal(ids[0], ids[2], (size_t)n_gen * sizeof ids[0][0]);
    uint32_t most[3] = {0};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < n_gen; i++) {
            uint32_t c = 0;
            for (int j = 0; j < n_gen; j++)
                c += ids[k][j] == ids[k][i];
            if (c > most[k]) most[k] = c;
        }
    print_message("most repeated token: %u, %u, %u times\n", most[0], most[1], most[2]);
    assert_true(most[1] < most[0] && most[2] < most[0]);

    /* out of range */
    const float bad[][2] = {{2.5f, 0.0f}, {0.0f, -2.01f}, {NAN, 0.0f}, {0.0f, INFINITY}};
    vkllm_session *s = NULL;
    assert_int_equal(vkllm_session_create(g_m, &(vkllm_session_desc){.n_ctx = 64}, &s), VKLLM_OK);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        vkllm_request_desc d = {.struct_size = sizeof d,
                                .prompt = p,
                                .presence_penalty = bad[k][0],
                                .frequency_penalty = bad[k][1]};
        vkllm_request *r = NULL;
        assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_ERR_INVALID_ARG);
        assert_null(r);
        assert_non_null(strstr(vkllm_engine_last_error(e), "penalty"));
        vkllm_generate_desc gd = {.struct_size = sizeof gd,
                                  .prompt = "hi",
                                  .max_tokens = 1,
                                  .presence_penalty = bad[k][0],
                                  .frequency_penalty = bad[k][1]};
        assert_int_equal(vkllm_generate(s, &gd, NULL), VKLLM_ERR_INVALID_ARG);
    }
    vkllm_request_desc d = lp_desc(p, 4, VKLLM_TOP_LOGPROBS_MAX + 1, NULL);
    vkllm_request *r = NULL;
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(vkllm_engine_last_error(e), "top_logprobs"));
    vkllm_generate_desc gd = {.struct_size = sizeof gd,
                              .prompt = "hi",
                              .max_tokens = 1,
                              .on_logprobs = rec_logprobs,
                              .top_logprobs = VKLLM_TOP_LOGPROBS_MAX + 1};
    assert_int_equal(vkllm_generate(s, &gd, NULL), VKLLM_ERR_INVALID_ARG);
    /* a host built against the first layout (struct_size 0) passes none of the new fields:
     * whatever lies past its struct is not read */
    static lp_rec old;
    memset(&old, 0, sizeof old);
    d = lp_desc(p, 4, VKLLM_TOP_LOGPROBS_MAX + 1, &old);
    d.presence_penalty = NAN;
    d.struct_size = 0;
    assert_int_equal(vkllm_submit(e, &d, &r), VKLLM_OK);
    assert_int_equal(vkllm_request_wait(r, NULL), VKLLM_OK);
    vkllm_request_free(r);
    assert_int_equal(old.n_piece, 4);
    assert_int_equal(old.n, 0); /* no on_logprobs */
    vkllm_session_destroy(s);
    vkllm_engine_destroy(e);
}

int main(void) {
    const char *dev = getenv("VKLLM_TEST_DEVICE");
#ifdef VKLLM_TEST_SANITIZED
    g_small = true; /* 10-20x slower: fewer tokens */
#endif
    if (dev && strcmp(dev, "cpu") != 0) { /* lavapipe: the model's part, fewer tokens */
        g_device = dev;
        g_small = true;
        const struct CMUnitTest vk_tests[] = {
            cmocka_unit_test(test_greedy_equals_full_logits),
            cmocka_unit_test(test_batched_equals_alone),
            cmocka_unit_test(test_callback_contract),
            cmocka_unit_test(test_penalties),
        };
        return cmocka_run_group_tests(vk_tests, setup, teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_softmax),
        cmocka_unit_test(test_greedy_equals_full_logits),
        cmocka_unit_test(test_batched_equals_alone),
        cmocka_unit_test(test_callback_contract),
        cmocka_unit_test(test_penalties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
