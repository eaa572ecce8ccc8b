/* Token sampling from a logits vector: repetition penalty, OpenAI's presence and frequency
 * penalties, top-k, top-p, min-p, temperature, then a draw from a seeded generator (the same
 * seed gives the same tokens), in the order llama.cpp's default sampler chain uses. Greedy
 * when the temperature is <= 0. */
#ifndef VKLLM_SCHED_SAMPLER_H
#define VKLLM_SCHED_SAMPLER_H

#include "core/common.h"

typedef struct sched_sampler sched_sampler;

vkllm_status sched_sampler_create(const vkllm_allocator *a, uint32_t n_vocab,
                                  const vkllm_sampling *params, sched_sampler **out);
void sched_sampler_free(sched_sampler *s);
/* Resets the history and the generated-token counts, and re-seeds (the banned tokens and
 * the presence/frequency penalties stay). */
void sched_sampler_reset(sched_sampler *s, const vkllm_sampling *params);
/* Tokens never to be sampled, greedy or not: ignore_eog bans the vocabulary's
 * end-of-generation set, as llama.cpp's ignore_eos does (a logit bias of -inf). ids (ascending,
 * n of them; NULL, 0: none) must outlive the sampler's use of them: the vocabulary's list.
 * selected_without: the best candidates this sampler is handed (sched_sampler_sample_top) are
 * selected without the banned ids already (a backend with eng_backend.bans, the step's entry
 * with eng_seq.ban), so it needs no more of them than without a ban. */
void sched_sampler_set_banned(sched_sampler *s, const int32_t *ids, uint32_t n,
                              bool selected_without);
int32_t sched_sampler_sample(sched_sampler *s, const float *logits);
/* How many best candidates (largest logits first) suffice to sample exactly as from all
 * logits with the current parameters: 1 for greedy, top_k when 1 < top_k <= k_max; 0 when
 * every logit is needed (a penalty, no top-k, or top-k above k_max). With banned
 * tokens that the selection does not leave out, as many more as there are banned ones (they
 * are dropped from the candidates), or 0 when that is above k_max. */
uint32_t sched_sampler_top_needed(const sched_sampler *s, uint32_t k_max);
/* Samples from n candidates sorted best first (vals may be NULL when n == 1). */
int32_t sched_sampler_sample_top(sched_sampler *s, const int32_t *ids, const float *vals,
                                 uint32_t n);
void sched_sampler_accept(sched_sampler *s, int32_t token);

/* ---- OpenAI's presence and frequency penalties ---- */

/* Before sampling, each token's logit (after the repetition penalty) becomes
 *   logit - frequency * count - presence * (count > 0),
 * count = the token's sched_sampler_accept_output calls since the last reset (OpenAI's
 * definition, over the generated tokens only). Both 0: off. The first nonzero one allocates
 * the per-vocabulary counts (VKLLM_ERR_OUT_OF_MEMORY when that fails; the penalties stay
 * off). The caller checks the range. */
vkllm_status sched_sampler_set_penalties(sched_sampler *s, float presence, float frequency);
/* A generated token: sched_sampler_accept, and counted for the penalties (prompt tokens go
 * through sched_sampler_accept only). */
void sched_sampler_accept_output(sched_sampler *s, int32_t token);
/* The checks of a request's (or a vkllm_generate call's) OpenAI options: both penalties in
 * [-2, 2] (not NaN), top_logprobs at most VKLLM_TOP_LOGPROBS_MAX. VKLLM_ERR_INVALID_ARG with a
 * message that starts with `who` ("request", "generate") otherwise. */
vkllm_status sched_sampler_check_openai(float presence, float frequency, uint32_t top_logprobs,
                                        const char *who, core_err *err);

/* ---- structured output (json_schema.h) ----
 * Only tokens the run's schema allows next may be sampled: the rest get logit -inf before
 * the penalty, top-k, top-p, min-p and temperature, so the draw is from the constrained
 * distribution exactly. A greedy sampler first checks the unconstrained argmax and masks the
 * vocabulary only when that token is not allowed (the argmax of the allowed ones is then the
 * same token). With a run, sched_sampler_top_needed is 0: every logit is needed. The caller
 * moves the run past each sampled token (jsc_run_accept); run (NULL: off) must outlive the
 * sampler's use of it. sched_sampler_sample returns -1 when the schema allows no token that
 * is not banned (only end of generation may follow, and ignore_eog bans it; or a vocabulary
 * without some byte's token): the caller ends the generation. */
struct jsc_run;
void sched_sampler_set_json(sched_sampler *s, struct jsc_run *run);

#endif
