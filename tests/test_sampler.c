/* src/sched/sampler.c: greedy, top-k (checked against a full sort), top-p, min-p,
 * repetition penalty, presence and frequency penalties, and seeds. Random and hand-made
 * logits; no model needed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "sched/sampler.h"

#define NV 5000

static float g_logits[NV];
static int g_rank[NV]; /* g_rank[id]: 0 = best */

static int by_logit_desc(const void *a, const void *b) {
    float x = g_logits[*(const int *)a], y = g_logits[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

static int setup(void **state) {
    uint64_t s = 12345;
    int order[NV];
    for (int i = 0; i < NV; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g_logits[i] = (float)((s >> 33) % 100000) / 10000.0f; /* distinct-ish values in [0, 10) */
        order[i] = i;
    }
    qsort(order, NV, sizeof order[0], by_logit_desc);
    for (int i = 0; i < NV; i++)
        g_rank[order[i]] = i;
    return 0;
}

static sched_sampler *make(const vkllm_sampling *p) {
    sched_sampler *s;
    assert_int_equal(sched_sampler_create(NULL, NV, p, &s), VKLLM_OK);
    return s;
}

static void test_greedy(void **state) {
    vkllm_sampling p = {0};
    sched_sampler *s = make(&p);
    int32_t t = sched_sampler_sample(s, g_logits);
    assert_int_equal(g_rank[t], 0);
    sched_sampler_free(s);
}

static void test_top_k_exact(void **state) {
    for (int k = 1; k <= 64; k *= 4) {
        vkllm_sampling p = {.temperature = 100.0f, .top_k = k, .seed = 7};
        sched_sampler *s = make(&p);
        int seen[64] = {0};
        for (int i = 0; i < 4000; i++) {
            int32_t t = sched_sampler_sample(s, g_logits);
            assert_true(g_rank[t] < k); /* only the k best are ever drawn */
            seen[g_rank[t]] = 1;
        }
        for (int r = 0; r < k; r++)
            assert_true(seen[r]); /* and all of them are */
        sched_sampler_free(s);
    }
}

static void test_min_p_and_top_p(void **state) {
    /* min_p = 0.9 at T=1 keeps tokens within log(1/0.9) of the best */
    vkllm_sampling p = {.temperature = 1.0f, .min_p = 0.9f, .seed = 3};
    sched_sampler *s = make(&p);
    float best = 0.0f;
    for (int i = 0; i < NV; i++)
        if (g_logits[i] > best) best = g_logits[i];
    for (int i = 0; i < 500; i++) {
        int32_t t = sched_sampler_sample(s, g_logits);
        assert_true(g_logits[t] >= best + logf(0.9f) - 1e-6f);
    }
    sched_sampler_free(s);
    /* a tiny top_p keeps only the best */
    vkllm_sampling q = {.temperature = 1.0f, .top_p = 1e-6f, .seed = 3};
    s = make(&q);
    for (int i = 0; i < 100; i++)
        assert_int_equal(g_rank[sched_sampler_sample(s, g_logits)], 0);
    sched_sampler_free(s);
}

static void test_seed_repeats(void **state) {
    vkllm_sampling p = {.temperature = 2.0f, .seed = 42};
    sched_sampler *a = make(&p), *b = make(&p);
    for (int i = 0; i < 200; i++)
        assert_int_equal(sched_sampler_sample(a, g_logits), sched_sampler_sample(b, g_logits));
    sched_sampler_reset(a, &p);
    sched_sampler_reset(b, &(vkllm_sampling){.temperature = 2.0f, .seed = 43});
    int same = 0;
    for (int i = 0; i < 200; i++)
        same += sched_sampler_sample(a, g_logits) == sched_sampler_sample(b, g_logits);
    assert_true(same < 200);
    sched_sampler_free(a);
    sched_sampler_free(b);
}

static void test_repeat_penalty(void **state) {
    vkllm_sampling p = {.repeat_penalty = 1000.0f};
    sched_sampler *s = make(&p);
    int32_t first = sched_sampler_sample(s, g_logits);
    sched_sampler_accept(s, first);
    int32_t second = sched_sampler_sample(s, g_logits);
    assert_int_not_equal(first, second); /* the penalised best loses to the runner-up */
    assert_int_equal(g_rank[second], 1);
    sched_sampler_free(s);
}

/* OpenAI's penalties: logit - frequency * count - presence * (count > 0), count over the
 * tokens accepted as generated (sched_sampler_accept_output) since the last reset, after the
 * repetition penalty. Checked exactly: the values are multiples of 1/8, so every penalised
 * logit is exact in float, and a greedy draw against a probe token just above and just below
 * the expected value tells which side of it the penalised logit is on. */
#define PV 16
#define PROBE 15

/* The penalised logit of `id` (base value v) is above x: the greedy pick between it and the
 * probe at x (every other logit far below). */
static bool pen_above(sched_sampler *s, int32_t id, float v, float x) {
    float l[PV];
    for (int i = 0; i < PV; i++)
        l[i] = -50.0f;
    l[id] = v;
    l[PROBE] = x;
    const int32_t t = sched_sampler_sample(s, l);
    assert_true(t == id || t == PROBE);
    return t == id;
}

static void expect_pen(sched_sampler *s, int32_t id, float v, float want) {
    if (!pen_above(s, id, v, want - 1.0f / 64) || pen_above(s, id, v, want + 1.0f / 64))
        fail_msg("token %d (logit %g): penalised logit is not %g", id, (double)v, (double)want);
}

static void test_presence_frequency(void **state) {
    (void)state;
    sched_sampler *s;
    assert_int_equal(sched_sampler_create(NULL, PV, &(vkllm_sampling){0}, &s), VKLLM_OK);
    assert_int_equal(sched_sampler_top_needed(s, ENG_TOP_K_MAX), 1); /* greedy: the argmax */
    assert_int_equal(sched_sampler_set_penalties(s, 0.5f, 0.25f), VKLLM_OK);
    assert_int_equal(sched_sampler_top_needed(s, ENG_TOP_K_MAX), 0); /* every logit */
    sched_sampler_accept(s, 5); /* a prompt token: never counted */
    for (int i = 0; i < 3; i++)
        sched_sampler_accept_output(s, 3);
    sched_sampler_accept_output(s, 7);
    expect_pen(s, 3, 2.0f, 2.0f - 3 * 0.25f - 0.5f);
    expect_pen(s, 7, 1.5f, 1.5f - 0.25f - 0.5f);
    expect_pen(s, 7, -1.0f, -1.0f - 0.25f - 0.5f); /* negative logits: the same subtraction */
    expect_pen(s, 5, 1.0f, 1.0f);                  /* the prompt's */
    expect_pen(s, 9, 1.0f, 1.0f);                  /* never seen */
    /* negative penalties raise the logits of what was generated */
    assert_int_equal(sched_sampler_set_penalties(s, -0.5f, -0.25f), VKLLM_OK);
    expect_pen(s, 3, 2.0f, 2.0f + 3 * 0.25f + 0.5f);
    /* presence alone, frequency alone */
    assert_int_equal(sched_sampler_set_penalties(s, 2.0f, 0.0f), VKLLM_OK);
    expect_pen(s, 3, 2.0f, 0.0f);
    assert_int_equal(sched_sampler_set_penalties(s, 0.0f, 2.0f), VKLLM_OK);
    expect_pen(s, 3, 2.0f, -4.0f);
    /* a reset forgets the counts, not the penalties */
    sched_sampler_reset(s, &(vkllm_sampling){0});
    expect_pen(s, 3, 2.0f, 2.0f);
    assert_int_equal(sched_sampler_top_needed(s, ENG_TOP_K_MAX), 0);
    sched_sampler_accept_output(s, 3);
    expect_pen(s, 3, 2.0f, 0.0f);
    /* off again: no penalty, the device's argmax suffices */
    assert_int_equal(sched_sampler_set_penalties(s, 0.0f, 0.0f), VKLLM_OK);
    expect_pen(s, 3, 2.0f, 2.0f);
    assert_int_equal(sched_sampler_top_needed(s, ENG_TOP_K_MAX), 1);
    sched_sampler_free(s);

    /* after the repetition penalty (which sees prompt and output alike): 2 / 2 - 0.25 - 0.5 */
    const vkllm_sampling rp = {.repeat_penalty = 2.0f};
    assert_int_equal(sched_sampler_create(NULL, PV, &rp, &s), VKLLM_OK);
    assert_int_equal(sched_sampler_set_penalties(s, 0.5f, 0.25f), VKLLM_OK);
    sched_sampler_accept(s, 5);
    sched_sampler_accept_output(s, 3);
    expect_pen(s, 3, 2.0f, 2.0f / 2 - 0.25f - 0.5f);
    expect_pen(s, 5, 1.0f, 1.0f / 2);
    expect_pen(s, 5, -1.0f, -1.0f * 2);
    sched_sampler_free(s);

    /* sampled (temperature 1): a presence penalty of 2 on the two best, each generated once,
     * leaves the third best ahead of them; drawn from the penalised logits, the third and
     * fourth come up far more often than the two penalised ones */
    const vkllm_sampling t1 = {.temperature = 1.0f, .seed = 11};
    assert_int_equal(sched_sampler_create(NULL, PV, &t1, &s), VKLLM_OK);
    assert_int_equal(sched_sampler_set_penalties(s, 2.0f, 0.0f), VKLLM_OK);
    sched_sampler_accept_output(s, 0);
    sched_sampler_accept_output(s, 1);
    float l[PV];
    for (int i = 0; i < PV; i++)
        l[i] = -50.0f;
    l[0] = 1.0f, l[1] = 1.0f, l[2] = 0.5f, l[3] = 0.5f; /* penalised: -1, -1, 0.5, 0.5 */
    int hits[PV] = {0};
    for (int i = 0; i < 2000; i++)
        hits[sched_sampler_sample(s, l)]++;
    /* p(0) = p(1) = e^-1.5 / (2 + 2 e^-1.5) ~ 0.09 */
    assert_true(hits[0] + hits[1] > 200 && hits[0] + hits[1] < 540);
    assert_int_equal(hits[0] + hits[1] + hits[2] + hits[3], 2000);
    sched_sampler_free(s);
}

/* Device-side sampling hands the sampler only the top k candidates (eng_select_top on the CPU
 * path, a kernel on Vulkan): whenever sched_sampler_top_needed says k suffice, sampling from
 * them must give exactly the token sampling from all logits gives, seed for seed. */
static void test_top_candidates_equal_full(void **state) {
    (void)state;
    static float logits[NV];
    uint64_t x = 42;
    for (int i = 0; i < NV; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (float)((x >> 40) % 2000) / 100.0f - 10.0f; /* many ties */
    }
    const vkllm_sampling cases[] = {
        {.temperature = 0.0f},
        {.temperature = 0.8f, .top_k = 40, .seed = 1},
        {.temperature = 1.2f, .top_k = 5, .top_p = 0.9f, .seed = 7},
        {.temperature = 0.7f, .top_k = 128, .min_p = 0.05f, .seed = 99},
        {.temperature = 1.0f, .top_k = 1, .seed = 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sched_sampler *full, *top;
        assert_int_equal(sched_sampler_create(NULL, NV, &cases[c], &full), VKLLM_OK);
        assert_int_equal(sched_sampler_create(NULL, NV, &cases[c], &top), VKLLM_OK);
        const uint32_t k = sched_sampler_top_needed(top, ENG_TOP_K_MAX);
        assert_true(k >= 1 && k <= ENG_TOP_K_MAX);
        int32_t ids[ENG_TOP_K_MAX];
        float vals[ENG_TOP_K_MAX];
        eng_select_top(logits, NV, k, ids, vals);
        for (uint32_t i = 1; i < k; i++) /* sorted, ties to the lower id */
            assert_true(vals[i] < vals[i - 1] || (vals[i] == vals[i - 1] && ids[i] > ids[i - 1]));
        for (int rep = 0; rep < 200; rep++) {
            int32_t a = sched_sampler_sample(full, logits);
            int32_t b = sched_sampler_sample_top(top, ids, vals, k);
            assert_int_equal(a, b);
        }
        sched_sampler_free(full);
        sched_sampler_free(top);
    }
    /* what needs all logits */
    sched_sampler *s;
    const vkllm_sampling pen = {.temperature = 0.0f, .repeat_penalty = 1.1f};
    assert_int_equal(sched_sampler_create(NULL, NV, &pen, &s), VKLLM_OK);
    assert_int_equal(sched_sampler_top_needed(s, ENG_TOP_K_MAX), 0);
    sched_sampler_free(s);
    const vkllm_sampling nok = {.temperature = 0.8f};
    assert_int_equal(sched_sampler_create(NULL, NV, &nok, &s), VKLLM_OK);
    assert_int_equal(sched_sampler_top_needed(s, ENG_TOP_K_MAX), 0);
    sched_sampler_free(s);
}

/* Banned ids (ignore_eog): sampling from all logits (the banned ones -inf), from the best
 * k + n_ban candidates with the banned ones dropped (a selection that knows no bans), and from
 * the best k candidates of a selection that leaves them out (eng_select_top_ban, as a backend
 * with eng_backend.bans does for eng_seq.ban) give the same tokens, seed for seed, and never a
 * banned one. The banned ids include the best few, ties among them. */
static void test_banned_candidates_equal_full(void **state) {
    (void)state;
    static float logits[NV];
    uint64_t x = 7;
    for (int i = 0; i < NV; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (float)((x >> 40) % 2000) / 100.0f - 10.0f; /* many ties */
    }
    int32_t best[8];
    eng_select_top(logits, NV, 8, best, NULL);
    /* the best, the fourth and sixth best, and ids at both ends, ascending */
    int32_t ban[5] = {0, best[0], best[3], best[5], NV - 1};
    for (int i = 1; i < 5; i++) /* insertion sort */
        for (int j = i; j > 0 && ban[j] < ban[j - 1]; j--) {
            const int32_t t = ban[j];
            ban[j] = ban[j - 1];
            ban[j - 1] = t;
        }
    const uint32_t n_ban = 5;
    const vkllm_sampling cases[] = {
        {.temperature = 0.0f},
        {.temperature = 0.8f, .top_k = 40, .seed = 1},
        {.temperature = 1.2f, .top_k = 5, .top_p = 0.9f, .seed = 7},
        {.temperature = 1.0f, .top_k = 1, .seed = 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sched_sampler *full, *drop, *dev;
        assert_int_equal(sched_sampler_create(NULL, NV, &cases[c], &full), VKLLM_OK);
        assert_int_equal(sched_sampler_create(NULL, NV, &cases[c], &drop), VKLLM_OK);
        assert_int_equal(sched_sampler_create(NULL, NV, &cases[c], &dev), VKLLM_OK);
        const uint32_t k = sched_sampler_top_needed(dev, ENG_TOP_K_MAX); /* no ban yet */
        sched_sampler_set_banned(full, ban, n_ban, false);
        sched_sampler_set_banned(drop, ban, n_ban, false);
        sched_sampler_set_banned(dev, ban, n_ban, true);
        assert_int_equal(sched_sampler_top_needed(drop, ENG_TOP_K_MAX), k + n_ban);
        assert_int_equal(sched_sampler_top_needed(dev, ENG_TOP_K_MAX), k);
        int32_t ids_d[ENG_TOP_K_MAX], ids_v[ENG_TOP_K_MAX];
        float vals_d[ENG_TOP_K_MAX], vals_v[ENG_TOP_K_MAX];
        eng_select_top(logits, NV, k + n_ban, ids_d, vals_d);
        eng_select_top_ban(logits, NV, k, ban, n_ban, ids_v, vals_v);
        for (int rep = 0; rep < 200; rep++) {
            const int32_t a = sched_sampler_sample(full, logits);
            const int32_t b = sched_sampler_sample_top(drop, ids_d, vals_d, k + n_ban);
            const int32_t v = sched_sampler_sample_top(dev, ids_v, vals_v, k);
            assert_int_equal(a, b);
            assert_int_equal(a, v);
            for (uint32_t i = 0; i < n_ban; i++)
                assert_int_not_equal(a, ban[i]);
        }
        sched_sampler_free(full);
        sched_sampler_free(drop);
        sched_sampler_free(dev);
    }
    /* eng_select_top_ban is the best of the rest: the plain selection with the banned dropped */
    int32_t all[ENG_TOP_K_MAX], left[ENG_TOP_K_MAX];
    eng_select_top(logits, NV, 64 + n_ban, all, NULL);
    eng_select_top_ban(logits, NV, 64, ban, n_ban, left, NULL);
    uint32_t m = 0;
    for (uint32_t i = 0; i < 64 + n_ban && m < 64; i++) {
        bool banned = false;
        for (uint32_t j = 0; j < n_ban; j++)
            banned = banned || all[i] == ban[j];
        if (!banned) assert_int_equal(left[m++], all[i]);
    }
    assert_int_equal(m, 64);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k_exact),
        cmocka_unit_test(test_min_p_and_top_p),
        cmocka_unit_test(test_seed_repeats),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_top_candidates_equal_full),
        cmocka_unit_test(test_banned_candidates_equal_full),
        cmocka_unit_test(test_presence_frequency),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
