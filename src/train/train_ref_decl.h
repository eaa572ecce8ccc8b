/* The reference model's types and functions for one element type, included twice by
 * train_ref.h (TRT float with TRN(x) tr_x, TRT double with TRN(x) tr64_x). No include guard on
 * purpose. */
#if !defined(TRT) || !defined(TRN)
#error "train_ref_decl.h is included by train_ref.h only"
#endif

/* One layer's frozen weights, dense and row-major: matrices [n_out x n_in] as in the GGUF file
 * (wq [n_head*head_dim x n_embd], wk and wv [n_head_kv*head_dim x n_embd], wo [n_embd x
 * n_head*head_dim], w_gate and w_up [n_ff x n_embd], w_down [n_embd x n_ff]); norms [n_embd]. */
typedef struct TRN(ref_layer) {
    TRT *attn_norm, *wq, *wk, *wv, *wo;
    TRT *ffn_norm, *w_gate, *w_up, *w_down;
} TRN(ref_layer);

typedef struct TRN(ref_weights) {
    model_config cfg;
    TRT *tok_embd;    /* [n_vocab x n_embd] */
    TRT *output_norm; /* [n_embd] */
    TRT *output;      /* [n_vocab x n_embd]; = tok_embd when tied */
    TRN(ref_layer) * layers;
    float *rope_freqs; /* n_rot / 2 frequency divisors (Llama 3), or NULL */
    const vkllm_allocator *alloc;
    void *mem; /* one block holding all of the above */
} TRN(ref_weights);

/* Allocates zeroed weights for cfg (checked: nonzero sizes, n_head_kv dividing n_head, n_rot
 * even and at most head_dim, no YaRN). tied: output = tok_embd; with_rope_freqs: room for
 * rope_freqs. */
vkllm_status TRN(ref_weights_alloc)(TRN(ref_weights) * w, const model_config *cfg, bool tied,
                                    bool with_rope_freqs, const vkllm_allocator *a, core_err *err);
void TRN(ref_weights_free)(TRN(ref_weights) * w);

/* One adapted matrix: y += s * B (A x), s = tr_lora_scale(set scale, set alpha, rank). */
typedef struct TRN(lora) {
    uint32_t rank; /* 0: no adapter on this matrix */
    TRT *a;        /* [rank x n_in] */
    TRT *b;        /* [n_out x rank] */
    TRT *da, *db;  /* a backward run adds the gradients here (NULL: not wanted) */
} TRN(lora);

/* The adapters of a model: ad[layer * TR_N_TARGETS + target]. */
typedef struct TRN(lora_set) {
    double alpha; /* adapter.lora.alpha (0: s = scale) */
    double scale; /* the user's factor (llama.cpp's --lora-scaled; 1 for --lora) */
    TRN(lora) * ad;
} TRN(lora_set);

/* One sequence at positions 0..n_tokens-1. The loss is cross-entropy when targets is set
 * (targets[t]: the token that should follow position t, -1 not counted), the distillation KL
 * when top_ids is set (top_k entries per position, see tr_kl_topk), none when neither is (a
 * forward pass for the logits: *loss = 0). */
typedef struct TRN(ref_step) {
    const int32_t *tokens;
    uint32_t n_tokens;
    const int32_t *targets;
    const int32_t *top_ids; /* [n_tokens x top_k] */
    const TRT *top_p;       /* [n_tokens x top_k] */
    uint32_t top_k;
    bool backward; /* add d loss / d A and d loss / d B into every adapter's da, db */
    TRT *logits;   /* NULL, or [n_tokens x n_vocab]: the logits of every position */
} TRN(ref_step);

/* Runs the model forward over the step's tokens, computes the loss and, with backward, the
 * adapters' gradients (added, so the caller zeroes them or accumulates over sequences). lora
 * may be NULL (no adapters). Bad input (token ids, targets, teacher entries, adapters without
 * matrices, backward without a loss, both losses) is an error saying what. */
vkllm_status TRN(ref_run)(const TRN(ref_weights) * w, const TRN(lora_set) * lora,
                          const TRN(ref_step) * s, TRT *loss, core_err *err);
