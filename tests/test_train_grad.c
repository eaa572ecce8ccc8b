/* The ops of the LoRA training reference (src/train/train_ops.h, issue 21): every backward op
 * against central finite differences in double precision, every input that has a gradient; the
 * float instantiation against the double one; AdamW and the learning rate schedule against
 * hand-computed values; bad input refused. The whole model is test_train_ref.c's.
 *
 * Op checks use L = sum(g * y) with a random upstream gradient g, so the analytic gradient of
 * an input is exactly what the op's backward gives for dy = g. Backward ops add into their
 * gradients: every check starts the gradient buffers at 1 and takes 1 off afterwards, so an op
 * that overwrote instead of adding would fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_test_util.h"
#include "train/train_ops.h"
#include "train_test_util.h"

#include "engine/engine.h"

#include <math.h>

/* ---- the ops, in double, against finite differences ---- */

typedef struct op_ctx {
    uint32_t T, n, n_out, r, n_head, head_dim, n_rot;
    double *x, *w, *a, *b, *y0, *g, *y, *aux, *cs, *k, *v, s;
    const int32_t *ids;
    uint32_t V, top_k;
    tr_attn_dims ad;
} op_ctx;

static double rms_L(void *c_) {
    op_ctx *c = c_;
    tr64_rms_norm_fwd(c->x, c->w, c->T, c->n, 1e-5, c->y, c->aux);
    return dotg(c->g, c->y, (uint64_t)c->T * c->n);
}

static void test_rms_norm(void **state) {
    (void)state;
    op_ctx c = {.T = 3, .n = 8};
    const uint64_t N = (uint64_t)c.T * c.n;
    c.x = rnd(N, 2), c.w = rnd(c.n, 1), c.g = rnd(N, 1), c.y = rnd(N, 1), c.aux = rnd(c.T, 1);
    rms_L(&c);
    double *dx = ones(N);
    tr64_rms_norm_bwd(c.x, c.w, c.aux, c.g, c.T, c.n, dx);
    minus_one(dx, N);
    fd_check("rms_norm dx", c.x, dx, N, rms_L, &c);
    free(c.x), free(c.w), free(c.g), free(c.y), free(c.aux), free(dx);
}

static double linear_L(void *c_) {
    op_ctx *c = c_;
    tr64_linear_fwd(c->x, c->w, c->T, c->n, c->n_out, c->y);
    return dotg(c->g, c->y, (uint64_t)c->T * c->n_out);
}

static void test_linear(void **state) {
    (void)state;
    op_ctx c = {.T = 3, .n = 7, .n_out = 5};
    const uint64_t NX = (uint64_t)c.T * c.n, NY = (uint64_t)c.T * c.n_out;
    c.x = rnd(NX, 1), c.w = rnd((uint64_t)c.n_out * c.n, 1), c.g = rnd(NY, 1), c.y = rnd(NY, 1);
    double *dx = ones(NX);
    tr64_linear_bwd(c.g, c.w, c.T, c.n, c.n_out, dx);
    minus_one(dx, NX);
    fd_check("linear dx", c.x, dx, NX, linear_L, &c);
    free(c.x), free(c.w), free(c.g), free(c.y), free(dx);
}

static double lora_L(void *c_) {
    op_ctx *c = c_;
    const uint64_t NY = (uint64_t)c->T * c->n_out;
    memcpy(c->y, c->y0, NY * sizeof *c->y);
    tr64_lora_fwd(c->x, c->a, c->b, c->T, c->n, c->n_out, c->r, c->s, c->aux, c->y);
    return dotg(c->g, c->y, NY);
}

static void test_lora(void **state) {
    (void)state;
    op_ctx c = {.T = 3, .n = 7, .n_out = 5, .r = 2};
    c.s = tr_lora_scale(0.75, 4.0, c.r);
    assert_true(c.s == 1.5);
    assert_true(tr_lora_scale(0.75, 0.0, c.r) == 0.75); /* no alpha: the scale alone */
    const uint64_t NX = (uint64_t)c.T * c.n, NY = (uint64_t)c.T * c.n_out;
    const uint64_t NA = (uint64_t)c.r * c.n, NB = (uint64_t)c.n_out * c.r;
    c.x = rnd(NX, 1), c.a = rnd(NA, 1), c.b = rnd(NB, 1), c.y0 = rnd(NY, 1), c.g = rnd(NY, 1);
    c.y = rnd(NY, 1), c.aux = rnd((uint64_t)c.T * c.r, 1);
    lora_L(&c);
    double *dx = ones(NX), *da = ones(NA), *db = ones(NB);
    tr64_lora_bwd(c.x, c.a, c.b, c.aux, c.g, c.T, c.n, c.n_out, c.r, c.s, da, db, dx);
    minus_one(dx, NX), minus_one(da, NA), minus_one(db, NB);
    fd_check("lora dx", c.x, dx, NX, lora_L, &c);
    fd_check("lora dA", c.a, da, NA, lora_L, &c);
    fd_check("lora dB", c.b, db, NB, lora_L, &c);
    free(c.x), free(c.a), free(c.b), free(c.y0), free(c.g), free(c.y), free(c.aux);
    free(dx), free(da), free(db);
}

/* RoPE tables for positions p0, p0 + step, ... from eng_rope_cs, widened. */
static double *rope_table(uint32_t T, uint32_t n_rot, uint32_t p0, uint32_t step) {
    const model_config cfg = {
        .n_rot = n_rot, .rope_base = 10000.0f, .rope_freq_scale = 1.0f, .head_dim = n_rot};
    double *cs = malloc((uint64_t)T * n_rot * sizeof *cs);
    float tmp[64];
    assert_non_null(cs);
    assert_true(n_rot <= 64);
    for (uint32_t t = 0; t < T; t++) {
        eng_rope_cs(&cfg, NULL, p0 + t * step, tmp);
        for (uint32_t i = 0; i < n_rot; i++)
            cs[(uint64_t)t * n_rot + i] = tmp[i];
    }
    return cs;
}

static double rope_L(void *c_) {
    op_ctx *c = c_;
    tr64_rope_fwd(c->x, c->cs, c->T, c->n_head, c->head_dim, c->n_rot, c->y);
    return dotg(c->g, c->y, (uint64_t)c->T * c->n_head * c->head_dim);
}

static void test_rope(void **state) {
    (void)state;
    /* n_rot < head_dim: the last pair of each head passes through */
    op_ctx c = {.T = 4, .n_head = 3, .head_dim = 8, .n_rot = 6};
    const uint64_t N = (uint64_t)c.T * c.n_head * c.head_dim;
    c.cs = rope_table(c.T, c.n_rot, 3, 7);
    c.x = rnd(N, 1), c.g = rnd(N, 1), c.y = rnd(N, 1);
    rope_L(&c);
    /* in place gives the same values */
    double *inplace = malloc(N * sizeof *inplace);
    assert_non_null(inplace);
    memcpy(inplace, c.x, N * sizeof *inplace);
    tr64_rope_fwd(inplace, c.cs, c.T, c.n_head, c.head_dim, c.n_rot, inplace);
    assert_memory_equal(inplace, c.y, N * sizeof *inplace);
    double *dx = ones(N);
    tr64_rope_bwd(c.g, c.cs, c.T, c.n_head, c.head_dim, c.n_rot, dx);
    minus_one(dx, N);
    fd_check("rope dx", c.x, dx, N, rope_L, &c);
    free(c.cs), free(c.x), free(c.g), free(c.y), free(inplace), free(dx);
}

static double attn_L(void *c_) {
    op_ctx *c = c_;
    tr64_attn_fwd(c->x, c->k, c->v, c->ad, c->y, c->aux);
    return dotg(c->g, c->y, (uint64_t)c->ad.T * c->ad.n_head * c->ad.head_dim);
}

static void test_attention(void **state) {
    (void)state;
    op_ctx c = {.ad = {.T = 5, .n_head = 4, .n_head_kv = 2, .head_dim = 4}};
    const tr_attn_dims d = c.ad;
    const uint64_t NQ = (uint64_t)d.T * d.n_head * d.head_dim;
    const uint64_t NK = (uint64_t)d.T * d.n_head_kv * d.head_dim;
    const uint64_t NP = (uint64_t)d.n_head * d.T * d.T;
    /* scale 1.5: peaked enough that the softmax's curvature matters */
    c.x = rnd(NQ, 1.5), c.k = rnd(NK, 1.5), c.v = rnd(NK, 1), c.g = rnd(NQ, 1);
    c.y = rnd(NQ, 1), c.aux = rnd(NP, 1);
    attn_L(&c);
    for (uint32_t h = 0; h < d.n_head; h++) /* rows are distributions over keys 0..i */
        for (uint32_t i = 0; i < d.T; i++) {
            const double *p = c.aux + ((uint64_t)h * d.T + i) * d.T;
            double sum = 0;
            for (uint32_t j = 0; j < d.T; j++) {
                if (j > i) assert_true(p[j] == 0);
                sum += p[j];
            }
            assert_true(fabs(sum - 1) < 1e-14);
        }
    double *dq = ones(NQ), *dk = ones(NK), *dv = ones(NK);
    tr64_attn_bwd(c.x, c.k, c.v, c.aux, c.g, d, dq, dk, dv);
    minus_one(dq, NQ), minus_one(dk, NK), minus_one(dv, NK);
    fd_check("attention dq", c.x, dq, NQ, attn_L, &c);
    fd_check("attention dk", c.k, dk, NK, attn_L, &c);
    fd_check("attention dv", c.v, dv, NK, attn_L, &c);
    free(c.x), free(c.k), free(c.v), free(c.g), free(c.y), free(c.aux);
    free(dq), free(dk), free(dv);
}

static double swiglu_L(void *c_) {
    op_ctx *c = c_;
    tr64_swiglu_fwd(c->x, c->w, c->n, c->y);
    return dotg(c->g, c->y, c->n);
}

static void test_swiglu(void **state) {
    (void)state;
    op_ctx c = {.n = 13};
    c.x = rnd(c.n, 4), c.w = rnd(c.n, 2), c.g = rnd(c.n, 1), c.y = rnd(c.n, 1);
    double *dg = ones(c.n), *du = ones(c.n);
    tr64_swiglu_bwd(c.x, c.w, c.g, c.n, dg, du);
    minus_one(dg, c.n), minus_one(du, c.n);
    fd_check("swiglu dg", c.x, dg, c.n, swiglu_L, &c);
    fd_check("swiglu du", c.w, du, c.n, swiglu_L, &c);
    free(c.x), free(c.w), free(c.g), free(c.y), free(dg), free(du);
}

static double ce_L(void *c_) {
    op_ctx *c = c_;
    double loss;
    assert_int_equal(tr64_cross_entropy(c->x, c->ids, c->T, c->V, &loss, NULL, NULL, NULL),
                     VKLLM_OK);
    return loss;
}

static void test_cross_entropy(void **state) {
    (void)state;
    static const int32_t targets[5] = {3, -1, 0, 6, -1};
    op_ctx c = {.T = 5, .V = 7, .ids = targets};
    const uint64_t N = (uint64_t)c.T * c.V;
    c.x = rnd(N, 3);
    double loss, *dz = ones(N);
    uint32_t counted = 0;
    assert_int_equal(tr64_cross_entropy(c.x, targets, c.T, c.V, &loss, dz, &counted, NULL),
                     VKLLM_OK);
    assert_int_equal(counted, 3);
    minus_one(dz, N);
    for (uint32_t i = 0; i < c.V; i++) /* positions not counted get no gradient */
        assert_true(dz[1 * c.V + i] == 0 && dz[4 * c.V + i] == 0);
    fd_check("cross-entropy dlogits", c.x, dz, N, ce_L, &c);
    /* equal logits: -log(1/V) at every counted position; huge logits stay finite */
    double *flat = calloc(N, sizeof *flat);
    assert_non_null(flat);
    assert_int_equal(tr64_cross_entropy(flat, targets, c.T, c.V, &loss, NULL, NULL, NULL),
                     VKLLM_OK);
    assert_true(fabs(loss - log(7.0)) < 1e-15);
    for (uint64_t i = 0; i < N; i++)
        flat[i] = 1e4 * (double)(i % 3);
    assert_int_equal(tr64_cross_entropy(flat, targets, c.T, c.V, &loss, NULL, NULL, NULL),
                     VKLLM_OK);
    assert_true(isfinite(loss));
    /* a target outside [-1, V): an error, and no gradient written */
    static const int32_t bad[5] = {3, -1, 7, 6, -1};
    static const int32_t bad2[5] = {3, -2, 0, 6, -1};
    core_err err;
    memset(dz, 0, N * sizeof *dz);
    assert_int_equal(tr64_cross_entropy(c.x, bad, c.T, c.V, &loss, dz, NULL, &err),
                     VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "target 7 at position 2"));
    assert_int_equal(tr64_cross_entropy(c.x, bad2, c.T, c.V, &loss, dz, NULL, &err),
                     VKLLM_ERR_INVALID_ARG);
    for (uint64_t i = 0; i < N; i++)
        assert_true(dz[i] == 0);
    free(c.x), free(dz), free(flat);
}

static double kl_L(void *c_) {
    op_ctx *c = c_;
    double loss;
    assert_int_equal(
        tr64_kl_topk(c->x, c->ids, c->w, c->T, c->V, c->top_k, &loss, NULL, NULL, NULL), VKLLM_OK);
    return loss;
}

static void test_kl(void **state) {
    (void)state;
    /* row 1 has an absent entry, row 2's probabilities are all 0 (not counted); the
     * probabilities are not normalized (the op does it) */
    static const int32_t ids[4 * 3] = {2, 5, 7, 1, -1, 4, 0, 3, 6, 8, 3, 0};
    double p[4 * 3] = {0.5, 0.2, 0.1, 0.3, 0.9, 0.3, 0, 0, 0, 0.05, 0.6, 0.25};
    op_ctx c = {.T = 4, .V = 9, .top_k = 3, .ids = ids, .w = p};
    const uint64_t N = (uint64_t)c.T * c.V;
    c.x = rnd(N, 3);
    double loss, *dz = ones(N);
    uint32_t counted = 0;
    assert_int_equal(tr64_kl_topk(c.x, ids, p, c.T, c.V, c.top_k, &loss, dz, &counted, NULL),
                     VKLLM_OK);
    assert_int_equal(counted, 3);
    assert_true(loss > 0);
    minus_one(dz, N);
    for (uint32_t i = 0; i < c.V; i++)
        assert_true(dz[2 * c.V + i] == 0);
    fd_check("distillation dlogits", c.x, dz, N, kl_L, &c);
    /* a teacher over the whole vocabulary equal to the student: KL 0, gradient 0 */
    int32_t all[9];
    double q[9], mx = c.x[0], s = 0;
    for (uint32_t i = 0; i < 9; i++)
        all[i] = (int32_t)i, mx = fmax(mx, c.x[i]);
    for (uint32_t i = 0; i < 9; i++)
        s += q[i] = exp(c.x[i] - mx);
    for (uint32_t i = 0; i < 9; i++)
        q[i] /= s;
    double dz1[9] = {0};
    assert_int_equal(tr64_kl_topk(c.x, all, q, 1, 9, 9, &loss, dz1, NULL, NULL), VKLLM_OK);
    assert_true(fabs(loss) < 1e-15);
    for (uint32_t i = 0; i < 9; i++)
        assert_true(fabs(dz1[i]) < 1e-15);
    /* bad teacher entries: errors, nothing written */
    core_err err;
    static const int32_t bad_ids[3] = {2, 9, 1};
    double neg[3] = {0.5, -0.1, 0.2}, nan3[3] = {0.5, NAN, 0.2};
    assert_int_equal(tr64_kl_topk(c.x, bad_ids, p, 1, 9, 3, &loss, dz1, NULL, &err),
                     VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "teacher id 9"));
    assert_int_equal(tr64_kl_topk(c.x, ids, neg, 1, 9, 3, &loss, dz1, NULL, &err),
                     VKLLM_ERR_INVALID_ARG);
    assert_int_equal(tr64_kl_topk(c.x, ids, nan3, 1, 9, 3, &loss, dz1, NULL, &err),
                     VKLLM_ERR_INVALID_ARG);
    for (uint32_t i = 0; i < 9; i++)
        assert_true(fabs(dz1[i]) < 1e-15);
    free(c.x), free(dz);
}

/* ---- AdamW and the schedule, against values worked out by hand ---- */

static void test_adamw(void **state) {
    (void)state;
    const tr_adamw_hp hp = {
        .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    /* w = 0.5, g = 0.2, step 1: decay to 0.5 - 0.1 * 0.01 * 0.5 = 0.4995; m = 0.02, v = 4e-5;
     * bias-corrected 0.2 and 0.04 (sqrt 0.2); w = 0.4995 - 0.1 * 0.2 / (0.2 + 1e-8)
     * = 0.4995 - 0.0999999950000002 = 0.3995000049999998. With g = -0.3 and w = -1: decay to
     * -0.999, m = -0.03, v = 9e-5, corrected -0.3 and 0.09 (sqrt 0.3): w = -0.999 +
     * 0.1 * 0.3 / (0.3 + 1e-8) = -0.8990000033333334. */
    double w[2] = {0.5, -1.0}, g[2] = {0.2, -0.3}, m[2] = {0}, v[2] = {0};
    assert_int_equal(tr64_adamw_step(w, g, m, v, 2, 1, &hp, NULL), VKLLM_OK);
    assert_true(fabs(w[0] - 0.3995000049999998) < 1e-15);
    assert_true(fabs(w[1] - -0.8990000033333334) < 1e-15);
    assert_true(fabs(m[0] - 0.02) < 1e-17 && fabs(v[0] - 4e-5) < 1e-19);
    /* the float instantiation: the same within float rounding */
    float wf[2] = {0.5f, -1.0f}, gf[2] = {0.2f, -0.3f}, mf[2] = {0}, vf[2] = {0};
    assert_int_equal(tr_adamw_step(wf, gf, mf, vf, 2, 1, &hp, NULL), VKLLM_OK);
    assert_true(fabs(wf[0] - 0.3995000049999998) < 1e-6);
    assert_true(fabs(wf[1] - -0.8990000033333334) < 1e-6);
    /* step 2 uses the moments: g = 0 leaves m = 0.018, v = 3.996e-5; corrections 0.19 and
     * 0.001999; w = 0.3995000049999998 * (1 - 0.001) - 0.1 * (0.018 / 0.19) /
     * (sqrt(3.996e-5 / 0.001999) + 1e-8) */
    const double w2 =
        0.3995000049999998 * 0.999 - 0.1 * (0.018 / 0.19) / (sqrt(3.996e-5 / 0.001999) + 1e-8);
    double g0[2] = {0, 0};
    assert_int_equal(tr64_adamw_step(w, g0, m, v, 2, 2, &hp, NULL), VKLLM_OK);
    assert_true(fabs(w[0] - w2) < 1e-14);
    /* bad hyperparameters and step 0: errors, nothing written */
    core_err err;
    tr_adamw_hp bad = hp;
    bad.beta1 = 1.0;
    assert_int_equal(tr64_adamw_step(w, g, m, v, 2, 3, &bad, &err), VKLLM_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "beta1"));
    bad = hp, bad.eps = 0;
    assert_int_equal(tr64_adamw_step(w, g, m, v, 2, 3, &bad, &err), VKLLM_ERR_INVALID_ARG);
    bad = hp, bad.lr = NAN;
    assert_int_equal(tr64_adamw_step(w, g, m, v, 2, 3, &bad, &err), VKLLM_ERR_INVALID_ARG);
    assert_int_equal(tr64_adamw_step(w, g, m, v, 2, 0, &hp, &err), VKLLM_ERR_INVALID_ARG);
    assert_true(fabs(w[0] - w2) < 1e-14);
}

static void test_lr_schedule(void **state) {
    (void)state;
    const tr_lr_sched s = {.lr_max = 1e-3, .lr_min = 1e-5, .n_warmup = 10, .n_total = 110};
    assert_true(fabs(tr_lr_at(&s, 0) - 1e-4) < 1e-18);  /* 1/10 of the way up */
    assert_true(fabs(tr_lr_at(&s, 9) - 1e-3) < 1e-18);  /* top at the end of the warm-up */
    assert_true(fabs(tr_lr_at(&s, 10) - 1e-3) < 1e-18); /* cosine from the top */
    assert_true(fabs(tr_lr_at(&s, 60) - (1e-3 + 1e-5) / 2) < 1e-17); /* half way */
    assert_true(fabs(tr_lr_at(&s, 35) - (1e-5 + 0.99e-3 * (1 + sqrt(0.5)) / 2)) < 1e-17);
    assert_true(fabs(tr_lr_at(&s, 110) - 1e-5) < 1e-18); /* the floor, and it stays there */
    assert_true(fabs(tr_lr_at(&s, 1000) - 1e-5) < 1e-18);
    for (uint64_t i = 10; i < 110; i++) /* never rises after the warm-up */
        assert_true(tr_lr_at(&s, i + 1) <= tr_lr_at(&s, i));
    const tr_lr_sched flat = {.lr_max = 2e-4, .lr_min = 2e-4, .n_warmup = 0, .n_total = 5};
    assert_true(tr_lr_at(&flat, 0) == 2e-4 && tr_lr_at(&flat, 7) == 2e-4);
}

/* ---- the float instantiation against the double one ---- */

static float *tof(const double *d, uint64_t n) {
    float *f = malloc(n * sizeof *f);
    assert_non_null(f);
    for (uint64_t i = 0; i < n; i++)
        f[i] = (float)d[i];
    return f;
}

static float *zf(uint64_t n) {
    float *f = calloc(n, sizeof *f);
    assert_non_null(f);
    return f;
}

/* The largest |f - d| relative to the largest |d| of the array. Both get the same inputs (the
 * float ones rounded once); float's rounding (2^-24 per operation) over the few dozen terms
 * these ops sum, and expf/logf within a few ulp, stay near 1e-6; F32_RTOL allows 10x that. */
#define F32_RTOL 1e-5

static void cmp_f(const char *what, const float *f, const double *d, uint64_t n) {
    double mx = 0, diff = 0;
    for (uint64_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(d[i]));
        diff = fmax(diff, fabs((double)f[i] - d[i]));
    }
    assert_true(mx > 0);
    if (!(diff <= F32_RTOL * mx))
        fail_msg("%s: float differs from double by %.3g (largest value %.3g)", what, diff, mx);
    print_message("  %-22s %4llu values, float within %.1e of double (relative)\n", what,
                  (unsigned long long)n, diff / mx);
}

/* The double inputs rounded to float, so that both runs see the same values. */
static double *rndf(uint64_t n, double scale) {
    double *p = rnd(n, scale);
    for (uint64_t i = 0; i < n; i++)
        p[i] = (float)p[i];
    return p;
}

static void test_float_matches_double(void **state) {
    (void)state;
    const uint32_t T = 5, n = 12, n_out = 9, r = 3, V = 11;
    const tr_attn_dims ad = {.T = T, .n_head = 4, .n_head_kv = 2, .head_dim = 6};
    const uint32_t QW = ad.n_head * ad.head_dim, KW = ad.n_head_kv * ad.head_dim;
    const uint64_t NX = (uint64_t)T * n, NY = (uint64_t)T * n_out, NQ = (uint64_t)T * QW;
    const uint64_t NK = (uint64_t)T * KW, NP = (uint64_t)ad.n_head * T * T;
    const uint64_t NMAX = NX + NY + NQ + NP + (uint64_t)T * V; /* more than any op needs */
    double *x = rndf(NMAX, 2), *w = rndf(NMAX, 1), *a = rndf(NMAX, 1), *g = rndf(NMAX, 1);
    float *xf = tof(x, NMAX), *wf = tof(w, NMAX), *af = tof(a, NMAX), *gf = tof(g, NMAX);
    double *y = calloc(NMAX, sizeof *y), *aux = calloc(NMAX, sizeof *aux);
    double *d1 = calloc(NMAX, sizeof *d1), *d2 = calloc(NMAX, sizeof *d2);
    double *d3 = calloc(NMAX, sizeof *d3);
    float *yf = zf(NMAX), *auxf = zf(NMAX), *d1f = zf(NMAX), *d2f = zf(NMAX), *d3f = zf(NMAX);
    assert_true(y && aux && d1 && d2 && d3);
#define RESET()                                                                                    \
    do {                                                                                           \
        memset(d1, 0, NMAX * sizeof *d1), memset(d2, 0, NMAX * sizeof *d2);                        \
        memset(d3, 0, NMAX * sizeof *d3), memset(d1f, 0, NMAX * sizeof *d1f);                      \
        memset(d2f, 0, NMAX * sizeof *d2f), memset(d3f, 0, NMAX * sizeof *d3f);                    \
        memset(y, 0, NMAX * sizeof *y), memset(yf, 0, NMAX * sizeof *yf);                          \
    } while (0)

    tr64_rms_norm_fwd(x, w, T, n, 1e-5, y, aux);
    tr_rms_norm_fwd(xf, wf, T, n, 1e-5f, yf, auxf);
    tr64_rms_norm_bwd(x, w, aux, g, T, n, d1);
    tr_rms_norm_bwd(xf, wf, auxf, gf, T, n, d1f);
    cmp_f("rms_norm y", yf, y, NX), cmp_f("rms_norm dx", d1f, d1, NX);

    RESET();
    tr64_linear_fwd(x, w, T, n, n_out, y);
    tr_linear_fwd(xf, wf, T, n, n_out, yf);
    tr64_linear_bwd(g, w, T, n, n_out, d1);
    tr_linear_bwd(gf, wf, T, n, n_out, d1f);
    cmp_f("linear y", yf, y, NY), cmp_f("linear dx", d1f, d1, NX);

    RESET();
    const double s = tr_lora_scale(1, 6, r);
    tr64_lora_fwd(x, a, w, T, n, n_out, r, s, aux, y);
    tr_lora_fwd(xf, af, wf, T, n, n_out, r, (float)s, auxf, yf);
    tr64_lora_bwd(x, a, w, aux, g, T, n, n_out, r, s, d1, d2, d3);
    tr_lora_bwd(xf, af, wf, auxf, gf, T, n, n_out, r, (float)s, d1f, d2f, d3f);
    cmp_f("lora y", yf, y, NY), cmp_f("lora dA", d1f, d1, (uint64_t)r * n);
    cmp_f("lora dB", d2f, d2, (uint64_t)n_out * r), cmp_f("lora dx", d3f, d3, NX);

    RESET();
    double *cs = rope_table(T, 4, 100, 1000); /* large positions: angles far from 0 */
    float *csf = tof(cs, (uint64_t)T * 4);
    tr64_rope_fwd(x, cs, T, ad.n_head, ad.head_dim, 4, y);
    tr_rope_fwd(xf, csf, T, ad.n_head, ad.head_dim, 4, yf);
    tr64_rope_bwd(g, cs, T, ad.n_head, ad.head_dim, 4, d1);
    tr_rope_bwd(gf, csf, T, ad.n_head, ad.head_dim, 4, d1f);
    cmp_f("rope y", yf, y, NQ), cmp_f("rope dx", d1f, d1, NQ);

    RESET();
    tr64_attn_fwd(x, a, w, ad, y, aux);
    tr_attn_fwd(xf, af, wf, ad, yf, auxf);
    tr64_attn_bwd(x, a, w, aux, g, ad, d1, d2, d3);
    tr_attn_bwd(xf, af, wf, auxf, gf, ad, d1f, d2f, d3f);
    cmp_f("attention out", yf, y, NQ), cmp_f("attention p", auxf, aux, NP);
    cmp_f("attention dq", d1f, d1, NQ), cmp_f("attention dk", d2f, d2, NK);
    cmp_f("attention dv", d3f, d3, NK);

    RESET();
    tr64_swiglu_fwd(x, w, NX, y);
    tr_swiglu_fwd(xf, wf, NX, yf);
    tr64_swiglu_bwd(x, w, g, NX, d1, d2);
    tr_swiglu_bwd(xf, wf, gf, NX, d1f, d2f);
    cmp_f("swiglu y", yf, y, NX), cmp_f("swiglu dg", d1f, d1, NX);
    cmp_f("swiglu du", d2f, d2, NX);

    RESET();
    const int32_t targets[5] = {4, -1, 10, 0, 7};
    double loss;
    float lossf;
    assert_int_equal(tr64_cross_entropy(x, targets, T, V, &loss, d1, NULL, NULL), VKLLM_OK);
    assert_int_equal(tr_cross_entropy(xf, targets, T, V, &lossf, d1f, NULL, NULL), VKLLM_OK);
    cmp_f("cross-entropy loss", &lossf, &loss, 1);
    cmp_f("cross-entropy dlogits", d1f, d1, (uint64_t)T * V);

    RESET();
    const int32_t ids[5 * 2] = {1, 2, 3, -1, 10, 0, 5, 6, 9, 8};
    double p[5 * 2];
    for (int i = 0; i < 10; i++)
        p[i] = (float)(0.5 + 0.4 * urand());
    float *pf = tof(p, 10);
    assert_int_equal(tr64_kl_topk(x, ids, p, T, V, 2, &loss, d1, NULL, NULL), VKLLM_OK);
    assert_int_equal(tr_kl_topk(xf, ids, pf, T, V, 2, &lossf, d1f, NULL, NULL), VKLLM_OK);
    cmp_f("distillation loss", &lossf, &loss, 1);
    cmp_f("distillation dlogits", d1f, d1, (uint64_t)T * V);
#undef RESET
    free(x), free(w), free(a), free(g), free(xf), free(wf), free(af), free(gf);
    free(y), free(aux), free(d1), free(d2), free(d3);
    free(yf), free(auxf), free(d1f), free(d2f), free(d3f), free(cs), free(csf), free(pf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rms_norm),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_kl),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_float_matches_double),
    };
    return api_test_run_group("train_grad", tests, sizeof tests / sizeof tests[0], NULL, NULL);
}
