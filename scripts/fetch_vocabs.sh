#!/usr/bin/env bash
# Fetches llama.cpp's vocab-only test files (ggml-vocab-{llama-spm,llama-bpe,gpt-2}.gguf and
# their .inp/.out tokenizer cases) into $VKLLM_CACHE/vocab/. They come from llama.cpp's
# models/ folder inside the pinned llama-cpp-python sdist, which this script also fetches into
# $VKLLM_CACHE/pip/ (scripts/build_llama_cpp.sh builds llama.cpp from the same file).
# Every file is checked against a pinned sha256; a mismatch is an error. Idempotent: when the
# nine files are there and match, it downloads and extracts nothing.
# Usage: scripts/fetch_vocabs.sh           fetch the vocab files (prints the folder on stdout)
#        scripts/fetch_vocabs.sh --sdist   only make sure the sdist is there (prints its path)
# Env:   VKLLM_CACHE (default ~/.cache/vkllm); PIP_INDEX_URL is honoured for the download.
set -euo pipefail

cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
sdist_pkg="llama-cpp-python"
sdist_ver="0.3.36"
sdist_name="llama_cpp_python-$sdist_ver.tar.gz"
sdist_sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
# Where the vocab files sit inside the sdist (llama.cpp is a git submodule under vendor/).
sdist_models="llama_cpp_python-$sdist_ver/vendor/llama.cpp/models"

vocab_sums="\
cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac  ggml-vocab-gpt-2.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-gpt-2.gguf.inp
48e8c4cb3ad5c37915b225f872222567c1c4dd4d66951aa53460c8d152ff6d60  ggml-vocab-gpt-2.gguf.out
97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e  ggml-vocab-llama-bpe.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-llama-bpe.gguf.inp
118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b  ggml-vocab-llama-bpe.gguf.out
16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69  ggml-vocab-llama-spm.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-llama-spm.gguf.inp
ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29  ggml-vocab-llama-spm.gguf.out
"

pipdir="$cache/pip"
vocabdir="$cache/vocab"
sdist="$pipdir/$sdist_name"

me=fetch_vocabs
. "$(dirname "$0")/lib.sh"

vocabs_ok() {
    [ -d "$vocabdir" ] && (cd "$vocabdir" && printf '%s' "$vocab_sums" |
        sha256sum --check --quiet --status - 2>/dev/null)
}

# Downloads the sdist into $pipdir with pip, through whatever package index pip is configured
# for. pip prepares the sdist's metadata, which pulls llama-cpp-python's build backend
# (scikit-build-core) from the same index; nothing is compiled.
fetch_sdist() {
    mkdir -p "$pipdir"
    say "downloading $sdist_pkg $sdist_ver sdist (about 77 MB) into $pipdir"
    pip_download --no-deps --no-binary :all: --dest "$pipdir" "$sdist_pkg==$sdist_ver" ||
        die "pip download $sdist_pkg==$sdist_ver failed"
    [ -f "$sdist" ] || die "download did not produce $sdist"
}

ensure_sdist() {
    if [ -f "$sdist" ] && [ "$(sha_of "$sdist")" = "$sdist_sha256" ]; then
        return 0
    fi
    [ -f "$sdist" ] && say "warning: $sdist does not match its pinned sha256; fetching it again"
    rm -f "$sdist"
    fetch_sdist
    local got
    got=$(sha_of "$sdist")
    [ "$got" = "$sdist_sha256" ] || die "$sdist: sha256 $got, expected $sdist_sha256 (pinned)"
}

if [ "${1:-}" = "--sdist" ]; then
    ensure_sdist
    echo "$sdist"
    exit 0
elif [ $# -gt 0 ]; then
    die "unknown argument '$1' (usage: $0 [--sdist])"
fi

if vocabs_ok; then
    echo "$vocabdir"
    exit 0
fi

ensure_sdist
# Extract into a scratch folder, check, then move into place, so that a killed run never
# leaves a partial file under a final name.
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-vocab.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT
members=()
while read -r _ f; do
    [ -n "$f" ] && members+=("$sdist_models/$f")
done <<<"$vocab_sums"
tar -xzf "$sdist" -C "$tmpdir" --strip-components=4 "${members[@]}" ||
    die "extracting the vocab files from $sdist failed"
(cd "$tmpdir" && printf '%s' "$vocab_sums" | sha256sum --check --quiet -) ||
    die "vocab files in $sdist do not match their pinned sha256"
mkdir -p "$vocabdir"
mv -f "$tmpdir"/* "$vocabdir"/
say "vocab files ready in $vocabdir"
echo "$vocabdir"
