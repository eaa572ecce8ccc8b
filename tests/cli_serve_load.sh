#!/usr/bin/env bash
# The load benchmark's correctness check, scaled down (bench/serve_load.py --only vkllm):
# 8 concurrent clients x 2 requests (every other one streamed) against one `vkllm serve
# --device cpu --parallel 4`: none may fail or get lost, and every greedy answer must be the
# same text as the request sent alone. The full benchmark (32 x 8, beside llama-server) is
# bench/serve_load.sh. Without the openai client (scripts/deps.sh's virtual environment) the
# test fails. Env: VKLLM_BIN, VKLLM_MODEL, VKLLM_PYENV.
set -euo pipefail
. "$(dirname "$0")/serve_pyenv.sh"
need_py_module openai
[ -n "${VKLLM_MODEL:-}" ] || { echo "FAIL: VKLLM_MODEL is not set (ctest sets it)"; exit 1; }
# bench/serve_load.py builds vkllm itself when VKLLM_BIN is unset; under ctest it is the
# binary of this build
[ -n "${VKLLM_BIN:-}" ] || { echo "FAIL: VKLLM_BIN is not set (ctest sets it)"; exit 1; }
# 2 threads: the engine's own, whatever the machine; 4 prompts, so each is asked 4 times
exec "$py" "$(dirname "$0")/../bench/serve_load.py" --only vkllm -m "$VKLLM_MODEL" -t 2 \
    --clients 8 --requests 2 --max-tokens 8 --prompts 4 -c 512
