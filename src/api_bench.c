/* vkllm_bench_bandwidth and vkllm_bench_op: argument checks, defaults, the weight type by
 * name, size limits, and the bytes and flops of one call, defined once for every backend. The
 * measuring is the backend's (eng_backend_vtbl.bandwidth, .bench_op). Errors go to the
 * runtime's message (vkllm_runtime_last_error). */
#include "api_abi.h"
#include "api_internal.h"

#include "core/quant.h"

#include <math.h>
#include <string.h>

#define BENCH_MAX_SECONDS 600.0
#define BENCH_DEFAULT_SECONDS 0.5
#define BENCH_MAX_TOKENS 65535     /* Vulkan's activation quantizer: one row per grid row */
#define BENCH_MAX_ACT (1ull << 30) /* activation rows, and the KV cache, at most */
#define MIB (1024.0 * 1024.0)

static vkllm_status check_seconds(vkllm_runtime *rt, double *s) {
    if (!(*s >= 0.0 && *s <= BENCH_MAX_SECONDS))
        return core_errf(&rt->err, VKLLM_ERR_INVALID_ARG, "bench: seconds %g out of range [0, %g]",
                         *s, BENCH_MAX_SECONDS);
    if (*s == 0.0) *s = BENCH_DEFAULT_SECONDS;
    return VKLLM_OK;
}

vkllm_status vkllm_bench_bandwidth(vkllm_runtime *rt, double seconds, double *gbps,
                                   uint64_t *bytes_out) {
    if (!rt) return VKLLM_ERR_INVALID_ARG;
    if (!gbps) return core_errf(&rt->err, VKLLM_ERR_INVALID_ARG, "bench bandwidth: gbps is NULL");
    *gbps = 0.0;
    if (bytes_out) *bytes_out = 0;
    vkllm_status st = check_seconds(rt, &seconds);
    if (st != VKLLM_OK) return st;
    const eng_backend *be = rt->backend;
    if (!be->vt->bandwidth)
        return core_errf(&rt->err, VKLLM_ERR_UNSUPPORTED,
                         "bench bandwidth: backend %s cannot "
                         "measure it",
                         be->name);
    uint64_t bytes = 0;
    pthread_mutex_lock(&rt->be_mu); /* the runtime's engines and sessions take turns */
    st = be->vt->bandwidth(rt->backend, seconds, gbps, &bytes, &rt->err);
    pthread_mutex_unlock(&rt->be_mu);
    if (st == VKLLM_OK && bytes_out) *bytes_out = bytes;
    return st;
}

static vkllm_status check_matmul(vkllm_runtime *rt, const vkllm_bench_op_desc *d, uint32_t *w_type,
                                 vkllm_bench_op_result *r) {
    core_err *err = &rt->err;
    if (!quant_type_by_name(d->type && *d->type ? d->type : "q4_0", w_type))
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "bench matmul: unknown weight type '%s' "
                         "(q4_0, q4_1, q5_0, q5_1, q8_0, q2_k .. q6_k, f16, bf16, f32, s24_q4, "
                         "s24_q8)",
                         d->type);
    const quant_traits *tr = quant_traits_of(*w_type);
    if (d->rows == 0 || d->cols == 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "bench matmul: a %u x %u matrix", d->rows,
                         d->cols);
    if (d->cols % tr->block_size != 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "bench matmul: %u columns are not a "
                         "multiple of %s's block of %u",
                         d->cols, tr->name, tr->block_size);
    if (!tr->supported || !tr->quant)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "bench matmul: no kernel for %s weights",
                         tr->name);
    if (d->tokens > BENCH_MAX_TOKENS)
        return core_errf(err, VKLLM_ERR_INVALID_ARG, "bench matmul: %u tokens (at most %d)",
                         d->tokens, BENCH_MAX_TOKENS);
    uint64_t rb = 0, mat = 0;
    if (!quant_row_bytes(*w_type, d->cols, &rb) || !core_mul_ok(rb, d->rows, &mat) ||
        mat > ENG_BENCH_MAX_BYTES)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "bench matmul: a %u x %u %s matrix is "
                         "%.1f MiB, over the limit of %.0f MiB",
                         d->rows, d->cols, tr->name, (double)rb * d->rows / MIB,
                         (double)ENG_BENCH_MAX_BYTES / MIB);
    const uint64_t widest = d->rows > d->cols ? d->rows : d->cols;
    if ((uint64_t)d->tokens * widest * 4 > BENCH_MAX_ACT)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "bench matmul: %u tokens of %llu values "
                         "are %.1f MiB of activations, over the limit of %.0f MiB",
                         d->tokens, (unsigned long long)widest,
                         (double)d->tokens * (double)widest * 4 / MIB, (double)BENCH_MAX_ACT / MIB);
    r->bytes = mat;
    r->flops = 2ull * d->rows * d->cols * d->tokens;
    return VKLLM_OK;
}

static vkllm_status check_attention(vkllm_runtime *rt, const vkllm_bench_op_desc *d,
                                    vkllm_bench_op_result *r) {
    core_err *err = &rt->err;
    if (d->n_head == 0 || d->n_head_kv == 0 || d->head_dim == 0 || d->n_kv == 0 ||
        d->n_head % d->n_head_kv != 0)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "bench attention: %u query heads over %u "
                         "KV heads of %u, cache of %u (all non-zero, query heads a multiple of "
                         "KV heads)",
                         d->n_head, d->n_head_kv, d->head_dim, d->n_kv);
    if (d->tokens > d->n_kv)
        return core_errf(err, VKLLM_ERR_INVALID_ARG,
                         "bench attention: %u queries at the end of "
                         "a cache of %u positions",
                         d->tokens, d->n_kv);
    const uint64_t kv = 2ull * d->n_kv * d->n_head_kv * d->head_dim * 2; /* K and V, F16 */
    const uint64_t q = (uint64_t)d->tokens * d->n_head * d->head_dim * 4;
    if (kv > BENCH_MAX_ACT || q > BENCH_MAX_ACT)
        return core_errf(err, VKLLM_ERR_OUT_OF_MEMORY,
                         "bench attention: a cache of %.1f MiB "
                         "and %.1f MiB of queries, over the limit of %.0f MiB each",
                         (double)kv / MIB, (double)q / MIB, (double)BENCH_MAX_ACT / MIB);
    /* query t (of tokens) sees the keys up to its position n_kv - tokens + t */
    const uint64_t t = d->tokens;
    const uint64_t keys = t * (d->n_kv - t + 1) + t * (t - 1) / 2;
    r->bytes = kv;
    r->flops = 4ull * d->n_head * d->head_dim * keys;
    return VKLLM_OK;
}

vkllm_status vkllm_bench_op(vkllm_runtime *rt, const vkllm_bench_op_desc *desc,
                            vkllm_bench_op_result *out) {
    if (!rt) return VKLLM_ERR_INVALID_ARG;
    if (!desc || !out)
        return core_errf(&rt->err, VKLLM_ERR_INVALID_ARG, "bench op: desc and out are required");
    const vkllm_bench_op_result zero = {0};
    API_OUT(vkllm_bench_op_result, out, &zero);
    vkllm_bench_op_desc d;
    API_IN(vkllm_bench_op_desc, desc, &d);
    if (d.tokens == 0) d.tokens = 1;
    vkllm_status st = check_seconds(rt, &d.seconds);
    if (st != VKLLM_OK) return st;
    uint32_t w_type = 0;
    vkllm_bench_op_result r = {0};
    switch (d.op) {
    case VKLLM_BENCH_MATMUL:
        st = check_matmul(rt, &d, &w_type, &r);
        break;
    case VKLLM_BENCH_ATTENTION:
        st = check_attention(rt, &d, &r);
        break;
    default:
        return core_errf(&rt->err, VKLLM_ERR_INVALID_ARG,
                         "bench op: unknown op %d (0 matmul, "
                         "1 attention)",
                         (int)d.op);
    }
    if (st != VKLLM_OK) return st;
    const eng_backend *be = rt->backend;
    if (!be->vt->bench_op)
        return core_errf(&rt->err, VKLLM_ERR_UNSUPPORTED,
                         "bench op: backend %s cannot measure "
                         "ops",
                         be->name);
    pthread_mutex_lock(&rt->be_mu);
    st = be->vt->bench_op(rt->backend, &d, w_type, &r, &rt->err);
    pthread_mutex_unlock(&rt->be_mu);
    if (st != VKLLM_OK) return st;
    if (!(r.us > 0.0) || r.calls == 0)
        return core_errf(&rt->err, VKLLM_ERR_INTERNAL, "bench op: %llu calls in %g us",
                         (unsigned long long)r.calls, r.us);
    r.gbps = (double)r.bytes / (r.us * 1e3);
    r.gflops = (double)r.flops / (r.us * 1e3);
    API_OUT(vkllm_bench_op_result, out, &r);
    return VKLLM_OK;
}
