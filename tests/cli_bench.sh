#!/usr/bin/env bash
# `vkllm bench`: the records it writes follow docs/bench-json.md (every field, its type, the
# figures consistent with each other: mean and stddev of the samples, the roofline fraction
# from bytes per token and the probed bandwidth, op FLOPs from the shape), one record per
# combination of the lists, on the CPU and on Vulkan; the CSV has the same records; the
# markdown table a row each; bad options and unwritable files give an error and exit 1.
# Needs VKLLM_BIN and VKLLM_MODEL (set by ctest).
set -u
bin="${VKLLM_BIN:?VKLLM_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/     /' "$tmp/err" | tail -n 8; }

# model tests: 1 prompt length x 2 batch sizes x 2 depths + 1 generation length x 2 depths,
# on two devices
if "$bin" bench -m "$model" -p 16 -n 4 -d 0,8 -b 8 -b 16 -r 2 --device cpu,vulkan -t 2 \
    --json "$tmp/b.json" --csv "$tmp/b.csv" >"$tmp/out" 2>"$tmp/err"; then
    ok "bench on cpu and vulkan"
else
    bad "bench on cpu and vulkan: exit $?"
fi
if python3 - "$tmp/b.json" "$tmp/b.csv" "$tmp/out" >"$tmp/err" 2>&1 <<'PY'; then
import csv, json, math, sys
doc = json.load(open(sys.argv[1]))
assert doc["schema"] == "vkllm-bench/1", doc.get("schema")
recs = doc["records"]
assert len(recs) == 12, f"{len(recs)} records, want 12"
STR, NUM = str, (int, float)
def need(obj, key, types, nullable=False):
    assert key in obj, f"missing {key}"
    v = obj[key]
    if v is None:
        assert nullable, f"{key} is null"
    else:
        assert isinstance(v, types), f"{key}: {v!r} is not {types}"
    return v
names = set()
for r in recs:
    for k in ("engine", "engine_version", "commit", "time"):
        need(r, k, STR)
    assert r["engine"] == "vkllm"
    h, d, m, t = r["host"], r["device"], r["model"], r["test"]
    need(h, "cpu", STR); need(h, "cores", int); need(h, "os", STR)
    vk = need(d, "backend", STR) == "vulkan"
    for k in ("name", "vendor", "kind", "driver"):
        need(d, k, STR)
    need(d, "api_version", STR, nullable=not vk)
    assert (d["tier"] is None) != vk, "tier: set exactly for vulkan"
    assert need(d, "relaxed_products", bool) is False, "relaxed_products without --vk-relaxed"
    need(d, "memory_bytes", int)
    bw = need(d, "bandwidth_gbps", NUM)
    assert bw > 0
    assert need(r, "threads", int) == 2
    for k in ("path", "name", "arch", "type"):
        need(m, k, STR)
    assert m["type"] == "Q4_1", m["type"]
    for k in ("file_bytes", "weight_bytes", "n_params", "n_layer", "n_embd", "n_ff", "n_head",
              "n_head_kv", "n_vocab"):
        assert need(m, k, int) > 0, k
    kind = need(t, "kind", STR)
    for k in ("n_prompt", "n_gen", "n_depth", "n_batch"):
        need(t, k, int)
    n = t["n_prompt"] if kind == "prefill" else t["n_gen"]
    want = ("pp" if kind == "prefill" else "tg") + str(n) + (f" @ d{t['n_depth']}" if t["n_depth"] else "")
    assert need(t, "name", STR) == want, (t["name"], want)
    names.add((d["backend"], t["name"], t["n_batch"] if kind == "prefill" else 0))
    reps = need(r, "reps", int)
    s = need(r, "samples", list)
    assert reps == 2 == len(s) and all(x > 0 for x in s), s
    mean = sum(s) / len(s)
    sd = math.sqrt(sum((x - mean) ** 2 for x in s) / (len(s) - 1))
    assert math.isclose(need(r, "tps_mean", NUM), mean, rel_tol=1e-9), (r["tps_mean"], mean)
    assert math.isclose(need(r, "tps_stddev", NUM), sd, rel_tol=1e-9, abs_tol=1e-12)
    assert need(r, "op", dict, nullable=True) is None
    if kind == "decode":
        bpt = need(r, "bytes_per_token", NUM)
        # the weights (less the untied embedding) plus K and V of the mean context
        assert 0.5 * m["weight_bytes"] < bpt < 1.5 * m["weight_bytes"], (bpt, m["weight_bytes"])
        roof = need(r, "roofline_fraction", NUM)
        assert math.isclose(roof, bpt * mean / (bw * 1e9), rel_tol=1e-9)
    else:
        assert kind == "prefill" and r["bytes_per_token"] is None and r["roofline_fraction"] is None
for dev in ("cpu", "vulkan"):
    for want in (("pp16", 8), ("pp16", 16), ("pp16 @ d8", 8), ("pp16 @ d8", 16), ("tg4", 0),
                 ("tg4 @ d8", 0)):
        assert (dev,) + want in names, f"no record for {dev} {want}"
rows = list(csv.DictReader(open(sys.argv[2])))
assert len(rows) == 12, len(rows)
assert {"device.name", "test.name", "tps_mean", "samples", "model.type"} <= set(rows[0]), rows[0].keys()
assert [r["test.name"] for r in rows] == [r["test"]["name"] for r in recs]
assert all(len(r["samples"].split(";")) == 2 for r in rows)
table = [l for l in open(sys.argv[3]) if l.startswith("| ") and "| Q4_1 |" in l]
assert len(table) == 12, f"{len(table)} table rows"
PY
    ok "JSON records follow the schema; CSV and table agree"
else
    bad "JSON/CSV/table check"
fi

# --vk-relaxed: in effect on lavapipe (its fma() is not fused), in the record and the table
if "$bin" bench -m "$model" -p 0 -n 2 -r 1 --device vulkan --vk-relaxed --no-probe \
    --json "$tmp/r.json" >"$tmp/out" 2>"$tmp/err" &&
    python3 - "$tmp/r.json" "$tmp/out" >"$tmp/err" 2>&1 <<'PY'; then
import json, sys
recs = json.load(open(sys.argv[1]))["records"]
assert len(recs) == 1 and recs[0]["device"]["relaxed_products"] is True, recs
rows = [l for l in open(sys.argv[2]) if l.startswith("| ") and "| Q4_1 |" in l]
assert len(rows) == 1 and " t2 relaxed |" in rows[0], rows
PY
    ok "bench --vk-relaxed: relaxed products in effect"
else
    bad "bench --vk-relaxed"
fi

# kernel microbenchmarks
if "$bin" bench --ops --ops-shape smollm2-135m --ops-type q4_0,q8_0 --ops-tokens 1,4 \
    --ops-seconds 0.02 --ops-ctx 64 --device cpu --no-probe --json "$tmp/o.json" \
    >"$tmp/out" 2>"$tmp/err" &&
    python3 - "$tmp/o.json" >"$tmp/err" 2>&1 <<'PY'; then
import json, sys
recs = json.load(open(sys.argv[1]))["records"]
mm = [r for r in recs if r["op"]["op"] == "matmul"]
at = [r for r in recs if r["op"]["op"] == "attention"]
# 5 matrices x 2 types x 2 token counts; attention once per token count
assert len(mm) == 20 and len(at) == 2, (len(mm), len(at))
for r in recs:
    o = r["op"]
    assert r["test"]["kind"] == "op" and r["model"]["name"] == "smollm2-135m"
    assert o["us"] > 0 and o["gbps"] > 0 and o["gflops"] > 0
    assert r["device"]["bandwidth_gbps"] is None and r["tps_mean"] is None
    if o["op"] == "matmul":
        assert o["flops"] == 2 * o["rows"] * o["cols"] * o["tokens"]
        assert abs(o["gflops"] - o["flops"] / o["us"] / 1e3) <= 1e-6 * o["gflops"]
    else:
        assert (o["n_head"], o["n_head_kv"], o["head_dim"]) == (9, 3, 64) and o["rows"] is None
assert {r["op"]["rows"] for r in mm} == {576, 192, 1536, 49152}
PY
    ok "bench --ops records"
else
    bad "bench --ops"
fi

# errors
expect_error() {
    local name="$1" pattern="$2"
    shift 2
    "$bin" bench "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    if [ $rc -eq 1 ] && grep -qiE "^error: .*$pattern" "$tmp/err"; then
        ok "$name: $(grep -m1 '^error: ' "$tmp/err")"
    else
        bad "$name: exit $rc"
    fi
}
expect_error "bad list" "bad value '16,x'" -p 16,x
expect_error "bad repetitions" "bad value '0'" -r 0
expect_error "missing model" "not found" -m "$tmp/none.gguf"
expect_error "unknown ops shape" "unknown shape 'nope'" --ops --ops-shape nope --device cpu --no-probe
expect_error "unknown device" "unknown device" -m "$model" --device tpu
expect_error "unwritable json" "cannot write" -m "$model" -p 4 -n 0 -r 1 --device cpu \
    --no-probe --json "$tmp/no/such/dir/b.json"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
