/* golden_gen: writes vkllm's golden generation data using llama.cpp as the reference.
 *
 * For each prompt of a prompts file it tokenizes the prompt the way `vkllm run` does (BOS if
 * the model's metadata asks for it, special tokens such as <|im_start|> parsed), decodes
 * greedily for a fixed number of tokens on llama.cpp's CPU backend, and writes the prompt ids,
 * the generated ids, per-step margins and the top-10 logits of the first and last step. The
 * output is one KEY<TAB>VALUE record per line so that a C test can read it with fgets/strtok.
 *
 * This is a developer tool, built by tools/golden/make_golden.sh against a llama.cpp build
 * outside the repository (scripts/build_llama_cpp.sh). It is not part of vkllm and must not be
 * linked into it; it uses only llama.cpp's public C API (include/llama.h).
 */
#include "llama.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPK 10
#define MAX_META 16
#define MAX_LINE (1 << 16)

typedef struct {
    const char *model;
    const char *prompts;
    const char *out;
    int n_threads;
    int n_gen;
    int n_ctx;
    int n_batch;
    enum llama_flash_attn_type fa;
    enum ggml_type kv_type;
    const char *meta[MAX_META]; /* "key=value", copied into the header as given */
    int n_meta;
    const char *lora[MAX_META]; /* --lora FILE[:SCALE], applied together */
    float lora_scale[MAX_META];
    int n_lora;
    bool verbose;
} gg_opts;

/* What llama.cpp said in its log that its public API does not tell us: whether "auto" flash
 * attention resolved to on or off (llama-context.cpp, resolve_fused_ops). */
typedef struct {
    int fa_enabled; /* -1: not reported, 0: off, 1: on */
    bool verbose;
} gg_log_state;

static void gg_log(enum ggml_log_level level, const char *text, void *user) {
    gg_log_state *st = user;
    if (strstr(text, "Flash Attention enabled")) {
        st->fa_enabled = 1;
    } else if (strstr(text, "Flash Attention not supported")) {
        st->fa_enabled = 0;
    }
    if (st->verbose || level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

/* Decodes the prompts-file escapes (\n \t \r \\ \xHH) in place; returns the length or -1. */
static long gg_unescape(char *s) {
    size_t r = 0, w = 0;
    while (s[r]) {
        if (s[r] != '\\') {
            s[w++] = s[r++];
            continue;
        }
        char c = s[r + 1];
        if (c == 'n' || c == 't' || c == 'r' || c == '\\') {
            s[w++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : '\\';
            r += 2;
        } else if (c == 'x') {
            if (!isxdigit((unsigned char)s[r + 2]) || !isxdigit((unsigned char)s[r + 3])) {
                return -1;
            }
            char hex[3] = {s[r + 2], s[r + 3], 0};
            s[w++] = (char)strtoul(hex, NULL, 16);
            r += 4;
        } else {
            return -1;
        }
    }
    s[w] = 0;
    return (long)w;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if there is none. */
static size_t gg_utf8_len(const unsigned char *s, size_t n) {
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xe0) == 0xc0 ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xc2)) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
    }
    /* overlong 3/4-byte forms, UTF-16 surrogates, past U+10FFFF (RFC 3629, section 4) */
    if (len == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0;
    if (len == 4 &&
        ((s[0] == 0xf0 && s[1] < 0x90) || s[0] > 0xf4 || (s[0] == 0xf4 && s[1] >= 0x90))) {
        return 0;
    }
    return len;
}

/* Inverse of gg_unescape. Control bytes, DEL and bytes that are not valid UTF-8 (a token can
 * end inside a character) are written as \xHH, so the file stays valid UTF-8. */
static void gg_escape(FILE *f, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = gg_utf8_len(s + i, n - i);
        if (c == '\\')
            fputs("\\\\", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f || len == 0)
            fprintf(f, "\\x%02x", c);
        else {
            fwrite(s + i, 1, len, f);
            i += len;
            continue;
        }
        i++;
    }
}

/* The k largest logits, largest first; equal logits keep the lower id first, the same rule
 * as the greedy choice below. Returns false if a logit is not finite. */
static bool gg_topk(const float *logits, int n, int k, int *ids, float *vals) {
    int have = 0;
    for (int i = 0; i < n; i++) {
        float v = logits[i];
        if (!isfinite(v)) return false;
        if (have == k && !(v > vals[k - 1])) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && v > vals[j - 1]) {
            ids[j] = ids[j - 1];
            vals[j] = vals[j - 1];
            j--;
        }
        ids[j] = i;
        vals[j] = v;
    }
    return true;
}

static void gg_write_topk(FILE *f, int step, const int *ids, const float *vals) {
    fprintf(f, "top10_step%d\t", step);
    for (int i = 0; i < TOPK; i++)
        fprintf(f, "%s%d:%.9g", i ? " " : "", ids[i], vals[i]);
    fprintf(f, "\nmaxlogit_step%d\t%.9g\n", step, vals[0]);
}

static int gg_decode(struct llama_context *ctx, llama_token *toks, int n, int n_batch) {
    for (int i = 0; i < n; i += n_batch) {
        int m = n - i < n_batch ? n - i : n_batch;
        int rc = llama_decode(ctx, llama_batch_get_one(toks + i, m));
        if (rc != 0) {
            fprintf(stderr, "golden_gen: llama_decode failed (%d) at token %d of %d\n", rc, i, n);
            return -1;
        }
    }
    return 0;
}

/* One prompt: tokenize, prefill, then n_gen greedy steps. Step s uses the logits that choose
 * gen_ids[s]; so step 0 is the prompt's last position, step n_gen-1 the last one computed. */
static int gg_run_prompt(struct llama_context *ctx, const struct llama_vocab *vocab,
                         const gg_opts *o, const char *text, size_t len, FILE *f) {
    int rc = -1;
    /* A byte-level BPE never makes more tokens than bytes, plus BOS/EOS. */
    int cap = (int)len + 8;
    llama_token *toks = malloc((size_t)(cap + o->n_gen) * sizeof *toks);
    float *margin = malloc((size_t)o->n_gen * sizeof *margin);
    char *piece = malloc((size_t)o->n_gen * 256); /* gen_text, up to 256 bytes a token */
    if (!toks || !margin || !piece) {
        fprintf(stderr, "golden_gen: out of memory\n");
        goto out;
    }
    int n_prompt = llama_tokenize(vocab, text, (int32_t)len, toks, cap, true, true);
    if (n_prompt <= 0) {
        fprintf(stderr, "golden_gen: tokenizing the prompt failed (%d)\n", n_prompt);
        goto out;
    }
    if (n_prompt + o->n_gen > o->n_ctx) {
        fprintf(stderr, "golden_gen: prompt of %d tokens + %d does not fit n_ctx %d\n", n_prompt,
                o->n_gen, o->n_ctx);
        goto out;
    }
    llama_memory_clear(llama_get_memory(ctx), true);
    if (gg_decode(ctx, toks, n_prompt, o->n_batch) != 0) goto out;

    const int n_vocab = llama_vocab_n_tokens(vocab);
    int ids[TOPK], first_ids[TOPK];
    float vals[TOPK], first_vals[TOPK];
    for (int s = 0; s < o->n_gen; s++) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        if (!logits || !gg_topk(logits, n_vocab, TOPK, ids, vals)) {
            fprintf(stderr, "golden_gen: no or non-finite logits at step %d\n", s);
            goto out;
        }
        if (s == 0) {
            memcpy(first_ids, ids, sizeof ids);
            memcpy(first_vals, vals, sizeof vals);
        }
        margin[s] = vals[0] - vals[1];
        toks[n_prompt + s] = ids[0];
        /* Exactly n_gen tokens: end-of-generation tokens are fed back like any other, so
         * every prompt gives the same amount of data. */
        if (s + 1 < o->n_gen && gg_decode(ctx, &toks[n_prompt + s], 1, 1) != 0) goto out;
    }

    fputs("prompt\t", f);
    gg_escape(f, text, len);
    fprintf(f, "\nn_prompt\t%d\nprompt_ids\t", n_prompt);
    for (int i = 0; i < n_prompt; i++)
        fprintf(f, "%s%d", i ? " " : "", toks[i]);
    fputs("\ngen_ids\t", f);
    for (int s = 0; s < o->n_gen; s++)
        fprintf(f, "%s%d", s ? " " : "", toks[n_prompt + s]);
    /* Pieces are joined before escaping: a character can span tokens (emoji do). */
    fputs("\ngen_text\t", f);
    size_t text_len = 0;
    for (int s = 0; s < o->n_gen; s++) {
        int n = llama_token_to_piece(vocab, toks[n_prompt + s], piece + text_len, 256, 0, true);
        if (n < 0) {
            fprintf(stderr, "golden_gen: token %d has a piece over 256 bytes\n",
                    toks[n_prompt + s]);
            goto out;
        }
        text_len += (size_t)n;
    }
    gg_escape(f, piece, text_len);
    fputs("\ngen_margin\t", f);
    for (int s = 0; s < o->n_gen; s++)
        fprintf(f, "%s%.9g", s ? " " : "", margin[s]);
    fputc('\n', f);
    gg_write_topk(f, 0, first_ids, first_vals);
    gg_write_topk(f, o->n_gen - 1, ids, vals);
    fputs("end\n", f);
    rc = 0;
out:
    free(toks);
    free(margin);
    free(piece);
    return rc;
}

static void gg_usage(void) {
    fputs("usage: golden_gen -m MODEL -f PROMPTS -o OUT [-t THREADS] [-n N_GEN] [-c N_CTX]\n"
          "                  [-b N_BATCH] [--fa auto|on|off] [--kv-type f16|f32]\n"
          "                  [--meta KEY=VALUE]... [--lora FILE[:SCALE]]... [-v]\n",
          stderr);
}

static bool gg_parse_int(const char *s, int *v) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || *end || end == s || x < 1 || x > 1 << 20) return false;
    *v = (int)x;
    return true;
}

static int gg_parse_args(int argc, char **argv, gg_opts *o) {
    *o = (gg_opts){.n_threads = 2,
                   .n_gen = 32,
                   .n_ctx = 2048,
                   .n_batch = 512,
                   .fa = LLAMA_FLASH_ATTN_TYPE_AUTO,
                   .kv_type = GGML_TYPE_F16};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-v")) {
            o->verbose = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "golden_gen: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "-m"))
            o->model = v;
        else if (!strcmp(a, "-f"))
            o->prompts = v;
        else if (!strcmp(a, "-o"))
            o->out = v;
        else if (!strcmp(a, "-t"))
            ok = gg_parse_int(v, &o->n_threads);
        else if (!strcmp(a, "-n"))
            ok = gg_parse_int(v, &o->n_gen);
        else if (!strcmp(a, "-c"))
            ok = gg_parse_int(v, &o->n_ctx);
        else if (!strcmp(a, "-b"))
            ok = gg_parse_int(v, &o->n_batch);
        else if (!strcmp(a, "--fa")) {
            if (!strcmp(v, "auto"))
                o->fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
            else if (!strcmp(v, "on"))
                o->fa = LLAMA_FLASH_ATTN_TYPE_ENABLED;
            else if (!strcmp(v, "off"))
                o->fa = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            else
                ok = false;
        } else if (!strcmp(a, "--kv-type")) {
            if (!strcmp(v, "f16"))
                o->kv_type = GGML_TYPE_F16;
            else if (!strcmp(v, "f32"))
                o->kv_type = GGML_TYPE_F32;
            else
                ok = false;
        } else if (!strcmp(a, "--lora")) {
            ok = o->n_lora < MAX_META;
            if (ok) {
                static char paths[MAX_META][4096];
                char *p = paths[o->n_lora], *colon;
                snprintf(p, sizeof paths[0], "%s", v);
                float sc = 1.0f;
                if ((colon = strrchr(p, ':')) && colon[1]) {
                    char *end;
                    sc = strtof(colon + 1, &end);
                    if (*end == '\0')
                        *colon = '\0';
                    else
                        sc = 1.0f;
                }
                o->lora[o->n_lora] = p;
                o->lora_scale[o->n_lora++] = sc;
            }
        } else if (!strcmp(a, "--meta")) {
            ok = o->n_meta < MAX_META && strchr(v, '=') && !strpbrk(v, "\t\n");
            if (ok) o->meta[o->n_meta++] = v;
        } else {
            fprintf(stderr, "golden_gen: unknown option %s\n", a);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "golden_gen: bad value '%s' for %s\n", v, a);
            return -1;
        }
    }
    if (!o->model || !o->prompts || !o->out) return -1;
    return 0;
}

static void gg_write_header(FILE *f, const gg_opts *o, const struct llama_context_params *cp,
                            const struct llama_vocab *vocab, int fa_enabled) {
    fputs("# vkllm golden generation data, written by tools/golden/golden_gen.c with llama.cpp"
          " (see README.md\n"
          "# beside this file). One record per line: KEY<TAB>VALUE. 'meta' lines first, then"
          " per prompt:\n"
          "# prompt (escaped: \\n \\t \\r \\\\ \\xHH), n_prompt, prompt_ids, gen_ids, gen_text"
          " (escaped), gen_margin\n"
          "# (top-1 minus top-2 logit per step), top10_stepS (id:logit, largest first),"
          " maxlogit_stepS, end.\n"
          "# Step S holds the logits that chose gen_ids[S]; step 0 is the prompt's last"
          " position.\n",
          f);
    for (int i = 0; i < o->n_meta; i++) {
        const char *eq = strchr(o->meta[i], '=');
        fprintf(f, "meta\t%.*s\t%s\n", (int)(eq - o->meta[i]), o->meta[i], eq + 1);
    }
    fprintf(f, "meta\tn_vocab\t%d\n", llama_vocab_n_tokens(vocab));
    fprintf(f, "meta\tadd_bos\t%d\n", llama_vocab_get_add_bos(vocab) ? 1 : 0);
    fprintf(f, "meta\ttokenize\tadd_special=1 parse_special=1\n");
    fprintf(f, "meta\tsampling\tgreedy (argmax of logits, ties to the lowest id)\n");
    fprintf(f, "meta\tn_gen\t%d\n", o->n_gen);
    fprintf(f, "meta\tstop_at_eog\t0\n");
    fprintf(f, "meta\tbackend\tCPU\n");
    fprintf(f, "meta\tn_threads\t%d\n", cp->n_threads);
    fprintf(f, "meta\tn_ctx\t%u\n", cp->n_ctx);
    fprintf(f, "meta\tn_batch\t%u\n", cp->n_batch);
    fprintf(f, "meta\tn_ubatch\t%u\n", cp->n_ubatch);
    fprintf(f, "meta\ttype_k\t%s\n", ggml_type_name(cp->type_k));
    fprintf(f, "meta\ttype_v\t%s\n", ggml_type_name(cp->type_v));
    fprintf(f, "meta\tflash_attn\t%s -> %s\n", llama_flash_attn_type_name(cp->flash_attn_type),
            fa_enabled < 0 ? "unknown"
            : fa_enabled   ? "enabled"
                           : "disabled");
    fprintf(f, "meta\tsystem_info\t%s\n", llama_print_system_info());
}

int main(int argc, char **argv) {
    gg_opts o;
    if (gg_parse_args(argc, argv, &o) != 0) {
        gg_usage();
        return 2;
    }
    gg_log_state log_state = {.fa_enabled = -1, .verbose = o.verbose};
    llama_log_set(gg_log, &log_state);
    llama_backend_init();

    int rc = 1;
    struct llama_model *model = NULL;
    struct llama_context *ctx = NULL;
    FILE *in = NULL, *out = NULL;
    char *line = malloc(MAX_LINE);
    if (!line) goto done;

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0; /* CPU reference; a GPU build of llama.cpp must not change that */
    model = llama_model_load_from_file(o.model, mp);
    if (!model) {
        fprintf(stderr, "golden_gen: cannot load %s\n", o.model);
        goto done;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);

    /* Library defaults except what `vkllm run` fixes: context, batch, threads. */
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)o.n_ctx;
    cp.n_batch = (uint32_t)o.n_batch;
    cp.n_ubatch = (uint32_t)o.n_batch;
    cp.n_threads = o.n_threads;
    cp.n_threads_batch = o.n_threads;
    cp.flash_attn_type = o.fa;
    cp.type_k = o.kv_type;
    cp.type_v = o.kv_type;
    ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "golden_gen: cannot create a llama.cpp context\n");
        goto done;
    }
    if (o.n_lora) {
        struct llama_adapter_lora *ads[MAX_META];
        for (int i = 0; i < o.n_lora; i++)
            if (!(ads[i] = llama_adapter_lora_init(model, o.lora[i]))) {
                fprintf(stderr, "golden_gen: cannot load adapter %s\n", o.lora[i]);
                goto done;
            }
        if (llama_set_adapters_lora(ctx, ads, (size_t)o.n_lora, o.lora_scale) != 0) {
            fprintf(stderr, "golden_gen: cannot set the adapters\n");
            goto done;
        }
    }
    if (o.fa != LLAMA_FLASH_ATTN_TYPE_AUTO) {
        log_state.fa_enabled = o.fa == LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }

    in = fopen(o.prompts, "r");
    out = fopen(o.out, "w");
    if (!in || !out) {
        fprintf(stderr, "golden_gen: cannot open %s: %s\n", !in ? o.prompts : o.out,
                strerror(errno));
        goto done;
    }
    gg_write_header(out, &o, &cp, vocab, log_state.fa_enabled);

    int lineno = 0, n_done = 0;
    while (fgets(line, MAX_LINE, in)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = 0;
        else if (!feof(in)) {
            fprintf(stderr, "golden_gen: %s:%d: line too long\n", o.prompts, lineno);
            goto done;
        }
        if (n == 0 || line[0] == '#') continue;
        long len = gg_unescape(line);
        if (len < 0) {
            fprintf(stderr, "golden_gen: %s:%d: bad escape (use \\n \\t \\r \\\\ \\xHH)\n",
                    o.prompts, lineno);
            goto done;
        }
        if (gg_run_prompt(ctx, vocab, &o, line, (size_t)len, out) != 0) {
            fprintf(stderr, "golden_gen: %s:%d: failed\n", o.prompts, lineno);
            goto done;
        }
        n_done++;
    }
    if (ferror(in) || fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "golden_gen: I/O error\n");
        goto done;
    }
    fprintf(stderr, "golden_gen: %d prompts, flash attention %s, wrote %s\n", n_done,
            log_state.fa_enabled < 0 ? "unknown"
            : log_state.fa_enabled   ? "on"
                                     : "off",
            o.out);
    rc = 0;
done:
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = 1;
    free(line);
    if (ctx) llama_free(ctx);
    if (model) llama_model_free(model);
    llama_backend_free();
    return rc;
}
