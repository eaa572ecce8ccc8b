#!/usr/bin/env bash
# Builds vkllm and runs every test, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the tests again, then with ThreadSanitizer the tests
# where threads meet. Installs what it needs first
# (Debian packages, the default model, llama.cpp's vocab-only test files, the texts).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/deps.sh
scripts/fetch_model.sh
scripts/fetch_vocabs.sh
scripts/fetch_texts.sh >/dev/null

echo "== release build (gcc, -Werror) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== ASan + UBSan build =="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKLLM_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
# The long end-to-end runs carry the ctest label release_only and run in the release pass only;
# tests/CMakeLists.txt lists them with the reason for each (the host code they drive runs under
# the sanitizers in other tests). Others run a shorter set here (VKLLM_TEST_SANITIZED).
echo "ASan+UBSan pass: every test but those labelled release_only:" \
    $(ctest --test-dir build-asan -N -L release_only | sed -n 's/^ *Test *#[0-9]*: //p')
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE release_only

echo "== ThreadSanitizer build =="
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKLLM_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs" --target test_threads test_sched test_api test_lora
# test_threads: one engine used from several threads (submit, wait, cancel, free), callbacks
# that call back into their engine while another thread reads its stats, a manual engine
# stepped on one thread while others submit, two runtimes from two threads at once; on the
# CPU and on lavapipe (test_threads_vulkan: a lavapipe and a CPU runtime, two lavapipe ones).
# test_sched's tests that run an engine thread, and test_api. The first race report fails the
# test (TSAN_OPTIONS: tests/CMakeLists.txt). The only suppressions (tests/tsan.supp) are for
# the Khronos validation layer's own threads; Mesa's lavapipe and LLVM report nothing. The
# CPU's SIMD kernels are not instrumented (CMakeLists.txt: arithmetic only, ~60x slower).
echo "ThreadSanitizer pass: test_threads, test_threads_vulkan, test_api, test_sched (engine-thread tests), test_lora (adapters freed and loaded while an engine runs)"
VKLLM_TEST_ONLY=test_step_budget,test_overlap,test_requests \
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
    -R '^(test_threads|test_threads_vulkan|test_api|test_sched)$'
VKLLM_TEST_ONLY=test_free_while_used ctest --test-dir build-tsan --output-on-failure -R '^test_lora$'
echo "all tests passed (release, ASan+UBSan, and TSan)"
