/* Random LoRA adapters for tests, in llama.cpp's GGUF format (engine/lora.h), written with
 * vkllm's GGUF writer from a model file's tensor shapes: static inline, test-only. Damaged
 * variants (another architecture, a missing half, a wrong shape, an unknown suffix, a
 * quantized tensor) come from the same call with lora_spec's fault set. */
#ifndef VKLLM_TESTS_LORA_TEST_UTIL_H
#define VKLLM_TESTS_LORA_TEST_UTIL_H

#include "core/common.h"
#include "core/quant.h"
#include "loader/gguf.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum lora_fault {
    LORA_OK = 0,
    LORA_WRONG_ARCH,   /* general.architecture "gpt2" */
    LORA_NOT_ADAPTER,  /* general.type "model" */
    LORA_MISSING_B,    /* one pair without its lora_b */
    LORA_WRONG_SHAPE,  /* one lora_b one row short */
    LORA_BAD_SUFFIX,   /* a tensor "<name>.lora_c" */
    LORA_QUANTIZED,    /* one lora_a in Q8_0 */
    LORA_NO_TARGET,    /* a pair for a tensor the model lacks */
    LORA_RANK_MISMATCH /* lora_a rank r, lora_b rank r + 1 */
} lora_fault;

typedef struct lora_spec {
    uint32_t rank;
    float alpha;
    bool f16;
    const char *targets;  /* "q,k,v,o,gate,up,down" (NULL: all) */
    uint32_t layer_every; /* adapt layers l % layer_every == 0 (0: all) */
    bool embd;            /* the token embedding too */
    float amp;            /* size of B (0: 1) */
    uint64_t seed;
    const char *name; /* general.name, or NULL */
    lora_fault fault;
} lora_spec;

static inline float lora_rand(uint64_t *s) { /* uniform in [-1, 1) */
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* Fills n values of type f16/f32 at dst, uniform in [-amp, amp). */
static inline void lora_fill(void *dst, uint64_t n, bool f16, float amp, uint64_t *seed) {
    for (uint64_t i = 0; i < n; i++) {
        const float v = lora_rand(seed) * amp;
        if (f16)
            ((uint16_t *)dst)[i] = core_fp32_to_fp16(v);
        else
            ((float *)dst)[i] = v;
    }
}

static inline bool lora_target_on(const char *targets, const char *suffix) {
    static const char *const names[][2] = {
        {"q", "attn_q"},      {"k", "attn_k"},  {"v", "attn_v"},     {"o", "attn_output"},
        {"gate", "ffn_gate"}, {"up", "ffn_up"}, {"down", "ffn_down"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i][1], suffix) != 0) continue;
        if (!targets) return true;
        const size_t n = strlen(names[i][0]);
        for (const char *p = targets; *p;) {
            const char *c = strchr(p, ',');
            const size_t len = c ? (size_t)(c - p) : strlen(p);
            if (len == n && strncmp(p, names[i][0], n) == 0) return true;
            p += len + (c ? 1 : 0);
        }
    }
    return false;
}

/* Writes the adapter for model_path to path. 0 on success, else prints why. */
static inline int lora_write(const char *model_path, const char *path, const lora_spec *sp) {
    core_err err = {{0}};
    gguf_open_desc od = {0};
    gguf_file *mf = NULL;
    if (gguf_open(model_path, &od, &mf, &err) != VKLLM_OK) {
        fprintf(stderr, "lora_write: %s\n", err.msg);
        return 1;
    }
    gguf_writer *w = gguf_writer_create(NULL);
    gguf_str arch = {0};
    gguf_get_str(mf, "general.architecture", &arch);
    char archz[64];
    snprintf(archz, sizeof archz, "%.*s", (int)arch.len, arch.ptr);
    gguf_writer_set_str(w, "general.architecture", sp->fault == LORA_WRONG_ARCH ? "gpt2" : archz);
    gguf_writer_set_str(w, "general.type", sp->fault == LORA_NOT_ADAPTER ? "model" : "adapter");
    gguf_writer_set_str(w, "adapter.type", "lora");
    gguf_writer_set_f32(w, "adapter.lora.alpha", sp->alpha);
    if (sp->name) gguf_writer_set_str(w, "general.name", sp->name);
    uint64_t seed = sp->seed * 0x9e3779b97f4a7c15ull + 1;
    const float amp = sp->amp > 0 ? sp->amp : 1.0f;
    const uint32_t r = sp->rank;
    const uint64_t es = sp->f16 ? 2 : 4;
    bool faulted = false;
    int rc = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(mf) && !rc; i++) {
        const gguf_tensor *t = gguf_tensor_at(mf, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        unsigned layer;
        char suffix[64];
        const bool is_embd = strcmp(name, "token_embd.weight") == 0;
        bool on = false;
        if (sscanf(name, "blk.%u.%63[a-z_].weight", &layer, suffix) == 2)
            on = lora_target_on(sp->targets, suffix) &&
                 (sp->layer_every == 0 || layer % sp->layer_every == 0);
        else if (is_embd)
            on = sp->embd;
        if (!on) continue;
        const uint64_t n_in = t->ne[0], n_out = t->ne[1];
        /* matrix: A [rank rows x n_in], B [n_out rows x rank]; embedding: A [n_vocab x rank],
         * B [n_embd x rank] */
        uint64_t a_ne[2] = {n_in, r}, b_ne[2] = {r, n_out};
        if (is_embd) a_ne[0] = r, a_ne[1] = n_out, b_ne[0] = r, b_ne[1] = n_in;
        const bool fault_here = !faulted && !is_embd;
        if (fault_here && sp->fault == LORA_WRONG_SHAPE) b_ne[1] -= 1;
        if (fault_here && sp->fault == LORA_RANK_MISMATCH) b_ne[0] += 1;
        const uint64_t na = a_ne[0] * a_ne[1], nb = b_ne[0] * b_ne[1];
        void *a = malloc(na * 4), *b = malloc(nb * 4);
        lora_fill(a, na, sp->f16, is_embd ? 1.0f : 1.0f / sqrtf((float)n_in), &seed);
        lora_fill(b, nb, sp->f16, (is_embd ? 0.002f : 0.05f) * amp, &seed);
        char an[160], bn[160];
        snprintf(an, sizeof an, "%s.lora_a",
                 fault_here && sp->fault == LORA_NO_TARGET ? "blk.999.attn_q.weight" : name);
        if (fault_here && sp->fault == LORA_NO_TARGET)
            snprintf(bn, sizeof bn, "blk.999.attn_q.weight.lora_b");
        else
            snprintf(bn, sizeof bn, "%s.lora_%s", name,
                     fault_here && sp->fault == LORA_BAD_SUFFIX ? "c" : "b");
        uint32_t a_type = sp->f16 ? QT_F16 : QT_F32;
        uint64_t a_bytes = na * es;
        if (fault_here && sp->fault == LORA_QUANTIZED && a_ne[0] % 32 == 0) {
            a_type = QT_Q8_0;
            a_bytes = na / 32 * 34;
            memset(a, 0, a_bytes);
        }
        if (gguf_writer_add_tensor(w, an, a_type, 2, a_ne, a, a_bytes, true) != VKLLM_OK) rc = 1;
        if (!(fault_here && sp->fault == LORA_MISSING_B) &&
            gguf_writer_add_tensor(w, bn, sp->f16 ? QT_F16 : QT_F32, 2, b_ne, b, nb * es, true) !=
                VKLLM_OK)
            rc = 1;
        free(a);
        free(b);
        faulted = faulted || fault_here;
    }
    if (!rc && gguf_writer_write(w, path, &err) != VKLLM_OK) {
        fprintf(stderr, "lora_write: %s\n", err.msg);
        rc = 1;
    }
    gguf_writer_free(w);
    gguf_close(mf);
    return rc;
}

#endif
