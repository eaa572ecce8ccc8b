/* vkllm perplexity: a model's perplexity over a text file, as llama-perplexity measures it, and
 * its KL divergence from a base model's saved log-probabilities. */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkllm perplexity -m MODEL -f TEXT [options]\n\n"
            "Perplexity of the model over a text, measured as llama-perplexity does: the text\n"
            "is cut into chunks of -c tokens (each starting with BOS), and the second half of\n"
            "every chunk is scored. Prints the final estimate with its standard error.\n\n"
            "  -m, --model FILE       GGUF model (default: $VKLLM_MODEL, else the default model)\n"
            "  -f, --file FILE        the text\n"
            "  -c, --ctx-size N       tokens per chunk (default 512)\n"
            "  -b, --batch-size N     tokens per step (default: -c; must divide -c)\n"
            "      --chunks N         score only the first N chunks (default: all)\n"
            "      --kl-base FILE     save this model's log-probabilities to FILE\n"
            "      --kl FILE          compare with the log-probabilities in FILE (saved by\n"
            "                         --kl-base from another model on the same text): mean KL\n"
            "                         divergence and top-1 agreement; -f may then be left out\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "      --device DEV       auto (default), cpu, vulkan, vulkan:N or vulkan:NAME\n"
            "      --vk-tier N        highest Vulkan capability tier to use (0, 1, 2)\n"
            "      --cpu-isa ISA      CPU kernels: auto, scalar, avx2, avx512, avx512vnni\n"
            "      --memory-cap MIB   most memory the weights and the context may take, in MiB\n"
            "                         (device memory on Vulkan; default: no cap)\n"
            "  -ngl, --gpu-layers N   layers on the GPU (default all); the rest on the CPU\n"
            "      --split R1,R2,...  shares of the layers for the devices --device lists\n"
            "      --lora FILE[:S]    a LoRA adapter applied, scale S (repeat for several)\n"
            "  -v, --verbose          log what the runtime does\n");
}

int cmd_perplexity(int argc, char **argv) {
    enum {
        O_CHUNKS = 256,
        O_KL_BASE,
        O_KL,
        O_DEVICE,
        O_VK_TIER,
        O_CPU_ISA,
        O_MEMORY_CAP,
        O_GPU_LAYERS,
        O_SPLIT,
        O_LORA
    };
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"model", required_argument, NULL, 'm'},
                                       {"file", required_argument, NULL, 'f'},
                                       {"ctx-size", required_argument, NULL, 'c'},
                                       {"batch-size", required_argument, NULL, 'b'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"chunks", required_argument, NULL, O_CHUNKS},
                                       {"kl-base", required_argument, NULL, O_KL_BASE},
                                       {"kl", required_argument, NULL, O_KL},
                                       {"device", required_argument, NULL, O_DEVICE},
                                       {"vk-tier", required_argument, NULL, O_VK_TIER},
                                       {"cpu-isa", required_argument, NULL, O_CPU_ISA},
                                       {"memory-cap", required_argument, NULL, O_MEMORY_CAP},
                                       {"gpu-layers", required_argument, NULL, O_GPU_LAYERS},
                                       {"n-gpu-layers", required_argument, NULL, O_GPU_LAYERS},
                                       {"split", required_argument, NULL, O_SPLIT},
                                       {"lora", required_argument, NULL, O_LORA},
                                       {NULL, 0, NULL, 0}};
    cli_opts o = {.vk_tier = -1, .oom_tips = CLI_OOM_TIPS};
    vkllm_perplexity_desc d = {.struct_size = sizeof d};
    int n_ctx = 512, n_batch = 0, chunks = 0, c;
    cli_argv_ngl(argc, argv);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hm:f:c:b:t:v", lo, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'm':
            o.model = optarg;
            break;
        case 'f':
            o.prompt_file = optarg;
            break;
        case 'c':
            ok = cli_int("-c", optarg, 4, 1 << 20, "a context in [4, 1048576]", &n_ctx);
            break;
        case 'b':
            ok = cli_int("-b", optarg, 1, 1 << 20, "a batch size >= 1", &n_batch);
            break;
        case 't':
            ok = cli_int("-t", optarg, 1, 1024, "a thread count in [1, 1024]", &o.n_threads);
            break;
        case 'v':
            o.verbose = true;
            break;
        case O_CHUNKS:
            ok = cli_int("--chunks", optarg, 1, 1 << 24, "a chunk count >= 1", &chunks);
            break;
        case O_KL_BASE:
            d.kl_base_out = optarg;
            break;
        case O_KL:
            d.kl_base_in = optarg;
            break;
        case O_DEVICE:
            o.device = optarg;
            break;
        case O_VK_TIER:
            ok = cli_int("--vk-tier", optarg, 0, 2, "a tier (0, 1 or 2)", &o.vk_tier);
            break;
        case O_CPU_ISA:
            o.cpu_isa = optarg;
            break;
        case O_MEMORY_CAP:
            ok = cli_int("--memory-cap", optarg, 1, 1 << 24, "a size in MiB in [1, 16777216]",
                         &o.memory_cap_mib);
            break;
        case O_GPU_LAYERS:
            ok = cli_gpu_layers("--gpu-layers", optarg, &o.gpu_layers);
            o.gpu_layers++; /* plus one: 0 stays the default */
            break;
        case O_SPLIT:
            ok = cli_split("--split", optarg, o.split, &o.n_split);
            break;
        case O_LORA:
            ok = cli_lora_opt("--lora", optarg, &o);
            break;
        default:
            return cli_getopt_error(c, argc, argv, "perplexity");
        }
        if (!ok) return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "error: unexpected argument '%s' (vkllm perplexity --help)\n",
                argv[optind]);
        return 1;
    }
    if (!o.prompt_file && !d.kl_base_in) {
        fprintf(stderr, "error: no text (give -f FILE)\n");
        return 1;
    }
    if (d.kl_base_in && d.kl_base_out) {
        fprintf(stderr, "error: give --kl-base or --kl, not both\n");
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    if (o.prompt_file && !(text = cli_read_prompt(&o, &len))) return 1;
    vkllm_runtime *rt;
    vkllm_model *model;
    if (cli_open(&o, false, &rt, &model) != 0) {
        free(text);
        return 1;
    }
    cli_bar b;
    cli_bar_start(&b, "chunk");
    d.text = text;
    d.text_len = len;
    d.n_ctx = (uint32_t)n_ctx;
    d.n_batch = (uint32_t)n_batch;
    d.n_chunks = (uint32_t)chunks;
    d.progress = cli_bar_update;
    d.progress_user = &b;
    d.n_lora = cli_lora(&d.lora);
    vkllm_perplexity_result r = {.struct_size = sizeof r};
    vkllm_status s = vkllm_perplexity(model, &d, &r);
    int rc = 0;
    if (s != VKLLM_OK) {
        if (b.tty) fputc('\n', stderr);
        cli_error(s, vkllm_model_last_error(model), o.oom_tips);
        rc = 1;
    } else {
        const double el = cli_now() - b.t0;
        fprintf(stderr,
                "vkllm: %u chunks of %d tokens, %llu tokens scored in %.1f s (%.0f tok/s)\n",
                r.n_chunks, n_ctx, (unsigned long long)r.n_scored, el,
                (double)r.n_chunks * n_ctx / (el > 0 ? el : 1));
        printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
        if (d.kl_base_in) {
            printf("PPL(base)  = %.4f\n", r.ppl_base);
            printf("ln(PPL(Q)/PPL(base)) = %.6f\n", log(r.ppl / r.ppl_base));
            printf("Mean KLD   = %.6f +/- %.6f\n", r.kl_mean, r.kl_err);
            printf("Same top-1 = %.3f %%\n", 100.0 * r.top1_same);
        }
        if (d.kl_base_out) fprintf(stderr, "vkllm: wrote %s\n", d.kl_base_out);
    }
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    free(text);
    return rc;
}
