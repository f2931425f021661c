#!/usr/bin/env python3
"""Joins the JSON results of one compare.sh run into one table (standard library only).

    benchmarks/compare_table.py OUT_DIR [--markdown]

Reads every *.json result in OUT_DIR (an object, or an array of objects, in the schema that
mlptrain-bench and benchmarks/baselines/common.py write), the *.skip files (one "SKIP ..." line
each) and meta.json, and prints, per configuration (device, batch size), each system's median
epoch time, samples/s, test accuracy, and mlptrain's speed-up over it: the system's median epoch
time divided by mlptrain's, both measured in this run. Then a compact matrix of the speed-ups.
Writes the same text to OUT_DIR/table.txt (and table.md with --markdown).

Exit status: 0 printed; 1 nothing to print or a malformed file (the message names it).
"""

from __future__ import annotations

import glob
import json
import os
import sys

FIELDS = ("system", "device", "device_name", "batch_size", "epochs", "warmup", "epoch_times_s",
          "median_epoch_s", "samples_per_s", "step_us", "test_accuracy", "final_loss")

# Column order: mlptrain first, then the baselines from the slowest kind of code to the fastest.
ORDER = ("mlptrain", "numpy", "numpy-f32", "torch-eager", "torch-compile", "torch-graph")


class TableError(Exception):
    pass


def load_results(out_dir: str) -> list[dict]:
    results = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        if os.path.basename(path) in ("meta.json", "summary.json"):
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise TableError(f"{path}: not readable as JSON: {e}")
        for r in data if isinstance(data, list) else [data]:
            missing = [k for k in FIELDS if k not in r]
            if missing:
                raise TableError(f"{path}: result without {', '.join(missing)}")
            results.append(r)
    return results


def load_skips(out_dir: str) -> list[str]:
    lines = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*.skip"))):
        with open(path) as f:
            text = f.read().strip()
        if text:
            lines.append(text.splitlines()[-1])
    return lines


def system_key(name: str) -> tuple:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def fmt_time(s: float) -> str:
    return f"{s:.3f} s" if s >= 0.1 else f"{s * 1e3:.1f} ms"


def threads_of(r: dict) -> str:
    if r["device"] != "cpu":
        return "-"
    if r.get("threads"):
        return str(r["threads"])
    # The baselines say "<cpu> (N threads)" in device_name.
    name = r["device_name"]
    if name.endswith(" threads)") and "(" in name:
        return name.rsplit("(", 1)[1].split()[0]
    return "?"


def render(results: list[dict], skips: list[str], meta: dict, markdown: bool) -> str:
    configs = sorted({(r["device"], int(r["batch_size"])) for r in results})
    systems = sorted({r["system"] for r in results}, key=system_key)
    by = {(r["device"], int(r["batch_size"]), r["system"]): r for r in results}
    # mlptrain's device decides what a configuration is: the baselines of a CPU run are
    # compared with mlptrain on the CPU, those of a CUDA run with mlptrain on CUDA.
    out = []
    if meta:
        # In Markdown the lines before the table are a list, so they do not run together.
        bullet = "- " if markdown else ""
        out.append(f"device: {meta.get('device_desc', meta.get('device', '?'))}; load average "
                   f"(1, 5, 15 min) at start -> end: {meta.get('load_average', '?')}")
        out.append(f"data: {meta.get('data', '?')}")
        out.append(f"commit {meta.get('commit', '?')}, {meta.get('date', '?')}; "
                   f"command: {meta.get('command', '?')}")
        out.append(f"epochs per configuration: {meta.get('epochs', '?')} "
                   f"(the first {meta.get('warmup', '?')} not timed); time = median epoch; "
                   f"speed-up = system's epoch time / mlptrain's, both from this run")
        for note in meta.get("notes", []):
            out.append(f"note: {note}")
        out = [bullet + line for line in out]
        out.append("")

    header = ["device", "batch", "threads", "system", "epoch", "samples/s", "us/step",
              "test acc", "mlptrain speed-up"]
    rows = []
    for device, batch in configs:
        base = by.get((device, batch, "mlptrain"))
        for system in systems:
            r = by.get((device, batch, system))
            if r is None:
                continue
            ratio = (f"{r['median_epoch_s'] / base['median_epoch_s']:.2f}x" if base else "-")
            rows.append([device, str(batch), threads_of(r), system, fmt_time(r["median_epoch_s"]),
                         f"{r['samples_per_s']:.0f}", f"{r['step_us']:.1f}",
                         f"{100 * r['test_accuracy']:.2f}%", ratio])
    out += table(header, rows, markdown, right=(1, 2, 4, 5, 6, 7, 8))

    # The speed-ups alone, one row per configuration.
    others = [s for s in systems if s != "mlptrain"]
    if others:
        out.append("")
        out.append("mlptrain speed-up over each system (its epoch time / mlptrain's):")
        if markdown:
            out.append("")
        header = ["device", "batch", "mlptrain epoch"] + others
        rows = []
        for device, batch in configs:
            base = by.get((device, batch, "mlptrain"))
            row = [device, str(batch), fmt_time(base["median_epoch_s"]) if base else "-"]
            for s in others:
                r = by.get((device, batch, s))
                row.append(f"{r['median_epoch_s'] / base['median_epoch_s']:.2f}x"
                           if r and base else "-")
            rows.append(row)
        out += table(header, rows, markdown, right=tuple(range(1, len(header))))

    if skips:
        out.append("")
        out.append("skipped or failed:")
        if markdown:
            out.append("")
        out += [f"{'- ' if markdown else '  '}{s}" for s in skips]
    return "\n".join(out) + "\n"


def table(header: list[str], rows: list[list[str]], markdown: bool, right=()) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(" ---: " if i in right else " --- " for i in range(len(header)))
                 + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return lines
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header)] + [line(r) for r in rows]


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    markdown = "--markdown" in argv
    unknown = [a for a in argv if a.startswith("--") and a != "--markdown"]
    if len(args) != 1 or unknown:
        print("usage: compare_table.py OUT_DIR [--markdown]", file=sys.stderr)
        return 2
    out_dir = args[0]
    try:
        results = load_results(out_dir)
        if not results:
            raise TableError(f"{out_dir}: no result files (*.json)")
        meta = {}
        meta_path = os.path.join(out_dir, "meta.json")
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
    except (TableError, OSError, ValueError) as e:
        print(f"compare_table: error: {e}", file=sys.stderr)
        return 1
    skips = load_skips(out_dir)
    text = render(results, skips, meta, markdown=False)
    print(text, end="")
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(text)
    if markdown:
        with open(os.path.join(out_dir, "table.md"), "w") as f:
            f.write(render(results, skips, meta, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
