#!/usr/bin/env bash
# A model that does not fit in memory: vkllm perplexity, imatrix, quantize, prune and run say
# what could not be allocated, how much, and what to try; exit 1; and leave no output file
# behind (nor a temporary one). Two ways to run out:
#  - a process address-space limit (ulimit -v): one well under the model's size, so its
#    mapping fails, and one found by measurement where the model and a small context fit but
#    a context of 8192 tokens does not;
#  - the runtime's memory cap (--memory-cap), on the CPU and on Vulkan (lavapipe): under the
#    model's size, and above it but under what a large context needs.
# ASan and TSan reserve terabytes of address space, so ulimit -v cannot be used under them: in
# a sanitized build those parts print "not run" and the memory-cap parts still run. Vulkan is
# not run under ulimit -v: lavapipe's shader compiler does not check its own allocations and
# crashes inside vkCreateComputePipelines (SIGSEGV in libvulkan_lvp.so, Mesa 22/LLVM 15) at
# some limits, before vkllm can say anything; --memory-cap is how a device is made too small.
# Needs VKLLM_BIN, VKLLM_MODEL, VKLLM_TEXTS (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
texts="${VKLLM_TEXTS:?VKLLM_TEXTS not set}"
text="$texts/kjv-genesis.txt"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
for f in "$model" "$text"; do
    [ -f "$f" ] || { echo "FAIL: $f missing (scripts/fetch_model.sh, scripts/fetch_texts.sh)"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model_kib=$(( $(stat -c %s "$model") / 1024 ))
model_mib=$((model_kib / 1024))

# expect_oom NAME LIMIT_KIB PATTERN -- ARGS...: under ulimit -v LIMIT_KIB (0: none), vkllm ARGS
# exits 1 with one "error: ..." line that matches PATTERN, says how much (MiB) and what to try,
# and $tmp holds no out* file (the outputs, their .tmp and .<pid>.tmp names)
expect_oom() {
    local name="$1" limit="$2" pattern="$3"
    shift 4
    rm -f "$tmp"/out*
    (
        [ "$limit" -gt 0 ] && ulimit -v "$limit"
        exec "$bin" "$@" >"$tmp/stdout" 2>"$tmp/err" </dev/null
    )
    local rc=$?
    local line
    line=$(grep -m1 '^error: ' "$tmp/err")
    if [ $rc -ne 1 ]; then
        bad "$name: exit $rc, stderr: $(tail -3 "$tmp/err")"
    elif [ "$(grep -c '^error: ' "$tmp/err")" != 1 ] || ! grep -qE "$pattern" <<<"$line" ||
        ! grep -q 'MiB' <<<"$line" || ! grep -q 'not enough memory, try: ' <<<"$line"; then
        bad "$name: the error does not say what, how much and what to try: $line"
    elif ls "$tmp"/out* >/dev/null 2>&1; then
        bad "$name: left $(ls "$tmp"/out* | tr '\n' ' ')behind"
    else
        ok "$name: $line"
    fi
}

# fits LIMIT_KIB -- ARGS...: vkllm ARGS succeeds under ulimit -v LIMIT_KIB
fits() {
    local limit="$1"
    shift 2
    (ulimit -v "$limit" && exec "$bin" "$@" >/dev/null 2>"$tmp/err" </dev/null)
}

# ---- a process address-space limit (ulimit -v) ----------------------------------------------
sanitized=${VKLLM_TEST_SANITIZED:-0}
# the ctest wrapper of a sanitized build is a script; a sanitized binary names its runtime
if head -c 2 "$bin" | grep -q '#!' || grep -qaE '__(asan|tsan|msan)_init' "$bin"; then sanitized=1; fi
if [ "$sanitized" = 1 ]; then
    echo "not run (sanitized build: ASan/TSan reserve terabytes of address space, so ulimit -v"
    echo "    cannot limit it; the release pass runs them): every tool under ulimit -v, the"
    echo "    model's mapping and a context of 8192 tokens that does not fit"
elif ! (ulimit -v 1000000) 2>/dev/null; then
    echo "not run (ulimit -v is refused here): every tool under an address-space limit"
elif [ "$model_mib" -lt 64 ]; then
    echo "not run ($model is $model_mib MiB: too small to tell its mapping from the process's"
    echo "    own memory): every tool under ulimit -v"
else
    # Under three quarters of the model's size the file cannot be mapped (the first thing that
    # fails: the process itself with 2 threads takes well under 64 MiB).
    small=$((model_kib * 3 / 4))
    map="cannot map .*MiB.*ulimit -v"
    expect_oom "ulimit -v $((small / 1024)) MiB: perplexity" "$small" "$map" -- \
        perplexity -m "$model" -f "$text" -c 128 --chunks 1 -t 2 --device cpu --kl-base "$tmp/out.kl"
    expect_oom "ulimit -v $((small / 1024)) MiB: imatrix" "$small" "$map" -- \
        imatrix -m "$model" -f "$text" -c 128 --chunks 1 -t 2 -o "$tmp/out.gguf"
    expect_oom "ulimit -v $((small / 1024)) MiB: quantize" "$small" "$map" -- \
        quantize --allow-requantize "$model" "$tmp/out.gguf" q8_0 2
    expect_oom "ulimit -v $((small / 1024)) MiB: prune" "$small" "$map" -- \
        prune "$model" "$tmp/out.gguf"
    expect_oom "ulimit -v $((small / 1024)) MiB: run" "$small" "$map" -- \
        run -m "$model" -p "In the beginning" -n 4 -t 2 --device cpu
    # the thread pool comes first: 1024 threads' stacks take gigabytes of address space
    expect_oom "ulimit -v $((small / 1024)) MiB: run -t 1024" "$small" "could not start thread" -- \
        run -m "$model" -p "In the beginning" -n 4 -t 1024 --device cpu

    # The least limit (in steps of 16 MiB) under which perplexity over one chunk of 128 tokens
    # runs, plus 64 MiB: the model and a small context fit with room to spare, and a context of
    # 8192 tokens, which needs gigabytes (its batch's activations and 180 MiB of KV cache for
    # the default model), does not.
    fit=0
    for ((l = model_kib + 32768; l <= model_kib + 1048576; l += 16384)); do
        if fits "$l" -- perplexity -m "$model" -f "$text" -c 128 --chunks 1 -t 2 --device cpu; then
            fit=$l
            break
        fi
    done
    if [ "$fit" = 0 ]; then
        bad "perplexity -c 128 does not run under ulimit -v $((model_mib + 1024)) MiB: $(tail -2 "$tmp/err")"
    else
        big=$((fit + 65536))
        echo "     perplexity -c 128 runs from ulimit -v $((fit / 1024)) MiB; the limit below: $((big / 1024)) MiB"
        for cmd in "perplexity -c 128 --chunks 1 --device cpu" "imatrix -c 32 --chunks 1" \
                   "run -c 256 -n 1 --device cpu"; do
            read -r -a a <<<"$cmd"
            args=("${a[@]}" -m "$model" -t 2)
            case "$cmd" in run*) args+=(-p "In the beginning") ;; *) args+=(-f "$text") ;; esac
            [ "${a[0]}" = imatrix ] && args+=(-o "$tmp/ok.gguf")
            if fits "$big" -- "${args[@]}"; then ok "ulimit -v $((big / 1024)) MiB: $cmd runs"
            else bad "ulimit -v $((big / 1024)) MiB: $cmd: $(tail -2 "$tmp/err")"; fi
        done
        ctx="a context of 8192 tokens needs .*MiB|out of memory for .*MiB"
        expect_oom "ulimit -v $((big / 1024)) MiB: perplexity -c 8192" "$big" "$ctx" -- \
            perplexity -m "$model" -f "$text" -c 8192 --chunks 1 -t 2 --device cpu --kl-base "$tmp/out.kl"
        expect_oom "ulimit -v $((big / 1024)) MiB: imatrix -c 8192" "$big" "$ctx" -- \
            imatrix -m "$model" -f "$text" -c 8192 --chunks 1 -t 2 -o "$tmp/out.gguf"
        expect_oom "ulimit -v $((big / 1024)) MiB: run -c 8192 -b 4096" "$big" "$ctx" -- \
            run -m "$model" -p "In the beginning" -n 4 -c 8192 -b 4096 -t 2 --device cpu
    fi
fi

# ---- the runtime's memory cap (--memory-cap) ------------------------------------------------
# a quarter of the model's size holds no model; the model's size and a quarter more plus
# 64 MiB holds its weights (on Vulkan, padded and split into buffers of up to 64 MiB) but not
# a context of 8192 tokens
cap_small=$((model_mib / 4 + 1))
cap_big=$((model_mib * 5 / 4 + 64))
cap="over the memory cap|pass the memory cap.*try: a larger --memory-cap"
for dev in cpu vulkan; do
    # on Vulkan a model over the cap is placed in part on the CPU (docs/offload.md): a quarter
    # of the model is too little for even one layer and a context there
    small="weights.*$cap"
    [ $dev = vulkan ] && small="room \(the memory cap\) holds no layer.*try: a larger --memory-cap"
    expect_oom "--memory-cap $cap_small on $dev: perplexity" 0 "$small" -- \
        perplexity -m "$model" -f "$text" -c 128 --chunks 1 --device $dev \
        --memory-cap $cap_small --kl-base "$tmp/out.kl"
    expect_oom "--memory-cap $cap_small on $dev: run" 0 "$small" -- \
        run -m "$model" -p "In the beginning" -n 4 --device $dev --memory-cap $cap_small
    expect_oom "--memory-cap $cap_big on $dev: perplexity -c 8192" 0 "$cap" -- \
        perplexity -m "$model" -f "$text" -c 8192 --chunks 1 --device $dev \
        --memory-cap $cap_big --kl-base "$tmp/out.kl"
    expect_oom "--memory-cap $cap_big on $dev: run -c 8192 -b 4096" 0 "$cap" -- \
        run -m "$model" -p "In the beginning" -n 4 -c 8192 -b 4096 --device $dev \
        --memory-cap $cap_big
done
# imatrix runs on the CPU
expect_oom "--memory-cap $cap_small: imatrix" 0 "weights.*$cap" -- \
    imatrix -m "$model" -f "$text" -c 128 --chunks 1 --memory-cap $cap_small -o "$tmp/out.gguf"
expect_oom "--memory-cap $cap_big: imatrix -c 8192" 0 "a context of 8192 tokens needs.*$cap" -- \
    imatrix -m "$model" -f "$text" -c 8192 --chunks 1 --memory-cap $cap_big -o "$tmp/out.gguf"
# a cap with room runs as without one (the CPU: a Vulkan run of the model takes seconds here)
if "$bin" imatrix -m "$model" -f "$text" -c 32 --chunks 1 --memory-cap $((cap_big * 2)) \
        -o "$tmp/capped.gguf" 2>"$tmp/err" >/dev/null &&
    "$bin" imatrix -m "$model" -f "$text" -c 32 --chunks 1 -o "$tmp/plain.gguf" 2>"$tmp/err" >/dev/null &&
    cmp -s "$tmp/capped.gguf" "$tmp/plain.gguf"; then
    ok "--memory-cap $((cap_big * 2)): imatrix writes the file it writes without a cap"
else
    bad "--memory-cap $((cap_big * 2)): imatrix: $(tail -2 "$tmp/err")"
fi
for v in 0 -5 1x 16777217; do
    if "$bin" perplexity -m "$model" -f "$text" --memory-cap "$v" >/dev/null 2>"$tmp/err"; then
        bad "--memory-cap $v accepted"
    elif grep -q "^error: option --memory-cap: '$v' is not a size in MiB" "$tmp/err"; then
        ok "--memory-cap $v: $(head -1 "$tmp/err")"
    else
        bad "--memory-cap $v: $(head -2 "$tmp/err")"
    fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
