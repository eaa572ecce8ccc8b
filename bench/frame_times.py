#!/usr/bin/env python3
"""Frame times of vkllm-window runs: a PNG plot and a markdown table.

Usage: bench/frame_times.py RUN.csv... [-o frame_times.png] [--markdown table.md] [--skip N]

Each CSV is one run's --frame-times file (frame, frame_ms, step_ms, tokens); its name without
.csv labels it ("no-model", "budget-4ms"). The plot has p50/p95/p99 frame time per run as bars
(tokens per second above them) and every frame's time over the run; the table has the same
numbers. --skip drops each run's first N frames (start-up: the first prefill, pipeline
compiles) from the percentiles and tokens/s; 0 by default, so the numbers are of whole runs.
bench/window_bench.sh makes the runs and calls this.
"""
import argparse
import csv
import math
import os
import sys


def percentile(sorted_values, p):
    """Nearest rank, as vkllm-window's own summary line computes it."""
    if not sorted_values:
        return float("nan")
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def load(path, skip):
    rows = []
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        need = {"frame", "frame_ms", "step_ms", "tokens"}
        if not r.fieldnames or not need <= set(r.fieldnames):
            sys.exit(f"frame_times: {path}: not a vkllm-window --frame-times file "
                     f"(columns {r.fieldnames})")
        for row in r:
            rows.append((int(row["frame"]), float(row["frame_ms"]), float(row["step_ms"]),
                         int(row["tokens"])))
    if len(rows) <= skip:
        sys.exit(f"frame_times: {path}: {len(rows)} frames, none left after --skip {skip}")
    label = os.path.splitext(os.path.basename(path))[0]
    kept = rows[skip:]
    ms = sorted(r[1] for r in kept)
    seconds = sum(r[1] for r in kept) / 1e3
    tokens = kept[-1][3] - (rows[skip - 1][3] if skip > 0 else 0)
    return {
        "label": label,
        "frames": len(kept),
        "all_ms": [r[1] for r in rows],
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "step_ms": sum(r[2] for r in kept) / len(kept),
        "tokens": tokens,
        "tok_s": tokens / seconds if seconds > 0 else 0.0,
    }


def markdown(runs):
    lines = ["| run | frames | p50 ms | p95 ms | p99 ms | mean vkllm_step ms | tokens | tokens/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        has_model = r["tokens"] > 0 or r["step_ms"] > 0  # a --no-model run steps nothing
        lines.append(f"| {r['label']} | {r['frames']} | {r['p50']:.1f} | {r['p95']:.1f} | "
                     f"{r['p99']:.1f} | {r['step_ms']:.1f} | "
                     + (f"{r['tokens']} | {r['tok_s']:.2f} |" if has_model else "– | – |"))
    return "\n".join(lines) + "\n"


def plot(runs, out):
    try:
        import matplotlib
    except ImportError:
        sys.exit(f"frame_times: this python ({sys.executable}) has no matplotlib: Debian's "
                 "python3-matplotlib is for /usr/bin/python3 (scripts/deps.sh installs it)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.3]})
    width = 0.26
    xs = range(len(runs))
    for i, (key, colour) in enumerate((("p50", "#4c72b0"), ("p95", "#dd8452"), ("p99", "#c44e52"))):
        vals = [r[key] for r in runs]
        bars = ax.bar([x + (i - 1) * width for x in xs], vals, width, label=key, color=colour)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(list(xs), [r["label"] for r in runs])
    ax.set_ylabel("frame time, ms")
    ax.set_title("frame time percentiles (tokens/s above)")
    top = max(r["p99"] for r in runs)
    for x, r in zip(xs, runs):
        if r["tokens"] > 0:
            ax.text(x, top * 1.12, f"{r['tok_s']:.1f} tok/s", ha="center", fontsize=9)
    ax.set_ylim(0, top * 1.25)
    ax.legend(loc="upper left", fontsize=8)
    for r in runs:
        ax2.plot(range(len(r["all_ms"])), r["all_ms"], label=r["label"], linewidth=0.9)
    ax2.set_yscale("log")
    ax2.set_xlabel("frame")
    ax2.set_ylabel("frame time, ms (log)")
    ax2.set_title("every frame")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("-o", "--output", default="frame_times.png", help="plot (PNG)")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--skip", type=int, default=0, help="drop each run's first N frames")
    a = ap.parse_args()
    runs = [load(p, a.skip) for p in a.csv]
    table = markdown(runs)
    sys.stdout.write(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    plot(runs, a.output)
    print(f"frame_times: wrote {a.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
