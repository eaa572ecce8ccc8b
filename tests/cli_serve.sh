#!/usr/bin/env bash
# vkllm serve end to end (tests/serve_e2e.py): live servers on loopback driven by the official
# openai client from the virtual environment scripts/deps.sh makes. Without that client the
# test fails (it never passes by skipping). Env: VKLLM_BIN, VKLLM_MODEL, VKLLM_PYENV.
set -euo pipefail
. "$(dirname "$0")/serve_pyenv.sh"
need_py_module openai
exec "$py" "$(dirname "$0")/serve_e2e.py"
