/* vkllm: the command line. One binary, one subcommand per job; each uses the public API only.
 * Exit status: 0 ok, 1 error (one "error: ..." line on stderr), 2 usage shown on request. */
#include "cli.h"
#include "serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static vkllm_session *g_cancel_session; /* the CLI's only global: for Ctrl-C */

static void on_sigint(int sig) {
    (void)sig;
    if (g_cancel_session) vkllm_session_cancel(g_cancel_session);
}

/* Parses a subcommand's options: -1 to go on, else the exit status (help shown: 0). */
static int cli_begin(int argc, char **argv, const char *cmd, cli_opts *o) {
    int pr = cli_parse(argc, argv, cmd, o);
    if (pr == 2) cli_usage(stdout, cmd);
    return pr == 0 ? -1 : pr == 2 ? 0 : 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* what run's callbacks share */
typedef struct run_ctx {
    double t_first; /* the time of the first token, once there is one */
    vkllm_model *model;
} run_ctx;

/* user: NULL, or a run_ctx */
static bool print_piece(void *user, int32_t tok, const char *piece, size_t len) {
    (void)tok;
    run_ctx *rc = user;
    if (rc && rc->t_first == 0.0) rc->t_first = now_s();
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* {"token": id, "piece": its text (special tokens rendered; invalid UTF-8 as U+FFFD),
 * "logprob": x} */
static cJSON *logprob_json(vkllm_model *m, int32_t tok, float lp) {
    char buf[512];
    size_t n = 0, len = 0;
    if (vkllm_token_to_piece(m, tok, true, buf, sizeof buf, &n) != VKLLM_OK) n = 0;
    char *clean = srv_utf8_clean(buf, n, &len);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "token", tok);
    cJSON_AddStringToObject(o, "piece", clean ? clean : "");
    cJSON_AddNumberToObject(o, "logprob",
                            lp > -9999.0f ? (double)lp : -9999.0); /* -inf: OpenAI's */
    free(clean);
    return o;
}

/* --logprobs N: one JSON line per generated token on stderr */
static void print_logprobs(void *user, int32_t tok, float lp, const vkllm_token_logprob *top,
                           uint32_t n_top) {
    const run_ctx *rc = user;
    cJSON *o = logprob_json(rc->model, tok, lp), *arr = cJSON_AddArrayToObject(o, "top_logprobs");
    for (uint32_t i = 0; i < n_top; i++)
        cJSON_AddItemToArray(arr, logprob_json(rc->model, top[i].token, top[i].logprob));
    char *s = cJSON_PrintUnformatted(o);
    if (s) fprintf(stderr, "%s\n", s);
    free(s);
    cJSON_Delete(o);
}

const char *cli_stop_name(vkllm_stop_reason r) {
    switch (r) {
    case VKLLM_STOP_EOG:
        return "end of generation";
    case VKLLM_STOP_MAX_TOKENS:
        return "max tokens";
    case VKLLM_STOP_CALLBACK:
        return "callback";
    case VKLLM_STOP_CANCELLED:
        return "cancelled";
    case VKLLM_STOP_CONTEXT:
        return "context full";
    case VKLLM_STOP_STRING:
        return "stop string";
    case VKLLM_STOP_ERROR:
        return "error";
    default:
        return "-";
    }
}

static void print_summary(const vkllm_runtime *rt, const vkllm_generate_result *r, double ttft) {
    double pp = r->prefill_seconds > 0 ? r->n_prompt / r->prefill_seconds : 0;
    /* the first sampled token needs no eval: decode speed is over the evaluated ones */
    double tg =
        r->decode_seconds > 0 && r->n_generated > 1 ? (r->n_generated - 1) / r->decode_seconds : 0;
    fprintf(stderr,
            "\nvkllm: prompt %u tok, %.1f tok/s | generated %u tok, %.1f tok/s | %s | "
            "stop: %s\n",
            r->n_prompt, pp, r->n_generated, tg, vkllm_runtime_backend_name(rt),
            cli_stop_name(r->stop));
    if (ttft > 0)
        fprintf(stderr,
                "vkllm: first token %.3f s after start (device and model set-up, "
                "prefill, first sample)\n",
                ttft);
}

static int open_session(const cli_opts *o, vkllm_model *model, vkllm_session **s) {
    vkllm_session_desc sd = {.n_ctx = (uint32_t)o->n_ctx, .n_batch = (uint32_t)o->n_batch};
    vkllm_status st = vkllm_session_create(model, &sd, s);
    if (st != VKLLM_OK) {
        cli_error(st, vkllm_model_last_error(model), o->oom_tips);
        return 1;
    }
    const vkllm_lora *lora;
    const size_t n_lora = cli_lora(&lora);
    if (n_lora && (st = vkllm_session_set_lora(*s, lora, n_lora)) != VKLLM_OK) {
        cli_error(st, vkllm_session_last_error(*s), NULL);
        vkllm_session_destroy(*s);
        *s = NULL;
        return 1;
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    const double t_start = now_s();
    run_ctx ctx = {0};
    cli_opts o;
    int pr = cli_begin(argc, argv, "run", &o);
    if (pr >= 0) return pr;
    if (o.parallel && o.logprobs >= 0) {
        fprintf(stderr, "error: --logprobs goes without --parallel (one prompt at a time)\n");
        return 1;
    }
    if (o.parallel) return cmd_run_parallel(&o);
    if (o.chat || o.kv_mib || o.no_prefix_cache || o.kv_type) {
        fprintf(stderr, "error: --chat, --kv-mib, --kv-type and --no-prefix-cache go with "
                        "--parallel\n");
        return 1;
    }
    size_t plen;
    char *schema = NULL;
    if (cli_json_schema(&o, &schema)) return 1;
    char *prompt = cli_read_prompt(&o, &plen);
    if (!prompt) {
        free(schema);
        return 1;
    }
    vkllm_runtime *rt;
    vkllm_model *model;
    if (cli_open(&o, false, &rt, &model)) {
        free(prompt);
        free(schema);
        return 1;
    }
    vkllm_session *s = NULL;
    int rc = open_session(&o, model, &s);
    if (rc == 0) {
        if (o.verbose) fprintf(stderr, "vkllm: seed %llu\n", (unsigned long long)o.sampling.seed);
        g_cancel_session = s;
        signal(SIGINT, on_sigint);
        if (!o.no_echo) {
            fwrite(prompt, 1, plen, stdout);
            fflush(stdout);
        }
        ctx.model = model;
        vkllm_generate_desc gd = {
            .struct_size = sizeof gd,
            .json_schema = schema,
            .prompt = prompt,
            .prompt_len = plen,
            .max_tokens = o.n_predict,
            .ignore_eog = o.ignore_eos,
            .sampling = o.sampling,
            .on_token = print_piece,
            .user = &ctx,
            .presence_penalty = o.presence_penalty,
            .frequency_penalty = o.frequency_penalty,
            .on_logprobs = o.logprobs >= 0 ? print_logprobs : NULL,
            .top_logprobs = o.logprobs >= 0 ? (uint32_t)o.logprobs : 0,
        };
        vkllm_generate_result r = {0};
        vkllm_status st = vkllm_generate(s, &gd, &r);
        g_cancel_session = NULL;
        if (st != VKLLM_OK) {
            cli_error(st, vkllm_session_last_error(s), o.oom_tips);
            rc = 1;
        } else {
            fputc('\n', stdout);
            print_summary(rt, &r, ctx.t_first > 0 ? ctx.t_first - t_start : 0);
        }
    }
    vkllm_session_destroy(s);
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    free(prompt);
    free(schema);
    return rc;
}

/* ---- chat ---- */

typedef struct chat_hist {
    vkllm_chat_message *msgs;
    char **owned;
    size_t n, cap;
} chat_hist;

static bool hist_push(chat_hist *h, const char *role, const char *text, size_t len) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        vkllm_chat_message *m = realloc(h->msgs, cap * sizeof *m);
        if (!m) return false;
        h->msgs = m;
        char **ow = realloc(h->owned, cap * sizeof *ow);
        if (!ow) return false;
        h->owned = ow;
        h->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return false;
    memcpy(copy, text, len);
    copy[len] = '\0';
    h->owned[h->n] = copy;
    h->msgs[h->n] = (vkllm_chat_message){role, copy};
    h->n++;
    return true;
}

static void hist_clear(chat_hist *h) {
    for (size_t i = 0; i < h->n; i++)
        free(h->owned[i]);
    h->n = 0;
}

static char *render(vkllm_model *model, const chat_hist *h, size_t n, bool add_ass, size_t *len) {
    size_t need = 0;
    vkllm_status st = vkllm_chat_apply(model, h->msgs, n, add_ass, NULL, 0, &need);
    if (st != VKLLM_OK && st != VKLLM_ERR_BUFFER_TOO_SMALL) return NULL;
    char *buf = malloc(need + 1);
    if (!buf) return NULL;
    if (vkllm_chat_apply(model, h->msgs, n, add_ass, buf, need + 1, len) != VKLLM_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

typedef struct reply_buf {
    char *p;
    size_t n, cap;
} reply_buf;

static bool collect_piece(void *user, int32_t tok, const char *piece, size_t len) {
    reply_buf *r = user;
    if (r->n + len + 1 > r->cap) {
        size_t cap = (r->cap + len + 1) * 2;
        char *p = realloc(r->p, cap);
        if (!p) return false;
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->n, piece, len);
    r->n += len;
    r->p[r->n] = '\0';
    return print_piece(NULL, tok, piece, len);
}

int cmd_chat(int argc, char **argv) {
    cli_opts o;
    int pr = cli_begin(argc, argv, "chat", &o);
    if (pr >= 0) return pr;
    vkllm_runtime *rt;
    vkllm_model *model;
    if (cli_open(&o, false, &rt, &model)) return 1;
    vkllm_session *s = NULL;
    int rc = open_session(&o, model, &s);
    chat_hist h = {0};
    reply_buf reply = {0};
    if (rc == 0 && o.system) rc = hist_push(&h, "system", o.system, strlen(o.system)) ? 0 : 1;
    g_cancel_session = s;
    signal(SIGINT, on_sigint);
    char line[8192];
    while (rc == 0) {
        fprintf(stderr, "> ");
        fflush(stderr);
        if (!fgets(line, sizeof line, stdin)) break;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0) continue;
        if (strcmp(line, "/reset") == 0) {
            vkllm_session_reset(s);
            hist_clear(&h);
            if (o.system) hist_push(&h, "system", o.system, strlen(o.system));
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        /* the new text is what the template adds for this turn (as llama.cpp does: render
         * with and without the new message; the assistant's trailing newline after its
         * end-of-turn token is not in the context, so it is added back) */
        size_t past_len = 0, full_len = 0;
        char *past = h.n ? render(model, &h, h.n, false, &past_len) : NULL;
        if (!hist_push(&h, "user", line, len)) {
            rc = 1;
            break;
        }
        char *full = render(model, &h, h.n, true, &full_len);
        if (!full || (h.n > 1 && !past)) {
            fprintf(stderr, "error: %s\n", vkllm_model_last_error(model));
            free(past);
            free(full);
            rc = 1;
            break;
        }
        size_t off = past_len <= full_len ? past_len : 0;
        char *turn = malloc(full_len - off + 2);
        size_t tl = 0;
        if (turn) {
            if (past_len > 0 && past[past_len - 1] == '\n') turn[tl++] = '\n';
            memcpy(turn + tl, full + off, full_len - off);
            tl += full_len - off;
            turn[tl] = '\0';
        }
        free(past);
        free(full);
        if (!turn) {
            rc = 1;
            break;
        }
        if (o.verbose) fprintf(stderr, "vkllm: turn text: [%s]\n", turn);
        reply.n = 0;
        vkllm_generate_desc gd = {
            .struct_size = sizeof gd,
            .prompt = turn,
            .prompt_len = tl,
            .max_tokens = o.n_predict,
            .sampling = o.sampling,
            .on_token = collect_piece,
            .user = &reply,
            .presence_penalty = o.presence_penalty,
            .frequency_penalty = o.frequency_penalty,
        };
        vkllm_generate_result r = {0};
        vkllm_status st = vkllm_generate(s, &gd, &r);
        free(turn);
        fputc('\n', stdout);
        if (st != VKLLM_OK) {
            fprintf(stderr, "error: %s\n", vkllm_session_last_error(s));
            if (st == VKLLM_ERR_CONTEXT_FULL)
                fprintf(stderr, "(type /reset to start a new conversation)\n");
            h.n--; /* the message was not taken */
            free(h.owned[h.n]);
            continue;
        }
        if (!hist_push(&h, "assistant", reply.p ? reply.p : "", reply.n)) {
            rc = 1;
            break;
        }
        if (o.verbose) print_summary(rt, &r, 0);
    }
    g_cancel_session = NULL;
    hist_clear(&h);
    free(h.msgs);
    free(h.owned);
    free(reply.p);
    vkllm_session_destroy(s);
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    return rc;
}

/* ---- tokenize ---- */

int cmd_tokenize(int argc, char **argv) {
    cli_opts o;
    int pr = cli_begin(argc, argv, "tokenize", &o);
    if (pr >= 0) return pr;
    size_t len;
    char *text = cli_read_prompt(&o, &len);
    if (!text) return 1;
    vkllm_runtime *rt;
    vkllm_model *model;
    if (cli_open(&o, true, &rt, &model)) {
        free(text);
        return 1;
    }
    uint32_t flags = (o.no_bos ? 0 : VKLLM_TOKENIZE_ADD_SPECIAL) |
                     (o.no_parse_special ? 0 : VKLLM_TOKENIZE_PARSE_SPECIAL);
    size_t n = 0;
    int rc = 0;
    vkllm_status st = vkllm_tokenize(model, text, len, flags, NULL, 0, &n);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (st == VKLLM_ERR_BUFFER_TOO_SMALL || st == VKLLM_OK)
        st = ids ? vkllm_tokenize(model, text, len, flags, ids, n, &n) : VKLLM_ERR_OUT_OF_MEMORY;
    if (st != VKLLM_OK) {
        fprintf(stderr, "error: %s\n", vkllm_model_last_error(model));
        rc = 1;
    } else if (o.ids_only) {
        fputc('[', stdout);
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? ", " : "", ids[i]);
        fputs("]\n", stdout);
    } else {
        char piece[512];
        for (size_t i = 0; i < n; i++) {
            size_t pl = 0;
            vkllm_token_to_piece(model, ids[i], true, piece, sizeof piece, &pl);
            if (pl > sizeof piece) pl = sizeof piece;
            printf("%6d -> '", ids[i]);
            fwrite(piece, 1, pl, stdout);
            fputs("'\n", stdout);
        }
    }
    if (rc == 0 && o.show_count) printf("Total number of tokens: %zu\n", n);
    free(ids);
    free(text);
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    return rc;
}

/* ---- info ---- */

int cmd_info(int argc, char **argv) {
    cli_opts o;
    int pr = cli_begin(argc, argv, "info", &o);
    if (pr >= 0) return pr;
    vkllm_runtime *rt;
    vkllm_model *model;
    if (cli_open(&o, true, &rt, &model)) return 1;
    char value[1024];
    size_t nkv = vkllm_model_meta_count(model);
    printf("metadata: %zu keys\n", nkv);
    for (size_t i = 0; i < nkv; i++) {
        char key[256];
        if (vkllm_model_meta(model, i, key, sizeof key, value, sizeof value) == VKLLM_OK)
            printf("  %-40s %s\n", key, value);
    }
    size_t nt = vkllm_model_tensor_count(model), missing = 0;
    const char *first_missing = NULL;
    for (size_t i = 0; i < nt; i++) {
        vkllm_tensor_info t = {.struct_size = sizeof t};
        if (vkllm_model_tensor(model, i, &t) == VKLLM_OK && !t.in_file) {
            if (!missing) first_missing = t.name;
            missing++;
        }
    }
    printf("tensors: %zu\n", nt);
    if (!o.no_tensors) {
        uint64_t total = 0;
        for (size_t i = 0; i < nt; i++) {
            vkllm_tensor_info t = {.struct_size = sizeof t};
            if (vkllm_model_tensor(model, i, &t) != VKLLM_OK) continue;
            char shape[96];
            int k = 0;
            for (uint32_t d = 0; d < t.n_dims && k < (int)sizeof shape; d++)
                k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%llu", d ? " x " : "",
                              (unsigned long long)t.ne[d]);
            printf("  %-32s %-6s [%s] offset 0x%llx, %llu bytes%s\n", t.name, t.type, shape,
                   (unsigned long long)t.offset, (unsigned long long)t.nbytes,
                   t.in_file ? "" : "  (past the end of the file)");
            total += t.nbytes;
        }
        printf("tensor data: %.2f MiB\n", (double)total / (1024.0 * 1024.0));
    }
    int rc = 0;
    if (missing) {
        char buf[4096];
        fprintf(stderr,
                "error: %s: the data of %zu of %zu tensors (the first: %s) lies past the "
                "end of the file: it is cut off\n",
                cli_model_path(&o, buf, sizeof buf), missing, nt, first_missing);
        rc = 1;
    }
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    return rc;
}

/* ---- devices ---- */

int cmd_devices(int argc, char **argv) {
    cli_opts o;
    int pr = cli_begin(argc, argv, "devices", &o);
    if (pr >= 0) return pr;
    vkllm_device_info d[16] = {0};
    size_t n = 0;
    vkllm_list_devices(d, 16, &n);
    for (size_t i = 0; i < n && i < 16; i++) {
        const vkllm_device_info *x = &d[i];
        if (strcmp(x->backend, "cpu") == 0) {
            printf("cpu  %s\n    kind: cpu, memory: %.1f GiB, %s\n    features: %s\n", x->name,
                   (double)x->memory_bytes / (1024.0 * 1024.0 * 1024.0), x->driver,
                   x->features[0] ? x->features : "-");
            continue;
        }
        printf("vulkan:%d  %s\n    kind: %s, vendor: %s, Vulkan %s, driver: %s\n"
               "    device-local memory: %.1f GiB, largest buffer: %.0f MiB, subgroup size: %u\n"
               "    tier %d; features: %s\n",
               x->index, x->name, x->kind, x->vendor, x->api_version, x->driver,
               (double)x->memory_bytes / (1024.0 * 1024.0 * 1024.0),
               (double)x->max_buffer_bytes / (1024.0 * 1024.0), x->subgroup_size, x->tier,
               x->features);
    }
    if (n == 1)
        printf("(no Vulkan device found: install a Vulkan driver, e.g. mesa-vulkan-drivers)\n");
    return 0;
}

/* ---- synth ---- */

static void synth_usage(FILE *f) {
    fprintf(f, "usage: vkllm synth --shape NAME -o FILE [--type T] [--vocab FILE] [--seed N]\n\n"
               "Writes a GGUF model of a known shape (llama architecture) with pseudo-random "
               "weights\nand a real tokenizer; vkllm and llama.cpp both load it. For "
               "benchmarks: speed does not\ndepend on the weights' values.\n\n"
               "  --shape NAME     ");
    for (const char *const *n = vkllm_synth_shapes(); *n; n++)
        fprintf(f, "%s%s", n == vkllm_synth_shapes() ? "" : ", ", *n);
    fprintf(f, "\n  --type T         matrices' type: q4_0 (default), q4_1, q5_0, q5_1, q8_0, "
               "q4_k, q5_k, q6_k,\n                   f16, bf16, f32 (the K types need rows "
               "that are multiples of 256)\n"
               "  --vocab FILE     GGUF whose tokenizer to take (default: the shape's own, from "
               "the cache:\n                   the default model for SmolLM2 shapes, llama.cpp's "
               "vocab files for Llama\n                   ones: scripts/fetch_model.sh, "
               "scripts/fetch_vocabs.sh)\n"
               "  --seed N         weights' seed (default 1)\n"
               "  -o, --output F   the file to write\n");
}

int cmd_synth(int argc, char **argv) {
    vkllm_synth_desc d = {.seed = 1};
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"shape", required_argument, NULL, 'S'},
                                       {"type", required_argument, NULL, 'T'},
                                       {"vocab", required_argument, NULL, 'V'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"seed", required_argument, NULL, 'E'},
                                       {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            synth_usage(stdout);
            return 0;
        case 'S':
            d.shape = optarg;
            break;
        case 'T':
            d.type = optarg;
            break;
        case 'V':
            d.vocab_path = optarg;
            break;
        case 'o':
            d.out_path = optarg;
            break;
        case 'E': {
            char *end;
            errno = 0;
            d.seed = strtoull(optarg, &end, 10);
            if (errno || *end || !*optarg || optarg[0] == '-') {
                fprintf(stderr, "error: --seed takes a number, not '%s'\n", optarg);
                return 1;
            }
            break;
        }
        default:
            return cli_getopt_error(c, argc, argv, "synth");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "error: unexpected argument '%s' (vkllm synth --help)\n", argv[optind]);
        return 1;
    }
    if (!d.shape || !d.out_path) {
        fprintf(stderr, "error: --shape and -o are required (vkllm synth --help)\n");
        return 1;
    }
    char vocab[1024];
    const char *hint = vkllm_synth_shape_vocab(d.shape);
    if (!d.vocab_path && hint) {
        if (strcmp(hint, "SmolLM2") == 0) {
            cli_opts o = {0};
            d.vocab_path = cli_model_path(&o, vocab, sizeof vocab);
        } else {
            const char *cache = getenv("VKLLM_CACHE"), *home = getenv("HOME");
            if (cache && *cache)
                snprintf(vocab, sizeof vocab, "%s/vocab/ggml-vocab-%s.gguf", cache, hint);
            else
                snprintf(vocab, sizeof vocab, "%s/.cache/vkllm/vocab/ggml-vocab-%s.gguf",
                         home ? home : ".", hint);
            d.vocab_path = vocab;
        }
    }
    char err[512];
    if (vkllm_synth(&d, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    fprintf(stderr, "vkllm: wrote %s (%s, %s, tokenizer from %s)\n", d.out_path, d.shape,
            d.type ? d.type : "q4_0", d.vocab_path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        cli_usage(argc < 2 ? stderr : stdout, NULL);
        return argc < 2 ? 1 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"run", cmd_run},           {"chat", cmd_chat},
                {"tokenize", cmd_tokenize}, {"info", cmd_info},
                {"devices", cmd_devices},   {"bench", cmd_bench},
                {"synth", cmd_synth},       {"perplexity", cmd_perplexity},
                {"quantize", cmd_quantize}, {"imatrix", cmd_imatrix},
                {"prune", cmd_prune},       {"serve", cmd_serve}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (run 'vkllm --help' for the list)\n", argv[1]);
    return 1;
}
