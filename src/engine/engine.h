/* Backend-independent model execution: the weights of a llama model, the op list of one
 * forward step, and the interface every backend implements.
 *
 * The op list is data: the same list drives the CPU backend (interpreted on a thread pool)
 * and the Vulkan backend (recorded into a command buffer). Ops name activation buffers by id,
 * weights by pointer into eng_model; sizes come from the batch at run time, so one list
 * serves every batch size. No backend code and no file parsing here.
 */
#ifndef VKLLM_ENGINE_ENGINE_H
#define VKLLM_ENGINE_ENGINE_H

#include "core/common.h"
#include "core/quant.h"
#include "loader/gguf.h"
#include "loader/model_config.h"

struct eng_lora;     /* lora.h */
struct eng_lora_use; /* lora.h */

/* A weight matrix [n_out rows x n_in columns], rows contiguous, in a GGUF block format.
 * A vector (norm weight) has n_out = 1 and type F32. */
typedef struct eng_weight {
    const char *name; /* tensor name, NUL-terminated copy owned by eng_model */
    uint32_t type;    /* quant_type */
    uint32_t n_in;
    uint32_t n_out;
    uint64_t row_bytes;
    const void *data; /* host copy (the file mapping) */
} eng_weight;

typedef struct eng_layer {
    eng_weight attn_norm, wq, wk, wv, wo;
    eng_weight ffn_norm, w_gate, w_up, w_down;
} eng_layer;

typedef struct eng_model {
    model_config cfg;
    eng_weight tok_embd;
    eng_weight output_norm;
    eng_weight output; /* = tok_embd when the output head is tied */
    bool tied_output;
    const float *rope_freqs; /* optional per-pair frequency divisors (n_rot/2), Llama 3 */
    eng_layer *layers;
    uint64_t n_params;
    uint64_t weight_bytes;
    const vkllm_allocator *alloc;
    char *names; /* storage for weight names */
    /* A stage of a model split over several backends (eng_model_stage): layers [layer0,
     * layer0 + cfg.n_layer) of the whole model, without the token embedding (no_embed: the
     * residual stream comes in through eng_batch.x_in) and/or without the final norm and
     * output head (no_head: it goes out through eng_batch.x_out). A stage shares the whole
     * model's layer array and names and is never passed to eng_model_free. */
    uint32_t layer0;
    bool no_embed, no_head;
} eng_model;

/* Finds and checks every tensor the llama graph needs (shape, type supported, data present). */
vkllm_status eng_model_init(eng_model *m, const gguf_file *f, const model_config *cfg,
                            const vkllm_allocator *a, core_err *err);
void eng_model_free(eng_model *m);

/* A view of layers [l0, l1) of m as a model of its own, for one backend of a split: the
 * embedding only with embed, the final norm and head only with head (a stage may hold no
 * layer, only the head). weight_bytes and n_params count what the stage holds. */
void eng_model_stage(const eng_model *m, uint32_t l0, uint32_t l1, bool embed, bool head,
                     eng_model *out);

/* Bytes of one weight's data. */
static inline uint64_t eng_weight_bytes(const eng_weight *w) {
    return w->row_bytes * w->n_out;
}
/* Bytes of layer l's weights. */
uint64_t eng_layer_bytes(const eng_layer *l);

/* ---- the op list ---- */

/* Activation buffers. Each holds n_tokens rows of its width (see eng_buf_width). */
typedef enum eng_buf {
    EB_X,      /* residual stream [n_embd] */
    EB_XN,     /* normed input of a block [n_embd] */
    EB_Q,      /* [n_head * head_dim] */
    EB_K,      /* [n_head_kv * head_dim] */
    EB_V,      /* [n_head_kv * head_dim] */
    EB_ATT,    /* attention output [n_head * head_dim] */
    EB_GATE,   /* [n_ff] */
    EB_UP,     /* [n_ff] */
    EB_LOGITS, /* [n_vocab], only the batch's n_out output rows */
    EB_COUNT
} eng_buf;

typedef enum eng_op_kind {
    EOP_EMBED,     /* dst[t] = row tokens[t] of w, dequantized */
    EOP_RMS_NORM,  /* dst[t] = src[t] / sqrt(mean(src[t]^2) + eps) * w */
    EOP_MATMUL,    /* dst_i[t] (+)= w_i . src[t], for up to 3 weights sharing src */
    EOP_ROPE,      /* rotate Q and K in place at the batch positions */
    EOP_KV_STORE,  /* K, V rows -> the layer's cache at the batch positions */
    EOP_ATTENTION, /* dst = causal softmax(Q K^T * scale) V over the cache, GQA */
    EOP_SWIGLU,    /* dst = silu(src) * src2 */
} eng_op_kind;

#define ENG_MAX_FUSED 3

typedef struct eng_op {
    eng_op_kind kind;
    uint8_t src, src2;
    uint8_t dst[ENG_MAX_FUSED];
    uint8_t n_w;     /* MATMUL: number of weights */
    bool accumulate; /* MATMUL: add into dst (fused residual add) */
    bool last_rows;  /* only the output rows: the last token of each entry
                      * with out set (the output head) */
    uint16_t layer;
    const eng_weight *w[ENG_MAX_FUSED]; /* EMBED, RMS_NORM, MATMUL */
} eng_op;

typedef struct eng_graph {
    eng_op *ops;
    uint32_t n_ops;
    uint32_t buf_width[EB_COUNT];
} eng_graph;

vkllm_status eng_graph_build(const eng_model *m, eng_graph *g, core_err *err);
void eng_graph_free(eng_graph *g, const vkllm_allocator *a);
const char *eng_op_name(eng_op_kind k);

/* The KV cache is paged: every layer's K and V are arrays of pages of ENG_PAGE tokens, and a
 * sequence's block table names the page of each run of ENG_PAGE positions, so position p of
 * the sequence lives in slot pages[p / ENG_PAGE] * ENG_PAGE + p % ENG_PAGE of every layer. */
#define ENG_PAGE 16

/* How a sequence entry's queries attend. The arithmetic differs between the three (each one
 * is llama.cpp's for that batch shape), so the caller fixes it per entry, and a token gets
 * the same bits whatever else shares the step:
 *  - SPLIT: one query (decode); over a padded cache of 512+ positions the keys are split
 *    into chunks merged in order (llama.cpp's single-token flash attention);
 *  - SERIAL: F16 query and F16 accumulator in one pass (llama.cpp's batches under 64);
 *  - TILED: F32 tiles (llama.cpp's batches of 64+); SERIAL where head_dim % 8 != 0. */
typedef enum eng_attn_mode { ENG_ATTN_SPLIT = 0, ENG_ATTN_SERIAL, ENG_ATTN_TILED } eng_attn_mode;

/* The mode llama.cpp would use for a token that is part of a batch of `chunk` tokens. */
static inline eng_attn_mode eng_attn_mode_for(uint32_t chunk) {
    return chunk <= 1 ? ENG_ATTN_SPLIT : chunk < 64 ? ENG_ATTN_SERIAL : ENG_ATTN_TILED;
}

/* One sequence's part of a step: n_tokens consecutive rows of the batch (following the
 * previous entry's), at positions pos0, pos0 + 1, ... Several entries may name the same
 * sequence (the same block table) at increasing positions: every entry's K and V are stored
 * before any entry attends, layer by layer. */
typedef struct eng_seq {
    uint32_t n_tokens;
    uint32_t pos0;
    bool out;              /* logits (or candidates) of its last token wanted */
    uint16_t out_rows;     /* with out: of its last out_rows tokens (0 or 1: the last one) */
    uint8_t mode;          /* eng_attn_mode; SPLIT with n_tokens > 1 acts as SERIAL */
    const uint32_t *pages; /* block table, covering positions [0, pos0 + n_tokens) */
    /* 0, or 1 + an output row of the step in flight before this one: this one-token entry's
     * token id is that row's argmax (the previous step has top_k 1), which the device copies
     * into this step itself, so this step can be submitted before the previous one is done.
     * Only backends with eng_backend.feeds take it. */
    uint32_t feed;
    /* Its output rows' candidates (top_k >= 1: argmax and top-k) leave out the context's
     * banned ids (eng_ctx_desc.ban): the best ids that are not banned, as if those logits were
     * -inf (ignore_eog). Logits (top_k 0) are written as they are. Only backends with
     * eng_backend.bans take it. */
    bool ban;
    /* LoRA adapters this entry's products add (lora.h), each with its scale; only backends
     * with eng_backend.loras take them. The adapters must be attached to the backend. */
    const struct eng_lora_use *lora;
    uint8_t n_lora;
} eng_seq;

/* Output rows of an entry. */
static inline uint32_t eng_seq_outs(const eng_seq *s) {
    return !s->out ? 0u : s->out_rows > 1 ? s->out_rows : 1u;
}

/* One forward step over one or more sequences. */
typedef struct eng_batch {
    const int32_t *tokens;
    uint32_t n_tokens; /* rows: the sum of the entries' n_tokens */
    const eng_seq *seqs;
    uint32_t n_seqs;
    uint32_t n_out; /* output rows (eng_seq_outs of every entry), in entry and position order */
    /* 0: write n_out rows of logits. k >= 1: write only the k best candidates of each output
     * row, largest first, ties to the lower id (k = 1 is argmax): out_ids[n_out * k] and, when
     * non-NULL, out_vals[n_out * k]. A GPU backend selects on the device, so only k values
     * per row come back. At most ENG_TOP_K_MAX. */
    uint32_t top_k;
    int32_t *out_ids;
    float *out_vals;
    /* The residual stream of a stage of a split model (eng_model.no_embed, no_head): n_tokens
     * rows of n_embd floats. x_in (a stage without the embedding) is read instead of
     * embedding the tokens; x_out (a stage without the head, whose entries then have no
     * outputs) gets the stream after the stage's last layer. NULL for a whole model. */
    const float *x_in;
    float *x_out;
} eng_batch;

/* What a context holds, and the largest step it takes. */
typedef struct eng_ctx_desc {
    uint32_t n_ctx;   /* positions one sequence may reach */
    uint32_t n_batch; /* tokens per step, at most */
    uint32_t n_seqs;  /* entries per step, at most (0 = 1) */
    uint32_t n_pages; /* KV cache pages (0 = enough for one sequence of n_ctx) */
    uint32_t max_out; /* output rows a step may have (0 = n_seqs; at most n_batch) */
    bool kv_q8_0;     /* K and V stored as Q8_0 blocks (head_dim a multiple of 32), not F16 */
    /* Steps driven by a host's time budget (a manual engine): a GPU backend cuts each step
     * into segments and submits, per advance, only what its measured times say finishes by
     * the deadline, so a renderer sharing the device keeps its frames (vk_pace.c). */
    bool paced;
    /* The ids an entry with eng_seq.ban never gets among its candidates: ascending, distinct,
     * in [0, n_vocab) (the model's end-of-generation set, tok_eog_ids, for ignore_eog). The
     * backend keeps its own copy. NULL, 0: none. */
    const int32_t *ban;
    uint32_t n_ban;
} eng_ctx_desc;

/* Bytes of one token's K (or V) row of one layer in the cache. */
static inline uint64_t eng_kv_row_bytes(uint32_t kv_dim, bool q8_0) {
    return q8_0 ? (uint64_t)kv_dim / 32 * 34 : (uint64_t)kv_dim * 2;
}

/* Checks a batch against a context's limits (entries, tokens, outputs, positions, pages,
 * token ids): the common part of every backend's run. */
vkllm_status eng_batch_check(const eng_batch *b, const eng_ctx_desc *cd, uint32_t n_vocab,
                             const char *who, core_err *err);

/* Checks a context's banned ids (eng_ctx_desc.ban): ascending, distinct, below n_vocab. */
vkllm_status eng_ban_check(const eng_ctx_desc *cd, uint32_t n_vocab, const char *who,
                           core_err *err);

/* Block table of a single sequence that owns pages 0, 1, 2, ... (n_ctx positions). */
uint32_t *eng_ident_pages(const vkllm_allocator *a, uint32_t n_ctx);

#define ENG_TOP_K_MAX 128

/* The k best of n logits, largest first, ties to the lower index, NaN never (host version of
 * top_k); ids that do not exist are -1 (value -inf). Leaves out the n_ban ids in ban
 * (ascending; NULL, 0: none), as eng_seq.ban does. */
void eng_select_top_ban(const float *logits, uint32_t n, uint32_t k, const int32_t *ban,
                        uint32_t n_ban, int32_t *ids, float *vals);
static inline void eng_select_top(const float *logits, uint32_t n, uint32_t k, int32_t *ids,
                                  float *vals) {
    eng_select_top_ban(logits, n, k, NULL, 0, ids, vals);
}

/* RoPE angles of one position as (cos, sin) pairs for each of the n_rot / 2 rotated pairs, by
 * the CPU path's formula (the angle built by repeated multiplication in float, as ggml does):
 * both backends use these exact values. */
void eng_rope_cs(const model_config *cfg, const float *rope_freqs, uint32_t pos, float *cs);

/* ---- backend interface ---- */

typedef struct eng_backend eng_backend;
typedef struct eng_ctx eng_ctx; /* a backend's per-session state: KV cache, scratch */

/* Sees the input of every matrix product of a step (importance statistics): rows n_rows of
 * `width` floats at x (row stride width), of which this call covers columns [col0, col1);
 * calls for one op cover disjoint column ranges and may run on several threads at once. */
typedef void (*eng_observe_fn)(void *user, const eng_op *op, const float *x, uint32_t n_rows,
                               uint32_t width, uint32_t col0, uint32_t col1);

typedef struct eng_backend_vtbl {
    void (*destroy)(eng_backend *be);
    /* Make the model's weights usable on this backend (upload, or nothing for the CPU), and
     * release them again (before the model is freed). */
    vkllm_status (*model_attach)(eng_backend *be, const eng_model *m, core_err *err);
    void (*model_detach)(eng_backend *be, const eng_model *m);
    vkllm_status (*ctx_create)(eng_backend *be, const eng_model *m, const eng_graph *g,
                               const eng_ctx_desc *d, eng_ctx **out, core_err *err);
    void (*ctx_destroy)(eng_ctx *c);
    /* Runs the graph for the batch; writes n_out * n_vocab logits (or, with b->top_k, the
     * candidates; logits is then scratch the backend may use or ignore). The same as begin
     * then finish with no deadline. */
    vkllm_status (*run)(eng_ctx *c, const eng_batch *b, float *logits, core_err *err);
    /* The same step in pieces, for a host that must not block: begin starts it (the batch and
     * the buffers must stay valid until it is done); each advance works on it until the step
     * is done (*done = true, the results written) or core_time_s() passes deadline, then
     * returns. The CPU backend stops between ops, a GPU backend returns while the device
     * works. deadline <= 0: until done. */
    vkllm_status (*begin)(eng_ctx *c, const eng_batch *b, float *logits, core_err *err);
    vkllm_status (*advance)(eng_ctx *c, double deadline, bool *done, core_err *err);
    /* Optional: prepares, without running anything, what the context's steps of any shape
     * will need (a GPU backend builds every pipeline they use), so that no later step pays
     * for it. NULL: nothing to prepare. */
    vkllm_status (*warmup)(eng_ctx *c, core_err *err);
    /* Optional: from now on fn sees the context's matrix-product inputs (fn NULL: no more).
     * NULL: the backend cannot show them. */
    void (*observe)(eng_ctx *c, eng_observe_fn fn, void *user);
    /* Measurement (vkllm_bench_bandwidth, vkllm_bench_op): read bandwidth of the backend's
     * memory over about `seconds`, and the time of one op. bench_op gets a checked desc with
     * defaults filled in and the weight type resolved (w_type); it sets out->calls and
     * out->us only (the caller derives bytes, flops and rates). */
    vkllm_status (*bandwidth)(eng_backend *be, double seconds, double *gbps, uint64_t *bytes,
                              core_err *err);
    vkllm_status (*bench_op)(eng_backend *be, const vkllm_bench_op_desc *d, uint32_t w_type,
                             vkllm_bench_op_result *out, core_err *err);
    /* Memory the backend holds now: device memory allocated (Vulkan), weights and context
     * buffers counted (CPU). */
    uint64_t (*held)(const eng_backend *be);
    /* Optional: makes a LoRA adapter (lora.h) usable in this backend's steps (a GPU backend
     * uploads its tensors), and releases it once no step in flight uses it. NULL: the backend
     * reads adapters from host memory as they are. */
    vkllm_status (*lora_attach)(eng_backend *be, const struct eng_lora *l, core_err *err);
    void (*lora_detach)(eng_backend *be, const struct eng_lora *l);
} eng_backend_vtbl;

/* Inputs for bench_op (engine/bench.c), the same on every backend. */
#define ENG_BENCH_MAX_BYTES (1ull << 30) /* weight copies, at most (vkllm.h) */
#define ENG_BENCH_MAX_COPIES 8192        /* distinct weight copies cycled through, at most */
/* rows x cols of w_type (a type with a reference quantizer) at data: a few rows of uniform
 * values in [-1/sqrt(cols), 1/sqrt(cols)], quantized by src/core, repeated down the matrix. */
vkllm_status eng_bench_fill_matrix(const vkllm_allocator *a, uint32_t w_type, uint32_t rows,
                                   uint32_t cols, void *data, core_err *err);
/* n uniform floats in [-1, 1), and n F16 values of magnitude [1/4, 2) of either sign. */
void eng_bench_fill_f32(float *x, uint64_t n, uint64_t seed);
void eng_bench_fill_f16(uint16_t *x, uint64_t n, uint64_t seed);

struct eng_backend {
    const eng_backend_vtbl *vt;
    bool feeds; /* takes a second step while one is in flight, with eng_seq.feed entries */
    bool bans;  /* leaves the banned ids out of candidates (eng_seq.ban, eng_ctx_desc.ban) */
    bool loras; /* adds entries' LoRA adapters (eng_seq.lora) */
    char name[128];
    vkllm_device_info info; /* the device in use (tier: the tier in use), set at creation */
};

#endif
