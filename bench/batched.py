#!/usr/bin/env python3
"""Serving figures of vkllm's engine next to llama.cpp's llama-batched-bench, in one run, on
the same model file, threads and device.

1. Aggregate decode (and prefill) tok/s at N = 1, 2, 4, 8, 16, 32 concurrent sequences, each
   a prompt of -p tokens then -n generated tokens: `vkllm bench --parallel` (continuous
   batching: one step takes a token from every sequence) against `llama-batched-bench -npp P
   -ntg N -npl LIST` (S_PP and S_TG columns). Prints both, the ratio, and each engine's
   N-sequence aggregate over its single-stream figure.
2. Time to first token of a request that shares a --prefix-token prefix with an earlier one,
   with and without vkllm's prefix cache (`vkllm bench --prefix`), and the speedup.
3. With --step-budget MS: how long vkllm_step(budget) calls take while sequences run, against
   the longest kernel (`vkllm bench --step-budget`).

Builds what is missing (llama.cpp's tools with scripts/build_llama_cpp.sh, vkllm into build/).

Examples:
  bench/batched.py --device cpu -t 2
  bench/batched.py --device vulkan --parallel 1,2,4,8,16 -p 16 -n 16 --prefix 256
  bench/batched.py --device vulkan --vk-relaxed --parallel 1,16 -p 16 -n 16 --prefix 0
  bench/batched.py --device cpu --json out.json --step-budget 2,5
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side as sbs  # noqa: E402  (vkllm_bin, llama_tool, llama_env, run, say)


def vkllm_serve(args, extra):
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [sbs.vkllm_bin(), "bench", "-m", args.model, "--device", args.device,
               "-r", str(args.r), "--no-probe", "--json", tmp.name] + extra
        if args.t:
            cmd += ["-t", str(args.t)]
        out = sbs.run(cmd)
        if out is None:
            return []
        sys.stdout.write(out)
        with open(tmp.name) as f:
            return json.load(f)["records"]


def llama_batched(args):
    tool = sbs.llama_tool("llama-batched-bench", args.device != "cpu")
    npl = [int(x) for x in args.parallel.split(",")]
    ctx = max(npl) * (int(args.p) + int(args.n)) + 64
    cmd = [tool, "-m", args.model, "-c", str(ctx), "-b", "2048", "-ub", "512",
           "-npp", args.p, "-ntg", args.n, "-npl", args.parallel, "--output-format", "jsonl"]
    if args.t:
        cmd += ["-t", str(args.t), "-tb", str(args.t)]
    cmd += ["-ngl", "99" if args.device != "cpu" else "0"]
    out = sbs.run(cmd, env=sbs.llama_env(args.device))
    rows = []
    for line in (out or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=None, help="GGUF file (default: the default model)")
    ap.add_argument("--device", default="cpu", help="cpu, vulkan or vulkan:N")
    ap.add_argument("-t", type=int, default=0, help="threads (both engines)")
    ap.add_argument("-r", type=int, default=2, help="repetitions (vkllm)")
    ap.add_argument("--parallel", default="1,2,4,8,16,32")
    ap.add_argument("-p", default="32", help="prompt tokens per sequence")
    ap.add_argument("-n", default="64", help="generated tokens per sequence")
    ap.add_argument("--prefix", default="1024", help="shared prefix for the TTFT test (0: skip)")
    ap.add_argument("--step-budget", default="", help="vkllm_step budgets in ms (optional)")
    ap.add_argument("--no-llama", action="store_true", help="vkllm only")
    ap.add_argument("--vk-relaxed", action="store_true",
                    help="Vulkan: also run vkllm with --vk-relaxed (the device's own "
                         "multiply-add in the matrix products) and print it as its own column")
    ap.add_argument("--json", help="write every record (both engines) here")
    args = ap.parse_args()
    if not args.model:
        args.model = os.environ.get("VKLLM_MODEL") or os.path.join(
            sbs.CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

    serve = ["--parallel", args.parallel, "-p", args.p, "-n", args.n]
    records = vkllm_serve(args, serve)
    vk = {r["test"]["n_parallel"]: r for r in records if r["test"]["kind"] == "batched-decode"}
    vkp = {r["test"]["n_parallel"]: r for r in records if r["test"]["kind"] == "batched-prefill"}
    vkr = {}
    if args.vk_relaxed and args.device != "cpu":
        rel = vkllm_serve(args, serve + ["--vk-relaxed"])
        records += rel
        vkr = {r["test"]["n_parallel"]: r for r in rel if r["test"]["kind"] == "batched-decode"}
    ll = {} if args.no_llama else {r["pl"]: r for r in llama_batched(args)}
    for pl, r in ll.items():
        records.append({"engine": "llama.cpp", "tool": "llama-batched-bench",
                        "device": {"backend": "vulkan" if args.device != "cpu" else "cpu"},
                        "threads": r["n_threads"], "model": {"path": args.model},
                        "test": {"kind": "batched-decode", "name": f"tg{r['tg']} x{pl}",
                                 "n_prompt": r["pp"], "n_gen": r["tg"], "n_parallel": pl},
                        "tps_mean": r["speed_tg"], "pp_tps": r["speed_pp"]})

    print(f"\n## Aggregate decode, {args.device}, prompt {args.p} + {args.n} generated per "
          "sequence (tok/s; ratio = vkllm / llama.cpp)\n")
    print("| sequences | vkllm decode | llama.cpp decode | ratio | vkllm prefill | "
          "llama.cpp prefill | vkllm xN/x1 | llama.cpp xN/x1 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base_v = vk.get(1, {}).get("tps_mean")
    base_l = ll.get(1, {}).get("speed_tg")

    def f(x):
        return f"{x:.1f}" if x else "-"

    for n in sorted(vk):
        v, l = vk[n]["tps_mean"], ll.get(n, {}).get("speed_tg")
        vp, lp = vkp.get(n, {}).get("tps_mean"), ll.get(n, {}).get("speed_pp")
        print(f"| {n} | {f(v)} | {f(l)} | {f(v / l if l else None) if l else '-'} | {f(vp)} | "
              f"{f(lp)} | {f(v / base_v if base_v else None)} | "
              f"{f(l / base_l if l and base_l else None)} |")
    if vkr:
        print(f"\n## vkllm with --vk-relaxed, {args.device} (the same tests)\n")
        print("| sequences | relaxed decode | exact decode | relaxed / exact | relaxed xN/x1 | "
              "llama.cpp decode |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        base_r = vkr.get(1, {}).get("tps_mean")
        for n in sorted(vkr):
            r, v = vkr[n]["tps_mean"], vk.get(n, {}).get("tps_mean")
            l = ll.get(n, {}).get("speed_tg")
            print(f"| {n} | {f(r)} | {f(v)} | {f(r / v if v else None)} | "
                  f"{f(r / base_r if base_r else None)} | {f(l)} |")

    if args.prefix and args.prefix != "0":
        recs = vkllm_serve(args, ["--prefix", args.prefix])
        records += recs
        print(f"\n## Time to first token with a shared prefix, {args.device}\n")
        print("| shared prefix | without the cache (s) | with the prefix cache (s) | speedup |")
        print("| ---: | ---: | ---: | ---: |")
        by = {}
        for r in recs:
            by.setdefault(r["test"]["n_shared"], {})[r["test"]["kind"]] = r["seconds_mean"]
        for shared, d in sorted(by.items()):
            u, c = d.get("ttft-uncached"), d.get("ttft-cached")
            print(f"| {shared} | {u:.3f} | {c:.3f} | {u / c:.1f}x |")

    if args.step_budget:
        records += vkllm_serve(args, ["--step-budget", args.step_budget, "--parallel", "4",
                                      "-p", args.p, "-n", args.n])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "vkllm-bench/1", "records": records}, f, indent=1)
        sbs.say(f"wrote {args.json}")


if __name__ == "__main__":
    main()
