#!/usr/bin/env bash
# Regenerates tests/data/lora/ from llama.cpp: random LoRA adapters for the default model,
# written by tests/lora_make.py with llama.cpp's own gguf-py (nothing of vkllm's), and
# llama.cpp's greedy generations with them (tools/golden/golden_gen.c --lora, against the AVX2
# reference build, as tools/golden/make_golden.sh does for the base model).
#   adapters.txt           NAME<TAB>lora_make.py options<TAB>sha256 of the file it writes
#   perplexity_a32.txt     llama-perplexity's final estimate with a32 (kjv-genesis.txt, 4 chunks)
#   generate_SET.txt       golden_gen's records for every prompt of tests/data/golden/
#                          prompts.txt with the adapter set SET (NAME or NAME@SCALE joined
#                          by '+') applied
# tests/cli_lora.sh writes the same adapters again (checking their sha256) and compares
# vkllm's tokens with these.
# Usage: tools/golden/make_lora_golden.sh [-t THREADS]
# Env: VKLLM_CACHE (default ~/.cache/vkllm), VKLLM_PYENV (default $VKLLM_CACHE/pyenv)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
pyenv="${VKLLM_PYENV:-$cache/pyenv}"
llsrc="$cache/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
out_dir="$root/tests/data/lora"
prompts="$root/tests/data/golden/prompts.txt"
llama_cpp_desc="llama-cpp-python 0.3.36 sdist, llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f"
# name -> lora_make.py options: both tensor types, ranks that do and do not suit tinyBLAS's
# shapes (a multiple of 8; of 4 but not 8; neither), alpha 0 (the scale alone)
adapters=(
    "a32|--rank 8 --alpha 16 --seed 1"
    "b16|--rank 16 --alpha 8 --seed 2 --type f16 --targets q,v,down --amp 2"
    "c32r4|--rank 4 --alpha 0 --seed 3 --targets o,gate,up --amp 3"
    "d16r6|--rank 6 --alpha 12 --seed 4 --type f16 --targets k,down --amp 3"
)
sets=("a32" "b16" "c32r4" "d16r6" "a32@0.5+d16r6@2")

die() { echo "make_lora_golden: error: $*" >&2; exit 1; }
threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        -t) threads="$2"; shift ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

model=$("$root/scripts/fetch_model.sh")
bin=$("$root/scripts/build_llama_cpp.sh" --reference | tail -n 1)
gen="$cache/golden/golden_gen-$(basename "$(dirname "$bin")")"
mkdir -p "$cache/golden" "$out_dir"
if [ ! -x "$gen" ] || [ "$root/tools/golden/golden_gen.c" -nt "$gen" ]; then
    cc -std=c11 -O2 -Wall -Wextra -Werror -I"$llsrc/include" -I"$llsrc/ggml/include" \
        "$root/tools/golden/golden_gen.c" -o "$gen" \
        -L"$bin" -lllama -lggml -lggml-base -lm -Wl,-rpath,"$bin" ||
        die "compiling golden_gen failed"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
    echo "# LoRA adapters of tests/data/lora (tools/golden/make_lora_golden.sh): name, options"
    echo "# of tests/lora_make.py for the default model, sha256 of the file it writes"
} >"$tmp/adapters.txt"
for a in "${adapters[@]}"; do
    name=${a%%|*} opts=${a#*|}
    # shellcheck disable=SC2086  # the options are meant to split into words
    PYTHONPATH="$llsrc/gguf-py" "$pyenv/bin/python" "$root/tests/lora_make.py" "$model" \
        "$tmp/$name.gguf" $opts --name "$name" >&2
    printf '%s\t%s\t%s\n' "$name" "$opts" "$(sha256sum "$tmp/$name.gguf" | cut -d' ' -f1)" \
        >>"$tmp/adapters.txt"
done
model_sha256=$(sha256sum "$model" | cut -d' ' -f1)
for s in "${sets[@]}"; do
    args=()
    IFS='+' read -ra parts <<<"$s"
    for p in "${parts[@]}"; do
        f="$tmp/${p%%@*}.gguf"
        [ "$p" != "${p%%@*}" ] && f="$f:${p#*@}"
        args+=(--lora "$f")
    done
    "$gen" -m "$model" -f "$prompts" -o "$tmp/generate_$s.txt" -t "$threads" "${args[@]}" \
        --meta "llama_cpp=$llama_cpp_desc" --meta "model=$(basename "$model")" \
        --meta "model_sha256=$model_sha256" --meta "lora=$s"
    echo "make_lora_golden: set $s done" >&2
done
# llama-perplexity with an adapter: its final estimate, for `vkllm perplexity --lora`
texts="$("$root/scripts/fetch_texts.sh" | tail -n 1)"
"$bin/llama-perplexity" -m "$model" -f "$texts/kjv-genesis.txt" --chunks 4 -t "$threads" \
    --lora "$tmp/a32.gguf" 2>&1 | grep -o 'Final estimate: PPL = .*' >"$tmp/perplexity_a32.txt" ||
    die "llama-perplexity --lora failed"
cp "$tmp"/adapters.txt "$tmp"/generate_*.txt "$tmp/perplexity_a32.txt" "$out_dir/"
echo "make_lora_golden: wrote $out_dir" >&2
