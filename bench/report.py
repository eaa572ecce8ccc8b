#!/usr/bin/env python3
"""Merge `vkllm bench --json` files into one markdown report and a few charts.

Reads any number of files in the "vkllm-bench/1" schema (docs/bench-json.md), from several
machines, devices and both engines (vkllm, llama.cpp), and writes into the output folder:

  report.md           prefill/decode records (tok/s mean +- stddev, decode roofline %, and the
                      ratio vkllm / llama.cpp where both engines ran the same device, model
                      and test, on the CPU with the same threads), then the op records
  tps_by_device.png   tok/s per model and type, one bar per (device, engine): prefill, decode
  roofline.png        decode as % of the device's measured bandwidth roofline
  scaling.png         prefill tok/s against batch size, decode tok/s against context depth

The bar charts show one record per (device, engine, model): the test on an empty KV cache
with the largest batch, at the thread count that gave the most tokens per second.
report.md is printed to stdout too. Files in another schema are skipped with a warning; the
exit status is 2 when no file could be read. Charts need matplotlib (python3-matplotlib).

Example, on made-up sample data: bench/report.py -o /tmp/report bench/testdata
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

SCHEMA = "vkllm-bench/1"
ENGINES = ("vkllm", "llama.cpp")
KIND_ORDER = {"prefill": 0, "decode": 1}
FIGSIZE, DPI = (12, 7), 100  # 1200 x 700 px


def warn(message):
    print(f"report.py: {message}", file=sys.stderr)


def skip_chart(path, reason):
    """Says why a chart is not drawn and removes the one an earlier run left there."""
    warn(f"{path.name} skipped: {reason}")
    path.unlink(missing_ok=True)


def field(record, path):
    """The value at a dotted path ("device.name"), None where any part is missing or null."""
    for key in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def input_files(paths):
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                warn(f"no *.json file in {path}")
            files += found
        else:
            files.append(path)
    return files


def load_records(files):
    """All records of the readable files; warns about and skips the others."""
    records, readable = [], 0
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            warn(f"skipping {path}: {error}")
            continue
        if not isinstance(data, dict) or data.get("schema") != SCHEMA \
                or not isinstance(data.get("records"), list):
            warn(f"skipping {path}: not a {SCHEMA} file")
            continue
        readable += 1
        records += [r for r in data["records"] if isinstance(r, dict)]
    if not readable:
        warn("no readable input file")
        sys.exit(2)
    return records


def device_label(r, with_tier=True):
    """"name (backend, tier N)"; charts leave the tier out, so that both engines' bars of one
    device share its colour (the tier is vkllm's alone)."""
    backend, tier = field(r, "device.backend") or "?", field(r, "device.tier")
    detail = backend if tier is None or not with_tier else f"{backend}, tier {tier}"
    return f"{field(r, 'device.name') or '?'} ({detail})"


def model_label(r):
    return f"{field(r, 'model.name') or '?'} {field(r, 'model.type') or '?'}"


def test_label(r):
    """test.name, plus the batch size where the prompt is evaluated in several steps."""
    name, n_prompt = field(r, "test.name") or "?", field(r, "test.n_prompt")
    if field(r, "test.kind") == "prefill" and n_prompt and step_tokens(r) != n_prompt:
        return f"{name} b{step_tokens(r)}"
    return name


def step_tokens(r):
    """Prefill: tokens per step, the batch size or the whole prompt if that is shorter."""
    batch, n_prompt = field(r, "test.n_batch"), field(r, "test.n_prompt")
    return min(batch, n_prompt) if batch and n_prompt else batch


def group_key(r):
    """Records to compare engine against engine: same machine, device, model and test, and on
    the CPU backend the same thread count (on Vulkan the engines' host threads may differ)."""
    threads = field(r, "threads") if field(r, "device.backend") == "cpu" else None
    device = field(r, "device.name"), field(r, "device.backend")  # tier: vkllm's alone
    return field(r, "host.cpu"), device, model_label(r), test_label(r), threads


def series_order(series):
    """Sort key of a (device, engine) pair: by device, then vkllm, llama.cpp, other engines."""
    device, engine = series
    return device, ENGINES.index(engine) if engine in ENGINES else len(ENGINES), str(engine)


def number(value, digits=1, suffix=""):
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:,.{digits}f}{suffix}"


def bench_table(records):
    engine_tps = defaultdict(lambda: defaultdict(list))
    for r in records:
        if isinstance(r.get("tps_mean"), (int, float)):
            engine_tps[group_key(r)][r.get("engine")].append(r["tps_mean"])

    def ratio(r):
        tps = engine_tps[group_key(r)]
        if (r.get("engine") != "vkllm" or not tps.get("llama.cpp")
                or not isinstance(r.get("tps_mean"), (int, float))):
            return "–"
        return f"{r['tps_mean'] / mean(tps['llama.cpp']):.2f}"

    def order(r):
        return (device_label(r), field(r, "host.cpu") or "", model_label(r),
                KIND_ORDER[field(r, "test.kind")], field(r, "test.n_depth") or 0,
                step_tokens(r) or 0, test_label(r), field(r, "threads") or 0,
                series_order(("", r.get("engine"))))

    lines = ["| engine | device | host CPU | model | MiB | test | threads | tok/s | roofline "
             "| vkllm / llama.cpp |", "|---|---|---|---|---:|---|---:|---:|---:|---:|"]
    for r in sorted(records, key=order):
        size = field(r, "model.file_bytes")
        tps = f"{number(r.get('tps_mean'))} ± {number(r.get('tps_stddev'))}"
        roofline = r.get("roofline_fraction")
        lines.append("| " + " | ".join([
            str(r.get("engine") or "–"), device_label(r), field(r, "host.cpu") or "–",
            model_label(r),
            number(size / 2**20 if isinstance(size, (int, float)) else None, 0),
            test_label(r), str(r.get("threads") or "–"), tps,
            number(roofline * 100 if isinstance(roofline, (int, float)) else None, 0, " %"),
            ratio(r)]) + " |")
    return lines


def op_shape(op, r):
    """matmul: rows x cols, tokens; attention: heads/KV heads x head size, context, tokens."""
    if op.get("rows") is not None:
        return f"{op['rows']}x{op.get('cols')} n={op.get('tokens')}"
    if op.get("n_head") is not None:
        return (f"{op['n_head']}/{op.get('n_head_kv')}x{op.get('head_dim')} "
                f"n_kv={op.get('n_kv')} n={op.get('tokens')}")
    return field(r, "test.name") or "–"


def op_table(records):
    rows = []
    for r in records:
        op = r.get("op") if isinstance(r.get("op"), dict) else {}
        rows.append((str(op.get("op") or "–"), str(op.get("type") or "–"), op_shape(op, r),
                     device_label(r), number(op.get("us"), 1), number(op.get("gbps"), 1),
                     number(op.get("gflops"), 1)))
    lines = ["| op | type | shape | device | µs | GB/s | GFLOPS |",
             "|---|---|---|---|---:|---:|---:|"]
    return lines + ["| " + " | ".join(row) + " |" for row in sorted(rows)]


def write_report(records, files, out_dir):
    bench = [r for r in records if field(r, "test.kind") in KIND_ORDER]
    ops = [r for r in records if field(r, "test.kind") == "op"]
    lines = ["# vkllm benchmark report", "",
             "Inputs: " + ", ".join(f"`{f}`" for f in files), ""]
    if bench:
        lines += ["## Prefill and decode", "",
                  "tok/s: mean ± sample stddev over the reps; roofline: decode bytes per token "
                  "x tok/s / measured bandwidth; vkllm / llama.cpp (on the vkllm row) above "
                  "1.00: vkllm is faster.", ""] + bench_table(bench)
    if ops:
        lines += ["", "## Ops", ""] + op_table(ops)
    text = "\n".join(lines) + "\n"
    (out_dir / "report.md").write_text(text)
    print(text, end="")
    return bench


def headline(records, kind):
    """One record per (device, engine, model): empty KV cache, largest batch, best threads."""
    best = {}
    for r in records:
        if field(r, "test.kind") != kind or field(r, "test.n_depth") not in (0, None) \
                or not isinstance(r.get("tps_mean"), (int, float)):
            continue
        key = (device_label(r, False), r.get("engine"), model_label(r))
        rank = (step_tokens(r) or 0, r["tps_mean"])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, r)
    return {key: r for key, (_, r) in best.items()}


def series_colors(keys, plt):
    """(device, engine) -> colour: one hue per device, dark for vkllm, light for llama.cpp."""
    devices = sorted({device for device, _ in keys})
    palette = plt.get_cmap("tab20").colors
    return {(d, e): palette[(2 * devices.index(d) + (e != "vkllm")) % 20] for d, e in keys}


def grouped_bars(ax, picked, value, colors, label_fmt):
    """Bars of value(record): a group per model, of the (device, engine) pairs that ran it."""
    models = sorted({model for _, _, model in picked})
    series = sorted({(d, e) for d, e, _ in picked}, key=series_order)
    present = {m: [s for s in series if (*s, m) in picked and value(picked[(*s, m)]) is not None]
               for m in models}
    width = 0.8 / max(map(len, present.values()))
    label_size = max(5, min(8, 200 / sum(map(len, present.values()))))
    for s in series:
        xs = [x + (present[m].index(s) - (len(present[m]) - 1) / 2) * width
              for x, m in enumerate(models) if s in present[m]]
        ys = [value(picked[(*s, m)]) for m in models if s in present[m]]
        bars = ax.bar(xs, ys, width, label=f"{s[0]} · {s[1]}", color=colors[s])
        ax.bar_label(bars, [label_fmt(y) for y in ys], fontsize=label_size, padding=2,
                     rotation=90)
    if len(models) > 4:
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    else:
        ax.set_xticks(range(len(models)), ["\n".join(m.rsplit(" ", 1)) for m in models])
    ax.set_xlim(-0.5, len(models) - 0.5)


def empty_panel(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", color="dimgray", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def log_if_wide(ax, values, top):
    """Log y axis where the values span more than 30x; room above the highest (top: factor)."""
    low, high = min(values), max(values)
    if low > 0 and high / low > 30:
        ax.set_yscale("log")
        ax.set_ylim(low / 1.5, high * top)
    else:
        ax.set_ylim(0, high * (1 + (top - 1) / 8))


def chart_tps(records, plt, path):
    picked = {kind: headline(records, kind) for kind in KIND_ORDER}
    if not any(picked.values()):
        return skip_chart(path, "no prefill or decode record with tok/s")
    colors = series_colors({(d, e) for p in picked.values() for d, e, _ in p}, plt)
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    for ax, (kind, chosen) in zip(axes, picked.items()):
        ax.set_title(f"{kind}: tokens/s per device and engine")
        ax.set_ylabel("tokens/s")
        ax.set_xlabel("model and weight type")
        if not chosen:
            empty_panel(ax, f"no {kind} records")
            continue
        grouped_bars(ax, chosen, lambda r: r["tps_mean"], colors,
                     lambda y: f"{y:.0f}" if y >= 100 else f"{y:.1f}")
        log_if_wide(ax, [r["tps_mean"] for r in chosen.values()], 2.5)
        ax.grid(axis="y", alpha=0.3)
    save(fig, plt, path)


def chart_roofline(records, plt, path):
    chosen = {k: r for k, r in headline(records, "decode").items()
              if isinstance(r.get("roofline_fraction"), (int, float))}
    if not chosen:
        return skip_chart(path, "no decode record with roofline_fraction")
    colors = series_colors({(d, e) for d, e, _ in chosen}, plt)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    percent = lambda r: r["roofline_fraction"] * 100
    grouped_bars(ax, chosen, percent, colors, lambda y: f"{y:.0f} %")
    ax.axhline(100, color="black", linewidth=1, linestyle="--")
    ax.set_ylim(0, max(110, max(map(percent, chosen.values())) * 1.15))
    ax.set_title("decode: % of the measured memory-bandwidth roofline (empty KV cache)")
    ax.set_ylabel("% of roofline (bytes/token x tok/s / bandwidth)")
    ax.set_xlabel("model and weight type")
    ax.grid(axis="y", alpha=0.3)
    save(fig, plt, path)


def scaling_lines(records, kind, x_of):
    """(device, engine, model, threads) -> sorted [(x, tok/s)], only lines with > 1 x value."""
    lines = defaultdict(dict)
    for r in records:
        x, tps = x_of(r), r.get("tps_mean")
        if field(r, "test.kind") != kind or x is None or not isinstance(tps, (int, float)):
            continue
        if kind == "prefill" and field(r, "test.n_depth") not in (0, None):
            continue
        key = (device_label(r, False), r.get("engine"), model_label(r), r.get("threads"))
        lines[key][x] = tps
    return {key: sorted(points.items()) for key, points in lines.items() if len(points) > 1}


def chart_scaling(records, plt, path):
    """Line colour: device and engine; line style: model; marker: thread count."""
    panels = [("prefill", step_tokens, "batch size (tokens per step, -b)",
               "prefill tok/s against batch size", "-b 64,128,512"),
              ("decode", lambda r: field(r, "test.n_depth"),
               "context depth (tokens in the KV cache, -d)", "decode tok/s against context depth",
               "-d 0,512,2048")]
    data = [scaling_lines(records, kind, x_of) for kind, x_of, *_ in panels]
    if not any(data):
        return skip_chart(path, "no batch size or depth series with > 1 point")
    colors = series_colors({(d, e) for lines in data for d, e, _, _ in lines}, plt)
    models = sorted({m for lines in data for _, _, m, _ in lines})
    threads = sorted({t for lines in data for *_, t in lines}, key=lambda t: t or 0)
    styles = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2))]
    markers = "osD^v"
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    for ax, lines, (kind, _, xlabel, title, flags) in zip(axes, data, panels):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("tokens/s")
        if not lines:
            empty_panel(ax, f"no data: run with {flags}")
            continue
        for (device, engine, model, n_threads), points in lines.items():
            ax.plot(*zip(*points), linestyle=styles[models.index(model) % len(styles)],
                    marker=markers[threads.index(n_threads) % len(markers)],
                    color=colors[(device, engine)])
        if kind == "prefill":
            ax.set_xscale("log", base=2)
        xticks = sorted({x for points in lines.values() for x, _ in points})
        ax.set_xticks(xticks, [str(x) for x in xticks])
        log_if_wide(ax, [y for points in lines.values() for _, y in points], 1.5)
        ax.grid(alpha=0.3)
    for device, engine in sorted(colors, key=series_order):
        axes[0].plot([], [], color=colors[(device, engine)], linewidth=4,
                     label=f"{device} · {engine}")
    for i, model in enumerate(models):
        axes[0].plot([], [], linestyle=styles[i % len(styles)], color="gray", label=model)
    for i, n_threads in enumerate(threads):
        axes[0].plot([], [], marker=markers[i % len(markers)], color="gray", linestyle="none",
                     label=f"{n_threads if n_threads is not None else '?'} threads")
    save(fig, plt, path)


def save(fig, plt, path):
    """One legend for all subplots, under them in two columns: a device's engines share a row."""
    entries = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = list(entries)
    order = labels[0::2] + labels[1::2]  # filled column by column: read row by row
    legend = fig.legend([entries[label] for label in order], order, loc="lower center",
                        ncol=2, fontsize=9, frameon=False)
    bottom = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
    fig.tight_layout(rect=(0, bottom + 0.01, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    print(f"report.py: wrote {path}", file=sys.stderr)


def use_system_python():
    """Debian's python3-matplotlib serves /usr/bin/python3; when another interpreter (a
    virtual environment, pyenv) runs this script without matplotlib, rerun under that one."""
    import importlib.util
    import os
    system = "/usr/bin/python3"
    if (importlib.util.find_spec("matplotlib") is None and os.path.exists(system)
            and os.path.realpath(sys.executable) != os.path.realpath(system)
            and not os.environ.get("VKLLM_REPORT_REEXEC")):
        os.environ["VKLLM_REPORT_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR",
                        help="vkllm-bench/1 JSON files, or folders of *.json files")
    parser.add_argument("-o", "--output", metavar="DIR", type=Path,
                        default=Path(__file__).resolve().parent / "report",
                        help="output folder (default: bench/report)")
    args = parser.parse_args()
    files = input_files(args.inputs)
    records = load_records(files)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warn(f"cannot create {args.output}: {error}")
        sys.exit(1)
    bench = write_report(records, files, args.output)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return warn("matplotlib not found (apt install python3-matplotlib): charts skipped")
    chart_tps(bench, plt, args.output / "tps_by_device.png")
    chart_roofline(bench, plt, args.output / "roofline.png")
    chart_scaling(bench, plt, args.output / "scaling.png")


if __name__ == "__main__":
    use_system_python()
    main()
