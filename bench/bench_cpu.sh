#!/usr/bin/env bash
# CPU throughput, vkllm against llama.cpp, on the same model file and thread count: prefill
# (one batch of P prompt tokens) and decode (N single-token steps) in tokens per second, and
# the ratio vkllm / llama.cpp (above 1: vkllm is faster). See bench/README.md for what each
# figure measures. Builds what is missing: llama.cpp via scripts/build_llama_cpp.sh, vkllm via
# CMake into build/.
# Usage: bench/bench_cpu.sh [-m MODEL] [-t THREADS] [-p 512] [-n 128] [-r 3]
#                           [--llama-only | --vkllm-only]
# Env:   VKLLM_CACHE (default ~/.cache/vkllm); VKLLM_BIN (default build/vkllm)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
vkllm="${VKLLM_BIN:-$root/build/vkllm}"
llama_bench="$cache/build-cpu/bin/llama-bench"

die() { echo "bench_cpu: error: $*" >&2; exit 1; }

model="" threads=$(nproc) n_prompt=512 n_gen=128 reps=3 run_vk=1 run_ll=1
while [ $# -gt 0 ]; do
    case "$1" in
        -m) model="$2"; shift ;;
        -t) threads="$2"; shift ;;
        -p) n_prompt="$2"; shift ;;
        -n) n_gen="$2"; shift ;;
        -r) reps="$2"; shift ;;
        --llama-only) run_vk=0 ;;
        --vkllm-only) run_ll=0 ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
for v in "$threads" "$n_prompt" "$n_gen" "$reps"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "'$v' is not a positive integer"
done
[ -n "$model" ] || model=$("$root/scripts/fetch_model.sh")
[ -f "$model" ] || die "model $model not found"

# ---- llama.cpp: llama-bench, its defaults otherwise (flash attention auto, K/V f16,
# batch 2048, ubatch 512, repack on, one warmup run) ----
ll_pp="" ll_pp_sd="" ll_tg="" ll_tg_sd=""
if [ "$run_ll" -eq 1 ]; then
    [ -x "$llama_bench" ] || "$root/scripts/build_llama_cpp.sh" >/dev/null
    [ -x "$llama_bench" ] || die "$llama_bench missing after scripts/build_llama_cpp.sh"
    echo "bench_cpu: llama.cpp: llama-bench -p $n_prompt -n $n_gen -t $threads -r $reps" >&2
    json=$("$llama_bench" -m "$model" -p "$n_prompt" -n "$n_gen" -t "$threads" -r "$reps" \
        -o json 2>/dev/null) || die "llama-bench failed (run it by hand to see why)"
    read -r ll_pp ll_pp_sd ll_tg ll_tg_sd < <(python3 -c '
import json, sys
pp = tg = (0.0, 0.0)
for r in json.loads(sys.stdin.read()):
    if r["n_prompt"] > 0 and r["n_gen"] == 0: pp = (r["avg_ts"], r["stddev_ts"])
    if r["n_gen"] > 0 and r["n_prompt"] == 0: tg = (r["avg_ts"], r["stddev_ts"])
print("%.2f %.2f %.2f %.2f" % (pp + tg))' <<<"$json") || die "cannot parse llama-bench's JSON"
fi

# ---- vkllm: `vkllm bench`, whose last line reads
# "bench: prefill 512 tok: 1234.5 tok/s, decode 128 tok: 123.4 tok/s" ----
vk_pp="" vk_tg=""
if [ "$run_vk" -eq 1 ]; then
    if [ ! -x "$vkllm" ] && [ -z "${VKLLM_BIN:-}" ]; then
        echo "bench_cpu: building vkllm (Release) into $root/build" >&2
        [ -f "$root/build/CMakeCache.txt" ] ||
            cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$root/build" --target vkllm >&2 || die "building vkllm failed"
    fi
    [ -x "$vkllm" ] || die "$vkllm not found"
    echo "bench_cpu: vkllm: vkllm bench -p $n_prompt -n $n_gen -t $threads -r $reps" >&2
    if out=$("$vkllm" bench -m "$model" -p "$n_prompt" -n "$n_gen" -t "$threads" -r "$reps" \
        --device cpu 2>&1); then
        line=$(grep -E '^bench: prefill [0-9]+ tok: [0-9.]+ tok/s, decode [0-9]+ tok: [0-9.]+ tok/s' \
            <<<"$out" | tail -n 1) || true
        if [ -n "$line" ]; then
            vk_pp=$(sed -E 's/.*prefill [0-9]+ tok: ([0-9.]+) tok\/s.*/\1/' <<<"$line")
            vk_tg=$(sed -E 's/.*decode [0-9]+ tok: ([0-9.]+) tok\/s.*/\1/' <<<"$line")
        else
            echo "bench_cpu: vkllm bench printed no result line; its output:" >&2
            tail -n 5 <<<"$out" >&2
        fi
    else
        echo "bench_cpu: vkllm bench failed; its output:" >&2
        tail -n 5 <<<"$out" >&2
    fi
fi

# ---- table ----
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi; }
cell() { if [ -n "$1" ]; then echo "$1${2:+ +- $2}"; else echo "-"; fi; }
echo
echo "model $(basename "$model"), $threads threads, $reps runs, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-14s | %14s | %18s | %15s |\n' test "vkllm tok/s" "llama.cpp tok/s" "vkllm/llama.cpp"
printf '|%s|%s|%s|%s|\n' "----------------" "---------------:" "-------------------:" "----------------:"
printf '| %-14s | %14s | %18s | %15s |\n' "prefill $n_prompt" "$(cell "$vk_pp")" \
    "$(cell "$ll_pp" "$ll_pp_sd")" "$(ratio "$vk_pp" "$ll_pp")"
printf '| %-14s | %14s | %18s | %15s |\n' "decode $n_gen" "$(cell "$vk_tg")" \
    "$(cell "$ll_tg" "$ll_tg_sd")" "$(ratio "$vk_tg" "$ll_tg")"
if [ "$run_vk" -eq 1 ] && [ -z "$vk_pp" ]; then
    exit 1
fi
