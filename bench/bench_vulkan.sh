#!/usr/bin/env bash
# Vulkan throughput and start-up, vkllm against llama.cpp's Vulkan build, on the same model file
# and the same Vulkan device, in one run:
#  - prefill (one batch of P prompt tokens) and decode (N single-token steps) in tokens per
#    second, and the ratio vkllm / llama.cpp (above 1: vkllm is faster);
#  - vkllm's time from process start to the first generated token, cold (empty pipeline cache
#    and driver shader cache: every shader compiled by the driver) and warm (the caches from
#    the cold run);
#  - with --profile, where vkllm's kernels spend their time (GPU timestamps per op kind).
# Builds what is missing: llama.cpp via scripts/build_llama_cpp.sh --vulkan-only, vkllm via
# CMake into build/. On a machine without a GPU the device is lavapipe (Mesa's CPU driver).
# Usage: bench/bench_vulkan.sh [-m MODEL] [-t THREADS] [-p 512] [-n 128] [-r 3]
#                              [--device vulkan[:N]] [--profile] [--llama-only | --vkllm-only]
# Env:   VKLLM_CACHE (default ~/.cache/vkllm); VKLLM_BIN (default build/vkllm)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
vkllm="${VKLLM_BIN:-$root/build/vkllm}"
llama_bench="$cache/build-vulkan/bin/llama-bench"

die() { echo "bench_vulkan: error: $*" >&2; exit 1; }
say() { echo "bench_vulkan: $*" >&2; }

model="" threads=$(nproc) n_prompt=512 n_gen=128 reps=3 run_vk=1 run_ll=1 device=vulkan
profile=0
while [ $# -gt 0 ]; do
    case "$1" in
        -m) model="$2"; shift ;;
        -t) threads="$2"; shift ;;
        -p) n_prompt="$2"; shift ;;
        -n) n_gen="$2"; shift ;;
        -r) reps="$2"; shift ;;
        --device) device="$2"; shift ;;
        --profile) profile=1 ;;
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
[[ "$device" =~ ^vulkan(:[0-9]+)?$ ]] || die "--device must be vulkan or vulkan:N"
[ -n "$model" ] || model=$("$root/scripts/fetch_model.sh")
[ -f "$model" ] || die "model $model not found"

# ---- llama.cpp: llama-bench on its Vulkan backend, all layers offloaded; its defaults
# otherwise (flash attention auto, K/V f16, batch 2048, ubatch 512, one warmup run) ----
ll_pp="" ll_pp_sd="" ll_tg="" ll_tg_sd="" ll_dev=""
if [ "$run_ll" -eq 1 ]; then
    [ -x "$llama_bench" ] || "$root/scripts/build_llama_cpp.sh" --vulkan-only >/dev/null
    [ -x "$llama_bench" ] || die "$llama_bench missing after scripts/build_llama_cpp.sh --vulkan-only"
    idx="${device#vulkan}"; idx="${idx#:}"; idx="${idx:-0}"
    say "llama.cpp: llama-bench -ngl 99 -p $n_prompt -n $n_gen -t $threads -r $reps (Vulkan device $idx)"
    json=$(GGML_VK_VISIBLE_DEVICES="$idx" "$llama_bench" -m "$model" -ngl 99 -p "$n_prompt" \
        -n "$n_gen" -t "$threads" -r "$reps" -o json 2>/dev/null) ||
        die "llama-bench failed (run it by hand to see why)"
    read -r ll_pp ll_pp_sd ll_tg ll_tg_sd ll_dev < <(python3 -c '
import json, sys
pp = tg = (0.0, 0.0)
dev = "?"
for r in json.loads(sys.stdin.read()):
    dev = r.get("gpu_info", dev) or dev
    if r["n_prompt"] > 0 and r["n_gen"] == 0: pp = (r["avg_ts"], r["stddev_ts"])
    if r["n_gen"] > 0 and r["n_prompt"] == 0: tg = (r["avg_ts"], r["stddev_ts"])
print("%.2f %.2f %.2f %.2f %s" % (pp + tg + (dev.replace(" ", "_"),)))' <<<"$json") ||
        die "cannot parse llama-bench's JSON"
fi

# ---- vkllm ----
vk_pp="" vk_tg="" vk_dev="" cold="" warm=""
if [ "$run_vk" -eq 1 ]; then
    if [ ! -x "$vkllm" ] && [ -z "${VKLLM_BIN:-}" ]; then
        say "building vkllm (Release) into $root/build"
        [ -f "$root/build/CMakeCache.txt" ] ||
            cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$root/build" --target vkllm >&2 || die "building vkllm failed"
    fi
    [ -x "$vkllm" ] || die "$vkllm not found"
    say "vkllm: vkllm bench --device $device -p $n_prompt -n $n_gen -t $threads -r $reps"
    prof_env=()
    [ "$profile" -eq 1 ] && prof_env=(VKLLM_VK_PROFILE=1)
    if out=$(env "${prof_env[@]}" "$vkllm" bench -m "$model" -p "$n_prompt" -n "$n_gen" \
        -t "$threads" -r "$reps" --device "$device" 2>&1); then
        line=$(grep -E '^bench: prefill [0-9]+ tok: [0-9.]+ tok/s, decode [0-9]+ tok: [0-9.]+ tok/s' \
            <<<"$out" | tail -n 1) || true
        vk_dev=$(sed -nE 's/.*backend: (.*)$/\1/p' <<<"$out" | tail -n 1)
        if [ -n "$line" ]; then
            vk_pp=$(sed -E 's/.*prefill [0-9]+ tok: ([0-9.]+) tok\/s.*/\1/' <<<"$line")
            vk_tg=$(sed -E 's/.*decode [0-9]+ tok: ([0-9.]+) tok\/s.*/\1/' <<<"$line")
        else
            say "vkllm bench printed no result line; its output:"
            tail -n 5 <<<"$out" >&2
        fi
        if [ "$profile" -eq 1 ]; then
            echo
            echo "vkllm kernel time by op (GPU timestamps, all steps of the bench):"
            grep -E '^(vkllm: [a-z]+: )?profile ' <<<"$out" || echo "(no profile lines)"
        fi
    else
        say "vkllm bench failed; its output:"
        tail -n 5 <<<"$out" >&2
    fi
    # time to first token: fresh caches, then the caches that run left behind. Two caches:
    # vkllm's pipeline cache, and Mesa's own on-disk shader cache (lavapipe keeps compiled
    # shaders there rather than in the Vulkan pipeline cache), both pointed at the empty folder
    pc=$(mktemp -d)
    trap 'rm -rf "$pc"' EXIT
    ttft() {
        VKLLM_CACHE="$pc" MESA_SHADER_CACHE_DIR="$pc/mesa" \
            "$vkllm" run -m "$model" --device "$device" -t "$threads" -n 1 \
            --temp 0 -p "Hello" 2>&1 >/dev/null |
            sed -nE 's/^vkllm: first token ([0-9.]+) s after start.*/\1/p'
    }
    cold=$(ttft)
    warm=$( (for _ in 1 2 3; do ttft; done) | sort -n | sed -n 2p)
fi

# ---- tables ----
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi; }
cell() { if [ -n "$1" ]; then echo "$1${2:+ +- $2}"; else echo "-"; fi; }
echo
echo "model $(basename "$model"), $threads threads, $reps runs, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "vkllm device: ${vk_dev:--}; llama.cpp device: ${ll_dev//_/ }"
printf '| %-14s | %14s | %18s | %15s |\n' test "vkllm tok/s" "llama.cpp tok/s" "vkllm/llama.cpp"
printf '|%s|%s|%s|%s|\n' "----------------" "---------------:" "-------------------:" "----------------:"
printf '| %-14s | %14s | %18s | %15s |\n' "prefill $n_prompt" "$(cell "$vk_pp")" \
    "$(cell "$ll_pp" "$ll_pp_sd")" "$(ratio "$vk_pp" "$ll_pp")"
printf '| %-14s | %14s | %18s | %15s |\n' "decode $n_gen" "$(cell "$vk_tg")" \
    "$(cell "$ll_tg" "$ll_tg_sd")" "$(ratio "$vk_tg" "$ll_tg")"
if [ "$run_vk" -eq 1 ]; then
    echo
    echo "vkllm time to first token (process start to first token, 'Hello', 1 token):"
    echo "  cold (empty pipeline and driver caches): ${cold:--} s"
    echo "  warm (median of 3):                      ${warm:--} s"
    [ -n "$vk_pp" ] || exit 1
fi
