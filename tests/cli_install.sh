#!/usr/bin/env bash
# The installed library, as a program that embeds vkllm sees it (docs/embedding.md):
#  - `cmake --install` of this build into a temporary prefix;
#  - vkllm.h compiles alone as C99 and C11 (gcc, clang) and C++11/17 (g++, clang++) with
#    -Wall -Wextra -Werror -pedantic;
#  - libvkllm.so.MAJOR: SONAME libvkllm.so.MAJOR, `nm -D --defined-only` lists vkllm_* only;
#    libvkllm.a: its global symbols are vkllm_* only (internal ones such as gguf_find_key,
#    which ggml also defines, are local);
#  - tests/install/consumer.c built with pkg-config against the shared library, and again
#    against the static one alone; tests/install/consumer.cpp built with CMake's
#    find_package(vkllm) (tests/install/CMakeLists.txt) against vkllm::vkllm and
#    vkllm::vkllm_static; all four load $VKLLM_MODEL on the CPU and print the same 16 greedy
#    tokens.
# Fails (never skips) when a tool or the model is missing. Env (tests/CMakeLists.txt):
# VKLLM_BUILD_DIR, VKLLM_SOURCE_DIR, VKLLM_MODEL.
set -euo pipefail
: "${VKLLM_BUILD_DIR:?}" "${VKLLM_SOURCE_DIR:?}" "${VKLLM_MODEL:?}"

fail() {
    echo "cli_install: FAIL: $*" >&2
    exit 1
}
for t in cmake ninja pkg-config cc gcc clang g++ clang++ nm readelf; do
    command -v "$t" >/dev/null || fail "$t not found (scripts/deps.sh installs it)"
done
[ -f "$VKLLM_MODEL" ] || fail "no model at $VKLLM_MODEL (scripts/fetch_model.sh fetches it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
src=$VKLLM_SOURCE_DIR/tests/install

# run CMD... with its output in a log shown only when it fails
quiet() {
    local log=$tmp/last.log
    "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        fail "$*"
    }
}

echo "== cmake --install $VKLLM_BUILD_DIR --prefix $prefix"
quiet cmake --install "$VKLLM_BUILD_DIR" --prefix "$prefix"
hdr=$prefix/include/vkllm.h
[ -f "$hdr" ] || fail "no include/vkllm.h in the prefix"
[ -f "$prefix/include/vkllm_tools.h" ] || fail "no include/vkllm_tools.h in the prefix"
major=$(sed -n 's/^#define VKLLM_VERSION_MAJOR \([0-9][0-9]*\).*/\1/p' "$hdr")
[ -n "$major" ] || fail "no VKLLM_VERSION_MAJOR in vkllm.h"
pc=$(find "$prefix" -name vkllm.pc)
[ -n "$pc" ] || fail "no vkllm.pc in the prefix"
[ -f "$(dirname "$pc")/../cmake/vkllm/vkllmConfig.cmake" ] || fail "no cmake/vkllm/vkllmConfig.cmake"
[ -x "$prefix/bin/vkllm" ] || fail "the vkllm CLI is not installed"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir vkllm)
[ -d "$libdir" ] || fail "vkllm.pc: libdir $libdir is not a directory"

echo "== vkllm.h as C99, C11, C++11, C++17 (-Wall -Wextra -Werror -pedantic)"
cat >"$tmp/hdr.c" <<'EOF'
#include <vkllm.h>
int main(void) {
    vkllm_runtime_desc rd = {0};
    (void)rd;
    return VKLLM_VERSION_GET_MAJOR(VKLLM_VERSION) == VKLLM_VERSION_MAJOR ? 0 : 1;
}
EOF
cat >"$tmp/hdr.cpp" <<'EOF'
#include <vkllm.h>
int main() {
    vkllm_runtime_desc rd = vkllm_runtime_desc();
    (void)rd;
    return VKLLM_VERSION_GET_MAJOR(VKLLM_VERSION) == VKLLM_VERSION_MAJOR ? 0 : 1;
}
EOF
for cc in gcc clang; do
    for std in c99 c11; do
        quiet "$cc" -std=$std -Wall -Wextra -Werror -pedantic -I"$prefix/include" \
            -fsyntax-only "$tmp/hdr.c"
        echo "   $cc -std=$std: ok"
    done
done
for cxx in g++ clang++; do
    for std in c++11 c++17; do
        quiet "$cxx" -std=$std -Wall -Wextra -Werror -pedantic -I"$prefix/include" \
            -fsyntax-only "$tmp/hdr.cpp"
        echo "   $cxx -std=$std: ok"
    done
done

echo "== the shared library's symbols and SONAME"
so=$(find "$libdir" -maxdepth 1 -type f -name "libvkllm.so.$major.*")
if [ -z "$so" ] || [ "$(echo "$so" | wc -l)" -ne 1 ]; then
    fail "no single libvkllm.so.$major.* in $libdir"
fi
[ -e "$libdir/libvkllm.so.$major" ] || fail "no libvkllm.so.$major link in $libdir"
[ -e "$libdir/libvkllm.so" ] || fail "no libvkllm.so link in $libdir"
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = "libvkllm.so.$major" ] || fail "SONAME of $(basename "$so") is '$soname', not libvkllm.so.$major"
nm -D --defined-only "$so" >"$tmp/dyn.txt"
awk 'NF >= 3 { print $3 }' "$tmp/dyn.txt" | sed 's/@.*//' | sort -u >"$tmp/dyn_names.txt"
bad=$(grep -v '^vkllm_' "$tmp/dyn_names.txt" || true)
[ -z "$bad" ] || fail "$(basename "$so") exports symbols other than vkllm_*:
$bad"
# and every function vkllm.h marks VKLLM_API is exported
grep -ho 'VKLLM_API [^(]*(' "$hdr" "$prefix/include/vkllm_tools.h" | sed 's/($//; s/.*[ *]//' | grep '^vkllm_' | sort -u >"$tmp/api.txt"
[ -s "$tmp/api.txt" ] || fail "no VKLLM_API functions found in vkllm.h"
missing=$(comm -23 "$tmp/api.txt" "$tmp/dyn_names.txt")
[ -z "$missing" ] || fail "$(basename "$so") does not export these vkllm.h functions:
$missing"
echo "   $(basename "$so"): SONAME $soname, $(wc -l <"$tmp/dyn_names.txt") symbols, all vkllm_*"

echo "== the static library's global symbols"
a=$libdir/libvkllm.a
[ -f "$a" ] || fail "no libvkllm.a in $libdir"
nm -g --defined-only "$a" | awk 'NF >= 3 { print $3 }' | sort -u >"$tmp/a_names.txt"
bad=$(grep -v '^vkllm_' "$tmp/a_names.txt" || true)
[ -z "$bad" ] || fail "libvkllm.a has global symbols other than vkllm_*:
$bad"
grep -qx vkllm_version "$tmp/a_names.txt" || fail "libvkllm.a does not define vkllm_version"
for s in gguf_find_key gguf_find_tensor gguf_type_name; do
    # if the library still has it, it is local
    nm "$a" | awk -v s="$s" '$NF == s && $(NF-1) ~ /^[A-Z]$/ { found = 1 } END { exit !found }' &&
        fail "libvkllm.a: $s is global"
done
echo "   libvkllm.a: $(wc -l <"$tmp/a_names.txt") global symbols, all vkllm_*"

echo "== consumer.c through pkg-config (shared, then static)"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
quiet cc -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer_c" "$src/consumer.c" \
    $(pkg-config --cflags --libs vkllm) -Wl,-rpath,"$libdir"
readelf -d "$tmp/consumer_c" | grep -q "Shared library: \[libvkllm.so.$major\]" ||
    fail "consumer_c does not need libvkllm.so.$major"
static_libs=$(pkg-config --static --libs-only-l vkllm | tr ' ' '\n' | grep -vx -- '-lvkllm' || true)
# shellcheck disable=SC2046,SC2086
quiet cc -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer_c_static" "$src/consumer.c" \
    $(pkg-config --cflags vkllm) "$a" $static_libs
if readelf -d "$tmp/consumer_c_static" | grep -q 'libvkllm'; then
    fail "consumer_c_static needs libvkllm.so"
fi

echo "== consumer.cpp through find_package(vkllm)"
quiet cmake -S "$src" -B "$tmp/cpp" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" -DVKLLM_WANT_VERSION="$major"
quiet cmake --build "$tmp/cpp"
readelf -d "$tmp/cpp/consumer_cpp" | grep -q "Shared library: \[libvkllm.so.$major\]" ||
    fail "consumer_cpp does not need libvkllm.so.$major"
if readelf -d "$tmp/cpp/consumer_cpp_static" | grep -q 'libvkllm'; then
    fail "consumer_cpp_static needs libvkllm.so"
fi

run() { # NAME BINARY: runs it, its stdout into $tmp/NAME.out
    local rc=0
    "$2" >"$tmp/$1.out" 2>"$tmp/$1.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$tmp/$1.err" >&2
        fail "$1 exited with $rc"
    fi
    grep -q '[^[:space:]]' "$tmp/$1.out" || fail "$1 printed no text"
    echo "   $1: $(head -c 200 "$tmp/$1.out" | tr '\n' ' ')"
}
echo "== generate: 16 greedy tokens each"
run consumer_c "$tmp/consumer_c"
run consumer_c_static "$tmp/consumer_c_static"
run consumer_cpp "$tmp/cpp/consumer_cpp"
run consumer_cpp_static "$tmp/cpp/consumer_cpp_static"
for p in consumer_c_static consumer_cpp consumer_cpp_static; do
    cmp -s "$tmp/consumer_c.out" "$tmp/$p.out" || fail "consumer_c and $p printed different text"
done
echo "cli_install: ok"
