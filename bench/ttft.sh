#!/usr/bin/env bash
# vkllm's start-up on a Vulkan device: time from process start to the first generated token,
# cold (empty pipeline cache and driver shader cache: every shader compiled by the driver) and
# warm (median of 3 starts with the caches the cold run left). With --profile, also where the
# kernels spend their time in a `vkllm bench` run (GPU timestamps summed per op kind).
# Throughput against llama.cpp: bench/side_by_side.py.
# Usage: bench/ttft.sh [-m MODEL] [--device vulkan[:N]] [-t THREADS] [--profile]
# Env:   VKLLM_BIN (default build/vkllm, built when missing)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
vkllm="${VKLLM_BIN:-$root/build/vkllm}"
me=ttft
say() { echo "$me: $*" >&2; }
die() { echo "$me: error: $*" >&2; exit 1; }

model="" threads=$(nproc) device=vulkan profile=0
while [ $# -gt 0 ]; do
    case "$1" in
        -m) model="$2"; shift ;;
        -t) threads="$2"; shift ;;
        --device) device="$2"; shift ;;
        --profile) profile=1 ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "'$threads' is not a positive integer"
[ -n "$model" ] || model=$("$root/scripts/fetch_model.sh")
[ -f "$model" ] || die "model $model not found"
if [ -z "${VKLLM_BIN:-}" ]; then
    [ -f "$root/build/CMakeCache.txt" ] ||
        cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$root/build" --target vkllm >/dev/null || die "building vkllm failed"
fi
[ -x "$vkllm" ] || die "$vkllm not found"

# Two caches matter: vkllm's pipeline cache and Mesa's own on-disk shader cache (lavapipe keeps
# compiled shaders there rather than in the Vulkan pipeline cache); both point at an empty
# folder for the cold start.
pc=$(mktemp -d)
trap 'rm -rf "$pc"' EXIT
ttft() {
    VKLLM_CACHE="$pc" MESA_SHADER_CACHE_DIR="$pc/mesa" \
        "$vkllm" run -m "$model" --device "$device" -t "$threads" -n 1 --temp 0 -p "Hello" \
        2>&1 >/dev/null | sed -nE 's/^vkllm: first token ([0-9.]+) s after start.*/\1/p'
}
cold=$(ttft)
warm=$( (for _ in 1 2 3; do ttft; done) | sort -n | sed -n 2p)
echo "vkllm time to first token on $device ($(basename "$model"), 'Hello', 1 token):"
echo "  cold (empty pipeline and driver caches): ${cold:--} s"
echo "  warm (median of 3):                      ${warm:--} s"
if [ "$profile" -eq 1 ]; then
    echo
    echo "vkllm kernel time by op (GPU timestamps, all steps of vkllm bench -p 512 -n 128 -r 1):"
    VKLLM_VK_PROFILE=1 "$vkllm" bench -m "$model" --device "$device" -t "$threads" -r 1 \
        --no-probe 2>&1 >/dev/null | grep -E '^(vkllm: [a-z]+: )?profile ' || echo "(no profile lines)"
fi
[ -n "$cold" ] && [ -n "$warm" ]
