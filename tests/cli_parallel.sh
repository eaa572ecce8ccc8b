#!/usr/bin/env bash
# vkllm run -f FILE --parallel N: every line is a request, answers in input order equal to
# running each prompt alone (greedy), a summary line, and clear errors for bad use.
# Needs VKLLM_BIN and VKLLM_MODEL (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
[ -f "$model" ] || { echo "FAIL: default model missing at $model (scripts/fetch_model.sh)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

cat >"$tmp/prompts.txt" <<'P'
The capital of France is
List three animals:

1, 2, 3, 4,
Once upon a time, in a small village by the sea, there lived a fisherman who
def add(a, b):\n    return
Q: What is the boiling point of water?\nA:
P
n_lines=6
common=(-m "$model" --device cpu -t 2 --temp 0 -n 16 -c 512)
"$bin" run "${common[@]}" -f "$tmp/prompts.txt" --parallel 3 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] && ok "parallel run exits 0" || { bad "parallel run: exit $rc"; cat "$tmp/err"; }
# the summary
if grep -qE "^vkllm: $n_lines requests, 3 at a time \| prompt [0-9]+ tok .* generated [0-9]+ tok in [0-9.]+ s: [0-9.]+ tok/s \| time to first token mean [0-9.]+ s, p95 [0-9.]+ s" "$tmp/err"; then
    ok "summary line"
else
    bad "summary line:"; cat "$tmp/err"
fi
# answers in input order, each equal to the prompt run alone
python3 - "$tmp/out" "$tmp/prompts.txt" "$tmp" "$bin" "${common[@]}" <<'PY'
import subprocess, sys
out_path, prompts_path, tmp, binary = sys.argv[1:5]
common = sys.argv[5:]
lines = [l for l in open(prompts_path).read().split("\n") if l]
text = open(out_path).read()
blocks = text.split("> ")[1:]
bad = 0
if len(blocks) != len(lines):
    print(f"FAIL {len(blocks)} answers for {len(lines)} prompts"); sys.exit(1)
for i, (line, block) in enumerate(zip(lines, blocks)):
    prompt = line.replace("\\n", "\n")
    head, _, answer = block.partition("\n")
    # the echoed prompt is the unescaped line (its own newlines included)
    if not block.startswith(prompt + "\n"):
        print(f"FAIL answer {i+1} is not for prompt {line!r}"); bad += 1; continue
    answer = block[len(prompt) + 1:]
    assert answer.endswith("\n\n")
    answer = answer[:-2]
    alone = subprocess.run([binary, "run", *common, "--no-echo", "-p", prompt],
                           capture_output=True).stdout.decode()
    alone = alone[:-1] if alone.endswith("\n") else alone
    if alone != answer:
        print(f"FAIL prompt {i+1}: parallel {answer!r} vs alone {alone!r}"); bad += 1
    else:
        print(f"ok   prompt {i+1} answered as alone: {answer[:40]!r}")
sys.exit(1 if bad else 0)
PY
[ $? -eq 0 ] && ok "answers equal to single runs, in input order" || bad "answers"
# --parallel 1 and 8 give the same output
"$bin" run "${common[@]}" -f "$tmp/prompts.txt" --parallel 1 >"$tmp/out1" 2>/dev/null
"$bin" run "${common[@]}" -f "$tmp/prompts.txt" --parallel 8 >"$tmp/out8" 2>/dev/null
cmp -s "$tmp/out1" "$tmp/out" && cmp -s "$tmp/out8" "$tmp/out" && ok "--parallel 1, 3, 8 agree" \
    || bad "--parallel 1/3/8 outputs differ"
# errors
expect_error() {
    local name="$1" pattern="$2"; shift 2
    "$bin" "$@" >"$tmp/o" 2>"$tmp/e" </dev/null
    local rc=$?
    if [ $rc -eq 1 ] && grep -q "^error: " "$tmp/e" && grep -qiE "$pattern" "$tmp/e"; then
        ok "$name: $(grep -m1 '^error: ' "$tmp/e")"
    else
        bad "$name: exit $rc"; sed 's/^/     /' "$tmp/e" | head -5
    fi
}
expect_error "--parallel without -f" "prompts from" run -m "$model" -p hi --parallel 2
expect_error "--parallel 0" "sequence count" run -m "$model" -f "$tmp/prompts.txt" --parallel 0
expect_error "--chat without --parallel" "go with --parallel" run -m "$model" -p hi --chat
: >"$tmp/empty.txt"
expect_error "no prompts" "no prompts" run -m "$model" -f "$tmp/empty.txt" --parallel 2
python3 -c "print(' '.join(['word'] * 400))" >"$tmp/long.txt"
cat "$tmp/prompts.txt" >>"$tmp/long.txt"
expect_error "prompt longer than the context" "prompt 1 .*context" run -m "$model" --device cpu \
    -c 64 -n 4 -f "$tmp/long.txt" --parallel 2
# the other prompts were still answered
[ "$(grep -c '^> ' "$tmp/o")" -eq 7 ] && grep -q "^vkllm: 6 requests" "$tmp/e" \
    && ok "the other prompts still answered" || bad "other prompts not answered"
expect_error "KV budget below one sequence" "KV" run -m "$model" --device cpu -c 4096 --kv-mib 1 \
    -f "$tmp/prompts.txt" --parallel 2
expect_error "bad --kv-type" "f16 or q8_0" run -m "$model" -f "$tmp/prompts.txt" --parallel 2 \
    --kv-type q4_0
# a Q8_0 KV cache: every prompt answered
"$bin" run "${common[@]}" -f "$tmp/prompts.txt" --parallel 3 --kv-type q8_0 >"$tmp/outq" 2>"$tmp/errq" \
    && [ "$(grep -c '^> ' "$tmp/outq")" -eq $n_lines ] && ok "--kv-type q8_0 answers every prompt" \
    || { bad "--kv-type q8_0"; cat "$tmp/errq"; }
# the engine's benchmarks: records of the documented kinds and fields (docs/bench-json.md)
"$bin" bench -m "$model" --device cpu -t 2 -r 1 --no-probe --parallel 1,2 -p 8 -n 4 \
    --json "$tmp/par.json" >"$tmp/par.md" 2>"$tmp/par.err" &&
"$bin" bench -m "$model" --device cpu -t 2 -r 2 --no-probe --prefix 32 -p 8 \
    --json "$tmp/pre.json" >>"$tmp/par.md" 2>>"$tmp/par.err" &&
"$bin" bench -m "$model" --device cpu -t 2 --no-probe --step-budget 5 --parallel 2 -p 8 -n 4 \
    --json "$tmp/stp.json" >>"$tmp/par.md" 2>>"$tmp/par.err"
rc=$?
python3 - "$tmp" <<'PY' && [ $rc -eq 0 ] && ok "bench --parallel/--prefix/--step-budget records" || { bad "serving bench records"; cat "$tmp/par.err"; }
import json, sys
d = sys.argv[1]
par = json.load(open(f"{d}/par.json"))["records"]
kinds = sorted((r["test"]["kind"], r["test"]["n_parallel"]) for r in par)
assert kinds == [("batched-decode", 1), ("batched-decode", 2), ("batched-prefill", 1),
                 ("batched-prefill", 2)], kinds
for r in par:
    assert r["tps_mean"] > 0 and len(r["samples"]) == 1 and r["test"]["n_prompt"] == 8
    assert r["test"]["name"] in ("pp8 x1", "pp8 x2", "tg4 x1", "tg4 x2"), r["test"]["name"]
pre = json.load(open(f"{d}/pre.json"))["records"]
by = {r["test"]["kind"]: r for r in pre}
assert set(by) == {"ttft-cached", "ttft-uncached"}, by.keys()
for r in pre:
    assert r["test"]["n_shared"] == 32 and r["test"]["n_prompt"] == 40
    assert r["tps_mean"] is None and len(r["samples"]) == 2
    assert abs(r["seconds_mean"] - sum(r["samples"]) / 2) < 1e-9
stp = json.load(open(f"{d}/stp.json"))["records"]
assert len(stp) == 1 and stp[0]["test"]["kind"] == "step-budget"
r = stp[0]
assert r["test"]["budget_seconds"] == 0.005 and r["calls"] >= r["steps"] > 0
assert r["call_seconds_max"] >= r["call_seconds_p99"] >= 0 and r["kernel_seconds_chunk"] > 0
print("records ok:", len(par) + len(pre) + len(stp))
PY
expect_error "bench --parallel 0" "bad value" bench -m "$model" --parallel 0
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
