/* vkllm imatrix: a model's importance matrix over a calibration text, in llama-imatrix's GGUF
 * format (vkllm quantize --imatrix, llama-quantize --imatrix and vkllm prune read it). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkllm imatrix -m MODEL -f TEXT [-o FILE] [options]\n\n"
            "Collects the importance matrix of the model over a calibration text as\n"
            "llama-imatrix does (per layer matrix, the sum of each input column's square over\n"
            "the text's tokens) and writes it in llama-imatrix's GGUF format. Runs on the CPU.\n\n"
            "  -m, --model FILE       GGUF model (default: $VKLLM_MODEL, else the default model)\n"
            "  -f, --file FILE        the calibration text\n"
            "  -o, --output FILE      where to write it (default imatrix.gguf)\n"
            "  -c, --ctx-size N       tokens per chunk (default 512)\n"
            "  -b, --batch-size N     tokens per step (default: -c; must divide -c)\n"
            "      --chunks N         use only the first N chunks (default: all)\n"
            "      --process-output   the output head's input too\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "      --cpu-isa ISA      CPU kernels: auto, scalar, avx2, avx512, avx512vnni\n"
            "      --memory-cap MIB   most memory the weights and the context may take, in MiB\n"
            "                         (default: no cap)\n"
            "  -v, --verbose          log what the runtime does\n");
}

int cmd_imatrix(int argc, char **argv) {
    enum { O_CHUNKS = 256, O_PROCESS_OUTPUT, O_CPU_ISA, O_MEMORY_CAP };
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"model", required_argument, NULL, 'm'},
                                       {"file", required_argument, NULL, 'f'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"ctx-size", required_argument, NULL, 'c'},
                                       {"batch-size", required_argument, NULL, 'b'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"chunks", required_argument, NULL, O_CHUNKS},
                                       {"process-output", no_argument, NULL, O_PROCESS_OUTPUT},
                                       {"cpu-isa", required_argument, NULL, O_CPU_ISA},
                                       {"memory-cap", required_argument, NULL, O_MEMORY_CAP},
                                       {NULL, 0, NULL, 0}};
    cli_opts o = {.vk_tier = -1,
                  .device = "cpu",
                  .oom_tips = "a smaller context (-c) or batch (-b); a smaller model"};
    vkllm_imatrix_desc d = {.struct_size = sizeof d, .out_path = "imatrix.gguf"};
    int n_ctx = 512, n_batch = 0, chunks = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hm:f:o:c:b:t:v", lo, NULL)) != -1) {
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
        case 'o':
            d.out_path = optarg;
            break;
        case 'c':
            ok = cli_int("-c", optarg, 16, 1 << 20, "a context in [16, 1048576]", &n_ctx);
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
        case O_PROCESS_OUTPUT:
            d.process_output = true;
            break;
        case O_CPU_ISA:
            o.cpu_isa = optarg;
            break;
        case O_MEMORY_CAP:
            ok = cli_int("--memory-cap", optarg, 1, 1 << 24, "a size in MiB in [1, 16777216]",
                         &o.memory_cap_mib);
            break;
        default:
            return cli_getopt_error(c, argc, argv, "imatrix");
        }
        if (!ok) return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "error: unexpected argument '%s' (vkllm imatrix --help)\n", argv[optind]);
        return 1;
    }
    if (!o.prompt_file) {
        fprintf(stderr, "error: no calibration text (give -f FILE)\n");
        return 1;
    }
    size_t len = 0;
    char *text = cli_read_prompt(&o, &len);
    if (!text) return 1;
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
    d.dataset = o.prompt_file;
    d.n_ctx = (uint32_t)n_ctx;
    d.n_batch = (uint32_t)n_batch;
    d.n_chunks = (uint32_t)chunks;
    d.progress = cli_bar_update;
    d.progress_user = &b;
    int rc = 0;
    const vkllm_status s = vkllm_imatrix(model, &d);
    if (s != VKLLM_OK) {
        if (b.tty) fputc('\n', stderr);
        cli_error(s, vkllm_model_last_error(model), o.oom_tips);
        rc = 1;
    } else {
        fprintf(stderr, "vkllm: wrote %s (%.1f s)\n", d.out_path, cli_now() - b.t0);
    }
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    free(text);
    return rc;
}
