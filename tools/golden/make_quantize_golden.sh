#!/usr/bin/env bash
# Regenerates tests/data/quantize/sha256.txt: the sha256 of llama-quantize's output for every
# preset `vkllm quantize` offers, with and without an importance matrix, on three inputs:
#   tiny-f32, tiny-f16   `vkllm synth --shape tiny-quant --vocab ggml-vocab-llama-spm.gguf`
#                        (seed 1) as f32 and f16: 8 layers, rows of 160 and 256
#   smollm2-q4_1         the default model, requantized (--allow-requantize)
# The importance matrices (tests/data/quantize/tiny.imatrix.gguf, smollm2.imatrix.gguf, and
# tiny.imatrix.dat in the legacy format, used for four presets) are committed; llama-imatrix
# made them from tests/data/quantize/imatrix.txt (--imatrix remakes them, which changes every
# imatrix line). llama-quantize records the imatrix path it was given
# in the output (quantize.imatrix.file), so both tools are run from one folder with the bare
# file name. tests/cli_quantize.sh runs vkllm quantize on the same inputs and checks the shas.
# When vkllm is built, every output is also made by `vkllm quantize` here and compared byte for
# byte with llama-quantize's.
#
# Usage: tools/golden/make_quantize_golden.sh [--check] [--imatrix] [-t THREADS]
#   --check     compare with the committed sha256.txt instead of writing it; exit 1 on a
#               difference
#   --imatrix   remake the two importance matrices with llama-imatrix first
# Env: LLAMA_BIN (llama.cpp's bin dir) [~/.cache/vkllm/build-cpu/bin]
#      VKLLM_BIN [build/vkllm]  VKLLM_VOCAB_DIR [~/.cache/vkllm/vocab]
#      VKLLM_MODEL [~/.cache/vkllm/models/SmolLM2-135M-Instruct.Q4_1.gguf]
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
data="$root/tests/data/quantize"
llbin="${LLAMA_BIN:-$HOME/.cache/vkllm/build-cpu/bin}"
vkbin="${VKLLM_BIN:-$root/build/vkllm}"
vocab="${VKLLM_VOCAB_DIR:-$HOME/.cache/vkllm/vocab}/ggml-vocab-llama-spm.gguf"
model="${VKLLM_MODEL:-$HOME/.cache/vkllm/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
types="Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K F16 BF16 F32"

die() { echo "make_quantize_golden: error: $*" >&2; exit 1; }

check=0 remake_imatrix=0 threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check=1 ;;
        --imatrix) remake_imatrix=1 ;;
        -t) threads="$2"; shift ;;
        *) die "unknown argument '$1'" ;;
    esac
    shift
done
[ -x "$llbin/llama-quantize" ] || die "no llama-quantize in $llbin (set LLAMA_BIN)"
[ -x "$vkbin" ] || die "no vkllm at $vkbin (build it, or set VKLLM_BIN): it makes the synth inputs"
[ -f "$vocab" ] || die "no $vocab (scripts/fetch_vocabs.sh)"
[ -f "$model" ] || die "no default model at $model (scripts/fetch_model.sh)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$vkbin" synth --shape tiny-quant --vocab "$vocab" --type f32 --seed 1 -o tiny-f32.gguf 2>/dev/null
"$vkbin" synth --shape tiny-quant --vocab "$vocab" --type f16 --seed 1 -o tiny-f16.gguf 2>/dev/null
ln -s "$model" smollm2-q4_1.gguf

if [ $remake_imatrix -eq 1 ]; then
    cp "$data/imatrix.txt" imatrix.txt
    for m in tiny:tiny-f32.gguf smollm2:smollm2-q4_1.gguf; do
        "$llbin/llama-imatrix" -m "${m#*:}" -f imatrix.txt -o "${m%%:*}.imatrix.gguf" -c 128 \
            --chunks 4 -t "$threads" >imatrix.log 2>&1 || { cat imatrix.log; die "llama-imatrix failed"; }
        cp "${m%%:*}.imatrix.gguf" "$data/"
        echo "made $data/${m%%:*}.imatrix.gguf"
    done
    "$llbin/llama-imatrix" -m tiny-f32.gguf -f imatrix.txt -o tiny.imatrix.dat --output-format dat \
        -c 128 --chunks 4 -t "$threads" >imatrix.log 2>&1 || { cat imatrix.log; die "llama-imatrix failed"; }
    cp tiny.imatrix.dat "$data/"
    echo "made $data/tiny.imatrix.dat"
fi
cp "$data/tiny.imatrix.gguf" "$data/smollm2.imatrix.gguf" "$data/tiny.imatrix.dat" .

out="$work/sha256.txt"
{
    echo "# sha256 of llama-quantize's output: INPUT TYPE IMATRIX (- for none)."
    echo "# Written by tools/golden/make_quantize_golden.sh; checked by tests/cli_quantize.sh."
} >"$out"
same=0 differ=0
# INPUT:TYPES:IMATRIX FILES (- for none)
cases=("tiny-f32:$types:- tiny.imatrix.gguf" "tiny-f16:$types:- tiny.imatrix.gguf"
       "smollm2-q4_1:$types:- smollm2.imatrix.gguf" "tiny-f32:Q4_0 Q5_1 Q4_K_M Q6_K:tiny.imatrix.dat")
for c in "${cases[@]}"; do
    input="${c%%:*}" rest="${c#*:}"
    case_types="${rest%%:*}" ims="${rest#*:}"
    extra=()
    [ "$input" = smollm2-q4_1 ] && extra=(--allow-requantize)
    for t in $case_types; do
        for im in $ims; do
            imopt=()
            [ "$im" != - ] && imopt=(--imatrix "$im")
            "$llbin/llama-quantize" "${extra[@]}" "${imopt[@]}" "$input.gguf" ll.gguf "$t" \
                "$threads" >ll.log 2>&1 || { tail -5 ll.log; die "llama-quantize $input $t $im failed"; }
            sha=$(sha256sum ll.gguf | cut -d' ' -f1)
            echo "$sha $input $t $im" >>"$out"
            "$vkbin" quantize "${extra[@]}" "${imopt[@]}" -t "$threads" "$input.gguf" vk.gguf "$t" \
                2>vk.log || { cat vk.log; die "vkllm quantize $input $t $im failed"; }
            if cmp -s ll.gguf vk.gguf; then
                same=$((same + 1))
            else
                differ=$((differ + 1))
                echo "DIFFERENT: $input $t imatrix $im" >&2
            fi
        done
    done
done
echo "vkllm quantize against llama-quantize: $same identical, $differ different"

if [ $check -eq 1 ]; then
    if diff "$data/sha256.txt" "$out"; then
        echo "check: llama-quantize's outputs match $data/sha256.txt"
    else
        die "llama-quantize's outputs differ from $data/sha256.txt"
    fi
else
    cp "$out" "$data/sha256.txt"
    echo "wrote $data/sha256.txt"
fi
[ $differ -eq 0 ]
