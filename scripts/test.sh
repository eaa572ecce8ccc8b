#!/usr/bin/env bash
# Builds vkllm and runs every test, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the tests again. Installs what it needs first
# (Debian packages, the default model, llama.cpp's vocab-only test files).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/deps.sh
scripts/fetch_model.sh
scripts/fetch_vocabs.sh

echo "== release build (gcc, -Werror) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== ASan + UBSan build =="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKLLM_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
# test_vk_greedy (6 minutes of decoding on lavapipe) and test_sched_vulkan(_relaxed) (the
# engine over lavapipe) run in the release pass only: the host code they drive runs under the
# sanitizers in test_vk_api, test_vk_batch (multi-sequence Vulkan steps) and test_sched (the
# engine).
echo "ASan+UBSan pass: every test except test_vk_greedy and test_sched_vulkan(_relaxed) (release only)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^(test_vk_greedy|test_sched_vulkan|test_sched_vulkan_relaxed)$'
echo "all tests passed (release, and ASan+UBSan)"
