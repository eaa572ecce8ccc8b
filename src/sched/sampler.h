/* Token sampling from a logits vector: repetition penalty, top-k, top-p, min-p, temperature,
 * then a draw from a seeded generator (the same seed gives the same tokens), in the order
 * llama.cpp's default sampler chain uses. Greedy when the temperature is <= 0. */
#ifndef VKLLM_SCHED_SAMPLER_H
#define VKLLM_SCHED_SAMPLER_H

#include "core/common.h"

typedef struct sched_sampler sched_sampler;

vkllm_status sched_sampler_create(const vkllm_allocator *a, uint32_t n_vocab,
                                  const vkllm_sampling *params, sched_sampler **out);
void sched_sampler_free(sched_sampler *s);
/* Resets the history and re-seeds. */
void sched_sampler_reset(sched_sampler *s, const vkllm_sampling *params);
int32_t sched_sampler_sample(sched_sampler *s, const float *logits);
void sched_sampler_accept(sched_sampler *s, int32_t token);

#endif
