#!/usr/bin/env python3
"""Partial offload and layer splits: vkllm against llama.cpp, in one run, on the same files,
threads and devices.

For each model, each -ngl value (layers on the GPU, as llama.cpp counts them; 'all' = every
layer and the output head) and each layer split (none, then every --split given), runs
`vkllm bench -ngl N [--split R1,R2]` and llama.cpp's `llama-bench -ngl N [-sm layer -ts R1/R2]`
(its Vulkan build) one after the other, and prints one table: where each engine put the layers,
prefill and decode tok/s of both, and the ratios (vkllm / llama.cpp: above 1, vkllm is faster).
With splits, a second table gives each engine's step time with and without the split at the
same -ngl, and the activation bytes that cross each device boundary per step.

llama.cpp's placement is read from its own load log (llama-bench -v): which device each layer
and the output head went to; vkllm's from its records' `placement` and `gpu_layers`.

Models: the default model and a synthetic Llama-3.2-1B (`vkllm synth`, Q4_0, kept under
$VKLLM_CACHE/synth/), or those of -m / --synth. Builds what is missing (llama.cpp's Vulkan
build with scripts/build_llama_cpp.sh, vkllm into build/; VKLLM_BIN: another vkllm).
With --doc FILE, the tables also replace the text between the "offload.py: begin" and
"offload.py: end" markers of FILE (docs/offload-cost.md's "Measured here").

Examples:
  bench/offload.py                                        # both models, -ngl 0,8,16,all
  bench/offload.py --split 3,1 --split 1,1 -r 5 --json out.json
  bench/offload.py -m a.gguf -ngl 0,4,all -p 64 -n 16 -r 2   # lavapipe: shorter tests
  bench/offload.py --split 3,1 --split-device vulkan:0,vulkan:1 --doc docs/offload-cost.md
"""
import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side as sbs  # noqa: E402  (vkllm_bin, llama_tool, llama_records, CACHE, ROOT)

BEGIN = "<!-- offload.py: begin -->"
END = "<!-- offload.py: end -->"


def say(msg):
    print(f"offload: {msg}", file=sys.stderr, flush=True)


def die(msg):
    say(f"error: {msg}")
    sys.exit(1)


def run(cmd, env=None):
    """(returncode, stdout, stderr); the command is logged, stderr's tail shown on failure."""
    say(" ".join(cmd))
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-2000:])
        say(f"exit status {p.returncode}")
    return p.returncode, p.stdout, p.stderr


def vulkan_devices(vk):
    """vkllm's Vulkan devices, from `vkllm devices`: ["vulkan:0", ...]."""
    rc, out, _ = run([vk, "devices"])
    return re.findall(r"^(vulkan:\d+)\s", out, re.M) if rc == 0 else []


def synth_model(vk, shape, wtype):
    """A synthetic model of this shape, made once and kept under $VKLLM_CACHE/synth/."""
    folder = os.path.join(sbs.CACHE, "synth")
    path = os.path.join(folder, f"{shape}-{wtype}.gguf")
    if os.path.isfile(path):
        return path
    os.makedirs(folder, exist_ok=True)
    tmp = path + f".tmp{os.getpid()}"
    rc, _, _ = run([vk, "synth", "--shape", shape, "--type", wtype, "-o", tmp])
    if rc != 0 or not os.path.isfile(tmp):
        die(f"vkllm synth --shape {shape} --type {wtype} failed")
    os.replace(tmp, path)  # only a whole file gets the name
    return path


def field(rec, name):
    """A field the offload records carry: at the top, or in test or device (defensive: the
    names are the bench's, the nesting is not fixed by docs/bench-json.md yet)."""
    for where in (rec, rec.get("test") or {}, rec.get("device") or {}):
        if isinstance(where, dict) and where.get(name) is not None:
            return where[name]
    return None


# ---- vkllm ---------------------------------------------------------------------------------

def run_vkllm(args, vk, model, ngl, split):
    # bench's --device lists separate runs; the devices of one split runtime join with +
    device = args.split_device.replace(",", "+") if split else args.device
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [vk, "bench", "-m", model, "--device", device, "-ngl", ngl, "-p", args.p,
               "-n", args.n, "-r", str(args.r), "-t", str(args.t), "--no-probe",
               "--json", tmp.name]
        if split:
            cmd += ["--split", split]
        if args.vk_relaxed:
            cmd.append("--vk-relaxed")
        rc, _, _ = run(cmd)
        if rc != 0:
            return []
        try:
            with open(tmp.name) as f:
                recs = json.load(f).get("records", [])
        except (OSError, ValueError) as e:
            say(f"vkllm bench wrote no readable JSON: {e}")
            return []
    for r in recs:
        r["offload"] = {"ngl": ngl, "split": split or "", "gpu_layers": field(r, "gpu_layers"),
                        "placement": field(r, "placement"),
                        "split_reported": field(r, "split")}
    return recs


# ---- llama.cpp -----------------------------------------------------------------------------

ASSIGN = re.compile(r"load_tensors: layer\s+(\d+) assigned to device (\S+?),")
OFFLOADED = re.compile(r"load_tensors: offloaded (\d+)/(\d+) layers to GPU")


def llama_placement(log):
    """llama.cpp's placement from its load log: (text, layers on a GPU) or (None, None).
    Layer index n_layer in its log is the output head. A log with several loads (llama-bench
    loads again when parameters change) gives the last one."""
    assigned = {}
    for line in log.splitlines():
        m = ASSIGN.search(line)
        if m:
            il = int(m.group(1))
            if il == 0:
                assigned = {}
            assigned[il] = m.group(2)
    if not assigned:
        m = None
        for m in OFFLOADED.finditer(log):
            pass
        return (f"{m.group(1)}/{m.group(2)} offloaded" if m else None), None
    head = max(assigned)  # the output layer: one past the last repeating layer
    parts, start = [], 0
    for il in range(1, head + 1):
        if il == head or assigned[il] != assigned[start]:
            parts.append(f"{start}-{il - 1} {assigned[start]}" if il - 1 > start
                         else f"{start} {assigned[start]}")
            start = il
    gpu = sum(1 for il in range(head) if not assigned[il].startswith("CPU"))
    return f"{', '.join(parts)}; head {assigned[head]}", gpu


def vk_indices(spec):
    """vulkan:N,vulkan:M -> "N,M" for GGML_VK_VISIBLE_DEVICES; None when a part is not a
    Vulkan device (a CPU share: llama.cpp has only -ngl for that)."""
    out = []
    for part in spec.split(","):
        m = re.fullmatch(r"vulkan(?::(\d+))?", part.strip())
        if not m:
            return None
        out.append(m.group(1) or "0")
    return ",".join(out)


def run_llama(args, model, ngl, split, vk_recs):
    env = dict(os.environ)
    cmd = [sbs.llama_tool("llama-bench", True), "-m", model, "-p", args.p, "-n", args.n,
           "-r", str(args.r), "-t", str(args.t), "-o", "json", "-v",
           "-ngl", "999" if ngl == "all" else ngl]
    cmd += shlex.split(args.llama_args)
    if split:
        idx = vk_indices(args.split_device)
        if idx is None:
            say(f"llama.cpp: no layer split over {args.split_device} (only Vulkan devices)")
            return []
        # lavapipe is a CPU device, which llama.cpp hides unless named; the same index twice
        # gives it two logical devices on one physical one
        env["GGML_VK_VISIBLE_DEVICES"] = idx
        cmd += ["-sm", "layer", "-ts", split.replace(",", "/")]
    else:
        env["GGML_VK_VISIBLE_DEVICES"] = sbs.vk_index(args.device)
    rc, out, err = run(cmd, env=env)
    if rc != 0:
        return []
    try:
        rows = [r for r in json.loads(out) if r.get("n_prompt", 0) > 0 or r.get("n_gen", 0) > 0]
    except ValueError as e:
        say(f"llama-bench printed no JSON: {e}")
        return []
    placement, gpu = llama_placement(err)
    if placement is None:
        say("llama-bench -v logged no placement (load_tensors lines)")
    recs = []
    for r in rows:
        pp = r["n_prompt"] > 0
        ref = next((v for v in vk_recs if v["test"]["kind"] == ("prefill" if pp else "decode")),
                   vk_recs[0] if vk_recs else None)
        for rec in sbs.llama_records([r], model, args.device, ref):
            rec["offload"] = {"ngl": ngl, "split": split or "", "gpu_layers": gpu,
                              "gpu_info": r.get("gpu_info"),
                              "placement": placement, "n_gpu_layers_arg": r.get("n_gpu_layers"),
                              "split_mode": r.get("split_mode"),
                              "tensor_split": r.get("tensor_split")}
            recs.append(rec)
    return recs


# ---- tables --------------------------------------------------------------------------------

def rate(recs, kind):
    """(mean, stddev) tok/s; stddev None after a single run (it has none)."""
    r = next((r for r in recs if r["test"]["kind"] == kind), None)
    if not r or not r.get("tps_mean"):
        return None
    one = len(r.get("samples") or []) < 2
    return r["tps_mean"], None if one else (r.get("tps_stddev") or 0.0)


def fmt(x, asked=True):
    if not x:
        return "not run" if asked else "-"
    return f"{x[0]:.2f} (1 run)" if x[1] is None else f"{x[0]:.2f} ± {x[1]:.2f}"


def ratio(a, b):
    return f"{a[0] / b[0]:.2f}" if a and b and b[0] else "-"


def where(recs, asked=True):
    r = recs[0] if recs else None
    if not r:
        return "not run" if asked else "-"
    o = r["offload"]
    text = o.get("placement") or "?"
    if o.get("gpu_layers") is not None:
        text = f"{o['gpu_layers']} on GPU: {text}"
    return text.replace("|", "/")


def header(runs, records, n_configs):
    """The line above the tables: what ran, where, and how loaded the machine was (one part
    per run when several runs' records are shown together)."""
    dev = next((r["device"]["name"] for r in records if r.get("device")),
               next((r["offload"].get("gpu_info") for r in records
                     if r["offload"].get("gpu_info")), "?"))
    vers = {e: sorted({r["engine_version"] for r in records if r["engine"] == e})
            for e in ("vkllm", "llama.cpp")}
    parts = []
    for m in runs:
        over = f", splits over {m['split_device']}" if m.get("splits") else ""
        parts.append(f"`{m.get('command', '?')}` on {m.get('device', '?')}{over}, load average "
                     f"{m.get('load', '?')} at its start ({m.get('when', '?')})")
    return (f"{n_configs} configurations on {dev}; vkllm {', '.join(vers['vkllm']) or '-'}, "
            f"llama.cpp {', '.join(vers['llama.cpp']) or '-'}; " + "; ".join(parts) + ".")


def tables(results, p, n, asked, head):
    """Markdown: the placement and rate table, and with splits the step-cost table.
    results: {(model, ngl, split): (vkllm records, llama.cpp records)}; asked: which
    engines were to run (one not asked shows '-', one that failed 'not run')."""
    pp, tg = f"pp{p}", f"tg{n}"
    lines = [head, ""]
    lines += [f"| model | -ngl | split | vkllm placement | llama.cpp placement | vkllm {pp} | "
              f"llama.cpp {pp} | ratio | vkllm {tg} | llama.cpp {tg} | ratio |",
              "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    av, al = asked
    for (model, ngl, split), (vk, ll) in results.items():
        vp, lp, vt, lt = rate(vk, "prefill"), rate(ll, "prefill"), rate(vk, "decode"), rate(ll, "decode")
        lines.append(f"| {os.path.basename(model)} | {ngl} | {split or '-'} | {where(vk, av)} | "
                     f"{where(ll, al)} | {fmt(vp, av)} | {fmt(lp, al)} | {ratio(vp, lp)} | "
                     f"{fmt(vt, av)} | {fmt(lt, al)} | {ratio(vt, lt)} |")
    split_rows = []
    for (model, ngl, split), (vk, ll) in results.items():
        if not split:
            continue
        base = results.get((model, ngl, ""), ([], []))
        embd = next((r["model"].get("n_embd") for r in vk + base[0]
                     if (r.get("model") or {}).get("n_embd")), None)
        # a prompt longer than a step (512 tokens, both engines' default) takes several
        steps = -(-int(p) // 512)
        for kind, tokens in (("prefill", int(p)), ("decode", 1)):
            if tokens == 0:
                continue
            per_step = tokens / steps if kind == "prefill" else 1
            row = [os.path.basename(model), ngl, split, kind,
                   f"{round(per_step * embd * 4):,}" if embd else "?"]
            for with_split, alone in ((vk, base[0]), (ll, base[1])):
                a, s = rate(alone, kind), rate(with_split, kind)
                ms = lambda x: per_step / x[0] * 1e3  # noqa: E731  (step time, ms)
                # its spread from the rates' (first order), so that noise reads as noise
                sd = lambda x: per_step * x[1] / x[0] ** 2 * 1e3  # noqa: E731
                cost = "-"
                if a and s:
                    cost = f"{ms(s) - ms(a):+.2f}"
                    if a[1] is not None and s[1] is not None:
                        cost += f" ± {(sd(a) ** 2 + sd(s) ** 2) ** 0.5:.2f}"
                row += [f"{ms(a):.2f}" if a else "-", f"{ms(s):.2f}" if s else "-", cost]
            split_rows.append("| " + " | ".join(row) + " |")
    if split_rows:
        lines += ["", "Step time with and without the split at the same -ngl (ms per step: one "
                  f"{min(int(p), 512)}-token prefill step, one decode token), and the activations one "
                  "device boundary passes per step (n_tokens x n_embd x 4 bytes):", "",
                  "| model | -ngl | split | step | bytes per boundary | vkllm alone | vkllm split "
                  "| vkllm cost | llama.cpp alone | llama.cpp split | llama.cpp cost |",
                  "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += split_rows
    return "\n".join(lines)


def fill_doc(path, text):
    with open(path) as f:
        doc = f.read()
    a, b = doc.find(BEGIN), doc.find(END)
    if a < 0 or b < a:
        die(f"{path} has no '{BEGIN}' ... '{END}' section to fill")
    with open(path, "w") as f:
        f.write(doc[:a + len(BEGIN)] + "\n" + text + "\n" + doc[b:])
    say(f"filled the measured section of {path}")


def show(results, records, runs, asked, p, n, failed, doc):
    text = tables(results, p, n, asked, header(runs, records, len(results)))
    if failed:
        text += "\n\nNot run (failed; see the messages above): " + "; ".join(failed)
    print(text)
    if doc:
        fill_doc(doc, text)


def from_json(paths, doc):
    """The tables again from --json files of earlier runs (several: one table), without
    running anything."""
    results, records, runs = {}, [], []
    for path in paths:
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            die(f"{path}: {e}")
        runs.append(d.get("offload_run") or {"command": path})
        for r in d.get("records", []):
            o = r.get("offload")
            if not o:
                continue  # not an offload.py record
            vk, ll = results.setdefault((r["model"].get("path"), o["ngl"], o["split"]), ([], []))
            (vk if r["engine"] == "vkllm" else ll).append(r)
            records.append(r)
    if not records:
        die("no bench/offload.py records in " + ", ".join(paths))
    test = lambda kind, k: next((r["test"][k] for r in records  # noqa: E731
                                 if r["test"]["kind"] == kind), 0)
    asked = (any(r["engine"] == "vkllm" for r in records),
             any(r["engine"] != "vkllm" for r in records))
    show(results, records, runs, asked, test("prefill", "n_prompt"), test("decode", "n_gen"), [],
         doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", action="append", default=[], help="GGUF model (repeatable)")
    ap.add_argument("--synth", default=None,
                    help="synthetic shapes to add, comma separated (vkllm synth --help; "
                         "default llama-3.2-1b when no -m is given)")
    ap.add_argument("--synth-type", default="q4_0", help="their weight type (default q4_0)")
    ap.add_argument("-ngl", "--n-gpu-layers", dest="ngl", default="0,8,16,all",
                    help="layers on the GPU, comma separated; 'all' = every layer and the "
                         "output head (default 0,8,16,all)")
    ap.add_argument("--split", action="append", default=[],
                    help="layer shares over --split-device, e.g. 3,1 (repeatable)")
    ap.add_argument("--device", default="vulkan", help="the GPU of the -ngl runs (vulkan[:N])")
    ap.add_argument("--split-device", default=None,
                    help="the devices of the --split runs, as vkllm run names them, comma "
                         "(or +) separated (default vulkan:0,vulkan:1; vulkan:0,vulkan:0 where "
                         "there is one Vulkan device: two logical devices on it)")
    ap.add_argument("-p", default="512", help="prompt tokens (default 512)")
    ap.add_argument("-n", default="128", help="generated tokens (default 128)")
    ap.add_argument("-r", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("-t", type=int, default=os.cpu_count(), help="threads (default: all cores)")
    ap.add_argument("--vk-relaxed", action="store_true",
                    help="vkllm: the device's own multiply-add in matrix products (faster on "
                         "lavapipe, not the CPU's bits)")
    ap.add_argument("--llama-args", default="",
                    help="more llama-bench options, e.g. '-nopo 1' (no op offload: by default "
                         "its prefill copies CPU-held weights to the GPU for large matmuls)")
    ap.add_argument("--no-llama", action="store_true", help="vkllm only")
    ap.add_argument("--no-vkllm", action="store_true", help="llama.cpp only")
    ap.add_argument("--json", help="write every record (both engines) here")
    ap.add_argument("--doc", help="also write the tables into this file's measured section")
    ap.add_argument("--from-json", nargs="+", metavar="FILE",
                    help="run nothing: print the tables of earlier --json files (and --doc)")
    args = ap.parse_args()
    if args.from_json:
        from_json(args.from_json, args.doc)
        return

    for part in args.ngl.split(","):
        if part != "all" and not part.isdigit():
            die(f"-ngl {args.ngl}: each value is a layer count or 'all'")
    for s in args.split:
        shares = s.split(",")
        try:
            ok = len(shares) >= 2 and all(float(x) >= 0 for x in shares) and \
                sum(float(x) for x in shares) > 0
        except ValueError:
            ok = False
        if not ok:
            die(f"--split {s}: two or more shares >= 0, comma separated, not all zero")
    if args.no_llama and args.no_vkllm:
        die("--no-llama and --no-vkllm: nothing to run")

    vk = sbs.vkllm_bin()
    if args.split_device:
        args.split_device = args.split_device.replace("+", ",")
    else:
        args.split_device = "vulkan:0,vulkan:1" if len(vulkan_devices(vk)) >= 2 \
            else "vulkan:0,vulkan:0"
    for s in args.split:
        if len(s.split(",")) != len(args.split_device.split(",")):
            die(f"--split {s}: one share per device of --split-device {args.split_device}")
    models = list(args.m)
    shapes = args.synth if args.synth is not None else ("" if models else "llama-3.2-1b")
    if not models and args.synth is None:
        models.append(subprocess.run([os.path.join(sbs.ROOT, "scripts", "fetch_model.sh")],
                                     check=True, stdout=subprocess.PIPE,
                                     text=True).stdout.strip())
    models += [synth_model(vk, s, args.synth_type) for s in shapes.split(",") if s]
    for m in models:
        if not os.path.isfile(m):
            die(f"model {m} not found")

    with open("/proc/loadavg") as f:
        args.load = " ".join(f.read().split()[:3])
    args.when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    say(f"{os.cpu_count()} CPUs, load average {args.load} (figures mean little on a busy machine)")

    # Each configuration runs both engines back to back, so that load which comes and goes
    # falls on both alike.
    results, failed, records = {}, [], []
    for model in models:
        for split in [""] + args.split:
            for ngl in args.ngl.split(","):
                if split and ngl == "0":
                    continue  # nothing on the GPUs to split
                vkr = [] if args.no_vkllm else run_vkllm(args, vk, model, ngl, split)
                llr = [] if args.no_llama else run_llama(args, model, ngl, split, vkr)
                name = f"{os.path.basename(model)} -ngl {ngl}{' split ' + split if split else ''}"
                if not args.no_vkllm and not vkr:
                    failed.append(f"vkllm: {name}")
                if not args.no_llama and not llr:
                    failed.append(f"llama.cpp: {name}")
                results[(model, ngl, split)] = (vkr, llr)
                records += vkr + llr
    run_meta = {"command": " ".join(["bench/offload.py"] + [shlex.quote(x) for x in sys.argv[1:]]),
                "device": args.device, "splits": args.split, "split_device": args.split_device,
                "load": args.load, "when": args.when}
    show(results, records, [run_meta], (not args.no_vkllm, not args.no_llama), args.p, args.n,
         failed, args.doc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "vkllm-bench/1", "records": records, "offload_run": run_meta},
                      f, indent=1)
        say(f"wrote {len(records)} records to {args.json}")
    sys.exit(1 if failed or not records else 0)


if __name__ == "__main__":
    main()
