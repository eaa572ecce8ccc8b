/* Hyperparameters of a llama-family model, read from GGUF metadata.
 *
 * Knows the key names ("{arch}.block_count", "{arch}.rope.freq_base", ...) and their defaults,
 * and checks that the numbers are consistent (heads divide the embedding, GQA groups divide
 * the heads). Knows nothing about tensors or backends.
 */
#ifndef VKLLM_LOADER_MODEL_CONFIG_H
#define VKLLM_LOADER_MODEL_CONFIG_H

#include "core/common.h"
#include "loader/gguf.h"

typedef enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE = 0,
    MODEL_ROPE_SCALING_LINEAR,
    MODEL_ROPE_SCALING_YARN, /* read but not supported by the engine yet */
} model_rope_scaling;

typedef struct model_config {
    char arch[32];
    char name[128];
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t head_dim;  /* per head, for Q and K; = n_embd / n_head unless key_length says */
    uint32_t n_rot;     /* dimensions that RoPE rotates */
    float rms_eps;
    float rope_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    model_rope_scaling rope_scaling;
} model_config;

/* Reads and checks the config. Returns VKLLM_ERR_UNSUPPORTED for other architectures and
 * VKLLM_ERR_BAD_FILE for missing or inconsistent values. n_vocab_hint is the tokenizer's size
 * (used when {arch}.vocab_size is absent). */
vkllm_status model_config_load(const gguf_file *f, uint32_t n_vocab_hint, model_config *cfg,
                               core_err *err);

#endif
