/* vkllm bench's command line: its help text and its options (getopt_long) into a bench_opts,
 * lists defaulted where not given. */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void bench_usage(FILE *f) {
    fprintf(
        f,
        "usage: vkllm bench [options]\n\n"
        "Measures prefill and decode speed, like llama-bench: every combination of the\n"
        "lists below is a test, run -r times after one unmeasured warm-up. Lists are\n"
        "comma separated (-p 128,512) or given by repeating the option.\n\n"
        "  -m, --model FILE,...     GGUF models (default: the default model)\n"
        "  -p, --n-prompt N,...     prefill tests: N prompt tokens (default 512; 0: none)\n"
        "  -n, --n-gen N,...        decode tests: N tokens one at a time (default 128; 0: none)\n"
        "  -d, --n-depth N,...      tokens already in the context when a test starts\n"
        "                           (default 0; llama-bench's -d)\n"
        "  -b, --batch-size N,...   prompt tokens per step (default 512)\n"
        "  -t, --threads N,...      CPU threads (default: all cores)\n"
        "  -r, --repetitions N      measured runs per test (default 3)\n"
        "      --device DEV,...     auto (default), cpu, vulkan, vulkan:N, vulkan:NAME; a\n"
        "                           model split over several devices joins them with +\n"
        "                           (vulkan:0+vulkan:1, vulkan+cpu)\n"
        "  -ngl, --gpu-layers N,... layers on the GPU(s), as llama-bench's -ngl (default\n"
        "                           all; 'all'); the rest and the embedding on the CPU\n"
        "      --split R1,R2,...    shares of the layers for a +-joined device list\n"
        "      --lora FILE[:S]      a LoRA adapter on every model test (repeat for several)\n"
        "      --vk-tier N,...      Vulkan capability tiers to run at (default: the best)\n"
        "      --vk-relaxed         matrix products in the device's own multiply-add where\n"
        "                           it has no fused one (lavapipe): faster, not the CPU's\n"
        "                           bits\n"
        "      --cpu-isa ISA,...    CPU kernel sets: auto (default), scalar, avx2, avx512,\n"
        "                           avx512vnni (the same bits from each; their speed)\n"
        "      --no-probe           skip the bandwidth probe (no roofline figures)\n"
        "      --json FILE          write the records as JSON (schema: docs/bench-json.md)\n"
        "      --csv FILE           write the records as CSV, one row a record\n"
        "  -v, --verbose            log what the runtime does\n\n"
        "Kernel microbenchmarks (instead of the model tests):\n"
        "      --ops                time matrix products and attention at model shapes\n"
        "      --ops-shape S,...    shapes (default smollm2-135m,llama-3.2-1b,llama-2-7b); also\n"
        "                           'tbo': test-backend-ops perf's (MUL_MAT m=4096 k=14336,\n"
        "                           FLASH_ATTN_EXT hs=64 nh=64/8 kv=7680); see vkllm synth\n"
        "                           --help for the names\n"
        "      --ops-type T,...     weight types (default q4_0,q4_1,q8_0,f16)\n"
        "      --ops-tokens N,...   vectors per product / queries per attention (default 1,512)\n"
        "      --ops-ctx N          attention: cache length (default 512)\n"
        "      --ops-seconds S      time per case (default 0.5)\n\n"
        "Serving tests (the engine: continuous batching, prefix cache, vkllm_step):\n"
        "      --parallel N,...     N sequences at once, each a prompt of -p tokens then -n\n"
        "                           tokens: prefill and aggregate decode tok/s (llama.cpp's\n"
        "                           llama-batched-bench -npl)\n"
        "      --prefix N,...       time to first token of a request that shares an N-token\n"
        "                           prefix with an earlier one, with and without the prefix\n"
        "                           cache (-p: the tokens after the prefix, default 16 here)\n"
        "      --step-budget MS,... vkllm_step(budget) call times while --parallel's first N\n"
        "                           sequences run (default 4), against the longest kernel\n"
        "      --no-overlap         one engine step at a time (default: greedy decode steps\n"
        "                           are submitted while the step before runs, on Vulkan)\n");
}

/* ---- options ---- */

static bool add_ints(ilist *l, const char *s, int lo, int hi) {
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < lo || v > hi || (*end && *end != ',') || l->n == LIST_MAX)
            return false;
        l->v[l->n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return l->n > 0;
}

/* Splits s at commas in place (s is an argv string the process owns). */
static bool add_strs(slist *l, char *s) {
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (l->n == LIST_MAX) return false;
        l->v[l->n++] = tok;
    }
    return l->n > 0;
}

enum {
    B_OPS = 256,
    B_NO_PROBE,
    B_NO_OVERLAP,
    B_VK_RELAXED,
    B_VK_TIER,
    B_OPS_TOKENS,
    B_PARALLEL,
    B_PREFIX,
    B_STEP_BUDGET,
    B_OPS_CTX,
    B_OPS_SECONDS,
    B_DEVICE,
    B_CPU_ISA,
    B_OPS_SHAPE,
    B_OPS_TYPE,
    B_JSON,
    B_CSV,
    B_GPU_LAYERS,
    B_SPLIT,
    B_LORA,
};

static const struct option k_bench_long[] = {
    {"help", no_argument, NULL, 'h'},
    {"verbose", no_argument, NULL, 'v'},
    {"model", required_argument, NULL, 'm'},
    {"n-prompt", required_argument, NULL, 'p'},
    {"n-gen", required_argument, NULL, 'n'},
    {"n-depth", required_argument, NULL, 'd'},
    {"batch-size", required_argument, NULL, 'b'},
    {"threads", required_argument, NULL, 't'},
    {"repetitions", required_argument, NULL, 'r'},
    {"ops", no_argument, NULL, B_OPS},
    {"no-probe", no_argument, NULL, B_NO_PROBE},
    {"no-overlap", no_argument, NULL, B_NO_OVERLAP},
    {"vk-relaxed", no_argument, NULL, B_VK_RELAXED},
    {"vk-tier", required_argument, NULL, B_VK_TIER},
    {"ops-tokens", required_argument, NULL, B_OPS_TOKENS},
    {"parallel", required_argument, NULL, B_PARALLEL},
    {"prefix", required_argument, NULL, B_PREFIX},
    {"step-budget", required_argument, NULL, B_STEP_BUDGET},
    {"ops-ctx", required_argument, NULL, B_OPS_CTX},
    {"ops-seconds", required_argument, NULL, B_OPS_SECONDS},
    {"device", required_argument, NULL, B_DEVICE},
    {"cpu-isa", required_argument, NULL, B_CPU_ISA},
    {"ops-shape", required_argument, NULL, B_OPS_SHAPE},
    {"ops-type", required_argument, NULL, B_OPS_TYPE},
    {"json", required_argument, NULL, B_JSON},
    {"csv", required_argument, NULL, B_CSV},
    {"gpu-layers", required_argument, NULL, B_GPU_LAYERS},
    {"n-gpu-layers", required_argument, NULL, B_GPU_LAYERS},
    {"split", required_argument, NULL, B_SPLIT},
    {"lora", required_argument, NULL, B_LORA},
    {NULL, 0, NULL, 0},
};

int bench_parse(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->reps = 3;
    o->op_ctx = 512;
    o->op_seconds = 0.5;
    cli_argv_ngl(argc, argv);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":hvm:p:n:d:b:t:r:", k_bench_long, NULL)) != -1) {
        char *v = optarg;
        bool ok = true;
        switch (c) {
        case 'h':
            return 2;
        case 'v':
            o->verbose = true;
            break;
        case B_OPS:
            o->ops = true;
            break;
        case B_NO_PROBE:
            o->no_probe = true;
            break;
        case B_NO_OVERLAP:
            o->no_overlap = true;
            break;
        case B_VK_RELAXED:
            o->vk_relaxed = true;
            break;
        case 'm':
            ok = add_strs(&o->models, v);
            break;
        case 'p':
            ok = add_ints(&o->prompt, v, 0, 1 << 20);
            break;
        case 'n':
            ok = add_ints(&o->gen, v, 0, 1 << 20);
            break;
        case 'd':
            ok = add_ints(&o->depth, v, 0, 1 << 20);
            break;
        case 'b':
            ok = add_ints(&o->batch, v, 1, 4096);
            break;
        case 't':
            ok = add_ints(&o->threads, v, 1, 1024);
            break;
        case B_VK_TIER:
            ok = add_ints(&o->tiers, v, 0, 2);
            break;
        case B_OPS_TOKENS:
            ok = add_ints(&o->op_tokens, v, 1, 4096);
            break;
        case B_PARALLEL:
            ok = add_ints(&o->parallel, v, 1, 1024);
            break;
        case B_PREFIX:
            ok = add_ints(&o->prefix, v, 16, 1 << 20);
            break;
        case B_STEP_BUDGET:
            ok = add_ints(&o->step_ms, v, 1, 10000);
            break;
        case 'r':
            ok = cli_int("-r", v, 1, 1000, "a count in [1, 1000]", &o->reps);
            break;
        case B_OPS_CTX:
            ok = cli_int("--ops-ctx", v, 1, 1 << 20, "a size in [1, 1048576]", &o->op_ctx);
            break;
        case B_OPS_SECONDS: {
            char *end;
            o->op_seconds = strtod(v, &end);
            ok = *v && !*end && o->op_seconds > 0 && o->op_seconds <= 600;
            break;
        }
        case B_DEVICE:
            ok = add_strs(&o->devices, v);
            for (int i = 0; ok && i < o->devices.n; i++) /* a split runtime: + joins */
                for (char *p = (char *)o->devices.v[i]; *p; p++)
                    if (*p == '+') *p = ',';
            break;
        case B_GPU_LAYERS: {
            char one[32];
            if (!*v) ok = cli_gpu_layers("-ngl", v, &(int){0}); /* says what is wanted */
            for (const char *p = v; ok && *p;) {
                const size_t len = strcspn(p, ",");
                int n;
                ok = len < sizeof one && o->ngl.n < LIST_MAX;
                if (ok) {
                    memcpy(one, p, len);
                    one[len] = '\0';
                    ok = cli_gpu_layers("-ngl", one, &n);
                }
                if (ok) o->ngl.v[o->ngl.n++] = n;
                p += len + (p[len] == ',');
            }
            if (!ok) return 1; /* cli_gpu_layers said why */
            break;
        }
        case B_SPLIT:
            if (!cli_split("--split", v, o->split, &o->n_split)) return 1;
            o->split_text = v;
            break;
        case B_LORA:
            if (!cli_lora_opt("--lora", v, &o->lora)) return 1;
            break;
        case B_CPU_ISA:
            ok = add_strs(&o->cpu_isas, v);
            break;
        case B_OPS_SHAPE:
            ok = add_strs(&o->op_shapes, v);
            break;
        case B_OPS_TYPE:
            ok = add_strs(&o->op_types, v);
            break;
        case B_JSON:
            o->json = v;
            break;
        case B_CSV:
            o->csv = v;
            break;
        default:
            return cli_getopt_error(c, argc, argv, "bench");
        }
        if (!ok) {
            fprintf(stderr, "error: option %s: bad value '%s' (see vkllm bench --help)\n",
                    optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1], v);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "error: unexpected argument '%s' for 'vkllm bench' (see vkllm bench --help)\n",
                argv[optind]);
        return 1;
    }
    if (!o->prompt.n && o->prefix.n) o->prompt.v[o->prompt.n++] = 16;
    if (!o->prompt.n) o->prompt.v[o->prompt.n++] = 512;
    if (!o->gen.n) o->gen.v[o->gen.n++] = 128;
    if (!o->depth.n) o->depth.v[o->depth.n++] = 0;
    if (!o->batch.n) o->batch.v[o->batch.n++] = 512;
    if (!o->threads.n) o->threads.v[o->threads.n++] = 0;
    if (!o->tiers.n) o->tiers.v[o->tiers.n++] = -1;
    if (!o->devices.n) o->devices.v[o->devices.n++] = "auto";
    if (!o->cpu_isas.n) o->cpu_isas.v[o->cpu_isas.n++] = "auto";
    if (!o->ngl.n) o->ngl.v[o->ngl.n++] = -1;
    if (!o->op_tokens.n) {
        o->op_tokens.v[o->op_tokens.n++] = 1;
        o->op_tokens.v[o->op_tokens.n++] = 512;
    }
    static const char *k_shapes[] = {"smollm2-135m", "llama-3.2-1b", "llama-2-7b"};
    static const char *k_types[] = {"q4_0", "q4_1", "q8_0", "f16"};
    for (int i = 0; !o->op_shapes.n && i < 3; i++)
        o->op_shapes.v[i] = k_shapes[i];
    if (!o->op_shapes.n) o->op_shapes.n = 3;
    for (int i = 0; !o->op_types.n && i < 4; i++)
        o->op_types.v[i] = k_types[i];
    if (!o->op_types.n) o->op_types.n = 4;
    return 0;
}
