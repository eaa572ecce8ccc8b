#!/usr/bin/env bash
# Writes tests/data/golden/tokens_<vocab>.txt: llama.cpp's token ids for every string in
# tests/data/golden/token_strings.txt, for the default model, llama.cpp's three vocab-only
# test files and two variants of the GPT-2 one with another pre-tokenizer, plus facts about each vocab (BOS/EOS, end-of-generation ids, token attributes, a
# hash of every token's piece, whether llama.cpp's detokenizer round-trips each string).
# tests/test_tokenizer.c checks vkllm against these files.
#
# Needs a llama.cpp build (llama-tokenize and libllama) and its source (llama.h and gguf-py,
# which needs numpy), python3 to decode the string file, and a C compiler for a small helper linked to libllama.
# Environment (defaults in brackets):
#   LLAMA_BIN        llama.cpp's bin dir       [$HOME/.cache/vkllm/build-cpu/bin]
#   LLAMA_SRC        llama.cpp's source        [$HOME/.cache/vkllm/llama.cpp-src]
#   VKLLM_VOCAB_DIR  ggml-vocab-*.gguf         [$HOME/.cache/vkllm/vocab]
#   VKLLM_MODEL      the default model         [$HOME/.cache/vkllm/models/SmolLM2-135M-Instruct.Q4_1.gguf]
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/vkllm/build-cpu/bin}
LLAMA_SRC=${LLAMA_SRC:-$HOME/.cache/vkllm/llama.cpp-src}
VOCAB_DIR=${VKLLM_VOCAB_DIR:-$HOME/.cache/vkllm/vocab}
MODEL=${VKLLM_MODEL:-$HOME/.cache/vkllm/models/SmolLM2-135M-Instruct.Q4_1.gguf}
strings=$root/tests/data/golden/token_strings.txt
outdir=$root/tests/data/golden

for f in "$LLAMA_BIN/llama-tokenize" "$LLAMA_SRC/include/llama.h" "$MODEL" "$strings"; do
    [ -e "$f" ] || { echo "make_token_golden: missing $f" >&2; exit 1; }
done
export LD_LIBRARY_PATH=$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
commit=$(git -C "$LLAMA_SRC" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One file per string, raw bytes.
python3 - "$strings" "$tmp" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
n = 0
for line in open(src, 'rb').read().split(b'\n'):
    if not line.startswith(b'"'):
        continue
    assert line.endswith(b'"') and len(line) >= 2, line
    body, res, i = line[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c == 0x5C:  # backslash
            e = body[i + 1]
            if e == ord('x'):
                res.append(int(body[i + 2:i + 4], 16)); i += 4; continue
            res.append({ord('n'): 10, ord('t'): 9, ord('r'): 13, 0x5C: 0x5C, ord('"'): 0x22}[e])
            i += 2
            continue
        res.append(c); i += 1
    open(f'{out}/s{n}.bin', 'wb').write(bytes(res))
    n += 1
open(f'{out}/count', 'w').write(str(n))
PY
count=$(cat "$tmp/count")

# The helper: vocab facts, piece hashes and round trips through libllama's C API.
cat > "$tmp/facts.c" <<'C'
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level l, const char *t, void *u) { (void)l; (void)t; (void)u; }

/* FNV-1a 64; tests/test_tokenizer.c hashes tok_piece the same way. */
static unsigned long long fnv(unsigned long long h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int main(int argc, char **argv) {
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) return 1;
    const struct llama_vocab *v = llama_model_get_vocab(m);
    int n = llama_vocab_n_tokens(v);
    printf("meta n_vocab %d\nmeta bos %d\nmeta eos %d\nmeta add_bos %d\nmeta add_eos %d\n", n,
           llama_vocab_bos(v), llama_vocab_eos(v), llama_vocab_get_add_bos(v),
           llama_vocab_get_add_eos(v));
    printf("meta eog");
    for (int i = 0; i < n; i++) if (llama_vocab_is_eog(v, i)) printf(" %d", i);
    printf("\nmeta attrs");
    for (int i = 0; i < n; i++) {
        int a = llama_vocab_get_attr(v, i);
        if (a != LLAMA_TOKEN_ATTR_NORMAL) printf(" %d:%d", i, a);
    }
    printf("\n");
    static char buf[1 << 16];
    for (int special = 1; special >= 0; special--) {
        unsigned long long h = 0xcbf29ce484222325ull;
        for (int i = 0; i < n; i++) {
            int k = llama_token_to_piece(v, i, buf, sizeof buf, 0, special);
            unsigned int len = k < 0 ? 0 : (unsigned int)k;
            h = fnv(h, &i, 4);
            h = fnv(h, &len, 4);
            h = fnv(h, buf, len);
        }
        printf("meta pieces_%s %016llx\n", special ? "special" : "plain", h);
    }
    for (int s = 2; s < argc; s++) {
        FILE *f = fopen(argv[s], "rb");
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        static llama_token ids[1 << 16];
        static char back[1 << 17];
        int nt = llama_tokenize(v, buf, (int)len, ids, 1 << 16, false, false);
        int nb = llama_detokenize(v, ids, nt, back, sizeof back, false, false);
        printf("%d rt %d\n", s - 2, nb == (int)len && memcmp(back, buf, len) == 0);
    }
    llama_model_free(m);
    return 0;
}
C
cc -O1 -o "$tmp/facts" "$tmp/facts.c" -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" \
    -L"$LLAMA_BIN" -lllama -lggml -lggml-base

files=()
for ((i = 0; i < count; i++)); do files+=("$tmp/s$i.bin"); done

ids() { # llama-tokenize prints "[1, 2, 3]"
    "$LLAMA_BIN/llama-tokenize" -m "$1" -f "$2" --no-escape --ids --log-disable "${@:3}" |
        tr -d '[],\n'
}

gen() { # name gguf
    local name=$1 gguf=$2 out=$outdir/tokens_$1.txt
    [ -e "$gguf" ] || { echo "make_token_golden: missing $gguf" >&2; exit 1; }
    {
        echo "# llama.cpp's ids for tests/data/golden/token_strings.txt with $(basename "$gguf")"
        echo "# made by tools/golden/make_token_golden.sh from llama.cpp $commit"
        echo "# special: llama-tokenize -f FILE --no-escape --ids (special tokens parsed; BOS, and"
        echo "#          EOS, added when the vocab's add_bos says so: add_special = add_bos)"
        echo "# plain:   llama-tokenize -f FILE --no-escape --ids --no-parse-special --no-bos"
        echo "# rt:      1 if llama_detokenize(plain ids) gives the string back"
        echo "# meta attrs: id:llama_token_attr for every token that is not plain NORMAL (4)"
        echo "# meta pieces_*: FNV-1a 64 over (id, length, llama_token_to_piece bytes) of all ids"
        "$tmp/facts" "$gguf" "${files[@]}" | grep '^meta'
        for ((i = 0; i < count; i++)); do
            echo "$i special $(ids "$gguf" "$tmp/s$i.bin")"
            echo "$i plain $(ids "$gguf" "$tmp/s$i.bin" --no-parse-special --no-bos)"
        done
        "$tmp/facts" "$gguf" "${files[@]}" | grep -v '^meta'
    } > "$out"
    echo "wrote $out"
}

gen smollm2 "$MODEL"
gen llama-spm "$VOCAB_DIR/ggml-vocab-llama-spm.gguf"
gen llama-bpe "$VOCAB_DIR/ggml-vocab-llama-bpe.gguf"
gen gpt-2 "$VOCAB_DIR/ggml-vocab-gpt-2.gguf"

# Pre-tokenizers no shipped file uses: the GPT-2 vocab with tokenizer.ggml.pre changed (the
# test makes the same files with vkllm's GGUF writer).
for pre in default qwen2; do
    PYTHONPATH=$LLAMA_SRC/gguf-py python3 "$LLAMA_SRC/gguf-py/gguf/scripts/gguf_new_metadata.py" \
        "$VOCAB_DIR/ggml-vocab-gpt-2.gguf" "$tmp/gpt-2-$pre.gguf" --pre-tokenizer "$pre" \
        --force >/dev/null 2>&1
    gen "gpt-2-$pre" "$tmp/gpt-2-$pre.gguf"
done
