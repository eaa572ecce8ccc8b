#!/usr/bin/env bash
# The window demo (apps/window, vkllm-window) under Xvfb on the machine's Vulkan driver
# (lavapipe in CI): 200 frames with the default model at a 4 ms vkllm_step budget, the model
# on the window's own VkDevice, and a scene-only run to compare with. Checks: exit 0, the
# summary line, no validation message (ctest sets VKLLM_VK_VALIDATION=1 and the demo fails on
# any), the screenshot has the window's size and is not one colour, its text panel differs
# from the scene-only run's there (the story was drawn), the frame-times CSV has one row per
# frame and tokens > 0; then clear errors, never a crash, for a bad model, no display, bad
# options. Needs VKLLM_WINDOW_BIN and VKLLM_MODEL (set by ctest); without Xvfb or the model
# it fails: a missing dependency is not a pass.
set -u
bin="${VKLLM_WINDOW_BIN:?VKLLM_WINDOW_BIN not set}"
model="${VKLLM_MODEL:?VKLLM_MODEL not set}"
[ -f "$model" ] || { echo "FAIL: default model missing at $model (scripts/fetch_model.sh)"; exit 1; }
command -v Xvfb >/dev/null ||
    { echo "FAIL: Xvfb missing (Debian: xvfb; scripts/deps.sh)"; exit 1; }
# Debian's python3-matplotlib is not needed here: the PNG is read with zlib alone
tmp=$(mktemp -d)
xvfb_pid=
trap '[ -n "$xvfb_pid" ] && { kill "$xvfb_pid"; wait "$xvfb_pid"; } 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# its own runtime dir: Mesa's WSI warns without one
export XDG_RUNTIME_DIR="$tmp/xdg"
mkdir -m 700 "$XDG_RUNTIME_DIR"
# One Xvfb for the whole test, started here rather than by xvfb-run: xvfb-run's clean-up
# races the server's reset when a client exits early and then fails with its own exit 5,
# which hid the demo's exit status. -displayfd picks a free display; -noreset keeps one
# server state across the runs.
Xvfb -displayfd 3 -screen 0 1280x720x24 -nolisten tcp -noreset 3>"$tmp/display" \
    2>"$tmp/xvfb.err" &
xvfb_pid=$!
for _ in $(seq 100); do
    [ -s "$tmp/display" ] && break
    kill -0 "$xvfb_pid" 2>/dev/null || break
    sleep 0.1
done
dpy=$(tr -dc 0-9 <"$tmp/display")
[ -n "$dpy" ] || { echo "FAIL: Xvfb did not start:"; cat "$tmp/xvfb.err"; exit 1; }
xrun() { DISPLAY=":$dpy" "$bin" "$@"; }
W=800 H=480 N=200

xrun -m "$model" --budget-ms 4 --frames $N --width $W --height $H --screenshot "$tmp/model.png" \
    --frame-times "$tmp/model.csv" >"$tmp/model.out" 2>"$tmp/model.err"
rc=$?
[ $rc -eq 0 ] && ok "model run exits 0" || { bad "model run: exit $rc"; cat "$tmp/model.err"; }
if grep -qE "^vkllm-window: $N frames in [0-9.]+ s \| frame ms p50 [0-9.]+ p95 [0-9.]+ p99 [0-9.]+ \| [1-9][0-9]* tokens, [0-9.]+ tok/s, budget 4 ms$" "$tmp/model.out"; then
    ok "summary line: $(cat "$tmp/model.out")"
else
    bad "summary line:"; cat "$tmp/model.out"
fi
grep -q "the host's device" "$tmp/model.err" && ok "vkllm runs on the window's VkDevice" ||
    { bad "vkllm is not on the window's device:"; cat "$tmp/model.err"; }
grep -qi "validation" "$tmp/model.err" && { bad "validation messages:"; cat "$tmp/model.err"; } ||
    ok "no validation message (VKLLM_VK_VALIDATION=${VKLLM_VK_VALIDATION:-unset})"

xrun --no-model --frames 30 --width $W --height $H --screenshot "$tmp/scene.png" \
    --frame-times "$tmp/scene.csv" >"$tmp/scene.out" 2>"$tmp/scene.err"
rc=$?
[ $rc -eq 0 ] && ok "--no-model run exits 0" || { bad "--no-model run: exit $rc"; cat "$tmp/scene.err"; }

# the panel's place, from the demo's start-up line: "text panel at X,Y WxH"
panel=$(grep -oE 'text panel at [0-9]+,[0-9]+ [0-9]+x[0-9]+' "$tmp/model.err" | head -1 |
        grep -oE '[0-9]+' | tr '\n' ' ')
python3 - "$tmp" $W $H $N $panel <<'PY'
import struct, sys, zlib, csv
tmp, W, H, N = sys.argv[1], *map(int, sys.argv[2:5])
px, py, pw, ph = map(int, sys.argv[5:9]) if len(sys.argv) >= 9 else (0, 0, 0, 0)
bad = 0
def fail(msg):
    global bad; bad += 1; print("FAIL", msg)
def read_png(path):
    """8-bit RGB or RGBA, not interlaced: what vkllm-window writes."""
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(d):
        n, kind = struct.unpack(">I4s", d[pos:pos + 8]); body = d[pos + 8:pos + 8 + n]; pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and inter == 0, "unexpected PNG format"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT": idat += body
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return w, h, bpp, rows
try:
    w, h, bpp, m = read_png(f"{tmp}/model.png")
    _, _, _, s = read_png(f"{tmp}/scene.png")
except Exception as e:
    print("FAIL reading the screenshots:", e); sys.exit(1)
if (w, h) != (W, H): fail(f"screenshot is {w}x{h}, the window {W}x{H}")
else: print(f"ok   screenshot is {w}x{h}, the window's size")
colours = {m[y][x * bpp:x * bpp + 3] for y in range(0, h, 4) for x in range(0, w, 4)}
if len(colours) < 50: fail(f"screenshot nearly uniform: {len(colours)} colours")
else: print(f"ok   screenshot not uniform ({len(colours)} colours in a 1/16 sample)")
if pw <= 0: fail("no 'text panel at X,Y WxH' line on stderr")
else:
    # the story's text: the panel below its status line, rule and "Story 1" title (rows 0-2
    # of 16-pixel cells from 10 pixels in), where the scene-only run has nothing
    y0, y1, x0, x1 = py + 10 + 3 * 16, py + ph - 4, px + 4, px + pw - 4
    diff = ink = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            a, b = m[y][x * bpp:x * bpp + 3], s[y][x * bpp:x * bpp + 3]
            diff += a != b
            ink += sum(a) > 400  # the story's letters are near white on a near-black panel
    area = (y1 - y0) * (x1 - x0)
    if diff < 100 or ink < 100:  # a few letters at least: a letter has ~20-50 lit pixels
        fail(f"text panel: {diff} of {area} pixels differ from the scene-only run, {ink} bright")
    else: print(f"ok   text drawn in the panel: {diff} of {area} pixels differ from the "
                f"scene-only run, {ink} bright")
rows = list(csv.DictReader(open(f"{tmp}/model.csv")))
if len(rows) != N: fail(f"frame times: {len(rows)} rows for {N} frames")
elif [int(r["frame"]) for r in rows] != list(range(N)): fail("frame times: frames not 0..N-1")
elif not all(float(r["frame_ms"]) > 0 and float(r["step_ms"]) >= 0 for r in rows):
    fail("frame times: a frame_ms <= 0 or step_ms < 0")
elif int(rows[-1]["tokens"]) <= 0: fail("frame times: no tokens")
elif any(int(a["tokens"]) > int(b["tokens"]) for a, b in zip(rows, rows[1:])):
    fail("frame times: tokens go down")
else: print(f"ok   frame times: {N} rows, {rows[-1]['tokens']} tokens")
srows = list(csv.DictReader(open(f"{tmp}/scene.csv")))
if len(srows) != 30 or any(int(r["tokens"]) != 0 or float(r["step_ms"]) != 0 for r in srows):
    fail("--no-model frame times: not 30 rows of no tokens and no steps")
else: print("ok   --no-model frame times: 30 rows, no tokens")
sys.exit(1 if bad else 0)
PY
[ $? -eq 0 ] && pass=$((pass + 1)) || fail=$((fail + 1))

# errors: a message and a non-zero exit, never a signal
expect_error() { # NAME RC PATTERN ARGS...
    local name="$1" want="$2" pat="$3"; shift 3
    "$@" >"$tmp/e.out" 2>"$tmp/e.err"
    local got=$?
    if [ $got -eq "$want" ] && grep -qE "$pat" "$tmp/e.err"; then
        ok "$name: exit $got, '$(grep -m1 -E "$pat" "$tmp/e.err")'"
    else
        bad "$name: exit $got (want $want), stderr:"; cat "$tmp/e.err"
    fi
}
expect_error "missing model" 1 "model $tmp/none.gguf: No such file" xrun -m "$tmp/none.gguf" --frames 2
head -c 100000 "$model" >"$tmp/cut.gguf"
expect_error "truncated model" 1 "cut.gguf" xrun -m "$tmp/cut.gguf" --frames 2
expect_error "no display" 1 "cannot open a window" env -u DISPLAY -u WAYLAND_DISPLAY "$bin" --no-model --frames 2
expect_error "no Vulkan driver" 1 "no Vulkan driver" env VK_DRIVER_FILES=/nonexistent.json \
    VK_ICD_FILENAMES=/nonexistent.json DISPLAY=":$dpy" "$bin" --no-model --frames 2
expect_error "bad option" 2 "unknown option" "$bin" --no-such-option
expect_error "bad budget" 2 "bad value for --budget-ms" "$bin" --budget-ms -3
expect_error "unwritable screenshot" 1 "cannot write" xrun --no-model --frames 2 --screenshot "$tmp/no/such/dir/x.png"
"$bin" --help >"$tmp/help" 2>&1 && grep -q -- "--budget-ms" "$tmp/help" && ok "--help" || bad "--help"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
