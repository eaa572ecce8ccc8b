/* The reference forward and backward pass of a whole llama model over one sequence (teacher
 * forcing), with frozen dense weights and trainable LoRA adapters: the numbers a LoRA training
 * step must produce, against which the fast trainers are checked (issue 21).
 *
 * It follows the llama graph of src/engine/graph.c op for op (embedding, per layer: RMSNorm,
 * Q/K/V products, RoPE on Q and K, causal GQA attention, output product + residual, RMSNorm,
 * gate/up products, SwiGLU, down product + residual; final RMSNorm and output head), in plain
 * dense arithmetic from train_ops.h, with the adapters' low-rank terms added to the products
 * they adapt (llama.cpp's semantics). The loss is cross-entropy against targets or the KL
 * divergence from a teacher's top-k (distillation); the backward pass gives the gradient of
 * every adapter's A and B. Weights are never trained here, so there are no weight gradients.
 *
 * Like the ops, everything exists for float (tr_*) and double (tr64_*), declared once in
 * train_ref_decl.h. Filling the float weights from a loaded model is tr_ref_weights_from_engine
 * (every tensor dequantized); the double weights are widened from the float ones.
 * A run allocates its own scratch and only reads the weights, so runs may share them. It keeps
 * every layer's activations and attention probabilities for the backward pass, about
 * n_layer * T * (4 n_embd + 2 (n_head + n_head_kv) head_dim + 3 n_ff + n_head T) values: plain,
 * and quadratic in T, as a reference may be.
 */
#ifndef VKLLM_TRAIN_TRAIN_REF_H
#define VKLLM_TRAIN_TRAIN_REF_H

#include "engine/engine.h"
#include "train/train_ops.h"

/* The matrices of a layer an adapter can sit on (llama.cpp's names: attn_q, attn_k, attn_v,
 * attn_output, ffn_gate, ffn_up, ffn_down). */
typedef enum tr_target { TR_Q, TR_K, TR_V, TR_O, TR_GATE, TR_UP, TR_DOWN, TR_N_TARGETS } tr_target;

/* "q", "k", "v", "o", "gate", "up", "down" (issue 21's --targets names); "?" otherwise. */
const char *tr_target_name(tr_target t);
/* The shape [n_out x n_in] of a target's weight in a model of config c. */
void tr_target_shape(const model_config *c, tr_target t, uint32_t *n_out, uint32_t *n_in);

#define TRT float
#define TRN(name) tr_##name
#include "train/train_ref_decl.h"
#undef TRT
#undef TRN

#define TRT double
#define TRN(name) tr64_##name
#include "train/train_ref_decl.h"
#undef TRT
#undef TRN

/* Allocates w for m's config and dequantizes every tensor of m into it (the type's to-float
 * from src/core/quant.h; a tied output head shares the embedding; rope_freqs copied). m must be
 * a whole model, not a stage of a split one. */
vkllm_status tr_ref_weights_from_engine(tr_ref_weights *w, const eng_model *m,
                                        const vkllm_allocator *a, core_err *err);
/* Allocates out with in's config and copies every weight widened to double. */
vkllm_status tr64_ref_weights_widen(tr64_ref_weights *out, const tr_ref_weights *in,
                                    const vkllm_allocator *a, core_err *err);

#endif
