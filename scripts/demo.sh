#!/usr/bin/env bash
# The demo: installs the build dependencies, downloads the default model (SmolLM2-135M-Instruct
# Q4_1, checked against a pinned sha256), builds vkllm and generates text on the best device.
# Usage: scripts/demo.sh ["prompt"] [more vkllm run options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/fetch_model.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target vkllm
prompt="${1:-The three most useful things to know about the Moon are}"
shift || true
exec build/vkllm run -p "$prompt" -n 128 "$@"
