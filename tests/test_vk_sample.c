/* Device sampling (src/vk/vk_ops_sample.c: argmax, top-k) against a CPU reference, exactly:
 * ids equal, values equal bit for bit. On every capability tier, at vocabulary widths from 1
 * to Llama 3's 128256, with ties (coarsely rounded values), -inf, NaN and signed zeros, and
 * with banned ids left out of flagged rows (eng_seq.ban). ctest runs it again at lavapipe's
 * other subgroup sizes (4 and 16 lanes: _lp128, _lp512), for argmax's subgroup reduction.
 * The reference is a full sort with float compares, written apart from the kernels' integer
 * keys: larger first, -0 == +0, the lower index on ties, NaN after every number. */
#include "vk_test_util.h"

#include <time.h>

static const uint32_t k_widths[] = {1, 7, 1000, 49152, 128256};
static const uint32_t k_rows[] = {1, 3};
static const uint32_t k_ks[] = {1, 5, 40, 128};
#define N_WIDTHS (sizeof k_widths / sizeof *k_widths)
#define N_ROWS (sizeof k_rows / sizeof *k_rows)
#define N_KS (sizeof k_ks / sizeof *k_ks)

static const float *g_sort_row;
static int ref_cmp(const void *pa, const void *pb) {
    const uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    const float x = g_sort_row[a], y = g_sort_row[b];
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;
    if (!isnan(x) && x != y) return x > y ? -1 : 1;
    return a < b ? -1 : (a > b);
}

/* n rows of width logits, stride apart, and each row's indices in reference order. */
typedef struct sample_case {
    uint32_t width, n, stride;
    float *x;
    uint32_t *order; /* [n][width] */
} sample_case;

/* Row patterns: 0 values rounded to 1/8 in [-8, 8) (hundreds of equal values at the top of a
 * wide row) with -inf and signed zeros sprinkled; 1 nearly all -inf (k reaches into the tie);
 * 2 distinct values with NaNs, the maximum repeated, and denormals. */
static void fill_row(float *x, uint32_t w, int pattern) {
    for (uint32_t i = 0; i < w; i++) {
        const float u = vt_uniform(0.0f, 1.0f);
        switch (pattern) {
        case 0:
            x[i] = u < 0.02f   ? -INFINITY
                   : u < 0.03f ? (u < 0.025f ? -0.0f : 0.0f)
                               : floorf(vt_uniform(-8.0f, 8.0f) * 8.0f) / 8.0f;
            break;
        case 1:
            x[i] = u < 0.002f ? floorf(vt_uniform(-2.0f, 2.0f)) : -INFINITY;
            break;
        default:
            x[i] = u < 0.01f    ? NAN
                   : u < 0.012f ? 1e-40f * vt_uniform(-1.0f, 1.0f)
                                : vt_uniform(-30.0f, 20.0f);
            break;
        }
    }
    if (pattern == 2 && w > 4) x[w / 2] = x[w - 1] = x[w / 3] = 25.0f;
}

static sample_case make_case(uint32_t width, uint32_t n, int pattern0) {
    sample_case c = {width, n, width + 3, NULL, NULL};
    c.x = malloc((size_t)n * c.stride * 4);
    c.order = malloc((size_t)n * width * 4);
    for (uint32_t t = 0; t < n; t++) {
        float *row = c.x + (size_t)t * c.stride;
        fill_row(row, width, (pattern0 + (int)t) % 3);
        for (uint32_t i = width; i < c.stride; i++)
            row[i] = 1e30f; /* between rows: never read */
        uint32_t *o = c.order + (size_t)t * width;
        for (uint32_t i = 0; i < width; i++)
            o[i] = i;
        g_sort_row = row;
        qsort(o, width, 4, ref_cmp);
    }
    return c;
}

static void free_case(sample_case *c) {
    free(c->x);
    free(c->order);
}

/* A scratch slice of vk_topk_scratch_bytes (which is 0 when no call needs one). */
static vk_slice scratch_slice(vk_arena *a, uint32_t n, uint32_t width, uint32_t k) {
    const uint64_t bytes = vk_topk_scratch_bytes(n, width, k);
    return vt_slice(a, NULL, bytes ? bytes : 16);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Banned ids for a run: the list, each row's flag, and the step parameters that carry them
 * (a vk_step_params of c->n one-token entries, one output each). */
typedef struct ban_case {
    const int32_t *ids;
    uint32_t n;
    const bool *row; /* [c->n] */
    vk_slice params;
} ban_case;

static bool banned(const ban_case *b, uint32_t t, uint32_t id) {
    if (!b || !b->row[t]) return false;
    for (uint32_t i = 0; i < b->n; i++)
        if ((uint32_t)b->ids[i] == id) return true;
    return false;
}

/* Runs top-k (k >= 1) or argmax (k == 0) of case c on the device and compares; with ban, the
 * reference order leaves a flagged row's banned ids out. The scratch comes from the caller,
 * sized for at least c's rows. Returns the submit's wall time. */
static double run_check(vk_dev *d, vk_sample *m, const sample_case *c, uint32_t k, vk_act lg,
                        vk_slice ids_s, vk_slice vals_s, vk_slice scratch, int tier,
                        const ban_case *ban) {
    core_err err = {{0}};
    vk_rec r;
    vt_begin(d, &r);
    const vk_slice *prm = ban ? &ban->params : NULL;
    if (k == 0)
        assert_int_equal(vk_argmax(&r, m, lg, c->n, c->width, prm, ids_s, &err), VKLLM_OK);
    else if (vk_topk(&r, m, lg, c->n, c->width, k, prm, ids_s, vals_s, scratch, &err) != VKLLM_OK)
        fail_msg("vk_topk: %s", err.msg);
    const double t0 = now_ms();
    vt_submit(&r);
    const double ms = now_ms() - t0;
    const uint32_t kk = k ? k : 1;
    uint32_t *ids = malloc((size_t)c->n * kk * 4), *vals = malloc((size_t)c->n * kk * 4);
    vt_read(d, &ids_s, ids, (uint64_t)c->n * kk * 4);
    if (k) vt_read(d, &vals_s, vals, (uint64_t)c->n * kk * 4);
    for (uint32_t t = 0; t < c->n; t++) {
        const uint32_t *order = c->order + (size_t)t * c->width;
        uint32_t o = 0; /* the reference's next place, past banned ids */
        for (uint32_t j = 0; j < kk; j++) {
            while (o < c->width && banned(ban, t, order[o]))
                o++;
            const uint32_t got = ids[t * kk + j];
            const uint32_t want = o < c->width ? order[o] : UINT32_MAX;
            if (got != want)
                fail_msg("%s tier %d (%s) width %u rows %u k %u%s: row %u [%u] id %u, want %u",
                         k ? "topk" : "argmax", tier, d->info.kind, c->width, c->n, k,
                         ban ? (ban->row[t] ? " banned" : " (not banned)") : "", t, j, got, want);
            o++;
            if (!k) continue;
            uint32_t wbits;
            if (want != UINT32_MAX) {
                memcpy(&wbits, &c->x[(size_t)t * c->stride + want], 4);
            } else {
                const float ninf = -INFINITY;
                memcpy(&wbits, &ninf, 4);
            }
            if (vals[t * kk + j] != wbits)
                fail_msg("topk tier %d (%s) width %u rows %u k %u: row %u [%u] value 0x%08x, "
                         "want 0x%08x",
                         tier, d->info.kind, c->width, c->n, k, t, j, vals[t * kk + j], wbits);
        }
    }
    free(ids);
    free(vals);
    return ms;
}

/* vk_sample_create picks how top-k splits rows by the device's kind: a CPU device (lavapipe)
 * gets a few long chunks, a GPU many of TOPK_CHUNK and a merge pass over their candidates. A
 * test run can take the GPU's way on lavapipe by calling its device a GPU. */
static vk_sample *sample_create(vk_dev *d, bool gpu_way) {
    if (gpu_way) snprintf(d->info.kind, sizeof d->info.kind, "discrete-gpu");
    core_err err = {{0}};
    vk_sample *m = NULL;
    if (vk_sample_create(d, &m, &err) != VKLLM_OK) fail_msg("vk_sample_create: %s", err.msg);
    return m;
}

/* Every width, row count and k on every tier, and on tier 0 the GPU's way too; the scratch is
 * sized for the most rows and k = VK_TOPK_MAX, as the backend sizes it, and serves every
 * smaller call. */
static void test_sample_exact(void **state) {
    (void)state;
    sample_case cases[N_WIDTHS][N_ROWS];
    for (size_t wi = 0; wi < N_WIDTHS; wi++)
        for (size_t ri = 0; ri < N_ROWS; ri++)
            cases[wi][ri] = make_case(k_widths[wi], k_rows[ri], (int)wi);
    for (int run = VT_FIRST_TIER; run <= VK_TIER_COUNT; run++) {
        const int tier = run < VK_TIER_COUNT ? run : 0;
        const bool gpu_way = run == VK_TIER_COUNT;
        vk_dev *d = vt_dev(tier, 0);
        vk_sample *m = sample_create(d, gpu_way);
        for (size_t wi = 0; wi < N_WIDTHS; wi++) {
            const uint32_t w = k_widths[wi], n_max = k_rows[N_ROWS - 1];
            vk_arena a;
            vk_arena_init(&a, d, false, 0, "test");
            vk_slice ids = vt_slice(&a, NULL, (uint64_t)n_max * VK_TOPK_MAX * 4);
            vk_slice vals = vt_slice(&a, NULL, (uint64_t)n_max * VK_TOPK_MAX * 4);
            vk_slice scratch = scratch_slice(&a, n_max, w, VK_TOPK_MAX);
            for (size_t ri = 0; ri < N_ROWS; ri++) {
                const sample_case *c = &cases[wi][ri];
                const bool show = ri == 0 && w == 128256;
                vk_act lg = {vt_slice(&a, c->x, (uint64_t)c->n * c->stride * 4), c->stride};
                double ms = run_check(d, m, c, 0, lg, ids, vals, scratch, tier, NULL);
                if (show)
                    printf("tier %d%s width %u: argmax %.1f ms", tier,
                           gpu_way ? " (GPU's way)" : "", w, ms);
                for (size_t ki = 0; ki < N_KS; ki++) {
                    ms = run_check(d, m, c, k_ks[ki], lg, ids, vals, scratch, tier, NULL);
                    if (show) printf(", top-%u %.1f ms", k_ks[ki], ms);
                }
                if (show) printf("\n");
            }
            vk_arena_free(&a);
        }
        vk_sample_destroy(m);
        vt_dev_done(d);
    }
    for (size_t wi = 0; wi < N_WIDTHS; wi++)
        for (size_t ri = 0; ri < N_ROWS; ri++)
            free_case(&cases[wi][ri]);
}

/* The other ways a row is split, both ways: many rows of a wide vocabulary (fewer chunks than
 * the width asks for, each longer than TOPK_CHUNK), enough rows that each is one workgroup over
 * a row wider than a chunk, and a 256k vocabulary (a merge over more candidates than one
 * step of topk.comp takes). */
static void test_sample_many_rows(void **state) {
    (void)state;
    static const uint32_t shapes[][2] = {{49152, 40}, {5000, 300}, {262144, 1}, {262144, 2}};
    for (int gpu_way = 0; gpu_way < 2; gpu_way++) {
        vk_dev *d = vt_dev(0, 0);
        vk_sample *m = sample_create(d, gpu_way);
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            sample_case c = make_case(shapes[si][0], shapes[si][1], (int)si);
            vk_arena a;
            vk_arena_init(&a, d, false, 0, "test");
            vk_act lg = {vt_slice(&a, c.x, (uint64_t)c.n * c.stride * 4), c.stride};
            vk_slice ids = vt_slice(&a, NULL, (uint64_t)c.n * VK_TOPK_MAX * 4);
            vk_slice vals = vt_slice(&a, NULL, (uint64_t)c.n * VK_TOPK_MAX * 4);
            vk_slice scratch = scratch_slice(&a, c.n, c.width, VK_TOPK_MAX);
            run_check(d, m, &c, 0, lg, ids, vals, scratch, 0, NULL);
            run_check(d, m, &c, 40, lg, ids, vals, scratch, 0, NULL);
            run_check(d, m, &c, 128, lg, ids, vals, scratch, 0, NULL);
            vk_arena_free(&a);
            free_case(&c);
        }
        vk_sample_destroy(m);
        vt_dev_done(d);
    }
}

static int cmp_i32(const void *pa, const void *pb) {
    const int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/* Step parameters for n one-token entries with one output each, row t flagged by row[t], and
 * the banned ids (ascending), uploaded. */
static vk_slice ban_params(vk_arena *a, uint32_t n, const bool *row, const int32_t *ban,
                           uint32_t n_ban) {
    const uint64_t bytes = vk_step_params_bytes(n, n, 16, n_ban);
    vk_step_params *p = calloc(1, bytes);
    vk_step_seq *seqs = calloc(n, sizeof *seqs);
    for (uint32_t t = 0; t < n; t++)
        seqs[t] = (vk_step_seq){.n_tokens = 1, .n_out = 1, .ban = row[t]};
    vk_step_params_init(p, n, n, ban, n_ban);
    vk_step_params_write(p, NULL, seqs, n);
    vk_slice sl = vt_slice(a, p, bytes);
    free(seqs);
    free(p);
    return sl;
}

/* Banned ids (eng_seq.ban): a flagged row's argmax and top-k are the best of its ids that are
 * not banned; a row without the flag in the same dispatch keeps them. Two lists per width: a
 * wide one (both ends of the row and the best three ids of the flagged rows: every id of the
 * row searches the list) and a narrow one (a run of ids around row 0's best, as a model's
 * end-of-generation ids usually are); and a row whose every id is banned. On every tier, and
 * on tier 0 the GPU's way too. */
static void test_sample_banned(void **state) {
    (void)state;
    static const uint32_t widths[] = {1, 7, 1000, 49152, 128256};
    static const uint32_t ks[] = {0, 1, 40, 128};
    const bool flags[3] = {true, false, true};
    for (int run = VT_FIRST_TIER; run <= VK_TIER_COUNT; run++) {
        const int tier = run < VK_TIER_COUNT ? run : 0;
        const bool gpu_way = run == VK_TIER_COUNT;
        vk_dev *d = vt_dev(tier, 0);
        vk_sample *m = sample_create(d, gpu_way);
        for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
            const uint32_t w = widths[wi];
            for (uint32_t n = 1; n <= 3; n += 2) {
                sample_case c = make_case(w, n, (int)wi + 1);
                int32_t lists[2][16];
                uint32_t n_list[2] = {0, 0};
                /* wide: 0, w - 1, the best three of each flagged row */
                lists[0][n_list[0]++] = 0;
                if (w > 1) lists[0][n_list[0]++] = (int32_t)w - 1;
                for (uint32_t t = 0; t < n; t += 2)
                    for (uint32_t j = 0; j < 3 && j < w; j++)
                        lists[0][n_list[0]++] = (int32_t)c.order[(size_t)t * w + j];
                /* narrow: row 0's best and its neighbours */
                const int32_t b0 = (int32_t)c.order[0];
                for (int32_t id = b0 - 2; id <= b0 + 2; id++)
                    if (id >= 0 && id < (int32_t)w) lists[1][n_list[1]++] = id;
                vk_arena a;
                vk_arena_init(&a, d, false, 0, "test");
                vk_act lg = {vt_slice(&a, c.x, (uint64_t)c.n * c.stride * 4), c.stride};
                vk_slice ids = vt_slice(&a, NULL, (uint64_t)n * VK_TOPK_MAX * 4);
                vk_slice vals = vt_slice(&a, NULL, (uint64_t)n * VK_TOPK_MAX * 4);
                vk_slice scratch = scratch_slice(&a, n, w, VK_TOPK_MAX);
                for (int li = 0; li < 2; li++) {
                    int32_t *l = lists[li];
                    qsort(l, n_list[li], sizeof *l, cmp_i32);
                    uint32_t u = 0; /* distinct */
                    for (uint32_t i = 0; i < n_list[li]; i++)
                        if (u == 0 || l[i] != l[u - 1]) l[u++] = l[i];
                    const ban_case bc = {l, u, flags, ban_params(&a, n, flags, l, u)};
                    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                        run_check(d, m, &c, ks[ki], lg, ids, vals, scratch, tier, &bc);
                }
                vk_arena_free(&a);
                free_case(&c);
            }
        }
        /* a row of 7 whose every id is banned: nothing to choose */
        sample_case c = make_case(7, 1, 0);
        const int32_t all[7] = {0, 1, 2, 3, 4, 5, 6};
        vk_arena a;
        vk_arena_init(&a, d, false, 0, "test");
        vk_act lg = {vt_slice(&a, c.x, (uint64_t)c.n * c.stride * 4), c.stride};
        vk_slice ids = vt_slice(&a, NULL, VK_TOPK_MAX * 4);
        vk_slice vals = vt_slice(&a, NULL, VK_TOPK_MAX * 4);
        const ban_case bc = {all, 7, flags, ban_params(&a, 1, flags, all, 7)};
        run_check(d, m, &c, 0, lg, ids, vals, ids, tier, &bc);
        run_check(d, m, &c, 5, lg, ids, vals, ids, tier, &bc);
        vk_arena_free(&a);
        free_case(&c);
        vk_sample_destroy(m);
        vt_dev_done(d);
    }
}

/* Scratch sized for n rows covers every call with fewer (the backend sizes it once for its
 * largest batch); and what vk_topk refuses. */
static void test_sample_args(void **state) {
    (void)state;
    for (size_t wi = 0; wi < N_WIDTHS; wi++)
        for (uint32_t n = 2; n <= 1024; n++)
            assert_true(vk_topk_scratch_bytes(n, k_widths[wi], VK_TOPK_MAX) >=
                        vk_topk_scratch_bytes(n - 1, k_widths[wi], VK_TOPK_MAX));
    vk_dev *d = vt_dev(0, 0);
    core_err err = {{0}};
    vk_sample *m = sample_create(d, true);
    const uint32_t w = 49152, n = 2;
    vk_arena a;
    vk_arena_init(&a, d, false, 0, "test");
    vk_act lg = {vt_slice(&a, NULL, (uint64_t)n * w * 4), w};
    vk_slice ids = vt_slice(&a, NULL, (uint64_t)n * VK_TOPK_MAX * 4);
    vk_slice vals = vt_slice(&a, NULL, (uint64_t)n * VK_TOPK_MAX * 4);
    vk_slice small = scratch_slice(&a, n, w, 8);
    vk_rec r;
    vt_begin(d, &r);
    assert_int_equal(vk_topk(&r, m, lg, n, w, 0, NULL, ids, vals, small, &err),
                     VKLLM_ERR_INVALID_ARG);
    assert_int_equal(vk_topk(&r, m, lg, n, w, VK_TOPK_MAX + 1, NULL, ids, vals, small, &err),
                     VKLLM_ERR_INVALID_ARG);
    assert_int_equal(vk_topk(&r, m, lg, n, w, 9, NULL, ids, vals, small, &err),
                     VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "scratch"));
    assert_int_equal(vk_topk(&r, m, lg, n + 1, w, 8, NULL, ids, vals, small, &err),
                     VKLLM_ERR_INVALID_ARG); /* a row past the logits */
    assert_int_equal(vk_argmax(&r, m, lg, n, 0, NULL, ids, &err), VKLLM_ERR_INVALID_ARG);
    assert_int_equal(vk_topk(&r, m, lg, n, w, 8, NULL, ids, vals, small, &err), VKLLM_OK);
    vt_submit(&r);
    vk_arena_free(&a);
    vk_sample_destroy(m);
    vt_dev_done(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_exact),
        cmocka_unit_test(test_sample_many_rows),
        cmocka_unit_test(test_sample_banned),
        cmocka_unit_test(test_sample_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
