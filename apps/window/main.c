/* vkllm-window: a game-style frame loop with a language model in it.
 *
 * Every frame: poll the window, draw the animated scene and the text panel (one submit, one
 * present), then give vkllm what is left of the frame: vkllm_step(engine, budget). The model
 * runs on the same VkDevice and queue as the renderer (story.c), and its tokens appear in the
 * panel as they are sampled. --frames, --screenshot and --frame-times make a headless run
 * under Xvfb a measurement: bench/window_bench.sh and bench/frame_times.py turn those into
 * the README's frame-time table.
 */
#include "win.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"
#define DEFAULT_PROMPT "Tell me a short story about a dragon who learns to paint."
#define DEFAULT_SYSTEM "You are a storyteller. Write vivid short stories for children."

typedef struct opts {
    const char *model, *prompt, *system, *screenshot, *frame_times;
    double budget_ms, temperature;
    long frames;
    int width, height;
    bool no_model, vsync;
    uint64_t seed;
} opts;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: vkllm-window [options]\n"
        "A Vulkan window with an animated scene; a language model on the same VkDevice\n"
        "streams a story into it, driven by vkllm_step once per frame.\n"
        "  -m, --model FILE       GGUF model (default: $VKLLM_MODEL, else\n"
        "                         ~/.cache/vkllm/models/" DEFAULT_MODEL_FILE ")\n"
        "      --prompt TEXT      what to ask for (default: \"" DEFAULT_PROMPT "\")\n"
        "      --budget-ms MS     time vkllm_step may take each frame (default 4; 0: one\n"
        "                         whole step per frame)\n"
        "      --no-model         the scene only\n"
        "      --frames N         stop after N frames (default 0: until the window closes)\n"
        "      --screenshot F     write the last frame to F (PNG)\n"
        "      --frame-times F    write per-frame times to F (CSV: frame, frame_ms = from its\n"
        "                         start to the next frame's, step_ms = in vkllm_step, tokens\n"
        "                         so far)\n"
        "      --width W, --height H   window size (default 960 x 540)\n"
        "      --vsync            present in FIFO mode (default: mailbox or immediate)\n"
        "      --seed S           sampling seed of the first story (default 42)\n"
        "      --temp T           sampling temperature (default 0.8; 0 = greedy)\n"
        "  -h, --help\n"
        "VKLLM_VK_VALIDATION=1 enables the Vulkan validation layer; any message fails the run.\n");
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, opts *o) {
    enum {
        O_PROMPT = 256,
        O_BUDGET,
        O_NO_MODEL,
        O_FRAMES,
        O_SHOT,
        O_TIMES,
        O_W,
        O_H,
        O_VSYNC,
        O_SEED,
        O_TEMP
    };
    static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                       {"prompt", required_argument, 0, O_PROMPT},
                                       {"budget-ms", required_argument, 0, O_BUDGET},
                                       {"no-model", no_argument, 0, O_NO_MODEL},
                                       {"frames", required_argument, 0, O_FRAMES},
                                       {"screenshot", required_argument, 0, O_SHOT},
                                       {"frame-times", required_argument, 0, O_TIMES},
                                       {"width", required_argument, 0, O_W},
                                       {"height", required_argument, 0, O_H},
                                       {"vsync", no_argument, 0, O_VSYNC},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"temp", required_argument, 0, O_TEMP},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    *o = (opts){.prompt = DEFAULT_PROMPT,
                .system = DEFAULT_SYSTEM,
                .budget_ms = 4,
                .temperature = 0.8,
                .width = 960,
                .height = 540,
                .seed = 42};
    int c;
    double v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:h", lo, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case O_PROMPT:
            o->prompt = optarg;
            break;
        case O_NO_MODEL:
            o->no_model = true;
            break;
        case O_SHOT:
            o->screenshot = optarg;
            break;
        case O_TIMES:
            o->frame_times = optarg;
            break;
        case O_VSYNC:
            o->vsync = true;
            break;
        case O_BUDGET:
            if (!parse_num(optarg, 0, 1000, &v)) goto bad;
            o->budget_ms = v;
            break;
        case O_FRAMES:
            if (!parse_num(optarg, 0, 1e9, &v) || v != floor(v)) goto bad;
            o->frames = (long)v;
            break;
        case O_W:
        case O_H:
            if (!parse_num(optarg, 64, 16384, &v) || v != floor(v)) goto bad;
            *(c == O_W ? &o->width : &o->height) = (int)v;
            break;
        case O_SEED:
            if (!parse_num(optarg, 0, 9007199254740992.0, &v) || v != floor(v)) goto bad;
            o->seed = (uint64_t)v;
            break;
        case O_TEMP:
            if (!parse_num(optarg, 0, 10, &v)) goto bad;
            o->temperature = v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "vkllm-window: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "vkllm-window: bad value for %s: '%s'\n", argv[optind - 2], optarg);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "vkllm-window: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1; /* go on */
}

static const char *model_path(const opts *o, char *buf, size_t cap) {
    if (o->model) return o->model;
    const char *env = getenv("VKLLM_MODEL");
    if (env && *env) return env;
    const char *cache = getenv("VKLLM_CACHE"), *home = getenv("HOME");
    if (cache && *cache)
        snprintf(buf, cap, "%s/models/%s", cache, DEFAULT_MODEL_FILE);
    else
        snprintf(buf, cap, "%s/.cache/vkllm/models/%s", home ? home : ".", DEFAULT_MODEL_FILE);
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char g_glfw_error[512];
static void on_glfw_error(int code, const char *msg) {
    snprintf(g_glfw_error, sizeof g_glfw_error, "%s (GLFW error 0x%x)", msg, code);
}

static void on_key(GLFWwindow *w, int key, int scancode, int action, int mods) {
    (void)scancode;
    (void)mods;
    if (key == GLFW_KEY_ESCAPE && action == GLFW_PRESS) glfwSetWindowShouldClose(w, GLFW_TRUE);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of n sorted values */
static double pct(const double *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t k = (size_t)ceil(p / 100.0 * (double)n);
    return sorted[k > 0 ? k - 1 : 0];
}

typedef struct frame_rec {
    double start, step_ms;
    uint64_t tokens;
} frame_rec;

static bool write_csv(const char *path, const frame_rec *f, size_t n, double end, char *err,
                      size_t err_cap) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        snprintf(err, err_cap, "%.900s: cannot write: %s", tmp, strerror(errno));
        return false;
    }
    fprintf(fp, "frame,frame_ms,step_ms,tokens\n");
    for (size_t i = 0; i < n; i++) {
        const double next = i + 1 < n ? f[i + 1].start : end;
        fprintf(fp, "%zu,%.3f,%.3f,%llu\n", i, (next - f[i].start) * 1e3, f[i].step_ms,
                (unsigned long long)f[i].tokens);
    }
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        snprintf(err, err_cap, "%.900s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}

static const char *present_mode_name(VkPresentModeKHR m) {
    switch (m) {
    case VK_PRESENT_MODE_IMMEDIATE_KHR:
        return "immediate";
    case VK_PRESENT_MODE_MAILBOX_KHR:
        return "mailbox";
    case VK_PRESENT_MODE_FIFO_KHR:
        return "fifo";
    default:
        return "other";
    }
}

int main(int argc, char **argv) {
    opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc >= 0) return rc;
    rc = 1;
    char err[1024] = "";
    char mbuf[4096];
    const char *mpath = o.no_model ? NULL : model_path(&o, mbuf, sizeof mbuf);
    /* a missing model is found before a window opens */
    if (mpath && access(mpath, R_OK) != 0) {
        fprintf(stderr, "vkllm-window: model %s: %s%s\n", mpath, strerror(errno),
                o.model ? "" : " (scripts/fetch_model.sh downloads the default model)");
        return 1;
    }
    win_font font = {0};
    win_text text = {0};
    win_gpu gpu = {0};
    win_render ren = {0};
    win_story *story = NULL;
    GLFWwindow *window = NULL;
    frame_rec *rec = NULL;
    uint8_t *shot = NULL;
    bool glfw_up = false;
    if (!win_font_load(&font, err, sizeof err)) goto out;
    win_text_init(&text, &font);

    glfwSetErrorCallback(on_glfw_error);
    if (!glfwInit()) {
        snprintf(err, sizeof err,
                 "cannot open a window: %s (no display? set DISPLAY, or run "
                 "under xvfb-run)",
                 g_glfw_error);
        goto out;
    }
    glfw_up = true;
    if (!glfwVulkanSupported()) {
        snprintf(err, sizeof err,
                 "GLFW finds no Vulkan loader (Debian: libvulkan1 and a driver "
                 "such as mesa-vulkan-drivers)");
        goto out;
    }
    glfwWindowHint(GLFW_CLIENT_API, GLFW_NO_API); /* Vulkan draws, not OpenGL */
    window = glfwCreateWindow(o.width, o.height, "vkllm-window", NULL, NULL);
    if (!window) {
        snprintf(err, sizeof err, "cannot create a window: %s", g_glfw_error);
        goto out;
    }
    glfwSetKeyCallback(window, on_key);
    if (!win_gpu_create(&gpu, window, err, sizeof err)) goto out;
    if (!win_render_create(&ren, &gpu, window, &font, o.vsync, err, sizeof err)) goto out;
    win_text_layout(&text, ren.layout.cols, ren.layout.rows);
    const win_layout *L = &ren.layout;
    fprintf(stderr,
            "vkllm-window: %s, swapchain %ux%u %s, text panel at %d,%d %dx%d (%ux%u cells)\n",
            gpu.props.deviceName, ren.extent.width, ren.extent.height,
            present_mode_name(ren.present_mode), L->panel_pos[0], L->panel_pos[1], L->panel_size[0],
            L->panel_size[1], L->cols, L->rows);

    if (mpath) {
        /* one frame that says what is happening while the model loads (a few seconds) */
        char st[256];
        snprintf(st, sizeof st, "loading %.200s ...",
                 strrchr(mpath, '/') ? strrchr(mpath, '/') + 1 : mpath);
        win_text_set_status(&text, st);
        if (win_render_frame(&ren, 0.0f, &text, true, NULL, err, sizeof err) == WIN_DRAW_ERROR)
            goto out;
        const win_story_desc sd = {.model_path = mpath,
                                   .prompt = o.prompt,
                                   .system = o.system,
                                   .seed = o.seed,
                                   .temperature = (float)o.temperature,
                                   .max_tokens = 500};
        if (!win_story_create(&story, &gpu, &text, &sd, err, sizeof err)) goto out;
        fprintf(stderr, "vkllm-window: model %s on %s, budget %g ms per frame\n", mpath,
                win_story_backend(story), o.budget_ms);
    } else {
        const char *note = "No model (--no-model): the scene alone.\n";
        win_text_append(&text, note, strlen(note), WIN_INK_DIM);
    }

    size_t cap = o.frames > 0 ? (size_t)o.frames : 4096, n = 0;
    rec = malloc(cap * sizeof *rec);
    if (!rec) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    const double t0 = now_s();
    double ema_ms = 0, last_start = t0;
    while (!glfwWindowShouldClose(window) && (o.frames == 0 || (long)n < o.frames)) {
        const double start = now_s();
        if (n > 0) {
            const double ms = (start - last_start) * 1e3;
            ema_ms = ema_ms == 0 ? ms : ema_ms * 0.9 + ms * 0.1;
        }
        last_start = start;
        glfwPollEvents();
        char st[256];
        const uint64_t tokens = story ? win_story_tokens(story) : 0;
        if (story)
            snprintf(st, sizeof st, "%llu tokens  %.1f tok/s  frame %.0f ms  budget %g ms",
                     (unsigned long long)tokens, start > t0 ? (double)tokens / (start - t0) : 0.0,
                     ema_ms, o.budget_ms);
        else
            snprintf(st, sizeof st, "scene only  frame %.0f ms", ema_ms);
        win_text_set_status(&text, st);
        const bool last = o.frames > 0 && (long)n + 1 == o.frames;
        win_draw_status ds = win_render_frame(&ren, (float)(start - t0), &text, true,
                                              last && o.screenshot ? &shot : NULL, err, sizeof err);
        if (ds == WIN_DRAW_ERROR) goto out;
        if (ds == WIN_DRAW_RESIZED) {
            win_text_layout(&text, ren.layout.cols, ren.layout.rows);
            if (last && o.screenshot && !shot) continue; /* the frame was skipped: again */
        }
        double step_ms = 0;
        if (story) {
            const double s0 = now_s();
            if (!win_story_step(story, o.budget_ms * 1e-3, err, sizeof err)) goto out;
            step_ms = (now_s() - s0) * 1e3;
        }
        if (n == cap) {
            frame_rec *p = realloc(rec, 2 * cap * sizeof *rec);
            if (!p) {
                snprintf(err, sizeof err, "out of memory");
                goto out;
            }
            rec = p;
            cap *= 2;
        }
        rec[n++] = (frame_rec){start, step_ms, story ? win_story_tokens(story) : 0};
    }
    win_render_wait(&ren);
    const double end = now_s();

    if (o.frame_times && !write_csv(o.frame_times, rec, n, end, err, sizeof err)) goto out;
    if (o.screenshot) {
        if (!shot) {
            snprintf(err, sizeof err, "no screenshot: the window closed before the last frame");
            goto out;
        }
        if (!win_png_write(o.screenshot, shot, ren.extent.width, ren.extent.height, err,
                           sizeof err))
            goto out;
    }
    double *ms = malloc((n ? n : 1) * sizeof *ms);
    if (!ms) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ms[i] = ((i + 1 < n ? rec[i + 1].start : end) - rec[i].start) * 1e3;
    qsort(ms, n, sizeof *ms, cmp_double);
    const uint64_t tokens = story ? win_story_tokens(story) : 0;
    const double secs = end - t0;
    printf("vkllm-window: %zu frames in %.2f s | frame ms p50 %.2f p95 %.2f p99 %.2f | ", n, secs,
           pct(ms, n, 50), pct(ms, n, 95), pct(ms, n, 99));
    if (story)
        printf("%llu tokens, %.2f tok/s, budget %g ms\n", (unsigned long long)tokens,
               secs > 0 ? (double)tokens / secs : 0.0, o.budget_ms);
    else
        printf("no model\n");
    free(ms);
    rc = 0;
out:
    if (rc != 0 && err[0]) fprintf(stderr, "vkllm-window: %s\n", err);
    win_story_destroy(story); /* vkllm's objects go before the device they live on */
    win_render_destroy(&ren);
    win_gpu_destroy(&gpu);
    if (window) glfwDestroyWindow(window);
    if (glfw_up) glfwTerminate();
    win_text_free(&text);
    win_font_free(&font);
    free(rec);
    free(shot);
    const uint32_t nval = win_gpu_validation_messages();
    if (nval > 0) {
        fprintf(stderr,
                "vkllm-window: %u Vulkan validation message%s (VKLLM_VK_VALIDATION): "
                "failing the run\n",
                nval, nval == 1 ? "" : "s");
        return 1;
    }
    return rc;
}
