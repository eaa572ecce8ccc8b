#!/usr/bin/env bash
# vkllm imatrix: the file it writes has llama-imatrix's bytes (sha256s in
# tests/data/imatrix_golden.txt, from llama.cpp's AVX2 reference build), vkllm quantize takes
# it, and bad input gets a clear error, exit 1 and no file left behind.
# Needs VKLLM_BIN, VKLLM_MODEL, VKLLM_TEXTS and VKLLM_TEST_DATA (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
texts="${VKLLM_TEXTS:?VKLLM_TEXTS not set}"
golden="${VKLLM_TEST_DATA:?VKLLM_TEST_DATA not set}/imatrix_golden.txt"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
for f in "$model" "$texts/kjv-genesis.txt" "$golden"; do
    [ -f "$f" ] || { echo "FAIL: $f missing (scripts/fetch_model.sh, scripts/fetch_texts.sh)"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the sums are llama-imatrix's, byte for byte (the dataset is recorded as given: run in the
# texts folder with the bare name, as the golden script does)
first=1
while read -r c n po sum; do
    case "$c" in '#'*|'') continue ;; esac
    if [ $first = 0 ] && [ "${VKLLM_TEST_SANITIZED:-0}" = 1 ]; then
        echo "not run (sanitizer pass; the release pass runs it): c=$c chunks=$n process-output=$po"
        continue
    fi
    first=0
    extra=()
    [ "$po" = 1 ] && extra=(--process-output)
    if (cd "$texts" && "$bin" imatrix -m "$model" -f kjv-genesis.txt -c "$c" --chunks "$n" \
            "${extra[@]}" -o "$tmp/im.gguf" 2>"$tmp/err"); then
        got=$(sha256sum "$tmp/im.gguf" | cut -d' ' -f1)
        if [ "$got" = "$sum" ]; then ok "c=$c chunks=$n process-output=$po: llama-imatrix's bytes"
        else bad "c=$c chunks=$n process-output=$po: sha256 $got, llama-imatrix's $sum"; fi
    else
        bad "c=$c chunks=$n: exit status $?: $(head -3 "$tmp/err")"
    fi
done <"$golden"
[ -f "$tmp/im.gguf" ] || bad "no imatrix was written"
# vkllm quantize takes it (q8_0: the file is read and checked against every tensor, and the
# quantization itself takes seconds, not minutes under the sanitizers)
if "$bin" quantize --imatrix "$tmp/im.gguf" --allow-requantize "$model" "$tmp/q.gguf" q8_0 \
        >/dev/null 2>"$tmp/err" && [ -s "$tmp/q.gguf" ]; then ok "quantize --imatrix reads it"
else bad "quantize --imatrix: $(head -3 "$tmp/err")"; fi

# expect_error NAME PATTERN -- ARGS...: exit 1, "error: ..." matching PATTERN, no output file
expect_error() {
    local name="$1" pattern="$2"
    shift 3
    rm -f "$tmp/out.gguf"
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    if [ $rc -eq 1 ] && grep -q "^error: " "$tmp/err" && grep -qiE "$pattern" "$tmp/err" &&
        ! ls "$tmp"/out.gguf* >/dev/null 2>&1; then
        ok "$name: $(grep -m1 '^error: ' "$tmp/err")"
    else
        bad "$name: exit $rc, stderr: $(head -3 "$tmp/err")"
    fi
}
printf 'In the beginning God created the heaven and the earth.\n' >"$tmp/short.txt"
expect_error "text too short" "at least" -- imatrix -m "$model" -f "$tmp/short.txt" -o "$tmp/out.gguf"
expect_error "no text" "calibration text" -- imatrix -m "$model" -o "$tmp/out.gguf"
expect_error "bad context" "not a context" -- imatrix -m "$model" -f "$tmp/short.txt" -c 8 -o "$tmp/out.gguf"
expect_error "batch not dividing" "divide" -- imatrix -m "$model" -f "$texts/kjv-genesis.txt" -c 128 -b 48 -o "$tmp/out.gguf"
expect_error "unwritable output" "error" -- imatrix -m "$model" -f "$texts/kjv-genesis.txt" -c 64 --chunks 1 -o "$tmp/no/dir/out.gguf"
[ -e "$tmp/no" ] && bad "unwritable output left something behind"
expect_error "vocab-only model" "vocab|weights|tensor" -- imatrix -m "${VKLLM_VOCAB_DIR:-/nonexistent}/ggml-vocab-llama-bpe.gguf" -f "$texts/kjv-genesis.txt" -o "$tmp/out.gguf"
expect_error "unknown option" "unknown option" -- imatrix --frob

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
