#!/usr/bin/env bash
# Regenerates vkllm's golden generation data in tests/data/golden/ from llama.cpp: builds
# tools/golden/golden_gen.c against llama.cpp's AVX2 reference build (scripts/
# build_llama_cpp.sh --reference: the same floats on every x86 processor; see there why),
# then runs it on the default model for every prompt in
# tests/data/golden/prompts.txt, twice:
#   generate_smollm2.txt        llama.cpp's defaults: flash attention "auto" (resolves to on
#                               for the CPU backend), K/V cache f16
#   generate_smollm2_f32kv.txt  flash attention off, K/V cache f32: llama.cpp's most precise
#                               setting, the one closest to a plain f32 reference
# The binary goes to $VKLLM_CACHE/golden/, never into the repository.
# Usage: tools/golden/make_golden.sh [-t THREADS] [-o DIR] [--check] [-- golden_gen options]
#   -t N      threads for llama.cpp (default 2, the setting the golden files record)
#   -o DIR    write the files into DIR instead of tests/data/golden/
#   --check   generate into a temporary folder and compare with the committed files; exit 1
#             if any prompt or generated id differs (logit differences are reported too)
# Env: VKLLM_CACHE (default ~/.cache/vkllm)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${VKLLM_CACHE:-$HOME/.cache/vkllm}"
llsrc="$cache/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
golden_dir="$root/tests/data/golden"
prompts="$golden_dir/prompts.txt"
# variant name -> golden_gen options
variants=(generate_smollm2 generate_smollm2_f32kv)
declare -A variant_opts=([generate_smollm2]="" [generate_smollm2_f32kv]="--fa off --kv-type f32")
# The pinned peer (scripts/build_llama_cpp.sh); git tells the same when the sdist's
# metadata is there.
llama_cpp_desc="llama-cpp-python 0.3.36 sdist, llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f"

die() { echo "make_golden: error: $*" >&2; exit 1; }

threads=2 out_dir="$golden_dir" check=0 extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) threads="$2"; shift ;;
        -o) out_dir="$2"; shift ;;
        --check) check=1 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

model=$("$root/scripts/fetch_model.sh")
bin=$("$root/scripts/build_llama_cpp.sh" --reference | tail -n 1)
[ -f "$llsrc/include/llama.h" ] || die "llama.cpp sources not found at $llsrc"
if commit=$(git -C "$llsrc" rev-parse HEAD 2>/dev/null); then
    case "$llama_cpp_desc" in
        *"$commit"*) ;;
        *) die "llama.cpp at $llsrc is commit $commit, not the pinned one ($llama_cpp_desc)" ;;
    esac
fi

gen="$cache/golden/golden_gen-$(basename "$(dirname "$bin")")" # linked to that build
mkdir -p "$cache/golden"
if [ ! -x "$gen" ] || [ "$root/tools/golden/golden_gen.c" -nt "$gen" ]; then
    cc -std=c11 -O2 -Wall -Wextra -Werror -I"$llsrc/include" -I"$llsrc/ggml/include" \
        "$root/tools/golden/golden_gen.c" -o "$gen" \
        -L"$bin" -lllama -lggml -lggml-base -lm -Wl,-rpath,"$bin" ||
        die "compiling golden_gen failed"
fi

[ "$check" -eq 1 ] && out_dir="$(mktemp -d "${TMPDIR:-/tmp}/golden.XXXXXX")"
mkdir -p "$out_dir"
model_sha256=$(sha256sum "$model" | cut -d' ' -f1)
status=0
for v in "${variants[@]}"; do
    out="$out_dir/$v.txt"
    tmp="$out.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    # shellcheck disable=SC2086  # the variant's options are meant to split into words
    "$gen" -m "$model" -f "$prompts" -o "$tmp" -t "$threads" ${variant_opts[$v]} \
        --meta "llama_cpp=$llama_cpp_desc" \
        --meta "model=$(basename "$model")" \
        --meta "model_sha256=$model_sha256" \
        ${extra[@]+"${extra[@]}"}
    mv -f "$tmp" "$out"
    trap - EXIT
    if [ "$check" -eq 0 ]; then
        echo "make_golden: wrote $out" >&2
        continue
    fi
    golden="$golden_dir/$v.txt"
    # What the tests rely on exactly: the token ids.
    if ! diff <(grep -E '^(prompt_ids|gen_ids)' "$golden") \
              <(grep -E '^(prompt_ids|gen_ids)' "$out") >/dev/null; then
        echo "make_golden: $v: token ids differ from $golden:" >&2
        diff <(grep -E '^(prompt|prompt_ids|gen_ids)' "$golden") \
             <(grep -E '^(prompt|prompt_ids|gen_ids)' "$out") >&2 || true
        status=1
    else
        echo "make_golden: $v: prompt and generated ids match" >&2
    fi
    if diff <(grep -v '^meta' "$golden") <(grep -v '^meta' "$out") >/dev/null; then
        echo "make_golden: $v: logits match bit for bit" >&2
    else
        echo "make_golden: $v: some logits/margins differ (diff $golden $out)" >&2
    fi
done
[ "$check" -eq 1 ] && echo "$out_dir"
exit "$status"
