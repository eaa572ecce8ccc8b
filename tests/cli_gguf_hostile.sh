#!/usr/bin/env bash
# Runs every file of the hostile GGUF corpus (tests/data/gguf_hostile, made by
# tools/make_hostile_gguf.py; one malformed file per flaw) through `vkllm info -m FILE`.
# Each must be refused: exit status 1..125 (an error, not a crash: 126+ is "not run" or a
# signal) and a line starting with "error:" on stderr. Needs VKLLM_BIN and VKLLM_TEST_DATA
# (set by ctest). Prints one line per file and "N passed, M failed"; exits 1 on any failure.
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
dir="${VKLLM_TEST_DATA:?VKLLM_TEST_DATA not set}/gguf_hostile"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

shopt -s nullglob
files=("$dir"/*.gguf)
if [ ${#files[@]} -eq 0 ]; then
    echo "FAIL: no corpus files in $dir (run tools/make_hostile_gguf.py)"
    echo "0 passed, 1 failed"
    exit 1
fi

for f in "${files[@]}"; do
    name=$(basename "$f" .gguf)
    # a hang is a failure too: give each file 60 s
    timeout 60 "$bin" info -m "$f" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    if [ $rc -ge 1 ] && [ $rc -le 125 ] && [ $rc -ne 124 ] && grep -q '^error:' "$tmp/err"; then
        pass=$((pass + 1))
        echo "ok   $name: $(grep -m1 '^error:' "$tmp/err")"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $rc, stderr:"
        sed 's/^/     /' "$tmp/err" | head -5
    fi
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
