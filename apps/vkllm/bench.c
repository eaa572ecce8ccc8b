/* vkllm bench: prefill and decode speed with llama-bench's habits (lists of models, prompt and
 * generation lengths, depths, batch sizes, threads, devices and tiers; every combination is a
 * test; mean +- standard deviation over -r repetitions after one warm-up), a bandwidth probe
 * per device that puts each decode figure against the memory roofline, kernel
 * microbenchmarks (--ops), and JSON / CSV records whose schema docs/bench-json.md describes.
 *
 * The markdown table goes to stdout a row at a time; a progress line goes to stderr while a
 * test runs, only when stderr is a terminal. Uses only the public API.
 */
#include "bench.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- records ---- */

double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0.0, q = 0.0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = n ? s / n : 0.0;
    for (int i = 0; i < n; i++)
        q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

void add_num_or_null(cJSON *o, const char *key, bool present, double v) {
    if (present)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* The engine, host and device part of a record. */
cJSON *record_new(const bench_env *e) {
    cJSON *r = cJSON_CreateObject();
    const char *ver = vkllm_version_string();
    cJSON_AddStringToObject(r, "engine", "vkllm");
    cJSON_AddStringToObject(r, "engine_version", ver);
    char commit[64] = "unknown";
    const char *g = strstr(ver, "(git ");
    if (g) {
        snprintf(commit, sizeof commit, "%s", g + 5);
        char *close = strchr(commit, ')');
        if (close) *close = '\0';
    }
    cJSON_AddStringToObject(r, "commit", commit);
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(r, "time", when);

    cJSON *host = cJSON_AddObjectToObject(r, "host");
    cJSON_AddStringToObject(host, "cpu", e->host_cpu);
    cJSON_AddNumberToObject(host, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    struct utsname u;
    char os[160] = "";
    if (uname(&u) == 0) snprintf(os, sizeof os, "%.70s %.70s", u.sysname, u.release);
    cJSON_AddStringToObject(host, "os", os);

    const vkllm_device_info *d = &e->dev;
    const bool vk = strcmp(d->backend, "vulkan") == 0;
    cJSON *dev = cJSON_AddObjectToObject(r, "device");
    cJSON_AddStringToObject(dev, "backend", d->backend);
    cJSON_AddStringToObject(dev, "name", d->name);
    cJSON_AddStringToObject(dev, "vendor", d->vendor);
    cJSON_AddStringToObject(dev, "kind", d->kind);
    cJSON_AddStringToObject(dev, "driver", d->driver);
    if (vk)
        cJSON_AddStringToObject(dev, "api_version", d->api_version);
    else
        cJSON_AddNullToObject(dev, "api_version");
    add_num_or_null(dev, "tier", vk, d->tier);
    cJSON_AddBoolToObject(dev, "relaxed_products", d->relaxed_products);
    cJSON_AddNumberToObject(dev, "memory_bytes", (double)d->memory_bytes);
    add_num_or_null(dev, "bandwidth_gbps", e->bw_gbps > 0, e->bw_gbps);
    cJSON_AddNumberToObject(r, "threads", e->threads);
    return r;
}

void add_model(cJSON *r, const char *path, const vkllm_model_info *mi, const char *type) {
    cJSON *m = cJSON_AddObjectToObject(r, "model");
    if (path)
        cJSON_AddStringToObject(m, "path", path);
    else
        cJSON_AddNullToObject(m, "path");
    cJSON_AddStringToObject(m, "name", mi->name ? mi->name : "");
    cJSON_AddStringToObject(m, "arch", mi->architecture ? mi->architecture : "");
    cJSON_AddStringToObject(m, "type", type ? type : "");
    cJSON_AddNumberToObject(m, "file_bytes", (double)mi->file_bytes);
    cJSON_AddNumberToObject(m, "weight_bytes", (double)mi->weight_bytes);
    cJSON_AddNumberToObject(m, "n_params", (double)mi->n_params);
    cJSON_AddNumberToObject(m, "n_layer", mi->n_layer);
    cJSON_AddNumberToObject(m, "n_embd", mi->n_embd);
    cJSON_AddNumberToObject(m, "n_ff", mi->n_ff);
    cJSON_AddNumberToObject(m, "n_head", mi->n_head);
    cJSON_AddNumberToObject(m, "n_head_kv", mi->n_head_kv);
    cJSON_AddNumberToObject(m, "n_vocab", mi->n_vocab);
}

void add_test(cJSON *r, const char *kind, const char *name, int n_prompt, int n_gen, int n_depth,
              int n_batch) {
    cJSON *t = cJSON_AddObjectToObject(r, "test");
    cJSON_AddStringToObject(t, "kind", kind);
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddNumberToObject(t, "n_prompt", n_prompt);
    cJSON_AddNumberToObject(t, "n_gen", n_gen);
    cJSON_AddNumberToObject(t, "n_depth", n_depth);
    cJSON_AddNumberToObject(t, "n_batch", n_batch);
}

void add_samples(cJSON *r, const double *x, int n, bool tps) {
    cJSON_AddNumberToObject(r, "reps", n);
    cJSON *s = cJSON_AddArrayToObject(r, "samples");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(s, cJSON_CreateNumber(x[i]));
    double mean, sd;
    mean_sd(x, n, &mean, &sd);
    add_num_or_null(r, "tps_mean", tps, mean);
    add_num_or_null(r, "tps_stddev", tps, sd);
}

/* ---- progress ---- */

void progress(const bench_env *e, const char *fmt, ...) {
    if (!e->progress) return;
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

void progress_clear(const bench_env *e) {
    if (e->progress) fprintf(stderr, "\r\033[K");
}

/* ---- model tests ---- */

/* K and V bytes a decode step reads at context length n_kv (F16 cache). */
static double kv_bytes(const vkllm_model_info *mi, double n_kv) {
    const double head_dim = mi->n_head ? (double)mi->n_embd / mi->n_head : 0.0;
    return 2.0 * mi->n_layer * mi->n_head_kv * head_dim * 2.0 * n_kv;
}

const char *short_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_model_header(void) {
    printf("| model | type | size | params | device | threads | test | t/s | roofline |\n"
           "| --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: |\n");
    fflush(stdout);
}

void device_label(const vkllm_device_info *d, char *buf, size_t cap) {
    if (strcmp(d->backend, "vulkan") == 0)
        snprintf(buf, cap, "vulkan %.60s t%d%s", d->name, d->tier,
                 d->relaxed_products ? " relaxed" : "");
    else
        snprintf(buf, cap, "cpu %.40s", d->driver);
}

static void print_model_row(const bench_env *e, const model_ctx *mc, const char *test, double mean,
                            double sd, double roof) {
    char dev[160], roof_s[16] = "";
    device_label(&e->dev, dev, sizeof dev);
    if (mc->ngl >= 0 || e->split) /* a partial offload or a split: where the layers went */
        snprintf(dev + strlen(dev), sizeof dev - strlen(dev), " ngl %u%s%s", mc->gpu_layers,
                 e->split ? " split " : "", e->split ? e->split : "");
    if (roof >= 0) snprintf(roof_s, sizeof roof_s, "%.0f %%", roof * 100.0);
    printf("| %s | %s | %.1f MiB | %.1f M | %s | %d | %s | %.2f ± %.2f | %s |\n",
           mc->mi.name && *mc->mi.name ? mc->mi.name : short_name(mc->path), mc->mi.type,
           (double)mc->mi.file_bytes / (1024.0 * 1024.0), (double)mc->mi.n_params / 1e6, dev,
           e->threads, test, mean, sd, roof_s);
    fflush(stdout);
}

/* Fills the context with depth tokens (not timed). */
static vkllm_status fill(vkllm_session *s, const model_ctx *mc, int depth) {
    vkllm_session_reset(s);
    return depth ? vkllm_session_eval(s, mc->toks, (size_t)depth) : VKLLM_OK;
}

/* One prefill (n_prompt > 0) or decode test; appends a record. Returns 0 or 1 (error). */
static int run_test(bench_env *e, model_ctx *mc, int n_prompt, int n_gen, int depth, int n_batch,
                    int test_no, int n_tests) {
    const bool pp = n_prompt > 0;
    const int n = pp ? n_prompt : n_gen;
    char name[64];
    snprintf(name, sizeof name, "%s%d", pp ? "pp" : "tg", n);
    if (depth) snprintf(name + strlen(name), sizeof name - strlen(name), " @ d%d", depth);
    vkllm_session_desc sd = {.n_ctx = (uint32_t)(depth + n), .n_batch = (uint32_t)n_batch};
    vkllm_session *s = NULL;
    if (vkllm_session_create(mc->model, &sd, &s) != VKLLM_OK) {
        progress_clear(e);
        fprintf(stderr, "error: %s: %s: %s\n", short_name(mc->path), name,
                vkllm_model_last_error(mc->model));
        return 1;
    }
    if (mc->n_lora && vkllm_session_set_lora(s, mc->lora, mc->n_lora) != VKLLM_OK) {
        progress_clear(e);
        fprintf(stderr, "error: %s: %s\n", name, vkllm_session_last_error(s));
        vkllm_session_destroy(s);
        return 1;
    }
    double x[1000];
    int rc = 0;
    /* rep -1 warms up (pipelines, caches); a decode warm-up needs only a few steps */
    for (int rep = -1; rc == 0 && rep < e->reps; rep++) {
        progress(e, "bench [%d/%d] %s %s: %s %d/%d", test_no, n_tests, short_name(mc->path), name,
                 rep < 0 ? "warm-up" : "run", rep < 0 ? 0 : rep + 1, e->reps);
        if (fill(s, mc, depth) != VKLLM_OK) rc = 1;
        const int steps = rep < 0 && !pp ? (n < 8 ? n : 8) : n;
        double t0 = now_s();
        if (pp) {
            if (rc == 0 && vkllm_session_eval(s, mc->toks + depth, (size_t)n) != VKLLM_OK) rc = 1;
        } else {
            for (int i = 0; rc == 0 && i < steps; i++)
                if (vkllm_session_eval(s, &mc->toks[depth + i], 1) != VKLLM_OK) rc = 1;
        }
        double dt = now_s() - t0;
        if (rep >= 0 && rc == 0) x[rep] = n / (dt > 0 ? dt : 1e-9);
    }
    progress_clear(e);
    if (rc) {
        fprintf(stderr, "error: %s: %s: %s\n", short_name(mc->path), name,
                vkllm_session_last_error(s));
        vkllm_session_destroy(s);
        return 1;
    }
    vkllm_session_destroy(s);

    cJSON *r = record_new(e);
    add_model(r, mc->path, &mc->mi, mc->mi.type);
    add_test(r, pp ? "prefill" : "decode", name, pp ? n : 0, pp ? 0 : n, depth, n_batch);
    cJSON_AddNumberToObject(r, "gpu_layers", mc->gpu_layers);
    cJSON_AddStringToObject(r, "split", e->split ? e->split : "");
    cJSON_AddStringToObject(r, "placement", mc->placement);
    cJSON_AddStringToObject(r, "lora", mc->lora_text);
    add_samples(r, x, e->reps, true);
    double mean, sdev, roof = -1.0;
    mean_sd(x, e->reps, &mean, &sdev);
    if (!pp) {
        const double bpt =
            (double)mc->mi.decode_weight_bytes + kv_bytes(&mc->mi, depth + (n + 1) / 2.0);
        cJSON_AddNumberToObject(r, "bytes_per_token", bpt);
        if (e->bw_gbps > 0) roof = bpt * mean / (e->bw_gbps * 1e9);
        add_num_or_null(r, "roofline_fraction", roof >= 0, roof);
    } else {
        cJSON_AddNullToObject(r, "bytes_per_token");
        cJSON_AddNullToObject(r, "roofline_fraction");
    }
    cJSON_AddNullToObject(r, "op");
    cJSON_AddItemToArray(e->records, r);
    print_model_row(e, mc, name, mean, sdev, roof);
    return 0;
}

/* Where the model's layers went, for records and rows. */
static void placement_text(model_ctx *mc) {
    vkllm_placement p[8] = {{.struct_size = sizeof(vkllm_placement)}};
    size_t n = 0, len = 0;
    mc->placement[0] = '\0';
    mc->gpu_layers = 0;
    if (vkllm_model_placement(mc->model, p, 8, &n) != VKLLM_OK) return;
    for (size_t i = 0; i < n && i < 8 && len < sizeof mc->placement; i++) {
        if (strncmp(p[i].device, "vulkan", 6) == 0) mc->gpu_layers += p[i].n_layers;
        char layers[32] = "";
        if (p[i].n_layers)
            snprintf(layers, sizeof layers, " %u-%u", p[i].layer0, p[i].layer0 + p[i].n_layers - 1);
        int k = snprintf(mc->placement + len, sizeof mc->placement - len, "%s%s%s%s%s",
                         i ? " | " : "", p[i].device, layers, p[i].embedding ? "+embd" : "",
                         p[i].output ? "+head" : "");
        if (k < 0) break;
        len += (size_t)k;
    }
}

static int bench_model_ngl(bench_env *e, const bench_opts *o, const char *path, int ngl,
                           int *test_no, int n_tests);

static int bench_model(bench_env *e, const bench_opts *o, const char *path, int *test_no,
                       int n_tests) {
    int rc = 0;
    for (int i = 0; rc == 0 && i < o->ngl.n; i++)
        rc = bench_model_ngl(e, o, path, o->ngl.v[i], test_no, n_tests);
    return rc;
}

static int bench_model_ngl(bench_env *e, const bench_opts *o, const char *path, int ngl,
                           int *test_no, int n_tests) {
    model_ctx mc = {.path = path, .ngl = ngl};
    vkllm_model_desc md = {.struct_size = sizeof md,
                           .path = path,
                           .gpu_layers_plus1 = ngl + 1,
                           /* the shares are for a +-joined list's devices */
                           .split = e->split ? o->split : NULL,
                           .n_split = e->split ? (uint32_t)o->n_split : 0};
    progress(e, "bench: loading %s", short_name(path));
    if (vkllm_model_load(e->rt, &md, &mc.model) != VKLLM_OK) {
        progress_clear(e);
        fprintf(stderr, "error: %s: %s\n", path, vkllm_runtime_last_error(e->rt));
        return 1;
    }
    vkllm_model_get_info(mc.model, &mc.mi);
    placement_text(&mc);
    for (int i = 0; i < o->lora.n_lora; i++) {
        vkllm_adapter_desc ad = {.struct_size = sizeof ad, .path = o->lora.lora_path[i]};
        if (vkllm_adapter_load(mc.model, &ad, &mc.lora[i].adapter) != VKLLM_OK) {
            progress_clear(e);
            fprintf(stderr, "error: %s\n", vkllm_model_last_error(mc.model));
            vkllm_model_free(mc.model);
            return 1;
        }
        mc.lora[i].scale = o->lora.lora_scale[i];
        mc.n_lora++;
        const size_t len = strlen(mc.lora_text);
        snprintf(mc.lora_text + len, sizeof mc.lora_text - len, "%s%s:%g", i ? "+" : "",
                 vkllm_adapter_name(mc.lora[i].adapter), (double)mc.lora[i].scale);
    }
    if (o->ngl.n > 1 || ngl >= 0 || e->split) {
        progress_clear(e);
        char n[16] = "all";
        if (ngl >= 0) snprintf(n, sizeof n, "%d", ngl);
        fprintf(stderr, "bench: %s, -ngl %s%s%s: %s\n", short_name(path), n,
                e->split ? ", --split " : "", e->split ? e->split : "", mc.placement);
    }
    int max_ctx = 0;
    for (int d = 0; d < o->depth.n; d++)
        for (int i = 0; i < o->prompt.n + o->gen.n; i++) {
            int len =
                o->depth.v[d] + (i < o->prompt.n ? o->prompt.v[i] : o->gen.v[i - o->prompt.n]);
            if (len > max_ctx) max_ctx = len;
        }
    int rc = 0;
    mc.n_toks = (uint32_t)max_ctx;
    mc.toks = malloc((size_t)(max_ctx ? max_ctx : 1) * sizeof *mc.toks);
    if (!mc.toks) rc = 1;
    uint64_t x = 88172645463325252ull;
    for (uint32_t i = 0; rc == 0 && i < mc.n_toks; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        mc.toks[i] = (int32_t)(x % mc.mi.n_vocab);
    }
    for (int d = 0; rc == 0 && d < o->depth.n; d++) {
        for (int i = 0; rc == 0 && i < o->prompt.n; i++)
            for (int b = 0; rc == 0 && b < o->batch.n; b++)
                if (o->prompt.v[i] > 0)
                    rc = run_test(e, &mc, o->prompt.v[i], 0, o->depth.v[d], o->batch.v[b],
                                  ++*test_no, n_tests);
        for (int i = 0; rc == 0 && i < o->gen.n; i++)
            if (o->gen.v[i] > 0)
                rc = run_test(e, &mc, 0, o->gen.v[i], o->depth.v[d], o->batch.v[0], ++*test_no,
                              n_tests);
    }
    free(mc.toks);
    vkllm_model_free(mc.model);
    return rc;
}

/* ---- kernel microbenchmarks ---- */

typedef struct op_case {
    const char *label; /* which matrix of the model */
    vkllm_bench_op_desc d;
} op_case;

/* The matrix products and the attention of a model shape, or test-backend-ops perf's. */
static int op_cases(const char *shape, const char *type, int tokens, int n_kv, op_case *out,
                    vkllm_model_info *mi) {
    int n = 0;
    if (strcmp(shape, "tbo") == 0) {
        memset(mi, 0, sizeof *mi);
        mi->name = "test-backend-ops";
        mi->architecture = "";
        out[n++] = (op_case){"MUL_MAT m=4096 k=14336",
                             {.op = VKLLM_BENCH_MATMUL, .rows = 4096, .cols = 14336}};
        if (tokens <= 4) /* test-backend-ops perf has F16 attention for 1 and 4 queries */
            out[n++] = (op_case){"FLASH_ATTN_EXT hs=64 nh=64/8 kv=7680",
                                 {.op = VKLLM_BENCH_ATTENTION,
                                  .n_head = 64,
                                  .n_head_kv = 8,
                                  .head_dim = 64,
                                  .n_kv = 7680}};
    } else {
        if (!vkllm_synth_shape_info(shape, mi)) return -1;
        const uint32_t hd = mi->n_embd / mi->n_head, kvd = hd * mi->n_head_kv;
        out[n++] =
            (op_case){"attn_q", {.op = VKLLM_BENCH_MATMUL, .rows = mi->n_embd, .cols = mi->n_embd}};
        out[n++] = (op_case){"attn_k", {.op = VKLLM_BENCH_MATMUL, .rows = kvd, .cols = mi->n_embd}};
        out[n++] =
            (op_case){"ffn_up", {.op = VKLLM_BENCH_MATMUL, .rows = mi->n_ff, .cols = mi->n_embd}};
        out[n++] =
            (op_case){"ffn_down", {.op = VKLLM_BENCH_MATMUL, .rows = mi->n_embd, .cols = mi->n_ff}};
        out[n++] = (op_case){"output",
                             {.op = VKLLM_BENCH_MATMUL, .rows = mi->n_vocab, .cols = mi->n_embd}};
        out[n++] = (op_case){"attention",
                             {.op = VKLLM_BENCH_ATTENTION,
                              .n_head = mi->n_head,
                              .n_head_kv = mi->n_head_kv,
                              .head_dim = hd,
                              .n_kv = (uint32_t)n_kv}};
    }
    for (int i = 0; i < n; i++) {
        out[i].d.tokens = (uint32_t)tokens;
        if (out[i].d.op == VKLLM_BENCH_MATMUL)
            out[i].d.type = type;
        else if (out[i].d.n_kv < (uint32_t)tokens)
            out[i].d.n_kv = (uint32_t)tokens;
    }
    return n;
}

static void print_op_header(void) {
    printf("| shape | op | type | size | tokens | device | threads | us/call | GB/s | GFLOPS |\n"
           "| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
}

static int bench_ops(bench_env *e, const bench_opts *o) {
    int n_cases = 0, done = 0, rc = 0;
    op_case cs[8];
    vkllm_model_info mi = {0};
    for (int s = 0; s < o->op_shapes.n; s++)
        for (int tk = 0; tk < o->op_tokens.n; tk++) {
            const int k =
                op_cases(o->op_shapes.v[s], "q4_0", o->op_tokens.v[tk], o->op_ctx, cs, &mi);
            if (k < 0) {
                fprintf(stderr,
                        "error: --ops-shape: unknown shape '%s' (see vkllm bench "
                        "--help)\n",
                        o->op_shapes.v[s]);
                return 1;
            }
            n_cases += k * o->op_types.n; /* attention repeats per type: skipped, counted */
        }
    for (int s = 0; s < o->op_shapes.n; s++)
        for (int ti = 0; ti < o->op_types.n; ti++)
            for (int tk = 0; tk < o->op_tokens.n; tk++) {
                const int k = op_cases(o->op_shapes.v[s], o->op_types.v[ti], o->op_tokens.v[tk],
                                       o->op_ctx, cs, &mi);
                for (int c = 0; c < k; c++) {
                    done++;
                    op_case *oc = &cs[c];
                    /* attention has no weight type: once, with the first */
                    if (oc->d.op == VKLLM_BENCH_ATTENTION && ti > 0) continue;
                    oc->d.seconds = o->op_seconds;
                    char size[48];
                    if (oc->d.op == VKLLM_BENCH_MATMUL)
                        snprintf(size, sizeof size, "%ux%u", oc->d.rows, oc->d.cols);
                    else
                        snprintf(size, sizeof size, "%u/%u x %u, kv %u", oc->d.n_head,
                                 oc->d.n_head_kv, oc->d.head_dim, oc->d.n_kv);
                    progress(e, "bench --ops [%d/%d] %s %s %s %s n=%u", done, n_cases,
                             o->op_shapes.v[s], oc->label, oc->d.op ? "" : oc->d.type, size,
                             oc->d.tokens);
                    vkllm_bench_op_result res = {0};
                    vkllm_status st = vkllm_bench_op(e->rt, &oc->d, &res);
                    progress_clear(e);
                    if (st == VKLLM_ERR_UNSUPPORTED || st == VKLLM_ERR_INVALID_ARG) {
                        fprintf(stderr, "bench --ops: %s %s %s skipped: %s\n", o->op_shapes.v[s],
                                oc->label, oc->d.op ? "" : oc->d.type,
                                vkllm_runtime_last_error(e->rt));
                        continue;
                    }
                    if (st != VKLLM_OK) {
                        fprintf(stderr, "error: bench --ops: %s\n",
                                vkllm_runtime_last_error(e->rt));
                        rc = 1;
                        continue;
                    }
                    const bool mm = oc->d.op == VKLLM_BENCH_MATMUL;
                    char dev[96];
                    device_label(&e->dev, dev, sizeof dev);
                    printf("| %s | %s | %s | %s | %u | %s | %d | %.1f | %.1f | %.1f |\n",
                           o->op_shapes.v[s], oc->label, mm ? oc->d.type : "f16 KV", size,
                           oc->d.tokens, dev, e->threads, res.us, res.gbps, res.gflops);
                    fflush(stdout);

                    cJSON *r = record_new(e);
                    add_model(r, NULL, &mi, mm ? oc->d.type : "f16");
                    char name[128];
                    snprintf(name, sizeof name, "%s %s %s n=%u", mm ? "matmul" : "attention",
                             mm ? oc->d.type : "f16", size, oc->d.tokens);
                    add_test(r, "op", name, 0, 0, 0, 0);
                    add_samples(r, &res.us, 1, false);
                    cJSON_AddNullToObject(r, "bytes_per_token");
                    cJSON_AddNullToObject(r, "roofline_fraction");
                    cJSON *op = cJSON_AddObjectToObject(r, "op");
                    cJSON_AddStringToObject(op, "op", mm ? "matmul" : "attention");
                    cJSON_AddStringToObject(op, "type", mm ? oc->d.type : "f16");
                    add_num_or_null(op, "rows", mm, oc->d.rows);
                    add_num_or_null(op, "cols", mm, oc->d.cols);
                    cJSON_AddNumberToObject(op, "tokens", oc->d.tokens);
                    add_num_or_null(op, "n_head", !mm, oc->d.n_head);
                    add_num_or_null(op, "n_head_kv", !mm, oc->d.n_head_kv);
                    add_num_or_null(op, "head_dim", !mm, oc->d.head_dim);
                    add_num_or_null(op, "n_kv", !mm, oc->d.n_kv);
                    cJSON_AddNumberToObject(op, "us", res.us);
                    cJSON_AddNumberToObject(op, "gbps", res.gbps);
                    cJSON_AddNumberToObject(op, "gflops", res.gflops);
                    cJSON_AddNumberToObject(op, "bytes", (double)res.bytes);
                    cJSON_AddNumberToObject(op, "flops", (double)res.flops);
                    cJSON_AddItemToArray(e->records, r);
                }
            }
    return rc;
}

/* ---- output files ---- */

static bool write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "error: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok) fprintf(stderr, "error: cannot write %s\n", path);
    return ok;
}

static void csv_cell(FILE *f, const cJSON *v) {
    if (cJSON_IsString(v)) {
        fputc('"', f);
        for (const char *p = v->valuestring; *p; p++) {
            if (*p == '"') fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    } else if (cJSON_IsNumber(v)) {
        fprintf(f, "%.17g", v->valuedouble);
    } else if (cJSON_IsArray(v)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, v) fprintf(f, "%s%.17g", x == v->child ? "" : ";", x->valuedouble);
    }
}

/* One row a record; the columns are the JSON paths of a record that has them all (an op
 * record when there is one: model records leave its op.* cells empty). */
static bool write_csv(const char *path, const cJSON *records) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "error: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    const cJSON *proto = records->child, *r, *k, *sub;
    cJSON_ArrayForEach(r, records) if (cJSON_IsObject(cJSON_GetObjectItem(r, "op"))) proto = r;
    bool first = true;
    cJSON_ArrayForEach(k, proto) {
        if (!cJSON_IsObject(k))
            fprintf(f, "%s%s", first ? "" : ",", k->string);
        else
            cJSON_ArrayForEach(sub, k)
                fprintf(f, "%s%s.%s", first && sub == k->child ? "" : ",", k->string, sub->string);
        first = false;
    }
    if (proto) fputc('\n', f);
    cJSON_ArrayForEach(r, records) {
        first = true;
        cJSON_ArrayForEach(k, proto) {
            const cJSON *v = cJSON_GetObjectItem(r, k->string);
            if (!cJSON_IsObject(k)) {
                fputs(first ? "" : ",", f);
                csv_cell(f, v);
            } else {
                cJSON_ArrayForEach(sub, k) {
                    fputs(first && sub == k->child ? "" : ",", f);
                    csv_cell(f, cJSON_GetObjectItem(v, sub->string));
                }
            }
            first = false;
        }
        fputc('\n', f);
    }
    bool ok = fclose(f) == 0;
    if (!ok) fprintf(stderr, "error: cannot write %s\n", path);
    return ok;
}

/* ---- the command ---- */

static int count_tests(const bench_opts *o) {
    int n = 0;
    for (int i = 0; i < o->prompt.n; i++)
        n += o->prompt.v[i] > 0 ? o->batch.n : 0;
    for (int i = 0; i < o->gen.n; i++)
        n += o->gen.v[i] > 0;
    return n * o->depth.n * o->models.n * o->devices.n * o->cpu_isas.n * o->tiers.n * o->threads.n *
           o->ngl.n;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    int pr = bench_parse(argc, argv, &o);
    if (pr == 2) {
        bench_usage(stdout);
        return 0;
    }
    if (pr) return pr;
    char defpath[4096];
    cli_opts co;
    memset(&co, 0, sizeof co);
    const bool default_model = o.models.n == 0;
    if (default_model) o.models.v[o.models.n++] = cli_model_path(&co, defpath, sizeof defpath);
    for (int i = 0; !o.ops && i < o.models.n; i++)
        if (access(o.models.v[i], R_OK) != 0) {
            fprintf(stderr, "error: model file not found: %s%s\n", o.models.v[i],
                    default_model ? " (run scripts/fetch_model.sh to download the default model)"
                                  : "");
            return 1;
        }

    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "schema", "vkllm-bench/1");
    bench_env e = {
        .records = cJSON_AddArrayToObject(doc, "records"), .reps = o.reps, .progress = isatty(2)};
    vkllm_device_info cpu = {0}; /* the first device listed is the host CPU */
    size_t n_dev = 0;
    vkllm_list_devices(&cpu, 1, &n_dev);
    snprintf(e.host_cpu, sizeof e.host_cpu, "%s", n_dev ? cpu.name : "");
    int rc = 0, test_no = 0, n_tests = count_tests(&o);
    const bool serve = o.parallel.n || o.prefix.n || o.step_ms.n;
    if (serve)
        printf("| model | type | device | threads | test | measure | value |\n"
               "| --- | --- | --- | ---: | --- | --- | ---: |\n");
    else
        o.ops ? print_op_header() : print_model_header();
    for (int d = 0; rc == 0 && d < o.devices.n; d++)
        for (int ci = 0; rc == 0 && ci < o.cpu_isas.n; ci++)
            for (int ti = 0; rc == 0 && ti < o.tiers.n; ti++)
                for (int th = 0; rc == 0 && th < o.threads.n; th++) {
                    vkllm_runtime_desc rd = {
                        .log = cli_log_stderr,
                        .log_level = o.verbose ? VKLLM_LOG_INFO : VKLLM_LOG_WARN,
                        .n_threads = o.threads.v[th],
                        .device = o.devices.v[d],
                        .vk_tier_plus1 = o.tiers.v[ti] >= 0 ? o.tiers.v[ti] + 1 : 0,
                        .cpu_isa = o.cpu_isas.v[ci],
                        .vk_relaxed_products = o.vk_relaxed,
                    };
                    e.split = strchr(o.devices.v[d], ',') && o.n_split ? o.split_text : NULL;
                    if (vkllm_runtime_create(&rd, &e.rt) != VKLLM_OK) {
                        fprintf(stderr, "error: %s\n", vkllm_runtime_last_error(NULL));
                        rc = 1;
                        break;
                    }
                    vkllm_runtime_device(e.rt, &e.dev);
                    if (strstr(e.dev.features, "unfused-fma") && !e.dev.relaxed_products)
                        fprintf(stderr,
                                "note: %s has no fused fma(): its matrix products emulate "
                                "one for the CPU backend's bits; --vk-relaxed uses its multiply "
                                "and add instead (faster; see README)\n",
                                e.dev.name);
                    e.threads =
                        o.threads.v[th] ? o.threads.v[th] : (int)sysconf(_SC_NPROCESSORS_ONLN);
                    e.bw_gbps = 0.0;
                    if (!o.no_probe) {
                        progress(&e, "bench: measuring %s's memory bandwidth", e.dev.name);
                        uint64_t bytes = 0;
                        if (vkllm_bench_bandwidth(e.rt, 0.5, &e.bw_gbps, &bytes) != VKLLM_OK) {
                            progress_clear(&e);
                            fprintf(stderr, "warning: bandwidth probe failed: %s\n",
                                    vkllm_runtime_last_error(e.rt));
                            e.bw_gbps = 0.0;
                        }
                        progress_clear(&e);
                        char dev[96];
                        device_label(&e.dev, dev, sizeof dev);
                        if (e.bw_gbps > 0)
                            fprintf(stderr,
                                    "bench: %s: read bandwidth %.1f GB/s (%.0f MiB "
                                    "streamed, %d threads)\n",
                                    dev, e.bw_gbps, (double)bytes / (1024.0 * 1024.0), e.threads);
                    }
                    if (o.ops) rc = bench_ops(&e, &o);
                    for (int m = 0; rc == 0 && serve && m < o.models.n; m++)
                        rc = bench_serve(&e, &o, o.models.v[m]);
                    for (int m = 0; rc == 0 && !o.ops && !serve && m < o.models.n; m++)
                        rc = bench_model(&e, &o, o.models.v[m], &test_no, n_tests);
                    vkllm_runtime_destroy(e.rt);
                    e.rt = NULL;
                }
    printf("\nvkllm %s\n", vkllm_version_string());
    if (o.json) {
        char *text = cJSON_Print(doc);
        if (!text || !write_text(o.json, text)) rc = 1;
        cJSON_free(text);
    }
    if (o.csv && !write_csv(o.csv, e.records)) rc = 1;
    cJSON_Delete(doc);
    return rc;
}
