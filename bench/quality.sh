#!/usr/bin/env bash
# Quality tables of issue 18, side by side with llama.cpp where it has the feature:
#  quantize: the default model requantized to each type (with an importance matrix from
#    Exodus): file size, bits per weight, perplexity on Genesis, KL divergence against the
#    source, decode tok/s (vkllm bench, CPU); llama-perplexity's figure on the same file;
#  prune: method x pattern on the default model (calibrated on Exodus: Wanda's importance
#    matrix, SparseGPT's Hessians, both over the same chunks): perplexity and KL divergence
#    against the dense model, the time the prune took; llama-perplexity's figure on the
#    dense-with-zeros files (the packed ones llama.cpp refuses).
# Prints markdown tables on stdout; keeps the files in a temporary folder it removes.
# Usage: bench/quality.sh [-c CTX] [--chunks N] [-t THREADS] [--only quantize|prune]
#                         [--methods magnitude,wanda,sparsegpt]  (prune rows of these only)
# Env:   VKLLM_BIN (default build/vkllm), LLAMA_BIN (default ~/.cache/vkllm/build-cpu-avx2/bin:
#        the AVX2 reference build, whose figures vkllm's CPU path reproduces)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
vk="${VKLLM_BIN:-$root/build/vkllm}"
ll="${LLAMA_BIN:-$cache/build-cpu-avx2/bin}"
ctx=512 chunks=20 threads=$(nproc) only="" methods="magnitude,wanda,sparsegpt"
while [ $# -gt 0 ]; do
    case "$1" in
        -c) ctx="$2"; shift ;;
        --chunks) chunks="$2"; shift ;;
        -t) threads="$2"; shift ;;
        --only) only="$2"; shift ;;
        --methods) methods="$2"; shift ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "quality: unknown argument '$1'" >&2; exit 1 ;;
    esac
    shift
done
[ -x "$vk" ] || { echo "quality: $vk missing (build first)" >&2; exit 1; }
model=$("$root/scripts/fetch_model.sh")
texts=$("$root/scripts/fetch_texts.sh")
eval_text="$texts/kjv-genesis.txt" calib_text="$texts/kjv-exodus.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_ll=0
[ -x "$ll/llama-perplexity" ] && have_ll=1

ppl_kl() { # MODEL -> "ppl ± err|kl ± err|top1"
    "$vk" perplexity -m "$1" --kl "$tmp/base.kl" -c "$ctx" -t "$threads" --device cpu 2>/dev/null |
        awk '/^Final/ { p = $5 " ± " $7 } /^Mean KLD/ { k = $4 " ± " $6 } /^Same top-1/ { t = $4 }
             END { print p "|" k "|" t }'
}
ll_ppl() {
    if [ "$have_ll" = 1 ]; then
        "$ll/llama-perplexity" -m "$1" -f "$eval_text" -c "$ctx" -b "$ctx" --chunks "$chunks" \
            -t "$threads" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
    else echo "not run"; fi
}
decode() {
    "$vk" bench -m "$1" -p 0 -n 64 -r 2 -t "$threads" --device cpu --no-probe 2>/dev/null |
        awk -F'|' '/tg64/ { for (i = 1; i < NF; i++) if ($i ~ /tg64/) { sub(/^ +/, "", $(i + 1));
                                sub(/ +$/, "", $(i + 1)); print $(i + 1) } }' | head -1
}
echo "quality: base log-probabilities of the default model (Genesis, c=$ctx, $chunks chunks)" >&2
"$vk" perplexity -m "$model" -f "$eval_text" -c "$ctx" --chunks "$chunks" -t "$threads" \
    --device cpu --kl-base "$tmp/base.kl" >"$tmp/base.txt" 2>/dev/null
echo "quality: importance matrix from Exodus" >&2
"$vk" imatrix -m "$model" -f "$calib_text" -c "$ctx" --chunks "$chunks" -t "$threads" \
    -o "$tmp/im.gguf" 2>/dev/null

echo "Default model ($(basename "$model")), perplexity on Genesis (c=$ctx, $chunks chunks); importance matrix from Exodus; KL against the source."
echo "Source: $(sed -n 's/Final estimate: //p' "$tmp/base.txt"); llama.cpp: $(ll_ppl "$model")"
echo
if [ "$only" != prune ]; then
    files=()
    for t in q4_0 q4_1 q5_0 q5_1 q8_0 q4_k_m q5_k_m q6_k; do
        echo "quality: quantize $t" >&2
        "$vk" quantize --allow-requantize --imatrix "$tmp/im.gguf" -t "$threads" "$model" \
            "$tmp/$t.gguf" "$t" >/dev/null 2>"$tmp/q.txt"
        bpw=$(grep -o '[0-9.]* bits per weight' "$tmp/q.txt" | head -1 | cut -d' ' -f1)
        mib=$(awk -v s="$(stat -c %s "$tmp/$t.gguf")" 'BEGIN { printf "%.1f", s / 1048576 }')
        IFS='|' read -r p k top <<<"$(ppl_kl "$tmp/$t.gguf")"
        echo "$t|$mib|${bpw:-?}|$p|$k|$top|$(ll_ppl "$tmp/$t.gguf")" >>"$tmp/qrows"
        files+=("$tmp/$t.gguf")
    done
    # decode speed of every type in one bench run, side by side
    echo "quality: decode speed" >&2
    "$vk" bench -m "$(IFS=,; echo "${files[*]}")" -p 0 -n 64 -r 3 -t "$threads" --device cpu \
        --no-probe --csv "$tmp/dec.csv" >/dev/null 2>&1
    echo "| type | MiB | bits/weight | PPL | KL divergence | same top-1 % | llama.cpp PPL | decode tok/s |"
    echo "|---|---:|---:|---|---|---:|---:|---:|"
    while IFS='|' read -r t mib bpw p k top llp; do
        dec=$(python3 -c 'import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["model.path"].endswith("/" + sys.argv[2] + ".gguf"):
        print("%.1f ± %.1f" % (float(r["tps_mean"]), float(r["tps_stddev"])))' "$tmp/dec.csv" "$t")
        echo "| $t | $mib | $bpw | $p | $k | $top | $llp | ${dec:-?} |"
    done <"$tmp/qrows"
    rm -f "${files[@]}"
    echo
fi
if [ "$only" != quantize ]; then
    echo "| method | pattern | format | type | MiB | PPL | KL divergence | same top-1 % | llama.cpp PPL | prune s |"
    echo "|---|---|---|---|---:|---|---|---:|---:|---:|"
    row() { # LABEL METHOD PATTERN FORMAT TYPE ARGS...
        local label="$1" m="$2" p="$3" f="$4" ty="$5"
        shift 5
        case ",$methods," in *",$m,"*) ;; *) return ;; esac
        echo "quality: prune $label $p $f $ty" >&2
        local t0 t1
        t0=$(date +%s.%N)
        "$vk" prune "$model" "$tmp/p.gguf" --method "$m" --pattern "$p" --format "$f" --type "$ty" "$@" \
            >/dev/null 2>"$tmp/p.txt" || { echo "| $label | $p | $f | $ty | failed: $(tail -1 "$tmp/p.txt") |"; return; }
        t1=$(date +%s.%N)
        mib=$(awk -v s="$(stat -c %s "$tmp/p.gguf")" 'BEGIN { printf "%.1f", s / 1048576 }')
        IFS='|' read -r pp k top <<<"$(ppl_kl "$tmp/p.gguf")"
        local llp="refused (packed)"
        [ "$f" = dense ] && llp=$(ll_ppl "$tmp/p.gguf")
        echo "| $label | $p | $f | $ty | $mib | $pp | $k | $top | $llp | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') |"
        grep -h '^vkllm: sparsegpt:' "$tmp/p.txt" | sed 's/^vkllm: /    /' >&2 || true
        rm -f "$tmp/p.gguf"
    }
    im=(--imatrix "$tmp/im.gguf")
    # SparseGPT's Hessians from the same chunks of Exodus as the importance matrix
    sg=(--calib "$calib_text" -c "$ctx" --chunks "$chunks" -t "$threads")
    for p in unstructured 2:4 4:8 ffn; do
        row magnitude magnitude "$p" dense q8_0
        row wanda wanda "$p" dense q8_0 "${im[@]}"
        [ "$p" = ffn ] || row sparsegpt sparsegpt "$p" dense q8_0 "${sg[@]}"
    done
    row wanda wanda 2:4 packed s24_q4 "${im[@]}"
    row wanda wanda 2:4 packed s24_q8 "${im[@]}"
    row wanda wanda 2:4 dense q4_0 "${im[@]}"
    row sparsegpt sparsegpt 2:4 packed s24_q4 "${sg[@]}"
    # the one-pass variant: every layer's Hessians from the dense model
    row "sparsegpt, dense inputs" sparsegpt 2:4 dense q8_0 "${sg[@]}" --dense-inputs
fi
