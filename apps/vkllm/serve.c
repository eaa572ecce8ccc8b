/* vkllm serve: its options, start-up and shutdown. The server listens before it loads the
 * model (GET /health answers 503 meanwhile), then runs one engine (its own thread) for every
 * request. SIGINT and SIGTERM are blocked in every thread and taken here with sigwait: the
 * server stops accepting, cancels what is in flight, waits for its connections to end, frees
 * everything and exits 0. */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void serve_usage(FILE *f) {
    fprintf(
        f,
        "usage: vkllm serve [options]\n\n"
        "An OpenAI-compatible HTTP server (POST /v1/chat/completions, /v1/completions,\n"
        "GET /v1/models, /health, /metrics, POST /tokenize, /detokenize; docs/serve.md)\n"
        "and a chat page at http://HOST:PORT/.\n"
        "One engine serves every request with continuous batching and a prefix cache.\n\n"
        "  -m, --model FILE       GGUF model (default: $VKLLM_MODEL, else the default model)\n"
        "      --host ADDR        address to listen on (default 127.0.0.1)\n"
        "      --port N           port (default 8080; 0: any free one, printed)\n"
        "      --alias NAME       the model's name in the API (default: the file's name)\n"
        "      --api-key KEY      require 'Authorization: Bearer KEY'\n"
        "      --api-key-file F   the key from the first line of a file\n"
        "      --parallel N       sequences generated at once (default 4)\n"
        "      --queue N          requests that may wait beyond those, then 429 (default 64)\n"
        "  -c, --ctx-size N       tokens per sequence, prompt and answer (default: min(training\n"
        "                         context, 4096))\n"
        "  -b, --batch-size N     tokens per engine step (default 512)\n"
        "      --kv-mib N         KV cache budget in MiB (default: room for --parallel full\n"
        "                         sequences, at most 1024)\n"
        "      --kv-type T        KV cache type: f16 (default) or q8_0\n"
        "      --no-prefix-cache  do not reuse the KV pages of shared prompt starts\n"
        "      --max-body BYTES   largest request body (default 1048576; 413 above)\n"
        "      --max-n N          largest n (choices per request, default 8)\n"
        "      --max-tokens N     largest max_tokens a request may ask (default: no limit\n"
        "                         but the context)\n"
        "      --timeout S        close a connection idle this long (default 600)\n"
        "      --max-conns N      connections at once (default 128)\n"
        "  -t, --threads N        CPU threads (default: all cores)\n"
        "      --device DEV       auto (default), cpu, vulkan, vulkan:N or vulkan:NAME; or a\n"
        "                         list over which the model is split (vulkan:0,vulkan:1)\n"
        "  -ngl, --gpu-layers N   layers on the GPU (default all); the rest on the CPU\n"
        "      --split R1,R2,...  shares of the layers for the listed devices\n"
        "      --lora FILE[:S]    a LoRA adapter (llama.cpp's GGUF format), scale S (default\n"
        "                         1), served as a model of its own: a request whose model is\n"
        "                         the adapter's name uses it (repeat for several; /v1/models)\n"
        "      --memory-cap MIB   most device memory to use (a larger model runs in part\n"
        "                         on the CPU)\n"
        "      --vk-tier N        highest Vulkan capability tier to use (0, 1, 2)\n"
        "      --vk-relaxed       the device's own multiply-add in matrix products (lavapipe)\n"
        "      --cpu-isa ISA      CPU kernels: auto (default), scalar, avx2, avx512, avx512vnni\n"
        "  -v, --verbose          log what the runtime and the HTTP server do\n");
}

enum {
    O_HOST = 300,
    O_PORT,
    O_ALIAS,
    O_KEY,
    O_KEY_FILE,
    O_PARALLEL,
    O_QUEUE,
    O_KV_MIB,
    O_KV_TYPE,
    O_NO_PREFIX,
    O_MAX_BODY,
    O_MAX_N,
    O_MAX_TOKENS,
    O_TIMEOUT,
    O_MAX_CONNS,
    O_DEVICE,
    O_VK_TIER,
    O_VK_RELAXED,
    O_CPU_ISA,
    O_MEMORY_CAP,
    O_GPU_LAYERS,
    O_SPLIT,
    O_LORA,
};

static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: --api-key-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char line[4096];
    const bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = got ? strlen(line) : 0;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n == 0) {
        fprintf(stderr, "error: --api-key-file %s: the first line is empty\n", path);
        return NULL;
    }
    return strdup(line);
}

/* 0: go on; else the exit status + 1 (1: ok, after --help; 2: error) */
static int parse(int argc, char **argv, srv_opts *o) {
    static const struct option lo[] = {
        {"help", no_argument, NULL, 'h'},
        {"model", required_argument, NULL, 'm'},
        {"ctx-size", required_argument, NULL, 'c'},
        {"batch-size", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"alias", required_argument, NULL, O_ALIAS},
        {"api-key", required_argument, NULL, O_KEY},
        {"api-key-file", required_argument, NULL, O_KEY_FILE},
        {"parallel", required_argument, NULL, O_PARALLEL},
        {"queue", required_argument, NULL, O_QUEUE},
        {"kv-mib", required_argument, NULL, O_KV_MIB},
        {"kv-type", required_argument, NULL, O_KV_TYPE},
        {"no-prefix-cache", no_argument, NULL, O_NO_PREFIX},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"max-n", required_argument, NULL, O_MAX_N},
        {"max-tokens", required_argument, NULL, O_MAX_TOKENS},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"max-conns", required_argument, NULL, O_MAX_CONNS},
        {"device", required_argument, NULL, O_DEVICE},
        {"vk-tier", required_argument, NULL, O_VK_TIER},
        {"vk-relaxed", no_argument, NULL, O_VK_RELAXED},
        {"cpu-isa", required_argument, NULL, O_CPU_ISA},
        {"memory-cap", required_argument, NULL, O_MEMORY_CAP},
        {"gpu-layers", required_argument, NULL, O_GPU_LAYERS},
        {"n-gpu-layers", required_argument, NULL, O_GPU_LAYERS},
        {"split", required_argument, NULL, O_SPLIT},
        {"lora", required_argument, NULL, O_LORA},
        {NULL, 0, NULL, 0},
    };
    cli_opts *c = &o->cli;
    c->vk_tier = -1;
    c->parallel = 4;
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 1 << 20;
    o->timeout_s = 600;
    o->max_conns = 128;
    o->queue = 64;
    o->max_n = 8;
    const char *key_file = NULL;
    int body = 0, opt;
    cli_argv_ngl(argc, argv);
    optind = 1;
    opterr = 0;
#define OPT (optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1])
#define INT(lo_, hi_, what, dst)                                                                   \
    if (!cli_int(OPT, optarg, lo_, hi_, what, dst)) return 2
    while ((opt = getopt_long(argc, argv, ":hm:c:b:t:v", lo, NULL)) != -1) {
        switch (opt) {
        case 'h':
            serve_usage(stdout);
            return 1;
        case 'm':
            c->model = optarg;
            break;
        case 'c':
            INT(16, 1 << 20, "a context size in [16, 1048576]", &c->n_ctx);
            break;
        case 'b':
            INT(1, 4096, "a batch size in [1, 4096]", &c->n_batch);
            break;
        case 't':
            INT(1, 1024, "a thread count in [1, 1024]", &c->n_threads);
            break;
        case 'v':
            c->verbose = true;
            break;
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            INT(0, 65535, "a port in [0, 65535]", &o->port);
            break;
        case O_ALIAS:
            o->alias = optarg;
            break;
        case O_KEY:
            free(o->api_key);
            o->api_key = strdup(optarg);
            break;
        case O_KEY_FILE:
            key_file = optarg;
            break;
        case O_PARALLEL:
            INT(1, 1024, "a sequence count in [1, 1024]", &c->parallel);
            break;
        case O_QUEUE:
            INT(0, 100000, "a count in [0, 100000]", &o->queue);
            break;
        case O_KV_MIB:
            INT(1, 1 << 24, "a size in MiB >= 1", &c->kv_mib);
            break;
        case O_KV_TYPE:
            if (strcmp(optarg, "f16") && strcmp(optarg, "q8_0")) {
                fprintf(stderr, "error: option %s: '%s' is not f16 or q8_0\n", OPT, optarg);
                return 2;
            }
            c->kv_type = optarg;
            break;
        case O_NO_PREFIX:
            c->no_prefix_cache = true;
            break;
        case O_MAX_BODY:
            INT(64, INT_MAX, "a size in bytes >= 64", &body);
            o->max_body = (size_t)body;
            break;
        case O_MAX_N:
            INT(1, 128, "a count in [1, 128]", &o->max_n);
            break;
        case O_MAX_TOKENS:
            INT(1, INT_MAX, "a token count >= 1", &o->max_tokens);
            break;
        case O_TIMEOUT:
            INT(1, 86400, "seconds in [1, 86400]", &o->timeout_s);
            break;
        case O_MAX_CONNS:
            INT(1, 10000, "a count in [1, 10000]", &o->max_conns);
            break;
        case O_DEVICE:
            c->device = optarg;
            break;
        case O_VK_TIER:
            INT(0, 2, "a tier (0, 1 or 2)", &c->vk_tier);
            break;
        case O_VK_RELAXED:
            c->vk_relaxed = true;
            break;
        case O_MEMORY_CAP:
            INT(1, 1 << 24, "a size in MiB in [1, 16777216]", &c->memory_cap_mib);
            break;
        case O_GPU_LAYERS:
            if (!cli_gpu_layers(OPT, optarg, &c->gpu_layers)) return 2;
            c->gpu_layers++; /* plus one: 0 stays the default */
            break;
        case O_SPLIT:
            if (!cli_split(OPT, optarg, c->split, &c->n_split)) return 2;
            break;
        case O_LORA:
            if (!cli_lora_opt(OPT, optarg, c)) return 2;
            break;
        case O_CPU_ISA:
            c->cpu_isa = optarg;
            break;
        default:
            cli_getopt_error(opt, argc, argv, "serve");
            return 2;
        }
    }
#undef OPT
#undef INT
    if (optind < argc) {
        fprintf(stderr,
                "error: unexpected argument '%s' for 'vkllm serve' (see vkllm serve --help)\n",
                argv[optind]);
        return 2;
    }
    if (o->api_key && key_file) {
        fprintf(stderr, "error: give --api-key or --api-key-file, not both\n");
        return 2;
    }
    if (key_file && !(o->api_key = read_key_file(key_file))) return 2;
    if (o->api_key && !o->api_key[0]) {
        fprintf(stderr, "error: --api-key: the key is empty\n");
        return 2;
    }
    return 0;
}

/* Whether every address host names is a loopback one (127.0.0.0/8, ::1). */
static bool loopback_only(const char *host) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0) return false;
    bool lo = ai != NULL;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)p->ai_addr;
            lo = lo && (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (p->ai_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)p->ai_addr;
            lo = lo && memcmp(&a->sin6_addr, &in6addr_loopback, sizeof a->sin6_addr) == 0;
        } else {
            lo = false;
        }
    }
    freeaddrinfo(ai);
    return lo;
}

/* Loads the model and makes the engine; the server answers 503 until then. */
static int load(srv_server *s) {
    const cli_opts *c = &s->o.cli;
    if (cli_open(c, false, &s->rt, &s->model)) return 1;
    vkllm_model_info mi = {.struct_size = sizeof mi};
    vkllm_model_get_info(s->model, &mi);
    s->n_vocab = mi.n_vocab;
    s->n_ctx = c->n_ctx ? (uint32_t)c->n_ctx : mi.n_ctx_train < 4096 ? mi.n_ctx_train : 4096;
    s->parallel = (uint32_t)c->parallel;
    vkllm_engine_desc ed = {.struct_size = sizeof ed,
                            .max_seqs = s->parallel,
                            .n_ctx = s->n_ctx,
                            .n_batch = (uint32_t)c->n_batch,
                            .kv_bytes = (uint64_t)c->kv_mib << 20,
                            .kv_type = c->kv_type,
                            .no_prefix_cache = c->no_prefix_cache};
    if (vkllm_engine_create(s->model, &ed, &s->engine) != VKLLM_OK) {
        fprintf(stderr, "error: %s\n", vkllm_model_last_error(s->model));
        return 1;
    }
    char buf[4096];
    const char *path = cli_model_path(c, buf, sizeof buf), *slash = strrchr(path, '/');
    snprintf(s->file_name, sizeof s->file_name, "%s", slash ? slash + 1 : path);
    snprintf(s->name, sizeof s->name, "%s", s->o.alias ? s->o.alias : s->file_name);
    s->max_inflight = (int)s->parallel + s->o.queue;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    srv_server *s = calloc(1, sizeof *s);
    if (!s) return 1;
    const int pr = parse(argc, argv, &s->o);
    if (pr) {
        free(s->o.api_key);
        free(s);
        return pr - 1;
    }
    s->lim = (srv_limits){.max_n = (uint32_t)s->o.max_n, .max_tokens = s->o.max_tokens};
    s->created = (long long)time(NULL);
    srv_metrics_init(&s->metrics);
    /* "0.2.0 (git abc1234)" -> "vkllm-0.2.0-abc1234" */
    size_t fn = (size_t)snprintf(s->fingerprint, sizeof s->fingerprint, "vkllm-");
    for (const char *v = vkllm_version_string(); *v && fn + 1 < sizeof s->fingerprint; v++) {
        if (strncmp(v, "(git ", 5) == 0) v += 5;
        if (*v == ' ')
            s->fingerprint[fn++] = '-';
        else if (*v != ')' && *v != '(')
            s->fingerprint[fn++] = *v;
    }
    s->fingerprint[fn] = '\0';
    atomic_store(&s->state, SRV_LOADING);
    if (!s->o.api_key && !loopback_only(s->o.host))
        fprintf(stderr,
                "vkllm serve: warning: listening on %s, which is not a loopback address, "
                "without an API key: anyone who reaches it can use the model (--api-key)\n",
                s->o.host);
    char path_buf[4096];
    const char *path = cli_model_path(&s->o.cli, path_buf, sizeof path_buf);
    if (access(path, R_OK) != 0) { /* before listening: a missing model fails at once */
        fprintf(stderr, "error: model file not found: %s%s\n", path,
                s->o.cli.model ? ""
                               : " (run scripts/fetch_model.sh to download the default model)");
        srv_metrics_destroy(&s->metrics);
        free(s->o.api_key);
        free(s);
        return 1;
    }
    /* signals are taken by sigwait below: blocked in this thread and so in every thread it
     * starts (MHD's, the engine's, the CPU backend's) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int port = 0, rc = 0;
    struct MHD_Daemon *d = srv_http_start(s, &port);
    if (!d) {
        rc = 1;
    } else {
        const bool v6 = strchr(s->o.host, ':') != NULL;
        fprintf(stderr, "vkllm serve: listening on http://%s%s%s:%d/ (loading the model)\n",
                v6 ? "[" : "", s->o.host, v6 ? "]" : "", port);
        rc = load(s);
    }
    if (rc == 0) {
        atomic_store(&s->state, SRV_READY);
        fprintf(stderr,
                "vkllm serve: ready: %s on %s, %u sequences of %u tokens, %d more may wait%s\n",
                s->name, vkllm_runtime_backend_name(s->rt), s->parallel, s->n_ctx, s->o.queue,
                s->o.api_key ? ", API key required" : "");
        int sig = 0;
        while (sigwait(&sigs, &sig) != 0) {
        }
        fprintf(stderr, "vkllm serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    /* stop accepting; waiting connections see SRV_STOPPING, cancel and end; then the rest */
    atomic_store(&s->state, SRV_STOPPING);
    if (d) {
        const MHD_socket listen_fd = MHD_quiesce_daemon(d); /* ours to close now */
        MHD_stop_daemon(d);
        if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    }
    vkllm_engine_destroy(s->engine);
    vkllm_model_free(s->model);
    vkllm_runtime_destroy(s->rt);
    srv_metrics_destroy(&s->metrics);
    free(s->o.api_key);
    free(s);
    if (rc == 0) fprintf(stderr, "vkllm serve: stopped\n");
    return rc;
}
