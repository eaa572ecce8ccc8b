#!/usr/bin/env bash
# Frame times of the window demo (apps/window) with no model and with the model at several
# vkllm_step budgets: each run draws N frames, writes its --frame-times CSV, its last frame
# (--screenshot) and its summary line into OUT; then bench/frame_times.py makes OUT/frame_times.png
# (p50/p95/p99 per run, every frame's time) and OUT/frame_times.md (the table in the README).
# Runs on $DISPLAY when there is one, else under Xvfb (xvfb-run, Debian: xvfb and xauth).
# Usage: bench/window_bench.sh [-n FRAMES] [-o OUT] [-m MODEL] [--budgets "2 4 8"]
#                              [--skip N] [--width W --height H] [--vsync]
# Env:   VKLLM_WINDOW_BIN (default build/apps/window/vkllm-window, built when missing)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${VKLLM_WINDOW_BIN:-$root/build/apps/window/vkllm-window}"
me=window_bench
say() { echo "$me: $*" >&2; }
die() { echo "$me: error: $*" >&2; exit 1; }

frames=300 out="" model="" budgets="2 4 8" skip=0 extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) frames="$2"; shift ;;
        -o) out="$2"; shift ;;
        -m) model="$2"; shift ;;
        --budgets) budgets="$2"; shift ;;
        --skip) skip="$2"; shift ;;
        --width|--height) extra+=("$1" "$2"); shift ;;
        --vsync) extra+=("$1") ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
[[ "$frames" =~ ^[1-9][0-9]*$ ]] || die "-n: '$frames' is not a positive integer"
[[ "$skip" =~ ^[0-9]+$ ]] || die "--skip: '$skip' is not a non-negative integer"
for b in $budgets; do
    [[ "$b" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--budgets: '$b' is not a number of ms"
done
[ -n "$out" ] || out="$root/bench/results/window-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
[ -n "$model" ] || model=$("$root/scripts/fetch_model.sh")
if [ ! -x "$bin" ]; then
    say "building $bin"
    cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$root/build" --target vkllm-window
fi
# frame_times.py needs matplotlib: Debian's python3-matplotlib, for /usr/bin/python3 (a python3
# earlier on PATH, a pyenv one say, may lack it)
py=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import matplotlib' 2>/dev/null; then py="$p"; break; fi
done
[ -n "$py" ] || die "no python3 with matplotlib (Debian: python3-matplotlib; scripts/deps.sh)"

launch=()
if [ -z "${DISPLAY:-}" ]; then
    command -v xvfb-run >/dev/null || die "no DISPLAY and no xvfb-run (Debian: xvfb, xauth)"
    launch=(xvfb-run -a -s "-screen 0 1920x1080x24")
fi
# validation off: it is a measurement (the tests run the demo with validation on)
export VKLLM_VK_VALIDATION=0

run() { # NAME ARGS...
    local name="$1"; shift
    say "$name: $frames frames"
    "${launch[@]}" "$bin" --frames "$frames" --frame-times "$out/$name.csv" \
        --screenshot "$out/$name.png" "${extra[@]}" "$@" >"$out/$name.log" 2>&1 ||
        { cat "$out/$name.log" >&2; die "$name failed"; }
    grep '^vkllm-window: .* frames in' "$out/$name.log" >&2 || true
}
load=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine shows in frame times
csvs=("$out/no-model.csv")
run no-model --no-model
for b in $budgets; do
    run "budget-${b}ms" -m "$model" --budget-ms "$b"
    csvs+=("$out/budget-${b}ms.csv")
done
"$py" "$root/bench/frame_times.py" "${csvs[@]}" --skip "$skip" -o "$out/frame_times.png" \
    --markdown "$out/frame_times.md"
{
    echo "window: $(grep -m1 'swapchain' "$out/no-model.log" | sed 's/^vkllm-window: //')"
    [ -z "$budgets" ] || grep -m1 ' on vulkan' "$out/budget-${budgets%% *}ms.log" | sed 's/^vkllm-window: //'
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "vkllm: $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "load average before the runs: $load"
    echo "frames per run: $frames, skipped from the statistics: $skip"
} >"$out/README.txt"
say "wrote $out (frame_times.png, frame_times.md, a CSV, PNG and log per run)"
