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
# test_vk_greedy (6 minutes of decoding on lavapipe) and test_sched_vulkan(_relaxed) (the
# engine over lavapipe) run in the release pass only: the host code they drive runs under the
# sanitizers in test_vk_api, test_vk_batch (multi-sequence Vulkan steps) and test_sched (the
# engine). cli_install (install into a temporary prefix, build programs against the installed
# library) runs in the release pass only: an instrumented libvkllm needs the sanitizer runtime
# in every program that links it. test_threads_vulkan too (release and TSan passes): the host
# code it drives runs under ASan in test_threads and the Vulkan tests. test_vk_sparse_model
# (a packed 2:4 model end to end on lavapipe) and test_vk_sparse at other subgroup sizes
# (_lp128, _lp512: the shaders, not host code) run in the release pass only too. cli_oom runs
# in both, but its ulimit -v parts only in the release pass: ASan's shadow memory needs terabytes
# of address space, so there they print "not run" (its --memory-cap parts and test_oom's
# injected allocation failures run under the sanitizers). cli_serve runs here too (~1 min,
# shorter answers): the server under ASan, and its exit code after SIGTERM includes
# LeakSanitizer's verdict. test_generate (the golden greedy runs once per SIMD kernel set, the
# longest end-to-end test under ASan) runs in the release pass only: the same forward pass runs
# under the sanitizers in test_api, test_sched, test_eval and the CLI tests. test_logprobs_vulkan
# (log-probabilities and penalties through the engine on lavapipe) too: its host code is
# test_logprobs's, which runs under the sanitizers on the CPU. And test_json_generate_vulkan
# (structured output through the engine on lavapipe): its host code (the token mask, the
# sampler) runs under the sanitizers in test_json_generate and test_json_schema. cli_serve_load
# (bench/serve_load.py scaled down), cli_serve_nginx (two servers behind nginx) and
# cli_serve_page (the chat page in headless Chromium) too: the server code they drive (streams,
# disconnects, the page's bytes) runs under the sanitizers in cli_serve. cli_serve_schema
# (schemathesis against the server, docs/openapi.yaml): its hundreds of requests under ASan
# would take minutes, and the parser they reach runs under the sanitizers in test_serve_parse,
# test_serve_parse_corpus and cli_serve.
echo "ASan+UBSan pass: every test except test_vk_greedy, test_sched_vulkan(_relaxed), test_threads_vulkan, test_vk_sparse_model, test_vk_sparse_lp128/512, test_generate, test_logprobs_vulkan, test_json_generate_vulkan, cli_install and cli_serve_load/nginx/schema/page"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^(test_vk_greedy|test_sched_vulkan|test_sched_vulkan_relaxed|cli_install|test_threads_vulkan|test_vk_sparse_model|test_vk_sparse_lp128|test_vk_sparse_lp512|test_generate|test_logprobs_vulkan|test_json_generate_vulkan|cli_serve_load|cli_serve_nginx|cli_serve_schema|cli_serve_page)$'

echo "== ThreadSanitizer build =="
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKLLM_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs" --target test_threads test_sched test_api
# test_threads: one engine used from several threads (submit, wait, cancel, free), callbacks
# that call back into their engine while another thread reads its stats, a manual engine
# stepped on one thread while others submit, two runtimes from two threads at once; on the
# CPU and on lavapipe (test_threads_vulkan: a lavapipe and a CPU runtime, two lavapipe ones).
# test_sched's tests that run an engine thread, and test_api. The first race report fails the
# test (TSAN_OPTIONS: tests/CMakeLists.txt). The only suppressions (tests/tsan.supp) are for
# the Khronos validation layer's own threads; Mesa's lavapipe and LLVM report nothing. The
# CPU's SIMD kernels are not instrumented (CMakeLists.txt: arithmetic only, ~60x slower).
echo "ThreadSanitizer pass: test_threads, test_threads_vulkan, test_api, test_sched (engine-thread tests)"
VKLLM_TEST_ONLY=test_step_budget,test_overlap,test_requests \
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
    -R '^(test_threads|test_threads_vulkan|test_api|test_sched)$'
echo "all tests passed (release, ASan+UBSan, and TSan)"
