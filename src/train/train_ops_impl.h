/* The one body of the training ops, compiled twice: by train_ops.c (TRT float, names tr_*) and
 * by train_ops_f64.c (TRT double, names tr64_*). Math goes through <tgmath.h>, so exp, log and
 * sqrt are expf, logf, sqrtf in the float instantiation and every sum runs in TRT. The formulas
 * and their sources are in train_ops_decl.h. No include guard on purpose. */
#if !defined(TRT) || !defined(TRN)
#error "train_ops_impl.h is included by train_ops.c and train_ops_f64.c only"
#endif
/* the includer has included train/train_ops.h before defining TRT and TRN */

#include <tgmath.h>

void TRN(rms_norm_fwd)(const TRT *x, const TRT *w, uint32_t T, uint32_t n, TRT eps, TRT *y,
                       TRT *rstd) {
    for (uint32_t t = 0; t < T; t++) {
        const TRT *xt = x + (uint64_t)t * n;
        TRT *yt = y + (uint64_t)t * n;
        TRT ss = 0;
        for (uint32_t i = 0; i < n; i++)
            ss += xt[i] * xt[i];
        const TRT r = (TRT)1 / sqrt(ss / (TRT)n + eps);
        rstd[t] = r;
        for (uint32_t i = 0; i < n; i++)
            yt[i] = xt[i] * r * w[i];
    }
}

void TRN(rms_norm_bwd)(const TRT *x, const TRT *w, const TRT *rstd, const TRT *dy, uint32_t T,
                       uint32_t n, TRT *dx) {
    /* y_i = x_i r w_i with r = (mean(x^2) + eps)^(-1/2), dr/dx_j = -r^3 x_j / n:
     * dx_j = r w_j dy_j - r^3 x_j / n * sum_i dy_i w_i x_i */
    for (uint32_t t = 0; t < T; t++) {
        const TRT *xt = x + (uint64_t)t * n, *dyt = dy + (uint64_t)t * n;
        TRT *dxt = dx + (uint64_t)t * n;
        const TRT r = rstd[t];
        TRT dot = 0;
        for (uint32_t i = 0; i < n; i++)
            dot += dyt[i] * w[i] * xt[i];
        const TRT c = r * r * r * dot / (TRT)n;
        for (uint32_t i = 0; i < n; i++)
            dxt[i] += r * w[i] * dyt[i] - c * xt[i];
    }
}

void TRN(linear_fwd)(const TRT *x, const TRT *W, uint32_t T, uint32_t n_in, uint32_t n_out,
                     TRT *y) {
    for (uint32_t t = 0; t < T; t++) {
        const TRT *xt = x + (uint64_t)t * n_in;
        for (uint32_t o = 0; o < n_out; o++) {
            const TRT *wo = W + (uint64_t)o * n_in;
            TRT s = 0;
            for (uint32_t i = 0; i < n_in; i++)
                s += wo[i] * xt[i];
            y[(uint64_t)t * n_out + o] = s;
        }
    }
}

void TRN(linear_bwd)(const TRT *dy, const TRT *W, uint32_t T, uint32_t n_in, uint32_t n_out,
                     TRT *dx) {
    for (uint32_t t = 0; t < T; t++) {
        TRT *dxt = dx + (uint64_t)t * n_in;
        for (uint32_t o = 0; o < n_out; o++) {
            const TRT g = dy[(uint64_t)t * n_out + o];
            const TRT *wo = W + (uint64_t)o * n_in;
            for (uint32_t i = 0; i < n_in; i++)
                dxt[i] += g * wo[i];
        }
    }
}

void TRN(lora_fwd)(const TRT *x, const TRT *A, const TRT *B, uint32_t T, uint32_t n_in,
                   uint32_t n_out, uint32_t r, TRT s, TRT *ax, TRT *y) {
    TRN(linear_fwd)(x, A, T, n_in, r, ax);
    for (uint32_t t = 0; t < T; t++) {
        const TRT *at = ax + (uint64_t)t * r;
        for (uint32_t o = 0; o < n_out; o++) {
            TRT acc = 0;
            for (uint32_t j = 0; j < r; j++)
                acc += B[(uint64_t)o * r + j] * at[j];
            y[(uint64_t)t * n_out + o] += s * acc;
        }
    }
}

void TRN(lora_bwd)(const TRT *x, const TRT *A, const TRT *B, const TRT *ax, const TRT *dy,
                   uint32_t T, uint32_t n_in, uint32_t n_out, uint32_t r, TRT s, TRT *dA, TRT *dB,
                   TRT *dx) {
    for (uint32_t t = 0; t < T; t++) {
        const TRT *xt = x + (uint64_t)t * n_in, *dyt = dy + (uint64_t)t * n_out;
        const TRT *at = ax + (uint64_t)t * r;
        if (dB)
            for (uint32_t o = 0; o < n_out; o++)
                for (uint32_t j = 0; j < r; j++)
                    dB[(uint64_t)o * r + j] += s * dyt[o] * at[j];
        for (uint32_t j = 0; j < r; j++) {
            /* the gradient of (A x)_j, one component at a time: no scratch of size r */
            TRT du = 0;
            for (uint32_t o = 0; o < n_out; o++)
                du += B[(uint64_t)o * r + j] * dyt[o];
            du *= s;
            const TRT *aj = A + (uint64_t)j * n_in;
            for (uint32_t i = 0; i < n_in; i++) {
                if (dA) dA[(uint64_t)j * n_in + i] += du * xt[i];
                if (dx) dx[(uint64_t)t * n_in + i] += du * aj[i];
            }
        }
    }
}

void TRN(rope_fwd)(const TRT *x, const TRT *cs, uint32_t T, uint32_t n_head, uint32_t head_dim,
                   uint32_t n_rot, TRT *y) {
    for (uint32_t t = 0; t < T; t++) {
        const TRT *c = cs + (uint64_t)t * n_rot;
        for (uint32_t h = 0; h < n_head; h++) {
            const uint64_t off = ((uint64_t)t * n_head + h) * head_dim;
            for (uint32_t i = 0; i < head_dim; i += 2) {
                const TRT x0 = x[off + i], x1 = x[off + i + 1];
                if (i < n_rot) {
                    y[off + i] = x0 * c[i] - x1 * c[i + 1];
                    y[off + i + 1] = x0 * c[i + 1] + x1 * c[i];
                } else {
                    y[off + i] = x0;
                    y[off + i + 1] = x1;
                }
            }
        }
    }
}

void TRN(rope_bwd)(const TRT *dy, const TRT *cs, uint32_t T, uint32_t n_head, uint32_t head_dim,
                   uint32_t n_rot, TRT *dx) {
    for (uint32_t t = 0; t < T; t++) {
        const TRT *c = cs + (uint64_t)t * n_rot;
        for (uint32_t h = 0; h < n_head; h++) {
            const uint64_t off = ((uint64_t)t * n_head + h) * head_dim;
            for (uint32_t i = 0; i < head_dim; i += 2) {
                const TRT g0 = dy[off + i], g1 = dy[off + i + 1];
                if (i < n_rot) {
                    dx[off + i] += g0 * c[i] + g1 * c[i + 1];
                    dx[off + i + 1] += -g0 * c[i + 1] + g1 * c[i];
                } else {
                    dx[off + i] += g0;
                    dx[off + i + 1] += g1;
                }
            }
        }
    }
}

/* Dot product of n values. */
static TRT TRN(dot_)(const TRT *a, const TRT *b, uint32_t n) {
    TRT s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void TRN(attn_fwd)(const TRT *q, const TRT *k, const TRT *v, tr_attn_dims d, TRT *out, TRT *p) {
    const uint32_t D = d.head_dim, group = d.n_head / d.n_head_kv;
    const uint64_t qw = (uint64_t)d.n_head * D, kw = (uint64_t)d.n_head_kv * D;
    const TRT scale = (TRT)1 / sqrt((TRT)D);
    for (uint32_t h = 0; h < d.n_head; h++) {
        const uint32_t hk = h / group;
        for (uint32_t i = 0; i < d.T; i++) {
            const TRT *qi = q + i * qw + (uint64_t)h * D;
            TRT *pi = p + ((uint64_t)h * d.T + i) * d.T;
            TRT mx = -INFINITY;
            for (uint32_t j = 0; j <= i; j++) {
                pi[j] = scale * TRN(dot_)(qi, k + j * kw + (uint64_t)hk * D, D);
                if (pi[j] > mx) mx = pi[j];
            }
            TRT sum = 0;
            for (uint32_t j = 0; j <= i; j++)
                sum += pi[j] = exp(pi[j] - mx);
            for (uint32_t j = 0; j < d.T; j++)
                pi[j] = j <= i ? pi[j] / sum : 0;
            TRT *oi = out + i * qw + (uint64_t)h * D;
            for (uint32_t e = 0; e < D; e++)
                oi[e] = 0;
            for (uint32_t j = 0; j <= i; j++) {
                const TRT *vj = v + j * kw + (uint64_t)hk * D;
                for (uint32_t e = 0; e < D; e++)
                    oi[e] += pi[j] * vj[e];
            }
        }
    }
}

void TRN(attn_bwd)(const TRT *q, const TRT *k, const TRT *v, const TRT *p, const TRT *dout,
                   tr_attn_dims d, TRT *dq, TRT *dk, TRT *dv) {
    const uint32_t D = d.head_dim, group = d.n_head / d.n_head_kv;
    const uint64_t qw = (uint64_t)d.n_head * D, kw = (uint64_t)d.n_head_kv * D;
    const TRT scale = (TRT)1 / sqrt((TRT)D);
    for (uint32_t h = 0; h < d.n_head; h++) {
        const uint32_t hk = h / group;
        for (uint32_t i = 0; i < d.T; i++) {
            const TRT *qi = q + i * qw + (uint64_t)h * D, *doi = dout + i * qw + (uint64_t)h * D;
            const TRT *pi = p + ((uint64_t)h * d.T + i) * d.T;
            /* dp_j = dout_i . v_j; the softmax's Jacobian needs sum_j p_j dp_j first */
            TRT pdp = 0;
            for (uint32_t j = 0; j <= i; j++)
                pdp += pi[j] * TRN(dot_)(doi, v + j * kw + (uint64_t)hk * D, D);
            for (uint32_t j = 0; j <= i; j++) {
                const TRT *kj = k + j * kw + (uint64_t)hk * D, *vj = v + j * kw + (uint64_t)hk * D;
                TRT *dkj = dk + j * kw + (uint64_t)hk * D, *dvj = dv + j * kw + (uint64_t)hk * D;
                TRT *dqi = dq + i * qw + (uint64_t)h * D;
                const TRT ds = pi[j] * (TRN(dot_)(doi, vj, D) - pdp) * scale;
                for (uint32_t e = 0; e < D; e++) {
                    dvj[e] += pi[j] * doi[e];
                    dqi[e] += ds * kj[e];
                    dkj[e] += ds * qi[e];
                }
            }
        }
    }
}

void TRN(swiglu_fwd)(const TRT *g, const TRT *u, uint64_t n, TRT *y) {
    for (uint64_t i = 0; i < n; i++)
        y[i] = g[i] / ((TRT)1 + exp(-g[i])) * u[i];
}

void TRN(swiglu_bwd)(const TRT *g, const TRT *u, const TRT *dy, uint64_t n, TRT *dg, TRT *du) {
    for (uint64_t i = 0; i < n; i++) {
        const TRT sg = (TRT)1 / ((TRT)1 + exp(-g[i]));
        /* silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))) */
        dg[i] += dy[i] * u[i] * sg * ((TRT)1 + g[i] * ((TRT)1 - sg));
        du[i] += dy[i] * g[i] * sg;
    }
}

/* log sum exp of a row, max-subtracted: returns the max in *mx and log sum exp(z - max). */
static TRT TRN(lse_)(const TRT *z, uint32_t V, TRT *mx) {
    TRT m = z[0];
    for (uint32_t i = 1; i < V; i++)
        if (z[i] > m) m = z[i];
    TRT s = 0;
    for (uint32_t i = 0; i < V; i++)
        s += exp(z[i] - m);
    *mx = m;
    return log(s);
}

vkllm_status TRN(cross_entropy)(const TRT *logits, const int32_t *targets, uint32_t T, uint32_t V,
                                TRT *loss, TRT *dlogits, uint32_t *n_counted, core_err *err) {
    uint32_t N = 0;
    for (uint32_t t = 0; t < T; t++) {
        if (targets[t] < -1 || targets[t] >= (int64_t)V)
            return core_errf(err, VKLLM_ERR_INVALID_ARG,
                             "cross-entropy: target %d at position %u is outside [-1, %u)",
                             (int)targets[t], t, V);
        N += targets[t] >= 0;
    }
    TRT sum = 0;
    for (uint32_t t = 0; t < T && N; t++) {
        if (targets[t] < 0) continue;
        const TRT *z = logits + (uint64_t)t * V;
        TRT mx;
        const TRT lse = TRN(lse_)(z, V, &mx);
        sum += lse - (z[targets[t]] - mx);
        if (!dlogits) continue;
        TRT *dz = dlogits + (uint64_t)t * V;
        for (uint32_t i = 0; i < V; i++)
            dz[i] += exp(z[i] - mx - lse) / (TRT)N;
        dz[targets[t]] -= (TRT)1 / (TRT)N;
    }
    *loss = N ? sum / (TRT)N : 0;
    if (n_counted) *n_counted = N;
    return VKLLM_OK;
}

vkllm_status TRN(kl_topk)(const TRT *logits, const int32_t *ids, const TRT *p, uint32_t T,
                          uint32_t V, uint32_t k, TRT *loss, TRT *dlogits, uint32_t *n_counted,
                          core_err *err) {
    uint32_t N = 0;
    for (uint32_t t = 0; t < T; t++) {
        TRT tot = 0;
        for (uint32_t j = 0; j < k; j++) {
            const uint64_t e = (uint64_t)t * k + j;
            if (ids[e] < -1 || ids[e] >= (int64_t)V)
                return core_errf(err, VKLLM_ERR_INVALID_ARG,
                                 "distillation: teacher id %d (position %u, entry %u) is outside "
                                 "[-1, %u)",
                                 (int)ids[e], t, j, V);
            if (ids[e] < 0) continue;
            if (!(p[e] >= 0) || !isfinite(p[e]))
                return core_errf(err, VKLLM_ERR_INVALID_ARG,
                                 "distillation: teacher probability %g (position %u, entry %u) "
                                 "is not a finite value >= 0",
                                 (double)p[e], t, j);
            tot += p[e];
        }
        N += tot > 0;
    }
    TRT sum = 0;
    for (uint32_t t = 0; t < T && N; t++) {
        const int32_t *it = ids + (uint64_t)t * k;
        const TRT *pt = p + (uint64_t)t * k;
        TRT tot = 0;
        for (uint32_t j = 0; j < k; j++)
            if (it[j] >= 0) tot += pt[j];
        if (!(tot > 0)) continue;
        const TRT *z = logits + (uint64_t)t * V;
        TRT mx;
        const TRT lse = TRN(lse_)(z, V, &mx);
        for (uint32_t j = 0; j < k; j++) {
            if (it[j] < 0 || pt[j] == 0) continue; /* 0 log 0 = 0 */
            const TRT pj = pt[j] / tot;
            sum += pj * (log(pj) - (z[it[j]] - mx - lse));
        }
        if (!dlogits) continue;
        TRT *dz = dlogits + (uint64_t)t * V;
        for (uint32_t i = 0; i < V; i++)
            dz[i] += exp(z[i] - mx - lse) / (TRT)N;
        for (uint32_t j = 0; j < k; j++)
            if (it[j] >= 0) dz[it[j]] -= pt[j] / tot / (TRT)N;
    }
    *loss = N ? sum / (TRT)N : 0;
    if (n_counted) *n_counted = N;
    return VKLLM_OK;
}

vkllm_status TRN(adamw_step)(TRT *w, const TRT *g, TRT *m, TRT *v, uint64_t n, uint64_t step,
                             const tr_adamw_hp *hp, core_err *err) {
    vkllm_status st = tr_adamw_check(hp, err);
    if (st != VKLLM_OK) return st;
    if (step == 0) return core_errf(err, VKLLM_ERR_INVALID_ARG, "adamw: steps count from 1, not 0");
    const TRT lr = (TRT)hp->lr, b1 = (TRT)hp->beta1, b2 = (TRT)hp->beta2, eps = (TRT)hp->eps;
    const TRT wd = (TRT)hp->weight_decay;
    /* bias corrections in double whatever TRT is: pow of a value near 1 */
    const TRT c1 = (TRT)(1.0 - pow(hp->beta1, (double)step));
    const TRT c2 = (TRT)(1.0 - pow(hp->beta2, (double)step));
    for (uint64_t i = 0; i < n; i++) {
        w[i] -= lr * wd * w[i];
        m[i] = b1 * m[i] + ((TRT)1 - b1) * g[i];
        v[i] = b2 * v[i] + ((TRT)1 - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps);
    }
    return VKLLM_OK;
}
