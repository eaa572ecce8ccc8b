/* The declarations of the training ops for one element type, included twice by train_ops.h
 * (TRT float with TRN(x) tr_x, TRT double with TRN(x) tr64_x); see there for the conventions.
 * No include guard on purpose. */
#if !defined(TRT) || !defined(TRN)
#error "train_ops_decl.h is included by train_ops.h only"
#endif

/* RMSNorm (Zhang & Sennrich 2019): y[t] = x[t] * rstd[t] * w, rstd[t] = 1 / sqrt(mean(x[t]^2) +
 * eps), over T rows of n; rstd[T] is kept for the backward pass. */
void TRN(rms_norm_fwd)(const TRT *x, const TRT *w, uint32_t T, uint32_t n, TRT eps, TRT *y,
                       TRT *rstd);
/* dx += the gradient through the norm (w frozen). */
void TRN(rms_norm_bwd)(const TRT *x, const TRT *w, const TRT *rstd, const TRT *dy, uint32_t T,
                       uint32_t n, TRT *dx);

/* y = x W^T with a frozen W [n_out x n_in]: x [T x n_in], y [T x n_out]. */
void TRN(linear_fwd)(const TRT *x, const TRT *W, uint32_t T, uint32_t n_in, uint32_t n_out, TRT *y);
/* dx += dy W. */
void TRN(linear_bwd)(const TRT *dy, const TRT *W, uint32_t T, uint32_t n_in, uint32_t n_out,
                     TRT *dx);

/* The low-rank term on the same product (Hu et al. 2021, "LoRA"): y += s * B (A x), with
 * A [r x n_in], B [n_out x r] and s from tr_lora_scale; ax [T x r] (= A x) is kept for the
 * backward pass. */
void TRN(lora_fwd)(const TRT *x, const TRT *A, const TRT *B, uint32_t T, uint32_t n_in,
                   uint32_t n_out, uint32_t r, TRT s, TRT *ax, TRT *y);
/* dA += s (B^T dy) x^T, dB += s dy (A x)^T, dx += s A^T B^T dy (each may be NULL: not wanted). */
void TRN(lora_bwd)(const TRT *x, const TRT *A, const TRT *B, const TRT *ax, const TRT *dy,
                   uint32_t T, uint32_t n_in, uint32_t n_out, uint32_t r, TRT s, TRT *dA, TRT *dB,
                   TRT *dx);

/* llama's RoPE (ggml's "normal" mode): in each of the n_head heads of head_dim of a row, pair
 * (2i, 2i+1) of the first n_rot dimensions turns by angle i of the row's position:
 * (x0 c - x1 s, x0 s + x1 c); the other dimensions pass through. cs [T x n_rot] holds the
 * (cos, sin) pairs of each row's position, as eng_rope_cs() writes them. y may be x. */
void TRN(rope_fwd)(const TRT *x, const TRT *cs, uint32_t T, uint32_t n_head, uint32_t head_dim,
                   uint32_t n_rot, TRT *y);
/* dx += the inverse rotation of dy (a rotation's transpose is its inverse). */
void TRN(rope_bwd)(const TRT *dy, const TRT *cs, uint32_t T, uint32_t n_head, uint32_t head_dim,
                   uint32_t n_rot, TRT *dx);

/* Causal softmax attention, scale 1/sqrt(head_dim): out [T x n_head * head_dim]; p [n_head x T
 * x T] gets the probabilities (row i of head h: query i over keys 0..i, zero above), which the
 * backward pass needs. */
void TRN(attn_fwd)(const TRT *q, const TRT *k, const TRT *v, tr_attn_dims d, TRT *out, TRT *p);
/* dq, dk, dv += the gradients through the attention (Vaswani et al. 2017; the softmax's
 * Jacobian applied as p * (dp - sum(p * dp))). */
void TRN(attn_bwd)(const TRT *q, const TRT *k, const TRT *v, const TRT *p, const TRT *dout,
                   tr_attn_dims d, TRT *dq, TRT *dk, TRT *dv);

/* SwiGLU (Shazeer 2020): y = silu(g) * u elementwise over n values, silu(g) = g / (1 + e^-g). */
void TRN(swiglu_fwd)(const TRT *g, const TRT *u, uint64_t n, TRT *y);
/* dg += dy * u * silu'(g), du += dy * silu(g). */
void TRN(swiglu_bwd)(const TRT *g, const TRT *u, const TRT *dy, uint64_t n, TRT *dg, TRT *du);

/* Cross-entropy of logits [T x V] against targets[T] (-1: the position is not counted, e.g. a
 * prompt token of chat data): *loss = mean over counted positions of -log softmax(row)[target]
 * (max-subtracted), 0 when none is counted; dlogits (NULL: not wanted) += (softmax - onehot) / N
 * on counted rows; *n_counted (may be NULL) = N. A target outside [-1, V) is an error, and then
 * nothing is written. */
vkllm_status TRN(cross_entropy)(const TRT *logits, const int32_t *targets, uint32_t T, uint32_t V,
                                TRT *loss, TRT *dlogits, uint32_t *n_counted, core_err *err);

/* Distillation loss against a teacher's top-k: per position t, ids [T x k] (-1: no entry) and
 * probabilities p [T x k] (>= 0, renormalized here to sum 1 over the present entries; a
 * position whose entries sum to 0 is not counted). *loss = mean over counted positions of
 * KL(p || q) = sum_j p_j (log p_j - log q[id_j]), q the student's softmax over all V logits;
 * dlogits (NULL: not wanted) += (q - p) / N with p zero off the top-k. An id outside [-1, V) or a
 * negative or non-finite probability is an error, and then nothing is written. */
vkllm_status TRN(kl_topk)(const TRT *logits, const int32_t *ids, const TRT *p, uint32_t T,
                          uint32_t V, uint32_t k, TRT *loss, TRT *dlogits, uint32_t *n_counted,
                          core_err *err);

/* One AdamW step on n parameters w with gradient g and moments m, v (zero before step 1):
 * w -= lr * wd * w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * w -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps). step counts from 1 (the
 * bias correction's exponent); step 0 or bad hyperparameters are errors (nothing written). */
vkllm_status TRN(adamw_step)(TRT *w, const TRT *g, TRT *m, TRT *v, uint64_t n, uint64_t step,
                             const tr_adamw_hp *hp, core_err *err);
