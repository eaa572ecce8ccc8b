#!/usr/bin/env bash
# vkllm serve end to end (tests/serve_e2e.py): live servers on loopback driven by the official
# openai client from the virtual environment scripts/deps.sh makes. Without that client the
# test fails (it never passes by skipping). Env: VKLLM_BIN, VKLLM_MODEL, VKLLM_PYENV.
set -euo pipefail
pyenv="${VKLLM_PYENV:-${VKLLM_CACHE:-$HOME/.cache/vkllm}/pyenv}"
py="$pyenv/bin/python"
if ! "$py" -c 'import openai' 2>/dev/null; then
    echo "FAIL: no openai client in $pyenv: run scripts/deps.sh (it makes that virtual" \
         "environment from tests/requirements-serve.txt; needs PyPI)"
    exit 1
fi
exec "$py" "$(dirname "$0")/serve_e2e.py"
