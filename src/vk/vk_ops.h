/* The Vulkan ops: one module per kernel family, each with its pipelines for the device's tier
 * and functions that record its dispatches into a vk_rec. vk_backend.c strings them together
 * in the order of the engine's op list; tests/test_vk_ops.c runs each against the CPU
 * reference.
 *
 * Conventions shared by every op (and by shaders/common.glsl):
 *  - activations are F32 rows; a buffer of n rows of width w has row t at float t * stride;
 *  - per-step values (token ids, positions, cache slots, block tables) live in the step
 *    parameter buffer (vk_step_params), read by the shaders, so a recorded command buffer can
 *    be replayed for the next step of the same shape with only that buffer rewritten;
 *  - shapes that are fixed for a recording go in push constants;
 *  - a weight larger than the device's buffer limit is split by rows into parts, each its own
 *    binding; the matmul and embedding record one dispatch per part.
 */
#ifndef VKLLM_VK_VK_OPS_H
#define VKLLM_VK_VK_OPS_H

#include "vk/vk.h"

/* The step parameter buffer: what changes from one step to the next of the same shape, so a
 * recorded command buffer replays with only this buffer rewritten. A header, then words:
 *  - per batch row t, at tok_off + 4 t: token id, position, KV cache slot, entry index;
 *  - per entry e, at seq_off + 4 e: pos0, n_tokens, first batch row, block table start (an
 *    index into d[]);
 *  - at out_off: the n_out output rows (the last row of each entry with an output);
 *  - at ban_off: per output row, 1 when its candidates leave out the banned ids (eng_seq.ban);
 *  - at lst_off: the context's n_ban banned ids, ascending (eng_ctx_desc.ban), written once by
 *    vk_step_params_init;
 *  - at tab_off: the entries' block tables, each covering its positions [0, pos0 + n_tokens).
 * The offsets are fixed by the capacities the buffer was laid out for (vk_step_params_init).
 * Cache slot of position j of an entry: d[table + j / VK_PAGE] * VK_PAGE + j % VK_PAGE.
 * Mirrored by shaders/common.glsl (PARAMS_BINDING). */
#define VK_PAGE 16 /* positions per KV cache page (ENG_PAGE) */
typedef struct vk_step_params {
    uint32_t n_tokens, n_seqs, n_out, n_table; /* n_table: block table words in use */
    uint32_t tok_off, seq_off, out_off, tab_off;
    uint32_t ban_off, lst_off, n_ban;
    uint32_t d[];
} vk_step_params;

/* One entry for vk_step_params_write: n_tokens rows at positions pos0.., its block table
 * (NULL: the identity, page i = i), its output rows, and whether they leave out the banned
 * ids. */
typedef struct vk_step_seq {
    uint32_t n_tokens, pos0;
    uint32_t n_out; /* output rows: its last n_out tokens */
    const uint32_t *pages;
    bool ban;
} vk_step_seq;

/* Bytes of a parameter buffer for steps of up to max_tokens rows and max_seqs entries whose
 * positions stay below max_pos, with n_ban banned ids. */
uint64_t vk_step_params_bytes(uint32_t max_tokens, uint32_t max_seqs, uint32_t max_pos,
                              uint32_t n_ban);
/* Lays out an empty buffer (all counts 0) for those capacities, with the banned ids (ascending;
 * NULL, 0: none). */
void vk_step_params_init(vk_step_params *p, uint32_t max_tokens, uint32_t max_seqs,
                         const int32_t *ban, uint32_t n_ban);
/* Fills in one step: tokens[] (NULL: ids 0) in entry order. The caller has checked it against
 * the capacities (eng_batch_check). */
void vk_step_params_write(vk_step_params *p, const int32_t *tokens, const vk_step_seq *seqs,
                          uint32_t n_seqs);

#define VK_MAX_PARTS 16

/* The best embedded variant of a shader stem for the device's tier: "stem_tN" with the
 * highest N <= tier; and its pipeline, deferred (vk_pipe_defer): built at its first dispatch. */
vkllm_status vk_pick_shader(const vk_dev *d, const char *stem, char *out, size_t cap);
vkllm_status vk_pipe_for_tier(vk_dev *d, const char *stem, uint32_t n_bindings,
                              const uint32_t local_size[3], const vk_spec *spec, vk_pipe *out,
                              core_err *err);

/* A weight matrix on the device: [n_out rows x n_in], rows contiguous, in a GGUF block
 * format, possibly split by rows into parts (each part under the buffer limit). */
typedef struct vk_weight {
    uint32_t type, n_in, n_out;
    uint64_t row_bytes;
    uint32_t n_parts;
    struct {
        vk_slice s;
        uint32_t row0, n_rows;
    } part[VK_MAX_PARTS];
} vk_weight;

/* Uploads a [n_out x n_in] matrix (rows row_bytes apart in data) from arena a, split by rows
 * when it does not fit one buffer. name is for error messages. */
vkllm_status vk_weight_upload(vk_dev *d, vk_arena *a, const char *name, uint32_t type,
                              uint32_t n_in, uint32_t n_out, uint64_t row_bytes, const void *data,
                              vk_weight *out, core_err *err);

/* Activation view: a slice of F32 rows. */
typedef struct vk_act {
    vk_slice s;
    uint32_t stride; /* floats between rows */
} vk_act;

/* ---- matrix products and embedding (vk_ops_mm.c; shaders/quant.glsl, matvec.comp,
 * matmul.comp, quantize.comp, embed.comp) ---- */

typedef struct vk_mm vk_mm; /* pipelines for every supported weight type at one tier */

vkllm_status vk_mm_create(vk_dev *d, vk_mm **out, core_err *err);
void vk_mm_destroy(vk_mm *m);
/* Kernel shapes. vk_mm_create picks them for the device; tests and benchmarks may set others
 * (pipelines already built are dropped: set before recording). */
typedef struct vk_mm_tuning {
    uint32_t mv_threads; /* matrix-vector workgroup size, a power of two >= 8 */
    uint32_t mv_rows;    /* rows per workgroup (mv_lane_rows: per thread), at most 16 */
    uint32_t mv_acc;     /* rows x tokens per thread at most, <= 256 (fewer rows for more
                          * tokens) */
    uint32_t mv_tokens;  /* tokens per matrix-vector tile, 1..16 */
    bool mv_lane_rows;   /* a thread per row, no reduction: for CPU drivers */
    bool tiled;          /* n_tok > mv_tokens: the shared-memory tiled kernel, else
                          * matrix-vector kernels over tiles of mv_tokens */
    uint32_t tile[4];    /* tiled kernel: rows and tokens per workgroup, per thread */
    bool plain_fma;      /* relaxed products: the kernels' fma() is the device's own even
                          * where it is not fused (vk_dev.fma_exact: a multiply and an add
                          * there), instead of the emulation that gives the CPU path's bits */
} vk_mm_tuning;
vk_mm_tuning vk_mm_get_tuning(const vk_mm *m);
vkllm_status vk_mm_set_tuning(vk_mm *m, const vk_mm_tuning *t, core_err *err);
/* Whether a weight type has Vulkan kernels: matrix products, and the embedding lookup. */
bool vk_mm_supports(uint32_t w_type);
bool vk_embed_supports(uint32_t w_type);
/* Bytes of one row of n_in activations quantized for weight type w_type (its vec_dot_type:
 * Q8_0, Q8_1, Q8_K, F16, BF16 or F32), in the device layout of shaders/quant.glsl: per 32
 * elements 48 bytes for Q8_0/Q8_1, per 256 336 bytes for Q8_K, 4 per element for the float
 * types (the rounded value as a float). 0 for an unsupported type or a partial block. */
uint64_t vk_mm_act_row_bytes(uint32_t w_type, uint32_t n_in);
/* x (n_tok rows of n_in floats) -> xq in w_type's activation format, rows
 * vk_mm_act_row_bytes apart; the values of the CPU path's quantizers (src/core/quant.c). For
 * F32 weights this is a copy: rows already n_in floats apart may be passed as xq directly. */
vkllm_status vk_mm_quantize(vk_rec *r, vk_mm *m, uint32_t w_type, vk_act x, uint32_t n_in,
                            uint32_t n_tok, vk_slice xq, core_err *err);
/* y[t][r] (+)= w[r] . x[t] for t < n_tok, every row r of w; xq as vk_mm_quantize wrote it.
 * n_tok up to mv_tokens (8 on GPUs, 16 on CPU drivers) records a matrix-vector kernel, more the
 * tiled matrix-matrix kernel (GPUs) or matrix-vector kernels over tiles of mv_tokens (CPU
 * drivers); see vk_mm_tuning. */
vkllm_status vk_mm_matmul(vk_rec *r, vk_mm *m, const vk_weight *w, vk_slice xq, uint32_t n_tok,
                          vk_act y, bool accumulate, core_err *err);
/* Embedding lookup: dst[t] = row (the token id of batch row t in params) of w, dequantized to
 * F32 exactly as src/core's dequantizer does (ids outside [0, n_out) give a zero row). */
vkllm_status vk_embed(vk_rec *r, vk_mm *m, const vk_weight *w, vk_slice params, vk_act dst,
                      uint32_t n_tok, core_err *err);

/* ---- attention (vk_ops_attn.c; shaders/attn.glsl, rope_store.comp, attn_decode.comp,
 * attn_merge.comp, attn_prefill.comp, attn_fma_probe.comp) ----
 * The CPU path's arithmetic (src/cpu/cpu_backend.c), bit for bit where the device's fma()
 * is fused or emulated (see vk_attn_create), in the three modes of engine.h eng_attn_mode:
 * SERIAL the F16-accumulator online softmax, SPLIT the same for a single query, over a padded
 * cache length >= 512 with the keys split into n_splits chunks merged in order, TILED the
 * tiled F32 path. The KV cache is paged: every position's slot comes from its entry's block
 * table in the step parameters (vk_step_params). */

typedef struct vk_attn vk_attn;

typedef struct vk_attn_shape {
    uint32_t n_head, n_head_kv, head_dim, n_rot; /* head_dim even, <= 256 (<= 128 for
                                                    TILED); n_rot even */
    uint32_t n_ctx;    /* positions a sequence reaches (RoPE table rows; llama.cpp's padding) */
    uint32_t n_slots;  /* cache slots per layer (pages * VK_PAGE) */
    uint32_t n_splits; /* SPLIT over a long cache: chunks merged in order (>= 1); the CPU
                          path's thread count gives the CPU path's bits */
} vk_attn_shape;

/* Consecutive batch rows that attend the same way: SPLIT rows are each a one-token entry,
 * SERIAL rows may belong to several entries (each row's entry is in the parameters), a TILED
 * run is exactly one entry (entry: its index) and needs head_dim % 8 == 0. */
typedef enum vk_attn_kind { VK_ATTN_SPLIT = 0, VK_ATTN_SERIAL, VK_ATTN_TILED } vk_attn_kind;
typedef struct vk_attn_run {
    uint32_t kind, row0, n_rows, entry;
} vk_attn_run;

/* Builds the pipelines; runs one probe dispatch to learn whether fma() is fused on the
 * device (llvmpipe's is not) and if not, builds the kernels with an exact emulation. */
vkllm_status vk_attn_create(vk_dev *d, vk_attn **out, core_err *err);
void vk_attn_destroy(vk_attn *a);
/* Whether SERIAL and SPLIT runs use attn_lane.comp (one invocation per head and row, no
 * shared memory: CPU drivers, the default there) or attn_decode.comp (a workgroup per head
 * and row: GPUs); both give the same bits. Tests set it to run both on one device. */
bool vk_attn_get_lane(const vk_attn *a);
void vk_attn_set_lane(vk_attn *a, bool lane);
/* Scratch bytes vk_attn_attend needs for steps of up to max_seqs entries: the split-K
 * partials of each one-token entry, [entry][n_head][n_splits] records of (M, S,
 * acc[head_dim]) floats. */
uint64_t vk_attn_scratch_bytes(const vk_attn_shape *s, uint32_t max_seqs);
/* RoPE on the q and k rows of the batch in place, each at its own position, then k and v
 * rows stored as F16 into this layer's caches ([n_slots][n_head_kv * head_dim]) at each row's
 * slot. rope_cs holds cos, sin pairs per position: [n_ctx][n_rot] floats (host-computed with
 * the CPU path's formula). */
vkllm_status vk_attn_rope_store(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                                vk_slice rope_cs, vk_act q, vk_act k, vk_act v, vk_slice kcache,
                                vk_slice vcache, uint32_t n_tok, bool store, core_err *err);
/* A Q8_0 cache (the CPU path's layout: 34-byte blocks, eng_kv_row_bytes): K and V rows that
 * vk_mm_quantize turned into Q8_0 (xk, xv: x_row_words words a row) stored at each row's slot,
 * after vk_attn_rope_store with store false. Needs head_dim % 64 == 0 (whole words per head). */
uint64_t vk_attn_q8_row_bytes(const vk_attn_shape *s);
vkllm_status vk_attn_kv_pack_q8(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                                vk_slice xk, vk_slice xv, uint32_t x_row_words, vk_slice kcache,
                                vk_slice vcache, uint32_t n_tok, core_err *err);
/* Attention of the n_tok batch rows over a Q8_0 cache, the CPU path's attn_head_q8 arithmetic
 * (one for every mode). */
vkllm_status vk_attn_attend_q8(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                               vk_act q, vk_slice kcache, vk_slice vcache, vk_act out,
                               uint32_t n_tok, core_err *err);
/* out[t] = causal softmax(q[t] k^T / sqrt(hd)) v over positions [0, pos(t)] of row t's
 * sequence, GQA, for the rows of every run. Records one dispatch per run without barriers
 * between them (they write disjoint rows and scratch records), then, if any run is SPLIT, a
 * barrier and the merges. Grids depend on the runs only: a recording replays at any
 * positions and block tables. */
vkllm_status vk_attn_attend(vk_rec *r, vk_attn *a, const vk_attn_shape *s, vk_slice params,
                            vk_act q, vk_slice kcache, vk_slice vcache, vk_act out,
                            vk_slice scratch, const vk_attn_run *runs, uint32_t n_runs,
                            core_err *err);

/* ---- element-wise and row ops (vk_ops_misc.c; shaders/rms_norm.comp, swiglu.comp) ---- */

typedef struct vk_misc vk_misc;

vkllm_status vk_misc_create(vk_dev *d, vk_misc **out, core_err *err);
void vk_misc_destroy(vk_misc *m);
/* Whether RMSNorm runs a row per invocation (CPU drivers, the default there) or a row per
 * workgroup (GPUs); the same bits. Tests set it to run both on one device. */
bool vk_misc_get_lane(const vk_misc *m);
void vk_misc_set_lane(vk_misc *m, bool lane);
/* dst[i] = src[j] / sqrt(mean(src[j]^2) + eps) * w, i < n, for row j = src_row0 + i, or with
 * gather (a vk_step_params slice) j = the step's output row i. */
vkllm_status vk_rms_norm(vk_rec *r, vk_misc *m, vk_act src, uint32_t src_row0,
                         const vk_slice *gather, vk_slice w, vk_act dst, uint32_t n, uint32_t width,
                         float eps, core_err *err);
/* dst = silu(gate) * up, n rows of width. */
vkllm_status vk_swiglu(vk_rec *r, vk_misc *m, vk_act gate, vk_act up, vk_act dst, uint32_t n,
                       uint32_t width, core_err *err);
/* ---- sampling on the device (vk_ops_sample.c, shaders/argmax.comp, topk.comp) ---- */

typedef struct vk_sample vk_sample;

vkllm_status vk_sample_create(vk_dev *d, vk_sample **out, core_err *err);
void vk_sample_destroy(vk_sample *s);
/* Order for both: larger first, -0 == +0, the lower index on ties, a NaN below every number
 * (the CPU sampler's order; a NaN is only chosen when the rest are NaN too).
 * Banned ids: with params (a vk_step_params whose n_out rows are these n rows), row i leaves
 * out the buffer's banned ids when its flag (ban_off + i) is set, as eng_select_top_ban does.
 * NULL: nothing is left out.
 * For each of n rows of width logits: the index of the largest (lowest index on ties) into
 * ids[row] (uint32); UINT32_MAX when every id of the row is banned. */
vkllm_status vk_argmax(vk_rec *r, vk_sample *m, vk_act logits, uint32_t n, uint32_t width,
                       const vk_slice *params, vk_slice ids, core_err *err);
/* For each row: the k largest logits, largest first (ties: lower index first), as k ids into
 * ids[row * k] and k values into vals[row * k] (the logits' bits). 1 <= k <= VK_TOPK_MAX; past
 * a row of fewer than k logits, ids are UINT32_MAX and values -inf. Wide rows go through
 * scratch (records two dispatches with a barrier between). */
#define VK_TOPK_MAX 128
vkllm_status vk_topk(vk_rec *r, vk_sample *m, vk_act logits, uint32_t n, uint32_t width, uint32_t k,
                     const vk_slice *params, vk_slice ids, vk_slice vals, vk_slice scratch,
                     core_err *err);
/* Scratch for vk_topk on up to n rows of width with up to k candidates, on any device (0 when
 * none is needed: any slice will do). */
uint64_t vk_topk_scratch_bytes(uint32_t n, uint32_t width, uint32_t k);

#endif
