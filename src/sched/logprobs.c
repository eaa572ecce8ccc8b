/* Log-probabilities (logprobs.h). Two passes over the row (its maximum, then the sum of the
 * exponentials in double) and the top-k selection the CPU backend uses for candidates. Called
 * only for requests that ask for log-probabilities, once per sampled token. */
#include "sched/logprobs.h"

#include "engine/engine.h"

#include <math.h>

uint32_t sched_logprobs(const float *logits, uint32_t n, int32_t token, uint32_t k, float *logprob,
                        vkllm_token_logprob *top) {
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i]; /* NaN compares false: left out */
    *logprob = -INFINITY;
    if (mx == -INFINITY) return 0; /* nothing finite: no distribution */
    double z = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        const float l = logits[i];
        if (l == l) z += exp((double)l - (double)mx);
    }
    const double log_z = log(z); /* z >= 1: the maximum's own term */
    /* (l - max) <= 0 and log z >= 0, so every figure is <= 0 */
#define LP(l) (float)(((double)(l) - (double)mx) - log_z)
    if (token >= 0 && (uint32_t)token < n && logits[token] == logits[token])
        *logprob = LP(logits[token]);
    if (k > VKLLM_TOP_LOGPROBS_MAX) k = VKLLM_TOP_LOGPROBS_MAX;
    if (k == 0) return 0;
    int32_t ids[VKLLM_TOP_LOGPROBS_MAX];
    float vals[VKLLM_TOP_LOGPROBS_MAX];
    eng_select_top(logits, n, k, ids, vals);
    uint32_t m = 0;
    while (m < k && ids[m] >= 0 && vals[m] > -INFINITY) {
        top[m] = (vkllm_token_logprob){ids[m], LP(vals[m])};
        m++;
    }
#undef LP
    return m;
}
