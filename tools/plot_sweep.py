#!/usr/bin/env python3
"""Plot test accuracy against learning rate from the summary.json of mlptrain sweep.

    .venv-tools/bin/python tools/plot_sweep.py D/summary.json [more.json ...] -o sweep.png

A summary is what `mlptrain sweep --save-dir D` writes (D/summary.json), or what
`mlptrain sweep-merge ... --out FILE` joins from shards. Each line is one setting of the other
swept values (hidden sizes, momentum, weight decay, betas); its points are the mean test
accuracy of each learning rate over the seeds run with it, and the error bars their standard
deviation (n - 1) where there were two seeds or more. Models that stopped (a non-finite loss)
are left out and counted in the title. The x axis is logarithmic when the rates span more
than a factor of 4.
"""

import argparse
import json
import math
import os
import sys
from collections import defaultdict

# Settings that tell lines apart; lr is the x axis and seeds are pooled into error bars.
SETTINGS = ("hidden", "optimizer", "momentum", "nesterov", "weight_decay", "beta1", "beta2",
            "batch_size", "schedule", "augment_shift", "epochs")


def fail(message):
    print(f"plot_sweep: error: {message}", file=sys.stderr)
    sys.exit(1)


def read_models(path):
    try:
        with open(path) as f:
            summary = json.load(f)
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON ({e.msg})")
    if not isinstance(summary, dict) or summary.get("format") != "mlptrain-sweep":
        fail(f"{path}: not a sweep summary (no \"format\": \"mlptrain-sweep\")")
    models = summary.get("models")
    if not isinstance(models, list):
        fail(f"{path}: \"models\" is not a list")
    for i, m in enumerate(models):
        for key in ("config", "status", "test_accuracy"):
            if key not in m:
                fail(f"{path}: models[{i}] has no '{key}'")
        if "lr" not in m["config"]:
            fail(f"{path}: models[{i}] config has no 'lr'")
    return summary, models


def setting_text(value):
    if isinstance(value, list):
        return "x".join(str(v) for v in value) if value else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def mean_std(values):
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summaries", nargs="+", help="summary.json files of mlptrain sweep")
    parser.add_argument("-o", "--output", default="sweep.png", help="picture to write (.png)")
    parser.add_argument("--title", help="title of the plot")
    args = parser.parse_args()

    models, stopped, datasets = [], 0, set()
    for path in args.summaries:
        summary, ms = read_models(path)
        datasets.add(summary.get("dataset", "?"))
        for m in ms:
            if m["status"] != "ok" or m["test_accuracy"] is None:
                stopped += 1
            else:
                models.append(m)
    if not models:
        fail("no model finished in the summaries; nothing to plot")

    # Only the settings that differ between models name a line.
    varying = [k for k in SETTINGS
               if len({json.dumps(m["config"].get(k)) for m in models}) > 1]
    lines = defaultdict(lambda: defaultdict(list))
    for m in models:
        key = tuple(json.dumps(m["config"].get(k)) for k in varying)
        lines[key][m["config"]["lr"]].append(100.0 * m["test_accuracy"])

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    all_lr = sorted({lr for points in lines.values() for lr in points})
    max_seeds = 1
    for key in sorted(lines):
        points = lines[key]
        xs = sorted(points)
        stats = [mean_std(points[x]) for x in xs]
        max_seeds = max(max_seeds, max(len(points[x]) for x in xs))
        label = ", ".join(f"{k} {setting_text(json.loads(v))}" for k, v in zip(varying, key))
        ax.errorbar(xs, [s[0] for s in stats],
                    yerr=[s[1] if s[1] is not None else 0.0 for s in stats],
                    marker="o", capsize=4, label=label or "all models")
    if all_lr[-1] > 4 * all_lr[0]:
        ax.set_xscale("log")
    ax.set_xticks(all_lr)
    ax.set_xticklabels([f"{lr:g}" for lr in all_lr])
    ax.minorticks_off()
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    n_text = f"{len(models)} models" + (f", {stopped} stopped" if stopped else "")
    seeds_text = f"mean ± std over {max_seeds} seeds" if max_seeds > 1 else "one seed each"
    ax.set_title(args.title or f"mlptrain sweep on {', '.join(sorted(datasets))}: "
                               f"{n_text}, {seeds_text}")
    if varying:
        ax.legend(fontsize="small")
    fig.tight_layout()
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.output + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, args.output)
    print(f"plot_sweep: wrote {args.output}")


if __name__ == "__main__":
    main()
