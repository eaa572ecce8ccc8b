/* vkllm prune: a model's layer matrices pruned by magnitude, by Wanda's activation-aware
 * score or by SparseGPT, written dense (llama.cpp loads it) or, for 2:4, in vkllm's packed
 * formats. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkllm prune IN.gguf OUT.gguf [options]   (or -m IN -o OUT)\n\n"
            "Prunes the attention and FFN matrices of a model (the embedding, output head and\n"
            "norms are copied) and writes the result under a temporary name, renamed when\n"
            "complete.\n\n"
            "  --method M        magnitude (default), wanda (|w| times the input's RMS, from an\n"
            "                    importance matrix: --imatrix F or --calib TEXT) or sparsegpt\n"
            "                    (second-order choice that also updates the kept weights, from\n"
            "                    each input's Hessian over --calib TEXT, layer after layer on\n"
            "                    the CPU; unstructured, 2:4 and 4:8 only)\n"
            "  --pattern P       2:4 (default), 4:8, unstructured, ffn (whole FFN channels) or\n"
            "                    heads (whole KV head groups with their query heads)\n"
            "  --sparsity S      the fraction removed, in (0, 1): unstructured 0.5, ffn and heads\n"
            "                    0.25 by default; N:M patterns remove half\n"
            "  --imatrix F       importance matrix (vkllm imatrix or llama-imatrix); not for\n"
            "                    sparsegpt, which needs the text itself\n"
            "  --calib TEXT      wanda: make the importance matrix from this text first (on the\n"
            "                    CPU; the method defaults to wanda then); sparsegpt: the text\n"
            "                    its Hessians are summed over\n"
            "  --format F        packed (2:4's default: vkllm's S24 formats, which llama.cpp\n"
            "                    refuses) or dense (the zeros kept in a GGUF type)\n"
            "  --type T          packed: s24_q4 (default) or s24_q8; dense: the pruned matrices'\n"
            "                    type (default q8_0; q4_0, q5_0, q8_0, q6_k, f16, bf16 and f32\n"
            "                    keep zeros exact)\n"
            "  -c, --ctx-size N  --calib: tokens per chunk (default 512)\n"
            "      --chunks N    --calib: use only the first N chunks (sparsegpt: 16 by default,\n"
            "                    wanda: all)\n"
            "  -t, --threads N   --calib: CPU threads\n"
            "  --damp L          sparsegpt: dampening, H += L * mean(diag H) * I (default 0.01)\n"
            "  --blocksize B     sparsegpt: columns per lazy-update block (default 128)\n"
            "  --dense-inputs    sparsegpt: every layer's Hessians from the dense model (the\n"
            "                    one-pass variant) instead of from the model whose earlier\n"
            "                    layers are already pruned\n");
}

static void on_progress(void *user, uint64_t done, uint64_t total) {
    if (!*(bool *)user) return;
    fprintf(stderr, "\rvkllm: %llu/%llu ", (unsigned long long)done, (unsigned long long)total);
    if (done == total) fputc('\n', stderr);
}

/* Collects the importance matrix of the input model over text into path. */
static int make_imatrix(const char *model, const char *text_path, int n_ctx, int chunks,
                        int threads, const char *path) {
    cli_opts o = {.model = model,
                  .prompt_file = text_path,
                  .device = "cpu",
                  .n_threads = threads,
                  .oom_tips = "a smaller context (-c)"};
    size_t len;
    char *text = cli_read_prompt(&o, &len);
    if (!text) return 1;
    vkllm_runtime *rt;
    vkllm_model *m;
    if (cli_open(&o, false, &rt, &m) != 0) {
        free(text);
        return 1;
    }
    vkllm_imatrix_desc d = {.struct_size = sizeof d,
                            .text = text,
                            .text_len = len,
                            .dataset = text_path,
                            .out_path = path,
                            .n_ctx = (uint32_t)n_ctx,
                            .n_chunks = (uint32_t)chunks};
    int rc = 0;
    const vkllm_status s = vkllm_imatrix(m, &d);
    if (s != VKLLM_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "--calib: %s", vkllm_model_last_error(m));
        cli_error(s, msg, o.oom_tips);
        rc = 1;
    }
    vkllm_model_free(m);
    vkllm_runtime_destroy(rt);
    free(text);
    return rc;
}

int cmd_prune(int argc, char **argv) {
    enum {
        O_METHOD = 256,
        O_PATTERN,
        O_SPARSITY,
        O_IMATRIX,
        O_CALIB,
        O_FORMAT,
        O_TYPE,
        O_CHUNKS,
        O_DAMP,
        O_BLOCKSIZE,
        O_DENSE_INPUTS
    };
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"model", required_argument, NULL, 'm'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"ctx-size", required_argument, NULL, 'c'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"method", required_argument, NULL, O_METHOD},
                                       {"pattern", required_argument, NULL, O_PATTERN},
                                       {"sparsity", required_argument, NULL, O_SPARSITY},
                                       {"imatrix", required_argument, NULL, O_IMATRIX},
                                       {"calib", required_argument, NULL, O_CALIB},
                                       {"format", required_argument, NULL, O_FORMAT},
                                       {"type", required_argument, NULL, O_TYPE},
                                       {"chunks", required_argument, NULL, O_CHUNKS},
                                       {"damp", required_argument, NULL, O_DAMP},
                                       {"blocksize", required_argument, NULL, O_BLOCKSIZE},
                                       {"dense-inputs", no_argument, NULL, O_DENSE_INPUTS},
                                       {NULL, 0, NULL, 0}};
    vkllm_prune_result res = {.struct_size = sizeof res};
    vkllm_prune_desc d = {.struct_size = sizeof d, .result = &res};
    const char *calib = NULL;
    int n_ctx = 512, chunks = 0, threads = 0, blocksize = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hm:o:c:t:", lo, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'm':
            d.in_path = optarg;
            break;
        case 'o':
            d.out_path = optarg;
            break;
        case 'c':
            ok = cli_int("-c", optarg, 16, 1 << 20, "a context in [16, 1048576]", &n_ctx);
            break;
        case 't':
            ok = cli_int("-t", optarg, 1, 1024, "a thread count in [1, 1024]", &threads);
            break;
        case O_METHOD:
            d.method = optarg;
            break;
        case O_PATTERN:
            d.pattern = optarg;
            break;
        case O_SPARSITY: {
            char *end;
            d.sparsity = strtof(optarg, &end);
            if (!*optarg || *end || !(d.sparsity > 0.0f && d.sparsity < 1.0f)) {
                fprintf(stderr, "error: option --sparsity: '%s' is not a fraction in (0, 1)\n",
                        optarg);
                return 1;
            }
            break;
        }
        case O_IMATRIX:
            d.imatrix_path = optarg;
            break;
        case O_CALIB:
            calib = optarg;
            break;
        case O_FORMAT:
            d.format = optarg;
            break;
        case O_TYPE:
            d.type = optarg;
            break;
        case O_CHUNKS:
            ok = cli_int("--chunks", optarg, 1, 1 << 24, "a chunk count >= 1", &chunks);
            break;
        case O_DAMP:
            ok = cli_float("--damp", optarg, 1e-9f, 1e6f, "a dampening in (0, 1e6]", &d.damp);
            break;
        case O_BLOCKSIZE:
            ok = cli_int("--blocksize", optarg, 1, 1 << 20, "a block size >= 1", &blocksize);
            break;
        case O_DENSE_INPUTS:
            d.dense_inputs = true;
            break;
        default:
            return cli_getopt_error(c, argc, argv, "prune");
        }
        if (!ok) return 1;
    }
    for (; optind < argc; optind++) {
        if (!d.in_path)
            d.in_path = argv[optind];
        else if (!d.out_path)
            d.out_path = argv[optind];
        else {
            fprintf(stderr, "error: unexpected argument '%s' (vkllm prune --help)\n", argv[optind]);
            return 1;
        }
    }
    if (!d.in_path || !d.out_path) {
        fprintf(stderr, "error: give the input and the output model (vkllm prune IN OUT)\n");
        return 1;
    }
    if (calib && d.imatrix_path) {
        fprintf(stderr, "error: give --calib or --imatrix, not both\n");
        return 1;
    }
    const bool sgpt = d.method && strcmp(d.method, "sparsegpt") == 0;
    if (!sgpt && (d.damp != 0.0f || blocksize || d.dense_inputs)) {
        fprintf(stderr, "error: --damp, --blocksize and --dense-inputs are for --method "
                        "sparsegpt\n");
        return 1;
    }
    char *calib_text = NULL;
    if (sgpt && calib) { /* the library runs the text through the model itself */
        cli_opts o = {.prompt_file = calib};
        calib_text = cli_read_prompt(&o, &d.calib_text_len);
        if (!calib_text) return 1;
        d.calib_text = calib_text;
        d.calib_ctx = (uint32_t)n_ctx;
        d.calib_chunks = (uint32_t)chunks;
        d.n_threads = threads;
        calib = NULL;
    }
    d.blocksize = (uint32_t)blocksize;
    char tmp[] = "/tmp/vkllm-calib-XXXXXX";
    char im_path[64] = "";
    if (calib) {
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "error: --calib: cannot make a temporary folder\n");
            return 1;
        }
        snprintf(im_path, sizeof im_path, "%s/imatrix.gguf", tmp);
        if (make_imatrix(d.in_path, calib, n_ctx, chunks, threads, im_path) != 0) {
            rmdir(tmp);
            return 1;
        }
        d.imatrix_path = im_path;
        if (!d.method) d.method = "wanda";
    }
    bool tty = isatty(2) != 0;
    d.progress = on_progress;
    d.progress_user = &tty;
    char err[1024];
    const vkllm_status s = vkllm_prune(&d, err, sizeof err);
    free(calib_text);
    if (calib) {
        unlink(im_path);
        rmdir(tmp);
    }
    if (s != VKLLM_OK) {
        cli_error(s, err, NULL);
        return 1;
    }
    if (res.calib_chunks)
        fprintf(stderr, "vkllm: sparsegpt: %u chunks of %u tokens, passes %.1f s, pruning %.1f s\n",
                res.calib_chunks, res.calib_ctx, res.calib_seconds, res.solve_seconds);
    fprintf(stderr,
            "vkllm: wrote %s: %u matrices, %.1f%% of their %llu weights zero, %.2f -> %.2f "
            "MiB (%.2f bits per weight)\n",
            d.out_path, res.n_matrices, 100.0 * (double)res.n_zero / (double)res.n_weights,
            (unsigned long long)res.n_weights, (double)res.bytes_in / 1048576.0,
            (double)res.bytes_out / 1048576.0, 8.0 * (double)res.bytes_out / (double)res.n_weights);
    return 0;
}
