/* Helpers of the training reference's tests (test_train_grad.c, test_train_ref.c), header-only:
 * a seeded random source, buffers, and the central-difference gradient check with its stated
 * tolerance. */
#ifndef VKLLM_TRAIN_TEST_UTIL_H
#define VKLLM_TRAIN_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <math.h>

static uint64_t train_test_rng = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1) (splitmix64). */
static inline double urand(void) {
    uint64_t z = (train_test_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-52 - 1.0;
}

static inline double *rnd(uint64_t n, double scale) {
    double *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (uint64_t i = 0; i < n; i++)
        p[i] = scale * urand();
    return p;
}

/* A gradient buffer that starts at 1 (see the top of the file). */
static inline double *ones(uint64_t n) {
    double *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (uint64_t i = 0; i < n; i++)
        p[i] = 1.0;
    return p;
}

static inline void minus_one(double *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        p[i] -= 1.0;
}

static inline double dotg(const double *g, const double *y, uint64_t n) {
    double s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += g[i] * y[i];
    return s;
}

/* Central differences with step FD_H: the truncation error is h^2/6 |L'''| (~1e-11 for the
 * O(1) derivatives here) and the rounding error ~ 2^-52 |L| / h (~1e-10 for |L| <= 10), so an
 * analytic gradient that is right agrees to ~1e-9; FD_RTOL, relative to the larger of the two
 * values (and at least FD_FLOOR, so that gradients near 0 are held to 1e-9 absolute), is three
 * orders of magnitude looser than that and orders tighter than any wrong term would give. */
#define FD_H 1e-5
#define FD_RTOL 1e-6
#define FD_FLOOR 1e-3

typedef double (*loss_fn)(void *ctx);

static inline void fd_check(const char *what, double *p, const double *grad, uint64_t n, loss_fn L,
                            void *ctx) {
    double worst = 0;
    for (uint64_t i = 0; i < n; i++) {
        const double save = p[i];
        p[i] = save + FD_H;
        const double lp = L(ctx);
        p[i] = save - FD_H;
        const double lm = L(ctx);
        p[i] = save;
        const double fd = (lp - lm) / (2 * FD_H);
        const double err = fabs(fd - grad[i]) / fmax(fmax(fabs(fd), fabs(grad[i])), FD_FLOOR);
        if (!(err <= FD_RTOL))
            fail_msg("%s[%llu]: analytic %.12g, finite differences %.12g (relative error %.2e)",
                     what, (unsigned long long)i, grad[i], fd, err);
        if (err > worst) worst = err;
    }
    print_message("  %-22s %4llu values, worst relative error %.1e\n", what, (unsigned long long)n,
                  worst);
}

#endif
