/* A manual check, not a ctest test (bench/README.md): the Vulkan path against the CPU path,
 * end to end through the public API. For every prompt
 * of tests/data/golden/prompts.txt (15 prompts; one is ~400 tokens, so decode goes through
 * the split-K attention path) and every capability tier, 32 greedy tokens on
 * `--device vulkan` must equal those on `--device cpu`, token for token; and a few runs with
 * temperature > 0 (device-side top-k candidates) must give the same text as the CPU for the
 * same seed. Both runtimes use the same thread count, which sets how the CPU splits a long
 * decode's attention and how many chunks the Vulkan split-K uses (docs/architecture.md).
 * Prints, per tier, which prompts give identical tokens; exit 1 if any differ.
 * Build: cmake --build build --target vk_greedy; run with VKLLM_MODEL and VKLLM_TEST_DATA set.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "vkllm.h"

#define N_GEN 32
#define MAX_PROMPTS 64
#define N_THREADS 2

static int g_failed;
#define fail_msg(...) (fprintf(stderr, "vk_greedy: " __VA_ARGS__), fputc('\n', stderr), exit(2))
#define assert_int_equal(a, b) ((a) == (b) ? (void)0 : (void)(g_failed = 1))

static char *g_prompt[MAX_PROMPTS];
static int g_n;

static size_t unescape(const char *s, char *out) {
    size_t n = 0;
    for (; *s && *s != '\n'; s++) {
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case '\\': out[n++] = '\\'; break;
        case 'x': {
            unsigned v = 0;
            if (sscanf(s + 1, "%2x", &v) != 1) fail_msg("bad \\x escape in prompts.txt");
            out[n++] = (char)v;
            s += 2;
            break;
        }
        default: fail_msg("unknown escape \\%c in prompts.txt", *s);
        }
    }
    out[n] = '\0';
    return n;
}

static void load_prompts(void) {
    const char *dir = getenv("VKLLM_TEST_DATA");
    if (!dir) fail_msg("VKLLM_TEST_DATA is not set (ctest sets it)");
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/prompts.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    static char line[65536];
    while (fgets(line, sizeof line, f) && g_n < MAX_PROMPTS) {
        if (line[0] == '#' || line[0] == '\n') continue;
        g_prompt[g_n] = malloc(strlen(line) + 1);
        unescape(line, g_prompt[g_n]);
        g_n++;
    }
    fclose(f);
    if (g_n < 8) fail_msg("%s has %d prompts; the test needs at least 8", path, g_n);
}

typedef struct run_out {
    int32_t ids[N_GEN];
    int n;
} run_out;

static bool on_token(void *user, int32_t id, const char *piece, size_t len) {
    (void)piece, (void)len;
    run_out *o = user;
    if (o->n < N_GEN) o->ids[o->n++] = id;
    return true;
}

static vkllm_model *open_model(vkllm_runtime **rt, const char *device, int tier) {
    const char *path = getenv("VKLLM_MODEL");
    if (!path) fail_msg("VKLLM_MODEL is not set (scripts/fetch_model.sh)");
    vkllm_runtime_desc rd = {.device = device, .n_threads = N_THREADS,
                             .vk_tier_plus1 = tier + 1};
    if (vkllm_runtime_create(&rd, rt) != VKLLM_OK)
        fail_msg("runtime %s tier %d: %s", device, tier, vkllm_runtime_last_error(NULL));
    vkllm_model_desc md = {.path = path};
    vkllm_model *m = NULL;
    if (vkllm_model_load(*rt, &md, &m) != VKLLM_OK)
        fail_msg("model: %s", vkllm_runtime_last_error(*rt));
    return m;
}

static void generate(vkllm_model *m, const char *prompt, const vkllm_sampling *smp,
                     run_out *o) {
    vkllm_session_desc sd = {.n_ctx = 1024};
    vkllm_session *s = NULL;
    if (vkllm_session_create(m, &sd, &s) != VKLLM_OK)
        fail_msg("session: %s", vkllm_model_last_error(m));
    memset(o, 0, sizeof *o);
    vkllm_generate_desc gd = {.prompt = prompt, .max_tokens = N_GEN, .ignore_eog = true,
                              .sampling = *smp, .on_token = on_token, .user = o};
    if (vkllm_generate(s, &gd, NULL) != VKLLM_OK)
        fail_msg("generate: %s", vkllm_session_last_error(s));
    vkllm_session_destroy(s);
}

static int compare(const run_out *a, const run_out *b) {
    for (int i = 0; i < N_GEN; i++)
        if (i >= a->n || i >= b->n || a->ids[i] != b->ids[i]) return i;
    return -1;
}

static void test_greedy_all_tiers(void **state) {
    (void)state;
    load_prompts();
    vkllm_runtime *crt;
    vkllm_model *cm = open_model(&crt, "cpu", -1);
    static run_out ref[MAX_PROMPTS];
    const vkllm_sampling greedy = {.temperature = 0.0f};
    for (int p = 0; p < g_n; p++) generate(cm, g_prompt[p], &greedy, &ref[p]);
    vkllm_model_free(cm);
    vkllm_runtime_destroy(crt);
    int bad = 0;
    for (int tier = 0; tier <= 2; tier++) {
        vkllm_runtime *rt;
        vkllm_model *m = open_model(&rt, "vulkan", tier);
        printf("tier %d: %s\n", tier, vkllm_runtime_backend_name(rt));
        for (int p = 0; p < g_n; p++) {
            run_out o;
            generate(m, g_prompt[p], &greedy, &o);
            int at = compare(&o, &ref[p]);
            if (at >= 0) {
                printf("  tier %d prompt %d: first difference at token %d (vulkan %d, cpu %d)\n",
                       tier, p, at, o.ids[at], ref[p].ids[at]);
                bad++;
            }
        }
        vkllm_model_free(m);
        vkllm_runtime_destroy(rt);
    }
    assert_int_equal(bad, 0);
}

/* Temperature sampling with top-k: the Vulkan path returns only the k best candidates per
 * step (selected on the device), the CPU path samples from all logits; the same seed must
 * give the same tokens. */
static void test_sampled_top_k(void **state) {
    (void)state;
    const vkllm_sampling smp = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f,
                                .seed = 1234};
    vkllm_runtime *crt, *vrt;
    vkllm_model *cm = open_model(&crt, "cpu", -1);
    vkllm_model *vm = open_model(&vrt, "vulkan", -1);
    int bad = 0;
    for (int p = 0; p < 3 && p < g_n; p++) {
        run_out a, b;
        generate(cm, g_prompt[p], &smp, &a);
        generate(vm, g_prompt[p], &smp, &b);
        if (compare(&a, &b) >= 0) {
            printf("  sampled prompt %d differs at token %d\n", p, compare(&a, &b));
            bad++;
        }
    }
    vkllm_model_free(cm);
    vkllm_model_free(vm);
    vkllm_runtime_destroy(crt);
    vkllm_runtime_destroy(vrt);
    assert_int_equal(bad, 0);
}

int main(void) {
    test_greedy_all_tiers(NULL);
    test_sampled_top_k(NULL);
    return g_failed ? 1 : 0;
}
