/* Option parsing and set-up shared by the vkllm subcommands. Errors go to stderr as one line
 * starting with "error:", and the command exits with status 1. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

static const char *k_common_help =
    "  -m, --model FILE       GGUF model (default: $VKLLM_MODEL, else\n"
    "                         ~/.cache/vkllm/models/" DEFAULT_MODEL_FILE ";\n"
    "                         scripts/fetch_model.sh downloads it)\n";

static const char *k_gen_help =
    "  -p, --prompt TEXT      prompt text\n"
    "  -f, --file FILE        read the prompt from a file\n"
    "  -n, --n-predict N      tokens to generate (default 256; 0 = until end or full context)\n"
    "  -c, --ctx-size N       context length (default: min(training context, 4096))\n"
    "  -b, --batch-size N     prompt tokens per step (default 512)\n"
    "  -t, --threads N        CPU threads (default: all cores)\n"
    "      --device DEV       auto (default), cpu, vulkan, vulkan:N or vulkan:NAME\n"
    "      --vk-tier N        highest Vulkan capability tier to use (0, 1, 2)\n"
    "      --vk-relaxed       matrix products in the device's own multiply-add where it\n"
    "                         has no fused one (CPU drivers such as lavapipe): faster,\n"
    "                         within a tolerance of the CPU backend instead of its bits\n"
    "      --cpu-isa ISA      CPU kernels: auto (default: the best the processor has),\n"
    "                         scalar, avx2, avx512, avx512vnni (all SIMD sets give the\n"
    "                         same bits; for benchmarks)\n"
    "      --memory-cap MIB   most memory the weights and the context may take, in MiB\n"
    "                         (device memory on Vulkan; default: no cap); a model larger\n"
    "                         than a GPU's cap or memory runs in part on the CPU\n"
    "  -ngl, --gpu-layers N   layers on the GPU (default all); the rest and the embedding\n"
    "                         on the CPU, the output head too unless N is all\n"
    "      --split R1,R2,...  shares of the layers for the devices --device lists\n"
    "                         (e.g. --device vulkan:0,vulkan:1 --split 3,1; default equal)\n"
    "      --lora FILE[:S]    a LoRA adapter (llama.cpp's GGUF format) with scale S\n"
    "                         (default 1); repeat for several, used together\n"
    "      --temp T           temperature (default 0.8; 0 = greedy)\n"
    "      --top-k N          top-k (default 40; 0 = off)\n"
    "      --top-p P          top-p (default 0.95; 1 = off)\n"
    "      --min-p P          min-p (default 0.05; 0 = off)\n"
    "      --repeat-penalty R repetition penalty (default 1.0 = off)\n"
    "      --repeat-last-n N  tokens the penalty looks back over (default 64)\n"
    "      --presence-penalty P  OpenAI's presence penalty in [-2, 2] (default 0 = off):\n"
    "                         P off the logit of every token already generated\n"
    "      --frequency-penalty F OpenAI's frequency penalty in [-2, 2] (default 0 = off):\n"
    "                         F times its count off the logit of each generated token\n"
    "                         (both count the answer's tokens, not the prompt's)\n"
    "      --seed N           random seed (default: random, printed with -v)\n"
    "      --ignore-eos       never sample end-of-generation tokens (run to -n)\n"
    "      --json             the answer is a JSON object (constrained sampling)\n"
    "      --json-schema FILE the answer is JSON that FILE's JSON Schema accepts (the subset\n"
    "                         of docs/serve.md, \"Structured output\"; others: an error)\n"
    "  -v, --verbose          log what the runtime does\n";

void cli_usage(FILE *f, const char *cmd) {
    if (!cmd) {
        fprintf(
            f,
            "vkllm %d.%d.%d: LLM inference on Vulkan or the CPU\n\n"
            "usage: vkllm COMMAND [options]   (vkllm COMMAND --help for its options)\n\n"
            "commands:\n"
            "  run        generate text from a prompt\n"
            "  chat       interactive chat with the model's chat template\n"
            "  serve      an OpenAI-compatible HTTP server (chat, completions, streaming)\n"
            "  tokenize   print the token ids of a text\n"
            "  info       model metadata and tensor table\n"
            "  devices    list the devices vkllm can use\n"
            "  bench      prefill and decode speed\n"
            "  synth      write a model of a known shape with random weights (benchmarks)\n"
            "  quantize   quantize a model as llama-quantize does (same bytes)\n"
            "  perplexity a model's perplexity over a text, and its KL divergence from another\n"
            "  imatrix    a model's importance matrix over a text (for quantize and prune)\n"
            "  prune      prune a model (magnitude, Wanda; 2:4, 4:8, unstructured, FFN, heads)\n",
            VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR, VKLLM_VERSION_PATCH);
        return;
    }
    if (strcmp(cmd, "run") == 0) {
        fprintf(f,
                "usage: vkllm run [options]\n\nGenerates text from a prompt; the text goes "
                "to stdout as it is made, a speed summary to stderr.\n\n%s%s"
                "      --no-echo          do not print the prompt before the output\n"
                "      --logprobs N       print each generated token's log-probability and\n"
                "                         the N (0-20) most likely tokens at its place, one\n"
                "                         JSON line per token on stderr: {\"token\": id,\n"
                "                         \"piece\", \"logprob\", \"top_logprobs\": [{\"token\",\n"
                "                         \"piece\", \"logprob\"}]}; natural logs of the\n"
                "                         model's own distribution (before penalties and\n"
                "                         temperature: OpenAI's logprobs)\n"
                "\nMany prompts at once (continuous batching):\n"
                "      --parallel N       with -f: every non-empty line of the file is a\n"
                "                         request (\\n in a line is a newline), N run at once;\n"
                "                         answers print in input order, then a summary\n"
                "                         (requests, tokens, tok/s, time to first token)\n"
                "      --chat             wrap each line in the chat template (with -s)\n"
                "  -s, --system TEXT      system message for --chat\n"
                "      --kv-mib N         KV cache budget in MiB (default: room for N\n"
                "                         sequences of -c tokens, at most 1024)\n"
                "      --no-prefix-cache  do not reuse the KV pages of shared prompt starts\n"
                "      --kv-type T        KV cache type: f16 (default) or q8_0 (half the\n"
                "                         memory; Vulkan needs head_dim %% 64 == 0)\n",
                k_common_help, k_gen_help);
    } else if (strcmp(cmd, "chat") == 0) {
        fprintf(f,
                "usage: vkllm chat [options]\n\nInteractive chat: type a message, get the "
                "reply; the context is kept between turns. Ctrl-D ends; '/reset' clears "
                "the conversation.\n\n%s%s"
                "  -s, --system TEXT      system prompt\n",
                k_common_help, k_gen_help);
    } else if (strcmp(cmd, "tokenize") == 0) {
        fprintf(f,
                "usage: vkllm tokenize [options] -p TEXT | -f FILE\n\nPrints one line per "
                "token: id and its text.\n\n%s"
                "  -p, --prompt TEXT      text to tokenize\n"
                "  -f, --file FILE        read the text from a file\n"
                "      --ids              print only the ids, as [1, 2, 3]\n"
                "      --no-bos           do not add BOS/EOS tokens\n"
                "      --no-parse-special treat special-token text as plain text\n"
                "      --show-count       print the number of tokens\n",
                k_common_help);
    } else if (strcmp(cmd, "info") == 0) {
        fprintf(f,
                "usage: vkllm info [options]\n\nPrints a model's metadata and tensor "
                "table.\n\n%s      --no-tensors       metadata only\n",
                k_common_help);
    } else if (strcmp(cmd, "devices") == 0) {
        fprintf(f, "usage: vkllm devices\n\nLists the devices vkllm can run on.\n");
    }
}

static bool parse_int(const char *s, long lo, long hi, int *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static bool parse_float(const char *s, float lo, float hi, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

enum {
    OPT_DEVICE = 256,
    OPT_VK_TIER,
    OPT_VK_RELAXED,
    OPT_CPU_ISA,
    OPT_MEMORY_CAP,
    OPT_TEMP,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPEAT_PENALTY,
    OPT_REPEAT_LAST_N,
    OPT_PRESENCE_PENALTY,
    OPT_FREQUENCY_PENALTY,
    OPT_LOGPROBS,
    OPT_SEED,
    OPT_PARALLEL,
    OPT_KV_MIB,
    OPT_KV_TYPE,
    OPT_CHAT,
    OPT_NO_PREFIX_CACHE,
    OPT_IGNORE_EOS,
    OPT_JSON,
    OPT_JSON_SCHEMA,
    OPT_NO_ECHO,
    OPT_IDS,
    OPT_NO_BOS,
    OPT_NO_PARSE_SPECIAL,
    OPT_SHOW_COUNT,
    OPT_NO_TENSORS,
    OPT_GPU_LAYERS,
    OPT_SPLIT,
    OPT_LORA,
};

static const struct option k_long[] = {
    {"help", no_argument, NULL, 'h'},
    {"model", required_argument, NULL, 'm'},
    {"prompt", required_argument, NULL, 'p'},
    {"file", required_argument, NULL, 'f'},
    {"system", required_argument, NULL, 's'},
    {"n-predict", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"ctx-size", required_argument, NULL, 'c'},
    {"batch-size", required_argument, NULL, 'b'},
    {"verbose", no_argument, NULL, 'v'},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"vk-tier", required_argument, NULL, OPT_VK_TIER},
    {"vk-relaxed", no_argument, NULL, OPT_VK_RELAXED},
    {"cpu-isa", required_argument, NULL, OPT_CPU_ISA},
    {"memory-cap", required_argument, NULL, OPT_MEMORY_CAP},
    {"gpu-layers", required_argument, NULL, OPT_GPU_LAYERS},
    {"n-gpu-layers", required_argument, NULL, OPT_GPU_LAYERS},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"lora", required_argument, NULL, OPT_LORA},
    {"temp", required_argument, NULL, OPT_TEMP},
    {"top-k", required_argument, NULL, OPT_TOP_K},
    {"top-p", required_argument, NULL, OPT_TOP_P},
    {"min-p", required_argument, NULL, OPT_MIN_P},
    {"repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY},
    {"repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N},
    {"presence-penalty", required_argument, NULL, OPT_PRESENCE_PENALTY},
    {"frequency-penalty", required_argument, NULL, OPT_FREQUENCY_PENALTY},
    {"logprobs", required_argument, NULL, OPT_LOGPROBS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"parallel", required_argument, NULL, OPT_PARALLEL},
    {"kv-mib", required_argument, NULL, OPT_KV_MIB},
    {"kv-type", required_argument, NULL, OPT_KV_TYPE},
    {"chat", no_argument, NULL, OPT_CHAT},
    {"no-prefix-cache", no_argument, NULL, OPT_NO_PREFIX_CACHE},
    {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
    {"json", no_argument, NULL, OPT_JSON},
    {"json-schema", required_argument, NULL, OPT_JSON_SCHEMA},
    {"no-echo", no_argument, NULL, OPT_NO_ECHO},
    {"ids", no_argument, NULL, OPT_IDS},
    {"no-bos", no_argument, NULL, OPT_NO_BOS},
    {"no-parse-special", no_argument, NULL, OPT_NO_PARSE_SPECIAL},
    {"show-count", no_argument, NULL, OPT_SHOW_COUNT},
    {"no-tensors", no_argument, NULL, OPT_NO_TENSORS},
    {NULL, 0, NULL, 0},
};

int cli_getopt_error(int c, int argc, char **argv, const char *cmd) {
    /* getopt_long leaves the offending word at argv[optind - 1] */
    const char *word = optind - 1 < argc && optind >= 1 ? argv[optind - 1] : "?";
    if (c == ':')
        fprintf(stderr, "error: option %s needs a value\n", word);
    else if (optopt && optopt < 256 && strncmp(word, "--", 2) != 0)
        fprintf(stderr, "error: unknown option '-%c' for 'vkllm %s' (see vkllm %s --help)\n",
                optopt, cmd, cmd);
    else
        fprintf(stderr, "error: unknown option '%s' for 'vkllm %s' (see vkllm %s --help)\n", word,
                cmd, cmd);
    return 1;
}

bool cli_int(const char *opt, const char *v, long lo, long hi, const char *what, int *out) {
    if (parse_int(v, lo, hi, out)) return true;
    fprintf(stderr, "error: option %s: '%s' is not %s\n", opt, v, what);
    return false;
}

bool cli_float(const char *opt, const char *v, float lo, float hi, const char *what, float *out) {
    if (parse_float(v, lo, hi, out)) return true;
    fprintf(stderr, "error: option %s: '%s' is not %s\n", opt, v, what);
    return false;
}

/* FILE or FILE:SCALE (a path may hold ':' itself: only a number after the last one is a
 * scale). */
bool cli_lora_opt(const char *opt, const char *v, cli_opts *o) {
    if (o->n_lora == VKLLM_MAX_LORA) {
        fprintf(stderr, "error: %s: at most %d adapters\n", opt, VKLLM_MAX_LORA);
        return false;
    }
    float scale = 1.0f;
    const char *colon = strrchr(v, ':');
    static char paths[VKLLM_MAX_LORA][4096];
    char *path = paths[o->n_lora];
    snprintf(path, sizeof paths[0], "%s", v);
    if (colon && colon[1] && parse_float(colon + 1, -1e6f, 1e6f, &scale))
        path[colon - v] = '\0';
    else
        scale = 1.0f;
    if (!path[0]) {
        fprintf(stderr, "error: %s '%s': no file\n", opt, v);
        return false;
    }
    o->lora_path[o->n_lora] = path;
    o->lora_scale[o->n_lora++] = scale;
    return true;
}

static vkllm_lora g_lora[VKLLM_MAX_LORA];
static size_t g_n_lora;

size_t cli_lora(const vkllm_lora **out) {
    *out = g_lora;
    return g_n_lora;
}

int cli_parse(int argc, char **argv, const char *cmd, cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->oom_tips = CLI_OOM_TIPS;
    o->n_predict = 256;
    o->vk_tier = -1;
    o->sampling.temperature = 0.8f;
    o->sampling.top_k = 40;
    o->sampling.top_p = 0.95f;
    o->sampling.min_p = 0.05f;
    o->sampling.repeat_penalty = 1.0f;
    o->sampling.repeat_last_n = 64;
    o->logprobs = -1;
    cli_argv_ngl(argc, argv);
    optind = 1;
    opterr = 0;
    int c, li;
    /* the option as the user spelled it, for messages */
#define OPT (optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1])
#define INT(lo, hi, what, dst)                                                                     \
    if (!cli_int(OPT, optarg, lo, hi, what, dst)) return 1
#define FLT(lo, hi, what, dst)                                                                     \
    if (!cli_float(OPT, optarg, lo, hi, what, dst)) return 1
    while ((c = getopt_long(argc, argv, ":hm:p:f:s:n:t:c:b:v", k_long, &li)) != -1) {
        switch (c) {
        case 'h':
            return 2;
        case 'm':
            o->model = optarg;
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case 'f':
            o->prompt_file = optarg;
            break;
        case 's':
            o->system = optarg;
            break;
        case 'n':
            INT(0, INT_MAX, "a token count >= 0", &o->n_predict);
            break;
        case 't':
            INT(1, 1024, "a thread count in [1, 1024]", &o->n_threads);
            break;
        case 'c':
            INT(1, 1 << 20, "a context size in [1, 1048576]", &o->n_ctx);
            break;
        case 'b':
            INT(1, 4096, "a batch size in [1, 4096]", &o->n_batch);
            break;
        case 'v':
            o->verbose = true;
            break;
        case OPT_DEVICE:
            o->device = optarg;
            break;
        case OPT_VK_TIER:
            INT(0, 2, "a tier (0, 1 or 2)", &o->vk_tier);
            break;
        case OPT_VK_RELAXED:
            o->vk_relaxed = true;
            break;
        case OPT_CPU_ISA:
            o->cpu_isa = optarg;
            break;
        case OPT_MEMORY_CAP:
            INT(1, 1 << 24, "a size in MiB in [1, 16777216]", &o->memory_cap_mib);
            break;
        case OPT_GPU_LAYERS:
            if (!cli_gpu_layers(OPT, optarg, &o->gpu_layers)) return 1;
            o->gpu_layers++; /* plus one: 0 stays the default */
            break;
        case OPT_SPLIT:
            if (!cli_split(OPT, optarg, o->split, &o->n_split)) return 1;
            break;
        case OPT_LORA:
            if (!cli_lora_opt(OPT, optarg, o)) return 1;
            break;
        case OPT_TEMP:
            FLT(0.0f, 100.0f, "a temperature in [0, 100]", &o->sampling.temperature);
            break;
        case OPT_TOP_K:
            INT(0, INT_MAX, "a count >= 0", &o->sampling.top_k);
            break;
        case OPT_TOP_P:
            FLT(0.0f, 1.0f, "a probability in [0, 1]", &o->sampling.top_p);
            break;
        case OPT_MIN_P:
            FLT(0.0f, 1.0f, "a probability in [0, 1]", &o->sampling.min_p);
            break;
        case OPT_REPEAT_PENALTY:
            FLT(0.0f, 100.0f, "a penalty in [0, 100]", &o->sampling.repeat_penalty);
            break;
        case OPT_REPEAT_LAST_N:
            INT(0, 4096, "a count in [0, 4096]", &o->sampling.repeat_last_n);
            break;
        case OPT_PRESENCE_PENALTY:
            FLT(-2.0f, 2.0f, "a penalty in [-2, 2]", &o->presence_penalty);
            break;
        case OPT_FREQUENCY_PENALTY:
            FLT(-2.0f, 2.0f, "a penalty in [-2, 2]", &o->frequency_penalty);
            break;
        case OPT_LOGPROBS:
            INT(0, VKLLM_TOP_LOGPROBS_MAX, "a count in [0, 20]", &o->logprobs);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || *end || !*optarg || optarg[0] == '-') {
                fprintf(stderr, "error: option %s: '%s' is not a seed (unsigned integer)\n", OPT,
                        optarg);
                return 1;
            }
            o->sampling.seed = s;
            o->seed_set = true;
            break;
        }
        case OPT_PARALLEL:
            INT(1, 1024, "a sequence count in [1, 1024]", &o->parallel);
            break;
        case OPT_KV_MIB:
            INT(1, 1 << 24, "a size in MiB >= 1", &o->kv_mib);
            break;
        case OPT_KV_TYPE:
            if (strcmp(optarg, "f16") && strcmp(optarg, "q8_0")) {
                fprintf(stderr, "error: option %s: '%s' is not f16 or q8_0\n", OPT, optarg);
                return 1;
            }
            o->kv_type = optarg;
            break;
        case OPT_CHAT:
            o->chat = true;
            break;
        case OPT_NO_PREFIX_CACHE:
            o->no_prefix_cache = true;
            break;
        case OPT_IGNORE_EOS:
            o->ignore_eos = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_JSON_SCHEMA:
            o->json_schema_file = optarg;
            break;
        case OPT_NO_ECHO:
            o->no_echo = true;
            break;
        case OPT_IDS:
            o->ids_only = true;
            break;
        case OPT_NO_BOS:
            o->no_bos = true;
            break;
        case OPT_NO_PARSE_SPECIAL:
            o->no_parse_special = true;
            break;
        case OPT_SHOW_COUNT:
            o->show_count = true;
            break;
        case OPT_NO_TENSORS:
            o->no_tensors = true;
            break;
        default:
            return cli_getopt_error(c, argc, argv, cmd);
        }
    }
#undef OPT
#undef INT
#undef FLT
    /* a plain argument is the model file, where llama.cpp's tools take one that way */
    if (optind < argc) {
        if (o->model || optind + 1 < argc || strcmp(cmd, "info") != 0) {
            fprintf(stderr,
                    "error: unexpected argument '%s' for 'vkllm %s' (see vkllm %s --help)\n",
                    argv[optind], cmd, cmd);
            return 1;
        }
        o->model = argv[optind];
    }
    if (!o->seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o->sampling.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
    }
    return 0;
}

const char *cli_model_path(const cli_opts *o, char *buf, size_t cap) {
    if (o->model) return o->model;
    const char *env = getenv("VKLLM_MODEL");
    if (env && *env) return env;
    const char *cache = getenv("VKLLM_CACHE");
    if (cache && *cache) {
        snprintf(buf, cap, "%s/models/%s", cache, DEFAULT_MODEL_FILE);
    } else {
        const char *home = getenv("HOME");
        snprintf(buf, cap, "%s/.cache/vkllm/models/%s", home ? home : ".", DEFAULT_MODEL_FILE);
    }
    return buf;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_bar_start(cli_bar *b, const char *unit) {
    b->tty = isatty(2) != 0;
    b->t0 = cli_now();
    b->unit = unit;
}

void cli_bar_update(void *user, uint64_t done, uint64_t total) {
    const cli_bar *b = user;
    const double el = cli_now() - b->t0,
                 eta = done ? el / (double)done * (double)(total - done) : 0;
    if (b->tty) {
        const int w = 30, filled = total ? (int)(w * done / total) : w;
        fprintf(stderr, "\r[%.*s%*s] %s %llu/%llu  %.0f s, ETA %.0f s ", filled,
                "##############################", w - filled, "", b->unit, (unsigned long long)done,
                (unsigned long long)total, el, eta);
        if (done == total) fputc('\n', stderr);
    } else if (done == 1 || done == total || done % 10 == 0) {
        fprintf(stderr, "vkllm: %s %llu/%llu (%.0f s)\n", b->unit, (unsigned long long)done,
                (unsigned long long)total, el);
    }
}

void cli_log_stderr(void *user, vkllm_log_level level, const char *msg) {
    static const char *names[] = {"", "debug", "info", "warn", "error"};
    fprintf(stderr, "vkllm: %s: %s\n", level <= VKLLM_LOG_ERROR ? names[level] : "", msg);
}

void cli_error(vkllm_status st, const char *msg, const char *tips) {
    if (st != VKLLM_ERR_OUT_OF_MEMORY) {
        fprintf(stderr, "error: %s\n", msg);
        return;
    }
    char limit[64] = "";
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        snprintf(limit, sizeof limit, "%sa higher ulimit -v (now %llu MiB)", tips ? "; " : "",
                 (unsigned long long)(rl.rlim_cur >> 20));
    fprintf(stderr, "error: %s; not enough memory, try: %s%s%s%s\n", msg,
            strstr(msg, "memory cap") ? "a larger --memory-cap; " : "", tips ? tips : "", limit,
            !tips && !limit[0] ? "freeing memory" : "");
}

int cli_open(const cli_opts *o, bool vocab_only, vkllm_runtime **rt, vkllm_model **model) {
    char buf[4096];
    const char *path = cli_model_path(o, buf, sizeof buf);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "error: model file not found: %s%s\n", path,
                o->model ? "" : " (run scripts/fetch_model.sh to download the default model)");
        return 1;
    }
    vkllm_runtime_desc rd = {
        .log = cli_log_stderr,
        .log_level = o->verbose ? VKLLM_LOG_INFO : VKLLM_LOG_WARN,
        .n_threads = o->n_threads,
        .device = vocab_only ? "cpu" : o->device,
        .vk_tier_plus1 = o->vk_tier >= 0 ? o->vk_tier + 1 : 0,
        .cpu_isa = o->cpu_isa,
        .vk_relaxed_products = o->vk_relaxed,
        .memory_cap = (uint64_t)o->memory_cap_mib << 20,
    };
    const char *tips = vocab_only ? NULL : o->oom_tips; /* no weights, no context */
    vkllm_status s = vkllm_runtime_create(&rd, rt);
    if (s != VKLLM_OK) {
        cli_error(s, vkllm_runtime_last_error(NULL), tips);
        return 1;
    }
    vkllm_model_desc md = {.path = path, .vocab_only = vocab_only};
    cli_model_place(o, &md);
    s = vkllm_model_load(*rt, &md, model);
    if (s != VKLLM_OK) {
        char msg[4600];
        snprintf(msg, sizeof msg, "%s: %s", path, vkllm_runtime_last_error(*rt));
        cli_error(s, msg, tips);
        vkllm_runtime_destroy(*rt);
        *rt = NULL;
        return 1;
    }
    if (!vocab_only) cli_print_placement(*model);
    g_n_lora = 0;
    for (int i = 0; i < o->n_lora && !vocab_only; i++) {
        vkllm_adapter_desc ad = {.struct_size = sizeof ad, .path = o->lora_path[i]};
        s = vkllm_adapter_load(*model, &ad, &g_lora[i].adapter);
        if (s != VKLLM_OK) {
            cli_error(s, vkllm_model_last_error(*model), NULL);
            vkllm_model_free(*model);
            vkllm_runtime_destroy(*rt);
            *model = NULL;
            *rt = NULL;
            g_n_lora = 0;
            return 1;
        }
        g_lora[i].scale = o->lora_scale[i];
        g_n_lora++;
        fprintf(stderr, "adapter: %s (rank %u, %u tensors), scale %g\n",
                vkllm_adapter_name(g_lora[i].adapter), vkllm_adapter_rank(g_lora[i].adapter),
                vkllm_adapter_n_tensors(g_lora[i].adapter), (double)g_lora[i].scale);
    }
    return 0;
}

void cli_argv_ngl(int argc, char **argv) {
    static char ngl[] = "--gpu-layers";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-ngl") == 0) argv[i] = ngl;
    }
}

bool cli_gpu_layers(const char *opt, const char *v, int *out) {
    if (strcmp(v, "all") == 0) {
        *out = -1;
        return true;
    }
    return cli_int(opt, v, 0, 1 << 20, "a layer count >= 0 or 'all'", out);
}

bool cli_split(const char *opt, const char *v, float *out, int *n) {
    *n = 0;
    double sum = 0;
    for (const char *p = v;;) {
        char *end;
        errno = 0;
        const double x = strtod(p, &end);
        if (end == p || errno || !(x >= 0 && x <= 1e6) || (*end != ',' && *end != '\0')) {
            fprintf(stderr, "error: %s '%s': shares are numbers >= 0 separated by commas (3,1)\n",
                    opt, v);
            return false;
        }
        if (*n == CLI_MAX_SPLIT) {
            fprintf(stderr, "error: %s '%s': more than %d shares\n", opt, v, CLI_MAX_SPLIT);
            return false;
        }
        out[(*n)++] = (float)x;
        sum += x;
        if (*end == '\0') break;
        p = end + 1;
    }
    if (!(sum > 0)) {
        fprintf(stderr, "error: %s '%s': the shares sum to zero\n", opt, v);
        return false;
    }
    return true;
}

void cli_model_place(const cli_opts *o, vkllm_model_desc *md) {
    md->struct_size = sizeof *md;
    md->gpu_layers_plus1 = o->gpu_layers;
    md->split = o->n_split ? o->split : NULL;
    md->n_split = (uint32_t)o->n_split;
    /* the KV room to keep beside the layers: the engine's sequences when it runs several
     * (run --parallel, serve), each of the context's length */
    const uint64_t per = o->n_ctx > 0 ? (uint64_t)o->n_ctx : (o->parallel > 1 ? 4096 : 0);
    uint64_t hint = per * (uint64_t)(o->parallel > 1 ? o->parallel : 1);
    if (o->kv_mib > 0) hint = 0; /* the engine's budget is in MiB: the default hint */
    md->n_ctx_hint = hint > UINT32_MAX ? UINT32_MAX : (uint32_t)hint;
}

void cli_print_placement(const vkllm_model *m) {
    vkllm_placement p[8] = {{.struct_size = sizeof(vkllm_placement)}};
    size_t n = 0;
    if (vkllm_model_placement(m, p, 8, &n) != VKLLM_OK || n < 2) return;
    for (size_t i = 0; i < n && i < 8; i++) {
        char layers[48] = "no layer";
        if (p[i].n_layers)
            snprintf(layers, sizeof layers, "layers %u-%u", p[i].layer0,
                     p[i].layer0 + p[i].n_layers - 1);
        fprintf(stderr,
                "placement: %-9s %-15s%s%s %8.1f MiB of weights (%.1f MiB on the device)  %s\n",
                p[i].device, layers, p[i].embedding ? " +embedding" : "",
                p[i].output ? " +head" : "", (double)p[i].weight_bytes / 1048576.0,
                (double)p[i].device_bytes / 1048576.0, p[i].name);
    }
}

char *cli_read_prompt(const cli_opts *o, size_t *len) {
    if (o->prompt && o->prompt_file) {
        fprintf(stderr, "error: give -p or -f, not both\n");
        return NULL;
    }
    if (o->prompt) {
        *len = strlen(o->prompt);
        char *p = malloc(*len + 1);
        if (p) memcpy(p, o->prompt, *len + 1);
        return p;
    }
    if (!o->prompt_file) {
        fprintf(stderr, "error: no prompt (give -p TEXT or -f FILE)\n");
        return NULL;
    }
    FILE *f = fopen(o->prompt_file, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open prompt file %s: %s\n", o->prompt_file, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    for (;;) {
        if (!p) break;
        if (n + 1 >= cap) {
            char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
        size_t got = fread(p + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!p || bad) {
        free(p);
        fprintf(stderr, "error: cannot read prompt file %s\n", o->prompt_file);
        return NULL;
    }
    p[n] = '\0';
    *len = n;
    return p;
}

int cli_json_schema(const cli_opts *o, char **out) {
    *out = NULL;
    if (o->json && o->json_schema_file) {
        fprintf(stderr, "error: give --json or --json-schema, not both\n");
        return 1;
    }
    if (o->json) {
        *out = strdup(VKLLM_JSON_ANY_OBJECT);
        return *out ? 0 : 1;
    }
    if (!o->json_schema_file) return 0;
    FILE *f = fopen(o->json_schema_file, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open schema file %s: %s\n", o->json_schema_file,
                strerror(errno));
        return 1;
    }
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    while (p) {
        if (n + 1 >= cap) {
            char *q = realloc(p, cap *= 2);
            if (!q) free(p);
            p = q;
            continue;
        }
        const size_t got = fread(p + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (!p || bad) {
        fprintf(stderr, "error: cannot read schema file %s\n", o->json_schema_file);
        free(p);
        return 1;
    }
    p[n] = '\0';
    *out = p;
    return 0;
}
