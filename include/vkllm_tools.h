/* vkllm's model tools and measurement calls: synthetic models, quantization as llama-quantize
 * does it, importance matrices, perplexity and KL divergence, pruning, bandwidth and kernel
 * timings. Part of the public API: vkllm.h includes this file (include vkllm.h, not this one);
 * the "Threads" and "versions and the ABI" rules at the top of vkllm.h hold here too. Kept
 * apart because a host that embeds the runtime needs none of it. */
#ifndef VKLLM_TOOLS_H
#define VKLLM_TOOLS_H

#include "vkllm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- synthetic models, for benchmarks ---- */

/* A GGUF file of a known model's shape (llama architecture) with pseudo-random weights and a
 * real tokenizer, which vkllm and llama.cpp both load: speed does not depend on the weights'
 * values, so any device can be measured at any size without downloading the model. */
typedef struct vkllm_synth_desc {
    uint32_t struct_size;   /* sizeof(vkllm_synth_desc), or 0 (see "versions and the ABI") */
    const char *shape;      /* one of vkllm_synth_shapes(): "smollm2-135m", "llama-3.2-1b", ... */
    const char *type;       /* type of the matrices (token embedding, attention, FFN, output):
                             * "q4_0" (default), "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k",
                             * "q6_k", "f16", "bf16" or "f32"; norms are always f32 */
    const char *vocab_path; /* GGUF whose tokenizer.* keys the file takes (a model or one of
                             * llama.cpp's vocab-only files); its token count is the model's */
    const char *out_path;
    uint64_t seed; /* 0 = 1 */
    const vkllm_allocator *allocator;
} vkllm_synth_desc;

/* Writes the file. On failure err (err_cap bytes; may be NULL) gets a message naming the
 * problem: unknown shape or type, rows that are not a multiple of the type's block size, an
 * unreadable vocabulary, a write error. */
VKLLM_API vkllm_status vkllm_synth(const vkllm_synth_desc *desc, char *err, size_t err_cap);
/* The shapes vkllm_synth knows, NULL-terminated; for each, the vocabulary it was made with
 * (a hint for callers: "SmolLM2" or "llama-bpe" or "llama-spm"). */
VKLLM_API const char *const *vkllm_synth_shapes(void);
VKLLM_API const char *vkllm_synth_shape_vocab(const char *shape);
/* A shape's dimensions (name, architecture, n_embd, n_ff, n_layer, n_head, n_head_kv,
 * n_ctx_train, and n_vocab of the vocabulary it is usually made with); the other fields are
 * zero. false for an unknown shape. */
VKLLM_API bool vkllm_synth_shape_info(const char *shape, vkllm_model_info *out);

/* ---- model tools: quantization, importance matrix, perplexity ---------------------------- */

/* Progress of a long tool run: done of total units (tensors, chunks), on the calling thread. */
typedef void (*vkllm_progress_fn)(void *user, uint64_t done, uint64_t total);

/* What vkllm_quantize did, for a summary line. */
typedef struct vkllm_quantize_result {
    uint32_t struct_size; /* sizeof(vkllm_quantize_result), or 0 (see "versions and the ABI") */
    uint64_t n_tensors;
    uint64_t n_converted; /* tensors whose type changed (the others are copied) */
    uint64_t n_fallback;  /* tensors given a smaller-block type: rows not a multiple of 256 */
    uint64_t n_elements;  /* weights in the model (bits per weight = 8 * bytes / n_elements) */
    uint64_t bytes_in, bytes_out; /* tensor data, without padding */
} vkllm_quantize_result;

/* Quantizes a GGUF model as llama-quantize does: the same per-tensor type rules for a preset
 * (for the llama family; mixture-of-experts models are refused) and the same quantizers, so
 * the output file is byte-identical to llama-quantize's for the same input, type and
 * importance matrix, given the same imatrix_path string (llama-quantize records it in the
 * file's quantize.imatrix.file key). Input: F32, F16 or BF16 matrices, or quantized ones with
 * allow_requantize. Errors (err gets the message): VKLLM_ERR_INVALID_ARG for an unknown type,
 * a file without tensors, quantized input without allow_requantize, an importance matrix whose
 * sizes do not match the model; VKLLM_ERR_BAD_FILE / VKLLM_ERR_IO for unreadable or malformed
 * input and unwritable output. The output is never left half written. */
typedef struct vkllm_quantize_desc {
    uint32_t struct_size; /* sizeof(vkllm_quantize_desc), or 0 (see "versions and the ABI") */
    const char *in_path;
    const char *out_path; /* written under a temporary name, renamed when complete */
    /* A type or one of llama-quantize's presets, case-insensitive: "q4_0", "q4_1", "q5_0",
     * "q5_1", "q8_0", "q4_k_s", "q4_k_m" (= "q4_k"), "q5_k_s", "q5_k_m" (= "q5_k"), "q6_k",
     * "f16", "bf16", "f32". */
    const char *type;
    const char *imatrix_path;   /* llama-imatrix's or vkllm_imatrix's file, or NULL */
    bool allow_requantize;      /* accept quantized input (dequantized first) */
    uint32_t n_threads;         /* 0 = all cores */
    vkllm_progress_fn progress; /* per tensor converted; may be NULL */
    void *progress_user;
    const vkllm_allocator *allocator;
    vkllm_quantize_result *result; /* may be NULL; filled on success */
} vkllm_quantize_desc;
VKLLM_API vkllm_status vkllm_quantize(const vkllm_quantize_desc *desc, char *err, size_t err_cap);

/* Perplexity of a model over a text, as llama-perplexity measures it: the text is tokenized
 * (with BOS where the vocabulary adds one), cut into n_chunks non-overlapping chunks of n_ctx
 * tokens whose first token is BOS, and each chunk's second half is scored. Optionally saves
 * the scored log-probabilities (kl_base_out) or compares against a saved file (kl_base_in):
 * mean KL divergence base -> this model and top-1 agreement, as llama-perplexity's KL mode. */
typedef struct vkllm_perplexity_desc {
    uint32_t struct_size; /* sizeof(vkllm_perplexity_desc), or 0 (see "versions and the ABI") */
    const char *text;
    size_t text_len;
    uint32_t n_ctx;    /* tokens per chunk (0 = 512) */
    uint32_t n_chunks; /* 0 = as many as the text holds */
    uint32_t n_batch;  /* tokens per step (0 = n_ctx) */
    const char *kl_base_out;
    const char *kl_base_in;
    vkllm_progress_fn progress; /* per chunk; may be NULL */
    void *progress_user;
    /* LoRA adapters of the model (appended: set struct_size): the figure with them applied */
    const vkllm_lora *lora;
    size_t n_lora;
} vkllm_perplexity_desc;
typedef struct vkllm_perplexity_result {
    uint32_t struct_size; /* sizeof(vkllm_perplexity_result), or 0 (see "versions and the ABI") */
    double ppl, ppl_err;  /* exp(mean negative log-likelihood), and its standard error */
    uint32_t n_chunks;
    uint64_t n_scored; /* tokens scored */
    /* with kl_base_in: */
    double kl_mean, kl_err; /* mean KL divergence (nats) and its standard error */
    double top1_same;       /* fraction of scored tokens whose argmax equals the base's */
    double ppl_base;        /* the base model's perplexity on the same tokens */
} vkllm_perplexity_result;
VKLLM_API vkllm_status vkllm_perplexity(vkllm_model *model, const vkllm_perplexity_desc *desc,
                                        vkllm_perplexity_result *out);

/* The importance matrix of a model over a calibration text, as llama-imatrix collects it: for
 * every layer matrix, the sum over the text's tokens of each input column's square, and the
 * token count, written in llama-imatrix's GGUF format (vkllm_quantize and llama-quantize read
 * it; vkllm prune's activation-aware methods use it). The text is cut into chunks as
 * vkllm_perplexity cuts it. Runs on the CPU backend (a runtime on another device fails with
 * VKLLM_ERR_UNSUPPORTED). */
typedef struct vkllm_imatrix_desc {
    uint32_t struct_size; /* sizeof(vkllm_imatrix_desc), or 0 (see "versions and the ABI") */
    const char *text;
    size_t text_len;
    const char *dataset;  /* the text's name, recorded in the file (e.g. its path); NULL: "text" */
    const char *out_path; /* written under a temporary name, renamed when complete */
    uint32_t n_ctx;       /* tokens per chunk (0 = 512) */
    uint32_t n_chunks;    /* 0 = as many as the text holds */
    uint32_t n_batch;     /* tokens per step (0 = n_ctx) */
    bool process_output;  /* the output head's input too, where the model has its own
                           * output.weight (as llama-imatrix --process-output: a head tied to
                           * the token embedding is left out) */
    vkllm_progress_fn progress; /* per chunk; may be NULL */
    void *progress_user;
} vkllm_imatrix_desc;
VKLLM_API vkllm_status vkllm_imatrix(vkllm_model *model, const vkllm_imatrix_desc *desc);

/* Prunes a model's layer matrices (attention and FFN; the embedding, the head and the norms
 * are copied) and writes the result (docs/quality.md, docs/sparse.md). Methods: "magnitude"
 * |w|, "wanda" |w| * sqrt(mean x^2) from an importance matrix, or "sparsegpt" (Frantar &
 * Alistarh 2023: second-order choice with updates of the kept weights, from each input's
 * Hessian over a calibration text; unstructured and N:M patterns). Patterns: "2:4" and "4:8"
 * (N of every M consecutive inputs kept), "unstructured" (a fraction of each matrix, of each
 * row with wanda), "ffn" (whole FFN channels) and "heads" (whole KV head groups with their
 * query heads); the structured ones write a smaller dense model llama.cpp loads. Formats:
 * "dense" keeps the zeros in a GGUF type; "packed" (2:4 only, its default) writes vkllm's
 * S24 formats, which llama.cpp refuses with its own error. */
typedef struct vkllm_prune_result {
    uint32_t struct_size; /* sizeof(vkllm_prune_result), or 0 (see "versions and the ABI") */
    uint32_t n_matrices;  /* matrices written pruned */
    uint64_t n_weights;   /* their weights, after a structured cut */
    uint64_t n_zero;      /* of which zero */
    uint64_t bytes_in, bytes_out; /* their data in the input and the output */
    /* sparsegpt: the calibration used (chunks of calib_ctx tokens), the seconds its passes
     * through the model took (with the Hessian sums) and those the pruning itself took */
    uint32_t calib_chunks, calib_ctx;
    double calib_seconds, solve_seconds;
} vkllm_prune_result;
typedef struct vkllm_prune_desc {
    uint32_t struct_size; /* sizeof(vkllm_prune_desc), or 0 (see "versions and the ABI") */
    const char *in_path;
    const char *out_path;       /* written under a temporary name, renamed when complete */
    const char *method;         /* "magnitude" (default), "wanda" or "sparsegpt" */
    const char *pattern;        /* "2:4" (default), "4:8", "unstructured", "ffn", "heads" */
    float sparsity;             /* the fraction removed, in (0, 1); 0: 0.5 for "unstructured",
                                 * 0.25 for "ffn" and "heads"; N:M patterns remove half */
    const char *imatrix_path;   /* wanda: vkllm_imatrix's or llama-imatrix's file */
    const char *format;         /* "packed" (2:4's default) or "dense" (the others') */
    const char *type;           /* packed: "s24_q4" (default) or "s24_q8"; dense: the pruned
                                 * matrices' type, "q8_0" by default (any type with exact zeros
                                 * keeps the pattern: q4_0, q5_0, q8_0, q6_k, f16, bf16, f32) */
    vkllm_progress_fn progress; /* per tensor; may be NULL */
    void *progress_user;
    const vkllm_allocator *allocator;
    vkllm_prune_result *result; /* may be NULL; filled on success */
    /* sparsegpt: the calibration text itself (an importance matrix holds only the diagonal of
     * the Hessians it needs), run through the model on a CPU runtime of its own, one layer at a
     * time with the layers before it already pruned; imatrix_path must be NULL */
    const char *calib_text;
    size_t calib_text_len;
    uint32_t calib_ctx;    /* tokens per chunk (0 = 512) */
    uint32_t calib_chunks; /* chunks used (0 = 16), at most as many as the text holds */
    int n_threads;         /* CPU threads for the calibration (0 = one per core) */
    float damp;            /* sparsegpt: H += damp * mean(diag H) * I before inverting (0 = 0.01) */
    uint32_t blocksize;    /* sparsegpt: columns per lazy-update block, a multiple of M (0 = 128) */
    bool dense_inputs;     /* sparsegpt: every layer's Hessians from the dense model's activations
                            * instead (the one-pass variant; for comparison) */
} vkllm_prune_desc;
VKLLM_API vkllm_status vkllm_prune(const vkllm_prune_desc *desc, char *err, size_t err_cap);

/* ---- measurement, for benchmarks ---------------------------------------------------------- */

/* Memory bandwidth of the runtime's device, measured now: the CPU backend streams a buffer
 * far larger than the last-level cache with all its threads; the Vulkan backend runs a read
 * kernel over device-local buffers far larger than a GPU's L2. Reads only (a decode step
 * mostly reads). Takes about `seconds` (0 = 0.5). *gbps gets 1e9 bytes per second;
 * *bytes_out (may be NULL) the size of the buffer it streamed. */
VKLLM_API vkllm_status vkllm_bench_bandwidth(vkllm_runtime *rt, double seconds, double *gbps,
                                             uint64_t *bytes_out);

typedef enum vkllm_bench_op_kind {
    VKLLM_BENCH_MATMUL = 0,    /* y[t] = W x[t]: W rows x cols in `type`, `tokens` vectors x
                                * (1 token: matrix-vector); includes quantizing x */
    VKLLM_BENCH_ATTENTION = 1, /* causal attention of `tokens` queries at the end of a cache
                                * of n_kv positions (F16 K/V), n_head query heads over
                                * n_head_kv KV heads of head_dim */
} vkllm_bench_op_kind;

typedef struct vkllm_bench_op_desc {
    uint32_t struct_size; /* sizeof(vkllm_bench_op_desc), or 0 (see "versions and the ABI") */
    vkllm_bench_op_kind op;
    const char *type;                           /* MATMUL: weight type, as vkllm_synth_desc.type */
    uint32_t rows, cols;                        /* MATMUL: weight shape (rows = outputs) */
    uint32_t tokens;                            /* both: vectors / queries per call; 0 = 1 */
    uint32_t n_head, n_head_kv, head_dim, n_kv; /* ATTENTION */
    double seconds;                             /* measuring time, about; 0 = 0.5 */
} vkllm_bench_op_desc;

typedef struct vkllm_bench_op_result {
    uint32_t struct_size; /* sizeof(vkllm_bench_op_result), or 0 (see "versions and the ABI") */
    uint64_t calls;       /* calls timed */
    double us;            /* mean time per call, microseconds */
    uint64_t bytes; /* bytes one call must read: the weights (MATMUL), or K and V (ATTENTION) */
    uint64_t flops; /* floating-point operations of one call: 2 * rows * cols * tokens,
                     * or 4 * n_head * head_dim * (keys each query sees, summed) */
    double gbps;    /* bytes / time, 1e9 B/s */
    double gflops;  /* flops / time, 1e9 /s */
} vkllm_bench_op_result;

/* Times one kernel on the runtime's backend with random inputs; the weights are made
 * distinct enough that a matrix-vector product cannot run from cache when one matrix would
 * fit in it (at most 1 GiB). VKLLM_ERR_UNSUPPORTED for a type or shape the backend has no
 * kernel for (the message says which). */
VKLLM_API vkllm_status vkllm_bench_op(vkllm_runtime *rt, const vkllm_bench_op_desc *desc,
                                      vkllm_bench_op_result *out);

#ifdef __cplusplus
}
#endif
#endif /* VKLLM_TOOLS_H */
