/* Shared pieces of the vkllm command line: option parsing, model lookup, runtime set-up.
 * The CLI uses only the public API (include/vkllm.h). */
#ifndef VKLLM_APP_CLI_H
#define VKLLM_APP_CLI_H

#include "vkllm.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_MAX_SPLIT 8

typedef struct cli_opts {
    const char *model;
    const char *prompt;
    const char *prompt_file;
    const char *system;
    const char *device;
    int n_predict;
    int n_threads;
    int n_ctx;
    int n_batch;
    int vk_tier;                /* -1 = best */
    bool vk_relaxed;            /* vkllm_runtime_desc.vk_relaxed_products */
    const char *cpu_isa;        /* NULL = auto */
    int memory_cap_mib;         /* vkllm_runtime_desc.memory_cap in MiB; 0 = none */
    int gpu_layers;             /* -ngl plus one (vkllm_model_desc.gpu_layers_plus1): 0 = all */
    float split[CLI_MAX_SPLIT]; /* --split: shares of the listed devices */
    int n_split;
    /* --lora FILE[:SCALE], repeatable: adapters cli_open loads (cli_lora) */
    const char *lora_path[VKLLM_MAX_LORA];
    float lora_scale[VKLLM_MAX_LORA];
    int n_lora;
    /* what may help when the model or its context does not fit in memory: the command's own
     * options, as cli_error lists them ("a smaller context (-c); another device (--device)") */
    const char *oom_tips;
    vkllm_sampling sampling;
    float presence_penalty, frequency_penalty; /* OpenAI's, [-2, 2] */
    int logprobs;                              /* run: -1 off, else alternatives per token */
    bool seed_set;
    bool ignore_eos;
    bool json;                    /* --json: any JSON object */
    const char *json_schema_file; /* --json-schema FILE */
    bool no_echo;
    bool verbose;
    /* run -f FILE --parallel N */
    int parallel; /* 0: one prompt */
    bool chat;    /* wrap each prompt in the chat template */
    int kv_mib;   /* KV cache budget; 0 = the engine's default */
    bool no_prefix_cache;
    const char *kv_type;
    /* tokenize */
    bool ids_only;
    bool no_bos;
    bool no_parse_special;
    bool show_count;
    /* info */
    bool no_tensors;
} cli_opts;

/* The schema --json or --json-schema asks for (malloc'd; NULL: neither). 0 ok, 1 error
 * (printed). */
int cli_json_schema(const cli_opts *o, char **out);

/* Parses argv[1..] (argv[0] is the subcommand) with getopt_long. Returns 0 ok, 1 error
 * (message printed), 2 help. */
int cli_parse(int argc, char **argv, const char *cmd, cli_opts *o);
/* getopt_long's error for the return value c ('?' or ':'), printed; returns 1. */
int cli_getopt_error(int c, int argc, char **argv, const char *cmd);
/* An option's number in [lo, hi], or a message naming the option and `what` it must be. */
bool cli_int(const char *opt, const char *v, long lo, long hi, const char *what, int *out);
bool cli_float(const char *opt, const char *v, float lo, float hi, const char *what, float *out);
/* Prints the one "error: MSG" line of a failed call. Out of memory, the line goes on with
 * what may help: a larger --memory-cap where MSG is about the cap, `tips` (the command's own
 * options; NULL: none), and a higher address-space limit where the process has one. */
void cli_error(vkllm_status st, const char *msg, const char *tips);
/* cli_opts.oom_tips of the commands that run a model with a context */
#define CLI_OOM_TIPS                                                                               \
    "a smaller context (-c) or batch (-b); another device (--device); a smaller model"
/* -ngl N|all (llama.cpp's spelling) into --gpu-layers before getopt_long sees argv. */
void cli_argv_ngl(int argc, char **argv);
/* --gpu-layers / -ngl's value: a count >= 0 or "all" (-1). */
bool cli_gpu_layers(const char *opt, const char *v, int *out);
/* --split R1,R2,...: up to CLI_MAX_SPLIT shares >= 0, summing to more than 0. */
bool cli_split(const char *opt, const char *v, float *out, int *n);
/* The model desc's placement fields from the options. */
void cli_model_place(const cli_opts *o, vkllm_model_desc *md);
/* Prints the model's placement (vkllm_model_placement) to stderr, one line a stage, when it
 * is on more than one device. */
void cli_print_placement(const vkllm_model *m);
/* The model path: -m, else $VKLLM_MODEL, else the default model in the user's cache. */
const char *cli_model_path(const cli_opts *o, char *buf, size_t cap);
/* Creates the runtime and loads the model and the --lora adapters, printing "error: ..." on
 * failure. */
int cli_open(const cli_opts *o, bool vocab_only, vkllm_runtime **rt, vkllm_model **model);
/* --lora FILE[:SCALE] into o (a path may hold ':' itself: only a number after the last one is
 * a scale); false with a message printed. */
bool cli_lora_opt(const char *opt, const char *v, cli_opts *o);
/* The adapters cli_open loaded (--lora), with their scales; vkllm_model_free frees them. */
size_t cli_lora(const vkllm_lora **out);
/* Reads the prompt from -p or -f into a malloc'd string (or NULL with an error printed). */
char *cli_read_prompt(const cli_opts *o, size_t *len);
void cli_usage(FILE *f, const char *cmd);
/* Progress of a long tool run (a vkllm_progress_fn's user): a bar redrawn in place on a
 * terminal, a line every 10 units otherwise. */
typedef struct cli_bar {
    bool tty;
    double t0;
    const char *unit; /* "chunk", "tensor" */
} cli_bar;
void cli_bar_start(cli_bar *b, const char *unit);
void cli_bar_update(void *user, uint64_t done, uint64_t total);
double cli_now(void); /* monotonic seconds */
/* Log callback: "vkllm: LEVEL: message" lines on stderr. */
void cli_log_stderr(void *user, vkllm_log_level level, const char *msg);

int cmd_run(int argc, char **argv);
/* run with --parallel: every line of -f FILE is a request, N in flight at once (run_parallel.c). */
int cmd_run_parallel(const cli_opts *o);
const char *cli_stop_name(vkllm_stop_reason r);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_imatrix(int argc, char **argv);
int cmd_prune(int argc, char **argv);
/* argv[0] is "quantize", the options follow (getopt_long) */
int cmd_quantize(int argc, char **argv);

#endif
