#!/usr/bin/env bash
# Regenerates tests/data/perplexity_golden.txt: llama-perplexity's figures (llama.cpp's AVX2
# reference build: scripts/build_llama_cpp.sh --reference, the arithmetic vkllm's CPU path
# reproduces) for the default model on the book of Genesis (scripts/fetch_texts.sh), for a
# few contexts, batch sizes and chunk counts. test_eval compares vkllm_perplexity with them.
# Usage: tools/golden/make_ppl_golden.sh [-t THREADS]
# Env: VKLLM_CACHE (default ~/.cache/vkllm), VKLLM_MODEL (default: the default model)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
model="${VKLLM_MODEL:-$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
bin="$cache/build-cpu-avx2/bin/llama-perplexity"
threads=2
[ "${1:-}" = "-t" ] && threads="$2"
[ -x "$bin" ] || { echo "make_ppl_golden: $bin missing (scripts/build_llama_cpp.sh --reference)" >&2; exit 1; }
text="$("$root/scripts/fetch_texts.sh")/kjv-genesis.txt"
out="$root/tests/data/perplexity_golden.txt"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
    echo "# llama-perplexity (llama.cpp's AVX2 reference build, llama-cpp-python 0.3.36 sdist,"
    echo "# commit 0c1e570; flash attention auto, f16 K/V cache, $threads threads) on the default"
    echo "# model and kjv-genesis.txt (scripts/fetch_texts.sh). tools/golden/make_ppl_golden.sh"
    echo "# columns: context, batch size (0: the context), chunks, final PPL"
} >"$tmp"
# context, batch, chunks: small enough for the sanitizer passes
for cfg in "128 0 4" "256 64 2" "512 0 1"; do
    read -r c b n <<<"$cfg"
    bb=$b
    [ "$b" -eq 0 ] && bb=$c
    # -b and -ub: one step per batch, as vkllm's steps; one sequence per step
    ppl=$("$bin" -m "$model" -f "$text" -c "$c" -b "$bb" -ub "$bb" --chunks "$n" -t "$threads" 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    [ -n "$ppl" ] || { echo "make_ppl_golden: llama-perplexity gave no figure for $cfg" >&2; exit 1; }
    echo "$c $b $n $ppl" >>"$tmp"
    echo "make_ppl_golden: c=$c b=$b chunks=$n: PPL $ppl" >&2
done
chmod 644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
