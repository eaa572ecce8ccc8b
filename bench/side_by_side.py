#!/usr/bin/env python3
"""vkllm against llama.cpp, in one run, on the same model files, threads and device.

Model tests (default): for each model and device, `vkllm bench` and llama.cpp's `llama-bench`
(the CPU build for --device cpu, the Vulkan build with all layers offloaded for vulkan[:N]),
with the same -p/-n/-d/-b/-t/-r; prints both engines' tables and one table of ratios
(vkllm / llama.cpp: above 1, vkllm is faster), and with --json writes every record of both
(llama-bench's converted) in the schema of docs/bench-json.md, for bench/report.py.

Kernel tests (--ops): `vkllm bench --ops --ops-shape tbo` next to llama.cpp's
`test-backend-ops perf` on the same shapes (MUL_MAT m=4096 k=14336 at n=1, 4 and 512 tokens, per
weight type; FLASH_ATTN_EXT hs=64, 64 query / 8 KV heads, kv=7680, 1 and 4 queries).

Builds what is missing: llama.cpp's tools with scripts/build_llama_cpp.sh (into
$VKLLM_CACHE/build-cpu and build-vulkan), vkllm with CMake into build/ (VKLLM_BIN: another).

Examples:
  bench/side_by_side.py                                   # default model, cpu and vulkan
  bench/side_by_side.py -m a.gguf -m b.gguf --device cpu -t 2 --json out.json
  bench/side_by_side.py --ops --device cpu,vulkan --ops-type q4_0,q8_0
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("VKLLM_CACHE") or os.path.expanduser("~/.cache/vkllm")


def say(msg):
    print(f"side_by_side: {msg}", file=sys.stderr, flush=True)


def die(msg):
    say(f"error: {msg}")
    sys.exit(1)


def vkllm_bin():
    path = os.environ.get("VKLLM_BIN") or os.path.join(ROOT, "build", "vkllm")
    if not os.environ.get("VKLLM_BIN"):
        say("building vkllm (Release) into build/")
        if not os.path.exists(os.path.join(ROOT, "build", "CMakeCache.txt")):
            subprocess.run(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build"), "-G",
                            "Ninja", "-DCMAKE_BUILD_TYPE=Release"], check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", os.path.join(ROOT, "build"), "--target", "vkllm"],
                       check=True, stdout=subprocess.DEVNULL)
    if not os.access(path, os.X_OK):
        die(f"{path} not found")
    return path


def llama_tool(name, vulkan):
    build = "build-vulkan" if vulkan else "build-cpu"
    path = os.path.join(CACHE, build, "bin", name)
    if not os.access(path, os.X_OK):
        say(f"building llama.cpp ({build}) with scripts/build_llama_cpp.sh")
        flag = ["--vulkan-only"] if vulkan else []
        subprocess.run([os.path.join(ROOT, "scripts", "build_llama_cpp.sh")] + flag,
                       check=True, stdout=subprocess.DEVNULL)
    if not os.access(path, os.X_OK):
        die(f"{path} missing after scripts/build_llama_cpp.sh")
    return path


def vk_index(device):
    """The Vulkan device index llama.cpp should see: vulkan -> 0, vulkan:N -> N."""
    m = re.fullmatch(r"vulkan(?::(\d+))?", device)
    if not m:
        die(f"--device {device}: llama.cpp is driven only for cpu, vulkan and vulkan:N")
    return m.group(1) or "0"


def llama_env(device):
    env = dict(os.environ)
    if device != "cpu":
        # lavapipe is a CPU device, which llama.cpp hides unless named
        env["GGML_VK_VISIBLE_DEVICES"] = vk_index(device)
    return env


def run(cmd, env=None):
    say(" ".join(cmd))
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-2000:])
        return None
    return p.stdout


# ---- model tests -------------------------------------------------------------------------

def run_vkllm(args, model, device):
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [vkllm_bin(), "bench", "-m", model, "--device", device, "-r", str(args.r),
               "-p", args.p, "-n", args.n, "-d", args.d, "--json", tmp.name]
        if args.b:
            cmd += ["-b", args.b]
        if args.t:
            cmd += ["-t", str(args.t)]
        if run(cmd) is None:
            return []
        with open(tmp.name) as f:
            return json.load(f)["records"]


def llama_records(rows, model, device, ref):
    """llama-bench's JSON rows -> records of docs/bench-json.md. The device, host and model
    fields it lacks (driver, tier, shape) come from ref, vkllm's record of the same test."""
    out = []
    for r in rows:
        pp = r["n_prompt"] > 0
        n = r["n_prompt"] if pp else r["n_gen"]
        name = f"{'pp' if pp else 'tg'}{n}" + (f" @ d{r['n_depth']}" if r.get("n_depth") else "")
        rec = {
            "engine": "llama.cpp",
            "engine_version": f"{r.get('build_commit', '?')} ({r.get('build_number', '?')})",
            "commit": r.get("build_commit", "?"),
            "time": r.get("test_time"),
            "host": dict(ref["host"]) if ref else {"cpu": r.get("cpu_info"), "cores": os.cpu_count(), "os": None},
            "device": dict(ref["device"]) if ref else None,
            "threads": r.get("n_threads"),
            "model": dict(ref["model"]) if ref else {"path": model},
            "test": {"kind": "prefill" if pp else "decode", "name": name,
                     "n_prompt": r["n_prompt"], "n_gen": r["n_gen"],
                     "n_depth": r.get("n_depth", 0), "n_batch": min(r["n_batch"], r["n_ubatch"])},
            "reps": len(r.get("samples_ts", [])),
            "samples": r.get("samples_ts", []),
            "tps_mean": r["avg_ts"],
            "tps_stddev": r["stddev_ts"],
            "bytes_per_token": None,
            "roofline_fraction": None,
            "op": None,
        }
        if rec["device"] is not None:
            rec["device"]["tier"] = None  # vkllm notions
            rec["device"]["relaxed_products"] = None
        if ref and not pp and ref.get("bytes_per_token") and ref["device"].get("bandwidth_gbps"):
            # the same bytes must move for llama.cpp's token: its roofline fraction too
            rec["bytes_per_token"] = ref["bytes_per_token"]
            rec["roofline_fraction"] = (ref["bytes_per_token"] * r["avg_ts"]
                                        / (ref["device"]["bandwidth_gbps"] * 1e9))
        out.append(rec)
    return out


def run_llama(args, model, device, vk_recs):
    # llama-bench crosses -b with -ub; vkllm's step size is both, so one run per batch size
    # (decode, which has no batch, in the first only)
    rows = []
    for i, batch in enumerate(args.b.split(",") if args.b else [None]):
        cmd = [llama_tool("llama-bench", device != "cpu"), "-m", model, "-r", str(args.r),
               "-p", args.p, "-n", args.n if i == 0 else "0", "-d", args.d, "-o", "json"]
        if batch:
            cmd += ["-b", batch, "-ub", batch]
        if args.t:
            cmd += ["-t", str(args.t)]
        if device != "cpu":
            cmd += ["-ngl", "99"]
        text = run(cmd, env=llama_env(device))
        if text is not None:
            rows += [r for r in json.loads(text) if r["n_prompt"] > 0 or r["n_gen"] > 0]
    out = []
    for r in rows:
        pp = r["n_prompt"] > 0
        ref = next((v for v in vk_recs
                    if v["test"]["kind"] == ("prefill" if pp else "decode")
                    and v["test"]["n_prompt" if pp else "n_gen"] == r["n_prompt" if pp else "n_gen"]
                    and v["test"]["n_depth"] == r.get("n_depth", 0)
                    and (not pp or v["test"]["n_batch"] == min(r["n_batch"], r["n_ubatch"]))),
                   vk_recs[0] if vk_recs else None)
        out += llama_records([r], model, device, ref)
    return out


def key(rec):
    return (rec["model"].get("path"), rec["device"]["backend"] if rec["device"] else "?",
            rec["test"]["name"], rec["test"]["n_batch"])


def print_tables(records):
    for engine in ("vkllm", "llama.cpp"):
        print(f"\n### {engine}\n")
        print("| model | type | device | threads | test | t/s |")
        print("| --- | --- | --- | ---: | --- | ---: |")
        for r in records:
            if r["engine"] != engine:
                continue
            d = r["device"] or {}
            print(f"| {os.path.basename(r['model'].get('path') or '?')} | {r['model'].get('type', '')} | "
                  f"{d.get('backend', '?')}: {d.get('name', '?')} | {r['threads']} | {r['test']['name']} | "
                  f"{r['tps_mean']:.2f} ± {r['tps_stddev']:.2f} |")
    print("\n### vkllm / llama.cpp\n")
    print("| model | device | test | batch | vkllm t/s | llama.cpp t/s | ratio | vkllm roofline | llama.cpp roofline |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    peers = {key(r): r for r in records if r["engine"] == "llama.cpp"}
    for v in records:
        if v["engine"] != "vkllm":
            continue
        ll = peers.get(key(v))
        ratio = f"{v['tps_mean'] / ll['tps_mean']:.2f}" if ll and ll["tps_mean"] else "-"
        roof = lambda r: f"{100 * r['roofline_fraction']:.0f} %" if r and r.get("roofline_fraction") else "-"
        print(f"| {os.path.basename(v['model']['path'])} | {v['device']['backend']}: {v['device']['name']} | "
              f"{v['test']['name']} | {v['test']['n_batch'] if v['test']['kind'] == 'prefill' else '-'} | {v['tps_mean']:.2f} | "
              f"{ll['tps_mean']:.2f} | {ratio} | {roof(v)} | {roof(ll)} |" if ll else
              f"| {os.path.basename(v['model']['path'])} | {v['device']['backend']}: {v['device']['name']} | "
              f"{v['test']['name']} | {v['test']['n_batch'] if v['test']['kind'] == 'prefill' else '-'} | {v['tps_mean']:.2f} | - | - | {roof(v)} | - |")


# ---- kernel tests ------------------------------------------------------------------------

TBO_LINE = re.compile(r"^\s*(MUL_MAT|FLASH_ATTN_EXT)\((.*)\):\s+(\d+) runs -\s+([0-9.]+) us/run")


def run_tbo(device, types):
    """test-backend-ops perf on the shapes `vkllm bench --ops --ops-shape tbo` times:
    {(op, type, tokens): us}."""
    backend = "CPU" if device == "cpu" else "Vulkan" + vk_index(device)
    tool = llama_tool("test-backend-ops", device != "cpu")
    type_re = "|".join(types)
    cases = [("MUL_MAT", f"type_a=({type_re}),type_b=f32,m=4096,n=(1|4|512),k=14336,bs=\\[1,1\\],nr=\\[1,1\\],"),
             ("FLASH_ATTN_EXT", "hsk=64,hsv=64,nh=8,nr23=\\[8,1\\],kv=7680,nb=(1|4),mask=1,sinks=0,"
                                "max_bias=0.000000,logit_softcap=0.000000,prec=f32,type_K=f16,type_V=f16,")]
    out = {}
    for op, params in cases:
        text = run([tool, "perf", "-b", backend, "-o", op, "-p", params], env=llama_env(device))
        for line in (text or "").splitlines():
            m = TBO_LINE.match(line)
            if not m:
                continue
            kv = dict(p.split("=", 1) for p in re.split(r",(?![^\[]*\])", m.group(2)))
            if op == "MUL_MAT":
                out[("matmul", kv["type_a"], int(kv["n"]))] = float(m.group(4))
            else:
                out[("attention", "f16", int(kv["nb"]))] = float(m.group(4))
    return out


def ops(args, devices):
    records, rows = [], []
    for device in devices:
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            cmd = [vkllm_bin(), "bench", "--ops", "--ops-shape", "tbo", "--ops-type", args.ops_type,
                   "--ops-tokens", "1,4,512", "--ops-ctx", "7680", "--device", device, "--json", tmp.name]
            if args.t:
                cmd += ["-t", str(args.t)]
            if run(cmd) is None:
                continue
            with open(tmp.name) as f:
                vk = json.load(f)["records"]
        records += vk
        peer = run_tbo(device, args.ops_type.split(","))
        for r in vk:
            o = r["op"]
            ll_us = peer.get((o["op"], o["type"], o["tokens"]))
            rows.append((device, r["device"]["name"], o, ll_us))
    print("\n| device | op | type | tokens | vkllm us | llama.cpp us | vkllm GB/s | vkllm GFLOPS | "
          "llama.cpp GFLOPS | ratio (llama.cpp us / vkllm us) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for device, name, o, ll_us in rows:
        shape = f"{o['rows']}x{o['cols']}" if o["op"] == "matmul" else \
            f"{o['n_head']}/{o['n_head_kv']}x{o['head_dim']} kv {o['n_kv']}"
        ll_gf = "%.1f" % (o["flops"] / ll_us / 1e3) if ll_us else "-"
        ll_t = "%.1f" % ll_us if ll_us else "-"
        ratio = "%.2f" % (ll_us / o["us"]) if ll_us else "-"
        print(f"| {device}: {name} | {o['op']} {shape} | {o['type']} | {o['tokens']} | {o['us']:.1f} | "
              f"{ll_t} | {o['gbps']:.1f} | {o['gflops']:.1f} | {ll_gf} | {ratio} |")
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", action="append", help="GGUF model (repeatable; default: the default model)")
    ap.add_argument("--device", default="cpu,vulkan", help="cpu, vulkan, vulkan:N, comma separated")
    ap.add_argument("-p", default="512", help="prompt lengths, comma separated (default 512)")
    ap.add_argument("-n", default="128", help="generated lengths (default 128)")
    ap.add_argument("-d", default="0", help="depths: tokens already in the context (default 0)")
    ap.add_argument("-b", default=None, help="tokens per prefill step (default: 512 on both)")
    ap.add_argument("-t", type=int, default=os.cpu_count(), help="threads (default: all cores)")
    ap.add_argument("-r", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--json", help="write all records (both engines) here")
    ap.add_argument("--ops", action="store_true", help="kernel tests against test-backend-ops perf")
    ap.add_argument("--ops-type", default="q4_0,q4_1,q8_0,f16", help="weight types for --ops")
    args = ap.parse_args()
    devices = args.device.split(",")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    say(f"{os.cpu_count()} CPUs, load average {load} (figures mean little on a busy machine)")
    if args.ops:
        records = ops(args, devices)
    else:
        models = args.m or [subprocess.run([os.path.join(ROOT, "scripts", "fetch_model.sh")],
                                           check=True, stdout=subprocess.PIPE,
                                           text=True).stdout.strip()]
        records = []
        for model in models:
            if not os.path.isfile(model):
                die(f"model {model} not found")
            for device in devices:
                vk = run_vkllm(args, model, device)
                records += vk + run_llama(args, model, device, vk)
        print_tables(records)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "vkllm-bench/1", "records": records}, f, indent=1)
        say(f"wrote {len(records)} records to {args.json}")
    if not records:
        sys.exit(1)


if __name__ == "__main__":
    main()
