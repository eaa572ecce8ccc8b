/* vkllm run -f FILE --parallel N: every line of the file is a request to one engine that runs
 * N of them at once (continuous batching); answers print in input order as soon as they and
 * the ones before them are done, then an aggregate summary goes to stderr. */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static vkllm_request **g_reqs; /* for Ctrl-C: cancel them all */
static volatile size_t g_n_reqs;

static void on_sigint(int sig) {
    (void)sig;
    for (size_t i = 0; i < g_n_reqs; i++)
        vkllm_request_cancel(g_reqs[i]);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Splits text into its non-empty lines in place, turning \n, \t and \\ escapes into their
 * characters. Returns the line count; lines[] gets pointers into text. Out of memory:
 * SIZE_MAX, and *lines_out NULL. */
static size_t split_lines(char *text, char ***lines_out) {
    size_t cap = 64, n = 0;
    char **lines = malloc(cap * sizeof *lines);
    for (char *p = text; lines && *p;) {
        char *end = strchr(p, '\n');
        char *next = end ? end + 1 : p + strlen(p);
        if (end) *end = '\0';
        if (end && end > p && end[-1] == '\r') end[-1] = '\0';
        char *w = p;
        for (char *r = p; *r; r++) {
            if (*r == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) {
                *w++ = r[1] == 'n' ? '\n' : r[1] == 't' ? '\t' : '\\';
                r++;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        if (*p) {
            if (n == cap) {
                char **l = realloc(lines, cap * 2 * sizeof *l);
                if (!l) {
                    free(lines);
                    *lines_out = NULL;
                    return SIZE_MAX;
                }
                lines = l;
                cap *= 2;
            }
            lines[n++] = p;
        }
        p = next;
    }
    *lines_out = lines;
    return lines ? n : SIZE_MAX;
}

int cmd_run_parallel(const cli_opts *o) {
    if (!o->prompt_file || o->prompt) {
        fprintf(stderr, "error: --parallel takes its prompts from -f FILE, one per line\n");
        return 1;
    }
    size_t len = 0;
    char *text = cli_read_prompt(o, &len);
    if (!text) return 1;
    char **lines = NULL;
    const size_t n = split_lines(text, &lines);
    if (n == SIZE_MAX) {
        cli_error(VKLLM_ERR_OUT_OF_MEMORY, "out of memory for the prompt lines", NULL);
        free(text);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "error: %s has no prompts (one per line)\n", o->prompt_file);
        free(text);
        free(lines);
        return 1;
    }
    char *schema = NULL;
    vkllm_runtime *rt;
    vkllm_model *model;
    if (cli_json_schema(o, &schema) || cli_open(o, false, &rt, &model)) {
        free(schema);
        free(text);
        free(lines);
        return 1;
    }
    const vkllm_engine_desc ed = {.max_seqs = (uint32_t)o->parallel,
                                  .n_ctx = (uint32_t)o->n_ctx,
                                  .n_batch = (uint32_t)o->n_batch,
                                  .kv_bytes = (uint64_t)o->kv_mib << 20,
                                  .no_prefix_cache = o->no_prefix_cache,
                                  .kv_type = o->kv_type};
    vkllm_engine *e = NULL;
    int rc = 0;
    vkllm_request **reqs = calloc(n, sizeof *reqs);
    vkllm_request_result *res = calloc(n, sizeof *res);
    double *ttft = calloc(n, sizeof *ttft);
    const char *tips = "a smaller KV budget (--kv-mib), context (-c) or batch (-b); fewer "
                       "sequences (--parallel); another device (--device); a smaller model";
    vkllm_status est = VKLLM_OK;
    if (!reqs || !res || !ttft) {
        cli_error(VKLLM_ERR_OUT_OF_MEMORY, "out of memory for the requests", NULL);
        rc = 1;
    } else if ((est = vkllm_engine_create(model, &ed, &e)) != VKLLM_OK) {
        cli_error(est, vkllm_model_last_error(model), tips);
        rc = 1;
    }
    struct timespec t0s;
    clock_gettime(CLOCK_MONOTONIC, &t0s);
    size_t submitted = 0;
    const bool ready = rc == 0;
    for (size_t i = 0; ready && i < n; i++) {
        vkllm_chat_message msgs[2] = {{"system", o->system}, {"user", lines[i]}};
        const size_t nm = o->system ? 2 : 1;
        vkllm_request_desc d = {.struct_size = sizeof d,
                                .max_tokens = o->n_predict,
                                .ignore_eog = o->ignore_eos,
                                .sampling = o->sampling,
                                .presence_penalty = o->presence_penalty,
                                .frequency_penalty = o->frequency_penalty,
                                .json_schema = schema};
        d.n_lora = cli_lora(&d.lora);
        if (o->chat) {
            d.messages = o->system ? msgs : msgs + 1;
            d.n_messages = nm;
        } else {
            d.prompt = lines[i];
        }
        /* each request its own seed, derived from --seed, so answers do not depend on order */
        d.sampling.seed = o->sampling.seed + i;
        /* a bad prompt is reported and skipped; the others still run */
        if (vkllm_submit(e, &d, &reqs[i]) != VKLLM_OK) {
            fprintf(stderr, "error: prompt %zu (line \"%.40s%s\"): %s\n", i + 1, lines[i],
                    strlen(lines[i]) > 40 ? "..." : "", vkllm_engine_last_error(e));
            reqs[i] = NULL;
            rc = 1;
        }
        submitted++;
    }
    g_reqs = reqs;
    g_n_reqs = submitted;
    signal(SIGINT, on_sigint);
    uint64_t n_prompt = 0, n_cached = 0, n_gen = 0;
    size_t answered = 0;
    for (size_t i = 0; i < submitted; i++) {
        if (!reqs[i]) {
            if (!o->no_echo) printf("> %s\n", lines[i]);
            fputs("(error: see stderr)\n\n", stdout);
            continue;
        }
        answered++;
        vkllm_status st = vkllm_request_wait(reqs[i], &res[i]);
        size_t tl = 0;
        const char *t = vkllm_request_text(reqs[i], &tl);
        if (!o->no_echo) printf("> %s\n", lines[i]);
        if (st != VKLLM_OK) {
            char msg[64];
            snprintf(msg, sizeof msg, "prompt %zu: %s", i + 1, vkllm_status_str(st));
            cli_error(st, msg, tips);
            rc = 1;
        }
        fwrite(t ? t : "", 1, tl, stdout);
        fputs("\n\n", stdout);
        fflush(stdout);
        n_prompt += res[i].n_prompt;
        n_cached += res[i].n_cached;
        n_gen += res[i].n_generated;
        ttft[i] = res[i].ttft_seconds;
    }
    signal(SIGINT, SIG_DFL);
    g_n_reqs = 0;
    struct timespec t1s;
    clock_gettime(CLOCK_MONOTONIC, &t1s);
    const double wall =
        (double)(t1s.tv_sec - t0s.tv_sec) + (double)(t1s.tv_nsec - t0s.tv_nsec) * 1e-9;
    if (answered) {
        double sum = 0;
        size_t k = 0;
        for (size_t i = 0; i < submitted; i++)
            if (reqs[i]) sum += (ttft[k++] = ttft[i]);
        qsort(ttft, answered, sizeof *ttft, cmp_double);
        const size_t p95 = (size_t)((double)(answered - 1) * 0.95 + 0.5);
        vkllm_engine_stats st = {0};
        vkllm_engine_get_stats(e, &st);
        fprintf(stderr,
                "vkllm: %zu requests, %d at a time | prompt %llu tok (%llu from the prefix "
                "cache) | generated %llu tok in %.2f s: %.1f tok/s | time to first token mean "
                "%.3f s, p95 %.3f s | %llu steps, %llu preemptions | %s\n",
                answered, o->parallel, (unsigned long long)n_prompt, (unsigned long long)n_cached,
                (unsigned long long)n_gen, wall, wall > 0 ? (double)n_gen / wall : 0.0,
                sum / (double)answered, ttft[p95], (unsigned long long)st.steps,
                (unsigned long long)st.preemptions, vkllm_runtime_backend_name(rt));
    }
    for (size_t i = 0; i < submitted; i++)
        vkllm_request_free(reqs[i]);
    vkllm_engine_destroy(e);
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    free(reqs);
    free(res);
    free(ttft);
    free(lines);
    free(text);
    free(schema);
    return rc;
}
