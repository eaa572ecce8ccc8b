/* An embedding program built against an installed vkllm (tests/cli_install.sh): only
 * <vkllm.h>, found through pkg-config. Loads the model $VKLLM_MODEL on the CPU backend and
 * prints 16 greedy tokens of a fixed prompt on stdout. */
#include <vkllm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct text {
    char buf[4096];
    size_t len;
} text;

static bool on_token(void *user, int32_t token, const char *piece, size_t piece_len) {
    text *t = (text *)user;
    (void)token;
    if (t->len + piece_len >= sizeof t->buf) return false;
    memcpy(t->buf + t->len, piece, piece_len);
    t->len += piece_len;
    return true;
}

int main(void) {
    uint32_t v = vkllm_version();
    if (VKLLM_VERSION_GET_MAJOR(v) != VKLLM_VERSION_MAJOR) {
        fprintf(stderr, "consumer.c: vkllm.h is version %u, the library %u.%u.%u\n",
                (unsigned)VKLLM_VERSION_MAJOR, (unsigned)VKLLM_VERSION_GET_MAJOR(v),
                (unsigned)VKLLM_VERSION_GET_MINOR(v), (unsigned)VKLLM_VERSION_GET_PATCH(v));
        return 1;
    }
    fprintf(stderr, "consumer.c: vkllm %u.%u.%u (%s)\n", (unsigned)VKLLM_VERSION_GET_MAJOR(v),
            (unsigned)VKLLM_VERSION_GET_MINOR(v), (unsigned)VKLLM_VERSION_GET_PATCH(v),
            vkllm_version_string());
    const char *path = getenv("VKLLM_MODEL");
    if (!path || !*path) {
        fprintf(stderr, "consumer.c: VKLLM_MODEL is not set\n");
        return 1;
    }

    vkllm_runtime_desc rd = {0};
    rd.device = "cpu";
    rd.n_threads = 2;
    vkllm_runtime *rt = NULL;
    vkllm_status st = vkllm_runtime_create(&rd, &rt);
    if (st != VKLLM_OK) {
        fprintf(stderr, "consumer.c: runtime: %s\n", vkllm_runtime_last_error(NULL));
        return 1;
    }
    vkllm_model_desc md = {0};
    md.path = path;
    vkllm_model *model = NULL;
    st = vkllm_model_load(rt, &md, &model);
    if (st != VKLLM_OK) {
        fprintf(stderr, "consumer.c: %s: %s\n", path, vkllm_runtime_last_error(rt));
        vkllm_runtime_destroy(rt);
        return 1;
    }
    vkllm_session_desc sd = {0};
    sd.n_ctx = 256;
    vkllm_session *s = NULL;
    st = vkllm_session_create(model, &sd, &s);
    if (st != VKLLM_OK) {
        fprintf(stderr, "consumer.c: session: %s\n", vkllm_model_last_error(model));
        vkllm_model_free(model);
        vkllm_runtime_destroy(rt);
        return 1;
    }

    static text out;
    vkllm_generate_desc gd = {0};
    gd.prompt = "The three primary colors are";
    gd.max_tokens = 16;
    gd.ignore_eog = true; /* always 16 tokens */
    gd.on_token = on_token;
    gd.user = &out;
    vkllm_generate_result res = {0};
    st = vkllm_generate(s, &gd, &res);
    int rc = 0;
    if (st != VKLLM_OK) {
        fprintf(stderr, "consumer.c: generate: %s\n", vkllm_session_last_error(s));
        rc = 1;
    } else if (res.n_generated != 16) {
        fprintf(stderr, "consumer.c: %u tokens generated, not 16\n", (unsigned)res.n_generated);
        rc = 1;
    } else {
        fwrite(out.buf, 1, out.len, stdout);
        fputc('\n', stdout);
    }
    vkllm_session_destroy(s);
    vkllm_model_free(model);
    vkllm_runtime_destroy(rt);
    return rc;
}
