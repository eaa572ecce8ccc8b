#!/usr/bin/env bash
# vkllm serve against llama-server under load (bench/serve_load.py, which says what it
# measures): runs it with the openai client of the virtual environment scripts/deps.sh makes.
# Usage: bench/serve_load.sh [serve_load.py options: -m MODEL -t THREADS --parallel N -c CTX
#        --clients C --requests R --max-tokens N --prompts P --only vkllm|llama]
# Env:   VKLLM_BIN (default build/vkllm, built when missing), VKLLM_CACHE, VKLLM_PYENV
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pyenv="${VKLLM_PYENV:-${VKLLM_CACHE:-$HOME/.cache/vkllm}/pyenv}"
"$pyenv/bin/python" -c 'import openai' 2>/dev/null ||
    { echo "serve_load: error: no openai client in $pyenv (run scripts/deps.sh)" >&2; exit 1; }
exec "$pyenv/bin/python" "$root/bench/serve_load.py" "$@"
