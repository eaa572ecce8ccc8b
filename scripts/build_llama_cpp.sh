#!/usr/bin/env bash
# Builds llama.cpp, our comparison peer, from the pinned llama-cpp-python sdist (0.3.36, which
# vendors llama.cpp at commit 0c1e570): a CPU build into $VKLLM_CACHE/build-cpu and, with
# --vulkan, a Vulkan build into $VKLLM_CACHE/build-vulkan. Sources go to $VKLLM_CACHE/src/.
# Nothing from llama.cpp enters this repository; tools/golden/ and bench/ use these builds.
# Idempotent: a build whose binaries are all there is left alone (--force rebuilds it).
# The Vulkan build needs Vulkan headers 1.3.272 or newer (vk::LayerSettingEXT); where the
# system's are older (Debian 12 has 1.3.239) it uses those of Debian 13's libvulkan-dev,
# unpacked (not installed) into $VKLLM_CACHE/vulkan-headers/ (see vk_headers below).
# The CPU build also makes llama-server (bench/serve_load.py runs it beside `vkllm serve`); its web
# UI is left out (LLAMA_BUILD_UI and LLAMA_USE_PREBUILT_UI off): the prebuilt one would be
# downloaded at build time, and the build needs no network (LLAMA_CURL off as well).
# --reference builds (only) the reference for golden data, into $VKLLM_CACHE/build-cpu-avx2:
# llama.cpp for x86-64 with AVX2, FMA and F16C and nothing wider, whatever the processor.
# llama.cpp's floats depend on the instruction set it is compiled for (its AVX-512 build sums
# attention's dot products 16 lanes wide, and on this project's dev VM gives other greedy
# tokens than its AVX2 build on 9 of the 15 golden prompts); vkllm's CPU path does the AVX2
# build's arithmetic on every x86 processor, so that build is the one golden data comes from.
# Usage: scripts/build_llama_cpp.sh [--vulkan | --vulkan-only | --reference] [--force] [-j N]
#        prints each build's bin/ folder on stdout
# Env:   VKLLM_CACHE (default ~/.cache/vkllm)
# The build runs under `nice`: it shares the machine with whatever else is running.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
src="$cache/src/llama_cpp_python-0.3.36"
llsrc="$src/vendor/llama.cpp"
# llama-cli is not among them: in this llama.cpp it is only built with LLAMA_BUILD_SERVER=ON;
# llama-completion is the classic prompt-in, text-out tool.
targets=(llama llama-completion llama-bench llama-batched-bench llama-tokenize llama-simple test-backend-ops
         llama-quantize llama-perplexity llama-imatrix)
binaries=(libllama.so libggml.so libggml-base.so libggml-cpu.so
          llama-completion llama-bench llama-tokenize llama-simple test-backend-ops
          llama-quantize llama-perplexity llama-imatrix)
common_flags=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON
              -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON)
# Only the CPU build has the server; the others leave it (and its UI target) out.
no_server=(-DLLAMA_BUILD_SERVER=OFF)
server_flags=(-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF)

me=build_llama_cpp
. "$(dirname "$0")/lib.sh"

want_cpu=1 want_vk=0 want_ref=0 force=0 jobs=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
        --vulkan) want_vk=1 ;;
        --vulkan-only) want_vk=1 want_cpu=0 ;;
        --reference) want_ref=1 want_cpu=0 ;;
        --force) force=1 ;;
        -j) [ $# -ge 2 ] || die "-j needs a number"; jobs="$2"; shift ;;
        -j*) jobs="${1#-j}" ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

command -v cmake >/dev/null || die "cmake not found (scripts/deps.sh installs it)"
command -v c++ >/dev/null || die "a C++ compiler is needed for llama.cpp (build-essential)"

# ---- sources ----
if [ ! -f "$llsrc/CMakeLists.txt" ] || [ ! -f "$llsrc/include/llama.h" ]; then
    sdist=$("$here/fetch_vocabs.sh" --sdist)
    mkdir -p "$cache/src"
    tmp=$(mktemp -d "$cache/src/.extract.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    say "extracting $sdist into $cache/src"
    tar -xzf "$sdist" -C "$tmp"
    rm -rf "$src"
    mv "$tmp/llama_cpp_python-0.3.36" "$src"
    rm -rf "$tmp"
    trap - EXIT
fi
# The sdist carries llama.cpp's git metadata, so the build records the real commit; but its
# index holds another machine's file stat data, and git then calls every file modified
# (ggml reports "0c1e570-dirty"). Refreshing the index fixes that once, before CMake reads it.
if command -v git >/dev/null && [ -e "$llsrc/.git" ]; then
    git -C "$llsrc" update-index -q --refresh >/dev/null 2>&1 || true
fi

# ---- Vulkan headers ----
# ggml-vulkan creates its instance with VK_EXT_layer_settings through vulkan.hpp, which the
# headers have from 1.3.272 on. Older system headers are replaced for this build only by those
# of $vk_headers_suite's libvulkan-dev: apt fetches the .deb from the Debian mirror this
# machine's apt already uses (its own lists in $cache/apt-$vk_headers_suite, nothing added to
# the system's sources), checks it against the signed index, and dpkg-deb unpacks it into
# $cache/vulkan-headers. Only headers are taken: llama.cpp still links the system's loader, and
# vulkan.hpp's dynamic dispatcher (which ggml uses) finds newer entry points at run time.
vk_headers_suite=trixie
vk_headers_ok() { grep -qs "struct LayerSettingEXT" "$1"/vulkan/vulkan*.hpp; }
vk_headers() {
    local dir="$cache/vulkan-headers" inc="$cache/vulkan-headers/usr/include"
    if vk_headers_ok "$inc"; then
        echo "$inc"
        return 0
    fi
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
        die "--vulkan needs Vulkan headers 1.3.272 or newer: no apt here to fetch them; set" \
            "VULKAN_SDK (LunarG SDK) or install a newer libvulkan-dev"
    # The Debian archive behind the system's own sources (not the security one).
    local site
    site=$(apt-get indextargets --format '$(SITE) $(RELEASE)' 'Identifier: Packages' \
               'Origin: Debian' 2>/dev/null | awk '$2 !~ /-/ { print $1; exit }')
    [ -n "$site" ] ||
        die "no Debian archive in apt's sources to fetch $vk_headers_suite's libvulkan-dev from"
    local apt="$cache/apt-$vk_headers_suite"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/deb"
    echo "deb $site $vk_headers_suite main" >"$apt/sources.list"
    local opts=(-q -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
                -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache"
                -o Dir::State::status=/dev/null -o APT::Sandbox::User="$(id -un)")
    say "fetching the Vulkan headers of $vk_headers_suite's libvulkan-dev from $site"
    apt-get "${opts[@]}" update >&2 || die "apt-get update of $vk_headers_suite's index failed"
    rm -f "$apt/deb"/*.deb
    (cd "$apt/deb" && apt-get "${opts[@]}" download libvulkan-dev >&2) ||
        die "apt-get download libvulkan-dev ($vk_headers_suite) failed"
    local deb tmp
    deb=$(ls "$apt/deb"/libvulkan-dev_*.deb) || die "apt-get download left no .deb in $apt/deb"
    tmp=$(mktemp -d "$cache/.vulkan-headers.XXXXXX")
    if ! dpkg-deb -x "$deb" "$tmp" || ! vk_headers_ok "$tmp/usr/include"; then
        rm -rf "$tmp"
        die "$deb: could not unpack it, or its headers lack vk::LayerSettingEXT too"
    fi
    rm -rf "$dir"
    mv "$tmp" "$dir"
    say "Vulkan headers $(basename "$deb" .deb) in $dir"
    echo "$inc"
}

# ---- the CPU build's instruction sets ----
# GGML_NATIVE builds for this processor (-march=native). Where the processor has AMX, that
# turns on ggml's AMX matmul, which crashes here (SIGSEGV in ggml_backend_amx_mul_mat on a
# KVM guest with amx_int8 in /proc/cpuinfo, this llama.cpp). There the build names every
# instruction set ggml has an option for that the processor has, AMX left out (and AVX512-FP16,
# which has no option: ggml's F16 vectors then use F32 arithmetic, as on every other x86).
x86_flags=()
if [ "$(uname -m)" = x86_64 ] && grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
    has() { grep -qw "$1" /proc/cpuinfo; }
    onoff() { if has "$1"; then echo ON; else echo OFF; fi; }
    x86_flags=(-DGGML_NATIVE=OFF -DGGML_SSE42="$(onoff sse4_2)" -DGGML_AVX="$(onoff avx)"
               -DGGML_AVX2="$(onoff avx2)" -DGGML_FMA="$(onoff fma)" -DGGML_F16C="$(onoff f16c)"
               -DGGML_BMI2="$(onoff bmi2)" -DGGML_AVX_VNNI="$(onoff avx_vnni)"
               -DGGML_AVX512="$(onoff avx512bw)" -DGGML_AVX512_VBMI="$(onoff avx512vbmi)"
               -DGGML_AVX512_VNNI="$(onoff avx512_vnni)" -DGGML_AVX512_BF16="$(onoff avx512_bf16)"
               -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
    say "this processor has AMX: building for its ISA without AMX (ggml's AMX path crashes here)"
fi

# ---- one build ----
# build DIR EXTRA_CMAKE_FLAGS...   (checks for "${binaries[@]}" and "${extra_bins[@]}")
extra_bins=()
build() {
    local dir="$1"
    shift
    local need=("${binaries[@]}" "${extra_bins[@]}") missing=0 b
    for b in "${need[@]}"; do
        [ -e "$dir/bin/$b" ] || missing=1
    done
    # a build made with other flags (an older version of this script) is made again
    local stamp="$dir/vkllm-build-flags" flags="${common_flags[*]} $*"
    [ "$(cat "$stamp" 2>/dev/null)" = "$flags" ] || missing=1
    if [ "$missing" -eq 0 ] && [ "$force" -eq 0 ]; then
        say "$dir is built (use --force to rebuild)"
        echo "$dir/bin"
        return 0
    fi
    # A folder configured before keeps its generator (CMake refuses to switch it), and gets
    # this run's flags again (the Vulkan headers' folder may have changed since).
    local gen=()
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        command -v ninja >/dev/null && gen=(-G Ninja)
    fi
    say "configuring $dir"
    nice -n 10 cmake -S "$llsrc" -B "$dir" "${gen[@]}" "${common_flags[@]}" "$@" >&2 ||
        die "CMake configure of $dir failed"
    say "building ${targets[*]} in $dir with $jobs jobs (this takes a while)"
    nice -n 10 cmake --build "$dir" -j "$jobs" --target "${targets[@]}" >&2 ||
        die "build in $dir failed"
    for b in "${need[@]}"; do
        [ -e "$dir/bin/$b" ] || die "build in $dir finished but $dir/bin/$b is missing"
    done
    echo "$flags" >"$stamp"
    echo "$dir/bin"
}

if [ "$want_cpu" -eq 1 ]; then
    base_targets=("${targets[@]}")
    targets+=(llama-server)
    extra_bins=(llama-server)
    build "$cache/build-cpu" "${server_flags[@]}" "${x86_flags[@]}"
    targets=("${base_targets[@]}")
    extra_bins=()
fi
if [ "$want_ref" -eq 1 ]; then
    [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo ||
        die "--reference needs an x86-64 processor with AVX2 and FMA"
    targets=(llama llama-completion llama-tokenize llama-simple llama-perplexity llama-imatrix)
    binaries=(libllama.so libggml.so libggml-base.so libggml-cpu.so llama-completion
              llama-tokenize llama-simple llama-perplexity llama-imatrix)
    build "$cache/build-cpu-avx2" "${no_server[@]}" -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON \
        -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF \
        -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
        -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
fi
if [ "$want_vk" -eq 1 ]; then
    # ggml-vulkan needs the shader compiler, the loader and headers, and SPIRV-Headers' CMake
    # package (Debian ships it in spirv-headers; the LunarG SDK has all of them).
    vk_pkgs="Debian: apt-get install glslc libvulkan-dev spirv-headers"
    command -v glslc >/dev/null || [ -n "${VULKAN_SDK:-}" ] ||
        die "--vulkan needs glslc ($vk_pkgs)"
    [ -f /usr/include/vulkan/vulkan.h ] || [ -n "${VULKAN_SDK:-}" ] ||
        die "--vulkan needs the Vulkan headers and loader ($vk_pkgs)"
    compgen -G "/usr/share/cmake/SPIRV-Headers/*onfig.cmake" >/dev/null ||
        compgen -G "/usr/lib/*/cmake/SPIRV-Headers/*onfig.cmake" >/dev/null ||
        [ -n "${VULKAN_SDK:-}${CMAKE_PREFIX_PATH:-}" ] ||
        die "--vulkan needs SPIRV-Headers' CMake package ($vk_pkgs)"
    vk_flags=()
    if [ -z "${VULKAN_SDK:-}" ] && ! vk_headers_ok /usr/include; then
        vk_inc=$(vk_headers)
        vk_flags=(-DVulkan_INCLUDE_DIR="$vk_inc")
    fi
    extra_bins=(libggml-vulkan.so)
    build "$cache/build-vulkan" "${no_server[@]}" -DGGML_VULKAN=ON "${x86_flags[@]}" "${vk_flags[@]}"
fi
