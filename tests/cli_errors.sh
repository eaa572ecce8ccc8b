#!/usr/bin/env bash
# The CLI's answers to bad input: each case must exit with status 1 (not a signal, not 0)
# and print one "error: ..." line that says what is wrong. Also: --help exits 0.
# Needs VKLLM_BIN and VKLLM_MODEL (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
if [ ! -f "$model" ]; then
    echo "FAIL: default model missing at $model (run scripts/fetch_model.sh)"
    echo "0 passed, 1 failed"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# expect_error NAME PATTERN -- ARGS...: exit status 1 and stderr matching PATTERN
expect_error() {
    local name="$1" pattern="$2"
    shift 3
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    if [ $rc -eq 1 ] && grep -q "^error: " "$tmp/err" && grep -qiE "$pattern" "$tmp/err"; then
        pass=$((pass + 1))
        echo "ok   $name: $(grep -m1 '^error: ' "$tmp/err")"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $rc, stderr:"
        sed 's/^/     /' "$tmp/err" | head -5
    fi
}

expect_ok() {
    local name="$1"
    shift 2
    if "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; then
        pass=$((pass + 1))
        echo "ok   $name"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $?"
        sed 's/^/     /' "$tmp/err" | head -5
    fi
}

expect_error "missing model file" "model file not found.*nope\.gguf" -- run -m "$tmp/nope.gguf" -p hi
VKLLM_MODEL="" VKLLM_CACHE="$tmp/empty-cache" expect_error "default model not fetched" \
    "fetch_model" -- run -p hi
expect_error "unknown device" "unknown device 'tpu'" -- run -m "$model" -p hi --device tpu
expect_error "unknown vulkan device form" "unknown device" -- run -m "$model" -p hi --device vulkanx
expect_error "unknown CPU kernel set" "unknown CPU kernel set 'avx9'" -- run -m "$model" -p hi --cpu-isa avx9
expect_error "bench: unknown CPU kernel set" "unknown CPU kernel set 'sse9'" -- bench -m "$model" -p 8 -n 0 -r 1 --no-probe --device cpu --cpu-isa sse9
expect_error "prompt longer than context" "context" -- run -m "$model" -c 8 -n 4 \
    -p "This prompt is certainly much longer than eight tokens, so it cannot fit."
expect_error "no prompt" "no prompt" -- run -m "$model"
expect_error "prompt file missing" "cannot open prompt file" -- run -m "$model" -f "$tmp/none.txt"
expect_error "unknown command" "unknown command" -- frobnicate
expect_error "unknown option" "unknown option '--frob'" -- run --frob
expect_error "bad number" "not a token count" -- run -m "$model" -p hi -n lots
expect_error "option without value" "needs a value" -- run -m "$model" -p
expect_error "bad temperature" "temperature" -- run -m "$model" -p hi --temp -1
expect_error "penalty over 2" "not a penalty in \[-2, 2\]" -- run -m "$model" -p hi --frequency-penalty 3
expect_error "penalty under -2" "not a penalty in \[-2, 2\]" -- run -m "$model" -p hi --presence-penalty -2.5
expect_error "logprobs over 20" "not a count in \[0, 20\]" -- run -m "$model" -p hi --logprobs 21
expect_error "logprobs with --parallel" "logprobs goes without --parallel" -- run -m "$model" -f "$tmp/x" --parallel 2 --logprobs 1
head -c 1000000 "$model" >"$tmp/truncated.gguf"
expect_error "truncated model" "truncated\.gguf" -- run -m "$tmp/truncated.gguf" -p hi
printf 'not a gguf file at all' >"$tmp/garbage.gguf"
expect_error "not a gguf file" "garbage\.gguf" -- info -m "$tmp/garbage.gguf"
: >"$tmp/empty.gguf"
expect_error "empty file" "empty\.gguf" -- info -m "$tmp/empty.gguf"
expect_error "directory as model" "error" -- info -m "$tmp"
# a file cut off inside the tensor data: its metadata reads, its tensors do not
head -c 50000000 "$model" >"$tmp/cut.gguf"
expect_error "info: tensor data cut off" "cut off" -- info "$tmp/cut.gguf"
expect_error "info: two models" "unexpected argument" -- info -m "$model" "$model"
expect_error "run: plain argument" "unexpected argument" -- run -m "$model" hello
expect_error "short option without value" "needs a value" -- run -m "$model" -n
expect_error "unknown short option" "unknown option '-Z'" -- run -Z

# structured output: bad schemas are named, and an answer under a schema is that JSON
printf '{"type":"object","properties":{"n":{"type":"integer","minimum":1}}}' >"$tmp/min.json"
expect_error "run: unsupported schema keyword" "unsupported keyword 'minimum' at /properties/n" \
    -- run -m "$model" -p hi -n 4 --device cpu --json-schema "$tmp/min.json"
expect_error "run: schema file missing" "cannot open schema file" -- run -m "$model" -p hi --json-schema "$tmp/none.json"
expect_error "run: --json and --json-schema" "not both" -- run -m "$model" -p hi --json --json-schema "$tmp/min.json"
printf '{"type":"object","properties":{"city":{"type":"string","maxLength":20},"people":{"type":"integer"}},"required":["city","people"]}' >"$tmp/city.json"
expect_ok "run --json-schema" -- run -m "$model" --device cpu --temp 0 -n 64 --no-echo \
    -p "A JSON object about Paris:" --json-schema "$tmp/city.json"
if python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert set(d)=={"city","people"} and isinstance(d["people"], int) and len(d["city"]) <= 20' <"$tmp/out"; then
    pass=$((pass + 1))
    echo "ok   run --json-schema: $(cat "$tmp/out")"
else
    fail=$((fail + 1))
    echo "FAIL run --json-schema: not the schema's JSON: $(cat "$tmp/out")"
fi

# perplexity
printf 'In the beginning God created the heaven and the earth.\n' >"$tmp/short.txt"
expect_error "perplexity: text too short" "at least 1024" -- perplexity -m "$model" -f "$tmp/short.txt" --device cpu
expect_error "perplexity: no text" "no text" -- perplexity -m "$model"
expect_error "perplexity: text missing" "cannot open" -- perplexity -m "$model" -f "$tmp/none.txt"
expect_error "perplexity: bad context" "not a context" -- perplexity -m "$model" -f "$tmp/short.txt" -c 2
expect_error "perplexity: both KL modes" "not both" -- perplexity -m "$model" -f "$tmp/short.txt" --kl-base a --kl b
expect_error "perplexity: KL base garbage" "not a KL base" -- perplexity -m "$model" --kl "$tmp/garbage.gguf" --device cpu
for i in $(seq 1 60); do cat "$tmp/short.txt"; done >"$tmp/text.txt"
expect_error "perplexity: KL base unwritable" "cannot create" -- perplexity -m "$model" -f "$tmp/text.txt" -c 64 --chunks 1 --device cpu --kl-base "$tmp/no/such/dir/base.kl"
if ls "$tmp/no" >/dev/null 2>&1; then
    fail=$((fail + 1))
    echo "FAIL perplexity: KL base unwritable left something behind"
fi
expect_ok "info: model as a plain argument" -- info --no-tensors "$model"
# run --logprobs N: one JSON line per generated token on stderr, N alternatives each, the
# greedy token first among them
expect_ok "run --logprobs 3" -- run -m "$model" --device cpu --temp 0 -n 4 --ignore-eos \
    --logprobs 3 -p "The capital of France is"
lines=$(grep -c '^{"token":' "$tmp/err")
tops=$(grep -cE '"top_logprobs":\[(\{"token":[0-9]+,"piece":"[^"]*","logprob":-?[0-9.e-]+\},?){3}\]\}$' "$tmp/err")
greedy=$(sed -nE 's/^\{"token":([0-9]+),.*"top_logprobs":\[\{"token":([0-9]+),.*/\1 \2/p' "$tmp/err" |
    awk '$1 == $2' | wc -l)
if [ "$lines" = 4 ] && [ "$tops" = 4 ] && [ "$greedy" = 4 ]; then
    pass=$((pass + 1))
    echo "ok   run --logprobs 3: 4 lines of 3 alternatives"
else
    fail=$((fail + 1))
    echo "FAIL run --logprobs 3: $lines lines, $tops with 3 alternatives, $greedy greedy first:"
    sed 's/^/     /' "$tmp/err" | head -6
fi

expect_ok "top-level help" -- --help
for c in run chat tokenize info devices bench synth perplexity quantize imatrix prune; do
    expect_ok "$c --help" -- "$c" --help
done
expect_ok "devices" -- devices

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
