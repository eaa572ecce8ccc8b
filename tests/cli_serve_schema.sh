#!/usr/bin/env bash
# vkllm serve against its OpenAPI description (docs/openapi.yaml) with schemathesis (PyPI, in
# the virtual environment scripts/deps.sh makes; missing: the test fails, it never passes by
# skipping). One live server on loopback with an API key, a small context (-c 48: answers
# that run to the context stay short) and small --max-tokens / --max-n; every operation, and
# these checks on every response: no 5xx, the status and the content type documented, the
# body (each event of a stream too) and headers as the schema says, a request that breaks the
# schema refused, a request without the key refused (401), other methods refused (405).
# Not checked: that every schema-valid request is accepted (positive_data_acceptance): the
# description cannot know the server's -c, --max-tokens, --max-n, model name or vocabulary,
# so a valid-looking request may rightly get 400 or 404.
#
# The bounded run (ctest, release pass; ~20-40 s): the coverage phase's schema-breaking
# requests (all answered at once, no generation), then N generated requests per operation
# (examples, fuzzing and stateful phases; N = $VKLLM_SCHEMA_EXAMPLES, default 5) with a
# fixed seed. VKLLM_SCHEMA_FULL=1 adds the coverage phase's valid requests (each one
# generates: minutes), for the longer runs docs/testing.md reports.
# Env: VKLLM_BIN, VKLLM_MODEL, VKLLM_PYENV, VKLLM_SCHEMA_EXAMPLES, VKLLM_SCHEMA_SEED,
# VKLLM_SCHEMA_FULL.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
spec="$here/../docs/openapi.yaml"
bin="${VKLLM_BIN:-build/vkllm}"
pyenv="${VKLLM_PYENV:-${VKLLM_CACHE:-$HOME/.cache/vkllm}/pyenv}"
st="$pyenv/bin/schemathesis"
if ! "$st" --version >/dev/null 2>&1; then
    echo "FAIL: no schemathesis in $pyenv: run scripts/deps.sh (it makes that virtual" \
         "environment from tests/requirements-serve.txt; needs PyPI)"
    exit 1
fi
examples="${VKLLM_SCHEMA_EXAMPLES:-5}"
seed="${VKLLM_SCHEMA_SEED:-1}"
tmp="$(mktemp -d)"
srv_pid=""
cleanup() {
    if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then kill -KILL "$srv_pid"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

key="sk-schema-$$"
"$bin" serve ${VKLLM_MODEL:+-m "$VKLLM_MODEL"} --device cpu --port 0 -c 48 --max-tokens 16 \
    --max-n 2 --api-key "$key" 2>"$tmp/server.log" &
srv_pid=$!
port=""
for _ in $(seq 600); do # up to 60 s: the model loads
    port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/server.log")"
    if [ -n "$port" ] && grep -q "vkllm serve: ready" "$tmp/server.log"; then break; fi
    if ! kill -0 "$srv_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if ! grep -q "vkllm serve: ready" "$tmp/server.log"; then
    echo "FAIL: the server did not get ready:"
    cat "$tmp/server.log"
    exit 1
fi
echo "server ready on port $port"

checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_schema_conformance,response_headers_conformance,negative_data_rejection
checks+=,ignored_auth,unsupported_method
run() { # schemathesis in the temporary folder, so that it leaves nothing behind
    (cd "$tmp" && "$st" --config-file "$here/serve_schema.toml" run "$spec" -u "http://127.0.0.1:$port" -H "Authorization: Bearer $key" \
        -c "$checks" --seed "$seed" -w 1 --request-timeout 120 --generation-database none \
        --no-color "$@")
}
rc=0
if [ "${VKLLM_SCHEMA_FULL:-0}" = 1 ]; then
    run --phases coverage -n "$examples" || rc=1
else
    run --phases coverage -m negative -n "$examples" || rc=1
fi
run --phases examples,fuzzing,stateful -n "$examples" || rc=1

kill -TERM "$srv_pid"
if ! wait "$srv_pid"; then
    echo "FAIL: the server did not exit 0 after SIGTERM:"
    tail -20 "$tmp/server.log"
    rc=1
fi
srv_pid=""
if grep -q "ERROR: AddressSanitizer\|runtime error:" "$tmp/server.log"; then
    echo "FAIL: the server reported a sanitizer error:"
    cat "$tmp/server.log"
    rc=1
fi
[ "$rc" = 0 ] && echo "cli_serve_schema: every check passed" || echo "cli_serve_schema: FAILED"
exit "$rc"
