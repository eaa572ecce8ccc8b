/* Tests of src/core/sparsegpt.c (SparseGPT, Frantar & Alistarh 2023) on small random matrices
 * with known calibration inputs X:
 *  - the Hessian: sgpt_hessian_add against a plain double sum, the same bits for any split of
 *    its rows, the balanced split's shares;
 *  - the factor: U upper with U H U^T = I, i.e. U^T U = H^-1 for the damped H, and dead inputs
 *    found;
 *  - the mask has the pattern exactly (N:M: N kept in every group; unstructured: the share of
 *    the matrix), pruned weights are 0 and the keep mask says which;
 *  - with H = I the mask is magnitude's and the kept weights are unchanged, bit for bit;
 *  - the reconstruction error sum_t ||(W - W') x_t||^2 over the calibration X is below that of
 *    magnitude's and Wanda's masks (which do not update) on the same X, for 2:4, 4:8 and 50 %;
 *  - bad input: an H not positive definite after damping, a non-finite H or weight, shapes the
 *    pattern does not fit: a clear error, and no NaN written;
 *  - on the default model (VKLLM_MODEL, Exodus from VKLLM_TEXTS): the layer-by-layer rounds
 *    of src/api_sparsegpt.c (a residual table as the embedding, one layer before the observed
 *    one) give the Hessians of a full forward pass's products, bit for bit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_eval.h"
#include "api_sparsegpt.h"
#include "core/sparsegpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rng_float(uint64_t *s) { /* [-1, 1) */
    return (float)((double)(rng_next(s) >> 40) / 16777216.0) * 2.0f - 1.0f;
}

/* Activation-like inputs: n_rows x n, columns correlated through a few shared factors, some
 * columns (outlier features) much larger, as in a transformer's normed residual stream. */
static float *make_x(uint64_t *s, uint32_t n_rows, uint32_t n) {
    float *x = malloc((size_t)n_rows * n * sizeof *x);
    float *mix = malloc((size_t)4 * n * sizeof *mix);
    for (uint32_t i = 0; i < 4 * n; i++)
        mix[i] = rng_float(s);
    for (uint32_t r = 0; r < n_rows; r++) {
        float f[4];
        for (int k = 0; k < 4; k++)
            f[k] = rng_float(s);
        for (uint32_t c = 0; c < n; c++) {
            float v = 0.5f * rng_float(s);
            for (int k = 0; k < 4; k++)
                v += f[k] * mix[k * n + c];
            x[(size_t)r * n + c] = c % 13 == 5 ? 6.0f * v : v;
        }
    }
    free(mix);
    return x;
}

static float *make_w(uint64_t *s, uint32_t n_out, uint32_t n_in) {
    float *w = malloc((size_t)n_out * n_in * sizeof *w);
    for (uint32_t i = 0; i < n_out * n_in; i++)
        w[i] = 0.1f * rng_float(s);
    return w;
}

/* X^T X in double, full (both triangles). */
static double *hessian_of(const float *x, uint32_t n_rows, uint32_t n) {
    double *h = calloc((size_t)n * n, sizeof *h);
    for (uint32_t r = 0; r < n_rows; r++)
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < n; j++)
                h[(size_t)i * n + j] += (double)x[(size_t)r * n + i] * x[(size_t)r * n + j];
    return h;
}

/* sum_t ||(W - W') x_t||^2 */
static double recon_err(const float *w, const float *wp, uint32_t n_out, uint32_t n_in,
                        const float *x, uint32_t n_rows) {
    double e = 0.0;
    for (uint32_t t = 0; t < n_rows; t++)
        for (uint32_t r = 0; r < n_out; r++) {
            double d = 0.0;
            for (uint32_t c = 0; c < n_in; c++)
                d += ((double)w[(size_t)r * n_in + c] - wp[(size_t)r * n_in + c]) *
                     x[(size_t)t * n_in + c];
            e += d * d;
        }
    return e;
}

/* Magnitude or Wanda (col: sqrt(sum x^2) per column, else NULL), as src/api_prune.c defines
 * them: N:M keeps the N best of a group (ties to the lower column); unstructured magnitude the
 * whole matrix's best, Wanda each row's. No update. */
static void simple_prune(float *w, uint32_t n_out, uint32_t n_in, uint32_t keep_n, uint32_t m,
                         double sparsity, const double *col) {
    const uint64_t n = (uint64_t)n_out * n_in;
    double *sc = malloc(n * sizeof *sc);
    for (uint64_t i = 0; i < n; i++)
        sc[i] = fabs((double)w[i]) * (col ? col[i % n_in] : 1.0);
    if (m) {
        for (uint64_t g = 0; g < n; g += m) {
            bool kept[64] = {false};
            for (uint32_t k = 0; k < keep_n; k++) {
                int best = -1;
                for (uint32_t c = 0; c < m; c++)
                    if (!kept[c] && (best < 0 || sc[g + c] > sc[g + best])) best = (int)c;
                kept[best] = true;
            }
            for (uint32_t c = 0; c < m; c++)
                if (!kept[c]) w[g + c] = 0.0f;
        }
    } else {
        const uint64_t span = col ? n_in : n, k = (uint64_t)((double)span * sparsity + 0.5);
        for (uint64_t r0 = 0; r0 < n; r0 += span)
            for (uint64_t z = 0; z < k; z++) { /* the lowest remaining, lower index on ties */
                uint64_t lo = UINT64_MAX;
                for (uint64_t i = r0; i < r0 + span; i++)
                    if (sc[i] >= 0 && (lo == UINT64_MAX || sc[i] < sc[lo])) lo = i;
                w[lo] = 0.0f;
                sc[lo] = -1.0;
            }
    }
    free(sc);
}

static void test_hessian_add(void **state) {
    (void)state;
    uint64_t s = 1;
    const uint32_t n = 300, rows = 70, stride = 311; /* not multiples of the strips */
    float *x = malloc((size_t)rows * stride * sizeof *x);
    for (uint32_t i = 0; i < rows * stride; i++)
        x[i] = rng_float(&s);
    double *h1 = calloc((size_t)n * n, sizeof *h1), *h2 = calloc((size_t)n * n, sizeof *h2);
    sgpt_hessian_add(h1, n, x, rows, stride, 0, n);
    /* a three-way balanced split, twice (two batches), gives the same bits as one piece */
    for (int rep = 0; rep < 2; rep++) {
        for (uint32_t t = 0; t < 3; t++)
            sgpt_hessian_add(h2, n, x, rows, stride, sgpt_hessian_split(n, t * 100, 300),
                             sgpt_hessian_split(n, (t + 1) * 100, 300));
    }
    sgpt_hessian_add(h1, n, x, rows, stride, 0, n);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++) {
            const double got = h1[(size_t)i * n + j];
            if (j < i) { /* the lower triangle is not touched */
                assert_true(got == 0.0 && h2[(size_t)i * n + j] == 0.0);
                continue;
            }
            if (memcmp(&got, &h2[(size_t)i * n + j], sizeof got) != 0)
                fail_msg("(%u, %u): one piece %.17g, split %.17g", i, j, got,
                         h2[(size_t)i * n + j]);
            double want = 0.0, mag = 0.0;
            for (uint32_t r = 0; r < rows; r++) {
                const double p = (double)x[r * stride + i] * x[r * stride + j];
                want += p;
                mag += fabs(p);
            }
            if (fabs(got - 2 * want) > 2 * mag * rows * 6e-8)
                fail_msg("(%u, %u): %.9g, double sum %.9g", i, j, got, 2 * want);
        }
    /* the split: monotonic, whole strips, ends at 0 and n, shares of the triangle about even */
    uint32_t prev = 0;
    for (uint32_t c = 0; c <= 1000; c += 50) {
        const uint32_t r = sgpt_hessian_split(1536, c, 1000);
        assert_true(r >= prev && (r % 8 == 0 || r == 1536));
        prev = r;
    }
    assert_int_equal(sgpt_hessian_split(1536, 0, 1000), 0);
    assert_int_equal(sgpt_hessian_split(1536, 1000, 1000), 1536);
    const uint32_t half = sgpt_hessian_split(1536, 500, 1000);
    const double share = ((double)half * 1536 - (double)half * half / 2) / (1536.0 * 1536 / 2);
    assert_true(share > 0.49 && share < 0.51);
    free(x);
    free(h1);
    free(h2);
}

static void test_factor(void **state) {
    (void)state;
    uint64_t s = 2;
    const uint32_t n = 96, rows = 200;
    float *x = make_x(&s, rows, n);
    for (uint32_t r = 0; r < rows; r++) /* input 17 never fires */
        x[(size_t)r * n + 17] = 0.0f;
    double *h = hessian_of(x, rows, n), *hd = malloc((size_t)n * n * sizeof *hd);
    memcpy(hd, h, (size_t)n * n * sizeof *hd);
    for (uint32_t i = 0; i < n; i++) /* the lower triangle must not be read */
        for (uint32_t j = 0; j < i; j++)
            hd[(size_t)i * n + j] = NAN;
    sgpt_factor f;
    core_err err = {{0}};
    assert_int_equal(sgpt_factor_make(hd, n, 0.01f, "t", NULL, &f, &err), VKLLM_OK);
    assert_int_equal(f.n_dead, 1);
    assert_true(f.dead[17]);
    /* the damped H the factor is of */
    h[17 * n + 17] = 1.0;
    double mean = 0.0;
    for (uint32_t i = 0; i < n; i++)
        mean += h[(size_t)i * n + i] / n;
    for (uint32_t i = 0; i < n; i++)
        h[(size_t)i * n + i] += 0.01 * mean;
    /* U upper, and U H U^T = I (from U^T U = H^-1) */
    double worst = 0.0;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < i; j++)
            assert_true(f.u[(size_t)i * n + j] == 0.0f);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++) {
            double v = 0.0; /* (U H U^T)_ij */
            for (uint32_t a = i; a < n; a++)
                for (uint32_t b = j; b < n; b++)
                    v += (double)f.u[(size_t)i * n + a] * h[(size_t)a * n + b] *
                         f.u[(size_t)j * n + b];
            const double d = fabs(v - (i == j ? 1.0 : 0.0));
            worst = d > worst ? d : worst;
        }
    if (worst > 1e-3) fail_msg("U H U^T differs from I by %g", worst);
    sgpt_factor_free(&f, NULL);
    free(x);
    free(h);
    free(hd);
}

typedef struct pat {
    uint32_t keep_n, m;
    double sparsity;
} pat;
static const pat k_pats[] = {{2, 4, 0.5}, {4, 8, 0.5}, {0, 0, 0.5}, {0, 0, 0.3}};

static void test_pattern_exact(void **state) {
    (void)state;
    uint64_t s = 3;
    const uint32_t n_out = 24, n_in = 192, rows = 256;
    float *x = make_x(&s, rows, n_in);
    double *h = hessian_of(x, rows, n_in);
    for (size_t p = 0; p < sizeof k_pats / sizeof k_pats[0]; p++) {
        const pat *pt = &k_pats[p];
        float *w = make_w(&s, n_out, n_in);
        uint8_t *keep = malloc((size_t)n_out * n_in);
        const sgpt_desc d = {
            .keep_n = pt->keep_n, .group_m = pt->m, .sparsity = pt->sparsity, .blocksize = 64};
        core_err err = {{0}};
        assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d, keep, NULL, &err), VKLLM_OK);
        uint64_t kept = 0;
        for (uint32_t i = 0; i < n_out * n_in; i++) {
            assert_true(isfinite(w[i]));
            if (!keep[i]) assert_true(w[i] == 0.0f);
            kept += keep[i] != 0;
        }
        if (pt->m) {
            for (uint32_t g = 0; g < n_out * n_in; g += pt->m) {
                uint32_t k = 0;
                for (uint32_t c = 0; c < pt->m; c++)
                    k += keep[g + c] != 0;
                assert_int_equal(k, pt->keep_n);
            }
        } else {
            const uint64_t want =
                (uint64_t)n_out * n_in - (uint64_t)(pt->sparsity * n_out * n_in + 0.5);
            assert_int_equal(kept, want);
        }
        free(w);
        free(keep);
    }
    free(x);
    free(h);
}

static void test_identity_is_magnitude(void **state) {
    (void)state;
    uint64_t s = 4;
    const uint32_t n_out = 16, n_in = 128;
    double *h = calloc((size_t)n_in * n_in, sizeof *h);
    for (uint32_t i = 0; i < n_in; i++)
        h[(size_t)i * n_in + i] = 1.0;
    for (size_t p = 0; p < sizeof k_pats / sizeof k_pats[0]; p++) {
        const pat *pt = &k_pats[p];
        float *w = make_w(&s, n_out, n_in), *ws = malloc((size_t)n_out * n_in * sizeof *ws);
        float *wm = malloc((size_t)n_out * n_in * sizeof *wm);
        memcpy(ws, w, (size_t)n_out * n_in * sizeof *ws);
        memcpy(wm, w, (size_t)n_out * n_in * sizeof *wm);
        /* unstructured magnitude compares the whole matrix: one block of every column */
        const sgpt_desc d = {.keep_n = pt->keep_n,
                             .group_m = pt->m,
                             .sparsity = pt->sparsity,
                             .blocksize = pt->m ? 32 : n_in};
        core_err err = {{0}};
        assert_int_equal(sgpt_prune(ws, n_out, n_in, h, &d, NULL, NULL, &err), VKLLM_OK);
        simple_prune(wm, n_out, n_in, pt->keep_n, pt->m, pt->sparsity, NULL);
        if (memcmp(ws, wm, (size_t)n_out * n_in * sizeof *ws) != 0)
            fail_msg("pattern %zu: SparseGPT with H = I differs from magnitude", p);
        free(w);
        free(ws);
        free(wm);
    }
    free(h);
}

static void test_beats_magnitude_and_wanda(void **state) {
    (void)state;
    uint64_t s = 5;
    const uint32_t n_out = 32, n_in = 128, rows = 512;
    float *x = make_x(&s, rows, n_in);
    double *h = hessian_of(x, rows, n_in);
    double col[128];
    for (uint32_t c = 0; c < n_in; c++)
        col[c] = sqrt(h[(size_t)c * n_in + c] / rows);
    for (size_t p = 0; p < 3; p++) { /* 2:4, 4:8, 50 % */
        const pat *pt = &k_pats[p];
        float *w = make_w(&s, n_out, n_in);
        const size_t bytes = (size_t)n_out * n_in * sizeof(float);
        float *ws = malloc(bytes), *wm = malloc(bytes), *ww = malloc(bytes);
        memcpy(ws, w, bytes);
        memcpy(wm, w, bytes);
        memcpy(ww, w, bytes);
        const sgpt_desc d = {.keep_n = pt->keep_n, .group_m = pt->m, .sparsity = pt->sparsity};
        core_err err = {{0}};
        assert_int_equal(sgpt_prune(ws, n_out, n_in, h, &d, NULL, NULL, &err), VKLLM_OK);
        simple_prune(wm, n_out, n_in, pt->keep_n, pt->m, pt->sparsity, NULL);
        simple_prune(ww, n_out, n_in, pt->keep_n, pt->m, pt->sparsity, col);
        const double es = recon_err(w, ws, n_out, n_in, x, rows);
        const double em = recon_err(w, wm, n_out, n_in, x, rows);
        const double ew = recon_err(w, ww, n_out, n_in, x, rows);
        print_message("pattern %zu: reconstruction error sparsegpt %.4g, wanda %.4g, magnitude "
                      "%.4g\n",
                      p, es, ew, em);
        if (!(es < ew && es < em))
            fail_msg("pattern %zu: sparsegpt %g is not below wanda %g and magnitude %g", p, es, ew,
                     em);
        free(w);
        free(ws);
        free(wm);
        free(ww);
    }
    free(x);
    free(h);
}

static void test_bad_input(void **state) {
    (void)state;
    uint64_t s = 6;
    const uint32_t n_out = 4, n_in = 8;
    double h[64] = {0};
    float w[32], w0[32];
    for (int i = 0; i < 32; i++)
        w0[i] = rng_float(&s);
    const sgpt_desc d24 = {.keep_n = 2, .group_m = 4};
    core_err err = {{0}};
    /* indefinite: [[1, 2], [2, 1]] blocks stay indefinite after 1 % dampening */
    for (int i = 0; i < 8; i++)
        h[i * 8 + i] = 1.0;
    h[0 * 8 + 1] = h[1 * 8 + 0] = 2.0;
    memcpy(w, w0, sizeof w);
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d24, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not positive definite"));
    assert_memory_equal(w, w0, sizeof w);
    /* negative definite */
    memset(h, 0, sizeof h);
    for (int i = 0; i < 8; i++)
        h[i * 8 + i] = -1.0;
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d24, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not positive definite"));
    /* non-finite */
    for (int i = 0; i < 8; i++)
        h[i * 8 + i] = 1.0;
    h[3 * 8 + 5] = NAN;
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d24, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "non-finite"));
    h[3 * 8 + 5] = INFINITY;
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d24, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    h[3 * 8 + 5] = 0.0;
    assert_memory_equal(w, w0, sizeof w);
    /* shapes and options */
    const sgpt_desc d38 = {.keep_n = 3, .group_m = 8, .blocksize = 12};
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d38, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "block size"));
    const sgpt_desc d36 = {.keep_n = 3, .group_m = 6};
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d36, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    const sgpt_desc dun = {.sparsity = 1.0};
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &dun, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    const sgpt_desc dneg = {.sparsity = 0.5, .damp = -1.0f};
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &dneg, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    w[5] = NAN;
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d24, NULL, NULL, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not finite"));
    w[5] = w0[5];
    assert_memory_equal(w, w0, sizeof w);
    /* and a good call on the same inputs works */
    assert_int_equal(sgpt_prune(w, n_out, n_in, h, &d24, NULL, NULL, &err), VKLLM_OK);
}

/* ---- the calibration rounds against a full forward pass ---- */

typedef struct full_obs {
    const eng_graph *g;
    uint32_t layer;
    double *h[PRUNE_SGPT_INPUTS];
} full_obs;

static void observe_full(void *user, const eng_op *op, const float *x, uint32_t n_rows,
                         uint32_t width, uint32_t col0, uint32_t col1) {
    full_obs *f = user;
    if (op->kind != EOP_MATMUL || op->last_rows || op->layer != f->layer) return;
    int k = 0; /* the op's place among the layer's products */
    for (const eng_op *o = f->g->ops; o < op; o++)
        k += o->kind == EOP_MATMUL && !o->last_rows && o->layer == f->layer;
    sgpt_hessian_add(f->h[k], width, x, n_rows, width, sgpt_hessian_split(width, col0, width),
                     sgpt_hessian_split(width, col1, width));
}

static void test_rounds_match_forward(void **state) {
    (void)state;
    const char *model = getenv("VKLLM_MODEL"), *texts = getenv("VKLLM_TEXTS");
    if (!model || !texts) fail_msg("VKLLM_MODEL and VKLLM_TEXTS are needed (ctest sets them)");
    char path[4096];
    snprintf(path, sizeof path, "%s/kjv-exodus.txt", texts);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("%s is missing (scripts/fetch_texts.sh makes it)", path);
    static char text[1 << 16]; /* the start of the book is enough for 2 chunks of 64 */
    const size_t len = fread(text, 1, sizeof text, fp);
    fclose(fp);
    const uint32_t n_ctx = 64, n_chunks = 2;
    const prune_sgpt_desc d = {.model_path = model,
                               .text = text,
                               .text_len = len,
                               .n_ctx = n_ctx,
                               .n_chunks = n_chunks,
                               .n_threads = 2,
                               .out_type = QT_Q8_0};
    vkllm_runtime *rt;
    vkllm_model *m;
    const vkllm_runtime_desc rd = {.struct_size = sizeof rd, .device = "cpu", .n_threads = 2};
    assert_int_equal(vkllm_runtime_create(&rd, &rt), VKLLM_OK);
    const vkllm_model_desc md = {.struct_size = sizeof md, .path = model};
    if (vkllm_model_load(rt, &md, &m) != VKLLM_OK) fail_msg("%s", vkllm_runtime_last_error(rt));
    int32_t *tokens;
    size_t n_tokens;
    assert_int_equal(eval_tokenize(m, text, len, &tokens, &n_tokens), VKLLM_OK);
    assert_true(n_tokens >= n_ctx * n_chunks);
    const uint32_t layers[] = {0, 2, 29};
#ifdef VKLLM_TEST_SANITIZED
    const size_t n_layers = 1; /* each round runs two layers of the model: one is enough */
#else
    const size_t n_layers = sizeof layers / sizeof layers[0];
#endif
    for (size_t li = 0; li < n_layers; li++) {
        double *h[PRUNE_SGPT_INPUTS];
        uint32_t n[PRUNE_SGPT_INPUTS];
        core_err err = {{0}};
        if (prune_sgpt_hessians(&d, layers[li], h, n, &err) != VKLLM_OK)
            fail_msg("layer %u: %s", layers[li], err.msg);
        full_obs f = {.g = &m->graph, .layer = layers[li]};
        for (int k = 0; k < PRUNE_SGPT_INPUTS; k++)
            f.h[k] = calloc((size_t)n[k] * n[k], sizeof(double));
        eval_run r;
        assert_int_equal(eval_open(m, n_ctx, n_ctx, EVAL_OUT_NONE, &r), VKLLM_OK);
        rt->backend->vt->observe(r.ctx, observe_full, &f);
        const bool bos = tok_add_bos(m->vocab) && tok_bos(m->vocab) >= 0;
        for (uint32_t c = 0; c < n_chunks; c++)
            assert_int_equal(eval_chunk(&r, tokens + (size_t)c * n_ctx, bos, NULL, NULL), VKLLM_OK);
        eval_close(&r);
        for (int k = 0; k < PRUNE_SGPT_INPUTS; k++) {
            const size_t nn = (size_t)n[k] * n[k];
            if (memcmp(h[k], f.h[k], nn * sizeof(double)) != 0)
                fail_msg("layer %u, input %d: the rounds' Hessian is not the forward pass's",
                         layers[li], k);
            assert_true(h[k][0] > 0.0); /* and not just zeros on both sides */
            free(h[k]);
            free(f.h[k]);
        }
    }
    free(tokens);
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hessian_add),
        cmocka_unit_test(test_factor),
        cmocka_unit_test(test_pattern_exact),
        cmocka_unit_test(test_identity_is_magnitude),
        cmocka_unit_test(test_beats_magnitude_and_wanda),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_rounds_match_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
