#!/usr/bin/env bash
# vkllm serve's chat page in a real browser (tests/serve_page_test.py): Debian's headless
# Chromium and chromedriver, driven by selenium from the virtual environment scripts/deps.sh
# makes, against a live server on loopback. Without any of them the test fails and says why
# (it never passes by skipping). Env: VKLLM_BIN, VKLLM_MODEL, VKLLM_PYENV.
set -euo pipefail
pyenv="${VKLLM_PYENV:-${VKLLM_CACHE:-$HOME/.cache/vkllm}/pyenv}"
py="$pyenv/bin/python"
if ! "$py" -c 'import selenium' 2>/dev/null; then
    echo "FAIL: no selenium in $pyenv: run scripts/deps.sh (it makes that virtual" \
         "environment from tests/requirements-serve.txt; needs PyPI)"
    exit 1
fi
exec "$py" "$(dirname "$0")/serve_page_test.py"
