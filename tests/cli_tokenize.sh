#!/usr/bin/env bash
# `vkllm tokenize --ids` against llama.cpp's ids for every golden string and vocab
# (tests/data/golden/tokens_<vocab>.txt, made by tools/golden/make_token_golden.sh), both with
# special tokens parsed + BOS as the vocab says, and plain (--no-parse-special --no-bos).
# Vocab-only files come from $VKLLM_VOCAB_DIR (scripts/fetch_vocabs.sh).
set -u
: "${VKLLM_BIN:?}" "${VKLLM_MODEL:?}" "${VKLLM_VOCAB_DIR:?}" "${VKLLM_TEST_DATA:?}"
exec python3 - <<'PY'
import os, subprocess, sys, tempfile

data = os.environ["VKLLM_TEST_DATA"] + "/golden"
vocabs = {
    "smollm2": os.environ["VKLLM_MODEL"],
    "llama-spm": os.environ["VKLLM_VOCAB_DIR"] + "/ggml-vocab-llama-spm.gguf",
    "llama-bpe": os.environ["VKLLM_VOCAB_DIR"] + "/ggml-vocab-llama-bpe.gguf",
    "gpt-2": os.environ["VKLLM_VOCAB_DIR"] + "/ggml-vocab-gpt-2.gguf",
}

def unescape(lit):
    # C string literal body -> bytes (escapes: \\ \" \n \t \r \xHH)
    out, i = bytearray(), 0
    while i < len(lit):
        c = lit[i]
        if c != "\\":
            out += c.encode("utf-8"); i += 1; continue
        n = lit[i + 1]
        if n == "x":
            out.append(int(lit[i + 2:i + 4], 16)); i += 4
        else:
            out += {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "\"": b"\""}[n]
            i += 2
    return bytes(out)

strings = []
for line in open(data + "/token_strings.txt", encoding="utf-8"):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    assert line.startswith('"') and line.endswith('"'), line
    strings.append(unescape(line[1:-1]))

passed = failed = 0
tmp = tempfile.NamedTemporaryFile(delete=False)
tmp.close()
for name, path in vocabs.items():
    if not os.path.exists(path):
        print(f"FAIL {name}: {path} missing (run scripts/fetch_vocabs.sh / fetch_model.sh)")
        failed += 1
        continue
    golden = {}
    for line in open(f"{data}/tokens_{name}.txt", encoding="utf-8"):
        parts = line.rstrip("\n").split(" ")
        if line.startswith("#") or line.startswith("meta") or len(parts) < 2 or parts[1] not in ("special", "plain"):
            continue
        golden[(int(parts[0]), parts[1])] = [int(x) for x in parts[2:] if x]
    ok = bad = 0
    cases = sorted(golden.items())
    if os.environ.get("VKLLM_TEST_SANITIZED") == "1":
        # one process per case, each loading the vocab under the sanitizers: every 8th string
        # there (test_tokenizer compares every one in-process, under the sanitizers too)
        cases = [c for c in cases if c[0][0] % 8 == 0]
        print(f"{name}: sanitized build: {len(cases)} of {len(golden)} cases run "
              "(test_tokenizer runs all)")
    for (idx, mode), want in cases:
        with open(tmp.name, "wb") as f:
            f.write(strings[idx])
        args = [os.environ["VKLLM_BIN"], "tokenize", "-m", path, "--ids", "-f", tmp.name]
        if mode == "plain":
            args += ["--no-parse-special", "--no-bos"]
        r = subprocess.run(args, capture_output=True)
        got = None
        if r.returncode == 0:
            txt = r.stdout.decode().strip()
            got = [int(x) for x in txt.strip("[]").split(",") if x.strip()]
        if got == want:
            ok += 1
        else:
            bad += 1
            print(f"FAIL {name} #{idx} {mode}: {strings[idx][:40]!r}\n  want {want[:20]}\n  got  {got if got is not None else r.stderr.decode()[:200]}")
    print(f"{name}: {ok}/{ok + bad} match llama.cpp")
    passed += ok
    failed += bad
os.unlink(tmp.name)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
