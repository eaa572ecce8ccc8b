#!/usr/bin/env bash
# vkllm serve scaled out behind nginx (scripts/serve_cluster.sh), tests/serve_nginx.py: two
# instances, 8 conversations x 8 turns with session keys: affinity, prefix-cache hits on both,
# failover when one instance is killed, a clean stop. Without nginx or the openai client the
# test fails with the reason (scripts/deps.sh installs both). Env: VKLLM_BIN, VKLLM_MODEL,
# VKLLM_PYENV.
set -euo pipefail
. "$(dirname "$0")/serve_pyenv.sh"
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "FAIL: nginx not found (Debian: apt-get install nginx; scripts/deps.sh installs it)"
    exit 1
fi
need_py_module openai
[ -n "${VKLLM_MODEL:-}" ] || { echo "FAIL: VKLLM_MODEL is not set (ctest sets it)"; exit 1; }
[ -n "${VKLLM_BIN:-}" ] || { echo "FAIL: VKLLM_BIN is not set (ctest sets it)"; exit 1; }
exec "$py" "$(dirname "$0")/serve_nginx.py"
