#!/usr/bin/env bash
# Regenerates tests/data/imatrix_golden.txt: the sha256 of llama-imatrix's files (llama.cpp's
# AVX2 reference build: scripts/build_llama_cpp.sh --reference) for the default model on the
# book of Genesis (scripts/fetch_texts.sh), run from the texts folder so the file records the
# dataset as "kjv-genesis.txt". One sequence per batch (-b = -ub = -c): llama-imatrix's default
# batch of 2048 packs four 512-token chunks into one batch, and that changes its own sums in
# the fifth or sixth digit. cli_imatrix checks that vkllm imatrix writes the same bytes.
# Usage: tools/golden/make_imatrix_golden.sh [-t THREADS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
model="${VKLLM_MODEL:-$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
bin="$cache/build-cpu-avx2/bin/llama-imatrix"
threads=2
[ "${1:-}" = "-t" ] && threads="$2"
[ -x "$bin" ] || { echo "make_imatrix_golden: $bin missing (scripts/build_llama_cpp.sh --reference)" >&2; exit 1; }
texts="$("$root/scripts/fetch_texts.sh")"
out="$root/tests/data/imatrix_golden.txt"
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
{
    echo "# sha256 of llama-imatrix's output (AVX2 reference build, llama-cpp-python 0.3.36 sdist,"
    echo "# commit 0c1e570), default model, -f kjv-genesis.txt run in the texts folder."
    echo "# tools/golden/make_imatrix_golden.sh. columns: context, chunks, --process-output, sha256"
} >"$tmpd/golden"
for cfg in "128 3 0" "512 1 1"; do
    read -r c n po <<<"$cfg"
    extra=()
    [ "$po" = 1 ] && extra=(--process-output)
    (cd "$texts" && "$bin" -m "$model" -f kjv-genesis.txt -c "$c" -b "$c" -ub "$c" --chunks "$n" \
        -t "$threads" --no-ppl "${extra[@]}" -o "$tmpd/out.gguf" >"$tmpd/log" 2>&1) ||
        { cat "$tmpd/log" >&2; exit 1; }
    echo "$c $n $po $(sha256sum "$tmpd/out.gguf" | cut -d' ' -f1)" >>"$tmpd/golden"
    echo "make_imatrix_golden: c=$c chunks=$n process-output=$po done" >&2
done
chmod 644 "$tmpd/golden"
mv "$tmpd/golden" "$out"
