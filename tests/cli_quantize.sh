#!/usr/bin/env bash
# vkllm quantize against llama-quantize's recorded output (tests/data/quantize/sha256.txt,
# made by tools/golden/make_quantize_golden.sh): on the tiny-quant synth model as f32 every
# preset with and without an importance matrix, as f16 every preset without one and those in
# F16_IMATRIX_TYPES with one; the default model requantized to SMOLLM2_TYPES. The rest of the
# file's cases (the default model's take minutes) run with VKLLM_QUANTIZE_ALL=1; by default
# they are reported as not run.
# Then bad input: each must exit 1 with one "error: ..." line and leave no file behind.
# Needs VKLLM_BIN, VKLLM_MODEL, VKLLM_VOCAB_DIR, VKLLM_TEST_DATA (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
vocab="${VKLLM_VOCAB_DIR:?VKLLM_VOCAB_DIR not set}/ggml-vocab-llama-spm.gguf"
data="${VKLLM_TEST_DATA:?VKLLM_TEST_DATA not set}/quantize"
SMOLLM2_TYPES="Q4_0"
F16_IMATRIX_TYPES="Q4_0 Q5_1 Q4_K_M Q6_K"
pass=0 fail=0 skipped=0
for f in "$model" "$vocab" "$data/sha256.txt" "$data/tiny.imatrix.gguf" "$data/smollm2.imatrix.gguf" \
    "$data/tiny.imatrix.dat"; do
    if [ ! -f "$f" ]; then
        echo "FAIL: $f missing (scripts/fetch_model.sh, scripts/fetch_vocabs.sh)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

# the inputs, named as the golden script names them; the imatrix files by bare name, as
# llama-quantize was given them (it records the name in the output)
"$bin" synth --shape tiny-quant --vocab "$vocab" --type f32 --seed 1 -o tiny-f32.gguf 2>/dev/null
"$bin" synth --shape tiny-quant --vocab "$vocab" --type f16 --seed 1 -o tiny-f16.gguf 2>/dev/null
ln -s "$model" smollm2-q4_1.gguf
cp "$data/tiny.imatrix.gguf" "$data/smollm2.imatrix.gguf" "$data/tiny.imatrix.dat" .

while read -r sha input type im; do
    case "$sha" in '#'* | '') continue ;; esac
    name="$input $type imatrix $im"
    if [ "${VKLLM_QUANTIZE_ALL:-0}" != 1 ]; then
        case "$input" in
            smollm2-q4_1) wanted=" $SMOLLM2_TYPES " ;;
            tiny-f16) [ "$im" = - ] && wanted=" $type " || wanted=" $F16_IMATRIX_TYPES " ;;
            *) wanted=" $type " ;;
        esac
        if [[ "$input" = smollm2-q4_1 && "$im" != - ]] || [[ "$wanted" != *" $type "* ]]; then
            skipped=$((skipped + 1))
            continue
        fi
    fi
    args=()
    [ "$input" = smollm2-q4_1 ] && args+=(--allow-requantize)
    [ "$im" != - ] && args+=(--imatrix "$im")
    if ! "$bin" quantize "${args[@]}" -t 2 "$input.gguf" out.gguf "$type" 2>err.txt; then
        fail=$((fail + 1))
        echo "FAIL $name: $(cat err.txt)"
        continue
    fi
    got=$(sha256sum out.gguf | cut -d' ' -f1)
    if [ "$got" = "$sha" ]; then
        pass=$((pass + 1))
        echo "ok   $name"
    else
        fail=$((fail + 1))
        echo "FAIL $name: sha256 $got, llama-quantize's is $sha"
    fi
done <"$data/sha256.txt"
rm -f out.gguf
[ $skipped -gt 0 ] &&
    echo "not run: $skipped of the recorded cases (VKLLM_QUANTIZE_ALL=1 runs them); not counted"

# the aliases are the _M presets
"$bin" quantize tiny-f32.gguf a.gguf Q4_K 2>/dev/null && "$bin" quantize tiny-f32.gguf b.gguf q4_k_m 2>/dev/null
if cmp -s a.gguf b.gguf; then
    pass=$((pass + 1))
    echo "ok   Q4_K is Q4_K_M"
else
    fail=$((fail + 1))
    echo "FAIL Q4_K and Q4_K_M differ"
fi
rm -f a.gguf b.gguf

# the --type / -m forms give the same file as the positional one
"$bin" quantize -m tiny-f16.gguf --type q5_k_s -o a.gguf 2>/dev/null
"$bin" quantize tiny-f16.gguf b.gguf Q5_K_S 2>/dev/null
if [ -f a.gguf ] && cmp -s a.gguf b.gguf; then
    pass=$((pass + 1))
    echo "ok   -m/--type/-o form"
else
    fail=$((fail + 1))
    echo "FAIL -m/--type/-o form differs from the positional one"
fi
rm -f a.gguf b.gguf

# expect_error NAME PATTERN OUT -- ARGS...: exit 1, an "error:" line matching PATTERN, and
# neither OUT nor a temporary file beside it left behind
expect_error() {
    local name="$1" pattern="$2" out="$3"
    shift 4
    "$bin" quantize "$@" >stdout.txt 2>err.txt </dev/null
    local rc=$?
    local left
    left=$(ls "$out" "$out".*.tmp 2>/dev/null)
    if [ $rc -eq 1 ] && grep -q "^error: " err.txt && grep -qiE "$pattern" err.txt && [ -z "$left" ]; then
        pass=$((pass + 1))
        echo "ok   $name: $(grep -m1 '^error: ' err.txt)"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $rc, left: '$left', stderr:"
        sed 's/^/     /' err.txt | head -5
    fi
}
expect_error "vocab-only file" "no tensors" x.gguf -- "$vocab" x.gguf Q4_0
expect_error "unknown type" "unknown quantization type 'Q3_K_XL'" x.gguf -- tiny-f32.gguf x.gguf Q3_K_XL
expect_error "quantized input" "requantiz" x.gguf -- smollm2-q4_1.gguf x.gguf Q8_0
expect_error "unwritable output" "cannot create" "$tmp/no/such/dir/x.gguf" -- tiny-f32.gguf "$tmp/no/such/dir/x.gguf" Q4_0
head -c 1000000 tiny-f32.gguf >truncated.gguf
expect_error "truncated input" "truncated\.gguf" x.gguf -- truncated.gguf x.gguf Q4_0
expect_error "imatrix of another model" "importance matrix has" x.gguf -- --imatrix smollm2.imatrix.gguf tiny-f32.gguf x.gguf Q4_K_M
printf 'neither gguf nor dat' >bad.imatrix
expect_error "malformed imatrix" "bad.imatrix" x.gguf -- --imatrix bad.imatrix tiny-f32.gguf x.gguf Q4_K_M
expect_error "unknown option" "unknown option '--pure'" x.gguf -- --pure tiny-f32.gguf x.gguf Q4_0
expect_error "missing type" "required" x.gguf -- tiny-f32.gguf x.gguf

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
