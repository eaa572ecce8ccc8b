/* vkllm quantize: llama-quantize's command line over vkllm_quantize (the output file is
 * byte-identical to llama-quantize's). Progress on stderr when it is a terminal, then one
 * summary line. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quantize_usage(FILE *f) {
    fprintf(f, "usage: vkllm quantize [options] IN.gguf OUT.gguf TYPE [THREADS]\n"
               "       vkllm quantize [options] -m IN.gguf --type TYPE OUT.gguf\n\n"
               "Quantizes a model as llama-quantize does, to the same bytes.\n\n"
               "TYPE: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K_S, Q4_K_M (= Q4_K), Q5_K_S,\n"
               "      Q5_K_M (= Q5_K), Q6_K, F16, BF16, F32 (case-insensitive)\n\n"
               "  -m, --model FILE       input model (F32/F16/BF16, or quantized with\n"
               "                         --allow-requantize)\n"
               "  -o, --output FILE      output model\n"
               "      --type TYPE        the type or preset\n"
               "      --imatrix FILE     importance matrix (llama-imatrix's GGUF or .dat)\n"
               "      --allow-requantize accept quantized input (dequantized first)\n"
               "  -t, --threads N        threads (default: all cores)\n"
               "  -h, --help             this text\n");
}

static void on_progress(void *user, uint64_t done, uint64_t total) {
    (void)user;
    fprintf(stderr, "\rvkllm: quantize: tensor %llu of %llu", (unsigned long long)done,
            (unsigned long long)total);
    fflush(stderr);
}

static bool parse_threads(const char *s, uint32_t *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > 1024) return false;
    *out = (uint32_t)v;
    return true;
}

int cmd_quantize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"type", required_argument, NULL, 'T'},
        {"imatrix", required_argument, NULL, 'I'},
        {"allow-requantize", no_argument, NULL, 'R'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    vkllm_quantize_result res = {.struct_size = sizeof res};
    vkllm_quantize_desc d = {.struct_size = sizeof d, .result = &res};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            d.in_path = optarg;
            break;
        case 'o':
            d.out_path = optarg;
            break;
        case 'T':
            d.type = optarg;
            break;
        case 'I':
            d.imatrix_path = optarg;
            break;
        case 'R':
            d.allow_requantize = true;
            break;
        case 't':
            if (!parse_threads(optarg, &d.n_threads)) {
                fprintf(stderr, "error: -t needs a thread count from 1 to 1024, not '%s'\n",
                        optarg);
                return 1;
            }
            break;
        case 'h':
            quantize_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "error: %s needs a value (vkllm quantize --help)\n", argv[optind - 1]);
            return 1;
        default:
            fprintf(stderr, "error: unknown option '%s' (vkllm quantize --help)\n",
                    argv[optind - 1]);
            return 1;
        }
    }
    /* positionals fill what the options left: IN, OUT, TYPE, then THREADS */
    for (int i = optind; i < argc; i++) {
        const char **slot = !d.in_path    ? &d.in_path
                            : !d.out_path ? &d.out_path
                            : !d.type     ? &d.type
                                          : NULL;
        if (slot) {
            *slot = argv[i];
        } else if (!parse_threads(argv[i], &d.n_threads)) {
            fprintf(stderr, "error: unexpected argument '%s' (vkllm quantize --help)\n", argv[i]);
            return 1;
        }
    }
    if (!d.in_path || !d.out_path || !d.type) {
        fprintf(stderr, "error: an input model, an output file and a type are required "
                        "(vkllm quantize --help)\n");
        return 1;
    }
    const bool tty = isatty(2);
    if (tty) d.progress = on_progress;
    char err[512];
    vkllm_status st = vkllm_quantize(&d, err, sizeof err);
    if (tty) fprintf(stderr, "\r\033[K");
    if (st != VKLLM_OK) {
        cli_error(st, err, "fewer threads (-t)");
        return 1;
    }
    const double mib = 1024.0 * 1024.0, ne = res.n_elements ? (double)res.n_elements : 1.0;
    fprintf(stderr,
            "vkllm: quantized %s -> %s as %s: %llu tensors (%llu converted, %llu with a "
            "fallback type), %.2f MiB -> %.2f MiB, %.2f -> %.2f bits per weight\n",
            d.in_path, d.out_path, d.type, (unsigned long long)res.n_tensors,
            (unsigned long long)res.n_converted, (unsigned long long)res.n_fallback,
            (double)res.bytes_in / mib, (double)res.bytes_out / mib,
            8.0 * (double)res.bytes_in / ne, 8.0 * (double)res.bytes_out / ne);
    return 0;
}
