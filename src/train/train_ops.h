/* The operations of a LoRA training step, forward and backward, on row-major dense arrays: the
 * numerical reference that the fast CPU trainer and the Vulkan kernels are checked against
 * (issue 21). Correctness and plainness over speed: naive loops, no threads, no allocation.
 *
 * Every op exists twice, from one generic body (train_ops_impl.h): tr_NAME on float and
 * tr64_NAME on double (the gradient checks run in double). The declarations are written once,
 * in train_ops_decl.h, with TRT standing for the element type and TRN(name) for the name.
 *
 * Conventions shared by every op:
 *  - T rows (tokens) of a width each; a matrix W [n_out x n_in] is row-major, so y = x W^T;
 *  - a backward op ADDS into every gradient it produces (dx, dA, ...), so gradients flowing
 *    into one tensor from several uses sum without copies: the caller zeroes them first;
 *  - forward ops write (=) their outputs, except lora_fwd, which adds onto the base product;
 *  - frozen parameters (norm weights, W) get no gradient.
 * Nothing here includes the engine; the RoPE table is the one eng_rope_cs() makes.
 */
#ifndef VKLLM_TRAIN_TRAIN_OPS_H
#define VKLLM_TRAIN_TRAIN_OPS_H

#include "core/common.h"

#include <stdint.h>

/* AdamW's hyperparameters (Loshchilov & Hutter 2019, "Decoupled Weight Decay
 * Regularization"), in double for both instantiations. */
typedef struct tr_adamw_hp {
    double lr;           /* learning rate of this step (tr_lr_at) */
    double beta1, beta2; /* decay of the first and second moment, in [0, 1) */
    double eps;          /* > 0, added to sqrt(v_hat) */
    double weight_decay; /* decoupled: w -= lr * weight_decay * w, before the Adam update */
} tr_adamw_hp;

/* Learning rate schedule: linear warm-up over n_warmup steps to lr_max, then cosine decay to
 * lr_min at step n_total (and lr_min after it). Steps count from 0. */
typedef struct tr_lr_sched {
    double lr_max, lr_min;
    uint64_t n_warmup, n_total;
} tr_lr_sched;

/* The learning rate of step `step`: (step + 1) / n_warmup * lr_max during the warm-up (so the
 * first step does not have a rate of 0), then lr_min + (lr_max - lr_min) * (1 + cos(pi * p)) / 2
 * with p = (step - n_warmup) / (n_total - n_warmup), clamped to [0, 1]. */
double tr_lr_at(const tr_lr_sched *s, uint64_t step);

/* Checks the hyperparameters: what is wrong, in words. */
vkllm_status tr_adamw_check(const tr_adamw_hp *hp, core_err *err);

/* The factor of a LoRA product, llama.cpp's (llama_adapter_lora_weight::get_scale): y += s B A x
 * with s = scale * alpha / rank, and s = scale when alpha is 0 (an adapter file without
 * adapter.lora.alpha). */
double tr_lora_scale(double scale, double alpha, uint32_t rank);

/* Shapes of causal self-attention over one sequence at positions 0..T-1: q [T x n_head *
 * head_dim], k and v [T x n_head_kv * head_dim]; query head h reads kv head
 * h / (n_head / n_head_kv) (grouped-query attention; n_head_kv divides n_head). */
typedef struct tr_attn_dims {
    uint32_t T, n_head, n_head_kv, head_dim;
} tr_attn_dims;

#define TRT float
#define TRN(name) tr_##name
#include "train/train_ops_decl.h"
#undef TRT
#undef TRN

#define TRT double
#define TRN(name) tr64_##name
#include "train/train_ops_decl.h"
#undef TRT
#undef TRN

#endif
