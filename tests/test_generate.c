/* End to end against llama.cpp: for every prompt in tests/data/golden/generate_smollm2.txt
 * (made by tools/golden/make_golden.sh with llama.cpp's CPU backend), vkllm's CPU path must
 *  - tokenize the prompt to the same ids,
 *  - give first-step logits within LOGIT_TOL of llama.cpp's on its top-10 ids, with the same
 *    argmax,
 *  - produce the same 32 greedy tokens;
 * with each SIMD kernel set the processor has (AVX2, AVX-512, AVX-512 VNNI), whose first-step
 * logits must moreover be the same bits, all 49152 of them. Runs through the public API only. The
 * default model comes from $VKLLM_MODEL.
 *
 * Tolerance: both sides quantize activations to Q8_1/Q8_0 the same way and use the same F16
 * KV cache, but sum in a different order in places (attention, norms), and llama.cpp's flash
 * attention accumulates V in F16; measured differences are ~1e-3, so 0.05 on logits of
 * magnitude ~20 (0.25%) catches any real error (a wrong op moves logits by whole units).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_test_util.h"
#include "vkllm.h"

#define LOGIT_TOL 0.05f
#define MAX_PROMPTS 64
#define MAX_IDS 4096

typedef struct golden {
    char *prompt;
    size_t prompt_len;
    int32_t prompt_ids[MAX_IDS];
    int n_prompt;
    int32_t gen[256];
    int n_gen;
    int32_t top_id[10];
    float top_logit[10];
    float margin[256];
} golden;

static golden g_gold[MAX_PROMPTS];
static int g_n;

static int parse_ints(const char *s, int32_t *out, int cap) {
    int n = 0;
    char *end;
    while (n < cap) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static int load_golden(void **state) {
    const char *dir = getenv("VKLLM_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/generate_smollm2.txt", dir ? dir : "tests/data");
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s (regenerate with tools/golden/make_golden.sh)\n", path);
        return -1;
    }
    static char line[1 << 16];
    golden *g = NULL;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab) continue;
        *tab = '\0';
        const char *v = tab + 1;
        if (strcmp(line, "prompt") == 0) {
            if (g_n == MAX_PROMPTS) break;
            g = &g_gold[g_n++];
            g->prompt = malloc(strlen(v) + 1);
            g->prompt_len = api_test_unescape(v, g->prompt);
            if (g->prompt_len == (size_t)-1) {
                fprintf(stderr, "%s: bad escape in prompt %s", path, v);
                fclose(f);
                return -1;
            }
        } else if (!g) {
            continue;
        } else if (strcmp(line, "prompt_ids") == 0) {
            g->n_prompt = parse_ints(v, g->prompt_ids, MAX_IDS);
        } else if (strcmp(line, "gen_ids") == 0) {
            g->n_gen = parse_ints(v, g->gen, 256);
        } else if (strcmp(line, "gen_margin") == 0) {
            char *end;
            for (int i = 0; i < 256; i++, v = end) {
                g->margin[i] = strtof(v, &end);
                if (end == v) break;
            }
        } else if (strcmp(line, "top10_step0") == 0) {
            for (int i = 0; i < 10; i++) {
                char *end;
                g->top_id[i] = (int32_t)strtol(v, &end, 10);
                g->top_logit[i] = strtof(end + 1, &end);
                v = end;
            }
        }
    }
    fclose(f);
    *state = NULL;
    return g_n > 0 ? 0 : -1;
}

static int free_golden(void **state) {
    for (int i = 0; i < g_n; i++)
        free(g_gold[i].prompt);
    return 0;
}

/* Opens the model on the CPU backend with kernel set `isa` (NULL: the best); false if the
 * processor lacks that set. */
static bool open_model_isa(const char *isa, vkllm_runtime **rt, vkllm_model **m) {
    const char *path = getenv("VKLLM_MODEL");
    if (!path || !*path)
        fail_msg("VKLLM_MODEL is not set (ctest sets it; see tests/CMakeLists.txt)");
    vkllm_runtime_desc rd = {.device = "cpu", .n_threads = 2, .cpu_isa = isa};
    const vkllm_status st = vkllm_runtime_create(&rd, rt);
    if (st == VKLLM_ERR_NO_DEVICE && isa) return false;
    assert_int_equal(st, VKLLM_OK);
    vkllm_model_desc md = {.path = path};
    if (vkllm_model_load(*rt, &md, m) != VKLLM_OK)
        fail_msg("loading %s: %s (run scripts/fetch_model.sh)", path,
                 vkllm_runtime_last_error(*rt));
    return true;
}

static void open_model(vkllm_runtime **rt, vkllm_model **m) {
    open_model_isa(NULL, rt, m);
}

static void test_prompt_tokens(void **state) {
    vkllm_runtime *rt;
    vkllm_model *m;
    open_model(&rt, &m);
    static int32_t ids[MAX_IDS];
    for (int p = 0; p < g_n; p++) {
        size_t n = 0;
        assert_int_equal(vkllm_tokenize(m, g_gold[p].prompt, g_gold[p].prompt_len,
                                        VKLLM_TOKENIZE_ADD_SPECIAL | VKLLM_TOKENIZE_PARSE_SPECIAL,
                                        ids, MAX_IDS, &n),
                         VKLLM_OK);
        assert_int_equal((int)n, g_gold[p].n_prompt);
        assert_memory_equal(ids, g_gold[p].prompt_ids, n * sizeof ids[0]);
    }
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

/* Logits of the first step, and the greedy continuation, token for token, with every SIMD
 * kernel set the processor has (AVX2, AVX-512, AVX-512 VNNI): each must give llama.cpp's
 * tokens, and all of the first-step logits (not just the top 10) must be the AVX2 set's bits. */
static const char *const k_isas[] = {"avx2", "avx512", "avx512vnni"};
#define N_ISAS (sizeof k_isas / sizeof k_isas[0])

static void greedy_one_isa(vkllm_runtime *rt, vkllm_model *m, const char *isa, float **first,
                           int *mismatched, float *worst) {
    vkllm_session *s;
    vkllm_session_desc sd = {.n_ctx = 2048};
    assert_int_equal(vkllm_session_create(m, &sd, &s), VKLLM_OK);
    for (int p = 0; p < g_n; p++) {
        const golden *g = &g_gold[p];
        vkllm_session_reset(s);
        assert_int_equal(vkllm_session_eval(s, g->prompt_ids, (size_t)g->n_prompt), VKLLM_OK);
        const float *lg = vkllm_session_logits(s);
        if (!first[p]) {
            first[p] = malloc(sizeof(float) * 49152);
            assert_non_null(first[p]);
            memcpy(first[p], lg, sizeof(float) * 49152);
        } else if (memcmp(first[p], lg, sizeof(float) * 49152) != 0) {
            fail_msg("%s, prompt %d: first-step logits are not the first kernel set's bits", isa,
                     p);
        }
        float pworst = 0.0f;
        for (int i = 0; i < 10; i++) {
            float d = lg[g->top_id[i]] - g->top_logit[i];
            if (d < 0) d = -d;
            if (d > pworst) pworst = d;
            if (d > *worst) *worst = d;
            if (d > LOGIT_TOL)
                fail_msg("%s, prompt %d: logit of token %d is %.5f, llama.cpp %.5f (tolerance "
                         "%.3f)",
                         isa, p, g->top_id[i], (double)lg[g->top_id[i]], (double)g->top_logit[i],
                         (double)LOGIT_TOL);
        }
        print_message("%s, prompt %d (%d tokens): largest first-step logit difference %.5f\n", isa,
                      p, g->n_prompt, (double)pworst);
        for (int t = 0; t < g->n_gen; t++) {
            lg = vkllm_session_logits(s);
            int32_t best = 0;
            for (int32_t i = 1; i < 49152; i++)
                if (lg[i] > lg[best]) best = i;
            if (best != g->gen[t]) {
                print_message("%s, prompt %d: step %d: vkllm %d, llama.cpp %d (llama.cpp's "
                              "top-2 margin there %.4f)\n",
                              isa, p, t, best, g->gen[t], (double)g->margin[t]);
                (*mismatched)++;
                break;
            }
            assert_int_equal(vkllm_session_eval(s, &best, 1), VKLLM_OK);
        }
    }
    vkllm_session_destroy(s);
}

static void test_greedy_matches_llama_cpp(void **state) {
    static float *first[MAX_PROMPTS];
    int mismatched = 0, n_run = 0;
    float worst = 0.0f;
    for (size_t k = 0; k <= N_ISAS; k++) {
        /* after the SIMD sets: the best one (auto) only if none of them ran (no AVX2) */
        if (k == N_ISAS && n_run > 0) break;
        const char *isa = k < N_ISAS ? k_isas[k] : NULL;
        vkllm_runtime *rt;
        vkllm_model *m;
        if (!open_model_isa(isa, &rt, &m)) {
            print_message("%s: not on this processor, not checked\n", isa);
            continue;
        }
        greedy_one_isa(rt, m, vkllm_runtime_backend_name(rt), first, &mismatched, &worst);
        n_run++;
        vkllm_model_free(m);
        vkllm_runtime_destroy(rt);
    }
    print_message("%d prompts x %d kernel sets, %d diverged; largest first-step logit "
                  "difference %.5f\n",
                  g_n, n_run, mismatched, (double)worst);
    for (int p = 0; p < g_n; p++) {
        free(first[p]);
        first[p] = NULL;
    }
    assert_int_equal(mismatched, 0);
}

/* vkllm_generate with temperature 0 gives the same tokens as the eval/argmax loop. */
typedef struct collect {
    int32_t ids[64];
    int n;
} collect;

static bool on_token(void *user, int32_t tok, const char *piece, size_t len) {
    collect *c = user;
    if (c->n < 64) c->ids[c->n++] = tok;
    return true;
}

static void test_generate_api_greedy(void **state) {
    vkllm_runtime *rt;
    vkllm_model *m;
    open_model(&rt, &m);
    vkllm_session *s;
    assert_int_equal(vkllm_session_create(m, NULL, &s), VKLLM_OK);
    const golden *g = &g_gold[0];
    collect c = {0};
    vkllm_generate_desc gd = {.prompt = g->prompt,
                              .prompt_len = g->prompt_len,
                              .max_tokens = 16,
                              .ignore_eog = true,
                              .on_token = on_token,
                              .user = &c};
    vkllm_generate_result r = {0};
    assert_int_equal(vkllm_generate(s, &gd, &r), VKLLM_OK);
    assert_int_equal(r.n_generated, 16);
    assert_int_equal(r.n_prompt, g->n_prompt);
    assert_int_equal(r.stop, VKLLM_STOP_MAX_TOKENS);
    assert_int_equal(c.n, 16);
    assert_memory_equal(c.ids, g->gen, 16 * sizeof(int32_t));
    vkllm_session_destroy(s);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_tokens),
        cmocka_unit_test(test_greedy_matches_llama_cpp),
        cmocka_unit_test(test_generate_api_greedy),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
