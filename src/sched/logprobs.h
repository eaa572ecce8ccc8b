/* Log-probabilities of sampled tokens (vkllm_logprobs_fn, OpenAI's `logprobs`): the
 * log-softmax of a row of raw logits, for the sampled token and the most likely few. A pure
 * function of the logits: no sampler state, no allocation, so a token's figures are the same
 * bits wherever its logits are (alone, batched, vkllm_generate or the engine). */
#ifndef VKLLM_SCHED_LOGPROBS_H
#define VKLLM_SCHED_LOGPROBS_H

#include "core/common.h"

/* log p(token) = (l_token - max) - log(sum_j exp(l_j - max)) over logits[0, n), in double and
 * rounded once to float (NaN logits count as -inf; an id out of range gets -inf), into
 * *logprob; and the k (<= VKLLM_TOP_LOGPROBS_MAX) most likely tokens with theirs, by the same
 * formula, most likely first, equal logits to the lower id (eng_select_top's order), into
 * top. Returns how many entries top got: k, or fewer where fewer logits are finite. */
uint32_t sched_logprobs(const float *logits, uint32_t n, int32_t token, uint32_t k, float *logprob,
                        vkllm_token_logprob *top);

#endif
