#!/usr/bin/env bash
# Installs what building and testing vkllm needs, from Debian's packages (and PyPI's, for the
# tests' Python client, into a virtual environment). Idempotent: does nothing when everything
# is there. Needs root (or sudo) only when something is missing.
set -euo pipefail
# Vulkan: headers (entry points are loaded at run time), glslangValidator and spirv-val
# (shaders are compiled and checked at build time), lavapipe (Mesa's CPU Vulkan driver: the
# device the tests run on when there is no GPU) and the Khronos validation layer (on in tests).
# The window demo (apps/window): GLFW, libpng (its screenshots), a console font it embeds
# (console-setup-linux), Xvfb and xauth (xvfb-run: its test and benchmark run headless), and
# matplotlib (bench/frame_times.py plots its frame times). bible-kjv: the public-domain King
# James Bible, whose books are the texts perplexity is measured on (scripts/fetch_texts.sh).
# vkllm serve: libmicrohttpd (HTTP) and cJSON; its end-to-end test drives it with the official
# openai client (PyPI), which scripts/test.sh installs into a virtual environment (python3-venv).
# nginx: the scale-out front (scripts/serve_cluster.sh, tests/cli_serve_nginx.sh), run as the
# user with a configuration of its own (the package's system service is not used).
# glslc and spirv-headers: llama.cpp's Vulkan build (scripts/build_llama_cpp.sh --vulkan), the
# peer bench/side_by_side.py and bench/offload.py measure vkllm's Vulkan backend against.
pkgs=(build-essential cmake ninja-build clang libclang-rt-14-dev libcmocka-dev
      python3 python3-pip unzip ca-certificates
      libvulkan-dev glslang-tools spirv-tools mesa-vulkan-drivers
      vulkan-validationlayers vulkan-tools libcjson-dev pkgconf libmicrohttpd-dev python3-venv
      libglfw3-dev libpng-dev console-setup-linux xvfb xauth python3-matplotlib
      bible-kjv nginx glslc spirv-headers)
# vkllm serve's chat page is tested in a real browser: Debian's Chromium, headless, and its
# chromedriver (tests/cli_serve_page.sh; selenium comes from tests/requirements-serve.txt)
pkgs+=(chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python packages of the tests (tests/requirements-serve.txt: the openai client and
# jsonschema) in a virtual environment of their own, remade when the list changes.
pyenv="${VKLLM_PYENV:-${VKLLM_CACHE:-$HOME/.cache/vkllm}/pyenv}"
req="$(cd "$(dirname "$0")/.." && pwd)/tests/requirements-serve.txt"
if ! cmp -s "$req" "$pyenv/requirements-serve.txt" || ! "$pyenv/bin/python" -c 'import openai, jsonschema' 2>/dev/null; then
    echo "deps: Python packages into $pyenv"
    python3 -m venv "$pyenv"
    "$pyenv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$pyenv/requirements-serve.txt"
fi
