"""vkllm serve end to end, driven by the official openai client (PyPI) and raw HTTP.

Starts `vkllm serve --device cpu --port 0` servers on loopback and checks: chat and text
completions, streamed and not, n = 2, stop strings, seed reproducibility, greedy answers equal
to `vkllm run --temp 0`, usage in streams, cached_tokens on a repeated prompt, ignore_eos,
log-probabilities (chat and completions, streamed equal to not streamed), presence and
frequency penalties, response_format json_object and json_schema answers (parsed, and
validated with jsonschema), tokenize/detokenize, every error path's status and error object,
429 when full, a client that
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
    import jsonschema
    import openai
except ImportError as e:
    print("FAIL: %s: the openai client and jsonschema must be installed for %s (scripts/deps.sh "
          "makes the virtual environment tests/cli_serve.sh uses)" % (e, sys.executable))
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
        lp = {"logprobs": 1} if isinstance(stop, list) else {}
        c = cl.completions.create(model="smol", prompt=prompt, temperature=0, max_tokens=NGEN,
                                  stop=stop, **lp)
        chunks = list(cl.completions.create(model="smol", prompt=prompt, temperature=0,
                                            max_tokens=NGEN, stop=stop, stream=True, **lp))
        texts, fins, _, _ = stream_text(chunks)
        check("stop %r: the text ends before it, streamed too" % (stop,),
              c.choices[0].text == want and c.choices[0].finish_reason == "stop"
              and texts.get(0) == want and fins.get(0) == "stop", (c.choices[0].text, texts, want))
        if lp:  # the tokens that start in the answer, streamed or not
            toks = c.choices[0].logprobs.tokens
            s_toks = [t for ch in chunks for x in ch.choices if x.logprobs
                      for t in x.logprobs.tokens]
            check("stop with logprobs: the tokens that start before the stop string, streamed "
                  "too", "".join(toks).startswith(want) and len("".join(toks[:-1])) < len(want)
                  and s_toks == toks, (toks, s_toks, want))

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

    test_logprobs(cl, text)

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
        ("logit_bias (not supported yet)", u_chat, "POST",
         {"messages": msgs, "logit_bias": {"1": 5}}, 400, "logit_bias", "unsupported_parameter"),
        ("presence_penalty over 2", u_chat, "POST", {"messages": msgs, "presence_penalty": 2.5},
         400, "presence_penalty", None),
        ("frequency_penalty under -2", srv.url + "/v1/completions", "POST",
         {"prompt": "x", "frequency_penalty": -3}, 400, "frequency_penalty", None),
        ("top_logprobs over 20", u_chat, "POST",
         {"messages": msgs, "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs", None),
        ("completions logprobs over 20", srv.url + "/v1/completions", "POST",
         {"prompt": "x", "logprobs": 21}, 400, "logprobs", None),
        ("response_format json_schema without json_schema", u_chat, "POST",
         {"messages": msgs, "response_format": {"type": "json_schema"}}, 400,
         "response_format.json_schema", None),
        ("response_format json_schema with $ref", u_chat, "POST",
         {"messages": msgs, "response_format": {"type": "json_schema", "json_schema": {
             "name": "r", "schema": {"$ref": "#/$defs/a"}}}}, 400, "response_format", None),
        ("detokenize a bad id", srv.url + "/detokenize", "POST", {"tokens": [10 ** 7]}, 400,
         "tokens", None),
    ]
    for name, url, method, body, want, param, code in cases:
        st, j = http(url, method, body)
        check("error: %s -> %d" % (name, want), st == want and is_error_object(j, param, code),
              (st, j))
    try:
        cl.chat.completions.create(model="smol", messages=msgs, logit_bias={"1": 5})
        check("openai client: BadRequestError for logit_bias", False)
    except openai.BadRequestError as e:
        check("openai client: BadRequestError for logit_bias", e.code == "unsupported_parameter")
    try:
        cl.chat.completions.create(model="smol", messages=msgs, frequency_penalty=-2.5)
        check("openai client: BadRequestError for frequency_penalty -2.5", False)
    except openai.BadRequestError as e:
        check("openai client: BadRequestError for frequency_penalty -2.5",
              e.param == "frequency_penalty", e)
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

    test_json(srv, cl)

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


def lp_entries(content):
    """(token, logprob, bytes, [(token, logprob)]) of chat logprobs content entries"""
    return [(t.token, t.logprob, t.bytes, [(a.token, a.logprob) for a in t.top_logprobs])
            for t in content]


def test_logprobs(cl, text):
    """log-probabilities (greedy: the chosen token heads its list) and penalties"""
    r = cl.chat.completions.create(model="smol", messages=CHAT, temperature=0, max_tokens=NGEN,
                                   logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    joined = b"".join(bytes(t.bytes) for t in content).decode("utf-8", "replace")
    tops_ok = all(len(t.top_logprobs) == 3 and t.logprob <= 0
                  and all(a.logprob <= b.logprob for a, b in zip(t.top_logprobs[1:],
                                                                 t.top_logprobs))
                  and t.top_logprobs[0].token == t.token
                  and t.top_logprobs[0].logprob == t.logprob for t in content)
    check("chat logprobs, top_logprobs 3: 3 sorted entries a token, the greedy one first, "
          "logprob <= 0, the bytes make the text",
          r.choices[0].message.content == text and content and tops_ok and joined == text
          and len(content) == r.usage.completion_tokens
          - (r.choices[0].finish_reason == "stop"), [(t.token, t.logprob) for t in content[:4]])
    got = []
    for ch in cl.chat.completions.create(model="smol", messages=CHAT, temperature=0,
                                         max_tokens=NGEN, logprobs=True, top_logprobs=3,
                                         stream=True):
        for c in ch.choices:
            if c.logprobs and c.logprobs.content:
                got += c.logprobs.content
    check("chat logprobs streamed: the same entries as not streamed",
          lp_entries(got) == lp_entries(content), (len(got), len(content)))

    prompt = "The capital of France is"
    c = cl.completions.create(model="smol", prompt=prompt, temperature=0, max_tokens=NGEN,
                              logprobs=3)
    lp = c.choices[0].logprobs
    n = len(lp.tokens)
    check("completions logprobs 3: tokens, token_logprobs, top_logprobs (dicts), text_offset",
          n == NGEN == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
          and "".join(lp.tokens) == c.choices[0].text and lp.text_offset[0] == 0
          and all(lp.text_offset[i + 1] == lp.text_offset[i] + len(lp.tokens[i])
                  for i in range(n - 1))
          and all(len(d) == 3 and max(d.values()) == v and v <= 0
                  for d, v in zip(lp.top_logprobs, lp.token_logprobs)), lp)
    s_toks, s_lps, s_offs = [], [], []
    for ch in cl.completions.create(model="smol", prompt=prompt, temperature=0, max_tokens=NGEN,
                                    logprobs=3, stream=True):
        for x in ch.choices:
            if x.logprobs:
                s_toks += x.logprobs.tokens
                s_lps += x.logprobs.token_logprobs
                s_offs += x.logprobs.text_offset
    check("completions logprobs streamed: the same as not streamed",
          (s_toks, s_lps, s_offs) == (lp.tokens, lp.token_logprobs, lp.text_offset), s_toks)

    # penalties: a prompt the model repeats; OpenAI's penalties on the answer's tokens
    rep_prompt = "Repeat after me: hello hello hello hello hello hello"
    n_pen = 16
    plain = cl.completions.create(model="smol", prompt=rep_prompt, temperature=0,
                                  max_tokens=n_pen).choices[0].text
    freq = cl.completions.create(model="smol", prompt=rep_prompt, temperature=0,
                                 max_tokens=n_pen, frequency_penalty=2).choices[0].text
    both = cl.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": rep_prompt}], temperature=0,
        max_tokens=n_pen, presence_penalty=2, frequency_penalty=0.5,
        extra_body={"ignore_eos": True}).choices[0].message.content
    check("penalties: frequency_penalty 2 changes a repeating answer; chat takes them too",
          plain.count("hello") > 8 and freq != plain and freq.count("hello") < 4 and both,
          (plain, freq, both))


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "colour": {"enum": ["red", "green", "blue"]},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 12},
                    "maxItems": 2},
        "pet": {"type": ["boolean", "null"]},
    },
    "required": ["name", "age", "colour", "hobbies", "pet"],
    "additionalProperties": False,
}


def test_json(srv, cl):
    """response_format: json_object and json_schema answers parse (and validate against the
    schema, by jsonschema), streamed and not, greedy and sampled, on both endpoints; an
    unsupported keyword is a 400 naming response_format. The requests run at once."""
    import concurrent.futures
    ask = [{"role": "user", "content": "Describe a person as JSON: name, age, favourite "
                                      "colour, hobbies, and whether they have a pet."}]
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                  "strict": True}}

    def chat(stream, **kw):
        if not stream:
            r = cl.chat.completions.create(model="smol", messages=ask, max_tokens=160, **kw)
            return r.choices[0].message.content, r.choices[0].finish_reason
        texts, finishes, _, _ = stream_text(cl.chat.completions.create(
            model="smol", messages=ask, max_tokens=160, stream=True, **kw))
        return texts.get(0, ""), finishes.get(0)

    def completion():
        r = cl.completions.create(model="smol", prompt="A JSON object describing a person:",
                                  max_tokens=160, temperature=0,
                                  extra_body={"response_format": fmt})
        return r.choices[0].text, r.choices[0].finish_reason

    jobs = {
        "json_schema, greedy": lambda: chat(False, temperature=0, response_format=fmt),
        "json_schema, sampled, streamed": lambda: chat(True, seed=5, response_format=fmt),
        "json_object, sampled": lambda: chat(False, seed=3,
                                             response_format={"type": "json_object"}),
        "json_schema, completions": completion,
    }
    if SANITIZED:  # the server under ASan: two answers
        jobs = {k: v for k, v in jobs.items() if k.startswith("json_schema, ") and "comp" not in k}
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
        futs = {name: ex.submit(f) for name, f in jobs.items()}
        got = {name: f.result() for name, f in futs.items()}
    for name, (text, finish) in got.items():
        try:
            doc = json.loads(text)
            ok = isinstance(doc, dict) and finish == "stop"
            if ok and name.startswith("json_schema"):
                jsonschema.validate(doc, PERSON)
        except (ValueError, jsonschema.ValidationError) as e:
            ok, text = False, "%s: %s" % (e, text)
        check("response_format %s: parses%s" % (
            name, " and validates" if name.startswith("json_schema") else ""), ok, text)
    try:
        cl.chat.completions.create(model="smol", messages=ask, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}}}})
        check("openai client: BadRequestError for an unsupported schema keyword", False)
    except openai.BadRequestError as e:
        check("openai client: BadRequestError for an unsupported schema keyword",
              e.param == "response_format" and "minimum" in str(e), e)
    print("response_format checks: %.1f s" % (time.time() - t0))


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


def test_stalled_clients():
    """Clients that send half a request and stall: the others are still served, the server
    closes a stalled connection after --timeout, and connections beyond --max-conns are
    refused at once while the server goes on serving once they are gone. The timeout (5 s)
    leaves a loaded machine time to answer the other client before the stalled ones close."""
    import socket
    srv = Server("--timeout", "5", "--max-conns", "3", "--parallel", "1", "-c", "256")

    def stalled(data):
        k = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        k.sendall(data)
        return k

    def closed_within(k, limit):
        """(closed, seconds, the bytes it sent before closing)"""
        t0 = time.time()
        k.settimeout(limit)
        data = b""
        try:
            got = k.recv(4096)
            while got and time.time() - t0 < limit:
                data += got
                got = k.recv(4096)
            ok = not got
        except (ConnectionResetError, BrokenPipeError):
            ok = True
        except socket.timeout:
            ok = False
        k.close()
        return ok, time.time() - t0, data

    def still_open(k):
        k.setblocking(False)
        try:
            return k.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            k.setblocking(True)

    try:
        head = stalled(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        body = stalled(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                       b'{"prompt": "x", ')
        t0 = time.time()
        r = srv.client().completions.create(model=os.path.basename(MODEL), prompt="Hello",
                                            max_tokens=2, temperature=0)
        check("half a header and half a body stalled: another client is served meanwhile "
              "(%.2f s)" % (time.time() - t0), r.usage.completion_tokens == 2
              and still_open(head) and still_open(body), r)
        third = stalled(b"GET /health HTTP/1.1\r\nHo")
        over = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            over.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        ok, dt, data = closed_within(over, 5)
        check("a connection over --max-conns 3 is refused: closed in %.2f s, no answer" % dt,
              ok and dt < 1.5 and not data, data[:80])
        t_stall = time.time()
        for name, k in (("half a header", head), ("half a body", body),
                        ("a third half header", third)):
            ok, dt, data = closed_within(k, 15)
            check("%s: closed after --timeout 5 (%.1f s from the first check)"
                  % (name, time.time() - t_stall), ok, data[:80])
        # a closed connection counts against --max-conns until its thread has ended: a moment
        import urllib.error
        t0 = time.time()
        while True:
            try:
                st, j = http(srv.url + "/health")
                break
            except (ConnectionError, urllib.error.URLError) as e:
                st, j = None, repr(e)
                if time.time() - t0 > 3:
                    break
                time.sleep(0.1)
        check("after the stalled clients: the server answers (in %.2f s)" % (time.time() - t0),
              st == 200, (st, j))
    finally:
        rc = srv.stop()
        check("stalled clients: exit 0 on SIGTERM", rc == 0, rc)


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
    test_stalled_clients()
    test_loading()
    print("serve_e2e: %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (len(passes), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
