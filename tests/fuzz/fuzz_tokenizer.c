/* libFuzzer target for the tokenizer: the default model's vocab is loaded once, then every
 * input is tokenized with and without special-token parsing, with and without BOS/EOS, into
 * an exact-size buffer and a too-small one, and the ids are turned back into text.
 *
 * Vocab: $VKLLM_MODEL, else ~/.cache/vkllm/models/SmolLM2-135M-Instruct.Q4_1.gguf;
 * $VKLLM_FUZZ_VOCAB picks another file (e.g. ggml-vocab-llama-spm.gguf for the SentencePiece
 * path). Checks beyond "no crash": both passes agree, every id is in range, a too-small
 * buffer reports the same count.
 */
#include "loader/gguf.h"
#include "loader/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gguf_file *g_file;
static tok_vocab *g_vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char def[1024];
    const char *path = getenv("VKLLM_FUZZ_VOCAB");
    if (!path) path = getenv("VKLLM_MODEL");
    if (!path) {
        snprintf(def, sizeof def, "%s/.cache/vkllm/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 getenv("HOME") ? getenv("HOME") : "");
        path = def;
    }
    core_err err = {{0}};
    gguf_open_desc d = {.vocab_only = true};
    if (gguf_open(path, &d, &g_file, &err) != VKLLM_OK ||
        tok_load(g_file, NULL, &g_vocab, &err) != VKLLM_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s (scripts/fetch_model.sh fetches the model)\n", path,
                err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int32_t ids[1 << 16];
    static char text[1 << 20];
    if (size > 1 << 14) return 0;
    const uint32_t n_vocab = tok_n_vocab(g_vocab);
    for (int mode = 0; mode < 4; mode++) {
        bool parse_special = mode & 1, add_special = mode & 2;
        core_err err = {{0}};
        size_t n = 0, n2 = 0;
        vkllm_status st = tok_encode(g_vocab, (const char *)data, size, add_special, parse_special,
                                     ids, sizeof ids / sizeof ids[0], &n, &err);
        if (st != VKLLM_OK) abort();
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || (uint32_t)ids[i] >= n_vocab) abort();
        }
        if (n > 0) {
            st = tok_encode(g_vocab, (const char *)data, size, add_special, parse_special, ids,
                            n - 1, &n2, &err);
            if (st != VKLLM_ERR_BUFFER_TOO_SMALL || n2 != n) abort();
        }
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            size_t room = len < sizeof text ? sizeof text - len : 0;
            len += tok_piece(g_vocab, ids[i], parse_special, text + (len < sizeof text ? len : 0),
                             room);
        }
    }
    return 0;
}
