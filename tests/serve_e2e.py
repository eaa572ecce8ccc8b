"""vkllm serve end to end, driven by the official openai client (PyPI) and raw HTTP.

Starts `vkllm serve --device cpu --port 0` servers on loopback and checks: chat and text
completions, streamed and not, n = 2, stop strings, seed reproducibility, greedy answers equal
to `vkllm run --temp 0`, usage in streams, cached_tokens on a repeated prompt, ignore_eos,
tokenize/detokenize, every error path's status and error object, 429 when full, a client that
disconnects mid-stream (its sequence is freed), 8 concurrent clients x 2 requests each equal
to the same request alone, 503 while loading, and a clean exit (0) on SIGTERM with a stream in
flight; /metrics' latency histograms (parsed by prometheus_client) and the chat page at /.
Prints one line per check; exits 1 on any failure. Env: VKLLM_BIN, VKLLM_MODEL.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    import openai
except ImportError:
    print("FAIL: the openai Python client is not installed for %s (scripts/deps.sh makes the "
          "virtual environment tests/cli_serve.sh uses)" % sys.executable)
    sys.exit(1)

BIN = os.environ.get("VKLLM_BIN", "build/vkllm")
MODEL = os.environ.get("VKLLM_MODEL", "")
SANITIZED = os.environ.get("VKLLM_TEST_SANITIZED") == "1"
failures = []
passes = []


def check(name, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", name, (": " + str(detail)) if detail else ""),
          flush=True)
    (passes if cond else failures).append(name)
    return cond


class Server:
    def __init__(self, *args, model=MODEL, wait_ready=True):
        self.lines = []
        self.p = subprocess.Popen([BIN, "serve", "-m", model, "--device", "cpu", "--port", "0",
                                   *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        self.ready = threading.Event()
        self.port = None
        threading.Thread(target=self._drain, daemon=True).start()
        t0 = time.time()
        while self.port is None and time.time() - t0 < 30 and self.p.poll() is None:
            time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("the server did not start: %s" % "".join(self.lines))
        self.url = "http://127.0.0.1:%d" % self.port
        if wait_ready and not self.ready.wait(60):
            raise RuntimeError("the server did not get ready: %s" % "".join(self.lines))

    def _drain(self):
        for line in self.p.stderr:
            self.lines.append(line)
            if "listening on http://" in line:
                self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            if "vkllm serve: ready" in line:
                self.ready.set()

    def client(self, key="none"):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None


def http(url, method="GET", body=None, headers=None):
    """(status, parsed JSON or text) of one request."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def is_error_object(j, param=None, code=None):
    e = j.get("error") if isinstance(j, dict) else None
    return (isinstance(e, dict) and set(e) == {"message", "type", "param", "code"}
            and isinstance(e["message"], str) and e["message"] and isinstance(e["type"], str)
            and (param is None or e["param"] == param) and (code is None or e["code"] == code))


def metric(srv, name, headers=None):
    _, text = http(srv.url + "/metrics", headers=headers)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def vkllm_run(prompt, n):
    r = subprocess.run([BIN, "run", "-m", MODEL, "--device", "cpu", "--temp", "0", "-n", str(n),
                        "--no-echo", "-p", prompt], capture_output=True, text=True, timeout=120)
    return r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout


NGEN = 12 if SANITIZED else 24
CHAT = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name three colours of the rainbow."}]


def stream_text(stream):
    texts, finishes, usage, n_chunks = {}, {}, None, 0
    for ch in stream:
        n_chunks += 1
        if ch.usage is not None:
            usage = ch.usage
        for c in ch.choices:
            piece = c.delta.content if hasattr(c, "delta") else c.text
            texts[c.index] = texts.get(c.index, "") + (piece or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    return texts, finishes, usage, n_chunks


def test_main(srv):
    cl = srv.client()
    st, j = http(srv.url + "/health")
    check("GET /health: 200 {status: ok}", st == 200 and j == {"status": "ok"}, (st, j))
    ids = [m.id for m in cl.models.list().data]
    check("GET /v1/models: the model and its alias", ids == [os.path.basename(MODEL), "smol"], ids)

    # chat, not streamed and streamed
    r = cl.chat.completions.create(model="smol", messages=CHAT, temperature=0, max_tokens=NGEN)
    text = r.choices[0].message.content
    u = r.usage
    check("chat: an answer", r.object == "chat.completion" and r.id.startswith("chatcmpl-")
          and text and r.choices[0].finish_reason in ("stop", "length") and r.model == "smol",
          repr(text))
    check("chat: usage adds up", u.total_tokens == u.prompt_tokens + u.completion_tokens > 0
          and u.prompt_tokens_details.cached_tokens >= 0, u)
    s = cl.chat.completions.create(model=os.path.basename(MODEL), messages=CHAT, temperature=0,
                                   max_tokens=NGEN, stream=True,
                                   stream_options={"include_usage": True})
    texts, fins, usage, n_chunks = stream_text(s)
    check("chat stream: the same text as not streamed", texts.get(0) == text, (texts, text))
    check("chat stream: finish reason and usage chunk",
          fins.get(0) == r.choices[0].finish_reason and usage is not None
          and usage.completion_tokens == u.completion_tokens and n_chunks > 3, (fins, usage))

    # completions: greedy equals vkllm run --temp 0, streamed too
    prompt = "The capital of France is"
    c = cl.completions.create(model="smol", prompt=prompt, temperature=0, max_tokens=NGEN)
    ref = vkllm_run(prompt, NGEN)
    check("completion: greedy equals `vkllm run --temp 0`", c.choices[0].text == ref,
          (c.choices[0].text, ref))
    check("completion: shape", c.object == "text_completion" and c.id.startswith("cmpl-")
          and c.usage.completion_tokens == NGEN and c.choices[0].finish_reason == "length", c)
    texts, fins, usage, _ = stream_text(cl.completions.create(
        model="smol", prompt=prompt, temperature=0, max_tokens=NGEN, stream=True))
    check("completion stream: the same text, no usage unasked", texts.get(0) == ref
          and fins.get(0) == "length" and usage is None, texts)

    # stop strings: a piece from the middle of the greedy answer, as a string and in a list
    full = ref
    cut = full[len(full) // 2: len(full) // 2 + 3]
    want = full[:full.index(cut)]
    for stop in (cut, ["zzqq", cut]):
        c = cl.completions.create(model="smol", prompt=prompt, temperature=0, max_tokens=NGEN,
                                  stop=stop)
        texts, fins, _, _ = stream_text(cl.completions.create(
            model="smol", prompt=prompt, temperature=0, max_tokens=NGEN, stop=stop, stream=True))
        check("stop %r: the text ends before it, streamed too" % (stop,),
              c.choices[0].text == want and c.choices[0].finish_reason == "stop"
              and texts.get(0) == want and fins.get(0) == "stop", (c.choices[0].text, texts, want))

    # n = 2; seeds
    c = cl.completions.create(model="smol", prompt="Once upon a time", temperature=0.8, seed=7,
                              max_tokens=NGEN, n=2)
    check("n = 2: two choices, usage counts both",
          sorted(x.index for x in c.choices) == [0, 1] and all(x.text for x in c.choices)
          and c.usage.completion_tokens == 2 * NGEN, [x.text for x in c.choices])
    c2 = cl.completions.create(model="smol", prompt="Once upon a time", temperature=0.8, seed=7,
                               max_tokens=NGEN, n=2)
    check("seed: the same seed gives the same texts at temperature 0.8",
          [x.text for x in c.choices] == [x.text for x in c2.choices], [x.text for x in c2.choices])
    others = {cl.completions.create(model="smol", prompt="Once upon a time", temperature=0.8,
                                    seed=s, max_tokens=NGEN).choices[0].text for s in (8, 9, 10)}
    check("seed: other seeds give other texts", len(others | {c.choices[0].text}) > 1, others)
    g = cl.chat.completions.create(model="smol", messages=CHAT, temperature=0, max_tokens=NGEN,
                                   n=2)
    check("n = 2 greedy: both the single answer",
          [x.message.content for x in g.choices] == [text, text], g.choices)
    texts, fins, usage, _ = stream_text(cl.chat.completions.create(
        model="smol", messages=CHAT, temperature=0, max_tokens=NGEN, n=2, stream=True,
        stream_options={"include_usage": True}))
    check("n = 2 streamed: both choices, both finished", texts == {0: text, 1: text}
          and len(fins) == 2 and usage.completion_tokens == 2 * u.completion_tokens, texts)

    # the prefix cache: a long prompt again
    long_sys = [{"role": "system", "content": "You answer questions about the sea. " * 12},
                {"role": "user", "content": "What is salt water?"}]
    a = cl.chat.completions.create(model="smol", messages=long_sys, temperature=0, max_tokens=4)
    b = cl.chat.completions.create(model="smol", messages=long_sys, temperature=0, max_tokens=4)
    check("usage.prompt_tokens_details.cached_tokens > 0 on a repeated prompt",
          b.usage.prompt_tokens_details.cached_tokens > 0
          and b.usage.prompt_tokens == a.usage.prompt_tokens,
          (a.usage.prompt_tokens_details, b.usage.prompt_tokens_details))

    # ignore_eos: a short answer runs on to max_tokens
    short = [{"role": "user", "content": "Answer with one word: is water wet?"}]
    a = cl.chat.completions.create(model="smol", messages=short, temperature=0, max_tokens=40)
    b = cl.chat.completions.create(model="smol", messages=short, temperature=0, max_tokens=16,
                                   extra_body={"ignore_eos": True})
    check("ignore_eos: exactly max_tokens tokens past the answer's end",
          a.choices[0].finish_reason == "stop" and a.usage.completion_tokens < 16
          and b.usage.completion_tokens == 16 and b.choices[0].finish_reason == "length"
          and b.choices[0].message.content.startswith(a.choices[0].message.content),
          (a.choices[0].message.content, b.choices[0].message.content))

    # tokenize / detokenize
    st, j = http(srv.url + "/tokenize", "POST", {"content": "Hello world"})
    st2, j2 = http(srv.url + "/detokenize", "POST", {"tokens": j.get("tokens", [])})
    check("tokenize / detokenize round trip", st == 200 and st2 == 200 and len(j["tokens"]) == 2
          and j2 == {"content": "Hello world"}, (j, j2))

    # errors: status and OpenAI's error object
    u_chat = srv.url + "/v1/chat/completions"
    msgs = [{"role": "user", "content": "hi"}]
    cases = [
        ("malformed JSON", u_chat, "POST", b'{"messages": [', 400, None, None),
        ("wrong type", u_chat, "POST", {"messages": msgs, "temperature": "hot"}, 400,
         "temperature", None),
        ("message without content", u_chat, "POST", {"messages": [{"role": "user"}]}, 400,
         "messages[0].content", None),
        ("body not an object", u_chat, "POST", b"[1, 2]", 400, None, None),
        ("negative max_tokens", u_chat, "POST", {"messages": msgs, "max_tokens": -3}, 400,
         "max_tokens", None),
        ("n over the limit", u_chat, "POST", {"messages": msgs, "n": 100}, 400, "n", None),
        ("huge body", u_chat, "POST", b'{"x": "' + b"a" * (2 << 20) + b'"}', 413, None,
         "request_too_large"),
        ("unknown model", u_chat, "POST", {"model": "gpt-4o", "messages": msgs}, 404, "model",
         "model_not_found"),
        ("unknown endpoint", srv.url + "/v1/embeddings", "POST", {"input": "x"}, 404, None,
         "unknown_url"),
        ("wrong method", u_chat, "GET", None, 405, None, "method_not_allowed"),
        ("prompt over the context", srv.url + "/v1/completions", "POST",
         {"prompt": "hello " * 3000, "max_tokens": 4}, 400, "prompt", "context_length_exceeded"),
        ("logprobs (not supported yet)", u_chat, "POST", {"messages": msgs, "logprobs": True},
         400, "logprobs", "unsupported_parameter"),
        ("response_format json_schema (not supported yet)", u_chat, "POST",
         {"messages": msgs, "response_format": {"type": "json_schema"}}, 400, "response_format",
         "unsupported_parameter"),
        ("detokenize a bad id", srv.url + "/detokenize", "POST", {"tokens": [10 ** 7]}, 400,
         "tokens", None),
    ]
    for name, url, method, body, want, param, code in cases:
        st, j = http(url, method, body)
        check("error: %s -> %d" % (name, want), st == want and is_error_object(j, param, code),
              (st, j))
    try:
        cl.chat.completions.create(model="smol", messages=msgs, logprobs=True)
        check("openai client: BadRequestError for logprobs", False)
    except openai.BadRequestError as e:
        check("openai client: BadRequestError for logprobs", e.code == "unsupported_parameter")
    try:
        cl.completions.create(model="smol", prompt="hello " * 3000, max_tokens=2)
        check("openai client: context_length_exceeded", False)
    except openai.BadRequestError as e:
        check("openai client: context_length_exceeded", e.code == "context_length_exceeded")
    try:
        cl.chat.completions.create(model="nope", messages=msgs)
        check("openai client: NotFoundError for an unknown model", False)
    except openai.NotFoundError:
        check("openai client: NotFoundError for an unknown model", True)

    # a client that disconnects mid-stream: its sequence is freed, the server goes on
    before = metric(srv, "vkllm_requests_disconnected_total")
    sock = socket.create_connection(("127.0.0.1", srv.port))
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 3000, "stream": True,
                       "ignore_eos": True}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(4096)
    running_mid = metric(srv, "vkllm_requests_running")
    sock.close()
    t0 = time.time()
    while time.time() - t0 < 10 and (metric(srv, "vkllm_requests_running") != 0
                                     or metric(srv, "vkllm_requests_inflight") != 0):
        time.sleep(0.05)
    check("disconnect mid-stream: cancelled, the engine's running count back to 0 in %.2f s"
          % (time.time() - t0), running_mid == 1 and metric(srv, "vkllm_requests_running") == 0
          and metric(srv, "vkllm_requests_inflight") == 0
          and metric(srv, "vkllm_requests_disconnected_total") == before + 1, running_mid)
    r2 = cl.chat.completions.create(model="smol", messages=CHAT, temperature=0, max_tokens=NGEN)
    check("after the disconnect: the same answer", r2.choices[0].message.content == text)

    # 8 concurrent clients x 2 requests: each equals the same request alone
    prompts = ["Write a haiku about rain.", "What is 2 + 2?", "List three fruits.",
               "Say hello in French."]
    alone = [cl.chat.completions.create(model="smol", messages=[{"role": "user", "content": p}],
                                        temperature=0, max_tokens=NGEN).choices[0].message.content
             for p in prompts]
    results, errors = {}, []

    def client_thread(k):
        try:
            c8 = srv.client()
            for rep in range(2):
                i = (k + rep) % len(prompts)
                m = [{"role": "user", "content": prompts[i]}]
                if (k + rep) % 2:
                    t, _, _, _ = stream_text(c8.chat.completions.create(
                        model="smol", messages=m, temperature=0, max_tokens=NGEN, stream=True))
                    results[(k, rep)] = (i, t.get(0))
                else:
                    results[(k, rep)] = (i, c8.chat.completions.create(
                        model="smol", messages=m, temperature=0,
                        max_tokens=NGEN).choices[0].message.content)
        except Exception as e:  # noqa: BLE001 (any failure is a failed check)
            errors.append(repr(e))

    t0 = time.time()
    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same = all(alone[i] == t for i, t in results.values())
    check("8 concurrent clients x 2 requests (half streamed): all answered, each equal to the "
          "request alone (%.1f s)" % (time.time() - t0),
          not errors and len(results) == 16 and same, errors or
          [(i, t) for i, t in results.values() if alone[i] != t])


def test_key_and_limits():
    with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as f:
        f.write("sekrit-123\n")
    srv = Server("--api-key-file", f.name, "--parallel", "1", "--queue", "0", "-c", "256")
    os.unlink(f.name)
    msgs = [{"role": "user", "content": "hi"}]
    st, j = http(srv.url + "/v1/models")
    check("api key: none -> 401", st == 401 and is_error_object(j, None, "invalid_api_key"), j)
    st, j = http(srv.url + "/v1/models", headers={"Authorization": "Bearer wrong"})
    check("api key: wrong -> 401", st == 401 and is_error_object(j, None, "invalid_api_key"), j)
    st, j = http(srv.url + "/health")
    check("api key: /health needs none", st == 200, (st, j))
    test_metrics_and_page(srv, key="sekrit-123")
    try:
        srv.client("wrong").models.list()
        check("openai client: AuthenticationError", False)
    except openai.AuthenticationError:
        check("openai client: AuthenticationError", True)
    cl = srv.client("sekrit-123")
    r = cl.chat.completions.create(model=os.path.basename(MODEL), messages=msgs, temperature=0,
                                   max_tokens=4)
    check("api key: right -> 200", bool(r.choices[0].message.content), r)

    # one sequence, no queue: a second request while one streams gets 429
    s = cl.completions.create(model=os.path.basename(MODEL), prompt="Once upon a time",
                              max_tokens=200, stream=True, extra_body={"ignore_eos": True})
    it = iter(s)
    next(it)
    try:
        cl.completions.create(prompt="x", model=os.path.basename(MODEL), max_tokens=2)
        check("full: 429", False)
    except openai.RateLimitError as e:
        check("full: 429 with the error object", e.status_code == 429)
    s.close()
    auth = {"Authorization": "Bearer sekrit-123"}
    t0 = time.time()
    while time.time() - t0 < 10 and metric(srv, "vkllm_requests_inflight", auth) != 0:
        time.sleep(0.02)
    check("a closed stream frees its place at once (%.2f s)" % (time.time() - t0),
          metric(srv, "vkllm_requests_inflight", auth) == 0)

    # SIGTERM with a stream in flight: it ends, the server exits 0
    s = cl.completions.create(model=os.path.basename(MODEL), prompt="Once upon a time",
                              max_tokens=400, stream=True, extra_body={"ignore_eos": True})
    it = iter(s)
    next(it)
    t0 = time.time()
    rc = srv.stop()
    ended = True
    try:
        for _ in it:
            pass
    except Exception:  # noqa: BLE001 (the connection is closed: what we want)
        ended = True
    check("SIGTERM with a stream in flight: exit 0 in %.2f s" % (time.time() - t0),
          rc == 0 and ended and any("stopped" in line for line in srv.lines), srv.lines[-3:])


def test_loading():
    """/health is 503 while the model loads: a FIFO holds the load in open() until we write."""
    d = tempfile.mkdtemp()
    fifo = os.path.join(d, "slow.gguf")
    os.mkfifo(fifo)
    srv = Server(model=fifo, wait_ready=False)
    st, j = http(srv.url + "/health")
    st2, j2 = http(srv.url + "/v1/models")
    check("loading: /health and /v1/models answer 503", st == 503 and st2 == 503
          and is_error_object(j) and is_error_object(j2), (st, j, st2))
    try:  # opening it lets the load go on; the loader may close it before this writes
        with open(fifo, "wb") as w:
            w.write(b"not a model")
    except BrokenPipeError:
        pass
    rc = srv.p.wait(30)
    check("a model that fails to load: exit 1 with the error", rc == 1
          and any("error:" in line for line in srv.lines), srv.lines)
    os.unlink(fifo)
    os.rmdir(d)
    r = subprocess.run([BIN, "serve", "--host", "0.0.0.0", "-m", "/nonexistent.gguf"],
                       capture_output=True, text=True)
    check("no API key on a non-loopback address: a warning", r.returncode == 1
          and "warning" in r.stderr and "API key" in r.stderr, r.stderr)
    r = subprocess.run([BIN, "serve", "--port", "70000"], capture_output=True, text=True)
    check("bad option: exit 1", r.returncode == 1 and "error:" in r.stderr, r.stderr)


def test_metrics_and_page(srv, key=None):
    """The latency histograms and the cache gauge of /metrics, parsed by prometheus_client's
    text parser; the chat page at / (with a key configured, / needs none)."""
    hdr = {"Authorization": "Bearer " + key} if key else {}
    page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apps", "vkllm",
                        "serve_page.html")
    with open(page, "rb") as f:
        want = f.read()
    for path in ("/", "/index.html"):
        with urllib.request.urlopen(srv.url + path, timeout=60) as r:
            h, body = r.headers, r.read()
        csp = h.get("Content-Security-Policy", "")
        check("GET %s%s: the chat page, its CSP and Cache-Control" % (
              path, " (no key needed)" if key else ""), r.status == 200 and body == want
              and h.get("Content-Type", "").startswith("text/html")
              and "default-src 'none'" in csp and "connect-src 'self'" in csp
              and h.get("Cache-Control") == "no-cache", dict(h))
    if key:
        return
    st, _ = http(srv.url + "/", method="POST", body={})
    check("POST /: 405", st == 405, st)
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as e:
        check("prometheus_client installed (tests/requirements-serve.txt)", False, e)
        return
    names = ("vkllm_time_to_first_token_seconds", "vkllm_time_per_output_token_seconds",
             "vkllm_queue_time_seconds", "vkllm_request_duration_seconds")

    def settled():
        """/metrics parsed, once every admitted request has ended (a stream's end is seen by
        the server a moment after its client has read it)."""
        fams = {}
        for _ in range(100):
            _, text = http(srv.url + "/metrics")
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            dur = [x.value for x in fams[names[3]].samples if x.name.endswith("_count")]
            if metric(srv, "vkllm_requests_inflight") == 0 and dur and \
                    dur[0] == fams["vkllm_requests"].samples[0].value:
                break
            time.sleep(0.05)
        return fams

    def hist(fams, name):
        f = fams.get(name)
        if not f or f.type != "histogram":
            return None
        b = [(float(x.labels["le"]), x.value) for x in f.samples if x.name == name + "_bucket"]
        one = {x.name[len(name):]: x.value for x in f.samples if x.name != name + "_bucket"}
        return b, one.get("_sum"), one.get("_count")

    fams = settled()
    before = {}
    for name in names:
        h = hist(fams, name)
        ok = h is not None and h[2] is not None and h[1] is not None
        if ok:
            b, total, count = h
            ok = (b == sorted(b) and b[-1][0] == float("inf") and b[-1][1] == count
                  and all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1))
                  and len({le for le, _ in b}) == len(b) and total >= 0)
        check("/metrics %s: a histogram, cumulative buckets ending at +Inf = _count" % name,
              ok, h)
        before[name] = h
    admitted = fams["vkllm_requests"].samples[0].value
    check("/metrics: request_duration_seconds_count = requests admitted (%d)" % admitted,
          before[names[3]] and before[names[3]][2] == admitted)
    ratio = fams.get("vkllm_prefix_cache_hit_ratio")
    check("/metrics: prefix_cache_hit_ratio, a gauge in (0, 1] after repeated prompts",
          ratio is not None and ratio.type == "gauge" and 0 < ratio.samples[0].value <= 1, ratio)

    # three more requests, one streamed: every histogram counts each once
    cl = srv.client()
    for stream in (False, True, False):
        r = cl.chat.completions.create(model="smol", messages=CHAT, temperature=0, max_tokens=8,
                                       stream=stream)
        if stream:
            stream_text(r)
    fams = settled()
    grown = {n: (hist(fams, n)[2] - before[n][2], hist(fams, n)[1] - before[n][1])
             for n in names if before[n]}
    check("/metrics: 3 requests more, each histogram's _count grew by 3 and its _sum by > 0",
          len(grown) == 4 and all(c == 3 and t > 0 for c, t in grown.values()), grown)


def main():
    if not MODEL or not os.path.exists(MODEL):
        print("FAIL: no model at VKLLM_MODEL=%r (scripts/fetch_model.sh)" % MODEL)
        return 1
    t0 = time.time()
    srv = Server("--alias", "smol", "--parallel", "4", "-c", "1024")
    try:
        test_main(srv)
        test_metrics_and_page(srv)
    finally:
        rc = srv.stop()
        check("SIGTERM: exit 0", rc == 0, rc)
    test_key_and_limits()
    test_loading()
    print("serve_e2e: %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (len(passes), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
