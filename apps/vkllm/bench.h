/* Shared by the parts of `vkllm bench`: options, the per-runtime environment, and the record
 * and progress helpers of bench.c that bench_serve.c (the engine's serving tests) uses. */
#ifndef VKLLM_APP_BENCH_H
#define VKLLM_APP_BENCH_H

#include "cli.h"

#include <cjson/cJSON.h>

#define LIST_MAX 32

typedef struct ilist {
    int v[LIST_MAX];
    int n;
} ilist;

typedef struct slist {
    const char *v[LIST_MAX];
    int n;
} slist;

typedef struct bench_opts {
    slist models, devices, cpu_isas, op_shapes, op_types;
    ilist prompt, gen, depth, batch, threads, tiers, op_tokens;
    ilist parallel, prefix, step_ms; /* serving tests (engine) */
    ilist ngl;                       /* -ngl: GPU layers per test; -1 all (empty: default) */
    float split[CLI_MAX_SPLIT];      /* --split: shares of a split runtime's devices */
    int n_split;
    const char *split_text;
    int reps, op_ctx;
    double op_seconds;
    const char *json, *csv;
    bool ops, no_probe, verbose;
    bool no_overlap; /* serving tests: one engine step at a time */
    bool vk_relaxed; /* --vk-relaxed: vkllm_runtime_desc.vk_relaxed_products */
    cli_opts lora;   /* --lora FILE[:SCALE]: lora.lora_path, lora_scale, n_lora */
} bench_opts;

/* bench_args.c: the help text, and argv (argv[0] "bench") into o: 0 ok, 1 error (printed),
 * 2 help asked for. */
void bench_usage(FILE *f);
int bench_parse(int argc, char **argv, bench_opts *o);

/* What every record of one runtime shares. */
typedef struct bench_env {
    vkllm_runtime *rt;
    vkllm_device_info dev;
    int threads;
    double bw_gbps; /* 0: not probed */
    cJSON *records; /* array every record goes into */
    bool progress;  /* stderr is a terminal */
    int reps;
    char host_cpu[256];
    const char *split; /* --split of a split runtime, or NULL */
} bench_env;

/* A loaded model and the pseudo-random prompt tokens of the model tests. */
typedef struct model_ctx {
    vkllm_model *model;
    vkllm_model_info mi;
    const char *path;
    int32_t *toks; /* pseudo-random ids: speed does not depend on them */
    uint32_t n_toks;
    int ngl;                         /* -ngl of this load: -1 the default (all) */
    uint32_t gpu_layers;             /* layers the placement put on Vulkan devices */
    char placement[256];             /* "cpu 0-14+embd | vulkan:0 15-29+head" */
    vkllm_lora lora[VKLLM_MAX_LORA]; /* --lora adapters, on every test's session */
    size_t n_lora;
    char lora_text[512]; /* "name:scale+name:scale" for the records */
} model_ctx;

double now_s(void);
void mean_sd(const double *x, int n, double *mean, double *sd);
void add_num_or_null(cJSON *o, const char *key, bool present, double v);
/* The engine, host and device part of a record. */
cJSON *record_new(const bench_env *e);
void add_model(cJSON *r, const char *path, const vkllm_model_info *mi, const char *type);
void add_test(cJSON *r, const char *kind, const char *name, int n_prompt, int n_gen, int n_depth,
              int n_batch);
void add_samples(cJSON *r, const double *x, int n, bool tps);
void progress(const bench_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_clear(const bench_env *e);
const char *short_name(const char *path);
void device_label(const vkllm_device_info *d, char *buf, size_t cap);

/* The serving tests (--parallel, --prefix, --step-budget) on one model (bench_serve.c). */
int bench_serve(bench_env *e, const bench_opts *o, const char *path);

#endif
