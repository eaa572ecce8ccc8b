/* Reads llama-family hyperparameters from GGUF metadata (key names as in the GGUF spec's
 * "LLM" section) and checks them for consistency before anything is sized from them. */
#include "loader/model_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Architectures whose tensors and graph are the llama layout. */
static const char *const k_llama_family[] = {"llama", "mistral", "granite"};

static bool key_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_u32(f, key, out);
}

static bool key_f32(const gguf_file *f, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_f32(f, key, out);
}

static vkllm_status need_u32(const gguf_file *f, const char *arch, const char *suffix,
                             uint32_t *out, core_err *err) {
    if (key_u32(f, arch, suffix, out)) return VKLLM_OK;
    return core_errf(err, VKLLM_ERR_BAD_FILE, "model: metadata key '%s.%s' missing or not an "
                     "unsigned integer", arch, suffix);
}

vkllm_status model_config_load(const gguf_file *f, uint32_t n_vocab_hint, model_config *cfg,
                               core_err *err) {
    memset(cfg, 0, sizeof *cfg);
    gguf_str s;
    if (!gguf_get_str(f, "general.architecture", &s))
        return core_errf(err, VKLLM_ERR_BAD_FILE, "model: 'general.architecture' missing");
    if (s.len == 0 || s.len >= sizeof cfg->arch)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED, "model: architecture name of %llu bytes",
                         (unsigned long long)s.len);
    memcpy(cfg->arch, s.ptr, s.len);
    bool known = false;
    for (size_t i = 0; i < sizeof k_llama_family / sizeof k_llama_family[0]; i++)
        known = known || strcmp(cfg->arch, k_llama_family[i]) == 0;
    if (!known)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "model: architecture '%s' is not supported (supported: llama family)",
                         cfg->arch);
    if (gguf_get_str(f, "general.name", &s)) {
        size_t n = s.len < sizeof cfg->name - 1 ? (size_t)s.len : sizeof cfg->name - 1;
        memcpy(cfg->name, s.ptr, n);
    }

    const char *a = cfg->arch;
    vkllm_status st;
    if ((st = need_u32(f, a, "embedding_length", &cfg->n_embd, err))) return st;
    if ((st = need_u32(f, a, "block_count", &cfg->n_layer, err))) return st;
    if ((st = need_u32(f, a, "feed_forward_length", &cfg->n_ff, err))) return st;
    if ((st = need_u32(f, a, "attention.head_count", &cfg->n_head, err))) return st;
    if (!key_u32(f, a, "attention.head_count_kv", &cfg->n_head_kv)) cfg->n_head_kv = cfg->n_head;
    if (!key_u32(f, a, "context_length", &cfg->n_ctx_train)) cfg->n_ctx_train = 2048;
    if (!key_u32(f, a, "vocab_size", &cfg->n_vocab)) cfg->n_vocab = n_vocab_hint;

    if (cfg->n_embd == 0 || cfg->n_layer == 0 || cfg->n_head == 0 || cfg->n_head_kv == 0 ||
        cfg->n_ff == 0 || cfg->n_vocab == 0)
        return core_errf(err, VKLLM_ERR_BAD_FILE,
                         "model: zero size in config (n_embd %u, n_layer %u, n_head %u, "
                         "n_head_kv %u, n_ff %u, n_vocab %u)", cfg->n_embd, cfg->n_layer,
                         cfg->n_head, cfg->n_head_kv, cfg->n_ff, cfg->n_vocab);
    /* Caps that keep every derived size well inside 32-bit index arithmetic. */
    if (cfg->n_embd > 65536 || cfg->n_ff > 262144 || cfg->n_layer > 1024 ||
        cfg->n_head > 1024 || cfg->n_vocab > 4u * 1024 * 1024)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "model: config too large (n_embd %u, n_ff %u, n_layer %u, n_head %u, "
                         "n_vocab %u)", cfg->n_embd, cfg->n_ff, cfg->n_layer, cfg->n_head,
                         cfg->n_vocab);
    if (cfg->n_head % cfg->n_head_kv != 0)
        return core_errf(err, VKLLM_ERR_BAD_FILE,
                         "model: head_count %u is not a multiple of head_count_kv %u",
                         cfg->n_head, cfg->n_head_kv);
    if (!key_u32(f, a, "attention.key_length", &cfg->head_dim)) {
        if (cfg->n_embd % cfg->n_head != 0)
            return core_errf(err, VKLLM_ERR_BAD_FILE,
                             "model: embedding_length %u is not a multiple of head_count %u",
                             cfg->n_embd, cfg->n_head);
        cfg->head_dim = cfg->n_embd / cfg->n_head;
    }
    uint32_t vlen;
    if (key_u32(f, a, "attention.value_length", &vlen) && vlen != cfg->head_dim)
        return core_errf(err, VKLLM_ERR_UNSUPPORTED,
                         "model: value_length %u differs from key_length %u", vlen,
                         cfg->head_dim);
    if (cfg->head_dim == 0 || cfg->head_dim % 2 != 0 || cfg->head_dim > 1024)
        return core_errf(err, VKLLM_ERR_BAD_FILE, "model: head dimension %u is not usable",
                         cfg->head_dim);
    if (!key_u32(f, a, "rope.dimension_count", &cfg->n_rot)) cfg->n_rot = cfg->head_dim;
    if (cfg->n_rot > cfg->head_dim || cfg->n_rot % 2 != 0)
        return core_errf(err, VKLLM_ERR_BAD_FILE,
                         "model: rope.dimension_count %u does not fit head dimension %u",
                         cfg->n_rot, cfg->head_dim);

    if (!key_f32(f, a, "attention.layer_norm_rms_epsilon", &cfg->rms_eps)) cfg->rms_eps = 1e-5f;
    if (!key_f32(f, a, "rope.freq_base", &cfg->rope_base)) cfg->rope_base = 10000.0f;
    if (!(cfg->rms_eps >= 0.0f && cfg->rms_eps < 1.0f) || !(cfg->rope_base > 1.0f) ||
        !isfinite(cfg->rope_base))
        return core_errf(err, VKLLM_ERR_BAD_FILE, "model: bad rms epsilon %g or rope base %g",
                         (double)cfg->rms_eps, (double)cfg->rope_base);

    /* RoPE scaling: "{arch}.rope.scaling.type" + ".factor", or the older ".rope.scale_linear". */
    cfg->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    float factor = 0.0f;
    if (gguf_get_str(f, key, &s)) {
        key_f32(f, a, "rope.scaling.factor", &factor);
        if (s.len == 4 && memcmp(s.ptr, "none", 4) == 0) {
            factor = 0.0f;
        } else if (s.len == 6 && memcmp(s.ptr, "linear", 6) == 0) {
            cfg->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        } else if (s.len == 4 && memcmp(s.ptr, "yarn", 4) == 0) {
            cfg->rope_scaling = MODEL_ROPE_SCALING_YARN;
            return core_errf(err, VKLLM_ERR_UNSUPPORTED, "model: YaRN rope scaling is not "
                             "supported yet");
        } else {
            return core_errf(err, VKLLM_ERR_UNSUPPORTED, "model: rope scaling type '%.*s' is "
                             "not supported", (int)(s.len > 32 ? 32 : s.len), s.ptr);
        }
    } else if (key_f32(f, a, "rope.scale_linear", &factor)) {
        cfg->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
    }
    if (factor > 0.0f) {
        if (!(factor >= 1e-3f && factor <= 1e3f))
            return core_errf(err, VKLLM_ERR_BAD_FILE, "model: rope scaling factor %g",
                             (double)factor);
        cfg->rope_freq_scale = 1.0f / factor;
    }
    return VKLLM_OK;
}
