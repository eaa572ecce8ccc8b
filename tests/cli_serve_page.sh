#!/usr/bin/env bash
# vkllm serve's chat page in a real browser (tests/serve_page_test.py): Debian's headless
# Chromium and chromedriver, driven by selenium from the virtual environment scripts/deps.sh
# makes, against a live server on loopback. Without any of them the test fails and says why
# (it never passes by skipping). Env: VKLLM_BIN, VKLLM_MODEL, VKLLM_PYENV.
set -euo pipefail
. "$(dirname "$0")/serve_pyenv.sh"
need_py_module selenium
exec "$py" "$(dirname "$0")/serve_page_test.py"
