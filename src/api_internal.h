/* The objects behind the public handles. Shared by src/api_*.c only. */
#ifndef VKLLM_API_INTERNAL_H
#define VKLLM_API_INTERNAL_H

#include "core/common.h"
#include "engine/engine.h"
#include "engine/lora.h"
#include "loader/chat_template.h"
#include "loader/gguf.h"
#include "loader/model_config.h"
#include "loader/tokenizer.h"
#include "sched/sampler.h"

#include <pthread.h>

#include "cpu/cpu_backend.h"

#define RT_MAX_DEVS 8

struct jsc_run;
/* Structured output: compiles schema (vkllm_request_desc.json_schema) for a generation on m;
 * the token table is made on first use (under m->mu). Errors VKLLM_ERR_INVALID_ARG with the
 * schema's problem in err. src/api_json.c. */
vkllm_status api_json_run(vkllm_model *m, const char *schema, struct jsc_run **out, core_err *err);
#include <stdatomic.h>

struct vkllm_runtime {
    vkllm_allocator alloc_store;
    const vkllm_allocator *alloc; /* NULL = C library */
    vkllm_log_fn log;
    void *log_user;
    vkllm_log_level log_level;
    int n_threads;
    /* The devices vkllm_runtime_desc.device lists, in order (one unless it is a list), and
     * how it names each ("cpu", "vulkan:0"). backend is the first: the runtime's device for
     * vkllm_runtime_device and the measurements. */
    eng_backend *devs[RT_MAX_DEVS];
    char dev_names[RT_MAX_DEVS][32];
    uint32_t n_devs;
    char name[512]; /* vkllm_runtime_backend_name: the devices' names, " + " between */
    eng_backend *backend;
    /* The CPU backend a partial offload needs beside Vulkan devices: the listed one, or one
     * made when a model first needs it (under be_mu, with cpu_desc) and owned here. */
    eng_backend *cpu;
    bool cpu_owned;
    cpu_backend_desc cpu_desc;
    /* held around every call into the backend (a step, an upload, a context made or freed,
     * a measurement): sessions, engines and models of one runtime take turns (the CPU thread
     * pool and a Vulkan queue serve one step at a time). Held only for that call: never
     * while a callback of the host's runs, never together with an engine's lock. */
    pthread_mutex_t be_mu;
    core_err err;
};

struct vkllm_model {
    vkllm_runtime *rt;
    gguf_file *file;
    tok_vocab *vocab;
    bool vocab_only;
    model_config cfg;
    eng_model em;
    eng_graph graph;
    /* What runs the model: one of the runtime's devices, or `split` (owned) when the model is
     * placed over several (api_place.c). */
    eng_backend *be;
    eng_backend *split;
    chat_format chat;
    gguf_str chat_tmpl;
    char **tensor_names; /* NUL-terminated copies for vkllm_model_tensor, made under mu */
    pthread_mutex_t mu;
    char type_name[16];           /* vkllm_model_info.type */
    struct jsc_vocab *json_vocab; /* structured output's token table, made when first needed */
    /* adapters loaded and not yet released (live), and released ones whose backend copy is
     * still to be let go (dead: api_lora_collect), under lora_mu */
    pthread_mutex_t lora_mu;
    struct vkllm_adapter *lora_live, *lora_dead;
    core_err err;
};

/* A loaded LoRA adapter (api_adapter.c). l comes first: the engine's eng_lora_use names
 * &l, and api_adapter_of finds the handle from it. refs: the user's handle, and each session
 * and request that uses it; the last one moves it to the model's dead list. */
struct vkllm_adapter {
    eng_lora l;
    vkllm_model *model;
    uint64_t serial; /* never reused: the prefix cache's key for it */
    atomic_uint refs;
    bool attached; /* lora_attach has run on the model's backend */
    struct vkllm_adapter *prev, *next;
};

static inline vkllm_adapter *api_adapter_of(const eng_lora *l) {
    return (vkllm_adapter *)(void *)l;
}
/* A use of the adapters (a session's, a request's): checks them (the model's, at most
 * VKLLM_MAX_LORA, finite scales), takes a reference on each and fills use and ids (the
 * prefix-cache serials). Errors name the problem in err. */
vkllm_status api_lora_take(vkllm_model *m, const vkllm_lora *lora, size_t n, eng_lora_use *use,
                           uint64_t *ids, core_err *err);
/* Drops a reference (any thread; takes only the model's lora_mu). */
void api_lora_release(const eng_lora *l);
/* Lets the backend copies of released adapters go (takes rt->be_mu): call with no lock held. */
void api_lora_collect(vkllm_model *m);
/* Frees every adapter of m, released or not (vkllm_model_free). */
void api_lora_free_all(vkllm_model *m);

struct vkllm_session {
    vkllm_model *model;
    eng_ctx *ctx;
    uint32_t n_ctx, n_batch;
    uint32_t n_past;
    int32_t pending;                 /* last sampled token, not yet evaluated; -1 if none */
    float *logits;                   /* n_vocab */
    int32_t cand_ids[ENG_TOP_K_MAX]; /* best candidates of the last step (device sampling) */
    float cand_vals[ENG_TOP_K_MAX];
    int32_t *tokbuf; /* prompt tokens, n_ctx + 1 */
    uint32_t *pages; /* the block table: the session owns its context's pages in order */
    sched_sampler *sampler;
    eng_lora_use lora[ENG_LORA_MAX_PER_SEQ]; /* its adapters (vkllm_session_set_lora) */
    uint64_t lora_ids[ENG_LORA_MAX_PER_SEQ];
    uint32_t n_lora;
    bool ctx_bans; /* its context leaves the EOG ids out of eng_seq.ban candidates */
    atomic_int cancel;
    core_err err;
};

void rt_log(const vkllm_runtime *rt, vkllm_log_level level, const char *fmt, ...) CORE_PRINTF(3, 4);

/* api_place.c: decides where m's layers run (the runtime's devices, desc's gpu_layers and
 * split, the devices' memory) and attaches m there, setting m->be. Called under rt->be_mu. */
vkllm_status api_place(vkllm_model *m, const vkllm_model_desc *desc, core_err *err);
/* The runtime's CPU backend, made on first need (under rt->be_mu). */
vkllm_status rt_cpu_backend(vkllm_runtime *rt, eng_backend **out, core_err *err);

#endif
