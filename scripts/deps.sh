#!/usr/bin/env bash
# Installs what building and testing vkllm needs, from Debian's packages. Idempotent: does
# nothing when everything is there. Needs root (or sudo) only when something is missing.
set -euo pipefail
# Vulkan: headers (entry points are loaded at run time), glslangValidator and spirv-val
# (shaders are compiled and checked at build time), lavapipe (Mesa's CPU Vulkan driver: the
# device the tests run on when there is no GPU) and the Khronos validation layer (on in tests).
# The window demo (apps/window): GLFW, libpng (its screenshots), a console font it embeds
# (console-setup-linux), Xvfb and xauth (xvfb-run: its test and benchmark run headless), and
# matplotlib (bench/frame_times.py plots its frame times). bible-kjv: the public-domain King
# James Bible, whose books are the texts perplexity is measured on (scripts/fetch_texts.sh).
pkgs=(build-essential cmake ninja-build clang libclang-rt-14-dev libcmocka-dev
      python3 python3-pip unzip ca-certificates
      libvulkan-dev glslang-tools spirv-tools mesa-vulkan-drivers
      vulkan-validationlayers vulkan-tools libcjson-dev pkgconf
      libglfw3-dev libpng-dev console-setup-linux xvfb xauth python3-matplotlib
      bible-kjv)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
