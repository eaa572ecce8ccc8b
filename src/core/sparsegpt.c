/* SparseGPT's arithmetic (sparsegpt.h): the Hessian of a matrix's input, the Cholesky factor of
 * its damped inverse, and the column-by-column pruning with weight updates of Frantar &
 * Alistarh 2023, Algorithm 1.
 *
 * Precision: the Hessian is summed in float within one batch of rows (the products the matrix
 * product itself makes, twice as many per SSE register as doubles) and across batches in
 * double, so thousands of calibration tokens lose nothing to the running sum; the factor is
 * computed in double (Cholesky and a triangular inverse: the damped H of a 1536-input matrix
 * from a few thousand tokens has a condition number near 1e6, which float would not survive);
 * the weights and their updates are float, as in the paper's implementation.
 *
 * Loops are plain C shaped for the compilers' vectorizers (independent lanes, no reduction that
 * would need reassociating), and the file is built with -O3 (CMakeLists.txt), which turns
 * them on in gcc: 3-4x faster here than -O2's scalar code, with the same bits. */
#include "core/sparsegpt.h"
#include "core/kth.h"

#include <math.h>
#include <string.h>

/* ---- the Hessian ---------------------------------------------------------------------- */

#define HB_I 8   /* Hessian rows per strip */
#define HB_J 256 /* strip columns: HB_I x HB_J floats, 8 KiB, stay in L1 over every row of x */

void sgpt_hessian_add(double *h, uint32_t n, const float *x, uint32_t n_rows, uint32_t stride,
                      uint32_t i0, uint32_t i1) {
    float s[HB_I][HB_J];
    for (uint32_t i = i0; i < i1; i += HB_I) {
        const uint32_t ni = i1 - i < HB_I ? i1 - i : HB_I;
        for (uint32_t j0 = i; j0 < n; j0 += HB_J) {
            const uint32_t nj = n - j0 < HB_J ? n - j0 : HB_J;
            memset(s, 0, sizeof s);
            for (uint32_t r = 0; r < n_rows; r++) {
                const float *xr = x + (size_t)r * stride;
                const float *xj = xr + j0;
                for (uint32_t k = 0; k < ni; k++) {
                    const float ak = xr[i + k];
                    float *sk = s[k];
                    for (uint32_t j = 0; j < nj; j++) {
                        const float p = ak * xj[j];
                        sk[j] += p;
                    }
                }
            }
            for (uint32_t k = 0; k < ni; k++) {
                double *hr = h + (size_t)(i + k) * n + j0;
                for (uint32_t j = (i + k > j0 ? i + k - j0 : 0); j < nj; j++)
                    hr[j] += (double)s[k][j];
            }
        }
    }
}

uint32_t sgpt_hessian_split(uint32_t n, uint32_t c, uint32_t w) {
    if (c == 0 || w == 0) return 0;
    if (c >= w) return n;
    /* rows [0, r) hold the share f of the triangle when (2 r n - r^2) / n^2 = f */
    const double f = (double)c / (double)w;
    uint32_t r = (uint32_t)((double)n * (1.0 - sqrt(1.0 - f)) + 0.5);
    r -= r % HB_I; /* whole strips */
    return r < n ? r : n;
}

/* ---- the factor ----------------------------------------------------------------------- */

/* Eight independent partial sums (vector lanes), added pairwise at the end. */
static double dot_d(const double *a, const double *b, uint32_t n) {
    double s[8] = {0};
    uint32_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (uint32_t q = 0; q < 8; q++) {
            const double p = a[k + q] * b[k + q];
            s[q] += p;
        }
    for (; k < n; k++) {
        const double p = a[k] * b[k];
        s[0] += p;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Reverses the n*n entries of m: the entry at (i, j) goes to (n-1-i, n-1-j), which maps the
 * upper triangle onto the lower one (P M P with P the order-reversing permutation). */
static void reverse_all(double *m, uint64_t nn) {
    for (uint64_t a = 0, b = nn - 1; a < b; a++, b--) {
        const double t = m[a];
        m[a] = m[b];
        m[b] = t;
    }
}

/* Both factor loops go over the rows in blocks of FB: a row j of the factor (of the inverse) is
 * read once for the whole block instead of once per row, which keeps them from streaming the
 * whole triangle from memory for every row. Each entry's sum runs over the same terms in the
 * same order as the one-row-at-a-time loop would. */
#define FB 16

/* Cholesky in place: a (n x n, row-major, lower triangle read) = L L^T, L in the lower
 * triangle. False at the first pivot that is not positive (its row and value out). */
static bool cholesky_lower(double *a, uint32_t n, uint32_t *bad, double *pivot) {
    for (uint32_t i0 = 0; i0 < n; i0 += FB) {
        const uint32_t i1 = i0 + FB < n ? i0 + FB : n;
        for (uint32_t j = 0; j < i0; j++) { /* the columns before the block */
            const double *lj = a + (size_t)j * n;
            for (uint32_t i = i0; i < i1; i++) {
                double *li = a + (size_t)i * n;
                li[j] = (li[j] - dot_d(li, lj, j)) / lj[j];
            }
        }
        for (uint32_t i = i0; i < i1; i++) { /* the block's own triangle */
            double *li = a + (size_t)i * n;
            for (uint32_t j = i0; j < i; j++) {
                const double *lj = a + (size_t)j * n;
                li[j] = (li[j] - dot_d(li, lj, j)) / lj[j];
            }
            const double p = li[i] - dot_d(li, li, i);
            if (!(p > 0.0) || !isfinite(p)) {
                *bad = i;
                *pivot = p;
                return false;
            }
            li[i] = sqrt(p);
        }
    }
    return true;
}

/* L^-1 in place (lower): row i of the inverse X is -(sum_k<i L_ik X_k) / L_ii, and 1 / L_ii
 * on the diagonal. t: FB x n scratch for the block's sums (row i of L is read while its sum
 * grows, so the sums cannot live in the rows themselves). */
static void invert_lower(double *a, uint32_t n, double *t) {
    for (uint32_t i0 = 0; i0 < n; i0 += FB) {
        const uint32_t i1 = i0 + FB < n ? i0 + FB : n;
        memset(t, 0, (size_t)FB * n * sizeof *t);
        for (uint32_t k = 0; k < i1; k++) {
            if (k >= i0) { /* row k has all its terms now: it becomes the inverse's row */
                double *lk = a + (size_t)k * n;
                const double *tk = t + (size_t)(k - i0) * n;
                const double inv = 1.0 / lk[k];
                for (uint32_t j = 0; j < k; j++)
                    lk[j] = -tk[j] * inv;
                lk[k] = inv;
            }
            const double *xk = a + (size_t)k * n; /* the inverse's row k */
            for (uint32_t i = (k < i0 ? i0 : k + 1); i < i1; i++) {
                const double c = a[(size_t)i * n + k];
                double *ti = t + (size_t)(i - i0) * n;
                for (uint32_t j = 0; j <= k; j++) {
                    const double p = c * xk[j];
                    ti[j] += p;
                }
            }
        }
    }
}

vkllm_status sgpt_factor_make(double *h, uint32_t n, float damp, const char *what,
                              const vkllm_allocator *a, sgpt_factor *f, core_err *err) {
    memset(f, 0, sizeof *f);
    if (!what) what = "sparsegpt";
    if (n == 0) return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: an empty Hessian", what);
    if (!(damp >= 0.0f) || !isfinite(damp))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "%s: dampening %g is not >= 0", what,
                         (double)damp);
    const uint64_t nn = (uint64_t)n * n;
    double *t = core_calloc(a, (size_t)FB * n, sizeof *t);
    f->dead = core_calloc(a, n, 1);
    f->u = core_alloc(a, (size_t)nn * sizeof(float), 64);
    f->n = n;
    if (!t || !f->dead || !f->u) {
        core_free(a, t);
        sgpt_factor_free(f, a);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "%s: out of memory for a %u x %u factor",
                         what, n, n);
    }
    vkllm_status st = VKLLM_OK;
    double diag = 0.0;
    for (uint32_t i = 0; i < n && st == VKLLM_OK; i++) {
        const double *hr = h + (size_t)i * n;
        for (uint32_t j = i; j < n; j++)
            if (!isfinite(hr[j])) {
                st = core_errf(err, VKLLM_ERR_INVALID_ARG,
                               "%s: the Hessian has a non-finite entry at (%u, %u)", what, i, j);
                break;
            }
        if (h[(size_t)i * n + i] == 0.0) { /* an input never seen nonzero: its weights go */
            h[(size_t)i * n + i] = 1.0;
            f->dead[i] = 1;
            f->n_dead++;
        }
        diag += h[(size_t)i * n + i];
    }
    const double lambda = (double)(damp == 0.0f ? SGPT_DAMP_DEFAULT : damp) * diag / n;
    for (uint32_t i = 0; i < n; i++)
        h[(size_t)i * n + i] += lambda;
    /* H = R R^T with R upper is the plain Cholesky factorization of P H P = L L^T (R = P L P);
     * then H^-1 = R^-T R^-1, so U = R^-1 = P L^-1 P is upper with U^T U = H^-1. */
    if (st == VKLLM_OK) reverse_all(h, nn);
    uint32_t bad = 0;
    double pivot = 0.0;
    if (st == VKLLM_OK && !cholesky_lower(h, n, &bad, &pivot))
        st = core_errf(err, VKLLM_ERR_INVALID_ARG,
                       "%s: the Hessian is not positive definite after dampening (pivot %g at "
                       "input %u; a larger --damp may help)",
                       what, pivot, n - 1 - bad);
    if (st == VKLLM_OK) invert_lower(h, n, t);
    if (st == VKLLM_OK) {
        for (uint32_t i = 0; i < n; i++) /* U = P L^-1 P: the reversal, upper part only */
            for (uint32_t j = 0; j < n; j++)
                f->u[(size_t)i * n + j] =
                    j >= i ? (float)h[(size_t)(n - 1 - i) * n + (n - 1 - j)] : 0.0f;
    }
    core_free(a, t);
    if (st != VKLLM_OK) sgpt_factor_free(f, a);
    return st;
}

void sgpt_factor_free(sgpt_factor *f, const vkllm_allocator *a) {
    core_free(a, f->u);
    core_free(a, f->dead);
    memset(f, 0, sizeof *f);
}

/* ---- pruning -------------------------------------------------------------------------- */

CORE_KTH_SMALLEST(kth_smallest, double)

/* y[0..n) -= e * u[0..n) */
static void axpy_neg(float *restrict y, const float *restrict u, float e, uint32_t n) {
    for (uint32_t j = 0; j < n; j++) {
        const float p = e * u[j];
        y[j] -= p;
    }
}

static inline double obs_score(float w, float d) {
    /* w^2 / [H^-1]_jj with U_jj^2 = [H^-1]_jj in the row order the algorithm uses */
    return (double)w * (double)w / ((double)d * (double)d);
}

vkllm_status sgpt_prune_factored(float *w, uint32_t n_out, uint32_t n_in, const sgpt_factor *f,
                                 const sgpt_desc *d, uint8_t *keep, const vkllm_allocator *a,
                                 core_err *err) {
    const uint32_t m = d->group_m, nk = d->keep_n;
    const uint32_t bs = d->blocksize ? d->blocksize : SGPT_BLOCK_DEFAULT;
    if (!f->u || f->n != n_in)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "sparsegpt: a factor of %u inputs for a matrix of %u", f->n, n_in);
    if (m && (nk == 0 || nk >= m || m > 64 || n_in % m || bs % m))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "sparsegpt: %u:%u needs 0 < N < M <= 64, and M dividing the %u columns "
                         "and the block size %u",
                         nk, m, n_in, bs);
    if (!m && !(d->sparsity >= 0.0 && d->sparsity < 1.0))
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "sparsegpt: sparsity %g outside [0, 1)",
                         d->sparsity);
    const uint64_t n = (uint64_t)n_out * n_in;
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "sparsegpt: weight (%llu, %llu) is not finite",
                             (unsigned long long)(i / n_in), (unsigned long long)(i % n_in));
    const uint32_t bmax = bs < n_in ? bs : n_in;
    uint8_t *mask = core_alloc(a, (size_t)n_out * bmax, 64); /* of the block: 1 = kept */
    float *e = core_alloc(a, (size_t)bmax * sizeof *e, 64);
    double *sc = NULL, *tmp = NULL;
    if (!m) {
        sc = core_alloc(a, (size_t)n_out * bmax * sizeof *sc, 64);
        tmp = core_alloc(a, (size_t)n_out * bmax * sizeof *tmp, 64);
    }
    if (!mask || !e || (!m && (!sc || !tmp))) {
        core_free(a, mask);
        core_free(a, e);
        core_free(a, sc);
        core_free(a, tmp);
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "sparsegpt: out of memory");
    }
    for (uint32_t c = 0; c < n_in; c++)
        if (f->dead[c])
            for (uint32_t r = 0; r < n_out; r++)
                w[(size_t)r * n_in + c] = 0.0f;
    const float *u = f->u;
    uint64_t pruned = 0;
    for (uint32_t i1 = 0; i1 < n_in; i1 += bs) {
        const uint32_t i2 = i1 + bs < n_in ? i1 + bs : n_in, nb = i2 - i1;
        if (!m) {
            /* the paper's adaptive mask: the lowest scores of the block over all rows, as many
             * as bring the matrix so far to its share (ties: the lower index first) */
            const uint64_t target = (uint64_t)(d->sparsity * (double)n_out * i2 + 0.5);
            const uint64_t cnt = (uint64_t)n_out * nb, k = target - pruned;
            for (uint32_t r = 0; r < n_out; r++)
                for (uint32_t c = 0; c < nb; c++) {
                    const uint32_t j = i1 + c;
                    sc[(size_t)r * nb + c] =
                        obs_score(w[(size_t)r * n_in + j], u[(size_t)j * n_in + j]);
                }
            memset(mask, 1, (size_t)cnt);
            if (k > 0) {
                memcpy(tmp, sc, (size_t)cnt * sizeof *tmp);
                const double th = kth_smallest(tmp, cnt, k - 1);
                uint64_t z = 0;
                for (uint64_t i = 0; i < cnt; i++)
                    if (sc[i] < th) mask[i] = 0, z++;
                for (uint64_t i = 0; i < cnt && z < k; i++)
                    if (sc[i] == th) mask[i] = 0, z++;
            }
            pruned = target;
        }
        for (uint32_t r = 0; r < n_out; r++) {
            float *wr = w + (size_t)r * n_in;
            uint8_t *mr = mask + (size_t)r * nb;
            for (uint32_t c = 0; c < nb; c++) {
                const uint32_t j = i1 + c;
                if (m &&
                    c % m == 0) { /* N:M: the group's N best, with the weights as they are now */
                    double gs[64];
                    for (uint32_t g = 0; g < m; g++) {
                        gs[g] = obs_score(wr[j + g], u[(size_t)(j + g) * n_in + j + g]);
                        mr[c + g] = 0;
                    }
                    for (uint32_t k = 0; k < nk; k++) {
                        int best = -1; /* strict: ties keep the lower column */
                        for (uint32_t g = 0; g < m; g++)
                            if (!mr[c + g] && (best < 0 || gs[g] > gs[best])) best = (int)g;
                        mr[c + best] = 1;
                    }
                }
                e[c] = 0.0f;
                if (mr[c]) continue;
                /* pruned: the error w_j / [U]_jj moves into the columns after j */
                const float *uj = u + (size_t)j * n_in;
                e[c] = wr[j] / uj[j];
                wr[j] = 0.0f;
                axpy_neg(wr + j + 1, uj + j + 1, e[c], i2 - j - 1);
            }
            /* the block's errors, batched, into the columns after the block */
            for (uint32_t c = 0; c < nb && i2 < n_in; c++)
                if (e[c] != 0.0f)
                    axpy_neg(wr + i2, u + (size_t)(i1 + c) * n_in + i2, e[c], n_in - i2);
            if (keep) {
                uint8_t *kr = keep + (size_t)r * n_in + i1;
                memcpy(kr, mr, nb);
            }
        }
    }
    core_free(a, mask);
    core_free(a, e);
    core_free(a, sc);
    core_free(a, tmp);
    return VKLLM_OK;
}

vkllm_status sgpt_prune(float *w, uint32_t n_out, uint32_t n_in, const double *h,
                        const sgpt_desc *d, uint8_t *keep, const vkllm_allocator *a,
                        core_err *err) {
    const uint64_t nn = (uint64_t)n_in * n_in;
    double *hc = core_alloc(a, (size_t)nn * sizeof *hc, 64);
    if (!hc) return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY, "sparsegpt: out of memory");
    memcpy(hc, h, (size_t)nn * sizeof *hc);
    sgpt_factor f;
    vkllm_status st = sgpt_factor_make(hc, n_in, d->damp, "sparsegpt", a, &f, err);
    core_free(a, hc);
    if (st != VKLLM_OK) return st;
    st = sgpt_prune_factored(w, n_out, n_in, &f, d, keep, a, err);
    sgpt_factor_free(&f, a);
    return st;
}
