#!/usr/bin/env python3
"""Many LoRA adapters at once: `vkllm serve` and llama.cpp's `llama-server`, side by side.

Both servers load the same four adapters of the default model (written by tests/lora_make.py
with llama.cpp's gguf-py, as tests/cli_lora.sh makes them) on the CPU, with the same threads,
parallel sequences and context per sequence. Then, for each server:

  mixed    N requests at once, request i on adapter i % 5 (the four, and the base model);
  grouped  the same requests one adapter after another: the requests of one adapter at
           once, then the next adapter's (what a server that cannot batch different
           adapters in one step has to do).

vkllm picks a request's adapter by its model field (the adapter's name); llama-server by the
request's "lora" list (its --lora adapters loaded with --lora-init-without-apply, the
request's one at scale 1). All greedy, the same max_tokens. Printed: aggregate generated
tokens per second and wall time of each mode, and whether every vkllm answer in the mixed
mode equals the same request's in the grouped mode (exit 1 if not).

usage: bench/lora_mix.py [-n 16] [--max-tokens 64] [-t THREADS] [--only vkllm]
Needs the sdist (scripts/fetch_vocabs.sh), numpy in $VKLLM_CACHE/pyenv (scripts/deps.sh),
llama-server in $VKLLM_CACHE/build-cpu (scripts/build_llama_cpp.sh).
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("VKLLM_CACHE") or os.path.expanduser("~/.cache/vkllm")
SDIST = os.path.join(CACHE, "pip", "llama_cpp_python-0.3.36.tar.gz")
ADAPTERS = [("a32", "--rank 8 --alpha 16 --seed 1"),
            ("b16", "--rank 16 --alpha 8 --seed 2 --type f16 --targets q,v,down --amp 2"),
            ("c32r4", "--rank 4 --alpha 0 --seed 3 --targets o,gate,up --amp 3"),
            ("d16r6", "--rank 6 --alpha 12 --seed 4 --type f16 --targets k,down --amp 3")]
PROMPTS = ["Write a short story about a lighthouse keeper.",
           "Explain how a bicycle stays upright.",
           "List five uses for a paperclip.",
           "What is the capital of Australia and why was it chosen?",
           "Describe the water cycle to a child.",
           "Give three tips for learning a new language.",
           "Summarize the plot of a heist movie in two sentences.",
           "Why do cats purr?"]


def say(msg):
    print("lora_mix: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def post(port, body):
    rq = urllib.request.Request("http://127.0.0.1:%d/v1/completions" % port,
                                data=json.dumps(body).encode(), method="POST",
                                headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=1800) as r:
        return json.loads(r.read().decode())


def wait_ready(port, proc, name):
    t0 = time.time()
    while time.time() - t0 < 300:
        if proc.poll() is not None:
            sys.exit("lora_mix: %s exited (%d)" % (name, proc.returncode))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.3)
    sys.exit("lora_mix: %s did not start" % name)


def run_batch(port, bodies):
    """Sends the bodies at once; returns (texts, completion tokens, seconds)."""
    out = [None] * len(bodies)

    def one(i):
        out[i] = post(port, bodies[i])
    t0 = time.time()
    th = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    if any(o is None for o in out):
        sys.exit("lora_mix: a request failed")
    return ([o["choices"][0]["text"] for o in out],
            sum(o["usage"]["completion_tokens"] for o in out), dt)


def measure(name, port, body_of, n):
    sets = [i % 5 for i in range(n)]
    bodies = [body_of(i, sets[i]) for i in range(n)]
    run_batch(port, bodies[:2])  # warm-up
    texts_mix, tok_mix, dt_mix = run_batch(port, bodies)
    texts_grp = [None] * n
    tok_grp, dt_grp = 0, 0.0
    for k in range(5):
        idx = [i for i in range(n) if sets[i] == k]
        t, tok, dt = run_batch(port, [bodies[i] for i in idx])
        for j, i in enumerate(idx):
            texts_grp[i] = t[j]
        tok_grp += tok
        dt_grp += dt
    same = sum(a == b for a, b in zip(texts_mix, texts_grp))
    return {"name": name, "mix": (tok_mix / dt_mix, dt_mix), "grp": (tok_grp / dt_grp, dt_grp),
            "same": same, "n": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("-n", type=int, default=16, help="requests (default 16)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("-c", "--ctx", type=int, default=512, help="context per sequence")
    ap.add_argument("--only", choices=["vkllm", "llama-server"])
    a = ap.parse_args()
    model = a.model or subprocess.check_output([os.path.join(ROOT, "scripts", "fetch_model.sh")],
                                               text=True).strip().splitlines()[-1]
    vk = os.environ.get("VKLLM_BIN") or os.path.join(ROOT, "build", "vkllm")
    tmp = tempfile.mkdtemp(prefix="lora_mix.")
    with tarfile.open(SDIST) as tf:
        members = [m for m in tf.getmembers() if "/vendor/llama.cpp/gguf-py/" in m.name]
        tf.extractall(tmp, members=members)
    env = dict(os.environ, PYTHONPATH=os.path.join(
        tmp, "llama_cpp_python-0.3.36", "vendor", "llama.cpp", "gguf-py"))
    paths = []
    for name, opts in ADAPTERS:
        p = os.path.join(tmp, name + ".gguf")
        subprocess.check_call([sys.executable, os.path.join(ROOT, "tests", "lora_make.py"), model,
                               p, *opts.split(), "--name", name], env=env,
                              stdout=subprocess.DEVNULL)
        paths.append(p)
    rows = []
    mt = a.max_tokens

    def prompt(i):
        return PROMPTS[i % len(PROMPTS)]
    if a.only in (None, "vkllm"):
        port = free_port()
        argv = [vk, "serve", "-m", model, "--device", "cpu", "--port", str(port), "-t",
                str(a.threads), "--parallel", str(a.n), "-c", str(a.ctx)]
        for p in paths:
            argv += ["--lora", p]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, proc, "vkllm serve")
            base = os.path.basename(model)
            rows.append(measure("vkllm serve", port, lambda i, k: {
                "model": ADAPTERS[k][0] if k < 4 else base, "prompt": prompt(i),
                "max_tokens": mt, "temperature": 0, "ignore_eos": True}, a.n))
        finally:
            proc.terminate()
            proc.wait()
    if a.only in (None, "llama-server"):
        port = free_port()
        ls = os.path.join(CACHE, "build-cpu", "bin", "llama-server")
        argv = [ls, "-m", model, "--port", str(port), "-t", str(a.threads), "-np", str(a.n),
                "-c", str(a.n * a.ctx), "--lora-init-without-apply"]
        for p in paths:
            argv += ["--lora", p]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            wait_ready(port, proc, "llama-server")
            rows.append(measure("llama-server", port, lambda i, k: {
                "prompt": prompt(i), "n_predict": mt, "max_tokens": mt, "temperature": 0,
                "ignore_eos": True,
                "lora": [{"id": j, "scale": 1.0 if j == k else 0.0} for j in range(4)]}, a.n))
        finally:
            proc.terminate()
            proc.wait()
    print("| server | requests | mixed tok/s | mixed s | grouped tok/s | grouped s | "
          "mixed / grouped | mixed = grouped answers |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.2fx | %d of %d |" % (
            r["name"], r["n"], r["mix"][0], r["mix"][1], r["grp"][0], r["grp"][1],
            r["mix"][0] / r["grp"][0], r["same"], r["n"]))
    vk_rows = [r for r in rows if r["name"] == "vkllm serve"]
    if vk_rows and vk_rows[0]["same"] != vk_rows[0]["n"]:
        say("vkllm's answers in the mixed batch differ from the grouped ones")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
