#!/usr/bin/env bash
# Partial offload and the layer split from the command line (docs/offload.md), on the default
# model with lavapipe: `run -ngl N` and a two-device split give the CPU's greedy text and print
# where the layers went; -ngl above the layer count is clamped with a notice; a GPU memory cap
# below the model's size still runs; `bench -ngl` records the layers it placed. Then bad input:
# a device that does not exist, shares that do not parse or sum to zero, too many shares, a
# cap that holds no layer, a bad -ngl: exit 1 and one clear "error:" line. Needs VKLLM_BIN and VKLLM_MODEL (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
[ -f "$model" ] || { echo "FAIL: default model missing at $model (scripts/fetch_model.sh)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
run() { "$bin" run -m "$model" -p "The capital of France is" -n 8 --temp 0 -t 2 -c 256 "$@"; }

run --device cpu >"$tmp/cpu.out" 2>"$tmp/cpu.err" || bad "cpu run: $(cat "$tmp/cpu.err")"
[ -s "$tmp/cpu.out" ] || bad "cpu run printed no text"

# same text, and a placement line a stage
same() { # name, expected placement pattern, options...
    local name="$1" pat="$2"
    shift 2
    if ! run "$@" >"$tmp/x.out" 2>"$tmp/x.err"; then
        bad "$name: exit $?: $(grep error "$tmp/x.err")"
        return
    fi
    if ! cmp -s "$tmp/cpu.out" "$tmp/x.out"; then
        bad "$name: text differs from the CPU's:"; diff "$tmp/cpu.out" "$tmp/x.out" | head -5
    elif ! grep -qE "$pat" "$tmp/x.err"; then
        bad "$name: no placement '$pat' in:"; cat "$tmp/x.err"
    else
        ok "$name: the CPU's text; $(grep -c '^placement:' "$tmp/x.err") placement lines"
    fi
}
same "-ngl 12" "^placement: vulkan:0 +layers 18-29 " --device vulkan -ngl 12
# under the sanitizers (VKLLM_TEST_SANITIZED) one placement of each kind is enough for the
# host code; the release pass runs them all
if [ "${VKLLM_TEST_SANITIZED:-0}" = 1 ]; then
    echo "not run under the sanitizers: --gpu-layers 1, vulkan,cpu, --memory-cap 60, -ngl 99, bench -ngl"
else
same "--gpu-layers 1" "^placement: cpu +layers 0-28 +\+embedding" --device vulkan --gpu-layers 1
same "vulkan,cpu" "^placement: cpu +layers 15-29 +\+head" --device vulkan,cpu
same "--memory-cap 60" "^placement: vulkan:0 " --device vulkan --memory-cap 60
fi
same "vulkan:0,vulkan:0 --split 3,1" "^placement: vulkan:0 +layers 23-29 +\+head" \
    --device vulkan:0,vulkan:0 --split 3,1

# -ngl past the layer count: everything on the GPU, with a notice
if [ "${VKLLM_TEST_SANITIZED:-0}" = 1 ]; then
    :
elif run --device vulkan -ngl 99 -v >"$tmp/x.out" 2>"$tmp/x.err" && cmp -s "$tmp/cpu.out" "$tmp/x.out" &&
    grep -q "gpu layers: 99 asked for, the model has 30" "$tmp/x.err" &&
    ! grep -q "^placement:" "$tmp/x.err"; then
    ok "-ngl 99: clamped with a notice, all on the GPU"
else
    bad "-ngl 99:"; cat "$tmp/x.err" | grep -v pipeline | head -5
fi

# bench: one record per test and -ngl value, with the layers placed
if [ "${VKLLM_TEST_SANITIZED:-0}" = 1 ]; then
    :
elif "$bin" bench -m "$model" --device vulkan -ngl 0,10,all -p 16 -n 4 -r 1 -t 2 --no-probe \
    --json "$tmp/b.json" >"$tmp/b.out" 2>"$tmp/b.err"; then
    got=$(python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))['records']
print(' '.join('%s:%d' % (x['test']['name'], x['gpu_layers']) for x in r))" "$tmp/b.json")
    [ "$got" = "pp16:0 tg4:0 pp16:10 tg4:10 pp16:30 tg4:30" ] && ok "bench -ngl 0,10,all: $got" ||
        bad "bench -ngl records: '$got'"
else
    bad "bench -ngl: $(grep error "$tmp/b.err")"
fi

expect_error() { # name, exit code, pattern, command...
    local name="$1" want="$2" pat="$3"
    shift 3
    "$@" >"$tmp/e.out" 2>"$tmp/e.err"
    local got=$?
    if [ "$got" -eq "$want" ] && grep -qE "$pat" "$tmp/e.err" && [ "$(grep -c . "$tmp/e.err")" -le 2 ]; then
        ok "$name: exit $got, '$(grep -m1 -E "$pat" "$tmp/e.err")'"
    else
        bad "$name: exit $got (want $want), stderr:"; cat "$tmp/e.err"
    fi
}
expect_error "missing device" 1 "vulkan:7" run --device vulkan:0,vulkan:7
expect_error "empty list entry" 1 "empty entry" run --device vulkan:0,,cpu
expect_error "split not a number" 1 "shares are numbers" run --device vulkan:0,vulkan:0 --split 3,x
expect_error "split sums to zero" 1 "sum to zero" run --device vulkan:0,vulkan:0 --split 0,0
expect_error "negative share" 1 "shares are numbers" run --device vulkan:0,vulkan:0 --split 1,-1
expect_error "three shares, two devices" 1 "3 shares for 2 devices" \
    run --device vulkan:0,vulkan:0 --split 1,1,1
expect_error "cap below one layer" 1 "holds no layer" run --device vulkan --memory-cap 4
expect_error "-ngl not a number" 1 "layer count >= 0 or 'all'" run --device vulkan -ngl lots
expect_error "-ngl negative" 1 "layer count >= 0 or 'all'" run --device vulkan -ngl -3
expect_error "serve: bad split" 1 "shares are numbers" "$bin" serve -m "$model" --split a
expect_error "bench: bad -ngl" 1 "'x' is not a layer count" "$bin" bench -m "$model" -ngl 1,x

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
