"""vkllm serve behind nginx (scripts/serve_cluster.sh): session affinity, prefix-cache locality
and failover, with the official openai client.

Starts scripts/serve_cluster.sh with two `vkllm serve --device cpu` instances and drives its
front with 8 conversations of 8 turns (64 requests); each conversation sends its growing
history (its requests share a growing prefix) with its own X-Session-Id, odd turns streamed.
nginx names the instance that answered in an X-Vkllm-Upstream header (the addresses it tried,
the last one answered). Checks:
- the session keys are picked (by probing GET /health) so that 4 conversations land on each
  instance: a check that both instances get traffic must not depend on the ports' hashes;
- turns 0-3: every request of a conversation answered by the instance its probe went to;
  each instance's /metrics counts its requests and prefix-cache hits (tokens_cached_total >
  0 on both), and every turn after a conversation's first took tokens from the cache;
- turns 4-7: instance 0 is killed (SIGKILL) while it runs requests: every non-streamed
  request still gets its answer (nginx retries it on instance 1), the conversations of
  instance 1 never move, those of instance 0 move to instance 1 after the kill; a stream
  that had started on the killed instance cannot move (its first bytes went out) and is
  counted, not failed;
- SIGINT stops the script: exit 0, nginx and the instances gone, its temporary folder removed.
Prints one line per check; exits 1 on any failure. Env: VKLLM_BIN, VKLLM_MODEL.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

try:
    import openai
except ImportError:
    print("FAIL: the openai Python client is not installed for %s (scripts/deps.sh makes the "
          "virtual environment tests/cli_serve_nginx.sh uses)" % sys.executable)
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.environ.get("VKLLM_MODEL", "")
CONVERSATIONS, TURNS, MAX_TOKENS = 8, 8, 8
# Long enough to fill several 16-token KV pages: every conversation's prompt starts with it.
SYSTEM = ("You are a patient assistant for a small public library. You answer questions about "
          "books, opening hours, borrowing rules and events in short, friendly sentences. When "
          "you do not know something, you say so and suggest asking the staff at the front "
          "desk. You never invent titles, authors or dates.")
TOPICS = ["gardening", "the moon", "bread", "chess", "rivers", "bicycles", "music", "bees"]
QUESTIONS = ["Tell me one fact about {}.", "Why does that matter?", "Give an example.",
             "Say it more simply.", "What is a common mistake about {}?", "How would a child "
             "explain it?", "Name a book about {}.", "Sum up our talk in one line."]
failures = []


def check(name, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", name, (": " + str(detail)) if detail else ""),
          flush=True)
    if not cond:
        failures.append(name)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read().decode()


def metric(url, name):
    _, _, text = http_get(url + "/metrics")
    m = re.search(r"^vkllm_%s (\d+)$" % name, text, re.M)
    return int(m.group(1)) if m else None


def last_upstream(h):
    """The instance that answered: the last address in nginx's X-Vkllm-Upstream."""
    v = h.get("x-vkllm-upstream") or h.get("X-Vkllm-Upstream") or ""
    return v.split(",")[-1].strip()


class Cluster:
    def __init__(self, port):
        self.p = subprocess.Popen(
            [os.path.join(ROOT, "scripts", "serve_cluster.sh"), "-n", "2", "--port", str(port),
             "--", "-m", MODEL, "--device", "cpu", "-t", "1", "--parallel", "4", "-c", "1024"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.instances, self.front, self.nginx_pid, self.tmp = [], None, None, None
        self.err = []
        threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True).start()
        for line in self.p.stdout:
            m = re.match(r"instance (\d+): (http://127\.0\.0\.1:(\d+)) pid (\d+)", line)
            if m:
                self.instances.append({"url": m.group(2), "addr": "127.0.0.1:" + m.group(3),
                                       "pid": int(m.group(4))})
            m = re.match(r"nginx: pid (\d+), configuration (\S+)/nginx\.conf", line)
            if m:
                self.nginx_pid, self.tmp = int(m.group(1)), m.group(2)
            if line.startswith("front: "):
                self.front = line.split()[1]
                break
        threading.Thread(target=lambda: [None for _ in self.p.stdout], daemon=True).start()
        if not self.front:
            self.p.wait(30)
            raise RuntimeError("serve_cluster.sh did not start (exit %s): %s"
                               % (self.p.returncode, "".join(self.err)))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a child of the cluster script that exited but was not reaped yet is gone too
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def pick_sessions(cl):
    """Session keys, 4 on each instance: where a key lands depends on the instances' ports."""
    by = {i["addr"]: [] for i in cl.instances}
    for k in range(200):
        sid = "conversation-%d" % k
        _, h, _ = http_get(cl.front + "/health", {"X-Session-Id": sid})
        a = last_upstream(h)
        if a in by and len(by[a]) < CONVERSATIONS // 2:
            by[a].append(sid)
        if all(len(v) == CONVERSATIONS // 2 for v in by.values()):
            break
    return by


class Conversation:
    def __init__(self, front, sid, topic, home):
        self.sid, self.topic, self.home = sid, topic, home
        self.client = openai.OpenAI(base_url=front + "/v1", api_key="none", max_retries=0,
                                    timeout=120, default_headers={"X-Session-Id": sid})
        self.history = [{"role": "system", "content": SYSTEM}]
        self.log = []  # per turn: upstream, streamed, ok, cached tokens, error, time

    def turn(self, t):
        q = QUESTIONS[t].format(self.topic)
        msgs = self.history + [{"role": "user", "content": q}]
        stream = t % 2 == 1
        rec = {"turn": t, "stream": stream, "ok": False, "cached": None, "upstream": None,
               "tried": None, "error": None, "t0": time.time()}
        text = ""
        try:
            raw = self.client.chat.completions.with_raw_response.create(
                model=os.path.basename(MODEL), messages=msgs, temperature=0,
                max_tokens=MAX_TOKENS, stream=stream,
                **({"stream_options": {"include_usage": True}} if stream else {}))
            rec["tried"] = raw.headers.get("x-vkllm-upstream", "")
            rec["upstream"] = last_upstream(raw.headers)
            r = raw.parse()
            if stream:
                for ch in r:
                    if ch.choices and ch.choices[0].delta.content:
                        text += ch.choices[0].delta.content
                    if ch.usage:
                        rec["cached"] = ch.usage.prompt_tokens_details.cached_tokens
                        rec["ok"] = True  # the usage chunk comes last: the stream is whole
            else:
                text = r.choices[0].message.content or ""
                rec["cached"] = r.usage.prompt_tokens_details.cached_tokens
                rec["ok"] = bool(text)
        except Exception as e:  # recorded and judged by the checks below
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        self.history = msgs + [{"role": "assistant", "content": text}]
        self.log.append(rec)


def run_turns(convs, turns):
    def go(c):
        for t in turns:
            c.turn(t)
    with ThreadPoolExecutor(len(convs)) as ex:
        list(ex.map(go, convs))


def main():
    if not MODEL:
        print("FAIL: VKLLM_MODEL is not set")
        return 1
    t_start = time.time()
    cl = Cluster(free_port())
    try:
        check("serve_cluster.sh: 2 instances and a front", len(cl.instances) == 2 and
              cl.nginx_pid is not None, cl.front)
        status, _, _ = http_get(cl.front + "/health")
        check("GET /health through nginx", status == 200, status)
        by = pick_sessions(cl)
        if not check("session keys found for 4 conversations on each instance",
                     all(len(v) == CONVERSATIONS // 2 for v in by.values()),
                     {a: len(v) for a, v in by.items()}):
            return 1
        convs = []
        for addr, sids in by.items():
            for sid in sids:
                convs.append(Conversation(cl.front, sid, TOPICS[len(convs)], addr))

        # ---- turns 0-3: affinity and the prefix cache ----
        run_turns(convs, range(4))
        recs = [r for c in convs for r in c.log]
        check("turns 0-3: all 32 requests answered", all(r["ok"] for r in recs),
              [r["error"] for r in recs if not r["ok"]][:3])
        moved = [(c.sid, [r["upstream"] for r in c.log]) for c in convs
                 if any(r["upstream"] != c.home for r in c.log)]
        check("turns 0-3: each conversation stayed on its instance", not moved, moved[:2])
        later = [r["cached"] for c in convs for r in c.log[1:]]
        check("turns 1-3: every request took its prefix from the cache",
              all(x is not None and x > 0 for x in later), later)
        counts = {}
        for inst in cl.instances:
            counts[inst["addr"]] = (metric(inst["url"], "requests_total"),
                                    metric(inst["url"], "tokens_cached_total"))
        check("/metrics: 16 requests on each instance",
              all(v[0] == 16 for v in counts.values()), counts)
        check("/metrics: prefix-cache hits on both instances (tokens_cached_total > 0)",
              all(v[1] and v[1] > 0 for v in counts.values()), counts)

        # ---- turns 4-7: instance 0 killed while it works ----
        victim, survivor = cl.instances[0], cl.instances[1]
        killed = {}

        def killer():
            t0 = time.time()
            while time.time() - t0 < 30:
                n = metric(victim["url"], "requests_inflight")
                if n:
                    killed["inflight"] = n
                    break
                time.sleep(0.01)
            os.kill(victim["pid"], signal.SIGKILL)
            killed["t"] = time.time()  # a request sent after this cannot reach instance 0

        k = threading.Thread(target=killer)
        k.start()
        run_turns(convs, range(4, TURNS))
        k.join()
        check("instance 0 killed with requests in flight", killed.get("inflight", 0) > 0,
              "%s in flight" % killed.get("inflight"))
        recs = [(c, r) for c in convs for r in c.log[4:]]
        plain = [r for _, r in recs if not r["stream"]]
        check("turns 4-7: every non-streamed request answered (failover)",
              all(r["ok"] for r in plain), [r["error"] for r in plain if not r["ok"]][:3])
        retried = [r["tried"] for r in plain if r["tried"] and "," in r["tried"]]
        print("info: non-streamed requests nginx retried on the other instance: %d %s"
              % (len(retried), retried[:2]))
        cut = [r for _, r in recs if r["stream"] and not r["ok"]]
        check("turns 4-7: a stream fails only if it started on the killed instance before the "
              "kill", all(r["upstream"] in (None, victim["addr"]) and r["t0"] < killed["t"]
                          for r in cut), [(r["upstream"], r["error"]) for r in cut][:3])
        print("info: streams cut by the kill: %d of %d" % (len(cut), len(recs) - len(plain)))
        stay = [(c.sid, [r["upstream"] for r in c.log]) for c in convs
                if c.home == survivor["addr"] and
                any(r["upstream"] != survivor["addr"] for r in c.log)]
        check("instance 1's conversations never moved", not stay, stay[:2])
        after = [r for c, r in recs if c.home == victim["addr"] and r["t0"] > killed["t"]]
        check("instance 0's conversations answered by instance 1 after the kill",
              after and all(r["upstream"] == survivor["addr"] for r in after if r["ok"]),
              "%d requests" % len(after))
    finally:
        cl.p.send_signal(signal.SIGINT)
        try:
            rc = cl.p.wait(60)
        except subprocess.TimeoutExpired:
            cl.p.kill()
            rc = None
    check("SIGINT: serve_cluster.sh exits 0", rc == 0, "exit %s: %s" % (rc, "".join(cl.err[-3:])))
    left = [p for p in [cl.nginx_pid] + [i["pid"] for i in cl.instances] if p and alive(p)]
    check("SIGINT: nginx and the instances stopped", not left, left)
    check("SIGINT: the temporary folder removed", cl.tmp and not os.path.exists(cl.tmp), cl.tmp)
    for p in left:  # never leave them behind, even on failure
        os.kill(p, signal.SIGKILL)
    if cl.tmp and os.path.exists(cl.tmp):
        shutil.rmtree(cl.tmp, ignore_errors=True)
    print("%s: %d failed (%.1f s)" % ("FAIL" if failures else "ok", len(failures),
                                      time.time() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
