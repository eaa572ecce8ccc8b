/* The model side: vkllm on the demo's own VkDevice, the way a game would embed it.
 *
 * vkllm_runtime_desc.vk_device hands vkllm the instance, physical device, device, queue and
 * the features the demo enabled; vkllm makes its buffers and pipelines on that device and
 * submits to the same queue, under the demo's queue mutex. The engine is manual: nothing runs
 * until the frame loop calls vkllm_step(engine, budget), once per frame, with the time the
 * frame can spare. Tokens arrive through on_token inside vkllm_step, on the frame loop's own
 * thread, so appending them to the text panel needs no lock. When a story ends another
 * begins (a new seed), so the model keeps working for as long as the window is open. */
#include "win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct win_story {
    vkllm_vulkan_device vd;
    vkllm_runtime *rt;
    vkllm_model *model;
    vkllm_engine *engine;
    vkllm_request *req;
    win_text *text;
    win_story_desc d;
    uint64_t tokens;
    uint32_t n_stories;
};

static void log_stderr(void *user, vkllm_log_level level, const char *msg) {
    (void)user;
    fprintf(stderr, "vkllm: %s: %s\n", level >= VKLLM_LOG_ERROR ? "error" : "warning", msg);
}

static bool on_token(void *user, int32_t token, const char *piece, size_t len) {
    (void)token;
    win_story *s = user;
    s->tokens++;
    win_text_append(s->text, piece, len, WIN_INK_TEXT);
    return true;
}

static bool start_story(win_story *s, char *err, size_t err_cap) {
    char title[96];
    snprintf(title, sizeof title, "%sStory %u\n", s->n_stories ? "\n\n" : "", s->n_stories + 1);
    win_text_append(s->text, title, strlen(title), WIN_INK_TITLE);
    const vkllm_chat_message msgs[2] = {{"system", s->d.system}, {"user", s->d.prompt}};
    const vkllm_request_desc rd = {
        .struct_size = sizeof rd,
        .messages = msgs,
        .n_messages = 2,
        .max_tokens = s->d.max_tokens,
        /* the next story gets the next seed: a different story, the same on every run */
        .sampling = {.temperature = s->d.temperature,
                     .top_k = 40,
                     .top_p = 0.95f,
                     /* a small model repeats itself: a mild penalty keeps the story moving */
                     .repeat_penalty = 1.15f,
                     .seed = s->d.seed + s->n_stories},
        .on_token = on_token,
        .user = s,
    };
    vkllm_status st = vkllm_submit(s->engine, &rd, &s->req);
    if (st != VKLLM_OK) {
        snprintf(err, err_cap, "vkllm_submit: %s", vkllm_engine_last_error(s->engine));
        return false;
    }
    s->n_stories++;
    return true;
}

bool win_story_create(win_story **out, win_gpu *g, win_text *text, const win_story_desc *d,
                      char *err, size_t err_cap) {
    *out = NULL;
    win_story *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_cap, "out of memory");
        return false;
    }
    s->text = text;
    s->d = *d;
    win_gpu_vkllm_device(g, &s->vd);
    const vkllm_runtime_desc rd = {
        .struct_size = sizeof rd,
        .log = log_stderr,
        .log_level = VKLLM_LOG_WARN,
        /* "vulkan", not "auto": on a CPU Vulkan driver such as lavapipe, auto would pick
         * vkllm's CPU backend; the point here is to share the window's device */
        .device = "vulkan",
        .vk_device = &s->vd,
    };
    vkllm_status st = vkllm_runtime_create(&rd, &s->rt);
    if (st != VKLLM_OK) {
        snprintf(err, err_cap, "vkllm on the window's Vulkan device: %s",
                 vkllm_runtime_last_error(NULL));
        goto fail;
    }
    st = vkllm_model_load(s->rt, &(vkllm_model_desc){.path = d->model_path}, &s->model);
    if (st != VKLLM_OK) {
        snprintf(err, err_cap, "%s: %s%s", d->model_path, vkllm_runtime_last_error(s->rt),
                 st == VKLLM_ERR_IO ? " (scripts/fetch_model.sh downloads the default model)" : "");
        goto fail;
    }
    /* one story at a time, a context that holds a long one, no engine thread */
    const vkllm_engine_desc ed = {.struct_size = sizeof ed,
                                  .max_seqs = 1,
                                  .n_ctx = 2048,
                                  .manual = true,
                                  .warmup = true}; /* no frame pays for building a kernel */
    st = vkllm_engine_create(s->model, &ed, &s->engine);
    if (st != VKLLM_OK) {
        snprintf(err, err_cap, "vkllm_engine_create: %s", vkllm_model_last_error(s->model));
        goto fail;
    }
    if (!start_story(s, err, err_cap)) goto fail;
    *out = s;
    return true;
fail:
    win_story_destroy(s);
    return false;
}

void win_story_destroy(win_story *s) {
    if (!s) return;
    if (s->req) vkllm_request_free(s->req);
    /* waits for vkllm's own work on the shared queue, then frees its objects on the device */
    if (s->engine) vkllm_engine_destroy(s->engine);
    if (s->model) vkllm_model_free(s->model);
    if (s->rt) vkllm_runtime_destroy(s->rt);
    free(s);
}

bool win_story_step(win_story *s, double budget_seconds, char *err, size_t err_cap) {
    if (s->req && vkllm_request_done(s->req)) {
        vkllm_request_result res = {.struct_size = sizeof res};
        vkllm_request_wait(s->req, &res); /* done: returns at once with the result */
        vkllm_request_free(s->req);
        s->req = NULL;
        if (res.status != VKLLM_OK) {
            snprintf(err, err_cap, "story %u failed: %s (%s)", s->n_stories,
                     vkllm_status_str(res.status), vkllm_engine_last_error(s->engine));
            return false;
        }
        if (res.stop == VKLLM_STOP_MAX_TOKENS) /* cut off, not finished: say so */
            win_text_append(s->text, " [...]", 6, WIN_INK_DIM);
    }
    if (!s->req && !start_story(s, err, err_cap)) return false;
    vkllm_status st = vkllm_step(s->engine, budget_seconds, NULL);
    if (st != VKLLM_OK) {
        snprintf(err, err_cap, "vkllm_step: %s", vkllm_engine_last_error(s->engine));
        return false;
    }
    return true;
}

uint64_t win_story_tokens(const win_story *s) {
    return s->tokens;
}

const char *win_story_backend(const win_story *s) {
    return vkllm_runtime_backend_name(s->rt);
}
