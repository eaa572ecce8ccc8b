#!/usr/bin/env bash
# The packed 2:4 format against its dense twin, side by side in one `vkllm bench` run: for
# each model, vkllm prune writes the same 2:4 pattern (Wanda when an importance matrix is
# given, else magnitude) packed as S24_Q4 and dense as Q4_0 (the same value type: 4-bit
# codes, the zeros stored); both are benchmarked together on each device. Prints the bench
# tables, file sizes, bits per weight of the pruned matrices, the decode and prefill ratios,
# and each model's resident memory in a decode run.
# Usage: bench/sparse.sh [-m MODEL,...] [--shapes smollm2-135m,llama-3.2-1b,llama-2-7b]
#                        [--device cpu,vulkan] [-p 512] [-n 128] [-r 3] [-t THREADS]
# Synthetic shapes are made by vkllm synth (Q4_0) in a temporary folder and removed after.
# Env: VKLLM_BIN (default build/vkllm)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
vk="${VKLLM_BIN:-$root/build/vkllm}"
models="" shapes="" devices=cpu pp=512 tg=128 reps=3 threads=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
        -m) models="$2"; shift ;;
        --shapes) shapes="$2"; shift ;;
        --device) devices="$2"; shift ;;
        -p) pp="$2"; shift ;;
        -n) tg="$2"; shift ;;
        -r) reps="$2"; shift ;;
        -t) threads="$2"; shift ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "sparse: unknown argument '$1'" >&2; exit 1 ;;
    esac
    shift
done
[ -x "$vk" ] || { echo "sparse: $vk missing (build first)" >&2; exit 1; }
[ -n "$models$shapes" ] || models=$("$root/scripts/fetch_model.sh")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-sparse.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
list=()
IFS=',' read -ra ms <<<"$models"
for m in "${ms[@]}"; do [ -n "$m" ] && list+=("$m"); done
IFS=',' read -ra ss <<<"$shapes"
for s in "${ss[@]}"; do
    [ -n "$s" ] || continue
    echo "sparse: synth $s" >&2
    "$vk" synth --shape "$s" --type q4_0 -o "$tmp/$s.gguf" >&2
    list+=("$tmp/$s.gguf")
done
rss() { # MODEL DEVICE -> max resident MiB of a short decode run
    /usr/bin/time -f %M "$vk" run -m "$1" -p "Hello" -n 16 --temp 0 --device "$2" -t "$threads" \
        >/dev/null 2>"$tmp/rss" || { echo "?"; return; }
    awk 'END { printf "%.0f", $1 / 1024 }' "$tmp/rss"
}
for m in "${list[@]}"; do
    name=$(basename "$m" .gguf)
    echo "sparse: prune $name" >&2
    "$vk" prune "$m" "$tmp/$name.s24_q4.gguf" --pattern 2:4 --format packed --type s24_q4 \
        2>"$tmp/p1" >/dev/null
    "$vk" prune "$m" "$tmp/$name.twin_q4_0.gguf" --pattern 2:4 --format dense --type q4_0 \
        2>"$tmp/p2" >/dev/null
    echo "### $name"
    echo
    for f in s24_q4 twin_q4_0; do
        p="$tmp/$name.$f.gguf"
        bpw=$(grep -ho '[0-9.]* bits per weight' "$tmp/p1" "$tmp/p2" | sed -n "$([ $f = s24_q4 ] && echo 1 || echo 2)p")
        echo "- $f: $(awk -v s="$(stat -c %s "$p")" 'BEGIN { printf "%.1f MiB", s / 1048576 }'), pruned matrices at $bpw"
    done
    for dev in ${devices//,/ }; do
        echo "- resident memory ($dev, 16-token decode): S24_Q4 $(rss "$tmp/$name.s24_q4.gguf" "$dev") MiB, Q4_0 twin $(rss "$tmp/$name.twin_q4_0.gguf" "$dev") MiB"
    done
    echo
    "$vk" bench -m "$tmp/$name.s24_q4.gguf,$tmp/$name.twin_q4_0.gguf" -p "$pp" -n "$tg" -r "$reps" \
        -t "$threads" --device "$devices" --no-probe --csv "$tmp/b.csv" 2>/dev/null
    echo
    # ratios: S24_Q4 over the twin, per device and test
    python3 - "$tmp/b.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    kind = "s24" if r["model.path"].endswith(".s24_q4.gguf") else "twin"
    dev = r["device.backend"] + (" tier " + r["device.tier"] if r["device.tier"] else "")
    by.setdefault((dev, r["test.name"]), {})[kind] = float(r["tps_mean"])
for (dev, test), v in sorted(by.items()):
    if "s24" in v and "twin" in v and v["twin"] > 0:
        print(f"- {dev} {test}: S24_Q4 / Q4_0 twin = {v['s24'] / v['twin']:.2f} "
              f"({v['s24']:.2f} vs {v['twin']:.2f} tok/s)")
PY
    echo
    rm -f "$tmp/$name".*.gguf
done
