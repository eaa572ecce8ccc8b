/* LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") in
 * llama.cpp's GGUF format, bound to a loaded model.
 *
 * An adapter file has general.type = "adapter", adapter.type = "lora", general.architecture
 * the model's, adapter.lora.alpha, and for each adapted matrix W [n_out x n_in] two tensors
 * "<W's name>.lora_a" (A: rank rows of n_in) and "<W's name>.lora_b" (B: n_out rows of rank).
 * A product W x becomes W x + s * B (A x), s = scale * alpha / rank (scale alone when alpha
 * is 0), computed in that order so a single adapter gives llama.cpp's floats. For the token
 * embedding A has a row of rank values per token (looked up like the embedding) and B is
 * [n_embd x rank]. Norm tensors ("*_norm.weight") are skipped, as llama.cpp skips them.
 *
 * The adapter keeps its file mapped; its tensors are read in place on the CPU and uploaded by
 * a GPU backend (eng_backend_vtbl.lora_attach). It matches the model's weights by their name
 * pointers, which every stage of a split model shares, so one adapter serves every stage.
 */
#ifndef VKLLM_ENGINE_LORA_H
#define VKLLM_ENGINE_LORA_H

#include "engine/engine.h"

/* Adapters one sequence entry may use at once. */
#define ENG_LORA_MAX_PER_SEQ 8
/* The largest rank an adapter may have (what backends size their scratch for). */
#define ENG_LORA_MAX_RANK 1024

typedef struct eng_lora_pair {
    const char *target; /* the adapted weight's name (eng_weight.name: the pointer is the key) */
    bool embed;         /* adapts the token embedding (A looked up by token) */
    uint32_t rank;
    eng_weight a; /* matrix: [rank x n_in]; embedding: [n_vocab x rank] */
    eng_weight b; /* [n_out x rank] */
} eng_lora_pair;

typedef struct eng_lora {
    const vkllm_allocator *alloc;
    gguf_file *file;      /* owned, when loaded from a path */
    float alpha;          /* adapter.lora.alpha; 0: the user's scale is used as is */
    eng_lora_pair *pairs; /* sorted by target pointer */
    uint32_t n_pairs;
    uint32_t max_rank;
    uint64_t bytes; /* of A and B, all pairs */
    char name[64];  /* general.name, else the file's base name */
    char *names;    /* storage of the pairs' tensor names */
} eng_lora;

/* Binds the adapter in f to m (the whole model, not a stage): checks metadata, pairs, shapes
 * (as llama.cpp does, with the same hints) and types (F32 or F16). f must outlive the
 * adapter; on success the adapter does not own it. */
vkllm_status eng_lora_init(eng_lora *l, const gguf_file *f, const eng_model *m,
                           const vkllm_allocator *a, core_err *err);
/* Opens path and binds it; the adapter owns the mapping. */
vkllm_status eng_lora_load(eng_lora *l, const char *path, const eng_model *m,
                           const vkllm_allocator *a, core_err *err);
void eng_lora_free(eng_lora *l);

/* The pair adapting weight w (by name pointer), or NULL. embed: the embedding lookup's pair
 * (a tied output head shares the embedding's name but takes no adapter, as in llama.cpp). */
const eng_lora_pair *eng_lora_find(const eng_lora *l, const eng_weight *w, bool embed);

/* One adapter an entry uses, with the user's scale. */
typedef struct eng_lora_use {
    const eng_lora *lora;
    float scale;
} eng_lora_use;

/* The factor of B (A x): llama.cpp's, in its order of operations. */
static inline float eng_lora_factor(const eng_lora *l, const eng_lora_pair *p, float scale) {
    return l->alpha != 0.0f ? scale * l->alpha / (float)p->rank : scale;
}

#endif
