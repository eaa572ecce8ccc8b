#!/usr/bin/env python3
"""`vkllm serve` against llama.cpp's `llama-server` under load, in one run, on the same model.

Each server is started on loopback with the same model file, device (the CPU), threads,
parallel sequences and context per sequence (llama-server's -c is the total its -np slots
share, so it gets parallel x ctx). Then, for each server in turn:

1. every distinct request (one per prompt) is sent alone, one after the other, non-streamed:
   the reference answers (and the servers' warm-up);
2. the load: C concurrent clients each send R requests one after the other (every other one
   streamed), all greedy (temperature 0) with the same max_tokens, prompts taken in turn
   from a fixed list, so each prompt is asked several times, by different clients, at
   different moments of the batch.

Printed per server, side by side: requests ok / failed, answers equal to the same request
alone, aggregate generated tokens per second (all completion tokens of the load over its wall
time), p50 / p95 time to first token (streamed requests: from sending the request to the
first chunk with text) and total latency (non-streamed requests), and the wall time.

vkllm must answer every request, and every greedy answer under load must be the same text as
the request alone (vkllm's batching is batch-invariant); otherwise the exit status is 1.
llama-server's equality is reported, not required: llama.cpp's arithmetic depends on the
batch it runs in.

Builds what is missing: llama-server with scripts/build_llama_cpp.sh (into
$VKLLM_CACHE/build-cpu), vkllm with CMake into build/ (VKLLM_BIN: another). Needs the openai
client (the virtual environment scripts/deps.sh makes, $VKLLM_CACHE/pyenv).

Examples:
  bench/serve_load.sh                                    # defaults below, both servers
  bench/serve_load.py --clients 8 --requests 2 --max-tokens 16 --only vkllm   # the ctest
"""
import argparse
import asyncio
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import openai
except ImportError:
    print("serve_load: error: no openai client for %s: run it with the virtual environment "
          "scripts/deps.sh makes ($VKLLM_CACHE/pyenv/bin/python, or bench/serve_load.sh)"
          % sys.executable, file=sys.stderr)
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("VKLLM_CACHE") or os.path.expanduser("~/.cache/vkllm")

# Varied requests: short questions, instructions with a paragraph to work on, lists, code.
# Their answers differ in length, so sequences join and leave the batch at different steps.
PROMPTS = [
    "Name three colours.",
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "Write a haiku about the sea.",
    "List five fruits that are red.",
    "How many legs does a spider have?",
    "Give me a short tip for sleeping better.",
    "What does a compiler do?",
    "Translate 'good morning' into Spanish and German.",
    "Write a Python function that returns the square of a number.",
    "Why is the sky blue?",
    "Suggest a name for a small bakery.",
    "What is 12 times 7?",
    "Describe a cat to someone who has never seen one.",
    "Summarize in one sentence: The river rose for three days after the storm. The village "
    "moved its animals to the hill, and the old bridge, which had stood for a century, was "
    "finally carried away. When the water fell, the people began to build a new one of stone.",
    "Give two reasons to learn a second language.",
    "What is the difference between weather and climate?",
    "Write the opening line of a mystery novel.",
    "Which planet is closest to the sun?",
    "How do I boil an egg?",
    "Rewrite more politely: Send me the report now.",
    "What is a prime number? Give an example.",
    "Name three instruments in an orchestra.",
    "Explain what a database index is to a beginner.",
    "In the beginning God created the heaven and the earth. And the earth was without form, "
    "and void; and darkness was upon the face of the deep. Who is speaking in this text, and "
    "what is it about?",
    "Give a recipe idea that uses rice and beans.",
    "What are the three states of matter?",
    "Write a two-line poem about autumn leaves.",
    "What does HTTP stand for?",
    "Tell me a fun fact about octopuses.",
    "Plan a one-day visit to a museum in three steps.",
    "Why do we have seasons on Earth?",
]
SYSTEM = "You are a helpful assistant. Answer briefly and plainly."


def say(msg):
    print(f"serve_load: {msg}", file=sys.stderr, flush=True)


def die(msg):
    say(f"error: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def llama_server_bin():
    path = os.path.join(CACHE, "build-cpu", "bin", "llama-server")
    if not os.access(path, os.X_OK):
        say("building llama.cpp's CPU tools and llama-server (scripts/build_llama_cpp.sh)")
        subprocess.run([os.path.join(ROOT, "scripts", "build_llama_cpp.sh")], check=True,
                       stdout=subprocess.DEVNULL)
    if not os.access(path, os.X_OK):
        die(f"{path} not found after scripts/build_llama_cpp.sh")
    return path


class Server:
    """A server process on loopback whose stderr is kept (and shown when it fails)."""

    def __init__(self, name, argv, port=None):
        self.name, self.argv, self.port = name, argv, port
        self.log = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, text=True)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout):
        """Waits until GET /health answers 200 (both servers answer 503 while loading)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.p.poll() is not None:
                die(f"{self.name} exited ({self.p.returncode}) while starting:\n"
                    f"{self.log_text()[-3000:]}")
            if self.port is None:  # vkllm serve --port 0 prints the port it got
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", self.log_text())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.1)
        self.stop()
        die(f"{self.name} not ready after {timeout} s:\n{self.log_text()[-3000:]}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def start_vkllm(a):
    argv = [vkllm_bin(), "serve", "-m", a.model, "--device", "cpu", "-t", str(a.threads),
            "--parallel", str(a.parallel), "-c", str(a.ctx), "--port", "0",
            *shlex.split(a.vkllm_args)]
    s = Server("vkllm serve", argv)
    s.wait_ready(120)
    return s


def start_llama(a):
    port = free_port()
    # -c is the KV cache all slots share: parallel x ctx gives each of the -np slots ctx
    # tokens, as vkllm's -c per sequence (--no-kv-unified: one fixed share per slot).
    argv = [llama_server_bin(), "-m", a.model, "--host", "127.0.0.1", "--port", str(port),
            "-t", str(a.threads), "-tb", str(a.threads), "-np", str(a.parallel),
            "-c", str(a.parallel * a.ctx), "--no-kv-unified", "--no-webui", "-ngl", "0",
            *shlex.split(a.llama_args)]
    s = Server("llama-server", argv, port)
    s.wait_ready(180)
    m = re.search(r"n_ctx_slot = (\d+)", s.log_text())
    if m and int(m.group(1)) != a.ctx:
        s.stop()
        die(f"llama-server's slots have {m.group(1)} tokens of context, not {a.ctx}")
    return s


def model_id(url):
    """The model's id as the server names it (/v1/models), which both accept back."""
    with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as r:
        return json.load(r)["data"][0]["id"]


def request_args(a, prompt):
    return dict(model=a.model_id, messages=[{"role": "system", "content": SYSTEM},
                                     {"role": "user", "content": prompt}],
                temperature=0, max_tokens=a.max_tokens)


async def one(client, a, prompt, stream):
    """Sends one request; returns a record (text, tokens, timings or the error)."""
    rec = {"prompt": prompt, "stream": stream, "ok": False, "text": "", "tokens": 0,
           "ttft": None, "error": None}
    t0 = time.perf_counter()
    try:
        if not stream:
            r = await client.chat.completions.create(**request_args(a, prompt))
            rec["text"] = r.choices[0].message.content or ""
            rec["tokens"] = r.usage.completion_tokens if r.usage else 0
        else:
            chunks, usage = [], None
            s = await client.chat.completions.create(
                **request_args(a, prompt), stream=True, stream_options={"include_usage": True})
            async for ch in s:
                if ch.usage:
                    usage = ch.usage
                if ch.choices and ch.choices[0].delta and ch.choices[0].delta.content:
                    if rec["ttft"] is None:
                        rec["ttft"] = time.perf_counter() - t0
                    chunks.append(ch.choices[0].delta.content)
            rec["text"] = "".join(chunks)
            # without usage, one chunk a token (as both servers send them)
            rec["tokens"] = usage.completion_tokens if usage else len(chunks)
        rec["ok"] = True
    except Exception as e:  # a failure is counted and shown, never retried
        cause = e.__cause__ or e.__context__
        rec["error"] = f"{type(e).__name__}: {e}" + (
            f" ({type(cause).__name__}: {cause})" if cause else "") + (
            f" after {time.perf_counter() - t0:.1f} s, {'streamed' if stream else 'not streamed'}")
    rec["latency"] = time.perf_counter() - t0
    return rec


def client_for(url):
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0,
                              timeout=600)


async def alone(url, a):
    """Each distinct request alone, in turn: the reference answers."""
    c = client_for(url)
    out = {}
    for p in PROMPTS[:a.prompts]:
        rec = await one(c, a, p, False)
        if not rec["ok"]:
            die(f"{url}: a request alone failed: {rec['error']}")
        out[p] = rec["text"]
    await c.close()
    return out


async def load(url, a):
    """a.clients clients at once, each a.requests requests in a row (odd ones streamed)."""
    async def client_run(i):
        c = client_for(url)
        recs = []
        for j in range(a.requests):
            # every prompt as often as the others; the shift by i gives a prompt to clients
            # of both parities, so each is asked streamed and not
            p = PROMPTS[(i * a.requests + j + i) % a.prompts]
            recs.append(await one(c, a, p, stream=(i + j) % 2 == 1))
        await c.close()
        return recs

    t0 = time.perf_counter()
    per_client = await asyncio.gather(*(client_run(i) for i in range(a.clients)))
    return [r for rs in per_client for r in rs], time.perf_counter() - t0


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    # nearest rank: the smallest value with at least q of the values at or below it
    return xs[min(len(xs), max(1, math.ceil(q * len(xs)))) - 1]


def summarize(name, recs, wall, ref):
    ok = [r for r in recs if r["ok"]]
    equal = sum(1 for r in ok if r["text"] == ref.get(r["prompt"]))
    toks = sum(r["tokens"] for r in ok)
    ttft = [r["ttft"] for r in ok if r["stream"] and r["ttft"] is not None]
    lat = [r["latency"] for r in ok if not r["stream"]]
    return {"name": name, "n": len(recs), "ok": len(ok), "failed": len(recs) - len(ok),
            "equal": equal, "tokens": toks, "tok_s": toks / wall if wall > 0 else 0.0,
            "ttft50": pct(ttft, 0.5), "ttft95": pct(ttft, 0.95), "lat50": pct(lat, 0.5),
            "lat95": pct(lat, 0.95), "wall": wall,
            "errors": [r["error"] for r in recs if not r["ok"]],
            "diffs": [(r["prompt"], ref.get(r["prompt"]), r["text"]) for r in ok
                      if r["text"] != ref.get(r["prompt"])]}


def table(rows):
    def ms(x):
        return "-" if x is None else f"{x * 1000:.0f}"
    head = ["", *[r["name"] for r in rows]]
    lines = [
        ["requests ok / failed", *[f"{r['ok']} / {r['failed']}" for r in rows]],
        ["answers equal to alone", *[f"{r['equal']} / {r['ok']}" for r in rows]],
        ["generated tokens", *[str(r["tokens"]) for r in rows]],
        ["aggregate generated tok/s", *[f"{r['tok_s']:.1f}" for r in rows]],
        ["TTFT p50 / p95 ms (streamed)", *[f"{ms(r['ttft50'])} / {ms(r['ttft95'])}"
                                           for r in rows]],
        ["latency p50 / p95 ms (non-streamed)", *[f"{ms(r['lat50'])} / {ms(r['lat95'])}"
                                                  for r in rows]],
        ["wall time s", *[f"{r['wall']:.1f}" for r in rows]],
    ]
    w = [max(len(str(x[k])) for x in [head, *lines]) for k in range(len(head))]
    out = ["| " + " | ".join(str(x).ljust(w[k]) for k, x in enumerate(head)) + " |",
           "|" + "|".join("-" * (w[0] + 2) if k == 0 else "-" * (w[k] + 1) + ":"
                          for k in range(len(head))) + "|"]
    for ln in lines:
        out.append("| " + " | ".join(x.ljust(w[k]) if k == 0 else x.rjust(w[k])
                                     for k, x in enumerate(ln)) + " |")
    return "\n".join(out)


def run_server(name, start, a):
    say(f"starting {name}")
    s = start(a)
    try:
        a.model_id = model_id(s.url)
        say(f"{name}: {a.prompts} requests alone")
        ref = asyncio.run(alone(s.url, a))
        say(f"{name}: {a.clients} clients x {a.requests} requests")
        recs, wall = asyncio.run(load(s.url, a))
    finally:
        rc = s.stop()
    if rc not in (0, None) and name.startswith("vkllm"):
        die(f"{name} exited {rc} after SIGTERM:\n{s.log_text()[-3000:]}")
    row = summarize(name, recs, wall, ref)
    row["argv"] = " ".join(os.path.basename(x) if k == 0 else x for k, x in enumerate(s.argv))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", help="GGUF model (default: scripts/fetch_model.sh's)")
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count(), help="CPU threads")
    ap.add_argument("--parallel", type=int, default=4, help="sequences at once (default 4)")
    ap.add_argument("-c", "--ctx", type=int, default=1024,
                    help="context per sequence (default 1024)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    ap.add_argument("--requests", type=int, default=8, help="requests per client (default 8)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens (default 64)")
    ap.add_argument("--prompts", type=int, default=len(PROMPTS),
                    help=f"distinct prompts used (default all {len(PROMPTS)})")
    ap.add_argument("--only", choices=["vkllm", "llama"], help="one server only")
    ap.add_argument("--vkllm-args", default="", help="more options for vkllm serve (one string)")
    ap.add_argument("--llama-args", default="",
                    help="more options for llama-server (one string, e.g. '--poll 0')")
    a = ap.parse_args()
    for k in ("threads", "parallel", "ctx", "clients", "requests", "max_tokens", "prompts"):
        if getattr(a, k) < 1:
            die(f"--{k.replace('_', '-')} must be at least 1")
    a.prompts = min(a.prompts, len(PROMPTS))
    if not a.model:
        a.model = subprocess.run([os.path.join(ROOT, "scripts", "fetch_model.sh")], check=True,
                                 stdout=subprocess.PIPE, text=True).stdout.strip()
    if not os.path.isfile(a.model):
        die(f"model {a.model} not found")

    rows = []
    if a.only != "llama":
        rows.append(run_server("vkllm serve", start_vkllm, a))
    if a.only != "vkllm":
        rows.append(run_server("llama-server", start_llama, a))

    print(f"{os.path.basename(a.model)}, CPU, {a.threads} threads, {a.parallel} sequences of "
          f"{a.ctx} tokens; {a.clients} clients x {a.requests} requests (every other one "
          f"streamed), {a.prompts} distinct prompts, greedy, max_tokens {a.max_tokens}")
    for name, extra in (("vkllm serve", a.vkllm_args), ("llama-server", a.llama_args)):
        if extra:
            print(f"{name} also ran with: {extra}")
    print(table(rows))
    for r in rows:
        print(f"{r['name']}: {r['argv']}")
    status = 0
    for r in rows:
        for e in r["errors"][:5]:
            print(f"{r['name']}: failed: {e}")
        for p, want, got in r["diffs"][:3]:
            print(f"{r['name']}: under load differs from alone: {p!r}\n  alone: {want!r}\n"
                  f"  load:  {got!r}")
        if r["name"].startswith("vkllm"):
            if r["failed"] or r["ok"] != a.clients * a.requests or r["equal"] != r["ok"]:
                print(f"FAIL: vkllm serve: {r['failed']} failed, {r['ok'] - r['equal']} answers "
                      "differ from the same request alone")
                status = 1
            else:
                print(f"ok: vkllm serve: all {r['ok']} requests answered, each equal to the "
                      "same request alone")
    return status


if __name__ == "__main__":
    sys.exit(main())
