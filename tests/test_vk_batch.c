/* Multi-sequence steps over the paged KV cache on the Vulkan backend (src/vk/vk_backend.c)
 * against the CPU backend (src/cpu/cpu_backend.c, the numerical reference), on the default
 * model: both backends run the same batches on contexts of the same shape, and every step's
 * results are compared.
 *
 * At every capability tier: one sequence on an identity block table (the session's) through
 * a SERIAL chunk without outputs, a TILED chunk whose keys pass one 64-key tile and SPLIT
 * decode steps (the last replaying a recording); four sequences of different lengths on
 * shuffled pages of one pool: a first step of TILED, SERIAL and SPLIT entries (one without
 * output), decode steps of all four (recorded once per slot, then replayed), three entries of
 * one sequence in a step beside a SPLIT entry of two tokens (SERIAL arithmetic), a TILED entry
 * beside decode entries, a step with no outputs, and decode steps where a fifth sequence,
 * whose block table names pages the others filled (repeated, as shared prefix pages would
 * be), attends over 273 positions (padded to 512: split-K) while the others do not. Results:
 * top_k 0 (logits), 1 (argmax on the device) and 8. At the best tier only (host logic, the
 * same at every tier): begin + advance with 2 ms deadlines (advance called until done) and
 * with deadlines already past, two steps in flight (the second continues a sequence of the
 * first, so the queue must order them), all equal to run; banned ids left out of flagged
 * rows' argmax and top-k (eng_seq.ban), equal on both backends; errors: a block table naming a page
 * past the pool, too many entries, a third step in flight, advance with nothing in flight, a
 * KV cache over the device's buffer limit; the context keeps working after them.
 * VKLLM_BATCH_VERBOSE=1 prints each step's Vulkan time.
 *
 * Tolerance: none. Logits must be the CPU's bit for bit and the candidates (ids, and values
 * for top_k > 1) identical, as tests/test_vk_api.c and test_vk_greedy.c expect of a single
 * sequence at every tier: every Vulkan kernel follows the CPU path's operations in its order
 * (docs/architecture.md), paging changes only where a key is read from, and an entry's
 * attention arithmetic depends on its own mode and positions, never on what else is in the
 * step. The exceptions test_vk_attn.c bounds (the kernels' expf and float-pair tile sums
 * missing libm's in ~1e-7 of arguments) would show as a failure here, with the row and the
 * number of differing logits. As there, the CPU backend must run its AVX2 kernels, and both
 * use 2 threads / 2 split-K chunks. ctest sets VKLLM_VK_VALIDATION=1: any validation message
 * fails a step.
 */
#include "api_test_util.h"

#include "api_internal.h"
#include "vk/vk.h"
#include "vk/vk_backend.h"

/* As tests/vk_test_util.h's VT_FIRST_TIER (this test has its own helpers): under the
 * sanitizers the best tier only, where the host logic runs. */
#ifdef VKLLM_TEST_SANITIZED
#define FIRST_TIER (VK_TIER_COUNT - 1)
#else
#define FIRST_TIER 0
#endif

#define MAX_TOK 256
#define MAX_SEQS 8
#define MAX_PAGES 64 /* per sequence */

/* ---- the model and the two backends ---- */

static vkllm_runtime *g_rt;
static vkllm_model *g_m;
static eng_backend *g_cpu; /* g_rt's, 2 threads */

static void vk_log_cb(void *user, vkllm_log_level level, const char *msg) {
    (void)user;
    if (level >= VKLLM_LOG_WARN) fprintf(stderr, "vulkan: %s\n", msg);
}

static int setup(void **state) {
    (void)state;
    g_m = api_test_open(&g_rt, "cpu", -1);
    api_test_require_avx2(g_rt);
    g_cpu = g_rt->backend;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    vkllm_model_free(g_m);
    vkllm_runtime_destroy(g_rt);
    return 0;
}

static eng_backend *vk_open(int tier) {
    vk_backend_desc vd = {
        .log = vk_log_cb, .select = "vulkan", .max_tier = tier, .n_splits = API_TEST_THREADS};
    eng_backend *be = NULL;
    core_err err = {{0}};
    if (vk_backend_create(&vd, &be, &err) != VKLLM_OK) fail_msg("vulkan: %s", err.msg);
    if (be->info.tier != tier) fail_msg("device has tier %d, test needs %d", be->info.tier, tier);
    if (be->vt->model_attach(be, &g_m->em, &err) != VKLLM_OK) fail_msg("attach: %s", err.msg);
    return be;
}

static void vk_close(eng_backend *be) {
    be->vt->model_detach(be, &g_m->em);
    be->vt->destroy(be);
}

static eng_ctx *ctx_open(eng_backend *be, const eng_ctx_desc *cd) {
    eng_ctx *c = NULL;
    core_err err = {{0}};
    if (be->vt->ctx_create(be, &g_m->em, &g_m->graph, cd, &c, &err) != VKLLM_OK)
        fail_msg("%s: context: %s", be->name, err.msg);
    return c;
}

/* ---- sequences on a shuffled page pool, and batches of them ---- */

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)((g_rng >> 11) % n);
}

typedef struct pool {
    uint32_t free[1024], n_free;
} pool;

/* pages 0 .. n - 1 in a shuffled order */
static void pool_init(pool *p, uint32_t n) {
    assert_true(n <= 1024);
    for (uint32_t i = 0; i < n; i++)
        p->free[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        const uint32_t j = rnd(i), t = p->free[i - 1];
        p->free[i - 1] = p->free[j];
        p->free[j] = t;
    }
    p->n_free = n;
}

typedef struct seq {
    uint32_t pages[MAX_PAGES], n_pages;
    uint32_t len; /* positions stored (or queued in the batch being built) */
} seq;

/* identity: pages 0, 1, 2, ... (the session's table) */
static void seq_ident(seq *s) {
    for (uint32_t i = 0; i < MAX_PAGES; i++)
        s->pages[i] = i;
    s->n_pages = MAX_PAGES;
}

static void seq_cover(seq *s, pool *p, uint32_t n_pos) {
    while (s->n_pages * ENG_PAGE < n_pos) {
        assert_true(p && p->n_free > 0 && s->n_pages < MAX_PAGES);
        s->pages[s->n_pages++] = p->free[--p->n_free];
    }
}

typedef struct batch {
    int32_t tokens[MAX_TOK];
    eng_seq seqs[MAX_SEQS];
    eng_batch b;
} batch;

static void batch_start(batch *b, uint32_t top_k) {
    memset(b, 0, sizeof *b);
    b->b.tokens = b->tokens;
    b->b.seqs = b->seqs;
    b->b.top_k = top_k;
}

/* An entry of n tokens (random ids) of s at its next positions. */
static void batch_add(batch *b, seq *s, pool *p, uint32_t n, eng_attn_mode mode, bool out) {
    assert_true(b->b.n_tokens + n <= MAX_TOK && b->b.n_seqs < MAX_SEQS);
    seq_cover(s, p, s->len + n);
    for (uint32_t i = 0; i < n; i++)
        b->tokens[b->b.n_tokens + i] = (int32_t)rnd(g_m->cfg.n_vocab);
    b->seqs[b->b.n_seqs++] = (eng_seq){
        .n_tokens = n, .pos0 = s->len, .out = out, .mode = (uint8_t)mode, .pages = s->pages};
    b->b.n_tokens += n;
    b->b.n_out += out ? 1u : 0u;
    s->len += n;
}

/* ---- running a step on both backends and comparing ---- */

/* What one backend returned for a step. */
typedef struct result {
    float *logits;
    int32_t ids[MAX_SEQS * 8];
    float vals[MAX_SEQS * 8];
} result;

static result *result_new(void) {
    result *r = calloc(1, sizeof *r);
    r->logits = calloc((size_t)MAX_SEQS * g_m->cfg.n_vocab, sizeof(float));
    return r;
}

static void result_copy(result *dst, const result *src) {
    memcpy(dst->logits, src->logits, (size_t)MAX_SEQS * g_m->cfg.n_vocab * sizeof(float));
    memcpy(dst->ids, src->ids, sizeof dst->ids);
    memcpy(dst->vals, src->vals, sizeof dst->vals);
}

static void result_free(result *r) {
    free(r->logits);
    free(r);
}

static void run_on(eng_backend *be, eng_ctx *c, batch *b, result *r, const char *what) {
    b->b.out_ids = r->ids;
    b->b.out_vals = r->vals;
    core_err err = {{0}};
    if (be->vt->run(c, &b->b, r->logits, &err) != VKLLM_OK)
        fail_msg("%s on %s: %s", what, be->name, err.msg);
}

static uint64_t g_rows, g_logits; /* output rows and logits compared, for the summary */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* got (Vulkan) against ref (CPU) for batch b: logits bit for bit, the same candidates. */
static void compare(const batch *b, const result *ref, const result *got, const char *what) {
    const uint32_t nv = g_m->cfg.n_vocab, k = b->b.top_k;
    for (uint32_t r = 0; r < b->b.n_out; r++) {
        g_rows++;
        if (k == 0) {
            const float *x = got->logits + (size_t)r * nv, *y = ref->logits + (size_t)r * nv;
            uint32_t differ = 0, first = 0;
            double num = 0.0, den = 0.0;
            for (uint32_t i = 0; i < nv; i++) {
                if (f32_bits(x[i]) != f32_bits(y[i]) && differ++ == 0) first = i;
                num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                den += (double)y[i] * y[i];
            }
            g_logits += nv;
            if (differ)
                fail_msg("%s: output row %u: %u of %u logits differ (first %u: %a vs CPU %a), "
                         "nmse %.3g",
                         what, r, differ, nv, first, (double)x[first], (double)y[first], num / den);
            int32_t a, c;
            eng_select_top(x, nv, 1, &a, NULL);
            eng_select_top(y, nv, 1, &c, NULL);
            assert_int_equal(a, c);
            continue;
        }
        for (uint32_t i = 0; i < k; i++) {
            if (got->ids[r * k + i] != ref->ids[r * k + i])
                fail_msg("%s: output row %u: candidate %u is %d, CPU %d", what, r, i,
                         got->ids[r * k + i], ref->ids[r * k + i]);
            if (k > 1 && f32_bits(got->vals[r * k + i]) != f32_bits(ref->vals[r * k + i]))
                fail_msg("%s: output row %u: candidate %u value %a, CPU %a", what, r, i,
                         (double)got->vals[r * k + i], (double)ref->vals[r * k + i]);
        }
    }
}

typedef struct pair {
    eng_backend *vk;
    eng_ctx *cc, *vc;
    result *ref, *got;
} pair;

static void pair_open(pair *p, eng_backend *vk, const eng_ctx_desc *cd) {
    p->vk = vk;
    p->cc = ctx_open(g_cpu, cd);
    p->vc = ctx_open(vk, cd);
    p->ref = result_new();
    p->got = result_new();
}

static void pair_close(pair *p) {
    g_cpu->vt->ctx_destroy(p->cc);
    p->vk->vt->ctx_destroy(p->vc);
    result_free(p->ref);
    result_free(p->got);
}

static void step(pair *p, batch *b, const char *what) {
    run_on(g_cpu, p->cc, b, p->ref, what);
    const double t0 = core_time_s();
    run_on(p->vk, p->vc, b, p->got, what);
    if (getenv("VKLLM_BATCH_VERBOSE"))
        printf("  %-62s %3u tokens %6.2f s\n", what, b->b.n_tokens, core_time_s() - t0);
    compare(b, p->ref, p->got, what);
}

/* ---- the cases ----
 * Small on purpose: lavapipe on two cores takes ~0.5 s a step plus ~0.15 s a token here. */

/* One sequence on an identity block table, the session's way, through every mode. */
static void one_sequence(eng_backend *vk) {
    const eng_ctx_desc cd = {.n_ctx = 512, .n_batch = 64, .n_seqs = 2};
    pair p;
    pair_open(&p, vk, &cd);
    seq s = {0};
    seq_ident(&s);
    batch b;
    batch_start(&b, 0);
    batch_add(&b, &s, NULL, 12, ENG_ATTN_SERIAL, false);
    step(&p, &b, "identity: serial 12, no outputs");
    batch_start(&b, 0);
    batch_add(&b, &s, NULL, 60, ENG_ATTN_TILED, true); /* keys past one 64-key tile */
    step(&p, &b, "identity: tiled 60");
    batch_start(&b, 8);
    batch_add(&b, &s, NULL, 1, ENG_ATTN_SPLIT, true);
    step(&p, &b, "identity: decode, top 8");
    for (int i = 0; i < 3; i++) { /* the third replays the first one's recording */
        batch_start(&b, 0);
        batch_add(&b, &s, NULL, 1, ENG_ATTN_SPLIT, true);
        step(&p, &b, "identity: decode");
    }
    pair_close(&p);
}

/* Four sequences of different lengths on shuffled pages of one pool, and a fifth whose block
 * table names pages the others filled (repeated, as shared prefix pages would be), so that it
 * decodes past 256 positions, where split-K starts, without a long prefill. */
static void paged_sequences(eng_backend *vk) {
    const eng_ctx_desc cd = {.n_ctx = 512, .n_batch = 64, .n_seqs = MAX_SEQS, .n_pages = 48};
    pair p;
    pair_open(&p, vk, &cd);
    pool pl;
    pool_init(&pl, cd.n_pages);
    seq s[5];
    memset(s, 0, sizeof s);
    batch b;
    batch_start(&b, 0);
    batch_add(&b, &s[0], &pl, 16, ENG_ATTN_TILED, true);
    batch_add(&b, &s[1], &pl, 7, ENG_ATTN_SERIAL, true);
    batch_add(&b, &s[2], &pl, 1, ENG_ATTN_SPLIT, true);
    batch_add(&b, &s[3], &pl, 17, ENG_ATTN_SERIAL, false);
    step(&p, &b, "paged: tiled 16, serial 7, decode, serial 17 without output");
    for (int i = 0; i < 4; i++) { /* recorded once per slot, then replayed */
        batch_start(&b, 0);
        for (int q = 0; q < 4; q++)
            batch_add(&b, &s[q], &pl, 1, ENG_ATTN_SPLIT, true);
        step(&p, &b, "paged: decode of 4");
    }
    batch_start(&b, 1);
    batch_add(&b, &s[0], &pl, 3, ENG_ATTN_SERIAL, false);
    batch_add(&b, &s[0], &pl, 2, ENG_ATTN_SERIAL, true);
    batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
    batch_add(&b, &s[0], &pl, 1, ENG_ATTN_SPLIT, true);
    batch_add(&b, &s[2], &pl, 2, ENG_ATTN_SPLIT, true); /* SPLIT of 2 tokens: SERIAL */
    step(&p, &b, "paged: three entries of one sequence, argmax");
    batch_start(&b, 8);
    batch_add(&b, &s[3], &pl, 20, ENG_ATTN_TILED, true);
    for (int q = 0; q < 3; q++)
        batch_add(&b, &s[q], &pl, 1, ENG_ATTN_SPLIT, true);
    step(&p, &b, "paged: tiled 20 beside 3 decodes, top 8");
    batch_start(&b, 0);
    batch_add(&b, &s[0], &pl, 4, ENG_ATTN_SERIAL, false);
    batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, false);
    step(&p, &b, "paged: no outputs");
    /* sequence 4: 17 filled pages of sequences 0 and 3 (positions 0..271), then its own */
    assert_true(s[0].len >= ENG_PAGE && s[3].len >= 2 * ENG_PAGE);
    const uint32_t filled[3] = {s[0].pages[0], s[3].pages[0], s[3].pages[1]};
    for (uint32_t i = 0; i < 17; i++)
        s[4].pages[i] = filled[i % 3];
    s[4].n_pages = 17;
    s[4].len = 17 * ENG_PAGE;
    for (int i = 0; i < 2; i++) { /* sequence 4 splits its keys, 1 and 2 do not */
        batch_start(&b, i == 0 ? 0 : 1);
        batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
        batch_add(&b, &s[4], &pl, 1, ENG_ATTN_SPLIT, true);
        batch_add(&b, &s[2], &pl, 1, ENG_ATTN_SPLIT, true);
        step(&p, &b,
             i == 0 ? "paged: decode of 3, one at 272 (split-K)"
                    : "paged: decode of 3, one at 273 (split-K), argmax");
    }
    pair_close(&p);
}

/* A Q8_0 cache: K and V rows quantized as the CPU path does, attention through attn_q8 in
 * every mode; sequences on shuffled pages, one of them past 256 positions. */
static void q8_sequences(eng_backend *vk) {
    const eng_ctx_desc cd = {
        .n_ctx = 512, .n_batch = 64, .n_seqs = MAX_SEQS, .n_pages = 40, .kv_q8_0 = true};
    pair p;
    pair_open(&p, vk, &cd);
    pool pl;
    pool_init(&pl, cd.n_pages);
    seq s[3];
    memset(s, 0, sizeof s);
    batch b;
    batch_start(&b, 0);
    batch_add(&b, &s[0], &pl, 40, ENG_ATTN_TILED, true);
    batch_add(&b, &s[1], &pl, 5, ENG_ATTN_SERIAL, true);
    step(&p, &b, "q8_0: tiled 40, serial 5");
    for (int i = 0; i < 3; i++) {
        batch_start(&b, i == 2 ? 8 : 0);
        batch_add(&b, &s[0], &pl, 1, ENG_ATTN_SPLIT, true);
        batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
        if (i == 1) batch_add(&b, &s[2], &pl, 3, ENG_ATTN_SERIAL, false);
        step(&p, &b, i == 2 ? "q8_0: decode of 2, top 8" : "q8_0: decode of 2");
    }
    /* sequence 2: 17 pages that sequence 0 filled, then its own position 272 */
    const uint32_t filled[2] = {s[0].pages[0], s[0].pages[1]};
    for (uint32_t i = 0; i < 17; i++)
        s[2].pages[i] = filled[i % 2];
    s[2].n_pages = 17;
    s[2].len = 17 * ENG_PAGE;
    batch_start(&b, 0);
    batch_add(&b, &s[2], &pl, 1, ENG_ATTN_SPLIT, true);
    batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
    step(&p, &b, "q8_0: decode at 272 beside one at 8");
    pair_close(&p);
}

/* begin + advance: deadlines that pass while the device works, and two steps in flight; paced:
 * the second context submits its steps in segments as deadlines allow (a manual engine's). */
static void stepwise(eng_backend *vk, bool paced) {
    const eng_ctx_desc cd = {.n_ctx = 256, .n_batch = 32, .n_seqs = 4, .n_pages = 24};
    pair p;
    pair_open(&p, vk, &cd);
    eng_ctx_desc cd2 = cd;
    cd2.paced = paced;
    eng_ctx *vc2 = ctx_open(vk, &cd2);
    result *r2 = result_new(), *r3 = result_new(), *ref1 = result_new();
    pool pl;
    pool_init(&pl, cd.n_pages);
    seq s[2];
    memset(s, 0, sizeof s);
    batch b1, b2;
    batch_start(&b1, 0);
    batch_add(&b1, &s[0], &pl, 20, ENG_ATTN_TILED, true);
    batch_add(&b1, &s[1], &pl, 5, ENG_ATTN_SERIAL, true);
    step(&p, &b1, "stepwise: reference by run");
    /* the same step on a second context, in pieces of 2 ms */
    core_err err = {{0}};
    b1.b.out_ids = r2->ids;
    b1.b.out_vals = r2->vals;
    assert_int_equal(vk->vt->begin(vc2, &b1.b, r2->logits, &err), VKLLM_OK);
    bool done = false;
    uint32_t calls = 0;
    while (!done) {
        if (vk->vt->advance(vc2, core_time_s() + 2e-3, &done, &err) != VKLLM_OK)
            fail_msg("advance: %s", err.msg);
        calls++;
    }
    printf("%s%s: a 25-token step took %u advance calls of 2 ms\n", vk->name,
           paced ? " (paced)" : "", calls);
    assert_true(calls > 1);
    compare(&b1, p.got, r2, "stepwise: begin + advance against run");
    compare(&b1, p.ref, r2, "stepwise: begin + advance against the CPU");
    /* two steps in flight: the second continues sequence 0, so it must run after the first */
    batch_start(&b1, 1);
    batch_add(&b1, &s[0], &pl, 4, ENG_ATTN_SERIAL, true);
    batch_add(&b1, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
    batch_start(&b2, 8);
    batch_add(&b2, &s[0], &pl, 9, ENG_ATTN_TILED, true);
    batch_add(&b2, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
    step(&p, &b1, "stepwise: first of two, by run");
    result_copy(ref1, p.ref);
    step(&p, &b2, "stepwise: second of two, by run");
    b1.b.out_ids = r2->ids, b1.b.out_vals = r2->vals;
    b2.b.out_ids = r3->ids, b2.b.out_vals = r3->vals;
    assert_int_equal(vk->vt->begin(vc2, &b1.b, r2->logits, &err), VKLLM_OK);
    assert_int_equal(vk->vt->begin(vc2, &b2.b, r3->logits, &err), VKLLM_OK);
    /* a third is refused; the two in flight are not disturbed */
    assert_int_equal(vk->vt->begin(vc2, &b1.b, r2->logits, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "in flight"));
    done = false;
    while (!done) /* a deadline already past: each call only looks */
        assert_int_equal(vk->vt->advance(vc2, core_time_s() - 1.0, &done, &err), VKLLM_OK);
    compare(&b1, ref1, r2, "stepwise: first of two in flight");
    done = false;
    while (!done)
        assert_int_equal(vk->vt->advance(vc2, 0.0, &done, &err), VKLLM_OK);
    compare(&b2, p.ref, r3, "stepwise: second of two in flight");
    assert_int_equal(vk->vt->advance(vc2, 0.0, &done, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no step"));
    result_free(r2);
    result_free(r3);
    result_free(ref1);
    vk->vt->ctx_destroy(vc2);
    pair_close(&p);
}

/* Bad batches and contexts get clear errors; the context works after them. */
static int cmp_i32(const void *pa, const void *pb) {
    const int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

static bool in_list(const int32_t *l, uint32_t n, int32_t id) {
    for (uint32_t i = 0; i < n; i++)
        if (l[i] == id) return true;
    return false;
}

/* Banned ids (eng_ctx_desc.ban, eng_seq.ban; ignore_eog): a step of three entries runs on
 * contexts without a ban list, giving each row's best 8; then on contexts whose list holds
 * the best three of row 0, the best of rows 1 and 2 and both ends of the vocabulary, with
 * rows 0 and 2 flagged: top-8 and argmax on both backends equal, the flagged rows' candidates
 * are the first ones without a ban minus the banned, row 1's are unchanged. A list out of
 * order or out of range is refused by both backends. */
static void banned_sequences(eng_backend *vk) {
    const eng_ctx_desc plain = {.n_ctx = 256, .n_batch = 64, .n_seqs = 4, .n_pages = 16};
    const uint32_t nv = g_m->cfg.n_vocab;
    pair a, p;
    pair_open(&a, vk, &plain);
    pool pl;
    pool_init(&pl, plain.n_pages);
    seq s[3];
    memset(s, 0, sizeof s);
    batch b;
    batch_start(&b, 8);
    batch_add(&b, &s[0], &pl, 5, ENG_ATTN_SERIAL, true);
    batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
    batch_add(&b, &s[2], &pl, 3, ENG_ATTN_SERIAL, true);
    step(&a, &b, "no ban: three entries, top 8");
    int32_t ban[8];
    uint32_t n_ban = 0;
    for (int i = 0; i < 3; i++)
        ban[n_ban++] = a.ref->ids[i];
    ban[n_ban++] = a.ref->ids[8];
    ban[n_ban++] = a.ref->ids[16];
    ban[n_ban++] = 0;
    ban[n_ban++] = (int32_t)nv - 1;
    qsort(ban, n_ban, sizeof *ban, cmp_i32);
    uint32_t u = 0;
    for (uint32_t i = 0; i < n_ban; i++)
        if (u == 0 || ban[i] != ban[u - 1]) ban[u++] = ban[i];
    n_ban = u;
    eng_ctx_desc cd = plain;
    cd.ban = ban;
    cd.n_ban = n_ban;
    pair_open(&p, vk, &cd);
    b.seqs[0].ban = b.seqs[2].ban = true;
    step(&p, &b, "banned ids, rows 0 and 2: top 8"); /* the same positions, rewritten */
    for (uint32_t r = 0; r < 3; r++) {
        uint32_t j = 0; /* the plain candidates past the banned ones */
        for (uint32_t i = 0; i < 8 && j < 8; i++) {
            const int32_t id = a.ref->ids[r * 8 + i];
            if (r != 1 && in_list(ban, n_ban, id)) continue;
            assert_int_equal(p.ref->ids[r * 8 + j], id);
            j++;
        }
        assert_true(j >= 1);
        for (uint32_t i = 0; r != 1 && i < 8; i++)
            assert_false(in_list(ban, n_ban, p.ref->ids[r * 8 + i]));
    }
    b.b.top_k = 1;
    step(&p, &b, "banned ids, rows 0 and 2: argmax");
    assert_int_equal(p.ref->ids[0], p.got->ids[0]);
    assert_false(in_list(ban, n_ban, p.ref->ids[0]));
    assert_int_equal(p.ref->ids[1], a.ref->ids[8]); /* row 1: its best, banned elsewhere */
    pair_close(&a);
    pair_close(&p);
    /* lists the backends refuse */
    const int32_t unsorted[2] = {5, 3}, outside[2] = {3, (int32_t)nv};
    const int32_t *bad[2] = {unsorted, outside};
    for (int i = 0; i < 2; i++) {
        eng_backend *bes[2] = {g_cpu, vk};
        for (int k = 0; k < 2; k++) {
            cd.ban = bad[i];
            cd.n_ban = 2;
            eng_ctx *c = NULL;
            core_err err = {{0}};
            assert_int_equal(bes[k]->vt->ctx_create(bes[k], &g_m->em, &g_m->graph, &cd, &c, &err),
                             VKLLM_ERR_INVALID_ARG);
            assert_null(c);
            assert_non_null(strstr(err.msg, "ascending"));
        }
    }
}

static void errors(eng_backend *vk) {
    const eng_ctx_desc cd = {.n_ctx = 256, .n_batch = 32, .n_seqs = 2, .n_pages = 8};
    eng_ctx *c = ctx_open(vk, &cd);
    result *r = result_new();
    core_err err = {{0}};
    seq s = {0};
    seq_ident(&s);
    batch b;
    batch_start(&b, 0);
    batch_add(&b, &s, NULL, 20, ENG_ATTN_SERIAL, true);
    s.pages[1] = 8; /* positions 16..19 on a page past the pool of 8 */
    assert_int_equal(vk->vt->run(c, &b.b, r->logits, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "names page 8 of 8"));
    s.pages[1] = 1;
    batch_start(&b, 0);
    for (int i = 0; i < 3; i++)
        batch_add(&b, &s, NULL, 1, ENG_ATTN_SPLIT, true);
    assert_int_equal(vk->vt->run(c, &b.b, r->logits, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "3 entries"));
    bool done;
    assert_int_equal(vk->vt->advance(c, 0.0, &done, &err), VKLLM_ERR_INVALID_ARG);
    assert_false(done);
    s.len = 0;
    batch_start(&b, 1);
    batch_add(&b, &s, NULL, 8, ENG_ATTN_SERIAL, true);
    b.b.out_ids = r->ids;
    assert_int_equal(vk->vt->run(c, &b.b, r->logits, &err), VKLLM_OK);
    vk->vt->ctx_destroy(c);
    result_free(r);
    /* one layer's K cache of 40000 pages: 234 MiB for this model, over lavapipe's 128 MiB */
    const eng_ctx_desc big = {.n_ctx = 256, .n_batch = 32, .n_seqs = 2, .n_pages = 40000};
    c = NULL;
    assert_int_equal(vk->vt->ctx_create(vk, &g_m->em, &g_m->graph, &big, &c, &err),
                     VKLLM_ERR_UNSUPPORTED);
    assert_null(c);
    assert_non_null(strstr(err.msg, "buffer limit"));
    assert_non_null(strstr(err.msg, "40000 pages"));
}

/* Warm-up on a fresh backend: it builds every pipeline, and steps of varied shapes after it
 * build none. */
static void test_warmup(void **state) {
    (void)state;
    eng_backend *vk = vk_open(VK_TIER_COUNT - 1);
    vk_dev *d = vk_backend_dev(vk);
    const eng_ctx_desc cd = {
        .n_ctx = 256, .n_batch = 96, .n_seqs = 4, .n_pages = 24, .paced = true};
    eng_ctx *c = ctx_open(vk, &cd);
    core_err err = {{0}};
    const unsigned before = atomic_load(&d->pipes_built);
    const double t0 = core_time_s();
    if (vk->vt->warmup(c, &err) != VKLLM_OK) fail_msg("warmup: %s", err.msg);
    const unsigned warm = atomic_load(&d->pipes_built);
    printf("%s: warm-up built %u pipelines in %.2f s\n", vk->name, warm - before,
           core_time_s() - t0);
    assert_true(warm > before);
    result *r = result_new();
    pool pl;
    pool_init(&pl, cd.n_pages);
    seq s[4];
    memset(s, 0, sizeof s);
    batch b;
    batch_start(&b, 0); /* prompt chunks of each attention kind, with argmax */
    batch_add(&b, &s[0], &pl, 70, ENG_ATTN_TILED, true);
    batch_add(&b, &s[1], &pl, 5, ENG_ATTN_SERIAL, true);
    run_on(vk, c, &b, r, "warm: prompts");
    for (uint32_t top = 0; top <= 8; top += 8) { /* decode of 1 and 2 entries, logits, top-k */
        batch_start(&b, top);
        batch_add(&b, &s[0], &pl, 1, ENG_ATTN_SPLIT, true);
        run_on(vk, c, &b, r, "warm: decode of one");
        batch_start(&b, top);
        batch_add(&b, &s[0], &pl, 1, ENG_ATTN_SPLIT, true);
        batch_add(&b, &s[1], &pl, 1, ENG_ATTN_SPLIT, true);
        run_on(vk, c, &b, r, "warm: decode of two");
    }
    assert_int_equal(atomic_load(&d->pipes_built), warm);
    result_free(r);
    vk->vt->ctx_destroy(c);
    vk_close(vk);
}

static void test_batch(void **state) {
    (void)state;
    for (int tier = FIRST_TIER; tier < VK_TIER_COUNT; tier++) {
        const double t0 = core_time_s();
        eng_backend *vk = vk_open(tier);
        one_sequence(vk);
        paged_sequences(vk);
        q8_sequences(vk);
        if (tier == VK_TIER_COUNT - 1) { /* host logic, the same at every tier */
            stepwise(vk, false);
            stepwise(vk, true);
            banned_sequences(vk);
            errors(vk);
        }
        printf("%s: %.1f s\n", vk->name, core_time_s() - t0);
        vk_close(vk);
    }
    printf("%llu output rows equal the CPU's (%llu logits bit for bit)\n",
           (unsigned long long)g_rows, (unsigned long long)g_logits);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_warmup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
