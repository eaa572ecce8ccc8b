/* The objects behind the public handles. Shared by src/api_*.c only. */
#ifndef VKLLM_API_INTERNAL_H
#define VKLLM_API_INTERNAL_H

#include "core/common.h"
#include "engine/engine.h"
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
    core_err err;
};

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
