#!/usr/bin/env bash
# Builds the libFuzzer target for vkllm serve's request parsing (tests/fuzz/fuzz_serve_parse.c
# with apps/vkllm/serve_parse.c; clang -fsanitize=fuzzer,address,undefined, Debian's clang and
# libclang-rt-dev) and runs it for RUNS executions (default 1,000,000), starting from the
# committed seeds (tests/data/serve_corpus) with the JSON-key dictionary
# (tests/fuzz/serve_parse.dict). New inputs go to a scratch corpus (build-fuzz-serve/corpus),
# never into the committed seeds. A crash or a broken check stops it (non-zero exit, libFuzzer's
# 77 for a crash) and leaves the
# input in build-fuzz-serve/crash-*: add it to tests/data/serve_corpus (the CI replay,
# test_serve_parse_corpus) and its case to tests/test_serve_parse.c.
# Usage: scripts/fuzz_serve.sh [RUNS] [extra libFuzzer flags]; e.g. -max_total_time=600.
# cJSON is Debian's shared library, not instrumented: coverage counts serve_parse.c's edges.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
out=build-fuzz-serve
mkdir -p "$out/corpus"
cc="${CC_FUZZ:-clang}"
if ! command -v "$cc" >/dev/null; then
    echo "error: $cc not found (Debian: apt-get install clang libclang-rt-dev)" >&2
    exit 1
fi
"$cc" -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -I. \
    tests/fuzz/fuzz_serve_parse.c apps/vkllm/serve_parse.c -lcjson -lm -o "$out/fuzz_serve_parse"
echo "built $out/fuzz_serve_parse; $runs runs"
cd "$out"
exec ./fuzz_serve_parse -runs="$runs" -dict=../tests/fuzz/serve_parse.dict -max_len=4096 \
    -print_final_stats=1 -artifact_prefix=./ "$@" corpus ../tests/data/serve_corpus
